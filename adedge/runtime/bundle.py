"""The bundle: model file(s) + adedge.json (+ adedge.sig if signed), the contract between export and runtime.

Integrity: adedge.json lists the sha256 of each model file, and each model file embeds adedge.json's
content (less that list) in its own metadata; the runtime checks both, so an edited adedge.json, an
edited model file, a model file swapped in from another bundle (even with the hashes rewritten), a
missing file or an unlisted one is refused with one line. Optionally a bundle is signed: adedge.sig
holds an HMAC-SHA256 of adedge.json under a key given at export, checked when a key is given at load.
"""

import hashlib
import hmac
import json
from dataclasses import dataclass
from pathlib import Path

from adedge.errors import AdedgeError
from adedge.formats import BUNDLE_FORMAT_VERSION, BundleMetadata, read_record, to_dict

METADATA_FILE = "adedge.json"
SIGNATURE_FILE = "adedge.sig"
INPUT_NAME = "image"
# anomalib's output names, which OpenVINO Model API's anomaly model reads
OUTPUT_NAMES = ("pred_score", "pred_label", "anomaly_map", "pred_mask")
FORMATS = {"openvino": "model.xml", "onnx": "model.onnx"}
PRECISIONS = ("fp32", "fp16", "bf16", "int8")


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
    def input_size(self) -> tuple[int, int]:
        return self.metadata.input.height, self.metadata.input.width

    @property
    def precision(self) -> str:
        return self.metadata.precision

    def check_embedded(self, embedded: str | None) -> None:
        """Refuse the bundle unless EMBEDDED (the adedge record inside the model file) matches adedge.json."""
        if embedded is None:
            raise AdedgeError(f"{self.model_file} carries no adedge metadata: it was not exported by adedge, or was replaced")
        try:
            record = json.loads(embedded)
        except json.JSONDecodeError:
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
    if metadata.precision not in PRECISIONS:
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
