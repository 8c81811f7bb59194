"""Training: read the data, extract frozen-backbone features, fit the model's head, calibrate, save the run.

The backbone is frozen, so the features of every training image (and of a copy of each with a
synthetic defect drawn on it) are extracted once. Calibration scores each training image with a head
fitted on the other folds of those cached features (out of fold), then the head that ships is
fitted on all of them."""

import dataclasses
import math
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from adedge import __version__, defaults
from adedge.choices import Resize, choice
from adedge.data.datasets import Sample, ground_truth, has_masks, open_dataset, require_test_images, require_train_images
from adedge.data.defects import defective_copies
from adedge.data.images import image_shape, load_image
from adedge.errors import AdedgeError
from adedge.fileio import check_output_folder
from adedge.formats import RUN_FORMAT_VERSION, SIZE_STEP, Calibration, DatasetInfo, RunInfo, aspect_size, check_image_size
from adedge.progress import Say, Track, no_lines, no_progress
from adedge.train.backbones import create_backbone
from adedge.train.calibration import (
    MIN_CALIBRATION_IMAGES,
    calibrate_on_good,
    calibrate_on_labelled,
    check_false_reject,
)
from adedge.train.checkpoint import RUN_JSON, save_run
from adedge.train.detector import Detector, Encoder
from adedge.train.models import ModelPlugin, model_plugin, model_settings

Features = dict[str, torch.Tensor]


@dataclass(frozen=True)
class TrainConfig:
    """Everything `adedge train` takes; defaults are what a plant engineer gets without flags."""

    data: Path
    out: Path
    model: str = "dfm"
    category: str | None = None
    backbone: str = defaults.BACKBONE
    weights: str | None = None
    image_size: int | tuple[int, int] | None = None  # N (square) or (height, width); default: the plug-in's size in the parts' aspect
    seed: int = defaults.SEED
    val_data: Path | None = None
    batch_size: int = 16
    stages: tuple[str, ...] | None = None  # default: the model plug-in's strides
    resize: str = defaults.RESIZE
    settings: dict[str, object] = field(default_factory=dict)  # the model's settings over its defaults
    false_reject: float = defaults.FALSE_REJECT


def check_seed(seed: int) -> None:
    """Every RNG adedge seeds (numpy's included) takes 0 to 2**32 - 1."""
    if not 0 <= seed < 2**32:
        raise AdedgeError(f"--seed must be from 0 to {2**32 - 1}, got {seed}")


def _batches(samples: list[Sample], batch_size: int) -> list[list[Sample]]:
    return [samples[i : i + batch_size] for i in range(0, len(samples), batch_size)]


def _same_size_runs(images: list[np.ndarray]) -> list[np.ndarray]:
    """Consecutive images of one size stacked into a batch each (the graph takes frames of any size)."""
    runs: list[list[np.ndarray]] = []
    for image in images:
        if runs and runs[-1][0].shape == image.shape:
            runs[-1].append(image)
        else:
            runs.append([image])
    return [np.stack(run) for run in runs]


@torch.no_grad()
def _run(
    fn: Callable, samples: list[Sample], batch_size: int, track: Track, what: str, prepare: Callable[[list], list] = list
) -> list:
    """FN on the decoded frames of SAMPLES (each batch's turned into frames by PREPARE), in batches;
    one output per batch of same-size frames."""
    outputs = []
    for batch in track(_batches(samples, batch_size), what):
        outputs += [fn(torch.from_numpy(frames)) for frames in _same_size_runs(prepare([load_image(s.path) for s in batch]))]
    return outputs


def _folds(count: int, folds: int, seed: int) -> list[np.ndarray]:
    """COUNT indices shuffled (seeded) into FOLDS parts of near-equal size, each sorted."""
    order = np.random.default_rng(seed).permutation(count)
    return [np.sort(part) for part in np.array_split(order, min(folds, count))]


def _subset(features: Features, index: np.ndarray) -> Features:
    return {name: f[torch.from_numpy(index)] for name, f in features.items()}


