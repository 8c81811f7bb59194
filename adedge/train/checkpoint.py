"""The run folder: run.json (how to rebuild the detector, how it was trained) + checkpoint.pt (tensors only).

The checkpoint loads with torch.load(weights_only=True): no pickled code, safe to share.
"""

import json
from pathlib import Path

import torch

from adedge.errors import AdedgeError
from adedge.fileio import atomic_directory
from adedge.formats import RUN_FORMAT_VERSION, RunInfo, read_record, to_dict
from adedge.train.backbones import RANDOM_WEIGHTS, create_backbone
from adedge.train.detector import Detector, Encoder
from adedge.train.models import model_plugin

RUN_JSON = "run.json"
CHECKPOINT = "checkpoint.pt"


def save_run(out: Path | str, detector: Detector, info: RunInfo) -> Path:
    """Write the run folder atomically."""
    with atomic_directory(out, RUN_JSON) as scratch:
        try:
            torch.save(detector.state_dict(), scratch / CHECKPOINT)
        except RuntimeError as exc:  # torch reports a failed write (a full disk) as a RuntimeError
            raise AdedgeError(f"cannot write {Path(out) / CHECKPOINT} (is the disk full?): {str(exc).splitlines()[0]}") from None
        (scratch / RUN_JSON).write_text(json.dumps(to_dict(info), indent=2) + "\n")
    return Path(out)


def load_run(run_dir: Path | str) -> tuple[Detector, RunInfo]:
    """Rebuild the trained detector from a run folder, refusing folders that are not one."""
    run_dir = Path(run_dir)
    info_file, weights_file = run_dir / RUN_JSON, run_dir / CHECKPOINT
    if not info_file.is_file() or not weights_file.is_file():
        raise AdedgeError(f"{run_dir} is not an adedge run folder (expected {RUN_JSON} and {CHECKPOINT})")
    info = read_record(RunInfo, info_file, RUN_FORMAT_VERSION)
    try:
        plugin = model_plugin(info.model)
        backbone = create_backbone(info.backbone, RANDOM_WEIGHTS)
        backbone.keep_stages(info.stages)
        head = plugin.build_head(info.head)
        detector = Detector(Encoder(backbone, tuple(info.image_size), info.resize), head)
        detector.load_state_dict(torch.load(weights_file, map_location="cpu", weights_only=True), strict=True)
    except AdedgeError as exc:
        raise AdedgeError(f"{info_file}: {exc}") from None
    except Exception as exc:  # wrong head config, truncated file, wrong tensors: either way the run is damaged
        raise AdedgeError(f"{weights_file} does not match {info_file}: {str(exc).splitlines()[0]}") from None
    return detector.eval(), info
