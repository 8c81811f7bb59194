"""Thresholds and normalisation constants, fitted without touching the test set.

Without labelled data (the default) the threshold is set for a target false-reject rate on good
parts: the median of the held-back good images' values plus SIGMAS robust standard deviations
(1.4826 x the median absolute deviation), about the 97.7th percentile of good parts if their values
were normal, so roughly 2 good parts in 100 like the held-back ones are rejected. Robust statistics,
because 20-30 held-back images are few and one odd image inflates a plain standard deviation. We
place the threshold this low on purpose: a defect that passes costs a plant more than a good part
sent to re-inspection, and a higher cut-off missed a third of pill's defects (see README). With a
labelled validation folder the threshold is the F1-optimal one. The scale is 2 x SIGMAS robust
deviations, so after the graph's logistic the good median sits at 0.12 and the threshold at 0.5.
"""

import numpy as np

from adedge.errors import AdedgeError
from adedge.formats import Calibration
from adedge.metrics import f1_max

SIGMAS = 2.0
MAD_TO_SIGMA = 1.4826  # a normal distribution's standard deviation per median absolute deviation
ROBUST_MIN = 10  # fewer held-back values than this (under 100 training images) use the standard deviation


def robust_sigma(good: np.ndarray) -> float:
    """1.4826 x the median absolute deviation; with fewer than ROBUST_MIN values that is unstable
    (of 3 values, the smaller gap to the median, which can be nearly 0), so the standard deviation."""
    if len(good) < ROBUST_MIN:
        return float(np.std(good))
    return MAD_TO_SIGMA * float(np.median(np.abs(good - np.median(good))))


def _scale(good: np.ndarray, threshold: float) -> float:
    return max(2 * SIGMAS * robust_sigma(good), abs(threshold) * 1e-3, 1e-12)


def good_threshold(good: np.ndarray) -> float:
    """The rule without labels: median + SIGMAS robust sigmas of good held-back values."""
    return float(np.median(good) + SIGMAS * robust_sigma(good))


def calibrate_on_good(scores: np.ndarray, map_maxima: np.ndarray) -> Calibration:
    """Thresholds at median + SIGMAS robust sigmas of good held-back images' scores and per-image map maxima."""
    if len(scores) < 2:
        raise AdedgeError("calibration needs at least 2 held-back good images; use more training images")
    score_threshold, map_threshold = good_threshold(scores), good_threshold(map_maxima)
    return Calibration(
        score_threshold,
        _scale(scores, score_threshold),
        map_threshold,
        _scale(map_maxima, map_threshold),
        f"median + {SIGMAS:g} robust sigma (a ~2% false-reject target) of {len(scores)} good training images held back from the fit",
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
        map_threshold = good_threshold(good_maxima)
    return Calibration(
        score_threshold,
        _scale(scores[~labels], score_threshold),
        map_threshold,
        _scale(good_maxima, map_threshold),
        f"F1-optimal thresholds on {len(labels)} labelled validation images",
        len(labels),
    )
