"""PatchCore (Roth et al., CVPR 2022): a memory bank of locally aware patch features.

Each patch of the frame is described by a stride-8 and a stride-16 stage of the backbone, each
averaged over its neighbourhood (so a vector sees a little context), the stride-16 map brought to
the stride-8 grid, the two concatenated, optionally reduced by a fixed random projection. The memory
bank is a greedy k-centre coreset of the good training patches, capped at `bank` vectors whatever
the number of images, so the graph's size and latency do not grow with the training set.

`PatchcoreHead` is the export surface: a patch's anomaly is its distance to the nearest bank vector,
computed as |x|^2 - 2 x.B^T + |B|^2 and a ReduceMin (a MatMul: cdist would have ONNX Runtime build an
N x M x D tensor); the map is the patch distances, upsampled; the image score the largest of them.

The coreset is selected in two greedy passes, each farthest-point-first (k-centre): within each
image, then over the union of what each image kept, comparing patches in a random projection to
SELECTION_DIM values. Greedy k-centre on every patch at once would scan all of them once per bank
vector (300 images x 1024 patches x 4096 vectors); the two passes compare about 15 times fewer pairs,
and a union of per-part k-centre sets is itself a k-centre approximation of the whole (composable
core-sets). Memory stays linear in the patches: no N x N matrix.
"""

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from adedge.errors import AdedgeError
from adedge.progress import Track
from adedge.train.maps import upsample
from adedge.train.models import ModelPlugin

CANDIDATES = 4  # the per-image pass keeps this many times the bank's size in all, for the second pass to choose from
MIN_PER_IMAGE = 16  # ... and at least this many patches of each image
SELECTION_DIM = 32  # the greedy passes compare patches in a random projection to this many dimensions


@dataclass(frozen=True)
class PatchcoreSettings:
    """bank: the most vectors the memory bank holds (its size and the graph's latency grow with it);
    dim: the patch vector's length after a fixed random projection (0: no projection, the stages'
    channels concatenated); neighbourhood: the side of the square each patch feature is averaged over."""

    bank: int = 4096
    dim: int = 0
    neighbourhood: int = 3

    def __post_init__(self) -> None:
        if self.bank < 1:
            raise AdedgeError(f"PatchCore bank must be at least 1, got {self.bank}")
        if self.dim < 0:
            raise AdedgeError(f"PatchCore dim must be 0 (no projection) or more, got {self.dim}")
        if self.neighbourhood < 1 or self.neighbourhood % 2 == 0:
            raise AdedgeError(f"PatchCore neighbourhood must be an odd number from 1, got {self.neighbourhood}")


