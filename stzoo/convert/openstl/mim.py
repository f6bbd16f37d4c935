"""Import OpenSTL MIM checkpoints (``MIM_Model``) into stzoo's ``mim``.

What is mapped (OpenSTL name → stzoo name; i >= 1 a MIM block, j a MIM-N)::

    stlstm_layer.0.conv_{x,h,m,o}.0.weight      → cells.0.conv_{x,h,m,o}.weight   (conv_x: input channels permuted)
    stlstm_layer.0.conv_last.weight             → cells.0.conv_last.weight
    stlstm_layer.i.conv_x_cc.0.weight           → cells.i.conv_x.weight      (gates from the layer below)
    stlstm_layer.i.conv_t_cc.0.weight           → cells.i.conv_h.weight      (gates from H_{t−1})
    stlstm_layer.i.conv_s_cc.0.weight           → cells.i.conv_m.weight      (gates from the zigzag memory)
    stlstm_layer.i.conv_last.weight             → cells.i.conv_last.weight
    stlstm_layer.i.conv_h_concat.0.weight       → cells.i.mims.conv_q.weight (MIM-S, reading C_{t−1})
    stlstm_layer.i.conv_x_concat.0.weight       → cells.i.mims.conv_d.weight (MIM-S, reading MIM-N's output)
    stlstm_layer.i.ct_weight / .oc_weight       → cells.i.mims.w_if / .w_o
    stlstm_layer_diff.j.conv_h_concat.0.weight  → mimn.j.conv_q.weight
    stlstm_layer_diff.j.conv_x_concat.0.weight  → mimn.j.conv_d.weight
    stlstm_layer_diff.j.ct_weight / .oc_weight  → mimn.j.w_if / .w_o
    conv_last.weight                            → readout.weight             (output channels permuted)
    stlstm_layer_diff.j.conv_last.weight        → dropped: OpenSTL's MIMN.forward never uses it

The peephole weights (``ct_weight``, ``oc_weight``) have one value per cell of the patch grid, so the
frame size is read from the weights (grid × patch_size) and the converted model runs at that size
only. OpenSTL keeps MIM-S's cell between forward calls (``MIMBlock.convlstm_c``); stzoo starts it at
zero in every call, so the converted model reproduces what OpenSTL outputs on its first call after
loading the weights (see :mod:`stzoo.models.mim`).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

from torch import Tensor

import stzoo.models.mim  # noqa: F401  (registers the "mim" architecture)
from stzoo.convert.openstl.core import (
    RECURRENT_KEYS,
    OpenSTLMethod,
    _count,
    _indices,
    _need,
    _patch_permutation,
    _Resolver,
    check_recurrent_variant,
    patch_spec,
    register_openstl,
    resolve_patch_and_channels,
    uniform_hidden,
)
from stzoo.errors import InputError

__all__ = ["MIM"]


def _resolve(state: Mapping[str, Tensor], r: _Resolver) -> tuple[dict[str, Any], dict[str, Any], str]:
    what = "OpenSTL's MIM model (MIM_Model)"
    first = _need(state, "stlstm_layer.0.conv_x.0.weight", what)
    _need(state, "conv_last.weight", what)
    check_recurrent_variant(
        state, r, label="MIM", names=("mim",), arch="mim", ln_pattern=r"^stlstm_layer(_diff)?\.\d+\.conv_[a-z_]+\.1\."
    )
    n_layers = _count(_indices(state, r"^stlstm_layer\.(\d+)\."), "the layers stlstm_layer.N")
    if n_layers < 2:
        raise InputError(
            f"the checkpoint has {n_layers} layer(s); stzoo's MIM has an ST-LSTM and at least one MIM "
            "block (stlstm_layer.1)"
        )
    n_diff = _count(_indices(state, r"^stlstm_layer_diff\.(\d+)\."), "the MIM-N modules stlstm_layer_diff.N")
    if n_diff != n_layers - 1:
        raise InputError(
            f"the checkpoint has {n_layers} layers but {n_diff} MIM-N modules (stlstm_layer_diff.N); "
            f"OpenSTL's MIM has one per MIM block ({n_layers - 1})"
        )
    hidden = []
    for n in range(n_layers):
        w = _need(state, f"stlstm_layer.{n}.conv_last.weight", what)
        if w.dim() != 4 or w.shape[1] != 2 * w.shape[0]:
            raise InputError(
                f"stlstm_layer.{n}.conv_last.weight has shape {tuple(w.shape)}; expected hidden × 2·hidden × 1 × 1"
            )
        hidden.append(int(w.shape[0]))
    if first.dim() != 4 or first.shape[-1] != first.shape[-2] or first.shape[-1] % 2 == 0:
        raise InputError(
            f"stlstm_layer.0.conv_x.0.weight has shape {tuple(first.shape)}; expected "
            "7·hidden × in × k × k with a square, odd kernel"
        )
    ct = _need(state, "stlstm_layer.1.ct_weight", what)
    if ct.dim() != 3:
        raise InputError(
            f"stlstm_layer.1.ct_weight has shape {tuple(ct.shape)}; expected 2·hidden × grid height × grid width"
        )
    grid = (int(ct.shape[1]), int(ct.shape[2]))
    cfg: dict[str, Any] = {
        "num_layers": r.inferred("num_layers", n_layers),
        "num_hidden": uniform_hidden(hidden, r, "MIM"),
        "filter_size": r.inferred("filter_size", int(first.shape[-1])),
    }
    p, c = resolve_patch_and_channels(r, int(first.shape[1]), "MIM", grid=grid, config_file="configs/mmnist/MIM.py")
    spec = patch_spec(r, cfg, p, c, grid=grid, grid_source="weights (peephole grid × patch_size)")
    return cfg, spec, "MIM_Model (layer_norm=0)"


_FIRST = re.compile(r"^cells\.0\.(conv_x|conv_h|conv_m|conv_o|conv_last)\.weight$")
_BLOCK = re.compile(
    r"^cells\.(\d+)\.(conv_x|conv_h|conv_m|conv_last|mims\.conv_q|mims\.conv_d|mims\.w_if|mims\.w_o)"
    r"(\.weight)?$"
)
_MIMN = re.compile(r"^mimn\.(\d+)\.(conv_q|conv_d|w_if|w_o)(\.weight)?$")
_BLOCK_NAMES = {
    "conv_x": "conv_x_cc.0.weight",
    "conv_h": "conv_t_cc.0.weight",
    "conv_m": "conv_s_cc.0.weight",
    "conv_last": "conv_last.weight",
    "mims.conv_q": "conv_h_concat.0.weight",
    "mims.conv_d": "conv_x_concat.0.weight",
    "mims.w_if": "ct_weight",
    "mims.w_o": "oc_weight",
}
_MIMN_NAMES = {
    "conv_q": "conv_h_concat.0.weight",
    "conv_d": "conv_x_concat.0.weight",
    "w_if": "ct_weight",
    "w_o": "oc_weight",
}


def _pairs(
    model_keys: list[str], cfg: dict[str, Any]
) -> tuple[dict[str, tuple[str | None, Callable[[Tensor], Tensor] | None]], dict[str, tuple[int, ...]]]:
    perm = _patch_permutation(cfg["channels"], cfg["patch_size"])
    pairs: dict[str, tuple[str | None, Callable[[Tensor], Tensor] | None]] = {}
    for key in model_keys:
        if m := _FIRST.match(key):
            conv = m.group(1)
            src = "stlstm_layer.0." + ("conv_last.weight" if conv == "conv_last" else f"{conv}.0.weight")
            pairs[key] = (src, (lambda w: w[:, perm]) if conv == "conv_x" else None)
        elif (m := _BLOCK.match(key)) and m.group(1) != "0":
            pairs[key] = (f"stlstm_layer.{m.group(1)}.{_BLOCK_NAMES[m.group(2)]}", None)
        elif m := _MIMN.match(key):
            pairs[key] = (f"stlstm_layer_diff.{m.group(1)}.{_MIMN_NAMES[m.group(2)]}", None)
        elif key == "readout.weight":
            pairs[key] = ("conv_last.weight", lambda w: w[perm])
        else:
            raise AssertionError(f"no OpenSTL name for stzoo key {key}")  # stzoo's MIM changed
    h = cfg["num_hidden"]
    unused = {f"stlstm_layer_diff.{j}.conv_last.weight": (h, 2 * h, 1, 1) for j in range(cfg["num_layers"] - 1)}
    return pairs, unused


MIM = register_openstl(
    OpenSTLMethod(
        arch="mim",
        names=("mim",),
        label="MIM",
        config_keys=RECURRENT_KEYS,
        resolve=_resolve,
        pairs=_pairs,
        card_notes=(
            "the first cell's input channels and the readout's output channels were permuted from OpenSTL's "
            "patch order ((i·p + j)·C + c) to stzoo's (c·p² + i·p + j)",
            "OpenSTL's MIM blocks carry MIM-S's cell (`convlstm_c`) from one forward call to the next; stzoo "
            "starts it at zero in every call, which is what OpenSTL computes on its first call after loading",
        ),
    )
)
