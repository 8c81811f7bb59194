"""Latency side by side: model x backbone x precision x engine, 256x256, on this machine, in one run.

For each registered model and backbone: torch eager (the trained Detector), ONNX Runtime (fp32) and
OpenVINO at every precision; batch-1 p50/p99, the best throughput over batch sizes 1-8, and the
runtime's peak RSS (each engine timed in a fresh process without torch). Timing does not depend on
what was learned, so models are fitted briefly on a few synthetic images (random backbone weights
where no pretrained file exists offline); INT8 is timed in each of its modes with the accuracy bound
lifted, since accuracy is accuracy.py's job.

    .venv/bin/python benchmarks/latency.py [--backbones efficientnet_lite0,wide_resnet50_2] [--models dfm,cflow]

Writes benchmarks/results/NAME.md and .json (--name, default latency): one table per run.
"""

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

from common import brief_config, folder_mb, machine_description, torch_eager_latency, write_results

from adedge.data.synthetic import generate_synthetic
from adedge.export.exporter import export_bundle
from adedge.export.quantize import INT8_MODES
from adedge.train.checkpoint import load_run
from adedge.train.models import MODEL_NAMES
from adedge.train.trainer import train

ROOT = Path(__file__).resolve().parent
# (table label, precision, INT8 modes to try): each INT8 mode gets a row of its own
VARIANTS = [(p, p, INT8_MODES) for p in ("fp32", "fp16", "bf16")] + [(f"int8 ({m})", "int8", (m,)) for m in INT8_MODES]
PRETRAINED_OFFLINE = {"efficientnet_lite0"}


def probe(bundle: Path, backend: str, iterations: int) -> dict:
    command = [sys.executable, str(ROOT / "runtime_probe.py"), str(bundle), "--backend", backend, "--iterations", str(iterations)]
    return json.loads(subprocess.run(command, check=True, capture_output=True, text=True).stdout.strip().splitlines()[-1])


def measure(model: str, backbone: str, data: Path, work: Path, iterations: int) -> list[dict]:
    run = work / f"{model}-{backbone}"
    weights = None if backbone in PRETRAINED_OFFLINE else "random"
    train(brief_config(data, run, model, backbone=backbone, weights=weights))
    eager = torch_eager_latency(load_run(run)[0], iterations)
    rows = [{"engine": "torch eager", "precision": "fp32", **eager}]
    onnx = work / f"{run.name}-onnx"
    export_bundle(run, onnx, "onnx")
    rows.append({"engine": "ONNX Runtime", "precision": "fp32", **probe(onnx, "onnxruntime", iterations), "bundle_mb": folder_mb(onnx)})
    for index, (label, precision, modes) in enumerate(VARIANTS):
        bundle = work / f"{run.name}-{index}"
        export_bundle(run, bundle, "openvino", precision, max_drop=1.0, int8_modes=modes)
        rows.append({"engine": "OpenVINO", "precision": label, **probe(bundle, "openvino", iterations), "bundle_mb": folder_mb(bundle)})
    return [{"model": model, "backbone": backbone, **row} for row in rows]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", default=",".join(MODEL_NAMES))
    parser.add_argument("--backbones", default="efficientnet_lite0,wide_resnet50_2")
    parser.add_argument("--iterations", type=int, default=100)
    parser.add_argument("--name", default="latency", help="Results file name (without suffix).")
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as work:
        data = generate_synthetic(Path(work) / "data", train=6, test_good=0, per_defect=0)
        for model in args.models.split(","):
            for backbone in args.backbones.split(","):
                rows += measure(model, backbone, data, Path(work), args.iterations)
    machine = machine_description()
    lines = [
        "# Latency, 256x256 (ms; throughput at the best batch size of 1-8; peak RSS of the runtime process)",
        "",
        f"Machine: {machine}. All rows of one table were measured in one run.",
        "",
        "| model | backbone | engine | precision | p50 ms | p99 ms | vs torch eager | throughput fps (batch) | peak RSS MB | bundle MB |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    eager = {(r["model"], r["backbone"]): r["p50_ms"] for r in rows if r["engine"] == "torch eager"}
    for r in rows:
        speedup = eager[(r["model"], r["backbone"])] / r["p50_ms"]
        throughput = f"{r['throughput_fps']:.0f} ({r['best_batch']})" if "throughput_fps" in r else ""
        rss = f"{r['peak_rss_mb']:.0f}" if "peak_rss_mb" in r else ""
        size = f"{r['bundle_mb']:.1f}" if "bundle_mb" in r else ""
        lines.append(
            f"| {r['model']} | {r['backbone']} | {r['engine']} | {r['precision']} | {r['p50_ms']:.2f} | {r['p99_ms']:.2f} | "
            f"{speedup:.2f}x | {throughput} | {rss} | {size} |"
        )
    write_results(args.name, {"machine": machine, "rows": rows}, lines)


if __name__ == "__main__":
    main()
