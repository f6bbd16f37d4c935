"""One command for a short GPU session: train a zoo entry, measure it, and pack the result for transfer.

On the GPU machine (torch, einops, safetensors, huggingface-hub preinstalled; nothing is installed),
from the repository root, with the MNIST IDX files copied into an ignored folder of the repo:

    python scripts/gpu_train.py train --mnist-dir data/mnist --out "$OUT" --minutes 8

It runs ``stzoo train NAME --device cuda --time-budget MIN`` (bf16 autocast where the GPU has it, a large
batch with a matched learning rate, training batches drawn ahead by worker processes), which stops
annealed and checkpointed at the budget and measures the final weights on the test set *on the GPU*;
then ``stzoo-maint release`` into a copy of the manifest (it reuses that measurement: same weights, same test
set), and writes to ``--out`` at most 8 files of at most 16 MiB:

    NAME-<sha12>.safetensors.part0 … partK   the released weights, split into ≤ 16 MiB pieces
    entry.json                       the zoo entry as released (sha256, size, metrics, training ledger)
    run.json, summary.json, log.jsonl  the run's own records

Back on the development machine, with the files fetched into DIR:

    python scripts/gpu_train.py install --from DIR    # joins the parts, checks the sha256, updates the zoo

Test the same path on a CPU first (a 1-minute budget):

    python scripts/gpu_train.py train --mnist-dir PATH --out /tmp/gpu-out --device cpu --minutes 1 \
        --batch-size 16 --data-workers 0 --eval-sequences 100
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import shutil
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run from a checkout without installing it

PART_BYTES = 16 * 1024 * 1024  # the transfer's per-file limit
MAX_FILES = 8


def split_file(path: Path, out: Path, part_bytes: int = PART_BYTES) -> list[Path]:
    """``path`` as ``out/<name>.part0 …``, each at most ``part_bytes``."""
    parts, data = [], path.read_bytes()
    for i in range(max(1, math.ceil(len(data) / part_bytes))):
        part = out / f"{path.name}.part{i}"
        part.write_bytes(data[i * part_bytes : (i + 1) * part_bytes])
        parts.append(part)
    return parts


def join_parts(folder: Path, name: str, dest: Path) -> str:
    """Concatenate ``folder/<name>.part0 …`` into ``dest`` (atomically); return its sha256."""
    parts = sorted(folder.glob(f"{name}.part*"), key=lambda p: int(p.name.rsplit("part", 1)[1]))
    if not parts or [int(p.name.rsplit("part", 1)[1]) for p in parts] != list(range(len(parts))):
        raise SystemExit(f"{folder}: expected {name}.part0 … partK without gaps, found {[p.name for p in parts]}")
    tmp = dest.with_name(dest.name + ".tmp")
    h = hashlib.sha256()
    with open(tmp, "wb") as f:
        for p in parts:
            chunk = p.read_bytes()
            h.update(chunk)
            f.write(chunk)
    os.replace(tmp, dest)
    return h.hexdigest()


def cmd_train(args: argparse.Namespace) -> None:
    import torch

    from stzoo.cli.main import main as cli
    from stzoo.tools.release import release_to_manifest
    from stzoo.zoo.manifest import load_manifest

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    run = Path(args.run or (ROOT / "runs" / f"gpu-{args.name}"))
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    workers = args.data_workers if args.data_workers is not None else max(0, min(12, (os.cpu_count() or 1) - 2))
    print(
        f"device {device} ({torch.cuda.get_device_name() if device.startswith('cuda') else 'CPU'}), "
        f"{workers} data workers, torch {torch.__version__}",
        flush=True,
    )
    train_argv = [
        "train",
        args.name,
        "--out",
        str(run),
        "--device",
        device,
        "--time-budget",
        str(args.minutes),
        "--dtype",
        args.dtype,
        "--data-workers",
        str(workers),
        "--batch-size",
        str(args.batch_size),
        "--lr",
        str(args.lr),
        "--eval-sequences",
        str(args.eval_sequences),
        "--checkpoint-every",
        "60",
        "--mnist-dir",
        args.mnist_dir,
    ]
    if cli(train_argv) != 0:
        raise SystemExit("training failed; its checkpoint (if any) is in " + str(run))
    with tempfile.TemporaryDirectory() as tmp:
        manifest = Path(tmp) / "manifest.json"
        manifest.write_text(json.dumps(load_manifest()))
        entry = release_to_manifest(
            args.name,
            run,
            weights_dir=tmp,
            manifest_path=manifest,
            dataset_options={"mnist_dir": args.mnist_dir},
            eval_sequences=args.eval_sequences,
            command="python scripts/gpu_train.py " + " ".join(sys.argv[2:]),
            force=True,
        )
        entry.pop("name", None)
        weights = Path(entry.pop("weights_path"))  # NAME-<sha12>.safetensors in tmp
        parts = split_file(weights, out)
    (out / "entry.json").write_text(json.dumps({"name": args.name, "entry": entry}, indent=2) + "\n")
    for f in ("run.json", "summary.json", "log.jsonl"):
        if (run / f).exists():
            shutil.copyfile(run / f, out / f)
    files = sorted(out.iterdir())
    too_big = [f.name for f in files if f.stat().st_size > PART_BYTES]
    if len(files) > MAX_FILES or too_big:
        raise SystemExit(f"{out} holds {len(files)} files (at most {MAX_FILES}) / too large: {too_big}")
    m = entry["metrics"]
    print(
        f"{args.name}: MSE {m['mse']:.2f}  MAE {m['mae']:.1f}  SSIM {m['ssim']:.4f} on {m['sequences']} "
        f"test sequences; weights {entry['weights']['size'] / 2**20:.1f} MiB in {len(parts)} part(s) → {out}",
        flush=True,
    )


def cmd_install(args: argparse.Namespace) -> None:
    from stzoo.tools.release import update_manifest
    from stzoo.zoo.manifest import validate_manifest

    src = Path(getattr(args, "from"))
    record = json.loads((src / "entry.json").read_text())
    name, entry = record["name"], record["entry"]
    weights_dir = Path(args.weights_dir or ROOT / "stzoo" / "weights")
    weights_dir.mkdir(parents=True, exist_ok=True)
    filename = Path(entry["weights"]["filename"]).name  # a bare name, never a path from the record
    dest = weights_dir / filename
    sha = join_parts(src, filename, dest)
    if sha != entry["weights"]["sha256"] or dest.stat().st_size != entry["weights"]["size"]:
        dest.unlink()
        raise SystemExit(
            f"{src}: the joined weights have sha256 {sha}, not the released "
            f"{entry['weights']['sha256']}; fetch the parts again"
        )
    manifest_path = Path(args.manifest or ROOT / "stzoo" / "weights_manifest.json")

    def install(manifest: dict):
        if name not in manifest["models"]:
            raise SystemExit(f"{name} is not an entry of {manifest_path}")
        old = (manifest["models"][name].get("weights") or {}).get("filename")
        manifest["models"][name] = entry
        validate_manifest(manifest)

        def remove_superseded() -> None:
            used = {(e.get("weights") or {}).get("filename") for e in manifest["models"].values()}
            if old and old not in used:
                (weights_dir / Path(old).name).unlink(missing_ok=True)

        return remove_superseded

    update_manifest(manifest_path, install)  # under the manifest's lock, as stzoo-maint release writes it
    print(f"installed {name}: {dest} (sha256 {sha[:12]}…), metrics {entry['metrics']['mse']:.2f} MSE")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("train", help="train, measure and pack (on the GPU machine)")
    p.add_argument("--mnist-dir", required=True, help="folder of the four MNIST IDX files (required)")
    p.add_argument("--out", required=True, help="folder for the files to bring back (required)")
    p.add_argument("--name", default="tau-mmnist-m", help="zoo entry to train (default: tau-mmnist-m)")
    p.add_argument("--minutes", type=float, default=8.0, help="training budget in minutes (default: 8)")
    p.add_argument("--device", default=None, help="default: cuda if available, else cpu")
    p.add_argument(
        "--dtype",
        default="auto",
        choices=("auto", "float32", "bfloat16"),
        help="auto: bf16 autocast where the device has it (default: auto)",
    )
    p.add_argument("--batch-size", type=int, default=128, help="sequences per step (default: 128)")
    p.add_argument(
        "--lr",
        type=float,
        default=3e-3,
        help="peak OneCycle learning rate: the TAU recipe's 1e-3 at batch 16 scaled by √(128/16) ≈ 2.8, "
        "rounded (default: 3e-3)",
    )
    p.add_argument(
        "--data-workers", type=int, default=None, help="batch-generating processes (default: CPU count − 2, at most 12)"
    )
    p.add_argument("--eval-sequences", type=int, default=10000, help="test sequences measured (default: 10000)")
    p.add_argument("--run", default=None, help="run folder (default: runs/gpu-NAME in the repo, ignored by git)")
    p.set_defaults(func=cmd_train)
    p = sub.add_parser("install", help="join fetched parts, verify, put weights and entry into the zoo")
    p.add_argument("--from", required=True, help="folder holding the fetched files (required)")
    p.add_argument("--weights-dir", default=None, help="default: stzoo/weights/ (package data)")
    p.add_argument("--manifest", default=None, help="default: stzoo/weights_manifest.json")
    p.set_defaults(func=cmd_install)
    args = parser.parse_args(argv)
    args.func(args)


if __name__ == "__main__":
    main()
