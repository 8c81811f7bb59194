"""`adedge eval`: run a bundle over a labelled folder and compute the metrics on what ships.

The verdict metrics (F1, good parts rejected, defects missed) are taken at the model's run-time
threshold, the bundle's unless moved, so an engineer sees what a threshold would do on the line.
"""

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from adedge.data.datasets import Sample, ground_truth, has_masks, open_dataset, require_test_images
from adedge.errors import AdedgeError
from adedge.metrics import evaluate
from adedge.progress import Track, no_progress
from adedge.runtime.model import Model, Verdicts


@dataclass(frozen=True)
class Evaluation:
    """Every test image's outcome (for the metrics and the report): scores [N] and labels [N]
    (True = defective), maps [N, h, w] at the model's size and masks like them (None without masks)."""

    samples: list[Sample]
    scores: np.ndarray
    labels: np.ndarray
    maps: np.ndarray
    masks: np.ndarray | None
    verdicts: Verdicts
    metrics: dict[str, float | int]


def verdicts_at(scores: np.ndarray, verdicts: Verdicts) -> np.ndarray:
    """Each score's label (OK, CHECK or NG) at the VERDICTS' cut-offs."""
    return np.array([verdicts.label(float(score)) for score in scores])


def verdict_counts(scores: np.ndarray, labels: np.ndarray, verdicts: Verdicts) -> dict[str, float | int]:
    """Good parts rejected (NG) and defects missed (OK, not even CHECK) at the VERDICTS' cut-offs."""
    called = verdicts_at(scores, verdicts)
    good, defective = ~labels, labels
    counts = {
        "threshold": verdicts.threshold,
        "good_rejected": int((called[good] == "NG").sum()),
        "good_rejected_rate": float((called[good] == "NG").mean()) if good.any() else float("nan"),
        "defects_missed": int((called[defective] == "OK").sum()),
        "defects_missed_rate": float((called[defective] == "OK").mean()) if defective.any() else float("nan"),
    }
    if verdicts.warn is not None:
        counts |= {"warn": verdicts.warn, "good_checked": int((called[good] == "CHECK").sum()),
                   "defects_checked": int((called[defective] == "CHECK").sum())}
    return counts


def run_evaluation(
    model: Model, data: Path | str, category: str | None = None, batch_size: int = 8, track: Track = no_progress
) -> Evaluation:
    """Run MODEL on the labelled test images of DATA. Frames go in as they are; maps are compared
    with the masks at the model's size (the anomaly map's). Refuses non-finite scores: no metric of
    a broken model is worth reporting."""
    samples = require_test_images(open_dataset(data, category))
    masked = has_masks(samples)
    size = model.input_size
    batches = [samples[i : i + batch_size] for i in range(0, len(samples), batch_size)]
    maps, scores, masks = [], [], []
    for batch in track(batches, "evaluating"):
        results = model.predict_batch([s.path for s in batch], batch_size)
        maps += [r.model_map for r in results]
        scores += [r.score for r in results]
        masks += [ground_truth(s, size) for s in batch]
    scores_array = np.array(scores)
    broken = [s.path.name for s, score in zip(samples, scores_array) if not np.isfinite(score)]
    if broken:
        raise AdedgeError(
            f"the bundle returned non-finite scores for {len(broken)} of {len(samples)} images ({', '.join(broken[:3])}"
            f"{', ...' if len(broken) > 3 else ''}): it is broken; retrain or re-export it"
        )
    labels = np.array([s.anomalous for s in samples])
    map_array, mask_array = np.stack(maps), np.stack(masks) if masked else None
    metrics = evaluate(scores_array, labels, map_array if masked else None, mask_array, model.verdicts.threshold)
    metrics |= verdict_counts(scores_array, labels, model.verdicts) | {"images": len(samples), "anomalous": int(labels.sum())}
    return Evaluation(samples, scores_array, labels, map_array, mask_array, model.verdicts, metrics)


def evaluate_bundle(
    model: Model, data: Path | str, category: str | None = None, batch_size: int = 8, track: Track = no_progress
) -> dict[str, float | int]:
    """Image AUROC, pixel AUROC, F1-max, PRO, and F1, good-reject and miss rates at the threshold."""
    return run_evaluation(model, data, category, batch_size, track).metrics
