"""What each precision does to verdicts and latency, on trained runs, in one run.

For every run given (e.g. the runs benchmarks/operating_point.py keeps in its --work folder), export
fp32, auto and bf16 OpenVINO bundles and compare, on every test image of the run's category, each
precision's verdicts (OK / CHECK / NG at the bundle's cut-offs) with fp32's: through adedge's
runtime (which asks for the precision's hint), and through plain OpenVINO compiling the IR with its
default settings and with an explicit f32 hint. Then the frame-to-result latency of each precision
(batch 1, a frame of the category's own size from its test set, the precisions taking turns call
by call).

    .venv/bin/python benchmarks/mixed_precision.py RUN... [--data ../shared/data/mvtec] [--iterations 100]

Writes benchmarks/results/mixed_precision.md and .json.
"""

import argparse
import tempfile
from functools import partial
from pathlib import Path

import numpy as np
import openvino as ov
from common import machine_description, turns_ms, write_results

from adedge.data.datasets import open_dataset
from adedge.data.images import load_image
from adedge.export.exporter import export_bundle
from adedge.formats import RUN_FORMAT_VERSION, RunInfo, read_record
from adedge.runtime import Model

ROOT = Path(__file__).resolve().parent
PRECISIONS = ("fp32", "auto", "bf16")
CLIENTS = {"plain OpenVINO, defaults": {}, "plain OpenVINO, f32 hint": {"INFERENCE_PRECISION_HINT": "f32"}}


def _labels(model: Model, frames: list[np.ndarray]) -> list[str]:
    return [str(model.predict(frame).label) for frame in frames]


def _plain_labels(bundle: Path, config: dict, model: Model, frames: list[np.ndarray]) -> list[str]:
    """Verdicts of OpenVINO compiling model.xml itself with CONFIG, cut by the bundle's operating point."""
    compiled = ov.Core().compile_model(str(bundle / "model.xml"), "CPU", config)
    return [str(model.point.decide(float(compiled({0: frame[None]})[compiled.output("pred_score")][0])).label) for frame in frames]


def measure(run: Path, data: Path, work: Path, iterations: int) -> list[dict]:
    info = read_record(RunInfo, run / "run.json", RUN_FORMAT_VERSION)
    category = data / info.dataset.category
    frames = [load_image(s.path) for s in open_dataset(category).test]
    models = {}
    for precision in PRECISIONS:
        bundle = work / f"{category.name}-{info.model}-{precision}"
        export_bundle(run, bundle, "openvino", precision)
        models[precision] = Model.load(bundle)
    reference = _labels(models["fp32"], frames)
    times = turns_ms({name: partial(model.predict, frames[0]) for name, model in models.items()}, iterations)
    latency = {name: float(np.percentile(t, 50)) for name, t in times.items()}
    rows = []
    for precision, model in models.items():
        bundle = work / f"{category.name}-{info.model}-{precision}"
        verdicts = {"adedge runtime": _labels(model, frames)} | {
            client: _plain_labels(bundle, config, model, frames) for client, config in CLIENTS.items()}
        row = {"category": category.name, "model": f"{info.model} ({info.backbone}, {info.image_size[0]} px)", "precision": precision,
               "frames": len(frames), "frame": "x".join(map(str, frames[0].shape[1::-1])), "p50_ms": latency[precision],
               "ran_as": model.engine.compiled.get_property("INFERENCE_PRECISION_HINT").get_type_name()}
        for client, labels in verdicts.items():
            changed = [(a, b) for a, b in zip(reference, labels) if a != b]
            row[client] = {"changed": len(changed), "outside_check": sum("OK" in pair and "NG" in pair for pair in changed)}
        rows.append(row)
        print(row, flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", type=Path, nargs="+")
    parser.add_argument("--data", type=Path, default=ROOT.parent.parent / "shared" / "data" / "mvtec")
    parser.add_argument("--iterations", type=int, default=100)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as work:
        rows = [row for run in args.runs for row in measure(run, args.data, Path(work), args.iterations)]
    machine = machine_description()
    clients = ["adedge runtime", *CLIENTS]
    lines = [
        "# Verdicts and latency per precision (OpenVINO bundles of trained runs)",
        "",
        f"Machine: {machine}. Verdicts changed against the fp32 bundle on every test image (of them, OK <-> NG: "
        "changes that do not pass through CHECK); p50 ms from a decoded frame of the category's size to a Result, batch 1, "
        f"the precisions taking turns, {args.iterations} calls each, one run.",
        "",
        f"| category | model | precision | runs as | {' | '.join(clients)} | frame | p50 ms |",
        "|---|---|---|---|" + "---|" * len(clients) + "---|---|",
    ]
    for r in rows:
        changed = " | ".join(f"{r[c]['changed']}/{r['frames']} ({r[c]['outside_check']})" for c in clients)
        lines.append(f"| {r['category']} | {r['model']} | {r['precision']} | {r['ran_as']} | {changed} | {r['frame']} | {r['p50_ms']:.1f} |")
    write_results("mixed_precision", {"machine": machine, "rows": rows}, lines)


if __name__ == "__main__":
    main()
