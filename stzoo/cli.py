"""The ``stzoo`` command line: list, info, predict, train, evaluate."""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from dataclasses import fields, replace
from pathlib import Path
from typing import Sequence

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
    import numpy as np

    from stzoo.api import load
    from stzoo.io import read_frames, write_gif

    p = load(args.name, pretrained=not args.random, weights=args.weights, device=args.device)
    frames = read_frames(args.input, channels=p.spec.channels)
    if frames.ndim == 3:
        frames = frames[..., None]
    future = p.predict(frames, horizon=args.horizon, layout="THWC")
    out = Path(args.output)
    if out.suffix.lower() == ".npy":
        np.save(out, future)
    else:
        write_gif(future, out, fps=args.fps)
    print(f"wrote {future.shape[0]} predicted frames to {out}")
    return 0


def _recipe_from_args(arch: str, args: argparse.Namespace):
    from stzoo.train import RECIPES

    recipe = RECIPES[arch]
    overrides = {f.name: getattr(args, f.name) for f in fields(recipe) if getattr(args, f.name, None) is not None}
    return replace(recipe, **overrides)


def _cmd_train(args: argparse.Namespace) -> int:
    import torch

    from stzoo.api import info
    from stzoo.train import train

    if args.threads:
        torch.set_num_threads(args.threads)
    entry = info(args.name)
    summary = train(entry["architecture"], entry["config"], args.out, mnist_dir=args.mnist_dir,
                    recipe=_recipe_from_args(entry["architecture"], args), device=args.device,
                    max_steps=args.max_steps, eval_sequences=args.eval_sequences,
                    checkpoint_every_s=args.checkpoint_every,
                    command=args.command_line)
    print(json.dumps({k: summary[k] for k in ("step", "total_steps", "wall_clock_s", "metrics") if k in summary},
                     indent=2))
    return 0


def _cmd_evaluate(args: argparse.Namespace) -> int:
    import torch

    from stzoo.api import load
    from stzoo.data import moving_mnist_test_set
    from stzoo.train import evaluate, evaluate_copy_last

    if args.threads:
        torch.set_num_threads(args.threads)
    test = moving_mnist_test_set(args.mnist_dir, args.sequences)
    if args.name == "copy-last-frame":
        result = evaluate_copy_last(test)
    else:
        p = load(args.name, weights=args.weights, device=args.device)
        result = evaluate(p.model, test, frames_in=p.spec.frames_in, frames_out=p.spec.frames_out,
                          device=p.device)
    print(json.dumps(result, indent=2))
    return 0


def _cmd_release(args: argparse.Namespace) -> int:
    import torch

    from stzoo.train import release_to_manifest

    if args.threads:
        torch.set_num_threads(args.threads)
    root = Path(__file__).resolve().parent
    entry = release_to_manifest(
        args.name, args.run, weights_dir=args.weights_dir or root.parent / "weights",
        manifest_path=args.manifest or root / "weights_manifest.json", mnist_dir=args.mnist_dir,
        eval_sequences=args.sequences, half=args.half,
        command=args.command_line)
    print(json.dumps({k: entry[k] for k in ("name", "weights", "metrics")}, indent=2))
    return 0


TABLE_START, TABLE_END = "<!-- zoo-table:start -->", "<!-- zoo-table:end -->"


def _cmd_zoo_table(args: argparse.Namespace) -> int:
    from stzoo.manifest import zoo_table_markdown

    table = zoo_table_markdown()
    if not args.write:
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
    from stzoo.hub import HUB_PREFIX, locate_weights
    from stzoo.manifest import get_entry

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
            from stzoo.pretrained import CONFIG_NAME, WEIGHTS_NAME
            from stzoo.hub import hub_download, parse_hub_id

            repo_id, revision = parse_hub_id(name)
            for filename in (CONFIG_NAME, WEIGHTS_NAME, "README.md"):
                try:
                    path, source = hub_download(repo_id, filename, revision, name=name)
                except StzooError:
                    if filename == "README.md":
                        continue
                    raise
                print(f"{name}: {filename} -> {path} ({_SOURCES[source]})")
            continue
        loc = locate_weights(get_entry(name))
        print(f"{name}: {loc.path} ({_SOURCES[loc.source]}, sha256 verified)")
    return 0


_SOURCES = {"file": "given file", "local": "local weights folder", "hf-cache": "already in the Hugging Face cache",
            "download": "downloaded into the Hugging Face cache",
            "hf-hub": "in the Hugging Face cache, revision checked"}


