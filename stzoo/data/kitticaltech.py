"""KittiCaltech as OpenSTL uses it (``kitticaltech``): train on KITTI, test on Caltech Pedestrian, 128×160
colour, 10 → 1 (PredNet's protocol, Lotter et al. 2017).

Files, in OpenSTL's layout (``download_kitticaltech.sh``; ``--data-dir`` is the data root):

* training: ``kitti_hkl/X_train.hkl`` (N×128×160×3 uint8 frames, PredNet's preprocessing) and
  ``kitti_hkl/sources_train.hkl`` (the recording each frame comes from), read with ``hickle`` (the ``kitti``
  extra);
* test: ``caltech/data_cache.npy`` + ``caltech/indices_cache.npy`` (the frames and window starts OpenSTL
  caches after its first pass), or ``kitticaltech_npy/test_data.npy`` + ``test_idx.npy``, or else the
  Caltech videos ``caltech/set06/V000.seq`` ..., decoded with PyAV (the ``video`` extra) the way OpenSTL
  decodes them: every 3rd frame, resized to height 128 keeping the aspect ratio (antialiased bilinear;
  OpenSTL uses scikit-image's ``resize``, so the pixels are close, not identical), the middle 160 columns
  kept; the result is written to ``caltech/data_cache.npy`` / ``indices_cache.npy`` as OpenSTL does.

Channel order: OpenSTL decodes the Caltech videos with OpenCV, so its test frames are **BGR**, while the
KITTI training frames (PredNet's ``.hkl``) are RGB; we keep both as OpenSTL has them so that its weights
see what they saw. Windows: ``seq_len`` frames of one recording, not overlapping, found scanning backwards.
"""

from __future__ import annotations

import os
import tempfile
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch

from stzoo.data.openstl_files import DATA_DIR_OPTION, ClipSet, data_root, require, scan_starts, split_readers
from stzoo.data.registry import DatasetSpec, register_dataset
from stzoo.errors import InputError
from stzoo.metrics import OpenSTLConvention

__all__ = ["SPEC", "process_frame", "caltech_from_videos"]

NAME = "kitticaltech"
HEIGHT, WIDTH = 128, 160
_VIDEO = (".seq", ".avi", ".mp4", ".mkv", ".mov")


def _as_nchw(frames: np.ndarray, path: Path) -> np.ndarray:
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3:
        raise InputError(f"{NAME}: {path} holds {frames.shape}; expected N×{HEIGHT}×{WIDTH}×3 frames")
    if frames.dtype != np.uint8:
        top = float(frames.max()) if frames.size else 0.0
        frames = np.rint(frames * (255.0 if top <= 1.0 else 1.0)).clip(0, 255).astype(np.uint8)
    return frames.transpose(0, 3, 1, 2)


def process_frame(frame: np.ndarray) -> np.ndarray:
    """One H×W×3 uint8 frame → 128×160×3 uint8: resized to height 128 keeping the aspect ratio, the middle
    160 columns kept (PredNet's ``process_im``, which OpenSTL uses)."""
    h, w = frame.shape[:2]
    new_w = int(np.round(HEIGHT / h * w))
    t = torch.from_numpy(np.ascontiguousarray(frame, dtype=np.float32)).permute(2, 0, 1)[None]
    t = torch.nn.functional.interpolate(t, size=(HEIGHT, new_w), mode="bilinear", antialias=True, align_corners=False)
    d = int((new_w - WIDTH) / 2)
    return t[0, :, :, d : d + WIDTH].permute(1, 2, 0).round().clamp(0, 255).to(torch.uint8).numpy()


def caltech_from_videos(folder: Path, seq_len: int = 11) -> tuple[np.ndarray, np.ndarray]:
    """Decode every Caltech video under ``folder`` (``set*/V*.seq``) as OpenSTL does: (frames N×128×160×3
    uint8 in BGR order, window starts)."""
    av = require("av", "video", NAME)
    frames, groups = [], []
    for sub in sorted(p for p in folder.iterdir() if p.is_dir()):
        for video in sorted(p for p in sub.iterdir() if p.suffix.lower() in _VIDEO):
            try:
                with av.open(str(video)) as container:
                    for k, frame in enumerate(container.decode(video=0), 1):
                        if k % 3 == 0:
                            frames.append(process_frame(frame.to_ndarray(format="bgr24")))
                            groups.append(sub.name + video.name)
            except Exception as exc:  # PyAV's FFmpegError family, OSError, ...
                raise InputError(f"{NAME}: cannot decode {video}: {type(exc).__name__}: {exc}") from exc
    if not frames:
        raise InputError(f"{NAME}: no Caltech videos (set*/V*.seq) under {folder}")
    return np.stack(frames), np.asarray(scan_starts(groups, seq_len), dtype=np.int32)


