"""The line-side runtime: numpy and OpenVINO / ONNX Runtime only, never torch."""

from adedge.runtime.inference.model import Model, Result
from adedge.runtime.line.sources import Frame, Source, open_source
from adedge.runtime.line.stream import Inspection, Summary, inspect_stream

__all__ = ["Frame", "Inspection", "Model", "Result", "Source", "Summary", "inspect_stream", "open_source"]
