"""Layouts of frame arrays: which axis is time, channel, height and width, and back again.

* :data:`LAYOUTS` lists the accepted layouts, strings of upper-case axis letters ``B`` (batch), ``T``
  (time), ``C`` (channel), ``H`` and ``W``: T×H×W, T×H×W×C, T×C×H×W and their batched forms.
* :func:`infer_layout` is THE rule that reads an array's layout from its shape and the model's
  channel count; ``Predictor.predict`` (through :func:`~stzoo.frames.prepare.prepare_frames`) and the
  fine-tuning data (:func:`stzoo.data.clips.load_videos`) both use it, so they read an array alike.
  :func:`infer_frame_layout` does the same for one frame of a list.
* :data:`LUMA`, :func:`convertible_channels` and :func:`convert_channels`: grey ↔ RGB, one rule.
* :class:`OutputFormat` records how an input looked, and :meth:`OutputFormat.restore` returns a
  forecast in the same kind of object, layout, channel count and dtype.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from PIL import Image

from stzoo.errors import InputError, InputTypeError

__all__ = [
    "LAYOUTS",
    "LUMA",
    "OutputFormat",
    "convert_channels",
    "convertible_channels",
    "infer_frame_layout",
    "infer_layout",
]

#: Accepted layouts of a frame sequence (B: batch, T: time, C: channel, H: height, W: width).
LAYOUTS: tuple[str, ...] = ("THW", "THWC", "TCHW", "BTHW", "BTHWC", "BTCHW")

_UNBATCHED_LAYOUTS: tuple[str, ...] = ("THW", "THWC", "TCHW")

_TORCH_FLOATS = (torch.float16, torch.bfloat16, torch.float32, torch.float64)

#: ITU-R BT.601 luma weights of R, G and B: the ones Pillow's 'L' conversion uses.
LUMA: tuple[float, float, float] = (0.299, 0.587, 0.114)

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


# --------------------------------------------------------------------------------------------
# layouts


def _check_layout_arg(layout: Any) -> str | None:
    """Validate the ``layout=`` argument (case-insensitive); return it upper-cased."""
    if layout is None:
        return None
    if not isinstance(layout, str):
        raise InputTypeError(f"layout must be a str such as 'THWC' or None, got {type(layout).__name__}")
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
    raise InputError(
        f"cannot convert frames with {have} channel(s) to {channels}: only grey (1) ↔ RGB (3) is converted"
    )


def _looks_like_channels(shape: tuple[int, ...], axis: int) -> bool:
    """Whether ``shape[axis]`` looks like a colour channel axis of H×W×C / C×H×W frames.

    True when the two axes beside it that would be H×W (the two before a last axis; the two
    after any other) are both at least :data:`_IMAGE_SIDE` long and it has 2, 3 or 4 entries
    (a last axis) or 3 or 4 (an axis before H×W).
    """
    n = len(shape)
    axis %= n
    last = axis == n - 1
    sides = shape[axis - 2 : axis] if last else shape[axis + 1 : axis + 3]
    sizes = _COLOUR_AXIS_SIZES if last else _LEADING_COLOUR_AXIS_SIZES
    return shape[axis] in sizes and len(sides) == 2 and all(s >= _IMAGE_SIDE for s in sides)


def _colour_hint(shape: tuple[int, ...], channels: int) -> str:
    """Advice for colour / alpha channels that do not match the model (empty if none seen)."""
    if shape and shape[-1] == 4 and channels in (1, 3) and _looks_like_channels(shape, -1):
        then = " (the RGB frames are then converted to grey)" if channels == 1 else ""
        return (
            f"; for RGBA H×W×4 frames, drop alpha with frames[..., :3]{then}: stzoo does not drop "
            f"alpha from arrays itself"
        )
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


def _infer_layout(shape: tuple[int, ...], channels: int, allowed: tuple[str, ...], desc: str) -> str:
    """Guess the layout of an array from its shape and the model's channel count.

    See :func:`prepare_frames` for the rules.
    """
    ndim = len(shape)
    c = channels
    grey_ok = c == 1 or 1 in convertible_channels(c)  # frames without a channel axis are grey
    hint = "pass layout='...' to say which axis is which" + _colour_hint(shape, c)
    if ndim == 3:
        if not grey_ok:
            raise InputError(
                f"a 3-D input is read as THW (one channel), but the model expects {c} "
                f"channels ({desc}); pass a 4-D T×H×W×{c} (THWC) or T×{c}×H×W (TCHW) "
                f"array"
            )
        if _looks_like_channels(shape, -1):
            raise InputError(
                f"the {desc} would be read as THW ({shape[0]} grey frames of {shape[1]}x{shape[2]}), "
                f"but its last axis, of size {shape[-1]}, looks like the colour channels of one "
                f"H×W×{shape[-1]} image; pass layout='THW' if the THW reading is right, else pass a "
                f"sequence with a time axis (T×H×W×{shape[-1]}; frames[None] for one frame)"
                f"{_colour_hint(shape, c)}"
            )
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
                    f"{_colour_hint(shape, c)}"
                )
            return "BTHW"
        raise InputError(
            f"cannot tell the layout of the {desc} for a model that takes {_takes(c)}: "
            f"expected THWC (last axis of size {c}) or TCHW (axis 1 of size {c}); {hint}"
        )
    if ndim == 5:
        axis = _pick_channel_axis(shape, c, (4, 2))
        if axis is not None:
            return "BTHWC" if axis == 4 else "BTCHW"
        raise InputError(
            f"cannot tell the layout of the {desc} for a model that takes {_takes(c)}: "
            f"expected BTHWC (last axis {c}) or BTCHW (axis 2 of size {c}); {hint}"
        )
    raise AssertionError("unreachable: ndim checked before")  # pragma: no cover


def infer_layout(
    shape: Sequence[int],
    channels: int,
    *,
    layout: str | None = None,
    allowed: tuple[str, ...] = LAYOUTS,
    desc: str = "input",
) -> str:
    """The layout an array of ``shape`` is read in, for a model that takes ``channels`` channels.

    The one rule for every path that reads arrays: ``Predictor.predict`` (through
    :func:`~stzoo.frames.prepare.prepare_frames`) and the fine-tuning data
    (:func:`stzoo.data.clips.load_videos`); the rule is spelled out in
    :func:`~stzoo.frames.prepare.prepare_frames`. A ``layout`` that is given (any case) is checked
    against ``allowed`` and the number of axes instead. The channel count found is not compared with
    ``channels`` here (:func:`~stzoo.frames.prepare.prepare_frames` does that; fine-tuning converts it).

    Raises:
        InputError: a number of axes no layout of ``allowed`` has, a layout that does not fit, or a
            shape whose layout cannot be told (the message names ``desc`` and what to pass).
        InputTypeError: ``layout`` is not a str.
    """
    shape = tuple(int(s) for s in shape)
    layout = _check_layout_arg(layout)
    ndims = sorted({len(lay) for lay in allowed})
    if layout is not None:
        if layout not in allowed:
            raise InputError(f"layout {layout!r} is not accepted here; expected one of {', '.join(allowed)}")
        if len(layout) != len(shape):
            raise InputError(f"layout {layout!r} needs a {len(layout)}-D input, got a {desc}")
        return layout
    if len(shape) not in ndims:
        extra = " (a single frame? the input needs a time axis T: frames[None])" if len(shape) == min(ndims) - 1 else ""
        raise InputError(
            f"expected a {ndims[0]}-D to {ndims[-1]}-D input (layouts {', '.join(allowed)}), got a {desc}{extra}"
        )
    return _infer_layout(shape, channels, allowed, desc)


def _resolve_layout(
    shape: tuple[int, ...], channels: int, layout: str | None, allowed: tuple[str, ...], desc: str
) -> str:
    """:func:`infer_layout`, then check the channel count.

    A channel count that :func:`convertible_channels` converts to ``channels`` is accepted.
    """
    given = layout is not None
    layout = infer_layout(shape, channels, layout=layout, allowed=allowed, desc=desc)
    got = shape[layout.index("C")] if "C" in layout else 1
    if got != channels and got not in convertible_channels(channels):
        how = "the layout passed" if given else "the layout inferred from the shape"
        raise InputError(
            f"expected {channels} channel(s), got {got} ({desc}, read as layout "
            f"{layout}, {how}); if that is not its layout, pass layout= (one of "
            f"{', '.join(allowed)}){_colour_hint(shape, channels)}"
        )
    return layout


def _channels_of(shape: tuple[int, ...], layout: str) -> int:
    """The channel count of an input of ``shape`` read as ``layout`` (1 without a C axis)."""
    return int(shape[layout.index("C")]) if "C" in layout else 1


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
            raise InputTypeError(f"restore expects a torch tensor B×T×C×H×W, got {type(y).__name__}")
        if y.ndim != 5:
            raise InputError(f"restore expects a 5-D tensor B×T×C×H×W, got {_describe(y)}")
        if y.shape[2] != self.channels:
            raise InputError(f"restore expects {self.channels} channel(s) on axis 2, got {_describe(y)}")
        if not self.batched and y.shape[0] != 1:
            raise InputError(f"the input had no batch axis, so the output must have B == 1, got {_describe(y)}")
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
