"""The architecture protocol: what every ``models/<arch>.py`` declares, and the registry.

An architecture file holds, top to bottom:

1. a **config dataclass** (a :class:`ModelConfig` subclass) with commented defaults and, per field,
   the range of values it accepts (``cfg_field(16, lo=2, hi=1024)``). It round-trips through JSON
   (:meth:`ModelConfig.from_dict` / :meth:`ModelConfig.to_dict`) and is checked — types, ranges —
   before anything is allocated;
2. the modules, in the paper's order, with shape comments; the model takes its config as first
   argument and keeps it as ``model.config``;
3. an :class:`Architecture` declaration that generic code reads instead of branching on the
   architecture's name: the input contract (fixed or any number of frames, what height and width
   must be multiples of), the adaptation metadata (which weights touch the colour channels, which
   depend on the number of frames or the resolution) and the default training :class:`Recipe`.

``register(ARCHITECTURE)`` adds it to :data:`ARCHITECTURES`; code outside the package registers its
own the same way (``stzoo.register_architecture``; see ``examples/custom_architecture.py``).

This module imports nothing of stzoo but :mod:`stzoo.errors`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import numbers
import typing
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
from torch import nn

from stzoo.errors import ConfigError, InputError, UnknownModelError

__all__ = [
    "ModelConfig",
    "cfg_field",
    "Recipe",
    "ChannelParam",
    "Architecture",
    "ARCHITECTURES",
    "DERIVED",
    "register",
    "get_architecture",
    "check_frames",
    "MAX_PARAMETERS",
    "count_parameters",
    "parameters_of",
    "eval_mode",
    "load_state_dict_strict",
]

#: A model whose parameter count exceeds this is refused by :func:`stzoo.models.build_model` unless the
#: caller passes a larger ``max_parameters`` (4 GB of float32 weights; the paper-size zoo models are < 60 M).
MAX_PARAMETERS = 1_000_000_000


def cfg_field(
    default: Any, *, lo: float | None = None, hi: float | None = None, choices: tuple[Any, ...] | None = None
) -> Any:
    """A config field with its default and the values it accepts (``lo`` ≤ value ≤ ``hi``, or one of
    ``choices``). The checks run in :meth:`ModelConfig.validate`."""
    return field(default=default, metadata={"lo": lo, "hi": hi, "choices": choices})


def _is_int(v: Any) -> bool:
    return isinstance(v, numbers.Integral) and not isinstance(v, bool)


@dataclass
class ModelConfig:
    """Base of every architecture's config. Subclasses are dataclasses of plain JSON values."""

    arch: ClassVar[str] = ""

    def __post_init__(self) -> None:
        self.validate()

    @classmethod
    def from_dict(cls, d: dict[str, Any] | None) -> ModelConfig:
        """Build and check a config from a JSON-like dict; unknown keys are an error."""
        if d is None:
            d = {}
        if isinstance(d, cls):
            return d
        if not isinstance(d, dict):
            raise ConfigError(f"a {cls.arch or cls.__name__} config is a dict of settings, got {type(d).__name__}")
        names = [f.name for f in dataclasses.fields(cls)]
        unknown = sorted(set(d) - set(names), key=str)
        if unknown:
            raise ConfigError(
                f"{cls.arch or cls.__name__} does not take config key(s) {unknown}; it takes {sorted(names)}"
            )
        return cls(**d)

    def to_dict(self) -> dict[str, Any]:
        """Every field, as plain JSON values."""
        return dataclasses.asdict(self)

    def replace(self, **changes: Any) -> ModelConfig:
        """A copy with ``changes`` applied (checked again)."""
        return dataclasses.replace(self, **changes)

    def validate(self) -> None:
        """Check every field's type and range (``ConfigError`` naming the field); numpy scalars become
        Python numbers. Subclasses add cross-field rules after calling this."""
        hints = typing.get_type_hints(type(self))
        name = self.arch or type(self).__name__
        for f in dataclasses.fields(self):
            v, kind = getattr(self, f.name), hints.get(f.name)
            if kind is bool:
                if not isinstance(v, (bool,)) and not (hasattr(v, "dtype") and str(v.dtype) == "bool"):
                    raise ConfigError(f"{name} config {f.name!r} must be true or false, got {v!r}")
                v = bool(v)
            elif kind is int:
                if not _is_int(v):
                    raise ConfigError(
                        f"{name} config {f.name!r} must be a whole number, got {v!r} ({type(v).__name__})"
                    )
                v = int(v)
            elif kind is float:
                if isinstance(v, bool) or not isinstance(v, numbers.Real) or not math.isfinite(float(v)):
                    raise ConfigError(f"{name} config {f.name!r} must be a finite number, got {v!r}")
                v = float(v)
            elif kind is str and not isinstance(v, str):
                raise ConfigError(f"{name} config {f.name!r} must be a string, got {v!r}")
            object.__setattr__(self, f.name, v)
            lo, hi, choices = f.metadata.get("lo"), f.metadata.get("hi"), f.metadata.get("choices")
            if choices is not None and v not in choices:
                raise ConfigError(f"{name} config {f.name!r} must be one of {list(choices)}, got {v!r}")
            if (lo is not None and v < lo) or (hi is not None and v > hi):
                bounds = (
                    f"between {lo} and {hi}"
                    if lo is not None and hi is not None
                    else (f">= {lo}" if lo is not None else f"<= {hi}")
                )
                raise ConfigError(f"{name} config {f.name!r} must be {bounds}, got {v!r}")


