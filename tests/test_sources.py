"""Sources on their own, no model: a watched folder takes each (name, content) once and whole; a
camera or stream survives an outage; a truncated video says so."""

import io
import itertools
import math
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from adedge.data.images import decode_image
from adedge.errors import AdedgeError
from adedge.runtime.line.sources import Capture, Source, WatchedFolder, open_source

SETTLE, POLL = 0.3, 0.05  # short, to keep the tests quick; pauses in writing go past SETTLE


def _encoded(seed: int, suffix: str, **options) -> bytes:
    """A 64x64 noise image (it compresses badly, so half the file is half the image) in SUFFIX's format."""
    pixels = np.random.default_rng(seed).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG" if suffix == ".png" else "JPEG", **options)
    return buffer.getvalue()


def _write_in_halves(path: Path, data: bytes, pause: float) -> None:
    with open(path, "wb") as file:
        file.write(data[: len(data) // 2])
        file.flush()
        time.sleep(pause)
        file.write(data[len(data) // 2:])


@dataclass
class Seen:
    name: str
    index: int
    image: np.ndarray | None
    error: str | None


class Collector:
    """Takes a source's frames on a thread, reading each one as the stream does, and keeps what came."""

    def __init__(self, source: Source) -> None:
        self.stop, self.seen, self.error = threading.Event(), [], None
        self.thread = threading.Thread(target=self._run, args=(source,))
        self.thread.start()

    def _run(self, source: Source) -> None:
        try:
            for frame in source.frames(self.stop):
                try:
                    image, error = frame.read(), None
                except AdedgeError as exc:
                    image, error = None, str(exc)
                self.seen.append(Seen(Path(frame.source).name, frame.index, image, error))
        except AdedgeError as exc:
            self.error = exc

    def wait_for(self, count: int, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while len(self.seen) < count and time.monotonic() < deadline:
            time.sleep(0.01)
        assert len(self.seen) >= count, f"{len(self.seen)} frames, waited for {count}"

    def finish(self) -> list[Seen]:
        """Stop the source and return every frame it gave."""
        self.stop.set()
        self.thread.join(timeout=5)
        assert not self.thread.is_alive()
        return self.seen


def _watch(folder: Path, **options) -> Collector:
    return Collector(WatchedFolder(folder, settle_seconds=SETTLE, poll_seconds=POLL, **options))


def test_a_file_written_in_two_halves_is_taken_once_and_whole(tmp_path):
    pauses = (0.1, 0.5, 1.5)  # shorter and longer than the settle time
    parts = [(f"part-{pause}{suffix}", _encoded(seed, suffix), pause)
             for seed, (pause, suffix) in enumerate(itertools.product(pauses, (".png", ".jpg")))]
    contents = {name: data for name, data, _ in parts}
    watcher = _watch(tmp_path)
    writers = [threading.Thread(target=_write_in_halves, args=(tmp_path / name, data, pause)) for name, data, pause in parts]
    for writer in writers:
        writer.start()
    for writer in writers:
        writer.join()
    watcher.wait_for(len(contents))
    time.sleep(3 * SETTLE)  # time for anything taken twice to show
    seen = watcher.finish()
    assert sorted(s.name for s in seen) == sorted(contents) and all(s.error is None for s in seen)
    for s in seen:
        np.testing.assert_array_equal(s.image, decode_image(contents[s.name], s.name))
    assert [s.index for s in seen] == list(range(len(seen)))


def test_a_reused_name_is_inspected_again_each_time_it_is_rewritten(tmp_path):
    versions = [_encoded(seed, ".png", compress_level=0) for seed in range(3)]
    assert len({len(data) for data in versions}) == 1  # the same size each time: only the content changes
    watcher = _watch(tmp_path)
    for taken, data in enumerate(versions, start=1):
        (tmp_path / "latest.png").write_bytes(data)
        watcher.wait_for(taken)
    time.sleep(3 * SETTLE)
    seen = watcher.finish()
    assert len(seen) == 3 and all(s.name == "latest.png" and s.error is None for s in seen)
    for s, data in zip(seen, versions):
        np.testing.assert_array_equal(s.image, decode_image(data, "latest.png"))


def test_a_rewrite_in_place_that_restores_size_and_time_is_inspected_again(tmp_path):
    """As `cp -p`, `rsync -t --inplace` and some FTP uploads rewrite a file: same name, same size,
    the modification time set back to the old one."""
    versions = [_encoded(seed, ".png", compress_level=0) for seed in range(2)]
    assert len({len(data) for data in versions}) == 1
    path = tmp_path / "part.png"
    path.write_bytes(versions[0])
    stamp = path.stat().st_mtime_ns
    watcher = _watch(tmp_path)
    watcher.wait_for(1)
    with open(path, "r+b") as file:  # in place: the same inode
        file.write(versions[1])
    os.utime(path, ns=(stamp, stamp))
    watcher.wait_for(2)
    seen = watcher.finish()
    assert len(seen) == 2 and path.stat().st_mtime_ns == stamp
    np.testing.assert_array_equal(seen[1].image, decode_image(versions[1], "part.png"))


class ManualClock:
    """A watched folder's time, moved only by the test (`set`), which then returns once the watcher
    has polled twice at the new time; its polls wait a little on the wall clock, so its thread gives way."""

    def __init__(self) -> None:
        self.time, self.polls = 0.0, 0

    def now(self) -> float:
        return self.time

    def wait(self, stop: threading.Event, seconds: float) -> bool:
        self.polls += 1
        return stop.wait(POLL / 5)

    def set(self, time_now: float) -> None:
        self.time, polls = time_now, self.polls
        while self.polls < polls + 2:
            time.sleep(POLL / 5)


def test_a_corrupt_file_is_reported_once_after_the_give_up_time(tmp_path):
    data = bytearray(_encoded(0, ".png"))
    data[100:-100] = bytes(len(data) - 200)  # whole in form (IEND at the end), garbage inside
    clock = ManualClock()
    watcher = Collector(WatchedFolder(tmp_path, settle_seconds=SETTLE, poll_seconds=POLL, give_up_seconds=1.0, clock=clock))
    (tmp_path / "bad.png").write_bytes(data)
    for now in (0.0, 0.5, 0.99):  # seen, settled and tried, but not yet given up
        clock.set(now)
        assert watcher.seen == []
    clock.set(1.0)
    watcher.wait_for(1)
    clock.set(5.0)  # no second report
    seen = watcher.finish()
    assert len(seen) == 1 and seen[0].image is None
    assert "bad.png" in seen[0].error and "corrupt" in seen[0].error and "unchanged for 1 s, given up" in seen[0].error


def test_stopping_reports_a_half_written_file_and_forgets_a_vanished_one(tmp_path):
    data = _encoded(0, ".png")
    watcher = _watch(tmp_path)
    (tmp_path / "half.png").write_bytes(data[: len(data) // 2])
    (tmp_path / "gone.png").write_bytes(data[: len(data) // 2])
    time.sleep(2 * SETTLE)  # both settled, found incomplete, waiting for the rest
    (tmp_path / "gone.png").unlink()
    time.sleep(2 * POLL)
    seen = watcher.finish()
    assert [s.name for s in seen] == ["half.png"] and seen[0].image is None
    assert "IEND" in seen[0].error and "when inspection stopped" in seen[0].error


def test_a_file_there_at_the_start_is_inspected(tmp_path):
    data = _encoded(0, ".jpg")
    (tmp_path / "early.jpg").write_bytes(data)
    watcher = _watch(tmp_path)
    watcher.wait_for(1)
    seen = watcher.finish()
    assert [s.name for s in seen] == ["early.jpg"]
    np.testing.assert_array_equal(seen[0].image, decode_image(data, "early.jpg"))


@pytest.mark.parametrize("option, settings", [("--settle", {"watch": True, "settle_seconds": 0.0}),
                                              ("--reconnect-timeout", {"reconnect_timeout": -1.0})])
def test_durations_must_be_above_zero(tmp_path, option, settings):
    with pytest.raises(AdedgeError, match=f"^{option} takes a number of seconds above 0"):
        open_source(str(tmp_path), **settings)


class FakeClock:
    """Time that moves only when a capture waits (at once, by the time asked) or a fake camera
    delivers a frame: the camera tests take no wall-clock time and hold under any load. ON_WAIT(stop)
    is called as each wait begins."""

    def __init__(self) -> None:
        self.time, self.waits, self.on_wait = 0.0, 0, lambda stop: None

    def now(self) -> float:
        return self.time

    def wait(self, stop: threading.Event, seconds: float) -> bool:
        self.waits += 1
        self.on_wait(stop)
        if not stop.is_set():
            self.time += seconds
        return stop.is_set()


class FakeCamera:
    """A camera making a frame every 1/FPS s of its clock's time, its number in the pixels, that can
    be neither opened nor read during OUTAGE (seconds after it was made: start, end)."""

    def __init__(self, outage: tuple[float, float], fps: float = 20.0) -> None:
        self.clock, self.outage, self.fps, self.opened = FakeClock(), outage, fps, 0

    def now(self) -> float:
        return self.clock.now()

    def down(self) -> bool:
        return self.outage[0] <= self.now() < self.outage[1]

    def open(self, spec: int | str) -> "FakeCapture":
        self.opened += 1
        return FakeCapture(self)


class FakeCapture:
    """One connection to a FakeCamera, with cv2.VideoCapture's isOpened/read/release; a read lasts
    until the camera's next frame, and once a read fails it stays failed, as a real capture does."""

    def __init__(self, camera: FakeCamera) -> None:
        self.camera, self.opened = camera, not camera.down()

    def isOpened(self) -> bool:  # noqa: N802 - cv2.VideoCapture's name
        return self.opened

    def read(self) -> tuple[bool, np.ndarray | None]:
        if not self.opened:
            return False, None
        number = math.floor(round(self.camera.now() * self.camera.fps, 6)) + 1  # the camera's next frame
        self.camera.clock.time = number / self.camera.fps
        self.opened = not self.camera.down()
        return (True, np.full((2, 2, 3), number, np.uint16)) if self.opened else (False, None)

    def release(self) -> None:
        self.opened = False


def _camera(outage: tuple[float, float], reconnect_timeout: float, log: list) -> tuple[FakeCamera, Capture]:
    camera = FakeCamera(outage)
    return camera, Capture("0", reconnect_timeout, log.append, open_capture=camera.open, clock=camera.clock)


def test_a_camera_outage_is_survived_and_logged():
    log: list[str] = []
    camera, capture = _camera((0.5, 1.5), 5.0, log)
    stop, got = threading.Event(), []  # (index, camera's frame number, camera's clock)
    for frame in capture.frames(stop):
        got.append((frame.index, int(frame.read()[0, 0, 0]), camera.now()))
        if camera.now() > 2.5:
            stop.set()
    assert [index for index, _, _ in got] == list(range(len(got)))
    before = [number for _, number, at in got if at < 1.5]
    after = [(number, at) for _, number, at in got if at >= 1.5]
    # frames 1-9 came before the outage; frame 9 was asked for at 0.45 s, the reconnect waits 0.5 s,
    # then 1 s: it opens at 1.0 s (down) and 2.0 s, and frame 41 (at 2.05 s) is the first after it
    assert before == list(range(1, 10)) and after[0] == (41, pytest.approx(2.05))
    assert [n for n, _ in after] == list(range(41, 52)) and camera.opened == 3
    assert log == ["camera 0: no frame after frame 8, reconnecting (giving up after 5 s without frames)",
                   "camera 0: frames again, after 1.6 s without"]


def test_a_camera_gone_for_longer_than_the_timeout_is_an_error():
    log: list[str] = []
    camera, capture = _camera((0.3, math.inf), 1.0, log)
    with pytest.raises(AdedgeError, match="^no frames from camera 0 for 1 s: giving up$"):
        for _ in capture.frames(threading.Event()):
            pass
    # the last frame came at 0.25 s: waits of 0.5 s and then the 0.45 s left, and no later open
    assert camera.now() == pytest.approx(1.25) and camera.clock.waits == 2 and len(log) == 1


def test_stop_ends_a_reconnecting_camera_at_once():
    log: list[str] = []
    camera, capture = _camera((0.2, math.inf), 60.0, log)
    camera.clock.on_wait = lambda stop: stop.set() if camera.clock.waits == 2 else None  # Ctrl-C in the second back-off wait
    frames = [frame.index for frame in capture.frames(threading.Event())]
    assert frames == [0, 1, 2] and camera.clock.waits == 2 and camera.opened == 2 and len(log) == 1
    assert not capture.capture.isOpened()


def test_a_missing_camera_is_one_line_without_opencv_warnings(capfd):
    with pytest.raises(AdedgeError) as error:
        Capture("97")
    assert str(error.value) == "cannot open camera 97 (is it connected, and free?)"
    assert capfd.readouterr().err == ""


def _video(path: Path, frames: int) -> Path:
    """An MJPG AVI of noise frames (its header declares the count, which survives truncation)."""
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10, (64, 48))
    rng = np.random.default_rng(0)
    for _ in range(frames):
        writer.write(rng.integers(0, 256, (48, 64, 3), dtype=np.uint8))
    writer.release()
    return path


def test_a_truncated_video_says_how_many_of_its_frames_it_gave(tmp_path):
    whole = _video(tmp_path / "whole.avi", 20)
    assert [frame.index for frame in Capture(str(whole)).frames(threading.Event())] == list(range(20))
    cut = tmp_path / "cut.avi"
    cut.write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])
    indices = []
    with pytest.raises(AdedgeError, match=r"^video .*cut\.avi ended after (\d+) of its 20 frames \(truncated or damaged file\)$") as error:
        for frame in Capture(str(cut)).frames(threading.Event()):
            indices.append(frame.index)
    assert 0 < len(indices) < 19 and f"after {len(indices)} of" in str(error.value)


def test_a_folder_is_inspected_with_its_sub_folders_in_path_order(tmp_path):
    """`adedge predict BUNDLE data/part/test` inspects every image below test/, sorted by path;
    hidden folders, non-images and links to folders (which could loop) are left out."""
    for name in ("b/2.png", "b/1.png", "a.png", "c/d/3.png", ".cache/4.png", "c/notes.txt"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(_encoded(0, ".png"))
    (tmp_path / "loop").symlink_to(tmp_path, target_is_directory=True)
    frames = list(open_source(str(tmp_path)).frames(threading.Event()))
    assert [Path(f.source).relative_to(tmp_path).as_posix() for f in frames] == ["a.png", "b/1.png", "b/2.png", "c/d/3.png"]


def test_a_file_too_large_for_any_frame_is_refused_unread(tmp_path, monkeypatch):
    """The size is checked before the file is read: a 2 GiB file in the watched folder would
    otherwise be read whole into memory first."""
    from adedge.runtime.line import sources

    monkeypatch.setattr(sources, "MAX_FRAME_BYTES", 10_000)
    (tmp_path / "huge.png").write_bytes(_encoded(0, ".png") + b"\0" * 20_000)

    def no_read(self, *args):
        raise AssertionError("the file was read")

    watcher = _watch(tmp_path, give_up_seconds=2 * SETTLE)
    monkeypatch.setattr(sources, "decode_image", no_read)
    watcher.wait_for(1)
    seen = watcher.finish()
    assert len(seen) == 1 and "image too large" in seen[0].error and "not read" in seen[0].error


def test_a_file_that_never_settles_is_said_once(tmp_path):
    """A camera that rewrites latest.png faster than --settle starves the watch: one line says so."""
    lines: list[str] = []
    clock = ManualClock()
    watcher = Collector(WatchedFolder(tmp_path, settle_seconds=SETTLE, poll_seconds=POLL, give_up_seconds=4 * SETTLE,
                                      log=lines.append, clock=clock))
    versions = [_encoded(seed, ".png") for seed in range(2)]
    for n in range(40):  # a new version every quarter of the settle time, for 10 settle times
        (tmp_path / "latest.png").write_bytes(versions[n % 2])
        clock.set(n * SETTLE / 4)
    seen = watcher.finish()
    assert [s.name for s in seen] == ["latest.png"]  # the version left at the stop
    assert len(lines) == 1 and "latest.png has not stayed unchanged for --settle 0.3 s" in lines[0], lines
