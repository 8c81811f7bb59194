"""The hostile-user sweep: well over 100 bad inputs and faults through the `adedge` command line.

Every case must end in exactly one `error:` line on stderr naming its cause, exit code 2, no
traceback, and nothing half-written: the case's own folder holds the same files afterwards (no
.partial or .tmp leftovers, no output folder). Cases that need no model are in the fast tier; the
rest share one small trained DFM run and its bundle. Faults a process cannot cause to itself (a
full disk) run the real console script in a subprocess.
"""

import json
import os
import re
import shutil
import struct
import subprocess
import sys
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from adedge.cli import PROGRESS_PREFIX, main

SWEEP_IMAGE_SIZE = 64  # the size of conftest's small_model: a case's own training is as quick


@dataclass
class World:
    """The files a case can point at: its own scratch folder, good data, a run and a bundle."""

    tmp: Path
    data: Path
    run: Path | None = None
    bundle: Path | None = None

    @property
    def image(self) -> Path:
        return self.data / "test" / "good" / "000.png"

    def folder(self, name: str, images: list[Path] = (), copies: int = 0) -> Path:
        folder = self.tmp / name
        folder.mkdir(parents=True, exist_ok=True)
        for index, image in enumerate(images):
            shutil.copy(image, folder / f"{index:03d}{image.suffix}")
        for index in range(copies):
            shutil.copy(self.image, folder / f"copy{index:03d}.png")
        return folder

    def file(self, name: str, content: bytes | str) -> Path:
        path = self.tmp / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content.encode() if isinstance(content, str) else content)
        return path

    def good_folder_with(self, name: str, extra: Path) -> Path:
        """Ten good images and EXTRA: a training folder with one bad file."""
        folder = self.folder(name, copies=0, images=sorted((self.data / "train" / "good").glob("*.png"))[:10])
        shutil.copy(extra, folder / f"zz{extra.suffix}")
        return folder

    def edited_copy(self, what: str, file: str, edit: Callable[[dict], object]) -> Path:
        """A copy of the run or bundle with FILE (a JSON file) replaced by EDIT(its content)."""
        source = self.run if what == "run" else self.bundle
        copy = self.tmp / f"{what}-copy"
        shutil.copytree(source, copy)
        edited = edit(json.loads((copy / file).read_text()))
        (copy / file).write_text(edited if isinstance(edited, str) else json.dumps(edited))  # a text as it is
        return copy

    def torch_file(self, name: str, value: object) -> Path:
        import torch

        path = self.tmp / name
        torch.save(value, path)
        return path


