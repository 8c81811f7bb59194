import numpy as np
import pytest

from adedge.errors import AdedgeError
from adedge.metrics import evaluate, f1_max, pro_score
from adedge.train.calibration import calibrate_on_good, calibrate_on_labelled, equal_error_threshold


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


def test_calibration_on_good_sits_where_good_and_synthetic_defects_err_equally():
    rng = np.random.default_rng(0)
    good, defects = rng.normal(10.0, 2.0, 4000), rng.normal(16.0, 2.0, 4000)
    c = calibrate_on_good(good, good * 10, defects)
    assert c.score_threshold == pytest.approx(13.0, abs=0.1)  # halfway between two equally wide normals
    assert (good > c.score_threshold).mean() == pytest.approx((defects <= c.score_threshold).mean(), abs=0.002)
    # the pixel threshold: median + 2 robust sigmas of the good maps' maxima (about 2 % of a normal above it)
    assert (good * 10 > c.map_threshold).mean() == pytest.approx(0.023, abs=0.006)
    assert _normalise(np.median(good), c.score_threshold, c.score_scale) < 0.5  # a typical good part is OK
    # subtler defects pull the threshold down, bolder ones push it up: it follows how far defects lie
    assert calibrate_on_good(good, good, defects - 3).score_threshold < c.score_threshold
    assert calibrate_on_good(good, good, defects + 10).score_threshold > c.score_threshold
    # defects the model cannot see: the floor, median + 1 robust sigma (about 16 % of good parts above it)
    blind = calibrate_on_good(good, good, good[::-1].copy())
    assert (good > blind.score_threshold).mean() == pytest.approx(0.16, abs=0.01)
    assert "held back" in c.method and "synthetic defects" in c.method and c.images == 4000
    with pytest.raises(AdedgeError, match="at least 2"):
        calibrate_on_good(good[:1], good[:1], defects)


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
