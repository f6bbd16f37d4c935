"""Releasing a training run into the zoo: weights-only safetensors, measured on the test set, written into
the manifest with the run's provenance and the entry's training ledger."""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from stzoo.data.registry import get_dataset
from stzoo.errors import ConfigError
from stzoo.models import Recipe, build_model, full_config
from stzoo.training.checkpoints import (
    TRAIN_CHECKPOINT_KEYS,
    atomic_write_text,
    checkpoint_error,
    load_checkpoint,
    read_run_json,
    weights_sha,
    write_weights,
)
from stzoo.training.evaluation import evaluate, evaluate_copy_last, test_data, test_set_description

__all__ = ["release", "release_to_manifest", "ledger_totals"]


def release(run_dir: str | os.PathLike, weights_path: str | os.PathLike, *, half: bool = False) -> dict[str, Any]:
    """Write the run's final weights (no optimizer state) as safetensors; return path, sha256, size."""
    return write_weights(_release_checkpoint(Path(run_dir)), Path(weights_path), half)


def _release_checkpoint(run: Path) -> dict[str, Any]:
    """The checkpoint of run folder ``run``, read safely for a release."""
    path = run / "checkpoint.pt"
    remedy = (
        f"Give the folder of a run that `stzoo train NAME --out {run}` wrote (its checkpoint.pt), or "
        "train the run again into a new --out folder."
    )
    ck = load_checkpoint(path, "cpu", TRAIN_CHECKPOINT_KEYS, remedy=remedy)
    try:
        json.dumps({"arch": ck["arch"], "config": ck["config"], "recipe": ck["recipe"]})
        Recipe(**ck["recipe"])
    except (TypeError, ValueError) as exc:
        raise checkpoint_error(path, f"its arch / config / recipe are not what stzoo writes ({exc})", remedy) from None
    return ck


def _measured_by_run(run: Path, weights_sha: str, described: str, sequences: int) -> dict[str, Any] | None:
    """The metrics ``stzoo train`` measured at the end of ``run``, if they are of exactly these weights
    (same sha256 of the weights file) on exactly this test set (same description, same number of
    sequences); otherwise None and the release measures them itself. Same evaluation code either way."""
    path = run / "summary.json"
    try:
        summary = json.loads(path.read_text())
        m = summary["metrics"]
        if (
            summary.get("weights_sha256") == weights_sha
            and m.get("dataset") == described
            and m.get("sequences") == sequences
            and all(isinstance(m[k], float) for k in ("mse", "mae", "ssim", "psnr"))
        ):
            return m
    except (OSError, ValueError, KeyError, TypeError):
        pass
    return None


def _ledger_record(run: Path, ck: dict[str, Any], result_sha: str) -> dict[str, Any]:
    """One line of a zoo entry's training ledger: what a run folder contributed."""
    meta = read_run_json(run / "run.json")
    summary_path = run / "summary.json"
    summary = json.loads(summary_path.read_text()) if summary_path.exists() else {}
    recipe = ck["recipe"]
    hardware = (
        summary.get("hardware") or meta.get("hardware") or (f"CPU ({meta['cpu']})" if meta.get("cpu") else "unknown")
    )
    return {
        "run": run.name,
        "init_sha256": (meta.get("init_from") or {}).get("sha256"),
        "result_sha256": result_sha,
        "steps": int(ck["step"]),
        "sequences": int(ck["step"]) * int(recipe["batch_size"]),
        "wall_clock_s": round(float(ck["wall_clock_s"]), 1),
        **({"cpu_s": round(float(ck["cpu_s"]), 1)} if ck.get("cpu_s") else {}),
        "hardware": hardware,
        "cpu": meta.get("cpu"),
        "dtype": ck.get("dtype") or meta.get("dtype", "float32"),
        "dataset": ck.get("dataset", "moving_mnist"),
        "recipe": recipe,
        **({"data_pool": int(ck["data_pool"])} if ck.get("data_pool") else {}),
        "time_budget_s": ck.get("time_budget_s"),
        "command": summary.get("command") or meta.get("command") or "not recorded",
        "torch": summary.get("torch", torch.__version__),
    }


def _legacy_record(entry: dict[str, Any]) -> dict[str, Any] | None:
    """The single run an entry released before ledgers existed, as a ledger line (None if untrained)."""
    t, w = entry.get("training"), entry.get("weights")
    if not t or not w:
        return None
    steps = int(t.get("steps") or 0)
    return {
        "run": "released " + str(t.get("date", "earlier")),
        "init_sha256": None,
        "result_sha256": w["sha256"],
        "steps": steps,
        "sequences": steps * int(t["recipe"].get("batch_size", 0))
        if steps
        else int(round(t["epochs"] * t["recipe"].get("epoch_size", 0))),
        "wall_clock_s": t["wall_clock_s"],
        "hardware": t["hardware"],
        "cpu": None,
        "dtype": "float32",
        "dataset": "moving_mnist",
        "recipe": t["recipe"],
        "time_budget_s": None,
        "command": t["command"],
        "torch": t.get("torch", "unknown"),
    }


