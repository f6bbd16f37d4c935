"""Evaluation metrics in the convention of the TAU paper's tables.

Frames are floats in [0, 1], shaped B×T×C×H×W. Predictions are clipped to [0, 1] first.

* **MSE**, **MAE**: squared / absolute error *summed over the C·H·W values of a frame*, then
  averaged over frames and sequences (so a 64×64 frame that is off by 0.1 everywhere has MSE 40.96).
* **SSIM**: Wang et al. (2004) per frame and channel, 11×11 Gaussian window with σ = 1.5,
  K1 = 0.01, K2 = 0.03, data range 1, computed on the valid region (no padding); averaged over
  channels, frames and sequences.
* **PSNR**: 10·log10(1 / mean squared error of the frame) per frame, averaged over frames and
  sequences (a frame that is exactly right is capped at 100 dB).

Speed: the Gaussian window is separable, so SSIM filters each of its five maps (x, y, x², y², xy)
with two 1-D passes, written as multiplications by banded 1-D filter matrices (W×W' and H×H'):
GEMMs over all B·T·C frames (in chunks of :data:`SSIM_CHUNK` frames) instead of five 11×11
single-channel convolutions per frame batch.
:func:`frame_metrics` computes all four metrics with one clamp and one difference.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import torch
from torch import Tensor

from stzoo.errors import InputError

__all__ = [
    "frame_mse",
    "frame_mae",
    "frame_ssim",
    "frame_psnr",
    "frame_metrics",
    "MetricAccumulator",
    "evaluate_frames",
    "OpenSTLConvention",
    "OpenSTLAccumulator",
    "skimage_ssim",
    "frame_psnr_unit",
    "frame_psnr_uint8_wrap",
    "latitude_weights",
    "LatWeightedRMSE",
]

#: 64×64 frames (or as many pixels) per filtering step of :func:`frame_ssim`: about 35 MiB of
#: temporaries, small enough to stay in cache; on one CPU core 128 measured ~1.6× faster than 640
SSIM_CHUNK = 128


def _check(pred: Tensor, target: Tensor) -> tuple[Tensor, Tensor]:
    if pred.shape != target.shape or pred.dim() != 5:
        raise InputError(
            f"metrics need two B×T×C×H×W tensors of one shape, got {tuple(pred.shape)} and {tuple(target.shape)}"
        )
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
    """The normalised 1-D Gaussian (``size``, float64); the 2-D window is its outer product."""
    x = torch.arange(size, dtype=torch.float64, device=device) - (size - 1) / 2
    g = torch.exp(-(x**2) / (2 * sigma**2))
    return g / g.sum()


@lru_cache(maxsize=16)
def _band(n: int, window: int, sigma: float, device: torch.device, dtype: torch.dtype) -> Tensor:
    """n×(n-window+1) matrix M with ``(v @ M)[j] = sum_k g[k] v[j+k]``: a valid 1-D filter by ``g``."""
    g = _gaussian_window(window, sigma)
    offset = torch.arange(n)[:, None] - torch.arange(n - window + 1)[None, :]  # k = i - j
    inside = (offset >= 0) & (offset < window)
    band = torch.where(inside, g[offset.clamp(0, window - 1)], torch.zeros((), dtype=torch.float64))
    return band.to(device=device, dtype=dtype)


def _ssim_frames(x: Tensor, y: Tensor, window: int, sigma: float) -> Tensor:
    """Mean SSIM map of each of the N frames of two N×H×W float tensors (N)."""
    n, h, w = x.shape
    bw = _band(w, window, sigma, x.device, x.dtype)
    bh_t = _band(h, window, sigma, x.device, x.dtype).t()
    # (co)variances are shift-invariant: taking them about each frame's mean keeps E[x²] - E[x]²
    # from cancelling catastrophically in float32 on bright, flat frames
    mx, my = x.mean(dim=(1, 2), keepdim=True), y.mean(dim=(1, 2), keepdim=True)
    xc, yc = x - mx, y - my
    maps = torch.stack((xc, yc, xc * xc, yc * yc, xc * yc))  # 5×N×H×W
    f = torch.matmul(bh_t, maps @ bw)  # filtered along W, then along H: 5×N×H'×W'
    dx, dy, exx, eyy, exy = f.unbind(0)
    c1, c2 = 0.01**2, 0.03**2
    mu_x, mu_y = dx + mx, dy + my
    sxx, syy, sxy = exx - dx * dx, eyy - dy * dy, exy - dx * dy
    num = (2 * mu_x * mu_y + c1) * (2 * sxy + c2)
    den = (mu_x * mu_x + mu_y * mu_y + c1) * (sxx + syy + c2)
    return (num / den).mean(dim=(1, 2))


def _ssim_checked(pred: Tensor, target: Tensor, window: int, sigma: float) -> Tensor:
    b, t, c, h, w = pred.shape
    if h < window or w < window:
        raise InputError(f"SSIM needs frames of at least {window}×{window}, got {h}×{w}")
    x, y = pred.reshape(b * t * c, h, w), target.reshape(b * t * c, h, w)
    step = max(1, SSIM_CHUNK * 4096 // (h * w))
    parts = [_ssim_frames(x[i : i + step], y[i : i + step], window, sigma) for i in range(0, x.shape[0], step)]
    out = parts[0] if len(parts) == 1 else torch.cat(parts)
    return out.reshape(b, t, c).mean(-1)


def frame_ssim(pred: Tensor, target: Tensor, window: int = 11, sigma: float = 1.5) -> Tensor:
    """Per-frame SSIM averaged over channels, B×T."""
    pred, target = _check(pred, target)
    return _ssim_checked(pred, target, window, sigma)


def frame_metrics(pred: Tensor, target: Tensor) -> dict[str, Tensor]:
    """``{"mse", "mae", "ssim", "psnr"}`` per frame (each B×T), sharing the clamp and the difference.

    SSIM is not defined for frames smaller than its 11×11 window: there it is NaN (so an evaluation or a
    fine-tune of tiny clips reports MSE / MAE / PSNR instead of failing; :func:`frame_ssim` raises)."""
    pred, target = _check(pred, target)
    h, w = pred.shape[-2:]
    ssim = (
        _ssim_checked(pred, target, 11, 1.5)
        if h >= 11 and w >= 11
        else torch.full(pred.shape[:2], math.nan, dtype=torch.float64)
    )
    diff = pred - target
    sq = diff.square().flatten(2)
    mse = sq.sum(-1)
    psnr = (10 * torch.log10(1.0 / sq.mean(-1).clamp_min(1e-10))).clamp_max(100.0)
    return {"mse": mse, "mae": diff.abs_().flatten(2).sum(-1), "ssim": ssim, "psnr": psnr}


@dataclass
class MetricAccumulator:
    """Running sums of per-frame metrics over many batches; :meth:`result` gives the means."""

    sums: dict[str, float] = field(default_factory=lambda: {"mse": 0.0, "mae": 0.0, "ssim": 0.0, "psnr": 0.0})
    frames: int = 0
    sequences: int = 0

    @torch.no_grad()
    def update(self, pred: Tensor, target: Tensor) -> None:
        for name, value in frame_metrics(pred, target).items():
            self.sums[name] += float(value.double().sum())
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


# ---- OpenSTL's conventions (openstl/core/metrics.py), for comparing with its published tables ----------------


@dataclass(frozen=True)
class OpenSTLConvention:
    """How OpenSTL scores one dataset (``metric()`` in its ``openstl/core/metrics.py``).

    * Predictions and targets are first mapped back with the test set's ``mean`` / ``std``
      (``x * std + mean``; 0 and 1 for the video datasets, the training years' statistics for WeatherBench).
    * **MSE** / **MAE**: per-frame sums over C·H·W, averaged over frames and sequences (the same as
      stzoo's), but on *unclipped* predictions; with ``spatial_norm`` (WeatherBench) divided by C·H·W,
      i.e. per-value means. **RMSE**: the square root of that MSE over the whole test set.
    * Predictions are then clipped to ``clip`` (``[0, 1]``) for SSIM and PSNR.
    * **SSIM**: scikit-image's ``structural_similarity`` as OpenSTL calls it: 7×7 uniform window,
      sample covariance, per channel, averaged; OpenSTL passes no ``data_range``, so scikit-image < 0.20
      took it from the float dtype as 2.0 (scikit-image ≥ 0.20 refuses the call); ``ssim_data_range``.
    * **PSNR**: ``20·log10(1 / √MSE)`` per frame on [0, 1] values (infinite for an exact frame), averaged.
      SimVP's and TAU's own code (OpenSTL's ``SimVPv2`` branch) computed PSNR on frames cast to 8 bits
      with wrap-around arithmetic (:func:`frame_psnr_uint8_wrap`), which gives higher numbers: OpenSTL
      issue #191.
    """

    metrics: tuple[str, ...] = ("mse", "mae", "ssim", "psnr")
    spatial_norm: bool = False
    clip: tuple[float, float] = (0.0, 1.0)
    ssim_data_range: float = 2.0


def skimage_ssim(pred: Tensor, target: Tensor, data_range: float = 2.0, window: int = 7) -> Tensor:
    """Per-frame SSIM as scikit-image's default ``structural_similarity`` computes it, B×T.

    ``window``×``window`` uniform filter, sample covariance (``N / (N - 1)``), K1 = 0.01, K2 = 0.03, the map
    averaged over the pixels at least ``window // 2`` from the border, per channel, channels averaged.
    Inputs are B×T×C×H×W (not clipped here)."""
    if pred.shape != target.shape or pred.dim() != 5:
        raise InputError(
            f"SSIM needs two B×T×C×H×W tensors of one shape, got {tuple(pred.shape)}, {tuple(target.shape)}"
        )
    b, t, c, h, w = pred.shape
    if h < window or w < window:
        raise InputError(f"SSIM needs frames of at least {window}×{window}, got {h}×{w}")
    x = pred.double().reshape(b * t * c, 1, h, w)
    y = target.double().reshape(b * t * c, 1, h, w)
    pool = torch.nn.functional.avg_pool2d
    ux, uy = pool(x, window, 1), pool(y, window, 1)
    uxx, uyy, uxy = pool(x * x, window, 1), pool(y * y, window, 1), pool(x * y, window, 1)
    n = window * window
    norm = n / (n - 1)
    vx, vy, vxy = norm * (uxx - ux * ux), norm * (uyy - uy * uy), norm * (uxy - ux * uy)
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    s = ((2 * ux * uy + c1) * (2 * vxy + c2)) / ((ux * ux + uy * uy + c1) * (vx + vy + c2))
    return s.mean(dim=(1, 2, 3)).reshape(b, t, c).mean(-1)


def frame_psnr_unit(pred: Tensor, target: Tensor) -> Tensor:
    """OpenSTL's PSNR per frame, B×T: ``20·log10(1 / √mean squared error)``; ``inf`` for an exact frame."""
    mse = (pred.double() - target.double()).pow(2).flatten(2).mean(-1)
    return torch.where(mse == 0, torch.full_like(mse, math.inf), -10.0 * torch.log10(mse.clamp_min(1e-300)))


def frame_psnr_uint8_wrap(pred: Tensor, target: Tensor) -> Tensor:
    """PSNR per frame as SimVP's / TAU's original code computed it, B×T: both frames cast to 8 bits
    (``uint8(x * 255)``, truncating), subtracted and squared in 8-bit arithmetic (so differences wrap
    modulo 256), then ``20·log10(255) - 10·log10(mean)``. Kept to explain published numbers, not to use."""
    p = (pred.double() * 255).clamp(0, 255).to(torch.uint8)
    q = (target.double() * 255).clamp(0, 255).to(torch.uint8)
    d = p - q  # wraps modulo 256, as numpy's uint8 does
    sq = (d * d).double()  # also uint8 arithmetic before the cast
    mse = sq.flatten(2).mean(-1)
    return 20 * math.log10(255.0) - 10 * torch.log10(mse.clamp_min(1e-300))


class OpenSTLAccumulator:
    """Running sums of the metrics of one :class:`OpenSTLConvention` over many batches.

    ``mean`` / ``std``: numbers or per-channel sequences that map the data a model sees back to OpenSTL's
    scoring units (``x * std + mean``)."""

    def __init__(self, convention: OpenSTLConvention, mean: Any = 0.0, std: Any = 1.0) -> None:
        self.convention = convention
        self.mean = torch.as_tensor(mean, dtype=torch.float64).reshape(-1, 1, 1) if mean is not None else None
        self.std = torch.as_tensor(std, dtype=torch.float64).reshape(-1, 1, 1) if std is not None else None
        self.sums: dict[str, float] = {}
        self.frames = 0
        self.sequences = 0

    def _add(self, name: str, value: Tensor) -> None:
        self.sums[name] = self.sums.get(name, 0.0) + float(value.double().sum())

    @torch.no_grad()
    def update(self, pred: Tensor, target: Tensor) -> None:
        """Add one batch (B×T×C×H×W, in the units the model sees)."""
        if pred.shape != target.shape or pred.dim() != 5:
            raise InputError(
                f"metrics need two B×T×C×H×W tensors of one shape, got {tuple(pred.shape)}, {tuple(target.shape)}"
            )
        conv = self.convention
        p, y = pred.double(), target.double()
        if self.mean is not None and self.std is not None:
            p, y = p * self.std + self.mean, y * self.std + self.mean
        diff = p - y
        norm = diff[0, 0].numel() if conv.spatial_norm else 1
        if "mse" in conv.metrics or "rmse" in conv.metrics:
            self._add("mse", diff.pow(2).flatten(2).sum(-1) / norm)
        if "mae" in conv.metrics:
            self._add("mae", diff.abs().flatten(2).sum(-1) / norm)
        p = p.clamp(*conv.clip)
        if "ssim" in conv.metrics:
            self._add("ssim", skimage_ssim(p, y, conv.ssim_data_range))
        if "psnr" in conv.metrics:
            self._add("psnr", frame_psnr_unit(p, y))
        self.frames += pred.shape[0] * pred.shape[1]
        self.sequences += pred.shape[0]

    def result(self) -> dict[str, float]:
        """The metrics OpenSTL prints (``mse``, ``mae``, ``rmse``, ``ssim``, ``psnr`` as the convention lists)."""
        out = {k: (v / self.frames if self.frames else math.nan) for k, v in self.sums.items()}
        if "rmse" in self.convention.metrics:
            out["rmse"] = math.sqrt(out["mse"]) if self.frames else math.nan
        if "mse" not in self.convention.metrics:
            out.pop("mse", None)
        return {k: out[k] for k in ("mse", "rmse", "mae", "ssim", "psnr") if k in out}


def latitude_weights(latitudes: Any) -> Tensor:
    """WeatherBench's latitude weights: ``cos(lat) / mean(cos(lat))`` (degrees in, one weight per row)."""
    w = torch.cos(torch.deg2rad(torch.as_tensor(latitudes, dtype=torch.float64)))
    return w / w.mean()


class LatWeightedRMSE:
    """Latitude-weighted RMSE per lead time in physical units (WeatherBench, Rasp et al. 2020):
    ``sqrt(mean over forecasts, latitudes, longitudes of w(lat) · error²)`` for each lead time and channel.

    ``mean`` / ``std`` map the model's values back to physical units; ``latitudes`` (degrees) label the H rows."""

    def __init__(self, latitudes: Any, mean: Any = 0.0, std: Any = 1.0) -> None:
        self.weights = latitude_weights(latitudes).reshape(1, 1, 1, -1, 1)
        self.mean = torch.as_tensor(mean, dtype=torch.float64).reshape(1, 1, -1, 1, 1)
        self.std = torch.as_tensor(std, dtype=torch.float64).reshape(1, 1, -1, 1, 1)
        self.sum: Tensor | None = None
        self.count = 0

    @torch.no_grad()
    def update(self, pred: Tensor, target: Tensor) -> None:
        """Add one batch (B×T×C×H×W in the model's units; H must match the latitudes)."""
        if pred.shape[-2] != self.weights.shape[-2]:
            raise InputError(f"{self.weights.shape[-2]} latitudes given for frames of {pred.shape[-2]} rows")
        err = (pred.double() - target.double()) * self.std
        s = (err.pow(2) * self.weights).mean(dim=(-2, -1)).sum(0)  # T×C
        self.sum = s if self.sum is None else self.sum + s
        self.count += pred.shape[0]

    def result(self) -> dict[str, Any]:
        """``{"per_lead_time": [[per channel] per lead time], "mean": average over lead times and channels}``."""
        if self.sum is None:
            return {"per_lead_time": [], "mean": math.nan}
        rmse = (self.sum / self.count).sqrt()
        return {"per_lead_time": [[float(v) for v in row] for row in rmse], "mean": float(rmse.mean())}
