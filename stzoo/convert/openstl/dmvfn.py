"""OpenSTL's DMVFN (``DMVFN_Model``, OpenSTL v0.3.0) → stzoo's ``dmvfn``.

Importing this module registers the importer with :func:`~stzoo.convert.openstl.core.register_openstl`,
so ``from_openstl(path, arch="DMVFN")`` converts it. The channels, block widths and routing width are read
from the tensors; the blocks' scales are not in the weights (config ``scale``, else OpenSTL's
``[4, 4, 4, 2, 2, 2, 1, 1, 1]`` for a 9-block model), nor is ``beta`` (config, else 0.5, every published
config's) or the frame size (``in_shape`` or ``height`` / ``width``, else 64×64). What is mapped (OpenSTL
name → stzoo name, ``i`` the block, ``C`` the channels)::

    stu.i.conv0.0.0.weight[:, :4C]      → blocks.i.down0.frames.weight   (frame channels reordered)
    stu.i.conv0.0.0.weight[:, 4C:]      → blocks.i.down0.state.weight    (mask, flow)
    stu.i.conv0.0.0.bias / .0.1.weight  → blocks.i.down0.frames.bias / blocks.i.down0.act.weight
    stu.i.conv1.0.*                     → blocks.i.fine0.*               (split the same way)
    stu.i.conv0.1.{0,1}                 → blocks.i.down1.{conv,act}
    stu.i.convblock.j.{0,1}             → blocks.i.blocks.j.{conv,act}
    stu.i.conv_sq.{0,1}                 → blocks.i.squeeze.{conv,act}
    stu.i.convblock1.0.{0,1}            → blocks.i.fine1.{conv,act}
    stu.i.lastconv                      → blocks.i.head
    routing.routing.0 / .2, l1          → router.conv0 (input channels reordered) / router.conv1, router.fc

OpenSTL orders the frames an MVFB reads as ``[I_0, I_1, Î_0, Î_1]`` (all channels of each), stzoo channel
by channel (``c·4 + k`` ↔ OpenSTL's ``k·C + c``; the router's ``[I_0, I_1]`` likewise, ``c·2 + k``).
The first block's mask and flow are always zero: the 5 input channels of ``stu.0.conv0.0.0.weight`` and
``stu.0.conv1.0.0.weight`` that read them are dropped (stzoo's first block has no ``state`` convolutions).
Every other tensor is used. Its ``gamma`` and ``coef`` settings weight the training loss
only; ``training = True`` in its configs selects the training branch for validation, its test loop runs
the inference branch (``_inference``), which stzoo reproduces (see :mod:`stzoo.models.dmvfn`).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

import torch
from torch import Tensor

import stzoo.models.dmvfn  # noqa: F401  (registers the "dmvfn" architecture)
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

__all__ = ["DMVFN"]

_WHAT = "OpenSTL's DMVFN model (DMVFN_Model)"
#: OpenSTL's scales for its 9-block configs (every published DMVFN file)
OPENSTL_SCALES = [4, 4, 4, 2, 2, 2, 1, 1, 1]


def _frame_permutation(channels: int, k: int) -> Tensor:
    """perm[j] = OpenSTL's channel for stzoo's channel j = c·k + m  (OpenSTL: m·C + c)."""
    c = torch.arange(channels).view(channels, 1)
    m = torch.arange(k).view(1, k)
    return (m * channels + c).reshape(-1)


def _resolve_dmvfn(state: Mapping[str, Tensor], r: _Resolver) -> tuple[dict[str, Any], dict[str, Any], str]:
    method = r.lookup("method")
    if method is not None and method[0] != "dmvfn":
        raise ConfigError(f"the {method[1]} says method={method[0]!r}, but --arch dmvfn converts OpenSTL's DMVFN")
    first = _need(state, "stu.0.conv0.0.0.weight", _WHAT)
    routing = _need(state, "routing.routing.0.weight", _WHAT)
    _need(state, "l1.weight", _WHAT)
    n = _count(_indices(state, r"^stu\.(\d+)\."), "the blocks stu.N")
    in_planes = int(first.shape[1])
    if first.dim() != 4 or (in_planes - 5) % 4 or in_planes < 9:
        raise InputError(
            f"stu.0.conv0.0.0.weight has shape {tuple(first.shape)}; an MVFB reads 4·C frame channels + 1 mask "
            "+ 4 flow channels"
        )
    channels = r.inferred("channels", (in_planes - 5) // 4, label="(in_planes − 5) / 4 (the frame's channels)")
    r.inferred("in_planes", in_planes, label="in_planes")
    r.sources.pop("in_planes", None)
    if routing.dim() != 4 or routing.shape[1] != 2 * channels:
        raise InputError(f"routing.routing.0.weight has shape {tuple(routing.shape)}; it reads 2·{channels} channels")
    features = []
    for i in range(n):
        f = int(_need(state, f"stu.{i}.conv0.1.0.weight", _WHAT).shape[0])
        w0 = _need(state, f"stu.{i}.conv0.0.0.weight", _WHAT)
        if w0.shape[0] != f // 2 or w0.shape[1] != in_planes:
            raise InputError(
                f"stu.{i}.conv0.0.0.weight has shape {tuple(w0.shape)}; block {i} (num_features {f}) maps "
                f"{in_planes} channels to {f // 2}"
            )
        features.append(f)
    r.inferred("num_block", n)
    r.sources.pop("num_block", None)
    scales = r.chosen("scale", OPENSTL_SCALES if n == 9 else None, note="default (OpenSTL's 9-block configs)")
    if scales is None:
        raise ConfigError(
            f"this DMVFN has {n} blocks; their scales are not in the weights: pass config "
            f'{{"scale": [...]}} ({n} values; OpenSTL\'s configs use {OPENSTL_SCALES} for 9 blocks)'
        )
    if len(scales) != n:
        raise ConfigError(f"scale lists {len(scales)} values, but the checkpoint has {n} blocks")
    cfg: dict[str, Any] = {
        "channels": channels,
        "num_features": r.inferred("num_features", features),
        "scales": list(scales),
        "routing_channels": r.inferred("routing_out_channels", int(routing.shape[0]), out_key="routing_channels"),
        "beta": float(r.chosen("beta", 0.5, note="default (OpenSTL's configs: 0.5)")),
        "routing": r.chosen("routing", "threshold", note="default (stzoo's deterministic routing)"),
    }
    r.sources["scales"] = r.sources.pop("scale")
    m = 4 * max(cfg["scales"])
    for key in ("frames_in", "frames_out", "height", "width"):
        cfg[key] = r.chosen(key, _DEFAULTS[key])
    for key in ("height", "width"):
        if cfg[key] % m:
            raise ConfigError(f"{key}={cfg[key]} is not a multiple of {m} (4 × the largest block scale)")
    spec = {k: cfg[k] for k in ("frames_in", "frames_out", "channels", "height", "width")}
    spec["value_range"] = [0.0, 1.0]
    return cfg, spec, "DMVFN_Model"


_PLAIN = {  # stzoo module (within a block) → OpenSTL module
    "down1": "conv0.1",
    "blocks.0": "convblock.0",
    "blocks.1": "convblock.1",
    "blocks.2": "convblock.2",
    "squeeze": "conv_sq",
    "fine1": "convblock1.0",
}
_SPLIT = {"down0": "conv0.0", "fine0": "conv1.0"}


def _dmvfn_pairs(
    model_keys: list[str], cfg: dict[str, Any]
) -> tuple[dict[str, tuple[str | None, Callable[[Tensor], Tensor] | None]], dict[str, tuple[int, ...]]]:
    """stzoo key → (OpenSTL key, transform); no OpenSTL tensor is unused as a whole (block 0's mask / flow
    input channels are sliced off)."""
    c = cfg["channels"]
    perm4, perm2 = _frame_permutation(c, 4), _frame_permutation(c, 2)
    pairs: dict[str, tuple[str | None, Callable[[Tensor], Tensor] | None]] = {}
    for key in model_keys:
        m = re.match(r"^blocks\.(\d+)\.(.+)\.(conv|act)\.(weight|bias)$", key)
        if m and m.group(2) in _PLAIN:
            i, mod, part, kind = m.groups()
            pairs[key] = (f"stu.{i}.{_PLAIN[mod]}.{0 if part == 'conv' else 1}.{kind}", None)
            continue
        m = re.match(r"^blocks\.(\d+)\.(down0|fine0)\.(frames|state|act)\.(weight|bias)$", key)
        if m:
            i, mod, part, kind = m.groups()
            base = f"stu.{i}.{_SPLIT[mod]}"
            if part == "act":
                pairs[key] = (f"{base}.1.weight", None)
            elif kind == "bias":
                pairs[key] = (f"{base}.0.bias", None)
            elif part == "frames":
                pairs[key] = (f"{base}.0.weight", lambda w, p=perm4: w[:, p])
            else:
                pairs[key] = (f"{base}.0.weight", lambda w, s=4 * c: w[:, s:])
            continue
        m = re.match(r"^blocks\.(\d+)\.head\.(weight|bias)$", key)
        if m:
            pairs[key] = (f"stu.{m.group(1)}.lastconv.{m.group(2)}", None)
            continue
        router = {
            "router.conv0.weight": ("routing.routing.0.weight", lambda w, p=perm2: w[:, p]),
            "router.conv0.bias": ("routing.routing.0.bias", None),
            "router.conv1.weight": ("routing.routing.2.weight", None),
            "router.conv1.bias": ("routing.routing.2.bias", None),
            "router.fc.weight": ("l1.weight", None),
            "router.fc.bias": ("l1.bias", None),
        }
        if key in router:
            pairs[key] = router[key]
            continue
        raise AssertionError(f"no OpenSTL name for stzoo key {key}")  # stzoo's DMVFN changed
    return pairs, {}


DMVFN = register_openstl(
    OpenSTLMethod(
        arch="dmvfn",
        names=("dmvfn",),
        label="DMVFN",
        config_keys=frozenset(
            {"in_planes", "num_block", "num_features", "scale", "routing_out_channels", "beta", "routing"}
        ),
        resolve=_resolve_dmvfn,
        pairs=_dmvfn_pairs,
        card_notes=(
            "the convolutions that read the frames were split into a frame part and a mask / flow part and "
            "their frame channels reordered from OpenSTL's [I_0, I_1, Î_0, Î_1] to channel by channel; "
            "at inference the blocks are routed by `routing` (default `threshold`: the blocks whose "
            "probability is at least 0.5; OpenSTL samples them, `bernoulli`)",
        ),
    )
)
