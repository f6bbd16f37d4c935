"""Downloading one file from the Hugging Face Hub (or the mirror in ``HF_ENDPOINT``) into the Hugging Face
cache, hardened against a hostile or broken server: :func:`hub_download`.

Threat model: the server is not trusted to name files, so no server-chosen string ever becomes a path
(see docs/security.md). The commit, ETag and size it sends must be a 40-hex hash, a 40/64-hex hash and a
number, or the answer is refused (:class:`~stzoo.zoo.hub.HubError`) before anything is written; the body
goes to a temporary file inside the cache, is checked, and only then moved to names stzoo derives
(``blobs/<sha256>``, ``snapshots/<commit>/<file>``). A broken transfer never leaves a partial file behind;
transient failures (connection drops, HTTP 5xx/408/429) are retried :data:`DOWNLOAD_ATTEMPTS` times, and
one download has an overall deadline (:data:`HUB_TIMEOUT_ENV`, :data:`DEFAULT_HUB_TIMEOUT_S` seconds by
default). A download that fails the manifest's sha256 is deleted and fetched once more
(:data:`CHECKSUM_ATTEMPTS`) before :class:`~stzoo.zoo.hub.ChecksumError`. The same holds for ``hf-hub:``
checkpoints, whose config.json records the sha256 of their weights; config.json itself is checked against
the server's ETag and size, pinned to one commit, and fetched again when it cannot be read.

Ids, cache paths and the checks on local files live in :mod:`stzoo.zoo.hub`; this module imports it,
never the reverse.
"""

from __future__ import annotations

import hashlib
import logging
import math
import os
import re
import shutil
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from stzoo.errors import InputError, StzooError, WeightsNotAvailableError
from stzoo.zoo.hub import (
    _HEX40,
    _HEX64,
    WEIGHTS_DIR_ENV,
    ChecksumError,
    HubError,
    HubTimeoutError,
    _cached_commit,
    _first_line,
    _is_inside,
    _repo_cache_folder,
    _short,
    cached_file,
    hf_endpoint,
    hf_offline,
    purge_cached_file,
    sha256_file,
    validate_filename,
    validate_repo_id,
    validate_revision,
)

__all__ = [
    "hub_download",
    "hub_timeout",
    "env_seconds",
    "retry_after_seconds",
    "DOWNLOAD_ATTEMPTS",
    "CHECKSUM_ATTEMPTS",
    "HUB_TIMEOUT_ENV",
    "DEFAULT_HUB_TIMEOUT_S",
    "MAX_RETRY_AFTER_S",
]

log = logging.getLogger(__name__)

#: How many times a download is tried when it fails for a reason that may pass (network, HTTP 5xx).
DOWNLOAD_ATTEMPTS = 3
#: Seconds to wait before the second attempt; doubled for each further one.
RETRY_WAIT_S = 2.0
#: How many times a file whose bytes do not have the expected sha256 is downloaded (each bad copy is
#: deleted from the cache first) before :class:`ChecksumError` is raised.
CHECKSUM_ATTEMPTS = 2
#: Environment variable: the overall deadline, in seconds, of one Hub file download (every request, retry
#: and wait included); see :func:`hub_timeout`.
HUB_TIMEOUT_ENV = "STZOO_HUB_TIMEOUT"
DEFAULT_HUB_TIMEOUT_S = 300.0
#: The longest wait (seconds) stzoo honours from a server's ``Retry-After`` before trying again.
MAX_RETRY_AFTER_S = 30.0
#: The largest file fetched with no sha256 known in advance (config.json, README.md), in bytes.
MAX_UNPINNED_BYTES = 64 * 2**20

T = TypeVar("T")


# ---- retries and errors -------------------------------------------------------------------------
def _hf_errors() -> Any:
    from huggingface_hub import errors

    return errors


def _status(exc: BaseException) -> int | None:
    response = getattr(exc, "response", None)
    return getattr(response, "status_code", None)


def _is_transient(exc: BaseException) -> bool:
    """Whether trying again might help (network trouble, server errors), not a definite answer."""
    if isinstance(exc, StzooError):  # stzoo's own verdicts (a bad answer, the deadline) are final
        return False
    e = _hf_errors()
    definite = tuple(
        getattr(e, n)
        for n in (
            "RepositoryNotFoundError",
            "RevisionNotFoundError",
            "EntryNotFoundError",
            "DisabledRepoError",
            "OfflineModeIsEnabled",
        )
        if hasattr(e, n)
    )
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
        exc, (ConnectionError, TimeoutError, OSError)
    )


