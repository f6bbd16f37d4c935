"""User frames to the model's tensor and back.

:func:`prepare_frames` turns whatever a user hands to ``Predictor.predict`` (numpy array, torch tensor,
list of PIL images or of arrays, or a path) into the ``B×T×C×H×W`` float32 tensor with values in
``[0, 1]`` that the models consume, and returns an :class:`~stzoo.frames.layout.OutputFormat` whose
``restore`` converts the model's answer back into the same kind of object, layout and dtype as the
input. The layout is read with :func:`~stzoo.frames.layout.infer_layout`; :func:`frames_layout` and
:func:`peek_shape` answer from the shape alone, before any work.
"""

from __future__ import annotations

import math
import os
import stat
from typing import Any

import numpy as np
import torch
from PIL import Image

from stzoo.errors import InputError, InputTypeError
from stzoo.frames.layout import (
    _TORCH_FLOATS,
    _UNBATCHED_LAYOUTS,
    LAYOUTS,
    OutputFormat,
    _channels_of,
    _check_layout_arg,
    _describe,
    _resolve_layout,
    _shape_str,
    _to_btchw,
    convert_channels,
    infer_frame_layout,
)
from stzoo.frames.read import (
    _FLOAT_TOLERANCE,
    ARRAY_SUFFIXES,
    _as_path,
    _images_to_array,
    _stat_path,
    check_input_budget,
    input_budget,
    read_frames,
)

__all__ = ["FramesWarning", "frames_layout", "peek_shape", "prepare_frames"]

_TORCH_INTS = tuple(
    getattr(torch, name)
    for name in ("int8", "int16", "int32", "int64", "uint16", "uint32", "uint64")
    if hasattr(torch, name)
)

_ACCEPTED_KINDS = (
    "a numpy array, a torch tensor, a list/tuple of PIL images, a list/tuple of "
    "numpy arrays (one per frame), or a path (str / os.PathLike) to a GIF / APNG, "
    "a folder of images, or a .npy / .npz file"
)


class FramesWarning(UserWarning):
    """Frames were accepted after a conversion or outside what the model was trained on.

    :class:`~stzoo.inference.predictor.Predictor` and :class:`~stzoo.inference.forecaster.Forecaster` emit it once per
    Predictor and cause: RGB frames converted to grey for a 1-channel model (or grey to RGB for a
    3-channel one), or a frame size other than the training size.
    """


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
            raise InputError(
                f"integer frames must hold values in [0, 255], got values in "
                f"[{lo}, {hi}] ({desc}); pass uint8 or floats in [0, 1]"
            )
        return a.astype(np.float32) / np.float32(255)
    if kind == "f":
        if not np.isfinite(a).all():
            raise InputError(f"frames contain NaN or infinite values ({desc})")
        lo, hi = float(a.min()), float(a.max())
        if lo < -_FLOAT_TOLERANCE or hi > 1 + _FLOAT_TOLERANCE:
            raise InputError(
                f"float frames must hold values in [0, 1], got values in "
                f"[{lo:.4g}, {hi:.4g}] ({desc}); pass uint8 frames (0-255) or "
                f"scale the floats to [0, 1]"
            )
        return np.clip(a.astype(np.float32), 0.0, 1.0)
    raise InputTypeError(
        f"unsupported dtype {a.dtype} ({desc}); expected uint8, another "
        f"integer type with values in [0, 255], or float in [0, 1]"
    )


def _check_numpy_dtype(a: np.ndarray, desc: str) -> None:
    """Reject dtypes that cannot hold pixel values (bool, complex, object, strings, ...)."""
    if a.dtype.kind not in "iuf":
        raise InputTypeError(
            f"unsupported dtype {a.dtype} ({desc}); expected uint8, another "
            f"integer type with values in [0, 255], or float in [0, 1]"
        )


