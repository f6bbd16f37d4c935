"""Your own videos as training data: read many videos, convert them, cut them into clips.

The pipeline behind :func:`stzoo.training.finetune.finetune`:

1. :func:`load_videos` reads every video the user names (a file, a folder of frames, a folder of
   videos, an array or tensor, or a list of any of these) into a ``T×C×H×W`` float32 tensor with
   values in [0, 1], checking each one and naming it in every error;
2. :func:`convert_video` converts channels (grey ↔ RGB) and resizes;
3. :func:`split_videos` separates training and validation data *by video* (several videos) or *by
   time* (validation = the end of each video), so no validation frame is ever trained on;
   :func:`auto_split` (``val="auto"``) does the same when the data can spare a validation part (by
   time for a few videos, so every one is validated on) and trains on everything, saying why, when
   it cannot (one short clip);
4. :class:`ClipDataset` cuts sliding windows of ``T_in + T_out`` frames with a stride.
"""

from __future__ import annotations

import contextlib
import contextvars
import math
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import Tensor

from stzoo.errors import InputError, InputTypeError
from stzoo.frames.layout import LAYOUTS, LUMA, _describe, infer_layout
from stzoo.frames.prepare import prepare_frames
from stzoo.frames.read import _images_to_array, _natural_key, list_folder, read_frames

__all__ = [
    "Video",
    "ClipDataset",
    "load_videos",
    "convert_video",
    "split_videos",
    "auto_split",
    "check_lengths",
    "COLLECTION_SUFFIXES",
    "AUTO_VAL_FRACTION",
    "AUTO_TIME_MAX_VIDEOS",
    "arg",
    "naming",
]

#: In a folder, files with these suffixes are whole videos (the folder is then a collection of
#: videos); a folder holding only still images is one video, one frame per image.
COLLECTION_SUFFIXES: tuple[str, ...] = (
    ".gif",
    ".apng",
    ".npy",
    ".npz",
    ".mp4",
    ".m4v",
    ".avi",
    ".mov",
    ".mkv",
    ".webm",
)

#: the fraction of the data ``val="auto"`` holds out (see :func:`auto_split`)
AUTO_VAL_FRACTION = 0.2
#: ``val="auto"`` with ``split="auto"`` validates on the end of every video (a split by time) for up to this
#: many videos, so the state kept is chosen on every one of a few clips; more videos: whole videos held out
AUTO_TIME_MAX_VIDEOS = 8

# Whether messages name command-line flags (``--val 0``) or Python arguments (``val=0``): the
# ``stzoo finetune`` command sets it for the duration of the call (see :func:`naming`).
_CLI_NAMES: contextvars.ContextVar[bool] = contextvars.ContextVar("stzoo_cli_names", default=False)


@contextlib.contextmanager
def naming(cli: bool) -> Iterator[None]:
    """Inside this block, :func:`arg` (and so every data error) names CLI flags if ``cli`` else
    Python arguments."""
    token = _CLI_NAMES.set(bool(cli))
    try:
        yield
    finally:
        _CLI_NAMES.reset(token)


def arg(python: str, cli: str) -> str:
    """``python`` (e.g. ``"val=0"``) in Python, ``cli`` (e.g. ``"--val 0"``) under ``stzoo finetune``."""
    return cli if _CLI_NAMES.get() else python


@dataclass
class Video:
    """One video: its frames (``T×C×H×W`` float32 in [0, 1]) and a name used in messages."""

    name: str
    frames: Tensor

    @property
    def length(self) -> int:
        return int(self.frames.shape[0])

    @property
    def channels(self) -> int:
        return int(self.frames.shape[1])

    @property
    def size(self) -> tuple[int, int]:
        return int(self.frames.shape[2]), int(self.frames.shape[3])

    def describe(self) -> str:
        h, w = self.size
        return f"{self.name} ({self.length} frames, {h}×{w}, {self.channels} channel(s))"