def retry_after_seconds(raw: object) -> float | None:
    """Seconds a ``Retry-After`` header's value asks for (a number or an HTTP date; never negative), or None
    when it is absent or unreadable."""
    if not raw:
        return None
    raw = str(raw).strip()[:100]
    try:
        value = float(raw)
    except ValueError:
        import datetime
        from email.utils import parsedate_to_datetime

        try:
            value = (parsedate_to_datetime(raw) - datetime.datetime.now(datetime.timezone.utc)).total_seconds()
        except (TypeError, ValueError, OverflowError):
            return None
    return max(value, 0.0) if math.isfinite(value) else None


def _retry_after(exc: BaseException) -> float | None:
    """Seconds a 429/503 answer's ``Retry-After`` header asks for (a number or an HTTP date), or None."""
    response = getattr(exc, "response", None)
    return retry_after_seconds(getattr(response, "headers", {}).get("Retry-After") if response is not None else None)


def _with_retries(fn: Callable[[], T], what: str, attempts: int | None = None, deadline: _Deadline | None = None) -> T:
    """``fn()``, tried again (:data:`DOWNLOAD_ATTEMPTS` in all) after a transient failure, with back-off.

    A server's ``Retry-After`` is honoured up to :data:`MAX_RETRY_AFTER_S`; with ``deadline``, a wait that
    would end past it raises :class:`HubTimeoutError` at once instead of sleeping. A connection that cannot be
    made at all (no network, refused, dead proxy) is not retried."""
    attempts = DOWNLOAD_ATTEMPTS if attempts is None else attempts
    wait = RETRY_WAIT_S
    for attempt in range(1, attempts + 1):
        try:
            return fn()
        except Exception as exc:
            if attempt == attempts or not _is_transient(exc) or _is_unreachable(exc):
                exc.stzoo_attempts = attempt  # type: ignore[attr-defined]
                raise
            asked = _retry_after(exc)
            pause = wait if asked is None else max(wait, min(asked, MAX_RETRY_AFTER_S))
            if deadline is not None and pause >= deadline.left():
                extra = f" (the server asked to wait {asked:g} s with Retry-After)" if asked is not None else ""
                raise deadline.expired(
                    f"{what}, before attempt {attempt + 1} of {attempts}{extra}",
                    f"{type(exc).__name__}: {_first_line(exc)[:200]}",
                ) from exc
            log.warning(
                "%s failed (attempt %d of %d: %s: %s); retrying in %.1f s",
                what,
                attempt,
                attempts,
                type(exc).__name__,
                _first_line(exc)[:300],
                pause,
            )
            time.sleep(pause)
            wait *= 2
    raise AssertionError("unreachable")


def _offline_message(
    what: str,
    repo_id: str,
    filename: str,
    revision: str | None,
    looked: list[str],
    name: str | None,
    local_filename: str | None = None,
    unreachable: str | None = None,
) -> str:
    """Why a file is not available without the Hub, and what to do. ``local_filename`` is the name a
    zoo entry's file has in a local weights folder (``<name>.safetensors``, which differs from the
    Hub's ``model.safetensors``); ``unreachable`` says why the Hub could not be asked (HF_HUB_OFFLINE
    unset but no network), instead of HF_HUB_OFFLINE."""
    target = name or f"hf-hub:{repo_id}" + (f"@{revision}" if revision else "")
    cache = f"{_repo_cache_folder(repo_id)}, revision {revision or 'main'}"
    why = unreachable or "HF_HUB_OFFLINE is set"
    fetch = (
        f"run `stzoo download {target}` on a machine with network (it prints where the file went) and copy "
        "that Hugging Face cache here (HF_HOME / HF_HUB_CACHE)"
    )
    last = (
        "; or set HF_HUB_OFFLINE=1 to skip the Hub at once on a machine without network."
        if unreachable
        else "; or unset HF_HUB_OFFLINE."
    )
    if local_filename:
        local = "; ".join(looked) if looked else "no local weights folder"
        return (
            f"{what}: {local_filename} is not available offline ({why}). Looked for {local_filename} in the "
            f"local weights folders ({local}) and for {repo_id}/{filename} in the Hugging Face cache ({cache}): "
            f"neither has it. Put {local_filename} in a folder and point {WEIGHTS_DIR_ENV} at it, or {fetch}" + last
        )
    return (
        f"{what}: {repo_id}/{filename} is not available offline ({why}), and it is not in the Hugging Face "
        f"cache ({cache}). {fetch[0].upper() + fetch[1:]}, or copy the repo's files ({filename} and the "
        'others) into a folder and load that folder with stzoo.load("path/to/folder")' + last
    )


#: Exception class names (of httpx / httpx2 / httpcore / requests / urllib3) meaning the endpoint could not
#: be reached at all: no network, no DNS, a refused connection or a dead proxy.
_UNREACHABLE_NAMES = frozenset(
    {"ConnectError", "ConnectTimeout", "ProxyError", "NewConnectionError", "NameResolutionError", "MaxRetryError"}
)
_HTTP_MODULES = ("httpx", "httpx2", "httpcore", "httpcore2", "requests", "urllib3")


