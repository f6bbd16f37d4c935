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
from dataclasses import asdict
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from stzoo.data.fields import dataset_channels, get_dataset, test_set_size
from stzoo.data.moving_mnist import MovingMNIST, moving_mnist_test_set
from stzoo.errors import CheckpointError, ConfigError, WeightsNotAvailableError
from stzoo.hub import sha256_file
from stzoo.losses import mse_ddr_loss
from stzoo.metrics import MetricAccumulator
from stzoo.models import (ARCHITECTURES, Recipe, build_model, count_parameters, eval_mode, full_config,
                          get_architecture)

__all__ = ["Recipe", "RECIPES", "train", "evaluate", "evaluate_copy_last", "release", "sha256_file",
           "atomic_torch_save", "atomic_write_text", "capture_rng_state", "restore_rng_state",
           "make_optimizer", "optimizer_step", "compute_loss", "predict_future", "load_checkpoint",
           "checkpoint_error", "describe_differences", "STATE_DICT", "TRAIN_CHECKPOINT_KEYS"]


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
    with open(tmp, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
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


# ---- reading checkpoints back (never unpickling code) ------------------------------------------
#: expected type of a checkpoint entry that is a state dict: ``{str: Tensor}``
STATE_DICT = "state dict"

#: what a checkpoint written by :func:`train` holds (``cuda_rng`` / ``dtype`` are optional)
TRAIN_CHECKPOINT_KEYS: dict[str, Any] = {
    "arch": str, "config": dict, "recipe": dict, "model": STATE_DICT, "optimizer": dict, "scheduler": dict,
    "rng": torch.Tensor, "step": int, "wall_clock_s": (int, float)}


def checkpoint_error(path: str | os.PathLike, reason: str, remedy: str) -> CheckpointError:
    """The one error for a checkpoint that cannot be used: which file, what is wrong, what to do."""
    return CheckpointError(f"{path} is not a checkpoint stzoo can use: {reason}. {remedy}")


def _type_name(expected: Any) -> str:
    if expected is STATE_DICT:
        return "a state dict (names → tensors)"
    kinds = expected if isinstance(expected, tuple) else (expected,)
    return " or ".join("None" if k is type(None) else k.__name__ for k in kinds)


def _has_type(value: Any, expected: Any) -> bool:
    if expected is STATE_DICT:
        return isinstance(value, dict) and all(isinstance(k, str) and isinstance(v, torch.Tensor)
                                               for k, v in value.items())
    kinds = expected if isinstance(expected, tuple) else (expected,)
    if isinstance(value, bool) and bool not in kinds:  # True is an int to isinstance, not to a checkpoint
        return False
    return isinstance(value, kinds)


def _load_failure(exc: BaseException) -> str:
    """Why ``torch.load(weights_only=True)`` refused a file, in words (without torch's advice to
    load the file without ``weights_only``, which would run whatever code it carries)."""
    import pickle

    text = str(exc)
    if isinstance(exc, pickle.UnpicklingError):
        marker = "Unsupported global: GLOBAL "
        if marker in text:
            what = text.split(marker, 1)[1].split()[0]
            return (f"it refers to the Python object {what}, which no checkpoint stzoo writes holds (a crafted "
                    "file can run code that way; it was not loaded, nothing was run)")
        return "it is not a file torch.save wrote (or it is corrupt); nothing in it was run"
    first = text.strip().splitlines()[0][:200] if text.strip() else "no details"
    return f"it cannot be read: it is truncated or corrupt ({type(exc).__name__}: {first})"


def load_checkpoint(path: str | os.PathLike, device: str | torch.device, required_keys: Mapping[str, Any], *,
                    remedy: str) -> dict[str, Any]:
    """Read a checkpoint that :func:`train` or :func:`stzoo.finetune.finetune` wrote, safely.

    The file is read with ``torch.load(weights_only=True)`` only: tensors, numbers, strings and plain
    containers, never arbitrary Python objects, so a crafted file cannot run code. It must be a dict
    holding every key of ``required_keys`` with a value of the type given there (a type, a tuple of
    types, or :data:`STATE_DICT`). Anything else (a truncated or corrupt file, other contents, a
    pickle that wants to call a function) raises one :class:`~stzoo.errors.CheckpointError` naming
    the file and ending with ``remedy`` (what the user can do about it).
    """
    path = Path(path)
    if not path.exists():
        raise WeightsNotAvailableError(f"there is no checkpoint at {path}. {remedy}")
    if not path.is_file():
        raise checkpoint_error(path, "it is not a file", remedy)
    try:
        ck = torch.load(path, map_location=device, weights_only=True)
    except (KeyboardInterrupt, SystemExit):
        raise
    except MemoryError as exc:
        raise checkpoint_error(path, "it does not fit in memory", remedy) from exc
    except BaseException as exc:  # noqa: BLE001 - whatever a damaged or crafted file makes torch raise
        raise checkpoint_error(path, _load_failure(exc), remedy) from None
    if not isinstance(ck, dict):
        raise checkpoint_error(path, f"it holds a {type(ck).__name__}, not the dict of a stzoo checkpoint", remedy)
    problems = [f"'{k}' is missing" for k in required_keys if k not in ck]
    problems += [f"'{k}' is a {type(ck[k]).__name__}, expected {_type_name(t)}"
                 for k, t in required_keys.items() if k in ck and not _has_type(ck[k], t)]
    if problems:
        shown = "; ".join(problems[:6]) + (f"; and {len(problems) - 6} more" if len(problems) > 6 else "")
        raise checkpoint_error(path, f"it does not have the contents stzoo writes ({shown})", remedy)
    return ck


_MISSING = object()


def describe_differences(stored: Mapping[str, Any], requested: Mapping[str, Any], prefix: str = "") -> list[str]:
    """``"recipe.lr: 0.001 in the checkpoint, 0.5 requested"`` for every field (dotted names into
    nested dicts) whose stored and requested values differ; [] when they agree."""
    out: list[str] = []
    for key in sorted(set(stored) | set(requested), key=str):
        a, b = stored.get(key, _MISSING), requested.get(key, _MISSING)
        name = f"{prefix}{key}"
        if isinstance(a, Mapping) and isinstance(b, Mapping):
            out += describe_differences(a, b, name + ".")
        elif a is _MISSING or b is _MISSING or _plain(a) != _plain(b):
            out.append(f"{name}: {_show(a)} in the checkpoint, {_show(b)} requested")
    return out


def _plain(v: Any) -> Any:
    return list(v) if isinstance(v, tuple) else v


def _show(v: Any) -> str:
    return "absent" if v is _MISSING else repr(_plain(v))


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


def _to_float(batch: Tensor, device: torch.device) -> Tensor:
    """A batch on ``device`` as float in [0, 1]: uint8 is divided by 255, floats are taken as they are."""
    batch = batch.to(device, non_blocking=True)
    return batch.float().div_(255.0) if batch.dtype == torch.uint8 else batch.float()


def _is_recurrent(model: nn.Module) -> bool:
    """Whether ``model`` (or the module a DistributedDataParallel wrapper holds) is recurrent."""
    return bool(getattr(getattr(model, "module", model), "recurrent", False))


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


@torch.no_grad()
def predict_future(model: nn.Module, x: Tensor, n_out: int) -> Tensor:
    """Future frames from a model in eval mode (TAU maps T→T; recurrent models take ``n_out``)."""
    return model(x, n_out) if _is_recurrent(model) else model(x)


@torch.no_grad()
def evaluate(model: nn.Module, dataset: MovingMNIST, *, frames_in: int = 10, frames_out: int = 10,
             batch_size: int = 64, device: str | torch.device = "cpu", progress: bool = True,
             predict: Callable[[Tensor], Tensor] | None = None) -> dict[str, Any]:
    """MSE / MAE / SSIM / PSNR of ``model`` on the future frames of every sequence of ``dataset``.

    Each batch is ``dataset.batch(start, stop)``: a slice of the memory-mapped file for the cached
    test set (:func:`~stzoo.data.moving_mnist_test_set`), so nothing is regenerated per call. The
    default batch of 64 is kept on measurement: on one core of the 2-core CPU machine, 8 to 64
    sequences per batch gave the same cost per sequence within the noise for TAU-s and ConvLSTM-s,
    and the metrics bound their own memory (``stzoo.metrics.SSIM_CHUNK``).
    """
    from tqdm.auto import tqdm

    device = torch.device(device)
    predict = predict or (lambda x: predict_future(model, x, frames_out))
    acc = MetricAccumulator()
    n = len(dataset)
    with eval_mode(model):
        for start in tqdm(range(0, n, batch_size), desc="evaluate", unit="batch", disable=not progress):
            seq = _to_float(dataset.batch(start, min(start + batch_size, n)), device)
            x, y = seq[:, :frames_in], seq[:, frames_in:frames_in + frames_out]
            acc.update(predict(x).float(), y)
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


def training_data(dataset: str, recipe: Recipe, mnist_dir: str | os.PathLike | None = None) -> Any:
    """The training sequences of ``dataset`` for ``recipe`` (epoch size, sequence length, seed)."""
    kw: dict[str, Any] = {"mnist_dir": mnist_dir} if dataset == "moving_mnist" else {}
    return get_dataset(dataset, "train", num_sequences=recipe.epoch_size,
                       seq_len=recipe.frames_in + recipe.frames_out, seed=recipe.seed, **kw)


def test_data(dataset: str, sequences: int, mnist_dir: str | os.PathLike | None = None) -> Any:
    """The first ``sequences`` sequences of ``dataset``'s fixed test set (at most the whole set)."""
    if dataset == "moving_mnist":
        return moving_mnist_test_set(mnist_dir, sequences)
    return get_dataset(dataset, "test", num_sequences=min(int(sequences), test_set_size(dataset)))


def test_set_description(dataset: str, test: Any, recipe: Recipe) -> str:
    """How a manifest names the test set metrics were measured on."""
    if dataset == "moving_mnist":
        return f"stzoo Moving MNIST test (MNIST test digits, seed {test.seed}, {recipe.frames_in}→{recipe.frames_out})"
    return f"stzoo {dataset} test (seed {getattr(test, 'seed', '?')}, {recipe.frames_in}→{recipe.frames_out})"


def _read_run_json(path: Path) -> dict[str, Any]:
    """A run folder's ``run.json`` as a dict ({} if it is missing or not a JSON object)."""
    try:
        meta = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return meta if isinstance(meta, dict) else {}


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
    previous = _read_run_json(run_json)
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


def release(run_dir: str | os.PathLike, weights_path: str | os.PathLike, *, half: bool = False) -> dict[str, Any]:
    """Write the run's final weights (no optimizer state) as safetensors; return path, sha256, size."""
    return _write_weights(_release_checkpoint(Path(run_dir)), Path(weights_path), half)


def _release_checkpoint(run: Path) -> dict[str, Any]:
    """The checkpoint of run folder ``run``, read safely for a release."""
    path = run / "checkpoint.pt"
    remedy = (f"Give the folder of a run that `stzoo train NAME --out {run}` wrote (its checkpoint.pt), or "
              "train the run again into a new --out folder.")
    ck = load_checkpoint(path, "cpu", TRAIN_CHECKPOINT_KEYS, remedy=remedy)
    try:
        json.dumps({"arch": ck["arch"], "config": ck["config"], "recipe": ck["recipe"]})
        Recipe(**ck["recipe"])
    except (TypeError, ValueError) as exc:
        raise checkpoint_error(path, f"its arch / config / recipe are not what stzoo writes ({exc})",
                               remedy) from None
    return ck


def _write_weights(ck: dict[str, Any], weights_path: Path, half: bool) -> dict[str, Any]:
    """Weights-only safetensors of a loaded training checkpoint ``ck``, written atomically."""
    from safetensors.torch import save

    tensors = {k: (v.half() if half and v.is_floating_point() else v).contiguous()
               for k, v in ck["model"].items()}
    weights_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = weights_path.with_name(weights_path.name + ".tmp")
    # One metadata key: safetensors stores a dict's keys in no fixed order, and the file's sha256
    # must not change between two releases of the same run.
    meta = json.dumps({"arch": ck["arch"], "config": ck["config"]}, sort_keys=True)
    data = save(tensors, metadata={"stzoo": meta})
    with open(tmp, "wb") as f:  # open(): the umask's mode (save_file would make the file 0600)
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, weights_path)
    return {"path": str(weights_path), "sha256": sha256_file(weights_path), "size": weights_path.stat().st_size}


