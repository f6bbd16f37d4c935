"""FusedSAConvLSTM: the inference twin of :class:`stzoo.models.sa_convlstm.SAConvLSTM`.

Per cell and step:

* the ConvLSTM part is :class:`~stzoo.kernels.convlstm.FusedConvLSTMCell` (one gate convolution,
  one fused cell update);
* the self-attention memory (SAM) computes ``Q, K_h, V_h`` from ``H`` with **one** GEMM and
  ``K_m, V_m`` from ``M`` with one more, straight into the B×N×E layout attention wants;
* both attentions (H over itself, H over the memory) go through **one**
  ``F.scaled_dot_product_attention`` call: the two problems are stacked along the batch axis
  (query ``[Q; Q]``, keys ``[K_h; K_m]``, values ``[V_h; V_m]``), with ``scale=1.0`` because the
  paper's scores are unscaled. Flash-style kernels need the query/key head size to equal the value
  head size, so Q and K are zero-padded up to V's width (or V up to Q's): extra zero coordinates
  add nothing to a dot product, so the scores are unchanged. The N×N score matrix is then never
  stored whole (CPU flash attention works in blocks; on CUDA, flash / memory-efficient / cuDNN);
* ``W_z [Z_h ; Z_m]`` is two accumulating GEMMs that write B×C×N directly (no concatenation);
* the memory update ``M' = (1 − σ(i))·M + σ(i)·tanh(g)``, ``Ĥ = σ(o)·M'`` is one fused elementwise
  kernel (:func:`stzoo.kernels.elementwise.sam_memory_update`).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from stzoo.kernels.base import frozen
from stzoo.kernels.convlstm import FusedConvLSTMCell, _FusedRecurrent, from_reference_recurrent
from stzoo.kernels.elementwise import sam_memory_update
from stzoo.models.recurrent import RecurrentForecaster
from stzoo.models.sa_convlstm import SAConvLSTMCell, SelfAttentionMemory

__all__ = ["FusedSAConvLSTM", "FusedSAConvLSTMCell", "FusedSelfAttentionMemory"]


def _w(conv: nn.Conv2d) -> Tensor:
    return conv.weight.flatten(1)


class FusedSelfAttentionMemory(nn.Module):
    """SAM with merged projections and one batched SDPA call for both attentions."""

    def __init__(self, ref: SelfAttentionMemory):
        super().__init__()
        self.d = ref.q.out_channels
        self.c = ref.v_h.out_channels
        with torch.no_grad():
            # (in, out) layouts so that rows @ w gives B×N×out directly
            self.w_h = frozen(torch.cat([_w(ref.q), _w(ref.k_h), _w(ref.v_h)], dim=0).t())
            self.b_h = frozen(torch.cat([ref.q.bias, ref.k_h.bias, ref.v_h.bias]))
            self.w_m = frozen(torch.cat([_w(ref.k_m), _w(ref.v_m)], dim=0).t())
            self.b_m = frozen(torch.cat([ref.k_m.bias, ref.v_m.bias]))
            wz = _w(ref.fuse)
            self.wz_h, self.wz_m = frozen(wz[:, : self.c]), frozen(wz[:, self.c:])
            self.bz = frozen(ref.fuse.bias[:, None])
        self.gates_dw, self.gates_pw = ref.gates_dw, ref.gates_pw

    def attend(self, h: Tensor, m: Tensor) -> tuple[Tensor, Tensor]:
        """``(Z_h, Z_m)``, each B×N×C, for h, m: B×C×H×W (one SDPA call)."""
        b, c = h.shape[:2]
        d = self.d
        qkv = torch.baddbmm(self.b_h, h.flatten(2).transpose(1, 2), self.w_h.expand(b, -1, -1))  # B×N×(2d+C)
        kv = torch.baddbmm(self.b_m, m.flatten(2).transpose(1, 2), self.w_m.expand(b, -1, -1))  # B×N×(d+C)
        q, k_h, v_h = qkv.split([d, d, c], dim=-1)
        k_m, v_m = kv.split([d, c], dim=-1)
        e = max(d, c)
        q2 = F.pad(q, (0, e - d)).repeat(2, 1, 1)
        k2 = F.pad(torch.cat([k_h, k_m], dim=0), (0, e - d))
        v2 = F.pad(torch.cat([v_h, v_m], dim=0), (0, e - c))
        z = F.scaled_dot_product_attention(q2[:, None], k2[:, None], v2[:, None], scale=1.0)[:, 0, :, :c]
        return z[:b], z[b:]

    def forward(self, h: Tensor, m: Tensor) -> tuple[Tensor, Tensor]:
        b, c, hh, ww = h.shape
        z_h, z_m = self.attend(h, m)
        z = torch.baddbmm(self.bz, self.wz_h.expand(b, -1, -1), z_h.transpose(1, 2))
        z = torch.baddbmm(z, self.wz_m.expand(b, -1, -1), z_m.transpose(1, 2)).view(b, c, hh, ww)
        gates = self.gates_pw(self.gates_dw(torch.cat([z, h], dim=1)))
        return sam_memory_update(gates, m)


class FusedSAConvLSTMCell(SAConvLSTMCell):
    """Fused ConvLSTM cell followed by the fused self-attention memory (the reference cell's
    ``init_state`` and ``forward``, with fused parts)."""

    def __init__(self, ref: SAConvLSTMCell):
        nn.Module.__init__(self)
        self.c_hid = ref.c_hid
        self.lstm = FusedConvLSTMCell(ref.lstm)
        self.sam = FusedSelfAttentionMemory(ref.sam)


class FusedSAConvLSTM(_FusedRecurrent):
    """Inference twin of :class:`~stzoo.models.sa_convlstm.SAConvLSTM` (same call interface)."""

    arch = "sa_convlstm"

    @classmethod
    def from_reference(cls, ref: RecurrentForecaster) -> "FusedSAConvLSTM":
        """Merge ``ref``'s projections and gate convolutions; patch/readout modules are shared."""
        return from_reference_recurrent(cls, ref, lambda cell: FusedSAConvLSTMCell(cell))
