"""An independent reference of OpenSTL's CrevNet, for testing stzoo's importer and model.

It re-states from reading OpenSTL's source (1) the tensor names and shapes of its checkpoints and (2) its
test-time forward pass, with OpenSTL's module structure and names (``psi``, ``irevnet_block`` with its
``bottleneck_block`` Sequential, ``autoencoder``, ``STConvLSTMCell``, ``zig_rev_predictor``) and its loops
literally (the windows ``input[j]``, ``pre_seq_length − 1``, the pasted frames). It shares no code with
``stzoo.convert`` or ``stzoo.models``. Only what needs CUDA or a fixed batch is changed: the zero states are
made on the input's device at the input's batch and size (OpenSTL: ``.cuda()``, ``batch_size``, 8×8).

Files read (OpenSTL tag ``OpenSTLv0.3.0``; CrevNet was removed from the later branches):

* ``openstl/modules/crevnet_modules.py``: ``psi`` (space-to-depth with its own ``inverse``),
  ``irevnet_block`` (``bottleneck_block`` = ``[BN, ReLU,] Conv3d(in/2 → out/mult, stride (1,2,2) when
  halving), BN, ReLU, Conv3d, Dropout, BN, ReLU, Conv3d(→ out)``, no conv biases; the first block without
  the leading BN + ReLU), ``autoencoder`` (``init_psi = psi(2)``, ``nChannels = [in/2, in/2·4, in/2·16,
  in/2·64]``), ``STConvLSTMCell`` (eight convs, 3×3×3 but ``w1`` 1×1×1), ``zig_rev_predictor`` (``att[i]`` =
  ``Conv3d(h, h, 1)`` + sigmoid, halves swapped after every layer).
* ``openstl/models/crevnet_model.py``: ``CrevNet_Model`` (``nBlocks=[4,5,3]``, ``nStrides=[1,2,2]``,
  ``init_ds=2``, ``mult=2``) and its ``forward(training=False)``.
* ``openstl/methods/crevnet.py``: ``pre_seq_length`` is shortened by 2; ``_predict`` runs
  ``cat([batch_x, batch_y])``.
* ``configs/mmnist/CrevNet.py``: ``n_eval = 18``, ``rnn_size = 32``, ``predictor_rnn_layers = 8``.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn


class psi(nn.Module):  # noqa: N801  (OpenSTL's name)
    def __init__(self, block_size: int) -> None:
        super().__init__()
        self.block_size = block_size
        self.block_size_sq = block_size * block_size

    def inverse(self, input: Tensor) -> Tensor:
        output = input.permute(0, 2, 3, 4, 1)
        (batch_size, temp, d_height, d_width, d_depth) = output.size()
        s_depth = int(d_depth / 4)
        s_width = int(d_width * 2)
        s_height = int(d_height * 2)
        t_1 = output.contiguous().view(batch_size, temp, d_height, d_width, 4, s_depth)
        spl = t_1.split(2, 4)
        stack = [t_t.contiguous().view(batch_size, temp, d_height, s_width, s_depth) for t_t in spl]
        output = (
            torch.stack(stack, 0)
            .transpose(0, 1)
            .transpose(1, 2)
            .permute(0, 1, 3, 2, 4, 5)
            .contiguous()
            .view(batch_size, temp, s_height, s_width, s_depth)
        )
        return output.permute(0, 4, 1, 2, 3).contiguous()

    def forward(self, input: Tensor) -> Tensor:
        output = input.permute(0, 2, 3, 4, 1)
        (batch_size, temp, s_height, s_width, s_depth) = output.size()
        d_depth = s_depth * self.block_size_sq
        d_height = int(s_height / self.block_size)
        t_1 = output.split(self.block_size, 3)
        stack = [t_t.contiguous().view(batch_size, temp, d_height, d_depth) for t_t in t_1]
        output = torch.stack(stack, 2)
        return output.permute(0, 4, 1, 3, 2).contiguous()


class irevnet_block(nn.Module):  # noqa: N801
    def __init__(self, in_ch: int, out_ch: int, stride: int = 1, first: bool = False, mult: int = 2) -> None:
        super().__init__()
        self.stride = stride
        self.psi = psi(stride)
        layers: list[nn.Module] = []
        if not first:
            layers += [nn.BatchNorm3d(in_ch // 2), nn.ReLU()]
        ch = 1 if int(out_ch // mult) == 0 else int(out_ch // mult)
        stride3 = (1, 2, 2) if stride == 2 else stride
        layers += [
            nn.Conv3d(in_ch // 2, ch, kernel_size=3, stride=stride3, padding=1, bias=False),
            nn.BatchNorm3d(ch),
            nn.ReLU(),
            nn.Conv3d(ch, ch, kernel_size=3, padding=1, bias=False),
            nn.Dropout(p=0.0),
            nn.BatchNorm3d(ch),
            nn.ReLU(),
            nn.Conv3d(ch, out_ch, kernel_size=3, padding=1, bias=False),
        ]
        self.bottleneck_block = nn.Sequential(*layers)

    def forward(self, x: tuple[Tensor, Tensor]) -> tuple[Tensor, Tensor]:
        x1, x2 = x
        Fx2 = self.bottleneck_block(x2)  # noqa: N806
        if self.stride == 2:
            x1 = self.psi.forward(x1)
            x2 = self.psi.forward(x2)
        return (x2, Fx2 + x1)

    def inverse(self, x: tuple[Tensor, Tensor]) -> tuple[Tensor, Tensor]:
        x2, y1 = x[0], x[1]
        if self.stride == 2:
            x2 = self.psi.inverse(x2)
        Fx2 = -self.bottleneck_block(x2)  # noqa: N806
        x1 = Fx2 + y1
        if self.stride == 2:
            x1 = self.psi.inverse(x1)
        return (x1, x2)


class autoencoder(nn.Module):  # noqa: N801
    def __init__(self, nBlocks: list[int], nStrides: list[int], in_channels: int, init_ds: int = 2, mult: int = 2):  # noqa: N803
        super().__init__()
        self.init_ds = init_ds
        self.in_ch = in_channels * 2**init_ds
        nChannels = [self.in_ch // 2 * 4**k for k in range(4)]  # noqa: N806
        self.init_psi = psi(init_ds)
        self.stack = nn.ModuleList()
        in_ch, first = self.in_ch, True
        strides, channels = [], []
        for channel, depth, stride in zip(nChannels, nBlocks, nStrides):
            strides += [stride] + [1] * (depth - 1)
            channels += [channel] * depth
        for channel, stride in zip(channels, strides):
            self.stack.append(irevnet_block(in_ch, channel, stride, first=first, mult=mult))
            in_ch, first = 2 * channel, False

    def forward(self, input, is_predict: bool = True):
        if is_predict:
            n = self.in_ch // 2
            x = self.init_psi.forward(input)
            out = (x[:, :n], x[:, n:])
            for block in self.stack:
                out = block.forward(out)
            return out
        out = input
        for i in range(len(self.stack)):
            out = self.stack[-1 - i].inverse(out)
        out = torch.cat((out[0], out[1]), 1)
        return self.init_psi.inverse(out)


class STConvLSTMCell(nn.Module):
    def __init__(self, input_size: int, hidden_size: int, memo_size: int) -> None:
        super().__init__()
        k, p = 3, 1
        self.in_gate = nn.Conv3d(input_size + 2 * hidden_size, hidden_size, k, padding=p)
        self.remember_gate = nn.Conv3d(input_size + 2 * hidden_size, hidden_size, k, padding=p)
        self.cell_gate = nn.Conv3d(input_size + 2 * hidden_size, hidden_size, k, padding=p)
        self.in_gate1 = nn.Conv3d(input_size + memo_size + hidden_size, memo_size, k, padding=p)
        self.remember_gate1 = nn.Conv3d(input_size + memo_size + hidden_size, memo_size, k, padding=p)
        self.cell_gate1 = nn.Conv3d(input_size + memo_size + hidden_size, memo_size, k, padding=p)
        self.w1 = nn.Conv3d(hidden_size + memo_size, hidden_size, 1)
        self.out_gate = nn.Conv3d(input_size + 2 * hidden_size + memo_size, hidden_size, k, padding=p)

    def forward(self, input, prev_state):
        input_, prev_memo = input
        prev_hidden, prev_cell = prev_state
        stacked_inputs = torch.cat((input_, prev_hidden, prev_cell), 1)
        in_gate = torch.sigmoid(self.in_gate(stacked_inputs))
        remember_gate = torch.sigmoid(self.remember_gate(stacked_inputs))
        cell_gate = torch.tanh(self.cell_gate(stacked_inputs))
        cell = (remember_gate * prev_cell) + (in_gate * cell_gate)
        stacked_inputs1 = torch.cat((input_, prev_memo, cell), 1)
        in_gate1 = torch.sigmoid(self.in_gate1(stacked_inputs1))
        remember_gate1 = torch.sigmoid(self.remember_gate1(stacked_inputs1))
        cell_gate1 = torch.tanh(self.cell_gate1(stacked_inputs1))
        memo = (remember_gate1 * prev_memo) + (in_gate1 * cell_gate1)
        out_gate = torch.sigmoid(self.out_gate(torch.cat((input_, prev_hidden, cell, memo), 1)))
        hidden = out_gate * torch.tanh(self.w1(torch.cat((cell, memo), 1)))
        return (hidden, cell), memo


class zig_rev_predictor(nn.Module):  # noqa: N801
    def __init__(self, input_size: int, hidden_size: int, n_layers: int) -> None:
        super().__init__()
        self.hidden_size, self.n_layers = hidden_size, n_layers
        self.convlstm = nn.ModuleList(
            STConvLSTMCell(input_size if i == 0 else hidden_size, hidden_size, hidden_size) for i in range(n_layers)
        )
        self.att = nn.ModuleList(
            nn.Sequential(nn.Conv3d(hidden_size, hidden_size, 1, 1, 0), nn.Sigmoid()) for _ in range(n_layers)
        )
        self.hidden: list = []

    def init_hidden(self, batch: int, temp: int, h: int, w: int, like: Tensor) -> list:
        z = like.new_zeros(batch, self.hidden_size, temp, h, w)
        return [(z, z) for _ in range(self.n_layers)]

    def forward(self, input):
        input_, memo = input
        x1, x2 = input_
        for i in range(self.n_layers):
            out = self.convlstm[i]((x1, memo), self.hidden[i])
            self.hidden[i] = out[0]
            memo = out[1]
            g = self.att[i](self.hidden[i][0])
            x2 = (1 - g) * x2 + g * self.hidden[i][0]
            x1, x2 = x2, x1
        return (x1, x2), memo


class CrevNet_Model(nn.Module):  # noqa: N801
    """OpenSTL's model (its ``nBlocks``, ``nStrides`` and ``mult`` as arguments so a tiny one can be built)."""

    def __init__(
        self,
        channels: int,
        rnn_size: int,
        predictor_rnn_layers: int,
        nBlocks: tuple[int, ...] = (4, 5, 3),  # noqa: N803
        nStrides: tuple[int, ...] = (1, 2, 2),  # noqa: N803
        mult: int = 2,
    ) -> None:
        super().__init__()
        self.rnn_size = rnn_size
        self.frame_predictor = zig_rev_predictor(rnn_size, rnn_size, predictor_rnn_layers)
        self.encoder = autoencoder(list(nBlocks), list(nStrides), channels, init_ds=2, mult=mult)
        self.down = 2 ** (1 + nStrides.count(2))

    @torch.no_grad()
    def predict(self, x: Tensor, pre_seq_length: int, n_eval: int) -> Tensor:
        """``forward(x, training=False)``'s forecast (the loss pass before it changes nothing in eval mode)."""
        B, T, C, H, W = x.shape  # noqa: N806
        input = [torch.stack((x[:, j], x[:, j + 1], x[:, j + 2]), 2) for j in range(n_eval)]
        s = self.down
        self.frame_predictor.hidden = self.frame_predictor.init_hidden(B, 3, H // s, W // s, x)
        memo = x.new_zeros(B, self.rnn_size, 3, H // s, W // s)
        gen_seq = []
        x_in = input[pre_seq_length - 1]
        for i in range(pre_seq_length, n_eval):
            h = self.encoder(x_in)
            h_pred, memo = self.frame_predictor((h, memo))
            if i == pre_seq_length:
                x_in = self.encoder(h_pred, False).detach()
                x_in[:, :, 0] = input[i][:, :, 0]
                x_in[:, :, 1] = input[i][:, :, 1]
            elif i == pre_seq_length + 1:
                x_in = self.encoder(h_pred, False).detach()
                x_in[:, :, 0] = input[i][:, :, 0]
            else:
                x_in = self.encoder(h_pred, False).detach()
            gen_seq.append(x_in[:, :, 2])  # OpenSTL keeps channel 0 only (x_in[:, 0, 2]); all channels here
        return torch.stack(gen_seq, dim=1)


def crevnet_state_dict(
    channels: int = 1,
    rnn_size: int | None = None,
    predictor_rnn_layers: int = 8,
    nBlocks: tuple[int, ...] = (4, 5, 3),  # noqa: N803
    seed: int = 0,
) -> dict[str, Tensor]:
    """Random weights in the layout of OpenSTL's ``CrevNet_Model`` (BatchNorm statistics and affine terms
    random too, so eval-mode normalisation is not the identity)."""
    strides = (1,) + (2,) * (len(nBlocks) - 1)
    rnn = rnn_size if rnn_size is not None else 2 * channels * 4 ** (len(nBlocks) - 1)
    torch.manual_seed(seed)
    model = CrevNet_Model(channels, rnn, predictor_rnn_layers, tuple(nBlocks), strides)
    g = torch.Generator().manual_seed(seed)
    state = {}
    for k, v in model.state_dict().items():
        if k.endswith("num_batches_tracked"):
            state[k] = torch.tensor(100 + seed)
        elif k.endswith("running_var"):
            state[k] = 0.5 + torch.rand(v.shape, generator=g)
        elif k.endswith("running_mean"):
            state[k] = 0.1 * torch.randn(v.shape, generator=g)
        elif ".bottleneck_block." in k and v.dim() == 1:  # BatchNorm affine terms
            state[k] = (1.0 if k.endswith("weight") else 0.0) + 0.1 * torch.randn(v.shape, generator=g)
        else:
            fan_in = max(v[0].numel(), 1) if v.dim() > 1 else 1
            state[k] = torch.randn(v.shape, generator=g) * (1.5 / fan_in**0.5 if v.dim() > 1 else 0.1)
    return state


def crevnet_shapes(**kw) -> dict[str, tuple[int, ...]]:
    """Every tensor of OpenSTL's ``CrevNet_Model`` at these arguments and its shape (built on the meta device)."""
    nb = tuple(kw.get("nBlocks", (4, 5, 3)))
    c = int(kw.get("channels", 1))
    rnn = kw.get("rnn_size") or 2 * c * 4 ** (len(nb) - 1)
    with torch.device("meta"):
        model = CrevNet_Model(c, rnn, int(kw.get("predictor_rnn_layers", 8)), nb, (1,) + (2,) * (len(nb) - 1))
    return {k: tuple(v.shape) for k, v in model.state_dict().items()}


def crevnet_predict(state: dict[str, Tensor], x: Tensor, y: Tensor, nBlocks=(4, 5, 3), mult: int = 2) -> Tensor:  # noqa: N803
    """OpenSTL's test-time forecast of ``y``'s frames after ``x`` (``_predict``: ``cat([x, y])``,
    ``pre_seq_length = T_in − 2``, ``n_eval = T_in + T_out − 2``) in eval mode."""
    layers = len({k.split(".")[2] for k in state if k.startswith("frame_predictor.convlstm.")})
    rnn = state["frame_predictor.att.0.0.weight"].shape[0]
    strides = (1,) + (2,) * (len(nBlocks) - 1)
    model = CrevNet_Model(x.shape[2], rnn, layers, tuple(nBlocks), strides, mult=mult)
    model.load_state_dict(state)
    model.eval()
    seq = torch.cat([x, y], dim=1)
    pre = x.shape[1] - 2
    return model.predict(seq, pre, pre + y.shape[1])


__all__ = ["CrevNet_Model", "crevnet_state_dict", "crevnet_shapes", "crevnet_predict"]
