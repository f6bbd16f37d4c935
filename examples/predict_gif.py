"""Forecast a short clip with a released zoo model and save it as an animated GIF and a paper-style strip.

The clip is Moving MNIST from the stzoo test set when MNIST is found (``$STZOO_MNIST_DIR``, or the
folder given as the first argument); otherwise two synthetic shapes drifting across a 64×64 canvas.
Nothing is downloaded.

    python examples/predict_gif.py [PATH/TO/MNIST] [--out DIR]

Writes to ``--out`` (default: a new temporary folder): clip.gif (the 20-frame clip), future.gif (the
predicted frames), forecast.gif (input then forecast, beside the truth, labelled) and strip.png (input |
ground truth | prediction | absolute error).
"""

import argparse
import tempfile
from pathlib import Path

import numpy as np

import stzoo
from stzoo.errors import StzooError
from stzoo.frames import write_gif


def synthetic_clip(length: int = 20, size: int = 64) -> np.ndarray:
    """A bright square and a dimmer disc moving in straight lines: length×size×size uint8."""
    yy, xx = np.mgrid[:size, :size]
    clip = np.zeros((length, size, size), dtype=np.uint8)
    for t in range(length):
        clip[t, 8 + t : 20 + t, 4 + 2 * t : 16 + 2 * t] = 255
        disc = (yy - (48 - t)) ** 2 + (xx - (50 - t)) ** 2 < 36
        clip[t][disc] = 180
    return clip


def moving_mnist_clip(root: str | None) -> np.ndarray | None:
    """Sequence 0 of the stzoo Moving MNIST test set, or None if MNIST is not found."""
    from stzoo.data import moving_mnist_test_set

    try:
        return moving_mnist_test_set(root, num_sequences=1).sequence(0)
    except (StzooError, OSError) as exc:
        print(f"MNIST not found ({type(exc).__name__}); using synthetic shapes instead")
        return None


parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
parser.add_argument(
    "mnist_dir",
    nargs="?",
    default=None,
    help="folder of the MNIST IDX files (default: $STZOO_MNIST_DIR, else synthetic shapes)",
)
parser.add_argument(
    "--out",
    default=None,
    metavar="DIR",
    help="folder for what this example writes (default: a new temporary folder, printed)",
)
args = parser.parse_args()
out = Path(args.out) if args.out else Path(tempfile.mkdtemp(prefix="stzoo-example-"))
out.mkdir(parents=True, exist_ok=True)

clip = moving_mnist_clip(args.mnist_dir)
source = "Moving MNIST test sequence 0"
if clip is None:
    clip, source = synthetic_clip(), "synthetic shapes"

p = stzoo.load("tau-mmnist")
n_in, n_out = p.spec.frames_in, p.spec.frames_out
past, truth = clip[:n_in], clip[n_in : n_in + n_out]

write_gif(clip, out / "clip.gif", fps=5)
future = p.predict(past)  # (10, 64, 64) uint8, same layout and dtype as past
write_gif(future, out / "future.gif", fps=5)
stzoo.viz.save_gif(past, future, out / "forecast.gif", target=truth, fps=4)
stzoo.viz.save_strip(past, future, out / "strip.png", target=truth)

# MSE summed over a frame's pixels (values in [0, 1]) and averaged over frames, as in the zoo table
mse = float((((future.astype(np.float64) - truth) / 255.0) ** 2).sum(axis=(1, 2)).mean())
print(f"{p.name} on {source}: {n_in} frames in, {n_out} predicted; MSE per frame {mse:.1f}")
print(f"wrote clip.gif, future.gif, forecast.gif and strip.png in {out}")
