"""Downloading one release file over plain HTTP(S) (GitHub release assets, a mirror, a test server) into a
path stzoo chooses: :func:`fetch_file`.

The Hub has its own protocol (:mod:`stzoo.zoo.download`); a release asset is just a URL. The same rules
hold (docs/security.md): the server is not trusted, so

* no server string ever becomes a path: the caller names the destination (a file in stzoo's cache
  named after a catalogue entry), the body goes to ``<dest>.part`` next to it and is renamed into place
  only when whole (and, where a sha256 is pinned, verified);
* redirects are followed only to ``http://`` / ``https://`` URLs, at most :data:`MAX_REDIRECTS` of them;
* a size bound (``max_bytes``) is checked against the announced ``Content-Length`` before the body is
  read and against the bytes actually received while reading;
* a broken transfer (dropped connection, a body shorter than announced) keeps its ``.part`` file and the
  next attempt asks for the rest with an HTTP ``Range``; the answer must be ``206`` with a
  ``Content-Range`` that starts where the partial file ends and agrees on the total, else the partial
  file is dropped and the file fetched from the start;
* HTTP 5xx / 408 / 429 and dropped connections are retried (:data:`DOWNLOAD_ATTEMPTS` in all) with a
  doubling back-off; a ``Retry-After`` is honoured up to :data:`~stzoo.zoo.download.MAX_RETRY_AFTER_S`;
* the whole call has a deadline (``$STZOO_DOWNLOAD_TIMEOUT`` seconds, default
  :data:`DEFAULT_DOWNLOAD_TIMEOUT_S`), so a server dripping bytes cannot hang a ``load``;
* ``$STZOO_OFFLINE=1`` or ``$HF_HUB_OFFLINE=1`` means no request at all (:func:`offline`).

Concurrent processes are the caller's business: hold :func:`file_lock` on the destination around the
download and whatever is built from it.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import re
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urljoin, urlsplit

from stzoo.errors import StzooError, WeightsNotAvailableError
from stzoo.zoo.download import MAX_RETRY_AFTER_S, env_seconds, retry_after_seconds
from stzoo.zoo.hub import ChecksumError, HubError, HubTimeoutError, _short

__all__ = [
    "fetch_file",
    "Fetched",
    "file_lock",
    "offline",
    "download_timeout",
    "OFFLINE_ENV",
    "DOWNLOAD_TIMEOUT_ENV",
    "DEFAULT_DOWNLOAD_TIMEOUT_S",
    "DOWNLOAD_ATTEMPTS",
    "MAX_REDIRECTS",
]

log = logging.getLogger(__name__)

#: Environment variable: ``1`` / ``true`` / ``yes`` / ``on`` means no network request at all.
OFFLINE_ENV = "STZOO_OFFLINE"
#: Environment variable: the overall deadline of one :func:`fetch_file` call, in seconds.
DOWNLOAD_TIMEOUT_ENV = "STZOO_DOWNLOAD_TIMEOUT"
DEFAULT_DOWNLOAD_TIMEOUT_S = 1800.0
#: Seconds one connect / one read may block (cut to what is left of the deadline).
CONNECT_TIMEOUT_S = 10.0
READ_TIMEOUT_S = 30.0
#: Requests per call (first try, retries and resumes together) before giving up.
DOWNLOAD_ATTEMPTS = 5
#: Seconds before the second attempt; doubled for each further one.
RETRY_WAIT_S = 1.0
#: Redirects followed per request (GitHub sends one, to its asset store).
MAX_REDIRECTS = 5
_TRANSIENT_STATUS = frozenset({408, 429, 500, 502, 503, 504})
_CHUNK = 1 << 16
_TRUE = {"1", "true", "yes", "on"}


def offline() -> bool:
    """Whether stzoo may not use the network: ``$STZOO_OFFLINE`` or ``$HF_HUB_OFFLINE`` is on."""
    return any(os.environ.get(k, "").strip().lower() in _TRUE for k in (OFFLINE_ENV, "HF_HUB_OFFLINE"))


def download_timeout() -> float:
    """The deadline of one :func:`fetch_file` call: ``$STZOO_DOWNLOAD_TIMEOUT`` seconds, else
    :data:`DEFAULT_DOWNLOAD_TIMEOUT_S`. Raises :class:`~stzoo.errors.InputError` for a value that is not a
    positive number."""
    return env_seconds(DOWNLOAD_TIMEOUT_ENV, DEFAULT_DOWNLOAD_TIMEOUT_S, 3600)


@contextlib.contextmanager
def file_lock(path: Path, timeout: float | None = None) -> Iterator[None]:
    """Hold an inter-process lock named after ``path`` (``.<name>.lock`` next to it) for the block.

    Two processes that load the same entry at once: the second waits for the first and then finds its
    result. ``timeout`` defaults to :func:`download_timeout` (+ a minute for what is built after it)."""
    from filelock import FileLock, Timeout

    path.parent.mkdir(parents=True, exist_ok=True)
    lock_path = path.with_name(f".{path.name}.lock")
    wait = download_timeout() + 60.0 if timeout is None else timeout
    lock = FileLock(str(lock_path), timeout=wait)
    try:
        lock.acquire()
    except Timeout:
        raise HubTimeoutError(
            f"another process has held {lock_path} for more than {wait:g} s (it is downloading or converting "
            f"{path.name}); wait for it, or delete the lock file if no such process is running"
        ) from None
    try:
        yield
    finally:
        lock.release()


@dataclass(frozen=True)
class Fetched:
    """A file :func:`fetch_file` put in place: its path, sha256 and size, and whether it was downloaded
    now (``False``: a complete copy was already there)."""

    path: Path
    sha256: str
    size: int
    downloaded: bool


class _Retry(Exception):
    """A failure another attempt may cure (HTTP 5xx, a dropped connection); ``wait`` from Retry-After."""

    def __init__(self, message: str, wait: float | None = None) -> None:
        super().__init__(message)
        self.wait = wait


def _check_url(url: str, what: str) -> str:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise HubError(f"{what}: refusing {_short(url, 200)}: only http:// and https:// URLs are fetched")
    return url


def _progress(total: int | None, initial: int, desc: str, show: bool | None) -> Any:
    from tqdm.auto import tqdm

    show = sys.stderr.isatty() if show is None else show
    return tqdm(
        total=total, initial=initial, unit="B", unit_scale=True, unit_divisor=1024, desc=desc[:40], disable=not show
    )


_CONTENT_RANGE = re.compile(r"bytes (\d{1,18})-(\d{1,18})/(\d{1,18}|\*)")


def _open(session: Any, url: str, have: int, deadline: float, what: str) -> tuple[Any, str]:
    """GET ``url`` (``Range: bytes=<have>-`` when ``have``), following http(s) redirects by hand."""
    headers = {"Accept-Encoding": "identity", "User-Agent": "stzoo"}
    if have:
        headers["Range"] = f"bytes={have}-"
    for _ in range(MAX_REDIRECTS + 1):
        left = deadline - time.monotonic()
        if left <= 0:
            raise _Deadline()
        timeout = (min(CONNECT_TIMEOUT_S, left), min(READ_TIMEOUT_S, left))
        response = session.get(url, headers=headers, stream=True, allow_redirects=False, timeout=timeout)
        if response.status_code in (301, 302, 303, 307, 308):
            location = response.headers.get("Location")
            response.close()
            if not location:
                raise HubError(f"{what}: {_short(url, 200)} answered a redirect without a Location")
            url = _check_url(urljoin(url, location), what)
            continue
        return response, url
    raise HubError(f"{what}: more than {MAX_REDIRECTS} redirects from {_short(url, 200)}; refused")


class _Deadline(Exception):
    """The overall deadline passed (raised inside the worker)."""


class _Unreachable(_Retry):
    """The server could not be reached at all (no route, refused, DNS, connect timeout)."""


_UNREACHABLE = frozenset(
    {"NewConnectionError", "NameResolutionError", "ConnectTimeoutError", "ProxyError", "ConnectTimeout"}
)


def _unreachable(exc: BaseException) -> bool:
    seen: set[int] = set()
    stack: list[BaseException | None] = [exc]
    while stack:
        e = stack.pop()
        if e is None or id(e) in seen:
            continue
        seen.add(id(e))
        if any(c.__name__ in _UNREACHABLE or c is ConnectionRefusedError for c in type(e).__mro__):
            return True
        reason = getattr(e, "reason", None)
        stack += [
            e.__cause__,
            e.__context__,
            reason if isinstance(reason, BaseException) else None,
            *(a for a in getattr(e, "args", ()) if isinstance(a, BaseException)),
        ]
    return False


def _transfer(
    session: Any,
    url: str,
    part: Path,
    max_bytes: int,
    deadline: float,
    cancel: threading.Event,
    scratch: dict[str, Any],
    what: str,
    show: bool | None,
) -> int:
    """One request: append the rest of the file to ``part`` (or restart it); returns the file's size."""
    import requests

    have = part.stat().st_size if part.exists() else 0
    try:
        response, final = _open(session, url, have, deadline, what)
    except requests.RequestException as exc:
        kind = _Unreachable if _unreachable(exc) else _Retry
        raise kind(f"{type(exc).__name__}: {str(exc)[:200]}") from exc
    scratch["response"] = response
    with response:
        status = response.status_code
        if status in (404, 410):
            raise WeightsNotAvailableError(f"HTTP {status}")
        if status in _TRANSIENT_STATUS:
            raise _Retry(f"HTTP {status}", retry_after_seconds(response.headers.get("Retry-After")))
        if status == 416 and have:  # the partial file is not a prefix the server recognises: start over
            part.unlink(missing_ok=True)
            raise _Retry("HTTP 416 for the resumed range; starting over", 0.0)
        if status not in (200, 206):
            raise HubError(f"{what}: {_short(final, 200)} answered HTTP {status}")
        raw_len = response.headers.get("Content-Length")
        length = int(raw_len) if raw_len and re.fullmatch(r"\s*\d{1,18}\s*", raw_len) else None
        total: int | None
        if status == 206:
            m = _CONTENT_RANGE.fullmatch((response.headers.get("Content-Range") or "").strip())
            if not have or not m or int(m.group(1)) != have or m.group(3) == "*":
                # a range we did not ask for, or one that does not continue our file: start over
                log.warning("%s: the server's Content-Range does not continue the partial file; restarting", what)
                part.unlink(missing_ok=True)
                raise _Retry("a Content-Range that does not continue the partial file", 0.0)
            total = int(m.group(3))
            if int(m.group(2)) != total - 1 or (length is not None and length != total - have):
                part.unlink(missing_ok=True)
                raise _Retry("an inconsistent Content-Range / Content-Length", 0.0)
        else:
            if have:
                log.info("%s: the server ignored the Range request; downloading from the start", what)
            have = 0
            total = length
        if total is not None and total > max_bytes:
            raise HubError(
                f"{what}: {_short(final, 200)} announces {total} bytes, more than the {max_bytes} stzoo accepts "
                "for this file; nothing was downloaded. The server or a proxy is broken or hostile."
            )
        if cancel.is_set():
            raise _Deadline()
        count = have
        bar = _progress(total, have, part.name.removesuffix(".part"), show)
        try:
            with open(part, "ab" if have else "wb") as f:
                for chunk in response.iter_content(_CHUNK):
                    if cancel.is_set():
                        raise _Deadline()
                    count += len(chunk)
                    if count > max_bytes or (total is not None and count > total):
                        f.close()
                        part.unlink(missing_ok=True)
                        limit = total if total is not None and total <= max_bytes else max_bytes
                        raise HubError(
                            f"{what}: {_short(final, 200)} sent more than {limit} bytes "
                            f"({'announced' if limit == total else 'the limit'}); the file was refused and deleted"
                        )
                    f.write(chunk)
                    bar.update(len(chunk))
        except requests.RequestException as exc:
            raise _Retry(f"the connection dropped after {count} bytes: {type(exc).__name__}") from exc
        finally:
            bar.close()
        if total is not None and count < total:
            raise _Retry(f"the transfer ended after {count} of {total} bytes")
        return count


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            h.update(block)
    return h.hexdigest()


