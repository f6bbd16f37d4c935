"""Training loop, resume, evaluation and release (stzoo.training.train), on a tiny fake MNIST folder."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers.fake_mnist import write_fake_mnist
from helpers.releases import manifest_copy, release_args, train_args

import stzoo.training.loop as loop_mod
import stzoo.training.train as train_mod
from stzoo.data.moving_mnist import MovingMNIST, moving_mnist_test_set
from stzoo.errors import ConfigError
from stzoo.models import build_model
from stzoo.tools.release import release
from stzoo.training.losses import compute_loss
from stzoo.training.train import Recipe, evaluate, evaluate_copy_last, train

TAU_CFG = {"frames": 4, "hid_S": 4, "hid_T": 8, "N_S": 2, "N_T": 2, "mlp_ratio": 2.0}
LSTM_CFG = {"frames_in": 4, "frames_out": 4, "num_layers": 1, "num_hidden": 4, "filter_size": 3}


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    # the machine is shared with training jobs: with several intra-op threads these tiny convs
    # spend ~100× longer waiting on each other than computing
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


# ---------------------------------------------------------------------------------------------
# a tiny fake MNIST folder
# ---------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def mnist_dir(tmp_path_factory) -> Path:
    return write_fake_mnist(tmp_path_factory.mktemp("fake_mnist"), seed=0, train=64, test=32)


def _log(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines() if line.strip()]


def _ckpt(out: Path) -> dict:
    # weights_only=True: what train writes is tensors, numbers, strings and plain containers only
    return torch.load(out / "checkpoint.pt", map_location="cpu", weights_only=True)


# ---------------------------------------------------------------------------------------------
# independent numpy metrics (for the copy-last baseline and the evaluation summary)
# ---------------------------------------------------------------------------------------------
def _np_ssim(x: np.ndarray, y: np.ndarray) -> float:
    g = np.exp(-((np.arange(11) - 5.0) ** 2) / (2 * 1.5**2))
    g /= g.sum()
    win = np.outer(g, g)

    def filt(img):
        return np.einsum("ijkl,kl->ij", np.lib.stride_tricks.sliding_window_view(img, (11, 11)), win)

    c1, c2 = 0.01**2, 0.03**2
    mx, my = filt(x), filt(y)
    vx, vy, cxy = filt(x * x) - mx**2, filt(y * y) - my**2, filt(x * y) - mx * my
    return float((((2 * mx * my + c1) * (2 * cxy + c2)) / ((mx**2 + my**2 + c1) * (vx + vy + c2))).mean())


def _np_metrics(pred: np.ndarray, target: np.ndarray) -> dict[str, float]:
    """pred/target N×T×H×W in [0,1] (single channel); per-frame metrics averaged over all frames."""
    pred = np.clip(pred, 0, 1)
    err = pred - target
    mse = (err**2).sum(axis=(2, 3))
    mae = np.abs(err).sum(axis=(2, 3))
    psnr = np.minimum(100.0, 10 * np.log10(1.0 / np.maximum((err**2).mean(axis=(2, 3)), 1e-10)))
    ssim = np.array([[_np_ssim(pred[i, t], target[i, t]) for t in range(pred.shape[1])] for i in range(pred.shape[0])])
    return {"mse": mse.mean(), "mae": mae.mean(), "psnr": psnr.mean(), "ssim": ssim.mean()}


# ---------------------------------------------------------------------------------------------
# training
# ---------------------------------------------------------------------------------------------
def test_tau_loss_goes_down(tmp_path, mnist_dir):
    out = tmp_path / "run"
    # 8 sequences per epoch, 2 steps per epoch, 6 epochs: the same few digits over and over
    recipe = Recipe(lr=3e-2, epochs=6, epoch_size=8, batch_size=4, frames_in=4, frames_out=4, loss="mse+ddr", alpha=0.1)
    summary = train(
        "tau",
        TAU_CFG,
        out,
        dataset_options={"mnist_dir": mnist_dir},
        recipe=recipe,
        device="cpu",
        eval_sequences=0,
        log_every=1,
        progress=False,
    )
    log = _log(out)
    assert [r["step"] for r in log] == list(range(1, 13))
    assert [r["epoch"] for r in log] == [e for e in range(6) for _ in range(2)]
    losses = np.array([r["loss"] for r in log])
    assert np.isfinite(losses).all()
    assert losses[-3:].mean() < 0.6 * losses[:3].mean(), losses
    assert summary["step"] == summary["total_steps"] == 12
    assert summary["epochs_done"] == pytest.approx(6.0)
    assert "metrics" not in summary
    assert summary["parameters"] == sum(p.numel() for p in build_model("tau", TAU_CFG).parameters())
    assert json.loads((out / "summary.json").read_text())["step"] == 12
    run = json.loads((out / "run.json").read_text())
    assert run["arch"] == "tau" and run["config"] == TAU_CFG and run["recipe"]["lr"] == 3e-2
    ck = _ckpt(out)
    assert ck["step"] == 12 and ck["arch"] == "tau" and ck["config"] == TAU_CFG


def test_first_logged_loss_is_recipe_loss_on_first_batch(tmp_path, mnist_dir):
    recipe = Recipe(lr=1e-3, epochs=1, epoch_size=6, batch_size=3, frames_in=4, frames_out=4, loss="mse+ddr", seed=5)
    train(
        "tau",
        TAU_CFG,
        tmp_path,
        dtype="float32",
        dataset_options={"mnist_dir": mnist_dir},
        recipe=recipe,
        device="cpu",
        eval_sequences=0,
        log_every=1,
        progress=False,
    )
    first = _log(tmp_path)[0]
    # rebuild the untrained model the way a run does (seeded), and the first batch by hand
    torch.manual_seed(5)
    model = build_model("tau", TAU_CFG).train()
    data = MovingMNIST.from_mnist(mnist_dir, "train", num_sequences=6, seq_len=8, seed=5)
    seq = torch.stack([torch.from_numpy(data.sequence(i)) for i in range(3)])[:, :, None].float() / 255
    with torch.no_grad():
        pred = model(seq[:, :4])
    y = seq[:, 4:8].double().numpy()
    p = pred.double().numpy()
    mse = float(((p - y) ** 2).mean())
    dp, dy = np.diff(p, axis=1).reshape(3, 3, -1) / 0.1, np.diff(y, axis=1).reshape(3, 3, -1) / 0.1
    lp = dp - dp.max(-1, keepdims=True)
    lp -= np.log(np.exp(lp).sum(-1, keepdims=True))
    lq = dy - dy.max(-1, keepdims=True)
    lq -= np.log(np.exp(lq).sum(-1, keepdims=True))
    ddr = float((np.exp(lp) * (lp - lq)).sum(-1).mean()) / (64 * 64)
    assert first["loss"] == pytest.approx(mse + 0.1 * ddr, rel=1e-4)


def test_each_step_gets_its_epochs_batch(tmp_path, mnist_dir, monkeypatch):
    """Step s trains on sequences [i·B, (i+1)·B) of epoch e = s // steps_per_epoch, i = s % steps_per_epoch."""
    seen = []
    real = loop_mod.compute_loss

    def recording(model, recipe, seq, teacher_p, **kwargs):
        seen.append(seq.detach().clone())
        return real(model, recipe, seq, teacher_p, **kwargs)

    monkeypatch.setattr(loop_mod, "compute_loss", recording)
    recipe = Recipe(lr=1e-3, epochs=2, epoch_size=6, batch_size=4, frames_in=3, frames_out=2, loss="mse", seed=9)
    train(
        "convlstm",
        {**LSTM_CFG, "frames_in": 3, "frames_out": 2},
        tmp_path,
        dataset_options={"mnist_dir": mnist_dir},
        recipe=recipe,
        device="cpu",
        eval_sequences=0,
        progress=False,
    )
    assert len(seen) == 4
    for s, seq in enumerate(seen):
        epoch, i = divmod(s, 2)
        ds = MovingMNIST.from_mnist(mnist_dir, "train", num_sequences=6, seq_len=5, seed=9, epoch=epoch)
        idx = range(4 * i, min(4 * i + 4, 6))
        want = np.stack([ds.sequence(j) for j in idx])[:, :, None].astype(np.float32) / 255
        assert seq.shape == want.shape, s
        np.testing.assert_array_equal(seq.numpy(), want)


