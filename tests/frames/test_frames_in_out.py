"""Frames in, frames out (issue 20): `stzoo predict --output` kinds, `.npy` layouts, one grey ↔ RGB rule for
every input kind, frame sizes other than the training size, the Forecaster's MSE convention,
`Predictor.to` / `__call__`, and `stzoo predict --dtype` and its help texts."""

from __future__ import annotations

import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import stzoo
from stzoo.cli.main import build_parser, main
from stzoo.errors import InputError
from stzoo.frames import LUMA, FramesWarning, prepare_frames, read_frames, write_gif
from stzoo.inference.predictor import Predictor
from stzoo.metrics import frame_mse
from stzoo.models import build_model
from stzoo.zoo.manifest import InputSpec

T = 4
SIZE = 16


def tau(channels: int = 1) -> Predictor:
    model = build_model("tau", {"frames": T, "channels": channels, "hid_S": 4, "hid_T": 8, "N_T": 2, "mlp_ratio": 2.0})
    return Predictor(model, InputSpec(T, T, channels, SIZE, SIZE), name="tiny-tau")


def convlstm(channels: int = 1) -> Predictor:
    cfg = {"frames_in": T, "frames_out": T, "channels": channels, "num_layers": 1, "num_hidden": 4, "filter_size": 3}
    return Predictor(build_model("convlstm", cfg), InputSpec(T, T, channels, SIZE, SIZE), name="tiny-rec")


def few_colours(n: int = T, size: int = SIZE) -> np.ndarray:
    """RGB uint8 frames with few colours, so that a GIF holds them exactly."""
    levels = np.random.default_rng(3).integers(0, 4, size=(n, size, size, 3))
    return (levels * 80).astype(np.uint8)


def grey(n: int = T, size: int = SIZE) -> np.ndarray:
    return np.random.default_rng(4).integers(0, 256, size=(n, size, size), dtype=np.uint8)


def frame_warnings(record: list) -> list[str]:
    return [str(w.message) for w in record if issubclass(w.category, FramesWarning)]


@pytest.fixture
def checkpoint(tmp_path: Path) -> Path:
    """A tiny ConvLSTM in the save_pretrained layout (trained size 16×16), for the CLI."""
    cfg = {"frames_in": T, "frames_out": T, "num_layers": 1, "num_hidden": 4, "filter_size": 3}
    return convlstm().save_pretrained(tmp_path / "ckpt", config=cfg)


# ---- 1: --output honours the extension -------------------------------------------------------------------
@pytest.mark.parametrize("name", ["out.gif", "out.npy", "frames", "frames/", "existing.d"])
def test_predict_output_kinds(tmp_path, checkpoint, name):
    np.save(tmp_path / "clip.npy", grey())
    (tmp_path / "existing.d").mkdir()
    out = tmp_path / name
    rc = main(
        [
            "predict",
            str(checkpoint),
            "--input",
            str(tmp_path / "clip.npy"),
            "--output",
            str(out) + ("/" if name.endswith("/") else ""),
            "--horizon",
            "3",
        ]
    )
    assert rc == 0
    if name.endswith(".npy"):
        assert np.load(out).shape == (3, SIZE, SIZE)
        return
    back = read_frames(out)  # a GIF, or a folder of PNGs read back in order
    assert back.shape == (3, SIZE, SIZE, 1)
    if not name.endswith(".gif"):
        assert sorted(p.name for p in out.iterdir()) == ["frame_000000.png", "frame_000001.png", "frame_000002.png"]
        assert Image.open(out / "frame_000000.png").mode == "L"
    future = stzoo.load(checkpoint).predict(grey(), horizon=3)
    np.testing.assert_array_equal(back[..., 0], future)  # GIF and PNG hold grey frames exactly


