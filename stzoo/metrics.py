"""Evaluation metrics in the convention of the TAU paper's tables.

Frames are floats in [0, 1], shaped B×T×C×H×W. Predictions are clipped to [0, 1] first.

* **MSE**, **MAE**: squared / absolute error *summed over the C·H·W values of a frame*, then
  averaged over frames and sequences (so a 64×64 frame that is off by 0.1 everywhere has MSE 40.96).
* **SSIM**: Wang et al. (2004) per frame and channel, 11×11 Gaussian window with σ = 1.5,
  K1 = 0.01, K2 = 0.03, data range 1, computed on the valid region (no padding); averaged over
  channels, frames and sequences.
* **PSNR**: 10·log10(1 / mean squared error of the frame) per frame, averaged over frames and
  sequences (a frame that is exactly right is capped at 100 dB).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor

from stzoo.errors import InputError

__all__ = ["frame_mse", "frame_mae", "frame_ssim", "frame_psnr", "MetricAccumulator", "evaluate_frames"]


def _check(pred: Tensor, target: Tensor) -> tuple[Tensor, Tensor]:
    if pred.shape != target.shape or pred.dim() != 5:
        raise InputError(f"metrics need two B×T×C×H×W tensors of one shape, got {tuple(pred.shape)} "
                         f"and {tuple(target.shape)}")
    return pred.float().clamp(0, 1), target.float()


def frame_mse(pred: Tensor, target: Tensor) -> Tensor:
    """Per-frame summed squared error, B×T."""
    pred, target = _check(pred, target)
    return (pred - target).pow(2).flatten(2).sum(-1)


def frame_mae(pred: Tensor, target: Tensor) -> Tensor:
    """Per-frame summed absolute error, B×T."""
    pred, target = _check(pred, target)
    return (pred - target).abs().flatten(2).sum(-1)


def frame_psnr(pred: Tensor, target: Tensor) -> Tensor:
    """Per-frame PSNR in dB for data range 1, B×T (capped at 100 dB for a perfect frame)."""
    pred, target = _check(pred, target)
    mse = (pred - target).pow(2).flatten(2).mean(-1)
    return (10 * torch.log10(1.0 / mse.clamp_min(1e-10))).clamp_max(100.0)


def _gaussian_window(size: int = 11, sigma: float = 1.5, device=None) -> Tensor:
    x = torch.arange(size, dtype=torch.float64, device=device) - (size - 1) / 2
    g = torch.exp(-(x ** 2) / (2 * sigma ** 2))
    g = g / g.sum()
    return (g[:, None] * g[None, :]).float()


def frame_ssim(pred: Tensor, target: Tensor, window: int = 11, sigma: float = 1.5) -> Tensor:
    """Per-frame SSIM averaged over channels, B×T."""
    pred, target = _check(pred, target)
    b, t, c, h, w = pred.shape
    if h < window or w < window:
        raise InputError(f"SSIM needs frames of at least {window}×{window}, got {h}×{w}")
    x = pred.reshape(b * t * c, 1, h, w)
    y = target.reshape(b * t * c, 1, h, w)
    k = _gaussian_window(window, sigma, pred.device)[None, None]
    c1, c2 = 0.01 ** 2, 0.03 ** 2
    mu_x, mu_y = F.conv2d(x, k), F.conv2d(y, k)
    sxx = F.conv2d(x * x, k) - mu_x ** 2
    syy = F.conv2d(y * y, k) - mu_y ** 2
    sxy = F.conv2d(x * y, k) - mu_x * mu_y
    ssim = ((2 * mu_x * mu_y + c1) * (2 * sxy + c2)) / ((mu_x ** 2 + mu_y ** 2 + c1) * (sxx + syy + c2))
    return ssim.mean(dim=(1, 2, 3)).reshape(b, t, c).mean(-1)


@dataclass
class MetricAccumulator:
    """Running sums of per-frame metrics over many batches; :meth:`result` gives the means."""

    sums: dict[str, float] = field(default_factory=lambda: {"mse": 0.0, "mae": 0.0, "ssim": 0.0, "psnr": 0.0})
    frames: int = 0
    sequences: int = 0

    @torch.no_grad()
    def update(self, pred: Tensor, target: Tensor) -> None:
        for name, fn in (("mse", frame_mse), ("mae", frame_mae), ("ssim", frame_ssim), ("psnr", frame_psnr)):
            self.sums[name] += float(fn(pred, target).double().sum())
        self.frames += pred.shape[0] * pred.shape[1]
        self.sequences += pred.shape[0]

    def result(self) -> dict[str, float]:
        if self.frames == 0:
            return {k: math.nan for k in self.sums}
        return {k: v / self.frames for k, v in self.sums.items()}


def evaluate_frames(pred: Tensor, target: Tensor) -> dict[str, float]:
    """All four metrics for one batch of predictions."""
    acc = MetricAccumulator()
    acc.update(pred, target)
    return acc.result()
