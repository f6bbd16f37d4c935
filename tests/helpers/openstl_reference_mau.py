"""An independent reference of OpenSTL's MAU, for testing stzoo's importer and model.

Like ``tests/openstl_reference.py`` (whose random-weight helper it reuses), this re-states from reading
OpenSTL's source (1) the tensor names and shapes of its checkpoints and (2) its inference forward pass,
as plain ``torch.nn.functional`` calls on an OpenSTL-layout state dict. It shares no code with
``stzoo.convert`` or ``stzoo.models``.

Files read (OpenSTL master):

* ``openstl/models/mau_model.py``: ``MAU_Model``. ``encoders``: a Sequential ``encoder_t_conv-1``
  (1×1, frame channels → hidden) + LeakyReLU(0.2), then log2(sr_size) Sequentials ``encoder_t{i}``
  (3×3, stride 2, padding 1) + LeakyReLU(0.2); ``decoders``: log2(sr_size) Sequentials ``c_decoder{i}``
  (ConvTranspose 3×3, stride 2, padding 1, output_padding 1), all but the last + LeakyReLU(0.2);
  ``srcnn`` (Sequential of one 1×1 conv); ``merge`` and ``conv_last_sr`` built, never called. Forward:
  frames arrive channels-last B×T×H×W×C and are permuted; per layer, lists ``T_pre`` and ``S_pre`` start
  with τ zero maps; for t in 0..total_length−2: the input is frame t (t < pre_seq_length), else
  ``mask·frame_t + (1 − mask)·x_gen``; the encoder features are kept; S = the last one; for each layer
  i: t_att / s_att = the last τ entries of T_pre[i] / S_pre[i] stacked, then S is appended to S_pre[i],
  ``T_t[i], S = cell(T_t[i], S, t_att, s_att)``, T_t[i] appended to T_pre[i]; decoders (model_mode
  'recall': after decoder i add encoder feature −2−i); ``x_gen = srcnn(out)``.
* ``openstl/modules/mau_modules.py``: ``MAUCell``: ``conv_t`` (3N), ``conv_t_next`` (N), ``conv_s`` (3N),
  ``conv_s_next`` (N), each Sequential(conv with bias, LayerNorm([C, h, w])); ``d = N·h·w``; weights
  ``(s_att[i] · s_next).sum((1, 2, 3)) / √d``, softmax over i; ``T_trend = Σ t_att · weights``;
  ``T_fusion = T_t·σ(t_next) + (1 − σ(t_next))·T_trend``; split orders t_g, t_t, t_s / s_g, s_t, s_s;
  ``T_new = σ(t_g)·t_t + (1 − σ(t_g))·s_t``, ``S_new = σ(s_g)·s_s + (1 − σ(s_g))·t_s`` (+ S_t if 'residual').
* ``openstl/methods/mau.py``: ``forward`` (inference): the whole sequence in, a zero ``real_input_flag``,
  the last ``aft_seq_length`` outputs; no ``reshape_patch``.
* ``configs/mmnist/MAU.py``.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from helpers.openstl_reference import _rand


def mau_shapes(
    *, channels: int, num_hidden: list[int], grid: tuple[int, int], sr_size: int, filter_size: int = 5
) -> dict[str, tuple]:
    """Every tensor of OpenSTL's ``MAU_Model`` (patch_size 1) and its shape."""
    k, n = filter_size, int(math.log2(sr_size))
    h0, hl = num_hidden[0], num_hidden[-1]
    shapes: dict[str, tuple] = {}
    for i, h in enumerate(num_hidden):
        c_in = num_hidden[i - 1]
        for name, c_out, c_from in (
            ("conv_t", 3 * h, c_in),
            ("conv_t_next", h, c_in),
            ("conv_s", 3 * h, h),
            ("conv_s_next", h, h),
        ):
            shapes[f"cell_list.{i}.{name}.0.weight"] = (c_out, c_from, k, k)
            shapes[f"cell_list.{i}.{name}.0.bias"] = (c_out,)
            shapes[f"cell_list.{i}.{name}.1.weight"] = (c_out, *grid)
            shapes[f"cell_list.{i}.{name}.1.bias"] = (c_out, *grid)
    shapes["encoders.0.encoder_t_conv-1.weight"] = (h0, channels, 1, 1)
    shapes["encoders.0.encoder_t_conv-1.bias"] = (h0,)
    for i in range(n):
        shapes[f"encoders.{i + 1}.encoder_t{i}.weight"] = (h0, h0, 3, 3)
        shapes[f"encoders.{i + 1}.encoder_t{i}.bias"] = (h0,)
    for i in range(n):
        shapes[f"decoders.{i}.c_decoder{i}.weight"] = (hl, hl, 3, 3)  # ConvTranspose2d: in × out × k × k
        shapes[f"decoders.{i}.c_decoder{i}.bias"] = (hl,)
    shapes["srcnn.0.weight"] = (channels, hl, 1, 1)
    shapes["srcnn.0.bias"] = (channels,)
    shapes["merge.weight"] = (hl, 2 * hl, 1, 1)
    shapes["merge.bias"] = (hl,)
    shapes["conv_last_sr.weight"] = (channels, 2 * channels, 1, 1)
    shapes["conv_last_sr.bias"] = (channels,)
    return shapes


