"""Typed JSON records validated when read, and run.json's (torch-free; adedge.json's are in adedge.bundle).

A malformed file (a missing or unknown field, a wrong type, null where a number belongs) ends in
one AdedgeError naming the file and the field, never a KeyError or TypeError deep in the code.
"""

import dataclasses
import json
import math
import re
import types
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from adedge.errors import AdedgeError

Record = TypeVar("Record")


def _kind(hint: object) -> str:
    return getattr(hint, "__name__", str(hint))


def _checked(value: object, hint: object, where: str) -> object:
    """VALUE if it is of type HINT (dataclasses, lists and dicts checked element by element)."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        return _checked(value, next(a for a in args if a is not type(None)), where)
    if dataclasses.is_dataclass(hint):
        if not isinstance(value, dict):
            raise AdedgeError(f"{where} must be an object, got {json.dumps(value)[:40]}")
        return from_dict(hint, value, where)
    if origin is list:
        if not isinstance(value, list):
            raise AdedgeError(f"{where} must be a list, got {json.dumps(value)[:40]}")
        return [_checked(item, args[0], f"{where}[{i}]") for i, item in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise AdedgeError(f"{where} must be an object, got {json.dumps(value)[:40]}")
        return {key: _checked(item, args[1], f"{where}.{key}") for key, item in value.items()}
    if hint is float and isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, hint) and not (hint is int and isinstance(value, bool)):
        return value
    raise AdedgeError(f"{where} must be {_kind(hint)}, got {json.dumps(value)[:40]}")


def from_dict(cls: type[Record], data: dict, where: str) -> Record:
    """An instance of the dataclass CLS from DATA, every field present (or defaulted) and typed."""
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise AdedgeError(f"{where} has unknown field {unknown[0]!r}")
    values = {}
    for name, spec in fields.items():
        if name in data:
            values[name] = _checked(data[name], hints[name], f"{where}.{name}")
        elif spec.default is dataclasses.MISSING and spec.default_factory is dataclasses.MISSING:
            raise AdedgeError(f"{where} lacks the field {name!r}")
    return cls(**values)


def read_record(cls: type[Record], path: Path, version: int) -> Record:
    """Read the JSON file PATH as CLS, refusing another format version with a clear line."""
    try:
        data = json.loads(path.read_text())
    except ValueError as exc:  # broken JSON, bytes that are not UTF-8, a number of more digits than Python converts
        raise AdedgeError(f"{path} is not valid JSON: {exc}") from None
    except RecursionError:  # Python's JSON reader caps nesting at its recursion limit
        raise AdedgeError(f"{path} is nested too deeply to be an adedge file") from None
    if not isinstance(data, dict):
        raise AdedgeError(f"{path} must hold a JSON object")
    if data.get("format_version") != version:
        from adedge import __version__

        raise AdedgeError(
            f"{path} has format {data.get('format_version')!r} (adedge {data.get('adedge_version', '?')}); "
            f"this adedge {__version__} reads format {version}: re-create it"
        )
    record = from_dict(cls, data, path.name)
    problems = record.problems() if hasattr(record, "problems") else []
    if problems:
        raise AdedgeError(f"{path.name}: {problems[0]}")
    return record


SIZE_STEP = 32  # a model input side is a multiple of this: the deepest stride of every backbone
MAX_IMAGE_SIZE = 2048  # the largest model input side: beyond it a backbone's features outgrow an ordinary PC's memory


def percent(share: float) -> str:
    """A share as people read it: 0.0134 -> '1.34 %', 1.0 -> '100 %'."""
    return f"{100 * share:.3g} %"


def to_dict(record: object) -> dict:
    return dataclasses.asdict(record)


def parse_image_size(text: str) -> tuple[int, int]:
    """--image-size: N (square), H,W or HxW."""
    parts = text.strip().lower().replace("x", ",").split(",")
    if not 1 <= len(parts) <= 2 or not all(re.fullmatch(r"[0-9]+", part.strip()) for part in parts):
        raise AdedgeError(f"--image-size takes N, H,W or HxW (whole numbers of pixels), got {text!r}")
    sides = [int(part) for part in parts]
    return check_image_size((sides[0], sides[-1]))


def check_image_size(size: tuple[int, int]) -> tuple[int, int]:
    """SIZE ([height, width]) if each side is a multiple of SIZE_STEP from SIZE_STEP to MAX_IMAGE_SIZE."""
    if not all(SIZE_STEP <= side <= MAX_IMAGE_SIZE and side % SIZE_STEP == 0 for side in size):
        raise AdedgeError(f"each side of --image-size must be a multiple of {SIZE_STEP} from {SIZE_STEP} to {MAX_IMAGE_SIZE}, got "
                          f"{'x'.join(map(str, size))}")
    return tuple(size)


def aspect_size(side: int, aspect: float, step: int) -> tuple[int, int]:
    """[height, width] of about SIDE x SIDE pixels in the ASPECT (height / width) of the parts, each a
    multiple of STEP: a square part keeps SIDE x SIDE, a tall one is not squashed to a square."""
    def rounded(length: float) -> int:
        return int(min(max(step, round(length / step) * step), MAX_IMAGE_SIZE // step * step))

    return rounded(side * math.sqrt(aspect)), rounded(side / math.sqrt(aspect))


def size_problems(name: str, size: list[int]) -> list[str]:
    """What is wrong with a [height, width] model input size, if anything."""
    if len(size) != 2 or not all(isinstance(v, int) and SIZE_STEP <= v <= MAX_IMAGE_SIZE for v in size):
        return [f"{name} must be [height, width] from {SIZE_STEP} to {MAX_IMAGE_SIZE}, got {size}"]
    return []


@dataclass(frozen=True)
class Calibration:
    """The raw score's and map's thresholds and scales (see adedge.train.detector.Detector), and what
    calibration expects of good parts: the share above the NG threshold (and its upper confidence
    bound), the share in the CHECK band (above check_threshold, None: no band), the highest score
    it saw (good images and synthetic defects)."""

    score_threshold: float
    score_scale: float
    map_threshold: float
    map_scale: float
    method: str
    images: int
    false_reject: float
    false_reject_bound: float
    score_max: float
    check_threshold: float | None = None
    good_in_check: float = 0.0

    def problems(self) -> list[str]:
        """Ranges the types alone do not catch: thresholds finite, scales positive."""
        found = [f"calibration.{name} must be a finite number" for name in ("score_threshold", "map_threshold")
                 if not math.isfinite(getattr(self, name))]
        return found + [f"calibration.{name} must be a positive number" for name in ("score_scale", "map_scale")
                        if not (getattr(self, name) > 0 and math.isfinite(getattr(self, name)))]


@dataclass(frozen=True)
class DatasetInfo:
    """What a run was trained on: every good training image is fitted (calibration scores each one
    out of fold)."""

    root: str
    category: str
    layout: str
    fit_images: int


# 5: out-of-fold calibration for a false-reject budget, a CHECK band (4: CFLOW stages give clipped z-scores)
RUN_FORMAT_VERSION = 5


@dataclass(frozen=True)
class RunInfo:
    """run.json: how to rebuild a trained detector and how it was trained."""

    format_version: int
    adedge_version: str
    model: str
    backbone: str
    stages: list[str]
    image_size: list[int]  # [height, width] the graph resizes every frame to
    resize: str  # how frames are resized to image_size (see adedge.train.detector.Preprocess)
    settings: dict[str, Any]  # the model plug-in's settings
    head: dict[str, Any]  # the head's constructor arguments
    calibration: Calibration
    dataset: DatasetInfo
    seed: int
    losses: dict[str, list[float]]
    train_seconds: float
    calibration_seconds: float = 0.0  # of train_seconds, spent fitting and scoring the out-of-fold heads

    def problems(self) -> list[str]:
        found = self.calibration.problems() + size_problems("image_size", self.image_size)
        return found + ([] if 0 <= self.seed < 2**32 else [f"seed must be from 0 to {2**32 - 1}"])


