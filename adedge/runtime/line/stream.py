"""Inspecting a stream of frames in order: one at a time (latency mode) or with several OpenVINO
asynchronous requests in flight and decoding on worker threads (throughput mode).

Results come out in frame order either way. A frame that fails to decode is reported as an
`Inspection` with an error and the stream goes on. Nothing per frame is kept after it is yielded;
the summary's latency percentiles come from at most LATENCY_SAMPLE latencies (all of a shorter
stream, a uniform sample of a longer one), so memory stays flat on runs of any length.
"""

import dataclasses
import random
import threading
import time
from array import array
from collections import deque
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np

from adedge.errors import AdedgeError
from adedge.runtime.inference.model import Model, Result
from adedge.runtime.inference.verdict import DriftMonitor, Label, frame_record, verdict_record
from adedge.runtime.line.sources import Frame, Source, open_source

DECODE_THREADS = 2
LATENCY_SAMPLE = 10_000  # latencies kept for the percentiles (40 kB): a reservoir sample beyond that


@dataclass(frozen=True)
class Inspection:
    """What became of one frame: its result, or why it has none."""

    source: str
    frame: int
    time: float  # seconds since the epoch when the frame was taken from the source
    latency_ms: float  # from taking the frame (decoding included) to its result
    model_ms: float  # of which the model's own inference
    result: Result | None = None
    error: str | None = None
    image: np.ndarray | None = field(default=None, repr=False)  # the decoded frame, for overlays
    drift: str | None = None  # the drift alarm's message while it is raised
    drift_raised: bool = False  # whether this frame raised it

    def record(self, run: str, model: str) -> dict:
        """The frame's record (adedge.runtime.inference.verdict.verdict_record; no pixels) in RUN of MODEL."""
        header = frame_record(run, self.frame, self.time, model)
        if self.result is None:
            return {**header, "source": self.source, "error": self.error}
        return verdict_record(header, self.result.verdict, self.result.point, self.drift, source=self.source,
                              latency_ms=round(self.latency_ms, 3), model_ms=round(self.model_ms, 3))


@dataclass
class Summary:
    """Counts and timing of a stream so far."""

    ok: int = 0
    check: int = 0
    ng: int = 0
    failed: int = 0
    drift_alarms: int = 0
    latencies: array = field(default_factory=lambda: array("f"))  # at most LATENCY_SAMPLE of them
    latencies_seen: int = 0
    started: float = field(default_factory=time.perf_counter)
    ended: float | None = None
    sampler: random.Random = field(default_factory=lambda: random.Random(0), repr=False)

    def add(self, inspection: Inspection) -> None:
        if inspection.result is None:
            self.failed += 1
            return
        label = inspection.result.label
        self.ok, self.check, self.ng = self.ok + (label is Label.OK), self.check + (label is Label.CHECK), self.ng + (label is Label.NG)
        self.drift_alarms += inspection.drift_raised
        self._sample(inspection.latency_ms)

    def _sample(self, latency: float) -> None:
        """Keep LATENCY in a uniform sample of every latency seen (reservoir sampling, Vitter's algorithm R)."""
        self.latencies_seen += 1
        if len(self.latencies) < LATENCY_SAMPLE:
            self.latencies.append(latency)
        elif (slot := self.sampler.randrange(self.latencies_seen)) < LATENCY_SAMPLE:
            self.latencies[slot] = latency

    def finish(self) -> "Summary":
        self.ended = time.perf_counter()
        return self

    def as_dict(self) -> dict:
        inspected = self.ok + self.check + self.ng
        seconds = (self.ended or time.perf_counter()) - self.started
        p50, p99 = (round(float(p), 3) for p in np.percentile(self.latencies, [50, 99])) if inspected else (None, None)
        return {"frames": inspected + self.failed, "ok": self.ok, "check": self.check, "ng": self.ng, "failed": self.failed,
                "drift_alarms": self.drift_alarms,
                "latency_p50_ms": p50, "latency_p99_ms": p99,
                "fps": round(inspected / seconds, 2) if seconds > 0 else 0.0, "seconds": round(seconds, 3)}


