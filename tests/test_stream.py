"""The streaming runtime: sources, frame order, latency vs throughput mode, faults, stopping, memory."""

import itertools
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from adedge.choices import Mode
from adedge.data.datasets import open_dataset
from adedge.errors import AdedgeError
from adedge.runtime import Frame, Model, Summary, inspect_stream, open_source
from adedge.runtime.line.sources import ImageFiles

MODES = tuple(Mode)


@pytest.fixture(scope="module")
def test_images(synthetic) -> list[Path]:
    return [s.path for s in open_dataset(synthetic).test]


@pytest.mark.parametrize("mode", MODES)
def test_stream_matches_predict_in_frame_order(openvino_bundle, test_images, mode):
    model = Model.load(openvino_bundle, mode=mode)
    inspections = list(inspect_stream(model, [str(p) for p in test_images]))
    assert [i.frame for i in inspections] == list(range(len(test_images)))
    assert [i.source for i in inspections] == [str(p) for p in test_images]
    expected = Model.load(openvino_bundle).predict_batch(test_images, batch_size=1)
    np.testing.assert_allclose([i.result.score for i in inspections], [r.score for r in expected], rtol=1e-5, atol=1e-6)
    assert [i.result.label for i in inspections] == [r.label for r in expected]
    assert all(i.latency_ms >= i.model_ms > 0 for i in inspections)
    first = inspections[0]
    assert first.result.anomaly_map.shape == first.image.shape[:2] == first.result.mask.shape


def test_throughput_mode_keeps_several_requests_in_flight(openvino_bundle):
    assert Model.load(openvino_bundle, mode="throughput").engine.requests >= 2
    assert Model.load(openvino_bundle).engine.requests == 1


@pytest.mark.parametrize("mode", MODES)
def test_a_bad_frame_is_skipped_and_the_stream_goes_on(openvino_bundle, test_images, tmp_path, mode):
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"not a png")
    sources = [test_images[0], broken, test_images[1]]
    inspections = list(inspect_stream(Model.load(openvino_bundle, mode=mode), ImageFiles(sources)))
    assert [i.error is None for i in inspections] == [True, False, True]
    assert "not an image file" in inspections[1].error and inspections[1].record("run", "m")["error"] == inspections[1].error
    summary = Summary()
    for inspection in inspections:
        summary.add(inspection)
    figures = summary.finish().as_dict()
    assert figures["frames"] == 3 and figures["failed"] == 1 and figures["ok"] + figures["ng"] == 2


def test_video_file_frames_in_order(openvino_bundle, test_images, tmp_path):
    video = tmp_path / "line.avi"
    first = cv2.imread(str(test_images[0]))
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 10, (first.shape[1], first.shape[0]))
    for path in test_images[:6]:
        writer.write(cv2.imread(str(path)))
    writer.release()
    capture, decoded = cv2.VideoCapture(str(video)), []
    while (frame := capture.read())[0]:
        decoded.append(cv2.cvtColor(frame[1], cv2.COLOR_BGR2RGB))
    model = Model.load(openvino_bundle)
    inspections = list(inspect_stream(model, str(video)))
    assert [i.frame for i in inspections] == list(range(6)) and len(decoded) == 6
    np.testing.assert_allclose([i.result.score for i in inspections], [model.predict(f).score for f in decoded], rtol=1e-5)


def test_missing_camera_or_unreadable_video_is_one_clear_error(tmp_path):
    with pytest.raises(AdedgeError, match="cannot open camera 97"):
        open_source("97")
    fake = tmp_path / "line.mp4"
    fake.write_text("not a video")
    with pytest.raises(AdedgeError, match="cannot open video"):
        open_source(str(fake))
    with pytest.raises(AdedgeError, match="--watch needs one folder"):
        open_source(str(fake), watch=True)
    with pytest.raises(AdedgeError, match="input not found"):
        open_source(str(tmp_path / "nothing"))


def test_watched_folder_inspects_new_files_once_in_arrival_order(openvino_bundle, test_images, tmp_path):
    folder = tmp_path / "incoming"
    folder.mkdir()
    shutil.copy(test_images[0], folder / "a.png")
    stop, seen = threading.Event(), []
    model = Model.load(openvino_bundle)

    def consume():
        seen.extend(inspect_stream(model, open_source(str(folder), watch=True), stop=stop))

    worker = threading.Thread(target=consume)
    worker.start()
    time.sleep(0.5)
    partial = folder / "c.png"
    partial.write_bytes(test_images[2].read_bytes()[:100])  # still being written
    shutil.copy(test_images[1], folder / "b.png")
    time.sleep(0.1)
    partial.write_bytes(test_images[2].read_bytes())
    time.sleep(1.0)
    stop.set()
    worker.join(timeout=10)
    assert not worker.is_alive()
    assert [Path(i.source).name for i in seen] == ["a.png", "b.png", "c.png"] and all(i.error is None for i in seen)


