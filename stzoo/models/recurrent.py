"""What ConvLSTM and SA-ConvLSTM share: the patch reshape, the cell stack and the rollout loop.

A recurrent model reads frames one at a time. Each step it predicts the next frame. After the last
input frame it keeps going on its own predictions (or, in training, on ground-truth frames chosen
by a scheduled-sampling mask) for as many frames as asked.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from stzoo.errors import ConfigError, InputError

__all__ = ["RecurrentForecaster"]


class RecurrentForecaster(nn.Module):
    """Base class: patch reshape in, a stack of cells, a 1×1 readout, pixel shuffle out.

    Subclasses implement :meth:`make_cell` and :meth:`init_state` / :meth:`cell_step`.
    """

    arch = ""
    recurrent = True

    def __init__(self, frames_in: int = 10, frames_out: int = 10, channels: int = 1,
                 height: int = 64, width: int = 64, num_layers: int = 4, num_hidden: int = 64,
                 patch_size: int = 4, filter_size: int = 5, layer_norm: bool = False):
        super().__init__()
        if num_layers < 1 or num_hidden < 1:
            raise ConfigError(f"need num_layers >= 1 and num_hidden >= 1, got {num_layers}, {num_hidden}")
        if filter_size % 2 == 0:
            raise ConfigError(f"filter_size must be odd so the state keeps its size, got {filter_size}")
        self.frames_in, self.frames_out = frames_in, frames_out
        self.channels, self.height, self.width = channels, height, width
        self.patch_size, self.num_layers, self.num_hidden = patch_size, num_layers, num_hidden
        patch_ch = channels * patch_size * patch_size
        self.patchify = nn.PixelUnshuffle(patch_size)
        self.unpatchify = nn.PixelShuffle(patch_size)
        self.norm_in = nn.LayerNorm(patch_ch) if layer_norm else None
        self.cells = nn.ModuleList(
            self.make_cell(patch_ch if i == 0 else num_hidden, num_hidden, filter_size)
            for i in range(num_layers)
        )
        self.readout = nn.Conv2d(num_hidden, patch_ch, 1, bias=False)

    # -- subclass hooks -----------------------------------------------------------------------
    def make_cell(self, c_in: int, c_hid: int, filter_size: int) -> nn.Module:
        raise NotImplementedError

    # -- helpers ------------------------------------------------------------------------------
    def check_input(self, x: Tensor) -> None:
        if x.dim() != 5:
            raise InputError(f"{type(self).__name__} expects B×T×C×H×W, got shape {tuple(x.shape)}")
        _, t, c, h, w = x.shape
        if t < 1:
            raise InputError("need at least one input frame")
        if c != self.channels:
            raise InputError(f"this model expects {self.channels} channel(s), got {c}")
        p = self.patch_size
        if h % p or w % p:
            raise InputError(
                f"height and width must be divisible by the patch size {p}, got {h}×{w}"
            )

    def _encode(self, frame: Tensor) -> Tensor:
        z = self.patchify(frame)
        if self.norm_in is not None:
            z = self.norm_in(z.movedim(1, -1)).movedim(-1, 1)
        return z

    def init_states(self, batch: int, h: int, w: int, like: Tensor) -> list[Any]:
        """Zero states for every cell, for a state grid of ``h``×``w``."""
        return [cell.init_state(batch, h, w, like) for cell in self.cells]

    def step(self, frame: Tensor, states: list[Any]) -> tuple[Tensor, list[Any]]:
        """One time step: read ``frame`` (B×C×H×W), return the predicted next frame and states."""
        z = self._encode(frame)
        new_states = []
        for cell, state in zip(self.cells, states):
            z, state = cell(z, state)
            new_states.append(state)
        return self.unpatchify(self.readout(z)), new_states

    def forward(self, x: Tensor, n_out: int | None = None, *, target: Tensor | None = None,
                teacher_mask: Tensor | None = None, return_context: bool = False) -> Tensor:
        """Predict ``n_out`` frames after the frames in ``x`` (B×T×C×H×W).

        Args:
            x: the observed frames, any T >= 1.
            n_out: how many future frames to produce (default: ``frames_out`` of the config).
            target: B×(n_out)×C×H×W ground truth, only needed with ``teacher_mask``.
            teacher_mask: scheduled sampling. B×(n_out−1) (or broadcastable, e.g. B×(n_out−1)×1×1×1)
                weights in [0, 1]: for future step k ≥ 1 the input is
                ``m·target[:, k−1] + (1−m)·prediction[:, k−1]``. ``None`` = always the prediction.
            return_context: also return the one-step predictions made while reading ``x``
                (frames 1..T−1), prepended: the output then has T−1+n_out frames.
        """
        self.check_input(x)
        n_out = self.frames_out if n_out is None else int(n_out)
        if n_out < 1:
            raise InputError(f"n_out must be >= 1, got {n_out}")
        b, t, c, h, w = x.shape
        if teacher_mask is not None:
            if target is None or target.shape[1] < n_out - 1:
                raise InputError("teacher_mask needs `target` with at least n_out-1 frames")
            teacher_mask = teacher_mask.to(x.dtype)
            if teacher_mask.dim() == 2:
                teacher_mask = teacher_mask[:, :, None, None, None]
        states = self.init_states(b, h // self.patch_size, w // self.patch_size, x)
        outputs: list[Tensor] = []
        pred = x[:, 0]
        for i in range(t - 1 + n_out):
            if i < t:
                frame = x[:, i]
            elif teacher_mask is not None:
                k = i - t  # index of the future frame that `pred` estimates
                m = teacher_mask[:, k]
                frame = m * target[:, k] + (1 - m) * pred
            else:
                frame = pred
            pred, states = self.step(frame, states)
            if i >= t - 1 or return_context:
                outputs.append(pred)
        return torch.stack(outputs, dim=1)
