"""What `stzoo evaluate NAME --sequences N` costs on top of the model's forward passes.

For each model, in one process and interleaved (forward, evaluate with a cold cache, forward,
evaluate with a warm cache, forward), it times:

* **evaluate**: the whole command, ``stzoo.cli.main.main(["evaluate", NAME, "--sequences", N, ...])``:
  loading the model, building (cold: generating and writing; warm: memory-mapping) the cached
  test set, the forward passes, the metrics. The cache is a fresh temporary ``$STZOO_CACHE``,
  removed at the end (the warm run reads the file the cold run wrote, from the page cache).
* **forward**: only ``predict_future`` on the same N sequences, already in memory as float
  tensors, in batches of the same size.

ratio = evaluate / the mean of the forward runs; the target is ≤ 1.5×. Usage::

    python benchmarks/eval_cost.py --models tau-mmnist-s --sequences 1000
    python benchmarks/eval_cost.py --models convlstm-mmnist-s --write docs/benchmarks.md

``--write`` replaces this table's rows for the measured models between the markers
``<!-- eval-cost:start -->`` and ``<!-- eval-cost:end -->`` of FILE (appending the section if it has
none), keeping the rows of other models; ``benchmarks/run_benchmarks.py`` keeps that section
when it regenerates docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import io
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

START, END = "<!-- eval-cost:start -->", "<!-- eval-cost:end -->"
MODELS = ("tau-mmnist-s", "convlstm-mmnist-s")
HEAD = (
    "| model | cache | N | threads | CPU | amx_bf16 | avx512_bf16 | `stzoo evaluate` s | forward only s | "
    "ratio | date |"
)


def cpu() -> tuple[str, dict[str, bool]]:
    """``model name`` of /proc/cpuinfo and whether it lists the bf16 flags."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        text = ""
    name, flags = "unknown", set()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "model name" and name == "unknown":
            name = value.strip()
        elif key.strip() == "flags" and not flags:
            flags = set(value.split())
    return name, {f: f in flags for f in ("amx_bf16", "avx512_bf16")}


def time_evaluate(name: str, n: int, threads: int, batch: int, mnist_dir: str | None) -> float:
    from stzoo.cli.main import main

    argv = ["evaluate", name, "--sequences", str(n), "--threads", str(threads), "--batch-size", str(batch)]
    if mnist_dir:
        argv += ["--mnist-dir", mnist_dir]
    out, err = io.StringIO(), io.StringIO()
    start = time.perf_counter()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = main(argv)
    seconds = time.perf_counter() - start
    if rc != 0:
        raise SystemExit(f"stzoo evaluate {name} failed:\n{err.getvalue()[-2000:]}")
    return seconds


def time_forward(model: torch.nn.Module, x: torch.Tensor, n_out: int, batch: int) -> float:
    from stzoo.training.evaluation import predict_future

    start = time.perf_counter()
    with torch.no_grad():
        for lo in range(0, x.shape[0], batch):
            predict_future(model, x[lo : lo + batch], n_out)
    return time.perf_counter() - start


def measure(name: str, n: int, threads: int, batch: int, mnist_dir: str | None) -> list[dict]:
    import stzoo
    from stzoo.training.evaluation import _to_float, test_data
    from stzoo.zoo.card import training_dataset

    p = stzoo.load(name)
    model = p.model.eval()
    fi, fo = p.spec.frames_in, p.spec.frames_out
    dataset = training_dataset(p.entry) or "moving_mnist"  # what `stzoo evaluate NAME` measures on
    test = test_data(dataset, n, {"mnist_dir": mnist_dir}, cache=False)
    n = len(test)
    x = torch.cat([_to_float(test.batch(lo, min(lo + 256, n))[:, :fi], torch.device("cpu")) for lo in range(0, n, 256)])
    time_forward(model, x[:batch], fo, batch)  # warm-up: first-call allocations, oneDNN primitives
    cache = tempfile.mkdtemp(prefix="stzoo-eval-cost-")
    before = os.environ.get("STZOO_CACHE")
    os.environ["STZOO_CACHE"] = cache
    try:
        forward = [time_forward(model, x, fo, batch)]
        cold = time_evaluate(name, n, threads, batch, mnist_dir)
        forward.append(time_forward(model, x, fo, batch))
        warm = time_evaluate(name, n, threads, batch, mnist_dir)
        forward.append(time_forward(model, x, fo, batch))
    finally:
        if before is None:
            os.environ.pop("STZOO_CACHE", None)
        else:
            os.environ["STZOO_CACHE"] = before
        shutil.rmtree(cache, ignore_errors=True)
    fwd = statistics.mean(forward)
    print(
        f"{name}: forward {', '.join(f'{t:.1f}' for t in forward)} s; evaluate cold {cold:.1f} s, warm {warm:.1f} s",
        file=sys.stderr,
    )
    return [
        {"model": name, "cache": kind, "n": n, "threads": threads, "evaluate": t, "forward": fwd}
        for kind, t in (("cold", cold), ("warm", warm))
    ]


