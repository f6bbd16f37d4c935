"""The front door: ``list_models``, ``info`` and ``load``."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from stzoo.errors import InputError, UnknownModelError
from stzoo.hub import HUB_PREFIX, load_safetensors, resolve_weights
from stzoo.manifest import InputSpec, get_entry, load_manifest
from stzoo.models import build_model
from stzoo.predictor import Predictor, parse_dtype

__all__ = ["list_models", "info", "load", "load_state_dict_strict"]


def list_models(pretrained: bool | None = None) -> list[str]:
    """Zoo names, sorted. ``pretrained=True``: only those with released weights."""
    models = load_manifest()["models"]
    names = sorted(models)
    if pretrained is None:
        return names
    return [n for n in names if bool(get_entry(n).get("weights")) == pretrained]


def info(name: str) -> dict[str, Any]:
    """The manifest entry of ``name`` (architecture, config, input spec, weights, metrics, ...)."""
    return get_entry(name)


def load_state_dict_strict(model: torch.nn.Module, state: dict[str, torch.Tensor], source: str) -> None:
    """Load ``state`` into ``model`` requiring every key to match, with a readable error."""
    own = model.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    wrong = sorted(k for k in set(own) & set(state) if own[k].shape != state[k].shape)
    if missing or unexpected or wrong:
        parts = []
        if missing:
            parts.append(f"missing {len(missing)} key(s), e.g. {missing[:3]}")
        if unexpected:
            parts.append(f"unexpected {len(unexpected)} key(s), e.g. {unexpected[:3]}")
        if wrong:
            k = wrong[0]
            parts.append(f"{len(wrong)} shape mismatch(es), e.g. {k}: file {tuple(state[k].shape)} vs "
                         f"model {tuple(own[k].shape)}")
        raise InputError(f"weights in {source} do not fit the model: " + "; ".join(parts))
    model.load_state_dict({k: v.to(own[k].dtype) for k, v in state.items()})


def load(name: str | os.PathLike, *, pretrained: bool = True, weights: str | os.PathLike | None = None,
         device: str | torch.device | None = None, dtype: str | torch.dtype | None = None,
         batch_size: int = 16, impl: str = "auto") -> Predictor:
    """Build zoo model ``name`` and (by default) its verified released weights.

    Args:
        name: a zoo name from :func:`list_models`, e.g. ``"tau-mmnist"``; or a folder written by
            :meth:`Predictor.save_pretrained`; or ``"hf-hub:owner/repo[@revision]"`` for such a
            checkpoint on the Hugging Face Hub (see :mod:`stzoo.pretrained`). A zoo name wins over a
            folder of the same name (write ``"./name"`` for the folder).
        pretrained: load the released weights (``False``: random initialisation).
        weights: a local safetensors file to load instead of the released one (checked against the
            manifest's sha256 when the entry has released weights).
        device: e.g. ``"cpu"``, ``"cuda"``; default CPU.
        dtype: ``"float32"`` (default), ``"bfloat16"`` or ``"float16"``.
        batch_size: sequences per forward pass in :meth:`Predictor.predict`.
        impl: ``"reference"`` (the readable paper-shaped modules of :mod:`stzoo.models`),
            ``"fused"`` (their inference-only fast twins from :mod:`stzoo.kernels`, same weights,
            CUDA graphs on CUDA) or ``"auto"`` (= ``"fused"`` where the architecture has a fused
            twin, else ``"reference"``). ``Predictor.impl`` tells which runs;
            see ``docs/kernels.md``.
    """
    from stzoo.kernels import resolve_impl

    resolve_impl(impl)  # fail early on a bad value
    kwargs = dict(pretrained=pretrained, weights=weights, device=device, dtype=dtype, batch_size=batch_size)
    if isinstance(name, os.PathLike) or (isinstance(name, str) and name.startswith(HUB_PREFIX)):
        return _load_checkpoint(name, **kwargs).use_impl(impl)
    try:
        entry = get_entry(name)
    except UnknownModelError as exc:
        if isinstance(name, str) and os.path.isdir(os.path.expanduser(name)):
            return _load_checkpoint(name, **kwargs).use_impl(impl)
        raise UnknownModelError(f"{exc} (stzoo.load also takes a folder written by Predictor.save_pretrained, "
                                "or 'hf-hub:owner/repo[@revision]'.)") from None
    path = resolve_weights(entry, weights) if pretrained or weights is not None else None
    return assemble_predictor(entry, path, name=entry["name"], device=device, dtype=dtype,
                              batch_size=batch_size, impl=impl)


def assemble_predictor(entry: dict[str, Any], weights: Path | None, *, name: str | None,
                       device: str | torch.device | None, dtype: str | torch.dtype | None,
                       batch_size: int, impl: str = "reference") -> Predictor:
    """Build ``entry``'s architecture, load ``weights`` (already verified) strictly, move it to
    ``device``/``dtype`` and wrap it in a :class:`Predictor` running implementation ``impl``
    (see :func:`load`). Shared by zoo names and checkpoints."""
    model = build_model(entry["architecture"], entry["config"])
    if weights is not None:
        load_state_dict_strict(model, load_safetensors(weights), str(weights))
    try:
        model = model.to(device=torch.device(device) if device is not None else "cpu", dtype=parse_dtype(dtype))
    except (RuntimeError, AssertionError) as exc:
        raise InputError(f"cannot move {name or entry.get('source', 'the model')} to device {device!r}: "
                         f"{exc}") from exc
    return Predictor(model, InputSpec.from_dict(entry["input"]), name=name, entry=entry,
                     batch_size=batch_size).use_impl(impl)


def _load_checkpoint(name: str | os.PathLike, **kwargs: Any) -> Predictor:
    """A ``save_pretrained`` folder or an ``hf-hub:`` id (see :mod:`stzoo.pretrained`)."""
    from stzoo.pretrained import load_from_hub, load_pretrained

    if isinstance(name, str) and name.startswith(HUB_PREFIX):
        return load_from_hub(name, **kwargs)
    return load_pretrained(name, **kwargs)
