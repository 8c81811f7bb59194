"""Thresholds and normalisation constants, fitted without touching the test set.

Without labelled data (the default) the NG threshold is set for a false-reject budget: the share of
good parts it may reject (1 % by default). Scores of good training images the model was fitted on
are biased low, so every training image is scored by a model fitted without it (k-fold,
out-of-fold scores on the cached features). A few hundred such scores cannot pin down a 1 % tail
empirically (the 99th percentile of 200 values rests on two of them), so the upper tail is modelled:
a generalised Pareto distribution fitted to the highest TAIL_SHARE of the scores (the peaks-over-
threshold method of extreme value theory) by probability-weighted moments (Hosking and Wallis, 1987:
closed-form, and steadier than maximum likelihood on a few dozen points), its shape kept within
SHAPE_LIMIT where so few points would make it absurd. The threshold is where the fitted tail puts the budget; the stated
bound is the 95th percentile of the tail's share above that threshold over bootstrap resamples.

Below it a CHECK band sends frames to a person. Where it starts depends on how far defects lie from
good parts on this part, which synthetic defects drawn on the same images (adedge.data.defects)
tell: at the score where good parts and synthetic defects err equally, kept between the shares
CHECK_SHARES of good parts above it (subtle defects: a wide band, bold ones: a narrow one).

The pixel threshold stays at median + SIGMAS robust sigmas of the good maps' maxima; the scale of
the graph's logistic is 2 x SIGMAS robust deviations of the good scores. With a labelled validation
folder the thresholds are F1-optimal and there is no CHECK band.
"""

from dataclasses import dataclass

import numpy as np
from scipy import stats

from adedge import defaults
from adedge.errors import AdedgeError
from adedge.formats import Calibration, percent
from adedge.metrics import f1_max

SIGMAS = 2.0
MAD_TO_SIGMA = 1.4826  # a normal distribution's standard deviation per median absolute deviation
ROBUST_MIN = 10  # fewer values than this use the standard deviation
TAIL_SHARE = 0.2  # the generalised Pareto tail is fitted to the top 20 % of the out-of-fold scores ...
TAIL_MIN = 10  # ... and never to fewer than 10 of them
SHAPE_LIMIT = 0.3  # |shape| of the fitted tail: beyond it a few dozen points overfit (an endless or a cut-off tail)
BOOTSTRAPS = 200
CONFIDENCE = 0.95
# the CHECK band starts where at most 8 % and at least 3 % of good parts lie above it
CHECK_SHARES = (0.03, 0.08)
MIN_CALIBRATION_IMAGES = 4


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


def _pareto_by_moments(excess: np.ndarray) -> tuple[float, float]:
    """Shape and scale (scipy's genpareto convention) of a generalised Pareto distribution fitted to
    the sorted EXCESS values by probability-weighted moments, the shape clipped to +-SHAPE_LIMIT."""
    count = len(excess)
    mean = float(excess.mean())
    if not mean > 0:  # every tail value the same: a point mass, no tail to fit
        return 0.0, 1e-12
    weighted = float(np.sum((count - 1 - np.arange(count)) / (count - 1) * excess) / count)  # E[X (1 - F(X))]
    shape = float(np.clip(2.0 - mean / (mean - 2.0 * weighted), -SHAPE_LIMIT, SHAPE_LIMIT))
    return shape, mean * (1.0 - shape)  # the scale that keeps the mean excess at MEAN for that shape


class Tail:
    """The distribution of good scores: empirical up to the start of its top TAIL_SHARE, a fitted
    generalised Pareto distribution above it."""

    def __init__(self, values: np.ndarray) -> None:
        self.values = np.sort(np.asarray(values, np.float64))
        count = len(self.values)
        exceeding = min(count - 1, max(TAIL_MIN, round(count * TAIL_SHARE)))
        self.start = float(self.values[count - exceeding - 1])
        self.share = exceeding / count  # of the values above `start`
        excess = self.values[count - exceeding :] - self.start
        self.shape, self.scale = _pareto_by_moments(excess)

    def exceedance(self, threshold: float) -> float:
        """The share of good scores above THRESHOLD."""
        if threshold < self.start:
            return float((self.values > threshold).mean())
        return self.share * float(stats.genpareto.sf(threshold - self.start, self.shape, 0, self.scale))

    def quantile(self, share: float) -> float:
        """The score with SHARE of good scores above it."""
        if share >= self.share:
            return float(np.quantile(self.values, 1 - share))
        return self.start + float(stats.genpareto.isf(share / self.share, self.shape, 0, self.scale))


@dataclass(frozen=True)
class Budget:
    """The NG threshold for a false-reject budget, and what the data say of it."""

    threshold: float
    rate: float  # the share of good parts above the threshold, as the fitted tail puts it
    bound: float  # its upper confidence bound (CONFIDENCE)
    images: int

    @property
    def supported(self) -> bool:
        """Whether the images can speak to the budget: at least one expected above the threshold."""
        return self.images * self.rate >= 1.0


