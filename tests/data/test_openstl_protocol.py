"""OpenSTL's metric conventions, WeatherBench's latitude-weighted RMSE, the data doctor and `stzoo evaluate` /
`stzoo data check` on files in OpenSTL's layout: every number here is checked against a hand computation."""

from __future__ import annotations

import contextlib
import io
import json
import math
import sys

import numpy as np
import pytest
import torch

from stzoo.cli.main import main
from stzoo.cli.protocol import openstl_reported, protocol_notes
from stzoo.data.doctor import check_array, to_clips
from stzoo.metrics import (
    LatWeightedRMSE,
    OpenSTLAccumulator,
    OpenSTLConvention,
    frame_psnr_uint8_wrap,
    frame_psnr_unit,
    skimage_ssim,
)


def _run(*argv: str) -> tuple[int, str]:
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(io.StringIO()):
        rc = main(list(argv))
    return rc, out.getvalue()


# ---- metrics ----------------------------------------------------------------------------------------


def test_openstl_mse_mae_are_per_frame_sums_on_unclipped_values():
    pred = torch.full((1, 2, 1, 4, 4), 1.5)  # above 1: OpenSTL scores MSE / MAE before clipping
    true = torch.zeros(1, 2, 1, 4, 4)
    acc = OpenSTLAccumulator(OpenSTLConvention(metrics=("mse", "mae", "psnr")))
    acc.update(pred, true)
    r = acc.result()
    assert r["mse"] == pytest.approx(16 * 1.5**2) and r["mae"] == pytest.approx(16 * 1.5)
    assert r["psnr"] == pytest.approx(0.0)  # clipped to 1 first: MSE 1 → 0 dB


def test_openstl_spatial_norm_rmse_and_denormalisation():
    pred = torch.zeros(2, 1, 1, 2, 2)
    true = torch.ones(2, 1, 1, 2, 2)
    acc = OpenSTLAccumulator(OpenSTLConvention(metrics=("mse", "rmse", "mae"), spatial_norm=True), mean=5.0, std=3.0)
    acc.update(pred, true)
    r = acc.result()
    # errors of 3 physical units on every value: per-value MSE 9, RMSE 3, MAE 3
    assert r == pytest.approx({"mse": 9.0, "rmse": 3.0, "mae": 3.0})


def test_openstl_psnr_is_infinite_for_an_exact_frame_and_matches_the_formula():
    true = torch.rand(1, 2, 1, 8, 8)
    assert math.isinf(float(frame_psnr_unit(true, true)[0, 0]))
    pred = (true + 0.1).clamp(0, 1)
    mse = float((pred - true).pow(2).mean())
    assert float(frame_psnr_unit(pred[:, :1], true[:, :1])[0, 0]) == pytest.approx(
        -10 * math.log10(float((pred[:, :1] - true[:, :1]).pow(2).mean())), rel=1e-6
    )
    assert mse > 0


def test_simvp_uint8_psnr_wraps_around_openstl_issue_191():
    pred = torch.full((1, 1, 1, 4, 4), 0.5)  # uint8(127.5) = 127
    true = torch.zeros(1, 1, 1, 4, 4)
    # in 8-bit arithmetic 127² = 16129 ≡ 1 (mod 256): a mean "squared error" of 1
    assert float(frame_psnr_uint8_wrap(pred, true)[0, 0]) == pytest.approx(20 * math.log10(255))
    assert float(frame_psnr_unit(pred, true)[0, 0]) == pytest.approx(-10 * math.log10(0.25))


def test_skimage_ssim_constant_frames_by_hand():
    a, b, r = 0.2, 0.6, 2.0
    pred = torch.full((1, 1, 1, 9, 9), a, dtype=torch.float64)
    true = torch.full((1, 1, 1, 9, 9), b, dtype=torch.float64)
    c1 = (0.01 * r) ** 2
    want = (2 * a * b + c1) / (a * a + b * b + c1)  # no variance: the contrast term is c2 / c2
    assert float(skimage_ssim(pred, true, r)[0, 0]) == pytest.approx(want, rel=1e-9)
    assert float(skimage_ssim(true, true, 1.0)[0, 0]) == pytest.approx(1.0)


def test_lat_weighted_rmse_by_hand():
    lats = [-60.0, 0.0, 60.0]
    w = np.cos(np.deg2rad(lats))
    w = w / w.mean()
    err = torch.zeros(1, 1, 1, 3, 2)
    err[0, 0, 0, 0] = 1.0  # error 1 (model units) on the southern row only
    metric = LatWeightedRMSE(lats, mean=10.0, std=2.0)
    metric.update(err, torch.zeros_like(err))
    want = math.sqrt(w[0] * 4.0 * 2 / 6)  # (2 units)² on 2 of 6 values, weighted by the row's weight
    assert metric.result()["per_lead_time"][0][0] == pytest.approx(want)
    assert metric.result()["mean"] == pytest.approx(want)


# ---- the data doctor --------------------------------------------------------------------------------


def test_doctor_flags_unnormalised_values_issue_31():
    x = (np.random.default_rng(0).random((3, 20, 1, 16, 16)) * 5000).astype(np.float32)
    rep = check_array(x, layout="NTCHW")
    assert not rep.ok and any("not normalised" in p for p in rep.problems)
    assert rep.copy_last["mse_per_value"] > 1.0


