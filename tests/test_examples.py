"""Every script in examples/ runs as written: `python examples/NAME.py` in a fresh empty folder, with the
network unavailable (HF_HUB_OFFLINE=1 and proxies pointing at a closed port) and a time limit. Examples
write only into their output folder (`--out DIR`, default a new temporary folder), never into the folder
they are run from (a checkout root, typically)."""

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


#: examples that write files (the others only print)
WRITERS = {
    "bring_your_own_data.py",
    "custom_architecture.py",
    "finetune_own_video.py",
    "hub_offline.py",
    "openstl_import.py",
    "predict_gif.py",
    "stream_webcam_like.py",
    "forecast_fields.py",
}


def run_example(script: Path, tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    env = {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "HF_HOME": str(tmp_path / "hf-home"),
        "HTTP_PROXY": DEAD_PROXY,
        "HTTPS_PROXY": DEAD_PROXY,
        "http_proxy": DEAD_PROXY,
        "https_proxy": DEAD_PROXY,
        "NO_PROXY": "",
        "no_proxy": "",
        "PYTHONDONTWRITEBYTECODE": "1",
        "TMPDIR": str(tmp_path / "tmp"),
    }  # where tempfile.mkdtemp puts the default output folder
    env.pop("STZOO_WEIGHTS_DIR", None)
    (tmp_path / "tmp").mkdir()
    work = tmp_path / "cwd"
    work.mkdir()
    proc = subprocess.run(
        [sys.executable, str(script), *args], cwd=work, env=env, capture_output=True, text=True, timeout=TIMEOUT_S
    )
    assert proc.returncode == 0, f"{script.name} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    assert proc.stdout.strip(), f"{script.name} printed nothing: examples should say what they did"
    left = sorted(p.name for p in work.iterdir())
    assert not left, f"{script.name} wrote {left} into the folder it was run from; write into --out instead"
    return proc


def files_under(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())


@pytest.mark.parametrize("script", EXAMPLES, ids=[p.stem for p in EXAMPLES])
def test_example_runs_offline(script, tmp_path):
    proc = run_example(script, tmp_path)
    made = [d for d in (tmp_path / "tmp").iterdir() if d.name.startswith("stzoo-example-")]
    if script.name in WRITERS:
        assert len(made) == 1 and files_under(made[0]), f"{script.name}: no output in a temporary folder"
        assert str(made[0]) in proc.stdout, f"{script.name} does not say where its outputs went"
    else:
        assert not made


def test_predict_gif_writes_into_the_named_output_folder(tmp_path):
    out = tmp_path / "named"
    proc = run_example(ROOT / "examples" / "predict_gif.py", tmp_path, "--out", str(out))
    assert files_under(out) == ["clip.gif", "forecast.gif", "future.gif", "strip.png"], proc.stdout
    assert not list((tmp_path / "tmp").iterdir())  # no temporary folder when --out is given
