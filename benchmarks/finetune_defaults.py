"""What the default fine-tune costs and how good it is, on realistic footage nobody trained on.

For each released model and each data set, it runs ``stzoo.training.finetune.finetune(model, clips,
out_dir=...)`` with **every option at its default** (step budget, learning rate, schedule,
validation split, native size) and records:

* **time**: wall clock of the whole call (reading the data, adapting, training, validating, writing);
* **steps**: the budget ``steps="auto"`` chose, and the epochs it made;
* **val MSE** of the kept model and of **copy-last-frame** on the validation clips the default split
  held out (what the fine-tune itself reports);
* **held-out MSE / SSIM** on further clips that neither training nor validation saw, for the model
  and for copy-last-frame.

The data comes from ``tests/helpers/realistic_video.py`` (textured background, camera noise, a slowly
walking textured figure, illumination drift): ``--train-clips`` clips of ``--frames`` frames from
one scene to fine-tune on, ``--held-clips`` more from the same scene to score on. Usage::

    OMP_NUM_THREADS=1 python benchmarks/finetune_defaults.py                      # a table on stdout
    OMP_NUM_THREADS=1 python benchmarks/finetune_defaults.py --write docs/finetuning.md
    python benchmarks/finetune_defaults.py --quick                                 # smoke test

``--write`` replaces the text between ``<!-- finetune-defaults:start -->`` and
``<!-- finetune-defaults:end -->`` in FILE.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import sys
import tempfile
import time
import warnings
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from helpers.realistic_video import realistic_clips  # noqa: E402

import stzoo  # noqa: E402
from stzoo.data.clips import ClipDataset, load_videos  # noqa: E402
from stzoo.training.finetune import FinetuneWarning, finetune  # noqa: E402
from stzoo.training.train import evaluate, evaluate_copy_last  # noqa: E402

START, END = "<!-- finetune-defaults:start -->", "<!-- finetune-defaults:end -->"
DATASETS = {"RGB 32×48": dict(height=32, width=48, rgb=True), "grey 32×32": dict(height=32, width=32, rgb=False)}


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def held_out_scores(p, clips) -> tuple[dict, dict]:
    ds = ClipDataset([v for v in load_videos(clips)], p.spec.frames_in + p.spec.frames_out)
    if p.spec.channels != ds.videos[0].channels:
        raise SystemExit("channel mismatch between model and held-out clips")
    kw = dict(frames_in=p.spec.frames_in, frames_out=p.spec.frames_out, progress=False)
    model = getattr(p, "reference_model", p.model)
    return evaluate(model, ds, batch_size=16, device=p.device, **kw), evaluate_copy_last(ds, **kw)


def run_one(model_name: str, data: str, args: argparse.Namespace) -> dict:
    cfg = DATASETS[data]
    train = realistic_clips(args.train_clips, args.frames, first_seed=0, scene=0, **cfg)
    held = realistic_clips(args.held_clips, args.frames, first_seed=1000, scene=0, **cfg)
    base = stzoo.load(model_name)
    with tempfile.TemporaryDirectory() as out, warnings.catch_warnings():
        warnings.simplefilter("ignore", FinetuneWarning)
        t0 = time.perf_counter()
        tuned, hist = finetune(base, train, out_dir=out, progress=False)
        wall = time.perf_counter() - t0
    mine, persist = held_out_scores(tuned, held)
    return {
        "model": model_name,
        "data": data,
        "clips": f"{args.train_clips}×{args.frames}",
        "wall_s": wall,
        "steps": hist.plan["steps"],
        "epochs": len(hist.epochs),
        "rule": hist.plan["rule"],
        "val": hist.best,
        "val_persist": hist.persistence,
        "held": mine,
        "held_persist": persist,
        "held_clips": len(held),
    }


def table(rows: list[dict], args: argparse.Namespace) -> str:
    lines = [
        START,
        "",
        f"Machine: {cpu_name()} ({os.cpu_count()} cores), {torch.get_num_threads()} torch thread(s), "
        f"torch {torch.__version__}, "
        f"{dt.date.today().isoformat()}; a shared machine, so times are indicative. Command: "
        f"`{' '.join(['python', 'benchmarks/finetune_defaults.py', *sys.argv[1:]])}`. Every fine-tune option "
        f"at its default; {args.held_clips} held-out clips of {args.frames} frames from the same scene, never "
        "trained or validated on.",
        "",
        "| model | data | clips given | time | steps (epochs) | val MSE (copy-last) | held-out MSE | "
        "held-out copy-last MSE | held-out SSIM (copy-last) | beats copy-last on held-out |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        v = f"{r['val']['mse']:.2f} ({r['val_persist']['mse']:.2f})" if r["val"] else "–"
        lines.append(
            f"| `{r['model']}` | {r['data']} | {r['clips']} | {r['wall_s']:.0f} s | {r['steps']} "
            f"({r['epochs']}) | {v} | {r['held']['mse']:.2f} | {r['held_persist']['mse']:.2f} | "
            f"{r['held']['ssim']:.3f} ({r['held_persist']['ssim']:.3f}) | "
            f"{'yes' if r['held']['mse'] < r['held_persist']['mse'] else '**no**'} |"
        )
    lines += ["", END]
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--models", nargs="+", default=["tau-mmnist-s", "convlstm-mmnist-s"])
    ap.add_argument("--data", nargs="+", default=list(DATASETS), choices=list(DATASETS))
    ap.add_argument("--train-clips", type=int, default=4, help="clips given to finetune (default: 4)")
    ap.add_argument("--held-clips", type=int, default=3, help="further clips to score on (default: 3)")
    ap.add_argument("--frames", type=int, default=75, help="frames per clip (default: 75)")
    ap.add_argument("--quick", action="store_true", help="2 clips of 30 frames, one model, one data set")
    ap.add_argument("--write", type=Path, default=None, metavar="FILE", help="replace the table in FILE")
    args = ap.parse_args()
    if args.quick:
        args.models, args.data, args.train_clips, args.held_clips, args.frames = (
            args.models[:1],
            args.data[:1],
            2,
            1,
            30,
        )
    rows = []
    for data in args.data:
        for name in args.models:
            rows.append(run_one(name, data, args))
            print(
                f"{name} on {data}: {rows[-1]['wall_s']:.0f} s, held-out MSE {rows[-1]['held']['mse']:.2f} vs "
                f"copy-last {rows[-1]['held_persist']['mse']:.2f}",
                file=sys.stderr,
                flush=True,
            )
    text = table(rows, args)
    print(text)
    if args.write:
        doc = args.write.read_text()
        if START in doc and END in doc:
            doc = doc[: doc.index(START)] + text + doc[doc.index(END) + len(END) :]
        else:
            doc = doc.rstrip("\n") + "\n\n" + text + "\n"
        args.write.write_text(doc)


if __name__ == "__main__":
    main()
