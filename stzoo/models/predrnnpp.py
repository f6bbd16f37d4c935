"""PredRNN++ (Wang et al., ICML 2018): Causal LSTM cells and a Gradient Highway Unit.

A stack of **Causal LSTM** cells reads the patch-reshaped frames. Besides its own temporal state
(H, C), every cell updates a **spatiotemporal memory** M that zigzags through the stack: up the
layers within a time step, then from the top layer back to the bottom one at the next step. A
**Gradient Highway Unit** (GHU) sits between the first and the second layer and gives the gradient
a short path through time.

Causal LSTM, one cell (``*`` convolution, ``∘`` element-wise; σ sigmoid; the constant 1 is the
forget bias; the convolutions have no bias)::

    [i_x, f_x, g_x, i'_x, f'_x, g'_x, o_x] = W_x * X          (X: input from below)
    [i_h, f_h, g_h, o_h]                   = W_h * H_{t−1}
    [i_c, f_c, g_c]                        = W_c * C_{t−1}
    [i_m, f_m, m_m]                        = W_m * M          (M: from the layer below, or the top at t−1)
    i = σ(i_x + i_h + i_c)   f = σ(f_x + f_h + f_c + 1)   g = tanh(g_x + g_h + g_c)
    C_t = f ∘ C_{t−1} + i ∘ g                                  (the temporal memory first ...)
    [i'_c, g'_c, f'_c, o_c] = W_c2m * C_t                      (... then the spatial one, causally after it)
    i' = σ(i'_x + i_m + i'_c)   f' = σ(f'_x + f_m + f'_c + 1)   g' = tanh(g'_x + g'_c)
    M_t = f' ∘ tanh(m_m) + i' ∘ g'
    o   = tanh(o_x + o_h + o_c + W_om * M_t)
    H_t = o ∘ tanh(W_1×1 * [C_t ; M_t])

Gradient Highway Unit (paper eq. 2), reading the first layer's H_t (X) and its own state Z::

    [p_x, s_x] = W_x * X        [p_z, s_z] = W_z * Z_{t−1}
    P = tanh(p_x + p_z)         S = σ(s_x + s_z)
    Z_t = S ∘ P + (1 − S) ∘ Z_{t−1}                            (Z_t is the second layer's input)

Shapes (B batch, h = H/p, w = W/p the patch grid, N hidden channels, P = C·p² patch channels)::

    frame B×C×H×W → patches B×P×h×w → cell 0 → GHU → cells 1..L−1 → 1×1 readout B×P×h×w → B×C×H×W
    states: H, C per layer, M, Z: B×N×h×w each

The layout follows OpenSTL's ``PredRNNpp_Model`` (``openstl/models/predrnnpp_model.py``,
``openstl/modules/predrnnpp_modules.py``; Apache-2.0): the gate orders, the ``tanh`` of the output
gate and of ``m_m``, the GHU's ±0.001 uniform initialisation and the forget bias of 1 added in the
forward pass. One difference in the parameters: OpenSTL's ``CausalLSTMCell`` also builds a
``conv_o`` (2N → N, k×k) that its forward pass never reads; stzoo leaves it out. With OpenSTL's
Moving MNIST config (``configs/mmnist/PredRNNpp.py``: 4 × 128 hidden, 5×5 filters, patch 4) OpenSTL
has 38,584,320 parameters, of which 4 × 819,200 = 3,276,800 in the unused ``conv_o``; stzoo's model
has the other 35,307,520 and computes the same function (the importer,
:mod:`stzoo.convert.openstl.predrnnpp`, lists the ``conv_o`` tensors as unused).

PredRNN++ needs at least two layers (the GHU sits between the first two).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from stzoo.models.base import Architecture, Recipe, cfg_field, register
from stzoo.models.recurrent import (
    RecurrentConfig,
    RecurrentNet,
    recurrent_declaration,
    recurrent_tiny_config,
    rollout_activation_floats,
)

__all__ = ["PredRNNpp", "PredRNNppConfig", "CausalLSTMCell", "GradientHighwayUnit", "PREDRNNPP_RECIPE", "ARCHITECTURE"]

FORGET_BIAS = 1.0  # added to both forget gates' pre-activations (OpenSTL's ``_forget_bias``)


@dataclass
class PredRNNppConfig(RecurrentConfig):
    """PredRNN++'s settings. Defaults: OpenSTL's Moving MNIST config (35,307,520 parameters)."""

    num_layers: int = cfg_field(4, lo=2, hi=32)  # stacked Causal LSTM cells (the GHU needs >= 2)
    num_hidden: int = cfg_field(128, lo=1, hi=2048)  # hidden channels of every cell, of M and of the GHU


def _conv(c_in: int, c_out: int, k: int) -> nn.Conv2d:
    return nn.Conv2d(c_in, c_out, k, padding=k // 2, bias=False)


class CausalLSTMCell(nn.Module):
    """One Causal LSTM cell: (X, H, C, M) → (H', C', M'); see the module docstring for the equations."""

    def __init__(self, c_in: int, c_hid: int, filter_size: int = 5):
        super().__init__()
        k, n = filter_size, c_hid
        self.c_hid = n
        self.conv_x = _conv(c_in, 7 * n, k)  # i, f, g, i', f', g', o from the input
        self.conv_h = _conv(n, 4 * n, k)  # i, f, g, o from H_{t−1}
        self.conv_c = _conv(n, 3 * n, k)  # i, f, g from C_{t−1}
        self.conv_m = _conv(n, 3 * n, k)  # i', f', m_m from M
        self.conv_c2m = _conv(n, 4 * n, k)  # i', g', f', o from C_t
        self.conv_om = _conv(n, n, k)  # o from M_t
        self.conv_last = nn.Conv2d(2 * n, n, 1, bias=False)  # [C_t ; M_t] → N

    def init_state(self, batch: int, h: int, w: int, like: Tensor) -> tuple[Tensor, Tensor]:
        z = like.new_zeros(batch, self.c_hid, h, w)
        return z, z

    def forward(self, x: Tensor, h: Tensor, c: Tensor, m: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        n = self.c_hid
        i_x, f_x, g_x, i2_x, f2_x, g2_x, o_x = torch.split(self.conv_x(x), n, dim=1)
        i_h, f_h, g_h, o_h = torch.split(self.conv_h(h), n, dim=1)
        i_c, f_c, g_c = torch.split(self.conv_c(c), n, dim=1)
        i_m, f_m, m_m = torch.split(self.conv_m(m), n, dim=1)
        i = torch.sigmoid(i_x + i_h + i_c)
        f = torch.sigmoid(f_x + f_h + f_c + FORGET_BIAS)
        g = torch.tanh(g_x + g_h + g_c)
        c = f * c + i * g  # C_t: B×N×h×w
        i2_c, g2_c, f2_c, o_c = torch.split(self.conv_c2m(c), n, dim=1)
        i2 = torch.sigmoid(i2_x + i_m + i2_c)
        f2 = torch.sigmoid(f2_x + f_m + f2_c + FORGET_BIAS)
        g2 = torch.tanh(g2_x + g2_c)
        m = f2 * torch.tanh(m_m) + i2 * g2  # M_t: B×N×h×w
        o = torch.tanh(o_x + o_h + o_c + self.conv_om(m))
        h = o * torch.tanh(self.conv_last(torch.cat([c, m], dim=1)))  # H_t: B×N×h×w
        return h, c, m


class GradientHighwayUnit(nn.Module):
    """Z_t = S ∘ P + (1 − S) ∘ Z_{t−1} with P, S gated from the first layer's H_t and Z_{t−1}."""

    def __init__(self, c_hid: int, filter_size: int = 5, init_range: float = 1e-3):
        super().__init__()
        self.c_hid = c_hid
        self.conv_z = _conv(c_hid, 2 * c_hid, filter_size)  # p, s from Z_{t−1}
        self.conv_x = _conv(c_hid, 2 * c_hid, filter_size)  # p, s from the input
        for conv in (self.conv_z, self.conv_x):  # as OpenSTL (and the paper's code): uniform ±0.001
            nn.init.uniform_(conv.weight, -init_range, init_range)

    def forward(self, x: Tensor, z: Tensor) -> Tensor:
        p, s = torch.split(self.conv_x(x) + self.conv_z(z), self.c_hid, dim=1)
        s = torch.sigmoid(s)
        return s * torch.tanh(p) + (1 - s) * z


class PredRNNpp(RecurrentNet):
    """Causal LSTM stack with a GHU after the first layer. Any T in, any number of frames out.

    The recurrent state, as :meth:`init_states` returns and :meth:`step` carries it, is
    ``(layers, m, z)``: ``layers`` a list of ``(H, C)`` per cell, ``m`` the zigzag memory, ``z`` the
    GHU's state. It lives only inside one forward call (or one stream of the Forecaster).
    """

    arch = "predrnnpp"
    config_class = PredRNNppConfig

    def __init__(self, config: PredRNNppConfig | None = None, **overrides: Any):
        super().__init__(config, **overrides)
        self.ghu = GradientHighwayUnit(self.num_hidden, self.config.filter_size)

    def make_cell(self, c_in: int, c_hid: int, filter_size: int) -> nn.Module:
        return CausalLSTMCell(c_in, c_hid, filter_size)

    def init_states(
        self, batch: int, h: int, w: int, like: Tensor
    ) -> tuple[list[tuple[Tensor, Tensor]], Tensor, Tensor]:
        z = like.new_zeros(batch, self.num_hidden, h, w)
        return [cell.init_state(batch, h, w, like) for cell in self.cells], z, z

    def step(self, frame: Tensor, states: Any) -> tuple[Tensor, Any]:
        layers, m, z = states
        x = self._encode(frame)  # B×P×h×w
        new_layers = []
        for i, (cell, (h, c)) in enumerate(zip(self.cells, layers)):
            h, c, m = cell(x, h, c, m)  # M goes up the stack
            new_layers.append((h, c))
            if i == 0:
                z = self.ghu(h, z)
                x = z  # the GHU feeds the second layer
            else:
                x = h
        return self.unpatchify(self.readout(x)), (new_layers, m, z)


#: OpenSTL's Moving MNIST training (configs/mmnist/PredRNNpp.py, openstl/methods/predrnnpp.py → PredRNN):
#: Adam at lr 1e-4 with a OneCycle schedule, batch 16, 200 epochs of 10,000 sequences (125,000 steps);
#: MSE on every one-step prediction (frames 2..20); scheduled sampling with the teacher-forcing
#: probability falling linearly from 1 by 2e-5 per step to 0 at step 50,000 = 0.4 of the run.
PREDRNNPP_RECIPE = Recipe(lr=1e-4, batch_size=16, epochs=200, epoch_size=10000, loss="mse", scheduled_sampling=0.4)

ARCHITECTURE = register(
    Architecture(
        name="predrnnpp",
        model=PredRNNpp,
        config=PredRNNppConfig,
        **{**recurrent_declaration("cells.0.conv_x.weight"), "recipe": PREDRNNPP_RECIPE},
        activation_floats=rollout_activation_floats,
        tiny_config=recurrent_tiny_config(),
        description="PredRNN++ (Wang et al., ICML 2018): Causal LSTM cells with a zigzag memory and a "
        "Gradient Highway Unit",
    )
)
