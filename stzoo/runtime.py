"""Process-level settings that make long CPU work faster: today, the C allocator's.

On Linux with glibc, every tensor larger than malloc's *mmap threshold* (at most 32 MiB by default,
adjusted at run time) is served by a fresh ``mmap`` and returned with ``munmap`` when freed. A training
step of a video model allocates and frees many such tensors (activations of B × T × C × H × W floats),
so the kernel zeroes and maps the same gigabyte again at every step: measured on a 2-core AMD EPYC
(AVX2, torch 2.13, one thread), TAU-s training took ~300,000 page faults and ~1.3 s of system time per
4.6 s step. Raising the mmap and trim thresholds keeps those blocks in malloc's heap for reuse; the
same step then takes ~3.2 s with ~0 page faults (``benchmarks/allocator.py`` measures the ratio on
the machine at hand). The price is that the process keeps its peak heap instead of returning it to
the system between steps — the right trade for a training or evaluation loop, not for a library call
in someone else's program, so :func:`tune_allocator` is called by stzoo's long-running commands only
(``stzoo.training.train.train``, ``stzoo.training.finetune.finetune``, ``stzoo bench --train``), never on import.

Set ``STZOO_MALLOC_TUNING=0`` to leave the allocator alone.

It is also the one home of *what the machine can do fast*: which native bfloat16 units the CPU has
(:func:`cpu_bf16_units`, :func:`native_bf16`) and a one-line description of the CPU for run metadata
and benchmark rows (:func:`cpu_model`, :func:`cpu_description`, :func:`machine_description`). The CPU
flags are read from ``/proc/cpuinfo`` (``lscpu`` where that file cannot be read), once per process,
by :func:`read_cpu_flags`: tests replace that one function to simulate a CPU with or without bf16 units.

And :func:`fsync_path`, the one way stzoo flushes a file or a folder entry to disk in its atomic writes;
:func:`check_output_file` and :func:`atomic_write`, the one regular-file rule and the one atomic writer every
stzoo writer uses (a device node, FIFO or socket is never opened or replaced; a full disk is one
:class:`~stzoo.errors.StorageError`, the temporary file is removed and the previous file left intact); and
:func:`exclusive_lock`, which keeps two processes from writing one output at once.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import os
import platform
import shutil
import subprocess
from typing import Any

__all__ = [
    "BF16_DOC",
    "BF16_UNITS",
    "MMAP_THRESHOLD",
    "PerformanceWarning",
    "allocator_description",
    "atomic_write",
    "check_output_file",
    "exclusive_lock",
    "storage_error",
    "bf16_cost_warning",
    "cpu_bf16_units",
    "cpu_description",
    "cpu_model",
    "machine_description",
    "native_bf16",
    "onednn_bf16",
    "read_cpu_flags",
    "resolve_train_dtype",
    "tune_allocator",
    "warn_if_slow_bf16",
    "TRAIN_DTYPES",
    "writes_path",
]

#: Blocks up to this size stay in the heap instead of being mmap'ed and unmapped each time (1 GiB).
MMAP_THRESHOLD = 1 << 30

_M_TRIM_THRESHOLD = -1  # glibc's mallopt parameter numbers (malloc.h)
_M_MMAP_THRESHOLD = -3
_state: str | None = None


def tune_allocator() -> str:
    """Raise glibc's mmap / trim thresholds for this process (once); return what was done, in words.

    A no-op (and says so) off Linux, on a C library other than glibc, or with ``STZOO_MALLOC_TUNING=0``.
    """
    global _state
    if _state is not None:
        return _state
    if os.environ.get("STZOO_MALLOC_TUNING", "1").strip().lower() in ("0", "false", "no", "off"):
        _state = "default allocator (STZOO_MALLOC_TUNING=0)"
    elif platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        _state = "default allocator (not glibc)"
    else:
        try:
            libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
            ok = libc.mallopt(_M_MMAP_THRESHOLD, ctypes.c_int(MMAP_THRESHOLD)) == 1
            ok = libc.mallopt(_M_TRIM_THRESHOLD, ctypes.c_int(2**31 - 1)) == 1 and ok
        except (OSError, AttributeError):
            ok = False
        _state = (
            f"glibc malloc, mmap_threshold={MMAP_THRESHOLD >> 20} MiB, trim_threshold=2 GiB"
            if ok
            else "default allocator (glibc refused mallopt)"
        )
    return _state


def allocator_description() -> str:
    """What :func:`tune_allocator` did in this process, or that it was not called."""
    return _state or "default allocator"


# ---- what this CPU can do fast ---------------------------------------------------------------------
#: The CPU flags of native bfloat16 arithmetic units, most capable first: Intel AMX tiles with bf16
#: (Sapphire Rapids and later) and the AVX512-BF16 dot-product instructions (Cooper Lake, Zen 4, ...).
#: Without them bf16 is emulated: with AVX-512, oneDNN converts to fp32 around fp32 arithmetic; with AVX2
#: only, oneDNN has no bf16 kernels and PyTorch's generic ones run (about 10x slower than fp32 there:
#: docs/benchmarks.md). arm64 CPUs are not recognised (their flags are reported, never counted as units).
BF16_UNITS = ("amx_bf16", "avx512_bf16")

#: The flags :func:`machine_description` reports (those that decide which oneDNN kernels run).
_REPORTED_FLAGS = (
    "avx2",
    "fma",
    "avx512f",
    "avx512_vnni",
    "avx512_bf16",
    "avx512_fp16",
    "amx_tile",
    "amx_bf16",
    "amx_int8",
)

#: Where the measured cost of bf16 without native units is written down (what the warning points at).
BF16_DOC = "docs/benchmarks.md, section 'bfloat16 against float32'"


class PerformanceWarning(UserWarning):
    """A setting that works but runs slowly on this machine (e.g. bfloat16 on a CPU without bf16 units)."""


def _cpuinfo_text() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as fh:
            return fh.read()
    except OSError:
        return ""


@functools.lru_cache(maxsize=1)
def _cpuinfo() -> tuple[str, frozenset[str]]:
    """(model name, flags) of the first CPU in /proc/cpuinfo, or from ``lscpu``; ("", {}) if neither."""
    name, flags = "", frozenset()
    for line in _cpuinfo_text().splitlines():
        key, _, value = line.partition(":")
        key = key.strip()
        if key == "model name" and not name:
            name = value.strip()
        elif key in ("flags", "Features") and not flags:  # x86: flags; arm64: Features
            flags = frozenset(value.split())
    if (not name or not flags) and shutil.which("lscpu"):
        try:
            out = subprocess.run(
                ["lscpu"], check=False, capture_output=True, text=True, timeout=10, env={**os.environ, "LC_ALL": "C"}
            ).stdout
        except (OSError, subprocess.SubprocessError):
            out = ""
        for line in out.splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "Model name" and not name:
                name = value.strip()
            elif key.strip() == "Flags" and not flags:
                flags = frozenset(value.split())
    return name, flags


def read_cpu_flags() -> frozenset[str]:
    """The feature flags this CPU reports (``/proc/cpuinfo``, else ``lscpu``); empty where neither exists.

    Every bf16 decision in stzoo goes through this one function, so a test can simulate another CPU
    with ``monkeypatch.setattr(stzoo.runtime, "read_cpu_flags", lambda: frozenset({"amx_bf16"}))``.
    """
    return _cpuinfo()[1]


def cpu_model() -> str:
    """The CPU's model name, e.g. ``"AMD EPYC"`` or ``"Intel(R) Xeon(R) Platinum 8480+"``."""
    return _cpuinfo()[0] or platform.processor() or platform.machine() or "unknown CPU"


