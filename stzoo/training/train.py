"""Train zoo models on generated data (Moving MNIST, physical fields): the data, the run folder and the summary.

The loop itself (step, schedule, teacher forcing, progress bar, log, Ctrl-C) is the one in
:mod:`stzoo.training.loop`, shared with fine-tuning; checkpoint handling lives in
:mod:`stzoo.training.checkpoints`, measuring in :mod:`stzoo.training.evaluation`, the loss in
:mod:`stzoo.training.losses` and releasing into the manifest in :mod:`stzoo.tools.release`; names of
theirs that callers use are re-exported here. What this file adds to the loop::

    for step in range(start, total):              # one batch per step
        batch = data for (epoch, batch index)      # a pure function of the seed: exact resume
        every few minutes: atomic checkpoint (model, optimizer, scheduler, RNG, step, both clocks)
        every curve_every_s budget seconds: a learning-curve point on the test set

Checkpoints carry optimizer state and live in the run folder; only :func:`release` writes the
weights-only safetensors that the manifest points at.
"""

from __future__ import annotations

import json
import math
import os
import platform
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from stzoo.data.registry import dataset_channels, get_dataset
from stzoo.errors import ConfigError
from stzoo.models import ARCHITECTURES, Recipe, build_model, count_parameters, get_architecture
from stzoo.runtime import cpu_bf16_units, cpu_description, native_bf16, tune_allocator  # noqa: F401
from stzoo.runtime import resolve_train_dtype as _resolve_dtype
from stzoo.training.checkpoints import (
    STATE_DICT,
    TRAIN_CHECKPOINT_KEYS,
    atomic_torch_save,
    atomic_write_text,
    capture_rng_state,
    checkpoint_error,
    describe_differences,
    holding_run_lock,
    load_checkpoint,
    read_run_json,
    refuse_other_run,
    refusing_unfit_state,
    restore_rng_state,
    restore_training_state,
    save_training_checkpoint,
    weights_sha,
)
from stzoo.training.distributed import (
    DEFAULT_TIMEOUT_S,
    Dist,
    data_parallel,
    part,
    peers_lost,
    setup,
    sync_batchnorm,
)
from stzoo.training.evaluation import (
    _to_float,
    evaluate,
    evaluate_copy_last,
    test_data,
    test_set_description,
)
from stzoo.training.loop import (
    BUDGET_CLOCKS,
    Clocks,
    Loop,
    NoSchedule,
    make_optimizer,
    one_cycle_lr,
    optimizer_step,
)
from stzoo.zoo.hub import sha256_file

__all__ = [
    "Recipe",
    "RECIPES",
    "train",
    "evaluate",
    "evaluate_copy_last",
    "sha256_file",
    "atomic_torch_save",
    "capture_rng_state",
    "restore_rng_state",
    "optimizer_step",
    "load_checkpoint",
    "checkpoint_error",
    "describe_differences",
    "STATE_DICT",
    "TRAIN_CHECKPOINT_KEYS",
    "test_data",
    "training_data",
    "one_cycle_lr",
    "resolve_train_dtype",
    "cpu_description",
]


class _Recipes(Mapping):
    """architecture id → its default :class:`Recipe`, read from the registry (external ones included)."""

    def __getitem__(self, arch: str) -> Recipe:
        return get_architecture(arch).recipe

    def __iter__(self) -> Iterator[str]:
        return iter(ARCHITECTURES)

    def __len__(self) -> int:
        return len(ARCHITECTURES)


#: the default recipe of every registered architecture (declared in its model file)
RECIPES: Mapping[str, Recipe] = _Recipes()


def resolve_train_dtype(dtype: str, device: torch.device) -> bool:
    """:func:`stzoo.runtime.resolve_train_dtype`, refusing a bad ``dtype`` with a ConfigError."""
    return _resolve_dtype(dtype, device, ConfigError)