def budget_threshold(good: np.ndarray, false_reject: float, seed: int = 0) -> Budget:
    """The score above which FALSE_REJECT of good parts lie, from out-of-fold GOOD scores, with the
    bootstrap's upper bound on the share above it."""
    tail = Tail(good)
    threshold = tail.quantile(false_reject)
    rng = np.random.default_rng(seed)
    shares = [Tail(rng.choice(good, len(good))).exceedance(threshold) for _ in range(BOOTSTRAPS)]
    return Budget(threshold, tail.exceedance(threshold), float(np.quantile(shares, CONFIDENCE)), len(good))


MIN_FALSE_REJECT = 1e-6  # one good part in a million: below it the fitted tail is extrapolated beyond any meaning


def check_false_reject(false_reject: float) -> None:
    if not MIN_FALSE_REJECT <= false_reject < 0.5:  # NaN too
        raise AdedgeError(f"--false-reject must be from {MIN_FALSE_REJECT:g} up to (not including) 0.5, got {false_reject:g}")


def calibrate_on_good(
    scores: np.ndarray, map_maxima: np.ndarray, defect_scores: np.ndarray, false_reject: float = defaults.FALSE_REJECT,
    seed: int = 0,
) -> Calibration:
    """NG threshold for FALSE_REJECT of the out-of-fold good SCORES, the CHECK band's start from them
    and the synthetic DEFECT_SCORES, the map threshold from the good maps' MAP_MAXIMA."""
    check_false_reject(false_reject)
    if len(scores) < MIN_CALIBRATION_IMAGES:
        raise AdedgeError(f"calibration needs at least {MIN_CALIBRATION_IMAGES} good training images; use more training images")
    budget = budget_threshold(scores, false_reject, seed)
    tail = Tail(scores)
    floor, ceiling = (tail.quantile(share) for share in reversed(CHECK_SHARES))
    check = min(max(equal_error_threshold(scores, defect_scores), floor), ceiling)
    check = check if check < budget.threshold else None
    in_check = tail.exceedance(check) - budget.rate if check is not None else 0.0
    map_threshold = good_threshold(map_maxima)
    return Calibration(
        score_threshold=budget.threshold,
        score_scale=_scale(scores, budget.threshold),
        map_threshold=map_threshold,
        map_scale=_scale(map_maxima, map_threshold),
        method=f"false-reject budget {percent(false_reject)} on {len(scores)} out-of-fold good training images, CHECK band from "
               f"{len(defect_scores)} synthetic defects drawn on them",
        images=len(scores),
        check_threshold=check,
        false_reject=budget.rate,
        false_reject_bound=budget.bound,
        good_in_check=in_check,
        score_max=float(max(scores.max(), defect_scores.max(initial=-np.inf))),
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
    good = scores[~labels]
    rejected = int((good > score_threshold).sum())
    return Calibration(
        score_threshold=score_threshold,
        score_scale=_scale(good, score_threshold),
        map_threshold=map_threshold,
        map_scale=_scale(good_maxima, map_threshold),
        method=f"F1-optimal thresholds on {len(labels)} labelled validation images",
        images=len(labels),
        false_reject=rejected / len(good),
        false_reject_bound=float(stats.beta.ppf(CONFIDENCE, rejected + 1, len(good) - rejected)),  # Clopper-Pearson
        score_max=float(scores.max()),
    )


def describe_calibration(calibration: Calibration, false_reject: float | None) -> list[tuple[str, bool]]:
    """What training says of its verdicts: (line, True) to state, (line, False) to warn of. FALSE_REJECT
    is the budget asked for (None: the thresholds came from labelled data)."""
    c = calibration
    if false_reject is None:
        return [(f"NG threshold F1-optimal on labelled images: {percent(c.false_reject)} of their good images rejected "
                 f"({100 * CONFIDENCE:.0f} % bound {percent(c.false_reject_bound)}); no CHECK band", True)]
    band = (f"; CHECK band below it holds about {percent(c.good_in_check)} of good parts" if c.check_threshold is not None
            else "; no CHECK band (the budget leaves no room below it)")
    lines = [(f"NG threshold for <= {percent(c.false_reject)} good rejected ({100 * CONFIDENCE:.0f} % bound {percent(c.false_reject_bound)}, "
              f"from {c.images} out-of-fold good images){band}", True)]
    if c.images * false_reject < 1:
        lines.append((f"{c.images} good images cannot support a {percent(false_reject)} budget (fewer than one of them is expected "
                      "above the threshold, which extrapolates the fitted tail): train on more good images, or allow a larger "
                      "--false-reject", False))
    return lines
