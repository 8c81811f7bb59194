"""CFLOW-AD (Gudovskiy et al., WACV 2022): a conditional normalizing flow per backbone stage.

Training uses FrEIA's AllInOneBlock on cached, frozen-encoder features. For inference the trained
flows become `FlowStage` modules that keep only the forward direction, run on all B x h x w feature
vectors at once, gather instead of multiplying by permutation matrices, and hold the positional
encoding's contribution to the first subnet layer as a constant buffer.

Each stage's per-position log-likelihood is standardised with the mean and standard deviation it
has on the training features (constants, never batch statistics) and clipped at Z_CLIP: the map is
the sum over stages of these clipped z-scores, the image score the mean of the map's top 1 %. The
paper's exp(log p - max) saturates a few standard deviations below the training maximum, so it
flattens the range where subtle defects lie; the raw log-likelihood sum keeps that range but lets
the stage with the widest spread dominate the others (bottle pixel AUROC 0.972 against 0.983).
Standardising puts the stages on one scale and the clip bounds each stage's say, as exp does, but
only beyond 4 sigma, where a position is anomalous anyway (benchmarks/results/cflow_scoring.md).
"""

import math
from dataclasses import dataclass

import FrEIA.framework as Ff
import FrEIA.modules as Fm
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from adedge.errors import AdedgeError
from adedge.progress import Track
from adedge.train.maps import upsample
from adedge.train.models import ModelPlugin

LOG_NORMAL_CONST = -0.5 * math.log(2 * math.pi)
# a stage's z-score counts up to this many training standard deviations (benchmarks/results/cflow_scoring.md)
Z_CLIP = 4.0
MAX_LR, MAX_CLAMP = 1.0, 10.0  # beyond these Adam diverges at once and exp(clamp) overflows float32 soon


@dataclass(frozen=True)
class CflowSettings:
    """The paper's flow and optimiser, with the epoch count scaled to a 2-core CPU: meta_epochs of
    sub_epochs passes over all feature vectors in shuffled batches of fiber_batch; Adam at lr with
    warm-up over warmup_meta_epochs and cosine decay; blocks coupling blocks per flow, affine
    clamping clamp, a condition-dimensional positional encoding. lr is 3x the paper's 2e-4: with
    8 epochs instead of 200 it lifts pill image AUROC as much as twice the epochs do, at no extra
    time (benchmarks/results/cflow_ablation_lr.md)."""

    meta_epochs: int = 4
    sub_epochs: int = 2
    warmup_meta_epochs: int = 1
    fiber_batch: int = 256
    lr: float = 6e-4
    blocks: int = 8
    clamp: float = 1.9
    condition: int = 128

    def __post_init__(self) -> None:
        for name in ("meta_epochs", "sub_epochs", "fiber_batch", "blocks"):
            if getattr(self, name) < 1:
                raise AdedgeError(f"CFLOW {name} must be at least 1, got {getattr(self, name)}")
        if self.warmup_meta_epochs < 0:
            raise AdedgeError(f"CFLOW warmup_meta_epochs must be at least 0, got {self.warmup_meta_epochs}")
        if not (0 < self.lr <= MAX_LR and 0 < self.clamp <= MAX_CLAMP and 4 <= self.condition <= 4096 and self.condition % 4 == 0):
            raise AdedgeError(f"CFLOW needs 0 < lr <= {MAX_LR}, 0 < clamp <= {MAX_CLAMP} and a condition that is a multiple of 4 from 4 to 4096")


