"""bf16 and INT8 bundles: what each precision records, how the runtime runs it, and INT8's accuracy control."""

import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import openvino as ov
import pytest

from adedge.bundle import read_bundle
from adedge.data.datasets import open_dataset
from adedge.data.images import load_image
from adedge.errors import AdedgeError
from adedge.export import exporter, openvino_ir, quantize
from adedge.runtime import Model
from adedge.train.models import model_plugin


@pytest.fixture(scope="module")
def frames(synthetic):
    return np.stack([load_image(s.path) for s in open_dataset(synthetic).test[::2]])


def _scores(bundle, frames):
    return Model.load(bundle).infer(frames)[0]


def test_bf16_bundle_asks_for_bf16(run_dir, openvino_bundle, tmp_path, frames):
    metadata = exporter.export_bundle(run_dir, tmp_path / "bf16", "openvino", "bf16")
    assert metadata.precision == "bf16"
    model = Model.load(tmp_path / "bf16")
    supported = "BF16" in ov.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES")
    assert model.engine.compiled.get_property("INFERENCE_PRECISION_HINT") == (ov.Type.bf16 if supported else ov.Type.f32)
    scores, reference = _scores(tmp_path / "bf16", frames), _scores(openvino_bundle, frames)
    assert np.corrcoef(scores, reference)[0, 1] > 0.99


def _free_layer_types(xml: Path) -> set[str]:
    """Op types of the IR's layers not marked to keep their precision (free to run bf16)."""
    layers = ET.parse(xml).getroot().iter("layer")
    return {layer.get("type") for layer in layers
            if not any(a.get("name") == openvino_ir.KEEP_PRECISION["name"] for a in layer.iter("attribute"))}


def test_auto_leaves_only_the_backbone_free_where_the_head_tolerates_it(run_dir, model_name, openvino_bundle, tmp_path, frames):
    metadata = exporter.export_bundle(run_dir, tmp_path / "auto", "openvino", "auto")
    free = _free_layer_types(tmp_path / "auto" / "model.xml")
    if model_plugin(model_name).mixed_precision:
        assert {"Convolution", "GroupConvolution"} <= free <= {"Convolution", "GroupConvolution", "Add", "Clamp"}
    else:
        assert free == set()
    model = Model.load(tmp_path / "auto")
    supported = "BF16" in ov.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES")
    assert metadata.precision == "auto" and model.engine.compiled.get_property("INFERENCE_PRECISION_HINT") == (ov.Type.bf16 if supported else ov.Type.f32)
    scores, reference = _scores(tmp_path / "auto", frames), _scores(openvino_bundle, frames)
    assert np.abs(scores - reference).max() < (0.08 if supported else 1e-5)


def test_int8_bundle_records_its_quantisation(run_dir, tmp_path):
    metadata = exporter.export_bundle(run_dir, tmp_path / "int8", "openvino", "int8", max_drop=1.0)
    report = metadata.quantization
    # each held-back image validates as itself and 3 defective copies; the rest calibrate
    assert metadata.precision == "int8" and report.mode == "all layers" and report.calibration_images + report.validation_images // 4 == 30
    assert read_bundle(tmp_path / "int8").metadata.quantization == report
    types = {op.get_type_name() for op in ov.Core().read_model(str(tmp_path / "int8" / "model.xml")).get_ops()}
    assert "FakeQuantize" in types
    attempt = report.attempts[0]
    assert attempt["drop"] == pytest.approx(max(report.float_accuracy[k] - attempt[k] for k in ("image_auroc", "pixel_auroc")))


def test_int8_keeps_the_head_in_float_or_refuses(run_dir, model_name, openvino_bundle, tmp_path, frames, monkeypatch):
    measured = iter([{"image_auroc": 1.0, "pixel_auroc": 1.0, "scores": [0.1]}, {"image_auroc": 0.9, "pixel_auroc": 1.0, "scores": [0.1]},
                     {"image_auroc": 0.999, "pixel_auroc": 0.998, "scores": [0.1]}])
    monkeypatch.setattr(quantize, "_accuracy", lambda *args: next(measured))
    # the stub lives in this process: quantise here, not in the child process export uses (tests/test_isolated.py)
    monkeypatch.setattr(exporter, "quantize_int8_isolated", lambda model, work, *args: quantize.quantize_int8(model, *args))
    metadata = exporter.export_bundle(run_dir, tmp_path / "int8", "openvino", "int8", max_drop=0.005)
    report = metadata.quantization
    assert report.mode == "convolutions after the stem" and [a["mode"] for a in report.attempts] == ["all layers", "convolutions after the stem"]
    quantized = [_input_is_quantized(op) for op in ov.Core().read_model(str(tmp_path / "int8" / "model.xml")).get_ordered_ops()
                 if op.get_type_name() in ("Convolution", "GroupConvolution")]
    assert quantized[: quantize.STEM_CONVOLUTIONS] == [False] * quantize.STEM_CONVOLUTIONS and all(quantized[quantize.STEM_CONVOLUTIONS :])
    measured = iter([{"image_auroc": 1.0, "pixel_auroc": 1.0, "scores": [0.1]}, {"image_auroc": 0.9, "pixel_auroc": 1.0, "scores": [0.1]},
                     {"image_auroc": 0.99, "pixel_auroc": 0.9, "scores": [0.1]}])
    with pytest.raises(AdedgeError, match=r"all layers: 10.00 points, 0 verdicts; convolutions after the stem: 10.00 points"):
        exporter.export_bundle(run_dir, tmp_path / "refused", "openvino", "int8")
    assert not (tmp_path / "refused").exists()


def _input_is_quantized(op: ov.Node) -> bool:
    """Whether the activation entering OP passes a FakeQuantize (through padding, if any)."""
    source = op.input(0).get_source_output().get_node()
    while source.get_type_name() == "Pad":
        source = source.input(0).get_source_output().get_node()
    return source.get_type_name() == "FakeQuantize"


def test_int8_needs_its_training_images_and_openvino(run_dir, tmp_path):
    import json
    import shutil

    moved = shutil.copytree(run_dir, tmp_path / "run")
    info = json.loads((moved / "run.json").read_text())
    info["dataset"]["root"] = str(tmp_path / "gone")
    (moved / "run.json").write_text(json.dumps(info))
    with pytest.raises(AdedgeError, match="needs the training images"):
        exporter.export_bundle(moved, tmp_path / "b", "openvino", "int8")
    with pytest.raises(AdedgeError, match="needs --format openvino"):
        exporter.export_bundle(run_dir, tmp_path / "b", "onnx", "int8")
    with pytest.raises(AdedgeError, match="--max-drop must be at least 0"):
        exporter.export_bundle(run_dir, tmp_path / "b", "openvino", "int8", max_drop=-0.1)
    assert not (tmp_path / "b").exists()
