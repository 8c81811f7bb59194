import math
import re

import numpy as np
import pytest
import torch
from scipy import stats

from adedge.errors import AdedgeError
from adedge.metrics import evaluate, f1_max, pro_score
from adedge.train.calibration import CHECK_SHARES, calibrate_on_good, calibrate_on_labelled, describe_calibration, equal_error_threshold
from adedge.train.detector import SLOPE, calibrated


def _normalise(value, threshold, scale):
    return 0.5 + (value - threshold) / scale


def test_auroc_and_f1():
    labels = np.array([0, 0, 0, 1, 1])
    perfect = evaluate(np.array([0.1, 0.2, 0.3, 0.8, 0.9]), labels)
    assert perfect["image_auroc"] == 1.0 and perfect["image_f1_max"] == 1.0 and perfect["image_f1"] == 1.0
    inverted = evaluate(np.array([0.9, 0.8, 0.7, 0.2, 0.1]), labels)
    assert inverted["image_auroc"] == 0.0 and inverted["image_f1"] == 0.0
    f1, threshold = f1_max(np.array([0.1, 0.2, 0.6, 0.7]), np.array([0, 0, 1, 1]))
    assert f1 == 1.0 and 0.2 <= threshold < 0.6


def test_pro_rewards_every_region_equally():
    masks = np.zeros((2, 40, 40), bool)
    masks[0, 2:4, 2:4] = True  # a tiny region
    masks[1, 10:30, 10:30] = True  # a large one
    rng = np.random.default_rng(0)
    noise = rng.random(masks.shape) * 0.5
    assert pro_score(noise + masks, masks) == pytest.approx(1.0)
    only_large = noise + np.where(np.arange(2)[:, None, None] == 1, masks, 0)
    assert 0.45 < pro_score(only_large, masks) < 0.65  # the tiny region is missed: about half the credit
    assert 0.05 < pro_score(rng.random(masks.shape), masks) < 0.25  # chance level is 0.15


def test_the_ng_threshold_keeps_the_false_reject_budget_on_good_scores_it_never_saw():
    rng = np.random.default_rng(0)
    for draw, true_tail in ((lambda n: rng.normal(10.0, 2.0, n), lambda t: stats.norm.sf(t, 10.0, 2.0)),
                            (lambda n: rng.gamma(2.0, 1.5, n), lambda t: stats.gamma.sf(t, 2.0, scale=1.5))):
        rates = []
        for _ in range(5):
            good = draw(250)
            c = calibrate_on_good(good, good, good + 6.0, 0.01)
            rates.append(true_tail(c.score_threshold))
            assert c.false_reject == pytest.approx(0.01) and 0.01 < c.false_reject_bound < 0.04
        assert 0.004 < np.mean(rates) < 0.02  # what a fresh good part risks, not what the 250 did
    assert "false-reject budget 1 % on 250 out-of-fold" in c.method and c.images == 250


def test_the_check_band_is_wide_where_synthetic_defects_are_subtle_and_narrow_where_they_stand_out():
    rng = np.random.default_rng(1)
    good = rng.normal(10.0, 2.0, 2000)
    subtle, bold = calibrate_on_good(good, good, good + 1.0), calibrate_on_good(good, good, good + 20.0)
    for c, share in ((subtle, CHECK_SHARES[1]), (bold, CHECK_SHARES[0])):
        assert c.check_threshold < c.score_threshold
        assert (good > c.check_threshold).mean() == pytest.approx(share, abs=0.01)
        assert c.good_in_check == pytest.approx(share - c.false_reject, abs=0.01)
    # the pixel threshold: median + 2 robust sigmas of the good maps' maxima (about 2 % of a normal above it)
    assert (good > subtle.map_threshold).mean() == pytest.approx(0.023, abs=0.006)
    assert _normalise(np.median(good), subtle.score_threshold, subtle.score_scale) < 0.5  # a typical good part is OK
    assert bold.score_max == pytest.approx((good + 20.0).max())
    # a budget as large as the band's widest share leaves no room for a band below it
    assert calibrate_on_good(good, good, good + 1.0, 0.1).check_threshold is None


