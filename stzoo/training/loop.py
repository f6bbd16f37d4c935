"""The one training loop: :func:`stzoo.training.train.train` and :func:`stzoo.training.finetune.finetune` run it.

What every run does the same way lives here::

    for step in range(start, stop):
        batch   = the caller's batch of this step                 (a pure function of seed and step)
        frac    = how far through the schedule: step / total, or the time budget's clock if that is further
        lr      = the OneCycle schedule (a scheduler by steps, or one_cycle_lr(frac) on a time budget)
        teacher = teacher_forcing_p(frac): scheduled sampling on the same fraction, so it is right on a budget
        loss    = train_step: autocast forward, backward (accumulated over micro-batches), clip, optimizer step
        one progress bar, one log.jsonl record, then the caller's after-step work (checkpoints, validation)
    Ctrl-C: checkpoint, then re-raise

What is specific to a caller (its data, its evaluation and validation, what its checkpoint holds) comes in
as callables; both clocks (wall and CPU seconds, summed over resumes) live in :class:`Clocks`.
"""

from __future__ import annotations

import contextlib
import json
import math
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

import torch
from torch import Tensor, nn

from stzoo.errors import ConfigError
from stzoo.models import Recipe
from stzoo.training.distributed import Dist
from stzoo.training.losses import compute_loss

__all__ = [
    "BUDGET_CLOCKS",
    "Clocks",
    "Loop",
    "NoSchedule",
    "make_optimizer",
    "one_cycle_lr",
    "optimizer_step",
    "teacher_forcing_p",
    "train_step",
]

#: What a training time budget counts: elapsed seconds, or this process's CPU seconds.
BUDGET_CLOCKS = ("wall", "cpu")


def make_optimizer(params: Any, recipe: Recipe, total_steps: int) -> tuple[torch.optim.Optimizer, Any]:
    """AdamW with ``recipe.lr`` / ``recipe.weight_decay`` and a OneCycle schedule over ``total_steps``."""
    opt = torch.optim.AdamW(params, lr=recipe.lr, weight_decay=recipe.weight_decay)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=recipe.lr, total_steps=max(1, total_steps))
    return opt, sched


def one_cycle_lr(
    max_lr: float, frac: float, *, pct_start: float = 0.3, div_factor: float = 25.0, final_div_factor: float = 1e4
) -> float:
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