def cpu_bf16_units() -> list[str]:
    """The native bfloat16 units this CPU reports, of :data:`BF16_UNITS`; ``[]`` if none or unknown."""
    flags = read_cpu_flags()
    return [f for f in BF16_UNITS if f in flags]


def native_bf16(device: Any = "cpu") -> bool:
    """Whether ``device`` computes in bfloat16 natively, i.e. whether bf16 can be expected to be faster
    than float32 there: a CPU with :data:`BF16_UNITS`, or a CUDA device where
    ``torch.cuda.is_bf16_supported()`` (Ampere and later). Other devices: False."""
    import torch

    dev = torch.device(device) if device is not None else torch.device("cpu")
    if dev.type == "cpu":
        return bool(cpu_bf16_units())
    if dev.type == "cuda":
        try:
            return bool(torch.cuda.is_available() and torch.cuda.is_bf16_supported())
        except (RuntimeError, AssertionError):
            return False
    return False


#: the training precisions stzoo train / finetune / bench --train take
TRAIN_DTYPES = ("auto", "float32", "bfloat16")


def resolve_train_dtype(dtype: str, device: Any, error: type[Exception] = ValueError) -> bool:
    """Whether to train under bfloat16 autocast: ``"auto"`` picks it where ``device`` computes bf16
    natively (:func:`native_bf16`: a CUDA GPU that supports it, a CPU with AMX / AVX512-BF16),
    ``"bfloat16"`` always, ``"float32"`` never. Anything else raises ``error``."""
    if dtype not in TRAIN_DTYPES:
        raise error(f"dtype must be one of {', '.join(repr(d) for d in TRAIN_DTYPES)}, got {dtype!r}")
    return native_bf16(device) if dtype == "auto" else dtype == "bfloat16"


