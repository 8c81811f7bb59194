"""CFLOW ablation: what each training and scoring choice costs in accuracy, train time and latency.

For every MVTec category under the data root and every named variant (a change from the defaults:
training length, input size, stages, fiber batch, learning rate, backbone), train the flows on the
cached frozen-backbone features of the fit images (the trainer's own split), then score the test set
every way listed in SCORINGS (how stage likelihoods are normalised and how the image score is formed
from the map), all from the one trained model. Latency: the exported graph (ONNX -> OpenVINO IR, f32,
batch 1, a frame of the category's size) per architecture.

    .venv/bin/python benchmarks/cflow_ablation.py [--data ../shared/data/mvtec] [--variants a,b]
        [--work DIR] [--name cflow_ablation]

Finished (variant, category) results are kept in WORK (default /tmp/adedge-ablation) and reused.
Writes benchmarks/results/NAME.md and .json.
"""

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import openvino as ov
import torch
import torch.nn.functional as F
from common import WARMUP, held_back_split, machine_description, write_results

from adedge.data.datasets import ground_truth, open_dataset, require_test_images, require_train_images
from adedge.data.images import load_image
from adedge.export.onnx_file import export_onnx
from adedge.export.openvino_ir import convert_onnx
from adedge.metrics import auroc
from adedge.progress import no_progress
from adedge.train.backbones import create_backbone
from adedge.train.cflow import Z_CLIP, CflowHead, CflowSettings, fit_cflow_head
from adedge.train.detector import Detector, Encoder
from adedge.train.trainer import TrainConfig, _run

ROOT = Path(__file__).resolve().parent
DEFAULT = TrainConfig(Path("."), Path("."), model="cflow")
# what each variant changes: the first release's defaults, its flows' settings spelled out so new defaults keep old names true
BASELINE = {"backbone": "efficientnet_lite0", "image_size": 256, "strides": (8, 16, 32)}
BASELINE_SETTINGS = {"meta_epochs": 4, "sub_epochs": 2, "fiber_batch": 256, "lr": 2e-4, "condition": 128}
VARIANTS: dict[str, dict] = {
    "baseline": {},
    "16 epochs (8x2)": {"settings": {"meta_epochs": 8}},
    "32 epochs (16x2)": {"settings": {"meta_epochs": 16}},
    "input 320": {"image_size": 320},
    "input 384": {"image_size": 384},
    "stages 16+32": {"strides": (16, 32)},
    "stages 8+16": {"strides": (8, 16)},
    "fiber batch 512": {"settings": {"fiber_batch": 512}},
    "fiber batch 128": {"settings": {"fiber_batch": 128}},
    "lr 5e-4": {"settings": {"lr": 5e-4}},
    "lr 1e-4": {"settings": {"lr": 1e-4}},
    "efficientnet_lite1": {"backbone": "efficientnet_lite1"},
    "efficientnet_lite2": {"backbone": "efficientnet_lite2"},
    "lite1 + input 320": {"backbone": "efficientnet_lite1", "image_size": 320},
    "input 320 + 16 epochs": {"image_size": 320, "settings": {"meta_epochs": 8}},
    # from the current defaults (lite1, 320 px): training length, fiber batch and a bigger backbone
    "lite1 + 320 + 16 epochs": {"backbone": "efficientnet_lite1", "image_size": 320, "settings": {"meta_epochs": 8}},
    "lite1 + 320 + batch 512": {"backbone": "efficientnet_lite1", "image_size": 320, "settings": {"fiber_batch": 512}},
    "lite1 + 320 + 16 epochs + batch 512": {"backbone": "efficientnet_lite1", "image_size": 320,
                                           "settings": {"meta_epochs": 8, "fiber_batch": 512}},
    "lite1 + 320 + 16 epochs + condition 64": {"backbone": "efficientnet_lite1", "image_size": 320,
                                               "settings": {"meta_epochs": 8, "condition": 64}},
    "lite1 + 320 + lr 6e-4": {"backbone": "efficientnet_lite1", "image_size": 320, "settings": {"lr": 6e-4}},
    "lite2 + 320": {"backbone": "efficientnet_lite2", "image_size": 320},
    # from the defaults with lr 6e-4
    "lite1 + 320 + lr 6e-4 + stages 8+16": {"backbone": "efficientnet_lite1", "image_size": 320, "strides": (8, 16),
                                            "settings": {"lr": 6e-4}},
    "lite2 + 320 + lr 6e-4": {"backbone": "efficientnet_lite2", "image_size": 320, "settings": {"lr": 6e-4}},
}
NORMALISATIONS = ("train max", "train z", "log", f"train z clip {Z_CLIP:g}")
SHIPPED = (f"train z clip {Z_CLIP:g}", "top 1% mean")  # what adedge.train.cflow's graph computes
LATENCY_FRAME = 400
AGGREGATIONS = ("max", "top 1% mean", "blur 4 max")


