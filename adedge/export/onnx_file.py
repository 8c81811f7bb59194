"""Write the Detector as one ONNX graph: uint8 [N, H, W, 3] -> anomaly_map [N, 1, H, W], score [N]."""

from pathlib import Path

import torch

from adedge.errors import AdedgeError
from adedge.export.quiet import quiet
from adedge.runtime.bundle import INPUT_NAME, OUTPUT_NAMES
from adedge.train.detector import Detector

MAX_BATCH = 4096


def export_onnx(detector: Detector, path: Path) -> Path:
    """Export with the dynamo exporter, batch dimension dynamic, weights embedded in the one file."""
    height, width = detector.image_size
    example = torch.zeros(2, height, width, 3, dtype=torch.uint8)
    batch = torch.export.Dim("batch", min=1, max=MAX_BATCH)
    try:
        with quiet("torch.onnx"):  # it warns that torchvision's ops are absent: irrelevant here
            torch.onnx.export(
                detector.eval(),
                (example,),
                str(path),
                dynamo=True,
                input_names=[INPUT_NAME],
                output_names=list(OUTPUT_NAMES),
                dynamic_shapes={INPUT_NAME: {0: batch}},
                external_data=False,
                verbose=False,
            )
    except Exception as exc:
        raise AdedgeError(f"ONNX export failed: {str(exc).splitlines()[0]}") from exc
    return path
