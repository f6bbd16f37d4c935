"""`stzoo train`, `finetune`, `evaluate`: train a zoo architecture, fine-tune a model on videos, measure it."""

from __future__ import annotations

import argparse
import json
from dataclasses import fields, replace
from typing import Any

from stzoo.cli.common import (
    add_batch_size,
    add_dataset_options,
    add_device,
    add_dtype,
    add_random,
    add_threads,
    add_weights,
    count,
    dataset_options,
    finite_float,
    nonnegative_int,
    positive_float,
    positive_int,
    set_threads,
)

__all__ = ["register", "train_config"]


def _recipe_from_args(arch: str, args: argparse.Namespace):
    from stzoo.models import get_architecture

    recipe = get_architecture(arch).recipe
    overrides = {f.name: getattr(args, f.name) for f in fields(recipe) if getattr(args, f.name, None) is not None}
    if getattr(args, "dataset", None):  # --dataset D trains on D's protocol (taxibj: 4→4, kth20: 10→20, ...)
        from stzoo.data.registry import get_dataset

        spec = get_dataset(args.dataset)
        overrides.setdefault("frames_in", spec.frames_in)
        overrides.setdefault("frames_out", spec.frames_out)
    return replace(recipe, **overrides)


def _parse_config_setting(text: str) -> tuple[str, Any]:
    """``KEY=VALUE`` of ``--config``; VALUE is read as JSON (``8``, ``0.5``, ``true``), else kept as text."""
    key, sep, value = text.partition("=")
    if not sep or not key.strip() or not value.strip():
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE (e.g. num_hidden=64), got {text!r}")
    try:
        parsed = json.loads(value)
    except json.JSONDecodeError:
        parsed = value
    return key.strip(), parsed


def train_config(arch: str, config: dict[str, Any], settings: list[tuple[str, Any]] | None) -> dict[str, Any]:
    """The entry's ``config`` with ``--config`` settings applied, checked by the architecture (a
    :class:`ConfigError` names an unknown key or a bad value)."""
    from stzoo.models import override_config

    return override_config(arch, config, dict(settings)) if settings else dict(config)


def _cmd_train(args: argparse.Namespace) -> int:
    import os

    from stzoo.api import info
    from stzoo.training.train import train

    set_threads(args)
    entry = info(args.name)
    config = train_config(entry["architecture"], entry["config"], args.config)
    init_from = args.init_from
    if init_from == "released":
        from stzoo.zoo.manifest import get_entry
        from stzoo.zoo.resolve import resolve_weights

        init_from = resolve_weights(get_entry(args.name))
    summary = train(
        entry["architecture"],
        config,
        args.out,
        dataset_options=dataset_options(args),
        recipe=_recipe_from_args(entry["architecture"], args),
        device=args.device,
        max_steps=args.max_steps,
        eval_sequences=args.eval_sequences,
        checkpoint_every_s=args.checkpoint_every,
        command=args.command_line,
        init_from=init_from,
        dtype=args.dtype,
        time_budget_s=args.time_budget * 60 if args.time_budget is not None else None,
        dataset=args.dataset or entry.get("dataset", "moving_mnist"),
        budget_clock=args.budget_clock,
        curve_every_s=args.curve_every * 60 if args.curve_every is not None else None,
        curve_sequences=args.curve_sequences,
        data_workers=args.data_workers,
        data_pool=args.data_pool,
        accumulate=args.accumulate,
        sync_batchnorm=args.sync_batchnorm,
        dist_timeout_s=args.dist_timeout * 60,
        budget_covers=args.budget_covers,
    )
    if int(os.environ.get("RANK", "0")) == 0:  # under torchrun only rank 0 reports
        keys = ("step", "total_steps", "wall_clock_s", "call_wall_s", "metrics", "budget")
        print(json.dumps({k: summary[k] for k in keys if k in summary}, indent=2))
    return 0


