"""Export anomalib's models as anomalib's users do by default, for benchmarks/vs_anomalib.py.

Runs in anomalib's own venv (never adedge's). Two sets, each exported with `to_openvino` at its
defaults (dynamic input size, anomalib's pre- and post-processing in the graph):
- OUT/dfm, OUT/cflow: the same backbones and layers as the adedge side of the like-for-like table,
  resnet18 with random weights;
- OUT/defaults/dfm, .../cflow, .../patchcore: `Dfm()`, `Cflow()` and `Patchcore()` as constructed
  with no arguments but `pre_trained=False` (the same graphs, without downloading weights: timing
  does not depend on what was learned). PatchCore's memory bank has the size of its default 10 %
  coreset of the patches of FIT_IMAGES images, as many as MVTec bottle's training set: the size a
  user's first part gives (filled with a random choice of the patches, see export_patchcore).
Dfm is fitted on a few random images (its PCA needs data); Cflow's decoders stay at their
initialisation. anomalib 2.7 traces its export with a batch of 2, and Dfm's and Patchcore's graphs
come out fixed at that batch, so they are exported with a batch of 1 (height and width dynamic as by default).

    python vs_anomalib_export.py OUT
"""

import sys
from pathlib import Path

import torch
from anomalib.models import Cflow, Dfm, Patchcore

BACKBONE = "resnet18"
DFM_LAYER = "layer3"
CFLOW_LAYERS = ("layer2", "layer3", "layer4")
FIT_IMAGES = 209  # MVTec bottle's training images
DYNAMIC_SIZE = ({2: torch.export.Dim("height"), 3: torch.export.Dim("width")},)


def export_dfm(dfm: Dfm, out: Path) -> None:
    dfm.model.train()
    with torch.no_grad():
        for _ in range(4):
            dfm.model(torch.rand(8, 3, 256, 256))  # collects the features the PCA is fitted on
    dfm.model.fit()
    dfm.eval().to_openvino(out, onnx_kwargs={"dynamic_shapes": DYNAMIC_SIZE})


def export_patchcore(patchcore: Patchcore, out: Path) -> None:
    patchcore.model.train()
    with torch.no_grad():
        for start in range(0, FIT_IMAGES, 8):
            patchcore.model(torch.rand(min(8, FIT_IMAGES - start), 3, 256, 256))  # stores the patch embeddings
    # the bank the default coreset gives (coreset_sampling_ratio of the patches), filled with a random
    # choice of them: anomalib's greedy selection would take about 1.5 h on 2 cores here, and the
    # time to score a frame depends on the bank's size, not on which patches it holds
    patches = torch.vstack(patchcore.model.embedding_store)
    patchcore.model.embedding_store.clear()
    keep = int(patches.shape[0] * patchcore.coreset_sampling_ratio)
    patchcore.model.memory_bank = patches[torch.randperm(patches.shape[0])[:keep]]
    print(f"PatchCore memory bank: {tuple(patchcore.model.memory_bank.shape)}", flush=True)
    patchcore.eval().to_openvino(out, onnx_kwargs={"dynamic_shapes": DYNAMIC_SIZE})


def main() -> None:
    out = Path(sys.argv[1])
    torch.manual_seed(0)
    exports = {
        out / "dfm": lambda folder: export_dfm(Dfm(backbone=BACKBONE, layer=DFM_LAYER, pre_trained=False), folder),
        out / "cflow": lambda folder: Cflow(backbone=BACKBONE, layers=CFLOW_LAYERS, pre_trained=False).eval().to_openvino(folder),
        out / "defaults" / "dfm": lambda folder: export_dfm(Dfm(pre_trained=False), folder),
        out / "defaults" / "cflow": lambda folder: Cflow(pre_trained=False).eval().to_openvino(folder),
        out / "defaults" / "patchcore": lambda folder: export_patchcore(Patchcore(pre_trained=False), folder),
    }
    for folder, export in exports.items():
        if not (folder / "weights" / "openvino" / "model.xml").is_file():  # one exported before is kept
            export(folder)


if __name__ == "__main__":
    main()
