"""CrevNet (Yu, Lu, Easterbrook & Fidler, ICLR 2020): a conditionally reversible network for video prediction.

An invertible two-way autoencoder (i-RevNet style) maps a *window* of three consecutive frames into a
feature pair, a recurrent predictor advances the pair by one frame in feature space, and the same network
run backwards decodes it. Nothing is lost on the way in: the decoder is the encoder's exact inverse.

**Windows.** The model reads and writes windows ``X_t = [x_t, x_{t+1}, x_{t+2}]``, B×C×3×H×W (the three
frames on the depth axis of 3-D convolutions). The predictor maps the code of ``X_{t−1}`` to the code of
``X_t``: each window predicted is the previous one shifted by one frame.

**Autoencoder** (``S = len(blocks)`` stages, ``c₀ = rev_channels``)::

    u   = M_in · X                         1×1 frame-channel map C → c₀                B×c₀×3×H×W
    z   = squeeze₂(u) = (z₁, z₂)           space-to-depth by 2, split in two halves    2 × B×2c₀×3×H/2×W/2
    (z₁, z₂) ← (z₂, z₁' + F_k(z₂))         i-RevNet block k (z₁' = squeeze₂(z₁) and z₂ → squeeze₂(z₂) in a
                                            block that halves the size, the first of stages 2 … S)
    code = (z₁, z₂)                        2 × B×2c₀·4^(S−1)×3×H/2^S×W/2^S

``F_k`` is a bottleneck ``[BN, ReLU,] Conv3³(→ w/m), BN, ReLU, Conv3³, BN, ReLU, Conv3³(→ w)`` (no biases;
the first block has no leading BN + ReLU; ``m = bottleneck_divisor``; stride (1, 2, 2) in a halving
block). The inverse of a block is ``z₁' = y − F_k(z₂)``, so decoding runs the blocks backwards, merges the
halves, applies ``squeeze₂⁻¹`` and the map back ``M_out`` (c₀ → C).

**Predictor** (``L = predictor_layers`` ST-ConvLSTM cells of width ``h = 2c₀·4^(S−1)``, 3×3×3 convs):
layer ``l`` reads the first half ``a`` of the pair and the spatiotemporal memory ``m`` (passed from layer
to layer and from step to step)::

    [i, f, g]   = σ, σ, tanh(W_c * [a, H_l, C_l])        C_l ← f ∘ C_l + i ∘ g
    [i', f', g'] = σ, σ, tanh(W_m * [a, m, C_l])         m ← f' ∘ m + i' ∘ g'
    o = σ(W_o * [a, H_l, C_l, m])                        H_l ← o ∘ tanh(W_1×1 * [C_l, m])
    g = σ(W_att * H_l)                                    b ← (1 − g) ∘ b + g ∘ H_l;   (a, b) ← (b, a)

with ``(a, b)`` the code pair. The pair out of the last layer is decoded.

**Test-time convention (OpenSTL's, the published file's).** ``predict(horizon=N)`` on ``T`` frames reads
only the last window ``[x_{T−3}, x_{T−2}, x_{T−1}]`` (with fresh, zero states), as OpenSTL's
``CrevNet_Model.forward(training=False)`` does (its method shortens ``pre_seq_length`` by 2 and starts
from ``input[pre_seq_length − 1]``). Step ``k = 0, 1, …`` encodes the current window, advances the
predictor once and decodes the next window; where that window holds frames that were observed (its
first two at ``k = 0``, its first at ``k = 1``) they replace the decoded ones, and its last frame is the
forecast of ``x_{T+k}``. That is exactly OpenSTL's output for ``N = frames_out`` and the same rule for
any other ``N``; a clip of fewer than three frames is padded in front with its first frame (OpenSTL
always has three). OpenSTL returns channel 0 of the forecast only; here every channel is returned (the
published file has one). :meth:`CrevNet.step` reads one frame and forecasts the next,
:meth:`CrevNet.rollout_step` continues the rollout, so a :class:`stzoo.Forecaster` streams the same
forecast; each observed frame restarts from fresh states, so streaming costs one step per frame.

**Training (OpenSTL's regime).** Every window of the ``T_in + T_out`` sequence is observed: the code of
window ``j−1`` predicts window ``j`` for ``j = 1 … T_in + T_out − 3`` with the states carried over the
whole sequence, and the loss compares the predicted windows with the true ones (OpenSTL sums one MSE
per window; the recipe's loss averages them, the same minimum). Unlike the test-time convention, the
states here see every window from the first.

Layout and defaults follow OpenSTL's ``CrevNet_Model`` (``openstl/models/crevnet_model.py`` and
``openstl/modules/crevnet_modules.py`` in OpenSTL v0.3.0; ``configs/mmnist/CrevNet.py``: ``rnn_size = 32``,
8 predictor layers; the autoencoder fixed at ``nBlocks = [4, 5, 3]``, ``init_ds = 2``, ``mult = 2``):
OpenSTL's ``rnn_size`` is the predictor width ``h``, which the autoencoder fixes (``32·c₀`` with three
stages). The frame maps ``M_in``, ``M_out`` are not in OpenSTL (which feeds the frames to the squeeze
directly): with ``channels == rev_channels`` they are 1×1 identities at import, ``2·C·c₀`` values
(2 at the published config: 4,997,446 here against OpenSTL's 4,997,444), and they let
``adapt(channels=…)`` convert a grey model to colour (the i-RevNet's width is fixed by ``c₀``). Each
cell's input, forget and cell gates run as one convolution (``W_c``, likewise ``W_m``; one kernel tensor
per gate, as OpenSTL's three convolutions), and OpenSTL's zero-rate dropout layers are left out.
This module does no I/O.
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
    "CrevNet",
    "CrevNetConfig",
    "RevBlock",
    "RevAutoencoder",
    "STConvLSTMCell",
    "GateConv3d",
    "ZigRevPredictor",
    "squeeze",
    "unsqueeze",
    "CREVNET_RECIPE",
    "crevnet_training_forward",
    "ARCHITECTURE",
]

#: frames per window (OpenSTL's ``temp``): the depth of every 3-D convolution's input
WINDOW = 3


@dataclass
class CrevNetConfig(ModelConfig):
    """CrevNet's settings. Defaults: OpenSTL's ``configs/mmnist/CrevNet.py`` (4,997,446 parameters)."""

    frames_in: int = cfg_field(10, lo=1, hi=1000)  # frames read by default (any T runs; the last 3 are used)
    frames_out: int = cfg_field(10, lo=1, hi=1000)  # frames predicted by default (any horizon runs)
    channels: int = cfg_field(1, lo=1, hi=64)  # colour channels of a frame (C)
    height: int = cfg_field(64, lo=1, hi=8192)  # training size (any multiple of 2^len(blocks) runs)
    width: int = cfg_field(64, lo=1, hi=8192)  # (training width)
    rev_channels: int = cfg_field(1, lo=1, hi=64)  # c0: channels the invertible autoencoder works on (OpenSTL: C)
    blocks: tuple[int, ...] = cfg_field((4, 5, 3))  # i-RevNet blocks per stage; stages 2… halve the size
    predictor_layers: int = cfg_field(8, lo=1, hi=64)  # ST-ConvLSTM cells of the predictor (predictor_rnn_layers)
    bottleneck_divisor: int = cfg_field(2, lo=1, hi=64)  # a block's bottleneck width is its width / this (mult)

    def validate(self) -> None:
        blocks = self.blocks
        ok = (
            isinstance(blocks, (list, tuple))
            and 1 <= len(blocks) <= 4
            and all(isinstance(v, numbers.Integral) and not isinstance(v, bool) and 1 <= v <= 64 for v in blocks)
        )
        if not ok:
            raise ConfigError(
                f"crevnet config 'blocks' must list 1 to 4 whole numbers between 1 and 64, got {blocks!r}"
            )
        object.__setattr__(self, "blocks", tuple(int(v) for v in blocks))
        super().validate()
        m = size_multiple(self)
        if self.height % m or self.width % m:
            raise ConfigError(
                f"{_reason(self)}: the training size must be a multiple of {m}, got {self.height}×{self.width}"
            )

    @property
    def hidden(self) -> int:
        """h, the width of each half of the code and of the predictor (OpenSTL's ``rnn_size``)."""
        return 2 * self.rev_channels * 4 ** (len(self.blocks) - 1)


def size_multiple(cfg: CrevNetConfig) -> int:
    """Height and width must be multiples of 2^S: the squeeze halves the frame, so does each stage after the first."""
    return 2 ** len(cfg.blocks)


def _reason(cfg: CrevNetConfig) -> str:
    return f"CrevNet with {len(cfg.blocks)} stages halves the frame {len(cfg.blocks)} time(s)"


# ---- the invertible autoencoder ---------------------------------------------------------------------
def squeeze(x: Tensor) -> Tensor:
    """Space-to-depth by 2: B×c×D×H×W → B×4c×D×H/2×W/2, channel ``(2·dy + dx)·c + k`` holding channel ``k``
    at pixel offset ``(dy, dx)`` (OpenSTL's ``psi`` order)."""
    b, c, d, h, w = x.shape
    x = x.reshape(b, c, d, h // 2, 2, w // 2, 2).permute(0, 4, 6, 1, 2, 3, 5)
    return x.reshape(b, 4 * c, d, h // 2, w // 2)


def unsqueeze(x: Tensor) -> Tensor:
    """Depth-to-space by 2, the inverse of :func:`squeeze`: B×4c×D×H×W → B×c×D×2H×2W."""
    b, c4, d, h, w = x.shape
    x = x.reshape(b, 2, 2, c4 // 4, d, h, w).permute(0, 3, 4, 5, 1, 6, 2)
    return x.reshape(b, c4 // 4, d, 2 * h, 2 * w)


class RevBlock(nn.Module):
    """One i-RevNet block: ``(z₁, z₂) → (z₂, z₁ + F(z₂))`` (both squeezed first when ``halve``), and back.

    ``width_in`` is the width of the pair (two halves of ``width_in/2``); the block writes two halves of
    ``width_out``: ``width_in/2`` (keeping the size) or ``2·width_in`` (halving it)."""

    def __init__(self, width_in: int, width_out: int, halve: bool, first: bool, divisor: int) -> None:
        super().__init__()
        half, mid = width_in // 2, max(width_out // divisor, 1)
        self.halve = halve
        self.bn0 = None if first else nn.BatchNorm3d(half)  # the first block reads the squeezed frames as they are
        stride = (1, 2, 2) if halve else 1
        self.conv1 = nn.Conv3d(half, mid, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm3d(mid)
        self.conv2 = nn.Conv3d(mid, mid, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm3d(mid)
        self.conv3 = nn.Conv3d(mid, width_out, 3, padding=1, bias=False)

    def residual(self, z: Tensor) -> Tensor:
        """F(z), the bottleneck."""
        if self.bn0 is not None:
            z = F.relu(self.bn0(z))
        z = F.relu(self.bn1(self.conv1(z)))
        z = F.relu(self.bn2(self.conv2(z)))
        return self.conv3(z)

    def forward(self, z1: Tensor, z2: Tensor) -> tuple[Tensor, Tensor]:
        r = self.residual(z2)
        if self.halve:
            z1, z2 = squeeze(z1), squeeze(z2)
        return z2, r + z1

    def inverse(self, z2: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
        """The block run backwards: ``(z₂, y) → (z₁, z₂)``."""
        if self.halve:
            z2 = unsqueeze(z2)
        z1 = y - self.residual(z2)
        if self.halve:
            z1 = unsqueeze(z1)
        return z1, z2


class RevAutoencoder(nn.Module):
    """The two-way autoencoder: frame map, squeeze, the i-RevNet blocks; :meth:`decode` is its inverse
    (the frame map back aside, which is learnt)."""

    def __init__(self, cfg: CrevNetConfig) -> None:
        super().__init__()
        c0 = cfg.rev_channels
        self.map_in = nn.Parameter(
            torch.zeros(c0, cfg.channels).fill_diagonal_(1.0)
        )  # M_in: C → c0 (identity when C == c0)
        self.map_out = nn.Parameter(torch.zeros(cfg.channels, c0).fill_diagonal_(1.0))  # M_out: c0 → C
        self.half = 2 * c0
        blocks, width = [], 4 * c0  # width of the pair entering a block
        for stage, depth in enumerate(cfg.blocks):
            out = 2 * c0 * 4**stage  # each half's width in this stage
            for k in range(depth):
                blocks.append(RevBlock(width, out, stage > 0 and k == 0, not blocks, cfg.bottleneck_divisor))
                width = 2 * out
        self.blocks = nn.ModuleList(blocks)

    def encode(self, window: Tensor) -> tuple[Tensor, Tensor]:
        """B×C×3×H×W frames → the code pair, 2 × B×h×3×H/2^S×W/2^S."""
        u = squeeze(torch.einsum("kc,bcdhw->bkdhw", self.map_in, window))
        z1, z2 = u[:, : self.half], u[:, self.half :]
        for block in self.blocks:
            z1, z2 = block(z1, z2)
        return z1, z2

    def decode(self, z1: Tensor, z2: Tensor) -> Tensor:
        """The code pair → B×C×3×H×W frames (the blocks backwards, merge, unsqueeze, the frame map back)."""
        for block in reversed(self.blocks):
            z1, z2 = block.inverse(z1, z2)
        u = unsqueeze(torch.cat((z1, z2), dim=1))
        return torch.einsum("ck,bkdhw->bcdhw", self.map_out, u)


# ---- the predictor ----------------------------------------------------------------------------------
class GateConv3d(nn.Module):
    """Several gates' 3×3×3 convolutions over one input, computed as one convolution; the kernel and bias
    are kept as one tensor per gate (``weight_<g>``, ``bias_<g>``), as OpenSTL keeps one convolution each."""

    def __init__(self, c_in: int, h: int, gates: str) -> None:
        super().__init__()
        self.gates = gates
        bound = 1.0 / (c_in * 27) ** 0.5  # PyTorch's default conv init, per gate
        for g in gates:
            self.register_parameter(f"weight_{g}", nn.Parameter(torch.empty(h, c_in, 3, 3, 3).uniform_(-bound, bound)))
            self.register_parameter(f"bias_{g}", nn.Parameter(torch.empty(h).uniform_(-bound, bound)))

    def forward(self, x: Tensor) -> tuple[Tensor, ...]:
        w = torch.cat([getattr(self, f"weight_{g}") for g in self.gates])
        b = torch.cat([getattr(self, f"bias_{g}") for g in self.gates])
        return torch.chunk(F.conv3d(x, w, b, padding=1), len(self.gates), dim=1)


class STConvLSTMCell(nn.Module):
    """A spatiotemporal ConvLSTM cell on B×h×3×H'×W' maps (3×3×3 convolutions; see the module docstring)."""

    def __init__(self, h: int) -> None:
        super().__init__()
        self.gates_c = GateConv3d(3 * h, h, "ifg")  # W_c: [a, H, C] → input, forget, cell gates
        self.gates_m = GateConv3d(3 * h, h, "ifg")  # W_m: [a, m, C'] → the memory's three gates
        self.gate_o = nn.Conv3d(4 * h, h, 3, padding=1)  # W_o: [a, H, C', m'] → output gate
        self.fuse = nn.Conv3d(2 * h, h, 1)  # W_1×1: [C', m'] → the hidden state's pre-activation

    def forward(self, a: Tensor, memo: Tensor, hidden: Tensor, cell: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """(input a, memory m, H, C) → (H', C', m')."""
        i, f, g = self.gates_c(torch.cat((a, hidden, cell), 1))
        cell_new = torch.sigmoid(f) * cell + torch.sigmoid(i) * torch.tanh(g)
        i, f, g = self.gates_m(torch.cat((a, memo, cell_new), 1))
        memo_new = torch.sigmoid(f) * memo + torch.sigmoid(i) * torch.tanh(g)
        o = torch.sigmoid(self.gate_o(torch.cat((a, hidden, cell_new, memo_new), 1)))
        hidden_new = o * torch.tanh(self.fuse(torch.cat((cell_new, memo_new), 1)))
        return hidden_new, cell_new, memo_new


class ZigRevPredictor(nn.Module):
    """``L`` cells; each updates one half of the code pair through an attention gate and swaps the halves."""

    def __init__(self, h: int, layers: int) -> None:
        super().__init__()
        self.cells = nn.ModuleList(STConvLSTMCell(h) for _ in range(layers))
        self.attention = nn.ModuleList(nn.Conv3d(h, h, 1) for _ in range(layers))  # W_att

    def forward(
        self, a: Tensor, b: Tensor, memo: Tensor, states: tuple[Tensor, ...]
    ) -> tuple[Tensor, Tensor, Tensor, tuple[Tensor, ...]]:
        """One step: code pair, memory and ``(H_0, C_0, H_1, C_1, …)`` → the next of each."""
        new: list[Tensor] = []
        for l, (cell, att) in enumerate(zip(self.cells, self.attention)):  # noqa: E741
            hidden, c, memo = cell(a, memo, states[2 * l], states[2 * l + 1])
            new += [hidden, c]
            g = torch.sigmoid(att(hidden))
            b = (1 - g) * b + g * hidden
            a, b = b, a
        return a, b, memo, tuple(new)


# ---- the model --------------------------------------------------------------------------------------
#: the recurrent state: (last three observed frames B×C×3×H×W, the current window, memory, (H_l, C_l)…, the
#: observed frames still to paste into the next predicted window B×C×k×H×W)
State = tuple[Tensor, Tensor, Tensor, tuple[Tensor, ...], Tensor]


class CrevNet(nn.Module):
    """CrevNet. Any T in, any number of frames out (see the module docstring for the rollout)."""

    arch = "crevnet"
    recurrent = True

    def __init__(self, config: CrevNetConfig | None = None, **overrides: Any) -> None:
        super().__init__()
        cfg = self.config = CrevNetConfig.from_dict({**(config.to_dict() if config else {}), **overrides})
        self.frames_in, self.frames_out = cfg.frames_in, cfg.frames_out
        self.channels, self.height, self.width = cfg.channels, cfg.height, cfg.width
        self.autoencoder = RevAutoencoder(cfg)
        self.predictor = ZigRevPredictor(cfg.hidden, cfg.predictor_layers)

    # -- one step in feature space -------------------------------------------------------------------
    def _zero_states(self, window: Tensor) -> tuple[Tensor, tuple[Tensor, ...]]:
        b, _, d, h, w = window.shape
        s = 2 ** len(self.config.blocks)
        zero = window.new_zeros(b, self.config.hidden, d, h // s, w // s)
        return zero, (zero,) * (2 * self.config.predictor_layers)

    def _advance(self, window: Tensor, memo: Tensor, states: tuple[Tensor, ...], pending: Tensor | None) -> Any:
        """Encode ``window``, advance the predictor once, decode the next window and paste the observed
        frames ``pending`` over its first entries. Returns (next window, memory, states)."""
        a, b = self.autoencoder.encode(window)
        a, b, memo, states = self.predictor(a, b, memo, states)
        nxt = self.autoencoder.decode(a, b)
        if pending is not None and pending.shape[2] > 0:
            nxt = torch.cat((pending, nxt[:, :, pending.shape[2] :]), dim=2)
        return nxt, memo, states

    # -- the recurrent protocol -----------------------------------------------------------------------
    def check_input(self, x: Tensor) -> None:
        """Raise one clear error listing every rule of the input contract ``x`` breaks."""
        raise_if_bad_frames(self, x)

    def init_states(self, batch: int, h: int, w: int, like: Tensor) -> State:
        """The state before the first frame of an ``h``×``w`` clip: no frame observed yet (an empty frame
        buffer; the first frame read fills the whole window, as :meth:`forward` pads a short clip)."""
        frames = like.new_zeros(batch, self.channels, 0, h, w)
        memo, hidden = self._zero_states(like.new_zeros(batch, self.channels, WINDOW, h, w))
        return frames, frames, memo, hidden, frames

    def step(self, frame: Tensor, states: State) -> tuple[Tensor, State]:
        """Read frame t (B×C×H×W); return the forecast of frame t+1 and the new state. OpenSTL's convention:
        the forecast starts afresh from the last three frames read."""
        f = frame.unsqueeze(2)
        frames = states[0]
        frames = f.expand(-1, -1, WINDOW, -1, -1) if frames.shape[2] == 0 else torch.cat((frames[:, :, 1:], f), 2)
        memo, zero = self._zero_states(frames)
        window, memo, hidden = self._advance(frames, memo, zero, frames[:, :, 1:])
        return window[:, :, -1], (frames, window, memo, hidden, frames[:, :, 2:])

    def rollout_step(self, frame: Tensor, states: State) -> tuple[Tensor, State]:
        """A step past the observed frames: the window decoded last (with the observed frames pasted in) is
        encoded again; ``frame`` (its last entry, the last forecast) is not read separately."""
        frames, window, memo, hidden, pending = states
        window, memo, hidden = self._advance(window, memo, hidden, pending)
        return window[:, :, -1], (frames, window, memo, hidden, pending[:, :, 1:])

    def forward(self, x: Tensor, n_out: int | None = None, *, teacher_forced: bool = False) -> Tensor:
        """Predict ``n_out`` frames after the frames in ``x`` (B×T×C×H×W, any T ≥ 1).

        Args:
            x: the observed frames.
            n_out: how many future frames to produce (default: ``frames_out`` of the config).
            teacher_forced: OpenSTL's training pass instead: ``x`` is a whole sequence of N ≥ 4 frames, every
                window observed; returns the predicted windows 1 … N−3, B×(N−3)×C×3×H×W.
        """
        self.check_input(x)
        if teacher_forced:
            return self._teacher_forced(x)
        n_out = self.frames_out if n_out is None else int(n_out)
        if n_out < 1:
            raise InputError(f"n_out must be >= 1, got {n_out}")
        if x.shape[1] < WINDOW:  # pad in front with the first frame
            x = torch.cat((x[:, :1].expand(-1, WINDOW - x.shape[1], -1, -1, -1), x), 1)
        frames = x[:, -WINDOW:].transpose(1, 2)  # B×C×3×H×W
        memo, hidden = self._zero_states(frames)
        window, pending, outputs = frames, frames[:, :, 1:], []
        for _ in range(n_out):
            window, memo, hidden = self._advance(window, memo, hidden, pending)
            pending = pending[:, :, 1:]
            outputs.append(window[:, :, -1])
        return torch.stack(outputs, dim=1)

    def _teacher_forced(self, seq: Tensor) -> Tensor:
        n = seq.shape[1]
        if n < WINDOW + 1:
            raise InputError(f"CrevNet trains on windows of {WINDOW} frames: a sequence needs at least 4, got {n}")
        seq = seq.transpose(1, 2)  # B×C×N×H×W
        memo, hidden = self._zero_states(seq[:, :, :WINDOW])
        outputs = []
        for j in range(1, n - WINDOW + 1):
            window, memo, hidden = self._advance(seq[:, :, j - 1 : j - 1 + WINDOW], memo, hidden, None)
            outputs.append(window)
        return torch.stack(outputs, dim=1)


def crevnet_training_forward(
    model: nn.Module, recipe: Recipe, seq: Tensor, progress: float
) -> tuple[Tensor, Tensor, Tensor | None]:
    """OpenSTL's training regime: every window of the T_in + T_out sequence observed, window j−1 predicting
    window j with the states carried over the sequence; the predicted windows against the true ones (their
    three frames laid out as frames, so the recipe's loss applies as to any forecast)."""
    n = recipe.frames_in + recipe.frames_out
    seq = seq[:, :n]
    pred = model(seq, teacher_forced=True)  # B×(n−3)×C×3×H×W
    target = torch.stack([seq[:, j : j + WINDOW].transpose(1, 2) for j in range(1, n - WINDOW + 1)], dim=1)
    b, k, c, d, h, w = pred.shape
    flat = (b, k * d, c, h, w)
    return pred.transpose(2, 3).reshape(flat), target.transpose(2, 3).reshape(flat), None


#: OpenSTL's CrevNet recipe (configs/mmnist/CrevNet.py, openstl/methods/crevnet.py): lr 5e-3 with a one-cycle
#: schedule, batch 16, 200 epochs, every window observed (no scheduled sampling)
CREVNET_RECIPE = Recipe(lr=5e-3, batch_size=16, epochs=200, loss="mse", scheduled_sampling=0.0)


def _channel_params(cfg: CrevNetConfig) -> dict[str, ChannelParam]:
    return {
        "autoencoder.map_in": ChannelParam(1, "in"),  # reads the frames' C channels
        "autoencoder.map_out": ChannelParam(0, "out"),  # writes them
    }


def _activation_floats(cfg: CrevNetConfig, b: int, t: int, h: int, w: int) -> float:
    """Conservative: the autoencoder keeps as many values as a window (3·c0·H·W) at every stage, a few such maps
    alive per block (encode and decode); each predictor cell ~40 maps of h×3×H/2^S×W/2^S (= 1.5·c0·H·W values);
    the frames read and written."""
    c0, c = cfg.rev_channels, cfg.channels
    window = 3.0 * max(c, c0) * h * w
    cells = cfg.predictor_layers * 40 * 1.5 * c0 * h * w
    return b * (window * (12 + 4 * sum(cfg.blocks)) + cells + 2.0 * (t + cfg.frames_out) * c * h * w)


ARCHITECTURE = register(
    Architecture(
        name="crevnet",
        model=CrevNet,
        config=CrevNetConfig,
        recipe=CREVNET_RECIPE,
        any_frames=True,
        spec_keys={k: k for k in ("frames_in", "frames_out", "channels", "height", "width")},
        size_multiple=size_multiple,
        size_reason=_reason,
        channel_params=_channel_params,
        training_forward=crevnet_training_forward,
        activation_floats=_activation_floats,
        tiny_config={
            "frames_in": 4,
            "frames_out": 4,
            "height": 8,
            "width": 8,
            "blocks": [2, 1],
            "predictor_layers": 2,
        },
        description="CrevNet (Yu et al., ICLR 2020): an invertible two-way autoencoder with a recurrent "
        "predictor in its feature space",
    )
)