def test_training_says_what_the_budget_rests_on():
    rng = np.random.default_rng(2)
    good = rng.normal(10.0, 2.0, 30)
    c = calibrate_on_good(good, good, good + 5.0, 0.01)
    (line, stated), (warning, plain) = describe_calibration(c, 0.01)
    assert stated and re.match(r"NG threshold for <= 1 % good rejected \(95 % bound [0-9.]+ %, from 30 out-of-fold good images\)", line)
    assert not plain and "30 good images cannot support a 1 % budget" in warning
    assert len(describe_calibration(calibrate_on_good(*(rng.normal(10.0, 2.0, 200),) * 2, good + 5.0), 0.01)) == 1
    with pytest.raises(AdedgeError, match="at least 4"):
        calibrate_on_good(good[:3], good[:3], good[:3])
    with pytest.raises(AdedgeError, match="--false-reject must be from 1e-06 up to .not including. 0.5, got nan"):
        calibrate_on_good(good, good, good, math.nan)


def test_equal_error_threshold_splits_separate_sets_in_the_middle_of_their_gap():
    assert equal_error_threshold(np.array([1.0, 2.0, 3.0]), np.array([7.0, 8.0])) == 5.0
    # overlapping: 1 of 4 good above, 1 of 4 defects at or below
    threshold = equal_error_threshold(np.array([1.0, 2.0, 3.0, 6.0]), np.array([4.0, 5.0, 7.0, 8.0]))
    assert threshold == 4.5
    # defects that score no higher than good parts: the threshold still lies within the values seen
    assert 1.0 <= equal_error_threshold(np.array([2.0, 3.0]), np.array([1.0, 1.0])) <= 3.0


def test_calibration_on_labelled_data_is_f1_optimal():
    scores = np.array([1.0, 1.5, 2.0, 5.0, 6.0])
    labels = np.array([0, 0, 0, 1, 1])
    maps = np.zeros((5, 4, 4))
    masks = np.zeros((5, 4, 4), bool)
    maps[3:, :2] = 3.0
    masks[3:, :2] = True
    c = calibrate_on_labelled(scores, labels, maps, masks)
    assert 2.0 <= c.score_threshold < 5.0 and 0.0 <= c.map_threshold < 3.0
    normalised = _normalise(scores, c.score_threshold, c.score_scale)
    assert ((normalised > 0.5) == labels.astype(bool)).all()
    with pytest.raises(AdedgeError, match="both good and anomalous"):
        calibrate_on_labelled(scores, np.zeros(5), maps, masks)


def test_the_graphs_0_to_1_scale_keeps_bold_defects_apart_in_float32():
    """A plain logistic reached float32's 1.0 a few scales above the threshold, so every bold defect
    (and half of a defect's map) tied at 1.0; the graph's scale is 0.5 at the threshold, and
    strictly increasing far beyond it."""
    raw = torch.tensor([0.0, 10.0, 1e2, 1e3, 1e4, 1e5], dtype=torch.float32)
    values = calibrated(raw, 10.0, 2.0)
    assert values[1] == 0.5 and values[0] < 0.5
    assert (values.diff() > 0).all() and values[-1] < 1.0


def test_the_graphs_0_to_1_scale_is_the_logistic_of_asinh_within_float32s_rounding():
    distance = torch.linspace(-200.0, 200.0, 400_001, dtype=torch.float64)
    exact = torch.sigmoid(torch.asinh(distance))
    values = calibrated((distance / SLOPE).float(), 0.0, 1.0).double()
    assert (values - exact).abs().max() < 2e-7
    assert calibrated(torch.tensor([float("nan")]), 0.0, 1.0).isnan().all()  # a broken score is never OK
