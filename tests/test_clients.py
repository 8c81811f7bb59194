"""A bundle gives the same verdicts to clients that know nothing of adedge, and refuses tampering."""

import json
import shutil

import numpy as np
import openvino as ov
import pytest

from adedge.bundle import METADATA_FILE, SIGNATURE_FILE
from adedge.data.datasets import open_dataset
from adedge.data.images import load_image
from adedge.errors import AdedgeError
from adedge.export import exporter
from adedge.runtime import Model

SIZES = ((128, 128), (300, 200), (97, 451), (1080, 1920))  # smaller, larger, odd and wide frames


@pytest.fixture(scope="module")
def frames(synthetic):
    """Test images stretched to several sizes and aspect ratios, as different cameras would give them."""
    import cv2

    images = [load_image(s.path) for s in open_dataset(synthetic).test[::4]]
    return {size: np.stack([cv2.resize(i, size[::-1], interpolation=cv2.INTER_LINEAR) for i in images]) for size in SIZES}


def _plain_openvino(model_file, batch, config=None):
    """Scores, labels and the CHECK band's start, as a client that knows only OpenVINO reads them."""
    core = ov.Core()
    # an IR keeps model_info as such; OpenVINO reading an ONNX file puts its metadata_props under "framework"
    path = ["model_info", "adedge_check_threshold"] if model_file.suffix == ".xml" else ["framework", "model_info adedge_check_threshold"]
    check = float(core.read_model(str(model_file)).get_rt_info(path).astype(str))
    compiled = core.compile_model(str(model_file), "CPU", config or {})  # no config: whatever the CPU prefers
    results = compiled(batch)
    return results[compiled.output("pred_score")], results[compiled.output("pred_label")], check


def _plain_onnxruntime(onnx_file, batch):
    import onnxruntime as ort

    session = ort.InferenceSession(str(onnx_file), providers=["CPUExecutionProvider"])
    score, label = session.run(["pred_score", "pred_label"], {"image": batch})
    return score, label, float(session.get_modelmeta().custom_metadata_map["model_info adedge_check_threshold"])


@pytest.mark.parametrize("size", SIZES)
def test_every_client_gives_the_same_verdicts_at_any_frame_size(size, frames, openvino_bundle, onnx_bundle):
    batch = frames[size]
    ours = Model.load(openvino_bundle).predict_batch(list(batch))
    scores = np.array([r.score for r in ours])
    for client_scores, client_labels, check in (
        _plain_openvino(openvino_bundle / "model.xml", batch),
        _plain_onnxruntime(onnx_bundle / "model.onnx", batch),
        # an ONNX file carries no precision marks: OpenVINO reading it must be asked for f32 (README)
        _plain_openvino(onnx_bundle / "model.onnx", batch, {"INFERENCE_PRECISION_HINT": "f32"}),
    ):
        np.testing.assert_allclose(client_scores, scores, atol=1e-4)
        assert (client_labels == (client_scores > 0.5)).all()
        # the CHECK band, from the model file's own metadata: the verdicts adedge's runtime gives
        assert check == pytest.approx(Model.load(openvino_bundle).point.check, abs=1e-6) and 0 < check < 0.5
        verdicts = np.where(client_scores > 0.5, "NG", np.where(client_scores > check, "CHECK", "OK"))
        assert verdicts.tolist() == [r.label for r in ours]
    alone = [Model.load(onnx_bundle, "onnxruntime").predict(frame).score for frame in batch[:3]]
    np.testing.assert_allclose(alone, scores[:3], atol=1e-5)  # alone or in a batch


def test_graph_resizes_like_training(frames, run_dir):
    """The graph's preprocessing is the module training ran: a frame and the same frame enlarged
    score alike, since the graph's antialiasing averages the enlargement away."""
    import torch

    from adedge.train.checkpoint import load_run

    detector, info = load_run(run_dir)
    assert info.resize == "antialias" and detector.encoder.preprocess.resize == "antialias"
    small, large = frames[(128, 128)][:4], np.repeat(np.repeat(frames[(128, 128)][:4], 4, axis=1), 4, axis=2)
    with torch.no_grad():
        a, b = (detector(torch.from_numpy(x))[0].numpy() for x in (small, large))
    np.testing.assert_allclose(a, b, atol=0.05)


