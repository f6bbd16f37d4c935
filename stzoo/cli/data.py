"""`stzoo data list`, `stzoo data preview`, `stzoo data check`: the datasets, and a look at data before training."""

from __future__ import annotations

import argparse

from stzoo.cli.common import add_dataset_options, dataset_options, finite_float, nonnegative_int

__all__ = ["register"]


def _cmd_data_list(args: argparse.Namespace) -> int:
    from stzoo.data.registry import DATASETS

    for name, spec in DATASETS.items():
        opts = f" (options: {', '.join(o.flag for o in spec.options)})" if spec.options else ""
        size = f"test set {spec.test_size:,} sequences" if spec.test_size else "test set: your files"
        frames = f"{spec.frames_in}→{spec.frames_out}"
        print(f"{name:18s} {spec.channels} channel(s), {frames:6s} {size}: {spec.description}{opts}")
    return 0


def _cmd_data_check(args: argparse.Namespace) -> int:
    import json

    from stzoo.data.doctor import check_dataset, check_path
    from stzoo.errors import InputError

    if (args.path is None) == (args.dataset is None):
        raise InputError("give a PATH to check your own data, or --dataset NAME (with --data-dir) for a registered one")
    if args.dataset is not None:
        report = check_dataset(args.dataset, dataset_options(args), sequences=args.sequences)
    else:
        report = check_path(
            args.path, layout=args.layout, frames_in=args.frames_in, frames_out=args.frames_out, val_fraction=args.val
        )
    print(json.dumps(report.as_dict(), indent=2) if args.json else report.text())
    return 0 if report.ok else 1


def _cmd_data_preview(args: argparse.Namespace) -> int:
    from stzoo.data.fields import save_preview
    from stzoo.data.registry import get_dataset

    kw = get_dataset(args.name).own_options(dataset_options(args))
    frames = save_preview(args.name, args.out, index=args.index, split=args.split, fps=args.fps, **kw)
    print(f"wrote {args.out}: sequence {args.index} of the {args.name} {args.split} set, {len(frames)} frames")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    """Add `data` (with `list` and `preview` under it) to the subcommands ``sub``."""
    p = sub.add_parser("data", help="the datasets: list them, look at one, check data before training")
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
    p = data_sub.add_parser(
        "check",
        help="the data doctor: shapes, value range, a split and the copy-last baseline, before any training",
        description="Look at a video, a folder of frames, an .npy/.npz array or a NetCDF file (PATH), or at a "
        "registered dataset (--dataset NAME --data-dir DIR), and report the layout, the values a model will "
        "see, a training/validation split and the copy-last-frame baseline. Exits 1 when something needs "
        "fixing (e.g. unnormalised values). See docs/bring-your-own-data.md.",
    )
    p.add_argument("path", nargs="?", default=None, help="your data: video, frame folder, .npy/.npz or .nc")
    p.add_argument(
        "--dataset",
        default=None,
        metavar="NAME",
        help="a registered dataset instead (stzoo data list) (default: none, check PATH)",
    )
    p.add_argument(
        "--layout",
        default=None,
        help="how an array is laid out: NTCHW, NTHWC, NTHW, TNHW, TCHW, THWC or THW "
        "(default: guessed from the shape, and reported)",
    )
    p.add_argument("--frames-in", type=int, default=10, metavar="N", help="observed frames per window (default: 10)")
    p.add_argument("--frames-out", type=int, default=10, metavar="N", help="predicted frames per window (default: 10)")
    p.add_argument(
        "--val", type=float, default=0.1, metavar="F", help="fraction held out for validation (default: 0.1)"
    )
    p.add_argument(
        "--sequences", type=int, default=64, metavar="N", help="test sequences of --dataset to look at (default: 64)"
    )
    p.add_argument("--json", action="store_true", help="print the report as JSON (default: words)")
    add_dataset_options(p)
    p.set_defaults(func=_cmd_data_check)
