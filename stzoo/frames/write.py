"""Writing frame sequences: a forecast to the kind of file its name asks for.

:func:`write_frames` writes a looping animated GIF (:func:`write_gif`), a video (:func:`write_video`,
the ``video`` extra), a ``.npy`` array or a folder of PNGs (:func:`write_png_folder`);
:func:`check_output_path` checks a name before any work, and :func:`to_thwc` brings a forecast in any
layout to the T×H×W×C sequence the writers take.
"""

from __future__ import annotations

import io
import math
import os
import stat
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import GifImagePlugin, Image

from stzoo.errors import InputError, InputTypeError
from stzoo.frames.layout import _TORCH_FLOATS, _check_layout_arg, _describe, convert_channels
from stzoo.frames.prepare import _check_not_empty, _check_numpy_dtype, _check_tensor_has_data, _numpy_to_unit_float
from stzoo.frames.read import IMAGE_SUFFIXES, _as_path, _short_path, list_folder
from stzoo.runtime import atomic_write, check_output_file, writes_path

__all__ = [
    "OUTPUT_KINDS",
    "PNG_FRAME_NAME",
    "VIDEO_WRITE_CODECS",
    "check_output_path",
    "output_kind",
    "to_thwc",
    "write_frames",
    "write_gif",
    "write_png_folder",
    "write_video",
]


def _output_file(path: Any) -> Path:
    """Check a path to write to: its folder exists and it is not an existing non-regular file (the one
    rule of :func:`stzoo.runtime.check_output_file`, shared by every stzoo writer)."""
    p = _as_path(path)
    try:
        return check_output_file(p)
    except InputError as exc:  # the same words, with the path shortened for long names
        raise InputError(str(exc).replace(str(p), _short_path(p))) from None


# --------------------------------------------------------------------------------------------
# write_gif


def _frames_to_uint8(frames: Any) -> np.ndarray:
    """Validate frames for :func:`write_gif`; return T×H×W×C uint8 (C = 1 or 3)."""
    if isinstance(frames, torch.Tensor):
        t = frames.detach()
        _check_tensor_has_data(t)
        frames = t.to(device="cpu", dtype=torch.float32).numpy() if t.dtype in _TORCH_FLOATS else t.cpu().numpy()
    if not isinstance(frames, np.ndarray):
        raise InputTypeError(f"frames must be a numpy array T×H×W, T×H×W×1 or T×H×W×3, got {type(frames).__name__}")
    desc = _describe(frames)
    _check_numpy_dtype(frames, desc)
    ok_shape = frames.ndim == 3 or (frames.ndim == 4 and frames.shape[-1] in (1, 3))
    if not ok_shape:
        raise InputError(f"frames must be T×H×W, T×H×W×1 or T×H×W×3, got a {desc}")
    _check_not_empty(frames.shape, desc)
    if frames.shape[1] > 65535 or frames.shape[2] > 65535:
        raise InputError(f"GIF frames are at most 65535×65535 pixels, got a {desc}")
    if frames.ndim == 3:
        frames = frames[..., None]
    if frames.dtype == np.uint8:
        return frames
    values = _numpy_to_unit_float(frames, desc)
    return np.rint(values * np.float32(255)).astype(np.uint8)


def write_gif(frames: np.ndarray, path: str | os.PathLike, *, fps: float = 5.0) -> None:
    """Write frames as an animated GIF that loops forever.

    Every frame is written, also runs of identical frames (which Pillow's ``save`` would
    merge into one). Grayscale frames are stored with a 256-level grey palette, so they read
    back exactly; RGB frames are quantized to 256 colours each (exact when a frame has at most
    256 colours).

    Args:
        frames: T×H×W or T×H×W×1 (grayscale) or T×H×W×3 (RGB); uint8, another integer type with
            values in [0, 255], or float in [0, 1]. A torch tensor is accepted as well.
        path: the file to write (its folder must exist); written as GIF whatever its suffix.
        fps: frames per second (> 0). GIF stores delays in hundredths of a second, so the delay
            is rounded to 10 ms (at least 10 ms).

    Raises:
        InputTypeError: ``frames`` is not an array, has an unsupported dtype, or ``fps`` is not
            a number.
        InputError: bad shape, values out of range, NaN, empty frames, ``fps`` not positive, or
            the file cannot be written (its folder is missing, the path is too long, or it
            names an existing folder, FIFO, socket or device).
    """
    data = _frames_to_uint8(frames)
    if isinstance(fps, bool) or not isinstance(fps, (int, float, np.integer, np.floating)):
        raise InputTypeError(f"fps must be a number, got {type(fps).__name__}")
    if not math.isfinite(float(fps)) or fps <= 0:
        raise InputError(f"fps must be a positive finite number, got {fps}")
    p = _output_file(path)
    duration_ms = 10 * max(1, round(100.0 / float(fps)))

    gray = data.shape[-1] == 1
    if gray:
        images = [Image.fromarray(np.ascontiguousarray(f[..., 0])) for f in data]
    else:
        images = [Image.fromarray(np.ascontiguousarray(f)).quantize(colors=256) for f in data]

    # Pillow's save(save_all=True) drops frames identical to the previous one (adding their
    # delay to it), which would change T; assemble the file from Pillow's per-frame encoder.
    buf = io.BytesIO()
    header, _ = GifImagePlugin.getheader(images[0].copy(), info={"loop": 0, "duration": duration_ms})
    for chunk in header:
        buf.write(chunk)
    for im in images:
        params: dict[str, Any] = {"duration": duration_ms}
        if not gray:
            params["include_color_table"] = True  # each frame has its own palette
        for chunk in GifImagePlugin.getdata(im, **params):
            buf.write(chunk)
    buf.write(b";")  # trailer
    atomic_write(p, buf.getvalue(), what="GIF")  # whole or not at all; never onto a FIFO or device


