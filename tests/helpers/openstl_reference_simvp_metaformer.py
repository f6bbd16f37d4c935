"""An independent reference of OpenSTL's SimVP with the ten MetaFormer translators, for testing stzoo.

Like ``openstl_reference_simvp.py`` (whose encoder / decoder layout and forward it reuses), this
re-states from OpenSTL's source (1) the tensor names and shapes of ``SimVP_Model(model_type=...)``
checkpoints with a ``MidMetaNet`` translator and (2) the inference forward pass as plain
``torch.nn.functional`` calls on an OpenSTL-layout state dict. It shares no code with ``stzoo.models``
or ``stzoo.convert``.

Files read (OpenSTL master, with timm 0.6.11 — OpenSTL's ``environment.yml`` pins ``timm<=0.6.11``):

* ``openstl/models/simvp_model.py``: ``MetaBlock`` (``block`` chosen by ``model_type``: 'convmixer' →
  ``ConvMixerSubBlock(kernel_size=11)``, 'mlp'/'mlpmixer' → ``MLPMixerSubBlock(input_resolution)``,
  'moga'/'moganet', 'uniformer' → ``'MHSA' if in == out and layer_i > 0 else 'Conv'``, 'swin'
  (``layer_i``), ...; 1×1 ``reduction`` when in ≠ out); ``MidMetaNet`` (T·hid_S → hid_T → ... → T·hid_S),
  ``input_resolution = (H / 2^(N_S/2), W / 2^(N_S/2))``.
* ``openstl/modules/simvp_modules.py``: ``ConvMixerSubBlock`` (x + norm_1(act_1(conv_dw(x))), then
  norm_2(act_2(conv_pw(x))) with no residual), ``ConvNeXtSubBlock`` (x + gamma · mlp(norm(conv_dw(x)))),
  ``MLPMixerSubBlock`` / ``ViTSubBlock`` / ``SwinSubBlock`` forwards (flatten to B×N×C, ...; Swin: window
  7 if H' % 7 == 0 else max(4, H' // 16), ≤ 8; shift window // 2 in odd layers; ``self.attn(x, mask=None)``),
  ``MogaSubBlock`` (layer scales 1×C×1×1), ``UniformerSubBlock`` (heads 8, qkv_bias), ``PoolFormerSubBlock``
  (pool 3, init 1e-5), ``VANSubBlock``, ``HorNetSubBlock``.
* ``openstl/modules/layers/{hornet,moganet,poolformer,uniformer,van}.py``.
* timm 0.6.11: ``vision_transformer.Block`` / ``Attention`` (heads 8, LayerNorm ε 1e-5),
  ``swin_transformer.WindowAttention`` (``relative_position_bias_table`` (2w−1)²×heads,
  ``get_relative_position_index``, persistent buffers ``relative_position_index`` and, when shifted,
  ``attn_mask``), ``mlp_mixer.MixerBlock`` (LayerNorm ε 1e-6, token MLP hidden int(0.5·C)),
  ``convnext.ConvNeXtBlock(conv_mlp=True)`` (``LayerNorm2d`` ε 1e-6, ``ConvMlp``), ``layers.Mlp``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from helpers.openstl_reference import _affine, _batchnorm, _bn, _conv, _pw, _rand
from helpers.openstl_reference_simvp import _spatial, simvp_forward

HEADS = 8
TYPES = ("vit", "swin", "mlp", "convmixer", "uniformer", "poolformer", "convnext", "van", "hornet", "moga")


# ------------------------------------------------------------------------------------------------
# Checkpoints in OpenSTL's exact key layout
# ------------------------------------------------------------------------------------------------
def _linear(sd: dict, name: str, g: torch.Generator, n_out: int, n_in: int) -> None:
    sd[name + ".weight"] = _rand(g, n_out, n_in)
    sd[name + ".bias"] = _rand(g, n_out, scale=0.1)


def _dw(sd: dict, name: str, g: torch.Generator, c: int, k: int) -> None:
    sd[name + ".weight"] = _rand(g, c, 1, k, k, scale=1.0 / k)
    sd[name + ".bias"] = _rand(g, c, scale=0.1)


def _scale(g: torch.Generator, *shape: int) -> Tensor:
    return 0.3 + 0.4 * torch.rand(*shape, generator=g)  # trained layer scales, well away from their 1e-6 init


def swin_window(h: int, w: int) -> tuple[int, int]:
    """SwinSubBlock's window, then timm's shrink rule (returns window, and 1 if odd layers shift else 0)."""
    ws = 7 if h % 7 == 0 else max(4, h // 16)
    ws = min(8, ws)
    if min(h, w) <= ws:
        return min(h, w), 0
    return ws, 1


def timm_relative_position_index(win: int) -> Tensor:
    coords = torch.stack(torch.meshgrid([torch.arange(win), torch.arange(win)], indexing="ij"))
    flat = torch.flatten(coords, 1)
    rel = (flat[:, :, None] - flat[:, None, :]).permute(1, 2, 0).contiguous()
    rel[:, :, 0] += win - 1
    rel[:, :, 1] += win - 1
    rel[:, :, 0] *= 2 * win - 1
    return rel.sum(-1)


def _window_partition(x: Tensor, ws: int) -> Tensor:
    b, h, w, c = x.shape
    x = x.view(b, h // ws, ws, w // ws, ws, c)
    return x.permute(0, 1, 3, 2, 4, 5).contiguous().view(-1, ws, ws, c)


def _window_reverse(windows: Tensor, ws: int, h: int, w: int) -> Tensor:
    b = int(windows.shape[0] / (h * w / ws / ws))
    x = windows.view(b, h // ws, w // ws, ws, ws, -1)
    return x.permute(0, 1, 3, 2, 4, 5).contiguous().view(b, h, w, -1)


def timm_attn_mask(h: int, w: int, ws: int, shift: int) -> Tensor:
    """timm 0.6.11's SwinTransformerBlock ``attn_mask`` buffer (saved in its checkpoints, unused by OpenSTL)."""
    img_mask = torch.zeros((1, h, w, 1))
    cnt = 0
    for hs in (slice(0, -ws), slice(-ws, -shift), slice(-shift, None)):
        for wsl in (slice(0, -ws), slice(-ws, -shift), slice(-shift, None)):
            img_mask[:, hs, wsl, :] = cnt
            cnt += 1
    mw = _window_partition(img_mask, ws).view(-1, ws * ws)
    mask = mw.unsqueeze(1) - mw.unsqueeze(2)
    return mask.masked_fill(mask != 0, (-100.0)).masked_fill(mask == 0, 0.0)


