"""The line-side model: a validated bundle + an engine, with resizing and thresholds around it."""

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from adedge.data.images import load_image, resize_image, resize_map
from adedge.errors import AdedgeError
from adedge.runtime.bundle import THRESHOLD, Bundle, read_bundle
from adedge.runtime.engines import Engine, create_engine

Frame = np.ndarray | Path | str


@dataclass(frozen=True)
class Result:
    """One inspected frame. The map and mask have the frame's own size; 0.5 is the threshold."""

    score: float
    anomalous: bool
    anomaly_map: np.ndarray
    mask: np.ndarray

    @property
    def label(self) -> str:
        return "NG" if self.anomalous else "OK"


class Model:
    """Load with Model.load(bundle); predict(frame) or predict_batch(frames)."""

    def __init__(self, bundle: Bundle, engine: Engine) -> None:
        self.bundle, self.engine = bundle, engine

    @classmethod
    def load(cls, path: Path | str, backend: str = "openvino", device: str = "CPU", threads: int | None = None) -> "Model":
        bundle = read_bundle(path)
        return cls(bundle, create_engine(bundle, backend, device, threads))

    @property
    def metadata(self) -> dict:
        return self.bundle.metadata

    @property
    def input_size(self) -> tuple[int, int]:
        return self.bundle.input_size

    def infer(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Run the graph on uint8 [N, H, W, 3] at the input size: maps [N, H, W] and scores [N]."""
        if batch.dtype != np.uint8 or batch.ndim != 4 or batch.shape[1:] != (*self.input_size, 3):
            raise AdedgeError(f"expected uint8 [N, {self.input_size[0]}, {self.input_size[1]}, 3], got {batch.dtype} {list(batch.shape)}")
        anomaly_map, score = self.engine.infer(batch)
        return anomaly_map[:, 0], score

    def _frame(self, frame: Frame) -> np.ndarray:
        image = load_image(frame) if isinstance(frame, (str, Path)) else frame
        if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
            raise AdedgeError(f"a frame must be uint8 RGB [H, W, 3], got {image.dtype} {list(image.shape)}")
        return image

    def predict_batch(self, frames: list[Frame], batch_size: int = 8) -> list[Result]:
        """Inspect frames (arrays or image paths); each result is independent of its batch-mates."""
        results = []
        for start in range(0, len(frames), batch_size):
            images = [self._frame(f) for f in frames[start : start + batch_size]]
            maps, scores = self.infer(np.stack([resize_image(i, self.input_size) for i in images]))
            for image, anomaly_map, score in zip(images, maps, scores):
                full_map = resize_map(anomaly_map, image.shape[:2])
                results.append(Result(float(score), bool(score > THRESHOLD), full_map, full_map > THRESHOLD))
        return results

    def predict(self, frame: Frame) -> Result:
        return self.predict_batch([frame])[0]
