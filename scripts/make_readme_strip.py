"""Regenerate the README / docs strip image from the shipped weights.

Predicts one sequence of the stzoo Moving MNIST test set (MNIST test digits, seed 20261123) with a
released zoo model and draws input | ground truth | prediction | |error| with stzoo.frames.viz.

    python scripts/make_readme_strip.py --mnist-dir PATH/TO/MNIST          # writes docs/assets/
    python scripts/make_readme_strip.py --model convlstm-mmnist --index 7 --out /tmp/strip.png

MNIST is looked up in --mnist-dir, else $STZOO_MNIST_DIR. The prediction runs on the CPU in float32.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import stzoo
from stzoo.data import moving_mnist_test_set
from stzoo.frames.viz import save_strip

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUT = ROOT / "docs" / "assets" / "tau-mmnist-strip.png"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="tau-mmnist", help="zoo name with released weights")
    parser.add_argument("--index", type=int, default=0, help="which test sequence (0-based)")
    parser.add_argument("--mnist-dir", default=None, help="folder of the MNIST IDX files (or $STZOO_MNIST_DIR)")
    parser.add_argument("--out", default=str(DEFAULT_OUT), help="PNG to write")
    args = parser.parse_args()

    p = stzoo.load(args.model)
    seq = moving_mnist_test_set(args.mnist_dir, num_sequences=args.index + 1).sequence(args.index)  # T×64×64 uint8
    n_in, n_out = p.spec.frames_in, p.spec.frames_out
    inputs, truth = seq[:n_in], seq[n_in : n_in + n_out]
    future = p.predict(inputs)
    out = save_strip(inputs, future, args.out, target=truth)
    print(f"{p.name}: test sequence {args.index}, {n_in} frames in, {n_out} predicted -> {out}")


if __name__ == "__main__":
    main()
