"""MNIST IDX reading and the on-the-fly Moving MNIST generator (stzoo.data)."""

from __future__ import annotations

import gzip
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from stzoo.data.mnist import find_mnist_dir, load_mnist, read_idx
from stzoo.data.moving_mnist import TEST_SEED, MovingMNIST, moving_mnist_test_set, trajectory
from stzoo.errors import InputError

REAL_MNIST = Path(__file__).resolve().parents[3] / "shared" / "data" / "mnist"
HAVE_REAL_MNIST = (REAL_MNIST / "t10k-images-idx3-ubyte.gz").is_file() or (
    REAL_MNIST / "t10k-images-idx3-ubyte"
).is_file()
needs_real_mnist = pytest.mark.skipif(not HAVE_REAL_MNIST, reason=f"real MNIST IDX files not found in {REAL_MNIST}")


@pytest.fixture(autouse=True)
def _private_cache(tmp_path, monkeypatch):
    """moving_mnist_test_set() caches its sequences under $STZOO_CACHE: keep them out of ~/.cache."""
    monkeypatch.setenv("STZOO_CACHE", str(tmp_path / "stzoo-cache"))


TRAIN_IMG, TRAIN_LBL = "train-images-idx3-ubyte", "train-labels-idx1-ubyte"
TEST_IMG, TEST_LBL = "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"


# ---------------------------------------------------------------------------------------------
# helpers: an IDX writer of our own
# ---------------------------------------------------------------------------------------------
def idx_bytes(arr: np.ndarray, type_code: int = 0x08) -> bytes:
    """IDX encoding: 0, 0, type, ndim, then each dim as a big-endian uint32, then the data."""
    header = bytes([0, 0, type_code, arr.ndim])
    for d in arr.shape:
        header += int(d).to_bytes(4, "big")
    return header + np.ascontiguousarray(arr, dtype=np.uint8).tobytes()


def write_idx(path: Path, arr: np.ndarray, gz: bool) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    data = idx_bytes(arr)
    if gz:
        path = path.with_name(path.name + ".gz")
        with gzip.open(path, "wb") as f:
            f.write(data)
    else:
        path.write_bytes(data)
    return path


def write_split(
    folder: Path, prefix_img: str, prefix_lbl: str, images: np.ndarray, labels: np.ndarray, gz: bool = True
) -> None:
    write_idx(folder / prefix_img, images, gz)
    write_idx(folder / prefix_lbl, labels, gz)


def rand_digits(n: int, seed: int, h: int = 28, w: int = 28) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=(n, h, w), dtype=np.uint8)


# ---------------------------------------------------------------------------------------------
# read_idx / load_mnist
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("gz", [True, False])
def test_read_idx_roundtrip(tmp_path, gz):
    imgs = rand_digits(3, 1, 5, 7)
    p = write_idx(tmp_path / "imgs-idx3-ubyte", imgs, gz)
    out = read_idx(p)
    assert out.shape == (3, 5, 7) and out.dtype == np.uint8
    np.testing.assert_array_equal(out, imgs)

    labels = np.array([3, 1, 4, 1, 5], dtype=np.uint8)
    out = read_idx(write_idx(tmp_path / "labels-idx1-ubyte", labels, gz))
    assert out.shape == (5,)
    np.testing.assert_array_equal(out, labels)


def test_read_idx_bad_magic(tmp_path):
    p = tmp_path / "bad"
    p.write_bytes(b"\x01\x00\x08\x01" + (2).to_bytes(4, "big") + b"\x00\x01")
    with pytest.raises(InputError):
        read_idx(p)
    p.write_bytes(b"\x00")  # too short for a magic number
    with pytest.raises(InputError):
        read_idx(p)


def test_read_idx_unsupported_type_and_wrong_size(tmp_path):
    p = tmp_path / "float"
    p.write_bytes(idx_bytes(np.zeros(4, np.uint8), type_code=0x0D))
    with pytest.raises(InputError):
        read_idx(p)
    p = tmp_path / "short"
    p.write_bytes(idx_bytes(np.zeros((2, 3), np.uint8))[:-1])  # one value missing
    with pytest.raises(InputError):
        read_idx(p)
    p = tmp_path / "long"
    p.write_bytes(idx_bytes(np.zeros((2, 3), np.uint8)) + b"\x00")  # one value too many
    with pytest.raises(InputError):
        read_idx(p)


