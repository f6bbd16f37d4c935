"""The front door: ``list_models``, ``info`` and ``load``."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from stzoo.errors import InputError, InputTypeError, UnknownModelError, WeightsNotAvailableError
from stzoo.zoo.hub import (HUB_PREFIX, check_finite, check_local_path, hub_download, load_safetensors, parse_hub_id,
                       resolve_weights, verify)
from stzoo.zoo.manifest import InputSpec, get_entry, load_manifest
from stzoo.models import build_model, get_architecture, load_state_dict_strict
from stzoo.zoo.folder import CONFIG_NAME, WEIGHTS_NAME, read_config
from stzoo.inference.predictor import Predictor, check_batch_size, parse_device, parse_dtype
from stzoo.runtime import warn_if_slow_bf16

__all__ = ["list_models", "info", "load", "create", "load_pretrained", "load_from_hub", "assemble_predictor",
           "load_state_dict_strict"]


def list_models(filter: str | None = None, pretrained: bool | None = None) -> list[str]:
    """Zoo names, sorted.

    Args:
        filter: a shell-style wildcard pattern (timm's idiom), e.g. ``"tau*"`` or ``"*-mmnist-s"``;
            ``None`` for every name.
        pretrained: ``True``: only names with released weights; ``False``: only names without.

    Example::

        stzoo.list_models("tau*", pretrained=True)   # ['tau-mmnist', 'tau-mmnist-s']
    """
    import fnmatch

    if filter is not None and not isinstance(filter, str):
        raise InputTypeError(f"list_models takes a wildcard pattern such as 'tau*' as its first argument, got "
                             f"{type(filter).__name__}; write list_models(pretrained=True) for the models with weights")
    models = load_manifest()["models"]
    names = sorted(models)
    if filter is not None:
        names = [n for n in names if fnmatch.fnmatchcase(n, filter)]
    if pretrained is None:
        return names
    return [n for n in names if bool(get_entry(n).get("weights")) == pretrained]


def info(name: str) -> dict[str, Any]:
    """The manifest entry of ``name`` (architecture, config, input spec, weights, metrics, ...)."""
    return get_entry(name)


def load(name: str | os.PathLike, *, pretrained: bool = True, weights: str | os.PathLike | None = None,
         device: str | torch.device | None = None, dtype: str | torch.dtype | None = None,
         batch_size: int = 16, impl: str = "auto") -> Predictor:
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
    from stzoo.kernels import resolve_impl

    if not isinstance(name, (str, os.PathLike)):
        raise InputTypeError(
            f"stzoo.load takes a zoo name (a str, e.g. 'tau-mmnist'; see stzoo.list_models()), a folder "
            f"written by Predictor.save_pretrained (a str or os.PathLike) or 'hf-hub:owner/repo[@revision]', "
            f"got {type(name).__name__} {str(name)[:80]!r}")
    resolve_impl(impl)  # fail early on a bad value
    check_batch_size(batch_size)  # ... and on a bad batch size or device, before any weights are read
    parse_device(device)
    parse_dtype(dtype)
    kwargs = dict(pretrained=pretrained, weights=weights, device=device, dtype=dtype, batch_size=batch_size)
    if isinstance(name, os.PathLike) or name.startswith(HUB_PREFIX):
        return _load_checkpoint(name, **kwargs).use_impl(impl)
    try:
        entry = get_entry(name)
    except UnknownModelError as exc:
        try:
            folder = check_local_path(name, "folder")
        except InputError as bad_path:
            raise UnknownModelError(f"{exc} It is not a usable folder path either: {bad_path}") from None
        if os.path.isdir(folder):
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
    dev = parse_device(device)  # refuses "meta", unknown names and absent accelerators
    batch_size = check_batch_size(batch_size)
    model = build_model(entry["architecture"], entry["config"])
    if weights is not None:
        state = load_safetensors(weights)  # a corrupt file: CorruptWeightsError naming it
        load_state_dict_strict(model, state, str(weights))
        check_finite(state, weights)  # NaN / inf: refused, naming the first such tensor
    try:
        model = model.to(device=dev, dtype=parse_dtype(dtype))
    except (RuntimeError, AssertionError) as exc:
        raise InputError(f"cannot move {name or entry.get('source', 'the model')} to device {device!r}: "
                         f"{exc}") from exc
    if parse_dtype(dtype) == torch.bfloat16:
        warn_if_slow_bf16(dev)  # a CPU without AMX / AVX512-BF16: slower than fp32, say so once
    return Predictor(model, InputSpec.from_dict(entry["input"]), name=name, entry=entry,
                     batch_size=batch_size).use_impl(impl)


def _load_checkpoint(name: str | os.PathLike, **kwargs: Any) -> Predictor:
    """A ``save_pretrained`` folder or an ``hf-hub:`` id (see :mod:`stzoo.zoo.folder`)."""
    if isinstance(name, str) and name.startswith(HUB_PREFIX):
        return load_from_hub(name, **kwargs)
    return load_pretrained(name, **kwargs)


def create(arch: str, config: dict[str, Any] | None = None, *, weights: str | os.PathLike | None = None,
           device: str | torch.device | None = None, dtype: str | torch.dtype | None = None,
           batch_size: int = 16, impl: str = "reference", value_range: tuple[float, float] = (0.0, 1.0)
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
    entry = {"architecture": spec_decl.name, "config": cfg.to_dict(),
             "input": {**spec, "value_range": [float(v) for v in value_range]},
             "description": spec_decl.description}
    return assemble_predictor(entry, Path(weights) if weights is not None else None, name=None, device=device,
                              dtype=dtype, batch_size=batch_size, impl=impl)


# ---- checkpoint folders and hf-hub: ids -------------------------------------------------------------
def _build_checkpoint(cfg: dict[str, Any], weights: Path | None, expected_sha: str | None, source: str, *,
           device: str | torch.device | None, dtype: str | torch.dtype | None, batch_size: int) -> "Predictor":
    if weights is not None:
        weights = check_local_path(weights, "weights file")
        if not weights.is_file():
            raise WeightsNotAvailableError(f"weights file {weights} does not exist")
        verify(weights, expected_sha, expected_by=f"{source}/{CONFIG_NAME}")
    entry = {k: v for k, v in cfg.items() if k not in ("stzoo_format", "library", "stzoo_version")}
    entry["source"] = source
    return assemble_predictor(entry, weights, name=cfg.get("name"), device=device, dtype=dtype,
                              batch_size=batch_size)


def load_pretrained(directory: str | os.PathLike, *, pretrained: bool = True,
                    weights: str | os.PathLike | None = None, device: str | torch.device | None = None,
                    dtype: str | torch.dtype | None = None, batch_size: int = 16) -> "Predictor":
    """Load a folder written by :func:`~stzoo.zoo.folder.save_pretrained` (what ``stzoo.load(folder)`` does).

    The weights are checked against the sha256 in config.json, read only with safetensors (a corrupt
    file is a :class:`~stzoo.zoo.hub.CorruptWeightsError` naming it) and refused if they hold NaN / inf.
    ``batch_size`` and ``device`` are checked before anything is read."""
    check_batch_size(batch_size)
    parse_device(device)
    folder = check_local_path(directory, "checkpoint folder")
    cfg = read_config(folder / CONFIG_NAME)
    if weights is not None:
        w, sha = check_local_path(weights, "weights file"), None
    elif pretrained:
        w, sha = folder / WEIGHTS_NAME, (cfg.get("weights") or {}).get("sha256")
    else:
        w, sha = None, None
    return _build_checkpoint(cfg, w, sha, str(folder), device=device, dtype=dtype, batch_size=batch_size)


def load_from_hub(spec: str, *, pretrained: bool = True, weights: str | os.PathLike | None = None,
                  device: str | torch.device | None = None, dtype: str | torch.dtype | None = None,
                  batch_size: int = 16) -> "Predictor":
    """Load ``"hf-hub:owner/repo[@revision]"``: its config.json and model.safetensors, from the same
    commit, through the Hugging Face cache (``HF_ENDPOINT`` / ``HF_HUB_OFFLINE`` / ``HF_TOKEN`` apply).

    The weights are checked against the sha256 config.json records before they are read: a copy in the
    cache that fails the check is deleted and fetched again, a download that fails it is deleted and
    fetched once more, and if that one fails too it is deleted and :class:`~stzoo.zoo.hub.ChecksumError`
    raised, so a bad transfer never stays in the cache (see :func:`stzoo.zoo.hub.hub_download`)."""
    repo_id, revision = parse_hub_id(spec)
    check_batch_size(batch_size)
    parse_device(device)
    what = f"stzoo.load({spec!r})"
    cfg_path, _ = hub_download(repo_id, CONFIG_NAME, revision, what=what, name=spec, check=read_config)
    cfg = read_config(cfg_path)
    commit = cfg_path.parent.name  # snapshots/<commit>/config.json: fetch the weights from that commit
    pin = commit if len(commit) == 40 and all(c in "0123456789abcdef" for c in commit) else revision
    w: Path | None = None
    sha = None
    if weights is not None:
        w = check_local_path(weights, "weights file")
    elif pretrained:
        # Verified (and a bad copy purged from the cache, then fetched once more) inside hub_download,
        # so _build need not hash it again.
        expected = (cfg.get("weights") or {}).get("sha256")
        w, _ = hub_download(repo_id, WEIGHTS_NAME, pin, sha256=expected, what=what, name=spec,
                            expected_by=f"{CONFIG_NAME} of {repo_id}@{pin or 'main'}")
    return _build_checkpoint(cfg, w, sha, f"hf-hub:{repo_id}@{pin or 'main'}", device=device, dtype=dtype,
                  batch_size=batch_size)
