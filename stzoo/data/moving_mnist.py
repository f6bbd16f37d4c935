"""Moving MNIST (Srivastava et al., 2015), generated on the fly.

Two 28×28 digits move on a 64×64 canvas with constant velocity, bounce off the edges and are
combined by a pixel-wise maximum; 20 frames per sequence (10 observed, 10 to predict).

Every sequence is a pure function of ``(seed, epoch, index)``, so a training run that is killed
and resumed sees exactly the sequences it would have seen, and the test set is reproducible without
storing it.

Test set: :func:`moving_mnist_test_set` draws 10,000 sequences from the MNIST **test** digits with
seed :data:`TEST_SEED`. It is *not* the canonical ``mnist_test_seq.npy`` of Srivastava et al. (whose
digits and trajectories were drawn once and never published as code); numbers measured on the two
are close in scale but not identical. Use :func:`load_canonical_test_seq` for that file.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from stzoo.data.mnist import load_mnist
from stzoo.errors import InputError

__all__ = ["MovingMNIST", "trajectory", "moving_mnist_test_set", "load_canonical_test_seq",
           "TEST_SEED", "CANONICAL_URL"]

TEST_SEED = 20261123
CANONICAL_URL = "http://www.cs.toronto.edu/~nitish/unsupervised_video/mnist_test_seq.npy"


def trajectory(rng: np.random.Generator, length: int, span: int, step: float = 0.1) -> np.ndarray:
    """Top-left corners (length×2, int: y, x) of a digit bouncing inside ``[0, span]``.

    The position lives in the unit square, moves ``step`` per frame in a uniformly random
    direction, and reflects (velocity component flips) when it would leave the square.
    """
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


class MovingMNIST(Dataset):
    """``num_sequences`` Moving MNIST sequences, each a uint8 tensor ``seq_len×1×size×size``.

    Args:
        digits: N×28×28 uint8 MNIST images to draw from.
        num_sequences: length of the dataset (one "epoch").
        seq_len, num_digits, size: sequence length, digits per sequence, canvas side.
        seed: base seed. Sequence ``i`` of epoch ``e`` is drawn from ``default_rng([seed, e, i])``.
        epoch: which epoch's sequences to return; change it with :meth:`set_epoch` for fresh
            sequences every epoch (training); keep it fixed for a fixed set (testing).
    """

    def __init__(self, digits: np.ndarray, num_sequences: int = 10000, seq_len: int = 20,
                 num_digits: int = 2, size: int = 64, seed: int = 0, epoch: int = 0):
        if digits.ndim != 3 or digits.dtype != np.uint8:
            raise InputError(f"digits must be N×h×w uint8, got {digits.shape} {digits.dtype}")
        if digits.shape[1] > size or digits.shape[2] > size:
            raise InputError(f"digits of {digits.shape[1:]} do not fit a {size}×{size} canvas")
        self.digits, self.num_sequences = digits, int(num_sequences)
        self.seq_len, self.num_digits, self.size = seq_len, num_digits, size
        self.seed, self.epoch = int(seed), int(epoch)

    @classmethod
    def from_mnist(cls, root: str | os.PathLike | None = None, split: str = "train", **kwargs) -> "MovingMNIST":
        """Build from the MNIST IDX files in ``root`` (or ``$STZOO_MNIST_DIR``)."""
        return cls(load_mnist(root, split)[0], **kwargs)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return self.num_sequences

    def sequence(self, index: int) -> np.ndarray:
        """Sequence ``index`` of the current epoch as a ``seq_len×size×size`` uint8 array."""
        if not 0 <= index < self.num_sequences:
            raise IndexError(f"index {index} out of range for {self.num_sequences} sequences")
        rng = np.random.default_rng([self.seed, self.epoch, index])
        dh, dw = self.digits.shape[1:]
        canvas = np.zeros((self.seq_len, self.size, self.size), dtype=np.uint8)
        for _ in range(self.num_digits):
            digit = self.digits[rng.integers(len(self.digits))]
            path = trajectory(rng, self.seq_len, self.size - max(dh, dw))
            for t, (y, x) in enumerate(path):
                np.maximum(canvas[t, y:y + dh, x:x + dw], digit, out=canvas[t, y:y + dh, x:x + dw])
        return canvas

    def __getitem__(self, index: int) -> torch.Tensor:
        return torch.from_numpy(self.sequence(index)).unsqueeze(1)

    def batch(self, start: int, stop: int) -> torch.Tensor:
        """Sequences ``start..stop-1`` stacked: B×T×1×H×W uint8."""
        return torch.stack([self[i] for i in range(start, stop)])


def moving_mnist_test_set(root: str | os.PathLike | None = None, num_sequences: int = 10000,
                          seed: int = TEST_SEED) -> MovingMNIST:
    """The fixed stzoo test set: ``num_sequences`` sequences of MNIST *test* digits, seed ``seed``."""
    return MovingMNIST.from_mnist(root, "test", num_sequences=num_sequences, seed=seed, epoch=0)


def load_canonical_test_seq(path: str | os.PathLike, download: bool = False) -> np.ndarray:
    """Load the canonical ``mnist_test_seq.npy`` (stored 20×10000×64×64) as 10000×20×64×64 uint8.

    With ``download=True`` and no file at ``path``, fetch it from :data:`CANONICAL_URL` first
    (needs the network; never used by the tests).
    """
    path = Path(path)
    if not path.exists():
        if not download:
            raise InputError(f"{path} does not exist; pass download=True to fetch it from {CANONICAL_URL}")
        import requests

        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".part")
        with requests.get(CANONICAL_URL, stream=True, timeout=60) as r:
            r.raise_for_status()
            with open(tmp, "wb") as f:
                for chunk in r.iter_content(1 << 20):
                    f.write(chunk)
        os.replace(tmp, path)
    arr = np.load(path)
    if arr.ndim != 4 or arr.shape[0] != 20 or arr.shape[2:] != (64, 64):
        raise InputError(f"{path}: expected 20×N×64×64, got {arr.shape}")
    return np.ascontiguousarray(arr.transpose(1, 0, 2, 3))
