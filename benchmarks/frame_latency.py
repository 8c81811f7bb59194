"""Frame-to-result latency at batch 1 for camera-sized frames: the graph resizing the frame itself
(now) against OpenCV resizing it outside the graph first (how adedge worked before), in one run.

"Before" replays the old runtime's path: cv2.resize with INTER_AREA to the model size, the graph
on the small frame (its own resize is then a no-op), the map resized back to the frame. "After"
hands the full frame to the graph. Both end with the Result's frame-size anomaly map, so both do
the same work a line-side caller gets. A frame of the model's own size is the reference: the
target is a 1920x1080 frame at most 1.2x its latency. Frames are pixels in memory (a camera's), not files.
Models are fitted briefly on synthetic images and exported as OpenVINO fp32 (timing does not
depend on what was learned).

    .venv/bin/python benchmarks/frame_latency.py [--iterations 200]

Writes benchmarks/results/frame_latency.md and .json.
"""

import argparse
import tempfile
from functools import partial
from pathlib import Path

import cv2
import numpy as np
from common import brief_runs, machine_description, turns_ms, write_results

from adedge.export.exporter import export_bundle
from adedge.runtime import Model
from adedge.train.models import MODEL_NAMES

FRAME_SIZES = ((900, 900), (1080, 1920))  # (height, width): an MVTec bottle frame, a 1080p camera; besides the model's own size


def before(model: Model, frame: np.ndarray) -> np.ndarray:
    height, width = model.input_size
    small = cv2.resize(frame, (width, height), interpolation=cv2.INTER_AREA)
    scores, maps = model.infer(small[None])
    return model.result(frame, maps[0], float(scores[0])).anomaly_map


def after(model: Model, frame: np.ndarray) -> np.ndarray:
    return model.predict(frame).anomaly_map


PATHS = {"before": before, "after": after}


def percentiles_ms(models: dict[str, Model], frame: np.ndarray, iterations: int) -> dict[str, tuple[float, float]]:
    """p50 and p99 ms of each path on FRAME, the paths taking turns call by call, each on a model of
    its own (so no request switches between frame sizes)."""
    times = turns_ms({label: partial(PATHS[label], model, frame) for label, model in models.items()}, iterations)
    return {label: (float(np.percentile(t, 50)), float(np.percentile(t, 99))) for label, t in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--iterations", type=int, default=200)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    rows, sizes, described = [], {}, {}
    with tempfile.TemporaryDirectory() as work:
        for name, run in brief_runs(Path(work)):
            bundle = Path(work) / f"{name}-bundle"
            metadata = export_bundle(run, bundle, "openvino")
            models = {label: Model.load(bundle) for label in PATHS}
            sizes[name] = (models["after"].input_size, *FRAME_SIZES)
            described[name] = f"{name} ({metadata.backbone}, {metadata.input_size[1]}x{metadata.input_size[0]})"
            for size in sizes[name]:
                frame = rng.integers(0, 256, (*size, 3), dtype=np.uint8)
                for label, (p50, p99) in percentiles_ms(models, frame, args.iterations).items():
                    rows.append({"model": name, "frame": f"{size[1]}x{size[0]}", "path": label, "p50_ms": p50, "p99_ms": p99})
    machine = machine_description()
    lines = [
        "# Frame-to-result latency, batch 1, OpenVINO fp32, each model at its defaults (ms)",
        "",
        f"Machine: {machine}. One run; the two paths take turns call by call, {args.iterations} calls each.",
        "before: cv2.resize (INTER_AREA) outside the graph, then the graph; after: the graph resizes the frame.",
        "",
        "after / model size: the graph's p50 on this frame over its p50 on a frame of the model's own size.",
        "",
        "| model | frame | before p50 | after p50 | before p99 | after p99 | after / before | after / model size |",
        "|---|---|---|---|---|---|---|---|",
    ]
    figures = {(r["model"], r["frame"], r["path"]): r for r in rows}
    for name in MODEL_NAMES:
        own = figures[(name, f"{sizes[name][0][1]}x{sizes[name][0][0]}", "after")]["p50_ms"]
        for size in sizes[name]:
            frame = f"{size[1]}x{size[0]}"
            b, a = figures[(name, frame, "before")], figures[(name, frame, "after")]
            lines.append(
                f"| {described[name]} | {frame} | {b['p50_ms']:.2f} | {a['p50_ms']:.2f} | {b['p99_ms']:.2f} | {a['p99_ms']:.2f} | "
                f"{a['p50_ms'] / b['p50_ms']:.2f} | {a['p50_ms'] / own:.2f} |"
            )
    write_results("frame_latency", {"machine": machine, "rows": rows}, lines)


if __name__ == "__main__":
    main()
