"""CFLOW latency per backbone: OpenVINO f32 vs torch eager of the same graph, batch 1, one run; bundle size.

Timing does not depend on what the flows learned, so each model is trained for one short epoch on a
few synthetic images (random backbone weights where no pretrained file exists offline).

    .venv/bin/python benchmarks/cflow_latency.py [--backbones efficientnet_lite0,wide_resnet50_2]

Writes benchmarks/results/cflow_latency.md and .json.
"""

import argparse
import tempfile
from pathlib import Path

from common import brief_config, folder_mb, machine_description, torch_eager_latency, write_results

from adedge.data.synthetic import generate_synthetic
from adedge.export.exporter import export_bundle
from adedge.runtime import Model
from adedge.runtime.evaluation.bench import bench
from adedge.train.checkpoint import load_run
from adedge.train.trainer import train

ITERATIONS = 100
PRETRAINED_OFFLINE = {"efficientnet_lite0"}


def measure(backbone: str, work: Path, data: Path) -> dict:
    run, bundle = work / f"run-{backbone}", work / f"bundle-{backbone}"
    weights = None if backbone in PRETRAINED_OFFLINE else "random"
    train(brief_config(data, run, "cflow", backbone=backbone, weights=weights))
    export_bundle(run, bundle, "openvino")
    openvino = bench(Model.load(bundle), 1, ITERATIONS)
    eager = torch_eager_latency(load_run(run)[0], ITERATIONS // 2)
    return {
        "backbone": backbone,
        "weights": weights or "pretrained",
        "torch_eager_p50_ms": eager["p50_ms"],
        "openvino_f32_p50_ms": openvino["p50_ms"],
        "openvino_f32_p99_ms": openvino["p99_ms"],
        "speedup": eager["p50_ms"] / openvino["p50_ms"],
        "bundle_mb": folder_mb(bundle),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backbones", default="efficientnet_lite0,wide_resnet50_2")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as work:
        data = generate_synthetic(Path(work) / "data", train=6, test_good=0, per_defect=0)
        rows = [measure(name, Path(work), data) for name in args.backbones.split(",")]
    lines = [
        "# CFLOW latency, 256x256, batch 1 (median ms; same graph, same run)",
        "",
        f"Machine: {machine_description()}.",
        "",
        "| backbone | weights | torch eager p50 | OpenVINO f32 p50 | OpenVINO f32 p99 | speed-up | bundle MB |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['backbone']} | {r['weights']} | {r['torch_eager_p50_ms']:.1f} | {r['openvino_f32_p50_ms']:.1f} | "
            f"{r['openvino_f32_p99_ms']:.1f} | {r['speedup']:.2f}x | {r['bundle_mb']:.1f} |"
        )
    write_results("cflow_latency", rows, lines)


if __name__ == "__main__":
    main()
