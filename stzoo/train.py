"""Train and evaluate zoo models on Moving MNIST; release weights into the manifest.

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
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from stzoo.data.moving_mnist import MovingMNIST, moving_mnist_test_set
from stzoo.errors import ConfigError
from stzoo.hub import sha256_file
from stzoo.losses import mse_ddr_loss
from stzoo.metrics import MetricAccumulator
from stzoo.models import build_model, count_parameters, full_config

__all__ = ["Recipe", "RECIPES", "train", "evaluate", "evaluate_copy_last", "release", "sha256_file",
           "atomic_torch_save", "atomic_write_text", "capture_rng_state", "restore_rng_state",
           "make_optimizer", "optimizer_step", "compute_loss", "predict_future"]


@dataclass
class Recipe:
    """How one architecture is trained. Every field can be overridden from the CLI."""

    lr: float = 1e-3
    batch_size: int = 16
    epochs: int = 200
    epoch_size: int = 10000          # sequences per epoch (fresh ones every epoch)
    loss: str = "mse"                # "mse" or "mse+ddr"
    alpha: float = 0.1               # DDR weight
    weight_decay: float = 0.0
    scheduled_sampling: float = 0.0  # fraction of training over which teacher forcing decays 1 → 0
    frames_in: int = 10
    frames_out: int = 10
    seed: int = 0
    grad_clip: float = 1.0


RECIPES: dict[str, Recipe] = {
    "tau": Recipe(loss="mse+ddr", alpha=0.1),
    "convlstm": Recipe(loss="mse", scheduled_sampling=0.5),
    "sa_convlstm": Recipe(loss="mse", scheduled_sampling=0.5),
}


def atomic_torch_save(obj: Any, path: Path) -> None:
    """``torch.save`` to a temporary file, fsync, then rename over ``path``: a crash (even kill -9)
    leaves either the old checkpoint or the new one, never a half-written file."""
    tmp = path.with_name(path.name + ".tmp")
    torch.save(obj, tmp)
    with open(tmp, "rb") as f:
        os.fsync(f.fileno())
    os.replace(tmp, path)


def atomic_write_text(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file and a rename (never half-written)."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def capture_rng_state(device: torch.device) -> dict[str, Any]:
    """The torch RNG state of the CPU (and of ``device`` if it is a GPU), to store in a checkpoint."""
    return {"rng": torch.get_rng_state(),
            "cuda_rng": torch.cuda.get_rng_state(device) if device.type == "cuda" else None}


def restore_rng_state(state: dict[str, Any], device: torch.device) -> None:
    """Undo :func:`capture_rng_state`: the next random draws repeat those of the saved run."""
    torch.set_rng_state(state["rng"])
    if device.type == "cuda" and state.get("cuda_rng") is not None:
        torch.cuda.set_rng_state(state["cuda_rng"], device)


def make_optimizer(params: Any, recipe: Recipe, total_steps: int) -> tuple[torch.optim.Optimizer, Any]:
    """AdamW with ``recipe.lr`` / ``recipe.weight_decay`` and a OneCycle schedule over ``total_steps``."""
    opt = torch.optim.AdamW(params, lr=recipe.lr, weight_decay=recipe.weight_decay)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=recipe.lr, total_steps=max(1, total_steps))
    return opt, sched


def optimizer_step(loss: Tensor, model: nn.Module, opt: torch.optim.Optimizer, sched: Any,
                   grad_clip: float) -> None:
    """Backward pass, optional gradient-norm clipping, optimizer and scheduler step."""
    opt.zero_grad(set_to_none=True)
    loss.backward()
    if grad_clip:
        nn.utils.clip_grad_norm_([p for p in model.parameters() if p.requires_grad], grad_clip)
    opt.step()
    sched.step()


def _to_float(batch: Tensor, device: torch.device) -> Tensor:
    """A batch on ``device`` as float in [0, 1]: uint8 is divided by 255, floats are taken as they are."""
    batch = batch.to(device, non_blocking=True)
    return batch.float().div_(255.0) if batch.dtype == torch.uint8 else batch.float()


def _is_recurrent(model: nn.Module) -> bool:
    """Whether ``model`` (or the module a DistributedDataParallel wrapper holds) is recurrent."""
    return bool(getattr(getattr(model, "module", model), "recurrent", False))


def compute_loss(model: nn.Module, recipe: Recipe, seq: Tensor, teacher_p: float) -> Tensor:
    """The recipe's loss on one batch of float sequences B×(T_in+T_out)×C×H×W."""
    x, y = seq[:, :recipe.frames_in], seq[:, recipe.frames_in:recipe.frames_in + recipe.frames_out]
    if _is_recurrent(model):
        mask = None
        if teacher_p > 0:
            mask = torch.bernoulli(torch.full((x.shape[0], recipe.frames_out - 1), teacher_p, device=x.device))
        pred = model(x, recipe.frames_out, target=y, teacher_mask=mask, return_context=True)
        target = seq[:, 1:recipe.frames_in + recipe.frames_out]
    else:
        pred, target = model(x), y
    if recipe.loss == "mse":
        return F.mse_loss(pred.float(), target)
    if recipe.loss == "mse+ddr":
        return mse_ddr_loss(pred.float(), target, alpha=recipe.alpha)
    raise ConfigError(f"unknown loss {recipe.loss!r}; use 'mse' or 'mse+ddr'")


