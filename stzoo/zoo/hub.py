"""Finding, verifying and reading zoo weights: Hub ids, local weights folders, the Hugging Face cache.
Downloads live in :mod:`stzoo.zoo.download` (the only module that touches the network for weights;
uploads live in :mod:`stzoo.zoo.upload`); both call back in here for ids and cache paths.

Resolution order for a manifest entry's weights (:func:`stzoo.zoo.resolve.locate_weights`):

1. ``weights=`` given by the caller (a local file);
2. a local release folder: ``$STZOO_WEIGHTS_DIR`` (your override), then the weights shipped inside
   the package, ``stzoo/weights/<name>.safetensors`` (the small releases are package data, so
   ``pip install .`` or a wheel loads them with no network; in a source checkout this is the same
   folder, reachable also through the ``weights/`` link at the repo root);
3. the Hugging Face cache (``HF_HOME`` / ``HF_HUB_CACHE``), then a download of the manifest's
   ``repo_id`` / ``filename`` / pinned ``revision`` from the Hub (or the mirror in ``HF_ENDPOINT``),
   which stzoo does itself (:func:`stzoo.zoo.download.hub_download`) in huggingface_hub's cache layout.
   ``HF_ENDPOINT``, ``HF_HUB_OFFLINE`` and ``HF_TOKEN`` are read by ``huggingface_hub`` when it is first
   imported.

Whatever the source, the file's sha256 is compared with the manifest before anything is read from
it, and it is read only with ``safetensors`` (never pickle). A file in the Hugging Face cache that
fails the check is deleted from the cache (blob and snapshot link, :func:`purge_cached_file`), so it
can never be picked up later as if it were good. Only ``snapshots/<40-hex commit>/<file>`` inside a
repo's cache folder is ever read (:func:`cached_file`; see docs/security.md).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
from pathlib import Path
from typing import Any

import torch

from stzoo.errors import InputError, StzooError, WeightsNotAvailableError

__all__ = [
    "ChecksumError",
    "InvalidHubIdError",
    "HubError",
    "CorruptWeightsError",
    "check_finite",
    "check_local_path",
    "load_safetensors",
    "sha256_file",
    "local_weights_dirs",
    "packaged_weights_dir",
    "validate_repo_id",
    "validate_filename",
    "validate_revision",
    "parse_hub_id",
    "hf_cache_dir",
    "purge_cached_file",
    "cache_report",
    "WEIGHTS_DIR_ENV",
    "HUB_PREFIX",
    "HubTimeoutError",
]

log = logging.getLogger(__name__)

WEIGHTS_DIR_ENV = "STZOO_WEIGHTS_DIR"
#: The package's folder of shipped release weights (package data), relative to ``stzoo/``.
PACKAGED_WEIGHTS = "weights"
HUB_PREFIX = "hf-hub:"


class ChecksumError(StzooError, ValueError):
    """A weights file does not have the sha256 the manifest promises."""


class InvalidHubIdError(InputError):
    """A Hugging Face repo id, revision or file name is malformed or unsafe (``..``, absolute path,
    backslash, ...). A ``ValueError``."""


class HubError(StzooError, OSError):
    """Talking to the Hugging Face Hub (or the mirror in ``HF_ENDPOINT``) failed, e.g. an upload."""


class HubTimeoutError(HubError, TimeoutError):
    """A Hub download did not finish within its deadline (:data:`stzoo.zoo.download.HUB_TIMEOUT_ENV`)."""


class CorruptWeightsError(InputError):
    """A weights file cannot be read as safetensors, or it holds NaN / infinite values. A ``ValueError``."""


# ---- ids and names ----------------------------------------------------------------------------
_REPO_PART = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?")  # used with fullmatch (no `$`)
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
#: Unicode categories refused in file names and revisions: control, format (bidi overrides such as
#: U+202E, zero-width characters), surrogates, line and paragraph separators.
_BAD_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Zl", "Zp"})
_PERCENT_ENCODED = re.compile(r"%(?:2e|2f|5c|25|00)", re.IGNORECASE)  # '.', '/', '\\', '%', NUL
#: Longest path component (bytes, UTF-8) and whole relative name (characters) accepted in a repo.
MAX_COMPONENT_BYTES = 255
MAX_FILENAME_CHARS = 1024
#: Longest owner or name part of a repo id (the Hub's own limit on names).
MAX_REPO_PART = 96


def _short(value: object, limit: int = 80) -> str:
    """``repr(value)``, cut to about ``limit`` characters (error messages must stay readable)."""
    text = repr(value)
    if len(text) <= limit:
        return text
    size = f" ({len(value)} characters)" if isinstance(value, (str, bytes)) else ""
    return text[:limit] + "..." + size


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else ""


def _bad(kind: str, value: object, why: str, expected: str) -> InvalidHubIdError:
    return InvalidHubIdError(f"invalid Hugging Face {kind} {_short(value)}: {why}. Expected {expected}.")


def _odd_character(text: str) -> str | None:
    """The first control / format / separator character of ``text``, described, or None."""
    import unicodedata

    for ch in text:
        cat = unicodedata.category(ch)
        if cat in _BAD_CATEGORIES:
            name = unicodedata.name(ch, "")
            return f"U+{ord(ch):04X}" + (f" {name}" if name else "") + f" (Unicode category {cat})"
    return None


def validate_repo_id(repo_id: object) -> str:
    """Return ``repo_id`` if it is a safe ``owner/name`` id; raise :class:`InvalidHubIdError`."""
    expected = (
        "'owner/name' made of letters, digits, '-', '_' and '.', e.g. 'stzoo/tau-mmnist-s' "
        "(no '..', no '--', no leading '/', no backslash)"
    )
    if not isinstance(repo_id, str) or not repo_id:
        raise _bad("repo id", repo_id, "not a non-empty string", expected)
    if "\\" in repo_id:
        raise _bad("repo id", repo_id, "it contains a backslash", expected)
    if repo_id.startswith("/") or re.match(r"[A-Za-z]:", repo_id):
        raise _bad("repo id", repo_id, "it is an absolute path", expected)
    if ".." in repo_id or "--" in repo_id:
        raise _bad("repo id", repo_id, "it contains '..' or '--'", expected)
    parts = repo_id.split("/")
    if len(parts) != 2:
        raise _bad("repo id", repo_id, f"it has {len(parts) - 1} '/' instead of exactly one", expected)
    if any(len(p) > MAX_REPO_PART for p in parts):
        raise _bad("repo id", repo_id, f"its owner or name is longer than {MAX_REPO_PART} characters", expected)
    if not all(_REPO_PART.fullmatch(p) for p in parts):
        raise _bad(
            "repo id",
            repo_id,
            "it has characters a Hub repo id cannot have "
            "(spaces, newlines, control characters, or a leading/trailing '.', '-' or '_')",
            expected,
        )
    return repo_id


def validate_filename(filename: object) -> str:
    """Return ``filename`` if it is a safe relative path inside a repo; raise otherwise.

    Refused: backslashes, absolute paths (``/``, ``~``, drive letters), control / format / separator
    characters (Unicode categories Cc, Cf, Cs, Zl, Zp: NUL, newlines, bidi overrides such as U+202E,
    zero-width characters), percent-encoded dots, slashes, backslashes, percent signs or NULs
    (``%2e%2e/x``), empty components and components made only of dots (``.``, ``..``, ``...``), a
    component longer than :data:`MAX_COMPONENT_BYTES` bytes and a name longer than
    :data:`MAX_FILENAME_CHARS` characters.
    """
    expected = "a relative path inside the repo using '/', e.g. 'model.safetensors' or 'sub/model.safetensors'"
    if not isinstance(filename, str) or not filename:
        raise _bad("file name", filename, "not a non-empty string", expected)
    if len(filename) > MAX_FILENAME_CHARS:
        raise _bad(
            "file name", filename, f"it is {len(filename)} characters long (at most {MAX_FILENAME_CHARS})", expected
        )
    if "\\" in filename:
        raise _bad("file name", filename, "it contains a backslash", expected)
    if filename.startswith(("/", "~")) or re.match(r"[A-Za-z]:", filename):
        raise _bad("file name", filename, "it is an absolute path", expected)
    odd = "control characters" if _CONTROL.search(filename) else _odd_character(filename)
    if odd:
        raise _bad("file name", filename, f"it contains {odd}", expected)
    if _PERCENT_ENCODED.search(filename):
        raise _bad(
            "file name",
            filename,
            "it contains a percent-encoded '.', '/', '\\', '%' or NUL "
            "(e.g. %2e or %2f), which a server may decode into a path traversal",
            expected,
        )
    parts = filename.split("/")
    if any(p == "" or set(p) == {"."} for p in parts):
        raise _bad(
            "file name", filename, "it has an empty component or one made only of dots ('.', '..', '...')", expected
        )
    for p in parts:
        try:
            size = len(p.encode("utf-8"))
        except UnicodeEncodeError:
            raise _bad("file name", filename, "it is not valid Unicode text", expected) from None
        if size > MAX_COMPONENT_BYTES:
            raise _bad(
                "file name",
                filename,
                f"a path component is {size} bytes long (at most {MAX_COMPONENT_BYTES})",
                expected,
            )
    return filename


def validate_revision(revision: object) -> str:
    """Return ``revision`` (a branch, tag or commit hash) if safe; raise otherwise."""
    expected = "a branch, tag or 40-hex-digit commit hash, e.g. 'main', 'v1.0' or 'refs/pr/1'"
    if not isinstance(revision, str) or not revision or len(revision) > 255:
        raise _bad("revision", revision, "not a non-empty string of at most 255 characters", expected)
    if "\\" in revision or ".." in revision or revision.startswith("/") or revision.endswith("/"):
        raise _bad("revision", revision, "it contains a backslash or '..', or starts/ends with '/'", expected)
    if _CONTROL.search(revision) or " " in revision or _odd_character(revision):
        raise _bad("revision", revision, "it contains spaces, control or format characters", expected)
    return revision


def parse_hub_id(spec: str) -> tuple[str, str | None]:
    """``"hf-hub:owner/repo@rev"`` (prefix optional) → ``("owner/repo", "rev")``, validated."""
    if not isinstance(spec, str):
        raise _bad("model id", spec, "not a string", "'hf-hub:owner/name[@revision]'")
    body = spec[len(HUB_PREFIX) :] if spec.startswith(HUB_PREFIX) else spec
    repo_id, sep, revision = body.partition("@")
    validate_repo_id(repo_id)
    if sep:
        validate_revision(revision)
        return repo_id, revision
    return repo_id, None


# ---- local files -------------------------------------------------------------------------------
def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    """Hex sha256 of a file, read in chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