def _weights_sha(ck: dict[str, Any]) -> str:
    """sha256 of the weights file :func:`release` would write for checkpoint ``ck`` (deterministic)."""
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        return _write_weights(ck, Path(tmp) / "w.safetensors", False)["sha256"]


def _ledger_record(run: Path, ck: dict[str, Any], result_sha: str) -> dict[str, Any]:
    """One line of a zoo entry's training ledger: what a run folder contributed."""
    meta = _read_run_json(run / "run.json")
    summary_path = run / "summary.json"
    summary = json.loads(summary_path.read_text()) if summary_path.exists() else {}
    recipe = ck["recipe"]
    hardware = summary.get("hardware") or meta.get("hardware") or (
        f"CPU ({meta['cpu']})" if meta.get("cpu") else "unknown")
    return {"run": run.name, "init_sha256": (meta.get("init_from") or {}).get("sha256"),
            "result_sha256": result_sha, "steps": int(ck["step"]),
            "sequences": int(ck["step"]) * int(recipe["batch_size"]),
            "wall_clock_s": round(float(ck["wall_clock_s"]), 1), "hardware": hardware,
            "cpu": meta.get("cpu"), "dtype": ck.get("dtype") or meta.get("dtype", "float32"),
            "dataset": ck.get("dataset", "moving_mnist"), "recipe": recipe,
            "time_budget_s": ck.get("time_budget_s"),
            "command": summary.get("command") or meta.get("command") or "not recorded",
            "torch": summary.get("torch", torch.__version__)}