def test_convlstm_scheduled_sampling_run(tmp_path, mnist_dir):
    recipe = Recipe(
        lr=1e-2, epochs=2, epoch_size=8, batch_size=4, frames_in=4, frames_out=4, loss="mse", scheduled_sampling=0.5
    )
    summary = train(
        "convlstm",
        LSTM_CFG,
        tmp_path,
        dataset_options={"mnist_dir": mnist_dir},
        recipe=recipe,
        device="cpu",
        eval_sequences=0,
        log_every=1,
        progress=False,
    )
    total = 4
    assert summary["step"] == summary["total_steps"] == total
    log = _log(tmp_path)
    # teacher forcing decays linearly from 1 to 0 over the first half of the run, then stays 0
    want = [max(0.0, 1.0 - s / (0.5 * total)) for s in range(total)]
    assert [r["teacher_p"] for r in log] == pytest.approx(want)
    assert all(math.isfinite(r["loss"]) for r in log)
    ck = _ckpt(tmp_path)
    assert ck["step"] == total and ck["arch"] == "convlstm"
    model = build_model("convlstm", LSTM_CFG)
    assert set(ck["model"]) == set(model.state_dict())
    model.load_state_dict(ck["model"])  # loads cleanly
    assert "optimizer" in ck and "scheduler" in ck


def test_compute_loss_recurrent_covers_context_frames():
    model = build_model("convlstm", LSTM_CFG)
    recipe = Recipe(frames_in=4, frames_out=4, loss="mse")
    seq = torch.rand(2, 8, 1, 16, 16)
    loss = compute_loss(model, recipe, seq, teacher_p=0.0)
    with torch.no_grad():
        pred = model(seq[:, :4], 4, return_context=True)  # 3 context + 4 future frames
    want = float(((pred.double() - seq[:, 1:8].double()) ** 2).mean())
    assert loss.item() == pytest.approx(want, rel=1e-5)
    with pytest.raises(ConfigError):
        compute_loss(model, Recipe(frames_in=4, frames_out=4, loss="l1"), seq, 0.0)


def _compare_state(a: dict, b: dict) -> None:
    assert set(a) == set(b)
    for k in a:
        torch.testing.assert_close(a[k], b[k], atol=1e-6, rtol=0, msg=k)


