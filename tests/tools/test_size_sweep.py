"""scripts/size_sweep.py: two sizes of one architecture trained, collected and paged end to end on a tiny
budget; the committed page is what its committed records generate; measure_speed of another size."""

from __future__ import annotations

import json

import pytest


def test_plan_interleaves_architectures_and_filters(load_script):
    ss = load_script("size_sweep")
    order = ss.plan()
    assert len(order) == sum(len(v) for v in ss.SWEEP.values())
    first = [name for name, _, _ in order[: len(ss.SWEEP)]]
    assert sorted(first) == sorted(ss.SWEEP)  # one size of every architecture before the second of any
    assert [(n, s) for n, s, _ in ss.plan(["convlstm-mmnist-s"], ["xs", "m"])] == [
        ("convlstm-mmnist-s", "xs"),
        ("convlstm-mmnist-s", "m"),
    ]
    with pytest.raises(SystemExit, match="not in the sweep"):
        ss.plan(["no-such-entry"])


def test_every_sweep_size_is_a_valid_config(load_script):
    from stzoo.models import get_architecture, make_config, parameters_of
    from stzoo.zoo.manifest import get_entry

    ss = load_script("size_sweep")
    for name, sizes in ss.SWEEP.items():
        entry = get_entry(name)
        counts = {}
        for size, overrides in sizes.items():
            cfg = make_config(entry.architecture, {**entry.config, **overrides})
            counts[size] = parameters_of(get_architecture(entry.architecture), cfg)
        assert "s" in sizes and sizes["s"] == {}, f"{name}: size s is the zoo entry itself"
        by_size = [counts[s] for s in sorted(counts, key=ss._size_key)]
        assert by_size == sorted(by_size) and len(set(by_size)) == len(by_size), f"{name}: sizes not increasing"


def test_run_collect_page_two_sizes(tmp_path, fake_mnist, load_script):
    ss = load_script("size_sweep")
    runs, results, page = tmp_path / "runs", tmp_path / "sweep.json", tmp_path / "docs" / "size-sweep.md"
    ss.main(
        [
            "run",
            "--names",
            "convlstm-mmnist-s",
            "--sizes",
            "xs",
            "s",
            "--runs",
            str(runs),
            "--budget",
            "0.04",
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
    xs, s = runs / "convlstm-mmnist-s@xs", runs / "convlstm-mmnist-s@s"
    sum_xs = json.loads((xs / "summary.json").read_text())
    sum_s = json.loads((s / "summary.json").read_text())
    assert sum_xs["config"]["num_hidden"] == ss.SWEEP["convlstm-mmnist-s"]["xs"]["num_hidden"]
    assert sum_s["config"]["num_hidden"] == 32 and sum_xs["parameters"] < sum_s["parameters"]
    speed = json.loads((xs / "inference.json").read_text())
    assert speed["seq_per_s"] > 0 and speed["config"] == ss.SWEEP["convlstm-mmnist-s"]["xs"]
    ss.main(["collect", "--runs", str(runs), "--results", str(results), "--mnist-dir", str(fake_mnist)])
    data = json.loads(results.read_text())
    recs = {r["size"]: r for r in data["runs"]}
    assert set(recs) == {"xs", "s"} and recs["s"]["overrides"] == {}
    assert recs["xs"]["overrides"] == {"num_hidden": ss.SWEEP["convlstm-mmnist-s"]["xs"]["num_hidden"]}
    assert recs["xs"]["flops"] < recs["s"]["flops"]  # counted for the size trained, not the entry's
    assert recs["xs"]["metrics"]["mse"] == sum_xs["metrics"]["mse"]
    ss.main(["page", "--results", str(results), "--page", str(page)])
    text = page.read_text()
    assert "**0.04 CPU-minutes**" in text and "first 4 sequences" in text
    row = next(ln for ln in text.splitlines() if ln.startswith("| xs"))
    assert "`num_hidden=16`" in row and f"{sum_xs['metrics']['mse']:.1f}" in row
    best = min(recs.values(), key=lambda r: r["metrics"]["mse"])
    assert f"size **{best['size']}**" in text
    assert next(ln for ln in text.splitlines() if ln.startswith(f"| {best['size']} ")).count("(best)") == 1
    svg = (page.parent / "assets" / "size-sweep-convlstm.svg").read_text()
    assert svg.startswith("<svg") and svg.count("<polyline") == 2 and "per size" in svg


def test_committed_page_is_generated_from_committed_records(load_script):
    ss = load_script("size_sweep")
    if not ss.RESULTS.exists():
        pytest.skip("no size-sweep records committed yet")
    data = json.loads(ss.RESULTS.read_text())
    assert ss.PAGE.read_text() == ss.page_text(data), "run: python scripts/size_sweep.py page"
    for path, svg in ss.plots(data).items():
        assert path.read_text() == svg, f"{path} is stale: run python scripts/size_sweep.py page"
    assert len({r["time_budget_s"] for r in data["runs"]}) == 1
    assert {r["budget_clock"] for r in data["runs"]} == {"cpu"} and {r["threads"] for r in data["runs"]} == {1}
    for name in {r["zoo_name"] for r in data["runs"]}:
        assert len([r for r in data["runs"] if r["zoo_name"] == name]) >= 2, f"{name}: one size is not a sweep"
