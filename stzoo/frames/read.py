"""Reading, writing and converting frame sequences.

Three jobs live here:

* :func:`read_frames` loads a sequence from disk: an animated GIF / APNG (or any single image),
  a folder of images, a video, or a ``.npy`` / ``.npz`` file.
* :func:`write_frames` writes a sequence as the kind of file its name asks for: a looping
  animated GIF (:func:`write_gif`), a video (:func:`write_video`), a ``.npy`` array or a folder
  of PNGs (:func:`write_png_folder`); :func:`check_output_path` checks a name before any work.
* :func:`prepare_frames` turns whatever a user hands to ``Predictor.predict`` (numpy array, torch
  tensor, list of PIL images or of arrays, or a path) into the ``B×T×C×H×W`` float32 tensor with
  values in ``[0, 1]`` that the models consume, and returns an :class:`OutputFormat` whose
  :meth:`OutputFormat.restore` converts the model's answer back into the same kind of object,
  layout and dtype as the input.

Layouts are strings of upper-case axis letters, ``B`` (batch), ``T`` (time), ``C`` (channel),
``H`` and ``W``; the accepted ones are listed in :data:`LAYOUTS`.

Every mistake in the input is reported as :class:`~stzoo.errors.InputError` (a ``ValueError``) or
:class:`~stzoo.errors.InputTypeError` (a ``TypeError``) with a message that says what was received
and what was expected.
"""

from __future__ import annotations

import io as _io
import math
import os
import re
import stat
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import GifImagePlugin, Image, ImageSequence

from stzoo.errors import InputError, InputTypeError

__all__ = ["ARRAY_SUFFIXES", "IMAGE_SUFFIXES", "LAYOUTS", "LUMA", "OUTPUT_KINDS", "VIDEO_SUFFIXES",
           "VIDEO_WRITE_CODECS", "FramesWarning", "OutputFormat", "check_output_path", "convert_channels",
           "convertible_channels", "frames_layout", "infer_frame_layout", "output_kind", "peek_shape",
           "prepare_frames", "read_frames", "to_thwc", "write_frames", "write_gif", "write_png_folder",
           "write_video"]

#: Accepted layouts of a frame sequence (B: batch, T: time, C: channel, H: height, W: width).
LAYOUTS: tuple[str, ...] = ("THW", "THWC", "TCHW", "BTHW", "BTHWC", "BTCHW")

#: File suffixes (lower case) read as images, in a folder or as a single file.
IMAGE_SUFFIXES: tuple[str, ...] = (".png", ".apng", ".jpg", ".jpeg", ".bmp", ".gif", ".tif",
                                   ".tiff", ".webp")

#: File suffixes (lower case) read with numpy.
ARRAY_SUFFIXES: tuple[str, ...] = (".npy", ".npz")

#: File suffixes (lower case) read as video through PyAV (the optional extra ``stzoo[video]``).
VIDEO_SUFFIXES: tuple[str, ...] = (".mp4", ".m4v", ".avi", ".mov", ".mkv", ".webm")

_UNBATCHED_LAYOUTS: tuple[str, ...] = ("THW", "THWC", "TCHW")

# Values of float inputs may stray this far outside [0, 1] (rounding noise) and are clipped.
_FLOAT_TOLERANCE = 1e-3

# Pillow modes that hold one grey channel. The wide ones (more than 8 bits) are rescaled by hand.
_GRAY_MODES = frozenset({"1", "L", "LA", "La", "I", "F", "I;16", "I;16L", "I;16B", "I;16N"})
_WIDE_GRAY_MODES = frozenset({"I", "F", "I;16", "I;16L", "I;16B", "I;16N"})

_READ_ERRORS = (OSError, ValueError, EOFError, SyntaxError, Image.DecompressionBombError)

_TORCH_FLOATS = (torch.float16, torch.bfloat16, torch.float32, torch.float64)
_TORCH_INTS = tuple(getattr(torch, name) for name in
                    ("int8", "int16", "int32", "int64", "uint16", "uint32", "uint64")
                    if hasattr(torch, name))

_ACCEPTED_KINDS = ("a numpy array, a torch tensor, a list/tuple of PIL images, a list/tuple of "
                   "numpy arrays (one per frame), or a path (str / os.PathLike) to a GIF / APNG, "
                   "a folder of images, or a .npy / .npz file")


# --------------------------------------------------------------------------------------------
# small helpers


def _shape_str(shape: Sequence[int]) -> str:
    """``(2, 3, 4)`` -> ``'(2, 3, 4)'`` (also for 1-tuples, without the trailing comma)."""
    return "(" + ", ".join(str(int(s)) for s in shape) + ")"


def _describe(x: Any) -> str:
    """A short description of an array-like for error messages: kind, shape and dtype."""
    if isinstance(x, torch.Tensor):
        dtype = str(x.dtype).removeprefix("torch.")
        return f"torch tensor of shape {_shape_str(x.shape)}, dtype {dtype}, on {x.device}"
    if isinstance(x, np.ndarray):
        return f"numpy array of shape {_shape_str(x.shape)} and dtype {x.dtype}"
    return f"object of type {type(x).__name__}"


def _as_path(path: Any, what: str = "path") -> Path:
    """Check that ``path`` is a str or os.PathLike naming a file system path; return it."""
    if isinstance(path, (str, os.PathLike)) and not isinstance(path, bytes):
        raw = os.fspath(path)
        if isinstance(raw, str):
            if raw == "":
                raise InputError(f"{what} is an empty string")
            return Path(raw)
    raise InputTypeError(f"{what} must be a str or os.PathLike, got {type(path).__name__}")


def _short_path(p: Path | str, limit: int = 120) -> str:
    """A path for error messages, shortened in the middle when it is very long."""
    text = str(p)
    if len(text) <= limit:
        return text
    return f"{text[:limit // 2]}...[{len(text)} characters in all]...{text[-limit // 4:]}"


def _stat_path(p: Path, what: str = "path") -> os.stat_result:
    """``os.stat(p)`` (following links), with every failure as an :class:`InputError`.

    Only stats the path, so it never blocks, also on a FIFO or a device file.
    """
    try:
        return os.stat(p)
    except FileNotFoundError:
        raise InputError(f"no such file or folder: '{_short_path(p)}'") from None
    except (OSError, ValueError) as exc:  # ENAMETOOLONG, EACCES, ELOOP, embedded NUL (ValueError)
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise InputError(f"cannot use {what} '{_short_path(p)}': {reason}; pass the path of an "
                         f"existing file or folder") from None


def _check_regular_file(p: Path, st: os.stat_result) -> None:
    """Refuse anything but a regular file (FIFOs, sockets and devices could block or never end)."""
    if not stat.S_ISREG(st.st_mode):
        raise InputError(f"'{_short_path(p)}' is not a regular file or a folder (it is a FIFO, "
                         f"socket or device), so stzoo does not read it: reading it could block or "
                         f"never end; copy the data into a regular file first")


def _output_file(path: Any) -> Path:
    """Check a path to write to: its folder exists and it is not an existing non-regular file."""
    p = _as_path(path)

    def stat_or_none(q: Path) -> os.stat_result | None:
        try:
            return os.stat(q)
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:  # ENAMETOOLONG, EACCES, ELOOP, embedded NUL
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            raise InputError(f"cannot write '{_short_path(p)}': {reason}") from None

    parent = stat_or_none(p.parent)
    if parent is None or not stat.S_ISDIR(parent.st_mode):
        raise InputError(f"cannot write '{_short_path(p)}': folder '{_short_path(p.parent)}' "
                         f"does not exist")
    st = stat_or_none(p)
    if st is not None and not stat.S_ISREG(st.st_mode):
        raise InputError(f"cannot write '{_short_path(p)}': it exists and is not a regular file "
                         f"(a folder, FIFO, socket or device); pick another file name")
    return p


def _natural_key(name: str) -> tuple[Any, ...]:
    """Sort key that orders embedded numbers by value: ``frame2`` before ``frame10``."""
    parts = re.split(r"([0-9]+)", name)
    key = tuple(int(p) if i % 2 else p.casefold() for i, p in enumerate(parts))
    return (key, name)