@pytest.mark.parametrize("suffix", [".mp4", ".avi", ".webm"])
def test_predict_output_video(tmp_path, checkpoint, suffix):
    pytest.importorskip("av")
    write_gif(few_colours(6), tmp_path / "clip.gif")
    out = tmp_path / f"out{suffix}"
    assert main(["predict", str(checkpoint), "--input", str(tmp_path / "clip.gif"), "--output", str(out)]) == 0
    video = read_frames(out)
    assert video.shape == (T, SIZE, SIZE, 3) and video.dtype == np.uint8  # the input's RGB channels
    with open(out, "rb") as f:
        head = f.read(64)
    magic = {".mp4": b"ftyp", ".avi": b"AVI ", ".webm": b"\x1a\x45\xdf\xa3"}[suffix]
    assert magic in head and not head.startswith(b"GIF")


@pytest.mark.parametrize("name", ["out.png", "out.txt", "out.jpg", "out.npz"])
def test_unknown_output_kind_fails_before_the_model_is_loaded(tmp_path, checkpoint, monkeypatch, capsys, name):
    np.save(tmp_path / "clip.npy", grey())

    def no_load(*args, **kwargs):
        raise AssertionError("the model was loaded before the output name was checked")

    monkeypatch.setattr("stzoo.api.load", no_load)
    rc = main(["predict", str(checkpoint), "--input", str(tmp_path / "clip.npy"), "--output", str(tmp_path / name)])
    err = capsys.readouterr().err
    assert rc == 2 and "stzoo: error:" in err
    assert all(kind in err for kind in (".gif", ".mp4", ".avi", ".webm", ".npy", "folder of PNGs"))
    assert not (tmp_path / name).exists()


def test_missing_video_library_names_the_extra(tmp_path, checkpoint, monkeypatch, capsys):
    np.save(tmp_path / "clip.npy", grey())
    monkeypatch.setitem(sys.modules, "av", None)  # `import av` raises ImportError
    rc = main(
        ["predict", str(checkpoint), "--input", str(tmp_path / "clip.npy"), "--output", str(tmp_path / "out.mp4")]
    )
    err = capsys.readouterr().err
    assert rc == 2 and '".[video]"' in err and "pip install av" in err
    assert not (tmp_path / "out.mp4").exists()


def test_odd_video_size_and_batches_are_refused_before_the_model_runs(tmp_path, checkpoint, monkeypatch, capsys):
    pytest.importorskip("av")
    np.save(tmp_path / "odd.npy", grey(size=SIZE)[:, :15, :])
    np.save(tmp_path / "batch.npy", np.stack([grey(6), grey(6)]))  # B×T×H×W
    ran = []
    monkeypatch.setattr(Predictor, "forecast_tensor", lambda *a, **k: ran.append(1))
    rc = main(["predict", str(checkpoint), "--input", str(tmp_path / "odd.npy"), "--output", str(tmp_path / "o.mp4")])
    assert rc == 2 and "even height and width" in capsys.readouterr().err
    rc = main(["predict", str(checkpoint), "--input", str(tmp_path / "batch.npy"), "--output", str(tmp_path / "o.gif")])
    assert rc == 2 and "batch of 2 sequences" in capsys.readouterr().err
    assert not ran


def test_png_folder_refuses_to_mix_with_other_images(tmp_path, checkpoint, capsys):
    np.save(tmp_path / "clip.npy", grey())
    (tmp_path / "out").mkdir()
    Image.fromarray(grey(1)[0]).save(tmp_path / "out" / "old.png")
    rc = main(["predict", str(checkpoint), "--input", str(tmp_path / "clip.npy"), "--output", str(tmp_path / "out")])
    assert rc == 2 and "old.png" in capsys.readouterr().err


