"""PatchCore: accuracy and latency against the memory bank's size and the patch vector's length.

For each MVTec category under the data root: the backbone's features of the training and test
images are extracted once (every default: efficientnet_lite1, 256 px); for each bank size and
dimension a PatchCore head is fitted on the training features and scores the test features in torch
(image and pixel AUROC); each head's whole graph (frame to map and score) is then converted to
OpenVINO f32 and timed on a model-size frame, all graphs and DFM's default taking turns.

    .venv/bin/python benchmarks/patchcore_bank.py [--data ../shared/data/mvtec] [--banks 2048,4096,8192,16384]
        [--dims 0,64] [--iterations 100]

Writes benchmarks/results/patchcore_bank.md and .json.
"""

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import openvino as ov
import torch
from common import machine_description, turns_ms, write_results

from adedge import defaults
from adedge.data.datasets import ground_truth, open_dataset, require_test_images, require_train_images
from adedge.export.onnx_file import export_onnx
from adedge.export.openvino_ir import convert_onnx
from adedge.metrics import auroc
from adedge.progress import no_progress
from adedge.train import dfm, patchcore
from adedge.train.backbones import create_backbone
from adedge.train.detector import Detector, Encoder
from adedge.train.trainer import _features, _head_scores

SIZE = (256, 256)


def encoder(strides: tuple[int, ...]) -> Encoder:
    backbone = create_backbone(defaults.BACKBONE)
    backbone.keep_stages(backbone.stages_at(strides))
    return Encoder(backbone, SIZE, defaults.RESIZE).eval()


@torch.no_grad()
def accuracy(head: torch.nn.Module, features: dict, labels: np.ndarray, masks: np.ndarray) -> dict[str, float]:
    maps, scores = [], []
    for start in range(0, len(labels), 8):
        anomaly_map, score = head({k: v[start : start + 8] for k, v in features.items()}, SIZE)
        maps.append(anomaly_map[:, 0].numpy())
        scores.append(score.numpy())
    maps = np.concatenate(maps)
    return {"image_auroc": auroc(labels, np.concatenate(scores)), "pixel_auroc": auroc(masks.ravel(), maps.ravel())}


def compiled(detector: Detector, work: Path, name: str):
    model = convert_onnx(export_onnx(detector, work / f"{name}.onnx"))
    return ov.Core().compile_model(model, "CPU", {"INFERENCE_PRECISION_HINT": "f32", "PERFORMANCE_HINT": "LATENCY"})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "data" / "mvtec")
    parser.add_argument("--banks", default="2048,4096,8192,16384")
    parser.add_argument("--dims", default="0,64")
    parser.add_argument("--iterations", type=int, default=100)
    args = parser.parse_args()
    banks, dims = [int(b) for b in args.banks.split(",")], [int(d) for d in args.dims.split(",")]
    categories = sorted(d for d in args.data.iterdir() if (d / "train" / "good").is_dir())
    patch_encoder, dfm_encoder = encoder(patchcore.PLUGIN.strides), encoder(dfm.PLUGIN.strides)
    rows, graphs = [], {}
    with tempfile.TemporaryDirectory() as scratch:
        for category in categories:
            dataset = open_dataset(category)
            train_samples, test_samples = require_train_images(dataset), require_test_images(dataset)
            labels = np.array([s.anomalous for s in test_samples])
            masks = np.stack([ground_truth(s, SIZE) for s in test_samples])
            train_features = _features(patch_encoder, train_samples, 16, no_progress, "")
            test_features = _features(patch_encoder, test_samples, 16, no_progress, "")
            for bank in banks:
                for dim in dims:
                    started = time.perf_counter()
                    head, _ = patchcore.fit_patchcore_head(train_features, patchcore.PatchcoreSettings(bank=bank, dim=dim), 0, no_progress)
                    fit_seconds = time.perf_counter() - started
                    started = time.perf_counter()
                    _head_scores(head, {k: v[:32] for k, v in train_features.items()}, SIZE, 16)
                    eager_ms = (time.perf_counter() - started) / 32 * 1000
                    name = f"patchcore bank {bank} dim {dim or head.channels}"
                    rows.append({"category": category.name, "graph": name, "bank_vectors": head.bank.shape[0], "bank_mb": head.bank.numel() * 4 / 1e6,
                                 "fit_seconds": round(fit_seconds, 2), "torch_scoring_ms": round(eager_ms, 1),
                                 **accuracy(head.eval(), test_features, labels, masks)})
                    if category == categories[0]:
                        graphs[name] = compiled(Detector(patch_encoder, head).eval(), Path(scratch), f"p{bank}-{dim}")
        dfm_train = _features(dfm_encoder, require_train_images(open_dataset(categories[0])), 16, no_progress, "")
        dfm_head, _ = dfm.fit_dfm_head(dfm_train, dfm.DFMSettings(), 0, no_progress)
        graphs["dfm (default)"] = compiled(Detector(dfm_encoder, dfm_head).eval(), Path(scratch), "dfm")
        frame = np.random.default_rng(0).integers(0, 256, (1, *SIZE, 3), dtype=np.uint8)
        requests = {name: graph.create_infer_request() for name, graph in graphs.items()}
        times = turns_ms({name: (lambda r=r: r.infer([frame])) for name, r in requests.items()}, args.iterations)
    latency = {name: float(np.median(t)) for name, t in times.items()}
    lines = [f"# PatchCore: bank size and dimension ({machine_description()})", "",
             f"`benchmarks/patchcore_bank.py --banks {args.banks} --dims {args.dims}`; efficientnet_lite1 at 256 px; AUROC from the "
             "head in torch on the test set; latency: the whole graph (uint8 frame to map and score) in OpenVINO f32, batch 1, "
             f"a 256x256 frame, median of {args.iterations} calls, every graph taking turns (DFM's default beside them).", "",
             "| category | graph | bank vectors | bank MB | fit s | image AUROC | pixel AUROC | OpenVINO f32 ms |", "|---|---|---|---|---|---|---|---|"]
    for row in rows:
        lines.append(f"| {row['category']} | {row['graph']} | {row['bank_vectors']} | {row['bank_mb']:.1f} | {row['fit_seconds']} | "
                     f"{row['image_auroc']:.4f} | {row['pixel_auroc']:.4f} | {latency.get(row['graph'], float('nan')):.2f} |")
    lines.append(f"| | dfm (default) | | | | | | {latency['dfm (default)']:.2f} |")
    write_results("patchcore_bank", {"machine": machine_description(), "rows": rows, "latency_ms": latency}, lines)


if __name__ == "__main__":
    main()
