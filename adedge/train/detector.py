"""The whole inference graph as one pure nn.Module: the surface that export writes out.

uint8 image [N, H, W, 3] -> normalise -> backbone -> head -> calibrated (anomaly_map, score), with
every constant (input normalisation, fitted head, calibration) a buffer, so nothing depends on the batch.
"""

import torch
from torch import nn

from adedge.train.backbones import Backbone


class Encoder(nn.Module):
    """uint8 images [N, H, W, 3] -> the backbone's input normalisation -> {stage: features}."""

    def __init__(self, backbone: Backbone) -> None:
        super().__init__()
        self.backbone = backbone
        self.register_buffer("pixel_mean", torch.tensor(backbone.mean).reshape(1, 3, 1, 1) * 255.0)
        self.register_buffer("pixel_std", torch.tensor(backbone.std).reshape(1, 3, 1, 1) * 255.0)

    def forward(self, image: torch.Tensor) -> dict[str, torch.Tensor]:
        return self.backbone((image.permute(0, 3, 1, 2).float() - self.pixel_mean) / self.pixel_std)


class Detector(nn.Module):
    """Encoder + anomaly head + score normalisation; outputs are 0.5 at the calibrated thresholds."""

    def __init__(self, encoder: Encoder, head: nn.Module, image_size: tuple[int, int]) -> None:
        super().__init__()
        self.encoder, self.head = encoder, head
        self.image_size = tuple(image_size)
        # score -> 0.5 + (score - threshold) / scale; identity-like until calibrated
        self.register_buffer("score_threshold", torch.zeros(()))
        self.register_buffer("score_scale", torch.ones(()))
        self.register_buffer("map_threshold", torch.zeros(()))
        self.register_buffer("map_scale", torch.ones(()))

    def raw(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Uncalibrated anomaly map [N, 1, H, W] and score [N] for uint8 images [N, H, W, 3]."""
        return self.head(self.encoder(image), self.image_size)

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        anomaly_map, score = self.raw(image)
        anomaly_map = 0.5 + (anomaly_map - self.map_threshold) / self.map_scale
        score = 0.5 + (score - self.score_threshold) / self.score_scale
        return anomaly_map, score
