"""Training: read the data, extract frozen-backbone features, fit the head, calibrate, save the run."""

import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from adedge.data.datasets import Sample, ground_truth, open_dataset, require_test_images, require_train_images
from adedge.data.images import load_batch
from adedge.errors import AdedgeError
from adedge.progress import Track, no_progress
from adedge.train.backbones import backbone_spec, create_backbone
from adedge.train.calibration import Calibration, calibrate_on_good, calibrate_on_labelled
from adedge.train.cflow import fit_cflow_head
from adedge.train.checkpoint import save_run
from adedge.train.detector import Detector, Encoder
from adedge.train.dfm import fit_dfm_head

MODELS = ("dfm", "cflow")
HOLD_BACK_SHARE = 0.1


@dataclass(frozen=True)
class TrainConfig:
    """Everything `adedge train` takes; defaults are what a plant engineer gets without flags."""

    data: Path
    out: Path
    model: str = "dfm"
    category: str | None = None
    backbone: str = "efficientnet_lite0"
    weights: str | None = None
    image_size: int = 256
    seed: int = 42
    val_data: Path | None = None
    batch_size: int = 16
    stages: tuple[str, ...] | None = None  # default: the backbone's stride-16 stage (DFM), stride 8/16/32 (CFLOW)
    # DFM
    pool: int = 4
    variance: float = 0.97
    score: str = "fre"
    # CFLOW: the paper's flow and optimiser; epochs scaled to a 2-core CPU
    meta_epochs: int = 4
    sub_epochs: int = 2
    warmup_meta_epochs: int = 1
    fiber_batch: int = 256
    lr: float = 2e-4
    blocks: int = 8
    clamp: float = 1.9
    condition: int = 128

    def cflow_settings(self) -> dict:
        names = ("meta_epochs", "sub_epochs", "warmup_meta_epochs", "fiber_batch", "lr", "blocks", "clamp", "condition")
        return {name: getattr(self, name) for name in names}


def _batches(samples: list[Sample], batch_size: int) -> list[list[Sample]]:
    return [samples[i : i + batch_size] for i in range(0, len(samples), batch_size)]


@torch.no_grad()
def _run(fn: Callable, samples: list[Sample], size: tuple[int, int], batch_size: int, track: Track, what: str) -> list:
    return [fn(torch.from_numpy(load_batch([s.path for s in batch], size))) for batch in track(_batches(samples, batch_size), what)]


def _split(samples: list[Sample], seed: int) -> tuple[list[Sample], list[Sample]]:
    """Hold back a seeded 10% (at least 2) of the good training images for calibration."""
    held = max(2, round(len(samples) * HOLD_BACK_SHARE))
    if len(samples) < held + 2:
        raise AdedgeError(f"need at least {held + 2} good training images (2 to fit, {held} to calibrate); found {len(samples)}")
    shuffled = random.Random(seed).sample(samples, len(samples))
    return sorted(shuffled[held:], key=lambda s: s.path), sorted(shuffled[:held], key=lambda s: s.path)


def _calibrate(detector: Detector, config: TrainConfig, held_back: list[Sample], size: tuple[int, int], track: Track) -> Calibration:
    samples = held_back
    if config.val_data is not None:
        samples = require_test_images(open_dataset(config.val_data, config.category))
    outputs = _run(detector.raw, samples, size, config.batch_size, track, "calibrating")
    maps = torch.cat([m for m, _ in outputs])[:, 0].numpy()
    scores = torch.cat([s for _, s in outputs]).numpy()
    if config.val_data is None:
        return calibrate_on_good(scores, maps.reshape(len(maps), -1).max(axis=1))
    labels = np.array([s.anomalous for s in samples])
    masks = None
    if all(s.mask_path for s in samples if s.anomalous):
        masks = np.stack([ground_truth(s, size) for s in samples])
    return calibrate_on_labelled(scores, labels, maps, masks)


def _fit_dfm(config: TrainConfig, stage: str, features: torch.Tensor) -> torch.nn.Module:
    if config.pool < 1 or features.shape[-1] % config.pool:
        raise AdedgeError(f"--pool must divide the {features.shape[-1]}x{features.shape[-1]} feature map, got {config.pool}")
    return fit_dfm_head(features, stage, config.pool, config.variance, config.score)


def _check_cflow(config: TrainConfig) -> None:
    for name in ("meta_epochs", "sub_epochs", "fiber_batch", "blocks"):
        if getattr(config, name) < 1:
            raise AdedgeError(f"--{name.replace('_', '-')} must be at least 1, got {getattr(config, name)}")
    if config.lr <= 0 or config.clamp <= 0 or config.condition < 4 or config.condition % 4:
        raise AdedgeError("CFLOW needs --lr > 0, --clamp > 0 and a --condition that is a positive multiple of 4")


def train(config: TrainConfig, track: Track = no_progress) -> dict:
    """Fit CONFIG.model on the good images of CONFIG.data, calibrate it and write the run folder."""
    if config.model not in MODELS:
        raise AdedgeError(f"unknown model {config.model!r}; choose from {', '.join(MODELS)}")
    if config.image_size < 32 or config.image_size % 32:
        raise AdedgeError(f"--image-size must be a multiple of 32 and at least 32, got {config.image_size}")
    if config.model == "cflow":
        _check_cflow(config)
    started = time.perf_counter()
    random.seed(config.seed)
    np.random.seed(config.seed)
    torch.manual_seed(config.seed)
    dataset = open_dataset(config.data, config.category)
    train_samples = require_train_images(dataset)
    fit_samples, held_back = (train_samples, []) if config.val_data else _split(train_samples, config.seed)
    size = (config.image_size, config.image_size)
    spec = backbone_spec(config.backbone)
    default_stages = (spec.dfm_stage,) if config.model == "dfm" else spec.cflow_stages
    stages = list(config.stages or default_stages)
    if config.model == "dfm" and len(stages) != 1:
        raise AdedgeError(f"DFM uses one backbone stage, got {len(stages)}: {', '.join(stages)}")
    backbone = create_backbone(config.backbone, config.weights)
    backbone.keep_stages(stages)
    encoder = Encoder(backbone).eval()
    outputs = _run(encoder, fit_samples, size, config.batch_size, track, "extracting features")
    features = {name: torch.cat([f[name] for f in outputs]) for name in backbone.return_stages}
    history = {}
    if config.model == "dfm":
        head = _fit_dfm(config, stages[0], features[stages[0]])
    else:
        head, history = fit_cflow_head(features, config.cflow_settings(), config.seed, track)
    detector = Detector(encoder, head, size).eval()
    calibration = _calibrate(detector, config, held_back, size, track)
    for name in ("score_threshold", "score_scale", "map_threshold", "map_scale"):
        getattr(detector, name).fill_(getattr(calibration, name))
    info = {
        "model": config.model,
        "backbone": config.backbone,
        "stages": list(backbone.return_stages),
        "image_size": list(size),
        "head": head.config(),
        "calibration": calibration.to_dict(),
        "dataset": {
            "root": str(dataset.root),
            "category": dataset.category,
            "layout": dataset.layout,
            "fit_images": len(fit_samples),
            "held_back_images": len(held_back),
            "held_back": [str(s.path.relative_to(dataset.root)) for s in held_back],
        },
        "seed": config.seed,
        "losses": history,
        "train_seconds": round(time.perf_counter() - started, 2),
    }
    save_run(config.out, detector, info)
    return info
