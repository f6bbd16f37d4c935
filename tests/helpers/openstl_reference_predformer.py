"""An independent reference of the PredFormer authors' Quadruplet-TSST model, for testing stzoo's model and
importer.

Like ``tests/openstl_reference.py``, this re-states from the authors' source (1) the tensor names and
shapes of their checkpoints and (2) the forward pass, as plain ``torch`` calls on a state dict in their
layout. It shares no code with ``stzoo``.

Files read (github.com/yyyujintang/PredFormer, an OpenSTL fork):

* ``openstl/models/PredFormer_Quadruplet_TSST.py`` (``PredFormer_Model``: ``to_patch_embedding`` =
  Rearrange('b t c (h p1) (w p2) -> b t (h w) (p1 p2 c)') + Linear; ``pos_embedding`` =
  ``sinusoidal_embedding(T·N, dim)`` viewed 1×T×N×dim, a plain tensor (``nn.Parameter(...).view(...)``), so
  not in the state dict; ``blocks`` of ``PredFormerLayer`` with ``ts_temporal_transformer``,
  ``ts_space_transformer``, ``st_space_transformer``, ``st_temporal_transformer`` run in that order, over T,
  N, N, T, with no residual around the layer; ``mlp_head`` = LayerNorm + Linear, then
  view(B, T, h, w, C, p, p).permute(0, 1, 4, 2, 5, 3, 6); ``GatedTransformer``: ``layers`` of
  [PreNorm(Attention), PreNorm(SwiGLU), DropPath, DropPath] and a final ``norm``; ``SwiGLU``: fc1_g, fc1_x,
  SiLU(gate)·x, Identity norm, fc2).
* ``openstl/modules/PredFormer_modules.py`` (``PreNorm``: ``norm`` then ``fn``; ``Attention``: ``to_qkv``
  without bias, chunk in q, k, v, heads split 'b n (h d)', scale dim_head^−½, ``to_out`` = Linear + Dropout
  unless heads == 1 and dim_head == dim).
* ``openstl/methods/PredFormer.py`` (``_predict``: one pass when aft == pre; rollout of whole passes, the
  last cut, when aft > pre) and ``configs/mmnist/PredFormer.py``.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from helpers.openstl_reference import relative_error  # noqa: F401 (re-exported)

TRANSFORMERS = ("ts_temporal_transformer", "ts_space_transformer", "st_space_transformer", "st_temporal_transformer")


def _randn(g: torch.Generator, *shape: int, std: float) -> Tensor:
    return torch.randn(*shape, generator=g) * std


def predformer_state_dict(
    *,
    channels: int = 1,
    patch_size: int = 8,
    dim: int = 256,
    heads: int = 8,
    dim_head: int = 32,
    scale_dim: int = 4,
    depth: int = 1,
    Ndepth: int = 6,
    seed: int = 0,
) -> dict[str, Tensor]:
    """Random weights in the key layout of the authors' ``PredFormer_Model`` (Quadruplet-TSST); LayerNorm
    gains and biases far from 1 / 0 so that a misplaced tensor changes the output visibly."""
    g = torch.Generator().manual_seed(seed)
    sd: dict[str, Tensor] = {}

    def linear(name: str, out: int, inp: int, bias: bool = True, gain: float = 1.0) -> None:
        sd[f"{name}.weight"] = _randn(g, out, inp, std=gain / math.sqrt(inp))
        if bias:
            sd[f"{name}.bias"] = _randn(g, out, std=0.1)

    def norm(name: str) -> None:
        sd[f"{name}.weight"] = 1.0 + _randn(g, dim, std=0.2)
        sd[f"{name}.bias"] = _randn(g, dim, std=0.2)

    patch_dim, inner, mlp = channels * patch_size**2, heads * dim_head, dim * scale_dim
    linear("to_patch_embedding.1", dim, patch_dim)
    for i in range(Ndepth):
        for tr in TRANSFORMERS:
            base = f"blocks.{i}.{tr}"
            for j in range(depth):
                norm(f"{base}.layers.{j}.0.norm")
                linear(f"{base}.layers.{j}.0.fn.to_qkv", 3 * inner, dim, bias=False)
                if not (heads == 1 and dim_head == dim):
                    linear(f"{base}.layers.{j}.0.fn.to_out.0", dim, inner)
                norm(f"{base}.layers.{j}.1.norm")
                linear(f"{base}.layers.{j}.1.fn.fc1_g", mlp, dim)
                linear(f"{base}.layers.{j}.1.fn.fc1_x", mlp, dim)
                linear(f"{base}.layers.{j}.1.fn.fc2", dim, mlp)
            norm(f"{base}.norm")
    norm("mlp_head.0")
    linear("mlp_head.1", patch_dim, dim)
    return sd


def sinusoidal_embedding(n_channels: int, dim: int) -> Tensor:
    """The authors' function: a Python-float table, then float32 sin on even, cos on odd columns."""
    pe = torch.FloatTensor([[p / (10000 ** (2 * (i // 2) / dim)) for i in range(dim)] for p in range(n_channels)])
    pe[:, 0::2] = torch.sin(pe[:, 0::2])
    pe[:, 1::2] = torch.cos(pe[:, 1::2])
    return pe[None]


def _ln(sd: dict, name: str, x: Tensor) -> Tensor:
    return F.layer_norm(x, (x.shape[-1],), sd[f"{name}.weight"], sd[f"{name}.bias"], 1e-5)


def _lin(sd: dict, name: str, x: Tensor) -> Tensor:
    return F.linear(x, sd[f"{name}.weight"], sd.get(f"{name}.bias"))


def _attention(sd: dict, name: str, x: Tensor, heads: int) -> Tensor:
    b, n, _ = x.shape
    q, k, v = _lin(sd, f"{name}.to_qkv", x).chunk(3, dim=-1)
    q, k, v = (t.reshape(b, n, heads, -1).permute(0, 2, 1, 3) for t in (q, k, v))
    dots = torch.einsum("bhid,bhjd->bhij", q, k) * q.shape[-1] ** -0.5
    out = torch.einsum("bhij,bhjd->bhid", dots.softmax(dim=-1), v)
    out = out.permute(0, 2, 1, 3).reshape(b, n, -1)
    return _lin(sd, f"{name}.to_out.0", out) if f"{name}.to_out.0.weight" in sd else out


def _gated_transformer(sd: dict, base: str, x: Tensor, heads: int) -> Tensor:
    j = 0
    while f"{base}.layers.{j}.0.norm.weight" in sd:
        x = x + _attention(sd, f"{base}.layers.{j}.0.fn", _ln(sd, f"{base}.layers.{j}.0.norm", x), heads)
        y = _ln(sd, f"{base}.layers.{j}.1.norm", x)
        f = f"{base}.layers.{j}.1.fn"
        x = x + _lin(sd, f"{f}.fc2", F.silu(_lin(sd, f"{f}.fc1_g", y)) * _lin(sd, f"{f}.fc1_x", y))
        j += 1
    return _ln(sd, f"{base}.norm", x)


def predformer_model_forward(sd: dict, x: Tensor, *, patch_size: int, heads: int) -> Tensor:
    """``PredFormer_Model.forward``: B×T×C×H×W → B×T×C×H×W."""
    b, t, c, h, w = x.shape
    p, hp, wp = patch_size, h // patch_size, w // patch_size
    z = x.reshape(b, t, c, hp, p, wp, p).permute(0, 1, 3, 5, 4, 6, 2).reshape(b, t, hp * wp, p * p * c)
    z = _lin(sd, "to_patch_embedding.1", z)
    dim = z.shape[-1]
    z = z + sinusoidal_embedding(t * hp * wp, dim).view(1, t, hp * wp, dim).to(z.dtype)
    i = 0
    while f"blocks.{i}.{TRANSFORMERS[0]}.norm.weight" in sd:
        n = hp * wp
        y = z.permute(0, 2, 1, 3).reshape(b * n, t, dim)  # (b n) t d
        y = _gated_transformer(sd, f"blocks.{i}.ts_temporal_transformer", y, heads)
        y = y.reshape(b, n, t, dim).permute(0, 2, 1, 3).reshape(b * t, n, dim)  # (b t) n d
        y = _gated_transformer(sd, f"blocks.{i}.ts_space_transformer", y, heads)
        y = _gated_transformer(sd, f"blocks.{i}.st_space_transformer", y, heads)
        y = y.reshape(b, t, n, dim).permute(0, 2, 1, 3).reshape(b * n, t, dim)  # (b n) t d
        y = _gated_transformer(sd, f"blocks.{i}.st_temporal_transformer", y, heads)
        z = y.reshape(b, n, t, dim).permute(0, 2, 1, 3)
        i += 1
    y = _lin(sd, "mlp_head.1", _ln(sd, "mlp_head.0", z.reshape(-1, dim)))
    y = y.view(b, t, hp, wp, c, p, p).permute(0, 1, 4, 2, 5, 3, 6).reshape(b, t, c, h, w)
    return y


def predformer_predict(sd: dict, batch_x: Tensor, aft: int, *, patch_size: int, heads: int) -> Tensor:
    """``PredFormer._predict``: aft ≤ pre cuts one pass; aft > pre rolls whole passes out, the last cut."""
    pre = batch_x.shape[1]
    if aft <= pre:
        return predformer_model_forward(sd, batch_x, patch_size=patch_size, heads=heads)[:, :aft]
    out, cur = [], batch_x
    for _ in range(aft // pre):
        cur = predformer_model_forward(sd, cur, patch_size=patch_size, heads=heads)
        out.append(cur)
    if aft % pre:
        cur = predformer_model_forward(sd, cur, patch_size=patch_size, heads=heads)
        out.append(cur[:, : aft % pre])
    return torch.cat(out, dim=1)
