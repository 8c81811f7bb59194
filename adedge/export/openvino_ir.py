"""OpenVINO IR from the ONNX graph, with the bundle metadata in the IR's runtime info.

Converted from the ONNX file, never from the torch module: ov.convert_model(module) silently drops
Softplus' beta (see ENVIRONMENT.md).
"""

import json
from pathlib import Path

import openvino as ov

RT_INFO_ROOT = "adedge"


def convert_onnx(onnx_path: Path) -> ov.Model:
    return ov.convert_model(str(onnx_path))


def save_openvino(model: ov.Model, xml_path: Path, precision: str, metadata: dict) -> Path:
    """Write model.xml/.bin with METADATA as runtime info; fp16 compresses the weights, others keep fp32."""
    for key, value in metadata.items():
        model.set_rt_info(json.dumps(value), [RT_INFO_ROOT, key])
    ov.save_model(model, str(xml_path), compress_to_fp16=precision == "fp16")
    return xml_path


def read_rt_metadata(xml_path: Path) -> dict:
    """The metadata stored in an IR's runtime info (what makes the .xml describe itself)."""
    model = ov.Core().read_model(str(xml_path))
    info = model.get_rt_info()[RT_INFO_ROOT]
    return {key: json.loads(info[key].astype(str)) for key in info}