def png_header(width: int, height: int) -> bytes:
    """A PNG whose header claims WIDTH x HEIGHT (a decompression bomb needs no pixels to be refused)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


def run_cli(argv: list) -> int:
    return main([str(a) for a in argv])


Case = Callable[[World], tuple[list, str]]  # -> (argv, a piece of the expected error line)


def _train(w: World, *options, data: Path | None = None) -> list:
    return ["train", "--data", data or w.data, "--out", w.tmp / "run-out", "--image-size", SWEEP_IMAGE_SIZE, *options]


def _predict(w: World, *options, source: Path | str | None = None) -> list:
    return ["predict", w.bundle, source or w.image, "--out", w.tmp / "predict-out", *options]


# cases that need no trained model: options, data folders, images and files a user points at
NO_MODEL: dict[str, Case] = {
    "train seed -1": lambda w: (_train(w, "--seed", -1), "--seed"),
    "train seed text": lambda w: (_train(w, "--seed", "abc"), "--seed"),
    "train no data option": lambda w: (["train", "--out", w.tmp / "r"], "--data"),
    "train unknown option": lambda w: (_train(w, "--colour", "red"), "--colour"),
    "unknown command": lambda w: (["trian"], "trian"),
    "train lr nan": lambda w: (_train(w, "--model", "cflow", "-p", "lr=nan"), "lr"),
    "train lr inf": lambda w: (_train(w, "--model", "cflow", "-p", "lr=inf"), "lr"),
    "train lr negative": lambda w: (_train(w, "--model", "cflow", "-p", "lr=-1"), "lr"),
    "train lr zero": lambda w: (_train(w, "--model", "cflow", "-p", "lr=0"), "lr"),
    "train lr text": lambda w: (_train(w, "--model", "cflow", "-p", "lr=fast"), "lr"),
    "train clamp zero": lambda w: (_train(w, "--model", "cflow", "-p", "clamp=0"), "clamp"),
    "train condition odd": lambda w: (_train(w, "--model", "cflow", "-p", "condition=3"), "condition"),
    "train meta_epochs 0": lambda w: (_train(w, "--model", "cflow", "-p", "meta_epochs=0"), "meta_epochs"),
    "train meta_epochs text": lambda w: (_train(w, "--model", "cflow", "-p", "meta_epochs=many"), "meta_epochs"),
    "train unknown setting": lambda w: (_train(w, "-p", "depth=3"), "no setting 'depth'"),
    "train setting without value": lambda w: (_train(w, "-p", "pool"), "KEY=VALUE"),
    "train pool 0": lambda w: (_train(w, "-p", "pool=0"), "pool"),
    "train variance 1": lambda w: (_train(w, "-p", "variance=1"), "variance"),
    "train variance nan": lambda w: (_train(w, "-p", "variance=nan"), "variance"),
    "train score unknown": lambda w: (_train(w, "-p", "score=max"), "score"),
    "train image size 0": lambda w: (_train(w, "--image-size", 0), "--image-size"),
    "train image size 33": lambda w: (_train(w, "--image-size", 33), "--image-size"),
    "train image size negative": lambda w: (_train(w, "--image-size", -64), "--image-size"),
    "train image size huge": lambda w: (_train(w, "--image-size", 32768), "--image-size"),
    "train model unknown": lambda w: (_train(w, "--model", "svm"), "unknown model"),
    "train backbone unknown": lambda w: (_train(w, "--backbone", "vgg"), "unknown backbone"),
    "train resize unknown": lambda w: (_train(w, "--resize", "nearest"), "--resize"),
    "train stages unknown": lambda w: (_train(w, "--stages", "layer9"), "layer9"),
    "train stages too many": lambda w: (_train(w, "--stages", "1,2,3,4,5,6"), "stage"),
    "train weights missing": lambda w: (_train(w, "--weights", w.tmp / "none.pth"), "none.pth"),
    "train weights bare tensor": lambda w: (_train(w, "--weights", w.torch_file("t.pth", __import__("torch").zeros(3))), "t.pth"),
    "train weights list": lambda w: (_train(w, "--weights", w.torch_file("l.pth", [1, 2, 3])), "l.pth"),
    "train weights text": lambda w: (_train(w, "--weights", w.file("w.pth", "weights")), "w.pth"),
    "train weights empty": lambda w: (_train(w, "--weights", w.file("e.pth", b"")), "e.pth"),
    "train weights other net": lambda w: (_train(w, "--weights", w.torch_file("o.pth", {"fc.weight": __import__("torch").zeros(2, 2)})), "o.pth"),
    "train weights a folder": lambda w: (_train(w, "--weights", w.folder("wdir")), "wdir"),
    "train data missing": lambda w: (_train(w, data=w.tmp / "nothing"), "not found"),
    "train data a file": lambda w: (_train(w, data=w.image), "000.png"),
    "train data empty": lambda w: (_train(w, data=w.folder("empty")), "empty"),
    "train data non-images": lambda w: (_train(w, data=w.file("texts/a.txt", "x").parent), "texts"),
    "train data too few": lambda w: (_train(w, data=w.folder("few", copies=3)), "at least"),
    "train category missing": lambda w: (_train(w, "--category", "screw"), "screw"),
    "train data identical images": lambda w: (_train(w, data=w.folder("same", copies=12)), "alike"),
    "train data corrupt image": lambda w: (_train(w, data=w.good_folder_with("corrupt", w.file("c.png", b"\x89PNG broken"))), "zz.png"),
    "train data truncated image": lambda w: (_train(w, data=w.good_folder_with("trunc", w.file("t.png", w.image.read_bytes()[:300]))), "zz.png"),
    "train data decompression bomb": lambda w: (_train(w, data=w.good_folder_with("bomb", w.file("b.png", png_header(20000, 20000)))), "zz.png"),
    "train data huge image": lambda w: (_train(w, data=w.good_folder_with("huge", w.file("h.png", png_header(12000, 8000)))), "zz.png"),
    "train data zero-size image": lambda w: (_train(w, data=w.good_folder_with("zero", w.file("z.png", png_header(0, 0)))), "zz.png"),
    "train out a file": lambda w: (["train", "--data", w.data, "--out", w.file("out.txt", "x")], "out.txt"),
    "train out someone's folder": lambda w: (["train", "--data", w.data, "--out", w.file("mine/notes.txt", "x").parent], "mine"),
    "train out under a file": lambda w: (["train", "--data", w.data, "--out", w.file("f.txt", "x") / "run"], "f.txt"),
    "train val data missing": lambda w: (_train(w, "--val-data", w.tmp / "noval"), "noval"),
    "train val data only good": lambda w: (_train(w, "--val-data", w.data / "train"), "train"),
    "train val data mask missing": lambda w: (_train(w, "--val-data", _without_a_mask(w)), "mask"),
    "export run missing": lambda w: (["export", w.tmp / "norun", "--out", w.tmp / "b"], "norun"),
    "export run a file": lambda w: (["export", w.image, "--out", w.tmp / "b"], "000.png"),
    "export run empty": lambda w: (["export", w.folder("emptyrun"), "--out", w.tmp / "b"], "emptyrun"),
    "export run.json not json": lambda w: (["export", _fake_run(w, "{"), "--out", w.tmp / "b"], "run.json"),
    "export run.json null": lambda w: (["export", _fake_run(w, "null"), "--out", w.tmp / "b"], "run.json"),
    "export run.json list": lambda w: (["export", _fake_run(w, "[1]"), "--out", w.tmp / "b"], "run.json"),
    "export run.json old format": lambda w: (["export", _fake_run(w, '{"format_version": 1}'), "--out", w.tmp / "b"], "format"),
    "export run.json binary": lambda w: (["export", _fake_run(w, b"\xff\xfe\x00"), "--out", w.tmp / "b"], "run.json"),
    "predict bundle missing": lambda w: (["predict", w.tmp / "nob", w.image], "nob"),
    "predict bundle empty": lambda w: (["predict", w.folder("emptyb"), w.image], "emptyb"),
    "predict adedge.json null": lambda w: (["predict", _fake_bundle(w, "null"), w.image], "adedge.json"),
    "predict adedge.json not json": lambda w: (["predict", _fake_bundle(w, "{{"), w.image], "adedge.json"),
    "predict adedge.json old": lambda w: (["predict", _fake_bundle(w, '{"format_version": 1}'), w.image], "format"),
    "eval bundle missing": lambda w: (["eval", w.tmp / "nob", "--data", w.data], "nob"),
    "bench bundle missing": lambda w: (["bench", w.tmp / "nob"], "nob"),
    "bench batch 0": lambda w: (["bench", w.tmp / "nob", "--batch", 0], "--batch"),
    "bench iterations text": lambda w: (["bench", w.tmp / "nob", "--iterations", "x"], "--iterations"),
    "serve bundle missing": lambda w: (["serve", w.tmp / "nob"], "nob"),
    "serve port text": lambda w: (["serve", w.tmp / "nob", "--port", "x"], "--port"),
    "serve api key short": lambda w: (["serve", w.tmp / "nob", "--api-key", "short"], "--api-key"),
    "serve max body 0": lambda w: (["serve", w.tmp / "nob", "--max-body-mb", 0], "--max-body-mb"),
    "demo seed -1": lambda w: (["demo", "--out", w.tmp / "d", "--seed", -1], "--seed"),
    "demo out someone's folder": lambda w: (["demo", "--out", w.file("theirs/notes.txt", "x").parent], "theirs"),
    "demo out a file": lambda w: (["demo", "--out", w.file("demo.txt", "x")], "demo.txt"),
}


def _fake_run(w: World, run_json: str | bytes) -> Path:
    folder = w.folder("fake-run")
    (folder / "run.json").write_bytes(run_json.encode() if isinstance(run_json, str) else run_json)
    (folder / "checkpoint.pt").write_bytes(b"")
    return folder


def _fake_bundle(w: World, adedge_json: str) -> Path:
    folder = w.folder("fake-bundle")
    (folder / "adedge.json").write_text(adedge_json)
    return folder


def _without_a_mask(w: World) -> Path:
    copy = w.tmp / "val"
    shutil.copytree(w.data, copy)
    next((copy / "ground_truth").rglob("*.png")).unlink()
    return copy


def _drop(key: str) -> Callable[[dict], dict]:
    return lambda content: {k: v for k, v in content.items() if k != key}


def _set(path: str, value: object) -> Callable[[dict], dict]:
    """Set the dotted PATH of a JSON object to VALUE."""

    def edit(content: dict) -> dict:
        *parents, last = path.split(".")
        node = content
        for key in parents:
            node = node[key]
        node[last] = value
        return content

    return edit


RUN_FIELDS = ["model", "backbone", "stages", "image_size", "resize", "settings", "head", "calibration", "dataset", "seed"]
BUNDLE_FIELDS = ["model", "backbone", "format", "precision", "input", "outputs", "operating_point", "calibration", "files"]
WRONG_VALUES = {"null": None, "text": "x", "list": [1], "number": -1}


def _export(w: World, run: Path, *options) -> list:
    return ["export", run, "--out", w.tmp / "bundle-out", *options]


def _fuzzed_run_cases() -> dict[str, Case]:
    cases: dict[str, Case] = {}
    for key in RUN_FIELDS:
        cases[f"run.json without {key}"] = lambda w, key=key: (_export(w, w.edited_copy("run", "run.json", _drop(key))), key)
        for kind, value in WRONG_VALUES.items():
            cases[f"run.json {key} {kind}"] = lambda w, key=key, value=value: (
                _export(w, w.edited_copy("run", "run.json", _set(key, value))), "run.json")
    return cases


def _fuzzed_bundle_cases() -> dict[str, Case]:
    cases: dict[str, Case] = {}
    for key in BUNDLE_FIELDS:
        cases[f"adedge.json without {key}"] = lambda w, key=key: (["predict", w.edited_copy("bundle", "adedge.json", _drop(key)), w.image], "adedge.json")
        for kind, value in WRONG_VALUES.items():
            cases[f"adedge.json {key} {kind}"] = lambda w, key=key, value=value: (
                ["predict", w.edited_copy("bundle", "adedge.json", _set(key, value)), w.image], "adedge.json")
    return cases


def _with_file(w: World, name: str, content: bytes | None) -> Path:
    """A copy of the bundle with NAME replaced by CONTENT (None: removed)."""
    copy = w.tmp / "bundle-copy"
    shutil.copytree(w.bundle, copy)
    if content is None:
        (copy / name).unlink()
    else:
        (copy / name).write_bytes(content)
    return copy


# cases that need the trained run or its bundle
WITH_MODEL: dict[str, Case] = {
    "run.json model renamed": lambda w: (_export(w, w.edited_copy("run", "run.json", _set("model", "svm"))), "svm"),
    "run.json model swapped": lambda w: (_export(w, w.edited_copy("run", "run.json", _set("model", "cflow"))), "checkpoint.pt"),
    "run.json backbone swapped": lambda w: (_export(w, w.edited_copy("run", "run.json", _set("backbone", "resnet18"))), "run.json"),
    "run.json image size odd": lambda w: (_export(w, w.edited_copy("run", "run.json", _set("image_size", [0, 0]))), "image_size"),
    "run.json scale zero": lambda w: (_export(w, w.edited_copy("run", "run.json", _set("calibration.score_scale", 0))), "score_scale"),
    "run.json unknown field": lambda w: (_export(w, w.edited_copy("run", "run.json", _set("colour", "red"))), "colour"),
    "run.json future format": lambda w: (_export(w, w.edited_copy("run", "run.json", _set("format_version", 99))), "format"),
    "checkpoint truncated": lambda w: (_export(w, _run_with(w, lambda data: data[: len(data) // 2])), "checkpoint.pt"),
    "checkpoint a bare tensor": lambda w: (_export(w, _run_with(w, tensor=True)), "checkpoint.pt"),
    "checkpoint executes code": lambda w: (_export(w, _run_with(w, lambda data: _malicious_pickle())), "checkpoint.pt"),
    "export format unknown": lambda w: (_export(w, w.run, "--format", "tflite"), "format"),
    "export precision unknown": lambda w: (_export(w, w.run, "--precision", "int4"), "precision"),
    "export onnx int8": lambda w: (_export(w, w.run, "--format", "onnx", "--precision", "int8"), "--precision"),
    "export max drop negative": lambda w: (_export(w, w.run, "--max-drop", -1), "--max-drop"),
    "export max drop nan": lambda w: (_export(w, w.run, "--max-drop", "nan"), "--max-drop"),
    "export sign key missing": lambda w: (_export(w, w.run, "--sign-key", w.tmp / "nokey"), "nokey"),
    "export sign key short": lambda w: (_export(w, w.run, "--sign-key", w.file("k", "short")), "at least 16"),
    "export layout unknown": lambda w: (_export(w, w.run, "--layout", "kserve"), "--layout"),
    "export repository name bad": lambda w: (_export(w, w.run, "--layout", "triton", "--name", "a/b"), "--name"),
    "export ovms config broken": lambda w: (["export", w.run, "--layout", "ovms", "--out", w.file("repo/config.json", "{").parent], "config.json"),
    "export out someone's folder": lambda w: (["export", w.run, "--out", w.file("stuff/a.txt", "x").parent], "stuff"),
    "export out a file": lambda w: (["export", w.run, "--out", w.file("b.txt", "x")], "b.txt"),
    "export int8 without training images": lambda w: (_export(w, _run_moved_data(w), "--precision", "int8"), "training images"),
    "bundle model file edited": lambda w: (["predict", _with_file(w, "model.xml", b"<net/>"), w.image], "modified"),
    "bundle weights missing": lambda w: (["predict", _with_file(w, "model.bin", None), w.image], "model.bin"),
    "bundle extra file": lambda w: (["predict", _with_file(w, "notes.txt", b"x"), w.image], "notes.txt"),
    "bundle unsigned with key": lambda w: (["predict", w.bundle, w.image, "--key", w.file("key", "k" * 32)], "not signed"),
    "bundle key missing": lambda w: (["predict", w.bundle, w.image, "--key", w.tmp / "nokey"], "nokey"),
    "predict threshold 2": lambda w: (_predict(w, "--threshold", 2), "--threshold"),
    "predict threshold nan": lambda w: (_predict(w, "--threshold", "nan"), "--threshold"),
    "predict check above threshold": lambda w: (_predict(w, "--threshold", 0.4, "--check", 0.6), "--check"),
    "train false reject zero": lambda w: (["train", "--data", w.data, "--out", w.tmp / "r", "--false-reject", 0], "--false-reject"),
    "train false reject half": lambda w: (["train", "--data", w.data, "--out", w.tmp / "r", "--false-reject", 0.5], "--false-reject"),
    "predict mode unknown": lambda w: (_predict(w, "--mode", "fast"), "mode"),
    "predict overlays unknown": lambda w: (_predict(w, "--overlays", "some"), "--overlays"),
    "predict backend unknown": lambda w: (_predict(w, "--backend", "tensorrt"), "backend"),
    "predict onnxruntime on IR": lambda w: (_predict(w, "--backend", "onnxruntime"), "onnx"),
    "predict source missing": lambda w: (_predict(w, source=w.tmp / "none.png"), "none.png"),
    "predict source empty folder": lambda w: (_predict(w, source=w.folder("nothing-here")), "no images"),
    "predict watch a file": lambda w: (_predict(w, "--watch"), "--watch"),
    "predict settle 0": lambda w: (_predict(w, "--watch", "--settle", 0, source=w.folder("watched")), "--settle"),
    "predict settle nan": lambda w: (_predict(w, "--watch", "--settle", "nan", source=w.folder("watched")), "--settle"),
    "predict reconnect timeout negative": lambda w: (_predict(w, "--reconnect-timeout", -1, source="7"), "--reconnect-timeout"),
    "predict camera absent": lambda w: (_predict(w, source="7"), "camera 7"),
    "predict stream refused": lambda w: (_predict(w, source="http://127.0.0.1:9/none.mjpg"), "127.0.0.1"),
    "predict video garbage": lambda w: (_predict(w, source=w.file("clip.mp4", b"\0" * 4096)), "clip.mp4"),
    "predict out a file": lambda w: (["predict", w.bundle, w.image, "--out", w.file("p.txt", "x")], "p.txt"),
    "eval data missing": lambda w: (["eval", w.bundle, "--data", w.tmp / "nodata"], "nodata"),
    "eval data without defects": lambda w: (["eval", w.bundle, "--data", w.data / "train"], "anomalous"),
    "eval mask missing": lambda w: (["eval", w.bundle, "--data", _without_a_mask(w)], "mask"),
    "eval corrupt test image": lambda w: (["eval", w.bundle, "--data", _with_corrupt_test_image(w)], "000.png"),
    "eval report a file": lambda w: (["eval", w.bundle, "--data", w.data, "--report", w.file("r.txt", "x")], "r.txt"),
    "eval threshold negative": lambda w: (["eval", w.bundle, "--data", w.data, "--threshold", -0.1], "--threshold"),
    "bench batch huge": lambda w: (["bench", w.bundle, "--batch", 100000], "--batch"),
    "bench iterations 0": lambda w: (["bench", w.bundle, "--iterations", 0], "--iterations"),
    "bench onnxruntime on IR": lambda w: (["bench", w.bundle, "--backend", "onnxruntime"], "onnx"),
    "serve port taken": lambda w: (["serve", w.bundle, "--port", _taken_port()], "cannot listen"),
    "serve grpc port taken": lambda w: (["serve", w.bundle, "--port", 0, "--grpc-port", _taken_port()], "cannot listen for gRPC"),
    "serve host not this PC": lambda w: (["serve", w.bundle, "--host", "192.0.2.1"], "192.0.2.1"),
    "serve two bundles one name": lambda w: (["serve", w.bundle, w.bundle], "NAME=BUNDLE"),
    "serve name bad": lambda w: (["serve", f"a b={w.bundle}"], "must be"),
    "serve onnxruntime on IR": lambda w: (["serve", w.bundle, "--backend", "onnxruntime"], "onnx"),
    **_fuzzed_run_cases(),
    **_fuzzed_bundle_cases(),
}
# predict cases that inspect a stream: the stream's own lines (a skipped frame, the summary) come first
STREAMS = {"predict decompression bomb", "predict huge image", "predict truncated image"}
WITH_MODEL |= {
    "predict decompression bomb": lambda w: (_predict(w, source=w.file("bomb.png", png_header(20000, 20000))), "bomb.png"),
    "predict huge image": lambda w: (_predict(w, source=w.file("huge.png", png_header(12000, 8000))), "huge.png"),
    "predict truncated image": lambda w: (_predict(w, source=w.file("cut.png", w.image.read_bytes()[:200])), "cut.png"),
}

# issue 24's classes: serving closed, files written only where they belong, every mistake exit 2,
# outside text shown safely (every case's stderr is checked for raw control characters)
WITH_MODEL |= {
    "serve host empty": lambda w: (["serve", w.bundle, "--host", ""], "--host"),
    "serve host blank": lambda w: (["serve", w.bundle, "--host", " "], "--host"),
    "serve host padded": lambda w: (["serve", w.bundle, "--host", " 0.0.0.0"], "--host"),
    "serve max body inf": lambda w: (["serve", w.bundle, "--max-body-mb", "inf"], "--max-body-mb"),
    "serve max body nan": lambda w: (["serve", w.bundle, "--max-body-mb", "nan"], "--max-body-mb"),
    "serve max body huge": lambda w: (["serve", w.bundle, "--max-body-mb", 1e9], "--max-body-mb"),
    "serve check above threshold": lambda w: (["serve", w.bundle, "--port", 0, "--threshold", 0.3, "--check", 0.4], "--check"),
    "serve threshold 1": lambda w: (["serve", w.bundle, "--port", 0, "--threshold", 1], "--threshold"),
    "eval json a folder": lambda w: (["eval", w.bundle, "--data", w.data, "--json", w.folder("json-dir")], "json-dir"),
    "eval json a pipe": lambda w: (["eval", w.bundle, "--data", w.data, "--json", _fifo(w, "metrics.fifo")], "metrics.fifo"),
    "eval json a link": lambda w: (["eval", w.bundle, "--data", w.data, "--json", _link(w, "m.json", w.file("real.json", "{}"))], "m.json"),
    "eval json under a file": lambda w: (["eval", w.bundle, "--data", w.data, "--json", w.file("plain.txt", "x") / "m.json"], "plain.txt"),
    "bench json a folder": lambda w: (["bench", w.bundle, "--json", w.folder("bench-dir")], "bench-dir"),
    "bench json a pipe": lambda w: (["bench", w.bundle, "--json", _fifo(w, "bench.fifo")], "bench.fifo"),
    "bench json a link to a device": lambda w: (["bench", w.bundle, "--json", _link(w, "null.json", Path("/dev/null"))], "null.json"),
    "bundle lists a parent path": lambda w: (["predict", _listing(w, "../run-copy/run.json"), w.image], "plain file names"),
    "bundle lists an absolute path": lambda w: (["predict", _listing(w, "/etc/hostname"), w.image], "plain file names"),
    "bundle lists a sub-folder": lambda w: (["predict", _listing(w, "sub/model.bin"), w.image], "plain file names"),
    "bundle lists dot dot": lambda w: (["predict", _listing(w, ".."), w.image], "plain file names"),
    "bundle lists an empty name": lambda w: (["predict", _listing(w, ""), w.image], "plain file names"),
    "bundle lists a backslash path": lambda w: (["predict", _listing(w, "..\\x"), w.image], "plain file names"),
    "bundle weights a link": lambda w: (["predict", _linked_weights(w), w.image], "is a link"),
    "adedge.json nested deeply": lambda w: (["predict", _deeply_nested(w, "bundle", "adedge.json"), w.image], "nested too deeply"),
    "run.json nested deeply": lambda w: (_export(w, _deeply_nested(w, "run", "run.json")), "nested too deeply"),
    "predict camera index huge": lambda w: (_predict(w, source="99999999999999999999"), "camera index"),
    "predict camera index above 9999": lambda w: (_predict(w, source="10000"), "camera index"),
    "predict mqtt port text": lambda w: (_predict(w, "--mqtt", "mqtt://127.0.0.1:abc/line"), "--mqtt"),
    "predict mqtt port out of range": lambda w: (_predict(w, "--mqtt", "mqtt://127.0.0.1:99999/line"), "--mqtt"),
    "predict webhook ipv6 malformed": lambda w: (_predict(w, "--webhook", "http://[::1/verdicts"), "--webhook"),
    "predict webhook port text": lambda w: (_predict(w, "--webhook", "http://127.0.0.1:port/x"), "--webhook"),
    "predict webhook with an escape": lambda w: (_predict(w, "--webhook", "ftp://\x1b[2Jhost/x"), "--webhook"),
    "predict source named with escapes": lambda w: (_predict(w, source=w.tmp / "\x1b[2J\x1b[31mgone.png"), "gone.png"),
    "predict source named with a line break": lambda w: (_predict(w, source=w.tmp / "a\nerror: forged.png"), "forged.png"),
    "predict source named right to left": lambda w: (_predict(w, source=w.tmp / "gnp.\u202eexe.png"), "exe.png"),
    "eval data named with escapes": lambda w: (["eval", w.bundle, "--data", w.tmp / "\x1b]0;owned\x07data"], "data"),
    "predict check nan": lambda w: (_predict(w, "--check", "nan"), "--check"),
    "predict check negative": lambda w: (_predict(w, "--check", -0.1), "--check"),
}
NO_MODEL |= {
    "train cflow lr absurd": lambda w: (_train(w, "--model", "cflow", "-p", "lr=1e308"), "lr"),
    "train cflow clamp absurd": lambda w: (_train(w, "--model", "cflow", "-p", "clamp=1e9"), "clamp"),
    "train cflow condition huge": lambda w: (_train(w, "--model", "cflow", "-p", "condition=1000000"), "condition"),
    "train false reject nan": lambda w: (_train(w, "--false-reject", "nan"), "--false-reject"),
    "train false reject negative": lambda w: (_train(w, "--false-reject", -0.01), "--false-reject"),
    "train too few images": lambda w: (_train(w, data=w.folder("three", copies=3)), "at least 4"),
}
# issue 31 (round 5) and issue 32: numbers range-checked before work, digits of any script, the new options
NO_MODEL |= {
    "train false reject tiny": lambda w: (_train(w, "--false-reject", "1e-300"), "--false-reject"),
    "train image size sides odd": lambda w: (_train(w, "--image-size", "64,33"), "--image-size"),
    "train image size text": lambda w: (_train(w, "--image-size", "big"), "--image-size"),
    "train image size three sides": lambda w: (_train(w, "--image-size", "64x64x64"), "--image-size"),
    "train image size fullwidth digits": lambda w: (_train(w, "--image-size", "\uff16\uff14"), "--image-size"),
    "train patchcore bank 0": lambda w: (_train(w, "--model", "patchcore", "-p", "bank=0"), "bank"),
    "train patchcore neighbourhood even": lambda w: (_train(w, "--model", "patchcore", "-p", "neighbourhood=2"), "neighbourhood"),
    "train patchcore dim negative": lambda w: (_train(w, "--model", "patchcore", "-p", "dim=-1"), "dim"),
    "serve grpc port above 65535": lambda w: (["serve", w.tmp / "nob", "--grpc-port", 70000], "--grpc-port"),
    "serve grpc port negative": lambda w: (["serve", w.tmp / "nob", "--grpc-port", -1], "--grpc-port"),
    "serve port above 65535": lambda w: (["serve", w.tmp / "nob", "--port", 131073], "--port"),
    "serve max body tiny": lambda w: (["serve", w.tmp / "nob", "--max-body-mb", "1e-9"], "--max-body-mb"),
}
WITH_MODEL |= {
    "predict settle inf": lambda w: (_predict(w, "--watch", "--settle", "inf", source=w.folder("watched")), "--settle"),
    "predict reconnect timeout inf": lambda w: (_predict(w, "--reconnect-timeout", "inf", source="7"), "--reconnect-timeout"),
    "predict camera superscript two": lambda w: (_predict(w, source="\u00b2"), "\u00b2"),
    "predict camera arabic three": lambda w: (_predict(w, source="\u0663"), "\u0663"),
    "predict camera fullwidth one": lambda w: (_predict(w, source="\uff11"), "\uff11"),
    "predict out into the bundle": lambda w: (["predict", w.bundle, w.image, "--out", w.bundle], "inside the bundle"),
    "predict out inside the bundle": lambda w: (["predict", w.bundle, w.image, "--out", w.bundle / "inspected"], "inside the bundle"),
    "predict out into another bundle": lambda w: (_predict(w, "--out", w.edited_copy("bundle", "adedge.json", lambda c: c)), "is a bundle"),
    "predict watch out inside the watched folder": lambda w: (
        ["predict", w.bundle, w.folder("incoming"), "--watch", "--out", w.tmp / "incoming" / "inspected"], "inside the watched folder"),
    "eval report into the bundle": lambda w: (["eval", w.bundle, "--data", w.data, "--report", w.bundle], "inside the bundle"),
    "bench json into the bundle": lambda w: (["bench", w.bundle, "--json", w.bundle / "bench.json"], "inside the bundle"),
    "predict out whose predictions.jsonl is a link": lambda w: (
        _predict(w, "--out", _planted(w, lambda path: path.symlink_to(w.file("victim.txt", "keep")))), "refusing to write"),
    "predict out whose predictions.jsonl is a FIFO": lambda w: (_predict(w, "--out", _planted(w, os.mkfifo)), "refusing to write"),
    "adedge.json a 5000-digit number": lambda w: (["predict", w.edited_copy("bundle", "adedge.json", _digits), w.image], "adedge.json"),
    "run.json a 5000-digit number": lambda w: (_export(w, w.edited_copy("run", "run.json", _digits)), "run.json"),
}


def _planted(w: World, plant: Callable[[Path], object]) -> Path:
    """An output folder whose predictions.jsonl was made by PLANT (a link, a FIFO)."""
    out = w.folder("planted-out")
    plant(out / "predictions.jsonl")
    return out


def _digits(content: dict) -> str:
    """A JSON text with a 5000-digit number in it (Python's int() refuses more than 4300 digits)."""
    return json.dumps(content)[:-1] + ', "huge": ' + "9" * 5000 + "}"


def _fifo(w: World, name: str) -> Path:
    os.mkfifo(w.tmp / name)
    return w.tmp / name


def _link(w: World, name: str, target: Path) -> Path:
    (w.tmp / name).symlink_to(target)
    return w.tmp / name


def _listing(w: World, name: str) -> Path:
    """A copy of the bundle whose adedge.json also lists NAME (with some hash)."""
    w.folder("run-copy")
    return w.edited_copy("bundle", "adedge.json", lambda content: {**content, "files": {**content["files"], name: "0" * 64}})


def _linked_weights(w: World) -> Path:
    """A copy of the bundle whose model.bin is a link to the real one outside it."""
    copy = w.tmp / "bundle-linked"
    shutil.copytree(w.bundle, copy)
    (copy / "model.bin").unlink()
    (copy / "model.bin").symlink_to(w.bundle / "model.bin")
    return copy


def _deeply_nested(w: World, what: str, file: str) -> Path:
    copy = w.edited_copy(what, file, lambda content: content)
    (copy / file).write_text("[" * 200_000 + "]" * 200_000)
    return copy


_HELD: list = []  # sockets kept open for the cases that need a port in use


def _taken_port() -> int:
    import socket

    _HELD.append(socket.create_server(("127.0.0.1", 0)))
    return _HELD[-1].getsockname()[1]


def _run_with(w: World, edit: Callable[[bytes], bytes] | None = None, tensor: bool = False) -> Path:
    copy = w.tmp / "run-copy"
    shutil.copytree(w.run, copy)
    checkpoint = copy / "checkpoint.pt"
    if tensor:
        w.torch_file("run-copy/checkpoint.pt", __import__("torch").zeros(3))
    else:
        checkpoint.write_bytes(edit(checkpoint.read_bytes()))
    return copy


class _Boom:
    def __reduce__(self):
        return (os.system, ("touch /tmp/adedge-sweep-pwned",))


def _malicious_pickle() -> bytes:
    import pickle

    return pickle.dumps({"x": _Boom()})


def _run_moved_data(w: World) -> Path:
    """A run whose training data is gone (its dataset root points at an empty folder)."""
    return w.edited_copy("run", "run.json", _set("dataset.root", str(w.folder("moved-away"))))


def _with_corrupt_test_image(w: World) -> Path:
    copy = w.tmp / "data-copy"
    shutil.copytree(w.data, copy)
    (copy / "test" / "good" / "000.png").write_bytes(b"\x89PNG not really")
    return copy


def _snapshot(folder: Path) -> set[str]:
    return {str(p.relative_to(folder)) for p in folder.rglob("*")}


def _check(w: World, name: str, case: Case, capsys) -> None:
    argv, expected = case(w)
    before = _snapshot(w.tmp)
    capsys.readouterr()
    if argv[0] == "serve":  # its own process: KServe's protocol buffers clash with tritonclient.grpc's (test_serve) in one
        finished = _console_script(argv)
        code, err = finished.returncode, finished.stderr
    else:
        code = run_cli(argv)
        err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip() and not line.startswith(PROGRESS_PREFIX)]  # a stage done: no error
    errors = [line for line in lines if line.startswith("error:")]
    assert "Traceback" not in err, f"{name}: {err}"
    assert not re.search("[\x00-\x09\x0b-\x1f\x7f-\x9f\u202a-\u202e]", err), f"{name}: raw control characters: {err!r}"
    assert code == 2, f"{name}: exit {code}: {err}"
    assert len(errors) == 1, f"{name}: {err}"
    assert name in STREAMS or len(lines) == 1, f"{name}: more than one line on stderr: {err}"
    cause = err if name in STREAMS else errors[0]  # a stream names the frame's cause on its own line
    assert expected.lower() in cause.lower(), f"{name}: expected {expected!r} in {cause!r}"
    after = _snapshot(w.tmp)
    leftovers = [p for p in after if p.endswith((".partial", ".tmp")) or ".partial" in p]
    assert not leftovers, f"{name}: left {leftovers}"
    written = after - before - ({"predict-out", "predict-out/predictions.jsonl", "predict-out/summary.json"} if name in STREAMS else set())
    assert not written, f"{name}: wrote {sorted(written)[:5]}"
    assert not Path("/tmp/adedge-sweep-pwned").exists()


