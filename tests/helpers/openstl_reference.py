"""An independent reference of OpenSTL's TAU and ConvLSTM, for testing stzoo's OpenSTL importer.

OpenSTL (https://github.com/chengtan9907/OpenSTL, Apache-2.0) cannot be installed from the package
index, so these tests cannot run it. This module re-states, from reading OpenSTL's source, (1) the
exact tensor names and shapes of its checkpoints and (2) its inference forward pass, written as plain
``torch.nn.functional`` calls that read an OpenSTL-layout state dict directly. It shares no code with
``stzoo.convert`` or ``stzoo.models``, so a mapping mistake shows up as a difference in outputs.

Files read (OpenSTL master):

* ``openstl/models/simvp_model.py``: ``SimVP_Model`` (input/output B×T×C×H×W; ``enc``/``hid``/``dec``;
  ``sampling_generator`` = stride pattern [1, 2, 1, 2, ...], reversed for the decoder; the skip from
  the first encoder layer is added before the last decoder layer; ``MidMetaNet`` / ``MetaBlock``
  with ``block`` and a 1×1 ``reduction`` where the width changes).
* ``openstl/modules/simvp_modules.py``: ``ConvSC`` / ``BasicConv2d`` (conv, or conv + PixelShuffle(2),
  then GroupNorm(2) and SiLU; padding ``(k - stride + 1) // 2``), ``GASubBlock`` (BatchNorm,
  layer scales), ``TAUSubBlock``, ``TemporalAttention`` (proj_1, GELU, spatial_gating_unit, proj_2,
  shortcut), ``TemporalAttentionModule`` (conv0 5×5 depthwise, conv_spatial 7×7 depthwise with
  dilation 3, conv1 1×1, squeeze-excitation ``fc`` over the average-pooled input with
  ``reduction = max(dim // 16, 4)``, no FC bias; output = se · f · input).
* ``openstl/modules/layers/van.py``: ``MixMlp`` (fc1 1×1, ``dwconv.dwconv`` 3×3 depthwise, GELU, fc2).
* ``openstl/models/convlstm_model.py``, ``openstl/modules/convlstm_modules.py``: ``ConvLSTM_Model``
  (``cell_list``, model-level ``conv_last`` 1×1 without bias; loop over ``total_length - 1`` steps
  mixing ground truth and the previous prediction through ``mask_true``), ``ConvLSTMCell`` (``conv_x``,
  ``conv_h`` as Sequential(conv without bias[, LayerNorm]), gate order i, f, g, o, no forget bias in
  forward; ``conv_o`` and the cell's ``conv_last`` exist but are never used).
* ``openstl/methods/predrnn.py`` (``_predict``, which ``methods/convlstm.py`` inherits) and
  ``openstl/utils/predrnn_utils.py`` (``reshape_patch`` / ``reshape_patch_back``: channels-last,
  patch channels ordered (i·p + j)·C + c).
* ``configs/mmnist/TAU.py`` and ``configs/mmnist/ConvLSTM.py`` for the paper configurations.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


# ------------------------------------------------------------------------------------------------
# Checkpoints in OpenSTL's exact key layout
# ------------------------------------------------------------------------------------------------
def _rand(g: torch.Generator, *shape: int, scale: float | None = None) -> Tensor:
    fan_in = 1
    for s in shape[1:]:
        fan_in *= s
    std = scale if scale is not None else 1.0 / max(fan_in, 1) ** 0.5
    return torch.randn(*shape, generator=g) * std


def _conv(sd: dict, name: str, g: torch.Generator, c_out: int, c_in: int, k: int, bias: bool = True) -> None:
    sd[name + ".weight"] = _rand(g, c_out, c_in, k, k)
    if bias:
        sd[name + ".bias"] = _rand(g, c_out, scale=0.1)


def _affine(sd: dict, name: str, g: torch.Generator, n: int) -> None:
    sd[name + ".weight"] = 1.0 + _rand(g, n, scale=0.1)
    sd[name + ".bias"] = _rand(g, n, scale=0.1)


def _batchnorm(sd: dict, name: str, g: torch.Generator, n: int) -> None:
    _affine(sd, name, g, n)
    sd[name + ".running_mean"] = _rand(g, n, scale=0.1)
    sd[name + ".running_var"] = 0.5 + torch.rand(n, generator=g)
    sd[name + ".num_batches_tracked"] = torch.tensor(1234, dtype=torch.long)


def tau_state_dict(
    *,
    channels: int = 1,
    frames: int = 10,
    hid_S: int = 64,
    hid_T: int = 512,
    N_S: int = 4,
    N_T: int = 8,
    mlp_ratio: float = 8.0,
    spatio_kernel: int = 3,
    seed: int = 0,
) -> dict[str, Tensor]:
    """Random weights in the layout of OpenSTL's ``SimVP_Model(model_type='tau')``."""
    g = torch.Generator().manual_seed(seed)
    sd: dict[str, Tensor] = {}
    samplings = [False, True] * (N_S // 2)
    for i, _down in enumerate(samplings):
        _conv(sd, f"enc.enc.{i}.conv.conv", g, hid_S, channels if i == 0 else hid_S, spatio_kernel)
        _affine(sd, f"enc.enc.{i}.conv.norm", g, hid_S)
    for i, up in enumerate(reversed(samplings)):
        name = f"dec.dec.{i}.conv.conv.0" if up else f"dec.dec.{i}.conv.conv"
        _conv(sd, name, g, hid_S * 4 if up else hid_S, hid_S, spatio_kernel)
        _affine(sd, f"dec.dec.{i}.conv.norm", g, hid_S)
    _conv(sd, "dec.readout", g, channels, hid_S, 1)
    c_in = frames * hid_S
    for i in range(N_T):
        d_in = c_in if i == 0 else hid_T
        d_out = c_in if i == N_T - 1 else hid_T
        b = f"hid.enc.{i}.block"
        _batchnorm(sd, f"{b}.norm1", g, d_in)
        _batchnorm(sd, f"{b}.norm2", g, d_in)
        sd[f"{b}.layer_scale_1"] = _rand(g, d_in, scale=0.5)
        sd[f"{b}.layer_scale_2"] = _rand(g, d_in, scale=0.5)
        _conv(sd, f"{b}.attn.proj_1", g, d_in, d_in, 1)
        _conv(sd, f"{b}.attn.proj_2", g, d_in, d_in, 1)
        sgu = f"{b}.attn.spatial_gating_unit"
        sd[f"{sgu}.conv0.weight"] = _rand(g, d_in, 1, 5, 5)
        sd[f"{sgu}.conv0.bias"] = _rand(g, d_in, scale=0.1)
        sd[f"{sgu}.conv_spatial.weight"] = _rand(g, d_in, 1, 7, 7)
        sd[f"{sgu}.conv_spatial.bias"] = _rand(g, d_in, scale=0.1)
        _conv(sd, f"{sgu}.conv1", g, d_in, d_in, 1)
        squeeze = d_in // max(d_in // 16, 4)
        sd[f"{sgu}.fc.0.weight"] = _rand(g, squeeze, d_in)
        sd[f"{sgu}.fc.2.weight"] = _rand(g, d_in, squeeze)
        hidden = int(d_in * mlp_ratio)
        _conv(sd, f"{b}.mlp.fc1", g, hidden, d_in, 1)
        sd[f"{b}.mlp.dwconv.dwconv.weight"] = _rand(g, hidden, 1, 3, 3)
        sd[f"{b}.mlp.dwconv.dwconv.bias"] = _rand(g, hidden, scale=0.1)
        _conv(sd, f"{b}.mlp.fc2", g, d_in, hidden, 1)
        if d_in != d_out:
            _conv(sd, f"hid.enc.{i}.reduction", g, d_out, d_in, 1)
    return sd


def convlstm_state_dict(
    *,
    patch_channels: int,
    num_hidden: list[int],
    filter_size: int = 5,
    layer_norm: bool = False,
    grid: tuple[int, int] = (16, 16),
    seed: int = 0,
) -> dict[str, Tensor]:
    """Random weights in the layout of OpenSTL's ``ConvLSTM_Model`` (stride 1)."""
    g = torch.Generator().manual_seed(seed)
    sd: dict[str, Tensor] = {}
    k = filter_size
    for i, h in enumerate(num_hidden):
        c_in = patch_channels if i == 0 else num_hidden[i - 1]
        _conv(sd, f"cell_list.{i}.conv_x.0", g, 4 * h, c_in, k, bias=False)
        _conv(sd, f"cell_list.{i}.conv_h.0", g, 4 * h, h, k, bias=False)
        _conv(sd, f"cell_list.{i}.conv_o.0", g, h, 2 * h, k, bias=False)
        if layer_norm:
            for name, n in (("conv_x", 4 * h), ("conv_h", 4 * h), ("conv_o", h)):
                sd[f"cell_list.{i}.{name}.1.weight"] = torch.ones(n, *grid)
                sd[f"cell_list.{i}.{name}.1.bias"] = torch.zeros(n, *grid)
        _conv(sd, f"cell_list.{i}.conv_last", g, h, 2 * h, 1, bias=False)
    _conv(sd, "conv_last", g, patch_channels, num_hidden[-1], 1, bias=False)
    return sd


# ------------------------------------------------------------------------------------------------
# OpenSTL's forward passes, functional
# ------------------------------------------------------------------------------------------------
def _conv_sc(sd: dict, name: str, x: Tensor, *, down: bool = False, up: bool = False) -> Tensor:
    """ConvSC → BasicConv2d(act_norm=True)."""
    if up:
        w = sd[f"{name}.conv.conv.0.weight"]
        k = w.shape[-1]
        y = F.pixel_shuffle(F.conv2d(x, w, sd[f"{name}.conv.conv.0.bias"], 1, (k - 1 + 1) // 2), 2)
    else:
        w = sd[f"{name}.conv.conv.weight"]
        k, stride = w.shape[-1], 2 if down else 1
        y = F.conv2d(x, w, sd[f"{name}.conv.conv.bias"], stride, (k - stride + 1) // 2)
    y = F.group_norm(y, 2, sd[f"{name}.conv.norm.weight"], sd[f"{name}.conv.norm.bias"])
    return F.silu(y)


def _bn(sd: dict, name: str, x: Tensor) -> Tensor:
    return F.batch_norm(
        x,
        sd[f"{name}.running_mean"],
        sd[f"{name}.running_var"],
        sd[f"{name}.weight"],
        sd[f"{name}.bias"],
        training=False,
        eps=1e-5,
    )


def _pw(sd: dict, name: str, x: Tensor) -> Tensor:
    return F.conv2d(x, sd[f"{name}.weight"], sd.get(f"{name}.bias"))


def _tau_block(sd: dict, b: str, x: Tensor) -> Tensor:
    """GASubBlock.forward with TAUSubBlock's TemporalAttention (eval: no drop path)."""
    # attention branch
    z = _bn(sd, f"{b}.norm1", x)
    shortcut = z
    z = F.gelu(_pw(sd, f"{b}.attn.proj_1", z))
    sgu = f"{b}.attn.spatial_gating_unit"
    u = z
    w0, ws = sd[f"{sgu}.conv0.weight"], sd[f"{sgu}.conv_spatial.weight"]
    a = F.conv2d(z, w0, sd[f"{sgu}.conv0.bias"], padding=(w0.shape[-1] - 1) // 2, groups=z.shape[1])
    a = F.conv2d(
        a, ws, sd[f"{sgu}.conv_spatial.bias"], padding=3 * (ws.shape[-1] - 1) // 2, dilation=3, groups=z.shape[1]
    )
    f_x = _pw(sd, f"{sgu}.conv1", a)
    se = z.mean(dim=(2, 3))
    se = torch.sigmoid(F.linear(F.relu(F.linear(se, sd[f"{sgu}.fc.0.weight"])), sd[f"{sgu}.fc.2.weight"]))
    z = se[:, :, None, None] * f_x * u
    z = _pw(sd, f"{b}.attn.proj_2", z) + shortcut
    x = x + sd[f"{b}.layer_scale_1"][None, :, None, None] * z
    # MLP branch
    z = _bn(sd, f"{b}.norm2", x)
    z = _pw(sd, f"{b}.mlp.fc1", z)
    wd = sd[f"{b}.mlp.dwconv.dwconv.weight"]
    z = F.gelu(F.conv2d(z, wd, sd[f"{b}.mlp.dwconv.dwconv.bias"], padding=1, groups=z.shape[1]))
    z = _pw(sd, f"{b}.mlp.fc2", z)
    return x + sd[f"{b}.layer_scale_2"][None, :, None, None] * z


@torch.no_grad()
def simvp_tau_forward(sd: dict[str, Tensor], x_raw: Tensor) -> Tensor:
    """``SimVP_Model.forward`` in eval mode: B×T×C×H×W → B×T×C×H×W."""
    b, t, c, h, w = x_raw.shape
    n_s = len({k.split(".")[2] for k in sd if k.startswith("enc.enc.")})
    n_t = len({k.split(".")[2] for k in sd if k.startswith("hid.enc.")})
    samplings = [False, True] * (n_s // 2)
    x = x_raw.view(b * t, c, h, w)
    enc1 = latent = _conv_sc(sd, "enc.enc.0", x, down=samplings[0])
    for i in range(1, n_s):
        latent = _conv_sc(sd, f"enc.enc.{i}", latent, down=samplings[i])
    _, c_, h_, w_ = latent.shape
    z = latent.view(b, t, c_, h_, w_).reshape(b, t * c_, h_, w_)
    for i in range(n_t):
        z = _tau_block(sd, f"hid.enc.{i}.block", z)
        if f"hid.enc.{i}.reduction.weight" in sd:
            z = _pw(sd, f"hid.enc.{i}.reduction", z)
    hid = z.reshape(b, t, c_, h_, w_).reshape(b * t, c_, h_, w_)
    ups = list(reversed(samplings))
    for i in range(n_s - 1):
        hid = _conv_sc(sd, f"dec.dec.{i}", hid, up=ups[i])
    y = _conv_sc(sd, f"dec.dec.{n_s - 1}", hid + enc1, up=ups[-1])
    y = _pw(sd, "dec.readout", y)
    return y.reshape(b, t, c, h, w)


def reshape_patch(img: Tensor, p: int) -> Tensor:
    """B×T×H×W×C → B×T×(H/p)×(W/p)×(p·p·C), channels ordered (i·p + j)·C + c."""
    b, t, h, w, c = img.shape
    a = img.reshape(b, t, h // p, p, w // p, p, c).transpose(3, 4)
    return a.reshape(b, t, h // p, w // p, p * p * c)


def reshape_patch_back(patches: Tensor, p: int) -> Tensor:
    b, t, hp, wp, cc = patches.shape
    a = patches.reshape(b, t, hp, wp, p, p, cc // (p * p)).transpose(3, 4)
    return a.reshape(b, t, hp * p, wp * p, cc // (p * p))


def _convlstm_cell(sd: dict, name: str, x: Tensor, h: Tensor, c: Tensor) -> tuple[Tensor, Tensor]:
    wx, wh = sd[f"{name}.conv_x.0.weight"], sd[f"{name}.conv_h.0.weight"]
    x_concat = F.conv2d(x, wx, padding=wx.shape[-1] // 2)
    h_concat = F.conv2d(h, wh, padding=wh.shape[-1] // 2)
    n = wh.shape[1]
    i_x, f_x, g_x, o_x = torch.split(x_concat, n, dim=1)
    i_h, f_h, g_h, o_h = torch.split(h_concat, n, dim=1)
    i_t = torch.sigmoid(i_x + i_h)
    f_t = torch.sigmoid(f_x + f_h)
    g_t = torch.tanh(g_x + g_h)
    c_new = f_t * c + i_t * g_t
    o_t = torch.sigmoid(o_x + o_h)
    return o_t * torch.tanh(c_new), c_new


@torch.no_grad()
def convlstm_predict(
    sd: dict[str, Tensor], batch_x: Tensor, batch_y: Tensor, patch_size: int, reverse_scheduled_sampling: int = 0
) -> Tensor:
    """OpenSTL's ``ConvLSTM._predict`` (from ``PredRNN``) + ``ConvLSTM_Model.forward``: B×T×C×H×W in,
    the ``batch_y.shape[1]`` predicted frames out. ``batch_y`` only enters multiplied by a zero mask."""
    pre, aft = batch_x.shape[1], batch_y.shape[1]
    total = pre + aft
    b, _, c, h, w = batch_x.shape
    p = patch_size
    ims = torch.cat([batch_x, batch_y], dim=1).permute(0, 1, 3, 4, 2).contiguous()
    dat = reshape_patch(ims, p)
    mask_input = 1 if reverse_scheduled_sampling == 1 else pre
    flag = torch.zeros(b, total - mask_input - 1, h // p, w // p, p * p * c)
    if reverse_scheduled_sampling == 1:
        flag[:, : pre - 1] = 1.0
    # ConvLSTM_Model.forward
    frames = dat.permute(0, 1, 4, 2, 3).contiguous()
    mask = flag.permute(0, 1, 4, 2, 3).contiguous()
    n_layers = len({k.split(".")[1] for k in sd if k.startswith("cell_list.")})
    hidden = [sd[f"cell_list.{i}.conv_h.0.weight"].shape[1] for i in range(n_layers)]
    h_t = [torch.zeros(b, hidden[i], h // p, w // p) for i in range(n_layers)]
    c_t = [torch.zeros(b, hidden[i], h // p, w // p) for i in range(n_layers)]
    next_frames = []
    x_gen = None
    for t in range(total - 1):
        if reverse_scheduled_sampling == 1:
            net = frames[:, t] if t == 0 else mask[:, t - 1] * frames[:, t] + (1 - mask[:, t - 1]) * x_gen
        elif t < pre:
            net = frames[:, t]
        else:
            net = mask[:, t - pre] * frames[:, t] + (1 - mask[:, t - pre]) * x_gen
        h_t[0], c_t[0] = _convlstm_cell(sd, "cell_list.0", net, h_t[0], c_t[0])
        for i in range(1, n_layers):
            h_t[i], c_t[i] = _convlstm_cell(sd, f"cell_list.{i}", h_t[i - 1], h_t[i], c_t[i])
        x_gen = F.conv2d(h_t[-1], sd["conv_last.weight"])
        next_frames.append(x_gen)
    gen = torch.stack(next_frames, dim=0).permute(1, 0, 3, 4, 2).contiguous()
    gen = reshape_patch_back(gen, p)
    return gen[:, -aft:].permute(0, 1, 4, 2, 3).contiguous()


def relative_error(a: Tensor, b: Tensor) -> float:
    """max |a − b| / max |b|."""
    return float((a - b).abs().max() / b.abs().max().clamp_min(1e-30))
