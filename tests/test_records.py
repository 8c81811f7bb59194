"""predictions.jsonl survives faults: never a torn line, a vanished folder stops the stream with one
line naming the file, and the summary is written or said to be missing."""

import dataclasses
import json
import shutil

import numpy as np
import pytest

from adedge.errors import AdedgeError, printable
from adedge.runtime.inference.model import Result
from adedge.runtime.inference.verdict import OperatingPoint
from adedge.runtime.line.sinks import LINES_FILE, SUMMARY_FILE, StreamWriter
from adedge.runtime.line.stream import Inspection, Summary


def _inspection(frame: int, score: float = 0.2) -> Inspection:
    point = OperatingPoint(check=0.3)
    return Inspection("cam", frame, 0.0, 1.0, 1.0, Result(point.decide(score), np.zeros((2, 2), np.float32), (2, 2), point))


def test_a_torn_last_line_is_cut_off_at_the_next_start(tmp_path):
    writer = StreamWriter(tmp_path, "part_dfm", "none")
    writer.write(_inspection(0))
    writer.close()
    lines = tmp_path / LINES_FILE
    lines.write_bytes(lines.read_bytes() + b'{"schema": 1, "run": "20261206-0000", "fra')  # a crash mid-write
    writer = StreamWriter(tmp_path, "part_dfm", "none")
    writer.write(_inspection(1, 0.9))
    writer.close()
    records = [json.loads(line) for line in lines.read_text().splitlines()]
    assert [(r["frame"], r["label"]) for r in records] == [(0, "OK"), (1, "NG")]


def test_a_vanished_output_folder_stops_the_stream_naming_the_file_and_the_count(tmp_path):
    out = tmp_path / "out"
    writer = StreamWriter(out, "part_dfm", "none")
    writer.write(_inspection(0))
    writer.write(_inspection(1))
    shutil.rmtree(out)
    with pytest.raises(AdedgeError, match=rf"cannot write {out / LINES_FILE}: the file or its folder was removed; 2 records of run {writer.run}"):
        writer.write(_inspection(2))
    summary = Summary()
    assert writer.close(summary) is None and json.loads((out / SUMMARY_FILE).read_text())["frames"] == 0  # the summary still lands


def test_a_summary_that_cannot_be_written_is_said_to_be_missing(tmp_path):
    writer = StreamWriter(tmp_path, "part_dfm", "none")
    (tmp_path / SUMMARY_FILE).mkdir()  # something in its way
    assert "summary.json was not written" in writer.close(Summary())


def test_outside_text_is_printed_with_its_control_characters_escaped():
    assert printable("ok \x1b[2J\x1b[31mred\r\nerror: forged\x07 \u202egnp.exe") == "ok \\x1b[2J\\x1b[31mred\\r\\nerror: forged\\x07 \\u202egnp.exe"
    assert printable("plain text, ünïcode, 日本") == "plain text, ünïcode, 日本"


def test_the_summary_keeps_flat_memory_on_a_long_stream():
    """50,000 frames: the latencies kept stay at the sample's size, and its percentiles are the
    stream's (latencies 0..49.999 ms, uniform: p50 25 ms, p99 49.5 ms)."""
    from adedge.runtime.line.stream import LATENCY_SAMPLE

    summary = Summary()
    inspection = _inspection(0)
    for frame in range(50_000):
        summary.add(dataclasses.replace(inspection, frame=frame, latency_ms=frame / 1000))
    figures = summary.as_dict()
    assert len(summary.latencies) == LATENCY_SAMPLE < 50_000 and figures["frames"] == 50_000 and figures["ok"] == 50_000
    assert abs(figures["latency_p50_ms"] - 25.0) < 1.0 and abs(figures["latency_p99_ms"] - 49.5) < 0.5
