"""One resolver for every kind of model name: :func:`resolve` turns what a user passes to
:func:`stzoo.load` (a zoo name or alias, a ``save_pretrained`` folder, ``hf-hub:owner/repo[@rev]``, ...)
into a :class:`Resolved`: the :class:`~stzoo.zoo.entry.ZooEntry` to build and the verified weights file.
It never builds a model; :mod:`stzoo.api` turns a :class:`Resolved` into a Predictor.

Kinds of name, in the order they are tried:

1. an ``os.PathLike``: a ``save_pretrained`` folder (:func:`stzoo.zoo.folder.read_folder`);
2. a string starting with a registered prefix (:func:`register_prefix`): ``hf-hub:`` is built in;
   ``openstl:<file>`` (OpenSTL's published checkpoints) is registered by :mod:`stzoo.convert.openstl.zoo`;
   a prefix may also list its names (:func:`prefix_names`) and describe one (:func:`describe_prefixed`);
3. a zoo name or alias from the manifest; its weights come from ``weights=``, ``$STZOO_WEIGHTS_DIR``,
   the package's own weights folder, then the Hugging Face cache / Hub (see :mod:`stzoo.zoo.hub`); an
   entry with no released weights asks the sources registered with :func:`register_weights_source`
   (the ``-paper`` entries: their OpenSTL counterpart);
4. a string naming an existing folder (a zoo name wins over a folder of the same name: write
   ``"./name"`` for the folder).

Every weights file is sha256-checked against its record (manifest or config.json) before anything reads it.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from stzoo.errors import InputError, InputTypeError, UnknownModelError, WeightsNotAvailableError
from stzoo.zoo import download, hub
from stzoo.zoo.entry import ZooEntry

__all__ = [
    "Resolved",
    "resolve",
    "register_prefix",
    "resolver_prefixes",
    "prefix_names",
    "describe_prefixed",
    "register_weights_source",
    "WeightsLocation",
    "locate_weights",
    "resolve_weights",
    "resolve_hub",
]


@dataclass(frozen=True)
class Resolved:
    """What a model name stands for.

    Attributes:
        entry: the entry to build (a zoo entry, or a checkpoint's config.json read as one; its ``extra``
            holds ``source`` for a checkpoint).
        weights_path: the verified weights file, or ``None`` (``pretrained=False`` and no ``weights=``).
        source: how the weights were found: ``"file"`` (``weights=``), ``"local"`` (a release folder),
            ``"hf-cache"``, ``"download"``, ``"hf-hub"``, ``"folder"`` or ``"none"``.
        name: the name the Predictor gets (the canonical zoo name, or the checkpoint's recorded name).
        kind: ``"zoo"``, ``"folder"`` or the registered prefix that resolved it (``"hf-hub:"``).
    """

    entry: ZooEntry
    weights_path: Path | None
    source: str
    name: str | None
    kind: str


@dataclass(frozen=True)
class WeightsLocation:
    """Where a zoo entry's verified weights file is, and how it was found."""

    path: Path
    source: str  # "file" (weights=), "local" (release folder), "hf-cache" or "download"


#: A resolver for a name prefix: ``fn(name, weights=..., pretrained=...) -> Resolved``.
PrefixResolver = Callable[..., Resolved]
_PREFIXES: dict[str, PrefixResolver] = {}
_LISTERS: dict[str, Callable[[], list[str]]] = {}
_DESCRIBERS: dict[str, Callable[[str], dict[str, Any]]] = {}
#: ``fn(entry) -> Resolved | None``: weights for a zoo entry that has none released (see :func:`resolve`).
WeightsSource = Callable[[ZooEntry], "Resolved | None"]
_WEIGHT_SOURCES: list[WeightsSource] = []


def register_prefix(
    prefix: str,
    fn: PrefixResolver,
    *,
    names: Callable[[], list[str]] | None = None,
    describe: Callable[[str], dict[str, Any]] | None = None,
) -> None:
    """Make :func:`resolve` send names starting with ``prefix`` (e.g. ``"openstl:"``) to ``fn``.

    ``fn(name, *, weights, pretrained)`` receives the whole name and returns a :class:`Resolved`; it is
    the only code that knows that kind of name. A prefix ends with ``":"`` and is registered once.
    ``names()`` lists the prefix's names (for :func:`stzoo.list_models`; none for an open-ended kind such as
    ``hf-hub:``), ``describe(name)`` gives :func:`stzoo.info`'s JSON for one without downloading anything."""
    if not (isinstance(prefix, str) and prefix.endswith(":") and len(prefix) > 1):
        raise InputError(f"a name prefix ends with ':' (e.g. 'openstl:'), got {prefix!r}")
    if prefix in _PREFIXES and _PREFIXES[prefix] is not fn:
        raise InputError(f"name prefix {prefix!r} is already registered")
    _PREFIXES[prefix] = fn
    if names is not None:
        _LISTERS[prefix] = names
    if describe is not None:
        _DESCRIBERS[prefix] = describe


def resolver_prefixes() -> tuple[str, ...]:
    """The registered name prefixes, e.g. ``("hf-hub:",)``."""
    return tuple(_PREFIXES)


def prefix_names(pattern: str) -> list[str]:
    """The names of every listing prefix whose names can match wildcard ``pattern`` (``"openstl:*"``),
    matched and sorted; ``[]`` when ``pattern`` does not start with such a prefix."""
    import fnmatch

    out: list[str] = []
    for prefix, lister in _LISTERS.items():
        if pattern.startswith(prefix) or fnmatch.fnmatchcase(prefix, pattern[: len(prefix)]):
            out += [n for n in lister() if fnmatch.fnmatchcase(n, pattern)]
    return sorted(out)


def describe_prefixed(name: str) -> dict[str, Any] | None:
    """:func:`stzoo.info`'s JSON for a registered-prefix name that can be described, else ``None``."""
    for prefix, fn in _DESCRIBERS.items():
        if name.startswith(prefix):
            return fn(name)
    return None


def register_weights_source(fn: WeightsSource) -> None:
    """Add ``fn(entry) -> Resolved | None``, asked (in registration order) for the weights of a zoo entry
    that has none released, before :func:`resolve` says there are none."""
    if fn not in _WEIGHT_SOURCES:
        _WEIGHT_SOURCES.append(fn)


def locate_weights(entry: ZooEntry, weights: str | os.PathLike | None = None) -> WeightsLocation:
    """Find the weights file of zoo ``entry`` (see :mod:`stzoo.zoo.hub` for the order), verified."""
    spec = entry.weights
    name = entry.name or "?"
    if weights is not None:
        path = hub.check_local_path(weights, "weights file")
        if not path.is_file():
            raise WeightsNotAvailableError(f"weights file {path} does not exist")
        return WeightsLocation(hub.verify(path, spec.sha256 if spec else None), "file")
    if spec is None or not spec.filename or not spec.sha256:
        raise WeightsNotAvailableError(
            f"{name} has no released weights yet. Build the untrained network with "
            f"stzoo.load({name!r}, pretrained=False), pass your own file with weights=..., or pick an "
            "entry with weights from stzoo.list_models(pretrained=True)."
        )
    hub.validate_filename(spec.filename)
    looked = []
    for folder in hub.local_weights_dirs():
        candidate = folder / spec.filename
        looked.append(str(candidate))
        if candidate.is_file():
            return WeightsLocation(hub.verify(candidate, spec.sha256), "local")
    if spec.hub is None:
        raise WeightsNotAvailableError(
            f"{name}: {spec.filename} not found (looked in {looked or 'no local weights folder'}) and the "
            f"manifest names no Hub repo for it. Put the file in a folder and set {hub.WEIGHTS_DIR_ENV} to it."
        )
    path, source = download.hub_download(
        spec.hub.repo_id,
        spec.hub.filename,
        spec.hub.revision,
        sha256=spec.sha256,
        what=f"weights of {name}",
        looked=looked,
        name=name,
        local_filename=spec.filename,
    )
    return WeightsLocation(path, source)


def resolve_weights(entry: ZooEntry, weights: str | os.PathLike | None = None) -> Path:
    """Path of the verified weights file of zoo ``entry`` (see :func:`locate_weights`)."""
    return locate_weights(entry, weights).path


def _user_weights(weights: str | os.PathLike, expected_sha256: str | None, expected_by: str) -> Path:
    path = hub.check_local_path(weights, "weights file")
    if not path.is_file():
        raise WeightsNotAvailableError(f"weights file {path} does not exist")
    return hub.verify(path, expected_sha256, expected_by=expected_by)


def resolve_hub(spec: str, *, weights: str | os.PathLike | None = None, pretrained: bool = True) -> Resolved:
    """``"hf-hub:owner/repo[@revision]"``: its config.json and model.safetensors, from the same commit,
    through the Hugging Face cache (``HF_ENDPOINT`` / ``HF_HUB_OFFLINE`` / ``HF_TOKEN`` apply).

    The weights are checked against the sha256 config.json records before they are read (see
    :func:`stzoo.zoo.download.hub_download`: a bad copy is purged from the cache and fetched once more)."""
    from stzoo.zoo.folder import CONFIG_NAME, WEIGHTS_NAME, entry_from_config, read_config

    repo_id, revision = hub.parse_hub_id(spec)
    what = f"stzoo.load({spec!r})"
    cfg_path, _ = download.hub_download(repo_id, CONFIG_NAME, revision, what=what, name=spec, check=read_config)
    cfg = read_config(cfg_path)
    commit = cfg_path.parent.name  # snapshots/<commit>/config.json: fetch the weights from that commit
    pin = commit if len(commit) == 40 and all(c in "0123456789abcdef" for c in commit) else revision
    source = f"hf-hub:{repo_id}@{pin or 'main'}"
    path: Path | None = None
    how = "none"
    if weights is not None:
        path, how = _user_weights(weights, None, source), "file"
    elif pretrained:
        expected = (cfg.get("weights") or {}).get("sha256")
        path, _ = download.hub_download(
            repo_id,
            WEIGHTS_NAME,
            pin,
            sha256=expected,
            what=what,
            name=spec,
            expected_by=f"{CONFIG_NAME} of {repo_id}@{pin or 'main'}",
        )
        how = "hf-hub"
    return Resolved(entry_from_config(cfg, source), path, how, cfg.get("name"), hub.HUB_PREFIX)


register_prefix(hub.HUB_PREFIX, resolve_hub)


def _resolve_folder(directory: str | os.PathLike, *, weights: str | os.PathLike | None, pretrained: bool) -> Resolved:
    from stzoo.zoo.folder import read_folder

    entry, path = read_folder(directory, weights=weights, pretrained=pretrained)
    source = "file" if weights is not None else "folder" if path is not None else "none"
    return Resolved(entry, path, source, entry.name, "folder")


def resolve(name: str | os.PathLike, *, weights: str | os.PathLike | None = None, pretrained: bool = True) -> Resolved:
    """What ``name`` stands for, its weights found and verified (see the module docstring).

    Args:
        name: a zoo name or alias, a ``save_pretrained`` folder, or a registered-prefix name
            (``"hf-hub:owner/repo[@revision]"``).
        weights: a local safetensors file to use instead of the recorded one (checked against the
            manifest's sha256 when a zoo entry has released weights).
        pretrained: find the recorded weights (``False``: ``weights_path`` is ``None`` unless
            ``weights`` is given).

    Raises:
        InputTypeError: ``name`` is not a str / os.PathLike.
        UnknownModelError: neither a zoo name, a registered prefix nor a folder.
        WeightsNotAvailableError, ChecksumError: the weights cannot be found or fail their check.
    """
    if isinstance(name, os.PathLike):
        return _resolve_folder(name, weights=weights, pretrained=pretrained)
    if not isinstance(name, str):
        raise InputTypeError(
            f"stzoo.load takes a zoo name (a str, e.g. 'tau-mmnist'; see stzoo.list_models()), a folder "
            f"written by Predictor.save_pretrained (a str or os.PathLike) or 'hf-hub:owner/repo[@revision]', "
            f"got {type(name).__name__} {str(name)[:80]!r}"
        )
    for prefix, fn in _PREFIXES.items():
        if name.startswith(prefix):
            return fn(name, weights=weights, pretrained=pretrained)
    from stzoo.zoo.manifest import get_entry

    try:
        entry = get_entry(name)
    except UnknownModelError as exc:
        try:
            folder = hub.check_local_path(name, "folder")
        except InputError as bad_path:
            raise UnknownModelError(f"{exc} It is not a usable folder path either: {bad_path}") from None
        if os.path.isdir(folder):
            return _resolve_folder(name, weights=weights, pretrained=pretrained)
        raise UnknownModelError(
            f"{exc} (stzoo.load also takes a folder written by Predictor.save_pretrained, "
            "or 'hf-hub:owner/repo[@revision]'.)"
        ) from None
    if pretrained and weights is None and not entry.has_weights:
        for source in _WEIGHT_SOURCES:
            found = source(entry)
            if found is not None:
                return found
    if pretrained or weights is not None:
        loc = locate_weights(entry, weights)
        return Resolved(entry, loc.path, loc.source, entry.name, "zoo")
    return Resolved(entry, None, "none", entry.name, "zoo")
