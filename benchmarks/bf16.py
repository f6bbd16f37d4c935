"""bfloat16 against float32 on this machine: inference and a training step, as ratios in one run.

Cases (``--cases``, default all; each is a few minutes or less on a 2-core CPU, so run them one at a time
on a busy machine):

* ``infer-s``: ``stzoo.load("tau-mmnist-s", dtype=...)`` (the default load path: impl auto = fused),
  ``Predictor.predict`` of 16 random sequences, float32 vs bfloat16 (weights and inputs);
* ``infer-paper``: the same for the paper TAU config (``tau-mmnist-paper``, random weights);
* ``train-s``: one real training step of TAU-s at its recipe batch size (16) —
  :func:`stzoo.tools.bench.make_train_step`, i.e. ``compute_loss`` + ``optimizer_step`` of ``stzoo train`` —
  in float32 vs under bfloat16 autocast;
* ``train-paper``: the same for the paper TAU config (batch 16; do not run it on a CPU without bf16
  units, where one bf16 step takes many minutes).

Both sides are built once with the same weights and input, warmed up once (the paper case warms up
at batch 1: a bf16 call at batch 16 takes minutes on a CPU without bf16 units), then timed
alternately (A B, B A, ...; A closes an odd count). speed = float32 median / bfloat16 median (> 1:
bf16 is faster). For inference, max |Δ| is the largest difference of the two forecasts (values in
[0, 1]) on the warm-up batch. Usage::

    OMP_NUM_THREADS=1 python benchmarks/bf16.py --cases infer-s train-s --write docs/benchmarks.md
    OMP_NUM_THREADS=1 python benchmarks/bf16.py --cases infer-paper --write docs/benchmarks.md

``--write`` replaces this machine's rows of the measured cases in the ``bf16`` section of FILE
(rows of other CPUs are kept).
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import warnings
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _sections import (
    MACHINE_HEAD,
    interleave,
    machine,
    machine_cells,
    med,
    write_section,
)

CASES = {  # case: (kind, zoo name, batch, warm-up batch, default repeats)
    "infer-s": ("inference", "tau-mmnist-s", 16, 16, 3),
    "infer-paper": ("inference", "tau-mmnist-paper", 16, 1, 1),
    "train-s": ("training step", "tau-mmnist-s", 16, 16, 2),
    "train-paper": ("training step", "tau-mmnist-paper", 16, 16, 1),
}
HEAD = [
    "case",
    "model",
    "batch",
    "float32 s",
    "bfloat16 s",
    "speed bf16 / fp32",
    "max abs diff",
    "repeats",
    *MACHINE_HEAD,
]


def inference(name: str, batch: int, warm_batch: int) -> tuple[Any, Any, float]:
    """Timed calls of the fp32 and the bf16 Predictor (same random weights), warmed up; max |Δ| of the
    warm-up forecasts."""
    import stzoo
    from stzoo.tools.bench import make_call

    torch.manual_seed(0)
    p32 = stzoo.load(name, pretrained=False)
    torch.manual_seed(0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the PerformanceWarning whose cost this measures
        p16 = stzoo.load(name, pretrained=False, dtype="bfloat16")
    for (k, w32), w16 in zip(p32.reference_model.state_dict().items(), p16.reference_model.state_dict().values()):
        if not torch.equal(w32.to(torch.bfloat16), w16):
            raise SystemExit(f"{name}: the two loads differ in {k}; random init is not seeded as expected")
    out32, out16 = make_call(p32, warm_batch)(), make_call(p16, warm_batch)()
    diff = (out32.float() - out16.float()).abs().max().item()
    return make_call(p32, batch), make_call(p16, batch), diff


def run_case(case: str, repeats: int | None) -> list[str]:
    kind, name, batch, warm, default_repeats = CASES[case]
    repeats = repeats or default_repeats
    print(f"{case}: {kind} of {name}, batch {batch}, {repeats} repeat(s)", file=sys.stderr, flush=True)
    if kind == "inference":
        a, b, diff = inference(name, batch, warm)
    else:
        from stzoo.tools.bench import make_train_step

        a, _ = make_train_step(name, batch=batch, dtype="float32")
        b, _ = make_train_step(name, batch=batch, dtype="bfloat16")
        a(), b()
        diff = float("nan")
    ta, tb = interleave(a, b, repeats, label=case)
    speed = med(ta) / med(tb)
    words = f"{speed:.2f}× (bf16 {1 / speed:.1f}× slower)" if speed < 1 else f"{speed:.2f}×"
    print(f"{case}: fp32 {med(ta):.2f} s, bf16 {med(tb):.2f} s, {words}", file=sys.stderr)
    return [
        case,
        f"`{name}`",
        str(batch),
        f"{med(ta):.2f}",
        f"{med(tb):.2f}",
        words,
        "–" if math.isnan(diff) else f"{diff:.1e}",
        str(repeats),
        *machine_cells(machine()),
    ]


INTRO = [
    "## bfloat16 against float32",
    "",
    (
        "Written by `benchmarks/bf16.py` (kept by `run_benchmarks.py`). One process per run, both sides built "
        "with the same weights and input, warmed up, then timed alternately; *speed* = float32 median / "
        "bfloat16 median, so above 1× bf16 is faster. Inference: `stzoo.load(NAME, dtype=...)` with its default "
        "implementation (fused), `Predictor.predict` of 16 random sequences; *max abs diff* is between the two "
        "forecasts of the warm-up call (values in [0, 1]; batch 16, batch 1 for the paper config). "
        "Training step: `stzoo.tools.bench.make_train_step` (the recipe loss, backward, "
        "clipping, AdamW + OneCycle of `stzoo train`), fp32 against bf16 autocast (weights stay fp32), at the "
        "recipe batch size 16 (TAU-s and the paper config). *bf16 units*: the CPU's native bf16 flags "
        "(`amx_bf16`, `avx512_bf16`, see "
        "`stzoo.runtime.native_bf16`); *flags*: the kernel-relevant ones it has."
    ),
    "",
    (
        'On a CPU without bf16 units `stzoo.load(..., dtype="bfloat16")` issues a `stzoo.runtime.'
        "PerformanceWarning` pointing here: the rows with *bf16 units: none* are what it costs. Without AVX-512 "
        "(an AVX2-only CPU) oneDNN has no bf16 kernels at all (`torch.ops.mkldnn._is_mkldnn_bf16_supported()` "
        "is False), so bf16 convolutions fall back to PyTorch's generic kernels, far slower than fp32 oneDNN. "
        "fp32 stays the default of `stzoo.load`; pick bf16 on CUDA or on a CPU whose row here says it is faster."
    ),
]


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    ap.add_argument("--cases", nargs="+", choices=list(CASES), default=list(CASES), help="what to measure")
    ap.add_argument(
        "--repeats",
        type=int,
        default=None,
        help="timed calls per side (default: 3 infer-s, 1 infer-paper, 2 train-s, 1 train-paper)",
    )
    ap.add_argument(
        "--threads", type=int, default=int(os.environ.get("OMP_NUM_THREADS", "1")), help="torch intra-op threads"
    )
    ap.add_argument("--write", default=None, metavar="FILE", help="update the bf16 section of FILE")
    ap.add_argument("--note", default=None, help="a sentence about this run (e.g. machine load) for --write")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    from stzoo.runtime import tune_allocator

    tune_allocator()  # the training case measures what stzoo train gets; inference is unaffected
    rows = [run_case(c, args.repeats) for c in args.cases]
    for r in rows:
        print("| " + " | ".join(r) + " |")
    if args.write:
        write_section(
            Path(args.write),
            "bf16",
            INTRO,
            HEAD,
            rows,
            key_cols=(0, 8, 9, 10, 11),
            notes=[args.note] if args.note else [],
        )


if __name__ == "__main__":
    main()
