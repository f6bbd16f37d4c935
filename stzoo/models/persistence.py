"""A persistence head for any architecture: forecast = last observed frame + a learned change.

On real footage at video frame rates, repeating the last observed frame ("copy-last", persistence)
is a strong forecast; a model trained on other data (digits, simulations) starts far worse than it.
Wrapping a model with this head makes the *untrained* model exactly copy-last, so fine-tuning can
only move away from persistence where training finds something better::

    base(x)  = the wrapped architecture's forecast, B×T_out×C×H×W (any architecture, unchanged)
    last     = x[:, -1]                                  the last observed frame
    context  = [x_0 − last, …, x_{T−2} − last, last]     what the past says about each pixel
    change_t = out(GELU(ctx(context) + chg(base_t − last)))    two 3×3 convolutions, ``head_hidden`` wide
    ŷ_t      = last + change_t

``out`` starts at zero (weights and bias), so ``ŷ_t = last`` before any training, whatever ``base``
computes; its gradient is not zero, so the first steps learn the change from the context (e.g. a
temporal average where nothing moves, which removes camera noise) and, through ``chg``, how much of
the base's forecast to trust. Nothing here depends on the wrapped architecture.

The wrapped model is a registered architecture of its own, named ``<base>+persistence`` (e.g.
``tau+persistence``), built on first use by :func:`stzoo.models.get_architecture`: its config is the
base's config plus ``head_hidden``, so a folder written by ``save_pretrained`` records the head in
``config.json`` and ``stzoo.load`` rebuilds it. It always reads a window of ``frames_in`` frames and
writes ``frames_out`` (a recurrent base is rolled out inside); longer horizons come by rollout, as
for TAU, and the Forecaster uses windows.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from stzoo.errors import ConfigError
from stzoo.models.base import (
    ARCHITECTURES,
    DERIVED,
    Architecture,
    ModelConfig,
    cfg_field,
    get_architecture,
    raise_if_bad_frames,
    register,
)

__all__ = [
    "SUFFIX",
    "DEFAULT_HIDDEN",
    "PersistenceHead",
    "WithPersistence",
    "persistence_architecture",
    "with_persistence",
    "has_persistence_head",
    "base_of",
]

#: the architecture id of a wrapped model is the base's id followed by this
SUFFIX = "+persistence"
#: the head's hidden channels by default
DEFAULT_HIDDEN = 32


class PersistenceHead(nn.Module):
    """The change predictor: (observed frames, the base's forecast) → last frame + change.

    Args:
        frames_in: frames of the observed window (``T``).
        channels: colour channels ``C``.
        hidden: channels of the hidden layer.
    """

    def __init__(self, frames_in: int, channels: int, hidden: int = DEFAULT_HIDDEN):
        super().__init__()
        self.frames_in, self.channels = frames_in, channels
        self.ctx = nn.Conv2d(frames_in * channels, hidden, 3, padding=1)  # (T−1 differences + last)·C → hidden
        self.chg = nn.Conv2d(channels, hidden, 3, padding=1, bias=False)  # the base's change, per future frame
        self.out = nn.Conv2d(hidden, channels, 3, padding=1)  # hidden → change; zero at the start
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def forward(self, x: Tensor, base: Tensor) -> Tensor:
        """``x``: B×T×C×H×W observed frames; ``base``: B×T_out×C×H×W forecast of the wrapped model."""
        b, t_out, c, h, w = base.shape
        last = x[:, -1:]
        context = torch.cat([x[:, :-1] - last, last], 1).flatten(1, 2)  # B×T·C×H×W
        shared = self.ctx(context)  # B×hidden×H×W, once for every future frame
        per_step = self.chg((base - last).flatten(0, 1)).view(b, t_out, -1, h, w)
        change = self.out(F.gelu(shared.unsqueeze(1) + per_step).flatten(0, 1)).view(b, t_out, c, h, w)
        return last + change


class WithPersistence(nn.Module):
    """A model of any registered architecture wrapped with a :class:`PersistenceHead`.

    Built from the config of ``<base>+persistence`` (the base's config plus ``head_hidden``); the
    base model is ``self.base``, the head ``self.head``. Reads ``frames_in`` frames, writes
    ``frames_out``."""

    arch = ""  # set per base by persistence_architecture
    recurrent = False  # a window model, whatever the base: the head needs the whole observed window

    def __init__(self, config: ModelConfig):
        super().__init__()
        spec = get_architecture(config.arch)
        base = ARCHITECTURES[spec.name[: -len(SUFFIX)]]
        own = config.to_dict()
        hidden = own.pop("head_hidden")
        self.config = config
        self.base = base.model(base.make_config(own))
        self.frames_in = int(getattr(config, spec.spec_keys["frames_in"]))
        self.frames_out = int(getattr(config, spec.spec_keys["frames_out"]))
        self.channels = int(getattr(config, spec.spec_keys["channels"]))
        self.head = PersistenceHead(self.frames_in, self.channels, hidden)

    def check_input(self, x: Tensor) -> None:
        """The wrapped architecture's input rules, and the window of ``frames_in`` frames."""
        raise_if_bad_frames(self, x)
        inner = getattr(self.base, "check_input", None)
        if inner is not None:
            inner(x)

    def forward(self, x: Tensor, n_out: int | None = None) -> Tensor:
        """``x``: B×frames_in×C×H×W → B×frames_out×C×H×W (``n_out``, if given, must be ``frames_out``)."""
        if n_out is not None and n_out != self.frames_out:
            raise ConfigError(
                f"{self.arch} writes {self.frames_out} frames per call, got n_out={n_out}; longer horizons by rollout"
            )
        raise_if_bad_frames(self, x)
        pred = self.base(x, self.frames_out) if getattr(self.base, "recurrent", False) else self.base(x)
        return self.head(x, pred.to(x.dtype))


def _training_forward(model: nn.Module, recipe: Any, seq: Tensor, progress: float) -> tuple[Tensor, Tensor, None]:
    """Training: the wrapped model's forecast of the future frames against the true ones (no extra loss)."""
    x = seq[:, : recipe.frames_in]
    return model(x), seq[:, recipe.frames_in : recipe.frames_in + recipe.frames_out], None


def persistence_architecture(base: str | Architecture) -> Architecture:
    """The registered architecture ``<base>+persistence`` (registered on first call)."""
    base = get_architecture(base) if isinstance(base, str) else base
    if base.name.endswith(SUFFIX):
        raise ConfigError(f"{base.name} already has a persistence head")
    name = base.name + SUFFIX
    if name in ARCHITECTURES:
        return ARCHITECTURES[name]
    cfg_cls = dataclasses.make_dataclass(
        base.config.__name__ + "WithPersistence",
        [("head_hidden", int, cfg_field(DEFAULT_HIDDEN, lo=1, hi=1024))],  # the head's hidden channels
        bases=(base.config,),
        namespace={"__module__": __name__, "__doc__": f"{base.config.__name__} plus the persistence head's width."},
    )
    model_cls = type(
        f"{base.model.__name__}WithPersistence",
        (WithPersistence,),
        {"arch": name, "__module__": __name__, "__doc__": f"{base.model.__name__} with a persistence head."},
    )
    globals()[cfg_cls.__name__], globals()[model_cls.__name__] = cfg_cls, model_cls  # picklable by name

    def prefixed(fn: Any) -> Any:
        return lambda cfg: [f"base.{p}" for p in fn(cfg)]

    return register(
        Architecture(
            name=name,
            model=model_cls,
            config=cfg_cls,
            recipe=base.recipe,
            any_frames=False,
            spec_keys=dict(base.spec_keys),
            size_multiple=base.size_multiple,
            size_reason=base.size_reason,
            channel_params=lambda cfg: {f"base.{k}": v for k, v in base.channel_params(cfg).items()},
            frames_params=lambda cfg: prefixed(base.frames_params)(cfg) + ["head.ctx."],
            resolution_params=prefixed(base.resolution_params),
            description=f"{base.description or base.name}, forecasting last frame + a learned change "
            "(stzoo.models.persistence)",
            training_forward=_training_forward,
            tiny_config=dict(base.tiny_config),
            activation_floats=_head_activations(base),
        )
    )


def _head_activations(base: Architecture) -> Any:
    """The base's activation estimate plus the head's: its two 3×3 convolutions at full size read the past frames,
    the last frame and the base's forecast (≤ 2·T + 1 frames of C channels) and hold ``head_hidden`` maps."""
    if base.activation_floats is None:
        return None
    channels_key = base.spec_keys.get("channels", "channels")

    def floats(cfg: Any, b: int, t: int, h: int, w: int) -> float:
        c = int(getattr(cfg, channels_key, 3))
        return float(base.activation_floats(cfg, b, t, h, w)) + 4.0 * b * h * w * (cfg.head_hidden + (2 * t + 1) * c)

    return floats


def _derive(base: Architecture) -> Architecture:
    return persistence_architecture(base)


DERIVED[SUFFIX] = _derive


def has_persistence_head(model: nn.Module) -> bool:
    """Whether ``model`` is a :class:`WithPersistence`."""
    return isinstance(model, WithPersistence)


def base_of(arch: str) -> str:
    """The base architecture id of ``arch`` (``"tau+persistence"`` → ``"tau"``; others unchanged)."""
    return arch[: -len(SUFFIX)] if arch.endswith(SUFFIX) else arch


def with_persistence(model: nn.Module, hidden: int = DEFAULT_HIDDEN) -> WithPersistence:
    """``model`` (any registered architecture, holding its ``config``) wrapped with a new persistence head.

    The wrapper's ``base`` holds a copy of ``model``'s weights; the head starts as copy-last, so the
    result forecasts exactly the last observed frame until it is trained. Device and dtype follow ``model``."""
    spec = get_architecture(model)
    config = getattr(model, "config", None)
    if config is None:
        raise ConfigError(f"{type(model).__name__} does not record its config (model.config)")
    arch = persistence_architecture(spec)
    wrapped = arch.model(arch.make_config({**config.to_dict(), "head_hidden": hidden}))
    wrapped.base.load_state_dict(model.state_dict())
    p = next(model.parameters(), None)
    return wrapped.to(p.device, p.dtype) if p is not None else wrapped
