"""An independent reference of OpenSTL's PhyDNet, for testing stzoo's importer and model.

Like ``tests/openstl_reference.py`` (whose random-weight helpers it reuses), this re-states from reading
OpenSTL's source (1) the tensor names and shapes of its checkpoints, (2) its inference forward pass and
(3) its moment loss, as plain ``torch.nn.functional`` calls on an OpenSTL-layout state dict. It shares
no code with ``stzoo.convert`` or ``stzoo.models``.

Files read (OpenSTL master):

* ``openstl/models/phydnet_model.py``: ``PhyDNet_Model``: ``phycell = PhyCell(input_dim=64,
  F_hidden_dims=[49], n_layers=1, kernel_size=(7, 7))``, ``convcell = PhyD_ConvLSTM(input_dim=64,
  hidden_dims=[128, 128, 64], n_layers=3, kernel_size=(3, 3))``, ``encoder = PhyD_EncoderRNN(phycell,
  convcell, in_channel=C, patch_size=p)`` (p = patch_size if it is 2 or 4, else 4), ``k2m = K2M([7, 7])``.
  The two cells are attributes of the model *and* of the encoder, so a state dict holds each of their
  tensors twice (``phycell.*`` and ``encoder.phycell.*``, ...). ``inference``: ``encoder(x[:, ei],
  ei == 0)`` for ei in 0..pre−2, then pre ``aft`` steps from ``x[:, −1]`` feeding back each output;
  moment loss ``Σ_b MSE(k2m(F.conv1.weight[:, b].double()).float(), constraints)``.
* ``openstl/modules/phydnet_modules.py``: ``PhyCell_Cell`` (``F`` = conv1 k×k → GroupNorm(7) ``bn1`` →
  conv2 1×1; ``convgate`` 3×3 on [x; h]; ``h̃ = h + F(h)``, ``h' = h̃ + σ(convgate)·(x − h̃)``),
  ``PhyD_ConvLSTM_Cell`` (one conv on [x; h] with bias, split i, f, o, g), ``dcgan_conv`` (conv 3×3
  padding 1 → GroupNorm(16) → LeakyReLU(0.2)), ``dcgan_upconv`` (ConvTranspose 3×3 padding 1,
  output_padding 1 at stride 2 → GroupNorm(16) → LeakyReLU(0.2)), ``encoder_E`` (c1 s2 nc→32, c2 32→32,
  c3 s p/2 32→64), ``encoder_specific`` (c1, c2 64→64), ``decoder_specific`` (upc1, upc2 64→64),
  ``decoder_D`` (upc1 s2 64→32, upc2 32→32, upc3 ConvTranspose s p/2 32→nc), ``PhyD_EncoderRNN.forward``
  (E, then Ep / Er, the cells, Dp / Dr, ``sigmoid(D(Dp + Dr))``), ``K2M`` / ``_MK`` (``M[i] =
  (arange(l) − (l−1)//2)**i / i!``; buffers ``_M0``, ``_invM0``, ``_M1``, ``_invM1``; ``_apply_axis_left_dot``).
* ``openstl/methods/phydnet.py`` (``_get_constraints``: ``constraints[7i + j, i, j] = 1``; ``forward``
  → ``inference``) and ``configs/mmnist/PhyDNet.py``.
"""

from __future__ import annotations

from math import factorial

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from helpers.openstl_reference import _rand


def _cells(*, dim: int, f_hidden: int, k: int, conv_hidden: list[int], conv_k: int) -> dict[str, tuple]:
    shapes = {
        "phycell.cell_list.0.F.conv1.weight": (f_hidden, dim, k, k),
        "phycell.cell_list.0.F.conv1.bias": (f_hidden,),
        "phycell.cell_list.0.F.bn1.weight": (f_hidden,),
        "phycell.cell_list.0.F.bn1.bias": (f_hidden,),
        "phycell.cell_list.0.F.conv2.weight": (dim, f_hidden, 1, 1),
        "phycell.cell_list.0.F.conv2.bias": (dim,),
        "phycell.cell_list.0.convgate.weight": (dim, 2 * dim, 3, 3),
        "phycell.cell_list.0.convgate.bias": (dim,),
    }
    for j, h in enumerate(conv_hidden):
        c_in = dim if j == 0 else conv_hidden[j - 1]
        shapes[f"convcell.cell_list.{j}.conv.weight"] = (4 * h, c_in + h, conv_k, conv_k)
        shapes[f"convcell.cell_list.{j}.conv.bias"] = (4 * h,)
    return shapes