@dataclass
class Recipe:
    """How an architecture is trained by default. Every field can be overridden (``stzoo train --lr``...)."""

    lr: float = 1e-3
    batch_size: int = 16
    epochs: int = 200
    epoch_size: int = 10000  # sequences per epoch (fresh ones every epoch)
    loss: str = "mse"  # "mse" or "mse+ddr"
    alpha: float = 0.1  # DDR weight
    weight_decay: float = 0.0
    scheduled_sampling: float = 0.0  # fraction of training over which teacher forcing decays 1 → 0
    frames_in: int = 10
    frames_out: int = 10
    seed: int = 0
    grad_clip: float = 1.0


@dataclass(frozen=True)
class ChannelParam:
    """A weight whose axis ``axis`` holds ``channels · group`` entries (colour channel major).

    ``mode`` is ``"in"`` for a layer that reads frames, ``"out"`` for one that writes them; ``group`` is
    the number of sub-channels per colour channel (e.g. ``patch_size²`` after a patch reshape)."""

    axis: int
    mode: str
    group: int = 1


@dataclass(frozen=True)
class Architecture:
    """What generic code (Predictor, adapt, finetune, export, train) needs to know about an architecture.

    Attributes:
        name: the architecture id in configs and manifests, e.g. ``"tau"``.
        model: the ``nn.Module`` class; ``model(config)`` builds it.
        config: its :class:`ModelConfig` subclass.
        recipe: default training recipe.
        any_frames: True if the model reads any number of frames and predicts any number (recurrent
            nets); False if one call reads and writes the fixed counts of its config (longer horizons
            by rollout).
        spec_keys: which config field holds each input-spec value (``frames_in``, ``frames_out``,
            ``channels``, ``height``, ``width``). Two spec values that share one field (TAU's ``frames``)
            must be equal.
        size_multiple: config → the number height and width must be multiples of.
        size_reason: config → why, in words ("TAU with N_S=4 downsamples by 4").
        channel_params: config → the weights that depend on the colour channel count.
        frames_params: config → name prefixes of weights whose shape depends on the number of frames
            (re-initialised by ``adapt`` when it changes).
        resolution_params: config → name prefixes of weights whose shape depends on height/width.
        description: one line for people.
        training_forward: for an architecture with its own training regime (PredRNN-V2's reverse
            scheduled sampling and decoupling loss, ...): ``training_forward(model, recipe, seq, progress)
            -> (prediction, target, extra_loss or None)`` with ``seq`` the B×(T_in+T_out)×C×H×W float
            batch and ``progress`` the fraction of training done (0 → 1). The training code applies the
            recipe's loss (MSE / MSE+DDR) to prediction and target and adds ``extra_loss``, so models
            never import the training layer. ``None``: the generic forward of
            :func:`stzoo.training.train.compute_loss` (scheduled sampling for models that take ``teacher_mask``).
        activation_floats: ``(config, B, T, H, W) -> floats`` a conservative estimate of the floats alive at
            the peak of one forward pass on B×T×C×H×W input (activations, states and output), from the
            protocol's widths; what :meth:`estimate_activation_bytes` multiplies by the element size, and
            what inference checks before it runs a model (``None``: no estimate, not checked). Calibrate it
            on measured peaks and keep it above them: refusing an input that would fit is the lesser harm.
        tiny_config: the smallest config (a plain JSON dict, every input-spec field included) that still runs
            every code path of the architecture in well under a second: the contract tests
            (``tests/models/test_contract.py``) build each registered architecture from it. ``{}`` means the
            defaults (too large for a quick test: declare one).
    """

    name: str
    model: type[nn.Module]
    config: type[ModelConfig]
    recipe: Recipe
    any_frames: bool
    spec_keys: dict[str, str]
    size_multiple: Callable[[Any], int]
    size_reason: Callable[[Any], str]
    channel_params: Callable[[Any], dict[str, ChannelParam]]
    frames_params: Callable[[Any], list[str]] = lambda cfg: []
    resolution_params: Callable[[Any], list[str]] = lambda cfg: []
    description: str = ""
    training_forward: Callable[..., tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]] | None = None
    tiny_config: dict[str, Any] = field(default_factory=dict)
    activation_floats: Callable[[Any, int, int, int, int], float] | None = None

    def estimate_activation_bytes(self, config: Any, shape: tuple[int, ...], element_bytes: int = 4) -> int | None:
        """Bytes of memory one forward pass on a B×T×C×H×W input of ``shape`` needs at its peak, by the
        conservative :attr:`activation_floats` estimate (``None`` when the architecture declares none).
        Pure arithmetic on Python ints: nothing is allocated, any size is answered at once."""
        if self.activation_floats is None:
            return None
        b, t, _c, h, w = (int(s) for s in shape)
        return int(math.ceil(float(self.activation_floats(config, b, t, h, w)))) * int(element_bytes)

    def make_config(self, config: dict[str, Any] | ModelConfig | None) -> ModelConfig:
        """The checked config object for ``config`` (a dict, a config object or None for defaults)."""
        if isinstance(config, ModelConfig):
            if not isinstance(config, self.config):
                raise ConfigError(f"{self.name} takes a {self.config.__name__}, got {type(config).__name__}")
            return config
        return self.config.from_dict(config)