class NoSchedule:
    """Stands in for the scheduler when the learning rate follows the clock (a time budget)."""

    def step(self) -> None:
        """Nothing: the loop sets the learning rate from the clock."""

    def state_dict(self) -> dict[str, Any]:
        """What a checkpoint stores for it."""
        return {"clock": True}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Nothing to restore."""

    def get_last_lr(self) -> list[float]:
        """No schedule of its own: NaN."""
        return [float("nan")]


def teacher_forcing_p(frac: float, scheduled_sampling: float) -> float:
    """Scheduled sampling: the probability of feeding a true frame (not the model's own) at fraction
    ``frac`` of the schedule; it decays linearly from 1 to 0 over the first ``scheduled_sampling`` of it.

    ``frac`` is the schedule's fraction (:attr:`Loop.fraction`), not ``step / total``: on a time budget
    the run ends when the clock says so, however few of the planned steps it took, and teacher forcing
    must be over by then."""
    if scheduled_sampling <= 0:
        return 0.0
    return max(0.0, 1.0 - frac / scheduled_sampling)


def _clip_and_step(model: nn.Module, opt: torch.optim.Optimizer, sched: Any, grad_clip: float) -> None:
    if grad_clip:
        nn.utils.clip_grad_norm_([p for p in model.parameters() if p.requires_grad], grad_clip)
    opt.step()
    sched.step()


def optimizer_step(loss: Tensor, model: nn.Module, opt: torch.optim.Optimizer, sched: Any, grad_clip: float) -> None:
    """Backward pass of ``loss``, optional gradient-norm clipping, optimizer and scheduler step."""
    opt.zero_grad(set_to_none=True)
    loss.backward()
    _clip_and_step(model, opt, sched, grad_clip)


def train_step(
    net: nn.Module,
    model: nn.Module,
    recipe: Recipe,
    opt: torch.optim.Optimizer,
    sched: Any,
    seq: Tensor,
    *,
    teacher_p: float,
    progress: float,
    amp: bool,
    accumulate: int = 1,
    scale: float = 1.0,
) -> Tensor:
    """One optimizer step on the float batch ``seq`` (B×T×C×H×W); returns the batch's loss (detached).

    The forward pass runs under bfloat16 autocast when ``amp`` (weights and optimizer stay float32).
    ``accumulate`` > 1 splits the batch into that many micro-batches (one forward and backward each,
    their losses weighted by their share of the batch) before the one optimizer step: the same
    gradient as the whole batch for a loss that is a mean over it, in less memory. ``net`` computes
    the loss (a DistributedDataParallel wrapper, or ``model`` itself; its gradients are only averaged
    over the processes at the last micro-batch); ``model``'s trainable parameters are clipped to
    ``recipe.grad_clip``. ``scale`` multiplies the loss that is differentiated (not the one returned):
    with several processes, ``world × this process's share of the global batch``, so that the average
    DistributedDataParallel takes is the global batch's mean even when the shares differ by one."""
    if accumulate == 1:
        with torch.autocast(seq.device.type, dtype=torch.bfloat16, enabled=amp):
            loss = compute_loss(net, recipe, seq, teacher_p, progress=progress)
        optimizer_step(loss * scale if scale != 1.0 else loss, model, opt, sched, recipe.grad_clip)
        return loss.detach()
    opt.zero_grad(set_to_none=True)
    total = seq.new_zeros(())
    parts = [part for part in seq.tensor_split(accumulate) if len(part)]  # fewer sequences than micro-batches
    for i, part in enumerate(parts):
        last = i == len(parts) - 1
        sync = contextlib.nullcontext() if last or not hasattr(net, "no_sync") else net.no_sync()
        with sync:
            with torch.autocast(seq.device.type, dtype=torch.bfloat16, enabled=amp):
                loss = compute_loss(net, recipe, part, teacher_p, progress=progress) * (len(part) / len(seq))
            (loss * scale if scale != 1.0 else loss).backward()
        total += loss.detach().float()
    _clip_and_step(model, opt, sched, recipe.grad_clip)
    return total


class Clocks:
    """Wall-clock and CPU seconds of a run, summed over its resumes.

    ``wall`` / ``cpu`` hold the seconds up to the last :meth:`lap`; :meth:`now` adds those since the
    last :meth:`restart`. Work that should not count (evaluation, checkpoint writing) goes between a
    :meth:`lap` and a :meth:`restart`."""

    def __init__(self, wall: float = 0.0, cpu: float = 0.0) -> None:
        self.wall, self.cpu = float(wall), float(cpu)
        self.restart()

    def restart(self) -> None:
        """Start counting from now."""
        self.t0, self.c0 = time.monotonic(), time.process_time()

    def now(self) -> tuple[float, float]:
        """(wall, CPU) seconds so far, the running stretch included."""
        return self.wall + time.monotonic() - self.t0, self.cpu + time.process_time() - self.c0

    def lap(self) -> None:
        """Add the running stretch to ``wall`` / ``cpu`` (and start a new one)."""
        self.wall, self.cpu = self.now()
        self.restart()


class Loop:
    """One run's training loop: :meth:`run` takes the steps ``step .. stop - 1`` of a ``total``-step schedule.

    Args:
        model: the module whose parameters the optimizer holds (clipped each step).
        recipe: the loss, teacher forcing (``scheduled_sampling``), ``grad_clip``, ``lr`` (for a time budget).
        opt, sched: the optimizer and its scheduler (:class:`NoSchedule` on a time budget).
        device: where the batches go.
        amp: bfloat16 autocast for the forward pass.
        step: the first step to take (a resumed run's saved step).
        total: the schedule's length in steps; ``stop`` (default ``total``): the step to stop at.
        steps_per_epoch: for the ``epoch`` of each log record; ``epoch_base`` is the first epoch's number.
        save: writes the caller's checkpoint (:meth:`checkpoint` calls it with both clocks up to date).
        clocks: the run's :class:`Clocks` (resumed values).
        net: what computes the loss (default ``model``; a DistributedDataParallel wrapper of it).
        time_budget_s: lay the schedule over this many seconds of ``budget_clock`` (``"wall"`` or
            ``"cpu"``) instead of steps; the run stops, annealed, when the budget is spent.
        accumulate: micro-batches per optimizer step (see :func:`train_step`).
        log_path: ``log.jsonl`` to append one record to every ``log_every`` steps and at the last step
            (None: no log, e.g. a process other than rank 0).
        average: turns this process's loss into the one reported (e.g. the mean over processes).
        scale_of: the loss weight of this process at a step (see ``scale`` of :func:`train_step`; None: 1).
        dist: the process group; with several processes the budget's clock is rank 0's (:meth:`spent`),
            so every process takes the same learning rate and stops at the same step.
        desc, progress: the progress bar's label; whether to show it.
    """

    def __init__(
        self,
        *,
        model: nn.Module,
        recipe: Recipe,
        opt: torch.optim.Optimizer,
        sched: Any,
        device: torch.device,
        amp: bool,
        step: int,
        total: int,
        steps_per_epoch: int,
        save: Callable[[], None],
        clocks: Clocks | None = None,
        stop: int | None = None,
        net: nn.Module | None = None,
        time_budget_s: float | None = None,
        budget_clock: str = "wall",
        accumulate: int = 1,
        log_path: Path | None = None,
        log_every: int = 1,
        epoch_base: int = 0,
        average: Callable[[float], float] | None = None,
        scale_of: Callable[[int], float] | None = None,
        dist: Dist | None = None,
        desc: str = "train",
        progress: bool = True,
    ) -> None:
        if isinstance(accumulate, bool) or not isinstance(accumulate, int) or accumulate < 1:
            raise ConfigError(f"accumulate must be a positive int (micro-batches per step), got {accumulate!r}")
        if budget_clock not in BUDGET_CLOCKS:
            raise ConfigError(f"budget_clock must be one of {', '.join(BUDGET_CLOCKS)}, got {budget_clock!r}")
        self.model, self.net, self.recipe, self.opt, self.sched = model, net or model, recipe, opt, sched
        self.device, self.amp, self.accumulate = device, amp, accumulate
        self.step, self.total, self.stop = step, total, total if stop is None else stop
        self.steps_per_epoch, self.epoch_base = steps_per_epoch, epoch_base
        self.save, self.clocks = save, clocks or Clocks()
        self.time_budget_s, self.budget_clock = time_budget_s, budget_clock
        self.log_path, self.log_every, self.average = log_path, log_every, average
        self.desc, self.progress = desc, progress
        self.scale_of, self.dist = scale_of, dist
        self.running: float | None = None  # the smoothed loss shown on the bar and logged as loss_avg
        self._log: IO[str] | None = None

    def spent(self) -> float:
        """Budget seconds used so far, on the budget's clock (rank 0's, the same on every process)."""
        wall, cpu = self.clocks.now()
        value = cpu if self.budget_clock == "cpu" else wall
        if self.dist is not None and self.dist.world > 1:
            value = self.dist.from_main([value], self.device)[0]
        return value

    @property
    def fraction(self) -> float:
        """How far through the schedule the next step is: ``step / total``, or on a time budget the
        budget's share spent if that is further (≥ 1: this is the last step)."""
        frac = self.step / self.total
        if self.time_budget_s is not None:
            frac = max(frac, self.spent() / self.time_budget_s)
        return frac

    def write_log(self, record: dict[str, Any]) -> None:
        """Append ``record`` to ``log.jsonl`` (flushed: on disk after every step), if this loop logs."""
        if self._log is not None:
            self._log.write(json.dumps(record) + "\n")
            self._log.flush()

    def checkpoint(self) -> None:
        """Write the caller's checkpoint with both clocks up to date; its own time is left out of them."""
        self.clocks.lap()
        self.save()
        self.clocks.restart()

    def run(self, batch_of: Callable[[int], Tensor], after_step: Callable[[float], None] | None = None) -> None:
        """Train from ``step`` to ``stop``: ``batch_of(step)`` gives each step's float batch on the device;
        ``after_step(loss)`` runs after each (the step already counted). It may end the run early by
        setting ``stop = step``. Ctrl-C writes a checkpoint and re-raises."""
        from tqdm.auto import tqdm

        self._log = open(self.log_path, "a") if self.log_path is not None else None
        bar = tqdm(
            total=self.stop,
            initial=self.step,
            desc=self.desc,
            unit="step",
            disable=not self.progress,
            mininterval=1.0 if sys.stderr.isatty() else 60.0,
        )
        self.clocks.restart()
        try:
            while self.step < self.stop:
                epoch = self.step // self.steps_per_epoch + self.epoch_base
                seq = batch_of(self.step)
                frac = self.fraction
                if self.time_budget_s is not None:
                    for group in self.opt.param_groups:
                        group["lr"] = one_cycle_lr(self.recipe.lr, frac)
                teacher_p = teacher_forcing_p(frac, self.recipe.scheduled_sampling)
                loss = train_step(
                    self.net,
                    self.model,
                    self.recipe,
                    self.opt,
                    self.sched,
                    seq,
                    teacher_p=teacher_p,
                    progress=min(frac, 1.0),
                    amp=self.amp,
                    accumulate=self.accumulate,
                    scale=1.0 if self.scale_of is None else self.scale_of(self.step),
                )
                self.step += 1
                if self.time_budget_s is not None and frac >= 1.0:
                    self.stop = self.step  # the clock's schedule is done
                value = float(loss)
                if self.average is not None:
                    value = self.average(value)
                self.running = value if self.running is None else 0.98 * self.running + 0.02 * value
                bar.update(1)
                bar.set_postfix(loss=f"{self.running:.5f}", epoch=epoch, refresh=False)
                if self.step % self.log_every == 0 or self.step == self.stop:
                    wall, cpu = self.clocks.now()
                    self.write_log(
                        {
                            "step": self.step,
                            "epoch": epoch,
                            "loss": value,
                            "loss_avg": self.running,
                            "lr": self.opt.param_groups[0]["lr"],
                            "teacher_p": teacher_p,
                            "wall_clock_s": wall,
                            "cpu_s": cpu,
                            "time": time.time(),
                        }
                    )
                if after_step is not None:
                    after_step(value)
        except KeyboardInterrupt:
            self.checkpoint()
            raise
        finally:
            bar.close()
            if self._log is not None:
                self._log.close()
                self._log = None
