"""adedge against anomalib, side by side on this machine, in one run: the same work timed on both,
in two tables: like for like, and each toolkit at its own defaults (PatchCore included).

Like for like: same backbone and layers on both sides (resnet18 with random weights; DFM on layer3, CFLOW on
layer2-4), 256 px, batch 1, the same decoded 900x900 frame to an image score and a 900x900 anomaly
map. anomalib (pinned below) is installed into its own venv under the work folder, never into
adedge's, and exports its models with its defaults; its cells run through its OpenVINOInferencer
at its default settings and with OpenVINO's f32 hint. adedge's cells run its fp32 bundle (what
ships), its auto bundle and its bf16 bundle through adedge's runtime. Every cell is a fresh
process; the cells take turns, round after round. Each cell reports the precision its
convolutions really ran in, read from OpenVINO's execution graph.

At defaults: anomalib's `Dfm()`, `Cflow()` and `Patchcore()` (wide_resnet50_2 and resnet50, 256 px;
`pre_trained=False`, the same graphs without downloading weights) at anomalib's default precision,
against adedge's three models trained with every default and exported as the fp32 bundle that ships.

    .venv/bin/python benchmarks/vs_anomalib.py [--work DIR] [--rounds 2] [--calls 50] [--frame 900]

The first run installs anomalib (about 6.5 GB with torch's CUDA build, which pip takes from this
machine's disk) and exports its models; later runs with the same --work reuse both.
Writes benchmarks/results/vs_anomalib.md and .json.
"""

import argparse
import json
import subprocess
import sys
import tempfile
from importlib.metadata import version
from pathlib import Path
from statistics import median

from common import brief_config, machine_description, write_results

from adedge.data.synthetic import generate_synthetic
from adedge.errors import AdedgeError
from adedge.export.exporter import export_bundle
from adedge.train.trainer import train

ROOT = Path(__file__).resolve().parent
ANOMALIB = ["anomalib[openvino]==2.7.0", "torch==2.14.1", "torchvision==0.29.1", f"openvino=={version('openvino')}"]
IMAGE_SIZE = 256
MODELS = {"dfm": ("layer3",), "cflow": ("layer2", "layer3", "layer4")}
DEFAULT_MODELS = ("dfm", "cflow", "patchcore")
SAME, DEFAULTS = "same backbone", "defaults"  # the two tables
ADEDGE_PRECISIONS = ("fp32", "auto", "bf16", "int8")


