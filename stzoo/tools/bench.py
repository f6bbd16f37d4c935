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

Training (``stzoo bench --train``, :func:`measure_train`) times the project's real training step,
the one :func:`stzoo.training.train.train` runs: :func:`stzoo.training.train.compute_loss` (the recipe's loss, scheduled
sampling for recurrent models, an architecture's own ``training_forward``) under bfloat16 autocast
when asked, then :func:`stzoo.training.train.optimizer_step` (backward, gradient clipping, AdamW, OneCycle),
on a random batch of ``T_in + T_out`` frames. Steps/s is ``1 / median step time``; sequences/s is
``batch`` times that. Like ``train``, it raises the C allocator's thresholds first
(:func:`stzoo.runtime.tune_allocator`), and every row records the CPU model, its kernel-relevant
flags, its bf16 units and the allocator it ran with.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import torch

from stzoo.errors import InputError

__all__ = [
    "BenchResult",
    "measure",
    "make_call",
    "format_table",
    "rss_mb",
    "PeakRSS",
    "TrainBenchResult",
    "measure_train",
    "make_train_step",
    "format_train_table",
    "TRAIN_DTYPES",
]


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

    def __enter__(self) -> PeakRSS:
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
    from stzoo.inference.predictor import Predictor

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


def measure(
    name_or_predictor: Any,
    *,
    impl: str = "auto",
    batch: int = 1,
    device: str = "cpu",
    dtype: str = "float32",
    warmup: int = 2,
    iters: int = 10,
) -> BenchResult:
    """Time ``iters`` forecasts of ``batch`` sequences and measure their peak working memory.

    Args:
        name_or_predictor: a zoo name (loaded with random weights: speed does not depend on them)
            or a :class:`~stzoo.inference.predictor.Predictor` (switched to ``impl`` in place).
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
    return BenchResult(
        name=p.name or type(p.model).__name__,
        impl=p.impl,
        batch=batch,
        device=str(dev),
        dtype=str(p.dtype).replace("torch.", ""),
        seq_per_s=batch / lat,
        latency_ms=lat * 1e3,
        peak_mem_mb=peak,
        frames_in=s.frames_in,
        frames_out=s.frames_out,
        height=s.height,
        width=s.width,
        iters=iters,
        warmup=warmup,
        cuda_graphs=bool(graphs),
        torch_version=torch.__version__,
    )


def format_table(results: list[BenchResult]) -> str:
    """Fixed-width text table of ``results`` (what ``stzoo bench`` prints)."""
    header = ("model", "impl", "batch", "device", "dtype", "seq/s", "latency ms", "peak MiB")
    rows = [
        (
            r.name,
            r.impl,
            str(r.batch),
            r.device,
            r.dtype,
            f"{r.seq_per_s:.2f}",
            f"{r.latency_ms:.1f}",
            "n/a" if r.peak_mem_mb is None else f"{r.peak_mem_mb:.0f}",
        )
        for r in results
    ]
    widths = [max(len(row[i]) for row in rows + [header]) for i in range(len(header))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in [header] + rows)


# ---- training steps -------------------------------------------------------------------------------
#: What ``dtype`` means for a training step: fp32 throughout, or bf16 autocast (weights, gradients and
#: optimizer state stay fp32, as in :func:`stzoo.training.train.train`); ``"auto"`` = bf16 where
#: :func:`stzoo.runtime.native_bf16` says the device has native units, else fp32.
TRAIN_DTYPES = ("float32", "bfloat16", "auto")


@dataclass
class TrainBenchResult:
    """One measurement of :func:`measure_train`."""

    name: str
    arch: str
    batch: int
    device: str
    dtype: str
    steps_per_s: float
    seq_per_s: float
    step_ms: float
    peak_mem_mb: float | None
    loss: float
    frames_in: int
    frames_out: int
    height: int
    width: int
    iters: int
    warmup: int
    cpu: str
    cpu_flags: list[str]
    bf16_units: list[str]
    cpu_capability: str
    threads: int
    allocator: str
    torch_version: str

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-serialisable dict of every field."""
        return asdict(self)


def make_train_step(
    name: str,
    *,
    batch: int | None = None,
    device: str = "cpu",
    dtype: str = "float32",
    config: dict[str, Any] | None = None,
    seed: int = 0,
) -> tuple[Callable[[], float], dict[str, Any]]:
    """A no-argument function running one real training step of zoo entry ``name`` (random weights,
    the same random batch every call) and returning its loss, plus a dict describing the setup
    (``name``, ``arch``, ``batch``, ``device``, ``dtype``, ``frames_in``, ``frames_out``, ``height``,
    ``width``). ``config`` overrides entries of the zoo config (e.g. a tiny model for a test);
    ``batch`` defaults to the architecture's recipe batch size. See :func:`measure_train`."""
    import dataclasses

    from stzoo.inference.predictor import parse_device
    from stzoo.models import build_model, get_architecture
    from stzoo.training.loop import make_optimizer, optimizer_step
    from stzoo.training.losses import compute_loss
    from stzoo.zoo.manifest import get_entry

    entry = get_entry(name)
    arch = get_architecture(entry.architecture)
    recipe = arch.recipe
    batch = recipe.batch_size if batch is None else batch
    if isinstance(batch, bool) or not isinstance(batch, int) or batch < 1:
        raise InputError(f"batch must be a positive integer, got {batch!r}")
    recipe = dataclasses.replace(recipe, batch_size=batch)
    dev = parse_device(device)
    from stzoo.runtime import resolve_train_dtype

    amp = resolve_train_dtype(dtype, dev, InputError)
    torch.manual_seed(seed)
    model = build_model(arch.name, {**entry.config, **(config or {})}).to(dev).train()
    opt, sched = make_optimizer(model.parameters(), recipe, total_steps=10**6)
    spec = entry.input
    channels = int(getattr(model, "channels", spec.channels))
    g = torch.Generator().manual_seed(seed)
    seq = torch.rand(batch, recipe.frames_in + recipe.frames_out, channels, spec.height, spec.width, generator=g).to(
        dev
    )
    teacher_p = 1.0 if recipe.scheduled_sampling > 0 else 0.0  # the start of training

    def step() -> float:
        with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=amp):
            loss = compute_loss(model, recipe, seq, teacher_p, progress=0.0)
        optimizer_step(loss, model, opt, sched, recipe.grad_clip)
        return float(loss.detach())  # also waits for the device

    setup = {
        "name": entry.name,
        "arch": arch.name,
        "batch": batch,
        "device": str(dev),
        "dtype": "bfloat16" if amp else "float32",
        "frames_in": recipe.frames_in,
        "frames_out": recipe.frames_out,
        "height": spec.height,
        "width": spec.width,
    }
    return step, setup