def fetch_file(
    url: str,
    dest: Path,
    *,
    max_bytes: int,
    sha256: str | None = None,
    what: str | None = None,
    show_progress: bool | None = None,
    session: Any = None,
    reuse: bool = True,
) -> Fetched:
    """Download ``url`` to ``dest`` (a path stzoo chose), resumably and within a deadline.

    Args:
        url: an ``http://`` or ``https://`` URL.
        dest: where the file goes; ``<dest>.part`` holds an unfinished download between attempts and calls.
        max_bytes: the largest body accepted (announced or received).
        sha256: the file's pinned sha256 (64 hex), or ``None`` when none is known. A complete download that
            does not match is deleted and fetched once more, then :class:`~stzoo.zoo.hub.ChecksumError`.
        what: what is being fetched, for messages (default: the URL).
        show_progress: a progress bar on stderr (default: when stderr is a terminal).
        session: a ``requests.Session`` (default: a new one).
        reuse: use a complete ``dest`` that is already there (checked against ``sha256`` when given).

    Raises:
        WeightsNotAvailableError: offline (:func:`offline`), the server cannot be reached, answers 404,
            or keeps failing; the message names the URL and ``dest``.
        ChecksumError: the pinned sha256 does not match (twice); nothing is kept.
        HubError: a hostile or broken answer (a redirect to another scheme, too many bytes, ...).
        HubTimeoutError: past the deadline (:func:`download_timeout`); the partial file is deleted.
    """
    import requests

    what = what or url
    _check_url(url, what)
    dest = Path(dest)
    part = dest.with_name(dest.name + ".part")
    if reuse and dest.is_file():
        digest = _sha256(dest)
        if sha256 is None or digest == sha256:
            return Fetched(dest, digest, dest.stat().st_size, False)
        log.warning("%s: %s has sha256 %s, not the pinned %s; deleting it", what, dest, digest, sha256)
        dest.unlink(missing_ok=True)
    if offline():
        raise WeightsNotAvailableError(
            f"{what}: {dest} is not in stzoo's cache and {OFFLINE_ENV} / HF_HUB_OFFLINE forbid downloading "
            f"{url}. Run the same call once with network access (or copy {dest.name} there), or unset "
            f"{OFFLINE_ENV} / HF_HUB_OFFLINE."
        )
    dest.parent.mkdir(parents=True, exist_ok=True)
    seconds = download_timeout()
    deadline = time.monotonic() + seconds
    session = session or requests.Session()
    wait = RETRY_WAIT_S
    bad_sums = 0
    last = ""
    attempt = 0
    while True:
        attempt += 1
        cancel = threading.Event()
        scratch: dict[str, Any] = {}
        box: dict[str, Any] = {}

        def work(
            cancel: threading.Event = cancel, scratch: dict[str, Any] = scratch, box: dict[str, Any] = box
        ) -> None:
            try:
                box["size"] = _transfer(session, url, part, max_bytes, deadline, cancel, scratch, what, show_progress)
            except BaseException as exc:  # noqa: BLE001 - handed to the waiting thread
                box["error"] = exc

        worker = threading.Thread(target=work, name="stzoo-release-download", daemon=True)
        worker.start()
        try:
            worker.join(max(deadline - time.monotonic(), 0.0))
        except BaseException:  # Ctrl-C: stop the worker; the partial file stays for a resume
            cancel.set()
            raise
        if worker.is_alive() or isinstance(box.get("error"), _Deadline):
            cancel.set()  # the worker stops at its next chunk (it may be blocked in a read: it is not waited for)
            part.unlink(missing_ok=True)
            raise HubTimeoutError(
                f"{what}: downloading {url} did not finish within the {seconds:g} s deadline "
                f"({DOWNLOAD_TIMEOUT_ENV}){f' (last problem: {last})' if last else ''}. The server is too slow, "
                f"stalled or asks to wait too long; the partial file was deleted. Try again later, or raise "
                f"the deadline, e.g. {DOWNLOAD_TIMEOUT_ENV}={max(int(seconds) * 4, 3600)}."
            )
        error = box.get("error")
        if error is None:
            digest = _sha256(part)
            if sha256 is not None and digest != sha256:
                part.unlink(missing_ok=True)
                bad_sums += 1
                if bad_sums >= 2:
                    raise ChecksumError(
                        f"{what}: {url} gave a file with sha256 {digest}, but stzoo pins {sha256} for it "
                        "(tried twice). It is not the published file (a wrong or tampered mirror, or a "
                        "corrupting proxy); it was deleted and nothing was cached."
                    )
                log.warning(
                    "%s: sha256 %s is not the pinned %s; deleted it, downloading once more", what, digest, sha256
                )
                continue
            os.replace(part, dest)
            return Fetched(dest, digest, box["size"], True)
        if isinstance(error, WeightsNotAvailableError):
            part.unlink(missing_ok=True)
            raise WeightsNotAvailableError(
                f"{what}: {url} answered {error} (not found). Nothing was cached at {dest}. Check the name "
                "(stzoo.list_models('openstl:*')) and the endpoint (STZOO_OPENSTL_ENDPOINT for OpenSTL files)."
            ) from None
        if isinstance(error, _Unreachable) and attempt == 1 and not part.exists():
            raise WeightsNotAvailableError(
                f"{what}: cannot reach {url} ({error}); {dest} is not cached. Check the network and proxy "
                f"settings (or the endpoint), or copy the file to {dest}, or set {OFFLINE_ENV}=1 to use only "
                "what is cached."
            ) from None
        if not isinstance(error, _Retry):
            if isinstance(error, StzooError):
                raise error
            raise WeightsNotAvailableError(
                f"{what}: downloading {url} to {dest} failed: {type(error).__name__}: {str(error)[:300]}"
            ) from error
        last = str(error)
        if attempt >= DOWNLOAD_ATTEMPTS:
            kept = f"; the partial file {part} is kept and the next try resumes it" if part.exists() else ""
            raise WeightsNotAvailableError(
                f"{what}: downloading {url} failed {attempt} times (last: {last}){kept}. Nothing was cached at "
                f"{dest}. Check the network and try again."
            )
        pause = (
            wait
            if error.wait is None
            else (0.0 if error.wait == 0.0 else max(wait, min(error.wait, MAX_RETRY_AFTER_S)))
        )
        if pause >= deadline - time.monotonic():
            raise HubTimeoutError(
                f"{what}: {url} failed ({last}) and waiting {pause:g} s more would pass the {seconds:g} s deadline "
                f"({DOWNLOAD_TIMEOUT_ENV}); nothing was cached at {dest}. Try again later."
            )
        log.warning("%s: %s; retrying in %.1f s (attempt %d of %d)", what, last, pause, attempt + 1, DOWNLOAD_ATTEMPTS)
        time.sleep(pause)
        if error.wait != 0.0:
            wait *= 2
