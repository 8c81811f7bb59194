"""The model plug-ins, registered in this one place.

A model is one module that defines `PLUGIN`, a `ModelPlugin`: its settings (a dataclass whose
defaults are the model's defaults), the backbone stages it uses by default (by stride), how it fits
a head on cached frozen-backbone features, and how a head is rebuilt from its saved config. The
trainer, the checkpoint, the CLI, the INT8 quantiser and the benchmarks read this registry; adding
a model is one new module and one line below. Importing this module does not import torch.
"""

import dataclasses
import importlib
import math
import typing
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from adedge.errors import AdedgeError

REGISTRY = {  # model name -> the module that defines its PLUGIN
    "dfm": "adedge.train.dfm",
    "cflow": "adedge.train.cflow",
    "patchcore": "adedge.train.patchcore",
}
MODEL_NAMES = tuple(REGISTRY)


@dataclass(frozen=True)
class ModelPlugin:
    """One anomaly model. `fit(features, settings, seed, track) -> (head, losses)` takes cached
    features {stage: [N, C, h, w]} of the good fit images; the head's forward takes
    ({stage: features}, (H, W)) and returns the raw anomaly map [N, 1, H, W] and score [N]."""

    name: str
    settings: type  # a frozen dataclass of the model's settings, with its defaults
    strides: tuple[int, ...]  # default backbone stages, by stride
    image_size: int  # default input side: the graph resizes every frame to about this many pixels squared, in the parts' aspect
    stage_count: int | None  # how many stages it takes (None: any)
    fit: Callable[..., tuple[Any, dict[str, list[float]]]]
    build_head: Callable[..., Any]  # head from the dict its config() returned
    float_op_types: tuple[str, ...]  # OpenVINO op types of its head that INT8 keeps in float
    # folds of the training images, each scored out of fold for calibration by a head fitted on the
    # others: more folds fit on more of the data (scores closer to the shipped head's) at more fits
    calibration_folds: int = 5
    # whether its scores stay close to fp32's on features from a backbone computed in bf16, so that
    # `--precision auto` may run the backbone in bf16 where the CPU has bf16 units (measured per model:
    # benchmarks/mixed_precision.py; DFM's PCA residual does not: a bf16 backbone moved 71 of 167 pill verdicts)
    mixed_precision: bool = False
    # how many cells each side of its deepest stage's feature map must be a multiple of, for SETTINGS
    # (DFM pools cells in blocks): the default input size rounds to it
    grid_multiple: Callable[[Any], int] = lambda settings: 1
    # settings that fit it in seconds on a few small images, for the tests every model gets
    quick_settings: dict[str, object] = dataclasses.field(default_factory=dict)


def check_model_name(name: str) -> str:
    """NAME if a model is registered under it (without importing the model, or torch)."""
    if name not in REGISTRY:
        raise AdedgeError(f"unknown model {name!r}; choose from {', '.join(REGISTRY)}")
    return name


def model_plugin(name: str) -> ModelPlugin:
    return importlib.import_module(REGISTRY[check_model_name(name)]).PLUGIN


def _parse(text: str, kind: type, key: str) -> object:
    if kind is bool:
        if text.lower() not in ("true", "false", "1", "0", "yes", "no"):
            raise AdedgeError(f"setting {key} takes true or false, got {text!r}")
        return text.lower() in ("true", "1", "yes")
    try:
        value = kind(text)
    except ValueError:
        raise AdedgeError(f"setting {key} takes a{'n' if kind is int else ''} {kind.__name__}, got {text!r}") from None
    if isinstance(value, float) and not math.isfinite(value):
        raise AdedgeError(f"setting {key} must be a finite number, got {text!r}")
    return value


def describe_settings(plugin: ModelPlugin) -> str:
    return ", ".join(f"{f.name}={f.default}" for f in dataclasses.fields(plugin.settings))


def model_settings(plugin: ModelPlugin, values: dict[str, object]) -> object:
    """The plug-in's settings with VALUES (strings from the command line, or typed) over its defaults."""
    hints = typing.get_type_hints(plugin.settings)
    parsed = {}
    for key, value in values.items():
        if key not in hints:
            raise AdedgeError(f"{plugin.name} has no setting {key!r}; its settings and defaults: {describe_settings(plugin)}")
        parsed[key] = _parse(value, hints[key], key) if isinstance(value, str) else value
    return plugin.settings(**parsed)
