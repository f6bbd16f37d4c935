"""Run by tests/training/test_train_ddp.py in each of several processes (``RANK`` / ``WORLD_SIZE`` /
``MASTER_ADDR`` / ``MASTER_PORT`` set, as torchrun or any ``env://`` launch sets them): join the gloo group
once, then run :func:`stzoo.training.train.train` for every run of the plan file ``sys.argv[1]`` (a JSON list
of ``{"arch", "config", "out", "recipe", "kwargs"}``), one after another in the same group, and for an entry
``{"batchnorm": OUT}`` write what synchronised BatchNorm layers computed on this process's share of a batch to
``OUT/bn_rank<R>.pt`` (:func:`batchnorm_case`, which the test repeats on the whole batch in one process)."""

from __future__ import annotations

import json
import sys

import torch
import torch.distributed as dist

from stzoo.training.distributed import Dist, part, sync_batchnorm
from stzoo.training.train import Recipe, train

#: (BatchNorm class, input shape, momentum): every kind of BatchNorm, both running-average rules
BATCHNORM_CASES = [
    (torch.nn.BatchNorm1d, (6, 3, 5), 0.1),
    (torch.nn.BatchNorm2d, (5, 3, 4, 4), None),
    (torch.nn.BatchNorm3d, (6, 3, 2, 3, 3), 0.3),
]


def batchnorm_case(i: int, rank: int = 0, world: int = 1) -> dict[str, torch.Tensor]:
    """Case ``i`` on process ``rank``'s share of its batch: two training steps' outputs, the gradients of a
    fixed weighted sum of them (input's and parameters'), the running statistics after them."""
    cls, shape, momentum = BATCHNORM_CASES[i]
    g = torch.Generator().manual_seed(i)
    xs = [torch.randn(shape, generator=g) * 3 + 1 for _ in range(2)]
    ws = [torch.randn(shape, generator=g) for _ in range(2)]
    bn = cls(shape[1], momentum=momentum)
    with torch.no_grad():
        bn.weight.copy_(torch.rand(shape[1], generator=g) + 0.5)
        bn.bias.copy_(torch.randn(shape[1], generator=g))
    a, b = part(0, shape[0], rank, world)
    out: dict[str, torch.Tensor] = {}
    with sync_batchnorm(bn, Dist(rank, world)):
        for step, (x, w) in enumerate(zip(xs, ws)):
            x = x[a:b].clone().requires_grad_(True)
            y = bn(x)
            (y * w[a:b]).sum().backward()
            out[f"y{step}"], out[f"dx{step}"] = y.detach(), x.grad
    out["dweight"], out["dbias"] = bn.weight.grad, bn.bias.grad
    out["running_mean"], out["running_var"] = bn.running_mean, bn.running_var
    return out


def main() -> None:
    torch.set_num_threads(1)
    plan = json.loads(open(sys.argv[1]).read())
    dist.init_process_group("gloo")
    try:
        for run in plan:
            if "batchnorm" in run:
                rank, world = dist.get_rank(), dist.get_world_size()
                cases = [batchnorm_case(i, rank, world) for i in range(len(BATCHNORM_CASES))]
                torch.save(cases, f"{run['batchnorm']}/bn_rank{rank}.pt")
                continue
            train(
                run["arch"],
                run["config"],
                run["out"],
                recipe=Recipe(**run["recipe"]),
                device="cpu",
                progress=False,
                log_every=1,
                **run["kwargs"],
            )
    finally:
        dist.destroy_process_group()


if __name__ == "__main__":
    main()
