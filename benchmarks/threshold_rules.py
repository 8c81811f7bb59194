"""How the shipped threshold's rule holds: median + k robust sigmas of the held-back good images.

For each trained run in WORK (as benchmarks/accuracy.py --work leaves them, one per category and
model), score its held-back good training images and its category's test images with the trained
detector (raw scores, before calibration), then for each k: the F1 gap to F1-max, the share of good
test parts rejected and of defects missed. k = calibration.SIGMAS is what ships; the test images
only measure the rule, they never set it.

    .venv/bin/python benchmarks/threshold_rules.py --work DIR [--data ../shared/data/mvtec]

Writes benchmarks/results/threshold_rules.md and .json.
"""

import argparse
from pathlib import Path

import numpy as np
import torch
from common import machine_description, write_results

from adedge.data.datasets import Sample, open_dataset, require_test_images
from adedge.formats import RUN_FORMAT_VERSION, RunInfo, read_record
from adedge.metrics import f1_at, f1_max
from adedge.progress import no_progress
from adedge.train.calibration import SIGMAS, robust_sigma
from adedge.train.checkpoint import load_run
from adedge.train.trainer import _run

ROOT = Path(__file__).resolve().parent
KS = (1.0, 1.5, SIGMAS, 2.5, 3.0)


def _raw_scores(detector, samples: list[Sample]) -> np.ndarray:
    return torch.cat([score for _, score in _run(detector.raw, samples, 16, no_progress, "scoring")]).numpy()


def measure(run: Path, data: Path) -> list[dict]:
    info = read_record(RunInfo, run / "run.json", RUN_FORMAT_VERSION)
    detector, _ = load_run(run)
    category = data / info.dataset.category  # the run's root may be relative to where it was trained
    held = _raw_scores(detector, [Sample(category / p, False) for p in info.dataset.held_back])
    test = require_test_images(open_dataset(category))
    scores, labels = _raw_scores(detector, test), np.array([s.anomalous for s in test])
    best, _ = f1_max(scores, labels)
    median, sigma = np.median(held), robust_sigma(held)
    rows = []
    for k in KS:
        threshold = median + k * sigma
        rows.append({"category": info.dataset.category, "model": info.model, "k": k, "f1_max": best, "f1": f1_at(scores, labels, threshold),
                     "good_rejected": float((scores[~labels] > threshold).mean()), "defects_missed": float((scores[labels] <= threshold).mean()),
                     "held_back": len(held)})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work", type=Path, required=True, help="The --work folder of benchmarks/accuracy.py.")
    parser.add_argument("--data", type=Path, default=ROOT.parent.parent / "shared" / "data" / "mvtec")
    args = parser.parse_args()
    runs = sorted(p.parent for p in args.work.glob("*/run.json"))
    if not runs:
        raise SystemExit(f"no trained runs under {args.work}: run benchmarks/accuracy.py --work {args.work} first")
    rows = [row for run in runs for row in measure(run, args.data)]
    machine = machine_description()
    lines = [
        "# The shipped threshold's rule: median + k robust sigmas of held-back good training images",
        "",
        f"k = {SIGMAS:g} ships. F1 gap = F1-max - F1 at the threshold (target: at most 0.05); good rejected and defects missed: "
        f"shares of the test set. Machine: {machine}.",
        "",
        "| category | model | k | F1-max | F1 | F1 gap | good rejected | defects missed |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        mark = " (ships)" if r["k"] == SIGMAS else ""
        lines.append(f"| {r['category']} | {r['model']} | {r['k']:g}{mark} | {r['f1_max']:.3f} | {r['f1']:.3f} | {r['f1_max'] - r['f1']:.3f} | "
                     f"{r['good_rejected']:.2f} | {r['defects_missed']:.2f} |")
    write_results("threshold_rules", {"machine": machine, "rows": rows}, lines)


if __name__ == "__main__":
    main()