def _is_unreachable(exc: BaseException) -> bool:
    seen: set[int] = set()
    stack: list[BaseException | None] = [exc]
    while stack:
        e = stack.pop()
        if e is None or id(e) in seen:
            continue
        seen.add(id(e))
        for cls in type(e).__mro__:
            if cls.__name__ in _UNREACHABLE_NAMES and cls.__module__.split(".")[0] in _HTTP_MODULES:
                return True
        if type(e).__name__ == "ConnectionError" and type(e).__module__.split(".")[0] == "requests":
            return True
        stack += [e.__cause__, e.__context__]
    return False


def _explain(
    exc: BaseException,
    what: str,
    repo_id: str,
    filename: str,
    revision: str | None,
    looked: list[str],
    name: str | None,
    local_filename: str | None = None,
) -> StzooError:
    """Turn a huggingface_hub / network error into an stzoo error that says what to do."""
    e = _hf_errors()
    rev = revision or "main"
    where = f"{repo_id}/{filename}@{rev} on {hf_endpoint()}"
    also = f" Also looked in: {'; '.join(looked)}." if looked else ""
    if hf_offline() or isinstance(exc, getattr(e, "OfflineModeIsEnabled", ())):
        return WeightsNotAvailableError(
            _offline_message(what, repo_id, filename, revision, looked, name, local_filename)
        )
    if isinstance(exc, e.RevisionNotFoundError):
        return WeightsNotAvailableError(
            f"{what}: revision {rev!r} does not exist in {repo_id} on {hf_endpoint()} (HTTP 404). "
            "Check the revision (branch, tag or commit hash); if it is the one the stzoo manifest pins, "
            f"the repo was rewritten: please report it.{also}"
        )
    if isinstance(exc, getattr(e, "RemoteEntryNotFoundError", e.EntryNotFoundError)) and not isinstance(
        exc, getattr(e, "LocalEntryNotFoundError", ())
    ):
        return WeightsNotAvailableError(
            f"{what}: {repo_id} has no file {filename!r} at revision {rev!r} on {hf_endpoint()} (HTTP 404).{also}"
        )
    if isinstance(exc, e.RepositoryNotFoundError):
        return WeightsNotAvailableError(
            f"{what}: repository {repo_id} was not found on {hf_endpoint()} (HTTP {_status(exc)}), or it is "
            "private or gated: check the id, and log in with `hf auth login` or set HF_TOKEN if you should "
            f"have access.{also}"
        )
    causes = [exc] + ([exc.__cause__] if exc.__cause__ is not None else [])
    detail = "; caused by ".join(f"{type(c).__name__}: {_first_line(c)}" for c in causes)
    return WeightsNotAvailableError(
        f"{what}: could not download {where} (tried {getattr(exc, 'stzoo_attempts', 1)} time(s)): {detail}. "
        "No partial file was kept. Check your connection, HF_ENDPOINT (mirror) and proxy settings and try "
        f"again; on a machine without network, see `stzoo download --help`.{also}"
    )


# ---- downloads: stzoo decides every path -------------------------------------------------------
def env_seconds(name: str, default: float, example: int) -> float:
    """A number of seconds from the environment variable ``name``, else ``default``. Raises
    :class:`~stzoo.errors.InputError` for a value that is not a positive number (its message suggests
    ``name=example``)."""
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value > 0):
        raise InputError(
            f"{name}={_short(raw)} is not a positive number of seconds; unset it for the "
            f"default ({default:g} s) or set e.g. {name}={example}"
        )
    return value


def hub_timeout() -> float:
    """The overall deadline of one Hub file download, in seconds: ``$STZOO_HUB_TIMEOUT``, else
    :data:`DEFAULT_HUB_TIMEOUT_S`. Raises :class:`~stzoo.errors.InputError` for a value that is not a
    positive number."""
    return env_seconds(HUB_TIMEOUT_ENV, DEFAULT_HUB_TIMEOUT_S, 1800)


class _Deadline:
    """The point in time by which one :func:`hub_download` must be done (all requests, retries and waits)."""

    def __init__(self, seconds: float, what: str) -> None:
        self.seconds, self.what = seconds, what
        self.end = time.monotonic() + seconds

    def left(self) -> float:
        return self.end - time.monotonic()

    def request_timeout(self) -> float:
        """Seconds one connect / read may block: huggingface_hub's download timeout, cut to what is left."""
        from huggingface_hub import constants

        per_read = float(getattr(constants, "HF_HUB_DOWNLOAD_TIMEOUT", 10) or 10)
        return max(min(per_read, self.left()), 0.05)

    def expired(self, doing: str, detail: str = "") -> HubTimeoutError:
        why = f" (last error: {detail})" if detail else ""
        return HubTimeoutError(
            f"{self.what}: {doing} did not finish within the {self.seconds:g} s deadline for a Hub download "
            f"({HUB_TIMEOUT_ENV}){why}. The server at {hf_endpoint()} is too slow, stalled or asks to wait too "
            f"long; nothing was kept. Try again later, check HF_ENDPOINT, or raise the deadline, e.g. "
            f"{HUB_TIMEOUT_ENV}={max(int(self.seconds) * 4, 600)}."
        )


