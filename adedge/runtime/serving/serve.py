"""`adedge serve`: bundles behind the Open Inference Protocol (KServe v2) over HTTP and gRPC.

Built on KServe's Python model server library (`kserve`, Apache-2.0, a CNCF project): its data plane
is the reference implementation of the protocol that Triton and OpenVINO Model Server speak, with the
binary tensor extension the official clients use, FastAPI routes, protocol errors, Prometheus
metrics and uvicorn's graceful shutdown. adedge adds only the model (a bundle's graph, run as it is:
every output comes back, as from Triton or OVMS serving the same repository) and what a line-side
PC needs in front of it (`Gate`): an API key, a body size limit and version paths.
"""

import asyncio
import hmac
import itertools
import json
import logging
import os
import re
import signal
import socket
import sys
import threading
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

os.environ.setdefault("GRPC_VERBOSITY", "NONE")  # gRPC's C core would print its own lines (a port in use) beside ours
import grpc  # noqa: E402
import numpy as np  # noqa: E402
import uvicorn  # noqa: E402
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from prometheus_client import Counter

from adedge import defaults
from adedge.bundle import INPUT_NAME, MAX_BATCH, NAME_PATTERN, Bundle, model_name, read_bundle
from adedge.data.images import MAX_FRAME_PIXELS
from adedge.errors import AdedgeError, printable
from adedge.runtime.inference.engines import create_engine
from adedge.runtime.inference.verdict import DriftMonitor, OperatingPoint, frame_record, verdict_record
from adedge.runtime.line.delivery import Forwarder
from adedge.runtime.line.sinks import new_run_id

_argv, sys.argv = sys.argv, sys.argv[:1]  # KServe parses the command line when first imported: hide adedge's
try:
    from kserve import Model
    from kserve.errors import InvalidInput, ModelNotFound
    from kserve.model_repository import ModelRepository
    from kserve.model_server import app as kserve_app
    from kserve.protocol.dataplane import DataPlane
    from kserve.protocol.grpc.grpc_predict_v2_pb2_grpc import add_GRPCInferenceServiceServicer_to_server
    from kserve.protocol.grpc.interceptors import ExceptionToStatusInterceptor
    from kserve.protocol.grpc.servicer import InferenceServicer
    from kserve.protocol.infer_type import InferInput, InferOutput, InferRequest, InferResponse, RequestedOutput
    from kserve.protocol.model_repository_extension import ModelRepositoryExtension
    from kserve.protocol.rest.server import RESTServer
    from kserve.utils.numpy_codec import from_np_dtype
finally:
    sys.argv = _argv

# a request body of JSON numbers costs about 40 bytes of memory per frame value while KServe decodes it
# (60 MB of JSON took 1 GB): such bodies have a bound of their own (a full-HD frame as JSON is 25 MB), and
# one is decoded at a time
MAX_JSON_MB = 32
MIN_BODY_MB, MAX_BODY_MB = 1, 2047  # one VGA frame as a binary tensor; gRPC's message limit is a 32-bit count of bytes
MIN_API_KEY = 16
VERSION_PATH = re.compile(r"^/v2/models/([^/]+)/versions/([^/]+)(/.*)?$")
OPEN_PATHS = ("/v2/health/live", "/v2/health/ready")  # probes need no key
# all that is reachable: the protocol's server metadata, health, model metadata, model ready and
# infer routes, and Prometheus metrics; KServe's model repository (load, unload), v1, OpenAI and
# documentation routes are not served
SERVED_PATHS = re.compile(r"^(/v2(/health/(live|ready))?|/v2/models/[^/]+(/ready|/infer)?|/metrics)$")
GRPC_METHODS = frozenset(f"/inference.GRPCInferenceService/{name}" for name in
                         ("ServerLive", "ServerReady", "ServerMetadata", "ModelReady", "ModelMetadata", "ModelInfer"))
