"""The hostile-input harness: run one case in a subprocess with a memory and time limit and
check that stzoo refused it cleanly.

Clean = the case raised a :class:`stzoo.StzooError` (whose subclasses are ``ValueError`` /
``TypeError`` / ``FileNotFoundError``...) with a non-empty message, within the time limit, under the
memory limit. Anything else — success, a raw exception, a hang, a crash — is a leak.

Usage in a test::

    from hostile import refuse
    def test_bad_horizon():
        r = refuse("import stzoo; stzoo.load('tau-mmnist-s', pretrained=False).predict(x, horizon=10**9)",
                   match="horizon")

``refuse`` returns the case's result dict (``type``, ``message``, ``seconds``) for extra checks.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import textwrap
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RESULTS: list[dict] = []  # every case run in this session (conftest prints the count)

_WRAPPER = r'''
import json, sys, traceback
out = {"raised": False}
try:
    exec(compile(sys.stdin.read(), "<hostile case>", "exec"), {"__name__": "__hostile__"})
except BaseException as exc:  # noqa: BLE001 - the point is to classify it
    from stzoo.errors import StzooError
    out = {"raised": True, "type": type(exc).__name__, "module": type(exc).__module__,
           "stzoo": isinstance(exc, StzooError), "message": str(exc),
           "mro": [k.__name__ for k in type(exc).__mro__],
           "traceback": traceback.format_exc()[-2000:]}
sys.stdout.write("\n@@HOSTILE@@" + json.dumps(out))
'''


def _limits(mem_mb: int):
    def apply() -> None:
        limit = mem_mb * 1024 * 1024
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    return apply


def run_case(code: str, *, timeout: float = 60.0, mem_mb: int = 6144, env: dict | None = None,
             cwd: str | os.PathLike | None = None) -> dict:
    """Run ``code`` in a fresh Python with ``mem_mb`` of address space and ``timeout`` seconds."""
    full_env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1",
                "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""), **(env or {})}
    t0 = time.monotonic()
    try:
        proc = subprocess.run([sys.executable, "-c", _WRAPPER], input=textwrap.dedent(code), text=True,
                              capture_output=True, timeout=timeout, env=full_env, cwd=cwd,
                              preexec_fn=_limits(mem_mb))
    except subprocess.TimeoutExpired:
        return {"raised": False, "hung": True, "seconds": time.monotonic() - t0}
    seconds = time.monotonic() - t0
    marker = proc.stdout.rfind("@@HOSTILE@@")
    if marker < 0:
        return {"raised": False, "crashed": True, "returncode": proc.returncode, "seconds": seconds,
                "stderr": proc.stderr[-2000:]}
    out = json.loads(proc.stdout[marker + len("@@HOSTILE@@"):])
    out["seconds"] = seconds
    out["stderr"] = proc.stderr[-2000:]
    return out


def refuse(code: str, *, match: str | None = None, within: float = 30.0, **kwargs) -> dict:
    """Assert that ``code`` is refused cleanly (see the module docstring); return the result."""
    r = run_case(code, timeout=max(within, 1.0) * 2, **kwargs)
    clean = bool(r.get("raised") and r.get("stzoo") and r.get("message") and r["seconds"] <= within
                 and (match is None or match.lower() in r["message"].lower()))
    RESULTS.append({"code": code, "clean": clean})
    assert r.get("raised"), f"not refused ({'hung' if r.get('hung') else 'ran through'}): {r}"
    assert r.get("stzoo"), f"leaked {r.get('type')}: {r.get('message')}\n{r.get('traceback')}"
    assert r["message"], "empty message"
    assert r["seconds"] <= within, f"took {r['seconds']:.1f} s (limit {within} s)"
    if match is not None:
        assert match.lower() in r["message"].lower(), f"message does not mention {match!r}: {r['message']}"
    return r