def _bounded(fn: Callable[[threading.Event, dict[str, Any]], T], deadline: _Deadline, doing: str) -> T:
    """``fn(cancel, scratch)`` in a worker thread, waited for until ``deadline``; then :class:`HubTimeoutError`.

    httpx's timeouts bound each read, not a whole transfer: a server dripping a byte every few seconds never
    trips them. Past the deadline ``cancel`` is set (the worker checks it between chunks and stops), the
    partial file the worker named in ``scratch["tmp"]`` is deleted, and the caller gets the error at once."""
    box: dict[str, Any] = {}
    scratch: dict[str, Any] = {}
    cancel = threading.Event()

    def work() -> None:
        try:
            box["value"] = fn(cancel, scratch)
        except BaseException as exc:  # noqa: BLE001 - handed to the waiting thread
            box["error"] = exc

    def stop() -> None:
        cancel.set()
        tmp = scratch.get("tmp")
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)

    worker = threading.Thread(target=work, name="stzoo-hub-download", daemon=True)
    worker.start()
    try:
        worker.join(max(deadline.left(), 0.0))
    except BaseException:  # Ctrl-C while waiting: the worker stops at its next chunk, nothing is kept
        stop()
        raise
    if worker.is_alive():
        stop()
        raise deadline.expired(doing)
    if "error" in box:
        raise box["error"]
    return box["value"]


@dataclass(frozen=True)
class _Remote:
    """What the server says about one file, checked: nothing here can name a path outside the cache."""

    commit: str  # 40 lowercase hex digits
    etag: str  # 40 (git blob sha1) or 64 (sha256) lowercase hex digits
    size: int
    url: str  # the file's resolve URL pinned to ``commit``


def _etag_token(raw: str) -> str | None:
    """An ETag header as HF sends it (``"<hex>"``, ``W/"<hex>"`` or bare ``<hex>``) → the lowercase hex, or
    None unless it is exactly a 40-hex git sha1 or a 64-hex sha256."""
    text = raw.strip()
    if text.startswith("W/"):
        text = text[2:]
    if len(text) >= 2 and text[0] == text[-1] == '"':
        text = text[1:-1]
    text = text.lower()
    return text if _HEX40.fullmatch(text) or _HEX64.fullmatch(text) else None


def _hub_headers() -> dict[str, str]:
    from huggingface_hub.utils import build_hf_headers

    headers = build_hf_headers()
    headers["Accept-Encoding"] = "identity"  # the size and hash are those of the file, not of a compressed body
    return headers


#: Relative redirects followed for a HEAD (the Hub uses them for renamed repos).
MAX_HEAD_REDIRECTS = 5


def _head(repo_id: str, filename: str, revision: str | None, deadline: _Deadline) -> _Remote:
    """HEAD the file and check what the server says: commit (40 hex, the one asked for when ``revision`` is a
    commit), ETag (40 or 64 hex), size (digits). Anything else is a :class:`HubError` naming the server and
    the bad value; nothing is written."""
    from urllib.parse import urljoin, urlsplit

    from huggingface_hub import hf_hub_url
    from huggingface_hub.utils import get_session, hf_raise_for_status

    url = hf_hub_url(repo_id, filename, revision=revision)
    session = get_session()
    response = None
    for _ in range(MAX_HEAD_REDIRECTS + 1):
        response = session.head(url, headers=_hub_headers(), follow_redirects=False, timeout=deadline.request_timeout())
        location = response.headers.get("Location") if response.is_redirect else None
        if location and not urlsplit(location).netloc and not urlsplit(location).scheme:
            url = urljoin(url, location)  # a relative redirect (renamed repo): follow it, as huggingface_hub does
            continue
        break
    assert response is not None
    if response.status_code >= 400:
        hf_raise_for_status(response)
    rev = revision or "main"
    where = f"{hf_endpoint()} (answering HEAD {repo_id}/{filename}@{rev})"

    def bad(what: str, value: object, expected: str) -> HubError:
        return HubError(
            f"{where} sent {what} {_short(value)}, which is not {expected}. stzoo never lets a "
            "server choose a file name, so it refused the answer and wrote nothing. The server or a "
            "proxy on the way is broken or hostile: check HF_ENDPOINT and your proxy settings."
        )

    commit = response.headers.get("X-Repo-Commit")
    if commit is None or not _HEX40.fullmatch(commit.strip().lower()):
        raise bad("the commit (X-Repo-Commit)", commit, "a 40-hex-digit git commit hash")
    commit = commit.strip().lower()
    if _HEX40.fullmatch(rev.lower()) and commit != rev.lower():
        raise bad("the commit (X-Repo-Commit)", commit, f"the commit asked for ({rev})")
    etag = None
    for header in ("X-Linked-Etag", "ETag"):  # the linked (LFS) file's is the one that describes the bytes
        raw = response.headers.get(header)
        if raw is None:
            continue
        token = _etag_token(raw)
        if token is None:
            raise bad(f"the {header}", raw, "a plain 40-hex git sha1 or 64-hex sha256 (optionally quoted)")
        etag = etag or token
    if etag is None:
        raise bad("no ETag", None, "what the Hub protocol requires (an ETag naming the file's hash)")
    raw_size = response.headers.get("X-Linked-Size") or (
        None if response.is_redirect else response.headers.get("Content-Length")
    )
    if raw_size is None or not re.fullmatch(r"[0-9]{1,18}", raw_size.strip()):
        raise bad("the size (X-Linked-Size / Content-Length)", raw_size, "a number of bytes")
    return _Remote(commit, etag, int(raw_size.strip()), hf_hub_url(repo_id, filename, revision=commit))