@pytest.mark.parametrize("name", sorted(NO_MODEL))
def test_bad_input_without_a_model(name, synthetic, tmp_path, capsys):
    _check(World(tmp_path, synthetic), name, NO_MODEL[name], capsys)


@pytest.mark.parametrize("name", sorted(WITH_MODEL))
def test_bad_input_with_a_model(name, synthetic, small_model, tmp_path, capsys):
    run, bundle = small_model
    _check(World(tmp_path, synthetic, run, bundle), name, WITH_MODEL[name], capsys)


def _console_script(args: list, file_size_limit: int | None = None) -> subprocess.CompletedProcess:
    """`adedge ARGS` in a fresh process; with FILE_SIZE_LIMIT its files cannot grow past that many
    bytes: the writes fail as on a full disk (EFBIG instead of ENOSPC), without needing a full disk."""

    def limit() -> None:
        import resource
        import signal

        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (file_size_limit, file_size_limit))

    code = "import sys; from adedge.cli import main; sys.exit(main(sys.argv[1:]))"
    return subprocess.run([sys.executable, "-c", code, *map(str, args)], capture_output=True, text=True,
                          preexec_fn=limit if file_size_limit is not None else None)


@pytest.mark.parametrize("command", ["export", "train"])
def test_a_full_disk_ends_in_one_line_and_leaves_nothing(command, synthetic, small_model, tmp_path):
    run, bundle = small_model
    out = tmp_path / "out"
    args = ["export", run] if command == "export" else ["train", "--data", synthetic, "--image-size", SWEEP_IMAGE_SIZE]
    args += ["--out", out]
    result = _console_script(args, file_size_limit=200_000)
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
    assert [line for line in result.stderr.splitlines() if line.strip()][-1].startswith("error:"), result.stderr
    assert not out.exists() and not [p for p in tmp_path.iterdir() if p.name.startswith(".")], list(tmp_path.iterdir())


