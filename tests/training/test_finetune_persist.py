"""Fine-tuning that never loses to copy-last (issue 36): the persistence head, step-0 validation, the
persistence-equivalent fallback, augmentation, the time-fitted budget; and audit items F7 (symlink
loops in data folders), F10 (static clips) and F14 (non-UTF-8 file names) of issue 31."""

from __future__ import annotations

import dataclasses
import json
import os
import warnings

import numpy as np
import pytest
import torch
from helpers.realistic_video import realistic_clips
from test_finetune import FAST, square_video, tiny

import stzoo
from stzoo.cli.main import main
from stzoo.data.clips import load_videos
from stzoo.errors import InputError
from stzoo.frames import write_gif
from stzoo.metrics import frame_ssim
from stzoo.models import ARCHITECTURES, build_model, get_architecture
from stzoo.models.persistence import (
    HEAD_VERSION,
    SSIM_WEIGHT,
    SUFFIX,
    PersistenceHead,
    has_persistence_head,
    with_persistence,
)
from stzoo.training.finetune import FinetuneWarning, finetune
from stzoo.training.finetune_budget import MIN_TIMED_STEPS, fit_to_time
from stzoo.training.finetune_data import augment_batch, parse_augment, shift_frames
from stzoo.training.finetune_history import plan_steps
from stzoo.training.losses import compute_loss

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py
QUICK = dict(progress=False, patience=None)


def _frames(p, clip):
    """The last observed frame of ``clip``'s first window, as predict returns frames (uint8)."""
    return np.repeat(clip[p.spec.frames_in - 1 : p.spec.frames_in], p.spec.frames_out, axis=0)


# ---------------------------------------------------------------------------------------------
# the head
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("arch", ["tau", "convlstm", "simvp", "predrnn"])
def test_untrained_head_is_exactly_copy_last_and_rebuilds_from_its_config(arch, tmp_path):
    cfg = ARCHITECTURES[arch].tiny_config
    torch.manual_seed(0)
    wrapped = with_persistence(build_model(arch, cfg)).eval()
    assert wrapped.arch == arch + SUFFIX and get_architecture(wrapped.arch).any_frames is False
    x = torch.rand(2, wrapped.frames_in, wrapped.channels, cfg["height"], cfg["width"])
    y = wrapped(x)
    assert y.shape == (2, wrapped.frames_out, wrapped.channels, cfg["height"], cfg["width"])
    assert torch.equal(y, x[:, -1:].expand_as(y))  # exactly the last frame, whatever the base computes
    with torch.no_grad():  # once trained, the head changes the forecast
        wrapped.head.amount.bias.fill_(0.5)
    assert not torch.equal(wrapped(x), y)
    # the registry rebuilds it from the name and config alone (what stzoo.load does with config.json)
    again = build_model(wrapped.arch, wrapped.config.to_dict())
    again.load_state_dict(wrapped.state_dict())
    torch.testing.assert_close(again.eval()(x), wrapped(x))


def test_head_forecasts_no_change_where_nothing_moved_and_runs_the_base_only_when_it_counts():
    """Version 2: no biases on the motion path, so a still window is forecast still (exactly) however the head
    was trained, while its gate is zero; in eval mode with the gate at zero the base is not even run."""
    cfg = ARCHITECTURES["tau"].tiny_config
    torch.manual_seed(0)
    wrapped = with_persistence(build_model("tau", cfg), version=2).eval()
    assert wrapped.head.version == 2 and wrapped.config.head_version == 2
    with torch.no_grad():
        for p in wrapped.head.parameters():
            p.normal_()
        wrapped.head.gate.zero_()
    shape = (2, wrapped.frames_in, wrapped.channels, cfg["height"], cfg["width"])
    still = torch.rand(shape[0], 1, *shape[2:]).expand(shape).contiguous()
    assert torch.equal(wrapped(still), still[:, -1:].expand(-1, wrapped.frames_out, -1, -1, -1))
    moving = torch.rand(shape)
    assert not torch.equal(wrapped(moving), moving[:, -1:].expand(-1, wrapped.frames_out, -1, -1, -1))
    calls = []
    wrapped.base.register_forward_hook(lambda *a: calls.append(1))
    wrapped(moving)
    assert calls == []  # eval, gate 0: the base's change would be multiplied by zero
    wrapped.train()(moving)
    assert len(calls) == 1  # training: the gate's gradient needs it
    with torch.no_grad():
        wrapped.head.gate.fill_(0.5)
    before = wrapped.eval()(still)
    assert len(calls) == 2 and not torch.equal(before, still[:, -1:].expand_as(before))  # the base's change counts


