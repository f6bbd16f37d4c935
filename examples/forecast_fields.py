"""Forecast a generated physical field (Gray–Scott reaction–diffusion) with a released zoo model, past
the horizon it was trained on, and compare each lead time with copying the last frame.

Sequence 0 of the fixed Gray–Scott test set is simulated here (U and V, 64×64, a few seconds; no
download), ``tau-grayscott-s`` forecasts 30 frames after 10 (3× its trained 10: its own predictions are
fed back in), and the script prints the MSE at a few lead times and writes, to ``--out`` (default: a new
temporary folder), rollout.gif (the forecast beside the simulation, U | V) and strip.png (input | truth |
prediction | error for the first 10 frames).

    python examples/forecast_fields.py [--out DIR]
"""

import argparse
import tempfile
from pathlib import Path

import numpy as np

import stzoo
from stzoo.data import grayscott_test_set
from stzoo.data.fields import channel_ranges, preview_frames
from stzoo.frames import write_gif

parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
parser.add_argument(
    "--out",
    default=None,
    metavar="DIR",
    help="folder for what this example writes (default: a new temporary folder, printed)",
)
args = parser.parse_args()
out = Path(args.out) if args.out else Path(tempfile.mkdtemp(prefix="stzoo-example-"))
out.mkdir(parents=True, exist_ok=True)

p = stzoo.load("tau-grayscott-s")
n_in, horizon = p.spec.frames_in, 3 * p.spec.frames_out
seq = grayscott_test_set(num_sequences=1, seq_len=n_in + horizon).sequence(0)  # 40×2×64×64 float32 in [0, 1]
past, truth = seq[:n_in], seq[n_in:]
future = p.predict(past, horizon=horizon)  # 30×2×64×64 float32

# MSE per frame: squared error summed over the 2×64×64 values, as in the model card's rollout table
mse = ((np.clip(future, 0, 1) - truth) ** 2).sum(axis=(1, 2, 3))
copy = ((past[-1:] - truth) ** 2).sum(axis=(1, 2, 3))
for t in (1, 10, 20, 30):
    print(f"lead time {t:2d}: model MSE {mse[t - 1]:7.2f}, copy-last MSE {copy[t - 1]:7.2f}")

ranges = channel_ranges(seq)  # one display scale (the simulation's) for both
shown_truth, shown_pred = preview_frames(truth, ranges), preview_frames(future, ranges)
gap = np.ones((horizon, shown_truth.shape[1], 4), dtype=np.float32)
write_gif(np.concatenate([shown_pred, gap, shown_truth], axis=2), out / "rollout.gif", fps=5)
stzoo.viz.save_strip(preview_frames(past, ranges), shown_pred[:10], out / "strip.png", target=shown_truth[:10])
print(f"{p.name}: {n_in} frames in, {horizon} forecast (prediction | simulation in rollout.gif)")
print(f"wrote rollout.gif and strip.png in {out}")
