"""Speed and memory of a model's forecast: ``stzoo bench`` and :func:`measure`.

What is timed is :meth:`Predictor.predict` on a random B×T×C×H×W float tensor already in [0, 1]
(frames in → ``spec.frames_out`` frames out, the model's native horizon), i.e. the whole forecast
a user gets, including the small input/output conversion. Latency is the median over ``iters``
timed calls after ``warmup`` untimed ones; sequences/s is ``batch / latency``.

Peak memory:

* CUDA: ``torch.cuda.max_memory_allocated`` during the timed calls, minus the memory allocated
  before them (so it is the working memory of a forecast, not the weights).
* CPU: the process's peak resident set size (``VmHWM`` in ``/proc/self/status``) during the
  warm-up and timed calls minus the resident size just before the first of them. The peak is
  reset first by writing ``5`` to ``/proc/self/clear_refs`` (Linux ≥ 4.0). This counts every byte
  the process touched, whoever allocated it (torch's CPU allocator, oneDNN scratch space, BLAS
  buffers), which Python-level tools such as ``tracemalloc`` cannot see. Memory the process
  already holds from earlier work (the C allocator keeps freed blocks) is reused without growing
  the RSS, so for a clean number measure each configuration in a fresh process, as
  ``benchmarks/`` does. Where that file cannot be written (not Linux, or a restricted sandbox),
  ``peak_mem_mb`` is ``None``.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import asdict, dataclass
from typing import Any, Callable

import torch

from stzoo.errors import InputError

__all__ = ["BenchResult", "measure", "make_call", "format_table", "rss_mb", "PeakRSS"]


@dataclass
class BenchResult:
    """One measurement of :func:`measure`."""

    name: str
    impl: str
    batch: int
    device: str
    dtype: str
    seq_per_s: float
    latency_ms: float
    peak_mem_mb: float | None
    frames_in: int
    frames_out: int
    height: int
    width: int
    iters: int
    warmup: int
    cuda_graphs: bool
    torch_version: str

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-serialisable dict of every field."""
        return asdict(self)


def rss_mb() -> float | None:
    """Current resident set size of this process in MiB (Linux ``/proc``), or None."""
    return _status_mb("VmRSS")


def _status_mb(field: str) -> float | None:
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) / 1024.0  # kB
    except OSError:
        return None
    return None


class PeakRSS:
    """Context manager: ``.mb`` = peak RSS inside the block minus RSS at its start (MiB), or None
    where the peak cannot be reset (see the module docstring)."""

    def __enter__(self) -> "PeakRSS":
        self.mb: float | None = None
        self._ok = False
        try:
            with open("/proc/self/clear_refs", "w", encoding="ascii") as fh:
                fh.write("5")
            self._ok = True
        except OSError:
            pass
        self._start = rss_mb()
        return self

    def __exit__(self, *exc: Any) -> None:
        peak = _status_mb("VmHWM")
        if self._ok and peak is not None and self._start is not None:
            self.mb = max(0.0, peak - self._start)


def _predictor(name_or_predictor: Any, impl: str, device: str, dtype: str) -> Any:
    from stzoo.api import load
    from stzoo.predictor import Predictor

    if isinstance(name_or_predictor, Predictor):
        p = name_or_predictor
        want = {"auto": "fused"}.get(impl, impl)
        if p.impl != want:
            p.use_impl(impl)
        return p
    if not isinstance(name_or_predictor, str):
        raise InputError(f"measure() takes a zoo name or a Predictor, got {type(name_or_predictor).__name__}")
    # Weights do not change the speed; random weights also work for entries without a release.
    return load(name_or_predictor, pretrained=False, device=device, dtype=dtype, impl=impl)


def make_call(predictor: Any, batch: int, *, seed: int = 0) -> Callable[[], Any]:
    """A no-argument function running one forecast of ``batch`` random sequences with ``predictor``
    (the same input every call), for timing loops. A ``batch`` above ``predictor.batch_size`` is
    split into several forward passes, as :meth:`Predictor.predict` always does."""
    if batch < 1:
        raise InputError(f"batch must be >= 1, got {batch}")
    s = predictor.spec
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(batch, s.frames_in, s.channels, s.height, s.width, generator=g)

    def call() -> Any:
        return predictor.predict(x, layout="BTCHW")

    return call


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def measure(name_or_predictor: Any, *, impl: str = "auto", batch: int = 1, device: str = "cpu",
            dtype: str = "float32", warmup: int = 2, iters: int = 10) -> BenchResult:
    """Time ``iters`` forecasts of ``batch`` sequences and measure their peak working memory.

    Args:
        name_or_predictor: a zoo name (loaded with random weights: speed does not depend on them)
            or a :class:`~stzoo.predictor.Predictor` (switched to ``impl`` in place).
        impl: ``"auto"``, ``"reference"`` or ``"fused"``.
        batch: sequences per forecast.
        device: ``"cpu"``, ``"cuda"``, ...
        dtype: ``"float32"``, ``"bfloat16"`` or ``"float16"``.
        warmup: untimed calls first (CUDA graph capture, kernel selection, allocator warm-up).
        iters: timed calls; the latency is their median.

    Returns:
        A :class:`BenchResult`.

    Raises:
        InputError: bad ``batch`` / ``iters`` / device, or a model that does not take the input.
    """
    if iters < 1 or warmup < 0:
        raise InputError(f"need iters >= 1 and warmup >= 0, got iters={iters}, warmup={warmup}")
    p = _predictor(name_or_predictor, impl, device, dtype)
    dev = p.device
    call = make_call(p, batch)
    times = []
    if dev.type == "cuda":
        for _ in range(warmup):
            call()
        _sync(dev)
        torch.cuda.reset_peak_memory_stats(dev)
        base = torch.cuda.memory_allocated(dev)
        for _ in range(iters):
            t0 = time.perf_counter()
            call()
            _sync(dev)
            times.append(time.perf_counter() - t0)
        peak: float | None = (torch.cuda.max_memory_allocated(dev) - base) / 2**20
    else:
        # The C allocator keeps freed memory for reuse, so the RSS peak is taken over the warm-up
        # calls too, against the RSS before the first of them.
        with PeakRSS() as mem:
            for _ in range(warmup):
                call()
            for _ in range(iters):
                t0 = time.perf_counter()
                call()
                times.append(time.perf_counter() - t0)
        peak = mem.mb
    lat = statistics.median(times)
    graphs = dev.type == "cuda" and (p.cuda_graphs if p.cuda_graphs is not None else p.impl == "fused")
    s = p.spec
    return BenchResult(name=p.name or type(p.model).__name__, impl=p.impl, batch=batch, device=str(dev),
                       dtype=str(p.dtype).replace("torch.", ""), seq_per_s=batch / lat, latency_ms=lat * 1e3,
                       peak_mem_mb=peak, frames_in=s.frames_in, frames_out=s.frames_out, height=s.height,
                       width=s.width, iters=iters, warmup=warmup, cuda_graphs=bool(graphs),
                       torch_version=torch.__version__)


def format_table(results: list[BenchResult]) -> str:
    """Fixed-width text table of ``results`` (what ``stzoo bench`` prints)."""
    header = ("model", "impl", "batch", "device", "dtype", "seq/s", "latency ms", "peak MiB")
    rows = [(r.name, r.impl, str(r.batch), r.device, r.dtype, f"{r.seq_per_s:.2f}", f"{r.latency_ms:.1f}",
             "n/a" if r.peak_mem_mb is None else f"{r.peak_mem_mb:.0f}") for r in results]
    widths = [max(len(row[i]) for row in rows + [header]) for i in range(len(header))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in [header] + rows)
