"""The run-time threshold and CHECK band: moved without re-exporting, stated in every record."""

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from adedge.cli import app
from adedge.runtime import Model
from adedge.runtime.evaluation.evaluate import run_evaluation


def test_threshold_and_warning_band_move_verdicts_without_reexport(openvino_bundle, synthetic):
    shipped = run_evaluation(Model.load(openvino_bundle), synthetic)
    scores, labels = shipped.scores, shipped.labels
    band = shipped.point.check
    assert shipped.point.threshold == 0.5 == shipped.metrics["threshold"] and 0 < band == shipped.metrics["check"] < 0.5
    assert shipped.metrics["good_rejected"] == int((scores[~labels] > 0.5).sum())
    assert shipped.metrics["good_checked"] == int(((scores[~labels] > band) & (scores[~labels] <= 0.5)).sum())
    assert shipped.metrics["defects_missed"] == int((scores[labels] <= band).sum())  # CHECK counts as caught
    # a threshold between two observed scores moves exactly the images between them
    cut = float(np.median(scores))
    moved = run_evaluation(Model.load(openvino_bundle, threshold=cut, check=cut), synthetic)  # no band
    assert moved.metrics["good_rejected"] == int((scores[~labels] > cut).sum())
    assert moved.metrics["defects_missed"] == int((scores[labels] <= cut).sum())
    model = Model.load(openvino_bundle, threshold=cut, check=cut / 2)
    results = model.predict_batch([s.path for s in shipped.samples])
    expected = ["NG" if s > cut else "CHECK" if s > cut / 2 else "OK" for s in scores]
    assert [r.label for r in results] == expected and "CHECK" in expected
    assert all(r.anomalous == (r.label == "NG") for r in results)


@pytest.mark.parametrize("options", [("--check", "0.5"), ("--threshold", "0.3", "--check", "0.1")])
def test_every_json_line_records_the_threshold(openvino_bundle, synthetic, tmp_path, options):
    out = tmp_path / "p"
    result = CliRunner().invoke(app, ["predict", str(openvino_bundle), str(synthetic / "test" / "crack"), "--out", str(out), *options])
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in (out / "predictions.jsonl").read_text().splitlines()]
    threshold = float(options[1]) if len(options) > 2 else 0.5
    assert lines and all(line["threshold"] == threshold for line in lines)
    assert all(line["label"] == ("NG" if line["score"] > threshold else "CHECK" if len(options) > 2 and line["score"] > 0.1 else "OK") for line in lines)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["ok"] + summary["check"] + summary["ng"] == len(lines)
