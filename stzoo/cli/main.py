"""The ``stzoo`` command line: list, info, predict, train, evaluate."""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from dataclasses import fields, replace
from pathlib import Path
from typing import Any, Sequence

from stzoo.errors import StzooError

__all__ = ["main"]


def _cmd_list(args: argparse.Namespace) -> int:
    from stzoo.api import info, list_models

    rows = []
    for name in list_models():
        e = info(name)
        target = f"→ {e['name']}" if e["name"] != name else ""
        mse = e.get("metrics", {}).get("mse")
        rows.append((name, target, e["architecture"], f"{e['parameters'] / 1e6:.2f} M",
                     "yes" if e.get("weights") else "no", f"{mse:.1f}" if mse is not None else "-"))
    header = ("name", "alias of", "arch", "params", "weights", "MSE")
    widths = [max(len(r[i]) for r in rows + [header]) for i in range(len(header))]
    for r in [header] + rows:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip())
    return 0


def _cmd_info(args: argparse.Namespace) -> int:
    from stzoo.api import info

    print(json.dumps(info(args.name), indent=2, ensure_ascii=False))
    return 0


def _cmd_predict(args: argparse.Namespace) -> int:
    import re
    import warnings

    from stzoo.frames.io import FramesWarning

    if not (args.output or args.strip or args.animation):
        raise StzooError("nothing to write: give --output (OUT.gif, OUT.mp4 / .avi / .webm, OUT.npy or a folder "
                         "OUT/ of PNGs), --strip OUT.png and/or --animation OUT.gif")

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("always", FramesWarning)  # each conversion said (main prints them as lines)
            return _predict_to_files(args)
    except StzooError as exc:  # the Python API's `layout=` is --layout here
        text = re.sub(r"\blayout='([A-Za-z]+)'", r"--layout \1", str(exc))
        raise StzooError(re.sub(r"\blayout=", "--layout", text)) from None


def _predict_to_files(args: argparse.Namespace) -> int:
    """`stzoo predict`: every output is checked before the model is loaded or run."""
    from stzoo.api import load
    from stzoo.frames.io import (
        check_output_path,
        frames_layout,
        read_frames,
        to_thwc,
        write_frames,
    )

    kind = check_output_path(args.output) if args.output else None  # an unknown suffix fails here
    p = load(args.name, pretrained=not args.random, weights=args.weights, device=args.device, impl=args.impl,
             dtype=args.dtype)
    frames = read_frames(args.input)  # images: T×H×W×C uint8, grey or RGB as stored; arrays: as stored
    layout = frames_layout(frames, channels=p.spec.channels, layout=args.layout)
    dims = dict(zip(layout, frames.shape))
    images = kind in ("gif", "video", "folder") or args.strip or args.animation
    if images and dims.get("B", 1) > 1:
        raise StzooError(f"{args.input} holds a batch of {dims['B']} sequences (layout {layout}): only --output "
                         f"OUT.npy writes a batch; GIFs, videos, PNG folders, --strip and --animation show one")
    if kind == "video":
        check_output_path(args.output, height=dims["H"], width=dims["W"])
    future = p.predict(frames, horizon=args.horizon, layout=layout)
    if args.output:
        write_frames(future, args.output, fps=args.fps, layout=layout)
        print(f"wrote {future.shape[layout.index('T')]} predicted frames to {args.output} "
              f"({'a folder of PNGs' if kind == 'folder' else kind}, the input's layout {layout})")
    if args.strip or args.animation:
        from stzoo.frames import viz

        seq, fut = to_thwc(frames, layout), to_thwc(future, layout)
        used = seq[-p.spec.frames_in:]  # the frames the model read
        start = len(seq) - len(used) + 1
        truth = None
        if args.truth:
            raw = read_frames(args.truth)
            truth = to_thwc(raw, frames_layout(raw, channels=p.spec.channels), channels=fut.shape[-1])
            if len(truth) < len(fut):
                raise StzooError(f"--truth holds {len(truth)} frames but {len(fut)} were predicted; give at "
                                 "least as many true future frames (or a shorter --horizon)")
            truth = truth[:len(fut)]
        if args.strip:
            viz.save_strip(used, fut, args.strip, target=truth, start=start)
            print(f"wrote a strip of {len(used)} input and {len(fut)} predicted frames"
                  f"{' (with ground truth and error)' if truth is not None else ''} to {args.strip}")
        if args.animation:
            viz.save_gif(used, fut, args.animation, target=truth, fps=args.fps, start=start)
            print(f"wrote an annotated animation ({len(used) + len(fut)} frames) to {args.animation}")
    return 0


def _recipe_from_args(arch: str, args: argparse.Namespace):
    from stzoo.models import get_architecture

    recipe = get_architecture(arch).recipe
    overrides = {f.name: getattr(args, f.name) for f in fields(recipe) if getattr(args, f.name, None) is not None}
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
    import torch

    from stzoo.api import info
    from stzoo.training.train import train

    if args.threads:
        torch.set_num_threads(args.threads)
    entry = info(args.name)
    config = train_config(entry["architecture"], entry["config"], args.config)
    init_from = args.init_from
    if init_from == "released":
        from stzoo.zoo.hub import resolve_weights
        init_from = resolve_weights(entry)
    summary = train(entry["architecture"], config, args.out, mnist_dir=args.mnist_dir,
                    recipe=_recipe_from_args(entry["architecture"], args), device=args.device,
                    max_steps=args.max_steps, eval_sequences=args.eval_sequences,
                    checkpoint_every_s=args.checkpoint_every,
                    command=args.command_line, init_from=init_from, dtype=args.dtype,
                    time_budget_s=args.time_budget * 60 if args.time_budget is not None else None,
                    dataset=args.dataset or entry.get("dataset", "moving_mnist"), budget_clock=args.budget_clock,
                    curve_every_s=args.curve_every * 60 if args.curve_every is not None else None,
                    curve_sequences=args.curve_sequences, data_workers=args.data_workers,
                    data_pool=args.data_pool)
    print(json.dumps({k: summary[k] for k in ("step", "total_steps", "wall_clock_s", "metrics") if k in summary},
                     indent=2))
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

    import torch

    from stzoo.api import load
    from stzoo.training.finetune import FinetuneWarning, finetune

    amp = _finetune_amp(args)  # a contradiction is reported before anything loads
    if args.threads:
        torch.set_num_threads(args.threads)
    p = load(args.name, pretrained=not args.random, weights=args.weights)
    data = args.data[0] if len(args.data) == 1 else args.data
    val = args.val if args.val_data is None else (args.val_data[0] if len(args.val_data) == 1 else args.val_data)
    with warnings.catch_warnings():  # the summary below prints them, in words, once
        warnings.simplefilter("ignore", FinetuneWarning)
        result, history = finetune(
            p, data, steps=args.steps, epochs=args.epochs, lr=args.lr, batch_size=args.batch_size, val=val,
            split=args.split, stride=args.stride, loss=args.loss, alpha=args.alpha, freeze=args.freeze or None,
            device=args.device, amp=amp, out_dir=args.out, resume=args.resume,
            patience=None if args.patience == 0 else args.patience, min_delta=args.min_delta,
            channels=args.channels, size=args.size, frames_in=args.frames_in, frames_out=args.frames_out,
            data_layout=args.data_layout, max_steps=args.max_steps, seed=args.seed, weight_decay=args.weight_decay,
            grad_clip=args.grad_clip, scheduled_sampling=args.scheduled_sampling,
            checkpoint_every=args.checkpoint_every, name=args.model_name, push_to_hub=args.push_to_hub,
            progress=not args.quiet, command=args.command_line, cli=True)
    if int(os.environ.get("RANK", "0")) == 0:  # under torchrun only rank 0 reports
        print(json.dumps({"out_dir": history.out_dir, "best_epoch": history.best_epoch, "best": history.best,
                          "copy_last_frame": history.persistence, "beats_copy_last_frame": history.beats_persistence,
                          "train_check": history.train_check, "steps": history.plan.get("steps"),
                          "epochs": len(history.epochs), "stopped_early": history.stopped_early,
                          "split": history.data.get("split"), "adaptation": history.adaptation,
                          "warnings": history.warnings}, indent=2))
        print(history.summary())
        print(f"load it with stzoo.load({history.out_dir!r})")
    return 0


