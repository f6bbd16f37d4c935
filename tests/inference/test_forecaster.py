"""stzoo.Forecaster: streaming equals predict on the documented context, cost per push, kinds, errors,
and the `stzoo stream` command."""

import json

import numpy as np
import pytest
import torch
from PIL import Image

import stzoo
from stzoo.cli.main import main
from stzoo.errors import InputError, InputTypeError
from stzoo.frames import read_frames, write_gif
from stzoo.inference.predictor import Predictor
from stzoo.models import build_model
from stzoo.zoo.manifest import InputSpec

T = 4


def tau_predictor(channels=1):
    model = build_model("tau", {"frames": T, "channels": channels, "hid_S": 4, "hid_T": 8, "N_T": 2, "mlp_ratio": 2.0})
    return Predictor(model, InputSpec(T, T, channels, 16, 16), name="tiny-tau")


def rec_predictor(arch="convlstm", channels=1):
    cfg = {"frames_in": T, "frames_out": T, "channels": channels, "num_layers": 2, "num_hidden": 4, "filter_size": 3}
    if arch == "sa_convlstm":
        cfg["attn_dim"] = 2
    return Predictor(build_model(arch, cfg), InputSpec(T, T, channels, 16, 16), name="tiny-rec")


def clip(n, *shape, dtype=np.float32):
    rng = np.random.default_rng(1)
    if dtype == np.uint8:
        return rng.integers(0, 256, size=(n,) + shape, dtype=np.uint8)
    return rng.random((n,) + shape, dtype=np.float32)


ARCHS = ["tau", "convlstm", "sa_convlstm"]


def make(arch, channels=1):
    return tau_predictor(channels) if arch == "tau" else rec_predictor(arch, channels)


@pytest.mark.parametrize("arch", ARCHS)
def test_window_context_equals_predict_on_the_last_frames_in(arch):
    p = make(arch)
    f = stzoo.Forecaster(p, horizon=6, context="window")
    frames = clip(9, 16, 16)
    for n in range(1, 10):
        f.push(frames[n - 1])
        if not f.ready:
            assert arch == "tau" and f.frames_needed == T - n
            continue
        # predict reads the last frames_in frames of what it is given, like the window
        np.testing.assert_allclose(f.forecast(), p.predict(frames[:n], horizon=6), rtol=0, atol=1e-6)


@pytest.mark.parametrize("arch", ["convlstm", "sa_convlstm"])
def test_stream_context_carries_the_state_over_the_whole_stream(arch):
    p = make(arch)
    f = stzoo.Forecaster(p, horizon=5)
    assert f.context == "stream"
    frames = clip(10, 16, 16)
    for n in range(1, 11):
        f.push(frames[n - 1])
        got = f.forecast()
        if n <= T:  # up to frames_in frames: exactly predict
            np.testing.assert_allclose(got, p.predict(frames[:n], horizon=5), rtol=0, atol=1e-6)
        # always: the model run over every frame pushed since reset
        with torch.no_grad():
            full = p.model(torch.from_numpy(frames[:n])[None, :, None], 5)[0, :, 0].clamp(0, 1).numpy()
        np.testing.assert_allclose(got, full, rtol=0, atol=1e-6)


@pytest.mark.parametrize("arch", ["convlstm", "sa_convlstm"])
def test_each_push_is_one_step_and_forecast_leaves_the_state_alone(arch, monkeypatch):
    p = make(arch)
    calls = {"step": 0, "forward": 0}
    step, forward = p.model.step, p.model.forward

    def counting_step(*a, **k):
        calls["step"] += 1
        return step(*a, **k)

    def counting_forward(*a, **k):
        calls["forward"] += 1
        return forward(*a, **k)

    monkeypatch.setattr(p.model, "step", counting_step)
    monkeypatch.setattr(p.model, "forward", counting_forward)
    frames = clip(8, 16, 16)
    f = stzoo.Forecaster(p, horizon=3)
    for i in range(6):
        f.push(frames[i])
    assert calls == {"step": 6, "forward": 0}
    first = f.forecast()
    assert calls["step"] == 6 + 2  # the first forecast frame came with the last push
    np.testing.assert_array_equal(f.forecast(), first)  # cached: no new steps
    assert calls["step"] == 8
    f.push(frames[6])
    f.push(frames[7])
    # the forecasts in between did not disturb the state: same as a stream without them
    g = stzoo.Forecaster(p, horizon=3)
    for i in range(8):
        g.push(frames[i])
    np.testing.assert_array_equal(f.forecast(), g.forecast())


