"""Predictor.predict: every accepted input kind round-trips, rollout lengths, bad inputs."""

import numpy as np
import pytest
import torch
from PIL import Image

import stzoo
from stzoo.errors import InputError, InputTypeError
from stzoo.frames import write_gif
from stzoo.inference.predictor import Predictor
from stzoo.models import build_model
from stzoo.zoo.manifest import InputSpec

T = 4


def tau_predictor(channels=1, batch_size=16):
    model = build_model("tau", {"frames": T, "channels": channels, "hid_S": 4, "hid_T": 8, "N_T": 2, "mlp_ratio": 2.0})
    return Predictor(model, InputSpec(T, T, channels, 16, 16), name="tiny-tau", batch_size=batch_size)


def rec_predictor(arch="convlstm"):
    cfg = {"num_layers": 1, "num_hidden": 4, "filter_size": 3}
    if arch == "sa_convlstm":
        cfg["attn_dim"] = 2
    return Predictor(build_model(arch, cfg), InputSpec(T, T, 1, 16, 16), name="tiny-rec")


def frames_u8(*shape):
    return np.random.default_rng(0).integers(0, 256, size=shape, dtype=np.uint8)


@pytest.fixture(scope="module")
def p():
    return tau_predictor()


def reference(p, x_btchw):
    """What the model itself says for B×T×C×H×W float input."""
    with torch.no_grad():
        return p.model.eval()(torch.as_tensor(x_btchw, dtype=torch.float32))


# ---- kinds and layouts ---------------------------------------------------------------------
@pytest.mark.parametrize(
    "layout,shape",
    [
        ("THW", (T, 16, 16)),
        ("THWC", (T, 16, 16, 1)),
        ("TCHW", (T, 1, 16, 16)),
        ("BTHWC", (2, T, 16, 16, 1)),
        ("BTCHW", (2, T, 1, 16, 16)),
    ],
)
def test_numpy_uint8_keeps_layout_and_dtype(p, layout, shape):
    x = frames_u8(*shape)
    y = p.predict(x)
    assert isinstance(y, np.ndarray) and y.dtype == np.uint8 and y.shape == shape


def test_numpy_uint8_values_match_model():
    p = tau_predictor()
    x = frames_u8(T, 16, 16)
    y = p.predict(x)
    ref = reference(p, x[None, :, None] / 255.0)[0, :, 0].clamp(0, 1).numpy()
    assert np.abs(y.astype(np.float64) / 255 - ref).max() <= 0.5 / 255 + 1e-6


def test_numpy_float_stays_float(p):
    x = frames_u8(T, 16, 16).astype(np.float64) / 255
    y = p.predict(x)
    assert y.dtype == np.float64 and y.shape == x.shape
    assert y.min() >= 0 and y.max() <= 1


def test_torch_tensor_keeps_dtype_and_device(p):
    x = torch.rand(2, T, 1, 16, 16)
    y = p.predict(x)
    assert isinstance(y, torch.Tensor) and y.dtype == torch.float32 and y.device == x.device
    assert y.shape == x.shape
    assert torch.allclose(y, reference(p, x).clamp(0, 1), atol=1e-6)


def test_list_of_pil_images(p):
    imgs = [Image.fromarray(f) for f in frames_u8(T, 16, 16)]
    out = p.predict(imgs)
    assert isinstance(out, list) and len(out) == T
    assert all(isinstance(o, Image.Image) and o.mode == "L" and o.size == (16, 16) for o in out)


def test_list_of_arrays(p):
    out = p.predict(list(frames_u8(T, 16, 16)))
    assert isinstance(out, list) and len(out) == T and out[0].shape == (16, 16)


def test_gif_path_and_folder(p, tmp_path):
    frames = frames_u8(T, 16, 16)
    write_gif(frames, tmp_path / "clip.gif")
    from_gif = p.predict(str(tmp_path / "clip.gif"))
    assert isinstance(from_gif, np.ndarray) and from_gif.shape == (T, 16, 16, 1) and from_gif.dtype == np.uint8
    folder = tmp_path / "frames"
    folder.mkdir()
    for i, f in enumerate(frames):
        Image.fromarray(f).save(folder / f"f{i}.png")
    from_folder = p.predict(folder)
    np.testing.assert_array_equal(from_folder, from_gif)  # GIF grayscale is lossless