def _prepare(frame: Frame) -> np.ndarray:
    """Decode one frame (the graph resizes it)."""
    image = frame.read()
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise AdedgeError(f"frame {frame.index} of {frame.source} is not uint8 RGB: {image.dtype} {list(image.shape)}")
    return image


def _failure(exc: Exception) -> str:
    return str(exc) if isinstance(exc, AdedgeError) else f"{type(exc).__name__}: {exc}"


def _latency_mode(model: Model, frames: Iterable[Frame]) -> Iterator[Inspection]:
    for frame in frames:
        taken, start = time.time(), time.perf_counter()
        try:
            image = _prepare(frame)
            before = time.perf_counter()
            scores, maps = model.infer(image[None])
            model_ms = (time.perf_counter() - before) * 1000.0
        except Exception as exc:  # noqa: BLE001 - a bad frame is logged and skipped, whatever broke
            yield Inspection(frame.source, frame.index, taken, 0.0, 0.0, error=_failure(exc))
            continue
        result = model.result(image, maps[0], float(scores[0]))
        yield Inspection(frame.source, frame.index, taken, (time.perf_counter() - start) * 1000.0, model_ms, result, image=image)


def _decoded_ahead(frames: Iterable[Frame], depth: int) -> Iterator[tuple[Frame, float, float, Future]]:
    """Frames with their decoding started on worker threads, up to DEPTH ahead, in order."""
    window: deque = deque()
    with ThreadPoolExecutor(DECODE_THREADS, thread_name_prefix="adedge-decode") as pool:
        for frame in frames:
            window.append((frame, time.time(), time.perf_counter(), pool.submit(_prepare, frame)))
            if len(window) > depth:
                yield window.popleft()
        yield from window


def _throughput_mode(model: Model, frames: Iterable[Frame]) -> Iterator[Inspection]:
    """Keep every request busy; collect the oldest frame's result before its request is reused, so
    results leave in frame order with no reordering."""
    idle = model.engine.async_requests()
    in_flight: deque = deque()  # (frame, taken, start, image, request), or a failed frame's Inspection

    def oldest() -> Inspection:
        entry = in_flight.popleft()
        if isinstance(entry, Inspection):
            return entry
        frame, taken, start, image, request = entry
        scores, maps, model_ms = request.wait()
        idle.append(request)
        result = model.result(image, maps[0], float(scores[0]))
        return Inspection(frame.source, frame.index, taken, (time.perf_counter() - start) * 1000.0, model_ms, result, image=image)

    for frame, taken, start, decoding in _decoded_ahead(frames, 2 * len(idle)):
        while not idle:
            yield oldest()
        try:
            image = decoding.result()
            idle[-1].start(image[None])
            in_flight.append((frame, taken, start, image, idle.pop()))
        except Exception as exc:  # noqa: BLE001 - a bad frame is logged and skipped, whatever broke
            in_flight.append(Inspection(frame.source, frame.index, taken, 0.0, 0.0, error=_failure(exc)))
    while in_flight:
        yield oldest()


def inspect_stream(model: Model, source: Source | str | list[str], stop: threading.Event | None = None) -> Iterator[Inspection]:
    """Inspect every frame of SOURCE (a Source, or what `open_source` takes) in order, until it
    ends or STOP is set, in the mode MODEL was loaded with: latency (one frame at a time) or
    throughput (several requests in flight). Each inspection carries the drift alarm's state."""
    source = open_source(source) if isinstance(source, (str, list)) else source
    frames = source.frames(stop or threading.Event())
    monitor = DriftMonitor(model.point)
    for inspection in (_throughput_mode if model.mode == "throughput" else _latency_mode)(model, frames):
        if inspection.result is not None:
            alarm = monitor.update(inspection.result.verdict)
            inspection = dataclasses.replace(inspection, drift=alarm, drift_raised=monitor.raised)
        yield inspection
