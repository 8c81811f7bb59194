"""Helpers shared by the benchmark scripts: timing torch eager like `adedge bench` times a bundle."""

import json
import os
import random
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from adedge.data.synthetic import generate_synthetic
from adedge.export.exporter import export_bundle
from adedge.formats import RUN_FORMAT_VERSION, RunInfo, read_record
from adedge.train.models import MODEL_NAMES
from adedge.train.trainer import TrainConfig, train

WARMUP = 20
# timing does not depend on what was learned: latency benchmarks fit each model as briefly as it allows
BRIEF_SETTINGS = {"cflow": {"meta_epochs": 1, "sub_epochs": 1, "warmup_meta_epochs": 0}}


def held_back_split(samples: list, seed: int, share: float = 0.1) -> tuple[list, list]:
    """A seeded SHARE (at least 2) of SAMPLES held back from fitting, as training did before it
    calibrated out of fold: the ablations compare heads on the same held-back images."""
    held = max(2, round(len(samples) * share))
    shuffled = random.Random(seed).sample(samples, len(samples))
    return sorted(shuffled[held:], key=lambda s: s.path), sorted(shuffled[:held], key=lambda s: s.path)


def trained_bundle(data: Path, folder: Path, model: str) -> tuple[RunInfo, Path]:
    """Train MODEL at its defaults on DATA into FOLDER/run (reused if there) and export FOLDER/bundle (fp32 OpenVINO)."""
    run, bundle = folder / "run", folder / "bundle"
    info = read_record(RunInfo, run / "run.json", RUN_FORMAT_VERSION) if (run / "run.json").is_file() else train(TrainConfig(data, run, model=model))
    if not (bundle / "adedge.json").is_file():
        export_bundle(run, bundle, "openvino", "fp32")
    return info, bundle


def brief_config(data: Path, run: Path, model: str, **options) -> TrainConfig:
    """A TrainConfig that fits MODEL as briefly as it allows (for timing, not accuracy)."""
    return TrainConfig(data, run, model=model, settings=BRIEF_SETTINGS.get(model, {}), **options)


def brief_runs(work: Path) -> Iterator[tuple[str, Path]]:
    """(model, run folder) of each registered model, fitted briefly on a few synthetic images."""
    data = generate_synthetic(work / "data", train=6, test_good=0, per_defect=0)
    for model in MODEL_NAMES:
        run = work / model
        train(brief_config(data, run, model))
        yield model, run


def per_category(data: Path, models: str, work: Path | None, measure: Callable[[Path, str, Path], list[dict]]) -> list[dict]:
    """The rows of MEASURE(category, model, work folder) for every MVTec category under DATA and
    every model of MODELS (comma-separated); runs are kept in WORK (None: a temporary folder)."""
    categories = sorted(d for d in data.iterdir() if (d / "train" / "good").is_dir()) if data.is_dir() else []
    if not categories:
        raise SystemExit(f"no MVTec categories under {data}")
    rows = []
    with tempfile.TemporaryDirectory() as scratch:
        folder = work or Path(scratch)
        folder.mkdir(parents=True, exist_ok=True)
        for category in categories:
            for model in models.split(","):
                rows += measure(category, model, folder)
    return rows


def turns_ms(calls: dict[str, Callable[[], object]], iterations: int) -> dict[str, list[float]]:
    """Milliseconds of each of CALLS, ITERATIONS times after WARMUP, the calls taking turns call by call
    (this machine's speed drifts, so calls timed one after the other would not compare)."""
    times: dict[str, list[float]] = {name: [] for name in calls}
    for index in range(iterations + WARMUP):
        for name, call in calls.items():
            start = time.perf_counter()
            call()
            if index >= WARMUP:
                times[name].append((time.perf_counter() - start) * 1000.0)
    return times


def machine_description() -> str:
    """The CPU as OpenVINO sees it, so that every result says what it was measured on."""
    import openvino as ov

    core = ov.Core()
    capabilities = ", ".join(core.get_property("CPU", "OPTIMIZATION_CAPABILITIES"))
    return f"{core.get_property('CPU', 'FULL_DEVICE_NAME')} ({capabilities}), {os.cpu_count()} cores"


def folder_mb(folder) -> float:
    return sum(p.stat().st_size for p in folder.iterdir()) / 1e6


PACKAGES = ("adedge", "torch", "openvino", "onnxruntime", "numpy", "nncf", "scikit-learn", "kserve")


def provenance() -> dict:
    """What a result was measured with: the commit (and whether the tree differed from it), the
    command line, the CPU and OpenVINO's capabilities, and the packages' versions."""
    from importlib import metadata

    def git(*args: str) -> str:
        done = subprocess.run(["git", *args], capture_output=True, text=True, cwd=Path(__file__).resolve().parent)
        return done.stdout.strip() if done.returncode == 0 else "unknown"

    versions = {}
    for package in PACKAGES:
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = None
    return {"commit": git("rev-parse", "--short", "HEAD"), "dirty": bool(git("status", "--porcelain", "--untracked-files=no")),
            "command": " ".join(["python", _from_root(sys.argv[0]), *sys.argv[1:]]), "machine": machine_description(), "packages": versions}


def _from_root(script: str) -> str:
    """SCRIPT's path from the repository's root (benchmarks/NAME.py), wherever it was run from."""
    path = Path(script).resolve()
    root = Path(__file__).resolve().parent.parent
    return str(path.relative_to(root)) if path.is_relative_to(root) else script


def write_results(name: str, record: dict | list, lines: list[str]) -> None:
    """Save RECORD (with its provenance) as results/NAME.json and the table LINES, under a line
    naming the commit and command, as results/NAME.md, and print the table."""
    results = Path(__file__).resolve().parent / "results"
    results.mkdir(exist_ok=True)
    origin = provenance()
    dirty = " (with uncommitted changes)" if origin["dirty"] else ""
    lines = [*lines[:1], "", f"Measured at commit {origin['commit']}{dirty} with `{origin['command']}`.", *lines[1:]]
    body = record if isinstance(record, dict) else {"rows": record}
    (results / f"{name}.json").write_text(json.dumps({"provenance": origin, **body}, indent=2) + "\n")
    (results / f"{name}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