def features_of(encoder: Encoder, samples: list, batch: int = 16) -> dict[str, torch.Tensor]:
    outputs = _run(encoder, samples, batch, no_progress, "features")
    return {name: torch.cat([o[name] for o in outputs]) for name in outputs[0]}


@torch.no_grad()
def log_likelihoods(head, features: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Each stage's per-position log-likelihood [N, 1, h, w] (double), before any normalisation."""
    return {flow.name: flow.log_likelihood(features[flow.name]).double() for flow in head.flows}


def stage_maps(log_p: dict[str, torch.Tensor], fit: dict[str, torch.Tensor], size: int, normalisation: str) -> torch.Tensor:
    """Anomaly maps [N, size, size]: per-stage log-likelihoods LOG_P normalised as NORMALISATION with
    the statistics of the fit images' FIT, upsampled, summed ("log <stage>": that stage's alone)."""
    total = 0
    for name, stage_log_p in log_p.items():
        if normalisation.startswith("log ") and normalisation != f"log {name}":
            continue
        fitted = fit[name]
        if normalisation == "train max":  # CFLOW's exp(log p - max), the maximum taken on training features
            stage = -torch.exp(stage_log_p - fitted.max())
        elif normalisation.startswith("train z"):  # standardised negative log-likelihood, "clip C": at most C
            stage = -(stage_log_p - fitted.mean()) / fitted.std()
            if normalisation.startswith("train z clip "):
                stage = stage.clamp(max=float(normalisation.removeprefix("train z clip ")))
        else:  # the plain negative log-likelihood
            stage = -stage_log_p
        total = total + F.interpolate(stage, size=(size, size), mode="bilinear", align_corners=False)
    return total[:, 0]


def _blur(maps: torch.Tensor, sigma: float) -> torch.Tensor:
    radius = int(4 * sigma + 0.5)
    x = torch.arange(-radius, radius + 1, dtype=maps.dtype)
    kernel = torch.exp(-(x**2) / (2 * sigma**2))
    kernel = kernel / kernel.sum()
    padded = F.pad(maps[:, None], (radius,) * 4, mode="reflect")
    blurred = F.conv2d(F.conv2d(padded, kernel.reshape(1, 1, 1, -1)), kernel.reshape(1, 1, -1, 1))
    return blurred[:, 0]


def score(maps: torch.Tensor, aggregation: str) -> np.ndarray:
    flat = (_blur(maps, 4.0) if aggregation.startswith("blur") else maps).flatten(1)
    if aggregation.startswith("top"):
        return flat.topk(max(1, flat.shape[1] // 100), dim=1).values.mean(1).numpy()
    return flat.amax(1).numpy()


def _encoder(variant: dict) -> Encoder:
    variant = BASELINE | variant
    backbone = create_backbone(variant["backbone"])
    backbone.keep_stages(list(backbone.stages_at(variant["strides"])))
    size = variant["image_size"]
    return Encoder(backbone, (size, size), DEFAULT.resize).eval()


def settings_of(variant: dict) -> CflowSettings:
    return CflowSettings(**(BASELINE_SETTINGS | variant.get("settings", {})))


def latency(variant: dict, frame_side: int, iterations: int = 100) -> float:
    """p50 ms of the VARIANT's exported f32 graph at batch 1 on a frame of FRAME_SIDE pixels square.
    The flows' weights do not change the time: an untrained head of the right shape is timed."""
    encoder = _encoder(variant)
    settings = settings_of(variant)
    with torch.no_grad():
        shapes = encoder(torch.zeros(1, frame_side, frame_side, 3, dtype=torch.uint8))
    specs = [{"name": name, "channels": f.shape[1], "height": f.shape[2], "width": f.shape[3]} for name, f in shapes.items()]
    head = CflowHead(specs, settings.condition, settings.blocks, settings.clamp)
    with tempfile.TemporaryDirectory() as scratch:
        path = export_onnx(Detector(encoder, head).eval(), Path(scratch) / "model.onnx")
        compiled = ov.Core().compile_model(convert_onnx(path), "CPU", {"INFERENCE_PRECISION_HINT": "f32", "PERFORMANCE_HINT": "LATENCY"})
    frame = np.random.default_rng(0).integers(0, 256, (1, frame_side, frame_side, 3), dtype=np.uint8)
    request, times = compiled.create_infer_request(), []
    for index in range(iterations + WARMUP):
        start = time.perf_counter()
        request.infer([frame])
        if index >= WARMUP:
            times.append((time.perf_counter() - start) * 1000)
    return float(np.median(times))


def _record(work: Path, category: Path, name: str) -> Path:
    return work / f"{category.name}-{name.replace(' ', '_')}.json"


def measure(category: Path, name: str, variant: dict, work: Path) -> dict:
    record = _record(work, category, name)
    if record.is_file():
        kept = json.loads(record.read_text())
        if f"{SHIPPED[0]} / {SHIPPED[1]}" in kept["scores"]:  # measured before with the scoring that ships now
            return kept
    torch.manual_seed(DEFAULT.seed)
    settings = settings_of(variant)
    fit_samples, held_back = held_back_split(require_train_images(open_dataset(category)), DEFAULT.seed)
    test = require_test_images(open_dataset(category))
    encoder = _encoder(variant)
    size = encoder.preprocess.size[0]
    started = time.perf_counter()
    fit = features_of(encoder, fit_samples)
    head, _ = fit_cflow_head(fit, settings, DEFAULT.seed, no_progress)
    train_seconds = time.perf_counter() - started
    features = features_of(encoder, test)
    held_features = features_of(encoder, held_back)
    labels = np.array([s.anomalous for s in test])
    masks = np.stack([ground_truth(s, (size, size)) for s in test])
    scores = {}
    fit_log_p, test_log_p, held_log_p = (log_likelihoods(head, f) for f in (fit, features, held_features))
    for normalisation in NORMALISATIONS + tuple(f"log {flow.name}" for flow in head.flows):
        maps = stage_maps(test_log_p, fit_log_p, size, normalisation)
        held_maps = stage_maps(held_log_p, fit_log_p, size, normalisation)
        for aggregation in AGGREGATIONS if normalisation in NORMALISATIONS else AGGREGATIONS[:1]:
            pixel_maps = _blur(maps, 4.0) if aggregation.startswith("blur") else maps
            test_scores = score(maps, aggregation)
            scores[f"{normalisation} / {aggregation}"] = {
                "image_auroc": auroc(labels, test_scores),
                "pixel_auroc": auroc(masks, pixel_maps.numpy()),
                "test_scores": test_scores.tolist(),
                "held_back_scores": score(held_maps, aggregation).tolist(),
            }
    result = {"variant": name, "category": category.name, "train_seconds": train_seconds,
              "frame_side": int(max(load_image(test[0].path).shape[:2])), "labels": labels.tolist(), "scores": scores}
    record.write_text(json.dumps(result, indent=1))
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=ROOT.parent.parent / "shared" / "data" / "mvtec")
    parser.add_argument("--variants", default=",".join(VARIANTS), help="Comma-separated variant names.")
    parser.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "adedge-ablation")
    parser.add_argument("--categories", default=None, help="Comma-separated categories (default: all under --data).")
    parser.add_argument("--name", default="cflow_ablation")
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    categories = sorted(d for d in args.data.iterdir() if (d / "train" / "good").is_dir())
    if args.categories:
        categories = [args.data / name for name in args.categories.split(",")]
    names = args.variants.split(",")
    for name in names:
        for category in categories:
            measure(category, name, VARIANTS[name], args.work)
    # the table holds every category measured so far for these variants (--categories only picks what to run now)
    categories = sorted({c for c in args.data.iterdir() if any(_record(args.work, c, n).is_file() for n in names)})
    rows = {(name, c.name): json.loads(_record(args.work, c, name).read_text()) for name in names for c in categories
            if _record(args.work, c, name).is_file()}
    machine = machine_description()
    # latency: once per architecture, all in this one run (so the figures compare), on a pill-sized frame
    timed: dict[str, float] = {}
    for name in names:
        variant = VARIANTS[name]
        # the graph's shape: backbone, input, stages and the flows' condition size (training settings do not change it)
        key = json.dumps(BASELINE | {k: v for k, v in variant.items() if k != "settings"} | {"condition": settings_of(variant).condition})
        timed[name] = timed.get(key) or latency(variant, LATENCY_FRAME)
        timed[key] = timed[name]
    shipped = f"{SHIPPED[0]} / {SHIPPED[1]}"
    columns = " | ".join(f"{c.name} image AUROC | {c.name} pixel AUROC | {c.name} train s" for c in categories)
    lines = [
        f"# CFLOW ablation: one change at a time from {BASELINE['backbone']}, {BASELINE['image_size']} px, stride 8/16/32 stages and "
        "the flows' default settings",
        "",
        f"Machine: {machine}. Every model is scored the way the graph ships ({shipped}); train s: feature extraction and",
        f"flow fitting; latency: the exported f32 graph, OpenVINO, batch 1, a {LATENCY_FRAME}x{LATENCY_FRAME} frame, p50 ms, all timed in",
        "one run after the training. Training ran on a shared 2-core machine: train times are rough.",
        "",
        f"| change | {columns} | latency ms |",
        "|---|" + "---|" * (3 * len(categories) + 1),
    ]
    for name in names:
        cells = " | ".join(
            f"{rows[name, c.name]['scores'][shipped]['image_auroc']:.4f} | {rows[name, c.name]['scores'][shipped]['pixel_auroc']:.4f} | "
            f"{rows[name, c.name]['train_seconds']:.0f}" if (name, c.name) in rows else "not run | | " for c in categories
        )
        lines.append(f"| {name} | {cells} | {timed[name]:.1f} |")
    lines += ["", "## How the map and the score are formed (defaults' flows; image / pixel AUROC)", "",
              "| normalisation / score | " + " | ".join(c.name for c in categories) + " |", "|---|" + "---|" * len(categories)]
    for scoring in next(r for (n, _), r in rows.items() if n == names[0])["scores"]:
        cells = " | ".join(
            f"{rows[names[0], c.name]['scores'][scoring]['image_auroc']:.4f} / {rows[names[0], c.name]['scores'][scoring]['pixel_auroc']:.4f}"
            if scoring in rows.get((names[0], c.name), {}).get("scores", {}) else "" for c in categories
        )
        lines.append(f"| {scoring} | {cells} |")
    record = {"machine": machine, "latency_ms": {n: timed[n] for n in names},
              "rows": [{k: v for k, v in r.items() if k != "labels"} | {"scores": {s: {m: x for m, x in v.items() if m.endswith("auroc")} for s, v in r["scores"].items()}}
                       for r in rows.values()]}
    write_results(args.name, record, lines)


if __name__ == "__main__":
    main()
