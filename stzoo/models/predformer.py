"""PredFormer (Tang et al., arXiv 2410.04733): a pure transformer, with no recurrence and no convolution.

This is the authors' best Moving MNIST variant, **Quadruplet-TSST** (their ``PredFormer_Quadruplet_TSST``,
the model of their released MMNIST training script): factorised attention, one axis at a time, in the
order temporal → spatial → spatial → temporal, made of Gated Transformer Blocks.

1. **Patch embedding**: each frame is cut into ``patch_size``² patches, flattened to
   ``C·p²`` values (colour channel major: index ``c·p² + i·p + j``) and projected linearly to ``dim``:
   B×T×C×H×W → B×T×N×D, N = (H/p)(W/p). A fixed sinusoidal embedding of the T·N positions is added
   (``PE[n, 2i] = sin(n / 10000^(2i/D))``, ``PE[n, 2i+1] = cos(…)``, n = t·N + patch; not a parameter).
2. ``Ndepth`` **PredFormer layers**, each four gated transformers (``depth`` blocks each + a final
   LayerNorm) without a residual around the layer::

       x ← GT_t1(x over T, for every patch)    x ← GT_s1(x over N, for every frame)
       x ← GT_s2(x over N, for every frame)    x ← GT_t2(x over T, for every patch)

   A **Gated Transformer Block** (pre-norm)::

       x ← x + DropPath(W_o · MHSA(LN(x)))                 MHSA: heads × dim_head, no qkv bias,
                                                           softmax(q kᵀ / √dim_head) v
       x ← x + DropPath(W_2 (SiLU(W_g LN(x)) ⊙ W_x LN(x)))  (SwiGLU, hidden = scale_dim · D)

3. **Head**: LN → linear D → C·p², the patches put back into frames: B×T×C×H×W (no output activation).

The model maps T frames to the next T (``frames``); longer horizons by rollout, as the authors'
``_predict`` does when ``aft_seq_length > pre_seq_length``. No weight depends on T or the frame size
(only the computed position embedding does): any multiple of ``patch_size`` runs, and ``adapt`` changes T
without re-initialising a weight (a call still reads exactly ``frames`` frames, as the authors' model).

Layout and defaults follow the authors' code (github.com/yyyujintang/PredFormer,
``openstl/models/PredFormer_Quadruplet_TSST.py``, ``openstl/modules/PredFormer_modules.py``) and their
``configs/mmnist/PredFormer.py`` with ``Ndepth = 6`` (the config's TSST value): patch 8, dim 256, 8 heads ×
32, scale_dim 4, depth 1. That gives **25,297,728** parameters, every one of them used (the paper's Table 2
lists 25.3 M); the authors' position embedding is a plain tensor, not in their state dict either. One
difference in layout: their patch embedding reads the patch values in the order ``(i·p + j)·C + c``;
stzoo's reads ``c·p² + i·p + j`` (the head writes that order in both), and the importer permutes the
embedding's input columns. Their recipe (``scripts/mmnist/mm_PredFormer_TSST_train.sh``): AdamW, lr 1e-3,
weight decay 1e-2, one-cycle, batch 16, 2000 epochs, MSE of the T predicted frames. Weights start as
theirs: the gated transformers' linear layers from a truncated normal (std 0.02) with zero biases, the
embedding and head from PyTorch's defaults. This module does no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import Tensor, nn

from stzoo.errors import ConfigError
from stzoo.models.base import Architecture, ChannelParam, ModelConfig, Recipe, cfg_field, raise_if_bad_frames, register
from stzoo.models.tau import DropPath

__all__ = [
    "PredFormer",
    "PredFormerConfig",
    "GatedTransformer",
    "GatedBlock",
    "Attention",
    "SwiGLU",
    "sinusoidal_embedding",
    "PREDFORMER_RECIPE",
    "ARCHITECTURE",
]


@dataclass
class PredFormerConfig(ModelConfig):
    """PredFormer's settings. Defaults: the authors' ``configs/mmnist/PredFormer.py`` for Quadruplet-TSST
    (``Ndepth = 6``), 25,297,728 parameters."""

    frames: int = cfg_field(10, lo=1, hi=1000)  # T: frames read and predicted per call (pre_seq)
    channels: int = cfg_field(1, lo=1, hi=64)  # colour channels of a frame (num_channels)
    height: int = cfg_field(64, lo=1, hi=8192)  # training size (any multiple of patch_size runs)
    width: int = cfg_field(64, lo=1, hi=8192)  # (training width)
    patch_size: int = cfg_field(8, lo=1, hi=64)  # p: frames enter as p×p patches
    dim: int = cfg_field(256, lo=2, hi=8192)  # D: token width (even: sinusoidal embedding)
    heads: int = cfg_field(8, lo=1, hi=256)  # attention heads
    dim_head: int = cfg_field(32, lo=1, hi=1024)  # width of each head
    scale_dim: int = cfg_field(4, lo=1, hi=64)  # SwiGLU hidden width / D
    depth: int = cfg_field(1, lo=1, hi=64)  # gated blocks in each of the four transformers of a layer
    Ndepth: int = cfg_field(6, lo=1, hi=128)  # PredFormer layers (TSST quadruplets)
    dropout: float = cfg_field(0.0, lo=0.0, hi=0.99)  # dropout in the SwiGLU (after the gate and the output)
    attn_dropout: float = cfg_field(0.0, lo=0.0, hi=0.99)  # dropout after the attention's output projection
    drop_path: float = cfg_field(0.0, lo=0.0, hi=0.99)  # stochastic depth of every block's two branches

    def validate(self) -> None:
        super().validate()
        if self.dim % 2:
            raise ConfigError(f"dim must be even (sin / cos pairs of the position embedding), got {self.dim}")


def sinusoidal_embedding(positions: int, dim: int, *, device: torch.device | str | None = None) -> Tensor:
    """positions×dim: ``sin(n / 10000^(2⌊i/2⌋/dim))`` for even i, ``cos`` for odd i (angles in float64,
    then float32, as the authors' table)."""
    n = torch.arange(positions, dtype=torch.float64, device=device)[:, None]
    i = torch.arange(dim, device=device)
    angle = (n / torch.pow(10000.0, (2 * torch.div(i, 2, rounding_mode="floor")).double() / dim)).float()
    return torch.where(i % 2 == 0, torch.sin(angle), torch.cos(angle))


class Attention(nn.Module):
    """Multi-head self-attention over the token axis: B×L×D → B×L×D."""

    def __init__(self, dim: int, heads: int, dim_head: int, dropout: float):
        super().__init__()
        self.heads, inner = heads, heads * dim_head
        self.scale = dim_head**-0.5
        self.qkv = nn.Linear(dim, 3 * inner, bias=False)
        # the authors drop the output projection when it would be the identity's size with one head
        self.proj = nn.Linear(inner, dim) if not (heads == 1 and dim_head == dim) else None
        self.drop = nn.Dropout(dropout)

    def forward(self, x: Tensor) -> Tensor:
        q, k, v = rearrange(self.qkv(x), "b n (three h d) -> three b h n d", three=3, h=self.heads)
        weights = ((q @ k.transpose(-2, -1)) * self.scale).softmax(dim=-1)  # B×heads×L×L
        out = rearrange(weights @ v, "b h n d -> b n (h d)")
        return out if self.proj is None else self.drop(self.proj(out))


class SwiGLU(nn.Module):
    """W_2 (SiLU(W_g x) ⊙ W_x x), with dropout after the product and after W_2."""

    def __init__(self, dim: int, hidden: int, dropout: float):
        super().__init__()
        self.fc1_g = nn.Linear(dim, hidden)
        self.fc1_x = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, dim)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: Tensor) -> Tensor:
        return self.drop(self.fc2(self.drop(F.silu(self.fc1_g(x)) * self.fc1_x(x))))


