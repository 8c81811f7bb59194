import json
import shutil
import subprocess
import sys

import numpy as np
import openvino as ov
import pytest
import torch

from adedge.bundle import METADATA_FILE
from adedge.data.datasets import open_dataset
from adedge.data.images import load_image
from adedge.errors import AdedgeError
from adedge.export import exporter
from adedge.runtime import Model
from adedge.train.checkpoint import load_run


@pytest.fixture(scope="module")
def test_batch(synthetic):
    samples = open_dataset(synthetic).test
    return np.stack([load_image(s.path) for s in samples[::3]])


@pytest.fixture(scope="module")
def torch_outputs(run_dir, test_batch):
    detector, _ = load_run(run_dir)
    with torch.no_grad():
        score, _, anomaly_map, _ = detector(torch.from_numpy(test_batch))
    return anomaly_map[:, 0].numpy(), score.numpy()


@pytest.fixture
def bundles(onnx_bundle, openvino_bundle):
    return {"onnx": onnx_bundle, "openvino": openvino_bundle}


@pytest.mark.parametrize(("fmt", "backend"), [("onnx", "onnxruntime"), ("onnx", "openvino"), ("openvino", "openvino")])
def test_engines_match_torch(fmt, backend, bundles, test_batch, torch_outputs):
    model = Model.load(bundles[fmt], backend)
    scores, maps = model.infer(test_batch)
    np.testing.assert_allclose(scores, torch_outputs[1], rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(maps, torch_outputs[0], rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize(("fmt", "backend"), [("onnx", "onnxruntime"), ("openvino", "openvino")])
def test_scores_do_not_depend_on_the_batch(fmt, backend, bundles, test_batch):
    model = Model.load(bundles[fmt], backend)
    alone = np.concatenate([model.infer(test_batch[i : i + 1])[0] for i in range(len(test_batch))])
    together = model.infer(test_batch)[0]
    reversed_order = model.infer(test_batch[::-1].copy())[0][::-1]
    np.testing.assert_allclose(together, alone, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(reversed_order, alone, rtol=1e-5, atol=1e-6)
    assert model.infer(np.repeat(test_batch, 3, axis=0))[0].shape == (3 * len(test_batch),)  # any batch size


def test_a_frame_size_seen_in_a_row_gets_a_graph_of_its_own_with_the_same_outputs(openvino_bundle, test_batch):
    from adedge.runtime.inference.engines import SPECIALISE_AFTER

    model = Model.load(openvino_bundle)
    frames, other = test_batch[:1], np.ascontiguousarray(test_batch[1:2, :100, :90])
    dynamic = model.infer(frames)
    for _ in range(SPECIALISE_AFTER - 2):
        model.infer(frames)
    assert model.engine.specialised is None
    model.infer(frames)  # the SPECIALISE_AFTER-th call of this shape in a row compiles the graph for it
    assert model.engine.specialised[0] == frames.shape and model.engine.specialised[1] is not model.engine.compiled
    specialised = model.infer(frames)
    np.testing.assert_allclose(specialised[0], dynamic[0], rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(specialised[1], dynamic[1], rtol=1e-5, atol=1e-6)
    background = model.engine.async_requests()[0]  # throughput mode's requests take the same graph
    background.start(frames)
    assert background.compiled is model.engine.specialised[1]
    np.testing.assert_allclose(background.wait()[0], dynamic[0], rtol=1e-6, atol=1e-7)
    # another size runs on the graph for any size, with the outputs a fresh model gives it
    np.testing.assert_allclose(model.infer(other)[0], Model.load(openvino_bundle).infer(other)[0], rtol=1e-6)
    assert model.engine.specialised[0] == frames.shape


def test_concurrent_infer_outputs_share_the_graph_compiled_for_their_frame_size(openvino_bundle, test_batch):
    from concurrent.futures import ThreadPoolExecutor

    from adedge.runtime.inference.engines import SPECIALISE_AFTER

    engine = Model.load(openvino_bundle).engine
    frames = test_batch[:1]
    dynamic = engine.infer_outputs(frames)
    with ThreadPoolExecutor(4) as pool:  # serve's threads, all on one frame size
        outputs = list(pool.map(lambda _: engine.infer_outputs(frames), range(4 * SPECIALISE_AFTER)))
    assert engine.specialised[0] == frames.shape and engine.specialised[1] is not engine.compiled
    for each in outputs:
        assert each.keys() == dynamic.keys()
        np.testing.assert_allclose(each["pred_score"], dynamic["pred_score"], rtol=1e-6, atol=1e-7)
        np.testing.assert_allclose(each["anomaly_map"], dynamic["anomaly_map"], rtol=1e-5, atol=1e-6)


def _resize_steps(compiled) -> int:
    return sum(op.get_rt_info()["layerType"].astype(str) == "Interpolate" for op in compiled.get_runtime_model().get_ordered_ops())


def test_a_graph_compiled_for_the_model_size_drops_the_resize_steps_that_do_nothing(openvino_bundle):
    from adedge.runtime.inference.engines import SPECIALISE_AFTER
    from adedge.train.detector import HALVINGS

    model = Model.load(openvino_bundle)
    frames = np.random.default_rng(0).integers(0, 256, (1, *model.input_size, 3), dtype=np.uint8)
    dynamic = model.infer(frames)
    for _ in range(SPECIALISE_AFTER):
        model.infer(frames)
    # the graph for any size resizes the frame (the antialiasing halvings and a last step) and
    # upsamples the maps; at the model's own size the frame's steps drop out
    assert _resize_steps(model.engine.compiled) - _resize_steps(model.engine.specialised[1]) == HALVINGS + 1
    specialised = model.infer(frames)
    np.testing.assert_allclose(specialised[0], dynamic[0], rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(specialised[1], dynamic[1], rtol=1e-5, atol=1e-6)


def test_predict_returns_frame_sized_results(openvino_bundle, synthetic):
    model = Model.load(openvino_bundle)
    frame = np.ascontiguousarray(np.pad(load_image(next((synthetic / "test" / "scratch").iterdir())), ((0, 40), (0, 10), (0, 0)), mode="edge"))
    result = model.predict(frame)
    assert result.anomaly_map.shape == frame.shape[:2] == result.mask.shape
    assert (result.mask == (result.anomaly_map > 0.5)).all()
    assert result.anomalous == (result.score > 0.5) and result.label in ("OK", "NG")
    batch = model.predict_batch([frame, frame[:100, :90].copy()], batch_size=2)
    assert batch[0].score == pytest.approx(result.score, rel=1e-5) and batch[1].anomaly_map.shape == (100, 90)
    with pytest.raises(AdedgeError, match="uint8 RGB"):
        model.predict(frame.astype(np.float32))


def test_good_images_pass_and_defects_fail(openvino_bundle, synthetic):
    samples = open_dataset(synthetic).test
    results = Model.load(openvino_bundle).predict_batch([s.path for s in samples])
    false_alarms = sum(r.anomalous for r, s in zip(results, samples) if not s.anomalous)
    caught = sum(r.anomalous for r, s in zip(results, samples) if s.anomalous)
    # the test models are trained briefly and calibrated on the out-of-fold scores of 30 training images
    # and synthetic defects: at the shipped threshold they must pass the good plates and catch half the defects
    assert false_alarms <= 1 and caught >= 0.5 * sum(s.anomalous for s in samples)


def test_bundle_metadata_and_ir_rt_info(openvino_bundle, run_dir):
    metadata = json.loads((openvino_bundle / METADATA_FILE).read_text())
    run = json.loads((run_dir / "run.json").read_text())
    assert metadata["model"] == run["model"] and metadata["precision"] == "fp32" and metadata["format"] == "openvino"
    assert metadata["input"]["height"] == 128 and metadata["calibration"] == run["calibration"]
    assert "anomaly_map_size" not in metadata and metadata["input"]["resize"] == run["resize"]  # the size is stored once
    assert set(metadata["files"]) == {"model.xml", "model.bin"}
    model = ov.Core().read_model(openvino_bundle / "model.xml")  # the .xml describes itself
    assert json.loads(model.get_rt_info(["adedge"]).astype(str)) == {k: v for k, v in metadata.items() if k != "files"}
    info = {key: model.get_rt_info(["model_info", key]).astype(str) for key in ("model_type", "image_threshold", "embedded_processing")}
    assert info == {"model_type": "AnomalyDetection", "image_threshold": "0.5", "embedded_processing": "True"}
    # every op asks to stay in f32 (what keeps OpenVINO's default bf16 away on CPUs that have it),
    # and none is of a kind the CPU plugin would re-create without that mark
    ops = model.get_ordered_ops()
    assert all("DisablePrecisionConversion_0" in op.get_rt_info() for op in ops)
    assert not [op for op in ops if op.get_type_name() in ("VariadicSplit", "Split", "StridedSlice", "Slice") and op.get_output_element_type(0) == ov.Type.f32]
    assert all(op.get_type_info().version_id == "opset4" for op in ops if op.get_type_name() == "Interpolate")


def test_fp16_bundle_is_smaller_and_close(run_dir, openvino_bundle, tmp_path, test_batch, torch_outputs):
    out = exporter.export_bundle(run_dir, tmp_path / "fp16", "openvino", "fp16")
    assert out.precision == "fp16"
    assert (tmp_path / "fp16" / "model.bin").stat().st_size < 0.6 * (openvino_bundle / "model.bin").stat().st_size
    scores = Model.load(tmp_path / "fp16").infer(test_batch)[0]
    assert np.corrcoef(scores, torch_outputs[1])[0, 1] > 0.99


def _copy(bundle, tmp_path):
    return shutil.copytree(bundle, tmp_path / "copy")


def test_edited_model_file_is_refused(openvino_bundle, tmp_path):
    copy = _copy(openvino_bundle, tmp_path)
    with open(copy / "model.bin", "r+b") as stream:
        stream.seek(1000)
        stream.write(b"\x01\x02\x03\x04")
    with pytest.raises(AdedgeError, match="model.bin was modified after export"):
        Model.load(copy)


def test_other_versions_and_broken_metadata_are_refused(onnx_bundle, tmp_path):
    copy = _copy(onnx_bundle, tmp_path)
    metadata = json.loads((copy / METADATA_FILE).read_text())
    (copy / METADATA_FILE).write_text(json.dumps({**metadata, "format_version": 99}))
    with pytest.raises(AdedgeError, match="format 99 .* re-create"):
        Model.load(copy)
    (copy / METADATA_FILE).write_text(json.dumps({**metadata, "input": {**metadata["input"], "height": 64}}))
    with pytest.raises(AdedgeError, match="does not match the metadata inside model.onnx .*differs in input"):
        Model.load(copy, "onnxruntime")
    (copy / METADATA_FILE).write_text(json.dumps({**metadata, "input": None}))
    with pytest.raises(AdedgeError, match="adedge.json.input must be an object"):
        Model.load(copy)
    (copy / METADATA_FILE).write_text(json.dumps({**metadata, "calibration": {**metadata["calibration"], "images": "many"}}))
    with pytest.raises(AdedgeError, match="calibration.images must be int"):
        Model.load(copy)
    (copy / METADATA_FILE).write_text(json.dumps({k: v for k, v in metadata.items() if k != "outputs"}))
    with pytest.raises(AdedgeError, match="lacks the field 'outputs'"):
        Model.load(copy)
    (copy / METADATA_FILE).write_text("{not json")
    with pytest.raises(AdedgeError, match="not valid JSON"):
        Model.load(copy)
    (copy / METADATA_FILE).unlink()
    with pytest.raises(AdedgeError, match="adedge.json is missing"):
        Model.load(copy)


def test_onnxruntime_needs_an_onnx_bundle(openvino_bundle):
    with pytest.raises(AdedgeError, match="export with --format onnx"):
        Model.load(openvino_bundle, "onnxruntime")
    with pytest.raises(AdedgeError, match="unknown --backend"):
        Model.load(openvino_bundle, "tensorrt")


def test_failed_export_leaves_the_old_bundle_intact(run_dir, onnx_bundle, tmp_path, monkeypatch):
    target = shutil.copytree(onnx_bundle, tmp_path / "bundle")
    before = {p.name: p.read_bytes() for p in target.iterdir()}

    def broken(*args, **kwargs):
        raise AdedgeError("disk full")

    monkeypatch.setattr(exporter, "export_onnx", broken)
    with pytest.raises(AdedgeError, match="disk full"):
        exporter.export_bundle(run_dir, target, "openvino")
    assert {p.name: p.read_bytes() for p in target.iterdir()} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bundle"]  # no scratch folder left behind
    with pytest.raises(AdedgeError, match="disk full"):
        exporter.export_bundle(run_dir, tmp_path / "new", "onnx")
    assert not (tmp_path / "new").exists()


def test_export_refuses_to_overwrite_a_foreign_folder(run_dir, tmp_path):
    (tmp_path / "photos").mkdir()
    (tmp_path / "photos" / "holiday.jpg").write_bytes(b"precious")
    with pytest.raises(AdedgeError, match="not an adedge output folder"):
        exporter.export_bundle(run_dir, tmp_path / "photos", "onnx")
    assert (tmp_path / "photos" / "holiday.jpg").read_bytes() == b"precious"
    with pytest.raises(AdedgeError, match="needs --format openvino"):
        exporter.export_bundle(run_dir, tmp_path / "b", "onnx", "fp16")


def test_runtime_never_imports_torch(openvino_bundle, onnx_bundle, synthetic):
    image = next((synthetic / "test" / "crack").iterdir())
    code = (
        "import sys\n"
        "from adedge.runtime import Model\n"
        "from adedge.runtime.evaluation.evaluate import evaluate_bundle\n"
        "from adedge.runtime.evaluation.bench import bench\n"
        f"Model.load({str(openvino_bundle)!r}).predict({str(image)!r})\n"
        f"m = Model.load({str(onnx_bundle)!r}, 'onnxruntime')\n"
        f"m.predict_batch([{str(image)!r}] * 3)\n"
        f"evaluate_bundle(m, {str(synthetic)!r})\n"
        "bench(m, 1, 2, 1)\n"
        "import adedge.cli\n"
        "assert 'torch' not in sys.modules, 'torch was imported'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