def test_kernel_head_moves_each_pixel_towards_a_mix_of_its_neighbours_channel_by_channel():
    """Version 3 (the default): however it was trained, a uniform still window stays as it is (every neighbour
    equals the last frame, replicated at the borders), each channel is forecast by the same rule (permuting the
    channels permutes the forecast), and with ``amount`` = 1 the forecast stays within the range of the last
    frames (a convex mix of neighbours); in eval mode with the gate at zero the base is not run."""
    cfg = dict(ARCHITECTURES["tau"].tiny_config, channels=3)
    torch.manual_seed(0)
    wrapped = with_persistence(build_model("tau", cfg)).eval()
    assert wrapped.head.version == HEAD_VERSION == 3 and wrapped.config.head_version == 3
    with torch.no_grad():
        for p in wrapped.head.parameters():
            p.normal_()
        wrapped.head.gate.zero_()
    shape = (2, wrapped.frames_in, 3, cfg["height"], cfg["width"])
    flat = torch.rand(2, 1, 3, 1, 1).expand(shape).contiguous()
    torch.testing.assert_close(wrapped(flat), flat[:, -1:].expand(-1, wrapped.frames_out, -1, -1, -1))
    x = torch.rand(shape)
    y = wrapped(x)
    assert not torch.equal(y, x[:, -1:].expand_as(y))
    order = [2, 0, 1]
    torch.testing.assert_close(wrapped(x[:, :, order]), y[:, :, order])
    with torch.no_grad():
        wrapped.head.amount.weight.zero_()
        wrapped.head.amount.bias.fill_(1.0)
    y = wrapped(x)
    seen = x[:, -wrapped.head.taps :]
    assert y.min() >= seen.min() - 1e-6 and y.max() <= seen.max() + 1e-6
    calls = []
    wrapped.base.register_forward_hook(lambda *a: calls.append(1))
    wrapped(x)
    assert calls == []
    with torch.no_grad():
        wrapped.head.gate.fill_(0.5)
    assert not torch.equal(wrapped(x), y) and len(calls) == 1


@pytest.mark.parametrize("frames_in", [1, 2, 5])
def test_kernel_head_reads_as_many_of_the_last_frames_as_there_are(frames_in):
    """Version 3 mixes the neighbourhoods of min(frames_in, 3) frames: a one-frame window works (version 2 could
    not: it reads differences), and the frames before those are not read."""
    head = PersistenceHead(frames_in, 2, hidden=4, frames_out=3).eval()
    assert head.taps == min(frames_in, 3)
    torch.manual_seed(0)
    with torch.no_grad():
        for p in head.parameters():
            p.normal_()
    x = torch.rand(2, frames_in, 2, 12, 12)
    y = head(x, None)
    assert y.shape == (2, 3, 2, 12, 12) and not torch.equal(y, x[:, -1:].expand_as(y))
    if frames_in > 3:
        older = x.clone()
        older[:, : frames_in - 3] = torch.rand_like(older[:, : frames_in - 3])
        torch.testing.assert_close(head(older, None), y)


