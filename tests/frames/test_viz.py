"""stzoo.frames.viz: paper-style strips and annotated GIFs, and `stzoo predict --strip / --animation`."""

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from stzoo.cli.main import main
from stzoo.errors import InputError, InputTypeError
from stzoo.frames import read_frames, viz

ROOT = Path(__file__).resolve().parents[2]


def _colour_frames(t: int, base: tuple[int, int, int], size: int = 8) -> np.ndarray:
    """t RGB frames, frame k filled with base + (0, 0, k): colours no grey label pixel can have."""
    out = np.zeros((t, size, size, 3), dtype=np.uint8)
    for k in range(t):
        out[k] = (base[0], base[1], base[2] + k)
    return out


def _count(image: Image.Image, colour: tuple[int, int, int]) -> int:
    a = np.asarray(image.convert("RGB"))
    return int(np.all(a == np.asarray(colour, dtype=np.uint8), axis=-1).sum())


def test_strip_draws_every_frame_once_per_row_and_the_error_row():
    x = _colour_frames(3, (200, 30, 60))
    y = _colour_frames(2, (20, 180, 60))
    gt = _colour_frames(2, (90, 10, 200))
    img = viz.prediction_strip(x, y, gt, scale=2)
    cell = (8 * 2) ** 2
    for k in range(3):
        assert _count(img, (200, 30, 60 + k)) == cell  # each input frame, upscaled 2×
    for k in range(2):
        assert _count(img, (20, 180, 60 + k)) == cell
        assert _count(img, (90, 10, 200 + k)) == cell
    # |prediction - truth| is the same for every pixel of a frame: the error cells are one heat colour each.
    err, colours, vmax = viz.error_heatmap(y, gt)
    expected = np.abs(y.astype(np.float32) - gt.astype(np.float32)).mean(-1) / 255
    np.testing.assert_allclose(err, expected, atol=1e-6)
    assert vmax == pytest.approx(float(expected.max()))
    for k in range(2):
        assert _count(img, tuple(int(v) for v in colours[k, 0, 0])) >= cell


def test_strip_without_truth_has_two_rows_and_no_heat_map():
    x, y = _colour_frames(3, (200, 30, 60)), _colour_frames(2, (20, 180, 60))
    with_truth = viz.prediction_strip(x, y, _colour_frames(2, (90, 10, 200)), scale=2)
    without = viz.prediction_strip(x, y, scale=2)
    assert without.height < with_truth.height and without.width < with_truth.width  # no colour bar
    top = tuple(int(v) for v in viz.heat_colors(np.array(1.0)))
    assert _count(without, top) == 0 and _count(with_truth, top) > 0
    assert _count(without, (20, 181, 61)) == 0 and _count(without, (20, 180, 61)) == 16 * 16


def test_heat_colors_run_from_first_to_last_anchor():
    c = viz.heat_colors(np.array([0.0, 1.0, -3.0, 7.0]))
    assert tuple(c[0]) == viz.HEAT_ANCHORS[0] and tuple(c[1]) == viz.HEAT_ANCHORS[-1]
    assert tuple(c[2]) == viz.HEAT_ANCHORS[0] and tuple(c[3]) == viz.HEAT_ANCHORS[-1]  # clipped
    brightness = viz.heat_colors(np.linspace(0, 1, 50)).astype(int).sum(-1)
    assert np.all(np.diff(brightness) >= 0)  # a larger error never looks darker


@pytest.mark.parametrize("layout", ["THW", "THWC", "TCHW", "BTCHW", "float", "torch"])
def test_accepted_layouts_give_the_same_picture(layout):
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (4, 12, 12), dtype=np.uint8)
    y = rng.integers(0, 256, (3, 12, 12), dtype=np.uint8)
    ref = np.asarray(viz.prediction_strip(x, y))
    conv = {
        "THW": lambda a: a,
        "THWC": lambda a: a[..., None],
        "TCHW": lambda a: a[:, None],
        "BTCHW": lambda a: a[None, :, None],
        "float": lambda a: a.astype(np.float32) / 255,
        "torch": lambda a: torch.from_numpy(a.astype(np.float32) / 255),
    }[layout]
    np.testing.assert_array_equal(np.asarray(viz.prediction_strip(conv(x), conv(y))), ref)


