"""Tiny fake MNIST folders for end-to-end runs: IDX files (gzipped) of bright 16×16 squares of noise on
28×28, written where the ``mnist_dir`` option of the ``moving_mnist`` dataset looks for them."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np


def write_idx_gz(path: Path, arr: np.ndarray) -> None:
    """Write ``arr`` (uint8) as a gzipped IDX file, the format of MNIST's ``*-ubyte.gz`` files."""
    header = bytes([0, 0, 0x08, arr.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in arr.shape)
    with gzip.open(path, "wb") as f:
        f.write(header + np.ascontiguousarray(arr, np.uint8).tobytes())


def fake_digits(rng: np.random.Generator, n: int) -> np.ndarray:
    """``n`` fake 28×28 uint8 "digits": a 16×16 square of random grey levels in 100..255 on black."""
    d = np.zeros((n, 28, 28), np.uint8)
    d[:, 6:22, 6:22] = rng.integers(100, 256, size=(n, 16, 16))
    return d


def write_fake_mnist(root: Path, *, seed: int = 0, train: int = 64, test: int = 32) -> Path:
    """Fill ``root`` with ``train`` training and ``test`` test images and labels (no test files when
    ``test`` is 0), drawn in that order from ``default_rng(seed)``; returns ``root``."""
    rng = np.random.default_rng(seed)
    for split, n in (("train", train), ("t10k", test)):
        if n:
            write_idx_gz(root / f"{split}-images-idx3-ubyte.gz", fake_digits(rng, n))
            write_idx_gz(root / f"{split}-labels-idx1-ubyte.gz", rng.integers(0, 10, n).astype(np.uint8))
    return root
