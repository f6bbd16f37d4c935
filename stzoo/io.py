"""Reading, writing and converting frame sequences.

Three jobs live here:

* :func:`read_frames` loads a sequence from disk: an animated GIF / APNG (or any single image),
  a folder of images, or a ``.npy`` / ``.npz`` file.
* :func:`write_gif` writes a sequence as a looping animated GIF.
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

__all__ = ["LAYOUTS", "IMAGE_SUFFIXES", "ARRAY_SUFFIXES", "VIDEO_SUFFIXES", "OutputFormat", "peek_shape",
           "prepare_frames", "read_frames", "write_gif"]

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
    """All frames of an MP4 / AVI / MOV / ... file, decoded with PyAV (``pip install stzoo[video]``)."""
    try:
        import av
    except ImportError as exc:
        raise InputError(f"reading '{path}' needs PyAV, which is not installed: run "
                         "`pip install \"stzoo[video]\"` (or `pip install av`), or convert the video to "
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
              optional extra ``pip install "stzoo[video]"`` installs.
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

_GREY_RECIPE = "np.rint(frames[..., :3] @ [0.299, 0.587, 0.114]).astype(np.uint8) for uint8 frames"


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
        target = ("RGB with frames[..., :3]" if channels == 3 else f"grey, e.g. {_GREY_RECIPE}")
        return (f"; for RGBA H×W×4 frames, convert to {target} (stzoo does not drop alpha or mix "
                f"colours of arrays itself)")
    if shape and shape[-1] == 3 and channels == 1 and _looks_like_channels(shape, -1):
        return f"; for RGB H×W×3 frames, convert to grey, e.g. {_GREY_RECIPE}, or use a 3-channel model"
    return ""


def _infer_layout(shape: tuple[int, ...], channels: int, allowed: tuple[str, ...],
                  desc: str) -> str:
    """Guess the layout of an array from its shape and the model's channel count.

    See :func:`prepare_frames` for the rules.
    """
    ndim = len(shape)
    c = channels
    hint = "pass layout='...' to say which axis is which" + _colour_hint(shape, c)
    if ndim == 3:
        if c == 1:
            if _looks_like_channels(shape, -1):
                raise InputError(
                    f"the {desc} would be read as THW ({shape[0]} frames of {shape[1]}x{shape[2]}), "
                    f"but its last axis, of size {shape[-1]}, looks like the colour channels of "
                    f"one H×W×{shape[-1]} image, and this model takes 1 (grey) channel; pass "
                    f"layout='THW' if the THW reading is right, else pass T grey frames (a "
                    f"T×H×W array){_colour_hint(shape, c)}")
            return "THW"
        raise InputError(f"a 3-D input is read as THW (one channel), but the model expects {c} "
                         f"channels ({desc}); pass a 4-D T×H×W×{c} (THWC) or T×{c}×H×W (TCHW) "
                         f"array")
    if ndim == 4:
        last, second = shape[-1] == c, shape[1] == c
        if last and second:
            return "TCHW" if shape[-1] == shape[-2] else "THWC"
        if last:
            return "THWC"
        if second:
            return "TCHW"
        if c == 1 and "BTHW" in allowed:
            # Never let a colour axis (RGB / RGBA THWC or TCHW video) pass as B, T, H or W.
            suspect = [i for i in (3, 1) if _looks_like_channels(shape, i)]
            if suspect:
                i = suspect[0]
                raise InputError(
                    f"the {desc} would be read as BTHW ({shape[0]} sequences of {shape[1]} "
                    f"frames of {shape[2]}x{shape[3]}), but its axis {i}, of size {shape[i]}, "
                    f"looks like a colour channel axis ({'THWC' if i == 3 else 'TCHW'} with "
                    f"{shape[i]} channels), and this model takes 1 (grey) channel; pass "
                    f"layout='BTHW' if the BTHW reading is right, else pass grey frames "
                    f"(T×H×W){_colour_hint(shape, c)}")
            return "BTHW"
        raise InputError(f"cannot tell the layout of the {desc} for a model with {c} "
                         f"channel(s): expected THWC (last axis of size {c}) or TCHW (axis 1 "
                         f"of size {c}); {hint}")
    if ndim == 5:
        last, third = shape[-1] == c, shape[2] == c
        if last and third:
            return "BTCHW" if shape[-1] == shape[-2] else "BTHWC"
        if last:
            return "BTHWC"
        if third:
            return "BTCHW"
        raise InputError(f"cannot tell the layout of the {desc} for a model with {c} "
                         f"channel(s): expected BTHWC (last axis {c}) or BTCHW (axis 2 of size "
                         f"{c}); {hint}")
    raise AssertionError("unreachable: ndim checked before")  # pragma: no cover


def _resolve_layout(shape: tuple[int, ...], channels: int, layout: str | None,
                    allowed: tuple[str, ...], desc: str) -> str:
    """Check the shape against ``layout`` (or infer it) and check the channel count."""
    ndims = sorted({len(lay) for lay in allowed})
    if layout is not None:
        if layout not in allowed:
            raise InputError(f"layout {layout!r} is not accepted here; expected one of "
                             f"{', '.join(allowed)}")
        if len(layout) != len(shape):
            raise InputError(f"layout {layout!r} needs a {len(layout)}-D input, got a {desc}")
    else:
        if len(shape) not in ndims:
            extra = (" (a single frame? the input needs a time axis T)"
                     if len(shape) == min(ndims) - 1 else "")
            raise InputError(f"expected a {ndims[0]}-D to {ndims[-1]}-D input (layouts "
                             f"{', '.join(allowed)}), got a {desc}{extra}")
        layout = _infer_layout(shape, channels, allowed, desc)
    got = shape[layout.index("C")] if "C" in layout else 1
    if got != channels:
        raise InputError(f"expected {channels} channel(s), got {got} ({desc}, read as layout "
                         f"{layout})")
    return layout


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
    """

    kind: str
    layout: str
    channels: int
    dtype: Any = None
    device: torch.device | None = None
    container: type = list
    pil_mode: str | None = None

    @property
    def batched(self) -> bool:
        """Whether the input had a batch axis B."""
        return "B" in self.layout

    def restore(self, y: torch.Tensor) -> Any:
        """Convert a model output back into the form of the input.

        Args:
            y: B×T'×C×H×W float tensor, values in [0, 1] (values outside are clipped).

        Returns:
            An object of the input's kind with T' frames, in the input's layout (the batch axis
            dropped for unbatched input, which needs B == 1):

            * numpy in: numpy of the same dtype; uint8 and other integer dtypes get
                ``round(clip(y, 0, 1) * 255)``, float dtypes ``clip(y, 0, 1)``;
            * torch in: a tensor on the input's device with the input's dtype (same rules);
            * list/tuple of PIL images in: a list/tuple of PIL images, mode 'L' (1 channel) or
                'RGB' (3 channels);
            * list/tuple of arrays in: a list/tuple of arrays, each in the input frames' layout
                (H×W, H×W×C or C×H×W) and dtype;
            * path in: a uint8 numpy array T'×H×W×C (B×T'×H×W×C if the file held a batch).

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


def _prepare_numpy(a: np.ndarray, channels: int, layout: str | None,
                   allowed: tuple[str, ...] = LAYOUTS) -> tuple[torch.Tensor, str]:
    """Validate a numpy array and convert it to B×T×C×H×W float32; return it and its layout."""
    desc = _describe(a)
    _check_numpy_dtype(a, desc)
    if a.ndim in {len(lay) for lay in allowed}:
        _check_not_empty(a.shape, desc)
    layout = _resolve_layout(tuple(a.shape), channels, layout, allowed, desc)
    values = _numpy_to_unit_float(a, desc)
    return _to_btchw(torch.from_numpy(np.ascontiguousarray(values)), layout), layout


def _prepare_tensor(t: torch.Tensor, channels: int,
                    layout: str | None) -> tuple[torch.Tensor, OutputFormat]:
    """Validate a torch tensor and convert it, keeping its device."""
    t = t.detach()
    _check_tensor_has_data(t)
    desc = _describe(t)
    _check_torch_dtype(t, desc)
    if t.ndim in (3, 4, 5):
        _check_not_empty(tuple(t.shape), desc)
    layout = _resolve_layout(tuple(t.shape), channels, layout, LAYOUTS, desc)
    x = _to_btchw(_torch_to_unit_float(t, desc), layout)
    return x, OutputFormat("torch", layout, channels, dtype=t.dtype, device=t.device)


def _prepare_path(path: str | os.PathLike, channels: int,
                  layout: str | None) -> tuple[torch.Tensor, OutputFormat]:
    """Read a file / folder and convert it; the result is restored as uint8 (B)THWC."""
    p = _as_path(path)
    is_array = p.suffix.lower() in ARRAY_SUFFIXES and not stat.S_ISDIR(_stat_path(p).st_mode)
    if is_array:
        a = read_frames(p)
        if not isinstance(a, np.ndarray):  # pragma: no cover - np.load returns arrays
            raise InputTypeError(f"'{p}' does not hold a numpy array")
        x, layout = _prepare_numpy(a, channels, layout)
    else:
        if channels not in (1, 3):
            raise InputError(f"images can only feed models with 1 or 3 channels, this model "
                             f"expects {channels}; pass a numpy array or tensor instead of "
                             f"'{p}'")
        if layout not in (None, "THWC"):
            raise InputError(f"layout={layout!r} does not apply to images read from '{p}' "
                             f"(they are read as THWC); leave layout=None")
        x, layout = _prepare_numpy(read_frames(p, channels=channels), channels, "THWC")
    out_layout = "BTHWC" if "B" in layout else "THWC"
    return x, OutputFormat("path", out_layout, channels, dtype=np.dtype(np.uint8))


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
    a = _images_to_array(images, names, channels, sequence=False)
    x, _ = _prepare_numpy(a, channels, "THWC")
    mode = "L" if channels == 1 else "RGB"
    return x, OutputFormat("pil", "THWC", channels, dtype=np.dtype(np.uint8),
                           container=tuple if isinstance(images, tuple) else list,
                           pil_mode=mode)


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
    if first.ndim == 2 and channels != 1 and layout is None:
        raise InputError(f"frames of shape {_shape_str(first.shape)} (H×W) have one channel, "
                         f"but the model expects {channels}; pass H×W×{channels} or "
                         f"{channels}×H×W frames")
    if first.ndim == 2 and layout is None:
        layout = "THW"  # H×W frames have no channel axis to mistake for anything else
    stacked = np.stack(arrays)
    x, layout = _prepare_numpy(stacked, channels, layout, _UNBATCHED_LAYOUTS)
    return x, OutputFormat("arrays", layout, channels, dtype=first.dtype,
                           container=tuple if isinstance(arrays, tuple) else list)


def peek_shape(frames: Any, *, channels: int,
               layout: str | None = None) -> tuple[int, int, int, int, int] | None:
    """The B×T×C×H×W shape :func:`prepare_frames` would give ``frames``, from the shape alone.

    Nothing is converted or allocated, so callers can refuse an input (or the forecast it would
    lead to) before paying for it. Only numpy arrays and dense torch tensors are peeked at; for
    other kinds (paths, lists), or when :func:`prepare_frames` would refuse the input anyway,
    the answer is ``None`` (and :func:`prepare_frames` raises the error).
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
    return (dims.get("B", 1), dims["T"], dims.get("C", 1), dims["H"], dims["W"])


