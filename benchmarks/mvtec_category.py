"""A model on a real MVTec category: training time, accuracy through the exported bundle, and latency
of the same graph in torch eager, ONNX Runtime and OpenVINO f32, measured side by side in one run.

    .venv/bin/python benchmarks/mvtec_category.py --model dfm|cflow [--data ../shared/data/mvtec/bottle]
        [--backbone efficientnet_lite0]

Writes benchmarks/results/<model>_<category>_<backbone>.md and .json.
"""

import argparse
import tempfile
import time
from pathlib import Path

import torch
from common import folder_mb, machine_description, torch_eager_latency, write_results

from adedge.export.exporter import export_bundle
from adedge.runtime import Model
from adedge.runtime.evaluation.bench import bench
from adedge.runtime.evaluation.evaluate import evaluate_bundle
from adedge.train.checkpoint import load_run
from adedge.train.models import MODEL_NAMES
from adedge.train.trainer import TrainConfig, train

ROOT = Path(__file__).resolve().parent
ITERATIONS = 300


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=ROOT.parent.parent / "shared" / "data" / "mvtec" / "bottle")
    parser.add_argument("--model", default="dfm", choices=MODEL_NAMES)
    parser.add_argument("--backbone", default="efficientnet_lite0")
    parser.add_argument("--weights", default=None)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as work:
        run, ov_bundle, onnx_bundle = Path(work) / "run", Path(work) / "ov", Path(work) / "onnx"
        started = time.perf_counter()
        info = train(TrainConfig(args.data, run, model=args.model, backbone=args.backbone, weights=args.weights))
        train_seconds = time.perf_counter() - started
        export_bundle(run, ov_bundle, "openvino")
        export_bundle(run, onnx_bundle, "onnx")
        ov_model = Model.load(ov_bundle)
        metrics = evaluate_bundle(ov_model, args.data)
        latency = {
            "torch eager": torch_eager_latency(load_run(run)[0], ITERATIONS),
            "ONNX Runtime": bench(Model.load(onnx_bundle, "onnxruntime"), 1, ITERATIONS),
            "OpenVINO f32": bench(ov_model, 1, ITERATIONS),
        }
        bundle_mb = folder_mb(ov_bundle)
    name = f"{args.model}_{info.dataset.category}_{args.backbone}"
    record = {
        "model": args.model,
        "backbone": args.backbone,
        "category": info.dataset.category,
        "image_size": info.image_size,
        "stages": info.stages,
        "calibration": info.calibration.method,
        "train_seconds": round(train_seconds, 1),
        "bundle_mb": round(bundle_mb, 2),
        "metrics": metrics,
        "latency_batch1": latency,
        "machine": f"{machine_description()}, torch threads {torch.get_num_threads()}",
    }
    eager = latency["torch eager"]["p50_ms"]
    lines = [
        f"# {args.model.upper()}, {args.backbone}, MVTec AD {record['category']} ({info.image_size[0]}x{info.image_size[1]})",
        "",
        f"Trained in {record['train_seconds']} s on {info.dataset.fit_images} images (stages {', '.join(info.stages)}); "
        f"calibration: {record['calibration']}; OpenVINO bundle {record['bundle_mb']} MB. Machine: {record['machine']}.",
        "",
        "| image AUROC | pixel AUROC | F1-max | F1 at threshold | PRO |",
        "|---|---|---|---|---|",
        "| {image_auroc:.4f} | {pixel_auroc:.4f} | {image_f1_max:.4f} | {image_f1:.4f} | {pro:.4f} |".format(**metrics),
        "",
        "Latency of the same graph, batch 1, same run (median and p99 ms; speed-up of the median vs torch eager):",
        "",
        "| engine | p50 ms | p99 ms | vs torch eager |",
        "|---|---|---|---|",
    ]
    for engine, figures in latency.items():
        lines.append(f"| {engine} | {figures['p50_ms']:.2f} | {figures['p99_ms']:.2f} | {eager / figures['p50_ms']:.2f}x |")
    write_results(name, record, lines)


if __name__ == "__main__":
    main()