# --------------------------------------------------------------------------------------------
# reading
def _array_to_videos(a: np.ndarray | Tensor, name: str, layout: str | None, channels: int) -> list[Video]:
    """The videos of one array: one, or B for a batched layout (B×T×H×W, B×T×H×W×C, B×T×C×H×W).

    The layout is read with the rule ``Predictor.predict`` uses for a model with ``channels`` channels
    (:func:`stzoo.frames.layout.infer_layout`), so an array means the same in both; the frames keep
    their own channel count (:func:`convert_video` converts them later).
    """
    hint = arg("data_layout=", "--data-layout ")
    try:
        layout = infer_layout(tuple(a.shape), channels, layout=layout, desc=_describe(a))
    except (InputError, InputTypeError) as exc:
        raise type(exc)(
            f"{name}: {exc} (for fine-tuning data the layout is given as {hint}..., one of {', '.join(LAYOUTS)})"
        ) from exc
    data_channels = int(a.shape[layout.index("C")]) if "C" in layout else 1
    try:
        x, _ = prepare_frames(a, channels=data_channels, layout=layout)
    except (InputError, InputTypeError) as exc:
        raise type(exc)(f"{name}: {exc}") from exc
    x = x.float().cpu()
    if "B" not in layout:
        return [Video(name, x[0].contiguous())]
    return [Video(f"{name}, sequence {b}", x[b].contiguous()) for b in range(x.shape[0])]


def _is_collection(folder: Path) -> bool:
    return any(
        p.is_dir() or p.suffix.lower() in COLLECTION_SUFFIXES for p in list_folder(folder) if not p.name.startswith(".")
    )


#: a folder of videos is read at most this many folders deep (a guard against link farms)
MAX_FOLDER_DEPTH = 8


def _read_path(
    path: Path, layout: str | None, channels: int, seen: set[str] | None = None, depth: int = 0
) -> list[Video]:
    """The videos at ``path``. Links are followed, but each real file or folder is read once (``seen``
    holds real paths), so a link back into the folder cannot read a video twice or loop."""
    if not path.exists():
        raise InputError(f"no such file or folder: '{path}'")
    seen = set() if seen is None else seen
    real = os.path.realpath(path)
    if real in seen:
        return []
    seen.add(real)
    if path.is_dir():
        if depth > MAX_FOLDER_DEPTH:
            raise InputError(
                f"'{path}' lies more than {MAX_FOLDER_DEPTH} folders deep in the data folder; put the "
                "videos at most that deep (or name the folders one by one)"
            )
        entries = [p for p in list_folder(path) if not p.name.startswith(".")]  # unlistable: one InputError
        if not entries:
            raise InputError(
                f"folder '{path}' is empty: put the frames of a video (PNG/JPEG/... images) "
                "or video files (GIF, MP4, .npy, ...) in it"
            )
        if _is_collection(path):
            videos: list[Video] = []
            for p in sorted(entries, key=lambda p: _natural_key(p.name)):
                if p.is_dir() or p.suffix.lower() in COLLECTION_SUFFIXES:
                    videos.extend(_read_path(p, layout, channels, seen, depth + 1))
            return videos
    a = read_frames(path)  # images: T×H×W×C uint8; arrays: as stored; errors name the file
    if isinstance(a, np.ndarray) and a.dtype == np.uint8 and path.suffix.lower() not in (".npy", ".npz"):
        return _array_to_videos(a, f"'{path}'", "THWC", channels)
    return _array_to_videos(a, f"'{path}'", layout, channels)


def _frames_list_to_video(frames: Sequence[Any], name: str) -> Video:
    first = frames[0]
    sizes = {(np.asarray(f).shape[:2] if not isinstance(f, Image.Image) else (f.height, f.width)) for f in frames}
    if len(sizes) > 1:
        raise InputError(
            f"{name}: frames of mixed sizes {sorted(sizes)}; every frame of a video must "
            "have the same height and width (resize them first, or let stzoo resize whole "
            "videos)"
        )
    if isinstance(first, Image.Image):
        a = _images_to_array(frames, [f"{name} frame {i}" for i in range(len(frames))], None, sequence=False)
        (video,) = _array_to_videos(a, name, "THWC", 1)
        return video
    (video,) = _array_to_videos(np.stack([np.asarray(f) for f in frames]), name, "THW", 1)
    return video


