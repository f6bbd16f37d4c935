"""Run by tests/training/test_finetune_ddp.py (with ``helpers.subprocess_env()``) under
``torchrun --nproc_per_node=2``: fine-tune a tiny model
on tiny synthetic videos and write what this rank saw to OUT/rank<R>.json and its weights to
OUT/rank<R>.safetensors."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import torch
from safetensors.torch import save_file  # noqa: E402
from test_finetune import square_video, tiny  # noqa: E402

from stzoo.training.finetune import finetune  # noqa: E402


def main() -> None:
    torch.set_num_threads(1)
    out = Path(sys.argv[1])
    videos = [square_video(s) for s in range(3)]
    p, hist = finetune(
        tiny("convlstm"),
        videos,
        epochs=2,
        lr=1e-2,
        batch_size=4,
        val=0.34,
        out_dir=out / "model",
        progress=False,
        patience=None,
    )
    rank = int(os.environ["RANK"])
    save_file({k: v.contiguous() for k, v in p.model.state_dict().items()}, str(out / f"rank{rank}.safetensors"))
    record = {
        "rank": rank,
        "world_size": hist.world_size,
        "val": hist.epochs[-1]["val"],
        "steps": len(hist.steps),
        "losses": hist.train_losses,
        "initialized_after": torch.distributed.is_initialized(),
    }
    (out / f"rank{rank}.json").write_text(json.dumps(record))


if __name__ == "__main__":
    main()
