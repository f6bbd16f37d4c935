"""ConvLSTM (Shi et al., NeurIPS 2015), the baseline both TAU and SA-ConvLSTM compare against.

    i = σ(W_xi * X + W_hi * H + b_i)      f = σ(W_xf * X + W_hf * H + b_f)
    g = tanh(W_xg * X + W_hg * H + b_g)   o = σ(W_xo * X + W_ho * H + b_o)
    C' = f ∘ C + i ∘ g                    H' = o ∘ tanh(C')

Like the widely used reference implementations, the peephole terms (W_c ∘ C) of the original paper
are left out. The forget-gate bias starts at 1. Frames enter through a patch reshape (PixelUnshuffle)
so a 64×64 frame with patch size 4 becomes a 16-channel 16×16 grid.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from stzoo.models.base import Architecture, register
from stzoo.models.recurrent import (
    RecurrentConfig,
    RecurrentNet,
    recurrent_declaration,
    recurrent_tiny_config,
    rollout_activation_floats,
)

__all__ = ["ConvLSTM", "ConvLSTMCell", "ConvLSTMConfig", "ARCHITECTURE"]


@dataclass
class ConvLSTMConfig(RecurrentConfig):
    """ConvLSTM's settings: those of every patch-reshape recurrent net (see RecurrentConfig)."""


class ConvLSTMCell(nn.Module):
    def __init__(self, c_in: int, c_hid: int, filter_size: int = 5):
        super().__init__()
        pad = filter_size // 2
        self.c_hid = c_hid
        self.conv_x = nn.Conv2d(c_in, 4 * c_hid, filter_size, padding=pad, bias=True)
        self.conv_h = nn.Conv2d(c_hid, 4 * c_hid, filter_size, padding=pad, bias=False)
        with torch.no_grad():
            self.conv_x.bias.zero_()
            self.conv_x.bias[c_hid : 2 * c_hid].fill_(1.0)  # gate order i, f, g, o

    def init_state(self, batch: int, h: int, w: int, like: Tensor) -> tuple[Tensor, Tensor]:
        z = like.new_zeros(batch, self.c_hid, h, w)
        return z, z

    def forward(self, x: Tensor, state: tuple[Tensor, Tensor]) -> tuple[Tensor, tuple[Tensor, Tensor]]:
        h, c = state
        i, f, g, o = torch.chunk(self.conv_x(x) + self.conv_h(h), 4, dim=1)
        c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        h = torch.sigmoid(o) * torch.tanh(c)
        return h, (h, c)


class ConvLSTM(RecurrentNet):
    """A stack of ConvLSTM cells with a 1×1 readout. Any T in, any number of frames out."""

    arch = "convlstm"
    config_class = ConvLSTMConfig

    def make_cell(self, c_in: int, c_hid: int, filter_size: int) -> nn.Module:
        return ConvLSTMCell(c_in, c_hid, filter_size)


ARCHITECTURE = register(
    Architecture(
        name="convlstm",
        model=ConvLSTM,
        config=ConvLSTMConfig,
        **recurrent_declaration("cells.0.conv_x.weight"),
        activation_floats=rollout_activation_floats,
        tiny_config=recurrent_tiny_config(),
        description="ConvLSTM (Shi et al., NeurIPS 2015): stacked convolutional LSTM cells over patch grids",
    )
)
