"""scripts/compute_matched.py: runs → records → page, end to end on a tiny budget, and the committed page
is exactly what its committed records generate (the numbers are not typed by hand)."""

from __future__ import annotations

import json

import pytest


def test_run_collect_page(tmp_path, fake_mnist, load_script):
    cm = load_script("compute_matched")
    runs, results, page = tmp_path / "runs", tmp_path / "cm.json", tmp_path / "docs" / "compute-matched.md"
    cm.main(
        [
            "run",
            "--names",
            "convlstm-mmnist-s",
            "--runs",
            str(runs),
            "--budget",
            "0.05",
            "--workers",
            "1",
            "--eval-sequences",
            "4",
            "--curve-every",
            "0.02",
            "--dtype",
            "float32",
            "--mnist-dir",
            str(fake_mnist),
        ]
    )
    run = runs / "convlstm-mmnist-s"
    summary = json.loads((run / "summary.json").read_text())
    assert summary["budget_clock"] == "cpu" and summary["time_budget_s"] == pytest.approx(3.0)
    assert summary["cpu_s"] >= 3.0 and summary["torch_threads"] == 1
    assert json.loads((run / "inference.json").read_text())["seq_per_s"] > 0
    cm.main(["collect", "--runs", str(runs), "--results", str(results), "--mnist-dir", str(fake_mnist)])
    data = json.loads(results.read_text())
    (rec,) = data["runs"]
    assert rec["metrics"]["mse"] == summary["metrics"]["mse"] and rec["steps"] == summary["step"]
    assert len(rec["curve"]) >= 2 and rec["curve"][0]["step"] == 0 and rec["curve"][-1]["step"] == rec["steps"]
    assert data["copy_last"]["sequences"] == 4
    cm.main(["page", "--results", str(results), "--page", str(page)])
    text = page.read_text()
    assert "**0.05 CPU-minutes**" in text and "first 4 sequences" in text
    row = next(ln for ln in text.splitlines() if ln.startswith("| 1 | `convlstm-mmnist-s`"))
    assert f"{summary['metrics']['mse']:.1f}" in row
    assert f"{data['copy_last']['mse']:.1f}" in next(ln for ln in text.splitlines() if "copy last frame" in ln)
    svg = (page.parent / "assets" / "compute-matched.svg").read_text()
    assert svg.startswith("<svg") and svg.count("<polyline") == 1 and "copy last frame" in svg
    # a finished run is not trained again
    before = (run / "checkpoint.pt").stat().st_mtime_ns
    cm.main(
        [
            "run",
            "--names",
            "convlstm-mmnist-s",
            "--runs",
            str(runs),
            "--budget",
            "0.05",
            "--workers",
            "1",
            "--eval-sequences",
            "4",
            "--mnist-dir",
            str(fake_mnist),
        ]
    )
    assert (run / "checkpoint.pt").stat().st_mtime_ns == before


def test_committed_page_is_generated_from_committed_records(load_script):
    cm = load_script("compute_matched")
    if not cm.RESULTS.exists():
        pytest.skip("no compute-matched records committed yet")
    data = json.loads(cm.RESULTS.read_text())
    assert cm.PAGE.read_text() == cm.page_text(data), "run: python scripts/compute_matched.py page"
    assert cm.PLOT.read_text() == cm.plot_svg(data)
    names = {r["name"] for r in data["runs"]}
    budgets = {r["time_budget_s"] for r in data["runs"]}
    assert len(budgets) == 1 and {r["budget_clock"] for r in data["runs"]} == {"cpu"}
    assert {r["threads"] for r in data["runs"]} == {1}
    assert len(names) == len(data["runs"])