@pytest.mark.parametrize("size", [16, 8])
def test_kernel_head_trains_on_mse_plus_a_little_ssim_where_frames_have_it(size):
    """Version 3's training loss is the recipe's plus ``SSIM_WEIGHT`` · (1 − SSIM) (frames of 11×11 or more);
    the earlier heads' is the recipe's alone."""
    cfg = dict(ARCHITECTURES["tau"].tiny_config, height=size, width=size)
    torch.manual_seed(0)
    seq = torch.rand(2, 8, 1, size, size)
    for version in (3, 2):
        torch.manual_seed(0)
        wrapped = with_persistence(build_model("tau", cfg), version=version).train()
        with torch.no_grad():
            for p in wrapped.head.parameters():
                p.normal_(0, 0.1)
        arch = get_architecture(wrapped.arch)
        recipe = dataclasses.replace(
            arch.recipe, frames_in=wrapped.frames_in, frames_out=wrapped.frames_out, loss="mse"
        )
        x, target = seq[:, : wrapped.frames_in], seq[:, wrapped.frames_in : wrapped.frames_in + wrapped.frames_out]
        pred = wrapped(x)
        expected = torch.nn.functional.mse_loss(pred, target)
        if version == 3 and size >= 11:
            term = SSIM_WEIGHT * (1 - frame_ssim(pred, target).mean())
            assert term > 1e-4  # (random frames: SSIM far from 1)
            expected = expected + term
        loss = compute_loss(wrapped, recipe, seq, 0.0)
        torch.testing.assert_close(loss, expected)
        loss.backward()
        assert all(p.grad is not None for p in wrapped.head.parameters() if p is not wrapped.head.gate)


def test_folders_written_with_the_first_head_still_load_and_forecast_the_same(tmp_path):
    """A config without ``head_version`` is a version-1 head (the layout before version 2)."""
    cfg = ARCHITECTURES["convlstm"].tiny_config
    torch.manual_seed(0)
    old = with_persistence(build_model("convlstm", cfg), version=1).eval()
    with torch.no_grad():
        old.head.out.bias.fill_(0.05)
    config = old.config.to_dict()
    config.pop("head_version")
    again = build_model(old.arch, config)
    assert again.head.version == 1 and not hasattr(again.head, "gate")
    again.load_state_dict(old.state_dict())  # strict: the same tensors
    x = torch.rand(1, old.frames_in, old.channels, cfg["height"], cfg["width"])
    torch.testing.assert_close(again.eval()(x), old(x))


def test_head_checks_the_window():
    wrapped = with_persistence(build_model("convlstm", ARCHITECTURES["convlstm"].tiny_config))
    with pytest.raises(InputError, match="maps 4 frames"):
        wrapped(torch.rand(1, 3, 1, 16, 16))


def test_default_finetune_records_the_head_and_load_forecaster_onnx_work(tmp_path):
    clips = realistic_clips(2, frames=24, height=16, width=16, rgb=False)
    p2, hist = finetune(tiny("tau"), clips, steps=6, batch_size=4, lr=1e-2, out_dir=tmp_path, **QUICK)
    cfg = json.loads((tmp_path / "config.json").read_text())
    assert cfg["architecture"] == "tau+persistence" and cfg["config"]["head_hidden"] >= 1
    assert cfg["training"]["head"] == "persistence" and hist.head == "persistence"
    q = stzoo.load(tmp_path)
    assert has_persistence_head(q.model)
    x = clips[0][:4]
    np.testing.assert_array_equal(q.predict(x), p2.predict(x))
    f = stzoo.Forecaster(q, horizon=4)
    for frame in x:
        f.push(frame)
    assert f.forecast().shape == (4, 16, 16)
    pytest.importorskip("onnx")
    q.export_onnx(tmp_path / "m.onnx")
    assert (tmp_path / "m.onnx").stat().st_size > 0


