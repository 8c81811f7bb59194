"""Inference engines: OpenVINO and ONNX Runtime behind one interface, synchronous and asynchronous.

Only the engine lives here; turning outputs into results lives in model.py, as in OpenVINO's Model
API. Each engine reads the adedge record embedded in its model file and has the bundle check it
before the graph is compiled.
"""

import os
import queue
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TYPE_CHECKING, Protocol

import numpy as np

from adedge.bundle import INPUT_NAME, Bundle
from adedge.choices import FORMAT_BACKENDS, INFERENCE_PRECISION, Backend, Mode, choice
from adedge.errors import AdedgeError

if TYPE_CHECKING:
    import openvino

OUTPUTS = ("pred_score", "anomaly_map")  # what the runtime reads of the graph's four outputs

Outputs = tuple[np.ndarray, np.ndarray]  # scores [N], anomaly maps [N, h, w]


class Request(Protocol):
    def start(self, batch: np.ndarray) -> None:
        """Begin inferring BATCH in the background."""
        ...

    def wait(self) -> tuple[np.ndarray, np.ndarray, float]:
        """Scores, maps and the inference's milliseconds of the batch last started."""
        ...


class Engine(Protocol):
    requests: int  # how many requests keep it busy in throughput mode

    def infer(self, batch: np.ndarray) -> Outputs:
        """uint8 frames [N, H, W, 3] -> scores [N] and anomaly maps [N, h, w], float32."""
        ...

    def async_requests(self) -> list[Request]:
        """`requests` requests that run in the background, for throughput mode."""
        ...

    def infer_outputs(self, batch: np.ndarray) -> dict[str, np.ndarray]:
        """Every output of the graph by name, as a server returns them; safe from several threads at once."""
        ...


# Batches of one shape in a row after which the engine compiles the graph for that shape: a camera
# sends one frame size, and with static shapes OpenVINO plans every node once instead of on every
# call (CFLOW 12-15 % faster on this project's Xeon, DFM 3 %; 0.1-0.5 s to compile, identical outputs),
# and resize steps that do nothing at that size drop out.
SPECIALISE_AFTER = 3


def drop_identity_resizes(model: "openvino.Model") -> None:
    """Bypass each unpadded Interpolate whose output has its input's static shape: it copies its input.

    A graph for any frame size must keep its resize steps (the antialiasing halvings and the last
    step to the model's size); once compiled for a frame of the model's own size they do nothing,
    at about 0.5 ms each on this project's Xeon."""
    for node in model.get_ordered_ops():
        if node.get_type_name() != "Interpolate":
            continue
        attributes, users = node.get_attributes(), [user.get_node().get_type_name() for user in node.output(0).get_target_inputs()]
        before, after = node.input_value(0).get_partial_shape(), node.output(0).get_partial_shape()
        # a Result keeps its output's name, so a resize that feeds one stays
        if before.is_static and before == after and not any(attributes["pads_begin"] + attributes["pads_end"]) and "Result" not in users:
            node.output(0).replace(node.input_value(0))
    model.validate_nodes_and_infer_types()


class OpenVINOEngine:
    """OpenVINO on CPU (or another device), with the precision hint the bundle asks for.

    mode "latency" runs one request on all cores; "throughput" lets OpenVINO split the cores into
    streams and offers as many asynchronous requests as it finds best. Beside the graph for any
    frame size it keeps one copy compiled for the batch shape that `infer`, the asynchronous
    requests and `serve`'s concurrent `infer_outputs` last saw SPECIALISE_AFTER times in a row.
    """

    def __init__(self, bundle: Bundle, device: str = "CPU", threads: int | None = None, mode: str = "latency") -> None:
        import openvino as ov

        config = {"INFERENCE_PRECISION_HINT": INFERENCE_PRECISION[bundle.precision], "PERFORMANCE_HINT": mode.upper()}
        if threads:
            config["INFERENCE_NUM_THREADS"] = threads
        core = ov.Core()
        try:
            model = core.read_model(str(bundle.model_file))
        except RuntimeError as exc:
            raise AdedgeError(f"OpenVINO cannot read {bundle.model_file}: {str(exc).splitlines()[0]}") from None
        bundle.check_embedded(_ov_embedded(model))
        try:
            self.compiled = core.compile_model(model, device, config)
        except RuntimeError as exc:
            raise AdedgeError(f"OpenVINO cannot load {bundle.model_file} on {device}: {str(exc).splitlines()[0]}") from None
        self.core, self.model, self.device, self.config = core, model, device, config
        self.requests = self.compiled.get_property("OPTIMAL_NUMBER_OF_INFER_REQUESTS")
        self.idle: queue.SimpleQueue = queue.SimpleQueue()  # (graph, request) for infer_outputs, one per concurrent caller
        self.lock = threading.Lock()  # serve's threads all count shapes and may compile
        self.shape, self.repeats = (), 0  # the batch shape of the last frames, and how many in a row
        self.specialised: tuple[tuple[int, ...], object] | None = None  # (shape, the graph compiled for it)
        self.request = OpenVINORequest(self)  # the one `infer` uses

    def infer(self, batch: np.ndarray) -> Outputs:
        self.request.start(batch)
        scores, maps, _ = self.request.wait()
        return scores, maps

    def compiled_for(self, shape: tuple[int, ...]):
        """The graph compiled for SHAPE if there is one (made once SHAPE came SPECIALISE_AFTER times
        in a row), else the graph for any shape."""
        with self.lock:
            if self.specialised is not None and self.specialised[0] == shape:
                return self.specialised[1]
            self.repeats = self.repeats + 1 if shape == self.shape else 1
            self.shape = shape
            if self.repeats < SPECIALISE_AFTER:
                return self.compiled
            fixed = self.model.clone()
            fixed.reshape({INPUT_NAME: list(shape)})
            drop_identity_resizes(fixed)
            try:
                compiled = self.core.compile_model(fixed, self.device, self.config)
            except RuntimeError:  # the graph for any shape still serves
                compiled = self.compiled
            self.specialised = (shape, compiled)
            return compiled

    def async_requests(self) -> list[Request]:
        return [OpenVINORequest(self) for _ in range(self.requests)]

    def infer_outputs(self, batch: np.ndarray) -> dict[str, np.ndarray]:
        compiled = self.compiled_for(batch.shape)
        try:
            graph, request = self.idle.get_nowait()
        except queue.Empty:
            graph = None
        if graph is not compiled:  # none idle, or one of a graph for another shape (dropped)
            graph, request = compiled, compiled.create_infer_request()
        try:
            results = request.infer({0: batch})  # copies the outputs out of the request's buffers
            return {output.get_any_name(): value for output, value in results.items()}
        finally:
            self.idle.put((graph, request))


