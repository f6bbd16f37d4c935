"""The on-disk cache of the Moving MNIST test set and the `stzoo evaluate` command around it."""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import pickle
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

import stzoo.data.moving_mnist as mm
from stzoo.cli.main import build_parser, main
from stzoo.data.moving_mnist import TEST_SEED, MovingMNIST, cache_root, digits_fingerprint, moving_mnist_test_set
from stzoo.training.train import evaluate_copy_last

REAL_MNIST = Path(__file__).resolve().parents[3] / "shared" / "data" / "mnist"
needs_real_mnist = pytest.mark.skipif(
    not any((REAL_MNIST / f"t10k-images-idx3-ubyte{ext}").is_file() for ext in ("", ".gz")),
    reason=f"real MNIST IDX files not found in {REAL_MNIST}",
)

# sha256 of the bytes MovingMNIST.sequence() produced for the stzoo test set (real MNIST test digits,
# seed TEST_SEED) before the cache existed: the sequences the released metrics were measured on
PINNED_FIRST_64 = "351523aa5dac04aa23fc55a019c326705106e0ad23e18ce017aa632d3c17f6bd"
PINNED_SEQ_9999 = "2e6a835902e89075cbfb9edcda294b374887f974ce3fdf438485bd6c224bb70c"


# ---- an independent copy of the generator as it was when the metrics were released ----------
def reference_trajectory(rng, length, span, step=0.1):
    pos = rng.random(2)
    theta = rng.random() * 2 * np.pi
    vel = np.array([np.sin(theta), np.cos(theta)])
    out = np.empty((length, 2))
    for t in range(length):
        out[t] = pos
        pos = pos + vel * step
        for d in range(2):
            if pos[d] < 0.0:
                pos[d], vel[d] = -pos[d], -vel[d]
            elif pos[d] > 1.0:
                pos[d], vel[d] = 2.0 - pos[d], -vel[d]
    return np.rint(out * span).astype(np.int64)


def reference_sequence(digits, index, seq_len=20, num_digits=2, size=64, seed=0, epoch=0):
    rng = np.random.default_rng([seed, epoch, index])
    dh, dw = digits.shape[1:]
    canvas = np.zeros((seq_len, size, size), dtype=np.uint8)
    for _ in range(num_digits):
        digit = digits[rng.integers(len(digits))]
        for t, (y, x) in enumerate(reference_trajectory(rng, seq_len, size - max(dh, dw))):
            np.maximum(canvas[t, y : y + dh, x : x + dw], digit, out=canvas[t, y : y + dh, x : x + dw])
    return canvas


# ---- helpers ---------------------------------------------------------------------------------
def digits(n=7, seed=0):
    return np.random.default_rng(seed).integers(0, 256, size=(n, 28, 28), dtype=np.uint8)


