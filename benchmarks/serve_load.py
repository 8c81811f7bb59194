"""`adedge serve` under load: N concurrent clients (1, 2, 4, 8) beside `adedge predict`, and a soak.

    .venv/bin/python benchmarks/serve_load.py [--seconds 20] [--soak-seconds 600] [--soak-clients 4]

The bundle is DFM on the default backbone (efficientnet_lite1, 256x256), fitted briefly on synthetic
images (timing does not depend on what was learned), exported fp32 for OpenVINO. Frames are the
900x900 test images of MVTec bottle, decoded once by the clients, which send them as uint8 binary
tensors with the official tritonclient (HTTP), each client in its own process, from this machine,
one request in flight per client. The server runs in throughput mode (the default).

Beside it, on the same frames: `adedge predict` in throughput mode (files in, as a user runs it:
it decodes each PNG too), and the graph alone (Model.infer on the decoded frames, one thread per
client): serve minus the graph alone is what the protocol costs per request.

The soak holds SOAK_CLIENTS clients for SOAK_SECONDS and samples the server's RSS every 10 s.
Writes benchmarks/results/serve_load.md and .json.
"""

import argparse
import json
import multiprocessing
import re
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from adedge.data.images import load_image

ROOT = Path(__file__).resolve().parent
BOTTLE = ROOT.parent.parent / "shared" / "data" / "mvtec" / "bottle" / "test"
CLIENTS = (1, 2, 4, 8)
FRAMES = 8  # distinct frames each client cycles through