def phydnet_shapes(
    *, channels: int = 1, nf: int = 32, conv_hidden: list[int] | None = None, conv_k: int = 3, k: int = 7
) -> dict[str, tuple]:
    """Every tensor of OpenSTL's ``PhyDNet_Model`` state dict (buffers included) and its shape, in its order.
    OpenSTL fixes nf = 32 and conv_hidden = [128, 128, 64]; other sizes are for small tests."""
    dim = 2 * nf
    conv_hidden = conv_hidden or [128, 128, dim]
    cells = _cells(dim=dim, f_hidden=k * k, k=k, conv_hidden=conv_hidden, conv_k=conv_k)
    shapes: dict[str, tuple] = dict(cells)

    def gn_conv(name: str, c_in: int, c_out: int, transposed: bool = False) -> None:
        shapes[f"{name}.main.0.weight"] = (c_in, c_out, 3, 3) if transposed else (c_out, c_in, 3, 3)
        shapes[f"{name}.main.0.bias"] = (c_out,)
        shapes[f"{name}.main.1.weight"] = (c_out,)
        shapes[f"{name}.main.1.bias"] = (c_out,)

    gn_conv("encoder.encoder_E.c1", channels, nf)
    gn_conv("encoder.encoder_E.c2", nf, nf)
    gn_conv("encoder.encoder_E.c3", nf, dim)
    for part in ("encoder_Ep", "encoder_Er"):
        gn_conv(f"encoder.{part}.c1", dim, dim)
        gn_conv(f"encoder.{part}.c2", dim, dim)
    for part in ("decoder_Dp", "decoder_Dr"):
        gn_conv(f"encoder.{part}.upc1", dim, dim, True)
        gn_conv(f"encoder.{part}.upc2", dim, dim, True)
    gn_conv("encoder.decoder_D.upc1", dim, nf, True)
    gn_conv("encoder.decoder_D.upc2", nf, nf, True)
    shapes["encoder.decoder_D.upc3.weight"] = (nf, channels, 3, 3)
    shapes["encoder.decoder_D.upc3.bias"] = (channels,)
    shapes.update({f"encoder.{name}": s for name, s in cells.items()})
    for j in range(2):
        shapes[f"k2m._M{j}"] = (k, k)
        shapes[f"k2m._invM{j}"] = (k, k)
    return shapes