def test_read_idx_truncated_header(tmp_path):
    p = tmp_path / "trunc"
    # says 3 dimensions but holds only one size field
    p.write_bytes(b"\x00\x00\x08\x03" + (2).to_bytes(4, "big"))
    with pytest.raises(InputError):
        read_idx(p)


@pytest.mark.parametrize("layout", ["flat", "torchvision", "raw"])
@pytest.mark.parametrize("gz", [True, False])
def test_load_mnist_layouts(tmp_path, layout, gz):
    folder = {"flat": tmp_path, "torchvision": tmp_path / "MNIST" / "raw", "raw": tmp_path / "raw"}[layout]
    tr_x, tr_y = rand_digits(6, 2), np.arange(6, dtype=np.uint8)
    te_x, te_y = rand_digits(4, 3), np.array([9, 8, 7, 6], dtype=np.uint8)
    write_split(folder, TRAIN_IMG, TRAIN_LBL, tr_x, tr_y, gz)
    write_split(folder, TEST_IMG, TEST_LBL, te_x, te_y, gz)
    x, y = load_mnist(tmp_path, "train")
    np.testing.assert_array_equal(x, tr_x)
    np.testing.assert_array_equal(y, tr_y)
    x, y = load_mnist(tmp_path, "test")
    np.testing.assert_array_equal(x, te_x)
    np.testing.assert_array_equal(y, te_y)


def test_load_mnist_env_var(tmp_path, monkeypatch):
    te_x, te_y = rand_digits(2, 4), np.array([1, 2], dtype=np.uint8)
    write_split(tmp_path, TEST_IMG, TEST_LBL, te_x, te_y)
    monkeypatch.setenv("STZOO_MNIST_DIR", str(tmp_path))
    x, _ = load_mnist(split="test")
    np.testing.assert_array_equal(x, te_x)
    assert find_mnist_dir() == tmp_path


def test_load_mnist_errors(tmp_path, monkeypatch):
    monkeypatch.delenv("STZOO_MNIST_DIR", raising=False)
    with pytest.raises(InputError):
        load_mnist()
    with pytest.raises(InputError):
        load_mnist(tmp_path / "does-not-exist")
    with pytest.raises(InputError):
        load_mnist(tmp_path)  # exists but empty
    # only the test split present: asking for train is an InputError, test works
    write_split(tmp_path, TEST_IMG, TEST_LBL, rand_digits(2, 5), np.zeros(2, np.uint8))
    with pytest.raises(InputError):
        load_mnist(tmp_path, "train")
    assert load_mnist(tmp_path, "test")[0].shape == (2, 28, 28)
    with pytest.raises(InputError):
        load_mnist(tmp_path, "validation")


def test_load_mnist_images_labels_disagree(tmp_path):
    write_split(tmp_path, TEST_IMG, TEST_LBL, rand_digits(3, 6), np.zeros(2, np.uint8))
    with pytest.raises(InputError):
        load_mnist(tmp_path, "test")


@needs_real_mnist
def test_real_mnist_test_split():
    x, y = load_mnist(REAL_MNIST, "test")
    assert x.shape == (10000, 28, 28) and x.dtype == np.uint8
    assert y.shape == (10000,)
    assert set(np.unique(y).tolist()) == set(range(10))
    assert x.max() == 255 and x.min() == 0


# ---------------------------------------------------------------------------------------------
# trajectory
# ---------------------------------------------------------------------------------------------
class FakeRng:
    """Answers ``random(2)`` with a chosen position and ``random()`` with a chosen angle fraction."""

    def __init__(self, pos, angle_frac):
        self.pos, self.angle_frac = np.asarray(pos, dtype=float), float(angle_frac)

    def random(self, size=None):
        if size is None:
            return self.angle_frac
        assert size == 2
        return self.pos.copy()


def test_trajectory_shape_dtype():
    path = trajectory(np.random.default_rng(0), 20, 36)
    assert path.shape == (20, 2)
    assert np.issubdtype(path.dtype, np.integer)


def test_trajectory_stays_inside_and_moves_about_one_step():
    span, step, length = 36, 0.1, 300
    for seed in range(30):
        path = trajectory(np.random.default_rng(seed), length, span, step)
        assert path.min() >= 0 and path.max() <= span, seed
        d = np.diff(path, axis=0).astype(float)
        # each axis moves by at most step*span (reflection can only shorten it), +1 for rounding
        assert np.abs(d).max() <= step * span + 1, seed
        # the true (unrounded) step has length step*span, bounces only shorten it
        norms = np.hypot(d[:, 0], d[:, 1])
        assert norms.max() <= step * span + math.sqrt(2) + 1e-9, seed
        # it does move: most steps (those without a bounce) are a full step long
        full = norms >= step * span - math.sqrt(2) - 1e-9
        assert full.mean() > 0.6, seed


