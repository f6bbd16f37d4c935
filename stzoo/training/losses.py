"""Training losses: MSE and TAU's differential divergence regularization (DDR).

The recipe's loss on one batch (:func:`compute_loss`, what every training step minimises), and DDR
(Tan et al., CVPR 2023, eqs. 3–6). For predicted frames ŷ and true frames y (B×T×C×H×W):

    Δŷ_t = ŷ_{t+1} − ŷ_t,           Δy_t = y_{t+1} − y_t          (forward differences)
    p_t  = softmax(Δŷ_t / τ),        q_t  = softmax(Δy_t / τ)       (over the C·H·W values)
    DDR  = KL(p_t ‖ q_t) = Σ p_t · (log p_t − log q_t)

averaged over the batch and the T−1 differences. ``reduction="mean"`` (default) additionally
divides the per-frame KL by C·H·W — the convention of the TAU authors' code, for which α = 0.1 was
tuned on Moving MNIST; ``reduction="sum"`` keeps the plain per-frame KL of the paper's equation.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from stzoo.errors import ConfigError, InputError
from stzoo.metrics import frame_ssim
from stzoo.models import ARCHITECTURES, Recipe
from stzoo.training.evaluation import _is_recurrent

__all__ = ["ddr_loss", "mse_ddr_loss", "compute_loss", "SSIM_LOSS_MIN_SIZE"]

#: the SSIM term of :func:`compute_loss` needs frames at least this many pixels a side (its 11×11 window)
SSIM_LOSS_MIN_SIZE = 11


def ddr_loss(pred: Tensor, target: Tensor, tau: float = 0.1, reduction: str = "mean") -> Tensor:
    """Differential divergence regularization KL(softmax(Δŷ/τ) ‖ softmax(Δy/τ)).

    Returns 0 when there are fewer than 2 frames (no difference to compare).
    """
    if pred.shape != target.shape or pred.dim() != 5:
        raise InputError(
            f"ddr_loss needs two B×T×C×H×W tensors of one shape, got {tuple(pred.shape)} and {tuple(target.shape)}"
        )
    b, t = pred.shape[:2]
    if t < 2:
        return pred.new_zeros(())
    dp = (pred[:, 1:] - pred[:, :-1]).reshape(b, t - 1, -1).float()
    dy = (target[:, 1:] - target[:, :-1]).reshape(b, t - 1, -1).float()
    log_p = F.log_softmax(dp / tau, dim=-1)
    log_q = F.log_softmax(dy / tau, dim=-1)
    kl = (log_p.exp() * (log_p - log_q)).sum(-1)  # B×(T−1)
    if reduction == "mean":
        return kl.mean() / dp.shape[-1]
    if reduction == "sum":
        return kl.mean()
    raise InputError(f"reduction must be 'mean' or 'sum', got {reduction!r}")


def mse_ddr_loss(pred: Tensor, target: Tensor, alpha: float = 0.1, tau: float = 0.1) -> Tensor:
    """TAU's training objective: mean squared error + α · DDR (mean reduction)."""
    return F.mse_loss(pred, target) + alpha * ddr_loss(pred, target, tau)


def compute_loss(model: nn.Module, recipe: Recipe, seq: Tensor, teacher_p: float, *, progress: float = 0.0) -> Tensor:
    """The recipe's loss on one batch of float sequences B×(T_in+T_out)×C×H×W.

    An architecture that declares its own ``training_forward`` (see :class:`stzoo.models.Architecture`)
    makes the prediction itself from the batch and ``progress`` (fraction of training done) and may add
    a loss term of its own; the others are run here, the recurrent ones with scheduled sampling at
    teacher-forcing probability ``teacher_p``. The recipe's loss (MSE or MSE+DDR) is applied to both. A model
    with an ``ssim_loss_weight`` attribute (the persistence head, version 3) adds that weight times (1 − SSIM) of
    its forecast, on frames of at least ``SSIM_LOSS_MIN_SIZE`` pixels a side (SSIM's window; smaller have none)."""
    inner = getattr(model, "module", model)  # (a DistributedDataParallel wrapper holds the model)
    own = getattr(inner, "arch", None)
    extra = None
    x, y = seq[:, : recipe.frames_in], seq[:, recipe.frames_in : recipe.frames_in + recipe.frames_out]
    if own in ARCHITECTURES and ARCHITECTURES[own].training_forward is not None:
        pred, target, extra = ARCHITECTURES[own].training_forward(model, recipe, seq, progress)
    elif _is_recurrent(model):
        mask = None
        if teacher_p > 0:
            mask = torch.bernoulli(torch.full((x.shape[0], recipe.frames_out - 1), teacher_p, device=x.device))
        pred = model(x, recipe.frames_out, target=y, teacher_mask=mask, return_context=True)
        target = seq[:, 1 : recipe.frames_in + recipe.frames_out]
    else:
        pred, target = model(x), y
    if recipe.loss == "mse":
        loss = F.mse_loss(pred.float(), target)
    elif recipe.loss == "mse+ddr":
        loss = mse_ddr_loss(pred.float(), target, alpha=recipe.alpha)
    else:
        raise ConfigError(f"unknown loss {recipe.loss!r}; use 'mse' or 'mse+ddr'")
    weight = float(getattr(inner, "ssim_loss_weight", 0.0))
    if weight and min(pred.shape[-2:]) >= SSIM_LOSS_MIN_SIZE:
        loss = loss + weight * (1 - frame_ssim(pred.float(), target).mean())
    return loss if extra is None else loss + extra