#: What the OS can look up at all (Linux NAME_MAX and PATH_MAX, in bytes).
_NAME_MAX, _PATH_MAX = 255, 4096


def check_local_path(path: str | os.PathLike, what: str = "path") -> Path:
    """``path`` with ``~`` expanded, as a :class:`~pathlib.Path`, if the OS can look it up at all.

    Raises :class:`~stzoo.errors.InputError` for a NUL byte, text that cannot be encoded for the file
    system, a component longer than 255 bytes or a path of 4096 bytes or more (where the OS itself would
    fail with ``OSError: File name too long``), and :class:`~stzoo.errors.InputTypeError` for a
    non-path.
    """
    from stzoo.errors import InputTypeError

    try:
        text = os.fspath(path)
    except TypeError:
        raise InputTypeError(f"{what} must be a str or os.PathLike, got {type(path).__name__}") from None
    if isinstance(text, bytes):
        text = os.fsdecode(text)
    shown = _short(text)
    if "\x00" in text:
        raise InputError(f"{what} {shown} contains a NUL byte: no file can have that name")
    text = os.path.expanduser(text)
    try:
        raw = os.fsencode(text)
    except UnicodeError:
        raise InputError(f"{what} {shown} cannot be encoded for the file system (invalid Unicode)") from None
    if len(raw) >= _PATH_MAX:
        raise InputError(
            f"{what} {shown} is {len(raw)} bytes long; the operating system accepts paths of at "
            f"most {_PATH_MAX - 1} bytes. Pass a shorter path (e.g. relative to the working folder)."
        )
    longest = max(raw.split(b"/"), key=len)
    if len(longest) > _NAME_MAX:
        raise InputError(
            f"{what} {shown} has a file or folder name {len(longest)} bytes long; the operating "
            f"system accepts at most {_NAME_MAX} bytes per name. Check the path."
        )
    return Path(text)


