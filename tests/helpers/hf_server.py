"""Hugging-Face-protocol servers for the hub tests, on 127.0.0.1 only.

* :class:`FakeHub`: a small in-process server speaking the parts of the Hub protocol that
  ``huggingface_hub`` uses to download (``HEAD``/``GET /{repo_id}/resolve/{revision}/{filename}`` with
  ``X-Repo-Commit``, ``ETag``, ``Content-Length``, ``Range``; ``X-Error-Code`` for errors) and to
  upload (``POST /api/repos/create``, ``/api/models/{repo}/preupload/{rev}`` answering "regular" for
  every file, ``/api/models/{repo}/commit/{rev}`` with the NDJSON payload). Faults can be queued per
  file (:meth:`FakeHub.fault`) or set for every request (:meth:`FakeHub.always`): an HTTP status (with
  headers such as ``Retry-After``), a body cut short after N bytes with the connection closed, hostile
  headers (``ETag: "../../x"``, ``X-Repo-Commit``), another body, a redirect, a stalled or dripping
  answer. Every request is logged, and ``GET /_test/log`` returns the log, so a client process can count
  requests.
* :class:`OlahServer`: the ``olah`` mirror (PyPI) in offline mode serving local git repos, started as a
  subprocess; used for the happy paths because it is a real, independent implementation.

Both are context managers and always stop (the server thread, or the subprocess) on exit.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections import defaultdict, deque
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class FakeHub:
    """An in-memory Hub: ``repos[repo_id] = {"refs": {name: commit}, "commits": {commit: {path: bytes}}}``."""

    def __init__(self) -> None:
        self.repos: dict[str, dict[str, Any]] = {}
        self.faults: dict[tuple[str, str], deque] = defaultdict(deque)  # (method, filename) -> faults
        self.standing: dict[tuple[str, str], dict[str, Any]] = {}  # (method, filename) -> fault, every time
        self.log: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.port = 0

    # ---- content ------------------------------------------------------------------------------
    def add_commit(
        self, repo_id: str, files: dict[str, bytes], *, branch: str = "main", tags: tuple[str, ...] = ()
    ) -> str:
        """Add a commit with ``files`` on top of ``branch`` (files merged with the parent's); return its id."""
        with self._lock:
            repo = self.repos.setdefault(repo_id, {"refs": {}, "commits": {}})
            parent = repo["refs"].get(branch)
            merged = dict(repo["commits"][parent]) if parent else {}
            merged.update(files)
            h = hashlib.sha1(
                repr((repo_id, parent, sorted((k, hashlib.sha256(v).hexdigest()) for k, v in merged.items()))).encode()
            )
            commit = h.hexdigest()
            repo["commits"][commit] = merged
            repo["refs"][branch] = commit
            for t in tags:
                repo["refs"][t] = commit
            return commit

    def fault(self, method: str, filename: str, *faults: dict[str, Any]) -> None:
        """Queue faults for the next requests ``method`` (HEAD/GET) of ``filename``. A fault is a dict of:

        * ``"status": 500`` (answer that error; ``"headers"`` are added, e.g. ``{"Retry-After": "3600"}``);
        * ``"truncate": nbytes`` (send that many bytes of the body, then close the connection);
        * ``"headers": {name: value or None}`` (replace / add / drop (None) response headers);
        * ``"body": bytes`` (send these bytes instead of the file; the ETag stays the file's);
        * ``"location": url`` (answer ``302`` to that URL, with the file's Hub headers);
        * ``"stall": seconds`` (wait that long before answering);
        * ``"drip": seconds`` (send the body one byte at a time, that long between bytes);
        * ``"drip_headers": seconds`` (send the status line and headers one byte at a time).
        """
        self.faults[(method, filename)].extend(faults)

    def always(self, method: str, filename: str, fault: dict[str, Any] | None) -> None:
        """Apply ``fault`` (see :meth:`fault`) to every request ``method`` of ``filename`` once the queued ones
        are used up; ``None`` removes it."""
        with self._lock:
            if fault is None:
                self.standing.pop((method, filename), None)
            else:
                self.standing[(method, filename)] = fault

    def requests(self, method: str | None = None, contains: str = "") -> list[dict[str, Any]]:
        with self._lock:
            return [r for r in self.log if (method is None or r["method"] == method) and contains in r["path"]]

    # ---- lifecycle ----------------------------------------------------------------------------
    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> FakeHub:
        hub = self

        class Handler(_Handler):
            fake = hub

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)


