"""Run folders that survive a crash: atomic writes, RNG state, and checkpoints read without unpickling.

Every checkpoint stzoo writes holds tensors, plain containers, numbers and strings only, so it loads
with ``torch.load(weights_only=True)``; :func:`load_checkpoint` checks its keys and types and turns
anything else (a crafted pickle, a truncated file, another program's file) into one
:class:`~stzoo.errors.CheckpointError` that names the file and what to do.
"""

from __future__ import annotations

import io
import json
import math
import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import torch

from stzoo.errors import CheckpointError, ConfigError, WeightsNotAvailableError
from stzoo.runtime import atomic_write, exclusive_lock
from stzoo.zoo.hub import sha256_file

F = TypeVar("F")

__all__ = [
    "RUN_LOCK_NAME",
    "holding_run_lock",
    "check_training_state",
    "write_weights",
    "weights_sha",
    "atomic_torch_save",
    "atomic_write_text",
    "capture_rng_state",
    "restore_rng_state",
    "load_checkpoint",
    "checkpoint_error",
    "describe_differences",
    "read_run_json",
    "STATE_DICT",
    "TRAIN_CHECKPOINT_KEYS",
    "save_training_checkpoint",
    "restore_training_state",
    "refusing_unfit_state",
    "refuse_other_run",
]


def atomic_torch_save(obj: Any, path: Path) -> None:
    """``torch.save`` to a fresh temporary file, fsync, then rename over ``path``: a crash (even kill -9)
    leaves either the old checkpoint or the new one, never a half-written file; a full disk is one
    :class:`~stzoo.errors.StorageError` and the old checkpoint stays (:func:`stzoo.runtime.atomic_write`)."""
    buf = io.BytesIO()
    torch.save(obj, buf)  # serialised in memory first: a write error is an OSError, not torch's "unexpected pos"
    atomic_write(path, buf.getbuffer(), what="checkpoint")


