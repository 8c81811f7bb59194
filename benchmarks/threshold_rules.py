"""How the shipped threshold's rule holds, beside rules on good images alone.

For each trained run in WORK (as benchmarks/accuracy.py --work leaves them, one per category and
model), score its held-back good training images, the synthetic defects that calibration draws on
them, and its category's test images with the trained detector (raw scores, before calibration),
then for each rule: the F1 gap to F1-max, the share of good test parts rejected and of defects
missed. The rules: equal errors between held-back good images and synthetic defects, at least
median + 1 robust sigma (what ships), the same without that floor, and median + k robust sigmas of
the held-back good images (k = 2 shipped before). The test images
only measure the rules, they never set them.

    .venv/bin/python benchmarks/threshold_rules.py --work DIR [--data ../shared/data/mvtec] [--name threshold_rules]

Writes benchmarks/results/NAME.md and .json (default threshold_rules).
"""

import argparse
from pathlib import Path

import numpy as np
from common import machine_description, write_results

from adedge.data.datasets import Sample, open_dataset, require_test_images
from adedge.formats import RUN_FORMAT_VERSION, RunInfo, read_record
from adedge.metrics import f1_at, f1_max
from adedge.progress import no_progress
from adedge.train.calibration import FLOOR_SIGMAS, calibrate_on_good, equal_error_threshold, good_threshold
from adedge.train.checkpoint import load_run
from adedge.train.trainer import _raw, good_and_defect_scores

ROOT = Path(__file__).resolve().parent
SHIPPED = f"equal errors, synthetic defects (at least median + {FLOOR_SIGMAS:g} robust sigma)"
KS = (1.0, 1.5, 2.0, 3.0)


def measure(run: Path, data: Path) -> list[dict]:
    info = read_record(RunInfo, run / "run.json", RUN_FORMAT_VERSION)
    detector, _ = load_run(run)
    category = data / info.dataset.category  # the run's root may be relative to where it was trained
    held, maxima, defects = good_and_defect_scores(detector, [Sample(category / p, False) for p in info.dataset.held_back], info.seed, 16)
    test = require_test_images(open_dataset(category))
    _, scores = _raw(detector, test, 16, no_progress, "scoring")
    labels = np.array([s.anomalous for s in test])
    best, _ = f1_max(scores, labels)
    rules = {SHIPPED: calibrate_on_good(held, maxima, defects).score_threshold, "equal errors alone (no floor)": equal_error_threshold(held, defects)}
    rules |= {f"median + {k:g} robust sigma": good_threshold(held, k) for k in KS}
    return [{"category": info.dataset.category, "model": info.model, "rule": rule, "f1_max": best, "f1": f1_at(scores, labels, threshold),
             "good_rejected": float((scores[~labels] > threshold).mean()), "defects_missed": float((scores[labels] <= threshold).mean()),
             "held_back": len(held), "synthetic_defects": len(defects)} for rule, threshold in rules.items()]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work", type=Path, required=True, help="The --work folder of benchmarks/accuracy.py.")
    parser.add_argument("--data", type=Path, default=ROOT.parent.parent / "shared" / "data" / "mvtec")
    parser.add_argument("--name", default="threshold_rules", help="Results file name (without suffix).")
    args = parser.parse_args()
    runs = sorted(p.parent for p in args.work.glob("*/run.json"))
    if not runs:
        raise SystemExit(f"no trained runs under {args.work}: run benchmarks/accuracy.py --work {args.work} first")
    rows = [row for run in runs for row in measure(run, args.data)]
    machine = machine_description()
    lines = [
        "# The threshold without defect images: the shipped rule beside rules on good images alone",
        "",
        f"`{SHIPPED}` ships: the threshold where the share of held-back good training images above it equals the share of "
        "synthetic defects (drawn on those images) at or below it, but never below the good images' median + "
        f"{FLOOR_SIGMAS:g} robust sigma. F1 gap = F1-max - F1 at the threshold (target: at most 0.05); "
        f"good rejected and defects missed: shares of the test set. Machine: {machine}.",
        "",
        "| category | model | rule | F1-max | F1 | F1 gap | good rejected | defects missed |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        mark = " (ships)" if r["rule"] == SHIPPED else ""
        lines.append(f"| {r['category']} | {r['model']} | {r['rule']}{mark} | {r['f1_max']:.3f} | {r['f1']:.3f} | {r['f1_max'] - r['f1']:.3f} | "
                     f"{r['good_rejected']:.2f} | {r['defects_missed']:.2f} |")
    write_results(args.name, {"machine": machine, "rows": rows}, lines)


if __name__ == "__main__":
    main()