@torch.no_grad()
def _head_scores(head: torch.nn.Module, features: Features, size: tuple[int, int], batch_size: int) -> tuple[np.ndarray, np.ndarray]:
    """Raw scores [N] and anomaly-map maxima [N] of HEAD on cached FEATURES."""
    count = len(next(iter(features.values())))
    scores, maxima = [], []
    for start in range(0, count, batch_size):
        anomaly_map, score = head(_subset(features, np.arange(start, min(start + batch_size, count))), size)
        scores.append(score)
        maxima.append(anomaly_map.flatten(1).amax(1))
    return torch.cat(scores).double().numpy(), torch.cat(maxima).double().numpy()


def out_of_fold_scores(
    plugin: ModelPlugin, settings: object, features: Features, defect_features: Features, size: tuple[int, int], seed: int,
    batch_size: int, track: Track = no_progress, say: Say = no_lines,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Raw scores and map maxima of every good training image, and raw scores of its copy with a
    synthetic defect, each from a head fitted on the other folds (the plug-in's calibration_folds)."""
    count = len(next(iter(features.values())))
    good, maxima, defects = np.empty(count), np.empty(count), np.empty(count)
    folds = _folds(count, plugin.calibration_folds, seed)
    for number, held in enumerate(folds, 1):
        started = time.perf_counter()
        head, _ = plugin.fit(_subset(features, np.setdiff1d(np.arange(count), held)), settings, seed, track)
        head.eval()
        good[held], maxima[held] = _head_scores(head, _subset(features, held), size, batch_size)
        defects[held], _ = _head_scores(head, _subset(defect_features, held), size, batch_size)
        say(f"calibration fold {number}/{len(folds)}: fitted without its {len(held)} images and scored them in {time.perf_counter() - started:.1f} s")
    return good, maxima, defects


def _raw(detector: Detector, samples: list[Sample], batch_size: int, track: Track, what: str) -> tuple[np.ndarray, np.ndarray]:
    """Raw anomaly maps [N, h, w] and scores [N] of SAMPLES."""
    outputs = _run(detector.raw, samples, batch_size, track, what)
    return torch.cat([m for m, _ in outputs])[:, 0].numpy(), torch.cat([s for _, s in outputs]).numpy()


def _calibrate_on_labelled(detector: Detector, config: TrainConfig, val_samples: list[Sample], track: Track) -> Calibration:
    maps, scores = _raw(detector, val_samples, config.batch_size, track, "calibrating")
    labels = np.array([s.anomalous for s in val_samples])
    masks = None
    if has_masks(val_samples):
        masks = np.stack([ground_truth(s, detector.image_size) for s in val_samples])
    return calibrate_on_labelled(scores, labels, maps, masks)


def _require_finite(detector: Detector) -> None:
    """Fail closed: a detector with a non-finite weight or constant would pass or fail parts at random."""
    broken = [name for name, tensor in detector.state_dict().items() if tensor.is_floating_point() and not torch.isfinite(tensor).all()]
    if broken:
        raise AdedgeError(
            f"training produced non-finite values ({', '.join(broken[:3])}{', ...' if len(broken) > 3 else ''}); nothing was "
            "written: check the images and weights, or train with a lower learning rate"
        )


def _features(encoder: Encoder, samples: list[Sample], batch_size: int, track: Track, what: str,
              prepare: Callable[[list], list] = list) -> Features:
    """The backbone's features {stage: [N, C, h, w]} of SAMPLES (as PREPARE turns them into frames)."""
    outputs = _run(encoder, samples, batch_size, track, what, prepare)
    features = {name: torch.cat([f[name] for f in outputs]) for name in encoder.backbone.return_stages}
    broken = [name for name, f in features.items() if not torch.isfinite(f).all()]
    if broken:
        raise AdedgeError(f"the backbone gave non-finite features ({', '.join(broken)}); nothing was written: check the --weights file")
    return features


def parts_aspect(samples: list[Sample]) -> float:
    """The training images' median height / width, read from their headers."""
    return float(np.median([height / width for height, width in map(image_shape, (s.path for s in samples))]))


def _input_size(requested: tuple[int, int] | None, plugin: ModelPlugin, settings: object, stride: int,
                samples: list[Sample]) -> tuple[int, int]:
    """The model's input size: REQUESTED, or about the plug-in's size squared in the parts' aspect,
    each side a multiple of the deepest STRIDE times the plug-in's grid multiple (and of SIZE_STEP)."""
    if requested is not None:
        return requested
    step = math.lcm(SIZE_STEP, stride * plugin.grid_multiple(settings))
    return aspect_size(plugin.image_size, parts_aspect(samples), step)


def train(config: TrainConfig, track: Track = no_progress, say: Say = no_lines) -> RunInfo:
    """Fit CONFIG.model on the good images of CONFIG.data, calibrate it and write the run folder;
    SAY gets a line as each stage ends."""
    plugin = model_plugin(config.model)
    settings = model_settings(plugin, config.settings)
    requested = config.image_size
    requested = None if requested is None else check_image_size((requested, requested) if isinstance(requested, int) else tuple(requested))
    choice(Resize, config.resize, "--resize")
    check_seed(config.seed)
    check_false_reject(config.false_reject)
    check_output_folder(config.out, RUN_JSON)
    val_samples = require_test_images(open_dataset(config.val_data, config.category)) if config.val_data else []
    has_masks(val_samples)  # a set with some masks missing is refused now, not after training
    started = time.perf_counter()
    random.seed(config.seed)
    np.random.seed(config.seed)
    torch.manual_seed(config.seed)
    dataset = open_dataset(config.data, config.category)
    train_samples = require_train_images(dataset)
    if config.val_data is None and len(train_samples) < MIN_CALIBRATION_IMAGES:
        raise AdedgeError(f"need at least {MIN_CALIBRATION_IMAGES} good training images to fit and calibrate; found {len(train_samples)}")
    backbone = create_backbone(config.backbone, config.weights)
    stages = list(config.stages or backbone.stages_at(plugin.strides))
    if plugin.stage_count is not None and len(stages) != plugin.stage_count:
        raise AdedgeError(f"{plugin.name} uses {plugin.stage_count} backbone stage(s), got {len(stages)}: {', '.join(stages)}")
    backbone.keep_stages(stages)
    size = _input_size(requested, plugin, settings, max(backbone.stage(s).stride for s in stages), train_samples)
    encoder = Encoder(backbone, size, config.resize).eval()
    features = _features(encoder, train_samples, config.batch_size, track, "extracting features")
    say(f"features of {len(train_samples)} images at {size[0]}x{size[1]} extracted in {time.perf_counter() - started:.1f} s")
    calibration_seconds = 0.0
    if config.val_data is None:
        rng = np.random.default_rng(config.seed)
        defect_features = _features(encoder, train_samples, config.batch_size, track, "extracting features of synthetic defects",
                                    lambda images: defective_copies(images, rng))
        calibration_started = time.perf_counter()
        scores = out_of_fold_scores(plugin, settings, features, defect_features, size, config.seed, config.batch_size, track, say)
        calibration_seconds = time.perf_counter() - calibration_started
    fit_started = time.perf_counter()
    head, losses = plugin.fit(features, settings, config.seed, track)
    say(f"{plugin.name} fitted on all {len(train_samples)} images in {time.perf_counter() - fit_started:.1f} s")
    detector = Detector(encoder, head).eval()
    if config.val_data is None:
        calibration = calibrate_on_good(*scores, config.false_reject, config.seed)
    else:
        calibration = _calibrate_on_labelled(detector, config, val_samples, track)
    detector.calibrate(calibration)
    _require_finite(detector)
    info = RunInfo(
        format_version=RUN_FORMAT_VERSION,
        adedge_version=__version__,
        model=config.model,
        backbone=config.backbone,
        stages=list(backbone.return_stages),
        image_size=list(size),
        resize=config.resize,
        settings=dataclasses.asdict(settings),
        head=head.config(),
        calibration=calibration,
        dataset=DatasetInfo(
            root=str(dataset.root),
            category=dataset.category,
            layout=dataset.layout,
            fit_images=len(train_samples),
        ),
        seed=config.seed,
        losses=losses,
        train_seconds=round(time.perf_counter() - started, 2),
        calibration_seconds=round(calibration_seconds, 2),
    )
    save_run(config.out, detector, info)
    return info
