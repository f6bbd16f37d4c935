"""Every entry of OpenSTL's catalogue, end to end, through a loopback release server.

For each ``openstl:<stem>`` (all 270 files: every one has a builder), the server serves a file in
OpenSTL's published layout (random weights at the entry's config, OpenSTL's tensor names, built by the
independent reference helpers, tests/helpers/openstl_zoo_files.py). Entries with the same method, config and
input shape share one file (built once per worker: the parametrisation is sorted so that they run together).

* ``test_entry_downloads_converts_and_verifies_offline`` — EVERY entry, in every CI run: downloads the file,
  converts it strictly with the entry's OpenSTL config into the cache folder, checks the folder's config
  (architecture, the dataset's frames / channels / size, units) and then finds it again offline, every file
  checked against the sha256 recorded at conversion.
* ``test_entry_end_to_end`` — download, convert, ``stzoo.load``, predict one frame at the dataset's shape
  (batch 1, in the dataset's natural units) and ``stzoo.load`` again offline. Paper-size models make this the
  heaviest test of the suite (up to a CPU-minute an entry for the recurrent models on 128×128 and 256×256
  frames), so by default it runs once per method kind (each kind with an entry on the small grids, datasets
  in turn; CrevNet, published for Moving MNIST only, runs end to end in tests/zoo/test_openstl_zoo.py); the
  forward at every dataset's config is also checked against OpenSTL's own (tests/convert/test_openstl_zoo_parity.py).

``STZOO_OPENSTL_SWEEP=all`` runs ``test_entry_end_to_end`` for every entry instead (what it cost when measured:
docs/openstl.md)."""

from __future__ import annotations

import functools
import json
import os
import shutil

import numpy as np
import pytest
from helpers import openstl_zoo_files as zf
from helpers.release_server import ReleaseServer

import stzoo
from stzoo.convert.openstl import zoo
from stzoo.convert.openstl.catalog import load_catalog

CATALOG = load_catalog()
DATASETS = CATALOG["datasets"]
ENTRIES = {s: e for s, e in CATALOG["checkpoints"].items() if zoo.arch_for(e) is not None}
ORDER = sorted(ENTRIES, key=lambda s: (zf.file_key(ENTRIES[s], DATASETS[ENTRIES[s]["dataset"]]), s))
#: ``STZOO_OPENSTL_SWEEP=all`` runs the end-to-end test for every loadable entry. By default it runs once per
#: method kind, on the small grids (TaxiBJ 32×32, WeatherBench 32×64), the datasets taken in turn (the image
#: datasets' uint8 path is covered at small size by tests/zoo/test_openstl_zoo.py), and every entry runs the
#: download → convert → offline-verify path.
SWEEP_ENV = "STZOO_OPENSTL_SWEEP"
SMALL_GRID = 32 * 64


def _covering(stems: list[str]) -> list[str]:
    """One entry per method kind, on the small-grid datasets taken in turn."""
    small = [
        s
        for s in stems
        if DATASETS[ENTRIES[s]["dataset"]]["height"] * DATASETS[ENTRIES[s]["dataset"]]["width"] <= SMALL_GRID
    ]
    datasets = sorted({ENTRIES[s]["dataset"] for s in small})
    kinds = sorted({str(zf.builder_for(ENTRIES[s])) for s in small})
    out: list[str] = []
    for i, kind in enumerate(kinds):
        of_kind = sorted(s for s in small if str(zf.builder_for(ENTRIES[s])) == kind)
        ds = datasets[i % len(datasets)]
        out.append(next((s for s in of_kind if ENTRIES[s]["dataset"] == ds), of_kind[0]))
    return [s for s in ORDER if s in out]


FULL = os.environ.get(SWEEP_ENV, "").lower() == "all"
SELECTED = ORDER if FULL else _covering(ORDER)
#: the entries that run only the conversion path (all of them unless the end-to-end test runs every entry)
CONVERTED = [] if FULL else ORDER


@functools.lru_cache(maxsize=1)  # one paper-size file in memory at a time; neighbours in ORDER share it
def _file(key: str, stem: str) -> bytes:
    entry = ENTRIES[stem]
    return zf.file_bytes(entry, DATASETS[entry["dataset"]])


