"""Where frames come from: image files, a watched folder, a video file, a camera or a stream URL.

A source yields `Frame`s in order; each carries a `read()` that returns the uint8 RGB image, so that
decoding can run ahead on worker threads (image files) or has already happened (OpenCV captures).
"""

import glob
import os
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import cv2
import numpy as np

from adedge.data.images import is_image_file, load_image
from adedge.errors import AdedgeError

POLL_SECONDS = 0.2  # how often a watched folder is listed


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


class ImageFiles:
    """A fixed (possibly lazy, endless) sequence of image files, decoded when read."""

    def __init__(self, paths: Iterable[Path]) -> None:
        self.paths = paths

    def frames(self, stop: threading.Event) -> Iterator[Frame]:
        for index, path in enumerate(self.paths):
            if stop.is_set():
                return
            yield Frame(str(path), index, lambda path=path: load_image(path))


class WatchedFolder:
    """A folder's images, then every image that arrives in it, until stopped.

    A new file is taken once its size and modification time held still for one poll, so a file
    still being written is not read half-done. Names are remembered only while the file exists.
    """

    def __init__(self, folder: Path, poll_seconds: float = POLL_SECONDS) -> None:
        self.folder, self.poll_seconds = folder, poll_seconds

    def _listing(self) -> dict[str, tuple[int, int]]:
        with os.scandir(self.folder) as entries:
            return {e.name: (e.stat().st_size, e.stat().st_mtime_ns) for e in entries if is_image_file(Path(e.path))}

    def frames(self, stop: threading.Event) -> Iterator[Frame]:
        seen: set[str] = set()
        previous: dict[str, tuple[int, int]] = {}
        index = 0
        first = True
        while not stop.is_set():
            try:
                listing = self._listing()
            except OSError as exc:
                raise AdedgeError(f"cannot list the watched folder {self.folder}: {exc.strerror}") from None
            seen &= listing.keys()
            settled = sorted(n for n, state in listing.items() if n not in seen and (first or previous.get(n) == state))
            for name in settled:
                if stop.is_set():
                    return
                seen.add(name)
                path = self.folder / name
                yield Frame(str(path), index, lambda path=path: load_image(path))
                index += 1
            previous, first = listing, False
            stop.wait(self.poll_seconds)


class Capture:
    """A video file, camera index or stream URL through OpenCV; frames arrive decoded."""

    def __init__(self, spec: str) -> None:
        self.spec = spec
        what = f"camera {spec}" if spec.isdigit() else ("stream" if "://" in spec else "video")
        self.capture = cv2.VideoCapture(int(spec) if spec.isdigit() else spec)
        if not self.capture.isOpened():
            hint = " (is it connected, and free?)" if spec.isdigit() else ""
            raise AdedgeError(f"cannot open {what} {spec}{hint}")
        self.what = what

    def frames(self, stop: threading.Event) -> Iterator[Frame]:
        index = 0
        try:
            while not stop.is_set():
                ok, bgr = self.capture.read()
                if not ok:
                    if index == 0:
                        raise AdedgeError(f"{self.what} {self.spec} gave no frames")
                    return
                rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
                yield Frame(self.spec, index, lambda rgb=rgb: rgb)
                index += 1
        finally:
            self.capture.release()


def _image_paths(inputs: list[str]) -> list[Path]:
    """Files, folders (their images, sorted) and glob patterns, in the order given."""
    paths: list[Path] = []
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            paths += sorted(p for p in path.iterdir() if is_image_file(p))
        elif path.is_file():
            paths.append(path)
        elif glob.has_magic(item):
            paths += sorted(Path(p) for p in glob.glob(item) if Path(p).is_file())
        else:
            raise AdedgeError(f"input not found: {item} (not a file, folder, glob, camera index or URL)")
    if not paths:
        raise AdedgeError(f"no images found in {' '.join(inputs)}")
    return paths


def open_source(inputs: str | list[str], watch: bool = False) -> Source:
    """The source INPUTS name: image files, folders and globs; one folder to --watch; or one video
    file, camera index (0, 1, ...) or stream URL (rtsp://, http://)."""
    inputs = [inputs] if isinstance(inputs, str) else list(inputs)
    if not inputs:
        raise AdedgeError("no source given")
    single = inputs[0] if len(inputs) == 1 else None
    if watch:
        if single is None or not Path(single).is_dir():
            raise AdedgeError(f"--watch needs one folder, got {' '.join(inputs)}")
        return WatchedFolder(Path(single))
    if single is not None and (single.isdigit() or "://" in single):
        return Capture(single)
    if single is not None and Path(single).is_file() and not is_image_file(Path(single)):
        return Capture(single)
    return ImageFiles(_image_paths(inputs))

