"""FusedConvLSTM: the inference twin of :class:`stzoo.models.convlstm.ConvLSTM`.

Per cell and step the reference runs two convolutions (``W_x * X`` and ``W_h * H``), adds them,
splits four gates and applies eight elementwise ops. The fused cell concatenates ``[X ; H]`` and
runs **one** convolution whose weight is ``[W_x | W_h]`` (the same sums, one kernel launch, one
output write), then the cell update as **one** fused elementwise kernel
(:func:`stzoo.kernels.elementwise.lstm_cell_update`: jiterator on CUDA, a short op sequence on CPU).

The rollout (``forward(x, n_out, ...)``), ``step(frame, states)`` and ``init_states(...)`` are the
reference's (:class:`~stzoo.models.recurrent.RecurrentNet`), so the fused model is a drop-in
replacement for streaming and export code built on those.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from stzoo.kernels.base import InferenceOnly, frozen, register_fused
from stzoo.kernels.elementwise import lstm_cell_update
from stzoo.models.convlstm import ConvLSTMCell
from stzoo.models.recurrent import RecurrentNet

__all__ = ["FusedConvLSTM", "FusedConvLSTMCell", "from_reference_recurrent"]


class FusedConvLSTMCell(ConvLSTMCell):
    """One ConvLSTM cell with the input and hidden convolutions merged into one (the reference
    cell's ``init_state``)."""

    def __init__(self, ref: ConvLSTMCell):
        nn.Module.__init__(self)
        self.c_hid = ref.c_hid
        self.c_in = ref.conv_x.in_channels
        self.padding = ref.conv_x.padding
        with torch.no_grad():
            self.weight = frozen(torch.cat([ref.conv_x.weight, ref.conv_h.weight], dim=1))
            self.bias = frozen(ref.conv_x.bias)

    def gates(self, x: Tensor, h: Tensor) -> Tensor:
        """Pre-activation gates ``W_x * x + W_h * h + b`` (B×4C×H×W) with one convolution."""
        return F.conv2d(torch.cat([x, h], dim=1), self.weight, self.bias, padding=self.padding)

    def forward(self, x: Tensor, state: tuple[Tensor, Tensor]) -> tuple[Tensor, tuple[Tensor, Tensor]]:
        h, c = state
        h, c = lstm_cell_update(self.gates(x, h), c)
        return h, (h, c)


def from_reference_recurrent(cls: type, ref: RecurrentNet, make_cell: Any) -> Any:
    """Build fused recurrent model ``cls`` sharing ``ref``'s patch/readout modules, with
    ``make_cell(ref_cell)`` for every cell (shared by ConvLSTM and SA-ConvLSTM)."""
    obj = cls.__new__(cls)
    nn.Module.__init__(obj)
    for attr in (
        "config",
        "frames_in",
        "frames_out",
        "channels",
        "height",
        "width",
        "patch_size",
        "num_layers",
        "num_hidden",
    ):
        setattr(obj, attr, getattr(ref, attr))
    if hasattr(ref, "attn_dim"):
        obj.attn_dim = ref.attn_dim
    obj.patchify, obj.unpatchify, obj.norm_in, obj.readout = ref.patchify, ref.unpatchify, ref.norm_in, ref.readout
    obj.cells = nn.ModuleList(make_cell(cell) for cell in ref.cells)
    obj._keep_reference(ref)
    obj.train(ref.training)
    return obj


class _FusedRecurrent(InferenceOnly, RecurrentNet):
    """Reference rollout / step / init_states, fused cells, inference-only."""

    def step(self, frame: Tensor, states: list[Any]) -> tuple[Tensor, list[Any]]:
        """One time step: read ``frame`` (B×C×H×W), return the predicted next frame and states."""
        self._check_inference()
        return super().step(frame, states)


@register_fused
class FusedConvLSTM(_FusedRecurrent):
    """Inference twin of :class:`~stzoo.models.convlstm.ConvLSTM` (same call interface)."""

    arch = "convlstm"

    @classmethod
    def from_reference(cls, ref: RecurrentNet) -> FusedConvLSTM:
        """Merge ``ref``'s gate convolutions; the patch/readout modules are shared with ``ref``."""
        return from_reference_recurrent(cls, ref, lambda cell: FusedConvLSTMCell(cell))
