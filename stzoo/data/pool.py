"""A fixed pool of training sequences, generated once into a memory-mapped file and reused every epoch.

Some generated datasets cost more to draw than a model costs to train on: a Kolmogorov-flow sequence
takes a pseudo-spectral solver ~1000 steps, and on a 2-core CPU the solver is slower than a TAU-s
training step (docs/datasets/kolmogorov.md). :class:`SequencePool` draws ``size`` sequences of a
dataset once (sequences ``0 .. size-1`` of epoch 0, exactly as the dataset defines them), writes them
to ``path`` and then serves every epoch from that file in a fresh order::

    pool = SequencePool(Kolmogorov(num_sequences=2000), path="runs/k/pool.npy", seed=0)
    pool.set_epoch(3)
    batch = pool.batch(0, 16)            # 16 pool sequences, in epoch 3's order (a torch tensor)

Order
    Training position ``p = epoch · epoch_size + i`` (``epoch_size`` as given, default ``size``) lies in
    pass ``p // size`` over the pool, at place ``p % size`` of that pass's permutation
    ``default_rng([seed, pass, 0x9001]).permutation(size)``. Every pool sequence is seen once per pass,
    whatever the epoch size, and the order is a pure function of (seed, position).

File
    ``path`` is a ``.npy`` file (``numpy.lib.format``, opened with ``mmap_mode="r"``) of shape
    ``size × T × C × H × W`` in the dataset's batch dtype, with ``path + ".json"`` beside it recording
    what it holds (the dataset's description and how many sequences are written). It is filled a chunk at
    a time, flushed, and the count updated atomically after each chunk, so an interrupted fill resumes
    where it stopped; a file made for another dataset, seed or size is rebuilt, never reused.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from stzoo.errors import ConfigError

__all__ = ["SequencePool", "CachedSequences", "describe_dataset", "fill_sequences"]

_ORDER_SALT = 0x9001
_FORMAT = 1


def _plain(value: Any, depth: int = 0) -> Any:
    """``value`` as JSON-ready settings, or ``None`` for what says nothing about the data (arrays, callables)."""
    import dataclasses

    if isinstance(value, (bool, int, float, str)) or value is None:
        return value
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, (tuple, list)):
        items = [_plain(v, depth + 1) for v in value]
        return items if all(i is not None or v is None for i, v in zip(items, value)) else None
    if depth < 2 and (dataclasses.is_dataclass(value) or hasattr(value, "__dict__")) and not callable(value):
        fields = (
            vars(value)
            if not dataclasses.is_dataclass(value)
            else {f.name: getattr(value, f.name) for f in dataclasses.fields(value)}
        )
        out = {k: _plain(v, depth + 1) for k, v in sorted(fields.items()) if not k.startswith("_")}
        return {"type": type(value).__qualname__, **{k: v for k, v in out.items() if v is not None}}
    return None


def describe_dataset(data: Any) -> dict[str, Any]:
    """What makes ``data``'s sequences what they are: its class and its public settings (seed, sequence
    length, grid size, physical parameters, one level into helper objects such as a solver), as a
    JSON-ready dict. The current epoch and the number of sequences are left out."""
    settings = {
        k: _plain(v)
        for k, v in sorted(vars(data).items())
        if not k.startswith("_") and k not in ("num_sequences", "epoch")
    }
    return {
        "class": f"{type(data).__module__}.{type(data).__qualname__}",
        "settings": {k: v for k, v in settings.items() if v is not None},
    }


def fill_sequences(
    data: Any,
    path: str | os.PathLike,
    size: int,
    *,
    chunk: int = 16,
    make_batches: Callable[[list[tuple[int, int]]], Any] | None = None,
    progress: bool = True,
    desc: str = "generate",
) -> np.ndarray:
    """Sequences ``0..size-1`` of epoch 0 of ``data`` in the ``.npy`` file ``path``, generated where the
    file does not already hold them; returns the file memory-mapped read-only (``size×T×C×H×W``).

    ``path + ".json"`` records what the file holds (:func:`describe_dataset`, ``size``) and how many
    sequences are written; it is replaced atomically after each flushed chunk, so a fill that was
    interrupted resumes at the first missing chunk, and a file recorded for other data or another size
    is overwritten. One writer per file: give concurrent processes their own paths.
    """
    path = Path(path)
    record_path = _record_path(path)
    want = _wanted(data, size)
    record = _record(path, want) if path.exists() else None
    done = int(record.get("done", 0)) if record else 0
    if done < size:
        data.set_epoch(0)
        if done == 0:  # a new file, or one made for other data: start afresh
            path.parent.mkdir(parents=True, exist_ok=True)
            first = data.batch(0, min(chunk, size)).numpy()
            arr = np.lib.format.open_memmap(path, mode="w+", dtype=first.dtype, shape=(size, *first.shape[1:]))
            arr[: len(first)] = first
            arr.flush()
            done = len(first)
            _write_record(record_path, want, done, arr)
            del arr
        arr = np.load(path, mmap_mode="r+")
        spans = [(lo, min(lo + chunk, size)) for lo in range(done, size, chunk)]
        batches = make_batches(spans) if make_batches is not None else (data.batch(lo, hi) for lo, hi in spans)
        from tqdm.auto import tqdm

        bar = tqdm(total=size, initial=done, desc=desc, unit="seq", disable=not progress)
        try:
            for (lo, hi), batch in zip(spans, batches):
                arr[lo:hi] = batch.numpy()
                arr.flush()
                _write_record(record_path, want, hi, arr)
                bar.update(hi - lo)
        finally:
            bar.close()
            del arr
    return np.load(path, mmap_mode="r")


def _record_path(path: Path) -> Path:
    return path.with_name(path.name + ".json")


def _wanted(data: Any, size: int) -> dict[str, Any]:
    """What the record of a file holding sequences ``0..size-1`` of epoch 0 of ``data`` must say."""
    return {"format": _FORMAT, "dataset": describe_dataset(data), "size": size, "epoch": 0}


def _record(path: Path, want: dict[str, Any]) -> dict[str, Any] | None:
    """The record beside ``path`` if it exists, can be read and was written for ``want``; else None."""
    try:
        record = json.loads(_record_path(path).read_text())
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) and all(record.get(k) == v for k, v in want.items()) else None


def _write_record(record_path: Path, want: dict[str, Any], done: int, arr: np.ndarray) -> None:
    """Replace the record atomically (a temporary file and a rename; ``stzoo.training.checkpoints`` has the same
    helper, but it sits in the training layer above ``stzoo.data``)."""
    tmp = record_path.with_name(record_path.name + f".tmp{os.getpid()}")
    tmp.write_text(json.dumps({**want, "done": done, "shape": list(arr.shape), "dtype": str(arr.dtype)}, indent=2))
    os.replace(tmp, record_path)


class SequencePool:
    """``size`` sequences of ``data`` (epoch 0, indices ``0..size-1``), stored in ``path``, served in a
    new order every epoch. ``len(pool)`` is ``epoch_size`` (default ``size``).

    Args:
        data: a dataset with ``set_epoch(e)``, ``batch(lo, hi)`` (B×T×C×H×W tensor) and ``len`` ≥ ``size``.
        path: the ``.npy`` file to fill (its folder is created) or reuse.
        seed: seed of the per-pass orders.
        size: sequences in the pool (default ``len(data)``).
        epoch_size: sequences per epoch served (default ``size``).
        chunk: sequences generated per fill step.
        make_batches: optional ``f(lo_hi_pairs) -> iterator of tensors`` that generates the fill chunks
            (e.g. in worker processes); the default calls ``data.batch`` in turn.
        progress: show a progress bar while filling.
    """

    def __init__(
        self,
        data: Any,
        path: str | os.PathLike,
        *,
        seed: int = 0,
        size: int | None = None,
        epoch_size: int | None = None,
        chunk: int = 16,
        make_batches: Callable[[list[tuple[int, int]]], Any] | None = None,
        progress: bool = True,
    ):
        size = len(data) if size is None else size
        if not (isinstance(size, int) and size > 0):
            raise ConfigError(f"a sequence pool needs a positive integer size, got {size!r}")
        if size > len(data):
            raise ConfigError(f"a pool of {size} sequences needs a dataset of at least that many, got {len(data)}")
        epoch_size = size if epoch_size is None else epoch_size
        if not (isinstance(epoch_size, int) and epoch_size > 0):
            raise ConfigError(f"epoch_size must be a positive integer, got {epoch_size!r}")
        if not (isinstance(chunk, int) and chunk > 0):
            raise ConfigError(f"chunk must be a positive integer, got {chunk!r}")
        self.size, self.epoch_size, self.seed = size, epoch_size, int(seed)
        self.path = Path(path)
        self.epoch = 0
        self._orders: dict[int, np.ndarray] = {}
        self._frames = fill_sequences(
            data, self.path, self.size, chunk=chunk, make_batches=make_batches, progress=progress, desc="generate pool"
        )

    # ---- the dataset interface --------------------------------------------------------------------
    def __len__(self) -> int:
        return self.epoch_size

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def order(self, pass_index: int) -> np.ndarray:
        """The permutation of the pool used by pass ``pass_index``."""
        if pass_index not in self._orders:
            if len(self._orders) > 4:
                self._orders.clear()
            rng = np.random.default_rng([self.seed, pass_index, _ORDER_SALT])
            self._orders[pass_index] = rng.permutation(self.size)
        return self._orders[pass_index]

    def indices(self, lo: int, hi: int) -> np.ndarray:
        """Pool indices of sequences ``lo..hi-1`` of the current epoch."""
        if not 0 <= lo <= hi <= self.epoch_size:
            raise IndexError(f"sequences {lo}..{hi} outside this epoch's 0..{self.epoch_size}")
        pos = self.epoch * self.epoch_size + np.arange(lo, hi)
        return np.array([self.order(int(p // self.size))[int(p % self.size)] for p in pos], dtype=np.int64)

    def batch(self, lo: int, hi: int) -> torch.Tensor:
        """Sequences ``lo..hi-1`` of the current epoch as a B×T×C×H×W tensor (a copy, not a view)."""
        return torch.from_numpy(np.ascontiguousarray(self._frames[self.indices(lo, hi)]))

    def sequence(self, index: int) -> np.ndarray:
        return np.array(self._frames[self.indices(index, index + 1)[0]])

    def __getitem__(self, index: int) -> torch.Tensor:
        return torch.from_numpy(self.sequence(index))


class CachedSequences:
    """The first ``size`` sequences of ``data`` (epoch 0), in their own order, generated once into
    ``path`` (:func:`fill_sequences`) and then read from the memory-mapped file: a drop-in for a fixed
    test set, with the same ``len``, ``batch``, ``sequence``, ``ds[i]`` and the dataset's ``seed``.

    The file is filled under a name of its own (``path`` + a process id) and renamed onto ``path``
    when complete, so concurrent processes never read a half-written file; a complete file whose
    record matches is reused as it is.
    """

    def __init__(
        self, data: Any, path: str | os.PathLike, *, size: int | None = None, chunk: int = 16, progress: bool = True
    ):
        size = len(data) if size is None else size
        if not (isinstance(size, int) and 0 < size <= len(data)):
            raise ConfigError(f"size must be an integer in 1..{len(data)}, got {size!r}")
        self.path, self.size, self.seed = Path(path), size, getattr(data, "seed", None)
        self.source = data
        self._frames = self._open(data, chunk, progress)

    def _open(self, data: Any, chunk: int, progress: bool) -> np.ndarray:
        record = _record_path(self.path)
        old = _record(self.path, _wanted(data, self.size))
        if old is not None and old.get("done") == self.size:
            try:
                frames = np.load(self.path, mmap_mode="r")
                if frames.shape == tuple(old.get("shape", ())) and str(frames.dtype) == old.get("dtype"):
                    return frames
            except (OSError, ValueError):  # missing, unreadable or damaged: made again below
                pass
        tmp = self.path.with_name(f"{self.path.stem}.{os.getpid()}.partial.npy")
        try:
            fill_sequences(data, tmp, self.size, chunk=chunk, progress=progress, desc="generate test set")
            os.replace(tmp, self.path)  # the data first, then its record: a reader checks the record
            os.replace(_record_path(tmp), record)
        finally:
            for leftover in (tmp, _record_path(tmp)):
                leftover.unlink(missing_ok=True)
        return np.load(self.path, mmap_mode="r")

    def __len__(self) -> int:
        return self.size

    def set_epoch(self, epoch: int) -> None:
        if epoch != 0:
            raise ConfigError("a cached test set holds epoch 0 only")

    def batch(self, lo: int, hi: int) -> torch.Tensor:
        if not 0 <= lo <= hi <= self.size:
            raise IndexError(f"sequences {lo}..{hi} outside 0..{self.size}")
        return torch.from_numpy(np.array(self._frames[lo:hi]))

    def sequence(self, index: int) -> np.ndarray:
        if not -self.size <= index < self.size:
            raise IndexError(f"sequence {index} outside 0..{self.size - 1}")
        return np.array(self._frames[index])

    def __getitem__(self, index: int) -> torch.Tensor:
        return torch.from_numpy(self.sequence(index))