def test_direct_head_keeps_the_old_architecture(tmp_path):
    clips = realistic_clips(2, frames=24, height=16, width=16, rgb=False)
    _, hist = finetune(tiny("tau"), clips, steps=2, head="direct", out_dir=tmp_path, **QUICK)
    assert hist.head == "direct"
    assert hist.kept == "fine-tuned" or json.loads((tmp_path / "config.json").read_text())["architecture"].endswith(
        SUFFIX
    )
    with pytest.raises(InputError, match="head"):
        finetune(tiny("tau"), clips, head="residual", out_dir=tmp_path / "x", **QUICK)


# ---------------------------------------------------------------------------------------------
# never worse than doing nothing
# ---------------------------------------------------------------------------------------------
def test_step_zero_is_validated_and_a_run_that_learns_nothing_keeps_copy_last(tmp_path):
    clips = realistic_clips(3, frames=24, height=16, width=16, rgb=False)
    with pytest.warns(FinetuneWarning, match="does not beat copying the last frame"):
        # a learning rate far too high: every trained state is worse than the start
        p2, hist = finetune(tiny("tau"), clips, steps=3, lr=30.0, batch_size=4, out_dir=tmp_path, **QUICK)
    assert all(e["val"]["mse"] > hist.persistence["mse"] for e in hist.epochs if "val" in e)
    assert hist.start["step"] == 0 and hist.start["val"]["mse"] == pytest.approx(hist.persistence["mse"], rel=1e-5)
    assert hist.best_epoch == 0 and hist.kept == "persistence-equivalent" and hist.beats_persistence is False
    card = (tmp_path / "README.md").read_text()
    assert "PERSISTENCE-EQUIVALENT" in card and "before any training (step 0)" in card
    assert json.loads((tmp_path / "config.json").read_text())["training"]["kept"] == "persistence-equivalent"
    q = stzoo.load(tmp_path)
    for p in (p2, q):
        np.testing.assert_array_equal(p.predict(clips[0][:4]), _frames(p, clips[0]))


def test_direct_model_worse_than_copy_last_is_replaced_by_the_persistence_model(tmp_path):
    clips = realistic_clips(3, frames=24, height=16, width=16, rgb=False)
    with pytest.warns(FinetuneWarning):
        p2, hist = finetune(tiny("tau"), clips, steps=2, lr=1e-9, head="direct", out_dir=tmp_path, **QUICK)
    assert hist.start["val"]["mse"] > hist.persistence["mse"]  # the random model starts worse than copy-last
    assert hist.kept == "persistence-equivalent"
    q = stzoo.load(tmp_path)
    assert q.entry.architecture == "tau+persistence"
    np.testing.assert_array_equal(q.predict(clips[0][:4]), _frames(q, clips[0]))
    assert json.loads((tmp_path / "config.json").read_text())["metrics"]["mse"] == round(hist.persistence["mse"], 4)


def test_a_run_that_learns_keeps_its_best_validated_state(tmp_path):
    clips = realistic_clips(3, frames=32, height=16, width=16, rgb=False)
    _, hist = finetune(tiny("tau"), clips, steps=80, lr=1e-2, batch_size=4, out_dir=tmp_path, **QUICK)
    assert hist.kept == "fine-tuned" and hist.beats_persistence and (hist.best_epoch >= 1 or hist.head_trained)
    eligible = [e["val"]["mse"] for e in hist.epochs if "val" in e and not e["worse_than_copy_last_on"]]
    assert hist.best["mse"] < hist.persistence["mse"] and hist.best["mse"] == min([hist.start["val"]["mse"], *eligible])


def test_static_clip_saves_the_persistence_model_with_a_clear_message(tmp_path, capsys):  # F10
    clip = np.repeat(square_video(frames=1), 24, axis=0)
    with pytest.warns(FinetuneWarning, match="never changes"):
        p2, hist = finetune(tiny("tau"), [clip, clip], out_dir=tmp_path / "py", **FAST)
    assert hist.kept.startswith("persistence-equivalent") and hist.steps == []
    assert "never changes" in (tmp_path / "py" / "README.md").read_text()
    np.testing.assert_array_equal(stzoo.load(tmp_path / "py").predict(clip[:4]), clip[:4])
    tiny("tau").save_pretrained(tmp_path / "base")
    write_gif(clip, tmp_path / "still.gif")
    rc = main(["finetune", str(tmp_path / "base"), "--data", str(tmp_path / "still.gif"), "--out", str(tmp_path / "c")])
    out = capsys.readouterr()
    assert rc == 0 and "never changes" in out.out and "Traceback" not in out.err
    assert stzoo.load(tmp_path / "c").predict(clip[:4]).shape == (4, 16, 16)


