"""Where frames come from: image files, a watched folder, a video file, a camera or a stream URL.

A source yields `Frame`s in order; each carries a `read()` that returns the uint8 RGB image, so that
decoding can run ahead on worker threads (image files) or has already happened (a watched folder,
whose bytes are checked whole before they are decoded, and OpenCV captures).
"""

import contextlib
import glob
import os
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import cv2
import numpy as np

from adedge.data.images import MAX_FRAME_PIXELS, decode_image, is_image_file, load_image
from adedge.defaults import RECONNECT_SECONDS, SETTLE_SECONDS
from adedge.errors import AdedgeError

POLL_SECONDS = 0.2  # how often a watched folder is listed
GIVE_UP_SETTLES = 10  # settle times a watched file may stay unchanged and unreadable before it is reported failed
# a watched file larger than an uncompressed RGB frame at the pixel limit (plus headers) is no frame:
# refused from its size, before a byte of it is read
MAX_FRAME_BYTES = MAX_FRAME_PIXELS * 3 + (1 << 20)
BACKOFF_FIRST, BACKOFF_MAX = 0.5, 2.0  # seconds between attempts to re-open a camera or stream: doubling, capped
# low, so a camera that is back is read again within 2 s, and an attempt to open one costs little

PNG_SIGNATURE, PNG_END = b"\x89PNG\r\n\x1a\n", b"IEND\xaeB`\x82"  # a PNG's last chunk: its type and CRC
JPEG_START, JPEG_END = b"\xff\xd8", b"\xff\xd9"


def _silent(line: str) -> None:
    """The default log of outages and recoveries: nothing."""


@dataclass(frozen=True)
class Frame:
    """One frame of a source: where it came from, its number in the stream, and how to get its pixels."""

    source: str
    index: int
    read: Callable[[], np.ndarray]


class Source(Protocol):
    def frames(self, stop: threading.Event) -> Iterator[Frame]:
        """Frames in order until the source ends or STOP is set."""
        ...


def _decoded(image: np.ndarray) -> Callable[[], np.ndarray]:
    """The read() of a frame decoded already."""
    return lambda: image


def _failed(error: AdedgeError) -> Callable[[], np.ndarray]:
    """The read() of a frame that has no image: it raises ERROR, so the frame is reported failed."""

    def read() -> np.ndarray:
        raise error

    return read


class ImageFiles:
    """A fixed (possibly lazy, endless) sequence of image files, decoded when read."""

    def __init__(self, paths: Iterable[Path]) -> None:
        self.paths = paths

    def frames(self, stop: threading.Event) -> Iterator[Frame]:
        for index, path in enumerate(self.paths):
            if stop.is_set():
                return
            yield Frame(str(path), index, lambda path=path: load_image(path))


def _incomplete(data: bytes) -> str | None:
    """Why DATA is not a whole PNG or JPEG file yet, or None (other formats: decoding judges them)."""
    if not data:
        return "empty file"
    end = data.rstrip(b"\0")  # a writer may pad the file with zeros
    if data.startswith(PNG_SIGNATURE) and not end.endswith(PNG_END):
        return "PNG without its IEND chunk"
    if data.startswith(JPEG_START) and not end.endswith(JPEG_END):
        return "JPEG without its end marker"
    return None


def _state(stat: os.stat_result) -> tuple[int, ...]:
    """What tells a file's contents apart: size and modification time, and the inode and change
    time, since a rewrite in place that restores the size and modification time (cp -p, rsync -t
    --inplace, some FTP uploads) still changes the change time, and a replacement the inode."""
    return stat.st_size, stat.st_mtime_ns, stat.st_ino, stat.st_ctime_ns


class WallClock:
    """The time a watched folder or a camera reads and waits on (tests pass a fake one, which moves
    only when told to)."""

    @staticmethod
    def now() -> float:
        return time.monotonic()

    @staticmethod
    def wait(stop: threading.Event, seconds: float) -> bool:
        """Wait SECONDS, or less if STOP is set meanwhile; whether it is."""
        return stop.wait(seconds)


@dataclass
class _Pending:
    """A watched file not inspected in its current state yet."""

    state: tuple[int, ...]  # see _state
    since: float  # the clock's time when this state was first seen
    failure: str | None = None  # why it could not be taken in this state, once tried


