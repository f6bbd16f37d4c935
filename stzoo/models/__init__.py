"""Pure architectures. No file, network or environment access here.

Every model is built from a plain, JSON-serialisable config dict::

    model = build_model("tau", {"hid_S": 16, "hid_T": 128, "N_T": 4})

and exposes ``frames_in``, ``frames_out``, ``channels`` and ``recurrent``.
"""

from __future__ import annotations

import inspect
from typing import Any

from torch import nn

from stzoo.errors import ConfigError, UnknownModelError
from stzoo.models.convlstm import ConvLSTM
from stzoo.models.sa_convlstm import SAConvLSTM
from stzoo.models.tau import TAU

__all__ = ["ARCHITECTURES", "build_model", "TAU", "ConvLSTM", "SAConvLSTM", "count_parameters", "full_config"]

ARCHITECTURES: dict[str, type[nn.Module]] = {"tau": TAU, "convlstm": ConvLSTM, "sa_convlstm": SAConvLSTM}


def _init_parameters(cls: type) -> dict[str, inspect.Parameter]:
    """Named constructor parameters of ``cls`` and its model base classes (subclass wins)."""
    params: dict[str, inspect.Parameter] = {}
    for klass in reversed(cls.__mro__):
        if klass is nn.Module or "__init__" not in vars(klass) or not issubclass(klass, nn.Module):
            continue
        for n, p in inspect.signature(klass.__init__).parameters.items():
            if n != "self" and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
                params[n] = p
    return params


def _accepted(cls: type) -> set[str]:
    return set(_init_parameters(cls))


def _arch_class(arch: str) -> type[nn.Module]:
    if arch not in ARCHITECTURES:
        raise UnknownModelError(f"unknown architecture {arch!r}; known: {', '.join(sorted(ARCHITECTURES))}")
    return ARCHITECTURES[arch]


def build_model(arch: str, config: dict[str, Any] | None = None) -> nn.Module:
    """Build architecture ``arch`` ("tau", "convlstm", "sa_convlstm") from a config dict."""
    cls = _arch_class(arch)
    config = dict(config or {})
    unknown = set(config) - _accepted(cls)
    if unknown:
        raise ConfigError(f"{arch} does not take config key(s) {sorted(unknown)}; "
                          f"it takes {sorted(_accepted(cls))}")
    return cls(**config)


def full_config(arch: str, config: dict[str, Any] | None = None) -> dict[str, Any]:
    """``config`` with every constructor default of ``arch`` filled in (to compare two configs)."""
    defaults = {n: p.default for n, p in _init_parameters(_arch_class(arch)).items()
                if p.default is not p.empty}
    return {**defaults, **(config or {})}


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
