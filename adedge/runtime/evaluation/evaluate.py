"""`adedge eval`: run a bundle over a labelled folder and compute the metrics on what ships.

The verdicts are judged as a plant judges them, at the model's run-time cut-offs (the bundle's unless
moved): good parts rejected (NG) and sent to CHECK, defects missed (OK: neither NG nor CHECK); beside
them the ceiling, the defects a threshold chosen on these very test images would miss at the same
share of good parts rejected. AUROC, F1 and PRO follow.
"""

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from adedge.data.datasets import Sample, ground_truth, has_masks, open_dataset, require_test_images
from adedge.errors import AdedgeError
from adedge.metrics import evaluate
from adedge.progress import Track, no_progress
from adedge.runtime.inference.model import Model
from adedge.runtime.inference.verdict import Label, OperatingPoint


@dataclass(frozen=True)
class Evaluation:
    """Every test image's outcome (for the metrics and the report): scores [N] and labels [N]
    (True = defective), maps [N, h, w] at the model's size and masks like them (None without masks)."""

    samples: list[Sample]
    scores: np.ndarray
    labels: np.ndarray
    maps: np.ndarray
    masks: np.ndarray | None
    point: OperatingPoint
    metrics: dict[str, float | int]


def verdicts_at(scores: np.ndarray, point: OperatingPoint) -> np.ndarray:
    """Each score's label (OK, CHECK or NG) at POINT's cut-offs."""
    return np.array([point.decide(float(score)).label.value for score in scores])


def _rate(count: int, total: int) -> float:
    return count / total if total else float("nan")


def ceiling_missed(scores: np.ndarray, labels: np.ndarray, rejected: int) -> int:
    """The defects a threshold chosen on these SCORES would miss while rejecting no more than
    REJECTED of the good ones: the best any threshold could do at that false-reject rate."""
    good = np.sort(scores[~labels])[::-1]
    cut = good[rejected] if rejected < len(good) else -np.inf
    return int((scores[labels] <= cut).sum())


def verdict_counts(scores: np.ndarray, labels: np.ndarray, point: OperatingPoint) -> dict[str, float | int]:
    """Good parts rejected (NG) and in CHECK, defects missed (OK: neither NG nor CHECK) and sent to
    CHECK at POINT's cut-offs, and the ceiling's defects missed at the same good parts rejected."""
    called = verdicts_at(scores, point)
    good, defective = called[~labels], called[labels]
    rejected = int((good == Label.NG).sum())
    ceiling = ceiling_missed(scores, labels, rejected)
    counts = {"threshold": point.threshold, "check": point.check, "good": len(good), "defects": len(defective)}
    for name, group, label in (("good_rejected", good, Label.NG), ("good_checked", good, Label.CHECK),
                               ("defects_missed", defective, Label.OK), ("defects_checked", defective, Label.CHECK)):
        count = int((group == label).sum())
        counts |= {name: count, f"{name}_rate": _rate(count, len(group))}
    return counts | {"ceiling_defects_missed": ceiling, "ceiling_defects_missed_rate": _rate(ceiling, len(defective))}


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
    metrics = verdict_counts(scores_array, labels, model.point) | {"images": len(samples), "anomalous": int(labels.sum())}
    metrics |= evaluate(scores_array, labels, map_array if masked else None, mask_array, model.point.threshold)
    return Evaluation(samples, scores_array, labels, map_array, mask_array, model.point, metrics)


def evaluate_bundle(
    model: Model, data: Path | str, category: str | None = None, batch_size: int = 8, track: Track = no_progress
) -> dict[str, float | int]:
    """Good parts rejected and checked, defects missed (and the ceiling), image and pixel AUROC, F1, PRO."""
    return run_evaluation(model, data, category, batch_size, track).metrics