def load_videos(data: Any, *, layout: str | None = None, channels: int = 1) -> list[Video]:
    """Read one or several videos.

    Args:
        data: one of

            * a path: a GIF / APNG, an MP4 / AVI / MOV (needs ``pip install "stzoo[video]"``), a
              ``.npy`` / ``.npz`` array, or a folder. A folder of still images (PNG, JPEG, ...) is
              one video whose frames are in natural file-name order (``frame2`` before
              ``frame10``); a folder holding video files (GIF, MP4, ``.npy``, ...) or sub-folders is
              several videos, one per entry;
            * a numpy array or torch tensor in one of the layouts ``Predictor.predict`` takes
              (``T×H×W``, ``T×H×W×C``, ``T×C×H×W``; uint8, or float in [0, 1]), read with the same
              rule (:func:`stzoo.frames.layout.infer_layout`); a batched one (``B×T×H×W``,
              ``B×T×H×W×C``, ``B×T×C×H×W``) is B videos;
            * a list / tuple of PIL images or of 2-D arrays: the frames of one video;
            * any other list / tuple: several videos, each any of the above.
        layout: the layout of array data (one of :data:`stzoo.frames.layout.LAYOUTS`) when it
            cannot be inferred, or is inferred wrongly.
        channels: the channel count of the model the videos are for (fine-tuning passes the
            model's, or the count it converts to): arrays are read as ``Predictor.predict`` of such
            a model reads them; the default, 1, reads them as for a grey model. The frames keep their
            own channels (see :func:`convert_video`).

    Returns:
        The videos, each ``T×C×H×W`` float32 in [0, 1] on the CPU.

    Raises:
        InputError: a missing, empty, unreadable or corrupt file or folder, frames of mixed sizes
            within a video, values out of range, an unknown layout (the message names the video).
        InputTypeError: an object that is not a video.
    """
    if isinstance(data, (str, os.PathLike)):
        found = _read_path(Path(os.fspath(data)).expanduser(), layout, channels)
        if not found:
            raise InputError(f"no videos in '{os.fspath(data)}': its entries only link back to folders already read")
        return found
    if isinstance(data, (np.ndarray, Tensor)):
        return _array_to_videos(data, "the array", layout, channels)
    if isinstance(data, (list, tuple)):
        if not data:
            raise InputError("no videos given: the list of videos is empty")
        if all(isinstance(f, Image.Image) for f in data) or all(
            isinstance(f, np.ndarray) and f.ndim == 2 for f in data
        ):
            return [_frames_list_to_video(data, "the list of frames")]
        videos: list[Video] = []
        for i, item in enumerate(data):
            found = load_videos(item, layout=layout, channels=channels)
            if not isinstance(item, (str, os.PathLike)):
                several = len(found) > 1  # a batched array: one video per sequence
                found = [
                    Video(f"video {i} of the list" + (f", sequence {b}" if several else ""), v.frames)
                    for b, v in enumerate(found)
                ]
            videos.extend(found)
        return videos
    raise InputTypeError(
        f"cannot read videos from an object of type {type(data).__name__}: pass a path "
        "(GIF, MP4, .npy, folder), a numpy array / torch tensor, or a list of these"
    )


# --------------------------------------------------------------------------------------------
# converting
def convert_video(video: Video, *, channels: int | None = None, size: tuple[int, int] | None = None) -> Video:
    """Convert ``video`` to ``channels`` (1 ↔ 3 ↔ N: grey is repeated, RGB → grey uses the BT.601 luma
    :data:`stzoo.frames.layout.LUMA`, RGBA drops alpha) and resize it to ``size`` = (height, width)
    (bilinear, antialiased)."""
    x = video.frames
    c = x.shape[1]
    if channels is not None and channels != c:
        if c == 4 and channels == 3:
            x = x[:, :3]
        elif c == 1:
            x = x.expand(-1, channels, -1, -1)
        elif c in (3, 4) and channels == 1:
            w = torch.tensor(LUMA, dtype=x.dtype)[None, :, None, None]
            x = (x[:, :3] * w).sum(1, keepdim=True)
        else:
            raise InputError(
                f"cannot convert {video.describe()} to {channels} channel(s); only grey "
                "(1) ↔ RGB (3) ↔ RGBA (4) conversions exist: convert the data yourself"
            )
    if size is not None and tuple(size) != tuple(x.shape[-2:]):
        x = F.interpolate(x, size=tuple(size), mode="bilinear", align_corners=False, antialias=True)
        x = x.clamp_(0, 1)
    return Video(video.name, x.contiguous())


# --------------------------------------------------------------------------------------------
# checking and splitting
def check_lengths(videos: Sequence[Video], window: int, what: str = "") -> None:
    """Raise a clear error if a video is shorter than one clip of ``window`` frames."""
    short = [v for v in videos if v.length < window]
    if short:
        listed = "; ".join(v.describe() for v in short[:5])
        raise InputError(
            f"{len(short)} {what}video(s) shorter than one clip of T_in + T_out = {window} frames: "
            f"{listed}. Use longer videos, or read and predict fewer frames ("
            + arg("frames_in=N, frames_out=N", "--frames-in N --frames-out N")
            + ")."
        )


