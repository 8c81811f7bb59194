"""Anomaly detection metrics: image and pixel AUROC, F1 (best and at a threshold) and PRO.

Torch-free and written in numpy (no scikit-learn on the line-side PC), so the runtime's `eval` and
the trainer's calibration compute them the same way.
"""

import cv2
import numpy as np


def auroc(labels: np.ndarray, scores: np.ndarray) -> float:
    """Area under the ROC curve: the chance that a random positive outscores a random negative,
    ties counting half (the Mann-Whitney statistic, equal to the trapezoidal ROC area)."""
    labels = np.asarray(labels, bool).ravel()
    positives = int(labels.sum())
    negatives = labels.size - positives
    if positives == 0 or negatives == 0:
        raise ValueError("AUROC needs both positive and negative labels")
    _, inverse, counts = np.unique(np.asarray(scores).ravel(), return_inverse=True, return_counts=True)
    average_rank = np.cumsum(counts) - (counts - 1) / 2.0  # 1-based, ties share their mean rank
    rank_sum = average_rank[inverse[labels]].sum()
    return float((rank_sum - positives * (positives + 1) / 2.0) / (positives * negatives))


def ranked_counts(scores: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For flagging every score >= each distinct score, the highest first: that score, the true
    positives among the flagged and the number flagged (the points of F1, ROC and PR curves)."""
    scores, labels = np.asarray(scores, np.float64), np.asarray(labels, bool)
    order = np.argsort(-scores, kind="stable")
    ranked = scores[order]
    last_of_value = np.r_[np.flatnonzero(np.diff(ranked)), ranked.size - 1]
    return ranked[last_of_value], np.cumsum(labels[order])[last_of_value], last_of_value + 1


def f1_max(scores: np.ndarray, labels: np.ndarray) -> tuple[float, float]:
    """The best F1 over all thresholds, and the threshold that reaches it (score > threshold = anomalous)."""
    values, true_positives, flagged = ranked_counts(scores, labels)
    f1 = 2 * true_positives / (flagged + np.asarray(labels, bool).sum())
    best = int(np.argmax(f1))
    # "score >= t" flags these images; step just below t so that "> threshold" agrees
    return float(f1[best]), float(np.nextafter(values[best], -np.inf))


def f1_at(scores: np.ndarray, labels: np.ndarray, threshold: float) -> float:
    """F1 of flagging score > THRESHOLD (0 where nothing is flagged and nothing is anomalous)."""
    flagged, labels = np.asarray(scores) > threshold, np.asarray(labels, bool)
    denominator = flagged.sum() + labels.sum()
    return float(2 * (flagged & labels).sum() / denominator) if denominator else 0.0


def pro_score(maps: np.ndarray, masks: np.ndarray, fpr_limit: float = 0.3, steps: int = 300) -> float:
    """Area under the per-region-overlap curve up to FPR_LIMIT, divided by FPR_LIMIT (MVTec AD's PRO).

    Each connected defect region counts equally, however small, unlike pixel AUROC.
    """
    regions = np.zeros(masks.shape, dtype=np.int64)
    count = 0
    for index, mask in enumerate(masks):
        found, labels = cv2.connectedComponents(mask.astype(np.uint8), connectivity=8)
        regions[index] = np.where(labels > 0, labels + count, 0)
        count += found - 1
    if count == 0:
        return float("nan")
    background = maps[~masks]
    thresholds = np.quantile(background, np.linspace(1.0 - fpr_limit, 1.0, steps))
    fpr = 1.0 - np.searchsorted(np.sort(background), thresholds, side="right") / background.size
    ids = regions[masks] - 1
    above = np.searchsorted(thresholds, maps[masks], side="left")  # thresholds strictly below each pixel
    hist = np.bincount(ids * (steps + 1) + above, minlength=count * (steps + 1)).reshape(count, steps + 1)
    exceeding = np.cumsum(hist[:, ::-1], axis=1)[:, ::-1][:, 1:]  # pixels above threshold i, per region
    overlap = (exceeding / hist.sum(axis=1, keepdims=True)).mean(axis=0)
    order = np.argsort(fpr)
    fpr, overlap = np.append(fpr[order], fpr_limit), np.append(overlap[order], overlap[order][-1])
    keep = fpr <= fpr_limit
    return float(np.trapezoid(overlap[keep], fpr[keep]) / fpr_limit)


def evaluate(
    scores: np.ndarray,
    labels: np.ndarray,
    maps: np.ndarray | None = None,
    masks: np.ndarray | None = None,
    threshold: float = 0.5,
) -> dict[str, float]:
    """All metrics for SCORES [N] vs LABELS [N] (1 = anomalous) and, if given, MAPS vs MASKS [M, H, W]."""
    labels = np.asarray(labels).astype(bool)
    scores = np.asarray(scores, dtype=np.float64)
    best_f1, _ = f1_max(scores, labels)
    results = {
        "image_auroc": auroc(labels, scores),
        "image_f1_max": best_f1,
        "image_f1": f1_at(scores, labels, threshold),
        "pixel_auroc": float("nan"),
        "pro": float("nan"),
    }
    if maps is not None and masks is not None and masks.any() and not masks.all():
        results["pixel_auroc"] = auroc(masks, maps)
        results["pro"] = pro_score(maps, masks)
    return results
