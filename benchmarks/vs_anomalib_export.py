"""Export anomalib's Dfm and Cflow as anomalib's users do by default, for benchmarks/vs_anomalib.py.

Runs in anomalib's own venv (never adedge's). Same backbones and layers as the adedge side:
resnet18 with random weights (timing does not depend on what was learned, and nothing is
downloaded). Dfm is fitted on a few random images (its PCA needs data); Cflow's decoders stay at
their initialisation. Each model is exported with `to_openvino` at its defaults (dynamic input
size, anomalib's pre- and post-processing in the graph), but for one thing: anomalib 2.7 traces its
export with a batch of 2, and Dfm's graph comes out fixed at that batch, so Dfm is exported with a
batch of 1 (height and width dynamic as by default).

    python vs_anomalib_export.py OUT   ->   OUT/dfm/weights/openvino/model.xml, OUT/cflow/...
"""

import sys
from pathlib import Path

import torch
from anomalib.models import Cflow, Dfm

BACKBONE = "resnet18"
DFM_LAYER = "layer3"
CFLOW_LAYERS = ("layer2", "layer3", "layer4")


def main() -> None:
    out = Path(sys.argv[1])
    torch.manual_seed(0)
    dfm = Dfm(backbone=BACKBONE, layer=DFM_LAYER, pre_trained=False)
    dfm.model.train()
    with torch.no_grad():
        for _ in range(4):
            dfm.model(torch.rand(8, 3, 256, 256))  # collects the features the PCA is fitted on
    dfm.model.fit()
    dynamic_size = ({2: torch.export.Dim("height"), 3: torch.export.Dim("width")},)
    dfm.eval().to_openvino(out / "dfm", onnx_kwargs={"dynamic_shapes": dynamic_size})
    Cflow(backbone=BACKBONE, layers=CFLOW_LAYERS, pre_trained=False).eval().to_openvino(out / "cflow")


if __name__ == "__main__":
    main()
