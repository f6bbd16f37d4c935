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

This module also holds the pieces the other PredRNN-family importers share (:func:`resolve_patch_and_channels`,
:func:`check_recurrent_variant`, :func:`uniform_hidden`).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any, Callable

from torch import Tensor

import stzoo.models.predrnnpp  # noqa: F401  (registers the "predrnnpp" architecture)
from stzoo.convert.openstl import (_DEFAULT_NOTE, _DEFAULTS, OpenSTLMethod, _count, _indices, _need,
                                   _patch_permutation, _Resolver, register_openstl)
from stzoo.errors import ConfigError, InputError

__all__ = ["resolve_patch_and_channels", "check_recurrent_variant", "uniform_hidden", "PREDRNNPP"]

_RECURRENT_KEYS = frozenset({"num_hidden", "num_layers", "filter_size", "stride", "patch_size", "layer_norm"})


def check_recurrent_variant(state: Mapping[str, Tensor], r: _Resolver, *, label: str, names: tuple[str, ...],
                            arch: str, ln_pattern: str) -> None:
    """Refuse what stzoo cannot convert exactly: another method named by the config, OpenSTL's
    ``layer_norm=1`` variant (its LayerNorms over channels × height × width of every gate), stride ≠ 1."""
    method = r.lookup("method")
    if method is not None and method[0] not in names:
        raise ConfigError(f"the {method[1]} says method={method[0]!r}, but --arch {arch} converts OpenSTL's {label} "
                          f"(method {' or '.join(repr(n) for n in names)})")
    ln_keys = sorted(k for k in state if re.match(ln_pattern, k))
    ln = r.lookup("layer_norm")
    if ln_keys or (ln is not None and ln[0]):
        why = f"it has LayerNorm tensors such as {ln_keys[:2]}" if ln_keys else f"the {ln[1]} says layer_norm=1"
        raise InputError(f"this is OpenSTL's {label} with layer_norm=1 ({why}). Its LayerNorms normalise each gate "
                         "pre-activation over channels × height × width at the training resolution; stzoo's "
                         f"{label} has no such layers, so this variant cannot be converted exactly. Only "
                         "layer_norm=0 checkpoints (OpenSTL's default configs) are supported.")
    stride = r.lookup("stride")
    if stride is not None and stride[0] != 1:
        raise ConfigError(f"the {stride[1]} says stride={stride[0]}; stzoo's {label} (like OpenSTL's configs) uses "
                          "stride 1 only")


def uniform_hidden(hidden: list[int], r: _Resolver, label: str) -> int:
    """The one hidden size of every layer (stzoo has one ``num_hidden``), checked against the config."""
    given = r.lookup("num_hidden")
    if given is not None and given[0] not in (hidden, hidden[:1] if len(set(hidden)) == 1 else None):
        raise ConfigError(f"the {given[1]} says num_hidden={given[0]}, but the checkpoint's layers have {hidden}")
    if len(set(hidden)) != 1:
        raise ConfigError(f"the layers have different hidden sizes {hidden}; stzoo's {label} uses one num_hidden "
                          "for every layer, so this checkpoint cannot be converted")
    r.sources["num_hidden"] = "weights"
    return hidden[0]


