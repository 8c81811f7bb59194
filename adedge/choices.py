"""Every option a user picks from a fixed set, as an enum (torch-free, so the CLI checks a choice
before anything loads), and the one table of which precisions each export format takes.

The enums are StrEnums: a member equals its text, so adedge.json, run.json and the command line
keep their plain strings.
"""

from enum import StrEnum

from adedge.errors import AdedgeError


class Format(StrEnum):
    """The bundle's model file: OpenVINO IR or ONNX."""

    OPENVINO = "openvino"
    ONNX = "onnx"


class Precision(StrEnum):
    """fp32; fp16 (compressed weights, f32 arithmetic); bf16 (bf16 arithmetic throughout where the
    CPU has it); int8 (NNCF); auto (the backbone's convolutions in bf16 where the CPU has it, every
    other layer kept in f32: normalisation, the head, scores and thresholds)."""

    FP32 = "fp32"
    FP16 = "fp16"
    BF16 = "bf16"
    INT8 = "int8"
    AUTO = "auto"


class Layout(StrEnum):
    """Where an export lands: a bundle folder, or a model in a Triton or OVMS model repository."""

    BUNDLE = "bundle"
    TRITON = "triton"
    OVMS = "ovms"


class Resize(StrEnum):
    """How the graph resizes frames to the model's size (adedge.train.detector.Preprocess)."""

    ANTIALIAS = "antialias"
    BILINEAR = "bilinear"


class Backend(StrEnum):
    """The inference engine the runtime drives."""

    OPENVINO = "openvino"
    ONNXRUNTIME = "onnxruntime"


class Mode(StrEnum):
    """latency: one request on all cores; throughput: several requests in flight."""

    LATENCY = "latency"
    THROUGHPUT = "throughput"


class Overlays(StrEnum):
    """Which frames get an overlay PNG."""

    NG = "ng"
    ALL = "all"
    NONE = "none"


# the precisions each export format takes (every format takes every layout)
FORMAT_PRECISIONS: dict[Format, tuple[Precision, ...]] = {
    Format.OPENVINO: tuple(Precision),
    Format.ONNX: (Precision.FP32,),
}
# the arithmetic OpenVINO is asked for with each precision (by adedge's runtime and the server configs
# export writes): a CPU without bf16 units runs "bf16" as f32, and layers an IR marks to keep their
# precision stay in f32 either way (every layer of fp32, fp16 and int8 IRs, all but the backbone's of auto)
INFERENCE_PRECISION: dict[Precision, str] = {
    Precision.FP32: "f32", Precision.FP16: "f32", Precision.BF16: "bf16", Precision.INT8: "f32", Precision.AUTO: "bf16",
}
# the backends that run each format
FORMAT_BACKENDS: dict[Format, tuple[Backend, ...]] = {
    Format.OPENVINO: (Backend.OPENVINO,),
    Format.ONNX: (Backend.OPENVINO, Backend.ONNXRUNTIME),
}


def choice(kind: type[StrEnum], value: str, option: str) -> StrEnum:
    """VALUE as a member of KIND, or one line naming OPTION and the choices."""
    try:
        return kind(value)
    except ValueError:
        raise AdedgeError(f"unknown {option} {value!r}; choose from {', '.join(kind)}") from None


def check_export(fmt: str, precision: str, layout: str) -> tuple[Format, Precision, Layout]:
    """The export options as enums, refused up front where the format does not take the precision."""
    fmt, precision, layout = choice(Format, fmt, "--format"), choice(Precision, precision, "--precision"), choice(Layout, layout, "--layout")
    if precision not in FORMAT_PRECISIONS[fmt]:
        takes = " or ".join(p.value for p in FORMAT_PRECISIONS[fmt])
        raise AdedgeError(f"--precision {precision} needs --format openvino; {fmt} bundles are {takes}")
    return fmt, precision, layout
