"""Fine-tune a zoo model on your own video, then load the result and forecast with it.

This example makes its own "video" — an RGB GIF of shapes bouncing around, written to the output
folder (``--out``, default: a new temporary folder) — and fine-tunes the grey Moving MNIST model
``convlstm-mmnist`` on it for a few steps (the model is adapted from 1 to 3 channels on the way). Put
your own GIF / MP4 / folder of frames in place of ``my_video.gif`` and raise ``epochs`` for a real run.

Runs offline (the small released weights ship inside the package):
python examples/finetune_own_video.py [--out DIR]
"""

import argparse
import tempfile
from pathlib import Path

import numpy as np
import torch

import stzoo
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
torch.manual_seed(0)

# 1. A 60-frame, 64×64 RGB video: a red square and a blue bar bouncing off the walls.
T, S = 60, 64
video = np.zeros((T, S, S, 3), dtype=np.uint8)
shapes = [  # y, x, dy, dx, height, width, colour
    [5, 8, 2, 3, 10, 10, (255, 60, 60)],
    [40, 30, -3, 1, 6, 18, (60, 120, 255)],
]
for t in range(T):
    for s in shapes:
        y, x, dy, dx, h, w, colour = s
        video[t, y : y + h, x : x + w] = colour
        if not 0 <= y + dy <= S - h:
            s[2] = dy = -dy
        if not 0 <= x + dx <= S - w:
            s[3] = dx = -dx
        s[0], s[1] = y + dy, x + dx
write_gif(video, out / "my_video.gif", fps=10)
print(f"wrote {out / 'my_video.gif'}: {T} frames of {S}×{S} RGB")

# 2. Fine-tune. The last third of the video is held out for validation (split by time).
base = stzoo.load("convlstm-mmnist")
tuned, history = base.finetune(
    out / "my_video.gif",
    epochs=4,
    lr=1e-3,
    batch_size=4,
    stride=2,
    val=0.34,
    out_dir=out / "my_convlstm",
    progress=False,
)
print(f"adapted: {history.adaptation['changes']}; converted layers: {sorted(history.adaptation['converted'])}")
print(f"{len(history.steps)} steps, training loss {history.train_losses[0]:.4f} → {history.train_losses[-1]:.4f}")
if history.best is not None:
    print(
        f"validation after epoch {history.best_epoch}: MSE {history.best['mse']:.2f}, SSIM {history.best['ssim']:.3f}"
    )

# 3. The output folder is a normal checkpoint: load it and forecast the frames after the video.
p = stzoo.load(out / "my_convlstm")
future = p.predict(video[-10:])  # (10, 64, 64, 3) uint8
write_gif(future, out / "my_forecast.gif", fps=10)
print(f"loaded {p}; wrote {out / 'my_forecast.gif'} {future.shape}")
