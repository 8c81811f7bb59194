"""run.json and adedge.json as typed records, validated when read (torch-free).

A malformed file (a missing or unknown field, a wrong type, null where a number belongs) ends in
one AdedgeError naming the file and the field, never a KeyError or TypeError deep in the code.
"""

import dataclasses
import json
import math
import re
import types
import typing
from dataclasses import dataclass, field
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
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
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
    _check_values(record, path.name)
    return record


NG_SCORE = 0.5  # the graph's 0..1 score is calibrated to this at the NG threshold (what Model API compares with)
MAX_IMAGE_SIZE = 2048  # the largest model input side: beyond it a backbone's features outgrow an ordinary PC's memory


def _check_values(record: object, where: str) -> None:
    """Ranges the types alone do not catch: sizes, scales, thresholds and seeds a trained model can have."""
    problems = []
    calibration = getattr(record, "calibration", None)
    if calibration is not None:
        for name in ("score_threshold", "map_threshold"):
            if not math.isfinite(getattr(calibration, name)):
                problems.append(f"calibration.{name} must be a finite number")
        for name in ("score_scale", "map_scale"):
            if not getattr(calibration, name) > 0 or not math.isfinite(getattr(calibration, name)):
                problems.append(f"calibration.{name} must be a positive number")
    size = getattr(record, "image_size", None) or getattr(record, "anomaly_map_size", None)
    if size is not None and (len(size) != 2 or not all(isinstance(v, int) and 32 <= v <= MAX_IMAGE_SIZE for v in size)):
        name = "image_size" if hasattr(record, "image_size") else "anomaly_map_size"
        problems.append(f"{name} must be [height, width] from 32 to {MAX_IMAGE_SIZE}, got {size}")
    if isinstance(record, RunInfo) and not 0 <= record.seed < 2**32:
        problems.append(f"seed must be from 0 to {2**32 - 1}")
    if isinstance(record, BundleMetadata):
        point = record.operating_point
        if not (math.isfinite(point.ng_above) and 0 <= point.ng_above < 1):
            problems.append(f"operating_point.ng_above must be from 0 up to (not including) 1, got {point.ng_above}")
        if point.check_above is not None and not (math.isfinite(point.check_above) and 0 <= point.check_above < point.ng_above):
            problems.append(f"operating_point.check_above must be from 0 up to ng_above, got {point.check_above}")
        for name in ("false_reject", "false_reject_bound", "good_in_check"):
            if not 0 <= getattr(point, name) <= 1:
                problems.append(f"operating_point.{name} must be a share from 0 to 1, got {getattr(point, name)}")
        if not (32 <= record.input.height <= MAX_IMAGE_SIZE and 32 <= record.input.width <= MAX_IMAGE_SIZE):
            problems.append(f"input height and width must be from 32 to {MAX_IMAGE_SIZE}, got {record.input.height}x{record.input.width}")
    if problems:
        raise AdedgeError(f"{where}: {problems[0]}")


def to_dict(record: object) -> dict:
    return dataclasses.asdict(record)


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


BUNDLE_FORMAT_VERSION = 3  # 3: the operating point (CHECK band, expected rates)


@dataclass(frozen=True)
class OperatingPointSpec:
    """The verdict cut-offs on the graph's 0..1 score (NG above ng_above, CHECK above check_above up
    to it) and what calibration expects of good parts there: the share NG (and its upper confidence
    bound) and the share in CHECK; seen_max is the highest score calibration saw."""

    ng_above: float
    check_above: float | None
    false_reject: float
    false_reject_bound: float
    good_in_check: float
    seen_max: float

    @property
    def check_start(self) -> float:
        """Where CHECK starts on the 0..1 score: check_above, or ng_above where there is no band."""
        return self.ng_above if self.check_above is None else self.check_above


@dataclass(frozen=True)
class QuantizationReport:
    """What INT8 export measured: the mode kept, and each attempt's AUROC on validation images."""

    mode: str
    calibration_images: int
    validation_images: int
    max_drop: float
    float_accuracy: dict[str, float]  # image and pixel AUROC of the float graph
    attempts: list[dict[str, Any]]  # per mode tried: its AUROCs and the drop


@dataclass(frozen=True)
class InputSpec:
    """The graph's input: frames as a camera gives them; the graph resizes them to height x width."""

    name: str
    dtype: str
    layout: str
    channels: str
    height: int
    width: int
    resize: str


@dataclass(frozen=True)
class BundleMetadata:
    """adedge.json: everything the runtime checks before it compiles a bundle's graph."""

    format_version: int
    adedge_version: str
    model: str
    backbone: str
    stages: list[str]
    format: str
    precision: str
    input: InputSpec
    outputs: list[str]
    anomaly_map_size: list[int]  # [height, width]: the anomaly map output is at the model's size
    operating_point: OperatingPointSpec
    calibration: Calibration
    trained_on: DatasetInfo
    created: str
    quantization: QuantizationReport | None = None
    files: dict[str, str] = field(default_factory=dict)  # sha256 of each model file


MAX_BATCH = 8  # the most frames one server call takes (a served request, a Triton batch)
NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")  # a served model's name: a folder and a URL part


def model_name(name: str | None, metadata: BundleMetadata, option: str = "--name") -> str:
    """NAME, or the category and model the bundle was trained as (e.g. bottle_dfm), checked to be a
    name servers accept as a folder and in a URL (OPTION: where the user gave it, for the error)."""
    if name is None:
        name = re.sub(r"[^A-Za-z0-9_.-]+", "_", f"{metadata.trained_on.category}_{metadata.model}").strip("_.-") or metadata.model
    if not NAME_PATTERN.match(name):
        raise AdedgeError(f"{option} must be 1 to 64 letters, digits, '_', '.' or '-' (starting with a letter or digit), got {name!r}")
    return name