def split_videos(
    videos: Sequence[Video], val: float, *, split: str = "auto", window: int
) -> tuple[list[Video], list[Video]]:
    """Split into training and validation videos so that no frame is in both.

    Args:
        videos: the videos.
        val: the validation fraction in [0, 1). 0 gives no validation data.
        split: ``"video"``: the last ``max(1, round(val·n))`` videos are validation (needs ≥ 2
            videos); ``"time"``: every video is cut in two, its last ``val`` fraction of frames is
            validation; ``"auto"``: ``"video"`` for two or more videos, else ``"time"``.
        window: frames per clip (T_in + T_out); both sides must hold at least one clip.

    Returns:
        ``(train, val)`` lists of videos.
    """
    if not 0 <= val < 1:
        raise InputError(f"{arg('val', '--val')} must be a fraction in [0, 1) or 'auto', got {val}")
    if split not in ("auto", "video", "time"):
        raise InputError(f"{arg('split', '--split')} must be 'auto', 'video' or 'time', got {split!r}")
    videos = list(videos)
    if val == 0:
        return videos, []
    if split == "auto":
        split = "video" if len(videos) >= 2 else "time"
    if split == "video":
        if len(videos) < 2:
            raise InputError(
                arg("split='video'", "--split video") + " needs at least two videos (one to train on, "
                "one to validate); use " + arg("split='time'", "--split time") + " for a single video"
            )
        n_val = min(len(videos) - 1, max(1, round(val * len(videos))))
        return videos[:-n_val], videos[-n_val:]
    train, held = [], []
    for v in videos:
        cut = int(math.floor(v.length * (1 - val)))
        if cut < window or v.length - cut < window:
            raise InputError(
                f"cannot split {v.describe()} by time into a training part and a validation part of at "
                f"least {window} frames each (T_in + T_out) with {arg(f'val={val}', f'--val {val}')}: "
                "it needs at least "
                f"{math.ceil(window / min(val, 1 - val))} frames. Use a longer video, several videos, "
                f"another {arg('val', '--val')} fraction, "
                + arg("val='auto'", "--val auto")
                + " (which trains without validation when the video is too short to split), or "
                + arg("val=0", "--val 0")
                + "."
            )
        train.append(Video(f"{v.name} frames 0-{cut - 1}", v.frames[:cut]))
        held.append(Video(f"{v.name} frames {cut}-{v.length - 1}", v.frames[cut:]))
    return train, held


def _time_cuts(videos: Sequence[Video], window: int, fraction: float) -> list[int] | str:
    """Where :func:`auto_split` cuts each video by time, or why it cannot (a note in words).

    Each video holds out its last ``fraction`` of frames but at least one clip (``window`` frames) and
    keeps at least one clip's worth to train on; all the training parts together hold at least two
    clips' worth (``2·window`` frames)."""
    cuts = []
    for v in videos:
        n_val = max(v.length - int(math.floor(v.length * (1 - fraction))), window)
        if v.length - n_val < (2 * window if len(videos) == 1 else window):
            need = 3 * window if len(videos) == 1 else 2 * window
            return (
                f"{v.describe()} is too short to hold out one clip ({window} frames) at its end and keep "
                f"{'two clips' if len(videos) == 1 else 'one clip'}' worth for training, so every frame is trained "
                f"on. Give at least {need} frames per video, "
                + ("a second video, " if len(videos) == 1 else "")
                + "or separate validation videos ("
                + arg("val=[...]", "--val-data PATH")
                + ") to measure the model on frames it has not seen"
            )
        cuts.append(v.length - n_val)
    if sum(cuts) < 2 * window:
        return (
            f"the videos' training parts hold {sum(cuts)} frames, fewer than two clips' worth ({2 * window}), so "
            "every frame is trained on. Give longer videos or separate validation videos ("
            + arg("val=[...]", "--val-data PATH")
            + ")"
        )
    return cuts


