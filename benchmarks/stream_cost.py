"""Per-frame cost of stzoo.Forecaster as a stream grows.

Pushes a synthetic 64×64 video (a square moving across the frame) one frame at a time through a
Forecaster for each shipped small model and measures, at stream lengths 10, 100 and 1000 (by
default):

* push: the median wall time of the last 10 pushes up to that length (one ``model.step`` for the
  recurrent models with ``context="stream"``; storing the frame for TAU);
* forecast: the median of 3 ``forecast()`` calls at that length (horizon = the model's frames_out);
* recompute: for the recurrent models, the time of running the model over the whole history
  (``model(all frames so far, horizon)``), i.e. what the same full-history forecast would cost
  per new frame without a carried state.

Ratios (at the longest length ÷ at the shortest) are what the docs quote; absolute times depend on
the machine. Usage::

    python benchmarks/stream_cost.py                       # print the table
    python benchmarks/stream_cost.py --write docs/deploy.md   # also put it between the markers
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

import stzoo

START, END = "<!-- stream-cost:start -->", "<!-- stream-cost:end -->"
MODELS = ("tau-mmnist-s", "convlstm-mmnist-s", "sa-convlstm-mmnist-s")


def moving_square(n: int, size: int = 64) -> np.ndarray:
    """n frames (uint8, n×size×size) of a 12-pixel square bouncing across the frame."""
    frames = np.zeros((n, size, size), dtype=np.uint8)
    span = size - 12
    for t in range(n):
        x = abs((3 * t) % (2 * span) - span)
        y = abs((2 * t + 17) % (2 * span) - span)
        frames[t, y : y + 12, x : x + 12] = 255
    return frames


def measure(name: str, frames: np.ndarray, checkpoints: list[int], impl: str) -> dict:
    p = stzoo.load(name, impl=impl)
    f = stzoo.Forecaster(p)
    push_ms: list[float] = []
    row: dict = {"name": name, "context": f.context, "horizon": f.horizon, "push": {}, "forecast": {}, "recompute": {}}
    for t, frame in enumerate(tqdm(frames, desc=name, leave=False), start=1):
        start = time.perf_counter()
        f.push(frame)
        push_ms.append(1e3 * (time.perf_counter() - start))
        if t not in checkpoints:
            continue
        row["push"][t] = statistics.median(push_ms[-10:])
        runs = []
        for _ in range(3):
            f._cache = None  # time the computation, not the cached answer
            start = time.perf_counter()
            f.forecast()
            runs.append(1e3 * (time.perf_counter() - start))
        row["forecast"][t] = statistics.median(runs)
        if p.recurrent:
            x = torch.from_numpy(frames[:t]).float().div(255)[None, :, None]
            with torch.no_grad():
                start = time.perf_counter()
                p.model(x, f.horizon)
                row["recompute"][t] = 1e3 * (time.perf_counter() - start)
    return row


def table(rows: list[dict], checkpoints: list[int], threads: int, impl: str) -> str:
    lo, hi = checkpoints[0], checkpoints[-1]
    head = (
        ["model", "context"]
        + [f"push @{c} (ms)" for c in checkpoints]
        + [f"push ×{hi}/{lo}"]
        + [f"forecast @{c} (ms)" for c in checkpoints]
        + [f"forecast ×{hi}/{lo}"]
        + [f"recompute @{c} (ms)" for c in checkpoints]
        + [f"recompute ×{hi}/{lo}"]
    )
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        cells = [f"`{r['name']}`", r["context"]]
        for key in ("push", "forecast", "recompute"):
            if not r[key]:
                cells += ["–"] * (len(checkpoints) + 1)
                continue
            cells += [f"{r[key][c]:.2f}" for c in checkpoints]
            cells.append(f"{r[key][hi] / r[key][lo]:.2f}")
        lines.append("| " + " | ".join(cells) + " |")
    cpu = platform.processor() or platform.machine()
    lines.append("")
    lines.append(
        f"Measured by `python benchmarks/stream_cost.py` on {cpu}, {threads} torch thread(s), "
        f"impl={impl}, torch {torch.__version__}; 64×64 frames, horizon 10, one run."
    )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="+", default=list(MODELS))
    parser.add_argument("--checkpoints", nargs="+", type=int, default=[10, 100, 1000])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--impl", default="reference", choices=["auto", "reference", "fused"])
    parser.add_argument(
        "--write", default=None, metavar="FILE", help=f"replace the text between {START} and {END} in FILE"
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    checkpoints = sorted(args.checkpoints)
    frames = moving_square(checkpoints[-1])
    rows = [measure(name, frames, checkpoints, args.impl) for name in args.models]
    text = table(rows, checkpoints, args.threads, args.impl)
    print(text)
    if args.write:
        path = Path(args.write)
        doc = path.read_text(encoding="utf-8")
        if START not in doc or END not in doc:
            raise SystemExit(f"{path} has no {START} ... {END} markers")
        head, rest = doc.split(START, 1)
        path.write_text(f"{head}{START}\n{text}\n{END}{rest.split(END, 1)[1]}", encoding="utf-8")
        print(f"updated {path}")


if __name__ == "__main__":
    main()