def _write_cache(folder: Path, data: np.ndarray, starts: np.ndarray) -> None:
    for name, arr in (("data_cache.npy", data), ("indices_cache.npy", starts)):
        fd, tmp = tempfile.mkstemp(prefix=name, suffix=".part", dir=folder)
        try:
            with os.fdopen(fd, "wb") as f:
                np.save(f, arr)
            os.replace(tmp, folder / name)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise


def _test_arrays(root: Path, seq_len: int) -> tuple[np.ndarray, np.ndarray]:
    for folder, data_name, idx_name in (
        (root / "caltech", "data_cache.npy", "indices_cache.npy"),
        (root / "kitticaltech_npy", "test_data.npy", "test_idx.npy"),
        (root, "data_cache.npy", "indices_cache.npy"),
    ):
        if (folder / data_name).is_file() and (folder / idx_name).is_file():
            data = np.load(folder / data_name, mmap_mode="r", allow_pickle=False)
            return _as_nchw(data, folder / data_name), np.load(folder / idx_name, allow_pickle=False)
    caltech = root / "caltech" if (root / "caltech").is_dir() else root
    data, starts = caltech_from_videos(caltech, seq_len)
    try:
        _write_cache(caltech, data, starts)
    except OSError as exc:
        warnings.warn(f"{NAME}: could not write the Caltech cache in {caltech} ({exc})", RuntimeWarning, stacklevel=2)
    return data.transpose(0, 3, 1, 2), starts


def _train_arrays(root: Path, seq_len: int, split: str = "train") -> tuple[np.ndarray, list[int]]:
    hkl = require("hickle", "kitti", NAME)
    folder = root / "kitti_hkl" if (root / "kitti_hkl").is_dir() else root
    x_path, s_path = folder / f"X_{split}.hkl", folder / f"sources_{split}.hkl"
    if not x_path.is_file() or not s_path.is_file():
        raise InputError(f"{NAME}: training needs {x_path} and {s_path} (PredNet's KITTI files)")
    try:
        data, sources = hkl.load(str(x_path)), list(hkl.load(str(s_path)))
    except Exception as exc:  # h5py / hickle raise many kinds
        raise InputError(f"{NAME}: cannot read the KITTI .hkl files in {folder}: {type(exc).__name__}: {exc}") from exc
    if len(sources) != len(data):
        raise InputError(f"{NAME}: {len(data)} frames but {len(sources)} sources in {folder}")
    return _as_nchw(data, x_path), scan_starts(sources, seq_len)


def _make(
    split: str, data_dir: Any = None, num_sequences: int | None = None, seq_len: int = 11, seed: int = 0, **kw: Any
):
    root = data_root(data_dir, NAME)
    frames, starts = _train_arrays(root, seq_len) if split == "train" else _test_arrays(root, seq_len)
    starts = [int(s) for s in starts if int(s) + seq_len <= len(frames)]
    return ClipSet(
        frames, starts, seq_len, "uint8", num_sequences=num_sequences, shuffle=split == "train", seed=seed, **kw
    )


SPEC = register_dataset(
    DatasetSpec(
        name=NAME,
        label="KittiCaltech",
        description="train on KITTI (.hkl), test on Caltech Pedestrian, 128×160 colour, 10→1 (--data-dir)",
        channels=3,
        height=HEIGHT,
        width=WIDTH,
        dtype="uint8",
        value_range=(0.0, 1.0),
        normalisation="8-bit levels divided by 255; KITTI frames RGB, Caltech frames BGR (as OpenSTL has them)",
        test_seed=0,
        test_size=0,
        frames_in=10,
        frames_out=1,
        **split_readers(_make),
        cache_naming="caltech/data_cache.npy and indices_cache.npy next to the videos, as OpenSTL writes them",
        test_description="Caltech Pedestrian (OpenSTL's windows), {frames_in}→{frames_out}",
        openstl_metrics=OpenSTLConvention(),
        citation='A. Geiger et al., "Vision meets Robotics: The KITTI Dataset", IJRR 2013; P. Dollár et al., '
        '"Pedestrian Detection: A Benchmark", CVPR 2009; W. Lotter et al., "PredNet", ICLR 2017',
        tag="kitti-caltech",
        options=(DATA_DIR_OPTION,),
    )
)