def test_trajectory_straight_line_without_bounce():
    # start in the middle, moving along +x (theta = 0): x grows by step*span, y does not change
    path = trajectory(FakeRng([0.5, 0.1], 0.0), 5, 100, 0.1)
    np.testing.assert_array_equal(path[:, 0], [50] * 5)
    np.testing.assert_array_equal(path[:, 1], [10, 20, 30, 40, 50])


def test_trajectory_bounces_off_right_edge():
    # x = 0.95 moving +x: 1.05 reflects to 0.95 (velocity flips), then 0.85, 0.75, ...
    path = trajectory(FakeRng([0.5, 0.95], 0.0), 5, 100, 0.1)
    np.testing.assert_array_equal(path[:, 1], [95, 95, 85, 75, 65])
    np.testing.assert_array_equal(path[:, 0], [50] * 5)


def test_trajectory_bounces_off_top_edge():
    # theta = 3π/2 (fraction 0.75): velocity (sin, cos) = (-1, 0), y = 0.02 -> -0.08 reflects to 0.08
    path = trajectory(FakeRng([0.02, 0.5], 0.75), 5, 100, 0.1)
    np.testing.assert_array_equal(path[:, 0], [2, 8, 18, 28, 38])
    np.testing.assert_array_equal(path[:, 1], [50] * 5)


def test_trajectory_bounces_in_a_corner():
    # theta = π/4 (fraction 1/8): both components +sqrt(2)/2·0.1 ≈ 0.0707; start (0.97, 0.97)
    v = 0.1 * math.sqrt(0.5)
    path = trajectory(FakeRng([0.97, 0.97], 0.125), 4, 1000, 0.1)
    p1 = 2.0 - (0.97 + v)
    expected = np.rint(np.array([0.97, p1, p1 - v, p1 - 2 * v]) * 1000)
    np.testing.assert_array_equal(path[:, 0], expected)
    np.testing.assert_array_equal(path[:, 1], expected)


# ---------------------------------------------------------------------------------------------
# MovingMNIST
# ---------------------------------------------------------------------------------------------
def test_moving_mnist_shape_dtype_len():
    ds = MovingMNIST(rand_digits(5, 7), num_sequences=3, seq_len=6)
    assert len(ds) == 3
    seq = ds.sequence(0)
    assert seq.shape == (6, 64, 64) and seq.dtype == np.uint8
    item = ds[2]
    assert isinstance(item, torch.Tensor)
    assert item.shape == (6, 1, 64, 64) and item.dtype == torch.uint8
    small = MovingMNIST(rand_digits(2, 8, 8, 8), num_sequences=1, seq_len=3, size=16)
    assert small.sequence(0).shape == (3, 16, 16)


def test_moving_mnist_rejects_bad_digits():
    with pytest.raises(InputError):
        MovingMNIST(rand_digits(2, 0).astype(np.float32))
    with pytest.raises(InputError):
        MovingMNIST(np.zeros((2, 28), np.uint8))
    with pytest.raises(InputError):
        MovingMNIST(rand_digits(2, 0), size=20)


def test_moving_mnist_determinism_and_epochs():
    digits = rand_digits(10, 9)
    a = MovingMNIST(digits, num_sequences=4, seq_len=5, seed=3)
    b = MovingMNIST(digits.copy(), num_sequences=4, seq_len=5, seed=3)
    for i in range(4):
        np.testing.assert_array_equal(a.sequence(i), b.sequence(i))
        np.testing.assert_array_equal(a.sequence(i), a.sequence(i))
    assert not np.array_equal(a.sequence(0), a.sequence(1))
    first = a.sequence(0)
    a.set_epoch(1)
    assert a.epoch == 1
    assert not np.array_equal(first, a.sequence(0))
    c = MovingMNIST(digits, num_sequences=4, seq_len=5, seed=3, epoch=1)
    np.testing.assert_array_equal(a.sequence(0), c.sequence(0))
    a.set_epoch(0)
    np.testing.assert_array_equal(first, a.sequence(0))
    d = MovingMNIST(digits, num_sequences=4, seq_len=5, seed=4)
    assert not np.array_equal(first, d.sequence(0))