def test_a_full_disk_during_predict_leaves_whole_lines_and_names_the_file(synthetic, small_model, tmp_path):
    _, bundle = small_model
    frames = tmp_path / "frames"
    frames.mkdir()
    for index in range(40):
        shutil.copy(synthetic / "test" / "good" / "000.png", frames / f"{index:03d}.png")
    out = tmp_path / "out"
    result = _console_script(["predict", bundle, frames, "--out", out, "--overlays", "none"], file_size_limit=6_000)
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert result.returncode == 2 and "Traceback" not in result.stderr and len(errors) == 1, result.stderr
    assert f"cannot write {out / 'predictions.jsonl'}" in errors[0] and "records of run" in errors[0]
    lines = (out / "predictions.jsonl").read_text().splitlines()
    assert 0 < len(lines) < 40 and all(json.loads(line)["frame"] == n for n, line in enumerate(lines))  # whole lines only
    written = int(errors[0].split("; ")[-2].split()[0])
    assert written == len(lines) and json.loads((out / "summary.json").read_text())["frames"] >= len(lines)


def test_a_full_disk_when_openvino_saves_ends_in_one_line_and_keeps_the_old_bundle(small_model, tmp_path, capsys, monkeypatch):
    """The file-size limit above fails in the ONNX step; a disk that fills up just when OpenVINO
    writes the IR makes it raise "iostream error" (a RuntimeError): still one line, exit 2."""
    import openvino as ov

    run, _ = small_model
    out = tmp_path / "bundle"
    assert run_cli(["export", run, "--out", out]) == 0
    before = {p.name: p.read_bytes() for p in out.iterdir()}

    def full_disk(*args, **kwargs):
        raise RuntimeError("Exception from src/core/src/pass/serialize.cpp:1234:\niostream error")

    monkeypatch.setattr(ov, "save_model", full_disk)
    capsys.readouterr()
    assert run_cli(["export", run, "--out", out]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: cannot write") and "iostream error" in err and "disk full" in err and len(err.splitlines()) == 1, err
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