# ---- 2: .npy layouts and dtypes -----------------------------------------------------------------------------
@pytest.mark.parametrize(
    "shape, dtype",
    [
        ((6, SIZE, SIZE), np.uint8),
        ((6, SIZE, SIZE, 1), np.uint8),
        ((6, 1, SIZE, SIZE), np.float32),
        ((2, 6, SIZE, SIZE), np.float32),
    ],
    ids=["THW-uint8", "THWC-uint8", "TCHW-float32", "BTHW-float32"],
)
def test_npy_out_has_the_input_layout_and_dtype(tmp_path, checkpoint, shape, dtype):
    clip = np.random.default_rng(0).random(shape)
    clip = (clip * 255).astype(np.uint8) if dtype == np.uint8 else clip.astype(dtype)
    np.save(tmp_path / "clip.npy", clip)
    assert (
        main(
            [
                "predict",
                str(checkpoint),
                "--input",
                str(tmp_path / "clip.npy"),
                "--output",
                str(tmp_path / "y.npy"),
                "--horizon",
                "5",
            ]
        )
        == 0
    )
    y = np.load(tmp_path / "y.npy")
    t_axis = 1 if len(shape) == 4 and shape[0] == 2 else 0
    want = list(shape)
    want[t_axis] = 5
    assert y.shape == tuple(want) and y.dtype == dtype
    np.testing.assert_array_equal(y, stzoo.load(checkpoint).predict(clip, horizon=5))  # = the Python API


def test_npy_path_in_python_follows_the_array(tmp_path):
    p = convlstm()
    clip = np.random.default_rng(1).random((T, 1, SIZE, SIZE)).astype(np.float32)
    np.save(tmp_path / "clip.npy", clip)
    y = p.predict(tmp_path / "clip.npy")
    assert y.shape == (T, 1, SIZE, SIZE) and y.dtype == np.float32
    np.testing.assert_array_equal(y, p.predict(clip))


def test_cli_layout_flag_and_message(tmp_path, checkpoint, capsys):
    clip = grey(T)[:, None]  # T×1×H×W: read as TCHW
    np.save(tmp_path / "clip.npy", clip.transpose(1, 0, 2, 3))  # 1×T×H×W: BTHW with one sequence
    assert (
        main(
            [
                "predict",
                str(checkpoint),
                "--input",
                str(tmp_path / "clip.npy"),
                "--output",
                str(tmp_path / "y.npy"),
                "--layout",
                "bthw",
            ]
        )
        == 0
    )
    assert np.load(tmp_path / "y.npy").shape == (1, T, SIZE, SIZE)
    np.save(tmp_path / "rgba.npy", np.zeros((T, SIZE, SIZE, 4), np.uint8))
    assert (
        main(["predict", str(checkpoint), "--input", str(tmp_path / "rgba.npy"), "--output", str(tmp_path / "z.npy")])
        == 2
    )
    err = capsys.readouterr().err
    assert "--layout BTHW" in err and "layout=" not in err  # CLI wording


# ---- 3: grey ↔ RGB, the same for every input kind ---------------------------------------------------------
def rgb_kinds(tmp_path: Path, rgb: np.ndarray) -> dict:
    write_gif(rgb, tmp_path / "clip.gif")
    (tmp_path / "folder").mkdir()
    for i, f in enumerate(rgb):
        Image.fromarray(f).save(tmp_path / "folder" / f"{i}.png")
    return {
        "numpy THWC": (rgb, "THWC"),
        "numpy TCHW": (rgb.transpose(0, 3, 1, 2).copy(), "TCHW"),
        "torch THWC": (torch.from_numpy(rgb), "THWC"),
        "PIL list": ([Image.fromarray(f) for f in rgb], "pil"),
        "arrays HWC": (list(rgb), "arrays"),
        "GIF": (str(tmp_path / "clip.gif"), "THWC"),
        "folder": (tmp_path / "folder", "THWC"),
    }


def as_thwc(y, how: str) -> np.ndarray:
    if how == "pil":
        return np.stack([np.asarray(im) for im in y])
    if how == "arrays":
        return np.stack(y)
    a = y.numpy() if isinstance(y, torch.Tensor) else y
    return a.transpose(0, 2, 3, 1) if how == "TCHW" else a


