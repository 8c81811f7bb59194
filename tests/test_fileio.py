"""Atomic writes: a folder is replaced in one step, killed writes are cleaned up, files never half-written."""

import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from adedge.errors import AdedgeError
from adedge.fileio import atomic_directory, check_output_folder, write_bytes_atomic

MARKER = "adedge.json"


def _write_version(target: Path, version: int, files: int = 20) -> None:
    with atomic_directory(target, MARKER) as scratch:
        for index in range(files):
            (scratch / f"part{index}.txt").write_text(str(version))
        (scratch / MARKER).write_text(str(version))


def _read_through_the_path(target: Path) -> set[str] | None:
    """The versions in the folder at TARGET, read through one handle on it; None if the folder was
    replaced while being read (the reader then holds the old one, which may be half deleted)."""
    folder = os.open(target, os.O_RDONLY | os.O_DIRECTORY)  # raises if TARGET is ever missing
    try:
        names = os.listdir(folder)
        versions = []
        for name in names:
            with open(os.open(name, os.O_RDONLY, dir_fd=folder)) as stream:
                versions.append(stream.read())
        still_there = os.stat(target).st_ino == os.fstat(folder).st_ino
    except FileNotFoundError:
        return None
    finally:
        os.close(folder)
    return set(versions) if still_there and len(names) == 21 else ({"incomplete"} if still_there else None)


def test_a_reader_always_sees_one_complete_version(tmp_path):
    target = tmp_path / "bundle"
    _write_version(target, 0)
    seen, problems, done = [], [], threading.Event()

    def reader() -> None:
        while not done.is_set():
            try:
                versions = _read_through_the_path(target)
            except FileNotFoundError:
                problems.append("the path was missing")
                continue
            if versions is not None and len(versions) != 1 or versions == {"incomplete"}:
                problems.append(versions)
            seen.append(versions)

    thread = threading.Thread(target=reader)
    thread.start()
    for version in range(1, 60):
        _write_version(target, version)
    done.set()
    thread.join()
    assert not problems, problems[:5]
    assert len({v for versions in seen if versions for v in versions}) > 1 and (target / MARKER).read_text() == "59"
    assert [p.name for p in tmp_path.iterdir()] == ["bundle"]


def test_a_failed_write_keeps_the_old_folder_and_leaves_nothing(tmp_path):
    target = tmp_path / "bundle"
    _write_version(target, 1)
    with pytest.raises(RuntimeError), atomic_directory(target, MARKER) as scratch:
        (scratch / MARKER).write_text("2")
        raise RuntimeError("export failed")
    assert (target / MARKER).read_text() == "1" and [p.name for p in tmp_path.iterdir()] == ["bundle"]


def test_the_next_write_removes_what_a_killed_one_left(tmp_path):
    target = tmp_path / "bundle"
    code = (
        "import sys, time; from pathlib import Path; from adedge.fileio import atomic_directory\n"
        f"with atomic_directory(Path(sys.argv[1]), {MARKER!r}) as scratch:\n"
        "    (scratch / 'half.bin').write_bytes(b'x' * 1000); print('writing', flush=True); time.sleep(60)\n"
    )
    writer = subprocess.Popen([sys.executable, "-c", code, str(target)], stdout=subprocess.PIPE, text=True)
    assert writer.stdout.readline().strip() == "writing"
    writer.send_signal(signal.SIGKILL)
    writer.wait()
    leftovers = [p for p in tmp_path.iterdir() if p.name.endswith(".partial")]
    assert len(leftovers) == 1 and not target.exists()
    _write_version(target, 1)
    assert [p.name for p in tmp_path.iterdir()] == ["bundle"]


def test_a_live_writers_scratch_folder_is_left_alone(tmp_path):
    target = tmp_path / "bundle"
    live = tmp_path / f".bundle.{os.getpid()}.abc.partial"
    live.mkdir()
    _write_version(target, 1)
    assert live.is_dir()


def test_output_folders_are_checked_before_any_work(tmp_path):
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "a.txt").write_text("mine")
    (tmp_path / "file").write_text("x")
    with pytest.raises(AdedgeError, match="not an adedge output folder"):
        check_output_folder(tmp_path / "notes", MARKER)
    with pytest.raises(AdedgeError, match="is a file, not a folder"):
        check_output_folder(tmp_path / "file" / "out", MARKER)
    assert check_output_folder(tmp_path / "new" / "out", MARKER) == tmp_path / "new" / "out"
    assert not (tmp_path / "new").exists()


def test_a_file_write_that_fails_leaves_the_old_file_and_no_scratch(tmp_path, monkeypatch):
    path = tmp_path / "a.png"
    write_bytes_atomic(path, b"old")

    def full_disk(descriptor, mode):
        os.close(descriptor)
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fdopen", full_disk)
    with pytest.raises(OSError):
        write_bytes_atomic(path, b"new")
    monkeypatch.undo()
    assert path.read_bytes() == b"old" and [p.name for p in tmp_path.iterdir()] == ["a.png"]


def test_nothing_planted_in_an_output_folder_is_written_through(tmp_path):
    """A link planted at the scratch name or at predictions.jsonl, or a FIFO there, is never
    written through nor waited on: the scratch file is a fresh name, and the JSONL is refused."""
    from adedge.runtime.line.sinks import StreamWriter

    victim = tmp_path / "victim.txt"
    victim.write_text("keep me")
    out = tmp_path / "out"
    out.mkdir()
    (out / ".summary.json.tmp").symlink_to(victim)
    write_bytes_atomic(out / "summary.json", b"{}")
    assert victim.read_text() == "keep me" and (out / "summary.json").read_bytes() == b"{}"
    (out / "predictions.jsonl").symlink_to(victim)
    with pytest.raises(AdedgeError, match="refusing to write .*predictions.jsonl"):
        StreamWriter(out, "m")
    assert victim.read_text() == "keep me"
    (out / "predictions.jsonl").unlink()
    os.mkfifo(out / "predictions.jsonl")
    with pytest.raises(AdedgeError, match="not a regular file"):
        StreamWriter(out, "m")  # returns at once: a FIFO is not waited on
