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
    """

    def __init__(self, model: nn.Module, spec: InputSpec, *, name: str | None = None,
                 entry: dict[str, Any] | None = None, batch_size: int = 16):
        self.model = model.eval()
        self.spec = spec
        self.name = name
        self.entry = entry or {}
        self.batch_size = int(batch_size)

    def __repr__(self) -> str:
        p = next(self.model.parameters())
        return (f"Predictor({self.name or type(self.model).__name__}: {self.spec.frames_in} → "
                f"{self.spec.frames_out} frames, {self.spec.channels} channel(s), device={p.device}, "
                f"dtype={p.dtype})")

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
    def _check_tensor(self, x: Tensor) -> Tensor:
        b, t, c, h, w = x.shape
        if t < self.min_frames:
            raise InputError(f"{self.name or 'this model'} needs at least {self.min_frames} input frames, "
                             f"got {t} (input shape B×T×C×H×W = {tuple(x.shape)})")
        check = getattr(self.model, "check_input", None)
        if check is not None:  # size/channel rules of the architecture, e.g. divisible by 4
            check(x[:, -self.spec.frames_in:] if not self.recurrent else x[:, :1])
        return x[:, -self.spec.frames_in:]

    @torch.no_grad()
    def _forecast(self, x: Tensor, horizon: int) -> Tensor:
        """x: B×T×C×H×W on the model's device/dtype → B×horizon×C×H×W."""
        if self.recurrent:
            return self.model(x, horizon)
        outputs, window, made = [], x, 0
        while made < horizon:  # TAU paper §4.4: feed predictions back in
            y = self.model(window)
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
        x = self._check_tensor(x)
        was_training = self.model.training
        self.model.eval()
        chunks = []
        try:
            for start in range(0, x.shape[0], self.batch_size):
                xb = x[start:start + self.batch_size].to(self.device, self.dtype)
                chunks.append(self._forecast(xb, horizon).float().to(x.device))
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