def test_doctor_copy_last_baseline_by_hand_and_split():
    x = np.zeros((4, 20, 1, 8, 8), np.uint8)
    x[:, 10:] = 51  # the future frames are 0.2 brighter than the last observed one
    rep = check_array(x, layout="NTCHW")
    assert rep.ok, rep.problems
    assert rep.copy_last["mse"] == pytest.approx(64 * 0.2**2, rel=1e-5)
    assert rep.copy_last["mae"] == pytest.approx(64 * 0.2, rel=1e-5)
    assert rep.windows["train"] == 3 and rep.windows["val"] == 1


def test_doctor_levels_as_floats_and_layouts():
    rep = check_array(np.full((1, 20, 8, 8), 200.0, np.float32), layout="NTHW")
    assert any("8-bit levels" in p for p in rep.problems)
    clips, used = to_clips(np.zeros((20, 500, 8, 8), np.uint8))
    assert used == "TNHW" and clips.shape == (500, 20, 1, 8, 8)
    clips, used = to_clips(np.zeros((30, 8, 8, 3), np.uint8))
    assert used == "THWC" and clips.shape == (1, 30, 3, 8, 8)


# ---- the command line -------------------------------------------------------------------------------


@pytest.fixture
def canonical_dir(tmp_path):
    rng = np.random.default_rng(0)
    arr = rng.integers(0, 256, (20, 6, 64, 64), dtype=np.uint8)
    (tmp_path / "moving_mnist").mkdir()
    np.save(tmp_path / "moving_mnist" / "mnist_test_seq.npy", arr)
    return tmp_path, arr


def test_evaluate_copy_last_on_the_canonical_file_reports_both_conventions(canonical_dir):
    root, arr = canonical_dir
    rc, out = _run("evaluate", "copy-last-frame", "--dataset", "mmnist_canonical", "--data-dir", str(root))
    assert rc == 0
    r = json.loads(out)
    seqs = arr.transpose(1, 0, 2, 3).astype(np.float64) / 255
    want = ((seqs[:, 10:] - seqs[:, 9:10]) ** 2).sum(axis=(2, 3)).mean()
    assert r["sequences"] == 6
    assert r["mse"] == pytest.approx(want, rel=1e-5)
    assert r["openstl_convention"]["mse"] == pytest.approx(want, rel=1e-5)
    assert set(r["openstl_convention"]) == {"mse", "mae", "ssim", "psnr"}


def test_data_check_cli_exit_codes(canonical_dir, tmp_path):
    root, _ = canonical_dir
    rc, out = _run("data", "check", "--dataset", "mmnist_canonical", "--data-dir", str(root), "--sequences", "4")
    assert rc == 0 and "copy-last" in out
    bad = tmp_path / "bad.npy"
    np.save(bad, (np.random.default_rng(1).random((2, 20, 1, 16, 16)) * 900).astype(np.float32))
    rc, out = _run("data", "check", str(bad), "--json")
    assert rc == 1 and json.loads(out)["ok"] is False


def test_openstl_reported_hook(monkeypatch):
    assert openstl_reported("tau-mmnist") is None
    monkeypatch.setitem(sys.modules, "stzoo.convert.openstl.catalog", None)
    assert "not in this stzoo version" in openstl_reported("openstl:mmnist_simvp_gsta")["note"]
    assert protocol_notes((10, 20), (10, 10)) and not protocol_notes((4, 4), (4, 4))


def test_train_and_finetune_take_the_dataset_protocol(tmp_path):
    import argparse

    from stzoo.cli.train import _finetune_data_from_dataset, _recipe_from_args

    rng = np.random.default_rng(5)
    (tmp_path / "taxibj").mkdir()
    np.savez(
        tmp_path / "taxibj" / "dataset.npz",
        **{
            k: rng.uniform(-1, 1, (n, 4, 2, 32, 32)).astype(np.float32)
            for k, n in (("X_train", 5), ("Y_train", 5), ("X_test", 5), ("Y_test", 5))
        },
    )
    recipe = _recipe_from_args("tau", argparse.Namespace(dataset="taxibj"))
    assert (recipe.frames_in, recipe.frames_out) == (4, 4)
    args = argparse.Namespace(
        dataset="taxibj",
        data=None,
        data_dir=str(tmp_path),
        frames_in=None,
        frames_out=None,
        dataset_sequences=5,
        seed=0,
        val_data=None,
        val="auto",
        data_layout=None,
    )
    _finetune_data_from_dataset(args)
    assert args.data[0].shape == (5, 8, 2, 32, 32) and args.val_data[0].shape == (1, 8, 2, 32, 32)
    assert (args.frames_in, args.frames_out, args.data_layout) == (4, 4, "BTCHW")
    assert 0.0 <= args.data[0].min() and args.data[0].max() <= 1.0


def test_openstl_reported_reads_the_catalogue():
    catalog = pytest.importorskip("stzoo.convert.openstl.catalog")
    stem, entry = next((k, v) for k, v in catalog.load_catalog()["checkpoints"].items() if v.get("reported"))
    got = openstl_reported(f"openstl:{stem}")
    cols = {
        k.lower(): v for k, v in entry["reported"]["columns"].items() if k.upper() in ("MSE", "MAE", "SSIM", "PSNR")
    }
    assert cols and all(got[k] == v for k, v in cols.items())
    assert got["source"].startswith("OpenSTL ")
    assert "no published numbers" in openstl_reported("openstl:no_such_file")["note"]
