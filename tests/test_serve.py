"""`adedge serve` through the official Triton client: the same scores as `adedge predict`, protocol
errors for bad requests (and the server keeps serving), the API key, versions, clean SIGTERM."""

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import tritonclient.grpc as triton_grpc
import tritonclient.http as triton
from line_peers import Endpoint
from tritonclient.utils import InferenceServerException

from adedge.data.images import load_image, save_image
from adedge.runtime import Model

API_KEY = "k" * 24


class Server:
    """`adedge serve ARGS` in its own process on a free port; stop() sends SIGTERM."""

    def __init__(self, *args, env: dict | None = None) -> None:
        code = "import sys; from adedge.cli import main; sys.exit(main(sys.argv[1:]))"
        self.process = subprocess.Popen(
            [sys.executable, "-c", code, "serve", *map(str, args), "--port", "0", "--grpc-port", "0"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env={**os.environ, **(env or {})},
        )
        self.lines: list[str] = []
        self.models: dict[str, str] = {}  # name: version, as the server announced them
        for line in self.process.stdout:
            self.lines.append(line)
            if served := re.match(r"serving (\S+) version (\S+) ", line):
                self.models[served.group(1)] = served.group(2)
            if match := re.match(r"listening on http://([\d.]+:\d+) and gRPC on ([\d.]+:\d+)", line):
                self.address, self.grpc_address = match.group(1), match.group(2)
                break
        else:
            raise AssertionError(f"the server did not start: {self.process.stderr.read()}")

    def client(self) -> triton.InferenceServerClient:
        return triton.InferenceServerClient(self.address, network_timeout=120)

    def grpc_client(self) -> triton_grpc.InferenceServerClient:
        return triton_grpc.InferenceServerClient(self.grpc_address)

    def post(self, path: str, body: bytes, headers: dict | None = None) -> tuple[int, dict]:
        request = urllib.request.Request(f"http://{self.address}{path}", data=body, headers={"Content-Type": "application/json", **(headers or {})})
        try:
            with urllib.request.urlopen(request, timeout=120) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as error:
            return error.code, json.loads(error.read())

    def stop(self) -> tuple[int, str, str]:
        self.process.send_signal(signal.SIGTERM)
        out, err = self.process.communicate(timeout=60)
        return self.process.returncode, "".join(self.lines) + out, err


def _frames_input(frames: np.ndarray, binary: bool = True) -> triton.InferInput:
    tensor = triton.InferInput("image", list(frames.shape), "UINT8")
    tensor.set_data_from_numpy(frames, binary_data=binary)
    return tensor


@pytest.fixture(scope="module")
def served(small_model, synthetic, tmp_path_factory):
    """One server with the small bundle twice: as itself (version 1) and as a repository's version 3."""
    _, bundle = small_model
    repo = tmp_path_factory.mktemp("repo")
    shutil.copytree(bundle, repo / "line2" / "3")
    server = Server(bundle, repo / "line2" / "3")
    assert server.models == {"plate_dfm": "1", "line2": "3"}  # CATEGORY_MODEL, and the repository's name and version
    yield server, bundle, synthetic
    code, _, err = server.stop()
    assert code == 0 and "Traceback" not in err, err  # every bad request above was one log line
    assert "WARNING bad request" in err and "ERROR" not in err, err
    for refusal in ("refused POST /v2/models/plate_dfm/infer: HTTP 413", "refused POST /v2/repository/index: HTTP 404",
                    "refused GET /docs: HTTP 404", "refused gRPC /inference.GRPCInferenceService/RepositoryModelUnload: UNIMPLEMENTED"):
        assert f"WARNING {refusal}" in err, (refusal, err)


def _images(synthetic: Path) -> list[np.ndarray]:
    paths = sorted((synthetic / "test").rglob("*.png"))
    paths = [p for p in paths if "ground_truth" not in p.parts]
    images = [load_image(p) for p in paths[:: max(1, len(paths) // 4)][:4]]
    return images + [np.ascontiguousarray(images[0][:45, :71])]  # and a frame of an odd size


def test_triton_client_gets_the_scores_of_predict(served):
    server, bundle, synthetic = served
    client = server.client()
    assert client.is_server_live() and client.is_server_ready()
    assert client.is_model_ready("plate_dfm") and client.is_model_ready("line2")
    images = _images(synthetic)
    reference = Model.load(bundle).predict_batch(images)
    for image, expected in zip(images, reference):
        for name in ("plate_dfm", "line2"):
            result = client.infer(name, [_frames_input(image[None])])
            assert abs(float(result.as_numpy("pred_score")[0]) - expected.score) < 1e-5
            assert bool(result.as_numpy("pred_label")[0]) == expected.anomalous
            assert result.as_numpy("anomaly_map").shape == (1, 1, *Model.load(bundle).input_size)
    # a batch of frames of one size gives each frame its own score (as JSON too)
    same = np.stack([images[0], images[1], images[0]])
    result = client.infer("plate_dfm", [_frames_input(same, binary=False)], outputs=[triton.InferRequestedOutput("pred_score", binary_data=False)])
    assert np.allclose(result.as_numpy("pred_score"), [reference[0].score, reference[1].score, reference[0].score], atol=1e-5)


def test_grpc_gets_the_same_scores_and_errors(served):
    server, bundle, synthetic = served
    client = server.grpc_client()
    assert client.is_server_live() and client.is_model_ready("line2")
    images = _images(synthetic)
    reference = Model.load(bundle).predict_batch(images[:2])
    for image, expected in zip(images, reference):
        tensor = triton_grpc.InferInput("image", [1, *image.shape], "UINT8").set_data_from_numpy(image[None])
        result = client.infer("plate_dfm", [tensor])
        assert abs(float(result.as_numpy("pred_score")[0]) - expected.score) < 1e-5
        assert client.infer("line2", [tensor], model_version="3").as_numpy("pred_label")[0] == expected.anomalous
    with pytest.raises(InferenceServerException, match="NOT_FOUND"):
        client.infer("line2", [tensor], model_version="1")
    floats = triton_grpc.InferInput("image", [1, 4, 4, 3], "FP32").set_data_from_numpy(np.zeros((1, 4, 4, 3), np.float32))
    with pytest.raises(InferenceServerException, match="INVALID_ARGUMENT.*FP32"):
        client.infer("plate_dfm", [floats])
    with pytest.raises(InferenceServerException, match="NOT_FOUND"):
        client.infer("nope", [tensor])


def test_metadata_names_the_graphs_outputs_and_versions(served):
    server, bundle, _ = served
    client = server.client()
    metadata = client.get_model_metadata("plate_dfm")
    assert [o["name"] for o in metadata["outputs"]] == ["pred_score", "pred_label", "anomaly_map", "pred_mask"]
    assert metadata["inputs"] == [{"name": "image", "datatype": "UINT8", "shape": [-1, -1, -1, 3]}]
    image = _images(served[2])[0][None]
    assert client.infer("line2", [_frames_input(image)], model_version="3").get_response()["model_version"] == "3"
    with pytest.raises(InferenceServerException, match="no version 1"):
        client.infer("line2", [_frames_input(image)], model_version="1")


BAD_BODIES = {
    "broken JSON": (b"{", 400, "not an inference request"),
    "no inputs": (b'{"inputs": []}', 400, "takes one input"),
    "float frames": (b'{"inputs": [{"name": "image", "shape": [1,1,1,3], "datatype": "FP32", "data": [1,2,3]}]}', 400, "FP32"),
    "grey frames": (b'{"inputs": [{"name": "image", "shape": [1,2,2], "datatype": "UINT8", "data": [1,2,3,4]}]}', 400, "shape"),
    "too few values": (b'{"inputs": [{"name": "image", "shape": [1,2,2,3], "datatype": "UINT8", "data": [1,2,3]}]}', 400, "does not hold"),
    "value over 255": (b'{"inputs": [{"name": "image", "shape": [1,1,1,3], "datatype": "UINT8", "data": [1,2,300]}]}', 400, "does not hold"),
    "nine frames": (b'{"inputs": [{"name": "image", "shape": [9,1,1,3], "datatype": "UINT8", "data": [' + b",".join([b"1"] * 27) + b"]}]}", 400, "N from 1 to 8"),
    "wrong input name": (b'{"inputs": [{"name": "x", "shape": [1,1,1,3], "datatype": "UINT8", "data": [1,2,3]}]}', 400, "takes one input"),
}


@pytest.mark.parametrize("case", sorted(BAD_BODIES))
def test_bad_requests_get_protocol_errors(served, case):
    server, _, _ = served
    body, status, expected = BAD_BODIES[case]
    code, reply = server.post("/v2/models/plate_dfm/infer", body)
    assert (code, expected in reply["error"]) == (status, True), reply


_HEADER = b'{"inputs": [{"name": "image", "shape": [1,2,2,3], "datatype": "UINT8", "parameters": {"binary_data_size": 12}}]}'
BAD_BINARY = {  # the binary extension: a JSON header of Inference-Header-Content-Length bytes, then the tensors
    "header length past the body": (_HEADER + bytes(12), len(_HEADER) + 13, "does not fit"),
    "tensor past the body": (_HEADER + bytes(5), len(_HEADER), "claims 12 bytes"),
    "header not JSON": (b"[[[" + bytes(12), 3, "not an inference request"),
    "tensor shorter than its shape": (_HEADER.replace(b"12}", b"6}") + bytes(6), len(_HEADER) - 1, "does not hold"),
}


@pytest.mark.parametrize("case", sorted(BAD_BINARY))
def test_bad_binary_requests_get_protocol_errors(served, case):
    server, _, _ = served
    body, header_length, expected = BAD_BINARY[case]
    code, reply = server.post("/v2/models/plate_dfm/infer", body, {"Inference-Header-Content-Length": str(header_length), "Content-Type": "application/octet-stream"})
    assert (code, expected in reply["error"]) == (400, True), reply


def test_the_server_refuses_unknown_models_and_oversized_bodies_and_keeps_serving(served):
    server, _, synthetic = served
    code, reply = server.post("/v2/models/nope/infer", BAD_BODIES["float frames"][0].replace(b"FP32", b"UINT8"))
    assert code == 404 and "nope" in reply["error"]
    code, reply = server.post("/v2/models/plate_dfm/infer", b" " * (64 * 2**20 + 1))
    assert code == 413 and "--max-body-mb" in reply["error"]
    code, reply = server.post("/v2/models/plate_dfm/infer", b" " * (32 * 2**20 + 1))  # JSON: a bound of its own
    assert code == 413 and "as binary tensors" in reply["error"]
    client = server.client()
    with pytest.raises(InferenceServerException, match="UINT8"):
        client.infer("plate_dfm", [triton.InferInput("image", [1, 4, 4, 3], "FP32").set_data_from_numpy(np.zeros((1, 4, 4, 3), np.float32))])
    image = _images(synthetic)[0][None]
    assert client.infer("plate_dfm", [_frames_input(image)]).as_numpy("pred_score").shape == (1,)


def _get(server: Server, path: str) -> int:
    try:
        with urllib.request.urlopen(f"http://{server.address}{path}", timeout=60) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code


def test_only_the_protocols_serving_routes_are_reachable(served):
    server, _, _ = served
    for path in ("/v2/repository/models/plate_dfm/unload", "/v2/repository/models/plate_dfm/load", "/v2/repository/index"):
        assert server.post(path, b"{}")[0] == 404, path
    for path in ("/docs", "/openapi.json", "/v1/models", "/v1/models/plate_dfm", "/openai/v1/models", "/"):
        assert _get(server, path) == 404, path
    for path in ("/v2", "/v2/health/live", "/v2/health/ready", "/v2/models/plate_dfm", "/v2/models/plate_dfm/ready", "/metrics"):
        assert _get(server, path) == 200, path
    with pytest.raises(InferenceServerException, match="UNIMPLEMENTED"):
        server.grpc_client().unload_model("plate_dfm")
    assert server.client().is_model_ready("plate_dfm") and server.grpc_client().is_model_ready("plate_dfm")  # still loaded
    metrics = urllib.request.urlopen(f"http://{server.address}/metrics", timeout=60).read().decode()
    assert "adedge_verdicts_total" in metrics


def test_api_key_guards_everything_but_health(small_model):
    _, bundle = small_model
    server = Server(bundle, env={"ADEDGE_API_KEY": API_KEY})
    try:
        client = server.client()
        assert client.is_server_live()  # probes stay open
        with pytest.raises(InferenceServerException, match="API key"):
            client.get_model_metadata("plate_dfm")
        with pytest.raises(InferenceServerException, match="API key"):
            client.get_model_metadata("plate_dfm", headers={"Authorization": "Bearer " + "x" * 24})
        assert client.get_model_metadata("plate_dfm", headers={"Authorization": f"Bearer {API_KEY}"})["name"] == "plate_dfm"
        assert client.get_model_metadata("plate_dfm", headers={"x-api-key": API_KEY})["name"] == "plate_dfm"
        grpc_client = server.grpc_client()
        assert grpc_client.is_server_live()
        with pytest.raises(InferenceServerException, match="UNAUTHENTICATED"):
            grpc_client.get_model_metadata("plate_dfm")
        assert grpc_client.get_model_metadata("plate_dfm", headers={"authorization": f"Bearer {API_KEY}"}).name == "plate_dfm"
    finally:
        code, out, err = server.stop()
    assert "API key required" in out and code == 0
    # each refusal is one warning line, gRPC's as HTTP's
    assert err.count("WARNING refused GET /v2/models/plate_dfm: HTTP 401") == 2, err
    assert "WARNING refused gRPC /inference.GRPCInferenceService/ModelMetadata: UNAUTHENTICATED" in err and "ERROR" not in err, err


def test_sigterm_finishes_the_request_in_flight_and_exits_cleanly(served, small_model):
    _, bundle = small_model
    server = Server(bundle)
    image = _images(served[2])[0]
    big = np.ascontiguousarray(np.tile(image, (8, 8, 1))[None].repeat(8, axis=0))  # slow enough to be in flight
    results: list = []
    thread = threading.Thread(target=lambda: results.append(server.client().infer("plate_dfm", [_frames_input(big)])))
    thread.start()
    threading.Event().wait(0.5)
    code, out, err = server.stop()
    thread.join(60)
    assert code == 0 and "stopped" in out, err
    assert "Traceback" not in err, err
    assert results and results[0].as_numpy("pred_score").shape == (8,)


def test_serve_sends_each_served_verdict_to_the_webhook(small_model, synthetic, tmp_path):
    _, bundle = small_model
    endpoint = Endpoint()
    server = Server(bundle, "--webhook", endpoint.url, "--outbox", tmp_path / "outbox")
    images = _images(synthetic)
    try:
        client = server.client()
        single = client.infer("plate_dfm", [_frames_input(images[0][None])]).as_numpy("pred_score")
        pair = client.infer("plate_dfm", [_frames_input(np.stack(images[1:3]))]).as_numpy("pred_score")
        received = endpoint.wait_for(3)
    finally:
        code, _, err = server.stop()
        endpoint.server.shutdown()
    assert code == 0 and "webhook: 3 verdicts delivered" in err, err
    assert received == [0, 1, 2] and {b["model"] for b in endpoint.bodies} == {"plate_dfm"}
    assert np.allclose([b["score"] for b in endpoint.bodies], [*single, *pair], atol=1e-6)
    assert len({b["run"] for b in endpoint.bodies}) == 1


VERDICT_FIELDS = ("schema", "model", "label", "threshold", "check", "flags", "reasons")


def test_predict_and_serve_write_the_same_verdict_records(small_model, synthetic, tmp_path):
    """One verdict path: the same frames through predict and through serve (HTTP and gRPC), at the
    same moved cut-offs, give the same records, apart from what only one of them knows."""
    _, bundle = small_model
    images = _images(synthetic)[:4]
    paths = []
    for n, image in enumerate(images):
        paths.append(tmp_path / f"frame{n}.png")
        save_image(paths[-1], image)
    scores = [r.score for r in Model.load(bundle).predict_batch(images)]
    cut_offs = ["--threshold", f"{np.median(scores):.6f}", "--check", f"{min(scores) + 1e-4:.6f}"]  # every verdict seen
    predicted = subprocess.run([sys.executable, "-m", "adedge.cli", "predict", str(bundle), *map(str, paths), *cut_offs],
                               capture_output=True, text=True, check=True)
    from_predict = [json.loads(line) for line in predicted.stdout.splitlines()]
    endpoint = Endpoint()
    server = Server(bundle, *cut_offs, "--webhook", endpoint.url, "--outbox", tmp_path / "outbox")
    try:
        answers = [server.client().infer("plate_dfm", [_frames_input(image[None])]) for image in images[:2]]
        answers += [server.grpc_client().infer("plate_dfm", [triton_grpc.InferInput("image", [1, *image.shape], "UINT8").set_data_from_numpy(image[None])])
                    for image in images[2:]]
        endpoint.wait_for(len(images))
        metadata = server.client().get_model_metadata("plate_dfm")
    finally:
        server.stop()
        endpoint.server.shutdown()
    from_serve = endpoint.bodies
    assert {r["label"] for r in from_predict} == {"OK", "CHECK", "NG"}
    # what the client reads follows the moved cut-offs too, and the metadata says where they are
    threshold = float(cut_offs[1])
    for answer, record in zip(answers, from_predict, strict=True):
        assert bool(answer.as_numpy("pred_label")[0]) == (record["label"] == "NG")
        assert np.array_equal(answer.as_numpy("pred_mask"), answer.as_numpy("anomaly_map") > threshold)
    assert metadata["parameters"] == {"image_threshold": threshold, "pixel_threshold": threshold, "adedge_check_threshold": float(cut_offs[3])}
    for mine, served_record in zip(from_predict, from_serve, strict=True):
        assert [mine[k] for k in VERDICT_FIELDS] == [served_record[k] for k in VERDICT_FIELDS]
        assert abs(mine["score"] - served_record["score"]) < 1e-5
        assert set(mine) - {"source", "latency_ms", "model_ms"} == set(served_record) - {"version"}


def test_serving_leaves_kserves_own_application_untouched(small_model):
    """adedge serves from an application of its own: KServe's module-level app keeps its routes,
    middleware and handlers, and a second server in the same process would start clean."""
    _, bundle = small_model
    code = f"""
import os, signal, threading, time, urllib.request
from kserve.model_server import app
from adedge.runtime.serving import server

def state():
    return len(app.routes), len(app.user_middleware), sorted(map(str, app.exception_handlers))

def stop_when_live(port):
    while True:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{{port}}/v2/health/live", timeout=5)
            break
        except OSError:
            time.sleep(0.1)
    os.kill(os.getpid(), signal.SIGTERM)

before = state()
sock = server.listen("127.0.0.1", 0)
def ready(models, grpc_bound):
    print("ready", [m.name for m in models], grpc_bound is not None, state() == before, flush=True)
    threading.Thread(target=stop_when_live, args=(sock.getsockname()[1],), daemon=True).start()
server.serve(server.served_bundles([{str(bundle)!r}]), sock, on_ready=ready, grpc_port=0)
print("stopped", state() == before)
"""
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["ready ['plate_dfm'] True True", "stopped True"], result.stdout
