"""Training losses: MSE and TAU's differential divergence regularization (DDR).

DDR (Tan et al., CVPR 2023, eqs. 3–6). For predicted frames ŷ and true frames y (B×T×C×H×W):

    Δŷ_t = ŷ_{t+1} − ŷ_t,           Δy_t = y_{t+1} − y_t          (forward differences)
    p_t  = softmax(Δŷ_t / τ),        q_t  = softmax(Δy_t / τ)       (over the C·H·W values)
    DDR  = KL(p_t ‖ q_t) = Σ p_t · (log p_t − log q_t)

averaged over the batch and the T−1 differences. ``reduction="mean"`` (default) additionally
divides the per-frame KL by C·H·W — the convention of the TAU authors' code, for which α = 0.1 was
tuned on Moving MNIST; ``reduction="sum"`` keeps the plain per-frame KL of the paper's equation.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor

from stzoo.errors import InputError

__all__ = ["ddr_loss", "mse_ddr_loss"]


def ddr_loss(pred: Tensor, target: Tensor, tau: float = 0.1, reduction: str = "mean") -> Tensor:
    """Differential divergence regularization KL(softmax(Δŷ/τ) ‖ softmax(Δy/τ)).

    Returns 0 when there are fewer than 2 frames (no difference to compare).
    """
    if pred.shape != target.shape or pred.dim() != 5:
        raise InputError(f"ddr_loss needs two B×T×C×H×W tensors of one shape, got {tuple(pred.shape)} "
                         f"and {tuple(target.shape)}")
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