def test_grey_and_rgb_mix():
    grey = np.full((2, 8, 8), 77, dtype=np.uint8)
    rgb = _colour_frames(2, (10, 200, 30))
    img = viz.prediction_strip(grey, rgb, rgb, scale=1)
    assert _count(img, (77, 77, 77)) >= 2 * 64
    err, _, _ = viz.error_heatmap(rgb, grey[..., None])
    np.testing.assert_allclose(err[0], np.abs(np.array([10, 200, 30]) - 77).mean() / 255, atol=1e-6)


def test_bad_inputs_say_what_is_wrong():
    x = np.zeros((3, 8, 8), np.uint8)
    with pytest.raises(InputError, match="same frame size"):
        viz.prediction_strip(x, np.zeros((2, 10, 10), np.uint8))
    with pytest.raises(InputError, match="target"):
        viz.prediction_strip(x, np.zeros((2, 8, 8), np.uint8), np.zeros((3, 8, 8), np.uint8))
    with pytest.raises(InputError, match="T×H×W"):
        viz.prediction_strip(np.zeros((2, 3, 8, 8, 5), np.uint8), x)
    with pytest.raises(InputError, match="prediction"):
        viz.prediction_strip(x, np.full((2, 8, 8), 2.0, np.float32))
    with pytest.raises(InputTypeError):
        viz.prediction_strip([1, 2], x)
    with pytest.raises(InputError, match="scale"):
        viz.prediction_strip(x, x, scale=0)
    with pytest.raises(InputError, match="does not exist"):
        viz.save_strip(x, x, "/nonexistent-folder/strip.png")


def test_save_strip_and_gif_write_files(tmp_path):
    x, y = _colour_frames(3, (200, 30, 60)), _colour_frames(2, (20, 180, 60))
    png = viz.save_strip(x, y, tmp_path / "s.png", target=y)
    with Image.open(png) as im:
        assert im.format == "PNG" and im.size == viz.prediction_strip(x, y, y).size
    gif = viz.save_gif(x, y, tmp_path / "a.gif", target=y, fps=4)
    frames = read_frames(gif)
    single = read_frames(viz.save_gif(x, y, tmp_path / "b.gif"))
    assert frames.shape[0] == single.shape[0] == 5  # 3 observed + 2 predicted
    assert frames.shape[2] > single.shape[2]  # the truth panel beside the forecast
    anim = viz.animation_frames(x, y, y)
    np.testing.assert_array_equal(frames[..., :3], anim)  # GIF keeps every colour of these frames


def test_cli_predict_writes_strip_animation_and_frames(tmp_path):
    rng = np.random.default_rng(1)
    past = rng.integers(0, 256, (12, 64, 64), dtype=np.uint8)
    truth = rng.integers(0, 256, (10, 64, 64), dtype=np.uint8)
    np.save(tmp_path / "past.npy", past)
    np.save(tmp_path / "truth.npy", truth)
    args = ["predict", "convlstm-mmnist-s", "--random", "--input", str(tmp_path / "past.npy")]
    assert main(args + ["--strip", str(tmp_path / "plain.png")]) == 0
    assert (
        main(
            args
            + [
                "--truth",
                str(tmp_path / "truth.npy"),
                "--strip",
                str(tmp_path / "full.png"),
                "--animation",
                str(tmp_path / "anim.gif"),
                "--output",
                str(tmp_path / "y.npy"),
            ]
        )
        == 0
    )
    assert np.load(tmp_path / "y.npy").shape == (10, 64, 64)  # T×H×W in, T×H×W out
    with Image.open(tmp_path / "plain.png") as a, Image.open(tmp_path / "full.png") as b:
        assert b.height > a.height
    assert read_frames(tmp_path / "anim.gif").shape[0] == 10 + 10  # the 10 frames the model read + 10
    assert main(args) == 2  # nothing to write: a clear error, not a crash


def test_readme_and_docs_show_the_committed_strip():
    image = ROOT / "docs" / "assets" / "tau-mmnist-strip.png"
    with Image.open(image) as im:
        assert im.format == "PNG" and im.width > im.height
    assert "docs/assets/tau-mmnist-strip.png" in (ROOT / "README.md").read_text(encoding="utf-8")
    assert "assets/tau-mmnist-strip.png" in (ROOT / "docs" / "index.md").read_text(encoding="utf-8")
