"""Write the Detector as one ONNX graph: uint8 frames [N, H, W, 3] of any size -> the four outputs."""

import json
from pathlib import Path

import torch

from adedge.bundle import INPUT_NAME, OUTPUT_NAMES
from adedge.errors import AdedgeError
from adedge.export.quiet import quiet
from adedge.train.detector import Detector

MAX_BATCH = 4096
MAX_SIDE = 16384


def export_onnx(detector: Detector, path: Path, metadata: dict[str, str] | None = None) -> Path:
    """Export with the dynamo exporter (batch, height and width dynamic, weights embedded in the one
    file), and METADATA as the model's metadata_props."""
    height, width = detector.image_size
    example = torch.zeros(2, height + 30, width + 50, 3, dtype=torch.uint8)
    dims = {0: torch.export.Dim("batch", min=1, max=MAX_BATCH), 1: torch.export.Dim("height", min=8, max=MAX_SIDE),
            2: torch.export.Dim("width", min=8, max=MAX_SIDE)}
    try:
        with quiet("torch.onnx"):  # it warns that torchvision's ops are absent: irrelevant here
            torch.onnx.export(
                detector.eval(),
                (example,),
                str(path),
                dynamo=True,
                input_names=[INPUT_NAME],
                output_names=list(OUTPUT_NAMES),
                dynamic_shapes={INPUT_NAME: dims},
                external_data=False,
                verbose=False,
            )
    except Exception as exc:
        raise AdedgeError(f"ONNX export failed: {str(exc).splitlines()[0]}") from exc
    if metadata:
        import onnx

        model = onnx.load(str(path))
        for key, value in metadata.items():
            model.metadata_props.add(key=key, value=value)
        onnx.save(model, str(path))
    return path


def onnx_metadata(model_info: dict[str, str], adedge: dict) -> dict[str, str]:
    """metadata_props as OpenVINO Model API reads them (`model_info <key>`), plus adedge's own record."""
    return {**{f"model_info {key}": value for key, value in model_info.items()}, "adedge": json.dumps(adedge, sort_keys=True)}