def rows(results: list[dict]) -> list[str]:
    name, flags = cpu()
    date = dt.date.today().isoformat()
    yes = {True: "yes", False: "no"}
    return [
        f"| `{r['model']}` | {r['cache']} | {r['n']} | {r['threads']} | {name} | {yes[flags['amx_bf16']]} | "
        f"{yes[flags['avx512_bf16']]} | {r['evaluate']:.1f} | {r['forward']:.1f} | "
        f"{r['evaluate'] / r['forward']:.2f}× | {date} |"
        for r in results
    ]


def section(table_rows: list[str], batch: int, notes: list[str] = ()) -> str:
    return "\n".join(
        [
            "## Cost of `stzoo evaluate` against the bare forward passes",
            "",
            "Written by `benchmarks/eval_cost.py` (kept by `run_benchmarks.py`). *`stzoo evaluate` s*: the whole "
            "command for the first N test sequences (model load, test set, forward passes, MSE/MAE/SSIM/PSNR); "
            "*forward only s*: the mean of three runs of just the forward passes on the same N sequences, "
            "interleaved with the two commands in one process (forward, cold, forward, warm, forward). *cold*: an "
            "empty cache, so the command generates the N sequences and writes them (82 MB per 1,000) before "
            "evaluating; *warm*: the next call memory-maps that file (from the page cache). The cache lives in "
            "`$STZOO_CACHE/moving-mnist` (the field datasets' in `$STZOO_CACHE/fields`, float32), by default "
            "under `$XDG_CACHE_HOME/stzoo` or `~/.cache/stzoo` (delete it to reclaim the space); each model is "
            "measured on its own dataset's test set. Target: ratio ≤ 1.5×. "
            f"Batch {batch}, fp32, the models' default (fused) implementation.",
            "",
            HEAD,
            "|" + "---|" * (HEAD.count(" | ") + 1),
            *table_rows,
            "",
            *notes,
        ]
    )


def write(path: Path, new_rows: list[str], models: list[str], batch: int, note: str | None) -> None:
    doc = path.read_text(encoding="utf-8") if path.exists() else ""
    keep: list[str] = []
    notes = [f"Note: {note}", ""] if note else []
    if START in doc and END in doc:
        head, rest = doc.split(START, 1)
        old, tail = rest.split(END, 1)
        keep = [line for line in old.splitlines() if line.startswith("| `") and line.split("`")[1] not in models]
        if not note:
            notes = [x for line in old.splitlines() if line.startswith("Note: ") for x in (line, "")]
    else:
        head, tail = doc.rstrip("\n") + "\n\n", "\n"
    merged = sorted(keep + new_rows, key=lambda line: (line.split("`")[1], line.split(" | ")[1]))
    path.write_text(f"{head}{START}\n{section(merged, batch, notes)}{END}{tail}", encoding="utf-8")
    print(f"updated {path}", file=sys.stderr)


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    ap.add_argument("--models", nargs="+", default=list(MODELS), help="zoo names")
    ap.add_argument("--sequences", type=int, default=1000, help="N, the test sequences per run")
    ap.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    ap.add_argument("--batch-size", type=int, default=64, help="sequences per forward pass (both sides)")
    ap.add_argument("--mnist-dir", default=None, help="MNIST IDX folder (default: $STZOO_MNIST_DIR)")
    ap.add_argument("--write", default=None, metavar="FILE", help="update the table in FILE (see above)")
    ap.add_argument("--note", default=None, help="a sentence about this run (e.g. machine load) for --write")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    results = [
        r for m in args.models for r in measure(m, args.sequences, args.threads, args.batch_size, args.mnist_dir)
    ]
    new_rows = rows(results)
    print(section(new_rows, args.batch_size))
    if args.write:
        write(Path(args.write), new_rows, args.models, args.batch_size, args.note)


if __name__ == "__main__":
    main()
