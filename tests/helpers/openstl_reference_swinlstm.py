"""An independent reference of OpenSTL's SwinLSTM-D, for testing stzoo's model and importer.

Like ``tests/openstl_reference.py``, this re-states from the source (1) the tensor names and shapes of
OpenSTL's SwinLSTM-D checkpoints and (2) their forward pass, as plain ``torch.nn.functional`` calls on
an OpenSTL-layout state dict. It shares no code with ``stzoo``.

Files read:

* OpenSTL ``openstl/models/swinlstm_model.py`` (``SwinLSTM_D_Model``: ``Downsample`` / ``Upsample``;
  the forward runs ``T − 1`` steps on the observed frames, then ``total_T − T`` steps each on the previous
  output, starting from the last observed frame; states start as ``None`` → zeros).
* OpenSTL ``openstl/methods/swinlstm.py`` (``forward``: ``cat([batch_x, batch_y])`` channels-last in, the
  last ``aft_seq_length`` outputs out; ``_build_model`` splits ``'2,6'``-style strings).
* OpenSTL ``openstl/modules/swinlstm_modules.py`` (``SwinLSTMCell``: block 0 reads (x, h), even blocks
  (previous, x), odd blocks (previous, None); Ft = σ(o), Ct = Ft·(c + tanh o), Ht = Ft·tanh Ct. ``STB``:
  a timm ``SwinTransformerBlock`` plus ``red = Linear(2·dim, dim)`` applied to [norm1(x), norm1(hx)] when
  a second input is given; shift ``window_size // 2`` for odd blocks. ``DownSample``: ``patch_embed``
  (timm PatchEmbed with LayerNorm), per layer cell then timm ``PatchMerging``. ``UpSample``: an unused
  ``patch_embed``, per layer i a cell with ``depths_upsample[L−1−i]`` blocks and ``num_heads[L−1−i]`` heads
  at grid / 2^(L−i), then ``PatchExpanding`` (Linear dim→2·dim without bias, 'b h w (p1 p2 c) → b (h p1)
  (w p2) c', LayerNorm(dim/2)); finally σ(``Unembed.Conv``, a 3×3 ConvTranspose2d stride 2, padding 1,
  output_padding 1)).
* timm v0.6.11 (the ``timm<=0.6.11`` of OpenSTL's environment.yml) ``timm/models/swin_transformer.py``
  (``window_partition`` / ``window_reverse``, ``get_relative_position_index``, ``WindowAttention``:
  qkv → (3, B, heads, N, d), q·scale, + table[index] bias, + mask (−100 between regions) reshaped per
  window, softmax, proj; ``SwinTransformerBlock``: whole-grid window and no shift when min(resolution) ≤
  window, the ``attn_mask`` and ``relative_position_index`` buffers saved in the state dict; ``PatchMerging``:
  [x[0::2,0::2], x[1::2,0::2], x[0::2,1::2], x[1::2,1::2]] → LayerNorm(4C) → Linear(4C, 2C, no bias))
  and ``timm/models/layers/patch_embed.py``, ``mlp.py`` (fc1 → GELU → fc2).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from helpers.openstl_reference import relative_error  # noqa: F401 (re-exported)

EPS = 1e-5  # nn.LayerNorm's default


def _randn(g: torch.Generator, *shape: int, std: float) -> Tensor:
    return torch.randn(*shape, generator=g) * std


def _linear(sd: dict, name: str, g: torch.Generator, out: int, inp: int, bias: bool = True, gain: float = 1.0):
    sd[f"{name}.weight"] = _randn(g, out, inp, std=gain / math.sqrt(inp))
    if bias:
        sd[f"{name}.bias"] = _randn(g, out, std=0.1)


def _norm(sd: dict, name: str, g: torch.Generator, n: int):
    sd[f"{name}.weight"] = 1.0 + _randn(g, n, std=0.2)
    sd[f"{name}.bias"] = _randn(g, n, std=0.2)


def timm_window(resolution: int, window_size: int, index: int) -> tuple[int, int]:
    """(window, shift) of STB ``index`` at a square ``resolution``: OpenSTL asks for shift window // 2 on
    odd blocks, timm clips the window to the grid (and drops the shift) when the grid is no larger."""
    shift = 0 if index % 2 == 0 else window_size // 2
    if resolution <= window_size:
        return resolution, 0
    return window_size, shift


def timm_relative_position_index(w: int) -> Tensor:
    coords = torch.stack(torch.meshgrid([torch.arange(w), torch.arange(w)], indexing="ij"))
    flat = torch.flatten(coords, 1)
    rel = (flat[:, :, None] - flat[:, None, :]).permute(1, 2, 0).contiguous()
    rel[:, :, 0] += w - 1
    rel[:, :, 1] += w - 1
    rel[:, :, 0] *= 2 * w - 1
    return rel.sum(-1)


def window_partition(x: Tensor, w: int) -> Tensor:
    b, h, wd, c = x.shape
    x = x.view(b, h // w, w, wd // w, w, c)
    return x.permute(0, 1, 3, 2, 4, 5).contiguous().view(-1, w, w, c)


def window_reverse(windows: Tensor, w: int, h: int, wd: int) -> Tensor:
    b = int(windows.shape[0] / (h * wd / w / w))
    x = windows.view(b, h // w, wd // w, w, w, -1)
    return x.permute(0, 1, 3, 2, 4, 5).contiguous().view(b, h, wd, -1)


def timm_attn_mask(resolution: int, w: int, s: int) -> Tensor:
    img = torch.zeros((1, resolution, resolution, 1))
    cnt = 0
    for hs in (slice(0, -w), slice(-w, -s), slice(-s, None)):
        for ws in (slice(0, -w), slice(-w, -s), slice(-s, None)):
            img[:, hs, ws, :] = cnt
            cnt += 1
    mw = window_partition(img, w).view(-1, w * w)
    mask = mw.unsqueeze(1) - mw.unsqueeze(2)
    return mask.masked_fill(mask != 0, -100.0).masked_fill(mask == 0, 0.0)


def layout(img_size: int, patch_size: int, embed_dim: int, depths_down, depths_up, num_heads):
    """[(prefix, resolution, dim, depth, heads)] of the cells as OpenSTL builds them, down then up."""
    grid, n = img_size // patch_size, len(depths_down)
    cells = [(f"Downsample.layers.{i}", grid // 2**i, embed_dim * 2**i, depths_down[i], num_heads[i]) for i in range(n)]
    cells += [
        (
            f"Upsample.layers.{i}",
            grid // 2 ** (n - i),
            embed_dim * 2 ** (n - i),
            depths_up[n - 1 - i],
            num_heads[n - 1 - i],
        )
        for i in range(n)
    ]
    return cells


def swinlstm_state_dict(
    *,
    channels: int = 1,
    img_size: int = 64,
    patch_size: int = 2,
    embed_dim: int = 128,
    depths_down=(2, 6),
    depths_up=(6, 2),
    num_heads=(4, 8),
    window_size: int = 4,
    mlp_ratio: float = 4.0,
    timm_buffers: bool = True,
    seed: int = 0,
) -> dict[str, Tensor]:
    """Random weights in the key layout of OpenSTL's ``SwinLSTM_D_Model`` (with timm 0.6's saved buffers
    ``relative_position_index`` and, on shifted blocks, ``attn_mask`` unless ``timm_buffers=False``).
    LayerNorm gains and biases, biases and the relative position tables are far from their initial values
    so that a misplaced tensor changes the output visibly."""
    g = torch.Generator().manual_seed(seed)
    sd: dict[str, Tensor] = {}
    n = len(depths_down)
    for path in ("Downsample", "Upsample"):  # Upsample's patch_embed exists but is never called
        sd[f"{path}.patch_embed.proj.weight"] = _randn(
            g, embed_dim, channels, patch_size, patch_size, std=1.0 / patch_size / math.sqrt(channels)
        )
        sd[f"{path}.patch_embed.proj.bias"] = _randn(g, embed_dim, std=0.1)
        _norm(sd, f"{path}.patch_embed.norm", g, embed_dim)
    for prefix, res, dim, depth, heads in layout(img_size, patch_size, embed_dim, depths_down, depths_up, num_heads):
        hidden = int(dim * mlp_ratio)
        for j in range(depth):
            b = f"{prefix}.STBs.{j}"
            w, s = timm_window(res, window_size, j)
            _norm(sd, f"{b}.norm1", g, dim)
            sd[f"{b}.attn.relative_position_bias_table"] = _randn(g, (2 * w - 1) ** 2, heads, std=0.5)
            if timm_buffers:
                sd[f"{b}.attn.relative_position_index"] = timm_relative_position_index(w)
            _linear(sd, f"{b}.attn.qkv", g, 3 * dim, dim, gain=1.5)
            _linear(sd, f"{b}.attn.proj", g, dim, dim)
            _norm(sd, f"{b}.norm2", g, dim)
            _linear(sd, f"{b}.mlp.fc1", g, hidden, dim)
            _linear(sd, f"{b}.mlp.fc2", g, dim, hidden)
            _linear(sd, f"{b}.red", g, dim, 2 * dim)
            if timm_buffers and s > 0:
                sd[f"{b}.attn_mask"] = timm_attn_mask(res, w, s)
    for i in range(n):
        dim = embed_dim * 2**i
        _norm(sd, f"Downsample.downsample.{i}.norm", g, 4 * dim)
        _linear(sd, f"Downsample.downsample.{i}.reduction", g, 2 * dim, 4 * dim, bias=False)
        dim = embed_dim * 2 ** (n - i)
        _linear(sd, f"Upsample.upsample.{i}.expand", g, 2 * dim, dim, bias=False)
        _norm(sd, f"Upsample.upsample.{i}.norm", g, dim // 2)
    sd["Upsample.Unembed.Conv.weight"] = _randn(g, embed_dim, channels, 3, 3, std=2.0 / math.sqrt(embed_dim * 9))
    sd["Upsample.Unembed.Conv.bias"] = _randn(g, channels, std=0.1)
    return sd


def parameter_count(sd: dict[str, Tensor]) -> int:
    """The parameters of an OpenSTL SwinLSTM-D state dict (timm's buffers are not parameters)."""
    return sum(v.numel() for k, v in sd.items() if not k.endswith(("relative_position_index", "attn_mask")))


# ------------------------------------------------------------------------------------------------
# The forward pass
# ------------------------------------------------------------------------------------------------
def _ln(sd: dict, name: str, x: Tensor) -> Tensor:
    return F.layer_norm(x, (x.shape[-1],), sd[f"{name}.weight"], sd[f"{name}.bias"], EPS)


def _lin(sd: dict, name: str, x: Tensor) -> Tensor:
    return F.linear(x, sd[f"{name}.weight"], sd.get(f"{name}.bias"))


def _window_attention(sd: dict, b: str, x: Tensor, heads: int, w: int, mask: Tensor | None) -> Tensor:
    bn, n, c = x.shape
    qkv = _lin(sd, f"{b}.attn.qkv", x).reshape(bn, n, 3, heads, -1).permute(2, 0, 3, 1, 4)
    q, k, v = qkv.unbind(0)
    q = q * (c // heads) ** -0.5
    attn = q @ k.transpose(-2, -1)
    index = sd.get(f"{b}.attn.relative_position_index", None)
    if index is None:
        index = timm_relative_position_index(w)
    bias = sd[f"{b}.attn.relative_position_bias_table"][index.view(-1)].view(w * w, w * w, -1)
    attn = attn + bias.permute(2, 0, 1).contiguous().unsqueeze(0)
    if mask is not None:
        nw = mask.shape[0]
        attn = attn.view(bn // nw, nw, heads, n, n) + mask.unsqueeze(1).unsqueeze(0)
        attn = attn.view(-1, heads, n, n)
    attn = attn.softmax(dim=-1)
    x = (attn @ v).transpose(1, 2).reshape(bn, n, -1)
    return _lin(sd, f"{b}.attn.proj", x)


def _stb(sd: dict, b: str, x: Tensor, hx: Tensor | None, res: int, heads: int, window_size: int, index: int):
    w, s = timm_window(res, window_size, index)
    bsz, _, c = x.shape
    shortcut = x
    x = _ln(sd, f"{b}.norm1", x)
    if hx is not None:
        x = _lin(sd, f"{b}.red", torch.cat((x, _ln(sd, f"{b}.norm1", hx)), -1))
    x = x.view(bsz, res, res, c)
    if s > 0:
        x = torch.roll(x, shifts=(-s, -s), dims=(1, 2))
    win = window_partition(x, w).view(-1, w * w, c)
    mask = sd.get(f"{b}.attn_mask") if s > 0 else None
    if s > 0 and mask is None:
        mask = timm_attn_mask(res, w, s)
    win = _window_attention(sd, b, win, heads, w, mask).view(-1, w, w, c)
    x = window_reverse(win, w, res, res)
    if s > 0:
        x = torch.roll(x, shifts=(s, s), dims=(1, 2))
    x = shortcut + x.view(bsz, res * res, c)
    return x + _lin(sd, f"{b}.mlp.fc2", F.gelu(_lin(sd, f"{b}.mlp.fc1", _ln(sd, f"{b}.norm2", x))))


def _cell(sd: dict, prefix: str, xt: Tensor, state, res: int, depth: int, heads: int, window_size: int):
    if state is None:
        hx = torch.zeros_like(xt)
        cx = torch.zeros_like(xt)
    else:
        hx, cx = state
    outputs = []
    for index in range(depth):
        b = f"{prefix}.STBs.{index}"
        if index == 0:
            outputs.append(_stb(sd, b, xt, hx, res, heads, window_size, index))
        elif index % 2 == 0:
            outputs.append(_stb(sd, b, outputs[-1], xt, res, heads, window_size, index))
        else:
            outputs.append(_stb(sd, b, outputs[-1], None, res, heads, window_size, index))
    o = outputs[-1]
    ft = torch.sigmoid(o)
    ct = ft * (cx + torch.tanh(o))
    ht = ft * torch.tanh(ct)
    return ht, (ht, ct)


def _patch_merging(sd: dict, name: str, x: Tensor, res: int) -> Tensor:
    b, _, c = x.shape
    x = x.view(b, res, res, c)
    x = torch.cat([x[:, 0::2, 0::2], x[:, 1::2, 0::2], x[:, 0::2, 1::2], x[:, 1::2, 1::2]], -1).view(b, -1, 4 * c)
    return _lin(sd, f"{name}.reduction", _ln(sd, f"{name}.norm", x))


def _patch_expanding(sd: dict, name: str, x: Tensor, res: int) -> Tensor:
    x = _lin(sd, f"{name}.expand", x)
    b, _, c = x.shape
    x = x.view(b, res, res, 2, 2, c // 4).permute(0, 1, 3, 2, 4, 5).reshape(b, res * 2, res * 2, c // 4)
    return _ln(sd, f"{name}.norm", x.view(b, -1, c // 4))


def _step(sd: dict, frame: Tensor, states_down, states_up, cfg: dict):
    p, ws, n = cfg["patch_size"], cfg["window_size"], len(cfg["depths_down"])
    cells = layout(cfg["img_size"], p, cfg["embed_dim"], cfg["depths_down"], cfg["depths_up"], cfg["num_heads"])
    x = F.conv2d(frame, sd["Downsample.patch_embed.proj.weight"], sd["Downsample.patch_embed.proj.bias"], stride=p)
    x = _ln(sd, "Downsample.patch_embed.norm", x.flatten(2).transpose(1, 2))
    new_down, new_up = [], []
    for i in range(n):
        prefix, res, _, depth, heads = cells[i]
        x, state = _cell(sd, prefix, x, states_down[i], res, depth, heads, ws)
        x = _patch_merging(sd, f"Downsample.downsample.{i}", x, res)
        new_down.append(state)
    for i in range(n):
        prefix, res, _, depth, heads = cells[n + i]
        x, state = _cell(sd, prefix, x, states_up[i], res, depth, heads, ws)
        x = _patch_expanding(sd, f"Upsample.upsample.{i}", x, res)
        new_up.append(state)
    grid = cfg["img_size"] // p
    b, _, c = x.shape
    x = x.view(b, grid, grid, c).permute(0, 3, 1, 2)
    out = F.conv_transpose2d(
        x, sd["Upsample.Unembed.Conv.weight"], sd["Upsample.Unembed.Conv.bias"], stride=2, padding=1, output_padding=1
    )
    return torch.sigmoid(out), new_down, new_up


def swinlstm_model_forward(sd: dict, frames_tensor: Tensor, cfg: dict) -> Tensor:
    """``SwinLSTM_D_Model.forward`` on B×total_T×H×W×C (channels last): the B×(total_T−1)×H×W×C outputs."""
    t = cfg["pre_seq_length"]
    total = frames_tensor.shape[1]
    frames = frames_tensor.permute(0, 1, 4, 2, 3).contiguous()
    inputs = frames[:, :t]
    n = len(cfg["depths_down"])
    states_down, states_up = [None] * n, [None] * n
    nxt = []
    last = inputs[:, -1]
    for i in range(t - 1):
        out, states_down, states_up = _step(sd, inputs[:, i], states_down, states_up, cfg)
        nxt.append(out)
    for _ in range(total - t):
        out, states_down, states_up = _step(sd, last, states_down, states_up, cfg)
        nxt.append(out)
        last = out
    return torch.stack(nxt, dim=0).permute(1, 0, 3, 4, 2).contiguous()


def swinlstm_predict(sd: dict, batch_x: Tensor, batch_y: Tensor, cfg: dict) -> Tensor:
    """``SwinLSTM_D.forward(batch_x, batch_y)`` (OpenSTL's inference): B×T×C×H×W in, B×aft×C×H×W out."""
    ims = torch.cat([batch_x, batch_y], dim=1).permute(0, 1, 3, 4, 2).contiguous()
    gen = swinlstm_model_forward(sd, ims, {**cfg, "pre_seq_length": batch_x.shape[1]})
    return gen[:, -batch_y.shape[1] :].permute(0, 1, 4, 2, 3).contiguous()