@pytest.mark.parametrize("make", [tau, convlstm], ids=["tau", "convlstm"])
def test_rgb_into_grey_model_is_one_rule_for_every_kind(tmp_path, make):
    p = make(1)
    rgb = few_colours()
    expected_in = (rgb.astype(np.float32) / 255) @ np.float32(LUMA)  # what the grey model must read
    grey_future = p.predict(expected_in.astype(np.float32))  # T×H×W float in [0, 1]
    expected = np.repeat(np.rint(np.clip(grey_future, 0, 1) * 255)[..., None], 3, axis=-1)
    for kind, (frames, how) in rgb_kinds(tmp_path, rgb).items():
        q = make(1)
        q.model.load_state_dict(p.model.state_dict())
        with warnings.catch_warnings(record=True) as record:
            warnings.simplefilter("always")
            y = q.predict(frames)
            q.predict(frames)  # a second call: no second warning
        messages = frame_warnings(record)
        assert len(messages) == 1 and "luminance" in messages[0] and "--channels 3" in messages[0], kind
        out = as_thwc(y, how)
        assert out.shape == (T, SIZE, SIZE, 3), kind  # the input's layout and channel count
        assert np.abs(out.astype(int) - expected).max() <= 1, kind  # the same forecast, whatever the kind
        assert np.array_equal(out[..., 0], out[..., 2]), kind  # grey, in all three channels


def test_rgb_conversion_is_the_luminance():
    rgb = few_colours()
    x, fmt = prepare_frames(rgb, channels=1)
    want = (rgb.astype(np.float64) / 255) @ np.array(LUMA)
    np.testing.assert_allclose(x[0, :, 0].numpy(), want, atol=1e-6)
    assert fmt.conversion == "RGB → grey" and fmt.source_channels == 3
    # Pillow's 'L' uses the same weights (in integers): within one level of it
    pil = np.stack([np.asarray(Image.fromarray(f).convert("L")) for f in rgb])
    assert np.abs(np.rint(want * 255) - pil).max() <= 1


@pytest.mark.parametrize("make", [tau, convlstm], ids=["tau", "convlstm"])
def test_grey_into_rgb_model_is_one_rule_for_every_kind(tmp_path, make):
    p = make(3)
    g = grey()
    write_gif(g, tmp_path / "grey.gif")
    kinds = {
        "numpy THW": (g, "THW"),
        "numpy THWC": (g[..., None], "THWC"),
        "torch TCHW": (torch.from_numpy(g[:, None]), "TCHW"),
        "PIL list": ([Image.fromarray(f) for f in g], "pil"),
        "GIF": (tmp_path / "grey.gif", "THWC"),
    }
    reference = p.predict(np.repeat(g[..., None], 3, axis=-1))  # RGB frames with R = G = B
    expected = np.rint(((reference.astype(np.float32) / 255) @ np.float32(LUMA)) * 255)
    for kind, (frames, how) in kinds.items():
        with warnings.catch_warnings(record=True) as record:
            warnings.simplefilter("always")
            y = p.predict(frames)
        out = y.numpy() if isinstance(y, torch.Tensor) else y
        out = np.stack([np.asarray(im) for im in out]) if how == "pil" else out
        out = out[..., 0] if how == "THWC" else (out[:, 0] if how == "TCHW" else out)
        assert out.shape == (T, SIZE, SIZE), kind  # grey in, grey out
        assert np.abs(out.astype(int) - expected).max() <= 1, kind
        if kind == "numpy THW":
            assert len(frame_warnings(record)) == 1 and "repeated into R, G and B" in frame_warnings(record)[0]
        else:
            assert frame_warnings(record) == [], kind  # once per Predictor


def test_rgb_layouts_that_used_to_be_refused():
    p = tau(1)
    rgb = few_colours()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FramesWarning)
        thwc = p.predict(rgb)
        tchw = p.predict(rgb.transpose(0, 3, 1, 2).copy())
        batched = p.predict(rgb[None])
    np.testing.assert_array_equal(thwc, tchw.transpose(0, 2, 3, 1))
    np.testing.assert_array_equal(thwc, batched[0])


