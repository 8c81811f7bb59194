"""The line-side runtime: numpy and OpenVINO / ONNX Runtime only, never torch."""

from adedge.runtime.model import Model, Result

__all__ = ["Model", "Result"]