@dataclass
class _Fetched:
    """A downloaded file in a temporary file of the repo's cache folder, not yet placed."""

    tmp: Path
    sha256: str
    matches_etag: bool


def _digests(etag: str, size: int) -> list[Any]:
    """The hashes that can confirm ``etag``: sha256, the git blob sha1 and a plain sha1."""
    git = hashlib.sha1(f"blob {size}\0".encode())  # noqa: S324 - git's object id, not a security hash here
    return [hashlib.sha256(), git, hashlib.sha1()]  # noqa: S324


def _matches_etag(digests: list[Any], etag: str) -> bool:
    if len(etag) == 64:
        return digests[0].hexdigest() == etag
    return etag in (digests[1].hexdigest(), digests[2].hexdigest())


def _get(
    remote: _Remote, repo_folder: Path, deadline: _Deadline, cancel: threading.Event, scratch: dict[str, Any]
) -> _Fetched:
    """GET the commit-pinned file (following redirects, e.g. to a CDN) into a temporary file inside the repo's
    cache folder; check its size against the HEAD's, and hash it."""
    import tempfile

    from huggingface_hub.utils import get_session, hf_raise_for_status

    blobs = repo_folder / "blobs"
    blobs.mkdir(parents=True, exist_ok=True)
    try:
        free = shutil.disk_usage(blobs).free
    except OSError:
        free = None
    if free is not None and remote.size > free:
        raise HubError(
            f"{remote.url} is {remote.size} bytes, but {blobs} has only {free} bytes free: free some "
            "space or point HF_HOME / HF_HUB_CACHE at a bigger disk"
        )
    with get_session().stream(
        "GET", remote.url, headers=_hub_headers(), follow_redirects=True, timeout=deadline.request_timeout()
    ) as response:
        if response.status_code >= 400:
            response.read()
            hf_raise_for_status(response)
        first = response.history[0] if response.history else response
        answered = first.headers.get("X-Repo-Commit")
        if answered is not None and answered.strip().lower() != remote.commit:
            raise HubError(
                f"{hf_endpoint()} answered GET {remote.url} from commit {_short(answered)} although "
                f"the file was asked for at commit {remote.commit}: the server mixes commits, so the "
                "file was refused and nothing was written. Try again; if it persists, check HF_ENDPOINT."
            )
        fd, name = tempfile.mkstemp(dir=blobs, prefix=".stzoo-", suffix=".incomplete")
        tmp = Path(name)
        scratch["tmp"] = tmp
        digests = _digests(remote.etag, remote.size)
        count = 0
        try:
            with os.fdopen(fd, "wb") as f:
                for chunk in response.iter_bytes(1 << 20):
                    if cancel.is_set():
                        raise ConnectionAbortedError("cancelled: past the download deadline")
                    count += len(chunk)
                    if count > remote.size:
                        raise ConnectionError(f"the server sent more than the {remote.size} bytes it announced")
                    f.write(chunk)
                    for d in digests:
                        d.update(chunk)
            if count != remote.size:
                raise ConnectionError(f"the transfer ended after {count} of {remote.size} bytes")
            if cancel.is_set():
                raise ConnectionAbortedError("cancelled: past the download deadline")
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
    return _Fetched(tmp, digests[0].hexdigest(), _matches_etag(digests, remote.etag))


