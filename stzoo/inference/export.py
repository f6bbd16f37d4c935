"""Export a Predictor's model to ONNX, unrolled to its native lengths.

The exported graph maps ``frames`` (B×frames_in×C×H×W, float32, values in [0, 1]) to
``forecast`` (B×frames_out×C×H×W, float32): TAU's one forward pass, or a recurrent model's
``frames_in + frames_out - 1`` steps unrolled into one graph. Only the batch axis B can be dynamic;
T, C, H and W are fixed at export time. The output is the raw model output, not clipped to [0, 1]
(``Predictor.predict`` clips when it converts back to images).

Needs the ``onnx`` extra: ``pip install -e ".[onnx]"`` from a checkout (onnx, onnxruntime, onnxscript).
"""

from __future__ import annotations

import contextlib
import copy
import logging
import math
import os
import tempfile
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from stzoo.errors import InputError, StzooError
from stzoo.frames.read import check_input_budget
from stzoo.interfaces import PredictorLike
from stzoo.runtime import check_output_file, fsync_path, storage_error

__all__ = [
    "export_onnx",
    "OnnxExport",
    "MissingDependencyError",
    "EXPORTERS",
    "INPUT_NAME",
    "OUTPUT_NAME",
    "DEFAULT_ATOL",
]

#: Accepted values of ``exporter=``: torch's ``torch.export``-based exporter (torch's default since
#: 2.9, needs onnxscript) or the older TorchScript tracer (deprecated by torch, kept as a fallback).
EXPORTERS: tuple[str, ...] = ("dynamo", "torchscript")

#: Names of the graph's input and output.
INPUT_NAME, OUTPUT_NAME = "frames", "forecast"

#: Default largest accepted |onnxruntime − torch| when the export is verified.
DEFAULT_ATOL = 1e-4

# The TorchScript exporter tops out at this opset in torch 2.13; the dynamo one picks its own default.
_TORCHSCRIPT_OPSET = 17


class MissingDependencyError(StzooError, ImportError):
    """An optional dependency (an extra of the stzoo package) is not installed."""


@dataclass(frozen=True)
class OnnxExport:
    """What :func:`export_onnx` wrote.

    Attributes:
        path: the ``.onnx`` file (weights inside it, no external data file).
        opset: the ONNX (ai.onnx) opset the graph declares.
        exporter: ``"dynamo"`` or ``"torchscript"``.
        input_shape: shape of input ``frames``; ``"batch"`` marks the dynamic axis.
        output_shape: shape of output ``forecast``.
        max_abs_diff: largest |onnxruntime − torch| measured by the verification (over every batch
            size tried), or ``None`` if not verified.
        checked_batches: the batch sizes the verification ran.
    """

    path: Path
    opset: int
    exporter: str
    input_shape: tuple[int | str, ...]
    output_shape: tuple[int | str, ...]
    max_abs_diff: float | None = None
    checked_batches: tuple[int, ...] = field(default_factory=tuple)


def _require(module: str, purpose: str) -> Any:
    """Import ``module`` or raise :class:`MissingDependencyError` naming the extra to install."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise MissingDependencyError(
            f"{purpose} needs the '{module}' package, which is not installed; install the ONNX extra: "
            f'pip install -e ".[onnx]" from a checkout (onnx, onnxruntime, onnxscript)'
        ) from exc


class _NativeLengths(nn.Module):
    """The model as one function frames_in → frames_out, the shape ONNX exports."""

    def __init__(self, model: nn.Module, frames_out: int):
        super().__init__()
        self.model = model
        self.frames_out = frames_out
        self.recurrent = bool(getattr(model, "recurrent", False))

    def forward(self, frames: Tensor) -> Tensor:
        if self.recurrent:
            return self.model(frames, self.frames_out)
        return self.model(frames)


@contextlib.contextmanager
def _quiet_exporter() -> Iterator[None]:
    """Silence the exporters' chatter (tracer and deprecation warnings, optional-op notices)."""
    logger = logging.getLogger("torch.onnx._internal.exporter._registration")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        logger.setLevel(level)


def _run_export(
    wrapper: nn.Module, example: Tensor, path: Path, *, dynamic_batch: bool, opset: int | None, exporter: str
) -> None:
    io_names = dict(input_names=[INPUT_NAME], output_names=[OUTPUT_NAME])
    with _quiet_exporter(), torch.no_grad():
        if exporter == "dynamo":
            dynamic = ({0: torch.export.Dim("batch", min=1)},) if dynamic_batch else None
            torch.onnx.export(
                wrapper,
                (example,),
                str(path),
                **io_names,
                dynamic_shapes=dynamic,
                opset_version=opset,
                dynamo=True,
                external_data=False,
                verbose=False,
            )
        else:
            axes = {INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}} if dynamic_batch else None
            torch.onnx.export(
                wrapper,
                (example,),
                str(path),
                **io_names,
                dynamic_axes=axes,
                opset_version=opset or _TORCHSCRIPT_OPSET,
                dynamo=False,
            )