def test_resume_equals_uninterrupted(tmp_path, mnist_dir):
    # convlstm with scheduled sampling: the Bernoulli masks make the torch RNG part of the state
    # scheduled_sampling=1: teacher forcing (random masks) stays on to the last step, so the
    # resumed half also draws masks
    recipe = Recipe(
        lr=1e-2, epochs=3, epoch_size=6, batch_size=4, frames_in=4, frames_out=4, loss="mse", scheduled_sampling=1.0
    )  # 2 steps per epoch (4 + 2 sequences)
    kw = dict(
        dataset_options={"mnist_dir": mnist_dir},
        recipe=recipe,
        device="cpu",
        eval_sequences=0,
        log_every=1,
        progress=False,
    )
    full, part = tmp_path / "full", tmp_path / "part"
    s_full = train("convlstm", LSTM_CFG, full, **kw)
    s1 = train("convlstm", LSTM_CFG, part, max_steps=3, **kw)
    assert s1["step"] == 3 and s1["total_steps"] == 6 and _ckpt(part)["step"] == 3
    assert s1["epochs_done"] == pytest.approx(1.5)
    s2 = train("convlstm", LSTM_CFG, part, **kw)
    assert s2["step"] == s_full["step"] == 6
    _compare_state(_ckpt(full)["model"], _ckpt(part)["model"])
    # the per-step losses of the two slices line up with the uninterrupted run
    lf, lp = _log(full), _log(part)
    assert [r["step"] for r in lp] == [1, 2, 3, 4, 5, 6]
    np.testing.assert_allclose([r["loss"] for r in lp], [r["loss"] for r in lf], rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose([r["lr"] for r in lp], [r["lr"] for r in lf], rtol=1e-9)
    # a third call has nothing left to do and does not move the weights
    before = _ckpt(part)["model"]
    assert train("convlstm", LSTM_CFG, part, **kw)["step"] == 6
    _compare_state(before, _ckpt(part)["model"])


def test_resume_after_keyboard_interrupt(tmp_path, mnist_dir, monkeypatch):
    recipe = Recipe(lr=1e-2, epochs=2, epoch_size=8, batch_size=4, frames_in=4, frames_out=4, loss="mse+ddr")
    kw = dict(
        dataset_options={"mnist_dir": mnist_dir},
        recipe=recipe,
        device="cpu",
        eval_sequences=0,
        log_every=1,
        progress=False,
    )
    full, part = tmp_path / "full", tmp_path / "part"
    train("tau", TAU_CFG, full, **kw)

    real = loop_mod.compute_loss
    calls = {"n": 0}

    def interrupting(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(loop_mod, "compute_loss", interrupting)
    with pytest.raises(KeyboardInterrupt):
        train("tau", TAU_CFG, part, **kw)
    monkeypatch.setattr(loop_mod, "compute_loss", real)
    assert _ckpt(part)["step"] == 2
    assert train("tau", TAU_CFG, part, **kw)["step"] == 4
    _compare_state(_ckpt(full)["model"], _ckpt(part)["model"])


def test_resume_with_other_config_is_refused(tmp_path, mnist_dir):
    recipe = Recipe(epochs=1, epoch_size=2, batch_size=2, frames_in=4, frames_out=4, loss="mse")
    kw = dict(dataset_options={"mnist_dir": mnist_dir}, recipe=recipe, device="cpu", eval_sequences=0, progress=False)
    train("convlstm", LSTM_CFG, tmp_path, **kw)
    with pytest.raises(ConfigError):
        train("convlstm", {**LSTM_CFG, "num_hidden": 2}, tmp_path, **kw)


@pytest.mark.parametrize("change", [{"lr": 0.5}, {"epochs": 3}, {"batch_size": 1}, {"lr": 0.5, "seed": 7}])
def test_resume_with_other_recipe_is_refused(tmp_path, mnist_dir, change):
    # lr used to be recorded but silently not used; epochs / batch_size crashed inside OneCycleLR
    recipe = Recipe(lr=1e-2, epochs=2, epoch_size=4, batch_size=2, frames_in=4, frames_out=4, loss="mse")
    kw = dict(dataset_options={"mnist_dir": mnist_dir}, device="cpu", eval_sequences=0, progress=False)
    train("convlstm", LSTM_CFG, tmp_path, recipe=recipe, max_steps=1, **kw)
    before = (tmp_path / "checkpoint.pt").read_bytes()
    with pytest.raises(ConfigError, match="new --out") as err:
        train("convlstm", LSTM_CFG, tmp_path, recipe=dataclasses.replace(recipe, **change), **kw)
    for field, value in change.items():
        assert f"recipe.{field}: {getattr(recipe, field)!r} in the checkpoint, {value!r} requested" in str(err.value)
    assert str(err.value).count("in the checkpoint") == len(change)
    assert (tmp_path / "checkpoint.pt").read_bytes() == before
    assert train("convlstm", LSTM_CFG, tmp_path, recipe=recipe, **kw)["step"] == 4  # the original values resume


def test_resume_in_another_dtype_is_recorded(tmp_path, mnist_dir):
    recipe = Recipe(lr=1e-2, epochs=1, epoch_size=4, batch_size=2, frames_in=4, frames_out=4, loss="mse")
    kw = dict(dataset_options={"mnist_dir": mnist_dir}, recipe=recipe, device="cpu", eval_sequences=0, progress=False)
    train("convlstm", LSTM_CFG, tmp_path, max_steps=1, dtype="float32", **kw)
    assert _ckpt(tmp_path)["dtype"] == "float32"
    s = train("convlstm", LSTM_CFG, tmp_path, dtype="bfloat16", **kw)
    assert s["step"] == 2 and s["dtype"] == "bfloat16" and _ckpt(tmp_path)["dtype"] == "bfloat16"
    run = json.loads((tmp_path / "run.json").read_text())
    assert run["dtype"] == "bfloat16"
    assert run["dtype_history"] == [{"from_step": 0, "dtype": "float32"}, {"from_step": 1, "dtype": "bfloat16"}]


# ---------------------------------------------------------------------------------------------
# evaluation
# ---------------------------------------------------------------------------------------------
def test_train_with_evaluation_summary(tmp_path, mnist_dir):
    recipe = Recipe(lr=1e-2, epochs=1, epoch_size=4, batch_size=4, frames_in=4, frames_out=4, loss="mse+ddr")
    summary = train(
        "tau",
        TAU_CFG,
        tmp_path,
        dataset_options={"mnist_dir": mnist_dir},
        recipe=recipe,
        device="cpu",
        eval_sequences=3,
        progress=False,
    )
    m = summary["metrics"]
    assert {"mse", "mae", "ssim", "psnr", "sequences", "dataset"} <= set(m)
    assert m["sequences"] == 3 and m["dataset"].startswith("stzoo Moving MNIST test (MNIST test digits, seed 20261123")
    on_disk = json.loads((tmp_path / "summary.json").read_text())["metrics"]
    for k in ("mse", "mae", "ssim", "psnr"):
        assert on_disk[k] == pytest.approx(m[k], rel=1e-12)
    # recompute from the saved weights, with the test set (MNIST *test* digits) and numpy metrics
    model = build_model("tau", TAU_CFG)
    model.load_state_dict(_ckpt(tmp_path)["model"])
    model.eval()
    test = moving_mnist_test_set(mnist_dir, 3)
    seq = test.batch(0, 3).float() / 255
    with torch.no_grad():
        pred = model(seq[:, :4])
    want = _np_metrics(pred[:, :, 0].double().numpy(), seq[:, 4:8, 0].double().numpy())
    for k in ("mse", "mae", "ssim", "psnr"):
        assert m[k] == pytest.approx(want[k], rel=1e-4, abs=1e-5), k


def test_evaluate_restores_training_mode_and_batches(mnist_dir):
    model = build_model("tau", TAU_CFG).train()
    test = moving_mnist_test_set(mnist_dir, 5)
    a = evaluate(model, test, frames_in=4, frames_out=4, batch_size=2, progress=False)
    assert model.training
    b = evaluate(model, test, frames_in=4, frames_out=4, batch_size=5, progress=False)
    assert a["sequences"] == b["sequences"] == 5
    for k in ("mse", "mae", "ssim", "psnr"):
        assert a[k] == pytest.approx(b[k], rel=1e-5), k


def test_evaluate_copy_last_matches_hand_computation():
    digits = np.zeros((3, 12, 12), np.uint8)
    digits[:, 2:10, 2:10] = np.random.default_rng(7).integers(80, 256, size=(3, 8, 8))
    ds = MovingMNIST(digits, num_sequences=3, seq_len=6, size=32, seed=11)
    got = evaluate_copy_last(ds, frames_in=3, frames_out=3, batch_size=2, progress=False)
    seqs = np.stack([ds.sequence(i) for i in range(3)]).astype(np.float64) / 255  # N×6×32×32
    pred = np.repeat(seqs[:, 2:3], 3, axis=1)
    want = _np_metrics(pred, seqs[:, 3:6])
    assert got["sequences"] == 3
    for k in ("mse", "mae", "ssim", "psnr"):
        assert got[k] == pytest.approx(want[k], rel=1e-4, abs=1e-5), k
    assert want["mse"] > 0  # the digits do move


# ---------------------------------------------------------------------------------------------
# release
# ---------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def finished_run(one_thread, tmp_path_factory, mnist_dir) -> Path:
    out = tmp_path_factory.mktemp("release_run")
    recipe = Recipe(lr=1e-2, epochs=1, epoch_size=4, batch_size=2, frames_in=4, frames_out=4, loss="mse")
    train(
        "convlstm",
        LSTM_CFG,
        out,
        dataset_options={"mnist_dir": mnist_dir},
        recipe=recipe,
        device="cpu",
        eval_sequences=0,
        progress=False,
    )
    return out


@pytest.mark.parametrize("half", [False, True])
def test_release(tmp_path, finished_run, half):
    from safetensors import safe_open
    from safetensors.torch import load_file

    dest = tmp_path / "weights" / "sub" / "model.safetensors"
    info = release(finished_run, dest, half=half)
    assert Path(info["path"]) == dest and dest.is_file()
    assert info["sha256"] == hashlib.sha256(dest.read_bytes()).hexdigest()
    assert info["size"] == len(dest.read_bytes())
    assert not list(dest.parent.glob("*.tmp"))

    tensors = load_file(str(dest))
    model_keys = set(build_model("convlstm", LSTM_CFG).state_dict())
    assert set(tensors) == model_keys  # weights only: no optimizer / scheduler / rng entries
    ck = _ckpt(finished_run)["model"]
    for k, v in tensors.items():
        want = ck[k].half() if half and ck[k].is_floating_point() else ck[k]
        assert v.dtype == want.dtype, k
        assert torch.equal(v, want), k
        if ck[k].is_floating_point():
            assert v.dtype == (torch.float16 if half else torch.float32), k
    with safe_open(str(dest), "pt") as f:
        meta = f.metadata()
    assert json.loads(meta["stzoo"]) == {"arch": "convlstm", "config": LSTM_CFG}


def test_release_half_is_smaller(tmp_path, finished_run):
    a = release(finished_run, tmp_path / "a.safetensors")
    h = release(finished_run, tmp_path / "h.safetensors", half=True)
    assert h["sha256"] != a["sha256"]
    assert h["size"] < a["size"]


def test_release_same_weights_same_hash(tmp_path, finished_run):
    # 16 releases of one checkpoint: with a random 2-key order, all 16 agreeing by chance has p = 2^-15
    infos = [release(finished_run, tmp_path / f"w{i}.safetensors") for i in range(16)]
    assert len({i["size"] for i in infos}) == 1
    assert len({i["sha256"] for i in infos}) == 1


def test_cli_train_then_release_updates_a_manifest(tmp_path, mnist_dir, capsys):
    """`stzoo train` (a couple of steps) then `stzoo-maint release` into a copy of the manifest."""
    from stzoo.cli.main import main
    from stzoo.tools.cli import main as maint
    from stzoo.zoo.manifest import validate_manifest

    run = tmp_path / "run"
    assert main(train_args(run, mnist_dir, 4)) == 0
    assert _ckpt(run)["step"] == 2
    manifest = manifest_copy(tmp_path / "manifest.json", None)
    released = json.loads(manifest.read_text())["models"]["convlstm-mmnist-s"]["metrics"]["sequences"]
    capsys.readouterr()
    assert maint(release_args(run, mnist_dir, manifest, tmp_path / "w", 3)) != 0  # 3 test sequences
    assert "cannot be compared" in capsys.readouterr().err  # sequences vs the release's 10000
    assert released != 3 and not list((tmp_path / "w").glob("*.safetensors"))
    manifest_copy(manifest)
    # a two-step run is below the release gate (tests/tools/test_release_gate.py): --force
    assert maint(release_args(run, mnist_dir, manifest, tmp_path / "w", 3, "--force")) == 0
    m = json.loads(manifest.read_text())
    validate_manifest(m)
    entry = m["models"]["convlstm-mmnist-s"]
    f = tmp_path / "w" / entry["weights"]["filename"]
    assert entry["gate"]["forced"] and entry["weights"]["sha256"] == hashlib.sha256(f.read_bytes()).hexdigest()
    assert entry["weights"]["size"] == f.stat().st_size
    assert entry["metrics"]["sequences"] == 3 and entry["training"]["steps"] == 2
    assert entry["training"]["command"].startswith("stzoo train convlstm-mmnist-s")
    assert entry["metrics"]["command"].startswith("stzoo-maint release convlstm-mmnist-s --run")


def test_release_keeps_what_another_writer_put_in_the_manifest_meanwhile(tmp_path, mnist_dir, monkeypatch):
    """Two releases (or a release and scripts/bf16_metrics.py) at once: the one that finishes last writes
    only its own entry into the manifest as it is then, so the other's change is not lost."""
    import stzoo.tools.release as release_mod
    from stzoo.cli.main import main
    from stzoo.tools.cli import main as maint

    run = tmp_path / "run"
    assert main(train_args(run, mnist_dir)) == 0
    manifest = manifest_copy(tmp_path / "manifest.json")
    real = release_mod.evaluate

    def evaluate_while_another_writer_edits(*args, **kwargs):
        other = json.loads(manifest.read_text())
        other["models"]["tau-mmnist-s"]["bf16"] = {"written": "meanwhile"}
        manifest.write_text(json.dumps(other))
        return real(*args, **kwargs)

    monkeypatch.setattr(release_mod, "evaluate", evaluate_while_another_writer_edits)
    # a two-step run is below the release gate (tests/tools/test_release_gate.py): --force
    assert maint(release_args(run, mnist_dir, manifest, tmp_path / "w", 2, "--force")) == 0
    m = json.loads(manifest.read_text())
    assert m["models"]["tau-mmnist-s"]["bf16"] == {"written": "meanwhile"}
    assert m["models"]["convlstm-mmnist-s"]["metrics"]["sequences"] == 2


def test_cli_train_config_setting_trains_another_size_which_release_refuses(tmp_path, mnist_dir, capsys):
    """`--config KEY=VALUE` changes the trained model (recorded in run.json and the checkpoint), is checked
    by the architecture before anything runs, and `stzoo-maint release NAME` refuses the run (not NAME's model)."""
    from stzoo.cli.main import main
    from stzoo.tools.cli import main as maint

    run = tmp_path / "run"
    base = train_args(run, mnist_dir)
    assert main(base + ["--config", "num_hidden=8", "--config", "num_layers=1"]) == 0
    ck = _ckpt(run)
    assert ck["config"]["num_hidden"] == 8 and ck["config"]["num_layers"] == 1
    small = build_model("convlstm", ck["config"])
    assert sum(v.numel() for v in ck["model"].values()) == sum(p.numel() for p in small.state_dict().values())
    assert json.loads((run / "run.json").read_text())["config"]["num_hidden"] == 8
    capsys.readouterr()
    assert main(base[:2] + ["--out", str(tmp_path / "bad"), "--config", "hidden=8"]) != 0
    assert "does not take config key(s) ['hidden']" in capsys.readouterr().err
    assert not (tmp_path / "bad").exists()
    with pytest.raises(SystemExit):
        main(base + ["--config", "num_hidden"])  # not KEY=VALUE: argparse's usage error
    assert "expected KEY=VALUE" in capsys.readouterr().err
    manifest = manifest_copy(tmp_path / "m.json")
    assert maint(release_args(run, mnist_dir, manifest, tmp_path / "w", 2)) != 0
    assert "but convlstm-mmnist-s is" in capsys.readouterr().err


def test_progress_bar_is_not_redrawn_every_step_off_a_terminal(tmp_path, mnist_dir, capsys):
    """Off a terminal (a log file under nohup) the bar redraws at most about once a minute, not per step."""
    train(
        "convlstm",
        {"num_layers": 1, "num_hidden": 4, "patch_size": 4, "filter_size": 3},
        tmp_path / "r",
        dataset_options={"mnist_dir": mnist_dir},
        recipe=Recipe(epochs=1, epoch_size=24, batch_size=2),
        eval_sequences=0,
        progress=True,
    )
    err = capsys.readouterr().err
    assert err.count("train convlstm") <= 3, err  # 12 steps: start, (maybe one timed redraw), close


def test_one_cycle_lr_matches_torch_onecycle():
    from stzoo.training.train import one_cycle_lr

    # torch ends the warm-up at step pct·T − 1 rather than pct·(T − 1): the same curve up to one step
    n = 5001
    opt = torch.optim.AdamW([torch.nn.Parameter(torch.zeros(1))], lr=1e-3)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=1e-3, total_steps=n, cycle_momentum=False)
    for step in range(n):
        if step % 50 == 0 or step == n - 1:
            want = opt.param_groups[0]["lr"]
            assert one_cycle_lr(1e-3, step / (n - 1)) == pytest.approx(want, rel=2e-3, abs=2e-9), step
        opt.step()
        sched.step()


def test_time_budget_anneals_and_stops_on_the_clock(tmp_path, mnist_dir, monkeypatch):
    """With a time budget the schedule follows a (here simulated) clock: the run stops once the budget is
    spent, however many steps were planned, with the learning rate annealed to the end of the cycle."""
    clock = {"t": 0.0}
    monkeypatch.setattr(train_mod.time, "monotonic", lambda: clock["t"])
    real = loop_mod.compute_loss

    def tick(*args, **kwargs):
        clock["t"] += 10.0  # every step "takes" 10 s
        return real(*args, **kwargs)

    monkeypatch.setattr(loop_mod, "compute_loss", tick)
    recipe = Recipe(lr=1e-3, epochs=50, epoch_size=6, batch_size=3, frames_in=3, frames_out=2, loss="mse")
    summary = train(
        "convlstm",
        {**LSTM_CFG, "frames_in": 3, "frames_out": 2},
        tmp_path,
        dataset_options={"mnist_dir": mnist_dir},
        recipe=recipe,
        device="cpu",
        eval_sequences=0,
        progress=False,
        time_budget_s=55.0,
        log_every=1,
        dtype="float32",
    )
    assert summary["step"] == 7 < summary["total_steps"] == 100  # frac 0, 10/55, ..., 60/55 ≥ 1 → 7 steps
    lrs = [r["lr"] for r in _log(tmp_path)]
    assert lrs[-1] == pytest.approx(1e-3 / 25 / 1e4, rel=1e-6)  # fully annealed at the last step
    assert max(lrs) > 0.5e-3
    with pytest.raises(train_mod.ConfigError, match="time_budget_s"):
        train(
            "convlstm",
            LSTM_CFG,
            tmp_path / "x",
            dataset_options={"mnist_dir": mnist_dir},
            recipe=recipe,
            time_budget_s=-1,
        )


def test_release_keeps_a_ledger_of_warm_started_runs(tmp_path, mnist_dir):
    """A → released; B warm-started from the release and C from B's weights; releasing C with B as a prior
    run gives the ledger A, B, C with its totals. A chain with a gap, and a release that is not better, are
    refused and leave the manifest and the weights file as they were."""
    from stzoo.tools.release import release_to_manifest
    from stzoo.zoo.manifest import validate_manifest

    manifest = manifest_copy(tmp_path / "manifest.json")
    wdir = tmp_path / "w"
    recipe = Recipe(lr=1e-2, epochs=1, epoch_size=4, batch_size=2, frames_in=4, frames_out=4, loss="mse")
    kw = dict(dataset_options={"mnist_dir": mnist_dir}, device="cpu", eval_sequences=0, progress=False, dtype="float32")
    cfg = {"num_layers": 2, "num_hidden": 32, "patch_size": 4, "filter_size": 5}  # convlstm-mmnist-s
    rel = dict(
        weights_dir=wdir,
        manifest_path=manifest,
        dataset_options={"mnist_dir": mnist_dir},
        eval_sequences=3,
        progress=False,
    )

    train("convlstm", cfg, tmp_path / "A", recipe=recipe, **kw)
    # a one-step run is below the release gate: force releases it (marked undertrained; the gate's own tests
    # are in tests/tools/test_release_gate.py)
    first = release_to_manifest("convlstm-mmnist-s", tmp_path / "A", force=True, **rel)
    assert first["gate"]["forced"] is True
    released = wdir / first["weights"]["filename"]
    first_sha = hashlib.sha256(released.read_bytes()).hexdigest()
    with pytest.raises(train_mod.ConfigError, match="not better"):
        release_to_manifest("convlstm-mmnist-s", tmp_path / "A", **rel)  # the same weights again
    assert sorted(p.name for p in wdir.iterdir()) == [released.name]
    assert hashlib.sha256(released.read_bytes()).hexdigest() == first_sha
    assert not list(wdir.glob("*.candidate"))

    train("convlstm", cfg, tmp_path / "B", recipe=dataclasses.replace(recipe, seed=1), init_from=released, **kw)
    b_released = tmp_path / "b.safetensors"
    release(tmp_path / "B", b_released)
    # C starts from B's final weights saved by other means (no stzoo metadata: another file sha256, the same
    # tensors); the ledger matches them by the weights' own sha256
    from safetensors.torch import load_file, save_file

    b_weights = tmp_path / "b-plain.safetensors"
    save_file(load_file(str(b_released)), str(b_weights))
    assert hashlib.sha256(b_weights.read_bytes()).digest() != hashlib.sha256(b_released.read_bytes()).digest()
    train("convlstm", cfg, tmp_path / "C", recipe=dataclasses.replace(recipe, seed=2), init_from=b_weights, **kw)
    before = manifest.read_text()
    with pytest.raises(train_mod.ConfigError, match="prior_runs"):
        release_to_manifest("convlstm-mmnist-s", tmp_path / "C", **rel)  # B is missing from the chain
    assert manifest.read_text() == before
    entry = release_to_manifest("convlstm-mmnist-s", tmp_path / "C", prior_runs=[tmp_path / "B"], force=True, **rel)
    runs = entry["training"]["runs"]
    assert [r["run"] for r in runs] == ["A", "B", "C"]
    assert runs[0]["init_sha256"] is None and runs[1]["init_sha256"] == first_sha == runs[0]["result_sha256"]
    assert runs[2]["init_sha256"] == hashlib.sha256(b_weights.read_bytes()).hexdigest() != runs[1]["result_sha256"]
    assert (
        runs[2]["init_tensors_sha256"]
        == runs[1]["result_sha256"]
        == hashlib.sha256(b_released.read_bytes()).hexdigest()
    )
    assert runs[2]["result_sha256"] == entry["weights"]["sha256"]
    totals = entry["training"]["totals"]
    assert totals["runs"] == 3 and totals["steps"] == 6 and totals["sequences"] == 12
    assert totals["cpu_hours"] == pytest.approx(sum(r["wall_clock_s"] for r in runs) / 3600, abs=0.01)
    validate_manifest(json.loads(manifest.read_text()))
    from stzoo.zoo.manifest import zoo_table_markdown

    row = next(
        ln
        for ln in zoo_table_markdown(json.loads(manifest.read_text())).splitlines()
        if ln.startswith("| `convlstm-mmnist-s`")
    )
    assert "12 seq in 3 run(s)" in row


def test_train_on_a_generated_field_dataset(tmp_path):
    """--dataset: Gray-Scott frames (2 channels, floats) train a 2-channel model; 1 channel is refused."""
    recipe = Recipe(lr=1e-3, epochs=1, epoch_size=2, batch_size=2, frames_in=2, frames_out=2, loss="mse")
    cfg = {"frames": 2, "channels": 2, "height": 64, "width": 64, "hid_S": 8, "hid_T": 16, "N_T": 2}
    s = train(
        "tau",
        cfg,
        tmp_path / "gs",
        recipe=recipe,
        device="cpu",
        eval_sequences=2,
        progress=False,
        dataset="grayscott",
        dtype="float32",
    )
    assert s["step"] == 1 and s["dataset"] == "grayscott" and math.isfinite(s["metrics"]["mse"])
    assert s["metrics"]["dataset"].startswith("stzoo grayscott test")
    with pytest.raises(train_mod.ConfigError, match="2 channel"):
        train(
            "tau",
            {**cfg, "channels": 1},
            tmp_path / "gs1",
            recipe=recipe,
            device="cpu",
            eval_sequences=0,
            progress=False,
            dataset="grayscott",
        )
    with pytest.raises(train_mod.ConfigError, match="dataset"):  # resuming on another dataset
        train(
            "tau",
            {**cfg, "channels": 1},
            tmp_path / "gs",
            recipe=recipe,
            device="cpu",
            eval_sequences=0,
            progress=False,
            dataset="kolmogorov",
        )


# ---------------------------------------------------------------------------------------------
# CPU-time budgets, learning curves, and releases that reuse the run's own measurement
# ---------------------------------------------------------------------------------------------
def _simulated_clocks(monkeypatch, wall_per_step: float, cpu_per_step: float) -> dict:
    """Both clocks advance only inside a training step, by the given amounts."""
    clock = {"wall": 0.0, "cpu": 0.0}
    monkeypatch.setattr(train_mod.time, "monotonic", lambda: clock["wall"])
    monkeypatch.setattr(train_mod.time, "process_time", lambda: clock["cpu"])
    real = loop_mod.compute_loss

    def tick(*args, **kwargs):
        clock["wall"] += wall_per_step
        clock["cpu"] += cpu_per_step
        return real(*args, **kwargs)

    monkeypatch.setattr(loop_mod, "compute_loss", tick)
    return clock


def test_cpu_budget_clock_stops_on_cpu_seconds(tmp_path, mnist_dir, monkeypatch):
    """budget_clock='cpu' spends the budget in CPU seconds: a busy machine (wall 10 s, CPU 1 s a step)
    gets as many steps as an idle one would; with the wall clock the same run stops 10× sooner."""
    _simulated_clocks(monkeypatch, wall_per_step=10.0, cpu_per_step=1.0)
    recipe = Recipe(lr=1e-3, epochs=50, epoch_size=6, batch_size=3, frames_in=3, frames_out=2, loss="mse")
    cfg = {**LSTM_CFG, "frames_in": 3, "frames_out": 2}
    kw = dict(
        dataset_options={"mnist_dir": mnist_dir},
        recipe=recipe,
        device="cpu",
        eval_sequences=0,
        progress=False,
        time_budget_s=55.0,
        dtype="float32",
    )
    on_cpu = train("convlstm", cfg, tmp_path / "cpu", budget_clock="cpu", **kw)
    on_wall = train("convlstm", cfg, tmp_path / "wall", **kw)
    assert on_cpu["step"] == 56 and on_wall["step"] == 7  # 55/1 → 56 steps; 55/10 → 7 steps
    assert on_cpu["cpu_s"] == pytest.approx(56.0) and on_cpu["wall_clock_s"] == pytest.approx(560.0)
    assert _ckpt(tmp_path / "cpu")["cpu_s"] == pytest.approx(56.0)
    assert json.loads((tmp_path / "cpu" / "run.json").read_text())["budget_clock"] == "cpu"
    with pytest.raises(train_mod.ConfigError, match="budget_clock"):  # resuming on the other clock
        train("convlstm", cfg, tmp_path / "cpu", budget_clock="wall", **kw)
    with pytest.raises(train_mod.ConfigError, match="budget_clock must be one of"):
        train("convlstm", cfg, tmp_path / "x", budget_clock="gpu", **kw)


def test_learning_curve_points_and_final_point_match_evaluation(tmp_path, mnist_dir, monkeypatch):
    _simulated_clocks(monkeypatch, wall_per_step=1.0, cpu_per_step=10.0)
    recipe = Recipe(lr=1e-2, epochs=50, epoch_size=6, batch_size=3, frames_in=4, frames_out=4, loss="mse")
    summary = train(
        "tau",
        TAU_CFG,
        tmp_path,
        dataset_options={"mnist_dir": mnist_dir},
        recipe=recipe,
        device="cpu",
        eval_sequences=5,
        progress=False,
        time_budget_s=55.0,
        budget_clock="cpu",
        curve_every_s=20.0,
        curve_sequences=5,
        dtype="float32",
    )
    curve = [json.loads(line) for line in (tmp_path / "curve.jsonl").read_text().splitlines()]
    # the start, every 20 CPU seconds (steps 2, 4, 6) and the end (step 7); evaluation time is not counted
    assert [c["step"] for c in curve] == [0, 2, 4, 6, 7]
    assert [c["cpu_s"] for c in curve] == pytest.approx([0, 20, 40, 60, 70])
    assert all(c["curve_sequences"] == 5 and c["sequences"] == 3 * c["step"] for c in curve)
    for k in ("mse", "mae", "ssim", "psnr"):  # the last point is the final model on the same 5 sequences
        assert curve[-1][k] == pytest.approx(summary["metrics"][k], rel=1e-9)
    assert curve[0]["mse"] != pytest.approx(curve[-1]["mse"])
    with pytest.raises(train_mod.ConfigError, match="curve_every_s"):
        train("tau", TAU_CFG, tmp_path / "x", dataset_options={"mnist_dir": mnist_dir}, recipe=recipe, curve_every_s=0)


def test_release_reuses_the_runs_measurement_only_for_those_weights(tmp_path, mnist_dir, monkeypatch):
    """stzoo-maint release skips its own evaluation when the run measured exactly these weights on exactly this
    test set; another test-set size, or a summary whose weights hash does not match, is measured again."""
    import stzoo.tools.release as release_mod
    from stzoo.tools.release import release_to_manifest

    cfg = {"num_layers": 2, "num_hidden": 32, "patch_size": 4, "filter_size": 5}  # convlstm-mmnist-s
    recipe = Recipe(lr=1e-2, epochs=1, epoch_size=4, batch_size=2, frames_in=10, frames_out=10, loss="mse")
    summary = train(
        "convlstm",
        cfg,
        tmp_path / "run",
        dataset_options={"mnist_dir": mnist_dir},
        recipe=recipe,
        device="cpu",
        eval_sequences=3,
        progress=False,
        dtype="float32",
    )
    calls = []
    real = release_mod.evaluate
    monkeypatch.setattr(release_mod, "evaluate", lambda *a, **k: calls.append(1) or real(*a, **k))

    def rel(n: int, name: str) -> dict:
        manifest = manifest_copy(tmp_path / f"{name}.json")
        return release_to_manifest(
            "convlstm-mmnist-s",
            tmp_path / "run",
            weights_dir=tmp_path / name,
            manifest_path=manifest,
            dataset_options={"mnist_dir": mnist_dir},
            eval_sequences=n,
            progress=False,
            force=True,  # a one-step run is below the release gate
        )

    entry = rel(3, "same")
    assert calls == [] and entry["weights"]["sha256"] == summary["weights_sha256"]
    assert entry["metrics"]["mse"] == pytest.approx(summary["metrics"]["mse"], abs=1e-4)
    entry2 = rel(2, "fewer")
    assert calls == [1] and entry2["metrics"]["sequences"] == 2
    s = json.loads((tmp_path / "run" / "summary.json").read_text())
    s["weights_sha256"] = "0" * 64
    (tmp_path / "run" / "summary.json").write_text(json.dumps(s))
    entry3 = rel(3, "tampered")
    assert calls == [1, 1] and entry3["metrics"]["mse"] == pytest.approx(summary["metrics"]["mse"], abs=1e-4)


def test_tune_allocator_is_idempotent_and_can_be_turned_off():
    import subprocess
    import sys

    code = "from stzoo.runtime import tune_allocator as t; a = t(); assert t() == a; print(a)"
    on = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    off = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "STZOO_MALLOC_TUNING": "0"},
    ).stdout
    assert "STZOO_MALLOC_TUNING=0" in off
    import platform

    if platform.system() == "Linux" and platform.libc_ver()[0] == "glibc":
        assert "mmap_threshold=1024 MiB" in on


