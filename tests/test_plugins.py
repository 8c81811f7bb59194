"""A model is one plug-in: a model defined outside adedge trains, exports and runs through the CLI
once it is registered, with no other change to adedge."""

import json

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from adedge.cli import app
from adedge.data.datasets import open_dataset
from adedge.data.images import load_image
from adedge.errors import AdedgeError
from adedge.runtime import Model
from adedge.train import models
from adedge.train.checkpoint import load_run


@pytest.fixture
def registered(monkeypatch):
    monkeypatch.setitem(models.REGISTRY, "mean_distance", "toy_model")


@pytest.mark.trains
def test_a_registered_model_trains_exports_and_runs(registered, synthetic, tmp_path):
    runner = CliRunner()
    run, bundle = tmp_path / "run", tmp_path / "bundle"
    result = runner.invoke(app, ["train", "--model", "mean_distance", "--data", str(synthetic), "--out", str(run), "--image-size", "64", "-p", "root=1"])
    assert result.exit_code == 0, result.output
    info = json.loads((run / "run.json").read_text())
    assert info["model"] == "mean_distance" and info["settings"] == {"root": 1} and info["stages"] == ["block14"]  # lite1's stride-16 stage
    assert runner.invoke(app, ["export", str(run), "--format", "onnx", "--out", str(bundle)]).exit_code == 0
    frames = np.stack([load_image(s.path) for s in open_dataset(synthetic).test[::3]])
    detector, _ = load_run(run)
    with torch.no_grad():
        expected = detector(torch.from_numpy(frames))[0].numpy()
    np.testing.assert_allclose(Model.load(bundle, "onnxruntime").infer(frames)[0], expected, atol=1e-5)


def test_unknown_models_and_settings_are_refused(registered):
    with pytest.raises(AdedgeError, match="unknown model .nope.; choose from dfm, cflow, patchcore, mean_distance"):
        models.model_plugin("nope")
    plugin = models.model_plugin("mean_distance")
    with pytest.raises(AdedgeError, match="mean_distance has no setting 'depth'; its settings and defaults: root=2"):
        models.model_settings(plugin, {"depth": "3"})
    with pytest.raises(AdedgeError, match="setting root takes an int, got 'two'"):
        models.model_settings(plugin, {"root": "two"})
    assert models.model_settings(plugin, {"root": "1"}).root == 1