#: architecture id → its declaration
ARCHITECTURES: dict[str, Architecture] = {}

#: suffix → factory: an id ``<base><suffix>`` (e.g. ``tau+persistence``) not yet registered is made by
#: ``factory(ARCHITECTURES[base])`` on first use (see :mod:`stzoo.models.persistence`)
DERIVED: dict[str, Callable[[Architecture], Architecture]] = {}


def register(arch: Architecture, *, replace: bool = False) -> Architecture:
    """Add ``arch`` to the registry (``replace=True`` to overwrite an existing id). Returns it."""
    if not isinstance(arch, Architecture):
        raise ConfigError(f"register() takes an Architecture, got {type(arch).__name__}")
    if arch.name in ARCHITECTURES and not replace and ARCHITECTURES[arch.name] is not arch:
        raise ConfigError(f"architecture {arch.name!r} is already registered; pass replace=True to overwrite it")
    missing = {"frames_in", "frames_out", "channels", "height", "width"} - set(arch.spec_keys)
    if missing:
        raise ConfigError(f"architecture {arch.name!r}: spec_keys lacks {sorted(missing)}")
    fields_ = {f.name for f in dataclasses.fields(arch.config)}
    stray = sorted(set(arch.spec_keys.values()) - fields_)
    if stray:
        raise ConfigError(f"architecture {arch.name!r}: spec_keys name config fields it does not have: {stray}")
    arch.config.arch = arch.name
    ARCHITECTURES[arch.name] = arch
    return arch


