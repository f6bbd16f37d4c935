"""Moving FashionMNIST, as OpenSTL builds it (``mfmnist``).

OpenSTL's ``tools/prepare_data/download_mfmnist.sh`` puts the FashionMNIST training images
(``train-images-idx3-ubyte.gz``) and its fixed test set ``fmnist_test_seq.npy`` (10,000 sequences of 20
frames, time-major, drawn once by its ``generate_mmnist.py``) in ``data/moving_fmnist/``. ``--data-dir``
is the data root or that folder. Test: the file (10 → 10); training: OpenSTL's generator on the images.
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

__all__ = ["SPEC"]

NAME = "mfmnist"
TEST_FILE = "moving_fmnist/fmnist_test_seq.npy"
TRAIN_IMAGES = ("moving_fmnist/train-images-idx3-ubyte.gz", "moving_fmnist/train-images-idx3-ubyte")


def _train(data_dir: str | os.PathLike | None = None, **kw: Any) -> OpenSTLMovingDigits:
    root = data_root(data_dir, NAME)
    return OpenSTLMovingDigits(load_idx_images(find_path(root, TRAIN_IMAGES, NAME, "FashionMNIST images")), **kw)


def _test(data_dir: str | os.PathLike | None = None, num_sequences: int | None = None, seq_len: int = 20, **_: Any):
    root = data_root(data_dir, NAME)
    return time_major_test_set(find_path(root, [TEST_FILE], NAME, "test file"), NAME, num_sequences, seq_len)


def _cached(sequences: int, *, cache: Any = True, progress: bool = False, data_dir: Any = None):
    return _test(data_dir, sequences)


SPEC = register_dataset(
    DatasetSpec(
        name=NAME,
        label="Moving FashionMNIST",
        description="two FashionMNIST items bouncing on 64×64, OpenSTL's fmnist_test_seq.npy (--data-dir)",
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
        cache_naming="none: fmnist_test_seq.npy is memory-mapped in place",
        test_description="OpenSTL's fmnist_test_seq.npy, {frames_in}→{frames_out}",
        openstl_metrics=OpenSTLConvention(),
        citation='H. Xiao, K. Rasul, R. Vollgraf, "Fashion-MNIST", arXiv:1708.07747, 2017; the moving version: '
        'C. Tan et al., "OpenSTL", NeurIPS 2023 Datasets and Benchmarks',
        tag="moving-fashion-mnist",
        options=(DATA_DIR_OPTION,),
    )
)
