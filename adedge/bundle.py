"""The bundle contract, torch-free, the one module export and the runtime both follow: the files of a
bundle (model file(s) + adedge.json, + adedge.sig if signed), the graph's input and output names,
the formats and precisions, adedge.json's typed record, and the checks a bundle passes before it runs.

Integrity: adedge.json lists the sha256 of each model file, and each model file embeds adedge.json's
content (less that list) in its own metadata; the runtime checks both, so an edited adedge.json, an
edited model file, a model file swapped in from another bundle (even with the hashes rewritten), a
missing file or an unlisted one is refused with one line. Optionally a bundle is signed: adedge.sig
holds an HMAC-SHA256 of adedge.json under a key given at export, checked when a key is given at load.
"""

import hashlib
import hmac
import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from adedge.choices import Format, Precision
from adedge.errors import AdedgeError
from adedge.formats import Calibration, DatasetInfo, read_record, size_problems, to_dict

METADATA_FILE = "adedge.json"
SIGNATURE_FILE = "adedge.sig"
INPUT_NAME = "image"
# anomalib's output names, which OpenVINO Model API's anomaly model reads
OUTPUT_NAMES = ("pred_score", "pred_label", "anomaly_map", "pred_mask")
FORMATS = {Format.OPENVINO: "model.xml", Format.ONNX: "model.onnx"}  # the model file of each format
NG_SCORE = 0.5  # the graph's 0..1 score is calibrated to this at the NG threshold (what Model API compares with)


def cut_off_info(ng: float, check_start: float) -> dict[str, float]:
    """Cut-offs on the 0..1 score under the names OpenVINO Model API reads from `model_info` (the NG
    threshold, on the score and on the map), and adedge's key for where CHECK starts (NG where there
    is no band): written into the model file by export, and served by `adedge serve`."""
    return {"image_threshold": ng, "pixel_threshold": ng, "adedge_check_threshold": check_start}

BUNDLE_FORMAT_VERSION = 4  # 4: the input size stored once (no anomaly_map_size); 3: the operating point


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
    operating_point: OperatingPointSpec
    calibration: Calibration
    trained_on: DatasetInfo
    created: str
    quantization: QuantizationReport | None = None
    files: dict[str, str] = field(default_factory=dict)  # sha256 of each model file

    @property
    def input_size(self) -> tuple[int, int]:
        """The model's size (height, width): every frame is resized to it, and the anomaly map output has it."""
        return self.input.height, self.input.width

    def problems(self) -> list[str]:
        """Ranges the types alone do not catch."""
        point = self.operating_point
        found = self.calibration.problems() + size_problems("input height and width", list(self.input_size))
        if not (math.isfinite(point.ng_above) and 0 <= point.ng_above < 1):
            found.append(f"operating_point.ng_above must be from 0 up to (not including) 1, got {point.ng_above}")
        if point.check_above is not None and not (math.isfinite(point.check_above) and 0 <= point.check_above < point.ng_above):
            found.append(f"operating_point.check_above must be from 0 up to ng_above, got {point.check_above}")
        return found + [f"operating_point.{name} must be a share from 0 to 1, got {getattr(point, name)}"
                        for name in ("false_reject", "false_reject_bound", "good_in_check") if not 0 <= getattr(point, name) <= 1]


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


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def embedded_record(metadata: BundleMetadata) -> dict:
    """What a model file embeds of adedge.json: all of it but the file hashes."""
    return {key: value for key, value in to_dict(metadata).items() if key != "files"}


def read_key(path: Path | str) -> bytes:
    """A signing key: the bytes of a file (at least 16)."""
    path = Path(path)
    if not path.is_file():
        raise AdedgeError(f"key file not found: {path}")
    key = path.read_bytes()
    if len(key) < 16:
        raise AdedgeError(f"key file {path} holds {len(key)} bytes; a key needs at least 16")
    return key


def signature(key: bytes, metadata_bytes: bytes) -> str:
    return hmac.new(key, metadata_bytes, hashlib.sha256).hexdigest()


