"""FusedSAConvLSTM: the inference twin of :class:`stzoo.models.sa_convlstm.SAConvLSTM`.

Per cell and step:

* the ConvLSTM part is :class:`~stzoo.kernels.convlstm.FusedConvLSTMCell` (one gate convolution,
  one fused cell update);
* the self-attention memory (SAM) folds ``W_z`` into the value projections: every row of a softmax
  sums to one, so ``W_zh·(W_vh·H + b_vh)·Pᵀ = (W_zh·W_vh·H + W_zh·b_vh)·Pᵀ`` (and the same for
  the memory half), and ``Z = W_z [Z_h ; Z_m] + b_z`` needs no GEMM of its own. ``Q, K_h, V_h'``
  come from ``H`` with **one** GEMM and ``K_m, V_m'`` from ``M`` with one more;
* both attentions (H over itself, H over the memory) are computed together, in one of two ways:

  - **one** ``F.scaled_dot_product_attention`` call (always on CUDA; on CPU for all but one small
    grid): the two problems are stacked along the batch axis (query ``[Q; Q]``, keys
    ``[K_h; K_m]``, values ``[V_h'; V_m']``) with ``scale=1.0``, because the paper's scores are
    unscaled, and ``Z = Z_h' + Z_m' + b_z``. Flash-style kernels need the query/key head size to
    equal the value head size, so Q and K are zero-padded up to V's width (or V up to Q's): extra
    zero coordinates add nothing to a dot product, so the scores are unchanged. The N×N score
    matrix is never stored whole (CPU flash attention works in blocks; on CUDA, flash /
    memory-efficient / cuDNN);
  - for one small grid on CPU (``B·N ≤ explicit_max_positions``, e.g. 16×16), the B×N×2N scores
    ``Qᵀ[K_h K_m]`` in one GEMM, a softmax over each half, and ``Z = [V_h' V_m']·Pᵀ + b_z`` in one
    more: the sum of both attentions falls out of a single GEMM with a 2N-long inner dimension;

* the depthwise 3×3 gate convolution's bias moves into the pointwise one's;
* the memory update ``M' = (1 − σ(i))·M + σ(i)·tanh(g)``, ``Ĥ = σ(o)·M'`` is one fused elementwise
  kernel (:func:`stzoo.kernels.elementwise.sam_memory_update`).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from stzoo.kernels.base import frozen, register_fused
from stzoo.kernels.convlstm import FusedConvLSTMCell, _FusedRecurrent, from_reference_recurrent
from stzoo.kernels.elementwise import sam_memory_update
from stzoo.models.recurrent import RecurrentNet
from stzoo.models.sa_convlstm import SAConvLSTMCell, SelfAttentionMemory

__all__ = ["FusedSAConvLSTM", "FusedSAConvLSTMCell", "FusedSelfAttentionMemory"]


def _w(conv: nn.Conv2d) -> Tensor:
    return conv.weight.flatten(1)


class FusedSelfAttentionMemory(nn.Module):
    """SAM with merged projections, ``W_z`` folded into the value projections, and both attentions
    computed together."""

    #: On CPU, when batch × positions (B·N) is at most this, the scores are stored whole (B×N×2N:
    #: 0.5 MiB for one 16×16 grid) and both attentions are three plain GEMMs and one softmax. Above
    #: it, and always on CUDA, both attentions go through one SDPA call, which never holds the whole
    #: N×N score matrix: for one small grid PyTorch's blocked CPU flash kernel (with Q/K zero-padded
    #: to V's width) costs more than the scores it avoids storing; for larger work it is the faster
    #: of the two and its memory grows linearly in N.
    explicit_max_positions = 256

    def __init__(self, ref: SelfAttentionMemory):
        super().__init__()
        self.d = ref.q.out_channels
        self.c = ref.v_h.out_channels
        c = self.c
        with torch.no_grad():
            wz = _w(ref.fuse)
            wz_h, wz_m = wz[:, :c], wz[:, c:]
            # Z = W_z[Z_h; Z_m] + b_z with Z_h = V_h·Pᵀ: since every row of P sums to one,
            # W_zh·(W_vh·H + b_vh)·Pᵀ = (W_zh·W_vh·H + W_zh·b_vh)·Pᵀ, so W_z folds into the values.
            self.w_h = frozen(torch.cat([_w(ref.q), _w(ref.k_h), wz_h @ _w(ref.v_h)]))  # (2d+C)×C
            self.b_h = frozen(torch.cat([ref.q.bias, ref.k_h.bias, wz_h @ ref.v_h.bias])[:, None])
            self.w_m = frozen(torch.cat([_w(ref.k_m), wz_m @ _w(ref.v_m)]))  # (d+C)×C
            self.b_m = frozen(torch.cat([ref.k_m.bias, wz_m @ ref.v_m.bias])[:, None])
            self.b_z = frozen(ref.fuse.bias[:, None])
            # depthwise 3×3 then pointwise: the depthwise bias moves into the pointwise bias
            self.w_dw = frozen(ref.gates_dw.weight)
            self.w_pw = frozen(_w(ref.gates_pw))
            self.b_pw = frozen((ref.gates_pw.bias + _w(ref.gates_pw) @ ref.gates_dw.bias)[:, None])
        self.dw_padding = ref.gates_dw.padding

    def attend(self, h: Tensor, m: Tensor) -> Tensor:
        """``Z = W_z [Z_h ; Z_m] + b_z`` (B×C×N) for h, m: B×C×H×W."""
        b, d, n = h.shape[0], self.d, h.shape[2] * h.shape[3]
        if h.is_cuda or b * n > self.explicit_max_positions:
            return self._attend_sdpa(h, m)
        ph = torch.baddbmm(self.b_h, self.w_h.expand(b, -1, -1), h.flatten(2))  # B×(2d+C)×N: Q, K_h, V_h'
        pm = torch.baddbmm(self.b_m, self.w_m.expand(b, -1, -1), m.flatten(2))  # B×(d+C)×N: K_m, V_m'
        k = torch.cat([ph[:, d : 2 * d], pm[:, :d]], dim=2)  # B×d×2N: keys of H, then of M
        v = torch.cat([ph[:, 2 * d :], pm[:, d:]], dim=2)  # B×C×2N: values of H, then of M
        scores = torch.bmm(ph[:, :d].transpose(1, 2), k).view(b, n, 2, n)  # unscaled, as in the paper
        p = torch.softmax(scores, dim=-1).view(b, n, 2 * n)  # each half normalised on its own
        return torch.baddbmm(self.b_z, v, p.transpose(1, 2))  # Z_h' + Z_m' + b_z in one GEMM

    def _attend_sdpa(self, h: Tensor, m: Tensor) -> Tensor:
        """The same ``Z`` with both attentions in one SDPA call, stacked on the batch axis."""
        b, d, c = h.shape[0], self.d, self.c
        # projections straight into the B×N×E layout attention kernels want
        ph = torch.baddbmm(self.b_h.t(), h.flatten(2).transpose(1, 2), self.w_h.t().expand(b, -1, -1))
        pm = torch.baddbmm(self.b_m.t(), m.flatten(2).transpose(1, 2), self.w_m.t().expand(b, -1, -1))
        q, k_h, v_h = ph.split([d, d, c], dim=-1)
        k_m, v_m = pm.split([d, c], dim=-1)
        e = max(d, c)  # flash kernels want equal head sizes: zero-pad Q/K (or V), scores unchanged
        q2 = F.pad(q, (0, e - d)).repeat(2, 1, 1)
        k2 = F.pad(torch.cat([k_h, k_m], dim=0), (0, e - d))
        v2 = F.pad(torch.cat([v_h, v_m], dim=0), (0, e - c))
        z = F.scaled_dot_product_attention(q2[:, None], k2[:, None], v2[:, None], scale=1.0)[:, 0, :, :c]
        return torch.add(z[:b], z[b:]).transpose(1, 2).add(self.b_z).contiguous()  # B×C×N

    def forward(self, h: Tensor, m: Tensor) -> tuple[Tensor, Tensor]:
        b, c, hh, ww = h.shape
        z = self.attend(h, m).view(b, c, hh, ww)
        x = F.conv2d(torch.cat([z, h], dim=1), self.w_dw, None, padding=self.dw_padding, groups=2 * c)
        gates = torch.baddbmm(self.b_pw, self.w_pw.expand(b, -1, -1), x.flatten(2)).view(b, 3 * c, hh, ww)
        return sam_memory_update(gates, m)


class FusedSAConvLSTMCell(SAConvLSTMCell):
    """Fused ConvLSTM cell followed by the fused self-attention memory (the reference cell's
    ``init_state`` and ``forward``, with fused parts)."""

    def __init__(self, ref: SAConvLSTMCell):
        nn.Module.__init__(self)
        self.c_hid = ref.c_hid
        self.lstm = FusedConvLSTMCell(ref.lstm)
        self.sam = FusedSelfAttentionMemory(ref.sam)


@register_fused
class FusedSAConvLSTM(_FusedRecurrent):
    """Inference twin of :class:`~stzoo.models.sa_convlstm.SAConvLSTM` (same call interface)."""

    arch = "sa_convlstm"

    @classmethod
    def from_reference(cls, ref: RecurrentNet) -> FusedSAConvLSTM:
        """Merge ``ref``'s projections and gate convolutions; patch/readout modules are shared."""
        return from_reference_recurrent(cls, ref, lambda cell: FusedSAConvLSTMCell(cell))
