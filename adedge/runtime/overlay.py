"""Heat-map overlays for people: the frame, its anomaly map in colour, the defect outline in red."""

import cv2
import numpy as np


def overlay(image: np.ndarray, anomaly_map: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """uint8 RGB [H, W, 3]: map values 0..1 (0.5 = threshold) coloured blue to red over the frame."""
    heat = cv2.applyColorMap(np.uint8(np.clip(anomaly_map, 0.0, 1.0) * 255), cv2.COLORMAP_JET)
    blended = cv2.addWeighted(image, 0.6, cv2.cvtColor(heat, cv2.COLOR_BGR2RGB), 0.4, 0.0)
    contours, _ = cv2.findContours(mask.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    return cv2.drawContours(blended, contours, -1, (255, 0, 0), max(1, image.shape[0] // 256))
