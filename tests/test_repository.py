"""Model repositories for Triton and OVMS: layout, configs consistent with the graph, the bundle inside intact.

No server can be installed here, so the configs are checked structurally against the exported graph
itself (names, element types, per-frame shapes) and the version folder is run as a bundle.
"""

import json

import openvino as ov
import pytest

from adedge.bundle import MAX_BATCH
from adedge.data.images import load_image
from adedge.errors import AdedgeError
from adedge.export.exporter import export_bundle
from adedge.runtime import Model

TRITON_TYPES = {"f32": "TYPE_FP32", "boolean": "TYPE_BOOL", "u8": "TYPE_UINT8"}


def _triton_dims(shape: ov.PartialShape) -> str:
    """How config.pbtxt states an output of the graph: its shape less the batch; a per-frame scalar as [1]."""
    dims = [str(d.get_length()) for d in list(shape)[1:]] or ["1"]
    return f"dims: [ {', '.join(dims)} ]"


@pytest.mark.parametrize("fmt", ["openvino", "onnx"])
def test_triton_repository_matches_the_graph_and_runs_as_a_bundle(small_model, synthetic, tmp_path, fmt):
    run_dir = small_model[0]
    repository = tmp_path / "models"
    metadata = export_bundle(run_dir, repository, fmt, layout="triton", name="plates")
    version = repository / "plates" / "1"
    model_file = version / ("model.xml" if fmt == "openvino" else "model.onnx")
    assert sorted(p.name for p in (repository / "plates").iterdir()) == ["1", "config.pbtxt"]
    assert model_file.is_file() and (version / "adedge.json").is_file()
    config = (repository / "plates" / "config.pbtxt").read_text()
    assert 'name: "plates"' in config and f'backend: "{"openvino" if fmt == "openvino" else "onnxruntime"}"' in config
    assert f"max_batch_size: {MAX_BATCH}" in config and "dynamic_batching" in config and "kind: KIND_CPU" in config
    graph = ov.Core().read_model(model_file)
    (image,) = graph.inputs
    assert f'name: "{image.get_any_name()}"\n    data_type: TYPE_UINT8\n    dims: [ -1, -1, 3 ]' in config
    for output in graph.outputs:
        block = f'name: "{output.get_any_name()}"\n    data_type: {TRITON_TYPES[output.get_element_type().get_type_name()]}\n    {_triton_dims(output.get_partial_shape())}'
        per_frame_scalar = output.get_partial_shape().rank.get_length() == 1  # [batch]
        assert block + ("\n    reshape: { shape: [ ] }" if per_frame_scalar else "\n  }") in config, block
    assert [o.get_any_name() for o in graph.outputs] == metadata.outputs
    frame = load_image(synthetic / "test" / "good" / "000.png")
    served = Model.load(version, "openvino" if fmt == "openvino" else "onnxruntime").predict(frame)
    alone = Model.load(small_model[1]).predict(frame)  # the same run exported as a plain OpenVINO bundle
    assert abs(served.score - alone.score) < (1e-6 if fmt == "openvino" else 1e-4) and served.label == alone.label


def test_ovms_repository_lists_every_model_and_asks_for_f32(small_model, tmp_path):
    run_dir = small_model[0]
    repository = tmp_path / "models"
    export_bundle(run_dir, repository, "openvino", layout="ovms", name="first")
    export_bundle(run_dir, repository, "onnx", layout="ovms", name="second")
    export_bundle(run_dir, repository, "openvino", precision="bf16", layout="ovms", name="first")  # replaces, keeps second
    configs = {m["config"]["name"]: m["config"] for m in json.loads((repository / "config.json").read_text())["model_config_list"]}
    assert sorted(configs) == ["first", "second"]
    assert configs["second"]["base_path"] == "second" and configs["second"]["plugin_config"]["INFERENCE_PRECISION_HINT"] == "f32"
    assert configs["first"]["plugin_config"]["INFERENCE_PRECISION_HINT"] == "bf16"
    assert (repository / "first" / "1" / "model.xml").is_file() and (repository / "second" / "1" / "model.onnx").is_file()
    assert json.loads((repository / "first" / "1" / "adedge.json").read_text())["precision"] == "bf16"
    assert sorted(p.name for p in repository.iterdir()) == ["config.json", "first", "second"]


def test_repository_mistakes_are_refused_before_any_work(small_model, tmp_path):
    run_dir = small_model[0]
    repository = tmp_path / "models"
    repository.mkdir()
    (repository / "config.json").write_text("{not json")
    with pytest.raises(AdedgeError, match="is not an OpenVINO Model Server config"):
        export_bundle(run_dir, repository, layout="ovms", name="plates")
    with pytest.raises(AdedgeError, match="--name must be"):
        export_bundle(run_dir, repository, layout="triton", name="../escape")
    with pytest.raises(AdedgeError, match="unknown --layout"):
        export_bundle(run_dir, repository, layout="kserve")
    (repository / "theirs").mkdir()
    (repository / "theirs" / "config.pbtxt").write_text("name: \"theirs\"")
    with pytest.raises(AdedgeError, match="not an adedge output folder"):
        export_bundle(run_dir, repository, layout="triton", name="theirs")
    assert sorted(p.name for p in repository.iterdir()) == ["config.json", "theirs"]
    assert [p.name for p in (repository / "theirs").iterdir()] == ["config.pbtxt"]
