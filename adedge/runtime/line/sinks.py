"""Where a stream's results go: a JSON line per frame, overlays of the frames asked for, a summary.

predictions.jsonl never holds a torn line: each record is appended in one write of the whole line
(O_APPEND), a write that fails is cut back off, and a line torn by a crash or a power cut (the
lines are not fsynced one by one; the OS writes them within seconds) is cut off at the next start.
A record that cannot be written (a full disk, the folder removed) stops the stream with one line
naming the file and how many records reached it. Nothing is overwritten: overlay names carry the run's id (its start time and a random part), so a
restart into the same folder adds pictures beside the earlier ones, and each JSON line names its
own frame's picture. An overlay that cannot be written (a full disk) is noted on its frame's line
and the stream goes on.
"""

import os
import secrets
import time
from pathlib import Path
from typing import TextIO

from adedge import defaults
from adedge.choices import Overlays, choice
from adedge.data.images import save_image
from adedge.errors import AdedgeError
from adedge.fileio import json_text, open_appending, write_json
from adedge.runtime.line.overlay import overlay
from adedge.runtime.line.stream import Inspection, Summary

LINES_FILE, SUMMARY_FILE = "predictions.jsonl", "summary.json"


def new_run_id() -> str:
    """A run's id: its UTC start time and a random part, which numbers its frames apart from any other run's."""
    return time.strftime("%Y%m%d-%H%M%S", time.gmtime()) + "-" + secrets.token_hex(2)


class StreamWriter:
    """Records of MODEL's verdicts as JSON lines to ECHO (e.g. stdout) and, with OUT, appended to OUT/predictions.jsonl (a restarted
    stream adds to it) beside the overlays and, at the end, OUT/summary.json."""

    def __init__(self, out: Path | None, model: str, overlays: str = defaults.OVERLAYS, echo: TextIO | None = None) -> None:
        overlays = choice(Overlays, overlays, "--overlays")
        self.out, self.model, self.overlays, self.echo = out, model, overlays if out is not None else Overlays.NONE, echo
        self.run = new_run_id()
        self.lines: int | None = None  # predictions.jsonl's file descriptor
        self.written = 0  # records of this run in predictions.jsonl
        if out is not None:
            out.mkdir(parents=True, exist_ok=True)
            self.lines_path = out / LINES_FILE
            self.lines = open_appending(self.lines_path)
            self._cut_torn_line()

    def _cut_torn_line(self) -> None:
        """Cut off a last line an earlier run left unfinished (a crash mid-write)."""
        size = os.fstat(self.lines).st_size
        if size == 0:
            return
        tail = os.pread(self.lines, min(size, 1 << 20), max(0, size - (1 << 20)))
        if not tail.endswith(b"\n"):
            os.ftruncate(self.lines, size - len(tail) + tail.rfind(b"\n") + 1)  # just after the last whole line

    def _append(self, line: str) -> None:
        """LINE appended to predictions.jsonl whole, or not at all (then the stream stops)."""
        data = (line + "\n").encode("utf-8")
        size = os.fstat(self.lines).st_size
        try:
            if not self.lines_path.exists() or os.lstat(self.lines_path).st_ino != os.fstat(self.lines).st_ino:
                raise FileNotFoundError(2, "the file or its folder was removed")
            if os.write(self.lines, data) != len(data):
                raise OSError(28, "a short write (the disk is full)")
        except OSError as exc:
            os.ftruncate(self.lines, size)
            raise AdedgeError(f"cannot write {self.lines_path}: {exc.strerror or exc}; {self.written} records of run {self.run} "
                              "were written to it; stopping") from None
        self.written += 1

    def _overlay_path(self, inspection: Inspection) -> Path:
        source = Path(inspection.source)
        stem = f"_{source.stem}" if source.is_file() and source.suffix else ""
        return self.out / f"{self.run}_{inspection.frame:06d}{stem}_{inspection.result.label}.png"

    def write(self, inspection: Inspection) -> dict:
        """Write INSPECTION's line (and overlay); returns the record, with `overlay_error` if its
        overlay could not be written."""
        record = inspection.record(self.run, self.model)
        result = inspection.result
        if result is not None and (self.overlays == Overlays.ALL or (self.overlays == Overlays.NG and result.anomalous)):
            path = self._overlay_path(inspection)
            try:
                save_image(path, overlay(inspection.image, result))
                record["overlay"] = str(path)
            except OSError as exc:
                record["overlay_error"] = f"cannot write {path.name}: {exc.strerror or exc}"
        line = json_text(record)
        if self.lines is not None:
            self._append(line)
        if self.echo is not None:
            print(line, file=self.echo, flush=True)
        return record

    def close(self, summary: Summary | None = None) -> str | None:
        """Close predictions.jsonl and write SUMMARY beside it; returns why the summary could not be
        written (None: it was, or there is no output folder)."""
        if self.lines is not None:
            os.close(self.lines)
            self.lines = None
        if summary is None or self.out is None:
            return None
        try:
            write_json(self.out / SUMMARY_FILE, summary.as_dict())
        except (OSError, AdedgeError) as exc:
            return f"{self.out / SUMMARY_FILE} was not written: {getattr(exc, 'strerror', None) or exc}"
        return None
