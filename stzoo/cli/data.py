"""`stzoo data list`, `stzoo data preview`: the generated datasets."""

from __future__ import annotations

import argparse

from stzoo.cli.common import add_dataset_options, dataset_options, finite_float, nonnegative_int

__all__ = ["register"]


def _cmd_data_list(args: argparse.Namespace) -> int:
    from stzoo.data.registry import DATASETS

    for name, spec in DATASETS.items():
        opts = f" (options: {', '.join(o.flag for o in spec.options)})" if spec.options else ""
        print(f"{name:14s} {spec.channels} channel(s), test set {spec.test_size:,} sequences: {spec.description}{opts}")
    return 0


def _cmd_data_preview(args: argparse.Namespace) -> int:
    from stzoo.data.fields import save_preview
    from stzoo.data.registry import get_dataset

    kw = get_dataset(args.name).own_options(dataset_options(args))
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
    p.add_argument(
        "--index", type=nonnegative_int, default=0, metavar="N", help="which sequence (default: %(default)s)"
    )
    p.add_argument(
        "--split",
        default="test",
        choices=("train", "test"),
        help="training data or the fixed test set (default: %(default)s)",
    )
    p.add_argument(
        "--fps",
        type=finite_float(0.0, 1000.0, open_lo=True),
        default=5.0,
        help="frames per second of the GIF (default: %(default)g)",
    )
    add_dataset_options(p)
    p.set_defaults(func=_cmd_data_preview)
