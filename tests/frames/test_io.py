"""Tests of stzoo.frames (read, layout, prepare, write): reading / writing frame files and converting user inputs."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from stzoo.errors import InputError, InputTypeError
from stzoo.frames import LAYOUTS, OutputFormat, prepare_frames, read_frames, write_gif

RNG = np.random.default_rng(1234)


def _u8(*shape: int) -> np.ndarray:
    return RNG.integers(0, 256, size=shape, dtype=np.uint8)


def _btchw_from(a: np.ndarray, layout: str) -> np.ndarray:
    """Reference conversion of an array of ``layout`` into B×T×C×H×W (independent of stzoo)."""
    src = layout
    if "B" not in src:
        a, src = a[None], "B" + src
    if "C" not in src:
        a, src = a[..., None], src + "C"
    return np.transpose(a, [src.index(c) for c in "BTCHW"])


# --------------------------------------------------------------------------------------------
# prepare_frames / restore: numpy


@pytest.mark.parametrize(
    "layout, shape, channels",
    [
        ("THW", (3, 4, 5), 1),
        ("THWC", (3, 4, 5, 3), 3),
        ("THWC", (3, 4, 5, 1), 1),
        ("TCHW", (3, 3, 4, 5), 3),
        ("TCHW", (3, 1, 4, 5), 1),
        ("BTHW", (2, 3, 4, 5), 1),
        ("BTHWC", (2, 3, 4, 5, 3), 3),
        ("BTCHW", (2, 3, 3, 4, 5), 3),
    ],
)
def test_numpy_uint8_round_trip_every_layout(layout: str, shape: tuple, channels: int) -> None:
    a = _u8(*shape)
    x, fmt = prepare_frames(a, channels=channels)
    assert isinstance(fmt, OutputFormat)
    assert fmt.layout == layout
    assert x.dtype == torch.float32 and x.is_contiguous() and x.ndim == 5
    expected = _btchw_from(a, layout).astype(np.float32) / 255
    np.testing.assert_allclose(x.numpy(), expected, atol=1e-7)
    out = fmt.restore(x)
    assert isinstance(out, np.ndarray) and out.dtype == np.uint8
    np.testing.assert_array_equal(out, a)


def test_layouts_constant() -> None:
    assert set(LAYOUTS) == {"THW", "THWC", "TCHW", "BTHW", "BTHWC", "BTCHW"}


def test_restore_changes_frame_count_and_drops_batch() -> None:
    a = _u8(4, 6, 7, 3)
    x, fmt = prepare_frames(a, channels=3)
    y = torch.rand(1, 2, 3, 6, 7)
    out = fmt.restore(y)
    assert out.shape == (2, 6, 7, 3)
    expected = np.rint(np.transpose(y[0].numpy(), (0, 2, 3, 1)) * 255).astype(np.uint8)
    np.testing.assert_array_equal(out, expected)


def test_restore_clips_values_outside_unit_range() -> None:
    _, fmt = prepare_frames(_u8(2, 3, 3), channels=1)
    y = torch.tensor([-0.5, 1.5, 0.5]).reshape(1, 1, 1, 1, 3).expand(1, 2, 1, 3, 3)
    out = fmt.restore(y)
    assert out.tolist()[0][0] == [0, 255, 128]


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
def test_numpy_float_dtype_preserved(dtype: type) -> None:
    a = RNG.random((3, 4, 5, 1)).astype(dtype)
    x, fmt = prepare_frames(a, channels=1)
    np.testing.assert_allclose(x.numpy()[0, :, 0], a[..., 0].astype(np.float32), atol=1e-7)
    out = fmt.restore(x)
    assert out.dtype == dtype and out.shape == a.shape
    np.testing.assert_allclose(out, a, atol=1e-3 if dtype == np.float16 else 1e-7)


def test_float_slightly_outside_range_is_clipped() -> None:
    a = np.full((2, 3, 3), 1.0005, np.float32)
    a[0, 0, 0] = -0.0005
    x, _ = prepare_frames(a, channels=1)
    assert float(x.max()) == 1.0 and float(x.min()) == 0.0


@pytest.mark.parametrize("dtype", [np.int16, np.uint16, np.int64, np.int8])
def test_other_integer_dtypes_round_trip(dtype: type) -> None:
    hi = 128 if dtype == np.int8 else 256
    a = RNG.integers(0, hi, size=(2, 3, 4, 3)).astype(dtype)
    x, fmt = prepare_frames(a, channels=3)
    np.testing.assert_allclose(x.numpy()[0], np.transpose(a, (0, 3, 1, 2)) / 255, atol=1e-7)
    out = fmt.restore(x)
    assert out.dtype == dtype
    np.testing.assert_array_equal(out, a)


def test_int8_restore_saturates_instead_of_wrapping() -> None:
    _, fmt = prepare_frames(np.zeros((2, 3, 3), np.int8), channels=1)
    out = fmt.restore(torch.ones(1, 1, 1, 3, 3))
    assert out.dtype == np.int8 and (out == 127).all()


# --------------------------------------------------------------------------------------------
# layout inference and override


@pytest.mark.parametrize(
    "shape, channels, expected",
    [
        ((2, 3, 5, 3), 3, "THWC"),  # both shape[-1] and shape[1] == C, last two differ -> THWC
        ((2, 3, 3, 3), 3, "TCHW"),  # ... last two equal (look spatial) -> TCHW
        ((2, 1, 4, 1), 1, "THWC"),
        ((2, 1, 4, 4), 1, "TCHW"),
        ((2, 5, 4, 4), 1, "BTHW"),
        ((2, 5, 4, 3), 3, "THWC"),
        ((2, 3, 4, 5), 3, "TCHW"),
        ((2, 2, 3, 5, 3), 3, "BTHWC"),
        ((2, 2, 3, 3, 3), 3, "BTCHW"),  # same tie-break as 4-D
        ((2, 2, 3, 4, 5), 3, "BTCHW"),
        ((2, 2, 4, 5, 2), 2, "BTHWC"),
    ],
)
def test_layout_inference(shape: tuple, channels: int, expected: str) -> None:
    _, fmt = prepare_frames(_u8(*shape), channels=channels)
    assert fmt.layout == expected


def test_layout_override_changes_interpretation() -> None:
    a = _u8(2, 3, 5, 3)  # inferred THWC for C=3
    x_default, _ = prepare_frames(a, channels=3)
    x, fmt = prepare_frames(a, channels=3, layout="TCHW")
    assert fmt.layout == "TCHW"
    assert x.shape == (1, 2, 3, 5, 3) and x_default.shape == (1, 2, 3, 3, 5)
    np.testing.assert_array_equal(fmt.restore(x), a)


def test_layout_override_is_case_insensitive_and_batched() -> None:
    a = _u8(1, 4, 4, 4)  # would be inferred TCHW for C=1
    x, fmt = prepare_frames(a, channels=1, layout="bthw")
    assert fmt.layout == "BTHW" and x.shape == (1, 4, 1, 4, 4)
    np.testing.assert_array_equal(fmt.restore(x), a)


def test_layout_override_wrong_ndim() -> None:
    with pytest.raises(InputError, match=r"'THWC' needs a 4-D input.*\(3, 4, 5\)"):
        prepare_frames(_u8(3, 4, 5), channels=1, layout="THWC")


def test_layout_override_wrong_channels() -> None:
    with pytest.raises(InputError, match=r"expected 3 channel\(s\), got 4"):
        prepare_frames(_u8(2, 4, 5, 6), channels=3, layout="TCHW")


def test_layout_unknown_and_wrong_type() -> None:
    with pytest.raises(InputError, match="unknown layout 'HWT'"):
        prepare_frames(_u8(2, 3, 3), channels=1, layout="HWT")
    with pytest.raises(InputTypeError, match="layout must be a str"):
        prepare_frames(_u8(2, 3, 3), channels=1, layout=3)


def test_3d_input_is_grey_frames() -> None:
    # grey T×H×W frames feed an RGB model repeated into R, G and B; other channel counts refuse them
    x, fmt = prepare_frames(_u8(2, 4, 5), channels=3)
    assert x.shape == (1, 2, 3, 4, 5) and fmt.layout == "THW" and fmt.source_channels == 1
    with pytest.raises(InputError, match=r"3-D input is read as THW.*expects 2 channels"):
        prepare_frames(_u8(2, 4, 5), channels=2)


def test_4d_uninferable_layout_message() -> None:
    with pytest.raises(InputError) as info:
        prepare_frames(_u8(2, 5, 4, 6), channels=2)
    msg = str(info.value)
    assert "(2, 5, 4, 6)" in msg and "THWC" in msg and "TCHW" in msg and "layout=" in msg


def test_5d_uninferable_layout_message() -> None:
    with pytest.raises(InputError, match=r"BTHWC.*BTCHW.*layout="):
        prepare_frames(_u8(2, 2, 4, 5, 6), channels=3)


def test_wrong_channel_count_with_channelless_layout() -> None:
    with pytest.raises(InputError, match=r"expected 2 channel\(s\), got 1 .*layout THW, the layout passed"):
        prepare_frames(_u8(2, 3, 4), channels=2, layout="THW")


@pytest.mark.parametrize("shape", [(4, 5), (7,), (1, 2, 3, 4, 5, 6)])
def test_wrong_ndim(shape: tuple) -> None:
    with pytest.raises(InputError, match=r"3-D to 5-D"):
        prepare_frames(_u8(*shape), channels=1)


# --------------------------------------------------------------------------------------------
# dtype and value errors


@pytest.mark.parametrize(
    "a",
    [
        np.zeros((2, 3, 3), bool),
        np.zeros((2, 3, 3), np.complex64),
        np.zeros((2, 3, 3), object),
        np.full((2, 3, 3), "a"),
    ],
)
def test_bad_numpy_dtypes(a: np.ndarray) -> None:
    with pytest.raises(InputTypeError, match=f"unsupported dtype {a.dtype}"):
        prepare_frames(a, channels=1)


def test_integer_out_of_range() -> None:
    a = np.zeros((2, 3, 3), np.int32)
    a[1, 1, 1] = 300
    with pytest.raises(InputError, match=r"\[0, 255\].*\[0, 300\].*int32"):
        prepare_frames(a, channels=1)
    a[1, 1, 1] = -1
    with pytest.raises(InputError, match=r"\[-1, 0\]"):
        prepare_frames(a, channels=1)


def test_float_out_of_range_suggests_uint8() -> None:
    a = np.full((2, 3, 3), 255.0, np.float32)
    with pytest.raises(InputError, match=r"\[0, 1\].*255.*uint8"):
        prepare_frames(a, channels=1)
    a = np.full((2, 3, 3), 1.01, np.float32)
    with pytest.raises(InputError, match="scale the floats"):
        prepare_frames(a, channels=1)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_nan_inf_rejected(bad: float) -> None:
    a = np.zeros((2, 3, 3), np.float32)
    a[0, 1, 2] = bad
    with pytest.raises(InputError, match="NaN or infinite"):
        prepare_frames(a, channels=1)
    with pytest.raises(InputError, match="NaN or infinite"):
        prepare_frames(torch.from_numpy(a), channels=1)


@pytest.mark.parametrize("shape", [(0, 3, 3), (2, 0, 3, 3), (1, 2, 3, 3, 0)])
def test_empty_rejected(shape: tuple) -> None:
    with pytest.raises(InputError, match="empty"):
        prepare_frames(np.zeros(shape, np.uint8), channels=1)
    with pytest.raises(InputError, match="empty"):
        prepare_frames(torch.zeros(shape, dtype=torch.uint8), channels=1)


@pytest.mark.parametrize("obj", [{"a": 1}, 3, None, 2.5, b"frames.gif"])
def test_unsupported_object_types(obj: object) -> None:
    with pytest.raises(InputTypeError, match=r"accepted.*numpy array.*torch tensor.*PIL"):
        prepare_frames(obj, channels=1)


def test_bad_channels_argument() -> None:
    with pytest.raises(InputTypeError, match="channels"):
        prepare_frames(_u8(2, 3, 3), channels="1")
    with pytest.raises(InputError, match="channels"):
        prepare_frames(_u8(2, 3, 3), channels=0)


# --------------------------------------------------------------------------------------------
# torch


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.float16, torch.bfloat16])
def test_torch_float_dtype_and_device_preserved(dtype: torch.dtype) -> None:
    t = torch.rand(2, 3, 4, 5).to(dtype)
    x, fmt = prepare_frames(t, channels=3)  # shape[1] == 3 -> TCHW
    assert fmt.layout == "TCHW" and x.dtype == torch.float32 and x.device == t.device
    out = fmt.restore(x)
    assert isinstance(out, torch.Tensor)
    assert out.dtype == dtype and out.device == t.device and out.shape == t.shape
    assert torch.equal(out, t)


def test_torch_uint8_round_trip_batched() -> None:
    t = torch.from_numpy(_u8(2, 3, 4, 5, 3))
    x, fmt = prepare_frames(t, channels=3)
    assert fmt.layout == "BTHWC" and x.shape == (2, 3, 3, 4, 5)
    out = fmt.restore(x)
    assert out.dtype == torch.uint8 and torch.equal(out, t)


def test_torch_int_and_errors() -> None:
    t = torch.from_numpy(_u8(2, 3, 3)).to(torch.int32)
    x, fmt = prepare_frames(t, channels=1)
    assert torch.equal(fmt.restore(x), t)
    with pytest.raises(InputError, match=r"\[0, 255\]"):
        prepare_frames(t + 256, channels=1)
    with pytest.raises(InputTypeError, match="unsupported dtype bool"):
        prepare_frames(torch.zeros(2, 3, 3, dtype=torch.bool), channels=1)
    with pytest.raises(InputTypeError, match="unsupported dtype complex64"):
        prepare_frames(torch.zeros(2, 3, 3, dtype=torch.complex64), channels=1)
    with pytest.raises(InputError, match=r"\[0, 1\].*uint8"):
        prepare_frames(torch.full((2, 3, 3), 2.0), channels=1)


def test_torch_input_requiring_grad_is_detached() -> None:
    t = torch.rand(2, 3, 3, requires_grad=True)
    x, _ = prepare_frames(t, channels=1)
    assert not x.requires_grad


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_torch_cuda_device_preserved() -> None:
    t = torch.rand(2, 3, 3, device="cuda")
    x, fmt = prepare_frames(t, channels=1)
    assert x.device == t.device
    out = fmt.restore(x.cpu())
    assert out.device == t.device and torch.equal(out, t)


# --------------------------------------------------------------------------------------------
# lists of PIL images and of arrays


def test_pil_list_rgb_round_trip() -> None:
    a = _u8(3, 4, 5, 3)
    images = [Image.fromarray(f) for f in a]
    x, fmt = prepare_frames(images, channels=3)
    assert x.shape == (1, 3, 3, 4, 5)
    out = fmt.restore(x)
    assert isinstance(out, list) and len(out) == 3
    assert all(isinstance(im, Image.Image) and im.mode == "RGB" for im in out)
    np.testing.assert_array_equal(np.stack([np.asarray(im) for im in out]), a)


def test_pil_tuple_gray_round_trip() -> None:
    a = _u8(2, 4, 5)
    images = tuple(Image.fromarray(f) for f in a)
    x, fmt = prepare_frames(images, channels=1)
    out = fmt.restore(x)
    assert isinstance(out, tuple) and all(im.mode == "L" for im in out)
    np.testing.assert_array_equal(np.stack([np.asarray(im) for im in out]), a)


def test_pil_list_converted_to_model_channels_and_back() -> None:
    rgb = [Image.fromarray(f) for f in _u8(2, 4, 5, 3)]
    x, fmt = prepare_frames(rgb, channels=1)
    assert x.shape == (1, 2, 1, 4, 5) and fmt.conversion == "RGB → grey"
    assert [im.mode for im in fmt.restore(x)] == ["RGB", "RGB"]  # the input's mode
    gray = [Image.fromarray(f) for f in _u8(2, 4, 5)]
    x, fmt = prepare_frames(gray, channels=3)
    assert x.shape == (1, 2, 3, 4, 5) and fmt.conversion == "grey → RGB"
    assert torch.equal(x[:, :, 0], x[:, :, 2])
    assert [im.mode for im in fmt.restore(x)] == ["L", "L"]


def test_pil_list_mixed_size_and_mode() -> None:
    with pytest.raises(InputError, match=r"image 1 is 4x6 \(HxW\) but image 0 is 4x5"):
        prepare_frames([Image.new("L", (5, 4)), Image.new("L", (6, 4))], channels=1)
    with pytest.raises(InputError, match=r"image 1 is 'RGB' but image 0 is 'L'"):
        prepare_frames([Image.new("L", (5, 4)), Image.new("RGB", (5, 4))], channels=1)
    with pytest.raises(InputError, match="1 or 3 channels"):
        prepare_frames([Image.new("L", (5, 4))], channels=2)


@pytest.mark.parametrize(
    "frame_shape, channels, layout",
    [
        ((4, 5), 1, "THW"),
        ((4, 5, 3), 3, "THWC"),
        ((3, 4, 5), 3, "TCHW"),
        ((1, 4, 5), 1, "TCHW"),
    ],
)
def test_array_list_round_trip(frame_shape: tuple, channels: int, layout: str) -> None:
    frames = [_u8(*frame_shape) for _ in range(3)]
    x, fmt = prepare_frames(frames, channels=channels)
    assert fmt.layout == layout and x.shape[:3] == (1, 3, channels)
    out = fmt.restore(x)
    assert isinstance(out, list) and len(out) == 3
    for got, want in zip(out, frames):
        assert got.shape == want.shape and got.dtype == np.uint8
        np.testing.assert_array_equal(got, want)


def test_array_list_float_tuple_and_layout() -> None:
    frames = tuple(RNG.random((3, 4, 3)).astype(np.float32) for _ in range(2))
    x, fmt = prepare_frames(frames, channels=3, layout="TCHW")
    assert x.shape == (1, 2, 3, 4, 3)
    out = fmt.restore(x)
    assert isinstance(out, tuple) and out[0].dtype == np.float32
    np.testing.assert_array_equal(out[1], frames[1])
    with pytest.raises(InputError, match="one sequence"):
        prepare_frames(list(frames), channels=3, layout="BTHW")


def test_array_list_errors() -> None:
    with pytest.raises(InputError, match=r"frame 1 has shape \(4, 6\) but frame 0 has \(4, 5\)"):
        prepare_frames([_u8(4, 5), _u8(4, 6)], channels=1)
    with pytest.raises(InputError, match="frame 1 is float32 but frame 0 is uint8"):
        prepare_frames([_u8(4, 5), np.zeros((4, 5), np.float32)], channels=1)
    with pytest.raises(InputError, match=r"one channel, but the model expects 2"):
        prepare_frames([_u8(4, 5)], channels=2)
    with pytest.raises(InputTypeError, match="only PIL images or only numpy arrays"):
        prepare_frames([_u8(4, 5), Image.new("L", (5, 4))], channels=1)
    with pytest.raises(InputTypeError, match="only PIL images or only numpy arrays"):
        prepare_frames([torch.zeros(4, 5)], channels=1)
    with pytest.raises(InputError, match="empty"):
        prepare_frames([], channels=1)


# --------------------------------------------------------------------------------------------
# files: GIF, folders, npy / npz


def test_write_gif_read_back_gray_exact_with_repeated_frames(tmp_path: Path) -> None:
    a = _u8(4, 6, 7)
    a[2] = a[1]  # Pillow's own writer would merge these two frames
    path = tmp_path / "seq.gif"
    write_gif(a, path, fps=10)
    with Image.open(path) as im:
        assert im.n_frames == 4 and im.info.get("loop") == 0 and im.info["duration"] == 100
    back = read_frames(path)
    assert back.shape == (4, 6, 7, 1) and back.dtype == np.uint8
    np.testing.assert_array_equal(back[..., 0], a)


def test_write_gif_rgb_and_float(tmp_path: Path) -> None:
    a = RNG.integers(0, 4, size=(3, 5, 6, 3)).astype(np.uint8) * 60  # few colours: exact
    write_gif(a, tmp_path / "rgb.gif")
    np.testing.assert_array_equal(read_frames(tmp_path / "rgb.gif"), a)
    f = a[..., :1].astype(np.float64) / 255
    write_gif(f, tmp_path / "f.gif")
    np.testing.assert_array_equal(read_frames(tmp_path / "f.gif"), a[..., :1])


def test_write_gif_errors(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"T×H×W×3.*\(2, 3, 4, 2\)"):
        write_gif(_u8(2, 3, 4, 2), tmp_path / "x.gif")
    with pytest.raises(InputTypeError, match="unsupported dtype bool"):
        write_gif(np.zeros((2, 3, 4), bool), tmp_path / "x.gif")
    with pytest.raises(InputError, match=r"\[0, 1\]"):
        write_gif(np.full((2, 3, 4), 3.0), tmp_path / "x.gif")
    with pytest.raises(InputError, match="fps"):
        write_gif(_u8(2, 3, 4), tmp_path / "x.gif", fps=0)
    with pytest.raises(InputError, match="does not exist"):
        write_gif(_u8(2, 3, 4), tmp_path / "nope" / "x.gif")
    with pytest.raises(InputTypeError, match="numpy array"):
        write_gif([[1]], tmp_path / "x.gif")


def test_gif_from_pillow_with_gray_palette_reads_as_gray(tmp_path: Path) -> None:
    # Pillow decodes frames after the first of such a GIF as RGB; they still count as grey.
    g = _u8(3, 6, 7)
    ims = [Image.fromarray(np.stack([f] * 3, axis=-1)) for f in g]
    ims[0].save(tmp_path / "p.gif", save_all=True, append_images=ims[1:], loop=0)
    back = read_frames(tmp_path / "p.gif")
    assert back.shape == (3, 6, 7, 1)
    np.testing.assert_array_equal(back[..., 0], g)


def test_prepare_from_gif_path(tmp_path: Path) -> None:
    a = _u8(3, 4, 5)
    write_gif(a, tmp_path / "g.gif")
    x, fmt = prepare_frames(str(tmp_path / "g.gif"), channels=1)
    assert x.shape == (1, 3, 1, 4, 5)
    out = fmt.restore(x)
    assert out.dtype == np.uint8 and out.shape == (3, 4, 5, 1)
    np.testing.assert_array_equal(out[..., 0], a)
    x3, fmt3 = prepare_frames(tmp_path / "g.gif", channels=3)  # grey GIF, RGB model: back as grey
    assert x3.shape == (1, 3, 3, 4, 5) and fmt3.restore(x3).shape == (3, 4, 5, 1)
    np.testing.assert_array_equal(fmt3.restore(x3)[..., 0], a)


def test_folder_natural_sort(tmp_path: Path) -> None:
    for value, name in [(10, "frame1.png"), (20, "frame2.png"), (100, "frame10.png")]:
        Image.fromarray(np.full((3, 4), value, np.uint8)).save(tmp_path / name)
    (tmp_path / "notes.txt").write_text("ignored")
    frames = read_frames(tmp_path)
    assert frames.shape == (3, 3, 4, 1)
    assert frames[:, 0, 0, 0].tolist() == [10, 20, 100]
    x, fmt = prepare_frames(tmp_path, channels=1)
    assert x[0, :, 0, 0, 0].mul(255).round().tolist() == [10, 20, 100]


def test_folder_gray_or_rgb_decision(tmp_path: Path) -> None:
    Image.fromarray(_u8(3, 4)).save(tmp_path / "a.png")
    Image.fromarray(_u8(3, 4, 3)).save(tmp_path / "b.png")
    assert read_frames(tmp_path).shape == (2, 3, 4, 3)  # one colour frame -> RGB for all
    assert read_frames(tmp_path, channels=1).shape == (2, 3, 4, 1)


def test_folder_errors(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(InputError, match="contains no image files"):
        read_frames(empty)
    mixed = tmp_path / "mixed"
    mixed.mkdir()
    Image.new("L", (4, 3)).save(mixed / "f1.png")
    Image.new("L", (4, 3)).save(mixed / "f2.png")
    Image.new("L", (5, 3)).save(mixed / "f10.png")
    with pytest.raises(InputError, match=r"'f10.png' is 3x5 \(HxW\).*'f1.png' is 3x4"):
        read_frames(mixed)
    broken = tmp_path / "broken"
    broken.mkdir()
    Image.new("L", (4, 3)).save(broken / "a.png")
    (broken / "b.png").write_bytes(b"definitely not a png")
    with pytest.raises(InputError, match=r"cannot read image file .*b\.png"):
        read_frames(broken)


def test_read_frames_file_errors(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"no such file or folder: .*missing\.gif"):
        read_frames(tmp_path / "missing.gif")
    with pytest.raises(InputError, match=r"no such file or folder"):
        prepare_frames(str(tmp_path / "missing.gif"), channels=1)
    (tmp_path / "x.txt").write_text("hi")
    with pytest.raises(InputError, match=r"unsupported suffix '\.txt'"):
        read_frames(tmp_path / "x.txt")
    (tmp_path / "bad.gif").write_bytes(b"GIF89a garbage")
    with pytest.raises(InputError, match=r"bad\.gif"):
        read_frames(tmp_path / "bad.gif")
    (tmp_path / "bad.npy").write_bytes(b"nope")
    with pytest.raises(InputError, match=r"bad\.npy"):
        read_frames(tmp_path / "bad.npy")
    with pytest.raises(InputError, match="1 \\(grayscale\\) or 3"):
        read_frames(tmp_path / "x.txt", channels=2)
    with pytest.raises(InputTypeError, match="path must be a str"):
        read_frames(42)


def test_npy_and_npz(tmp_path: Path) -> None:
    a = RNG.random((2, 3, 1, 4, 4)).astype(np.float32)
    np.save(tmp_path / "a.npy", a)
    back = read_frames(tmp_path / "a.npy")
    assert back.dtype == np.float32 and np.array_equal(back, a)  # returned as stored
    np.savez(tmp_path / "b.npz", other=np.zeros(3), frames=_u8(3, 4, 5))
    assert read_frames(tmp_path / "b.npz").shape == (3, 4, 5)
    np.savez(tmp_path / "c.npz", first=_u8(2, 2, 2), second=np.zeros(1))
    assert read_frames(tmp_path / "c.npz").shape == (2, 2, 2)
    x, fmt = prepare_frames(tmp_path / "a.npy", channels=1)  # an array file follows the numpy rules
    assert fmt.layout == "BTCHW" and x.shape == (2, 3, 1, 4, 4)
    out = fmt.restore(x)
    assert out.dtype == np.float32 and out.shape == (2, 3, 1, 4, 4)
    np.testing.assert_array_equal(out, a)
    np.savez(tmp_path / "empty.npz")
    with pytest.raises(InputError, match="holds no arrays"):
        read_frames(tmp_path / "empty.npz")


def test_apng_16bit_and_palette(tmp_path: Path) -> None:
    a = _u8(3, 4, 5, 3)
    ims = [Image.fromarray(f) for f in a]
    ims[0].save(tmp_path / "anim.png", save_all=True, append_images=ims[1:])
    np.testing.assert_array_equal(read_frames(tmp_path / "anim.png"), a)

    wide = np.array([[0, 257 * 100, 65535]], np.uint16)
    Image.fromarray(wide).save(tmp_path / "wide.png")
    assert read_frames(tmp_path / "wide.png")[0, 0, :, 0].tolist() == [0, 100, 255]

    gray_pal = Image.fromarray(_u8(3, 4)).convert("P")  # palette of greys
    gray_pal.save(tmp_path / "gp.png")
    assert read_frames(tmp_path / "gp.png").shape == (1, 3, 4, 1)
    colour_pal = Image.fromarray(_u8(3, 4, 3)).quantize(8)
    colour_pal.save(tmp_path / "cp.png")
    assert read_frames(tmp_path / "cp.png").shape == (1, 3, 4, 3)


def test_path_input_rejects_layout_and_odd_channels(tmp_path: Path) -> None:
    write_gif(_u8(2, 3, 4), tmp_path / "g.gif")
    with pytest.raises(InputError, match="layout"):
        prepare_frames(tmp_path / "g.gif", channels=1, layout="TCHW")
    with pytest.raises(InputError, match="1 or 3 channels"):
        prepare_frames(tmp_path / "g.gif", channels=2)


# --------------------------------------------------------------------------------------------
# restore errors


def test_restore_errors() -> None:
    _, fmt = prepare_frames(_u8(2, 3, 4), channels=1)
    with pytest.raises(InputError, match="B == 1"):
        fmt.restore(torch.zeros(2, 1, 1, 3, 4))
    with pytest.raises(InputError, match=r"1 channel\(s\)"):
        fmt.restore(torch.zeros(1, 1, 3, 3, 4))
    with pytest.raises(InputError, match="5-D"):
        fmt.restore(torch.zeros(1, 3, 4))
    with pytest.raises(InputTypeError, match="torch tensor"):
        fmt.restore(np.zeros((1, 1, 1, 3, 4)))


# --------------------------------------------------------------------------------------------
# colour axes, wide PIL modes, odd files (see also tests/frames/test_hostile_frames.py)


@pytest.mark.parametrize(
    "shape, axis", [((10, 64, 64, 4), 3), ((10, 64, 64, 2), 3), ((10, 4, 64, 64), 1), ((10, 4, 32, 48), 1)]
)
def test_colour_axis_is_never_read_as_bthw(shape: tuple, axis: int) -> None:
    with pytest.raises(InputError) as info:
        prepare_frames(_u8(*shape), channels=1)
    msg = str(info.value)
    assert "would be read as BTHW" in msg and f"axis {axis}" in msg and "layout='BTHW'" in msg


def test_colour_axis_layout_override_and_small_frames_still_bthw() -> None:
    a = _u8(10, 64, 64, 4)
    x, fmt = prepare_frames(a, channels=1, layout="BTHW")  # said explicitly: read as asked
    assert fmt.layout == "BTHW" and x.shape == (10, 64, 1, 64, 4)
    _, fmt = prepare_frames(_u8(2, 3, 4, 5), channels=1)  # small axes do not look like images
    assert fmt.layout == "BTHW"
    _, fmt = prepare_frames(_u8(2, 2, 32, 32), channels=1)  # 2 before H×W: a plausible T, not a colour axis
    assert fmt.layout == "BTHW"
    _, fmt = prepare_frames(_u8(2, 3, 64, 64, 1), channels=1)
    assert fmt.layout == "BTHWC"


def test_single_colour_image_is_not_read_as_frames() -> None:
    with pytest.raises(InputError, match=r"would be read as THW.*layout='THW'"):
        prepare_frames(_u8(64, 64, 3), channels=1)
    _, fmt = prepare_frames(_u8(64, 64, 3), channels=1, layout="THW")
    assert fmt.layout == "THW"
    x, _ = prepare_frames(list(_u8(20, 64, 3)), channels=1)  # a list of H×W frames is unambiguous
    assert x.shape == (1, 20, 1, 64, 3)


def test_rgba_array_into_rgb_model_says_how_to_drop_alpha() -> None:
    with pytest.raises(InputError, match=r"frames\[\.\.\., :3\]"):
        prepare_frames(_u8(10, 64, 64, 4), channels=3)


def test_rgba_pil_images_drop_alpha() -> None:
    rgba = _u8(3, 8, 8, 4)
    x, _ = prepare_frames([Image.fromarray(f, "RGBA") for f in rgba], channels=3)
    np.testing.assert_array_equal(np.rint(x[0].permute(0, 2, 3, 1).numpy() * 255), rgba[..., :3])


def test_pil_mode_f_range_decides_scale() -> None:
    unit = np.array([[0.0, 0.5, 1.0]], np.float32)
    x, _ = prepare_frames([Image.fromarray(unit)], channels=1)  # [0, 1] is taken as [0, 1]
    assert np.rint(x.flatten().numpy() * 255).tolist() == [0, 128, 255]
    levels = np.array([[0.0, 1.0, 200.0]], np.float32)
    x, _ = prepare_frames([Image.fromarray(levels)], channels=1)  # beyond 1: 8-bit levels
    assert np.rint(x.flatten().numpy() * 255).tolist() == [0, 1, 200]
    # decided for the whole sequence: a dark frame next to a bright one keeps its levels
    x, _ = prepare_frames(
        [Image.fromarray(np.float32([[0.0, 1.0]])), Image.fromarray(np.float32([[0.0, 255.0]]))], channels=1
    )
    assert np.rint(x.flatten().numpy() * 255).tolist() == [0, 1, 0, 255]
    with pytest.raises(InputError, match=r"\[0, 1\] or in \[0, 255\]"):
        prepare_frames([Image.fromarray(np.float32([[-3.0, 1.0]]))], channels=1)


def test_pil_mode_i_above_16_bit_refused_and_i16_kept(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"70000.*65535"):
        prepare_frames([Image.fromarray(np.full((4, 4), 70000, np.int32))], channels=1)
    x, _ = prepare_frames([Image.fromarray(np.int32([[0, 257 * 100, 65535]]))], channels=1)
    assert np.rint(x.flatten().numpy() * 255).tolist() == [0, 100, 255]
    im16 = Image.fromarray(np.uint16([[0, 257 * 7, 65535]]))
    assert im16.mode.startswith("I;16")
    x, _ = prepare_frames([im16], channels=1)
    assert np.rint(x.flatten().numpy() * 255).tolist() == [0, 7, 255]
    im16.save(tmp_path / "w.tif")
    assert read_frames(tmp_path / "w.tif")[0, 0, :, 0].tolist() == [0, 7, 255]


def test_multipage_tiff_of_mixed_sizes(tmp_path: Path) -> None:
    pages = [Image.fromarray(_u8(8, 8)), Image.fromarray(_u8(4, 6))]
    pages[0].save(tmp_path / "m.tif", save_all=True, append_images=pages[1:])
    with pytest.raises(InputError, match=r"frame 1.* 4x6 .*frame 0.* 8x8"):
        read_frames(tmp_path / "m.tif")
    same = [Image.fromarray(f) for f in _u8(3, 8, 8)]
    same[0].save(tmp_path / "ok.tif", save_all=True, append_images=same[1:])
    assert read_frames(tmp_path / "ok.tif").shape == (3, 8, 8, 1)


def test_meta_and_nested_tensors_refused() -> None:
    with pytest.raises(InputError, match="meta"):
        prepare_frames(torch.empty(3, 8, 8, device="meta"), channels=1)
    with pytest.raises(InputError, match="meta"):
        write_gif(torch.empty(3, 8, 8, device="meta"), "unused.gif")
    nested = torch.nested.nested_tensor([torch.zeros(2, 8, 8), torch.zeros(3, 8, 8)], layout=torch.jagged)
    with pytest.raises(InputTypeError, match="nested"):
        prepare_frames(nested, channels=1)


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs here")
def test_non_regular_files_refused_before_opening(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "x.gif")  # opening it would block until a writer comes
    with pytest.raises(InputError, match="not a regular file"):
        read_frames(tmp_path / "x.gif")
    with pytest.raises(InputError, match="not a regular file"):
        write_gif(_u8(2, 4, 4), tmp_path / "x.gif")
    with pytest.raises(InputError, match="not a regular file"):
        write_gif(_u8(2, 4, 4), tmp_path)  # a folder
    (tmp_path / "frames").mkdir()
    os.mkfifo(tmp_path / "frames" / "f0.png")  # a FIFO among the images of a folder is skipped
    Image.fromarray(_u8(4, 4)).save(tmp_path / "frames" / "f1.png")
    assert read_frames(tmp_path / "frames").shape == (1, 4, 4, 1)


def test_overlong_paths_refused(tmp_path: Path) -> None:
    long = "a" * 5000 + ".gif"
    for call in (
        lambda: read_frames(long),
        lambda: prepare_frames(long, channels=1),
        lambda: prepare_frames(long[:-4] + ".npy", channels=1),
        lambda: write_gif(_u8(2, 4, 4), long),
    ):
        with pytest.raises(InputError, match="too long") as info:
            call()
        assert "5004 characters" in str(info.value) and len(str(info.value)) < 500
    with pytest.raises(InputError, match="no such file"):
        read_frames(tmp_path / ("b" * 200 + ".gif"))


def test_peek_shape_reads_the_shape_only() -> None:
    from stzoo.frames import peek_shape

    assert peek_shape(np.zeros((5, 8, 8), np.uint8), channels=1) == (1, 5, 1, 8, 8)
    assert peek_shape(torch.zeros(2, 5, 3, 8, 8), channels=3) == (2, 5, 3, 8, 8)
    assert peek_shape(np.zeros((2, 5, 8, 8, 3)), channels=3, layout="bthwc") == (2, 5, 3, 8, 8)
    assert peek_shape(torch.empty(5, 8, 8, device="meta"), channels=1) == (1, 5, 1, 8, 8)
    assert peek_shape(np.zeros((5, 8, 8)), channels=3) == (1, 5, 3, 8, 8)  # grey frames, converted to RGB
    for refused in (np.zeros((5, 8, 8)), "clip.gif", [np.zeros((8, 8))]):
        assert peek_shape(refused, channels=2) is None  # prepare_frames gives the error / reads it
