"""The run folder: run.json (how to rebuild the detector, how it was trained) + checkpoint.pt (tensors only).

The checkpoint loads with torch.load(weights_only=True): no pickled code, safe to share.
"""

import json
from pathlib import Path

import torch

from adedge import __version__
from adedge.errors import AdedgeError
from adedge.fileio import atomic_directory
from adedge.train.backbones import create_backbone, RANDOM_WEIGHTS
from adedge.train.cflow import CflowHead
from adedge.train.detector import Detector, Encoder
from adedge.train.dfm import DFMHead

RUN_FORMAT_VERSION = 1
RUN_JSON = "run.json"
CHECKPOINT = "checkpoint.pt"
HEADS = {"dfm": DFMHead, "cflow": CflowHead}


def save_run(out: Path | str, detector: Detector, info: dict) -> Path:
    """Write the run folder atomically; INFO holds model, backbone, stages, head config and provenance."""
    info = {"format_version": RUN_FORMAT_VERSION, "adedge_version": __version__, **info}
    with atomic_directory(out, RUN_JSON) as scratch:
        torch.save(detector.state_dict(), scratch / CHECKPOINT)
        (scratch / RUN_JSON).write_text(json.dumps(info, indent=2) + "\n")
    return Path(out)


def load_run(run_dir: Path | str) -> tuple[Detector, dict]:
    """Rebuild the trained detector from a run folder, refusing folders that are not one."""
    run_dir = Path(run_dir)
    info_file, weights_file = run_dir / RUN_JSON, run_dir / CHECKPOINT
    if not info_file.is_file() or not weights_file.is_file():
        raise AdedgeError(f"{run_dir} is not an adedge run folder (expected {RUN_JSON} and {CHECKPOINT})")
    try:
        info = json.loads(info_file.read_text())
    except json.JSONDecodeError as exc:
        raise AdedgeError(f"{info_file} is not valid JSON: {exc}") from None
    if info.get("format_version") != RUN_FORMAT_VERSION:
        raise AdedgeError(
            f"{run_dir} has run format {info.get('format_version')!r}; this adedge {__version__} reads {RUN_FORMAT_VERSION}"
        )
    backbone = create_backbone(info["backbone"], RANDOM_WEIGHTS)
    backbone.keep_stages(info["stages"])
    detector = Detector(Encoder(backbone), HEADS[info["model"]](**info["head"]), tuple(info["image_size"]))
    try:
        detector.load_state_dict(torch.load(weights_file, map_location="cpu", weights_only=True), strict=True)
    except Exception as exc:  # truncated file, wrong tensors: either way the run is damaged
        raise AdedgeError(f"{weights_file} does not match {info_file}: {str(exc).splitlines()[0]}") from None
    return detector.eval(), info
