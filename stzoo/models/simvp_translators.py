"""The ten MetaFormer translator blocks of OpenSTL's MetaVP benchmark, for :mod:`stzoo.models.simvp`.

SimVP's translator reads the frames stacked on channels, ``z ∈ R^{B×D×H'×W'}`` with ``D = T·hid_S``
(or ``hid_T`` inside), and any MetaFormer block that mixes tokens (space) and channels (time × features)
can take the place of gSTA (Tan et al., "OpenSTL", NeurIPS 2023 Datasets & Benchmarks). Every block here
maps ``B×D×H'×W' → B×D×H'×W'`` and is written once; :class:`MetaBlock` wraps one and adds OpenSTL's
1×1 ``reduction`` conv where the width changes.

Tensor names are OpenSTL's (``openstl/modules/simvp_modules.py``, ``openstl/modules/layers/*.py``) and,
where OpenSTL takes a block from timm 0.6 (ViT's ``Block``, Swin's ``SwinTransformerBlock``, MLP-Mixer's
``MixerBlock``, ConvNeXt's ``ConvNeXtBlock``, ``Mlp``, ``ConvMlp``, ``DropPath``, ``LayerNorm2d``),
timm's, so OpenSTL checkpoints load by renaming ``hid.enc.N.`` only. timm is not a dependency: its
modules are re-stated with the same numerics (exact GELU, the same LayerNorm epsilons, attention
scaled by ``head_dim^-½`` before the softmax).

Shapes: ``B`` batch, ``D`` channels, ``N = H'·W'`` tokens, ``h`` heads (8 everywhere, as OpenSTL fixes).

================  ==============================================================================
``model_type``    block (token mixer; channel mixer)
================  ==============================================================================
``vit``           ``x ← x + MHSA(LN(x))``, ``x ← x + MLP(LN(x))`` over all N tokens
``swin``          the same inside ``w×w`` windows with a relative-position bias, windows shifted by
                  ``w/2`` in odd blocks; OpenSTL passes **no** attention mask to shifted windows
``mlp``           ``x ← x + MLP_tok(LN(x)ᵀ)ᵀ`` (an MLP over the N positions, hidden D/2), ``x ← x + MLP(LN(x))``
``convmixer``     ``x ← x + BN(GELU(DW_11(x)))``, ``x ← BN(GELU(PW(x)))`` (no residual on the second)
``uniformer``     first and last block: ``x ← x + DW_3(x)``, ``x ← x + PW(DW_5(PW(BN(x))))``,
                  ``x ← x + MLP(BN(x))``; middle blocks: ``x ← x + DW_3(x)``, then ViT's block with
                  layer scales γ₁, γ₂
``poolformer``    ``x ← x + s₁ ⊙ (AvgPool_3(GN(x)) − GN(x))``, ``x ← x + s₂ ⊙ MLP(GN(x))`` (GN: one group)
``convnext``      ``x ← x + γ ⊙ MLP(LN(DW_7(x)))``
``van``           ``x ← x + s₁ ⊙ (P₂ (A ⊙ GELU(P₁ BN(x))) + BN(x))``, ``A = PW(DW_7,d3(DW_5(·)))``,
                  ``x ← x + s₂ ⊙ MixMLP(BN(x))``
``hornet``        ``x ← x + γ₁ ⊙ g⁴Conv(LN(x))`` (recursive gated conv of order 4),
                  ``x ← x + γ₂ ⊙ MLP(LN(x))``
``moga``          ``x ← x + s₁ ⊙ MOGA(BN(x))`` (multi-order dilated DW convs, SiLU gate),
                  ``x ← x + s₂ ⊙ CA-FFN(BN(x))``
================  ==============================================================================

MLP hidden widths are ``int(D · mlp_ratio)``. The stochastic-depth and dropout rates are OpenSTL's
(training only). Weight initialisation follows each block's ``_init_weights`` in OpenSTL: truncated
normal (std 0.02) for linear layers, N(0, 2 / fan_out) for convs, ones / zeros for norms.
This module does no I/O.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import Tensor, nn

from stzoo.errors import ConfigError
from stzoo.models.tau import DropPath, MixMlp, large_kernel_convs

__all__ = [
    "METAFORMER_TYPES",
    "MODEL_TYPE_ALIASES",
    "HEADS",
    "MetaBlock",
    "MetaTranslator",
    "swin_window",
    "relative_position_index",
    "check_metaformer_widths",
]

#: the ten MetaFormer ``model_type`` values, spelt as OpenSTL's config files spell them
METAFORMER_TYPES = ("vit", "swin", "mlp", "convmixer", "uniformer", "poolformer", "convnext", "van", "hornet", "moga")
#: other spellings OpenSTL's ``MetaBlock`` accepts
MODEL_TYPE_ALIASES = {"mlpmixer": "mlp", "moganet": "moga"}
#: attention heads of the ViT, Swin and UniFormer blocks (fixed in OpenSTL)
HEADS = 8
#: HorNet's g^n conv order (OpenSTL's ``HorBlock`` default)
HORNET_ORDER = 4


# --------------------------------------------------------------------------------------------
# Initialisation (OpenSTL's per-block ``_init_weights``)
# --------------------------------------------------------------------------------------------
def _init(module: nn.Module, *, linear: bool = True, conv: str | None = "fan_out") -> None:
    """Linear: trunc-normal(0.02), zero bias; Conv2d: N(0, 2/fan_out) ("fan_out") or trunc-normal(0.02)
    ("trunc"), zero bias; LayerNorm / GroupNorm / BatchNorm: ones, zeros. Skipped on the meta device."""
    for m in module.modules():
        w = getattr(m, "weight", None)
        if w is None or w.is_meta:
            continue
        if isinstance(m, nn.Linear) and linear:
            nn.init.trunc_normal_(m.weight, std=0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Conv2d) and conv is not None:
            if conv == "trunc":
                nn.init.trunc_normal_(m.weight, std=0.02)
            else:
                fan_out = m.kernel_size[0] * m.kernel_size[1] * m.out_channels // m.groups
                nn.init.normal_(m.weight, 0.0, math.sqrt(2.0 / fan_out))
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, (nn.LayerNorm, nn.GroupNorm, nn.BatchNorm2d, LayerNorm2d)):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)


# --------------------------------------------------------------------------------------------
# Shared layers
# --------------------------------------------------------------------------------------------
def tokens(x: Tensor) -> Tensor:
    """B×D×H×W → B×N×D (N = H·W, row-major: token ``i·W + j`` is pixel (i, j))."""
    return rearrange(x, "b d h w -> b (h w) d")


def untokens(x: Tensor, h: int, w: int) -> Tensor:
    """B×N×D → B×D×H×W, the inverse of :func:`tokens`."""
    return rearrange(x, "b (h w) d -> b d h w", h=h, w=w)


class LayerNorm2d(nn.Module):
    """LayerNorm over the channels of a B×D×H×W map (timm's ``LayerNorm2d``, HorNet's channels-first
    ``LayerNorm``): ``(x − μ_c) / √(σ²_c + ε) · weight + bias`` at every pixel."""

    def __init__(self, dim: int, eps: float = 1e-6):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))
        self.bias = nn.Parameter(torch.zeros(dim))
        self.eps = eps

    def forward(self, x: Tensor) -> Tensor:
        y = F.layer_norm(x.permute(0, 2, 3, 1), (x.shape[1],), self.weight, self.bias, self.eps)
        return y.permute(0, 3, 1, 2)


class Mlp(nn.Module):
    """Linear → GELU → dropout → Linear → dropout on B×N×D tokens (timm's ``Mlp``)."""

    def __init__(self, dim: int, hidden: int, drop: float = 0.0, out: int | None = None):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.drop1 = nn.Dropout(drop)
        self.fc2 = nn.Linear(hidden, out or dim)
        self.drop2 = nn.Dropout(drop)

    def forward(self, x: Tensor) -> Tensor:
        return self.drop2(self.fc2(self.drop1(self.act(self.fc1(x)))))


class ConvMlp(nn.Module):
    """1×1 conv → GELU → dropout → 1×1 conv (→ dropout) on B×D×H×W (timm's ``ConvMlp``, PoolFormer's and
    UniFormer's ``Mlp`` / ``CMlp``). ``drop_after`` adds the dropout after ``fc2`` that the latter two have."""

    def __init__(self, dim: int, hidden: int, drop: float = 0.0, drop_after: bool = True):
        super().__init__()
        self.fc1 = nn.Conv2d(dim, hidden, 1)
        self.act = nn.GELU()
        self.drop = nn.Dropout(drop)
        self.fc2 = nn.Conv2d(hidden, dim, 1)
        self.drop_after = drop_after

    def forward(self, x: Tensor) -> Tensor:
        x = self.fc2(self.drop(self.act(self.fc1(x))))
        return self.drop(x) if self.drop_after else x


class Attention(nn.Module):
    """Multi-head self-attention over B×N×D tokens (timm's ``Attention`` / ``WindowAttention``, UniFormer's
    ``Attention``): ``[q; k; v] = W_qkv x`` split into ``h`` heads of ``d = D // h`` channels,
    ``softmax(q kᵀ / √d + bias) v``, heads concatenated, ``W_proj``. ``bias`` is an optional
    h×N×N additive term (Swin's relative positions)."""

    def __init__(self, dim: int, heads: int = HEADS, drop: float = 0.0):
        super().__init__()
        self.heads = heads
        self.head_dim = dim // heads
        inner = self.head_dim * heads  # timm's attn_dim (= dim when heads divides it)
        self.scale = self.head_dim**-0.5
        self.qkv = nn.Linear(dim, 3 * inner)
        self.proj = nn.Linear(inner, dim)
        self.proj_drop = nn.Dropout(drop)

    def forward(self, x: Tensor, bias: Tensor | None = None) -> Tensor:
        q, k, v = rearrange(self.qkv(x), "b n (three h d) -> three b h n d", three=3, h=self.heads)
        attn = (q * self.scale) @ k.transpose(-2, -1)  # B×h×N×N
        if bias is not None:
            attn = attn + bias
        y = rearrange(attn.softmax(dim=-1) @ v, "b h n d -> b n (h d)")
        return self.proj_drop(self.proj(y))


# --------------------------------------------------------------------------------------------
# ViT (timm's vision_transformer.Block, OpenSTL's ViTSubBlock)
# --------------------------------------------------------------------------------------------
class ViTBlock(nn.Module):
    """``x ← x + MHSA(LN(x))``, ``x ← x + MLP(LN(x))`` over the H'·W' tokens (LayerNorm ε = 1e-5)."""

    def __init__(self, dim: int, mlp_ratio: float, drop: float, drop_path: float):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = Attention(dim, HEADS, drop)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio), drop)
        self.drop_path = DropPath(drop_path)
        _init(self, conv=None)

    def forward(self, x: Tensor) -> Tensor:
        h, w = x.shape[-2:]
        z = tokens(x)  # B×N×D
        z = z + self.drop_path(self.attn(self.norm1(z)))
        z = z + self.drop_path(self.mlp(self.norm2(z)))
        return untokens(z, h, w)


