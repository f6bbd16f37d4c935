"""The hostile-input harness: run one case in a subprocess with a memory and time limit and
check that stzoo refused it cleanly.

Clean = the case raised a :class:`stzoo.StzooError` (whose subclasses are ``ValueError`` /
``TypeError`` / ``FileNotFoundError``...) with a non-empty message, within the time limit, under the
memory limit. Anything else — success, a raw exception, a hang, a crash — is a leak.

Usage in a test::

    from helpers.hostile import refuse
    def test_bad_horizon():
        r = refuse("import stzoo; stzoo.load('tau-mmnist-s', pretrained=False).predict(x, horizon=10**9)",
                   match="horizon")

``refuse`` returns the case's result dict (``type``, ``message``, ``seconds``) for extra checks.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

from helpers import subprocess_env

RESULTS: list[dict] = []  # every case run in this session (conftest prints the count)


# One long-lived "zygote" per test process imports the slow third-party modules (torch, numpy, PIL) once
# and forks a child per case: each case still runs in its own process with its own memory limit, time
# limit, environment and working folder, and imports stzoo afresh, but skips the 1-2 s torch import.
_ZYGOTE = r"""
import json, os, resource, signal, sys, tempfile, time, traceback
import numpy, torch, PIL.Image  # noqa: F401  (shared with every case through fork)
for line in sys.stdin:
    req = json.loads(line)
    fd, result_path = tempfile.mkstemp(prefix="hostile-result-"); os.close(fd)
    fd, output_path = tempfile.mkstemp(prefix="hostile-output-"); os.close(fd)
    t0 = time.monotonic()
    pid = os.fork()
    if pid == 0:  # the case
        try:
            out = os.open(output_path, os.O_WRONLY)
            os.dup2(out, 1); os.dup2(out, 2)
            os.environ.clear(); os.environ.update(req["env"])
            os.chdir(req["cwd"])
            limit = req["mem_mb"] * 1024 * 1024
            resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
            res = {"raised": False}
            try:
                exec(compile(req["code"], "<hostile case>", "exec"), {"__name__": "__hostile__"})
            except BaseException as exc:  # noqa: BLE001 - the point is to classify it
                from stzoo.errors import StzooError
                res = {"raised": True, "type": type(exc).__name__, "module": type(exc).__module__,
                       "stzoo": isinstance(exc, StzooError), "message": str(exc),
                       "mro": [k.__name__ for k in type(exc).__mro__], "traceback": traceback.format_exc()[-2000:]}
            with open(result_path, "w") as f:
                json.dump(res, f)
        finally:
            os._exit(0)
    status = None
    while True:
        done, st = os.waitpid(pid, os.WNOHANG)
        if done:
            status = st
            break
        if time.monotonic() - t0 > req["timeout"]:
            os.kill(pid, signal.SIGKILL); os.waitpid(pid, 0)
            break
        time.sleep(0.005)
    seconds = time.monotonic() - t0
    with open(output_path, errors="replace") as f:
        output = f.read()[-2000:]
    try:
        with open(result_path) as f:
            res = json.load(f)
    except ValueError:
        res = {"raised": False, "hung": True} if status is None else \
              {"raised": False, "crashed": True, "returncode": os.waitstatus_to_exitcode(status)}
    for p in (result_path, output_path):
        os.unlink(p)
    res["seconds"], res["stderr"] = seconds, output
    sys.stdout.write(json.dumps(res) + "\n"); sys.stdout.flush()
"""
_zygote: subprocess.Popen | None = None


def _zygote_process() -> subprocess.Popen:
    global _zygote
    if _zygote is None or _zygote.poll() is not None:
        env = subprocess_env(OMP_NUM_THREADS="1")
        _zygote = subprocess.Popen(
            [sys.executable, "-c", _ZYGOTE], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env
        )
    return _zygote


def run_case(
    code: str,
    *,
    timeout: float = 60.0,
    mem_mb: int = 6144,
    env: dict | None = None,
    cwd: str | os.PathLike | None = None,
) -> dict:
    """Run ``code`` in a process of its own with ``mem_mb`` of address space and ``timeout`` seconds."""
    full_env = {**subprocess_env(OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1"), **(env or {})}
    z = _zygote_process()
    z.stdin.write(
        json.dumps(
            {
                "code": textwrap.dedent(code),
                "env": full_env,
                "cwd": str(cwd or os.getcwd()),
                "mem_mb": mem_mb,
                "timeout": timeout,
            }
        )
        + "\n"
    )
    z.stdin.flush()
    return json.loads(z.stdout.readline())


def refuse(code: str, *, match: str | None = None, within: float = 30.0, **kwargs) -> dict:
    """Assert that ``code`` is refused cleanly (see the module docstring); return the result."""
    r = run_case(code, timeout=max(within, 1.0) * 2, **kwargs)
    clean = bool(
        r.get("raised")
        and r.get("stzoo")
        and r.get("message")
        and r["seconds"] <= within
        and (match is None or match.lower() in r["message"].lower())
    )
    RESULTS.append({"code": code, "clean": clean})
    assert r.get("raised"), f"not refused ({'hung' if r.get('hung') else 'ran through'}): {r}"
    assert r.get("stzoo"), f"leaked {r.get('type')}: {r.get('message')}\n{r.get('traceback')}"
    assert r["message"], "empty message"
    assert r["seconds"] <= within, f"took {r['seconds']:.1f} s (limit {within} s)"
    if match is not None:
        assert match.lower() in r["message"].lower(), f"message does not mention {match!r}: {r['message']}"
    return r
