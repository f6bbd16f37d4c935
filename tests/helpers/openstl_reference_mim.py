"""An independent reference of OpenSTL's MIM, for testing stzoo's importer and model.

Like ``tests/openstl_reference.py`` (whose patch reshape and helpers it reuses), this re-states from
reading OpenSTL's source (1) the tensor names and shapes of its checkpoints and (2) its inference
forward pass, as plain ``torch.nn.functional`` calls on an OpenSTL-layout state dict. It shares no
code with ``stzoo.convert`` or ``stzoo.models``.

Files read (OpenSTL master):

* ``openstl/models/mim_model.py``: ``MIM_Model`` (``stlstm_layer``: a ``SpatioTemporalLSTMCell`` then
  ``MIMBlock``s; ``stlstm_layer_diff``: one ``MIMN`` per MIM block; model-level ``conv_last`` 1×1
  without bias). Per step: ``preh`` = layer 0's H before its update; for layer i >= 1, from the second
  step on, MIMN i−1 reads ``h_t[0] − preh`` (i = 1) or the MIMN output of the layer below (i > 1);
  at the first step the MIMNs' outputs are discarded and the MIM blocks get ``diff_h = None`` (zeros).
* ``openstl/modules/mim_modules.py``: ``MIMBlock`` (``conv_t_cc`` 3N on H, ``conv_s_cc`` 4N on M,
  ``conv_x_cc`` 4N on X, ``conv_h_concat`` / ``conv_x_concat`` 4N for its MIMS, ``ct_weight`` 2N×h×w,
  ``oc_weight`` N×h×w, ``conv_last`` 1×1 from 2N; MIMS's cell lives in ``self.convlstm_c``, which is
  ``None`` only for a freshly built model and otherwise carries over (detached) from the previous call);
  ``MIMN`` (the same LSTM as MIMS; its ``conv_last`` is built but never used).
* ``openstl/modules/predrnn_modules.py``: ``SpatioTemporalLSTMCell`` (split orders x: i f g i' f' g' o,
  h: i f g o, m: i' f' g'; ``o = σ(o_x + o_h + conv_o([c; m]))``).
* ``openstl/methods/mim.py`` → ``openstl/methods/predrnn.py`` (zero mask at inference),
  ``openstl/utils/predrnn_utils.py`` (``reshape_patch``), ``configs/mmnist/MIM.py``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from helpers.openstl_reference import _rand, reshape_patch, reshape_patch_back


def mim_shapes(
    *, patch_channels: int, num_hidden: list[int], grid: tuple[int, int], filter_size: int = 5
) -> dict[str, tuple]:
    """Every tensor of OpenSTL's ``MIM_Model`` (layer_norm=0, stride 1) and its shape."""
    k = filter_size
    shapes: dict[str, tuple] = {}
    h0 = num_hidden[0]
    for name, c_out, c_from in (
        ("conv_x", 7 * h0, patch_channels),
        ("conv_h", 4 * h0, h0),
        ("conv_m", 3 * h0, h0),
        ("conv_o", h0, 2 * h0),
    ):
        shapes[f"stlstm_layer.0.{name}.0.weight"] = (c_out, c_from, k, k)
    shapes["stlstm_layer.0.conv_last.weight"] = (h0, 2 * h0, 1, 1)
    for i in range(1, len(num_hidden)):
        h, c_in = num_hidden[i], num_hidden[i - 1]
        b = f"stlstm_layer.{i}"
        shapes[f"{b}.ct_weight"] = (2 * h, *grid)
        shapes[f"{b}.oc_weight"] = (h, *grid)
        for name, c_out, c_from in (
            ("conv_t_cc", 3 * h, c_in),
            ("conv_s_cc", 4 * h, h),
            ("conv_x_cc", 4 * h, h),
            ("conv_h_concat", 4 * h, h),
            ("conv_x_concat", 4 * h, h),
        ):
            shapes[f"{b}.{name}.0.weight"] = (c_out, c_from, k, k)
        shapes[f"{b}.conv_last.weight"] = (h, 2 * h, 1, 1)
    for i in range(len(num_hidden) - 1):
        h, c_in = num_hidden[i + 1], num_hidden[i]
        d = f"stlstm_layer_diff.{i}"
        shapes[f"{d}.ct_weight"] = (2 * h, *grid)
        shapes[f"{d}.oc_weight"] = (h, *grid)
        shapes[f"{d}.conv_h_concat.0.weight"] = (4 * h, c_in, k, k)
        shapes[f"{d}.conv_x_concat.0.weight"] = (4 * h, c_in, k, k)
        shapes[f"{d}.conv_last.weight"] = (h, 2 * h, 1, 1)
    shapes["conv_last.weight"] = (patch_channels, num_hidden[-1], 1, 1)
    return shapes


