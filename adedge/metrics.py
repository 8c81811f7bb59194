"""Anomaly detection metrics: image and pixel AUROC, F1 (best and at a threshold) and PRO.

Torch-free, so the runtime's `eval` and the trainer's calibration compute them the same way.
"""

import cv2
import numpy as np
from sklearn.metrics import f1_score, precision_recall_curve, roc_auc_score


def f1_max(scores: np.ndarray, labels: np.ndarray) -> tuple[float, float]:
    """The best F1 over all thresholds, and the threshold that reaches it (score > threshold = anomalous)."""
    precision, recall, thresholds = precision_recall_curve(labels, scores)
    f1 = 2 * precision * recall / np.maximum(precision + recall, 1e-12)
    best = int(np.argmax(f1[:-1]))
    # precision_recall_curve counts score >= t as positive; step just below t so that "> threshold" agrees
    return float(f1[best]), float(np.nextafter(thresholds[best], -np.inf))


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
        "image_auroc": float(roc_auc_score(labels, scores)),
        "image_f1_max": best_f1,
        "image_f1": float(f1_score(labels, scores > threshold, zero_division=0.0)),
        "pixel_auroc": float("nan"),
        "pro": float("nan"),
    }
    if maps is not None and masks is not None and masks.any() and not masks.all():
        results["pixel_auroc"] = float(roc_auc_score(masks.ravel(), maps.ravel()))
        results["pro"] = pro_score(maps, masks)
    return results
