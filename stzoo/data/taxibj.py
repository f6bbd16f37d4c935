"""TaxiBJ (Zhang et al., 2017): taxi in-/out-flow over Beijing on a 32×32 grid, 2 channels, 4 → 4.

OpenSTL's ``download_taxibj.sh`` gives ``data/taxibj/dataset.npz`` with ``X_train``, ``Y_train``, ``X_test``,
``Y_test`` (N×4×2×32×32 each: 4 observed and 4 future half-hour frames), already scaled to [-1, 1]. OpenSTL
maps them to [0, 1] with ``(x + 1) / 2`` and scores on that scale (mean 0, std 1); so do we. A sequence is
``X`` followed by ``Y`` (8 frames). ``--data-dir`` is the data root or the ``taxibj`` folder.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from stzoo.data.openstl_files import DATA_DIR_OPTION, ClipSet, data_root, find_path, split_readers
from stzoo.data.registry import DatasetSpec, register_dataset
from stzoo.errors import InputError
from stzoo.metrics import OpenSTLConvention

__all__ = ["SPEC", "load_split"]

NAME = "taxibj"
FILE = "taxibj/dataset.npz"


def load_split(data_dir: str | os.PathLike | None, split: str) -> np.ndarray:
    """``split``'s sequences (N×8×2×32×32 float32 in [0, 1]): ``X`` then ``Y``, mapped with ``(x + 1) / 2``."""
    path = find_path(data_root(data_dir, NAME), [FILE], NAME, "dataset.npz")
    key = "train" if split == "train" else "test"
    try:
        with np.load(path, allow_pickle=False) as z:
            x, y = z[f"X_{key}"], z[f"Y_{key}"]
    except KeyError as exc:
        raise InputError(f"{NAME}: {path} lacks {exc}; expected X_train, Y_train, X_test, Y_test") from exc
    except (OSError, ValueError) as exc:
        raise InputError(f"{NAME}: cannot read {path}: {exc}") from exc
    if x.ndim != 5 or y.ndim != 5 or x.shape[0] != y.shape[0] or x.shape[2:] != y.shape[2:]:
        raise InputError(f"{NAME}: X_{key} {x.shape} and Y_{key} {y.shape} are not N×T×C×H×W of one N")
    lo, hi = float(min(x.min(), y.min())), float(max(x.max(), y.max()))
    if lo < -1.0001 or hi > 1.0001:
        raise InputError(
            f"{NAME}: values in [{lo:g}, {hi:g}]; OpenSTL's dataset.npz is scaled to [-1, 1] (flows divided by "
            "their maximum); scale yours the same way first (stzoo data check shows the range)"
        )
    return ((np.concatenate([x, y], axis=1).astype(np.float32) + 1.0) / 2.0).astype(np.float32)


def _make(
    split: str, data_dir: Any = None, num_sequences: int | None = None, seq_len: int = 8, seed: int = 0, **kw: Any
):
    seqs = load_split(data_dir, split)
    if seq_len > seqs.shape[1]:
        raise InputError(f"{NAME} sequences have {seqs.shape[1]} frames; {seq_len} requested")
    frames = seqs.reshape(-1, *seqs.shape[2:])
    t = seqs.shape[1]
    starts = list(range(0, len(frames), t))
    return ClipSet(
        frames, starts, seq_len, "float32", num_sequences=num_sequences, shuffle=split == "train", seed=seed, **kw
    )


SPEC = register_dataset(
    DatasetSpec(
        name=NAME,
        label="TaxiBJ",
        description="Beijing taxi in/out flows, 2×32×32, 4→4, from OpenSTL's taxibj/dataset.npz (--data-dir)",
        channels=2,
        height=32,
        width=32,
        dtype="float32",
        value_range=(0.0, 1.0),
        normalisation="the file's [-1, 1] flows mapped with (x + 1) / 2, as OpenSTL does",
        test_seed=0,
        test_size=0,
        frames_in=4,
        frames_out=4,
        **split_readers(_make),
        cache_naming="none: dataset.npz is read into memory",
        test_description="TaxiBJ X_test/Y_test of OpenSTL's dataset.npz, {frames_in}→{frames_out}",
        openstl_metrics=OpenSTLConvention(),
        citation='J. Zhang, Y. Zheng, D. Qi, "Deep Spatio-Temporal Residual Networks for Citywide Crowd Flows '
        'Prediction", AAAI 2017',
        tag="taxibj",
        options=(DATA_DIR_OPTION,),
    )
)
