"""An independent reference of OpenSTL's PredRNN and PredRNN-V2, for testing stzoo's importer and models.

Like ``tests/openstl_reference.py`` (whose ``reshape_patch`` helpers it reuses), this re-states from
OpenSTL's source (1) the tensor names and shapes of its checkpoints and (2) its forward pass, as plain
``torch.nn.functional`` calls on an OpenSTL-layout state dict. It shares no code with ``stzoo``.

Files read (OpenSTL master):

* ``openstl/models/predrnn_model.py`` (``PredRNN_Model``: ``cell_list`` of ``SpatioTemporalLSTMCell``,
  model-level ``conv_last`` 1×1 without bias; one ``memory`` tensor carried from cell to cell and from
  the last cell at t−1 to the first at t; ``total_length − 1`` steps mixing ground truth and the previous
  prediction through ``mask_true``; ``reverse_scheduled_sampling`` switches the mask to the input part too).
* ``openstl/models/predrnnv2_model.py`` (``PredRNNv2_Model``: the same plus a shared 1×1 ``adapter``
  without bias; the loss is MSE(next_frames, frames[:, 1:]) + ``decouple_beta`` · mean over steps and
  layers of mean |cosine_similarity(normalize(adapter(ΔC)), normalize(adapter(ΔM)))| over h·w).
* ``openstl/modules/predrnn_modules.py`` / ``predrnnv2_modules.py`` (``conv_x`` 7·hidden split
  i, f, g, i', f', g', o; ``conv_h`` 4·hidden i, f, g, o; ``conv_m`` 3·hidden i', f', g'; ``conv_o`` over
  [C ; M]; cell ``conv_last`` 1×1 over [C ; M]; all ``Sequential(conv without bias[, LayerNorm])`` except
  ``conv_last``; ``_forget_bias = 1.0`` added to f and f' in forward; ΔC = i·g, ΔM = i'·g').
* ``openstl/methods/predrnn.py`` (``forward``: the inference mask; ``PredRNNv2`` inherits it) and
  ``openstl/utils/predrnn_utils.py`` (``reshape_patch``, ``reserve_schedule_sampling_exp``).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from helpers.openstl_reference import relative_error, reshape_patch, reshape_patch_back  # noqa: F401 (re-exported)


def _w(g: torch.Generator, *shape: int, gain: float = 1.0) -> Tensor:
    fan_in = math.prod(shape[1:])
    return torch.randn(*shape, generator=g) * (gain / fan_in**0.5)


def predrnn_state_dict(
    *,
    patch_channels: int,
    num_hidden: list[int],
    filter_size: int = 5,
    v2: bool = False,
    layer_norm: bool = False,
    grid: tuple[int, int] = (16, 16),
    seed: int = 0,
    gain: float = 1.5,
) -> dict[str, Tensor]:
    """Random weights in the layout of OpenSTL's ``PredRNN_Model`` (or ``PredRNNv2_Model``), stride 1.

    ``gain`` scales every weight above the 1/√fan_in default so that the gates are far from their
    linear regime and a misplaced gate or channel changes the output visibly."""
    g = torch.Generator().manual_seed(seed)
    sd: dict[str, Tensor] = {}
    k = filter_size
    for i, h in enumerate(num_hidden):
        c_in = patch_channels if i == 0 else num_hidden[i - 1]
        sd[f"cell_list.{i}.conv_x.0.weight"] = _w(g, 7 * h, c_in, k, k, gain=gain)
        sd[f"cell_list.{i}.conv_h.0.weight"] = _w(g, 4 * h, h, k, k, gain=gain)
        sd[f"cell_list.{i}.conv_m.0.weight"] = _w(g, 3 * h, h, k, k, gain=gain)
        sd[f"cell_list.{i}.conv_o.0.weight"] = _w(g, h, 2 * h, k, k, gain=gain)
        if layer_norm:
            for name, n in (("conv_x", 7 * h), ("conv_h", 4 * h), ("conv_m", 3 * h), ("conv_o", h)):
                sd[f"cell_list.{i}.{name}.1.weight"] = torch.ones(n, *grid)
                sd[f"cell_list.{i}.{name}.1.bias"] = torch.zeros(n, *grid)
        sd[f"cell_list.{i}.conv_last.weight"] = _w(g, h, 2 * h, 1, 1, gain=gain)
    sd["conv_last.weight"] = _w(g, patch_channels, num_hidden[-1], 1, 1, gain=gain)
    if v2:
        sd["adapter.weight"] = _w(g, num_hidden[0], num_hidden[0], 1, 1, gain=gain)
    return sd


def _conv(sd: dict, name: str, x: Tensor) -> Tensor:
    w = sd[name]
    return F.conv2d(x, w, padding=w.shape[-1] // 2)


def _st_lstm(sd: dict, cell: str, x: Tensor, h: Tensor, c: Tensor, m: Tensor):
    """``SpatioTemporalLSTMCellv2.forward`` (v1's is the same without the two deltas)."""
    n = sd[f"{cell}.conv_h.0.weight"].shape[1]
    i_x, f_x, g_x, i_xp, f_xp, g_xp, o_x = torch.split(_conv(sd, f"{cell}.conv_x.0.weight", x), n, dim=1)
    i_h, f_h, g_h, o_h = torch.split(_conv(sd, f"{cell}.conv_h.0.weight", h), n, dim=1)
    i_m, f_m, g_m = torch.split(_conv(sd, f"{cell}.conv_m.0.weight", m), n, dim=1)
    i_t = torch.sigmoid(i_x + i_h)
    f_t = torch.sigmoid(f_x + f_h + 1.0)
    g_t = torch.tanh(g_x + g_h)
    delta_c = i_t * g_t
    c_new = f_t * c + delta_c
    i_tp = torch.sigmoid(i_xp + i_m)
    f_tp = torch.sigmoid(f_xp + f_m + 1.0)
    g_tp = torch.tanh(g_xp + g_m)
    delta_m = i_tp * g_tp
    m_new = f_tp * m + delta_m
    mem = torch.cat((c_new, m_new), 1)
    o_t = torch.sigmoid(o_x + o_h + _conv(sd, f"{cell}.conv_o.0.weight", mem))
    h_new = o_t * torch.tanh(F.conv2d(mem, sd[f"{cell}.conv_last.weight"]))
    return h_new, c_new, m_new, delta_c, delta_m


def predrnn_model_forward(
    sd: dict[str, Tensor],
    frames_tensor: Tensor,
    mask_true: Tensor,
    *,
    pre_seq_length: int,
    aft_seq_length: int,
    reverse_scheduled_sampling: int = 0,
    return_loss: bool = False,
    decouple_beta: float = 0.1,
) -> tuple[Tensor, Tensor | None]:
    """``PredRNN_Model.forward`` / ``PredRNNv2_Model.forward`` (v2 when ``adapter.weight`` is in ``sd``).

    ``frames_tensor``: B×T×(H/p)×(W/p)×(p²C) patches (``reshape_patch``), ``mask_true`` channels-last too.
    Returns ``(next_frames B×(T−1)×h×w×p²C, loss or None)``."""
    v2 = "adapter.weight" in sd
    frames = frames_tensor.permute(0, 1, 4, 2, 3).contiguous()
    mask = mask_true.permute(0, 1, 4, 2, 3).contiguous()
    b, _, _, height, width = frames.shape
    n_layers = len({k.split(".")[1] for k in sd if k.startswith("cell_list.")})
    hidden = [sd[f"cell_list.{i}.conv_h.0.weight"].shape[1] for i in range(n_layers)]
    h_t = [torch.zeros(b, hidden[i], height, width) for i in range(n_layers)]
    c_t = [torch.zeros(b, hidden[i], height, width) for i in range(n_layers)]
    memory = torch.zeros(b, hidden[0], height, width)
    next_frames, decouple = [], []
    x_gen = None
    for t in range(pre_seq_length + aft_seq_length - 1):
        if reverse_scheduled_sampling == 1:
            net = frames[:, t] if t == 0 else mask[:, t - 1] * frames[:, t] + (1 - mask[:, t - 1]) * x_gen
        elif t < pre_seq_length:
            net = frames[:, t]
        else:
            net = mask[:, t - pre_seq_length] * frames[:, t] + (1 - mask[:, t - pre_seq_length]) * x_gen
        for i in range(n_layers):
            inp = net if i == 0 else h_t[i - 1]
            h_t[i], c_t[i], memory, d_c, d_m = _st_lstm(sd, f"cell_list.{i}", inp, h_t[i], c_t[i], memory)
            if v2 and return_loss:
                a = F.normalize(F.conv2d(d_c, sd["adapter.weight"]).view(b, hidden[0], -1), dim=2)
                bb = F.normalize(F.conv2d(d_m, sd["adapter.weight"]).view(b, hidden[0], -1), dim=2)
                decouple.append(torch.mean(torch.abs(torch.cosine_similarity(a, bb, dim=2))))
        x_gen = F.conv2d(h_t[-1], sd["conv_last.weight"])
        next_frames.append(x_gen)
    out = torch.stack(next_frames, dim=0).permute(1, 0, 3, 4, 2).contiguous()
    if not return_loss:
        return out, None
    loss = F.mse_loss(out, frames_tensor[:, 1:])
    if v2:
        loss = loss + decouple_beta * torch.mean(torch.stack(decouple, dim=0))
    return out, loss


@torch.no_grad()
def predrnn_predict(
    sd: dict[str, Tensor], batch_x: Tensor, batch_y: Tensor, patch_size: int, reverse_scheduled_sampling: int = 0
) -> Tensor:
    """OpenSTL's ``PredRNN.forward`` (the method: inference) on B×T×C×H×W: the ``batch_y.shape[1]``
    predicted frames. ``batch_y`` only enters multiplied by a zero mask."""
    pre, aft = batch_x.shape[1], batch_y.shape[1]
    b, _, c, h, w = batch_x.shape
    p = patch_size
    ims = torch.cat([batch_x, batch_y], dim=1).permute(0, 1, 3, 4, 2).contiguous()
    dat = reshape_patch(ims, p)
    mask_input = 1 if reverse_scheduled_sampling == 1 else pre
    flag = torch.zeros(b, pre + aft - mask_input - 1, h // p, w // p, p * p * c)
    if reverse_scheduled_sampling == 1:
        flag[:, : pre - 1] = 1.0
    gen, _ = predrnn_model_forward(
        sd, dat, flag, pre_seq_length=pre, aft_seq_length=aft, reverse_scheduled_sampling=reverse_scheduled_sampling
    )
    gen = reshape_patch_back(gen, p)
    return gen[:, -aft:].permute(0, 1, 4, 2, 3).contiguous()


def reserve_schedule_sampling_probabilities(
    itr: int, r_sampling_step_1: int = 25000, r_sampling_step_2: int = 50000, r_exp_alpha: int = 5000
) -> tuple[float, float]:
    """(r_eta, eta) of OpenSTL's ``reserve_schedule_sampling_exp`` at iteration ``itr`` (MMNIST defaults)."""
    if itr < r_sampling_step_1:
        r_eta = 0.5
    elif itr < r_sampling_step_2:
        r_eta = 1.0 - 0.5 * math.exp(-float(itr - r_sampling_step_1) / r_exp_alpha)
    else:
        r_eta = 1.0
    if itr < r_sampling_step_1:
        eta = 0.5
    elif itr < r_sampling_step_2:
        eta = 0.5 - (0.5 / (r_sampling_step_2 - r_sampling_step_1)) * (itr - r_sampling_step_1)
    else:
        eta = 0.0
    return r_eta, eta