def test_layout_mistakes_name_the_inferred_layout_and_the_argument():
    p = tau(1)
    clip = grey(T)
    with pytest.raises(InputError) as info:
        p.predict(clip[:3])  # 3×H×W: too few frames for TAU
    msg = str(info.value)
    assert "read as layout THW" in msg and "layout=" in msg and "3×16×16" in msg
    with pytest.raises(InputError) as info:
        p.predict(np.zeros((T, SIZE, SIZE, 4), np.uint8))  # RGBA: refused, not converted
    assert "would be read as BTHW" in str(info.value) and "layout='BTHW'" in str(info.value)
    with pytest.raises(InputError, match=r"expected 1 channel\(s\), got 16 .*read as layout THWC, the layout passed"):
        p.predict(clip[..., None].repeat(16, -1), layout="THWC")


# ---- one layout rule (issue 30): predict and fine-tuning read an array alike ----------------------
#: Shapes whose layout has to be guessed. Before issue 30 fine-tuning had its own rule (data/clips.py:
#: a last axis ≤ 4 is C, else an axis 1 ≤ 4, else refused). It agreed with predict on the first five and
#: not on the last four: B×T×H×W refused; T×2×H×W read as T×C×H×W where predict reads B×T×H×W; T×3×4×4
#: read as T×C×H×W where a grey model's predict reads B×T×H×W; RGBA T×H×W×4 taken where predict refuses it.
AMBIGUOUS = {
    "TxHxWx3": (6, SIZE, SIZE, 3),
    "Tx3xHxW": (6, 3, SIZE, SIZE),
    "TxHxW": (6, SIZE, SIZE),
    "Tx1xHxW": (6, 1, SIZE, SIZE),
    "TxHxWx1": (6, SIZE, SIZE, 1),
    "BxTxHxW": (2, 6, SIZE, SIZE),
    "Tx2xHxW": (6, 2, SIZE, SIZE),
    "Tx3x4x4": (6, 3, 4, 4),
    "TxHxWx4": (6, SIZE, SIZE, 4),
}


class _Read(Exception):
    """Stops a fine-tuning run once its data is read."""


def finetune_reading(monkeypatch, tmp_path: Path, p: Predictor, a: np.ndarray) -> list | InputError:
    """The videos ``p.finetune(a)`` reads (through its own call of ``load_videos``), or the error it raises."""
    import stzoo.training.finetune as ft

    real, seen = ft.load_videos, {}

    def spy(data, **kwargs):
        try:
            seen["read"] = real(data, **kwargs)
        except InputError as exc:
            seen["read"] = exc
        raise _Read

    monkeypatch.setattr(ft, "load_videos", spy)
    with pytest.raises(_Read):
        p.finetune(a, epochs=1, val=0, out_dir=tmp_path, progress=False)
    return seen["read"]


@pytest.mark.parametrize("channels", [1, 3], ids=["grey-model", "rgb-model"])
@pytest.mark.parametrize("shape", list(AMBIGUOUS.values()), ids=list(AMBIGUOUS))
def test_predict_and_finetune_read_an_array_alike(tmp_path, monkeypatch, shape, channels):
    from stzoo.data.clips import convert_video

    a = np.random.default_rng(5).integers(0, 256, size=shape, dtype=np.uint8)
    try:
        x, _ = prepare_frames(a, channels=channels)  # what Predictor.predict feeds the model
    except InputError as exc:
        x = exc
    videos = finetune_reading(monkeypatch, tmp_path, convlstm(channels), a)
    if isinstance(x, InputError):
        assert isinstance(videos, InputError), f"predict refuses {shape} ({x}) but fine-tuning reads it"
        return
    assert not isinstance(videos, InputError), f"predict reads {shape} but fine-tuning refuses it: {videos}"
    assert len(videos) == x.shape[0], f"predict reads {x.shape[0]} sequence(s), fine-tuning {len(videos)}"
    for video, sequence in zip(videos, x):
        torch.testing.assert_close(convert_video(video, channels=channels).frames, sequence)


def test_finetune_reads_batched_arrays_and_its_layout_errors_name_data_layout(tmp_path, monkeypatch):
    from stzoo.data.clips import load_videos

    with pytest.raises(InputError, match=r"layout 'THWC' needs a 4-D input.*data_layout="):
        load_videos(grey(6), layout="THWC")
    first, second = finetune_reading(monkeypatch, tmp_path, convlstm(1), np.stack([grey(6), grey(6)[::-1]]))
    assert first.frames.shape == second.frames.shape == (6, 1, SIZE, SIZE)
    assert first.name == "the array, sequence 0" and second.name == "the array, sequence 1"
    torch.testing.assert_close(second.frames, first.frames.flip(0))