def _ov_embedded(model) -> str | None:
    """The adedge record of an IR (its runtime info) or of an ONNX file OpenVINO read (metadata_props)."""
    for path in (["adedge"], ["framework", "adedge"]):
        if model.has_rt_info(path):
            return model.get_rt_info(path).astype(str)
    return None


class OpenVINORequest:
    """One OpenVINO request run in the background, on the graph its engine compiled for the batch's
    shape (or the graph for any shape)."""

    def __init__(self, engine: OpenVINOEngine) -> None:
        self.engine = engine
        self.compiled, self.request = engine.compiled, engine.compiled.create_infer_request()

    def start(self, batch: np.ndarray) -> None:
        compiled = self.engine.compiled_for(batch.shape)
        if compiled is not self.compiled:
            self.compiled, self.request = compiled, compiled.create_infer_request()
        self.request.start_async({0: batch})

    def wait(self) -> tuple[np.ndarray, np.ndarray, float]:
        self.request.wait()
        scores, maps = (self.request.get_tensor(name).data.copy() for name in OUTPUTS)  # buffers are reused
        return scores, maps[:, 0], self.request.latency


class OnnxRuntimeEngine:
    """ONNX Runtime's CPU provider, for ONNX bundles (the `onnx` extra)."""

    def __init__(self, bundle: Bundle, threads: int | None = None, mode: str = "latency") -> None:
        try:
            import onnxruntime as ort
        except ModuleNotFoundError:
            raise AdedgeError("the onnxruntime backend needs ONNX Runtime: pip install 'adedge[onnx]'") from None
        self.requests = 1 if mode == Mode.LATENCY else 2
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads or max(1, (os.cpu_count() or 1) // self.requests)
        self.session = ort.InferenceSession(str(bundle.model_file), options, providers=["CPUExecutionProvider"])
        bundle.check_embedded(self.session.get_modelmeta().custom_metadata_map.get("adedge"))
        self.pool: ThreadPoolExecutor | None = None

    def infer(self, batch: np.ndarray) -> Outputs:
        scores, maps = self.session.run(list(OUTPUTS), {INPUT_NAME: batch})
        return scores, maps[:, 0]

    def infer_outputs(self, batch: np.ndarray) -> dict[str, np.ndarray]:
        names = [output.name for output in self.session.get_outputs()]
        return dict(zip(names, self.session.run(names, {INPUT_NAME: batch})))

    def async_requests(self) -> list[Request]:
        if self.pool is None:
            self.pool = ThreadPoolExecutor(self.requests, thread_name_prefix="adedge-ort")  # ORT runs without the GIL
        return [ThreadRequest(self.pool, self.infer) for _ in range(self.requests)]


class ThreadRequest:
    """A synchronous engine's inference run on a worker thread."""

    def __init__(self, pool: ThreadPoolExecutor, infer) -> None:
        self.pool, self.infer = pool, infer
        self.future: Future | None = None

    def _timed(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
        start = time.perf_counter()
        scores, maps = self.infer(batch)
        return scores, maps, (time.perf_counter() - start) * 1000.0

    def start(self, batch: np.ndarray) -> None:
        self.future = self.pool.submit(self._timed, batch)

    def wait(self) -> tuple[np.ndarray, np.ndarray, float]:
        return self.future.result()


def create_engine(
    bundle: Bundle, backend: str = "openvino", device: str = "CPU", threads: int | None = None, mode: str = "latency"
) -> Engine:
    mode, backend = choice(Mode, mode, "--mode"), choice(Backend, backend, "--backend")
    if backend not in FORMAT_BACKENDS[bundle.metadata.format]:
        runs = " or ".join(f for f, backends in FORMAT_BACKENDS.items() if backend in backends)
        raise AdedgeError(f"{backend} runs {runs} bundles only; {bundle.path} is {bundle.metadata.format}: export with --format {runs}")
    if backend == Backend.OPENVINO:
        return OpenVINOEngine(bundle, device, threads, mode)
    return OnnxRuntimeEngine(bundle, threads, mode)