def moment_matrices(k: int) -> tuple[Tensor, Tensor]:
    """OpenSTL's ``_MK`` buffers for one axis: M (float64) and its inverse."""
    m = np.zeros((k, k))
    for i in range(k):
        m[i] = ((np.arange(k) - (k - 1) // 2) ** i) / factorial(i)
    return torch.from_numpy(m), torch.from_numpy(np.linalg.inv(m))


def phydnet_state_dict(
    *, channels: int = 1, nf: int = 32, conv_hidden: list[int] | None = None, conv_k: int = 3, seed: int = 0
) -> dict[str, Tensor]:
    """Random weights in the layout of OpenSTL's ``PhyDNet_Model``: convs with std 1/√fan-in, biases std 0.1,
    GroupNorm weights 1 + N(0, 0.1²); the cells' tensors shared by both of their names (as in a real
    checkpoint), the moment-matrix buffers as OpenSTL computes them."""
    g = torch.Generator().manual_seed(seed)
    shapes = phydnet_shapes(channels=channels, nf=nf, conv_hidden=conv_hidden, conv_k=conv_k)
    sd: dict[str, Tensor] = {}
    for key, shape in shapes.items():
        if key.startswith(("encoder.phycell.", "encoder.convcell.")):
            sd[key] = sd[key[len("encoder.") :]]  # the same tensor object
        elif key.startswith("k2m."):
            m, inv = moment_matrices(shape[0])
            sd[key] = inv if "inv" in key else m
        elif key.endswith(".bias"):
            sd[key] = _rand(g, *shape, scale=0.1)
        elif len(shape) == 1:  # GroupNorm weights
            sd[key] = 1.0 + _rand(g, *shape, scale=0.1)
        elif ".main.0." in key and ("decoder" in key) or key.endswith("upc3.weight"):  # transposed: in × out × k × k
            sd[key] = torch.randn(*shape, generator=g) / (shape[0] * shape[2] * shape[3]) ** 0.5
        else:
            sd[key] = _rand(g, *shape)
    return sd


def _gn_conv(sd: dict, name: str, x: Tensor, stride: int = 1, transposed: bool = False) -> Tensor:
    w, b = sd[f"{name}.main.0.weight"], sd[f"{name}.main.0.bias"]
    if transposed:
        y = F.conv_transpose2d(x, w, b, stride=stride, padding=1, output_padding=1 if stride == 2 else 0)
    else:
        y = F.conv2d(x, w, b, stride=stride, padding=1)
    return F.leaky_relu(F.group_norm(y, 16, sd[f"{name}.main.1.weight"], sd[f"{name}.main.1.bias"]), 0.2)


def _encoder_rnn(sd: dict, x: Tensor, h_phys: list[Tensor], hs: list[Tensor], cs: list[Tensor], p: int) -> Tensor:
    """``PhyD_EncoderRNN.forward`` (cells under ``encoder.``), updating the state lists in place."""
    e = "encoder."
    z = _gn_conv(sd, e + "encoder_E.c1", x, 2)
    z = _gn_conv(sd, e + "encoder_E.c2", z)
    z = _gn_conv(sd, e + "encoder_E.c3", z, p // 2)
    zp = _gn_conv(sd, e + "encoder_Ep.c2", _gn_conv(sd, e + "encoder_Ep.c1", z))
    zr = _gn_conv(sd, e + "encoder_Er.c2", _gn_conv(sd, e + "encoder_Er.c1", z))
    # PhyCell (one layer)
    c = e + "phycell.cell_list.0."
    h = h_phys[0]
    gate = torch.sigmoid(F.conv2d(torch.cat([zp, h], 1), sd[c + "convgate.weight"], sd[c + "convgate.bias"], padding=1))
    w1 = sd[c + "F.conv1.weight"]
    f = F.conv2d(h, w1, sd[c + "F.conv1.bias"], padding=w1.shape[-1] // 2)
    f = F.group_norm(f, 7, sd[c + "F.bn1.weight"], sd[c + "F.bn1.bias"])
    f = F.conv2d(f, sd[c + "F.conv2.weight"], sd[c + "F.conv2.bias"])
    h_tilde = h + f
    h_phys[0] = h_tilde + gate * (zp - h_tilde)
    # ConvLSTM
    inp = zr
    for j in range(len(hs)):
        w = sd[f"{e}convcell.cell_list.{j}.conv.weight"]
        cc = F.conv2d(
            torch.cat([inp, hs[j]], 1), w, sd[f"{e}convcell.cell_list.{j}.conv.bias"], padding=w.shape[-1] // 2
        )
        i_, f_, o_, g_ = torch.split(cc, hs[j].shape[1], dim=1)
        cs[j] = torch.sigmoid(f_) * cs[j] + torch.sigmoid(i_) * torch.tanh(g_)
        hs[j] = torch.sigmoid(o_) * torch.tanh(cs[j])
        inp = hs[j]
    dp = _gn_conv(
        sd, e + "decoder_Dp.upc2", _gn_conv(sd, e + "decoder_Dp.upc1", h_phys[0], transposed=True), transposed=True
    )
    dr = _gn_conv(
        sd, e + "decoder_Dr.upc2", _gn_conv(sd, e + "decoder_Dr.upc1", hs[-1], transposed=True), transposed=True
    )
    d = _gn_conv(sd, e + "decoder_D.upc1", dp + dr, 2, transposed=True)
    d = _gn_conv(sd, e + "decoder_D.upc2", d, transposed=True)
    s = p // 2
    d = F.conv_transpose2d(
        d,
        sd[e + "decoder_D.upc3.weight"],
        sd[e + "decoder_D.upc3.bias"],
        stride=s,
        padding=1,
        output_padding=1 if s == 2 else 0,
    )
    return torch.sigmoid(d)


def _init(sd: dict, b: int, h: int, w: int) -> tuple[list[Tensor], list[Tensor], list[Tensor]]:
    dim = sd["encoder.phycell.cell_list.0.convgate.weight"].shape[0]
    n = len({k.split(".")[3] for k in sd if k.startswith("encoder.convcell.cell_list.")})
    hidden = [sd[f"encoder.convcell.cell_list.{j}.conv.weight"].shape[0] // 4 for j in range(n)]
    return (
        [torch.zeros(b, dim, h, w)],
        [torch.zeros(b, c, h, w) for c in hidden],
        [torch.zeros(b, c, h, w) for c in hidden],
    )


@torch.no_grad()
def phydnet_predict(sd: dict[str, Tensor], batch_x: Tensor, aft: int, patch_size: int = 4) -> Tensor:
    """OpenSTL's ``PhyDNet.forward`` → ``PhyDNet_Model.inference``: B×T×C×H×W in, ``aft`` frames out."""
    p = patch_size if patch_size in (2, 4) else 4
    b, pre, _, hh, ww = batch_x.shape
    state = _init(sd, b, hh // p, ww // p)  # initHidden at ei == 0
    for ei in range(pre - 1):
        _encoder_rnn(sd, batch_x[:, ei], *state, p)
    decoder_input = batch_x[:, -1]
    predictions = []
    for _ in range(aft):
        decoder_input = _encoder_rnn(sd, decoder_input, *state, p)
        predictions.append(decoder_input)
    return torch.stack(predictions, dim=1)


def phydnet_train_predictions(
    sd: dict[str, Tensor], batch_x: Tensor, batch_y: Tensor, teacher_forcing: bool, patch_size: int = 4
) -> Tensor:
    """The outputs ``PhyDNet_Model.forward`` compares with frames 1 … T_in+T_out−1 (with grad), for a given
    outcome of its one teacher-forcing draw."""
    p = patch_size
    b, pre, _, hh, ww = batch_x.shape
    state = _init(sd, b, hh // p, ww // p)
    outs = []
    for ei in range(pre - 1):
        outs.append(_encoder_rnn(sd, batch_x[:, ei], *state, p))
    decoder_input = batch_x[:, -1]
    for di in range(batch_y.shape[1]):
        out = _encoder_rnn(sd, decoder_input, *state, p)
        outs.append(out)
        decoder_input = batch_y[:, di] if teacher_forcing else out
    return torch.stack(outs, dim=1)


def phydnet_moment_loss(sd: dict[str, Tensor]) -> Tensor:
    """OpenSTL's moment term: Σ over input channels b of MSE(K2M(F.conv1.weight[:, b]), constraints)."""
    w = sd["encoder.phycell.cell_list.0.F.conv1.weight"]
    k = w.shape[-1]
    m0, m1 = sd["k2m._M0"], sd["k2m._M1"]
    constraints = torch.zeros(k * k, k, k)
    ind = 0
    for i in range(k):
        for j in range(k):
            constraints[ind, i, j] = 1
            ind += 1
    loss = torch.zeros(())
    for b in range(w.shape[1]):
        filt = w[:, b].double()  # 49×7×7
        # _apply_axis_left_dot with [M0, M1]: contract the last axis with M1, then the middle one with M0
        m = torch.tensordot(filt, m1, dims=([2], [1]))  # n, u, j
        m = torch.tensordot(m, m0, dims=([1], [1])).permute(0, 2, 1)  # n, i, j
        loss = loss + F.mse_loss(m.float(), constraints)
    return loss