def cpu_description() -> str:
    """CPU model name and bf16 units, e.g. ``"AMD EPYC (avx512_bf16)"`` or ``"AMD EPYC (no native bf16)"``,
    for run metadata."""
    units = cpu_bf16_units()
    return f"{cpu_model()} ({', '.join(units) if units else 'no native bf16'})"


def machine_description() -> dict[str, Any]:
    """What a benchmark row should say it ran on: CPU model, the kernel-relevant flags it has, bf16
    units, torch's CPU kernel level, torch threads and the allocator (:func:`allocator_description`)."""
    import torch

    flags = read_cpu_flags()
    try:
        capability = torch.backends.cpu.get_cpu_capability()
    except (AttributeError, RuntimeError):
        capability = "unknown"
    return {
        "cpu": cpu_model(),
        "cpu_flags": [f for f in _REPORTED_FLAGS if f in flags],
        "bf16_units": cpu_bf16_units(),
        "onednn_bf16": onednn_bf16(),
        "cpu_capability": capability,
        "threads": torch.get_num_threads(),
        "allocator": allocator_description(),
        "torch_version": torch.__version__,
    }


def onednn_bf16() -> bool | None:
    """Whether this torch's oneDNN has bf16 kernels for this CPU (it needs AVX-512 at least; with
    native units they are fast, without them emulated); None where torch cannot say. On an AVX2-only
    CPU this is False and bf16 convolutions fall back to PyTorch's generic kernels."""
    import torch

    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return None


def bf16_cost_warning(device: Any = "cpu") -> str | None:
    """The warning text for bfloat16 inference on ``device``, or None where bf16 is native there
    (or ``device`` is not a CPU: CUDA without bf16 support fails loudly on its own)."""
    import torch

    dev = torch.device(device) if device is not None else torch.device("cpu")
    if dev.type != "cpu" or native_bf16(dev):
        return None
    how = (
        "oneDNN has no bf16 kernels for it at all (they need AVX-512), so bf16 runs PyTorch's generic kernels"
        if onednn_bf16() is False
        else "bf16 arithmetic is converted to and from float32 in software"
    )
    return (
        f"dtype='bfloat16' on this CPU ({cpu_model()}) runs without native bf16 units (no "
        f"{' / '.join(BF16_UNITS)} in its flags): {how}. On such CPUs bf16 was measured slower than "
        f"float32, not faster (the measured ratios are in {BF16_DOC}). Use the default dtype='float32' "
        "here; bf16 pays off on CPUs with AMX or AVX512-BF16 and on CUDA."
    )