@dataclass(frozen=True)
class Bundle:
    """A validated bundle: where it is, its metadata and the model file an engine should read."""

    path: Path
    metadata: BundleMetadata

    @property
    def model_file(self) -> Path:
        return self.path / FORMATS[self.metadata.format]

    @property
    def precision(self) -> str:
        return self.metadata.precision

    def check_embedded(self, embedded: str | None) -> None:
        """Refuse the bundle unless EMBEDDED (the adedge record inside the model file) matches adedge.json."""
        if embedded is None:
            raise AdedgeError(f"{self.model_file} carries no adedge metadata: it was not exported by adedge, or was replaced")
        try:
            record = json.loads(embedded)
        except ValueError:  # broken JSON, or a number of more digits than Python converts
            raise AdedgeError(f"{self.model_file} carries unreadable adedge metadata") from None
        expected = json.loads(json.dumps(embedded_record(self.metadata)))
        if record != expected:
            changed = sorted(k for k in record.keys() | expected.keys() if record.get(k) != expected.get(k))
            raise AdedgeError(
                f"{self.path / METADATA_FILE} does not match the metadata inside {self.model_file.name} "
                f"(differs in {', '.join(changed)}): it was edited, or the model file comes from another bundle"
            )


def _check_files(path: Path, metadata: BundleMetadata) -> None:
    """Every listed file a plain file of the bundle (names checked before anything is opened: no
    folder part, no '..', no absolute path, no link), present, unmodified, and nothing unlisted."""
    for name in metadata.files:
        if not name or name in (".", "..") or Path(name).name != name or "\\" in name:
            raise AdedgeError(f"{path / METADATA_FILE} lists {name!r}: a bundle lists only plain file names inside it")
    listed = set(metadata.files)
    if FORMATS[metadata.format] not in listed:
        raise AdedgeError(f"{path / METADATA_FILE} does not list its model file {FORMATS[metadata.format]}")
    present = {p.name for p in path.iterdir() if not p.name.startswith(".")} - {METADATA_FILE, SIGNATURE_FILE}
    if present - listed:
        raise AdedgeError(f"{path} holds files adedge.json does not list: {', '.join(sorted(present - listed))}")
    for name, digest in metadata.files.items():
        file = path / name
        if file.is_symlink():
            raise AdedgeError(f"{file} is a link; a bundle holds its files itself")
        if not file.is_file():
            raise AdedgeError(f"bundle file missing: {file}")
        if sha256_file(file) != digest:
            raise AdedgeError(f"{file} was modified after export (sha256 mismatch); re-export the bundle")


def _check_signature(path: Path, key: bytes) -> None:
    sig_file = path / SIGNATURE_FILE
    if not sig_file.is_file():
        raise AdedgeError(f"{path} is not signed, but a key was given to verify it")
    if not hmac.compare_digest(sig_file.read_text().strip(), signature(key, (path / METADATA_FILE).read_bytes())):
        raise AdedgeError(f"{path} was not signed with this key (or was changed after signing)")


def read_bundle(path: Path | str, key: bytes | None = None) -> Bundle:
    """Read and check a bundle folder: format version, typed fields, files present and unmodified,
    and with KEY its signature. The model file's embedded copy is checked by the engine that reads it."""
    path = Path(path)
    meta_file = path / METADATA_FILE
    if not path.is_dir():
        raise AdedgeError(f"bundle folder not found: {path}")
    if not meta_file.is_file():
        raise AdedgeError(f"{path} is not an adedge bundle: {METADATA_FILE} is missing")
    metadata = read_record(BundleMetadata, meta_file, BUNDLE_FORMAT_VERSION)
    if metadata.format not in FORMATS:
        raise AdedgeError(f"{meta_file}: unknown format {metadata.format!r}")
    if metadata.precision not in tuple(Precision):
        raise AdedgeError(f"{meta_file}: unknown precision {metadata.precision!r}")
    expected_input = {"name": INPUT_NAME, "dtype": "uint8", "layout": "NHWC", "channels": "RGB"}
    actual_input = {k: getattr(metadata.input, k) for k in expected_input}
    if actual_input != expected_input:
        raise AdedgeError(f"{meta_file}: input must be {expected_input}, got {actual_input}")
    if tuple(metadata.outputs) != OUTPUT_NAMES:
        raise AdedgeError(f"{meta_file}: outputs must be {list(OUTPUT_NAMES)}, got {metadata.outputs}")
    _check_files(path, metadata)
    if key is not None:
        _check_signature(path, key)
    return Bundle(path, metadata)
