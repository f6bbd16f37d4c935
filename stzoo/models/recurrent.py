"""What ConvLSTM and SA-ConvLSTM share: the patch reshape, the cell stack and the rollout loop.

A recurrent model reads frames one at a time. Each step it predicts the next frame. After the last
input frame it keeps going on its own predictions (or, in training, on ground-truth frames chosen
by a scheduled-sampling mask) for as many frames as asked.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from stzoo.errors import ConfigError, InputError
from stzoo.models.base import ChannelParam, ModelConfig, Recipe, cfg_field, raise_if_bad_frames

__all__ = [
    "RecurrentNet",
    "RecurrentConfig",
    "RECURRENT_RECIPE",
    "recurrent_declaration",
    "rollout_activation_floats",
    "recurrent_tiny_config",
]


@dataclass
class RecurrentConfig(ModelConfig):
    """Settings shared by the recurrent nets. Defaults: 4 layers × 64 hidden, patch 4, 5×5 filters."""

    frames_in: int = cfg_field(10, lo=1, hi=1000)  # frames read by default (any T runs)
    frames_out: int = cfg_field(10, lo=1, hi=1000)  # frames predicted by default (any horizon runs)
    channels: int = cfg_field(1, lo=1, hi=64)  # colour channels of a frame
    height: int = cfg_field(64, lo=1, hi=8192)  # training size (any multiple of patch_size runs)
    width: int = cfg_field(64, lo=1, hi=8192)  # (training width)
    num_layers: int = cfg_field(4, lo=1, hi=32)  # stacked cells
    num_hidden: int = cfg_field(64, lo=1, hi=2048)  # hidden channels of every cell
    patch_size: int = cfg_field(4, lo=1, hi=64)  # frames enter as patch_size² channels per colour channel
    filter_size: int = cfg_field(5, lo=1, hi=15)  # gate convolution kernel (odd)
    layer_norm: bool = False  # LayerNorm over the patch channels of each input frame

    def validate(self) -> None:
        super().validate()
        if self.filter_size % 2 == 0:
            raise ConfigError(f"filter_size must be odd so the state keeps its size, got {self.filter_size}")


#: default recipe of the recurrent nets: MSE on every one-step prediction, scheduled sampling over half the run
RECURRENT_RECIPE = Recipe(loss="mse", scheduled_sampling=0.5)


def recurrent_declaration(first_cell_input: str) -> dict[str, Any]:
    """The :class:`~stzoo.models.base.Architecture` fields every patch-reshape recurrent net shares.

    ``first_cell_input`` is the weight of the first cell that reads the patch channels."""

    def channel_params(cfg: RecurrentConfig) -> dict[str, ChannelParam]:
        g = cfg.patch_size**2
        return {
            first_cell_input: ChannelParam(1, "in", g),
            "readout.weight": ChannelParam(0, "out", g),
            "norm_in.weight": ChannelParam(0, "out", g),
            "norm_in.bias": ChannelParam(0, "out", g),
        }

    return dict(
        recipe=RECURRENT_RECIPE,
        any_frames=True,
        spec_keys={k: k for k in ("frames_in", "frames_out", "channels", "height", "width")},
        size_multiple=lambda cfg: cfg.patch_size,
        size_reason=lambda cfg: f"patch_size={cfg.patch_size} cuts frames into patches (patch size {cfg.patch_size})",
        channel_params=channel_params,
    )


def rollout_activation_floats(
    cfg: Any, b: int, t: int, h: int, w: int, *, cell_floats: float = 16.0, grid: int | None = None
) -> float:
    """Peak-memory estimate (floats) of a net that rolls a stack of cells over ``b``×``t`` frames of ``h``×``w``:
    the states and gates of every step, ``cell_floats`` per hidden channel of each of ``cfg.num_layers`` cells
    on the state grid (``h``×``w`` divided by ``grid``², default ``cfg.patch_size``), plus 64 floats per input
    pixel for the frames and outputs. An :attr:`~stzoo.models.base.Architecture.activation_floats`."""
    grid = cfg.patch_size if grid is None else grid
    return b * t * h * w * (64.0 + cell_floats * cfg.num_layers * cfg.num_hidden / grid**2)


def recurrent_tiny_config(**changes: Any) -> dict[str, Any]:
    """The contract tests' tiny configuration of a patch-reshape recurrent net (4 → 4 frames of 16×16, two
    cells of 8 hidden channels, patch 4, 3×3 filters), with ``changes`` on top; a fresh dict each call."""
    tiny = {
        "frames_in": 4,
        "frames_out": 4,
        "height": 16,
        "width": 16,
        "num_layers": 2,
        "num_hidden": 8,
        "patch_size": 4,
        "filter_size": 3,
    }
    return {**tiny, **changes}


class RecurrentNet(nn.Module):
    """Base class of the recurrent nets (a ``torch.nn.Module``): patch reshape in, a stack of cells, a 1×1
    readout, pixel shuffle out, and the rollout loop. Not to be confused with :class:`stzoo.Forecaster`, which
    feeds a loaded model frames that arrive one at a time.

    Subclasses set ``config_class`` and implement :meth:`make_cell`; each cell implements
    ``init_state(batch, h, w, like)`` and ``forward(x, state) -> (output, state)``.
    """

    arch = ""
    recurrent = True
    config_class: type[RecurrentConfig] = RecurrentConfig

    def __init__(self, config: RecurrentConfig | None = None, **overrides: Any):
        super().__init__()
        cfg = self.config = self.config_class.from_dict({**(config.to_dict() if config else {}), **overrides})
        frames_in, frames_out, channels, height, width = (
            cfg.frames_in,
            cfg.frames_out,
            cfg.channels,
            cfg.height,
            cfg.width,
        )
        num_layers, num_hidden, patch_size = cfg.num_layers, cfg.num_hidden, cfg.patch_size
        filter_size, layer_norm = cfg.filter_size, cfg.layer_norm
        self.frames_in, self.frames_out = frames_in, frames_out
        self.channels, self.height, self.width = channels, height, width
        self.patch_size, self.num_layers, self.num_hidden = patch_size, num_layers, num_hidden
        patch_ch = channels * patch_size * patch_size
        self.patchify = nn.PixelUnshuffle(patch_size)
        self.unpatchify = nn.PixelShuffle(patch_size)
        self.norm_in = nn.LayerNorm(patch_ch) if layer_norm else None
        self.cells = nn.ModuleList(
            self.make_cell(patch_ch if i == 0 else num_hidden, num_hidden, filter_size) for i in range(num_layers)
        )
        self.readout = nn.Conv2d(num_hidden, patch_ch, 1, bias=False)

    # -- subclass hooks -----------------------------------------------------------------------
    def make_cell(self, c_in: int, c_hid: int, filter_size: int) -> nn.Module:
        raise NotImplementedError

    # -- helpers ------------------------------------------------------------------------------
    def check_input(self, x: Tensor) -> None:
        """Raise one clear error listing every rule of the input contract ``x`` breaks."""
        raise_if_bad_frames(self, x)

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

    def forward(
        self,
        x: Tensor,
        n_out: int | None = None,
        *,
        target: Tensor | None = None,
        teacher_mask: Tensor | None = None,
        return_context: bool = False,
    ) -> Tensor:
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
