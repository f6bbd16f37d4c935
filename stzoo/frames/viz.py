"""Pictures of forecasts: paper-style PNG strips and annotated animated GIFs.

Two views of one forecast, built with Pillow and numpy only (labels use Pillow's default font):

* :func:`prediction_strip` / :func:`save_strip`: a still image laid out like the figures of the
  video-prediction papers. One row per kind of frame, one column per time step::

      input         t=1  t=2  ...  t=10
      ground truth  t=11 t=12 ...  t=20
      prediction    t=11 t=12 ...  t=20
      |error|       t=11 t=12 ...  t=20   [colour scale]

  The error row is the absolute difference ``|prediction - ground truth|`` (averaged over the
  channels of RGB frames) drawn as a heat map, with a colour bar that states the values it spans.
  Without ground truth the strip has two rows, input and prediction.
* :func:`animation_frames` / :func:`save_gif`: an animated GIF that plays the observed frames and
  then the forecast, each frame labelled; with ground truth, the true future plays beside it.

Frames may be numpy arrays or torch tensors shaped T×H×W, T×H×W×C or T×C×H×W (C = 1 or 3; a
leading batch axis of size 1 is dropped), uint8 in [0, 255] or floats in [0, 1] — what
:meth:`stzoo.Predictor.predict` returns for such inputs. Grayscale and RGB may be mixed (grey is
shown as grey in an RGB picture).

Example::

    p = stzoo.load("tau-mmnist")
    future = p.predict(frames)
    stzoo.frames.viz.save_strip(frames, future, "strip.png", target=true_future)
    stzoo.frames.viz.save_gif(frames, future, "forecast.gif")
"""

from __future__ import annotations

import io
import math
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont

from stzoo.errors import InputError, InputTypeError
from stzoo.frames.prepare import _check_tensor_has_data
from stzoo.frames.write import _frames_to_uint8, _output_file, write_gif
from stzoo.runtime import atomic_write

__all__ = [
    "as_display_frames",
    "error_heatmap",
    "heat_colors",
    "prediction_strip",
    "save_strip",
    "animation_frames",
    "save_gif",
]

#: Anchor colours of the error heat map, from 0 (black) through purple, red and orange to pale yellow.
HEAT_ANCHORS: tuple[tuple[int, int, int], ...] = (
    (0, 0, 4),
    (45, 10, 90),
    (110, 25, 110),
    (180, 50, 90),
    (232, 95, 45),
    (250, 170, 30),
    (252, 250, 170),
)

_BACKGROUND = (255, 255, 255)
_INK = (0, 0, 0)
_GAP = 2  # pixels between frames
_MARGIN = 6  # pixels around the picture
_BAR_WIDTH = 10  # width of the colour bar


# ---- frames -----------------------------------------------------------------------------------
def as_display_frames(frames: Any, what: str = "frames") -> np.ndarray:
    """Frames as a T×H×W×C uint8 array (C = 1 or 3) for drawing.

    Args:
        frames: numpy array or torch tensor, T×H×W, T×H×W×C or T×C×H×W with C = 1 or 3 (a
            leading batch axis of size 1 is dropped); uint8 / integers in [0, 255] or floats in
            [0, 1].
        what: the argument's name, used in error messages.

    Returns:
        A T×H×W×C uint8 array.

    Raises:
        InputTypeError: ``frames`` is not an array or tensor, or has an unsupported dtype.
        InputError: the shape is not one of the above, or values are out of range / NaN.
    """
    if isinstance(frames, torch.Tensor):
        _check_tensor_has_data(frames)  # a meta tensor has nothing to draw
        t = frames.detach().cpu()
        frames = t.float().numpy() if t.is_floating_point() else t.numpy()
    if not isinstance(frames, np.ndarray):
        raise InputTypeError(
            f"{what} must be a numpy array or torch tensor (T×H×W, T×H×W×C or T×C×H×W), got {type(frames).__name__}"
        )
    a = frames
    if a.ndim == 5 and a.shape[0] == 1:
        a = a[0]
    if a.ndim == 4 and a.shape[-1] not in (1, 3) and a.shape[1] in (1, 3):
        a = np.moveaxis(a, 1, -1)  # T×C×H×W -> T×H×W×C
    if not (a.ndim == 3 or (a.ndim == 4 and a.shape[-1] in (1, 3))):
        raise InputError(
            f"{what} must be shaped T×H×W, T×H×W×C or T×C×H×W with C = 1 or 3 (one sequence; "
            f"a batch axis only of size 1), got shape {tuple(frames.shape)}. For a batch, draw "
            f"one sequence at a time: {what}[i]."
        )
    try:
        return _frames_to_uint8(np.ascontiguousarray(a))
    except (InputError, InputTypeError) as exc:
        raise type(exc)(f"{what}: {exc}") from None