def bottle_images() -> list[Path]:
    images = sorted(BOTTLE.glob("*/*.png"))
    if not images:
        raise SystemExit(f"no MVTec bottle test images under {BOTTLE}")
    return images[:: max(1, len(images) // FRAMES)][:FRAMES]


def percentiles(latencies_ms: list[float]) -> dict[str, float]:
    return {"p50_ms": round(float(np.percentile(latencies_ms, 50)), 1), "p99_ms": round(float(np.percentile(latencies_ms, 99)), 1)}


def client(address: str, model: str, images: list[str], seconds: float, start_at: float, results) -> None:
    """One client process: a request at a time until SECONDS after START_AT; its latencies and failures."""
    import tritonclient.http as triton

    frames = [load_image(path)[None] for path in images]
    connection = triton.InferenceServerClient(address, network_timeout=120)
    latencies, failures = [], 0
    time.sleep(max(0.0, start_at - time.time()))
    end, index = time.time() + seconds, 0
    while time.time() < end:
        tensor = triton.InferInput("image", list(frames[index % len(frames)].shape), "UINT8")
        tensor.set_data_from_numpy(frames[index % len(frames)])
        begin = time.perf_counter()
        try:
            reply = connection.infer(model, [tensor], outputs=[triton.InferRequestedOutput("pred_score"), triton.InferRequestedOutput("pred_label")])
            reply.as_numpy("pred_score")
            latencies.append((time.perf_counter() - begin) * 1000)
        except Exception:  # noqa: BLE001 - a failed request is counted, not fatal to the load
            failures += 1
        index += 1
    results.put((latencies, failures))


def drive(address: str, model: str, images: list[str], clients: int, seconds: float) -> dict:
    """CLIENTS processes at once for SECONDS: requests/s, p50/p99 and failed requests."""
    spawn = multiprocessing.get_context("spawn")  # not fork: the parent holds torch's and OpenVINO's threads
    results = spawn.Queue()
    start_at = time.time() + 3.0  # every client loaded its frames and connected
    processes = [spawn.Process(target=client, args=(address, model, images, seconds, start_at, results)) for _ in range(clients)]
    for process in processes:
        process.start()
    gathered = [results.get() for _ in processes]
    for process in processes:
        process.join()
    latencies = [ms for lat, _ in gathered for ms in lat]
    return {"clients": clients, "requests": len(latencies), "failed": sum(f for _, f in gathered),
            "requests_per_s": round(len(latencies) / seconds, 1), **percentiles(latencies)}


def graph_alone(bundle: Path, images: list[str], threads: int, seconds: float) -> dict:
    """The same frames through Model.infer (throughput mode) from THREADS threads: no protocol."""
    from adedge.runtime import Model

    model = Model.load(bundle, mode="throughput")
    frames = [load_image(path)[None] for path in images]
    model.engine.infer_outputs(frames[0])
    latencies: list[float] = []

    def work(offset: int) -> None:
        end, index = time.time() + seconds, offset
        while time.time() < end:
            begin = time.perf_counter()
            model.engine.infer_outputs(frames[index % len(frames)])
            latencies.append((time.perf_counter() - begin) * 1000)
            index += 1

    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(work, range(threads)))
    return {"threads": threads, "frames_per_s": round(len(latencies) / seconds, 1), **percentiles(latencies)}


def predict_throughput(bundle: Path, images: list[Path], frames: int) -> dict:
    command = [sys.executable, str(ROOT / "stream_probe.py"), str(bundle), *map(str, images), "--mode", "throughput", "--frames", str(frames)]
    return json.loads(subprocess.run(command, check=True, capture_output=True, text=True).stdout.strip().splitlines()[-1])


def rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as status:
        return int(re.search(r"VmRSS:\s+(\d+)", status.read()).group(1)) / 1024


class Server:
    """`adedge serve BUNDLE --port 0` in its own process."""

    def __init__(self, bundle: Path) -> None:
        self.process = subprocess.Popen([sys.executable, "-m", "adedge.cli", "serve", str(bundle), "--port", "0"],
                                        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for line in self.process.stdout:
            if served := re.match(r"serving (\S+) version", line):
                self.model = served.group(1)
            if listening := re.match(r"listening on http://([\d.]+:\d+)", line):
                self.address = listening.group(1)
                return
        raise SystemExit(f"adedge serve did not start: {self.process.stderr.read()}")

    def stop(self) -> tuple[int, str]:
        self.process.terminate()
        _, err = self.process.communicate(timeout=60)
        return self.process.returncode, err


def soak(server: Server, images: list[str], clients: int, seconds: float) -> dict:
    samples: list[tuple[float, float]] = []
    done = threading.Event()

    def sample() -> None:
        begin = time.time()
        while not done.wait(10.0):
            samples.append((round(time.time() - begin), rss_mb(server.process.pid)))

    sampler = threading.Thread(target=sample)
    sampler.start()
    load = drive(server.address, server.model, images, clients, seconds)
    done.set()
    sampler.join()
    first_minute = [mb for t, mb in samples if t <= 70]
    return {**load, "seconds": seconds, "rss_mb": samples,
            "rss_after_1_min_mb": round(first_minute[-1], 1), "rss_end_mb": round(samples[-1][1], 1), "rss_max_mb": round(max(mb for _, mb in samples), 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=20.0, help="Load per client count.")
    parser.add_argument("--soak-seconds", type=float, default=600.0, help="The soak's length (0: none).")
    parser.add_argument("--soak-clients", type=int, default=4)
    parser.add_argument("--name", default="serve_load")
    args = parser.parse_args()
    # torch only here: the client processes are spawned, and re-import this module's top only
    from common import brief_config, machine_description, write_results

    from adedge.data.synthetic import generate_synthetic
    from adedge.export.exporter import export_bundle
    from adedge.train.trainer import train

    images = bottle_images()
    with tempfile.TemporaryDirectory() as scratch:
        work = Path(scratch)
        data = generate_synthetic(work / "data", train=6, test_good=0, per_defect=0)
        train(brief_config(data, work / "run", "dfm"))
        bundle = work / "bundle"
        export_bundle(work / "run", bundle)
        predict = predict_throughput(bundle, images, 300)
        alone = [graph_alone(bundle, list(map(str, images)), n, args.seconds) for n in CLIENTS]
        server = Server(bundle)
        rows = [drive(server.address, server.model, list(map(str, images)), n, args.seconds) for n in CLIENTS]
        long = soak(server, list(map(str, images)), args.soak_clients, args.soak_seconds) if args.soak_seconds else None
        code, err = server.stop()
    overhead = round(rows[0]["p50_ms"] - alone[0]["p50_ms"], 1)
    lines = [
        "# adedge serve under load (DFM, efficientnet_lite1, 256x256, fp32 OpenVINO; 900x900 bottle frames as uint8)",
        "",
        f"Machine: {machine_description()}. One run; clients are processes on the same machine, one request in flight each (tritonclient HTTP, binary tensors).",
        "",
        "| clients | serve requests/s | serve p50 ms | serve p99 ms | failed | graph alone frames/s | graph alone p50 ms | p99 ms |",
        "|---|---|---|---|---|---|---|---|",
        *[f"| {r['clients']} | {r['requests_per_s']} | {r['p50_ms']} | {r['p99_ms']} | {r['failed']} | {a['frames_per_s']} | {a['p50_ms']} | {a['p99_ms']} |"
          for r, a in zip(rows, alone)],
        "",
        f"`adedge predict` (throughput mode, PNG files decoded in the stream, 300 frames): {predict['fps']} frames/s, latency p50 {predict['latency_p50_ms']} ms, p99 {predict['latency_p99_ms']} ms.",
        f"The protocol's cost per request at 1 client (serve p50 minus graph-alone p50): {overhead} ms.",
    ]
    if long:
        lines.append(f"Soak: {args.soak_clients} clients for {long['seconds']:.0f} s: {long['requests']} requests, {long['failed']} failed, "
                     f"{long['requests_per_s']} requests/s, p50 {long['p50_ms']} ms, p99 {long['p99_ms']} ms; server RSS {long['rss_after_1_min_mb']} MB after 1 min, "
                     f"{long['rss_end_mb']} MB at the end, at most {long['rss_max_mb']} MB.")
    lines.append(f"The server stopped on SIGTERM with exit code {code}.")
    write_results(args.name, {"machine": machine_description(), "serve": rows, "graph_alone": alone, "predict_throughput": predict,
                              "protocol_overhead_ms": overhead, "soak": long, "server_exit": code, "server_stderr": err[-2000:]}, lines)


if __name__ == "__main__":
    main()
