"""``Forecaster``: rolling forecasts from a live stream of frames.

A :class:`~stzoo.inference.predictor.Predictor` answers "here is a clip, what comes next?". A
:class:`Forecaster` answers the same question again and again while frames keep arriving from a
camera, a radar or a sensor grid: :meth:`Forecaster.push` one frame at a time, and
:meth:`Forecaster.forecast` whenever a forecast is wanted.

Two ways to keep the context (``context=``):

``"stream"`` (recurrent models only; their default)
    The hidden state is carried forward over the whole stream since the last :meth:`reset`.
    Every push costs one ``model.step`` and nothing else, so the cost per frame does not grow
    with the stream. :meth:`forecast` rolls out from a copy of the state and leaves it as it was.
    The forecast equals ``model(all frames pushed since reset, horizon)``; while at most
    ``frames_in`` frames have been pushed that is exactly what ``Predictor.predict`` gives for
    those frames.

``"window"`` (TAU's only choice; optional for recurrent models)
    The last ``frames_in`` frames are kept in a rolling buffer and every forecast recomputes them,
    so the forecast equals ``Predictor.predict`` on those frames, always. A push only stores the
    frame; a forecast costs one full forward pass over the window (a recurrent model:
    ``frames_in + horizon - 1`` steps), which does not grow with the stream either.

Only the model interface ``recurrent``, ``step(frame, states)``, ``init_states(batch, h, w, like)``
(and ``rollout_step(prediction, states)`` where a model steps differently on its own forecast, as PredNet does)
and the forward pass (through the Predictor) is used, so fused modules with the same interface
work unchanged.
"""

from __future__ import annotations

from collections import deque
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch import Tensor

from stzoo.errors import InputError, InputTypeError
from stzoo.frames import (
    OutputFormat,
    convertible_channels,
    infer_frame_layout,
    prepare_frames,
)
from stzoo.inference.predictor import Predictor, check_count, check_horizon, check_output_size
from stzoo.metrics import frame_metrics, frame_mse, frame_psnr
from stzoo.models.base import eval_mode

__all__ = ["CONTEXTS", "Forecaster"]

#: Accepted values of ``Forecaster(context=...)``.
CONTEXTS: tuple[str, ...] = ("stream", "window")

_FRAME_LAYOUTS: tuple[str, ...] = ("HW", "HWC", "CHW")


def _clone_states(states: Any) -> Any:
    """A deep copy of a (nested list/tuple of) state tensor(s)."""
    if isinstance(states, Tensor):
        return states.clone()
    if isinstance(states, (list, tuple)):
        return type(states)(_clone_states(s) for s in states)
    return states


def _positive_int(value: Any, what: str) -> int:
    """A count (an int or any ``numbers.Integral`` such as ``np.int64``, not a bool) that is at least 1."""
    return check_count(value, what)