def test_data_workers_give_the_same_run(tmp_path, mnist_dir):
    """Batches generated ahead by worker processes are the very batches of the in-loop path."""
    recipe = Recipe(lr=1e-2, epochs=2, epoch_size=6, batch_size=2, frames_in=4, frames_out=4, loss="mse")
    kw = dict(
        dataset_options={"mnist_dir": mnist_dir},
        recipe=recipe,
        device="cpu",
        eval_sequences=0,
        progress=False,
        dtype="float32",
    )
    train("tau", TAU_CFG, tmp_path / "a", **kw)
    train("tau", TAU_CFG, tmp_path / "b", data_workers=2, **kw)
    _compare_state(_ckpt(tmp_path / "a")["model"], _ckpt(tmp_path / "b")["model"])
    assert [r["loss"] for r in _log(tmp_path / "a")] == [r["loss"] for r in _log(tmp_path / "b")]
    with pytest.raises(train_mod.ConfigError, match="data_workers"):
        train("tau", TAU_CFG, tmp_path / "c", data_workers=-1, **kw)


def test_teacher_forcing_follows_the_time_budgets_clock(tmp_path, mnist_dir, monkeypatch):
    """On a time budget the run ends when the clock says so (here after 7 of 100 planned steps), so teacher
    forcing must decay on the schedule's fraction (the clock's), not on step / total_steps."""
    _simulated_clocks(monkeypatch, wall_per_step=10.0, cpu_per_step=10.0)
    recipe = Recipe(
        lr=1e-3, epochs=50, epoch_size=6, batch_size=3, frames_in=3, frames_out=2, loss="mse", scheduled_sampling=0.5
    )
    summary = train(
        "convlstm",
        {**LSTM_CFG, "frames_in": 3, "frames_out": 2},
        tmp_path,
        dataset_options={"mnist_dir": mnist_dir},
        recipe=recipe,
        device="cpu",
        eval_sequences=0,
        progress=False,
        time_budget_s=55.0,
        log_every=1,
        dtype="float32",
    )
    assert summary["step"] == 7 < summary["total_steps"] == 100
    # before step s the clock has run 10·s seconds: fraction 10·s / 55, teacher forcing 1 − fraction / 0.5
    want = [max(0.0, 1.0 - (10.0 * s / 55.0) / 0.5) for s in range(7)]
    assert [r["teacher_p"] for r in _log(tmp_path)] == pytest.approx(want)
    assert want[2] > 0 and want[3] == 0.0  # over after 3 steps, not after 50 (0.5 of the 100 planned)


