"""The fine-tuning run: adapt, train with validation, keep the best state, write the folder.

Split from :mod:`stzoo.training.finetune`, which checks the arguments and prepares the data first.
"""

from __future__ import annotations

import json
import math
import sys
import time
import warnings
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from stzoo.data.clips import ClipDataset, arg
from stzoo.errors import ConfigError
from stzoo.interfaces import PredictorLike
from stzoo.models.persistence import has_persistence_head, with_persistence
from stzoo.runtime import cpu_description, native_bf16
from stzoo.training.adapt import adapt
from stzoo.training.checkpoints import (
    atomic_write_text,
    capture_rng_state,
    load_checkpoint,
    refuse_other_run,
    refusing_unfit_state,
    restore_rng_state,
    restore_training_state,
    save_training_checkpoint,
)
from stzoo.training.distributed import Dist, sync_batchnorm
from stzoo.training.evaluation import evaluate, evaluate_copy_last
from stzoo.training.finetune_budget import clock_of, estimate_text, fit_to_time, time_forward, time_step
from stzoo.training.finetune_card import KEPT_FINETUNED, KEPT_PERSISTENCE, KEPT_STATIC, CardFacts, card_entry, printable
from stzoo.training.finetune_data import _apply_freeze, _data_summary, _frozen_norm_layers, augment_batch
from stzoo.training.finetune_history import (
    _CHECKPOINT_KEYS,
    CHECKPOINT_NAME,
    HISTORY_NAME,
    LOG_NAME,
    TRAIN_CHECK_CLIPS,
    FinetuneHistory,
    FinetuneResult,
    FinetuneWarning,
    plan_steps,
    replan,
)
from stzoo.training.loop import Clocks, Loop, make_optimizer, train_step
from stzoo.training.train import Recipe, _hardware

__all__ = ["run", "Options", "SELECTIONS", "SAFE_TOLERANCE"]

#: ``select``: how the kept state is chosen among the validated ones (step 0 included). ``"every-clip"``:
#: the lowest validation MSE among the states whose MSE is not above copy-last's and whose SSIM is not below it
#: on ANY validation video;
#: ``"mean"``: the lowest validation MSE over all validation clips (the rule before)
SELECTIONS = ("every-clip", "mean")
#: ``select="every-clip"``: a state counts as worse than copy-last on a video when its MSE there exceeds
#: copy-last's by more than this fraction, or its SSIM is lower by more than this: only float rounding is
#: forgiven (the start with a persistence head IS copy-last), so "never worse than persistence on its own
#: validation clips" holds for every clip, by either measure
SAFE_TOLERANCE = 1e-6
#: with ``steps="auto"`` and a time budget: the share of ``time_budget`` that stage 1 (the persistence head
#: trained alone) may use at most; stage 2 (the head with the base) is planned for the rest
HEAD_STAGE_SHARE = 0.2


@dataclass
class Options:
    """The settings of :func:`finetune` that are not part of the :class:`~stzoo.training.train.Recipe`."""

    out_dir: Path
    resume: bool
    channels: int
    size: tuple[int, int]
    freeze: str | Sequence[str] | None
    amp: bool | None
    patience: int | None
    min_delta: float
    max_steps: int | None
    checkpoint_every: int
    name: str | None
    push_to_hub: str | None
    progress: bool
    command: str | None
    steps: int | str | None
    epochs: int | None
    native: bool
    split_note: str
    auto_val: bool
    cli: bool
    head: str = "persistence"
    augment: tuple[str, ...] = ()
    time_budget: float | None = None
    static: bool = False
    select: str = "every-clip"
    budget_clock: str = "wall"


def _state(model: nn.Module) -> dict[str, Tensor]:
    return {k: v.detach().to("cpu").clone() for k, v in model.state_dict().items()}


def _with_head(base: PredictorLike) -> PredictorLike:
    """``base`` (adapted) with a persistence head at its copy-last start, unless it has one already."""
    if has_persistence_head(base.model):
        return base
    wrapped = with_persistence(base.model)  # the default width and the newest version: recorded in its config
    head = {k: getattr(wrapped.config, k) for k in ("head_hidden", "head_version")}
    entry = base.entry.replace(architecture=wrapped.arch, config={**dict(base.entry.config), **head})
    return base.derive(wrapped, base.spec, entry=entry)


