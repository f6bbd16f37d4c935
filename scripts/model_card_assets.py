"""Measure a released zoo model's rollout and draw its forecast strip, for its model card.

For zoo entry NAME (released weights, a dataset of its own: ``stzoo data list``) this

1. rolls the model out for ``--horizon-factor`` × ``frames_out`` frames (default 3×: 30 frames after 10
   inputs) on the first ``--sequences`` sequences of its dataset's test set, made that much longer
   (the same seeds, so their first 20 frames are the test set's own), and writes the per-lead-time MSE
   of the model and of copying the last frame into the manifest entry's ``rollout`` block
   (:func:`stzoo.training.evaluation.rollout_errors`);
2. draws test sequence ``--index`` as input | truth | prediction | |error| into
   ``docs/assets/NAME-strip.png`` and names it in the entry's ``strip`` field. Two-channel frames
   (Gray–Scott's U and V) are drawn side by side, each channel stretched by the ground truth's own
   minimum and maximum (:func:`stzoo.data.fields.channel_ranges`), the prediction on the same scale.

Then regenerate the pages: ``stzoo-maint zoo-table --write README.md --docs docs``.

    python scripts/model_card_assets.py tau-grayscott-s
    python scripts/model_card_assets.py tau-kolmogorov-s --sequences 100 --threads 2
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("name", help="zoo entry with released weights and a generated dataset")
    parser.add_argument("--sequences", type=int, default=100, help="test sequences of the rollout (default: 100)")
    parser.add_argument(
        "--horizon-factor", type=int, default=3, help="rollout length in multiples of frames_out (default: 3)"
    )
    parser.add_argument("--index", type=int, default=0, help="test sequence drawn in the strip (default: 0)")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    parser.add_argument(
        "--manifest",
        default=str(ROOT / "stzoo" / "weights_manifest.json"),
        help="manifest to update (default: the package's)",
    )
    parser.add_argument(
        "--assets", default=str(ROOT / "docs" / "assets"), help="folder of the strip PNG (default: docs/assets)"
    )
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)

    import stzoo
    from stzoo.data.fields import cached_test_set, channel_ranges, preview_frames
    from stzoo.frames.viz import save_strip
    from stzoo.models import Recipe
    from stzoo.tools.release import update_manifest
    from stzoo.training.evaluation import rollout_errors, test_set_description

    manifest_path = Path(args.manifest)
    manifest = json.loads(manifest_path.read_text())
    entry = manifest["models"].get(args.name)
    if entry is None or "alias" in entry or not entry.get("weights"):
        parser.error(f"{args.name} is not a zoo entry with released weights in {manifest_path}")
    dataset = entry.get("dataset")
    if not dataset or dataset == "moving_mnist":
        parser.error(
            f"{args.name} has no generated dataset (its 'dataset' field); this script is for "
            "grayscott / kolmogorov entries"
        )
    if args.sequences < 1 or args.horizon_factor < 1:
        parser.error("--sequences and --horizon-factor must be at least 1")

    p = stzoo.load(args.name)
    fi, fo = p.spec.frames_in, p.spec.frames_out
    horizon = args.horizon_factor * fo
    long_test = cached_test_set(dataset, args.sequences, seq_len=fi + horizon, progress=True)
    result = rollout_errors(p, long_test, horizon)
    recipe = Recipe(frames_in=fi, frames_out=fo)
    command = "python scripts/model_card_assets.py " + shlex.join(argv if argv is not None else sys.argv[1:])
    entry["rollout"] = {
        "dataset": test_set_description(dataset, long_test, recipe).replace(f"{fi}→{fo}", f"{fi}→{horizon}"),
        **result,
        "torch": torch.__version__,
        "command": command,
    }

    seq = long_test.sequence(args.index)[: fi + fo]  # T×C×H×W float in [0, 1]
    x = torch.from_numpy(np.ascontiguousarray(seq[:fi]))[None].to(p.device, p.dtype)
    pred = p.forecast_tensor(x, fo)[0].float().cpu().numpy()
    ranges = channel_ranges(seq)
    shown = preview_frames(np.concatenate([seq, pred]), ranges)  # one display scale for all rows
    assets = Path(args.assets)
    assets.mkdir(parents=True, exist_ok=True)
    strip = assets / f"{args.name}-strip.png"
    save_strip(shown[:fi], shown[fi + fo :], strip, target=shown[fi : fi + fo])
    entry["strip"] = {
        "path": f"assets/{strip.name}",
        "sequence": args.index,
        "dataset": test_set_description(dataset, long_test, recipe),
    }
    update_manifest(
        manifest_path,
        lambda current: current["models"][args.name].update(rollout=entry["rollout"], strip=entry["strip"]),
    )  # under the manifest's lock; only these two fields
    ratio = [c / m if m > 0 else float("inf") for m, c in zip(result["mse"], result["copy_last_mse"])]
    print(
        json.dumps(
            {
                "name": args.name,
                "strip": str(strip),
                "horizon": horizon,
                "mse_first_last": [result["mse"][0], result["mse"][-1]],
                "copy_last_over_model_first_last": [round(ratio[0], 2), round(ratio[-1], 2)],
            },
            indent=2,
        )
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
