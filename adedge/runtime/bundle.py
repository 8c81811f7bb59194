"""The bundle: model file(s) + adedge.json, the contract between export and the runtime.

The runtime validates everything here before it compiles anything, and says exactly what is wrong.
"""

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from adedge import __version__
from adedge.errors import AdedgeError

BUNDLE_FORMAT_VERSION = 1
METADATA_FILE = "adedge.json"
INPUT_NAME = "image"
OUTPUT_NAMES = ("anomaly_map", "score")
THRESHOLD = 0.5
FORMATS = {"openvino": "model.xml", "onnx": "model.onnx"}
PRECISIONS = ("fp32", "fp16", "bf16", "int8")


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@dataclass(frozen=True)
class Bundle:
    """A validated bundle: where it is, its metadata and the model file an engine should read."""

    path: Path
    metadata: dict

    @property
    def model_file(self) -> Path:
        return self.path / FORMATS[self.metadata["format"]]

    @property
    def input_size(self) -> tuple[int, int]:
        return self.metadata["input"]["height"], self.metadata["input"]["width"]

    @property
    def precision(self) -> str:
        return self.metadata["precision"]


def _require(metadata: dict, key: str, where: Path) -> object:
    if key not in metadata:
        raise AdedgeError(f"{where} lacks the field {key!r}; re-export the bundle with this adedge ({__version__})")
    return metadata[key]


def read_bundle(path: Path | str) -> Bundle:
    """Read and check a bundle folder: format version, fields, model files present and unmodified."""
    path = Path(path)
    meta_file = path / METADATA_FILE
    if not path.is_dir():
        raise AdedgeError(f"bundle folder not found: {path}")
    if not meta_file.is_file():
        raise AdedgeError(f"{path} is not an adedge bundle: {METADATA_FILE} is missing")
    try:
        metadata = json.loads(meta_file.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise AdedgeError(f"{meta_file} is not valid JSON: {exc}") from None
    version = _require(metadata, "format_version", meta_file)
    if version != BUNDLE_FORMAT_VERSION:
        raise AdedgeError(
            f"{path} has bundle format {version} (adedge {metadata.get('adedge_version', '?')}); "
            f"this adedge {__version__} reads format {BUNDLE_FORMAT_VERSION}: re-export it"
        )
    for key in ("model", "format", "precision", "input", "outputs", "files"):
        _require(metadata, key, meta_file)
    if metadata["format"] not in FORMATS:
        raise AdedgeError(f"{meta_file}: unknown format {metadata['format']!r}")
    if metadata["precision"] not in PRECISIONS:
        raise AdedgeError(f"{meta_file}: unknown precision {metadata['precision']!r}")
    expected_input = {"name": INPUT_NAME, "dtype": "uint8", "layout": "NHWC", "channels": "RGB"}
    if {k: metadata["input"].get(k) for k in expected_input} != expected_input:
        raise AdedgeError(f"{meta_file}: input must be {expected_input}, got {metadata['input']}")
    if tuple(metadata["outputs"]) != OUTPUT_NAMES:
        raise AdedgeError(f"{meta_file}: outputs must be {list(OUTPUT_NAMES)}, got {metadata['outputs']}")
    bundle = Bundle(path, metadata)
    if bundle.model_file.name not in metadata["files"]:
        raise AdedgeError(f"{meta_file} does not list its model file {bundle.model_file.name}")
    for name, digest in metadata["files"].items():
        file = path / name
        if not file.is_file():
            raise AdedgeError(f"bundle file missing: {file}")
        if sha256_file(file) != digest:
            raise AdedgeError(f"{file} was modified after export (sha256 mismatch); re-export the bundle")
    return bundle