def _refuse_existing(ckpt_path: Path, o: Options) -> None:
    if ckpt_path.exists() and not o.resume:
        raise ConfigError(
            f"{o.out_dir} already holds a fine-tuning checkpoint ({CHECKPOINT_NAME}): pass "
            + arg("resume=True", "--resume")
            + " to continue that run, or choose another output folder ("
            + arg("out_dir", "--out")
            + ")"
        )


def _remedy() -> str:
    return (
        "Delete it and run without " + arg("resume=True", "--resume") + " to start afresh, or choose "
        "another output folder (" + arg("out_dir", "--out") + ")."
    )


def run(
    predictor: PredictorLike,
    arch: str,
    train_ds: ClipDataset,
    val_ds: ClipDataset | None,
    recipe: Recipe,
    o: Options,
    dist_: Dist,
    dev: torch.device,
) -> FinetuneResult:
    """The training loop of :func:`finetune`, on checked and converted data."""
    from torch.utils.data import DistributedSampler

    out = o.out_dir
    ckpt_path = out / CHECKPOINT_NAME
    _refuse_existing(ckpt_path, o)
    ck = load_checkpoint(ckpt_path, dev, _CHECKPOINT_KEYS, remedy=_remedy()) if ckpt_path.exists() else None
    torch.manual_seed(recipe.seed)
    adapted, report = adapt(
        predictor,
        channels=o.channels,
        height=o.size[0],
        width=o.size[1],
        frames_in=recipe.frames_in,
        frames_out=recipe.frames_out,
    )
    base = _with_head(adapted) if o.head == "persistence" or o.static else adapted
    model = base.model.to(dev).float().train()
    frozen = _apply_freeze(model, o.freeze)
    frozen_norms = _frozen_norm_layers(model, o.freeze)
    sampler = DistributedSampler(
        train_ds, num_replicas=dist_.world, rank=dist_.rank, shuffle=True, seed=recipe.seed, drop_last=False
    )
    planned_steps = o.steps
    if ck is not None and o.steps in (None, "auto") and o.epochs is None:
        recorded = ck["fingerprint"].get("total_steps")  # the budget the run was planned with
        if isinstance(recorded, int) and not isinstance(recorded, bool) and 1 <= recorded <= 10**9:
            planned_steps = recorded  # (anything else: refused below as another run's fingerprint)
    plan = plan_steps(len(sampler), recipe.batch_size, steps=planned_steps, epochs=o.epochs)
    plan["train_clips"] = len(train_ds)
    net: nn.Module = model
    if dist_.world > 1:
        from torch.nn.parallel import DistributedDataParallel

        net = DistributedDataParallel(model, device_ids=[dev.index] if dev.type == "cuda" else None)
    amp = o.amp if o.amp is not None else native_bf16(dev)
    if o.static:
        plan = replan(plan, 0) | {"rule": "none: the footage never changes, copying the last frame is exact"}
    elif ck is None:  # time a few steps of this model on this data and device; fit "auto" to time_budget
        timed = replace(recipe, epochs=plan["epochs"])
        step_s, val_s = _time_step_and_validation(
            net, model, timed, train_ds, val_ds, o, dev, amp=amp, world=dist_.world
        )
        step_s, val_s = (v / dist_.world for v in dist_.all_sum([step_s, val_s], dev))  # one plan for all ranks
        auto = o.steps in (None, "auto") and o.epochs is None
        minutes = o.time_budget if auto else None
        if minutes is not None and _stage1_applies(model, val_ds, o):  # stage 1 (the head alone) gets its share
            minutes *= 1 - HEAD_STAGE_SHARE
        plan = fit_to_time(plan, step_s=step_s, val_s=val_s, minutes=minutes, budget_clock=o.budget_clock)
        if o.progress and dist_.main:
            print(estimate_text(plan, _hardware(dev)), file=sys.stderr, flush=True)
    recipe = replace(recipe, epochs=max(1, plan["epochs"]))
    steps_per_epoch, total = plan["steps_per_epoch"], plan["steps"]
    opt, sched = make_optimizer([p for p in model.parameters() if p.requires_grad], recipe, total)
    base_name = predictor.name or f"{arch}-custom"
    data_info = {
        "train": printable(train_ds.describe() + "; " + _data_summary(train_ds.videos)),
        "validation": printable(val_ds.describe() + "; " + _data_summary(val_ds.videos)) if val_ds else None,
        "split": printable(o.split_note),
        "channels": o.channels,
        "size": list(o.size),
        "native_size": o.native,
        "frames_in": recipe.frames_in,
        "frames_out": recipe.frames_out,
        "augment": list(o.augment),
        "selection": o.select if val_ds is not None else None,
    }
    fingerprint = {
        "arch": base.entry.architecture,
        "config": dict(base.entry.config),
        "recipe": asdict(recipe),
        "train_clips": len(train_ds),
        "val_clips": len(val_ds) if val_ds else 0,
        "world_size": dist_.world,
        "frozen": frozen,
        "augment": list(o.augment),
        "select": o.select,
    }
    if o.epochs is None:  # with epochs=N the recipe fixes the budget; with steps, record it
        fingerprint["total_steps"] = total
    history = FinetuneHistory(
        out_dir=str(out),
        data=data_info,
        adaptation=report.to_dict(),
        world_size=dist_.world,
        plan=plan,
        head=o.head,
        selection=_selection_text(o.select) if val_ds is not None else "",
    )
    if val_ds is not None:  # the baseline every run is compared with, on the same validation clips
        history.persistence, history.persistence_clips = _measure_clips(None, val_ds, recipe, dist_, dev)
    step, wall, cpu, bad_epochs = 0, 0.0, 0.0, 0
    loss_sum, loss_n = 0.0, 0  # this epoch's training loss so far (kept across a resume)
    best_state: dict[str, Tensor] | None = None
    start_state = _state(model)  # step 0: with the persistence head, exactly copy-last
    head_stage = None
    if ck is None:  # stage 1: the persistence head alone, the base not run (its best state starts stage 2)
        head_stage = _train_head_alone(model, train_ds, val_ds, recipe, o, history, dev)
    earlier_steps: list[dict[str, float]] = []  # the steps of the calls before a resume (for history.json)
    if ck is not None:
        refuse_other_run(
            ckpt_path,
            ck["fingerprint"],
            fingerprint,
            lead="belongs to another fine-tuning run",
            advice="To resume it, use the same model, data and settings (e.g. the same "
            + arg("lr, steps / epochs, batch_size", "--lr, --steps / --epochs, --batch-size")
            + "); otherwise choose another output folder ("
            + arg("out_dir", "--out")
            + ")",
        )
        with refusing_unfit_state(ckpt_path, _remedy(), "this run"):
            if not 0 <= ck["step"] <= total or not all(
                isinstance(r, dict) and isinstance(r.get("epoch"), int) for r in ck["epochs"]
            ):
                raise ValueError("its step count or epoch records are out of range")
            if ck["best"] is not None and not isinstance(ck["best"].get("mse"), (int, float)):
                raise ValueError("its best epoch has no validation MSE")
            restore_training_state(ck, model, opt, sched)
            rngs = ck["rng"]
            restore_rng_state(rngs[dist_.rank] if dist_.rank < len(rngs) else rngs[0], dev)
            loss_sum, loss_n = (float(v) for v in ck["epoch_loss"])
            loss_n = int(loss_n)
            log_t = ck.get("step_log")
            if log_t is not None:
                earlier_steps = [{"step": int(a), "loss": float(b)} for a, b in log_t.reshape(-1, 2).tolist()]
        step, bad_epochs = ck["step"], ck["bad_epochs"]
        wall, cpu = float(ck["wall_clock_s"]), float(ck.get("cpu_s", 0.0))
        history.epochs, history.stopped_early = ck["epochs"], ck["stopped_early"]
        history.best_epoch, history.best = ck["best_epoch"], ck["best"]
        history.start = ck.get("start")
        if history.best_epoch is not None and (out / "model.safetensors").is_file():
            from stzoo.zoo.hub import load_safetensors

            best_state = load_safetensors(out / "model.safetensors")
            if set(best_state) != set(start_state):  # the folder holds another kind of model: ignore it
                best_state = None
    if dist_.main:
        out.mkdir(parents=True, exist_ok=True)
    clocks = Clocks(wall, cpu)
    facts = CardFacts(
        base_name=base_name,
        data_info=data_info,
        changes=report.changes,
        reinitialised=report.reinitialised,
        recipe=asdict(recipe),
        budget=plan["rule"],
        hardware=_hardware(dev) + (f" × {dist_.world} processes" if dist_.world > 1 else ""),
        dtype="bfloat16" if amp else "float32",
        cpu=cpu_description(),
        command=o.command or "stzoo.training.finetune",
        split_note=o.split_note,
        head=o.head,
        selection=history.selection,
    )

    def make_predictor(
        state: dict[str, Tensor] | None, rec: dict[str, Any] | None, kept: str = KEPT_FINETUNED, of=None
    ) -> PredictorLike:
        of = of or base
        m = of.model if state is None else _fresh(of, state)
        entry = card_entry(
            of.entry,
            history,
            facts,
            rec,
            kept=kept,
            steps=loop.step,
            epochs=len(history.epochs),
            wall_clock_s=clocks.wall,
        )
        return of.derive(m, of.spec, name=o.name or f"{base_name}-finetuned", entry=entry)

    def write_model(
        state: dict[str, Tensor] | None, rec: dict[str, Any] | None, kept: str = KEPT_FINETUNED, of=None
    ) -> None:
        if dist_.main:
            make_predictor(state, rec, kept, of).save_pretrained(out)

    def write_history() -> None:  # every epoch and every step of the run, this call's and the earlier ones
        doc = history.to_dict()
        doc["steps"] = earlier_steps + doc["steps"]
        atomic_write_text(out / HISTORY_NAME, json.dumps(doc, indent=2, default=str))

    def save_checkpoint() -> None:
        rngs = dist_.gather(capture_rng_state(dev))
        if dist_.main:
            steps = earlier_steps + history.steps
            step_log = torch.tensor([[s["step"], s["loss"]] for s in steps], dtype=torch.float64).reshape(-1, 2)
            save_training_checkpoint(
                ckpt_path,
                model=model,
                optimizer=opt,
                scheduler=sched,
                step=loop.step,
                wall_clock_s=clocks.wall,
                cpu_s=clocks.cpu,
                fingerprint=fingerprint,
                rng=rngs,
                bad_epochs=bad_epochs,
                epoch_loss=(loss_sum, loss_n),
                epochs=history.epochs,
                stopped_early=history.stopped_early,
                best_epoch=history.best_epoch,
                best=history.best,
                step_log=step_log,
                **({"start": history.start} if history.start is not None else {}),
            )
            write_history()
        dist_.barrier()

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
        stop=step if history.stopped_early else total if o.max_steps is None else min(total, o.max_steps),
        steps_per_epoch=steps_per_epoch,
        epoch_base=1,
        save=save_checkpoint,
        clocks=clocks,
        log_path=out / LOG_NAME if dist_.main else None,
        average=lambda v: dist_.all_sum([v], dev)[0] / dist_.world,
        desc="finetune",
        progress=o.progress and dist_.main,
    )
    if ck is None and val_ds is not None:  # step 0 is a candidate too: never keep worse than the start
        history.start = {"epoch": 0, "step": 0}
        history.start["val"], history.start["val_clips"] = _measure_clips(model, val_ds, recipe, dist_, dev)
        if head_stage is not None:
            history.start["head_stage"] = head_stage
        worse = _worse_clips(history.start, history, o.select)
        if worse is not None:
            history.start["worse_than_copy_last_on"] = worse
        if not worse:  # (head="direct": a start worse than copy-last on a clip is no candidate)
            history.best_epoch, history.best, best_state = 0, history.start["val"], _state(model)
            write_model(best_state, history.start)
        clocks.lap()
    epoch_order: dict[int, list[int]] = {}  # the current epoch's shuffled clip order

    def batch_of(s: int) -> Tensor:
        epoch, i = divmod(s, steps_per_epoch)
        if epoch not in epoch_order:  # a new epoch (or the first of this call): its order, training mode
            epoch_order.clear()
            sampler.set_epoch(epoch)
            epoch_order[epoch] = list(sampler)
            net.train()
            for norm in frozen_norms:  # frozen BatchNorm layers keep (and use) their running statistics
                norm.eval()
        idx = epoch_order[epoch][i * recipe.batch_size : (i + 1) * recipe.batch_size]
        batch = augment_batch(train_ds.take(idx), o.augment, recipe.seed * 7919 + dist_.rank, s)
        return batch.to(dev, non_blocking=True)

    def after_step(value: float) -> None:
        """Record the step; checkpoint every ``checkpoint_every`` steps; at the end of an epoch validate,
        keep the best weights, checkpoint and stop early after ``patience`` validations without progress."""
        nonlocal loss_sum, loss_n, bad_epochs, best_state
        history.steps.append({"step": loop.step, "loss": value})
        loss_sum, loss_n = loss_sum + value, loss_n + 1
        epoch, i = divmod(loop.step - 1, steps_per_epoch)
        epoch_len = min(steps_per_epoch, total - epoch * steps_per_epoch)  # the last epoch may be shorter
        if i + 1 < epoch_len:
            if loop.step < loop.stop and loop.step % o.checkpoint_every == 0:
                loop.checkpoint()
            return
        epoch_loss, loss_sum, loss_n = (loss_sum / loss_n if loss_n else math.nan), 0.0, 0
        rec: dict[str, Any] = {
            "epoch": epoch + 1,
            "step": loop.step,
            "train_loss": epoch_loss,
            "lr": sched.get_last_lr()[0] if loop.step < total else 0.0,
        }
        # many short epochs (small data): validate, keep the best, checkpoint every `validate_every` of them
        at_report = (epoch + 1) % plan["validate_every"] == 0 or loop.step >= total
        improved = False
        if at_report and val_ds is not None:
            rec["val"], rec["val_clips"] = _measure_clips(model, val_ds, recipe, dist_, dev)
            worse = _worse_clips(rec, history, o.select)
            if worse is not None:
                rec["worse_than_copy_last_on"] = worse
            score = rec["val"]["mse"]
            best = history.best["mse"] if history.best else math.inf
            improved = not worse and score < best - o.min_delta
        elif at_report:
            improved = True
        clocks.lap()
        rec["wall_clock_s"] = round(clocks.wall, 3)
        history.epochs.append(rec)
        if improved:
            bad_epochs = 0
            history.best_epoch, history.best = rec["epoch"], rec.get("val")
            best_state = _state(model)
            write_model(best_state, rec)
        elif at_report:
            bad_epochs += 1
        loop.write_log({"epoch_end": rec})
        if o.patience is not None and bad_epochs >= o.patience:
            history.stopped_early = True
            loop.stop = loop.step
        if at_report:
            loop.checkpoint()

    if not o.static:
        with sync_batchnorm(model, dist_):  # BatchNorm over the whole global batch, as one process
            loop.run(batch_of, after_step)
        loop.checkpoint()
    step = loop.step

    best_rec = history.start if history.best_epoch == 0 else None
    best_rec = best_rec or next((r for r in history.epochs if r["epoch"] == history.best_epoch), None)
    finished = step >= total
    if best_state is None:  # no epoch finished yet (max_steps inside the first epoch): the current weights
        best_state = _state(model)
    _compare(history, model, best_state, train_ds, val_ds, recipe, o, dist_, dev, finished=finished)
    kept, keep = KEPT_FINETUNED, base
    if (
        o.static
        or history.beats_persistence is False
        or (o.head == "persistence" and history.best_epoch == 0 and not history.head_trained)
    ):
        # nothing beat copying the last frame: keep the model that IS copy-last, not a worse one
        kept = KEPT_STATIC if o.static else KEPT_PERSISTENCE
        if has_persistence_head(base.model):
            best_state = start_state
        else:  # head="direct": the starting model with a persistence head at its copy-last start
            keep = _with_head(adapted)
            keep.model.base.load_state_dict(start_state)
            best_state = _state(keep.model)
        history.beats_persistence = False
        if history.start is None or keep is not base:
            best_rec = {"epoch": 0, "step": 0, "val": history.persistence} if history.persistence else None
        else:
            best_rec = history.start
    history.kept = kept
    write_model(best_state, best_rec, kept, keep)
    if dist_.main:
        write_history()
        if o.progress and not o.cli:  # the command line prints its own summary
            print(history.summary(), file=sys.stderr)
        for w in history.warnings:
            warnings.warn(w, FinetuneWarning, stacklevel=4)
        if o.push_to_hub:
            from stzoo.zoo.upload import push_folder

            push_folder(out, o.push_to_hub, commit_message=f"Fine-tuned {base_name} with stzoo")
    dist_.barrier()
    result = make_predictor(best_state, best_rec, kept, keep)
    result.model.to(dev)
    return FinetuneResult(result, history)


