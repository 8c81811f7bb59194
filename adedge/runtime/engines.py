"""Inference engines: OpenVINO and ONNX Runtime behind one `infer(batch) -> (maps, scores)` call.

Only the engine lives here; resizing and thresholds live in model.py, as in OpenVINO's Model API.
"""

from typing import Protocol

import numpy as np

from adedge.errors import AdedgeError
from adedge.runtime.bundle import INPUT_NAME, OUTPUT_NAMES, Bundle

BACKENDS = ("openvino", "onnxruntime")
MODES = ("latency", "throughput")  # one request on all cores, or several in flight
# The hint each bundle precision runs with. fp16 IR weights are widened on load and int8 bundles keep
# their float parts in f32, for parity with the trained model (the CPU plugin would otherwise pick bf16
# on CPUs that have it); bf16 asks for bf16 arithmetic, which CPUs without bf16 support run as f32.
INFERENCE_PRECISION = {"fp32": "f32", "fp16": "f32", "bf16": "bf16", "int8": "f32"}


class Engine(Protocol):
    def infer(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """uint8 [N, H, W, 3] -> anomaly maps [N, 1, H, W] and scores [N], float32."""
        ...


class OpenVINOEngine:
    """OpenVINO on CPU (or another device), with the precision hint the bundle asks for.

    mode "latency" runs one request on all cores; "throughput" lets OpenVINO split the cores into
    streams and offers as many asynchronous requests as it finds best (`requests`).
    """

    def __init__(self, bundle: Bundle, device: str = "CPU", threads: int | None = None, mode: str = "latency") -> None:
        import openvino as ov

        config = {"INFERENCE_PRECISION_HINT": INFERENCE_PRECISION[bundle.precision], "PERFORMANCE_HINT": mode.upper()}
        if threads:
            config["INFERENCE_NUM_THREADS"] = threads
        core = ov.Core()
        try:
            self.compiled = core.compile_model(core.read_model(str(bundle.model_file)), device, config)
        except RuntimeError as exc:
            raise AdedgeError(f"OpenVINO cannot load {bundle.model_file} on {device}: {str(exc).splitlines()[0]}") from None
        _check_input(bundle, [d.get_length() if d.is_static else -1 for d in self.compiled.input(0).get_partial_shape()])
        self.request = self.compiled.create_infer_request()
        self.outputs = [self.compiled.output(name) for name in OUTPUT_NAMES]
        self.requests = self.compiled.get_property("OPTIMAL_NUMBER_OF_INFER_REQUESTS")

    def infer(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        results = self.request.infer({0: batch})
        return results[self.outputs[0]], results[self.outputs[1]]

    def async_requests(self) -> list["AsyncRequest"]:
        """`requests` requests that run in the background, for throughput mode."""
        return [AsyncRequest(self.compiled.create_infer_request(), self.outputs) for _ in range(self.requests)]


class AsyncRequest:
    """One OpenVINO request run in the background: start(batch), later wait() for its outputs."""

    def __init__(self, request, outputs: list) -> None:
        self.request, self.outputs = request, outputs

    def start(self, batch: np.ndarray) -> None:
        self.request.start_async({0: batch})

    def wait(self) -> tuple[np.ndarray, np.ndarray, float]:
        """Anomaly maps, scores (copies: the request's buffers are reused) and the inference's ms."""
        self.request.wait()
        maps, scores = (self.request.get_tensor(output).data.copy() for output in self.outputs)
        return maps, scores, self.request.latency


class OnnxRuntimeEngine:
    """ONNX Runtime's CPU provider, for ONNX bundles."""

    def __init__(self, bundle: Bundle, threads: int | None = None) -> None:
        import onnxruntime as ort

        if bundle.metadata["format"] != "onnx":
            raise AdedgeError(f"onnxruntime runs ONNX bundles only; {bundle.path} is {bundle.metadata['format']}: export with --format onnx")
        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
        self.session = ort.InferenceSession(str(bundle.model_file), options, providers=["CPUExecutionProvider"])
        _check_input(bundle, [d if isinstance(d, int) else -1 for d in self.session.get_inputs()[0].shape])

    def infer(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        anomaly_map, score = self.session.run(list(OUTPUT_NAMES), {INPUT_NAME: batch})
        return anomaly_map, score


def _check_input(bundle: Bundle, shape: list[int]) -> None:
    """The graph's input must be [dynamic N, H, W, 3] with the H and W adedge.json promises."""
    expected = [-1, *bundle.input_size, 3]
    if shape != expected:
        raise AdedgeError(f"{bundle.model_file} takes input shape {shape}, but {bundle.path}/adedge.json says {expected}")


def create_engine(
    bundle: Bundle, backend: str = "openvino", device: str = "CPU", threads: int | None = None, mode: str = "latency"
) -> Engine:
    if mode not in MODES:
        raise AdedgeError(f"unknown mode {mode!r}; choose from {', '.join(MODES)}")
    if backend == "openvino":
        return OpenVINOEngine(bundle, device, threads, mode)
    if mode == "throughput":
        raise AdedgeError("throughput mode needs the openvino backend")
    if backend == "onnxruntime":
        return OnnxRuntimeEngine(bundle, threads)
    raise AdedgeError(f"unknown backend {backend!r}; choose from {', '.join(BACKENDS)}")
