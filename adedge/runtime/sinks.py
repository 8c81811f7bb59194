"""Where a stream's results go: a JSON line per frame, overlays of the frames asked for, a summary.

Every line is flushed as it is written, so a stream stopped at any moment leaves whole lines.
Nothing is overwritten: overlay names carry the run's id (its start time and a random part), so a
restart into the same folder adds pictures beside the earlier ones, and each JSON line names its
own frame's picture. An overlay that cannot be written (a full disk) is noted on its frame's line
and the stream goes on.
"""

import secrets
import time
from pathlib import Path
from typing import TextIO

from adedge.data.images import save_image
from adedge.errors import AdedgeError
from adedge.fileio import json_text, write_json
from adedge.runtime.overlay import overlay
from adedge.runtime.stream import Inspection, Summary

OVERLAYS = ("ng", "all", "none")  # which frames get an overlay PNG
LINES_FILE, SUMMARY_FILE = "predictions.jsonl", "summary.json"


def new_run_id() -> str:
    """A run's id: its UTC start time and a random part, which numbers its frames apart from any other run's."""
    return time.strftime("%Y%m%d-%H%M%S", time.gmtime()) + "-" + secrets.token_hex(2)


class StreamWriter:
    """Records of MODEL's verdicts as JSON lines to ECHO (e.g. stdout) and, with OUT, appended to OUT/predictions.jsonl (a restarted
    stream adds to it) beside the overlays and, at the end, OUT/summary.json."""

    def __init__(self, out: Path | None, model: str, overlays: str = "ng", echo: TextIO | None = None) -> None:
        if overlays not in OVERLAYS:
            raise AdedgeError(f"unknown --overlays {overlays!r}; choose from {', '.join(OVERLAYS)}")
        self.out, self.model, self.overlays, self.echo = out, model, overlays if out is not None else "none", echo
        self.run = new_run_id()
        self.lines = None
        if out is not None:
            out.mkdir(parents=True, exist_ok=True)
            self.lines = open(out / LINES_FILE, "a")

    def _overlay_path(self, inspection: Inspection) -> Path:
        source = Path(inspection.source)
        stem = f"_{source.stem}" if source.is_file() and source.suffix else ""
        return self.out / f"{self.run}_{inspection.frame:06d}{stem}_{inspection.result.label}.png"

    def write(self, inspection: Inspection) -> dict:
        """Write INSPECTION's line (and overlay); returns the record, with `overlay_error` if its
        overlay could not be written."""
        record = inspection.record(self.run, self.model)
        result = inspection.result
        if result is not None and (self.overlays == "all" or (self.overlays == "ng" and result.anomalous)):
            path = self._overlay_path(inspection)
            try:
                save_image(path, overlay(inspection.image, result))
                record["overlay"] = str(path)
            except OSError as exc:
                record["overlay_error"] = f"cannot write {path.name}: {exc.strerror or exc}"
        line = json_text(record)
        for stream in (self.lines, self.echo):
            if stream is not None:
                print(line, file=stream, flush=True)
        return record

    def close(self, summary: Summary | None = None) -> None:
        if self.lines is not None:
            self.lines.close()
        if summary is not None and self.out is not None:
            write_json(self.out / SUMMARY_FILE, summary.as_dict())