def _train_head_alone(
    model: nn.Module,
    train_ds: ClipDataset,
    val_ds: ClipDataset | None,
    recipe: Recipe,
    o: Options,
    history: FinetuneHistory,
    dev: torch.device,
) -> dict[str, Any] | None:
    """Stage 1 of a fine-tune with the persistence head: train the head alone, from its copy-last start.

    The base is not run (``head.use_base`` off; its gate stays at zero), so a step costs a few small
    convolutions; the data-sized step budget (:func:`plan_steps`, not cut to the time budget) and the recipe's
    learning rate, batches, augmentation and loss. Validated like stage 2 (``select``); the best state that beats
    copy-last by the rule is loaded into ``model`` (else the head goes back to copy-last) and starts stage 2,
    whose step 0 validates it. Every process runs the whole of it on all the clips (it is cheap, and no
    communication keeps every process's head the same). Returns what happened (``steps``, ``validations``,
    ``kept``, ``best_epoch``, ``seconds``), or ``None`` where there is no such stage: no head of version 2 or
    later, no validation data, static footage, or a head frozen by ``freeze``."""
    if not _stage1_applies(model, val_ds, o):
        return None
    head = model.head
    params = [p for n, p in head.named_parameters() if p.requires_grad and n != "gate"]
    t0 = time.perf_counter()
    plan = plan_steps(len(train_ds), recipe.batch_size, steps=o.steps, epochs=o.epochs)
    start = _state(head)
    gen = torch.Generator().manual_seed(recipe.seed + 104_729)
    local, order = Dist(), []
    best_mse, best_epoch, best = history.persistence["mse"], None, None
    validations: list[dict[str, Any]] = []
    head.use_base = False
    try:
        if o.steps in (None, "auto") and o.epochs is None and o.time_budget is not None:  # cut to its share
            step_s, val_s = _time_step_and_validation(model, model, recipe, train_ds, val_ds, o, dev, amp=False)
            minutes = o.time_budget * HEAD_STAGE_SHARE
            plan = fit_to_time(plan, step_s=step_s, val_s=val_s, minutes=minutes, budget_clock=o.budget_clock)
        steps, per_epoch = plan["steps"], plan["steps_per_epoch"]
        opt, sched = make_optimizer(params, recipe, steps)
        model.train()
        for s in range(steps):
            epoch, i = divmod(s, per_epoch)
            if i == 0:
                order = torch.randperm(len(train_ds), generator=gen).tolist()
            idx = order[i * recipe.batch_size : (i + 1) * recipe.batch_size]
            batch = augment_batch(train_ds.take(idx), o.augment, recipe.seed * 7919 + 1, s).to(dev)
            # (clips the trainable parameters with a gradient: the head's, the base and the gate are not run)
            train_step(model, model, recipe, opt, sched, batch, teacher_p=0.0, progress=s / steps, amp=False)
            last_of_epoch = i + 1 == per_epoch or s + 1 == steps
            if not last_of_epoch or ((epoch + 1) % plan["validate_every"] and s + 1 < steps):
                continue
            val, clips = _measure_clips(model, val_ds, recipe, local, dev)
            rec: dict[str, Any] = {"epoch": epoch + 1, "step": s + 1, "val": val, "val_clips": clips}
            worse = _worse_clips(rec, history, o.select)
            validations.append(
                {"epoch": epoch + 1, "step": s + 1, "mse": val["mse"], "ssim": val["ssim"]}
                | ({"worse_than_copy_last_on": worse} if worse is not None else {})
            )
            if not worse and val["mse"] < best_mse:
                best_mse, best_epoch = val["mse"], epoch + 1
                best = _state(head)
    finally:
        head.use_base = True
    head.load_state_dict(best if best is not None else start)
    return {
        "steps": steps,
        "rule": plan["rule"],
        "validations": validations,
        "kept": best is not None,
        "best_epoch": best_epoch,
        "seconds": round(time.perf_counter() - t0, 2),
    }


