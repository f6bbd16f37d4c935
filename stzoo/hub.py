"""Finding, verifying and reading zoo weights. The only module that touches the network or the
Hugging Face cache (uploads live in :mod:`stzoo.pretrained`, which calls back in here for ids).

Resolution order for a manifest entry's weights:

1. ``weights=`` given by the caller (a local file);
2. a local release folder: ``$STZOO_WEIGHTS_DIR``, else the repo's ``weights/`` folder when
   running from a source checkout;
3. the Hugging Face cache (``HF_HOME`` / ``HF_HUB_CACHE``), then a download with
   ``huggingface_hub.hf_hub_download`` of the manifest's ``repo_id`` / ``filename`` / pinned
   ``revision``. ``HF_ENDPOINT`` (mirrors), ``HF_HUB_OFFLINE`` and ``HF_TOKEN`` are honoured by
   ``huggingface_hub`` itself, which reads them when it is first imported.

Whatever the source, the file's sha256 is compared with the manifest before anything is read from
it, and it is read only with ``safetensors`` (never pickle). A file in the Hugging Face cache that
fails the check is deleted from the cache (blob and snapshot link), so it can never be picked up
later as if it were good. ``hf_hub_download`` writes to a temporary file and moves it into place
only when complete, so a broken transfer never leaves a partial file behind; transient failures
(connection drops, HTTP 5xx/408/429) are retried :data:`DOWNLOAD_ATTEMPTS` times.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, TypeVar

import torch

from stzoo.errors import InputError, StzooError, WeightsNotAvailableError

__all__ = ["ChecksumError", "InvalidHubIdError", "HubError", "resolve_weights", "locate_weights",
           "WeightsLocation", "load_safetensors", "sha256_file", "local_weights_dirs", "hub_download",
           "validate_repo_id", "validate_filename", "validate_revision", "parse_hub_id", "hf_cache_dir",
           "purge_cached_file", "cache_report", "WEIGHTS_DIR_ENV", "HUB_PREFIX", "DOWNLOAD_ATTEMPTS"]

log = logging.getLogger(__name__)

WEIGHTS_DIR_ENV = "STZOO_WEIGHTS_DIR"
HUB_PREFIX = "hf-hub:"
#: How many times a download is tried when it fails for a reason that may pass (network, HTTP 5xx).
DOWNLOAD_ATTEMPTS = 3
#: Seconds to wait before the second attempt; doubled for each further one.
RETRY_WAIT_S = 2.0

T = TypeVar("T")


class ChecksumError(StzooError, ValueError):
    """A weights file does not have the sha256 the manifest promises."""


class InvalidHubIdError(InputError):
    """A Hugging Face repo id, revision or file name is malformed or unsafe (``..``, absolute path,
    backslash, ...). A ``ValueError``."""


class HubError(StzooError, OSError):
    """Talking to the Hugging Face Hub (or the mirror in ``HF_ENDPOINT``) failed, e.g. an upload."""


# ---- ids and names ----------------------------------------------------------------------------
_REPO_PART = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?$")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def _bad(kind: str, value: object, why: str, expected: str) -> InvalidHubIdError:
    return InvalidHubIdError(f"invalid Hugging Face {kind} {value!r}: {why}. Expected {expected}.")


def validate_repo_id(repo_id: object) -> str:
    """Return ``repo_id`` if it is a safe ``owner/name`` id; raise :class:`InvalidHubIdError`."""
    expected = ("'owner/name' made of letters, digits, '-', '_' and '.', e.g. 'stzoo/tau-mmnist-s' "
                "(no '..', no '--', no leading '/', no backslash)")
    if not isinstance(repo_id, str) or not repo_id:
        raise _bad("repo id", repo_id, "not a non-empty string", expected)
    if "\\" in repo_id:
        raise _bad("repo id", repo_id, "it contains a backslash", expected)
    if repo_id.startswith("/") or re.match(r"^[A-Za-z]:", repo_id):
        raise _bad("repo id", repo_id, "it is an absolute path", expected)
    if ".." in repo_id or "--" in repo_id:
        raise _bad("repo id", repo_id, "it contains '..' or '--'", expected)
    parts = repo_id.split("/")
    if len(parts) != 2:
        raise _bad("repo id", repo_id, f"it has {len(parts) - 1} '/' instead of exactly one", expected)
    if len(parts[1]) > 96 or not all(_REPO_PART.match(p) for p in parts):
        raise _bad("repo id", repo_id, "it has characters or a length a Hub repo id cannot have", expected)
    return repo_id


def validate_filename(filename: object) -> str:
    """Return ``filename`` if it is a safe relative path inside a repo; raise otherwise."""
    expected = "a relative path inside the repo using '/', e.g. 'model.safetensors' or 'sub/model.safetensors'"
    if not isinstance(filename, str) or not filename:
        raise _bad("file name", filename, "not a non-empty string", expected)
    if "\\" in filename:
        raise _bad("file name", filename, "it contains a backslash", expected)
    if filename.startswith(("/", "~")) or re.match(r"^[A-Za-z]:", filename):
        raise _bad("file name", filename, "it is an absolute path", expected)
    if _CONTROL.search(filename):
        raise _bad("file name", filename, "it contains control characters", expected)
    parts = filename.split("/")
    if any(p in ("", ".", "..") for p in parts):
        raise _bad("file name", filename, "it has an empty, '.' or '..' path component", expected)
    return filename


def validate_revision(revision: object) -> str:
    """Return ``revision`` (a branch, tag or commit hash) if safe; raise otherwise."""
    expected = "a branch, tag or 40-hex-digit commit hash, e.g. 'main', 'v1.0' or 'refs/pr/1'"
    if not isinstance(revision, str) or not revision or len(revision) > 255:
        raise _bad("revision", revision, "not a non-empty string of at most 255 characters", expected)
    if "\\" in revision or ".." in revision or revision.startswith("/") or revision.endswith("/"):
        raise _bad("revision", revision, "it contains a backslash or '..', or starts/ends with '/'", expected)
    if _CONTROL.search(revision) or " " in revision:
        raise _bad("revision", revision, "it contains spaces or control characters", expected)
    return revision


def parse_hub_id(spec: str) -> tuple[str, str | None]:
    """``"hf-hub:owner/repo@rev"`` (prefix optional) → ``("owner/repo", "rev")``, validated."""
    if not isinstance(spec, str):
        raise _bad("model id", spec, "not a string", "'hf-hub:owner/name[@revision]'")
    body = spec[len(HUB_PREFIX):] if spec.startswith(HUB_PREFIX) else spec
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


def local_weights_dirs() -> list[Path]:
    """Folders searched for release weights, in order."""
    dirs = []
    if os.environ.get(WEIGHTS_DIR_ENV):
        dirs.append(Path(os.environ[WEIGHTS_DIR_ENV]).expanduser())
    checkout = Path(__file__).resolve().parent.parent / "weights"
    if checkout.is_dir() and (checkout.parent / "pyproject.toml").is_file():
        dirs.append(checkout)
    return dirs


def verify(path: Path, expected: str | None) -> Path:
    """Return ``path`` if its sha256 is ``expected`` (or nothing is expected); raise otherwise."""
    if expected is None:
        return path
    actual = sha256_file(path)
    if actual != expected:
        raise ChecksumError(
            f"{path} has sha256 {actual}, but the manifest expects {expected}. The file is corrupt, "
            "truncated or not the released one: delete it and fetch it again (stzoo download NAME)."
        )
    return path


def load_safetensors(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """Read a safetensors file (never pickle)."""
    from safetensors.torch import load_file

    return load_file(str(path))


# ---- the Hugging Face cache and downloads ------------------------------------------------------
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


def cached_file(repo_id: str, filename: str, revision: str | None) -> Path | None:
    """The file in the Hugging Face cache for that revision, without any network access."""
    from huggingface_hub import try_to_load_from_cache

    found = try_to_load_from_cache(repo_id, filename, revision=revision)
    return Path(found) if isinstance(found, str) and os.path.isfile(found) else None


def purge_cached_file(path: Path) -> None:
    """Delete a file from the Hugging Face cache: its snapshot link and the blob it points to."""
    path = Path(path)
    blob = path.resolve() if path.is_symlink() else None
    path.unlink(missing_ok=True)
    if blob is not None and blob.parent.name == "blobs":
        blob.unlink(missing_ok=True)


def _hf_errors() -> Any:
    from huggingface_hub import errors

    return errors


def _status(exc: BaseException) -> int | None:
    response = getattr(exc, "response", None)
    return getattr(response, "status_code", None)


def _is_transient(exc: BaseException) -> bool:
    """Whether trying again might help (network trouble, server errors), not a definite answer."""
    e = _hf_errors()
    definite = tuple(getattr(e, n) for n in ("RepositoryNotFoundError", "RevisionNotFoundError",
                                             "EntryNotFoundError", "DisabledRepoError", "OfflineModeIsEnabled")
                     if hasattr(e, n))
    if isinstance(exc, getattr(e, "LocalEntryNotFoundError", ())):
        # hf_hub_download's "could not reach the server (it already retried with backoff) and nothing is
        # cached", or offline mode: another round would only repeat that.
        return False
    if isinstance(exc, definite):
        return False
    if isinstance(exc, e.HfHubHTTPError):
        return _status(exc) in (408, 429, 500, 502, 503, 504)
    module = type(exc).__module__.split(".")[0]
    return module in ("httpx", "httpx2", "httpcore", "httpcore2", "requests", "urllib3") or isinstance(
        exc, (ConnectionError, TimeoutError, OSError))


def _with_retries(fn: Callable[[], T], what: str, attempts: int | None = None) -> T:
    attempts = DOWNLOAD_ATTEMPTS if attempts is None else attempts
    wait = RETRY_WAIT_S
    for attempt in range(1, attempts + 1):
        try:
            return fn()
        except Exception as exc:
            if attempt == attempts or not _is_transient(exc):
                exc.stzoo_attempts = attempt  # type: ignore[attr-defined]
                raise
            log.warning("%s failed (attempt %d of %d: %s: %s); retrying in %.1f s", what, attempt, attempts,
                        type(exc).__name__, exc, wait)
            time.sleep(wait)
            wait *= 2
    raise AssertionError("unreachable")


def _offline_message(what: str, repo_id: str, filename: str, revision: str | None,
                     looked: list[str], name: str | None) -> str:
    target = name or f"hf-hub:{repo_id}" + (f"@{revision}" if revision else "")
    local = "; ".join(looked) if looked else "no local weights folder"
    return (
        f"{what}: {filename} is not available offline. HF_HUB_OFFLINE is set, and the file is not in "
        f"the Hugging Face cache ({_repo_cache_folder(repo_id)}, revision {revision or 'main'}); local "
        f"places looked in: {local}. To pre-fetch it, run `stzoo download {target}` on a machine with "
        f"network (it prints where the file went) and copy that cache here (HF_HOME / HF_HUB_CACHE), "
        f"or put {filename} in a folder and point {WEIGHTS_DIR_ENV} at it; or unset HF_HUB_OFFLINE."
    )


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else ""


def _explain(exc: BaseException, what: str, repo_id: str, filename: str, revision: str | None,
             looked: list[str], name: str | None) -> StzooError:
    """Turn a huggingface_hub / network error into an stzoo error that says what to do."""
    e = _hf_errors()
    rev = revision or "main"
    where = f"{repo_id}/{filename}@{rev} on {hf_endpoint()}"
    also = f" Also looked in: {'; '.join(looked)}." if looked else ""
    if hf_offline() or isinstance(exc, getattr(e, "OfflineModeIsEnabled", ())):
        return WeightsNotAvailableError(_offline_message(what, repo_id, filename, revision, looked, name))
    if isinstance(exc, e.RevisionNotFoundError):
        return WeightsNotAvailableError(
            f"{what}: revision {rev!r} does not exist in {repo_id} on {hf_endpoint()} (HTTP 404). "
            "Check the revision (branch, tag or commit hash); if it is the one the stzoo manifest pins, "
            f"the repo was rewritten: please report it.{also}")
    if isinstance(exc, getattr(e, "RemoteEntryNotFoundError", e.EntryNotFoundError)) and not isinstance(
            exc, getattr(e, "LocalEntryNotFoundError", ())):
        return WeightsNotAvailableError(
            f"{what}: {repo_id} has no file {filename!r} at revision {rev!r} on {hf_endpoint()} "
            f"(HTTP 404).{also}")
    if isinstance(exc, e.RepositoryNotFoundError):
        return WeightsNotAvailableError(
            f"{what}: repository {repo_id} was not found on {hf_endpoint()} (HTTP {_status(exc)}), or it is "
            "private or gated: check the id, and log in with `hf auth login` or set HF_TOKEN if you should "
            f"have access.{also}")
    causes = [exc] + ([exc.__cause__] if exc.__cause__ is not None else [])
    detail = "; caused by ".join(f"{type(c).__name__}: {_first_line(c)}" for c in causes)
    return WeightsNotAvailableError(
        f"{what}: could not download {where} (tried {getattr(exc, 'stzoo_attempts', 1)} time(s)): {detail}. "
        "No partial file was kept. Check your connection, HF_ENDPOINT (mirror) and proxy settings and try "
        f"again; on a machine without network, see `stzoo download --help`.{also}")


def hub_download(repo_id: str, filename: str, revision: str | None = None, *, sha256: str | None = None,
                 what: str | None = None, looked: list[str] | None = None,
                 name: str | None = None) -> tuple[Path, str]:
    """Fetch ``filename`` of Hub repo ``repo_id`` at ``revision`` into the Hugging Face cache.

    With ``sha256`` (the manifest's), a verified copy already in the cache is used without any network
    access, a cached copy that fails the check is deleted and fetched anew, and a downloaded copy that
    fails it is deleted and :class:`ChecksumError` raised. Without it, ``hf_hub_download`` decides
    (it checks the revision online unless offline).

    Returns:
        ``(path, source)`` where source is ``"hf-cache"`` (verified cached copy, no request made),
        ``"download"`` (fetched and verified) or, without ``sha256``, ``"hf-hub"`` (huggingface_hub
        checked the revision and fetched the file or reused its cached copy).
    """
    validate_repo_id(repo_id)
    validate_filename(filename)
    if revision is not None:
        validate_revision(revision)
    what = what or f"{repo_id}/{filename}"
    looked = list(looked or [])
    if sha256 is not None:
        cached = cached_file(repo_id, filename, revision)
        if cached is not None:
            if sha256_file(cached) == sha256:
                return cached, "hf-cache"
            log.warning("%s in the Hugging Face cache has the wrong sha256; deleting it and fetching again",
                        cached)
            purge_cached_file(cached)
        if hf_offline():
            raise WeightsNotAvailableError(_offline_message(what, repo_id, filename, revision, looked, name))

    from huggingface_hub import hf_hub_download

    try:
        path = Path(_with_retries(lambda: hf_hub_download(repo_id, filename, revision=revision),
                                  f"downloading {repo_id}/{filename}"))
    except StzooError:
        raise
    except Exception as exc:
        raise _explain(exc, what, repo_id, filename, revision, looked, name) from exc
    if sha256 is not None:
        actual = sha256_file(path)
        if actual != sha256:
            purge_cached_file(path)
            raise ChecksumError(
                f"{what}: {repo_id}/{filename}@{revision or 'main'} downloaded from {hf_endpoint()} has "
                f"sha256 {actual}, but the stzoo manifest expects {sha256}. It is not the released file "
                f"(a wrong or tampered mirror, or a rewritten repo), so it was not used and was deleted "
                f"from the Hugging Face cache ({path}). Check HF_ENDPOINT and try again; if it persists, "
                "please report it.")
    return path, ("download" if sha256 is not None else "hf-hub")


# ---- manifest entries --------------------------------------------------------------------------
@dataclass(frozen=True)
class WeightsLocation:
    """Where a zoo entry's verified weights file is, and how it was found."""

    path: Path
    source: str  # "file" (weights=), "local" (release folder), "hf-cache" or "download"


def locate_weights(entry: dict[str, Any], weights: str | os.PathLike | None = None) -> WeightsLocation:
    """Find the weights file of manifest ``entry`` (see the module docstring), verified."""
    spec = entry.get("weights")
    name = entry.get("name", "?")
    if weights is not None:
        path = Path(weights).expanduser()
        if not path.is_file():
            raise WeightsNotAvailableError(f"weights file {path} does not exist")
        return WeightsLocation(verify(path, spec["sha256"] if spec else None), "file")
    if not spec:
        raise WeightsNotAvailableError(
            f"{name} has no released weights yet. Build the untrained network with "
            f"stzoo.load({name!r}, pretrained=False), pass your own file with weights=..., or pick an "
            "entry with weights from stzoo.list_models(pretrained=True)."
        )
    validate_filename(spec["filename"])
    looked = []
    for folder in local_weights_dirs():
        candidate = folder / spec["filename"]
        looked.append(str(candidate))
        if candidate.is_file():
            return WeightsLocation(verify(candidate, spec["sha256"]), "local")
    hub = spec.get("hub")
    if hub is None:
        raise WeightsNotAvailableError(
            f"{name}: {spec['filename']} not found (looked in {looked or 'no local weights folder'}) and the "
            f"manifest names no Hub repo for it. Put the file in a folder and set {WEIGHTS_DIR_ENV} to it.")
    path, source = hub_download(hub["repo_id"], hub["filename"], hub["revision"], sha256=spec["sha256"],
                                what=f"weights of {name}", looked=looked, name=name)
    return WeightsLocation(path, source)


def resolve_weights(entry: dict[str, Any], weights: str | os.PathLike | None = None) -> Path:
    """Path of the verified weights file of manifest ``entry`` (see :func:`locate_weights`)."""
    return locate_weights(entry, weights).path


# ---- what is cached ----------------------------------------------------------------------------
def _is_stzoo_config(path: Path) -> bool:
    try:
        return "stzoo_format" in json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False


def cache_report() -> dict[str, Any]:
    """What stzoo weights are on this machine: per zoo entry, and stzoo repos in the HF cache.

    Returns a JSON-serialisable dict: ``cache_dir``, ``offline``, ``local_dirs``, ``entries`` (name,
    status, path, size) and ``repos`` (repo_id, revisions, size_on_disk, files).
    """
    from stzoo.manifest import get_entry, load_manifest

    zoo_repos = set()
    entries = []
    for name, raw in sorted(load_manifest()["models"].items()):
        if "alias" in raw or not raw.get("weights"):
            continue
        spec = get_entry(name)["weights"]
        row: dict[str, Any] = {"name": name, "status": "not cached", "path": None, "size": None}
        for folder in local_weights_dirs():
            if (folder / spec["filename"]).is_file():
                p = folder / spec["filename"]
                row.update(status="local folder", path=str(p), size=p.stat().st_size)
                break
        else:
            hub = spec.get("hub")
            if hub:
                zoo_repos.add(hub["repo_id"])
                p = cached_file(hub["repo_id"], hub["filename"], hub["revision"])
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
                repos.append({"repo_id": repo.repo_id, "size_on_disk": repo.size_on_disk,
                              "revisions": sorted(r.commit_hash for r in repo.revisions),
                              "refs": sorted(ref for r in repo.revisions for ref in r.refs),
                              "files": sorted({f.file_name for r in repo.revisions for f in r.files}),
                              "path": str(repo.repo_path)})
    return {"cache_dir": str(cache), "offline": hf_offline(), "local_dirs": [str(d) for d in local_weights_dirs()],
            "entries": entries, "repos": repos}
