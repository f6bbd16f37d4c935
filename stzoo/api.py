"""The front door: ``list_models``, ``info``, ``load`` and ``create``.

Every name goes through :func:`stzoo.zoo.resolve.resolve` (zoo names and aliases, ``save_pretrained``
folders, ``hf-hub:`` ids, and whatever prefix is registered there); this module checks the options once
per call (:func:`check_options`) and is the only code that turns a resolved entry into a Predictor."""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from stzoo.errors import InputError, InputTypeError, UndertrainedWarning
from stzoo.inference.predictor import Predictor, check_batch_size, parse_device, parse_dtype
from stzoo.models import build_model, get_architecture, load_state_dict_strict
from stzoo.runtime import warn_if_slow_bf16
from stzoo.zoo.entry import ZooEntry
from stzoo.zoo.hub import check_finite, load_safetensors
from stzoo.zoo.manifest import load_manifest
from stzoo.zoo.resolve import describe_prefixed, prefix_names, resolve

__all__ = [
    "list_models",
    "info",
    "load",
    "create",
    "assemble_predictor",
    "check_options",
    "Options",
    "load_state_dict_strict",
]


@dataclass(frozen=True)
class Options:
    """How a Predictor is built, checked once per call by :func:`check_options`."""

    device: torch.device
    dtype: torch.dtype
    batch_size: int
    impl: str
    device_arg: Any = None  # as the caller wrote it, for messages


def check_options(
    *, device: str | torch.device | None, dtype: str | torch.dtype | None, batch_size: Any, impl: str
) -> Options:
    """Check ``batch_size``, ``device``, ``dtype`` and ``impl`` (before any weights are read): the one
    place :func:`load` and :func:`create` validate them.

    Raises:
        InputTypeError, InputError: a value of the wrong type or a bad value (see :func:`load`).
        ConfigError: an unknown ``impl``.
    """
    from stzoo.kernels import resolve_impl

    resolve_impl(impl)  # fail early on a bad value
    batch_size = check_batch_size(batch_size)
    return Options(
        device=parse_device(device), dtype=parse_dtype(dtype), batch_size=batch_size, impl=impl, device_arg=device
    )


def list_models(filter: str | None = None, pretrained: bool | None = None) -> list[str]:
    """Zoo names, sorted.

    Args:
        filter: a shell-style wildcard pattern (timm's idiom), e.g. ``"tau*"`` or ``"*-mmnist-s"``;
            ``None`` for every zoo name. A pattern starting with a listing prefix lists those names too:
            ``"openstl:*"`` gives OpenSTL's published checkpoints that stzoo loads (``openstl:<file stem>``).
        pretrained: ``True``: only names with released weights; ``False``: only names without.

    Example::

        stzoo.list_models("tau*", pretrained=True)   # ['tau-mmnist', 'tau-mmnist-s']
    """
    import fnmatch

    if filter is not None and not isinstance(filter, str):
        raise InputTypeError(
            f"list_models takes a wildcard pattern such as 'tau*' as its first argument, got "
            f"{type(filter).__name__}; write list_models(pretrained=True) for the models with weights"
        )
    models = load_manifest()["models"]
    names = sorted(models)
    if filter is not None:
        names = [n for n in names if fnmatch.fnmatchcase(n, filter)]
    prefixed = prefix_names(filter) if filter is not None else []  # e.g. "openstl:*": OpenSTL's published files
    if pretrained is None:
        return names + prefixed
    return [n for n in names if resolve(n, pretrained=False).entry.has_weights == pretrained] + (
        prefixed if pretrained else []
    )


def info(name: str) -> dict[str, Any]:
    """The manifest entry of ``name`` (architecture, config, input spec, weights, metrics, ...) as JSON: its
    :class:`~stzoo.zoo.entry.ZooEntry` document with the canonical ``name`` first (aliases followed)."""
    from stzoo.zoo.manifest import resolve_name

    if isinstance(name, str):
        described = describe_prefixed(name)  # e.g. openstl:<stem>: from its catalogue, nothing downloaded
        if described is not None:
            return described
    resolve_name(name)  # a zoo name or alias: a clear error for anything else
    return resolve(name, pretrained=False).entry.to_dict(with_name=True)