# --------------------------------------------------------------------------------------------
# write_frames: a forecast to the kind of file its name asks for

#: Video suffixes (lower case) :func:`write_frames` writes with PyAV (the ``video`` extra), and
#: the codecs tried for each, in order (the first one this FFmpeg build has is used).
VIDEO_WRITE_CODECS: dict[str, tuple[str, ...]] = {
    ".mp4": ("libx264", "mpeg4"),
    ".avi": ("mpeg4", "mjpeg"),
    ".webm": ("libvpx-vp9", "libvpx"),
}

#: The kinds of output :func:`write_frames` writes, for messages.
OUTPUT_KINDS = (
    "an animated GIF (.gif), a video (.mp4, .avi, .webm; needs the video extra), a numpy "
    "array (.npy), or a folder of PNGs (a path without a suffix, one ending in '/', or an "
    "existing folder)"
)

_VIDEO_EXTRA = 'pip install -e ".[video]" in a stzoo checkout (or pip install av)'

#: File names of the frames :func:`write_frames` writes into a folder (``frame_000000.png``, ...).
PNG_FRAME_NAME = "frame_{:06d}.png"


def _is_dir(p: Path) -> bool:
    """Whether ``p`` is an existing folder (False for anything the OS cannot look up)."""
    try:
        return stat.S_ISDIR(os.stat(p).st_mode)
    except (OSError, ValueError):
        return False


def output_kind(path: str | os.PathLike) -> str:
    """What :func:`write_frames` writes for ``path``: ``'gif'``, ``'video'``, ``'npy'`` or ``'folder'``.

    Decided by the name alone: ``.gif``, ``.mp4`` / ``.avi`` / ``.webm`` (any case), ``.npy``; a
    folder of PNGs for a path without a suffix, one that ends in ``/``, or an existing folder.

    Raises:
        InputTypeError: ``path`` is not a str / os.PathLike.
        InputError: any other suffix (the message lists the accepted kinds).
    """
    p = _as_path(path, "output path")
    raw = os.fspath(path)
    suffix = p.suffix.lower()
    if raw.endswith(("/", os.sep)) or _is_dir(p) or not suffix:
        return "folder"
    if suffix == ".gif":
        return "gif"
    if suffix == ".npy":
        return "npy"
    if suffix in VIDEO_WRITE_CODECS:
        return "video"
    hint = " (for PNG frames, name a folder, e.g. 'out/')" if suffix in (".png", ".apng") else ""
    raise InputError(
        f"cannot write '{_short_path(p)}': stzoo does not know what to write for the suffix "
        f"{p.suffix!r}{hint}; accepted: {OUTPUT_KINDS}"
    )


def _has_encoder(av: Any, name: str) -> bool:
    """Whether PyAV's FFmpeg build can encode with codec ``name``."""
    try:
        av.codec.Codec(name, "w")
    except Exception:  # noqa: BLE001 - PyAV raises its own error family for a missing encoder
        return False
    return True


def _video_codec(path: Path) -> tuple[Any, str]:
    """PyAV and the first codec of :data:`VIDEO_WRITE_CODECS` it can encode for ``path``'s suffix."""
    try:
        import av
    except ImportError:
        raise InputError(
            f"writing the video '{_short_path(path)}' needs PyAV, which is not installed: install "
            f"the video extra ({_VIDEO_EXTRA}), or write a .gif, a .npy or a folder of PNGs "
            f"instead"
        ) from None
    names = VIDEO_WRITE_CODECS[path.suffix.lower()]
    for name in names:
        if _has_encoder(av, name):
            return av, name
    raise InputError(
        f"cannot write '{_short_path(path)}': this FFmpeg build has none of the encoders "
        f"{', '.join(names)}; write another video kind, a .gif, a .npy or a folder of PNGs"
    )


