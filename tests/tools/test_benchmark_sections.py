"""benchmarks/_sections.py: the marked sections of docs/benchmarks.md that the small benchmark scripts keep
(rows of other CPUs survive a rerun; run_benchmarks.py carries every section over). No timing here."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def sections():
    """``benchmarks/_sections.py``, imported from its file (the benchmarks folder is no package)."""
    spec = importlib.util.spec_from_file_location("_sections", ROOT / "benchmarks" / "_sections.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


HEAD = ["case", "speed", "CPU"]


def test_write_section_replaces_own_rows_and_keeps_others(tmp_path, sections):
    doc = tmp_path / "b.md"
    doc.write_text("# Benchmarks\n\nintro\n\n<!-- other:start -->\nkeep me\n<!-- other:end -->\n")
    sections.write_section(
        doc, "bf16", ["## bf16"], HEAD, [["infer", "0.1×", "AMD EPYC"]], key_cols=(0, 2), notes=["measured under load"]
    )
    sections.write_section(doc, "bf16", ["## bf16"], HEAD, [["infer", "3.9×", "Intel Xeon"]], key_cols=(0, 2))
    sections.write_section(doc, "bf16", ["## bf16"], HEAD, [["infer", "0.2×", "AMD EPYC"]], key_cols=(0, 2))
    text = doc.read_text()
    assert text.startswith("# Benchmarks\n\nintro\n") and "keep me" in text
    assert text.count("<!-- bf16:start -->") == 1 and text.count("<!-- bf16:end -->") == 1
    assert "| infer | 3.9× | Intel Xeon |" in text and "| infer | 0.2× | AMD EPYC |" in text
    assert "0.1×" not in text  # replaced: same case, same CPU
    assert text.count("Note: measured under load") == 1  # kept when a rerun gives no note


def test_keep_sections_in_page_order(sections):
    old = (
        "x\n<!-- compile:start -->\nC\n<!-- compile:end -->\n<!-- eval-cost:start -->\nE\n<!-- eval-cost:end -->\n"
        "<!-- bf16:start -->\nB\n<!-- bf16:end -->\n<!-- allocator:start -->\nA"
    )  # allocator: no end marker
    kept = sections.keep_sections(old)
    assert [k.split("\n")[1] for k in kept] == ["E", "B", "C"]


def test_interleave_alternates_and_brackets(sections):
    order = []
    ta, tb = sections.interleave(lambda: order.append("A"), lambda: order.append("B"), 3)
    assert "".join(order) == "ABBAABA" and len(ta) == 4 and len(tb) == 3


def test_the_page_has_the_sections_the_scripts_write():
    text = (ROOT / "docs" / "benchmarks.md").read_text(encoding="utf-8")
    for name in ("bf16", "allocator"):
        assert f"<!-- {name}:start -->" in text and f"<!-- {name}:end -->" in text