def _check_tensor_has_data(t: torch.Tensor) -> None:
    """Refuse tensors whose values cannot be read: nested tensors and tensors on the meta device."""
    if getattr(t, "is_nested", False):
        raise InputTypeError(
            "nested tensors are not accepted as frames; pass a dense tensor in one of the layouts " + ", ".join(LAYOUTS)
        )
    if t.device.type == "meta":
        raise InputError(
            f"the {_describe(t)} holds no values (the meta device only records shapes); "
            f"pass a tensor on the CPU or a GPU, e.g. materialise it with "
            f"torch.empty_like(t, device='cpu') and fill it first"
        )


def _check_torch_dtype(t: torch.Tensor, desc: str) -> None:
    """Reject tensor dtypes and layouts that cannot hold pixel values."""
    if t.layout != torch.strided:
        raise InputTypeError(
            f"unsupported tensor layout {t.layout} ({desc}); pass a dense tensor (e.g. tensor.to_dense())"
        )
    if t.dtype not in _TORCH_FLOATS and t.dtype != torch.uint8 and t.dtype not in _TORCH_INTS:
        raise InputTypeError(
            f"unsupported dtype {str(t.dtype).removeprefix('torch.')} "
            f"({desc}); expected uint8, another integer type with values in "
            f"[0, 255], or float16/bfloat16/float32/float64 in [0, 1]"
        )


def _torch_to_unit_float(t: torch.Tensor, desc: str) -> torch.Tensor:
    """Values of a tensor as float32 in [0, 1] on the same device."""
    if t.dtype == torch.uint8:
        return t.to(torch.float32) / 255.0
    if t.dtype in _TORCH_INTS:
        wide = t.to(torch.int64)
        lo, hi = int(wide.min()), int(wide.max())
        if lo < 0 or hi > 255:
            raise InputError(
                f"integer frames must hold values in [0, 255], got values in "
                f"[{lo}, {hi}] ({desc}); pass uint8 or floats in [0, 1]"
            )
        return wide.to(torch.float32) / 255.0
    if not bool(torch.isfinite(t).all()):
        raise InputError(f"frames contain NaN or infinite values ({desc})")
    lo, hi = float(t.min()), float(t.max())
    if lo < -_FLOAT_TOLERANCE or hi > 1 + _FLOAT_TOLERANCE:
        raise InputError(
            f"float frames must hold values in [0, 1], got values in "
            f"[{lo:.4g}, {hi:.4g}] ({desc}); pass uint8 frames (0-255) or scale "
            f"the floats to [0, 1]"
        )
    return t.to(torch.float32).clamp(0.0, 1.0)


def _check_not_empty(shape: tuple[int, ...], desc: str) -> None:
    """Reject arrays with a zero-sized axis."""
    if any(s == 0 for s in shape):
        raise InputError(f"empty input: {desc} has an axis of size 0")


# --------------------------------------------------------------------------------------------
# prepare_frames


def _source(channels: int, got: int) -> int | None:
    """``source_channels`` of an :class:`OutputFormat`: the input's count if it differs."""
    return None if got == channels else got


def _last_frames(x: Any, layout: str, last: int | None) -> Any:
    """``x`` (array or tensor in ``layout``) cut to its last ``last`` frames: a view, nothing copied."""
    t_axis = layout.index("T")
    if last is None or x.shape[t_axis] <= last:
        return x
    return x[(slice(None),) * t_axis + (slice(x.shape[t_axis] - last, None),)]


def _check_budget(shape: tuple[int, ...], layout: str, channels: int, desc: str, max_bytes: Any) -> None:
    """The input budget on the logical size of ``shape`` (after a grey → RGB conversion), before any copy:
    a broadcast or expanded input counts as large as it looks, not as the memory behind it."""
    got = _channels_of(shape, layout)
    values = math.prod(shape) // max(got, 1) * max(got, channels)
    check_input_budget(values, f"the input ({desc}, frames read)", max_bytes)