# --------------------------------------------------------------------------------------------
# Swin (timm 0.6's SwinTransformerBlock, forward as OpenSTL's SwinSubBlock)
# --------------------------------------------------------------------------------------------
def swin_window(height: int, width: int) -> tuple[int, bool]:
    """(window size, whether odd blocks shift) of OpenSTL's ``SwinSubBlock`` at a translator resolution
    H'×W': 7 when H' is a multiple of 7, else max(4, H' // 16), at most 8; timm then shrinks a window
    that would cover the whole map to min(H', W') and stops shifting."""
    window = 7 if height % 7 == 0 else max(4, height // 16)
    window = min(8, window)
    if min(height, width) <= window:
        return min(height, width), False
    return window, True


def relative_position_index(window: int) -> Tensor:
    """timm's ``get_relative_position_index(w, w)``: the w²×w² index into the (2w−1)² bias table of the
    offset (Δi, Δj) between two positions of a window, ``(Δi + w − 1)·(2w − 1) + Δj + w − 1``."""
    pos = torch.arange(window * window, device="cpu")  # a constant: built on the CPU even under a meta device
    i, j = pos // window, pos % window
    di = i[:, None] - i[None, :] + (window - 1)  # w²×w²
    dj = j[:, None] - j[None, :] + (window - 1)
    return di * (2 * window - 1) + dj


class WindowAttention(Attention):
    """:class:`Attention` plus a learned bias per head and relative offset, ``relative_position_bias_table``
    ((2w−1)²×h), gathered by the constant ``relative_position_index`` (a buffer not saved)."""

    def __init__(self, dim: int, window: int, drop: float = 0.0):
        super().__init__(dim, HEADS, drop)
        self.window = window
        self.relative_position_bias_table = nn.Parameter(torch.zeros((2 * window - 1) ** 2, HEADS))
        self.register_buffer("relative_position_index", relative_position_index(window), persistent=False)

    def position_bias(self) -> Tensor:
        """h×w²×w² bias added to every window's attention scores."""
        n = self.window**2
        table = self.relative_position_bias_table[self.relative_position_index.reshape(-1)]
        return rearrange(table, "(n m) h -> h n m", n=n, m=n)

    def forward(self, x: Tensor, bias: Tensor | None = None) -> Tensor:
        return super().forward(x, self.position_bias())


class SwinBlock(nn.Module):
    """Window attention over ``w×w`` windows, the map rolled by ``-w/2`` first in shifted blocks and rolled
    back after, then ``x ← x + MLP(LN(x))``. As in OpenSTL's forward, shifted windows get no mask: tokens
    that the roll brings from the opposite border attend to each other."""

    def __init__(self, dim: int, window: int, shift: int, mlp_ratio: float, drop: float, drop_path: float):
        super().__init__()
        self.window, self.shift = window, shift
        self.norm1 = nn.LayerNorm(dim)
        self.attn = WindowAttention(dim, window, drop)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio), drop)
        self.drop_path = DropPath(drop_path)
        _init(self, conv=None)
        if not self.attn.relative_position_bias_table.is_meta:
            nn.init.trunc_normal_(self.attn.relative_position_bias_table, std=0.02)

    def forward(self, x: Tensor) -> Tensor:
        h, w = x.shape[-2:]
        ws, s = self.window, self.shift
        shortcut = tokens(x)  # B×N×D
        z = rearrange(self.norm1(shortcut), "b (h w) d -> b h w d", h=h, w=w)
        if s:
            z = torch.roll(z, shifts=(-s, -s), dims=(1, 2))
        win = rearrange(z, "b (nh p) (nw q) d -> (b nh nw) (p q) d", p=ws, q=ws)  # windows × w² × D
        win = self.attn(win)
        z = rearrange(win, "(b nh nw) (p q) d -> b (nh p) (nw q) d", nh=h // ws, nw=w // ws, p=ws, q=ws)
        if s:
            z = torch.roll(z, shifts=(s, s), dims=(1, 2))
        z = shortcut + self.drop_path(rearrange(z, "b h w d -> b (h w) d"))
        z = z + self.drop_path(self.mlp(self.norm2(z)))
        return untokens(z, h, w)


# --------------------------------------------------------------------------------------------
# MLP-Mixer (timm's MixerBlock, OpenSTL's MLPMixerSubBlock)
# --------------------------------------------------------------------------------------------
class MixerBlock(nn.Module):
    """Token mixing ``x ← x + MLP_tok(LN(x)ᵀ)ᵀ`` (an MLP across the ``N = H'·W'`` positions with
    ``int(0.5·D)`` hidden units: its weights fix the resolution), channel mixing ``x ← x + MLP(LN(x))``.
    LayerNorm ε = 1e-6."""

    def __init__(self, dim: int, seq_len: int, mlp_ratio: float, drop: float, drop_path: float):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp_tokens = Mlp(seq_len, int(0.5 * dim), drop)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp_channels = Mlp(dim, int(mlp_ratio * dim), drop)
        self.drop_path = DropPath(drop_path)
        _init(self, conv=None)

    def forward(self, x: Tensor) -> Tensor:
        h, w = x.shape[-2:]
        z = tokens(x)  # B×N×D
        z = z + self.drop_path(self.mlp_tokens(self.norm1(z).transpose(1, 2)).transpose(1, 2))
        z = z + self.drop_path(self.mlp_channels(self.norm2(z)))
        return untokens(z, h, w)


# --------------------------------------------------------------------------------------------
# ConvMixer (OpenSTL's ConvMixerSubBlock)
# --------------------------------------------------------------------------------------------
class ConvMixerBlock(nn.Module):
    """``x ← x + BN(GELU(DW_k(x)))`` (k = 11, "same" padding), then ``x ← BN(GELU(PW(x)))``: the channel
    mixing has no residual. No MLP ratio, dropout or stochastic depth (OpenSTL ignores them here)."""

    def __init__(self, dim: int, kernel_size: int = 11):
        super().__init__()
        self.conv_dw = nn.Conv2d(dim, dim, kernel_size, groups=dim, padding=kernel_size // 2)
        self.act_1 = nn.GELU()
        self.norm_1 = nn.BatchNorm2d(dim)
        self.conv_pw = nn.Conv2d(dim, dim, 1)
        self.act_2 = nn.GELU()
        self.norm_2 = nn.BatchNorm2d(dim)
        _init(self)

    def forward(self, x: Tensor) -> Tensor:
        x = x + self.norm_1(self.act_1(self.conv_dw(x)))
        return self.norm_2(self.act_2(self.conv_pw(x)))


# --------------------------------------------------------------------------------------------
# UniFormer (OpenSTL's layers/uniformer.py: CBlock, SABlock)
# --------------------------------------------------------------------------------------------
class UniFormerConvBlock(nn.Module):
    """UniFormer's local block (``CBlock``): ``x ← x + DW_3(x)`` (positional), ``x ← x + PW₂(DW_5(PW₁(BN(x))))``,
    ``x ← x + MLP(BN(x))`` with a 1×1-conv MLP."""

    def __init__(self, dim: int, mlp_ratio: float, drop: float, drop_path: float):
        super().__init__()
        self.pos_embed = nn.Conv2d(dim, dim, 3, padding=1, groups=dim)
        self.norm1 = nn.BatchNorm2d(dim)
        self.conv1 = nn.Conv2d(dim, dim, 1)
        self.conv2 = nn.Conv2d(dim, dim, 1)
        self.attn = nn.Conv2d(dim, dim, 5, padding=2, groups=dim)
        self.norm2 = nn.BatchNorm2d(dim)
        self.mlp = ConvMlp(dim, int(dim * mlp_ratio), drop)
        self.drop_path = DropPath(drop_path)
        _init(self)

    def forward(self, x: Tensor) -> Tensor:
        x = x + self.pos_embed(x)
        x = x + self.drop_path(self.conv2(self.attn(self.conv1(self.norm1(x)))))
        return x + self.drop_path(self.mlp(self.norm2(x)))


class UniFormerAttentionBlock(nn.Module):
    """UniFormer's global block (``SABlock``): ``x ← x + DW_3(x)``, then over tokens
    ``x ← x + γ₁ ⊙ MHSA(LN(x))``, ``x ← x + γ₂ ⊙ MLP(LN(x))`` (γ initialised to 1e-6)."""

    def __init__(self, dim: int, mlp_ratio: float, drop: float, drop_path: float, init_value: float = 1e-6):
        super().__init__()
        self.pos_embed = nn.Conv2d(dim, dim, 3, padding=1, groups=dim)
        self.norm1 = nn.LayerNorm(dim)
        self.attn = Attention(dim, HEADS, drop)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio), drop)
        self.gamma_1 = nn.Parameter(torch.full((dim,), init_value))
        self.gamma_2 = nn.Parameter(torch.full((dim,), init_value))
        self.drop_path = DropPath(drop_path)
        _init(self, conv=None)

    def forward(self, x: Tensor) -> Tensor:
        x = x + self.pos_embed(x)
        h, w = x.shape[-2:]
        z = tokens(x)
        z = z + self.drop_path(self.gamma_1 * self.attn(self.norm1(z)))
        z = z + self.drop_path(self.gamma_2 * self.mlp(self.norm2(z)))
        return untokens(z, h, w)


