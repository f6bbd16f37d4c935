"""stzoo.tools.bench.measure and `stzoo bench` (no timed assertions: only that numbers are produced)."""

from __future__ import annotations

import json
import math
import subprocess
import sys

import numpy as np
import pytest
import torch
from helpers import subprocess_env

import stzoo
from stzoo.cli.main import main
from stzoo.errors import InputError
from stzoo.tools.bench import BenchResult, format_table, measure


def test_measure_by_name_both_impls():
    for impl in ("reference", "fused"):
        r = measure("convlstm-mmnist-s", impl=impl, batch=2, warmup=1, iters=2)
        assert isinstance(r, BenchResult)
        assert r.impl == impl and r.batch == 2 and r.device == "cpu" and r.dtype == "float32"
        assert r.latency_ms > 0 and math.isclose(r.seq_per_s, 2 / (r.latency_ms / 1e3), rel_tol=1e-9)
        d = r.to_dict()
        assert {"seq_per_s", "latency_ms", "peak_mem_mb", "impl", "torch_version"} <= set(d)
        json.dumps(d)


def test_measure_a_predictor_switches_its_impl():
    p = stzoo.load("tau-mmnist-s", impl="reference")
    r = measure(p, impl="auto", batch=1, warmup=0, iters=1)
    assert r.impl == "fused" and p.impl == "fused"


@pytest.mark.parametrize("kwargs", [dict(iters=0), dict(warmup=-1), dict(batch=0)])
def test_measure_rejects_bad_arguments(kwargs):
    with pytest.raises(InputError):
        measure("convlstm-mmnist-s", **{"warmup": 0, "iters": 1, **kwargs})


_PEAK_RSS = """
import torch
from stzoo.tools.bench import PeakRSS
with PeakRSS() as mem:
    big = torch.ones(64 * 2**20 // 4)  # 64 MiB, every page written
    del big
print(mem.mb)
"""


def test_peak_rss_sees_a_large_allocation():
    # In a fresh process: a worker that already ran a training step keeps freed heap pages resident
    # (stzoo.runtime.tune_allocator raises malloc's trim threshold), so 64 MiB could reuse them unseen.
    out = subprocess.run(
        [sys.executable, "-c", _PEAK_RSS],
        env=subprocess_env(OMP_NUM_THREADS="1"),
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    ).stdout.split()[-1]
    if out == "None":
        pytest.skip("peak RSS cannot be reset on this system (/proc/self/clear_refs)")
    assert float(out) >= 48


def test_format_table():
    r = measure("convlstm-mmnist-s", impl="fused", batch=1, warmup=0, iters=1)
    table = format_table([r])
    assert table.splitlines()[0].split()[:3] == ["model", "impl", "batch"]
    assert "convlstm-mmnist-s" in table and "fused" in table