def _hardware(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"CPU ({platform.machine()}, {torch.get_num_threads()} thread(s))"


_WORKER_DATA: Any = None  # a BatchPrefetcher worker's dataset, set once when the worker starts


def _init_worker(data: Any) -> None:
    global _WORKER_DATA
    torch.set_num_threads(1)
    _WORKER_DATA = data


def _make_batch(data: Any, epoch: int, lo: int, hi: int) -> Tensor:
    """Sequences ``lo..hi-1`` of ``epoch`` of ``data`` (None: the worker's own copy)."""
    data = _WORKER_DATA if data is None else data
    data.set_epoch(epoch)
    return data.batch(lo, hi)


class BatchPrefetcher:
    """Training batches generated ahead of the loop by ``workers`` processes, in step order.

    Every batch is a pure function of (epoch, first index, last index), so the sequences are exactly
    those the loop would generate itself; only *where* they are computed changes. ``workers=0``
    generates each batch in the loop (the default, right for a CPU that is busy with the model).
    ``part`` = (rank, world): only this process's share of each global batch (:func:`part`).
    """

    def __init__(
        self,
        data: Any,
        recipe: Recipe,
        steps_per_epoch: int,
        workers: int = 0,
        ahead: int = 2,
        part: tuple[int, int] = (0, 1),
    ):
        self.data, self.recipe, self.steps_per_epoch = data, recipe, steps_per_epoch
        self.part = part
        self.workers, self.ahead = int(workers), max(1, int(ahead))
        self.pool = None
        self.pending: dict[int, Any] = {}
        if self.workers > 0:
            import multiprocessing as mp
            from concurrent.futures import ProcessPoolExecutor

            ctx = mp.get_context("fork" if "fork" in mp.get_all_start_methods() else "spawn")
            # the dataset (MNIST digits and all) goes to each worker once, not with every batch
            self.pool = ProcessPoolExecutor(self.workers, mp_context=ctx, initializer=_init_worker, initargs=(data,))

    def _span(self, step: int) -> tuple[int, int, int]:
        epoch, i = divmod(step, self.steps_per_epoch)
        lo = i * self.recipe.batch_size
        return epoch, *part(lo, min(lo + self.recipe.batch_size, self.recipe.epoch_size), *self.part)

    def get(self, step: int, stop: int) -> Tensor:
        """The batch of ``step``; queues the next ones (up to ``stop``) on the workers."""
        if self.pool is None:
            epoch, lo, hi = self._span(step)
            return _make_batch(self.data, epoch, lo, hi)
        for s in range(step, min(stop, step + self.workers * self.ahead)):
            if s not in self.pending:
                self.pending[s] = self.pool.submit(_make_batch, None, *self._span(s))
        for s in [s for s in self.pending if s < step]:  # e.g. after a resume: nothing stale stays queued
            self.pending.pop(s).cancel()
        return self.pending.pop(step).result()

    def close(self) -> None:
        if self.pool is not None:
            self.pool.shutdown(wait=False, cancel_futures=True)
            self.pool = None


def training_data(dataset: str, recipe: Recipe, dataset_options: dict[str, Any] | None = None) -> Any:
    """The training sequences of ``dataset`` for ``recipe`` (epoch size, sequence length, seed);
    ``dataset_options``: the datasets' own settings (e.g. ``{"mnist_dir": ...}``; each takes its own)."""
    return get_dataset(dataset).training_data(
        recipe.epoch_size, recipe.frames_in + recipe.frames_out, recipe.seed, dataset_options
    )


def _pooled(
    dataset: str, recipe: Recipe, dataset_options: Any, size: int, path: Path, workers: int, progress: bool
) -> Any:
    """The training data of ``recipe`` served from a fixed pool of ``size`` sequences in ``path``."""
    from dataclasses import replace

    from stzoo.data.pool import SequencePool

    fill_recipe = replace(recipe, epoch_size=size)
    source = training_data(dataset, fill_recipe, dataset_options)
    make = None
    prefetch = None
    if workers > 0:
        n_steps = math.ceil(size / recipe.batch_size)
        prefetch = BatchPrefetcher(source, fill_recipe, n_steps, workers=workers)

        def make(spans: list[tuple[int, int]]):
            first = spans[0][0] // recipe.batch_size if spans else 0
            return (prefetch.get(s, n_steps) for s in range(first, first + len(spans)))

    try:
        return SequencePool(
            source,
            path,
            seed=recipe.seed,
            size=size,
            epoch_size=recipe.epoch_size,
            chunk=recipe.batch_size,
            make_batches=make,
            progress=progress,
        )
    finally:
        if prefetch is not None:
            prefetch.close()


#: what a time budget may cover: training and the final evaluation, or training only
BUDGET_COVERS = ("all", "training")
#: the share of a time budget the final evaluation may take when the whole test set would not fit in it
EVAL_SHARE = 0.1
#: the final evaluation's estimated cost is the probe's per-sequence cost times this (the probe runs cold)
EVAL_SAFETY = 1.25
#: a time budget's final evaluation measures at least this many sequences (fewer only if fewer are asked)
MIN_EVAL_SEQUENCES = 16


class _Slice:
    """Sequences ``lo..hi-1`` of a test set (one process's share of an evaluation)."""

    def __init__(self, data: Any, lo: int, hi: int) -> None:
        self.data, self.lo, self.hi = data, lo, hi

    def __len__(self) -> int:
        return self.hi - self.lo

    def batch(self, start: int, stop: int) -> Tensor:
        return self.data.batch(self.lo + start, self.lo + stop)


_METRIC_KEYS = ("mse", "mae", "ssim", "psnr")


def _evaluate_shared(
    model: torch.nn.Module, test: Any, recipe: Recipe, dev: torch.device, dist_: Dist, progress: bool
) -> dict[str, Any]:
    """:func:`evaluate` on ``test``, each process measuring its contiguous share; the metrics of the whole
    set on every process (the same numbers as one process, up to the order of summation)."""
    kw = {"frames_in": recipe.frames_in, "frames_out": recipe.frames_out, "device": dev}
    if dist_.world == 1:
        return evaluate(model, test, progress=progress, **kw)
    lo, hi = part(0, len(test), dist_.rank, dist_.world)
    mine = evaluate(model, _Slice(test, lo, hi), progress=progress and dist_.main, **kw)
    n = mine["sequences"]
    sums = dist_.all_sum([(mine[k] * n if n else 0.0) for k in _METRIC_KEYS] + [float(n)], dev)
    total = int(round(sums[-1]))
    return {**{k: (s / total if total else math.nan) for k, s in zip(_METRIC_KEYS, sums)}, "sequences": total}


def _on_main_first(dist_: Dist, make: Any) -> Any:
    """``make()`` on rank 0, then on the others (for what writes a shared cache file the first time)."""
    if dist_.main:
        out = make()
    dist_.barrier()
    if not dist_.main:
        out = make()
    return out


def _budget_clock_now(clock: str) -> float:
    return time.process_time() if clock == "cpu" else time.monotonic()


def _plan_final_eval(
    *,
    model: torch.nn.Module,
    dataset: str,
    dataset_options: dict[str, Any] | None,
    recipe: Recipe,
    dev: torch.device,
    dist_: Dist,
    eval_sequences: int,
    time_budget_s: float,
    budget_clock: str,
) -> dict[str, Any]:
    """How many test sequences the final evaluation of a time-budgeted run measures and how many budget
    seconds it keeps for them, from a probe: the cost per sequence of evaluating (and generating) the
    first few test sequences, measured now on the budget's clock (rank 0's, every process measuring its
    share). The whole test set is kept when it fits in :data:`EVAL_SHARE` of the budget; otherwise the
    evaluation is cut to the sequences that do (at least :data:`MIN_EVAL_SEQUENCES`, whose cost is then
    kept aside even if it is more than that share)."""
    k = min(eval_sequences, 8 * dist_.world)
    start = _budget_clock_now(budget_clock)
    probe = test_data(dataset, k, dataset_options, cache=False)
    _evaluate_shared(model, probe, recipe, dev, dist_, progress=False)
    model.train()
    probe_s = dist_.from_main([_budget_clock_now(budget_clock) - start], dev)[0]
    per_sequence = max(probe_s, 1e-6) / k
    cap = EVAL_SHARE * time_budget_s
    fits = int(cap // (per_sequence * EVAL_SAFETY))
    sequences = min(eval_sequences, max(fits, MIN_EVAL_SEQUENCES))
    reserve = sequences * per_sequence * EVAL_SAFETY  # over the share only for the MIN_EVAL_SEQUENCES floor
    return {
        "requested": eval_sequences,
        "sequences": sequences,
        "probe_sequences": k,
        "probe_s": round(probe_s, 4),
        "per_sequence_s": per_sequence,
        "reserve_s": round(reserve, 4),
        "training_budget_s": max(time_budget_s - reserve - probe_s, 0.05 * time_budget_s),
    }


@holding_run_lock  # one run per --out folder at a time (a second one gets a clear error)
def train(
    arch: str,
    config: dict[str, Any],
    out_dir: str | os.PathLike,
    *,
    dataset_options: dict[str, Any] | None = None,
    recipe: Recipe | None = None,
    device: str | None = None,
    max_steps: int | None = None,
    eval_sequences: int = 10000,
    checkpoint_every_s: float = 300.0,
    log_every: int = 50,
    progress: bool = True,
    command: str | None = None,
    init_from: str | os.PathLike | None = None,
    dtype: str = "auto",
    time_budget_s: float | None = None,
    dataset: str = "moving_mnist",
    budget_clock: str = "wall",
    curve_every_s: float | None = None,
    curve_sequences: int = 64,
    data_workers: int = 0,
    data_pool: int | None = None,
    accumulate: int = 1,
    sync_batchnorm: bool = True,
    dist_timeout_s: float = DEFAULT_TIMEOUT_S,
    budget_covers: str = "all",
) -> dict[str, Any]:
    """Train ``arch`` with ``config`` on a generated dataset (``dataset``: ``"moving_mnist"``, the
    default, or one of :func:`stzoo.data.list_datasets`, e.g. ``"grayscott"``; ``dataset_options``: its own
    settings, e.g. ``{"mnist_dir": ...}``); resume from ``out_dir`` if it holds a checkpoint. Returns the final
    summary (also written to ``out_dir/summary.json``).

    ``max_steps`` stops early (the schedule is still laid out for the full ``recipe.epochs``), so a
    long run can be done in slices; the final evaluation runs only once all steps are done, or
    when ``max_steps`` is reached and ``eval_sequences`` > 0.

    ``init_from`` (a ``.safetensors`` file with this architecture's keys) warm-starts a *new* run
    from those weights with a fresh schedule; a run that already has a checkpoint resumes from it
    instead. ``dtype`` is ``"float32"``, ``"bfloat16"`` (autocast; weights and optimizer stay fp32)
    or ``"auto"`` (bfloat16 where the device has native bf16 units, else float32).

    ``time_budget_s`` bounds training *and* the final evaluation: before training, the cost of
    evaluating a few test sequences is measured, the final evaluation keeps what ``eval_sequences``
    needs (or, if that is more than :data:`EVAL_SHARE` of the budget, as many sequences as fit in that
    share, at least :data:`MIN_EVAL_SEQUENCES`; ``summary["budget"]`` says how many), and the one-cycle
    learning-rate schedule is laid over the rest: at every step the schedule stands at
    ``max(step / total_steps, training seconds / training budget)`` (the same OneCycle curve,
    :func:`one_cycle_lr`; no momentum cycling), and training stops, fully annealed and checkpointed, when
    that reaches 1 — on any machine, however fast. Outside the budget: starting up (imports, data,
    model), checkpoint writing and ``curve_every_s`` measurements; ``summary["call_wall_s"]`` records the
    whole call. ``budget_covers="training"`` keeps the evaluation out of the budget instead (the whole
    budget trains, then all ``eval_sequences`` are measured, however long that takes): what a comparison
    of methods at equal training compute needs. Such a run is not step-for-step reproducible (where it
    stops depends on the machine's speed); the steps it took are recorded.

    ``budget_clock`` says which seconds the budget counts: ``"wall"`` (the default: elapsed time) or
    ``"cpu"`` (this process's CPU time, :func:`time.process_time`). With a fixed thread count the CPU
    clock gives every run the same compute however busy the machine is, which is what a
    compute-matched comparison needs; both clocks are recorded either way.

    ``curve_every_s`` records a learning curve: every that many budget seconds (and at the end) the
    model is measured on the first ``curve_sequences`` sequences of the dataset's test set, and a line
    ``{"step", "sequences", "wall_clock_s", "cpu_s", "mse", "mae", "ssim", "psnr"}`` is appended to
    ``out_dir/curve.jsonl``. These measurements are only recorded (nothing is selected on them) and their
    own time is left out of both clocks.

    ``data_workers`` > 0 generates the training batches ahead of the loop in that many processes
    (:class:`BatchPrefetcher`; the same sequences, in the same order) — for a GPU, which would
    otherwise wait for the CPU to draw each batch.

    ``data_pool`` = N trains on a fixed pool of N sequences instead of fresh ones every epoch: they are
    generated once (sequences 0..N-1 of epoch 0, by ``data_workers`` processes if > 0) into
    ``out_dir/pool.npy`` (:class:`stzoo.data.pool.SequencePool`, memory-mapped, resumable) and each
    epoch of ``recipe.epoch_size`` sequences is drawn from it in a new order. For datasets that cost
    more to generate than to train on (Kolmogorov flow on a CPU); the model sees fewer distinct
    sequences, so compare its test curve with a fresh-data run before relying on it.

    Data-parallel: launched by ``torchrun`` (or any ``env://`` launch, several nodes included; see
    :mod:`stzoo.training.distributed`), every process trains its contiguous share of each step's
    *global* batch of ``recipe.batch_size`` sequences under ``DistributedDataParallel``, so the run (its
    batches, schedule, step count and checkpoints) is the same on any number of processes; the
    checkpoint can be resumed on another number. ``accumulate`` = N splits each process's share into N
    micro-batches (one optimizer step): the same global batch on fewer devices or in less memory.
    ``sync_batchnorm`` (default) makes every BatchNorm layer normalise with the statistics of the whole
    global batch, as one process would (see :func:`stzoo.training.distributed.sync_batchnorm`); with
    micro-batches, BatchNorm sees one micro-batch at a time. Rank 0 takes the clock's decisions (time
    budget, checkpoints) for all and writes every file; the evaluations are shared out. A process that
    dies (or does not answer within ``dist_timeout_s``) stops the others with a
    :class:`~stzoo.training.distributed.PeerLostError`; the last checkpoint stays whole. With several
    nodes, ``out_dir`` must be a folder every node sees.
    """
    call_start = time.monotonic()
    if time_budget_s is not None and not (isinstance(time_budget_s, (int, float)) and time_budget_s > 0):
        raise ConfigError(f"time_budget_s must be a positive number of seconds, got {time_budget_s!r}")
    if budget_clock not in BUDGET_CLOCKS:
        raise ConfigError(f"budget_clock must be one of {', '.join(BUDGET_CLOCKS)}, got {budget_clock!r}")
    if curve_every_s is not None and not (isinstance(curve_every_s, (int, float)) and curve_every_s > 0):
        raise ConfigError(f"curve_every_s must be a positive number of seconds, got {curve_every_s!r}")
    if not (isinstance(data_workers, int) and 0 <= data_workers <= 256):
        raise ConfigError(f"data_workers must be an integer in 0..256, got {data_workers!r}")
    if data_pool is not None and not (isinstance(data_pool, int) and not isinstance(data_pool, bool) and data_pool > 0):
        raise ConfigError(f"data_pool must be a positive integer (sequences), got {data_pool!r}")
    if not (isinstance(curve_sequences, int) and curve_sequences > 0):
        raise ConfigError(f"curve_sequences must be a positive integer, got {curve_sequences!r}")
    if isinstance(accumulate, bool) or not isinstance(accumulate, int) or accumulate < 1:
        raise ConfigError(f"accumulate must be a positive integer (micro-batches per step), got {accumulate!r}")
    if budget_covers not in BUDGET_COVERS:
        raise ConfigError(f"budget_covers must be one of {', '.join(BUDGET_COVERS)}, got {budget_covers!r}")
    if not (isinstance(dist_timeout_s, (int, float)) and dist_timeout_s > 0):
        raise ConfigError(f"dist_timeout_s must be a positive number of seconds, got {dist_timeout_s!r}")

    dist_, dev = setup(device, dist_timeout_s)
    hint = (
        f"The last checkpoint in {out_dir} is whole: run the same command again (on any number of processes) to resume."
    )
    try:
        with peers_lost(dist_, hint):
            return _train(
                arch,
                config,
                Path(out_dir),
                dist_=dist_,
                dev=dev,
                call_start=call_start,
                dataset_options=dataset_options,
                recipe=recipe,
                max_steps=max_steps,
                eval_sequences=eval_sequences,
                checkpoint_every_s=checkpoint_every_s,
                log_every=log_every,
                progress=progress,
                command=command,
                init_from=init_from,
                dtype=dtype,
                time_budget_s=time_budget_s,
                dataset=dataset,
                budget_clock=budget_clock,
                curve_every_s=curve_every_s,
                curve_sequences=curve_sequences,
                data_workers=data_workers,
                data_pool=data_pool,
                accumulate=accumulate,
                sync_bn=sync_batchnorm,
                budget_covers=budget_covers,
            )
    finally:
        dist_.close()


def _train(
    arch: str,
    config: dict[str, Any],
    out: Path,
    *,
    dist_: Dist,
    dev: torch.device,
    call_start: float,
    dataset_options: dict[str, Any] | None,
    recipe: Recipe | None,
    max_steps: int | None,
    eval_sequences: int,
    checkpoint_every_s: float,
    log_every: int,
    progress: bool,
    command: str | None,
    init_from: str | os.PathLike | None,
    dtype: str,
    time_budget_s: float | None,
    dataset: str,
    budget_clock: str,
    curve_every_s: float | None,
    curve_sequences: int,
    data_workers: int,
    data_pool: int | None,
    accumulate: int,
    sync_bn: bool,
    budget_covers: str,
) -> dict[str, Any]:
    """The body of :func:`train`, inside the process group."""
    allocator = tune_allocator()
    recipe = recipe or RECIPES[arch]
    main = dist_.main
    if main:
        out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(recipe.seed)
    model = build_model(arch, config).to(dev)
    if dist_.rank > 0:  # the same initial weights everywhere; then each process its own random stream
        torch.manual_seed(recipe.seed + 7919 * dist_.rank)
    steps_per_epoch = math.ceil(recipe.epoch_size / recipe.batch_size)
    total = steps_per_epoch * recipe.epochs
    smallest = recipe.epoch_size - (steps_per_epoch - 1) * recipe.batch_size  # an epoch's last batch
    if smallest < dist_.world * accumulate:
        raise ConfigError(
            f"a global batch of {smallest} sequence(s) (batch_size {recipe.batch_size}, epoch_size "
            f"{recipe.epoch_size}) cannot be split among {dist_.world} process(es) × {accumulate} micro-batch(es): "
            "every process needs at least one sequence per micro-batch; use a larger --batch-size (a multiple "
            "of processes × --accumulate), fewer processes or a smaller --accumulate"
        )
    opt, sched = make_optimizer(model.parameters(), recipe, total)
    if time_budget_s is not None:
        sched = NoSchedule()
    data = training_data(dataset, recipe, dataset_options)
    want_c = dataset_channels(dataset)
    if getattr(model, "channels", want_c) != want_c:
        raise ConfigError(
            f"{dataset} frames have {want_c} channel(s), but this {arch} config has "
            f"{model.channels}; set channels={want_c} in the config (or pick another dataset)"
        )
    ckpt_path = out / "checkpoint.pt"
    step, wall, cpu = 0, 0.0, 0.0
    amp = resolve_train_dtype(dtype, dev)
    init_info = None
    exists = ckpt_path.exists()
    if dist_.world > 1 and len(set(dist_.gather(exists))) > 1:
        raise ConfigError(
            f"{ckpt_path} exists for some processes and not for others: with several nodes, --out (out_dir) "
            "must be a folder every node sees (a shared file system)"
        )
    if init_from is not None and not exists:
        from stzoo.models import load_state_dict_strict
        from stzoo.zoo.hub import check_finite, load_safetensors

        init_path = Path(init_from)  # every failure is one clear error naming the file (F12)
        state = load_safetensors(init_path)
        check_finite(state, init_path)
        load_state_dict_strict(
            model, {k: v.float() if v.is_floating_point() else v for k, v in state.items()}, f"--init-from {init_path}"
        )
        # sha256 of the file, and of the weights as a release would write them (what a ledger matches: a
        # file saved by other means holds the same tensors under another file sha256)
        init_info = {
            "path": init_path.name,
            "sha256": sha256_file(init_path),
            "tensors_sha256": weights_sha({"arch": arch, "config": config, "model": model.state_dict()}),
        }
    resumed = exists
    eval_plan: dict[str, Any] | None = None
    if resumed:
        remedy = "Delete it to start this run afresh, or point --out (out_dir) at another folder."
        ck = load_checkpoint(ckpt_path, dev, TRAIN_CHECKPOINT_KEYS, remedy=remedy)
        refuse_other_run(
            ckpt_path,
            {
                "arch": ck["arch"],
                "config": ck["config"],
                "recipe": ck["recipe"],
                "time_budget_s": ck.get("time_budget_s"),
                "budget_clock": ck.get("budget_clock", "wall"),
                "dataset": ck.get("dataset", "moving_mnist"),
                "data_pool": ck.get("data_pool"),
            },
            {
                "arch": arch,
                "config": config,
                "recipe": asdict(recipe),
                "dataset": dataset,
                "data_pool": data_pool,
                "time_budget_s": time_budget_s,
                "budget_clock": budget_clock,
            },
            lead="belongs to a run with other settings, so it cannot be resumed with these",
            advice="To resume it, repeat the original values (e.g. the same --lr, --epochs, --batch-size); to "
            "train with the new ones, use a new --out folder.",
        )
        if not 0 <= ck["step"] <= total:
            raise checkpoint_error(ckpt_path, f"its step {ck['step']} is outside 0..{total}", remedy)
        with refusing_unfit_state(ckpt_path, remedy, "this model and optimizer"):
            restore_training_state(ck, model, opt, sched)
            ranks = ck.get("rng_ranks")
            if dist_.rank == 0 or not isinstance(ranks, list) or dist_.rank >= len(ranks):
                restore_rng_state(ck, dev)
                if dist_.rank > 0:  # more processes than the run had: a stream of its own, from the step
                    torch.manual_seed(recipe.seed + 7919 * dist_.rank + int(ck["step"]))
            else:
                restore_rng_state({"rng": ranks[dist_.rank]}, dev)
            if isinstance(ck.get("eval_plan"), dict):
                eval_plan = ck["eval_plan"]
        step, wall, cpu = ck["step"], float(ck["wall_clock_s"]), float(ck.get("cpu_s", 0.0))
    dtype_used = "bfloat16" if amp else "float32"
    hardware = _hardware(dev) + (f" × {dist_.world} processes" if dist_.world > 1 else "")
    meta = {
        "arch": arch,
        "config": config,
        "recipe": asdict(recipe),
        "parameters": count_parameters(model),
        "dataset": dataset,
        "dtype": dtype_used,
        "cpu": cpu_description(),
        "hardware": hardware,
        "command": command,
        "time_budget_s": time_budget_s,
        "budget_clock": budget_clock,
        "torch_threads": torch.get_num_threads(),
        "allocator": allocator,
    }
    if data_pool is not None:
        meta["data_pool"] = data_pool
    run_json = out / "run.json"
    previous = read_run_json(run_json)
    if init_info is None:  # a resumed warm start keeps its start weights' record
        init_info = previous.get("init_from")
    if init_info is not None:
        meta["init_from"] = init_info
    # the precision may change on resume (e.g. another machine): run.json keeps where each one began
    history = previous.get("dtype_history") if resumed else None
    if not isinstance(history, list) or not all(isinstance(h, dict) for h in history):
        history = [{"from_step": 0, "dtype": previous["dtype"]}] if resumed and "dtype" in previous else []
    if not history or history[-1].get("dtype") != dtype_used:
        history.append({"from_step": step, "dtype": dtype_used})
    meta["dtype_history"] = history
    # so may the processes sharing the global batch and its micro-batches (the same run either way)
    layout = {"processes": dist_.world, "accumulate": accumulate, "sync_batchnorm": bool(sync_bn)}
    layouts = previous.get("parallel_history") if resumed else None
    if not isinstance(layouts, list) or not all(isinstance(h, dict) for h in layouts):
        layouts = []
    if not layouts or {k: layouts[-1].get(k) for k in layout} != layout:
        layouts.append({"from_step": step, **layout})
    meta["parallel_history"] = layouts
    if main:
        atomic_write_text(run_json, json.dumps(meta, indent=2))

    clocks = Clocks(wall, cpu)

    def save_checkpoint() -> None:
        # Ctrl-C reaches the processes at different moments: no collective then, rank 0 saves alone
        interrupted = sys.exc_info()[0] is KeyboardInterrupt
        rngs = [capture_rng_state(dev)["rng"]] if interrupted else dist_.gather(capture_rng_state(dev)["rng"])
        if not main:
            return
        save_training_checkpoint(
            ckpt_path,
            model=model,
            optimizer=opt,
            scheduler=sched,
            step=loop.step,
            wall_clock_s=clocks.wall,
            cpu_s=clocks.cpu,
            arch=arch,
            config=config,
            recipe=asdict(recipe),
            **capture_rng_state(dev),
            dtype=dtype_used,
            time_budget_s=time_budget_s,
            budget_clock=budget_clock,
            dataset=dataset,
            # what a resume on another number of processes needs: the global step is the position in the
            # data (batch_size sequences each); every process's random stream
            sequences_seen=loop.step * recipe.batch_size,
            world_size=dist_.world,
            **({"rng_ranks": rngs} if dist_.world > 1 and not interrupted else {}),
            **({"eval_plan": eval_plan} if eval_plan is not None else {}),
            **({"data_pool": data_pool} if data_pool is not None else {}),
        )

    curve_test = (
        _on_main_first(dist_, lambda: test_data(dataset, curve_sequences, dataset_options))
        if curve_every_s is not None
        else None
    )

    def record_curve() -> None:
        m = _evaluate_shared(model, curve_test, recipe, dev, dist_, progress=False)
        model.train()
        if not main:
            return
        with open(out / "curve.jsonl", "a") as f:
            f.write(
                json.dumps(
                    {
                        "step": loop.step,
                        "sequences": loop.step * recipe.batch_size,
                        "wall_clock_s": clocks.wall,
                        "cpu_s": clocks.cpu,
                        **{k: m[k] for k in _METRIC_KEYS},
                        "curve_sequences": m["sequences"],
                    }
                )
                + "\n"
            )

    stop = total if max_steps is None else min(total, max_steps)
    # a time budget covers the final evaluation too: measure what it costs, keep that out of training's share
    # (a run resumed from a checkpoint without a plan keeps the budget it was laid out over)
    if time_budget_s is not None and budget_covers == "all" and eval_sequences > 0 and not resumed and step < stop:
        eval_plan = _plan_final_eval(
            model=model,
            dataset=dataset,
            dataset_options=dataset_options,
            recipe=recipe,
            dev=dev,
            dist_=dist_,
            eval_sequences=eval_sequences,
            time_budget_s=float(time_budget_s),
            budget_clock=budget_clock,
        )
    training_budget = None
    if time_budget_s is not None:
        training_budget = eval_plan["training_budget_s"] if eval_plan is not None else float(time_budget_s)

    def my_share(s: int) -> tuple[int, int]:
        """(this process's sequences, the global batch's) at step ``s``."""
        lo = (s % steps_per_epoch) * recipe.batch_size
        hi = min(lo + recipe.batch_size, recipe.epoch_size)
        a, b = part(lo, hi, dist_.rank, dist_.world)
        return b - a, hi - lo

    net = data_parallel(model, dist_, dev)
    loop = Loop(
        model=model,
        net=net,
        recipe=recipe,
        opt=opt,
        sched=sched,
        device=dev,
        amp=amp,
        step=step,
        total=total,
        stop=stop,
        steps_per_epoch=steps_per_epoch,
        save=save_checkpoint,
        clocks=clocks,
        time_budget_s=training_budget,
        budget_clock=budget_clock,
        accumulate=accumulate,
        log_path=out / "log.jsonl" if main else None,
        log_every=log_every,
        desc=f"train {arch}",
        progress=progress and main,
        dist=dist_,
    )
    if dist_.world > 1:

        def scale_of(s: int) -> float:
            mine, whole = my_share(s)
            return dist_.world * mine / whole

        def average(value: float) -> float:
            mine, whole = my_share(loop.step - 1)
            return dist_.all_sum([value * mine], dev)[0] / whole

        loop.scale_of, loop.average = scale_of, average
    # the pool is generated (or found) once the run is known to go ahead; its time is outside both clocks
    if data_pool is not None and step < loop.stop:
        data = _on_main_first(
            dist_,
            lambda: _pooled(
                dataset, recipe, dataset_options, data_pool, out / "pool.npy", data_workers, progress and main
            ),
        )
    model.train()
    next_curve = None
    if curve_every_s is not None:
        next_curve = (math.floor((cpu if budget_clock == "cpu" else wall) / curve_every_s) + 1) * curve_every_s
        if step == 0 and not (out / "curve.jsonl").exists():
            record_curve()  # the starting point
    last_ckpt = time.monotonic()

    def after_step(loss: float) -> None:
        """Every so often (and at the end): a learning-curve point, a checkpoint (rank 0's clock decides)."""
        nonlocal next_curve, last_ckpt
        at_end = loop.step == loop.stop
        curve_due = next_curve is not None and (loop.spent() >= next_curve or at_end)
        ckpt_due = time.monotonic() - last_ckpt >= checkpoint_every_s or at_end
        if dist_.world > 1:
            curve_due, ckpt_due = (v > 0.5 for v in dist_.from_main([float(curve_due), float(ckpt_due)], dev))
        if curve_due or ckpt_due:
            clocks.lap()
            if curve_due:
                record_curve()
                used = clocks.cpu if budget_clock == "cpu" else clocks.wall
                used = dist_.from_main([used], dev)[0]
                while next_curve <= used:
                    next_curve += curve_every_s
            if ckpt_due:
                save_checkpoint()
                last_ckpt = time.monotonic()
            clocks.restart()

    # a pool is read from disk: cheap enough in the loop, whatever made it
    batches = BatchPrefetcher(
        data,
        recipe,
        steps_per_epoch,
        workers=0 if data_pool is not None else data_workers,
        part=(dist_.rank, dist_.world),
    )
    try:
        with _sync_bn(model, dist_, sync_bn):
            loop.run(lambda s: _to_float(batches.get(s, loop.stop), dev), after_step)
    finally:
        batches.close()
    step, wall, cpu = loop.step, clocks.wall, clocks.cpu
    summary: dict[str, Any] = {
        **meta,
        "step": step,
        "total_steps": total,
        "wall_clock_s": wall,
        "cpu_s": cpu,
        "time_budget_s": time_budget_s,
        "epochs_done": step / steps_per_epoch,
        "hardware": hardware,
        "torch": torch.__version__,
        "command": command,
    }
    n_eval = eval_sequences if eval_plan is None else int(eval_plan["sequences"])
    if eval_sequences > 0:
        start = _budget_clock_now(budget_clock)
        test = _on_main_first(dist_, lambda: test_data(dataset, n_eval, dataset_options))
        summary["metrics"] = _evaluate_shared(model, test, recipe, dev, dist_, progress)
        summary["metrics"]["dataset"] = test_set_description(dataset, test, recipe)
        eval_s = dist_.from_main([_budget_clock_now(budget_clock) - start], dev)[0]
        if main:  # which weights were measured: stzoo release reuses these metrics for exactly this file
            summary["weights_sha256"] = weights_sha({"arch": arch, "config": config, "model": model.state_dict()})
        if eval_plan is not None:
            summary["budget"] = {
                "time_budget_s": time_budget_s,
                "clock": budget_clock,
                "training_budget_s": round(eval_plan["training_budget_s"], 4),
                "final_evaluation": {**eval_plan, "measured_s": round(eval_s, 4)},
            }
    summary["call_wall_s"] = round(time.monotonic() - call_start, 3)
    if main:
        atomic_write_text(out / "summary.json", json.dumps(summary, indent=2))
    dist_.barrier()
    return summary


@contextmanager
def _sync_bn(model: torch.nn.Module, dist_: Dist, enabled: bool) -> Iterator[None]:
    if not enabled:
        yield
        return
    with sync_batchnorm(model, dist_):
        yield
