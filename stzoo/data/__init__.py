"""Datasets: MNIST digits, Moving MNIST and generated physical fields (Gray–Scott, Kolmogorov flow).

Each dataset is one file that registers a :class:`~stzoo.data.registry.DatasetSpec`; importing the
package registers them all (:func:`list_datasets`, :func:`get_dataset`, :func:`make_dataset`).
"""

from stzoo.data.fields import preview_frames, save_preview
from stzoo.data.mnist import find_mnist_dir, load_mnist
from stzoo.data.registry import (
    DATASETS,
    DatasetOption,
    DatasetSpec,
    dataset_channels,
    get_dataset,
    list_datasets,
    make_dataset,
    register_dataset,
    test_set_size,
)

# isort: off
# importing each dataset's file registers it, in this order (the order `stzoo data list` shows)
from stzoo.data.moving_mnist import TEST_SEED, MovingMNIST, cache_root, load_canonical_test_seq, moving_mnist_test_set
from stzoo.data.grayscott import GrayScott, grayscott_test_set
from stzoo.data.kolmogorov import Kolmogorov, kolmogorov_test_set, unit_to_vorticity, vorticity_to_unit

# the benchmark files users have, read in OpenSTL's layout (--data-dir; docs/datasets/openstl.md)
from stzoo.data import mmnist_canonical as _mmnist_canonical  # noqa: F401
from stzoo.data import mfmnist as _mfmnist  # noqa: F401
from stzoo.data import mmnist_cifar as _mmnist_cifar  # noqa: F401
from stzoo.data import kth20 as _kth20  # noqa: F401
from stzoo.data import human as _human  # noqa: F401
from stzoo.data import kitticaltech as _kitticaltech  # noqa: F401
from stzoo.data import taxibj as _taxibj  # noqa: F401
from stzoo.data import weatherbench as _weatherbench  # noqa: F401
# isort: on

__all__ = [
    "load_mnist",
    "find_mnist_dir",
    "MovingMNIST",
    "moving_mnist_test_set",
    "load_canonical_test_seq",
    "TEST_SEED",
    "cache_root",
    "GrayScott",
    "grayscott_test_set",
    "Kolmogorov",
    "kolmogorov_test_set",
    "vorticity_to_unit",
    "unit_to_vorticity",
    "list_datasets",
    "get_dataset",
    "make_dataset",
    "register_dataset",
    "DatasetSpec",
    "DatasetOption",
    "DATASETS",
    "dataset_channels",
    "test_set_size",
    "preview_frames",
    "save_preview",
]
