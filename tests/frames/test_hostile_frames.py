"""Hostile frames and forecast sizes: each case runs in a limited subprocess (tests/helpers/hostile.py) and must
be refused with a clean StzooError, quickly, before memory runs out or anything blocks.

Covers: unbounded horizons and forecast sizes (predict, forecast_tensor, Forecaster, a model whose
frames_out is huge), bad horizon values, colour / alpha axes that layout inference could mistake for
B/T/H/W, multi-page TIFFs with pages of different sizes, meta tensors, FIFOs named like frame files,
over-long paths, and PIL 'I' / 'F' images whose values cannot be read without clipping.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from helpers.hostile import refuse
from PIL import Image

pytestmark = pytest.mark.hostile

TAU = "import numpy as np, stzoo\np = stzoo.load('tau-mmnist-s')\nx = np.zeros((10, 64, 64), np.uint8)\n"
LSTM = "import numpy as np, stzoo\np = stzoo.load('convlstm-mmnist-s')\nx = np.zeros((10, 64, 64), np.uint8)\n"
IO = (  # no model needed
    "import numpy as np, stzoo, stzoo.frames.read, stzoo.frames.write, stzoo.frames.viz\n"
    "x = np.zeros((10, 64, 64), np.uint8)\n"
)


def timed(setup: str, call: str, limit: float = 1.0) -> str:
    """Case code that runs ``setup``, then ``call``, and turns a refusal slower than ``limit`` seconds
    (measured around ``call`` alone, not the imports) into a leak: an AssertionError replaces it."""
    body = "\n".join("    " + line for line in call.strip().splitlines())
    return (
        f"{setup}\nimport time\nt0 = time.perf_counter()\ntry:\n{body}\nfinally:\n"
        f"    assert time.perf_counter() - t0 < {limit}, f'refusal took {{time.perf_counter() - t0:.2f}} s'\n"
    )


# ---- 3: forecast sizes ---------------------------------------------------------------------------
@pytest.mark.parametrize("setup", [TAU, LSTM], ids=["tau", "convlstm"])
@pytest.mark.parametrize("horizon", ["10**9", "10**5000"])
def test_predict_huge_horizon(setup, horizon):
    refuse(timed(setup, f"p.predict(x, horizon={horizon})"), match="horizon", within=30)


def test_predict_output_bytes_limit():
    # 10,000 frames is within MAX_HORIZON, but 64 sequences of them are 10 GiB of float32
    setup = TAU + "xb = np.zeros((64, 10, 64, 64), np.uint8)\n"
    refuse(timed(setup, "p.predict(xb, horizon=10_000)"), match="max_output_bytes", within=30)


def test_forecast_tensor_huge_horizon():
    setup = LSTM + "import torch\nt = torch.zeros(1, 10, 1, 64, 64)\n"
    refuse(timed(setup, "p.forecast_tensor(t, 10**9)"), match="horizon", within=30)


def test_model_with_huge_frames_out():
    setup = LSTM + "import dataclasses\np.spec = dataclasses.replace(p.spec, frames_out=10**9)\n"
    refuse(timed(setup, "p.predict(x)"), match="frames_out", within=30)


def test_forecaster_forecast_huge_horizon():
    setup = LSTM + "f = stzoo.Forecaster(p)\nf.push(x[0])\n"
    refuse(timed(setup, "f.forecast(horizon=10**9)"), match="horizon", within=30)


def test_forecaster_huge_horizon_at_construction():
    refuse(timed(LSTM, "stzoo.Forecaster(p, horizon=10**9)"), match="horizon", within=30)


def test_forecaster_stream_output_bytes_limit():
    # 10,000 steps of a 512×512 frame would be 10 GiB of float32
    setup = LSTM + "f = stzoo.Forecaster(p)\nf.push(np.zeros((512, 512), np.uint8))\n"
    refuse(timed(setup, "f.forecast(horizon=10_000)"), match="max_output_bytes", within=60)


@pytest.mark.parametrize("horizon", ["'16'", "16.0", "-1", "0", "True", "np.float64(5)", "[16]"])
def test_predict_bad_horizon_values(horizon):
    refuse(timed(TAU, f"p.predict(x, horizon={horizon})"), match="horizon", within=30)


def test_forecast_tensor_horizon_none():
    setup = LSTM + "import torch\nt = torch.zeros(1, 10, 1, 64, 64)\n"
    refuse(timed(setup, "p.forecast_tensor(t, None)"), match="horizon", within=30)


@pytest.mark.parametrize("limit", ["max_horizon=0", "max_output_bytes='big'", "max_horizon=True"])
def test_bad_limit_arguments(limit):
    refuse(timed(TAU, f"p.predict(x, {limit})"), match=limit.split("=")[0], within=30)


# ---- 6: colour axes are never read as B / T / H / W -------------------------------------------------
@pytest.mark.parametrize(
    "shape",
    [(10, 64, 64, 4), (10, 4, 64, 64), (10, 64, 64, 2), (64, 64, 4)],
    ids=["THWC-rgba", "TCHW-rgba", "THWC-grey-alpha", "one-HWC-image"],
)  # RGB: converted
def test_colour_video_into_grey_model(shape):
    r = refuse(timed(TAU, f"p.predict(np.zeros({shape}, np.uint8))"), match="layout=", within=30)
    assert "would be read as" in r["message"]  # names the layout it considered


def test_rgba_video_into_rgb_model():
    setup = "import numpy as np\nfrom stzoo.frames.prepare import prepare_frames\n"
    r = refuse(setup + "prepare_frames(np.zeros((10, 64, 64, 4), np.uint8), channels=3)", match="layout=", within=30)
    assert "[..., :3]" in r["message"]


# ---- 7: raw exceptions from files and tensors --------------------------------------------------------
def test_multipage_tiff_pages_of_different_sizes(tmp_path: Path):
    path = tmp_path / "pages.tif"
    big, small = (Image.fromarray(np.zeros(s, np.uint8)) for s in ((64, 64), (32, 48)))
    big.save(path, save_all=True, append_images=[small])
    r = refuse(f"from stzoo.frames.read import read_frames\nread_frames({str(path)!r})", match="size", within=30)
    assert "32x48" in r["message"] and "64x64" in r["message"]


def test_multipage_tiff_pages_of_different_sizes_predict(tmp_path: Path):
    path = tmp_path / "pages.tif"
    big, small = (Image.fromarray(np.zeros(s, np.uint8)) for s in ((64, 64), (32, 48)))
    big.save(path, save_all=True, append_images=[small] * 9)
    refuse(TAU + f"p.predict({str(path)!r})", match="size", within=30)


@pytest.mark.parametrize(
    "call",
    [
        "p.predict(torch.empty(10, 64, 64, device='meta'))",
        "p.predict(torch.empty(1, 10, 1, 64, 64, dtype=torch.uint8, device='meta'))",
        "stzoo.frames.write.write_gif(torch.empty(2, 8, 8, device='meta'), 'x.gif')",
        "stzoo.frames.viz.save_strip(torch.empty(2, 8, 8, device='meta'), x, 'x.png')",
    ],
    ids=["predict-float", "predict-uint8", "write_gif", "save_strip"],
)
def test_meta_tensor(call, tmp_path: Path):
    setup = (TAU if call.startswith("p.") else IO) + "import torch\n"
    refuse(timed(setup, call), match="meta", within=30, cwd=tmp_path)


@pytest.fixture
def fifo_dir(tmp_path: Path) -> Path:
    if not hasattr(os, "mkfifo"):
        pytest.skip("no FIFOs on this platform")
    for name in ("x.gif", "x.npy", "x.png"):
        os.mkfifo(tmp_path / name)
    return tmp_path


@pytest.mark.parametrize(
    "call",
    ["stzoo.frames.read.read_frames(PATH / 'x.gif')", "p.predict(str(PATH / 'x.gif'))", "p.predict(PATH / 'x.npy')"],
    ids=["read_frames-gif", "predict-gif", "predict-npy"],
)
def test_fifo_named_like_a_frame_file(call, fifo_dir: Path):
    setup = (
        TAU
        + f"import stzoo.frames.read, stzoo.frames.write\nfrom pathlib import Path\nPATH = Path({str(fifo_dir)!r})\n"
    )
    refuse(timed(setup, call), match="regular file", within=30)  # opening it would block forever


@pytest.mark.parametrize(
    "call",
    ["stzoo.frames.write.write_gif(x, PATH / 'x.gif')", "stzoo.frames.viz.save_strip(x, x, PATH / 'x.png')"],
    ids=["write_gif", "save_strip"],
)
def test_fifo_as_output_file(call, fifo_dir: Path):
    setup = IO + f"from pathlib import Path\nPATH = Path({str(fifo_dir)!r})\n"
    refuse(timed(setup, call), match="not a regular file", within=30)  # writing would block without a reader


@pytest.mark.parametrize(
    "call",
    [
        "stzoo.frames.read.read_frames('a' * 5000 + '.gif')",
        "p.predict('a' * 5000 + '.gif')",
        "p.predict('a' * 5000 + '.npy')",
        "stzoo.frames.write.write_gif(x, 'a' * 5000 + '.gif')",
        "stzoo.frames.viz.save_strip(x, x, 'a' * 5000 + '.png')",
        "p.predict('/'.join(['b' * 200] * 30) + '.gif')",
    ],
    ids=["read_frames", "predict-gif", "predict-npy", "write_gif", "save_strip", "deep-path"],
)
def test_overlong_path(call):
    r = refuse(timed(TAU if call.startswith("p.") else IO, call), match="too long", within=30)
    assert len(r["message"]) < 1000  # the path is shortened in the message


# ---- 8: PIL modes whose values would be clipped or misread ------------------------------------------
@pytest.mark.parametrize(
    "values, match",
    [
        ("np.full((64, 64), 70000, np.int32)", "65535"),  # 'I' above 16 bits: not clipped silently
        ("np.full((64, 64), -5, np.int32)", "65535"),
        ("np.full((64, 64), 300.0, np.float32)", "[0, 255]"),  # 'F' outside both ranges it reads
        ("np.full((64, 64), np.nan, np.float32)", "nan"),
    ],
    ids=["I-above-16-bit", "I-negative", "F-above-255", "F-nan"],
)
def test_pil_wide_modes_refused(values, match):
    setup = TAU + "from PIL import Image\n"
    refuse(setup + f"p.predict([Image.fromarray({values})] * 10)", match=match, within=30)


def test_tiff_mode_i_above_16_bit_refused(tmp_path: Path):
    path = tmp_path / "wide.tif"
    Image.fromarray(np.full((64, 64), 100_000, np.int32)).save(path)
    assert Image.open(path).mode == "I"
    refuse(f"import stzoo.frames.read\nstzoo.frames.read.read_frames({str(path)!r})", match="65535", within=30)