def prepare_frames(frames: Any, *, channels: int,
                   layout: str | None = None) -> tuple[torch.Tensor, OutputFormat]:
    """Convert user frames into the model's B×T×C×H×W float32 tensor with values in [0, 1].

    Args:
        frames: one of

            * a numpy array or torch tensor in one of :data:`LAYOUTS`;
            * a list / tuple of PIL images (same size and mode; one sequence), converted to 'L'
              for a 1-channel model and 'RGB' for a 3-channel one;
            * a list / tuple of numpy arrays, one frame each (H×W, H×W×C or C×H×W; same shape
              and dtype), forming one sequence;
            * a str / os.PathLike naming a GIF / APNG, a folder of images, or a ``.npy`` /
              ``.npz`` file (read with :func:`read_frames`; arrays from ``.npy`` / ``.npz`` then
              follow the numpy rules).

            dtypes: uint8 (divided by 255); other integer types with all values in [0, 255]
            (divided by 255); float16/32/64 (and torch bfloat16) with values in [0, 1] (values
            at most 1e-3 outside are clipped). bool, complex, object and string data are
            rejected, as are NaN / inf, empty inputs, nested tensors and tensors on the meta
            device.
        channels: channel count C of the model.
        layout: layout of ``frames`` (one of :data:`LAYOUTS`, any case). For a list of arrays it
            is the layout of the stacked sequence (THW, THWC or TCHW); for images (PIL list or
            image path) only None or 'THWC' is accepted. ``None`` infers it from the shape:

            * 3-D: THW (only when C == 1);
            * 4-D: THWC if ``shape[-1] == C``, else TCHW if ``shape[1] == C``, else BTHW if
              C == 1. When both ``shape[-1]`` and ``shape[1]`` equal C, THWC wins unless
              ``shape[-1] == shape[-2]`` (the last two axes look like H×W), then TCHW;
            * 5-D: BTHWC if ``shape[-1] == C``, else BTCHW if ``shape[2] == C``; when both
              hold, the same tie-break as for 4-D (BTCHW if ``shape[-1] == shape[-2]``);
            * a frame of a list: HWC if ``shape[-1] == C``, else CHW if ``shape[0] == C``
              (same tie-break), H×W if 2-D and C == 1.

            A colour axis is never read as B, T, H or W: for a 1-channel model, a 3-D input
            whose last axis has 2-4 entries after two axes of at least 16 (one H×W×C image), and
            a 4-D input that would be BTHW but whose last axis has 2-4 entries after two axes
            of at least 16 (T×H×W×C colour video), or whose axis 1 has 3 or 4 entries before
            two axes of at least 16 (T×C×H×W colour video), are refused with an
            :class:`~stzoo.errors.InputError` that names the layout considered; pass
            ``layout=`` (e.g. ``layout='BTHW'`` for a batch of 3- or 4-frame grey clips) to
            read them anyway.

            Colour and alpha in arrays: stzoo does not convert arrays between colour spaces.
            RGBA (4-channel) or RGB arrays for a grey model, and RGBA arrays for an RGB model,
            are refused with advice (drop alpha with ``frames[..., :3]``; mix RGB to grey).
            PIL images and image files are converted by Pillow instead, which drops alpha (see
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
        x, layout = _prepare_numpy(frames, channels, layout)
        return x, OutputFormat("numpy", layout, channels, dtype=frames.dtype)
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
