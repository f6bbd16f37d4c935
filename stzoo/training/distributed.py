"""Data-parallel training under ``torchrun`` (or any ``env://`` launch): the group, the split, SyncBatchNorm.

Launched with ``torchrun`` or any standard :mod:`torch.distributed` launch (``WORLD_SIZE`` > 1 and
``RANK`` / ``LOCAL_RANK`` / ``MASTER_ADDR`` / ``MASTER_PORT`` in the environment, one node or many), every
process joins the group (gloo on CPU, NCCL on GPUs, with a timeout so a lost peer ends the job instead of
hanging it) and works on its own device (``cuda:LOCAL_RANK``); alone, it is a group of one and every helper
is a no-op.

What the training entry points share:

* :func:`part` splits a *global* batch among the processes (and :func:`data_parallel` wraps the model in
  ``DistributedDataParallel``), so a run's batch, schedule and checkpoints do not depend on how many
  processes share it.
* :func:`sync_batchnorm` makes every BatchNorm layer of a model (any architecture: nothing is looked up by
  name) normalise with the statistics of the whole global batch, as one process would, instead of its own
  share. It works on the CPU (gloo) as on GPUs; ``torch.nn.SyncBatchNorm`` only runs on GPUs.
* :meth:`Dist.from_main` gives every process rank 0's numbers, so decisions taken on a clock (the time
  budget, when to checkpoint) are the same everywhere.
* :func:`peers_lost` turns a collective that failed because another process died (or stopped answering
  within the timeout) into one :class:`PeerLostError` saying how to resume.
"""

from __future__ import annotations

import datetime
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from stzoo.errors import StzooError

__all__ = [
    "DEFAULT_TIMEOUT_S",
    "Dist",
    "PeerLostError",
    "data_parallel",
    "part",
    "peers_lost",
    "setup",
    "sync_batchnorm",
]

#: how long a collective waits for the other processes before the job stops (seconds)
DEFAULT_TIMEOUT_S = 1800.0


class PeerLostError(StzooError, RuntimeError):
    """Another process of a data-parallel job died or stopped answering: this one stops too."""


@dataclass
class Dist:
    """This process's place in the group: ``rank`` of ``world`` processes."""

    rank: int = 0
    world: int = 1
    owned: bool = False  # we initialised the process group, so we tear it down

    @property
    def main(self) -> bool:
        """Whether this is rank 0, the process that writes files."""
        return self.rank == 0

    def all_sum(self, values: list[float], device: torch.device) -> list[float]:
        """``values`` summed element-wise over all processes."""
        if self.world == 1:
            return values
        import torch.distributed as dist

        t = torch.tensor(values, dtype=torch.float64, device=device)
        dist.all_reduce(t)
        return t.tolist()

    def from_main(self, values: list[float], device: torch.device) -> list[float]:
        """Rank 0's ``values`` on every process (each passes its own; rank 0's win)."""
        if self.world == 1:
            return values
        import torch.distributed as dist

        t = torch.tensor(values, dtype=torch.float64, device=device)
        dist.broadcast(t, 0)
        return t.tolist()

    def gather(self, obj: Any) -> list[Any]:
        """Every process's ``obj``, in rank order."""
        if self.world == 1:
            return [obj]
        import torch.distributed as dist

        out: list[Any] = [None] * self.world
        dist.all_gather_object(out, obj)
        return out

    def barrier(self) -> None:
        """Wait for every process."""
        if self.world > 1:
            import torch.distributed as dist

            dist.barrier()

    def close(self) -> None:
        """Leave the process group if this process made it."""
        if self.owned:
            import torch.distributed as dist

            if dist.is_initialized():
                dist.destroy_process_group()


def setup(device: str | torch.device | None, timeout_s: float = DEFAULT_TIMEOUT_S) -> tuple[Dist, torch.device]:
    """Join the process group when launched data-parallel (``WORLD_SIZE`` > 1); pick the device.

    ``timeout_s``: how long any collective waits for the other processes before it fails (the job then
    stops with a :class:`PeerLostError` instead of hanging)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        dev = (
            torch.device(device) if device is not None else torch.device("cuda" if torch.cuda.is_available() else "cpu")
        )
        return Dist(), dev
    import torch.distributed as dist

    local = int(os.environ.get("LOCAL_RANK", "0"))
    if device is None:
        dev = torch.device(f"cuda:{local}") if torch.cuda.is_available() else torch.device("cpu")
    else:
        dev = torch.device(device)
        if dev.type == "cuda" and dev.index is None:
            dev = torch.device(f"cuda:{local}")
    owned = not dist.is_initialized()
    if owned:
        if dev.type == "cuda":
            torch.cuda.set_device(dev)
        dist.init_process_group(
            "nccl" if dev.type == "cuda" else "gloo", timeout=datetime.timedelta(seconds=float(timeout_s))
        )
    return Dist(dist.get_rank(), dist.get_world_size(), owned), dev


def part(lo: int, hi: int, rank: int, world: int) -> tuple[int, int]:
    """Process ``rank``'s share ``[a, b)`` of the global batch ``[lo, hi)``: contiguous, in rank order,
    sizes differing by at most one (as :meth:`torch.Tensor.tensor_split` splits)."""
    n = hi - lo
    base, extra = divmod(n, world)
    a = lo + rank * base + min(rank, extra)
    return a, a + base + (1 if rank < extra else 0)


def data_parallel(model: nn.Module, dist_: Dist, device: torch.device) -> nn.Module:
    """``model`` wrapped in ``DistributedDataParallel`` when there are several processes (it keeps the
    replicas' parameters identical by averaging gradients), else ``model`` itself."""
    if dist_.world == 1:
        return model
    from torch.nn.parallel import DistributedDataParallel

    return DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)


