"""The whole inference graph as one pure nn.Module: the surface that export writes out.

uint8 frames [N, H, W, 3] of any size -> resize -> normalise -> backbone -> head -> calibrated
(anomaly_map, score). Training runs its images through the very same `Preprocess`, so training and
every client that feeds the exported graph resize identically by construction. Every constant
(input normalisation, fitted head, calibration) is a buffer, so nothing depends on the batch.
"""

import torch
import torch.nn.functional as F
from torch import nn

from adedge.bundle import NG_SCORE, OperatingPointSpec
from adedge.choices import Resize, choice
from adedge.formats import Calibration
from adedge.train.backbones import Backbone

# "antialias": halve the frame (a bilinear halving averages each 2x2 block exactly) while it stays at
# least the model's size, then one bilinear step, so fine texture is averaged, not skipped (close to
# OpenCV's area resize). "bilinear": one bilinear step, which skips pixels when shrinking by more
# than 2. Both are plain Resize ops that PyTorch, ONNX Runtime and OpenVINO compute identically;
# the ONNX Resize `antialias` flag is not: OpenVINO's filter differs from the others.
# two halvings and the last bilinear step, which shrinks by at most 2 without skipping a pixel, average
# frames of up to 8x the model's size (2048 px for 256); a halving that is not needed is a copy
HALVINGS = 2


class Preprocess(nn.Module):
    """uint8 frames [N, H, W, 3], any H and W -> float [N, 3, height, width] in the backbone's units."""

    def __init__(self, size: tuple[int, int], mean: tuple[float, ...], std: tuple[float, ...], resize: str) -> None:
        super().__init__()
        self.size, self.resize = tuple(size), choice(Resize, resize, "--resize")
        self.register_buffer("pixel_mean", torch.tensor(mean).reshape(1, 3, 1, 1) * 255.0)
        self.register_buffer("pixel_std", torch.tensor(std).reshape(1, 3, 1, 1) * 255.0)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        x = image.permute(0, 3, 1, 2).float()
        height, width = self.size
        for _ in range(HALVINGS if self.resize == Resize.ANTIALIAS else 0):
            x = F.interpolate(x, size=(max(height, x.shape[2] // 2), max(width, x.shape[3] // 2)), mode="bilinear", align_corners=False)
        x = F.interpolate(x, size=self.size, mode="bilinear", align_corners=False)
        return (x - self.pixel_mean) / self.pixel_std


class Encoder(nn.Module):
    """uint8 frames [N, H, W, 3] -> Preprocess -> the backbone's {stage: features}."""

    def __init__(self, backbone: Backbone, size: tuple[int, int], resize: str) -> None:
        super().__init__()
        self.preprocess = Preprocess(size, backbone.mean, backbone.std, resize)
        self.backbone = backbone

    def forward(self, image: torch.Tensor) -> dict[str, torch.Tensor]:
        return self.backbone(self.preprocess(image))


# The calibrated distance to a threshold, d = SLOPE * (raw - threshold) / scale, goes into 0..1 (what
# OpenVINO Model API expects of an anomaly map) as logistic(asinh(d)): 0.5 at the threshold, a good
# part's typical value (the good scores' median, 2 robust deviations below it) at 0.19. asinh keeps the
# logistic's slope near the threshold but turns its exponential approach to 1 into 1 - 1/(2d): a plain
# logistic reaches float32's 1.0 at d = 17, where a bold defect's map was 1.0 over half the frame
# (bottle DFM), so pixels and parts beyond that tied; this one stays below 1.0 up to d of about 1e7.
# Monotonic, so AUROC is unchanged. It is computed as 1 - r above the threshold and r below it, with
# r = 1 / (1 + sqrt(d^2 + 1) + |d|) (logistic(asinh(d)) = 1 / (1 + sqrt(d^2 + 1) - d)): plain
# arithmetic that OpenVINO fuses into one kernel, where its Asinh is a reference kernel (0.3-0.4 ms on a
# map on this project's Xeon), and as close to the exact value in float32 (within 1e-7).
SLOPE = 4.0


def calibrated(raw: torch.Tensor, threshold: torch.Tensor | float, scale: torch.Tensor | float) -> torch.Tensor:
    """A raw score or map on the graph's 0..1 scale: NG_SCORE at THRESHOLD; NaN stays NaN."""
    distance = SLOPE * (raw - threshold) / scale
    below = 1 / (1 + torch.sqrt(distance * distance + 1) + distance.abs())
    return torch.where(distance > 0, 1 - below, below)


def operating_point(calibration: Calibration) -> OperatingPointSpec:
    """The calibration's cut-offs and expectations on the graph's 0..1 score (adedge.json's)."""

    def score(raw: float) -> float:
        return float(calibrated(torch.tensor(raw, dtype=torch.float64), calibration.score_threshold, calibration.score_scale))

    check = None if calibration.check_threshold is None else score(calibration.check_threshold)
    return OperatingPointSpec(NG_SCORE, check, calibration.false_reject, calibration.false_reject_bound,
                              calibration.good_in_check, score(calibration.score_max))


class Detector(nn.Module):
    """Encoder + anomaly head + calibration, with the outputs of anomalib's exports that OpenVINO
    Model API reads: pred_score [N] and anomaly_map [N, 1, h, w] in 0..1 with 0.5 at the calibrated
    NG thresholds, pred_label [N] and pred_mask [N, 1, h, w] (bool: above 0.5, or not a number). Model
    API takes exactly these four outputs; the CHECK band's start on pred_score travels in the model
    file's metadata (adedge.export.exporter.model_api_info)."""

    def __init__(self, encoder: Encoder, head: nn.Module) -> None:
        super().__init__()
        self.encoder, self.head = encoder, head
        self.image_size = encoder.preprocess.size
        # raw -> logistic(asinh(SLOPE * (raw - threshold) / scale)); filled in by calibration
        self.register_buffer("score_threshold", torch.zeros(()))
        self.register_buffer("score_scale", torch.ones(()))
        self.register_buffer("map_threshold", torch.zeros(()))
        self.register_buffer("map_scale", torch.ones(()))

    def calibrate(self, calibration: Calibration) -> None:
        """Fill the calibration constants in."""
        for name in ("score_threshold", "score_scale", "map_threshold", "map_scale"):
            getattr(self, name).fill_(getattr(calibration, name))

    def raw(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Uncalibrated anomaly map [N, 1, h, w] (the model's size) and score [N] for uint8 frames [N, H, W, 3]."""
        return self.head(self.encoder(image), self.image_size)

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        anomaly_map, score = self.raw(image)
        anomaly_map = calibrated(anomaly_map, self.map_threshold, self.map_scale)
        score = calibrated(score, self.score_threshold, self.score_scale)
        # "not at most the threshold" rather than "above it": a NaN (a broken model or frame) is never OK
        return score, ~(score <= NG_SCORE), anomaly_map, ~(anomaly_map <= NG_SCORE)