def _to_rgb(frames: np.ndarray) -> np.ndarray:
    return np.repeat(frames, 3, axis=-1) if frames.shape[-1] == 1 else frames


def heat_colors(values: np.ndarray) -> np.ndarray:
    """Map values in [0, 1] to RGB uint8 colours of the heat map (:data:`HEAT_ANCHORS`).

    Args:
        values: any shape; clipped to [0, 1].

    Returns:
        An array of shape ``values.shape + (3,)``, dtype uint8.
    """
    v = np.clip(np.nan_to_num(np.asarray(values, dtype=np.float64)), 0.0, 1.0)
    anchors = np.asarray(HEAT_ANCHORS, dtype=np.float64)
    pos = np.linspace(0.0, 1.0, len(anchors))
    rgb = np.stack([np.interp(v, pos, anchors[:, c]) for c in range(3)], axis=-1)
    return np.rint(rgb).astype(np.uint8)


def error_heatmap(prediction: Any, target: Any, *, vmax: float | None = None) -> tuple[np.ndarray, np.ndarray, float]:
    """The absolute error of a forecast, per pixel, and its heat-map picture.

    Args:
        prediction: predicted frames (see :func:`as_display_frames` for accepted forms).
        target: the true frames, same T, H, W (channels may differ only as grey vs RGB).
        vmax: the error drawn in the brightest colour; default the largest error in the
            sequence (at least 1/255). Errors are in units of the [0, 1] value range.

    Returns:
        ``(error, colours, vmax)``: the T×H×W float32 absolute error in [0, 1] (mean over
        channels), its T×H×W×3 uint8 heat map, and the ``vmax`` used.

    Raises:
        InputError: the shapes differ or ``vmax`` is not positive.
    """
    pred = as_display_frames(prediction, "prediction")
    true = as_display_frames(target, "target")
    if pred.shape[:3] != true.shape[:3]:
        raise InputError(
            f"prediction and target must have the same T×H×W, got {pred.shape[:3]} and "
            f"{true.shape[:3]}; pass as many true future frames as predicted ones"
        )
    if pred.shape[-1] != true.shape[-1]:
        pred, true = _to_rgb(pred), _to_rgb(true)
    err = np.abs(pred.astype(np.float32) - true.astype(np.float32)).mean(axis=-1) / np.float32(255)
    if vmax is None:
        vmax = max(float(err.max()), 1.0 / 255)
    elif not (isinstance(vmax, (int, float)) and math.isfinite(vmax) and vmax > 0):
        raise InputError(f"vmax must be a positive number, got {vmax!r}")
    return err, heat_colors(err / np.float32(vmax)), float(vmax)


# ---- drawing helpers --------------------------------------------------------------------------
def _font() -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    return ImageFont.load_default()


def _text_size(font: Any, text: str) -> tuple[int, int]:
    left, top, right, bottom = font.getbbox(text)
    return int(math.ceil(right - left)), int(math.ceil(bottom - min(top, 0)))


def _upscale(frame: np.ndarray, scale: int) -> np.ndarray:
    return frame if scale == 1 else np.repeat(np.repeat(frame, scale, axis=0), scale, axis=1)


def _auto_scale(height: int, width: int, scale: int | None) -> int:
    if scale is None:
        return max(1, math.ceil(48 / max(1, min(height, width))))
    if isinstance(scale, bool) or not isinstance(scale, (int, np.integer)) or scale < 1:
        raise InputError(f"scale must be a positive integer (pixels per frame pixel), got {scale!r}")
    return int(scale)


def _check_start(start: Any) -> int:
    if isinstance(start, bool) or not isinstance(start, (int, np.integer)):
        raise InputTypeError(f"start must be an int (index of the first input frame), got {start!r}")
    return int(start)


