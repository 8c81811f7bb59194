"""OpenVINO IR from the ONNX graph, self-describing and precision-robust.

Converted from the ONNX file, never from the torch module: ov.convert_model(module) silently drops
Softplus' beta (see ENVIRONMENT.md). The IR carries adedge's metadata and OpenVINO Model API's
`model_info` in its runtime info, and every layer of an fp32, fp16 or int8 IR is marked
DisablePrecisionConversion, which OpenVINO's CPU plugin honours by keeping the layer in f32 where it
would otherwise run bf16 by default (CPUs with bf16 units), so a client that compiles the IR with
default settings gets the same verdicts as one that asks for f32.
"""

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import openvino as ov
import openvino.opset10 as opset10

from adedge.errors import AdedgeError

RT_INFO_ROOT = "adedge"
MODEL_INFO = "model_info"
KEEP_PRECISION = {"name": "DisablePrecisionConversion", "version": "0", "value": "dynamic:f16"}


def convert_onnx(onnx_path: Path) -> ov.Model:
    model = ov.convert_model(str(onnx_path))
    model.inputs[0].get_node().set_layout(ov.Layout("NHWC"))
    _transpose_before_convert(model)
    _interpolate_v4(model)
    return model


def _transpose_before_convert(model: ov.Model) -> None:
    """Move the frame's NHWC -> NCHW transpose before its uint8 -> f32 conversion.

    The ONNX converter puts the conversion first, so the full-size frame is transposed as f32:
    four times the bytes of the uint8 frame. The result is identical either way."""
    frames = model.inputs[0]
    for target in list(frames.get_target_inputs()):
        convert = target.get_node()
        users = [user.get_node() for user in convert.output(0).get_target_inputs()]
        if convert.get_type_name() != "Convert" or len(users) != 1 or users[0].get_type_name() != "Transpose":
            continue
        transpose = users[0]
        moved = opset10.convert(opset10.transpose(frames, transpose.input_value(1)), convert.get_output_element_type(0))
        transpose.output(0).replace(moved.output(0))


def _interpolate_v4(model: ov.Model) -> None:
    """Replace each Interpolate-11 (what ONNX Resize becomes) with the equivalent Interpolate-4.

    The CPU plugin rewrites Interpolate-11 into Interpolate-4 itself, and the node it creates no
    longer carries the keep-f32 mark, so resizing would run in bf16 on CPUs that have it."""
    for node in model.get_ordered_ops():
        if node.get_type_name() != "Interpolate" or node.get_type_info().version_id != "opset11":
            continue
        attributes = node.get_attributes()
        if attributes["shape_calculation_mode"] != "sizes" or node.get_input_size() != 2:
            continue  # adedge's graphs resize to sizes over all axes; anything else stays as it is
        data, sizes = node.input_value(0), node.input_value(1)
        rank = data.get_partial_shape().rank.get_length()
        replacement = opset10.interpolate(
            data, sizes, opset10.constant(np.ones(rank, np.float32)), axes=opset10.constant(np.arange(rank, dtype=np.int64)),
            mode=attributes["mode"], shape_calculation_mode="sizes", pads_begin=attributes["pads_begin"],
            pads_end=attributes["pads_end"], coordinate_transformation_mode=attributes["coordinate_transformation_mode"],
            nearest_mode=attributes["nearest_mode"], antialias=attributes["antialias"], cube_coeff=attributes["cube_coeff"],
        )
        replacement.set_friendly_name(node.get_friendly_name())
        node.output(0).replace(replacement.output(0))
    model.validate_nodes_and_infer_types()


# the backbone: its convolutions, and the elementwise ops, pads and pools fed only by them (biases,
# activations, residual Adds); the first op of a head (e.g. DFM's AvgPool, CFLOW's Transpose) is not
BACKBONE_OPS = ("Convolution", "GroupConvolution")
BACKBONE_FOLLOWERS = ("Add", "Multiply", "Clamp", "Relu", "Swish", "HSwish", "Sigmoid", "Pad", "MaxPool")


def backbone_layers(model: ov.Model) -> set[str]:
    """Friendly names of MODEL's backbone layers (BACKBONE_OPS and the BACKBONE_FOLLOWERS fed only by them)."""
    names: set[str] = set()
    for node in model.get_ordered_ops():
        kind = node.get_type_name()
        sources = [value.get_node() for value in node.input_values()]
        fed = [s for s in sources if s.get_type_name() != "Constant"]
        if kind in BACKBONE_OPS or (kind in BACKBONE_FOLLOWERS and fed and all(s.get_friendly_name() in names for s in fed)):
            names.add(node.get_friendly_name())
    return names


def _keep_precision(xml_path: Path, free: set[str]) -> None:
    """Mark every layer of the saved IR but those named in FREE to stay in its original (f32) precision."""
    tree = ET.parse(xml_path)
    for layer in tree.getroot().iter("layer"):
        if layer.get("name") in free:
            continue
        rt_info = layer.find("rt_info")
        if rt_info is None:
            rt_info = ET.SubElement(layer, "rt_info")
        if not any(a.get("name") == KEEP_PRECISION["name"] for a in rt_info.iter("attribute")):
            ET.SubElement(rt_info, "attribute", KEEP_PRECISION)
    tree.write(xml_path, encoding="utf-8", xml_declaration=True)


def save_openvino(model: ov.Model, xml_path: Path, precision: str, model_info: dict[str, str], adedge: dict,
                  mixed_precision: bool = False) -> Path:
    """Write model.xml/.bin: fp16 compresses the weights, others keep fp32. fp32, fp16 and int8 keep
    every layer in f32; auto leaves the backbone free to run bf16 where the CPU has it (the runtime
    asks for bf16: adedge.choices.INFERENCE_PRECISION) if the model's head tolerates it
    (its plug-in's mixed_precision), else keeps every layer in f32 too; bf16 leaves every layer free."""
    for key, value in model_info.items():
        model.set_rt_info(value, [MODEL_INFO, key])
    model.set_rt_info(json.dumps(adedge, sort_keys=True), [RT_INFO_ROOT])
    free = backbone_layers(model) if precision == "auto" and mixed_precision else set()
    try:
        ov.save_model(model, str(xml_path), compress_to_fp16=precision == "fp16")
    except RuntimeError as exc:  # OpenVINO reports a failed write (a full disk) as "iostream error"
        raise AdedgeError(f"cannot write {xml_path.parent}: OpenVINO could not save the model "
                          f"({str(exc).strip().splitlines()[-1][:200]}); is the disk full?") from None
    if precision != "bf16":
        _keep_precision(xml_path, free)
    return xml_path
