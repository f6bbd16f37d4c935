"""Human3.6M (Ionescu et al., 2014) as OpenSTL uses it (``human``): 256×256 colour, 4 → 4.

Files: OpenSTL's ``download_human3.6m.sh`` leaves ``data/human/images/`` (frames resized to 256×256, named
``S1_Directions.54138969_001276.jpg``) and the lists ``train.txt`` / ``test.txt`` (from STRPM), one line per
sequence: ``images/S1_Directions.54138969_,1276,1346``: a name prefix and a first frame number.
``--data-dir`` is the data root or the ``human`` folder.

OpenSTL's protocol, kept here: a sequence is 8 frames every 5th frame number from the first
(``first, first+5, ...``), read with OpenCV, so **in BGR channel order** (the published weights were trained
on BGR frames; pass ``channel_order="rgb"`` to the builders for RGB), resized to 256×256 (bicubic) only if a
frame is not that size, divided by 255. Scored with mean 0, std 1.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from stzoo.data.openstl_files import DATA_DIR_OPTION, ClipSet, data_root, find_path, resize_frames, split_readers
from stzoo.data.registry import DatasetSpec, register_dataset
from stzoo.errors import InputError
from stzoo.metrics import OpenSTLConvention

__all__ = ["SPEC", "read_list", "STEP"]

NAME = "human"
SIZE = 256
STEP = 5


def read_list(path: Path) -> list[tuple[str, int]]:
    """The ``(name prefix, first frame)`` pairs of a ``train.txt`` / ``test.txt``."""
    out = []
    for n, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        parts = line.strip().split(",")
        try:
            out.append((parts[0], int(parts[1])))
        except (IndexError, ValueError):
            raise InputError(
                f"{NAME}: {path} line {n}: expected 'images/<name>_,<first>,<last>', got {line!r}"
            ) from None
    return out


class HumanFrames:
    """Reads the 8 frames of a list entry (``start`` is the entry's index)."""

    def __init__(self, folder: Path, entries: list[tuple[str, int]], channel_order: str = "bgr") -> None:
        if channel_order not in ("bgr", "rgb"):
            raise InputError(f"{NAME}: channel_order must be 'bgr' (OpenSTL's) or 'rgb', got {channel_order!r}")
        self.folder, self.entries, self.channel_order = folder, entries, channel_order

    def read(self, start: int, count: int) -> np.ndarray:
        prefix, first = self.entries[start]
        frames = []
        for j in range(first, first + count * STEP, STEP):
            path = self.folder / f"{prefix}{j:06d}.jpg"
            try:
                with Image.open(path) as im:
                    rgb = np.asarray(im.convert("RGB"), dtype=np.float32).transpose(2, 0, 1)
            except OSError as exc:
                raise InputError(f"{NAME}: cannot read {path}: {exc}") from exc
            frames.append(rgb[::-1] if self.channel_order == "bgr" else rgb)
        seq = resize_frames(np.stack(frames), SIZE, SIZE, "bicubic") if frames[0].shape[1] != SIZE else np.stack(frames)
        return seq / np.float32(255.0)


def _make(
    split: str,
    data_dir: Any = None,
    num_sequences: int | None = None,
    seq_len: int = 8,
    seed: int = 0,
    channel_order: str = "bgr",
    **kw: Any,
) -> ClipSet:
    lst = find_path(data_root(data_dir, NAME), [f"human/{split}.txt"], NAME, f"{split}.txt")
    frames = HumanFrames(lst.parent, read_list(lst), channel_order)
    return ClipSet(
        frames.read,
        range(len(frames.entries)),
        seq_len,
        "float32",
        num_sequences=num_sequences,
        shuffle=split == "train",
        seed=seed,
        **kw,
    )


SPEC = register_dataset(
    DatasetSpec(
        name=NAME,
        label="Human3.6M",
        description="Human3.6M, 256×256 colour (BGR, as OpenSTL), 4→4, OpenSTL's train/test lists (--data-dir)",
        channels=3,
        height=SIZE,
        width=SIZE,
        dtype="float32",
        value_range=(0.0, 1.0),
        normalisation="BGR levels divided by 255 (OpenSTL reads the frames with OpenCV)",
        test_seed=0,
        test_size=0,
        frames_in=4,
        frames_out=4,
        **split_readers(_make),
        cache_naming="none: frames are read from the files as needed",
        test_description="Human3.6M test.txt (OpenSTL/STRPM), every 5th frame, {frames_in}→{frames_out}",
        openstl_metrics=OpenSTLConvention(),
        citation='C. Ionescu et al., "Human3.6M: Large Scale Datasets and Predictive Methods for 3D Human Sensing '
        'in Natural Environments", TPAMI 2014',
        tag="human3.6m",
        options=(DATA_DIR_OPTION,),
    )
)