@torch.no_grad()
def predict_future(model: nn.Module, x: Tensor, n_out: int) -> Tensor:
    """Future frames from a model in eval mode (TAU maps T→T; recurrent models take ``n_out``)."""
    return model(x, n_out) if _is_recurrent(model) else model(x)


@torch.no_grad()
def evaluate(model: nn.Module, dataset: MovingMNIST, *, frames_in: int = 10, frames_out: int = 10,
             batch_size: int = 64, device: str | torch.device = "cpu", progress: bool = True,
             predict: Callable[[Tensor], Tensor] | None = None) -> dict[str, Any]:
    """MSE / MAE / SSIM / PSNR of ``model`` on the future frames of every sequence of ``dataset``."""
    from tqdm.auto import tqdm

    device = torch.device(device)
    was_training = model.training
    model.eval()
    predict = predict or (lambda x: predict_future(model, x, frames_out))
    acc = MetricAccumulator()
    n = len(dataset)
    for start in tqdm(range(0, n, batch_size), desc="evaluate", unit="batch", disable=not progress):
        seq = _to_float(dataset.batch(start, min(start + batch_size, n)), device)
        x, y = seq[:, :frames_in], seq[:, frames_in:frames_in + frames_out]
        acc.update(predict(x).float(), y)
    model.train(was_training)
    return {**acc.result(), "sequences": acc.sequences}


def evaluate_copy_last(dataset: MovingMNIST, frames_in: int = 10, frames_out: int = 10,
                       batch_size: int = 256, progress: bool = True) -> dict[str, Any]:
    """The copy-last-frame baseline: every future frame = the last observed frame."""
    dummy = nn.Identity()
    return evaluate(dummy, dataset, frames_in=frames_in, frames_out=frames_out, batch_size=batch_size,
                    progress=progress,
                    predict=lambda x: x[:, -1:].expand(-1, frames_out, -1, -1, -1))


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