@pytest.mark.skipif(
    "BF16" not in ov.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES"),
    reason="this CPU has no bf16 units, so OpenVINO's default already is f32",
)
def test_default_compile_on_a_bf16_cpu_gives_the_f32_verdicts(frames, openvino_bundle):
    batch = frames[(300, 200)]
    compiled = ov.Core().compile_model(str(openvino_bundle / "model.xml"), "CPU")
    default = compiled(batch)[compiled.output("pred_score")]
    exact = Model.load(openvino_bundle).infer(batch)[0]
    np.testing.assert_allclose(default, exact, atol=1e-5)  # every op kept in f32, none left to bf16
    assert ((default > 0.5) == (exact > 0.5)).all()


def test_openvino_model_api_reads_the_ir_unchanged(frames, openvino_bundle):
    model_api = pytest.importorskip("model_api.models", reason="openvino-model-api is a dev extra")
    client = model_api.Model.create_model(str(openvino_bundle / "model.xml"))
    assert type(client).__name__ == "AnomalyDetection"
    ours = Model.load(openvino_bundle)
    for frame in frames[(300, 200)][:4]:
        theirs, mine = client(frame), ours.predict(frame)
        assert theirs.pred_score == pytest.approx(mine.score, abs=1e-4)
        assert theirs.pred_label == str(mine.anomalous)
        assert theirs.anomaly_map.shape == frame.shape[:2]


def _copy(bundle, tmp_path, name="copy"):
    return shutil.copytree(bundle, tmp_path / name)


def test_edited_metadata_is_refused(openvino_bundle, tmp_path):
    copy = _copy(openvino_bundle, tmp_path)
    metadata = json.loads((copy / METADATA_FILE).read_text())
    metadata["calibration"]["score_threshold"] *= 2
    (copy / METADATA_FILE).write_text(json.dumps(metadata))
    with pytest.raises(AdedgeError, match="does not match the metadata inside model.xml .*calibration"):
        Model.load(copy)


def test_a_model_file_swapped_in_with_rewritten_hashes_is_refused(run_dir, openvino_bundle, tmp_path):
    other = exporter.export_bundle(run_dir, tmp_path / "other", "openvino")  # another export: another record
    copy = _copy(openvino_bundle, tmp_path)
    for name in other.files:
        shutil.copy(tmp_path / "other" / name, copy / name)
    metadata = json.loads((copy / METADATA_FILE).read_text())
    metadata["files"] = other.files
    (copy / METADATA_FILE).write_text(json.dumps(metadata))
    with pytest.raises(AdedgeError, match="does not match the metadata inside model.xml .*created"):
        Model.load(copy)


def test_missing_and_unlisted_files_are_refused(onnx_bundle, tmp_path):
    copy = _copy(onnx_bundle, tmp_path)
    (copy / "notes.txt").write_text("hello")
    with pytest.raises(AdedgeError, match="holds files adedge.json does not list: notes.txt"):
        Model.load(copy, "onnxruntime")
    (copy / "notes.txt").unlink()
    (copy / "model.onnx").unlink()
    with pytest.raises(AdedgeError, match="bundle file missing"):
        Model.load(copy, "onnxruntime")


def test_signed_bundles(run_dir, tmp_path):
    key, other_key = tmp_path / "plant.key", tmp_path / "other.key"
    key.write_bytes(b"k" * 32)
    other_key.write_bytes(b"o" * 32)
    exporter.export_bundle(run_dir, tmp_path / "signed", "onnx", sign_key=key)
    assert (tmp_path / "signed" / SIGNATURE_FILE).is_file()
    Model.load(tmp_path / "signed", "onnxruntime", key=key.read_bytes())
    with pytest.raises(AdedgeError, match="not signed with this key"):
        Model.load(tmp_path / "signed", "onnxruntime", key=other_key.read_bytes())
    (tmp_path / "signed" / SIGNATURE_FILE).unlink()
    with pytest.raises(AdedgeError, match="is not signed"):
        Model.load(tmp_path / "signed", "onnxruntime", key=key.read_bytes())
    short = tmp_path / "short.key"
    short.write_bytes(b"123")
    with pytest.raises(AdedgeError, match="a key needs at least 16"):
        exporter.export_bundle(run_dir, tmp_path / "b", "onnx", sign_key=short)
