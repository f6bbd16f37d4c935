"""Fine-tune a zoo model on your own videos, on one device or data-parallel under ``torchrun``.

The loop::

    read + check every video  →  convert (channels, size)  →  split train / validation
    adapt the model (channels / size / frames; see stzoo.training.adapt)
    size the step budget from the data (steps="auto"); measure copy-last-frame on the validation clips
    for each epoch (the last one may be shorter, so the run is exactly the budget):
        for each batch of the epoch's shuffled clips (a pure function of seed and epoch):
            the step of stzoo.training.loop (loss, backward, clip, AdamW + OneCycle step; bar, log)
            every `checkpoint_every` steps: atomic checkpoint (model, optimizer, scheduler, RNG)
        validate (MSE / MAE / SSIM / PSNR); new best → write the save_pretrained folder
        atomic checkpoint; early stopping after `patience` epochs without improvement
    compare the kept model with copy-last-frame; warn in plain words when it does not beat it

All errors about the data are raised before the first step. The output folder holds the best
model in the :func:`stzoo.zoo.folder.save_pretrained` layout (``stzoo.load(out_dir)`` loads it),
plus ``checkpoint.pt`` (to resume), ``history.json`` and ``log.jsonl``.

Distributed: launched with ``torchrun`` (``WORLD_SIZE`` > 1 in the environment), every process
reads the data, :class:`torch.utils.data.DistributedSampler` gives each its share of every epoch,
the model is wrapped in ``DistributedDataParallel`` (gloo on CPU, NCCL on GPUs), its BatchNorm layers
normalise over every process's clips (:func:`~stzoo.training.distributed.sync_batchnorm`), losses and
metrics are averaged over all processes, and only rank 0 writes files.
"""

from __future__ import annotations

import datetime
import json
import math
import os
import sys
import warnings
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, NamedTuple

import torch
from torch import Tensor, nn

from stzoo.data.clips import (
    ClipDataset,
    Video,
    arg,
    auto_split,
    check_lengths,
    convert_video,
    load_videos,
    naming,
    split_videos,
)
from stzoo.errors import ConfigError, InputError
from stzoo.interfaces import PredictorLike
from stzoo.models import get_architecture
from stzoo.runtime import cpu_description, native_bf16
from stzoo.training.adapt import adapt, check_resolution
from stzoo.training.checkpoints import (
    STATE_DICT,
    atomic_write_text,
    capture_rng_state,
    holding_run_lock,
    load_checkpoint,
    refuse_other_run,
    refusing_unfit_state,
    restore_rng_state,
    restore_training_state,
    save_training_checkpoint,
)
from stzoo.training.distributed import Dist, setup, sync_batchnorm
from stzoo.training.evaluation import evaluate, evaluate_copy_last
from stzoo.training.loop import Clocks, Loop, make_optimizer
from stzoo.training.train import Recipe, _hardware
from stzoo.zoo.entry import ZooEntry