class _Files(dict):
    """URL path → callable making that entry's bytes (shared through the key)."""

    def get(self, path, default=None):  # noqa: ANN001, ANN201
        stem = path.rsplit("/", 1)[-1].removesuffix(".pth")
        if stem not in ENTRIES or path != f"/{ENTRIES[stem]['tag']}/{stem}.pth":
            return default
        entry = ENTRIES[stem]
        return lambda: _file(zf.file_key(entry, DATASETS[entry["dataset"]]), stem)


@pytest.fixture(scope="module")
def server():
    with ReleaseServer() as srv:
        srv.files = _Files()
        yield srv


def _natural_frames(spec) -> np.ndarray:  # noqa: ANN001
    rng = np.random.default_rng(0)
    shape = (spec.frames_in, spec.channels, spec.height, spec.width)
    if spec.units is None:
        return rng.integers(0, 256, shape, dtype=np.uint8)
    lo, hi = spec.value_range
    u = spec.units
    return rng.uniform(u.offset + u.scale * lo, u.offset + u.scale * hi, shape).astype(np.float32)


def test_every_loadable_entry_has_a_builder():
    """No entry is skipped silently: every file whose method stzoo implements is served by the tests."""
    assert len(ENTRIES) == len(ORDER) > 0
    assert [s for s in ORDER if zf.builder_for(ENTRIES[s]) is None] == []


@pytest.mark.parametrize("stem", CONVERTED)
def test_entry_downloads_converts_and_verifies_offline(stem, server, tmp_path, monkeypatch):
    entry = ENTRIES[stem]
    monkeypatch.setenv("STZOO_CACHE", str(tmp_path))
    monkeypatch.setenv("STZOO_OPENSTL_ENDPOINT", server.url)
    monkeypatch.delenv("STZOO_OFFLINE", raising=False)
    try:
        folder, how = zoo.ensure_converted(f"openstl:{stem}", show_progress=False)
        assert how == "download" and folder == zoo.model_folder(f"openstl:{stem}")
        cfg = json.loads((folder / "config.json").read_text(encoding="utf-8"))
        assert cfg["architecture"] == zoo.arch_for(entry) and cfg["name"] == f"openstl:{stem}"
        t_in, t_out, c, h, w = zf.shape_of(entry, DATASETS[entry["dataset"]])
        got = cfg["input"]
        assert (got["frames_in"], got["frames_out"], got["channels"], got["height"], got["width"]) == (
            t_in,
            t_out,
            c,
            h,
            w,
        )
        assert got == {**zoo.describe(f"openstl:{stem}")["input"], **{k: got[k] for k in ("frames_in", "frames_out")}}
        notes = cfg["openstl"]["notes"]
        assert not [n for n in notes if "disagrees" in n], notes  # every published config imports as it is
        assert not (tmp_path / "openstl" / "downloads" / entry["file"]).exists()
        monkeypatch.setenv("STZOO_OFFLINE", "1")
        assert zoo.ensure_converted(f"openstl:{stem}") == (folder, "openstl-cache")  # every file re-hashed
    finally:
        shutil.rmtree(tmp_path / "openstl", ignore_errors=True)  # a paper-size folder per entry: do not keep it


@pytest.mark.parametrize("stem", SELECTED)
def test_entry_end_to_end(stem, server, tmp_path, monkeypatch):
    entry = ENTRIES[stem]
    ds = DATASETS[entry["dataset"]]
    monkeypatch.setenv("STZOO_CACHE", str(tmp_path))
    monkeypatch.setenv("STZOO_OPENSTL_ENDPOINT", server.url)
    monkeypatch.delenv("STZOO_OFFLINE", raising=False)
    try:
        p = stzoo.load(f"openstl:{stem}")
        t_in, t_out, c, h, w = zf.shape_of(entry, ds)
        assert (p.spec.frames_in, p.spec.frames_out, p.spec.channels, p.spec.height, p.spec.width) == (
            t_in,
            t_out,
            c,
            h,
            w,
        )
        assert p.entry.architecture == zoo.arch_for(entry)
        x = _natural_frames(p.spec)
        y = p.predict(x, horizon=1)
        assert y.shape == (1, c, h, w) and y.dtype == x.dtype
        monkeypatch.setenv("STZOO_OFFLINE", "1")
        q = stzoo.load(f"openstl:{stem}")
        assert q.entry.config == p.entry.config
    finally:
        shutil.rmtree(tmp_path / "openstl", ignore_errors=True)  # a paper-size folder per entry: do not keep it