# ---------------------------------------------------------------------------------------------
# learning more from little footage
# ---------------------------------------------------------------------------------------------
def test_augment_names_and_batches():
    assert parse_augment("auto") == ("hflip",) and parse_augment("none") == () and parse_augment(None) == ()
    assert parse_augment("hflip,reverse") == ("hflip", "reverse") == parse_augment(["hflip", "reverse"])
    with pytest.raises(InputError, match="unknown augmentation"):
        parse_augment("rotate")
    batch = torch.rand(16, 6, 1, 4, 5)
    a, b = augment_batch(batch, ("hflip",), 0, 3), augment_batch(batch, ("hflip",), 0, 3)
    assert torch.equal(a, b)  # a pure function of seed and step (a resumed run sees the same batches)
    flipped = [i for i in range(16) if not torch.equal(a[i], batch[i])]
    assert 0 < len(flipped) < 16 and all(torch.equal(a[i], batch[i].flip(-1)) for i in flipped)
    r = augment_batch(batch, ("reverse",), 0, 3)
    assert any(torch.equal(r[i], batch[i].flip(0)) and not torch.equal(r[i], batch[i]) for i in range(16))
    assert torch.equal(augment_batch(batch, (), 0, 3), batch)


def test_crop_shifts_each_picked_clip_as_a_whole_and_keeps_the_frame_size():
    """``"crop"``: a clip seen through a window shifted by up to 1/8 of the frame, the same for all its frames, the
    edge repeated; the other kinds draw as before (a run without crops sees the same batches)."""
    torch.manual_seed(0)
    batch = torch.rand(32, 4, 2, 16, 24)
    out = augment_batch(batch, ("crop",), 0, 5)
    assert out.shape == batch.shape and torch.equal(out, augment_batch(batch, ("crop",), 0, 5))
    shifted = 0
    for clip, orig in zip(out, batch):
        if torch.equal(clip, orig):
            continue
        found = [
            (dy, dx)
            for dy in range(-2, 3)
            for dx in range(-3, 4)
            if torch.equal(clip[..., 2:-2, 3:-3], orig[..., 2 + dy : 14 + dy, 3 + dx : 21 + dx])
        ]
        assert len(found) == 1 and found[0] != (0, 0)  # one shift within 1/8 of 16 and of 24, whole clip
        dy, dx = found[0]
        assert torch.equal(clip, shift_frames(orig, dy, dx))
        shifted += 1
    assert 0 < shifted < 32
    edge = shift_frames(torch.arange(5.0).view(1, 5), 0, 2)
    assert edge.tolist() == [[2.0, 3.0, 4.0, 4.0, 4.0]]  # beyond the frame: its edge repeated
    both = augment_batch(batch, ("hflip", "crop"), 0, 5)
    flipped = augment_batch(batch, ("hflip",), 0, 5)
    shifts = [(dy, dx) for dy in range(-2, 3) for dx in range(-3, 4)]
    assert all(any(torch.equal(both[i], shift_frames(flipped[i], *d)) for d in shifts) for i in range(32))
    assert parse_augment("hflip,crop") == ("hflip", "crop")