def _finetune_amp(args: argparse.Namespace) -> bool | None:
    """finetune's ``amp`` from ``--dtype`` and the older ``--amp`` / ``--no-amp`` (which must agree)."""
    from stzoo.errors import InputError

    by_dtype = {"auto": None, "float32": False, "bfloat16": True}[args.dtype]
    if args.amp is not None and by_dtype is not None and args.amp != by_dtype:
        raise InputError(f"--{'amp' if args.amp else 'no-amp'} contradicts --dtype {args.dtype}; give one of them")
    return args.amp if args.amp is not None else by_dtype


def _cmd_evaluate(args: argparse.Namespace) -> int:
    import torch

    from stzoo.api import load
    from stzoo.data.fields import list_datasets, test_set_size
    from stzoo.errors import ConfigError, InputError
    from stzoo.zoo.folder import training_dataset
    from stzoo.training.train import evaluate, evaluate_copy_last, test_data

    if args.threads:
        torch.set_num_threads(args.threads)
    if args.batch_size < 1 or (args.sequences is not None and args.sequences < 1):
        raise InputError(f"--batch-size and --sequences must be at least 1, got {args.batch_size} and "
                         f"{args.sequences}")
    p = None if args.name == "copy-last-frame" else load(args.name, weights=args.weights, device=args.device)
    dataset = args.dataset or (p is not None and training_dataset(p.entry)) or "moving_mnist"
    if dataset not in list_datasets():
        raise ConfigError(f"unknown dataset {dataset!r}; known: {', '.join(list_datasets())}")
    sequences = args.sequences or test_set_size(dataset)
    test = test_data(dataset, sequences, args.mnist_dir, cache=args.cache, progress=True)
    if p is None:
        result = evaluate_copy_last(test, batch_size=args.batch_size)
    else:
        if p.spec.channels != (c := int(test.batch(0, 1).shape[2])):
            raise ConfigError(f"{args.name} takes {p.spec.channels}-channel frames, but the {dataset} test set has "
                              f"{c}; pick its own dataset with --dataset")
        result = evaluate(p.model, test, frames_in=p.spec.frames_in, frames_out=p.spec.frames_out,
                          batch_size=args.batch_size, device=p.device)
    print(json.dumps({"dataset": dataset, **result}, indent=2))
    return 0


def _cmd_data_list(args: argparse.Namespace) -> int:
    from stzoo.data.fields import DATASETS

    for name, (_, channels, test_size, about) in DATASETS.items():
        print(f"{name:14s} {channels} channel(s), test set {test_size:,} sequences: {about}")
    return 0


def _cmd_data_preview(args: argparse.Namespace) -> int:
    from stzoo.data.fields import save_preview

    kw = {"mnist_dir": args.mnist_dir} if args.name == "moving_mnist" else {}
    frames = save_preview(args.name, args.out, index=args.index, split=args.split, fps=args.fps, **kw)
    print(f"wrote {args.out}: sequence {args.index} of the {args.name} {args.split} set, {len(frames)} frames")
    return 0


def _cmd_release(args: argparse.Namespace) -> int:
    import torch

    from stzoo.tools.release import release_to_manifest

    if args.threads:
        torch.set_num_threads(args.threads)
    root = Path(__file__).resolve().parents[1]  # the stzoo package folder
    entry = release_to_manifest(
        args.name, args.run, weights_dir=args.weights_dir or root / "weights",  # = stzoo.zoo.hub.packaged_weights_dir()
        manifest_path=args.manifest or root / "weights_manifest.json", mnist_dir=args.mnist_dir,
        eval_sequences=args.sequences, half=args.half,
        command=args.command_line, prior_runs=args.prior_run, force=args.force)
    print(json.dumps({k: entry[k] for k in ("name", "weights", "metrics")}, indent=2))
    return 0


TABLE_START, TABLE_END = "<!-- zoo-table:start -->", "<!-- zoo-table:end -->"


def _cmd_zoo_table(args: argparse.Namespace) -> int:
    from stzoo.zoo.manifest import zoo_table_markdown

    table = zoo_table_markdown()
    if args.docs:
        from stzoo.tools.docs_gen import write_docs

        changed = write_docs(args.docs)
        print(f"docs pages generated from the manifest in {args.docs}: {len(changed)} file(s) changed")
        for path in changed:
            print(f"  {path}")
    if not args.write:
        if not args.docs:
            print(table)
        return 0
    path = Path(args.write)
    text = path.read_text(encoding="utf-8")
    if TABLE_START not in text or TABLE_END not in text:
        raise StzooError(f"{path} has no {TABLE_START} ... {TABLE_END} markers to put the table between")
    head, rest = text.split(TABLE_START, 1)
    tail = rest.split(TABLE_END, 1)[1]
    path.write_text(f"{head}{TABLE_START}\n{table}\n{TABLE_END}{tail}", encoding="utf-8")
    print(f"updated the zoo table in {path}")
    return 0


def _cmd_zoo_stats(args: argparse.Namespace) -> int:
    from stzoo.tools.docs_gen import update_manifest_stats

    manifest = args.manifest or Path(__file__).resolve().parents[1] / "weights_manifest.json"
    written = update_manifest_stats(manifest, speed=args.speed, names=args.names or None, threads=args.threads,
                                    iters=args.iters, machine=args.machine, command=args.command_line)
    for name, rec in written.items():
        speed = rec.get("speed")
        print(f"{name}: {rec['flops']['flops'] / 1e9:.2f} GFLOPs"
              + (f", {speed['seq_per_s']:.2f} seq/s on CPU ({speed['threads']} thread(s))" if speed else ""))
    print(f"updated {manifest}")
    return 0


def _human_size(n: int | None) -> str:
    if n is None:
        return "-"
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return str(n)