def packaged_weights_dir() -> Path:
    """The folder of release weights shipped inside the package (``stzoo/weights``; package data of
    the wheel, and the checkout's own folder in an editable install)."""
    return Path(__file__).resolve().parents[1] / PACKAGED_WEIGHTS


def local_weights_dirs() -> list[Path]:
    """Folders searched for release weights, in order: ``$STZOO_WEIGHTS_DIR``, then the packaged ones."""
    dirs = []
    if os.environ.get(WEIGHTS_DIR_ENV):
        dirs.append(Path(os.environ[WEIGHTS_DIR_ENV]).expanduser())
    packaged = packaged_weights_dir()
    if packaged.is_dir():
        dirs.append(packaged)
    return dirs


def verify(path: Path, expected: str | None, *, expected_by: str | None = None) -> Path:
    """Return ``path`` if its sha256 is ``expected`` (or nothing is expected); raise otherwise.

    ``expected_by`` names what recorded the hash (default: the manifest), for the message."""
    if expected is None:
        return path
    actual = sha256_file(path)
    if actual != expected:
        if expected_by is None:
            raise ChecksumError(
                f"{path} has sha256 {actual}, but the manifest expects {expected}. The file is corrupt, "
                "truncated or not the released one: delete it and fetch it again (stzoo download NAME)."
            )
        raise ChecksumError(
            f"{path} has sha256 {actual}, but {expected_by} says {expected}: the checkpoint is corrupt or its "
            "files come from different saves. Save or download it again."
        )
    return path