def test_tau_push_only_buffers_and_forecast_recomputes_the_window(monkeypatch):
    p = tau_predictor()
    calls = []
    forward = p.model.forward
    monkeypatch.setattr(p.model, "forward", lambda x: calls.append(x.shape[1]) or forward(x))
    f = stzoo.Forecaster(p, horizon=T)
    for frame in clip(7, 16, 16):
        f.push(frame)
    assert calls == []
    f.forecast()
    assert calls == [T]


def test_rollout_longer_than_native_and_per_call_horizon():
    p = tau_predictor()
    frames = clip(T, 16, 16)
    f = stzoo.Forecaster(p)
    assert f.horizon == T
    for frame in frames:
        f.push(frame)
    assert f.forecast().shape == (T, 16, 16)
    np.testing.assert_allclose(f.forecast(horizon=3 * T - 1), p.predict(frames, horizon=3 * T - 1), atol=1e-6)


def test_not_ready_says_how_many_frames_are_missing():
    f = stzoo.Forecaster(tau_predictor())
    assert not f.ready and f.frames_needed == T
    f.push(clip(1, 16, 16)[0])
    assert f.frames_needed == T - 1
    with pytest.raises(InputError, match=f"push {T - 1} more"):
        f.forecast()
    g = stzoo.Forecaster(rec_predictor(), min_frames=3)
    g.push(clip(1, 16, 16)[0])
    assert g.frames_needed == 2 and not g.ready


def test_reset_starts_a_new_stream_of_another_size():
    p = rec_predictor()
    f = stzoo.Forecaster(p, horizon=2)
    f.push(clip(1, 16, 16)[0])
    with pytest.raises(InputError, match="reset"):
        f.push(clip(1, 8, 8)[0])
    f.reset()
    assert f.frames_seen == 0 and not f.ready
    small = clip(3, 8, 8)
    for frame in small:
        f.push(frame)
    np.testing.assert_allclose(f.forecast(), p.predict(small, horizon=2), atol=1e-6)


def test_frame_kinds_come_back_as_they_went_in():
    p = rec_predictor(channels=3)
    f = stzoo.Forecaster(p, horizon=2)
    hwc = clip(3, 16, 16, 3, dtype=np.uint8)
    for frame in hwc:
        f.push(frame)
    out = f.forecast()
    assert isinstance(out, np.ndarray) and out.shape == (2, 16, 16, 3) and out.dtype == np.uint8
    np.testing.assert_array_equal(out, p.predict(hwc, horizon=2))

    f.reset()
    chw = torch.from_numpy(clip(3, 3, 16, 16))
    for frame in chw:
        f.push(frame)
    out = f.forecast()
    assert isinstance(out, torch.Tensor) and out.shape == (2, 3, 16, 16) and out.dtype == torch.float32

    g = stzoo.Forecaster(rec_predictor(), horizon=2)
    images = [Image.fromarray(a) for a in clip(3, 16, 16, dtype=np.uint8)]
    for im in images:
        g.push(im)
    out = g.forecast()
    assert isinstance(out, list) and len(out) == 2 and out[0].size == (16, 16) and out[0].mode == "L"
    expected = g.predictor.predict(images, horizon=2)
    np.testing.assert_array_equal(np.stack([np.asarray(o) for o in out]), np.stack([np.asarray(o) for o in expected]))


