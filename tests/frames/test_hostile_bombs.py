"""Decompression and memory bombs (audit F6) and writers aimed at device nodes and FIFOs (audit F5).

Bombs: every input is bounded by the sizes it *declares* before anything is decoded or copied: a GIF's
logical screen, a video stream's frame size and count, a ``.npy`` / ``.npz`` header, an array's or
tensor's logical shape (``np.broadcast_to`` / ``expand``), and each architecture's activation-memory
estimate before the model runs. ``predict`` reads only the frames the model uses (the last
``frames_in``), so a very long but cheap input gives the correct result. Each case runs in a forked
child with a memory limit (tests/helpers/hostile.py): a raw ``MemoryError`` or a kill is a leak.

Writers: GIF, video, ``.npy``, PNG folders, strips and ONNX export never open or replace a FIFO or a
device node; the node is still there, unchanged, after the refusal.
"""

from __future__ import annotations

import io
import os
import stat
import struct
import zipfile
from pathlib import Path

import numpy as np
import pytest
from helpers.hostile import refuse, run_case

pytestmark = pytest.mark.hostile

TAU = "import numpy as np, torch, stzoo\np = stzoo.load('tau-mmnist-s')\n"
LSTM = "import numpy as np, torch, stzoo\np = stzoo.load('convlstm-mmnist-s')\n"


def gif_with_screen(path: Path, width: int, height: int) -> None:
    """A 1-pixel GIF whose logical screen declares ``width`` × ``height`` (a few dozen bytes)."""
    b = bytearray(b"GIF89a" + struct.pack("<HH", width, height) + bytes([0x80, 0, 0]) + b"\x00\x00\x00\xff\xff\xff")
    b += b"\x2c" + struct.pack("<HHHH", 0, 0, 1, 1) + b"\x00" + b"\x02\x02\x44\x01\x00" + b";"
    path.write_bytes(bytes(b))


def npz_bomb(path: Path, shape: tuple[int, ...], megabytes: int = 8) -> None:
    """A .npz whose 'frames' member declares ``shape`` (float32) but holds only ``megabytes`` of zeros."""
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": "<f4", "fortran_order": False, "shape": shape})
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf, zf.open("frames.npy", "w", force_zip64=True) as m:
        m.write(header.getvalue())
        for _ in range(megabytes):
            m.write(bytes(1 << 20))


# ---- F6: bounded by declared sizes ----------------------------------------------------------------------
@pytest.mark.parametrize("call", ["stzoo.frames.read.read_frames(PATH)", "p.predict(PATH)"])
def test_gif_with_a_huge_logical_screen(call, tmp_path):
    gif = tmp_path / "bomb.gif"
    gif_with_screen(gif, 13000, 13000)  # 35 bytes, 507 M values once decoded as RGB float32
    r = refuse(TAU + f"import stzoo.frames.read\nPATH = {str(gif)!r}\n" + call, match="input limit", within=30)
    assert "13000x13000" in r["message"] and "STZOO_MAX_INPUT_BYTES" in r["message"]


def test_many_frame_gif_beyond_the_budget_is_refused_while_reading(tmp_path):
    frames = np.zeros((40, 256, 256), np.uint8)
    from stzoo.frames.write import write_gif

    write_gif(frames, tmp_path / "long.gif")
    code = f"import stzoo.frames.read\nstzoo.frames.read.read_frames({str(tmp_path / 'long.gif')!r}, max_bytes=2**22)"
    refuse(code, match="input limit", within=30)


def test_npz_bomb_is_refused_by_its_header(tmp_path):
    npz = tmp_path / "bomb.npz"
    npz_bomb(npz, (1000, 1000, 1000))  # a few hundred KB that would unpack to 4 GB
    assert npz.stat().st_size < 2 << 20
    r = refuse(TAU + f"p.predict({str(npz)!r})", match="input limit", within=30)
    assert "declared" in r["message"]


def test_npy_header_bomb_read_whole_is_refused(tmp_path):
    npy = tmp_path / "big.npy"
    with open(npy, "wb") as fh:  # a header that declares 10^10 values over a 100-byte body
        np.lib.format.write_array_header_1_0(fh, {"descr": "|u1", "fortran_order": False, "shape": (10**6, 100, 100)})
        fh.write(bytes(100))
    refuse(f"import stzoo.frames.read\nstzoo.frames.read.read_frames({str(npy)!r})", match="input limit", within=30)