class _Handler(BaseHTTPRequestHandler):
    fake: FakeHub
    protocol_version = "HTTP/1.1"
    timeout = 10  # a stuck client connection cannot keep a handler thread forever

    def log_message(self, *args: object) -> None:  # keep pytest output clean
        pass

    # ---- helpers ------------------------------------------------------------------------------
    def _record(self) -> None:
        with self.fake._lock:
            self.fake.log.append(
                {
                    "method": self.command,
                    "path": self.path,
                    "authorization": self.headers.get("Authorization"),
                    "range": self.headers.get("Range"),
                }
            )

    def _reply(
        self,
        status: int,
        body: bytes = b"",
        headers: dict[str, str] | None = None,
        content_type: str = "application/json",
    ) -> None:
        self.send_response(status)
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _error(self, status: int, code: str | None, message: str, headers: dict[str, str] | None = None) -> None:
        h = dict(headers or {})
        if code:
            h["X-Error-Code"] = code
        h["X-Error-Message"] = message
        self._reply(status, json.dumps({"error": message}).encode(), h)

    def _json_body(self) -> Any:
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n)

    # ---- download -----------------------------------------------------------------------------
    def do_HEAD(self) -> None:
        self._resolve()

    def do_GET(self) -> None:
        if self.path.startswith("/_test/log"):
            with self.fake._lock:
                return self._reply(200, json.dumps(self.fake.log).encode())
        self._resolve()

    def _resolve(self) -> None:
        self._record()
        path = unquote(urlsplit(self.path).path)
        parts = path.lstrip("/").split("/")
        if len(parts) < 5 or parts[2] != "resolve":
            return self._error(404, None, f"no route {path}")
        repo_id, revision, filename = "/".join(parts[:2]), parts[3], "/".join(parts[4:])
        repo = self.fake.repos.get(repo_id)
        if repo is None:
            return self._error(401, "RepoNotFound", "Repository not found")
        commit = repo["refs"].get(revision) or (revision if revision in repo["commits"] else None)
        if commit is None:
            return self._error(404, "RevisionNotFound", "Invalid rev id: " + revision)
        files = repo["commits"][commit]
        if filename not in files:
            return self._error(404, "EntryNotFound", "Entry not found", {"X-Repo-Commit": commit})
        with self.fake._lock:
            queue = self.fake.faults.get((self.command, filename))
            fault = queue.popleft() if queue else self.fake.standing.get((self.command, filename))
        fault = fault or {}
        if fault.get("stall"):
            time.sleep(fault["stall"])
        if "status" in fault:
            return self._error(fault["status"], None, "injected failure", fault.get("headers"))
        data = files[filename]
        etag = '"' + hashlib.sha256(data).hexdigest() + '"'
        headers: dict[str, str | None] = {"X-Repo-Commit": commit, "ETag": etag, "Accept-Ranges": "bytes"}
        if "body" in fault:
            data = fault["body"]
        start = 0
        rng = self.headers.get("Range")
        if self.command == "GET" and rng and rng.startswith("bytes=") and rng.endswith("-"):
            start = int(rng[len("bytes=") : -1])
        body = data[start:]
        status = 206 if start else 200
        if "location" in fault:
            status, body = 302, b""
            headers.update({"Location": fault["location"], "X-Linked-Size": str(len(data)), "X-Linked-Etag": etag})
        if start:
            headers["Content-Range"] = f"bytes {start}-{len(data) - 1}/{len(data)}"
        headers.update({"Content-Type": "application/octet-stream", "Content-Length": str(len(body))})
        headers.update(fault.get("headers") or {})
        if fault.get("drip_headers"):
            head = (
                f"HTTP/1.1 {status} OK\r\n"
                + "".join(f"{k}: {v}\r\n" for k, v in headers.items() if v is not None)
                + "\r\n"
            )
            self.close_connection = True
            return self._drip(head.encode("latin-1"), fault["drip_headers"])
        self.send_response(status)
        for k, v in headers.items():
            if v is not None:
                self.send_header(k, v)
        self.end_headers()
        if self.command == "HEAD":
            return
        if fault.get("drip"):
            self.close_connection = True
            return self._drip(body, fault["drip"])
        if "truncate" in fault:
            self.wfile.write(body[: fault["truncate"]])
            self.wfile.flush()
            self.close_connection = True
            try:
                self.connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            return
        self.wfile.write(body)

    def _drip(self, data: bytes, every: float) -> None:
        """Send ``data`` one byte at a time, ``every`` seconds apart, until done or the client goes away."""
        for i in range(len(data)):
            try:
                self.wfile.write(data[i : i + 1])
                self.wfile.flush()
            except OSError:
                return
            time.sleep(every)

    # ---- upload -------------------------------------------------------------------------------
    def do_POST(self) -> None:
        self._record()
        raw = self._json_body()
        path = unquote(urlsplit(self.path).path)
        if path == "/api/validate-yaml":  # the Hub checks README.md metadata before a commit
            return self._reply(200, json.dumps({"errors": [], "warnings": []}).encode())
        if path == "/api/repos/create":
            req = json.loads(raw)
            repo_id = f"{req['organization']}/{req['name']}" if req.get("organization") else req["name"]
            if repo_id not in self.fake.repos:
                self.fake.add_commit(repo_id, {".gitattributes": b"*.safetensors filter=lfs\n"})
            return self._reply(200, json.dumps({"url": f"{self.fake.url}/{repo_id}", "name": repo_id}).encode())
        parts = path.lstrip("/").split("/")
        if len(parts) >= 6 and parts[:2] == ["api", "models"] and parts[4] in ("preupload", "commit"):
            repo_id, action, revision = "/".join(parts[2:4]), parts[4], "/".join(parts[5:])
            if repo_id not in self.fake.repos:
                return self._error(404, "RepoNotFound", "Repository not found")
            if action == "preupload":
                files = json.loads(raw)["files"]
                return self._reply(
                    200,
                    json.dumps(
                        {"files": [{"path": f["path"], "uploadMode": "regular", "shouldIgnore": False} for f in files]}
                    ).encode(),
                )
            added: dict[str, bytes] = {}
            for line in raw.decode().splitlines():
                item = json.loads(line)
                if item["key"] == "file":
                    added[item["value"]["path"]] = base64.b64decode(item["value"]["content"])
                elif item["key"] != "header":
                    return self._error(400, None, f"unsupported commit operation {item['key']}")
            commit = self.fake.add_commit(repo_id, added, branch=revision)
            return self._reply(
                200,
                json.dumps({"commitUrl": f"{self.fake.url}/{repo_id}/commit/{commit}", "commitOid": commit}).encode(),
            )
        return self._error(404, None, f"no route {path}")


