"""A non-editable install loads the default zoo models with no network.

The package is built into a wheel from a copy of the sources (so nothing is written into the checkout),
installed with ``pip install --target`` into a temporary folder, and imported from there in a fresh
process started in another folder, with HF_HUB_OFFLINE=1, an empty Hugging Face cache, no
STZOO_WEIGHTS_DIR and proxies pointing at a closed port: the shipped weights (package data) must be
found inside the installed package, verified and used. Skipped when the build backend (setuptools with
PEP 639 licence fields) or pip is not available; the build runs with ``--no-build-isolation`` and
``--no-index``, so it never downloads anything.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DEAD_PROXY = "http://127.0.0.1:9"  # the discard port: nothing listens


def _backend_or_skip() -> None:
    from importlib import metadata

    try:
        version = metadata.version("setuptools")
    except metadata.PackageNotFoundError:
        pytest.skip("setuptools (the build backend) is not installed")
    if tuple(int(p) for p in version.split(".")[:2] if p.isdigit()) < (77, 0):
        pytest.skip(f"setuptools {version} is older than the 77 that pyproject.toml's build-system needs")
    if subprocess.run([sys.executable, "-m", "pip", "--version"], capture_output=True, check=False).returncode != 0:
        pytest.skip("pip is not available")


def _shipped_files() -> dict[str, str]:
    """What the package ships in stzoo/weights: file name → sha256 (tests/zoo/test_hub_offline.py checks it
    against the manifest)."""
    folder = ROOT / "stzoo" / "weights"
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.glob("*.safetensors"))}


def _env(**extra: str) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("HF_", "HUGGINGFACE_", "PIP_"))
        and k.lower() not in ("http_proxy", "https_proxy", "all_proxy", "no_proxy")
    }
    env.pop("STZOO_WEIGHTS_DIR", None)
    env.pop("PYTHONPATH", None)
    env.update(
        PIP_NO_INDEX="1",
        PIP_DISABLE_PIP_VERSION_CHECK="1",
        PYTHONDONTWRITEBYTECODE="1",
        OMP_NUM_THREADS="1",
        HTTP_PROXY=DEAD_PROXY,
        HTTPS_PROXY=DEAD_PROXY,
        http_proxy=DEAD_PROXY,
        https_proxy=DEAD_PROXY,
        **extra,
    )
    return env


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    _backend_or_skip()
    tmp = tmp_path_factory.mktemp("wheel")
    src = tmp / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy2(ROOT / name, src / name)
    shutil.copytree(ROOT / "stzoo", src / "stzoo", ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info"))
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            str(src),
            "--no-deps",
            "--no-build-isolation",
            "--no-index",
            "-w",
            str(tmp / "dist"),
            "-q",
        ],
        env=_env(),
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    assert proc.returncode == 0, f"pip wheel failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    (found,) = (tmp / "dist").glob("stzoo-*.whl")
    return found


def test_wheel_ships_the_released_weights_manifest_and_license(wheel):
    with zipfile.ZipFile(wheel) as z:
        names = set(z.namelist())
        shipped = _shipped_files()
        assert "tau-mmnist-s.safetensors" in shipped  # the default tau-mmnist
        assert {n for n in names if n.startswith("stzoo/weights/")} == {f"stzoo/weights/{f}" for f in shipped}
        for filename, sha in shipped.items():
            assert hashlib.sha256(z.read(f"stzoo/weights/{filename}")).hexdigest() == sha, filename
        assert {"stzoo/weights_manifest.json", "stzoo/weights_manifest.schema.json"} <= names
        (meta,) = [n for n in names if n.endswith(".dist-info/METADATA")]
        text = z.read(meta).decode()
        assert "License-Expression: Apache-2.0" in text
        (lic,) = [n for n in names if n.endswith("dist-info/licenses/LICENSE")]
        body = z.read(lic).decode()
        for needle in ("Apache License", "Version 2.0, January 2004", "END OF TERMS AND CONDITIONS"):
            assert needle in body, needle
        assert not any(n.startswith(("tests/", "docs/", "weights/")) for n in names)  # only the package
        size = sum(i.file_size for i in z.infolist())
    # PyPI's default limit per file is 100 MB: past that, publish the larger releases on the Hub only
    assert size < 100e6, f"the wheel unpacks to {size / 1e6:.1f} MB"


CLIENT = r"""
import json, sys
from pathlib import Path
import numpy as np
import stzoo
from stzoo.zoo.hub import local_weights_dirs
from stzoo.zoo.manifest import get_entry
from stzoo.zoo.resolve import locate_weights
site = Path(sys.argv[1]).resolve()
loc = locate_weights(get_entry("tau-mmnist"))
p = stzoo.load("tau-mmnist")
frames = np.zeros((10, 64, 64), np.uint8)
frames[:, 20:30, 20:30] = 255
future = p.predict(frames)
print("@@" + json.dumps({"stzoo": stzoo.__file__, "source": loc.source, "path": str(loc.path),
                          "dirs": [str(d) for d in local_weights_dirs()], "shape": list(future.shape),
                          "dtype": str(future.dtype), "moving": float(future.std())}))
"""


def test_installed_wheel_loads_tau_mmnist_offline_from_another_folder(wheel, tmp_path):
    site = tmp_path / "site"
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "--no-index", "--target", str(site), str(wheel), "-q"],
        env=_env(),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, f"pip install --target failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    proc = subprocess.run(
        [sys.executable, "-c", CLIENT, str(site)],
        cwd=elsewhere,
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
        env=_env(PYTHONPATH=str(site), HF_HUB_OFFLINE="1", HF_HOME=str(tmp_path / "empty-hf-home")),
    )
    assert proc.returncode == 0, f"loading the installed wheel failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    got = json.loads(proc.stdout.split("@@", 1)[1])
    installed = site.resolve() / "stzoo"
    assert Path(got["stzoo"]).resolve().is_relative_to(installed), got  # not the checkout's editable copy
    assert got["source"] == "local"
    assert Path(got["path"]).resolve() == installed / "weights" / "tau-mmnist-s.safetensors"
    assert got["dirs"] == [str(installed / "weights")]
    assert got["shape"] == [10, 64, 64] and got["dtype"] == "uint8" and got["moving"] > 0
    assert not (tmp_path / "empty-hf-home" / "hub").exists()  # nothing fetched or cached
