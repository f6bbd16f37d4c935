"""Community and fine-tuned checkpoints: the ``save_pretrained`` folder layout, written here
(:func:`save_pretrained`, :func:`export_release`, each swapped in whole so a crash never leaves a mix of
two saves) and read back here (:func:`read_config`, :func:`read_folder`, :func:`check_folder`). Turning
what is read into a Predictor is :mod:`stzoo.api`'s job (``stzoo.load``); the model card is
:mod:`stzoo.zoo.card`, the upload :mod:`stzoo.zoo.upload`.

A checkpoint folder holds three files::

    config.json        architecture, config, input spec (+ description, license, metrics, training,
                       and the sha256 of model.safetensors)
    model.safetensors  the state dict (safetensors only: never pickle)
    README.md          a generated model card

Loading checks every key and shape (:func:`stzoo.models.load_state_dict_strict`): missing or unexpected
keys are an error, never silently ignored (unlike ``PyTorchModelHubMixin``'s ``strict=False``
default, which is why stzoo does not use that mixin).
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import torch

from stzoo.errors import ConfigError, InputError, StzooError, WeightsNotAvailableError
from stzoo.interfaces import PredictorLike
from stzoo.runtime import check_output_file, exclusive_lock, fsync_path, storage_error
from stzoo.zoo.card import model_card
from stzoo.zoo.entry import CARD_NAME, CONFIG_NAME, FORMAT_VERSION, WEIGHTS_NAME, ZooEntry
from stzoo.zoo.hub import check_finite, check_local_path, load_safetensors, sha256_file, validate_repo_id, verify

__all__ = [
    "save_pretrained",
    "read_config",
    "read_folder",
    "entry_from_config",
    "check_folder",
    "CONFIG_NAME",
    "WEIGHTS_NAME",
    "CARD_NAME",
    "FORMAT_VERSION",
]

_META_KEYS = ("description", "license", "metrics", "training")


def _version() -> str:
    from stzoo.version import __version__

    return __version__


# ---- writing ----------------------------------------------------------------------------------
def _predictor_config(predictor: PredictorLike, config: dict[str, Any] | None, name: str | None) -> dict[str, Any]:
    """The config.json content (without the weights' hash) for ``predictor``."""
    entry: ZooEntry | None = predictor.entry
    arch = (entry.architecture if entry else None) or getattr(predictor.model, "arch", None)
    cfg = config if config is not None else entry.config if entry else None
    if arch is None or cfg is None:
        raise InputError(
            "this Predictor does not record its architecture config, so the checkpoint could not be "
            "rebuilt: pass it, e.g. p.save_pretrained(dir, config={'hid_S': 16, ...}), or build the "
            "Predictor with stzoo.load(...)"
        )
    spec = predictor.spec.to_dict()
    if entry is not None and entry.normalization is not None:
        spec["normalization"] = entry.normalization
    out: dict[str, Any] = {
        "stzoo_format": FORMAT_VERSION,
        "library": "stzoo",
        "stzoo_version": _version(),
        "name": name or predictor.name or f"{arch}-custom",
        "architecture": arch,
        "config": dict(cfg),
        "input": spec,
    }
    if entry is not None:
        if predictor.name:
            out["base_model"] = entry.extra.get("base_model", predictor.name)
        out.update(_meta(entry))
    out.setdefault("license", "Apache-2.0")
    return out


def _meta(entry: ZooEntry) -> dict[str, Any]:
    """The entry's description, license, metrics and training record, where present (JSON values)."""
    doc = entry.to_dict()
    return {key: doc[key] for key in _META_KEYS if key in doc}


def _check_config_rebuilds(cfg: dict[str, Any], state: dict[str, torch.Tensor], source: str) -> None:
    from stzoo.models import build_model, load_state_dict_strict

    load_state_dict_strict(build_model(cfg["architecture"], cfg["config"]), state, source)


# A folder is written whole under a hidden sibling name (".<name>.stzoo-tmp-<random>") and then put in
# place: a crash at any moment leaves the previous folder or the new one, never a mix of the two.
_TMP_TAG, _OLD_TAG = ".stzoo-tmp-", ".stzoo-old-"
_FOLDER_FILES = (WEIGHTS_NAME, CONFIG_NAME, CARD_NAME)


def _write_files(
    folder: Path,
    cfg: dict[str, Any],
    weights_file: Path | None,
    state: dict[str, torch.Tensor] | None,
    repo_id: str | None,
    card: str | None,
    suffix: str = "",
) -> list[Path]:
    """Write weights, config.json (with the weights' sha256) and the card into ``folder``, each name
    followed by ``suffix``, and flush them to disk. Files get the usual mode (0666 less the umask)."""
    import stat

    from safetensors.torch import save_file

    w, c, r = (folder / (n + suffix) for n in _FOLDER_FILES)
    if state is not None:
        # one metadata key: safetensors stores a dict's keys in no fixed order, and two saves of the
        # same weights must give the same file (the same sha256)
        meta = json.dumps({"arch": cfg["architecture"], "config": cfg["config"]}, sort_keys=True)
        save_file(state, str(w), metadata={"stzoo": meta})
    else:
        shutil.copyfile(weights_file, w)
    cfg = {**cfg, "weights": {"filename": WEIGHTS_NAME, "sha256": sha256_file(w), "size": w.stat().st_size}}
    c.write_text(json.dumps(cfg, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    r.write_text(card if card is not None else model_card(cfg, repo_id=repo_id), encoding="utf-8")
    # safetensors writes through a private temporary file (mode 0600): give the weights the mode the
    # umask gave config.json, so the folder can be shared like any other
    os.chmod(w, stat.S_IMODE(c.stat().st_mode))
    for f in (w, c, r):
        fsync_path(f)
    return [w, c, r]


def _sibling(target: Path, tag: str) -> Path:
    import secrets

    return target.with_name(f".{target.name}{tag}{secrets.token_hex(6)}")


def _clean_leftovers(target: Path) -> None:
    """Remove what an interrupted earlier save left next to ``target``: half-written folders, and the
    previous folder (put back in place if that save died between its two renames)."""
    prefix = "." + target.name
    try:
        entries = list(os.scandir(target.parent))
    except OSError:
        return
    olds = []
    for e in entries:
        if e.name.startswith(prefix + _TMP_TAG):
            shutil.rmtree(e.path, ignore_errors=True)
        elif e.name.startswith(prefix + _OLD_TAG):
            olds.append(Path(e.path))
    olds.sort(key=lambda p: p.stat().st_mtime)
    if olds and not os.path.lexists(target):
        os.rename(olds.pop(), target)
    for old in olds:
        shutil.rmtree(old, ignore_errors=True)


def _link_or_copy(src: str, dst: str) -> str:
    try:
        os.link(src, dst)  # the same file under the new folder (an open log keeps writing into it)
    except OSError:
        shutil.copy2(src, dst)
    return dst


def _carry_over(old: Path, new: Path) -> None:
    """Give ``new`` every entry of ``old`` except the files being replaced (hard links where possible)."""
    skip = set(_FOLDER_FILES) | {n + ".tmp" for n in _FOLDER_FILES}
    for e in os.scandir(old):
        if e.name in skip:
            continue
        dst = new / e.name
        if e.is_symlink():
            os.symlink(os.readlink(e.path), dst)
        elif e.is_dir():
            shutil.copytree(e.path, dst, symlinks=True, copy_function=_link_or_copy)
        else:
            _link_or_copy(e.path, str(dst))


def _exchange(a: Path, b: Path) -> bool:
    """Swap two paths in one step (Linux ``renameat2(RENAME_EXCHANGE)``); False where that is not available."""
    import sys

    if not sys.platform.startswith("linux"):
        return False
    try:
        import ctypes

        fn = ctypes.CDLL(None, use_errno=True).renameat2
    except (OSError, AttributeError):
        return False
    fn.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    fn.restype = ctypes.c_int
    at_fdcwd, rename_exchange = -100, 2
    return fn(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) == 0


def _swap_in(staging: Path, target: Path) -> bool:
    """Put the finished folder ``staging`` at ``target``; the previous folder is removed afterwards.
    False (nothing changed) when ``target`` cannot be moved, e.g. it is a mount point."""
    if not os.path.lexists(target):
        os.rename(staging, target)
    elif _exchange(staging, target):
        fsync_path(target.parent)
        shutil.rmtree(staging, ignore_errors=True)  # now the previous folder
        return True
    else:
        old = _sibling(target, _OLD_TAG)
        try:
            os.rename(target, old)
        except OSError:
            return False
        try:
            os.rename(staging, target)
        except BaseException:
            os.rename(old, target)
            raise
        fsync_path(target.parent)
        shutil.rmtree(old, ignore_errors=True)
        return True
    fsync_path(target.parent)
    return True


def _write_in_place(target: Path, *args: Any) -> None:
    """The fallback when the folder cannot be replaced as a whole: each file is written into a fresh
    hidden subfolder and renamed into place (each file is whole, but a crash between the renames can mix
    two saves). A device node, FIFO or socket named like one of the files is refused, never replaced."""
    import tempfile

    target.mkdir(parents=True, exist_ok=True)
    for name in _FOLDER_FILES:
        check_output_file(target / name, "checkpoint file")
    scratch = Path(tempfile.mkdtemp(prefix=f".{_TMP_TAG.strip('.-')}-", dir=target))
    try:
        for f in _write_files(scratch, *args):
            final = target / f.name
            check_output_file(final, "checkpoint file")
            os.replace(f, final)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    fsync_path(target)


def _write_folder(
    directory: Path,
    cfg: dict[str, Any],
    weights_file: Path | None,
    state: dict[str, torch.Tensor] | None,
    repo_id: str | None,
    card: str | None,
) -> Path:
    """Write the checkpoint folder ``directory`` so that it is, at every moment, either the previous
    folder or the new one: everything is written under a hidden sibling name, flushed, then swapped in
    (other files of an existing folder are kept). Leftovers of a killed save are removed here. A lock
    (a hidden file next to the folder, removed afterwards) keeps a second writer out."""
    target = Path(os.path.abspath(directory))
    if target.is_symlink():  # replace the folder the link points to, keep the link
        target = Path(os.path.realpath(target))
    if target.exists() and not target.is_dir():
        raise InputError(f"{directory} exists and is not a folder: give a folder path to save the checkpoint in")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise storage_error(target, exc, "checkpoint folder") from None
    # one writer at a time: a second save_pretrained / finetune of the same folder gets a clear error at
    # once instead of the two mixing (its leftovers cleaning would delete the first one's staging folder)
    with exclusive_lock(target.parent / f".stzoo-lock.{target.name}", f"the checkpoint folder '{target}'"):
        try:
            return _write_folder_locked(directory, target, cfg, weights_file, state, repo_id, card)
        except OSError as exc:  # a full disk: one clear error; the previous folder is left as it was
            if isinstance(exc, StzooError):
                raise
            raise storage_error(target, exc, "checkpoint folder") from exc


def _write_folder_locked(
    directory: Path,
    target: Path,
    cfg: dict[str, Any],
    weights_file: Path | None,
    state: dict[str, torch.Tensor] | None,
    repo_id: str | None,
    card: str | None,
) -> Path:
    import stat

    _clean_leftovers(target)
    args = (cfg, weights_file, state, repo_id, card)
    cwd = os.path.realpath(os.getcwd())
    if cwd == os.path.realpath(target) or cwd.startswith(os.path.realpath(target) + os.sep):
        _write_in_place(target, *args)  # moving the working directory away would strand relative paths
        return directory
    staging = _sibling(target, _TMP_TAG)
    try:
        os.mkdir(staging)
    except OSError:  # e.g. no write access to the parent folder
        _write_in_place(target, *args)
        return directory
    try:
        _write_files(staging, *args)
        if target.is_dir():
            _carry_over(target, staging)
            os.chmod(staging, stat.S_IMODE(target.stat().st_mode))
        fsync_path(staging)
        swapped = _swap_in(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    if not swapped:
        shutil.rmtree(staging, ignore_errors=True)
        _write_in_place(target, *args)
    return directory


def save_pretrained(
    predictor: PredictorLike,
    directory: str | os.PathLike,
    *,
    config: dict[str, Any] | None = None,
    name: str | None = None,
    repo_id: str | None = None,
    card: str | None = None,
) -> Path:
    """Write ``config.json``, ``model.safetensors`` and a ``README.md`` model card to ``directory``.

    Args:
        predictor: the model to save (its current weights, in its current dtype, moved to CPU).
        directory: created if missing; those three files are replaced (other files are kept). The
            folder is written under a temporary name next to it and then swapped in, so a crash
            leaves either the previous folder or the new one.
        config: the architecture config, needed only for a Predictor not made by :func:`stzoo.load`.
        name: the checkpoint's name in the card (default: the Predictor's).
        repo_id: the Hub repo it is meant for (used in the card's "how to load").
        card: your own model card text instead of the generated one.

    Returns:
        The folder. Load it back with ``stzoo.load(directory)``.
    """
    cfg = _predictor_config(predictor, config, name)
    state = {k: v.detach().to("cpu").contiguous().clone() for k, v in predictor.model.state_dict().items()}
    _check_config_rebuilds(cfg, state, "this Predictor (does `config` describe its model?)")
    if repo_id is not None:
        validate_repo_id(repo_id)
    return _write_folder(Path(directory).expanduser(), cfg, None, state, repo_id, card)


# ---- reading ----------------------------------------------------------------------------------
def entry_from_config(cfg: dict[str, Any], source: str) -> ZooEntry:
    """A checkpoint's config.json (checked by :func:`read_config`) as a :class:`ZooEntry` whose ``extra``
    records where it was read (``source``); the file-format keys are left out."""
    doc = {k: v for k, v in cfg.items() if k not in ("stzoo_format", "library", "stzoo_version")}
    doc["source"] = source
    return ZooEntry.from_dict(None, doc)


def read_folder(
    directory: str | os.PathLike, *, weights: str | os.PathLike | None = None, pretrained: bool = True
) -> tuple[ZooEntry, Path | None]:
    """Read a folder written by :func:`save_pretrained`: its entry and its verified weights file.

    The weights are checked against the sha256 config.json records (a ``weights=`` file of your own is
    not: config.json describes the folder's file); ``None`` when ``pretrained`` is False and no
    ``weights`` is given. Reading the file (safetensors only, NaN / inf refused) is left to the caller."""
    folder = check_local_path(directory, "checkpoint folder")
    cfg = read_config(folder / CONFIG_NAME)
    entry = entry_from_config(cfg, str(folder))
    if weights is not None:
        path, sha = check_local_path(weights, "weights file"), None
    elif pretrained:
        path, sha = folder / WEIGHTS_NAME, entry.weights.sha256 if entry.weights else None
    else:
        return entry, None
    if not path.is_file():
        raise WeightsNotAvailableError(f"weights file {path} does not exist")
    return entry, verify(path, sha, expected_by=f"{folder}/{CONFIG_NAME}")


def read_config(path: Path) -> dict[str, Any]:
    """A checkpoint's config.json, checked (format version, architecture, config, input spec, weights
    sha256). Raises :class:`~stzoo.errors.ConfigError` listing every problem, or
    :class:`~stzoo.errors.WeightsNotAvailableError` when the file is missing or unreadable."""
    path = check_local_path(path, "checkpoint config")  # too long for the OS: InputError, not OSError
    if not path.is_file():
        raise WeightsNotAvailableError(
            f"{path} does not exist: {path.parent} is not a checkpoint folder written by "
            f"Predictor.save_pretrained (it needs {CONFIG_NAME} and {WEIGHTS_NAME})"
        )
    cfg = _read_json_limited(path)
    problems = []
    if not isinstance(cfg, dict):
        raise ConfigError(f"{path} must hold a JSON object, got {type(cfg).__name__}")
    fmt = cfg.get("stzoo_format")
    if not isinstance(fmt, int) or fmt > FORMAT_VERSION:
        problems.append(
            f"stzoo_format is {fmt!r}, expected an integer <= {FORMAT_VERSION} "
            "(written by a newer stzoo? upgrade stzoo)"
        )
    if not isinstance(cfg.get("architecture"), str):
        problems.append("'architecture' (a string) is missing")
    if not isinstance(cfg.get("config"), dict):
        problems.append("'config' (an object) is missing")
    spec = cfg.get("input")
    needed = ("frames_in", "frames_out", "channels", "height", "width")
    if not isinstance(spec, dict) or any(k not in spec for k in needed):
        problems.append(f"'input' must be an object with {', '.join(needed)}")
    weights = cfg.get("weights")
    sha = weights.get("sha256") if isinstance(weights, dict) else None
    if weights is not None and not isinstance(weights, dict):
        problems.append("'weights' must be an object with the sha256 of the weights file")
    elif sha is not None and not (
        isinstance(sha, str) and len(sha) == 64 and all(c in "0123456789abcdef" for c in sha)
    ):
        problems.append(f"'weights.sha256' must be 64 lowercase hex digits, got {str(sha)[:80]!r}")
    if problems:
        raise ConfigError(f"{path} is not a valid stzoo checkpoint config: " + "; ".join(problems))
    try:  # every field's type and range (input sizes, value range, nesting), as loading will read them
        entry_from_config(cfg, str(path.parent))
    except ConfigError as exc:
        raise ConfigError(f"{path} is not a valid stzoo checkpoint config: {exc}") from None
    return cfg


#: The largest config.json stzoo reads (a real one is a few KiB).
MAX_CONFIG_BYTES = 1 << 20


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number (strict JSON has no NaN or Infinity)")


def _read_json_limited(path: Path) -> Any:
    """Parse a config.json with limits: at most :data:`MAX_CONFIG_BYTES`, UTF-8, strict JSON (no NaN /
    Infinity), nesting within ``MAX_JSON_DEPTH`` levels; every failure is one :class:`ConfigError`."""
    try:
        with open(path, "rb") as fh:
            raw = fh.read(MAX_CONFIG_BYTES + 1)
    except OSError as exc:
        raise WeightsNotAvailableError(f"cannot read {path}: {exc.strerror or exc}") from exc
    if len(raw) > MAX_CONFIG_BYTES:
        raise ConfigError(
            f"{path} is larger than {MAX_CONFIG_BYTES >> 20} MiB (stzoo.zoo.folder.MAX_CONFIG_BYTES); a "
            "checkpoint config is a few KiB: this is not one"
        )
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path} is not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    try:
        return json.loads(text, parse_constant=_refuse_constant)
    except RecursionError:
        raise ConfigError(f"{path} is not a valid stzoo checkpoint config: it nests too deeply") from None
    except ValueError as exc:
        raise ConfigError(f"{path} is not valid JSON: {str(exc)[:300]}") from None


def check_folder(directory: str | os.PathLike) -> dict[str, Any]:
    """Check that a ``save_pretrained`` folder loads cleanly, without building a Predictor: its config is
    valid, the weights match the sha256 config.json records, read with safetensors, hold no NaN / inf
    and fit the architecture strictly. Returns the config."""
    folder = Path(directory).expanduser()
    cfg = read_config(folder / CONFIG_NAME)
    weights = folder / WEIGHTS_NAME
    if not weights.is_file():
        raise WeightsNotAvailableError(f"{folder} has no {WEIGHTS_NAME}: not a complete checkpoint folder")
    verify(weights, (cfg.get("weights") or {}).get("sha256"), expected_by=f"{folder}/{CONFIG_NAME}")
    state = load_safetensors(weights)
    check_finite(state, weights)
    _check_config_rebuilds(cfg, state, str(weights))
    return cfg