class GatedBlock(nn.Module):
    """Pre-norm attention and SwiGLU, both residual (with stochastic depth)."""

    def __init__(self, cfg: PredFormerConfig):
        super().__init__()
        self.norm1 = nn.LayerNorm(cfg.dim)
        self.attn = Attention(cfg.dim, cfg.heads, cfg.dim_head, cfg.attn_dropout)
        self.norm2 = nn.LayerNorm(cfg.dim)
        self.mlp = SwiGLU(cfg.dim, cfg.dim * cfg.scale_dim, cfg.dropout)
        self.drop_path = DropPath(cfg.drop_path)

    def forward(self, x: Tensor) -> Tensor:
        x = x + self.drop_path(self.attn(self.norm1(x)))
        return x + self.drop_path(self.mlp(self.norm2(x)))


class GatedTransformer(nn.Module):
    """``depth`` gated blocks, then a LayerNorm. B×L×D → B×L×D."""

    def __init__(self, cfg: PredFormerConfig):
        super().__init__()
        self.layers = nn.ModuleList(GatedBlock(cfg) for _ in range(cfg.depth))
        self.norm = nn.LayerNorm(cfg.dim)
        for m in self.modules():  # the authors' GatedTransformer._init_weights
            if isinstance(m, nn.Linear) and not m.weight.is_meta:
                nn.init.trunc_normal_(m.weight, std=0.02)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)

    def forward(self, x: Tensor) -> Tensor:
        for layer in self.layers:
            x = layer(x)
        return self.norm(x)


