"""The CLI end to end, and every user mistake ending in one clear line and a non-zero exit."""

import json
import os
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from adedge.cli import app

runner = CliRunner()


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args])


@pytest.mark.trains
def test_train_export_predict_eval_bench(synthetic, tmp_path):
    run, bundle, predictions = tmp_path / "run", tmp_path / "bundle", tmp_path / "predictions"
    result = invoke("train", "--data", synthetic, "--out", run, "--image-size", 128, "-p", "pool=2")
    assert result.exit_code == 0, result.output
    assert "out-of-fold good images" in result.output and json.loads((run / "run.json").read_text())["head"]["score_type"] == "fre"
    # stderr is no terminal here: a line per stage instead of progress bars (DFM calibrates over 40 folds of its 30 images: 30)
    stages = [line for line in result.output.splitlines() if line.startswith("progress:")]
    assert stages[0].startswith("progress: extracting features: done in") and "features of 30 images at 128x128" in stages[1]
    assert sum("calibration fold" in line for line in stages) == 30 and "progress: dfm fitted on all 30 images" in stages[-1], stages
    assert invoke("export", run, "--format", "openvino", "--out", bundle).exit_code == 0
    result = invoke("predict", bundle, synthetic / "test" / "crack", synthetic / "test" / "good" / "000.png", "--out", predictions)
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in (predictions / "predictions.jsonl").read_text().splitlines()]
    assert [line["frame"] for line in lines] == list(range(5)) and lines[-1]["source"].endswith("000.png")
    assert {"time", "source", "frame", "score", "label", "latency_ms", "model_ms"} <= set(lines[0])
    assert result.stdout.count('"frame"') == 5  # the same lines on stdout
    # overlays for NG frames only, by default
    assert all(("overlay" in line) == (line["label"] == "NG") for line in lines) and any("overlay" in line for line in lines)
    assert all((predictions / os.path.basename(line["overlay"])).is_file() for line in lines if "overlay" in line)
    assert json.loads((predictions / "summary.json").read_text())["frames"] == 5
    metrics_file, bench_file = tmp_path / "metrics.json", tmp_path / "bench.json"
    result = invoke("eval", bundle, "--data", synthetic, "--json", metrics_file)
    assert result.exit_code == 0 and "image_auroc" in result.output
    metrics = json.loads(metrics_file.read_text())
    assert {"image_auroc", "pixel_auroc", "image_f1_max", "image_f1", "pro"} <= set(metrics)
    assert metrics["image_auroc"] > 0.9
    result = invoke("bench", bundle, "--iterations", 5, "--batch", 2, "--json", bench_file)
    assert result.exit_code == 0, result.output
    figures = json.loads(bench_file.read_text())
    assert {"p50_ms", "p90_ms", "p99_ms", "throughput_fps"} <= set(figures) and figures["p50_ms"] <= figures["p99_ms"]


def _one_line_error(result, pattern):
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    errors = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and pattern in errors[0], result.output


def test_a_choice_outside_its_set_is_one_line_naming_the_option(tmp_path, capsys):
    """The options' types are the enums (adedge.choices): typer refuses another value before the command runs."""
    from adedge.cli import main

    for args, option in ((["export", tmp_path, "--out", tmp_path / "b", "--format", "tflite"], "--format"),
                         (["predict", tmp_path, "x.png", "--mode", "fast"], "--mode"),
                         (["predict", tmp_path, "x.png", "--overlays", "some"], "--overlays"),
                         (["train", "--data", tmp_path, "--out", tmp_path / "r", "--resize", "cubic"], "--resize"),
                         (["serve", tmp_path, "--backend", "tensorrt"], "--backend")):
        assert main([str(a) for a in args]) == 2
        err = capsys.readouterr().err
        assert err.startswith(f"error: Invalid value for '{option}'") and len(err.splitlines()) == 1, err


def test_user_mistakes_end_in_one_line(synthetic, tmp_path, openvino_bundle, run_dir):
    _one_line_error(invoke("train", "--data", tmp_path / "missing", "--out", tmp_path / "r"), "data folder not found")
    _one_line_error(invoke("train", "--data", synthetic, "--out", tmp_path / "r", "--backbone", "vgg"), "unknown backbone")
    _one_line_error(invoke("train", "--data", synthetic, "--out", tmp_path / "r", "--model", "svm"), "unknown model")
    _one_line_error(invoke("train", "--data", synthetic, "--out", tmp_path / "r", "--image-size", 100), "multiple of 32")
    _one_line_error(invoke("export", tmp_path, "--out", tmp_path / "b"), "not an adedge run folder")
    _one_line_error(invoke("predict", tmp_path / "nobundle", synthetic / "test" / "good", "--out", tmp_path / "p"), "bundle folder not found")
    _one_line_error(invoke("predict", openvino_bundle, tmp_path / "none.png", "--out", tmp_path / "p"), "input not found")
    image = synthetic / "test" / "good" / "000.png"
    _one_line_error(invoke("predict", openvino_bundle, "97"), "cannot open camera 97")
    _one_line_error(invoke("predict", openvino_bundle, image, "--watch"), "--watch needs one folder")
    _one_line_error(invoke("eval", openvino_bundle, "--data", synthetic / "train"), "needs both good and anomalous")
    _one_line_error(invoke("bench", openvino_bundle, "--backend", "onnxruntime"), "export with --format onnx")
    _one_line_error(invoke("predict", openvino_bundle, image, "--threshold", 1.5), "--threshold must be from 0")
    _one_line_error(invoke("eval", openvino_bundle, "--data", synthetic, "--threshold", "nan"), "--threshold must be from 0")
    _one_line_error(invoke("predict", openvino_bundle, image, "--threshold", 0.4, "--check", 0.6), "--check must be from 0")
    assert not (tmp_path / "r").exists() and not (tmp_path / "b").exists() and not (tmp_path / "p").exists()


