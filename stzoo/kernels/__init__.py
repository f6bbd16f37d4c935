"""Fused inference fast paths, one beside each reference model in :mod:`stzoo.models`.

Every fused module is built *from* a reference module's weights (``FusedX.from_reference(ref)``),
so one checkpoint serves both, and keeps the reference's call interface (TAU: ``forward(x)``;
recurrent models: ``forward(x, n_out, ...)``, ``step(frame, states)``, ``init_states(...)``,
``recurrent = True``). They are inference-only. Nothing here imports Triton or uses
``torch.compile``; CUDA elementwise kernels are NVRTC-compiled ``torch.cuda.jiterator`` kernels.
See ``docs/kernels.md``.

    >>> from stzoo.kernels import fuse
    >>> fast = fuse(reference_model.eval())
"""

from __future__ import annotations

import copy
import importlib
import pkgutil

import torch
from torch import nn

from stzoo.errors import ConfigError
from stzoo.kernels.base import FUSED, FusedTrainingError, InferenceOnly, register_fused
from stzoo.kernels.convlstm import FusedConvLSTM
from stzoo.kernels.sa_convlstm import FusedSAConvLSTM
from stzoo.kernels.tau import FusedTAU
from stzoo.models.base import eval_mode

__all__ = [
    "fuse",
    "is_fused",
    "FUSED",
    "IMPLS",
    "FusedTAU",
    "FusedConvLSTM",
    "FusedSAConvLSTM",
    "FusedTrainingError",
    "resolve_impl",
    "register_fused",
    "discover",
]


def discover() -> list[str]:
    """Import every module of this package, sorted by name: each fused twin registers itself in :data:`FUSED`
    (architecture id → fused class) with :func:`~stzoo.kernels.base.register_fused`. Returns the modules."""
    names = sorted(m.name for m in pkgutil.iter_modules(__path__) if not m.ispkg and not m.name.startswith("_"))
    for name in names:
        importlib.import_module(f"{__name__}.{name}")
    return [f"{__name__}.{n}" for n in names]


discover()

#: the values ``impl=`` takes in :func:`stzoo.load`
IMPLS = ("auto", "reference", "fused")


def resolve_impl(impl: str) -> str:
    """``"auto"`` → ``"fused"``; check the value. Returns ``"reference"`` or ``"fused"``.

    Raises:
        ConfigError: ``impl`` is not one of :data:`IMPLS`.
    """
    if impl not in IMPLS:
        raise ConfigError(f"impl must be one of {', '.join(repr(i) for i in IMPLS)}, got {impl!r}")
    return "fused" if impl == "auto" else impl


def is_fused(model: nn.Module) -> bool:
    """True for a module made by :func:`fuse`."""
    return isinstance(model, InferenceOnly)


def fuse(model: nn.Module) -> nn.Module:
    """The fused inference twin of reference ``model`` (dispatching on ``model.arch``).

    The result is in eval mode, on ``model``'s device and dtype, and may share some parameters
    with ``model``; it does not follow later changes to ``model``'s weights (fuse again).

    Raises:
        ConfigError: there is no fused implementation for ``model``'s architecture.
    """
    if is_fused(model):
        return model
    arch = getattr(model, "arch", None)
    if arch not in FUSED:
        raise ConfigError(
            f"no fused implementation for architecture {arch!r} ({type(model).__name__}); "
            f"fused ones exist for {', '.join(sorted(FUSED))}. Use impl='reference'."
        )
    with eval_mode(model):
        dtype = next(model.parameters()).dtype
        if dtype in (torch.float16, torch.bfloat16):
            # fold in fp32 (products of BN scales, layer scales and weights), then store in 16 bits
            fused = FUSED[arch].from_reference(copy.deepcopy(model).float()).to(dtype)
            fused._keep_reference(model)
        else:
            fused = FUSED[arch].from_reference(model)
    return fused.eval()