# served at /metrics beside KServe's own
VERDICTS = Counter("adedge_verdicts", "Served frames by verdict", ["model", "label"])
DRIFT_ALARMS = Counter("adedge_drift_alarms", "Times the drift alarm was raised", ["model"])
logger = logging.getLogger("adedge.serve")


@dataclass(frozen=True)
class Served:
    """A bundle and the name and version it is served under."""

    name: str
    version: str
    bundle: Bundle


def served_bundles(specs: list[str], key: bytes | None = None) -> list[Served]:
    """Read each BUNDLE or NAME=BUNDLE. A repository version folder (REPO/NAME/2) is served as NAME
    version 2; any other bundle as CATEGORY_MODEL (e.g. bottle_dfm) version 1 unless named."""
    served: list[Served] = []
    for spec in specs:
        name, _, path = spec.partition("=") if "=" in spec and not Path(spec).exists() else ("", "", spec)
        bundle = read_bundle(path, key)
        folder = Path(path).resolve()
        version = folder.name if folder.name.isdigit() else "1"
        if not name and folder.name.isdigit() and NAME_PATTERN.match(folder.parent.name):
            name = folder.parent.name
        name = model_name(name or None, bundle.metadata, option=f"the name in {spec!r}")
        if any(s.name == name for s in served):
            raise AdedgeError(f"two bundles would both be served as {name!r}; name them: NAME=BUNDLE")
        served.append(Served(name, version, bundle))
    if not served:
        raise AdedgeError("name at least one bundle to serve")
    return served


def check_options(api_key: str | None, max_body_mb: float) -> None:
    if api_key is not None and len(api_key) < MIN_API_KEY:
        raise AdedgeError(f"--api-key must be at least {MIN_API_KEY} characters, got {len(api_key)}")
    if not MIN_BODY_MB <= max_body_mb <= MAX_BODY_MB:  # NaN and inf too; below one frame every request would be refused
        raise AdedgeError(f"--max-body-mb must be from {MIN_BODY_MB} to {MAX_BODY_MB}, got {max_body_mb:g}")


class BundleModel(Model):
    """One bundle as a KServe model: the request's uint8 frames [N, H, W, 3] (any size) go to the
    graph as they are, and all its outputs come back: pred_score [N] (0..1, NG above 0.5),
    pred_label [N], anomaly_map and pred_mask [N, 1, h, w]. Each frame's verdict at POINT goes to the
    drift alarm, the metrics and PUBLISH."""

    def __init__(self, served: Served, backend: str, threads: int | None, mode: str, point: OperatingPoint,
                 publish: "Publisher | None" = None) -> None:
        super().__init__(served.name)
        self.version, self.metadata, self.point, self.publish = served.version, served.bundle.metadata, point, publish
        self.engine = create_engine(served.bundle, backend, "CPU", threads, mode)
        self.monitor, self.verdicts = DriftMonitor(point), threading.Lock()
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
        outputs = self.engine.infer_outputs(frames)
        score, label, anomaly_map, mask = self.metadata.outputs
        outputs[label], outputs[mask] = self.point.flagged(outputs[score]), self.point.flagged(outputs[anomaly_map])
        taken = time.time()
        with self.verdicts:  # requests run on several threads; the drift alarm and frame numbers go in order
            for score in outputs[self.metadata.outputs[0]].tolist():
                verdict = self.point.decide(score)
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