def test_forecaster_converts_rgb_frames_like_predict():
    p = convlstm(1)
    rgb = few_colours()
    f = stzoo.Forecaster(p, horizon=2)
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        for frame in rgb:
            f.push(frame)
        out = f.forecast()
    assert len(frame_warnings(record)) == 1
    assert out.shape == (2, SIZE, SIZE, 3)
    np.testing.assert_array_equal(out, p.predict(rgb, horizon=2))
    small = stzoo.Forecaster(convlstm(1), horizon=1)  # an 8×8 RGB frame: decided on the frame, not as BTHW
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FramesWarning)
        small.push(few_colours(1, 8)[0])
        assert small.forecast().shape == (1, 8, 8, 3)


# ---- 4: other frame sizes ------------------------------------------------------------------------------------
def test_other_size_runs_with_one_warning_if_the_architecture_allows_it():
    p = tau(1)
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        y = p.predict(grey(T, 8))
        p.predict(grey(T, 8))
        p.predict(grey(T, SIZE))  # the training size: silent
    messages = frame_warnings(record)
    assert y.shape == (T, 8, 8)
    assert len(messages) == 1 and "16×16" in messages[0] and "8×8" in messages[0] and "trained" in messages[0]
    with pytest.raises(InputError, match=r"divisible by 4, got 10×10"):
        p.predict(grey(T, 10))


def test_a_model_whose_weights_fix_the_size_refuses_another_before_running(monkeypatch):
    cfg = {
        "frames_in": T,
        "frames_out": T,
        "height": SIZE,
        "width": SIZE,
        "num_layers": 1,
        "num_hidden": 4,
        "filter_size": 3,
        "sr_size": 2,
        "tau": 2,
    }
    p = Predictor(build_model("mau", cfg), InputSpec(T, T, 1, SIZE, SIZE), name="tiny-mau")
    assert p.predict(grey(T, SIZE), horizon=1).shape == (1, SIZE, SIZE)
    monkeypatch.setattr(Predictor, "forecast_tensor", lambda *a, **k: pytest.fail("the model ran"))
    with pytest.raises(InputError, match=r"tiny-mau: .*runs at 16×16 only.*got 8×8"):
        p.predict(grey(T, 8))


# ---- 5: MSE in the zoo table's convention -------------------------------------------------------------------
def test_forecaster_compare_uses_the_zoo_mse_convention():
    p = convlstm(1)
    f = stzoo.Forecaster(p, horizon=3)
    clip = np.random.default_rng(5).random((T + 3, SIZE, SIZE)).astype(np.float32)
    for frame in clip[:T]:
        f.push(frame)
    forecast = f.forecast()  # float32 frames in: float32 forecast, clipped to [0, 1]
    observed = clip[T : T + 2]
    score = f.compare(observed)
    per_frame = ((forecast[:2].astype(np.float64) - observed) ** 2).sum(axis=(1, 2))
    assert score["frames"] == 2
    assert score["mse"] == pytest.approx(per_frame.mean(), rel=1e-5)
    assert score["mse"] == pytest.approx(
        float(frame_mse(torch.from_numpy(forecast[None, :2, None]), torch.from_numpy(observed[None, :, None])).mean()),
        rel=1e-5,
    )
    assert score["mse"] > 10 * ((forecast[:2] - observed) ** 2).mean()  # a sum over pixels, not a mean
    assert 0 < score["ssim"] <= 1 and score["psnr"] > 0
    # uint8 frames are scored on [0, 1] values too: the same number
    g = stzoo.Forecaster(p, horizon=3)
    for frame in np.rint(clip[:T] * 255).astype(np.uint8):
        g.push(frame)
    assert g.compare(np.rint(observed * 255).astype(np.uint8))["mse"] == pytest.approx(score["mse"], rel=0.05)
    with pytest.raises(InputError, match="C×H×W"):
        f.compare(np.zeros((2, 8, 8), np.float32))


