"""stzoo.bench.measure and `stzoo bench` (no timed assertions: only that numbers are produced)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

import stzoo
from stzoo.bench import BenchResult, PeakRSS, format_table, measure
from stzoo.cli import main
from stzoo.errors import InputError


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


def test_peak_rss_sees_a_large_allocation():
    with PeakRSS() as mem:
        big = torch.ones(64 * 2**20 // 4)  # 64 MiB, every page written
        del big
    if mem.mb is None:
        pytest.skip("peak RSS cannot be reset on this system (/proc/self/clear_refs)")
    assert mem.mb >= 48


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
        assert main(["predict", "tau-mmnist-s", "--input", str(tmp_path / "in.npy"), "--output", str(out),
                     "--impl", impl]) == 0
        outs[impl] = np.load(out)
    assert outs["reference"].shape == outs["fused"].shape == (10, 64, 64, 1)
    # uint8 outputs: rounding of values within 1e-4 of a .5 boundary may differ by one level
    assert np.abs(outs["reference"].astype(int) - outs["fused"].astype(int)).max() <= 1
