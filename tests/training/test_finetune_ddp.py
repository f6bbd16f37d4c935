"""Data-parallel fine-tuning: two CPU processes under torchrun (gloo backend)."""

from __future__ import annotations

import json
import math
import subprocess
import sys

import torch
from helpers import TESTS, subprocess_env

import stzoo
from stzoo.zoo.hub import load_safetensors

WORKER = TESTS / "helpers" / "ddp_finetune_worker.py"


def test_torchrun_two_processes(tmp_path):
    env = subprocess_env(OMP_NUM_THREADS="1")
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node=2",
        str(WORKER),
        str(tmp_path),
    ]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert [r["world_size"] for r in ranks] == [2, 2]
    assert not any(r["initialized_after"] for r in ranks)  # finetune tore down the group it made
    # DDP kept the replicas identical, and the folder rank 0 wrote holds those weights
    w0, w1 = (load_safetensors(tmp_path / f"rank{r}.safetensors") for r in (0, 1))
    saved = stzoo.load(tmp_path / "model").model.state_dict()
    assert set(w0) == set(w1) == set(saved)
    assert all(torch.equal(w0[k], w1[k]) and torch.equal(w0[k], saved[k]) for k in w0)
    # each process trained on half of every epoch: 2 held-in videos × 17 clips = 34 → 17 per rank
    assert ranks[0]["steps"] == ranks[1]["steps"] == 2 * math.ceil(17 / 4)
    # losses and metrics were averaged over the processes: both ranks report the same numbers
    assert ranks[0]["losses"] == ranks[1]["losses"]
    v0, v1 = ranks[0]["val"], ranks[1]["val"]
    assert v0 == {**v1, "local_sequences": v0["local_sequences"]}
    assert v0["sequences"] == 17 and v0["local_sequences"] + v1["local_sequences"] == 17
    assert 0 < v0["local_sequences"] < 17
    # only rank 0 wrote: one log, whose steps are the global ones
    log = [json.loads(line) for line in (tmp_path / "model" / "log.jsonl").read_text().splitlines()]
    assert [e["step"] for e in log if "step" in e] == list(range(1, ranks[0]["steps"] + 1))
    assert torch.load(tmp_path / "model" / "checkpoint.pt", weights_only=False)["fingerprint"]["world_size"] == 2