def positional_encoding(channels: int, height: int, width: int) -> torch.Tensor:
    """2-D sine/cosine encoding [height * width, channels]: first half encodes x, second half y."""
    quarter = channels // 4
    frequencies = torch.exp(torch.arange(quarter, dtype=torch.float64) * (-math.log(1e4) * 2 / (channels // 2)))
    xs = torch.arange(width, dtype=torch.float64)[:, None] * frequencies  # [w, quarter]
    ys = torch.arange(height, dtype=torch.float64)[:, None] * frequencies
    along_x = torch.stack([xs.sin(), xs.cos()], 2).reshape(width, 2 * quarter)  # interleaved sin, cos
    along_y = torch.stack([ys.sin(), ys.cos()], 2).reshape(height, 2 * quarter)
    grid = torch.cat([along_x[None].expand(height, -1, -1), along_y[:, None].expand(-1, width, -1)], 2)
    return grid.reshape(height * width, 4 * quarter).float()


def _subnet(dims_in: int, dims_out: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(dims_in, 2 * dims_in), nn.ReLU(), nn.Linear(2 * dims_in, dims_out))


def build_decoder(channels: int, condition: int, blocks: int, clamp: float) -> Ff.SequenceINN:
    """The trainable flow: BLOCKS AllInOneBlocks (hard permutations, SOFTPLUS global affine)."""
    decoder = Ff.SequenceINN(channels)
    for _ in range(blocks):
        decoder.append(
            Fm.AllInOneBlock,
            cond=0,
            cond_shape=(condition,),
            subnet_constructor=_subnet,
            affine_clamping=clamp,
            global_affine_type="SOFTPLUS",
            permute_soft=False,
        )
    return decoder


def log_likelihood(z: torch.Tensor, log_jac_det: torch.Tensor) -> torch.Tensor:
    """Per-dimension log-likelihood of flow outputs Z [M, C] under a standard normal."""
    channels = z.shape[1]
    # sums and products only: a Subtract would be rewritten by OpenVINO's CPU plugin into new ops
    # that lose the IR's keep-f32 mark
    return (log_jac_det + channels * LOG_NORMAL_CONST) / channels + (-0.5 / channels) * (z**2).sum(1)


class FlowBlock(nn.Module):
    """Forward direction of one trained AllInOneBlock, for a fixed grid of positions.

    Written with ops that OpenVINO's CPU plugin keeps in f32 when the IR asks it to, where ops that
    its own fusions create would fall back to bf16 on CPUs that have it: gathers instead of slices,
    and matmuls without a bias to fuse (the coupling's bias rides on a hidden unit that is 1 at
    every position) and without a split (scale and shift are two matmuls).
    """

    def __init__(self, channels: int, condition: int, positions: int, clamp: float) -> None:
        super().__init__()
        self.passive = channels - channels // 2
        self.clamp = clamp
        width = 2 * (self.passive + condition) + 1  # the subnet's hidden units and the constant one
        self.hidden = nn.Linear(self.passive, width, bias=False)
        self.log_scale = nn.Linear(width, channels // 2, bias=False)  # holds FrEIA's 0.1 factor
        self.shift = nn.Linear(width, channels // 2, bias=False)
        self.register_buffer("condition_term", torch.zeros(positions, width))  # W_c @ encoding + bias, and 1
        self.register_buffer("scale", torch.ones(channels))
        self.register_buffer("offset", torch.zeros(channels))
        self.register_buffer("permutation", torch.arange(channels))
        self.register_buffer("log_scale_sum", torch.zeros(()))
        self.register_buffer("passive_index", torch.arange(self.passive), persistent=False)
        self.register_buffer("active_index", torch.arange(self.passive, channels), persistent=False)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """X [B * positions, C] in position-major order per image -> the block's output before its
        channel permutation (the caller applies `permutation`, or skips it after the last block),
        and the block's log-Jacobian determinant per row."""
        x1, x2 = torch.index_select(x, 1, self.passive_index), torch.index_select(x, 1, self.active_index)
        positions, width = self.condition_term.shape
        h = F.relu((self.hidden(x1).reshape(-1, positions, width) + self.condition_term).reshape(-1, width))
        log_scale = self.clamp * torch.tanh(self.log_scale(h))
        x = torch.cat([x1, x2 * torch.exp(log_scale) + self.shift(h)], 1) * self.scale + self.offset
        return x, log_scale.sum(1) + self.log_scale_sum

    @torch.no_grad()
    def load_trained(self, block: Fm.AllInOneBlock, encoding: torch.Tensor) -> None:
        """Copy a trained FrEIA block, folding every input-independent term into buffers."""
        first, last = block.subnet[0], block.subnet[2]
        hidden, active = first.weight.shape[0], last.weight.shape[0] // 2
        self.hidden.weight.zero_()
        self.hidden.weight[:hidden].copy_(first.weight[:, : self.passive])
        self.condition_term[:, :hidden].copy_(encoding @ first.weight[:, self.passive :].T + first.bias)
        self.condition_term[:, hidden] = 1.0  # relu(0 + 1): the unit that carries the coupling's bias
        coupling = 0.1 * torch.cat([last.weight, last.bias[:, None]], 1)
        self.log_scale.weight.copy_(coupling[:active])
        self.shift.weight.copy_(coupling[active:])
        scale = block.global_scale_activation(block.global_scale).reshape(-1)
        self.scale.copy_(scale)
        self.offset.copy_(block.global_offset.reshape(-1))
        self.log_scale_sum.copy_(torch.log(scale).sum())
        self.permutation.copy_(block.w_perm.reshape(len(scale), len(scale)).argmax(1))


class FlowStage(nn.Module):
    """One stage's flow: features [B, C, h, w] -> clipped z-score of the negative log-likelihood [B, 1, h, w]
    (about 0 where normal, at most Z_CLIP)."""

    def __init__(self, name: str, channels: int, height: int, width: int, condition: int, blocks: int, clamp: float) -> None:
        super().__init__()
        self.name, self.height, self.width = name, height, width
        self.blocks = nn.ModuleList(FlowBlock(channels, condition, height * width, clamp) for _ in range(blocks))
        # the log-likelihood's mean and standard deviation on the training features
        self.register_buffer("train_mean", torch.zeros(()))
        self.register_buffer("train_std", torch.ones(()))

    def log_likelihood(self, features: torch.Tensor) -> torch.Tensor:
        """Per-position, per-dimension log-likelihood [B, 1, h, w] (not yet normalised)."""
        return self._log_likelihood(features).reshape(-1, 1, self.height, self.width)

    def _log_likelihood(self, features: torch.Tensor) -> torch.Tensor:
        """The log-likelihood of every feature vector [B * h * w], position-major per image."""
        x = features.permute(0, 2, 3, 1).reshape(-1, features.shape[1])
        log_jac_det = None
        for index, block in enumerate(self.blocks):
            x, block_log_det = block(x)
            log_jac_det = block_log_det if log_jac_det is None else log_jac_det + block_log_det
            if index < len(self.blocks) - 1:  # the likelihood does not depend on the last permutation
                x = torch.index_select(x, 1, block.permutation)
        return log_likelihood(x, log_jac_det)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        # a product and an Add (not a Subtract or a Divide) and one reshape, last: OpenVINO's CPU plugin
        # would rewrite a Subtract or a chain of reshapes into new ops that lose the IR's keep-f32 mark
        z = self._log_likelihood(features) * (-1.0 / self.train_std) + self.train_mean / self.train_std
        return torch.clamp(z, max=Z_CLIP).reshape(-1, 1, self.height, self.width)


# the image score: the mean of this share of the map's values, the highest ones
TOP_SHARE = 0.01


def top_mean(anomaly_map: torch.Tensor) -> torch.Tensor:
    """The mean of the top TOP_SHARE of each map [N, 1, H, W] -> [N]: a defect of a few dozen pixels
    still counts in full, where one noisy pixel no longer decides."""
    flat = anomaly_map.flatten(1)
    return flat.topk(max(1, int(flat.shape[1] * TOP_SHARE)), dim=1).values.mean(1)


class CflowHead(nn.Module):
    """Stage features -> anomaly map = sum of upsampled clipped z-scores; score = its top-1% mean."""

    def __init__(self, stages: list[dict], condition: int = 128, blocks: int = 8, clamp: float = 1.9) -> None:
        super().__init__()
        self.stage_specs, self.condition, self.block_count, self.clamp = stages, condition, blocks, clamp
        self.flows = nn.ModuleList(FlowStage(**spec, condition=condition, blocks=blocks, clamp=clamp) for spec in stages)

    def config(self) -> dict:
        """Constructor arguments, stored in run.json so the checkpoint can be rebuilt."""
        return {"stages": self.stage_specs, "condition": self.condition, "blocks": self.block_count, "clamp": self.clamp}

    def forward(self, features: dict[str, torch.Tensor], size: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
        anomaly_map = sum(upsample(flow(features[flow.name]), size) for flow in self.flows)
        return anomaly_map, top_mean(anomaly_map)


def _lr_factor(step: int, steps_per_meta: int, meta_epochs: int, warmup_meta: int) -> float:
    """Cosine decay over meta-epochs down to 1e-3 of the base rate, after a linear warm-up from 0.1."""

    def cosine(meta: int) -> float:
        return 1e-3 + (1 - 1e-3) * (1 + math.cos(math.pi * meta / meta_epochs)) / 2

    meta = min(step // steps_per_meta, meta_epochs - 1)
    if meta < warmup_meta:
        return 0.1 + (cosine(warmup_meta) - 0.1) * step / (steps_per_meta * warmup_meta)
    return cosine(meta)


def train_decoder(
    fibers: torch.Tensor,
    encoding: torch.Tensor,
    decoder: Ff.SequenceINN,
    settings: CflowSettings,
    generator: torch.Generator,
    track: Track,
    label: str,
) -> list[float]:
    """Fit DECODER on FIBERS [N * positions, C] (image-major) with conditions ENCODING [positions, K].

    Loss -logsigmoid(log p / C) on shuffled fiber batches; Adam with warm-up and cosine decay.
    Returns the mean loss of each epoch.
    """
    positions = encoding.shape[0]
    batch, meta_epochs, sub_epochs = settings.fiber_batch, settings.meta_epochs, settings.sub_epochs
    steps_per_epoch = math.ceil(len(fibers) / batch)
    optimizer = torch.optim.Adam(decoder.parameters(), lr=settings.lr)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: _lr_factor(step, steps_per_epoch * sub_epochs, meta_epochs, settings.warmup_meta_epochs)
    )
    losses: list[float] = []
    decoder.train()
    for epoch in range(meta_epochs * sub_epochs):
        order = torch.randperm(len(fibers), generator=generator)
        total = 0.0
        description = f"{label} epoch {epoch + 1}/{meta_epochs * sub_epochs}" + (f" loss {losses[-1]:.4f}" if losses else "")
        for start in track(range(0, len(fibers), batch), description):
            index = order[start : start + batch]
            z, log_jac_det = decoder(fibers[index], c=[encoding[index % positions]])
            loss = -F.logsigmoid(log_likelihood(z, log_jac_det)).mean()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
            total += loss.item() * len(index)
        losses.append(total / len(fibers))
        if not math.isfinite(losses[-1]):
            raise AdedgeError(
                f"CFLOW training diverged ({label}, epoch {epoch + 1}: loss {losses[-1]}); nothing was written: "
                f"train again with a lower learning rate than {settings.lr} (-p lr=...)"
            )
    decoder.eval()
    return losses


def fit_cflow_head(
    features: dict[str, torch.Tensor], settings: CflowSettings, seed: int, track: Track
) -> tuple[CflowHead, dict[str, list[float]]]:
    """Train one flow per stage on cached training features {stage: [N, C, h, w]}; returns head and losses."""
    specs = [{"name": name, "channels": f.shape[1], "height": f.shape[2], "width": f.shape[3]} for name, f in features.items()]
    head = CflowHead(specs, settings.condition, settings.blocks, settings.clamp)
    generator = torch.Generator().manual_seed(seed)
    history = {}
    for flow, (name, stage_features) in zip(head.flows, features.items()):
        np.random.seed(seed)  # FrEIA draws its permutations from numpy's global RNG
        torch.manual_seed(seed)
        channels = stage_features.shape[1]
        encoding = positional_encoding(settings.condition, flow.height, flow.width)
        fibers = stage_features.permute(0, 2, 3, 1).reshape(-1, channels).contiguous()
        decoder = build_decoder(channels, settings.condition, settings.blocks, settings.clamp)
        history[name] = train_decoder(fibers, encoding, decoder, settings, generator, track, f"flow {name}")
        for block, trained in zip(flow.blocks, decoder.module_list):
            block.load_trained(trained, encoding)
        with torch.no_grad():
            fitted = flow.log_likelihood(stage_features).double()
            flow.train_mean.fill_(float(fitted.mean()))
            flow.train_std.fill_(max(float(fitted.std()), 1e-6))
    return head, history


PLUGIN = ModelPlugin(
    name="cflow",
    settings=CflowSettings,
    strides=(8, 16, 32),
    image_size=320,  # pill image AUROC 0.86 -> 0.91 over 256 px with lite1 (benchmarks/results/cflow_ablation.md)
    stage_count=None,
    fit=fit_cflow_head,
    build_head=lambda config: CflowHead(**config),
    float_op_types=("MatMul", "Exp", "Tanh", "Multiply", "Concat", "Gather", "Add", "Subtract", "Clamp", "Minimum", "TopK", "ReduceMean", "ReduceSum", "Power"),
    # each fold's flows train with the shipped settings on 2/3 of the images: two trainings' worth in all
    calibration_folds=3,
    # its per-stage z-scores are standardised and clipped: bf16 features moved bottle scores by at most
    # 0.02 (no verdict), pill's by at most 0.15 (11 of 167 verdicts, each to its neighbour: OK-CHECK,
    # CHECK-NG); benchmarks/results/mixed_precision.md
    mixed_precision=True,
    quick_settings={"meta_epochs": 2, "sub_epochs": 1},
)