def test_batching_does_not_change_results():
    p = tau_predictor(batch_size=2)
    x = torch.rand(5, T, 1, 16, 16)
    a = p.predict(x)
    p.batch_size = 16
    b = p.predict(x)
    assert torch.allclose(a, b, atol=1e-5)


def test_deterministic_and_no_grad(p):
    x = torch.rand(1, T, 1, 16, 16, requires_grad=True)
    a, b = p.predict(x), p.predict(x)
    assert torch.equal(a, b) and not a.requires_grad


# ---- horizon and rollout -------------------------------------------------------------------
@pytest.mark.parametrize("horizon", [1, 3, T, T + 1, 3 * T + 2])
def test_tau_rollout_lengths(p, horizon):
    assert p.predict(frames_u8(T, 16, 16), horizon=horizon).shape == (horizon, 16, 16)


def test_tau_rollout_feeds_predictions_back(p):
    x = torch.rand(1, T, 1, 16, 16)
    long = p.predict(x, horizon=2 * T)
    first = reference(p, x)
    second = reference(p, first)
    assert torch.allclose(long[:, :T], first.clamp(0, 1), atol=1e-6)
    assert torch.allclose(long[:, T:], second.clamp(0, 1), atol=1e-5)


@pytest.mark.parametrize("arch", ["convlstm", "sa_convlstm"])
def test_recurrent_rollout_any_horizon_and_short_input(arch):
    p = rec_predictor(arch)
    assert p.predict(torch.rand(T, 1, 16, 16), horizon=7).shape == (7, 1, 16, 16)
    assert p.predict(frames_u8(2, 16, 16)).shape == (T, 16, 16)  # fewer frames are fine


def test_extra_frames_use_the_last_ones(p):
    x = torch.rand(1, T + 3, 1, 16, 16)
    assert torch.allclose(p.predict(x), p.predict(x[:, 3:]))


# ---- bad input -----------------------------------------------------------------------------
def test_too_few_frames(p):
    with pytest.raises(InputError, match=f"at least {T} input frames"):
        p.predict(frames_u8(T - 1, 16, 16))


def test_spatial_size_not_divisible(p):
    with pytest.raises(InputError, match="divisible by 4"):
        p.predict(frames_u8(T, 18, 16))


def test_wrong_channels(p):
    # 2 channels (grey + alpha?) convert to nothing; RGB would be converted (tests/frames/test_frames_in_out.py)
    with pytest.raises(InputError, match="channel"):
        p.predict(np.random.rand(1, T, 2, 16, 16).astype(np.float32))


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_nan_inf(p, bad):
    x = np.random.rand(T, 16, 16).astype(np.float32)
    x[1, 2, 3] = bad
    with pytest.raises(InputError):
        p.predict(x)


def test_empty_and_out_of_range(p):
    with pytest.raises(InputError):
        p.predict(np.zeros((0, 16, 16), np.uint8))
    with pytest.raises(InputError):
        p.predict(np.full((T, 16, 16), 3.0, np.float32))


@pytest.mark.parametrize(
    "bad", [None, 3, {"a": 1}, np.zeros((T, 16, 16), dtype=complex), np.zeros((T, 16, 16), dtype=bool)]
)
def test_unsupported_types(p, bad):
    with pytest.raises(InputTypeError):
        p.predict(bad)


@pytest.mark.parametrize("horizon", [0, -1, 1.5, True])
def test_bad_horizon(p, horizon):
    with pytest.raises(InputError, match="horizon"):
        p.predict(frames_u8(T, 16, 16), horizon=horizon)


def test_errors_are_builtin_subclasses():
    assert issubclass(InputError, ValueError) and issubclass(InputTypeError, TypeError)
    assert issubclass(InputError, stzoo.StzooError)


# ---- horizon types and forecast-size limits ----------------------------------------------------
@pytest.mark.parametrize("horizon", ["16", 16.0, -3, np.float32(2.0), [2]])
def test_bad_horizon_values_named(p, horizon):
    with pytest.raises(InputError, match="horizon must be a positive integer"):
        p.predict(frames_u8(T, 16, 16), horizon=horizon)