def _check_output_folder(p: Path) -> None:
    """An output folder must exist, or its parent must (it is then created)."""
    if _is_dir(p):
        return
    if not _is_dir(p.parent):
        raise InputError(
            f"cannot write the folder '{_short_path(p)}': its parent folder '{_short_path(p.parent)}' does not exist"
        )
    if os.path.lexists(p):
        raise InputError(f"cannot write the folder '{_short_path(p)}': a file of that name exists")


def check_output_path(path: str | os.PathLike, *, height: int | None = None, width: int | None = None) -> str:
    """Check that :func:`write_frames` can write ``path`` before any work is done; return its kind.

    Checks the kind (:func:`output_kind`), that the folder it goes into exists, that a file
    output does not name an existing folder, FIFO or device, and for videos that PyAV and an
    encoder are there and (when ``height`` / ``width`` are given) that both are even, as the
    yuv420p videos players expect need.

    Raises:
        InputError: any of those fails (the message says what to do).
    """
    kind = output_kind(path)
    p = _as_path(path, "output path")
    if kind == "folder":
        _check_output_folder(p)
        return kind
    _output_file(p)
    if kind == "video":
        _video_codec(p)
        if (height is not None and height % 2) or (width is not None and width % 2):
            raise InputError(
                f"cannot write '{_short_path(p)}': video frames need an even height and width "
                f"(yuv420p), got {height}×{width}; write a .gif, a .npy or a folder of PNGs "
                f"instead, or crop the frames to an even size"
            )
    return kind


def to_thwc(frames: Any, layout: str, *, channels: int | None = None) -> np.ndarray:
    """``frames`` (a numpy array or tensor in ``layout``) as one T×H×W×C numpy sequence.

    A batch axis of size 1 is dropped; a frame without a channel axis gets one (C = 1). With
    ``channels``, grey ↔ RGB frames are converted to that count (:func:`convert_channels`),
    keeping the dtype. Used to write or show a forecast returned in another layout.

    Raises:
        InputError: ``layout`` is unknown or does not fit, the batch holds more than one
            sequence, or the channels cannot be converted.
    """
    lay = _check_layout_arg(layout)
    if lay is None:
        raise InputError("to_thwc needs the layout of the frames, e.g. layout='TCHW'")
    if isinstance(frames, torch.Tensor):
        t = frames.detach().cpu()
        frames = t.float().numpy() if t.dtype == torch.bfloat16 else t.numpy()
    a = np.asarray(frames)
    if a.ndim != len(lay):
        raise InputError(f"layout {lay!r} needs a {len(lay)}-D input, got {_describe(a)}")
    if "B" in lay:
        if a.shape[0] != 1:
            raise InputError(
                f"{_describe(a)} holds {a.shape[0]} sequences (layout {lay}); one sequence can be "
                f"written as images or video: write a .npy, or pass one sequence"
            )
        a, lay = a[0], lay[1:]
    if "C" not in lay:
        a, lay = a[..., None], lay + "C"
    a = np.ascontiguousarray(np.transpose(a, [lay.index(ch) for ch in "THWC"]))
    if channels is not None and a.shape[-1] != channels:
        values = torch.from_numpy(_numpy_to_unit_float(a, _describe(a)))
        conv = convert_channels(values, channels, dim=-1).numpy()
        if a.dtype.kind == "f":
            return np.ascontiguousarray(conv.astype(a.dtype))
        return np.ascontiguousarray(np.clip(np.rint(conv * 255.0), 0, 255).astype(a.dtype))
    return a