class PatchcoreHead(nn.Module):
    """Features of two stages -> (nearest-bank-vector distance map [N, 1, H, W], image score [N])."""

    def __init__(self, stages: list[str], neighbourhood: int, channels: int, dim: int, bank_size: int) -> None:
        super().__init__()
        self.stages, self.neighbourhood, self.channels, self.dim = list(stages), neighbourhood, channels, dim
        self.register_buffer("projection", torch.zeros(channels, dim) if dim else torch.zeros(0))
        self.register_buffer("bank", torch.zeros(bank_size, dim or channels))
        self.register_buffer("bank_norm", torch.zeros(bank_size))  # |B|^2 of each bank vector

    def config(self) -> dict:
        """Constructor arguments, stored in run.json so the checkpoint can be rebuilt."""
        return {"stages": self.stages, "neighbourhood": self.neighbourhood, "channels": self.channels, "dim": self.dim,
                "bank_size": self.bank.shape[0]}

    def patches(self, features: dict[str, torch.Tensor]) -> torch.Tensor:
        """Locally aware patch vectors [N, h * w, D] on the first stage's grid (h, w)."""
        k = self.neighbourhood
        maps = [F.avg_pool2d(features[s], k, stride=1, padding=k // 2, count_include_pad=False) if k > 1 else features[s]
                for s in self.stages]
        grid = maps[0].shape[-2:]
        x = torch.cat([maps[0]] + [upsample(m, grid) for m in maps[1:]], 1).flatten(2).transpose(1, 2)
        return x @ self.projection if self.dim else x

    def forward(self, features: dict[str, torch.Tensor], size: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.patches(features)
        # min over B of |x|^2 - 2 x.B^T + |B|^2 = |x|^2 + min(|B|^2 - 2 x.B^T): the [N, h * w, M] products are
        # made and reduced once (one fused matmul-and-add), |x|^2 added to the minimum only
        nearest = torch.addmm(self.bank_norm, x.flatten(0, 1), self.bank.T, alpha=-2).amin(-1).reshape(x.shape[:2])
        distance = (nearest + (x * x).sum(-1)).clamp_min(0).sqrt()  # [N, h * w]
        height, width = features[self.stages[0]].shape[-2:]
        patch_map = distance.reshape(-1, 1, height, width)
        return upsample(patch_map, size), distance.amax(1)


def _farthest_first(points: torch.Tensor, count: int) -> torch.Tensor:
    """Indices [I, COUNT] of COUNT points of each of the I sets POINTS [I, P, d] chosen greedily, each
    the farthest from those chosen before (k-centre), starting from each set's first point. Memory
    O(I x P): distances to the chosen ones are kept as each point's nearest so far."""
    sets, size, _ = points.shape
    squared = (points * points).sum(-1)
    nearest = torch.full((sets, size), math.inf)
    chosen = torch.zeros(sets, count, dtype=torch.long)
    rows = torch.arange(sets)
    for n in range(1, count):
        last = points[rows, chosen[:, n - 1]]  # [I, d]
        distance = squared - 2 * torch.einsum("ipd,id->ip", points, last) + squared[rows, chosen[:, n - 1]][:, None]
        torch.minimum(nearest, distance, out=nearest)
        chosen[:, n] = nearest.argmax(1)
    return chosen


def select_coreset(patches: torch.Tensor, bank: int, seed: int) -> torch.Tensor:
    """The coreset of PATCHES [I, P, D] (I images' patch vectors): at most BANK vectors [M, D]."""
    images, per_image, dim = patches.shape
    generator = torch.Generator().manual_seed(seed)
    projected = patches @ torch.randn(dim, SELECTION_DIM, generator=generator) if dim > SELECTION_DIM else patches
    keep = min(per_image, max(MIN_PER_IMAGE, math.ceil(CANDIDATES * bank / images)))
    order = torch.randperm(per_image, generator=generator)  # each image's greedy pass starts at a random patch
    local = order[_farthest_first(projected[:, order], keep)]  # [I, keep]
    candidates = patches.gather(1, local[..., None].expand(-1, -1, dim)).reshape(-1, dim)
    if len(candidates) <= bank:
        return candidates
    projected = projected.gather(1, local[..., None].expand(-1, -1, projected.shape[-1])).reshape(-1, projected.shape[-1])
    shuffled = torch.randperm(len(candidates), generator=generator)
    chosen = shuffled[_farthest_first(projected[shuffled][None], bank)[0]]
    return candidates[chosen]


@torch.no_grad()
def fit_patchcore_head(features: dict[str, torch.Tensor], settings: PatchcoreSettings, seed: int, track: Track) -> tuple[PatchcoreHead, dict]:
    """The memory bank of the good fit images' cached stage features {stage: [N, C, h, w]}."""
    stages = list(features)
    channels = sum(f.shape[1] for f in features.values())
    head = PatchcoreHead(stages, settings.neighbourhood, channels, settings.dim, 0)
    if settings.dim:
        head.projection = torch.randn(channels, settings.dim, generator=torch.Generator().manual_seed(seed)) / math.sqrt(settings.dim)
    patches = torch.cat([head.patches({s: f[i : i + 64] for s, f in features.items()}) for i in range(0, len(features[stages[0]]), 64)])
    bank = select_coreset(patches, settings.bank, seed)
    head.bank, head.bank_norm = bank.contiguous(), (bank * bank).sum(1)
    return head, {}


PLUGIN = ModelPlugin(
    name="patchcore",
    settings=PatchcoreSettings,
    strides=(8, 16),
    image_size=256,
    stage_count=2,
    fit=fit_patchcore_head,
    build_head=lambda config: PatchcoreHead(**config),
    float_op_types=("MatMul", "ReduceMin", "ReduceMax", "ReduceSum", "Sqrt", "Maximum", "Multiply", "Add", "AvgPool", "Concat"),
    quick_settings={"bank": 1024},
)