def test_predict_skips_a_corrupt_image_and_fails_at_the_end(synthetic, tmp_path, openvino_bundle):
    folder = tmp_path / "frames"
    folder.mkdir()
    (folder / "a.png").write_bytes((synthetic / "test" / "good" / "000.png").read_bytes())
    (folder / "b.png").write_bytes(b"broken")
    result = invoke("predict", openvino_bundle, folder, "--out", tmp_path / "p")
    assert result.exit_code == 2 and "not an image file:" in result.output and "b.png" in result.output
    assert "1 of 2 frames could not be inspected" in result.output
    lines = [json.loads(line) for line in (tmp_path / "p" / "predictions.jsonl").read_text().splitlines()]
    assert [("error" in line) for line in lines] == [False, True]
    assert json.loads((tmp_path / "p" / "summary.json").read_text())["failed"] == 1


@pytest.mark.trains
def test_val_data_gives_f1_thresholds(synthetic, tmp_path):
    # a 64 px model calibrated on 128 px images: masks are resized like the images
    result = invoke("train", "--data", synthetic, "--out", tmp_path / "run", "--image-size", 64, "--val-data", synthetic, "-p", "score=nll")
    assert result.exit_code == 0, result.output
    info = json.loads((tmp_path / "run" / "run.json").read_text())
    assert info["calibration"]["method"].startswith("F1-optimal") and info["calibration"]["check_threshold"] is None
    assert "NG threshold F1-optimal on labelled images" in result.output
    assert info["head"]["score_type"] == "nll"


@pytest.mark.trains
def test_same_seed_same_model(synthetic, tmp_path):
    import torch

    for name in ("a", "b"):
        assert invoke("train", "--data", synthetic, "--out", tmp_path / name, "--image-size", 64, "--seed", 5).exit_code == 0
    first = torch.load(tmp_path / "a" / "checkpoint.pt", weights_only=True)
    second = torch.load(tmp_path / "b" / "checkpoint.pt", weights_only=True)
    assert all(torch.equal(first[k], second[k]) for k in first)
    assert invoke("train", "--data", synthetic, "--out", tmp_path / "c", "--image-size", 64, "--seed", 6).exit_code == 0
    third = torch.load(tmp_path / "c" / "checkpoint.pt", weights_only=True)
    assert torch.equal(first["head.mean"], third["head.mean"])  # every seed fits every image ...
    calibrations = [json.loads((tmp_path / name / "run.json").read_text())["calibration"] for name in "abc"]
    assert calibrations[0] == calibrations[1] != calibrations[2]  # ... but draws other synthetic defects


@pytest.mark.trains
@pytest.mark.skipif(os.environ.get("ADEDGE_SKIP_DEMO") == "1", reason="ADEDGE_SKIP_DEMO=1")
def test_demo_runs_end_to_end(tmp_path):
    result = subprocess.run([sys.executable, "-m", "adedge.cli", "demo", "--out", str(tmp_path / "demo")], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "image AUROC" in result.stdout and "p50 ms" in result.stdout
    assert all((tmp_path / "demo" / "bundles" / f"{m}-openvino" / "model.xml").is_file() for m in ("dfm", "patchcore"))
    assert any((tmp_path / "demo" / "predictions" / "patchcore").glob("*_NG.png"))


def test_error_lines_keep_brackets(tmp_path, monkeypatch):
    """Messages are printed verbatim, not read as console markup ('[train]' is not a style)."""
    _one_line_error(invoke("predict", tmp_path, tmp_path / "line[7].png", "--out", tmp_path / "p"), "line[7]")
    import builtins

    real_import = builtins.__import__

    def without_torch(name, *args, **kwargs):
        if name == "torch" or name.startswith("torch."):
            raise ModuleNotFoundError("No module named 'torch'", name="torch")
        return real_import(name, *args, **kwargs)

    for module in [m for m in sys.modules if m.startswith(("adedge.train.trainer", "adedge.export.exporter"))]:
        monkeypatch.delitem(sys.modules, module)
    monkeypatch.setattr(builtins, "__import__", without_torch)
    _one_line_error(invoke("train", "--data", tmp_path, "--out", tmp_path / "r"), "training extra (torch is not installed): pip install 'adedge[train]'")


def test_lines_from_outside_reach_the_terminal_escaped(capsys):
    from adedge import cli

    cli._log_line("webhook http://127.0.0.1:9/v: HTTP 503 \x1b[2J\x1b[Herror: forged line\r")
    cli._error_line("cannot read /data/\x1b]0;title\x07part.png")
    err = capsys.readouterr().err
    assert "\x1b" not in err and "\x07" not in err and "\r" not in err
    assert "HTTP 503 \\x1b[2J\\x1b[Herror: forged line\\r" in err and "\\x1b]0;title\\x07part.png" in err
