import numpy as np
import pytest

from adedge.errors import AdedgeError
from adedge.metrics import evaluate, f1_max, pro_score
from adedge.train.calibration import calibrate_on_good, calibrate_on_labelled


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


def test_calibration_on_good_targets_a_two_percent_false_reject_rate_robustly():
    good = np.random.default_rng(0).normal(10.0, 2.0, 4000)
    c = calibrate_on_good(good, good * 10)
    assert (good > c.score_threshold).mean() == pytest.approx(0.023, abs=0.006)  # median + 2 sigma of a normal
    assert (good * 10 > c.map_threshold).mean() == pytest.approx(0.023, abs=0.006)
    assert _normalise(np.median(good), c.score_threshold, c.score_scale) == pytest.approx(0.0)
    # few values: the standard deviation, since a median absolute deviation of 3 can be nearly 0
    few = np.array([1.0, 2.0, 2.0001])
    assert calibrate_on_good(few, few).score_threshold == pytest.approx(2.0 + 2 * few.std())
    # one wild held-back image barely moves the threshold (a mean + k sigma rule would leap)
    scores = np.array([1.0, 2.0, 3.0, 2.0, 2.0, 2.5, 1.5, 2.2, 1.8, 2.1])
    maxima = scores * 10
    c = calibrate_on_good(scores, maxima)
    assert calibrate_on_good(np.append(scores, 100.0), np.append(maxima, 1000.0)).score_threshold < c.score_threshold + 0.5
    assert "held back" in c.method and c.images == 10
    with pytest.raises(AdedgeError, match="at least 2"):
        calibrate_on_good(scores[:1], maxima[:1])


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
