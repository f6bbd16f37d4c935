"""An independent reference of OpenSTL's SimVP (IncepU and gSTA translators), for testing stzoo's importer.

Like ``tests/openstl_reference.py`` (whose OpenSTL-layout helpers for the shared ConvSC encoder /
decoder, BatchNorm and 1×1 convs it reuses), this re-states from OpenSTL's source (1) the tensor names
and shapes of ``SimVP_Model`` checkpoints and (2) the inference forward pass as plain
``torch.nn.functional`` calls on an OpenSTL-layout state dict. It shares no code with ``stzoo.models``
or ``stzoo.convert``.

Files read (OpenSTL master):

* ``openstl/models/simvp_model.py``: ``SimVP_Model`` (``enc`` / ``hid`` / ``dec``; ``model_type``
  lower-cased, ``'incepu'`` → ``MidIncepNet``, otherwise ``MidMetaNet``); ``MidIncepNet`` (``enc`` of
  N_T ``gInception_ST`` blocks T·hid_S → hid_T → ... → hid_T, each through hid_T // 2; ``dec``: hid_T →
  hid_T, then N_T − 1 blocks reading ``cat([z, skips[-i]])`` (2·hid_T), the last writing T·hid_S;
  ``skips`` = the outputs of enc blocks 0..N_T−2; ``incep_ker=[3,5,7,11]``, ``groups=8``);
  ``MidMetaNet`` / ``MetaBlock`` (``block`` = ``GASubBlock(kernel_size=21)`` for 'gsta', then a 1×1
  ``reduction`` where the width changes).
* ``openstl/modules/simvp_modules.py``: ``gInception_ST`` (``conv1`` 1×1 with bias, then the *sum* of
  the ``layers``), ``GroupConv2d`` (groups → 1 when in_channels % groups ≠ 0; conv with padding k // 2,
  ``GroupNorm(groups, out)``, ``LeakyReLU(0.2)``), ``GASubBlock`` (``norm1`` / ``norm2`` BatchNorm,
  ``layer_scale_1/2``; x + ls1·attn(norm1(x)), x + ls2·mlp(norm2(x))), ``SpatialAttention`` (proj_1,
  GELU, ``spatial_gating_unit``, proj_2, plus the shortcut taken before proj_1), ``AttentionModule``
  (conv0 5×5 depthwise pad 2, conv_spatial 7×7 depthwise dilation 3 pad 9, conv1 1×1 to 2·dim,
  split in halves f_x, g_x, output sigmoid(g_x)·f_x).
* ``openstl/modules/layers/van.py``: ``MixMlp`` (fc1, ``dwconv.dwconv`` 3×3 depthwise, GELU, fc2).
* ``openstl/methods/simvp.py``: ``_predict`` calls the model once when aft_seq_length == pre_seq_length.
* ``configs/mmnist/simvp/SimVP_IncepU.py`` and ``SimVP_gSTA.py``: hid_S 64, hid_T 512, N_S 4, N_T 8
  (mlp_ratio 8 is SimVP_Model's default).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from helpers.openstl_reference import _affine, _batchnorm, _bn, _conv, _conv_sc, _pw, _rand

INCEP_KER = (3, 5, 7, 11)


# ------------------------------------------------------------------------------------------------
# Checkpoints in OpenSTL's exact key layout
# ------------------------------------------------------------------------------------------------
def _spatial(sd: dict, g: torch.Generator, channels: int, hid_S: int, N_S: int, k: int) -> None:
    samplings = [False, True] * (N_S // 2)
    for i, _down in enumerate(samplings):
        _conv(sd, f"enc.enc.{i}.conv.conv", g, hid_S, channels if i == 0 else hid_S, k)
        _affine(sd, f"enc.enc.{i}.conv.norm", g, hid_S)
    for i, up in enumerate(reversed(samplings)):
        name = f"dec.dec.{i}.conv.conv.0" if up else f"dec.dec.{i}.conv.conv"
        _conv(sd, name, g, hid_S * 4 if up else hid_S, hid_S, k)
        _affine(sd, f"dec.dec.{i}.conv.norm", g, hid_S)
    _conv(sd, "dec.readout", g, channels, hid_S, 1)


def _incep(sd: dict, name: str, g: torch.Generator, c_in: int, c_hid: int, c_out: int, groups: int = 8) -> None:
    _conv(sd, f"{name}.conv1", g, c_hid, c_in, 1)
    grp = groups if c_hid % groups == 0 else 1
    for j, k in enumerate(INCEP_KER):
        _conv(sd, f"{name}.layers.{j}.conv", g, c_out, c_hid // grp, k)
        _affine(sd, f"{name}.layers.{j}.norm", g, c_out)


def simvp_state_dict(
    model_type: str,
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
    """Random weights in the layout of OpenSTL's ``SimVP_Model(model_type=...)`` ('incepu' or 'gsta')."""
    g = torch.Generator().manual_seed(seed)
    sd: dict[str, Tensor] = {}
    _spatial(sd, g, channels, hid_S, N_S, spatio_kernel)
    c_in = frames * hid_S
    if model_type.lower() == "incepu":
        half = hid_T // 2
        for i in range(N_T):
            _incep(sd, f"hid.enc.{i}", g, c_in if i == 0 else hid_T, half, hid_T)
        for i in range(N_T):
            _incep(sd, f"hid.dec.{i}", g, hid_T if i == 0 else 2 * hid_T, half, c_in if i == N_T - 1 else hid_T)
        return sd
    assert model_type.lower() == "gsta"
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
        _conv(sd, f"{sgu}.conv1", g, 2 * d_in, d_in, 1)
        hidden = int(d_in * mlp_ratio)
        _conv(sd, f"{b}.mlp.fc1", g, hidden, d_in, 1)
        sd[f"{b}.mlp.dwconv.dwconv.weight"] = _rand(g, hidden, 1, 3, 3)
        sd[f"{b}.mlp.dwconv.dwconv.bias"] = _rand(g, hidden, scale=0.1)
        _conv(sd, f"{b}.mlp.fc2", g, d_in, hidden, 1)
        if d_in != d_out:
            _conv(sd, f"hid.enc.{i}.reduction", g, d_out, d_in, 1)
    return sd