def _caller_stacklevel() -> int:
    """The ``stacklevel`` that points a warning at the first frame outside the stzoo package."""
    import sys

    here = os.path.dirname(os.path.abspath(__file__))
    frame, level = sys._getframe(1), 1
    while frame is not None and os.path.abspath(frame.f_code.co_filename).startswith(here + os.sep):
        frame, level = frame.f_back, level + 1
    return level


def warn_if_slow_bf16(device: Any = "cpu") -> bool:
    """Issue one :class:`PerformanceWarning` (:func:`bf16_cost_warning`) if bf16 is not native on
    ``device``, pointing at the caller outside stzoo; return whether it warned."""
    import warnings

    text = bf16_cost_warning(device)
    if text is None:
        return False
    warnings.warn(text, PerformanceWarning, stacklevel=_caller_stacklevel())
    return True


def fsync_path(path: str | os.PathLike[str]) -> None:
    """Flush a file, or a folder's entries (after a rename into it), to disk. Skipped where the OS does
    not allow it (folders on Windows, some network file systems): a best effort, never an error."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


# ---- writing files: one regular-file rule, one atomic writer, one lock --------------------------------
def _short(path: Any, limit: int = 120) -> str:
    text = str(path)
    return text if len(text) <= limit else f"{text[: limit // 2]}...[{len(text)} characters]...{text[-limit // 4 :]}"


def check_output_file(path: str | os.PathLike[str], what: str = "output file") -> Any:
    """The one rule for a file stzoo is about to write: its folder exists and the path is absent or a
    regular file (a link to one counts as it). A folder, FIFO, socket or device node is refused, never
    opened (it could block or never end) and never replaced (``--out /dev/null`` as root would otherwise
    replace the system's). Returns the path as a :class:`pathlib.Path`.

    Raises:
        InputError: the path names something other than a regular file, cannot be looked up (too long,
            no permission), or the folder it goes into does not exist.
    """
    import stat
    from pathlib import Path

    from stzoo.errors import InputError

    p = Path(path)

    def stat_or_none(q: Path) -> os.stat_result | None:
        try:
            return os.stat(q)
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:  # ENAMETOOLONG, EACCES, ELOOP, embedded NUL
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            raise InputError(f"cannot write the {what} '{_short(p)}': {reason}") from None

    parent = stat_or_none(p.parent)
    if parent is None or not stat.S_ISDIR(parent.st_mode):
        raise InputError(f"cannot write the {what} '{_short(p)}': folder '{_short(p.parent)}' does not exist")
    st = stat_or_none(p)
    if st is not None and not stat.S_ISREG(st.st_mode):
        kind = "a folder" if stat.S_ISDIR(st.st_mode) else "a FIFO, socket or device"
        raise InputError(
            f"cannot write the {what} '{_short(p)}': it exists and is not a regular file ({kind}); stzoo "
            f"neither writes into nor replaces such a file: pick another file name"
        )
    return p


def storage_error(path: Any, exc: OSError, what: str = "file") -> Exception:
    """An :class:`OSError` raised while writing ``path`` as one :class:`~stzoo.errors.StorageError` that
    says what happened and what to do (disk full and quota errors name free space)."""
    import errno

    from stzoo.errors import StorageError

    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return StorageError(
            f"cannot write the {what} '{_short(path)}': no space left on the device (or the disk quota is "
            f"used up); nothing was replaced and the partial file was removed: free some space, or write "
            f"somewhere else"
        )
    reason = exc.strerror or str(exc) or type(exc).__name__
    return StorageError(f"cannot write the {what} '{_short(path)}': {reason}; nothing was replaced")


def atomic_write(path: str | os.PathLike[str], data: Any, *, what: str = "file", mode: int | None = None) -> Any:
    """Write ``path`` whole or not at all: ``data`` (bytes, or a callable that writes into a binary file
    object, or one that takes the temporary file's path and writes it) goes to a new temporary file next
    to ``path`` (a unique name, created with ``O_EXCL``, so nothing already there is opened), is flushed,
    and then renamed over ``path``. The rule of :func:`check_output_file` is checked before and again
    just before the rename. Any failure removes the temporary file and leaves the previous ``path`` as it
    was; an ``OSError`` (a full disk: ``ENOSPC``) becomes one :class:`~stzoo.errors.StorageError`.
    ``mode`` defaults to what the umask gives a new file. Returns the path."""
    import tempfile
    from pathlib import Path

    p = check_output_file(path, what)
    try:
        fd, tmp_name = tempfile.mkstemp(prefix=f".{p.name[:80]}.", suffix=".stzoo-tmp", dir=p.parent)
    except OSError as exc:
        raise storage_error(p, exc, what) from None
    tmp = Path(tmp_name)
    try:
        umask = os.umask(0)
        os.umask(umask)
        os.fchmod(fd, mode if mode is not None else 0o666 & ~umask)
        with os.fdopen(fd, "wb") as fh:
            if isinstance(data, (bytes, bytearray, memoryview)):
                fh.write(data)
            elif getattr(data, "takes_path", False):
                fh.close()
                data(tmp)
            else:
                data(fh)
            if not fh.closed:
                fh.flush()
                os.fsync(fh.fileno())
        if getattr(data, "takes_path", False):
            fsync_path(tmp)
        check_output_file(p, what)  # still absent or a regular file: never rename over a device node
        os.replace(tmp, p)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        from stzoo.errors import StzooError

        if isinstance(exc, StzooError):
            raise
        raise storage_error(p, exc, what) from exc
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_path(p.parent)
    return p


def writes_path(fn: Any) -> Any:
    """Mark a callable given to :func:`atomic_write` as one that takes the temporary file's *path*
    (for writers that open the file themselves, such as ``np.save`` or PyAV)."""
    fn.takes_path = True
    return fn


class exclusive_lock:  # noqa: N801 - used as a context manager, like a function
    """Hold an exclusive lock on ``lock_path`` (a small hidden file, removed on exit) for one writer at a
    time: a second process that asks for it gets one :class:`~stzoo.errors.StorageError` at once, saying
    which output is busy, instead of the two writes mixing. ``what`` names the output in that message.
    Where ``fcntl`` is missing (Windows) it is a no-op."""

    def __init__(self, lock_path: str | os.PathLike[str], what: str) -> None:
        self.path = os.fspath(lock_path)
        self.what = what
        self.fd: int | None = None

    def __enter__(self) -> exclusive_lock:
        try:
            import fcntl
        except ImportError:  # pragma: no cover - not on Linux / macOS
            return self
        from stzoo.errors import StorageError

        while True:
            try:
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0), 0o644)
            except OSError as exc:
                if exc.errno in (13, 30):  # EACCES, EROFS: a folder we cannot lock in; the write will say so
                    return self
                raise storage_error(self.path, exc, "lock file") from None
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                os.close(fd)
                raise StorageError(
                    f"{self.what} is being written by another process right now (it holds the lock "
                    f"'{_short(self.path)}'); wait for it to finish, or write somewhere else"
                ) from None
            try:  # the file may have been removed (and re-created) by the holder that just let go
                same = os.fstat(fd).st_ino == os.stat(self.path).st_ino
            except OSError:
                same = False
            if same:
                self.fd = fd
                return self
            os.close(fd)

    def __exit__(self, *exc: Any) -> None:
        if self.fd is not None:
            try:
                os.unlink(self.path)
            except OSError:
                pass
            os.close(self.fd)
            self.fd = None
