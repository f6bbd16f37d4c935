"""The on-disk cache of the generated field test sets (stzoo.data.fields.cached_test_set) and
`stzoo evaluate --dataset` around it."""

from __future__ import annotations

import json

import numpy as np
import pytest

from stzoo.cli.main import main
from stzoo.data import GrayScott
from stzoo.data.fields import cached_test_set
from stzoo.data.registry import make_dataset
from stzoo.errors import ConfigError

SMALL = {"size": 16, "burn_in": 20, "frame_every": 5, "seq_len": 4}  # a few ms per sequence


def _counting(monkeypatch):
    made = []
    real = GrayScott.batch

    def batch(self, lo, hi):
        made.append(hi - lo)
        return real(self, lo, hi)

    monkeypatch.setattr(GrayScott, "batch", batch)
    return made


def test_cached_field_test_set_is_the_generated_bytes_and_is_reused(tmp_path, monkeypatch):
    fresh = make_dataset("grayscott", "test", num_sequences=5, **SMALL)
    truth = fresh.batch(0, 5).numpy()
    made = _counting(monkeypatch)
    cached = cached_test_set("grayscott", 5, cache=tmp_path, **SMALL)
    assert sum(made) == 5 and len(cached) == 5 and cached.seed == fresh.seed
    np.testing.assert_array_equal(cached.batch(0, 5).numpy(), truth)
    np.testing.assert_array_equal(cached[3].numpy(), truth[3])
    files = sorted(p.name for p in tmp_path.iterdir())
    assert len(files) == 2 and files[0].endswith("-5.npy") and "partial" not in "".join(files)
    again = cached_test_set("grayscott", 5, cache=tmp_path, **SMALL)
    assert sum(made) == 5  # read back, nothing generated
    np.testing.assert_array_equal(again.batch(1, 4).numpy(), truth[1:4])


def test_every_generator_setting_and_the_count_key_the_file(tmp_path):
    cached_test_set("grayscott", 3, cache=tmp_path, **SMALL)
    cached_test_set("grayscott", 4, cache=tmp_path, **SMALL)
    cached_test_set("grayscott", 3, cache=tmp_path, seed=7, **SMALL)
    cached_test_set("grayscott", 3, cache=tmp_path, **{**SMALL, "frame_every": 6})
    assert len(list(tmp_path.glob("*.npy"))) == 4
    other = cached_test_set("grayscott", 3, cache=tmp_path, seed=7, **SMALL)
    np.testing.assert_array_equal(
        other.batch(0, 3).numpy(),
        make_dataset("grayscott", "test", num_sequences=3, seed=7, **SMALL).batch(0, 3).numpy(),
    )


def test_a_damaged_or_interrupted_cache_file_is_made_again(tmp_path, monkeypatch):
    first = cached_test_set("grayscott", 4, cache=tmp_path, **SMALL)
    path = first.path
    want = first.batch(0, 4).numpy()
    del first
    path.write_bytes(path.read_bytes()[:200])  # truncated
    made = _counting(monkeypatch)
    again = cached_test_set("grayscott", 4, cache=tmp_path, **SMALL)
    assert sum(made) == 4
    np.testing.assert_array_equal(again.batch(0, 4).numpy(), want)

    def boom(self, lo, hi):
        raise KeyboardInterrupt

    monkeypatch.setattr(GrayScott, "batch", boom)
    with pytest.raises(KeyboardInterrupt):
        cached_test_set("grayscott", 2, cache=tmp_path, **SMALL)
    assert not list(tmp_path.glob("*-2.npy*")) and not list(tmp_path.glob("*partial*"))


def test_cache_false_generates_on_the_fly_and_moving_mnist_is_refused(tmp_path):
    assert isinstance(cached_test_set("grayscott", 2, cache=False, **SMALL), GrayScott)
    with pytest.raises(ConfigError, match="moving_mnist"):
        cached_test_set("moving_mnist", 2)


def test_an_unwritable_cache_folder_warns_and_generates(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.warns(RuntimeWarning, match="cache"):
        ds = cached_test_set("grayscott", 2, cache=blocker / "sub", **SMALL)
    assert isinstance(ds, GrayScott)


def test_cli_evaluate_takes_the_dataset_and_its_full_test_set_by_default(tmp_path, capsys, monkeypatch):
    from dataclasses import replace

    from stzoo.data.registry import DATASETS

    monkeypatch.setenv("STZOO_CACHE", str(tmp_path))
    # a 3-sequence test set stands in for the 1000 of Gray-Scott, so the default is checked cheaply
    monkeypatch.setitem(DATASETS, "grayscott", replace(DATASETS["grayscott"], test_size=3))
    assert main(["evaluate", "copy-last-frame", "--dataset", "grayscott"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["dataset"] == "grayscott" and out["sequences"] == 3 and out["mse"] > 0
    assert list((tmp_path / "fields").glob("grayscott-test-*-3.npy"))
    assert main(["evaluate", "copy-last-frame", "--dataset", "grayscott", "--no-cache", "--sequences", "2"]) == 0
    assert json.loads(capsys.readouterr().out)["sequences"] == 2
    assert main(["evaluate", "copy-last-frame", "--dataset", "nope"]) != 0
    assert "unknown dataset 'nope'" in capsys.readouterr().err
