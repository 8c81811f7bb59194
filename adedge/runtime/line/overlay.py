"""Heat-map overlays for people: the frame with its suspicious regions in colour, the defect outline in
red (and, where known, the true defect's in magenta), above a strip that states the verdict, the score and the threshold beside a colour bar.

The anomaly map is calibrated (0.5 = the threshold, good parts ~0.1-0.2), so the heat fades out well
below the threshold: painted everywhere, a coarse map (DFM's pooled 4x4 cells) colours the whole part and a
person no longer sees where to look.
"""

import cv2
import numpy as np

from adedge.data.images import resize_mask
from adedge.runtime.inference.model import Result

FADE = 0.2  # the heat is transparent this far below the threshold and rises to OPACITY at it
OPACITY = 0.6
OUTLINE, TRUTH_OUTLINE = (255, 0, 0), (255, 0, 255)  # magenta: in no colour of the heat
LABEL_COLOURS = {"OK": (64, 192, 87), "CHECK": (255, 170, 0), "NG": (255, 80, 80)}
TEXT, STRIP, BAR_BACKGROUND = (255, 255, 255), (33, 37, 41), (128, 128, 128)
FONT = cv2.FONT_HERSHEY_SIMPLEX


def _blend(background: np.ndarray, values: np.ndarray, threshold: float) -> np.ndarray:
    """BACKGROUND (uint8 RGB) under the colours of map VALUES (0..1, blue to red), each as opaque as
    its value is close to or above THRESHOLD."""
    heat = cv2.cvtColor(cv2.applyColorMap(np.uint8(np.rint(values * 255)), cv2.COLORMAP_JET), cv2.COLOR_BGR2RGB)
    alpha = (OPACITY * np.clip((values - (threshold - FADE)) / FADE, 0.0, 1.0))[..., None]
    return np.uint8(np.rint(background * (1.0 - alpha) + heat * alpha))


def _fitting_scale(text: str, width: int, scale: float, thickness: int) -> float:
    """SCALE, or less where TEXT would not fit in WIDTH pixels."""
    (text_width, _), _ = cv2.getTextSize(text, FONT, scale, thickness)
    return min(scale, scale * width / text_width)


def _strip(width: int, result: Result) -> np.ndarray:
    """The band under the frame: the verdict, score and threshold as text, and the colour bar of the
    map's 0..1 scale (faded where the heat is, with the threshold marked)."""
    unit = width / 320
    pad, thickness, bold = max(4, round(8 * unit)), max(1, round(unit)), max(1, round(2 * unit))
    threshold = result.point.threshold
    label, details = result.label, f"  score {result.score:.3f}  threshold {threshold:.2f}"
    longest = max(LABEL_COLOURS, key=len)  # one text size for every label: overlays of one width match
    scale = _fitting_scale(longest + details, width - 2 * pad, max(0.35, 0.6 * unit), bold)
    (label_width, text_height), baseline = cv2.getTextSize(label, FONT, scale, bold)
    tick_scale = 0.8 * scale
    (_, tick_height), _ = cv2.getTextSize("0", FONT, tick_scale, thickness)
    bar_top, bar_height = pad + text_height + baseline + pad, max(6, round(10 * unit))
    tick_y = bar_top + bar_height + pad // 2 + tick_height
    strip = np.full((tick_y + pad, width, 3), STRIP, np.uint8)
    cv2.putText(strip, label, (pad, pad + text_height), FONT, scale, LABEL_COLOURS[label], bold, cv2.LINE_AA)
    cv2.putText(strip, details, (pad + label_width, pad + text_height), FONT, scale, TEXT, thickness, cv2.LINE_AA)

    left, right = pad, width - pad
    values = np.tile(np.linspace(0.0, 1.0, right - left), (bar_height, 1))
    strip[bar_top : bar_top + bar_height, left:right] = _blend(np.full((*values.shape, 3), BAR_BACKGROUND, np.uint8), values, threshold)
    at = left + round(threshold * (right - left - 1))
    cv2.line(strip, (at, bar_top - pad // 2), (at, bar_top + bar_height + pad // 4), TEXT, thickness + 1)
    ticks = [(f"{threshold:.2f}", at)] + [(text, x) for text, x in (("0", left), ("1", right)) if abs(x - at) > 40 * unit]
    for text, x in ticks:
        (tick_width, _), _ = cv2.getTextSize(text, FONT, tick_scale, thickness)
        x = min(max(x - tick_width // 2, left), right - tick_width)
        cv2.putText(strip, text, (x, tick_y), FONT, tick_scale, TEXT, thickness, cv2.LINE_AA)
    return strip


def _outline(image: np.ndarray, mask: np.ndarray, colour: tuple[int, int, int]) -> None:
    contours, _ = cv2.findContours(mask.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    cv2.drawContours(image, contours, -1, colour, max(1, image.shape[0] // 256))


def overlay(image: np.ndarray, result: Result, truth: np.ndarray | None = None) -> np.ndarray:
    """uint8 RGB [H + strip, W, 3]: IMAGE (uint8 RGB [H, W, 3], RESULT's frame) with its map in colour
    where it nears or passes the threshold, the outline of the region above it, the outline of the
    TRUTH mask (the true defect, bool at any size; in an evaluation, to see what a miss missed) and
    under the frame (so that no text hides any of the part) the verdict, score, threshold and colour bar."""
    anomaly_map = result.anomaly_map
    values = np.where(np.isfinite(anomaly_map), np.clip(anomaly_map, 0.0, 1.0), 1.0)  # not finite: as bad as it gets
    framed = _blend(image, values, result.point.threshold)
    _outline(framed, result.mask, OUTLINE)
    if truth is not None:
        _outline(framed, resize_mask(truth, image.shape[:2]), TRUTH_OUTLINE)
    return np.vstack([framed, _strip(image.shape[1], result)])
