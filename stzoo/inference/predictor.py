"""``Predictor``: the one place that knows about user-facing frames.

It turns whatever the user hands over (arrays, tensors, PIL images, GIF paths, ...) into
B×T×C×H×W floats, runs the model in bounded batches without autograd, rolls out past the model's
native horizon, and gives the answer back in the kind, layout and dtype it came in.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from stzoo.errors import InputError
from stzoo.frames import LAYOUTS, FramesWarning, OutputFormat, peek_shape, prepare_frames
from stzoo.models.base import ARCHITECTURES, check_frames, eval_mode
from stzoo.zoo.entry import InputSpec, ZooEntry

__all__ = ["Predictor"]

_DTYPES = {
    "float32": torch.float32,
    "fp32": torch.float32,
    "float16": torch.float16,
    "fp16": torch.float16,
    "bfloat16": torch.bfloat16,
    "bf16": torch.bfloat16,
}


def parse_dtype(dtype: str | torch.dtype | None) -> torch.dtype:
    if dtype is None:
        return torch.float32
    if isinstance(dtype, torch.dtype):
        if dtype in _DTYPES.values():
            return dtype
    elif dtype in _DTYPES:
        return _DTYPES[dtype]
    raise InputError(f"dtype must be one of {sorted(_DTYPES)} (or the torch dtypes), got {dtype!r}")


def check_batch_size(batch_size: Any) -> int:
    """``batch_size`` as an ``int`` if it is a positive integer (Python or numpy integer, not a bool).

    Raises:
        InputTypeError: not an integer (e.g. ``1.5``, ``"8"``, ``None``, ``True``).
        InputError: zero or negative.
    """
    import operator

    from stzoo.errors import InputTypeError

    if isinstance(batch_size, bool) or getattr(batch_size, "dtype", None) == bool:  # noqa: E721 (numpy's dtype('bool') == bool)
        raise InputTypeError(f"batch_size must be a positive integer (sequences per forward pass), got {batch_size!r}")
    try:
        n = operator.index(batch_size)  # int, numpy integers, 0-d integer tensors; not floats or strings
    except TypeError:
        raise InputTypeError(
            f"batch_size must be a positive integer (sequences per forward pass), got "
            f"{type(batch_size).__name__} {str(batch_size)[:50]!r}"
        ) from None
    if n < 1:
        raise InputError(
            f"batch_size must be a positive integer (sequences per forward pass), got {n}: "
            "use 1 or more, e.g. batch_size=16"
        )
    return int(n)


def parse_device(device: Any) -> torch.device:
    """``device`` (``None`` = CPU, ``"cpu"``, ``"cuda"``, ``"cuda:1"``, a ``torch.device``, a CUDA index)
    as a ``torch.device`` a model can run on here.

    Raises:
        InputTypeError: not a str, ``torch.device`` or int.
        InputError: not a device name torch knows, the ``meta`` device (it holds no data), or an
            accelerator this machine does not have.
    """
    from stzoo.errors import InputTypeError

    if device is None:
        return torch.device("cpu")
    if isinstance(device, bool) or not isinstance(device, (str, torch.device, int)):
        raise InputTypeError(
            f"device must be a string such as 'cpu' or 'cuda', a torch.device or a CUDA "
            f"index, got {type(device).__name__}"
        )
    try:
        dev = device if isinstance(device, torch.device) else torch.device(device)
    except (RuntimeError, ValueError, TypeError) as exc:
        raise InputError(
            f"device {str(device)[:80]!r} is not a device torch knows ({str(exc).splitlines()[0][:200]}); "
            "use e.g. 'cpu', 'cuda' or 'cuda:0'"
        ) from None
    if dev.type == "meta":
        raise InputError(
            "device 'meta' holds no data: a model moved there loses its weights and cannot "
            "predict. Use device='cpu' or 'cuda'"
        )
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise InputError(
            f"device {str(dev)!r} asked for, but CUDA is not available here (torch "
            f"{torch.__version__}, CUDA build: {torch.version.cuda or 'no'}). Use device='cpu'."
        )
    if dev.type == "cuda" and dev.index is not None and dev.index >= torch.cuda.device_count():
        raise InputError(
            f"device {str(dev)!r} asked for, but this machine has {torch.cuda.device_count()} "
            "CUDA device(s): use an index below that, or 'cuda'"
        )
    if dev.type == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise InputError(f"device {str(dev)!r} asked for, but MPS is not available here. Use device='cpu'.")
    return dev


#: The longest forecast, in frames, that :meth:`Predictor.predict`, :meth:`Predictor.forecast_tensor` and
#: :class:`stzoo.Forecaster` make unless told otherwise: a longer ``horizon`` is refused before anything
#: runs. Pass ``max_horizon=`` to those calls, or raise this constant, for longer rollouts.
MAX_HORIZON: int = 10_000

#: The largest forecast they make unless told otherwise, in bytes of float32: ``B·frames·C·H·W·4`` must
#: not exceed it (2 GiB). ``frames`` is the horizon, rounded up to whole model passes for TAU (which
#: makes ``frames_out`` frames per pass). Peak memory is a few times this (the rolled-out chunks, their
#: concatenation and the conversion back to the input's dtype). Pass ``max_output_bytes=`` to those
#: calls, or raise this constant, for bigger forecasts.
MAX_OUTPUT_BYTES: int = 2**31

#: The most memory one forward pass may need by the architecture's conservative estimate
#: (:meth:`stzoo.models.base.Architecture.estimate_activation_bytes`), checked before the model runs.
#: ``None`` (the default): the memory this machine has for the run: the device's total memory on a GPU;
#: on the CPU the physical memory, or the process's address-space limit (``ulimit -v``) if lower. Pass
#: ``max_activation_bytes=`` to ``predict`` / ``forecast_tensor``, set ``STZOO_MAX_ACTIVATION_BYTES``, or
#: set this constant to allow more (or less).
MAX_ACTIVATION_BYTES: int | None = None


def machine_memory(device: torch.device) -> int | None:
    """Bytes of memory a forward pass on ``device`` can use at most: a GPU's total memory; on the CPU the
    physical memory, or the address-space limit of this process if lower. ``None`` if unknown."""
    if device.type == "cuda":
        try:
            return int(torch.cuda.get_device_properties(device).total_memory)
        except (RuntimeError, AssertionError, ValueError):
            return None
    if device.type != "cpu":
        return None
    found = []
    try:
        found.append(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    except (ValueError, OSError, AttributeError):
        pass
    try:
        import resource

        soft = resource.getrlimit(resource.RLIMIT_AS)[0]
        if soft != resource.RLIM_INFINITY and soft > 0:
            found.append(int(soft))
    except (ImportError, OSError, ValueError):
        pass
    return min(found) if found else None


def activation_limit(device: torch.device, max_activation_bytes: Any = None) -> tuple[int | None, str]:
    """The activation-memory limit in force for ``device`` and where it comes from, in words."""
    if max_activation_bytes is not None:
        value = check_count(max_activation_bytes, "max_activation_bytes", "max_activation_bytes=2**36")
        return value, "max_activation_bytes"
    env = os.environ.get("STZOO_MAX_ACTIVATION_BYTES", "").strip()
    if env:
        try:
            value = int(env.replace("_", ""))
        except ValueError:
            raise InputError(f"STZOO_MAX_ACTIVATION_BYTES must be a whole number of bytes, got {env[:40]!r}") from None
        if value < 1:
            raise InputError(f"STZOO_MAX_ACTIVATION_BYTES must be a positive number of bytes, got {value}")
        return value, "STZOO_MAX_ACTIVATION_BYTES"
    if MAX_ACTIVATION_BYTES is not None:
        return int(MAX_ACTIVATION_BYTES), "stzoo.inference.predictor.MAX_ACTIVATION_BYTES"
    return machine_memory(device), f"the memory of this machine's {device.type} device"


def _show(value: Any) -> str:
    """``repr(value)`` for an error message, short, also for ints too long to print."""
    try:
        text = repr(value)
    except Exception:  # noqa: BLE001 - e.g. ints above sys.get_int_max_str_digits, a broken __repr__
        bits = value.bit_length() if isinstance(value, int) else 0
        return f"an integer of about {int(bits * 0.30103) + 1} digits" if bits else type(value).__name__
    return text if len(text) <= 60 else text[:40] + "..." + text[-10:]


def check_count(value: Any, what: str, example: str | None = None) -> int:
    """``value`` as an int if it is a positive integer: an int or any ``numbers.Integral`` such as
    ``np.int64``, but not a bool. Everything else is an :class:`InputError` naming ``what``."""
    import numbers

    import numpy as np

    example = example or f"{what.split()[0]}=10"

    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        raise InputError(
            f"{what} must be a positive integer (an int or numpy integer), got "
            f"{_show(value)} of type {type(value).__name__}; pass e.g. {example}"
        )
    n = int(value)
    if n < 1:
        raise InputError(f"{what} must be a positive integer, got {_show(n)}; pass e.g. {example}")
    return n


def check_horizon(horizon: Any, *, max_horizon: Any = None, what: str = "horizon") -> int:
    """``horizon`` (frames to forecast) as an int, checked; used by predict and Forecaster.

    Accepts an int or any ``numbers.Integral`` (numpy integers) but not a bool, from 1 to
    ``max_horizon`` (default :data:`MAX_HORIZON`, read at call time).

    Raises:
        InputError: not an integer (``"16"``, ``16.0``, ``None``, ``True``), below 1, above the limit,
            or a bad ``max_horizon``.
    """
    limit = MAX_HORIZON if max_horizon is None else check_count(max_horizon, "max_horizon", "max_horizon=20000")
    n = check_count(horizon, what)
    if n > limit:
        raise InputError(
            f"{what}={_show(n)} is longer than the {limit} frames stzoo forecasts at most "
            f"(stzoo.inference.predictor.MAX_HORIZON); ask for fewer frames, or pass max_horizon= (or "
            f"raise stzoo.inference.predictor.MAX_HORIZON) if you really want a rollout that long"
        )
    return n


def check_output_size(
    batch: int, frames: int, channels: int, height: int, width: int, *, max_output_bytes: Any = None
) -> None:
    """Refuse a forecast of ``batch·frames·channels·height·width`` float32 values above
    ``max_output_bytes`` (default :data:`MAX_OUTPUT_BYTES`, read at call time). Pure arithmetic:
    nothing is allocated.

    Raises:
        InputError: the forecast would be bigger, or ``max_output_bytes`` is not a positive integer.
    """
    limit = (
        MAX_OUTPUT_BYTES
        if max_output_bytes is None
        else check_count(max_output_bytes, "max_output_bytes", "max_output_bytes=2**32")
    )
    size = 4 * int(batch) * int(frames) * int(channels) * int(height) * int(width)
    if size > limit:
        gib = f"{size / 2**30:.3g} GiB" if size.bit_length() < 1000 else "far too much memory"
        raise InputError(
            f"a forecast of {_show(frames)} frames (horizon) for {batch} sequence(s) of "
            f"{channels}×{height}×{width} would take {gib} as float32 (B·frames·C·H·W·4 = "
            f"{_show(size)} bytes), more than the limit of {_show(limit)} bytes "
            f"(stzoo.inference.predictor.MAX_OUTPUT_BYTES); ask for a shorter horizon, fewer sequences "
            f"or smaller frames, or pass max_output_bytes= (or raise "
            f"stzoo.inference.predictor.MAX_OUTPUT_BYTES) to allow it"
        )


def _user_stacklevel() -> int:
    """The ``stacklevel`` for a ``warnings.warn`` made by the caller of this function that points
    at the first frame outside stzoo and torch (torch's ``no_grad`` decorators add frames)."""
    import sys

    package = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # stzoo/, not stzoo/inference/
    inside = tuple(d + os.sep for d in (package, os.path.dirname(os.path.abspath(torch.__file__))))
    frame, level = sys._getframe(1), 1
    while frame is not None and frame.f_code.co_filename.startswith(inside):
        frame, level = frame.f_back, level + 1
    return level


def _layout_note(fmt: OutputFormat) -> str:
    """For an error about frames whose layout was inferred from their shape: which layout that was,
    and the ``layout=`` argument that overrides it (empty when the layout was given or implied)."""
    if not fmt.layout_inferred or fmt.source_shape is None:
        return ""
    shape = "×".join(str(s) for s in fmt.source_shape)
    return (
        f" (the input of shape {shape} was read as layout {fmt.layout}, inferred from its shape; if that "
        f"is not its layout, pass layout=, one of {', '.join(LAYOUTS)})"
    )


class Predictor:
    """A model plus what it expects. Build one with :func:`stzoo.load`.

    Attributes:
        model: the ``nn.Module`` (in eval mode).
        spec: the :class:`~stzoo.zoo.manifest.InputSpec` (frames in/out, channels, size, value range).
        name: the zoo name, if it came from the zoo.
        entry: the :class:`~stzoo.zoo.entry.ZooEntry` it was built from (architecture, config, input spec,
            description, ...; ``extra`` holds records such as a checkpoint's ``source``), or ``None``.
        batch_size: sequences per forward pass; bigger inputs are split so memory stays bounded.
        impl: ``"reference"`` or ``"fused"`` — which implementation ``model`` is (see
            :meth:`use_impl` and ``docs/kernels.md``).
        cuda_graphs: replay CUDA graphs (cached per input shape) in :meth:`predict` on CUDA.
            ``None`` (default): on for the fused implementation, off for the reference. No effect
            on CPU.
    """

    def __init__(
        self,
        model: nn.Module,
        spec: InputSpec,
        *,
        name: str | None = None,
        entry: ZooEntry | None = None,
        batch_size: int = 16,
        cuda_graphs: bool | None = None,
    ):
        self.model = model.eval()
        self.spec = spec
        self.name = name
        self.entry = entry
        self.batch_size = batch_size  # checked by the property's setter
        self.cuda_graphs = cuda_graphs
        self._graphed: Any = None  # stzoo.kernels.graphs.GraphedCall for self.model, made on first use
        self._warned: set[Any] = set()  # causes of FramesWarning already shown (see warn_once)

    @property
    def batch_size(self) -> int:
        """Sequences per forward pass in :meth:`predict` (a positive integer; checked when set)."""
        return self._batch_size

    @batch_size.setter
    def batch_size(self, value: Any) -> None:
        self._batch_size = check_batch_size(value)

    @property
    def impl(self) -> str:
        """``"fused"`` when :attr:`model` is a fused twin from :mod:`stzoo.kernels`, else ``"reference"``."""
        from stzoo.kernels import is_fused

        return "fused" if is_fused(self.model) else "reference"

    @property
    def reference_model(self) -> nn.Module:
        """The reference module (:attr:`model` itself for ``impl == "reference"``)."""
        return getattr(self.model, "reference", self.model) if self.impl == "fused" else self.model

    def use_impl(self, impl: str) -> Predictor:
        """Switch this Predictor to ``impl`` (``"auto"``, ``"reference"`` or ``"fused"``) in place.

        Both implementations come from the same weights: ``"fused"`` folds the reference model
        (:func:`stzoo.kernels.fuse`), ``"reference"`` goes back to it; ``"auto"`` is ``"fused"``
        where the architecture has a fused twin, else ``"reference"``. Returns ``self``.

        Raises:
            ConfigError: ``impl`` is not one of those, or the architecture has no fused twin.
        """
        from stzoo.kernels import FUSED, fuse, resolve_impl

        want = resolve_impl(impl)
        if impl == "auto" and getattr(self.reference_model, "arch", None) not in FUSED:
            want = "reference"  # an architecture without a fused twin
        if want != self.impl:
            self.model = fuse(self.model) if want == "fused" else self.reference_model.eval()
            self._graphed = None
        return self

    def derive(
        self, model: nn.Module, spec: InputSpec | None = None, *, entry: ZooEntry | None = None, name: str | None = None
    ) -> Predictor:
        """A new Predictor of the same kind for ``model`` (e.g. an adapted or fine-tuned copy), keeping
        this one's batch size and CUDA-graph setting. Code that builds Predictors from a given one
        (adapt, finetune) calls this instead of importing the class, so it never imports inference code."""
        return type(self)(
            model,
            spec or self.spec,
            name=self.name if name is None else name,
            entry=self.entry if entry is None else entry,
            batch_size=self.batch_size,
            cuda_graphs=self.cuda_graphs,
        )

    def __repr__(self) -> str:
        p = next(self.model.parameters())
        return (
            f"Predictor({self.name or type(self.model).__name__}: {self.spec.frames_in} → "
            f"{self.spec.frames_out} frames, {self.spec.channels} channel(s), device={p.device}, "
            f"dtype={p.dtype}, impl={self.impl})"
        )

    @property
    def device(self) -> torch.device:
        """Where the model's weights are."""
        return next(self.model.parameters()).device

    def to(self, device: Any = None, dtype: Any = None) -> Predictor:
        """Move the model to ``device`` and / or cast it to ``dtype`` in place; return ``self``.

        As ``nn.Module.to``: ``p.to("cuda")``, ``p.to(torch.bfloat16)``, ``p.to("cuda", "bfloat16")``,
        so ``p = stzoo.load(name).to("cuda")`` works. The reference module behind a fused one
        (:attr:`reference_model`) moves too, so :meth:`use_impl` keeps the device and dtype.

        Args:
            device: ``"cpu"``, ``"cuda"``, ``"cuda:1"``, a ``torch.device`` or a CUDA index
                (checked as in :func:`stzoo.load`); ``None`` keeps the device. A dtype in this
                place is taken as ``dtype``, as torch does.
            dtype: ``"float32"``, ``"bfloat16"``, ``"float16"`` (or ``fp32`` / ``bf16`` /
                ``fp16``, or the torch dtypes); ``None`` keeps the dtype.

        Raises:
            InputError: an unknown device or dtype, an accelerator this machine does not have, or
                a model that cannot be moved there.
        """
        if isinstance(device, torch.dtype) or (isinstance(device, str) and device in _DTYPES):
            if dtype is not None:
                raise InputError(
                    f"to() got two dtypes, {device!r} and {dtype!r}; pass a device and a dtype, "
                    f"e.g. p.to('cuda', 'bfloat16')"
                )
            device, dtype = None, device
        kwargs: dict[str, Any] = {}
        if device is not None:
            kwargs["device"] = parse_device(device)
        if dtype is not None:
            kwargs["dtype"] = parse_dtype(dtype)
        if not kwargs:
            return self
        modules = [self.model] + ([self.reference_model] if self.impl == "fused" else [])
        try:
            for module in modules:
                module.to(**kwargs)
        except (RuntimeError, AssertionError) as exc:
            where = ", ".join(f"{k}={v}" for k, v in kwargs.items())
            raise InputError(f"cannot move {self.name or 'the model'} to {where}: {exc}") from exc
        self._graphed = None  # CUDA graphs are recorded for one device and dtype
        return self

    def __call__(self, frames: Any, horizon: int | None = None, **kwargs: Any) -> Any:
        """Same as :meth:`predict`: ``p(frames)`` forecasts the frames that follow ``frames``."""
        return self.predict(frames, horizon, **kwargs)

    # ------------------------------------------------------------------------------------------
    def warn_once(self, key: Any, message: str) -> None:
        """Emit ``message`` as a :class:`~stzoo.frames.prepare.FramesWarning` the first time this Predictor
        meets ``key`` (a cause, e.g. ``("size", 32, 32)``); later calls with the same key are silent.
        The warning points at the first caller outside stzoo."""
        warned = self.__dict__.setdefault("_warned", set())  # also for Predictors made without __init__
        if key in warned:
            return
        warned.add(key)
        warnings.warn(message, FramesWarning, stacklevel=_user_stacklevel())

    def warn_conversion(self, fmt: OutputFormat) -> None:
        """Warn once (:meth:`warn_once`) when :func:`~stzoo.frames.prepare.prepare_frames` converted the input
        between grey and RGB (``fmt.conversion``); :meth:`predict` and :class:`stzoo.Forecaster` call it."""
        conversion = fmt.conversion
        if conversion is None:
            return
        who = self.name or "this model"
        if conversion == "RGB → grey":
            message = (
                f"{who} takes grey frames: the RGB frames were converted to their luminance "
                f"0.299·R + 0.587·G + 0.114·B (ITU-R BT.601, as Pillow's 'L'), and the grey forecast "
                f"comes back repeated into R, G and B, in the input's layout. For a colour forecast, "
                f"adapt the model to RGB and fine-tune it: stzoo finetune NAME --data VIDEOS --channels 3 "
                f"(Python: stzoo.training.adapt.adapt(p, channels=3), then p.finetune(videos)). Shown once."
            )
        else:
            message = (
                f"{who} takes RGB frames: the grey frames were repeated into R, G and B, and the RGB "
                f"forecast comes back as its luminance 0.299·R + 0.587·G + 0.114·B, in the input's "
                f"layout. For a grey model, adapt it and fine-tune: stzoo finetune NAME --data VIDEOS "
                f"--channels 1 (Python: stzoo.training.adapt.adapt(p, channels=1), then p.finetune(videos)). "
                f"Shown once."
            )
        self.warn_once(("channels", conversion), message)

    @property
    def dtype(self) -> torch.dtype:
        return next(self.model.parameters()).dtype

    @property
    def recurrent(self) -> bool:
        return bool(getattr(self.model, "recurrent", False))

    @property
    def min_frames(self) -> int:
        """The fewest input frames :meth:`predict` accepts."""
        return 1 if self.recurrent else self.spec.frames_in

    # ------------------------------------------------------------------------------------------
    def check_input(self, x: Tensor) -> Tensor:
        """Check a B×T×C×H×W tensor against this model's input rules and return the frames it reads.

        Raises :class:`~stzoo.errors.InputError` with a readable message when there are too few
        frames or the architecture's channel / size rules fail (e.g. sides divisible by the patch
        size, or a model whose weights fix the frame size, such as MIM, MAU and E3D-LSTM). A frame
        size the architecture allows but that is not the training size (``spec.height`` ×
        ``spec.width``) runs, with a one-time :class:`~stzoo.frames.prepare.FramesWarning` that the weights
        were not trained there. Returns the last ``spec.frames_in`` frames: extra leading frames
        are dropped, for recurrent models too (which also accept fewer). :meth:`predict` calls
        this; streaming and export code call it directly.
        """
        _, t, _, h, w = x.shape
        who = self.name or "this model"
        if t < self.min_frames:
            raise InputError(
                f"{who} needs at least {self.min_frames} input frames, "
                f"got {t} (input shape B×T×C×H×W = {tuple(x.shape)})"
            )
        reads = x[:, -self.spec.frames_in :] if not self.recurrent else x[:, :1]
        ref = self.reference_model
        arch = ARCHITECTURES.get(getattr(ref, "arch", None))
        if arch is not None and getattr(ref, "config", None) is not None:
            # the architecture's declared contract (channels, size divisibility), one sentence per broken rule
            problems = check_frames(arch, ref.config, tuple(reads.shape))
            if problems:
                raise InputError(f"{self.name or arch.name}: " + "; ".join(problems))
        check = getattr(ref, "check_input", None)
        if check is not None:  # the model's own rules too: e.g. weights that fix the frame size (MIM, MAU)
            try:
                check(reads)
            except InputError as exc:
                raise InputError(f"{self.name or (arch.name if arch else type(ref).__name__)}: {exc}") from None
        if (h, w) != (self.spec.height, self.spec.width):
            self.warn_once(
                ("size", h, w),
                f"{who} was trained on {self.spec.height}×{self.spec.width} frames; its architecture "
                f"runs at {h}×{w} too, but that is outside what the weights were trained on, so "
                f"expect worse forecasts (they are not measured there). Resize the frames to "
                f"{self.spec.height}×{self.spec.width}, or fine-tune at {h}×{w}: stzoo finetune NAME "
                f"--data VIDEOS (it trains at the videos' own size by default). Shown once per size.",
            )
        return x[:, -self.spec.frames_in :]

    def _runner(self, x: Tensor) -> Any:
        """``self.model``, or on CUDA (with :attr:`cuda_graphs`) a CUDA-graph replayer of it."""
        use = self.cuda_graphs if self.cuda_graphs is not None else self.impl == "fused"
        if not (use and x.is_cuda):
            return self.model
        if self._graphed is None or self._graphed.fn is not self.model:
            from stzoo.kernels.graphs import GraphedCall

            self._graphed = GraphedCall(self.model)
        return self._graphed

    def check_forecast(
        self,
        shape: tuple[int, ...],
        horizon: Any,
        *,
        max_horizon: Any = None,
        max_output_bytes: Any = None,
        what: str = "horizon",
        max_activation_bytes: Any = None,
        batch_per_pass: int | None = None,
    ) -> int:
        """Check that a forecast of ``horizon`` frames for B×T×C×H×W input of ``shape`` stays within
        the limits (:data:`MAX_HORIZON`, :data:`MAX_OUTPUT_BYTES`, or the ``max_*`` arguments); return
        the horizon as an int. Pure arithmetic, nothing is allocated. For TAU the frames counted are
        the horizon rounded up to whole passes of ``frames_out`` frames (what the rollout makes).

        Raises:
            InputError: a bad horizon (not a positive integer, e.g. ``"16"``, ``16.0``, ``None``,
                ``True``; or above the limit), or a forecast above the size limit.
        """
        n = check_horizon(horizon, max_horizon=max_horizon, what=what)
        frames = n
        if not self.recurrent:  # each pass makes frames_out frames
            per_pass = max(1, int(getattr(self.model, "frames_out", 0) or self.spec.frames_out))
            frames = -(-n // per_pass) * per_pass
        if len(shape) != 5:
            raise InputError(
                f"expected the shape of a B×T×C×H×W input, got {tuple(shape)}; convert frames "
                f"with stzoo.frames.prepare.prepare_frames (or use predict, which does)"
            )
        b, t, c, h, w = shape
        check_output_size(b, frames, c, h, w, max_output_bytes=max_output_bytes)
        per_pass = b if batch_per_pass is None else min(b, batch_per_pass)
        self.check_activation((per_pass, min(t, self.spec.frames_in), c, h, w), max_activation_bytes)
        return n

    def check_activation(self, shape: tuple[int, ...], max_activation_bytes: Any = None) -> int | None:
        """Refuse a forward pass on a B×T×C×H×W input of ``shape`` whose activation memory, by the
        architecture's conservative estimate (:meth:`~stzoo.models.base.Architecture.estimate_activation_bytes`),
        exceeds the limit (:func:`activation_limit`: ``max_activation_bytes``, ``STZOO_MAX_ACTIVATION_BYTES``,
        :data:`MAX_ACTIVATION_BYTES`, or this machine's memory). Pure arithmetic. Returns the estimate
        (``None`` for an architecture that declares none).

        Raises:
            InputError: the estimate is above the limit (the message names both and how to raise it).
        """
        ref = self.reference_model
        arch = ARCHITECTURES.get(getattr(ref, "arch", None))
        cfg = getattr(ref, "config", None)
        if arch is None or cfg is None:
            return None
        element = torch.finfo(self.dtype).bits // 8 if self.dtype.is_floating_point else 4
        need = arch.estimate_activation_bytes(cfg, tuple(int(s) for s in shape), max(element, 2))
        limit, source = activation_limit(self.device, max_activation_bytes)
        if need is not None and limit is not None and need > limit:
            b, t, c, h, w = shape
            raise InputError(
                f"{self.name or arch.name}: one forward pass on {b}×{t}×{c}×{h}×{w} frames (B×T×C×H×W) would "
                f"need about {need / 2**30:.3g} GiB for its activations ({arch.name}'s conservative estimate), "
                f"more than the limit of {limit / 2**30:.3g} GiB ({source}); use smaller frames or fewer "
                f"sequences per pass (batch_size), or raise the limit: max_activation_bytes= (predict / "
                f"forecast_tensor), the environment variable STZOO_MAX_ACTIVATION_BYTES, or "
                f"stzoo.inference.predictor.MAX_ACTIVATION_BYTES"
            )
        return need

    @torch.no_grad()
    def forecast_tensor(
        self,
        x: Tensor,
        horizon: int,
        *,
        max_horizon: int | None = None,
        max_output_bytes: int | None = None,
        max_activation_bytes: int | None = None,
    ) -> Tensor:
        """The tensor core of :meth:`predict`: ``x`` (B×T×C×H×W, already checked with
        :meth:`check_input`, on the model's device and dtype, values in [0, 1]) → the next
        ``horizon`` frames, B×horizon×C×H×W, in the model's dtype.

        No format conversion, batching or train/eval switching: the caller keeps the model in eval
        mode. TAU horizons longer than ``frames_out`` are rolled out by feeding predictions back in
        (TAU paper §4.4); recurrent models roll out natively. On CUDA with the fused implementation
        this replays CUDA graphs (:attr:`cuda_graphs`).

        ``horizon``, ``max_horizon``, ``max_output_bytes`` and ``max_activation_bytes`` are checked first, as
        in :meth:`predict` (see :meth:`check_forecast`): a forecast above the limits is refused before
        anything runs."""
        horizon = self.check_forecast(
            tuple(x.shape),
            horizon,
            max_horizon=max_horizon,
            max_output_bytes=max_output_bytes,
            max_activation_bytes=max_activation_bytes,
        )
        run = self._runner(x)
        if self.recurrent:
            return run(x, horizon)
        outputs, window, made = [], x, 0
        while made < horizon:  # TAU paper §4.4: feed predictions back in
            y = run(window)
            if y.ndim != 5 or y.shape[1] < 1:  # a model that makes no frames would loop forever
                raise InputError(
                    f"the model returned {tuple(y.shape)} for a window of {tuple(window.shape)}: "
                    f"no frames to roll out from; expected B×T×C×H×W with T ≥ 1"
                )
            outputs.append(y)
            made += y.shape[1]
            window = torch.cat([window, y], dim=1)[:, -self.spec.frames_in :]
        return torch.cat(outputs, dim=1)[:, :horizon]

    @torch.no_grad()
    def predict(
        self,
        frames: Any,
        horizon: int | None = None,
        *,
        layout: str | None = None,
        max_horizon: int | None = None,
        max_output_bytes: int | None = None,
        max_input_bytes: int | None = None,
        max_activation_bytes: int | None = None,
    ) -> Any:
        """Forecast the frames that follow ``frames``.

        Args:
            frames: a numpy array, torch tensor, list of PIL images / arrays, or a path to a GIF,
                a folder of images or a ``.npy``/``.npz`` file. Layouts T×H×W, T×H×W×C, T×C×H×W and
                the batched B×T×… forms (see :func:`stzoo.frames.prepare.prepare_frames`); uint8 in [0, 255] or
                float in [0, 1]. If more frames are given than the model reads
                (``spec.frames_in``), the last ones are used; TAU needs exactly ``frames_in`` frames,
                the recurrent models at least one.
            horizon: how many future frames (default ``spec.frames_out``): an int or numpy integer
                (not a bool) from 1 to ``max_horizon``. Longer horizons than the model's native
                output are rolled out autoregressively.
            layout: force the layout (e.g. ``"BTHW"``) instead of inferring it.
            max_horizon: the longest horizon accepted (default :data:`MAX_HORIZON`, 10,000 frames).
            max_output_bytes: the largest forecast accepted, in bytes of float32
                ``B·frames·C·H·W·4`` (default :data:`MAX_OUTPUT_BYTES`, 2 GiB; for TAU ``frames`` is
                the horizon rounded up to whole passes of ``frames_out``). Both limits are checked
                before the model runs, in microseconds.
            max_input_bytes: the input budget: the frames read (the last ``frames_in``; earlier ones are
                never converted, and of a file never kept), as float32, may take at most this many bytes
                (default :data:`stzoo.frames.read.MAX_INPUT_BYTES`, 1 GiB, or the environment variable
                ``STZOO_MAX_INPUT_BYTES``). Files are checked by the sizes they declare before decoding,
                arrays and tensors by their logical shape before any copy.
            max_activation_bytes: the most memory one forward pass may need by the architecture's
                conservative estimate (default: this machine's memory, or ``STZOO_MAX_ACTIVATION_BYTES``;
                see :data:`MAX_ACTIVATION_BYTES`), checked before the model runs.

        Returns:
            The forecast as the same kind of object, layout, dtype family and channel count as
            ``frames``: a numpy T×H×W uint8 array gives T'×H×W uint8; a path to images (GIF,
            folder, video) gives a T'×H×W×C uint8 numpy array; a ``.npy`` / ``.npz`` path gives
            what its array gives. RGB frames for a grey model are converted to their luminance
            (grey frames for an RGB model repeated into R, G and B) and the forecast is converted
            back, with a one-time :class:`~stzoo.frames.prepare.FramesWarning`; so is a frame size other than
            the training size that the architecture allows (see :meth:`check_input`).

        Raises:
            InputError: bad frames (see :func:`stzoo.frames.prepare.prepare_frames`; when the layout was
                inferred from the shape, the message names it and the ``layout=`` argument), a
                frame size or count the model cannot take, a bad horizon (``"16"``,
                ``16.0``, ``True``, 0, negative, or above ``max_horizon``), or a forecast bigger than
                ``max_output_bytes``.
            InputTypeError: frames of a kind or dtype stzoo cannot read.
        """
        what = "horizon" if horizon is not None else "horizon (the default, spec.frames_out)"
        horizon = self.spec.frames_out if horizon is None else horizon
        horizon = check_horizon(horizon, max_horizon=max_horizon, what=what)  # before reading frames
        limits = dict(max_horizon=max_horizon, max_output_bytes=max_output_bytes)
        pass_limits = dict(limits, max_activation_bytes=max_activation_bytes, batch_per_pass=self.batch_size)
        if self.spec.units is not None:  # frames in the dataset's natural units (taxi flows, weather fields)
            frames, back = _natural_to_unit(frames, self.spec, self.name)
            return back(self._predict_unit(frames, horizon, layout, what, limits, pass_limits, max_input_bytes))
        return self._predict_unit(frames, horizon, layout, what, limits, pass_limits, max_input_bytes)

    def _predict_unit(
        self,
        frames: Any,
        horizon: int,
        layout: str | None,
        what: str,
        limits: dict[str, Any],
        pass_limits: dict[str, Any],
        max_input_bytes: int | None,
    ) -> Any:
        """:meth:`predict` for frames with values in [0, 1] (or uint8)."""
        lo, hi = self.spec.value_range if self.spec.units is not None else (0.0, 1.0)
        shape = peek_shape(frames, channels=self.spec.channels, layout=layout)
        if shape is not None:  # arrays and tensors: the forecast size is known before converting them
            self.check_forecast(shape, horizon, what=what, **pass_limits)
        x, fmt = prepare_frames(
            frames, channels=self.spec.channels, layout=layout, last=self.spec.frames_in, max_bytes=max_input_bytes
        )
        try:
            x = self.check_input(x)
        except InputError as exc:
            raise InputError(f"{exc}{_layout_note(fmt)}") from None
        self.warn_conversion(fmt)
        self.check_forecast(tuple(x.shape), horizon, what=what, **pass_limits)
        chunks = []
        with eval_mode(self.model):
            for start in range(0, x.shape[0], self.batch_size):
                xb = x[start : start + self.batch_size]
                if (lo, hi) != (0.0, 1.0):  # the model sees values in spec.value_range
                    xb = xb * (hi - lo) + lo
                y = self.forecast_tensor(
                    xb.to(self.device, self.dtype),
                    horizon,
                    max_activation_bytes=pass_limits["max_activation_bytes"],
                    **limits,
                ).float()
                if (lo, hi) != (0.0, 1.0):
                    y = (y - lo) / (hi - lo)
                chunks.append(y.to(x.device))
        return fmt.restore(torch.cat(chunks, dim=0))

    # ------------------------------------------------------------------------------------------
    def save_pretrained(
        self,
        directory: str | os.PathLike,
        *,
        config: dict[str, Any] | None = None,
        name: str | None = None,
        repo_id: str | None = None,
        card: str | None = None,
    ) -> Path:
        """Write ``config.json``, ``model.safetensors`` and a ``README.md`` model card to ``directory``;
        ``stzoo.load(directory)`` loads it back. See :func:`stzoo.zoo.folder.save_pretrained`."""
        from stzoo.zoo.folder import save_pretrained

        return save_pretrained(self, directory, config=config, name=name, repo_id=repo_id, card=card)

    def push_to_hub(
        self,
        repo_id: str,
        *,
        revision: str | None = None,
        commit_message: str | None = None,
        private: bool | None = None,
        token: str | None = None,
        config: dict[str, Any] | None = None,
        card: str | None = None,
    ) -> str:
        """Upload this model in the ``save_pretrained`` layout to Hub repo ``repo_id`` (created if
        missing; token from ``token``, ``HF_TOKEN`` or ``hf auth login``; ``HF_ENDPOINT`` applies) and
        return the commit id. ``stzoo.load("hf-hub:" + repo_id)`` loads it back.
        See :func:`stzoo.zoo.upload.push_to_hub`."""
        from stzoo.zoo.upload import push_to_hub

        return push_to_hub(
            self,
            repo_id,
            revision=revision,
            commit_message=commit_message,
            private=private,
            token=token,
            config=config,
            card=card,
        )

    def export_onnx(self, path: str | os.PathLike, *, batch: int = 1, dynamic_batch: bool = True, **kwargs: Any) -> Any:
        """Write the model as an ONNX file, frames_in frames in → frames_out frames out (recurrent
        models unrolled), verified against torch with onnxruntime; returns a
        :class:`stzoo.inference.export.OnnxExport`. Needs ``pip install -e ".[onnx]"`` (from a checkout).
        Further keyword
        arguments (``height``, ``width``, ``opset``, ``exporter``, ``verify``, ``atol``) and the
        details are in :func:`stzoo.inference.export.export_onnx`."""
        from stzoo.inference.export import export_onnx

        return export_onnx(self, path, batch=batch, dynamic_batch=dynamic_batch, **kwargs)

    def finetune(self, data: Any, **kwargs: Any) -> Any:
        """Fine-tune this model on your own videos; returns ``(fine_tuned_predictor, history)``.

        This Predictor is not modified. The best model is written to ``out_dir`` (default
        ``"finetuned"``) in the ``save_pretrained`` layout (``stzoo.load(out_dir)`` loads it). Every
        argument and its default (a step budget sized from the data, lr, native size, validation
        split, ...) is described in :func:`stzoo.training.finetune.finetune`; the defaults live there only.
        """
        from stzoo.training.finetune import finetune

        return finetune(self, data, **kwargs)


def _natural_to_unit(frames: Any, spec: InputSpec, name: str | None) -> tuple[Any, Any]:
    """Frames in a dataset's natural units (``spec.units``) → floats in [0, 1] across ``spec.value_range``,
    and the function that turns a forecast back into natural units, in the input's dtype."""
    import numpy as np

    from stzoo.errors import InputTypeError

    units = spec.units
    assert units is not None
    lo, hi = spec.value_range
    first, last = units.offset + units.scale * lo, units.offset + units.scale * hi
    who = name or "this model"
    if isinstance(frames, np.ndarray) and frames.dtype.kind in "iuf":
        x: Any = frames.astype(np.float64)
        finite = bool(np.isfinite(x).all())
    elif isinstance(frames, torch.Tensor) and (frames.is_floating_point() or not frames.dtype.is_complex):
        if frames.dtype == torch.bool:
            raise InputTypeError(f"{who} takes {units.natural or 'natural units'} as numbers, got a bool tensor")
        x = frames.detach().to(torch.float64)
        finite = bool(torch.isfinite(x).all())
    else:
        raise InputTypeError(
            f"{who} takes frames in its dataset's natural units ({units.natural or 'see its card'}) as a numpy "
            f"array or torch tensor of numbers, got {type(frames).__name__}"
        )
    if not finite:
        raise InputError(f"frames for {who} contain NaN or infinite values")
    t = ((x - units.offset) / units.scale - lo) / (hi - lo)
    tmin, tmax = float(t.min()), float(t.max())
    if tmin < -1e-3 or tmax > 1 + 1e-3:
        vmin, vmax = float(x.min()), float(x.max())
        raise InputError(
            f"{who} takes {units.natural or 'natural units'} in [{first:g}, {last:g}] (its model sees "
            f"{list(spec.value_range)} = (x - {units.offset:g}) / {units.scale:g}); got values in "
            f"[{vmin:.4g}, {vmax:.4g}]. Check the units (see the model card's Input section)."
        )
    dtype = frames.dtype
    t = t.clip(0.0, 1.0) if isinstance(t, np.ndarray) else t.clamp(0.0, 1.0)
    t = t.astype(np.float32) if isinstance(t, np.ndarray) else t.to(torch.float32)

    def back(y: Any) -> Any:
        if isinstance(y, np.ndarray):
            v = (y.astype(np.float64) * (hi - lo) + lo) * units.scale + units.offset
            return v.astype(dtype) if np.dtype(dtype).kind == "f" else np.rint(v).astype(dtype)
        v = (y.to(torch.float64) * (hi - lo) + lo) * units.scale + units.offset
        return v.to(dtype) if dtype.is_floating_point else torch.round(v).to(dtype)

    return t, back
