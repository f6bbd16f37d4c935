"""Does a default fine-tune beat copying the last frame on footage nobody trained on, and how long does it take?

For each footage set it runs ``stzoo.training.finetune.finetune(model, clips, out_dir=...)`` with **every
option at its default** on the first part of each clip, and scores the **held-out windows at the end of
each clip** (never trained or validated on): MSE and SSIM of

* **copy-last** (every future frame = the last observed one),
* the **base** model before fine-tuning (adapted to the footage's channels and size, zero-shot),
* the **fine-tuned** model,

with the wall time of the whole call (reading, adapting, timing, training, validating, writing).

Footage (nothing is downloaded, nothing is committed):

* ``openstl-examples``: the five example clips in OpenSTL's repository (``examples/train/*.avi``,
  ``examples/val/*.avi``, ``examples/test/*.avi``; Apache-2.0), read from a local git mirror with
  ``git show`` at run time (``--openstl-mirror``): 75 frames each, 32 × 32 RGB, MPEG-4, a person walking
  past a static camera (KTH-like). All five are given to one fine-tune (their first ``75 − held`` frames;
  the default split validates on the end of each of them);
* ``synthetic-grey`` / ``synthetic-rgb``: one 120-frame clip at 72 × 88 made by
  ``tests/helpers/realistic_video.py`` (textured background, camera noise, a slowly walking textured
  figure, light drift), grey and RGB.

Usage (the CPU is shared: one thread, under nice, and the load is recorded; ``--rows`` saves a run's rows
so that footage sets run apart can be tabled together with ``--from``)::

    nice -n 10 python benchmarks/finetune_defaults.py --threads 1
    nice -n 10 python benchmarks/finetune_defaults.py --threads 1 --write docs/finetuning.md
    python benchmarks/finetune_defaults.py --quick                        # smoke test (seconds)
    # a busy machine: the plan a quiet one would make, each footage set in its own process, one table
    nice -n 10 python benchmarks/finetune_defaults.py --threads 1 --budget-clock cpu \
        --footage synthetic-rgb --rows rgb.json                            # (likewise the other sets)
    python benchmarks/finetune_defaults.py --from openstl.json grey.json rgb.json --write docs/finetuning.md

``--write`` replaces the text between ``<!-- finetune-defaults:start -->`` and
``<!-- finetune-defaults:end -->`` in FILE.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from helpers.realistic_video import realistic_video  # noqa: E402

import stzoo  # noqa: E402
from stzoo.data.clips import ClipDataset, convert_video, load_videos  # noqa: E402
from stzoo.runtime import cpu_description  # noqa: E402
from stzoo.training.adapt import adapt  # noqa: E402
from stzoo.training.evaluation import evaluate, evaluate_copy_last  # noqa: E402
from stzoo.training.finetune import FinetuneWarning, finetune  # noqa: E402

START, END = "<!-- finetune-defaults:start -->", "<!-- finetune-defaults:end -->"
OPENSTL_MIRROR = Path("/work/.mirror/chengtan9907+OpenSTL/repo")
OPENSTL_CLIPS = (
    "examples/train/train_example1.avi",
    "examples/train/train_example2.avi",
    "examples/val/val_example1.avi",
    "examples/val/val_example2.avi",
    "examples/test/test_example.avi",
)


def openstl_clips(mirror: Path, folder: Path) -> list[np.ndarray]:
    """OpenSTL's example clips, written from the git mirror into ``folder`` and decoded (T×H×W×3 uint8)."""
    clips = []
    for path in OPENSTL_CLIPS:
        blob = subprocess.run(
            ["git", "-C", str(mirror), "show", f"HEAD:{path}"], check=True, capture_output=True
        ).stdout
        target = folder / Path(path).name
        target.write_bytes(blob)
        (video,) = load_videos(target, channels=3)
        clips.append((video.frames.permute(0, 2, 3, 1).numpy() * 255).round().astype(np.uint8))
    return clips


def footage(name: str, args: argparse.Namespace, tmp: Path) -> tuple[list[np.ndarray], str]:
    """The clips of one footage set and a description (source, license, size)."""
    if name == "openstl-examples":
        clips = openstl_clips(args.openstl_mirror, tmp)
        desc = "OpenSTL examples/*.avi (Apache-2.0): 5 clips × 75 frames, 32×32 RGB, person walking (KTH-like)"
    else:
        rgb = name.endswith("rgb")
        clips = [realistic_video(args.frames, 72, 88, rgb=rgb, seed=7, scene=3, figure=5)]
        desc = f"tests/helpers/realistic_video.py: 1 clip × {args.frames} frames, 72×88 {'RGB' if rgb else 'grey'}"
    if args.quick:
        clips = [c[:, :32, :32] for c in clips[:2]]
        desc += " (--quick: cut to 32×32)"
    return clips, desc