def _block(
    sd: dict,
    b: str,
    g: torch.Generator,
    kind: str,
    c: int,
    c_out: int,
    layer: int,
    res: tuple[int, int],
    mlp_ratio: float,
    timm_buffers: bool,
) -> None:
    hid = int(c * mlp_ratio)
    if kind in ("vit", "swin"):
        _affine(sd, f"{b}.norm1", g, c)
        _linear(sd, f"{b}.attn.qkv", g, 3 * c, c)
        _linear(sd, f"{b}.attn.proj", g, c, c)
        _affine(sd, f"{b}.norm2", g, c)
        _linear(sd, f"{b}.mlp.fc1", g, hid, c)
        _linear(sd, f"{b}.mlp.fc2", g, c, hid)
        if kind == "swin":
            ws, shifts = swin_window(*res)
            sd[f"{b}.attn.relative_position_bias_table"] = _rand(g, (2 * ws - 1) ** 2, HEADS, scale=0.5)
            if timm_buffers:
                sd[f"{b}.attn.relative_position_index"] = timm_relative_position_index(ws)
                if shifts and layer % 2:
                    sd[f"{b}.attn_mask"] = timm_attn_mask(res[0], res[1], ws, ws // 2)
    elif kind == "mlp":
        n = res[0] * res[1]
        _affine(sd, f"{b}.norm1", g, c)
        _linear(sd, f"{b}.mlp_tokens.fc1", g, int(0.5 * c), n)
        _linear(sd, f"{b}.mlp_tokens.fc2", g, n, int(0.5 * c))
        _affine(sd, f"{b}.norm2", g, c)
        _linear(sd, f"{b}.mlp_channels.fc1", g, hid, c)
        _linear(sd, f"{b}.mlp_channels.fc2", g, c, hid)
    elif kind == "convmixer":
        _dw(sd, f"{b}.conv_dw", g, c, 11)
        _batchnorm(sd, f"{b}.norm_1", g, c)
        _conv(sd, f"{b}.conv_pw", g, c, c, 1)
        _batchnorm(sd, f"{b}.norm_2", g, c)
    elif kind == "uniformer":
        _dw(sd, f"{b}.pos_embed", g, c, 3)
        if c == c_out and layer > 0:  # SABlock
            _affine(sd, f"{b}.norm1", g, c)
            _linear(sd, f"{b}.attn.qkv", g, 3 * c, c)
            _linear(sd, f"{b}.attn.proj", g, c, c)
            _affine(sd, f"{b}.norm2", g, c)
            _linear(sd, f"{b}.mlp.fc1", g, hid, c)
            _linear(sd, f"{b}.mlp.fc2", g, c, hid)
            sd[f"{b}.gamma_1"] = _scale(g, c)
            sd[f"{b}.gamma_2"] = _scale(g, c)
        else:  # CBlock
            _batchnorm(sd, f"{b}.norm1", g, c)
            _conv(sd, f"{b}.conv1", g, c, c, 1)
            _conv(sd, f"{b}.conv2", g, c, c, 1)
            _dw(sd, f"{b}.attn", g, c, 5)
            _batchnorm(sd, f"{b}.norm2", g, c)
            _conv(sd, f"{b}.mlp.fc1", g, hid, c, 1)
            _conv(sd, f"{b}.mlp.fc2", g, c, hid, 1)
    elif kind == "poolformer":
        _affine(sd, f"{b}.norm1", g, c)
        _affine(sd, f"{b}.norm2", g, c)
        _conv(sd, f"{b}.mlp.fc1", g, hid, c, 1)
        _conv(sd, f"{b}.mlp.fc2", g, c, hid, 1)
        sd[f"{b}.layer_scale_1"] = _scale(g, c)
        sd[f"{b}.layer_scale_2"] = _scale(g, c)
    elif kind == "convnext":
        _dw(sd, f"{b}.conv_dw", g, c, 7)
        _affine(sd, f"{b}.norm", g, c)
        _conv(sd, f"{b}.mlp.fc1", g, hid, c, 1)
        _conv(sd, f"{b}.mlp.fc2", g, c, hid, 1)
        sd[f"{b}.gamma"] = _scale(g, c)
    elif kind == "van":
        _batchnorm(sd, f"{b}.norm1", g, c)
        _conv(sd, f"{b}.attn.proj_1", g, c, c, 1)
        _dw(sd, f"{b}.attn.spatial_gating_unit.conv0", g, c, 5)
        _dw(sd, f"{b}.attn.spatial_gating_unit.conv_spatial", g, c, 7)
        _conv(sd, f"{b}.attn.spatial_gating_unit.conv1", g, c, c, 1)
        _conv(sd, f"{b}.attn.proj_2", g, c, c, 1)
        _batchnorm(sd, f"{b}.norm2", g, c)
        _conv(sd, f"{b}.mlp.fc1", g, hid, c, 1)
        _dw(sd, f"{b}.mlp.dwconv.dwconv", g, hid, 3)
        _conv(sd, f"{b}.mlp.fc2", g, c, hid, 1)
        sd[f"{b}.layer_scale_1"] = _scale(g, c)
        sd[f"{b}.layer_scale_2"] = _scale(g, c)
    elif kind == "hornet":
        dims = [c // 2**i for i in range(4)][::-1]
        _affine(sd, f"{b}.norm1", g, c)
        _conv(sd, f"{b}.gnconv.proj_in", g, 2 * c, c, 1)
        _dw(sd, f"{b}.gnconv.dwconv", g, sum(dims), 7)
        _conv(sd, f"{b}.gnconv.proj_out", g, c, c, 1)
        for i in range(3):
            _conv(sd, f"{b}.gnconv.pws.{i}", g, dims[i + 1], dims[i], 1)
        _affine(sd, f"{b}.norm2", g, c)
        _linear(sd, f"{b}.pwconv1", g, hid, c)
        _linear(sd, f"{b}.pwconv2", g, c, hid)
        sd[f"{b}.gamma1"] = _scale(g, c)
        sd[f"{b}.gamma2"] = _scale(g, c)
    elif kind == "moga":
        d1, d2 = int(3 / 8 * c), int(4 / 8 * c)
        _batchnorm(sd, f"{b}.norm1", g, c)
        _conv(sd, f"{b}.attn.proj_1", g, c, c, 1)
        _conv(sd, f"{b}.attn.gate", g, c, c, 1)
        _dw(sd, f"{b}.attn.value.DW_conv0", g, c, 5)
        _dw(sd, f"{b}.attn.value.DW_conv1", g, d1, 5)
        _dw(sd, f"{b}.attn.value.DW_conv2", g, d2, 7)
        _conv(sd, f"{b}.attn.value.PW_conv", g, c, c, 1)
        _conv(sd, f"{b}.attn.proj_2", g, c, c, 1)
        sd[f"{b}.attn.sigma"] = _scale(g, 1, c, 1, 1)
        _batchnorm(sd, f"{b}.norm2", g, c)
        _conv(sd, f"{b}.mlp.fc1", g, hid, c, 1)
        _dw(sd, f"{b}.mlp.dwconv", g, hid, 3)
        _conv(sd, f"{b}.mlp.fc2", g, c, hid, 1)
        _conv(sd, f"{b}.mlp.decompose", g, 1, hid, 1)
        sd[f"{b}.mlp.sigma"] = _scale(g, 1, hid, 1, 1)
        sd[f"{b}.layer_scale_1"] = _scale(g, 1, c, 1, 1)
        sd[f"{b}.layer_scale_2"] = _scale(g, 1, c, 1, 1)
    else:
        raise ValueError(kind)


def metaformer_state_dict(
    model_type: str,
    *,
    channels: int = 1,
    frames: int = 10,
    height: int = 64,
    width: int = 64,
    hid_S: int = 64,
    hid_T: int = 512,
    N_S: int = 4,
    N_T: int = 8,
    mlp_ratio: float = 8.0,
    spatio_kernel: int = 3,
    timm_buffers: bool = True,
    seed: int = 0,
) -> dict[str, Tensor]:
    """Random weights in the layout of OpenSTL's ``SimVP_Model(model_type=...)`` with a MetaFormer translator.
    ``timm_buffers``: include the persistent buffers timm 0.6 saves (Swin's ``relative_position_index`` and
    ``attn_mask``)."""
    kind = {"mlpmixer": "mlp", "moganet": "moga"}.get(model_type.lower(), model_type.lower())
    g = torch.Generator().manual_seed(seed)
    sd: dict[str, Tensor] = {}
    _spatial(sd, g, channels, hid_S, N_S, spatio_kernel)
    down = 2 ** (N_S // 2)
    res = (height // down, width // down)
    widths = [frames * hid_S] + [hid_T] * (N_T - 1) + [frames * hid_S]
    for i in range(N_T):
        _block(sd, f"hid.enc.{i}.block", g, kind, widths[i], widths[i + 1], i, res, mlp_ratio, timm_buffers)
        if widths[i] != widths[i + 1]:
            _conv(sd, f"hid.enc.{i}.reduction", g, widths[i + 1], widths[i], 1)
    return sd


# ------------------------------------------------------------------------------------------------
# OpenSTL's forward pass, functional (eval mode: no dropout, no drop path)
# ------------------------------------------------------------------------------------------------
def _lin(sd: dict, name: str, x: Tensor) -> Tensor:
    return F.linear(x, sd[f"{name}.weight"], sd[f"{name}.bias"])


def _ln(sd: dict, name: str, x: Tensor, eps: float) -> Tensor:
    return F.layer_norm(x, (x.shape[-1],), sd[f"{name}.weight"], sd[f"{name}.bias"], eps)


def _dwconv(sd: dict, name: str, x: Tensor, dilation: int = 1) -> Tensor:
    w = sd[f"{name}.weight"]
    k = w.shape[-1]
    return F.conv2d(x, w, sd[f"{name}.bias"], padding=dilation * (k - 1) // 2, dilation=dilation, groups=x.shape[1])


def _mhsa(sd: dict, name: str, x: Tensor, bias: Tensor | None = None) -> Tensor:
    """timm ``Attention`` / ``WindowAttention`` / UniFormer ``Attention`` (x: B×N×C)."""
    b, n, c = x.shape
    qkv = _lin(sd, f"{name}.qkv", x).reshape(b, n, 3, HEADS, -1).permute(2, 0, 3, 1, 4)
    q, k, v = qkv.unbind(0)
    scale = (c // HEADS) ** -0.5
    attn = (q * scale) @ k.transpose(-2, -1)
    if bias is not None:
        attn = attn + bias
    attn = attn.softmax(dim=-1)
    return _lin(sd, f"{name}.proj", (attn @ v).transpose(1, 2).reshape(b, n, -1))


def _mlp(sd: dict, name: str, x: Tensor) -> Tensor:
    return _lin(sd, f"{name}.fc2", F.gelu(_lin(sd, f"{name}.fc1", x)))


def _cmlp(sd: dict, name: str, x: Tensor) -> Tensor:
    return _pw(sd, f"{name}.fc2", F.gelu(_pw(sd, f"{name}.fc1", x)))


def _vit(sd: dict, b: str, x: Tensor) -> Tensor:
    B, C, H, W = x.shape
    x = x.flatten(2).transpose(1, 2)
    x = x + _mhsa(sd, f"{b}.attn", _ln(sd, f"{b}.norm1", x, 1e-5))
    x = x + _mlp(sd, f"{b}.mlp", _ln(sd, f"{b}.norm2", x, 1e-5))
    return x.reshape(B, H, W, C).permute(0, 3, 1, 2)


def _swin(sd: dict, b: str, x: Tensor, layer: int, res: tuple[int, int]) -> Tensor:
    ws, shifts = swin_window(*res)
    shift = ws // 2 if shifts and layer % 2 else 0
    B, C, H, W = x.shape
    x = x.flatten(2).transpose(1, 2)
    shortcut = x
    x = _ln(sd, f"{b}.norm1", x, 1e-5).view(B, H, W, C)
    if shift:
        x = torch.roll(x, shifts=(-shift, -shift), dims=(1, 2))
    win = _window_partition(x, ws).view(-1, ws * ws, C)
    idx = timm_relative_position_index(ws)
    table = sd[f"{b}.attn.relative_position_bias_table"]
    bias = table[idx.view(-1)].view(ws * ws, ws * ws, -1).permute(2, 0, 1).contiguous().unsqueeze(0)
    win = _mhsa(sd, f"{b}.attn", win, bias)  # OpenSTL: self.attn(x_windows, mask=None)
    x = _window_reverse(win.view(-1, ws, ws, C), ws, H, W)
    if shift:
        x = torch.roll(x, shifts=(shift, shift), dims=(1, 2))
    x = shortcut + x.view(B, H * W, C)
    x = x + _mlp(sd, f"{b}.mlp", _ln(sd, f"{b}.norm2", x, 1e-5))
    return x.reshape(B, H, W, C).permute(0, 3, 1, 2)


def _mixer(sd: dict, b: str, x: Tensor) -> Tensor:
    B, C, H, W = x.shape
    x = x.flatten(2).transpose(1, 2)
    x = x + _mlp(sd, f"{b}.mlp_tokens", _ln(sd, f"{b}.norm1", x, 1e-6).transpose(1, 2)).transpose(1, 2)
    x = x + _mlp(sd, f"{b}.mlp_channels", _ln(sd, f"{b}.norm2", x, 1e-6))
    return x.reshape(B, H, W, C).permute(0, 3, 1, 2)


def _convmixer(sd: dict, b: str, x: Tensor) -> Tensor:
    x = x + _bn(sd, f"{b}.norm_1", F.gelu(_dwconv(sd, f"{b}.conv_dw", x)))
    return _bn(sd, f"{b}.norm_2", F.gelu(_pw(sd, f"{b}.conv_pw", x)))


def _uniformer(sd: dict, b: str, x: Tensor) -> Tensor:
    x = x + _dwconv(sd, f"{b}.pos_embed", x)
    if f"{b}.gamma_1" in sd:  # SABlock
        B, N, H, W = x.shape
        x = x.flatten(2).transpose(1, 2)
        x = x + sd[f"{b}.gamma_1"] * _mhsa(sd, f"{b}.attn", _ln(sd, f"{b}.norm1", x, 1e-5))
        x = x + sd[f"{b}.gamma_2"] * _mlp(sd, f"{b}.mlp", _ln(sd, f"{b}.norm2", x, 1e-5))
        return x.transpose(1, 2).reshape(B, N, H, W)
    z = _pw(sd, f"{b}.conv1", _bn(sd, f"{b}.norm1", x))
    x = x + _pw(sd, f"{b}.conv2", _dwconv(sd, f"{b}.attn", z))
    return x + _cmlp(sd, f"{b}.mlp", _bn(sd, f"{b}.norm2", x))


def _gn1(sd: dict, name: str, x: Tensor) -> Tensor:
    return F.group_norm(x, 1, sd[f"{name}.weight"], sd[f"{name}.bias"], 1e-5)


def _poolformer(sd: dict, b: str, x: Tensor) -> Tensor:
    z = _gn1(sd, f"{b}.norm1", x)
    z = F.avg_pool2d(z, 3, stride=1, padding=1, count_include_pad=False) - z
    x = x + sd[f"{b}.layer_scale_1"].unsqueeze(-1).unsqueeze(-1) * z
    return x + sd[f"{b}.layer_scale_2"].unsqueeze(-1).unsqueeze(-1) * _cmlp(sd, f"{b}.mlp", _gn1(sd, f"{b}.norm2", x))


def _ln_channels_first(sd: dict, name: str, x: Tensor, eps: float) -> Tensor:
    """HorNet's LayerNorm(data_format='channels_first'), written as it is there."""
    u = x.mean(1, keepdim=True)
    s = (x - u).pow(2).mean(1, keepdim=True)
    x = (x - u) / torch.sqrt(s + eps)
    return sd[f"{name}.weight"][:, None, None] * x + sd[f"{name}.bias"][:, None, None]


def _convnext(sd: dict, b: str, x: Tensor) -> Tensor:
    z = _dwconv(sd, f"{b}.conv_dw", x)
    z = F.layer_norm(z.permute(0, 2, 3, 1), (z.shape[1],), sd[f"{b}.norm.weight"], sd[f"{b}.norm.bias"], 1e-6)
    z = _cmlp(sd, f"{b}.mlp", z.permute(0, 3, 1, 2))
    return x + sd[f"{b}.gamma"].reshape(1, -1, 1, 1) * z


def _van(sd: dict, b: str, x: Tensor) -> Tensor:
    z = _bn(sd, f"{b}.norm1", x)
    shortcut = z
    z = F.gelu(_pw(sd, f"{b}.attn.proj_1", z))
    sgu = f"{b}.attn.spatial_gating_unit"
    a = _dwconv(sd, f"{sgu}.conv0", z)
    a = _dwconv(sd, f"{sgu}.conv_spatial", a, dilation=3)
    z = z * _pw(sd, f"{sgu}.conv1", a)
    z = _pw(sd, f"{b}.attn.proj_2", z) + shortcut
    x = x + sd[f"{b}.layer_scale_1"].unsqueeze(-1).unsqueeze(-1) * z
    z = _pw(sd, f"{b}.mlp.fc1", _bn(sd, f"{b}.norm2", x))
    z = _pw(sd, f"{b}.mlp.fc2", F.gelu(_dwconv(sd, f"{b}.mlp.dwconv.dwconv", z)))
    return x + sd[f"{b}.layer_scale_2"].unsqueeze(-1).unsqueeze(-1) * z


def _hornet(sd: dict, b: str, x: Tensor) -> Tensor:
    B, C, H, W = x.shape
    dims = [C // 2**i for i in range(4)][::-1]
    z = _ln_channels_first(sd, f"{b}.norm1", x, 1e-6)
    fused = _pw(sd, f"{b}.gnconv.proj_in", z)
    pwa, abc = torch.split(fused, (dims[0], sum(dims)), dim=1)
    dw_list = torch.split(_dwconv(sd, f"{b}.gnconv.dwconv", abc) * 1.0, dims, dim=1)
    y = pwa * dw_list[0]
    for i in range(3):
        y = _pw(sd, f"{b}.gnconv.pws.{i}", y) * dw_list[i + 1]
    y = _pw(sd, f"{b}.gnconv.proj_out", y)
    x = x + sd[f"{b}.gamma1"].view(C, 1, 1) * y
    inp = x
    z = x.permute(0, 2, 3, 1)
    z = _ln(sd, f"{b}.norm2", z, 1e-6)
    z = _lin(sd, f"{b}.pwconv2", F.gelu(_lin(sd, f"{b}.pwconv1", z)))
    z = (sd[f"{b}.gamma2"] * z).permute(0, 3, 1, 2)
    return inp + z


def _moga(sd: dict, b: str, x: Tensor) -> Tensor:
    C = x.shape[1]
    d1, d2 = int(3 / 8 * C), int(4 / 8 * C)
    d0 = C - d1 - d2
    # MultiOrderGatedAggregation
    a = _bn(sd, f"{b}.norm1", x)
    shortcut = a
    z = _pw(sd, f"{b}.attn.proj_1", a)
    z = F.silu(z + sd[f"{b}.attn.sigma"] * (z - F.adaptive_avg_pool2d(z, 1)))
    g = _pw(sd, f"{b}.attn.gate", z)
    v0 = _dwconv(sd, f"{b}.attn.value.DW_conv0", z)
    v1 = _dwconv(sd, f"{b}.attn.value.DW_conv1", v0[:, d0 : d0 + d1], dilation=2)
    v2 = _dwconv(sd, f"{b}.attn.value.DW_conv2", v0[:, C - d2 :], dilation=3)
    v = _pw(sd, f"{b}.attn.value.PW_conv", torch.cat([v0[:, :d0], v1, v2], dim=1))
    a = _pw(sd, f"{b}.attn.proj_2", F.silu(g) * F.silu(v)) + shortcut
    x = x + sd[f"{b}.layer_scale_1"] * a
    # ChannelAggregationFFN
    h = F.gelu(_dwconv(sd, f"{b}.mlp.dwconv", _pw(sd, f"{b}.mlp.fc1", _bn(sd, f"{b}.norm2", x))))
    h = h + sd[f"{b}.mlp.sigma"] * (h - F.gelu(_pw(sd, f"{b}.mlp.decompose", h)))
    return x + sd[f"{b}.layer_scale_2"] * _pw(sd, f"{b}.mlp.fc2", h)


def _kind(sd: dict) -> str:
    b = "hid.enc.0.block."
    if b + "attn.relative_position_bias_table" in sd:
        return "swin"
    if b + "mlp_tokens.fc1.weight" in sd:
        return "mlp"
    if b + "conv_pw.weight" in sd:
        return "convmixer"
    if b + "pos_embed.weight" in sd:
        return "uniformer"
    if b + "gamma" in sd:
        return "convnext"
    if b + "gnconv.proj_in.weight" in sd:
        return "hornet"
    if b + "attn.value.PW_conv.weight" in sd:
        return "moga"
    if b + "attn.qkv.weight" in sd:
        return "vit"
    if b + "attn.spatial_gating_unit.conv0.weight" in sd:
        return "van"
    if b + "layer_scale_1" in sd:
        return "poolformer"
    raise ValueError("not a MetaFormer SimVP")


def metaformer_translator(sd: dict[str, Tensor], res: tuple[int, int]):
    """``MidMetaNet.forward`` as a function of the stacked B×(T·hid_S)×H'×W' map (``res`` = H'×W')."""
    kind = _kind(sd)
    n_t = len({k.split(".")[2] for k in sd if k.startswith("hid.enc.")})

    def run(z: Tensor) -> Tensor:
        for i in range(n_t):
            b = f"hid.enc.{i}.block"
            if kind == "swin":
                z = _swin(sd, b, z, i, res)
            else:
                z = {
                    "vit": _vit,
                    "mlp": _mixer,
                    "convmixer": _convmixer,
                    "uniformer": _uniformer,
                    "poolformer": _poolformer,
                    "convnext": _convnext,
                    "van": _van,
                    "hornet": _hornet,
                    "moga": _moga,
                }[kind](sd, b, z)
            if f"hid.enc.{i}.reduction.weight" in sd:
                z = _pw(sd, f"hid.enc.{i}.reduction", z)
        return z

    return run


@torch.no_grad()
def metaformer_forward(sd: dict[str, Tensor], x_raw: Tensor, res: tuple[int, int] | None = None) -> Tensor:
    """``SimVP_Model.forward`` in eval mode for a MetaFormer translator: B×T×C×H×W → B×T×C×H×W.
    ``res``: the ``input_resolution`` the model was built with (Swin's window depends on it); by default
    the input's H'×W'."""
    n_s = len({k.split(".")[2] for k in sd if k.startswith("enc.enc.")})
    down = 2 ** (n_s // 2)
    res = res or (x_raw.shape[-2] // down, x_raw.shape[-1] // down)
    return simvp_forward(sd, x_raw, translator=metaformer_translator(sd, res))