def load_safetensors(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """Read a safetensors file (never pickle).

    Raises:
        WeightsNotAvailableError: the file does not exist or cannot be opened.
        CorruptWeightsError: it is not a readable safetensors file (bad header, truncated data, ...).
    """
    from safetensors.torch import load_file

    try:
        return load_file(str(path))
    except StzooError:
        raise
    except (FileNotFoundError, IsADirectoryError, PermissionError) as exc:
        raise WeightsNotAvailableError(f"cannot open weights file {path}: {exc.strerror or exc}") from exc
    except MemoryError:
        raise
    except Exception as exc:  # safetensors' SafetensorError, OSError on short reads, ...
        raise CorruptWeightsError(
            f"weights file {path} is not a readable safetensors file ({type(exc).__name__}: "
            f"{_first_line(exc)[:300]}). It is corrupt or truncated, or not a safetensors file at all: "
            "save or download it again."
        ) from exc


def check_finite(state: dict[str, torch.Tensor], source: str | os.PathLike) -> None:
    """Raise :class:`CorruptWeightsError` naming ``source`` and the first tensor (in the file's order)
    that holds a NaN or an infinity. One ``isfinite(...).all()`` per floating-point tensor."""
    f32_max = torch.finfo(torch.float32).max
    for key, t in state.items():
        if t.is_complex():
            raise CorruptWeightsError(
                f"weights file {source} holds a complex tensor {key!r} ({t.dtype}); stzoo models take real "
                "weights (float16 / bfloat16 / float32 / float64): this file is not a stzoo checkpoint"
            )
        if not t.is_floating_point():
            continue
        if t.dtype not in (torch.float16, torch.bfloat16, torch.float32, torch.float64):  # float8 & co.
            try:
                t = t.to(torch.float32)  # exact for every narrower float format
            except (RuntimeError, TypeError) as exc:
                raise CorruptWeightsError(
                    f"weights file {source}: tensor {key!r} has dtype {t.dtype}, which stzoo cannot convert to "
                    f"float32 ({exc}); save the weights as float32, float16 or bfloat16"
                ) from None
        if t.dtype == torch.float64 and bool(torch.isfinite(t).all()) and bool((t.abs() > f32_max).any()):
            n_big = int((t.abs() > f32_max).sum())
            raise CorruptWeightsError(
                f"weights file {source} holds float64 values beyond the float32 range: tensor {key!r} (shape "
                f"{tuple(t.shape)}) has {n_big} value(s) above {f32_max:.3g} in magnitude, which become infinite "
                "in the float32 model (NaN forecasts), so they were not loaded; the checkpoint comes from a "
                "diverged run or is corrupt"
            )
        if bool(torch.isfinite(t).all()):
            continue
        finite = torch.isfinite(t)
        n_nan = int(torch.isnan(t).sum())
        n_bad = int((~finite).sum())
        raise CorruptWeightsError(
            f"weights file {source} holds non-finite values: tensor {key!r} (shape {tuple(t.shape)}) has "
            f"{n_nan} NaN and {n_bad - n_nan} infinite value(s) of {t.numel()}. Such weights only produce "
            "NaN forecasts, so they were not loaded; the checkpoint comes from a diverged training run or "
            "is corrupt. Use an earlier checkpoint or train again with a lower learning rate."
        )


# ---- the Hugging Face cache ------------------------------------------------------------------
def hf_cache_dir() -> Path:
    """The Hugging Face hub cache folder in force (``HF_HUB_CACHE``, else ``$HF_HOME/hub``)."""
    from huggingface_hub import constants

    return Path(constants.HF_HUB_CACHE)


def hf_endpoint() -> str:
    from huggingface_hub import constants

    return constants.ENDPOINT


def hf_offline() -> bool:
    """Whether ``HF_HUB_OFFLINE`` is on (as huggingface_hub read it at import)."""
    from huggingface_hub import constants

    check = getattr(constants, "is_offline_mode", None)
    return bool(check()) if callable(check) else bool(getattr(constants, "HF_HUB_OFFLINE", False))


def _repo_cache_folder(repo_id: str) -> Path:
    return hf_cache_dir() / ("models--" + repo_id.replace("/", "--"))


_HEX40 = re.compile(r"[0-9a-f]{40}")
_HEX64 = re.compile(r"[0-9a-f]{64}")


def _is_inside(path: Path, root: Path) -> bool:
    """Whether ``path`` (its folder resolved, links included) lies inside ``root`` (resolved)."""
    try:
        base = os.path.realpath(root)
        full = os.path.join(os.path.realpath(path.parent), path.name)
    except (OSError, ValueError):
        return False
    return os.path.commonpath([base, full]) == base


def _cached_commit(repo_folder: Path, revision: str | None) -> str | None:
    """The commit the cache records for ``revision`` (``refs/<revision>``), or the revision itself when it is
    a commit hash; None when unknown, or when the ref file holds anything but a 40-hex hash."""
    rev = revision or "main"
    if _HEX40.fullmatch(rev):
        return rev
    ref = repo_folder / "refs" / rev
    if not _is_inside(ref, repo_folder):
        return None
    try:
        text = ref.read_text(encoding="ascii", errors="replace").strip()
    except (OSError, ValueError):
        return None
    return text if _HEX40.fullmatch(text) else None


def cached_file(repo_id: str, filename: str, revision: str | None) -> Path | None:
    """The file in the Hugging Face cache for that revision, without any network access.

    Only ``snapshots/<40-hex commit>/<filename>`` inside the repo's cache folder is considered: a ref file
    holding anything else (e.g. written by an older huggingface_hub from a hostile server's answer) is
    treated as "not cached", never followed."""
    validate_repo_id(repo_id)
    validate_filename(filename)
    repo_folder = _repo_cache_folder(repo_id)
    commit = _cached_commit(repo_folder, revision)
    if commit is None:
        return None
    path = repo_folder / "snapshots" / commit / filename
    if not _is_inside(path, repo_folder):
        return None
    return path if path.is_file() else None


def purge_cached_file(path: Path, expected_sha256: str | None = None) -> list[Path]:
    """Delete a file from the Hugging Face cache: its snapshot link and the blob it points to.

    With ``expected_sha256`` (the good file's sha256, which is also the name of its blob for an LFS
    file), a blob of that name whose content does not have that sha256 is deleted too: that is a bad
    transfer stored under the good name, which ``hf_hub_download`` would otherwise link again on the
    next download without fetching anything (it also catches the bad bytes when the snapshot entry is a
    copy, not a link, as on file systems without symlinks). Only files inside the repo's cache folder
    (``<cache>/models--owner--name``) are ever deleted: a link pointing elsewhere is removed, its target
    kept.

    Returns the paths that could not be deleted (empty when the cache is clean). Never raises ``OSError``.
    """
    path = Path(path)
    repo_folder = next((p.parent for p in path.parents if p.name == "snapshots"), None)
    targets = []
    try:
        if path.is_symlink():
            blob = path.resolve()
            if blob.parent.name == "blobs" and repo_folder is not None and _is_inside(blob, repo_folder):
                targets.append(blob)
    except (OSError, RuntimeError):  # a link loop
        pass
    targets.insert(0, path)
    if expected_sha256 is not None and repo_folder is not None and _HEX64.fullmatch(str(expected_sha256)):
        # <repo folder>/snapshots/<commit>/<filename...> -> <repo folder>/blobs/<sha256>
        named = repo_folder / "blobs" / expected_sha256
        try:
            if named.is_file() and named not in targets and sha256_file(named) != expected_sha256:
                targets.append(named)
        except OSError:
            targets.append(named)
    left = []
    for target in targets:
        try:
            target.unlink(missing_ok=True)
        except OSError:
            left.append(target)
    return left


# ---- what is cached ----------------------------------------------------------------------------
def _is_stzoo_config(path: Path) -> bool:
    try:
        return "stzoo_format" in json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError, TypeError):
        return False


