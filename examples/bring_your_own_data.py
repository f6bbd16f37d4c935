"""Check data before training on it, then measure a baseline on a benchmark file in OpenSTL's layout.

The script writes two small arrays to ``--out`` (default: a new temporary folder): ``raw_counts.npy``, clips
of made-up counts up to a few thousand (the mistake of OpenSTL issue #31: data that was never scaled), and
``scaled.npy``, the same clips min-max scaled to [0, 1]. The data doctor (``stzoo data check``) reports
the first as a problem and the second as ready. It then writes a tiny ``taxibj/dataset.npz`` in OpenSTL's
layout (made-up flows in [-1, 1]; the real file comes from OpenSTL's download script) and measures the
copy-last-frame baseline on it with stzoo's and OpenSTL's metric conventions.

    python examples/bring_your_own_data.py [--out DIR]
"""

import argparse
import json
import tempfile
from pathlib import Path

import numpy as np

from stzoo.data.doctor import check_path
from stzoo.data.registry import get_dataset
from stzoo.training.evaluation import evaluate_copy_last

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

# 1. your own clips: 8 clips of 20 frames, 1 channel, 32×32, a blob drifting right, in raw counts
rng = np.random.default_rng(0)
y, x = np.mgrid[:32, :32]
clips = np.stack(
    [np.stack([np.exp(-((x - 4 - t - c) ** 2 + (y - 16) ** 2) / 20.0) * 3000 for t in range(20)]) for c in range(8)]
)[:, :, None].astype(np.float32)  # N×T×C×H×W
np.save(out / "raw_counts.npy", clips)
np.save(out / "scaled.npy", (clips - clips.min()) / (clips.max() - clips.min()))
for name in ("raw_counts.npy", "scaled.npy"):
    report = check_path(out / name, layout="NTCHW")
    print(report.text(), end="\n\n")

# 2. a benchmark file in OpenSTL's layout: taxibj/dataset.npz under a data root
(out / "taxibj").mkdir(exist_ok=True)
flows = {
    k: rng.uniform(-1, 1, (n, 4, 2, 32, 32)).astype(np.float32)
    for k, n in (("X_train", 16), ("Y_train", 16), ("X_test", 8), ("Y_test", 8))
}
np.savez(out / "taxibj" / "dataset.npz", **flows)
spec = get_dataset("taxibj")
test = spec.test_data(None, {"data_dir": out})
result = evaluate_copy_last(test, spec.frames_in, spec.frames_out, progress=False, openstl=spec.openstl_metrics)
print(f"copy-last-frame on {len(test)} made-up TaxiBJ sequences ({spec.frames_in}→{spec.frames_out}):")
print(json.dumps(result, indent=2))
print(f"wrote raw_counts.npy, scaled.npy and taxibj/dataset.npz to {out}")