class PredFormerLayer(nn.Module):
    """Quadruplet TSST: temporal, spatial, spatial, temporal gated transformers. B×T×N×D → B×T×N×D."""

    def __init__(self, cfg: PredFormerConfig):
        super().__init__()
        self.t1, self.s1 = GatedTransformer(cfg), GatedTransformer(cfg)
        self.s2, self.t2 = GatedTransformer(cfg), GatedTransformer(cfg)

    def forward(self, x: Tensor) -> Tensor:
        b = x.shape[0]
        x = self.t1(rearrange(x, "b t n d -> (b n) t d"))  # attention over T
        x = self.s1(rearrange(x, "(b n) t d -> (b t) n d", b=b))  # over N
        x = self.s2(x)  # over N
        x = self.t2(rearrange(x, "(b t) n d -> (b n) t d", b=b))  # over T
        return rearrange(x, "(b n) t d -> b t n d", b=b)


class PredFormer(nn.Module):
    """PredFormer Quadruplet-TSST. Maps B×T×C×H×W frames to the next T frames (same shape)."""

    arch = "predformer"
    recurrent = False

    def __init__(self, config: PredFormerConfig | None = None, **overrides):
        super().__init__()
        cfg = self.config = PredFormerConfig.from_dict({**(config.to_dict() if config else {}), **overrides})
        self.frames, self.channels = cfg.frames, cfg.channels
        self.frames_in = self.frames_out = cfg.frames
        self.height, self.width = cfg.height, cfg.width
        self.patch_size, self.dim = cfg.patch_size, cfg.dim
        p2c = cfg.channels * cfg.patch_size**2
        self.embed = nn.Linear(p2c, cfg.dim)  # B×T×N×(C·p²) → B×T×N×D
        self.blocks = nn.ModuleList(PredFormerLayer(cfg) for _ in range(cfg.Ndepth))
        self.head_norm = nn.LayerNorm(cfg.dim)
        self.head = nn.Linear(cfg.dim, p2c)  # B×T×N×D → B×T×N×(C·p²)

    def check_input(self, x: Tensor) -> None:
        """Raise one clear error listing every rule of the input contract ``x`` breaks."""
        raise_if_bad_frames(self, x)

    def forward(self, x: Tensor) -> Tensor:
        self.check_input(x)
        t, h, p = x.shape[1], x.shape[3], self.patch_size
        z = self.embed(rearrange(x, "b t c (h i) (w j) -> b t (h w) (c i j)", i=p, j=p))
        n = z.shape[2]
        pe = sinusoidal_embedding(t * n, self.dim)  # on the CPU (float64 angles), then to the input's device
        z = z + pe.to(device=z.device, dtype=z.dtype).view(1, t, n, self.dim)
        for block in self.blocks:
            z = block(z)
        y = self.head(self.head_norm(z))
        return rearrange(y, "b t (h w) (c i j) -> b t c (h i) (w j)", h=h // p, i=p, j=p)


# --------------------------------------------------------------------------------------------
# What generic code reads
# --------------------------------------------------------------------------------------------
#: the authors' MMNIST recipe (scripts/mmnist/mm_PredFormer_TSST_train.sh): AdamW lr 1e-3, weight decay 1e-2,
#: one-cycle, batch 16, 2000 epochs, MSE of the predicted frames, no gradient clipping (their clip_grad=None)
PREDFORMER_RECIPE = Recipe(lr=1e-3, batch_size=16, epochs=2000, loss="mse", weight_decay=1e-2, grad_clip=0.0)

ARCHITECTURE = register(
    Architecture(
        name="predformer",
        model=PredFormer,
        config=PredFormerConfig,
        recipe=PREDFORMER_RECIPE,
        any_frames=False,
        spec_keys={
            "frames_in": "frames",
            "frames_out": "frames",
            "channels": "channels",
            "height": "height",
            "width": "width",
        },
        size_multiple=lambda cfg: cfg.patch_size,
        size_reason=lambda cfg: f"PredFormer cuts frames into {cfg.patch_size}×{cfg.patch_size} patches",
        channel_params=lambda cfg: {
            "embed.weight": ChannelParam(1, "in", cfg.patch_size**2),
            "head.weight": ChannelParam(0, "out", cfg.patch_size**2),
            "head.bias": ChannelParam(0, "out", cfg.patch_size**2),
        },
        # no weight depends on T or on the frame size: the position embedding is computed for the input at hand
        frames_params=lambda cfg: [],
        resolution_params=lambda cfg: [],
        # peak memory estimate: tokens and MLP; spatial attention is quadratic in the patches; measured below half of it
        activation_floats=lambda cfg, b, t, h, w: (
            b
            * t
            * (
                8.0 * cfg.dim * cfg.scale_dim * (h * w / cfg.patch_size**2)
                + 4.0 * cfg.heads * (h * w / cfg.patch_size**2) ** 2
                + 16.0 * h * w
            )
        ),
        tiny_config={
            "frames": 4,
            "height": 16,
            "width": 16,
            "patch_size": 4,
            "dim": 16,
            "heads": 2,
            "dim_head": 8,
            "Ndepth": 2,
        },
        description="PredFormer (Tang et al., 2024), Quadruplet-TSST: gated transformer blocks with factorised "
        "temporal / spatial attention, no recurrence or convolution",
    )
)
