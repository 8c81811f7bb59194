"""Does a watched folder inspect every part exactly once, whole, when the writer is slow? And how late?

    .venv/bin/python benchmarks/watch_probe.py [--parts 30] [--rewrites 5] [--settle 1.0] [--seed 0]

A writer thread writes PARTS images (PNG and JPEG in turn) into a temporary folder, each in two halves
with a random pause of 0.1 to 2 s between them, and among them rewrites one name (latest.png)
REWRITES times, each time once its previous content was inspected, while a WatchedFolder yields them.
Each content is recognised by its decoded pixels. Prints the contents written, the frames inspected,
the contents inspected exactly once, the failed frames, and the delay from a file's last byte to its
frame.
"""

import argparse
import hashlib
import io
import random
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
from PIL import Image

from adedge.data.images import decode_image
from adedge.defaults import SETTLE_SECONDS
from adedge.runtime.line.sources import WatchedFolder


def encoded(rng: np.random.Generator, suffix: str) -> bytes:
    """A 320x240 noise image (it barely compresses: half the bytes are half the image)."""
    buffer = io.BytesIO()
    Image.fromarray(rng.integers(0, 256, (240, 320, 3), dtype=np.uint8)).save(buffer, format="PNG" if suffix == ".png" else "JPEG")
    return buffer.getvalue()


def digest(image: np.ndarray) -> str:
    return hashlib.sha1(image.tobytes()).hexdigest()


class Probe:
    """The writer's record (content: when its last byte was written) and the watcher's (content: when inspected)."""

    def __init__(self, folder: Path, settle: float) -> None:
        self.folder, self.settle = folder, settle
        self.completed: dict[str, float] = {}
        self.inspected: dict[str, list[float]] = {}
        self.failed: list[str] = []
        self.stop = threading.Event()

    def write(self, name: str, data: bytes, pause: float) -> str:
        """Write DATA to NAME in two halves PAUSE seconds apart; its content's digest."""
        key = digest(decode_image(data, name))
        with open(self.folder / name, "wb") as file:
            file.write(data[: len(data) // 2])
            file.flush()
            time.sleep(pause)
            file.write(data[len(data) // 2:])
        self.completed[key] = time.monotonic()
        return key

    def writer(self, parts: int, rewrites: int, seed: int) -> None:
        rng, pauses = np.random.default_rng(seed), random.Random(seed)
        every = max(1, parts // rewrites)
        latest: list[str] = []  # latest.png's contents so far
        for number in range(parts):
            suffix = (".png", ".jpg")[number % 2]
            self.write(f"part{number:03d}{suffix}", encoded(rng, suffix), pauses.uniform(0.1, 2.0))
            if number % every == 0 and len(latest) < rewrites:
                deadline = time.monotonic() + 15 * self.settle
                while latest and latest[-1] not in self.inspected and time.monotonic() < deadline:
                    time.sleep(0.05)
                latest.append(self.write("latest.png", encoded(rng, ".png"), pauses.uniform(0.1, 2.0)))

    def watch(self) -> None:
        for frame in WatchedFolder(self.folder, self.settle).frames(self.stop):
            try:
                key = digest(frame.read())
            except Exception as exc:  # noqa: BLE001 - a failed frame is counted, whatever broke
                self.failed.append(f"{frame.source}: {exc}")
                continue
            self.inspected.setdefault(key, []).append(time.monotonic())


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--parts", type=int, default=30)
    parser.add_argument("--rewrites", type=int, default=5)
    parser.add_argument("--settle", type=float, default=SETTLE_SECONDS)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        probe = Probe(Path(folder), args.settle)
        watcher = threading.Thread(target=probe.watch)
        watcher.start()
        probe.writer(args.parts, args.rewrites, args.seed)
        deadline = time.monotonic() + 12 * args.settle  # past the give-up time
        while len(probe.inspected) < len(probe.completed) and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(2 * args.settle)  # room for a second, wrong inspection to show
        probe.stop.set()
        watcher.join()
    once = sum(len(probe.inspected.get(key, [])) == 1 for key in probe.completed)
    delays = [probe.inspected[key][0] - done for key, done in probe.completed.items() if key in probe.inspected]
    delay = f"{np.mean(delays):.2f} s (max {np.max(delays):.2f} s, settle {args.settle:g} s)" if delays else "n/a (none inspected)"
    print(f"written {len(probe.completed)}, inspected {sum(map(len, probe.inspected.values()))}, exactly once: {once}, "
          f"failed: {len(probe.failed)}, mean delay after complete: {delay}")
    for failure in probe.failed:
        print(f"  failed: {failure}")


if __name__ == "__main__":
    main()