__all__ = [
    "finetune",
    "FinetuneResult",
    "FinetuneHistory",
    "FinetuneWarning",
    "CHECKPOINT_NAME",
    "DEFAULT_LR",
    "AUTO_PASSES",
    "AUTO_MIN_STEPS",
    "AUTO_MAX_STEPS",
    "plan_steps",
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
        best_epoch: the epoch whose weights were kept (lowest validation MSE; the last epoch when
            there is no validation data).
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

    @property
    def train_losses(self) -> list[float]:
        """The per-step losses of this call, in order."""
        return [s["loss"] for s in self.steps]

    def summary(self) -> str:
        """A few lines for people: budget, the kept model against copy-last-frame, warnings."""
        p = self.plan
        lines = [
            f"trained {p.get('steps', '?')} step(s) in {len(self.epochs)} epoch(s) ({p.get('rule', '')})"
            + (", stopped early" if self.stopped_early else "")
        ]
        if self.best is not None and self.persistence is not None:
            b, c = self.best, self.persistence
            lines.append(
                f"validation ({b['sequences']} clips), best epoch {self.best_epoch}: MSE {b['mse']:.4g}, "
                f"SSIM {b['ssim']:.4g}; copy-last-frame on the same clips: MSE {c['mse']:.4g}, "
                f"SSIM {c['ssim']:.4g} ({_verdict(b['mse'], c['mse'])})"
            )
        elif self.train_check is not None:
            m, c = self.train_check["model"], self.train_check["copy_last_frame"]
            lines.append(
                f"no validation data; on {self.train_check['clips']} training clips (seen in training): "
                f"MSE {m['mse']:.4g}, SSIM {m['ssim']:.4g}; copy-last-frame: MSE {c['mse']:.4g}, "
                f"SSIM {c['ssim']:.4g} ({_verdict(m['mse'], c['mse'])})"
            )
        lines += [f"warning: {w}" for w in self.warnings]
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class FinetuneResult(NamedTuple):
    """``(predictor, history)``: the fine-tuned model (best weights) and what happened."""

    predictor: PredictorLike
    history: FinetuneHistory


# --------------------------------------------------------------------------------------------
# preparation (everything that can fail on the data happens here, before training)
def _target_channels(videos: Sequence[Video], channels: int | None) -> int:
    if channels is not None:
        if isinstance(channels, bool) or not isinstance(channels, int) or channels < 1:
            raise InputError(f"{arg('channels', '--channels')} must be a positive int or None, got {channels!r}")
        return channels
    found = {v.channels for v in videos}
    if found <= {1}:
        return 1
    if found <= {1, 3, 4}:
        return 3
    if len(found) == 1:
        return found.pop()
    raise InputError(
        f"the videos have different channel counts {sorted(found)}; pass " + arg("channels=N", "--channels N")
    )


def _size_arg(hw: tuple[int, int]) -> str:
    return arg(f"size=({hw[0]}, {hw[1]})", f"--size {hw[0]}x{hw[1]}")


def _target_size(videos: Sequence[Video], size: Any, spec_hw: tuple[int, int]) -> tuple[int, int]:
    if size == "model":
        return spec_hw
    if size is None or size == "native":
        sizes = {v.size for v in videos}
        if len(sizes) > 1:
            largest = max(sizes, key=lambda hw: hw[0] * hw[1])
            raise InputError(
                arg("size='native'", "--size native") + " (the default) trains at the videos' own "
                f"frame size, but they have several: {sorted(sizes)} (H×W); pass "
                f"{_size_arg(largest)} (or another H×W) to resize them all to one, or "
                + arg("size='model'", "--size model")
                + f" for the model's {spec_hw[0]}×{spec_hw[1]}"
            )
        return sizes.pop()
    if (
        isinstance(size, (tuple, list))
        and len(size) == 2
        and all(isinstance(s, int) and not isinstance(s, bool) and s > 0 for s in size)
    ):
        return int(size[0]), int(size[1])
    raise InputError(
        f"{arg('size', '--size')} must be 'native', 'model' or "
        + arg("(height, width)", "HxW (e.g. 32x48)")
        + f", got {size!r}"
    )


def _check_size(arch: str, config: dict[str, Any], hw: tuple[int, int], size: Any) -> None:
    """:func:`stzoo.training.adapt.check_resolution`, its error completed with the option that fixes it."""
    try:
        check_resolution(arch, config, *hw)
    except InputError as exc:
        spec = get_architecture(arch)
        f = spec.size_multiple(spec.make_config(config))
        near = (max(f, int(hw[0] / f + 0.5) * f), max(f, int(hw[1] / f + 0.5) * f))  # halves round up
        what = "the videos' own size" if size in (None, "native") else "the size asked for"
        raise InputError(
            f"{exc} ({what}); pass {_size_arg(near)} to fine-tune at the nearest size it can run "
            "at (the frames are resized)"
        ) from None


def _matches(name: str, prefix: str) -> bool:
    """True when dotted ``name`` is ``prefix`` or lies under it (``encoder`` matches ``encoder.0.conv``)."""
    return name == prefix or name.startswith(prefix.rstrip(".") + ".")


def _freeze_prefixes(freeze: str | Sequence[str] | None) -> list[str]:
    """``freeze`` as a list of prefixes (``None`` → none)."""
    if freeze is None:
        return []
    return [freeze] if isinstance(freeze, str) else list(freeze)


def _apply_freeze(model: nn.Module, freeze: str | Sequence[str] | None) -> list[str]:
    """Turn off gradients of parameters whose name starts with one of ``freeze``; return their names."""
    prefixes = _freeze_prefixes(freeze)
    if not prefixes:
        return []
    names = [n for n, _ in model.named_parameters()]
    frozen: list[str] = []
    for prefix in prefixes:
        hit = [n for n in names if _matches(n, prefix)]
        if not hit:
            tops = sorted({n.split(".")[0] for n in names})
            raise InputError(
                f"{arg(f'freeze={prefix!r}', f'--freeze {prefix}')} matches no parameter; names start "
                f"with {', '.join(tops)} (e.g. "
                + arg("freeze='encoder' or freeze=['cells.0']", "--freeze encoder or --freeze cells.0")
                + ")"
            )
        frozen += [n for n in hit if n not in frozen]
    params = dict(model.named_parameters())
    for n in frozen:
        params[n].requires_grad_(False)
    if len(frozen) == len(names):
        raise InputError(
            f"{arg(f'freeze={freeze!r}', '--freeze ' + ' '.join(prefixes))} freezes every parameter: "
            "nothing left to fine-tune"
        )
    return frozen


def _frozen_norm_layers(model: nn.Module, freeze: str | Sequence[str] | None) -> list[nn.Module]:
    """BatchNorm-style layers (running statistics) that lie under one of the ``freeze`` prefixes.

    A frozen part of the network should not change at all, but in training mode such a layer
    normalises with batch statistics and keeps updating its running mean and variance, gradients or
    not. Fine-tuning puts these layers in eval mode after every ``train()``: they then normalise
    with, and keep, their stored statistics."""
    prefixes = _freeze_prefixes(freeze)
    return [
        m
        for name, m in model.named_modules()
        if isinstance(m, nn.modules.batchnorm._NormBase)
        and m.track_running_stats
        and any(_matches(name, p) for p in prefixes)
    ]


def _data_summary(videos: Sequence[Video], limit: int = 5) -> str:
    listed = "; ".join(v.describe() for v in videos[:limit])
    more = f"; and {len(videos) - limit} more" if len(videos) > limit else ""
    return f"{len(videos)} video(s): {listed}{more}"


# --------------------------------------------------------------------------------------------
@holding_run_lock  # one run per out_dir at a time (a second one gets a clear error)
def finetune(
    predictor: PredictorLike,
    data: Any,
    *,
    steps: int | str = "auto",
    epochs: int | None = None,
    lr: float = DEFAULT_LR,
    batch_size: int = 8,
    val: Any = "auto",
    split: str = "auto",
    stride: int = 1,
    loss: str = "mse",
    alpha: float = 0.1,
    freeze: str | Sequence[str] | None = None,
    device: str | torch.device | None = None,
    amp: bool | None = None,
    out_dir: str | os.PathLike = "finetuned",
    resume: bool = False,
    patience: int | None = None,
    min_delta: float = 0.0,
    channels: int | None = None,
    size: Any = "native",
    frames_in: int | None = None,
    frames_out: int | None = None,
    data_layout: str | None = None,
    max_steps: int | None = None,
    seed: int = 0,
    weight_decay: float = 0.0,
    grad_clip: float = 1.0,
    scheduled_sampling: float = 0.0,
    checkpoint_every: int = 200,
    name: str | None = None,
    push_to_hub: str | None = None,
    progress: bool = True,
    command: str | None = None,
    cli: bool = False,
) -> FinetuneResult:
    """Fine-tune ``predictor`` on ``data`` and write the best model to ``out_dir``.

    Args:
        predictor: the starting model, e.g. ``stzoo.load("tau-mmnist")``. It is not modified.
        data: the training videos: a path (GIF, MP4/AVI/MOV with ``stzoo[video]``, ``.npy``/``.npz``,
            a folder of frames, a folder of videos), an array / tensor, or a list of these (see
            :func:`stzoo.data.clips.load_videos`).
        steps: optimizer steps in all. ``"auto"`` (default) sizes them from the data: about
            ``AUTO_PASSES`` passes over the training clips, at least ``AUTO_MIN_STEPS`` and at most
            ``AUTO_MAX_STEPS`` (see :func:`plan_steps`); an int asks for exactly that many.
        epochs: instead of ``steps``: this many full passes over the training clips.
        lr: peak learning rate of the OneCycle schedule (AdamW): a warm-up from ``lr / 25`` over
            the first 30 % of the steps, then a cosine decay to about zero.
        batch_size: clips per optimizer step (per process under torchrun).
        val: validation data. ``"auto"`` (default): hold out the last 20 % (at least one clip)
            when that leaves two clips' worth of frames to train on, else train without validation
            and say so (see :func:`stzoo.data.clips.auto_split`); a fraction in [0, 1) of ``data``
            held out (see ``split``; 0: no validation, the last epoch is kept); or separate
            videos in any form ``data`` takes.
        split: how a fraction is held out: ``"video"`` (whole videos), ``"time"`` (the end of every
            video) or ``"auto"`` (by video for two or more videos, else by time).
        stride: frames between the starts of consecutive clips.
        loss: ``"mse"`` or ``"mse+ddr"`` (TAU's differential divergence regularisation, weight ``alpha``).
        alpha: the DDR weight.
        freeze: parameter-name prefixes to keep fixed, e.g. ``"encoder"`` or ``["cells.0"]``.
            BatchNorm layers under them stay in eval mode (running statistics used and kept).
        device: e.g. ``"cpu"``, ``"cuda"``; default CUDA when available (``cuda:LOCAL_RANK`` under
            torchrun).
        amp: bfloat16 autocast (weights and optimizer stay float32); default (None): on where the device
            computes bf16 natively (:func:`stzoo.runtime.native_bf16`: a CUDA GPU that supports it, a
            CPU with AMX or AVX512-BF16), off elsewhere. The choice is recorded in the model's
            ``training`` block.
        out_dir: output folder: the save_pretrained files of the best model, ``checkpoint.pt``,
            ``history.json`` and ``log.jsonl``.
        resume: continue from ``out_dir/checkpoint.pt`` with the same optimizer, scheduler and RNG
            state (a fresh start if there is none). Without it an existing checkpoint is an error.
        patience: stop after this many validations without a validation-MSE improvement larger
            than ``min_delta``. ``None`` (default): never stop early; the best validation is kept
            anyway, and with the OneCycle schedule the best epochs come late (measured, see
            docs/finetuning.md).
        min_delta: the smallest MSE decrease that counts as an improvement.
        channels: channels to train with (default: those of the data: 1 for grey videos, 3 if any
            is colour). A model with another channel count is adapted (see :mod:`stzoo.training.adapt`).
        size: ``"native"`` (default: keep the data's frame size, so the model is trained at the
            size it will predict at; the model is adapted to it, and an error says which size to
            pass when the architecture cannot run at it), ``"model"`` (resize to the model's
            training size) or ``(height, width)``.
        frames_in: frames read (default: the model's; for TAU, which maps T frames to T frames,
            giving one of ``frames_in`` / ``frames_out`` sets both).
        frames_out: frames predicted (default: the model's).
        data_layout: layout of array data when it cannot be inferred (``"THWC"``, ``"TCHW"``).
        max_steps: stop after this many optimizer steps in all (the schedule still spans the whole
            budget); a checkpoint is written, and ``resume=True`` continues.
        seed: seeds the shuffling and the initialisation of re-initialised layers.
        weight_decay: as in :class:`stzoo.training.train.Recipe`.
        grad_clip: as in :class:`stzoo.training.train.Recipe`.
        scheduled_sampling: as in :class:`stzoo.training.train.Recipe`.
        checkpoint_every: optimizer steps between checkpoints inside an epoch (one is also written
            after every epoch).
        name: the fine-tuned model's name (default ``<base>-finetuned``).
        push_to_hub: a Hub repo id to upload the output folder to at the end.
        progress: show progress bars and print :meth:`FinetuneHistory.summary` at the end.
        command: the command line, recorded in the model card.
        cli: name command-line flags (``--val 0``) instead of Python arguments (``val=0``) in
            errors and warnings; ``stzoo finetune`` sets it.

    Returns:
        :class:`FinetuneResult` ``(predictor, history)``: a new Predictor with the best weights, and
        a :class:`FinetuneHistory`. Every run compares the kept model with copying the last frame
        on the validation clips (``history.persistence``, ``history.beats_persistence``, the
        model card) and issues a :class:`FinetuneWarning` when it does not beat it.

    Raises:
        InputError: bad data (unreadable, empty, too short, mixed sizes, ...), bad arguments, or a
            size the architecture cannot run at — all before the first training step.
        ConfigError: ``out_dir`` holds a checkpoint of another run, or one exists and ``resume`` is
            False.
    """
    from stzoo.runtime import tune_allocator

    tune_allocator()  # a long loop: keep the step's large buffers in the heap (see stzoo.runtime)
    with naming(cli):
        return _finetune(
            predictor,
            data,
            steps=steps,
            epochs=epochs,
            lr=lr,
            batch_size=batch_size,
            val=val,
            split=split,
            stride=stride,
            loss=loss,
            alpha=alpha,
            freeze=freeze,
            device=device,
            amp=amp,
            out_dir=out_dir,
            resume=resume,
            patience=patience,
            min_delta=min_delta,
            channels=channels,
            size=size,
            frames_in=frames_in,
            frames_out=frames_out,
            data_layout=data_layout,
            max_steps=max_steps,
            seed=seed,
            weight_decay=weight_decay,
            grad_clip=grad_clip,
            scheduled_sampling=scheduled_sampling,
            checkpoint_every=checkpoint_every,
            name=name,
            push_to_hub=push_to_hub,
            progress=progress,
            command=command,
            cli=cli,
        )


def _positive_int(label: str, v: Any) -> None:
    if isinstance(v, bool) or not isinstance(v, int) or v < 1:
        raise InputError(f"{arg(label, '--' + label.replace('_', '-'))} must be a positive int, got {v!r}")


def _finetune(
    predictor: PredictorLike,
    data: Any,
    *,
    steps: int | str,
    epochs: int | None,
    lr: float,
    batch_size: int,
    val: Any,
    split: str,
    stride: int,
    loss: str,
    alpha: float,
    freeze: str | Sequence[str] | None,
    device: str | torch.device | None,
    amp: bool | None,
    out_dir: str | os.PathLike,
    resume: bool,
    patience: int | None,
    min_delta: float,
    channels: int | None,
    size: Any,
    frames_in: int | None,
    frames_out: int | None,
    data_layout: str | None,
    max_steps: int | None,
    seed: int,
    weight_decay: float,
    grad_clip: float,
    scheduled_sampling: float,
    checkpoint_every: int,
    name: str | None,
    push_to_hub: str | None,
    progress: bool,
    command: str | None,
    cli: bool,
) -> FinetuneResult:
    for label, v in (("batch_size", batch_size), ("stride", stride), ("checkpoint_every", checkpoint_every)):
        _positive_int(label, v)
    if epochs is not None:
        _positive_int("epochs", epochs)
    if steps not in (None, "auto"):
        _positive_int("steps", steps)
    if max_steps is not None:
        _positive_int("max_steps", max_steps)
    if loss not in ("mse", "mse+ddr"):
        raise InputError(f"{arg('loss', '--loss')} must be 'mse' or 'mse+ddr', got {loss!r}")
    if isinstance(lr, bool) or not isinstance(lr, (int, float)) or not lr > 0:
        raise InputError(f"{arg('lr', '--lr')} must be > 0, got {lr!r}")
    plan_steps(1, 1, steps=steps, epochs=epochs)  # steps and epochs together: refused before reading any data
    spec = predictor.spec
    source = getattr(predictor, "reference_model", predictor.model)
    if getattr(source, "config", None) is None:
        raise ConfigError(
            "this Predictor's model does not record its config (model.config); build it with "
            "stzoo.load or stzoo.models.build_model"
        )
    arch_spec = get_architecture(source)
    arch = arch_spec.name
    tied = arch_spec.spec_keys["frames_in"] == arch_spec.spec_keys["frames_out"]
    if tied and (frames_in is None) != (frames_out is None):  # e.g. TAU maps T frames to T frames
        frames_in = frames_out = frames_in or frames_out
    f_in, f_out = frames_in or spec.frames_in, frames_out or spec.frames_out
    window = f_in + f_out

    # ---- data: read, check, convert, split (all before any training) -------------------------
    # arrays are read with the layout rule predict uses for the model the data is for (stzoo.frames.layout)
    read_as = (
        channels if isinstance(channels, int) and not isinstance(channels, bool) and channels > 0 else spec.channels
    )
    videos = load_videos(data, layout=data_layout, channels=read_as)
    check_lengths(videos, window)
    held: list[Video] = []
    auto_val = isinstance(val, str) and val == "auto"
    if auto_val or val is None or (isinstance(val, (int, float)) and not isinstance(val, bool)):
        fraction = 0.0 if auto_val else float(val or 0.0)
        if not 0 <= fraction < 1:
            raise InputError(
                f"{arg('val', '--val')} must be 'auto', a fraction in [0, 1) or validation videos, got {val!r}"
            )
        split_note = arg("val=0", "--val 0") + " was given" if not auto_val else ""
    elif isinstance(val, str) and not os.path.exists(os.path.expanduser(val)) and not val.strip("0123456789.-"):
        raise InputError(
            f"{arg('val', '--val')} must be 'auto', a fraction in [0, 1) or validation videos, got {val!r}"
        )
    else:
        fraction = 0.0
        held = load_videos(val, layout=data_layout, channels=read_as)
        check_lengths(held, window, "validation ")
        split_note = f"validation: {len(held)} separate video(s)"
    c = _target_channels(list(videos) + held, channels)
    hw = _target_size(list(videos) + held, size, (spec.height, spec.width))
    native = hw == _native_size(list(videos) + held)
    _check_size(arch, source.config, hw, size)
    videos = [convert_video(v, channels=c, size=hw) for v in videos]
    held = [convert_video(v, channels=c, size=hw) for v in held]
    if auto_val:
        videos, held, split_note = auto_split(videos, window=window, split=split)
    elif fraction:
        by = split if split != "auto" else ("video" if len(videos) >= 2 else "time")
        videos, held = split_videos(videos, fraction, split=split, window=window)
        split_note = f"validation: a fraction {fraction:g} of the data, " + (
            "whole videos" if by == "video" else "the end of every video"
        )
    train_ds = ClipDataset(videos, window, stride)
    val_ds = ClipDataset(held, window, stride) if held else None
    recipe = Recipe(
        lr=float(lr),
        batch_size=batch_size,
        epochs=epochs or 1,
        epoch_size=len(train_ds),
        loss=loss,
        alpha=alpha,
        weight_decay=weight_decay,
        scheduled_sampling=scheduled_sampling,
        frames_in=f_in,
        frames_out=f_out,
        seed=seed,
        grad_clip=grad_clip,
    )
    opts = _Options(
        out_dir=Path(out_dir).expanduser(),
        resume=resume,
        channels=c,
        size=hw,
        freeze=freeze,
        amp=amp,
        patience=patience,
        min_delta=min_delta,
        max_steps=max_steps,
        checkpoint_every=checkpoint_every,
        name=name,
        push_to_hub=push_to_hub,
        progress=progress,
        command=command,
        steps=steps,
        epochs=epochs,
        native=native,
        split_note=split_note,
        auto_val=auto_val,
        cli=cli,
    )

    dist_, dev = setup(device)
    try:
        return _run(predictor, arch, train_ds, val_ds, recipe, opts, dist_, dev)
    finally:
        dist_.close()


@dataclass
class _Options:
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


def _native_size(videos: Sequence[Video]) -> tuple[int, int] | None:
    sizes = {v.size for v in videos}
    return sizes.pop() if len(sizes) == 1 else None


def _run(
    predictor: PredictorLike,
    arch: str,
    train_ds: ClipDataset,
    val_ds: ClipDataset | None,
    recipe: Recipe,
    o: _Options,
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
                    f"{pers['ssim']:.4g} ({_verdict(v['mse'], pers['mse'])})"
                )
            val_txt += "."
        elif history.train_check is not None:
            m, cl = history.train_check["model"], history.train_check["copy_last_frame"]
            val_txt = (
                f" No validation data ({o.split_note}). On {history.train_check['clips']} training clips "
                f"(seen in training, so not a held-out measurement): MSE {m['mse']:.4g}, SSIM {m['ssim']:.4g}; "
                f"copying the last frame: MSE {cl['mse']:.4g}, SSIM {cl['ssim']:.4g} "
                f"({_verdict(m['mse'], cl['mse'])})."
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

    with sync_batchnorm(model, dist_):  # BatchNorm over the whole global batch, as one process
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


def _verdict(mse: float, baseline: float) -> str:
    """How an MSE compares with copy-last-frame's, in words."""
    if mse < baseline:
        return f"{100 * (1 - mse / baseline):.0f} % lower than copy-last-frame"
    return f"{mse / baseline:.2g}× copy-last-frame's: NOT better than repeating the last frame"


def _compare(
    history: FinetuneHistory,
    model: nn.Module,
    best_state: dict[str, Tensor],
    train_ds: ClipDataset,
    val_ds: ClipDataset | None,
    recipe: Recipe,
    o: _Options,
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
