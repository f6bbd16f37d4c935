"""`stzoo bench`: forecasts (or training steps) per second, latency and peak memory."""

from __future__ import annotations

import argparse
import json

from stzoo.cli.common import add_device, add_dtype, nonnegative_int, positive_int

__all__ = ["register"]


def _cmd_bench(args: argparse.Namespace) -> int:
    from stzoo.api import info, list_models
    from stzoo.errors import InputError
    from stzoo.runtime import machine_description, tune_allocator
    from stzoo.tools.bench import format_table, format_train_table, measure, measure_train

    names = args.names or [n for n in list_models(pretrained=True) if info(n)["name"] == n]
    allowed = ("float32", "bfloat16", "auto") if args.train else ("float32", "bfloat16", "float16")
    dtypes = args.dtype or (["float32", "bfloat16"] if args.train else ["float32"])
    bad = [d for d in dtypes if d not in allowed]
    if bad:
        raise InputError(
            f"--dtype {bad[0]} is not one of {', '.join(allowed)}{' (with --train)' if args.train else ''}"
        )
    if args.train:
        tune_allocator()  # as stzoo train does: the numbers are those a training run gets
        results: list = []
        for name in names:
            for batch in args.batch or [None]:
                for dtype in dtypes:
                    r = measure_train(
                        name,
                        batch=batch,
                        device=args.device,
                        dtype=dtype,
                        warmup=1 if args.warmup is None else args.warmup,
                        iters=3 if args.iters is None else args.iters,
                    )
                    results.append(r)
                    if args.json:
                        print(json.dumps(r.to_dict()), flush=True)
        if not args.json:
            m = machine_description()
            print(
                f"# CPU: {m['cpu']}; flags: {' '.join(m['cpu_flags']) or 'none of note'}; bf16 units: "
                f"{', '.join(m['bf16_units']) or 'none'}; torch CPU kernels: {m['cpu_capability']}; "
                f"threads: {m['threads']}; allocator: {m['allocator']}; torch {m['torch_version']}"
            )
            print(format_train_table(results))
        return 0
    results = []
    for name in names:
        for batch in args.batch or [1, 16]:
            for impl in args.impl:
                for dtype in dtypes:
                    r = measure(
                        name,
                        impl=impl,
                        batch=batch,
                        device=args.device,
                        dtype=dtype,
                        warmup=2 if args.warmup is None else args.warmup,
                        iters=10 if args.iters is None else args.iters,
                    )
                    results.append(r)
                    if args.json:
                        print(json.dumps(r.to_dict()), flush=True)
    if not args.json:
        print(format_table(results))
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    """Add `bench` to the subcommands ``sub``."""
    p = sub.add_parser(
        "bench",
        help="sequences/s, latency and peak memory per model × impl × batch (--train: training steps/s per dtype)",
        description="Time forecasts, or with --train real training steps (random weights and "
        "inputs; speed does not depend on them). See docs/benchmarks.md for how the numbers are "
        "taken.",
    )
    p.add_argument("names", nargs="*", metavar="NAME", help="zoo names (default: every entry with released weights)")
    p.add_argument(
        "--train",
        action="store_true",
        help="time training steps instead of forecasts: the step stzoo train runs (recipe loss, "
        "backward, gradient clipping, AdamW + OneCycle) with the C allocator tuned as in training; "
        "prints steps/s and sequences/s per --dtype and the CPU model, flags and allocator "
        "(default: off, time forecasts)",
    )
    p.add_argument(
        "--impl",
        nargs="+",
        choices=["auto", "reference", "fused"],
        default=["reference", "fused"],
        help="implementations to time (default: reference fused; not used with --train, which "
        "trains the reference modules)",
    )
    p.add_argument(
        "--batch",
        nargs="+",
        type=positive_int,
        default=None,
        help="sequences per forecast / per training step (default: 1 16; with --train: the "
        "architecture's recipe batch size, 16 for most)",
    )
    add_device(p, "cpu", default="cpu")
    add_dtype(
        p,
        nargs="+",
        default=None,
        metavar="DTYPE",
        help="forecasts: float32, bfloat16 or float16 weights and inputs; --train: float32, bfloat16 "
        "(autocast, weights stay fp32) or auto (bf16 where the device has native bf16) "
        "(default: float32; with --train: float32 bfloat16)",
    )
    p.add_argument(
        "--warmup", type=nonnegative_int, default=None, help="untimed calls / steps first (default: 2; with --train: 1)"
    )
    p.add_argument(
        "--iters",
        type=positive_int,
        default=None,
        help="timed calls / steps, of which the median is reported (default: 10; with --train: 3)",
    )
    p.add_argument(
        "--json", action="store_true", help="print one JSON object per measurement instead of a table (default: off)"
    )
    p.set_defaults(func=_cmd_bench)
