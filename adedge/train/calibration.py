"""Thresholds and normalisation constants, fitted without touching the test set.

Without labelled data (the default) the image threshold is where held-back good images and the
same images with synthetic defects drawn on them (adedge.data.defects) are told apart with equal
errors: the share of good images above it equals the share of synthetic defects at or below it.
A rule on good images alone (a target false-reject rate) cannot know how far defects lie from good
parts: on MVTec bottle, where defects stand far out, median + 2 robust sigmas rejected 20 % of the
good test parts it could have passed; on pill, where they are subtle, it missed 21 % of the defects
(benchmarks/results/threshold_rules.md). Synthetic defects tell the rule how conspicuous a small
defect is on this part, so the threshold rises where defects stand out and falls where they do not.
The threshold never sits below the good images' median + FLOOR_SIGMAS robust sigmas, so a model
that barely sees the synthetic defects does not reject good parts wholesale (equal errors between
sets that overlap reject as many good parts as they miss defects). The pixel threshold stays at
median + SIGMAS robust sigmas (1.4826 x the median absolute deviation) of the good images' map
maxima. With a labelled validation folder the thresholds are F1-optimal.
The scale of the graph's logistic is 2 x SIGMAS robust deviations of the good images' values.
"""

import numpy as np

from adedge.errors import AdedgeError
from adedge.formats import Calibration
from adedge.metrics import f1_max

SIGMAS = 2.0
# the image threshold never rejects more good parts than median + 1 robust sigma would (about 16 % of a
# normal): where a model barely sees the synthetic defects, equal errors would reject good parts wholesale
FLOOR_SIGMAS = 1.0
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


def good_threshold(good: np.ndarray, sigmas: float = SIGMAS) -> float:
    """The rule on good values alone: median + SIGMAS robust sigmas (the pixel threshold's)."""
    return float(np.median(good) + sigmas * robust_sigma(good))


def equal_error_threshold(good: np.ndarray, defects: np.ndarray) -> float:
    """The threshold (flag above it) at which the share of GOOD above it first no longer exceeds the
    share of DEFECTS at or below it: halfway from that score to the next higher one, so that where
    the two sets do not overlap it sits in the middle of the gap between them."""
    values = np.unique(np.concatenate([good, defects]))
    rejected = (good[None, :] > values[:, None]).mean(1)
    missed = (defects[None, :] <= values[:, None]).mean(1)
    crossing = int(np.argmax(missed >= rejected))  # the highest value misses every defect: always found
    return float(values[crossing] if crossing == len(values) - 1 else (values[crossing] + values[crossing + 1]) / 2)


def calibrate_on_good(scores: np.ndarray, map_maxima: np.ndarray, defect_scores: np.ndarray) -> Calibration:
    """Image threshold between held-back good images' SCORES and their synthetic defects'
    DEFECT_SCORES at equal errors, but never below median + FLOOR_SIGMAS robust sigmas of the good
    scores; map threshold at median + SIGMAS robust sigmas of the good maps' maxima."""
    if len(scores) < 2:
        raise AdedgeError("calibration needs at least 2 held-back good images; use more training images")
    score_threshold = max(equal_error_threshold(scores, defect_scores), good_threshold(scores, FLOOR_SIGMAS))
    map_threshold = good_threshold(map_maxima)
    return Calibration(
        score_threshold,
        _scale(scores, score_threshold),
        map_threshold,
        _scale(map_maxima, map_threshold),
        f"equal errors between {len(scores)} good training images held back from the fit and {len(defect_scores)} synthetic "
        "defects drawn on them",
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