def _prepare_numpy(
    a: np.ndarray,
    channels: int,
    layout: str | None,
    allowed: tuple[str, ...] = LAYOUTS,
    last: int | None = None,
    max_bytes: Any = None,
) -> tuple[torch.Tensor, str, int]:
    """Validate a numpy array and convert it to B×T×C×H×W float32 with ``channels`` channels.

    Only the last ``last`` frames are converted (all when None), after the input budget is checked on
    them. Returns the tensor, the layout of ``a`` and the channel count of ``a`` (grey ↔ RGB frames
    are converted, see :func:`convert_channels`).
    """
    desc = _describe(a)
    _check_numpy_dtype(a, desc)
    if a.ndim in {len(lay) for lay in allowed}:
        _check_not_empty(a.shape, desc)
    layout = _resolve_layout(tuple(a.shape), channels, layout, allowed, desc)
    a = _last_frames(a, layout, last)
    _check_budget(tuple(a.shape), layout, channels, desc, max_bytes)
    values = _numpy_to_unit_float(np.asarray(a), desc)
    x = _to_btchw(torch.from_numpy(np.ascontiguousarray(values)), layout)
    return convert_channels(x, channels), layout, _channels_of(tuple(a.shape), layout)


def _prepare_tensor(
    t: torch.Tensor, channels: int, layout: str | None, last: int | None = None, max_bytes: Any = None
) -> tuple[torch.Tensor, OutputFormat]:
    """Validate a torch tensor and convert it (its last ``last`` frames), keeping its device."""
    t = t.detach()
    _check_tensor_has_data(t)
    desc = _describe(t)
    _check_torch_dtype(t, desc)
    if t.ndim in (3, 4, 5):
        _check_not_empty(tuple(t.shape), desc)
    inferred = layout is None
    source_shape = tuple(int(s) for s in t.shape)
    layout = _resolve_layout(source_shape, channels, layout, LAYOUTS, desc)
    t = _last_frames(t, layout, last)
    _check_budget(tuple(int(s) for s in t.shape), layout, channels, desc, max_bytes)
    x = convert_channels(_to_btchw(_torch_to_unit_float(t, desc), layout), channels)
    got = _channels_of(source_shape, layout)
    return x, OutputFormat(
        "torch",
        layout,
        channels,
        dtype=t.dtype,
        device=t.device,
        source_channels=_source(channels, got),
        layout_inferred=inferred,
        source_shape=source_shape,
    )


def _prepare_path(
    path: str | os.PathLike, channels: int, layout: str | None, last: int | None = None, max_bytes: Any = None
) -> tuple[torch.Tensor, OutputFormat]:
    """Read a file / folder and convert it.

    Arrays (``.npy`` / ``.npz``) follow the numpy rules (the result has their layout and dtype);
    images are read with their own channels (grey or RGB) and restored as uint8 T×H×W×C.
    """
    p = _as_path(path)
    is_array = p.suffix.lower() in ARRAY_SUFFIXES and not stat.S_ISDIR(_stat_path(p).st_mode)
    if is_array:
        a = read_frames(p, last=last, max_bytes=max_bytes)  # header checked; a large .npy only mapped
        if not isinstance(a, np.ndarray):  # pragma: no cover - np.load returns arrays
            raise InputTypeError(f"'{p}' does not hold a numpy array")
        inferred = layout is None
        x, layout, got = _prepare_numpy(a, channels, layout, last=last, max_bytes=max_bytes)
        return x, OutputFormat(
            "path",
            layout,
            channels,
            dtype=a.dtype,
            source_channels=_source(channels, got),
            layout_inferred=inferred,
            source_shape=tuple(int(s) for s in a.shape),
        )
    if channels not in (1, 3):
        raise InputError(
            f"images can only feed models with 1 or 3 channels, this model "
            f"expects {channels}; pass a numpy array or tensor instead of "
            f"'{p}'"
        )
    if layout not in (None, "THWC"):
        raise InputError(
            f"layout={layout!r} does not apply to images read from '{p}' (they are read as THWC); leave layout=None"
        )
    frames = read_frames(p, last=last, max_bytes=max_bytes)  # declared sizes checked before decoding
    x, _, got = _prepare_numpy(frames, channels, "THWC", last=last, max_bytes=max_bytes)
    return x, OutputFormat("path", "THWC", channels, dtype=np.dtype(np.uint8), source_channels=_source(channels, got))