def test_bad_arguments_and_frames():
    with pytest.raises(InputError, match="not recurrent"):
        stzoo.Forecaster(tau_predictor(), context="stream")
    with pytest.raises(InputError, match="context"):
        stzoo.Forecaster(rec_predictor(), context="all")
    with pytest.raises(InputError, match="horizon"):
        stzoo.Forecaster(rec_predictor(), horizon=0)
    with pytest.raises(InputError, match="min_frames"):
        stzoo.Forecaster(tau_predictor(), min_frames=2)
    with pytest.raises(InputTypeError, match="Predictor"):
        stzoo.Forecaster(build_model("convlstm", {}))
    f = stzoo.Forecaster(rec_predictor())
    with pytest.raises(InputError, match="one frame"):
        f.push(clip(2, 16, 16, 1))  # a clip, not a frame
    with pytest.raises(InputError, match="does not fit a 1-channel model"):
        f.push(clip(2, 16, 16))
    with pytest.raises(InputError, match="does not fit a 1-channel model"):
        f.push(clip(1, 16, 16, 2)[0])  # (an RGB frame would be converted to grey)
    with pytest.raises(InputTypeError):
        f.push([[0.0]])
    with pytest.raises(InputError, match="divisible"):
        f.push(clip(1, 15, 15)[0])
    assert f.frames_seen == 0


def test_fused_implementation_streams_like_its_predict():
    import stzoo.kernels as kernels  # a broken kernels package must fail here, not skip

    p = rec_predictor()
    if p.model.arch not in getattr(kernels, "FUSED", {}):
        pytest.skip("no fused ConvLSTM")
    p.use_impl("fused")
    f = stzoo.Forecaster(p, horizon=3)
    frames = clip(T, 16, 16)
    for frame in frames:
        f.push(frame)
    np.testing.assert_allclose(f.forecast(), p.predict(frames, horizon=3), rtol=0, atol=1e-6)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_streams_on_cuda():
    p = rec_predictor()
    p.model.cuda()
    f = stzoo.Forecaster(p, horizon=2)
    frames = torch.from_numpy(clip(3, 16, 16)).cuda()
    for frame in frames:
        f.push(frame)
    out = f.forecast()
    assert out.is_cuda
    torch.testing.assert_close(out, p.predict(frames, horizon=2))


def test_cli_stream(tmp_path, capsys):
    p = rec_predictor()
    ckpt = p.save_pretrained(
        tmp_path / "ckpt", config={"frames_in": T, "frames_out": T, "num_layers": 2, "num_hidden": 4, "filter_size": 3}
    )
    video = clip(7, 16, 16, dtype=np.uint8)
    write_gif(video, tmp_path / "clip.gif")
    out = tmp_path / "out"
    rc = main(
        [
            "stream",
            str(ckpt),
            "--input",
            str(tmp_path / "clip.gif"),
            "--horizon",
            "3",
            "--every",
            "2",
            "--min-frames",
            "2",
            "--out",
            str(out),
        ]
    )
    assert rc == 0
    text = capsys.readouterr().out
    assert "after frame 2: forecast of frames 3-5" in text and "after frame 6" in text
    summary = json.loads((out / "forecasts.json").read_text())
    assert [r["after_frame"] for r in summary["forecasts"]] == [2, 4, 6]
    saved = sorted(q.name for q in out.glob("forecast_*.gif"))
    assert saved == ["forecast_000002.gif", "forecast_000004.gif", "forecast_000006.gif"]
    # the saved rolling forecast is what a Forecaster gives for the same frames
    loaded = stzoo.load(ckpt)
    f = stzoo.Forecaster(loaded, horizon=3)
    for frame in video[:4]:
        f.push(frame)
    np.testing.assert_array_equal(read_frames(out / "forecast_000004.gif")[..., 0], f.forecast())
    # MSE against the frames that really followed, in the zoo table's convention: squared error summed
    # over the pixels of a frame (values in [0, 1]), averaged over frames; from the uint8 forecast within rounding
    rec = summary["forecasts"][1]
    assert rec["frames_compared"] == 3 and rec["mse"] == pytest.approx(f.compare(video[4:7])["mse"])
    per_frame = ((f.forecast().astype(float) / 255 - video[4:7].astype(float) / 255) ** 2).sum(axis=(1, 2))
    assert rec["mse"] == pytest.approx(per_frame.mean(), rel=0.02)
    assert rec["mse"] > 16 * 16 * 1e-3  # a sum over 256 pixels, not a per-pixel mean

    rc = main(["stream", str(ckpt), "--input", str(tmp_path / "clip.gif"), "--min-frames", "8"])
    assert rc == 2 and "fewer than the 8" in capsys.readouterr().err


