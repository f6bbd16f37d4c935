"""Pure architectures. No file, network or environment access here.

Each architecture lives in one file (``tau.py``, ``simvp.py``, ``convlstm.py``, ``sa_convlstm.py``,
``predrnn.py``, ...) that declares a config dataclass, the modules and an
:class:`~stzoo.models.base.Architecture` (see :mod:`stzoo.models.base` for the protocol) registered with
``register(...)``. Importing this package imports every module in it (:func:`discover`, in name order), so
:data:`ARCHITECTURES` holds every architecture and a new one needs no list to be added to. Build one from a
plain JSON-serialisable dict::

    model = build_model("tau", {"hid_S": 16, "hid_T": 128, "N_T": 4})
    model.config            # TAUConfig(frames=10, ..., hid_S=16, ...): what it was built with

Every model exposes ``arch``, ``config``, ``frames_in``, ``frames_out``, ``channels`` and ``recurrent``.
Model classes are imported from their own module (``from stzoo.models.tau import TAU``).
"""

from __future__ import annotations

import importlib
import pkgutil
from typing import Any

from torch import nn

from stzoo.errors import ConfigError
from stzoo.models.base import (
    ARCHITECTURES,
    MAX_PARAMETERS,
    Architecture,
    ChannelParam,
    ModelConfig,
    Recipe,
    cfg_field,
    check_frames,
    count_parameters,
    eval_mode,
    get_architecture,
    load_state_dict_strict,
    parameters_of,
    register,
)

__all__ = [
    "ARCHITECTURES",
    "Architecture",
    "ModelConfig",
    "Recipe",
    "ChannelParam",
    "cfg_field",
    "register",
    "get_architecture",
    "build_model",
    "make_config",
    "override_config",
    "full_config",
    "check_frames",
    "count_parameters",
    "parameters_of",
    "eval_mode",
    "load_state_dict_strict",
    "MAX_PARAMETERS",
    "model_modules",
    "discover",
]


def model_modules() -> list[str]:
    """The full names of this package's modules, sorted (the order :func:`discover` imports them)."""
    names = (m.name for m in pkgutil.iter_modules(__path__) if not m.ispkg)
    return [f"{__name__}.{n}" for n in sorted(names) if not n.startswith("_")]


def discover() -> list[str]:
    """Import every module of this package: each architecture's file registers it. Returns their names."""
    modules = model_modules()
    for name in modules:
        importlib.import_module(name)
    return modules


discover()


def make_config(arch: str, config: dict[str, Any] | ModelConfig | None = None) -> ModelConfig:
    """The checked config object of ``arch`` for a dict (unknown keys, bad types and ranges refused)."""
    return get_architecture(arch).make_config(config)


def override_config(arch: str, config: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """``config`` with ``overrides`` applied (another size of ``arch``, as ``stzoo train --config``),
    checked by the architecture first: a :class:`ConfigError` names an unknown key or a bad value."""
    changed = {**config, **overrides}
    make_config(arch, changed)
    return changed


def build_model(
    arch: str, config: dict[str, Any] | ModelConfig | None = None, *, max_parameters: int | None = MAX_PARAMETERS
) -> nn.Module:
    """Build architecture ``arch`` (e.g. ``"tau"``) from a config dict or config object.

    The config is checked field by field first, and the parameter count is taken on the meta device
    before anything is allocated: a model with more than ``max_parameters`` values (default
    :data:`MAX_PARAMETERS`; ``None`` for no limit) is refused with a :class:`ConfigError`.
    """
    spec = get_architecture(arch)
    cfg = spec.make_config(config)
    if max_parameters is not None:
        n = parameters_of(spec, cfg)
        if n > max_parameters:
            raise ConfigError(
                f"{arch} with this config has {n:,} parameters, above the limit of "
                f"{max_parameters:,}; check the config, or pass max_parameters=None (or a "
                "larger number) to build_model if you mean it"
            )
    return spec.model(cfg)


def full_config(arch: str, config: dict[str, Any] | ModelConfig | None = None) -> dict[str, Any]:
    """``config`` with every default of ``arch`` filled in (to compare two configs)."""
    return make_config(arch, config).to_dict()
