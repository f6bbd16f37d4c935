"""Add your own architecture to stzoo, then use every zoo feature on it.

A toy forecaster is defined below (its config, the module, its declaration), registered, and then:
built with random weights, asked for a forecast, fine-tuned for a few steps on a generated video,
saved with ``save_pretrained`` and loaded back with ``stzoo.load(dir)``, and exported to ONNX.
Outputs go to the folder given with ``--out`` (default: a new temporary folder).
Run:  python examples/custom_architecture.py [--out DIR]
"""

import argparse
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

import stzoo


# ---- the architecture: config, module, declaration ----------------------------------------------
@dataclass
class StackNetConfig(stzoo.ModelConfig):
    frames: int = stzoo.cfg_field(4, lo=1, hi=100)  # frames read and predicted per call
    channels: int = stzoo.cfg_field(1, lo=1, hi=4)  # colour channels
    height: int = stzoo.cfg_field(32, lo=1, hi=1024)  # training size
    width: int = stzoo.cfg_field(32, lo=1, hi=1024)
    hidden: int = stzoo.cfg_field(16, lo=1, hi=512)  # channels of the hidden convolution


class StackNet(nn.Module):
    """The T frames stacked along channels → conv → GELU → conv: a correction to the last frame."""

    arch, recurrent = "stacknet", False

    def __init__(self, config: StackNetConfig | None = None, **overrides):
        super().__init__()
        cfg = self.config = StackNetConfig.from_dict({**(config.to_dict() if config else {}), **overrides})
        self.frames_in = self.frames_out = cfg.frames
        self.channels, tc = cfg.channels, cfg.frames * cfg.channels
        self.body = nn.Sequential(
            nn.Conv2d(tc, cfg.hidden, 3, padding=1), nn.GELU(), nn.Conv2d(cfg.hidden, tc, 3, padding=1)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # B×T×C×H×W → the next T frames, same shape
        b, t, c, h, w = x.shape
        return x[:, -1:] + self.body(x.reshape(b, t * c, h, w)).reshape(b, t, c, h, w)


stzoo.register_architecture(
    stzoo.Architecture(
        name="stacknet",
        model=StackNet,
        config=StackNetConfig,
        recipe=stzoo.Recipe(lr=3e-3),
        any_frames=False,
        spec_keys={
            "frames_in": "frames",
            "frames_out": "frames",
            "channels": "channels",
            "height": "height",
            "width": "width",
        },
        size_multiple=lambda cfg: 1,
        size_reason=lambda cfg: "StackNet",
        channel_params=lambda cfg: {},  # frames and channels mix in the first conv: re-initialised
        frames_params=lambda cfg: ["body.0.", "body.2."],
        description="a toy forecaster from the example",
    )
)

# ---- using it --------------------------------------------------------------------------------------
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
video = np.zeros((40, 32, 32), np.uint8)  # a bright square drifting right and down
for t in range(40):
    video[t, 4 + t // 3 : 12 + t // 3, (2 * t) % 24 : (2 * t) % 24 + 8] = 255
np.save(out / "video.npy", video)

p = stzoo.create("stacknet", {"hidden": 8})
print(p, "forecast:", p.predict(video[:4], horizon=8).shape)
tuned, history = p.finetune(
    str(out / "video.npy"), epochs=3, lr=3e-3, batch_size=4, out_dir=out / "tuned", progress=False
)
print(f"fine-tuned {len(history.steps)} steps, loss {history.train_losses[0]:.4f} → {history.train_losses[-1]:.4f}")
again = stzoo.load(out / "tuned")
same = np.array_equal(again.predict(video[:4]), tuned.predict(video[:4]))
print(f"loaded {out / 'tuned'} back: same forecast = {same}")
again.export_onnx(out / "stacknet.onnx")
print(f"wrote {out / 'stacknet.onnx'}")
