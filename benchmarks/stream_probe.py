"""Stream image files through a bundle in a fresh process (no torch loaded) and time it.

    .venv/bin/python benchmarks/stream_probe.py BUNDLE IMAGE... --mode latency|throughput --frames N

Cycles through the images for N frames. Prints one JSON line: frames per second, latency p50/p99,
the median time per frame spent in the model (which resizes the frame) and outside it (decode,
post-processing), the decode time measured apart, and the RSS at frame 100 and at the last frame.
"""

import argparse
import itertools
import json
import os
import time
from pathlib import Path

import numpy as np

from adedge.data.images import load_image
from adedge.runtime import Model, Summary, inspect_stream
from adedge.runtime.line.sources import ImageFiles


def rss_mb() -> float:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 1e6


def median_ms(work, items) -> float:
    times = []
    for item in items:
        start = time.perf_counter()
        work(item)
        times.append((time.perf_counter() - start) * 1000.0)
    return float(np.median(times))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("bundle")
    parser.add_argument("images", nargs="+", type=Path)
    parser.add_argument("--mode", default="latency")
    parser.add_argument("--frames", type=int, default=300)
    args = parser.parse_args()
    model = Model.load(args.bundle, mode=args.mode)
    frames = ImageFiles(itertools.islice(itertools.cycle(args.images), args.frames))
    summary, inside, outside, rss = Summary(), [], [], {}
    for inspection in inspect_stream(model, frames):
        summary.add(inspection)
        inside.append(inspection.model_ms)
        outside.append(inspection.latency_ms - inspection.model_ms)
        if inspection.frame + 1 in (100, args.frames):
            rss[inspection.frame + 1] = round(rss_mb(), 1)
    figures = summary.finish().as_dict()
    sample = args.images[:20]
    print(json.dumps({
        **figures,
        "requests": model.engine.requests,
        "model_ms": float(np.median(inside)),
        "outside_ms": float(np.median(outside)),
        "decode_ms": median_ms(load_image, sample),
        "rss_mb": rss,
    }))


if __name__ == "__main__":
    main()