class Gate:
    """ASGI middleware in front of KServe's routes: the API key (health probes stay open), the body
    size limit (checked before the body is decoded), /versions/V paths for the versions served, and
    a request without the binary extension's header read as JSON (as Triton does; the official
    client sends such requests without a content type, which KServe alone refuses)."""

    def __init__(self, app, api_key: str | None, max_body: int, versions: dict[str, str]) -> None:
        self.app, self.api_key, self.max_body, self.versions = app, api_key, max_body, versions
        self.json_body = min(max_body, MAX_JSON_MB * 2**20)
        self.json_decoding = asyncio.Semaphore(1)

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        match = VERSION_PATH.match(scope["path"])
        if match:
            name, version, rest = match.group(1), match.group(2), match.group(3) or ""
            if name in self.versions and version != self.versions[name]:
                return await refuse(scope, send, 404, f"model {name} has no version {version}; version {self.versions[name]} is served")
            path = f"/v2/models/{name}{rest}"
            scope = dict(scope, path=path, raw_path=path.encode())
        if not SERVED_PATHS.match(scope["path"]):
            return await refuse(scope, send, 404, "not served: adedge serve answers the Open Inference Protocol's health, metadata, "
                                          "ready and infer routes and /metrics only")
        if self.api_key and scope["path"] not in OPEN_PATHS and not _key_matches(headers, self.api_key):
            return await refuse(scope, send, 401, "missing or wrong API key: send 'Authorization: Bearer KEY' or 'x-api-key: KEY'")
        # an oversized body is read to its end and dropped before the 413, so the client, still
        # sending, gets the answer rather than a reset connection
        binary = "inference-header-content-length" in headers
        limit = self.max_body if binary else self.json_body
        too_big, size, body, more = int(headers.get("content-length") or 0) > limit, 0, [], True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return None
            chunk, more = message.get("body", b""), message.get("more_body", False)
            size += len(chunk)
            too_big = too_big or size > limit
            if not too_big:
                body.append(chunk)
        if too_big:
            why = ("(--max-body-mb)" if binary else f"for JSON bodies (--max-body-mb, and at most {MAX_JSON_MB} MiB of JSON numbers: "
                   "send larger frames as binary tensors, as the official clients do with binary_data=True)")
            return await refuse(scope, send, 413, f"the request body exceeds the server's limit of {limit} bytes {why}")
        if binary or not size:
            return await self.app(scope, _replay(b"".join(body), receive), send)
        # all JSON, whatever (if any) content type it was sent with; decoded one at a time
        scope = dict(scope, headers=[(k, v) for k, v in scope["headers"] if k.lower() != b"content-type"] + [(b"content-type", b"application/json")])
        async with self.json_decoding:
            return await self.app(scope, _replay(b"".join(body), receive), send)



class GrpcGate(grpc.aio.ServerInterceptor):
    """gRPC's Gate: only GRPC_METHODS (the model repository's load and unload are refused), and with
    an API key, as metadata `authorization: Bearer KEY` or `x-api-key: KEY`, on all but the health RPCs."""

    OPEN = ("/inference.GRPCInferenceService/ServerLive", "/inference.GRPCInferenceService/ServerReady")

    def __init__(self, api_key: str | None) -> None:
        self.api_key = api_key

    async def intercept_service(self, continuation, details):
        if details.method not in GRPC_METHODS:
            return _grpc_refusal(details.method, grpc.StatusCode.UNIMPLEMENTED,
                                 "not served: adedge serve answers health, metadata, ready and infer only")
        headers = {key.lower(): value for key, value in details.invocation_metadata or ()}
        if not self.api_key or details.method in self.OPEN or _key_matches(headers, self.api_key):
            return await continuation(details)
        return _grpc_refusal(details.method, grpc.StatusCode.UNAUTHENTICATED,
                             "missing or wrong API key: send 'authorization: Bearer KEY' or 'x-api-key: KEY'")


def _grpc_refusal(method: str, code: grpc.StatusCode, message: str):
    """A handler that refuses METHOD with CODE: one warning line, as HTTP's refusals."""

    async def refused(request, context) -> None:
        logger.warning("refused gRPC %s: %s %s", method, code.name, message)
        await context.abort(code, message)

    return grpc.unary_unary_rpc_method_handler(refused)


def _key_matches(headers: dict[str, str], api_key: str) -> bool:
    given = headers.get("x-api-key") or headers.get("authorization", "").removeprefix("Bearer ").strip()
    return hmac.compare_digest(given.encode(), api_key.encode())


