"""KTH Action (Schüldt et al., 2004) as OpenSTL uses it (``kth20``): 128×128 grey, 10 → 20.

Files: OpenSTL's ``download_kth.sh`` leaves one folder per action under ``data/kth/`` (``boxing``,
``handclapping``, ``handwaving``, ``walking``, ``jogging``, ``running``), each holding one folder of frames per
video, ``person01_boxing_d1_uncomp/image_0001.jpg``, ... The original ``.avi`` videos of the KTH site
(``boxing/person01_boxing_d1_uncomp.avi``) are read too, with PyAV (the ``video`` extra); frame ``k`` of a
video plays the part of ``image_{k+1:04d}``. ``--data-dir`` is the data root or the ``kth`` folder.

OpenSTL's protocol, kept here: persons 01–16 train, 17–25 test; the first channel of each frame, resized to
128×128 (bilinear) and divided by 255 (float32); windows of ``seq_len`` (30) consecutive frames of one
video, found by scanning each split backwards: in boxing, handclapping, handwaving and walking windows do
not overlap, in jogging and running a new window starts every 3 frames; a window whose frame numbers are
not consecutive is skipped. Scored with mean 0, std 1.
"""

from __future__ import annotations

from collections import OrderedDict
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from stzoo.data.openstl_files import DATA_DIR_OPTION, ClipSet, data_root, require, resize_frames, split_readers
from stzoo.data.registry import DatasetSpec, register_dataset
from stzoo.errors import InputError
from stzoo.metrics import OpenSTLConvention

__all__ = ["SPEC", "TRAIN_PERSONS", "TEST_PERSONS", "CATEGORIES", "KTHFrames"]

NAME = "kth20"
SIZE = 128
STEP_EVERY_WINDOW = ("boxing", "handclapping", "handwaving", "walking")
STEP_3 = ("jogging", "running")
CATEGORIES = STEP_EVERY_WINDOW + STEP_3
TRAIN_PERSONS = tuple(f"{i:02d}" for i in range(1, 17))
TEST_PERSONS = tuple(f"{i:02d}" for i in range(17, 26))
_VIDEO = (".avi", ".mp4", ".mkv", ".mov")
_IMAGE = (".jpg", ".jpeg", ".png", ".bmp")


def _grey(image: np.ndarray) -> np.ndarray:
    """OpenSTL keeps the first channel of each frame (KTH's frames are grey stored as RGB)."""
    return image[:, :, 0] if image.ndim == 3 else image


def _to_unit(frames: np.ndarray) -> np.ndarray:
    """N×H×W grey frames → N×1×128×128 float32 in [0, 1] (bilinear, as OpenCV's ``resize`` by default)."""
    return resize_frames(frames[:, None].astype(np.float32), SIZE, SIZE) / np.float32(255.0)


