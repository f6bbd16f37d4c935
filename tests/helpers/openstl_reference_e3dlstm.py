"""An independent reference of OpenSTL's E3D-LSTM, for testing stzoo's importer and model.

Like ``tests/openstl_reference.py`` (whose ``reshape_patch`` helpers it reuses), this re-states from
reading OpenSTL's source (1) the tensor names and shapes of its checkpoints and (2) its inference
forward pass, as plain ``torch.nn.functional`` calls on an OpenSTL-layout state dict. It shares no code
with ``stzoo.convert`` or ``stzoo.models``, and it keeps everything stzoo leaves out (the full 7-chunk
``conv_x``, ``conv_gm`` applied to the global memory, the memory carried through the layers), so a wrong
claim that those are dead shows up as a difference in outputs.

Files read (OpenSTL master):

* ``openstl/models/e3dlstm_model.py``: ``E3DLSTM_Model`` (``window_length = 2``, ``window_stride = 1``;
  ``cell_list`` of ``Eidetic3DLSTMCell(in, hidden, window, H/p, W/p, (2, 5, 5), stride, layer_norm)``;
  model-level ``conv_last`` = Conv3d(hidden → p²C, kernel (window, 1, 1), stride (window, 1, 1), no bias);
  ``input_list`` starts with ``window − 1`` zero frames, each step appends the (mixed) input and feeds
  ``stack(input_list[t:])`` as B×C×window×h×w; per layer ``c_history`` = the first cell at t = 0, then
  ``cat(c_history, c_t)`` along channels; ``memory`` is passed to every cell and replaced by what it
  returns; output ``conv_last(h_top).squeeze(2)``; ``total_length − 1`` steps).
* ``openstl/modules/e3dlstm_modules.py``: ``tf_Conv3d`` (Conv3d, then ``F.interpolate(size=input depth,
  h, w, mode="nearest")``), ``Eidetic3DLSTMCell`` (``_norm_c_t`` LayerNorm([hidden, window, h, w]);
  ``conv_x`` 7·hidden split i, g, r, o, i', g', f'; ``conv_h`` 4·hidden i, g, r, o; ``conv_gm`` 4·hidden
  i, f, g, m on the global memory; ``conv_new_cell``, ``conv_new_gm``; ``conv_last`` 1×1×1 on the
  concatenated cell and memory; ``_attn`` = softmax(q kᵀ) v with ``reshape(batch, −1, channels)``;
  forget bias 1.0; ``forward`` returns ``(output, new_cell, global_memory)``).
* ``openstl/methods/e3dlstm.py`` → ``openstl/methods/predrnn.py`` (inference: zero ``real_input_flag``),
  ``openstl/utils/predrnn_utils.py`` (``reshape_patch``), ``configs/mmnist/E3DLSTM.py``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from helpers.openstl_reference import _rand, reshape_patch, reshape_patch_back


def e3dlstm_shapes(
    *, patch_channels: int, num_hidden: list[int], grid: tuple[int, int], filter_size: int = 5, window: int = 2
) -> dict[str, tuple]:
    """Every tensor of OpenSTL's ``E3DLSTM_Model`` (layer_norm=0, stride 1) and its shape."""
    k = filter_size
    shapes: dict[str, tuple] = {}
    for i, n in enumerate(num_hidden):
        c_in = patch_channels if i == 0 else num_hidden[i - 1]
        p = f"cell_list.{i}"
        shapes[f"{p}._norm_c_t.weight"] = (n, window, *grid)
        shapes[f"{p}._norm_c_t.bias"] = (n, window, *grid)
        shapes[f"{p}.conv_x.0.conv3d.weight"] = (7 * n, c_in, 2, k, k)
        shapes[f"{p}.conv_h.0.conv3d.weight"] = (4 * n, n, 2, k, k)
        shapes[f"{p}.conv_gm.0.conv3d.weight"] = (4 * n, n, 2, k, k)
        shapes[f"{p}.conv_new_cell.0.conv3d.weight"] = (n, n, 2, k, k)
        shapes[f"{p}.conv_new_gm.0.conv3d.weight"] = (n, n, 2, k, k)
        shapes[f"{p}.conv_last.conv3d.weight"] = (n, 2 * n, 1, 1, 1)
    shapes["conv_last.weight"] = (patch_channels, num_hidden[-1], window, 1, 1)
    return shapes


