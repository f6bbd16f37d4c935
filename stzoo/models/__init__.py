"""Pure architectures. No file, network or environment access here.

Each architecture lives in one file (``tau.py``, ``simvp.py``, ``convlstm.py``, ``sa_convlstm.py``,
``predrnn.py``, ...) that declares a
config dataclass, the modules and an :class:`~stzoo.models.base.Architecture` (see
:mod:`stzoo.models.base` for the protocol). Build one from a plain JSON-serialisable dict::

    model = build_model("tau", {"hid_S": 16, "hid_T": 128, "N_T": 4})
    model.config            # TAUConfig(frames=10, ..., hid_S=16, ...): what it was built with

Every model exposes ``arch``, ``config``, ``frames_in``, ``frames_out``, ``channels`` and ``recurrent``.
"""

from __future__ import annotations

from typing import Any

from torch import nn

from stzoo.errors import ConfigError
# importing each architecture's file registers it
from stzoo.models import convlstm as _convlstm, sa_convlstm as _sa_convlstm, tau as _tau  # noqa: F401
from stzoo.models import mim as _mim, predrnn as _predrnn, predrnnpp as _predrnnpp, simvp as _simvp  # noqa: F401
from stzoo.models import mau as _mau, phydnet as _phydnet, predformer as _predformer, swinlstm as _swinlstm  # noqa: F401
from stzoo.models import e3dlstm as _e3dlstm, mmvp as _mmvp  # noqa: F401
from stzoo.models.base import (ARCHITECTURES, MAX_PARAMETERS, Architecture, ChannelParam, ModelConfig, Recipe,
                               cfg_field, check_frames, count_parameters, eval_mode, get_architecture,
                               load_state_dict_strict, parameters_of, register)
from stzoo.models.convlstm import ConvLSTM, ConvLSTMConfig
from stzoo.models.e3dlstm import E3DLSTM, E3DLSTMConfig
from stzoo.models.mau import MAU, MAUConfig
from stzoo.models.mim import MIM, MIMConfig
from stzoo.models.mmvp import MMVP, MMVPConfig
from stzoo.models.phydnet import PhyDNet, PhyDNetConfig
from stzoo.models.predformer import PredFormer, PredFormerConfig
from stzoo.models.predrnn import PredRNN, PredRNNConfig, PredRNNv2, PredRNNv2Config
from stzoo.models.predrnnpp import PredRNNpp, PredRNNppConfig
from stzoo.models.sa_convlstm import SAConvLSTM, SAConvLSTMConfig
from stzoo.models.simvp import SimVP, SimVPConfig
from stzoo.models.swinlstm import SwinLSTM, SwinLSTMConfig
from stzoo.models.tau import TAU, TAUConfig

__all__ = ["ARCHITECTURES", "Architecture", "ModelConfig", "Recipe", "ChannelParam", "cfg_field", "register",
           "get_architecture", "build_model", "make_config", "override_config", "full_config", "check_frames", "count_parameters",
           "parameters_of", "eval_mode", "load_state_dict_strict", "MAX_PARAMETERS", "TAU", "TAUConfig", "ConvLSTM",
           "ConvLSTMConfig", "SAConvLSTM", "SAConvLSTMConfig", "SimVP", "SimVPConfig", "PredRNN", "PredRNNConfig",
           "PredRNNv2", "PredRNNv2Config", "PredRNNpp", "PredRNNppConfig", "MIM", "MIMConfig", "MAU", "MAUConfig", "PhyDNet",
           "PhyDNetConfig", "PredFormer", "PredFormerConfig", "SwinLSTM", "SwinLSTMConfig", "E3DLSTM", "E3DLSTMConfig", "MMVP",
           "MMVPConfig"]


def make_config(arch: str, config: dict[str, Any] | ModelConfig | None = None) -> ModelConfig:
    """The checked config object of ``arch`` for a dict (unknown keys, bad types and ranges refused)."""
    return get_architecture(arch).make_config(config)


def override_config(arch: str, config: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """``config`` with ``overrides`` applied (another size of ``arch``, as ``stzoo train --config``),
    checked by the architecture first: a :class:`ConfigError` names an unknown key or a bad value."""
    changed = {**config, **overrides}
    make_config(arch, changed)
    return changed


def build_model(arch: str, config: dict[str, Any] | ModelConfig | None = None, *,
                max_parameters: int | None = MAX_PARAMETERS) -> nn.Module:
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
            raise ConfigError(f"{arch} with this config has {n:,} parameters, above the limit of "
                              f"{max_parameters:,}; check the config, or pass max_parameters=None (or a "
                              "larger number) to build_model if you mean it")
    return spec.model(cfg)


def full_config(arch: str, config: dict[str, Any] | ModelConfig | None = None) -> dict[str, Any]:
    """``config`` with every default of ``arch`` filled in (to compare two configs)."""
    return make_config(arch, config).to_dict()