class WatchedFolder:
    """A folder's images, then every image that arrives in it or is rewritten, until stopped.

    What a camera writing into the folder can rely on:
    - A file is taken only once its size and modification time stayed unchanged for settle_seconds
      and, for PNG and JPEG, its bytes end as a whole file ends (IEND chunk, end marker FFD9). The
      bytes so checked are the ones decoded and inspected, so a writer that pauses for longer than
      the settle time is waited for, never read half-done.
    - Each (name, content) is inspected exactly once: a name rewritten later (a camera's latest.png,
      even with the same size) is inspected again. Files already there at the start are inspected.
    - A file that stays unchanged but incomplete or undecodable is re-checked when it changes, and
      reported once as a failed frame if it stays so for give_up_seconds (default 10 settle times).
    - When stopped, every file not yet inspected in its current state is inspected if it is whole,
      else reported as a failed frame: none is dropped silently. A file that disappears is forgotten.
    """

    def __init__(self, folder: Path, settle_seconds: float = SETTLE_SECONDS, give_up_seconds: float | None = None,
                 poll_seconds: float = POLL_SECONDS, log: Callable[[str], None] = _silent, clock: WallClock = WallClock()) -> None:
        self.folder, self.settle_seconds, self.poll_seconds, self.log, self.clock = folder, settle_seconds, poll_seconds, log, clock
        self.give_up_seconds = GIVE_UP_SETTLES * settle_seconds if give_up_seconds is None else give_up_seconds
        self.waiting: dict[str, float] = {}  # name: when it was first seen not yet inspected, in any state
        self.starved: set[str] = set()  # names said never to settle

    def _check_starving(self, name: str, now: float) -> None:
        """Say once that NAME has waited give_up_seconds without ever staying unchanged for the settle
        time (a camera rewriting latest.png every 0.3 s with --settle 1): none of its frames is inspected."""
        waited = now - self.waiting.setdefault(name, now)
        if waited >= self.give_up_seconds and name not in self.starved:
            self.starved.add(name)
            self.log(f"{self.folder / name} has not stayed unchanged for --settle {self.settle_seconds:g} s in {waited:.0f} s: "
                     "none of its versions is inspected; lower --settle, or have the camera write each frame under a new name")

    def _listing(self) -> dict[str, tuple[int, ...]]:
        """The state of each image file; one that vanishes while listed is left out."""
        listing = {}
        try:
            with os.scandir(self.folder) as entries:
                for entry in entries:
                    with contextlib.suppress(FileNotFoundError):
                        if is_image_file(Path(entry.path)):
                            listing[entry.name] = _state(entry.stat())
        except OSError as exc:
            raise AdedgeError(f"cannot list the watched folder {self.folder}: {exc.strerror}") from None
        return listing

    def _take(self, name: str, state: tuple[int, ...]) -> np.ndarray | None:
        """NAME's image, decoded from bytes read while the file was still in STATE; None if it
        vanished or changed meanwhile; AdedgeError naming the file and the cause if it is
        incomplete or does not decode."""
        path = self.folder / name
        try:
            with open(path, "rb") as file:
                stat = os.fstat(file.fileno())
                if stat.st_size > MAX_FRAME_BYTES:
                    raise AdedgeError(f"image too large: {path} holds {stat.st_size / 2**20:.0f} MiB, more than any frame of "
                                      f"{MAX_FRAME_PIXELS // 1_000_000} megapixels; it is not read")
                data = file.read()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise AdedgeError(f"cannot read {path}: {exc.strerror}") from None
        if _state(stat) != state or len(data) != stat.st_size:
            return None
        cause = _incomplete(data)
        if cause is not None:
            raise AdedgeError(f"incomplete image: {path} ({cause})")
        return decode_image(data, path)

    def _due(self, name: str, pending: _Pending, now: float) -> Callable[[], np.ndarray] | None:
        """The read() of NAME's frame if it is to be yielded now, else None (not settled, still
        within the give-up time, or changed meanwhile)."""
        age = now - pending.since
        if age < self.settle_seconds or (pending.failure is not None and age < self.give_up_seconds):
            return None
        try:
            image = self._take(name, pending.state)
        except AdedgeError as exc:
            if age < self.give_up_seconds:
                pending.failure = str(exc)
                return None
            return _failed(AdedgeError(f"{exc}; unchanged for {age:.0f} s, given up"))
        return None if image is None else _decoded(image)

    def _left_at_stop(self, inspected: dict[str, tuple[int, ...]], index: int) -> Iterator[Frame]:
        """Every file not inspected in its current state: inspected if whole, else reported failed."""
        for name, state in sorted(self._listing().items()):
            if inspected.get(name) == state:
                continue
            path = self.folder / name
            try:
                image = self._take(name, state)
                if image is None:
                    raise AdedgeError(f"{path} was still changing")
                read = _decoded(image)
            except AdedgeError as exc:
                read = _failed(AdedgeError(f"{exc} when inspection stopped"))
            yield Frame(str(path), index, read)
            index += 1

    def frames(self, stop: threading.Event) -> Iterator[Frame]:
        inspected: dict[str, tuple[int, ...]] = {}  # name: its state when last inspected
        pending: dict[str, _Pending] = {}
        index = 0
        while not stop.is_set():
            listing, now = self._listing(), self.clock.now()
            inspected = {name: state for name, state in inspected.items() if name in listing}
            pending = {name: entry for name, entry in pending.items() if listing.get(name) == entry.state}
            self.waiting = {name: since for name, since in self.waiting.items() if name in listing}  # gone: forgotten
            for name, state in sorted(listing.items()):
                if stop.is_set():
                    break
                if inspected.get(name) == state:
                    continue
                read = self._due(name, pending.setdefault(name, _Pending(state, now)), now)
                if read is None:
                    self._check_starving(name, now)
                else:
                    inspected[name] = state
                    del pending[name]
                    self.waiting.pop(name, None)
                    yield Frame(str(self.folder / name), index, read)
                    index += 1
            self.clock.wait(stop, self.poll_seconds)
        yield from self._left_at_stop(inspected, index)


