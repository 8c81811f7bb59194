"""The Open Inference Protocol (KServe v2) adapter: a bundle as a KServe model, binary request
bodies kept as bytes, and an application of adedge's own that carries only the protocol's routes.

Built on KServe's Python model server library (`kserve`, Apache-2.0, a CNCF project): its data plane
is the reference implementation of the protocol that Triton and OpenVINO Model Server speak, with the
binary tensor extension the official clients use, protocol errors and Prometheus metrics. KServe's
own application object and server are not used: nothing of KServe's module state is changed.
KServe reads the process's command line for its own server's options when first imported; the only
option of `adedge serve` it recognises is --mode (as an abbreviation of its --model_name, unused here).
"""

import asyncio
import itertools
import json
import logging
import threading
import time

import numpy as np
from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, ORJSONResponse
from kserve import Model as KServeModel
from kserve.errors import (
    InferenceError,
    InvalidInput,
    ModelNotFound,
    ModelNotReady,
    generic_exception_handler,
    inference_error_handler,
    invalid_input_handler,
    model_not_found_handler,
    model_not_ready_handler,
)
from kserve.model_repository import ModelRepository
from kserve.protocol.dataplane import DataPlane
from kserve.protocol.grpc.grpc_predict_v2_pb2_grpc import add_GRPCInferenceServiceServicer_to_server
from kserve.protocol.grpc.servicer import InferenceServicer
from kserve.protocol.infer_type import InferInput, InferOutput, InferRequest, InferResponse, RequestedOutput
from kserve.protocol.model_repository_extension import ModelRepositoryExtension
from kserve.protocol.rest.server import metrics_handler
from kserve.protocol.rest.v2_endpoints import register_v2_endpoints
from kserve.utils.numpy_codec import from_np_dtype
from prometheus_client import Counter

from adedge.bundle import INPUT_NAME, MAX_BATCH
from adedge.data.images import MAX_FRAME_PIXELS
from adedge.runtime.inference.model import Model
from adedge.runtime.inference.verdict import DriftMonitor, frame_record, verdict_record
from adedge.runtime.line.delivery import Forwarder
from adedge.runtime.line.sinks import new_run_id

# served at /metrics beside KServe's own
VERDICTS = Counter("adedge_verdicts", "Served frames by verdict", ["model", "label"])
DRIFT_ALARMS = Counter("adedge_drift_alarms", "Times the drift alarm was raised", ["model"])
logger = logging.getLogger("adedge.serve")


class Publisher:
    """Each served frame's record to the line sinks (MQTT, webhook), numbered like a stream's:
    (run, frame) is unique, `run` naming this server's start."""

    def __init__(self, forwarders: list[Forwarder]) -> None:
        self.forwarders, self.run, self.frames = forwarders, new_run_id(), itertools.count()

    def header(self, model: str, taken: float) -> dict:
        """The next frame's record header (adedge.runtime.inference.verdict.frame_record)."""
        return frame_record(self.run, next(self.frames), taken, model)

    def __call__(self, record: dict) -> None:
        for forwarder in self.forwarders:
            forwarder.put(record)


