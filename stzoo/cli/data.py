"""`stzoo data list`, `stzoo data preview`: the generated datasets."""

from __future__ import annotations

import argparse

from stzoo.cli.common import add_mnist_dir

__all__ = ["register"]


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


def register(sub: argparse._SubParsersAction) -> None:
    """Add `data` (with `list` and `preview` under it) to the subcommands ``sub``."""
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
    add_mnist_dir(p, purpose=", for moving_mnist")
    p.set_defaults(func=_cmd_data_preview)
