"""bf16 and INT8 bundles: what each precision records, how the runtime runs it, and INT8's accuracy control."""

import numpy as np
import openvino as ov
import pytest

from adedge.bundle import read_bundle
from adedge.data.datasets import open_dataset
from adedge.data.images import load_image
from adedge.data.synthetic import add_defect
from adedge.errors import AdedgeError
from adedge.export import exporter, quantize
from adedge.runtime import Model


@pytest.fixture(scope="module")
def frames(synthetic):
    return np.stack([load_image(s.path) for s in open_dataset(synthetic).test[::2]])


def _scores(bundle, frames):
    return Model.load(bundle).infer(frames)[0]


def _distances(bundle, frames):
    """The calibrated distance to the threshold (the graph's logistic and asinh undone, saturated ends
    clipped): how far quantisation moves a score, whatever point calibration put the threshold at."""
    scores = np.clip(_scores(bundle, frames).astype(np.float64), 1e-6, 1 - 1e-6)
    return np.sinh(np.log(scores / (1 - scores)))


def test_add_defect_marks_what_it_changes():
    image = np.full((64, 64, 3), 128, np.uint8)
    defective, mask = add_defect(image, np.random.default_rng(0))
    assert mask.any() and (defective[~mask] == 128).all() and (defective[mask] != 128).any()


def test_bf16_bundle_asks_for_bf16(run_dir, openvino_bundle, tmp_path, frames):
    metadata = exporter.export_bundle(run_dir, tmp_path / "bf16", "openvino", "bf16")
    assert metadata.precision == "bf16"
    model = Model.load(tmp_path / "bf16")
    supported = "BF16" in ov.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES")
    assert model.engine.compiled.get_property("INFERENCE_PRECISION_HINT") == (ov.Type.bf16 if supported else ov.Type.f32)
    scores, reference = _scores(tmp_path / "bf16", frames), _scores(openvino_bundle, frames)
    assert np.corrcoef(scores, reference)[0, 1] > 0.99


def test_int8_bundle_records_its_quantisation(run_dir, tmp_path):
    metadata = exporter.export_bundle(run_dir, tmp_path / "int8", "openvino", "int8", max_drop=1.0)
    report = metadata.quantization
    assert metadata.precision == "int8" and report.mode == "all layers" and report.calibration_images == 30  # every training image
    assert read_bundle(tmp_path / "int8").metadata.quantization == report
    types = {op.get_type_name() for op in ov.Core().read_model(str(tmp_path / "int8" / "model.xml")).get_ops()}
    assert "FakeQuantize" in types
    attempt = report.attempts[0]
    assert attempt["drop"] == pytest.approx(max(report.float_accuracy[k] - attempt[k] for k in ("image_auroc", "pixel_auroc")))


def test_int8_keeps_the_head_in_float_or_refuses(run_dir, model_name, openvino_bundle, tmp_path, frames, monkeypatch):
    measured = iter([{"image_auroc": 1.0, "pixel_auroc": 1.0}, {"image_auroc": 0.9, "pixel_auroc": 1.0}, {"image_auroc": 0.999, "pixel_auroc": 0.998}])
    monkeypatch.setattr(quantize, "_accuracy", lambda *args: next(measured))
    metadata = exporter.export_bundle(run_dir, tmp_path / "int8", "openvino", "int8", max_drop=0.005)
    report = metadata.quantization
    assert report.mode == "convolutions after the stem" and [a["mode"] for a in report.attempts] == ["all layers", "convolutions after the stem"]
    quantized = [_input_is_quantized(op) for op in ov.Core().read_model(str(tmp_path / "int8" / "model.xml")).get_ordered_ops()
                 if op.get_type_name() in ("Convolution", "GroupConvolution")]
    assert quantized[: quantize.STEM_CONVOLUTIONS] == [False] * quantize.STEM_CONVOLUTIONS and all(quantized[quantize.STEM_CONVOLUTIONS :])
    # with the head in float, INT8 DFM stays close (in calibrated distance); CFLOW's flows amplify even
    # INT8 feature noise (that is what the accuracy control is for), so its scores are only held to
    # a positive correlation here
    measure = _distances if model_name == "dfm" else _scores
    scores, reference = measure(tmp_path / "int8", frames), measure(openvino_bundle, frames)
    assert np.corrcoef(scores, reference)[0, 1] > (0.9 if model_name == "dfm" else 0.0)
    measured = iter([{"image_auroc": 1.0, "pixel_auroc": 1.0}, {"image_auroc": 0.9, "pixel_auroc": 1.0}, {"image_auroc": 0.99, "pixel_auroc": 0.9}])
    with pytest.raises(AdedgeError, match=r"all layers: 10.00; convolutions after the stem: 10.00"):
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