def anomalib_python(work: Path) -> Path:
    """The python of a venv under WORK with anomalib installed (made on first use)."""
    venv = work / "anomalib-venv"
    python = venv / "bin" / "python"
    if not (venv / ".installed").is_file():
        print(f"installing {', '.join(ANOMALIB)} into {venv} ...", flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", *ANOMALIB], check=True)
        (venv / ".installed").touch()
    return python


def anomalib_models(python: Path, work: Path) -> dict[tuple[str, str], Path]:
    """anomalib's exported model.xml per (table, model) (exported on first use)."""
    out = work / "anomalib-models"
    xmls = {(SAME, model): out / model / "weights" / "openvino" / "model.xml" for model in MODELS}
    xmls |= {(DEFAULTS, model): out / "defaults" / model / "weights" / "openvino" / "model.xml" for model in DEFAULT_MODELS}
    if not all(xml.is_file() for xml in xmls.values()):
        subprocess.run([str(python), str(ROOT / "vs_anomalib_export.py"), str(out)], check=True)
    return xmls


def _bundle(run: Path, bundle: Path, precision: str) -> Path | str:
    """BUNDLE exported from RUN in PRECISION (once), or why the export failed."""
    try:
        if not (bundle / "adedge.json").is_file():
            export_bundle(run, bundle, "openvino", precision, max_drop=1.0)
        return bundle
    except AdedgeError as exc:
        return f"export failed: {exc}"


def adedge_bundles(work: Path) -> dict[tuple[str, str], dict[str, Path | str]]:
    """adedge's bundle folder per (table, model) and precision, trained briefly on synthetic images,
    or why the export failed: the same backbone as anomalib's in every precision, and each model at
    its defaults (the fp32 bundle that ships). INT8 is exported with its accuracy bound lifted
    (max_drop 1): random weights say nothing of accuracy, so its cell tells only what INT8 would buy in time."""
    data = generate_synthetic(work / "adedge-data", train=6, test_good=0, per_defect=0)
    bundles: dict[tuple[str, str], dict[str, Path | str]] = {}
    for table, models in ((SAME, MODELS), (DEFAULTS, dict.fromkeys(DEFAULT_MODELS))):
        folder = table.replace(" ", "-")
        for model, stages in models.items():
            run = work / "adedge-runs" / folder / model
            options = {} if table == DEFAULTS else {"backbone": "resnet18", "weights": "random", "stages": stages, "image_size": IMAGE_SIZE}
            if not (run / "run.json").is_file():
                train(brief_config(data, run, model, **options))
            precisions = ("fp32",) if table == DEFAULTS else ADEDGE_PRECISIONS
            bundles[(table, model)] = {p: _bundle(run, work / "adedge-bundles" / folder / f"{model}-{p}", p) for p in precisions}
    return bundles


def ran_in(convolutions: dict[str, int]) -> str:
    """'bf16', 'f32', or the mix, of the convolutions' runtime precisions."""
    if len(convolutions) == 1:
        return next(iter(convolutions)).lower()
    return " + ".join(f"{count} {name.lower()}" for name, count in sorted(convolutions.items()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "adedge-vs-anomalib")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--calls", type=int, default=50)
    parser.add_argument("--frame", type=int, default=900)
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    python = anomalib_python(args.work)
    xmls = anomalib_models(python, args.work)
    bundles = adedge_bundles(args.work)
    cells = []  # (table, model, label, python, toolkit, model file or why its export failed, precision)
    for model in MODELS:
        cells += [(SAME, model, "anomalib default", python, "anomalib", xmls[(SAME, model)], "default"),
                  (SAME, model, "anomalib f32", python, "anomalib", xmls[(SAME, model)], "f32")]
        for precision in ADEDGE_PRECISIONS:
            label = f"adedge {precision}" + {"fp32": " (ships)", "int8": " (accuracy bound lifted)"}.get(precision, "")
            cells.append((SAME, model, label, Path(sys.executable), "adedge", bundles[(SAME, model)][precision], "default"))
    for model in DEFAULT_MODELS:
        cells += [(DEFAULTS, model, "anomalib default", python, "anomalib", xmls[(DEFAULTS, model)], "default"),
                  (DEFAULTS, model, "adedge default (fp32, ships)", Path(sys.executable), "adedge", bundles[(DEFAULTS, model)]["fp32"], "default")]
    failed = {(c[0], c[1], c[2]): c[5] for c in cells if isinstance(c[5], str)}
    cells = [c for c in cells if not isinstance(c[5], str)]
    timings: dict[tuple[str, str, str], list[dict]] = {(c[0], c[1], c[2]): [] for c in cells}
    for round_ in range(args.rounds):
        for table, model, label, cell_python, toolkit, path, precision in (cells if round_ % 2 == 0 else cells[::-1]):
            command = [str(cell_python), str(ROOT / "vs_anomalib_timing.py"), toolkit, str(path), precision,
                       "--frame", str(args.frame), "--calls", str(args.calls)]
            # in the work folder: anomalib's inferencer writes an openvino_cache folder where it runs
            finished = subprocess.run(command, check=True, capture_output=True, text=True, cwd=args.work)
            measured = json.loads(finished.stdout.strip().splitlines()[-1])
            timings[(table, model, label)].append(measured)
            print(f"round {round_ + 1}: {table}: {model} {label}: {measured['p50_ms']:.1f} ms ({ran_in(measured['convolutions'])})", flush=True)
    machine = machine_description()
    rounds = " | ".join(f"round {r + 1} p50 ms" for r in range(args.rounds))
    header = [f"| model | cell | {rounds} | ran in | anomalib default / cell |", "|---|---|" + "---|" * args.rounds + "---|---|"]
    lines = [
        "# adedge against anomalib 2.7.0, side by side (one run)",
        "",
        f"Machine: {machine}. A decoded {args.frame}x{args.frame} frame to an image score and a {args.frame}x{args.frame} map, "
        f"batch 1, {args.calls} calls after warm-up, each cell a fresh process, all cells of both tables taking turns over "
        f"{args.rounds} rounds. 'ran in': the precision of the convolutions in OpenVINO's execution graph. Speed-up: "
        "anomalib's default over the cell, median of the rounds.",
        "",
        f"## Same backbone: resnet18 (random weights), {IMAGE_SIZE} px; DFM on layer3, CFLOW on layer2-4",
        "",
        *header,
        *_rows(timings, failed, SAME, args.rounds),
        "",
        "## Each toolkit at its defaults: anomalib's `Dfm()`, `Cflow()`, `Patchcore()` (weights not downloaded: "
        "`pre_trained=False`; PatchCore's bank the default 10 % coreset of 209 images' patches) against adedge's "
        "`--model dfm|cflow|patchcore` with every default (efficientnet_lite1, fp32 bundle)",
        "",
        *header,
        *_rows(timings, failed, DEFAULTS, args.rounds),
    ]
    write_results("vs_anomalib", {"machine": machine, "anomalib": ANOMALIB, "frame": args.frame, "calls": args.calls,
                                  "cells": [{"table": t, "model": m, "cell": c, "rounds": r} for (t, m, c), r in timings.items()],
                                  "failed": [{"table": t, "model": m, "cell": c, "why": w} for (t, m, c), w in failed.items()]}, lines)


def _rows(timings: dict[tuple[str, str, str], list[dict]], failed: dict[tuple[str, str, str], str], table: str, rounds: int) -> list[str]:
    """TABLE's rows: each cell's p50 per round, what it ran in and anomalib's default over it."""
    rows = []
    for (cell_table, model, label), measured in timings.items():
        if cell_table != table:
            continue
        p50 = median(m["p50_ms"] for m in measured)
        reference = median(m["p50_ms"] for m in timings[(table, model, "anomalib default")])
        rows.append(f"| {model} | {label} | " + " | ".join(f"{m['p50_ms']:.1f}" for m in measured)
                    + f" | {ran_in(measured[0]['convolutions'])} | {reference / p50:.2f}x |")
    rows += [f"| {model} | {label} | " + " | ".join(["-"] * rounds) + f" | {why} | - |"
             for (cell_table, model, label), why in failed.items() if cell_table == table]
    return rows

if __name__ == "__main__":
    main()
