"""Fine-tuning data and parameters: target channels and size, frozen parameters, data summaries.

Split from :mod:`stzoo.training.finetune`; every error here is raised before the first training step.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor, nn

from stzoo.data.clips import Video, arg
from stzoo.errors import InputError
from stzoo.models import get_architecture
from stzoo.training.adapt import check_resolution


# preparation (everything that can fail on the data happens here, before training)
def _target_channels(videos: Sequence[Video], channels: int | None) -> int:
    if channels is not None:
        if isinstance(channels, bool) or not isinstance(channels, int) or channels < 1:
            raise InputError(f"{arg('channels', '--channels')} must be a positive int or None, got {channels!r}")
        return channels
    found = {v.channels for v in videos}
    if found <= {1}:
        return 1
    if found <= {1, 3, 4}:
        return 3
    if len(found) == 1:
        return found.pop()
    raise InputError(
        f"the videos have different channel counts {sorted(found)}; pass " + arg("channels=N", "--channels N")
    )


def _size_arg(hw: tuple[int, int]) -> str:
    return arg(f"size=({hw[0]}, {hw[1]})", f"--size {hw[0]}x{hw[1]}")


def _target_size(videos: Sequence[Video], size: Any, spec_hw: tuple[int, int]) -> tuple[int, int]:
    if size == "model":
        return spec_hw
    if size is None or size == "native":
        sizes = {v.size for v in videos}
        if len(sizes) > 1:
            largest = max(sizes, key=lambda hw: hw[0] * hw[1])
            raise InputError(
                arg("size='native'", "--size native") + " (the default) trains at the videos' own "
                f"frame size, but they have several: {sorted(sizes)} (H×W); pass "
                f"{_size_arg(largest)} (or another H×W) to resize them all to one, or "
                + arg("size='model'", "--size model")
                + f" for the model's {spec_hw[0]}×{spec_hw[1]}"
            )
        return sizes.pop()
    if (
        isinstance(size, (tuple, list))
        and len(size) == 2
        and all(isinstance(s, int) and not isinstance(s, bool) and s > 0 for s in size)
    ):
        return int(size[0]), int(size[1])
    raise InputError(
        f"{arg('size', '--size')} must be 'native', 'model' or "
        + arg("(height, width)", "HxW (e.g. 32x48)")
        + f", got {size!r}"
    )


def _check_size(arch: str, config: dict[str, Any], hw: tuple[int, int], size: Any) -> None:
    """:func:`stzoo.training.adapt.check_resolution`, its error completed with the option that fixes it."""
    try:
        check_resolution(arch, config, *hw)
    except InputError as exc:
        spec = get_architecture(arch)
        f = spec.size_multiple(spec.make_config(config))
        near = (max(f, int(hw[0] / f + 0.5) * f), max(f, int(hw[1] / f + 0.5) * f))  # halves round up
        what = "the videos' own size" if size in (None, "native") else "the size asked for"
        raise InputError(
            f"{exc} ({what}); pass {_size_arg(near)} to fine-tune at the nearest size it can run "
            "at (the frames are resized)"
        ) from None


def _matches(name: str, prefix: str) -> bool:
    """True when dotted ``name`` is ``prefix`` or lies under it (``encoder`` matches ``encoder.0.conv``)."""
    return name == prefix or name.startswith(prefix.rstrip(".") + ".")


def _freeze_prefixes(freeze: str | Sequence[str] | None) -> list[str]:
    """``freeze`` as a list of prefixes (``None`` → none)."""
    if freeze is None:
        return []
    return [freeze] if isinstance(freeze, str) else list(freeze)


def _apply_freeze(model: nn.Module, freeze: str | Sequence[str] | None) -> list[str]:
    """Turn off gradients of parameters whose name starts with one of ``freeze``; return their names."""
    prefixes = _freeze_prefixes(freeze)
    if not prefixes:
        return []
    names = [n for n, _ in model.named_parameters()]
    frozen: list[str] = []
    for prefix in prefixes:
        hit = [n for n in names if _matches(n, prefix)]
        if not hit:
            tops = sorted({n.split(".")[0] for n in names})
            raise InputError(
                f"{arg(f'freeze={prefix!r}', f'--freeze {prefix}')} matches no parameter; names start "
                f"with {', '.join(tops)} (e.g. "
                + arg("freeze='encoder' or freeze=['cells.0']", "--freeze encoder or --freeze cells.0")
                + ")"
            )
        frozen += [n for n in hit if n not in frozen]
    params = dict(model.named_parameters())
    for n in frozen:
        params[n].requires_grad_(False)
    if len(frozen) == len(names):
        raise InputError(
            f"{arg(f'freeze={freeze!r}', '--freeze ' + ' '.join(prefixes))} freezes every parameter: "
            "nothing left to fine-tune"
        )
    return frozen


def _frozen_norm_layers(model: nn.Module, freeze: str | Sequence[str] | None) -> list[nn.Module]:
    """BatchNorm-style layers (running statistics) that lie under one of the ``freeze`` prefixes.

    A frozen part of the network should not change at all, but in training mode such a layer
    normalises with batch statistics and keeps updating its running mean and variance, gradients or
    not. Fine-tuning puts these layers in eval mode after every ``train()``: they then normalise
    with, and keep, their stored statistics."""
    prefixes = _freeze_prefixes(freeze)
    return [
        m
        for name, m in model.named_modules()
        if isinstance(m, nn.modules.batchnorm._NormBase)
        and m.track_running_stats
        and any(_matches(name, p) for p in prefixes)
    ]


def _data_summary(videos: Sequence[Video], limit: int = 5) -> str:
    listed = "; ".join(v.describe() for v in videos[:limit])
    more = f"; and {len(videos) - limit} more" if len(videos) > limit else ""
    return f"{len(videos)} video(s): {listed}{more}"


def _native_size(videos: Sequence[Video]) -> tuple[int, int] | None:
    sizes = {v.size for v in videos}
    return sizes.pop() if len(sizes) == 1 else None


# --------------------------------------------------------------------------------------------
# learning more from little footage
#: the augmentations :func:`augment_batch` knows: mirror left-right, mirror top-bottom, play backwards, and crop
#: (the frame seen through a window shifted by up to ``CROP_SHIFT`` of its height and width, the edge repeated)
AUGMENTATIONS = ("hflip", "vflip", "reverse", "crop")
#: the largest shift of ``"crop"``, as a fraction of the frame's height and width
CROP_SHIFT = 1 / 8
#: ``augment="auto"``: mirrored left-right, a scene filmed by a camera is as plausible as the original
#: (people walk both ways, cars drive both ways); upside down it is not (gravity), nor backwards in
#: time (falling, pouring, settling), so those are options, not defaults
AUTO_AUGMENT = ("hflip",)


def parse_augment(augment: Any) -> tuple[str, ...]:
    """``augment`` (``"auto"``, ``"none"``/None, a comma-separated string or a list of names) → names."""
    if augment is None or augment == "none":
        return ()
    if augment == "auto":
        return AUTO_AUGMENT
    names = [a.strip() for a in augment.split(",")] if isinstance(augment, str) else augment
    if not isinstance(names, (list, tuple)) or not all(isinstance(a, str) for a in names):
        raise InputError(
            f"{arg('augment', '--augment')} must be 'auto', 'none' or names from {', '.join(AUGMENTATIONS)}, "
            f"got {augment!r}"
        )
    bad = [a for a in names if a not in AUGMENTATIONS]
    if bad:
        raise InputError(
            f"{arg('augment', '--augment')}: unknown augmentation(s) {bad}; choose from "
            f"{', '.join(AUGMENTATIONS)}, or 'auto' / 'none'"
        )
    return tuple(dict.fromkeys(names))


def augment_batch(batch: Tensor, kinds: Sequence[str], seed: int, step: int) -> Tensor:
    """``batch`` (B×T×C×H×W) with each clip mirrored / reversed / cropped with probability ½ per kind in ``kinds``.

    ``"crop"`` shows a clip through a window of its own size shifted by a random whole number of pixels, up to
    ``CROP_SHIFT`` of the height and of the width each way, the same for all its frames (the motion is kept),
    the pixels beyond the frame repeating its edge: the frame size does not change, so it suits every
    architecture. The draws are a pure function of ``seed`` and ``step``, so a resumed run sees the same
    batches."""
    if not kinds:
        return batch
    gen = torch.Generator().manual_seed(seed * 1_000_003 + step)
    dims = {"hflip": -1, "vflip": -2, "reverse": 1}
    h, w = batch.shape[-2:]
    reach = (int(h * CROP_SHIFT), int(w * CROP_SHIFT))
    out = batch
    for kind in kinds:
        pick = torch.rand(batch.shape[0], generator=gen) < 0.5
        if kind == "crop":  # (drawn only for crops: the other kinds' draws stay what they were)
            shifts = torch.stack([torch.randint(-r, r + 1, (batch.shape[0],), generator=gen) for r in reach], 1)
        if pick.any():
            idx = pick.nonzero().flatten().to(batch.device)
            out = out.clone() if out is batch else out
            if kind == "crop":
                for i in idx.tolist():
                    out[i] = shift_frames(out[i], *shifts[i].tolist())
            else:
                out[idx] = out[idx].flip(dims[kind])
    return out


def shift_frames(frames: Tensor, dy: int, dx: int) -> Tensor:
    """``frames`` (…×H×W) seen through a window of the same size moved ``dy`` pixels down and ``dx`` right: pixel
    (y, x) of the result is pixel (y + dy, x + dx) of the input, clamped to the frame (its edge repeated)."""
    h, w = frames.shape[-2:]
    rows = (torch.arange(h, device=frames.device) + dy).clamp(0, h - 1)
    cols = (torch.arange(w, device=frames.device) + dx).clamp(0, w - 1)
    return frames[..., rows, :][..., cols]


def is_static(videos: Sequence[Video]) -> bool:
    """True when no video changes from one frame to the next: copying the last frame is exact."""
    return all(torch.equal(v.frames[1:], v.frames[:-1]) for v in videos)