def _time_step_and_validation(
    net: nn.Module,
    model: nn.Module,
    recipe: Recipe,
    train_ds: ClipDataset,
    val_ds: ClipDataset | None,
    o: Options,
    dev: torch.device,
    *,
    amp: bool,
    world: int = 1,
) -> tuple[float, float]:
    """Seconds of one training step of ``net`` on a batch of the first training clips, and of one validation
    (this process's share of ``val_ds`` among ``world``; 0 without validation data), on ``o.budget_clock``."""
    probe = train_ds.take(list(range(min(recipe.batch_size, len(train_ds))))).to(dev)
    clock = clock_of(o.budget_clock)
    step_s = time_step(net, model, recipe, probe, amp=amp, clock=clock)
    val_s = 0.0
    if val_ds is not None:
        batches = math.ceil(len(val_ds) / world / recipe.batch_size)
        val_s = batches * time_forward(model, probe, recipe.frames_in, recipe.frames_out, clock)
    return step_s, val_s


def _stage1_applies(model: nn.Module, val_ds: ClipDataset | None, o: Options) -> bool:
    """Whether a fine-tune has stage 1 (the persistence head trained alone): a head of version 2 or later with
    parameters to train, validation data to choose its state by, and footage that moves."""
    head = getattr(model, "head", None)
    if not has_persistence_head(model) or getattr(head, "version", 1) < 2 or val_ds is None or o.static:
        return False
    return any(p.requires_grad for n, p in head.named_parameters() if n != "gate")


