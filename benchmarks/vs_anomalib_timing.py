"""Time one cell of benchmarks/vs_anomalib.py in a fresh process: a decoded frame to an image score
and an anomaly map at the frame's size, batch 1.

Runs in adedge's venv (TOOLKIT adedge: MODEL is a bundle folder) or in anomalib's own venv
(TOOLKIT anomalib: MODEL is the exported model.xml), so it imports neither toolkit at the top.
PRECISION "default" compiles as the toolkit's loader does by default (an adedge bundle asks for
the hint of the precision it was exported in); for anomalib, "f32" adds OpenVINO's f32 hint. Prints one JSON line: median and p99 ms, and the precision the compiled
graph's convolutions really run in (OpenVINO's execution graph).

    python vs_anomalib_timing.py TOOLKIT MODEL PRECISION --frame 900 --calls 50
"""

import argparse
import json
import time
from collections import Counter

import cv2
import numpy as np

WARMUP = 10


def adedge_cell(bundle: str, precision: str):
    from adedge.runtime import Model

    if precision != "default":  # an adedge bundle carries its precision: each precision is its own bundle
        raise SystemExit("adedge cells run each bundle as adedge's runtime loads it: precision must be 'default'")
    model = Model.load(bundle)

    def call(frame: np.ndarray) -> tuple[float, np.ndarray]:
        result = model.predict(frame)
        return result.score, result.anomaly_map

    return call, model.engine.compiled


def anomalib_cell(xml: str, precision: str):
    from anomalib.deploy import OpenVINOInferencer

    inferencer = OpenVINOInferencer(xml) if precision == "default" else OpenVINOInferencer(xml, config={"INFERENCE_PRECISION_HINT": precision})

    def call(frame: np.ndarray) -> tuple[float, np.ndarray]:
        # the inferencer returns the map at the model's size: resized to the frame like adedge's runtime does
        prediction = inferencer.predict(frame)
        anomaly_map = cv2.resize(np.squeeze(prediction.anomaly_map), (frame.shape[1], frame.shape[0]), interpolation=cv2.INTER_LINEAR)
        return float(np.squeeze(prediction.pred_score)), anomaly_map

    return call, inferencer.model


def convolution_precisions(compiled) -> dict[str, int]:
    """How many of the execution graph's convolutions run in each precision."""
    counts: Counter = Counter()
    for op in compiled.get_runtime_model().get_ordered_ops():
        info = op.get_rt_info()
        if info["layerType"].astype(str) == "Convolution":
            counts[info["runtimePrecision"].astype(str)] += 1
    return dict(counts)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("toolkit", choices=["adedge", "anomalib"])
    parser.add_argument("model")
    parser.add_argument("precision", help="default, or an OpenVINO inference precision hint (f32, bf16)")
    parser.add_argument("--frame", type=int, default=900)
    parser.add_argument("--calls", type=int, default=50)
    args = parser.parse_args()
    call, compiled = (adedge_cell if args.toolkit == "adedge" else anomalib_cell)(args.model, args.precision)
    frame = np.random.default_rng(0).integers(0, 256, (args.frame, args.frame, 3), dtype=np.uint8)
    times = []
    for index in range(WARMUP + args.calls):
        start = time.perf_counter()
        score, anomaly_map = call(frame)
        if index >= WARMUP:
            times.append((time.perf_counter() - start) * 1000.0)
    assert anomaly_map.shape == frame.shape[:2] and np.isfinite(score), (anomaly_map.shape, score)
    print(json.dumps({"p50_ms": float(np.median(times)), "p99_ms": float(np.percentile(times, 99)), "convolutions": convolution_precisions(compiled)}))


if __name__ == "__main__":
    main()
