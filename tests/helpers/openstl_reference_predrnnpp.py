"""An independent reference of OpenSTL's PredRNN++, for testing stzoo's importer and model.

Like ``tests/openstl_reference.py`` (whose patch reshape and helpers it reuses), this re-states from
reading OpenSTL's source (1) the tensor names and shapes of its checkpoints and (2) its inference
forward pass, as plain ``torch.nn.functional`` calls on an OpenSTL-layout state dict. It shares no
code with ``stzoo.convert`` or ``stzoo.models``.

Files read (OpenSTL master):

* ``openstl/models/predrnnpp_model.py``: ``PredRNNpp_Model`` (``cell_list`` of ``CausalLSTMCell``,
  ``gradient_highway`` = ``GHU(num_hidden[0], num_hidden[0], ...)`` between layers 0 and 1, model-level
  ``conv_last`` 1×1 without bias; the memory is one tensor passed through every cell in order and on to
  the next step; the loop over ``total_length - 1`` steps mixes ground truth and the previous
  prediction through ``mask_true``; the GHU state starts as ``None`` = zeros).
* ``openstl/modules/predrnnpp_modules.py``: ``CausalLSTMCell`` (``conv_x`` 7N, ``conv_h`` 4N,
  ``conv_c`` 3N, ``conv_m`` 3N, ``conv_o`` N from 2N (built, never used in forward), ``conv_c2m`` 4N,
  ``conv_om`` N, each ``Sequential(conv without bias[, LayerNorm])``; ``conv_last`` 1×1 from 2N;
  ``_forget_bias`` = 1.0 added to both forget gates; split orders x: i f g i' f' g' o, h: i f g o,
  m: i f m, c: i f g, c2m: i g f o; ``m_new = f' · tanh(m_m) + i' · g'``, ``o = tanh(...)``).
  ``GHU``: ``z_concat``, ``x_concat`` (2N each), split p, u; ``z' = u · tanh(p) + (1 − u) · z``.
* ``openstl/methods/predrnnpp.py`` → ``openstl/methods/predrnn.py`` (``forward``: zero mask at inference)
  and ``openstl/utils/predrnn_utils.py`` (``reshape_patch``).
* ``configs/mmnist/PredRNNpp.py``: num_hidden '128,128,128,128', filter_size 5, stride 1, patch_size 4,
  layer_norm 0.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from helpers.openstl_reference import _rand, reshape_patch, reshape_patch_back


def predrnnpp_shapes(*, patch_channels: int, num_hidden: list[int], filter_size: int = 5) -> dict[str, tuple]:
    """Every tensor of OpenSTL's ``PredRNNpp_Model`` (layer_norm=0, stride 1) and its shape."""
    k, h0 = filter_size, num_hidden[0]
    shapes: dict[str, tuple] = {}
    for i, h in enumerate(num_hidden):
        c_in = patch_channels if i == 0 else num_hidden[i - 1]
        for name, c_out, c_from in (
            ("conv_x", 7 * h, c_in),
            ("conv_h", 4 * h, h),
            ("conv_c", 3 * h, h),
            ("conv_m", 3 * h, h),
            ("conv_o", h, 2 * h),
            ("conv_c2m", 4 * h, h),
            ("conv_om", h, h),
        ):
            shapes[f"cell_list.{i}.{name}.0.weight"] = (c_out, c_from, k, k)
        shapes[f"cell_list.{i}.conv_last.weight"] = (h, 2 * h, 1, 1)
    shapes["gradient_highway.z_concat.0.weight"] = (2 * h0, h0, k, k)
    shapes["gradient_highway.x_concat.0.weight"] = (2 * h0, h0, k, k)
    shapes["conv_last.weight"] = (patch_channels, num_hidden[-1], 1, 1)
    return shapes


def predrnnpp_state_dict(
    *, patch_channels: int, num_hidden: list[int], filter_size: int = 5, seed: int = 0
) -> dict[str, Tensor]:
    """Random weights (std 1/√fan-in) in the layout of OpenSTL's ``PredRNNpp_Model``."""
    g = torch.Generator().manual_seed(seed)
    return {
        k: _rand(g, *s)
        for k, s in predrnnpp_shapes(
            patch_channels=patch_channels, num_hidden=num_hidden, filter_size=filter_size
        ).items()
    }


