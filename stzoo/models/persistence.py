"""A persistence head for any architecture: forecast = last observed frame + a learned change.

On real footage at video frame rates, repeating the last observed frame ("copy-last", persistence)
is a strong forecast; a model trained on other data (digits, simulations) starts far worse than it.
Wrapping a model with this head makes the *untrained* model exactly copy-last, so fine-tuning can
only move away from persistence where training finds something better. The head (version 3, the default) works
on each colour channel alike (any channel count), from the last ``k = min(frames_in, 3)`` observed frames::

    base(x)    = the wrapped architecture's forecast, B×T_out×C×H×W (any architecture, unchanged)
    last       = x[:, -1]                                   the last observed frame
    h          = feat(last, x_{-2} − last, …, x_{-k} − last)  two 3×3 convolutions, ``head_hidden`` wide
    kernel_t   = softmax(logits_t(h))                        per pixel: weights over the 3×3 neighbourhoods
                                                             of the k last frames (9·k, summing to 1)
    change_t   = amount_t(h) ⊙ Σ_j kernel_t,j ⊙ (neighbour_j − last) + gate · (base_t − last)
    ŷ_t        = last + change_t

``logits`` and ``amount`` are 1×1 convolutions that start at zero, and ``gate`` a scalar at zero: ``ŷ_t = last``
before any training, whatever ``base`` computes; the gradient of ``amount`` is not zero, so the first steps learn
the change. Each future frame moves each pixel towards a learned, content-dependent mix of where it and its
neighbours were (``amount`` = 1: exactly that mix; between 0 and 1: part way): motion, temporal smoothing and
the spatial blur that hedges an uncertain future are all such mixes, and a uniform still scene stays as it is.
On real footage whose future regime differs from the one trained on (a person walking, then an empty room with
compression noise), this per-pixel rule carried over where a learned global change did not (docs/finetuning.md).
A mix reaches one pixel from where a pixel was, whatever the horizon: faster motion is the base's to add, through
the gate (mixing the forecast frame by frame instead reached further, but compounded the blur over empty scenes).
The training loss adds ``SSIM_WEIGHT`` · (1 − SSIM) of the forecast to the recipe's (frames of 11×11 or more; the
wrapper's ``ssim_loss_weight``, read by :func:`stzoo.training.losses.compute_loss`), so the smoothing it learns does
not buy MSE with structure. The gate lets the base's forecast in only as far as
training finds it useful. Nothing here depends on the wrapped architecture.

With ``use_base`` off (or, in eval mode, with the gate at zero) the base is not run at all: fine-tuning
first trains the head alone (cheap: a few small convolutions; see :mod:`stzoo.training.finetune_run`), then
the base with it; a folder whose gate stayed at zero forecasts at the head's cost.

Earlier versions load as they were written (``head_version`` in the config; absent: 1):

* version 2: ``change_t = out(GELU(ctx(x_0 − last, …, x_{T−2} − last) ⊙ (1 + cnt(last)) ⊙ (1 + step_t) + gate ·
  chg(base_t − last)))`` (3×3 convolutions, ``out`` zero at the start, no biases on the motion path: a still window
  is forecast still);
* version 1: ``change_t = out(GELU(ctx(x_0 − last, …, x_{T−2} − last, last) + chg(base_t − last)))``, ``out`` with a
  bias.

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
from einops import rearrange
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
DEFAULT_HIDDEN = 16
#: the head a new wrapper gets: 3 (a per-pixel kernel over the last frames); 2: a motion-gated change; 1: the first
HEAD_VERSION = 3
#: version 3 reads the 3×3 neighbourhoods of at most this many of the last observed frames
KERNEL_FRAMES = 3
#: version 3's training loss adds this times (1 − SSIM) of the forecast (frames of at least 11×11)
SSIM_WEIGHT = 0.003


class PersistenceHead(nn.Module):
    """The change predictor: (observed frames, the base's forecast) → last frame + change.

    Args:
        frames_in: frames of the observed window (``T``).
        channels: colour channels ``C``.
        hidden: channels of the hidden layer.
        frames_out: future frames (``T_out``; versions 2 and 3 have terms per future frame).
        version: 3 (default), 2 or 1 (heads of folders written before), see the module's doc.
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
        t_out = frames_out or frames_in
        if version >= 3:
            # per channel (shared by every channel, so any channel count): features of the last frames → a
            # per-pixel kernel over their 3×3 neighbourhoods and how far to move towards it, per future frame
            self.taps = min(frames_in, KERNEL_FRAMES)
            self.feat = nn.Sequential(
                nn.Conv2d(self.taps, hidden, 3, padding=1, padding_mode="replicate"),
                nn.GELU(),
                nn.Conv2d(hidden, hidden, 3, padding=1, padding_mode="replicate"),
                nn.GELU(),
            )
            self.logits = nn.Conv2d(hidden, t_out * self.taps * 9, 1)  # zero at the start: a uniform kernel
            self.amount = nn.Conv2d(hidden, t_out, 1)  # zero at the start: no change
            self.gate = nn.Parameter(torch.zeros(()))  # how much of the base's change to use; none at the start
            for conv in (self.logits, self.amount):
                nn.init.zeros_(conv.weight)
                nn.init.zeros_(conv.bias)
            return
        self.chg = nn.Conv2d(channels, hidden, 3, padding=1, bias=False)  # the base's change, per future frame
        if version == 2:
            if frames_in < 2:
                raise ConfigError(
                    f"persistence head version 2 reads the observed motion: needs frames_in >= 2, got {frames_in}"
                )
            # no biases on the path from the observed differences: no motion in, no change out
            self.ctx = nn.Conv2d((frames_in - 1) * channels, hidden, 3, padding=1, bias=False)
            self.cnt = nn.Conv2d(channels, hidden, 3, padding=1)  # the last frame's content scales it; 0 at first
            self.steps = nn.Parameter(torch.zeros(t_out, hidden, 1, 1))  # per future frame
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
        """Whether :meth:`forward` reads the base's forecast. A version-2 or -3 head does not with ``use_base`` off,
        nor in eval mode with its gate at zero (the base's change would be multiplied by zero), so the base
        need not run; in training mode it does (the gate's gradient needs the base's change)."""
        if self.version < 2:
            return True
        if not self.use_base:
            return False
        if self.training or torch.compiler.is_compiling() or torch.jit.is_tracing():  # export: no data branch
            return True
        return bool(self.gate.detach() != 0)

    def forward(self, x: Tensor, base: Tensor | None) -> Tensor:
        """``x``: B×T×C×H×W observed frames; ``base``: B×T_out×C×H×W forecast of the wrapped model (``None``
        allowed where :attr:`needs_base` is False)."""
        b, _, c, h, w = x.shape
        last = x[:, -1:]
        if self.version >= 3:
            return self._kernel_forward(x, base)
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

    def _kernel_forward(self, x: Tensor, base: Tensor | None) -> Tensor:
        """Version 3: ŷ_t = last + amount_t ⊙ Σ_j kernel_t,j ⊙ (neighbour_j − last) over the 3×3 neighbourhoods of
        the last k observed frames, plus gate · (base_t − last)."""
        b, _, c, h, w = x.shape
        t_out, k = self.amount.out_channels, self.taps
        seen = rearrange(x[:, -k:], "b k c h w -> (b c) k h w")
        last = seen[:, -1:]
        hid = self.feat(torch.cat([last, seen[:, :-1] - last], 1))  # (B·C)×hidden×H×W
        kernel = rearrange(self.logits(hid), "n (t j) h w -> n t j h w", t=t_out).softmax(2)
        near = rearrange(_neighbours(seen), "n j (h w) -> n 1 j h w", h=h) - last.unsqueeze(1)
        change = rearrange(self.amount(hid) * (kernel * near).sum(2), "(b c) t h w -> b t c h w", b=b)
        if base is not None and self.use_base:
            change = change + self.gate * (base - x[:, -1:])
        return x[:, -1:] + change


def _neighbours(frames: Tensor) -> Tensor:
    """N×k×H×W → N×(k·9)×(H·W): every pixel's 3×3 neighbourhood in each frame, borders replicated."""
    return F.unfold(F.pad(frames, (1, 1, 1, 1), mode="replicate"), 3)


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
        #: read by stzoo.training.losses.compute_loss: version 3 trains on MSE + this · (1 − SSIM)
        self.ssim_loss_weight = SSIM_WEIGHT if version >= 3 else 0.0

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


#: the head's weights whose shapes depend on the numbers of frames (versions 2 and 3)
_HEAD_FRAMES_PARAMS = ["head.ctx.", "head.steps", "head.feat.0.", "head.logits.", "head.amount."]


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
            ("head_version", int, cfg_field(1, choices=(1, 2, 3))),  # absent from a config: 1, the first head
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
            frames_params=lambda cfg: prefixed(base.frames_params)(cfg) + _HEAD_FRAMES_PARAMS,
            resolution_params=prefixed(base.resolution_params),
            description=f"{base.description or base.name}, forecasting last frame + a learned change "
            "(stzoo.models.persistence)",
            training_forward=_training_forward,
            tiny_config=dict(base.tiny_config),
            activation_floats=_head_activations(base),
        )
    )


def _head_activations(base: Architecture) -> Any:
    """The base's activation estimate plus the head's: it reads the past frames, the last frame and the base's
    forecast (≤ 2·T + 1 frames of C channels); version 3 holds, per channel, a few ``head_hidden``-wide maps and
    a kernel over 9·3 neighbours per future frame; versions 1–2 ``head_hidden`` maps per future frame and one shared."""
    if base.activation_floats is None:
        return None
    channels_key = base.spec_keys.get("channels", "channels")

    def floats(cfg: Any, b: int, t: int, h: int, w: int) -> float:
        c = int(getattr(cfg, channels_key, 3))
        if getattr(cfg, "head_version", 1) >= 3:  # per channel: hidden maps, and the kernels and neighbours per frame
            held = c * (4 * cfg.head_hidden + 4 * t * 9 * KERNEL_FRAMES)
        else:
            held = cfg.head_hidden * (t + 1)
        return float(base.activation_floats(cfg, b, t, h, w)) + 4.0 * b * h * w * (held + (2 * t + 1) * c)

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
