"""Import OpenSTL PredRNN++ checkpoints (``PredRNNpp_Model``) into stzoo's ``predrnnpp``.

What is mapped (OpenSTL name → stzoo name; N the layer)::

    cell_list.N.conv_x.0.weight           → cells.N.conv_x.weight   (layer 0: input channels permuted)
    cell_list.N.conv_{h,c,m,c2m,om}.0.weight → cells.N.conv_{h,c,m,c2m,om}.weight
    cell_list.N.conv_last.weight          → cells.N.conv_last.weight
    gradient_highway.z_concat.0.weight    → ghu.conv_z.weight
    gradient_highway.x_concat.0.weight    → ghu.conv_x.weight
    conv_last.weight                      → readout.weight           (output channels permuted)
    cell_list.N.conv_o.0.weight           → dropped: OpenSTL's CausalLSTMCell.forward never uses it

Like stzoo's model, OpenSTL's convolutions have no bias and the forget bias (1.0) is a constant of the
forward pass, so every value is copied unchanged apart from the patch-order permutation of the first
cell's input channels and of the readout's output channels (OpenSTL's ``reshape_patch`` orders patch
channels ``(i·p + j)·C + c``, stzoo's ``PixelUnshuffle`` ``c·p² + i·p + j``).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

from torch import Tensor

import stzoo.models.predrnnpp  # noqa: F401  (registers the "predrnnpp" architecture)
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

__all__ = ["PREDRNNPP"]


def _resolve(state: Mapping[str, Tensor], r: _Resolver) -> tuple[dict[str, Any], dict[str, Any], str]:
    what = "OpenSTL's PredRNN++ model (PredRNNpp_Model)"
    first = _need(state, "cell_list.0.conv_x.0.weight", what)
    _need(state, "conv_last.weight", what)
    if "cell_list.0.conv_c2m.0.weight" not in state or "gradient_highway.z_concat.0.weight" not in state:
        kind = "PredRNN's ST-LSTM cells" if "cell_list.0.conv_m.0.weight" in state else "other cells"
        raise InputError(
            f"this does not look like OpenSTL's PredRNN++: it has {kind} without a Causal LSTM's "
            "'cell_list.0.conv_c2m.0.weight' or the gradient highway "
            "'gradient_highway.z_concat.0.weight'. Check --arch."
        )
    check_recurrent_variant(
        state,
        r,
        label="PredRNN++",
        names=("predrnnpp", "predrnn++"),
        arch="predrnnpp",
        ln_pattern=r"^(cell_list\.\d+\.conv_[a-z0-9]+|gradient_highway\.[xz]_concat)\.1\.",
    )
    n_layers = _count(_indices(state, r"^cell_list\.(\d+)\."), "the cells cell_list.N")
    if n_layers < 2:
        raise InputError(
            f"the checkpoint has {n_layers} Causal LSTM cell(s); PredRNN++ has at least 2 (the gradient "
            "highway sits between the first two)"
        )
    hidden = []
    for n in range(n_layers):
        w = _need(state, f"cell_list.{n}.conv_h.0.weight", what)
        if w.dim() != 4 or w.shape[0] != 4 * w.shape[1]:
            raise InputError(
                f"cell_list.{n}.conv_h.0.weight has shape {tuple(w.shape)}; expected 4·hidden × hidden × k × k"
            )
        hidden.append(int(w.shape[1]))
    if first.dim() != 4 or first.shape[-1] != first.shape[-2] or first.shape[-1] % 2 == 0:
        raise InputError(
            f"cell_list.0.conv_x.0.weight has shape {tuple(first.shape)}; expected 7·hidden × in × k × k "
            "with a square, odd kernel"
        )
    cfg: dict[str, Any] = {
        "num_layers": r.inferred("num_layers", n_layers),
        "num_hidden": uniform_hidden(hidden, r, "PredRNN++"),
        "filter_size": r.inferred("filter_size", int(first.shape[-1])),
    }
    p, c = resolve_patch_and_channels(r, int(first.shape[1]), "PredRNN++", config_file="configs/mmnist/PredRNNpp.py")
    spec = patch_spec(r, cfg, p, c)
    return cfg, spec, "PredRNNpp_Model (layer_norm=0)"


_CELL = re.compile(r"^cells\.(\d+)\.(conv_x|conv_h|conv_c|conv_m|conv_c2m|conv_om|conv_last)\.weight$")
_GHU = {
    "ghu.conv_z.weight": "gradient_highway.z_concat.0.weight",
    "ghu.conv_x.weight": "gradient_highway.x_concat.0.weight",
}


def _pairs(
    model_keys: list[str], cfg: dict[str, Any]
) -> tuple[dict[str, tuple[str | None, Callable[[Tensor], Tensor] | None]], dict[str, tuple[int, ...]]]:
    perm = _patch_permutation(cfg["channels"], cfg["patch_size"])
    pairs: dict[str, tuple[str | None, Callable[[Tensor], Tensor] | None]] = {}
    for key in model_keys:
        m = _CELL.match(key)
        if m:
            n, conv = m.group(1), m.group(2)
            src = f"cell_list.{n}.{conv}.weight" if conv == "conv_last" else f"cell_list.{n}.{conv}.0.weight"
            pairs[key] = (src, (lambda w: w[:, perm]) if (n, conv) == ("0", "conv_x") else None)
        elif key in _GHU:
            pairs[key] = (_GHU[key], None)
        elif key == "readout.weight":
            pairs[key] = ("conv_last.weight", lambda w: w[perm])
        else:
            raise AssertionError(f"no OpenSTL name for stzoo key {key}")  # stzoo's PredRNN++ changed
    h, k = cfg["num_hidden"], cfg["filter_size"]
    unused = {f"cell_list.{n}.conv_o.0.weight": (h, 2 * h, k, k) for n in range(cfg["num_layers"])}
    return pairs, unused


PREDRNNPP = register_openstl(
    OpenSTLMethod(
        arch="predrnnpp",
        names=("predrnnpp", "predrnn++"),
        label="PredRNN++",
        config_keys=RECURRENT_KEYS,
        resolve=_resolve,
        pairs=_pairs,
        card_notes=(
            "the first cell's input channels and the readout's output channels were permuted from OpenSTL's "
            "patch order ((i·p + j)·C + c) to stzoo's (c·p² + i·p + j)",
        ),
    )
)
