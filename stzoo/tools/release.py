"""Releasing a training run into the zoo: weights-only safetensors, measured on the test set, written into
the manifest with the run's provenance and the entry's training ledger."""

from __future__ import annotations

import json
import math
import os
import re
import secrets
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
from stzoo.training.evaluation import (
    evaluate,
    measure_baselines,
    release_gate,
    test_data,
    test_set_description,
)

__all__ = ["release", "release_to_manifest", "ledger_totals", "recover_weights_dir", "update_manifest"]


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
        **(
            {"init_tensors_sha256": meta["init_from"]["tensors_sha256"]}
            if (meta.get("init_from") or {}).get("tensors_sha256")
            else {}
        ),
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

    Writes the run's weights (weights only) to a candidate file of its own, refuses NaN / infinite weights,
    loads *that file* back into a fresh model, measures it on the dataset's fixed test set, and measures the
    trivial baselines on the same sequences (copy-last-frame and the mean frame). It is released when it
    passes the gate (MSE below both baselines', SSIM above copy-last's; ``force`` releases it anyway, marked
    ``undertrained``) and beats the current release's MSE on the same test set (or ``force``): under the
    manifest's lock the file goes to ``weights_dir/<name>-<sha256[:12]>.safetensors`` (a new name: nothing
    the manifest points at is ever overwritten), the manifest entry gets sha256, size, metrics, the
    ``gate`` record and provenance, and the superseded file is removed. Otherwise nothing changes and a
    :class:`ConfigError` says why. A release killed part-way leaves the manifest and its files consistent;
    its leftovers are removed by the next release (:func:`recover_weights_dir`).

    The entry's ``training`` block keeps a ledger, ``training["runs"]``: every run that led to these
    weights (start weights' sha256, steps, sequences, wall-clock, hardware, dtype, command) and
    ``training["totals"]``. A run warm-started (``stzoo train --init-from``) from the current release
    extends its ledger; ``prior_runs`` are run folders between the two (each warm-started from the
    previous one's final weights), checked by sha256 so the chain cannot be made up.
    """
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
    weights_dir = Path(weights_dir)
    weights_dir.mkdir(parents=True, exist_ok=True)
    recover_weights_dir(weights_dir, manifest_path)
    candidate = _candidate_path(weights_dir, name)
    try:
        return _release_candidate(
            name,
            run,
            ck,
            entry,
            model,
            candidate,
            records,
            chain,
            weights_dir=weights_dir,
            manifest_path=manifest_path,
            dataset=dataset,
            dataset_options=dataset_options,
            eval_sequences=eval_sequences,
            half=half,
            command=command,
            progress=progress,
            force=force,
        )
    finally:
        candidate.unlink(missing_ok=True)


def _release_candidate(
    name: str,
    run: Path,
    ck: dict[str, Any],
    entry: dict[str, Any],
    model: torch.nn.Module,
    candidate: Path,
    records: list[dict[str, Any]],
    chain: list[Path],
    *,
    weights_dir: Path,
    manifest_path: Path,
    dataset: str,
    dataset_options: dict[str, Any] | None,
    eval_sequences: int,
    half: bool,
    command: str | None,
    progress: bool,
    force: bool,
) -> dict[str, Any]:
    """The part of :func:`release_to_manifest` that owns the candidate weights file (its caller deletes it)."""
    import datetime

    from safetensors.torch import load_file

    info = write_weights(ck, candidate, half)
    loaded = load_file(str(candidate))
    _check_finite(loaded, candidate, half)
    records.append(_ledger_record(run, ck, info["sha256"]))
    previous = list((entry.get("training") or {}).get("runs") or [])
    if not previous and (legacy := _legacy_record(entry)) is not None:
        previous = [legacy]
    start = records[0]["init_sha256"]
    starts = {start, records[0].get("init_tensors_sha256")} - {None}
    if start is not None and (not previous or previous[-1]["result_sha256"] not in starts):
        if not entry.get("weights") or entry["weights"]["sha256"] not in starts:
            raise ConfigError(
                f"{chain[0]} started from weights with sha256 {start}, which are neither {name}'s "
                "current release nor the end of its ledger; pass the runs in between with "
                "prior_runs (stzoo release --prior-run DIR), in order"
            )
    if start is None:
        previous = []  # trained from scratch: the ledger starts again
    for before, after in zip(records, records[1:]):
        if before["result_sha256"] not in (after["init_sha256"], after.get("init_tensors_sha256")):
            raise ConfigError(
                f"run {after['run']} did not start from the final weights of {before['run']} "
                f"(sha256 {after['init_sha256']} vs {before['result_sha256']})"
            )

    model.load_state_dict({k: v.float() for k, v in loaded.items()})
    recipe = Recipe(**ck["recipe"])
    test = test_data(dataset, eval_sequences, dataset_options)
    described = test_set_description(dataset, test, recipe)
    _check_comparable(name, entry, described, len(test), force)
    metrics = None if half else _measured_by_run(run, info["sha256"], described, len(test))
    if metrics is None:
        metrics = evaluate(model, test, frames_in=recipe.frames_in, frames_out=recipe.frames_out, progress=progress)
    bad = [k for k in ("mse", "mae", "ssim", "psnr") if not math.isfinite(float(metrics[k]))]
    if bad:  # never released, --force or not: a NaN "wins" no comparison and is not JSON
        raise ConfigError(f"not released: {run} scores a non-finite {', '.join(bad)} on {described}")
    _check_better(name, entry, run, metrics, described, force)
    spec = get_dataset(dataset)
    baselines = measure_baselines(
        test, frames_in=recipe.frames_in, frames_out=recipe.frames_out, mean_frame=spec.mean_frame, progress=progress
    )
    gate = release_gate(metrics, baselines)
    if not gate["passed"] and not force:
        raise ConfigError(
            f"not released: {run} does not beat the trivial baselines of {described} "
            f"({len(test)} sequences): " + "; ".join(gate["failed"]) + ". Train it longer, or pass --force to "
            "release it anyway (it is then listed as undertrained)"
        )
    gate["forced"] = not gate["passed"]
    gate["dataset"] = described
    final_name = f"{name}-{info['sha256'][:12]}.safetensors"
    new_entry = dict(entry)
    for stale in WEIGHTS_RECORDS:  # measured on the weights being replaced: re-measure them for the new ones
        new_entry.pop(stale, None)
    new_entry["weights"] = {
        "filename": final_name,
        "sha256": info["sha256"],
        "size": info["size"],
        "dtype": "float16" if half else "float32",
        "hub": {"repo_id": f"stzoo/{name}", "filename": "model.safetensors", "revision": "main"},
    }
    new_entry["metrics"] = {
        "dataset": described,
        "split": "test",
        "sequences": metrics["sequences"],
        **{k: round(metrics[k], 4) for k in ("mse", "mae", "ssim", "psnr")},
        "command": command or f"stzoo release {name}",
    }
    new_entry["gate"] = gate
    runs = previous + records
    last = records[-1]
    steps_per_epoch = math.ceil(recipe.epoch_size / recipe.batch_size)
    new_entry["training"] = {
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
    if spec.baseline_with_release:  # the persistence baseline of that test set, measured beside the model
        base = baselines["copy_last"]
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
    final_path = weights_dir / final_name

    def apply(current: dict[str, Any]) -> Callable[[], None]:
        # Under the manifest's lock: the weights go in place under their own content-addressed name (nothing
        # the manifest points at is replaced), then the manifest is written, then the superseded file goes.
        # A kill at any point leaves the manifest pointing at a complete file that matches it; an orphan
        # left behind is removed by the next release (recover_weights_dir).
        now = current["models"].get(name)
        if now is None or "alias" in now:
            raise ConfigError(f"{name} is no longer a (non-alias) entry of {manifest_path}")
        if (now.get("weights") or {}).get("sha256") != (entry.get("weights") or {}).get("sha256"):
            # another release of this entry won while this one was being measured: compare with that one
            _check_comparable(name, now, described, len(test), force)
            _check_better(name, now, run, metrics, described, force)
        old_file = (now.get("weights") or {}).get("filename")
        os.replace(candidate, final_path)
        current["models"][name] = new_entry
        if baseline:
            current.setdefault("baselines", {}).update(baseline)

        def after() -> None:
            still_used = {(e.get("weights") or {}).get("filename") for e in current["models"].values()}
            if old_file and old_file != final_name and old_file not in still_used:
                (weights_dir / Path(old_file).name).unlink(missing_ok=True)

        return after

    update_manifest(manifest_path, apply)
    return {"name": name, **new_entry, "weights_path": str(final_path)}


def _check_finite(state: dict[str, torch.Tensor], path: Path, half: bool) -> None:
    """Refuse weights with a NaN or infinite value (a diverged run, or values beyond float16 with --half)."""
    bad = [k for k, v in state.items() if v.is_floating_point() and not bool(torch.isfinite(v).all())]
    if bad:
        hint = " (beyond float16's range: release without --half)" if half else ""
        raise ConfigError(
            f"not released: the run's weights hold NaN or infinite values{hint} in {len(bad)} tensor(s), "
            f"e.g. {', '.join(bad[:3])}; nothing was written"
        )


def _check_comparable(name: str, entry: dict[str, Any], described: str, sequences: int, force: bool) -> None:
    old = entry.get("metrics")
    if (
        old
        and entry.get("weights")
        and not force
        and (old.get("dataset"), old.get("sequences"))
        != (
            described,
            sequences,
        )
    ):
        raise ConfigError(
            f"not released: {name}'s current release was measured on {old.get('dataset')} "
            f"({old.get('sequences')} sequences) and this run on {described} "
            f"({sequences} sequences), so they cannot be compared; measure on the same "
            f"test set (--sequences {old.get('sequences')}) or pass --force to replace it anyway"
        )


def _check_better(
    name: str, entry: dict[str, Any], run: Path, metrics: dict[str, Any], described: str, force: bool
) -> None:
    old = entry.get("metrics")
    if old and entry.get("weights") and not force and not round(metrics["mse"], 4) < old["mse"]:
        raise ConfigError(
            f"not released: {run} scores MSE {metrics['mse']:.2f} on {described} "
            f"({metrics['sequences']} sequences), not better than {name}'s current release's "
            f"{old['mse']:.2f}; pass --force to replace it anyway"
        )


#: manifest records that describe one weights file (its bf16 change, forecast strip, rollout); a release drops them
WEIGHTS_RECORDS = ("bf16", "strip", "rollout")

_CANDIDATE = re.compile(r"^\.(?P<name>[a-z0-9-]+)\.(?P<pid>\d+)\.[0-9a-f]{16}\.candidate$")
_CONTENT_NAMED = re.compile(r"^(?P<name>[a-z0-9-]+)-[0-9a-f]{12}\.safetensors$")


def _candidate_path(weights_dir: Path, name: str) -> Path:
    """A candidate file name no other release (of this or another process) uses."""
    return weights_dir / f".{name}.{os.getpid()}.{secrets.token_hex(8)}.candidate"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # exists, owned by someone else
        return True
    return True


def recover_weights_dir(weights_dir: str | os.PathLike, manifest_path: str | os.PathLike) -> list[Path]:
    """Finish what a killed release left behind in ``weights_dir``, under the manifest's lock: candidate
    files of processes that no longer run, and content-addressed weights files (``NAME-<sha>.safetensors``)
    of a manifest entry that the manifest does not point at (a release killed between placing its file
    and writing the manifest). Files of other shapes are never touched. Returns what was removed."""
    weights_dir = Path(weights_dir)
    removed: list[Path] = []

    def sweep(current: dict[str, Any]) -> None:
        used = {(e.get("weights") or {}).get("filename") for e in current["models"].values()}
        for path in sorted(weights_dir.iterdir()) if weights_dir.is_dir() else []:
            c = _CANDIDATE.match(path.name)
            m = _CONTENT_NAMED.match(path.name)
            if (
                c
                and not _pid_alive(int(c["pid"]))
                or (m and path.name not in used and any(path.name.startswith(f"{n}-") for n in current["models"]))
            ):
                path.unlink(missing_ok=True)
                removed.append(path)

    update_manifest(manifest_path, sweep, write=False)
    return removed


def update_manifest(
    path: str | os.PathLike, change: Callable[[dict[str, Any]], Callable[[], None] | None], *, write: bool = True
) -> None:
    """Read the manifest at ``path``, let ``change`` edit it, and write it back atomically (strict JSON: a
    NaN or infinity is refused, never written), holding an exclusive lock on ``PATH.lock`` meanwhile (where the
    OS has ``fcntl``), so that two releases at once cannot lose each other's entries. ``change`` may return a
    function, run after the write while the lock is still held; ``write=False`` only reads under the lock."""
    path = Path(path)
    with open(path.with_name(path.name + ".lock"), "a") as lock:
        try:
            import fcntl

            fcntl.flock(lock, fcntl.LOCK_EX)
        except ImportError:  # Windows: no advisory lock; a single writer is assumed
            pass
        manifest = json.loads(path.read_text())
        after = change(manifest)
        if write:
            try:
                text = json.dumps(manifest, indent=2, ensure_ascii=False, allow_nan=False) + "\n"
            except ValueError as exc:
                raise ConfigError(f"not written: the manifest would hold a non-finite number ({exc})") from None
            atomic_write_text(path, text)
        if after is not None:
            after()


def apply_gate(
    manifest_path: str | os.PathLike,
    *,
    names: list[str] | None = None,
    dataset_options: dict[str, Any] | None = None,
    command: str | None = None,
    progress: bool = False,
) -> dict[str, dict[str, Any]]:
    """Put the release gate's verdict on entries already released: for each entry with weights and
    metrics (or just ``names``), measure copy-last-frame and the mean frame on exactly the test sequences
    its metrics were measured on, and record the ``gate`` (``forced: true`` where it fails: those weights
    were released before the gate existed). Returns ``{name: gate}``; entries whose test set cannot be
    rebuilt (a different description) are refused with :class:`ConfigError`."""
    from stzoo.zoo.entry import ZooEntry

    manifest_path = Path(manifest_path)
    manifest = json.loads(manifest_path.read_text())
    models = manifest["models"]
    todo = names or [n for n, e in models.items() if "alias" not in e and e.get("weights") and e.get("metrics")]
    verdicts: dict[str, dict[str, Any]] = {}
    for name in todo:
        if name not in models or "alias" in models[name] or not models[name].get("metrics"):
            raise ConfigError(f"{name} is not a released (non-alias) entry of {manifest_path} with metrics")
        entry = ZooEntry.from_dict(name, models[name])
        metrics = dict(entry.metrics or {})
        dataset = entry.dataset or "moving_mnist"
        spec = get_dataset(dataset)
        test = test_data(dataset, int(metrics["sequences"]), dataset_options)
        described = spec.describe_test(test, entry.input.frames_in, entry.input.frames_out)
        if described != metrics.get("dataset") or len(test) != metrics["sequences"]:
            raise ConfigError(
                f"{name} was measured on {metrics.get('dataset')} ({metrics['sequences']} sequences), which "
                f"cannot be rebuilt here (got {described}, {len(test)} sequences): pass the dataset's options"
            )
        baselines = measure_baselines(
            test,
            frames_in=entry.input.frames_in,
            frames_out=entry.input.frames_out,
            mean_frame=spec.mean_frame,
            progress=progress,
        )
        gate = release_gate(metrics, baselines)
        gate.update(forced=not gate["passed"], dataset=described)
        if command:
            gate["command"] = command
        verdicts[name] = gate

    def apply(current: dict[str, Any]) -> None:
        for name, gate in verdicts.items():
            current["models"][name]["gate"] = gate

    update_manifest(manifest_path, apply)
    return verdicts
