"""The inspection loop of `adedge predict`: every frame of a source through the model, its record
written (stdout, predictions.jsonl, overlays) and handed to the forwarders (MQTT, webhook)."""

import threading
from collections.abc import Callable

from adedge.runtime.inference.model import Model
from adedge.runtime.line.delivery import Forwarder
from adedge.runtime.line.sinks import StreamWriter
from adedge.runtime.line.sources import Source
from adedge.runtime.line.stream import Summary, inspect_stream

# warn(what, text): what is "skipped" (a frame that could not be inspected), "drift alarm",
# "overlay" (an overlay that could not be written) or "summary missing"
Warn = Callable[[str, str], None]


def inspect_line(model: Model, frames: Source, writer: StreamWriter, forwarders: list[Forwarder], stop: threading.Event,
                 warn: Warn) -> Summary:
    """Inspect FRAMES until they end or STOP is set; the summary is written whatever happens (the
    caller closes the forwarders: adedge.runtime.line.delivery.close_forwarders)."""
    summary = Summary()
    try:
        for inspection in inspect_stream(model, frames, stop):
            if inspection.error is not None:
                warn("skipped", f"frame {inspection.frame} ({inspection.source}): {inspection.error}")
            if inspection.drift_raised:
                warn("drift alarm", f"at frame {inspection.frame}: {inspection.drift}")
            record = writer.write(inspection)
            if "overlay_error" in record:
                warn("overlay", f"of frame {inspection.frame}: {record['overlay_error']}")
            summary.add(inspection)
            for forwarder in forwarders:
                forwarder.put(record)
    finally:
        unwritten = writer.close(summary.finish())
        if unwritten:
            warn("summary missing", unwritten)
    return summary

