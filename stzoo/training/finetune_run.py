"""The fine-tuning run: adapt, train with validation, keep the best state, write the folder.

Split from :mod:`stzoo.training.finetune`, which checks the arguments and prepares the data first.
"""

from __future__ import annotations

import datetime
import json
import math
import sys
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
from stzoo.training.distributed import Dist
from stzoo.training.evaluation import evaluate, evaluate_copy_last
from stzoo.training.finetune_data import _apply_freeze, _data_summary, _frozen_norm_layers
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
    verdict,
)
from stzoo.training.loop import Clocks, Loop, make_optimizer
from stzoo.training.train import Recipe, _hardware
from stzoo.zoo.entry import ZooEntry

__all__ = ["run", "Options"]


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
    if ckpt_path.exists() and not o.resume:
        raise ConfigError(
            f"{out} already holds a fine-tuning checkpoint ({CHECKPOINT_NAME}): pass "
            + arg("resume=True", "--resume")
            + " to continue that run, or choose another output folder ("
            + arg("out_dir", "--out")
            + ")"
        )
    torch.manual_seed(recipe.seed)
    base, report = adapt(
        predictor,
        channels=o.channels,
        height=o.size[0],
        width=o.size[1],
        frames_in=recipe.frames_in,
        frames_out=recipe.frames_out,
    )
    model = base.model.to(dev).float().train()
    frozen = _apply_freeze(model, o.freeze)
    frozen_norms = _frozen_norm_layers(model, o.freeze)
    sampler = DistributedSampler(
        train_ds, num_replicas=dist_.world, rank=dist_.rank, shuffle=True, seed=recipe.seed, drop_last=False
    )
    plan = plan_steps(len(sampler), recipe.batch_size, steps=o.steps, epochs=o.epochs)
    plan["train_clips"] = len(train_ds)
    recipe = replace(recipe, epochs=plan["epochs"])
    steps_per_epoch, total = plan["steps_per_epoch"], plan["steps"]
    opt, sched = make_optimizer([p for p in model.parameters() if p.requires_grad], recipe, total)
    net: nn.Module = model
    if dist_.world > 1:
        from torch.nn.parallel import DistributedDataParallel

        net = DistributedDataParallel(model, device_ids=[dev.index] if dev.type == "cuda" else None)
    amp = o.amp if o.amp is not None else native_bf16(dev)
    base_name = predictor.name or f"{arch}-custom"
    data_info = {
        "train": train_ds.describe() + "; " + _data_summary(train_ds.videos),
        "validation": (val_ds.describe() + "; " + _data_summary(val_ds.videos)) if val_ds else None,
        "split": o.split_note,
        "channels": o.channels,
        "size": list(o.size),
        "native_size": o.native,
        "frames_in": recipe.frames_in,
        "frames_out": recipe.frames_out,
    }
    fingerprint = {
        "arch": arch,
        "config": dict(base.entry.config),
        "recipe": asdict(recipe),
        "train_clips": len(train_ds),
        "val_clips": len(val_ds) if val_ds else 0,
        "world_size": dist_.world,
        "frozen": frozen,
    }
    if o.epochs is None:  # with epochs=N the recipe fixes the budget; with steps, record it
        fingerprint["total_steps"] = total
    history = FinetuneHistory(
        out_dir=str(out), data=data_info, adaptation=report.to_dict(), world_size=dist_.world, plan=plan
    )
    if val_ds is not None:  # the baseline every run is compared with, on the same validation clips
        history.persistence = _measure(None, val_ds, range(len(val_ds)), recipe, dist_, dev)
    step, wall, cpu, bad_epochs = 0, 0.0, 0.0, 0
    loss_sum, loss_n = 0.0, 0  # this epoch's training loss so far (kept across a resume)
    best_state: dict[str, Tensor] | None = None
    earlier_steps: list[dict[str, float]] = []  # the steps of the calls before a resume (for history.json)
    if ckpt_path.exists():
        remedy = (
            "Delete it and run without " + arg("resume=True", "--resume") + " to start afresh, or choose "
            "another output folder (" + arg("out_dir", "--out") + ")."
        )
        ck = load_checkpoint(ckpt_path, dev, _CHECKPOINT_KEYS, remedy=remedy)
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
        with refusing_unfit_state(ckpt_path, remedy, "this run"):
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
        if history.best_epoch is not None and (out / "model.safetensors").is_file():
            from stzoo.zoo.hub import load_safetensors

            best_state = load_safetensors(out / "model.safetensors")
    if dist_.main:
        out.mkdir(parents=True, exist_ok=True)

    def entry_for(epoch_rec: dict[str, Any] | None) -> ZooEntry:
        entry = {
            k: v for k, v in base.entry.to_dict().items() if k not in ("adapted", "weights", "metrics", "training")
        }
        entry["base_model"] = base_name
        val_txt = ""
        pers = history.persistence
        if epoch_rec and epoch_rec.get("val"):
            v = epoch_rec["val"]
            entry["metrics"] = {
                "dataset": f"fine-tuning validation data: {data_info['validation']}",
                "split": "validation",
                "sequences": int(v["sequences"]),
                **{k: round(float(v[k]), 4) for k in ("mse", "mae", "ssim", "psnr")},
                **({f"copy_last_frame_{k}": round(float(pers[k]), 4) for k in ("mse", "ssim")} if pers else {}),
                "command": o.command or "stzoo.training.finetune",
            }
            val_txt = (
                f" Validation after epoch {epoch_rec['epoch']}: MSE {v['mse']:.4g}, SSIM {v['ssim']:.4g} "
                f"(per-frame sums, see stzoo.metrics)"
            )
            if pers:
                val_txt += (
                    f"; copying the last frame on the same clips: MSE {pers['mse']:.4g}, SSIM "
                    f"{pers['ssim']:.4g} ({verdict(v['mse'], pers['mse'])})"
                )
            val_txt += "."
        elif history.train_check is not None:
            m, cl = history.train_check["model"], history.train_check["copy_last_frame"]
            val_txt = (
                f" No validation data ({o.split_note}). On {history.train_check['clips']} training clips "
                f"(seen in training, so not a held-out measurement): MSE {m['mse']:.4g}, SSIM {m['ssim']:.4g}; "
                f"copying the last frame: MSE {cl['mse']:.4g}, SSIM {cl['ssim']:.4g} "
                f"({verdict(m['mse'], cl['mse'])})."
            )
        if history.warnings:
            val_txt += " Warning: " + " ".join(history.warnings)
        changes = "; ".join(f"{k} {x} → {y}" for k, (x, y) in report.changes.items())
        entry["description"] = (
            f"{base_name} fine-tuned with stzoo on {data_info['train']}."
            + (
                f" Adapted: {changes}; re-initialised: {', '.join(report.reinitialised) or 'none'}."
                if report.changes
                else ""
            )
            + val_txt
        )
        entry["training"] = {
            "recipe": asdict(recipe),
            "epochs": len(history.epochs),
            "steps": loop.step,
            "budget": plan["rule"],
            "hardware": _hardware(dev) + (f" × {dist_.world} processes" if dist_.world > 1 else ""),
            "dtype": "bfloat16" if amp else "float32",
            "cpu": cpu_description(),
            "wall_clock_s": round(clocks.wall, 1),
            "command": o.command or "stzoo.training.finetune",
            "date": datetime.date.today().isoformat(),
        }
        return ZooEntry.from_dict(None, entry)

    def make_predictor(state: dict[str, Tensor] | None, epoch_rec: dict[str, Any] | None) -> PredictorLike:
        m = base.model if state is None else _fresh(base, state)
        return base.derive(m, base.spec, name=o.name or f"{base_name}-finetuned", entry=entry_for(epoch_rec))

    def write_model(state: dict[str, Tensor] | None, epoch_rec: dict[str, Any] | None) -> None:
        if dist_.main:
            make_predictor(state, epoch_rec).save_pretrained(out)

    def write_history() -> None:  # every epoch and every step of the run, this call's and the earlier ones
        doc = history.to_dict()
        doc["steps"] = earlier_steps + doc["steps"]
        atomic_write_text(out / HISTORY_NAME, json.dumps(doc, indent=2, default=str))

    clocks = Clocks(wall, cpu)

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
        return train_ds.take(idx).to(dev, non_blocking=True)

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
            rec["val"] = _measure(model, val_ds, range(len(val_ds)), recipe, dist_, dev)
            score = rec["val"]["mse"]
            best = history.best["mse"] if history.best else math.inf
            improved = score < best - o.min_delta
        elif at_report:
            improved = True
        clocks.lap()
        rec["wall_clock_s"] = round(clocks.wall, 3)
        history.epochs.append(rec)
        if improved:
            bad_epochs = 0
            history.best_epoch, history.best = rec["epoch"], rec.get("val")
            best_state = {k: v.detach().to("cpu").clone() for k, v in model.state_dict().items()}
            write_model(best_state, rec)
        elif at_report:
            bad_epochs += 1
        loop.write_log({"epoch_end": rec})
        if o.patience is not None and bad_epochs >= o.patience:
            history.stopped_early = True
            loop.stop = loop.step
        if at_report:
            loop.checkpoint()

    loop.run(batch_of, after_step)
    loop.checkpoint()
    step = loop.step

    best_rec = next((r for r in history.epochs if r["epoch"] == history.best_epoch), None)
    if best_state is None:  # no epoch finished yet (max_steps inside the first epoch): the current weights
        best_state = {k: v.detach().to("cpu").clone() for k, v in model.state_dict().items()}
    _compare(history, model, best_state, train_ds, val_ds, recipe, o, dist_, dev, finished=step >= total)
    write_model(best_state, best_rec)
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
    result = make_predictor(best_state, best_rec)
    result.model.to(dev)
    return FinetuneResult(result, history)


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
    elif history.best is not None and history.persistence is not None:
        score, base, where = history.best["mse"], history.persistence["mse"], "on the validation clips"
    else:  # stopped (max_steps) before the first validation
        history.beats_persistence = None
        return
    history.beats_persistence = bool(score < base)
    if history.beats_persistence or not finished:
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
        f"for repeating the last input frame, so its forecasts are worse than doing nothing. Try "
        + ", ".join(tips[:-1])
        + " or "
        + tips[-1]
        + "."
    )