def train(arch: str, config: dict[str, Any], out_dir: str | os.PathLike, *,
          mnist_dir: str | os.PathLike | None = None, recipe: Recipe | None = None,
          device: str | None = None, max_steps: int | None = None, eval_sequences: int = 10000,
          checkpoint_every_s: float = 300.0, log_every: int = 50, progress: bool = True,
          command: str | None = None, init_from: str | os.PathLike | None = None,
          dtype: str = "auto") -> dict[str, Any]:
    """Train ``arch`` with ``config`` on on-the-fly Moving MNIST; resume from ``out_dir`` if it holds
    a checkpoint. Returns the final summary (also written to ``out_dir/summary.json``).

    ``max_steps`` stops early (the schedule is still laid out for the full ``recipe.epochs``), so a
    long run can be done in slices; the final evaluation runs only once all steps are done, or
    when ``max_steps`` is reached and ``eval_sequences`` > 0.

    ``init_from`` (a ``.safetensors`` file with this architecture's keys) warm-starts a *new* run
    from those weights with a fresh schedule; a run that already has a checkpoint resumes from it
    instead. ``dtype`` is ``"float32"``, ``"bfloat16"`` (autocast; weights and optimizer stay fp32)
    or ``"auto"`` (bfloat16 where the device has native bf16 units, else float32).
    """
    from tqdm.auto import tqdm

    recipe = recipe or RECIPES[arch]
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    dev = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    torch.manual_seed(recipe.seed)
    model = build_model(arch, config).to(dev)
    steps_per_epoch = math.ceil(recipe.epoch_size / recipe.batch_size)
    total = steps_per_epoch * recipe.epochs
    opt, sched = make_optimizer(model.parameters(), recipe, total)
    data = MovingMNIST.from_mnist(mnist_dir, "train", num_sequences=recipe.epoch_size,
                                  seq_len=recipe.frames_in + recipe.frames_out, seed=recipe.seed)
    ckpt_path = out / "checkpoint.pt"
    step, wall = 0, 0.0
    amp = resolve_train_dtype(dtype, dev)
    init_info = None
    if init_from is not None and not ckpt_path.exists():
        from safetensors.torch import load_file

        init_path = Path(init_from)
        model.load_state_dict({k: v.float() for k, v in load_file(str(init_path)).items()})
        init_info = {"path": init_path.name, "sha256": sha256_file(init_path)}
    if ckpt_path.exists():
        ck = torch.load(ckpt_path, map_location=dev, weights_only=False)
        if ck["arch"] != arch or ck["config"] != config:
            raise ConfigError(f"{ckpt_path} was written for {ck['arch']} {ck['config']}, not {arch} {config}")
        model.load_state_dict(ck["model"])
        opt.load_state_dict(ck["optimizer"])
        sched.load_state_dict(ck["scheduler"])
        restore_rng_state(ck, dev)
        step, wall = ck["step"], ck["wall_clock_s"]
    meta = {"arch": arch, "config": config, "recipe": asdict(recipe), "parameters": count_parameters(model),
            "dtype": "bfloat16" if amp else "float32", "cpu": cpu_description()}
    run_json = out / "run.json"
    if init_info is None and run_json.exists():  # a resumed warm start keeps its start weights' record
        init_info = json.loads(run_json.read_text()).get("init_from")
    if init_info is not None:
        meta["init_from"] = init_info
    atomic_write_text(run_json, json.dumps(meta, indent=2))

    def save_checkpoint() -> None:
        atomic_torch_save({
            "arch": arch, "config": config, "recipe": asdict(recipe), "model": model.state_dict(),
            "optimizer": opt.state_dict(), "scheduler": sched.state_dict(), **capture_rng_state(dev),
            "step": step, "wall_clock_s": wall}, ckpt_path)

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
            teacher_p = 0.0
            if recipe.scheduled_sampling > 0:
                teacher_p = max(0.0, 1.0 - step / (recipe.scheduled_sampling * total))
            with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=amp):
                loss = compute_loss(model, recipe, seq, teacher_p)
            optimizer_step(loss, model, opt, sched, recipe.grad_clip)
            step += 1
            value = float(loss.detach())
            running = value if running is None else 0.98 * running + 0.02 * value
            bar.update(1)
            bar.set_postfix(loss=f"{running:.5f}", epoch=epoch)
            now = time.monotonic()
            if step % log_every == 0 or step == stop:
                log.write(json.dumps({"step": step, "epoch": epoch, "loss": value, "loss_avg": running,
                                      "lr": sched.get_last_lr()[0], "teacher_p": teacher_p,
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
                               "epochs_done": step / steps_per_epoch, "hardware": _hardware(dev),
                               "torch": torch.__version__, "command": command}
    if eval_sequences > 0:
        test = moving_mnist_test_set(mnist_dir, eval_sequences)
        summary["metrics"] = evaluate(model, test, frames_in=recipe.frames_in, frames_out=recipe.frames_out,
                                      device=dev, progress=progress)
        summary["metrics"]["dataset"] = "stzoo-moving-mnist-test"
    atomic_write_text(out / "summary.json", json.dumps(summary, indent=2))
    return summary


def release(run_dir: str | os.PathLike, weights_path: str | os.PathLike, *, half: bool = False) -> dict[str, Any]:
    """Write the run's final weights (no optimizer state) as safetensors; return path, sha256, size."""
    ck = torch.load(Path(run_dir) / "checkpoint.pt", map_location="cpu", weights_only=False)
    return _write_weights(ck, Path(weights_path), half)


def _write_weights(ck: dict[str, Any], weights_path: Path, half: bool) -> dict[str, Any]:
    """Weights-only safetensors of a loaded training checkpoint ``ck``, written atomically."""
    from safetensors.torch import save_file

    tensors = {k: (v.half() if half and v.is_floating_point() else v).contiguous()
               for k, v in ck["model"].items()}
    weights_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = weights_path.with_name(weights_path.name + ".tmp")
    # One metadata key: safetensors stores a dict's keys in no fixed order, and the file's sha256
    # must not change between two releases of the same run.
    meta = json.dumps({"arch": ck["arch"], "config": ck["config"]}, sort_keys=True)
    save_file(tensors, str(tmp), metadata={"stzoo": meta})
    os.replace(tmp, weights_path)
    return {"path": str(weights_path), "sha256": sha256_file(weights_path), "size": weights_path.stat().st_size}


def release_to_manifest(name: str, run_dir: str | os.PathLike, *, weights_dir: str | os.PathLike,
                        manifest_path: str | os.PathLike, mnist_dir: str | os.PathLike | None = None,
                        eval_sequences: int = 10000, half: bool = False, command: str | None = None,
                        progress: bool = True) -> dict[str, Any]:
    """Release a finished run as zoo entry ``name``.

    Writes ``weights_dir/<name>.safetensors`` (weights only), loads *that file* back into a fresh
    model, measures it on the stzoo Moving MNIST test set, and writes sha256, size, metrics and the
    run's provenance into the manifest entry. Returns the updated entry.
    """
    import datetime

    from safetensors.torch import load_file

    manifest_path = Path(manifest_path)
    manifest = json.loads(manifest_path.read_text())
    if name not in manifest["models"] or "alias" in manifest["models"][name]:
        raise ConfigError(f"{name} is not a (non-alias) entry of {manifest_path}")
    entry = manifest["models"][name]
    run = Path(run_dir)
    ck = torch.load(run / "checkpoint.pt", map_location="cpu", weights_only=False)
    if ck["arch"] != entry["architecture"] or full_config(ck["arch"], ck["config"]) != full_config(
            entry["architecture"], entry["config"]):
        raise ConfigError(f"run {run} trained {ck['arch']} {ck['config']}, but {name} is "
                          f"{entry['architecture']} {entry['config']}")
    info = _write_weights(ck, Path(weights_dir) / f"{name}.safetensors", half)
    model = build_model(entry["architecture"], entry["config"])
    model.load_state_dict({k: v.float() for k, v in load_file(info["path"]).items()})
    recipe = Recipe(**ck["recipe"])
    test = moving_mnist_test_set(mnist_dir, eval_sequences)
    metrics = evaluate(model, test, frames_in=recipe.frames_in, frames_out=recipe.frames_out,
                       progress=progress)
    steps_per_epoch = math.ceil(recipe.epoch_size / recipe.batch_size)
    summary_path = run / "summary.json"
    summary = json.loads(summary_path.read_text()) if summary_path.exists() else {}
    entry["weights"] = {"filename": f"{name}.safetensors", "sha256": info["sha256"], "size": info["size"],
                        "dtype": "float16" if half else "float32",
                        "hub": {"repo_id": f"stzoo/{name}", "filename": "model.safetensors", "revision": "main"}}
    entry["metrics"] = {"dataset": "stzoo Moving MNIST test (MNIST test digits, seed "
                                   f"{test.seed}, 10→10)", "split": "test",
                        "sequences": metrics["sequences"],
                        **{k: round(metrics[k], 4) for k in ("mse", "mae", "ssim", "psnr")},
                        "command": command or f"stzoo release {name}"}
    entry["training"] = {"recipe": ck["recipe"], "epochs": round(ck["step"] / steps_per_epoch, 3),
                         "steps": ck["step"], "hardware": summary.get("hardware", "unknown"),
                         "wall_clock_s": round(ck["wall_clock_s"], 1),
                         "command": summary.get("command") or "unknown",
                         "torch": summary.get("torch", torch.__version__),
                         "date": datetime.date.today().isoformat()}
    atomic_write_text(manifest_path, json.dumps(manifest, indent=2, ensure_ascii=False) + "\n")
    return {"name": name, **entry}