def test_time_budget_cuts_auto_steps_and_the_estimate_is_printed(tmp_path, capsys):
    plan = plan_steps(400, 8)  # 2000 steps by the data rule
    fit = fit_to_time(plan, step_s=1.0, val_s=2.0, minutes=5)
    assert fit["steps"] < plan["steps"] and fit["steps"] * 1.0 + 2.0 * (1 + fit["epochs"]) <= 5 * 60 + 2
    assert "to fit 5 min" in fit["rule"] and fit["estimate_s"] <= 5 * 60 + 2
    assert fit_to_time(plan, step_s=100.0, val_s=0.0, minutes=1)["steps"] == MIN_TIMED_STEPS
    assert fit_to_time(plan, step_s=1.0, val_s=0.0, minutes=None)["steps"] == plan["steps"]
    clips = realistic_clips(2, frames=24, height=16, width=16, rgb=False)
    _, hist = finetune(tiny("tau"), clips, steps=3, out_dir=tmp_path, patience=None)
    assert "finetune plan: 3 step(s)" in capsys.readouterr().err and hist.plan["step_s"] > 0


def test_cli_head_augment_and_time_budget(tmp_path, capsys):
    tiny("tau").save_pretrained(tmp_path / "base")
    clips = realistic_clips(2, frames=24, height=16, width=16, rgb=False)
    for i, c in enumerate(clips):
        write_gif(c, tmp_path / f"c{i}.gif")
    common = ["finetune", str(tmp_path / "base"), "--data", str(tmp_path / "c0.gif"), str(tmp_path / "c1.gif")]
    rc = main(
        [*common, "--out", str(tmp_path / "o"), "--steps", "2", "--head", "direct", "--augment", "none", "--quiet"]
    )
    assert rc == 0
    hist = json.loads((tmp_path / "o" / "history.json").read_text())
    assert hist["head"] == "direct" and hist["data"]["augment"] == []
    assert main([*common, "--out", str(tmp_path / "p"), "--augment", "spin"]) == 2
    assert "unknown augmentation" in capsys.readouterr().err


# ---------------------------------------------------------------------------------------------
# audit items F7 and F14 (issue 31)
# ---------------------------------------------------------------------------------------------
def test_symlink_loops_in_a_data_folder_read_each_video_once(tmp_path):  # F7
    data = tmp_path / "data"
    (data / "sub").mkdir(parents=True)
    np.save(data / "a.npy", square_video(0))
    np.save(data / "sub" / "b.npy", square_video(1))
    os.symlink(data, data / "loop")  # back to the top
    os.symlink(data / "sub", data / "sub" / "self")  # into itself
    os.symlink(data / "a.npy", data / "sub" / "a-again.npy")  # the same file twice
    videos = load_videos(data)
    assert sorted(v.name.rsplit("/", 1)[-1] for v in videos) == ["a.npy'", "b.npy'"]
    only_links = tmp_path / "links"
    only_links.mkdir()
    os.symlink(only_links, only_links / "me")
    with pytest.raises(InputError, match="no videos in"):
        load_videos(only_links)


def test_deep_folders_are_refused_with_a_clear_error(tmp_path):  # F7: bounded depth
    deep = tmp_path / "d"
    cur = deep
    for i in range(12):
        cur = cur / f"l{i}"
    cur.mkdir(parents=True)
    np.save(cur / "a.npy", square_video(0))
    with pytest.raises(InputError, match="folders deep"):
        load_videos(deep)


def test_non_utf8_file_names_survive_the_final_save(tmp_path):  # F14
    folder = os.fsencode(tmp_path / "data")
    os.mkdir(folder)
    for i, raw in enumerate((b"clip\xff.npy", b"\xe9t\xe9.npy")):
        with open(os.path.join(folder, raw), "wb") as f:
            np.save(f, square_video(i))
    try:
        names = os.listdir(folder)
    except OSError:  # a file system that refuses such names: nothing to test
        pytest.skip("the file system refuses non-UTF-8 names")
    assert len(names) == 2
    _, hist = finetune(tiny(), os.fsdecode(folder), steps=2, out_dir=tmp_path / "out", **QUICK)
    card = (tmp_path / "out" / "README.md").read_text(encoding="utf-8")
    assert "udcff" in card or "udce9" in card  # the names, escaped
    assert stzoo.load(tmp_path / "out").predict(square_video(0)[:4]).shape == (4, 16, 16)
    json.loads((tmp_path / "out" / "history.json").read_text(encoding="utf-8"))
    for w in hist.warnings:  # the warnings that name videos name them escaped too
        w.encode("utf-8")