def _counted(frames, taken: list) -> ImageFiles:
    """An endless source that counts the frames taken from it."""

    class Counting(ImageFiles):
        def frames(self, stop):
            for frame in super().frames(stop):
                taken.append(frame.index)
                yield frame

    return Counting(frames)


@pytest.mark.parametrize("mode", MODES)
def test_stop_delivers_every_frame_taken(openvino_bundle, test_images, mode):
    stop, taken = threading.Event(), []
    inspections = []
    for inspection in inspect_stream(Model.load(openvino_bundle, mode=mode), _counted(itertools.cycle(test_images), taken), stop):
        inspections.append(inspection)
        if len(inspections) == 5:
            stop.set()
    assert [i.frame for i in inspections] == taken and len(taken) >= 5


def _rss_mb() -> float:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 1e6


@pytest.mark.skipif(not Path("/proc/self/statm").exists(), reason="RSS is read from /proc")
def test_memory_stays_flat_over_a_long_stream(openvino_bundle, test_images):
    frame = cv2.cvtColor(cv2.imread(str(test_images[0])), cv2.COLOR_BGR2RGB)
    frames = (Frame("memory", i, lambda: frame) for i in range(3000))

    class Arrays:
        def frames(self, stop):
            return frames

    rss, summary = {}, Summary()  # the summary keeps a sample of latencies: the one thing a stream grows
    for inspection in inspect_stream(Model.load(openvino_bundle, mode="throughput"), Arrays()):
        summary.add(inspection)
        if inspection.frame in (500, 2999):
            rss[inspection.frame] = _rss_mb()
    # a frame kept per inspection would add at least its 256x256 float map, 0.26 MB a frame, 650 MB
    # over these 2,500 frames; the allocator's own drift was up to 16 MB (a fresh clone, CFLOW)
    assert rss[2999] - rss[500] < 50, rss
    assert summary.finish().as_dict()["frames"] == 3000


def test_sigterm_ends_a_watch_cleanly(openvino_bundle, test_images, tmp_path):
    folder, out = tmp_path / "incoming", tmp_path / "out"
    folder.mkdir()
    for path in test_images[:3]:
        shutil.copy(path, folder / path.name.replace(".png", f"_{path.parent.name}.png"))
    command = [sys.executable, "-m", "adedge.cli", "predict", str(openvino_bundle), str(folder), "--watch", "--out", str(out), "--overlays", "all"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lines = [process.stdout.readline() for _ in range(3)]
    process.send_signal(signal.SIGTERM)
    stdout, stderr = process.communicate(timeout=60)
    assert process.returncode == 0, stderr
    assert "Traceback" not in stderr and "3 frames: " in stderr
    assert [json.loads(line)["frame"] for line in lines] == [0, 1, 2] and stdout == ""
    assert len((out / "predictions.jsonl").read_text().splitlines()) == 3 and len(list(out.glob("*.png"))) == 3
    assert json.loads((out / "summary.json").read_text())["frames"] == 3


def test_restarts_never_overwrite_overlays_and_a_failed_overlay_does_not_stop_the_stream(openvino_bundle, test_images, tmp_path, monkeypatch):
    from adedge.runtime.line import sinks
    from adedge.runtime.line.sinks import StreamWriter

    model, out = Model.load(openvino_bundle), tmp_path / "out"
    frames = [Frame("0", i, lambda path=path: cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)) for i, path in enumerate(test_images[:2])]

    class Camera:  # a source without file names: overlays were once named by frame number alone
        def frames(self, stop):
            return iter(frames)

    def run() -> list[dict]:
        writer = StreamWriter(out, model.name, "all")
        records = [writer.write(inspection) for inspection in inspect_stream(model, Camera())]
        writer.close()
        return records

    first, second = run(), run()
    assert first[0]["run"] != second[0]["run"]
    pictures = [record["overlay"] for record in first + second]
    assert len(set(pictures)) == 4 and all(Path(p).is_file() for p in pictures) and len(list(out.glob("*.png"))) == 4
    lines = [json.loads(line) for line in (out / "predictions.jsonl").read_text().splitlines()]
    assert [line["overlay"] for line in lines] == pictures

    def full_disk(path, data):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(sinks, "save_image", full_disk)
    third = run()
    assert [("overlay" in r, "No space left" in r.get("overlay_error", "")) for r in third] == [(False, True)] * 2
    assert len((out / "predictions.jsonl").read_text().splitlines()) == 6 and len(list(out.glob("*.png"))) == 4
