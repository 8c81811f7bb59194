"""`adedge bench`: latency percentiles and throughput of a bundle's graph, after a warm-up."""

import time

import numpy as np

from adedge.runtime.inference.model import Model


def bench(model: Model, batch: int = 1, iterations: int = 200, warmup: int = 20, seed: int = 0) -> dict[str, float]:
    """Time ITERATIONS calls of the graph on random frames of BATCH images (warm-up calls not counted)."""
    height, width = model.input_size
    frames = np.random.default_rng(seed).integers(0, 256, (batch, height, width, 3), dtype=np.uint8)
    for _ in range(warmup):
        model.infer(frames)
    times = []
    for _ in range(iterations):
        start = time.perf_counter()
        model.infer(frames)
        times.append(time.perf_counter() - start)
    ms = np.array(times) * 1000.0
    return {
        "batch": batch,
        "iterations": iterations,
        "p50_ms": float(np.percentile(ms, 50)),
        "p90_ms": float(np.percentile(ms, 90)),
        "p99_ms": float(np.percentile(ms, 99)),
        "throughput_fps": float(batch * iterations / (ms.sum() / 1000.0)),
    }