# ------------------------------------------------------------------------------------------------
# OpenSTL's forward pass, functional
# ------------------------------------------------------------------------------------------------
def _g_inception(sd: dict, name: str, x: Tensor) -> Tensor:
    """gInception_ST.forward: y = Σ_layers GroupConv2d(conv1(x))."""
    x = _pw(sd, f"{name}.conv1", x)
    y = 0
    for j in range(len(INCEP_KER)):
        w = sd[f"{name}.layers.{j}.conv.weight"]
        groups = x.shape[1] // w.shape[1]
        k = w.shape[-1]
        z = F.conv2d(x, w, sd[f"{name}.layers.{j}.conv.bias"], 1, k // 2, groups=groups)
        z = F.group_norm(z, groups, sd[f"{name}.layers.{j}.norm.weight"], sd[f"{name}.layers.{j}.norm.bias"])
        y = y + F.leaky_relu(z, 0.2)
    return y


def _mid_incep(sd: dict, z: Tensor, n_t: int) -> Tensor:
    skips = []
    for i in range(n_t):
        z = _g_inception(sd, f"hid.enc.{i}", z)
        if i < n_t - 1:
            skips.append(z)
    z = _g_inception(sd, "hid.dec.0", z)
    for i in range(1, n_t):
        z = _g_inception(sd, f"hid.dec.{i}", torch.cat([z, skips[-i]], dim=1))
    return z


def _ga_block(sd: dict, b: str, x: Tensor) -> Tensor:
    """GASubBlock.forward (eval: no drop path)."""
    z = _bn(sd, f"{b}.norm1", x)
    shortcut = z
    z = F.gelu(_pw(sd, f"{b}.attn.proj_1", z))
    sgu = f"{b}.attn.spatial_gating_unit"
    w0, ws = sd[f"{sgu}.conv0.weight"], sd[f"{sgu}.conv_spatial.weight"]
    a = F.conv2d(z, w0, sd[f"{sgu}.conv0.bias"], padding=2, groups=z.shape[1])
    a = F.conv2d(a, ws, sd[f"{sgu}.conv_spatial.bias"], padding=9, dilation=3, groups=z.shape[1])
    f_g = _pw(sd, f"{sgu}.conv1", a)
    f_x, g_x = torch.split(f_g, f_g.shape[1] // 2, dim=1)
    z = torch.sigmoid(g_x) * f_x
    z = _pw(sd, f"{b}.attn.proj_2", z) + shortcut
    x = x + sd[f"{b}.layer_scale_1"][None, :, None, None] * z
    z = _bn(sd, f"{b}.norm2", x)
    z = _pw(sd, f"{b}.mlp.fc1", z)
    wd = sd[f"{b}.mlp.dwconv.dwconv.weight"]
    z = F.gelu(F.conv2d(z, wd, sd[f"{b}.mlp.dwconv.dwconv.bias"], padding=1, groups=z.shape[1]))
    z = _pw(sd, f"{b}.mlp.fc2", z)
    return x + sd[f"{b}.layer_scale_2"][None, :, None, None] * z


def _mid_meta(sd: dict, z: Tensor, n_t: int) -> Tensor:
    for i in range(n_t):
        z = _ga_block(sd, f"hid.enc.{i}.block", z)
        if f"hid.enc.{i}.reduction.weight" in sd:
            z = _pw(sd, f"hid.enc.{i}.reduction", z)
    return z


@torch.no_grad()
def simvp_forward(sd: dict[str, Tensor], x_raw: Tensor, translator=None) -> Tensor:
    """``SimVP_Model.forward`` in eval mode (= ``SimVP._predict`` for aft == pre): B×T×C×H×W → B×T×C×H×W.
    The translator is told apart by its tensors: IncepU has ``hid.dec.*``; ``translator`` (a function of
    the stacked B×(T·hid_S)×H'×W' map) replaces both (the MetaFormer reference passes its own)."""
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
    incepu = any(k.startswith("hid.dec.") for k in sd)
    if translator is not None:
        z = translator(z)
    else:
        z = _mid_incep(sd, z, n_t) if incepu else _mid_meta(sd, z, n_t)
    hid = z.reshape(b, t, c_, h_, w_).reshape(b * t, c_, h_, w_)
    ups = list(reversed(samplings))
    for i in range(n_s - 1):
        hid = _conv_sc(sd, f"dec.dec.{i}", hid, up=ups[i])
    y = _conv_sc(sd, f"dec.dec.{n_s - 1}", hid + enc1, up=ups[-1])
    y = _pw(sd, "dec.readout", y)
    return y.reshape(b, t, c, h, w)


@torch.no_grad()
def simvp_predict(sd: dict[str, Tensor], batch_x: Tensor, aft: int) -> Tensor:
    """``SimVP._predict`` (``openstl/methods/simvp.py``): ``aft`` frames from ``pre = batch_x.shape[1]``.
    aft ≤ pre: one pass, cut; aft > pre: ``aft // pre`` passes each fed the previous output, then one
    more pass cut to ``aft % pre`` frames."""
    pre = batch_x.shape[1]
    if aft <= pre:
        return simvp_forward(sd, batch_x)[:, :aft]
    preds, cur = [], batch_x
    for _ in range(aft // pre):
        cur = simvp_forward(sd, cur)
        preds.append(cur)
    if aft % pre:
        cur = simvp_forward(sd, cur)
        preds.append(cur[:, : aft % pre])
    return torch.cat(preds, dim=1)


def parameter_count(sd: dict[str, Tensor]) -> int:
    """Values of an OpenSTL state dict that are parameters (BatchNorm running statistics excluded)."""
    buffers = ("running_mean", "running_var", "num_batches_tracked")
    return sum(v.numel() for k, v in sd.items() if not k.endswith(buffers))
