"""INT8 post-training quantisation with NNCF, calibrated on good training images, accuracy-controlled.

The loss is measured on good training images held back from NNCF's calibration, whole frames as
they come (through the graph's own resize), and on copies of them with the subtle synthetic
defects training calibrates with (adedge.data.defects): the only labelled data a good-images-only
run has. An attempt is refused when its image or pixel AUROC falls more than the bound below the
float graph's, or when more than MAX_VERDICTS_CHANGED of those frames land on another side of the
bundle's cut-offs (NG, CHECK) than with the float graph: AUROC alone saturates where the defects
are easy, and missed what INT8 cost pill before. If quantising every layer loses too much, the
heads (PCA, flows: their matmul, exp, tanh and log-det path), resizing, score normalisation and the
stem stay in float and only the backbone's later convolutions are quantised; if that still loses
too much, nothing is exported and the user is told by how much.

The stem matters more than its 3% of the FLOPs: on MVTec bottle, quantising every convolution cost
CFLOW 0.9 and DFM 1.2 points of pixel AUROC, keeping the first two in float 0.02 and 0.18.
"""

from pathlib import Path

import numpy as np
import openvino as ov

from adedge.bundle import QuantizationReport
from adedge.data.datasets import open_dataset
from adedge.data.defects import defective_copies
from adedge.data.images import load_image, resize_mask
from adedge.errors import AdedgeError
from adedge.export.isolated import run_isolated
from adedge.export.quiet import quiet
from adedge.formats import RunInfo
from adedge.metrics import evaluate
from adedge.train.detector import operating_point
from adedge.train.models import model_plugin

CALIBRATION_IMAGES = 300
# besides the model's head (its plug-in names the op types), the op types NNCF would otherwise quantise
# in resizing, normalisation, the backbone's residual Adds and the calibrated outputs: kept in float
# when only convolutions are quantised
GRAPH_OP_TYPES = ("Interpolate", "Subtract", "Divide", "Multiply", "Add", "Sigmoid", "Greater")
STEM_CONVOLUTIONS = 2  # the first convolutions in graph order: the stem and the first block's
VALIDATION_IMAGES = 20  # good training images held back from calibration to validate on (each with 3 defective copies)
MAX_VERDICTS_CHANGED = 0.05  # the share of validation frames INT8 may move across a cut-off (or --max-drop, if larger)


