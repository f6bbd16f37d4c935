"""Shared by the small benchmark scripts: the machine a row ran on, interleaved timing, and the
marked sections of docs/benchmarks.md they maintain.

Each script owns one section between ``<!-- NAME:start -->`` and ``<!-- NAME:end -->``. ``--write``
replaces the rows it measured (same key: case and CPU) and keeps every other row, so results from
different machines (the project's machines change CPU model) accumulate side by side.
``benchmarks/run_benchmarks.py`` keeps these sections when it regenerates the page.
"""

from __future__ import annotations

import datetime as dt
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

#: the sections of docs/benchmarks.md written by scripts other than run_benchmarks.py, in page order
SECTIONS = ("eval-cost", "bf16", "allocator", "compile")


def machine() -> dict[str, Any]:
    """stzoo.runtime.machine_description() plus the date: what each row records."""
    from stzoo.runtime import machine_description

    m = machine_description()
    m["date"] = dt.date.today().isoformat()
    return m


def machine_cells(m: dict[str, Any]) -> list[str]:
    """The CPU / flags / bf16 units / threads / date cells of a row."""
    return [
        m["cpu"],
        " ".join(m["cpu_flags"]) or "–",
        ", ".join(m["bf16_units"]) or "none",
        str(m["threads"]),
        m["date"],
    ]


MACHINE_HEAD = ["CPU", "flags", "bf16 units", "threads", "date"]


def interleave(
    a: Callable[[], Any], b: Callable[[], Any], repeats: int, *, label: str = ""
) -> tuple[list[float], list[float]]:
    """Time ``a`` and ``b`` alternately, ``repeats`` times each (A B, B A, A B, ...); with an odd
    number of repeats one more ``a`` closes the run so that ``a`` brackets ``b`` (A B A for 1).
    Returns the seconds of every call of each."""
    ta: list[float] = []
    tb: list[float] = []

    def run(f: Callable[[], Any], out: list[float], tag: str) -> None:
        t0 = time.perf_counter()
        f()
        out.append(time.perf_counter() - t0)
        print(f"  {label} {tag}: {out[-1]:.3f} s", file=sys.stderr, flush=True)

    for r in range(repeats):
        first, second = ((a, ta, "A"), (b, tb, "B")) if r % 2 == 0 else ((b, tb, "B"), (a, ta, "A"))
        run(*first)
        run(*second)
    if repeats % 2 == 1:
        run(a, ta, "A")
    return ta, tb


def med(xs: list[float]) -> float:
    return statistics.median(xs)


def write_section(
    path: Path,
    name: str,
    intro: list[str],
    head: list[str],
    new_rows: list[list[str]],
    key_cols: tuple[int, ...],
    notes: list[str] = (),
) -> None:
    """Replace section ``name`` of ``path``: ``intro`` paragraphs, then a table of the old rows whose
    key (the cells at ``key_cols``) no new row has, plus ``new_rows``; then ``notes`` (each a
    paragraph; kept from the old section where none are given)."""
    start, end = f"<!-- {name}:start -->", f"<!-- {name}:end -->"
    doc = path.read_text(encoding="utf-8") if path.exists() else ""
    old_rows: list[list[str]] = []
    old_notes: list[str] = []
    if start in doc and end in doc.split(start, 1)[1]:
        before, rest = doc.split(start, 1)
        old, after = rest.split(end, 1)
        lines = old.splitlines()
        table = [ln for ln in lines if ln.startswith("| ") and not ln.startswith("| ---")]
        for ln in table[1:]:  # the first is the header
            old_rows.append([c.strip() for c in ln.strip().strip("|").split(" | ")])
        old_notes = [ln for ln in lines if ln.startswith("Note")]
    else:
        before, after = doc.rstrip("\n") + "\n\n", "\n"
    keys = {tuple(r[i] for i in key_cols) for r in new_rows}
    rows = [r for r in old_rows if len(r) == len(head) and tuple(r[i] for i in key_cols) not in keys] + new_rows
    body = [
        *intro,
        "",
        "| " + " | ".join(head) + " |",
        "|" + "---|" * len(head),
        *("| " + " | ".join(r) + " |" for r in rows),
        "",
    ]
    for n in list(notes) or old_notes:
        body += [n if n.startswith("Note") else f"Note: {n}", ""]
    path.write_text(f"{before}{start}\n" + "\n".join(body) + f"{end}{after}", encoding="utf-8")
    print(f"updated section {name} of {path}", file=sys.stderr)


def keep_sections(old_doc: str) -> list[str]:
    """The marked sections of ``old_doc`` (for run_benchmarks.py to carry over), in :data:`SECTIONS` order."""
    kept = []
    for name in SECTIONS:
        start, end = f"<!-- {name}:start -->", f"<!-- {name}:end -->"
        if start in old_doc and end in old_doc.split(start, 1)[1]:
            kept.append(start + old_doc.split(start, 1)[1].split(end, 1)[0] + end)
    return kept