def _cmd_cache(args: argparse.Namespace) -> int:
    from stzoo.hub import WEIGHTS_DIR_ENV, cache_report

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

    from stzoo.hub import validate_repo_id, validate_revision
    from stzoo.pretrained import WEIGHTS_NAME, export_release, push_folder

    validate_repo_id(args.repo_id)
    if args.revision is not None:
        validate_revision(args.revision)
    source = Path(args.source).expanduser()
    if source.is_dir():
        commit = push_folder(source, args.repo_id, revision=args.revision, commit_message=args.message,
                             private=args.private or None)
    else:
        from stzoo.manifest import get_entry

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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="stzoo", description="Spatiotemporal forecasting model zoo.")
    sub = parser.add_subparsers(dest="command", required=True)

    sub.add_parser("list", help="list zoo models").set_defaults(func=_cmd_list)

    p = sub.add_parser("info", help="show a model's manifest entry")
    p.add_argument("name")
    p.set_defaults(func=_cmd_info)

    p = sub.add_parser("predict", help="forecast the frames that follow a GIF / image folder / .npy")
    p.add_argument("name")
    p.add_argument("--input", required=True, help="GIF, folder of images, or .npy (T×H×W[×C])")
    p.add_argument("--output", required=True, help="OUT.gif (or .npy)")
    p.add_argument("--horizon", type=int, default=None)
    p.add_argument("--weights", default=None, help="local safetensors file instead of the release")
    p.add_argument("--random", action="store_true", help="use random weights (for a smoke test)")
    p.add_argument("--device", default=None)
    p.add_argument("--fps", type=float, default=5.0)
    p.set_defaults(func=_cmd_predict)

    p = sub.add_parser("train", help="train a zoo entry's architecture on Moving MNIST (resumable)")
    p.add_argument("name")
    p.add_argument("--out", required=True, help="run folder (checkpoint, logs); resumes if it exists")
    p.add_argument("--mnist-dir", default=None, help="folder of the MNIST IDX files (or $STZOO_MNIST_DIR)")
    p.add_argument("--device", default=None)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--max-steps", type=int, default=None)
    p.add_argument("--eval-sequences", type=int, default=10000)
    p.add_argument("--checkpoint-every", type=float, default=300.0, help="seconds between checkpoints")
    for name, typ in (("epochs", int), ("epoch_size", int), ("batch_size", int), ("lr", float),
                      ("loss", str), ("alpha", float), ("seed", int), ("scheduled_sampling", float)):
        p.add_argument("--" + name.replace("_", "-"), dest=name, type=typ, default=None)
    p.set_defaults(func=_cmd_train)

    p = sub.add_parser("evaluate", help="MSE/MAE/SSIM/PSNR on the stzoo Moving MNIST test set")
    p.add_argument("name", help="zoo name, or copy-last-frame for the baseline")
    p.add_argument("--mnist-dir", default=None)
    p.add_argument("--sequences", type=int, default=10000)
    p.add_argument("--weights", default=None)
    p.add_argument("--device", default=None)
    p.add_argument("--threads", type=int, default=None)
    p.set_defaults(func=_cmd_evaluate)

    p = sub.add_parser("release", help="(maintainers) write a run's weights, measure them, update the manifest")
    p.add_argument("name")
    p.add_argument("--run", required=True, help="run folder written by stzoo train")
    p.add_argument("--mnist-dir", default=None)
    p.add_argument("--sequences", type=int, default=10000)
    p.add_argument("--half", action="store_true", help="store float16 weights")
    p.add_argument("--weights-dir", default=None, help="default: the checkout's weights/ folder")
    p.add_argument("--manifest", default=None, help="default: the package's weights_manifest.json")
    p.add_argument("--threads", type=int, default=None)
    p.set_defaults(func=_cmd_release)

    p = sub.add_parser("zoo-table", help="print the zoo table (Markdown) generated from the manifest")
    p.add_argument("--write", default=None, metavar="FILE", help="replace the table between markers in FILE")
    p.set_defaults(func=_cmd_zoo_table)

    p = sub.add_parser("download", help="pre-fetch verified weights (e.g. for an offline machine)",
                       description="Fetch zoo weights into the Hugging Face cache (HF_HOME / HF_HUB_CACHE; "
                       "HF_ENDPOINT picks a mirror), check their sha256, and print where each file is. "
                       "Copy that cache to an offline machine and set HF_HUB_OFFLINE=1 there, or put the files "
                       "in a folder named by STZOO_WEIGHTS_DIR.")
    p.add_argument("names", nargs="*", metavar="NAME", help="zoo names, or hf-hub:owner/repo[@revision]")
    p.add_argument("--all", action="store_true", help="every zoo entry with released weights")
    p.set_defaults(func=_cmd_download)

    p = sub.add_parser("cache", help="show which weights are cached locally, and their sizes")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=_cmd_cache)

    p = sub.add_parser("hub", help="(maintainers) Hugging Face Hub publishing")
    hub_sub = p.add_subparsers(dest="hub_command", required=True)
    p = hub_sub.add_parser("push", help="upload a zoo entry's release or a save_pretrained folder",
                           description="Upload config.json, model.safetensors and README.md (model card) to a "
                           "Hub repo, created if missing. NAME: a zoo entry (its verified release file, byte for "
                           "byte); DIR: a folder written by Predictor.save_pretrained (loaded first, strictly). "
                           "The token comes from HF_TOKEN or `hf auth login`.")
    p.add_argument("source", metavar="NAME|DIR")
    p.add_argument("--repo-id", required=True, help="owner/name on the Hub")
    p.add_argument("--revision", default=None, help="branch to commit to (default main)")
    p.add_argument("--message", default=None, help="commit message")
    p.add_argument("--private", action="store_true", help="create the repo private")
    p.set_defaults(func=_cmd_hub_push)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    args.command_line = "stzoo " + shlex.join(argv)  # recorded as provenance by train / release
    try:
        return args.func(args)
    except StzooError as exc:
        print(f"stzoo: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
