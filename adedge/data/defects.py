"""Synthetic defects drawn on real good images, so that a threshold can be set without defect images.

Each defect is small and made of the image's own colours, so it is about as subtle as a real surface
defect (bold marks in fixed colours would teach the threshold that defects are easy to see and put
it too high): a blotch (an irregular spot whose colour is shifted), a misplaced patch (a piece of the
image copied elsewhere: a wrong, missing or doubled feature), a scratch (a thin line brighter or
darker than where it starts). They land in the central 60 % of the frame, where an inspection
camera puts the part.
"""

import cv2
import numpy as np

KINDS = ("blotch", "patch", "scratch")


def _centre_point(rng: np.random.Generator, height: int, width: int) -> tuple[int, int]:
    return int(rng.integers(height // 5, 4 * height // 5)), int(rng.integers(width // 5, 4 * width // 5))


def _blotch(image: np.ndarray, rng: np.random.Generator) -> None:
    height, width = image.shape[:2]
    radius = np.sqrt(rng.uniform(0.002, 0.01) * height * width / np.pi)  # 0.2 % to 1 % of the frame
    y, x = _centre_point(rng, height, width)
    noise = cv2.GaussianBlur(rng.normal(size=(height, width)).astype(np.float32), (0, 0), max(height, width) / 30)
    ys, xs = np.ogrid[:height, :width]
    inside = np.hypot(ys - y, xs - x) / radius + 0.6 * noise / (noise.std() + 1e-6) < 1  # a ragged edge
    shift = rng.uniform(-1, 1, 3)
    image[inside] += shift / np.abs(shift).max() * rng.uniform(25, 60)


def _patch(image: np.ndarray, rng: np.random.Generator) -> None:
    height, width = image.shape[:2]
    rows, cols = int(height * rng.uniform(0.05, 0.12)), int(width * rng.uniform(0.05, 0.12))
    source_y, source_x = int(rng.integers(0, height - rows)), int(rng.integers(0, width - cols))
    y, x = int(rng.integers(height // 5, 4 * height // 5 - rows)), int(rng.integers(width // 5, 4 * width // 5 - cols))
    piece = image[source_y : source_y + rows, source_x : source_x + cols].copy()
    image[y : y + rows, x : x + cols] = piece[::-1] if rng.random() < 0.5 else piece


def _scratch(image: np.ndarray, rng: np.random.Generator) -> None:
    height, width = image.shape[:2]
    y, x = _centre_point(rng, height, width)
    length, angle = rng.uniform(0.05, 0.15) * max(height, width), rng.uniform(0, np.pi)
    end = (int(x + length * np.cos(angle)), int(y + length * np.sin(angle)))
    colour = image[y, x] + rng.choice([-1.0, 1.0]) * rng.uniform(40, 80)
    cv2.line(image, (x, y), end, tuple(float(c) for c in colour), max(1, height // 150))


DRAW = {"blotch": _blotch, "patch": _patch, "scratch": _scratch}


def with_defect(image: np.ndarray, kind: str, rng: np.random.Generator) -> np.ndarray:
    """A copy of the uint8 RGB IMAGE [H, W, 3] (at least 10 pixels a side) with one defect of KIND."""
    canvas = image.astype(np.float32)
    DRAW[kind](canvas, rng)
    return np.clip(canvas, 0, 255).astype(np.uint8)


def defective_copies(images: list[np.ndarray], rng: np.random.Generator) -> list[np.ndarray]:
    """One copy of each image per defect kind, each with one defect."""
    return [with_defect(image, kind, rng) for image in images for kind in KINDS]