def write_video(frames: Any, path: str | os.PathLike, *, fps: float = 5.0) -> Path:
    """Write frames as a video (``.mp4``, ``.avi`` or ``.webm``) with PyAV (the ``video`` extra).

    Args:
        frames: T×H×W, T×H×W×1 or T×H×W×3 (uint8, integers in [0, 255] or floats in [0, 1], as
            for :func:`write_gif`); grey frames are written as grey RGB. Height and width must
            be even (yuv420p).
        path: the file to write; the codec follows the suffix (:data:`VIDEO_WRITE_CODECS`).
        fps: frames per second (> 0).

    Returns:
        The path written.

    Raises:
        InputError: PyAV or an encoder is missing (the message names the video extra), an odd
            frame size, bad frames or ``fps``, or the file cannot be written.
    """
    data = _frames_to_uint8(frames)
    if isinstance(fps, bool) or not isinstance(fps, (int, float, np.integer, np.floating)):
        raise InputTypeError(f"fps must be a number, got {type(fps).__name__}")
    if not math.isfinite(float(fps)) or fps <= 0:
        raise InputError(f"fps must be a positive finite number, got {fps}")
    p = _as_path(path)
    if p.suffix.lower() not in VIDEO_WRITE_CODECS:
        raise InputError(
            f"cannot write '{_short_path(p)}' as a video: expected a name ending in {', '.join(VIDEO_WRITE_CODECS)}"
        )
    h, w = data.shape[1:3]
    check_output_path(p, height=h, width=w)
    av, codec = _video_codec(p)
    rgb = np.repeat(data, 3, axis=-1) if data.shape[-1] == 1 else data
    from fractions import Fraction

    container_format = {".mp4": "mp4", ".avi": "avi", ".webm": "webm"}[p.suffix.lower()]

    @writes_path
    def encode(tmp: Path) -> None:  # into a temporary file next to p, renamed over it when whole
        try:
            with av.open(str(tmp), "w", format=container_format) as container:
                stream = container.add_stream(codec, rate=Fraction(float(fps)).limit_denominator(1000))
                stream.width, stream.height = w, h
                stream.pix_fmt = "yuvj420p" if codec == "mjpeg" else "yuv420p"
                if codec == "libx264":
                    stream.options = {"crf": "17"}
                for f in rgb:
                    for packet in stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(f), format="rgb24")):
                        container.mux(packet)
                for packet in stream.encode():
                    container.mux(packet)
        except OSError:
            raise
        except Exception as exc:  # PyAV raises its own FFmpegError family, plus ValueError
            raise InputError(f"cannot write video '{_short_path(p)}' ({codec}): {type(exc).__name__}: {exc}") from exc

    atomic_write(p, encode, what="video")
    return p


def write_png_folder(frames: Any, folder: str | os.PathLike) -> Path:
    """Write frames as numbered PNG files (:data:`PNG_FRAME_NAME`) in ``folder``.

    The folder is created if its parent exists. :func:`read_frames` reads it back in order,
    exactly (PNG is lossless; grey frames are 8-bit grey 'L' files, RGB frames 'RGB').

    Raises:
        InputError: bad frames, the parent folder is missing, or the folder already holds other
            images (they would mix with these frames when the folder is read back).
    """
    data = _frames_to_uint8(frames)
    p = _as_path(folder, "output folder")
    _check_output_folder(p)
    names = [PNG_FRAME_NAME.format(i) for i in range(len(data))]
    if _is_dir(p):
        others = sorted(
            f.name
            for f in list_folder(p)
            if f.suffix.lower() in IMAGE_SUFFIXES and not f.name.startswith(".") and f.name not in set(names)
        )
        if others:
            raise InputError(
                f"folder '{_short_path(p)}' already holds {len(others)} other image file(s) (e.g. "
                f"'{others[0]}') that would mix with the forecast when the folder is read back; "
                f"write into an empty or new folder"
            )
    try:
        p.mkdir(exist_ok=True)
    except OSError as exc:
        raise InputError(f"cannot write into folder '{_short_path(p)}': {exc}") from exc
    for name, f in zip(names, data):
        buf = io.BytesIO()
        Image.fromarray(np.ascontiguousarray(f[..., 0] if f.shape[-1] == 1 else f)).save(buf, format="PNG")
        atomic_write(p / name, buf.getvalue(), what="PNG frame")  # never onto a FIFO or device of that name
    return p


def write_frames(frames: Any, path: str | os.PathLike, *, fps: float = 5.0, layout: str | None = None) -> str:
    """Write a forecast to ``path`` as the kind of file its name asks for; return that kind.

    ``.gif`` (:func:`write_gif`), ``.mp4`` / ``.avi`` / ``.webm`` (:func:`write_video`, the
    ``video`` extra), ``.npy`` (``np.save`` of ``frames`` exactly as given: layout and dtype kept),
    or a folder of PNGs (:func:`write_png_folder`) for a path without a suffix, one ending in
    ``/`` or an existing folder. Anything else is refused (:func:`output_kind`).

    Args:
        frames: a numpy array or tensor. For images and videos it is one sequence in ``layout``
            (default T×H×W[×C]); see :func:`to_thwc`.
        path: where to write.
        fps: frames per second of GIFs and videos.
        layout: the layout of ``frames`` (e.g. the input's, which ``predict`` keeps).

    Raises:
        InputError: an unknown suffix, a missing video extra, or frames that cannot be written.
    """
    kind = check_output_path(path)
    p = _as_path(path, "output path")
    if kind == "npy":
        a = frames.detach().cpu().numpy() if isinstance(frames, torch.Tensor) else np.asarray(frames)
        if a.dtype.hasobject:
            raise InputTypeError(f"cannot write '{_short_path(p)}': an object array holds no frames")
        atomic_write(p, lambda fh: np.save(fh, a, allow_pickle=False), what=".npy file")
        return kind
    if layout is not None:
        frames = to_thwc(frames, layout)
    if kind == "gif":
        write_gif(frames, p, fps=fps)
    elif kind == "video":
        write_video(frames, p, fps=fps)
    else:
        write_png_folder(frames, p)
    return kind