def _cmd_download(args: argparse.Namespace) -> int:
    from stzoo.api import list_models
    from stzoo.zoo.hub import HUB_PREFIX, locate_weights
    from stzoo.zoo.manifest import get_entry

    if args.all == bool(args.names):
        raise StzooError("give zoo names or --all (not both, not neither); see `stzoo list`")
    names = list_models(pretrained=True) if args.all else args.names
    if args.all:
        names = sorted({get_entry(n)["name"] for n in names})  # aliases fetch the same file
        if not names:
            print("no zoo entry has released weights yet: nothing to download")
            return 0
    for name in names:
        if name.startswith(HUB_PREFIX):
            from stzoo.zoo.hub import hub_download, parse_hub_id
            from stzoo.zoo.folder import CONFIG_NAME, WEIGHTS_NAME, read_config

            repo_id, revision = parse_hub_id(name)
            cfg_path, source = hub_download(repo_id, CONFIG_NAME, revision, name=name, check=read_config)
            print(f"{name}: {CONFIG_NAME} -> {cfg_path} ({_SOURCES[source]})")
            # the weights from the commit the config came from, checked against the sha256 it records
            commit = cfg_path.parent.name
            pin = commit if len(commit) == 40 and all(c in "0123456789abcdef" for c in commit) else revision
            expected = (read_config(cfg_path).get("weights") or {}).get("sha256")
            path, source = hub_download(repo_id, WEIGHTS_NAME, pin, sha256=expected, name=name,
                                        expected_by=f"{CONFIG_NAME} of {repo_id}@{pin or 'main'}")
            print(f"{name}: {WEIGHTS_NAME} -> {path} ({_SOURCES[source]}"
                  f"{', sha256 verified' if expected else ''})")
            try:
                path, source = hub_download(repo_id, "README.md", pin, name=name)
                print(f"{name}: README.md -> {path} ({_SOURCES[source]})")
            except StzooError:
                pass  # a model card is optional
            continue
        loc = locate_weights(get_entry(name))
        print(f"{name}: {loc.path} ({_SOURCES[loc.source]}, sha256 verified)")
    return 0


_SOURCES = {"file": "given file", "local": "local weights folder", "hf-cache": "already in the Hugging Face cache",
            "download": "downloaded into the Hugging Face cache",
            "hf-hub": "in the Hugging Face cache, revision checked"}


def _cmd_cache(args: argparse.Namespace) -> int:
    from stzoo.zoo.hub import WEIGHTS_DIR_ENV, cache_report

    report = cache_report()
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    print(f"Hugging Face cache: {report['cache_dir']}" + ("  (HF_HUB_OFFLINE is on)" if report["offline"] else ""))
    print(f"local weights folders: {', '.join(report['local_dirs']) or f'none (set {WEIGHTS_DIR_ENV})'}")
    print("zoo weights:")
    if not report["entries"]:
        print("  (no zoo entry has released weights yet)")
    for e in report["entries"]:
        print(f"  {e['name']}  {e['status']}  {_human_size(e['size'])}  {e['path'] or ''}".rstrip())
    print("stzoo repos in the Hugging Face cache:")
    if not report["repos"]:
        print("  (none)")
    for r in report["repos"]:
        refs = f" refs: {', '.join(r['refs'])}" if r["refs"] else ""
        print(f"  {r['repo_id']}  {_human_size(r['size_on_disk'])}  {len(r['revisions'])} revision(s){refs}  "
              f"{r['path']}")
    print(f"total of these repos in the Hugging Face cache: "
          f"{_human_size(sum(r['size_on_disk'] for r in report['repos']))}")
    return 0


def _cmd_hub_push(args: argparse.Namespace) -> int:
    import tempfile

    from stzoo.zoo.hub import validate_repo_id, validate_revision
    from stzoo.zoo.folder import WEIGHTS_NAME, export_release, push_folder

    validate_repo_id(args.repo_id)
    if args.revision is not None:
        validate_revision(args.revision)
    source = Path(args.source).expanduser()
    if source.is_dir():
        commit = push_folder(source, args.repo_id, revision=args.revision, commit_message=args.message,
                             private=args.private or None)
    else:
        from stzoo.zoo.manifest import get_entry

        entry = get_entry(args.source)
        hub = (entry.get("weights") or {}).get("hub") or {}
        extra = {hub["filename"]: WEIGHTS_NAME} if hub.get("filename") not in (None, WEIGHTS_NAME) else None
        with tempfile.TemporaryDirectory(prefix="stzoo-push-") as tmp:
            export_release(entry["name"], tmp, repo_id=args.repo_id)
            commit = push_folder(tmp, args.repo_id, revision=args.revision, commit_message=args.message,
                                 private=args.private or None, extra_files=extra)
    print(f"pushed {args.source} to {args.repo_id}@{args.revision or 'main'}: commit {commit}")
    print(f"load it with stzoo.load(\"hf-hub:{args.repo_id}@{commit}\") (pin that commit in the manifest)")
    return 0


def _cmd_convert_openstl(args: argparse.Namespace) -> int:
    from stzoo.convert import convert_openstl

    folder, rep = convert_openstl(args.checkpoint, args.arch, args.out, config=args.config, name=args.name,
                                  license=args.license)
    print(f"converted {rep.source} ({rep.openstl_model}, {rep.container}) to stzoo {rep.arch}: "
          f"{rep.tensors_mapped} tensors mapped, {len(rep.tensors_unused)} unused OpenSTL tensors dropped, "
          f"{rep.parameters:,} parameters")
    print(f"config: {json.dumps(rep.config)}")
    if rep.placeholders:
        print(f"objects outside the weights, not loaded: {', '.join(rep.placeholders)}")
    print(f"wrote {folder} (config.json, model.safetensors, README.md); load it with stzoo.load({str(folder)!r})")
    return 0


def _cmd_bench(args: argparse.Namespace) -> int:
    from stzoo.api import info, list_models
    from stzoo.tools.bench import format_table, format_train_table, measure, measure_train
    from stzoo.errors import InputError
    from stzoo.runtime import machine_description, tune_allocator

    names = args.names or [n for n in list_models(pretrained=True) if info(n)["name"] == n]
    allowed = ("float32", "bfloat16", "auto") if args.train else ("float32", "bfloat16", "float16")
    dtypes = args.dtype or (["float32", "bfloat16"] if args.train else ["float32"])
    bad = [d for d in dtypes if d not in allowed]
    if bad:
        raise InputError(f"--dtype {bad[0]} is not one of {', '.join(allowed)}"
                         f"{' (with --train)' if args.train else ''}")
    if args.train:
        tune_allocator()  # as stzoo train does: the numbers are those a training run gets
        results: list = []
        for name in names:
            for batch in args.batch or [None]:
                for dtype in dtypes:
                    r = measure_train(name, batch=batch, device=args.device, dtype=dtype,
                                      warmup=1 if args.warmup is None else args.warmup,
                                      iters=3 if args.iters is None else args.iters)
                    results.append(r)
                    if args.json:
                        print(json.dumps(r.to_dict()), flush=True)
        if not args.json:
            m = machine_description()
            print(f"# CPU: {m['cpu']}; flags: {' '.join(m['cpu_flags']) or 'none of note'}; bf16 units: "
                  f"{', '.join(m['bf16_units']) or 'none'}; torch CPU kernels: {m['cpu_capability']}; "
                  f"threads: {m['threads']}; allocator: {m['allocator']}; torch {m['torch_version']}")
            print(format_train_table(results))
        return 0
    results = []
    for name in names:
        for batch in args.batch or [1, 16]:
            for impl in args.impl:
                for dtype in dtypes:
                    r = measure(name, impl=impl, batch=batch, device=args.device, dtype=dtype,
                                warmup=2 if args.warmup is None else args.warmup,
                                iters=10 if args.iters is None else args.iters)
                    results.append(r)
                    if args.json:
                        print(json.dumps(r.to_dict()), flush=True)
    if not args.json:
        print(format_table(results))
    return 0


