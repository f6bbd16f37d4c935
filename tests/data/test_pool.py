"""stzoo.data.pool.SequencePool and `stzoo train --data-pool`: a fixed set of training sequences,
generated once into a memory-mapped file, served in a new order every pass."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import stzoo.training.train as train_mod
from stzoo.data.pool import SequencePool, describe_dataset
from stzoo.errors import ConfigError
from stzoo.training.train import Recipe, train


class Counted:
    """A tiny deterministic dataset that counts the sequences it is asked to generate."""

    def __init__(self, num_sequences: int = 10, seq_len: int = 3, size: int = 4, seed: int = 0):
        self.num_sequences, self.seq_len, self.size, self.seed, self.epoch = num_sequences, seq_len, size, seed, 0
        self._made = 0

    def __len__(self):
        return self.num_sequences

    def set_epoch(self, epoch):
        self.epoch = epoch

    def sequence(self, i):
        rng = np.random.default_rng([self.seed, self.epoch, i])
        return rng.random((self.seq_len, 1, self.size, self.size), dtype=np.float32)

    def batch(self, lo, hi):
        self._made += hi - lo
        return torch.from_numpy(np.stack([self.sequence(i) for i in range(lo, hi)]))


def test_pool_holds_epoch_zero_and_each_pass_is_a_permutation(tmp_path):
    src = Counted(10)
    pool = SequencePool(src, tmp_path / "p.npy", seed=3, size=10, epoch_size=4, chunk=3, progress=False)
    assert src._made == 10 and len(pool) == 4
    src.set_epoch(0)
    truth = np.stack([src.sequence(i) for i in range(10)])
    # epochs of 4 over a pool of 10: positions 0..19 are passes 0 and 1, each a permutation of 0..9
    seen = []
    for epoch in range(5):
        pool.set_epoch(epoch)
        idx = pool.indices(0, 4)
        np.testing.assert_array_equal(pool.batch(0, 4).numpy(), truth[idx])
        seen.extend(idx.tolist())
    assert sorted(seen[:10]) == list(range(10)) and sorted(seen[10:20]) == list(range(10))
    assert seen[:10] != seen[10:20]  # a new order every pass
    with pytest.raises(IndexError):
        pool.batch(0, 5)


def test_pool_order_is_a_function_of_seed_and_position(tmp_path):
    a = SequencePool(Counted(8), tmp_path / "a.npy", seed=1, progress=False)
    b = SequencePool(Counted(8), tmp_path / "b.npy", seed=1, progress=False)
    c = SequencePool(Counted(8), tmp_path / "c.npy", seed=2, progress=False)
    for p in (a, b, c):
        p.set_epoch(2)
    assert a.indices(0, 8).tolist() == b.indices(0, 8).tolist() != c.indices(0, 8).tolist()
    assert (tmp_path / "a.npy").read_bytes() == (tmp_path / "c.npy").read_bytes()  # same data, other order


def test_pool_is_reused_resumed_and_rebuilt_for_other_data(tmp_path):
    path = tmp_path / "p.npy"
    SequencePool(Counted(9), path, size=9, chunk=2, progress=False)
    again = Counted(9)
    SequencePool(again, path, size=9, chunk=2, progress=False)
    assert again._made == 0  # reused as it is

    # an interrupted fill: the record says 4 were written; only the other 5 are generated again
    record = json.loads(path.with_name("p.npy.json").read_text())
    path.with_name("p.npy.json").write_text(json.dumps({**record, "done": 4}))
    arr = np.load(path, mmap_mode="r+")
    arr[4:] = 0
    arr.flush()
    del arr
    resumed = Counted(9)
    pool = SequencePool(resumed, path, size=9, chunk=2, progress=False)
    assert resumed._made == 5
    full = Counted(9)
    np.testing.assert_array_equal(np.load(path), full.batch(0, 9).numpy())
    assert pool.sequence(0).shape == (3, 1, 4, 4)

    other_seed = Counted(9, seed=5)  # made for other data: rebuilt, never reused
    SequencePool(other_seed, path, size=9, chunk=2, progress=False)
    assert other_seed._made == 9
    np.testing.assert_array_equal(np.load(path), Counted(9, seed=5).batch(0, 9).numpy())
    smaller = Counted(9, seed=5)
    SequencePool(smaller, path, size=6, chunk=2, progress=False)
    assert smaller._made == 6 and np.load(path).shape[0] == 6


def test_pool_refuses_bad_sizes(tmp_path):
    for kw in ({"size": 0}, {"size": 11}, {"size": 2.5}, {"epoch_size": 0}, {"chunk": 0}):
        with pytest.raises(ConfigError):
            SequencePool(Counted(10), tmp_path / "p.npy", progress=False, **kw)


def test_describe_dataset_names_the_physics_and_not_the_epoch():
    from stzoo.data import GrayScott, Kolmogorov

    k = Kolmogorov(num_sequences=3)
    d = describe_dataset(k)
    assert d["class"].endswith("Kolmogorov") and d["settings"]["solver"]["viscosity"] > 0
    k.set_epoch(4)
    assert describe_dataset(k) == d and "epoch" not in d["settings"]
    assert describe_dataset(Kolmogorov(num_sequences=3, seed=1)) != d
    g = describe_dataset(GrayScott(num_sequences=3))
    assert g["settings"]["regimes"] and g["settings"]["dt"] == GrayScott(num_sequences=3).dt


def test_train_with_a_pool_records_it_and_refuses_to_resume_without(tmp_path, monkeypatch):
    recipe = Recipe(lr=1e-3, epochs=3, epoch_size=2, batch_size=2, frames_in=2, frames_out=2, loss="mse")
    cfg = {"frames": 2, "channels": 2, "height": 64, "width": 64, "hid_S": 8, "hid_T": 16, "N_T": 2}
    calls = []
    real = train_mod._make_batch

    def spy(data, epoch, lo, hi):
        calls.append(type(data).__name__)
        return real(data, epoch, lo, hi)

    monkeypatch.setattr(train_mod, "_make_batch", spy)
    s = train(
        "tau",
        cfg,
        tmp_path / "run",
        recipe=recipe,
        device="cpu",
        eval_sequences=0,
        progress=False,
        dataset="grayscott",
        dtype="float32",
        data_pool=3,
    )
    assert s["step"] == 3
    assert calls == ["SequencePool"] * 3  # every training batch came from the pool
    assert np.load(tmp_path / "run" / "pool.npy").shape == (3, 4, 2, 64, 64)
    meta = json.loads((tmp_path / "run" / "run.json").read_text())
    assert meta["data_pool"] == 3
    assert torch.load(tmp_path / "run" / "checkpoint.pt", weights_only=False)["data_pool"] == 3
    with pytest.raises(ConfigError, match="data_pool"):
        train(
            "tau",
            cfg,
            tmp_path / "run",
            recipe=recipe,
            device="cpu",
            eval_sequences=0,
            progress=False,
            dataset="grayscott",
            dtype="float32",
        )
    for bad in (0, -1, 1.5, True):
        with pytest.raises(ConfigError, match="data_pool"):
            train(
                "tau",
                cfg,
                tmp_path / f"bad{bad}",
                recipe=recipe,
                device="cpu",
                eval_sequences=0,
                progress=False,
                dataset="grayscott",
                data_pool=bad,
            )
