"""Import OpenSTL MAU checkpoints (``MAU_Model``) into stzoo's ``mau``.

What is mapped (OpenSTL name → stzoo name; N a layer, i a down/upsampling stage)::

    encoders.0.encoder_t_conv-1.{weight,bias}         → encoder.0.{weight,bias}       (the 1×1 input conv)
    encoders.(i+1).encoder_t{i}.{weight,bias}         → encoder.(i+1).{weight,bias}   (stride-2 3×3 convs)
    cell_list.N.conv_t.0 / conv_t.1                   → cells.N.conv_t / cells.N.norm_t
    cell_list.N.conv_t_next.0 / conv_t_next.1         → cells.N.conv_t_next / cells.N.norm_t_next
    cell_list.N.conv_s.0 / conv_s.1                   → cells.N.conv_s / cells.N.norm_s
    cell_list.N.conv_s_next.0 / conv_s_next.1         → cells.N.conv_s_next / cells.N.norm_s_next
    decoders.i.c_decoder{i}.{weight,bias}             → decoder.i.{weight,bias}       (transposed convs)
    srcnn.0.{weight,bias}                             → readout.{weight,bias}
    merge.{weight,bias}, conv_last_sr.{weight,bias}   → dropped: MAU_Model.forward never uses them

Every value is copied unchanged (MAU has no patch reshape to permute). The LayerNorms' per-position
weights fix the state grid, so the frame size is read from the weights (grid × sr_size) and the
converted model runs at that size only; ``sr_size`` is read from the number of stride-2 encoder convs.
The weights cannot tell ``tau`` (τ), ``cell_mode`` or ``model_mode``: they come from the config, else
OpenSTL's Moving MNIST values (5, 'normal', 'normal').
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

from torch import Tensor

import stzoo.models.mau  # noqa: F401  (registers the "mau" architecture)
from stzoo.convert.openstl import core as _openstl
from stzoo.convert.openstl.core import (
    _DEFAULT_NOTE,
    _DEFAULTS,
    OpenSTLMethod,
    _count,
    _indices,
    _need,
    _Resolver,
    register_openstl,
)
from stzoo.errors import ConfigError, InputError

__all__ = ["MAU"]

_WHAT = "OpenSTL's MAU model (MAU_Model)"
_NEXT = {"conv_t": 3, "conv_t_next": 1, "conv_s": 3, "conv_s_next": 1}  # output channels per hidden channel
_MODES = {"cell_mode": ("normal", "residual"), "model_mode": ("normal", "recall")}


def _reads_string_settings() -> bool:
    """Whether :func:`stzoo.convert.openstl.core._normalise` keeps ``cell_mode`` / ``model_mode`` as strings.

    It reads every model setting it does not know as an integer, so until it treats these two as text,
    they stay out of :data:`MAU`'s ``config_keys`` (ignored in OpenSTL ``.py`` files, as training settings
    are) and the converted model gets OpenSTL's value in every published MAU config, 'normal'."""
    probe = OpenSTLMethod(
        arch="_probe",
        names=(),
        label="probe",
        config_keys=frozenset(_MODES),
        resolve=lambda state, r: ({}, {}, ""),
        pairs=lambda keys, cfg: ({}, {}),
    )
    try:
        out, _ = _openstl._normalise({k: v[0] for k, v in _MODES.items()}, probe, False, "probe")
    except ConfigError:
        return False
    return all(out.get(k) == v[0] for k, v in _MODES.items())


_STRING_SETTINGS = _reads_string_settings()
_CONFIG_KEYS = frozenset(
    {"num_hidden", "num_layers", "filter_size", "stride", "patch_size", "layer_norm", "sr_size", "tau"}
    | (set(_MODES) if _STRING_SETTINGS else set())
)


def _mode(r: _Resolver, key: str) -> str:
    if not _STRING_SETTINGS:
        r.sources[key] = "OpenSTL's value in every published MAU config (this stzoo reads no text settings)"
        return "normal"
    value = r.chosen(key, "normal")
    if str(value).lower() not in _MODES[key]:
        raise ConfigError(f"config {key}={value!r}: OpenSTL's MAU takes {' or '.join(map(repr, _MODES[key]))}")
    return str(value).lower()


