"""``Predictor``: the one place that knows about user-facing frames.

It turns whatever the user hands over (arrays, tensors, PIL images, GIF paths, ...) into
B×T×C×H×W floats, runs the model in bounded batches without autograd, rolls out past the model's
native horizon, and gives the answer back in the kind, layout and dtype it came in.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from stzoo.errors import InputError
from stzoo.io import prepare_frames
from stzoo.manifest import InputSpec

__all__ = ["Predictor"]

_DTYPES = {"float32": torch.float32, "fp32": torch.float32, "float16": torch.float16,
           "fp16": torch.float16, "bfloat16": torch.bfloat16, "bf16": torch.bfloat16}


def parse_dtype(dtype: str | torch.dtype | None) -> torch.dtype:
    if dtype is None:
        return torch.float32
    if isinstance(dtype, torch.dtype):
        if dtype in _DTYPES.values():
            return dtype
    elif dtype in _DTYPES:
        return _DTYPES[dtype]
    raise InputError(f"dtype must be one of {sorted(_DTYPES)} (or the torch dtypes), got {dtype!r}")


class Predictor:
    """A model plus what it expects. Build one with :func:`stzoo.load`.

    Attributes:
        model: the ``nn.Module`` (in eval mode).
        spec: the :class:`~stzoo.manifest.InputSpec` (frames in/out, channels, size, value range).
        name: the zoo name, if it came from the zoo.
        batch_size: sequences per forward pass; bigger inputs are split so memory stays bounded.
        impl: ``"reference"`` or ``"fused"`` — which implementation ``model`` is (see
            :meth:`use_impl` and ``docs/kernels.md``).
        cuda_graphs: replay CUDA graphs (cached per input shape) in :meth:`predict` on CUDA.
            ``None`` (default): on for the fused implementation, off for the reference. No effect
            on CPU.
    """

    def __init__(self, model: nn.Module, spec: InputSpec, *, name: str | None = None,
                 entry: dict[str, Any] | None = None, batch_size: int = 16, cuda_graphs: bool | None = None):
        self.model = model.eval()
        self.spec = spec
        self.name = name
        self.entry = entry or {}
        self.batch_size = int(batch_size)
        self.cuda_graphs = cuda_graphs
        self._graphed: Any = None  # stzoo.kernels.graphs.GraphedCall for self.model, made on first use

    @property
    def impl(self) -> str:
        """``"fused"`` when :attr:`model` is a fused twin from :mod:`stzoo.kernels`, else ``"reference"``."""
        from stzoo.kernels import is_fused

        return "fused" if is_fused(self.model) else "reference"

    @property
    def reference_model(self) -> nn.Module:
        """The reference module (:attr:`model` itself for ``impl == "reference"``)."""
        return getattr(self.model, "reference", self.model) if self.impl == "fused" else self.model

    def use_impl(self, impl: str) -> "Predictor":
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

    def __repr__(self) -> str:
        p = next(self.model.parameters())
        return (f"Predictor({self.name or type(self.model).__name__}: {self.spec.frames_in} → "
                f"{self.spec.frames_out} frames, {self.spec.channels} channel(s), device={p.device}, "
                f"dtype={p.dtype}, impl={self.impl})")

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

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
        size). Returns the last ``spec.frames_in`` frames: extra leading frames are dropped, for
        recurrent models too (which also accept fewer). :meth:`predict` calls this; streaming and
        export code call it directly.
        """
        b, t, c, h, w = x.shape
        if t < self.min_frames:
            raise InputError(f"{self.name or 'this model'} needs at least {self.min_frames} input frames, "
                             f"got {t} (input shape B×T×C×H×W = {tuple(x.shape)})")
        check = getattr(self.model, "check_input", None)
        if check is not None:  # size/channel rules of the architecture, e.g. divisible by 4
            check(x[:, -self.spec.frames_in:] if not self.recurrent else x[:, :1])
        return x[:, -self.spec.frames_in:]

    def _runner(self, x: Tensor) -> Any:
        """``self.model``, or on CUDA (with :attr:`cuda_graphs`) a CUDA-graph replayer of it."""
        use = self.cuda_graphs if self.cuda_graphs is not None else self.impl == "fused"
        if not (use and x.is_cuda):
            return self.model
        if self._graphed is None or self._graphed.fn is not self.model:
            from stzoo.kernels.graphs import GraphedCall

            self._graphed = GraphedCall(self.model)
        return self._graphed

    @torch.no_grad()
    def forecast_tensor(self, x: Tensor, horizon: int) -> Tensor:
        """The tensor core of :meth:`predict`: ``x`` (B×T×C×H×W, already checked with
        :meth:`check_input`, on the model's device and dtype, values in [0, 1]) → the next
        ``horizon`` frames, B×horizon×C×H×W, in the model's dtype.

        No format conversion, batching or train/eval switching: the caller keeps the model in eval
        mode. TAU horizons longer than ``frames_out`` are rolled out by feeding predictions back in
        (TAU paper §4.4); recurrent models roll out natively. On CUDA with the fused implementation
        this replays CUDA graphs (:attr:`cuda_graphs`)."""
        run = self._runner(x)
        if self.recurrent:
            return run(x, horizon)
        outputs, window, made = [], x, 0
        while made < horizon:  # TAU paper §4.4: feed predictions back in
            y = run(window)
            outputs.append(y)
            made += y.shape[1]
            window = torch.cat([window, y], dim=1)[:, -self.spec.frames_in:]
        return torch.cat(outputs, dim=1)[:, :horizon]

    @torch.no_grad()
    def predict(self, frames: Any, horizon: int | None = None, *, layout: str | None = None) -> Any:
        """Forecast the frames that follow ``frames``.

        Args:
            frames: a numpy array, torch tensor, list of PIL images / arrays, or a path to a GIF,
                a folder of images or a ``.npy``/``.npz`` file. Layouts T×H×W, T×H×W×C, T×C×H×W and
                the batched B×T×… forms (see :func:`stzoo.io.prepare_frames`); uint8 in [0, 255] or
                float in [0, 1]. If more frames are given than the model reads
                (``spec.frames_in``), the last ones are used; TAU needs exactly ``frames_in`` frames,
                the recurrent models at least one.
            horizon: how many future frames (default ``spec.frames_out``); longer horizons are
                rolled out autoregressively.
            layout: force the layout (e.g. ``"BTHW"``) instead of inferring it.

        Returns:
            The forecast as the same kind of object, layout and dtype family as ``frames``
            (a path gives a T×H×W×C uint8 numpy array).
        """
        horizon = self.spec.frames_out if horizon is None else horizon
        if isinstance(horizon, bool) or not isinstance(horizon, int) or horizon < 1:
            raise InputError(f"horizon must be a positive integer, got {horizon!r}")
        x, fmt = prepare_frames(frames, channels=self.spec.channels, layout=layout)
        x = self.check_input(x)
        was_training = self.model.training
        self.model.eval()
        chunks = []
        try:
            for start in range(0, x.shape[0], self.batch_size):
                xb = x[start:start + self.batch_size].to(self.device, self.dtype)
                chunks.append(self.forecast_tensor(xb, horizon).float().to(x.device))
        finally:
            self.model.train(was_training)
        return fmt.restore(torch.cat(chunks, dim=0))

    # ------------------------------------------------------------------------------------------
    def save_pretrained(self, directory: str | os.PathLike, *, config: dict[str, Any] | None = None,
                        name: str | None = None, repo_id: str | None = None, card: str | None = None) -> Path:
        """Write ``config.json``, ``model.safetensors`` and a ``README.md`` model card to ``directory``;
        ``stzoo.load(directory)`` loads it back. See :func:`stzoo.pretrained.save_pretrained`."""
        from stzoo.pretrained import save_pretrained

        return save_pretrained(self, directory, config=config, name=name, repo_id=repo_id, card=card)

    def push_to_hub(self, repo_id: str, *, revision: str | None = None, commit_message: str | None = None,
                    private: bool | None = None, token: str | None = None,
                    config: dict[str, Any] | None = None, card: str | None = None) -> str:
        """Upload this model in the ``save_pretrained`` layout to Hub repo ``repo_id`` (created if
        missing; token from ``token``, ``HF_TOKEN`` or ``hf auth login``; ``HF_ENDPOINT`` applies) and
        return the commit id. ``stzoo.load("hf-hub:" + repo_id)`` loads it back.
        See :func:`stzoo.pretrained.push_to_hub`."""
        from stzoo.pretrained import push_to_hub

        return push_to_hub(self, repo_id, revision=revision, commit_message=commit_message, private=private,
                           token=token, config=config, card=card)

    def export_onnx(self, path: str | os.PathLike, *, batch: int = 1, dynamic_batch: bool = True,
                    **kwargs: Any) -> Any:
        """Write the model as an ONNX file, frames_in frames in → frames_out frames out (recurrent
        models unrolled), verified against torch with onnxruntime; returns a
        :class:`stzoo.export.OnnxExport`. Needs ``pip install "stzoo[onnx]"``. Further keyword
        arguments (``height``, ``width``, ``opset``, ``exporter``, ``verify``, ``atol``) and the
        details are in :func:`stzoo.export.export_onnx`."""
        from stzoo.export import export_onnx

        return export_onnx(self, path, batch=batch, dynamic_batch=dynamic_batch, **kwargs)

    def finetune(self, data: Any, *, epochs: int = 10, lr: float = 1e-4, batch_size: int = 8, val: Any = 0.2,
                 loss: str = "mse", freeze: Any = None, device: str | torch.device | None = None,
                 amp: bool | None = None, out_dir: str | os.PathLike = "finetuned", resume: bool = False,
                 **kwargs: Any) -> Any:
        """Fine-tune this model on your own videos; returns ``(fine_tuned_predictor, history)``.

        This Predictor is not modified. The best model is written to ``out_dir`` in the
        ``save_pretrained`` layout (``stzoo.load(out_dir)`` loads it). Every argument, including
        those passed through ``kwargs`` (``split``, ``stride``, ``patience``, ``channels``, ``size``,
        ``frames_in``, ``frames_out``, ``max_steps``, ``push_to_hub``, ...), is described in
        :func:`stzoo.finetune.finetune`.
        """
        from stzoo.finetune import finetune

        return finetune(self, data, epochs=epochs, lr=lr, batch_size=batch_size, val=val, loss=loss,
                        freeze=freeze, device=device, amp=amp, out_dir=out_dir, resume=resume, **kwargs)
