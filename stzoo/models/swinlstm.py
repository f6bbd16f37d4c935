"""SwinLSTM-D (Tang et al., ICCV 2023): LSTM cells built from Swin Transformer blocks, in a U-shaped stack.

A frame is cut into ``patch_size``×``patch_size`` patches and embedded (conv + LayerNorm): a token grid
of ``h × w = H/p × W/p`` positions with ``embed_dim`` channels. Tokens are B×L×C (L = h·w) throughout.

**The SwinLSTM cell** (one per stage; state H, C of the stage's shape B×L×C). With ``STB_j`` its Swin
blocks (``depth`` of them) and X the cell's input::

    o_0 = STB_0(X, H_{t−1})          o_j = STB_j(o_{j−1}, X)  for even j ≥ 2
                                     o_j = STB_j(o_{j−1})     for odd j
    F = σ(o),  C_t = F ∘ (C_{t−1} + tanh(o)),  H_t = F ∘ tanh(C_t)        (o = o_{depth−1})

A Swin block that reads a second input y first fuses it: ``z = W_red [LN₁(x) ; LN₁(y)]`` (one linear
layer, 2C → C, with the block's own first LayerNorm applied to both), otherwise ``z = LN₁(x)``; then::

    x' = x + DropPath(W-MSA(z))   (even j: windows of ``window_size``² tokens;
                                   odd j: the grid cyclically shifted by window_size // 2 first and
                                   attention masked to tokens of the same pre-shift region, −100)
    out = x' + DropPath(MLP(LN₂(x')))                  (MLP: C → mlp_ratio·C → C, GELU)

    W-MSA: softmax(q kᵀ / √d + B) v per head, B = table[relative position] (a learnt
    (2·window − 1)² × heads table of relative position biases).

**The -D network** (``L`` = ``len(depths_down)`` stages each way)::

    embed(frame)                                  B×(h·w)×E
    down cell k (k = 0 … L−1) at grid h/2^k, E·2^k channels, then patch merging
        (2×2 neighbours concatenated, LN, linear 4C → 2C)  →  h/2^(k+1), E·2^(k+1)
    up cell i (i = 0 … L−1) at grid h/2^(L−i), E·2^(L−i) channels, then patch expanding
        (linear C → 2C, each token's channels spread over a 2×2 block, LN)  →  twice the grid, half the C
    frame = σ(ConvTranspose_3×3, stride 2(tokens at grid h × w, E channels))     B×C×H×W

Each cell carries its own (H, C) from step to step; there are no skips between the down and up paths.
At a stage whose grid (at the configured training size) is no larger than ``window_size``, the window
is the whole grid and no block shifts, exactly as timm's Swin block decides; the window of every stage
is then fixed, and the shifted-window masks are computed for the grid of the frames at hand, so any
frame size whose grids those windows tile runs (:func:`size_multiple`), square or not. (OpenSTL's model
runs at its configured square size only: timm's blocks keep masks for that grid.)

Layout and defaults follow OpenSTL's ``SwinLSTM_D_Model`` (``openstl/models/swinlstm_model.py``,
``openstl/modules/swinlstm_modules.py``, built on timm ≤ 0.6's ``SwinTransformerBlock``,
``WindowAttention``, ``PatchEmbed`` and ``PatchMerging``) and its ``configs/mmnist/SwinLSTM-D.py``
(patch 2, window 4, embed 128, depths 2,6 / 6,2, heads 4,8). OpenSTL's model has 20,191,969 parameters;
1,346,560 of them never reach its output and are left out here, so stzoo's has **18,845,409**:

* the ``red`` fusion layer of every odd-numbered Swin block (those blocks read one input, so their
  ``red`` is built but never called): 1 + 3 blocks down, 1 + 3 up, 1,345,664 values;
* ``Upsample.patch_embed`` (a second patch embedding the up path builds and never calls): 896.

OpenSTL runs the same loop at inference: the T observed frames, then its own predictions; it trains with
MSE over every one-step prediction of the T_in + T_out − 1 steps, no scheduled sampling, AdamW 1e-4
with a one-cycle schedule, batch 16 (the recipe below), and stochastic depth rising linearly from 0 to
0.1 over the blocks of each path (OpenSTL's fixed ``drop_path_rate``). Weights start like OpenSTL's:
PyTorch's defaults, relative position tables from a truncated normal (std 0.02). This module does no I/O.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass
from typing import Any

import torch
from einops import rearrange
from torch import Tensor, nn

from stzoo.errors import ConfigError
from stzoo.models.base import Architecture, ChannelParam, ModelConfig, Recipe, cfg_field, register
from stzoo.models.recurrent import RecurrentNet
from stzoo.models.tau import DropPath

__all__ = [
    "SwinLSTM",
    "SwinLSTMConfig",
    "SwinLSTMCell",
    "SwinBlock",
    "WindowAttention",
    "StagePlan",
    "stage_plan",
    "size_multiple",
    "shifted_window_mask",
    "relative_position_index",
    "SWINLSTM_RECIPE",
    "ARCHITECTURE",
]

#: the masked-out score of a shifted window (timm's constant; exp(−100) ≈ 0 next to the other scores)
MASK_VALUE = -100.0


def _int_tuple(name: str, value: Any) -> tuple[int, ...]:
    """A list / tuple of 1 to 6 whole numbers in 1 … 64 (JSON gives lists) as a tuple of ints."""
    ok = (
        isinstance(value, (list, tuple))
        and 1 <= len(value) <= 6
        and all(isinstance(v, numbers.Integral) and not isinstance(v, bool) and 1 <= v <= 64 for v in value)
    )
    if not ok:
        raise ConfigError(
            f"swinlstm config {name!r} must list 1 to 6 stages as whole numbers between 1 and 64, got {value!r}"
        )
    return tuple(int(v) for v in value)


@dataclass
class SwinLSTMConfig(ModelConfig):
    """SwinLSTM-D's settings. Defaults: OpenSTL's ``configs/mmnist/SwinLSTM-D.py`` (18,845,409 parameters
    here, OpenSTL's 20,191,969 less the 1,346,560 its forward never uses; see the module docstring)."""

    frames_in: int = cfg_field(10, lo=1, hi=1000)  # frames read by default (any T runs)
    frames_out: int = cfg_field(10, lo=1, hi=1000)  # frames predicted by default (any horizon runs)
    channels: int = cfg_field(1, lo=1, hi=64)  # colour channels of a frame
    height: int = cfg_field(64, lo=1, hi=8192)  # training size: fixes each stage's window (see above)
    width: int = cfg_field(64, lo=1, hi=8192)  # (training width)
    patch_size: int = cfg_field(2, choices=(2,))  # patch embedding stride; the stride-2 reconstruction fixes it at 2
    embed_dim: int = cfg_field(128, lo=1, hi=4096)  # E: channels of the finest stage (doubling per stage)
    depths_down: tuple[int, ...] = cfg_field((2, 6))  # Swin blocks in each down cell, finest first
    depths_up: tuple[int, ...] = cfg_field((6, 2))  # ... in each up cell: entry k is the cell at level k+1 (OpenSTL)
    num_heads: tuple[int, ...] = cfg_field((4, 8))  # heads: entry k for down cell k and the up cell at level k+1
    window_size: int = cfg_field(4, lo=1, hi=64)  # attention window side (tokens), shift = window // 2
    mlp_ratio: float = cfg_field(4.0, lo=0.01, hi=64.0)  # hidden width of each block's MLP / channels
    drop_path: float = cfg_field(0.1, lo=0.0, hi=0.99)  # stochastic depth of each path's last block (linear from 0)

    def validate(self) -> None:
        for name in ("depths_down", "depths_up", "num_heads"):
            object.__setattr__(self, name, _int_tuple(name, getattr(self, name)))
        super().validate()
        n = len(self.depths_down)
        if len(self.depths_up) != n or len(self.num_heads) != n:
            raise ConfigError(
                f"depths_down, depths_up and num_heads must list as many stages, got "
                f"{list(self.depths_down)}, {list(self.depths_up)}, {list(self.num_heads)}"
            )
        for k, heads in enumerate(self.num_heads):
            for dim in (self.embed_dim * 2**k, self.embed_dim * 2 ** (k + 1)):
                if dim % heads:
                    raise ConfigError(
                        f"num_heads[{k}]={heads} must divide the {dim} channels of the cells it is "
                        f"used in (embed_dim·2^{k} and embed_dim·2^{k + 1})"
                    )
        if int(self.embed_dim * 2**n * self.mlp_ratio) < 1 or int(self.embed_dim * self.mlp_ratio) < 1:
            raise ConfigError(f"mlp_ratio={self.mlp_ratio} leaves a Swin MLP with no hidden channel")
        grid = (self.height // self.patch_size, self.width // self.patch_size)
        if self.height % self.patch_size or self.width % self.patch_size or any(g % 2**n or g < 2**n for g in grid):
            raise ConfigError(
                f"SwinLSTM with {n} stage(s) and patch_size {self.patch_size} halves the token grid "
                f"{n} time(s): height and width must be multiples of {self.patch_size * 2**n}, got "
                f"{self.height}×{self.width}"
            )
        m = size_multiple(self)
        if self.height % m or self.width % m:
            raise ConfigError(
                f"{_reason(self)}: the training size must be a multiple of {m}, got {self.height}×{self.width}"
            )


# --------------------------------------------------------------------------------------------
# Stage layout: which grid, width, depth, heads and window each cell has
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class StagePlan:
    """One cell: its level (the grid is the token grid / 2^level), channels, blocks, heads and window."""

    level: int
    dim: int
    depth: int
    heads: int
    window: int
    shift: int  # of the odd blocks (0: the window is the whole training grid)
    drop_path: tuple[float, ...]  # per block


def _window(cfg: SwinLSTMConfig, level: int) -> tuple[int, int]:
    """(window, shift) of a cell at ``level`` for the training size: timm's rule, the whole grid when the
    grid is no larger than ``window_size``."""
    grid = min(cfg.height, cfg.width) // cfg.patch_size // 2**level
    if grid <= cfg.window_size:
        return grid, 0
    return cfg.window_size, cfg.window_size // 2


def stage_plan(cfg: SwinLSTMConfig) -> tuple[list[StagePlan], list[StagePlan]]:
    """(down cells finest first, up cells coarsest first), as OpenSTL's DownSample / UpSample build them."""
    n, e = len(cfg.depths_down), cfg.embed_dim

    def rates(depths: tuple[int, ...]) -> list[float]:
        return torch.linspace(0, cfg.drop_path, sum(depths), device="cpu").tolist()

    down_rates, up_rates = rates(cfg.depths_down), rates(cfg.depths_up)
    down = []
    for k in range(n):
        d = cfg.depths_down[k]
        start = sum(cfg.depths_down[:k])
        down.append(StagePlan(k, e * 2**k, d, cfg.num_heads[k], *_window(cfg, k), tuple(down_rates[start : start + d])))
    up = []
    for i in range(n):
        k = n - 1 - i  # OpenSTL's index into depths_up / num_heads
        d = cfg.depths_up[k]
        start = sum(cfg.depths_up[:k])
        mine = up_rates[start : start + d]
        up.append(
            StagePlan(
                n - i,
                e * 2 ** (n - i),
                d,
                cfg.num_heads[k],
                *_window(cfg, n - i),
                tuple(mine[d - 1 - j] for j in range(d)),
            )
        )  # OpenSTL's up path reverses them
    return down, up


def size_multiple(cfg: SwinLSTMConfig) -> int:
    """What height and width must be multiples of: every cell's window must tile its grid, and the grid
    must halve once per stage (the lcm of patch · 2^level · window over the cells)."""
    down, up = stage_plan(cfg)
    m = cfg.patch_size * 2 ** len(cfg.depths_down)
    for s in down + up:
        m = math.lcm(m, cfg.patch_size * 2**s.level * s.window)
    return m


def _reason(cfg: SwinLSTMConfig) -> str:
    down, up = stage_plan(cfg)
    windows = ", ".join(str(s.window) for s in down + up)
    return (
        f"SwinLSTM with patch_size {cfg.patch_size}, {len(down)} stage(s) and windows {windows} "
        f"(down cells, then up cells) needs every stage's grid tiled by its window"
    )


# --------------------------------------------------------------------------------------------
# Window attention
# --------------------------------------------------------------------------------------------
def relative_position_index(window: int) -> Tensor:
    """N×N (N = window²) index into the (2·window − 1)² relative-position table, tokens row-major:
    ``(Δrow + window − 1)·(2·window − 1) + (Δcol + window − 1)``."""
    r = torch.arange(window).repeat_interleave(window)  # row of each token
    c = torch.arange(window).repeat(window)  # column
    return (r[:, None] - r[None, :] + window - 1) * (2 * window - 1) + (c[:, None] - c[None, :] + window - 1)


def shifted_window_mask(
    grid_h: int, grid_w: int, window: int, shift: int, *, device: Any = None, dtype: torch.dtype = torch.float32
) -> Tensor:
    """nW×N×N additive mask of the shifted windows of a ``grid_h``×``grid_w`` grid (windows row-major):
    0 between tokens of the same region of the un-shifted grid, −100 between different regions. The
    regions along each axis are [0, n − window), [n − window, n − shift), [n − shift, n)."""

    def region(n: int) -> Tensor:
        a = torch.arange(n, device=device)
        return (a >= n - window).long() + (a >= n - shift).long()

    ids = region(grid_h)[:, None] * 3 + region(grid_w)[None, :]  # grid_h × grid_w
    ids = rearrange(ids, "(nh w1) (nw w2) -> (nh nw) (w1 w2)", w1=window, w2=window)  # nW × N
    differ = ids[:, None, :] != ids[:, :, None]
    return torch.zeros(differ.shape, dtype=dtype, device=device).masked_fill(differ, MASK_VALUE)


class WindowAttention(nn.Module):
    """Multi-head self-attention inside each window, with a learnt relative position bias.
    (B·nW)×N×C → (B·nW)×N×C, N = window²."""

    def __init__(self, dim: int, heads: int, window: int):
        super().__init__()
        self.heads, self.window = heads, window
        self.scale = (dim // heads) ** -0.5
        self.relative_position_bias_table = nn.Parameter(torch.zeros((2 * window - 1) ** 2, heads))
        self.register_buffer("relative_position_index", relative_position_index(window), persistent=False)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        if not self.relative_position_bias_table.is_meta:
            nn.init.trunc_normal_(self.relative_position_bias_table, std=0.02)

    def bias(self) -> Tensor:
        """heads×N×N relative position bias."""
        n = self.window**2
        return (
            self.relative_position_bias_table[self.relative_position_index.reshape(-1)]
            .reshape(n, n, -1)
            .permute(2, 0, 1)
        )

    def forward(self, x: Tensor, mask: Tensor | None) -> Tensor:
        q, k, v = rearrange(self.qkv(x), "b n (three h d) -> three b h n d", three=3, h=self.heads)
        scores = (q * self.scale) @ k.transpose(-2, -1) + self.bias()  # (B·nW)×heads×N×N
        if mask is not None:
            n_win = mask.shape[0]
            scores = rearrange(scores, "(b w) h i j -> b w h i j", w=n_win) + mask[None, :, None]
            scores = rearrange(scores, "b w h i j -> (b w) h i j")
        out = scores.softmax(dim=-1) @ v  # (B·nW)×heads×N×d
        return self.proj(rearrange(out, "b h n d -> b n (h d)"))


class Mlp(nn.Module):
    """Linear → GELU → Linear (timm's ``Mlp``)."""

    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc2(self.act(self.fc1(x)))


class SwinBlock(nn.Module):
    """A Swin Transformer block (OpenSTL's ``STB``): optional fusion of a second input, (shifted) window
    attention and an MLP, both residual. B×L×C (+ B×L×C) → B×L×C on a grid of L = h·w tokens."""

    def __init__(self, dim: int, heads: int, window: int, shift: int, mlp_ratio: float, drop_path: float, fuse: bool):
        super().__init__()
        self.window, self.shift = window, shift
        self.norm1 = nn.LayerNorm(dim)
        self.reduce = nn.Linear(2 * dim, dim) if fuse else None  # OpenSTL's `red`: [LN₁(x); LN₁(y)] → C
        self.attn = WindowAttention(dim, heads, window)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))
        self.drop_path = DropPath(drop_path)

    def forward(self, x: Tensor, grid: tuple[int, int], other: Tensor | None = None) -> Tensor:
        gh, gw = grid
        z = self.norm1(x)
        if self.reduce is not None:
            z = self.reduce(torch.cat([z, self.norm1(other)], dim=-1))
        z = rearrange(z, "b (h w) c -> b h w c", h=gh)
        mask = None
        if self.shift:
            z = torch.roll(z, shifts=(-self.shift, -self.shift), dims=(1, 2))
            mask = shifted_window_mask(gh, gw, self.window, self.shift, device=x.device, dtype=x.dtype)
        win = self.window
        z = rearrange(z, "b (nh w1) (nw w2) c -> (b nh nw) (w1 w2) c", w1=win, w2=win)  # windows
        z = self.attn(z, mask)
        z = rearrange(z, "(b nh nw) (w1 w2) c -> b (nh w1) (nw w2) c", nh=gh // win, nw=gw // win, w1=win)
        if self.shift:
            z = torch.roll(z, shifts=(self.shift, self.shift), dims=(1, 2))
        x = x + self.drop_path(rearrange(z, "b h w c -> b (h w) c"))
        return x + self.drop_path(self.mlp(self.norm2(x)))


class SwinLSTMCell(nn.Module):
    """``depth`` Swin blocks as an LSTM cell (equations in the module docstring). Block j shifts its
    windows when j is odd; blocks 0, 2, 4, … fuse a second input (H_{t−1} for block 0, X after)."""

    def __init__(self, plan: StagePlan, mlp_ratio: float):
        super().__init__()
        self.dim = plan.dim
        self.blocks = nn.ModuleList(
            SwinBlock(
                plan.dim,
                plan.heads,
                plan.window,
                plan.shift if j % 2 else 0,
                mlp_ratio,
                plan.drop_path[j],
                fuse=j % 2 == 0,
            )
            for j in range(plan.depth)
        )

    def forward(
        self, x: Tensor, state: tuple[Tensor, Tensor], grid: tuple[int, int]
    ) -> tuple[Tensor, tuple[Tensor, Tensor]]:
        h, c = state
        o = self.blocks[0](x, grid, h)
        for j, block in enumerate(self.blocks[1:], start=1):
            o = block(o, grid, x if j % 2 == 0 else None)
        f = torch.sigmoid(o)
        c = f * (c + torch.tanh(o))
        h = f * torch.tanh(c)
        return h, (h, c)


# --------------------------------------------------------------------------------------------
# Patch embedding, merging, expanding, reconstruction
# --------------------------------------------------------------------------------------------
class PatchEmbed(nn.Module):
    """p×p conv with stride p, then LayerNorm over channels: B×C×H×W → B×(H/p·W/p)×E."""

    def __init__(self, channels: int, dim: int, patch: int):
        super().__init__()
        self.proj = nn.Conv2d(channels, dim, patch, stride=patch)
        self.norm = nn.LayerNorm(dim)

    def forward(self, frame: Tensor) -> Tensor:
        return self.norm(rearrange(self.proj(frame), "b c h w -> b (h w) c"))


class PatchMerging(nn.Module):
    """2×2 neighbours → one token: [x(0,0); x(1,0); x(0,1); x(1,1)] (row, column offsets), LN, linear
    4C → 2C without bias. B×(h·w)×C → B×(h/2·w/2)×2C."""

    def __init__(self, dim: int):
        super().__init__()
        self.norm = nn.LayerNorm(4 * dim)
        self.reduction = nn.Linear(4 * dim, 2 * dim, bias=False)

    def forward(self, x: Tensor, grid: tuple[int, int]) -> Tensor:
        x = rearrange(x, "b (h r w s) c -> b (h w) (s r c)", h=grid[0] // 2, r=2, s=2)
        return self.reduction(self.norm(x))


class PatchExpanding(nn.Module):
    """Linear C → 2C without bias; each token's 2C channels become a 2×2 block of C/2-channel tokens
    (channel index (row·2 + column)·C/2 + c), LN. B×(h·w)×C → B×(2h·2w)×C/2."""

    def __init__(self, dim: int):
        super().__init__()
        self.expand = nn.Linear(dim, 2 * dim, bias=False)
        self.norm = nn.LayerNorm(dim // 2)

    def forward(self, x: Tensor, grid: tuple[int, int]) -> Tensor:
        x = rearrange(self.expand(x), "b (h w) (r s c) -> b (h r w s) c", h=grid[0], r=2, s=2)
        return self.norm(x)


# --------------------------------------------------------------------------------------------
# The whole net
# --------------------------------------------------------------------------------------------
class SwinLSTM(RecurrentNet):
    """SwinLSTM-D: any T in, any number of frames out (the recurrent rollout of
    :class:`~stzoo.models.recurrent.RecurrentNet`, with this net's :meth:`step`)."""

    arch = "swinlstm"
    config_class = SwinLSTMConfig

    def __init__(self, config: SwinLSTMConfig | None = None, **overrides: Any):
        nn.Module.__init__(self)  # the layers are not RecurrentNet's cell stack; its rollout is reused
        cfg = self.config = SwinLSTMConfig.from_dict({**(config.to_dict() if config else {}), **overrides})
        self.frames_in, self.frames_out = cfg.frames_in, cfg.frames_out
        self.channels, self.height, self.width = cfg.channels, cfg.height, cfg.width
        self.patch_size = cfg.patch_size
        down, up = stage_plan(cfg)
        self.plan = (tuple(down), tuple(up))
        self.embed = PatchEmbed(cfg.channels, cfg.embed_dim, cfg.patch_size)  # B×(h·w)×E
        self.down = nn.ModuleList(SwinLSTMCell(s, cfg.mlp_ratio) for s in down)  # at h/2^k, E·2^k
        self.merge = nn.ModuleList(PatchMerging(s.dim) for s in down)  # → h/2^(k+1), E·2^(k+1)
        self.up = nn.ModuleList(SwinLSTMCell(s, cfg.mlp_ratio) for s in up)  # at h/2^(L−i), E·2^(L−i)
        self.expand = nn.ModuleList(PatchExpanding(s.dim) for s in up)  # → 2× grid, C/2
        self.unembed = nn.ConvTranspose2d(cfg.embed_dim, cfg.channels, 3, stride=2, padding=1, output_padding=1)

    def init_states(self, batch: int, h: int, w: int, like: Tensor) -> tuple[tuple[Tensor, Tensor], ...]:
        """Zero (H, C) for every cell (down cells, then up cells) for a token grid of ``h``×``w``."""
        states = []
        for s in self.plan[0] + self.plan[1]:
            z = like.new_zeros(batch, (h >> s.level) * (w >> s.level), s.dim)
            states.append((z, z))
        return tuple(states)

    def step(
        self, frame: Tensor, states: tuple[tuple[Tensor, Tensor], ...]
    ) -> tuple[Tensor, tuple[tuple[Tensor, Tensor], ...]]:
        """One time step: read ``frame`` (B×C×H×W), return the predicted next frame and the states."""
        gh, gw = frame.shape[-2] // self.patch_size, frame.shape[-1] // self.patch_size
        n = len(self.down)
        new = []
        x = self.embed(frame)
        for k, (cell, merge) in enumerate(zip(self.down, self.merge)):
            grid = (gh >> k, gw >> k)
            x, state = cell(x, states[k], grid)
            x = merge(x, grid)
            new.append(state)
        for i, (cell, expand) in enumerate(zip(self.up, self.expand)):
            grid = (gh >> (n - i), gw >> (n - i))
            x, state = cell(x, states[n + i], grid)
            x = expand(x, grid)
            new.append(state)
        x = rearrange(x, "b (h w) c -> b c h w", h=gh)
        return torch.sigmoid(self.unembed(x)), tuple(new)


# --------------------------------------------------------------------------------------------
# What generic code reads
# --------------------------------------------------------------------------------------------
def _tables(cfg: SwinLSTMConfig) -> list[str]:
    """The relative position tables: their size is (2·window − 1)², and a stage's window shrinks to its
    grid when the training size makes the grid no larger than ``window_size``."""
    down, up = stage_plan(cfg)
    return [
        f"{path}.{i}.blocks.{j}.attn.relative_position_bias_table"
        for path, plans in (("down", down), ("up", up))
        for i, s in enumerate(plans)
        for j in range(s.depth)
    ]


#: OpenSTL's SwinLSTM-D recipe (configs/mmnist/SwinLSTM-D.py and its method): AdamW at 1e-4 with a one-cycle
#: schedule, batch 16, 200 epochs, MSE over every one-step prediction with the model's own predictions fed
#: back (no scheduled sampling), no gradient clipping
SWINLSTM_RECIPE = Recipe(lr=1e-4, batch_size=16, epochs=200, loss="mse", scheduled_sampling=0.0, grad_clip=0.0)

ARCHITECTURE = register(
    Architecture(
        name="swinlstm",
        model=SwinLSTM,
        config=SwinLSTMConfig,
        recipe=SWINLSTM_RECIPE,
        any_frames=True,
        spec_keys={k: k for k in ("frames_in", "frames_out", "channels", "height", "width")},
        size_multiple=size_multiple,
        size_reason=_reason,
        channel_params=lambda cfg: {
            "embed.proj.weight": ChannelParam(1, "in"),
            "unembed.weight": ChannelParam(1, "out"),  # ConvTranspose2d: in × out × k × k
            "unembed.bias": ChannelParam(0, "out"),
        },
        resolution_params=_tables,
        # peak memory estimate: windowed attention: linear; measured ~2.2·embed_dim
        activation_floats=lambda cfg, b, t, h, w: 8.0 * cfg.embed_dim * b * t * h * w,
        tiny_config={
            "frames_in": 4,
            "frames_out": 4,
            "height": 32,
            "width": 32,
            "embed_dim": 8,
            "depths_down": [2, 3],
            "depths_up": [3, 2],
            "num_heads": [2, 4],
            "window_size": 4,
        },
        description="SwinLSTM-D (Tang et al., ICCV 2023): LSTM cells of Swin Transformer blocks in a down/up-"
        "sampling stack",
    )
)