def _replace_atomically(target: Path, write: Callable[[Path], None]) -> None:
    """``write`` a temporary name next to ``target``, then rename it over ``target`` (never half-written)."""
    import uuid

    tmp = target.parent / f".{target.name[:100]}.stzoo-{uuid.uuid4().hex}.tmp"
    try:
        write(tmp)
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _place(fetched: _Fetched, remote: _Remote, repo_folder: Path, filename: str, revision: str | None) -> Path:
    """Move a verified download into the Hugging Face cache layout under names stzoo derives itself:
    ``blobs/<its sha256>``, ``snapshots/<checked commit>/<validated filename>`` (a relative link to the blob,
    a copy where links are not supported) and ``refs/<revision asked for>``. Returns the snapshot path."""
    blob = repo_folder / "blobs" / fetched.sha256
    snap = repo_folder / "snapshots" / remote.commit / filename
    if not (_is_inside(blob, repo_folder) and _is_inside(snap, repo_folder)):  # cannot happen: all names checked
        fetched.tmp.unlink(missing_ok=True)
        raise HubError(f"refusing to write outside the Hugging Face cache folder {repo_folder}: {snap}")
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(fetched.tmp, 0o666 & ~umask)
    os.replace(fetched.tmp, blob)
    snap.parent.mkdir(parents=True, exist_ok=True)

    def link(tmp: Path) -> None:
        try:
            os.symlink(os.path.relpath(blob, snap.parent), tmp)
        except OSError:
            shutil.copyfile(blob, tmp)

    _replace_atomically(snap, link)
    _write_ref(repo_folder, revision, remote.commit)
    return snap


def _write_ref(repo_folder: Path, revision: str | None, commit: str) -> None:
    """Record that ``revision`` (a branch or tag: validated, user-chosen) points at ``commit`` (checked)."""
    rev = revision or "main"
    if rev == commit:
        return
    ref = repo_folder / "refs" / rev
    if not _is_inside(ref, repo_folder) or _cached_commit(repo_folder, rev) == commit:
        return
    ref.parent.mkdir(parents=True, exist_ok=True)
    _replace_atomically(ref, lambda tmp: tmp.write_text(commit, encoding="ascii"))


def _cached_problem(path: Path, etag: str | None = None, size: int | None = None) -> str | None:
    """Why a cached file cannot be trusted, or None: it must match ``etag`` / ``size`` (the server's, online)
    or, offline, the hash its blob is named after (``blobs/<sha256>`` or ``blobs/<git sha1>``)."""
    if etag is None:
        try:
            name = path.resolve().name if path.is_symlink() else None
        except (OSError, RuntimeError):
            return "is a broken link"
        if name is None or not (_HEX40.fullmatch(name) or _HEX64.fullmatch(name)):
            return None  # a copy (no links on this file system): nothing to compare with offline
        etag = name
    try:
        actual = path.stat().st_size
        if size is not None and actual != size:
            return f"is {actual} bytes, but the server says {size}"
        digests = _digests(etag, actual)
        with open(path, "rb") as f:
            while block := f.read(1 << 20):
                for d in digests:
                    d.update(block)
    except OSError as exc:
        return f"cannot be read ({exc.strerror or exc})"
    if not _matches_etag(digests, etag):
        return f"has sha256 {digests[0].hexdigest()}, which does not match its hash {etag}"
    return None


def _check_problem(check: Callable[[Path], object] | None, path: Path) -> StzooError | None:
    if check is None:
        return None
    try:
        check(path)
    except StzooError as exc:
        return exc
    return None


