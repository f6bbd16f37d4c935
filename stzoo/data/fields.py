"""Helpers for any registered dataset: the on-disk cache of a generated test set, and previews; and what the
generated-field datasets share (:class:`SimulatedSequences`, their checks of settings).

The datasets themselves, by name, are in :mod:`stzoo.data.registry` (``get_dataset``, ``make_dataset``,
``list_datasets``). :func:`stzoo.training.evaluation.evaluate_copy_last` scores the copy-last-frame forecast
on any of them.
"""

from __future__ import annotations

import functools
import math
import os
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from stzoo.data.registry import get_dataset, make_dataset
from stzoo.errors import ConfigError, InputError

__all__ = [
    "preview_frames",
    "save_preview",
    "cached_test_set",
    "field_test_cache",
    "channel_ranges",
    "SimulatedSequences",
    "setting_int",
    "setting_number",
]


def setting_int(value: Any, name: str, minimum: int) -> int:
    """``value`` as an int of at least ``minimum``; one :class:`~stzoo.errors.ConfigError` naming ``name`` else."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise ConfigError(f"{name} must be an integer, got {value!r}")
    if value < minimum:
        raise ConfigError(f"{name} must be at least {minimum}, got {value}")
    return int(value)


def setting_number(value: Any, name: str, *, minimum: float | None = None, positive: bool = False) -> float:
    """``value`` as a finite float (positive, at least ``minimum``, when asked); one
    :class:`~stzoo.errors.ConfigError` naming ``name`` else."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise ConfigError(f"{name} must be a number, got {value!r}")
    value = float(value)
    if not math.isfinite(value):
        raise ConfigError(f"{name} must be finite, got {value}")
    if positive and value <= 0:
        raise ConfigError(f"{name} must be positive, got {value}")
    if minimum is not None and value < minimum:
        raise ConfigError(f"{name} must be at least {minimum}, got {value}")
    return value


class SimulatedSequences(Dataset):
    """Base of the generated-field datasets (Gray–Scott, Kolmogorov flow): ``num_sequences`` sequences per
    epoch, sequence ``i`` of epoch ``e`` a pure function of ``(seed, e, i)``, simulated together by the
    subclass's ``_frames(indices)`` (an N×T×C×H×W float32 array)."""

    num_sequences: int
    seed: int
    epoch: int

    def _frames(self, indices: Sequence[int]) -> np.ndarray:
        raise NotImplementedError

    def set_epoch(self, epoch: int) -> None:
        """Return epoch ``epoch``'s sequences from now on."""
        self.epoch = setting_int(epoch, "epoch", 0)

    def __len__(self) -> int:
        return self.num_sequences

    def _check_index(self, index: int) -> int:
        if isinstance(index, bool) or not isinstance(index, (int, np.integer)):
            raise InputError(f"index must be an integer, got {index!r}")
        if not 0 <= index < self.num_sequences:
            raise IndexError(f"index {index} out of range for {self.num_sequences} sequences")
        return int(index)

    def sequence(self, index: int) -> np.ndarray:
        """Sequence ``index`` of the current epoch as a ``seq_len×C×size×size`` float32 array."""
        return self._frames([self._check_index(index)])[0]

    def __getitem__(self, index: int) -> torch.Tensor:
        return torch.from_numpy(self.sequence(index))

    def batch(self, start: int, stop: int) -> torch.Tensor:
        """Sequences ``start..stop-1`` simulated together: B×T×C×H×W float32."""
        indices = [self._check_index(i) for i in range(start, stop)]
        if not indices:
            raise InputError(f"batch({start}, {stop}) is empty")
        return torch.from_numpy(self._frames(indices))


def field_test_cache(name: str) -> Callable[..., Any]:
    """The ``DatasetSpec.cached_test`` of a generated dataset ``name``: :func:`cached_test_set` for it."""
    return functools.partial(cached_test_set, name)


def _uses_field_cache(spec: Any) -> bool:
    cached = spec.cached_test
    return isinstance(cached, functools.partial) and cached.func is cached_test_set and cached.args == (spec.name,)


def cached_test_set(
    name: str,
    num_sequences: int | None = None,
    *,
    cache: bool | str | os.PathLike = True,
    progress: bool = False,
    **kwargs: Any,
):
    """The first ``num_sequences`` sequences (default: all) of the fixed test set of a generated field
    dataset (one whose :class:`~stzoo.data.registry.DatasetSpec` declares ``field_test_cache(name)`` as its
    ``cached_test``: ``grayscott``, ``kolmogorov``), generated once and then memory-mapped from a file.

    ``cache``: True (default) keeps the file under ``stzoo.data.cache_root() / "fields"``, a folder puts
    it there instead, False generates the sequences on the fly (what :func:`make_dataset` returns). The
    file name holds the dataset name, a digest of every generator setting
    (:func:`stzoo.data.pool.describe_dataset`: seed, grid, physics) and the sequence count, so another
    seed, size or parameter gets a file of its own; it is written under a temporary name and renamed
    when complete (float32: 32 KiB per frame-channel of 64×64, so the whole Gray–Scott set is 655 MB and
    Kolmogorov's 164 MB). The values are the same bytes either way. A folder that cannot be written
    gives a warning and the on-the-fly set. A dataset with a cache of its own (Moving MNIST:
    :func:`stzoo.data.moving_mnist_test_set`) is refused here.
    """
    import hashlib
    import json
    import warnings
    from pathlib import Path

    from stzoo.data.pool import CachedSequences, describe_dataset

    spec = get_dataset(name)
    if not _uses_field_cache(spec):
        raise ConfigError(f"{name} caches its own test set: use stzoo.data.get_dataset({name!r}).test_data")
    if num_sequences is not None:
        kwargs["num_sequences"] = min(int(num_sequences), spec.test_size)
    data = make_dataset(name, "test", **kwargs)
    if cache is False or len(data) == 0:
        return data
    from stzoo.data.moving_mnist import cache_root

    folder = cache_root() / "fields" if cache is True else Path(cache).expanduser()
    digest = hashlib.sha256(json.dumps(describe_dataset(data), sort_keys=True).encode()).hexdigest()[:16]
    path = folder / f"{name}-test-{digest}-{len(data)}.npy"
    try:
        return CachedSequences(data, path, progress=progress)
    except OSError as exc:
        warnings.warn(
            f"could not write the {name} test-set cache {path} ({exc}); generating the sequences on the fly instead",
            RuntimeWarning,
            stacklevel=2,
        )
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


def save_preview(
    name: str, path: str | os.PathLike, *, index: int = 0, split: str = "test", fps: float = 5.0, **kwargs: Any
) -> np.ndarray:
    """Write sequence ``index`` of dataset ``name`` (``split``, constructor ``kwargs``) as an animated GIF
    (:func:`stzoo.frames.write.write_gif`, frames from :func:`preview_frames`); returns the frames written."""
    from stzoo.frames import write_gif

    kwargs.setdefault("num_sequences", index + 1)
    frames = preview_frames(make_dataset(name, split, **kwargs)[index])  # T×C×H×W for every dataset
    write_gif(frames, path, fps=fps)
    return frames
