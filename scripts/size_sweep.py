"""The size sweep: which size of each zoo architecture learns fastest per CPU-hour?

Every size is trained by the same pipeline as the compute-matched comparison
(``scripts/compute_matched.py``): ``stzoo train NAME --config KEY=VALUE ... --time-budget B
--budget-clock cpu --threads 1`` from random initialisation, a learning curve every few CPU-minutes
on the first 64 test sequences and a final measurement on the first N test sequences. The sizes are
the zoo entry itself (``s``) and the overrides in :data:`SWEEP`.

    python scripts/size_sweep.py run --budget 12 --mnist-dir PATH/TO/MNIST    # train (resumable)
    python scripts/size_sweep.py collect                                       # → benchmarks/results/size_sweep.json
    python scripts/size_sweep.py page                                          # → docs/size-sweep.md + plots

A run folder is ``runs/size-sweep/NAME@SIZE``; ``run`` skips finished ones and resumes interrupted
ones from their checkpoints. ``collect`` keeps small records only (no weights), so the page can be
regenerated from the repository alone.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import compute_matched as cm  # noqa: E402  (the sibling script: the same runner, records and plot)

ROOT = cm.ROOT
RESULTS = ROOT / "benchmarks" / "results" / "size_sweep.json"
PAGE = ROOT / "docs" / "size-sweep.md"

# zoo entry -> size label -> overrides of the entry's config ({} is the entry itself)
SWEEP: dict[str, dict[str, dict[str, Any]]] = {
    "tau-mmnist-s": {"xs": {"hid_T": 64, "N_T": 2}, "s": {}, "m": {"hid_S": 32, "hid_T": 256, "N_T": 8}},
    "convlstm-mmnist-s": {"xs": {"num_hidden": 16}, "s": {}, "m": {"num_hidden": 64}},
    "sa-convlstm-mmnist-s": {"s": {}, "m": {"num_hidden": 64, "attn_dim": 16}},
}


def plan(names: list[str] | None = None, sizes: list[str] | None = None) -> list[tuple[str, str, dict[str, Any]]]:
    """The (zoo name, size, overrides) runs of :data:`SWEEP`, interleaved across architectures so
    that a cut-short sweep has some sizes of every architecture; ``names`` / ``sizes`` filter it."""
    unknown = sorted(set(names or []) - set(SWEEP))
    if unknown:
        raise SystemExit(f"not in the sweep: {', '.join(unknown)} (have: {', '.join(SWEEP)})")
    rows = [
        [(n, size, over) for size, over in SWEEP[n].items() if not sizes or size in sizes]
        for n in SWEEP
        if not names or n in names
    ]
    out = []
    for i in range(max((len(r) for r in rows), default=0)):
        out += [r[i] for r in rows if i < len(r)]
    return out


def cmd_run(args: argparse.Namespace) -> None:
    for name, size, overrides in plan(args.names, args.sizes):
        print(cm.run_one(name, args, label=size, config=overrides), flush=True)


def cmd_collect(args: argparse.Namespace) -> None:
    data = cm.collect(Path(args.runs), None, args.mnist_dir)
    data["runs"] = [r for r in data["runs"] if r["size"]]  # NAME@SIZE folders only
    results = Path(args.results)
    results.parent.mkdir(parents=True, exist_ok=True)
    results.write_text(json.dumps(data, indent=1) + "\n")
    print(f"wrote {results} ({len(data['runs'])} runs)")


def _size_key(label: str) -> int:
    order = ["xxs", "xs", "s", "m", "l", "xl"]
    return order.index(label) if label in order else len(order)


def _overrides_text(r: dict[str, Any]) -> str:
    return ", ".join(f"`{k}={json.dumps(v)}`" for k, v in r["overrides"].items()) or "the zoo entry"


def final_slope(r: dict[str, Any]) -> float | None:
    """How fast the run's curve was still falling at the end: test MSE drop per CPU-minute between its
    last two curve points at least 30 CPU-seconds apart (None without such a pair)."""
    pts = sorted(r.get("curve") or [], key=lambda c: c["cpu_s"])
    if not pts:
        return None
    last = pts[-1]
    earlier = [c for c in pts if c["cpu_s"] <= last["cpu_s"] - 30]
    if not earlier:
        return None
    prev = earlier[-1]
    return (prev["mse"] - last["mse"]) / ((last["cpu_s"] - prev["cpu_s"]) / 60)


def plot_path(page: Path, zoo_name: str) -> Path:
    return page.parent / "assets" / f"size-sweep-{zoo_name.removesuffix('-mmnist-s')}.svg"


def best_runs(data: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """For each zoo entry, the run with the lowest final test MSE (the size that learnt most in the budget)."""
    best: dict[str, dict[str, Any]] = {}
    for r in data["runs"]:
        if r["metrics"] and (r["zoo_name"] not in best or r["metrics"]["mse"] < best[r["zoo_name"]]["metrics"]["mse"]):
            best[r["zoo_name"]] = r
    return best


def page_text(data: dict[str, Any], page: Path = PAGE) -> str:
    """docs/size-sweep.md from the collected records: one table and one plot per architecture."""
    budgets = ", ".join(f"{b / 60:g}" for b in data["budget_s"])
    runs = data["runs"]
    cpus = "; ".join(sorted({r["cpu"] for r in runs}))
    dtypes = ", ".join(sorted({r["dtype"] for r in runs}))
    n = ", ".join(str(x) for x in data["eval_sequences"])
    base, best = data["copy_last"], best_runs(data)
    lines = [
        "<!-- generated by scripts/size_sweep.py page from benchmarks/results/size_sweep.json; do not edit -->",
        "# Size sweep: which size learns fastest per CPU-hour?",
        "",
        "Before spending CPU-hours on one configuration, every architecture of the first three zoo entries was "
        f"trained at two or three sizes for the same **{budgets} CPU-minutes** on **one thread** "
        "(`--budget-clock cpu`), from random initialisation, by the zoo pipeline (`stzoo train NAME --config "
        f"KEY=VALUE`, the entry's recipe, OneCycle over the budget), on {cpus} (torch {runs[0]['torch']}, "
        f"{dtypes}). Size `s` is the zoo entry itself. Final test metrics are on the first {n} sequences of the "
        "stzoo Moving MNIST test set; the curves are test MSE on its first 64 sequences during training "
        "(recorded, never used to select anything).",
        "",
    ]
    for zoo_name in sorted({r["zoo_name"] for r in runs}):
        group = sorted((r for r in runs if r["zoo_name"] == zoo_name), key=lambda r: _size_key(r["size"]))
        arch = group[0]["architecture"]
        lines += [
            f"## {arch} (`{zoo_name}`)",
            "",
            "| size | config change | params | GFLOPs / seq | steps | train seq/s | MSE ↓ | MAE ↓ | SSIM ↑ | "
            "still falling (MSE / CPU-min) |",
            "|---|---|---|---|---|---|---|---|---|---|",
        ]
        for r in group:
            m = r["metrics"] or {}
            sps = r["sequences"] / r["cpu_s"] if r["cpu_s"] else float("nan")
            gflops = f"{r['flops'] / 1e9:.2f}" if r.get("flops") else "–"
            mark = " **(best)**" if best.get(zoo_name) is r else ""
            slope = final_slope(r)
            lines.append(
                f"| {r['size']}{mark} | {_overrides_text(r)} | {r['parameters'] / 1e6:.2f} M | {gflops} | "
                f"{r['steps']} | {sps:.2f} | {m.get('mse', float('nan')):.1f} | "
                f"{m.get('mae', float('nan')):.1f} | {m.get('ssim', float('nan')):.3f} | "
                f"{'–' if slope is None else f'{slope:.1f}'} |"
            )
        lines += ["", f"![{arch}: test MSE against CPU minutes per size](assets/{plot_path(page, zoo_name).name})", ""]
    if base:
        lines += [
            f"Copying the last input frame scores MSE {base['mse']:.1f} / SSIM {base['ssim']:.3f} on the same "
            "test sequences (the dashed line in the plots).",
            "",
        ]
    lines += ["## Reading it", ""]
    for zoo_name, r in sorted(best.items()):
        rest = [x for x in runs if x["zoo_name"] == zoo_name and x is not r and x["metrics"]]
        gap = ", ".join(
            f"{x['size']} {x['metrics']['mse']:.1f}" for x in sorted(rest, key=lambda x: _size_key(x["size"]))
        )
        lines.append(
            f"- `{zoo_name}`: size **{r['size']}** ({_overrides_text(r)}) reached the lowest test MSE in "
            f"the budget, {r['metrics']['mse']:.1f}" + (f" (against {gap})" if gap else "") + "."
        )
    lines += [
        "",
        "*Still falling* is the drop of the curve's test MSE per CPU-minute over its last segment: how much the "
        "size was still gaining when the budget ran out. "
        "This ranks how fast each size *starts* to learn. A bigger size that is still falling steeply at the end "
        "of its curve may overtake over many hours; the released `-s` weights keep their size because they carry "
        "hours of warm-started training (see each model card's ledger), which a new size would have to earn again.",
        "",
        "Reproduce (about budget + evaluation per run):",
        "",
        "```bash",
        f"python scripts/size_sweep.py run --budget {budgets} --eval-sequences {n} --mnist-dir PATH/TO/MNIST",
        "python scripts/size_sweep.py collect && python scripts/size_sweep.py page",
        "```",
        "",
    ]
    return "\n".join(lines)


def plots(data: dict[str, Any], page: Path = PAGE) -> dict[Path, str]:
    """One SVG per architecture: its sizes' curves against CPU minutes (see :func:`compute_matched.plot_svg`)."""
    out = {}
    for zoo_name in sorted({r["zoo_name"] for r in data["runs"]}):
        group = {**data, "runs": [r for r in data["runs"] if r["zoo_name"] == zoo_name]}
        arch = group["runs"][0]["architecture"]
        # zoomed on where the sizes differ: from below the lowest point to above copy-last (the random
        # start, far above, is drawn at the top edge)
        ys = [c["mse"] for r in group["runs"] for c in r["curve"]]
        top = max(ys + [data["copy_last"]["mse"] if data["copy_last"] else 0.0])
        if data["copy_last"]:
            top = min(top, data["copy_last"]["mse"] * 1.1)
        y_range = (10 * math.floor(min(ys) * 0.8 / 10), 10 * math.ceil(top / 10)) if ys else None
        out[plot_path(page, zoo_name)] = cm.plot_svg(
            group,
            title=f"{arch} on Moving MNIST: test MSE (first 64 test sequences) against CPU minutes, per size",
            label=lambda r: f"{r['size']} ({r['parameters'] / 1e6:.2f} M)",
            y_range=y_range,
        )
    return out


def cmd_page(args: argparse.Namespace) -> None:
    data = json.loads(Path(args.results).read_text())
    page = Path(args.page)
    page.parent.mkdir(parents=True, exist_ok=True)
    page.write_text(page_text(data, page))
    for path, svg in plots(data, page).items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(svg)
        print(f"wrote {path}")
    print(f"wrote {page}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("run", help="train (or resume) every size, one at a time")
    p.add_argument("--names", nargs="+", default=None, help="zoo entries of SWEEP (default: all)")
    p.add_argument("--sizes", nargs="+", default=None, help="size labels to run (default: all)")
    p.add_argument("--runs", default=str(ROOT / "runs" / "size-sweep"), help="folder of the run folders")
    cm.add_training_args(p, budget=12.0, curve_every=2.0)
    p.set_defaults(func=cmd_run)
    cm.add_report_commands(
        sub, runs=ROOT / "runs" / "size-sweep", results=RESULTS, page=PAGE, collect=cmd_collect, make_page=cmd_page
    )
    args = parser.parse_args(argv)
    args.func(args)


if __name__ == "__main__":
    main()
