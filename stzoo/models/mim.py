"""MIM, Memory In Memory (Wang et al., CVPR 2019): ST-LSTM + MIM blocks for non-stationary dynamics.

The first layer is a spatiotemporal LSTM (ST-LSTM, as in PredRNN); every later layer is a **MIM
block**, whose forget gate on the temporal memory is replaced by two cascaded recurrent modules:

* **MIM-N** (non-stationary) reads the *difference* of the hidden states of the layer below at two
  consecutive steps, D_t = H^{l−1}_t − H^{l−1}_{t−1} (for the second layer; the MIM-N of each higher
  layer reads the output of the MIM-N below it), and keeps its own state (N, its cell);
* **MIM-S** (stationary) reads MIM-N's output and the block's temporal memory C_{t−1}, keeps its own
  cell S, and outputs T_t, the part of C_{t−1} that is carried on.

A spatiotemporal memory M zigzags through the stack as in PredRNN: up the layers within a step,
then from the top layer back to the first one at the next step.

Equations (``*`` convolution, ``∘`` element-wise, σ sigmoid, the constant 1 is the forget bias; no
convolution has a bias; the w's are per-position "peephole" weights, one value per channel and grid
cell, as in OpenSTL)::

    ST-LSTM (layer 0, input X = the patch-reshaped frame):
      [i_x, f_x, g_x, i'_x, f'_x, g'_x, o_x] = W_x * X    [i_h, f_h, g_h, o_h] = W_h * H    [i_m, f_m, g_m] = W_m * M
      C' = σ(f_x + f_h + 1) ∘ C + σ(i_x + i_h) ∘ tanh(g_x + g_h)
      M' = σ(f'_x + f_m + 1) ∘ M + σ(i'_x + i_m) ∘ tanh(g'_x + g_m)
      H' = σ(o_x + o_h + W_o * [C'; M']) ∘ tanh(W_1×1 * [C'; M'])

    MIM-N / MIM-S (one form, a peephole ConvLSTM; input D, hidden state Q, cell K):
      [i_q, g_q, f_q, o_q] = W_q * Q     [i_d, g_d, f_d, o_d] = W_d * D
      K' = σ(f_q + f_d + w_f ∘ K + 1) ∘ K + σ(i_q + i_d + w_i ∘ K) ∘ tanh(g_q + g_d)
      Q' = σ(o_q + o_d + w_o ∘ K') ∘ tanh(K')
      MIM-N: D = D_t (or the MIM-N below), Q = N_{t−1}, K = its cell   → N_t = Q'
      MIM-S: D = N_t, Q = C_{t−1} (the block's temporal memory), K = S_{t−1}   → T_t = Q', S_t = K'

    MIM block (layer l >= 1, input X = H^{l−1}_t):
      [i_x, g_x, f_x, o_x] = W_x * X     [i_h, g_h, o_h] = W_h * H_{t−1}     [i_m, g_m, f_m, o_m] = W_m * M
      C_t = T_t + σ(i_x + i_h) ∘ tanh(g_x + g_h)
      M'  = σ(f_x + f_m + 1) ∘ M + σ(i_x + i_m) ∘ tanh(g_x + g_m)
      H_t = σ(o_x + o_h + o_m) ∘ tanh(W_1×1 * [C_t; M'])

At the first step there is no previous hidden state to subtract: the MIM-N modules are not run,
their output is zero, and their state starts at zero from the second step (as in OpenSTL).

Shapes (B batch, h = H/p, w = W/p the patch grid, N hidden channels, P = C·p² patch channels)::

    frame B×C×H×W → patches B×P×h×w → ST-LSTM → MIM blocks 1..L−1 → 1×1 readout → B×C×H×W
    every state (H, C per layer; N, its cell per MIM-N; S per MIM block; M): B×N×h×w
    peephole weights: w_i, w_f, w_o of each MIM-N / MIM-S: N×h×w each

Because of those per-position peephole weights a MIM runs only at the frame size it was built for
(``height`` × ``width`` of its config); :meth:`MIM.check_input` says so.

The layout follows OpenSTL's ``MIM_Model`` (``openstl/models/mim_model.py``,
``openstl/modules/mim_modules.py``, ``openstl/modules/predrnn_modules.py``; Apache-2.0). Differences:

* **no state between calls.** OpenSTL's ``MIMBlock`` keeps MIM-S's cell S in a module attribute
  (``self.convlstm_c``) that is never reset: each forward call, training batches and test batches
  alike, starts from the last S of the previous call (detached), which is why OpenSTL asserts that
  training and validation batch sizes are equal. stzoo keeps S in the recurrent state, like every
  other state: it starts at zero in every forward call (or stream), so a prediction never depends
  on what was predicted before, and the gradient flows through S over time (as in the authors'
  TensorFlow code, where S is part of the unrolled graph). A converted OpenSTL model gives exactly
  OpenSTL's output for OpenSTL's first call after building (S = 0).
* **parameters.** OpenSTL's ``MIMN`` builds a ``conv_last`` (2N → N, 1×1) its forward never reads;
  stzoo leaves it out. With OpenSTL's Moving MNIST config (``configs/mmnist/MIM.py``: 4 × 128 hidden,
  5×5 filters, patch 4, 64×64 frames) OpenSTL has 38,043,648 parameters, of which 3 × 32,768 = 98,304
  in the unused ``conv_last``; stzoo's model has the other 37,945,344.

MIM needs at least two layers (the first one is an ST-LSTM).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from stzoo.errors import ConfigError, InputError
from stzoo.models.base import Architecture, Recipe, cfg_field, check_frames, get_architecture, register
from stzoo.models.recurrent import (
    RecurrentConfig,
    RecurrentNet,
    recurrent_declaration,
    recurrent_tiny_config,
    rollout_activation_floats,
)

__all__ = ["MIM", "MIMConfig", "STLSTMCell", "MIMBlock", "PeepholeConvLSTM", "MIM_RECIPE", "ARCHITECTURE"]

FORGET_BIAS = 1.0  # added to every forget gate's pre-activation (OpenSTL's ``_forget_bias``)


@dataclass
class MIMConfig(RecurrentConfig):
    """MIM's settings. Defaults: OpenSTL's Moving MNIST config (37,945,344 parameters)."""

    height: int = cfg_field(64, lo=1, hi=8192)  # the frame height it runs at (peephole weights per position)
    width: int = cfg_field(64, lo=1, hi=8192)  # the frame width it runs at
    num_layers: int = cfg_field(4, lo=2, hi=32)  # an ST-LSTM, then num_layers − 1 MIM blocks
    num_hidden: int = cfg_field(128, lo=1, hi=2048)  # hidden channels of every layer and module

    def validate(self) -> None:
        super().validate()
        for key in ("height", "width"):
            if getattr(self, key) % self.patch_size:
                raise ConfigError(
                    f"MIM's {key} must be a multiple of patch_size={self.patch_size} (its peephole "
                    f"weights have one value per patch), got {getattr(self, key)}"
                )


def _conv(c_in: int, c_out: int, k: int) -> nn.Conv2d:
    return nn.Conv2d(c_in, c_out, k, padding=k // 2, bias=False)


class STLSTMCell(nn.Module):
    """ST-LSTM (PredRNN's cell, OpenSTL's ``SpatioTemporalLSTMCell``): (X, H, C, M) → (H', C', M'), the
    states only (:class:`stzoo.models.predrnn.STLSTMCellWithDeltas` also returns ΔC, ΔM)."""

    def __init__(self, c_in: int, c_hid: int, filter_size: int = 5):
        super().__init__()
        k, n = filter_size, c_hid
        self.c_hid = n
        self.conv_x = _conv(c_in, 7 * n, k)  # i, f, g, i', f', g', o from the input
        self.conv_h = _conv(n, 4 * n, k)  # i, f, g, o from H_{t−1}
        self.conv_m = _conv(n, 3 * n, k)  # i', f', g' from M
        self.conv_o = _conv(2 * n, n, k)  # o from [C'; M']
        self.conv_last = nn.Conv2d(2 * n, n, 1, bias=False)

    def forward(self, x: Tensor, h: Tensor, c: Tensor, m: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        n = self.c_hid
        i_x, f_x, g_x, i2_x, f2_x, g2_x, o_x = torch.split(self.conv_x(x), n, dim=1)
        i_h, f_h, g_h, o_h = torch.split(self.conv_h(h), n, dim=1)
        i_m, f_m, g_m = torch.split(self.conv_m(m), n, dim=1)
        c = torch.sigmoid(f_x + f_h + FORGET_BIAS) * c + torch.sigmoid(i_x + i_h) * torch.tanh(g_x + g_h)
        m = torch.sigmoid(f2_x + f_m + FORGET_BIAS) * m + torch.sigmoid(i2_x + i_m) * torch.tanh(g2_x + g_m)
        mem = torch.cat([c, m], dim=1)  # B×2N×h×w
        h = torch.sigmoid(o_x + o_h + self.conv_o(mem)) * torch.tanh(self.conv_last(mem))
        return h, c, m


class PeepholeConvLSTM(nn.Module):
    """MIM-N and MIM-S: a ConvLSTM with per-position peephole weights. (D, Q, K) → (Q', K')."""

    def __init__(self, c_hid: int, filter_size: int, grid: tuple[int, int]):
        super().__init__()
        n = self.c_hid = c_hid
        self.conv_q = _conv(n, 4 * n, filter_size)  # i, g, f, o from the hidden state Q
        self.conv_d = _conv(n, 4 * n, filter_size)  # i, g, f, o from the input D
        self.w_if = nn.Parameter(torch.zeros(2 * n, *grid))  # peepholes of i and f on K (zero at start)
        self.w_o = nn.Parameter(torch.zeros(n, *grid))  # peephole of o on K'

    def forward(self, d: Tensor, q: Tensor, k: Tensor) -> tuple[Tensor, Tensor]:
        n = self.c_hid
        i_q, g_q, f_q, o_q = torch.split(self.conv_q(q), n, dim=1)
        i_d, g_d, f_d, o_d = torch.split(self.conv_d(d), n, dim=1)
        i = torch.sigmoid(i_q + i_d + k * self.w_if[:n])
        f = torch.sigmoid(f_q + f_d + k * self.w_if[n:] + FORGET_BIAS)
        k = f * k + i * torch.tanh(g_q + g_d)
        q = torch.sigmoid(o_q + o_d + k * self.w_o) * torch.tanh(k)
        return q, k


class MIMBlock(nn.Module):
    """A MIM block: (X, N_t, H, C, S, M) → (H', C', S', M'), with MIM-S inside (``mims``)."""

    def __init__(self, c_in: int, c_hid: int, filter_size: int, grid: tuple[int, int]):
        super().__init__()
        k, n = filter_size, c_hid
        self.c_hid = n
        self.conv_x = _conv(c_in, 4 * n, k)  # i, g, f', o from the input
        self.conv_h = _conv(n, 3 * n, k)  # i, g, o from H_{t−1}
        self.conv_m = _conv(n, 4 * n, k)  # i', g', f', o from M
        self.conv_last = nn.Conv2d(2 * n, n, 1, bias=False)
        self.mims = PeepholeConvLSTM(n, k, grid)

    def forward(
        self, x: Tensor, diff: Tensor, h: Tensor, c: Tensor, s: Tensor, m: Tensor
    ) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        n = self.c_hid
        i_x, g_x, f_x, o_x = torch.split(self.conv_x(x), n, dim=1)
        i_h, g_h, o_h = torch.split(self.conv_h(h), n, dim=1)
        i_m, g_m, f_m, o_m = torch.split(self.conv_m(m), n, dim=1)
        m = torch.sigmoid(f_x + f_m + FORGET_BIAS) * m + torch.sigmoid(i_x + i_m) * torch.tanh(g_x + g_m)
        t, s = self.mims(diff, c, s)  # T_t: what MIM-S keeps of C_{t−1}
        c = t + torch.sigmoid(i_x + i_h) * torch.tanh(g_x + g_h)
        h = torch.sigmoid(o_x + o_h + o_m) * torch.tanh(self.conv_last(torch.cat([c, m], dim=1)))
        return h, c, s, m


class MIM(RecurrentNet):
    """ST-LSTM + MIM blocks, with one MIM-N per block. Any T in, any number of frames out.

    The recurrent state, as :meth:`init_states` returns and :meth:`step` carries it, is
    ``(layers, diffs, m)``: ``layers`` holds ``(H, C)`` for the ST-LSTM and ``(H, C, S)`` for each MIM
    block, ``diffs`` the ``(N, cell)`` of each MIM-N (``None`` before the first step: no difference
    yet), ``m`` the zigzag memory. It lives only inside one forward call (or one Forecaster stream).
    """

    arch = "mim"
    config_class = MIMConfig

    def __init__(self, config: MIMConfig | None = None, **overrides: Any):
        cfg = MIMConfig.from_dict({**(config.to_dict() if config else {}), **overrides})
        self.grid = (cfg.height // cfg.patch_size, cfg.width // cfg.patch_size)
        self._cells_made = 0
        super().__init__(cfg)
        n, k = cfg.num_hidden, cfg.filter_size
        self.mimn = nn.ModuleList(PeepholeConvLSTM(n, k, self.grid) for _ in range(cfg.num_layers - 1))

    def make_cell(self, c_in: int, c_hid: int, filter_size: int) -> nn.Module:
        first = self._cells_made == 0
        self._cells_made += 1
        if first:
            return STLSTMCell(c_in, c_hid, filter_size)
        return MIMBlock(c_in, c_hid, filter_size, self.grid)

    def check_input(self, x: Tensor) -> None:
        """The recurrent nets' rules, plus: the frames must have the size this MIM was built for."""
        problems = check_frames(get_architecture(self), self.config, tuple(x.shape))
        if x.dim() == 5 and tuple(x.shape[-2:]) != (self.height, self.width):
            problems.append(
                f"this MIM runs at {self.height}×{self.width} only (its MIM-N / MIM-S peephole weights "
                f"hold one value per cell of the {self.grid[0]}×{self.grid[1]} patch grid), got "
                f"{x.shape[-2]}×{x.shape[-1]}; resize the frames, or adapt the model to the new size "
                "(stzoo.training.adapt.adapt(p, height=..., width=...), which re-initialises those weights)"
            )
        if problems:
            raise InputError("; ".join(problems))

    def init_states(self, batch: int, h: int, w: int, like: Tensor) -> tuple[list[tuple[Tensor, ...]], None, Tensor]:
        z = like.new_zeros(batch, self.num_hidden, h, w)
        layers = [(z, z)] + [(z, z, z) for _ in range(self.num_layers - 1)]
        return layers, None, z

    def step(self, frame: Tensor, states: Any) -> tuple[Tensor, Any]:
        layers, diffs, m = states
        x = self._encode(frame)  # B×P×h×w
        h_prev, c0 = layers[0]
        h, c, m = self.cells[0](x, h_prev, c0, m)
        new_layers: list[tuple[Tensor, ...]] = [(h, c)]
        zeros = torch.zeros_like(h)
        new_diffs = []
        d_in = h - h_prev  # D_t: change of the first layer's H
        for i in range(1, self.num_layers):
            if diffs is None:  # first step: no MIM-N yet
                n_t, n_cell = zeros, zeros
            else:
                n_t, n_cell = self.mimn[i - 1](d_in, *diffs[i - 1])
                d_in = n_t  # the next MIM-N reads this one
            new_diffs.append((n_t, n_cell))
            h_i, c_i, s_i = layers[i]
            h, c, s, m = self.cells[i](h, n_t, h_i, c_i, s_i, m)
            new_layers.append((h, c, s))
        return self.unpatchify(self.readout(h)), (new_layers, new_diffs, m)


#: OpenSTL's Moving MNIST training (configs/mmnist/MIM.py, openstl/methods/mim.py → PredRNN): Adam at
#: lr 5e-4 with a OneCycle schedule, batch 16, 200 epochs of 10,000 sequences (125,000 steps); MSE on
#: every one-step prediction (frames 2..20); scheduled sampling with the teacher-forcing probability
#: falling linearly from 1 by 2e-5 per step to 0 at step 50,000 = 0.4 of the run.
MIM_RECIPE = Recipe(lr=5e-4, batch_size=16, epochs=200, epoch_size=10000, loss="mse", scheduled_sampling=0.4)


def _resolution_params(cfg: MIMConfig) -> list[str]:
    blocks = [f"cells.{i}.mims.{w}" for i in range(1, cfg.num_layers) for w in ("w_if", "w_o")]
    return blocks + [f"mimn.{i}.{w}" for i in range(cfg.num_layers - 1) for w in ("w_if", "w_o")]


ARCHITECTURE = register(
    Architecture(
        name="mim",
        model=MIM,
        config=MIMConfig,
        **{**recurrent_declaration("cells.0.conv_x.weight"), "recipe": MIM_RECIPE},
        resolution_params=_resolution_params,
        activation_floats=lambda cfg, b, t, h, w: rollout_activation_floats(cfg, b, t, h, w, cell_floats=24.0),
        tiny_config=recurrent_tiny_config(num_layers=3),
        description="MIM (Wang et al., CVPR 2019): ST-LSTM + Memory In Memory blocks (MIM-N on hidden-state "
        "differences, MIM-S) with a zigzag memory",
    )
)
