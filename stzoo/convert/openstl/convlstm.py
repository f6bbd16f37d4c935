"""OpenSTL's ConvLSTM (``ConvLSTM_Model``) → stzoo's ``convlstm``.

Importing this module registers the importer with :func:`~stzoo.convert.openstl.core.register_openstl`,
so ``from_openstl(path, arch="ConvLSTM", config={"patch_size": 4})`` converts it. What is mapped
(OpenSTL name → stzoo name)::

    cell_list.N.conv_x.0.weight       → cells.N.conv_x.weight   (layer 0: input channels permuted)
    (no bias in OpenSTL)              → cells.N.conv_x.bias = 0
    cell_list.N.conv_h.0.weight       → cells.N.conv_h.weight
    conv_last.weight                  → readout.weight          (output channels permuted)
    cell_list.N.conv_o.0.weight       → dropped: OpenSTL's forward never uses it
    cell_list.N.conv_last.weight      → dropped: OpenSTL's forward never uses it

OpenSTL's ConvLSTM cell adds no forget-gate bias in its forward (the ``_forget_bias`` attribute is
never read) and its convolutions have no bias, so stzoo's ``conv_x`` bias is set to zero. OpenSTL's
patch reshape (``reshape_patch``) orders the patch channels as ``(i·p + j)·C + c``, stzoo's
``PixelUnshuffle`` as ``c·p² + i·p + j``; the first cell's input channels and the readout's output
channels are permuted so the converted model computes exactly the same function.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

from torch import Tensor

from stzoo.convert.openstl.core import (
    OpenSTLMethod,
    _count,
    _indices,
    _need,
    _patch_permutation,
    _Resolver,
    check_recurrent_variant,
    gate_hidden,
    odd_square_kernel,
    patch_spec,
    register_openstl,
    resolve_patch_and_channels,
    uniform_hidden,
)


def _resolve_convlstm(state: Mapping[str, Tensor], r: _Resolver) -> tuple[dict[str, Any], dict[str, Any], str]:
    what = "OpenSTL's ConvLSTM model (ConvLSTM_Model)"
    first = _need(state, "cell_list.0.conv_x.0.weight", what)
    _need(state, "conv_last.weight", what)
    check_recurrent_variant(
        state, r, label="ConvLSTM", names=("convlstm",), arch="convlstm", ln_pattern=r"^cell_list\.\d+\.conv_[xho]\.1\."
    )
    n_layers = _count(_indices(state, r"^cell_list\.(\d+)\."), "the cells cell_list.N")
    hidden = gate_hidden(state, n_layers, "cell_list.{n}.conv_x.0.weight", 4, what)
    cfg: dict[str, Any] = {
        "num_layers": r.inferred("num_layers", n_layers),
        "num_hidden": uniform_hidden(hidden, r, "ConvLSTM"),
        "filter_size": r.inferred("filter_size", odd_square_kernel(first, "cell_list.0.conv_x.0.weight")),
    }
    # patch_size and channels: only their product p²·C is in the weights.
    p, c = resolve_patch_and_channels(r, int(first.shape[1]), "ConvLSTM", config_file="configs/mmnist/ConvLSTM.py")
    return cfg, patch_spec(r, cfg, p, c), "ConvLSTM_Model (layer_norm=0)"


def _convlstm_pairs(
    model_keys: list[str], cfg: dict[str, Any]
) -> tuple[dict[str, tuple[str | None, Callable[[Tensor], Tensor] | None]], dict[str, tuple[int, ...]]]:
    """stzoo key → (OpenSTL key or None for a zero bias, transform); and the known-unused OpenSTL keys."""
    perm = _patch_permutation(cfg["channels"], cfg["patch_size"])
    pairs: dict[str, tuple[str | None, Callable[[Tensor], Tensor] | None]] = {}
    for key in model_keys:
        m = re.match(r"^cells\.(\d+)\.(conv_x|conv_h)\.(weight|bias)$", key)
        if m and m.group(3) == "bias":
            pairs[key] = (None, None)  # OpenSTL's convs have no bias (and no forget bias in forward)
        elif m:
            n, conv = m.group(1), m.group(2)
            first_input = conv == "conv_x" and n == "0"
            pairs[key] = (f"cell_list.{n}.{conv}.0.weight", (lambda w: w[:, perm]) if first_input else None)
        elif key == "readout.weight":
            pairs[key] = ("conv_last.weight", lambda w: w[perm])
        else:
            raise AssertionError(f"no OpenSTL name for stzoo key {key}")  # stzoo's ConvLSTM changed
    h, k = cfg["num_hidden"], cfg["filter_size"]
    unused: dict[str, tuple[int, ...]] = {}
    for n in range(cfg["num_layers"]):
        unused[f"cell_list.{n}.conv_o.0.weight"] = (h, 2 * h, k, k)
        unused[f"cell_list.{n}.conv_last.weight"] = (h, 2 * h, 1, 1)
    return pairs, unused


register_openstl(
    OpenSTLMethod(
        arch="convlstm",
        names=("convlstm",),
        label="ConvLSTM",
        config_keys=frozenset({"num_hidden", "num_layers", "filter_size", "stride", "patch_size", "layer_norm"}),
        resolve=_resolve_convlstm,
        pairs=_convlstm_pairs,
        card_notes=(
            "the first cell's input channels and the readout's output channels were permuted from "
            "OpenSTL's patch order ((i·p + j)·C + c) to stzoo's (c·p² + i·p + j); the `conv_x` biases are "
            "zero (OpenSTL's cell has none)",
        ),
    )
)
