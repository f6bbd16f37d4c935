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
                    command="stzoo " + " ".join(shlex.quote(a) for a in sys.argv[1:]))
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
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except StzooError as exc:
        print(f"stzoo: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
