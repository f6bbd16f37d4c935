"""One entry point to every stzoo dataset, by name.

::

    list_datasets()                                   # ['moving_mnist', 'grayscott', 'kolmogorov']
    train = get_dataset("grayscott", "train", num_sequences=10000, seed=0)
    test = get_dataset("kolmogorov", "test")          # the fixed test set (its own seed)
    mm = get_dataset("moving_mnist", "test", mnist_dir="~/data/mnist")

Every dataset has the same interface: ``len``, ``sequence(i)`` (T×C×H×W numpy), ``ds[i]`` (tensor),
``batch(start, stop)`` (B×T×C×H×W tensor: uint8 for Moving MNIST, float32 in [0, 1] for the
generated fields), ``set_epoch(e)``, and sequence ``i`` of epoch ``e`` is a pure function of
``(seed, e, i)``. :func:`stzoo.training.train.evaluate_copy_last` scores the copy-last-frame forecast on any of them.
"""

from __future__ import annotations

import os
from typing import Any, Callable

import numpy as np

from stzoo.errors import ConfigError, InputError

__all__ = ["list_datasets", "get_dataset", "dataset_channels", "test_set_size", "preview_frames", "save_preview",
           "cached_test_set", "channel_ranges", "DATASETS"]


def _moving_mnist(split: str, kw: dict[str, Any]):
    from stzoo.data.moving_mnist import MovingMNIST, moving_mnist_test_set

    root = kw.pop("mnist_dir", None)
    if split == "train":
        return MovingMNIST.from_mnist(root, "train", **kw)
    return moving_mnist_test_set(root, **kw)


def _grayscott(split: str, kw: dict[str, Any]):
    from stzoo.data.grayscott import GrayScott, grayscott_test_set

    return GrayScott(**kw) if split == "train" else grayscott_test_set(**kw)


def _kolmogorov(split: str, kw: dict[str, Any]):
    from stzoo.data.kolmogorov import Kolmogorov, kolmogorov_test_set

    return Kolmogorov(**kw) if split == "train" else kolmogorov_test_set(**kw)


#: name → (builder, channels, sequences in the fixed test set, one-line description)
DATASETS: dict[str, tuple[Callable[[str, dict[str, Any]], Any], int, int, str]] = {
    "moving_mnist": (_moving_mnist, 1, 10000, "two MNIST digits bouncing on a 64×64 canvas (needs the MNIST files)"),
    "grayscott": (_grayscott, 2, 1000, "Gray-Scott reaction-diffusion, U and V concentrations, six regimes"),
    "kolmogorov": (_kolmogorov, 1, 500, "forced 2-D turbulence (Kolmogorov flow, Re 40), normalised vorticity"),
}

_SPLITS = ("train", "test")


def list_datasets() -> list[str]:
    """The names :func:`get_dataset` knows."""
    return list(DATASETS)


def _entry(name: str):
    if not isinstance(name, str) or name not in DATASETS:
        raise ConfigError(f"unknown dataset {name!r}; known: {', '.join(DATASETS)}")
    return DATASETS[name]


def dataset_channels(name: str) -> int:
    """Channels per frame of dataset ``name`` (the ``channels`` a model for it needs)."""
    return _entry(name)[1]


def test_set_size(name: str) -> int:
    """Sequences in the fixed test set of dataset ``name`` (what ``get_dataset(name, "test")`` holds)."""
    return _entry(name)[2]


def get_dataset(name: str, split: str = "train", **kwargs: Any):
    """The training dataset (``split="train"``) or the fixed test set (``split="test"``) called ``name``.

    Keyword arguments go to the dataset's constructor (``num_sequences``, ``seq_len``, ``seed``, …;
    for the test sets ``num_sequences`` and ``seed`` default to the published ones). Moving MNIST
    takes ``mnist_dir``, the folder of the MNIST IDX files (or ``$STZOO_MNIST_DIR``).
    """
    builder = _entry(name)[0]
    if split not in _SPLITS:
        raise ConfigError(f"split must be one of {', '.join(_SPLITS)}, got {split!r}")
    return builder(split, dict(kwargs))


