"""Measure how much bfloat16 inference changes each released model's test metrics, for its model card.

For every zoo entry with released weights (or the NAMEs given) this loads the model twice —
``stzoo.load(name)`` (float32, the default) and ``stzoo.load(name, dtype="bfloat16")`` — measures both
on the same first ``--sequences`` sequences of the entry's own test set (:func:`stzoo.training.evaluation.evaluate`,
the convention of every metric in the zoo) and writes the pair, the relative MSE change and the
machine into the entry's ``bf16`` block of the manifest. Then regenerate the pages:
``stzoo-maint zoo-table --write README.md --docs docs``.

    OMP_NUM_THREADS=1 python scripts/bf16_metrics.py --sequences 200 --mnist-dir ../shared/data/mnist
    python scripts/bf16_metrics.py tau-grayscott-s --sequences 100

bf16 runs slowly on a CPU without AVX512-BF16 / AMX (docs/benchmarks.md); the numbers do not depend on
the CPU's speed, only on bf16 rounding, but the block records the CPU all the same.
"""

from __future__ import annotations

import argparse
import datetime
import json
import shlex
import sys
import warnings
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]


def measure(name: str, sequences: int, mnist_dir: str | None) -> dict:
    """float32 and bfloat16 metrics of zoo entry ``name`` on the first ``sequences`` of its test set."""
    import stzoo
    from stzoo.models import Recipe
    from stzoo.runtime import cpu_description
    from stzoo.training.evaluation import evaluate, test_data, test_set_description
    from stzoo.zoo.card import training_dataset

    p32 = stzoo.load(name)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the PerformanceWarning on CPUs without bf16 units
        p16 = stzoo.load(name, dtype="bfloat16")
    dataset = training_dataset(p32.entry) or "moving_mnist"
    test = test_data(dataset, sequences, {"mnist_dir": mnist_dir}, progress=True)
    fi, fo = p32.spec.frames_in, p32.spec.frames_out
    out = {}
    for label, p in (("float32", p32), ("bfloat16", p16)):
        m = evaluate(
            p.model,
            test,
            frames_in=fi,
            frames_out=fo,
            device=p.device,
            predict=lambda x, p=p: p.forecast_tensor(x.to(p.dtype), fo).float(),
            progress=True,
        )
        out[label] = {k: round(float(m[k]), 4) for k in ("mse", "mae", "ssim", "psnr")}
    f, b = out["float32"]["mse"], out["bfloat16"]["mse"]
    return {
        "dataset": test_set_description(dataset, test, Recipe(frames_in=fi, frames_out=fo)),
        "sequences": len(test),
        **out,
        "mse_change_pct": round(100.0 * (b - f) / f, 3) if f else None,
        "cpu": cpu_description(),
        "torch": torch.__version__,
        "date": datetime.date.today().isoformat(),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", help="zoo entries (default: every entry with released weights)")
    parser.add_argument("--sequences", type=int, default=200, help="test sequences per model (default: 200)")
    parser.add_argument("--mnist-dir", default=None, help="MNIST IDX folder (default: $STZOO_MNIST_DIR)")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    parser.add_argument(
        "--manifest",
        default=str(ROOT / "stzoo" / "weights_manifest.json"),
        help="manifest to update (default: the package's)",
    )
    args = parser.parse_args(argv)
    if args.sequences < 1:
        parser.error("--sequences must be at least 1")
    if args.threads:
        torch.set_num_threads(args.threads)
    from stzoo.tools.release import update_manifest

    path = Path(args.manifest)
    manifest = json.loads(path.read_text())
    models = manifest["models"]
    names = args.names or sorted(n for n, e in models.items() if "alias" not in e and e.get("weights"))
    bad = [n for n in names if n not in models or "alias" in models[n] or not models[n].get("weights")]
    if bad:
        parser.error(f"not zoo entries with released weights: {', '.join(bad)}")
    command = "python scripts/bf16_metrics.py " + shlex.join(argv if argv is not None else sys.argv[1:])
    for name in names:
        print(f"{name}: float32 and bfloat16 on {args.sequences} test sequences", file=sys.stderr, flush=True)
        block = {**measure(name, args.sequences, args.mnist_dir), "command": command}
        # after every model, under the manifest's lock: only this entry's bf16 block changes on disk
        update_manifest(path, lambda current, name=name, block=block: current["models"][name].update(bf16=block))
        print(
            json.dumps(
                {
                    "name": name,
                    "mse_float32": block["float32"]["mse"],
                    "mse_bfloat16": block["bfloat16"]["mse"],
                    "change_pct": block["mse_change_pct"],
                }
            )
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
