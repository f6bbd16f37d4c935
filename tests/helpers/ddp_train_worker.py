"""Run by tests/training/test_train_ddp.py in each of several processes (``RANK`` / ``WORLD_SIZE`` /
``MASTER_ADDR`` / ``MASTER_PORT`` set, as torchrun or any ``env://`` launch sets them): join the gloo group
once, then run :func:`stzoo.training.train.train` for every run of the plan file ``sys.argv[1]`` (a JSON list
of ``{"arch", "config", "out", "recipe", "kwargs"}``), one after another in the same group."""

from __future__ import annotations

import json
import sys

import torch
import torch.distributed as dist

from stzoo.training.train import Recipe, train


def main() -> None:
    torch.set_num_threads(1)
    plan = json.loads(open(sys.argv[1]).read())
    dist.init_process_group("gloo")
    try:
        for run in plan:
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
