"""Fail closed: a diverged training writes no run, and a non-finite score is never OK."""

import dataclasses
import json
import math

import numpy as np
import pytest
import torch

from adedge.errors import AdedgeError
from adedge.fileio import json_text
from adedge.runtime import Inspection, Model
from adedge.runtime.evaluation.evaluate import evaluate_bundle
from adedge.runtime.inference.model import Result
from adedge.runtime.inference.verdict import OperatingPoint
from adedge.train import trainer
from adedge.train.backbones import RANDOM_WEIGHTS, create_backbone
from adedge.train.cflow import CflowSettings, build_decoder, positional_encoding, train_decoder
from adedge.train.detector import Detector, Encoder
from adedge.train.dfm import PLUGIN as DFM
from adedge.train.dfm import DFMHead


def test_non_finite_scores_are_never_ok():
    point = OperatingPoint(check=0.3)
    scores = (0.2, 0.4, 0.5, 0.51, math.nan, math.inf, -math.inf)
    assert [point.decide(s).label for s in scores] == ["OK", "CHECK", "CHECK", "NG", "NG", "NG", "NG"]
    result = Result(point.decide(math.nan), np.array([[0.1, math.nan]], np.float32), (1, 2), point)
    assert result.label == "NG" and result.anomalous and result.mask.tolist() == [[False, True]]
    assert "no finite score" in result.verdict.reasons[0] and result.verdict.flags == ("not_finite",)


def test_the_graph_labels_a_nan_score_anomalous():
    backbone = create_backbone("efficientnet_lite0", RANDOM_WEIGHTS)
    backbone.keep_stages(["block10"])
    channels = backbone.stage("block10").channels
    detector = Detector(Encoder(backbone, (64, 64), "bilinear"), DFMHead("block10", 1, (channels, 4, 4), 2, "fre")).eval()
    frames = torch.zeros(2, 64, 64, 3, dtype=torch.uint8)
    with torch.no_grad():
        detector.score_threshold.fill_(1e9)
        assert not detector(frames)[1].any()  # far below a huge threshold: OK
        detector.score_threshold.fill_(math.nan)
        detector.map_threshold.fill_(math.nan)
        score, label, _, mask = detector(frames)
    assert torch.isnan(score).all() and label.all() and mask.all()


def test_a_diverging_flow_stops_training():
    fibers = torch.randn(64, 6)
    fibers[3, 2] = math.nan
    settings = CflowSettings(meta_epochs=1, sub_epochs=1, warmup_meta_epochs=0, fiber_batch=16, condition=8)
    with pytest.raises(AdedgeError, match="CFLOW training diverged .*epoch 1: loss nan.*lower learning rate"):
        train_decoder(fibers, positional_encoding(8, 4, 4), build_decoder(6, 8, 2, 1.9), settings, torch.Generator().manual_seed(0), lambda items, _: items, "flow s")


@pytest.mark.trains
def test_a_model_with_non_finite_constants_writes_no_run(synthetic, tmp_path, monkeypatch):
    def broken_fit(*args):
        head, losses = DFM.fit(*args)
        head.mean.fill_(math.nan)
        return head, losses

    monkeypatch.setattr(trainer, "model_plugin", lambda name: dataclasses.replace(DFM, fit=broken_fit))
    with pytest.raises(AdedgeError, match=r"training produced non-finite values \(score_threshold, .*\); nothing was written"):
        trainer.train(trainer.TrainConfig(synthetic, tmp_path / "run", image_size=64, settings={"pool": 2}))
    assert not (tmp_path / "run").exists()


def test_a_non_finite_frame_is_ng_with_an_error_and_strict_json():
    result = Result(OperatingPoint().decide(math.nan), np.zeros((2, 2), np.float32), (2, 2), OperatingPoint())
    record = Inspection("cam", 7, 0.0, 1.0, 1.0, result).record("run", "part_dfm")
    assert record["score"] is None and record["label"] == "NG" and record["flags"] == ["not_finite"] and "no finite score" in record["reasons"][0]
    assert json.loads(json_text(record))["score"] is None
    assert json_text({"pixel_auroc": math.nan, "scores": [1.0, math.inf]}) == '{"pixel_auroc": null, "scores": [1.0, null]}'


class _BrokenEngine:
    """An engine whose model gives NaN for every frame."""

    def infer(self, batch):
        return np.full(len(batch), np.nan, np.float32), np.zeros((len(batch), 8, 8), np.float32)


def test_eval_refuses_non_finite_scores(openvino_bundle, synthetic):
    model = Model.load(openvino_bundle)
    model.engine = _BrokenEngine()
    with pytest.raises(AdedgeError, match=r"non-finite scores for \d+ of \d+ images .*it is broken"):
        evaluate_bundle(model, synthetic)


@pytest.mark.trains
def test_non_finite_features_write_no_run(synthetic, tmp_path):
    broken = create_backbone("efficientnet_lite0", RANDOM_WEIGHTS)
    state = {k: v.fill_(math.nan) if k == "_bn0.bias" else v for k, v in broken.state_dict().items()}
    torch.save(state, tmp_path / "nan.pth")
    config = trainer.TrainConfig(synthetic, tmp_path / "run", backbone="efficientnet_lite0", image_size=64,
                                 weights=str(tmp_path / "nan.pth"), settings={"pool": 2})
    with pytest.raises(AdedgeError, match=r"non-finite features \(block10\); nothing was written"):
        trainer.train(config)
    assert not (tmp_path / "run").exists()


@pytest.mark.trains
def test_a_diverged_training_ends_in_one_line_and_exit_2(synthetic, tmp_path, monkeypatch):
    from test_cli import _one_line_error, invoke

    from adedge.train import cflow

    monkeypatch.setattr(cflow, "MAX_LR", 1e31)  # a learning rate adedge refuses up front, to make the flow diverge
    result = invoke("train", "--data", synthetic, "--out", tmp_path / "run", "--model", "cflow", "--image-size", 64,
                    "-p", "lr=1e30", "-p", "meta_epochs=1", "-p", "warmup_meta_epochs=0")
    _one_line_error(result, "CFLOW training diverged")
    assert not (tmp_path / "run").exists()