def ledger_totals(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Sequences, steps and device hours summed over a ledger (GPU when the hardware is not a CPU)."""
    cpu = sum(r["wall_clock_s"] for r in runs if str(r["hardware"]).startswith("CPU"))
    gpu = sum(r["wall_clock_s"] for r in runs if not str(r["hardware"]).startswith("CPU"))
    return {
        "runs": len(runs),
        "sequences": sum(r["sequences"] for r in runs),
        "steps": sum(r["steps"] for r in runs),
        "cpu_hours": round(cpu / 3600, 2),
        "gpu_hours": round(gpu / 3600, 2),
    }


def release_to_manifest(
    name: str,
    run_dir: str | os.PathLike,
    *,
    weights_dir: str | os.PathLike,
    manifest_path: str | os.PathLike,
    dataset_options: dict[str, Any] | None = None,
    eval_sequences: int = 10000,
    half: bool = False,
    command: str | None = None,
    progress: bool = True,
    prior_runs: list[str | os.PathLike] = (),
    force: bool = False,
) -> dict[str, Any]:
    """Release a finished run as zoo entry ``name``, if it is better than the entry's current release.

    Writes the run's weights (weights only) to a candidate file, loads *that file* back into a fresh
    model, measures it on the dataset's fixed test set, and — when there is no earlier release, or its
    MSE on the same test set is lower (or ``force``) — moves it to ``weights_dir/<name>.safetensors``
    and writes sha256, size, metrics and provenance into the manifest entry. Otherwise nothing changes
    and a :class:`ConfigError` says both numbers.

    The entry's ``training`` block keeps a ledger, ``training["runs"]``: every run that led to these
    weights (start weights' sha256, steps, sequences, wall-clock, hardware, dtype, command) and
    ``training["totals"]``. A run warm-started (``stzoo train --init-from``) from the current release
    extends its ledger; ``prior_runs`` are run folders between the two (each warm-started from the
    previous one's final weights), checked by sha256 so the chain cannot be made up.
    """
    import datetime

    from safetensors.torch import load_file

    manifest_path = Path(manifest_path)
    manifest = json.loads(manifest_path.read_text())
    if name not in manifest["models"] or "alias" in manifest["models"][name]:
        raise ConfigError(f"{name} is not a (non-alias) entry of {manifest_path}")
    entry = manifest["models"][name]
    run = Path(run_dir)
    ck = _release_checkpoint(run)
    if ck["arch"] != entry["architecture"] or full_config(ck["arch"], ck["config"]) != full_config(
        entry["architecture"], entry["config"]
    ):
        raise ConfigError(
            f"run {run} trained {ck['arch']} {ck['config']}, but {name} is {entry['architecture']} {entry['config']}"
        )
    model = build_model(entry["architecture"], entry["config"])
    try:  # the checkpoint's weights must fit the entry's model before anything is written
        model.load_state_dict({k: v.float() for k, v in ck["model"].items()})
    except RuntimeError as exc:
        raise checkpoint_error(
            run / "checkpoint.pt",
            f"its weights do not fit {name}'s model ({str(exc).strip().splitlines()[0][:200]})",
            "Release the run that trained it.",
        ) from None

    # the ledger: earlier release → prior runs → this run, each starting from the previous one's weights
    chain = [Path(r) for r in prior_runs] + [run]
    records = []
    for folder in chain[:-1]:
        pck = _release_checkpoint(folder)
        records.append(_ledger_record(folder, pck, weights_sha(pck)))
    dataset = ck.get("dataset", "moving_mnist")
    final_path = Path(weights_dir) / f"{name}.safetensors"
    candidate = final_path.with_name(final_path.name + ".candidate")
    info = write_weights(ck, candidate, half)
    records.append(_ledger_record(run, ck, info["sha256"]))
    previous = list((entry.get("training") or {}).get("runs") or [])
    if not previous and (legacy := _legacy_record(entry)) is not None:
        previous = [legacy]
    start = records[0]["init_sha256"]
    if start is not None and (not previous or start != previous[-1]["result_sha256"]):
        if not entry.get("weights") or start != entry["weights"]["sha256"]:
            candidate.unlink(missing_ok=True)
            raise ConfigError(
                f"{chain[0]} started from weights with sha256 {start}, which are neither {name}'s "
                "current release nor the end of its ledger; pass the runs in between with "
                "prior_runs (stzoo release --prior-run DIR), in order"
            )
    if start is None:
        previous = []  # trained from scratch: the ledger starts again
    for before, after in zip(records, records[1:]):
        if after["init_sha256"] != before["result_sha256"]:
            candidate.unlink(missing_ok=True)
            raise ConfigError(
                f"run {after['run']} did not start from the final weights of {before['run']} "
                f"(sha256 {after['init_sha256']} vs {before['result_sha256']})"
            )

    model.load_state_dict({k: v.float() for k, v in load_file(str(candidate)).items()})
    recipe = Recipe(**ck["recipe"])
    test = test_data(dataset, eval_sequences, dataset_options)
    described = test_set_description(dataset, test, recipe)
    old = entry.get("metrics")
    if (
        old
        and entry.get("weights")
        and not force
        and (old.get("dataset"), old.get("sequences")) != (described, len(test))
    ):
        candidate.unlink(missing_ok=True)
        raise ConfigError(
            f"not released: {name}'s current release was measured on {old.get('dataset')} "
            f"({old.get('sequences')} sequences) and this run on {described} "
            f"({len(test)} sequences), so they cannot be compared; measure on the same "
            f"test set (--sequences {old.get('sequences')}) or pass --force to replace it anyway"
        )
    metrics = None if half else _measured_by_run(run, info["sha256"], described, len(test))
    if metrics is None:
        metrics = evaluate(model, test, frames_in=recipe.frames_in, frames_out=recipe.frames_out, progress=progress)
    if old and entry.get("weights") and not force and round(metrics["mse"], 4) >= old["mse"]:
        candidate.unlink(missing_ok=True)
        raise ConfigError(
            f"not released: {run} scores MSE {metrics['mse']:.2f} on {described} "
            f"({metrics['sequences']} sequences), not better than the current release's "
            f"{old['mse']:.2f}; pass --force to replace it anyway"
        )
    os.replace(candidate, final_path)
    info["path"] = str(final_path)
    entry["weights"] = {
        "filename": f"{name}.safetensors",
        "sha256": info["sha256"],
        "size": info["size"],
        "dtype": "float16" if half else "float32",
        "hub": {"repo_id": f"stzoo/{name}", "filename": "model.safetensors", "revision": "main"},
    }
    entry["metrics"] = {
        "dataset": described,
        "split": "test",
        "sequences": metrics["sequences"],
        **{k: round(metrics[k], 4) for k in ("mse", "mae", "ssim", "psnr")},
        "command": command or f"stzoo release {name}",
    }
    runs = previous + records
    last = records[-1]
    steps_per_epoch = math.ceil(recipe.epoch_size / recipe.batch_size)
    entry["training"] = {
        "recipe": ck["recipe"],
        "epochs": round(ck["step"] / steps_per_epoch, 3),
        "steps": ck["step"],
        "hardware": last["hardware"],
        "wall_clock_s": last["wall_clock_s"],
        "command": last["command"],
        "torch": last["torch"],
        "date": datetime.date.today().isoformat(),
        "runs": runs,
        "totals": ledger_totals(runs),
    }
    baseline: dict[str, Any] = {}
    spec = get_dataset(dataset)
    if spec.baseline_with_release:  # the persistence baseline of that test set, measured beside the model
        base = evaluate_copy_last(test, frames_in=recipe.frames_in, frames_out=recipe.frames_out, progress=progress)
        baseline[spec.baseline_key] = {
            "description": f"every future frame = the last observed frame, on {described}",
            "metrics": {
                "dataset": described,
                "split": "test",
                "sequences": base["sequences"],
                **{k: round(base[k], 4) for k in ("mse", "mae", "ssim", "psnr")},
                "command": command or f"stzoo release {name}",
            },
        }

    def apply(current: dict[str, Any]) -> None:
        # only this entry (and its baseline) change: another release or script may have written the file
        # during the evaluation above, and its changes stay
        current["models"][name] = entry
        if baseline:
            current.setdefault("baselines", {}).update(baseline)

    update_manifest(manifest_path, apply)
    return {"name": name, **entry}


def update_manifest(path: str | os.PathLike, change: Callable[[dict[str, Any]], None]) -> None:
    """Read the manifest at ``path``, let ``change`` edit it, and write it back atomically, holding an
    exclusive lock on ``PATH.lock`` meanwhile (where the OS has ``fcntl``), so that two releases at
    once cannot lose each other's entries."""
    path = Path(path)
    with open(path.with_name(path.name + ".lock"), "a") as lock:
        try:
            import fcntl

            fcntl.flock(lock, fcntl.LOCK_EX)
        except ImportError:  # Windows: no advisory lock; a single writer is assumed
            pass
        manifest = json.loads(path.read_text())
        change(manifest)
        atomic_write_text(path, json.dumps(manifest, indent=2, ensure_ascii=False) + "\n")
