"""SA-ConvLSTM (Lin et al., AAAI 2020): ConvLSTM + Self-Attention Memory (SAM).

Each layer is a ConvLSTM cell whose hidden state H_t then goes through the SAM, eqs. (2)–(9):

    Q_h = W_q H,  K_h = W_k H,  V_h = W_v H          (1×1 convs; N = h·w positions)
    Z_h = V_h · softmax(Q_hᵀ K_h)ᵀ                    (H attends over itself)
    K_m = W_mk M_{t−1},  V_m = W_mv M_{t−1}
    Z_m = V_m · softmax(Q_hᵀ K_m)ᵀ                    (H attends over the memory)
    Z   = W_z [Z_h ; Z_m]
    i', g', o' from [Z ; H_t] (depthwise-separable convs, as in the paper)
    M_t = (1 − i') ∘ M_{t−1} + i' ∘ g'
    Ĥ_t = o' ∘ M_t

Scores are unscaled (no 1/√d), as in the paper. Ĥ_t is both the layer's output and the hidden state
carried to the next step; C_t and M_t are carried too.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from stzoo.models.base import Architecture, cfg_field, register
from stzoo.models.convlstm import ConvLSTMCell
from stzoo.models.recurrent import (
    RecurrentConfig,
    RecurrentNet,
    recurrent_declaration,
    recurrent_tiny_config,
    rollout_activation_floats,
)

__all__ = ["SAConvLSTM", "SelfAttentionMemory", "SAConvLSTMCell", "SAConvLSTMConfig", "ARCHITECTURE"]


@dataclass
class SAConvLSTMConfig(RecurrentConfig):
    """SA-ConvLSTM's settings: the recurrent ones plus the width of the attention's queries and keys."""

    attn_dim: int = cfg_field(16, lo=1, hi=1024)  # d of Q and K in the self-attention memory


class SelfAttentionMemory(nn.Module):
    def __init__(self, c_hid: int, attn_dim: int, kernel_size: int = 3):
        super().__init__()
        self.q = nn.Conv2d(c_hid, attn_dim, 1)
        self.k_h = nn.Conv2d(c_hid, attn_dim, 1)
        self.v_h = nn.Conv2d(c_hid, c_hid, 1)
        self.k_m = nn.Conv2d(c_hid, attn_dim, 1)
        self.v_m = nn.Conv2d(c_hid, c_hid, 1)
        # W_z. The attribute keeps the name of the released checkpoints' keys (`...sam.fuse.weight`); it is not
        # one of the fused twins of stzoo.kernels.
        self.fuse = nn.Conv2d(2 * c_hid, c_hid, 1)
        # depthwise-separable conv producing i', g', o' from [Z ; H]
        self.gates_dw = nn.Conv2d(2 * c_hid, 2 * c_hid, kernel_size, padding=kernel_size // 2, groups=2 * c_hid)
        self.gates_pw = nn.Conv2d(2 * c_hid, 3 * c_hid, 1)

    @staticmethod
    def attend(q: Tensor, k: Tensor, v: Tensor) -> Tensor:
        """Z = V · softmax(Qᵀ K)ᵀ with q, k: B×d×N, v: B×C×N. Materialises the N×N scores."""
        scores = torch.softmax(q.transpose(1, 2) @ k, dim=-1)  # B×N×N, row n: where n looks
        return v @ scores.transpose(1, 2)  # B×C×N

    def forward(self, h: Tensor, m: Tensor) -> tuple[Tensor, Tensor]:
        b, c, hh, ww = h.shape
        q = self.q(h).flatten(2)
        z_h = self.attend(q, self.k_h(h).flatten(2), self.v_h(h).flatten(2))
        z_m = self.attend(q, self.k_m(m).flatten(2), self.v_m(m).flatten(2))
        z = self.fuse(torch.cat([z_h, z_m], dim=1).view(b, 2 * c, hh, ww))
        i, g, o = torch.chunk(self.gates_pw(self.gates_dw(torch.cat([z, h], dim=1))), 3, dim=1)
        i = torch.sigmoid(i)
        m = (1 - i) * m + i * torch.tanh(g)
        return torch.sigmoid(o) * m, m


class SAConvLSTMCell(nn.Module):
    def __init__(self, c_in: int, c_hid: int, filter_size: int = 5, attn_dim: int = 16):
        super().__init__()
        self.c_hid = c_hid
        self.lstm = ConvLSTMCell(c_in, c_hid, filter_size)
        self.sam = SelfAttentionMemory(c_hid, attn_dim)

    def init_state(self, batch: int, h: int, w: int, like: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        z = like.new_zeros(batch, self.c_hid, h, w)
        return z, z, z

    def forward(self, x: Tensor, state: tuple[Tensor, Tensor, Tensor]):
        h, c, m = state
        h, (_, c) = self.lstm(x, (h, c))
        h, m = self.sam(h, m)
        return h, (h, c, m)


class SAConvLSTM(RecurrentNet):
    """A stack of SA-ConvLSTM cells. Any T in, any number of frames out."""

    arch = "sa_convlstm"
    config_class = SAConvLSTMConfig

    def __init__(self, config: SAConvLSTMConfig | None = None, **overrides):
        cfg = SAConvLSTMConfig.from_dict({**(config.to_dict() if config else {}), **overrides})
        self.attn_dim = cfg.attn_dim
        super().__init__(cfg)

    def make_cell(self, c_in: int, c_hid: int, filter_size: int) -> nn.Module:
        return SAConvLSTMCell(c_in, c_hid, filter_size, self.attn_dim)


ARCHITECTURE = register(
    Architecture(
        name="sa_convlstm",
        model=SAConvLSTM,
        config=SAConvLSTMConfig,
        **recurrent_declaration("cells.0.lstm.conv_x.weight"),
        # plus the self-attention memory: quadratic in positions
        activation_floats=lambda cfg, b, t, h, w: (
            rollout_activation_floats(cfg, b, t, h, w) + b * 4.0 * cfg.num_layers * (h * w / cfg.patch_size**2) ** 2
        ),
        tiny_config=recurrent_tiny_config(attn_dim=4),
        description="SA-ConvLSTM (Lin et al., AAAI 2020): ConvLSTM cells with a self-attention memory",
    )
)
