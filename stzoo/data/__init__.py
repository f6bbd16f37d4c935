"""Datasets: MNIST digits, Moving MNIST and generated physical fields (Gray–Scott, Kolmogorov flow)."""

from stzoo.data.mnist import find_mnist_dir, load_mnist
from stzoo.data.moving_mnist import (
    TEST_SEED,
    MovingMNIST,
    cache_root,
    load_canonical_test_seq,
    moving_mnist_test_set,
)

from stzoo.data.fields import dataset_channels, get_dataset, list_datasets, preview_frames, save_preview, test_set_size
from stzoo.data.grayscott import GrayScott, grayscott_test_set
from stzoo.data.kolmogorov import Kolmogorov, kolmogorov_test_set, unit_to_vorticity, vorticity_to_unit

__all__ = ["load_mnist", "find_mnist_dir", "MovingMNIST", "moving_mnist_test_set",
           "load_canonical_test_seq", "TEST_SEED", "cache_root", "GrayScott", "grayscott_test_set", "Kolmogorov",
           "kolmogorov_test_set", "vorticity_to_unit", "unit_to_vorticity", "list_datasets", "get_dataset",
           "dataset_channels", "test_set_size", "preview_frames", "save_preview"]
