"""Fine-tune a zoo model on your own videos, on one device or data-parallel under ``torchrun``.

The loop::

    read + check every video  →  convert (channels, size)  →  split train / validation
    adapt the model (channels / size / frames; see stzoo.training.adapt); add the persistence head
        (head="persistence", the default: forecast = last frame + learned change, starting as copy-last)
    size the step budget from the data (steps="auto"), time a few steps and cut it to time_budget (less the
        share of stage 1); print the estimate
    measure copy-last-frame on every validation video
    stage 1 (the persistence head, version 2 or 3): train the head alone, the base not run (cheap; at most
        HEAD_STAGE_SHARE of time_budget), validated like the epochs below; its best state (else copy-last)
        starts stage 2
    stage 2: validate the starting model (step 0): the first best
    for each epoch (the last one may be shorter, so the run is exactly the budget):
        for each batch of the epoch's shuffled clips (a pure function of seed and epoch), flipped /
        reversed per `augment` (a pure function of seed and step):
            the step of stzoo.training.loop (loss, backward, clip, AdamW + OneCycle step; bar, log)
            every `checkpoint_every` steps: atomic checkpoint (model, optimizer, scheduler, RNG)
        validate (MSE / MAE / SSIM / PSNR, per video); new best (lowest MSE among the states not worse
            than copy-last on any validation video by MSE or SSIM, see ``select``) → write the folder
        atomic checkpoint; early stopping after `patience` epochs without improvement
    compare the kept model with copy-last-frame; if it does not beat it, the folder gets the
    persistence-equivalent model (labelled so in its card) and a warning says so in plain words

Static footage (no frame differs from the one before) is not trained on: copy-last is exact, and the
folder gets the persistence-equivalent model with a message saying why.

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

import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

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
from stzoo.training.checkpoints import holding_run_lock
from stzoo.training.distributed import setup
from stzoo.training.finetune_budget import BUDGET_CLOCKS, DEFAULT_TIME_BUDGET
from stzoo.training.finetune_data import (
    _check_size,
    _native_size,
    _target_channels,
    _target_size,
    is_static,
    parse_augment,
)
from stzoo.training.finetune_history import (
    AUTO_MAX_STEPS,
    AUTO_MIN_STEPS,
    AUTO_PASSES,
    CHECKPOINT_NAME,
    DEFAULT_LR,
    FinetuneHistory,
    FinetuneResult,
    FinetuneWarning,
    plan_steps,
)
from stzoo.training.finetune_run import SELECTIONS, Options, run
from stzoo.training.train import Recipe

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
    "HEADS",
    "DEFAULT_TIME_BUDGET",
    "SELECTIONS",
]

#: ``head``: forecast = last frame + learned change (the default), or the model as it is
HEADS = ("persistence", "direct")


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
    head: str = "persistence",
    augment: str | Sequence[str] | None = "auto",
    time_budget: float | None = DEFAULT_TIME_BUDGET,
    select: str = "every-clip",
    budget_clock: str = "wall",
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
        val: validation data. ``"auto"`` (default): with up to eight videos, the end of every video
            (its last 20 %, at least one clip, no clip sharing a frame with a training clip) when each
            keeps a clip's worth to train on, so the kept state is chosen on every video; with more
            videos (or videos too short to cut) the last 20 % of the videos; else train without
            validation and say so (see :func:`stzoo.data.clips.auto_split`); a fraction in [0, 1) of
            ``data`` held out (see ``split``; 0: no validation, the last epoch is kept); or separate
            videos in any form ``data`` takes.
        split: how validation data is held out: ``"video"`` (whole videos: the behaviour before the
            split by time became the default for a few videos), ``"time"`` (the end of every video) or
            ``"auto"`` (``val="auto"``: as described there; a fraction: by video for two or more
            videos, else by time).
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
        head: ``"persistence"`` (default): wrap the model so that its forecast is the last observed
            frame plus a learned change, starting as exactly copy-last (see
            :mod:`stzoo.models.persistence`; recorded in the folder's config, so ``stzoo.load`` rebuilds
            it); ``"direct"``: train the model as it is (the behaviour before the head existed).
        augment: ``"auto"`` (default: horizontal flips), ``"none"``, or names from
            ``"hflip"``, ``"vflip"``, ``"reverse"`` (time reversal), ``"crop"`` (the clip seen through a
            window shifted by up to 1/8 of the frame, the edge repeated), as a list or comma-separated; each
            applied to a training clip with probability ½.
        time_budget: minutes of training and validation that ``steps="auto"`` plans for: a few steps
            are timed first and the budget is cut to what fits (the estimate is printed before the
            first step). ``None``: no time limit. Ignored with ``steps=N`` or ``epochs=N``.
        select: how the kept state is chosen among the validated ones (the start, step 0, included):
            ``"every-clip"`` (default): the lowest validation MSE among the states that are not worse
            than copying the last frame on any validation video (neither a higher MSE nor a lower SSIM),
            so the folder is never worse than persistence on any of its validation clips; ``"mean"``: the
            lowest validation MSE over all validation clips (the rule before). Recorded in the history and
            the model card.
        budget_clock: the clock ``time_budget`` is measured on: ``"wall"`` (default: elapsed time on this
            machine as loaded now; a busy machine plans fewer steps) or ``"cpu"`` (this process's CPU time:
            the plan a quiet machine would make; the run then takes about ``time_budget`` CPU-minutes).

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
            head=head,
            augment=augment,
            time_budget=time_budget,
            select=select,
            budget_clock=budget_clock,
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
    head: str,
    augment: str | Sequence[str] | None,
    time_budget: float | None,
    select: str,
    budget_clock: str,
) -> FinetuneResult:
    if head not in HEADS:
        raise InputError(f"{arg('head', '--head')} must be one of {', '.join(HEADS)}, got {head!r}")
    if select not in SELECTIONS:
        raise InputError(f"{arg('select', '--select')} must be one of {', '.join(SELECTIONS)}, got {select!r}")
    if budget_clock not in BUDGET_CLOCKS:
        raise InputError(
            f"{arg('budget_clock', '--budget-clock')} must be one of {', '.join(BUDGET_CLOCKS)}, got {budget_clock!r}"
        )
    augment = parse_augment(augment)
    if time_budget is not None and (
        isinstance(time_budget, bool) or not isinstance(time_budget, (int, float)) or not 0 < time_budget < math.inf
    ):
        raise InputError(
            f"{arg('time_budget', '--time-budget')} must be a positive number of minutes or "
            + arg("None", "0 (no limit)")
            + f", got {time_budget!r}"
        )
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
    opts = Options(
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
        head=head,
        augment=augment,
        time_budget=None if time_budget is None else float(time_budget),
        static=is_static(list(videos) + list(held)),
        select=select,
        budget_clock=budget_clock,
    )

    dist_, dev = setup(device)
    try:
        return run(predictor, arch, train_ds, val_ds, recipe, opts, dist_, dev)
    finally:
        dist_.close()
