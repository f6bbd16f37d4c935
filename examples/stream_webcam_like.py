"""Rolling forecasts from a live source, frame by frame, with stzoo.Forecaster.

A generated video (two squares bouncing around a 64×64 frame) plays the part of a webcam: its
frames arrive one at a time, each is pushed into a Forecaster, and every 5 frames the next 10
frames are forecast and scored against what really came next. The ConvLSTM carries its hidden
state across the whole stream, so a new frame costs one recurrent step. The last forecast is
saved as forecast.gif in ``--out`` (default: a new temporary folder). Runs offline with the shipped
small weights.

    python examples/stream_webcam_like.py [--out DIR]
"""

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

import stzoo
from stzoo.frames import write_gif


def camera(n_frames: int = 40, size: int = 64):
    """Yield uint8 H×W frames of two squares bouncing off the walls, like a live source."""
    pos = np.array([[5.0, 10.0], [40.0, 30.0]])
    vel = np.array([[2.0, 3.0], [-3.0, 2.0]])
    for _ in range(n_frames):
        frame = np.zeros((size, size), dtype=np.uint8)
        for y, x in pos.astype(int):
            frame[y : y + 10, x : x + 10] = 255
        yield frame
        pos += vel
        for i in range(2):
            for k in range(2):
                if not 0 <= pos[i, k] <= size - 10:
                    vel[i, k] = -vel[i, k]
                    pos[i, k] = np.clip(pos[i, k], 0, size - 10)


def main() -> None:
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
    predictor = stzoo.load("convlstm-mmnist")
    forecaster = stzoo.Forecaster(predictor, horizon=10, min_frames=5)
    history, pending = [], []  # pending: (frame index, forecast) waiting for the truth to arrive
    start = time.perf_counter()
    for t, frame in enumerate(camera(), start=1):
        forecaster.push(frame)
        history.append(frame)
        for made_at, future in list(pending):  # score forecasts whose 10 frames have all arrived
            if t == made_at + 10:
                truth = np.stack(history[made_at:t]).astype(np.float64) / 255
                mse = np.mean((future.astype(np.float64) / 255 - truth) ** 2)
                print(f"forecast made after frame {made_at:2d}: MSE over frames {made_at + 1}-{t} = {mse:.4f}")
                pending.remove((made_at, future))
        if forecaster.ready and t % 5 == 0:
            pending.append((t, forecaster.forecast()))
    elapsed = time.perf_counter() - start
    write_gif(pending[-1][1], out / "forecast.gif")
    print(
        f"pushed {forecaster.frames_seen} frames ({forecaster.context} context) in {elapsed:.2f} s; "
        f"wrote the last forecast (made after frame {pending[-1][0]}) to {out / 'forecast.gif'}"
    )


if __name__ == "__main__":
    main()
