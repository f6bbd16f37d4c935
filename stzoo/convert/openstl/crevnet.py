"""OpenSTL's CrevNet (``CrevNet_Model``, OpenSTL v0.3.0) → stzoo's ``crevnet``.

Importing this module registers the importer with :func:`~stzoo.convert.openstl.core.register_openstl`,
so ``from_openstl(path, arch="CrevNet")`` converts it. The autoencoder's stages and blocks, its channels,
the bottleneck divisor (OpenSTL's ``mult``), the predictor's width (``rnn_size``) and depth
(``predictor_rnn_layers``) are read from the tensors; the frame size is not (``in_shape`` or ``height`` /
``width`` of the config, else 64×64). What is mapped (OpenSTL name → stzoo name, ``k`` the i-RevNet block,
``l`` the predictor layer)::

    encoder.stack.0.bottleneck_block.{0,1,3,5,7}      → autoencoder.blocks.0.{conv1,bn1,conv2,bn2,conv3}
    encoder.stack.k.bottleneck_block.{0,2,3,5,7,9}    → autoencoder.blocks.k.{bn0,conv1,bn1,conv2,bn2,conv3}
    frame_predictor.convlstm.l.{in,remember,cell}_gate   → predictor.cells.l.gates_c.{weight,bias}_{i,f,g}
    frame_predictor.convlstm.l.{in,remember,cell}_gate1  → predictor.cells.l.gates_m.{weight,bias}_{i,f,g}
    frame_predictor.convlstm.l.out_gate / w1             → predictor.cells.l.gate_o / fuse
    frame_predictor.att.l.0                              → predictor.attention.l

BatchNorm buffers (``running_mean``, ``running_var``, ``num_batches_tracked``) travel with their layers.
OpenSTL feeds the frames to its squeeze directly: stzoo's frame maps ``autoencoder.map_in`` /
``map_out`` (not in the file) are set to the identity. Every tensor of the file is used. ``n_eval`` (the
windows of one OpenSTL pass) must be ``pre_seq_length − 2 + aft_seq_length`` when given, what OpenSTL's
``CrevNet`` method runs; ``batch_size`` only fixes OpenSTL's zero states (stzoo takes any batch).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

from torch import Tensor

import stzoo.models.crevnet  # noqa: F401  (registers the "crevnet" architecture)
from stzoo.convert.openstl.core import (
    _DEFAULTS,
    OpenSTLMethod,
    _count,
    _indices,
    _need,
    _Resolver,
    register_openstl,
)
from stzoo.errors import ConfigError, InputError

__all__ = ["CREVNET"]

_WHAT = "OpenSTL's CrevNet model (CrevNet_Model)"
_FIRST = {"conv1": 0, "bn1": 1, "conv2": 3, "bn2": 5, "conv3": 7}  # the first block: no leading BN + ReLU
_OTHER = {"bn0": 0, "conv1": 2, "bn1": 3, "conv2": 5, "bn2": 7, "conv3": 9}
_GATES = {"gates_c": ("in_gate", "remember_gate", "cell_gate"), "gates_m": ("in_gate1", "remember_gate1", "cell_gate1")}


def _conv(state: Mapping[str, Tensor], k: int, index: int) -> Tensor:
    key = f"encoder.stack.{k}.bottleneck_block.{index}.weight"
    w = _need(state, key, _WHAT)
    if w.dim() != 5 or tuple(w.shape[2:]) != (3, 3, 3):
        raise InputError(f"{key} has shape {tuple(w.shape)}; OpenSTL's i-RevNet blocks use 3×3×3 convolutions")
    return w


def _resolve_crevnet(state: Mapping[str, Tensor], r: _Resolver) -> tuple[dict[str, Any], dict[str, Any], str]:
    method = r.lookup("method")
    if method is not None and method[0] != "crevnet":
        raise ConfigError(f"the {method[1]} says method={method[0]!r}, but --arch crevnet converts OpenSTL's CrevNet")
    n_blocks = _count(_indices(state, r"^encoder\.stack\.(\d+)\."), "the i-RevNet blocks encoder.stack.N")
    n_layers = _count(_indices(state, r"^frame_predictor\.convlstm\.(\d+)\."), "the predictor layers")
    if n_blocks < 1 or n_layers < 1:
        raise InputError(f"this does not look like {_WHAT}: no encoder.stack.N or frame_predictor.convlstm.N tensors")
    first = _conv(state, 0, _FIRST["conv1"])
    if first.shape[1] % 2:
        raise InputError(
            f"encoder.stack.0.bottleneck_block.0.weight reads {first.shape[1]} channels; OpenSTL's first block reads "
            "half of the squeezed frames, 2·C"
        )
    c0 = int(first.shape[1]) // 2
    # a block's output width: the same within a stage, ×4 at the first block of the next (which halves the size)
    widths = [int(_conv(state, k, (_FIRST if k == 0 else _OTHER)["conv3"]).shape[0]) for k in range(n_blocks)]
    stages: list[int] = []
    for k, width in enumerate(widths):
        if k and width == widths[k - 1]:
            stages[-1] += 1
        else:
            stages.append(1)
    want = [2 * c0 * 4**s for s, n in enumerate(stages) for _ in range(n)]
    if widths != want or len(stages) > 4:
        raise InputError(
            f"the i-RevNet blocks write {widths} channels; OpenSTL's autoencoder for {c0} channel(s) writes "
            f"2·C·4^s in stage s (at most 4 stages): the blocks do not form its stages"
        )
    mids = [int(_conv(state, k, (_FIRST if k == 0 else _OTHER)["conv1"]).shape[0]) for k in range(n_blocks)]
    divisor = next((m for m in range(1, 65) if all(max(w // m, 1) == x for w, x in zip(widths, mids))), None)
    if divisor is None:
        raise InputError(f"the bottleneck widths {mids} are not the block widths {widths} divided by one number (mult)")
    h = int(_need(state, "frame_predictor.att.0.0.weight", _WHAT).shape[0])
    if h != widths[-1]:
        raise InputError(
            f"the predictor is {h} wide (frame_predictor.att.0.0.weight) but the autoencoder's code halves have "
            f"{widths[-1]} channels: OpenSTL's rnn_size must equal them"
        )
    r.inferred("rnn_size", h)
    channels = r.inferred("channels", c0, label="the frame channels (the first block reads 2·C)")
    cfg: dict[str, Any] = {
        "channels": channels,
        "rev_channels": c0,
        "blocks": stages,
        "predictor_layers": r.inferred("predictor_rnn_layers", n_layers, out_key="predictor_layers"),
        "bottleneck_divisor": divisor,
    }
    r.sources.update({"rev_channels": "weights", "blocks": "weights", "bottleneck_divisor": "weights"})
    for key in ("frames_in", "frames_out", "height", "width"):
        cfg[key] = r.chosen(key, _DEFAULTS[key])
    m = 2 ** len(stages)
    for key in ("height", "width"):
        if cfg[key] % m:
            raise ConfigError(f"{key}={cfg[key]} is not a multiple of {m}: a {len(stages)}-stage CrevNet halves it")
    found = r.lookup("n_eval")
    if found is not None and found[0] != cfg["frames_in"] - 2 + cfg["frames_out"]:
        raise ConfigError(
            f"the {found[1]} says n_eval={found[0]!r}, but OpenSTL's CrevNet with {cfg['frames_in']} frames in and "
            f"{cfg['frames_out']} out runs n_eval = {cfg['frames_in']} − 2 + {cfg['frames_out']} windows"
        )
    if cfg["frames_in"] < 3:
        raise ConfigError(f"OpenSTL's CrevNet reads windows of 3 frames; pre_seq_length={cfg['frames_in']} is too few")
    spec = {k: cfg[k] for k in ("frames_in", "frames_out", "channels", "height", "width")}
    spec["value_range"] = [0.0, 1.0]
    return cfg, spec, "CrevNet_Model"


def _identity(zeros: Tensor) -> Tensor:
    return zeros.clone().fill_diagonal_(1.0)


def _crevnet_pairs(
    model_keys: list[str], cfg: dict[str, Any]
) -> tuple[dict[str, tuple[str | None, Callable[[Tensor], Tensor] | None]], dict[str, tuple[int, ...]]]:
    """stzoo key → (OpenSTL key, transform); OpenSTL's CrevNet has no unused tensors."""
    pairs: dict[str, tuple[str | None, Callable[[Tensor], Tensor] | None]] = {}
    for key in model_keys:
        if key in ("autoencoder.map_in", "autoencoder.map_out"):
            pairs[key] = (None, _identity)
            continue
        m = re.match(r"^autoencoder\.blocks\.(\d+)\.(bn0|conv1|bn1|conv2|bn2|conv3)\.(\w+)$", key)
        if m:
            k = int(m.group(1))
            index = (_FIRST if k == 0 else _OTHER)[m.group(2)]
            pairs[key] = (f"encoder.stack.{k}.bottleneck_block.{index}.{m.group(3)}", None)
            continue
        m = re.match(r"^predictor\.cells\.(\d+)\.(gates_c|gates_m)\.(weight|bias)_([ifg])$", key)
        if m:
            gate = _GATES[m.group(2)]["ifg".index(m.group(4))]
            pairs[key] = (f"frame_predictor.convlstm.{m.group(1)}.{gate}.{m.group(3)}", None)
            continue
        m = re.match(r"^predictor\.cells\.(\d+)\.(gate_o|fuse)\.(weight|bias)$", key)
        if m:
            conv = "out_gate" if m.group(2) == "gate_o" else "w1"
            pairs[key] = (f"frame_predictor.convlstm.{m.group(1)}.{conv}.{m.group(3)}", None)
            continue
        m = re.match(r"^predictor\.attention\.(\d+)\.(weight|bias)$", key)
        if m:
            pairs[key] = (f"frame_predictor.att.{m.group(1)}.0.{m.group(2)}", None)
            continue
        raise AssertionError(f"no OpenSTL name for stzoo key {key}")  # stzoo's CrevNet changed
    return pairs, {}


def _model_config(cfg: dict[str, Any]) -> dict[str, Any]:
    return {k: (list(v) if isinstance(v, tuple) else v) for k, v in cfg.items()}


CREVNET = register_openstl(
    OpenSTLMethod(
        arch="crevnet",
        names=("crevnet",),
        label="CrevNet",
        config_keys=frozenset({"rnn_size", "predictor_rnn_layers", "n_eval"}),
        resolve=_resolve_crevnet,
        pairs=_crevnet_pairs,
        model_config=_model_config,
        card_notes=(
            "each predictor cell's three input / forget / cell gate convolutions are kept as one tensor per gate "
            "of one convolution; the frame maps autoencoder.map_in / map_out (not in OpenSTL's file) are the "
            "identity; CrevNet forecasts as OpenSTL's test loop does: from the last three observed frames, with "
            "the observed frames pasted into the first two predicted windows",
        ),
    )
)