# ---- olah ----------------------------------------------------------------------------------------
def olah_available() -> bool:
    return (
        shutil.which("olah-cli", path=str(Path(sys.executable).parent) + os.pathsep + os.environ.get("PATH", ""))
        is not None
    )


def git_commit_files(repo_dir: Path, files: dict[str, bytes], message: str, tag: str | None = None) -> str:
    """Commit ``files`` into the git repo at ``repo_dir`` (created if missing); return the commit id."""
    env = {
        **os.environ,
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@example.invalid",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@example.invalid",
    }
    git = ["git", "-C", str(repo_dir), "-c", "commit.gpgsign=false", "-c", "tag.gpgsign=false"]
    if not (repo_dir / ".git").exists():
        repo_dir.mkdir(parents=True, exist_ok=True)
        subprocess.run(["git", "init", "-q", "-b", "main", str(repo_dir)], check=True, env=env)
    for name, data in files.items():
        (repo_dir / name).write_bytes(data)
    subprocess.run(git + ["add", "-A"], check=True, env=env)
    subprocess.run(git + ["commit", "-q", "-m", message], check=True, env=env)
    if tag:
        subprocess.run(git + ["tag", tag], check=True, env=env)
    return subprocess.run(
        git + ["rev-parse", "HEAD"], check=True, env=env, capture_output=True, text=True
    ).stdout.strip()


class OlahServer:
    """``olah-cli`` in offline mirror mode over ``mirrors/models/<org>/<name>`` git repos in ``root``."""

    def __init__(self, root: Path, startup_timeout: float = 30.0) -> None:
        self.root = Path(root)
        self.mirrors = self.root / "mirrors"
        self.port = free_port()
        self.startup_timeout = startup_timeout
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> OlahServer:
        self.mirrors.mkdir(parents=True, exist_ok=True)
        config = self.root / "olah.toml"
        config.write_text(
            "[basic]\n"
            f'host = "127.0.0.1"\nport = {self.port}\n'
            f'repos-path = "{self.root / "repos"}"\n'
            f'mirrors-path = ["{self.mirrors}"]\n'
            f'mirror-netloc = "127.0.0.1:{self.port}"\n'
            "[accessibility]\noffline = true\n",
            encoding="utf-8",
        )
        exe = shutil.which("olah-cli", path=str(Path(sys.executable).parent) + os.pathsep + os.environ.get("PATH", ""))
        self.log_file = open(self.root / "olah.log", "wb")
        self.proc = subprocess.Popen(
            [exe, "-c", str(config)],
            cwd=self.root,
            stdout=self.log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                self.__exit__()
                raise RuntimeError(
                    f"olah exited with {self.proc.returncode}: "
                    f"{(self.root / 'olah.log').read_text(errors='replace')[-2000:]}"
                )
            try:
                urllib.request.urlopen(self.url + "/", timeout=1)
                return self
            except urllib.error.HTTPError:
                return self  # any HTTP answer means it is up
            except OSError:
                time.sleep(0.2)
        self.__exit__()
        raise RuntimeError(f"olah did not start within {self.startup_timeout} s")

    def __exit__(self, *exc: object) -> None:
        if self.proc is not None and self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)  # its own session: olah and its workers only
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=5)
        if getattr(self, "log_file", None) is not None:
            self.log_file.close()
