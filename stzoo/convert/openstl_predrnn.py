"""Import OpenSTL PredRNN and PredRNN-V2 checkpoints (``PredRNN_Model``, ``PredRNNv2_Model``).

Importing this module registers both with :func:`stzoo.convert.openstl.register_openstl`, so
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
from collections.abc import Mapping
from typing import Any, Callable

from torch import Tensor

import stzoo.models.predrnn  # noqa: F401  (registers the architectures)
from stzoo.convert.openstl import (_DEFAULTS, OpenSTLMethod, _count, _indices, _need, _patch_permutation,
                                   _Resolver, register_openstl)
from stzoo.errors import ConfigError, InputError

__all__ = ["PREDRNN", "PREDRNN_V2"]

_CONVS = ("conv_x", "conv_h", "conv_m", "conv_o")
_GATES = {"conv_x": 7, "conv_h": 4, "conv_m": 3, "conv_o": 1}  # output channels per hidden channel


def _patch_and_channels(r: _Resolver, patch_ch: int, first: str) -> tuple[int, int]:
    """patch_size and channels from the first cell's ``patch_ch`` = patch_size² · channels input
    channels and whatever the config says (one of them is needed unless the product factors one way)."""
    p_found, c_found = r.lookup("patch_size"), r.lookup("channels")
    if p_found is not None:
        p = p_found[0]
        if p < 1 or patch_ch % (p * p):
            raise ConfigError(f"the {p_found[1]} says patch_size={p}, but the first cell reads {patch_ch} channels, "
                              f"which is not channels × {p}²")
        c = patch_ch // (p * p)
        if c_found is not None and c_found[0] != c:
            raise ConfigError(f"patch_size={p} and channels={c_found[0]} give {p * p * c_found[0]} patch channels, "
                              f"but the first cell reads {patch_ch}")
        r.sources["patch_size"] = p_found[1]
        r.sources["channels"] = "weights (÷ patch_size²)" if c_found is None else c_found[1]
        return p, c
    if c_found is not None:
        c = c_found[0]
        p = round((patch_ch / c) ** 0.5) if c > 0 and patch_ch % c == 0 else 0
        if p < 1 or p * p * c != patch_ch:
            raise ConfigError(f"channels={c} does not divide the first cell's {patch_ch} input channels into "
                              "channels × patch_size²")
        r.sources["channels"] = c_found[1]
        r.sources["patch_size"] = "weights (√(channels in / channels))"
        return p, c
    options = [(p, patch_ch // (p * p)) for p in range(1, int(patch_ch ** 0.5) + 1) if patch_ch % (p * p) == 0]
    if len(options) == 1:
        r.sources["patch_size"] = r.sources["channels"] = "weights (the only factorisation)"
        return options[0]
    listed = ", ".join(f"patch_size={p} with {c} channel(s)" for p, c in options)
    raise ConfigError(f"the first ST-LSTM cell ({first}) reads {patch_ch} = patch_size² × channels values per "
                      f"position, which could be {listed}. Say which: pass config {{\"patch_size\": N}} (OpenSTL's "
                      "Moving MNIST configs use patch_size 4 with 1 channel), e.g. --config '{\"patch_size\": 4}' "
                      "or --config configs/mmnist/PredRNN.py")


def _resolver(v2: bool) -> Callable[[Mapping[str, Tensor], _Resolver], tuple[dict[str, Any], dict[str, Any], str]]:
    label, cls = ("PredRNN-V2", "PredRNNv2_Model") if v2 else ("PredRNN", "PredRNN_Model")
    methods = ("predrnnv2", "predrnn_v2") if v2 else ("predrnn",)

    def resolve(state: Mapping[str, Tensor], r: _Resolver) -> tuple[dict[str, Any], dict[str, Any], str]:
        what = f"OpenSTL's {label} model ({cls})"
        first = _need(state, "cell_list.0.conv_x.0.weight", what)
        _need(state, "conv_last.weight", what)
        method = r.lookup("method")
        if method is not None and method[0] not in methods:
            raise ConfigError(f"the {method[1]} says method={method[0]!r}, but this converts OpenSTL's {label} "
                              f"(method {methods[0]!r})")
        if "cell_list.0.conv_m.0.weight" not in state:
            raise InputError(f"this does not look like {what}: its cells have no conv_m (the spatiotemporal "
                             "memory's convolution). Check --arch.")
        if v2 and "adapter.weight" not in state:
            raise InputError("this checkpoint has no 'adapter.weight': it is OpenSTL's PredRNN (PredRNN_Model), "
                             "not PredRNN-V2; convert it with arch='predrnn'")
        if not v2 and "adapter.weight" in state:
            raise InputError("this checkpoint has an 'adapter.weight': it is OpenSTL's PredRNN-V2 "
                             "(PredRNNv2_Model); convert it with arch='predrnnv2'")
        ln_keys = sorted(k for k in state if re.match(r"^cell_list\.\d+\.conv_[xhmo]\.1\.", k))
        ln = r.lookup("layer_norm")
        if ln_keys or (ln is not None and ln[0]):
            why = f"it has LayerNorm tensors such as {ln_keys[:2]}" if ln_keys else f"the {ln[1]} says layer_norm=1"
            raise InputError(f"this is OpenSTL's {label} with layer_norm=1 ({why}). Its LayerNorms normalise each "
                             "gate pre-activation over channels × height × width at the training resolution; "
                             f"stzoo's {label} has no such layer, so this variant cannot be converted exactly. Only "
                             "layer_norm=0 checkpoints are supported.")
        stride = r.lookup("stride")
        if stride is not None and stride[0] != 1:
            raise ConfigError(f"the {stride[1]} says stride={stride[0]}; stzoo's {label} (like OpenSTL's Moving "
                              "MNIST configs) uses stride 1 only")
        n_layers = _count(_indices(state, r"^cell_list\.(\d+)\."), "the cells cell_list.N")
        hidden = []
        for n in range(n_layers):
            w = _need(state, f"cell_list.{n}.conv_x.0.weight", what)
            if w.dim() != 4 or w.shape[0] % 7:
                raise InputError(f"cell_list.{n}.conv_x.0.weight has shape {tuple(w.shape)}; "
                                 "expected 7·hidden × in × k × k")
            hidden.append(int(w.shape[0]) // 7)
        given = r.lookup("num_hidden")
        if given is not None and given[0] not in (hidden, hidden[:1] if len(set(hidden)) == 1 else None):
            raise ConfigError(f"the {given[1]} says num_hidden={given[0]}, but the checkpoint's cells have {hidden}")
        if len(set(hidden)) != 1:
            raise ConfigError(f"the cells have different hidden sizes {hidden}; the zigzag memory passes between "
                              "all layers, so stzoo's (and OpenSTL's) ST-LSTM stack needs one num_hidden")
        r.sources["num_hidden"] = "weights"
        k = int(first.shape[-1])
        if k % 2 == 0 or first.shape[-2] != k:
            raise InputError(f"cell_list.0.conv_x.0.weight has a {tuple(first.shape[-2:])} kernel; "
                             "expected a square, odd one")
        cfg: dict[str, Any] = {"num_layers": r.inferred("num_layers", n_layers), "num_hidden": hidden[0],
                               "filter_size": r.inferred("filter_size", k)}
        p, c = _patch_and_channels(r, int(first.shape[1]), "cell_list.0.conv_x.0.weight")
        cfg["patch_size"], cfg["channels"] = p, c
        for key in ("frames_in", "frames_out", "height", "width"):
            cfg[key] = r.chosen(key, _DEFAULTS[key])
        for key in ("height", "width"):
            if cfg[key] % p:
                raise ConfigError(f"{key}={cfg[key]} is not divisible by patch_size={p}")
        spec = {"frames_in": cfg["frames_in"], "frames_out": cfg["frames_out"], "channels": c,
                "height": cfg["height"], "width": cfg["width"], "value_range": [0.0, 1.0]}
        return cfg, spec, f"{cls} (layer_norm=0)"

    return resolve


def _pairs(model_keys: list[str], cfg: dict[str, Any]
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


_KEYS = frozenset({"num_hidden", "num_layers", "filter_size", "stride", "patch_size", "layer_norm"})
_NOTE = ("the first cell's input channels and the readout's output channels were permuted from OpenSTL's patch "
         "order ((i·p + j)·C + c) to stzoo's (c·p² + i·p + j); OpenSTL's convolutions have no bias and neither do "
         "stzoo's; both add the constant forget-gate bias 1 in the forward")

PREDRNN = register_openstl(OpenSTLMethod(
    arch="predrnn", names=("predrnn",), label="PredRNN", config_keys=_KEYS, resolve=_resolver(False),
    pairs=_pairs, card_notes=(_NOTE,),
))

PREDRNN_V2 = register_openstl(OpenSTLMethod(
    arch="predrnn_v2", names=("predrnnv2", "predrnn_v2"), label="PredRNN-V2", config_keys=_KEYS,
    resolve=_resolver(True), pairs=_pairs, card_notes=(_NOTE,),
))