def _fresh(base: PredictorLike, state: dict[str, Tensor]) -> nn.Module:
    """A new module of ``base``'s architecture holding ``state``, in eval mode on the CPU."""
    from stzoo.models import build_model

    m = build_model(base.entry.architecture, dict(base.entry.config))
    m.load_state_dict({k: v.to("cpu") for k, v in state.items()})
    return m.eval()


@torch.no_grad()
def _measure(
    model: nn.Module | None, ds: ClipDataset, indices: Sequence[int], recipe: Recipe, dist_: Dist, dev: torch.device
) -> dict[str, float]:
    """Metrics of ``model`` (``None``: copy-last-frame) on the clips ``indices`` of ``ds``, each
    process scoring its share, summed over all processes."""
    indices = list(indices)
    share = ds.subset(indices[dist_.rank :: dist_.world])
    keys = ("mse", "mae", "ssim", "psnr")
    if len(share):
        if model is None:
            m = evaluate_copy_last(
                share,
                frames_in=recipe.frames_in,
                frames_out=recipe.frames_out,
                batch_size=recipe.batch_size,
                progress=False,
            )
        else:
            m = evaluate(
                model,
                share,
                frames_in=recipe.frames_in,
                frames_out=recipe.frames_out,
                batch_size=recipe.batch_size,
                device=dev,
                progress=False,
            )
        local = [m[k] * m["sequences"] for k in keys] + [float(m["sequences"])]
    else:
        local = [0.0] * (len(keys) + 1)
    total = dist_.all_sum(local, dev)
    n = total[-1]
    return {**{k: total[j] / n for j, k in enumerate(keys)}, "sequences": int(n), "local_sequences": len(share)}


