"""Shared pieces of the datasets read from the benchmark files users already have, in OpenSTL's layout.

OpenSTL's download scripts (``tools/prepare_data/download_*.sh``) put each benchmark in a folder of its own
under one data root (``data/moving_mnist/mnist_test_seq.npy``, ``data/taxibj/dataset.npz``, ...). Each
dataset here takes that root, or the dataset's own folder, as ``--data-dir`` (:data:`DATA_DIR_OPTION`) and
finds its files in either (:func:`find_path`).

:class:`ClipSet` is the one dataset class they share: a list of sequence starts into a frame source (an
array, or a function that reads frames from files), served in file order for a test set and in a seeded
order per epoch for training, with the interface of every stzoo dataset (``len``, ``sequence(i)``,
``ds[i]``, ``batch(start, stop)``, ``set_epoch(e)``, ``seed``), plus ``mean`` / ``std`` (how OpenSTL maps
the values back for scoring) and, for maps, ``latitudes``.

:class:`OpenSTLMovingDigits` draws Moving MNIST sequences with OpenSTL's generator (its trajectories clamp
at the border and flip the direction; positions are truncated to integers; digits on a CIFAR-10 background
are binarised), seeded per ``(seed, epoch, index)``: the training data of ``mmnist_canonical``,
``mfmnist`` and ``mmnist_cifar``. Those three differ only in their files and their words:
:class:`MovingDigitsFiles` holds their readers and builds each one's :class:`~stzoo.data.registry.DatasetSpec`.
"""

from __future__ import annotations

import importlib
import os
import pickle
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from stzoo.data.mnist import read_idx
from stzoo.data.registry import DATA_DIR_OPTION, DatasetSpec
from stzoo.errors import InputError
from stzoo.metrics import OpenSTLConvention

__all__ = [
    "DATA_DIR_OPTION",
    "DATA_ENV",
    "ClipSet",
    "OpenSTLMovingDigits",
    "MovingDigitsFiles",
    "find_path",
    "data_root",
    "require",
    "load_idx_images",
    "load_cifar10",
    "resize_frames",
    "scan_starts",
    "sequences_array",
    "split_readers",
    "time_major_test_set",
]

#: environment variable read when ``--data-dir`` is not given
DATA_ENV = "STZOO_DATA_DIR"


def data_root(data_dir: str | os.PathLike | None, dataset: str) -> Path:
    """The folder given (``--data-dir``), else ``$STZOO_DATA_DIR``; one clear error when neither is set."""
    raw = data_dir if data_dir is not None else os.environ.get(DATA_ENV)
    if not raw:
        raise InputError(f"{dataset} is read from your files: pass --data-dir DIR (or set ${DATA_ENV})")
    root = Path(raw).expanduser()
    if not root.is_dir():
        raise InputError(f"{dataset}: --data-dir {root} is not a folder")
    return root


def find_path(root: Path, candidates: Sequence[str], dataset: str, what: str) -> Path:
    """The first of ``candidates`` (paths relative to the OpenSTL data root, e.g. ``taxibj/dataset.npz``)
    that exists under ``root``, trying each also without its leading folder (``root`` may be the dataset's
    own folder). One error naming every place looked at when none exists."""
    tried = []
    for rel in candidates:
        parts = Path(rel).parts
        for option in dict.fromkeys([Path(*parts), Path(*parts[1:]) if len(parts) > 1 else Path(*parts)]):
            p = root / option
            tried.append(str(p))
            if p.exists():
                return p
    raise InputError(f"{dataset}: no {what} found; looked for {', '.join(tried)} (OpenSTL's layout)")