def _c(sd: dict, name: str, x: Tensor) -> Tensor:
    w = sd[name]
    return F.conv2d(x, w, padding=w.shape[-1] // 2)


def _causal_cell(sd: dict, p: str, x: Tensor, h: Tensor, c: Tensor, m: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    n = h.shape[1]
    i_x, f_x, g_x, i_xp, f_xp, g_xp, o_x = torch.split(_c(sd, f"{p}.conv_x.0.weight", x), n, dim=1)
    i_h, f_h, g_h, o_h = torch.split(_c(sd, f"{p}.conv_h.0.weight", h), n, dim=1)
    i_m, f_m, m_m = torch.split(_c(sd, f"{p}.conv_m.0.weight", m), n, dim=1)
    i_c, f_c, g_c = torch.split(_c(sd, f"{p}.conv_c.0.weight", c), n, dim=1)
    i_t = torch.sigmoid(i_x + i_h + i_c)
    f_t = torch.sigmoid(f_x + f_h + f_c + 1.0)
    g_t = torch.tanh(g_x + g_h + g_c)
    c_new = f_t * c + i_t * g_t
    i_c, g_c, f_c, o_c = torch.split(_c(sd, f"{p}.conv_c2m.0.weight", c_new), n, dim=1)
    i_tp = torch.sigmoid(i_xp + i_m + i_c)
    f_tp = torch.sigmoid(f_xp + f_m + f_c + 1.0)
    g_tp = torch.tanh(g_xp + g_c)
    m_new = f_tp * torch.tanh(m_m) + i_tp * g_tp
    o_m = _c(sd, f"{p}.conv_om.0.weight", m_new)
    o_t = torch.tanh(o_x + o_h + o_c + o_m)
    mem = torch.cat((c_new, m_new), 1)
    h_new = o_t * torch.tanh(F.conv2d(mem, sd[f"{p}.conv_last.weight"]))
    return h_new, c_new, m_new


def _ghu(sd: dict, x: Tensor, z: Tensor | None) -> Tensor:
    if z is None:
        z = torch.zeros_like(x)
    gates = _c(sd, "gradient_highway.x_concat.0.weight", x) + _c(sd, "gradient_highway.z_concat.0.weight", z)
    p, u = torch.split(gates, x.shape[1], dim=1)
    u = torch.sigmoid(u)
    return u * torch.tanh(p) + (1 - u) * z


@torch.no_grad()
def predrnnpp_predict(
    sd: dict[str, Tensor], batch_x: Tensor, batch_y: Tensor, patch_size: int, reverse_scheduled_sampling: int = 0
) -> Tensor:
    """OpenSTL's ``PredRNNpp`` method ``forward`` (inherited from ``PredRNN``) + ``PredRNNpp_Model.forward``:
    B×T×C×H×W in, the ``batch_y.shape[1]`` predicted frames out (``batch_y`` only meets a zero mask)."""
    pre, aft = batch_x.shape[1], batch_y.shape[1]
    total = pre + aft
    b, _, c, h, w = batch_x.shape
    p = patch_size
    dat = reshape_patch(torch.cat([batch_x, batch_y], dim=1).permute(0, 1, 3, 4, 2).contiguous(), p)
    mask_input = 1 if reverse_scheduled_sampling == 1 else pre
    flag = torch.zeros(b, total - mask_input - 1, h // p, w // p, p * p * c)
    if reverse_scheduled_sampling == 1:
        flag[:, : pre - 1] = 1.0
    frames = dat.permute(0, 1, 4, 2, 3).contiguous()
    mask = flag.permute(0, 1, 4, 2, 3).contiguous()
    n_layers = len({k.split(".")[1] for k in sd if k.startswith("cell_list.")})
    hidden = [sd[f"cell_list.{i}.conv_h.0.weight"].shape[1] for i in range(n_layers)]
    h_t = [torch.zeros(b, hidden[i], h // p, w // p) for i in range(n_layers)]
    c_t = [torch.zeros(b, hidden[i], h // p, w // p) for i in range(n_layers)]
    memory = torch.zeros(b, hidden[0], h // p, w // p)
    z_t = None
    x_gen = None
    next_frames = []
    for t in range(total - 1):
        if reverse_scheduled_sampling == 1:
            net = frames[:, t] if t == 0 else mask[:, t - 1] * frames[:, t] + (1 - mask[:, t - 1]) * x_gen
        elif t < pre:
            net = frames[:, t]
        else:
            net = mask[:, t - pre] * frames[:, t] + (1 - mask[:, t - pre]) * x_gen
        h_t[0], c_t[0], memory = _causal_cell(sd, "cell_list.0", net, h_t[0], c_t[0], memory)
        z_t = _ghu(sd, h_t[0], z_t)
        h_t[1], c_t[1], memory = _causal_cell(sd, "cell_list.1", z_t, h_t[1], c_t[1], memory)
        for i in range(2, n_layers):
            h_t[i], c_t[i], memory = _causal_cell(sd, f"cell_list.{i}", h_t[i - 1], h_t[i], c_t[i], memory)
        x_gen = F.conv2d(h_t[-1], sd["conv_last.weight"])
        next_frames.append(x_gen)
    gen = reshape_patch_back(torch.stack(next_frames, dim=0).permute(1, 0, 3, 4, 2).contiguous(), p)
    return gen[:, -aft:].permute(0, 1, 4, 2, 3).contiguous()
