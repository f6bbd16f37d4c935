"""An independent reference of OpenSTL's DMVFN, for testing stzoo's importer and model.

It re-states from reading OpenSTL's source (1) the tensor names and shapes of its checkpoints and (2) its
test-time forward pass, as plain ``torch.nn.functional`` calls on an OpenSTL-layout state dict, following
OpenSTL's code literally (the routing drawn with ``torch.bernoulli`` once per call, the blocks of batch
element 0's draw run for the whole batch, no block → the older frame). It shares no code with
``stzoo.convert`` or ``stzoo.models``.

Files read (OpenSTL tag ``OpenSTLv0.3.0``; DMVFN was removed from the later branches):

* ``openstl/models/dmvfn_model.py``: ``DMVFN_Model``: ``stu`` (a ``ModuleList`` of ``MVFB(in_planes,
  num_features[i])``), ``routing = Routing(2·C, routing_out_channels)``, ``l1 = Linear(routing_out_channels,
  num_block)``; ``forward(x, training=False)`` and ``get_routing_vector``
  (``beta · num_block · v / (Σv + 1e-6)``, clamped to [0, 1], then ``RoundSTE`` = ``torch.bernoulli``).
* ``openstl/modules/dmvfn_modules.py``: ``warp`` (a [−1, 1] grid plus the flow over ``(size − 1)/2``,
  ``grid_sample`` bilinear, border, ``align_corners=True``), ``conv`` (Conv2d with bias + PReLU, as a
  ``Sequential``: ``.0`` and ``.1``), ``Routing`` (``routing.0`` conv 3×3, ReLU, ``routing.2`` conv 3×3,
  adaptive average pool), ``MVFB`` (``conv0`` = two stride-2 ``conv``, ``convblock`` three ``conv``,
  ``conv_sq`` to f//4, ``conv1.0`` stride-2 to 8, ``convblock1.0``, ``lastconv`` ConvTranspose2d(f//4 + 8,
  5, 4, 2, 1); inputs resized by 1/scale (the flow's values too), x2 upsampled by 2·scale).
* ``openstl/methods/dmvfn.py``: ``_inference`` (``img0, img1 = x[:, -2], x[:, -1]``; each prediction
  ``merged[-1]`` shifted in; ``img0`` when no block ran).
* ``configs/mmnist/DMVFN.py``: ``in_planes = 4·C + 1 + 4``, 9 blocks, ``num_features = [160]*3 + [80]*3 +
  [44]*3``, ``scale = [4]*3 + [2]*3 + [1]*3``, ``routing_out_channels = 32``, ``beta = 0.5``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from helpers.openstl_reference import _rand


def _conv_shapes(prefix: str, c_in: int, c_out: int) -> dict[str, tuple]:
    return {f"{prefix}.0.weight": (c_out, c_in, 3, 3), f"{prefix}.0.bias": (c_out,), f"{prefix}.1.weight": (c_out,)}


def dmvfn_shapes(channels: int, num_features: list[int], routing_out: int = 32) -> dict[str, tuple]:
    """Every tensor of OpenSTL's ``DMVFN_Model`` and its shape."""
    in_planes = 4 * channels + 1 + 4
    shapes: dict[str, tuple] = {}
    for i, f in enumerate(num_features):
        p = f"stu.{i}"
        shapes.update(_conv_shapes(f"{p}.conv0.0", in_planes, f // 2))
        shapes.update(_conv_shapes(f"{p}.conv0.1", f // 2, f))
        for j in range(3):
            shapes.update(_conv_shapes(f"{p}.convblock.{j}", f, f))
        shapes.update(_conv_shapes(f"{p}.conv_sq", f, f // 4))
        shapes.update(_conv_shapes(f"{p}.conv1.0", in_planes, 8))
        shapes.update(_conv_shapes(f"{p}.convblock1.0", 8, 8))
        shapes[f"{p}.lastconv.weight"] = (f // 4 + 8, 5, 4, 4)  # ConvTranspose2d: in × out × k × k
        shapes[f"{p}.lastconv.bias"] = (5,)
    shapes["routing.routing.0.weight"] = (routing_out, 2 * channels, 3, 3)
    shapes["routing.routing.0.bias"] = (routing_out,)
    shapes["routing.routing.2.weight"] = (routing_out, routing_out, 3, 3)
    shapes["routing.routing.2.bias"] = (routing_out,)
    shapes["l1.weight"] = (len(num_features), routing_out)
    shapes["l1.bias"] = (len(num_features),)
    return shapes


def dmvfn_state_dict(channels: int, num_features: list[int], routing_out: int = 8, seed: int = 0) -> dict[str, Tensor]:
    """Random weights (std 1/√fan-in, biases 0.1, PReLU slopes 0.25 ± 0.1) in OpenSTL's ``DMVFN_Model`` layout."""
    g = torch.Generator().manual_seed(seed)
    sd = {}
    for name, s in dmvfn_shapes(channels, num_features, routing_out).items():
        if name.endswith(".1.weight") and len(s) == 1:  # PReLU slope
            sd[name] = 0.25 + _rand(g, *s, scale=0.1)
        elif "lastconv.weight" in name:
            sd[name] = _rand(g, *s, scale=(s[0] * 16) ** -0.5)
        else:
            sd[name] = _rand(g, *s, scale=0.1 if len(s) == 1 else None)
    return sd


def _warp(img: Tensor, flow: Tensor) -> Tensor:
    b, _, h, w = flow.shape
    hor = torch.linspace(-1.0, 1.0, w).view(1, 1, 1, w).expand(b, -1, h, -1)
    ver = torch.linspace(-1.0, 1.0, h).view(1, 1, h, 1).expand(b, -1, -1, w)
    grid = torch.cat([hor, ver], 1)
    flow = torch.cat([flow[:, 0:1] / ((img.shape[3] - 1.0) / 2.0), flow[:, 1:2] / ((img.shape[2] - 1.0) / 2.0)], 1)
    g = (grid + flow).permute(0, 2, 3, 1)
    return F.grid_sample(img, g, mode="bilinear", padding_mode="border", align_corners=True)


def _conv(sd: dict, p: str, x: Tensor, stride: int = 1) -> Tensor:
    return F.prelu(F.conv2d(x, sd[f"{p}.0.weight"], sd[f"{p}.0.bias"], stride, 1), sd[f"{p}.1.weight"])


def _mvfb(sd: dict, p: str, x: Tensor, flow: Tensor, scale: int) -> tuple[Tensor, Tensor]:
    x0, flow0 = x, flow
    if scale != 1:
        x = F.interpolate(x, scale_factor=1.0 / scale, mode="bilinear", align_corners=False)
        flow = F.interpolate(flow, scale_factor=1.0 / scale, mode="bilinear", align_corners=False) * 1.0 / scale
    x = torch.cat((x, flow), 1)
    x1 = _conv(sd, f"{p}.conv0.1", _conv(sd, f"{p}.conv0.0", x, 2), 2)
    body = x1
    for j in range(3):
        body = _conv(sd, f"{p}.convblock.{j}", body)
    x2 = _conv(sd, f"{p}.conv_sq", body + x1)
    x2 = F.interpolate(x2, scale_factor=scale * 2, mode="bilinear", align_corners=False)
    x3 = _conv(sd, f"{p}.conv1.0", torch.cat((x0, flow0), 1), 2)
    x4 = _conv(sd, f"{p}.convblock1.0", x3)
    tmp = F.conv_transpose2d(torch.cat((x2, x4), 1), sd[f"{p}.lastconv.weight"], sd[f"{p}.lastconv.bias"], 2, 1)
    return tmp[:, :4], tmp[:, 4:5]


def dmvfn_model_eval(sd: dict, x: Tensor, scales: list[int], beta: float = 0.5) -> list[Tensor]:
    """``DMVFN_Model.forward(x, training=False)`` for x = B×2×C×H×W: the merged frame after each block run."""
    b, t, c, h, w = x.shape
    n = len(scales)
    x = x.view(b, t * c, h, w)
    v = F.conv2d(F.relu(F.conv2d(x[:, : 2 * c], sd["routing.routing.0.weight"], sd["routing.routing.0.bias"], 1, 1)),
                 sd["routing.routing.2.weight"], sd["routing.routing.2.bias"], 1, 1)  # fmt: skip
    v = F.adaptive_avg_pool2d(v, (1, 1)).reshape(b, -1)
    v = torch.sigmoid(F.linear(v, sd["l1.weight"], sd["l1.bias"]))
    v = torch.clamp(beta * n * v / (v.sum(1, True) + 1e-6), 0, 1)
    ref = torch.bernoulli(v)
    img0, img1 = x[:, :c], x[:, c : 2 * c]
    warped0, warped1 = img0, img1
    flow = torch.zeros(b, 4, h, w)
    mask = torch.zeros(b, 1, h, w)
    merged = []
    for i in range(n):
        if ref[0, i]:
            fd, md = _mvfb(sd, f"stu.{i}", torch.cat((img0, img1, warped0, warped1, mask), 1), flow, scales[i])
            flow, mask = flow + fd, mask + md
            warped0, warped1 = _warp(img0, flow[:, :2]), _warp(img1, flow[:, 2:4])
            m = torch.sigmoid(mask)
            merged.append(torch.clamp(warped0 * m + warped1 * (1 - m), 0, 1))
    return merged


def dmvfn_inference(sd: dict, x: Tensor, length: int, scales: list[int], beta: float = 0.5) -> Tensor:
    """OpenSTL's ``DMVFN._inference`` from the last two frames of ``x``: B×length×C×H×W."""
    img0, img1 = x[:, -2:-1], x[:, -1:]
    preds = []
    for _ in range(length):
        merged = dmvfn_model_eval(sd, torch.cat([img0, img1], 1), scales, beta)
        pred = img0 if len(merged) == 0 else merged[-1].unsqueeze(1)
        preds.append(pred)
        img0, img1 = img1, pred
    return torch.cat(preds, 1)
