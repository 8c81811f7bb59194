"""The one place a score becomes a verdict, and the one record every output carries.

A bundle's graph gives each frame a score in 0..1, calibrated so that 0.5 is the NG threshold: the
score above which at most the training's false-reject budget of good parts lies. Below it, a CHECK
band sends frames for a person to look at (the bundle states where it starts and what share of good
parts it holds). `OperatingPoint.decide` turns a score into a `Verdict` (OK, CHECK or NG, with the
reasons and flags); predict, serve, eval, the report, the overlays and every sink call it, and
`verdict_record` is the record all of them write (schema `RECORD_SCHEMA`, documented in the README).

`DriftMonitor` watches the verdicts of a stream: when the share of NG or CHECK over the last
frames is far above what the bundle expects of good parts (a binomial test), the images no
longer look like training (camera, lighting, part) or the line is producing defects.
"""

import math
from collections import deque
from dataclasses import dataclass
from datetime import datetime, timezone
from enum import StrEnum

from adedge.bundle import OperatingPointSpec, cut_off_info
from adedge.errors import AdedgeError
from adedge.formats import percent

RECORD_SCHEMA = 1  # the version of `verdict_record`'s fields: raised when a field changes meaning
DRIFT_WINDOW = 200  # frames the drift alarm looks back over
# the alarm's one-sided binomial p-value: about one false alarm per ten million windows of good parts,
# yet three NG frames in a row under a 1 % budget (p 1e-6) already raise it
DRIFT_P_VALUE = 1e-6


class Label(StrEnum):
    """A frame's verdict: pass it, send it to a person, or reject it."""

    OK = "OK"
    CHECK = "CHECK"
    NG = "NG"


class Flag(StrEnum):
    """Why a verdict deserves a second look, whatever its label."""

    NOT_FINITE = "not_finite"  # the model gave no finite score: NG (fail closed)
    BEYOND_CALIBRATION = "beyond_calibration"  # above every score seen in calibration (good and synthetic defects)
    DRIFT = "drift"  # the stream's NG or CHECK rate is far above what good parts give


@dataclass(frozen=True)
class Verdict:
    """One frame's verdict: its label, its score and why."""

    label: Label
    score: float
    reasons: tuple[str, ...]
    flags: tuple[Flag, ...] = ()

    @property
    def anomalous(self) -> bool:
        return self.label is Label.NG


@dataclass(frozen=True)
class OperatingPoint:
    """The cut-offs on the graph's 0..1 score: NG above `threshold`, CHECK above `check` (None: no
    CHECK band), OK at or below both. A score that is not finite (a broken model or frame) is NG.
    `expected_ng` and `expected_check` are the shares of good parts the calibration expects in NG
    and CHECK (for the drift alarm); `seen_max` the highest score calibration saw."""

    threshold: float = 0.5
    check: float | None = None
    expected_ng: float | None = None
    expected_check: float | None = None
    seen_max: float | None = None
    moved: bool = False  # whether the cut-offs differ from the bundle's (then the expected rates are unknown)

    def __post_init__(self) -> None:
        if not (math.isfinite(self.threshold) and 0.0 <= self.threshold < 1.0):
            raise AdedgeError(f"--threshold must be from 0 up to (not including) 1 on the 0..1 score, got {self.threshold}")
        if self.check is not None and not (math.isfinite(self.check) and 0.0 <= self.check <= self.threshold):
            raise AdedgeError(f"--check must be from 0 up to the threshold {self.threshold} (at it: no CHECK band), got {self.check}")

    @classmethod
    def of_bundle(cls, spec: OperatingPointSpec, threshold: float | None = None, check: float | None = None) -> "OperatingPoint":
        """The bundle's operating point, with THRESHOLD and CHECK (CHECK at THRESHOLD: no band) moved
        at run time. Moved cut-offs void the rates the bundle expects, which the drift alarm needs."""
        ng = spec.ng_above if threshold is None else threshold
        band = spec.check_above if check is None else check
        if band is not None and (band == ng or (check is None and band > ng)):  # closed, or a threshold moved below it
            band = None
        moved = (ng, band) != (spec.ng_above, spec.check_above)  # the bundle's own values given again move nothing
        return cls(ng, band, None if moved else spec.false_reject, None if moved else spec.good_in_check, spec.seen_max, moved)

    def drift_alarm_off(self) -> str | None:
        """Why the drift alarm cannot run at these cut-offs (None: it runs), for a line at the start."""
        if self.moved:
            return ("drift alarm off: --threshold/--check moved the cut-offs, so the share of good parts expected above "
                    "them is unknown; run without them (or re-train with another --false-reject) to keep the alarm")
        if self.expected_ng is None and self.expected_check is None:
            return "drift alarm off: the bundle states no share of good parts expected above its cut-offs"
        return None

    def decide(self, score: float) -> Verdict:
        """The verdict on SCORE, the graph's 0..1 score."""
        if not math.isfinite(score):
            return Verdict(Label.NG, score, ("the model gave no finite score: the frame is NG",), (Flag.NOT_FINITE,))
        flags = (Flag.BEYOND_CALIBRATION,) if self.seen_max is not None and score > self.seen_max else ()
        if score > self.threshold:
            return Verdict(Label.NG, score, (f"score {score:.3f} above the NG threshold {self.threshold:.3f}",), flags)
        if self.check is not None and score > self.check:
            return Verdict(Label.CHECK, score, (f"score {score:.3f} in the CHECK band above {self.check:.3f}",), flags)
        return Verdict(Label.OK, score, (), flags)

    def flagged(self, values):
        """Which of VALUES (a numpy array of 0..1 scores or map values) are NG: above the threshold,
        or not a number (never OK). The served pred_label and pred_mask and Result.mask are this."""
        return ~(values <= self.threshold)

    def model_info(self) -> dict[str, float]:
        """These cut-offs as a model file's model_info states the exported ones (adedge.bundle.cut_off_info)."""
        return cut_off_info(self.threshold, self.threshold if self.check is None else self.check)

    def record(self) -> dict[str, float | None]:
        """The cut-offs as every record states them."""
        return {"threshold": self.threshold, "check": self.check}