def mau_state_dict(
    *,
    channels: int = 1,
    num_hidden: list[int],
    grid: tuple[int, int],
    sr_size: int,
    filter_size: int = 5,
    seed: int = 0,
) -> dict[str, Tensor]:
    """Random weights in the layout of OpenSTL's ``MAU_Model``: convs with std 1/√fan-in, biases with std
    0.1, LayerNorm weights 1 + N(0, 0.1²) and biases N(0, 0.1²) per position."""
    g = torch.Generator().manual_seed(seed)
    sd: dict[str, Tensor] = {}
    for key, shape in mau_shapes(
        channels=channels, num_hidden=num_hidden, grid=grid, sr_size=sr_size, filter_size=filter_size
    ).items():
        if ".1.weight" in key and key.startswith("cell_list."):
            sd[key] = 1.0 + _rand(g, *shape, scale=0.1)
        elif key.endswith(".bias"):
            sd[key] = _rand(g, *shape, scale=0.1)
        elif key.startswith("decoders."):  # fan-in of a transposed conv: its input channels × k × k
            sd[key] = torch.randn(*shape, generator=g) / (shape[0] * shape[2] * shape[3]) ** 0.5
        else:
            sd[key] = _rand(g, *shape)
    return sd


def _conv_ln(sd: dict, p: str, x: Tensor) -> Tensor:
    w = sd[f"{p}.0.weight"]
    y = F.conv2d(x, w, sd[f"{p}.0.bias"], padding=w.shape[-1] // 2)
    ln_w = sd[f"{p}.1.weight"]
    return F.layer_norm(y, tuple(ln_w.shape), ln_w, sd[f"{p}.1.bias"], eps=1e-5)


def _mau_cell(
    sd: dict, p: str, t_t: Tensor, s_t: Tensor, t_att: Tensor, s_att: Tensor, tau: int, residual: bool
) -> tuple[Tensor, Tensor]:
    n = sd[f"{p}.conv_s_next.0.weight"].shape[0]
    grid = sd[f"{p}.conv_s_next.1.weight"].shape[1:]
    d = n * grid[0] * grid[1]
    s_next = _conv_ln(sd, f"{p}.conv_s_next", s_t)
    t_next = _conv_ln(sd, f"{p}.conv_t_next", t_t)
    weights = torch.stack([(s_att[i] * s_next).sum(dim=(1, 2, 3)) / math.sqrt(d) for i in range(tau)], dim=0)
    weights = torch.softmax(weights.reshape(*weights.shape, 1, 1, 1), dim=0)
    t_trend = (t_att * weights).sum(dim=0)
    gate = torch.sigmoid(t_next)
    t_fusion = t_t * gate + (1 - gate) * t_trend
    t_g, t_tt, t_s = torch.split(_conv_ln(sd, f"{p}.conv_t", t_fusion), n, dim=1)
    s_g, s_tt, s_s = torch.split(_conv_ln(sd, f"{p}.conv_s", s_t), n, dim=1)
    tg, sg = torch.sigmoid(t_g), torch.sigmoid(s_g)
    t_new = tg * t_tt + (1 - tg) * s_tt
    s_new = sg * s_s + (1 - sg) * t_s
    if residual:
        s_new = s_new + s_t
    return t_new, s_new


@torch.no_grad()
def mau_predict(
    sd: dict[str, Tensor],
    batch_x: Tensor,
    batch_y: Tensor,
    *,
    sr_size: int,
    tau: int = 5,
    cell_mode: str = "normal",
    model_mode: str = "normal",
) -> Tensor:
    """OpenSTL's ``MAU.forward`` + ``MAU_Model.forward``: B×T×C×H×W in, the ``batch_y.shape[1]`` predicted
    frames out (``batch_y`` is passed in, as OpenSTL does, and masked out by the zero flag)."""
    pre, aft = batch_x.shape[1], batch_y.shape[1]
    total = pre + aft
    ims = torch.cat([batch_x, batch_y], dim=1).permute(0, 1, 3, 4, 2).contiguous()  # channels-last, as OpenSTL
    b, _, hh, ww, c = ims.shape
    mask_true = torch.zeros(b, total - pre - 1, hh, ww, c).permute(0, 1, 4, 2, 3)
    frames = ims.permute(0, 1, 4, 2, 3).contiguous()
    n_layers = len({k.split(".")[1] for k in sd if k.startswith("cell_list.")})
    n_enc = len({k.split(".")[1] for k in sd if k.startswith("encoders.")})
    n_dec = len({k.split(".")[1] for k in sd if k.startswith("decoders.")})
    hidden = [sd[f"cell_list.{i}.conv_s_next.0.weight"].shape[0] for i in range(n_layers)]
    h, w = hh // sr_size, ww // sr_size
    t_pre = [[torch.zeros(b, hidden[i - 1], h, w) for _ in range(tau)] for i in range(n_layers)]
    s_pre = [[torch.zeros(b, hidden[i - 1], h, w) for _ in range(tau)] for i in range(n_layers)]
    t_t: list[Tensor] = []
    x_gen = None
    next_frames = []
    for t in range(total - 1):
        if t < pre:
            net = frames[:, t]
        else:
            net = mask_true[:, t - pre] * frames[:, t] + (1 - mask_true[:, t - pre]) * x_gen
        feats = []
        z = F.leaky_relu(
            F.conv2d(net, sd["encoders.0.encoder_t_conv-1.weight"], sd["encoders.0.encoder_t_conv-1.bias"]), 0.2
        )
        feats.append(z)
        for i in range(n_enc - 1):
            z = F.leaky_relu(
                F.conv2d(
                    z,
                    sd[f"encoders.{i + 1}.encoder_t{i}.weight"],
                    sd[f"encoders.{i + 1}.encoder_t{i}.bias"],
                    stride=2,
                    padding=1,
                ),
                0.2,
            )
            feats.append(z)
        if t == 0:
            t_t = [torch.zeros(b, hidden[i], h, w) for i in range(n_layers)]
        s_t = z
        for i in range(n_layers):
            t_att = torch.stack(t_pre[i][-tau:], dim=0)
            s_att = torch.stack(s_pre[i][-tau:], dim=0)
            s_pre[i].append(s_t)
            t_t[i], s_t = _mau_cell(sd, f"cell_list.{i}", t_t[i], s_t, t_att, s_att, tau, cell_mode == "residual")
            t_pre[i].append(t_t[i])
        out = s_t
        for i in range(n_dec):
            out = F.conv_transpose2d(
                out,
                sd[f"decoders.{i}.c_decoder{i}.weight"],
                sd[f"decoders.{i}.c_decoder{i}.bias"],
                stride=2,
                padding=1,
                output_padding=1,
            )
            if i < n_dec - 1:
                out = F.leaky_relu(out, 0.2)
            if model_mode == "recall":
                out = out + feats[-2 - i]
        x_gen = F.conv2d(out, sd["srcnn.0.weight"], sd["srcnn.0.bias"])
        next_frames.append(x_gen)
    gen = torch.stack(next_frames, dim=0).permute(1, 0, 2, 3, 4).contiguous()
    return gen[:, -aft:]
