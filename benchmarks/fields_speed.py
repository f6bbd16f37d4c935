"""How fast the generated physical fields are made, next to how fast TAU-s trains on them.

For each generated dataset (Gray–Scott, Kolmogorov flow) it measures, on one CPU thread:

* generate: sequences per second of ``dataset.batch(i, i + 16)`` (16 sequences of 20 frames,
  64×64, integrated together), median over ``--repeats`` different batches;
* train: sequences per second of one TAU-s training step on a batch of the same shape
  (``build_model("tau", {"hid_S": 16, "hid_T": 128, "N_S": 4, "N_T": 4, "channels": C, "frames": 10})``,
  10 frames in, 10 out, MSE, forward + backward + AdamW step, batch 16), median over
  ``--repeats`` steps after one warm-up step;

and prints a Markdown table with the CPU model (from /proc/cpuinfo). When generation is slower
than training, a run that generates its batches inline is bound by the generator (``share`` is
the fraction of a step spent generating). Usage::

    python benchmarks/fields_speed.py              # 3 repeats
    python benchmarks/fields_speed.py --repeats 1  # quick
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")  # before numpy / torch are imported

import argparse  # noqa: E402
import platform  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from datetime import date  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402

from stzoo.data.grayscott import GrayScott  # noqa: E402
from stzoo.data.kolmogorov import Kolmogorov  # noqa: E402
from stzoo.models import build_model  # noqa: E402

BATCH, FRAMES, SIZE = 16, 20, 64


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def generation_rate(dataset, repeats: int) -> tuple[float, torch.Tensor]:
    times, batch = [], None
    for r in range(repeats):
        start = time.perf_counter()
        batch = dataset.batch(r * BATCH, (r + 1) * BATCH)
        times.append(time.perf_counter() - start)
    return BATCH / statistics.median(times), batch


def training_rate(batch: torch.Tensor, repeats: int) -> float:
    torch.manual_seed(0)
    c = batch.shape[2]
    model = build_model("tau", {"hid_S": 16, "hid_T": 128, "N_S": 4, "N_T": 4, "channels": c, "frames": 10})
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    x, y = batch[:, :10].float(), batch[:, 10:20].float()
    times = []
    for r in range(repeats + 1):
        start = time.perf_counter()
        loss = torch.nn.functional.mse_loss(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if r:  # the first step is a warm-up
            times.append(time.perf_counter() - start)
    return BATCH / statistics.median(times)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3, help="batches / training steps to time (median)")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    datasets = {
        "grayscott": GrayScott(BATCH * args.repeats, seq_len=FRAMES, size=SIZE, seed=0),
        "kolmogorov": Kolmogorov(BATCH * args.repeats, seq_len=FRAMES, size=SIZE, seed=0),
    }
    rows = []
    for name, ds in datasets.items():
        gen, batch = generation_rate(ds, args.repeats)
        train = training_rate(batch, args.repeats)
        rows.append((name, batch.shape[2], gen, train))
        print(f"{name}: generate {gen:.2f} seq/s, TAU-s train {train:.2f} seq/s", file=sys.stderr)
    print(
        f"CPU: {cpu_name()}, 1 thread (torch {torch.__version__}, numpy {np.__version__}, "
        f"Python {platform.python_version()}), {date.today().isoformat()}; median of {args.repeats} "
        f"batches of {BATCH}×{FRAMES}×C×{SIZE}×{SIZE}. Command: `python benchmarks/fields_speed.py "
        f"--repeats {args.repeats}`\n"
    )
    print(
        "| dataset | C | generate (seq/s) | TAU-s train step (seq/s) | generate ÷ train "
        "| share of an inline step spent generating |"
    )
    print("| --- | --- | --- | --- | --- | --- |")
    for name, c, gen, train in rows:
        share = (1 / gen) / (1 / gen + 1 / train)
        print(f"| {name} | {c} | {gen:.2f} | {train:.2f} | {gen / train:.2f} | {share:.0%} |")


if __name__ == "__main__":
    main()