class Forecaster:
    """Rolling forecasts from frames that arrive one at a time.

    Example::

        p = stzoo.load("convlstm-mmnist")
        f = stzoo.Forecaster(p, horizon=10)
        for frame in camera:              # each frame H×W uint8 (or H×W×C, C×H×W; array/tensor/PIL)
            f.push(frame)
            if f.ready:
                future = f.forecast()     # 10×H×W uint8: the next 10 frames
        f.compare(next_frames)            # {"mse", "mae", "ssim", "psnr", "frames"}, as in the zoo table

    Frames are read as by ``Predictor.predict``: RGB frames for a grey model are converted to their
    luminance (grey frames for an RGB model repeated into R, G and B) and forecasts come back with
    the pushed frames' channels, with the Predictor's one-time :class:`~stzoo.frames.prepare.FramesWarning`.

    Args:
        predictor: the model to run (from :func:`stzoo.load`). Its device and dtype are used.
        horizon: frames per forecast (default ``spec.frames_out``); longer than the model's
            native output length is rolled out autoregressively, as in ``Predictor.predict``.
        context: ``"stream"`` (carry the recurrent state over the whole stream; recurrent models
            only, their default) or ``"window"`` (recompute the last ``frames_in`` frames for
            every forecast; TAU's default and only choice). See the module docstring.
        min_frames: frames needed before the first forecast (default: ``predictor.min_frames``,
            i.e. ``frames_in`` for TAU and 1 for recurrent models). Set it to ``frames_in`` to
            wait for a full window with a recurrent model too.
        max_horizon: the longest horizon accepted, here and by :meth:`forecast` (default
            :data:`stzoo.inference.predictor.MAX_HORIZON`, 10,000 frames).
        max_output_bytes: the largest forecast :meth:`forecast` makes, in bytes of float32
            ``horizon·C·H·W·4`` (default :data:`stzoo.inference.predictor.MAX_OUTPUT_BYTES`, 2 GiB).

    Counts (``horizon``, ``min_frames``) are ints or numpy integers, not bools.

    Raises:
        InputTypeError: ``predictor`` is not a :class:`~stzoo.inference.predictor.Predictor`.
        InputError: bad ``horizon``/``min_frames`` (not a positive integer, or a horizon above
            ``max_horizon``), unknown ``context``, or ``"stream"`` for a model that is not recurrent.
    """

    def __init__(
        self,
        predictor: Predictor,
        horizon: int | None = None,
        *,
        context: str | None = None,
        min_frames: int | None = None,
        max_horizon: int | None = None,
        max_output_bytes: int | None = None,
    ):
        if not isinstance(predictor, Predictor):
            raise InputTypeError(
                f"Forecaster needs a stzoo Predictor (e.g. stzoo.load(name)), got {type(predictor).__name__}"
            )
        self.predictor = predictor
        if max_horizon is not None:
            check_count(max_horizon, "max_horizon", "max_horizon=20000")
        if max_output_bytes is not None:
            check_count(max_output_bytes, "max_output_bytes", "max_output_bytes=2**32")
        self.max_horizon, self.max_output_bytes = max_horizon, max_output_bytes
        what = "horizon" if horizon is not None else "horizon (the default, spec.frames_out)"
        self.horizon = check_horizon(
            predictor.spec.frames_out if horizon is None else horizon, max_horizon=max_horizon, what=what
        )
        recurrent = predictor.recurrent
        if context is None:
            context = "stream" if recurrent else "window"
        if context not in CONTEXTS:
            raise InputError(f"context must be one of {', '.join(map(repr, CONTEXTS))}, got {context!r}")
        if context == "stream" and not recurrent:
            raise InputError(
                f"context='stream' carries a recurrent hidden state, but "
                f"{predictor.name or type(predictor.model).__name__} is not recurrent; "
                f"use context='window' (it recomputes the last {predictor.spec.frames_in} frames)"
            )
        self.context = context
        floor = predictor.min_frames
        self.min_frames = floor if min_frames is None else _positive_int(min_frames, "min_frames")
        if self.min_frames < floor:
            raise InputError(f"min_frames must be at least {floor} for this model, got {self.min_frames}")
        if context == "window" and self.min_frames > predictor.spec.frames_in:
            raise InputError(
                f"with context='window' only the last {predictor.spec.frames_in} frames are kept, "
                f"so min_frames can be at most {predictor.spec.frames_in}, got {self.min_frames}"
            )
        self.reset()

    # ------------------------------------------------------------------------------------------
    def reset(self) -> None:
        """Forget every frame and the hidden state: the next push starts a new stream (which may
        have another frame size)."""
        self._window: deque[Tensor] = deque(maxlen=self.predictor.spec.frames_in)
        self._states: Any = None
        self._next: Tensor | None = None  # the recurrent model's prediction of the next frame
        self._frame_shape: tuple[int, ...] | None = None
        self._fmt: OutputFormat | None = None
        self._cache: tuple[int, int, Tensor] | None = None  # (frames_seen, horizon, forecast)
        self._seq_layout: str | None = None  # layout of a sequence of the pushed frames (THW, THWC, TCHW)
        self.frames_seen = 0

    def __repr__(self) -> str:
        return (
            f"Forecaster({self.predictor.name or type(self.predictor.model).__name__}, "
            f"horizon={self.horizon}, context={self.context!r}, frames_seen={self.frames_seen}, "
            f"frames_needed={self.frames_needed})"
        )

    @property
    def frames_needed(self) -> int:
        """How many more frames must be pushed before :meth:`forecast` works (0 when ready)."""
        return max(0, self.min_frames - self.frames_seen)

    @property
    def ready(self) -> bool:
        """Whether enough frames have been pushed for :meth:`forecast`."""
        return self.frames_needed == 0

    # ------------------------------------------------------------------------------------------
    def _to_tensor(self, frame: Any, layout: str | None) -> tuple[Tensor, OutputFormat, str]:
        """One frame → 1×1×C×H×W float32 in [0, 1], the format to restore forecasts in, and the
        layout of a sequence of such frames (THW, THWC or TCHW).

        Grey ↔ RGB frames are converted as in ``Predictor.predict`` (with its one-time warning).
        """
        channels = self.predictor.spec.channels
        if layout is not None:
            if not isinstance(layout, str) or layout.upper() not in _FRAME_LAYOUTS:
                raise InputError(f"layout of one frame must be one of {', '.join(_FRAME_LAYOUTS)}, got {layout!r}")
            layout = "T" + layout.upper()
        if isinstance(frame, Image.Image):
            x, fmt = prepare_frames([frame], channels=channels, layout=layout)
            return x, fmt, "THWC"
        if not isinstance(frame, (np.ndarray, Tensor)):
            raise InputTypeError(
                f"push takes one frame as a numpy array, torch tensor or PIL image, got {type(frame).__name__}"
            )
        if frame.ndim not in (2, 3):
            raise InputError(
                f"push takes one frame (H×W, H×W×C or C×H×W), got an array of shape "
                f"{tuple(frame.shape)}; to start from a clip, push its frames one by one"
            )
        if layout is None:
            # decided on the frame itself: a sequence of one frame could be read as a batch (BTHW)
            frame_layout = infer_frame_layout(tuple(frame.shape), channels)
            if frame_layout is None:
                alpha = (
                    " (RGBA? stzoo does not drop alpha from arrays: pass frame[..., :3], which a grey "
                    "model reads converted to grey)"
                    if frame.shape[-1] == 4
                    else ""
                )
                takes = " or ".join(str(k) for k in (channels,) + convertible_channels(channels))
                raise InputError(
                    f"a frame of shape {tuple(frame.shape)} does not fit a {channels}-channel model: "
                    f"expected H×W, H×W×C or C×H×W with C = {takes} (a clip: push its frames one by "
                    f"one){alpha}"
                )
            layout = "T" + frame_layout
        x, fmt = prepare_frames(frame[None], channels=channels, layout=layout)
        return x, fmt, layout

    @torch.no_grad()
    def push(self, frame: Any, *, layout: str | None = None) -> None:
        """Append one frame to the stream.

        With ``context="stream"`` this runs one ``model.step`` (the new hidden state and the
        prediction of the next frame); with ``context="window"`` it only stores the frame.

        Args:
            frame: H×W, H×W×C or C×H×W numpy array or torch tensor (uint8 in [0, 255] or float in
                [0, 1]), or a PIL image; the same kinds and value rules as ``Predictor.predict``.
                Every frame of a stream must have the same channels, height and width.
            layout: ``"HW"``, ``"HWC"`` or ``"CHW"`` to say which one it is, when the shape
                leaves it ambiguous (e.g. a 3×3×3 frame); default: inferred from the shape.

        Raises:
            InputTypeError: ``frame`` is not an array, tensor or PIL image, or has a bad dtype.
            InputError: wrong shape or channel count, values out of range, a frame size the model
                cannot take, or a size that differs from the earlier frames of the stream.
        """
        x, fmt, seq_layout = self._to_tensor(frame, layout)
        self.predictor.warn_conversion(fmt)
        shape = tuple(x.shape[2:])
        if self._frame_shape is None:
            # the architecture's own size rules (e.g. divisible by the patch size), as in predict
            self.predictor.check_input(x.expand(-1, self.predictor.min_frames, -1, -1, -1))
        elif shape != self._frame_shape:
            raise InputError(
                f"frame {self.frames_seen} has C×H×W = {shape}, but the earlier frames of this "
                f"stream have {self._frame_shape}; call reset() to start a stream of another size"
            )
        x = x[:, 0].to(self.predictor.device, self.predictor.dtype)  # 1×C×H×W
        if self.context == "stream":
            model = self.predictor.model
            with eval_mode(model):
                if self._states is None:
                    patch = int(getattr(model, "patch_size", 1))
                    self._states = model.init_states(1, shape[1] // patch, shape[2] // patch, x)
                self._next, self._states = model.step(x, self._states)
        else:
            self._window.append(x)
        self._frame_shape, self._fmt, self._seq_layout = shape, fmt, seq_layout
        self.frames_seen += 1
        self._cache = None

    @torch.no_grad()
    def _forecast_tensor(
        self, horizon: int, max_horizon: int | None = None, max_output_bytes: int | None = None
    ) -> Tensor:
        """The forecast as a 1×horizon×C×H×W float tensor on the model's device."""
        if self._cache is not None and self._cache[:2] == (self.frames_seen, horizon):
            return self._cache[2]
        model = self.predictor.model
        with eval_mode(model):
            if self.context == "stream":
                assert self._next is not None
                pred, states, outputs = self._next, _clone_states(self._states), [self._next]
                advance = getattr(model, "rollout_step", model.step)  # a step fed the model's own forecast
                for _ in range(horizon - 1):
                    pred, states = advance(pred, states)
                    outputs.append(pred)
                y = torch.stack(outputs, dim=1)
            else:
                y = self.predictor.forecast_tensor(
                    torch.stack(list(self._window), dim=1),
                    horizon,
                    max_horizon=max_horizon,
                    max_output_bytes=max_output_bytes,
                )
        self._cache = (self.frames_seen, horizon, y)
        return y

    def forecast(
        self, horizon: int | None = None, *, max_horizon: int | None = None, max_output_bytes: int | None = None
    ) -> Any:
        """The next ``horizon`` frames after the frames pushed so far.

        Does not change the stream: calling it again without a push returns the same forecast
        (computed once).

        Args:
            horizon: frames to forecast (default: the Forecaster's ``horizon``); an int or numpy
                integer from 1 to ``max_horizon``.
            max_horizon: the longest horizon accepted (default: the Forecaster's ``max_horizon``,
                else :data:`stzoo.inference.predictor.MAX_HORIZON`).
            max_output_bytes: the largest forecast accepted, in bytes of float32 ``horizon·C·H·W·4``
                (default: the Forecaster's ``max_output_bytes``, else
                :data:`stzoo.inference.predictor.MAX_OUTPUT_BYTES`). Both are checked before the model runs.

        Returns:
            ``horizon`` frames in the kind, layout and dtype family of the most recently pushed
            frame: H×W numpy frames give a ``horizon``×H×W numpy array, C×H×W tensors a
            ``horizon``×C×H×W tensor on the same device, PIL images a list of PIL images.

        Raises:
            InputError: not enough frames yet (the message says how many more are needed; see
                :attr:`frames_needed`), a bad ``horizon`` (not a positive integer, or above
                ``max_horizon``), or a forecast bigger than ``max_output_bytes``.
        """
        max_horizon = self.max_horizon if max_horizon is None else max_horizon
        max_output_bytes = self.max_output_bytes if max_output_bytes is None else max_output_bytes
        horizon = check_horizon(self.horizon if horizon is None else horizon, max_horizon=max_horizon)
        if not self.ready:
            raise InputError(
                f"not enough frames to forecast yet: {self.frames_seen} pushed, "
                f"{self.min_frames} needed; push {self.frames_needed} more "
                f"(check Forecaster.ready / frames_needed before forecast())"
            )
        assert self._fmt is not None and self._frame_shape is not None
        # checked here (not only in forecast_tensor) so that a cached forecast obeys the limits too
        if self.context == "stream":  # one model.step per frame
            check_output_size(1, horizon, *self._frame_shape, max_output_bytes=max_output_bytes)
        else:
            self.predictor.check_forecast(
                (1, len(self._window)) + self._frame_shape,
                horizon,
                max_horizon=max_horizon,
                max_output_bytes=max_output_bytes,
            )
        return self._fmt.restore(self._forecast_tensor(horizon, max_horizon, max_output_bytes).float())

    def compare(self, observed: Any, *, layout: str | None = None) -> dict[str, float]:
        """Score the forecast from the frames pushed so far against the frames that really came next.

        The metrics are those of the zoo table (:mod:`stzoo.metrics`, the TAU paper's and OpenSTL's
        convention): **MSE** and **MAE** are the squared / absolute error *summed over the C·H·W
        values of a frame*, with values in [0, 1], then averaged over the frames compared (a 64×64
        grey frame off by 0.1 everywhere has MSE 40.96); **SSIM** and **PSNR** are per frame,
        averaged. They are computed in the model's channels: observed RGB frames for a grey model
        are converted to grey as pushed frames are.

        Args:
            observed: the frames that followed the pushed ones, as one sequence: an array or
                tensor (T×H×W, T×H×W×C or T×C×H×W; read in the layout of the pushed frames), a
                list of frames or of PIL images. The first ``len(observed)`` forecast frames are
                compared with them (the forecast is rolled out further if ``observed`` is longer
                than ``horizon``).
            layout: the layout of ``observed`` (THW, THWC or TCHW) when it differs from the
                pushed frames'.

        Returns:
            ``{"mse", "mae", "ssim", "psnr", "frames"}``: the means and the number of frames
            compared. ``ssim`` is NaN for frames smaller than 11×11 (the SSIM window).

        Raises:
            InputError: not enough frames pushed yet, ``observed`` holds no frames, more than one
                sequence, or frames of another size than the pushed ones; the errors of
                :meth:`forecast`.
        """
        if not self.ready:
            raise InputError(
                f"nothing to compare yet: {self.frames_seen} frame(s) pushed, {self.min_frames} needed "
                f"before the first forecast; push {self.frames_needed} more"
            )
        assert self._frame_shape is not None
        if (
            layout is None
            and isinstance(observed, (np.ndarray, Tensor))
            and self._seq_layout is not None
            and observed.ndim == len(self._seq_layout)
        ):
            layout = self._seq_layout  # the pushed frames' layout, not a guess from the shape
        target, _ = prepare_frames(observed, channels=self.predictor.spec.channels, layout=layout)
        if target.shape[0] != 1:
            raise InputError(f"compare takes the observed frames of this one stream, got {target.shape[0]} sequences")
        if tuple(target.shape[2:]) != self._frame_shape:
            raise InputError(
                f"the observed frames have C×H×W = {tuple(target.shape[2:])} (in the model's channels), "
                f"but the pushed frames have {self._frame_shape}"
            )
        n = int(target.shape[1])
        horizon = max(n, self.horizon)  # the cached forecast when it is long enough
        max_horizon, max_output_bytes = self.max_horizon, self.max_output_bytes
        check_horizon(horizon, max_horizon=max_horizon, what="frames to compare")
        if self.context == "stream":
            check_output_size(1, horizon, *self._frame_shape, max_output_bytes=max_output_bytes)
        else:
            self.predictor.check_forecast(
                (1, len(self._window)) + self._frame_shape,
                horizon,
                max_horizon=max_horizon,
                max_output_bytes=max_output_bytes,
            )
        pred = self._forecast_tensor(horizon, max_horizon, max_output_bytes)[:, :n].float().cpu()
        target = target.float().cpu()
        try:
            values = frame_metrics(pred, target)
        except InputError:  # frames smaller than the SSIM window
            values = {
                "mse": frame_mse(pred, target),
                "mae": (pred.clamp(0, 1) - target).abs().flatten(2).sum(-1),
                "ssim": torch.full_like(frame_mse(pred, target), float("nan")),
                "psnr": frame_psnr(pred, target),
            }
        out = {k: float(v.double().mean()) for k, v in values.items()}
        out["frames"] = n
        return out