def grpc_server(dataplane: DataPlane, registry: ModelRepository, host: str, port: int, api_key: str | None, max_body: int):
    """KServe's gRPC servicer on HOST:PORT only (KServe's own gRPC server binds every interface),
    with its status mapping, the API key and the body limit."""
    interceptors = [ExceptionToStatusInterceptor(), GrpcGate(api_key)]
    server = grpc.aio.server(interceptors=interceptors, options=[("grpc.max_receive_message_length", max_body), ("grpc.max_send_message_length", 2**31 - 1)])
    add_GRPCInferenceServiceServicer_to_server(InferenceServicer(dataplane, ModelRepositoryExtension(registry)), server)
    address = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    try:
        bound = server.add_insecure_port(address)
    except RuntimeError:
        bound = 0
    if not bound:
        raise AdedgeError(f"cannot listen for gRPC on {address} (in use, or not an address of this PC)")
    return server, bound


def _replay(body: bytes, receive):
    """A receive() that hands the buffered body over once, then waits for the client as before."""
    sent = False

    async def replayed():
        nonlocal sent
        if sent:
            return await receive()
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return replayed


async def refuse(scope, send, status: int, error: str) -> None:
    """Refuse the request in SCOPE: one warning line in the log (what the client sent is escaped
    by OneLine), then `reply`."""
    logger.warning("refused %s %s: HTTP %d %s", scope.get("method", "?"), scope["path"], status, error)
    await reply(send, status, error)


async def reply(send, status: int, error: str) -> None:
    """A protocol error response: the status and {"error": ...}, as KServe, Triton and OVMS send them."""
    body = json.dumps({"error": error}).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


class OneLine(logging.Filter):
    """A request the server refused or failed is logged as one line, not a traceback
    (ADEDGE_DEBUG=1 keeps tracebacks); what a client sent (a model name, a path) has its control
    characters escaped, so no request can forge log lines or drive the operator's terminal."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and isinstance(record.exc_info[1], grpc.aio.AbortError):  # a refusal, logged where it was made
            return False
        if record.exc_info and os.environ.get("ADEDGE_DEBUG") != "1":
            exc = record.exc_info[1]
            refused = isinstance(exc, (InvalidInput, ModelNotFound))
            kind = "bad request" if refused else f"request failed ({type(exc).__name__})"
            record.msg, record.args, record.exc_info = f"{kind}: {' '.join(str(exc).split())}", (), None
            if refused:
                record.levelno, record.levelname = logging.WARNING, "WARNING"
        record.msg, record.args = printable(record.getMessage()), ()
        return True


def _configure_logging() -> None:
    """Warnings and errors of KServe and uvicorn as timestamped lines on stderr; their info chatter off."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    for name in ("kserve", "uvicorn", "uvicorn.error", logger.name):
        log = logging.getLogger(name)
        log.handlers, log.propagate = [handler], False
        log.setLevel(logging.WARNING)
        log.addFilter(OneLine())
    warnings.filterwarnings("ignore", message="ORJSONResponse is deprecated")


async def _invalid_body(_, exc: RequestValidationError) -> JSONResponse:
    """A body that is not an inference request (broken JSON, missing fields): 400 in the protocol's
    own error format, instead of FastAPI's 422 detail list."""
    problems = "; ".join(f"{e.get('msg')} at {'/'.join(map(str, e.get('loc', ())))}" for e in exc.errors()[:3])
    return JSONResponse(status_code=400, content={"error": f"not an inference request: {problems}"})


def _metadata_route(dataplane: DataPlane, registry: ModelRepository):
    """GET /v2/models/NAME: BundleModel.metadata_response (KServe's own route drops fields it does not know)."""

    async def model_metadata(model_name: str) -> JSONResponse:
        model = registry.get_model(model_name)
        if model is None:
            raise ModelNotFound(model_name)
        return JSONResponse(await model.metadata_response(dataplane))

    return model_metadata


WILDCARDS = ("0.0.0.0", "::")  # every network of this PC: only when spelled out


