"""INT8 post-training quantisation with NNCF, calibrated on good training images, accuracy-controlled.

The drop is measured on about 20 of the run's good training images and on copies of them carrying
synthetic defects (the only labelled data a good-images-only run has): image and pixel AUROC of the INT8 graph
against the float graph. If quantising every layer NNCF would loses more than the bound, the heads
(PCA, flows: their matmul, exp, tanh and log-det path), resizing, score normalisation and the stem
stay in float and only the backbone's later convolutions are quantised; if that still loses too
much, nothing is exported and the user is told by how much.

The stem matters more than its 3% of the FLOPs: on MVTec bottle, quantising every convolution cost
CFLOW 0.9 and DFM 1.2 points of pixel AUROC, keeping the first two in float 0.02 and 0.18, and the
synthetic-defect proxy had not seen the difference.
"""

from pathlib import Path

import cv2
import numpy as np
import openvino as ov

from adedge.bundle import QuantizationReport
from adedge.data.datasets import open_dataset
from adedge.data.images import load_image
from adedge.data.synthetic import add_defect
from adedge.errors import AdedgeError
from adedge.export.quiet import quiet
from adedge.formats import RunInfo
from adedge.metrics import evaluate
from adedge.train.models import model_plugin

CALIBRATION_IMAGES = 300
DEFAULT_MAX_DROP = 0.005  # half a point of image or pixel AUROC
# besides the model's head (its plug-in names the op types), the op types NNCF would otherwise quantise
# in resizing, normalisation, the backbone's residual Adds and the calibrated outputs: kept in float
# when only convolutions are quantised
GRAPH_OP_TYPES = ("Interpolate", "Subtract", "Divide", "Multiply", "Add", "Sigmoid", "Greater")
STEM_CONVOLUTIONS = 2  # the first convolutions in graph order: the stem and the first block's
BATCH = 8
VALIDATION_IMAGES = 20


def int8_images(info: RunInfo) -> tuple[list[Path], list[Path]]:
    """The run's training images (for calibration) and about VALIDATION_IMAGES of them, evenly spaced
    (for validation: the drop compares the INT8 graph with the float one on the same frames),
    checked before any export work starts: INT8 export cannot go on without them."""
    root = Path(info.dataset.root)
    if not root.is_dir():
        raise AdedgeError(f"INT8 calibration needs the training images the run was fitted on, at {root}, which is gone")
    fit = [s.path for s in open_dataset(root).train] if any(root.iterdir()) else []
    if not fit:
        raise AdedgeError(f"INT8 calibration needs the training images the run was fitted on; none are left at {root}")
    return fit, fit[:: max(1, len(fit) // VALIDATION_IMAGES)]


def _validation_set(paths: list[Path], size: tuple[int, int], seed: int) -> tuple[list[np.ndarray], np.ndarray, np.ndarray]:
    """Good frames at the model's size, and copies with a synthetic defect (and its mask)."""
    good = [cv2.resize(load_image(p), size[::-1], interpolation=cv2.INTER_AREA) for p in paths]
    rng = np.random.default_rng(seed)
    defective, masks = zip(*(add_defect(image, rng) for image in good))
    labels = np.repeat([False, True], len(good))
    return good + list(defective), labels, np.concatenate([np.zeros((len(good), *size), bool), np.stack(masks)])


def _accuracy(model: ov.Model, images: list[np.ndarray], labels: np.ndarray, masks: np.ndarray) -> dict[str, float]:
    compiled = ov.Core().compile_model(model, "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
    request = compiled.create_infer_request()
    maps, scores = [], []
    for start in range(0, len(images), BATCH):
        results = request.infer({0: np.stack(images[start : start + BATCH])})
        maps.append(results[compiled.output("anomaly_map")][:, 0])
        scores.append(results[compiled.output("pred_score")])
    metrics = evaluate(np.concatenate(scores), labels, np.concatenate(maps), masks)
    return {"image_auroc": metrics["image_auroc"], "pixel_auroc": metrics["pixel_auroc"]}


INT8_MODES = ("all layers", "convolutions after the stem")  # tried in this order


def quantize_int8(
    model: ov.Model, info: RunInfo, images: tuple[list[Path], list[Path]], max_drop: float, modes: tuple[str, ...] = INT8_MODES
) -> tuple[ov.Model, QuantizationReport]:
    """Quantise MODEL (the float graph of run INFO) in the first of MODES that loses at most MAX_DROP
    on IMAGES (from int8_images); returns the INT8 model and what was measured."""
    import nncf

    size = tuple(info.image_size)
    fit, validation = images
    calibration = [load_image(p)[None] for p in fit[:CALIBRATION_IMAGES]]  # frames as they come
    dataset = nncf.Dataset(calibration)
    images, labels, masks = _validation_set(validation, size, info.seed)
    reference = _accuracy(model, images, labels, masks)
    convolutions = [op.get_friendly_name() for op in model.get_ordered_ops() if op.get_type_name() in ("Convolution", "GroupConvolution")]
    float_types = sorted(set(GRAPH_OP_TYPES) | set(model_plugin(info.model).float_op_types))
    stem = nncf.IgnoredScope(types=float_types, names=convolutions[:STEM_CONVOLUTIONS], validate=False)
    ignored_scopes = dict(zip(INT8_MODES, (None, stem)))
    attempts = []
    for mode in modes:
        ignored = ignored_scopes[mode]
        with quiet("nncf"):
            quantized = nncf.quantize(model, dataset, subset_size=len(calibration), ignored_scope=ignored)
        measured = _accuracy(quantized, images, labels, masks)
        drop = max(reference[k] - measured[k] for k in reference)
        attempts.append({"mode": mode, **measured, "drop": drop})
        if drop <= max_drop:
            return quantized, QuantizationReport(mode, len(calibration), len(images), max_drop, reference, attempts)
    tried = "; ".join(f"{a['mode']}: {100 * a['drop']:.2f}" for a in attempts)
    raise AdedgeError(
        f"INT8 loses more AUROC than --max-drop {max_drop} allows on {len(images)} validation images "
        f"(points lost, {tried}); export fp32, fp16 or bf16 instead, or raise --max-drop"
    )
