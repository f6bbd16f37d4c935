"""The documentation site builds offline with `mkdocs build --strict` (broken links, missing pages,
pages left out of the nav and unknown API objects all fail it)."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

pytest.importorskip("mkdocs", reason="mkdocs is not installed: pip install -e '.[docs]' (the test extra has it)")
pytest.importorskip("mkdocstrings", reason="mkdocstrings is not installed: pip install -e '.[docs]'")


def test_mkdocs_build_strict(tmp_path):
    site = tmp_path / "site"
    proc = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(site)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        env={**__import__("os").environ, "HF_HUB_OFFLINE": "1", "NO_PROXY": "*"},
    )
    assert proc.returncode == 0, f"mkdocs build --strict failed:\n{proc.stdout}\n{proc.stderr}"
    for page in (
        "index.html",
        "zoo/index.html",
        "models/tau-mmnist-s/index.html",
        "api/index.html",
        "hub/index.html",
        "assets/tau-mmnist-strip.png",
    ):
        assert (site / page).is_file(), page
    api = (site / "api" / "index.html").read_text(encoding="utf-8")
    assert "save_strip" in api and "Predictor" in api  # rendered from docstrings
    shutil.rmtree(site)