def test_long_npy_predicts_from_its_last_frames(tmp_path):
    npy = tmp_path / "long.npy"
    a = np.lib.format.open_memmap(npy, mode="w+", dtype=np.uint8, shape=(60_000, 64, 64))  # 245 MB on disk
    a[-10:, 20:30, 20:30] = 255
    del a
    code = TAU + (
        f"y = p.predict({str(npy)!r})\n"
        f"ref = p.predict(np.load({str(npy)!r}, mmap_mode='r')[-10:].copy())\n"
        "assert np.array_equal(y, ref), 'not the forecast of the last frames'\n"
    )
    # a budget of 128 MiB: reading the whole file (983 MB as float32) would be refused
    r = run_case(code, timeout=120, env={"STZOO_MAX_INPUT_BYTES": str(2**27)})
    assert not r.get("raised"), r


@pytest.mark.parametrize(
    "make",
    [
        "np.broadcast_to(np.zeros((1, 64, 64), np.uint8), (10**7, 64, 64))",
        "torch.zeros(1, 1, 64, 64).expand(10**7, 1, 64, 64)",
        "[np.zeros((64, 64), np.uint8)] * 10**6",
    ],
    ids=["broadcast_to", "expand", "list"],
)
def test_huge_logical_input_gives_the_forecast_of_its_last_frames(make):
    code = TAU + (
        f"x = {make}\ny = p.predict(x)\n"
        "ref = p.predict(np.zeros((10, 64, 64), np.uint8)).astype(float) / 255\n"
        "y = y.numpy() if torch.is_tensor(y) else np.asarray(y)\n"
        "y = y.reshape(ref.shape).astype(float) / (1.0 if y.dtype.kind == 'f' else 255.0)\n"
        "assert np.allclose(y, ref, atol=0.6 / 255), 'not the forecast of the last frames'\n"
    )
    r = run_case(code, timeout=120)  # converting 10^7 frames would ask for 150 GiB, far above the 6 GiB limit
    assert not r.get("raised"), r


def test_broadcast_batch_beyond_the_budget_is_refused():
    code = TAU + "x = np.broadcast_to(np.zeros((1, 1, 64, 64), np.uint8), (10**6, 10, 64, 64))\np.predict(x, horizon=1)"
    refuse(code, match="limit", within=30)


@pytest.mark.parametrize("setup", [TAU, LSTM], ids=["tau", "convlstm"])
def test_frames_too_large_for_the_activations_are_refused_before_running(setup):
    # (10, 4096, 4096) is 0.67 GB of float32 input, within the input budget, but ~100 GiB of activations
    code = setup + "x = np.zeros((10, 4096, 4096), np.uint8)\np.predict(x)"
    r = refuse(code, match="max_activation_bytes", within=30)
    assert "GiB" in r["message"] and "STZOO_MAX_ACTIVATION_BYTES" in r["message"]


def test_activation_limit_can_be_raised_and_lowered():
    code = TAU + "p.predict(np.zeros((10, 64, 64), np.uint8), max_activation_bytes=10**6)"
    refuse(code, match="max_activation_bytes", within=30)
    ok = run_case(TAU + "p.predict(np.zeros((10, 64, 64), np.uint8))", env={"STZOO_MAX_ACTIVATION_BYTES": str(2**33)})
    assert not ok.get("raised"), ok
    refuse(
        TAU + "p.predict(np.zeros((10, 64, 64), np.uint8))", env={"STZOO_MAX_ACTIVATION_BYTES": "lots"}, match="STZOO"
    )


@pytest.mark.parametrize("value", ["0", "-5", "1e9", "big"])
def test_bad_input_budget_values(value):
    refuse(TAU + "p.predict(np.zeros((10, 64, 64), np.uint8))", env={"STZOO_MAX_INPUT_BYTES": value}, match="STZOO")


def test_bad_input_budget_argument():
    refuse(TAU + "p.predict(np.zeros((10, 64, 64), np.uint8), max_input_bytes=0)", match="max_input_bytes")


def test_export_of_a_huge_frame_size_is_refused():
    pytest.importorskip("onnx")
    refuse(TAU + "p.export_onnx('m.onnx', height=8192, width=8192, verify=False)", match="limit", within=30)


def test_every_registered_architecture_declares_an_activation_estimate():
    from stzoo.models import ARCHITECTURES

    for name, arch in ARCHITECTURES.items():
        cfg = arch.make_config(arch.tiny_config)
        small = arch.estimate_activation_bytes(cfg, (1, 4, 1, 16, 16))
        big = arch.estimate_activation_bytes(cfg, (1, 4, 1, 4096, 4096))
        assert small is not None and 0 < small < big, name


# ---- video: declared size, last frames --------------------------------------------------------------------
def _video(path: Path, frames: np.ndarray) -> None:
    pytest.importorskip("av")
    from stzoo.frames.write import write_video

    write_video(frames, path, fps=25)