class KTHFrames:
    """Every frame of one split, in OpenSTL's order, read on demand (a frame file, or a frame of a video
    decoded with PyAV; the last few videos decoded are kept)."""

    def __init__(self, root: Path, persons: tuple[str, ...]) -> None:
        self.refs: list[tuple[Path, int]] = []  # (image file, -1) or (video, frame index)
        self.groups: list[int] = []
        self.numbers: list[int] = []
        self.category: list[str] = []
        self._videos: OrderedDict[Path, np.ndarray] = OrderedDict()
        mark = 0
        for cat in CATEGORIES:
            folder = root / cat
            if not folder.is_dir():
                continue
            for entry in sorted(folder.iterdir()):
                if entry.name[6:8] not in persons:
                    continue
                if entry.is_dir():
                    files = sorted(
                        p for p in entry.iterdir() if p.name.startswith("image") and p.suffix.lower() in _IMAGE
                    )
                    refs = [(p, -1) for p in files]
                    numbers = [int(p.name[6:10]) for p in files]
                elif entry.suffix.lower() in _VIDEO:
                    count = self._count_frames(entry)
                    refs = [(entry, k) for k in range(count)]
                    numbers = list(range(1, count + 1))
                else:
                    continue
                mark += 1
                self.refs += refs
                self.numbers += numbers
                self.groups += [mark] * len(refs)
                self.category += [cat] * len(refs)
        if not self.refs:
            raise InputError(
                f"{NAME}: no frames of persons {persons[0]}–{persons[-1]} under {root} (expected "
                f"{root}/boxing/person17_boxing_d1_uncomp/image_0001.jpg or .../person17_boxing_d1_uncomp.avi)"
            )

    @staticmethod
    def _decode(video: Path) -> list[np.ndarray]:
        av = require("av", "video", NAME)
        try:
            with av.open(str(video)) as container:
                return [frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)]
        except Exception as exc:  # PyAV's FFmpegError family, OSError, ...
            raise InputError(f"{NAME}: cannot decode {video}: {type(exc).__name__}: {exc}") from exc

    def _count_frames(self, video: Path) -> int:
        frames = self._video(video)
        return len(frames)

    def _video(self, video: Path) -> np.ndarray:
        if video not in self._videos:
            self._videos[video] = _to_unit(np.stack([_grey(f) for f in self._decode(video)]))
            while len(self._videos) > 4:
                self._videos.popitem(last=False)
        self._videos.move_to_end(video)
        return self._videos[video]

    def starts(self, seq_len: int) -> list[int]:
        """OpenSTL's window starts (scanned from the end of the split)."""
        out: list[int] = []
        i = len(self.refs) - 1
        while i >= seq_len - 1:
            j = i - seq_len + 1
            if self.groups[i] == self.groups[j] and self.numbers[i] - self.numbers[j] == seq_len - 1:
                out.append(j)
                i -= seq_len - 1 if self.category[i] in STEP_EVERY_WINDOW else 2
            i -= 1
        return out

    def read(self, start: int, count: int) -> np.ndarray:
        """Frames ``start .. start+count-1`` as count×1×128×128 float32 in [0, 1]."""
        refs = self.refs[start : start + count]
        if refs[0][1] >= 0:
            video = self._video(refs[0][0])
            return video[refs[0][1] : refs[0][1] + count]
        images = []
        for path, _ in refs:
            try:
                with Image.open(path) as im:
                    images.append(_grey(np.asarray(im)))
            except OSError as exc:
                raise InputError(f"{NAME}: cannot read {path}: {exc}") from exc
        return _to_unit(np.stack(images))


def _root(data_dir: Any) -> Path:
    root = data_root(data_dir, NAME)
    return root / "kth" if (root / "kth").is_dir() else root


def _make(
    split: str, data_dir: Any = None, num_sequences: int | None = None, seq_len: int = 30, seed: int = 0, **kw: Any
):
    frames = KTHFrames(_root(data_dir), TRAIN_PERSONS if split == "train" else TEST_PERSONS)
    return ClipSet(
        frames.read,
        frames.starts(seq_len),
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
        label="KTH Action (10→20)",
        description="KTH human actions, 128×128 grey, 10→20, OpenSTL's person split (frames or .avi; --data-dir)",
        channels=1,
        height=SIZE,
        width=SIZE,
        dtype="float32",
        value_range=(0.0, 1.0),
        normalisation="first channel, resized to 128×128 (bilinear), divided by 255, as OpenSTL does",
        test_seed=0,
        test_size=0,
        frames_in=10,
        frames_out=20,
        **split_readers(_make),
        cache_naming="none: frames are read from the files as needed",
        test_description="KTH persons 17–25, OpenSTL's windows, {frames_in}→{frames_out}",
        openstl_metrics=OpenSTLConvention(),
        citation='C. Schüldt, I. Laptev, B. Caputo, "Recognizing human actions: a local SVM approach", ICPR 2004',
        tag="kth",
        options=(DATA_DIR_OPTION,),
    )
)
