"""Time one bundle in a fresh process (no torch loaded): batch-1 latency, best throughput, peak RSS.

    .venv/bin/python benchmarks/runtime_probe.py BUNDLE [--backend openvino|onnxruntime]

Prints one JSON line; latency.py runs it once per bundle and engine.
"""

import argparse
import json
import resource

from adedge.runtime import Model
from adedge.runtime.evaluation.bench import bench

THROUGHPUT_BATCHES = (1, 2, 4, 8)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("bundle")
    parser.add_argument("--backend", default="openvino")
    parser.add_argument("--iterations", type=int, default=100)
    args = parser.parse_args()
    model = Model.load(args.bundle, args.backend)
    latency = bench(model, 1, args.iterations)
    throughput = {batch: bench(model, batch, max(10, args.iterations // batch), warmup=5)["throughput_fps"] for batch in THROUGHPUT_BATCHES}
    best = max(throughput, key=throughput.get)
    print(json.dumps({
        "p50_ms": latency["p50_ms"],
        "p99_ms": latency["p99_ms"],
        "throughput_fps": throughput[best],
        "best_batch": best,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }))


if __name__ == "__main__":
    main()
