"""The compute-matched comparison: every zoo architecture trained by the same pipeline for the same budget.

Each run is ``stzoo train NAME --time-budget B --budget-clock cpu --threads 1``: the same number of CPU
seconds for every architecture, however busy the machine is, with a learning curve (test MSE on the first
64 test sequences every few budget minutes) and a final evaluation on the first N test sequences. Then the
inference speed of the architecture is measured on the same single thread.

    python scripts/compute_matched.py run --budget 8 --workers 2          # train every *-mmnist-s entry
    python scripts/compute_matched.py run --names tau-mmnist-s mau-mmnist-s --budget 1 --eval-sequences 64
    python scripts/compute_matched.py collect      # runs → benchmarks/results/compute_matched.json
    python scripts/compute_matched.py page                                 # JSON → docs/compute-matched.md + plot

``run`` is resumable: a finished run (its ``summary.json`` exists) is skipped, an interrupted one resumes
from its checkpoint. ``collect`` keeps only small records (no weights), which the repository holds, so
the page can be regenerated without the runs. Release a run's weights with
``stzoo-maint release NAME --run RUNS/NAME --sequences N`` (it reuses the run's final measurement when it is of
exactly those weights on exactly that test set).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "compute_matched.json"
PAGE = ROOT / "docs" / "compute-matched.md"
PLOT = ROOT / "docs" / "assets" / "compute-matched.svg"


def zoo_names() -> list[str]:
    """Every trainable Moving MNIST ``-s`` entry of the manifest (one per architecture / variant)."""
    from stzoo.zoo.manifest import load_manifest

    models = load_manifest()["models"]
    return sorted(n for n, e in models.items() if n.endswith("-mmnist-s") and "alias" not in e)


def run_one(
    name: str, args: argparse.Namespace, *, label: str | None = None, config: dict[str, Any] | None = None
) -> str:
    """Train ``name`` into ``runs/NAME`` (or resume it), then time its inference on one thread.

    With ``config`` (overrides of the entry's config, as ``stzoo train --config``) the run trains
    another size of the architecture into ``runs/NAME@LABEL``; its speed is of that size too."""
    folder = f"{name}@{label}" if label else name
    out = Path(args.runs) / folder
    out.mkdir(parents=True, exist_ok=True)
    log = open(out / "driver.log", "a")
    if not (out / "summary.json").exists():
        cmd = [
            sys.executable,
            "-m",
            "stzoo.cli.main",
            "train",
            name,
            "--out",
            str(out),
            "--threads",
            "1",
            "--time-budget",
            str(args.budget),
            "--budget-clock",
            "cpu",
            "--budget-covers",  # equal training compute for every method; the evaluation comes after
            "training",
            "--dtype",
            args.dtype,
            "--curve-every",
            str(args.curve_every),
            "--curve-sequences",
            str(args.curve_sequences),
            "--eval-sequences",
            str(args.eval_sequences),
            "--checkpoint-every",
            "120",
        ]
        for key, value in (config or {}).items():
            cmd += ["--config", f"{key}={json.dumps(value)}"]
        if args.mnist_dir:
            cmd += ["--mnist-dir", args.mnist_dir]
        log.write(f"{time.ctime()} {' '.join(cmd)}\n")
        log.flush()
        rc = subprocess.call(cmd, stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "OMP_NUM_THREADS": "1"})
        if rc:
            return f"{folder}: train failed (rc {rc}), see {out / 'driver.log'}"
    speed = out / "inference.json"
    if not speed.exists():
        code = (
            "import json,sys,torch; torch.set_num_threads(1); from stzoo.tools.docs_gen import measure_speed; "
            f"print(json.dumps(measure_speed({name!r}, threads=1, batch=16, warmup=1, iters=3, "
            f"config=json.loads({json.dumps(config or {})!r}))))"
        )
        res = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"}
        )
        if res.returncode:
            log.write(res.stderr)
            return f"{folder}: speed measurement failed, see {out / 'driver.log'}"
        speed.write_text(res.stdout.strip().splitlines()[-1] + "\n")
    return f"{folder}: done"


def cmd_run(args: argparse.Namespace) -> None:
    names = args.names or zoo_names()
    with ThreadPoolExecutor(args.workers) as pool:
        for line in pool.map(lambda n: run_one(n, args), names):
            print(line, flush=True)


def collect(runs: Path, names: list[str] | None = None, mnist_dir: str | None = None) -> dict[str, Any]:
    """Small records of finished runs: settings, clocks, final metrics, curve, speed (no weights)."""
    import torch
    from torch import nn

    from stzoo.tools.docs_gen import count_flops
    from stzoo.training.train import evaluate, evaluate_copy_last, test_data
    from stzoo.zoo.entry import ZooEntry
    from stzoo.zoo.manifest import load_manifest

    models = load_manifest()["models"]
    records, budget, eval_n = [], set(), set()
    for folder in sorted(p for p in runs.iterdir() if (p / "summary.json").exists()):
        if names and folder.name not in names:
            continue
        s = json.loads((folder / "summary.json").read_text())
        curve = (
            [json.loads(line) for line in (folder / "curve.jsonl").read_text().splitlines() if line.strip()]
            if (folder / "curve.jsonl").exists()
            else []
        )
        speed = json.loads((folder / "inference.json").read_text()) if (folder / "inference.json").exists() else {}
        zoo_name, _, label = folder.name.partition("@")  # NAME@LABEL: another size (see run_one)
        entry = models.get(zoo_name, {})
        overrides = {k: v for k, v in s["config"].items() if (entry.get("config") or {}).get(k) != v}
        flops = (entry.get("flops") or {}).get("flops")
        if overrides and "architecture" in entry:
            flops = count_flops(ZooEntry.from_dict(zoo_name, {**entry, "config": s["config"]}))["flops"]
        budget.add(s.get("time_budget_s"))
        eval_n.add((s.get("metrics") or {}).get("sequences"))
        records.append(
            {
                "name": folder.name,
                "zoo_name": zoo_name,
                "size": label or None,
                "overrides": overrides,
                "architecture": s["arch"],
                "config": s["config"],
                "parameters": s["parameters"],
                "flops": flops,
                "recipe": s["recipe"],
                "dtype": s["dtype"],
                "cpu": s["cpu"],
                "threads": s.get("torch_threads"),
                "budget_clock": s.get("budget_clock"),
                "time_budget_s": s.get("time_budget_s"),
                "steps": s["step"],
                "sequences": s["step"] * s["recipe"]["batch_size"],
                "cpu_s": round(s.get("cpu_s", 0.0), 1),
                "wall_clock_s": round(s["wall_clock_s"], 1),
                "metrics": s.get("metrics"),
                "weights_sha256": s.get("weights_sha256"),
                "curve": curve,
                "torch": s.get("torch"),
                "inference_seq_per_s": speed.get("seq_per_s") or speed.get("sequences_per_s"),
                "inference": speed,
                "command": s.get("command"),
            }
        )
    if not records:
        raise SystemExit(f"no finished runs under {runs}")
    n = next(iter(eval_n))
    if len(eval_n) > 1:
        raise SystemExit(f"runs under {runs} were measured on different numbers of test sequences: {sorted(eval_n)}")
    test = test_data("moving_mnist", n, {"mnist_dir": mnist_dir}) if n else None
    base = evaluate_copy_last(test, progress=False) if n else None
    black = (
        evaluate(
            nn.Identity(),
            test,
            progress=False,
            predict=lambda x: torch.zeros_like(x[:, -1:]).expand(-1, 10, -1, -1, -1),
        )
        if n
        else None
    )
    return {
        "budget_s": sorted(b for b in budget if b),
        "eval_sequences": sorted(x for x in eval_n if x),
        "copy_last": {k: base[k] for k in ("mse", "mae", "ssim", "psnr", "sequences")} if base else None,
        "black": {k: black[k] for k in ("mse", "mae", "ssim", "psnr", "sequences")} if black else None,
        "date": time.strftime("%Y-%m-%d"),
        "runs": records,
    }


def cmd_collect(args: argparse.Namespace) -> None:
    data = collect(Path(args.runs), args.names, args.mnist_dir)
    results = Path(args.results)
    results.parent.mkdir(parents=True, exist_ok=True)
    results.write_text(json.dumps(data, indent=1) + "\n")
    print(f"wrote {results} ({len(data['runs'])} runs)")


def page_text(data: dict[str, Any]) -> str:
    """docs/compute-matched.md from the collected records (ranked by final test MSE)."""
    runs = sorted(data["runs"], key=lambda r: (r["metrics"] or {}).get("mse", float("inf")))
    budgets = ", ".join(f"{b / 60:g}" for b in data["budget_s"])
    cpus = sorted({r["cpu"] for r in runs})
    n = ", ".join(str(x) for x in data["eval_sequences"])
    base = data["copy_last"]
    lines = [
        "<!-- generated by scripts/compute_matched.py page from benchmarks/results/compute_matched.json; "
        "do not edit -->",
        "# Compute-matched comparison",
        "",
        "Which method should you train on a small budget? Every architecture in the zoo was trained here by the "
        f"same pipeline (`stzoo train`, its zoo recipe, OneCycle over the budget) for **{budgets} CPU-minutes** "
        "on **one thread** (`--budget-clock cpu`: process CPU time, so every run got the same compute however "
        f"busy the machine was), from random initialisation, on {'; '.join(cpus)} (torch "
        f"{runs[0]['torch']}, {runs[0]['dtype']}). Test metrics are on the first {n} sequences of the stzoo "
        "Moving MNIST test set (MNIST test digits, 10→10); MSE and MAE are per frame, as in OpenSTL: the squared "
        "(absolute) error summed over the 64×64 pixels, values in [0, 1], averaged over frames and sequences.",
        "",
        "This is a tiny budget next to the papers' (hundreds of GPU-hours): it ranks how fast each method "
        "*starts* to learn on a CPU, not where it ends. The released `-s` weights of the methods below come from "
        "these runs unless the model card's ledger says otherwise.",
        "",
        "| rank | model | params | GFLOPs / seq | steps | train seq/s | infer seq/s (B16) | MSE ↓ | MAE ↓ | SSIM ↑ | "
        "PSNR ↑ |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for i, r in enumerate(runs, 1):
        m = r["metrics"] or {}
        train_sps = r["sequences"] / r["cpu_s"] if r["cpu_s"] else float("nan")
        gflops = f"{r['flops'] / 1e9:.2f}" if r.get("flops") else "–"
        infer = f"{r['inference_seq_per_s']:.1f}" if r.get("inference_seq_per_s") else "–"
        lines.append(
            f"| {i} | `{r['name']}` | {r['parameters'] / 1e6:.2f} M | {gflops} | {r['steps']} | "
            f"{train_sps:.2f} | {infer} | {m.get('mse', float('nan')):.1f} | {m.get('mae', float('nan')):.1f} | "
            f"{m.get('ssim', float('nan')):.3f} | {m.get('psnr', float('nan')):.2f} |"
        )
    for label, b in (("all-black frames", data.get("black")), ("copy last frame", base)):
        if b:
            lines.append(
                f"| – | {label} | – | – | – | – | – | {b['mse']:.1f} | {b['mae']:.1f} | "
                f"{b['ssim']:.3f} | {b['psnr']:.2f} |"
            )
    if base:
        done = [r for r in runs if r["metrics"]]
        beat_mse = sum(r["metrics"]["mse"] < base["mse"] for r in done)
        beat_ssim = sum(r["metrics"]["ssim"] > base["ssim"] for r in done)
        black = data.get("black")
        beat_black = sum(r["metrics"]["mse"] < black["mse"] for r in done) if black else None
        lines += [
            "",
            f"Reading it: {beat_mse} of {len(done)} runs beat copying the last frame on MSE and {beat_ssim} "
            f"on SSIM"
            + (f"; {beat_black} beat predicting all-black frames on MSE" if black else "")
            + ". At this budget most methods have learnt to predict dim, blurred frames (low MSE, low SSIM) and "
            "not yet the digits' motion; the ranking says which method gets there first per CPU-minute.",
        ]
    lines += [
        "",
        "Train seq/s = training sequences seen / CPU seconds of the run (one thread). Infer seq/s = forecasts per "
        "second at batch 16 on one thread (`stzoo.tools.docs_gen.measure_speed`), measured right after each run. "
        "Steps differ because a step of each method costs a different amount of compute; that is the point.",
        "",
        "![test MSE against CPU time](assets/compute-matched.svg)",
        "",
        "The curves are test MSE on the first 64 test sequences, measured during training (recorded only; "
        "nothing is selected on them) and plotted against the run's CPU seconds.",
        "",
        "Reproduce (about budget + evaluation per architecture, two at a time on two cores):",
        "",
        "```bash",
        f"python scripts/compute_matched.py run --budget {budgets} --workers 2 --eval-sequences {n} "
        "--mnist-dir PATH/TO/MNIST",
        "python scripts/compute_matched.py collect && python scripts/compute_matched.py page",
        "```",
        "",
    ]
    return "\n".join(lines)


PALETTE = [
    "#1f77b4",
    "#ff7f0e",
    "#2ca02c",
    "#d62728",
    "#9467bd",
    "#8c564b",
    "#e377c2",
    "#7f7f7f",
    "#bcbd22",
    "#17becf",
    "#393b79",
    "#637939",
    "#8c6d31",
    "#843c39",
    "#7b4173",
    "#3182bd",
]


PLOT_TITLE = "Moving MNIST: test MSE (first 64 test sequences) against CPU minutes, same budget for every method"


def plot_svg(
    data: dict[str, Any],
    *,
    title: str = PLOT_TITLE,
    label: Callable[[dict[str, Any]], str] | None = None,
    y_range: tuple[float, float] | None = None,
) -> str:
    """Test MSE against CPU minutes, one line per run, as a self-contained SVG (no plotting library).

    ``label(run)`` names a run in the legend (default: its zoo name without ``-mmnist-s``).
    ``y_range`` fixes the MSE axis (default: 0 to the largest value); points outside it are drawn
    at its edge."""
    label = label or (lambda r: r["name"].removesuffix("-mmnist-s"))
    runs = [r for r in sorted(data["runs"], key=lambda r: r["name"]) if r["curve"]]
    w, h, left, right, top, bottom = 860, 480, 60, 200, 30, 45
    xs = [c["cpu_s"] / 60 for r in runs for c in r["curve"]] or [1.0]
    ys = [c["mse"] for r in runs for c in r["curve"]] + ([data["copy_last"]["mse"]] if data["copy_last"] else [])
    x1 = max(xs) or 1.0
    y0, y1 = y_range or (0.0, max(ys or [1.0]) * 1.05)

    def px(x: float) -> float:
        return left + (w - left - right) * x / x1

    def py(y: float) -> float:
        return top + (h - top - bottom) * (1 - (min(max(y, y0), y1) - y0) / (y1 - y0))

    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}" '
        'font-family="sans-serif" font-size="11">',
        f'<rect width="{w}" height="{h}" fill="white"/>',
        f'<text x="{left}" y="18" font-size="13">{title}</text>',
    ]
    for i in range(6):  # grid and tick labels
        yv, xv = y0 + (y1 - y0) * i / 5, x1 * i / 5
        out.append(f'<line x1="{left}" x2="{w - right}" y1="{py(yv):.1f}" y2="{py(yv):.1f}" stroke="#ddd"/>')
        out.append(f'<text x="{left - 6}" y="{py(yv) + 4:.1f}" text-anchor="end">{yv:.0f}</text>')
        out.append(f'<text x="{px(xv):.1f}" y="{h - bottom + 16}" text-anchor="middle">{xv:.1f}</text>')
    out.append(f'<text x="{(left + w - right) / 2}" y="{h - 8}" text-anchor="middle">CPU minutes (one thread)</text>')
    out.append(
        f'<text x="14" y="{(top + h - bottom) / 2}" transform="rotate(-90 14 {(top + h - bottom) / 2})" '
        'text-anchor="middle">test MSE per frame</text>'
    )
    if data["copy_last"]:
        yc = py(data["copy_last"]["mse"])
        out.append(
            f'<line x1="{left}" x2="{w - right}" y1="{yc:.1f}" y2="{yc:.1f}" stroke="#555" stroke-dasharray="5,4"/>'
        )
    for i, r in enumerate(runs):
        color = PALETTE[i % len(PALETTE)]
        pts = " ".join(f"{px(c['cpu_s'] / 60):.1f},{py(c['mse']):.1f}" for c in r["curve"])
        out.append(f'<polyline fill="none" stroke="{color}" stroke-width="1.8" points="{pts}"/>')
        ly = top + 14 * i + 10
        out.append(
            f'<line x1="{w - right + 12}" x2="{w - right + 32}" y1="{ly}" y2="{ly}" stroke="{color}" stroke-width="2"/>'
        )
        out.append(f'<text x="{w - right + 38}" y="{ly + 4}">{label(r)}</text>')
    if data["copy_last"]:
        ly = top + 14 * len(runs) + 10
        out.append(
            f'<line x1="{w - right + 12}" x2="{w - right + 32}" y1="{ly}" y2="{ly}" stroke="#555" '
            'stroke-dasharray="5,4"/>'
        )
        out.append(f'<text x="{w - right + 38}" y="{ly + 4}">copy last frame</text>')
    out.append("</svg>")
    return "\n".join(out) + "\n"


def cmd_page(args: argparse.Namespace) -> None:
    data = json.loads(Path(args.results).read_text())
    page, plot = Path(args.page), Path(args.page).parent / "assets" / PLOT.name
    page.parent.mkdir(parents=True, exist_ok=True)
    page.write_text(page_text(data))
    plot.parent.mkdir(parents=True, exist_ok=True)
    plot.write_text(plot_svg(data))
    print(f"wrote {page} and {plot}")


def add_training_args(p: argparse.ArgumentParser, *, budget: float, curve_every: float) -> None:
    """The options of a ``run`` command that every run gets the same (what :func:`run_one` reads)."""
    p.add_argument("--budget", type=float, default=budget, help=f"CPU minutes per run (default: {budget:g})")
    p.add_argument("--eval-sequences", type=int, default=1000, help="final test sequences (default: 1000)")
    p.add_argument(
        "--curve-every",
        type=float,
        default=curve_every,
        help=f"CPU minutes between curve points (default: {curve_every:g})",
    )
    p.add_argument("--curve-sequences", type=int, default=64, help="test sequences per curve point (default: 64)")
    p.add_argument("--dtype", default="auto", choices=("auto", "float32", "bfloat16"), help="(default: auto)")
    p.add_argument("--mnist-dir", default=None, help="folder of the MNIST IDX files (default: $STZOO_MNIST_DIR)")


def add_report_commands(
    sub: Any, *, runs: Path, results: Path, page: Path, collect: Callable[..., None], make_page: Callable[..., None]
) -> argparse.ArgumentParser:
    """The ``collect`` (runs → records) and ``page`` (records → docs page and plots) commands;
    returns the ``collect`` parser for options of its own."""
    p = sub.add_parser("collect", help=f"finished runs → {results.relative_to(ROOT)}")
    p.add_argument("--runs", default=str(runs), help="folder of the run folders (default: %(default)s)")
    p.add_argument("--mnist-dir", default=None, help="folder of the MNIST IDX files (default: $STZOO_MNIST_DIR)")
    p.add_argument("--results", default=str(results), help="file to write (default: %(default)s)")
    p.set_defaults(func=collect)
    q = sub.add_parser("page", help=f"{results.relative_to(ROOT)} → {page.relative_to(ROOT)} and its plots")
    q.add_argument("--results", default=str(results), help="collected records (default: %(default)s)")
    q.add_argument("--page", default=str(page), help="page to write; plots go to its assets/ (default: %(default)s)")
    q.set_defaults(func=make_page)
    return p


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("run", help="train (or resume) every run, two at a time by default")
    p.add_argument("--names", nargs="+", default=None, help="zoo names (default: every *-mmnist-s entry)")
    p.add_argument("--runs", default=str(ROOT / "runs" / "compute-matched"), help="folder of the run folders")
    p.add_argument("--workers", type=int, default=2, help="runs at a time, one thread each (default: 2)")
    add_training_args(p, budget=8.0, curve_every=1.0)
    p.set_defaults(func=cmd_run)
    p = add_report_commands(
        sub, runs=ROOT / "runs" / "compute-matched", results=RESULTS, page=PAGE, collect=cmd_collect, make_page=cmd_page
    )
    p.add_argument("--names", nargs="+", default=None, help="only these run folders (default: all)")
    args = parser.parse_args(argv)
    args.func(args)


if __name__ == "__main__":
    main()