def test_cli_bench_json(capsys):
    assert main(["bench", "convlstm-mmnist-s", "--batch", "1", "--iters", "1", "--warmup", "0", "--json"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["impl"] for r in rows] == ["reference", "fused"]
    assert all(r["name"] == "convlstm-mmnist-s" and r["seq_per_s"] > 0 for r in rows)


def test_cli_predict_impl(tmp_path, capsys):
    frames = np.zeros((10, 64, 64), np.uint8)
    frames[:, 20:30, 20:30] = 255
    np.save(tmp_path / "in.npy", frames)
    outs = {}
    for impl in ("reference", "fused"):
        out = tmp_path / f"{impl}.npy"
        assert (
            main(["predict", "tau-mmnist-s", "--input", str(tmp_path / "in.npy"), "--output", str(out), "--impl", impl])
            == 0
        )
        outs[impl] = np.load(out)
    assert outs["reference"].shape == outs["fused"].shape == (10, 64, 64)  # the input's layout, THW
    # uint8 outputs: rounding of values within 1e-4 of a .5 boundary may differ by one level
    assert np.abs(outs["reference"].astype(int) - outs["fused"].astype(int)).max() <= 1


# ---- stzoo bench --train -------------------------------------------------------------------------
TINY_TAU = {"hid_S": 4, "hid_T": 8, "N_S": 2, "N_T": 2, "mlp_ratio": 2.0}


def test_measure_train_fields():
    from stzoo.runtime import allocator_description
    from stzoo.tools.bench import TrainBenchResult, measure_train

    r = measure_train("tau-mmnist-s", batch=2, warmup=0, iters=1, config=TINY_TAU)
    assert isinstance(r, TrainBenchResult)
    assert (r.name, r.arch, r.batch, r.device, r.dtype) == ("tau-mmnist-s", "tau", 2, "cpu", "float32")
    assert r.step_ms > 0 and math.isclose(r.steps_per_s, 1e3 / r.step_ms, rel_tol=1e-9)
    assert math.isclose(r.seq_per_s, 2 * r.steps_per_s, rel_tol=1e-9)
    assert math.isfinite(r.loss) and r.loss > 0
    assert (r.frames_in, r.frames_out, r.height, r.width) == (10, 10, 64, 64)
    assert r.cpu and isinstance(r.cpu_flags, list) and isinstance(r.bf16_units, list)
    assert r.allocator == allocator_description() and r.threads == torch.get_num_threads()
    json.dumps(r.to_dict())


def test_measure_train_bf16_autocast_and_auto(monkeypatch):
    import stzoo.runtime
    from stzoo.tools.bench import measure_train

    r = measure_train("tau-mmnist-s", batch=1, warmup=0, iters=1, dtype="bfloat16", config=TINY_TAU)
    assert r.dtype == "bfloat16" and math.isfinite(r.loss)
    monkeypatch.setattr(stzoo.runtime, "read_cpu_flags", lambda: frozenset({"avx2"}))
    assert measure_train("tau-mmnist-s", batch=1, warmup=0, iters=1, dtype="auto", config=TINY_TAU).dtype == "float32"
    monkeypatch.setattr(stzoo.runtime, "read_cpu_flags", lambda: frozenset({"avx2", "amx_bf16"}))
    assert measure_train("tau-mmnist-s", batch=1, warmup=0, iters=1, dtype="auto", config=TINY_TAU).dtype == "bfloat16"


@pytest.mark.parametrize("kwargs", [{"iters": 0}, {"warmup": -1}, {"batch": 0}, {"dtype": "float16"}])
def test_measure_train_rejects_bad_arguments(kwargs):
    from stzoo.tools.bench import measure_train

    with pytest.raises(InputError):
        measure_train("tau-mmnist-s", **{"warmup": 0, "iters": 1, "config": TINY_TAU, **kwargs})


def test_make_train_step_trains():
    from stzoo.tools.bench import make_train_step

    step, setup = make_train_step("tau-mmnist-s", batch=2, config=TINY_TAU)
    assert setup["batch"] == 2 and setup["dtype"] == "float32"
    losses = [step() for _ in range(3)]
    assert all(math.isfinite(v) for v in losses) and losses[-1] < losses[0]  # the same batch: it learns


@pytest.fixture
def tiny_train(monkeypatch):
    """stzoo bench --train on a tiny TAU config (the CLI takes zoo names; the shape is what is tested)."""
    import stzoo.tools.bench

    real = stzoo.tools.bench.measure_train
    seen = []

    def tiny(name, **kw):
        seen.append(kw)
        return real(name, config=TINY_TAU, **kw)

    monkeypatch.setattr(stzoo.tools.bench, "measure_train", tiny)
    return seen


def test_cli_bench_train_json(capsys, tiny_train):
    assert main(["bench", "tau-mmnist-s", "--train", "--batch", "1", "--iters", "1", "--warmup", "0", "--json"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["dtype"] for r in rows] == ["float32", "bfloat16"]  # the default: both
    for r in rows:
        assert r["name"] == "tau-mmnist-s" and r["batch"] == 1 and r["steps_per_s"] > 0 and r["seq_per_s"] > 0
        assert {"cpu", "cpu_flags", "bf16_units", "allocator", "step_ms", "threads", "torch_version"} <= set(r)
        assert r["allocator"].startswith(("glibc malloc", "default allocator"))
    assert [kw["iters"] for kw in tiny_train] == [1, 1]


def test_cli_bench_train_table_and_defaults(capsys, tiny_train):
    assert main(["bench", "tau-mmnist-s", "--train", "--dtype", "float32", "--iters", "1", "--warmup", "0"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("# CPU: ") and "allocator: " in out[0] and "flags: " in out[0]
    assert out[1].split()[:4] == ["model", "batch", "device", "dtype"]
    assert out[2].split()[:4] == ["tau-mmnist-s", "16", "cpu", "float32"]  # the recipe's batch size
    assert tiny_train[0]["batch"] is None and tiny_train[0]["warmup"] == 0


def test_cli_bench_dtype_checked(capsys):
    assert main(["bench", "tau-mmnist-s", "--train", "--dtype", "float16"]) == 2
    assert "--dtype float16" in capsys.readouterr().err


def test_cli_bench_help_gives_every_default(capsys):
    with pytest.raises(SystemExit):
        main(["bench", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    for option in ("--train", "--impl", "--batch", "--device", "--dtype", "--warmup", "--iters", "--json"):
        assert option in text
    assert text.count("(default:") >= 8