def listen(host: str, port: int) -> socket.socket:
    """The server's socket, bound before the models load, so a taken port is one clear line. HOST
    must be an address (an empty one, which would listen everywhere unannounced, is refused)."""
    if not host.strip() or host != host.strip():
        raise AdedgeError(f"--host must be an address of this PC (127.0.0.1, or 0.0.0.0 for every network), got {host!r}")
    try:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        return socket.create_server((host, port), family=family)
    except (OSError, OverflowError) as exc:
        reason = getattr(exc, "strerror", None) or str(exc)
        raise AdedgeError(f"cannot listen on {host}:{port}: {reason}") from None


def serve(
    served: list[Served],
    sock: socket.socket,
    api_key: str | None = None,
    max_body_mb: float = defaults.MAX_BODY_MB,
    backend: str = "openvino",
    threads: int | None = None,
    mode: str = "throughput",
    on_ready=None,
    forwarders: list[Forwarder] = (),
    grpc_port: int | None = None,
    threshold: float | None = None,
    check: float | None = None,
) -> None:
    """Serve the bundles over HTTP on SOCK (and gRPC on GRPC_PORT of the same host) until SIGTERM
    or Ctrl-C; requests in flight finish first. ON_READY(models, grpc port) is called once they are
    compiled, just before requests are taken; each served frame's verdict (at each bundle's cut-offs,
    THRESHOLD and CHECK moved as in predict) goes to FORWARDERS."""
    check_options(api_key, max_body_mb)
    _configure_logging()
    max_body = int(max_body_mb * 2**20)
    publish = Publisher(list(forwarders)) if forwarders else None
    points = [OperatingPoint.of_bundle(s.bundle.metadata.operating_point, threshold, check) for s in served]  # refused before compiling
    models = [BundleModel(s, backend, threads, mode, point, publish) for s, point in zip(served, points)]
    registry = ModelRepository()
    for model in models:
        model.enable_latency_logging = False
        registry.update(model)
    dataplane = BinaryDataPlane(registry)
    rest = RESTServer("kserve.model_server:app", dataplane, ModelRepositoryExtension(registry), sock.getsockname()[1], grace_period=10)
    kserve_app.add_exception_handler(RequestValidationError, _invalid_body)
    kserve_app.add_api_route("/v2/models/{model_name}", _metadata_route(dataplane, registry), methods=["GET"])  # before KServe's
    kserve_app.add_middleware(Gate, api_key=api_key, max_body=max_body, versions={m.name: m.version for m in models})
    host = sock.getsockname()[0]
    # uvicorn stops gracefully on SIGTERM/SIGINT, then raises the signal again for the handler it
    # found: make that one a no-op, so the stop ends in a normal return, not a kill
    previous = {s: signal.signal(s, lambda signum, frame: None) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        _event_loop_runner()(_run(rest, sock, dataplane, registry, host, grpc_port, api_key, max_body, models, on_ready))
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def _event_loop_runner():
    """uvloop's run where uvloop exists (it comes with uvicorn's extras, as for `uvicorn` itself):
    on Python's own event loop every request on a kept-alive connection waited 40 ms more (measured
    on Linux: a 404 took 44 ms instead of 1.2 ms)."""
    try:
        import uvloop
    except ModuleNotFoundError:  # Windows
        return asyncio.run
    return uvloop.run


async def _run(rest: RESTServer, sock: socket.socket, dataplane: DataPlane, registry: ModelRepository, host: str,
               grpc_port: int | None, api_key: str | None, max_body: int, models: list[BundleModel], on_ready) -> None:
    """HTTP (uvicorn) and, if asked, gRPC in one event loop; gRPC stops when uvicorn has."""
    grpc_running, bound = None, None
    if grpc_port is not None:
        grpc_running, bound = grpc_server(dataplane, registry, host, grpc_port, api_key, max_body)
        await grpc_running.start()
    rest.create_application()
    if on_ready is not None:
        on_ready(models, bound)
    try:
        await uvicorn.Server(rest.config).serve(sockets=[sock])
    finally:
        if grpc_running is not None:
            await grpc_running.stop(grace=10)
