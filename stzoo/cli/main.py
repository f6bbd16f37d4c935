"""The ``stzoo`` command line: the parser built from the command groups, and the error / warning handling.

One module per command group, each with ``register(subparsers)`` and its handlers: :mod:`~stzoo.cli.zoo`
(list, info, download, cache), :mod:`~stzoo.cli.predict` (predict, stream, export), :mod:`~stzoo.cli.train`
(train, finetune, evaluate), :mod:`~stzoo.cli.data`, :mod:`~stzoo.cli.bench`, :mod:`~stzoo.cli.convert`; the
options several commands share are in :mod:`~stzoo.cli.common`. The maintainers' commands (release, zoo-table,
zoo-stats, hub push) are in ``stzoo-maint`` (:mod:`stzoo.tools.cli`).
"""

from __future__ import annotations

import argparse
import shlex
import sys
from collections.abc import Sequence

from stzoo.cli import bench, convert, data, predict, train, zoo
from stzoo.errors import StzooError

__all__ = ["build_parser", "main", "run", "show_warning"]


def build_parser() -> argparse.ArgumentParser:
    """The parser of ``stzoo``: every user command, group by group."""
    parser = argparse.ArgumentParser(prog="stzoo", description="Spatiotemporal forecasting model zoo.")
    sub = parser.add_subparsers(dest="command", required=True)
    for group in (zoo, predict, train, data, bench, convert):
        group.register(sub)
    return parser


def show_warning(message: Warning | str, category: type[Warning], *_: object, **__: object) -> None:
    """A warning as one command-line line, not a source location: ``stzoo: warning: ...``; warnings of
    other packages (torch, ...) keep their category name so that they can be told apart."""
    package = getattr(category, "__module__", "").split(".")[0]
    origin = f" (from {package})" if package != "builtins" else ""
    kind = "" if package == "stzoo" else f"{category.__name__}{origin}: "
    print(f"stzoo: warning: {kind}{message}", file=sys.stderr)


def run(parser: argparse.ArgumentParser, argv: Sequence[str]) -> int:
    """Parse ``argv`` and run its command: warnings print as command-line lines, a :class:`StzooError` as one
    ``PROG: error: ...`` line and exit status 2. The command line is recorded as ``args.command_line``."""
    import warnings

    argv = list(argv)
    args = parser.parse_args(argv)
    args.command_line = f"{parser.prog} " + shlex.join(argv)  # recorded as provenance by train / release
    try:
        with warnings.catch_warnings():  # every command: warnings as CLI lines, restored afterwards
            warnings.showwarning = show_warning
            return args.func(args)
    except StzooError as exc:
        print(f"{parser.prog}: error: {exc}", file=sys.stderr)
        return 2


def main(argv: Sequence[str] | None = None) -> int:
    """Run one ``stzoo`` command; returns the exit status."""
    return run(build_parser(), sys.argv[1:] if argv is None else argv)


if __name__ == "__main__":
    raise SystemExit(main())
