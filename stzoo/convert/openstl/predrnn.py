"""Import OpenSTL PredRNN and PredRNN-V2 checkpoints (``PredRNN_Model``, ``PredRNNv2_Model``).

Importing this module registers both with :func:`stzoo.convert.openstl.core.register_openstl`, so
``from_openstl(path, arch="PredRNN")`` / ``arch="PredRNNv2"`` (any case; ``predrnn_v2`` too) and
``map_openstl_state_dict`` work for them, with the same strict checks as TAU and ConvLSTM.

What is mapped (OpenSTL name → stzoo name), N = layer::

    cell_list.N.conv_x.0.weight   → cells.N.conv_x.weight   (layer 0: input channels permuted)
    cell_list.N.conv_h.0.weight   → cells.N.conv_h.weight
    cell_list.N.conv_m.0.weight   → cells.N.conv_m.weight
    cell_list.N.conv_o.0.weight   → cells.N.conv_o.weight
    cell_list.N.conv_last.weight  → cells.N.conv_last.weight
    conv_last.weight              → readout.weight          (output channels permuted)
    adapter.weight                → adapter.weight          (PredRNN-V2 only)

Every OpenSTL tensor is used (unlike ConvLSTM's, PredRNN's ``conv_o`` and cell ``conv_last`` are part
of its forward). The convolutions have no bias in OpenSTL nor in stzoo; the constant forget-gate bias
(+1) that OpenSTL's forward adds is the same constant in stzoo's cell. The patch channels are permuted
from OpenSTL's ``reshape_patch`` order ``(i·p + j)·C + c`` to stzoo's ``c·p² + i·p + j``, as for ConvLSTM.
Only ``layer_norm=0`` checkpoints (all of OpenSTL's Moving MNIST configs) convert: with
``layer_norm=1`` every gate pre-activation goes through a LayerNorm over channels × height × width at
the training resolution, which stzoo's cell does not have.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

from torch import Tensor

import stzoo.models.predrnn  # noqa: F401  (registers the architectures)
from stzoo.convert.openstl.core import (
    RECURRENT_KEYS,
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
from stzoo.errors import InputError

__all__ = ["PREDRNN", "PREDRNN_V2"]


def _resolver(v2: bool) -> Callable[[Mapping[str, Tensor], _Resolver], tuple[dict[str, Any], dict[str, Any], str]]:
    label, cls = ("PredRNN-V2", "PredRNNv2_Model") if v2 else ("PredRNN", "PredRNN_Model")
    methods = ("predrnnv2", "predrnn_v2") if v2 else ("predrnn",)

    def resolve(state: Mapping[str, Tensor], r: _Resolver) -> tuple[dict[str, Any], dict[str, Any], str]:
        what = f"OpenSTL's {label} model ({cls})"
        first = _need(state, "cell_list.0.conv_x.0.weight", what)
        _need(state, "conv_last.weight", what)
        if "cell_list.0.conv_m.0.weight" not in state:
            raise InputError(
                f"this does not look like {what}: its cells have no conv_m (the spatiotemporal "
                "memory's convolution). Check --arch."
            )
        if v2 and "adapter.weight" not in state:
            raise InputError(
                "this checkpoint has no 'adapter.weight': it is OpenSTL's PredRNN (PredRNN_Model), "
                "not PredRNN-V2; convert it with arch='predrnn'"
            )
        if not v2 and "adapter.weight" in state:
            raise InputError(
                "this checkpoint has an 'adapter.weight': it is OpenSTL's PredRNN-V2 "
                "(PredRNNv2_Model); convert it with arch='predrnnv2'"
            )
        check_recurrent_variant(
            state, r, label=label, names=methods, arch=methods[-1], ln_pattern=r"^cell_list\.\d+\.conv_[xhmo]\.1\."
        )
        n_layers = _count(_indices(state, r"^cell_list\.(\d+)\."), "the cells cell_list.N")
        hidden = gate_hidden(state, n_layers, "cell_list.{n}.conv_x.0.weight", 7, what)
        # one num_hidden: the zigzag memory passes between all layers
        cfg: dict[str, Any] = {
            "num_layers": r.inferred("num_layers", n_layers),
            "num_hidden": uniform_hidden(hidden, r, label),
            "filter_size": r.inferred("filter_size", odd_square_kernel(first, "cell_list.0.conv_x.0.weight")),
        }
        p, c = resolve_patch_and_channels(
            r, int(first.shape[1]), label, config_file=f"configs/mmnist/{'PredRNNv2' if v2 else 'PredRNN'}.py"
        )
        spec = patch_spec(r, cfg, p, c)
        return cfg, spec, f"{cls} (layer_norm=0)"

    return resolve


def _pairs(
    model_keys: list[str], cfg: dict[str, Any]
) -> tuple[dict[str, tuple[str | None, Callable[[Tensor], Tensor] | None]], dict[str, tuple[int, ...]]]:
    """stzoo key → (OpenSTL key, transform); no OpenSTL tensor is left unused."""
    perm = _patch_permutation(cfg["channels"], cfg["patch_size"])
    pairs: dict[str, tuple[str | None, Callable[[Tensor], Tensor] | None]] = {}
    for key in model_keys:
        m = re.match(r"^cells\.(\d+)\.(conv_x|conv_h|conv_m|conv_o|conv_last)\.weight$", key)
        if m:
            n, conv = m.group(1), m.group(2)
            src = f"cell_list.{n}.{conv}.weight" if conv == "conv_last" else f"cell_list.{n}.{conv}.0.weight"
            pairs[key] = (src, (lambda w: w[:, perm]) if (conv, n) == ("conv_x", "0") else None)
        elif key == "readout.weight":
            pairs[key] = ("conv_last.weight", lambda w: w[perm])
        elif key == "adapter.weight":
            pairs[key] = ("adapter.weight", None)
        else:
            raise AssertionError(f"no OpenSTL name for stzoo key {key}")  # stzoo's PredRNN changed: update this
    return pairs, {}


_NOTE = (
    "the first cell's input channels and the readout's output channels were permuted from OpenSTL's patch "
    "order ((i·p + j)·C + c) to stzoo's (c·p² + i·p + j); OpenSTL's convolutions have no bias and neither do "
    "stzoo's; both add the constant forget-gate bias 1 in the forward"
)

PREDRNN = register_openstl(
    OpenSTLMethod(
        arch="predrnn",
        names=("predrnn",),
        label="PredRNN",
        config_keys=RECURRENT_KEYS,
        resolve=_resolver(False),
        pairs=_pairs,
        card_notes=(_NOTE,),
    )
)

PREDRNN_V2 = register_openstl(
    OpenSTLMethod(
        arch="predrnn_v2",
        names=("predrnnv2", "predrnn_v2"),
        label="PredRNN-V2",
        config_keys=RECURRENT_KEYS,
        resolve=_resolver(True),
        pairs=_pairs,
        card_notes=(_NOTE,),
    )
)