def _prepare(inputs: Any, prediction: Any, target: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    x = as_display_frames(inputs, "inputs")
    y = as_display_frames(prediction, "prediction")
    gt = as_display_frames(target, "target") if target is not None else None
    if x.shape[1:3] != y.shape[1:3]:
        raise InputError(
            f"inputs and prediction must have the same frame size H×W, got {x.shape[1:3]} and {y.shape[1:3]}"
        )
    if gt is not None and gt.shape[:3] != y.shape[:3]:
        raise InputError(
            f"target must hold as many frames of the same size as prediction (T×H×W {y.shape[:3]}), got {gt.shape[:3]}"
        )
    return x, y, gt


# ---- the strip --------------------------------------------------------------------------------
def prediction_strip(
    inputs: Any,
    prediction: Any,
    target: Any = None,
    *,
    scale: int | None = None,
    error_max: float | None = None,
    start: int = 1,
) -> Image.Image:
    """Draw a forecast as a paper-style strip: input | ground truth | prediction | absolute error.

    Every frame is labelled with its time index ``t``: inputs are ``start … start+T_in-1`` and
    the future frames continue from there. The error row is ``|prediction - target|`` as a heat
    map with a colour bar (values in units of the [0, 1] range). Without ``target`` only the
    input and prediction rows are drawn.

    Args:
        inputs: the observed frames (T_in×H×W, T_in×H×W×C or T_in×C×H×W; uint8 or float in [0, 1]).
        prediction: the predicted frames, same H×W.
        target: the true future frames (same T×H×W as ``prediction``), or None.
        scale: integer upscaling of every frame (nearest neighbour); default: enough to make a
            frame at least 48 pixels on its short side.
        error_max: the error shown in the brightest heat-map colour (default: the largest).
        start: time index of the first input frame.

    Returns:
        An RGB ``PIL.Image.Image``.

    Raises:
        InputError / InputTypeError: frames of the wrong shape, dtype or value range; sizes that
            do not match; a bad ``scale`` or ``error_max``.
    """
    x, y, gt = _prepare(inputs, prediction, target)
    start = _check_start(start)
    h, w = x.shape[1:3]
    scale = _auto_scale(h, w, scale)
    ch, cw = h * scale, w * scale
    t_in, t_out = x.shape[0], y.shape[0]

    rows: list[tuple[str, list[np.ndarray], int]] = [("input", list(_to_rgb(x)), start)]
    vmax = None
    if gt is not None:
        _, heat, vmax = error_heatmap(y, gt, vmax=error_max)
        rows += [
            ("ground truth", list(_to_rgb(gt)), start + t_in),
            ("prediction", list(_to_rgb(y)), start + t_in),
            ("|error|", list(heat), start + t_in),
        ]
    else:
        rows.append(("prediction", list(_to_rgb(y)), start + t_in))

    font = _font()
    label_w = max(_text_size(font, name)[0] for name, _, _ in rows) + 8
    index_h = _text_size(font, "t=0123456789")[1] + 3
    columns = max(t_in, t_out)
    bar_labels = [f"{vmax:.2f}", "0"] if vmax is not None else []
    bar_w = (_BAR_WIDTH + 4 + max(_text_size(font, s)[0] for s in bar_labels) + 4) if bar_labels else 0
    width = 2 * _MARGIN + label_w + columns * cw + (columns - 1) * _GAP + bar_w
    row_h = index_h + ch
    height = 2 * _MARGIN + len(rows) * row_h + (len(rows) - 1) * _GAP
    canvas = Image.new("RGB", (width, height), _BACKGROUND)
    draw = ImageDraw.Draw(canvas)

    for r, (name, frames, first) in enumerate(rows):
        top = _MARGIN + r * (row_h + _GAP)
        name_h = _text_size(font, name)[1]
        draw.text((_MARGIN, top + index_h + (ch - name_h) // 2), name, fill=_INK, font=font)
        for c, frame in enumerate(frames):
            left = _MARGIN + label_w + c * (cw + _GAP)
            label = f"t={first + c}"
            tw = _text_size(font, label)[0]
            if tw <= cw + _GAP:  # skip indices that would not fit (tiny frames)
                draw.text((left + (cw - tw) // 2, top), label, fill=_INK, font=font)
            canvas.paste(Image.fromarray(np.ascontiguousarray(_upscale(frame, scale))), (left, top + index_h))
        if name == "|error|" and vmax is not None:
            left = _MARGIN + label_w + columns * cw + (columns - 1) * _GAP + 4
            ramp = heat_colors(np.linspace(1.0, 0.0, ch))[:, None, :].repeat(_BAR_WIDTH, axis=1)
            canvas.paste(Image.fromarray(np.ascontiguousarray(ramp)), (left, top + index_h))
            draw.rectangle((left - 1, top + index_h - 1, left + _BAR_WIDTH, top + index_h + ch), outline=_INK)
            hi_h = _text_size(font, bar_labels[0])[1]
            draw.text((left + _BAR_WIDTH + 4, top + index_h), bar_labels[0], fill=_INK, font=font)
            draw.text((left + _BAR_WIDTH + 4, top + index_h + ch - hi_h), bar_labels[1], fill=_INK, font=font)
    return canvas


def _output_path(path: str | os.PathLike) -> Path:
    # the folder must exist; an over-long path or an existing FIFO / device is refused, not opened
    return _output_file(path)


def save_strip(
    inputs: Any,
    prediction: Any,
    path: str | os.PathLike,
    *,
    target: Any = None,
    scale: int | None = None,
    error_max: float | None = None,
    start: int = 1,
) -> Path:
    """Draw :func:`prediction_strip` and save it (PNG, or any format Pillow infers from the suffix).

    ``inputs``, ``prediction``, ``target``, ``scale``, ``error_max`` and ``start`` are as for
    :func:`prediction_strip`.

    Args:
        path: the image file to write; its folder must exist.

    Returns:
        The path written.

    Raises:
        InputError: as :func:`prediction_strip`, or the file cannot be written.
    """
    p = _output_path(path)
    image = prediction_strip(inputs, prediction, target, scale=scale, error_max=error_max, start=start)
    from PIL import Image as _Image

    fmt = "PNG"
    if p.suffix:
        _Image.init()
        fmt = _Image.EXTENSION.get(p.suffix.lower())
        if fmt is None:
            raise InputError(f"cannot write '{p}': unknown image suffix {p.suffix!r} (use a .png file name)")
    buf = io.BytesIO()
    try:
        image.save(buf, format=fmt, optimize=True)
    except (OSError, ValueError, KeyError) as exc:
        raise InputError(f"cannot write '{p}': {exc} (use a .png file name)") from exc
    atomic_write(p, buf.getvalue(), what="strip image")  # whole or not at all; never onto a FIFO or device
    return p


# ---- the animation ----------------------------------------------------------------------------
def animation_frames(
    inputs: Any, prediction: Any, target: Any = None, *, scale: int | None = None, start: int = 1
) -> np.ndarray:
    """The frames of an annotated forecast animation, as a T×H'×W'×3 uint8 array.

    The observed frames play first (labelled ``input t=…``), then the forecast (``prediction
    t=…``). With ``target``, a second panel beside it shows the same observed frames and then the
    true future (``ground truth t=…``), so the two can be compared as they play.

    ``inputs``, ``prediction``, ``target``, ``scale`` and ``start`` are as for :func:`prediction_strip`.

    Returns:
        ``T_in + T_out`` RGB frames, uint8.
    """
    x, y, gt = _prepare(inputs, prediction, target)
    start = _check_start(start)
    h, w = x.shape[1:3]
    scale = _auto_scale(h, w, scale)
    ch, cw = h * scale, w * scale
    font = _font()
    label_h = _text_size(font, "prediction t=0123456789")[1] + 4
    panels = 2 if gt is not None else 1
    width = 2 * _MARGIN + panels * cw + (panels - 1) * 2 * _GAP
    height = 2 * _MARGIN + 2 * label_h + ch
    t_in = x.shape[0]
    out = []
    for i in range(t_in + y.shape[0]):
        observed = i < t_in
        shown = [(_to_rgb(x)[i], "input") if observed else (_to_rgb(y)[i - t_in], "prediction")]
        if gt is not None:
            shown.append((_to_rgb(x)[i], "input") if observed else (_to_rgb(gt)[i - t_in], "ground truth"))
        canvas = Image.new("RGB", (width, height), _BACKGROUND)
        draw = ImageDraw.Draw(canvas)
        for k, (frame, name) in enumerate(shown):
            left = _MARGIN + k * (cw + 2 * _GAP)
            for line, text in enumerate((name, f"t={start + i}")):
                tw = _text_size(font, text)[0]
                draw.text((left + max(0, (cw - tw) // 2), _MARGIN + line * label_h), text, fill=_INK, font=font)
            canvas.paste(Image.fromarray(np.ascontiguousarray(_upscale(frame, scale))), (left, _MARGIN + 2 * label_h))
        out.append(np.asarray(canvas))
    return np.stack(out)


def save_gif(
    inputs: Any,
    prediction: Any,
    path: str | os.PathLike,
    *,
    target: Any = None,
    fps: float = 4.0,
    scale: int | None = None,
    start: int = 1,
) -> Path:
    """Write :func:`animation_frames` as a looping animated GIF.

    ``inputs``, ``prediction``, ``target``, ``scale`` and ``start`` are as for :func:`prediction_strip`.

    Args:
        path: the GIF file to write; its folder must exist.
        fps: frames per second.

    Returns:
        The path written.

    Raises:
        InputError: as :func:`prediction_strip`, a bad ``fps``, or the file cannot be written.
    """
    p = _output_path(path)
    write_gif(animation_frames(inputs, prediction, target, scale=scale, start=start), p, fps=fps)
    return p