def _resolve(state: Mapping[str, Tensor], r: _Resolver) -> tuple[dict[str, Any], dict[str, Any], str]:
    first = _need(state, "encoders.0.encoder_t_conv-1.weight", _WHAT)
    _need(state, "srcnn.0.weight", _WHAT)
    method = r.lookup("method")
    if method is not None and method[0] != "mau":
        raise ConfigError(
            f"the {method[1]} says method={method[0]!r}, but --arch mau converts OpenSTL's MAU (method 'MAU')"
        )
    for key in ("stride", "patch_size"):
        found = r.lookup(key)
        if found is not None and found[0] != 1:
            raise ConfigError(
                f"the {found[1]} says {key}={found[0]}; OpenSTL's MAU runs with {key} 1 only (every "
                "published MAU config), and so does stzoo's"
            )
    if first.dim() != 4 or tuple(first.shape[-2:]) != (1, 1):
        raise InputError(
            f"encoders.0.encoder_t_conv-1.weight has shape {tuple(first.shape)}; expected hidden × channels × 1 × 1"
        )
    hidden0, channels = int(first.shape[0]), int(first.shape[1])
    n_layers = _count(_indices(state, r"^cell_list\.(\d+)\."), "the MAU cells cell_list.N")
    if n_layers < 1:
        raise InputError(f"this does not look like {_WHAT}: it has no MAU cells (cell_list.N)")
    n_down = _count(_indices(state, r"^encoders\.(\d+)\."), "the encoders encoders.N") - 1
    n_up = len(_indices(state, r"^decoders\.(\d+)\.")) and _count(
        _indices(state, r"^decoders\.(\d+)\."), "the decoders decoders.N"
    )
    if n_up != n_down:
        raise InputError(
            f"the checkpoint has {n_down} stride-2 encoder conv(s) but {n_up} decoder(s); OpenSTL's "
            "MAU has as many of each (log2(sr_size))"
        )
    hidden, kernels = [], set()
    for n in range(n_layers):
        w = _need(state, f"cell_list.{n}.conv_s_next.0.weight", _WHAT)
        if w.dim() != 4 or w.shape[-1] != w.shape[-2] or w.shape[-1] % 2 == 0:
            raise InputError(
                f"cell_list.{n}.conv_s_next.0.weight has shape {tuple(w.shape)}; expected hidden × "
                "hidden × k × k with a square, odd kernel"
            )
        hidden.append(int(w.shape[0]))
        kernels.add(int(w.shape[-1]))
    given = r.lookup("num_hidden")
    if given is not None and given[0] not in (hidden, hidden[:1] if len(set(hidden)) == 1 else None):
        raise ConfigError(f"the {given[1]} says num_hidden={given[0]}, but the checkpoint's cells have {hidden}")
    if len(set(hidden + [hidden0])) != 1:
        raise ConfigError(
            f"the cells have hidden sizes {hidden} and the encoder {hidden0}; stzoo's MAU uses one "
            "num_hidden everywhere (as OpenSTL's MAU needs to run), so this checkpoint cannot be "
            "converted"
        )
    r.sources["num_hidden"] = "weights"
    ln = _need(state, "cell_list.0.conv_t.1.weight", _WHAT)
    if ln.dim() != 3:
        raise InputError(
            f"cell_list.0.conv_t.1.weight has shape {tuple(ln.shape)}; expected 3·hidden × grid "
            "height × grid width (a LayerNorm over the whole state map)"
        )
    grid = (int(ln.shape[1]), int(ln.shape[2]))
    sr = 2**n_down
    cfg: dict[str, Any] = {
        "num_layers": r.inferred("num_layers", n_layers),
        "num_hidden": hidden0,
        "filter_size": r.inferred("filter_size", min(kernels)),
        "sr_size": r.inferred("sr_size", sr, label="sr_size (2 ** stride-2 encoder convs)"),
    }
    cfg["channels"] = r.inferred("channels", channels)
    for key, cells in (("height", grid[0]), ("width", grid[1])):
        cfg[key] = r.inferred(key, cells * sr, label=f"{key} (LayerNorm grid {grid[0]}×{grid[1]} × sr_size {sr})")
        r.sources[key] = "weights (LayerNorm grid × sr_size)"
    cfg["tau"] = r.chosen("tau", 5)
    cfg["cell_mode"] = _mode(r, "cell_mode")
    cfg["model_mode"] = _mode(r, "model_mode")
    cfg["frames_in"] = r.chosen("frames_in", _DEFAULTS["frames_in"], note=_DEFAULT_NOTE)
    cfg["frames_out"] = r.chosen("frames_out", _DEFAULTS["frames_out"], note=_DEFAULT_NOTE)
    spec = {
        "frames_in": cfg["frames_in"],
        "frames_out": cfg["frames_out"],
        "channels": channels,
        "height": cfg["height"],
        "width": cfg["width"],
        "value_range": [0.0, 1.0],
    }
    return cfg, spec, "MAU_Model"


_CELL = re.compile(r"^cells\.(\d+)\.(conv|norm)_(t|t_next|s|s_next)\.(weight|bias)$")
_ENC = re.compile(r"^encoder\.(\d+)\.(weight|bias)$")
_DEC = re.compile(r"^decoder\.(\d+)\.(weight|bias)$")


def _pairs(
    model_keys: list[str], cfg: dict[str, Any]
) -> tuple[dict[str, tuple[str | None, Callable[[Tensor], Tensor] | None]], dict[str, tuple[int, ...]]]:
    pairs: dict[str, tuple[str | None, Callable[[Tensor], Tensor] | None]] = {}
    for key in model_keys:
        if m := _CELL.match(key):
            n, kind, which, what = m.groups()
            pairs[key] = (f"cell_list.{n}.conv_{which}.{0 if kind == 'conv' else 1}.{what}", None)
        elif m := _ENC.match(key):
            i, what = int(m.group(1)), m.group(2)
            pairs[key] = (
                f"encoders.0.encoder_t_conv-1.{what}" if i == 0 else f"encoders.{i}.encoder_t{i - 1}.{what}",
                None,
            )
        elif m := _DEC.match(key):
            pairs[key] = (f"decoders.{m.group(1)}.c_decoder{m.group(1)}.{m.group(2)}", None)
        elif key in ("readout.weight", "readout.bias"):
            pairs[key] = ("srcnn.0." + key.split(".")[1], None)
        else:
            raise AssertionError(f"no OpenSTL name for stzoo key {key}")  # stzoo's MAU changed
    h, c = cfg["num_hidden"], cfg["channels"]
    unused = {
        "merge.weight": (h, 2 * h, 1, 1),
        "merge.bias": (h,),
        "conv_last_sr.weight": (c, 2 * c, 1, 1),
        "conv_last_sr.bias": (c,),
    }
    return pairs, unused


MAU = register_openstl(
    OpenSTLMethod(
        arch="mau",
        names=("mau",),
        label="MAU",
        config_keys=_CONFIG_KEYS,
        resolve=_resolve,
        pairs=_pairs,
        card_notes=(
            "OpenSTL's `merge` and `conv_last_sr` convolutions, which its MAU forward never reads, were dropped",
        ),
    )
)