def int8_images(info: RunInfo) -> tuple[list[Path], list[Path]]:
    """The run's training images for calibration, and about VALIDATION_IMAGES others, evenly
    spaced and held back from it, for validation; checked before any export work starts: INT8
    export cannot go on without them."""
    root = Path(info.dataset.root)
    if not root.is_dir():
        raise AdedgeError(f"INT8 calibration needs the training images the run was fitted on, at {root}, which is gone")
    fit = [s.path for s in open_dataset(root).train] if any(root.iterdir()) else []
    if len(fit) < 2:
        raise AdedgeError(f"INT8 calibration needs the training images the run was fitted on; {len(fit)} are left at {root}")
    held = set(fit[:: max(2, len(fit) // VALIDATION_IMAGES)][:VALIDATION_IMAGES])
    return [p for p in fit if p not in held], sorted(held)


def _validation_set(paths: list[Path], size: tuple[int, int], seed: int) -> tuple[list[np.ndarray], np.ndarray, np.ndarray]:
    """Whole good frames, copies with each kind of synthetic defect, their labels, and masks of the
    changed pixels at the model's SIZE (where the graph's anomaly map is)."""
    good = [load_image(p) for p in paths]
    defective = defective_copies(good, np.random.default_rng(seed))
    kinds = len(defective) // len(good)
    masks = [np.zeros(size, bool)] * len(good) + [
        resize_mask((copy != good[index // kinds]).any(axis=2), size) for index, copy in enumerate(defective)]
    return good + defective, np.repeat([False, True], [len(good), len(defective)]), np.stack(masks)


def _accuracy(model: ov.Model, frames: list[np.ndarray], labels: np.ndarray, masks: np.ndarray) -> dict:
    """Image and pixel AUROC of MODEL (in f32) on FRAMES, and its scores."""
    compiled = ov.Core().compile_model(model, "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
    request = compiled.create_infer_request()
    maps, scores = [], []
    for frame in frames:  # whole frames, which may differ in size
        results = request.infer({0: frame[None]})
        maps.append(results[compiled.output("anomaly_map")][0, 0])
        scores.append(float(results[compiled.output("pred_score")][0]))
    metrics = evaluate(np.array(scores), labels, np.stack(maps), masks)
    return {"image_auroc": metrics["image_auroc"], "pixel_auroc": metrics["pixel_auroc"], "scores": scores}


def _moved(reference: list[float], scores: list[float], cuts: list[float]) -> int:
    """How many frames' scores lie on another side of one of the CUTS than their REFERENCE scores."""
    before, after = np.array(reference)[:, None] > cuts, np.array(scores)[:, None] > cuts
    return int((before != after).any(axis=1).sum())


INT8_MODES = ("all layers", "convolutions after the stem")  # tried in this order


def quantize_int8_isolated(
    model: ov.Model, work: Path, info: RunInfo, images: tuple[list[Path], list[Path]], max_drop: float, modes: tuple[str, ...] = INT8_MODES
) -> tuple[ov.Model, QuantizationReport]:
    """quantize_int8 in a child process (adedge.export.isolated), through IR files in the folder WORK."""
    source, target = work / "float.xml", work / "int8.xml"
    ov.save_model(model, source, compress_to_fp16=False)
    report = run_isolated("quantising to INT8", _quantize_files, source, target, info, images, max_drop, modes)
    return ov.Core().read_model(target), report


def _quantize_files(
    source: Path, target: Path, info: RunInfo, images: tuple[list[Path], list[Path]], max_drop: float, modes: tuple[str, ...]
) -> QuantizationReport:
    model, report = quantize_int8(ov.Core().read_model(source), info, images, max_drop, modes)
    ov.save_model(model, target, compress_to_fp16=False)
    return report


def quantize_int8(
    model: ov.Model, info: RunInfo, images: tuple[list[Path], list[Path]], max_drop: float, modes: tuple[str, ...] = INT8_MODES
) -> tuple[ov.Model, QuantizationReport]:
    """Quantise MODEL (the float graph of run INFO) in the first of MODES that loses at most MAX_DROP
    on IMAGES (from int8_images); returns the INT8 model and what was measured."""
    import nncf

    calibration_paths, validation = images
    calibration = [load_image(p)[None] for p in calibration_paths[:CALIBRATION_IMAGES]]  # frames as they come
    dataset = nncf.Dataset(calibration)
    frames, labels, masks = _validation_set(validation, tuple(info.image_size), info.seed)
    point = operating_point(info.calibration)
    cuts = [point.ng_above] if point.check_above is None else [point.check_above, point.ng_above]
    float_run = _accuracy(model, frames, labels, masks)
    reference = {k: float_run[k] for k in ("image_auroc", "pixel_auroc")}
    convolutions = [op.get_friendly_name() for op in model.get_ordered_ops() if op.get_type_name() in ("Convolution", "GroupConvolution")]
    float_types = sorted(set(GRAPH_OP_TYPES) | set(model_plugin(info.model).float_op_types))
    stem = nncf.IgnoredScope(types=float_types, names=convolutions[:STEM_CONVOLUTIONS], validate=False)
    ignored_scopes = dict(zip(INT8_MODES, (None, stem)))
    attempts = []
    for mode in modes:
        with quiet("nncf"):
            quantized = nncf.quantize(model, dataset, subset_size=len(calibration), ignored_scope=ignored_scopes[mode])
        measured = _accuracy(quantized, frames, labels, masks)
        drop = max(reference[k] - measured[k] for k in reference)
        moved = _moved(float_run["scores"], measured["scores"], cuts)
        attempts.append({"mode": mode, "image_auroc": measured["image_auroc"], "pixel_auroc": measured["pixel_auroc"], "drop": drop,
                         "verdicts_changed": moved})
        if drop <= max_drop and moved <= max(MAX_VERDICTS_CHANGED, max_drop) * len(frames):
            return quantized, QuantizationReport(mode, len(calibration), len(frames), max_drop, reference, attempts)
    tried = "; ".join(f"{a['mode']}: {100 * a['drop']:.2f} points, {a['verdicts_changed']} verdicts" for a in attempts)
    raise AdedgeError(
        f"INT8 loses more than --max-drop {max_drop} AUROC allows, or changes more than {100 * max(MAX_VERDICTS_CHANGED, max_drop):.0f} % of the "
        f"verdicts, on {len(frames)} validation frames held back from calibration (lost, {tried}); export fp32, fp16 or bf16 "
        "instead, or raise --max-drop"
    )
