"""Adapt a pretrained model to new data: other channel count, resolution or number of frames.

:func:`adapt` builds the new architecture and copies every pretrained weight that still fits:

* **channels** — only the first layer (which reads the frames) and the last layer (which writes
  them) depend on the channel count. Their pretrained kernels are converted the way timm's
  ``in_chans`` option does: going to one channel, the input kernels of the old channels are
  *summed*; going to more channels, they are *repeated* and scaled by ``old / new`` so the
  layer's response to a grey frame stays the same. Output kernels are repeated (grey → RGB
  predicts the same value in each channel) or averaged (RGB → grey). For the recurrent models
  the frame is first split into ``patch_size²`` patch channels per colour channel; the
  conversion is done per patch position.
* **resolution** — all layers are convolutions, so every weight carries over; only the size rule
  of the architecture is checked (TAU: divisible by ``2 ** (N_S // 2)``; ConvLSTM / SA-ConvLSTM:
  divisible by ``patch_size``).
* **frames** — ConvLSTM / SA-ConvLSTM read any number of frames and roll out any number: nothing
  changes. TAU's translator works on ``T·hid_S`` stacked channels, so the layers of its first and
  last blocks whose width is ``T·hid_S`` are rebuilt at random initialisation; everything else
  (encoder, decoder, the hidden blocks) is copied. TAU maps T frames to T frames, so
  ``frames_in`` must equal ``frames_out``.

The returned :class:`AdaptReport` lists which weights were copied, converted and re-initialised.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from stzoo.errors import ConfigError, InputError
from stzoo.interfaces import PredictorLike
from stzoo.models import build_model, get_architecture
from stzoo.zoo.entry import InputSpec, ZooEntry

__all__ = ["AdaptReport", "adapt", "check_resolution", "adapt_channels"]


@dataclass
class AdaptReport:
    """What :func:`adapt` did to each weight of the new model.

    Attributes:
        changes: the requested changes, e.g. ``{"channels": (1, 3)}``.
        copied: names of weights copied unchanged.
        converted: name → how it was converted from the pretrained weight (channel changes).
        reinitialised: names of weights left at their random initialisation.
    """

    changes: dict[str, tuple[Any, Any]] = field(default_factory=dict)
    copied: list[str] = field(default_factory=list)
    converted: dict[str, str] = field(default_factory=dict)
    reinitialised: list[str] = field(default_factory=list)

    @property
    def unchanged(self) -> bool:
        return not self.converted and not self.reinitialised

    def summary(self) -> str:
        """A few lines for people: what changed and what it cost."""
        if not self.changes:
            return "no adaptation needed: the model fits the data as it is"
        lines = [
            "adapted " + ", ".join(f"{k} {a} → {b}" for k, a, b in ((k, *v) for k, v in self.changes.items())),
            f"  copied: {len(self.copied)} weight tensor(s)",
        ]
        if self.converted:
            lines.append(f"  converted (channels): {', '.join(sorted(self.converted))}")
        if self.reinitialised:
            lines.append(f"  re-initialised ({len(self.reinitialised)}): {', '.join(self.reinitialised)}")
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        return {
            "changes": {k: list(v) for k, v in self.changes.items()},
            "copied": len(self.copied),
            "converted": dict(self.converted),
            "reinitialised": list(self.reinitialised),
        }


def check_resolution(arch: str, config: dict[str, Any], height: int, width: int) -> None:
    """Raise :class:`~stzoo.errors.InputError` if ``arch`` with ``config`` cannot run at
    ``height``×``width``, saying which sizes it can run at (read from the architecture's declaration)."""
    spec = get_architecture(arch)
    cfg = spec.make_config(config)
    factor = spec.size_multiple(cfg)
    if height < 1 or width < 1 or height % factor or width % factor:
        near = f"{max(factor, height // factor * factor)}×{max(factor, width // factor * factor)}"
        raise InputError(
            f"{spec.size_reason(cfg)}: height and width must be multiples of {factor}, got "
            f"{height}×{width}; resize the frames, e.g. to {near}"
        )


# --------------------------------------------------------------------------------------------
# channel conversion of one weight
def adapt_channels(w: Tensor, dim: int, old: int, new: int, *, mode: str, group: int = 1) -> Tensor:
    """Convert the channel axis ``dim`` of ``w`` from ``old`` to ``new`` colour channels.

    Args:
        w: the pretrained weight.
        dim: the axis that holds ``old · group`` entries (colour channel major, then ``group``
            sub-channels, e.g. patch positions).
        old: the colour channel count ``w`` was trained for.
        new: the colour channel count wanted.
        mode: ``"in"`` for a layer that reads frames (sum to one channel; repeat and scale by
            old/new for more), ``"out"`` for a layer that writes them (average to one channel;
            repeat for more).
        group: sub-channels per colour channel.
    """
    shape = list(w.shape)
    if shape[dim] != old * group:
        raise ConfigError(f"weight axis {dim} has {shape[dim]} entries, expected {old}·{group}")
    v = w.reshape(shape[:dim] + [old, group] + shape[dim + 1 :])
    if new == 1:
        v = v.sum(dim, keepdim=True) if mode == "in" else v.mean(dim, keepdim=True)
    else:
        reps = -(-new // old)
        v = torch.cat([v] * reps, dim=dim).narrow(dim, 0, new)
        if mode == "in":
            v = v * (old / new)
    return v.reshape(shape[:dim] + [new * group] + shape[dim + 1 :]).contiguous()


def adapt(
    predictor: PredictorLike,
    *,
    channels: int | None = None,
    height: int | None = None,
    width: int | None = None,
    frames_in: int | None = None,
    frames_out: int | None = None,
) -> tuple[PredictorLike, AdaptReport]:
    """A new Predictor for other channels / size / frame counts, with every pretrained weight that fits.

    Args:
        predictor: the pretrained model (e.g. from :func:`stzoo.load`).
        channels: colour channels of the new data (default: unchanged).
        height: frame height of the new data (default: unchanged).
        width: frame width of the new data (default: unchanged).
        frames_in: frames read (default: unchanged). For TAU it must equal ``frames_out``.
        frames_out: frames predicted (default: unchanged).

    Returns:
        ``(new_predictor, report)``. ``new_predictor.entry`` records the new config and input spec;
        ``report`` lists copied, converted and re-initialised weights. When nothing changes, the
        new Predictor holds a copy of the same weights.

    Raises:
        InputError: a size the architecture cannot run at, or TAU with ``frames_in != frames_out``.
        ConfigError: the Predictor does not record its architecture config.
    """
    entry: ZooEntry | None = predictor.entry
    source = getattr(predictor, "reference_model", predictor.model)  # not a fused inference twin
    old = getattr(source, "config", None)
    if old is None:
        raise ConfigError(
            "this Predictor's model does not record its config (model.config); build it with "
            "stzoo.load or stzoo.models.build_model"
        )
    arch_spec = get_architecture(source)
    arch, spec = arch_spec.name, predictor.spec
    want = {
        "channels": channels or spec.channels,
        "height": height or spec.height,
        "width": width or spec.width,
        "frames_in": frames_in or spec.frames_in,
        "frames_out": frames_out or spec.frames_out,
    }
    check_resolution(arch, old, want["height"], want["width"])
    changes: dict[str, Any] = {}
    for k, key in arch_spec.spec_keys.items():
        if key in changes and changes[key] != want[k]:
            tied = [s for s, c in arch_spec.spec_keys.items() if c == key]
            raise InputError(
                f"{arch} ties {' and '.join(tied)} to one setting ({key!r}): "
                + " must equal ".join(f"{t} ({want[t]})" for t in tied)
                + "; predict longer horizons by rollout instead"
            )
        changes[key] = want[k]
    new_cfg = old.replace(**changes)
    report = AdaptReport()
    for k in want:
        if want[k] != getattr(spec, k):
            report.changes[k] = (getattr(spec, k), want[k])
    new_cfg_dict = {
        k: v
        for k, v in new_cfg.to_dict().items()
        if k in (entry.config if entry else {}) or v != arch_spec.config().to_dict()[k]
    }

    model = build_model(arch, new_cfg)
    old_state = {k: v.detach().to("cpu", torch.float32) for k, v in source.state_dict().items()}
    new_state = model.state_dict()
    layers = arch_spec.channel_params(old)
    for name, target in new_state.items():
        src = old_state.get(name)
        if src is not None and src.shape == target.shape:
            new_state[name] = src.to(target.dtype)
            report.copied.append(name)
            continue
        if src is not None and name in layers and spec.channels != want["channels"]:
            dim, mode, group = layers[name].axis, layers[name].mode, layers[name].group
            conv = adapt_channels(src, dim, spec.channels, want["channels"], mode=mode, group=group)
            if conv.shape == target.shape:
                new_state[name] = conv.to(target.dtype)
                how = (
                    ("summed" if want["channels"] == 1 else "repeated, scaled by old/new")
                    if mode == "in"
                    else ("averaged" if want["channels"] == 1 else "repeated")
                )
                report.converted[name] = f"{mode}put channels {spec.channels} → {want['channels']}: {how}"
                continue
        report.reinitialised.append(name)
    model.load_state_dict(new_state)
    p = next(source.parameters())
    model = model.to(p.device, p.dtype)

    new_spec = InputSpec(
        want["frames_in"], want["frames_out"], want["channels"], want["height"], want["width"], spec.value_range
    )
    if entry is None:
        entry = ZooEntry(name=None, architecture=arch, config=new_cfg_dict, input=new_spec)
    else:
        entry = entry.replace(architecture=arch, config=new_cfg_dict, input=new_spec)
    if report.changes:  # the released weights, their measurements and size no longer describe this model
        entry = entry.replace(
            weights=None,
            metrics=None,
            training=None,
            parameters=None,
            extra={**entry.extra, "adapted": report.to_dict()},
        )
    new = predictor.derive(model, new_spec, entry=entry)
    return new, report