def hub_download(
    repo_id: str,
    filename: str,
    revision: str | None = None,
    *,
    sha256: str | None = None,
    what: str | None = None,
    looked: list[str] | None = None,
    name: str | None = None,
    expected_by: str = "the stzoo manifest",
    local_filename: str | None = None,
    check: Callable[[Path], object] | None = None,
) -> tuple[Path, str]:
    """Fetch ``filename`` of Hub repo ``repo_id`` at ``revision`` into the Hugging Face cache.

    stzoo speaks the Hub protocol itself and decides every path: one HEAD gives the commit, ETag and size,
    which must be a 40-hex commit hash, a 40/64-hex ETag and a number (else :class:`HubError`, nothing
    written); the GET is pinned to that commit and streamed into a temporary file inside the repo's cache
    folder; its size and hash must match the HEAD's; only then is it moved to ``blobs/<its sha256>`` and
    linked from ``snapshots/<commit>/<filename>``. So no header a server sends ever becomes a path, and a
    server that changes its answer between requests gets a refused file, not a written one.

    With ``sha256`` (the manifest's, or the one a checkpoint's config.json records; ``expected_by``
    says which, for messages), a verified copy already in the cache is used without any network
    access, a cached copy that fails the check is deleted (snapshot link and blob) and fetched anew, and
    a downloaded copy that fails it is deleted and fetched once more (:data:`CHECKSUM_ATTEMPTS`); if
    that one is bad too, :class:`ChecksumError` is raised, so a bad transfer never stays in the cache
    under the good name. Without ``sha256`` (config.json, README.md) the server is asked for the
    revision's commit, and the cached copy is used only if it matches the server's ETag and size (offline:
    the hash its blob is named after); otherwise it is deleted and fetched again. ``check`` (e.g. reading
    config.json) runs on the file before it is returned: if it raises a :class:`~stzoo.errors.StzooError`,
    the copy is deleted and fetched once more, then :class:`HubError` says what is wrong.

    The whole call (requests, retries, waits) has a deadline of :func:`hub_timeout` seconds
    (``$STZOO_HUB_TIMEOUT``, default :data:`DEFAULT_HUB_TIMEOUT_S`); past it :class:`HubTimeoutError`.
    A server's ``Retry-After`` is honoured up to :data:`MAX_RETRY_AFTER_S` seconds.

    Returns:
        ``(path, source)`` where source is ``"hf-cache"`` (verified cached copy, no request made),
        ``"download"`` (fetched and verified) or, without ``sha256``, ``"hf-hub"`` (the revision was checked
        with the server, and the file fetched or its verified cached copy reused).

    Offline (``HF_HUB_OFFLINE``), or when the endpoint cannot be reached at all (no network, dead
    proxy) and nothing usable is cached, it fails at once, with no retries, with a
    :class:`~stzoo.errors.WeightsNotAvailableError` that names the file looked for: ``local_filename``
    (a zoo entry's ``<name>.safetensors`` in a local weights folder) as well as the Hub file.
    """
    validate_repo_id(repo_id)
    validate_filename(filename)
    if revision is not None:
        validate_revision(revision)
    what = what or f"{repo_id}/{filename}"
    looked = list(looked or [])
    rev = revision or "main"
    if sha256 is not None and not (isinstance(sha256, str) and _HEX64.fullmatch(sha256)):
        raise ChecksumError(
            f"{what}: {expected_by} gives {_short(sha256)} as the sha256 of {repo_id}/{filename}, "
            "which is not 64 lowercase hex digits: it is corrupt or was not written by stzoo."
        )
    if sha256 is not None:
        cached = cached_file(repo_id, filename, revision)
        if cached is not None:
            if sha256_file(cached) == sha256 and _check_problem(check, cached) is None:
                return cached, "hf-cache"
            log.warning("%s in the Hugging Face cache has the wrong sha256; deleting it and fetching again", cached)
            _purge_or_raise(cached, sha256, what)
        if hf_offline():
            raise WeightsNotAvailableError(
                _offline_message(what, repo_id, filename, revision, looked, name, local_filename)
            )
    elif hf_offline():
        cached = cached_file(repo_id, filename, revision)
        if cached is None:
            raise WeightsNotAvailableError(
                _offline_message(what, repo_id, filename, revision, looked, name, local_filename)
            )
        return _offline_cached(cached, check, what, repo_id, filename, revision, name), "hf-cache"

    deadline = _Deadline(hub_timeout(), what)
    repo_folder = _repo_cache_folder(repo_id)
    doing = f"downloading {repo_id}/{filename}@{rev} from {hf_endpoint()}"

    def reusable(path: Path, remote: _Remote) -> bool:
        if not path.is_file():
            return False
        if sha256 is not None:
            return sha256_file(path) == sha256
        return _cached_problem(path, remote.etag, remote.size) is None

    def once(cancel: threading.Event, scratch: dict[str, Any]) -> tuple[_Remote, Path | None, _Fetched | None]:
        remote = _head(repo_id, filename, revision, deadline)
        if sha256 is None and remote.size > MAX_UNPINNED_BYTES:
            raise HubError(
                f"{what}: {hf_endpoint()} announces {remote.size} bytes for {repo_id}/{filename}@"
                f"{remote.commit}; stzoo fetches at most {MAX_UNPINNED_BYTES} bytes for a file whose "
                "sha256 it does not know in advance (a config or a model card is a few KB). Nothing "
                "was written: the repo or the server is broken or hostile."
            )
        snap = repo_folder / "snapshots" / remote.commit / filename
        if reusable(snap, remote) and _check_problem(check, snap) is None:
            return remote, snap, None
        return remote, None, _get(remote, repo_folder, deadline, cancel, scratch)

    problem: str | None = None
    failure: StzooError | None = None
    actual = None
    for attempt in range(1, CHECKSUM_ATTEMPTS + 1):
        try:
            remote, reused, fetched = _with_retries(lambda: _bounded(once, deadline, doing), doing, deadline=deadline)
        except StzooError:
            raise
        except Exception as exc:
            if _is_unreachable(exc):
                if sha256 is None:  # as huggingface_hub does: a verified cached copy of the revision will do
                    cached = cached_file(repo_id, filename, revision)
                    if cached is not None and _cached_problem(cached) is None and _check_problem(check, cached) is None:
                        log.warning("%s cannot be reached; using the cached %s", hf_endpoint(), cached)
                        return cached, "hf-cache"
                reason = (
                    f"{hf_endpoint()} cannot be reached: {type(exc).__name__}: {_first_line(exc)[:200]}; "
                    "check the network, HF_ENDPOINT and proxy settings"
                )
                raise WeightsNotAvailableError(
                    _offline_message(
                        what, repo_id, filename, revision, looked, name, local_filename, unreachable=reason
                    )
                ) from exc
            raise _explain(exc, what, repo_id, filename, revision, looked, name, local_filename) from exc
        if reused is not None:
            _write_ref(repo_folder, revision, remote.commit)
            return reused, ("hf-hub" if sha256 is None else "hf-cache")
        assert fetched is not None
        actual = fetched.sha256
        if sha256 is not None and actual != sha256:
            fetched.tmp.unlink(missing_ok=True)
            if attempt < CHECKSUM_ATTEMPTS:
                log.warning(
                    "%s/%s@%s from %s has sha256 %s instead of %s; deleted it, downloading it once more",
                    repo_id,
                    filename,
                    remote.commit,
                    hf_endpoint(),
                    actual,
                    sha256,
                )
            continue
        if sha256 is None and not fetched.matches_etag:
            fetched.tmp.unlink(missing_ok=True)
            problem = (
                f"has sha256 {actual}, which does not match the ETag {remote.etag} the server announced for "
                "it: it was corrupted on the way, or the server changed its answer between requests"
            )
            log.warning(
                "%s/%s@%s from %s %s; deleted it, downloading it once more",
                repo_id,
                filename,
                remote.commit,
                hf_endpoint(),
                problem,
            )
            continue
        path = _place(fetched, remote, repo_folder, filename, revision)
        failure = _check_problem(check, path)
        if failure is None:
            return path, ("hf-hub" if sha256 is None else "download")
        _purge_or_raise(path, actual, what)
        problem = f"is not usable: {failure}"
        log.warning(
            "%s/%s@%s from %s %s; deleted it, downloading it once more",
            repo_id,
            filename,
            remote.commit,
            hf_endpoint(),
            problem,
        )
    source = f"{repo_id}/{filename}@{remote.commit} downloaded from {hf_endpoint()}"
    if sha256 is None:
        err = HubError(
            f"{what}: {source} {problem} (tried {CHECKSUM_ATTEMPTS} downloads). It was not used and "
            "nothing of it was kept in the Hugging Face cache. Try again; if it persists, the repo or "
            "the server (HF_ENDPOINT, a proxy) is at fault: please report it."
        )
        raise err from failure
    raise ChecksumError(
        f"{what}: {source} has sha256 {actual}, but {expected_by} expects {sha256} (tried {CHECKSUM_ATTEMPTS} "
        "downloads). It is not the released file (a wrong or tampered mirror, a corrupting proxy, or a rewritten "
        "repo), so it was not used and was deleted from the Hugging Face cache (nothing of it was kept). Check "
        "HF_ENDPOINT and try again; if it persists, please report it."
    )


