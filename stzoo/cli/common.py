"""Arguments that several commands take, each declared once (flag, type, metavar; the help says the default).

Every command that takes one of these calls its ``add_*`` function; what differs between commands (the
default, and the words that say it) is an argument of the function. The maintainer CLI
(``stzoo.tools.cli``) uses the same helpers.
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path
from typing import Any

__all__ = [
    "PACKAGE_DIR",
    "MAX_COUNT",
    "count",
    "finite_float",
    "positive_float",
    "positive_int",
    "nonnegative_int",
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

#: the largest count (batch size, steps, sequences, threads, ...) a command-line argument accepts: 10**9
MAX_COUNT = 10**9


# ---- argument types that check ranges (argparse turns their errors into "argument --x: ..." + exit 2) ----
def _int_in(text: str, lo: int, hi: int) -> int:
    try:
        value = int(text.strip().replace("_", ""), 10)
    except (ValueError, AttributeError):
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text[:40]!r}") from None
    if not lo <= value <= hi:
        raise argparse.ArgumentTypeError(f"must be between {lo:,} and {hi:,}, got {text[:40]}")
    return value


def positive_int(text: str) -> int:
    """An argparse type: a whole number from 1 to :data:`MAX_COUNT`."""
    return _int_in(text, 1, MAX_COUNT)


def nonnegative_int(text: str) -> int:
    """An argparse type: a whole number from 0 to :data:`MAX_COUNT`."""
    return _int_in(text, 0, MAX_COUNT)


def count(lo: int = 1, hi: int = MAX_COUNT) -> Any:
    """An argparse type: a whole number from ``lo`` to ``hi``."""

    def parse(text: str) -> int:
        return _int_in(text, lo, hi)

    parse.__name__ = f"whole number in [{lo}, {hi}]"
    return parse


def finite_float(lo: float = -math.inf, hi: float = math.inf, *, open_lo: bool = False) -> Any:
    """An argparse type: a finite number (no NaN / inf) from ``lo`` to ``hi`` (``lo`` excluded when
    ``open_lo``)."""

    def parse(text: str) -> float:
        try:
            value = float(text)
        except (ValueError, TypeError):
            raise argparse.ArgumentTypeError(f"expected a number, got {text[:40]!r}") from None
        if not math.isfinite(value):
            raise argparse.ArgumentTypeError(f"must be a finite number, got {text[:40]}")
        if value < lo or value > hi or (open_lo and value == lo):
            low = f"above {lo:g}" if open_lo else f"at least {lo:g}"
            span = low if hi == math.inf else f"{low} and at most {hi:g}"
            raise argparse.ArgumentTypeError(f"must be {span}, got {text[:40]}")
        return value

    parse.__name__ = "number"
    return parse


#: An argparse type: a finite number above 0 (learning rates, seconds, frames per second).
positive_float = finite_float(0.0, open_lo=True)


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
    p.add_argument(
        "--threads", type=count(1, 4096), default=default, metavar="N", help=f"{what} (default: {default_says})"
    )


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
    p.add_argument("--batch-size", dest="batch_size", type=positive_int, default=default, metavar=metavar, help=help)


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
