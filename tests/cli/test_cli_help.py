"""Every option of every `stzoo` and `stzoo-maint` subcommand says what it does, and what it defaults to; the
maintainers' commands are in `stzoo-maint` (``python -m stzoo.tools``), not in the users' `stzoo --help`.

The test walks ``stzoo.cli.main.build_parser()`` and ``stzoo.tools.cli.build_parser()`` (nested subcommands
included: ``data preview``, ``hub push``, ``convert openstl``) and names every option that breaks the rule, so one
run lists all of them.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import subprocess_env

from stzoo.cli.main import build_parser
from stzoo.tools.cli import build_parser as build_maint_parser

ROOT = Path(__file__).resolve().parents[2]
#: the commands only maintainers run: they write the package's manifest, weights, README and docs, or a Hub repo
MAINTAINER_COMMANDS = ("release", "gate", "zoo-table", "zoo-stats", "hub")


def _subparsers(parser: argparse.ArgumentParser, prefix: str = "stzoo"):
    """(command line prefix, parser) for ``parser`` and every subcommand under it."""
    yield prefix, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _subparsers(sub, f"{prefix} {name}")


def _rendered_help(parser: argparse.ArgumentParser, action: argparse.Action) -> str:
    """The help text as ``stzoo CMD --help`` prints it (``%(default)s`` expanded, and the formatter's
    own "(default: ...)" where the subcommand uses ArgumentDefaultsHelpFormatter)."""
    formatter = parser._get_formatter()
    return formatter._expand_help(action) if action.help else ""


def _label(cmd: str, action: argparse.Action) -> str:
    return f"{cmd} {'/'.join(action.option_strings) or action.dest}"


def _all_subparsers():
    """Every (sub)command of both command lines."""
    yield from _subparsers(build_parser())
    yield from _subparsers(build_maint_parser(), "stzoo-maint")


def _problems() -> tuple[list[str], list[str], int]:
    no_help, no_default, checked = [], [], 0
    for cmd, parser in _all_subparsers():
        for action in parser._actions:
            if isinstance(action, (argparse._HelpAction, argparse._VersionAction, argparse._SubParsersAction)):
                continue
            checked += 1
            text = _rendered_help(parser, action).strip()
            if not text or action.help == argparse.SUPPRESS:
                no_help.append(_label(cmd, action))
                continue
            takes_value = action.option_strings and action.nargs != 0 and not action.required
            if takes_value and "default" not in text.lower():
                no_default.append(f"{_label(cmd, action)} (default {action.default!r})")
            elif any(f"default: {bad}" in text for bad in ("None", "[]", "''")):
                # ArgumentDefaultsHelpFormatter's "(default: None)" says nothing: say what None means
                no_default.append(f"{_label(cmd, action)} (help says {text[text.index('default: ') :][:20]!r})")
    return no_help, no_default, checked


def test_every_option_of_every_subcommand_has_help():
    no_help, _, checked = _problems()
    assert checked > 100, f"only {checked} arguments found: did build_parser() change shape?"
    assert not no_help, f"{len(no_help)} argument(s) without help text:\n  " + "\n  ".join(no_help)


def test_every_option_that_takes_a_value_shows_its_default():
    """Options with a value state their default in their help ("default: ..."), flags need only help."""
    _, no_default, _ = _problems()
    assert not no_default, f"{len(no_default)} option(s) whose help does not say their default:\n  " + "\n  ".join(
        no_default
    )


def test_help_of_every_subcommand_renders():
    for cmd, parser in _all_subparsers():
        text = parser.format_help()
        assert text.startswith("usage: " + cmd), (cmd, text[:200])


def _commands(parser: argparse.ArgumentParser) -> set[str]:
    (sub,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return set(sub.choices)


def test_user_help_does_not_list_maintainer_commands():
    assert not _commands(build_parser()) & set(MAINTAINER_COMMANDS)
    text = build_parser().format_help()
    for name in MAINTAINER_COMMANDS:
        assert f" {name} " not in text and f",{name}," not in text and f"{{{name}," not in text, name
    assert {"list", "predict", "train", "finetune", "evaluate", "bench", "convert"} <= _commands(build_parser())


def _run_help(*module: str) -> str:
    proc = subprocess.run(
        [sys.executable, "-m", *module, "--help"],
        capture_output=True,
        text=True,
        env=subprocess_env(),
        cwd=ROOT,
        check=False,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def test_python_m_stzoo_tools_help_lists_the_maintainer_commands():
    assert _commands(build_maint_parser()) == set(MAINTAINER_COMMANDS)
    text = _run_help("stzoo.tools")
    assert text.startswith("usage: stzoo-maint"), text[:200]
    for name in MAINTAINER_COMMANDS:
        assert name in text.split("positional arguments:")[1], name
    user = _run_help("stzoo")
    assert not any(name in user.split("positional arguments:")[1].split() for name in MAINTAINER_COMMANDS), user


def test_both_console_scripts_are_declared():
    tomllib = pytest.importorskip("tomllib", reason="tomllib is Python 3.11+")
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]["scripts"]
    assert scripts == {"stzoo": "stzoo.cli.main:main", "stzoo-maint": "stzoo.tools.cli:main"}


def _documented_command_lines() -> list[tuple[str, str, str]]:
    """(file, program, arguments) of every `stzoo ...` / `stzoo-maint ...` line in a bash block of the docs."""
    found = []
    for path in [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]:
        text = path.read_text(encoding="utf-8")
        for block in re.findall(r"```(?:bash|sh|console)\n(.*?)```", text, re.S):
            for line in block.replace("\\\n", " ").splitlines():
                m = re.match(r"\s*(stzoo|stzoo-maint) (.*)$", line)
                if m:
                    found.append((str(path.relative_to(ROOT)), m.group(1), m.group(2)))
    return found


def test_the_docs_command_lines_parse():
    """Every command line the README and docs show parses with the program it names (a maintainer command
    shown as `stzoo release` would fail here)."""
    lines = _documented_command_lines()
    assert len(lines) > 10, lines
    bad = []
    for path, prog, args in lines:
        parser = build_parser() if prog == "stzoo" else build_maint_parser()
        err = io.StringIO()
        try:
            with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
                parser.parse_args(shlex.split(args, comments=True))
        except SystemExit as exc:  # `--help` exits 0; a usage error exits 2 and says why
            if exc.code not in (0, None):
                bad.append(f"{path}: {prog} {args}: {err.getvalue().strip()}")
    assert not bad, "\n".join(bad)
