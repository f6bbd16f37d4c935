"""Moving MNIST on CIFAR-10 backgrounds, as OpenSTL builds it (``mmnist_cifar``; 3 channels).

OpenSTL's ``download_mmnist.sh`` puts its fixed test set ``mnist_cifar_test_seq.npy`` (10,000 sequences of
20 RGB frames, time-major: 20×10000×64×64×3) in ``data/moving_mnist/``, next to the MNIST training digits;
training draws a CIFAR-10 image (train and test images together, torchvision's ``cifar-10-batches-py``
files in ``data/moving_mnist/cifar10/``), resizes it to 64×64 (bicubic) as a static background and draws two
binarised digits on it with OpenSTL's trajectories. ``--data-dir`` is the data root or ``moving_mnist``.
"""

from __future__ import annotations

import os
from typing import Any

from stzoo.data.openstl_files import (
    DATA_DIR_OPTION,
    OpenSTLMovingDigits,
    data_root,
    find_path,
    load_cifar10,
    load_idx_images,
    time_major_test_set,
)
from stzoo.data.registry import DatasetSpec, register_dataset
from stzoo.metrics import OpenSTLConvention

__all__ = ["SPEC"]

NAME = "mmnist_cifar"
TEST_FILE = "moving_mnist/mnist_cifar_test_seq.npy"
TRAIN_DIGITS = ("moving_mnist/train-images-idx3-ubyte.gz", "moving_mnist/train-images-idx3-ubyte")
CIFAR = ("moving_mnist/cifar10/cifar-10-batches-py", "cifar10/cifar-10-batches-py")


def _train(data_dir: str | os.PathLike | None = None, **kw: Any) -> OpenSTLMovingDigits:
    root = data_root(data_dir, NAME)
    digits = load_idx_images(find_path(root, TRAIN_DIGITS, NAME, "MNIST training digits"))
    return OpenSTLMovingDigits(digits, load_cifar10(find_path(root, CIFAR, NAME, "CIFAR-10 folder")), **kw)


def _test(data_dir: str | os.PathLike | None = None, num_sequences: int | None = None, seq_len: int = 20, **_: Any):
    root = data_root(data_dir, NAME)
    return time_major_test_set(find_path(root, [TEST_FILE], NAME, "test file"), NAME, num_sequences, seq_len)


def _cached(sequences: int, *, cache: Any = True, progress: bool = False, data_dir: Any = None):
    return _test(data_dir, sequences)


SPEC = register_dataset(
    DatasetSpec(
        name=NAME,
        label="Moving MNIST-CIFAR",
        description="two MNIST digits moving over a CIFAR-10 image, OpenSTL's mnist_cifar_test_seq.npy (--data-dir)",
        channels=3,
        height=64,
        width=64,
        dtype="uint8",
        value_range=(0.0, 1.0),
        normalisation="8-bit RGB levels divided by 255 (OpenSTL: the same)",
        test_seed=0,
        test_size=10000,
        make_train=_train,
        make_test=_test,
        cached_test=_cached,
        cache_naming="none: mnist_cifar_test_seq.npy is memory-mapped in place",
        test_description="OpenSTL's mnist_cifar_test_seq.npy, {frames_in}→{frames_out}",
        openstl_metrics=OpenSTLConvention(),
        citation='A. Krizhevsky, "Learning Multiple Layers of Features from Tiny Images", 2009 (CIFAR-10); the '
        'moving version: C. Tan et al., "OpenSTL", NeurIPS 2023 Datasets and Benchmarks',
        tag="moving-mnist-cifar",
        options=(DATA_DIR_OPTION,),
    )
)