def cached_test_set(name: str, num_sequences: int | None = None, *, cache: bool | str | os.PathLike = True,
                    progress: bool = False, **kwargs: Any):
    """The first ``num_sequences`` sequences (default: all) of the fixed test set of a generated field
    dataset (``grayscott``, ``kolmogorov``), generated once and then memory-mapped from a file.

    ``cache``: True (default) keeps the file under ``stzoo.data.cache_root() / "fields"``, a folder puts
    it there instead, False generates the sequences on the fly (what :func:`get_dataset` returns). The
    file name holds the dataset name, a digest of every generator setting
    (:func:`stzoo.data.pool.describe_dataset`: seed, grid, physics) and the sequence count, so another
    seed, size or parameter gets a file of its own; it is written under a temporary name and renamed
    when complete (float32: 32 KiB per frame-channel of 64×64, so the whole Gray–Scott set is 655 MB and
    Kolmogorov's 164 MB). The values are the same bytes either way. A folder that cannot be written
    gives a warning and the on-the-fly set. Moving MNIST has its own cache
    (:func:`stzoo.data.moving_mnist_test_set`).
    """
    import hashlib
    import json
    import warnings
    from pathlib import Path

    from stzoo.data.pool import CachedSequences, describe_dataset

    if name == "moving_mnist":
        raise ConfigError("moving_mnist caches its own test set: use stzoo.data.moving_mnist_test_set")
    if num_sequences is not None:
        kwargs["num_sequences"] = min(int(num_sequences), test_set_size(name))
    data = get_dataset(name, "test", **kwargs)
    if cache is False or len(data) == 0:
        return data
    from stzoo.data.moving_mnist import cache_root

    folder = cache_root() / "fields" if cache is True else Path(cache).expanduser()
    digest = hashlib.sha256(json.dumps(describe_dataset(data), sort_keys=True).encode()).hexdigest()[:16]
    path = folder / f"{name}-test-{digest}-{len(data)}.npy"
    try:
        return CachedSequences(data, path, progress=progress)
    except OSError as exc:
        warnings.warn(f"could not write the {name} test-set cache {path} ({exc}); generating the sequences "
                      "on the fly instead", RuntimeWarning, stacklevel=2)
        return data


def channel_ranges(sequence: Any) -> list[tuple[float, float]]:
    """Each channel's (minimum, maximum) over a T×C×H×W sequence (array or tensor; uint8 counts /255):
    the display ranges :func:`preview_frames` stretches to, so that several sequences (truth and a
    forecast) can be shown on one scale."""
    a = _as_float_frames(sequence)
    return [(float(a[:, c].min()), float(a[:, c].max())) for c in range(a.shape[1])]


def _as_float_frames(sequence: Any) -> np.ndarray:
    if hasattr(sequence, "detach"):
        sequence = sequence.detach().cpu().numpy()
    raw = np.asarray(sequence)
    a = raw.astype(np.float32) / 255.0 if raw.dtype == np.uint8 else raw.astype(np.float32)
    if a.ndim != 4 or a.shape[1] not in (1, 2):
        raise InputError(f"expected a T×C×H×W sequence with C = 1 or 2, got shape {a.shape}")
    return a


def preview_frames(sequence: Any, ranges: list[tuple[float, float]] | None = None) -> np.ndarray:
    """A sequence (T×C×H×W array or tensor, C = 1 or 2; uint8 or float) as T×H×W' float frames in [0, 1].

    uint8 is divided by 255; one channel is then shown as it is. Two channels (Gray–Scott's U and V)
    are shown side by side with a 2-pixel white gap, each stretched to [0, 1] by its own minimum and
    maximum over the sequence (for display only: V uses about half of the unit range), or by
    ``ranges`` (one (lo, hi) per channel, e.g. :func:`channel_ranges` of the ground truth, to draw a
    forecast on the truth's scale; values outside are clipped).
    """
    a = _as_float_frames(sequence)
    if a.shape[1] == 1:
        return np.clip(a[:, 0], 0.0, 1.0)
    if ranges is not None and len(ranges) != a.shape[1]:
        raise InputError(f"ranges needs one (lo, hi) per channel ({a.shape[1]}), got {len(ranges)}")
    panels = []
    for c in range(2):
        x = a[:, c]
        lo, hi = ranges[c] if ranges is not None else (float(x.min()), float(x.max()))
        panels.append(np.clip((x - lo) / (hi - lo), 0.0, 1.0) if hi > lo else np.zeros_like(x))
    gap = np.ones((a.shape[0], a.shape[2], 2), dtype=np.float32)
    return np.concatenate([panels[0], gap, panels[1]], axis=2)


def save_preview(name: str, path: str | os.PathLike, *, index: int = 0, split: str = "test", fps: float = 5.0,
                 **kwargs: Any) -> np.ndarray:
    """Write sequence ``index`` of dataset ``name`` (``split``, constructor ``kwargs``) as an animated GIF
    (:func:`stzoo.frames.io.write_gif`, frames from :func:`preview_frames`); returns the frames written."""
    from stzoo.frames.io import write_gif

    kwargs.setdefault("num_sequences", index + 1)
    frames = preview_frames(get_dataset(name, split, **kwargs)[index])     # T×C×H×W for every dataset
    write_gif(frames, path, fps=fps)
    return frames
