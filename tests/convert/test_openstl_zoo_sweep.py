"""Every loadable entry of OpenSTL's catalogue, end to end, through a loopback release server.

For each ``openstl:<stem>`` whose method stzoo implements, the server serves a file in OpenSTL's published
layout (random weights at the entry's config, OpenSTL's tensor names, built by the independent reference
helpers); the test downloads, converts, loads, predicts one frame at the dataset's shape (batch 1, in the
dataset's natural units), and loads again offline from the cache. Entries with the same method, config and
input shape share one file (built once per worker: the parametrisation is sorted so that they run together).
Paper-size models make this the heaviest test of the suite; see docs/openstl.md for what it costs."""

from __future__ import annotations

import functools
import os
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from helpers import openstl_zoo_files as zf  # noqa: E402
from helpers.release_server import ReleaseServer  # noqa: E402

import stzoo  # noqa: E402
from stzoo.convert.openstl import zoo  # noqa: E402
from stzoo.convert.openstl.catalog import load_catalog  # noqa: E402

CATALOG = load_catalog()
DATASETS = CATALOG["datasets"]
ENTRIES = {s: e for s, e in CATALOG["checkpoints"].items() if zoo.arch_for(e) is not None}
ORDER = sorted(ENTRIES, key=lambda s: (zf.file_key(ENTRIES[s], DATASETS[ENTRIES[s]["dataset"]]), s))
#: ``STZOO_OPENSTL_SWEEP=all`` runs every loadable entry (paper size: up to a CPU-minute each on a loaded 2-core
#: machine). By default every method runs once, on the small grids (TaxiBJ 32×32, WeatherBench 32×64), the
#: datasets taken in turn; the image datasets' uint8 path is covered at small size by tests/zoo/test_openstl_zoo.py.
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


SELECTED = ORDER if os.environ.get(SWEEP_ENV, "").lower() == "all" else _covering(ORDER)


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


@pytest.mark.parametrize("stem", SELECTED)
def test_entry_end_to_end(stem, server, tmp_path, monkeypatch):
    entry = ENTRIES[stem]
    if zf.builder_for(entry) is None:
        pytest.skip(f"no reference builder for {entry['openstl_method']} / {entry.get('model_type')} in the tests")
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