def _offline_cached(
    cached: Path,
    check: Callable[[Path], object] | None,
    what: str,
    repo_id: str,
    filename: str,
    revision: str | None,
    name: str | None,
) -> Path:
    """A cached file used offline, if it still matches the hash its blob is named after and passes ``check``;
    otherwise it is deleted and :class:`ChecksumError` says to fetch it again."""
    problem = _cached_problem(cached)
    failure = None if problem else _check_problem(check, cached)
    if problem is None and failure is None:
        return cached
    target = name or f"hf-hub:{repo_id}" + (f"@{revision}" if revision else "")
    left = purge_cached_file(cached)
    gone = (
        "it was deleted from the cache"
        if not left
        else f"it could not be deleted ({', '.join(map(str, left))}): delete it by hand"
    )
    raise ChecksumError(
        f"{what}: the cached {repo_id}/{filename} ({cached}) {problem or f'is not usable: {failure}'}; {gone}. "
        f"HF_HUB_OFFLINE is set, so it cannot be fetched again here: run `stzoo download {target}` with network "
        "access."
    )


def _purge_or_raise(path: Path, sha256: str, what: str) -> None:
    """:func:`purge_cached_file`, or :class:`ChecksumError` if a bad file could not be deleted."""
    left = purge_cached_file(path, sha256)
    if left:
        raise ChecksumError(
            f"{what}: {path} in the Hugging Face cache does not have the expected sha256 {sha256}, and it "
            f"could not be deleted ({', '.join(map(str, left))}: is the cache read-only?). Delete "
            "those files by hand, then try again."
        )
