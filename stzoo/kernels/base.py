"""What every fused module shares: it is built from a reference module and only does inference."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from stzoo.errors import ConfigError, StzooError

__all__ = ["InferenceOnly", "FusedTrainingError", "frozen", "FUSED", "register_fused"]

#: architecture id → fused class (each kernel module registers its own with :func:`register_fused`)
FUSED: dict[str, type[nn.Module]] = {}


def register_fused(cls: type[nn.Module]) -> type[nn.Module]:
    """Class decorator: ``cls`` (with ``arch`` and ``from_reference(ref)``) is the fused twin of ``cls.arch``."""
    arch = getattr(cls, "arch", "")
    if not arch or not callable(getattr(cls, "from_reference", None)):
        raise ConfigError(f"{cls.__name__} needs an `arch` and a `from_reference(ref)` classmethod to be registered")
    if arch in FUSED and FUSED[arch] is not cls:
        raise ConfigError(f"architecture {arch!r} already has a fused twin, {FUSED[arch].__name__}")
    FUSED[arch] = cls
    return cls


class FusedTrainingError(StzooError, RuntimeError):
    """A fused (inference-only) module was asked to run in training mode with autograd on."""


def frozen(t: Tensor) -> nn.Parameter:
    """A parameter that never asks for a gradient (fused weights are derived, not trained).

    Parameters (rather than buffers) so that ``.to(device, dtype)`` and ``next(m.parameters())``
    behave exactly as on the reference module.
    """
    return nn.Parameter(t.detach().clone().contiguous(), requires_grad=False)


class InferenceOnly(nn.Module):
    """Mixin for fused modules: they fold training-time structure (BatchNorm statistics, layer
    scales) into their weights, so they can only run inference.

    ``train()`` / ``eval()`` work as usual, but running a forward pass in training mode with
    autograd enabled raises :class:`FusedTrainingError`: train the reference module instead and
    build the fused twin again with ``from_reference``.
    """

    def _keep_reference(self, ref: nn.Module) -> None:
        """Remember the reference module (not registered as a submodule, so it is neither moved
        by ``.to()`` nor listed in ``parameters()``)."""
        self.__dict__["_reference"] = ref

    @property
    def reference(self) -> nn.Module:
        """The reference module this one was fused from."""
        return self.__dict__["_reference"]

    def state_dict(self, *args, **kwargs):  # type: ignore[override]
        """The *reference* module's state dict: one checkpoint serves both implementations, so
        saving a fused model (``save_pretrained``) writes the reference layout."""
        return self.reference.state_dict(*args, **kwargs)

    def load_state_dict(self, state_dict, strict: bool = True, assign: bool = False):  # type: ignore[override]
        """Refused: fused weights are derived. Load into the reference model and fuse again."""
        raise FusedTrainingError(
            f"{type(self).__name__} cannot load a state dict: its weights are folded from a reference model. "
            "Load the weights into the reference model and call stzoo.kernels.fuse(reference) again."
        )

    def _check_inference(self) -> None:
        if self.training and torch.is_grad_enabled():
            raise FusedTrainingError(
                f"{type(self).__name__} is an inference-only fused module (BatchNorm and layer scales are "
                "folded into its weights and its kernels have no backward). Call .eval() and run it under "
                "torch.no_grad(), or train the reference model (stzoo.load(..., impl='reference')) and "
                "rebuild the fused one with stzoo.kernels.fuse(model)."
            )
