"""Data-parallel `stzoo train`: CPU processes in a gloo group, launched the env:// way (and by torchrun).

What is checked: the same global batch gives the same losses on 2 processes as on 1 (BatchNorm
synchronised; not synchronised, they differ), 2 × 2 ≡ 1 × 4 ≡ 1 × 2 × accumulate 2 for a model without
BatchNorm, a checkpoint of 2 processes resumes on 1, and a killed process stops the other one cleanly.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import TESTS, subprocess_env
from helpers.ddp_train_worker import batchnorm_case
from helpers.fake_mnist import fake_digits, write_idx_gz
from test_train import LSTM_CFG, TAU_CFG

from stzoo.training.distributed import Dist, part, sync_batchnorm
from stzoo.training.train import Recipe, train

WORKER = TESTS / "helpers" / "ddp_train_worker.py"
# float32 sums taken in another order (two processes' shares, then all-reduced) differ from one
# process's in the last bits: over these 4 AdamW steps the losses agreed to 3e-7 (relative) when measured;
# BatchNorm left unsynchronised moved them by 9e-5
RTOL = 1e-5


@pytest.fixture(scope="module")
def mnist_dir(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("fake_mnist_ddp")
    rng = np.random.default_rng(0)
    # digits from faint to bright: sequences whose statistics differ, as BatchNorm's shares of a batch would
    digits = (fake_digits(rng, 64) * rng.uniform(0.05, 1.0, (64, 1, 1))).astype(np.uint8)
    write_idx_gz(root / "train-images-idx3-ubyte.gz", digits)
    write_idx_gz(root / "train-labels-idx1-ubyte.gz", rng.integers(0, 10, 64).astype(np.uint8))
    write_idx_gz(root / "t10k-images-idx3-ubyte.gz", fake_digits(rng, 32))
    write_idx_gz(root / "t10k-labels-idx1-ubyte.gz", rng.integers(0, 10, 32).astype(np.uint8))
    return root


@pytest.fixture(autouse=True)
def one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _launch(world: int, args: list[str], tmp: Path, strip: bool = False) -> list[subprocess.Popen]:
    """``world`` processes of ``python args``, with the variables any env:// launcher sets (``strip``:
    one process without them, e.g. torchrun, which sets them for its own)."""
    port = str(_free_port())
    procs = []
    for rank in range(world):
        e = subprocess_env(OMP_NUM_THREADS="1")
        for k in ("RANK", "LOCAL_RANK", "WORLD_SIZE", "LOCAL_WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT"):
            e.pop(k, None)
        if not strip:
            e.update(
                RANK=str(rank),
                LOCAL_RANK=str(rank),
                WORLD_SIZE=str(world),
                LOCAL_WORLD_SIZE=str(world),
                MASTER_ADDR="127.0.0.1",
                MASTER_PORT=port,
            )
        log = open(tmp / f"rank{rank}.log", "w")
        procs.append(subprocess.Popen([sys.executable, *args], env=e, stdout=log, stderr=subprocess.STDOUT))
    return procs


def _wait(procs: list[subprocess.Popen], tmp: Path, timeout: float = 240) -> None:
    for rank, p in enumerate(procs):
        rc = p.wait(timeout=timeout)
        assert rc == 0, (tmp / f"rank{rank}.log").read_text()[-4000:]


def _losses(out: Path) -> np.ndarray:
    log = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines() if line.strip()]
    return np.array([r["loss"] for r in log])


def _recipe(**kw) -> Recipe:
    base = dict(lr=1e-2, epochs=2, epoch_size=8, batch_size=4, frames_in=4, frames_out=4, loss="mse+ddr", alpha=0.1)
    return Recipe(**{**base, **kw})


def _single(arch, cfg, out, recipe, mnist_dir, **kw) -> dict:
    return train(
        arch,
        cfg,
        out,
        recipe=recipe,
        dataset_options={"mnist_dir": mnist_dir},
        device="cpu",
        eval_sequences=0,
        progress=False,
        log_every=1,
        **kw,
    )


def test_part_splits_a_global_batch_like_tensor_split():
    for n in range(1, 12):
        for world in range(1, 5):
            got = [part(3, 3 + n, r, world) for r in range(world)]
            want = [(int(c[0]) + 3, int(c[-1]) + 4) if len(c) else None for c in torch.arange(n).tensor_split(world)]
            assert [g if g[1] > g[0] else None for g in got] == want


def test_sync_batchnorm_is_a_no_op_alone_and_leaves_the_model_as_it_was():
    model = torch.nn.Sequential(torch.nn.Conv2d(1, 2, 1), torch.nn.BatchNorm2d(2))
    with sync_batchnorm(model, Dist()) as n:
        assert n == 0 and type(model[1]) is torch.nn.BatchNorm2d
    x = torch.randn(4, 1, 3, 3)
    want = model(x)
    with sync_batchnorm(model, Dist(rank=0, world=2)) as n:  # converted; without a group it is plain BatchNorm
        assert n == 1 and isinstance(model[1], torch.nn.BatchNorm2d) and type(model[1]) is not torch.nn.BatchNorm2d
        torch.testing.assert_close(model(x), want)
    assert type(model[1]) is torch.nn.BatchNorm2d
    assert set(model.state_dict()) == {"0.weight", "0.bias", "1.weight", "1.bias", "1.running_mean",
                                       "1.running_var", "1.num_batches_tracked"}  # fmt: skip


def test_two_processes_match_one_and_resume_on_one(tmp_path, mnist_dir):
    """One torchrun launch of 2 processes, four runs and the BatchNorm cases in its group; the references
    run here, in one process."""
    tau, lstm = _recipe(), _recipe(loss="mse", scheduled_sampling=0.0)
    runs = {
        "tau_sync": ("tau", TAU_CFG, tau, {}),
        "tau_nosync": ("tau", TAU_CFG, tau, {"sync_batchnorm": False}),
        "lstm": ("convlstm", LSTM_CFG, lstm, {}),
        "tau_half": ("tau", TAU_CFG, tau, {"max_steps": 2}),  # then resumed on one process below
    }
    plan = [
        {
            "arch": arch,
            "config": cfg,
            "out": str(tmp_path / name),
            "recipe": asdict(recipe),
            "kwargs": {"dataset_options": {"mnist_dir": str(mnist_dir)}, "eval_sequences": 0, **kw},
        }
        for name, (arch, cfg, recipe, kw) in runs.items()
    ]
    plan.append({"batchnorm": str(tmp_path)})
    (tmp_path / "plan.json").write_text(json.dumps(plan))
    torchrun = ["-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]
    procs = _launch(1, [*torchrun, str(WORKER), str(tmp_path / "plan.json")], tmp_path, strip=True)
    # meanwhile, the one-process references
    _single("tau", TAU_CFG, tmp_path / "one_tau", tau, mnist_dir)
    _single("tau", TAU_CFG, tmp_path / "one_tau_acc", tau, mnist_dir, accumulate=2)
    _single("convlstm", LSTM_CFG, tmp_path / "one_lstm", lstm, mnist_dir)
    _single("convlstm", LSTM_CFG, tmp_path / "one_lstm_acc", lstm, mnist_dir, accumulate=2)
    _wait(procs, tmp_path)

    # synchronised BatchNorm layers (1d, 2d, 3d; both running-average rules) on 2 shares ≡ one on the batch
    shares = [torch.load(tmp_path / f"bn_rank{r}.pt", weights_only=True) for r in (0, 1)]
    for i, (r0, r1) in enumerate(zip(*shares)):
        want = batchnorm_case(i)
        for k in ("y0", "y1", "dx0", "dx1"):
            torch.testing.assert_close(torch.cat([r0[k], r1[k]]), want[k], rtol=1e-5, atol=1e-5)
        for k in ("dweight", "dbias"):  # DistributedDataParallel sums (then averages) the parameters' ones
            torch.testing.assert_close(r0[k] + r1[k], want[k], rtol=1e-5, atol=1e-5)
        for k in ("running_mean", "running_var"):
            torch.testing.assert_close(r0[k], want[k], rtol=1e-5, atol=1e-6)
            torch.testing.assert_close(r1[k], want[k], rtol=1e-5, atol=1e-6)

    one, one_acc = _losses(tmp_path / "one_tau"), _losses(tmp_path / "one_tau_acc")
    assert len(one) == 4
    names = ("tau_sync", "tau_nosync", "one_tau_acc")
    deviation = {n: float(np.abs(_losses(tmp_path / n) / one - 1).max()) for n in names}
    print("relative loss deviation from one process:", deviation)
    # BatchNorm synchronised: 2 processes × 2 sequences train as 1 process × 4
    np.testing.assert_allclose(_losses(tmp_path / "tau_sync"), one, rtol=RTOL)
    a = torch.load(tmp_path / "tau_sync" / "checkpoint.pt", weights_only=True)
    b = torch.load(tmp_path / "one_tau" / "checkpoint.pt", weights_only=True)
    assert a["step"] == b["step"] == 4 and a["world_size"] == 2 and a["sequences_seen"] == 16
    for k in b["model"]:  # the weights, and BatchNorm's running statistics, too
        torch.testing.assert_close(a["model"][k], b["model"][k], rtol=1e-3, atol=1e-5)
    # each process normalising its own 2 sequences is another model: it trains like micro-batches of 2
    nosync = _losses(tmp_path / "tau_nosync")
    assert np.abs(nosync / one - 1).max() > 5 * RTOL
    np.testing.assert_allclose(nosync, one_acc, rtol=RTOL)
    # no BatchNorm: 2 × 2 ≡ 1 × 4 ≡ 1 × 2 × accumulate 2
    lstm_one = _losses(tmp_path / "one_lstm")
    np.testing.assert_allclose(_losses(tmp_path / "lstm"), lstm_one, rtol=RTOL)
    np.testing.assert_allclose(_losses(tmp_path / "one_lstm_acc"), lstm_one, rtol=RTOL)
    # 2 steps on 2 processes, then the other 2 on 1: the same run
    half = tmp_path / "tau_half"
    assert torch.load(half / "checkpoint.pt", weights_only=True)["step"] == 2
    summary = _single("tau", TAU_CFG, half, tau, mnist_dir)
    assert summary["step"] == 4
    np.testing.assert_allclose(_losses(half), one, rtol=RTOL)
    history = json.loads((half / "run.json").read_text())["parallel_history"]
    assert [(h["from_step"], h["processes"]) for h in history] == [(0, 2), (2, 1)]


def test_a_killed_process_stops_the_job_and_it_resumes_on_one(tmp_path, mnist_dir):
    out = tmp_path / "run"
    recipe = _recipe(epochs=200, epoch_size=4, batch_size=2)  # far more steps than the test waits for
    args = [
        "-m",
        "stzoo",
        "train",
        "tau-mmnist-s",
        "--out",
        str(out),
        "--mnist-dir",
        str(mnist_dir),
        "--device",
        "cpu",
        "--eval-sequences",
        "1",
        "--checkpoint-every",
        "0.01",
        "--dist-timeout",
        "1",
    ]
    cli = ("epochs", "epoch_size", "batch_size", "lr", "loss", "alpha", "seed")
    args += [f"--{k.replace('_', '-')}={v}" for k, v in asdict(recipe).items() if k in cli]
    args += [f"--config={k}={json.dumps(v)}" for k, v in TAU_CFG.items() if k != "frames"]
    procs = _launch(2, args, tmp_path)
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline and not (out / "checkpoint.pt").exists():
        assert procs[0].poll() is None, (tmp_path / "rank0.log").read_text()[-3000:]
        time.sleep(0.2)
    assert (out / "checkpoint.pt").exists()
    os.kill(procs[1].pid, signal.SIGKILL)
    t0 = time.monotonic()
    rc = procs[0].wait(timeout=120)  # within the 60 s timeout (+ slack): no hang
    waited = time.monotonic() - t0
    procs[1].wait()
    text = (tmp_path / "rank0.log").read_text()
    assert rc == 2, text[-3000:]
    assert "error: process 0 of 2 stopped" in text and "run the same command again" in text, text[-3000:]
    assert waited < 90
    # the checkpoint is whole (written atomically by rank 0) and resumes on one process
    ck = torch.load(out / "checkpoint.pt", weights_only=True)
    assert ck["world_size"] == 2 and ck["step"] >= 1
    env = subprocess_env(OMP_NUM_THREADS="1")
    for k in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(k, None)
    done = subprocess.run(
        [sys.executable, *args, "--max-steps", str(ck["step"] + 2)], env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert json.loads(done.stdout)["step"] == ck["step"] + 2
    history = json.loads((out / "run.json").read_text())["parallel_history"]
    assert [h["processes"] for h in history] == [2, 1]
