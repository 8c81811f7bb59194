"""A third model, defined outside adedge, to show that a model is one plug-in: the distance of each
feature vector to the training images' mean feature at its position."""

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from adedge.train.models import ModelPlugin


@dataclass(frozen=True)
class MeanDistanceSettings:
    """root: the distance's root (1: sum of squares, 2: Euclidean)."""

    root: int = 2


class MeanDistanceHead(nn.Module):
    def __init__(self, stage: str, channels: int, height: int, width: int, root: int) -> None:
        super().__init__()
        self.spec = {"stage": stage, "channels": channels, "height": height, "width": width, "root": root}
        self.register_buffer("mean", torch.zeros(1, channels, height, width))

    def config(self) -> dict:
        return dict(self.spec)

    def forward(self, features: dict[str, torch.Tensor], size: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
        distance = (features[self.spec["stage"]] - self.mean).pow(2).sum(1, keepdim=True)
        if self.spec["root"] == 2:
            distance = distance.sqrt()
        anomaly_map = F.interpolate(distance, size=size, mode="bilinear", align_corners=False)
        return anomaly_map, anomaly_map.amax(dim=(1, 2, 3))


def fit(features: dict[str, torch.Tensor], settings: MeanDistanceSettings, seed: int, track) -> tuple[MeanDistanceHead, dict]:
    (stage, maps), = features.items()
    head = MeanDistanceHead(stage, *maps.shape[1:], root=settings.root)
    head.mean.copy_(maps.mean(0, keepdim=True))
    return head, {}


PLUGIN = ModelPlugin(
    name="mean_distance",
    settings=MeanDistanceSettings,
    strides=(16,),
    image_size=64,
    stage_count=1,
    fit=fit,
    build_head=lambda config: MeanDistanceHead(**config),
    float_op_types=("Subtract", "Power", "ReduceSum", "Sqrt", "Interpolate"),
)
