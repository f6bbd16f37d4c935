"""Moving MNIST, canonical: the ``mnist_test_seq.npy`` of Srivastava et al. (2015) that the papers report on.

The file holds 10,000 sequences of 20 frames, stored time-major (20×10000×64×64 uint8); OpenSTL's
``tools/prepare_data/download_mmnist.sh`` puts it at ``data/moving_mnist/mnist_test_seq.npy``, next to the
MNIST training digits ``train-images-idx3-ubyte.gz``. ``--data-dir`` is that data root or the
``moving_mnist`` folder itself. The test set is the file (10 → 10); training sequences are drawn from the
training digits with OpenSTL's generator (:class:`~stzoo.data.openstl_files.OpenSTLMovingDigits`).

stzoo's own ``moving_mnist`` test set is generated (MNIST *test* digits, a fixed seed, stzoo's own
trajectory code) so that it can be rebuilt anywhere without the download; the two differ in digits and
trajectories (docs/datasets/openstl.md).
"""

from __future__ import annotations

import os
from typing import Any

from stzoo.data.openstl_files import (
    DATA_DIR_OPTION,
    OpenSTLMovingDigits,
    data_root,
    find_path,
    load_idx_images,
    time_major_test_set,
)
from stzoo.data.registry import DatasetSpec, register_dataset
from stzoo.metrics import OpenSTLConvention

__all__ = ["SPEC", "TEST_FILE", "TRAIN_DIGITS"]

NAME = "mmnist_canonical"
TEST_FILE = "moving_mnist/mnist_test_seq.npy"
TRAIN_DIGITS = ("moving_mnist/train-images-idx3-ubyte.gz", "moving_mnist/train-images-idx3-ubyte")


def _train(data_dir: str | os.PathLike | None = None, **kw: Any) -> OpenSTLMovingDigits:
    root = data_root(data_dir, NAME)
    return OpenSTLMovingDigits(load_idx_images(find_path(root, TRAIN_DIGITS, NAME, "MNIST training digits")), **kw)


def _test(data_dir: str | os.PathLike | None = None, num_sequences: int | None = None, seq_len: int = 20, **_: Any):
    root = data_root(data_dir, NAME)
    return time_major_test_set(find_path(root, [TEST_FILE], NAME, "test file"), NAME, num_sequences, seq_len)


def _cached(sequences: int, *, cache: Any = True, progress: bool = False, data_dir: Any = None):
    return _test(data_dir, sequences)


SPEC = register_dataset(
    DatasetSpec(
        name=NAME,
        label="Moving MNIST (canonical file)",
        description="the papers' Moving MNIST test file mnist_test_seq.npy (your copy; --data-dir)",
        channels=1,
        height=64,
        width=64,
        dtype="uint8",
        value_range=(0.0, 1.0),
        normalisation="8-bit grey levels divided by 255 (OpenSTL: the same)",
        test_seed=0,
        test_size=10000,
        make_train=_train,
        make_test=_test,
        cached_test=_cached,
        cache_naming="none: mnist_test_seq.npy is memory-mapped in place",
        test_description="mnist_test_seq.npy (Srivastava et al. 2015), first {frames_in}→{frames_out} frames",
        openstl_metrics=OpenSTLConvention(),
        citation='N. Srivastava, E. Mansimov, R. Salakhutdinov, "Unsupervised Learning of Video Representations '
        'using LSTMs", ICML 2015',
        tag="moving-mnist",
        options=(DATA_DIR_OPTION,),
    )
)