def frame_record(run: str, frame: int, taken: float, model: str) -> dict:
    """What every record says of its frame: schema, run and frame (unique together), time (TAKEN,
    seconds since the epoch) and model."""
    return {"schema": RECORD_SCHEMA, "run": run, "frame": frame,
            "time": datetime.fromtimestamp(taken, timezone.utc).isoformat(timespec="milliseconds"), "model": model}


def verdict_record(header: dict, verdict: Verdict, point: OperatingPoint, drift: str | None = None, **details: object) -> dict:
    """The record of one frame's verdict that every output carries (predictions.jsonl, stdout, MQTT,
    webhooks, serve): the frame's HEADER (`frame_record`), score (null when not finite: JSON has no
    NaN), label, cut-offs, flags, reasons, the drift alarm's message while it is raised, then DETAILS
    (source, latency, ...)."""
    flags = [flag.value for flag in verdict.flags] + ([Flag.DRIFT.value] if drift else [])
    record = {
        **header, "score": round(verdict.score, 6) if math.isfinite(verdict.score) else None, "label": verdict.label.value,
        **point.record(), "flags": flags, "reasons": list(verdict.reasons),
    }
    return record | ({"drift": drift} if drift else {}) | details


def binomial_tail(count: int, trials: int, rate: float) -> float:
    """P(X >= COUNT) for X ~ Binomial(TRIALS, RATE): how surprising COUNT hits in TRIALS are."""
    if count <= 0:
        return 1.0
    if rate <= 0.0:
        return 0.0
    if rate >= 1.0:
        return 1.0
    log_rate, log_miss = math.log(rate), math.log1p(-rate)
    terms = [math.lgamma(trials + 1) - math.lgamma(k + 1) - math.lgamma(trials - k + 1) + k * log_rate + (trials - k) * log_miss
             for k in range(count, trials + 1)]
    top = max(terms)
    return min(1.0, math.exp(top) * sum(math.exp(t - top) for t in terms))


class DriftMonitor:
    """The rolling shares of NG and CHECK over the last WINDOW verdicts, against the shares of good
    parts the operating point expects; `update` returns the alarm's message while it is raised."""

    def __init__(self, point: OperatingPoint, window: int = DRIFT_WINDOW, p_value: float = DRIFT_P_VALUE) -> None:
        self.expected = {Label.NG: point.expected_ng, Label.CHECK: point.expected_check}
        self.labels: deque[Label] = deque(maxlen=window)
        self.window, self.p_value = window, p_value
        self.alarm: str | None = None
        self.raised = False  # whether the last update raised the alarm (it was not raised before)
        self.alarms = 0  # how many times the alarm was raised

    @property
    def active(self) -> bool:
        """Whether the operating point states the expected rates the alarm compares with."""
        return any(rate is not None for rate in self.expected.values())

    def update(self, verdict: Verdict) -> str | None:
        if not self.active:
            return None
        self.labels.append(verdict.label)
        message = None
        for label, expected in self.expected.items():
            count = sum(1 for seen in self.labels if seen is label)
            if expected is not None and binomial_tail(count, len(self.labels), expected) < self.p_value:
                message = (f"{label.value} rate {percent(count / len(self.labels))} over the last {len(self.labels)} frames, "
                           f"{percent(expected)} expected of good parts: the images differ from training (camera, lighting, "
                           "part) or the line is producing defects")
                break
        self.raised = message is not None and self.alarm is None
        self.alarms += self.raised
        self.alarm = message
        return message