class BundleModel(KServeModel):
    """A loaded bundle (`adedge.runtime.Model`) as a KServe model: the request's uint8 frames
    [N, H, W, 3] (any size) go to the graph as they are, and all its outputs come back: pred_score
    [N] (0..1, NG above 0.5), pred_label [N], anomaly_map and pred_mask [N, 1, h, w]. Each frame's
    verdict at the model's operating point goes to the drift alarm, the metrics and PUBLISH."""

    def __init__(self, name: str, version: str, model: Model, publish: Publisher | None = None) -> None:
        super().__init__(name)
        self.version, self.model, self.publish = version, model, publish
        self.metadata, self.point = model.metadata, model.point
        self.monitor, self.verdicts = DriftMonitor(self.point), threading.Lock()
        self.enable_latency_logging = False
        self.ready = True

    def get_input_types(self) -> list[dict]:
        return [{"name": INPUT_NAME, "datatype": "UINT8", "shape": [-1, -1, -1, 3]}]

    def get_output_types(self) -> list[dict]:
        score, label, anomaly_map, mask = self.metadata.outputs
        height, width = self.metadata.input_size
        return [
            {"name": score, "datatype": "FP32", "shape": [-1]},
            {"name": label, "datatype": "BOOL", "shape": [-1]},
            {"name": anomaly_map, "datatype": "FP32", "shape": [-1, 1, height, width]},
            {"name": mask, "datatype": "BOOL", "shape": [-1, 1, height, width]},
        ]

    def frames(self, request: object) -> np.ndarray:
        """The request's frames, or InvalidInput (HTTP 400) saying what a valid request holds."""
        expected = f"model {self.name} takes one input {INPUT_NAME!r}: UINT8 RGB frames [N, H, W, 3], N from 1 to {MAX_BATCH}"
        if not isinstance(request, InferRequest):
            raise InvalidInput(f"adedge serves the Open Inference Protocol (v2): POST /v2/models/{self.name}/infer; {expected}")
        if len(request.inputs) != 1 or request.inputs[0].name != INPUT_NAME:
            raise InvalidInput(f"{expected}; got inputs {[i.name for i in request.inputs]}")
        tensor = request.inputs[0]
        shape = [int(v) for v in tensor.shape]
        if tensor.datatype != "UINT8":
            raise InvalidInput(f"{expected}; got datatype {tensor.datatype}")
        if len(shape) != 4 or shape[3] != 3 or not 1 <= shape[0] <= MAX_BATCH or min(shape) < 1:
            raise InvalidInput(f"{expected}; got shape {shape}")
        if shape[1] * shape[2] > MAX_FRAME_PIXELS:
            raise InvalidInput(f"frames of {shape[2]}x{shape[1]} exceed {MAX_FRAME_PIXELS // 1_000_000} megapixels")
        try:
            return np.ascontiguousarray(tensor.as_numpy())
        except (ValueError, TypeError, OverflowError) as exc:
            raise InvalidInput(f"input {INPUT_NAME!r} does not hold shape {shape} of UINT8 values: {exc}") from None

    def _infer(self, frames: np.ndarray) -> dict[str, np.ndarray]:
        """The graph's outputs, with pred_label and pred_mask at the cut-offs served (the graph's
        are at the exported 0.5): the client gets the verdict every record states."""
        outputs = self.model.engine.infer_outputs(frames)
        score, label, anomaly_map, mask = self.metadata.outputs
        outputs[label], outputs[mask] = self.point.flagged(outputs[score]), self.point.flagged(outputs[anomaly_map])
        taken = time.time()
        with self.verdicts:  # requests run on several threads; the drift alarm and frame numbers go in order
            for value in outputs[score].tolist():
                verdict = self.point.decide(value)
                drift = self.monitor.update(verdict)
                VERDICTS.labels(self.name, verdict.label.value).inc()
                if self.monitor.raised:
                    DRIFT_ALARMS.labels(self.name).inc()
                    logger.warning("drift alarm for %s: %s", self.name, drift)
                if self.publish is not None:
                    self.publish(verdict_record(self.publish.header(self.name, taken), verdict, self.point, drift, version=self.version))
        return outputs

    async def metadata_response(self, dataplane: DataPlane) -> dict:
        """KServe's model metadata, with the cut-offs served as `parameters` (under Model API's
        names): a client learns a moved --threshold or --check (gRPC's metadata message has no such field)."""
        return await dataplane.model_metadata(self.name) | {"parameters": self.point.model_info()}

    async def predict(self, payload: InferRequest, headers: dict | None = None) -> InferResponse:
        if getattr(payload, "model_version", None) and payload.model_version != self.version:  # gRPC's version field
            raise ModelNotFound(f"{self.name} version {payload.model_version}")
        frames = self.frames(payload)
        outputs = await asyncio.get_running_loop().run_in_executor(None, self._infer, frames)
        return InferResponse(
            response_id=payload.id or "",
            model_name=self.name,
            model_version=self.version,
            infer_outputs=[_output(name, value) for name, value in outputs.items()],
            use_binary_outputs=payload.use_binary_outputs,
            requested_outputs=payload.request_outputs,
        )


def _output(name: str, value: np.ndarray) -> InferOutput:
    """An output held as bytes: the encoders turn it into JSON numbers only where a REST client asks."""
    output = InferOutput(name, list(value.shape), from_np_dtype(value.dtype))
    output.set_data_from_numpy(value, binary_data=True)
    return output


