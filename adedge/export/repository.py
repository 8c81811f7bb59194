"""Model repositories for serving: the layouts NVIDIA Triton and OpenVINO Model Server read unchanged.

REPO/NAME/1/ holds the complete bundle (model file(s) and adedge.json, which `adedge predict` runs
as it is, and the servers ignore); Triton reads REPO/NAME/config.pbtxt beside it, OVMS reads
REPO/config.json, which lists every model of the repository (adding one keeps the others). The graph embeds its preprocessing and thresholds, so neither server needs adedge
code: a client sends uint8 RGB frames of any size [N, H, W, 3] and reads pred_score and pred_label.

The configs keep the verdicts right: an fp32, fp16 or int8 IR marks every layer to stay in f32, so
OpenVINO (in either server) computes as the trained model did even on CPUs with bf16 units; OVMS is
told so explicitly as well; a bf16 bundle asks for bf16.
"""

import json
from pathlib import Path

from adedge.bundle import MAX_BATCH, BundleMetadata, model_name
from adedge.choices import INFERENCE_PRECISION
from adedge.errors import AdedgeError
from adedge.fileio import json_text

VERSION = "1"  # the version folder a new repository's model is written to
BATCH_DELAY_US = 2000  # how long Triton may hold a frame to batch it with others
TRITON_BACKENDS = {"openvino": "openvino", "onnx": "onnxruntime"}


def export_folders(out: Path, layout: str, name: str | None, metadata: BundleMetadata) -> tuple[Path, Path]:
    """Where an export lands: the folder written as a whole (the bundle, or the repository's model
    folder) and the folder inside it that holds the bundle's files."""
    if layout == "bundle":
        return out, out
    folder = out / model_name(name, metadata)
    return folder, folder / VERSION


def _output(name: str, data_type: str, dims: list[int]) -> str:
    """One output of the config: a per-frame scalar is [batch] in the graph, which Triton expresses
    as dims [1] reshaped to []."""
    reshape = "\n    reshape: { shape: [ ] }" if dims == [1] else ""
    return f"  {{\n    name: \"{name}\"\n    data_type: {data_type}\n    dims: [ {', '.join(map(str, dims))} ]{reshape}\n  }}"


def _parameter(key: str, value: str) -> str:
    return f"parameters: {{\n  key: \"{key}\"\n  value: {{ string_value: \"{value}\" }}\n}}"


def triton_config(name: str, metadata: BundleMetadata) -> str:
    """config.pbtxt: dynamic batching of frames of one size, on the CPU, for the bundle's backend."""
    height, width = metadata.input_size
    score, label, anomaly_map, mask = metadata.outputs
    outputs = [
        _output(score, "TYPE_FP32", [1]),
        _output(label, "TYPE_BOOL", [1]),
        _output(anomaly_map, "TYPE_FP32", [1, height, width]),
        _output(mask, "TYPE_BOOL", [1, height, width]),
    ]
    parameters = []
    if metadata.format == "openvino":
        parameters.append(_parameter("PERFORMANCE_HINT", "LATENCY"))
        if INFERENCE_PRECISION[metadata.precision] == "bf16":
            parameters.append(_parameter("HINT_BF16", "YES"))
    lines = [
        f"# adedge {metadata.model} ({metadata.backbone}, {metadata.precision}): uint8 RGB frames of any size in,",
        "# pred_score in 0..1 (NG above 0.5, the calibrated threshold) and pred_label out;",
        f"# CHECK (for a person) where pred_score is above {metadata.operating_point.check_start:.6f} and up to 0.5.",
        f"name: \"{name}\"",
        f"backend: \"{TRITON_BACKENDS[metadata.format]}\"",
        f"max_batch_size: {MAX_BATCH}",
        "input [",
        f"  {{\n    name: \"{metadata.input.name}\"\n    data_type: TYPE_UINT8\n    dims: [ -1, -1, 3 ]\n  }}",
        "]",
        "output [",
        ",\n".join(outputs),
        "]",
        f"dynamic_batching {{\n  max_queue_delay_microseconds: {BATCH_DELAY_US}\n}}",
        "instance_group [\n  {\n    count: 1\n    kind: KIND_CPU\n  }\n]",
        *parameters,
    ]
    return "\n".join(lines) + "\n"


def ovms_config(name: str, metadata: BundleMetadata, existing: Path) -> str:
    """config.json: the models of EXISTING (a config.json, if there is one) with model NAME added or
    replaced: its folder (relative to the config file, as OVMS allows), the CPU, and the inference
    precision spelled out. OVMS keeps the graph's dynamic batch and frame size as exported."""
    others = []
    if existing.is_file():
        try:
            others = [m for m in json.loads(existing.read_text())["model_config_list"] if m["config"]["name"] != name]
        except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError) as exc:
            raise AdedgeError(f"{existing} is not an OpenVINO Model Server config ({type(exc).__name__}: {exc}); move it away") from None
    precision = INFERENCE_PRECISION[metadata.precision]
    config = {
        "name": name,
        "base_path": name,
        "target_device": "CPU",
        "plugin_config": {"PERFORMANCE_HINT": "LATENCY", "INFERENCE_PRECISION_HINT": precision},
    }
    return json_text({"model_config_list": [*others, {"config": config}]}, indent=2) + "\n"
