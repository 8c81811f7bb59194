"""Helpers shared by the benchmark scripts: timing torch eager like `adedge bench` times a bundle."""

import json
import os
import time
from pathlib import Path

import numpy as np
import torch

from adedge.train.detector import Detector

WARMUP = 20


def torch_eager_latency(detector: Detector, iterations: int, batch: int = 1) -> dict[str, float]:
    """Median and p99 ms of the Detector graph in torch eager on random frames, after a warm-up."""
    frames = torch.from_numpy(np.random.default_rng(0).integers(0, 256, (batch, *detector.image_size, 3), dtype=np.uint8))
    times = []
    with torch.inference_mode():
        for index in range(iterations + WARMUP):
            start = time.perf_counter()
            detector(frames)
            if index >= WARMUP:
                times.append((time.perf_counter() - start) * 1000.0)
    return {"p50_ms": float(np.percentile(times, 50)), "p99_ms": float(np.percentile(times, 99))}


def machine_description() -> str:
    """The CPU as OpenVINO sees it, so that every result says what it was measured on."""
    import openvino as ov

    core = ov.Core()
    capabilities = ", ".join(core.get_property("CPU", "OPTIMIZATION_CAPABILITIES"))
    return f"{core.get_property('CPU', 'FULL_DEVICE_NAME')} ({capabilities}), {os.cpu_count()} cores"


def folder_mb(folder) -> float:
    return sum(p.stat().st_size for p in folder.iterdir()) / 1e6


def write_results(name: str, record: object, lines: list[str]) -> None:
    """Save RECORD as results/NAME.json and the table LINES as results/NAME.md, and print the table."""
    results = Path(__file__).resolve().parent / "results"
    results.mkdir(exist_ok=True)
    (results / f"{name}.json").write_text(json.dumps(record, indent=2) + "\n")
    (results / f"{name}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