def measure_train(
    name: str,
    *,
    batch: int | None = None,
    device: str = "cpu",
    dtype: str = "float32",
    warmup: int = 1,
    iters: int = 3,
    config: dict[str, Any] | None = None,
) -> TrainBenchResult:
    """Time ``iters`` real training steps of zoo entry ``name`` after ``warmup`` untimed ones.

    Args:
        name: a zoo name (random weights; the speed does not depend on them).
        batch: sequences per step (default: the architecture's recipe batch size, 16 for most).
        device: ``"cpu"``, ``"cuda"``, ...
        dtype: ``"float32"``, ``"bfloat16"`` (autocast, as ``stzoo train --dtype bfloat16``) or
            ``"auto"`` (bf16 where the device has native bf16, see :func:`stzoo.runtime.native_bf16`).
        warmup: untimed steps first (allocations, oneDNN primitive creation, optimizer state).
        iters: timed steps; the step time is their median.
        config: overrides of the zoo config (e.g. smaller widths).

    Calls :func:`stzoo.runtime.tune_allocator` first, as training does (``STZOO_MALLOC_TUNING=0``
    leaves the allocator alone); the result says which allocator ran.

    Raises:
        InputError: bad ``batch`` / ``iters`` / ``warmup`` / ``dtype`` / device.
    """
    from stzoo.runtime import machine_description, tune_allocator

    if iters < 1 or warmup < 0:
        raise InputError(f"need iters >= 1 and warmup >= 0, got iters={iters}, warmup={warmup}")
    tune_allocator()
    step, setup = make_train_step(name, batch=batch, device=device, dtype=dtype, config=config)
    dev = torch.device(setup["device"])
    times, loss = [], float("nan")
    with PeakRSS() as mem:
        if dev.type == "cuda":
            torch.cuda.reset_peak_memory_stats(dev)
            base = torch.cuda.memory_allocated(dev)
        for _ in range(warmup):
            step()
        for _ in range(iters):
            t0 = time.perf_counter()
            loss = step()
            _sync(dev)
            times.append(time.perf_counter() - t0)
    peak = (torch.cuda.max_memory_allocated(dev) - base) / 2**20 if dev.type == "cuda" else mem.mb
    dt = statistics.median(times)
    machine = machine_description()
    return TrainBenchResult(
        **setup,
        steps_per_s=1.0 / dt,
        seq_per_s=setup["batch"] / dt,
        step_ms=dt * 1e3,
        peak_mem_mb=peak,
        loss=loss,
        iters=iters,
        warmup=warmup,
        **{
            k: machine[k]
            for k in ("cpu", "cpu_flags", "bf16_units", "cpu_capability", "threads", "allocator", "torch_version")
        },
    )


def format_train_table(results: list[TrainBenchResult]) -> str:
    """Fixed-width text table of ``results`` (what ``stzoo bench --train`` prints below its machine line)."""
    header = ("model", "batch", "device", "dtype", "steps/s", "seq/s", "step ms", "peak MiB")
    rows = [
        (
            r.name,
            str(r.batch),
            r.device,
            r.dtype,
            f"{r.steps_per_s:.3f}",
            f"{r.seq_per_s:.2f}",
            f"{r.step_ms:.0f}",
            "n/a" if r.peak_mem_mb is None else f"{r.peak_mem_mb:.0f}",
        )
        for r in results
    ]
    widths = [max(len(row[i]) for row in rows + [header]) for i in range(len(header))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in [header] + rows)
