"""The line-side model: a validated bundle + an engine, with results (verdict, frame-size map) around it."""

from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np

from adedge.bundle import Bundle, BundleMetadata, model_name, read_bundle
from adedge.data.images import load_image, resize_map
from adedge.errors import AdedgeError
from adedge.runtime.inference.engines import Engine, create_engine
from adedge.runtime.inference.verdict import Label, OperatingPoint, Verdict

FrameLike = np.ndarray | Path | str  # an RGB uint8 array or an image file


@dataclass(frozen=True)
class Result:
    """One inspected frame. The map and mask have the frame's own size, and are computed when first
    asked for (a stream that only needs scores never pays for them); the mask marks map values above
    the NG threshold (the map is calibrated like the score)."""

    verdict: Verdict
    model_map: np.ndarray  # at the model's input size
    frame_size: tuple[int, int]
    point: OperatingPoint  # the cut-offs the verdict was decided at

    @property
    def score(self) -> float:
        return self.verdict.score

    @property
    def label(self) -> Label:
        return self.verdict.label

    @property
    def anomalous(self) -> bool:
        return self.verdict.anomalous

    @cached_property
    def anomaly_map(self) -> np.ndarray:
        return resize_map(self.model_map, self.frame_size)

    @cached_property
    def mask(self) -> np.ndarray:
        return self.point.flagged(self.anomaly_map)


class Model:
    """Load with Model.load(bundle); predict(frame) or predict_batch(frames) of any size (a stream of
    frames: adedge.runtime.inspect_stream)."""

    def __init__(self, bundle: Bundle, engine: Engine, mode: str = "latency", point: OperatingPoint | None = None) -> None:
        self.bundle, self.engine, self.mode = bundle, engine, mode
        self.point = point or OperatingPoint.of_bundle(bundle.metadata.operating_point)

    @classmethod
    def load(
        cls,
        path: Path | str,
        backend: str = "openvino",
        device: str = "CPU",
        threads: int | None = None,
        mode: str = "latency",
        key: bytes | None = None,
        threshold: float | None = None,
        check: float | None = None,
    ) -> "Model":
        """MODE "throughput" keeps several requests in flight in `inspect_stream`; with KEY (bytes) the
        bundle must carry a signature made with it. THRESHOLD and CHECK move the bundle's NG
        threshold and CHECK band's start (see `OperatingPoint`)."""
        bundle = read_bundle(path, key)
        point = OperatingPoint.of_bundle(bundle.metadata.operating_point, threshold, check)
        return cls(bundle, create_engine(bundle, backend, device, threads, mode), mode, point)

    @property
    def metadata(self) -> BundleMetadata:
        return self.bundle.metadata

    @property
    def name(self) -> str:
        """The name its records carry: the category and model it was trained as (e.g. bottle_dfm)."""
        return model_name(None, self.metadata)

    @property
    def input_size(self) -> tuple[int, int]:
        """The size the graph resizes every frame to (and of its anomaly map)."""
        return self.bundle.metadata.input_size

    def infer(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Run the graph on uint8 frames [N, H, W, 3]: scores [N] and anomaly maps [N, h, w] at the model's size."""
        if batch.dtype != np.uint8 or batch.ndim != 4 or batch.shape[3] != 3:
            raise AdedgeError(f"expected uint8 frames [N, H, W, 3], got {batch.dtype} {list(batch.shape)}")
        return self.engine.infer(batch)

    def _frame(self, frame: FrameLike) -> np.ndarray:
        image = load_image(frame) if isinstance(frame, (str, Path)) else frame
        if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
            raise AdedgeError(f"a frame must be uint8 RGB [H, W, 3], got {image.dtype} {list(image.shape)}")
        return image

    def predict_batch(self, frames: list[FrameLike], batch_size: int = 8) -> list[Result]:
        """Inspect frames (arrays or image paths, any sizes); each result is independent of its batch-mates."""
        results: list[Result] = []
        for start in range(0, len(frames), batch_size):
            images = [self._frame(f) for f in frames[start : start + batch_size]]
            batch: list[Result | None] = [None] * len(images)
            for shape in dict.fromkeys(image.shape for image in images):  # one call per frame size
                same = [n for n, image in enumerate(images) if image.shape == shape]
                scores, maps = self.infer(np.stack([images[n] for n in same]))
                for n, score, anomaly_map in zip(same, scores, maps):
                    batch[n] = self.result(images[n], anomaly_map, float(score))
            results += batch
        return results

    def predict(self, frame: FrameLike) -> Result:
        return self.predict_batch([frame])[0]

    def result(self, image: np.ndarray, anomaly_map: np.ndarray, score: float) -> Result:
        """The Result for IMAGE from the graph's map and score for it."""
        return Result(self.point.decide(score), anomaly_map, image.shape[:2], self.point)
