"""Data-parallel training under ``torchrun``: joining the process group, summing over processes.

Launched with ``torchrun`` (``WORLD_SIZE`` > 1 in the environment), every process joins the group
(gloo on CPU, NCCL on GPUs) and works on its own device (``cuda:LOCAL_RANK``); alone, it is a group of one
and every helper is a no-op.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import torch

__all__ = ["Dist", "setup"]


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

            dist.destroy_process_group()


def setup(device: str | torch.device | None) -> tuple[Dist, torch.device]:
    """Join the process group when run under torchrun; pick the device."""
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
        dist.init_process_group("nccl" if dev.type == "cuda" else "gloo")
    return Dist(dist.get_rank(), dist.get_world_size(), owned), dev
