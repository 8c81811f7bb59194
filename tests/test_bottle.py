"""Accuracy on a real MVTec AD category, measured through the exported bundle (what ships)."""

import pytest
from conftest import require_shared

from adedge.export.exporter import export_bundle
from adedge.runtime import Model
from adedge.runtime.evaluation.evaluate import evaluate_bundle
from adedge.train.trainer import TrainConfig, train


@pytest.mark.trains
def test_dfm_lite0_on_bottle_reaches_target(tmp_path):
    bottle = require_shared("bottle")
    train(TrainConfig(bottle, tmp_path / "run"))
    export_bundle(tmp_path / "run", tmp_path / "bundle", "openvino")
    metrics = evaluate_bundle(Model.load(tmp_path / "bundle"), bottle)
    assert metrics["image_auroc"] >= 0.99, metrics
    assert metrics["images"] == 83 and metrics["pixel_auroc"] > 0.85
