"""What a fine-tuned folder says about itself: the zoo entry (config.json's metrics and training block)
and the model card's description, for a fine-tuned model or for the persistence-equivalent one kept
when nothing beat copying the last frame.

Split from :mod:`stzoo.training.finetune_run`.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from typing import Any

from stzoo.training.finetune_history import FinetuneHistory, verdict
from stzoo.zoo.entry import ZooEntry

__all__ = ["CardFacts", "card_entry", "printable", "KEPT_FINETUNED", "KEPT_PERSISTENCE", "KEPT_STATIC"]

#: what the folder holds: the best validated fine-tuned state ...
KEPT_FINETUNED = "fine-tuned"
#: ... the persistence-equivalent model (nothing beat copying the last frame) ...
KEPT_PERSISTENCE = "persistence-equivalent"
#: ... or the persistence model because the footage never changes (nothing to learn)
KEPT_STATIC = "persistence-equivalent (static footage)"


def printable(text: str) -> str:
    """``text`` safe to write as UTF-8: file names the OS gave as undecodable bytes (surrogate escapes,
    e.g. ``'\\udcff'``) are written as backslash escapes instead of failing the save."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


@dataclass
class CardFacts:
    """What the card of one fine-tune states besides its history."""

    base_name: str
    data_info: dict[str, Any]
    changes: dict[str, tuple[Any, Any]]
    reinitialised: list[str]
    recipe: dict[str, Any]
    budget: str
    hardware: str
    dtype: str
    cpu: str
    command: str
    split_note: str
    head: str
    selection: str = ""


def _val_text(history: FinetuneHistory, facts: CardFacts, rec: dict[str, Any], kept: str) -> str:
    v, pers = rec["val"], history.persistence
    when = "before any training (step 0)" if rec["epoch"] == 0 else f"after epoch {rec['epoch']}"
    text = f" Validation {when}: MSE {v['mse']:.4g}, SSIM {v['ssim']:.4g} (per-frame sums, see stzoo.metrics)"
    if pers:
        if kept == KEPT_FINETUNED:
            text += (
                f"; copying the last frame on the same clips: MSE {pers['mse']:.4g}, SSIM "
                f"{pers['ssim']:.4g} ({verdict(v['mse'], pers['mse'])})"
            )
        else:
            text += f"; copying the last frame on the same clips: MSE {pers['mse']:.4g}, SSIM {pers['ssim']:.4g}"
    return text + "."


def card_entry(
    base_entry: ZooEntry,
    history: FinetuneHistory,
    facts: CardFacts,
    rec: dict[str, Any] | None,
    *,
    kept: str,
    steps: int,
    epochs: int,
    wall_clock_s: float,
) -> ZooEntry:
    """The entry (config.json, README.md) of the model kept in the folder.

    ``rec``: the epoch record whose state is kept (epoch 0: the start), or ``None``; ``kept``: one of
    ``KEPT_*`` — a persistence-equivalent model says so first thing in its description."""
    stale = ("adapted", "weights", "metrics", "training", "gate", "flops", "speed", "strip", "rollout", "bf16")
    entry = {k: v for k, v in base_entry.to_dict().items() if k not in stale}  # records of the base's weights
    entry["base_model"] = facts.base_name
    pers = history.persistence
    val_txt = ""
    if rec and rec.get("val"):
        v = rec["val"]
        entry["metrics"] = {
            "dataset": printable(f"fine-tuning validation data: {facts.data_info['validation']}"),
            "split": "validation",
            "sequences": int(v["sequences"]),
            **{k: round(float(v[k]), 4) for k in ("mse", "mae", "ssim", "psnr")},
            **({f"copy_last_frame_{k}": round(float(pers[k]), 4) for k in ("mse", "ssim")} if pers else {}),
            "command": printable(facts.command),
        }
        val_txt = _val_text(history, facts, rec, kept)
    elif history.train_check is not None:
        m, cl = history.train_check["model"], history.train_check["copy_last_frame"]
        val_txt = (
            f" No validation data ({facts.split_note}). On {history.train_check['clips']} training clips "
            f"(seen in training, so not a held-out measurement): MSE {m['mse']:.4g}, SSIM {m['ssim']:.4g}; "
            f"copying the last frame: MSE {cl['mse']:.4g}, SSIM {cl['ssim']:.4g}"
            + (f" ({verdict(m['mse'], cl['mse'])})." if kept == KEPT_FINETUNED else ".")
        )
    if history.warnings:
        val_txt += " Warning: " + " ".join(history.warnings)
    changes = "; ".join(f"{k} {x} → {y}" for k, (x, y) in facts.changes.items())
    lead = f"{facts.base_name} fine-tuned with stzoo on {facts.data_info['train']}."
    if kept == KEPT_STATIC:
        lead = (
            f"PERSISTENCE-EQUIVALENT: this model forecasts the last observed frame. The footage it was given "
            f"({facts.data_info['train']}) never changes from one frame to the next, so copying the last frame "
            f"is exact and there was nothing to learn; {facts.base_name} with a persistence head at its "
            "starting (copy-last) state."
        )
    elif kept == KEPT_PERSISTENCE:
        lead = (
            f"PERSISTENCE-EQUIVALENT: this model forecasts the last observed frame. Fine-tuning {facts.base_name} "
            f"on {facts.data_info['train']} found no state that beat copying the last frame, so the folder keeps "
            "the model with its persistence head at the starting (copy-last) state instead of a worse one."
        )
    elif facts.head == "persistence":
        lead += " Forecast = last observed frame + a learned change (persistence head, stzoo.models.persistence)."
    entry["description"] = printable(
        lead
        + (f" Adapted: {changes}; re-initialised: {', '.join(facts.reinitialised) or 'none'}." if facts.changes else "")
        + val_txt
    )
    entry["training"] = {
        "recipe": facts.recipe,
        "epochs": epochs,
        "steps": steps,
        "budget": facts.budget,
        "head": facts.head,
        "kept": kept,
        "split": printable(facts.split_note),
        **({"selection": facts.selection} if facts.selection else {}),
        "hardware": facts.hardware,
        "dtype": facts.dtype,
        "cpu": facts.cpu,
        "wall_clock_s": round(wall_clock_s, 1),
        "command": printable(facts.command),
        "date": datetime.date.today().isoformat(),
    }
    return ZooEntry.from_dict(None, entry)