def test_resume_keeps_the_time_fitted_budget(tmp_path):
    clips = realistic_clips(2, frames=24, height=16, width=16, rgb=False)
    kw = dict(batch_size=4, out_dir=tmp_path, **QUICK)
    _, first = finetune(tiny("tau"), clips, time_budget=1e-4, max_steps=2, **kw)  # the budget: what fits
    assert first.plan["steps"] == MIN_TIMED_STEPS and "to fit" in first.plan["rule"]
    _, rest = finetune(tiny("tau"), clips, resume=True, **kw)  # another budget would be another run
    assert rest.steps[0]["step"] == 3 and rest.steps[-1]["step"] == MIN_TIMED_STEPS
    with pytest.raises(InputError, match="time_budget"):
        finetune(tiny("tau"), clips, time_budget=-1, **{**kw, "out_dir": tmp_path / "x"})


# ---------------------------------------------------------------------------------------------
# validation on every clip, and a kept state never worse than copy-last on any of them
# ---------------------------------------------------------------------------------------------
def _ramps(turn_at: int | None, frames: int = 24, seed: int = 0) -> np.ndarray:
    """A still texture whose brightness rises by 0.02 a frame, T×16×16 float in [0, 1]; from frame
    ``turn_at`` on it falls instead (a trend learned on the rise is wrong there)."""
    texture = np.random.default_rng(seed).uniform(0.1, 0.3, (16, 16))
    t = np.arange(frames, dtype=float)
    level = 0.02 * (t if turn_at is None else np.where(t < turn_at, t, 2 * (turn_at - 1) - t))
    return (texture[None] + level[:, None, None]).clip(0, 1).astype(np.float32)


def test_auto_validation_holds_out_the_end_of_every_clip():
    from stzoo.data.clips import AUTO_TIME_MAX_VIDEOS, auto_split

    five = load_videos([square_video(s) for s in range(5)])  # 24 frames each, 8-frame clips
    train, held, note = auto_split(five, window=8)
    assert [v.length for v in train] == [16] * 5 and [v.length for v in held] == [8] * 5 and "every video" in note
    for v, tr, va in zip(five, train, held):  # the two parts tile the video: no frame in both
        assert torch.equal(torch.cat([tr.frames, va.frames]), v.frames)
    train, held, note = auto_split(five, window=8, split="video")  # the behaviour before, on request
    assert len(train) == 4 and [v.name for v in held] == ["video 4 of the list"] and "whole videos" in note
    many = load_videos([square_video(s) for s in range(AUTO_TIME_MAX_VIDEOS + 1)])
    assert len(auto_split(many, window=8)[1]) == round(0.2 * len(many))  # many videos: whole videos
    short = load_videos([square_video(s, frames=12) for s in range(3)])  # cannot spare 8 frames each
    train, held, note = auto_split(short, window=8)
    assert len(train) == 2 and len(held) == 1 and "whole videos" in note


