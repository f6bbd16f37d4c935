"""Import OpenSTL E3D-LSTM checkpoints (``E3DLSTM_Model``) into stzoo's ``e3dlstm``.

What is mapped (OpenSTL name → stzoo name; N the layer, n its hidden size)::

    cell_list.N.conv_x.0.conv3d.weight[:6n]    → cells.N.conv_x.weight   (layer 0: input channels permuted)
    cell_list.N.conv_h.0.conv3d.weight         → cells.N.conv_h.weight
    cell_list.N.conv_new_cell.0.conv3d.weight  → cells.N.conv_oc.weight
    cell_list.N.conv_new_gm.0.conv3d.weight    → cells.N.conv_om.weight
    cell_list.N.conv_last.conv3d.weight        → cells.N.conv_last.weight
    cell_list.N._norm_c_t.{weight,bias}        → cells.N.norm_c.{weight,bias}
    conv_last.weight                           → readout.weight          (output channels permuted)
    cell_list.N.conv_gm.0.conv3d.weight        → dropped: it only ever convolves OpenSTL's all-zero global
                                                 memory (the cell returns the memory it was given)
    cell_list.N.conv_x.0.conv3d.weight[6n:]    → dropped rows: the forget gate of that memory, multiplied by
                                                 tanh(conv_gm(0)) = 0

so the converted model computes OpenSTL's function exactly (see :mod:`stzoo.models.e3dlstm`). The
LayerNorm weights have one value per cell of the patch grid and window slot, so the window length and
the frame size are read from the weights (grid × patch_size) and the converted model runs at that
size only. OpenSTL's ``reshape_patch`` orders patch channels ``(i·p + j)·C + c``, stzoo's
``PixelUnshuffle`` ``c·p² + i·p + j``: the first cell's input channels and the readout's output channels
are permuted.

(OpenSTL itself cannot build this method at HEAD: ``openstl/methods/e3dlstm.py`` reads
``self.args.num_hidden``, an attribute its Lightning ``Base_method`` no longer has; checkpoints written
by earlier OpenSTL versions, whose model class is unchanged, are what this converts.)
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

from torch import Tensor

import stzoo.models.e3dlstm  # noqa: F401  (registers the "e3dlstm" architecture)
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

__all__ = ["E3DLSTM"]

_WHAT = "OpenSTL's E3D-LSTM model (E3DLSTM_Model)"
#: strides of the 3-D gate convolutions stzoo's E3D-LSTM implements (OpenSTL's configs: 1, KTH's 2)
STRIDES = (1, 2, 3, 4)


def _resolve(state: Mapping[str, Tensor], r: _Resolver) -> tuple[dict[str, Any], dict[str, Any], str]:
    first = _need(state, "cell_list.0.conv_x.0.conv3d.weight", _WHAT)
    readout = _need(state, "conv_last.weight", _WHAT)
    check_recurrent_variant(
        state,
        r,
        label="E3D-LSTM",
        names=("e3dlstm", "e3d_lstm"),
        arch="e3dlstm",
        ln_pattern=r"^cell_list\.\d+\.conv_[a-z_]+\.1\.",
        strides=STRIDES,
    )
    n_layers = _count(_indices(state, r"^cell_list\.(\d+)\."), "the cells cell_list.N")
    hidden = []
    for n in range(n_layers):
        w = _need(state, f"cell_list.{n}.conv_h.0.conv3d.weight", _WHAT)
        if w.dim() != 5 or w.shape[0] != 4 * w.shape[1]:
            raise InputError(
                f"cell_list.{n}.conv_h.0.conv3d.weight has shape {tuple(w.shape)}; expected "
                "4·hidden × hidden × 2 × k × k"
            )
        hidden.append(int(w.shape[1]))
        x = _need(state, f"cell_list.{n}.conv_x.0.conv3d.weight", _WHAT)
        if x.dim() != 5 or x.shape[0] != 7 * hidden[-1]:
            raise InputError(
                f"cell_list.{n}.conv_x.0.conv3d.weight has shape {tuple(x.shape)}; OpenSTL's E3D-LSTM "
                f"cell has 7·hidden = {7 * hidden[-1]} output rows (i, g, r, o, i', g', f')"
            )
    if (
        first.dim() != 5
        or first.shape[0] != 7 * hidden[0]
        or first.shape[2] != 2
        or first.shape[-1] != first.shape[-2]
        or first.shape[-1] % 2 == 0
    ):
        raise InputError(
            f"cell_list.0.conv_x.0.conv3d.weight has shape {tuple(first.shape)}; expected "
            "7·hidden × in × 2 × k × k with a square, odd k"
        )
    norm = _need(state, "cell_list.0._norm_c_t.weight", _WHAT)
    if norm.dim() != 4:
        raise InputError(
            f"cell_list.0._norm_c_t.weight has shape {tuple(norm.shape)}; expected hidden × window × "
            "grid height × grid width"
        )
    window, grid = int(norm.shape[1]), (int(norm.shape[2]), int(norm.shape[3]))
    if readout.dim() != 5 or readout.shape[2] != window:
        raise InputError(
            f"conv_last.weight has shape {tuple(readout.shape)}; expected p²·C × hidden × {window} × 1 × 1 "
            f"(the window of the LayerNorms, {window})"
        )
    cfg: dict[str, Any] = {
        "num_layers": r.inferred("num_layers", n_layers),
        "num_hidden": uniform_hidden(hidden, r, "E3D-LSTM"),
        "filter_size": r.inferred("filter_size", int(first.shape[-1])),
        "window_length": r.inferred("window_length", window),
    }
    # the stride of the gate convs leaves no trace in the tensors: from the config (OpenSTL's KTH config: 2)
    cfg["stride"] = r.chosen("stride", 1, note="default (1, as in OpenSTL's configs other than KTH's)")
    p, c = resolve_patch_and_channels(
        r, int(first.shape[1]), "E3D-LSTM", grid=grid, config_file="configs/mmnist/E3DLSTM.py"
    )
    spec = patch_spec(r, cfg, p, c, grid=grid, grid_source="weights (LayerNorm grid × patch_size)")
    return cfg, spec, "E3DLSTM_Model (layer_norm=0)"


_CELL = re.compile(r"^cells\.(\d+)\.(conv_x|conv_h|conv_oc|conv_om|conv_last|norm_c)\.(weight|bias)$")
_NAMES = {
    "conv_x": "conv_x.0.conv3d",
    "conv_h": "conv_h.0.conv3d",
    "conv_oc": "conv_new_cell.0.conv3d",
    "conv_om": "conv_new_gm.0.conv3d",
    "conv_last": "conv_last.conv3d",
    "norm_c": "_norm_c_t",
}


def _pairs(
    model_keys: list[str], cfg: dict[str, Any]
) -> tuple[dict[str, tuple[str | None, Callable[[Tensor], Tensor] | None]], dict[str, tuple[int, ...]]]:
    perm = _patch_permutation(cfg["channels"], cfg["patch_size"])
    n, k = cfg["num_hidden"], cfg["filter_size"]
    pairs: dict[str, tuple[str | None, Callable[[Tensor], Tensor] | None]] = {}
    for key in model_keys:
        if m := _CELL.match(key):
            layer, conv, what = m.groups()
            src = f"cell_list.{layer}.{_NAMES[conv]}.{what}"
            if conv == "conv_x" and layer == "0":
                pairs[key] = (src, lambda w: w[: 6 * n][:, perm])  # rows i g r o i' g' (f' dropped), patch order
            elif conv == "conv_x":
                pairs[key] = (src, lambda w: w[: 6 * n])
            else:
                pairs[key] = (src, None)
        elif key == "readout.weight":
            pairs[key] = ("conv_last.weight", lambda w: w[perm])
        else:
            raise AssertionError(f"no OpenSTL name for stzoo key {key}")  # stzoo's E3D-LSTM changed
    unused = {f"cell_list.{i}.conv_gm.0.conv3d.weight": (4 * n, n, 2, k, k) for i in range(cfg["num_layers"])}
    return pairs, unused


E3DLSTM = register_openstl(
    OpenSTLMethod(
        arch="e3dlstm",
        names=("e3dlstm", "e3d_lstm"),
        label="E3D-LSTM",
        config_keys=RECURRENT_KEYS | {"window_length"},
        resolve=_resolve,
        pairs=_pairs,
        card_notes=(
            "the first cell's input channels and the readout's output channels were permuted from OpenSTL's "
            "patch order ((i·p + j)·C + c) to stzoo's (c·p² + i·p + j)",
            "the last hidden-size rows of every `conv_x` (the forget gate of the global memory) and every "
            "`conv_gm` were dropped: OpenSTL's cell never updates its global memory, which stays zero, so "
            "they never reach the output",
        ),
    )
)