def write_mnist(folder: Path, images: np.ndarray) -> Path:
    """The two MNIST test-split IDX files (gzip) for ``images``."""
    folder.mkdir(parents=True, exist_ok=True)
    labels = np.zeros(len(images), np.uint8)
    for name, arr in (("t10k-images-idx3-ubyte.gz", images), ("t10k-labels-idx1-ubyte.gz", labels)):
        header = bytes([0, 0, 8, arr.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in arr.shape)
        with gzip.open(folder / name, "wb") as f:
            f.write(header + arr.tobytes())
    return folder


def npy_files(folder: Path) -> list[Path]:
    return sorted(folder.rglob("*.npy")) if folder.exists() else []


@pytest.fixture
def cache(tmp_path, monkeypatch):
    """A fresh $STZOO_CACHE for the test; returns its moving-mnist folder."""
    monkeypatch.setenv("STZOO_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache" / "moving-mnist"


# ---- where the cache lives ------------------------------------------------------------------
def test_cache_root_follows_the_environment(tmp_path, monkeypatch):
    monkeypatch.delenv("STZOO_CACHE", raising=False)
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert cache_root() == tmp_path / "home" / ".cache" / "stzoo"
    monkeypatch.setenv("XDG_CACHE_HOME", "relative/path")  # not absolute: ignored, as the XDG spec says
    assert cache_root() == tmp_path / "home" / ".cache" / "stzoo"
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_root() == tmp_path / "xdg" / "stzoo"
    monkeypatch.setenv("STZOO_CACHE", str(tmp_path / "mine"))
    assert cache_root() == tmp_path / "mine"


def test_default_folder_is_under_cache_root(cache):
    ds = MovingMNIST(digits(), num_sequences=3, seq_len=4)
    path = ds.use_cache()
    assert path is not None and path.parent == cache and path.is_file()
    assert ds.cache_file == path


# ---- same bytes ------------------------------------------------------------------------------
def test_cached_sequences_are_byte_identical_to_the_generator(tmp_path):
    d = digits(9, seed=1)
    kw = dict(num_sequences=11, seq_len=7, num_digits=3, size=48, seed=5)
    cached = MovingMNIST(d, **kw)
    assert cached.use_cache(tmp_path) is not None
    plain = MovingMNIST(d, **kw)
    for i in range(11):
        want = reference_sequence(d, i, seq_len=7, num_digits=3, size=48, seed=5)
        np.testing.assert_array_equal(plain.sequence(i), want)
        got = cached.sequence(i)
        assert got.dtype == np.uint8 and got.shape == (7, 48, 48) and got.flags.writeable
        np.testing.assert_array_equal(got, want)
        assert torch.equal(cached[i], plain[i])
    for start, stop in ((0, 11), (3, 8), (10, 11)):
        a, b = cached.batch(start, stop), plain.batch(start, stop)
        assert a.shape == b.shape == (stop - start, 7, 1, 48, 48) and a.dtype == torch.uint8
        assert torch.equal(a, b)
    stored = np.load(cached.cache_file)
    assert stored.shape == (11, 7, 48, 48) and stored.dtype == np.uint8


@needs_real_mnist
def test_real_test_set_matches_the_released_sequences(tmp_path, cache):
    cached = moving_mnist_test_set(REAL_MNIST, 64, cache=tmp_path / "here")
    assert cached.cache_file is not None and cached.cache_file.parent == tmp_path / "here"
    assert hashlib.sha256(cached.batch(0, 64).numpy().tobytes()).hexdigest() == PINNED_FIRST_64
    plain = moving_mnist_test_set(REAL_MNIST, 10000, cache=False)
    assert plain.cache_file is None and npy_files(cache) == []  # cache=False writes nothing
    h = hashlib.sha256()
    for i in range(64):
        h.update(plain.sequence(i).tobytes())
    assert h.hexdigest() == PINNED_FIRST_64
    assert hashlib.sha256(plain.sequence(9999).tobytes()).hexdigest() == PINNED_SEQ_9999


# ---- reuse and keys --------------------------------------------------------------------------
def test_second_call_reuses_the_file_without_regenerating(tmp_path, monkeypatch):
    folder = write_mnist(tmp_path / "mnist", digits(5))
    first = moving_mnist_test_set(folder, 6, cache=tmp_path / "c")
    path = first.cache_file
    stat = path.stat()
    calls = []
    monkeypatch.setattr(MovingMNIST, "_write_cache", lambda self, p: calls.append(p))
    generated = []
    real_generate = MovingMNIST._generate
    monkeypatch.setattr(MovingMNIST, "_generate", lambda self, i: generated.append(i) or real_generate(self, i))
    second = moving_mnist_test_set(folder, 6, cache=tmp_path / "c")
    assert second.cache_file == path and calls == []
    assert len(generated) <= 3  # the spot check only
    assert torch.equal(second.batch(0, 6), first.batch(0, 6))
    generated.clear()
    second.batch(0, 6)
    second.sequence(2)
    assert generated == []  # batches come from the file
    assert path.stat().st_ino == stat.st_ino and path.stat().st_mtime_ns == stat.st_mtime_ns


def test_every_input_of_the_generator_is_in_the_key(tmp_path):
    d = digits(6)
    base = dict(num_sequences=4, seq_len=5, num_digits=2, size=40, seed=3, epoch=0)
    variants = [{}, {"seed": 4}, {"size": 41}, {"seq_len": 6}, {"num_digits": 1}, {"epoch": 1}, {"num_sequences": 3}]
    paths = []
    for change in variants:
        ds = MovingMNIST(d, **{**base, **change})
        paths.append(ds.use_cache(tmp_path))
    other_digits = d.copy()
    other_digits[2, 14, 14] ^= 1  # one pixel of one digit
    paths.append(MovingMNIST(other_digits, **base).use_cache(tmp_path))
    # num_sequences=3 may reuse the 4-sequence file (same key, a prefix); every other change needs its own
    assert paths[6] == paths[0]
    distinct = [p for k, p in enumerate(paths) if k != 6]
    assert len(set(distinct)) == len(distinct) == len(npy_files(tmp_path))
    again = MovingMNIST(d.copy(), **base).use_cache(tmp_path)
    assert again == paths[0]
    assert digits_fingerprint(d) == digits_fingerprint(d.copy()) != digits_fingerprint(other_digits)


def test_a_larger_file_serves_a_prefix_but_a_smaller_one_does_not(tmp_path):
    d = digits(4)
    big = MovingMNIST(d, num_sequences=9, seq_len=3, seed=2)
    big_path = big.use_cache(tmp_path)
    small = MovingMNIST(d, num_sequences=5, seq_len=3, seed=2)
    assert small.use_cache(tmp_path) == big_path and len(npy_files(tmp_path)) == 1
    assert len(small) == 5 and small.batch(0, 5).shape[0] == 5
    for i in range(5):
        np.testing.assert_array_equal(small.sequence(i), reference_sequence(d, i, seq_len=3, seed=2))
    with pytest.raises(IndexError):
        small.sequence(5)  # the file holds more, the data set does not
    bigger = MovingMNIST(d, num_sequences=12, seq_len=3, seed=2)
    path = bigger.use_cache(tmp_path)
    assert path != big_path and path.name.endswith("-n12.npy")
    np.testing.assert_array_equal(bigger.sequence(11), reference_sequence(d, 11, seq_len=3, seed=2))


def test_set_epoch_leaves_the_cached_epoch():
    d = digits(4)
    ds = MovingMNIST(d, num_sequences=3, seq_len=4, seed=1)
    ds._frames = np.zeros((3, 4, 64, 64), np.uint8)  # as if cached (wrongly: all black)
    ds.set_epoch(0)
    assert ds.sequence(0).max() == 0  # same epoch: still the cache
    ds.set_epoch(1)
    assert ds.cache_file is None
    np.testing.assert_array_equal(ds.sequence(0), reference_sequence(d, 0, seq_len=4, seed=1, epoch=1))


def test_pickle_carries_the_file_name_not_the_data(tmp_path):
    ds = MovingMNIST(digits(3), num_sequences=20, seq_len=10, seed=4)
    ds.use_cache(tmp_path)
    blob = pickle.dumps(ds)
    assert len(blob) < 20 * 10 * 64 * 64 // 4  # the digits (3×28×28) but not the 819 KB of frames
    back = pickle.loads(blob)
    assert back.cache_file == ds.cache_file and back._frames is not None
    assert torch.equal(back.batch(0, 20), ds.batch(0, 20))


# ---- atomic writes and damaged files -------------------------------------------------------------
def test_an_interrupted_write_leaves_nothing_behind(tmp_path, monkeypatch):
    monkeypatch.setattr(mm, "_CHUNK", 2)
    written = []

    def write_then_die(f, chunk):
        if written:
            raise KeyboardInterrupt
        written.append(len(chunk))
        f.write(chunk.tobytes())

    monkeypatch.setattr(MovingMNIST, "_write_chunk", staticmethod(write_then_die))
    ds = MovingMNIST(digits(), num_sequences=5, seq_len=3)
    with pytest.raises(KeyboardInterrupt):
        ds.use_cache(tmp_path)
    assert written == [2] and list(tmp_path.iterdir()) == []  # no final file, no temporary file


def test_disk_full_during_the_write_falls_back_with_a_warning(tmp_path, monkeypatch):
    monkeypatch.setattr(mm, "_CHUNK", 2)
    calls = []

    def full(f, chunk):
        calls.append(1)
        if len(calls) == 2:
            raise OSError(28, "No space left on device")
        f.write(chunk.tobytes())

    monkeypatch.setattr(MovingMNIST, "_write_chunk", staticmethod(full))
    d = digits()
    ds = MovingMNIST(d, num_sequences=5, seq_len=3)
    with pytest.warns(RuntimeWarning, match="No space left"):
        assert ds.use_cache(tmp_path) is None
    assert list(tmp_path.iterdir()) == [] and ds.cache_file is None
    for i in range(5):
        np.testing.assert_array_equal(ds.sequence(i), reference_sequence(d, i, seq_len=3))


def test_too_little_free_space_is_not_even_tried(tmp_path, monkeypatch):
    monkeypatch.setattr(mm.shutil, "disk_usage", lambda p: type("U", (), {"free": 1000})())
    folder = write_mnist(tmp_path / "mnist", digits(5))
    with pytest.warns(RuntimeWarning, match="MiB needed"):
        ds = moving_mnist_test_set(folder, 4, cache=tmp_path / "c")
    assert ds.cache_file is None and npy_files(tmp_path / "c") == []
    assert ds.batch(0, 4).shape == (4, 20, 1, 64, 64)


def test_an_unwritable_cache_folder_falls_back_with_a_warning(tmp_path, monkeypatch):
    # a regular file where the folder should be: mkdir fails for every user, root included
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("x")
    monkeypatch.setenv("STZOO_CACHE", str(blocker))
    folder = write_mnist(tmp_path / "mnist", digits(5))
    with pytest.warns(RuntimeWarning, match="could not write the Moving MNIST cache"):
        ds = moving_mnist_test_set(folder, 4)
    assert ds.cache_file is None
    plain = moving_mnist_test_set(folder, 4, cache=False)
    assert torch.equal(ds.batch(0, 4), plain.batch(0, 4))
    assert evaluate_copy_last(ds, progress=False) == evaluate_copy_last(plain, progress=False)


def test_a_read_only_folder_with_the_file_in_it_is_still_read(tmp_path, monkeypatch):
    d = digits()
    MovingMNIST(d, num_sequences=4, seq_len=3).use_cache(tmp_path)

    def no_writes(self, path):
        raise PermissionError(13, "Read-only file system")

    monkeypatch.setattr(MovingMNIST, "_write_cache", no_writes)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ds = MovingMNIST(d, num_sequences=4, seq_len=3)
        assert ds.use_cache(tmp_path) is not None
    other = MovingMNIST(d, num_sequences=4, seq_len=3, seed=9)
    with pytest.warns(RuntimeWarning, match="Read-only"):
        assert other.use_cache(tmp_path) is None


def test_half_written_and_stale_temporary_files_are_never_used(tmp_path):
    d = digits()
    ds = MovingMNIST(d, num_sequences=4, seq_len=3)
    name = f"{ds.cache_stem()}-n4.npy"
    fresh, stale = tmp_path / f"{name}.writer1.part", tmp_path / f"{name}.writer2.part"
    for part in (fresh, stale):
        part.write_bytes(b"\x93NUMPY half a file")
    old = os.stat(stale).st_mtime - 2 * mm._STALE_PART_S
    os.utime(stale, (old, old))
    path = ds.use_cache(tmp_path)
    assert path == tmp_path / name
    np.testing.assert_array_equal(np.load(path)[3], reference_sequence(d, 3, seq_len=3))
    assert fresh.exists() and not stale.exists()  # another writer may still own the fresh one


@pytest.mark.parametrize("damage", ["truncated", "wrong-bytes", "wrong-shape", "not-npy"])
def test_a_damaged_cache_file_is_replaced(tmp_path, damage):
    d = digits()
    ds = MovingMNIST(d, num_sequences=6, seq_len=3)
    path = ds.use_cache(tmp_path)
    data = path.read_bytes()
    if damage == "truncated":
        path.write_bytes(data[: len(data) // 2])
    elif damage == "wrong-bytes":
        arr = np.load(path)
        arr[-1] = 255 - arr[-1]
        np.save(path, arr)
    elif damage == "wrong-shape":
        np.save(path, np.zeros((6, 3, 32, 32), np.uint8))
    else:
        path.write_text("hello")
    again = MovingMNIST(d, num_sequences=6, seq_len=3)
    with pytest.warns(RuntimeWarning, match="ignoring the Moving MNIST cache file"):
        assert again.use_cache(tmp_path) == path
    for i in range(6):
        np.testing.assert_array_equal(again.sequence(i), reference_sequence(d, i, seq_len=3))
    assert path.read_bytes() == data


# ---- stzoo evaluate --------------------------------------------------------------------------
def run_cli(argv, capsys):
    assert main(argv) == 0
    return json.loads(capsys.readouterr().out)


def test_cli_evaluate_uses_the_cache_and_gives_the_same_numbers(tmp_path, cache, capsys):
    folder = write_mnist(tmp_path / "mnist", digits(6, seed=3))
    args = ["evaluate", "copy-last-frame", "--sequences", "5", "--mnist-dir", str(folder), "--batch-size", "2"]
    off = run_cli(args + ["--no-cache"], capsys)
    assert npy_files(cache) == []
    cold = run_cli(args, capsys)
    files = npy_files(cache)
    assert len(files) == 1 and files[0].name.startswith(f"mmnist-v1-seed{TEST_SEED}-") and "-n5" in files[0].name
    warm = run_cli(args, capsys)
    assert off == cold == warm and off["sequences"] == 5
    other_batch = run_cli(args[:-2] + ["--batch-size", "5"], capsys)
    for k in ("mse", "mae", "ssim", "psnr"):
        assert other_batch[k] == pytest.approx(off[k], rel=1e-9)
    with pytest.raises(SystemExit) as refused:  # argparse refuses it before anything runs
        main(args[:-2] + ["--batch-size", "0"])
    assert refused.value.code == 2


def test_cli_evaluate_help_states_every_default(capsys):
    sub = next(a for a in build_parser()._actions if a.dest == "command").choices["evaluate"]
    text = " ".join(sub.format_help().split())
    options = text[text.index("options:") :]
    listed = [a for a in sub._actions if a.option_strings and a.dest != "help"]
    starts = [options.index(a.option_strings[-1]) for a in listed] + [len(options)]
    assert starts[:-1] == sorted(starts[:-1])
    for action, start, end in zip(listed, starts, starts[1:]):
        assert action.help and "default" in options[start:end], (action.dest, options[start:end])
    assert "(default: the whole test set: 10000 for moving_mnist" in options and "(default: 64)" in options