def test_metric_convention_example_from_the_docs():
    pred = torch.full((1, 1, 1, 64, 64), 0.5)
    assert float(frame_mse(pred, pred + 0.1)) == pytest.approx(40.96, rel=1e-4)


# ---- 6: Predictor.to and __call__ ---------------------------------------------------------------------------
def test_to_returns_self_and_moves_the_model():
    p = tau(1)
    assert p.to("cpu") is p and p.device == torch.device("cpu")
    assert p.to(torch.bfloat16) is p and p.dtype == torch.bfloat16
    assert p.to("cpu", "float32") is p and p.dtype == torch.float32
    assert p.to() is p
    with pytest.raises(InputError, match="device"):
        p.to("no-such-device")
    with pytest.raises(InputError, match="dtype"):
        p.to(dtype="int8")
    with pytest.raises(InputError, match="two dtypes"):
        p.to(torch.float32, torch.bfloat16)


def test_to_moves_the_reference_behind_a_fused_model():
    from stzoo import kernels

    p = tau(1)
    if "tau" not in getattr(kernels, "FUSED", {}):
        pytest.skip("no fused TAU")
    p.use_impl("fused")
    p.to("bfloat16")
    assert p.dtype == torch.bfloat16 and next(p.reference_model.parameters()).dtype == torch.bfloat16
    assert p.use_impl("reference").dtype == torch.bfloat16


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_to_cuda_and_back():
    p = tau(1)
    x = grey()
    cpu = p.predict(x)
    assert p.to("cuda") is p and p.device.type == "cuda"
    y = p(torch.from_numpy(x).cuda())
    assert y.is_cuda and np.abs(y.cpu().numpy().astype(int) - cpu).max() <= 1
    assert p.to("cpu").device.type == "cpu"


def test_call_is_predict():
    p = convlstm(1)
    x = grey()
    np.testing.assert_array_equal(p(x), p.predict(x))
    np.testing.assert_array_equal(p(x, 6), p.predict(x, horizon=6))
    np.testing.assert_array_equal(p(x[None], horizon=2, layout="BTHW"), p.predict(x[None], 2, layout="BTHW"))


# ---- 7: --dtype and the help texts of predict ---------------------------------------------------------------
def predict_parser():
    parser = build_parser()
    sub = next(a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction")
    return sub.choices["predict"]


def test_every_predict_option_has_help_with_its_default():
    actions = [a for a in predict_parser()._actions if a.option_strings and a.dest != "help"]
    assert {a.dest for a in actions} >= {
        "input",
        "output",
        "strip",
        "animation",
        "truth",
        "horizon",
        "layout",
        "weights",
        "random",
        "device",
        "dtype",
        "fps",
        "impl",
    }
    for a in actions:
        assert a.help, a.dest
        assert "(default:" in a.help or "(required)" in a.help, a.dest
    dtype = next(a for a in actions if a.dest == "dtype")
    assert dtype.default == "float32" and set(dtype.choices) == {"float32", "bfloat16"}
    assert "(default: float32)" in dtype.help


def test_predict_dtype_reaches_load(tmp_path, checkpoint, monkeypatch):
    import stzoo.api

    seen = []
    real = stzoo.api.load

    def spy(*args, **kwargs):
        p = real(*args, **kwargs)
        seen.append((kwargs.get("dtype"), p.dtype))
        return p

    monkeypatch.setattr(stzoo.api, "load", spy)
    np.save(tmp_path / "clip.npy", grey())
    args = ["predict", str(checkpoint), "--input", str(tmp_path / "clip.npy"), "--output", str(tmp_path / "y.npy")]
    assert main(args) == 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert main(args + ["--dtype", "bfloat16"]) == 0
    assert seen == [("float32", torch.float32), ("bfloat16", torch.bfloat16)]
    assert np.load(tmp_path / "y.npy").shape == (T, SIZE, SIZE)
