"""OpenSTL's PredNet (``PredNet_Model``, OpenSTL v0.3.0) → stzoo's ``prednet``.

Importing this module registers the importer with :func:`~stzoo.convert.openstl.core.register_openstl`,
so ``from_openstl(path, arch="PredNet")`` converts it. Every size is read from the tensors (the frame
size is not: ``in_shape`` or ``height`` / ``width`` of the config, else 64×64). What is mapped (OpenSTL
name → stzoo name, ``l`` the layer, ``a = stack_sizes[l]``, ``r = R_stack_sizes[l]``)::

    {i,f,c,o}.l.weight[:, :r]          → layers.l.from_r.weight_{i,f,g,o}
    {i,f,c,o}.l.weight[:, r:r+2a]      → layers.l.from_e.weight_{i,f,g,o}   (error channels reordered)
    {i,f,c,o}.l.weight[:, r+2a:]       → layers.l.from_up.weight_{i,f,g,o}  (below the top layer)
    {i,f,c,o}.l.bias                   → layers.l.from_r.bias_{i,f,g,o}
    Ahat.{2l}.weight / bias            → layers.l.ahat.weight / bias
    A.{2l}.weight / bias               → layers.l.a_next.weight / bias      (error channels reordered)

OpenSTL concatenates a layer's errors as ``[relu(Â − A) for every channel, relu(A − Â) for every
channel]``; stzoo keeps the two errors of a channel together (``c·2 + s`` ↔ OpenSTL's ``s·a + c``), so the
input axis of the convolutions that read ``E`` is permuted. OpenSTL's model uses every tensor it has.
OpenSTL's ``LSTM_activation`` / ``LSTM_inner_activation`` settings are never read by its forward (tanh and
the hard sigmoid are fixed), so they are not needed here either; ``pixel_max``, ``error_activation`` and
``A_activation`` are not in the weights: from the config, else OpenSTL's value in every published config
(1.0, relu, relu).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

import torch
from torch import Tensor

import stzoo.models.prednet  # noqa: F401  (registers the "prednet" architecture)
from stzoo.convert.openstl.core import (
    _DEFAULTS,
    OpenSTLMethod,
    _count,
    _indices,
    _need,
    _Resolver,
    odd_square_kernel,
    register_openstl,
)
from stzoo.errors import ConfigError, InputError

__all__ = ["PREDNET"]

_WHAT = "OpenSTL's PredNet model (PredNet_Model)"
_GATES = (("i", "i"), ("f", "f"), ("c", "g"), ("o", "o"))  # OpenSTL gate name → stzoo's


def _error_permutation(a: int) -> Tensor:
    """perm[j] = OpenSTL's error channel for stzoo's channel j = c·2 + s  (OpenSTL: s·a + c)."""
    c = torch.arange(a).view(a, 1)
    s = torch.arange(2).view(1, 2)
    return (s * a + c).reshape(-1)


def _resolve_prednet(state: Mapping[str, Tensor], r: _Resolver) -> tuple[dict[str, Any], dict[str, Any], str]:
    method = r.lookup("method")
    if method is not None and method[0] != "prednet":
        raise ConfigError(f"the {method[1]} says method={method[0]!r}, but --arch prednet converts OpenSTL's PredNet")
    _need(state, "i.0.weight", _WHAT)
    _need(state, "Ahat.0.weight", _WHAT)
    n = _count(_indices(state, r"^i\.(\d+)\.weight$"), "the LSTM gate convolutions i.N")
    stack = [int(_need(state, f"Ahat.{2 * l}.weight", _WHAT).shape[0]) for l in range(n)]  # noqa: E741
    r_stack = [int(_need(state, f"i.{l}.weight", _WHAT).shape[0]) for l in range(n)]  # noqa: E741
    for l in range(n):  # noqa: E741
        w = state[f"i.{l}.weight"]
        want = 2 * stack[l] + r_stack[l] + (r_stack[l + 1] if l + 1 < n else 0)
        if w.dim() != 4 or w.shape[1] != want:
            raise InputError(
                f"i.{l}.weight has shape {tuple(w.shape)}; OpenSTL's PredNet layer {l} reads 2·{stack[l]} errors + "
                f"{r_stack[l]} (R) "
                + (f"+ {r_stack[l + 1]} (R of layer {l + 1}) " if l + 1 < n else "")
                + f"= {want} channels"
            )
        if l + 1 < n:
            a = _need(state, f"A.{2 * l}.weight", _WHAT)
            if a.dim() != 4 or a.shape[1] != 2 * stack[l] or a.shape[0] != stack[l + 1]:
                raise InputError(
                    f"A.{2 * l}.weight has shape {tuple(a.shape)}; OpenSTL's PredNet maps layer {l}'s "
                    f"2·{stack[l]} errors to layer {l + 1}'s {stack[l + 1]} targets"
                )
    k_r = [odd_square_kernel(state[f"i.{l}.weight"], f"i.{l}.weight") for l in range(n)]  # noqa: E741
    k_ahat = [odd_square_kernel(state[f"Ahat.{2 * l}.weight"], f"Ahat.{2 * l}.weight") for l in range(n)]  # noqa: E741
    k_a = [odd_square_kernel(state[f"A.{2 * l}.weight"], f"A.{2 * l}.weight") for l in range(n - 1)]  # noqa: E741
    channels = r.inferred("channels", stack[0], label="stack_sizes[0] (the frame's channels)")
    cfg: dict[str, Any] = {
        "channels": channels,
        "a_channels": r.inferred("stack_sizes", stack, out_key="a_channels")[1:],
        "r_channels": r.inferred("R_stack_sizes", r_stack, out_key="r_channels"),
        "a_filter": r.inferred("A_filt_sizes", k_a, out_key="a_filter"),
        "ahat_filter": r.inferred("Ahat_filt_sizes", k_ahat, out_key="ahat_filter"),
        "r_filter": r.inferred("R_filt_sizes", k_r, out_key="r_filter"),
        "pixel_max": float(r.chosen("pixel_max", 1.0, note="default (OpenSTL's configs: 1.0)")),
        "error_activation": r.chosen("error_activation", "relu", note="default (OpenSTL's configs: relu)"),
        "a_activation": r.chosen("A_activation", "relu", note="default (OpenSTL's configs: relu)"),
    }
    if "A_activation" in r.sources:
        r.sources["a_activation"] = r.sources.pop("A_activation")
    for key in ("error_activation", "a_activation"):
        if cfg[key] not in ("relu", "tanh"):
            raise ConfigError(f"OpenSTL's PredNet takes relu or tanh for {key}, got {cfg[key]!r}")
    m = 2 ** (n - 1)
    for key in ("frames_in", "frames_out", "height", "width"):
        cfg[key] = r.chosen(key, _DEFAULTS[key])
    for key in ("height", "width"):
        if cfg[key] % m:
            raise ConfigError(f"{key}={cfg[key]} is not a multiple of {m}: a {n}-layer PredNet halves it {n - 1} times")
    spec = {k: cfg[k] for k in ("frames_in", "frames_out", "channels", "height", "width")}
    spec["value_range"] = [0.0, cfg["pixel_max"]]
    return cfg, spec, "PredNet_Model"


def _prednet_pairs(
    model_keys: list[str], cfg: dict[str, Any]
) -> tuple[dict[str, tuple[str | None, Callable[[Tensor], Tensor] | None]], dict[str, tuple[int, ...]]]:
    """stzoo key → (OpenSTL key, transform); OpenSTL's PredNet has no unused tensors."""
    a = (cfg["channels"], *cfg["a_channels"])
    r = cfg["r_channels"]
    to_gate = {mine: theirs for theirs, mine in _GATES}
    pairs: dict[str, tuple[str | None, Callable[[Tensor], Tensor] | None]] = {}
    for key in model_keys:
        m = re.match(r"^layers\.(\d+)\.(from_r|from_e|from_up)\.(weight|bias)_([ifgo])$", key)
        if m:
            l, part, kind, gate = int(m.group(1)), m.group(2), m.group(3), m.group(4)
            src = f"{to_gate[gate]}.{l}.{kind}"
            if kind == "bias":
                pairs[key] = (src, None)
            elif part == "from_r":
                pairs[key] = (src, lambda w, r_l=r[l]: w[:, :r_l])
            elif part == "from_e":
                perm = _error_permutation(a[l]) + r[l]
                pairs[key] = (src, lambda w, p=perm: w[:, p])
            else:
                pairs[key] = (src, lambda w, start=r[l] + 2 * a[l]: w[:, start:])
            continue
        m = re.match(r"^layers\.(\d+)\.(ahat|a_next)\.(weight|bias)$", key)
        if m:
            l, conv, kind = int(m.group(1)), m.group(2), m.group(3)
            if conv == "ahat":
                pairs[key] = (f"Ahat.{2 * l}.{kind}", None)
            elif kind == "weight":
                perm = _error_permutation(a[l])
                pairs[key] = (f"A.{2 * l}.weight", lambda w, p=perm: w[:, p])
            else:
                pairs[key] = (f"A.{2 * l}.bias", None)
            continue
        raise AssertionError(f"no OpenSTL name for stzoo key {key}")  # stzoo's PredNet changed
    return pairs, {}


PREDNET = register_openstl(
    OpenSTLMethod(
        arch="prednet",
        names=("prednet",),
        label="PredNet",
        config_keys=frozenset(
            {
                "stack_sizes",
                "R_stack_sizes",
                "A_filt_sizes",
                "Ahat_filt_sizes",
                "R_filt_sizes",
                "pixel_max",
                "error_activation",
                "A_activation",
            }
        ),
        resolve=_resolve_prednet,
        pairs=_prednet_pairs,
        card_notes=(
            "each LSTM gate convolution was split by input (R, E, upsampled R) and the error channels of the "
            "convolutions that read E reordered from OpenSTL's [all Â−A; all A−Â] to two per channel; "
            "PredNet forecasts past the observed frames as OpenSTL does (the previous prediction stands in for "
            "the unseen frame)",
        ),
    )
)
