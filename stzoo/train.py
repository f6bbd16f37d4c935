"""Train zoo models on generated data (Moving MNIST, physical fields): the optimizer, the loss and the loop.

Checkpoint handling lives in :mod:`stzoo.checkpoints`, measuring in :mod:`stzoo.evaluation` and
releasing into the manifest in :mod:`stzoo.release`; their names are re-exported here.

The loop is small on purpose::

    for step in range(start, total):              # one batch per step
        batch = data for (epoch, batch index)      # a pure function of the seed: exact resume
        loss = recipe loss(model(inputs), targets)
        optimizer / OneCycle scheduler step
        every few minutes: atomic checkpoint (model, optimizer, scheduler, RNG, step, wall-clock)

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
from dataclasses import asdict
from pathlib import Path
from typing import Any, Iterator, Mapping

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from stzoo.checkpoints import (STATE_DICT, TRAIN_CHECKPOINT_KEYS, atomic_torch_save, atomic_write_text,  # noqa: F401
                               capture_rng_state, checkpoint_error, describe_differences, load_checkpoint,
                               read_run_json, restore_rng_state)
from stzoo.data.fields import dataset_channels, get_dataset
from stzoo.errors import ConfigError
from stzoo.evaluation import (_is_recurrent, _to_float, evaluate, evaluate_copy_last, predict_future,  # noqa: F401
                              test_data, test_set_description)
from stzoo.hub import sha256_file
from stzoo.losses import mse_ddr_loss
from stzoo.models import ARCHITECTURES, Recipe, build_model, count_parameters, get_architecture
from stzoo.release import _write_weights, ledger_totals, release, release_to_manifest  # noqa: F401

__all__ = ["Recipe", "RECIPES", "train", "evaluate", "evaluate_copy_last", "release", "sha256_file",
           "atomic_torch_save", "atomic_write_text", "capture_rng_state", "restore_rng_state",
           "make_optimizer", "optimizer_step", "compute_loss", "predict_future", "load_checkpoint",
           "checkpoint_error", "describe_differences", "STATE_DICT", "TRAIN_CHECKPOINT_KEYS", "release_to_manifest",
           "ledger_totals", "test_data", "training_data", "one_cycle_lr", "resolve_train_dtype", "cpu_description"]


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


def make_optimizer(params: Any, recipe: Recipe, total_steps: int) -> tuple[torch.optim.Optimizer, Any]:
    """AdamW with ``recipe.lr`` / ``recipe.weight_decay`` and a OneCycle schedule over ``total_steps``."""
    opt = torch.optim.AdamW(params, lr=recipe.lr, weight_decay=recipe.weight_decay)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=recipe.lr, total_steps=max(1, total_steps))
    return opt, sched


def one_cycle_lr(max_lr: float, frac: float, *, pct_start: float = 0.3, div_factor: float = 25.0,
                 final_div_factor: float = 1e4) -> float:
    """The learning rate of torch's OneCycleLR (cosine, two phases, its defaults) at fraction ``frac`` of
    the schedule: from ``max_lr / div_factor`` up to ``max_lr`` over ``pct_start``, then down to
    ``max_lr / div_factor / final_div_factor``. Used when the schedule runs on wall-clock time."""
    frac = min(max(frac, 0.0), 1.0)
    initial = max_lr / div_factor
    if frac <= pct_start:
        start, end, pct = initial, max_lr, frac / pct_start
    else:
        start, end, pct = max_lr, initial / final_div_factor, (frac - pct_start) / (1 - pct_start)
    return end + (start - end) / 2 * (1 + math.cos(math.pi * pct))


class _NoSchedule:
    """Stands in for the scheduler when the learning rate follows the clock (see :func:`train`)."""

    def step(self) -> None:
        pass

    def state_dict(self) -> dict[str, Any]:
        return {"clock": True}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        pass

    def get_last_lr(self) -> list[float]:
        return [float("nan")]


def optimizer_step(loss: Tensor, model: nn.Module, opt: torch.optim.Optimizer, sched: Any,
                   grad_clip: float) -> None:
    """Backward pass, optional gradient-norm clipping, optimizer and scheduler step."""
    opt.zero_grad(set_to_none=True)
    loss.backward()
    if grad_clip:
        nn.utils.clip_grad_norm_([p for p in model.parameters() if p.requires_grad], grad_clip)
    opt.step()
    sched.step()


def compute_loss(model: nn.Module, recipe: Recipe, seq: Tensor, teacher_p: float, *,
                 progress: float = 0.0) -> Tensor:
    """The recipe's loss on one batch of float sequences B×(T_in+T_out)×C×H×W.

    An architecture that declares its own ``training_forward`` (see :class:`stzoo.models.Architecture`)
    makes the prediction itself from the batch and ``progress`` (fraction of training done) and may add
    a loss term of its own; the others are run here, the recurrent ones with scheduled sampling at
    teacher-forcing probability ``teacher_p``. The recipe's loss (MSE or MSE+DDR) is applied to both."""
    own = getattr(getattr(model, "module", model), "arch", None)
    extra = None
    x, y = seq[:, :recipe.frames_in], seq[:, recipe.frames_in:recipe.frames_in + recipe.frames_out]
    if own in ARCHITECTURES and ARCHITECTURES[own].training_forward is not None:
        pred, target, extra = ARCHITECTURES[own].training_forward(model, recipe, seq, progress)
    elif _is_recurrent(model):
        mask = None
        if teacher_p > 0:
            mask = torch.bernoulli(torch.full((x.shape[0], recipe.frames_out - 1), teacher_p, device=x.device))
        pred = model(x, recipe.frames_out, target=y, teacher_mask=mask, return_context=True)
        target = seq[:, 1:recipe.frames_in + recipe.frames_out]
    else:
        pred, target = model(x), y
    if recipe.loss == "mse":
        loss = F.mse_loss(pred.float(), target)
    elif recipe.loss == "mse+ddr":
        loss = mse_ddr_loss(pred.float(), target, alpha=recipe.alpha)
    else:
        raise ConfigError(f"unknown loss {recipe.loss!r}; use 'mse' or 'mse+ddr'")
    return loss if extra is None else loss + extra


