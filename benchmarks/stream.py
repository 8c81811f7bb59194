"""The line-side stream: frames per second in latency vs throughput mode, time outside the model,
and memory over a long run, for each registered model at its defaults (the bundle that ships: fp32).

Frames are the 900x900 PNG test images of MVTec bottle, cycled. As in frame_latency.py, the models are
fitted briefly on synthetic images (timing does not depend on what was learned).
Each run is a fresh torch-free process (stream_probe.py).

    .venv/bin/python benchmarks/stream.py [--frames 300] [--long-frames 10000]

Writes benchmarks/results/stream.md and .json.
"""

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

from common import brief_runs, machine_description, write_results

from adedge.choices import Mode
from adedge.export.exporter import export_bundle

ROOT = Path(__file__).resolve().parent
BOTTLE = ROOT.parent.parent / "shared" / "data" / "mvtec" / "bottle" / "test"
MODES = tuple(Mode)


def probe(bundle: Path, images: list[Path], mode: str, frames: int) -> dict:
    command = [sys.executable, str(ROOT / "stream_probe.py"), str(bundle), *map(str, images), "--mode", mode, "--frames", str(frames)]
    return json.loads(subprocess.run(command, check=True, capture_output=True, text=True).stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=300, help="Frames per mode and model.")
    parser.add_argument("--long-frames", type=int, default=10000, help="Frames of the memory run (DFM, throughput mode).")
    args = parser.parse_args()
    images = sorted(BOTTLE.glob("*/*.png"))
    if not images:
        raise SystemExit(f"no test images under {BOTTLE}: this benchmark needs ../shared/data/mvtec/bottle")
    rows = []
    with tempfile.TemporaryDirectory() as work:
        for model, run in brief_runs(Path(work)):
            bundle = Path(work) / f"{model}-bundle"
            metadata = export_bundle(run, bundle)  # what ships: OpenVINO fp32
            label = f"{metadata.precision} ({metadata.backbone}, {metadata.input_size[1]}x{metadata.input_size[0]})"
            for mode in MODES:
                rows.append({"model": model, "precision": label, "mode": mode, **probe(bundle, images, mode, args.frames)})
            if model == "dfm":
                long_run = {"model": model, "precision": label, "mode": "throughput", **probe(bundle, images, "throughput", args.long_frames)}
    lines = [
        "# Streaming 900x900 PNG frames (MVTec bottle), each model at its defaults",
        "",
        f"Machine: {machine_description()}. One run; each row a fresh torch-free process. Outside = decode +",
        "post-processing + queueing, per frame (median); the graph resizes each frame itself; decode is also timed apart.",
        "",
        "| model | precision | mode | requests | frames | fps | latency p50 ms | p99 ms | model ms | outside ms | outside / model | decode ms |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['model']} | {r['precision']} | {r['mode']} | {r['requests']} | {r['frames']} | {r['fps']:.1f} | {r['latency_p50_ms']:.1f} | "
            f"{r['latency_p99_ms']:.1f} | {r['model_ms']:.2f} | {r['outside_ms']:.2f} | {r['outside_ms'] / r['model_ms']:.0%} | "
            f"{r['decode_ms']:.2f} |"
        )
    rss = long_run["rss_mb"]
    lines += [
        "",
        f"Memory over a long run (DFM, {long_run['precision']}, throughput mode, {long_run['frames']} frames, "
        f"{long_run['fps']:.1f} fps): RSS {rss['100']} MB at frame 100, {rss[str(long_run['frames'])]} MB at frame {long_run['frames']}.",
    ]
    write_results("stream", {"rows": rows, "long_run": long_run}, lines)


if __name__ == "__main__":
    main()
