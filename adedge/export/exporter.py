"""`adedge export`: a run folder -> a bundle folder (model file(s) + adedge.json), written atomically."""

import dataclasses
import datetime
import json
import tempfile
from pathlib import Path

from adedge import __version__, defaults
from adedge.bundle import (
    BUNDLE_FORMAT_VERSION,
    FORMATS,
    INPUT_NAME,
    METADATA_FILE,
    NG_SCORE,
    OUTPUT_NAMES,
    SIGNATURE_FILE,
    BundleMetadata,
    InputSpec,
    cut_off_info,
    embedded_record,
    read_key,
    sha256_file,
    signature,
)
from adedge.choices import check_export
from adedge.errors import AdedgeError
from adedge.export.onnx_file import export_onnx, onnx_metadata
from adedge.export.openvino_ir import convert_onnx, save_openvino
from adedge.export.quantize import INT8_MODES, int8_images, quantize_int8_isolated
from adedge.export.repository import export_folders, ovms_config, triton_config
from adedge.fileio import atomic_directory, check_output_folder, write_text_atomic
from adedge.formats import RunInfo, to_dict
from adedge.train.checkpoint import load_run
from adedge.train.detector import operating_point
from adedge.train.models import model_plugin


def bundle_metadata(info: RunInfo, fmt: str, precision: str) -> BundleMetadata:
    """adedge.json's content (less the file hashes) from a run's run.json."""
    height, width = info.image_size
    return BundleMetadata(
        format_version=BUNDLE_FORMAT_VERSION,
        adedge_version=__version__,
        model=info.model,
        backbone=info.backbone,
        stages=info.stages,
        format=fmt,
        precision=precision,
        input=InputSpec(INPUT_NAME, "uint8", "NHWC", "RGB", height, width, info.resize),
        outputs=list(OUTPUT_NAMES),
        operating_point=operating_point(info.calibration),
        calibration=info.calibration,
        trained_on=info.dataset,
        created=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    )


def model_api_info(metadata: BundleMetadata) -> dict[str, str]:
    """The `model_info` OpenVINO Model API's AnomalyDetection reads: the graph takes raw RGB frames
    (embedded_processing) and returns anomalib's four outputs, already thresholded at 0.5 (the NG
    threshold: pred_label is NG only above it). adedge's own keys state the CHECK band: pred_score
    above adedge_check_threshold and up to 0.5 is CHECK (0.5: no band)."""
    return {
        "model_type": "AnomalyDetection",
        "task": "segmentation",
        "labels": "Normal Anomaly",
        **{key: str(value) for key, value in cut_off_info(NG_SCORE, metadata.operating_point.check_start).items()},
        "normalization_scale": "1.0",
        "embedded_processing": "True",
        "input_dtype": "u8",
        "reverse_input_channels": "False",
        "orig_height": str(metadata.input.height),
        "orig_width": str(metadata.input.width),
        "adedge_false_reject": str(metadata.operating_point.false_reject),
    }


def export_bundle(
    run_dir: Path | str,
    out: Path | str,
    fmt: str = "openvino",
    precision: str = "fp32",
    max_drop: float = defaults.MAX_DROP,
    int8_modes: tuple[str, ...] = INT8_MODES,
    sign_key: Path | str | None = None,
    layout: str = "bundle",
    name: str | None = None,
) -> BundleMetadata:
    """Export RUN_DIR's detector as one graph to OUT; returns the bundle's metadata.

    LAYOUT bundle writes the bundle folder OUT; triton and ovms add model NAME to the model
    repository OUT (other models in it stay), the bundle as its version 1, with the config those
    servers load unchanged (see adedge.export.repository).

    fp16 compresses the IR's weights; bf16 keeps fp32 weights and lets the CPU compute in bf16;
    int8 quantises with NNCF in the first of INT8_MODES that loses at most MAX_DROP image or pixel
    AUROC (benchmarks pick one mode to time it). With SIGN_KEY (a key file) the bundle is signed.
    """
    fmt, precision, layout = check_export(fmt, precision, layout)
    if not max_drop >= 0:  # NaN too
        raise AdedgeError(f"--max-drop must be at least 0, got {max_drop}")
    key = read_key(sign_key) if sign_key is not None else None
    detector, info = load_run(run_dir)
    metadata = bundle_metadata(info, fmt, precision)
    target, files_at = export_folders(Path(out), layout, name, metadata)
    inside = files_at.relative_to(target)  # "." for a bundle, the version folder in a repository
    marker = (inside / METADATA_FILE).as_posix()
    check_output_folder(target, marker)
    ovms_file = Path(out) / "config.json"
    ovms_text = ovms_config(target.name, metadata, ovms_file) if layout == "ovms" else None  # refuses a broken config now
    images = int8_images(info) if precision == "int8" else None
    with atomic_directory(target, marker) as folder:
        scratch = folder / inside
        scratch.mkdir(exist_ok=True)
        if fmt == "onnx":
            properties = onnx_metadata(model_api_info(metadata), embedded_record(metadata))
            files = [export_onnx(detector, scratch / FORMATS["onnx"], properties)]
        else:
            with tempfile.TemporaryDirectory() as work:
                model = convert_onnx(export_onnx(detector, Path(work) / FORMATS["onnx"]))
                if precision == "int8":
                    model, report = quantize_int8_isolated(model, Path(work), info, images, max_drop, int8_modes)
                    metadata = dataclasses.replace(metadata, quantization=report)
                xml = save_openvino(model, scratch / FORMATS["openvino"], precision, model_api_info(metadata), embedded_record(metadata),
                                    model_plugin(info.model).mixed_precision)
            files = [xml, xml.with_suffix(".bin")]
        metadata = dataclasses.replace(metadata, files={f.name: sha256_file(f) for f in files})
        (scratch / METADATA_FILE).write_text(json.dumps(to_dict(metadata), indent=2) + "\n")
        if key is not None:
            (scratch / SIGNATURE_FILE).write_text(signature(key, (scratch / METADATA_FILE).read_bytes()) + "\n")
        if layout == "triton":
            (folder / "config.pbtxt").write_text(triton_config(target.name, metadata))
    if ovms_text is not None:
        write_text_atomic(ovms_file, ovms_text)
    return metadata