def test_numpy_and_integral_horizons_accepted(p):
    for h in (np.int64(5), np.int32(3), np.uint8(2)):
        out = p.predict(frames_u8(T, 16, 16), horizon=h)
        assert out.shape == (int(h), 16, 16)


def test_forecast_tensor_checks_horizon():
    p = rec_predictor()
    x = torch.rand(1, T, 1, 16, 16)
    assert p.forecast_tensor(x, np.int64(2)).shape == (1, 2, 1, 16, 16)
    with pytest.raises(InputError, match="horizon"):
        p.forecast_tensor(x, None)
    with pytest.raises(InputError, match="MAX_HORIZON"):
        p.forecast_tensor(x, 10**9)


def test_horizon_limit_and_override(p, monkeypatch):
    import stzoo.inference.predictor as sp

    x = frames_u8(T, 16, 16)
    with pytest.raises(InputError, match=r"horizon=10001 .*10000 frames.*max_horizon="):
        p.predict(x, horizon=10_001)
    assert p.predict(x, horizon=6, max_horizon=6).shape == (6, 16, 16)
    with pytest.raises(InputError, match="horizon=7"):
        p.predict(x, horizon=7, max_horizon=6)
    monkeypatch.setattr(sp, "MAX_HORIZON", 5)  # the module constant is read at call time
    with pytest.raises(InputError, match="5 frames"):
        p.predict(x, horizon=6)
    with pytest.raises(InputError, match="horizon"):
        p.predict(x, horizon=10**5000)  # too long to print: still a clean message
    with pytest.raises(InputError, match="max_horizon"):
        p.predict(x, horizon=2, max_horizon=0)


def test_output_bytes_limit_counts_batch_frames_and_tau_passes(p, monkeypatch):
    import stzoo.inference.predictor as sp

    x = frames_u8(3, T, 1, 16, 16)  # BTCHW: B×T×H×W with T = 4 would look like T×C×H×W RGBA
    one_frame = 4 * 16 * 16  # float32 bytes of one 1×16×16 frame
    # TAU makes T frames per pass: horizon 5 is rolled out as 2 passes, 2T frames per sequence
    assert p.predict(x, horizon=5, max_output_bytes=3 * 2 * T * one_frame).shape == (3, 5, 1, 16, 16)
    with pytest.raises(InputError, match="max_output_bytes"):
        p.predict(x, horizon=5, max_output_bytes=3 * 2 * T * one_frame - 1)
    rec = rec_predictor()  # recurrent: exactly horizon frames
    assert rec.predict(x, horizon=5, max_output_bytes=3 * 5 * one_frame).shape == (3, 5, 1, 16, 16)
    with pytest.raises(InputError, match=r"5 frames \(horizon\) for 3 sequence"):
        rec.predict(x, horizon=5, max_output_bytes=3 * 5 * one_frame - 1)
    monkeypatch.setattr(sp, "MAX_OUTPUT_BYTES", one_frame)
    with pytest.raises(InputError, match="MAX_OUTPUT_BYTES"):
        rec.predict(x[0], horizon=2)


def test_huge_frames_out_is_refused_before_running():
    import dataclasses
    import time

    p = rec_predictor()
    p.spec = dataclasses.replace(p.spec, frames_out=10**9)
    t0 = time.perf_counter()
    with pytest.raises(InputError, match=r"spec\.frames_out"):
        p.predict(frames_u8(T, 16, 16))
    assert time.perf_counter() - t0 < 1.0
    assert p.predict(frames_u8(T, 16, 16), horizon=2).shape == (2, 16, 16)


def test_limits_are_checked_before_frames_are_read(p):
    import time

    t0 = time.perf_counter()
    with pytest.raises(InputError, match="horizon"):
        p.predict("no/such/file.gif", horizon=10**9)  # the horizon is refused first
    with pytest.raises(InputError, match="max_output_bytes"):
        p.predict(np.zeros((256, T, 512, 512), np.uint8), horizon=10_000, layout="BTHW")
    assert time.perf_counter() - t0 < 1.0  # neither the path nor the 256 MB array is read