class BinaryDataPlane(DataPlane):
    """KServe's data plane, except that a tensor sent in binary (the protocol's binary extension,
    which the official clients use) stays bytes until the model reads it: KServe 0.21 decodes each
    one into a Python list of numbers first, about 2 s for one 900x900 frame on a 2-core PC."""

    def decode_inference_request(self, body, headers: dict, model_name: str) -> InferRequest:
        length = headers.get("inference-header-content-length")
        if not isinstance(body, bytes) or length is None:
            return super().decode_inference_request(body, headers, model_name)
        return binary_request(body, length, model_name)


def binary_request(body: bytes, header_length: str, model_name: str) -> InferRequest:
    """The InferRequest of a binary-extension body: a JSON header of HEADER_LENGTH bytes, then each
    binary input's bytes in order (binary_data_size of them)."""
    try:
        offset = int(header_length)
        if not 0 < offset <= len(body):
            raise ValueError(f"Inference-Header-Content-Length {offset} does not fit the {len(body)}-byte body")
        header = json.loads(body[:offset])
        inputs, raw = [], []
        for spec in header["inputs"]:
            parameters = spec.get("parameters") or {}
            inputs.append(InferInput(spec["name"], spec["shape"], spec["datatype"], data=spec.get("data"), parameters=parameters))
            size = parameters.get("binary_data_size")
            if size is not None and not 0 <= int(size) <= len(body) - offset:
                raise ValueError(f"input {spec['name']!r} claims {size} bytes; the body holds {len(body) - offset} more")
            raw.append(None if size is None else body[offset : offset + int(size)])
            offset += int(size or 0)
        outputs = [RequestedOutput(o["name"], o.get("parameters")) for o in header.get("outputs") or []] or None
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise InvalidInput(f"not an inference request: {type(exc).__name__}: {exc}") from None
    return InferRequest(model_name, inputs, header.get("id"), raw_inputs=raw, parameters=header.get("parameters"), request_outputs=outputs)


class Protocol:
    """The served models behind KServe's data plane, as an HTTP application and a gRPC servicer."""

    def __init__(self, models: list[BundleModel]) -> None:
        self.models, self.registry = models, ModelRepository()
        for model in models:
            self.registry.update(model)
        self.dataplane = BinaryDataPlane(self.registry)

    def http_app(self) -> FastAPI:
        """A FastAPI application of the protocol's v2 routes, /metrics, KServe's protocol errors and
        a 400 (not FastAPI's 422) for a body that is no inference request."""
        app = FastAPI(title="adedge", docs_url=None, redoc_url=None, openapi_url=None, default_response_class=ORJSONResponse)
        app.add_api_route("/v2/models/{model_name}", self._model_metadata, methods=["GET"])  # before KServe's, which drops fields
        app.add_api_route("/metrics", metrics_handler, methods=["GET"])
        register_v2_endpoints(app, self.dataplane, ModelRepositoryExtension(self.registry))
        for error, handler in ((InvalidInput, invalid_input_handler), (InferenceError, inference_error_handler),
                               (ModelNotFound, model_not_found_handler), (ModelNotReady, model_not_ready_handler),
                               (RequestValidationError, _invalid_body), (Exception, generic_exception_handler)):
            app.add_exception_handler(error, handler)
        return app

    def add_grpc_servicer(self, server) -> None:
        """KServe's gRPC servicer of the protocol on SERVER."""
        add_GRPCInferenceServiceServicer_to_server(InferenceServicer(self.dataplane, ModelRepositoryExtension(self.registry)), server)

    async def _model_metadata(self, model_name: str) -> JSONResponse:
        """GET /v2/models/NAME: BundleModel.metadata_response."""
        model = self.registry.get_model(model_name)
        if model is None:
            raise ModelNotFound(model_name)
        return JSONResponse(await model.metadata_response(self.dataplane))


async def _invalid_body(_, exc: RequestValidationError) -> JSONResponse:
    """A body that is not an inference request (broken JSON, missing fields): 400 in the protocol's
    own error format, instead of FastAPI's 422 detail list."""
    problems = "; ".join(f"{e.get('msg')} at {'/'.join(map(str, e.get('loc', ())))}" for e in exc.errors()[:3])
    return JSONResponse(status_code=400, content={"error": f"not an inference request: {problems}"})