def resolve_patch_and_channels(r: _Resolver, patch_ch: int, label: str, grid: tuple[int, int] | None = None,
                               config_file: str = "configs/mmnist/<Method>.py") -> tuple[int, int]:
    """``(patch_size, channels)`` from the first cell's ``patch_ch = patch_size² · channels`` input channels.

    The weights hold only the product; the config's ``patch_size``, ``channels`` and (with ``grid``, the
    patch grid a model with per-position weights was built for) ``height`` / ``width`` pick the
    factorisation. One left: used; none: the config contradicts the weights; several: the config must say."""
    found = {k: r.lookup(k) for k in ("patch_size", "channels", "height", "width")}
    candidates = [(p, patch_ch // (p * p)) for p in range(1, math.isqrt(patch_ch) + 1) if patch_ch % (p * p) == 0]

    def fits(p: int, c: int) -> bool:
        if found["patch_size"] is not None and found["patch_size"][0] != p:
            return False
        if found["channels"] is not None and found["channels"][0] != c:
            return False
        if grid is not None:
            for key, cells in (("height", grid[0]), ("width", grid[1])):
                if found[key] is not None and found[key][0] != cells * p:
                    return False
        return True

    left = [pc for pc in candidates if fits(*pc)]
    given = {k: v for k, v in found.items() if v is not None and (k in ("patch_size", "channels") or grid is not None)}
    said = ", ".join(f"{k}={v[0]} ({v[1]})" for k, v in given.items())
    if not left:
        grid_note = f" and a {grid[0]}×{grid[1]} patch grid" if grid is not None else ""
        raise ConfigError(f"{said} do not fit the weights: the first {label} cell reads {patch_ch} = "
                          f"patch_size² × channels values per position{grid_note}, so "
                          + "; ".join(f"patch_size={p} would mean {c} channel(s)"
                                      + (f" and {grid[0] * p}×{grid[1] * p} frames" if grid is not None else "")
                                      for p, c in candidates))
    if len(left) > 1:
        options = ", ".join(f"patch_size={p} with {c} channel(s)" for p, c in left)
        raise ConfigError(f"the first {label} cell reads {patch_ch} = patch_size² × channels values per position, "
                          f"which could be {options}. Say which: pass config {{\"patch_size\": N}} (OpenSTL's Moving "
                          f"MNIST configs use patch_size 4 with 1 channel), e.g. --config '{{\"patch_size\": 4}}' or "
                          f"--config {config_file}")
    p, c = left[0]
    how = "the only factorisation" + (" that fits the config" if given else "")
    r.sources["patch_size"] = found["patch_size"][1] if found["patch_size"] is not None else f"weights ({how})"
    r.sources["channels"] = found["channels"][1] if found["channels"] is not None else f"weights ({how})"
    return p, c


def _resolve(state: Mapping[str, Tensor], r: _Resolver) -> tuple[dict[str, Any], dict[str, Any], str]:
    what = "OpenSTL's PredRNN++ model (PredRNNpp_Model)"
    first = _need(state, "cell_list.0.conv_x.0.weight", what)
    _need(state, "conv_last.weight", what)
    if "cell_list.0.conv_c2m.0.weight" not in state or "gradient_highway.z_concat.0.weight" not in state:
        kind = "PredRNN's ST-LSTM cells" if "cell_list.0.conv_m.0.weight" in state else "other cells"
        raise InputError(f"this does not look like OpenSTL's PredRNN++: it has {kind} without a Causal LSTM's "
                         "'cell_list.0.conv_c2m.0.weight' or the gradient highway "
                         "'gradient_highway.z_concat.0.weight'. Check --arch.")
    check_recurrent_variant(state, r, label="PredRNN++", names=("predrnnpp", "predrnn++"), arch="predrnnpp",
                            ln_pattern=r"^(cell_list\.\d+\.conv_[a-z0-9]+|gradient_highway\.[xz]_concat)\.1\.")
    n_layers = _count(_indices(state, r"^cell_list\.(\d+)\."), "the cells cell_list.N")
    if n_layers < 2:
        raise InputError(f"the checkpoint has {n_layers} Causal LSTM cell(s); PredRNN++ has at least 2 (the gradient "
                         "highway sits between the first two)")
    hidden = []
    for n in range(n_layers):
        w = _need(state, f"cell_list.{n}.conv_h.0.weight", what)
        if w.dim() != 4 or w.shape[0] != 4 * w.shape[1]:
            raise InputError(f"cell_list.{n}.conv_h.0.weight has shape {tuple(w.shape)}; "
                             "expected 4·hidden × hidden × k × k")
        hidden.append(int(w.shape[1]))
    if first.dim() != 4 or first.shape[-1] != first.shape[-2] or first.shape[-1] % 2 == 0:
        raise InputError(f"cell_list.0.conv_x.0.weight has shape {tuple(first.shape)}; expected 7·hidden × in × k × k "
                         "with a square, odd kernel")
    cfg: dict[str, Any] = {"num_layers": r.inferred("num_layers", n_layers),
                           "num_hidden": uniform_hidden(hidden, r, "PredRNN++"),
                           "filter_size": r.inferred("filter_size", int(first.shape[-1]))}
    p, c = resolve_patch_and_channels(r, int(first.shape[1]), "PredRNN++", config_file="configs/mmnist/PredRNNpp.py")
    cfg["patch_size"], cfg["channels"] = p, c
    for key in ("frames_in", "frames_out", "height", "width"):
        cfg[key] = r.chosen(key, _DEFAULTS[key], note=_DEFAULT_NOTE)
    for key in ("height", "width"):
        if cfg[key] % p:
            raise ConfigError(f"{key}={cfg[key]} is not divisible by patch_size={p}")
    spec = {"frames_in": cfg["frames_in"], "frames_out": cfg["frames_out"], "channels": c,
            "height": cfg["height"], "width": cfg["width"], "value_range": [0.0, 1.0]}
    return cfg, spec, "PredRNNpp_Model (layer_norm=0)"


_CELL = re.compile(r"^cells\.(\d+)\.(conv_x|conv_h|conv_c|conv_m|conv_c2m|conv_om|conv_last)\.weight$")
_GHU = {"ghu.conv_z.weight": "gradient_highway.z_concat.0.weight",
        "ghu.conv_x.weight": "gradient_highway.x_concat.0.weight"}


def _pairs(model_keys: list[str], cfg: dict[str, Any]
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


PREDRNNPP = register_openstl(OpenSTLMethod(
    arch="predrnnpp", names=("predrnnpp", "predrnn++"), label="PredRNN++",
    config_keys=_RECURRENT_KEYS, resolve=_resolve, pairs=_pairs,
    card_notes=("the first cell's input channels and the readout's output channels were permuted from OpenSTL's "
                "patch order ((i·p + j)·C + c) to stzoo's (c·p² + i·p + j)",),
))
