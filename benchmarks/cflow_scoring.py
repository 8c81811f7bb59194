"""How a trained CFLOW's stage likelihoods become a map and a score: every normalisation, one model.

For each CFLOW run folder given (as `adedge train` or benchmarks/accuracy.py --work leave them, on
MVTec categories or the synthetic plates), compute each stage's log-likelihood on the run's own fit
images, held-back images and its dataset's test images with the run's flows, then for every
normalisation (the paper's exp(log p - max), the raw log-likelihood, training z-scores, z-scores
clipped at C, and the shipped clipped map scored from the unclipped z-scores) and the top-1% mean:
image and pixel AUROC, and the image F1 gap at the
threshold that median + calibration.SIGMAS robust sigmas of the held-back images' scores would set (the
rule on good images alone that shipped before synthetic defects set the threshold).
Nothing is retrained, so every row compares the same flows.

    .venv/bin/python benchmarks/cflow_scoring.py RUN [RUN ...] [--name cflow_scoring]

Writes benchmarks/results/NAME.md and .json.
"""

import argparse
from pathlib import Path

import numpy as np
import torch
from cflow_ablation import features_of, log_likelihoods, score, stage_maps
from common import held_back_split, machine_description, write_results

from adedge.data.datasets import ground_truth, open_dataset, require_test_images, require_train_images
from adedge.metrics import auroc, f1_at, f1_max
from adedge.train.calibration import SIGMAS, good_threshold
from adedge.train.cflow import Z_CLIP
from adedge.train.checkpoint import load_run

NORMALISATIONS = ("train max", "log", "train z", "train z clip 3", "train z clip 4", "train z clip 5", "train z clip 6", "train z clip 8")
SHIPPED = f"train z clip {Z_CLIP:g}"
# issue 32's variant: the map clipped as shipped, the image score from the unclipped z-scores (a thin,
# strong defect outscores texture that also reaches the clip; the top-1% mean still averages out one hot pixel)
UNCLIPPED_SCORE = f"{SHIPPED}, score unclipped"


def measure(run: Path) -> list[dict]:
    detector, info = load_run(run)
    if info.model != "cflow":
        raise SystemExit(f"{run} holds a {info.model} run, not cflow")
    dataset = open_dataset(info.dataset.root)  # the category folder itself
    fit_samples, held_back = held_back_split(require_train_images(dataset), info.seed)
    test = require_test_images(dataset)
    size = detector.image_size[0]
    fit, held, tested = (log_likelihoods(detector.head, features_of(detector.encoder, s)) for s in (fit_samples, held_back, test))
    labels = np.array([s.anomalous for s in test])
    masks = np.stack([ground_truth(s, detector.image_size) for s in test]) if all(s.mask_path for s in test if s.anomalous) else None
    rows = []
    for normalisation in (*NORMALISATIONS, UNCLIPPED_SCORE):
        maps = stage_maps(tested, fit, size, SHIPPED if normalisation == UNCLIPPED_SCORE else normalisation)
        scored = "train z" if normalisation == UNCLIPPED_SCORE else normalisation
        scores, held_scores = (score(stage_maps(log_p, fit, size, scored), "top 1% mean") for log_p in (tested, held))
        threshold = good_threshold(held_scores)
        best, _ = f1_max(scores, labels)
        rows.append({"run": run.name, "category": info.dataset.category or Path(info.dataset.root).name, "normalisation": normalisation,
                     "image_auroc": auroc(labels, scores), "pixel_auroc": auroc(masks, maps.numpy()) if masks is not None else None,
                     "f1_max": best, "f1": f1_at(scores, labels, threshold)})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", type=Path, nargs="+", help="CFLOW run folders.")
    parser.add_argument("--name", default="cflow_scoring")
    args = parser.parse_args()
    torch.set_grad_enabled(False)
    rows = [row for run in args.runs for row in measure(run)]
    machine = machine_description()
    lines = [
        "# CFLOW: how stage likelihoods become the map (each run's own flows, top-1% mean image score)",
        "",
        f"`{SHIPPED}` ships. F1 gap: F1-max minus F1 at median + {SIGMAS:g} robust sigmas of the held-back images' scores. "
        f"Machine: {machine}.",
        "",
        "| run | normalisation | image AUROC | pixel AUROC | F1-max | F1 gap |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        pixel = "n/a" if r["pixel_auroc"] is None else f"{r['pixel_auroc']:.4f}"
        mark = " (ships)" if r["normalisation"] == SHIPPED else ""
        lines.append(f"| {r['run']} | {r['normalisation']}{mark} | {r['image_auroc']:.4f} | {pixel} | {r['f1_max']:.4f} | {r['f1_max'] - r['f1']:.4f} |")
    write_results(args.name, {"machine": machine, "rows": rows}, lines)


if __name__ == "__main__":
    main()