def _check_image_channels(channels: Any, *, allow_none: bool) -> int | None:
    """Validate the channel count used to convert images (1, 3, or None when allowed)."""
    if channels is None and allow_none:
        return None
    if isinstance(channels, bool) or not isinstance(channels, (int, np.integer)):
        raise InputTypeError(f"channels must be 1 or 3{' or None' if allow_none else ''}, "
                             f"got {channels!r} ({type(channels).__name__})")
    if int(channels) not in (1, 3):
        raise InputError(f"images can be read with 1 (grayscale) or 3 (RGB) channels, got "
                         f"channels={int(channels)}")
    return int(channels)


# --------------------------------------------------------------------------------------------
# images -> arrays


def _palette_is_gray(im: Image.Image) -> bool:
    """Whether every palette colour a 'P' / 'PA' image actually uses is a shade of grey."""
    palette = im.getpalette("RGB")
    if not palette:
        return True  # Pillow treats a palette image without palette as grayscale
    colors = im.getcolors(256)
    if colors is None:
        used: Sequence[int] = range(len(palette) // 3)
    else:  # 'P': (count, index); 'PA': (count, (index, alpha))
        used = [c[1][0] if isinstance(c[1], tuple) else c[1] for c in colors]
    for i in used:
        r, g, b = palette[3 * i: 3 * i + 3] if 3 * i + 3 <= len(palette) else (0, 0, 0)
        if not r == g == b:
            return False
    return True


def _is_gray(im: Image.Image, *, later_frame: bool = False) -> bool:
    """Whether an image holds grey levels only.

    Decided by mode: '1', 'L', 'LA', 16/32-bit grey, and palette images whose used colours are
    all grey. ``later_frame`` marks the second and later frames of a multi-frame file: Pillow
    decodes those of a GIF as 'RGB' / 'RGBA' whatever the file holds, so for them an RGB frame
    with three equal channels counts as grey too.
    """
    mode = im.mode
    if mode in _GRAY_MODES:
        return True
    if mode in ("P", "PA"):
        return _palette_is_gray(im)
    if later_frame and mode in ("RGB", "RGBA"):
        a = np.asarray(im)
        return bool(np.array_equal(a[..., 0], a[..., 1]) and np.array_equal(a[..., 1], a[..., 2]))
    return False


def _float_image_scale(images: Sequence[Image.Image], names: Sequence[str]) -> float:
    """The factor that maps the 'F' (32-bit float) images of a sequence to 0-255.

    Decided by the value range of all of them together, so every frame is read the same way:
    values in [0, 1] (give or take rounding noise) are taken as [0, 1] (factor 255), otherwise
    values in [0, 255] as 8-bit levels (factor 1). NaN / inf or values outside [0, 255] are refused.
    """
    lo, hi = math.inf, -math.inf
    for im, name in zip(images, names):
        if im.mode != "F":
            continue
        a = np.asarray(im, dtype=np.float32)
        if not np.isfinite(a).all():
            raise InputError(f"image {name} (mode 'F', 32-bit float) contains NaN or infinite values")
        if a.size:
            lo, hi = min(lo, float(a.min())), max(hi, float(a.max()))
    if lo >= -_FLOAT_TOLERANCE and hi <= 1 + _FLOAT_TOLERANCE:
        return 255.0
    if lo >= -0.5 and hi <= 255.5:
        return 1.0
    raise InputError(f"mode 'F' (32-bit float) frames hold values in [{lo:.4g}, {hi:.4g}] (the "
                     f"sequence that starts with image {names[0]}); stzoo reads float images with "
                     f"values in [0, 1] or in [0, 255] and does not clip them; scale them to one "
                     f"of those ranges first")


def _image_to_array(im: Image.Image, gray: bool, float_scale: float = 1.0) -> np.ndarray:
    """One image as an H×W×1 (``gray``) or H×W×3 uint8 array.

    16-bit grey ('I;16', 'I') is scaled to 8 bits (divided by 257); an 'I' image with values
    outside [0, 65535] is refused. 'F' is multiplied by ``float_scale`` (see
    :func:`_float_image_scale`). Alpha channels are dropped.
    """
    if im.mode in _WIDE_GRAY_MODES:
        a = np.asarray(im)
        if im.mode == "F":
            a = np.clip(np.nan_to_num(a.astype(np.float64)) * float_scale, 0, 255)
        else:
            a = a.astype(np.int64)
            if a.size and (int(a.min()) < 0 or int(a.max()) > 65535):
                raise ValueError(f"it holds values in [{int(a.min())}, {int(a.max())}], outside "
                                 f"the 16-bit range [0, 65535] that stzoo reads from integer grey "
                                 f"images (it does not clip them); scale the values to 0-65535 "
                                 f"(or convert to 8-bit mode 'L') first")
            a = a / 257.0
        g = np.rint(a).astype(np.uint8)[..., None]
        return g if gray else np.repeat(g, 3, axis=-1)
    out = np.asarray(im.convert("L" if gray else "RGB"), dtype=np.uint8)
    if gray:
        out = out[..., None]
    return np.ascontiguousarray(out)


def _images_to_array(images: Sequence[Image.Image], names: Sequence[str], channels: int | None,
                     *, sequence: bool) -> np.ndarray:
    """Stack same-sized images into T×H×W×C uint8, choosing grey or RGB per ``channels``.

    ``sequence`` says the images are the frames of one multi-frame file (see :func:`_is_gray`).
    """
    first = images[0]
    for im, name in zip(images, names):
        if im.size != first.size:
            raise InputError(f"frames differ in size: image {name} is {im.height}x{im.width} (HxW) "
                             f"but image {names[0]} is {first.height}x{first.width}; every frame of "
                             f"a sequence must have the same size (resize them first)")
    if channels is None:
        gray = all(_is_gray(im, later_frame=sequence and i > 0) for i, im in enumerate(images))
    else:
        gray = channels == 1
    float_scale = _float_image_scale(images, names) if any(im.mode == "F" for im in images) else 1.0
    arrays = []
    for im, name in zip(images, names):
        try:
            arrays.append(_image_to_array(im, gray, float_scale))
        except _READ_ERRORS as exc:
            raise InputError(f"cannot convert image {name} (mode {im.mode}) to "
                             f"{'grayscale' if gray else 'RGB'}: {exc}") from exc
    return np.stack(arrays)


def _read_image_file(path: Path, channels: int | None) -> np.ndarray:
    """All frames of one image file (GIF, APNG, multi-page TIFF, or a still image: T = 1)."""
    frames: list[Image.Image] = []
    try:
        with Image.open(path) as im:
            for frame in ImageSequence.Iterator(im):
                frames.append(frame.copy())  # copy: the iterator reuses the frame object
    except _READ_ERRORS as exc:
        raise InputError(f"cannot read image file '{path}': {exc}") from exc
    if not frames:
        raise InputError(f"image file '{path}' holds no frames")
    names = [f"'{path}' frame {i}" for i in range(len(frames))]
    return _images_to_array(frames, names, channels, sequence=True)


def _read_folder(folder: Path, channels: int | None) -> np.ndarray:
    """Images of a folder, one frame each, in natural order of their file names."""
    files = sorted((p for p in folder.iterdir()
                    if p.is_file() and not p.name.startswith(".")
                    and p.suffix.lower() in IMAGE_SUFFIXES),
                   key=lambda p: _natural_key(p.name))
    if not files:
        raise InputError(f"folder '{folder}' contains no image files (looked for "
                         f"{', '.join(IMAGE_SUFFIXES)})")
    images: list[Image.Image] = []
    for f in files:
        try:
            with Image.open(f) as im:
                im.load()
                image = im.copy()  # first frame only; a file in a folder is one frame
        except _READ_ERRORS as exc:
            raise InputError(f"cannot read image file '{f}': {exc}") from exc
        if images and image.size != images[0].size:
            w0, h0 = images[0].size
            w, h = image.size
            raise InputError(f"frames of folder '{folder}' differ in size: '{f.name}' is "
                             f"{h}x{w} (HxW) but the first frame '{files[0].name}' is {h0}x{w0}")
        images.append(image)
    names = [f"'{f}'" for f in files]
    return _images_to_array(images, names, channels, sequence=False)


def _read_array_file(path: Path) -> np.ndarray:
    """The array of a .npy file, or of a .npz file ('frames' if present, else the first)."""
    try:
        if path.suffix.lower() == ".npy":
            return np.load(path, allow_pickle=False)
        with np.load(path, allow_pickle=False) as archive:
            names = list(archive.files)
            if not names:
                raise InputError(f"'{path}' holds no arrays")
            return archive["frames" if "frames" in names else names[0]]
    except InputError:
        raise
    except Exception as exc:  # numpy/zipfile raise many kinds (ValueError, BadZipFile, ...)
        raise InputError(f"cannot read array file '{path}': {type(exc).__name__}: {exc}") \
            from exc


def _read_video_file(path: Path, channels: int | None) -> np.ndarray:
    """All frames of an MP4 / AVI / MOV / ... file, decoded with PyAV (``pip install -e ".[video]"`` from a checkout)."""
    try:
        import av
    except ImportError as exc:
        raise InputError(f"reading '{path}' needs PyAV, which is not installed: run "
                         "`pip install -e \".[video]\"` from a checkout (or `pip install av`), or convert the video to "
                         "a GIF / folder of images / .npy first") from exc
    frames: list[Image.Image] = []
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise InputError(f"'{path}' holds no video stream")
            for frame in container.decode(video=0):
                frames.append(frame.to_image())
    except InputError:
        raise
    except Exception as exc:  # PyAV raises its own FFmpegError family, plus OSError / ValueError
        raise InputError(f"cannot read video file '{path}': {type(exc).__name__}: {exc}") from exc
    if not frames:
        raise InputError(f"video file '{path}' holds no frames")
    names = [f"'{path}' frame {i}" for i in range(len(frames))]
    # Decoded frames are RGB: a grey video is recognised by three equal channels.
    return _images_to_array(frames, names, channels, sequence=True)


def read_frames(path: str | os.PathLike, *, channels: int | None = None) -> np.ndarray:
    """Read a frame sequence from disk.

    Args:
        path: one of

            * an image file: an animated GIF / APNG (all frames, via Pillow's
              ``ImageSequence``; a still image gives one frame);
            * a folder of images (``.png .apng .jpg .jpeg .bmp .gif .tif .tiff .webp``, any
              case; hidden files and other files ignored), one frame per file (the first frame
              of a multi-frame file), sorted *naturally* by file name (``frame2`` before
              ``frame10``);
            * a ``.npy`` file, or a ``.npz`` file (the array named ``'frames'`` if there is one,
              else the first array);
            * a video file (``.mp4 .m4v .avi .mov .mkv .webm``), decoded with PyAV, which the
              optional extra ``pip install -e ".[video]"`` installs.
        channels: for images only: 1 converts every frame to grayscale ('L'), 3 to 'RGB'. With
            ``None``, the sequence is grayscale when every frame is ('1', 'L', 'LA', 16-bit grey,
            or a palette whose used colours are all grey; for GIF frames after the first, which
            Pillow decodes as RGB, three equal channels), otherwise RGB. Ignored for ``.npy`` /
            ``.npz``. How pixel values are read:

            * alpha ('RGBA', 'LA', 'PA', ...) is dropped: the colour values are kept as they are,
              not blended onto a background;
            * 16-bit grey ('I;16', 'I;16B', ...) and 32-bit integer grey ('I') are read as
              16-bit and scaled to 8 bits (divided by 257); an 'I' image with values outside
              [0, 65535] is refused rather than clipped;
            * 32-bit float grey ('F') is decided by the value range of all 'F' frames of the
              sequence together: values in [0, 1] are taken as [0, 1] (times 255), otherwise
              values in [0, 255] as 8-bit levels; NaN / inf or values outside [0, 255] are
              refused.

            Only folders and regular files are read: FIFOs, sockets and devices are refused
            before they are opened.

    Returns:
        For images: a T×H×W×C uint8 array (C = 1 or 3). For ``.npy`` / ``.npz``: the stored array
        as is (any dtype and layout, not converted).

    Raises:
        InputTypeError: ``path`` is not a str / os.PathLike, or ``channels`` is not an int.
        InputError: the path does not exist or cannot be used (too long, no permission), is
            not a folder or regular file, the folder holds no images, a file cannot be read
            (the file is named), the frames of a folder or multi-page file differ in size (the
            first mismatching frame and both sizes are named), pixel values cannot be read
            without clipping ('I', 'F' above), the suffix is not supported, or ``channels`` is
            not 1, 3 or None.
    """
    p = _as_path(path)
    channels = _check_image_channels(channels, allow_none=True)
    st = _stat_path(p)  # stat only: never opens (and so never blocks on) a FIFO or device
    if stat.S_ISDIR(st.st_mode):
        return _read_folder(p, channels)
    _check_regular_file(p, st)
    suffix = p.suffix.lower()
    if suffix in ARRAY_SUFFIXES:
        return _read_array_file(p)
    if suffix in IMAGE_SUFFIXES:
        return _read_image_file(p, channels)
    if suffix in VIDEO_SUFFIXES:
        return _read_video_file(p, channels)
    raise InputError(f"cannot read '{p}': unsupported suffix {p.suffix!r}; expected a folder of "
                     f"images or a file ending in "
                     f"{', '.join(IMAGE_SUFFIXES + ARRAY_SUFFIXES + VIDEO_SUFFIXES)}")


# --------------------------------------------------------------------------------------------
# value conversion


def _numpy_to_unit_float(a: np.ndarray, desc: str) -> np.ndarray:
    """Values of a numpy array as float32 in [0, 1] (uint8 / int: /255; float: checked)."""
    kind = a.dtype.kind
    if a.dtype == np.uint8:
        return a.astype(np.float32) / np.float32(255)
    if kind in "iu":
        lo, hi = a.min(), a.max()
        if lo < 0 or hi > 255:
            raise InputError(f"integer frames must hold values in [0, 255], got values in "
                             f"[{lo}, {hi}] ({desc}); pass uint8 or floats in [0, 1]")
        return a.astype(np.float32) / np.float32(255)
    if kind == "f":
        if not np.isfinite(a).all():
            raise InputError(f"frames contain NaN or infinite values ({desc})")
        lo, hi = float(a.min()), float(a.max())
        if lo < -_FLOAT_TOLERANCE or hi > 1 + _FLOAT_TOLERANCE:
            raise InputError(f"float frames must hold values in [0, 1], got values in "
                             f"[{lo:.4g}, {hi:.4g}] ({desc}); pass uint8 frames (0-255) or "
                             f"scale the floats to [0, 1]")
        return np.clip(a.astype(np.float32), 0.0, 1.0)
    raise InputTypeError(f"unsupported dtype {a.dtype} ({desc}); expected uint8, another "
                         f"integer type with values in [0, 255], or float in [0, 1]")


def _check_numpy_dtype(a: np.ndarray, desc: str) -> None:
    """Reject dtypes that cannot hold pixel values (bool, complex, object, strings, ...)."""
    if a.dtype.kind not in "iuf":
        raise InputTypeError(f"unsupported dtype {a.dtype} ({desc}); expected uint8, another "
                             f"integer type with values in [0, 255], or float in [0, 1]")


def _check_tensor_has_data(t: torch.Tensor) -> None:
    """Refuse tensors whose values cannot be read: nested tensors and tensors on the meta device."""
    if getattr(t, "is_nested", False):
        raise InputTypeError("nested tensors are not accepted as frames; pass a dense tensor in one "
                             "of the layouts " + ", ".join(LAYOUTS))
    if t.device.type == "meta":
        raise InputError(f"the {_describe(t)} holds no values (the meta device only records shapes); "
                         f"pass a tensor on the CPU or a GPU, e.g. materialise it with "
                         f"torch.empty_like(t, device='cpu') and fill it first")


def _check_torch_dtype(t: torch.Tensor, desc: str) -> None:
    """Reject tensor dtypes and layouts that cannot hold pixel values."""
    if t.layout != torch.strided:
        raise InputTypeError(f"unsupported tensor layout {t.layout} ({desc}); pass a dense "
                             f"tensor (e.g. tensor.to_dense())")
    if t.dtype not in _TORCH_FLOATS and t.dtype != torch.uint8 and t.dtype not in _TORCH_INTS:
        raise InputTypeError(f"unsupported dtype {str(t.dtype).removeprefix('torch.')} "
                             f"({desc}); expected uint8, another integer type with values in "
                             f"[0, 255], or float16/bfloat16/float32/float64 in [0, 1]")


def _torch_to_unit_float(t: torch.Tensor, desc: str) -> torch.Tensor:
    """Values of a tensor as float32 in [0, 1] on the same device."""
    if t.dtype == torch.uint8:
        return t.to(torch.float32) / 255.0
    if t.dtype in _TORCH_INTS:
        wide = t.to(torch.int64)
        lo, hi = int(wide.min()), int(wide.max())
        if lo < 0 or hi > 255:
            raise InputError(f"integer frames must hold values in [0, 255], got values in "
                             f"[{lo}, {hi}] ({desc}); pass uint8 or floats in [0, 1]")
        return wide.to(torch.float32) / 255.0
    if not bool(torch.isfinite(t).all()):
        raise InputError(f"frames contain NaN or infinite values ({desc})")
    lo, hi = float(t.min()), float(t.max())
    if lo < -_FLOAT_TOLERANCE or hi > 1 + _FLOAT_TOLERANCE:
        raise InputError(f"float frames must hold values in [0, 1], got values in "
                         f"[{lo:.4g}, {hi:.4g}] ({desc}); pass uint8 frames (0-255) or scale "
                         f"the floats to [0, 1]")
    return t.to(torch.float32).clamp(0.0, 1.0)


# --------------------------------------------------------------------------------------------
# layouts


def _check_layout_arg(layout: Any) -> str | None:
    """Validate the ``layout=`` argument (case-insensitive); return it upper-cased."""
    if layout is None:
        return None
    if not isinstance(layout, str):
        raise InputTypeError(f"layout must be a str such as 'THWC' or None, got "
                             f"{type(layout).__name__}")
    upper = layout.upper()
    if upper not in LAYOUTS:
        raise InputError(f"unknown layout {layout!r}; expected one of {', '.join(LAYOUTS)}")
    return upper


#: Sizes of a last axis that may hold colour channels (grey + alpha, RGB, RGBA) ...
_COLOUR_AXIS_SIZES = (2, 3, 4)
#: ... and of an axis before H×W (C×H×W: RGB, RGBA; 2 is left alone, a plausible T) ...
_LEADING_COLOUR_AXIS_SIZES = (3, 4)
#: ... when the two axes that would then be H and W are at least this long (image-sized).
_IMAGE_SIDE = 16

#: ITU-R BT.601 luma weights of R, G and B: the ones Pillow's 'L' conversion uses.
LUMA: tuple[float, float, float] = (0.299, 0.587, 0.114)


class FramesWarning(UserWarning):
    """Frames were accepted after a conversion or outside what the model was trained on.

    :class:`~stzoo.inference.predictor.Predictor` and :class:`~stzoo.inference.forecaster.Forecaster` emit it once per
    Predictor and cause: RGB frames converted to grey for a 1-channel model (or grey to RGB for a
    3-channel one), or a frame size other than the training size.
    """


def convertible_channels(channels: int) -> tuple[int, ...]:
    """Channel counts of input frames that are converted to ``channels`` rather than refused.

    RGB (3) frames feed a grey (1-channel) model through their luminance (:data:`LUMA`), grey frames
    feed an RGB model repeated into R, G and B; other counts (alpha, 2-channel fields) convert to
    nothing: ``(3,)`` for 1, ``(1,)`` for 3, ``()`` otherwise.
    """
    return {1: (3,), 3: (1,)}.get(int(channels), ())


def convert_channels(x: torch.Tensor, channels: int, *, dim: int = 2) -> torch.Tensor:
    """Convert axis ``dim`` of float frames (B×T×C×H×W by default) from grey to RGB or back.

    3 → 1 is the BT.601 luminance ``0.299·R + 0.587·G + 0.114·B`` (:data:`LUMA`), 1 → 3 repeats the
    grey value into R, G and B; an axis that already has ``channels`` entries is returned as is.

    Raises:
        InputError: any other pair of channel counts.
    """
    have = x.shape[dim]
    if have == channels:
        return x
    if have == 3 and channels == 1:
        shape = [1] * x.ndim
        shape[dim] = 3
        w = torch.tensor(LUMA, dtype=x.dtype, device=x.device).reshape(shape)
        return (x * w).sum(dim=dim, keepdim=True).clamp_(0.0, 1.0)
    if have == 1 and channels == 3:
        return x.expand(*[3 if i == dim % x.ndim else -1 for i in range(x.ndim)]).contiguous()
    raise InputError(f"cannot convert frames with {have} channel(s) to {channels}: only grey (1) ↔ RGB (3) "
                     f"is converted")


def _looks_like_channels(shape: tuple[int, ...], axis: int) -> bool:
    """Whether ``shape[axis]`` looks like a colour channel axis of H×W×C / C×H×W frames.

    True when the two axes beside it that would be H×W (the two before a last axis; the two
    after any other) are both at least :data:`_IMAGE_SIDE` long and it has 2, 3 or 4 entries
    (a last axis) or 3 or 4 (an axis before H×W).
    """
    n = len(shape)
    axis %= n
    last = axis == n - 1
    sides = shape[axis - 2:axis] if last else shape[axis + 1:axis + 3]
    sizes = _COLOUR_AXIS_SIZES if last else _LEADING_COLOUR_AXIS_SIZES
    return shape[axis] in sizes and len(sides) == 2 and all(s >= _IMAGE_SIDE for s in sides)


def _colour_hint(shape: tuple[int, ...], channels: int) -> str:
    """Advice for colour / alpha channels that do not match the model (empty if none seen)."""
    if shape and shape[-1] == 4 and channels in (1, 3) and _looks_like_channels(shape, -1):
        then = " (the RGB frames are then converted to grey)" if channels == 1 else ""
        return (f"; for RGBA H×W×4 frames, drop alpha with frames[..., :3]{then}: stzoo does not drop "
                f"alpha from arrays itself")
    return ""


def _channel_axis_matches(shape: tuple[int, ...], axis: int, count: int, exact: bool) -> bool:
    """Whether ``shape[axis]`` can be the channel axis of ``count`` channels.

    ``exact`` (the model's own channel count) needs the size only; a count that is converted
    (:func:`convertible_channels`) also needs the axis to look like one: a size-1 axis, or a colour
    axis beside two image-sized axes (:func:`_looks_like_channels`), so that e.g. the 3 of a
    2×3×4×5 batch is not read as RGB.
    """
    if shape[axis] != count:
        return False
    return exact or count == 1 or _looks_like_channels(shape, axis)


def _pick_channel_axis(shape: tuple[int, ...], channels: int, axes: tuple[int, int]) -> int | None:
    """Which of ``axes`` (a last axis, then an axis before H×W) holds the channels, or None.

    The model's channel count is tried first, then a convertible one. When both axes fit, the
    last axis wins unless the last two axes are equal (they look like H×W).
    """
    last, lead = axes
    for count in (channels,) + convertible_channels(channels):
        exact = count == channels
        at_last = _channel_axis_matches(shape, last, count, exact)
        at_lead = _channel_axis_matches(shape, lead, count, exact)
        if at_last and at_lead:
            return lead if shape[-1] == shape[-2] else last
        if at_last:
            return last
        if at_lead:
            return lead
    return None


def infer_frame_layout(shape: tuple[int, ...], channels: int) -> str | None:
    """``'HWC'``, ``'CHW'`` (or ``'HW'`` for 2-D) for the shape of ONE frame, or None if no axis fits.

    The model's channel count first, then a convertible one (:func:`convertible_channels`);
    when both the last and the first axis fit, HWC wins unless the last two axes are equal.
    """
    shape = tuple(int(s) for s in shape)
    if len(shape) == 2:
        return "HW" if channels == 1 or 1 in convertible_channels(channels) else None
    if len(shape) != 3:
        return None
    for count in (channels,) + convertible_channels(channels):
        last, first = shape[-1] == count, shape[0] == count
        if last and first:
            return "CHW" if shape[-1] == shape[-2] else "HWC"
        if last:
            return "HWC"
        if first:
            return "CHW"
    return None


def _takes(channels: int) -> str:
    """'1 (grey) channel', '3 (RGB) channels or grey frames (converted)', ... for messages."""
    alt = convertible_channels(channels)
    name = {1: "1 (grey) channel", 3: "3 (RGB) channels"}.get(channels, f"{channels} channel(s)")
    return name + (f" (or {alt[0]}, converted)" if alt else "")


def _infer_layout(shape: tuple[int, ...], channels: int, allowed: tuple[str, ...],
                  desc: str) -> str:
    """Guess the layout of an array from its shape and the model's channel count.

    See :func:`prepare_frames` for the rules.
    """
    ndim = len(shape)
    c = channels
    grey_ok = c == 1 or 1 in convertible_channels(c)  # frames without a channel axis are grey
    hint = "pass layout='...' to say which axis is which" + _colour_hint(shape, c)
    if ndim == 3:
        if not grey_ok:
            raise InputError(f"a 3-D input is read as THW (one channel), but the model expects {c} "
                             f"channels ({desc}); pass a 4-D T×H×W×{c} (THWC) or T×{c}×H×W (TCHW) "
                             f"array")
        if _looks_like_channels(shape, -1):
            raise InputError(
                f"the {desc} would be read as THW ({shape[0]} grey frames of {shape[1]}x{shape[2]}), "
                f"but its last axis, of size {shape[-1]}, looks like the colour channels of one "
                f"H×W×{shape[-1]} image; pass layout='THW' if the THW reading is right, else pass a "
                f"sequence with a time axis (T×H×W×{shape[-1]}; frames[None] for one frame)"
                f"{_colour_hint(shape, c)}")
        return "THW"
    if ndim == 4:
        axis = _pick_channel_axis(shape, c, (3, 1))
        if axis is not None:
            return "THWC" if axis == 3 else "TCHW"
        if grey_ok and "BTHW" in allowed:
            # Never let a colour axis (RGBA / grey+alpha THWC or TCHW video) pass as B, T, H or W.
            suspect = [i for i in (3, 1) if _looks_like_channels(shape, i)]
            if suspect:
                i = suspect[0]
                raise InputError(
                    f"the {desc} would be read as BTHW ({shape[0]} sequences of {shape[1]} "
                    f"frames of {shape[2]}x{shape[3]}), but its axis {i}, of size {shape[i]}, "
                    f"looks like a colour channel axis ({'THWC' if i == 3 else 'TCHW'} with "
                    f"{shape[i]} channels), and this model takes {_takes(c)}; pass "
                    f"layout='BTHW' if the BTHW reading is right, else pass frames with "
                    f"{'1 or 3' if 3 in (c,) + convertible_channels(c) else c} channel(s)"
                    f"{_colour_hint(shape, c)}")
            return "BTHW"
        raise InputError(f"cannot tell the layout of the {desc} for a model that takes {_takes(c)}: "
                         f"expected THWC (last axis of size {c}) or TCHW (axis 1 of size {c}); {hint}")
    if ndim == 5:
        axis = _pick_channel_axis(shape, c, (4, 2))
        if axis is not None:
            return "BTHWC" if axis == 4 else "BTCHW"
        raise InputError(f"cannot tell the layout of the {desc} for a model that takes {_takes(c)}: "
                         f"expected BTHWC (last axis {c}) or BTCHW (axis 2 of size {c}); {hint}")
    raise AssertionError("unreachable: ndim checked before")  # pragma: no cover


def _resolve_layout(shape: tuple[int, ...], channels: int, layout: str | None,
                    allowed: tuple[str, ...], desc: str) -> str:
    """Check the shape against ``layout`` (or infer it) and check the channel count.

    A channel count that :func:`convertible_channels` converts to ``channels`` is accepted.
    """
    ndims = sorted({len(lay) for lay in allowed})
    given = layout is not None
    if layout is not None:
        if layout not in allowed:
            raise InputError(f"layout {layout!r} is not accepted here; expected one of "
                             f"{', '.join(allowed)}")
        if len(layout) != len(shape):
            raise InputError(f"layout {layout!r} needs a {len(layout)}-D input, got a {desc}")
    else:
        if len(shape) not in ndims:
            extra = (" (a single frame? the input needs a time axis T: frames[None])"
                     if len(shape) == min(ndims) - 1 else "")
            raise InputError(f"expected a {ndims[0]}-D to {ndims[-1]}-D input (layouts "
                             f"{', '.join(allowed)}), got a {desc}{extra}")
        layout = _infer_layout(shape, channels, allowed, desc)
    got = shape[layout.index("C")] if "C" in layout else 1
    if got != channels and got not in convertible_channels(channels):
        how = "the layout passed" if given else "the layout inferred from the shape"
        raise InputError(f"expected {channels} channel(s), got {got} ({desc}, read as layout "
                         f"{layout}, {how}); if that is not its layout, pass layout= (one of "
                         f"{', '.join(allowed)}){_colour_hint(shape, channels)}")
    return layout


def _channels_of(shape: tuple[int, ...], layout: str) -> int:
    """The channel count of an input of ``shape`` read as ``layout`` (1 without a C axis)."""
    return int(shape[layout.index("C")]) if "C" in layout else 1


def _check_not_empty(shape: tuple[int, ...], desc: str) -> None:
    """Reject arrays with a zero-sized axis."""
    if any(s == 0 for s in shape):
        raise InputError(f"empty input: {desc} has an axis of size 0")


def _to_btchw(t: torch.Tensor, layout: str) -> torch.Tensor:
    """Permute a tensor of ``layout`` into a contiguous B×T×C×H×W tensor."""
    src = layout
    if "B" not in src:
        t, src = t.unsqueeze(0), "B" + src
    if "C" not in src:
        t, src = t.unsqueeze(-1), src + "C"
    return t.permute([src.index(ch) for ch in "BTCHW"]).contiguous()


def _from_btchw(y: torch.Tensor, layout: str) -> torch.Tensor:
    """Inverse of :func:`_to_btchw` (drops C if the layout has none, B if unbatched)."""
    target = layout if "B" in layout else "B" + layout
    src = "BTCHW"
    if "C" not in target:
        y, src = y[:, :, 0], "BTHW"
    y = y.permute([src.index(ch) for ch in target])
    return y if "B" in layout else y[0]


# --------------------------------------------------------------------------------------------
# OutputFormat


@dataclass(frozen=True)
class OutputFormat:
    """How the user's input looked, so that a prediction can be returned in the same form.

    Made by :func:`prepare_frames`; use :meth:`restore`.

    Attributes:
        kind: ``'numpy'``, ``'torch'``, ``'pil'`` (list/tuple of PIL images), ``'arrays'``
            (list/tuple of numpy arrays, one per frame) or ``'path'``.
        layout: layout of the result (one of :data:`LAYOUTS`).
        channels: channel count C of the model.
        dtype: numpy dtype (kinds 'numpy', 'arrays', 'path') or torch dtype ('torch').
        device: torch device of the input tensor (kind 'torch').
        container: ``list`` or ``tuple`` (kinds 'pil', 'arrays').
        pil_mode: ``'L'`` or ``'RGB'`` (kind 'pil').
        source_channels: channel count of the input frames when it differs from ``channels``
            (they were converted, see :func:`convert_channels`); ``None`` when they match.
        layout_inferred: whether ``layout`` was inferred from the shape (not passed as ``layout=``
            and not implied by the kind, as for images).
        source_shape: shape of the input array / tensor (None for images and lists).
    """

    kind: str
    layout: str
    channels: int
    dtype: Any = None
    device: torch.device | None = None
    container: type = list
    pil_mode: str | None = None
    source_channels: int | None = None
    layout_inferred: bool = False
    source_shape: tuple[int, ...] | None = None

    @property
    def batched(self) -> bool:
        """Whether the input had a batch axis B."""
        return "B" in self.layout

    @property
    def conversion(self) -> str | None:
        """``'RGB → grey'`` or ``'grey → RGB'`` when the input frames were converted, else None."""
        if self.source_channels is None or self.source_channels == self.channels:
            return None
        names = {1: "grey", 3: "RGB"}
        return f"{names.get(self.source_channels, self.source_channels)} → {names.get(self.channels, self.channels)}"

    def restore(self, y: torch.Tensor) -> Any:
        """Convert a model output back into the form of the input.

        Args:
            y: B×T'×C×H×W float tensor, values in [0, 1] (values outside are clipped).

        Returns:
            An object of the input's kind with T' frames, in the input's layout and with the
            input's channel count (the batch axis dropped for unbatched input, which needs
            B == 1). When the input was converted (:attr:`source_channels`), the forecast is
            converted back: a grey forecast is repeated into R, G and B, an RGB forecast becomes
            its luminance (:func:`convert_channels`).

            * numpy in: numpy of the same dtype; uint8 and other integer dtypes get
                ``round(clip(y, 0, 1) * 255)``, float dtypes ``clip(y, 0, 1)``;
            * torch in: a tensor on the input's device with the input's dtype (same rules);
            * list/tuple of PIL images in: a list/tuple of PIL images, mode 'L' (grey) or 'RGB';
            * list/tuple of arrays in: a list/tuple of arrays, each in the input frames' layout
                (H×W, H×W×C or C×H×W) and dtype;
            * path in: images (GIF, APNG, folder, video) give a uint8 numpy array T'×H×W×C; a
                ``.npy`` / ``.npz`` file gives what the array it holds gives (its layout and dtype).

        Raises:
            InputTypeError: ``y`` is not a torch tensor.
            InputError: ``y`` is not 5-D, has the wrong channel count, or has B > 1 for an
                unbatched input.
        """
        if not isinstance(y, torch.Tensor):
            raise InputTypeError(f"restore expects a torch tensor B×T×C×H×W, got "
                                 f"{type(y).__name__}")
        if y.ndim != 5:
            raise InputError(f"restore expects a 5-D tensor B×T×C×H×W, got {_describe(y)}")
        if y.shape[2] != self.channels:
            raise InputError(f"restore expects {self.channels} channel(s) on axis 2, got "
                             f"{_describe(y)}")
        if not self.batched and y.shape[0] != 1:
            raise InputError(f"the input had no batch axis, so the output must have B == 1, "
                             f"got {_describe(y)}")
        y = y.detach()
        if self.source_channels is not None and self.source_channels != self.channels:
            y = convert_channels(y.float().clamp(0, 1), self.source_channels)
        if self.kind == "torch":
            return self._restore_torch(y)
        out = self._restore_numpy(y)
        if self.kind == "pil":
            frames = out[..., 0] if self.pil_mode == "L" else out
            images = [Image.fromarray(np.ascontiguousarray(f)) for f in frames]
            return self.container(images)
        if self.kind == "arrays":
            return self.container(np.ascontiguousarray(f) for f in out)
        return out

    def _restore_torch(self, y: torch.Tensor) -> torch.Tensor:
        """Torch output in the input's layout, dtype and device."""
        y = _from_btchw(y.to(device=self.device, dtype=torch.float32), self.layout).clamp(0, 1)
        if self.dtype in _TORCH_FLOATS:
            return y.to(self.dtype).contiguous()
        top = min(255, torch.iinfo(self.dtype).max)  # int8 holds at most 127
        y = torch.round(torch.nan_to_num(y, nan=0.0) * 255.0).clamp(0, top)
        return y.to(self.dtype).contiguous()

    def _restore_numpy(self, y: torch.Tensor) -> np.ndarray:
        """Numpy output in the input's layout and dtype."""
        a = _from_btchw(y.to(device="cpu", dtype=torch.float32), self.layout).numpy()
        a = np.clip(a, 0.0, 1.0)
        dtype = np.dtype(self.dtype)
        if dtype.kind == "f":
            return np.ascontiguousarray(a.astype(dtype))
        top = min(255, int(np.iinfo(dtype).max))  # int8 holds at most 127
        a = np.clip(np.rint(np.nan_to_num(a, nan=0.0) * 255.0), 0, top)
        return np.ascontiguousarray(a.astype(dtype))


# --------------------------------------------------------------------------------------------
# prepare_frames


def _source(channels: int, got: int) -> int | None:
    """``source_channels`` of an :class:`OutputFormat`: the input's count if it differs."""
    return None if got == channels else got


def _prepare_numpy(a: np.ndarray, channels: int, layout: str | None,
                   allowed: tuple[str, ...] = LAYOUTS) -> tuple[torch.Tensor, str, int]:
    """Validate a numpy array and convert it to B×T×C×H×W float32 with ``channels`` channels.

    Returns the tensor, the layout of ``a`` and the channel count of ``a`` (grey ↔ RGB frames
    are converted, see :func:`convert_channels`).
    """
    desc = _describe(a)
    _check_numpy_dtype(a, desc)
    if a.ndim in {len(lay) for lay in allowed}:
        _check_not_empty(a.shape, desc)
    layout = _resolve_layout(tuple(a.shape), channels, layout, allowed, desc)
    values = _numpy_to_unit_float(a, desc)
    x = _to_btchw(torch.from_numpy(np.ascontiguousarray(values)), layout)
    return convert_channels(x, channels), layout, _channels_of(tuple(a.shape), layout)


def _prepare_tensor(t: torch.Tensor, channels: int,
                    layout: str | None) -> tuple[torch.Tensor, OutputFormat]:
    """Validate a torch tensor and convert it, keeping its device."""
    t = t.detach()
    _check_tensor_has_data(t)
    desc = _describe(t)
    _check_torch_dtype(t, desc)
    if t.ndim in (3, 4, 5):
        _check_not_empty(tuple(t.shape), desc)
    inferred = layout is None
    layout = _resolve_layout(tuple(t.shape), channels, layout, LAYOUTS, desc)
    x = convert_channels(_to_btchw(_torch_to_unit_float(t, desc), layout), channels)
    got = _channels_of(tuple(t.shape), layout)
    return x, OutputFormat("torch", layout, channels, dtype=t.dtype, device=t.device,
                           source_channels=_source(channels, got), layout_inferred=inferred,
                           source_shape=tuple(int(s) for s in t.shape))


def _prepare_path(path: str | os.PathLike, channels: int,
                  layout: str | None) -> tuple[torch.Tensor, OutputFormat]:
    """Read a file / folder and convert it.

    Arrays (``.npy`` / ``.npz``) follow the numpy rules (the result has their layout and dtype);
    images are read with their own channels (grey or RGB) and restored as uint8 T×H×W×C.
    """
    p = _as_path(path)
    is_array = p.suffix.lower() in ARRAY_SUFFIXES and not stat.S_ISDIR(_stat_path(p).st_mode)
    if is_array:
        a = read_frames(p)
        if not isinstance(a, np.ndarray):  # pragma: no cover - np.load returns arrays
            raise InputTypeError(f"'{p}' does not hold a numpy array")
        inferred = layout is None
        x, layout, got = _prepare_numpy(a, channels, layout)
        return x, OutputFormat("path", layout, channels, dtype=a.dtype, source_channels=_source(channels, got),
                               layout_inferred=inferred, source_shape=tuple(int(s) for s in a.shape))
    if channels not in (1, 3):
        raise InputError(f"images can only feed models with 1 or 3 channels, this model "
                         f"expects {channels}; pass a numpy array or tensor instead of "
                         f"'{p}'")
    if layout not in (None, "THWC"):
        raise InputError(f"layout={layout!r} does not apply to images read from '{p}' "
                         f"(they are read as THWC); leave layout=None")
    x, _, got = _prepare_numpy(read_frames(p), channels, "THWC")
    return x, OutputFormat("path", "THWC", channels, dtype=np.dtype(np.uint8),
                           source_channels=_source(channels, got))


def _prepare_pil_list(images: list | tuple, channels: int,
                      layout: str | None) -> tuple[torch.Tensor, OutputFormat]:
    """Convert a list/tuple of same-sized, same-mode PIL images (one per frame)."""
    if channels not in (1, 3):
        raise InputError(f"PIL images can only feed models with 1 or 3 channels, this model "
                         f"expects {channels}; pass a numpy array or tensor instead")
    if layout not in (None, "THWC"):
        raise InputError(f"layout={layout!r} does not apply to a list of PIL images; leave "
                         f"layout=None")
    first = images[0]
    for i, im in enumerate(images):
        if im.size != first.size:
            raise InputError(f"PIL images differ in size: image {i} is {im.height}x{im.width} "
                             f"(HxW) but image 0 is {first.height}x{first.width}")
        if im.mode != first.mode:
            raise InputError(f"PIL images differ in mode: image {i} is {im.mode!r} but image 0 "
                             f"is {first.mode!r}; convert them all to one mode")
        if im.width == 0 or im.height == 0:
            raise InputError(f"empty input: PIL image {i} has size {im.height}x{im.width}")
    names = [f"{i} of the list" for i in range(len(images))]
    a = _images_to_array(images, names, None, sequence=False)  # grey or RGB, as the images are
    x, _, got = _prepare_numpy(a, channels, "THWC")
    return x, OutputFormat("pil", "THWC", channels, dtype=np.dtype(np.uint8),
                           container=tuple if isinstance(images, tuple) else list,
                           pil_mode="L" if got == 1 else "RGB", source_channels=_source(channels, got))


def _prepare_array_list(arrays: list | tuple, channels: int,
                        layout: str | None) -> tuple[torch.Tensor, OutputFormat]:
    """Convert a list/tuple of same-shaped numpy arrays (one per frame: HW, HWC or CHW)."""
    first = arrays[0]
    for i, a in enumerate(arrays):
        if a.shape != first.shape:
            raise InputError(f"frames differ in shape: frame {i} has shape {_shape_str(a.shape)}"
                             f" but frame 0 has {_shape_str(first.shape)}")
        if a.dtype != first.dtype:
            raise InputError(f"frames differ in dtype: frame {i} is {a.dtype} but frame 0 is "
                             f"{first.dtype}")
    if first.ndim not in (2, 3):
        raise InputError(f"each frame must be H×W, H×W×C or C×H×W, got frames of shape "
                         f"{_shape_str(first.shape)}")
    if layout is not None and layout not in _UNBATCHED_LAYOUTS:
        raise InputError(f"a list of frames is one sequence: layout must be one of "
                         f"{', '.join(_UNBATCHED_LAYOUTS)}, got {layout!r}")
    _check_numpy_dtype(first, f"frames: {_describe(first)}")
    inferred = layout is None
    if layout is None:
        frame_layout = infer_frame_layout(first.shape, channels)
        if first.ndim == 2 and frame_layout is None:
            raise InputError(f"frames of shape {_shape_str(first.shape)} (H×W) have one channel, "
                             f"but the model expects {channels}; pass H×W×{channels} or "
                             f"{channels}×H×W frames")
        if frame_layout is not None:  # one frame has no batch or time axis to mistake for C
            layout = "T" + frame_layout
    stacked = np.stack(arrays)
    x, layout, got = _prepare_numpy(stacked, channels, layout, _UNBATCHED_LAYOUTS)
    return x, OutputFormat("arrays", layout, channels, dtype=first.dtype,
                           container=tuple if isinstance(arrays, tuple) else list,
                           source_channels=_source(channels, got), layout_inferred=inferred,
                           source_shape=(len(arrays),) + tuple(int(s) for s in first.shape))


def frames_layout(frames: Any, *, channels: int, layout: str | None = None) -> str:
    """The layout :func:`prepare_frames` reads a numpy array or torch tensor ``frames`` in.

    From the shape alone (nothing is converted). Raises the :class:`~stzoo.errors.InputError`
    :func:`prepare_frames` would raise for a shape it cannot read.
    """
    if not isinstance(frames, (np.ndarray, torch.Tensor)):
        raise InputTypeError(f"frames_layout takes a numpy array or torch tensor, got {type(frames).__name__}")
    shape = tuple(int(s) for s in frames.shape)
    return _resolve_layout(shape, int(channels), _check_layout_arg(layout), LAYOUTS, _describe(frames))


def peek_shape(frames: Any, *, channels: int,
               layout: str | None = None) -> tuple[int, int, int, int, int] | None:
    """The B×T×C×H×W shape :func:`prepare_frames` would give ``frames``, from the shape alone.

    Nothing is converted or allocated, so callers can refuse an input (or the forecast it would
    lead to) before paying for it. Only numpy arrays and dense torch tensors are peeked at; for
    other kinds (paths, lists), or when :func:`prepare_frames` would refuse the input anyway,
    the answer is ``None`` (and :func:`prepare_frames` raises the error). C is the model's
    ``channels`` (grey ↔ RGB input is converted to it).
    """
    try:
        if isinstance(frames, torch.Tensor):
            if getattr(frames, "is_nested", False) or frames.layout != torch.strided:
                return None
        elif not isinstance(frames, np.ndarray):
            return None
        if isinstance(channels, bool) or not isinstance(channels, (int, np.integer)) or channels < 1:
            return None
        shape = tuple(int(s) for s in frames.shape)
        if len(shape) not in (3, 4, 5) or 0 in shape:
            return None
        lay = _resolve_layout(shape, int(channels), _check_layout_arg(layout), LAYOUTS, "input")
    except (InputError, InputTypeError):
        return None
    dims = dict(zip(lay, shape))
    return (dims.get("B", 1), dims["T"], int(channels), dims["H"], dims["W"])


def prepare_frames(frames: Any, *, channels: int,
                   layout: str | None = None) -> tuple[torch.Tensor, OutputFormat]:
    """Convert user frames into the model's B×T×C×H×W float32 tensor with values in [0, 1].

    Args:
        frames: one of

            * a numpy array or torch tensor in one of :data:`LAYOUTS`;
            * a list / tuple of PIL images (same size and mode; one sequence), read as grey or
              RGB as they are (see :func:`read_frames`, ``channels=None``);
            * a list / tuple of numpy arrays, one frame each (H×W, H×W×C or C×H×W; same shape
              and dtype), forming one sequence;
            * a str / os.PathLike naming a GIF / APNG, a folder of images, a video, or a ``.npy``
              / ``.npz`` file (read with :func:`read_frames`, images with their own channels;
              arrays from ``.npy`` / ``.npz`` then follow the numpy rules).

            dtypes: uint8 (divided by 255); other integer types with all values in [0, 255]
            (divided by 255); float16/32/64 (and torch bfloat16) with values in [0, 1] (values
            at most 1e-3 outside are clipped). bool, complex, object and string data are
            rejected, as are NaN / inf, empty inputs, nested tensors and tensors on the meta
            device.
        channels: channel count C of the model.
        layout: layout of ``frames`` (one of :data:`LAYOUTS`, any case). For a list of arrays it
            is the layout of the stacked sequence (THW, THWC or TCHW); for images (PIL list or
            image path) only None or 'THWC' is accepted. ``None`` infers it from the shape. A
            channel axis is looked for with the model's count C first, then with the count
            converted to it (3 for C == 1, 1 for C == 3; see "Grey and RGB" below), which must
            look like a channel axis: size 1, or 3 next to two axes of at least 16:

            * 3-D: THW (grey; C == 1, or C == 3 converted);
            * 4-D: THWC if ``shape[-1]`` is a channel axis, else TCHW if ``shape[1]`` is, else
              BTHW (grey). When both are, THWC wins unless ``shape[-1] == shape[-2]`` (the last
              two axes look like H×W), then TCHW;
            * 5-D: BTHWC if ``shape[-1]`` is a channel axis, else BTCHW if ``shape[2]`` is; when
              both are, the same tie-break as for 4-D;
            * a frame of a list: HWC if ``shape[-1]`` is C (then the converted count), else CHW
              if ``shape[0]`` is (same tie-break), H×W if 2-D.

            A colour axis is never read as B, T, H or W: a 3-D input whose last axis has 2-4
            entries after two axes of at least 16 (one H×W×C image), and a 4-D input that would
            be BTHW but whose last axis has 2-4 entries after two axes of at least 16 (e.g.
            T×H×W×4 RGBA video), or whose axis 1 has 3 or 4 entries before two axes of at least
            16, are refused with an :class:`~stzoo.errors.InputError` that names the layout
            considered; pass ``layout=`` (e.g. ``layout='BTHW'`` for a batch of 3- or 4-frame
            grey clips) to read them anyway.

            Grey and RGB: one rule for every kind of input. RGB frames for a 1-channel model
            are converted to their luminance ``0.299·R + 0.587·G + 0.114·B`` (ITU-R BT.601, the
            weights of Pillow's 'L'), grey frames for a 3-channel model are repeated into R, G
            and B (:func:`convert_channels`); ``fmt.source_channels`` records it and
            :meth:`OutputFormat.restore` converts the forecast back to the input's channel
            count. Callers warn about it (``Predictor.predict`` does, once). Alpha is not
            converted in arrays: RGBA (4-channel) arrays are refused with advice (drop alpha
            with ``frames[..., :3]``); PIL images and image files drop alpha (see
            :func:`read_frames`).

    Returns:
        ``(x, fmt)``: ``x`` is a contiguous, detached float32 tensor B×T×C×H×W in [0, 1] (on the
        input tensor's device for torch input, else on the CPU; B = 1 for unbatched input);
        ``fmt.restore(y)`` converts a model output back into the input's form.

    Raises:
        InputTypeError: unsupported object type or dtype, or non-int ``channels`` / non-str
            ``layout``.
        InputError: wrong number of dimensions, layout that cannot be inferred or does not fit,
            wrong channel count, values out of range, NaN / inf, empty input, images or frames
            of mixed size / mode / dtype, or a file that cannot be read.
    """
    if isinstance(channels, bool) or not isinstance(channels, (int, np.integer)):
        raise InputTypeError(f"channels must be a positive int, got {channels!r} "
                             f"({type(channels).__name__})")
    channels = int(channels)
    if channels < 1:
        raise InputError(f"channels must be a positive int, got {channels}")
    layout = _check_layout_arg(layout)

    if isinstance(frames, torch.Tensor):
        return _prepare_tensor(frames, channels, layout)
    if isinstance(frames, np.ndarray):
        inferred = layout is None
        x, layout, got = _prepare_numpy(frames, channels, layout)
        return x, OutputFormat("numpy", layout, channels, dtype=frames.dtype, source_channels=_source(channels, got),
                               layout_inferred=inferred, source_shape=tuple(int(s) for s in frames.shape))
    if isinstance(frames, (str, os.PathLike)):
        return _prepare_path(frames, channels, layout)
    if isinstance(frames, (list, tuple)):
        if len(frames) == 0:
            raise InputError(f"empty input: got an empty {type(frames).__name__} of frames")
        if all(isinstance(f, Image.Image) for f in frames):
            return _prepare_pil_list(frames, channels, layout)
        if all(isinstance(f, np.ndarray) for f in frames):
            return _prepare_array_list(frames, channels, layout)
        kinds = sorted({type(f).__name__ for f in frames})
        raise InputTypeError(f"a {type(frames).__name__} of frames must hold only PIL images or "
                             f"only numpy arrays, got elements of type {', '.join(kinds)}; "
                             f"accepted inputs: {_ACCEPTED_KINDS}")
    raise InputTypeError(f"cannot use an object of type {type(frames).__name__} as frames; "
                         f"accepted: {_ACCEPTED_KINDS}")


# --------------------------------------------------------------------------------------------
# write_gif


def _frames_to_uint8(frames: Any) -> np.ndarray:
    """Validate frames for :func:`write_gif`; return T×H×W×C uint8 (C = 1 or 3)."""
    if isinstance(frames, torch.Tensor):
        t = frames.detach()
        _check_tensor_has_data(t)
        frames = t.to(device="cpu", dtype=torch.float32).numpy() if t.dtype in _TORCH_FLOATS \
            else t.cpu().numpy()
    if not isinstance(frames, np.ndarray):
        raise InputTypeError(f"frames must be a numpy array T×H×W, T×H×W×1 or T×H×W×3, got "
                             f"{type(frames).__name__}")
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
    buf = _io.BytesIO()
    header, _ = GifImagePlugin.getheader(images[0].copy(),
                                         info={"loop": 0, "duration": duration_ms})
    for chunk in header:
        buf.write(chunk)
    for im in images:
        params: dict[str, Any] = {"duration": duration_ms}
        if not gray:
            params["include_color_table"] = True  # each frame has its own palette
        for chunk in GifImagePlugin.getdata(im, **params):
            buf.write(chunk)
    buf.write(b";")  # trailer
    try:
        p.write_bytes(buf.getvalue())
    except OSError as exc:
        raise InputError(f"cannot write '{p}': {exc}") from exc


# --------------------------------------------------------------------------------------------
# write_frames: a forecast to the kind of file its name asks for

#: Video suffixes (lower case) :func:`write_frames` writes with PyAV (the ``video`` extra), and
#: the codecs tried for each, in order (the first one this FFmpeg build has is used).
VIDEO_WRITE_CODECS: dict[str, tuple[str, ...]] = {".mp4": ("libx264", "mpeg4"), ".avi": ("mpeg4", "mjpeg"),
                                                  ".webm": ("libvpx-vp9", "libvpx")}

#: The kinds of output :func:`write_frames` writes, for messages.
OUTPUT_KINDS = ("an animated GIF (.gif), a video (.mp4, .avi, .webm; needs the video extra), a numpy "
                "array (.npy), or a folder of PNGs (a path without a suffix, one ending in '/', or an "
                "existing folder)")

_VIDEO_EXTRA = "pip install -e \".[video]\" in a stzoo checkout (or pip install av)"

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
    raise InputError(f"cannot write '{_short_path(p)}': stzoo does not know what to write for the suffix "
                     f"{p.suffix!r}{hint}; accepted: {OUTPUT_KINDS}")


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
        raise InputError(f"writing the video '{_short_path(path)}' needs PyAV, which is not installed: install "
                         f"the video extra ({_VIDEO_EXTRA}), or write a .gif, a .npy or a folder of PNGs "
                         f"instead") from None
    names = VIDEO_WRITE_CODECS[path.suffix.lower()]
    for name in names:
        if _has_encoder(av, name):
            return av, name
    raise InputError(f"cannot write '{_short_path(path)}': this FFmpeg build has none of the encoders "
                     f"{', '.join(names)}; write another video kind, a .gif, a .npy or a folder of PNGs")


def _check_output_folder(p: Path) -> None:
    """An output folder must exist, or its parent must (it is then created)."""
    if _is_dir(p):
        return
    if not _is_dir(p.parent):
        raise InputError(f"cannot write the folder '{_short_path(p)}': its parent folder "
                         f"'{_short_path(p.parent)}' does not exist")
    if os.path.lexists(p):
        raise InputError(f"cannot write the folder '{_short_path(p)}': a file of that name exists")


def check_output_path(path: str | os.PathLike, *, height: int | None = None,
                      width: int | None = None) -> str:
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
            raise InputError(f"cannot write '{_short_path(p)}': video frames need an even height and width "
                             f"(yuv420p), got {height}×{width}; write a .gif, a .npy or a folder of PNGs "
                             f"instead, or crop the frames to an even size")
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
            raise InputError(f"{_describe(a)} holds {a.shape[0]} sequences (layout {lay}); one sequence can be "
                             f"written as images or video: write a .npy, or pass one sequence")
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
        raise InputError(f"cannot write '{_short_path(p)}' as a video: expected a name ending in "
                         f"{', '.join(VIDEO_WRITE_CODECS)}")
    h, w = data.shape[1:3]
    check_output_path(p, height=h, width=w)
    av, codec = _video_codec(p)
    rgb = np.repeat(data, 3, axis=-1) if data.shape[-1] == 1 else data
    from fractions import Fraction

    try:
        with av.open(str(p), "w") as container:
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
    except Exception as exc:  # PyAV raises its own FFmpegError family, plus OSError / ValueError
        raise InputError(f"cannot write video '{_short_path(p)}' ({codec}): {type(exc).__name__}: {exc}") from exc
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
        others = sorted(f.name for f in p.iterdir() if f.suffix.lower() in IMAGE_SUFFIXES
                        and not f.name.startswith(".") and f.name not in set(names))
        if others:
            raise InputError(f"folder '{_short_path(p)}' already holds {len(others)} other image file(s) (e.g. "
                             f"'{others[0]}') that would mix with the forecast when the folder is read back; "
                             f"write into an empty or new folder")
    try:
        p.mkdir(exist_ok=True)
        for name, f in zip(names, data):
            Image.fromarray(np.ascontiguousarray(f[..., 0] if f.shape[-1] == 1 else f)).save(p / name)
    except OSError as exc:
        raise InputError(f"cannot write into folder '{_short_path(p)}': {exc}") from exc
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
        try:
            np.save(p, a, allow_pickle=False)
        except (OSError, ValueError) as exc:
            raise InputError(f"cannot write '{_short_path(p)}': {exc}") from exc
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
