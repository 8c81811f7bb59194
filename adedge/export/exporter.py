"""`adedge export`: a run folder -> a bundle folder (model file(s) + adedge.json), written atomically."""

import datetime
import json
import tempfile
from pathlib import Path

from adedge import __version__
from adedge.errors import AdedgeError
from adedge.export.onnx_file import export_onnx
from adedge.export.openvino_ir import convert_onnx, save_openvino
from adedge.export.quantize import DEFAULT_MAX_DROP, INT8_MODES, quantize_int8
from adedge.fileio import atomic_directory
from adedge.runtime.bundle import (
    BUNDLE_FORMAT_VERSION,
    FORMATS,
    INPUT_NAME,
    METADATA_FILE,
    OUTPUT_NAMES,
    PRECISIONS,
    THRESHOLD,
    sha256_file,
)
from adedge.train.checkpoint import load_run


def bundle_metadata(info: dict, fmt: str, precision: str) -> dict:
    """adedge.json's content (less the file hashes) from a run's run.json."""
    height, width = info["image_size"]
    return {
        "format_version": BUNDLE_FORMAT_VERSION,
        "adedge_version": __version__,
        "model": info["model"],
        "backbone": info["backbone"],
        "stages": info["stages"],
        "format": fmt,
        "precision": precision,
        "input": {"name": INPUT_NAME, "dtype": "uint8", "layout": "NHWC", "channels": "RGB", "height": height, "width": width},
        "outputs": list(OUTPUT_NAMES),
        "threshold": THRESHOLD,
        "calibration": info["calibration"],
        "trained_on": info["dataset"],
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }


def export_bundle(
    run_dir: Path | str,
    out: Path | str,
    fmt: str = "openvino",
    precision: str = "fp32",
    max_drop: float = DEFAULT_MAX_DROP,
    int8_modes: tuple[str, ...] = INT8_MODES,
) -> dict:
    """Export RUN_DIR's detector as one graph to OUT; returns the bundle's metadata.

    fp16 compresses the IR's weights; bf16 keeps fp32 weights and asks the runtime for bf16
    arithmetic; int8 quantises with NNCF in the first of INT8_MODES that loses at most MAX_DROP
    image or pixel AUROC (benchmarks pick one mode to time it).
    """
    if fmt not in FORMATS:
        raise AdedgeError(f"unknown format {fmt!r}; choose from {', '.join(FORMATS)}")
    if precision not in PRECISIONS:
        raise AdedgeError(f"unknown precision {precision!r}; choose from {', '.join(PRECISIONS)}")
    if max_drop < 0:
        raise AdedgeError(f"--max-drop must be at least 0, got {max_drop}")
    if fmt == "onnx" and precision != "fp32":
        raise AdedgeError(f"--precision {precision} needs --format openvino; ONNX bundles are fp32")
    detector, info = load_run(run_dir)
    metadata = bundle_metadata(info, fmt, precision)
    with atomic_directory(out, METADATA_FILE) as scratch:
        if fmt == "onnx":
            files = [export_onnx(detector, scratch / FORMATS["onnx"])]
        else:
            with tempfile.TemporaryDirectory() as work:
                model = convert_onnx(export_onnx(detector, Path(work) / FORMATS["onnx"]))
                if precision == "int8":
                    model, metadata["quantization"] = quantize_int8(model, info, max_drop, int8_modes)
                xml = save_openvino(model, scratch / FORMATS["openvino"], precision, metadata)
            files = [xml, xml.with_suffix(".bin")]
        metadata["files"] = {f.name: sha256_file(f) for f in files}
        (scratch / METADATA_FILE).write_text(json.dumps(metadata, indent=2) + "\n")
    return metadata
