"""Reading frame sequences from disk: files, folders, images and videos become arrays.

:func:`read_frames` loads a sequence from an animated GIF / APNG (or any single image), a folder of
images, a video (PyAV, the ``video`` extra), or a ``.npy`` / ``.npz`` file. Only folders and regular
files are opened (FIFOs, sockets and devices are refused before they could block), image sizes are
checked against Pillow's decompression-bomb limit, and 16-bit / float images are read without clipping.

Every mistake is reported as :class:`~stzoo.errors.InputError` (a ``ValueError``) or
:class:`~stzoo.errors.InputTypeError` (a ``TypeError``) that names the file.
"""

from __future__ import annotations

import collections
import math
import os
import re
import stat
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageSequence

from stzoo.errors import InputError, InputTypeError

__all__ = [
    "ARRAY_SUFFIXES",
    "IMAGE_SUFFIXES",
    "MAX_INPUT_BYTES",
    "VIDEO_SUFFIXES",
    "check_input_budget",
    "input_budget",
    "list_folder",
    "read_frames",
]

#: File suffixes (lower case) read as images, in a folder or as a single file.
IMAGE_SUFFIXES: tuple[str, ...] = (".png", ".apng", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp")

#: File suffixes (lower case) read with numpy.
ARRAY_SUFFIXES: tuple[str, ...] = (".npy", ".npz")

#: File suffixes (lower case) read as video through PyAV (the optional extra ``stzoo[video]``).
VIDEO_SUFFIXES: tuple[str, ...] = (".mp4", ".m4v", ".avi", ".mov", ".mkv", ".webm")

# Values of float inputs may stray this far outside [0, 1] (rounding noise) and are clipped.
_FLOAT_TOLERANCE = 1e-3

# Pillow modes that hold one grey channel. The wide ones (more than 8 bits) are rescaled by hand.
_GRAY_MODES = frozenset({"1", "L", "LA", "La", "I", "F", "I;16", "I;16L", "I;16B", "I;16N"})
_WIDE_GRAY_MODES = frozenset({"I", "F", "I;16", "I;16L", "I;16B", "I;16N"})

_READ_ERRORS = (OSError, ValueError, EOFError, SyntaxError, Image.DecompressionBombError)

#: The input budget: the most bytes of frames one call decodes and converts, counted as the float32
#: tensor the models read (frames × height × width × channels × 4 bytes). Checked against the sizes a
#: file *declares* (an image's logical screen, a video stream's metadata, a .npy / .npz header) before
#: anything is decoded, and against arrays' and tensors' logical shapes (broadcast and expanded ones
#: included) before anything is copied. 1 GiB is 26 frames of 4K RGB video. Raise it per call
#: (``max_input_bytes=`` of ``predict``, ``max_bytes=`` of :func:`read_frames`), for the process (the
#: environment variable ``STZOO_MAX_INPUT_BYTES``), or here.
MAX_INPUT_BYTES: int = 2**30

_BUDGET_HOW = (
    "pass fewer or smaller frames, or raise the limit: max_input_bytes= (predict) / max_bytes= "
    "(read_frames), the environment variable STZOO_MAX_INPUT_BYTES, or stzoo.frames.read.MAX_INPUT_BYTES"
)


def input_budget(max_bytes: Any = None) -> int:
    """The input budget in force, in bytes: ``max_bytes`` if given, else ``STZOO_MAX_INPUT_BYTES``, else
    :data:`MAX_INPUT_BYTES` (read at call time).

    Raises:
        InputError: ``max_bytes`` or the environment variable is not a positive whole number.
    """
    if max_bytes is None:
        env = os.environ.get("STZOO_MAX_INPUT_BYTES", "").strip()
        if not env:
            return int(MAX_INPUT_BYTES)
        try:
            value = int(env.replace("_", ""))
        except ValueError:
            raise InputError(f"STZOO_MAX_INPUT_BYTES must be a whole number of bytes, got {env[:40]!r}") from None
        what = "STZOO_MAX_INPUT_BYTES"
    else:
        if isinstance(max_bytes, bool) or not isinstance(max_bytes, (int, np.integer)):
            raise InputTypeError(f"max_input_bytes must be a positive int (bytes), got {type(max_bytes).__name__}")
        value, what = int(max_bytes), "max_input_bytes"
    if value < 1:
        raise InputError(f"{what} must be a positive number of bytes, got {value}")
    return value


def check_input_budget(values: int, what: str, max_bytes: Any = None) -> None:
    """Refuse ``values`` frame values (as float32) above :func:`input_budget`, with an
    :class:`~stzoo.errors.InputError` that names ``what``, the limit and how to raise it. Arithmetic only."""
    limit = input_budget(max_bytes)
    need = int(values) * 4
    if need > limit:
        raise InputError(
            f"{what} is {need / 2**30:.3g} GiB as float32 frames ({int(values):,} values), above the input "
            f"limit of {limit / 2**30:.3g} GiB ({limit:,} bytes); {_BUDGET_HOW}"
        )


def _keep(n: int, last: int | None) -> int:
    return n if last is None else min(n, last)


# --------------------------------------------------------------------------------------------
# paths


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
    return f"{text[: limit // 2]}...[{len(text)} characters in all]...{text[-limit // 4 :]}"


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
        raise InputError(
            f"cannot use {what} '{_short_path(p)}': {reason}; pass the path of an existing file or folder"
        ) from None


def _check_regular_file(p: Path, st: os.stat_result) -> None:
    """Refuse anything but a regular file (FIFOs, sockets and devices could block or never end)."""
    if not stat.S_ISREG(st.st_mode):
        raise InputError(
            f"'{_short_path(p)}' is not a regular file or a folder (it is a FIFO, "
            f"socket or device), so stzoo does not read it: reading it could block or "
            f"never end; copy the data into a regular file first"
        )


def list_folder(folder: Path) -> list[Path]:
    """The entries of ``folder`` (unsorted), with a folder that cannot be listed (no read permission, gone,
    not a folder) reported as one :class:`~stzoo.errors.InputError` naming it and what to do."""
    try:
        with os.scandir(folder) as it:
            return [Path(e.path) for e in it]
    except (OSError, ValueError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise InputError(
            f"cannot list the folder '{_short_path(folder)}': {reason}; give stzoo read and execute permission "
            f"on it (chmod u+rx), or pass another folder"
        ) from None


def _is_file(p: Path) -> bool:
    try:
        return p.is_file()
    except OSError:  # e.g. no permission on a folder in between, or a name too long for the OS
        return False


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
        raise InputTypeError(
            f"channels must be 1 or 3{' or None' if allow_none else ''}, got {channels!r} ({type(channels).__name__})"
        )
    if int(channels) not in (1, 3):
        raise InputError(f"images can be read with 1 (grayscale) or 3 (RGB) channels, got channels={int(channels)}")
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
        r, g, b = palette[3 * i : 3 * i + 3] if 3 * i + 3 <= len(palette) else (0, 0, 0)
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
    raise InputError(
        f"mode 'F' (32-bit float) frames hold values in [{lo:.4g}, {hi:.4g}] (the "
        f"sequence that starts with image {names[0]}); stzoo reads float images with "
        f"values in [0, 1] or in [0, 255] and does not clip them; scale them to one "
        f"of those ranges first"
    )


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
                raise ValueError(
                    f"it holds values in [{int(a.min())}, {int(a.max())}], outside "
                    f"the 16-bit range [0, 65535] that stzoo reads from integer grey "
                    f"images (it does not clip them); scale the values to 0-65535 "
                    f"(or convert to 8-bit mode 'L') first"
                )
            a = a / 257.0
        g = np.rint(a).astype(np.uint8)[..., None]
        return g if gray else np.repeat(g, 3, axis=-1)
    out = np.asarray(im.convert("L" if gray else "RGB"), dtype=np.uint8)
    if gray:
        out = out[..., None]
    return np.ascontiguousarray(out)


def _images_to_array(
    images: Sequence[Image.Image], names: Sequence[str], channels: int | None, *, sequence: bool
) -> np.ndarray:
    """Stack same-sized images into T×H×W×C uint8, choosing grey or RGB per ``channels``.

    ``sequence`` says the images are the frames of one multi-frame file (see :func:`_is_gray`).
    """
    first = images[0]
    for im, name in zip(images, names):
        if im.size != first.size:
            raise InputError(
                f"frames differ in size: image {name} is {im.height}x{im.width} (HxW) "
                f"but image {names[0]} is {first.height}x{first.width}; every frame of "
                f"a sequence must have the same size (resize them first)"
            )
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
            raise InputError(
                f"cannot convert image {name} (mode {im.mode}) to {'grayscale' if gray else 'RGB'}: {exc}"
            ) from exc
    return np.stack(arrays)


def _image_channels(im: Image.Image, channels: int | None) -> int:
    """Channels an image will be read with, for the budget, before decoding (3 unless it is grey by mode)."""
    if channels is not None:
        return channels
    return 1 if im.mode in _GRAY_MODES else 3


def _read_image_file(path: Path, channels: int | None, last: int | None = None, max_bytes: Any = None) -> np.ndarray:
    """Frames of one image file (GIF, APNG, multi-page TIFF, or a still image: T = 1): all of them, or the
    last ``last``. The size the file declares (a GIF's logical screen) is checked against the input
    budget before any frame is decoded, and the frames kept as they are read."""
    frames: collections.deque[Image.Image] = collections.deque(maxlen=last)
    count = 0
    try:
        with Image.open(path) as im:
            w, h = im.size
            c = _image_channels(im, channels)
            check_input_budget(h * w * c, f"one frame of '{_short_path(path)}' ({h}x{w} pixels, declared)", max_bytes)
            for frame in ImageSequence.Iterator(im):
                count += 1
                if frame.size != (w, h):  # a later frame that declares another size
                    fw, fh = frame.size
                    check_input_budget(
                        fh * fw * c, f"frame {count - 1} of '{_short_path(path)}' ({fh}x{fw} pixels)", max_bytes
                    )
                check_input_budget(
                    _keep(count, last) * h * w * c,
                    f"'{_short_path(path)}' ({count:,}+ frames of {h}x{w} pixels read so far)",
                    max_bytes,
                )
                frames.append(frame.copy())  # copy: the iterator reuses the frame object
    except InputError:
        raise
    except _READ_ERRORS as exc:
        raise InputError(f"cannot read image file '{path}': {exc}") from exc
    if not frames:
        raise InputError(f"image file '{path}' holds no frames")
    first = count - len(frames)
    names = [f"'{path}' frame {first + i}" for i in range(len(frames))]
    return _images_to_array(list(frames), names, channels, sequence=True)


def _read_folder(folder: Path, channels: int | None, last: int | None = None, max_bytes: Any = None) -> np.ndarray:
    """Images of a folder, one frame each, in natural order of their file names (the last ``last``)."""
    files = sorted(
        (
            p
            for p in list_folder(folder)
            if not p.name.startswith(".") and p.suffix.lower() in IMAGE_SUFFIXES and _is_file(p)
        ),
        key=lambda p: _natural_key(p.name),
    )
    if not files:
        raise InputError(f"folder '{folder}' contains no image files (looked for {', '.join(IMAGE_SUFFIXES)})")
    if last is not None:
        files = files[-last:]  # only the frames the model reads
    images: list[Image.Image] = []
    for f in files:
        try:
            with Image.open(f) as im:
                w, h = im.size  # declared: checked before the pixels are decoded
                check_input_budget(
                    len(files) * h * w * _image_channels(im, channels),
                    f"folder '{_short_path(folder)}' ({len(files):,} frames of {h}x{w} pixels, as '{f.name}' declares)",
                    max_bytes,
                )
                im.load()
                image = im.copy()  # first frame only; a file in a folder is one frame
        except InputError:
            raise
        except _READ_ERRORS as exc:
            raise InputError(f"cannot read image file '{f}': {exc}") from exc
        if images and image.size != images[0].size:
            w0, h0 = images[0].size
            w, h = image.size
            raise InputError(
                f"frames of folder '{folder}' differ in size: '{f.name}' is "
                f"{h}x{w} (HxW) but the first frame '{files[0].name}' is {h0}x{w0}"
            )
        images.append(image)
    names = [f"'{f}'" for f in files]
    return _images_to_array(images, names, channels, sequence=False)


def _npy_header(fh: Any) -> tuple[tuple[int, ...], np.dtype]:
    """The shape and dtype a ``.npy`` stream declares (its header only; the data is not read)."""
    version = np.lib.format.read_magic(fh)
    if version == (1, 0):
        shape, _, dtype = np.lib.format.read_array_header_1_0(fh)
    elif version in ((2, 0), (3, 0)):
        shape, _, dtype = np.lib.format.read_array_header_2_0(fh)
    else:  # pragma: no cover - numpy raises for unknown versions already
        raise ValueError(f"unsupported .npy format version {version}")
    return tuple(int(n) for n in shape), dtype


def _read_array_file(path: Path, max_bytes: Any = None, lazy: bool = False) -> np.ndarray:
    """The array of a .npy file, or of a .npz file ('frames' if present, else the first).

    The shape its header declares (a .npz member's too) is checked against the input budget before the
    data is read. With ``lazy`` (the caller reads only some frames, then checks the budget on those), a
    .npy file larger than the budget is memory-mapped instead of read: nothing is loaded until used."""
    try:
        if path.suffix.lower() == ".npy":
            with open(path, "rb") as fh:
                shape, dtype = _npy_header(fh)
            values = math.prod(shape)
            if dtype.hasobject:
                raise InputError(f"'{path}' holds Python objects (dtype {dtype}), which stzoo does not unpickle")
            if lazy and values * 4 > input_budget(max_bytes):
                return np.load(path, mmap_mode="r", allow_pickle=False)
            check_input_budget(values, f"the array of '{_short_path(path)}' (shape {shape}, declared)", max_bytes)
            return np.load(path, allow_pickle=False)
        with zipfile.ZipFile(path) as zf:
            names = [n[: -len(".npy")] for n in zf.namelist() if n.endswith(".npy")]
            if not names:
                raise InputError(f"'{path}' holds no arrays")
            name = "frames" if "frames" in names else names[0]
            with zf.open(name + ".npy") as member:
                shape, dtype = _npy_header(member)
            if dtype.hasobject:
                raise InputError(f"'{path}' holds Python objects (dtype {dtype}), which stzoo does not unpickle")
            check_input_budget(
                math.prod(shape), f"array {name!r} of '{_short_path(path)}' (shape {shape}, declared)", max_bytes
            )
        with np.load(path, allow_pickle=False) as archive:
            return archive[name]
    except InputError:
        raise
    except Exception as exc:  # numpy/zipfile raise many kinds (ValueError, BadZipFile, ...)
        raise InputError(f"cannot read array file '{path}': {type(exc).__name__}: {exc}") from exc


def _decode_video(
    av: Any, path: Path, channels: int | None, last: int | None, max_bytes: Any, seek_back: int | None
) -> tuple[list[Image.Image], int, int]:
    """Decode ``path``'s first video stream, keeping the last ``last`` frames (all when None); with
    ``seek_back``, start from the key frame before the frame that many frames before the declared end.
    Returns the frames kept, the index of the first one kept, and the count decoded."""
    frames: collections.deque[Image.Image] = collections.deque(maxlen=last)
    decoded = 0
    with av.open(str(path)) as container:
        if not container.streams.video:
            raise InputError(f"'{path}' holds no video stream")
        stream = container.streams.video[0]
        w, h = int(stream.codec_context.width or 0), int(stream.codec_context.height or 0)
        c = 3 if channels is None else channels
        declared = int(stream.frames or 0)
        what = f"one frame of '{_short_path(path)}' ({h}x{w} pixels, as its stream declares)"
        check_input_budget(h * w * c, what, max_bytes)
        if declared:
            check_input_budget(
                _keep(declared, last) * h * w * c,
                f"'{_short_path(path)}' ({_keep(declared, last):,} frames of {h}x{w} pixels, as its stream declares)",
                max_bytes,
            )
        start_index = 0
        if seek_back is not None and declared and stream.duration and stream.time_base:
            first_wanted = max(0, declared - seek_back)
            start = stream.start_time or 0
            target = start + int(stream.duration * first_wanted / declared)
            container.seek(target, stream=stream, backward=True, any_frame=False)
            start_index = -1  # unknown after a seek: counted from the end below
        for frame in container.decode(stream):
            decoded += 1
            fh, fw = int(frame.height), int(frame.width)
            if (fh, fw) != (h, w):  # a stream that changes size: check what it really holds
                check_input_budget(fh * fw * c, f"a frame of '{_short_path(path)}' ({fh}x{fw} pixels)", max_bytes)
            check_input_budget(
                _keep(decoded, last) * max(fh * fw, h * w) * c,
                f"'{_short_path(path)}' ({decoded:,}+ frames of {fh}x{fw} pixels decoded so far)",
                max_bytes,
            )
            frames.append(frame.to_image())
    first = decoded - len(frames) if start_index == 0 else max(0, declared - len(frames))
    return list(frames), first, decoded


def _read_video_file(path: Path, channels: int | None, last: int | None = None, max_bytes: Any = None) -> np.ndarray:
    """Frames of an MP4 / AVI / MOV / ... file, decoded with PyAV: all of them, or the last ``last``.

    The frame size and count the stream declares are checked against the input budget before decoding;
    for the last frames of a long video, decoding starts at the key frame before them (and falls back to
    decoding from the start if the seek lands too late). PyAV comes with the ``video`` extra
    (``pip install -e ".[video]"`` from a checkout).
    """
    try:
        import av
    except ImportError as exc:
        raise InputError(
            f"reading '{path}' needs PyAV, which is not installed: run "
            '`pip install -e ".[video]"` from a checkout (or `pip install av`), or convert the video to '
            "a GIF / folder of images / .npy first"
        ) from exc
    try:
        frames: list[Image.Image] = []
        first = 0
        if last is not None:
            frames, first, _ = _decode_video(av, path, channels, last, max_bytes, seek_back=last + 1)
        if len(frames) < (last or 0) or last is None:  # no seek possible, or it landed past the frames wanted
            frames, first, _ = _decode_video(av, path, channels, last, max_bytes, seek_back=None)
    except InputError:
        raise
    except Exception as exc:  # PyAV raises its own FFmpegError family, plus OSError / ValueError
        raise InputError(f"cannot read video file '{path}': {type(exc).__name__}: {exc}") from exc
    if not frames:
        raise InputError(f"video file '{path}' holds no frames")
    names = [f"'{path}' frame {first + i}" for i in range(len(frames))]
    # Decoded frames are RGB: a grey video is recognised by three equal channels.
    return _images_to_array(frames, names, channels, sequence=True)


def read_frames(
    path: str | os.PathLike, *, channels: int | None = None, last: int | None = None, max_bytes: int | None = None
) -> np.ndarray:
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
        last: read only the last ``last`` frames of an image file, folder or video (a model reads
            its last ``frames_in``): the others are decoded where the format needs it (GIF frames
            build on each other) but not kept. ``.npy`` files larger than the budget are then
            memory-mapped rather than read (``.npz`` arrays are read whole). ``None``: every frame.
        max_bytes: the input budget (:func:`input_budget`; default :data:`MAX_INPUT_BYTES` or the
            environment variable ``STZOO_MAX_INPUT_BYTES``): frames × H × W × C × 4 bytes, checked
            against the sizes the file declares before decoding.

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
    if last is not None and (isinstance(last, bool) or not isinstance(last, (int, np.integer)) or last < 1):
        raise InputError(f"last must be a positive int (frames) or None, got {last!r}")
    last = None if last is None else int(last)
    input_budget(max_bytes)  # a bad limit is refused before any file is opened
    st = _stat_path(p)  # stat only: never opens (and so never blocks on) a FIFO or device
    if stat.S_ISDIR(st.st_mode):
        return _read_folder(p, channels, last, max_bytes)
    _check_regular_file(p, st)
    suffix = p.suffix.lower()
    if suffix in ARRAY_SUFFIXES:
        return _read_array_file(p, max_bytes, lazy=last is not None)
    if suffix in IMAGE_SUFFIXES:
        return _read_image_file(p, channels, last, max_bytes)
    if suffix in VIDEO_SUFFIXES:
        return _read_video_file(p, channels, last, max_bytes)
    raise InputError(
        f"cannot read '{p}': unsupported suffix {p.suffix!r}; expected a folder of "
        f"images or a file ending in "
        f"{', '.join(IMAGE_SUFFIXES + ARRAY_SUFFIXES + VIDEO_SUFFIXES)}"
    )