def _parse_size(text: str) -> str | tuple[int, int]:
    if text in ("model", "native"):
        return text
    try:
        h, w = (int(v) for v in text.lower().replace("×", "x").split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected 'model', 'native' or HxW (e.g. 64x64), got {text!r}") from None
    return h, w


def _cmd_finetune(args: argparse.Namespace) -> int:
    import os
    import warnings

    from stzoo.api import load
    from stzoo.training.finetune import FinetuneWarning, finetune

    amp = _finetune_amp(args)  # a contradiction is reported before anything loads
    set_threads(args)
    p = load(args.name, pretrained=not args.random, weights=args.weights)
    if args.dataset is not None:  # a registered dataset (e.g. one read from --data-dir) instead of --data
        _finetune_data_from_dataset(args)
    elif not args.data:
        from stzoo.errors import InputError

        raise InputError("give the training videos with --data, or a registered dataset with --dataset")
    data = args.data[0] if len(args.data) == 1 else args.data
    val = args.val if args.val_data is None else (args.val_data[0] if len(args.val_data) == 1 else args.val_data)
    with warnings.catch_warnings():  # the summary below prints them, in words, once
        warnings.simplefilter("ignore", FinetuneWarning)
        result, history = finetune(
            p,
            data,
            steps=args.steps,
            epochs=args.epochs,
            lr=args.lr,
            batch_size=args.batch_size,
            val=val,
            split=args.split,
            stride=args.stride,
            loss=args.loss,
            alpha=args.alpha,
            freeze=args.freeze or None,
            device=args.device,
            amp=amp,
            out_dir=args.out,
            resume=args.resume,
            patience=None if args.patience == 0 else args.patience,
            min_delta=args.min_delta,
            channels=args.channels,
            size=args.size,
            frames_in=args.frames_in,
            frames_out=args.frames_out,
            data_layout=args.data_layout,
            max_steps=args.max_steps,
            seed=args.seed,
            weight_decay=args.weight_decay,
            grad_clip=args.grad_clip,
            scheduled_sampling=args.scheduled_sampling,
            checkpoint_every=args.checkpoint_every,
            name=args.model_name,
            push_to_hub=args.push_to_hub,
            progress=not args.quiet,
            command=args.command_line,
            cli=True,
            head=args.head,
            augment=args.augment,
            time_budget=args.time_budget or None,
            select=args.select,
            budget_clock=args.budget_clock,
        )
    if int(os.environ.get("RANK", "0")) == 0:  # under torchrun only rank 0 reports
        print(
            json.dumps(
                {
                    "out_dir": history.out_dir,
                    "best_epoch": history.best_epoch,
                    "best": history.best,
                    "copy_last_frame": history.persistence,
                    "beats_copy_last_frame": history.beats_persistence,
                    "train_check": history.train_check,
                    "steps": history.plan.get("steps"),
                    "epochs": len(history.epochs),
                    "stopped_early": history.stopped_early,
                    "split": history.data.get("split"),
                    "adaptation": history.adaptation,
                    "warnings": history.warnings,
                },
                indent=2,
            )
        )
        print(history.summary())
        print(f"load it with stzoo.load({history.out_dir!r})")
    return 0


def _finetune_data_from_dataset(args: argparse.Namespace) -> None:
    """``--dataset D``: its training sequences become ``--data``, the first test sequences ``--val-data``, and
    the dataset's frames in / out the defaults of ``--frames-in`` / ``--frames-out``."""
    from stzoo.data.openstl_files import sequences_array
    from stzoo.data.registry import get_dataset
    from stzoo.errors import InputError

    if args.data:
        raise InputError("give either --data or --dataset, not both")
    spec = get_dataset(args.dataset)
    options = dataset_options(args)
    fi, fo = args.frames_in or spec.frames_in, args.frames_out or spec.frames_out
    n = args.dataset_sequences
    train = spec.training_data(n, fi + fo, args.seed, options)
    args.data = [sequences_array(train, n)]
    if args.val_data is None and args.val != 0:
        args.val_data = [sequences_array(spec.test_data(max(1, n // 5), options, cache=False))[:, : fi + fo]]
    args.frames_in, args.frames_out, args.data_layout = fi, fo, "BTCHW"


def _finetune_amp(args: argparse.Namespace) -> bool | None:
    """finetune's ``amp`` from ``--dtype`` and the older ``--amp`` / ``--no-amp`` (which must agree)."""
    from stzoo.errors import InputError

    by_dtype = {"auto": None, "float32": False, "bfloat16": True}[args.dtype]
    if args.amp is not None and by_dtype is not None and args.amp != by_dtype:
        raise InputError(f"--{'amp' if args.amp else 'no-amp'} contradicts --dtype {args.dtype}; give one of them")
    return args.amp if args.amp is not None else by_dtype


def _cmd_evaluate(args: argparse.Namespace) -> int:
    from stzoo.api import load
    from stzoo.cli.protocol import openstl_reported, protocol_notes
    from stzoo.data.registry import get_dataset, list_datasets, test_set_size
    from stzoo.errors import ConfigError, InputError
    from stzoo.training.train import evaluate, evaluate_copy_last, test_data
    from stzoo.zoo.card import training_dataset

    set_threads(args)
    if args.batch_size < 1 or (args.sequences is not None and args.sequences < 1):
        raise InputError(f"--batch-size and --sequences must be at least 1, got {args.batch_size} and {args.sequences}")
    p = None if args.name == "copy-last-frame" else load(args.name, weights=args.weights, device=args.device)
    dataset = args.dataset or (p is not None and training_dataset(p.entry)) or "moving_mnist"
    if dataset not in list_datasets():
        raise ConfigError(f"unknown dataset {dataset!r}; known: {', '.join(list_datasets())}")
    if args.sequences is not None and test_set_size(dataset) and args.sequences > test_set_size(dataset):
        raise InputError(
            f"--sequences {args.sequences:,} is more than the {dataset} test set holds "
            f"({test_set_size(dataset):,} sequences); leave --sequences out to evaluate on all of them"
        )
    spec = get_dataset(dataset)
    # the datasets read from files report OpenSTL's conventions too; stzoo's own four assume values in [0, 1]
    scoring = {"openstl": spec.openstl_metrics, "stzoo_metrics": tuple(spec.value_range) == (0.0, 1.0)}
    sequences = args.sequences or test_set_size(dataset)
    test = test_data(dataset, sequences, dataset_options(args), cache=args.cache, progress=True)
    notes: list[str] = []
    if p is None:
        result = evaluate_copy_last(test, spec.frames_in, spec.frames_out, batch_size=args.batch_size, **scoring)
    else:
        if p.spec.channels != (c := int(test.batch(0, 1).shape[2])):
            raise ConfigError(
                f"{args.name} takes {p.spec.channels}-channel frames, but the {dataset} test set has "
                f"{c}; pick its own dataset with --dataset"
            )
        notes = protocol_notes((spec.frames_in, spec.frames_out), (p.spec.frames_in, p.spec.frames_out))
        result = evaluate(
            p.model,
            test,
            frames_in=p.spec.frames_in,
            frames_out=p.spec.frames_out,
            batch_size=args.batch_size,
            device=p.device,
            **scoring,
        )
    reported = openstl_reported(args.name)
    if reported is not None:
        result["openstl_reported"] = reported
    if notes:
        result["notes"] = notes
    print(json.dumps({"dataset": dataset, **result}, indent=2))
    return 0


def _parse_steps(text: str) -> str | int:
    if text == "auto":
        return text
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected 'auto' or a number of steps, got {text!r}") from None


def _parse_val(text: str) -> str | float:
    if text == "auto":
        return text
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected 'auto' or a fraction in [0, 1) (0: no validation; "
            f"separate videos go to --val-data), got {text!r}"
        ) from None


def register(sub: argparse._SubParsersAction) -> None:
    """Add `train`, `finetune` and `evaluate` to the subcommands ``sub``."""
    p = sub.add_parser(
        "train",
        help="train a zoo entry's architecture on a generated dataset (resumable)",
        description="Train NAME's architecture, config and recipe. The recipes' default is the "
        "papers' schedule, 200 epochs of 10,000 sequences: days on a 2-core CPU. On a CPU give a "
        "budget instead, e.g. `stzoo train tau-mmnist-s --out runs/tau --time-budget 60` (training and the "
        "final evaluation fit in 60 minutes; the run stops annealed). Data-parallel on N GPUs or several "
        "nodes: `torchrun --nproc_per_node N -m stzoo train ...` (--batch-size is the global batch, the "
        "same run on any number of processes). See docs/training.md.",
    )
    p.add_argument("name", help="zoo entry whose architecture, config and recipe to train (stzoo list)")
    p.add_argument("--out", required=True, help="run folder (checkpoint, logs); resumes if it exists (required)")
    add_dataset_options(p)
    add_device(p, "cuda if available, else cpu", what="cpu, cuda, cuda:1 ...")
    add_threads(p)
    p.add_argument(
        "--max-steps",
        type=positive_int,
        default=None,
        metavar="N",
        help="stop after N steps in all (the schedule still spans the whole run); running the same "
        "command again resumes (default: no limit)",
    )
    p.add_argument(
        "--eval-sequences",
        type=nonnegative_int,
        default=10000,
        metavar="N",
        help="test sequences of the final evaluation in summary.json; 0 skips it; with --time-budget, "
        "fewer if they do not fit in its share (default: 10000)",
    )
    p.add_argument(
        "--accumulate",
        type=int,
        default=1,
        metavar="N",
        help="split each process's share of the --batch-size sequences into N micro-batches before the one "
        "optimizer step: the same global batch on fewer devices or in less memory (default: 1)",
    )
    p.add_argument(
        "--sync-batchnorm",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="under torchrun, BatchNorm layers normalise with the statistics of the whole global batch, "
        "as one process would; --no-sync-batchnorm: each process with its own share's (default: on)",
    )
    p.add_argument(
        "--dist-timeout",
        type=float,
        default=30.0,
        metavar="MIN",
        help="under torchrun, how long a process waits for the others before the job stops (a dead or "
        "stuck process); resume by running the command again (default: 30)",
    )
    p.add_argument(
        "--checkpoint-every",
        type=positive_float,
        default=300.0,
        metavar="S",
        help="seconds between checkpoints (default: 300)",
    )
    p.add_argument(
        "--init-from",
        default=None,
        help="warm-start a new run: 'released' (the entry's released weights) or a .safetensors path "
        "(default: random initialisation)",
    )
    add_dtype(
        p,
        default="auto",
        choices=("auto", "float32", "bfloat16"),
        help="training precision; auto = bf16 autocast where the device has native bf16 (default: auto)",
    )
    p.add_argument(
        "--dataset",
        default=None,
        metavar="NAME",
        help="training data: moving_mnist, grayscott or kolmogorov (stzoo data list) (default: the "
        "entry's dataset, moving_mnist for the -mmnist entries)",
    )
    p.add_argument(
        "--time-budget",
        type=positive_float,
        default=None,
        metavar="MIN",
        help="bound the whole run, training and final evaluation, by MIN minutes: the cost of evaluating is "
        "measured first and kept aside (the whole --eval-sequences if they fit in 10%% of the budget, else "
        "as many as do, at least 16; summary.json says how many), the learning-rate schedule is laid over "
        "the rest and training stops there, annealed and checkpointed (or when --epochs are done, if "
        "sooner). Not counted: start-up, checkpoint writes and --curve-every measurements (default: none)",
    )
    p.add_argument(
        "--budget-covers",
        choices=("all", "training"),
        default="all",
        help="what --time-budget bounds: all (training and the final evaluation) or training (the whole "
        "budget trains, then every --eval-sequences is measured however long it takes: equal training "
        "compute for a comparison of methods) (default: all)",
    )
    p.add_argument(
        "--budget-clock",
        choices=("wall", "cpu"),
        default="wall",
        help="what --time-budget and --curve-every count: wall-clock seconds, or this process's CPU "
        "seconds (the same compute for every run with fixed --threads, however busy the machine) "
        "(default: wall)",
    )
    p.add_argument(
        "--curve-every",
        type=positive_float,
        default=None,
        metavar="MIN",
        help="every MIN minutes of budget, measure the model on the first --curve-sequences test "
        "sequences and append the result to OUT/curve.jsonl (default: off)",
    )
    p.add_argument(
        "--data-workers",
        type=count(0, 256),
        default=0,
        metavar="N",
        help="processes that generate training batches ahead of the loop (the same sequences); "
        "for a GPU, which would wait for the CPU otherwise (default: 0, in the loop)",
    )
    p.add_argument(
        "--data-pool",
        type=positive_int,
        default=None,
        metavar="N",
        help="train on a fixed pool of N sequences, generated once into OUT/pool.npy (resumable, "
        "outside the budget clocks; by --data-workers processes if given) and drawn in a new order "
        "every epoch, instead of fresh sequences: for data that costs more to generate than to "
        "train on, e.g. kolmogorov on a CPU (default: fresh sequences)",
    )
    p.add_argument(
        "--curve-sequences",
        type=positive_int,
        default=64,
        metavar="N",
        help="test sequences each --curve-every measurement uses (default: 64)",
    )
    p.add_argument(
        "--config",
        action="append",
        type=_parse_config_setting,
        default=None,
        metavar="KEY=VALUE",
        help="change one setting of the entry's architecture config, e.g. --config num_hidden=64 "
        "(repeatable; a size sweep). The run then trains another model than NAME's, which "
        "`stzoo-maint release NAME` refuses (default: the entry's config)",
    )
    for name, typ, what in (
        ("epochs", positive_int, "epochs of --epoch-size sequences (the recipes: 200, days on a CPU)"),
        ("epoch_size", positive_int, "sequences per epoch"),
        ("batch_size", int, "sequences per optimizer step, over all processes (the global batch)"),
        ("lr", positive_float, "peak learning rate (OneCycle)"),
        ("loss", str, "mse or mse+ddr"),
        ("alpha", finite_float(0.0), "DDR weight of the mse+ddr loss"),
        ("seed", count(0, 2**63 - 1), "initialisation and data-order seed"),
        (
            "scheduled_sampling",
            finite_float(0.0, 1.0),
            "recurrent models: fraction of training over which teacher forcing decays to 0",
        ),
    ):
        if name == "batch_size":
            add_batch_size(p, default=None, metavar=None, help=f"{what} (default: the entry's recipe)")
            continue
        p.add_argument(
            "--" + name.replace("_", "-"),
            dest=name,
            type=typ,
            default=None,
            help=f"{what} (default: the entry's recipe)",
        )
    p.set_defaults(func=_cmd_train)

    from stzoo.training.finetune import AUTO_MAX_STEPS, AUTO_MIN_STEPS, AUTO_PASSES, DEFAULT_LR, DEFAULT_TIME_BUDGET

    p = sub.add_parser(
        "finetune",
        help="fine-tune a zoo model on your own videos (resumable; torchrun for DDP)",
        description="Fine-tune NAME (a zoo name, a save_pretrained folder or hf-hub:owner/repo) on "
        "your videos and write the best model to --out in the save_pretrained layout. The defaults "
        "size the step budget from the data, train at the videos' own frame size, hold out "
        "validation clips when the data can spare them, and compare the result with copying the "
        "last frame. Run it with `torchrun --nproc_per_node=N -m stzoo.cli.main finetune ...` for "
        "data-parallel training. See docs/finetuning.md.",
    )
    p.add_argument(
        "name", help="the model to start from: a zoo name (stzoo list), a save_pretrained folder or hf-hub:owner/repo"
    )
    p.add_argument(
        "--data",
        default=None,
        nargs="+",
        metavar="PATH",
        help="video file(s) (GIF, MP4/AVI/MOV with stzoo[video], .npy/.npz), folders of frames or of videos "
        "(default: none; required unless --dataset is given)",
    )
    p.add_argument(
        "--dataset",
        default=None,
        metavar="NAME",
        help="fine-tune on a registered dataset instead of --data (stzoo data list; e.g. taxibj with --data-dir): "
        "its training sequences, validated on its test set, with its frames in/out (default: none)",
    )
    p.add_argument(
        "--dataset-sequences",
        type=int,
        default=2000,
        metavar="N",
        help="training sequences taken from --dataset (validation: N/5 test sequences) (default: %(default)s)",
    )
    add_dataset_options(p)
    p.add_argument("--out", required=True, help="output folder: best model, checkpoint.pt, history.json (required)")
    p.add_argument(
        "--steps",
        type=_parse_steps,
        default="auto",
        metavar="N|auto",
        help=f"optimizer steps in all; auto: {AUTO_PASSES} passes over the training clips, kept within "
        f"[{AUTO_MIN_STEPS}, {AUTO_MAX_STEPS}] (default: auto)",
    )
    p.add_argument(
        "--epochs",
        type=positive_int,
        default=None,
        metavar="N",
        help="instead of --steps: N full passes over the training clips (default: set by --steps)",
    )
    p.add_argument(
        "--lr",
        type=positive_float,
        default=DEFAULT_LR,
        help="peak learning rate: AdamW, OneCycle warm-up over 30%% of the steps then cosine decay "
        f"(default: {DEFAULT_LR:g})",
    )
    add_batch_size(p, default=8, help="clips per step, per process (default: 8)")
    p.add_argument(
        "--val",
        type=_parse_val,
        default="auto",
        metavar="auto|FRACTION",
        help="validation: auto holds out the last 20%% (at least one clip) when the data can spare it, "
        "else trains without validation and says so; a fraction holds out that much; 0: none "
        "(default: auto)",
    )
    p.add_argument(
        "--val-data",
        nargs="+",
        default=None,
        metavar="PATH",
        help="separate validation videos instead of --val (default: none)",
    )
    p.add_argument(
        "--split",
        choices=("auto", "video", "time"),
        default="auto",
        help="how --val holds data out: whole videos, the end of every video, or auto: with --val auto the end of "
        "every video for up to 8 videos that can spare it, else whole videos; with a fraction by video for two or "
        "more videos, else by time (default: auto)",
    )
    p.add_argument(
        "--select",
        choices=("every-clip", "mean"),
        default="every-clip",
        help="which validated state to keep: every-clip: the lowest validation MSE among the states not worse than "
        "copying the last frame on any validation video (by MSE or SSIM); mean: the lowest validation MSE over "
        "all clips (default: every-clip)",
    )
    p.add_argument(
        "--stride", type=positive_int, default=1, metavar="N", help="frames between clip starts (default: 1)"
    )
    p.add_argument("--loss", choices=("mse", "mse+ddr"), default="mse", help="training loss (default: mse)")
    p.add_argument("--alpha", type=finite_float(0.0), default=0.1, help="DDR weight for --loss mse+ddr (default: 0.1)")
    p.add_argument(
        "--freeze",
        nargs="*",
        default=None,
        metavar="PREFIX",
        help="parameter-name prefixes to keep fixed, e.g. encoder (default: none)",
    )
    p.add_argument(
        "--patience",
        type=nonnegative_int,
        default=0,
        metavar="N",
        help="stop after N validations without a better validation MSE; 0: never, the best "
        "validation is kept anyway (default: 0)",
    )
    p.add_argument(
        "--min-delta",
        type=finite_float(0.0),
        default=0.0,
        help="smallest validation-MSE decrease that counts as better (default: 0)",
    )
    p.add_argument(
        "--channels",
        type=positive_int,
        default=None,
        metavar="N",
        help="train with N channels (default: the data's: 1 if every video is grey, else 3)",
    )
    p.add_argument(
        "--size",
        type=_parse_size,
        default="native",
        metavar="native|model|HxW",
        help="frame size to train at: native keeps the videos' own size (the model is adapted to it), "
        "model resizes to the model's training size, HxW to that (default: native)",
    )
    p.add_argument(
        "--frames-in",
        type=positive_int,
        default=None,
        metavar="N",
        help="frames read per forecast (default: the model's)",
    )
    p.add_argument(
        "--frames-out",
        type=positive_int,
        default=None,
        metavar="N",
        help="frames predicted per forecast (default: the model's)",
    )
    p.add_argument(
        "--data-layout",
        choices=("THW", "THWC", "TCHW"),
        default=None,
        help="axis order of .npy/.npz data when it cannot be inferred (default: inferred)",
    )
    p.add_argument(
        "--max-steps",
        type=positive_int,
        default=None,
        metavar="N",
        help="stop after N steps in all, the schedule still spanning the whole budget; --resume "
        "continues (default: no limit)",
    )
    p.add_argument("--seed", type=count(0, 2**63 - 1), default=0, help="shuffling and initialisation seed (default: 0)")
    p.add_argument("--weight-decay", type=finite_float(0.0), default=0.0, help="AdamW weight decay (default: 0)")
    p.add_argument(
        "--grad-clip", type=finite_float(0.0), default=1.0, help="gradient-norm clipping; 0: off (default: 1.0)"
    )
    p.add_argument(
        "--scheduled-sampling",
        type=finite_float(0.0, 1.0),
        default=0.0,
        metavar="FRACTION",
        help="recurrent models: fraction of training over which teacher forcing decays from 1 to 0 (default: 0)",
    )
    p.add_argument(
        "--checkpoint-every",
        type=positive_int,
        default=200,
        metavar="N",
        help="optimizer steps between checkpoints inside an epoch (default: 200)",
    )
    p.add_argument("--resume", action="store_true", help="continue from --out/checkpoint.pt (default: off)")
    add_dtype(
        p,
        default="auto",
        choices=("auto", "float32", "bfloat16"),
        help="training precision: bfloat16 autocast (weights stay float32) or float32; auto = bf16 "
        "where the device has native bf16 units (a recent GPU, a CPU with AMX / AVX512-BF16) "
        "(default: auto)",
    )
    p.add_argument(
        "--amp",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="the same as --dtype bfloat16 (--amp) or --dtype float32 (--no-amp) (default: --dtype)",
    )
    add_device(p, "CUDA when available")
    add_threads(p, "torch's")
    add_weights(p)
    add_random(p, "start from random weights (default: off)")
    p.add_argument("--model-name", default=None, help="name in the model card (default: NAME-finetuned)")
    p.add_argument(
        "--push-to-hub", default=None, metavar="REPO_ID", help="upload the result to this Hub repo (default: no upload)"
    )
    p.add_argument(
        "--head",
        choices=("persistence", "direct"),
        default="persistence",
        help="persistence: forecast = last frame + a learned change, starting as copy-last; direct: the "
        "model as it is (default: persistence)",
    )
    p.add_argument(
        "--augment",
        default="auto",
        metavar="auto|none|LIST",
        help="training-clip augmentation: auto (horizontal flips), none, or a comma list of hflip, vflip, "
        "reverse (time reversal), crop (a window shifted by up to 1/8 of the frame) (default: auto)",
    )
    p.add_argument(
        "--time-budget",
        type=float,
        default=DEFAULT_TIME_BUDGET,
        metavar="MIN",
        help="minutes --steps auto plans for, from timed steps on this machine; 0: no limit "
        f"(default: {DEFAULT_TIME_BUDGET:g})",
    )
    p.add_argument(
        "--budget-clock",
        choices=("wall", "cpu"),
        default="wall",
        help="what --time-budget counts when the steps are timed: wall-clock time on this machine as loaded now, "
        "or this process's CPU time (the plan a quiet machine would make) (default: wall)",
    )
    p.add_argument("--quiet", action="store_true", help="no progress bars (default: off)")
    p.set_defaults(func=_cmd_finetune)

    p = sub.add_parser(
        "evaluate",
        help="MSE/MAE/SSIM/PSNR on a dataset's fixed test set",
        description="Measure a zoo model (or the copy-last-frame baseline) on the first N "
        "sequences of a dataset's fixed test set (the model's own dataset unless --dataset says "
        "otherwise) and print the metrics as JSON. The test set is generated once and then "
        "memory-mapped from CACHE/moving-mnist or CACHE/fields, where CACHE is $STZOO_CACHE, else "
        "$XDG_CACHE_HOME/stzoo, else ~/.cache/stzoo (Moving MNIST: 82 MB per 1,000 sequences; "
        "Gray-Scott: 655 MB, Kolmogorov: 164 MB for the whole sets; delete the folder to reclaim "
        "the space).",
    )
    p.add_argument("name", help="zoo name, or copy-last-frame for the baseline")
    p.add_argument(
        "--dataset",
        default=None,
        metavar="NAME",
        help="a dataset of stzoo data list, e.g. moving_mnist, or mmnist_canonical / taxibj / ... read from your "
        "files in OpenSTL's layout (default: the model's training dataset; moving_mnist for copy-last-frame)",
    )
    add_dataset_options(p)
    p.add_argument(
        "--sequences",
        type=positive_int,
        default=None,
        metavar="N",
        help="number of test sequences to evaluate on (default: the whole test set: 10000 for "
        "moving_mnist, 1000 grayscott, 500 kolmogorov)",
    )
    add_batch_size(p, default=64, help="sequences per forward pass (default: %(default)s)")
    add_weights(p)
    add_device(p, "the model's, cpu", what="torch device, e.g. cpu or cuda")
    add_threads(p, what="torch intra-op threads")
    p.add_argument(
        "--no-cache",
        dest="cache",
        action="store_false",
        default=True,
        help="generate the test sequences batch by batch instead of memory-mapping the cached "
        "file (same sequences; nothing written to disk) (default: use the cache)",
    )
    p.set_defaults(func=_cmd_evaluate)