def scores(p, held: list[np.ndarray]) -> list[tuple[dict, dict]]:
    """Per clip: (model metrics, copy-last metrics) on the held-out windows."""
    window = p.spec.frames_in + p.spec.frames_out
    out = []
    for clip in held:
        (v,) = load_videos(clip, channels=p.spec.channels)
        ds = ClipDataset([convert_video(v, channels=p.spec.channels)], window)
        kw = dict(frames_in=p.spec.frames_in, frames_out=p.spec.frames_out, progress=False)
        model = getattr(p, "reference_model", p.model)
        out.append((evaluate(model, ds, batch_size=8, device=p.device, **kw), evaluate_copy_last(ds, **kw)))
    return out


def run_one(model_name: str, name: str, args: argparse.Namespace) -> list[dict]:
    with tempfile.TemporaryDirectory() as tmp:
        clips, desc = footage(name, args, Path(tmp))
        names = [Path(c).name for c in OPENSTL_CLIPS] if name == "openstl-examples" and not args.quick else []
        base = stzoo.load(model_name)
        window = base.spec.frames_in + base.spec.frames_out
        held_n = window + args.held_windows - 1
        given = [c[:-held_n] for c in clips]
        held = [c[-held_n:] for c in clips]
        t_c = 3 if clips[0].ndim == 4 else 1
        zero_shot, _ = adapt(base, channels=t_c, height=clips[0].shape[1], width=clips[0].shape[2])
        before = scores(zero_shot, held)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FinetuneWarning)
            t0, c0 = time.perf_counter(), time.process_time()
            load0 = os.getloadavg()[0]
            quick = {"time_budget": 0.3} if args.quick else {}  # the smoke test only: every default otherwise
            chosen = {
                k: v
                for k, v in (
                    ("select", args.select),
                    ("split", args.split),
                    ("budget_clock", args.budget_clock),
                    ("seed", args.seed),
                )
                if v is not None
            }
            tuned, hist = finetune(base, given, out_dir=Path(tmp) / "out", progress=not args.quiet, **quick, **chosen)
            wall, cpu = time.perf_counter() - t0, time.process_time() - c0
            load = (load0, os.getloadavg()[0])
        after = scores(tuned, held)
        if args.keep is not None:  # the fine-tune's history (every validation, per video) for a closer look
            args.keep.mkdir(parents=True, exist_ok=True)
            shutil.copy(Path(tmp) / "out" / "history.json", args.keep / f"{model_name}-{name}.json")
    rows = []
    for i, ((b, c), (a, _)) in enumerate(zip(before, after)):
        rows.append(
            {
                "model": model_name,
                "footage": name,
                "desc": desc,
                "clip": i + 1,
                "name": names[i] if names else "",
                "clips": len(clips),
                "given": f"{len(given)}×{given[0].shape[0]}",
                "held": a["sequences"],
                "copy": c,
                "base": b,
                "tuned": a,
                "wall_s": wall,
                "cpu_s": cpu,
                "steps": hist.plan["steps"],
                "kept": hist.kept,
                "estimate_s": hist.plan.get("estimate_s"),
                "step_s": hist.plan.get("step_s"),
                "load": load,
                "split": hist.data.get("split"),
                "selection": hist.selection,
                "best_epoch": hist.best_epoch,
                "epochs": len(hist.epochs),
                "held_windows": args.held_windows,
            }
        )
    return rows


def _kept_state(r: dict) -> str:
    """Which validated state the folder holds, in words (epoch 0 of a fine-tuned run: stage 1's head)."""
    if r["best_epoch"] == 0 and r["kept"] == "fine-tuned":
        return f"stage 1's state (the head trained alone; none of stage 2's {r['epochs']} epochs beat it)"
    if r["best_epoch"] in (0, None):
        return "copy-last (the persistence-equivalent model)"
    return f"stage 2's epoch {r['best_epoch']} of {r['epochs']}"