def require(module: str, extra: str, dataset: str) -> Any:
    """Import the optional dependency ``module``, or raise one error naming the extra that installs it."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise InputError(
            f"reading {dataset} needs the Python package {module!r}, which is not installed: run "
            f'`pip install -e ".[{extra}]"` from a stzoo checkout (or `pip install {module}`)'
        ) from exc


def split_readers(make: Callable[..., Any]) -> dict[str, Callable[..., Any]]:
    """The ``make_train`` / ``make_test`` / ``cached_test`` of a :class:`~stzoo.data.registry.DatasetSpec`
    whose splits ``make(split, data_dir, num_sequences=None, ...)`` reads from the user's files (``split``
    ``"train"`` or ``"test"``); the "cached" test set is the test split read in place (nothing is cached)."""

    def cached(sequences: int, *, cache: Any = True, progress: bool = False, data_dir: Any = None) -> Any:
        return make("test", data_dir, sequences)

    return dict(
        make_train=lambda data_dir=None, **kw: make("train", data_dir, **kw),
        make_test=lambda data_dir=None, **kw: make("test", data_dir, **kw),
        cached_test=cached,
    )


def load_idx_images(path: Path) -> np.ndarray:
    """N×28×28 uint8 images from an IDX file (``train-images-idx3-ubyte``, ``.gz`` or not)."""
    arr = read_idx(path)
    if arr.ndim != 3:
        raise InputError(f"{path}: expected an N×H×W image file, got shape {arr.shape}")
    return arr


def load_cifar10(folder: Path) -> np.ndarray:
    """Every CIFAR-10 image (training batches, then the test batch) as N×32×32×3 uint8, read from the
    Python-pickle files of ``cifar-10-batches-py`` (torchvision's layout; OpenSTL concatenates train and
    test the same way)."""
    names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    missing = [n for n in names if not (folder / n).is_file()]
    if missing:
        raise InputError(f"{folder}: CIFAR-10 files missing: {', '.join(missing)} (cifar-10-batches-py)")
    parts = []
    for n in names:
        with open(folder / n, "rb") as f:
            batch = pickle.load(f, encoding="latin1")  # noqa: S301 (the user's own CIFAR-10 files)
        parts.append(np.asarray(batch["data"], dtype=np.uint8).reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1))
    return np.ascontiguousarray(np.concatenate(parts))


def resize_frames(frames: np.ndarray, height: int, width: int, mode: str = "bilinear") -> np.ndarray:
    """N×C×H×W float frames resized to ``height``×``width`` (torch's ``interpolate``; ``bilinear`` without
    antialiasing matches OpenCV's ``INTER_LINEAR`` up to rounding, ``bicubic`` approximates ``INTER_CUBIC``)."""
    if frames.shape[-2:] == (height, width):
        return frames
    t = torch.from_numpy(np.ascontiguousarray(frames, dtype=np.float32))
    out = torch.nn.functional.interpolate(t, size=(height, width), mode=mode, align_corners=False)
    return out.numpy()


def scan_starts(groups: Sequence[Any], seq_len: int, stride: Callable[[int], int] | int | None = None) -> list[int]:
    """Start indices of ``seq_len``-frame windows that stay inside one group, scanned from the end as
    OpenSTL's KTH and KittiCaltech loaders do: a window ending at ``i`` is taken when frame ``i - seq_len + 1``
    is in the same group, and the scan then jumps ``stride(i)`` frames back (default: a whole window, so
    windows do not overlap); otherwise it moves back one frame. Returned in the order found (last first)."""
    starts: list[int] = []
    i = len(groups) - 1
    while i >= seq_len - 1:
        if groups[i] == groups[i - seq_len + 1]:
            starts.append(i - seq_len + 1)
            jump = seq_len - 1 if stride is None else (stride(i) if callable(stride) else stride)
            i -= jump
        i -= 1
    return starts


class ClipSet:
    """Sequences of ``seq_len`` frames starting at ``starts`` in a frame source.

    Args:
        frames: an N×C×H×W array (memory-mapped is fine) or a function ``read(start, count)`` returning
            ``count`` frames from frame ``start`` as a C×H×W-per-frame array.
        starts: the first frame of each sequence (in the order of the files for a test set).
        seq_len: frames per sequence.
        dtype: ``"uint8"`` (0..255, divided by 255 before a model sees it) or ``"float32"``.
        num_sequences: at most this many sequences (the first ones for a test set; per epoch for training).
        shuffle: visit the sequences in a seeded order per epoch (training); a test set keeps file order.
        seed, epoch: the order of epoch ``e`` is ``default_rng([seed, e])``'s permutation.
        transform: applied to each T×C×H×W sequence (e.g. a scaling) before it is returned.
        mean, std: how OpenSTL maps the values back before scoring (``x * std + mean``).
        latitudes: the latitude (degrees) of each row, for maps.
    """

    def __init__(
        self,
        frames: np.ndarray | Callable[[int, int], np.ndarray],
        starts: Sequence[int],
        seq_len: int,
        dtype: str,
        *,
        num_sequences: int | None = None,
        shuffle: bool = False,
        seed: int = 0,
        epoch: int = 0,
        transform: Callable[[np.ndarray], np.ndarray] | None = None,
        mean: Any = 0.0,
        std: Any = 1.0,
        latitudes: Any = None,
    ) -> None:
        if not starts:
            raise InputError(f"no sequence of {seq_len} frames found in the files")
        self.frames, self.starts = frames, np.asarray(starts, dtype=np.int64)
        self.seq_len, self.dtype = int(seq_len), dtype
        n = len(self.starts)
        self.num_sequences = n if not num_sequences else min(int(num_sequences), n)
        self.shuffle, self.seed, self.epoch = shuffle, int(seed), int(epoch)
        self.transform = transform
        self.mean, self.std, self.latitudes = mean, std, latitudes
        self._order: np.ndarray | None = None

    def set_epoch(self, epoch: int) -> None:
        """Visit the sequences in epoch ``epoch``'s order (training sets only; a test set keeps its order)."""
        if int(epoch) != self.epoch:
            self._order = None
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return self.num_sequences

    def _start(self, index: int) -> int:
        if not 0 <= index < self.num_sequences:
            raise IndexError(f"index {index} out of range for {self.num_sequences} sequences")
        if not self.shuffle:
            return int(self.starts[index])
        if self._order is None:
            self._order = np.random.default_rng([self.seed, self.epoch]).permutation(len(self.starts))
        return int(self.starts[self._order[index]])

    def sequence(self, index: int) -> np.ndarray:
        """Sequence ``index`` as a T×C×H×W array (uint8 or float32)."""
        s = self._start(index)
        seq = self.frames(s, self.seq_len) if callable(self.frames) else self.frames[s : s + self.seq_len]
        seq = np.asarray(seq)
        if self.transform is not None:
            seq = self.transform(seq)
        out = np.ascontiguousarray(seq, dtype=np.uint8 if self.dtype == "uint8" else np.float32)
        return out if out.flags.writeable else out.copy()  # a memory-mapped file is read-only; tensors want writable

    def __getitem__(self, index: int) -> torch.Tensor:
        return torch.from_numpy(self.sequence(index))

    def batch(self, start: int, stop: int) -> torch.Tensor:
        """Sequences ``start..stop-1`` stacked: B×T×C×H×W."""
        return torch.stack([self[i] for i in range(start, stop)])


def _trajectory(rng: np.random.Generator, length: int, span: int, step: float = 0.1) -> tuple[np.ndarray, np.ndarray]:
    """OpenSTL's Moving MNIST trajectory: a start in the unit square and a direction; each frame moves
    ``step`` along it first, and a coordinate that leaves [0, 1] is clamped to the border and its
    direction flipped; positions scaled by ``span`` and truncated to integers."""
    y, x = rng.random(), rng.random()
    theta = rng.random() * 2 * np.pi
    vy, vx = np.sin(theta), np.cos(theta)
    by = bx = 1.0
    ys, xs = np.zeros(length), np.zeros(length)
    for i in range(length):
        y += by * vy * step
        x += bx * vx * step
        if x <= 0:
            x, bx = 0.0, -bx
        if x >= 1.0:
            x, bx = 1.0, -bx
        if y <= 0:
            y, by = 0.0, -by
        if y >= 1.0:
            y, by = 1.0, -by
        ys[i], xs[i] = y, x
    return (span * ys).astype(np.int32), (span * xs).astype(np.int32)


class OpenSTLMovingDigits:
    """Moving MNIST / FashionMNIST / MNIST-on-CIFAR training sequences drawn the way OpenSTL draws them.

    ``digits``: N×28×28 uint8; ``backgrounds``: None (black canvas, 1 channel) or N'×32×32×3 uint8 CIFAR-10
    images, one resized to the canvas (bicubic) per sequence, the digits binarised to {0, 255} and drawn on
    all three channels. Sequence ``i`` of epoch ``e`` is a pure function of ``(seed, e, i)``.
    """

    def __init__(
        self,
        digits: np.ndarray,
        backgrounds: np.ndarray | None = None,
        num_sequences: int = 10000,
        seq_len: int = 20,
        num_digits: int = 2,
        size: int = 64,
        seed: int = 0,
        epoch: int = 0,
    ) -> None:
        if digits.ndim != 3 or digits.dtype != np.uint8:
            raise InputError(f"digits must be N×h×w uint8, got {digits.shape} {digits.dtype}")
        self.digits, self.backgrounds = digits, backgrounds
        self.num_sequences, self.seq_len, self.num_digits, self.size = int(num_sequences), seq_len, num_digits, size
        self.seed, self.epoch = int(seed), int(epoch)
        self.channels = 1 if backgrounds is None else 3
        self.mean, self.std = 0.0, 1.0

    def set_epoch(self, epoch: int) -> None:
        """Draw epoch ``epoch``'s sequences from now on."""
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return self.num_sequences

    def sequence(self, index: int) -> np.ndarray:
        """Sequence ``index`` of the current epoch: T×C×size×size uint8."""
        if not 0 <= index < self.num_sequences:
            raise IndexError(f"index {index} out of range for {self.num_sequences} sequences")
        rng = np.random.default_rng([self.seed, self.epoch, index])
        t, s, d = self.seq_len, self.size, self.digits.shape[1]
        if self.backgrounds is None:
            canvas = np.zeros((t, 1, s, s), dtype=np.uint8)
        else:
            back = self.backgrounds[rng.integers(len(self.backgrounds))].transpose(2, 0, 1)[None].astype(np.float32)
            back = np.clip(np.rint(resize_frames(back, s, s, "bicubic")), 0, 255).astype(np.uint8)
            canvas = np.repeat(back, t, axis=0)
        for _ in range(self.num_digits):
            ys, xs = _trajectory(rng, t, s - d)
            digit = self.digits[rng.integers(len(self.digits))].copy()
            if self.backgrounds is not None:
                digit[digit > 1] = 255
            for i in range(t):
                region = canvas[i, :, ys[i] : ys[i] + d, xs[i] : xs[i] + d]
                np.maximum(region, digit[None], out=region)
        return canvas

    def __getitem__(self, index: int) -> torch.Tensor:
        return torch.from_numpy(self.sequence(index))

    def batch(self, start: int, stop: int) -> torch.Tensor:
        """Sequences ``start..stop-1`` stacked: B×T×C×H×W uint8."""
        return torch.stack([self[i] for i in range(start, stop)])


def time_major_test_set(path: Path, dataset: str, num_sequences: int | None = None, seq_len: int = 20) -> ClipSet:
    """The fixed test set of a Moving MNIST variant: a ``.npy`` stored time-major, T×N×H×W (grey) or
    T×N×H×W×3 (colour), memory-mapped. uint8 files are served as they are; float files (OpenSTL's
    generator writes float32 0..255 for the grey variants) are rounded to uint8 after a range check."""
    try:
        arr = np.load(path, mmap_mode="r", allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise InputError(f"{dataset}: cannot read {path}: {exc}") from exc
    if arr.ndim == 5 and arr.shape[2] == 1:  # T×N×1×H×W×C as some generators keep it
        arr = arr[:, :, 0]
    if arr.ndim not in (4, 5) or (arr.ndim == 5 and arr.shape[-1] != 3):
        raise InputError(f"{dataset}: {path} holds {arr.shape}; expected T×N×H×W or T×N×H×W×3 (time-major)")
    if arr.shape[0] < seq_len:
        raise InputError(f"{dataset}: {path} has {arr.shape[0]} frames per sequence, {seq_len} needed")
    if arr.dtype != np.uint8:
        sample = np.asarray(arr[:, : min(8, arr.shape[1])])
        if sample.min() < 0 or sample.max() > 255.0 or (sample.max() <= 1.0 and sample.max() > 0):
            raise InputError(
                f"{dataset}: {path} holds {arr.dtype} values in [{sample.min():g}, {sample.max():g}]; "
                "expected 0..255 grey levels (OpenSTL's files)"
            )

    def read(i: int, count: int) -> np.ndarray:
        seq = np.asarray(arr[:count, i])
        seq = seq[:, None] if seq.ndim == 3 else seq.transpose(0, 3, 1, 2)
        return seq if seq.dtype == np.uint8 else np.clip(np.rint(seq), 0, 255).astype(np.uint8)

    return ClipSet(read, range(arr.shape[1]), seq_len, "uint8", num_sequences=num_sequences)


@dataclass(frozen=True)
class MovingDigitsFiles:
    """The files of a Moving MNIST variant in OpenSTL's layout, and the dataset's readers of them.

    Args:
        dataset: the dataset's name (in error messages).
        test_file: the fixed test set, relative to the OpenSTL data root (``moving_mnist/mnist_test_seq.npy``).
        digits: the IDX file(s) of the training digits, first found wins (``.gz`` or not).
        digits_what: how an error names them (``"MNIST training digits"``).
        backgrounds: CIFAR-10 folder(s) (``cifar-10-batches-py``) for a coloured variant; None: black canvas.
    """

    dataset: str
    test_file: str
    digits: tuple[str, ...]
    digits_what: str
    backgrounds: tuple[str, ...] | None = None

    def train(self, data_dir: str | os.PathLike | None = None, **kw: Any) -> OpenSTLMovingDigits:
        """Training sequences drawn with OpenSTL's generator from the digits (and backgrounds) under ``data_dir``."""
        root = data_root(data_dir, self.dataset)
        digits = load_idx_images(find_path(root, self.digits, self.dataset, self.digits_what))
        if self.backgrounds is None:
            return OpenSTLMovingDigits(digits, **kw)
        backgrounds = load_cifar10(find_path(root, self.backgrounds, self.dataset, "CIFAR-10 folder"))
        return OpenSTLMovingDigits(digits, backgrounds, **kw)

    def test(
        self,
        data_dir: str | os.PathLike | None = None,
        num_sequences: int | None = None,
        seq_len: int = 20,
        **_: Any,
    ) -> ClipSet:
        """The fixed test set: ``test_file`` under ``data_dir``, memory-mapped (other keywords are ignored)."""
        root = data_root(data_dir, self.dataset)
        path = find_path(root, [self.test_file], self.dataset, "test file")
        return time_major_test_set(path, self.dataset, num_sequences, seq_len)

    def cached(self, sequences: int, *, cache: Any = True, progress: bool = False, data_dir: Any = None) -> ClipSet:
        """The first ``sequences`` test sequences; the file is read in place, so there is no cache to use."""
        return self.test(data_dir, sequences)

    def spec(self, *, label: str, description: str, test_description: str, citation: str, tag: str) -> DatasetSpec:
        """The dataset's :class:`~stzoo.data.registry.DatasetSpec`: 64×64 uint8 frames (1 channel, 3 on
        backgrounds), 10,000 test sequences, OpenSTL's metrics, ``--data-dir``; the rest in its words."""
        colour = self.backgrounds is not None
        return DatasetSpec(
            name=self.dataset,
            label=label,
            description=description,
            channels=3 if colour else 1,
            height=64,
            width=64,
            dtype="uint8",
            value_range=(0.0, 1.0),
            normalisation=f"8-bit {'RGB' if colour else 'grey'} levels divided by 255 (OpenSTL: the same)",
            test_seed=0,
            test_size=10000,
            make_train=self.train,
            make_test=self.test,
            cached_test=self.cached,
            cache_naming=f"none: {Path(self.test_file).name} is memory-mapped in place",
            test_description=test_description,
            openstl_metrics=OpenSTLConvention(),
            citation=citation,
            tag=tag,
            options=(DATA_DIR_OPTION,),
        )


def sequences_array(dataset: Any, count: int | None = None) -> np.ndarray:
    """The first ``count`` sequences of a dataset (all when None) stacked as N×T×C×H×W float32, uint8
    divided by 255: what ``stzoo finetune --dataset`` hands to fine-tuning."""
    n = len(dataset) if not count else min(int(count), len(dataset))
    if n == 0:
        raise InputError("the dataset holds no sequences")
    first = np.asarray(dataset.sequence(0))
    out = np.empty((n, *first.shape), dtype=np.float32)
    for i in range(n):
        seq = first if i == 0 else np.asarray(dataset.sequence(i))
        out[i] = seq / np.float32(255.0) if seq.dtype == np.uint8 else seq
    return out
