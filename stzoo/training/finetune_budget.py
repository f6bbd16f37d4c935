"""How long a fine-tune will take, measured before it starts, and the step budget that fits the time.

``steps="auto"`` first sizes the budget from the data (:func:`stzoo.training.finetune_history.plan_steps`:
about ``AUTO_PASSES`` passes over the training clips). On a slow machine that can take far longer
than anyone waits for a fine-tune, so :func:`fit_to_time` then times a few training steps and one
validation batch of *this* model on *this* data and device, and keeps the number of steps that,
with every validation, fits in ``time_budget`` minutes. :func:`estimate_text` says what was planned,
in words, before the first step.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor, nn

from stzoo.models import Recipe, eval_mode
from stzoo.training.evaluation import predict_future
from stzoo.training.losses import compute_loss

__all__ = [
    "DEFAULT_TIME_BUDGET",
    "MIN_TIMED_STEPS",
    "BUDGET_CLOCKS",
    "clock_of",
    "time_step",
    "time_forward",
    "fit_to_time",
    "estimate_text",
]

#: ``time_budget`` by default: minutes of training and validation a default fine-tune plans for
DEFAULT_TIME_BUDGET = 6.0
#: a time budget never plans fewer steps than this (the estimate then says it runs over)
MIN_TIMED_STEPS = 10
#: ``budget_clock``: what the timed steps are measured on. ``"wall"`` (default): elapsed seconds, so the run
#: fits ``time_budget`` minutes on this machine as loaded now (a busy machine plans fewer steps); ``"cpu"``:
#: this process's CPU seconds (all its threads), so the plan is the one a quiet machine would make and the
#: run uses about ``time_budget`` CPU-minutes however long other jobs make it take
BUDGET_CLOCKS = ("wall", "cpu")


def clock_of(budget_clock: str) -> Callable[[], float]:
    """The clock of ``budget_clock`` (one of ``BUDGET_CLOCKS``)."""
    return time.process_time if budget_clock == "cpu" else time.perf_counter


def time_step(
    net: nn.Module,
    model: nn.Module,
    recipe: Recipe,
    batch: Tensor,
    *,
    amp: bool,
    repeats: int = 2,
    clock: Callable[[], float] = time.perf_counter,
) -> float:
    """Seconds of one training step (forward + backward) on ``batch``, the median of ``repeats`` after a
    warm-up, on ``clock`` (see :func:`clock_of`). The model's weights and running statistics are put back
    afterwards and no optimizer state is touched, so timing changes nothing about the run."""
    saved = {k: v.detach().clone() for k, v in model.state_dict().items()}
    times = []
    try:
        for i in range(repeats + 1):
            t0 = clock()
            with torch.autocast(batch.device.type, dtype=torch.bfloat16, enabled=amp):
                loss = compute_loss(net, recipe, batch, 0.0, progress=0.0)
            loss.backward()
            if batch.device.type == "cuda":
                torch.cuda.synchronize(batch.device)
            if i:
                times.append(clock() - t0)
    finally:
        for p in model.parameters():
            p.grad = None
        model.load_state_dict(saved)
    times.sort()
    return times[len(times) // 2] * 1.15  # the optimizer update and bookkeeping on top of forward + backward


@torch.no_grad()
def time_forward(
    model: nn.Module, batch: Tensor, frames_in: int, frames_out: int, clock: Callable[[], float] = time.perf_counter
) -> float:
    """Seconds of one evaluation forward pass on ``batch`` (B×(T_in+T_out)×C×H×W), after a warm-up, on
    ``clock``."""
    with eval_mode(model):
        predict_future(model, batch[:, :frames_in], frames_out)
        t0 = clock()
        predict_future(model, batch[:, :frames_in], frames_out)
        if batch.device.type == "cuda":
            torch.cuda.synchronize(batch.device)
        return clock() - t0


def fit_to_time(
    plan: dict[str, Any], *, step_s: float, val_s: float, minutes: float | None, budget_clock: str = "wall"
) -> dict[str, Any]:
    """``plan`` with its step budget cut to what fits in ``minutes`` (None: no cut), and the estimate.

    ``step_s``: seconds per training step; ``val_s``: seconds per validation (0 without validation data).
    Validation happens at step 0 and at most ``MAX_VALIDATIONS`` times more. Adds ``step_s``,
    ``validation_s`` and ``estimate_s`` (the planned run's training and validation seconds) and, where
    the time cut the budget, ``time_budget_min`` and a longer ``rule``."""
    from stzoo.training.finetune_history import MAX_VALIDATIONS, replan

    plan = dict(plan)
    validations = 1 + min(plan["epochs"], MAX_VALIDATIONS)
    if minutes is not None:
        room = minutes * 60.0 - validations * val_s
        fits = max(MIN_TIMED_STEPS, math.floor(room / max(step_s, 1e-9)))
        if fits < plan["steps"]:
            wanted = plan["steps"]
            plan = replan(plan, fits)
            what = "min" if budget_clock == "wall" else "CPU-min"
            plan["rule"] += f"; cut from {wanted} to fit {minutes:g} {what} at the measured {step_s:.3g} s per step" + (
                f" and {val_s:.3g} s per validation" if val_s else ""
            )
            plan["time_budget_min"] = minutes
    plan["budget_clock"] = budget_clock
    validations = 1 + min(plan["epochs"], MAX_VALIDATIONS)
    plan["step_s"], plan["validation_s"] = round(step_s, 4), round(val_s, 3)
    plan["estimate_s"] = round(plan["steps"] * step_s + validations * val_s, 1)
    return plan


def estimate_text(plan: dict[str, Any], device: str) -> str:
    """One line for people, printed before the first step."""
    est = plan["estimate_s"]
    when = f"{est / 60:.1f} min" if est >= 90 else f"{est:.0f} s"
    return (
        f"finetune plan: {plan['steps']} step(s) in {plan['epochs']} epoch(s) ({plan['rule']}); "
        f"about {when}{' of CPU time' if plan.get('budget_clock') == 'cpu' else ''} on {device} "
        f"({plan['step_s']:.3g} s per step"
        + (f", {plan['validation_s']:.3g} s per validation" if plan["validation_s"] else "")
        + ")"
    )