def _prepare_pil_list(
    images: list | tuple, channels: int, layout: str | None, last: int | None = None, max_bytes: Any = None
) -> tuple[torch.Tensor, OutputFormat]:
    """Convert a list/tuple of same-sized, same-mode PIL images (one per frame)."""
    if channels not in (1, 3):
        raise InputError(
            f"PIL images can only feed models with 1 or 3 channels, this model "
            f"expects {channels}; pass a numpy array or tensor instead"
        )
    if layout not in (None, "THWC"):
        raise InputError(f"layout={layout!r} does not apply to a list of PIL images; leave layout=None")
    first = images[0]
    for i, im in enumerate(images):
        if im.size != first.size:
            raise InputError(
                f"PIL images differ in size: image {i} is {im.height}x{im.width} "
                f"(HxW) but image 0 is {first.height}x{first.width}"
            )
        if im.mode != first.mode:
            raise InputError(
                f"PIL images differ in mode: image {i} is {im.mode!r} but image 0 "
                f"is {first.mode!r}; convert them all to one mode"
            )
        if im.width == 0 or im.height == 0:
            raise InputError(f"empty input: PIL image {i} has size {im.height}x{im.width}")
    first_kept = 0 if last is None else max(0, len(images) - last)
    kept = list(images[first_kept:])
    c_in = 1 if all(im.mode in ("1", "L", "LA", "I", "F", "I;16") for im in kept) else 3
    check_input_budget(
        len(kept) * first.height * first.width * max(c_in, channels),
        f"the input ({len(kept)} PIL images of {first.height}x{first.width})",
        max_bytes,
    )
    names = [f"{first_kept + i} of the list" for i in range(len(kept))]
    a = _images_to_array(kept, names, None, sequence=False)  # grey or RGB, as the images are
    x, _, got = _prepare_numpy(a, channels, "THWC", max_bytes=max_bytes)
    return x, OutputFormat(
        "pil",
        "THWC",
        channels,
        dtype=np.dtype(np.uint8),
        container=tuple if isinstance(images, tuple) else list,
        pil_mode="L" if got == 1 else "RGB",
        source_channels=_source(channels, got),
    )


def _prepare_array_list(
    arrays: list | tuple, channels: int, layout: str | None, last: int | None = None, max_bytes: Any = None
) -> tuple[torch.Tensor, OutputFormat]:
    """Convert a list/tuple of same-shaped numpy arrays (one per frame: HW, HWC or CHW)."""
    first = arrays[0]
    for i, a in enumerate(arrays):
        if a.shape != first.shape:
            raise InputError(
                f"frames differ in shape: frame {i} has shape {_shape_str(a.shape)}"
                f" but frame 0 has {_shape_str(first.shape)}"
            )
        if a.dtype != first.dtype:
            raise InputError(f"frames differ in dtype: frame {i} is {a.dtype} but frame 0 is {first.dtype}")
    if first.ndim not in (2, 3):
        raise InputError(f"each frame must be H×W, H×W×C or C×H×W, got frames of shape {_shape_str(first.shape)}")
    if layout is not None and layout not in _UNBATCHED_LAYOUTS:
        raise InputError(
            f"a list of frames is one sequence: layout must be one of {', '.join(_UNBATCHED_LAYOUTS)}, got {layout!r}"
        )
    _check_numpy_dtype(first, f"frames: {_describe(first)}")
    inferred = layout is None
    if layout is None:
        frame_layout = infer_frame_layout(first.shape, channels)
        if first.ndim == 2 and frame_layout is None:
            raise InputError(
                f"frames of shape {_shape_str(first.shape)} (H×W) have one channel, "
                f"but the model expects {channels}; pass H×W×{channels} or "
                f"{channels}×H×W frames"
            )
        if frame_layout is not None:  # one frame has no batch or time axis to mistake for C
            layout = "T" + frame_layout
    kept = list(arrays if last is None else arrays[-last:])  # one sequence: the list is the T axis
    check_input_budget(
        len(kept) * (first.size if first.ndim == 3 else first.size * channels),
        f"the input ({len(kept)} frames of shape {first.shape})",
        max_bytes,
    )
    stacked = np.stack(kept)
    x, layout, got = _prepare_numpy(stacked, channels, layout, _UNBATCHED_LAYOUTS, max_bytes=max_bytes)
    return x, OutputFormat(
        "arrays",
        layout,
        channels,
        dtype=first.dtype,
        container=tuple if isinstance(arrays, tuple) else list,
        source_channels=_source(channels, got),
        layout_inferred=inferred,
        source_shape=(len(arrays),) + tuple(int(s) for s in first.shape),
    )