def _measure_clips(
    model: nn.Module | None, ds: ClipDataset, recipe: Recipe, dist_: Dist, dev: torch.device
) -> tuple[dict[str, float], list[dict[str, Any]]]:
    """:func:`_measure` on every video of ``ds`` apart, and over all its clips: ``(overall, per video)``;
    each per-video record also names the video."""
    groups: dict[int, list[int]] = {}
    for i, (vi, _) in enumerate(ds.index):
        groups.setdefault(vi, []).append(i)
    per = [{"video": ds.videos[vi].name, **_measure(model, ds, idx, recipe, dist_, dev)} for vi, idx in groups.items()]
    n = sum(c["sequences"] for c in per)
    overall: dict[str, float] = {k: sum(c[k] * c["sequences"] for c in per) / n for k in ("mse", "mae", "ssim", "psnr")}
    overall["sequences"] = n
    overall["local_sequences"] = sum(c["local_sequences"] for c in per)
    return overall, per


def _worse_clips(rec: dict[str, Any], history: FinetuneHistory, select: str) -> list[str] | None:
    """The validation videos on which the state of ``rec`` is worse than copy-last: a higher MSE or a lower
    SSIM (see ``SAFE_TOLERANCE``); ``None`` where the rule does not apply (``select="mean"``)."""
    if select != "every-clip" or not history.persistence_clips:
        return None
    return [
        c["video"]
        for c, p in zip(rec["val_clips"], history.persistence_clips)
        if c["mse"] > p["mse"] * (1 + SAFE_TOLERANCE) or c["ssim"] < p["ssim"] - SAFE_TOLERANCE
    ]