# ---- synchronised BatchNorm ---------------------------------------------------------------------
class _AllReduceSum(torch.autograd.Function):
    """Sum over the processes, differentiable: the gradient of a sum that every process uses is the sum
    of their gradients."""

    @staticmethod
    def forward(ctx: Any, t: Tensor) -> Tensor:  # noqa: D102
        import torch.distributed as dist

        t = t.clone(memory_format=torch.contiguous_format)
        dist.all_reduce(t)
        return t

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> Tensor:  # noqa: D102
        import torch.distributed as dist

        grad = grad.clone(memory_format=torch.contiguous_format)
        dist.all_reduce(grad)
        return grad


def _group_size() -> int:
    import torch.distributed as dist

    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def _synced_batch_norm(bn: nn.modules.batchnorm._BatchNorm, x: Tensor) -> Tensor:
    """BatchNorm in training mode with the mean and variance of the batch over every process (float32
    statistics, two passes), updating the running statistics as ``torch.nn.BatchNorm*`` does."""
    bn._check_input_dim(x)
    c = x.shape[1]
    dims = [0, *range(2, x.dim())]
    shape = [1, c] + [1] * (x.dim() - 2)
    xf = x.float()
    local = torch.cat([xf.sum(dims), xf.new_full((1,), float(xf.numel() // max(c, 1)))])
    total = _AllReduceSum.apply(local)
    n = total[c].detach()
    if float(n) <= 1:
        raise ValueError(f"Expected more than 1 value per channel when training, got input size {tuple(x.shape)}")
    mean = total[:c] / n
    centred = xf - mean.view(shape)
    var = _AllReduceSum.apply((centred * centred).sum(dims)) / n
    y = centred * torch.rsqrt(var + bn.eps).view(shape)
    if bn.affine:
        y = y * bn.weight.view(shape) + bn.bias.view(shape)
    if bn.track_running_stats and bn.running_mean is not None and bn.running_var is not None:
        with torch.no_grad():
            if bn.num_batches_tracked is not None:
                bn.num_batches_tracked.add_(1)
            m = bn.momentum if bn.momentum is not None else 1.0 / float(bn.num_batches_tracked)
            bn.running_mean.mul_(1 - m).add_(mean.detach().to(bn.running_mean.dtype), alpha=m)
            unbiased = var.detach() * (n / (n - 1))
            bn.running_var.mul_(1 - m).add_(unbiased.to(bn.running_var.dtype), alpha=m)
    return y.to(x.dtype)


class _SyncMixin:
    """Put before a BatchNorm class: in training mode with several processes, normalise over all of them."""

    def forward(self, x: Tensor) -> Tensor:  # noqa: D102
        if self.training and _group_size() > 1:  # type: ignore[attr-defined]
            return _synced_batch_norm(self, x)  # type: ignore[arg-type]
        return super().forward(x)  # type: ignore[misc]


_SYNCED: dict[type, type] = {}


def _synced_class(cls: type) -> type:
    if cls not in _SYNCED:
        _SYNCED[cls] = type(f"Synced{cls.__name__}", (_SyncMixin, cls), {"_stzoo_plain": cls})
    return _SYNCED[cls]


@contextmanager
def sync_batchnorm(model: nn.Module, dist_: Dist) -> Iterator[int]:
    """Inside it, every BatchNorm layer of ``model`` in training mode normalises with the statistics of
    the whole global batch (all processes' shares), when there are several processes; yields how many
    layers that is (0 with one process, or a model without BatchNorm).

    A process that normalises its share with its own statistics trains another model than one process
    with the whole batch (OpenSTL measured SimVP going from 26.73 MSE on one GPU to 30.01 / 31.36 with
    the batch of 16 split over 2 / 4, their docs). The layers keep their class (an ``isinstance`` check
    still sees ``nn.BatchNorm2d``), their parameter and buffer names (checkpoints are unchanged) and
    their evaluation-mode behaviour; the change is undone on leaving."""
    if dist_.world == 1:
        yield 0
        return
    norms = [
        m
        for m in model.modules()
        if isinstance(m, nn.modules.batchnorm._BatchNorm) and not isinstance(m, (nn.SyncBatchNorm, _SyncMixin))
    ]
    for m in norms:
        m.__class__ = _synced_class(type(m))
    try:
        yield len(norms)
    finally:
        for m in norms:
            m.__class__ = m._stzoo_plain  # type: ignore[assignment]


# ---- a lost peer --------------------------------------------------------------------------------
@contextmanager
def peers_lost(dist_: Dist, resume_hint: str) -> Iterator[None]:
    """Inside it, a collective that fails because another process died or stopped answering (within
    the group's timeout) raises one :class:`PeerLostError` ending with ``resume_hint``."""
    if dist_.world == 1:
        yield
        return
    try:
        yield
    except (RuntimeError, OSError) as exc:
        if isinstance(exc, StzooError) or not _collective_failure(exc):
            raise
        text = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else type(exc).__name__
        raise PeerLostError(
            f"process {dist_.rank} of {dist_.world} stopped: a collective operation with the other processes "
            f"failed ({type(exc).__name__}: {text}); another process has probably died or stopped answering. "
            + resume_hint
        ) from exc


#: what the messages of a failed collective contain (gloo and NCCL raise plain RuntimeErrors)
_COLLECTIVE_MARKERS = ("gloo", "nccl", "connection closed", "connection reset", "timed out", "broken pipe", "socket")


def _collective_failure(exc: BaseException) -> bool:
    """Whether ``exc`` came from a collective operation that another process failed to join."""
    import torch.distributed as dist

    if isinstance(exc, getattr(dist, "DistError", ())):
        return True
    text = str(exc).lower()
    return any(m in text for m in _COLLECTIVE_MARKERS)
