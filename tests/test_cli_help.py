"""Every option of every `stzoo` subcommand says what it does, and what it defaults to.

The test walks ``stzoo.cli.main.build_parser()`` (nested subcommands included: ``data preview``, ``hub push``,
``convert openstl``) and names every option that breaks the rule, so one run lists all of them.
"""

from __future__ import annotations

import argparse

from stzoo.cli.main import build_parser


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


def _problems() -> tuple[list[str], list[str], int]:
    no_help, no_default, checked = [], [], 0
    for cmd, parser in _subparsers(build_parser()):
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
                no_default.append(f"{_label(cmd, action)} (help says {text[text.index('default: '):][:20]!r})")
    return no_help, no_default, checked


def test_every_option_of_every_subcommand_has_help():
    no_help, _, checked = _problems()
    assert checked > 100, f"only {checked} arguments found: did build_parser() change shape?"
    assert not no_help, f"{len(no_help)} argument(s) without help text:\n  " + "\n  ".join(no_help)


def test_every_option_that_takes_a_value_shows_its_default():
    """Options with a value state their default in their help ("default: ..."), flags need only help."""
    _, no_default, _ = _problems()
    assert not no_default, (f"{len(no_default)} option(s) whose help does not say their default:\n  "
                            + "\n  ".join(no_default))


def test_help_of_every_subcommand_renders():
    for cmd, parser in _subparsers(build_parser()):
        text = parser.format_help()
        assert text.startswith("usage: " + cmd), (cmd, text[:200])