def _cmd_stream(args: argparse.Namespace) -> int:
    import time

    import numpy as np

    from stzoo.api import load
    from stzoo.inference.forecaster import Forecaster
    from stzoo.frames.io import read_frames, write_gif

    if args.every < 1:
        raise StzooError(f"--every must be >= 1, got {args.every}")
    p = load(args.name, pretrained=not args.random, weights=args.weights, device=args.device, impl=args.impl)
    frames = read_frames(args.input)  # grey or RGB as stored: the Forecaster converts (and says so) as predict does
    f = Forecaster(p, horizon=args.horizon, context=args.context, min_frames=args.min_frames)
    out = Path(args.out) if args.out else None
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
    print(f"streaming {len(frames)} frames of {args.input} through {p.name or args.name} "
          f"(context={f.context}, horizon={f.horizon}, first forecast after {f.min_frames} frame(s))")
    records, push_s, forecast_s = [], 0.0, 0.0
    for t, frame in enumerate(frames, start=1):
        start = time.perf_counter()
        f.push(frame)
        push_s += time.perf_counter() - start
        if not f.ready or (t - f.min_frames) % args.every:
            continue
        start = time.perf_counter()
        future = f.forecast()
        forecast_s += time.perf_counter() - start
        observed = frames[t:t + f.horizon]  # the frames that really came next, where the input has them
        rec: dict = {"after_frame": t, "horizon": f.horizon}
        line = f"after frame {t}: forecast of frames {t + 1}-{t + f.horizon}"
        if len(observed):  # MSE / SSIM per frame as in the zoo table (stzoo.metrics; Forecaster.compare)
            score = f.compare(observed)
            rec.update(mse=score["mse"], ssim=score["ssim"], frames_compared=score["frames"])
            line += (f"; vs the {score['frames']} observed frame(s): MSE {score['mse']:.2f} per frame (zoo-table "
                     f"convention), SSIM {score['ssim']:.3f}")
        if out is not None:
            target = out / f"forecast_{t:06d}.{args.save}"
            if args.save == "npy":
                np.save(target, future)
            else:
                write_gif(future, target, fps=args.fps)
            rec["file"] = target.name
            line += f" -> {target}"
        records.append(rec)
        print(line)
    if not records:
        raise StzooError(f"{args.input} has {len(frames)} frame(s), fewer than the {f.min_frames} this model "
                         f"needs before its first forecast")
    summary = {"model": p.name or args.name, "input": str(args.input), "frames": len(frames),
               "context": f.context, "horizon": f.horizon, "forecasts": records,
               "mean_push_ms": 1e3 * push_s / len(frames), "mean_forecast_ms": 1e3 * forecast_s / len(records),
               "mse_convention": "squared error summed over the C·H·W values of a frame in [0, 1], averaged over "
                                 "frames (the zoo table's; see docs/predicting.md)"}
    if out is not None:
        (out / "forecasts.json").write_text(json.dumps(summary, indent=2), encoding="utf-8")
    print(f"{len(records)} forecast(s) from {len(frames)} frames; mean push {summary['mean_push_ms']:.2f} ms, "
          f"mean forecast {summary['mean_forecast_ms']:.2f} ms" + (f"; wrote {out}" if out is not None else ""))
    return 0


def _cmd_export(args: argparse.Namespace) -> int:
    from stzoo.api import load

    p = load(args.name, pretrained=not args.random, weights=args.weights)
    result = p.export_onnx(args.out, batch=args.batch, dynamic_batch=not args.static_batch, opset=args.opset,
                           exporter=args.exporter, height=args.height, width=args.width, verify=not args.no_verify)
    shape = lambda s: "×".join(str(d) for d in s)  # noqa: E731
    print(f"wrote {result.path}: ONNX opset {result.opset} ({result.exporter} exporter), "
          f"input 'frames' {shape(result.input_shape)} → output 'forecast' {shape(result.output_shape)} (float32)")
    if result.max_abs_diff is not None:
        print(f"verified with onnxruntime (CPU) at batch {', '.join(map(str, result.checked_batches))}: "
              f"max |onnx - torch| = {result.max_abs_diff:.2e}")
    return 0