# ---- stzoo-maint hub mirror 'openstl:*' against the loopback Hub ---------------------------------------------
_MIRROR_CHILD = """
import json, sys
import numpy as np
import stzoo
from stzoo.convert.openstl import zoo
pushed = {}
for pattern in sys.argv[2:]:
    pushed.update(zoo.mirror_to_hub(pattern, "org", log_fn=lambda line: None))
name = sys.argv[1]
p = stzoo.load("hf-hub:org/openstl-" + name)
q = stzoo.load("openstl:" + name)
s = p.spec
lo, hi = s.value_range
x = np.random.default_rng(0).uniform(s.units.offset + s.units.scale * lo, s.units.offset + s.units.scale * hi,
                                     (s.frames_in, s.channels, s.height, s.width)).astype(np.float32)
same = bool((p.predict(x, horizon=2) == q.predict(x, horizon=2)).all())
print(json.dumps({"pushed": sorted(pushed), "same": same, "source": p.entry.extra.get("source")}))
"""
#: mirrored by the test: five methods on TaxiBJ, then MAU on the four WeatherBench variables
MIRROR_PATTERNS = ("openstl:taxibj_p*", "openstl:weather_*_mau_*")


def test_hub_mirror_pushes_several_methods_and_datasets(server, tmp_path):
    import fnmatch
    import subprocess
    import sys
    from pathlib import Path

    from helpers.hf_server import FakeHub

    want = sorted(
        f"org/openstl-{s}" for s in ENTRIES if any(fnmatch.fnmatchcase(f"openstl:{s}", p) for p in MIRROR_PATTERNS)
    )
    assert len(want) >= 8 and len({ENTRIES[r.split("openstl-")[1]]["dataset"] for r in want}) >= 5
    assert len({ENTRIES[r.split("openstl-")[1]]["openstl_method"] for r in want}) >= 5
    with FakeHub() as hub:
        env = {
            **os.environ,
            "PYTHONPATH": str(Path(stzoo.__file__).resolve().parents[1]),
            "OMP_NUM_THREADS": "1",
            "HF_ENDPOINT": hub.url,
            "HF_HOME": str(tmp_path / "hf"),
            "HF_TOKEN": "hf_stzoo_test_token",
            "STZOO_CACHE": str(tmp_path / "cache"),
            "STZOO_OPENSTL_ENDPOINT": server.url,
        }
        for key in ("HF_HUB_OFFLINE", "STZOO_OFFLINE"):
            env.pop(key, None)
        run = subprocess.run(
            [sys.executable, "-c", _MIRROR_CHILD, "taxibj_predrnn_cos_ep50", *MIRROR_PATTERNS],
            env=env,
            capture_output=True,
            text=True,
            timeout=900,
        )
        assert run.returncode == 0, run.stderr[-3000:]
        out = json.loads(run.stdout.strip().splitlines()[-1])
        assert out["pushed"] == want and sorted(hub.repos) == want
        assert out["same"] and out["source"].startswith("hf-hub:org/openstl-taxibj_predrnn_cos_ep50@")
        for repo_id in want:
            repo = hub.repos[repo_id]
            files = repo["commits"][repo["refs"]["main"]]
            assert {"README.md", "config.json", "model.safetensors"} <= set(files)
            stem = repo_id.split("openstl-")[1]
            cfg = json.loads(files["config.json"])
            assert cfg["name"] == f"openstl:{stem}" and cfg["architecture"] == zoo.arch_for(ENTRIES[stem])
            assert cfg["openstl"]["url"] == f"{server.url}/{ENTRIES[stem]['tag']}/{stem}.pth"
            card = files["README.md"].decode()
            assert "## Origin" in card and "model-index:" in card.split("\n---")[0]
            assert "MSE (reported by OpenSTL)" in card  # OpenSTL's numbers, labelled as theirs