# --------------------------------------------------------------------------------------------
# PoolFormer (OpenSTL's layers/poolformer.py)
# --------------------------------------------------------------------------------------------
class Pooling(nn.Module):
    """PoolFormer's token mixer: ``AvgPool_3(x) − x`` (stride 1, padding not counted in the average)."""

    def __init__(self, pool_size: int = 3):
        super().__init__()
        self.pool = nn.AvgPool2d(pool_size, stride=1, padding=pool_size // 2, count_include_pad=False)

    def forward(self, x: Tensor) -> Tensor:
        return self.pool(x) - x


class PoolFormerBlock(nn.Module):
    """``x ← x + s₁ ⊙ Pool(GN(x))``, ``x ← x + s₂ ⊙ MLP(GN(x))``; GroupNorm with one group, layer scales
    initialised to 1e-5, a 1×1-conv MLP."""

    def __init__(self, dim: int, mlp_ratio: float, drop: float, drop_path: float, init_value: float = 1e-5):
        super().__init__()
        self.norm1 = nn.GroupNorm(1, dim)
        self.token_mixer = Pooling(3)
        self.norm2 = nn.GroupNorm(1, dim)
        self.mlp = ConvMlp(dim, int(dim * mlp_ratio), drop)
        self.layer_scale_1 = nn.Parameter(torch.full((dim,), init_value))
        self.layer_scale_2 = nn.Parameter(torch.full((dim,), init_value))
        self.drop_path = DropPath(drop_path)
        _init(self, conv="trunc")

    def forward(self, x: Tensor) -> Tensor:
        x = x + self.drop_path(self.layer_scale_1[:, None, None] * self.token_mixer(self.norm1(x)))
        return x + self.drop_path(self.layer_scale_2[:, None, None] * self.mlp(self.norm2(x)))


# --------------------------------------------------------------------------------------------
# ConvNeXt (timm's ConvNeXtBlock with conv_mlp=True, forward as OpenSTL's ConvNeXtSubBlock)
# --------------------------------------------------------------------------------------------
class ConvNeXtBlock(nn.Module):
    """``x ← x + γ ⊙ MLP(LN(DW_7(x)))``: 7×7 depthwise conv, channel LayerNorm (ε = 1e-6), a 1×1-conv MLP,
    layer scale γ initialised to 1e-6."""

    def __init__(self, dim: int, mlp_ratio: float, drop_path: float, ls_init_value: float = 1e-6):
        super().__init__()
        self.conv_dw = nn.Conv2d(dim, dim, 7, padding=3, groups=dim)
        self.norm = LayerNorm2d(dim, eps=1e-6)
        self.mlp = ConvMlp(dim, int(mlp_ratio * dim), 0.0, drop_after=False)
        self.gamma = nn.Parameter(torch.full((dim,), ls_init_value))
        self.drop_path = DropPath(drop_path)
        _init(self)

    def forward(self, x: Tensor) -> Tensor:
        return x + self.drop_path(self.gamma[:, None, None] * self.mlp(self.norm(self.conv_dw(x))))


# --------------------------------------------------------------------------------------------
# VAN (OpenSTL's layers/van.py)
# --------------------------------------------------------------------------------------------
class LKA(nn.Module):
    """Large-kernel attention: ``A = PW(DW_7,d3(DW_5(u)))``, output ``u ⊙ A``."""

    def __init__(self, dim: int):
        super().__init__()
        self.conv0, self.conv_spatial = large_kernel_convs(dim, 21, 3)  # 5×5, then 7×7 with dilation 3
        self.conv1 = nn.Conv2d(dim, dim, 1)

    def forward(self, u: Tensor) -> Tensor:
        return u * self.conv1(self.conv_spatial(self.conv0(u)))


class VANAttention(nn.Module):
    """``P₂(LKA(GELU(P₁ x))) + x`` (1×1 convs P₁, P₂)."""

    def __init__(self, dim: int):
        super().__init__()
        self.proj_1 = nn.Conv2d(dim, dim, 1)
        self.activation = nn.GELU()
        self.spatial_gating_unit = LKA(dim)
        self.proj_2 = nn.Conv2d(dim, dim, 1)

    def forward(self, x: Tensor) -> Tensor:
        return self.proj_2(self.spatial_gating_unit(self.activation(self.proj_1(x)))) + x


class VANBlock(nn.Module):
    """``x ← x + s₁ ⊙ Attn(BN(x))``, ``x ← x + s₂ ⊙ MixMLP(BN(x))`` (layer scales initialised to 1e-2; the
    MixMLP is gSTA's: 1×1 → 3×3 depthwise → GELU → 1×1)."""

    def __init__(self, dim: int, mlp_ratio: float, drop: float, drop_path: float, init_value: float = 1e-2):
        super().__init__()
        self.norm1 = nn.BatchNorm2d(dim)
        self.attn = VANAttention(dim)
        self.norm2 = nn.BatchNorm2d(dim)
        self.mlp = MixMlp(dim, int(dim * mlp_ratio), drop)
        self.layer_scale_1 = nn.Parameter(torch.full((dim,), init_value))
        self.layer_scale_2 = nn.Parameter(torch.full((dim,), init_value))
        self.drop_path = DropPath(drop_path)
        _init(self)

    def forward(self, x: Tensor) -> Tensor:
        x = x + self.drop_path(self.layer_scale_1[:, None, None] * self.attn(self.norm1(x)))
        return x + self.drop_path(self.layer_scale_2[:, None, None] * self.mlp(self.norm2(x)))


# --------------------------------------------------------------------------------------------
# HorNet (OpenSTL's layers/hornet.py)
# --------------------------------------------------------------------------------------------
class GnConv(nn.Module):
    """Recursive gated convolution g^n Conv (order n = 4): widths ``d_k = D / 2^(n−1−k)``;
    ``[p₀; q] = W_in x`` (``p₀``: d₀ channels, ``q``: Σ d_k), ``[q₀ … q_{n−1}] = DW_7(q)``,
    ``p₀ ← p₀ ⊙ q₀``, ``p_{k+1} = W_k p_k ⊙ q_{k+1}``, output ``W_out p_{n−1}``."""

    def __init__(self, dim: int, order: int = HORNET_ORDER):
        super().__init__()
        self.dims = [dim // 2**i for i in range(order)][::-1]
        self.proj_in = nn.Conv2d(dim, 2 * dim, 1)
        self.dwconv = nn.Conv2d(sum(self.dims), sum(self.dims), 7, padding=3, groups=sum(self.dims))
        self.proj_out = nn.Conv2d(dim, dim, 1)
        self.pws = nn.ModuleList(nn.Conv2d(self.dims[i], self.dims[i + 1], 1) for i in range(order - 1))

    def forward(self, x: Tensor) -> Tensor:
        pwa, abc = torch.split(self.proj_in(x), (self.dims[0], sum(self.dims)), dim=1)
        dw = torch.split(self.dwconv(abc), self.dims, dim=1)
        y = pwa * dw[0]
        for i, pw in enumerate(self.pws):
            y = pw(y) * dw[i + 1]
        return self.proj_out(y)


class HorNetBlock(nn.Module):
    """``x ← x + γ₁ ⊙ gnConv(LN(x))``, ``x ← x + γ₂ ⊙ MLP(LN(x))`` (channel LayerNorms ε = 1e-6, a
    linear MLP over pixels, γ initialised to 1e-6)."""

    def __init__(self, dim: int, mlp_ratio: float, drop_path: float, init_value: float = 1e-6):
        super().__init__()
        self.norm1 = LayerNorm2d(dim, eps=1e-6)
        self.gnconv = GnConv(dim)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.pwconv1 = nn.Linear(dim, int(mlp_ratio * dim))
        self.act = nn.GELU()
        self.pwconv2 = nn.Linear(int(mlp_ratio * dim), dim)
        self.gamma1 = nn.Parameter(torch.full((dim,), init_value))
        self.gamma2 = nn.Parameter(torch.full((dim,), init_value))
        self.drop_path = DropPath(drop_path)
        _init(self)

    def forward(self, x: Tensor) -> Tensor:
        x = x + self.drop_path(self.gamma1[:, None, None] * self.gnconv(self.norm1(x)))
        z = self.pwconv2(self.act(self.pwconv1(self.norm2(x.permute(0, 2, 3, 1)))))  # B×H×W×D
        return x + self.drop_path((self.gamma2 * z).permute(0, 3, 1, 2))


# --------------------------------------------------------------------------------------------
# MogaNet (OpenSTL's layers/moganet.py)
# --------------------------------------------------------------------------------------------
class MultiOrderDWConv(nn.Module):
    """Multi-order depthwise convs: ``y₀ = DW_5(x)`` on all D channels; of its channels split 1 : 3 : 4,
    the second part goes through DW_5 with dilation 2, the third through DW_7 with dilation 3; the
    concatenation goes through a 1×1 conv."""

    def __init__(self, dim: int, dilations: tuple[int, int, int] = (1, 2, 3), split: tuple[int, int, int] = (1, 3, 4)):
        super().__init__()
        self.d1 = int(split[1] / sum(split) * dim)
        self.d2 = int(split[2] / sum(split) * dim)
        self.d0 = dim - self.d1 - self.d2
        self.DW_conv0 = nn.Conv2d(dim, dim, 5, padding=(1 + 4 * dilations[0]) // 2, groups=dim, dilation=dilations[0])
        self.DW_conv1 = nn.Conv2d(
            self.d1, self.d1, 5, padding=(1 + 4 * dilations[1]) // 2, groups=self.d1, dilation=dilations[1]
        )
        self.DW_conv2 = nn.Conv2d(
            self.d2, self.d2, 7, padding=(1 + 6 * dilations[2]) // 2, groups=self.d2, dilation=dilations[2]
        )
        self.PW_conv = nn.Conv2d(dim, dim, 1)

    def forward(self, x: Tensor) -> Tensor:
        x0 = self.DW_conv0(x)
        x1 = self.DW_conv1(x0[:, self.d0 : self.d0 + self.d1])
        x2 = self.DW_conv2(x0[:, x0.shape[1] - self.d2 :])
        return self.PW_conv(torch.cat([x0[:, : self.d0], x1, x2], dim=1))


class MultiOrderGatedAggregation(nn.Module):
    """``u = SiLU(P₁x + σ ⊙ (P₁x − GAP(P₁x)))``, output ``P₂(SiLU(G u) ⊙ SiLU(MODW(u))) + x``."""

    def __init__(self, dim: int):
        super().__init__()
        self.proj_1 = nn.Conv2d(dim, dim, 1)
        self.gate = nn.Conv2d(dim, dim, 1)
        self.value = MultiOrderDWConv(dim)
        self.proj_2 = nn.Conv2d(dim, dim, 1)
        self.act_value = nn.SiLU()
        self.act_gate = nn.SiLU()
        self.sigma = nn.Parameter(torch.full((1, dim, 1, 1), 1e-5))

    def forward(self, x: Tensor) -> Tensor:
        u = self.proj_1(x)
        u = self.act_value(u + self.sigma * (u - u.mean(dim=(2, 3), keepdim=True)))
        return self.proj_2(self.act_gate(self.gate(u)) * self.act_gate(self.value(u))) + x


class ChannelAggregationFFN(nn.Module):
    """``h = GELU(DW_3(W₁ x))``, ``h ← h + σ ⊙ (h − GELU(W_d h))`` (``W_d``: 1×1 conv to one channel),
    output ``W₂ h``."""

    def __init__(self, dim: int, hidden: int, drop: float = 0.0):
        super().__init__()
        self.fc1 = nn.Conv2d(dim, hidden, 1)
        self.dwconv = nn.Conv2d(hidden, hidden, 3, padding=1, groups=hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Conv2d(hidden, dim, 1)
        self.drop = nn.Dropout(drop)
        self.decompose = nn.Conv2d(hidden, 1, 1)
        self.sigma = nn.Parameter(torch.full((1, hidden, 1, 1), 1e-5))
        self.decompose_act = nn.GELU()

    def forward(self, x: Tensor) -> Tensor:
        h = self.drop(self.act(self.dwconv(self.fc1(x))))
        h = h + self.sigma * (h - self.decompose_act(self.decompose(h)))
        return self.drop(self.fc2(h))


class MogaBlock(nn.Module):
    """``x ← x + s₁ ⊙ MOGA(BN(x))``, ``x ← x + s₂ ⊙ CA-FFN(BN(x))`` (layer scales 1×D×1×1, initialised 1e-5)."""

    def __init__(self, dim: int, mlp_ratio: float, drop: float, drop_path: float, init_value: float = 1e-5):
        super().__init__()
        self.norm1 = nn.BatchNorm2d(dim)
        self.attn = MultiOrderGatedAggregation(dim)
        self.norm2 = nn.BatchNorm2d(dim)
        self.mlp = ChannelAggregationFFN(dim, int(dim * mlp_ratio), drop)
        self.layer_scale_1 = nn.Parameter(torch.full((1, dim, 1, 1), init_value))
        self.layer_scale_2 = nn.Parameter(torch.full((1, dim, 1, 1), init_value))
        self.drop_path = DropPath(drop_path)
        _init(self)

    def forward(self, x: Tensor) -> Tensor:
        x = x + self.drop_path(self.layer_scale_1 * self.attn(self.norm1(x)))
        return x + self.drop_path(self.layer_scale_2 * self.mlp(self.norm2(x)))


# --------------------------------------------------------------------------------------------
# OpenSTL's MetaBlock / MidMetaNet for these types
# --------------------------------------------------------------------------------------------
def check_metaformer_widths(model_type: str, widths: tuple[int, ...], mlp_ratio: float) -> None:
    """Raise a ConfigError when a translator width cannot hold ``model_type``'s block (heads of 8
    channels' worth, HorNet's halvings, MogaNet's 1 : 3 : 4 split)."""
    need = {"vit": HEADS, "swin": HEADS, "uniformer": HEADS, "hornet": 2 ** (HORNET_ORDER - 1), "moga": 8}
    m = need.get(model_type)
    for d in widths:
        if m and d % m:
            raise ConfigError(
                f"model_type={model_type!r} needs translator widths (frames·hid_S = {widths[0]} and hid_T) "
                f"that are multiples of {m}; got {d}"
            )
        if model_type != "convmixer" and int(d * mlp_ratio) < 1:
            raise ConfigError(f"mlp_ratio={mlp_ratio} leaves the {model_type} MLP of a {d}-channel block empty")


def make_block(
    model_type: str,
    dim: int,
    *,
    layer: int,
    out_dim: int,
    resolution: tuple[int, int],
    mlp_ratio: float,
    drop: float,
    drop_path: float,
) -> nn.Module:
    """OpenSTL's ``MetaBlock`` choice of sub-block for ``model_type`` at width ``dim`` (block ``layer`` of
    the translator, writing ``out_dim``; ``resolution`` = H'×W', the encoder's output size)."""
    builders: dict[str, Callable[[], nn.Module]] = {
        "vit": lambda: ViTBlock(dim, mlp_ratio, drop, drop_path),
        "swin": lambda: _swin(dim, layer, resolution, mlp_ratio, drop, drop_path),
        "mlp": lambda: MixerBlock(dim, resolution[0] * resolution[1], mlp_ratio, drop, drop_path),
        "convmixer": lambda: ConvMixerBlock(dim, 11),
        "uniformer": lambda: (
            UniFormerAttentionBlock(dim, mlp_ratio, drop, drop_path)
            if dim == out_dim and layer > 0
            else UniFormerConvBlock(dim, mlp_ratio, drop, drop_path)
        ),
        "poolformer": lambda: PoolFormerBlock(dim, mlp_ratio, drop, drop_path),
        "convnext": lambda: ConvNeXtBlock(dim, mlp_ratio, drop_path),
        "van": lambda: VANBlock(dim, mlp_ratio, drop, drop_path),
        "hornet": lambda: HorNetBlock(dim, mlp_ratio, drop_path),
        "moga": lambda: MogaBlock(dim, mlp_ratio, drop, drop_path),
    }
    if model_type not in builders:
        raise ConfigError(f"unknown MetaFormer model_type {model_type!r}; known: {', '.join(METAFORMER_TYPES)}")
    return builders[model_type]()


def _swin(
    dim: int, layer: int, resolution: tuple[int, int], mlp_ratio: float, drop: float, drop_path: float
) -> SwinBlock:
    window, shifts = swin_window(*resolution)
    return SwinBlock(dim, window, window // 2 if shifts and layer % 2 else 0, mlp_ratio, drop, drop_path)


class MetaBlock(nn.Module):
    """One translator block: the ``model_type`` sub-block at ``dim`` channels (``block``), then a 1×1
    ``reduction`` conv to ``out_dim`` where the width changes. OpenSTL's ``MetaBlock``."""

    def __init__(self, model_type: str, dim: int, out_dim: int, layer: int, **kwargs):
        super().__init__()
        self.block = make_block(model_type, dim, layer=layer, out_dim=out_dim, **kwargs)
        self.reduction = nn.Conv2d(dim, out_dim, 1) if dim != out_dim else None

    def forward(self, x: Tensor) -> Tensor:
        z = self.block(x)
        return z if self.reduction is None else self.reduction(z)


class MetaTranslator(nn.Module):
    """``N_T`` :class:`MetaBlock` s over B×(T·hid_S)×H'×W': the first narrows to ``hid_T``, the last widens
    back (OpenSTL's ``MidMetaNet``); stochastic-depth rates as gSTA's (``rates``)."""

    def __init__(
        self,
        model_type: str,
        c_in: int,
        c_hid: int,
        n_blocks: int,
        resolution: tuple[int, int],
        mlp_ratio: float,
        drop: float,
        rates: list[float],
    ):
        super().__init__()
        widths = [c_in] + [c_hid] * (n_blocks - 1) + [c_in]
        self.blocks = nn.ModuleList(
            MetaBlock(
                model_type,
                widths[i],
                widths[i + 1],
                i,
                resolution=resolution,
                mlp_ratio=mlp_ratio,
                drop=drop,
                drop_path=rates[i],
            )
            for i in range(n_blocks)
        )

    def forward(self, x: Tensor) -> Tensor:
        for block in self.blocks:
            x = block(x)
        return x
