"""A persistence head for any architecture: forecast = last observed frame + a learned change.

On real footage at video frame rates, repeating the last observed frame ("copy-last", persistence)
is a strong forecast; a model trained on other data (digits, simulations) starts far worse than it.
Wrapping a model with this head makes the *untrained* model exactly copy-last, so fine-tuning can
only move away from persistence where training finds something better::

    base(x)  = the wrapped architecture's forecast, B×T_out×C×H×W (any architecture, unchanged)
    last     = x[:, -1]                                  the last observed frame
    motion   = ctx(x_0 − last, …, x_{T−2} − last) ⊙ (1 + cnt(last))     what moved, scaled by what is there
    change_t = out(GELU(motion ⊙ (1 + step_t) + gate · chg(base_t − last)))
    ŷ_t      = last + change_t

``ctx``, ``cnt``, ``chg`` and ``out`` are 3×3 convolutions ``head_hidden`` wide, ``step_t`` a learned vector per
future frame (the change may grow with the horizon) and ``gate`` a learned scalar. ``out`` starts at zero, so
``ŷ_t = last`` before any training, whatever ``base`` computes; its gradient is not zero, so the first steps
learn the change. ``ctx`` and ``out`` have no bias and GELU(0) = 0, so **where nothing moved in the observed
window, the head forecasts no change** (exactly, while the gate is zero): a static scene stays as it is. The gate
starts at zero: the base's forecast enters only as far as training finds it useful. Nothing here depends on
the wrapped architecture.

With ``use_base`` off (or, in eval mode, with the gate at zero) the base is not run at all: fine-tuning
first trains the head alone (cheap: a few small convolutions; see :mod:`stzoo.training.finetune_run`), then
the base with it; a folder whose gate stayed at zero forecasts at the head's cost.

``head_version`` 1 (folders written before version 2; the config default) is the first head:
``change_t = out(GELU(ctx(x_0 − last, …, x_{T−2} − last, last) + chg(base_t − last)))``, ``out`` with a bias.

The wrapped model is a registered architecture of its own, named ``<base>+persistence`` (e.g.
``tau+persistence``), built on first use by :func:`stzoo.models.get_architecture`: its config is the
base's config plus ``head_hidden`` and ``head_version``, so a folder written by ``save_pretrained`` records the head in
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
    "HEAD_VERSION",
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
#: the head a new wrapper gets: 2 (per-future-frame terms and a gated base path); 1: the first head
HEAD_VERSION = 2


class PersistenceHead(nn.Module):
    """The change predictor: (observed frames, the base's forecast) → last frame + change.

    Args:
        frames_in: frames of the observed window (``T``).
        channels: colour channels ``C``.
        hidden: channels of the hidden layer.
        frames_out: future frames (``T_out``; version 2 has a term per future frame).
        version: 2 (default) or 1 (the first head; folders written before version 2), see the module's doc.
    """

    def __init__(
        self,
        frames_in: int,
        channels: int,
        hidden: int = DEFAULT_HIDDEN,
        frames_out: int | None = None,
        version: int = HEAD_VERSION,
    ):
        super().__init__()
        self.frames_in, self.channels, self.version = frames_in, channels, version
        #: whether the base's forecast is computed and used (fine-tuning's stage 1 trains the head without it)
        self.use_base = True
        self.chg = nn.Conv2d(channels, hidden, 3, padding=1, bias=False)  # the base's change, per future frame
        if version >= 2:
            if frames_in < 2:
                raise ConfigError(
                    f"persistence head version 2 reads the observed motion: needs frames_in >= 2, got {frames_in}"
                )
            # no biases on the path from the observed differences: no motion in, no change out
            self.ctx = nn.Conv2d((frames_in - 1) * channels, hidden, 3, padding=1, bias=False)
            self.cnt = nn.Conv2d(channels, hidden, 3, padding=1)  # the last frame's content scales it; 0 at first
            self.steps = nn.Parameter(torch.zeros(frames_out or frames_in, hidden, 1, 1))  # per future frame
            self.gate = nn.Parameter(torch.zeros(()))  # how much of the base's change to use; none at the start
            self.out = nn.Conv2d(hidden, channels, 3, padding=1, bias=False)  # hidden → change; zero at the start
            nn.init.zeros_(self.cnt.weight)
            nn.init.zeros_(self.cnt.bias)
        else:
            self.ctx = nn.Conv2d(frames_in * channels, hidden, 3, padding=1)  # (T−1 differences + last)·C → hidden
            self.out = nn.Conv2d(hidden, channels, 3, padding=1)
            nn.init.zeros_(self.out.bias)
        nn.init.zeros_(self.out.weight)

    @property
    def needs_base(self) -> bool:
        """Whether :meth:`forward` reads the base's forecast. A version-2 head does not with ``use_base`` off,
        nor in eval mode with its gate at zero (the base's change would be multiplied by zero), so the base
        need not run; in training mode it does (the gate's gradient needs the base's change)."""
        if self.version < 2 or self.training:
            return self.version < 2 or self.use_base
        if not self.use_base:
            return False
        if torch.compiler.is_compiling() or torch.jit.is_tracing():  # export: no data-dependent branch
            return True
        return bool(self.gate.detach() != 0)

    def forward(self, x: Tensor, base: Tensor | None) -> Tensor:
        """``x``: B×T×C×H×W observed frames; ``base``: B×T_out×C×H×W forecast of the wrapped model (``None``
        allowed where :attr:`needs_base` is False)."""
        b, _, c, h, w = x.shape
        last = x[:, -1:]
        if self.version >= 2:
            t_out = self.steps.shape[0]
            hid = self.ctx((x[:, :-1] - last).flatten(1, 2)) * (1 + self.cnt(last[:, 0]))  # B×hidden×H×W
            hid = hid.unsqueeze(1) * (1 + self.steps.unsqueeze(0))  # B×T_out×hidden×H×W
            if base is not None and self.use_base:
                hid = hid + self.gate * self.chg((base - last).flatten(0, 1)).view(b, t_out, -1, h, w)
        else:
            assert base is not None
            t_out = base.shape[1]
            context = torch.cat([x[:, :-1] - last, last], 1).flatten(1, 2)  # B×T·C×H×W
            hid = self.ctx(context).unsqueeze(1) + self.chg((base - last).flatten(0, 1)).view(b, t_out, -1, h, w)
        change = self.out(F.gelu(hid).flatten(0, 1)).view(b, t_out, c, h, w)
        return last + change


class WithPersistence(nn.Module):
    """A model of any registered architecture wrapped with a :class:`PersistenceHead`.

    Built from the config of ``<base>+persistence`` (the base's config plus ``head_hidden``, ``head_version``); the
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
        version = own.pop("head_version", 1)
        self.config = config
        self.base = base.model(base.make_config(own))
        self.frames_in = int(getattr(config, spec.spec_keys["frames_in"]))
        self.frames_out = int(getattr(config, spec.spec_keys["frames_out"]))
        self.channels = int(getattr(config, spec.spec_keys["channels"]))
        self.head = PersistenceHead(self.frames_in, self.channels, hidden, self.frames_out, version)

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
        if not self.head.needs_base:  # the head alone (its base gate at zero and turned off): skip the base
            return self.head(x, None)
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
        [
            ("head_hidden", int, cfg_field(DEFAULT_HIDDEN, lo=1, hi=1024)),  # the head's hidden channels
            ("head_version", int, cfg_field(1, choices=(1, 2))),  # absent from a config: 1, the first head
        ],
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
            frames_params=lambda cfg: prefixed(base.frames_params)(cfg) + ["head.ctx.", "head.steps"],
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
    the last frame and the base's forecast (≤ 2·T + 1 frames of C channels) and hold ``head_hidden`` maps per
    future frame and one shared."""
    if base.activation_floats is None:
        return None
    channels_key = base.spec_keys.get("channels", "channels")

    def floats(cfg: Any, b: int, t: int, h: int, w: int) -> float:
        c = int(getattr(cfg, channels_key, 3))
        return float(base.activation_floats(cfg, b, t, h, w)) + 4.0 * b * h * w * (
            cfg.head_hidden * (t + 1) + (2 * t + 1) * c
        )

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


def with_persistence(model: nn.Module, hidden: int = DEFAULT_HIDDEN, version: int = HEAD_VERSION) -> WithPersistence:
    """``model`` (any registered architecture, holding its ``config``) wrapped with a new persistence head.

    The wrapper's ``base`` holds a copy of ``model``'s weights; the head starts as copy-last, so the
    result forecasts exactly the last observed frame until it is trained. Device and dtype follow ``model``."""
    spec = get_architecture(model)
    config = getattr(model, "config", None)
    if config is None:
        raise ConfigError(f"{type(model).__name__} does not record its config (model.config)")
    arch = persistence_architecture(spec)
    wrapped = arch.model(arch.make_config({**config.to_dict(), "head_hidden": hidden, "head_version": version}))
    wrapped.base.load_state_dict(model.state_dict())
    p = next(model.parameters(), None)
    return wrapped.to(p.device, p.dtype) if p is not None else wrapped
