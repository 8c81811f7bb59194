"""run.json and adedge.json are typed records, validated when read: a malformed file ends in one
AdedgeError naming the file and the field, never a KeyError or TypeError."""

import json

import pytest

from adedge.errors import AdedgeError
from adedge.formats import RUN_FORMAT_VERSION, Calibration, DatasetInfo, RunInfo, read_record, to_dict
from adedge.train.checkpoint import load_run

RUN = RunInfo(
    format_version=RUN_FORMAT_VERSION, adedge_version="0.1.0", model="dfm", backbone="efficientnet_lite0",
    stages=["block10"], image_size=[64, 64], resize="antialias", settings={"pool": 2}, head={"stage": "block10"},
    calibration=Calibration(1.0, 2.0, 3.0, 4.0, "false-reject budget", 30, 0.01, 0.02, 9.0, 0.5, 0.05),
    dataset=DatasetInfo("/data", "plate", "mvtec", 30), seed=42, losses={}, train_seconds=1.5,
)


def _write(tmp_path, data):
    path = tmp_path / "run.json"
    path.write_text(json.dumps(data))
    return path


def test_a_record_round_trips(tmp_path):
    assert read_record(RunInfo, _write(tmp_path, to_dict(RUN)), RUN_FORMAT_VERSION) == RUN


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d.pop("backbone"), "run.json lacks the field 'backbone'"),
        (lambda d: d.update(colour="red"), "run.json has unknown field 'colour'"),
        (lambda d: d.update(seed="42"), "run.json.seed must be int, got \"42\""),
        (lambda d: d.update(seed=True), "run.json.seed must be int, got true"),
        (lambda d: d.update(image_size=[64, None]), r"run.json.image_size\[1\] must be int, got null"),
        (lambda d: d.update(calibration=None), "run.json.calibration must be an object, got null"),
        (lambda d: d["calibration"].update(score_scale="wide"), "run.json.calibration.score_scale must be float"),
        (lambda d: d["calibration"].update(check_threshold="low"), "run.json.calibration.check_threshold must be float"),
        (lambda d: d.update(losses={"flow": [1.0, "x"]}), r"run.json.losses.flow\[1\] must be float"),
        (lambda d: d.update(format_version=1), f"has format 1 .* reads format {RUN_FORMAT_VERSION}: re-create it"),
    ],
)
def test_malformed_records_are_refused_with_one_line(tmp_path, change, message):
    data = to_dict(RUN)
    change(data)
    with pytest.raises(AdedgeError, match=message):
        read_record(RunInfo, _write(tmp_path, data), RUN_FORMAT_VERSION)


def test_a_run_folder_with_a_broken_run_json_is_refused(tmp_path):
    (tmp_path / "checkpoint.pt").write_bytes(b"")
    for text, message in (("[1, 2]", "must hold a JSON object"), ("{", "is not valid JSON"), (json.dumps({**to_dict(RUN), "model": "gan"}), "unknown model 'gan'")):
        (tmp_path / "run.json").write_text(text)
        with pytest.raises(AdedgeError, match=message):
            load_run(tmp_path)