def _add_model_source(p: argparse.ArgumentParser) -> None:
    """The model arguments of `stream` and `export`: NAME, --weights, --random."""
    p.add_argument("name", help="zoo name (stzoo list), save_pretrained folder or hf-hub:owner/repo[@revision]")
    p.add_argument("--weights", default=None, metavar="FILE",
                   help="local safetensors file instead of the released weights (default: the release)")
    p.add_argument("--random", action="store_true", help="use random weights, for a smoke test (default: off)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="stzoo", description="Spatiotemporal forecasting model zoo.")
    sub = parser.add_subparsers(dest="command", required=True)

    sub.add_parser("list", help="list zoo models: architecture, parameters, released weights, test MSE",
                   description="List every zoo entry (aliases say what they point at) with its architecture, "
                   "parameter count, whether weights are released, and its MSE on the stzoo Moving MNIST test "
                   "set.").set_defaults(func=_cmd_list)

    p = sub.add_parser("info", help="show a model's manifest entry")
    p.add_argument("name", help="zoo name or alias (stzoo list); the entry is printed as JSON")
    p.set_defaults(func=_cmd_info)

    p = sub.add_parser("predict", help="forecast the frames that follow a clip (GIF, video, image folder, .npy)",
                       description="Forecast the frames that follow the clip --input and write them as the name "
                       "of --output asks (GIF, video, .npy, folder of PNGs), in the input's layout and channels. "
                       "RGB clips for a grey model are converted to their luminance (and back), with a warning. "
                       "See docs/predicting.md.")
    p.add_argument("name", help="the model: a zoo name (stzoo list), a save_pretrained folder or hf-hub:owner/repo")
    p.add_argument("--input", required=True, metavar="CLIP",
                   help="GIF / APNG, folder of images, video (.mp4, .avi, ... with the video extra) or .npy / .npz "
                   "(T×H×W, T×H×W×C, T×C×H×W or batched) (required)")
    p.add_argument("--output", default=None, metavar="OUT",
                   help="the forecast, written as its name asks: OUT.gif; OUT.mp4, .avi or .webm (video extra: "
                   "pip install -e \".[video]\"); OUT.npy (the input's layout and dtype); or a folder of PNGs "
                   "(OUT/, a name without a suffix, or an existing folder); any other suffix is refused before "
                   "the model runs (default: none)")
    p.add_argument("--strip", default=None, metavar="OUT.png",
                   help="a paper-style strip: input | (ground truth | prediction | |error| with --truth) "
                   "(default: none)")
    p.add_argument("--animation", default=None, metavar="OUT.gif",
                   help="an annotated GIF: the input, then the forecast (beside the truth with --truth) "
                   "(default: none)")
    p.add_argument("--truth", default=None, metavar="CLIP",
                   help="the frames that really followed (GIF / folder / video / .npy), for the ground-truth and "
                   "error rows of --strip and --animation (default: none)")
    p.add_argument("--horizon", type=int, default=None, metavar="N",
                   help="frames to forecast; beyond the model's native output it rolls out on its own "
                   "predictions (default: the model's frames_out)")
    p.add_argument("--layout", type=str.upper, default=None,
                   choices=("THW", "THWC", "TCHW", "BTHW", "BTHWC", "BTCHW"),
                   help="axis order of an array --input whose shape leaves it ambiguous; images are always "
                   "T×H×W×C (default: inferred from the shape)")
    p.add_argument("--weights", default=None, metavar="FILE",
                   help="local safetensors file instead of the released weights (default: the release)")
    p.add_argument("--random", action="store_true", help="use random weights, for a smoke test (default: off)")
    p.add_argument("--device", default=None, help="cpu, cuda, cuda:1, ... (default: cpu)")
    p.add_argument("--dtype", choices=("float32", "bfloat16"), default="float32",
                   help="precision of the weights and the forecast: float32 is exact; bfloat16 is faster on "
                   "GPUs and on CPUs with native bf16, and slightly less exact (default: float32)")
    p.add_argument("--fps", type=float, default=5.0,
                   help="frames per second of GIF and video outputs and of --animation (default: 5)")
    p.add_argument("--impl", choices=["auto", "reference", "fused"], default="auto",
                   help="reference modules or their fused fast twins (auto = fused where one exists); see "
                   "docs/kernels.md (default: auto)")
    p.set_defaults(func=_cmd_predict)

    p = sub.add_parser("bench", help="sequences/s, latency and peak memory per model × impl × batch "
                       "(--train: training steps/s per dtype)",
                       description="Time forecasts, or with --train real training steps (random weights and "
                       "inputs; speed does not depend on them). See docs/benchmarks.md for how the numbers are "
                       "taken.")
    p.add_argument("names", nargs="*", metavar="NAME",
                   help="zoo names (default: every entry with released weights)")
    p.add_argument("--train", action="store_true",
                   help="time training steps instead of forecasts: the step stzoo train runs (recipe loss, "
                   "backward, gradient clipping, AdamW + OneCycle) with the C allocator tuned as in training; "
                   "prints steps/s and sequences/s per --dtype and the CPU model, flags and allocator "
                   "(default: off, time forecasts)")
    p.add_argument("--impl", nargs="+", choices=["auto", "reference", "fused"], default=["reference", "fused"],
                   help="implementations to time (default: reference fused; not used with --train, which "
                   "trains the reference modules)")
    p.add_argument("--batch", nargs="+", type=int, default=None,
                   help="sequences per forecast / per training step (default: 1 16; with --train: the "
                   "architecture's recipe batch size, 16 for most)")
    p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1, ... (default: cpu)")
    p.add_argument("--dtype", nargs="+", default=None, metavar="DTYPE",
                   help="forecasts: float32, bfloat16 or float16 weights and inputs; --train: float32, bfloat16 "
                   "(autocast, weights stay fp32) or auto (bf16 where the device has native bf16) "
                   "(default: float32; with --train: float32 bfloat16)")
    p.add_argument("--warmup", type=int, default=None,
                   help="untimed calls / steps first (default: 2; with --train: 1)")
    p.add_argument("--iters", type=int, default=None,
                   help="timed calls / steps, of which the median is reported (default: 10; with --train: 3)")
    p.add_argument("--json", action="store_true",
                   help="print one JSON object per measurement instead of a table (default: off)")
    p.set_defaults(func=_cmd_bench)

    p = sub.add_parser("train", help="train a zoo entry's architecture on a generated dataset (resumable)",
                       description="Train NAME's architecture, config and recipe. The recipes' default is the papers' "
                       "schedule, 200 epochs of 10,000 sequences: days on a 2-core CPU. On a CPU give a budget instead, "
                       "e.g. `stzoo train tau-mmnist-s --out runs/tau --time-budget 60` (the schedule is laid over 60 "
                       "minutes and the run stops annealed). See docs/training.md.")
    p.add_argument("name", help="zoo entry whose architecture, config and recipe to train (stzoo list)")
    p.add_argument("--out", required=True, help="run folder (checkpoint, logs); resumes if it exists (required)")
    p.add_argument("--mnist-dir", default=None, help="folder of the MNIST IDX files (default: $STZOO_MNIST_DIR)")
    p.add_argument("--device", default=None, help="cpu, cuda, cuda:1 ... (default: cuda if available, else cpu)")
    p.add_argument("--threads", type=int, default=None, metavar="N", help="torch CPU threads (default: torch's choice)")
    p.add_argument("--max-steps", type=int, default=None, metavar="N",
                   help="stop after N steps in all (the schedule still spans the whole run); running the same "
                   "command again resumes (default: no limit)")
    p.add_argument("--eval-sequences", type=int, default=10000, metavar="N",
                   help="test sequences of the final evaluation in summary.json; 0 skips it (default: 10000)")
    p.add_argument("--checkpoint-every", type=float, default=300.0, metavar="S",
                   help="seconds between checkpoints (default: 300)")
    p.add_argument("--init-from", default=None,
                   help="warm-start a new run: 'released' (the entry's released weights) or a .safetensors path "
                   "(default: random initialisation)")
    p.add_argument("--dtype", default="auto", choices=("auto", "float32", "bfloat16"),
                   help="training precision; auto = bf16 autocast where the device has native bf16 (default: auto)")
    p.add_argument("--dataset", default=None, metavar="NAME",
                   help="training data: moving_mnist, grayscott or kolmogorov (stzoo data list) (default: the "
                   "entry's dataset, moving_mnist for the -mmnist entries)")
    p.add_argument("--time-budget", type=float, default=None, metavar="MIN",
                   help="lay the learning-rate schedule over MIN minutes of training and stop, annealed and "
                   "checkpointed, when they are spent (or when --epochs are done, if sooner) (default: none)")
    p.add_argument("--budget-clock", choices=("wall", "cpu"), default="wall",
                   help="what --time-budget and --curve-every count: wall-clock seconds, or this process's CPU "
                   "seconds (the same compute for every run with fixed --threads, however busy the machine) "
                   "(default: wall)")
    p.add_argument("--curve-every", type=float, default=None, metavar="MIN",
                   help="every MIN minutes of budget, measure the model on the first --curve-sequences test "
                   "sequences and append the result to OUT/curve.jsonl (default: off)")
    p.add_argument("--data-workers", type=int, default=0, metavar="N",
                   help="processes that generate training batches ahead of the loop (the same sequences); "
                   "for a GPU, which would wait for the CPU otherwise (default: 0, in the loop)")
    p.add_argument("--data-pool", type=int, default=None, metavar="N",
                   help="train on a fixed pool of N sequences, generated once into OUT/pool.npy (resumable, "
                   "outside the budget clocks; by --data-workers processes if given) and drawn in a new order "
                   "every epoch, instead of fresh sequences: for data that costs more to generate than to "
                   "train on, e.g. kolmogorov on a CPU (default: fresh sequences)")
    p.add_argument("--curve-sequences", type=int, default=64, metavar="N",
                   help="test sequences each --curve-every measurement uses (default: 64)")
    p.add_argument("--config", action="append", type=_parse_config_setting, default=None, metavar="KEY=VALUE",
                   help="change one setting of the entry's architecture config, e.g. --config num_hidden=64 "
                   "(repeatable; a size sweep). The run then trains another model than NAME's, which "
                   "`stzoo release NAME` refuses (default: the entry's config)")
    for name, typ, what in (("epochs", int, "epochs of --epoch-size sequences (the recipes: 200, days on a CPU)"),
                            ("epoch_size", int, "sequences per epoch"), ("batch_size", int, "sequences per step"),
                            ("lr", float, "peak learning rate (OneCycle)"), ("loss", str, "mse or mse+ddr"),
                            ("alpha", float, "DDR weight of the mse+ddr loss"),
                            ("seed", int, "initialisation and data-order seed"),
                            ("scheduled_sampling", float,
                             "recurrent models: fraction of training over which teacher forcing decays to 0")):
        p.add_argument("--" + name.replace("_", "-"), dest=name, type=typ, default=None,
                       help=f"{what} (default: the entry's recipe)")
    p.set_defaults(func=_cmd_train)

    from stzoo.training.finetune import AUTO_MAX_STEPS, AUTO_MIN_STEPS, AUTO_PASSES, DEFAULT_LR

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
            raise argparse.ArgumentTypeError(f"expected 'auto' or a fraction in [0, 1) (0: no validation; "
                                             f"separate videos go to --val-data), got {text!r}") from None

    p = sub.add_parser("finetune", help="fine-tune a zoo model on your own videos (resumable; torchrun for DDP)",
                       description="Fine-tune NAME (a zoo name, a save_pretrained folder or hf-hub:owner/repo) on "
                       "your videos and write the best model to --out in the save_pretrained layout. The defaults "
                       "size the step budget from the data, train at the videos' own frame size, hold out "
                       "validation clips when the data can spare them, and compare the result with copying the "
                       "last frame. Run it with `torchrun --nproc_per_node=N -m stzoo.cli.main finetune ...` for "
                       "data-parallel training. See docs/finetuning.md.")
    p.add_argument("name", help="the model to start from: a zoo name (stzoo list), a save_pretrained folder or "
                   "hf-hub:owner/repo")
    p.add_argument("--data", required=True, nargs="+", metavar="PATH",
                   help="video file(s) (GIF, MP4/AVI/MOV with stzoo[video], .npy/.npz), folders of frames or of "
                   "videos (required)")
    p.add_argument("--out", required=True, help="output folder: best model, checkpoint.pt, history.json (required)")
    p.add_argument("--steps", type=_parse_steps, default="auto", metavar="N|auto",
                   help=f"optimizer steps in all; auto: {AUTO_PASSES} passes over the training clips, kept within "
                   f"[{AUTO_MIN_STEPS}, {AUTO_MAX_STEPS}] (default: auto)")
    p.add_argument("--epochs", type=int, default=None, metavar="N",
                   help="instead of --steps: N full passes over the training clips (default: set by --steps)")
    p.add_argument("--lr", type=float, default=DEFAULT_LR,
                   help="peak learning rate: AdamW, OneCycle warm-up over 30%% of the steps then cosine decay "
                   f"(default: {DEFAULT_LR:g})")
    p.add_argument("--batch-size", type=int, default=8, metavar="N", help="clips per step, per process (default: 8)")
    p.add_argument("--val", type=_parse_val, default="auto", metavar="auto|FRACTION",
                   help="validation: auto holds out the last 20%% (at least one clip) when the data can spare it, "
                   "else trains without validation and says so; a fraction holds out that much; 0: none "
                   "(default: auto)")
    p.add_argument("--val-data", nargs="+", default=None, metavar="PATH",
                   help="separate validation videos instead of --val (default: none)")
    p.add_argument("--split", choices=("auto", "video", "time"), default="auto",
                   help="how --val holds data out: whole videos, the end of every video, or auto: by video for "
                   "two or more videos, else by time (default: auto)")
    p.add_argument("--stride", type=int, default=1, metavar="N", help="frames between clip starts (default: 1)")
    p.add_argument("--loss", choices=("mse", "mse+ddr"), default="mse", help="training loss (default: mse)")
    p.add_argument("--alpha", type=float, default=0.1, help="DDR weight for --loss mse+ddr (default: 0.1)")
    p.add_argument("--freeze", nargs="*", default=None, metavar="PREFIX",
                   help="parameter-name prefixes to keep fixed, e.g. encoder (default: none)")
    p.add_argument("--patience", type=int, default=0, metavar="N",
                   help="stop after N validations without a better validation MSE; 0: never, the best "
                   "validation is kept anyway (default: 0)")
    p.add_argument("--min-delta", type=float, default=0.0,
                   help="smallest validation-MSE decrease that counts as better (default: 0)")
    p.add_argument("--channels", type=int, default=None, metavar="N",
                   help="train with N channels (default: the data's: 1 if every video is grey, else 3)")
    p.add_argument("--size", type=_parse_size, default="native", metavar="native|model|HxW",
                   help="frame size to train at: native keeps the videos' own size (the model is adapted to it), "
                   "model resizes to the model's training size, HxW to that (default: native)")
    p.add_argument("--frames-in", type=int, default=None, metavar="N",
                   help="frames read per forecast (default: the model's)")
    p.add_argument("--frames-out", type=int, default=None, metavar="N",
                   help="frames predicted per forecast (default: the model's)")
    p.add_argument("--data-layout", choices=("THW", "THWC", "TCHW"), default=None,
                   help="axis order of .npy/.npz data when it cannot be inferred (default: inferred)")
    p.add_argument("--max-steps", type=int, default=None, metavar="N",
                   help="stop after N steps in all, the schedule still spanning the whole budget; --resume "
                   "continues (default: no limit)")
    p.add_argument("--seed", type=int, default=0, help="shuffling and initialisation seed (default: 0)")
    p.add_argument("--weight-decay", type=float, default=0.0, help="AdamW weight decay (default: 0)")
    p.add_argument("--grad-clip", type=float, default=1.0, help="gradient-norm clipping; 0: off (default: 1.0)")
    p.add_argument("--scheduled-sampling", type=float, default=0.0, metavar="FRACTION",
                   help="recurrent models: fraction of training over which teacher forcing decays from 1 to 0 "
                   "(default: 0)")
    p.add_argument("--checkpoint-every", type=int, default=200, metavar="N",
                   help="optimizer steps between checkpoints inside an epoch (default: 200)")
    p.add_argument("--resume", action="store_true", help="continue from --out/checkpoint.pt (default: off)")
    p.add_argument("--dtype", default="auto", choices=("auto", "float32", "bfloat16"),
                   help="training precision: bfloat16 autocast (weights stay float32) or float32; auto = bf16 "
                   "where the device has native bf16 units (a recent GPU, a CPU with AMX / AVX512-BF16) "
                   "(default: auto)")
    p.add_argument("--amp", action=argparse.BooleanOptionalAction, default=None,
                   help="the same as --dtype bfloat16 (--amp) or --dtype float32 (--no-amp) (default: --dtype)")
    p.add_argument("--device", default=None, help="cpu, cuda, cuda:1, ... (default: CUDA when available)")
    p.add_argument("--threads", type=int, default=None, metavar="N", help="torch CPU threads (default: torch's)")
    p.add_argument("--weights", default=None, metavar="FILE",
                   help="local safetensors file instead of the released weights (default: the release)")
    p.add_argument("--random", action="store_true", help="start from random weights (default: off)")
    p.add_argument("--model-name", default=None, help="name in the model card (default: NAME-finetuned)")
    p.add_argument("--push-to-hub", default=None, metavar="REPO_ID",
                   help="upload the result to this Hub repo (default: no upload)")
    p.add_argument("--quiet", action="store_true", help="no progress bars (default: off)")
    p.set_defaults(func=_cmd_finetune)

    p = sub.add_parser("evaluate", help="MSE/MAE/SSIM/PSNR on a dataset's fixed test set",
                       description="Measure a zoo model (or the copy-last-frame baseline) on the first N "
                       "sequences of a dataset's fixed test set (the model's own dataset unless --dataset says "
                       "otherwise) and print the metrics as JSON. The test set is generated once and then "
                       "memory-mapped from CACHE/moving-mnist or CACHE/fields, where CACHE is $STZOO_CACHE, else "
                       "$XDG_CACHE_HOME/stzoo, else ~/.cache/stzoo (Moving MNIST: 82 MB per 1,000 sequences; "
                       "Gray-Scott: 655 MB, Kolmogorov: 164 MB for the whole sets; delete the folder to reclaim "
                       "the space).")
    p.add_argument("name", help="zoo name, or copy-last-frame for the baseline")
    p.add_argument("--dataset", default=None, metavar="NAME",
                   help="moving_mnist, grayscott or kolmogorov (stzoo data list) (default: the model's training "
                   "dataset; moving_mnist for copy-last-frame)")
    p.add_argument("--mnist-dir", default=None, metavar="DIR",
                   help="folder of the MNIST IDX files (default: $STZOO_MNIST_DIR)")
    p.add_argument("--sequences", type=int, default=None, metavar="N",
                   help="number of test sequences to evaluate on (default: the whole test set: 10000 for "
                   "moving_mnist, 1000 grayscott, 500 kolmogorov)")
    p.add_argument("--batch-size", type=int, default=64, metavar="N",
                   help="sequences per forward pass (default: %(default)s)")
    p.add_argument("--weights", default=None, metavar="FILE",
                   help="local safetensors file instead of the released weights (default: the release)")
    p.add_argument("--device", default=None, help="torch device, e.g. cpu or cuda (default: the model's, cpu)")
    p.add_argument("--threads", type=int, default=None, metavar="N",
                   help="torch intra-op threads (default: torch's choice)")
    p.add_argument("--no-cache", dest="cache", action="store_false", default=True,
                   help="generate the test sequences batch by batch instead of memory-mapping the cached "
                   "file (same sequences; nothing written to disk) (default: use the cache)")
    p.set_defaults(func=_cmd_evaluate)

    p = sub.add_parser("data", help="the generated datasets: list them, look at one")
    data_sub = p.add_subparsers(dest="data_command", required=True)
    p = data_sub.add_parser("list", help="the datasets stzoo train --dataset takes")
    p.set_defaults(func=_cmd_data_list)
    p = data_sub.add_parser("preview", help="write one sequence of a dataset as an animated GIF")
    p.add_argument("name", help="dataset name (stzoo data list)")
    p.add_argument("--out", required=True, metavar="FILE.gif", help="GIF file to write (required)")
    p.add_argument("--index", type=int, default=0, metavar="N", help="which sequence (default: %(default)s)")
    p.add_argument("--split", default="test", choices=("train", "test"),
                   help="training data or the fixed test set (default: %(default)s)")
    p.add_argument("--fps", type=float, default=5.0, help="frames per second of the GIF (default: %(default)g)")
    p.add_argument("--mnist-dir", default=None, metavar="DIR",
                   help="folder of the MNIST IDX files, for moving_mnist (default: $STZOO_MNIST_DIR)")
    p.set_defaults(func=_cmd_data_preview)

    p = sub.add_parser("release", help="(maintainers) write a run's weights, measure them, update the manifest")
    p.add_argument("name", help="zoo entry to release (stzoo list); not an alias")
    p.add_argument("--run", required=True, metavar="DIR", help="run folder written by stzoo train (required)")
    p.add_argument("--prior-run", action="append", default=[], metavar="DIR",
                   help="a run between the current release and --run (each warm-started from the previous "
                   "one's weights), in order; repeat for several. They join the entry's training ledger "
                   "(default: none)")
    p.add_argument("--force", action="store_true",
                   help="replace the current release even if the new weights are not better on the test set "
                   "(default: off)")
    p.add_argument("--mnist-dir", default=None, metavar="DIR",
                   help="folder of the MNIST IDX files (default: $STZOO_MNIST_DIR)")
    p.add_argument("--sequences", type=int, default=10000, metavar="N",
                   help="test sequences to measure on (default: %(default)s)")
    p.add_argument("--half", action="store_true", help="store float16 weights (default: float32)")
    p.add_argument("--weights-dir", default=None, metavar="DIR",
                   help="where the released file goes (default: the package's stzoo/weights/ folder, which "
                   "ships in the wheel)")
    p.add_argument("--manifest", default=None, metavar="FILE",
                   help="manifest to update (default: the package's weights_manifest.json)")
    p.add_argument("--threads", type=int, default=None, metavar="N", help="torch CPU threads (default: torch's choice)")
    p.set_defaults(func=_cmd_release)

    p = sub.add_parser("zoo-table", help="print the zoo table (Markdown) generated from the manifest")
    p.add_argument("--write", default=None, metavar="FILE",
                   help="replace the table between the zoo-table markers in FILE, e.g. README.md (default: print it)")
    p.add_argument("--docs", default=None, metavar="DIR",
                   help="also write the docs pages generated from the manifest (DIR/zoo.md, DIR/models/*.md), "
                   "e.g. docs (default: none)")
    p.set_defaults(func=_cmd_zoo_table)

    p = sub.add_parser("zoo-stats", help="(maintainers) count GFLOPs and measure CPU speed into the manifest",
                       description="Count each entry's forward FLOPs with torch.utils.flop_counter.FlopCounterMode "
                       "and, with --speed, measure CPU sequences/s with stzoo.tools.bench.measure; both are written into "
                       "the manifest with their provenance. Then run `stzoo zoo-table --write README.md --docs docs`.")
    p.add_argument("names", nargs="*", metavar="NAME", help="entries to update (default: all non-alias entries)")
    p.add_argument("--speed", action="store_true", help="also measure CPU speed, batch 1, float32 (default: off)")
    p.add_argument("--threads", type=int, default=1, metavar="N",
                   help="CPU threads for the speed measurement (default: %(default)s)")
    p.add_argument("--iters", type=int, default=10, metavar="N",
                   help="timed forecasts per entry (default: %(default)s)")
    p.add_argument("--machine", default=None, help="machine description to store (default: read from this one)")
    p.add_argument("--manifest", default=None, metavar="FILE",
                   help="manifest to update (default: the package's weights_manifest.json)")
    p.set_defaults(func=_cmd_zoo_stats)

    p = sub.add_parser("download", help="pre-fetch verified weights (e.g. for an offline machine)",
                       description="Fetch zoo weights into the Hugging Face cache (HF_HOME / HF_HUB_CACHE; "
                       "HF_ENDPOINT picks a mirror), check their sha256, and print where each file is. "
                       "Copy that cache to an offline machine and set HF_HUB_OFFLINE=1 there, or put the files "
                       "in a folder named by STZOO_WEIGHTS_DIR.")
    p.add_argument("names", nargs="*", metavar="NAME",
                   help="zoo names, or hf-hub:owner/repo[@revision] (give names or --all)")
    p.add_argument("--all", action="store_true", help="every zoo entry with released weights (default: off)")
    p.set_defaults(func=_cmd_download)

    p = sub.add_parser("cache", help="show which weights are cached locally, and their sizes")
    p.add_argument("--json", action="store_true", help="machine-readable JSON output (default: a table)")
    p.set_defaults(func=_cmd_cache)

    p = sub.add_parser("hub", help="(maintainers) Hugging Face Hub publishing")
    hub_sub = p.add_subparsers(dest="hub_command", required=True)
    p = hub_sub.add_parser("push", help="upload a zoo entry's release or a save_pretrained folder",
                           description="Upload config.json, model.safetensors and README.md (model card) to a "
                           "Hub repo, created if missing. NAME: a zoo entry (its verified release file, byte for "
                           "byte); DIR: a folder written by Predictor.save_pretrained (loaded first, strictly). "
                           "The token comes from HF_TOKEN or `hf auth login`.")
    p.add_argument("source", metavar="NAME|DIR", help="a zoo entry with released weights, or a save_pretrained folder")
    p.add_argument("--repo-id", required=True, help="owner/name on the Hub (required)")
    p.add_argument("--revision", default=None, help="branch to commit to, created if missing (default: main)")
    p.add_argument("--message", default=None, help="commit message (default: \"Upload NAME with stzoo VERSION\")")
    p.add_argument("--private", action="store_true", help="create the repo private (default: public)")
    p.set_defaults(func=_cmd_hub_push)

    p = sub.add_parser("convert", help="import a checkpoint trained with another library")
    convert_sub = p.add_subparsers(dest="convert_source", required=True)
    p = convert_sub.add_parser(
        "openstl", help="an OpenSTL checkpoint (.pth / .ckpt; any of the 14 methods in docs/openstl.md, "
        "e.g. TAU, SimVP, PredRNN, MIM, SwinLSTM) → a save_pretrained folder",
        description="Convert an OpenSTL checkpoint (raw state_dict, a dict with 'state_dict', or a Lightning "
        ".ckpt; read with torch.load(weights_only=True) only) into a folder that stzoo.load(DIR) loads. Keys "
        "and shapes are checked strictly. See docs/openstl.md.")
    p.add_argument("checkpoint", metavar="CKPT", help="the OpenSTL .pth / .ckpt file")
    p.add_argument("--arch", required=True, metavar="METHOD",
                   help="OpenSTL's method name, any case: TAU, SimVP (with the config's model_type), SimVP_gSTA, "
                   "ConvLSTM, PredRNN, PredRNNv2, PredRNNpp, MIM, MAU, PhyDNet, E3DLSTM, MMVP, SwinLSTM, PredFormer")
    p.add_argument("--config", default=None, metavar="JSON|FILE",
                   help="what the weights cannot tell, e.g. '{\"patch_size\": 4}' for ConvLSTM; JSON, a .json "
                   "file or an OpenSTL .py config (e.g. configs/mmnist/ConvLSTM.py) (default: read everything "
                   "from the checkpoint)")
    p.add_argument("--out", required=True, metavar="DIR", help="folder to write (required)")
    p.add_argument("--name", default=None, help="name in the model card (default: <arch>-openstl-<file stem>)")
    p.add_argument("--license", default="Apache-2.0", help="license of the original weights (default: OpenSTL's, "
                   "Apache-2.0)")
    p.set_defaults(func=_cmd_convert_openstl)

    p = sub.add_parser("stream", help="feed a video frame by frame and print rolling forecasts",
                       description="Push the frames of a video (GIF, folder of images, .npy, or MP4 & co. with "
                       "the video extra: pip install -e \".[video]\") one at a time through a stzoo.Forecaster, "
                       "as a live source would, and "
                       "forecast every K frames once enough context has arrived. Each forecast is compared with "
                       "the frames that really followed, where the input has them. See docs/deploy.md.")
    _add_model_source(p)
    p.add_argument("--input", required=True, metavar="VIDEO",
                   help="GIF, folder of images, .npy, or a video file (required)")
    p.add_argument("--horizon", type=int, default=None, metavar="N",
                   help="frames per forecast (default: the model's frames_out)")
    p.add_argument("--every", type=int, default=1, metavar="K", help="forecast every K frames (default: 1)")
    p.add_argument("--context", choices=["stream", "window"], default=None,
                   help="carry the recurrent state over the whole stream, or recompute the last frames_in "
                   "frames (default: stream for recurrent models, window for TAU)")
    p.add_argument("--min-frames", type=int, default=None, metavar="N",
                   help="frames before the first forecast (default: the fewest the model needs)")
    p.add_argument("--out", default=None, metavar="DIR",
                   help="save every forecast and forecasts.json here (default: print only, save nothing)")
    p.add_argument("--save", choices=["gif", "npy"], default="gif",
                   help="file type of the forecasts saved in --out (default: gif)")
    p.add_argument("--fps", type=float, default=5.0, help="frames per second of saved GIFs (default: 5)")
    p.add_argument("--device", default=None, help="cpu, cuda, cuda:1, ... (default: the model's, cpu)")
    p.add_argument("--impl", choices=["auto", "reference", "fused"], default="auto",
                   help="reference modules or their fused fast twins; auto = fused (default: auto)")
    p.set_defaults(func=_cmd_stream)

    p = sub.add_parser("export", help="export a model to ONNX (native lengths, dynamic batch)",
                       description="Write the model as an ONNX file mapping frames (B×frames_in×C×H×W float32 in "
                       "[0, 1]) to forecast (B×frames_out×C×H×W); recurrent models are unrolled. Only the batch "
                       "axis is dynamic. The file is checked with onnxruntime against torch before it is kept. "
                       "Needs the onnx extra (in a checkout: pip install -e \".[onnx]\"). See docs/deploy.md.")
    _add_model_source(p)
    p.add_argument("--format", choices=["onnx"], default="onnx", help="file format; only onnx so far (default: onnx)")
    p.add_argument("--out", required=True, metavar="FILE", help="the .onnx file to write (required)")
    p.add_argument("--batch", type=int, default=1, metavar="N",
                   help="example batch size, the only one accepted with --static-batch (default: 1)")
    p.add_argument("--static-batch", action="store_true",
                   help="fix the batch size instead of leaving it dynamic (default: dynamic)")
    p.add_argument("--height", type=int, default=None, help="frame height (default: the training size)")
    p.add_argument("--width", type=int, default=None, help="frame width (default: the training size)")
    p.add_argument("--opset", type=int, default=None, help="ONNX opset (default: the exporter's, 20 for dynamo)")
    p.add_argument("--exporter", choices=["dynamo", "torchscript"], default="dynamo",
                   help="torch.onnx exporter: dynamo (torch.export based) or the older torchscript one "
                   "(default: dynamo)")
    p.add_argument("--no-verify", action="store_true",
                   help="skip the onnxruntime check against torch (default: verify)")
    p.set_defaults(func=_cmd_export)
    return parser


def show_warning(message: Warning | str, category: type[Warning], *_: object, **__: object) -> None:
    """A warning as one command-line line, not a source location: ``stzoo: warning: ...``; warnings of
    other packages (torch, ...) keep their category name so that they can be told apart."""
    package = getattr(category, "__module__", "").split(".")[0]
    kind = "" if package == "stzoo" else category.__name__ + (f" (from {package})" if package != "builtins" else "") + ": "
    print(f"stzoo: warning: {kind}{message}", file=sys.stderr)


def main(argv: Sequence[str] | None = None) -> int:
    import warnings

    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    args.command_line = "stzoo " + shlex.join(argv)  # recorded as provenance by train / release
    try:
        with warnings.catch_warnings():  # every command: warnings as CLI lines, restored afterwards
            warnings.showwarning = show_warning
            return args.func(args)
    except StzooError as exc:
        print(f"stzoo: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
