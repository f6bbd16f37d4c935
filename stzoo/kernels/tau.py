"""FusedTAU: the inference twin of :class:`stzoo.models.tau.TAU`, built from its weights.

What changes against the reference (the maths is the same; see ``docs/kernels.md``):

* **Translator in NHWC rows.** The translator's activations are kept as B×H×W×C tensors, so every
  1×1 conv is one matrix product over ``B·H·W`` rows (:func:`pointwise`: a oneDNN 1×1 convolution
  on the channels-last view on CPU, ``F.linear`` elsewhere), and the depthwise convs see a
  channels-last view of the same memory (no copies between the two).
* **Folding.** Each eval-mode BatchNorm is an affine map per channel: it is folded into the 1×1 conv
  that follows it (``proj_1``, ``fc1``). Each layer scale is folded into the conv before it
  (``proj_2``, ``fc2``). The attention branch's shortcut ``+ BN(x)`` (inside ``TemporalAttention``)
  becomes a per-channel affine of ``x``, added in place to ``proj_2``'s output (``addcmul_``)
  together with the block residual. A ``reduction`` conv that narrows the width is folded into
  ``fc2``.
* **SA × DA × h in one pass.** The dynamical attention DA is one scalar per (sample, channel); it
  is folded into the statical attention's last 1×1 conv as a per-sample weight (one ``baddbmm``),
  and the product with ``h`` is a single in-place multiply.
* **The dilated depthwise conv** (7×7, dilation 3) runs as a non-dilated 7×7 depthwise conv over
  the 3×3 interleaved phase grids of the input (space-to-batch), which oneDNN and cuDNN run with
  their fast depthwise kernels; it is exact (zero padding maps to zero padding).
* **MLP**: the 3×3 depthwise conv and its GELU are one oneDNN convolution with a GELU post-op on
  CPU (:func:`depthwise3x3_gelu`).
* **Encoder / decoder** run in channels-last memory with SiLU applied in place; a 1-channel first
  conv runs as im2col + one GEMM on CPU, which writes channels-last directly.

The module is inference-only (see :class:`~stzoo.kernels.base.InferenceOnly`).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import Tensor, nn

from stzoo.kernels.base import InferenceOnly, frozen, register_fused
from stzoo.kernels.elementwise import tracing
from stzoo.models.tau import TAU, ConvNormAct, TAUBlock

__all__ = ["FusedTAU", "FusedTAUBlock", "dilated_depthwise", "pointwise", "depthwise3x3_gelu"]


def _bn_affine(bn: nn.BatchNorm2d) -> tuple[Tensor, Tensor]:
    """Eval-mode BatchNorm as ``y = a·x + b`` per channel."""
    a = bn.weight / torch.sqrt(bn.running_var + bn.eps)
    return a, bn.bias - bn.running_mean * a


def dilated_depthwise(x: Tensor, weight: Tensor, bias: Tensor | None, dilation: int) -> Tensor:
    """Depthwise k×k conv with ``dilation`` and "same" padding ``dilation·(k−1)/2``, exactly.

    Computed as a non-dilated depthwise conv on the ``dilation²`` phase sub-grids of ``x``
    (space-to-batch): output pixel (d·i'+φ, d·j'+ψ) only reads input pixels of phase (φ, ψ).
    The input is zero-padded up to a multiple of ``dilation``; those zeros are exactly the zeros
    of the original padding, so the result equals ``F.conv2d(..., dilation=dilation)``.

    Args:
        x: B×C×H×W (any memory format; channels-last is fastest).
        weight: C×1×k×k depthwise kernel, k odd.
        bias: C or None.
        dilation: the dilation d ≥ 1.

    Returns:
        B×C×H×W in channels-last memory format.
    """
    b, c, h, w = x.shape
    d = dilation
    r = (weight.shape[-1] - 1) // 2
    if d == 1:
        return F.conv2d(x, weight, bias, padding=r, groups=c)
    hp, wp = -(-h // d) * d, -(-w // d) * d
    rows = x.permute(0, 2, 3, 1)  # B×H×W×C (a view when x is channels-last)
    if hp != h or wp != w:
        rows = F.pad(rows, (0, 0, 0, wp - w, 0, hp - h))
    hs, ws = hp // d, wp // d
    phases = rows.reshape(b, hs, d, ws, d, c).permute(0, 2, 4, 1, 3, 5).reshape(b * d * d, hs, ws, c)
    y = F.conv2d(phases.permute(0, 3, 1, 2), weight, bias, padding=r, groups=c)  # (B·d²)×C×hs×ws
    y = y.permute(0, 2, 3, 1).reshape(b, d, d, hs, ws, c).permute(0, 3, 1, 4, 2, 5).reshape(b, hp, wp, c)
    return y[:, :h, :w].permute(0, 3, 1, 2)


def pointwise(rows: Tensor, weight: Tensor, bias: Tensor | None) -> Tensor:
    """A 1×1 conv on B×H×W×C rows with an (out, in) ``weight``; returns B×H×W×out rows.

    On CPU it runs as a oneDNN 1×1 convolution on the channels-last view of the rows, which is
    faster there than a BLAS GEMM for these shapes (measured: ``docs/kernels.md``); elsewhere as
    one GEMM (``F.linear``).
    """
    if rows.device.type == "cpu" and torch.backends.mkldnn.is_available() and rows.dtype == torch.float32:
        y = F.conv2d(rows.permute(0, 3, 1, 2), weight[:, :, None, None], bias)
        return y.permute(0, 2, 3, 1)
    return F.linear(rows, weight, bias)


_FUSED_DW_GELU: list[bool] = [True]


def depthwise3x3_gelu(x: Tensor, weight: Tensor, bias: Tensor) -> Tensor:
    """GELU(depthwise 3×3 conv(x)) for channels-last x.

    On CPU this tries oneDNN's convolution with a GELU post-op (the ATen op
    ``mkldnn::_convolution_pointwise``; one pass instead of two) and falls back to conv + GELU where
    that op is missing or refuses the input.
    """
    c = x.shape[1]
    if _FUSED_DW_GELU[0] and x.device.type == "cpu" and x.dtype == torch.float32 and not tracing():
        try:
            return torch.ops.mkldnn._convolution_pointwise(
                x, weight, bias, [1, 1], [1, 1], [1, 1], c, "gelu", [], "none"
            )
        except (AttributeError, RuntimeError):
            _FUSED_DW_GELU[0] = False
    return F.gelu(F.conv2d(x, weight, bias, padding=1, groups=c))


class FusedTAUBlock(nn.Module):
    """One TAU block with BN / layer scales / DA folded in; input and output are B×H×W×C rows."""

    def __init__(self, ref: TAUBlock):
        super().__init__()
        attn, tam, mlp = ref.attn, ref.attn.tau, ref.mlp
        with torch.no_grad():
            a1, b1 = _bn_affine(ref.norm1)
            a2, b2 = _bn_affine(ref.norm2)
            s1, s2 = ref.layer_scale_1, ref.layer_scale_2
            w = attn.proj_1.weight.flatten(1)
            self.w_in = frozen(w * a1[None, :])  # proj_1 ∘ BN1
            self.b_in = frozen(attn.proj_1.bias + w @ b1)
            self.dw0_w, self.dw0_b = frozen(tam.conv0.weight), frozen(tam.conv0.bias)
            self.dws_w, self.dws_b = frozen(tam.conv_spatial.weight), frozen(tam.conv_spatial.bias)
            self.dilation = int(tam.conv_spatial.dilation[0])
            self.sa_w = frozen(tam.conv1.weight.flatten(1).t())  # (in, out) for the per-sample baddbmm
            self.sa_b = frozen(tam.conv1.bias)
            self.fc_1 = frozen(tam.fc[0].weight)
            self.fc_2 = frozen(tam.fc[2].weight)
            # x + s1·(proj_2(v) + BN1(x)) = (s1·proj_2)(v) + (1 + s1·a1)·x + s1·b1
            self.w_out = frozen(attn.proj_2.weight.flatten(1) * s1[:, None])
            self.b_out = frozen(attn.proj_2.bias * s1 + s1 * b1)
            self.res_scale = frozen(1 + s1 * a1)
            # MLP: fc1 ∘ BN2, layer scale 2 into fc2
            w = mlp.fc1.weight.flatten(1)
            self.w_fc1 = frozen(w * a2[None, :])
            self.b_fc1 = frozen(mlp.fc1.bias + w @ b2)
            self.dwm_w, self.dwm_b = frozen(mlp.dwconv.weight), frozen(mlp.dwconv.bias)
            w_fc2 = mlp.fc2.weight.flatten(1) * s2[:, None]
            b_fc2 = mlp.fc2.bias * s2
            self.fold_reduction = ref.reduction is not None and ref.reduction.out_channels < ref.reduction.in_channels
            self.has_reduction = ref.reduction is not None
            if self.fold_reduction:
                # R(x + fc2(v)) = (R x + r) + (R·fc2)(v) + R·b_fc2
                wr = ref.reduction.weight.flatten(1)
                self.w_red, self.b_red = frozen(wr), frozen(ref.reduction.bias + wr @ b_fc2)
                self.w_fc2, self.b_fc2 = frozen(wr @ w_fc2), None
            else:
                self.w_fc2, self.b_fc2 = frozen(w_fc2), frozen(b_fc2)
                if self.has_reduction:
                    self.w_red = frozen(ref.reduction.weight.flatten(1))
                    self.b_red = frozen(ref.reduction.bias)

    def attention(self, x: Tensor) -> Tensor:
        """x + s1·TA(BN1(x)) for rows x: B×H×W×C."""
        b, h, w, c = x.shape
        g = F.gelu(pointwise(x, self.w_in, self.b_in))  # B×H×W×C
        gc = g.permute(0, 3, 1, 2)  # channels-last view
        s = F.conv2d(gc, self.dw0_w, self.dw0_b, padding=(self.dw0_w.shape[-1] - 1) // 2, groups=c)
        s = dilated_depthwise(s, self.dws_w, self.dws_b, self.dilation)
        da = torch.sigmoid(F.linear(F.relu(F.linear(g.mean(dim=(1, 2)), self.fc_1)), self.fc_2))  # B×C
        rows = s.permute(0, 2, 3, 1).reshape(b, h * w, c)
        t = torch.baddbmm((self.sa_b * da)[:, None, :], rows, self.sa_w[None] * da[:, None, :])
        t = t.mul_(g.reshape(b, h * w, c)).view(b, h, w, c)  # SA·DA·h
        return pointwise(t, self.w_out, self.b_out).addcmul_(x, self.res_scale)

    def mlp(self, x: Tensor) -> Tensor:
        """x + s2·MLP(BN2(x)) (then the reduction conv, if any), rows in and out."""
        u = pointwise(x, self.w_fc1, self.b_fc1).permute(0, 3, 1, 2)
        v = depthwise3x3_gelu(u, self.dwm_w, self.dwm_b).permute(0, 2, 3, 1)
        if self.fold_reduction:
            return pointwise(v, self.w_fc2, None).add_(pointwise(x, self.w_red, self.b_red))
        y = pointwise(v, self.w_fc2, self.b_fc2).add_(x)
        return pointwise(y, self.w_red, self.b_red) if self.has_reduction else y

    def forward(self, x: Tensor) -> Tensor:
        return self.mlp(self.attention(x))


class _FusedConvNormAct(nn.Module):
    """conv (→ PixelShuffle) → GroupNorm → SiLU, in channels-last memory, SiLU in place."""

    def __init__(self, ref: ConvNormAct):
        super().__init__()
        self.conv, self.norm = ref.conv, ref.norm
        self.memory_format = torch.channels_last

    def _conv(self, x: Tensor) -> Tensor:
        conv = self.conv
        if (
            isinstance(conv, nn.Conv2d)
            and conv.in_channels == 1
            and conv.stride == (1, 1)
            and x.device.type == "cpu"
            and self.memory_format == torch.channels_last
        ):
            # A 1-channel input gives oneDNN a channels-first output that then needs a layout copy;
            # im2col (9 taps) + one GEMM writes the channels-last result directly.
            n, _, h, w = x.shape
            k = conv.kernel_size
            cols = F.unfold(x, k, padding=conv.padding)  # N×(kh·kw)×(H·W)
            rows = torch.matmul(cols.transpose(1, 2), conv.weight.flatten(1).t())  # N×(H·W)×C
            if conv.bias is not None:
                rows = rows.add_(conv.bias)
            return rows.view(n, h, w, -1).permute(0, 3, 1, 2)
        return conv(x.contiguous(memory_format=self.memory_format))

    def forward(self, x: Tensor) -> Tensor:
        y = self._conv(x)
        y = F.group_norm(
            y.contiguous(memory_format=self.memory_format),
            self.norm.num_groups,
            self.norm.weight,
            self.norm.bias,
            self.norm.eps,
        )
        return F.silu(y, inplace=True)


@register_fused
class FusedTAU(InferenceOnly):
    """Inference twin of :class:`~stzoo.models.tau.TAU` with the same call interface.

    Build it with :meth:`from_reference`; ``forward(x)`` maps B×T×C×H×W to the next T frames and
    matches the reference to float rounding (tested at max |Δ| ≤ 1e-4 in fp32).
    """

    arch = "tau"
    recurrent = False

    def __init__(self, ref: TAU):
        super().__init__()
        for attr in (
            "config",
            "frames",
            "channels",
            "frames_in",
            "frames_out",
            "height",
            "width",
            "hid_S",
            "downsample",
        ):
            setattr(self, attr, getattr(ref, attr))
        self.enc = nn.ModuleList(_FusedConvNormAct(layer) for layer in ref.encoder.layers)
        self.blocks = nn.ModuleList(FusedTAUBlock(block) for block in ref.translator.blocks)
        self.dec = nn.ModuleList(_FusedConvNormAct(layer) for layer in ref.decoder.layers)
        self.readout = ref.decoder.readout
        self._keep_reference(ref)
        self.train(ref.training)

    @classmethod
    def from_reference(cls, ref: TAU) -> FusedTAU:
        """Fold ``ref``'s current weights (and BatchNorm running statistics) into a fused module.

        The fused module shares the encoder/decoder conv and GroupNorm parameters with ``ref``; the
        translator's folded weights are new tensors, so later changes to ``ref`` are not seen.
        """
        return cls(ref)

    check_input = TAU.check_input

    def forward(self, x: Tensor) -> Tensor:
        self._check_inference()
        self.check_input(x)
        b, t, c, h, w = x.shape
        z = x.reshape(b * t, c, h, w).contiguous(memory_format=torch.channels_last)
        z = skip = self.enc[0](z)
        for layer in self.enc[1:]:
            z = layer(z)
        # (B·T)×C'×H'×W' channels-last → B×H'×W'×(T·C') rows for the translator, and back
        rows = rearrange(z, "(b t) c h w -> b h w (t c)", b=b)
        for block in self.blocks:
            rows = block(rows)
        z = rearrange(rows, "b h w (t c) -> (b t) h w c", t=t).permute(0, 3, 1, 2)  # channels-last NCHW view
        for layer in self.dec[:-1]:
            z = layer(z)
        z = self.dec[-1](z + skip)
        y = self.readout(z)
        return y.reshape(b, t, c, h, w)