def atomic_write_text(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file and a rename (never half-written; a device node,
    FIFO or socket of that name is refused, never replaced)."""
    atomic_write(path, text.encode("utf-8"), what="file")


#: The lock file a training or fine-tuning run holds while it runs: this + ``.<folder name>``, next to
#: its output folder (removed when the run ends; nothing is created when the run refuses its arguments).
RUN_LOCK_NAME = ".stzoo-run-lock"


def holding_run_lock(fn: F) -> F:
    """Decorate a run function whose ``out_dir`` argument names its output folder: while it runs, it holds
    an exclusive lock on a hidden file next to that folder (:func:`stzoo.runtime.exclusive_lock`; the
    folder's parent must exist, else the run is not locked), so a second run into the same folder
    fails at once with one :class:`~stzoo.errors.StorageError` instead of both writing into it. Ranks
    other than 0 of a distributed run (``RANK`` set by torchrun) share rank 0's lock."""
    import functools
    import inspect

    sig = inspect.signature(fn)

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        bound = sig.bind_partial(*args, **kwargs)
        out = bound.arguments.get("out_dir", sig.parameters["out_dir"].default)
        if out in (None, "") or os.environ.get("RANK", "0") not in ("", "0"):
            return fn(*args, **kwargs)
        folder = Path(os.path.abspath(Path(out).expanduser()))
        if not folder.parent.is_dir():
            return fn(*args, **kwargs)  # a new nested path: the run creates (or refuses) it
        lock = folder.parent / f"{RUN_LOCK_NAME}.{folder.name}"
        with exclusive_lock(lock, f"the run folder '{folder}'"):
            return fn(*args, **kwargs)

    return wrapper  # type: ignore[return-value]


def capture_rng_state(device: torch.device) -> dict[str, Any]:
    """The torch RNG state of the CPU (and of ``device`` if it is a GPU), to store in a checkpoint."""
    return {
        "rng": torch.get_rng_state(),
        "cuda_rng": torch.cuda.get_rng_state(device) if device.type == "cuda" else None,
    }


def restore_rng_state(state: dict[str, Any], device: torch.device) -> None:
    """Undo :func:`capture_rng_state`: the next random draws repeat those of the saved run."""
    torch.set_rng_state(state["rng"])
    if device.type == "cuda" and state.get("cuda_rng") is not None:
        torch.cuda.set_rng_state(state["cuda_rng"], device)


# ---- reading checkpoints back (never unpickling code) ------------------------------------------
#: expected type of a checkpoint entry that is a state dict: ``{str: Tensor}``
STATE_DICT = "state dict"

#: what a checkpoint written by :func:`train` holds (``cuda_rng`` / ``dtype`` are optional)
TRAIN_CHECKPOINT_KEYS: dict[str, Any] = {
    "arch": str,
    "config": dict,
    "recipe": dict,
    "model": STATE_DICT,
    "optimizer": dict,
    "scheduler": dict,
    "rng": torch.Tensor,
    "step": int,
    "wall_clock_s": (int, float),
}


def checkpoint_error(path: str | os.PathLike, reason: str, remedy: str) -> CheckpointError:
    """The one error for a checkpoint that cannot be used: which file, what is wrong, what to do."""
    return CheckpointError(f"{path} is not a checkpoint stzoo can use: {reason}. {remedy}")


def _type_name(expected: Any) -> str:
    if expected is STATE_DICT:
        return "a state dict (names → tensors)"
    kinds = expected if isinstance(expected, tuple) else (expected,)
    return " or ".join("None" if k is type(None) else k.__name__ for k in kinds)


def _has_type(value: Any, expected: Any) -> bool:
    if expected is STATE_DICT:
        return isinstance(value, dict) and all(
            isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in value.items()
        )
    kinds = expected if isinstance(expected, tuple) else (expected,)
    if isinstance(value, bool) and bool not in kinds:  # True is an int to isinstance, not to a checkpoint
        return False
    return isinstance(value, kinds)


def _load_failure(exc: BaseException) -> str:
    """Why ``torch.load(weights_only=True)`` refused a file, in words (without torch's advice to
    load the file without ``weights_only``, which would run whatever code it carries)."""
    import pickle

    text = str(exc)
    if isinstance(exc, pickle.UnpicklingError):
        marker = "Unsupported global: GLOBAL "
        if marker in text:
            what = text.split(marker, 1)[1].split()[0]
            return (
                f"it refers to the Python object {what}, which no checkpoint stzoo writes holds (a crafted "
                "file can run code that way; it was not loaded, nothing was run)"
            )
        return "it is not a file torch.save wrote (or it is corrupt); nothing in it was run"
    first = text.strip().splitlines()[0][:200] if text.strip() else "no details"
    return f"it cannot be read: it is truncated or corrupt ({type(exc).__name__}: {first})"


def load_checkpoint(
    path: str | os.PathLike, device: str | torch.device, required_keys: Mapping[str, Any], *, remedy: str
) -> dict[str, Any]:
    """Read a checkpoint that :func:`train` or :func:`stzoo.training.finetune.finetune` wrote, safely.

    The file is read with ``torch.load(weights_only=True)`` only: tensors, numbers, strings and plain
    containers, never arbitrary Python objects, so a crafted file cannot run code. It must be a dict
    holding every key of ``required_keys`` with a value of the type given there (a type, a tuple of
    types, or :data:`STATE_DICT`). Anything else (a truncated or corrupt file, other contents, a
    pickle that wants to call a function) raises one :class:`~stzoo.errors.CheckpointError` naming
    the file and ending with ``remedy`` (what the user can do about it).
    """
    path = Path(path)
    if not path.exists():
        raise WeightsNotAvailableError(f"there is no checkpoint at {path}. {remedy}")
    if not path.is_file():
        raise checkpoint_error(path, "it is not a file", remedy)
    try:
        ck = torch.load(path, map_location=device, weights_only=True)
    except (KeyboardInterrupt, SystemExit):
        raise
    except MemoryError as exc:
        raise checkpoint_error(path, "it does not fit in memory", remedy) from exc
    except BaseException as exc:  # noqa: BLE001 - whatever a damaged or crafted file makes torch raise
        raise checkpoint_error(path, _load_failure(exc), remedy) from None
    if not isinstance(ck, dict):
        raise checkpoint_error(path, f"it holds a {type(ck).__name__}, not the dict of a stzoo checkpoint", remedy)
    problems = [f"'{k}' is missing" for k in required_keys if k not in ck]
    problems += [
        f"'{k}' is a {type(ck[k]).__name__}, expected {_type_name(t)}"
        for k, t in required_keys.items()
        if k in ck and not _has_type(ck[k], t)
    ]
    if problems:
        shown = "; ".join(problems[:6]) + (f"; and {len(problems) - 6} more" if len(problems) > 6 else "")
        raise checkpoint_error(path, f"it does not have the contents stzoo writes ({shown})", remedy)
    return ck


_MISSING = object()


def describe_differences(stored: Mapping[str, Any], requested: Mapping[str, Any], prefix: str = "") -> list[str]:
    """``"recipe.lr: 0.001 in the checkpoint, 0.5 requested"`` for every field (dotted names into
    nested dicts) whose stored and requested values differ; [] when they agree."""
    out: list[str] = []
    for key in sorted(set(stored) | set(requested), key=str):
        a, b = stored.get(key, _MISSING), requested.get(key, _MISSING)
        name = f"{prefix}{key}"
        if isinstance(a, Mapping) and isinstance(b, Mapping):
            out += describe_differences(a, b, name + ".")
        elif a is _MISSING or b is _MISSING or _plain(a) != _plain(b):
            out.append(f"{name}: {_show(a)} in the checkpoint, {_show(b)} requested")
    return out


def refuse_other_run(
    path: str | os.PathLike, stored: Mapping[str, Any], requested: Mapping[str, Any], *, lead: str, advice: str
) -> None:
    """The one resume check: a :class:`~stzoo.errors.ConfigError` ``"<path> <lead>: <differences>. <advice>"``
    when the fingerprint ``stored`` in a checkpoint differs from the ``requested`` run's (see
    :func:`describe_differences`); nothing when they agree."""
    diffs = describe_differences(stored, requested)
    if diffs:
        raise ConfigError(f"{path} {lead}: {'; '.join(diffs)}. {advice}")


def _plain(v: Any) -> Any:
    return list(v) if isinstance(v, tuple) else v


def _show(v: Any) -> str:
    return "absent" if v is _MISSING else repr(_plain(v))


def save_training_checkpoint(
    path: Path,
    *,
    model: torch.nn.Module,
    optimizer: Any,
    scheduler: Any,
    step: int,
    wall_clock_s: float,
    cpu_s: float,
    **extra: Any,
) -> None:
    """The one writer of a resumable checkpoint, atomic (:func:`atomic_torch_save`): the state every run
    resumes from (model, optimizer and scheduler state, step, both clocks) and what the caller keeps
    besides (``extra``: its fingerprint, RNG state, records; plain values and tensors only)."""
    atomic_torch_save(
        {
            "model": model.state_dict(),
            "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(),
            "step": step,
            "wall_clock_s": wall_clock_s,
            "cpu_s": cpu_s,
            **extra,
        },
        path,
    )


@contextmanager
def refusing_unfit_state(path: str | os.PathLike, remedy: str, what: str) -> Iterator[None]:
    """Inside it, restoring a checkpoint's state that does not fit (wrong shapes, missing entries, bad
    values) raises one :class:`~stzoo.errors.CheckpointError` ``"its state does not fit <what> (...)"``."""
    try:
        yield
    except (RuntimeError, KeyError, ValueError, TypeError, IndexError, AttributeError) as exc:
        text = str(exc).strip()
        detail = f"{type(exc).__name__}: {text.splitlines()[0][:200] if text else 'no details'}"
        raise checkpoint_error(path, f"its state does not fit {what} ({detail})", remedy) from None


def restore_training_state(ck: Mapping[str, Any], model: torch.nn.Module, optimizer: Any, scheduler: Any) -> None:
    """Load what :func:`save_training_checkpoint` wrote into ``model``, ``optimizer`` and ``scheduler``
    (use it inside :func:`refusing_unfit_state`), and check what was loaded (:func:`check_training_state`):
    a crafted or damaged state raises ``ValueError`` naming the field instead of training on."""
    expected = scheduler.state_dict() if hasattr(scheduler, "state_dict") else {}
    model.load_state_dict(ck["model"])
    optimizer.load_state_dict(ck["optimizer"])
    scheduler.load_state_dict(ck["scheduler"])
    check_training_state(ck, model, optimizer, scheduler, expected)


def _non_finite(value: Any, where: str, out: list[str], limit: int = 4) -> None:
    """Collect the dotted names of NaN / infinite numbers (and tensors holding any) inside ``value``."""
    if len(out) >= limit:
        return
    if isinstance(value, torch.Tensor):
        if (value.is_floating_point() or value.is_complex()) and not bool(torch.isfinite(value).all()):
            out.append(where)
    elif isinstance(value, float):
        if not math.isfinite(value):
            out.append(where)
    elif isinstance(value, Mapping):
        for k, v in value.items():
            _non_finite(v, f"{where}.{k}" if where else str(k), out, limit)
    elif isinstance(value, (list, tuple)):
        for i, v in enumerate(value):
            _non_finite(v, f"{where}[{i}]", out, limit)


def check_training_state(
    ck: Mapping[str, Any], model: torch.nn.Module, optimizer: Any, scheduler: Any, expected: Mapping[str, Any]
) -> None:
    """Refuse (``ValueError``, naming the field) a restored state that would train on silently wrong:
    NaN / infinite weights, optimizer moments or settings, a negative or non-finite learning rate, step or
    clock, or a schedule other than the one this run builds (``expected``: the scheduler's state before
    loading), e.g. ``total_steps`` below the run, which would end the schedule early or crash it."""
    bad: list[str] = []
    _non_finite(dict(model.state_dict()), "model", bad)
    _non_finite(optimizer.state_dict(), "optimizer", bad)
    _non_finite(scheduler.state_dict() if hasattr(scheduler, "state_dict") else {}, "scheduler", bad)
    for key in ("wall_clock_s", "cpu_s"):  # the clocks a time budget reads
        v = ck.get(key)
        if isinstance(v, (int, float)) and not isinstance(v, bool) and not (math.isfinite(v) and v >= 0):
            bad.append(key)
    if bad:
        raise ValueError(f"it holds NaN, infinite or negative values in {', '.join(bad)}")
    for i, group in enumerate(optimizer.param_groups):
        for key in ("lr", "initial_lr", "max_lr", "min_lr", "eps", "weight_decay"):
            v = group.get(key)
            if isinstance(v, (int, float)) and not isinstance(v, bool) and v < 0:
                raise ValueError(f"optimizer param_groups[{i}].{key} is negative ({v})")
    loaded = scheduler.state_dict() if hasattr(scheduler, "state_dict") else {}
    for key in ("total_steps", "base_lrs", "_schedule_phases", "T_max", "step_size"):
        if key in expected and loaded.get(key) != expected[key]:
            raise ValueError(
                f"scheduler.{key} is {str(loaded.get(key))[:80]}, but this run's schedule has {str(expected[key])[:80]}"
            )
    last = loaded.get("last_epoch")
    total = expected.get("total_steps")
    if isinstance(last, int) and isinstance(total, int) and not -1 <= last <= total:
        raise ValueError(f"scheduler.last_epoch {last} is outside the run's schedule (0..{total})")


def read_run_json(path: Path) -> dict[str, Any]:
    """A run folder's ``run.json`` as a dict ({} if it is missing or not a JSON object)."""
    try:
        meta = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return meta if isinstance(meta, dict) else {}


def write_weights(ck: dict[str, Any], weights_path: Path, half: bool) -> dict[str, Any]:
    """Weights-only safetensors of a loaded training checkpoint ``ck``, written atomically."""
    from safetensors.torch import save

    tensors = {k: (v.half() if half and v.is_floating_point() else v).contiguous() for k, v in ck["model"].items()}
    weights_path.parent.mkdir(parents=True, exist_ok=True)
    # One metadata key: safetensors stores a dict's keys in no fixed order, and the file's sha256
    # must not change between two releases of the same run.
    meta = json.dumps({"arch": ck["arch"], "config": ck["config"]}, sort_keys=True)
    data = save(tensors, metadata={"stzoo": meta})
    atomic_write(weights_path, data, what="weights file")  # the umask's mode (save_file would make it 0600)
    return {"path": str(weights_path), "sha256": sha256_file(weights_path), "size": weights_path.stat().st_size}


def weights_sha(ck: dict[str, Any]) -> str:
    """sha256 of the weights file :func:`stzoo.tools.release.release` would write for checkpoint ``ck``
    (deterministic)."""
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        return write_weights(ck, Path(tmp) / "w.safetensors", False)["sha256"]