def cpu_bf16_units() -> list[str]:
    """The native bfloat16 units this CPU reports (``amx_bf16``, ``avx512_bf16``); [] if none or unknown."""
    try:
        flags = Path("/proc/cpuinfo").read_text().split()
    except OSError:
        return []
    return [f for f in ("amx_bf16", "avx512_bf16") if f in flags]


def cpu_description() -> str:
    """CPU model name and bf16 units, e.g. ``"AMD EPYC (avx512_bf16)"``, for run metadata."""
    name = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                name = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    units = cpu_bf16_units()
    return f"{name} ({', '.join(units) if units else 'no native bf16'})"


def resolve_train_dtype(dtype: str, device: torch.device) -> bool:
    """Whether to train under bfloat16 autocast: ``"auto"`` picks it on CUDA and on CPUs with native bf16."""
    if dtype not in ("auto", "float32", "bfloat16"):
        raise ConfigError(f"dtype must be 'auto', 'float32' or 'bfloat16', got {dtype!r}")
    if dtype == "auto":
        return device.type == "cuda" or (device.type == "cpu" and bool(cpu_bf16_units()))
    return dtype == "bfloat16"


def _hardware(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"CPU ({platform.machine()}, {torch.get_num_threads()} thread(s))"


def training_data(dataset: str, recipe: Recipe, mnist_dir: str | os.PathLike | None = None) -> Any:
    """The training sequences of ``dataset`` for ``recipe`` (epoch size, sequence length, seed)."""
    kw: dict[str, Any] = {"mnist_dir": mnist_dir} if dataset == "moving_mnist" else {}
    return get_dataset(dataset, "train", num_sequences=recipe.epoch_size,
                       seq_len=recipe.frames_in + recipe.frames_out, seed=recipe.seed, **kw)



def train(arch: str, config: dict[str, Any], out_dir: str | os.PathLike, *,
          mnist_dir: str | os.PathLike | None = None, recipe: Recipe | None = None,
          device: str | None = None, max_steps: int | None = None, eval_sequences: int = 10000,
          checkpoint_every_s: float = 300.0, log_every: int = 50, progress: bool = True,
          command: str | None = None, init_from: str | os.PathLike | None = None,
          dtype: str = "auto", time_budget_s: float | None = None,
          dataset: str = "moving_mnist") -> dict[str, Any]:
    """Train ``arch`` with ``config`` on a generated dataset (``dataset``: ``"moving_mnist"``, the
    default, or one of :func:`stzoo.data.fields.list_datasets`, e.g. ``"grayscott"``); resume from
    ``out_dir`` if it holds a checkpoint. Returns the final summary (also written to ``out_dir/summary.json``).

    ``max_steps`` stops early (the schedule is still laid out for the full ``recipe.epochs``), so a
    long run can be done in slices; the final evaluation runs only once all steps are done, or
    when ``max_steps`` is reached and ``eval_sequences`` > 0.

    ``init_from`` (a ``.safetensors`` file with this architecture's keys) warm-starts a *new* run
    from those weights with a fresh schedule; a run that already has a checkpoint resumes from it
    instead. ``dtype`` is ``"float32"``, ``"bfloat16"`` (autocast; weights and optimizer stay fp32)
    or ``"auto"`` (bfloat16 where the device has native bf16 units, else float32).

    ``time_budget_s`` lays the one-cycle learning-rate schedule over wall-clock time instead of steps:
    at every step the schedule stands at ``max(step / total_steps, training seconds / time_budget_s)``
    (the same OneCycle curve, :func:`one_cycle_lr`; no momentum cycling), and the run stops, fully
    annealed, checkpointed and summarised, when that reaches 1 — on any machine, however fast. Such a
    run is not step-for-step reproducible (where it stops depends on the machine's speed); the steps
    it took are recorded.
    """
    from tqdm.auto import tqdm

    if time_budget_s is not None and not (isinstance(time_budget_s, (int, float)) and time_budget_s > 0):
        raise ConfigError(f"time_budget_s must be a positive number of seconds, got {time_budget_s!r}")

    recipe = recipe or RECIPES[arch]
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    dev = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    torch.manual_seed(recipe.seed)
    model = build_model(arch, config).to(dev)
    steps_per_epoch = math.ceil(recipe.epoch_size / recipe.batch_size)
    total = steps_per_epoch * recipe.epochs
    opt, sched = make_optimizer(model.parameters(), recipe, total)
    if time_budget_s is not None:
        sched = _NoSchedule()
    data = training_data(dataset, recipe, mnist_dir)
    want_c = dataset_channels(dataset)
    if getattr(model, "channels", want_c) != want_c:
        raise ConfigError(f"{dataset} frames have {want_c} channel(s), but this {arch} config has "
                          f"{model.channels}; set channels={want_c} in the config (or pick another dataset)")
    ckpt_path = out / "checkpoint.pt"
    step, wall = 0, 0.0
    amp = resolve_train_dtype(dtype, dev)
    init_info = None
    if init_from is not None and not ckpt_path.exists():
        from safetensors.torch import load_file

        init_path = Path(init_from)
        model.load_state_dict({k: v.float() for k, v in load_file(str(init_path)).items()})
        init_info = {"path": init_path.name, "sha256": sha256_file(init_path)}
    resumed = ckpt_path.exists()
    if resumed:
        remedy = "Delete it to start this run afresh, or point --out (out_dir) at another folder."
        ck = load_checkpoint(ckpt_path, dev, TRAIN_CHECKPOINT_KEYS, remedy=remedy)
        diffs = describe_differences({"arch": ck["arch"], "config": ck["config"], "recipe": ck["recipe"],
                                      "time_budget_s": ck.get("time_budget_s"),
                                      "dataset": ck.get("dataset", "moving_mnist")},
                                     {"arch": arch, "config": config, "recipe": asdict(recipe), "dataset": dataset,
                                      "time_budget_s": time_budget_s})
        if diffs:
            raise ConfigError(
                f"{ckpt_path} belongs to a run with other settings, so it cannot be resumed with these: "
                f"{'; '.join(diffs)}. To resume it, repeat the original values (e.g. the same --lr, --epochs, "
                "--batch-size); to train with the new ones, use a new --out folder.")
        if not 0 <= ck["step"] <= total:
            raise checkpoint_error(ckpt_path, f"its step {ck['step']} is outside 0..{total}", remedy)
        try:
            model.load_state_dict(ck["model"])
            opt.load_state_dict(ck["optimizer"])
            sched.load_state_dict(ck["scheduler"])
            restore_rng_state(ck, dev)
        except (RuntimeError, KeyError, ValueError, TypeError, IndexError, AttributeError) as exc:
            reason = f"its state does not fit this model and optimizer ({type(exc).__name__}: " \
                     f"{str(exc).strip().splitlines()[0][:200] if str(exc).strip() else 'no details'})"
            raise checkpoint_error(ckpt_path, reason, remedy) from None
        step, wall = ck["step"], float(ck["wall_clock_s"])
    dtype_used = "bfloat16" if amp else "float32"
    meta = {"arch": arch, "config": config, "recipe": asdict(recipe), "parameters": count_parameters(model),
            "dataset": dataset, "dtype": dtype_used, "cpu": cpu_description(), "hardware": _hardware(dev),
            "command": command, "time_budget_s": time_budget_s}
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
    atomic_write_text(run_json, json.dumps(meta, indent=2))

    def save_checkpoint() -> None:
        atomic_torch_save({
            "arch": arch, "config": config, "recipe": asdict(recipe), "model": model.state_dict(),
            "optimizer": opt.state_dict(), "scheduler": sched.state_dict(), **capture_rng_state(dev),
            "step": step, "wall_clock_s": wall, "dtype": dtype_used, "time_budget_s": time_budget_s,
            "dataset": dataset}, ckpt_path)

    stop = total if max_steps is None else min(total, max_steps)
    log = open(out / "log.jsonl", "a")
    model.train()
    last_ckpt = time.monotonic()
    t0 = time.monotonic()
    running = None
    bar = tqdm(total=stop, initial=step, desc=f"train {arch}", unit="step", disable=not progress,
               mininterval=1.0 if sys.stderr.isatty() else 60.0)
    try:
        while step < stop:
            epoch, i = divmod(step, steps_per_epoch)
            data.set_epoch(epoch)
            lo = i * recipe.batch_size
            seq = _to_float(data.batch(lo, min(lo + recipe.batch_size, recipe.epoch_size)), dev)
            frac = step / total  # how far through the schedule: by steps, or by the clock
            if time_budget_s is not None:
                frac = max(frac, (wall + time.monotonic() - t0) / time_budget_s)
                for group in opt.param_groups:
                    group["lr"] = one_cycle_lr(recipe.lr, frac)
            teacher_p = 0.0
            if recipe.scheduled_sampling > 0:
                teacher_p = max(0.0, 1.0 - frac / recipe.scheduled_sampling)
            with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=amp):
                loss = compute_loss(model, recipe, seq, teacher_p, progress=min(frac, 1.0))
            optimizer_step(loss, model, opt, sched, recipe.grad_clip)
            step += 1
            if time_budget_s is not None and frac >= 1.0:
                stop = step  # the clock's schedule is done: checkpoint and finish below
            value = float(loss.detach())
            running = value if running is None else 0.98 * running + 0.02 * value
            bar.update(1)
            bar.set_postfix(loss=f"{running:.5f}", epoch=epoch)
            now = time.monotonic()
            if step % log_every == 0 or step == stop:
                log.write(json.dumps({"step": step, "epoch": epoch, "loss": value, "loss_avg": running,
                                      "lr": opt.param_groups[0]["lr"], "teacher_p": teacher_p,
                                      "wall_clock_s": wall + now - t0, "time": time.time()}) + "\n")
                log.flush()
            if now - last_ckpt >= checkpoint_every_s or step == stop:
                wall += now - t0
                t0 = now
                save_checkpoint()
                last_ckpt = now
    except KeyboardInterrupt:
        wall += time.monotonic() - t0
        t0 = time.monotonic()
        save_checkpoint()
        raise
    finally:
        bar.close()
        log.close()
    summary: dict[str, Any] = {**meta, "step": step, "total_steps": total, "wall_clock_s": wall,
                               "time_budget_s": time_budget_s,
                               "epochs_done": step / steps_per_epoch, "hardware": _hardware(dev),
                               "torch": torch.__version__, "command": command}
    if eval_sequences > 0:
        test = test_data(dataset, eval_sequences, mnist_dir)
        summary["metrics"] = evaluate(model, test, frames_in=recipe.frames_in, frames_out=recipe.frames_out,
                                      device=dev, progress=progress)
        summary["metrics"]["dataset"] = test_set_description(dataset, test, recipe)
    atomic_write_text(out / "summary.json", json.dumps(summary, indent=2))
    return summary