def _loop_run(accumulate: int, steps: int = 3) -> tuple[list[float], dict, list[int]]:
    """``steps`` steps of a tiny ConvLSTM (no batch statistics, which micro-batches would change) through the
    one loop; returns the losses, the weights and the batch sizes compute_loss saw."""
    torch.manual_seed(0)
    model = build_model("convlstm", LSTM_CFG).train()
    assert not any(isinstance(m, torch.nn.modules.batchnorm._NormBase) for m in model.modules())
    recipe = Recipe(lr=1e-2, batch_size=4, epochs=1, epoch_size=4 * steps, frames_in=4, frames_out=4, loss="mse+ddr")
    # plain SGD: the weights move by exactly the (clipped) gradient, so the runs can be compared closely
    # (Adam divides near-zero gradients by their own size, which magnifies float rounding)
    opt, sched = torch.optim.SGD(model.parameters(), lr=recipe.lr), loop_mod.NoSchedule()
    batches = torch.rand(steps, 4, 8, 1, 32, 32, generator=torch.Generator().manual_seed(1))
    losses, seen = [], []
    real = loop_mod.compute_loss

    def recording(model, recipe, seq, teacher_p, **kwargs):
        seen.append(len(seq))
        return real(model, recipe, seq, teacher_p, **kwargs)

    loop = loop_mod.Loop(
        model=model,
        recipe=recipe,
        opt=opt,
        sched=sched,
        device=torch.device("cpu"),
        amp=False,
        step=0,
        total=steps,
        steps_per_epoch=steps,
        save=lambda: None,
        accumulate=accumulate,
        progress=False,
    )
    old, loop_mod.compute_loss = loop_mod.compute_loss, recording
    try:
        loop.run(lambda s: batches[s], losses.append)
    finally:
        loop_mod.compute_loss = old
    return losses, {k: v.clone() for k, v in model.state_dict().items()}, seen


def test_gradient_accumulation_gives_the_whole_batch_step():
    """accumulate=2: two micro-batches of 2 per optimizer step, the same losses and weights as batches of 4."""
    losses1, state1, seen1 = _loop_run(1)
    losses2, state2, seen2 = _loop_run(2)
    assert seen1 == [4, 4, 4] and seen2 == [2, 2, 2, 2, 2, 2]
    np.testing.assert_allclose(losses2, losses1, rtol=1e-5)
    assert losses1[-1] != losses1[0]  # the weights moved between steps
    for k in state1:
        torch.testing.assert_close(state2[k], state1[k], rtol=1e-5, atol=1e-6, msg=k)
    with pytest.raises(ConfigError, match="accumulate"):
        _loop_run(0)
