"""A procedural MVTec-layout dataset: brushed-metal plates with scratches, spots and cracks.

Deterministic from a seed, generated in seconds, so the demo and the tests need nothing downloaded.
"""

from pathlib import Path

import cv2
import numpy as np

from adedge.data.images import save_image

DEFECTS = ("scratch", "spot", "crack")
_TINT = np.array([0.92, 0.96, 1.0], dtype=np.float32)


HOLES = ((0.2, 0.2), (0.2, 0.8), (0.8, 0.2), (0.8, 0.8))


def _plate(rng: np.random.Generator, size: int) -> np.ndarray:
    """A good part: brushed-metal streaks, soft lighting and four bolt holes, as float gray 0..1."""
    noise = rng.normal(0.0, 1.0, (size, size)).astype(np.float32)
    streaks = cv2.GaussianBlur(noise, (0, 0), sigmaX=size / 20, sigmaY=0.7)
    streaks /= streaks.std() + 1e-6
    ys, xs = np.mgrid[0:size, 0:size].astype(np.float32) / size
    angle = rng.uniform(0, 2 * np.pi)
    light = 0.12 * ((xs - 0.5) * np.cos(angle) + (ys - 0.5) * np.sin(angle))
    plate = 0.55 + rng.uniform(-0.03, 0.03) + 0.05 * streaks + light
    shift = rng.integers(-2, 3, size=2)
    for cx, cy in HOLES:
        centre = (int(cx * size) + int(shift[0]), int(cy * size) + int(shift[1]))
        cv2.circle(plate, centre, size // 18, 0.18, -1, lineType=cv2.LINE_AA)
        cv2.circle(plate, centre, size // 18 + 2, 0.75, 1, lineType=cv2.LINE_AA)
    return plate


def _random_point(rng: np.random.Generator, size: int) -> tuple[int, int]:
    """A point inside the plate's margin and clear of the bolt holes (a defect must not hide in one)."""
    low, high = size // 8, size - size // 8
    while True:
        x, y = int(rng.integers(low, high)), int(rng.integers(low, high))
        if min(np.hypot(x - cx * size, y - cy * size) for cx, cy in HOLES) > size / 7:
            return x, y


def _draw_defect(kind: str, rng: np.random.Generator, canvases: list[np.ndarray], size: int) -> None:
    """Draw one defect of KIND with the same geometry on the image (value) and the mask (1.0)."""
    start = _random_point(rng, size)
    if kind == "scratch":
        length, angle = rng.uniform(0.25, 0.5) * size, rng.uniform(0, np.pi)
        end = (int(start[0] + length * np.cos(angle)), int(start[1] + length * np.sin(angle)))
        for canvas, value in zip(canvases, (0.95, 1.0)):
            cv2.line(canvas, start, end, value, 2)
    elif kind == "spot":
        axes = (int(rng.integers(size // 32, size // 14)), int(rng.integers(size // 32, size // 14)))
        angle = float(rng.uniform(0, 180))
        for canvas, value in zip(canvases, (0.2, 1.0)):
            cv2.ellipse(canvas, start, axes, angle, 0, 360, value, -1)
    elif kind == "crack":
        steps = rng.normal(0, 1, (14, 2)) * size / 40 + rng.normal(0, 1, 2) * size / 50
        points = np.clip(np.cumsum(np.vstack([start, steps]), axis=0), 0, size - 1).astype(np.int32)
        for canvas, value in zip(canvases, (0.08, 1.0)):
            cv2.polylines(canvas, [points], False, value, 2)
    else:
        raise ValueError(f"unknown defect kind {kind!r}")


def _render(plate: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    noisy = plate + rng.normal(0.0, 0.01, plate.shape).astype(np.float32)
    return np.clip(noisy[..., None] * _TINT * 255.0, 0, 255).astype(np.uint8)


def generate_synthetic(
    root: Path | str,
    category: str = "plate",
    seed: int = 0,
    train: int = 60,
    test_good: int = 15,
    per_defect: int = 10,
    size: int = 256,
) -> Path:
    """Write ROOT/CATEGORY in the MVTec layout and return that category folder."""
    folder = Path(root) / category
    jobs = [("train", "good", i) for i in range(train)] + [("test", "good", i) for i in range(test_good)]
    jobs += [("test", kind, i) for kind in DEFECTS for i in range(per_defect)]
    for number, (split, kind, index) in enumerate(jobs):
        rng = np.random.default_rng([seed, number])
        plate = _plate(rng, size)
        out = folder / split / kind
        out.mkdir(parents=True, exist_ok=True)
        if kind != "good":
            mask = np.zeros_like(plate)
            _draw_defect(kind, rng, [plate, mask], size)
            masks = folder / "ground_truth" / kind
            masks.mkdir(parents=True, exist_ok=True)
            save_image(masks / f"{index:03d}_mask.png", (mask > 0.5).astype(np.uint8) * 255)
        save_image(out / f"{index:03d}.png", _render(plate, rng))
    return folder