def _selection_text(select: str) -> str:
    """The rule that chose the kept state, in words (history and card)."""
    if select == "every-clip":
        return (
            "the lowest validation MSE among the validated states (step 0 included) that are not worse than "
            "copying the last frame on any validation video (neither a higher MSE nor a lower SSIM)"
        )
    return "the lowest validation MSE over all validation clips (step 0 included)"


def _compare(
    history: FinetuneHistory,
    model: nn.Module,
    best_state: dict[str, Tensor],
    train_ds: ClipDataset,
    val_ds: ClipDataset | None,
    recipe: Recipe,
    o: Options,
    dist_: Dist,
    dev: torch.device,
    *,
    finished: bool,
) -> None:
    """Set ``history.beats_persistence``, ``train_check`` (no validation data) and ``warnings``."""
    history.warnings = []
    # the start (best_epoch 0) is the starting model, not a fine-tuned one, unless stage 1 trained its head
    untrained = history.best_epoch is None or (history.best_epoch == 0 and not history.head_trained)
    if o.static:
        history.beats_persistence = False
        history.warnings.append(
            "the footage never changes (every frame equals the one before), so copying the last frame is "
            "exact and there is nothing to learn: the folder holds the persistence-equivalent model, which "
            "forecasts the last observed frame. Fine-tune on footage in which something moves."
        )
        return
    if val_ds is None:
        if o.auto_val:  # asked for validation ("auto") but the data could not spare any: say so
            history.warnings.append(
                f"there was no validation data ({o.split_note}), so the kept weights are the last step's and "
                "nothing measured them on frames they were not trained on."
            )
        n = len(train_ds)
        idx = sorted(
            {round(i * (n - 1) / max(1, min(n, TRAIN_CHECK_CLIPS) - 1)) for i in range(min(n, TRAIN_CHECK_CLIPS))}
        )
        live = {k: v.detach().clone() for k, v in model.state_dict().items()}
        model.load_state_dict(best_state)
        try:
            mine = _measure(model, train_ds, idx, recipe, dist_, dev)
        finally:
            model.load_state_dict(live)
        history.train_check = {
            "clips": len(idx),
            "model": mine,
            "copy_last_frame": _measure(None, train_ds, idx, recipe, dist_, dev),
        }
        score, base, where = mine["mse"], history.train_check["copy_last_frame"]["mse"], "even on its training clips"
    elif history.persistence is not None and (history.best is not None or (finished and history.epochs)):
        trained = [e["val"]["mse"] for e in history.epochs if "val" in e]  # the states training reached
        score = min(trained) if trained and untrained else history.best["mse"]
        base, where = history.persistence["mse"], "on the validation clips"
    else:  # stopped (max_steps) before the first validation
        history.beats_persistence = None
        return
    history.beats_persistence = bool(score < base) and not untrained
    if history.beats_persistence or not finished:
        return
    rejected = [e for e in history.epochs if e.get("worse_than_copy_last_on") and e["val"]["mse"] < base]
    if rejected:  # lower mean MSE than copy-last, but worse on some video: the every-clip rule said no
        best = min(rejected, key=lambda e: e["val"]["mse"])
        history.warnings.append(
            f"no fine-tuned state was at least as good as copying the last frame on every validation video: the "
            f"best by mean MSE (epoch {best['epoch']}: {best['val']['mse']:.4g} against {base:.4g}) was worse on "
            f"{printable(', '.join(best['worse_than_copy_last_on'][:3]))}, so the folder holds the "
            "persistence-equivalent "
            "model (" + arg("select='mean'", "--select mean") + " keeps the best mean instead)."
        )
        return
    tips = []
    if o.epochs is not None:
        tips.append("more passes (" + arg(f"epochs={2 * o.epochs}", f"--epochs {2 * o.epochs}") + ")")
    else:
        more = 2 * history.plan["steps"]
        tips.append("more steps (" + arg(f"steps={more}", f"--steps {more}") + ")")
    tips.append("a higher learning rate (" + arg(f"lr={3 * recipe.lr:g}", f"--lr {3 * recipe.lr:g}") + ")")
    if not o.native:
        tips.append("training at the videos' own size (" + arg("size='native'", "--size native") + ")")
    if history.stopped_early:
        tips.append("no early stopping (" + arg("patience=None", "--patience 0") + ")")
    tips.append("more or longer videos")
    history.warnings.append(
        f"the fine-tuned model does not beat copying the last frame {where}: MSE {score:.4g} against {base:.4g} "
        f"for repeating the last input frame, so the folder holds the persistence-equivalent model instead (it "
        f"forecasts the last observed frame: never worse than doing nothing). To learn more, try "
        + ", ".join(tips[:-1])
        + " or "
        + tips[-1]
        + "."
    )
