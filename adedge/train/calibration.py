"""Thresholds and normalisation constants, fitted without touching the test set.

Either from good images held back from the fit (threshold = mean + 3 standard deviations of their
values), or from a labelled validation folder (the F1-optimal threshold). The scale maps 3 standard
deviations of good values onto 0.5, so a normalised good value sits near 0 and the threshold at 0.5.
"""

import numpy as np

from adedge.errors import AdedgeError
from adedge.formats import Calibration
from adedge.metrics import f1_max

SIGMAS = 3.0


def _scale(good: np.ndarray, threshold: float) -> float:
    spread = 2 * SIGMAS * float(np.std(good))
    return max(spread, abs(threshold) * 1e-3, 1e-12)


def _good_threshold(good: np.ndarray) -> float:
    return float(np.mean(good) + SIGMAS * np.std(good))


def calibrate_on_good(scores: np.ndarray, map_maxima: np.ndarray) -> Calibration:
    """Thresholds at mean + 3 sigma of good held-back images' scores and per-image map maxima."""
    if len(scores) < 2:
        raise AdedgeError("calibration needs at least 2 held-back good images; use more training images")
    score_threshold, map_threshold = _good_threshold(scores), _good_threshold(map_maxima)
    return Calibration(
        score_threshold,
        _scale(scores, score_threshold),
        map_threshold,
        _scale(map_maxima, map_threshold),
        f"mean + {SIGMAS:g} sigma of {len(scores)} good training images held back from the fit",
        len(scores),
    )


def calibrate_on_labelled(
    scores: np.ndarray, labels: np.ndarray, maps: np.ndarray, masks: np.ndarray | None
) -> Calibration:
    """F1-optimal image threshold (and pixel threshold where masks exist) on a labelled validation set."""
    labels = labels.astype(bool)
    if labels.all() or not labels.any():
        raise AdedgeError("--val-data needs both good and anomalous images for an F1-optimal threshold")
    _, score_threshold = f1_max(scores, labels)
    good_maxima = maps[~labels].reshape(int((~labels).sum()), -1).max(axis=1)
    if masks is not None and masks.any():
        _, map_threshold = f1_max(maps.ravel(), masks.ravel())
    else:
        map_threshold = _good_threshold(good_maxima)
    return Calibration(
        score_threshold,
        _scale(scores[~labels], score_threshold),
        map_threshold,
        _scale(good_maxima, map_threshold),
        f"F1-optimal thresholds on {len(labels)} labelled validation images",
        len(labels),
    )