@contextlib.contextmanager
def _opencv_silenced() -> Iterator[None]:
    """OpenCV's own log off: opening a missing camera prints a warning from every backend it tries,
    where one line of ours says it all."""
    previous = cv2.utils.logging.getLogLevel()
    cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_SILENT)
    try:
        yield
    finally:
        cv2.utils.logging.setLogLevel(previous)


class Capture:
    """A video file, camera index or stream URL through OpenCV; frames arrive decoded.

    A camera or stream that stops delivering is released and re-opened with back-off (0.5 s,
    doubling, at most 2 s apart), outage and recovery logged, frame numbers counting on; after
    RECONNECT_SECONDS seconds without a frame it is an error. So is a video file that ends clearly
    before the frame count it declares (truncated or damaged), rather than a silently short stream.
    OPEN_CAPTURE makes the capture (cv2.VideoCapture) and CLOCK keeps the time: fakes in tests.
    """

    def __init__(self, spec: str, reconnect_timeout: float = RECONNECT_SECONDS, log: Callable[[str], None] = _silent,
                 open_capture: Callable[[int | str], cv2.VideoCapture] = cv2.VideoCapture, clock: WallClock = WallClock()) -> None:
        self.spec, self.reconnect_timeout, self.log, self.open_capture, self.clock = spec, reconnect_timeout, log, open_capture, clock
        self.camera = _camera_index(spec)
        self.live = self.camera is not None or "://" in spec
        self.name = f"camera {spec}" if self.camera is not None else (f"stream {spec}" if "://" in spec else f"video {spec}")
        self.capture = self._open()
        if not self.capture.isOpened():
            hint = " (is it connected, and free?)" if self.camera is not None else ""
            raise AdedgeError(f"cannot open {self.name}{hint}")

    def _open(self) -> cv2.VideoCapture:
        with _opencv_silenced():
            return self.open_capture(self.spec if self.camera is None else self.camera)

    def _reconnect(self, stop: threading.Event, index: int, since: float) -> tuple[bool, np.ndarray | None]:
        """Re-open the capture with back-off until it gives a frame (returned), STOP is set (False,
        None), or RECONNECT_SECONDS seconds have passed since a frame was last asked for (AdedgeError)."""
        self.log(f"{self.name}: no frame after frame {index - 1}, reconnecting "
                 f"(giving up after {self.reconnect_timeout:g} s without frames)")
        delay = BACKOFF_FIRST
        while True:
            self.capture.release()
            remaining = since + self.reconnect_timeout - self.clock.now()
            if remaining <= 0:
                raise AdedgeError(f"no frames from {self.name} for {self.reconnect_timeout:g} s: giving up")
            if self.clock.wait(stop, min(delay, remaining)):
                return False, None
            self.capture = self._open()
            ok, bgr = self.capture.read() if self.capture.isOpened() else (False, None)
            if ok:
                self.log(f"{self.name}: frames again, after {self.clock.now() - since:.1f} s without")
                return True, bgr
            delay = min(2 * delay, BACKOFF_MAX)

    def _ended(self, index: int, declared: int) -> None:
        """Raise if the source ended without frames, or (a video) clearly before its DECLARED count."""
        if index == 0:
            raise AdedgeError(f"{self.name} gave no frames")
        if index < declared - 1:
            raise AdedgeError(f"{self.name} ended after {index} of its {declared} frames (truncated or damaged file)")

    def frames(self, stop: threading.Event) -> Iterator[Frame]:
        declared = 0 if self.live else int(self.capture.get(cv2.CAP_PROP_FRAME_COUNT))
        index = 0
        try:
            while not stop.is_set():
                asked = self.clock.now()  # not when the last frame came: the consumer may have held it a while
                ok, bgr = self.capture.read()
                if not ok and self.live and index > 0:
                    ok, bgr = self._reconnect(stop, index, asked)
                if not ok:
                    self._ended(index, declared)
                    return
                yield Frame(self.spec, index, _decoded(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)))
                index += 1
        finally:
            self.capture.release()


