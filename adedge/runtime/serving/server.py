"""`adedge serve`'s lifecycle: which bundles under which names, the listening socket, logging, and
HTTP (uvicorn) and gRPC in one event loop until SIGTERM or Ctrl-C, requests in flight finishing first.
What is served is adedge.runtime.serving.protocol; what guards it, adedge.runtime.serving.gates."""

import asyncio
import logging
import os
import signal
import socket
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path

import grpc
import uvicorn
from kserve.errors import InvalidInput, ModelNotFound
from kserve.protocol.grpc.interceptors import ExceptionToStatusInterceptor

from adedge import defaults
from adedge.bundle import NAME_PATTERN, BundleMetadata, model_name, read_bundle
from adedge.errors import AdedgeError, printable
from adedge.runtime.inference.model import Model
from adedge.runtime.inference.verdict import OperatingPoint
from adedge.runtime.line.delivery import Forwarder
from adedge.runtime.serving.gates import Gate, GrpcGate, logger
from adedge.runtime.serving.protocol import BundleModel, Protocol, Publisher

MIN_BODY_MB, MAX_BODY_MB = 1, 2047  # one VGA frame as a binary tensor; gRPC's message limit is a 32-bit count of bytes
MIN_API_KEY = 16
GRACE_S = 10  # how long requests in flight may take to finish at a stop
KEEP_ALIVE_S = 65  # an idle client connection stays open this long (KServe's default; uvicorn's own is 5 s)
WILDCARDS = ("0.0.0.0", "::")  # every network of this PC: only when spelled out


@dataclass(frozen=True)
class Served:
    """A bundle folder and the name and version it is served under."""

    name: str
    version: str
    path: Path
    metadata: BundleMetadata


def served_bundles(specs: list[str], key: bytes | None = None) -> list[Served]:
    """Read each BUNDLE or NAME=BUNDLE. A repository version folder (REPO/NAME/2) is served as NAME
    version 2; any other bundle as CATEGORY_MODEL (e.g. bottle_dfm) version 1 unless named."""
    served: list[Served] = []
    for spec in specs:
        name, _, path = spec.partition("=") if "=" in spec and not Path(spec).exists() else ("", "", spec)
        metadata = read_bundle(path, key).metadata
        folder = Path(path).resolve()
        version = folder.name if folder.name.isdigit() else "1"
        if not name and folder.name.isdigit() and NAME_PATTERN.match(folder.parent.name):
            name = folder.parent.name
        name = model_name(name or None, metadata, option=f"the name in {spec!r}")
        if any(s.name == name for s in served):
            raise AdedgeError(f"two bundles would both be served as {name!r}; name them: NAME=BUNDLE")
        served.append(Served(name, version, folder, metadata))
    if not served:
        raise AdedgeError("name at least one bundle to serve")
    return served


def check_options(api_key: str | None, max_body_mb: float) -> None:
    if api_key is not None and len(api_key) < MIN_API_KEY:
        raise AdedgeError(f"--api-key must be at least {MIN_API_KEY} characters, got {len(api_key)}")
    if not MIN_BODY_MB <= max_body_mb <= MAX_BODY_MB:  # NaN and inf too; below one frame every request would be refused
        raise AdedgeError(f"--max-body-mb must be from {MIN_BODY_MB} to {MAX_BODY_MB}, got {max_body_mb:g}")


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
    key: bytes | None = None,
) -> None:
    """Serve the bundles over HTTP on SOCK (and gRPC on GRPC_PORT of the same host) until SIGTERM
    or Ctrl-C; requests in flight finish first. ON_READY(models, grpc port) is called once they are
    compiled, just before requests are taken; each served frame's verdict (at each bundle's cut-offs,
    THRESHOLD and CHECK moved as in predict) goes to FORWARDERS."""
    check_options(api_key, max_body_mb)
    for s in served:  # every bundle's cut-offs are checked before any is compiled
        OperatingPoint.of_bundle(s.metadata.operating_point, threshold, check)
    _configure_logging()
    max_body = int(max_body_mb * 2**20)
    publish = Publisher(list(forwarders)) if forwarders else None
    models = [BundleModel(s.name, s.version, Model.load(s.path, backend, "CPU", threads, mode, key, threshold, check), publish)
              for s in served]
    protocol = Protocol(models)
    app = Gate(protocol.http_app(), api_key=api_key, max_body=max_body, versions={m.name: m.version for m in models})
    config = uvicorn.Config(app, log_config=None, timeout_graceful_shutdown=GRACE_S,
                            timeout_keep_alive=KEEP_ALIVE_S, lifespan="off")
    # uvicorn stops gracefully on SIGTERM/SIGINT, then raises the signal again for the handler it
    # found: make that one a no-op, so the stop ends in a normal return, not a kill
    previous = {s: signal.signal(s, lambda signum, frame: None) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        _event_loop_runner()(_run(config, sock, protocol, grpc_port, api_key, max_body, on_ready))
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def grpc_server(protocol: Protocol, host: str, port: int, api_key: str | None, max_body: int) -> tuple[grpc.aio.Server, int]:
    """The protocol's gRPC servicer on HOST:PORT only (KServe's own gRPC server binds every interface),
    with KServe's status mapping, the API key and the body limit."""
    interceptors = [ExceptionToStatusInterceptor(), GrpcGate(api_key)]
    server = grpc.aio.server(interceptors=interceptors, options=[("grpc.max_receive_message_length", max_body), ("grpc.max_send_message_length", 2**31 - 1)])
    protocol.add_grpc_servicer(server)
    address = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    try:
        bound = server.add_insecure_port(address)
    except RuntimeError:
        bound = 0
    if not bound:
        raise AdedgeError(f"cannot listen for gRPC on {address} (in use, or not an address of this PC)")
    return server, bound


def _event_loop_runner():
    """uvloop's run where uvloop exists (it comes with uvicorn's extras, as for `uvicorn` itself):
    on Python's own event loop every request on a kept-alive connection waited 40 ms more (measured
    on Linux: a 404 took 44 ms instead of 1.2 ms)."""
    try:
        import uvloop
    except ModuleNotFoundError:  # Windows
        return asyncio.run
    return uvloop.run


async def _run(config: uvicorn.Config, sock: socket.socket, protocol: Protocol, grpc_port: int | None,
               api_key: str | None, max_body: int, on_ready) -> None:
    """HTTP (uvicorn) and, if asked, gRPC in one event loop; gRPC stops when uvicorn has."""
    grpc_running, bound = None, None
    if grpc_port is not None:
        grpc_running, bound = grpc_server(protocol, sock.getsockname()[0], grpc_port, api_key, max_body)
        await grpc_running.start()
    if on_ready is not None:
        on_ready(protocol.models, bound)
    try:
        await uvicorn.Server(config).serve(sockets=[sock])
    finally:
        if grpc_running is not None:
            await grpc_running.stop(grace=GRACE_S)


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
