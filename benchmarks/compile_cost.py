"""Does ``torch.compile`` pay off for TAU-s inference on this CPU? First-call cost against per-call saving.

A worker process (one thread, ``TORCHINDUCTOR_COMPILE_THREADS=1``, inductor's CPU C++ backend) builds
``stzoo.load("tau-mmnist-s", pretrained=False)`` twice — the reference modules and the default
(fused) path — and ``torch.compile(reference, dynamic=False)``. For each ``--batch`` in turn it times
the compiled model's first call (tracing, inductor, the C++ compiler: what a user waits for once per
process and input shape), then the steady state, interleaved: reference eager, fused eager, compiled
(rotating the order; medians of ``--repeats``). Times are CPU seconds — this process's, plus its
finished children's (the C++ compiler) for the first call — because on a busy machine a low-priority
compile waits for the CPU far longer than it computes; with one thread they are what an idle machine
takes. The worker starts from an empty inductor cache (``TORCHINDUCTOR_CACHE_DIR`` in a fresh temporary
folder); ``--warm-cache`` then measures the first calls again in a second worker that finds that
cache filled, a user's second session on the same machine. *break-even calls* = (first call −
compiled steady call) / (fused steady − compiled steady): forecasts at that shape before compiling
has saved more than it cost (∞ where compiled is not faster than the default path). Usage::

    OMP_NUM_THREADS=1 python benchmarks/compile_cost.py --batch 1 --write docs/benchmarks.md
    OMP_NUM_THREADS=1 python benchmarks/compile_cost.py --batch 16 --write docs/benchmarks.md

(one batch size per run keeps each run short on a busy 2-core machine). ``--write`` replaces this
machine's rows of the measured batch sizes in the ``compile`` section of FILE.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _sections import MACHINE_HEAD, machine, machine_cells, med, write_section

MODEL = "tau-mmnist-s"
HEAD = [
    "model",
    "batch",
    "first call CPU s (empty cache)",
    "first call CPU s (warm cache)",
    "reference eager ms",
    "fused eager ms (default)",
    "compiled ms",
    "compiled vs fused",
    "break-even calls (empty / warm cache)",
    "repeats",
    *MACHINE_HEAD,
]


def _cpu() -> float:
    """CPU seconds of this process and of its finished children (the C++ compiler runs as one)."""
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def worker(model: str, batches: list[int], repeats: int, steady: bool) -> None:
    import torch

    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    import stzoo

    ref = stzoo.load(model, pretrained=False, impl="reference").model.eval()
    fused = stzoo.load(model, pretrained=False).model.eval()
    compiled = torch.compile(ref, dynamic=False)
    out = {}
    with torch.no_grad():
        for b in batches:
            x = torch.rand(b, 10, 1, 64, 64, generator=torch.Generator().manual_seed(0))
            ref(x)  # eager warm-up first, so the first compiled call counts compilation only
            fused(x)
            t0, c0 = time.perf_counter(), _cpu()
            y = compiled(x)
            first, first_cpu = time.perf_counter() - t0, _cpu() - c0
            r = {"first_s": first, "first_cpu_s": first_cpu, "max_abs_diff": (y - ref(x)).abs().max().item()}
            print(
                f"  batch {b}: first compiled call {first:.1f} s wall, {first_cpu:.1f} CPU s",
                file=sys.stderr,
                flush=True,
            )
            if steady:
                fns = [("reference", ref), ("fused", fused), ("compiled", compiled)]
                times: dict[str, list[float]] = {k: [] for k, _ in fns}
                cpu: dict[str, list[float]] = {k: [] for k, _ in fns}
                compiled(x)
                for i in range(repeats):
                    for k, f in fns[i % 3 :] + fns[: i % 3]:
                        t0, c0 = time.perf_counter(), time.process_time()
                        f(x)
                        times[k].append(time.perf_counter() - t0)
                        cpu[k].append(time.process_time() - c0)
                r.update({k + "_ms": med(v) * 1e3 for k, v in times.items()})
                r.update({k + "_cpu_ms": med(v) * 1e3 for k, v in cpu.items()})
                print(
                    f"  batch {b}: "
                    + ", ".join(f"{k} {r[k + '_ms']:.1f} ms ({r[k + '_cpu_ms']:.1f} CPU ms)" for k in times),
                    file=sys.stderr,
                    flush=True,
                )
            out[str(b)] = r
    print(json.dumps(out), flush=True)


def run_worker(cache: str, batches: list[int], repeats: int, steady: bool, threads: int) -> dict:
    env = {
        **os.environ,
        "OMP_NUM_THREADS": str(threads),
        "TORCHINDUCTOR_CACHE_DIR": cache,
        "TORCHINDUCTOR_COMPILE_THREADS": "1",
    }
    cmd = [sys.executable, __file__, "--worker", "--batch", *map(str, batches), "--repeats", str(repeats)]
    proc = subprocess.run(
        cmd + ([] if steady else ["--no-steady"]), env=env, stdout=subprocess.PIPE, text=True, check=False
    )
    if proc.returncode != 0:
        raise SystemExit(f"worker failed (rc {proc.returncode})")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    ap.add_argument("--batch", nargs="+", type=int, default=[1, 16], help="batch sizes, compiled in this order")
    ap.add_argument("--repeats", type=int, default=9, help="steady-state calls per implementation and batch")
    ap.add_argument("--threads", type=int, default=1, help="torch threads of the workers")
    ap.add_argument(
        "--warm-cache",
        action="store_true",
        help="also time the first calls in a second process that finds the inductor cache filled",
    )
    ap.add_argument("--write", default=None, metavar="FILE", help="update the compile section of FILE")
    ap.add_argument("--note", default=None, help="a sentence about this run (e.g. machine load) for --write")
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--no-steady", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        worker(MODEL, args.batch, args.repeats, not args.no_steady)
        return
    cache = tempfile.mkdtemp(prefix="stzoo-inductor-")
    try:
        print("empty inductor cache:", file=sys.stderr, flush=True)
        cold = run_worker(cache, args.batch, args.repeats, True, args.threads)
        warm = {}
        if args.warm_cache:
            print("warm inductor cache (a second process):", file=sys.stderr, flush=True)
            warm = run_worker(cache, args.batch, args.repeats, False, args.threads)
    finally:
        shutil.rmtree(cache, ignore_errors=True)
    mach = machine()
    mach["threads"] = args.threads
    rows = []
    for b in args.batch:
        c = cold[str(b)]
        comp, fused = c["compiled_cpu_ms"] / 1e3, c["fused_cpu_ms"] / 1e3
        saving = fused - comp

        def breakeven(first: float, comp: float = comp, saving: float = saving) -> str:
            return f"{(first - comp) / saving:,.0f}" if saving > 0 else "∞"

        w = warm.get(str(b))
        rows.append(
            [
                f"`{MODEL}`",
                str(b),
                f"{c['first_cpu_s']:.1f} ({c['first_s']:.0f} wall)",
                "–" if w is None else f"{w['first_cpu_s']:.1f}",
                f"{c['reference_cpu_ms']:.1f}",
                f"{c['fused_cpu_ms']:.1f}",
                f"{c['compiled_cpu_ms']:.1f}",
                f"{fused / comp:.2f}×",
                breakeven(c["first_cpu_s"]) + ("" if w is None else f" / {breakeven(w['first_cpu_s'])}"),
                str(args.repeats),
                *machine_cells(mach),
            ]
        )
        print(f"batch {b}: max |compiled - reference| = {c['max_abs_diff']:.1e}", file=sys.stderr)
    for r in rows:
        print("| " + " | ".join(r) + " |")
    if args.write:
        intro = [
            "## `torch.compile` for inference",
            "",
            (
                "Written by `benchmarks/compile_cost.py` (kept by `run_benchmarks.py`): `torch.compile(reference, "
                "dynamic=False)` of TAU-s (inductor's CPU C++ backend, fp32, one thread) against the eager reference "
                "and the default load path (fused, eager). All times are CPU seconds (this process and the C++ "
                "compiler it runs), which a busy machine inflates much less than wall time; with one thread they "
                "match the wall time of an idle machine. *first call*: the compiled model's first forecast at that "
                "batch size (tracing, code generation, the C++ compiler) in a process that starts from an empty "
                "inductor cache (and, with `--warm-cache`, in a second process that finds it filled). Steady-state "
                "times are medians of interleaved calls. *break-even calls*: forecasts at one input shape before "
                "compiling has saved more than its first call cost, against the default fused path (∞: compiled "
                "is not faster)."
            ),
        ]
        write_section(
            Path(args.write),
            "compile",
            intro,
            HEAD,
            rows,
            key_cols=(0, 1, 10, 11, 12, 13),
            notes=[args.note] if args.note else [],
        )


if __name__ == "__main__":
    main()
