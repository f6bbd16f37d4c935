"""A loopback HTTP server standing in for GitHub's release downloads (``<base>/<tag>/<file>``), with faults.

``files`` maps a URL path (``/<tag>/<file>``) to its bytes, or to a zero-argument callable that makes them at
each request (cache in the callable). ``faults[path]`` is a list of behaviours, one taken per request (then
normal service): ``"500"`` / ``"503"`` / ``"429"`` (with ``Retry-After: 0``), ``"404"``, ``"drop:N"`` (send N
bytes of the body, announced whole, then close the connection), ``"ignore-range"`` (answer 200 with the whole
file even to a Range request), ``"bad-range"`` (206 with a Content-Range that does not start where asked),
``"wrong-bytes"`` (same length, last byte flipped), ``"lie-length:N"`` (announce N bytes, send the file),
``"redirect:URL"`` (302 to URL), ``"huge"`` (announce 10^15 bytes), ``"slow"`` (a byte a second). Every request
is recorded in ``log`` as ``(path, range header or None, status)``."""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

__all__ = ["ReleaseServer"]


class ReleaseServer:
    def __init__(self, files: dict[str, bytes | Callable[[], bytes]] | None = None) -> None:
        self.files: dict[str, Any] = dict(files or {})
        self.faults: dict[str, list[str]] = {}
        self.log: list[tuple[str, str | None, int]] = []
        self._lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def _send(self, status: int, headers: dict[str, str], body: bytes = b"") -> None:
                server.log.append((self.path, self.headers.get("Range"), status))
                self.send_response(status)
                for k, v in headers.items():
                    self.send_header(k, v)
                self.end_headers()
                if body:
                    self.wfile.write(body)

            def do_GET(self) -> None:  # noqa: N802
                path = self.path.split("?")[0]
                with server._lock:
                    fault = server.faults.get(path, [None]).pop(0) if server.faults.get(path) else None
                    data = server.files.get(path)
                if callable(data):  # made on request (the caller may cache it)
                    data = data()
                if fault in ("500", "503", "429"):
                    return self._send(int(fault), {"Content-Length": "0", "Retry-After": "0"})
                if fault == "404" or data is None:
                    return self._send(404, {"Content-Length": "9"}, b"not found")
                if fault and fault.startswith("redirect:"):
                    return self._send(302, {"Location": fault[len("redirect:") :], "Content-Length": "0"})
                if fault == "huge":
                    self._send(200, {"Content-Length": str(10**15)})
                    return
                if fault == "wrong-bytes":
                    data = data[:-1] + bytes([data[-1] ^ 0xFF])
                rng = self.headers.get("Range")
                m = re.fullmatch(r"bytes=(\d+)-", rng or "")
                if m and fault != "ignore-range" and int(m.group(1)) < len(data):
                    start = int(m.group(1))
                    if fault == "bad-range":
                        start = max(start - 1, 0)
                    body = data[start:]
                    headers = {
                        "Content-Length": str(len(body)),
                        "Content-Range": f"bytes {start}-{len(data) - 1}/{len(data)}",
                    }
                    status = 206
                else:
                    body, headers, status = data, {"Content-Length": str(len(data))}, 200
                if fault and fault.startswith("lie-length:"):
                    headers["Content-Length"] = fault.split(":")[1]
                if fault and fault.startswith("drop:"):
                    n = int(fault.split(":")[1])
                    self._send(status, headers, body[:n])
                    self.close_connection = True
                    return
                if fault == "slow":
                    self._send(status, headers)
                    for i in range(len(body)):
                        self.wfile.write(body[i : i + 1])
                        self.wfile.flush()
                        time.sleep(1.0)
                    return
                self._send(status, headers, body)

        class Quiet(ThreadingHTTPServer):
            def handle_error(self, request: Any, client_address: Any) -> None:
                pass  # a client that gave up (deadline tests) resets the connection: not an error here

        self.httpd = Quiet(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def __enter__(self) -> ReleaseServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def requests(self, path: str) -> list[tuple[str | None, int]]:
        return [(r, s) for p, r, s in self.log if p == path]