def load(
    name: str | os.PathLike,
    *,
    pretrained: bool = True,
    weights: str | os.PathLike | None = None,
    device: str | torch.device | None = None,
    dtype: str | torch.dtype | None = None,
    batch_size: int = 16,
    impl: str = "auto",
) -> Predictor:
    """Build zoo model ``name`` and (by default) its verified released weights.

    Args:
        name: a zoo name from :func:`list_models`, e.g. ``"tau-mmnist"``; or a folder written by
            :meth:`Predictor.save_pretrained`; or ``"hf-hub:owner/repo[@revision]"`` for such a
            checkpoint on the Hugging Face Hub (see :mod:`stzoo.zoo.folder`). A zoo name wins over a
            folder of the same name (write ``"./name"`` for the folder).
        pretrained: load the released weights (``False``: random initialisation).
        weights: a local safetensors file to load instead of the released one (checked against the
            manifest's sha256 when the entry has released weights).
        device: e.g. ``"cpu"``, ``"cuda"``; default CPU (``"meta"`` is refused: it holds no weights).
        dtype: ``"float32"`` (default: exact), ``"bfloat16"`` or ``"float16"``. bfloat16 is fast
            on CUDA and on CPUs with native bf16 units (AMX, AVX512-BF16; see
            :func:`stzoo.runtime.native_bf16`); on a CPU without them it is slower than float32 and
            ``load`` says so with a :class:`~stzoo.runtime.PerformanceWarning` (measured in
            ``docs/benchmarks.md``).
        batch_size: sequences per forward pass in :meth:`Predictor.predict`, a positive integer
            (numpy integers too); checked here, before any weights are read.
        impl: ``"reference"`` (the readable paper-shaped modules of :mod:`stzoo.models`),
            ``"fused"`` (their inference-only fast twins from :mod:`stzoo.kernels`, same weights,
            CUDA graphs on CUDA) or ``"auto"`` (= ``"fused"`` where the architecture has a fused
            twin, else ``"reference"``). ``Predictor.impl`` tells which runs;
            see ``docs/kernels.md``.

    Raises:
        InputTypeError: ``name`` is not a str / os.PathLike, or ``batch_size`` / ``device`` has the
            wrong type.
        InputError: a bad ``batch_size``, ``device`` or ``dtype``, a path the OS cannot look up, or
            weights that are not a readable safetensors file or hold NaN / inf
            (:class:`~stzoo.zoo.hub.CorruptWeightsError`).
        UnknownModelError: ``name`` is neither a zoo name nor a folder.
    """
    if not isinstance(name, (str, os.PathLike)):
        raise InputTypeError(
            f"stzoo.load takes a zoo name (a str, e.g. 'tau-mmnist'; see stzoo.list_models()), a folder "
            f"written by Predictor.save_pretrained (a str or os.PathLike) or 'hf-hub:owner/repo[@revision]', "
            f"got {type(name).__name__} {str(name)[:80]!r}"
        )
    options = check_options(device=device, dtype=dtype, batch_size=batch_size, impl=impl)  # before any weights
    found = resolve(name, weights=weights, pretrained=pretrained)
    if found.weights_path is not None and found.entry.undertrained:
        _warn_undertrained(found.entry)
    return _build(found.entry, found.weights_path, found.name, options)


_WARNED_UNDERTRAINED: set[str] = set()


def _warn_undertrained(entry: ZooEntry) -> None:
    """One :class:`~stzoo.errors.UndertrainedWarning` per entry and process."""
    key = str(entry.name)
    if key in _WARNED_UNDERTRAINED:
        return
    _WARNED_UNDERTRAINED.add(key)
    gate = dict(entry.gate or {})
    why = "; ".join(gate.get("failed") or []) or "it is below the release gate"
    warnings.warn(
        f"{entry.name} is undertrained: on its own test set ({gate.get('sequences', '?')} sequences) {why}. "
        "Its forecasts are worse than a trivial baseline; fine-tune it (stzoo finetune) or pick another "
        "entry (stzoo list marks undertrained ones).",
        UndertrainedWarning,
        stacklevel=3,
    )


def assemble_predictor(
    entry: ZooEntry,
    weights: Path | None,
    *,
    name: str | None,
    device: str | torch.device | None,
    dtype: str | torch.dtype | None,
    batch_size: int,
    impl: str = "reference",
) -> Predictor:
    """Build ``entry``'s architecture, load ``weights`` (already verified) strictly, move it to
    ``device``/``dtype`` and wrap it in a :class:`Predictor` running implementation ``impl``
    (see :func:`load`). For callers that hold an entry rather than a name (the OpenSTL importer)."""
    return _build(entry, weights, name, check_options(device=device, dtype=dtype, batch_size=batch_size, impl=impl))


def _build(entry: ZooEntry, weights: Path | None, name: str | None, options: Options) -> Predictor:
    """The one place an entry becomes a Predictor (``options`` already checked)."""
    model = build_model(entry.architecture, dict(entry.config))
    if weights is not None:
        state = load_safetensors(weights)  # a corrupt file: CorruptWeightsError naming it
        load_state_dict_strict(model, state, str(weights))
        check_finite(state, weights)  # NaN / inf: refused, naming the first such tensor
    try:
        model = model.to(device=options.device, dtype=options.dtype)
    except (RuntimeError, AssertionError) as exc:
        raise InputError(
            f"cannot move {name or entry.extra.get('source', 'the model')} to device {options.device_arg!r}: {exc}"
        ) from exc
    if options.dtype == torch.bfloat16:
        warn_if_slow_bf16(options.device)  # a CPU without AMX / AVX512-BF16: slower than fp32, say so once
    return Predictor(model, entry.input, name=name, entry=entry, batch_size=options.batch_size).use_impl(options.impl)


def create(
    arch: str,
    config: dict[str, Any] | None = None,
    *,
    weights: str | os.PathLike | None = None,
    device: str | torch.device | None = None,
    dtype: str | torch.dtype | None = None,
    batch_size: int = 16,
    impl: str = "reference",
    value_range: tuple[float, float] = (0.0, 1.0),
) -> Predictor:
    """A Predictor for registered architecture ``arch`` built from ``config`` (random weights, or a
    safetensors ``weights`` file), with no zoo entry: for new architectures
    (:func:`stzoo.register_architecture`) and from-scratch experiments.

    The input spec (frames in/out, channels, training size) is read from the config through the
    architecture's declaration (:class:`stzoo.models.Architecture`).

    Example::

        p = stzoo.create("tau", {"hid_S": 16, "hid_T": 64, "N_T": 2})
        future = p.predict(frames)
    """
    spec_decl = get_architecture(arch)
    cfg = spec_decl.make_config(config)
    spec = {k: getattr(cfg, key) for k, key in spec_decl.spec_keys.items()}
    entry = ZooEntry.from_dict(
        None,
        {
            "architecture": spec_decl.name,
            "config": cfg.to_dict(),
            "input": {**spec, "value_range": [float(v) for v in value_range]},
            "description": spec_decl.description,
        },
    )
    return assemble_predictor(
        entry,
        Path(weights) if weights is not None else None,
        name=None,
        device=device,
        dtype=dtype,
        batch_size=batch_size,
        impl=impl,
    )