def cache_report() -> dict[str, Any]:
    """What stzoo weights are on this machine: per zoo entry, and stzoo repos in the HF cache.

    Returns a JSON-serialisable dict: ``cache_dir``, ``offline``, ``local_dirs``, ``entries`` (name,
    status, path, size) and ``repos`` (repo_id, revisions, size_on_disk, files).
    """
    from stzoo.zoo.manifest import get_entry, load_manifest

    zoo_repos = set()
    entries = []
    for name, raw in sorted(load_manifest()["models"].items()):
        if "alias" in raw or not raw.get("weights"):
            continue
        spec = get_entry(name).weights
        row: dict[str, Any] = {"name": name, "status": "not cached", "path": None, "size": None}
        for folder in local_weights_dirs():
            if (folder / spec.filename).is_file():
                p = folder / spec.filename
                row.update(status="local folder", path=str(p), size=p.stat().st_size)
                break
        else:
            hub = spec.hub
            if hub:
                zoo_repos.add(hub.repo_id)
                p = cached_file(hub.repo_id, hub.filename, hub.revision)
                if p is not None:
                    row.update(status="hf cache", path=str(p), size=p.stat().st_size)
        entries.append(row)

    repos = []
    cache = hf_cache_dir()
    if cache.is_dir():
        from huggingface_hub import scan_cache_dir

        for repo in sorted(scan_cache_dir(cache).repos, key=lambda r: r.repo_id):
            if repo.repo_type != "model":
                continue
            configs = [f.file_path for rev in repo.revisions for f in rev.files if f.file_name == "config.json"]
            if repo.repo_id in zoo_repos or any(_is_stzoo_config(Path(c)) for c in configs):
                repos.append(
                    {
                        "repo_id": repo.repo_id,
                        "size_on_disk": repo.size_on_disk,
                        "revisions": sorted(r.commit_hash for r in repo.revisions),
                        "refs": sorted(ref for r in repo.revisions for ref in r.refs),
                        "files": sorted({f.file_name for r in repo.revisions for f in r.files}),
                        "path": str(repo.repo_path),
                    }
                )
    return {
        "cache_dir": str(cache),
        "offline": hf_offline(),
        "local_dirs": [str(d) for d in local_weights_dirs()],
        "entries": entries,
        "repos": repos,
    }
