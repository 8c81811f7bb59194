"""The one verdict path: cut-offs, flags, the record, and the drift alarm."""

import math

import numpy as np
import pytest
from scipy import stats

from adedge.bundle import OperatingPointSpec
from adedge.errors import AdedgeError
from adedge.runtime.inference.verdict import DriftMonitor, Flag, Label, OperatingPoint, binomial_tail, frame_record, verdict_record

SPEC = OperatingPointSpec(ng_above=0.5, check_above=0.3, false_reject=0.01, false_reject_bound=0.02, good_in_check=0.05, seen_max=0.98)


def test_the_bundles_operating_point_and_run_time_moves():
    point = OperatingPoint.of_bundle(SPEC)
    assert (point.threshold, point.check, point.expected_ng, point.expected_check) == (0.5, 0.3, 0.01, 0.05)
    assert [point.decide(s).label for s in (0.1, 0.3, 0.31, 0.5, 0.51, 0.99)] == ["OK", "OK", "CHECK", "CHECK", "NG", "NG"]
    assert point.decide(0.99).flags == (Flag.BEYOND_CALIBRATION,) and point.decide(0.97).flags == ()
    assert "above the NG threshold 0.500" in point.decide(0.7).reasons[0] and point.decide(0.1).reasons == ()
    moved = OperatingPoint.of_bundle(SPEC, threshold=0.6)
    assert (moved.threshold, moved.check, moved.expected_ng) == (0.6, 0.3, None)  # moved: no expected rates
    assert OperatingPoint.of_bundle(SPEC, threshold=0.2).check is None  # a threshold below the band: no band
    assert OperatingPoint.of_bundle(SPEC, check=0.5).decide(0.45).label == Label.OK  # the band closed
    for threshold, check, message in ((1.0, None, "--threshold"), (0.5, 0.6, "--check"), (math.nan, None, "--threshold")):
        with pytest.raises(AdedgeError, match=message):
            OperatingPoint.of_bundle(SPEC, threshold, check)


def test_the_record_is_strict_json_with_the_verdict_and_its_flags():
    point = OperatingPoint.of_bundle(SPEC)
    header = frame_record("run-1", 3, 0.0, "bottle_dfm")
    record = verdict_record(header, point.decide(math.nan), point, "NG rate high", version="1")
    assert record == {"schema": 1, "run": "run-1", "frame": 3, "time": "1970-01-01T00:00:00.000+00:00", "model": "bottle_dfm",
                      "score": None, "label": "NG", "threshold": 0.5, "check": 0.3, "flags": ["not_finite", "drift"],
                      "reasons": ["the model gave no finite score: the frame is NG"], "drift": "NG rate high", "version": "1"}


def test_binomial_tail_matches_scipy():
    for count, trials, rate in ((0, 10, 0.1), (3, 200, 0.01), (9, 200, 0.01), (50, 200, 0.2), (200, 200, 0.5)):
        assert binomial_tail(count, trials, rate) == pytest.approx(stats.binom.sf(count - 1, trials, rate), rel=1e-9, abs=1e-300)


def test_the_drift_alarm_stays_quiet_on_good_parts_and_rises_when_the_images_change():
    point = OperatingPoint.of_bundle(SPEC)
    rng = np.random.default_rng(0)
    monitor = DriftMonitor(point)
    # a good line: 1 % NG and 5 % CHECK, as expected, for 5000 frames
    for draw in rng.random(5000):
        monitor.update(point.decide(0.9 if draw < 0.01 else 0.4 if draw < 0.06 else 0.1))
        assert monitor.alarm is None
    # then every frame NG (another part, a moved camera): the alarm within a few frames, raised once
    raised_at = None
    for frame in range(50):
        message = monitor.update(point.decide(0.9))
        if monitor.raised:
            raised_at = frame
    assert raised_at is not None and raised_at < 15 and monitor.alarms == 1  # 12 NG in 200 frames: p < 1e-6
    assert message.startswith("NG rate") and "1 % expected of good parts" in message
    # moved cut-offs carry no expected rates: no alarm at all
    quiet = DriftMonitor(OperatingPoint.of_bundle(SPEC, threshold=0.6))
    assert not quiet.active and all(quiet.update(point.decide(0.9)) is None for _ in range(20))
    assert "drift alarm off: --threshold/--check moved" in OperatingPoint.of_bundle(SPEC, threshold=0.6).drift_alarm_off()
    # the bundle's own cut-offs given again move nothing: the alarm stays on
    for same in (OperatingPoint.of_bundle(SPEC, threshold=0.5), OperatingPoint.of_bundle(SPEC, 0.5, 0.3), OperatingPoint.of_bundle(SPEC, check=0.3)):
        assert DriftMonitor(same).active and same.drift_alarm_off() is None and same == point