def frames_layout(frames: Any, *, channels: int, layout: str | None = None) -> str:
    """The layout :func:`prepare_frames` reads a numpy array or torch tensor ``frames`` in.

    From the shape alone (nothing is converted). Raises the :class:`~stzoo.errors.InputError`
    :func:`prepare_frames` would raise for a shape it cannot read.
    """
    if not isinstance(frames, (np.ndarray, torch.Tensor)):
        raise InputTypeError(f"frames_layout takes a numpy array or torch tensor, got {type(frames).__name__}")
    shape = tuple(int(s) for s in frames.shape)
    return _resolve_layout(shape, int(channels), _check_layout_arg(layout), LAYOUTS, _describe(frames))


def peek_shape(frames: Any, *, channels: int, layout: str | None = None) -> tuple[int, int, int, int, int] | None:
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


def prepare_frames(
    frames: Any, *, channels: int, layout: str | None = None, last: int | None = None, max_bytes: int | None = None
) -> tuple[torch.Tensor, OutputFormat]:
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

        last: convert only the last ``last`` frames (a model reads its last ``frames_in``): the
            others are never converted, and of a file never kept (see :func:`read_frames`). ``None``:
            every frame.
        max_bytes: the input budget (:func:`~stzoo.frames.read.input_budget`): the frames converted,
            as float32, may take at most this many bytes (default
            :data:`~stzoo.frames.read.MAX_INPUT_BYTES`, or ``STZOO_MAX_INPUT_BYTES``). Checked on the
            logical shape (a ``np.broadcast_to`` / ``expand`` input counts as large as it looks) and on
            the sizes a file declares, before anything is decoded or copied.

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
        raise InputTypeError(f"channels must be a positive int, got {channels!r} ({type(channels).__name__})")
    channels = int(channels)
    if channels < 1:
        raise InputError(f"channels must be a positive int, got {channels}")
    layout = _check_layout_arg(layout)
    if last is not None and (isinstance(last, bool) or not isinstance(last, (int, np.integer)) or last < 1):
        raise InputError(f"last must be a positive int (frames) or None, got {last!r}")
    last = None if last is None else int(last)
    input_budget(max_bytes)  # a bad limit is refused before anything is read

    if isinstance(frames, torch.Tensor):
        return _prepare_tensor(frames, channels, layout, last, max_bytes)
    if isinstance(frames, np.ndarray):
        inferred = layout is None
        x, layout, got = _prepare_numpy(frames, channels, layout, last=last, max_bytes=max_bytes)
        return x, OutputFormat(
            "numpy",
            layout,
            channels,
            dtype=frames.dtype,
            source_channels=_source(channels, got),
            layout_inferred=inferred,
            source_shape=tuple(int(s) for s in frames.shape),
        )
    if isinstance(frames, (str, os.PathLike)):
        return _prepare_path(frames, channels, layout, last, max_bytes)
    if isinstance(frames, (list, tuple)):
        if len(frames) == 0:
            raise InputError(f"empty input: got an empty {type(frames).__name__} of frames")
        if all(isinstance(f, Image.Image) for f in frames):
            return _prepare_pil_list(frames, channels, layout, last, max_bytes)
        if all(isinstance(f, np.ndarray) for f in frames):
            return _prepare_array_list(frames, channels, layout, last, max_bytes)
        kinds = sorted({type(f).__name__ for f in frames})
        raise InputTypeError(
            f"a {type(frames).__name__} of frames must hold only PIL images or "
            f"only numpy arrays, got elements of type {', '.join(kinds)}; "
            f"accepted inputs: {_ACCEPTED_KINDS}"
        )
    raise InputTypeError(f"cannot use an object of type {type(frames).__name__} as frames; accepted: {_ACCEPTED_KINDS}")