def _shape_of(value_info: Any) -> tuple[int | str, ...]:
    return tuple(d.dim_param or d.dim_value for d in value_info.type.tensor_type.shape.dim)


def export_onnx(
    predictor: PredictorLike,
    path: str | os.PathLike,
    *,
    batch: int = 1,
    dynamic_batch: bool = True,
    height: int | None = None,
    width: int | None = None,
    opset: int | None = None,
    exporter: str = "dynamo",
    verify: bool = True,
    atol: float = DEFAULT_ATOL,
) -> OnnxExport:
    """Write ``predictor``'s model as an ONNX file: frames_in frames in, frames_out frames out.

    The model is exported as a float32 copy on the CPU (whatever the Predictor's device and dtype;
    the reference implementation when the Predictor runs a fused one),
    with the weights inside the file. Input ``frames`` is B×frames_in×C×H×W float32 in [0, 1];
    output ``forecast`` is B×frames_out×C×H×W float32, the raw model output (not clipped).
    Recurrent models are unrolled to ``frames_in + frames_out - 1`` steps. The file's metadata
    (``metadata_props``) records the zoo name, architecture, lengths, size and layout.

    Args:
        predictor: the model to export.
        path: the ``.onnx`` file to write (its folder is created; an existing file is replaced
            only once the new one is complete).
        batch: batch size of the example input; with ``dynamic_batch=False`` the only batch size
            the file accepts.
        dynamic_batch: make the batch axis dynamic (any B >= 1). T, C, H and W are always fixed.
        height: frame height to export for (default: the height the model was trained on,
            ``spec.height``); must suit the architecture (e.g. divisible by 4).
        width: frame width, likewise (default ``spec.width``).
        opset: ONNX opset to target (default: the exporter's own default; the dynamo exporter of
            torch 2.13 writes opset 20, the TorchScript one here 17).
        exporter: ``"dynamo"`` (``torch.onnx.export(..., dynamo=True)``, torch's default, needs
            onnxscript) or ``"torchscript"`` (the older tracer, deprecated by torch).
        verify: run the file with onnxruntime (CPU) on random frames, at ``batch`` and, when the
            batch is dynamic, at another batch size, and compare with the torch model.
        atol: largest accepted max |onnxruntime − torch| when verifying.

    Returns:
        An :class:`OnnxExport` with the path, opset, shapes and the measured difference.

    Raises:
        MissingDependencyError: onnx / onnxscript / onnxruntime is not installed (install
            ``stzoo[onnx]``).
        InputError: a bad ``batch``, ``height``/``width``, ``exporter`` or ``atol``.
        StzooError: the exporter failed, or the verification found a difference above ``atol``.
    """
    if exporter not in EXPORTERS:
        raise InputError(f"exporter must be one of {', '.join(map(repr, EXPORTERS))}, got {exporter!r}")
    if isinstance(batch, bool) or not isinstance(batch, int) or batch < 1:
        raise InputError(f"batch must be a positive integer, got {batch!r}")
    if not (isinstance(atol, (int, float)) and atol >= 0):
        raise InputError(f"atol must be a number >= 0, got {atol!r}")
    spec = predictor.spec
    h = spec.height if height is None else height
    w = spec.width if width is None else width
    for what, v in (("height", h), ("width", w)):
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise InputError(f"{what} must be a positive integer, got {v!r}")
    # sizes first (arithmetic), before the slow imports and before tracing allocates anything
    probe = (max(batch, 2) if dynamic_batch else batch, spec.frames_in, spec.channels, h, w)
    check_input_budget(math.prod(probe), f"the example input of the export ({'×'.join(map(str, probe))})")
    check = getattr(predictor, "check_activation", None)
    if check is not None:  # the architecture's memory estimate
        check(probe)
    path = Path(path).expanduser()
    if path.parent.is_dir():  # the rule of every writer, before the slow imports (the folder is made below)
        check_output_file(path, "ONNX file")
    onnx = _require("onnx", "ONNX export")
    if exporter == "dynamo":
        _require("onnxscript", "ONNX export with exporter='dynamo'")
    ort = _require("onnxruntime", "verifying an ONNX export") if verify else None

    # torch.export specialises an axis of size 1, so a dynamic batch is traced with at least 2
    trace_batch = max(batch, 2) if dynamic_batch else batch
    shape = (trace_batch, spec.frames_in, spec.channels, h, w)
    gen = torch.Generator().manual_seed(0)
    example = torch.rand(*shape, generator=gen)
    predictor.check_input(example)  # the architecture's size rules, with a readable error

    # the reference module (plain torch ops) also when the Predictor runs a fused twin
    source = getattr(predictor, "reference_model", predictor.model)
    model = copy.deepcopy(source).to(device="cpu", dtype=torch.float32).eval()
    wrapper = _NativeLengths(model, spec.frames_out).eval()

    path = Path(path).expanduser()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise storage_error(path, exc, "ONNX file") from None
    check_output_file(path, "ONNX file")  # never onto (or in place of) a device node, FIFO or socket
    try:  # a fresh temporary name (O_EXCL): nothing already there is opened
        fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name[:80]}.", suffix=".partial", dir=path.parent)
        os.close(fd)
    except OSError as exc:
        raise storage_error(path, exc, "ONNX file") from None
    tmp = Path(tmp_name)
    try:
        try:
            _run_export(wrapper, example, tmp, dynamic_batch=dynamic_batch, opset=opset, exporter=exporter)
        except StzooError:
            raise
        except OSError as exc:  # a full disk while the exporter wrote the file
            raise storage_error(path, exc, "ONNX file") from exc
        except Exception as exc:  # the exporters raise many kinds; keep the cause attached
            raise StzooError(
                f"ONNX export ({exporter}) of {predictor.name or type(predictor.model).__name__} "
                f"failed: {type(exc).__name__}: {exc}"
            ) from exc
        proto = onnx.load(str(tmp))
        meta = {
            "stzoo_name": predictor.name or "",
            "architecture": str(getattr(model, "arch", "")),
            "frames_in": str(spec.frames_in),
            "frames_out": str(spec.frames_out),
            "channels": str(spec.channels),
            "height": str(h),
            "width": str(w),
            "layout": "BTCHW",
            "value_range": f"{spec.value_range[0]},{spec.value_range[1]}",
            "output": "raw model output (not clipped to the value range)",
        }
        onnx.helper.set_model_props(proto, {**{p.key: p.value for p in proto.metadata_props}, **meta})
        onnx.checker.check_model(proto)
        onnx.save(proto, str(tmp))
        opset_used = max(o.version for o in proto.opset_import if o.domain in ("", "ai.onnx"))
        result = OnnxExport(
            path=path,
            opset=int(opset_used),
            exporter=exporter,
            input_shape=_shape_of(proto.graph.input[0]),
            output_shape=_shape_of(proto.graph.output[0]),
        )
        if ort is not None:
            result = _verify(ort, tmp, wrapper, result, example, batch, dynamic_batch, atol)
        check_output_file(path, "ONNX file")
        try:
            fsync_path(tmp)
            os.replace(tmp, path)
        except OSError as exc:
            raise storage_error(path, exc, "ONNX file") from None
    except OSError as exc:  # a full disk while onnx wrote the file: one clear error, the old file kept
        if isinstance(exc, StzooError):
            raise
        raise storage_error(path, exc, "ONNX file") from None
    finally:
        tmp.unlink(missing_ok=True)
    return result