def test_every_clip_selection_never_keeps_a_state_worse_than_copy_last_on_a_clip(tmp_path):
    """Four clips keep rising; on the fifth the rise turns into a fall exactly where its validation
    window's forecast begins. Every state that learned "keep rising" beats copy-last on the mean of the
    five validation windows but loses on the fifth: the mean rule keeps such a state, the every-clip rule
    (the default) does not."""
    clips = [_ramps(None, seed=s) for s in range(4)] + [_ramps(20, seed=5)]  # window 8: val = frames 16-23
    kw = dict(steps=20, lr=1e-2, batch_size=8, augment="none", **QUICK)
    with warnings.catch_warnings():  # (the every-clip run may warn that it kept copy-last)
        warnings.simplefilter("ignore", FinetuneWarning)
        _, mean = finetune(tiny("tau"), clips, select="mean", out_dir=tmp_path / "mean", **kw)
        _, safe = finetune(tiny("tau"), clips, out_dir=tmp_path / "safe", **kw)
    for h in (mean, safe):
        assert [c["video"].rsplit(" ", 1)[-1] for c in h.persistence_clips] == ["16-23"] * 5  # every clip's end
    turned, copy_turned = (lambda h: h.epochs[h.best_epoch - 1]["val_clips"][4]["mse"]), mean.persistence_clips[4]
    assert mean.kept == "fine-tuned" and mean.best["mse"] < mean.persistence["mse"]
    assert turned(mean) > copy_turned["mse"]  # the mean rule kept a state worse than copy-last on clip 5
    assert any(e.get("worse_than_copy_last_on") for e in safe.epochs)  # the rule had something to refuse
    kept = safe.start if safe.best_epoch == 0 else safe.epochs[safe.best_epoch - 1]
    assert all(
        c["mse"] <= p["mse"] * (1 + 1e-6) and c["ssim"] >= p["ssim"] - 1e-6
        for c, p in zip(kept["val_clips"], safe.persistence_clips)
    )
    training = json.loads((tmp_path / "safe" / "config.json").read_text())["training"]
    assert "any validation video" in training["selection"] and "end of every video" in training["split"]
    # the folder, scored again on clip 5's validation window: not worse than copying the last frame
    from stzoo.data.clips import ClipDataset
    from stzoo.training.evaluation import evaluate, evaluate_copy_last

    ds = ClipDataset(load_videos(clips[4][16:]), 8)
    got = evaluate(stzoo.load(tmp_path / "safe").model, ds, frames_in=4, frames_out=4, progress=False)["mse"]
    assert got <= evaluate_copy_last(ds, frames_in=4, frames_out=4, progress=False)["mse"] * (1 + 1e-5)


def test_select_is_checked_and_reachable_from_the_cli(tmp_path, capsys):
    with pytest.raises(InputError, match="select"):
        finetune(tiny("tau"), [square_video(s) for s in range(2)], select="best", out_dir=tmp_path, **QUICK)
    tiny("tau").save_pretrained(tmp_path / "base")
    for s in range(2):
        np.save(tmp_path / f"v{s}.npy", square_video(s))
    argv = ["finetune", str(tmp_path / "base"), "--data", str(tmp_path / "v0.npy"), str(tmp_path / "v1.npy")]
    rc = main([*argv, "--out", str(tmp_path / "o"), "--steps", "2", "--select", "mean", "--split", "video", "--quiet"])
    assert rc == 0
    hist = json.loads((tmp_path / "o" / "history.json").read_text())
    assert hist["data"]["selection"] == "mean" and "whole videos" in hist["data"]["split"]
    assert "lowest validation MSE over all" in hist["selection"]


def test_every_clip_rule_refuses_a_lower_ssim_even_with_a_lower_mse():
    """A state is worse than copy-last on a video when it loses by either measure: a lower MSE does not buy
    back a lower SSIM (the folder must not be worse than persistence on its own clips by either)."""
    from stzoo.training.finetune_history import FinetuneHistory
    from stzoo.training.finetune_run import _worse_clips

    history = FinetuneHistory()
    history.persistence_clips = [{"video": v, "mse": 2.0, "ssim": 0.8} for v in ("a", "b", "c")]
    rec = {
        "val_clips": [
            {"video": "a", "mse": 1.0, "ssim": 0.79},  # better MSE, worse SSIM
            {"video": "b", "mse": 2.5, "ssim": 0.9},  # worse MSE, better SSIM
            {"video": "c", "mse": 2.0, "ssim": 0.8},  # a tie is not worse
        ]
    }
    assert _worse_clips(rec, history, "every-clip") == ["a", "b"]
    assert _worse_clips(rec, history, "mean") is None
