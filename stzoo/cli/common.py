"""Arguments that several commands take, each declared once (flag, type, metavar; the help says the default).

Every command that takes one of these calls its ``add_*`` function; what differs between commands (the
default, and the words that say it) is an argument of the function. The maintainer CLI
(``stzoo.tools.cli``) uses the same helpers.
"""

from __future__ import annotations

import argparse
from pathlib import Path

__all__ = [
    "PACKAGE_DIR",
    "add_batch_size",
    "add_device",
    "add_dtype",
    "add_dataset_options",
    "add_model_source",
    "add_random",
    "add_threads",
    "add_weights",
    "dataset_options",
    "set_threads",
]

#: the installed ``stzoo`` package folder (the packaged manifest and weights live in it)
PACKAGE_DIR = Path(__file__).resolve().parents[1]


def add_device(
    p: argparse.ArgumentParser, default_says: str, *, default: str | None = None, what: str = "cpu, cuda, cuda:1, ..."
) -> None:
    """``--device``: the torch device to run on (``default_says`` words what ``default`` means)."""
    p.add_argument("--device", default=default, help=f"{what} (default: {default_says})")


def add_threads(
    p: argparse.ArgumentParser,
    default_says: str = "torch's choice",
    *,
    default: int | None = None,
    what: str = "torch CPU threads",
) -> None:
    """``--threads N``: torch CPU threads (applied by :func:`set_threads`)."""
    p.add_argument("--threads", type=int, default=default, metavar="N", help=f"{what} (default: {default_says})")


def set_threads(args: argparse.Namespace) -> None:
    """Apply ``--threads`` (if given) to torch."""
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)


def add_dtype(
    p: argparse.ArgumentParser,
    help: str,
    *,
    default: str | None,
    choices: tuple[str, ...] | None = None,
    nargs: str | None = None,
    metavar: str | None = None,
) -> None:
    """``--dtype``: the precision of weights / inputs (forecasts) or of the training steps."""
    p.add_argument("--dtype", default=default, choices=choices, nargs=nargs, metavar=metavar, help=help)


def add_batch_size(p: argparse.ArgumentParser, help: str, *, default: int | None, metavar: str | None = "N") -> None:
    """``--batch-size N``: sequences (clips) per step or per forward pass."""
    p.add_argument("--batch-size", dest="batch_size", type=int, default=default, metavar=metavar, help=help)


def add_dataset_options(p: argparse.ArgumentParser) -> None:
    """Every registered dataset's own options (Moving MNIST's ``--mnist-dir DIR``; stzoo.data.registry)."""
    from stzoo.data.registry import add_option_arguments

    add_option_arguments(p)


def dataset_options(args: argparse.Namespace) -> dict:
    """The dataset options given on the command line, as the ``dataset_options`` dict train / evaluate take."""
    from stzoo.data.registry import options_from_namespace

    return options_from_namespace(args)


def add_weights(p: argparse.ArgumentParser) -> None:
    """``--weights FILE``: a local safetensors file instead of the released weights."""
    p.add_argument(
        "--weights",
        default=None,
        metavar="FILE",
        help="local safetensors file instead of the released weights (default: the release)",
    )


def add_random(p: argparse.ArgumentParser, help: str = "use random weights, for a smoke test (default: off)") -> None:
    """``--random``: random weights instead of the released ones."""
    p.add_argument("--random", action="store_true", help=help)


def add_model_source(p: argparse.ArgumentParser) -> None:
    """The model arguments of `stream` and `export`: NAME, --weights, --random."""
    p.add_argument("name", help="zoo name (stzoo list), save_pretrained folder or hf-hub:owner/repo[@revision]")
    add_weights(p)
    add_random(p)