def _legacy_record(entry: dict[str, Any]) -> dict[str, Any] | None:
    """The single run an entry released before ledgers existed, as a ledger line (None if untrained)."""
    t, w = entry.get("training"), entry.get("weights")
    if not t or not w:
        return None
    steps = int(t.get("steps") or 0)
    return {"run": "released " + str(t.get("date", "earlier")), "init_sha256": None,
            "result_sha256": w["sha256"], "steps": steps,
            "sequences": steps * int(t["recipe"].get("batch_size", 0)) if steps else
            int(round(t["epochs"] * t["recipe"].get("epoch_size", 0))),
            "wall_clock_s": t["wall_clock_s"], "hardware": t["hardware"], "cpu": None,
            "dtype": "float32", "dataset": "moving_mnist", "recipe": t["recipe"], "time_budget_s": None,
            "command": t["command"], "torch": t.get("torch", "unknown")}


def ledger_totals(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Sequences, steps and device hours summed over a ledger (GPU when the hardware is not a CPU)."""
    cpu = sum(r["wall_clock_s"] for r in runs if str(r["hardware"]).startswith("CPU"))
    gpu = sum(r["wall_clock_s"] for r in runs if not str(r["hardware"]).startswith("CPU"))
    return {"runs": len(runs), "sequences": sum(r["sequences"] for r in runs), "steps": sum(r["steps"] for r in runs),
            "cpu_hours": round(cpu / 3600, 2), "gpu_hours": round(gpu / 3600, 2)}


def release_to_manifest(name: str, run_dir: str | os.PathLike, *, weights_dir: str | os.PathLike,
                        manifest_path: str | os.PathLike, mnist_dir: str | os.PathLike | None = None,
                        eval_sequences: int = 10000, half: bool = False, command: str | None = None,
                        progress: bool = True, prior_runs: list[str | os.PathLike] = (),
                        force: bool = False) -> dict[str, Any]:
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
            entry["architecture"], entry["config"]):
        raise ConfigError(f"run {run} trained {ck['arch']} {ck['config']}, but {name} is "
                          f"{entry['architecture']} {entry['config']}")
    model = build_model(entry["architecture"], entry["config"])
    try:  # the checkpoint's weights must fit the entry's model before anything is written
        model.load_state_dict({k: v.float() for k, v in ck["model"].items()})
    except RuntimeError as exc:
        raise checkpoint_error(run / "checkpoint.pt", f"its weights do not fit {name}'s model ("
                               f"{str(exc).strip().splitlines()[0][:200]})", "Release the run that trained it.") from None

    # the ledger: earlier release → prior runs → this run, each starting from the previous one's weights
    chain = [Path(r) for r in prior_runs] + [run]
    records = []
    for folder in chain[:-1]:
        pck = _release_checkpoint(folder)
        records.append(_ledger_record(folder, pck, _weights_sha(pck)))
    dataset = ck.get("dataset", "moving_mnist")
    final_path = Path(weights_dir) / f"{name}.safetensors"
    candidate = final_path.with_name(final_path.name + ".candidate")
    info = _write_weights(ck, candidate, half)
    records.append(_ledger_record(run, ck, info["sha256"]))
    previous = list((entry.get("training") or {}).get("runs") or [])
    if not previous and (legacy := _legacy_record(entry)) is not None:
        previous = [legacy]
    start = records[0]["init_sha256"]
    if start is not None and (not previous or start != previous[-1]["result_sha256"]):
        if not entry.get("weights") or start != entry["weights"]["sha256"]:
            candidate.unlink(missing_ok=True)
            raise ConfigError(f"{chain[0]} started from weights with sha256 {start}, which are neither {name}'s "
                              "current release nor the end of its ledger; pass the runs in between with "
                              "prior_runs (stzoo release --prior-run DIR), in order")
    if start is None:
        previous = []  # trained from scratch: the ledger starts again
    for before, after in zip(records, records[1:]):
        if after["init_sha256"] != before["result_sha256"]:
            candidate.unlink(missing_ok=True)
            raise ConfigError(f"run {after['run']} did not start from the final weights of {before['run']} "
                              f"(sha256 {after['init_sha256']} vs {before['result_sha256']})")

    model.load_state_dict({k: v.float() for k, v in load_file(str(candidate)).items()})
    recipe = Recipe(**ck["recipe"])
    test = test_data(dataset, eval_sequences, mnist_dir)
    metrics = evaluate(model, test, frames_in=recipe.frames_in, frames_out=recipe.frames_out,
                       progress=progress)
    described = test_set_description(dataset, test, recipe)
    old = entry.get("metrics")
    if (old and entry.get("weights") and not force and old.get("dataset") == described
            and old.get("sequences") == metrics["sequences"] and round(metrics["mse"], 4) >= old["mse"]):
        candidate.unlink(missing_ok=True)
        raise ConfigError(f"not released: {run} scores MSE {metrics['mse']:.2f} on {described} "
                          f"({metrics['sequences']} sequences), not better than the current release's "
                          f"{old['mse']:.2f}; pass --force to replace it anyway")
    os.replace(candidate, final_path)
    info["path"] = str(final_path)
    entry["weights"] = {"filename": f"{name}.safetensors", "sha256": info["sha256"], "size": info["size"],
                        "dtype": "float16" if half else "float32",
                        "hub": {"repo_id": f"stzoo/{name}", "filename": "model.safetensors", "revision": "main"}}
    entry["metrics"] = {"dataset": described, "split": "test", "sequences": metrics["sequences"],
                        **{k: round(metrics[k], 4) for k in ("mse", "mae", "ssim", "psnr")},
                        "command": command or f"stzoo release {name}"}
    runs = previous + records
    last = records[-1]
    steps_per_epoch = math.ceil(recipe.epoch_size / recipe.batch_size)
    entry["training"] = {"recipe": ck["recipe"], "epochs": round(ck["step"] / steps_per_epoch, 3),
                         "steps": ck["step"], "hardware": last["hardware"],
                         "wall_clock_s": last["wall_clock_s"], "command": last["command"],
                         "torch": last["torch"], "date": datetime.date.today().isoformat(),
                         "runs": runs, "totals": ledger_totals(runs)}
    if dataset != "moving_mnist":  # the persistence baseline of that test set, measured beside the model
        base = evaluate_copy_last(test, frames_in=recipe.frames_in, frames_out=recipe.frames_out,
                                  progress=progress)
        manifest.setdefault("baselines", {})[f"copy-last-frame ({dataset})"] = {
            "description": f"every future frame = the last observed frame, on {described}",
            "metrics": {"dataset": described, "split": "test", "sequences": base["sequences"],
                        **{k: round(base[k], 4) for k in ("mse", "mae", "ssim", "psnr")},
                        "command": command or f"stzoo release {name}"}}
    atomic_write_text(manifest_path, json.dumps(manifest, indent=2, ensure_ascii=False) + "\n")
    return {"name": name, **entry}
