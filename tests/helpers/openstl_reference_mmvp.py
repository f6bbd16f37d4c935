"""An independent reference of OpenSTL's MMVP, for testing stzoo's importer and model.

Like ``tests/openstl_reference.py`` (whose random-weight helpers it reuses), this re-states from reading
OpenSTL's source (1) the tensor names and shapes of its checkpoints, the unused ones included, and (2)
its inference forward pass, as plain ``torch.nn.functional`` calls on an OpenSTL-layout state dict.
It shares no code with ``stzoo.convert`` or ``stzoo.models`` and follows OpenSTL's structure step by
step (per-scale loops, the size checks that interpolate, one composition call per scale).

Files read (OpenSTL master):

* ``openstl/models/mmvp_model.py``: ``MMVP_Model`` (``PixelUnshuffle(2)`` of every frame; ``RRDBEncoder``
  with ``scale_in_use=3`` (its first output set to ``None``); ``filter_block`` on the two lowest scales;
  ``MidMotionMatrix``: cosine similarity matrices of consecutive frames, the first ``T − 1`` kept, the
  future ones predicted from the high-scale ones only and resized to the low scale, every matrix
  softmax-normalised over all its entries; ``Compose``: cumulative products of the matrices from each
  observed frame to each future frame, features of the ``T`` observed frames averaged with those weights;
  ``RRDBDecoder``; the same composition applied to the input pixels (``res_unshuffle``); ``ImageEnhancer``
  on [decoded frame, composed frame]; output ``permute(0, 2, 3, 1).reshape(B, −1, C, H, W)``). Built but
  never called in ``forward``: ``MidMotionMatrix.scale_fuser_1`` / ``scale_fuser_2``.
* ``openstl/modules/mmvp_modules.py``: ``ResidualDenseBlock_4C`` / ``RRDB`` (LeakyReLU 0.2, residual
  scales 0.2), ``Up`` (``bilinear=False``: ConvTranspose2d(k = s = scale) then ``ConvLayer``: 3×3 conv
  without bias + ReLU, the skip concatenated first), ``ResBlock`` (downsample: 3×3 stride-2 conv, 1×1
  stride-2 shortcut, 3×3 conv, ReLUs, sum, LeakyReLU), ``Conv3D`` (Conv3d + BatchNorm3d + LeakyReLU),
  ``SimpleMatrixPredictor3DConv_direct`` and ``PredictModel`` (``fuse_conv`` only used with ``res``, which
  ``MidMotionMatrix`` never passes).
* ``openstl/utils/mmvp_utils.py``: ``build_similarity_matrix``, ``sim_matrix_postprocess``,
  ``sim_matrix_interpolate`` (bilinear on the target axes, bicubic on the source axes),
  ``cum_multiply``.
* ``openstl/methods/mmvp.py`` (inference: ``self.model(batch_x)``), ``configs/mmnist/MMVP.py``.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from helpers.openstl_reference import _rand

#: what OpenSTL builds but never uses in forward (prefixes)
UNUSED_PREFIXES = ("hid.scale_fuser_1.", "hid.scale_fuser_2.", "hid.predictor.fuse_conv.")


# ------------------------------------------------------------------------------------------------
# Checkpoint layout
# ------------------------------------------------------------------------------------------------
def _conv_shapes(out: dict, name: str, c_out: int, c_in: int, k: int, bias: bool = True, dims: int = 2) -> None:
    out[f"{name}.weight"] = (c_out, c_in) + (k,) * dims
    if bias:
        out[f"{name}.bias"] = (c_out,)


def _convt_shapes(out: dict, name: str, c_in: int, c_out: int, k: int) -> None:
    out[f"{name}.weight"] = (c_in, c_out, k, k)
    out[f"{name}.bias"] = (c_out,)


def _bn_shapes(out: dict, name: str, n: int) -> None:
    for s in ("weight", "bias", "running_mean", "running_var"):
        out[f"{name}.{s}"] = (n,)
    out[f"{name}.num_batches_tracked"] = ()


def _rrdb_shapes(out: dict, name: str, nf: int) -> None:
    gc = nf // 2
    for r in (1, 2, 3):
        for j, (c_out, c_in) in enumerate(((gc, nf), (gc, nf + gc), (gc, nf + 2 * gc), (nf, nf + 3 * gc)), 1):
            _conv_shapes(out, f"{name}.RDB{r}.conv{j}", c_out, c_in, 3)


def mmvp_shapes(
    *,
    channels: int = 1,
    frames_in: int = 10,
    frames_out: int = 10,
    hid_S: int = 32,
    hid_T: int = 192,
    rrdb_encoder_num: int = 2,
    rrdb_decoder_num: int = 2,
    rrdb_enhance_num: int = 2,
) -> dict[str, tuple]:
    """Every tensor (parameters and BatchNorm buffers) of OpenSTL's ``MMVP_Model`` with
    ``downsample_setting='2,2,2'`` and ``use_direct_predictor=True``, and its shape."""
    h, t, c = hid_S, hid_T, channels
    s: dict[str, tuple] = {}
    _conv_shapes(s, "enc.inconv", h, 4 * c, 3)
    for j in range(rrdb_encoder_num):
        _rrdb_shapes(s, f"enc.block_rrdb.{j}", h)
    for name, (c_in, c_out) in (
        ("enc.pre_downsample_block.0", (h, 2 * h)),
        ("enc.downsample_high", (2 * h, 4 * h)),
        ("enc.downsample_low", (4 * h, 8 * h)),
    ):
        _conv_shapes(s, f"{name}.conv1", c_out, c_in, 3)
        _conv_shapes(s, f"{name}.shortcut", c_out, c_in, 1)
        _conv_shapes(s, f"{name}.conv2", c_out, c_out, 3)
    for i, (c_in, c_out) in enumerate(((4 * h, h), (8 * h, 2 * h))):
        for j, idx in enumerate((0, 3, 6)):
            _conv_shapes(s, f"filter.filter_block.{i}.{idx}", c_out, c_in if j == 0 else c_out, 3)
            _bn_shapes(s, f"filter.filter_block.{i}.{idx + 1}", c_out)
    for name, c_in, c_out, skip in (
        ("dec.upsample_block_low2high", 8 * h, 4 * h, True),
        ("dec.upsample_block.0", 4 * h, 2 * h, True),
        ("dec.upsample_block.1", 2 * h, h, False),
    ):
        _convt_shapes(s, f"{name}.up", c_in, c_out, 2)
        _conv_shapes(s, f"{name}.conv.conv.0", c_out, 2 * c_out if skip else c_out, 3, bias=False)
    for j in range(rrdb_decoder_num):
        _rrdb_shapes(s, f"dec.rrdb_block.{j}", h)
    _conv_shapes(s, "dec.outc", 4 * c, h, 1)
    # MidMotionMatrix: the scale fusers (never called), the matrix predictor
    _convt_shapes(s, "hid.scale_fuser_1.up", 2 * h, h, 2)
    _conv_shapes(s, "hid.scale_fuser_1.conv.conv.0", h, 2 * h, 3, bias=False)
    _conv_shapes(s, "hid.scale_fuser_2.0", h, h, 3)
    _bn_shapes(s, "hid.scale_fuser_2.1", h)
    _conv_shapes(s, "hid.scale_fuser_2.3", h, h, 3)
    _bn_shapes(s, "hid.scale_fuser_2.4", h)
    pm = "hid.predictor"
    _conv_shapes(s, f"{pm}.conv1", t, 1, 3, bias=False)
    _conv_shapes(s, f"{pm}.fuse_conv", t, 2 * t, 3, bias=False)
    p = f"{pm}.predictor"
    _conv_shapes(s, f"{p}.conv_pre_1", t, t, 3)
    _conv_shapes(s, f"{p}.conv_pre_2", t, t, 3)
    _conv_shapes(s, f"{p}.conv3d_1.conv3d", t, t, 3, dims=3)
    _bn_shapes(s, f"{p}.conv3d_1.bn3d", t)
    if frames_out > 1:
        _conv_shapes(s, f"{p}.temporal_layer.conv3d", 2 * t, 2 * t, 3, dims=3)
        _bn_shapes(s, f"{p}.temporal_layer.bn3d", 2 * t)
    else:
        _conv_shapes(s, f"{p}.temporal_layer.0", 2 * t, 2 * t, 3)
    _conv_shapes(s, f"{p}.conv_translate.0", t * frames_out, t * (frames_in - 1), 1)
    _conv_shapes(s, f"{p}.conv1_1", t, t, 3)
    _conv_shapes(s, f"{p}.conv2_1", 2 * t, t, 3)
    _conv_shapes(s, f"{p}.conv3_1", t, 3 * t, 3)
    _conv_shapes(s, f"{p}.conv4_1", t, t, 3)
    for name, n in (
        ("bn_pre_1", t),
        ("bn_pre_2", t),
        ("bn1_1", t),
        ("bn2_1", 2 * t),
        ("bn3_1", t),
        ("bn4_1", t),
        ("bn_translate", t * frames_out),
    ):
        _bn_shapes(s, f"{p}.{name}", n)
    _conv_shapes(s, f"{pm}.out_conv", 1, t, 3, bias=False)
    _conv_shapes(s, "enhance.model.0", h, 2 * c, 3)
    for j in range(rrdb_enhance_num):
        _rrdb_shapes(s, f"enhance.model.{j + 1}", h)
    _conv_shapes(s, "enhance.outconv", c, h, 1)
    return s


def is_parameter(key: str) -> bool:
    """BatchNorm buffers are in the state dict but are not parameters."""
    return not key.endswith(("running_mean", "running_var", "num_batches_tracked"))


def mmvp_state_dict(*, seed: int = 0, gain: float = 1.0, **sizes) -> dict[str, Tensor]:
    """Random weights in the layout of OpenSTL's ``MMVP_Model``: convs std gain/√fan-in, biases ± 0.1,
    BatchNorm affine 1 ± 0.1 / ± 0.1 and running statistics that are not the identity."""
    g = torch.Generator().manual_seed(seed)
    out: dict[str, Tensor] = {}
    for key, shape in mmvp_shapes(**sizes).items():
        if key.endswith("num_batches_tracked"):
            out[key] = torch.tensor(321, dtype=torch.long)
        elif key.endswith("running_mean"):
            out[key] = _rand(g, *shape, scale=0.1)
        elif key.endswith("running_var"):
            out[key] = 0.5 + torch.rand(*shape, generator=g)
        elif key.endswith(".bias"):
            out[key] = _rand(g, *shape, scale=0.1)
        elif len(shape) == 1:  # BatchNorm weight
            out[key] = 1.0 + _rand(g, *shape, scale=0.1)
        else:
            fan_in = math.prod(shape[1:]) if ".up." not in key else shape[0]  # transposed conv, k = stride
            out[key] = torch.randn(*shape, generator=g) * (gain / fan_in**0.5)
    return out


# ------------------------------------------------------------------------------------------------
# Forward pass (eval mode)
# ------------------------------------------------------------------------------------------------
def _c(sd: dict, name: str, x: Tensor, stride: int = 1) -> Tensor:
    w = sd[f"{name}.weight"]
    pad = w.shape[-1] // 2
    if w.dim() == 5:
        return F.conv3d(x, w, sd.get(f"{name}.bias"), stride, pad)
    return F.conv2d(x, w, sd.get(f"{name}.bias"), stride, pad)


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


def _rdb(sd: dict, p: str, x: Tensor) -> Tensor:
    x1 = F.leaky_relu(_c(sd, f"{p}.conv1", x), 0.2)
    x2 = F.leaky_relu(_c(sd, f"{p}.conv2", torch.cat((x, x1), 1)), 0.2)
    x3 = F.leaky_relu(_c(sd, f"{p}.conv3", torch.cat((x, x1, x2), 1)), 0.2)
    x4 = _c(sd, f"{p}.conv4", torch.cat((x, x1, x2, x3), 1))
    return x4 * 0.2 + x


def _rrdb_stack(sd: dict, prefix: str, x: Tensor, first: int = 0) -> Tensor:
    j = first
    while f"{prefix}.{j}.RDB1.conv1.weight" in sd:
        out = _rdb(sd, f"{prefix}.{j}.RDB3", _rdb(sd, f"{prefix}.{j}.RDB2", _rdb(sd, f"{prefix}.{j}.RDB1", x)))
        x = out * 0.2 + x
        j += 1
    return x


def _resblock_down(sd: dict, p: str, x: Tensor) -> Tensor:
    shortcut = F.conv2d(x, sd[f"{p}.shortcut.weight"], sd[f"{p}.shortcut.bias"], stride=2)
    y = F.relu(_c(sd, f"{p}.conv1", x, stride=2))
    y = F.relu(_c(sd, f"{p}.conv2", y))
    return F.leaky_relu(y + shortcut)  # factor 2: no max pool


def _up(sd: dict, p: str, x1: Tensor, x2: Tensor | None) -> Tensor:
    w = sd[f"{p}.up.weight"]
    x1 = F.conv_transpose2d(x1, w, sd[f"{p}.up.bias"], stride=w.shape[-1])
    if x2 is not None:
        dy, dx = x2.shape[2] - x1.shape[2], x2.shape[3] - x1.shape[3]
        x1 = F.pad(x1, [dx // 2, dx - dx // 2, dy // 2, dy - dy // 2])
        x1 = torch.cat([x2, x1], dim=1)
    return F.relu(F.conv2d(x1, sd[f"{p}.conv.conv.0.weight"], padding=1))


def _conv3d_bn(sd: dict, p: str, x: Tensor) -> Tensor:
    """``Conv3D``: B×T×C×H×W → B×T×C×H×W."""
    x = x.permute(0, 2, 1, 3, 4).contiguous()
    x = F.leaky_relu(_bn(sd, f"{p}.bn3d", _c(sd, f"{p}.conv3d", x)))
    return x.permute(0, 2, 1, 3, 4).contiguous()


def _direct_predictor(sd: dict, p: str, x: Tensor, fut_len: int) -> Tensor:
    """``SimpleMatrixPredictor3DConv_direct.forward``."""
    batch = x.shape[0]
    x = x.reshape(-1, x.size(-3), x.size(-2), x.size(-1))
    x = F.leaky_relu(_bn(sd, f"{p}.bn_pre_1", _c(sd, f"{p}.conv_pre_1", x)))
    x = F.leaky_relu(_bn(sd, f"{p}.bn_pre_2", _c(sd, f"{p}.conv_pre_2", x)))
    x_1 = F.leaky_relu(_bn(sd, f"{p}.bn1_1", _c(sd, f"{p}.conv1_1", x, stride=2)))
    x_1 = x_1.view(batch, -1, x_1.size(1), x_1.size(2), x_1.size(3)).contiguous()
    x_1 = _conv3d_bn(sd, f"{p}.conv3d_1", x_1)
    batch, seq, c, h, w = x_1.shape
    x_tmp = x_1.reshape(batch, -1, h, w)
    x_tmp = _bn(sd, f"{p}.bn_translate", F.leaky_relu(_c(sd, f"{p}.conv_translate.0", x_tmp)))
    x_1 = x_tmp.reshape(batch, fut_len, c, h, w).view(-1, c, h, w)
    x_2 = F.leaky_relu(_bn(sd, f"{p}.bn2_1", _c(sd, f"{p}.conv2_1", x_1, stride=2)))
    if fut_len > 1:
        x_2 = x_2.view(batch, -1, x_2.size(1), x_2.size(2), x_2.size(3)).contiguous()
        x_2 = _conv3d_bn(sd, f"{p}.temporal_layer", x_2)
        x_2 = x_2.view(-1, x_2.size(2), x_2.size(3), x_2.size(4)).contiguous()
    else:
        x_2 = F.leaky_relu(_c(sd, f"{p}.temporal_layer.0", x_2))
    x_3 = F.leaky_relu(
        _bn(sd, f"{p}.bn3_1", _c(sd, f"{p}.conv3_1", torch.cat((F.interpolate(x_2, size=x_1.shape[2:]), x_1), dim=1)))
    )
    x = x.view(batch, -1, x.size(1), x.size(2), x.size(3))
    return F.leaky_relu(_bn(sd, f"{p}.bn4_1", _c(sd, f"{p}.conv4_1", F.interpolate(x_3, size=x.shape[3:]))))


def _predict_matrices(sd: dict, matrix_seq: Tensor, mx: tuple[int, int], fut_len: int) -> Tensor:
    """``PredictModel.forward(matrix_seq, softmax=False, res=None)``."""
    b, t, hw, window = matrix_seq.shape
    m = matrix_seq.reshape(-1, hw, mx[0], mx[1]).reshape(b * t * hw, mx[0], mx[1]).unsqueeze(1)
    x = F.conv2d(m, sd["hid.predictor.conv1.weight"], padding=1)
    x = x.reshape(b, t, hw, -1, mx[0], mx[1]).permute(0, 2, 1, 3, 4, 5).reshape(b * hw, t, -1, mx[0], mx[1])
    emb = _direct_predictor(sd, "hid.predictor.predictor", x, fut_len)
    emb = emb.reshape(b * hw * fut_len, -1, mx[0], mx[1])
    out = F.conv2d(emb, sd["hid.predictor.out_conv.weight"], padding=1)
    return out.reshape(b, hw, -1, mx[0], mx[1]).permute(0, 2, 1, 3, 4).reshape(b, -1, hw, window)


def build_similarity_matrix(emb: Tensor) -> Tensor:
    b, t, c, h, w = emb.shape
    emb = emb.permute(0, 1, 3, 4, 2)
    emb = emb / (torch.norm(emb, dim=-1, keepdim=True) + 1e-6)
    prev = emb[:, : t - 1].reshape(-1, h * w, c)
    nxt = emb[:, 1:].reshape(-1, h * w, c)
    return torch.bmm(prev, nxt.permute(0, 2, 1)).reshape(b, t - 1, h * w, h * w)


def sim_matrix_postprocess(m: Tensor) -> Tensor:
    b, t, a, c = m.shape
    return F.softmax(m.reshape(b, t, -1), dim=-1).reshape(b, t, a, c)


def sim_matrix_interpolate(m: Tensor, ori: tuple[int, int], target: tuple[int, int]) -> Tensor:
    b, t = m.shape[:2]
    oh, ow = ori
    th, tw = target
    o = m.clone().reshape(b, t, oh, ow, oh, ow)
    half = F.interpolate(o.reshape(-1, oh, ow).unsqueeze(1), (th, tw), mode="bilinear").squeeze(1)
    new = F.interpolate(
        half.reshape(b, t, oh, ow, th, tw).permute(0, 1, 4, 5, 2, 3).reshape(-1, oh, ow).unsqueeze(1),
        (th, tw),
        mode="bicubic",
    ).squeeze(1)
    return new.reshape(b, t, th, tw, th, tw).permute(0, 1, 4, 5, 2, 3).reshape(b, t, th * tw, th * tw)


def cum_multiply(seq: Tensor) -> Tensor:
    b, t, hw, _ = seq.shape
    new = seq.clone()
    for i in range(t - 2, -1, -1):
        new[:, i] = torch.bmm(new[:, i].reshape(b, hw, hw).clone(), new[:, i + 1].reshape(b, hw, hw).clone())
    return new


def _feat_generator(feats: Tensor, sim: Tensor) -> Tensor:
    b, t, c, h, w = feats.shape
    feats = feats.permute(0, 2, 1, 3, 4).reshape(b, c, t * h * w).permute(0, 2, 1)
    b, t, hw_cur, hw_target = sim.shape
    sim = sim.reshape(b, t * hw_cur, hw_target).permute(0, 2, 1)
    weight = torch.sum(sim, dim=-1).reshape(-1, 1, hw_target) + 1e-6
    new = torch.bmm(sim, feats).permute(0, 2, 1) / weight
    return new.reshape(b, c, h, w)


def _feat_compose(feats_list: list, sims: list, prev_len: int, aft: int) -> list:
    out = []
    for feats, sim in zip(feats_list, sims):
        if feats is None:
            out.append(None)
            continue
        b = sim.shape[0]
        n, c, h, w = feats.shape
        cur = feats.reshape(b, -1, c, h, w)[:, :prev_len]
        composed = []
        for t in range(aft):
            active = sim[:, : prev_len - 1]
            fut = sim[:, prev_len + t - 1 : prev_len + t] if t > 0 else sim[:, prev_len - 1 : prev_len + t]
            cum = cum_multiply(torch.cat([active, fut], dim=1).clone())
            composed.append(_feat_generator(cur[:, :prev_len].clone(), cum))
        out.append(torch.stack(composed, dim=1).reshape(-1, c, h, w))
    return out


def _mid_motion_matrix(sd: dict, gi: list, b: int, t: int, mat: list, fut_len: int) -> list:
    """``MidMotionMatrix.forward``: [observed ; predicted] normalised matrices at the two scales."""
    prev = []
    for g in gi:
        hg, wg = g.shape[2:]
        prev.append(build_similarity_matrix(g.reshape(b, t, -1, hg, wg))[:, : t - 1].clone())
    pred = _predict_matrices(sd, prev[0], tuple(mat[0]), fut_len)
    pred_sims = [
        sim_matrix_postprocess(pred.clone()),
        sim_matrix_postprocess(sim_matrix_interpolate(pred.clone(), mat[0], mat[1])),
    ]
    return [torch.cat([sim_matrix_postprocess(prev[k]), pred_sims[k]], dim=1) for k in range(2)]


@torch.no_grad()
def mmvp_forward(
    sd: dict[str, Tensor],
    x_raw: Tensor,
    *,
    in_shape_hw: tuple[int, int] | None = None,
    frames_out: int | None = None,
    return_matrices: bool = False,
):
    """``MMVP_Model.forward`` in eval mode (``downsample_setting='2,2,2'``): B×T×C×H×W → B×aft×C×H×W.

    ``in_shape_hw`` is the H×W of the ``in_shape`` the OpenSTL model was built with (its matrix sizes;
    default: the input's), ``frames_out`` its ``aft_seq_length`` (default: read from the weights). With
    ``return_matrices`` the normalised motion matrices [observed ; predicted] of the two scales are
    returned instead (``similar_matrix`` in ``MMVP_Model.forward``)."""
    b, t, c, hh, ww = x_raw.shape
    h_b, w_b = in_shape_hw or (hh, ww)
    mat = [[h_b // 8, w_b // 8], [h_b // 16, w_b // 16]]
    fut_len = (
        frames_out
        or sd["hid.predictor.predictor.bn_translate.weight"].shape[0]
        // sd["hid.predictor.predictor.bn4_1.weight"].shape[0]
    )
    x = F.pixel_unshuffle(x_raw.reshape(b * t, c, hh, ww), 2)
    x_wh = x.shape[-2:]
    # RRDBEncoder
    e = _rrdb_stack(sd, "enc.block_rrdb", _c(sd, "enc.inconv", x))
    fi = [e]
    e = _resblock_down(sd, "enc.pre_downsample_block.0", e)
    fi.append(e)
    e = _resblock_down(sd, "enc.downsample_high", e)
    fi.append(e)
    fi.append(_resblock_down(sd, "enc.downsample_low", e))
    fi[0] = None  # scale_in_use == 3
    feat_shape = [None if f is None else f.shape[2:] for f in fi]
    # filter_block
    gi = []
    for k, s in enumerate((-2, -1)):
        out = fi[s]
        if out.shape[-1] * out.shape[-2] != mat[s][0] * mat[s][1]:
            out = F.interpolate(out, size=tuple(mat[s]), mode="bilinear")
        for idx in (0, 3, 6):
            out = F.leaky_relu(
                _bn(sd, f"filter.filter_block.{k}.{idx + 1}", _c(sd, f"filter.filter_block.{k}.{idx}", out))
            )
        gi.append(out)
    similar = _mid_motion_matrix(sd, gi, b, t, mat, fut_len)
    if return_matrices:
        return similar
    # Compose.forward
    feat_scales = [4, 2]  # downsample '2,2,2': products of ds[s] for s from 1 down to i
    compose_list, sims_for = [], []
    for i in range(len(fi)):
        if fi[i] is None:
            compose_list.append(None)
            sims_for.append(None)
            continue
        if i < len(fi) - 2:
            hf, wf = fi[i].shape[-2:]
            size = (hf // feat_scales[i] * feat_scales[i], wf // feat_scales[i] * feat_scales[i])
            cur = F.pixel_unshuffle(F.interpolate(fi[i].clone(), size=size, mode="bilinear"), feat_scales[i])
            if tuple(cur.shape[-2:]) != tuple(mat[0]):
                cur = F.interpolate(cur, size=tuple(mat[0]), mode="bilinear")
            compose_list.append(cur.clone())
            sims_for.append(similar[0])
        else:
            m = mat[i - len(fi) + 2]
            compose_list.append(
                fi[i] if tuple(fi[i].shape[-2:]) == tuple(m) else F.interpolate(fi[i], size=tuple(m), mode="bilinear")
            )
    sims_for += [similar[0], similar[1]]
    composed = _feat_compose(compose_list, sims_for, t, fut_len)
    for i in range(len(composed)):
        if composed[i] is None:
            continue
        if i < len(fi) - 2:
            composed[i] = F.pixel_shuffle(composed[i], feat_scales[i])
        if tuple(composed[i].shape[-2:]) != tuple(feat_shape[i]):
            composed[i] = F.interpolate(composed[i], size=tuple(feat_shape[i]), mode="bilinear")
    # RRDBDecoder
    y = _up(sd, "dec.upsample_block_low2high", composed[-1], composed[-2])
    y = _up(sd, "dec.upsample_block.0", y, composed[-3])
    y = _up(sd, "dec.upsample_block.1", y, composed[-4])
    y = _rrdb_stack(sd, "dec.rrdb_block", y)
    recon = F.conv2d(y, sd["dec.outc.weight"], sd["dec.outc.bias"])
    # the same composition on the input pixels, then the enhancer
    x_img = x
    if x_wh != recon.shape[2:]:
        x_img = F.interpolate(x, (mat[0][0] * 4, mat[0][1] * 4))
    image = _feat_compose([F.pixel_unshuffle(x_img, 4)], [similar[0]], t, fut_len)[0]
    fut_img = F.pixel_shuffle(F.pixel_shuffle(image, 4), 2)
    recon = F.pixel_shuffle(recon, 2)
    if fut_img.shape[2:] != recon.shape[2:]:
        fut_img = F.interpolate(fut_img, recon.shape[2:])
    z = _c(sd, "enhance.model.0", torch.cat([recon, fut_img], dim=1))
    z = _rrdb_stack(sd, "enhance.model", z, first=1)
    final = F.conv2d(z, sd["enhance.outconv.weight"], sd["enhance.outconv.bias"])
    if final.shape[-2:] != (hh, ww):
        final = F.interpolate(final, (hh, ww))
    return final.permute(0, 2, 3, 1).reshape(b, -1, c, hh, ww)