def test_moving_mnist_index_error():
    ds = MovingMNIST(rand_digits(2, 0), num_sequences=3, seq_len=2)
    with pytest.raises(IndexError):
        ds.sequence(3)
    with pytest.raises(IndexError):
        ds[3]
    with pytest.raises(IndexError):
        ds.sequence(-1)


def test_moving_mnist_batch():
    ds = MovingMNIST(rand_digits(4, 10), num_sequences=5, seq_len=4)
    b = ds.batch(1, 4)
    assert b.shape == (3, 4, 1, 64, 64) and b.dtype == torch.uint8
    for k, i in enumerate(range(1, 4)):
        assert torch.equal(b[k, :, 0], torch.from_numpy(ds.sequence(i)))


def test_single_constant_digit_is_fully_inside_every_frame():
    value = 200
    ds = MovingMNIST(np.full((5, 28, 28), value, np.uint8), num_sequences=6, seq_len=30, num_digits=1)
    for i in range(len(ds)):
        seq = ds.sequence(i).astype(np.int64)
        assert set(np.unique(seq).tolist()) == {0, value}
        np.testing.assert_array_equal(seq.sum(axis=(1, 2)), np.full(30, 28 * 28 * value))
        for frame in seq:
            ys, xs = np.nonzero(frame)
            # one solid 28×28 block
            assert ys.max() - ys.min() == 27 and xs.max() - xs.min() == 27
            assert ys.min() >= 0 and ys.max() <= 63


def test_two_digits_combine_by_maximum():
    # identical solid digits: a sum would give 400 (wrapping or saturating) where they overlap;
    # the maximum keeps every pixel at 0 or 200 and the lit area is the union of two 28×28 blocks
    value = 200
    ds = MovingMNIST(np.full((3, 28, 28), value, np.uint8), num_sequences=20, seq_len=20, num_digits=2)
    saw_overlap = False
    for i in range(len(ds)):
        seq = ds.sequence(i)
        assert set(np.unique(seq).tolist()) <= {0, value}
        lit = (seq > 0).sum(axis=(1, 2))
        assert lit.min() >= 28 * 28 and lit.max() <= 2 * 28 * 28
        saw_overlap |= bool((lit < 2 * 28 * 28).any())
    assert saw_overlap  # the maximum rule was exercised somewhere


def test_two_digit_canvas_never_exceeds_brightest_digit():
    digits = np.zeros((4, 28, 28), np.uint8)
    for k in range(4):
        digits[k, 4:24, 4:24] = 60 + 40 * k  # 60, 100, 140, 180
    ds = MovingMNIST(digits, num_sequences=10, seq_len=10)
    allowed = {0, 60, 100, 140, 180}
    for i in range(len(ds)):
        seq = ds.sequence(i)
        assert seq.max() <= 180
        assert set(np.unique(seq).tolist()) <= allowed
        assert seq.max(axis=(1, 2)).min() > 0  # something is visible in every frame


def test_moving_mnist_test_set_uses_test_digits(tmp_path):
    # train digits are all 50, test digits all 220: the test set may only show 0 and 220
    write_split(tmp_path, TRAIN_IMG, TRAIN_LBL, np.full((4, 28, 28), 50, np.uint8), np.zeros(4, np.uint8))
    write_split(tmp_path, TEST_IMG, TEST_LBL, np.full((3, 28, 28), 220, np.uint8), np.zeros(3, np.uint8))
    ds = moving_mnist_test_set(tmp_path, num_sequences=3)
    assert len(ds) == 3 and ds.seed == TEST_SEED and ds.epoch == 0
    for i in range(3):
        assert set(np.unique(ds.sequence(i)).tolist()) == {0, 220}
    train = MovingMNIST.from_mnist(tmp_path, "train", num_sequences=1)
    assert set(np.unique(train.sequence(0)).tolist()) == {0, 50}


@needs_real_mnist
def test_moving_mnist_test_set_real_reproducible():
    a = moving_mnist_test_set(REAL_MNIST, num_sequences=5)
    b = moving_mnist_test_set(REAL_MNIST, num_sequences=5)
    test_digits = load_mnist(REAL_MNIST, "test")[0]
    np.testing.assert_array_equal(a.digits, test_digits)
    assert len(a) == 5
    for i in range(3):
        sa, sb = a.sequence(i), b.sequence(i)
        np.testing.assert_array_equal(sa, sb)
        assert sa.shape == (20, 64, 64) and sa.max() > 0
    other = moving_mnist_test_set(REAL_MNIST, num_sequences=5, seed=TEST_SEED + 1)
    assert not np.array_equal(other.sequence(0), a.sequence(0))