def _folder_images(folder: Path) -> list[Path]:
    """The images in FOLDER and every sub-folder, sorted by path (a folder's files in name order,
    each sub-folder's after the files that sort before it); hidden files and folders and links to
    folders are left out (a link could loop back)."""
    found = []
    for root, folders, files in os.walk(folder):
        folders[:] = [f for f in folders if not f.startswith(".")]
        found += [path for path in (Path(root) / f for f in files) if is_image_file(path)]
    return sorted(found)


def _image_paths(inputs: list[str]) -> list[Path]:
    """Files, folders (their images and those of their sub-folders, sorted) and glob patterns, in the order given."""
    paths: list[Path] = []
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            paths += _folder_images(path)
        elif path.is_file():
            paths.append(path)
        elif glob.has_magic(item):
            paths += sorted(Path(p) for p in glob.glob(item) if Path(p).is_file())
        else:
            raise AdedgeError(f"input not found: {item} (not a file, folder, glob, camera index or URL)")
    if not paths:
        raise AdedgeError(f"no images found in {' '.join(inputs)}")
    return paths


MAX_SETTLE, MAX_RECONNECT = 3600.0, 86400.0  # longer would inspect nothing (or never give up) until the stop


def _require_seconds(option: str, value: float, most: float) -> None:
    """One clear line for a duration of zero or less, NaN or beyond MOST (inf), which would never
    settle or never wait, or wait for ever."""
    if not 0 < value <= most:
        raise AdedgeError(f"{option} takes a number of seconds above 0 and at most {most:g}, got {value:g}")


def _camera_index(spec: str) -> int | None:
    """SPEC's camera index if it is one: ASCII digits only (int() would also read '٣' or '１' as 3 and 1)."""
    return int(spec) if spec.isascii() and spec.isdigit() else None


MAX_CAMERA_INDEX = 9999  # OpenCV's indices; a larger number is a mistake (and overflows its int)


def open_source(inputs: str | list[str], watch: bool = False, settle_seconds: float = SETTLE_SECONDS,
                reconnect_timeout: float = RECONNECT_SECONDS, log: Callable[[str], None] = _silent) -> Source:
    """The source INPUTS name: image files, folders and globs; one folder to --watch (a file is taken
    once unchanged for SETTLE_SECONDS and whole); or one video file, camera index (0, 1, ...) or
    stream URL (rtsp://, http://), re-opened after an outage, LOG told of it, until
    RECONNECT_SECONDS seconds pass without a frame."""
    _require_seconds("--settle", settle_seconds, MAX_SETTLE)
    _require_seconds("--reconnect-timeout", reconnect_timeout, MAX_RECONNECT)
    inputs = [inputs] if isinstance(inputs, str) else list(inputs)
    if not inputs:
        raise AdedgeError("no source given")
    single = inputs[0] if len(inputs) == 1 else None
    if watch:
        if single is None or not Path(single).is_dir():
            raise AdedgeError(f"--watch needs one folder, got {' '.join(inputs)}")
        return WatchedFolder(Path(single), settle_seconds, log=log)
    camera = None if single is None else _camera_index(single)
    if camera is not None and camera > MAX_CAMERA_INDEX:
        raise AdedgeError(f"camera index must be from 0 to {MAX_CAMERA_INDEX}, got {single}")
    if single is not None and (camera is not None or "://" in single
                               or (Path(single).is_file() and not is_image_file(Path(single)))):
        return Capture(single, reconnect_timeout, log)
    return ImageFiles(_image_paths(inputs))