def mim_state_dict(
    *, patch_channels: int, num_hidden: list[int], grid: tuple[int, int], filter_size: int = 5, seed: int = 0
) -> dict[str, Tensor]:
    """Random weights in the layout of OpenSTL's ``MIM_Model``: convs with std 1/√fan-in, the peephole
    weights (zero at OpenSTL's initialisation) with std 0.5 so that they matter."""
    g = torch.Generator().manual_seed(seed)
    shapes = mim_shapes(patch_channels=patch_channels, num_hidden=num_hidden, grid=grid, filter_size=filter_size)
    return {k: _rand(g, *s, scale=0.5 if k.endswith(("ct_weight", "oc_weight")) else None) for k, s in shapes.items()}


def _c(sd: dict, name: str, x: Tensor) -> Tensor:
    w = sd[name]
    return F.conv2d(x, w, padding=w.shape[-1] // 2)


def _st_lstm(sd: dict, p: str, x: Tensor, h: Tensor, c: Tensor, m: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    n = h.shape[1]
    i_x, f_x, g_x, i_xp, f_xp, g_xp, o_x = torch.split(_c(sd, f"{p}.conv_x.0.weight", x), n, dim=1)
    i_h, f_h, g_h, o_h = torch.split(_c(sd, f"{p}.conv_h.0.weight", h), n, dim=1)
    i_m, f_m, g_m = torch.split(_c(sd, f"{p}.conv_m.0.weight", m), n, dim=1)
    c_new = torch.sigmoid(f_x + f_h + 1.0) * c + torch.sigmoid(i_x + i_h) * torch.tanh(g_x + g_h)
    m_new = torch.sigmoid(f_xp + f_m + 1.0) * m + torch.sigmoid(i_xp + i_m) * torch.tanh(g_xp + g_m)
    mem = torch.cat((c_new, m_new), 1)
    o_t = torch.sigmoid(o_x + o_h + _c(sd, f"{p}.conv_o.0.weight", mem))
    return o_t * torch.tanh(F.conv2d(mem, sd[f"{p}.conv_last.weight"])), c_new, m_new


def _peephole_lstm(sd: dict, p: str, x: Tensor, h_t: Tensor | None, c_t: Tensor | None) -> tuple[Tensor, Tensor]:
    """MIMN.forward and MIMBlock.MIMS (the same computation, the same key names under ``p``)."""
    h_t = torch.zeros_like(x) if h_t is None else h_t
    c_t = torch.zeros_like(x) if c_t is None else c_t
    n = sd[f"{p}.oc_weight"].shape[0]
    i_h, g_h, f_h, o_h = torch.split(_c(sd, f"{p}.conv_h_concat.0.weight", h_t), n, dim=1)
    i_c, f_c = torch.split(c_t.repeat(1, 2, 1, 1) * sd[f"{p}.ct_weight"], n, dim=1)
    i_x, g_x, f_x, o_x = torch.split(_c(sd, f"{p}.conv_x_concat.0.weight", x), n, dim=1)
    i_ = torch.sigmoid(i_h + i_c + i_x)
    f_ = torch.sigmoid(f_h + f_c + f_x + 1.0)
    c_new = f_ * c_t + i_ * torch.tanh(g_h + g_x)
    h_new = torch.sigmoid(o_h + o_x + c_new * sd[f"{p}.oc_weight"]) * torch.tanh(c_new)
    return h_new, c_new


def _mim_block(
    sd: dict, p: str, x: Tensor, diff_h: Tensor | None, h: Tensor, c: Tensor, m: Tensor, stationary: Tensor | None
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    n = h.shape[1]
    diff_h = torch.zeros_like(x) if diff_h is None else diff_h
    i_t, g_t, o_t = torch.split(_c(sd, f"{p}.conv_t_cc.0.weight", h), n, dim=1)
    i_s, g_s, f_s, o_s = torch.split(_c(sd, f"{p}.conv_s_cc.0.weight", m), n, dim=1)
    i_x, g_x, f_x, o_x = torch.split(_c(sd, f"{p}.conv_x_cc.0.weight", x), n, dim=1)
    i = torch.sigmoid(i_x + i_t)
    i_ = torch.sigmoid(i_x + i_s)
    g = torch.tanh(g_x + g_t)
    g_ = torch.tanh(g_x + g_s)
    f_ = torch.sigmoid(f_x + f_s + 1.0)
    o = torch.sigmoid(o_x + o_t + o_s)
    new_m = f_ * m + i_ * g_
    c_kept, stationary = _peephole_lstm(sd, p, diff_h, c, stationary)
    new_c = c_kept + i * g
    new_h = o * torch.tanh(F.conv2d(torch.cat((new_c, new_m), 1), sd[f"{p}.conv_last.weight"]))
    return new_h, new_c, new_m, stationary


@torch.no_grad()
def mim_predict(
    sd: dict[str, Tensor],
    batch_x: Tensor,
    batch_y: Tensor,
    patch_size: int,
    stationary: list[Tensor | None] | None = None,
    return_stationary: bool = False,
):
    """OpenSTL's ``MIM`` method ``forward`` (inherited from ``PredRNN``) + ``MIM_Model.forward``: B×T×C×H×W
    in, the ``batch_y.shape[1]`` predicted frames out.

    ``stationary`` stands for the MIM blocks' ``convlstm_c`` attributes before the call (``None``: a
    freshly built OpenSTL model); with ``return_stationary`` their values after the call are returned
    too, i.e. what OpenSTL's next call would start from."""
    pre, aft = batch_x.shape[1], batch_y.shape[1]
    total = pre + aft
    b, _, c, h, w = batch_x.shape
    p = patch_size
    dat = reshape_patch(torch.cat([batch_x, batch_y], dim=1).permute(0, 1, 3, 4, 2).contiguous(), p)
    frames = dat.permute(0, 1, 4, 2, 3).contiguous()
    mask = torch.zeros(b, aft - 1, p * p * c, h // p, w // p)
    n_layers = len({k.split(".")[1] for k in sd if k.startswith("stlstm_layer.")})
    hidden = [sd[f"stlstm_layer.{i}.conv_last.weight"].shape[0] for i in range(n_layers)]
    h_t = [torch.zeros(b, hidden[i], h // p, w // p) for i in range(n_layers)]
    c_t = [torch.zeros(b, hidden[i], h // p, w // p) for i in range(n_layers)]
    hidden_diff: list[Tensor | None] = [None] * n_layers
    cell_diff: list[Tensor | None] = [None] * n_layers
    conv_c = list(stationary) if stationary is not None else [None] * n_layers
    st_memory = torch.zeros(b, hidden[0], h // p, w // p)
    x_gen = None
    next_frames = []
    for t in range(total - 1):
        net = frames[:, t] if t < pre else mask[:, t - pre] * frames[:, t] + (1 - mask[:, t - pre]) * x_gen
        preh = h_t[0]
        h_t[0], c_t[0], st_memory = _st_lstm(sd, "stlstm_layer.0", net, h_t[0], c_t[0], st_memory)
        for i in range(1, n_layers):
            if t > 0:
                d_in = h_t[i - 1] - preh if i == 1 else hidden_diff[i - 2]
                hidden_diff[i - 1], cell_diff[i - 1] = _peephole_lstm(
                    sd, f"stlstm_layer_diff.{i - 1}", d_in, hidden_diff[i - 1], cell_diff[i - 1]
                )
            h_t[i], c_t[i], st_memory, conv_c[i] = _mim_block(
                sd, f"stlstm_layer.{i}", h_t[i - 1], hidden_diff[i - 1], h_t[i], c_t[i], st_memory, conv_c[i]
            )
        x_gen = F.conv2d(h_t[-1], sd["conv_last.weight"])
        next_frames.append(x_gen)
    gen = reshape_patch_back(torch.stack(next_frames, dim=0).permute(1, 0, 3, 4, 2).contiguous(), p)
    pred = gen[:, -aft:].permute(0, 1, 4, 2, 3).contiguous()
    return (pred, conv_c) if return_stationary else pred
