"""Small protocols that lower layers type against, so that no module below ``inference`` ever imports
:mod:`stzoo.inference.predictor` — not even for a type hint.

``training`` (adapt, finetune), ``zoo`` (save_pretrained, push_to_hub) and ``inference.export`` receive a
Predictor and read a handful of its attributes; they describe what they need here and the real
:class:`~stzoo.inference.predictor.Predictor` satisfies it structurally.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

__all__ = ["PredictorLike"]


@runtime_checkable
class PredictorLike(Protocol):
    """What code below the inference layer may use of a :class:`~stzoo.inference.predictor.Predictor`.

    Attributes:
        model: the ``torch.nn.Module`` that forecasts (fused or reference implementation).
        spec: the model's :class:`~stzoo.models.InputSpec` (frames in / out, channels, size, value range).
        name: the zoo name, folder or Hub id it was loaded from (``None`` for an unnamed model).
        entry: the zoo entry it was built from (a ``stzoo.zoo.entry.ZooEntry``; ``None`` for none).
        reference_model: the paper-shaped module (same weights as ``model``).
    """

    model: Any
    spec: Any
    name: str | None
    entry: Any

    @property
    def reference_model(self) -> Any: ...

    @property
    def device(self) -> Any: ...

    @property
    def dtype(self) -> Any: ...

    def derive(self, model: Any, spec: Any = None, *, entry: Any = None, name: str | None = None) -> Any:
        """A new Predictor of the same kind (device, dtype, batch size) around ``model``."""
        ...

    def forecast_tensor(self, x: Any, horizon: int, **kwargs: Any) -> Any:
        """The ``horizon`` frames after ``x`` (B×T×C×H×W, on ``device`` / ``dtype``), as a tensor."""
        ...

    def check_input(self, x: Any) -> Any:
        """``x`` checked against ``spec`` (shape, frames, channels, size); raises ``InputError``."""
        ...