def _verify(
    ort: Any,
    file: Path,
    wrapper: nn.Module,
    result: OnnxExport,
    example: Tensor,
    batch: int,
    dynamic_batch: bool,
    atol: float,
) -> OnnxExport:
    """Compare onnxruntime (CPU) with the torch model; raise if they differ by more than ``atol``."""
    session = ort.InferenceSession(str(file), providers=["CPUExecutionProvider"])
    batches = (batch, batch + 1) if dynamic_batch else (batch,)
    gen = torch.Generator().manual_seed(1)
    worst = 0.0
    for b in batches:
        x = torch.rand(b, *example.shape[1:], generator=gen)
        with torch.no_grad():
            expected = wrapper(x).numpy()
        got = session.run([OUTPUT_NAME], {INPUT_NAME: x.numpy()})[0]
        if got.shape != expected.shape:
            raise StzooError(f"the exported ONNX graph gives shape {got.shape} for batch {b}, torch {expected.shape}")
        worst = max(worst, float(np.max(np.abs(got - expected))))
    if not worst <= atol:
        raise StzooError(
            f"the exported ONNX graph differs from the torch model by max |Δ| = {worst:.3g} "
            f"(allowed atol={atol:g}); the file was not written"
        )
    return OnnxExport(**{**result.__dict__, "max_abs_diff": worst, "checked_batches": batches})