def table(rows: list[dict], runs: list[dict]) -> str:
    """The Markdown block: ``rows`` (one per clip) from the benchmark ``runs`` (command, load, threads)."""
    described = dict.fromkeys(
        f"* `{r['footage']}`: {r['desc']}. Fine-tune: {r['steps']} steps ({r['step_s']:.3g} s per step timed "
        f"before the start, stage 2), kept {_kept_state(r)}; {r['split']}; kept state: "
        f"{r['selection'] or '(no validation)'}; load average {r['load'][0]:.1f} → {r['load'][1]:.1f}"
        for r in rows
    )
    lines = [
        START,
        "",
        f"Machine: {cpu_description()}, {os.cpu_count()} cores, torch {torch.__version__}, "
        f"{dt.date.today().isoformat()}. "
        + " ".join(
            f"Command: `{r['command']}` ({r['threads']} torch thread(s); load average (1/5/15 min) "
            f"{'/'.join(f'{v:.1f}' for v in r['load'][0])} at its start, "
            f"{'/'.join(f'{v:.1f}' for v in r['load'][1])} at its end)."
            for r in runs
        )
        + " A shared machine: wall times are indicative, CPU time (time.process_time of the benchmark process "
        "over the whole fine-tune call: reading, adapting, timing, training, validating, writing) is the "
        "measure. Every fine-tune option at its default but those named in the command; scored on the "
        f"{rows[0]['held_windows']} held-out windows at the end of each clip (never trained or validated on). "
        "MSE is summed per frame (stzoo.metrics), lower is better; SSIM higher is better.",
        "",
        *described,
        "",
        "| model | footage | clip | frames given | held-out windows | copy-last MSE / SSIM | base before MSE / SSIM "
        "| fine-tuned MSE / SSIM | beats copy-last (MSE, SSIM) | steps | kept | time (estimate) | CPU time |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        c, b, a = r["copy"], r["base"], r["tuned"]
        clip = f"{r['clip']}/{r['clips']}" + (f" `{r['name']}`" if r["name"] else "")
        beats = ("yes" if a["mse"] < c["mse"] else "**no**") + ", " + ("yes" if a["ssim"] > c["ssim"] else "**no**")
        est = f" ({r['estimate_s'] / 60:.1f} min)" if r.get("estimate_s") else ""
        lines.append(
            f"| `{r['model']}` | {r['footage']} | {clip} | {r['given']} | {r['held']} | "
            f"{c['mse']:.2f} / {c['ssim']:.3f} | {b['mse']:.1f} / {b['ssim']:.3f} | {a['mse']:.2f} / {a['ssim']:.3f} | "
            f"{beats} | {r['steps']} | {r['kept']} | {r['wall_s'] / 60:.1f} min{est} | {r['cpu_s'] / 60:.1f} min |"
        )
    lines += ["", END]
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--models", nargs="+", default=["tau-mmnist"])
    ap.add_argument(
        "--footage",
        nargs="+",
        default=["openstl-examples", "synthetic-grey", "synthetic-rgb"],
        choices=["openstl-examples", "synthetic-grey", "synthetic-rgb"],
    )
    ap.add_argument("--frames", type=int, default=120, help="frames of a synthetic clip (default: 120)")
    ap.add_argument("--held-windows", type=int, default=5, help="held-out windows per clip (default: 5)")
    ap.add_argument("--openstl-mirror", type=Path, default=OPENSTL_MIRROR, help="a git mirror of OpenSTL")
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    ap.add_argument("--quick", action="store_true", help="two 32×32 clips, synthetic grey only (seconds)")
    ap.add_argument("--quiet", action="store_true", help="no progress bars")
    ap.add_argument("--keep", type=Path, default=None, metavar="DIR", help="copy each history.json into DIR")
    ap.add_argument("--select", default=None, help="finetune's select (default: its default)")
    ap.add_argument("--split", default=None, help="finetune's split (default: its default)")
    ap.add_argument("--budget-clock", default=None, help="finetune's budget_clock (default: its default)")
    ap.add_argument("--seed", type=int, default=None, help="finetune's seed (default: its default)")
    ap.add_argument("--rows", type=Path, default=None, metavar="FILE", help="also save the rows as JSON")
    ap.add_argument(
        "--from", dest="from_", type=Path, nargs="+", default=None, metavar="FILE", help="table from saved rows"
    )
    ap.add_argument("--write", type=Path, default=None, metavar="FILE", help="replace the table in FILE")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.quick:
        args.footage, args.frames = ["synthetic-grey"], 50
    load0 = os.getloadavg()
    rows, runs = [], []
    if args.from_:
        for f in args.from_:
            saved = json.loads(f.read_text())
            rows += saved["rows"]
            runs.append(saved["run"])
        args.footage = []
    for name in args.footage:
        for model in args.models:
            new = run_one(model, name, args)
            rows += new
            for r in new:
                print(
                    f"{model} on {name} clip {r['clip']}: {r['wall_s'] / 60:.1f} min, held-out MSE "
                    f"{r['tuned']['mse']:.2f} (copy-last {r['copy']['mse']:.2f}), SSIM {r['tuned']['ssim']:.3f} "
                    f"({r['copy']['ssim']:.3f}); base before MSE {r['base']['mse']:.1f}; {r['steps']} steps, "
                    f"CPU {r['cpu_s'] / 60:.1f} min, kept {r['kept']}",
                    file=sys.stderr,
                    flush=True,
                )
    if not args.from_:
        runs = [
            {
                "command": " ".join(["python", "benchmarks/finetune_defaults.py", *sys.argv[1:]]),
                "threads": torch.get_num_threads(),
                "load": [load0, os.getloadavg()],
            }
        ]
        if args.rows:
            args.rows.write_text(json.dumps({"run": runs[0], "rows": rows}, indent=1))
    text = table(rows, runs)
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