def test_video_last_frames_equal_the_full_decode(tmp_path):
    rng = np.random.default_rng(0)
    frames = (rng.random((120, 32, 32, 3)) * 255).astype(np.uint8)
    _video(tmp_path / "v.mp4", frames)
    from stzoo.frames.read import read_frames

    full = read_frames(tmp_path / "v.mp4")
    last = read_frames(tmp_path / "v.mp4", last=10)
    assert full.shape[0] == 120 and np.array_equal(full[-10:], last)


def test_video_beyond_the_budget_is_refused_by_its_metadata(tmp_path):
    _video(tmp_path / "v.mp4", np.zeros((30, 256, 256, 3), np.uint8))
    code = f"import stzoo.frames.read\nstzoo.frames.read.read_frames({str(tmp_path / 'v.mp4')!r}, max_bytes=2**22)"
    r = refuse(code, match="input limit", within=30)
    assert "declares" in r["message"]


# ---- F5: writers never open or replace a FIFO or a device node ------------------------------------------------
WRITERS = {
    "write_gif": "stzoo.frames.write.write_gif(x, T)",
    "npy": "stzoo.frames.write.write_frames(x, T)",
    "video": "stzoo.frames.write.write_video(np.zeros((4, 16, 16), np.uint8), T)",
    "save_strip": "stzoo.frames.viz.save_strip(x, x, T)",
    "export_onnx": "stzoo.load('tau-mmnist-s').export_onnx(T, verify=False)",
    "save_pretrained": "stzoo.load('tau-mmnist-s').save_pretrained(T)",
    "checkpoint_text": "from stzoo.training.checkpoints import atomic_write_text\natomic_write_text(Path(T), 'x')",
}
SUFFIX = {"write_gif": ".gif", "npy": ".npy", "video": ".mp4", "save_strip": ".png", "export_onnx": ".onnx"}


def _node(tmp_path: Path, kind: str, name: str) -> Path:
    path = tmp_path / name
    if kind == "fifo":
        if not hasattr(os, "mkfifo"):
            pytest.skip("no FIFOs here")
        os.mkfifo(path)
    else:  # a character device with /dev/null's numbers: harmless even if it were written to
        try:
            os.mknod(path, 0o666 | stat.S_IFCHR, os.makedev(1, 3))
        except (PermissionError, AttributeError, OSError):
            pytest.skip("creating a device node needs privileges")
    return path


@pytest.mark.parametrize("kind", ["fifo", "device"])
@pytest.mark.parametrize("writer", list(WRITERS))
def test_writers_refuse_fifos_and_devices(writer, kind, tmp_path):
    if writer == "export_onnx":
        pytest.importorskip("onnx")
    if writer == "video":
        pytest.importorskip("av")
    target = _node(tmp_path, kind, "out" + SUFFIX.get(writer, ""))
    code = (
        "import numpy as np, stzoo, stzoo.frames.write, stzoo.frames.viz\nfrom pathlib import Path\n"
        f"x = np.zeros((4, 16, 16), np.uint8)\nT = {str(target)!r}\n{WRITERS[writer]}\n"
    )
    r = refuse(code, match="not", within=60)
    assert "regular file" in r["message"] or "not a folder" in r["message"], r["message"]
    mode = os.lstat(target).st_mode
    assert stat.S_ISFIFO(mode) if kind == "fifo" else stat.S_ISCHR(mode), "the node was replaced"
    assert sorted(os.listdir(tmp_path)) == [target.name], "something was written beside it"


def test_png_folder_with_a_fifo_frame_name(tmp_path):
    folder = tmp_path / "frames"
    folder.mkdir()
    fifo = _node(folder, "fifo", "frame_000001.png")
    code = "import numpy as np, stzoo.frames.write\n"
    code += f"stzoo.frames.write.write_png_folder(np.zeros((3, 8, 8), np.uint8), {str(folder)!r})"
    refuse(code, match="regular file", within=30)
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)


# ---- F17: a folder that cannot be listed ------------------------------------------------------------------
@pytest.mark.parametrize(
    "call", ["stzoo.frames.read.read_frames(D)", "p.predict(D)", "clips._read_path(Path(D), None, 1)"]
)
def test_unlistable_folder(call, tmp_path):
    folder = tmp_path / "locked"
    folder.mkdir()
    (folder / "a.png").write_bytes(b"")
    # root can list any folder, so the refusal of the OS is simulated where stzoo lists folders
    code = TAU + (
        "import errno, os, stzoo.frames.read\nfrom pathlib import Path\nfrom stzoo.data import clips\n"
        "real = os.scandir\n"
        "def deny(p='.'):\n"
        "    if 'locked' in str(p):\n        raise PermissionError(errno.EACCES, 'Permission denied', str(p))\n"
        "    return real(p)\n"
        f"os.scandir = deny\nD = {str(folder)!r}\n{call}\n"
    )
    r = refuse(code, match="cannot list the folder", within=30)
    assert "permission" in r["message"].lower()
