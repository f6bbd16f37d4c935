"""What ``stzoo.runtime.tune_allocator`` does to a TAU-s training step: a ratio in one run.

Two worker subprocesses of this script hold the same TAU-s training setup (``stzoo.tools.bench.
make_train_step``: the recipe loss, backward, clipping, AdamW + OneCycle of ``stzoo train``; batch 16,
float32, one thread): one with ``STZOO_MALLOC_TUNING=0`` (glibc's default mmap threshold), one with
the default (``tune_allocator()`` called first, as ``stzoo train`` does). After one untimed warm-up
step each, the parent tells them to run one step at a time, alternating (untuned, tuned, tuned,
untuned, ...), so both see the same machine load; only one computes at any moment. Each step reports
its wall time, the minor page faults (``resource.getrusage(RUSAGE_SELF).ru_minflt``) and the system
CPU time (``ru_stime``) it caused. speed = untuned median step time / tuned median (> 1: tuning helps).
Usage::

    OMP_NUM_THREADS=1 python benchmarks/allocator.py --steps 4 --write docs/benchmarks.md

``--write`` replaces this machine's row in the ``allocator`` section of FILE (rows of other CPUs are kept).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _sections import MACHINE_HEAD, machine, machine_cells, med, write_section

MODEL = "tau-mmnist-s"
HEAD = [
    "model",
    "batch",
    "untuned s/step",
    "tuned s/step",
    "speed tuned / untuned",
    "untuned faults/step",
    "tuned faults/step",
    "untuned sys s/step",
    "tuned sys s/step",
    "steps",
    "allocator (tuned)",
    *MACHINE_HEAD,
]


def worker(model: str, batch: int) -> None:
    """Read one line per step from stdin ('step' or 'quit'); answer one JSON line per step."""
    import torch

    torch.set_num_threads(1)
    from stzoo.runtime import machine_description, tune_allocator
    from stzoo.tools.bench import make_train_step

    allocator = tune_allocator()
    step, _ = make_train_step(model, batch=batch)
    step()  # warm-up: oneDNN primitives, optimizer state, the allocator's first peak
    print(json.dumps({"ready": True, "allocator": allocator, "machine": machine_description()}), flush=True)
    for line in sys.stdin:
        if line.strip() != "step":
            break
        r0, t0 = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
        step()
        t1, r1 = time.perf_counter(), resource.getrusage(resource.RUSAGE_SELF)
        print(
            json.dumps({"s": t1 - t0, "minflt": r1.ru_minflt - r0.ru_minflt, "stime": r1.ru_stime - r0.ru_stime}),
            flush=True,
        )


def start(tuned: bool, model: str, batch: int, threads: int) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    if tuned:
        env.pop("STZOO_MALLOC_TUNING", None)
    else:
        env["STZOO_MALLOC_TUNING"] = "0"
    return subprocess.Popen(
        [sys.executable, __file__, "--worker", "--model", model, "--batch", str(batch)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )


def ask(proc: subprocess.Popen, what: str = "step") -> dict:
    proc.stdin.write(what + "\n")
    proc.stdin.flush()
    line = proc.stdout.readline()
    if not line:
        raise SystemExit(f"worker {proc.pid} died (rc {proc.wait()})")
    return json.loads(line)


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    ap.add_argument("--steps", type=int, default=4, help="timed steps per side")
    ap.add_argument("--model", default=MODEL, help="zoo name")
    ap.add_argument("--batch", type=int, default=16, help="sequences per step")
    ap.add_argument("--threads", type=int, default=1, help="torch threads of each worker")
    ap.add_argument("--write", default=None, metavar="FILE", help="update the allocator section of FILE")
    ap.add_argument("--note", default=None, help="a sentence about this run (e.g. machine load) for --write")
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        worker(args.model, args.batch)
        return
    # Start them one after the other, so their warm-up steps do not compete.
    procs = {}
    ready = {}
    for tuned in (False, True):
        procs[tuned] = start(tuned, args.model, args.batch, args.threads)
        ready[tuned] = json.loads(procs[tuned].stdout.readline() or "{}")
        if not ready[tuned].get("ready"):
            raise SystemExit("a worker failed to start")
    res: dict[bool, list[dict]] = {False: [], True: []}
    try:
        for i in range(args.steps):
            for tuned in (False, True) if i % 2 == 0 else (True, False):
                res[tuned].append(ask(procs[tuned]))
                r = res[tuned][-1]
                print(
                    f"  {'tuned  ' if tuned else 'untuned'} step: {r['s']:.2f} s, {r['minflt']} minor faults, "
                    f"{r['stime']:.2f} s sys",
                    file=sys.stderr,
                    flush=True,
                )
    finally:
        for p in procs.values():
            try:
                p.stdin.write("quit\n")
                p.stdin.close()
            except OSError:
                pass
            p.wait(timeout=60)

    def m(tuned: bool, key: str) -> float:
        return med([r[key] for r in res[tuned]])

    speed = m(False, "s") / m(True, "s")
    mach = machine()
    mach["threads"] = args.threads
    row = [
        f"`{args.model}`",
        str(args.batch),
        f"{m(False, 's'):.2f}",
        f"{m(True, 's'):.2f}",
        f"{speed:.2f}×",
        f"{m(False, 'minflt'):,.0f}",
        f"{m(True, 'minflt'):,.0f}",
        f"{m(False, 'stime'):.2f}",
        f"{m(True, 'stime'):.2f}",
        str(args.steps),
        ready[True]["allocator"],
        *machine_cells(mach),
    ]
    print("| " + " | ".join(row) + " |")
    if args.write:
        intro = [
            "## The C allocator in a training step",
            "",
            (
                "Written by `benchmarks/allocator.py` (kept by `run_benchmarks.py`). `stzoo.runtime.tune_allocator` "
                "(called by `stzoo train`, `stzoo finetune` and `stzoo bench --train`, never on import) raises glibc's "
                "mmap and trim thresholds so the large activation blocks of a training step stay in malloc's heap "
                "instead of being mapped, zeroed by the kernel and unmapped at every step. Two worker processes hold "
                "the same TAU-s training step (batch 16, fp32, `stzoo.tools.bench.make_train_step`), one with "
                "`STZOO_MALLOC_TUNING=0`, one tuned; after a warm-up step each, they run one step at a time, "
                "alternating, so both see the same load. Medians per step: wall seconds, minor page faults "
                "(`ru_minflt`) and system CPU seconds (`ru_stime`); *speed* = untuned / tuned step time."
            ),
        ]
        write_section(
            Path(args.write),
            "allocator",
            intro,
            HEAD,
            [row],
            key_cols=(0, 1, 11, 12, 13, 14),
            notes=[args.note] if args.note else [],
        )


if __name__ == "__main__":
    main()
