"""What stands in front of the protocol: the HTTP gate (ASGI middleware) and the gRPC gate (an
interceptor). Each refuses what adedge does not serve, checks the API key and logs every refusal as
one warning line."""

import asyncio
import hmac
import json
import logging
import re

import grpc

# a request body of JSON numbers costs about 40 bytes of memory per frame value while KServe decodes it
# (60 MB of JSON took 1 GB): such bodies have a bound of their own (a full-HD frame as JSON is 25 MB), and
# one is decoded at a time
MAX_JSON_MB = 32
VERSION_PATH = re.compile(r"^/v2/models/([^/]+)/versions/([^/]+)(/.*)?$")
OPEN_PATHS = ("/v2/health/live", "/v2/health/ready")  # probes need no key
# all that is reachable: the protocol's server metadata, health, model metadata, model ready and
# infer routes, and Prometheus metrics; KServe's model repository (load, unload) is not served
SERVED_PATHS = re.compile(r"^(/v2(/health/(live|ready))?|/v2/models/[^/]+(/ready|/infer)?|/metrics)$")
GRPC_SERVICE = "/inference.GRPCInferenceService/"
GRPC_METHODS = frozenset(GRPC_SERVICE + name for name in
                         ("ServerLive", "ServerReady", "ServerMetadata", "ModelReady", "ModelMetadata", "ModelInfer"))
logger = logging.getLogger("adedge.serve")


class Gate:
    """ASGI middleware in front of the protocol's routes: the API key (health probes stay open), the body
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
        if self.api_key and scope["path"] not in OPEN_PATHS and not key_matches(headers, self.api_key):
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

    OPEN = (GRPC_SERVICE + "ServerLive", GRPC_SERVICE + "ServerReady")

    def __init__(self, api_key: str | None) -> None:
        self.api_key = api_key

    async def intercept_service(self, continuation, details):
        if details.method not in GRPC_METHODS:
            return _grpc_refusal(details.method, grpc.StatusCode.UNIMPLEMENTED,
                                 "not served: adedge serve answers health, metadata, ready and infer only")
        headers = {key.lower(): value for key, value in details.invocation_metadata or ()}
        if not self.api_key or details.method in self.OPEN or key_matches(headers, self.api_key):
            return await continuation(details)
        return _grpc_refusal(details.method, grpc.StatusCode.UNAUTHENTICATED,
                             "missing or wrong API key: send 'authorization: Bearer KEY' or 'x-api-key: KEY'")


def _grpc_refusal(method: str, code: grpc.StatusCode, message: str):
    """A handler that refuses METHOD with CODE: one warning line, as HTTP's refusals."""

    async def refused(request, context) -> None:
        logger.warning("refused gRPC %s: %s %s", method, code.name, message)
        await context.abort(code, message)

    return grpc.unary_unary_rpc_method_handler(refused)


def key_matches(headers: dict[str, str], api_key: str) -> bool:
    """Whether HEADERS carry API_KEY (compared in constant time)."""
    given = headers.get("x-api-key") or headers.get("authorization", "").removeprefix("Bearer ").strip()
    return hmac.compare_digest(given.encode(), api_key.encode())


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
    by the server's log filter), then the protocol's error response: the status and {"error": ...},
    as KServe, Triton and OVMS send them."""
    logger.warning("refused %s %s: HTTP %d %s", scope.get("method", "?"), scope["path"], status, error)
    body = json.dumps({"error": error}).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})
