"""The line-side runtime: numpy and OpenVINO / ONNX Runtime only, never torch.

Its public names load on first use, so importing one part (the verdict rule, say) loads neither
the line I/O nor OpenCV."""

import importlib

_HOMES = {
    "Model": "adedge.runtime.inference.model",
    "Result": "adedge.runtime.inference.model",
    "Frame": "adedge.runtime.line.sources",
    "Source": "adedge.runtime.line.sources",
    "open_source": "adedge.runtime.line.sources",
    "Inspection": "adedge.runtime.line.stream",
    "Summary": "adedge.runtime.line.stream",
    "inspect_stream": "adedge.runtime.line.stream",
}
__all__ = sorted(_HOMES)


def __getattr__(name: str) -> object:
    if name not in _HOMES:
        raise AttributeError(f"module 'adedge.runtime' has no attribute {name!r}")
    return getattr(importlib.import_module(_HOMES[name]), name)
