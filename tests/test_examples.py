"""Every script in examples/ runs as written: `python examples/NAME.py` in a fresh empty folder, with the
network unavailable (HF_HUB_OFFLINE=1 and proxies pointing at a closed port) and a time limit."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = sorted((ROOT / "examples").glob("*.py"))
TIMEOUT_S = 180  # each must finish in < 60 s on 2 cores; this limit only catches hangs

DEAD_PROXY = "http://127.0.0.1:9"  # the discard port: nothing listens, so any request fails at once


def test_examples_exist():
    assert {"quickstart.py", "predict_gif.py", "hub_offline.py"} <= {p.name for p in EXAMPLES}


@pytest.mark.parametrize("script", EXAMPLES, ids=[p.stem for p in EXAMPLES])
def test_example_runs_offline(script, tmp_path):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf-home"),
           "HTTP_PROXY": DEAD_PROXY, "HTTPS_PROXY": DEAD_PROXY, "http_proxy": DEAD_PROXY,
           "https_proxy": DEAD_PROXY, "NO_PROXY": "", "no_proxy": "", "PYTHONDONTWRITEBYTECODE": "1"}
    env.pop("STZOO_WEIGHTS_DIR", None)
    work = tmp_path / "cwd"
    work.mkdir()
    proc = subprocess.run([sys.executable, str(script)], cwd=work, env=env, capture_output=True, text=True,
                          timeout=TIMEOUT_S)
    assert proc.returncode == 0, f"{script.name} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    assert proc.stdout.strip(), f"{script.name} printed nothing: examples should say what they did"