def get_architecture(name: Any) -> Architecture:
    """The registered :class:`Architecture` ``name`` (or of a model instance / config object)."""
    if isinstance(name, nn.Module):
        name = getattr(name, "arch", None)
    elif isinstance(name, ModelConfig):
        name = name.arch
    if isinstance(name, str) and name not in ARCHITECTURES:
        for suffix, make in DERIVED.items():
            if name.endswith(suffix) and name[: -len(suffix)] in ARCHITECTURES:
                return make(ARCHITECTURES[name[: -len(suffix)]])
    if not isinstance(name, str) or name not in ARCHITECTURES:
        raise UnknownModelError(f"unknown architecture {name!r}; known: {', '.join(sorted(ARCHITECTURES))}")
    return ARCHITECTURES[name]


def check_frames(arch: Architecture, config: ModelConfig, shape: tuple[int, ...], *, what: str = "input") -> list[str]:
    """Every rule of ``arch``'s input contract that a B×T×C×H×W ``shape`` breaks, one sentence each
    ([] when it fits). Generic: reads only the declaration."""
    if len(shape) != 5:
        return [f"{what} must be B×T×C×H×W (5 axes), got shape {tuple(shape)}"]
    _, t, c, h, w = shape
    problems = []
    want_t = getattr(config, arch.spec_keys["frames_in"])
    if arch.any_frames:
        if t < 1:
            problems.append(f"{what} needs at least one frame, got {t}")
    elif t != want_t:
        want_out = getattr(config, arch.spec_keys["frames_out"])
        problems.append(f"this {arch.name} maps {want_t} frames to {want_out} per call; got {t} frames")
    want_c = getattr(config, arch.spec_keys["channels"])
    if c != want_c:
        problems.append(f"this {arch.name} expects {want_c} channel(s), got {c}")
    m = arch.size_multiple(config)
    if h < 1 or w < 1 or h % m or w % m:
        problems.append(f"{arch.size_reason(config)}: height and width must be divisible by {m}, got {h}×{w}")
    return problems


def raise_if_bad_frames(model: nn.Module, x: torch.Tensor) -> None:
    """``check_frames`` for a model's own forward: one InputError listing every broken rule."""
    arch = get_architecture(model)
    problems = check_frames(arch, model.config, tuple(x.shape))
    if problems:
        raise InputError("; ".join(problems))


def count_parameters(model: nn.Module) -> int:
    """Number of parameter values of ``model``."""
    return sum(p.numel() for p in model.parameters())


def parameters_of(arch: Architecture, config: ModelConfig) -> int:
    """Parameter count of ``arch`` with ``config``, counted on the meta device (nothing allocated)."""
    with torch.device("meta"):
        return count_parameters(arch.model(config))


@contextlib.contextmanager
def eval_mode(model: nn.Module) -> Iterator[nn.Module]:
    """``with eval_mode(model):`` runs the block with ``model.eval()`` and restores its train/eval mode
    afterwards, also when the block raises."""
    was_training = model.training
    model.eval()
    try:
        yield model
    finally:
        model.train(was_training)


def load_state_dict_strict(model: nn.Module, state: dict[str, torch.Tensor], source: str) -> None:
    """Load ``state`` into ``model`` requiring every key to match, with a readable error."""
    own = model.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    wrong = sorted(k for k in set(own) & set(state) if own[k].shape != state[k].shape)
    if missing or unexpected or wrong:
        parts = []
        if missing:
            parts.append(f"missing {len(missing)} key(s), e.g. {missing[:3]}")
        if unexpected:
            parts.append(f"unexpected {len(unexpected)} key(s), e.g. {unexpected[:3]}")
        if wrong:
            k = wrong[0]
            parts.append(
                f"{len(wrong)} shape mismatch(es), e.g. {k}: file {tuple(state[k].shape)} vs "
                f"model {tuple(own[k].shape)}"
            )
        raise InputError(f"weights in {source} do not fit the model: " + "; ".join(parts))
    model.load_state_dict({k: v.to(own[k].dtype) for k, v in state.items()})