def test_numpy_integer_counts_and_horizon_limits(monkeypatch):
    import stzoo.inference.predictor as sp

    p = rec_predictor()
    f = stzoo.Forecaster(p, horizon=np.int64(3), min_frames=np.int32(2))
    assert f.horizon == 3 and type(f.horizon) is int and f.min_frames == 2
    for bad in ("3", 3.0, True, -1):
        with pytest.raises(InputError, match="horizon must be a positive integer"):
            stzoo.Forecaster(p, horizon=bad)
    with pytest.raises(InputError, match="MAX_HORIZON"):
        stzoo.Forecaster(p, horizon=10**9)
    g = stzoo.Forecaster(p, horizon=50, max_horizon=50)
    frame = clip(1, 16, 16)[0]
    for ctx_f in (f, g, stzoo.Forecaster(p, context="window")):
        ctx_f.push(frame)
        ctx_f.push(frame)
    assert f.forecast(horizon=np.int64(2)).shape == (2, 16, 16)
    with pytest.raises(InputError, match="horizon"):
        f.forecast(horizon=10**9)
    with pytest.raises(InputError, match="horizon must be a positive integer"):
        f.forecast(horizon="2")
    assert g.forecast().shape == (50, 16, 16)
    with pytest.raises(InputError, match="max_output_bytes"):  # stream: one frame per step
        f.forecast(horizon=3, max_output_bytes=3 * 4 * 16 * 16 - 1)
    assert f.forecast(horizon=3, max_output_bytes=3 * 4 * 16 * 16).shape == (3, 16, 16)
    w = stzoo.Forecaster(p, context="window", max_output_bytes=4 * 16 * 16)
    w.push(frame)
    assert w.forecast(horizon=1).shape == (1, 16, 16)
    with pytest.raises(InputError, match="max_output_bytes"):  # window: checked by forecast_tensor
        w.forecast(horizon=2)
    monkeypatch.setattr(sp, "MAX_OUTPUT_BYTES", 4 * 16 * 16)
    with pytest.raises(InputError, match="MAX_OUTPUT_BYTES"):
        f.forecast(horizon=4)


def test_rgba_frame_is_refused_not_read_as_a_batch():
    f = stzoo.Forecaster(rec_predictor())
    with pytest.raises(InputError, match=r"does not fit a 1-channel model.*RGBA"):
        f.push(clip(1, 16, 16, 4, dtype=np.uint8)[0])
    g = stzoo.Forecaster(rec_predictor(channels=3))
    with pytest.raises(InputError, match=r"does not fit a 3-channel model.*\[\.\.\., :3\]"):
        g.push(clip(1, 16, 16, 4, dtype=np.uint8)[0])
    assert f.frames_seen == g.frames_seen == 0


def test_cli_stream_says_warnings_as_command_line_lines(tmp_path, capsys):
    p = rec_predictor()
    ckpt = p.save_pretrained(
        tmp_path / "ckpt", config={"frames_in": T, "frames_out": T, "num_layers": 2, "num_hidden": 4, "filter_size": 3}
    )
    rgb = np.stack([clip(5, 16, 16, dtype=np.uint8)] * 3, axis=-1)
    rgb[..., 0] //= 2  # not grey: the grey model converts the frames and says so
    write_gif(rgb, tmp_path / "rgb.gif")
    assert main(["stream", str(ckpt), "--input", str(tmp_path / "rgb.gif"), "--min-frames", "2"]) == 0
    err = capsys.readouterr().err.splitlines()
    said = [line for line in err if line.startswith("stzoo: warning: ")]
    assert said and any("grey" in line for line in said), err
    assert not any("warnings.warn" in line or "UserWarning" in line or ".py:" in line for line in err), err


def test_cli_warning_lines_name_the_category_of_other_packages(capsys):
    from stzoo.cli.main import show_warning
    from stzoo.frames import FramesWarning

    show_warning(FramesWarning("resized"), FramesWarning, "x.py", 1)
    show_warning(UserWarning("plain"), UserWarning, "x.py", 1)
    show_warning(FutureWarning("soon"), type("TorchFuture", (FutureWarning,), {"__module__": "torch.nn"}), "x.py", 1)
    assert capsys.readouterr().err.splitlines() == [
        "stzoo: warning: resized",
        "stzoo: warning: UserWarning: plain",
        "stzoo: warning: TorchFuture (from torch): soon",
    ]