def e3dlstm_state_dict(
    *,
    patch_channels: int,
    num_hidden: list[int],
    grid: tuple[int, int],
    filter_size: int = 5,
    window: int = 2,
    seed: int = 0,
    gain: float = 1.5,
) -> dict[str, Tensor]:
    """Random weights in the layout of OpenSTL's ``E3DLSTM_Model``: convs with std gain/√fan-in, the
    LayerNorm affine weights 1 ± 0.3 and biases ± 0.3 per position, so that all of them matter."""
    g = torch.Generator().manual_seed(seed)
    out = {}
    for key, shape in e3dlstm_shapes(
        patch_channels=patch_channels, num_hidden=num_hidden, grid=grid, filter_size=filter_size, window=window
    ).items():
        if key.endswith("_norm_c_t.weight"):
            out[key] = 1.0 + _rand(g, *shape, scale=0.3)
        elif key.endswith("_norm_c_t.bias"):
            out[key] = _rand(g, *shape, scale=0.3)
        else:
            out[key] = _rand(g, *shape) * gain
    return out


def _tf_conv3d(x: Tensor, w: Tensor, stride: int = 1) -> Tensor:
    """``tf_Conv3d``: Conv3d (padding 0 in depth, k//2 in space, the config's ``stride`` on all three axes
    as the int OpenSTL passes; its KTH config has 2), then a nearest resize to the input's depth × height ×
    width."""
    y = F.conv3d(x, w, stride=stride, padding=(0, w.shape[-2] // 2, w.shape[-1] // 2))
    return F.interpolate(y, size=x.shape[-3:], mode="nearest")


def _attn(q: Tensor, k: Tensor, v: Tensor) -> Tensor:
    b, c = q.shape[:2]
    qq, kk, vv = q.reshape(b, -1, c), k.reshape(b, -1, c), v.reshape(b, -1, c)
    a = torch.softmax(torch.einsum("bxc,byc->bxy", qq, kk), dim=2)
    return torch.einsum("bxy,byc->bxc", a, vv).reshape(b, c, -1, q.shape[-2], q.shape[-1])


def _cell(
    sd: dict, p: str, x: Tensor, h: Tensor, c: Tensor, gm: Tensor, history: Tensor, s: int = 1
) -> tuple[Tensor, Tensor, Tensor]:
    n = h.shape[1]
    i_h, g_h, r_h, o_h = torch.split(_tf_conv3d(h, sd[f"{p}.conv_h.0.conv3d.weight"], s), n, dim=1)
    i_x, g_x, r_x, o_x, ti_x, tg_x, tf_x = torch.split(_tf_conv3d(x, sd[f"{p}.conv_x.0.conv3d.weight"], s), n, dim=1)
    i_t, r_t, g_t = torch.sigmoid(i_x + i_h), torch.sigmoid(r_x + r_h), torch.tanh(g_x + g_h)
    new_c = c + _attn(r_t, history, history)
    new_c = F.layer_norm(new_c, new_c.shape[1:], sd[f"{p}._norm_c_t.weight"], sd[f"{p}._norm_c_t.bias"]) + i_t * g_t
    i_m, f_m, g_m, m_m = torch.split(_tf_conv3d(gm, sd[f"{p}.conv_gm.0.conv3d.weight"], s), n, dim=1)
    new_gm = torch.sigmoid(tf_x + f_m + 1.0) * torch.tanh(m_m) + torch.sigmoid(ti_x + i_m) * torch.tanh(tg_x + g_m)
    o_c = _tf_conv3d(new_c, sd[f"{p}.conv_new_cell.0.conv3d.weight"], s)
    o_m = _tf_conv3d(new_gm, sd[f"{p}.conv_new_gm.0.conv3d.weight"], s)
    gate = torch.tanh(o_x + o_h + o_c + o_m)
    mem = _tf_conv3d(torch.cat((new_c, new_gm), 1), sd[f"{p}.conv_last.conv3d.weight"])
    return torch.tanh(mem) * torch.sigmoid(gate), new_c, gm  # the memory given, not new_gm (as OpenSTL)


def e3dlstm_model_forward(
    sd: dict[str, Tensor],
    frames_tensor: Tensor,
    mask_true: Tensor,
    *,
    pre_seq_length: int,
    aft_seq_length: int,
    window: int = 2,
    stride: int = 1,
) -> Tensor:
    """``E3DLSTM_Model.forward`` (reverse_scheduled_sampling=0): channels-last patches B×T×h×w×p²C and a
    channels-last mask in, the ``T − 1`` one-step predictions out (channels-last)."""
    frames = frames_tensor.permute(0, 1, 4, 2, 3).contiguous()
    mask = mask_true.permute(0, 1, 4, 2, 3).contiguous()
    b, _, _, height, width = frames.shape
    n_layers = len({k.split(".")[1] for k in sd if k.startswith("cell_list.")})
    hidden = [sd[f"cell_list.{i}.conv_h.0.conv3d.weight"].shape[1] for i in range(n_layers)]
    input_list = [torch.zeros_like(frames[:, 0]) for _ in range(window - 1)]
    h_t = [frames.new_zeros(b, hidden[i], window, height, width) for i in range(n_layers)]
    c_t = [frames.new_zeros(b, hidden[i], window, height, width) for i in range(n_layers)]
    c_history: list[Tensor] = [torch.zeros(0)] * n_layers
    memory = frames.new_zeros(b, hidden[0], window, height, width)
    x_gen = None
    next_frames = []
    for t in range(pre_seq_length + aft_seq_length - 1):
        if t < pre_seq_length:
            net = frames[:, t]
        else:
            net = mask[:, t - pre_seq_length] * frames[:, t] + (1 - mask[:, t - pre_seq_length]) * x_gen
        input_list.append(net)
        net = torch.stack(input_list[t:], dim=0).permute(1, 2, 0, 3, 4).contiguous()  # window_stride 1: every t
        for i in range(n_layers):
            c_history[i] = c_t[i] if t == 0 else torch.cat((c_history[i], c_t[i]), 1)
            inp = net if i == 0 else h_t[i - 1]
            h_t[i], c_t[i], memory = _cell(sd, f"cell_list.{i}", inp, h_t[i], c_t[i], memory, c_history[i], stride)
        x_gen = F.conv3d(h_t[-1], sd["conv_last.weight"], stride=(window, 1, 1)).squeeze(2)
        next_frames.append(x_gen)
    return torch.stack(next_frames, dim=0).permute(1, 0, 3, 4, 2).contiguous()


@torch.no_grad()
def e3dlstm_predict(
    sd: dict[str, Tensor], batch_x: Tensor, batch_y: Tensor, patch_size: int, stride: int = 1
) -> Tensor:
    """OpenSTL's ``E3DLSTM`` method ``forward`` (``PredRNN.forward``: inference) on B×T×C×H×W: the
    ``batch_y.shape[1]`` predicted frames. ``batch_y`` only enters multiplied by a zero mask."""
    pre, aft = batch_x.shape[1], batch_y.shape[1]
    b, _, c, h, w = batch_x.shape
    p = patch_size
    window = sd["conv_last.weight"].shape[2]
    dat = reshape_patch(torch.cat([batch_x, batch_y], dim=1).permute(0, 1, 3, 4, 2).contiguous(), p)
    flag = batch_x.new_zeros(b, aft - 1, h // p, w // p, p * p * c)
    gen = e3dlstm_model_forward(sd, dat, flag, pre_seq_length=pre, aft_seq_length=aft, window=window, stride=stride)
    gen = reshape_patch_back(gen, p)
    return gen[:, -aft:].permute(0, 1, 4, 2, 3).contiguous()
