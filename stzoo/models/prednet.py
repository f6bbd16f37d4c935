"""PredNet (Lotter, Kreiman & Cox, ICLR 2017): deep predictive coding, one frame ahead per step.

A stack of ``L`` layers. Layer ``l`` works at ``H/2^l × W/2^l`` and holds four maps (``a_l`` channels:
the frame's for ``l = 0``, ``a_channels[l−1]`` above; ``r_l = r_channels[l]``)::

    R_l^t      representation: a ConvLSTM over [R_l^{t−1}, E_l^{t−1}, Upsample(R_{l+1}^t)]   B×r_l×H_l×W_l
    Â_l^t      prediction:     act(Conv(R_l^t))   (layer 0: ReLU, then clamped to ≤ pixel_max)  B×a_l×H_l×W_l
    A_l^t      target:         the frame (l = 0), MaxPool(act(Conv(E_{l−1}^t))) above           B×a_l×H_l×W_l
    E_l^t      error:          [err(Â_l − A_l) ; err(A_l − Â_l)]  (err = ReLU, or tanh)         B×2a_l×H_l×W_l

Each time step first updates the representations top-down (``R_{L−1}`` first; the ConvLSTM uses the
hard sigmoid ``clamp(0.2·x + 0.5, 0, 1)`` for its gates and tanh for the cell, as the Keras original)::

    [i, f, g, o] = W_r * R_l^{t−1} + W_e * E_l^{t−1} + W_u * Upsample(R_{l+1}^t) + b
    C_l^t = hσ(f) ∘ C_l^{t−1} + hσ(i) ∘ tanh(g)         R_l^t = hσ(o) ∘ tanh(C_l^t)

then makes its predictions and errors bottom-up from the frame ``A_0^t``. ``Â_0^t`` is the prediction of
frame ``t``, made before it is seen. The error of an ``a_l``-channel map is stored channel by channel
(``[err(Â−A), err(A−Â)]`` for channel 0, then channel 1, …) so that the colour channels of ``E_0`` are
contiguous blocks (what ``adapt(channels=…)`` converts); ``W_r``, ``W_e``, ``W_u`` are one convolution
per gate over the concatenation ``[R, E, Up(R)]`` in OpenSTL, one per input here for the same reason.

**Steps in stzoo's protocol.** :meth:`PredNet.step` reads frame ``t`` and returns ``Â_0^{t+1}``, the
prediction of the next frame (it computes ``E^t`` and then ``R^{t+1}``); :meth:`PredNet.init_states` already
holds ``R^0`` (the first update, from zero states) and ``Â_0^0``.

**Rolling out past the observed frames (the published files' convention).** OpenSTL (like the original
PredNet's ``extrap_start_time``) keeps running the same step after the last observed frame, with the
model's *previous* prediction standing in for the frame it has not seen: at step ``t ≥ T`` the target
``A_0^t`` is ``Â_0^{t−1}``, not ``Â_0^t``. The forecast of ``predict(horizon=N)`` after ``T`` frames is
``Â_0^T … Â_0^{T+N−1}``, exactly OpenSTL's ``PredNet._predict`` (``extrapolation=True``, outputs
``T … T+N−1``) for ``N = frames_out``, and the same rule continued for any other ``N``.
:meth:`PredNet.rollout_step` is that step (the frame it is given is ignored), so a
:class:`stzoo.Forecaster` streams it with no special case. ``T`` is the number of frames given, any ``T ≥ 1``.

Layout and defaults follow OpenSTL's ``PredNet_Model`` (``openstl/models/prednet_model.py`` in OpenSTL
v0.3.0; its ``configs/mmnist/PredNet.py``: ``stack_sizes = R_stack_sizes = (1, 32, 64, 128, 256)``, every
kernel 3×3): 12,510,842 parameters, as many as OpenSTL's (its table says 12.5M; 12,515,244 for 3
channels). OpenSTL sets ``R_0``'s width
to the frame's channel count; here it is a setting of its own (``r_channels[0]``), so converting a model
between grey and colour (``adapt``) keeps it. Conv biases start at zero, as OpenSTL's.

Training: OpenSTL minimises the mean layer-0 error ``E_0`` (``weight_mode='L_0'``: ``|Â_0 − A_0|/2`` per
value, time step 0 weighted 0) over all ``T_in + T_out`` frames with every frame observed. stzoo's default
recipe trains the same teacher-forced one-step predictions ``Â_0^1 … Â_0^{T−1}`` with the recipe's loss
(MSE by default; :func:`prednet_training_forward`). This module does no I/O.
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from stzoo.errors import ConfigError, InputError
from stzoo.models.base import (
    Architecture,
    ChannelParam,
    ModelConfig,
    Recipe,
    cfg_field,
    raise_if_bad_frames,
    register,
)

__all__ = [
    "PredNet",
    "PredNetConfig",
    "PredNetLayer",
    "GateConv",
    "PREDNET_RECIPE",
    "prednet_training_forward",
    "ARCHITECTURE",
]


def _int_tuple(name: str, value: Any, lo: int = 1, hi: int = 4096) -> tuple[int, ...]:
    """A list / tuple of 0 to 8 whole numbers in ``lo`` … ``hi`` (JSON gives lists) as a tuple of ints."""
    ok = (
        isinstance(value, (list, tuple))
        and len(value) <= 8
        and all(isinstance(v, numbers.Integral) and not isinstance(v, bool) and lo <= v <= hi for v in value)
    )
    if not ok:
        raise ConfigError(
            f"prednet config {name!r} must list up to 8 whole numbers between {lo} and {hi}, got {value!r}"
        )
    return tuple(int(v) for v in value)


@dataclass
class PredNetConfig(ModelConfig):
    """PredNet's settings. Defaults: OpenSTL's ``configs/mmnist/PredNet.py`` (12,510,842 parameters)."""

    frames_in: int = cfg_field(10, lo=1, hi=1000)  # frames read by default (any T runs)
    frames_out: int = cfg_field(10, lo=1, hi=1000)  # frames predicted by default (any horizon runs)
    channels: int = cfg_field(1, lo=1, hi=64)  # colour channels of a frame (a_0; OpenSTL's stack_sizes[0])
    height: int = cfg_field(64, lo=1, hi=8192)  # training size (any multiple of 2^(L−1) runs)
    width: int = cfg_field(64, lo=1, hi=8192)  # (training width)
    a_channels: tuple[int, ...] = cfg_field((32, 64, 128, 256))  # a_l of layers 1 … L−1 (OpenSTL's stack_sizes[1:])
    r_channels: tuple[int, ...] = cfg_field((1, 32, 64, 128, 256))  # r_l of layers 0 … L−1 (R_stack_sizes)
    a_filter: tuple[int, ...] = cfg_field((3, 3, 3, 3))  # kernel of the E_l → A_{l+1} conv, l < L−1 (A_filt_sizes)
    ahat_filter: tuple[int, ...] = cfg_field((3, 3, 3, 3, 3))  # kernel of the R_l → Â_l conv (Ahat_filt_sizes)
    r_filter: tuple[int, ...] = cfg_field((3, 3, 3, 3, 3))  # kernel of the ConvLSTM of each layer (R_filt_sizes)
    pixel_max: float = cfg_field(1.0, lo=1e-6, hi=1e6)  # Â_0 is clamped to at most this (the frames' maximum)
    error_activation: str = cfg_field("relu", choices=("relu", "tanh"))  # err() of E_l = [err(Â−A); err(A−Â)]
    a_activation: str = cfg_field("relu", choices=("relu", "tanh"))  # act() of A_l and Â_l above layer 0

    def validate(self) -> None:
        for name in ("a_channels", "r_channels", "a_filter", "ahat_filter", "r_filter"):
            hi = 31 if name.endswith("filter") else 4096
            object.__setattr__(self, name, _int_tuple(name, getattr(self, name), hi=hi))
        super().validate()
        n = len(self.r_channels)
        if n < 1:
            raise ConfigError("prednet config 'r_channels' must list at least one layer")
        want = {"a_channels": n - 1, "a_filter": n - 1, "ahat_filter": n, "r_filter": n}
        bad = [f"{k} has {len(getattr(self, k))}" for k, v in want.items() if len(getattr(self, k)) != v]
        if bad:
            raise ConfigError(
                f"a PredNet with {n} layer(s) (len(r_channels)) needs {n - 1} entries in a_channels and a_filter "
                f"and {n} in ahat_filter and r_filter; " + ", ".join(bad)
            )
        even = [k for k in ("a_filter", "ahat_filter", "r_filter") if any(v % 2 == 0 for v in getattr(self, k))]
        if even:
            raise ConfigError(f"PredNet's kernels must be odd so every map keeps its size; {even} has an even one")
        m = size_multiple(self)
        if self.height % m or self.width % m:
            raise ConfigError(
                f"{_reason(self)}: the training size must be a multiple of {m}, got {self.height}×{self.width}"
            )

    @property
    def layers(self) -> int:
        """L, the number of layers."""
        return len(self.r_channels)


def size_multiple(cfg: PredNetConfig) -> int:
    """Height and width must be multiples of 2^(L−1): every layer halves the map and upsamples back."""
    return 2 ** (len(cfg.r_channels) - 1)


def _reason(cfg: PredNetConfig) -> str:
    return f"PredNet with {len(cfg.r_channels)} layers halves the frame {len(cfg.r_channels) - 1} time(s)"


def hard_sigmoid(x: Tensor) -> Tensor:
    """Keras' hard sigmoid, ``clamp(0.2·x + 0.5, 0, 1)`` (not PyTorch's ``hardsigmoid``, slope 1/6)."""
    return torch.clamp(0.2 * x + 0.5, 0.0, 1.0)


def _act(name: str) -> nn.Module:
    return nn.ReLU() if name == "relu" else nn.Tanh()


class GateConv(nn.Module):
    """The four gate pre-activations ``[i, f, g, o]`` that one input of a ConvLSTM contributes: one
    convolution to ``4·r`` channels, its kernel kept as one tensor per gate (``weight_i`` …, and
    ``bias_i`` … where it has a bias) as OpenSTL keeps one convolution per gate."""

    def __init__(self, c_in: int, r: int, k: int, bias: bool) -> None:
        super().__init__()
        self.padding = k // 2
        for g in "ifgo":
            self.register_parameter(f"weight_{g}", nn.Parameter(torch.empty(r, c_in, k, k)))
            self.register_parameter(f"bias_{g}", nn.Parameter(torch.zeros(r)) if bias else None)
        bound = 1.0 / (c_in * k * k) ** 0.5  # PyTorch's default conv init, per gate
        for g in "ifgo":
            nn.init.uniform_(getattr(self, f"weight_{g}"), -bound, bound)

    def forward(self, x: Tensor) -> Tensor:
        w = torch.cat([self.weight_i, self.weight_f, self.weight_g, self.weight_o])
        b = None if self.bias_i is None else torch.cat([self.bias_i, self.bias_f, self.bias_g, self.bias_o])
        return F.conv2d(x, w, b, padding=self.padding)


class PredNetLayer(nn.Module):
    """One PredNet layer's weights: the ConvLSTM of ``R_l`` (one :class:`GateConv` per input: ``R_l``,
    ``E_l`` and, below the top, the upsampled ``R_{l+1}``), the prediction conv ``R_l → Â_l`` and, below
    the top, the target conv ``E_l → A_{l+1}``."""

    def __init__(
        self, a: int, r: int, r_up: int | None, a_next: int | None, k_r: int, k_ahat: int, k_a: int | None
    ) -> None:
        super().__init__()
        self.from_r = GateConv(r, r, k_r, bias=True)  # W_r * R_l^{t−1} + b
        self.from_e = GateConv(2 * a, r, k_r, bias=False)  # W_e * E_l^{t−1}
        self.from_up = GateConv(r_up, r, k_r, bias=False) if r_up is not None else None  # W_u * Up(R_{l+1}^t)
        self.ahat = nn.Conv2d(r, a, k_ahat, padding=k_ahat // 2)  # R_l → Â_l (before its activation)
        self.a_next = (  # E_l → A_{l+1} (before activation and max-pool), below the top layer
            nn.Conv2d(2 * a, a_next, k_a, padding=k_a // 2) if a_next is not None and k_a is not None else None
        )


State = tuple[tuple[Tensor, ...], tuple[Tensor, ...], Tensor, Tensor]


class PredNet(nn.Module):
    """PredNet. Any T in, any number of frames out; one frame ahead per step (see the module docstring).

    States are ``(R, C, Â_0, previous Â_0)``: the representations and cells of every layer (finest
    first), the prediction of the next frame and the one before it (the frame a rollout step reads)."""

    arch = "prednet"
    recurrent = True

    def __init__(self, config: PredNetConfig | None = None, **overrides: Any) -> None:
        super().__init__()
        cfg = self.config = PredNetConfig.from_dict({**(config.to_dict() if config else {}), **overrides})
        self.frames_in, self.frames_out = cfg.frames_in, cfg.frames_out
        self.channels, self.height, self.width = cfg.channels, cfg.height, cfg.width
        n = cfg.layers
        a = (cfg.channels, *cfg.a_channels)
        r = cfg.r_channels
        self.layers = nn.ModuleList(
            PredNetLayer(
                a[l],
                r[l],
                r[l + 1] if l + 1 < n else None,
                a[l + 1] if l + 1 < n else None,
                cfg.r_filter[l],
                cfg.ahat_filter[l],
                cfg.a_filter[l] if l + 1 < n else None,
            )
            for l in range(n)  # noqa: E741  (the paper's layer index)
        )
        self._a_sizes, self._err = a, (F.relu if cfg.error_activation == "relu" else torch.tanh)
        self.a_act = _act(cfg.a_activation)
        self.upsample = nn.Upsample(scale_factor=2, mode="nearest")
        self.pool = nn.MaxPool2d(2, 2)
        for m in self.modules():  # OpenSTL zeroes every conv bias (GateConv's start at zero)
            if isinstance(m, nn.Conv2d) and m.bias is not None:
                nn.init.zeros_(m.bias)

    # -- the two passes of a time step ------------------------------------------------------------
    def _update(self, R: tuple[Tensor, ...], C: tuple[Tensor, ...], E: tuple[Tensor, ...] | None) -> tuple[Any, Any]:
        """Top-down ConvLSTM update: (R^{t−1}, C^{t−1}, E^{t−1}) → (R^t, C^t). ``E`` None: all zero."""
        n = len(self.layers)
        new_r: list[Tensor] = [R[0]] * n
        new_c: list[Tensor] = [C[0]] * n
        for l in reversed(range(n)):  # noqa: E741
            layer = self.layers[l]
            z = layer.from_r(R[l])
            if E is not None:
                z = z + layer.from_e(E[l])
            if layer.from_up is not None:
                z = z + layer.from_up(self.upsample(new_r[l + 1]))
            i, f, g, o = torch.chunk(z, 4, dim=1)
            new_c[l] = hard_sigmoid(f) * C[l] + hard_sigmoid(i) * torch.tanh(g)
            new_r[l] = hard_sigmoid(o) * torch.tanh(new_c[l])
        return tuple(new_r), tuple(new_c)

    def _predict(self, r0: Tensor) -> Tensor:
        """Â_0 = min(ReLU(Conv(R_0)), pixel_max): the frame prediction."""
        return torch.clamp(F.relu(self.layers[0].ahat(r0)), max=self.config.pixel_max)

    def _errors(self, R: tuple[Tensor, ...], pred: Tensor, frame: Tensor) -> tuple[Tensor, ...]:
        """Bottom-up: E_l = [err(Â_l − A_l); err(A_l − Â_l)] (channel by channel), A_0 = ``frame``."""
        errors = []
        target = frame
        for l, layer in enumerate(self.layers):  # noqa: E741
            ahat = pred if l == 0 else self.a_act(layer.ahat(R[l]))
            e = torch.stack((self._err(ahat - target), self._err(target - ahat)), dim=2).flatten(1, 2)
            errors.append(e)
            if layer.a_next is not None:
                target = self.pool(self.a_act(layer.a_next(e)))
        return tuple(errors)

    # -- the recurrent protocol -----------------------------------------------------------------------
    def check_input(self, x: Tensor) -> None:
        """Raise one clear error listing every rule of the input contract ``x`` breaks."""
        raise_if_bad_frames(self, x)

    def init_states(self, batch: int, h: int, w: int, like: Tensor) -> State:
        """The states before frame 0 of an ``h``×``w`` clip: ``R^0`` (the first update, from zero states and
        zero errors), ``Â_0^0`` and a zero previous prediction (OpenSTL's initial states)."""
        zeros = tuple(
            like.new_zeros(batch, rl, h >> l, w >> l)
            for l, rl in enumerate(self.config.r_channels)  # noqa: E741
        )
        R, C = self._update(zeros, zeros, None)
        return R, C, self._predict(R[0]), like.new_zeros(batch, self.channels, h, w)

    def step(self, frame: Tensor, states: State) -> tuple[Tensor, State]:
        """Read frame t (B×C×H×W); return Â_0^{t+1}, the predicted next frame, and the new states."""
        R, C, pred, _ = states
        R, C = self._update(R, C, self._errors(R, pred, frame))
        nxt = self._predict(R[0])
        return nxt, (R, C, nxt, pred)

    def rollout_step(self, frame: Tensor, states: State) -> tuple[Tensor, State]:
        """A step past the observed frames: the previous prediction stands in for the unseen frame
        (OpenSTL's and the original PredNet's extrapolation). ``frame`` (the last forecast) is not read."""
        return self.step(states[3], states)

    def forward(
        self,
        x: Tensor,
        n_out: int | None = None,
        *,
        target: Tensor | None = None,
        teacher_mask: Tensor | None = None,
        return_context: bool = False,
    ) -> Tensor:
        """Predict ``n_out`` frames after the frames in ``x`` (B×T×C×H×W, any T ≥ 1).

        Args:
            x: the observed frames.
            n_out: how many future frames to produce (default: ``frames_out`` of the config).
            target: B×(≥ n_out−1)×C×H×W ground truth, only needed with ``teacher_mask``.
            teacher_mask: scheduled sampling, B×(n_out−1) (or broadcastable) weights in [0, 1]: the frame read
                at future step k ≥ 1 is ``m·target[:, k−1] + (1−m)·(previous prediction)``; 1 everywhere is
                OpenSTL's training regime (every frame observed).
            return_context: also return the one-step predictions made while reading ``x`` (frames 1 … T−1),
                prepended: the output then has T−1+n_out frames.
        """
        self.check_input(x)
        n_out = self.frames_out if n_out is None else int(n_out)
        if n_out < 1:
            raise InputError(f"n_out must be >= 1, got {n_out}")
        b, t, _, h, w = x.shape
        if teacher_mask is not None:
            if target is None or target.shape[1] < n_out - 1:
                raise InputError("teacher_mask needs `target` with at least n_out-1 frames")
            teacher_mask = teacher_mask.to(x.dtype)
            if teacher_mask.dim() == 2:
                teacher_mask = teacher_mask[:, :, None, None, None]
        states = self.init_states(b, h, w, x)
        outputs: list[Tensor] = []
        for i in range(t - 1 + n_out):
            if i < t:
                pred, states = self.step(x[:, i], states)
            elif teacher_mask is not None:
                k = i - t  # the future frame read at this step is target[:, k]
                m = teacher_mask[:, k]
                pred, states = self.step(m * target[:, k] + (1 - m) * states[3], states)
            else:
                pred, states = self.rollout_step(pred, states)
            if i >= t - 1 or return_context:
                outputs.append(pred)
        return torch.stack(outputs, dim=1)


def prednet_training_forward(
    model: nn.Module, recipe: Recipe, seq: Tensor, progress: float
) -> tuple[Tensor, Tensor, Tensor | None]:
    """OpenSTL's training regime: every frame of the T_in + T_out sequence observed, the one-step predictions
    of frames 1 … T−1 against those frames (the recipe's loss is applied by the caller)."""
    t_in, t_out = recipe.frames_in, recipe.frames_out
    x, y = seq[:, :t_in], seq[:, t_in : t_in + t_out]
    mask = torch.ones(seq.shape[0], max(t_out - 1, 0), device=seq.device, dtype=seq.dtype)
    pred = model(x, t_out, target=y, teacher_mask=mask, return_context=True)
    return pred, seq[:, 1 : t_in + t_out], None


#: OpenSTL's PredNet recipe (configs/mmnist/PredNet.py, openstl/methods/prednet.py): Adam at 1e-4 with a
#: one-cycle schedule, batch 16, 200 epochs, every frame observed (no scheduled sampling)
PREDNET_RECIPE = Recipe(lr=1e-4, batch_size=16, epochs=200, loss="mse", scheduled_sampling=0.0)


def _channel_params(cfg: PredNetConfig) -> dict[str, ChannelParam]:
    out = {
        **{f"layers.0.from_e.weight_{g}": ChannelParam(1, "in", 2) for g in "ifgo"},  # reads E_0: 2 per channel
        "layers.0.ahat.weight": ChannelParam(0, "out"),  # writes Â_0, the frame
        "layers.0.ahat.bias": ChannelParam(0, "out"),
    }
    if cfg.layers > 1:
        out["layers.0.a_next.weight"] = ChannelParam(1, "in", 2)  # reads E_0
    return out


ARCHITECTURE = register(
    Architecture(
        name="prednet",
        model=PredNet,
        config=PredNetConfig,
        recipe=PREDNET_RECIPE,
        any_frames=True,
        spec_keys={k: k for k in ("frames_in", "frames_out", "channels", "height", "width")},
        size_multiple=size_multiple,
        size_reason=_reason,
        channel_params=_channel_params,
        training_forward=prednet_training_forward,
        # conservative: per layer l (at 1/2^l size) its R, the ConvLSTM's gates, A, Â and the errors E = [±(Â−A)],
        # each a few maps alive at once, plus the frames kept for the rollout
        activation_floats=lambda cfg, b, t, h, w: (
            b
            * (
                sum(
                    (h * w / 4**layer) * 16.0 * (4 * r + 4 * a)
                    for layer, (r, a) in enumerate(zip(cfg.r_channels, (cfg.channels, *cfg.a_channels)))
                )
                + 2.0 * t * cfg.channels * h * w
            )
        ),
        tiny_config={
            "frames_in": 4,
            "frames_out": 4,
            "height": 16,
            "width": 16,
            "a_channels": [4, 8],
            "r_channels": [2, 4, 8],
            "a_filter": [3, 3],
            "ahat_filter": [3, 3, 3],
            "r_filter": [3, 3, 3],
        },
        description="PredNet (Lotter et al., ICLR 2017): predictive coding, a ConvLSTM per layer forecasting "
        "its input one frame ahead",
    )
)
