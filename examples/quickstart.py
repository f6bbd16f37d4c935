"""Forecast 10 Moving-MNIST-like frames with the released tau-mmnist weights.

Runs offline: the small released weights ship inside the package (stzoo/weights), whether installed
from a checkout or a wheel; larger ones come from the Hugging Face Hub.  python examples/quickstart.py
Writes nothing.
"""

import numpy as np

import stzoo

print(stzoo.list_models(pretrained=True))
p = stzoo.load("tau-mmnist")

# Two bright squares drifting right: 10 frames of 64×64 uint8.
frames = np.zeros((10, 64, 64), dtype=np.uint8)
for t in range(10):
    frames[t, 10:20, 5 + 2 * t : 15 + 2 * t] = 255
    frames[t, 40:50, 30 + t : 40 + t] = 255

future = p.predict(frames)  # (10, 64, 64) uint8, the next 10 frames
longer = p.predict(frames, horizon=25)  # autoregressive rollout
print(p, future.shape, future.dtype, longer.shape)