def auto_split(
    videos: Sequence[Video], *, window: int, split: str = "auto", fraction: float = AUTO_VAL_FRACTION
) -> tuple[list[Video], list[Video], str]:
    """The ``val="auto"`` split: validation data when the videos can spare it, none when they cannot.

    * By time (``split="time"``; and ``split="auto"`` with at most ``AUTO_TIME_MAX_VIDEOS`` videos
      when every one can spare it): the last ``fraction`` of every video's frames, but at least one
      clip (``window`` frames) each, provided every video keeps one clip's worth of frames to train
      on and the training parts hold two clips' worth in all (one video: ``2·window`` of its own). A
      75-frame video with 20-frame clips keeps frames 0-54 to train on and validates on frames 55-74.
      Training and validation clips never share a frame, and every video is validated on, so the
      state kept is chosen on every video (see ``select`` in :func:`stzoo.training.finetune.finetune`).
    * By video (``split="video"``; and ``split="auto"`` with more videos, or videos too short to cut):
      the last ``max(1, round(fraction·n))`` videos, as :func:`split_videos` does.
    * Otherwise (e.g. one 48-frame video with 20-frame clips): no validation; everything is trained
      on and the returned note says why.

    Returns:
        ``(train, val, note)``: ``note`` describes the split in words (for logs and the history).
    """
    videos = list(videos)
    if split not in ("auto", "video", "time"):
        raise InputError(f"{arg('split', '--split')} must be 'auto', 'video' or 'time', got {split!r}")
    cuts = _time_cuts(videos, window, fraction) if split != "video" else "by video"
    if split == "auto":
        split = "time" if len(videos) <= AUTO_TIME_MAX_VIDEOS and not isinstance(cuts, str) else "video"
        if split == "video" and len(videos) < 2:
            split = "time"  # one video that cannot be cut: no validation (the note says why)
    if split == "video":
        train, held = split_videos(videos, fraction, split="video", window=window)
        return train, held, f"validation: the last {len(held)} of {len(videos)} videos (whole videos)"
    if isinstance(cuts, str):
        return videos, [], cuts
    train = [Video(f"{v.name} frames 0-{c - 1}", v.frames[:c]) for v, c in zip(videos, cuts)]
    held = [Video(f"{v.name} frames {c}-{v.length - 1}", v.frames[c:]) for v, c in zip(videos, cuts)]
    return (
        train,
        held,
        (
            f"validation: the end of every video ({len(videos)} video(s): the last "
            f"{', '.join(str(v.length - c) for v, c in zip(videos, cuts))} frames; never trained on, no clip shares "
            "a frame with a training clip)"
        ),
    )


# --------------------------------------------------------------------------------------------
# clips
class ClipDataset(torch.utils.data.Dataset):
    """Sliding windows of ``window`` frames over several videos.

    Clip ``i`` is ``window`` consecutive frames of one video, starting every ``stride`` frames.
    Items are ``window×C×H×W`` float32 tensors; :meth:`batch` stacks a range of them (the
    interface :func:`stzoo.training.train.evaluate` reads).
    """

    def __init__(self, videos: Sequence[Video], window: int, stride: int = 1):
        if window < 1 or stride < 1:
            raise InputError(f"window and stride must be >= 1, got {window} and {stride}")
        self.videos = list(videos)
        self.window, self.stride = int(window), int(stride)
        check_lengths(self.videos, self.window)
        shapes = {tuple(v.frames.shape[1:]) for v in self.videos}
        if len(shapes) > 1:
            raise InputError(f"videos of one dataset must share channels and size, got C×H×W {sorted(shapes)}")
        self.index = [
            (vi, s) for vi, v in enumerate(self.videos) for s in range(0, v.length - self.window + 1, self.stride)
        ]

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, i: int) -> Tensor:
        vi, s = self.index[i]
        return self.videos[vi].frames[s : s + self.window]

    def take(self, indices: Sequence[int]) -> Tensor:
        """The clips ``indices`` stacked, B×window×C×H×W."""
        return torch.stack([self[int(i)] for i in indices])

    def batch(self, lo: int, hi: int) -> Tensor:
        """Clips ``lo`` … ``hi - 1`` stacked, B×window×C×H×W."""
        return self.take(range(lo, hi))

    def subset(self, indices: Sequence[int]) -> ClipSubset:
        """A view holding only the clips ``indices`` (e.g. one process's share)."""
        return ClipSubset(self, list(indices))

    def describe(self) -> str:
        frames = sum(v.length for v in self.videos)
        return (
            f"{len(self)} clips of {self.window} frames (stride {self.stride}) from {len(self.videos)} "
            f"video(s), {frames} frames in all"
        )


class ClipSubset:
    """Some clips of a :class:`ClipDataset`, with the same ``len`` / ``batch`` interface."""

    def __init__(self, dataset: ClipDataset, indices: list[int]):
        self.dataset, self.indices = dataset, indices

    def __len__(self) -> int:
        return len(self.indices)

    def batch(self, lo: int, hi: int) -> Tensor:
        return self.dataset.take(self.indices[lo:hi])
