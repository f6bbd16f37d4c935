"""What a fine-tune did, and how its step budget is planned: :func:`plan_steps`, :class:`FinetuneHistory`.

Split from :mod:`stzoo.training.finetune` (which re-exports everything public here).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any, NamedTuple

from stzoo.data.clips import arg
from stzoo.errors import InputError
from stzoo.interfaces import PredictorLike
from stzoo.training.checkpoints import STATE_DICT

__all__ = [
    "FinetuneResult",
    "FinetuneHistory",
    "FinetuneWarning",
    "CHECKPOINT_NAME",
    "HISTORY_NAME",
    "LOG_NAME",
    "DEFAULT_LR",
    "AUTO_PASSES",
    "AUTO_MIN_STEPS",
    "AUTO_MAX_STEPS",
    "TRAIN_CHECK_CLIPS",
    "MAX_VALIDATIONS",
    "plan_steps",
    "replan",
    "verdict",
]

CHECKPOINT_NAME = "checkpoint.pt"
HISTORY_NAME = "history.json"
LOG_NAME = "log.jsonl"

#: the default peak learning rate (AdamW, OneCycle); chosen by measurement, see docs/finetuning.md
DEFAULT_LR = 1e-2
#: ``steps="auto"``: enough optimizer steps for every training clip to be seen about this many times ...
AUTO_PASSES = 40
#: ... but never fewer than this many steps ...
AUTO_MIN_STEPS = 100
#: ... nor more than this many (a time cap: 2000 × 0.26 s, the step of tau-mmnist-s at 32×48 RGB measured
#: on one CPU core, is about 9 minutes; see :func:`plan_steps`)
AUTO_MAX_STEPS = 2000
#: at most this many training clips are scored (model and copy-last-frame) when there is no validation data
TRAIN_CHECK_CLIPS = 256
#: with more epochs than this (small data, many short epochs), validation, the choice of the best
#: weights and the end-of-epoch checkpoint happen every ``ceil(epochs / MAX_VALIDATIONS)`` epochs
MAX_VALIDATIONS = 20


class FinetuneWarning(UserWarning):
    """Issued when a fine-tune ends with a model that does not beat copying the last frame, or
    without validation data."""


def plan_steps(
    clips_per_process: int, batch_size: int, *, steps: int | str | None = "auto", epochs: int | None = None
) -> dict[str, Any]:
    """The step budget of a fine-tune: ``steps``, ``epochs``, ``steps_per_epoch`` and the ``rule`` in words.

    ``steps="auto"`` (the default) gives ``ceil(AUTO_PASSES · clips / batch_size)`` optimizer steps,
    clamped to [``AUTO_MIN_STEPS``, ``AUTO_MAX_STEPS``]: every training clip is seen about
    ``AUTO_PASSES`` times on a small data set, a tiny one still gets enough steps to adapt, and a
    large one is capped (fewer passes over more data). ``steps=N`` asks for exactly ``N``;
    ``epochs=N`` (instead of ``steps``) for ``N`` full passes. An epoch is one pass over the
    training clips; validation and early stopping happen after each, and the last epoch is
    shortened when the budget ends inside it.
    """
    per_epoch = max(1, math.ceil(clips_per_process / batch_size))
    if epochs is not None:
        if steps not in (None, "auto"):
            raise InputError(
                f"give {arg('steps', '--steps')} or {arg('epochs', '--epochs')}, not both (got "
                f"{arg(f'steps={steps!r}', f'--steps {steps}')} and "
                f"{arg(f'epochs={epochs!r}', f'--epochs {epochs}')})"
            )
        total, rule = per_epoch * epochs, f"{epochs} epoch(s) of {per_epoch} step(s)"
    elif steps in (None, "auto"):
        wanted = math.ceil(AUTO_PASSES * clips_per_process / batch_size)
        total = min(AUTO_MAX_STEPS, max(AUTO_MIN_STEPS, wanted))
        rule = (
            f"auto: {AUTO_PASSES} passes over {clips_per_process} clip(s) in batches of {batch_size} = {wanted} "
            f"step(s), kept within [{AUTO_MIN_STEPS}, {AUTO_MAX_STEPS}]"
        )
    else:
        total, rule = int(steps), f"{int(steps)} step(s) requested"
    n_epochs = math.ceil(total / per_epoch)
    return {
        "steps": total,
        "epochs": n_epochs,
        "steps_per_epoch": per_epoch,
        "rule": rule,
        "passes": round(total * batch_size / max(1, clips_per_process), 2),
        "validate_every": math.ceil(n_epochs / MAX_VALIDATIONS),
    }


def replan(plan: dict[str, Any], steps: int) -> dict[str, Any]:
    """``plan`` (from :func:`plan_steps`) with ``steps`` optimizer steps instead, the same epoch length."""
    per_epoch = plan["steps_per_epoch"]
    n_epochs = math.ceil(steps / per_epoch)
    return {
        **plan,
        "steps": steps,
        "epochs": n_epochs,
        "passes": round(plan["passes"] * steps / max(1, plan["steps"]), 2),
        "validate_every": math.ceil(n_epochs / MAX_VALIDATIONS),
    }


#: what a fine-tuning checkpoint holds (``step_log``, the N×2 [step, loss] of every step so far, is optional)
_CHECKPOINT_KEYS: dict[str, Any] = {
    "fingerprint": dict,
    "model": STATE_DICT,
    "optimizer": dict,
    "scheduler": dict,
    "rng": list,
    "step": int,
    "wall_clock_s": (int, float),
    "bad_epochs": int,
    "epoch_loss": (tuple, list),
    "epochs": list,
    "stopped_early": bool,
    "best_epoch": (int, type(None)),
    "best": (dict, type(None)),
}


@dataclass
class FinetuneHistory:
    """What happened during :func:`finetune`.

    Attributes:
        epochs: one dict per finished epoch: ``epoch`` (1-based), ``step``, ``train_loss`` (mean over
            the epoch and over all processes), ``lr``, ``wall_clock_s`` and, with validation data,
            ``val`` (``mse``, ``mae``, ``ssim``, ``psnr`` and ``sequences`` over all processes, see
            :mod:`stzoo.metrics`; ``local_sequences``: how many of those this process evaluated).
            With more than ``MAX_VALIDATIONS`` epochs only every ``plan["validate_every"]``-th epoch
            (and the last) is validated.
        steps: ``{"step", "loss"}`` for every optimizer step run by this call (loss averaged over
            processes). ``history.json`` in the output folder lists every step of the run, across
            resumes.
        best_epoch: the epoch whose weights were kept (lowest validation MSE, by the ``selection`` rule;
            the last epoch when there is no validation data; ``None`` when no validated state passed the
            rule).
        best: that epoch's validation metrics (``None`` without validation data).
        stopped_early: whether early stopping ended the run.
        out_dir: the output folder.
        data: a description of the training and validation data.
        adaptation: what :func:`stzoo.training.adapt.adapt` changed (see :class:`stzoo.training.adapt.AdaptReport`).
        world_size: how many processes trained.
        plan: the step budget (see :func:`plan_steps`): ``steps``, ``epochs``, ``steps_per_epoch``,
            ``passes`` (times each training clip is seen), ``rule`` (how it was chosen).
        persistence: the copy-last-frame baseline (every future frame = the last input frame) on
            the validation clips, the same metrics as ``best``; ``None`` without validation data.
        train_check: without validation data only: ``model`` (the kept weights) and
            ``copy_last_frame`` metrics on up to 256 *training* clips, and ``clips``. A sanity
            check, not a held-out measurement.
        beats_persistence: whether the kept model's MSE is below copy-last-frame's (on the
            validation clips, else on the training clips); ``None`` before the end.
        warnings: plain-words warnings (also issued as :class:`FinetuneWarning`).
        head: ``"persistence"`` (forecast = last frame + learned change, see
            :mod:`stzoo.models.persistence`) or ``"direct"`` (the model as it is).
        start: the validation of the starting model, before any step of stage 2 (``{"epoch": 0, "step": 0,
            "val": ...}``); a candidate like every epoch, so the folder never keeps a model worse than
            the start. With the persistence head (version 2 or 3) the start is the head trained alone (stage
            1, the base not run) when that beat copy-last, else copy-last itself; ``start["head_stage"]`` records
            stage 1 (``steps``, ``validations``, ``kept``, ``best_epoch``, ``seconds``). ``None`` without
            validation data.
        persistence_clips: copy-last-frame on each validation video apart (``video`` names it; the
            metrics of ``persistence``); every validated record (``start``, ``epochs``) has the same list as
            ``val_clips`` and, with ``select="every-clip"``, ``worse_than_copy_last_on``: the videos on
            which that state is worse than copy-last (a state with any is never kept).
        selection: the rule that chose the kept state, in words (empty without validation data).
        kept: what the folder holds: ``"fine-tuned"`` (the best validated state), or
            ``"persistence-equivalent"`` when nothing beat copying the last frame (the model with its
            persistence head at the copy-last start; also for a static clip).
    """

    epochs: list[dict[str, Any]] = field(default_factory=list)
    steps: list[dict[str, float]] = field(default_factory=list)
    best_epoch: int | None = None
    best: dict[str, float] | None = None
    stopped_early: bool = False
    out_dir: str = ""
    data: dict[str, Any] = field(default_factory=dict)
    adaptation: dict[str, Any] = field(default_factory=dict)
    world_size: int = 1
    plan: dict[str, Any] = field(default_factory=dict)
    persistence: dict[str, float] | None = None
    train_check: dict[str, Any] | None = None
    beats_persistence: bool | None = None
    warnings: list[str] = field(default_factory=list)
    head: str = "persistence"
    start: dict[str, Any] | None = None
    kept: str = ""
    persistence_clips: list[dict[str, Any]] = field(default_factory=list)
    selection: str = ""

    @property
    def train_losses(self) -> list[float]:
        """The per-step losses of this call, in order."""
        return [s["loss"] for s in self.steps]

    @property
    def head_trained(self) -> bool:
        """Whether the start of stage 2 (``start``, epoch 0) is the persistence head trained alone in stage 1
        (a fine-tuned state), not the copy-last start."""
        return bool(self.start and (self.start.get("head_stage") or {}).get("kept"))

    def summary(self) -> str:
        """A few lines for people: budget, the kept model against copy-last-frame, warnings."""
        p = self.plan
        lines = [
            f"trained {p.get('steps', '?')} step(s) in {len(self.epochs)} epoch(s) ({p.get('rule', '')})"
            + (", stopped early" if self.stopped_early else "")
        ]
        if self.kept.startswith("persistence-equivalent"):
            lines.append(
                "kept: the persistence-equivalent model (it forecasts the last observed frame): nothing "
                "beat copying the last frame" + (" (the footage never changes)" if "static" in self.kept else "")
            )
        elif self.best is not None and self.persistence is not None:
            b, c = self.best, self.persistence
            lines.append(
                f"validation ({b['sequences']} clips), best "
                + ("state: the head trained alone (stage 1)" if self.best_epoch == 0 else f"epoch {self.best_epoch}")
                + f": MSE {b['mse']:.4g}, "
                f"SSIM {b['ssim']:.4g}; copy-last-frame on the same clips: MSE {c['mse']:.4g}, "
                f"SSIM {c['ssim']:.4g} ({verdict(b['mse'], c['mse'])})"
            )
        elif self.train_check is not None:
            m, c = self.train_check["model"], self.train_check["copy_last_frame"]
            lines.append(
                f"no validation data; on {self.train_check['clips']} training clips (seen in training): "
                f"MSE {m['mse']:.4g}, SSIM {m['ssim']:.4g}; copy-last-frame: MSE {c['mse']:.4g}, "
                f"SSIM {c['ssim']:.4g} ({verdict(m['mse'], c['mse'])})"
            )
        lines += [f"warning: {w}" for w in self.warnings]
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class FinetuneResult(NamedTuple):
    """``(predictor, history)``: the fine-tuned model (best weights) and what happened."""

    predictor: PredictorLike
    history: FinetuneHistory


def verdict(mse: float, baseline: float) -> str:
    """How an MSE compares with copy-last-frame's, in words."""
    if mse < baseline:
        return f"{100 * (1 - mse / baseline):.0f} % lower than copy-last-frame"
    if baseline <= 0:  # copy-last is exact (static footage): nothing can beat it
        return "copy-last-frame is exact here (MSE 0): nothing can beat repeating the last frame"
    return f"{mse / baseline:.2g}× copy-last-frame's: NOT better than repeating the last frame"
