"""Datasets: MNIST digits and Moving MNIST."""

from stzoo.data.mnist import find_mnist_dir, load_mnist
from stzoo.data.moving_mnist import (
    TEST_SEED,
    MovingMNIST,
    cache_root,
    load_canonical_test_seq,
    moving_mnist_test_set,
)

__all__ = ["load_mnist", "find_mnist_dir", "MovingMNIST", "moving_mnist_test_set",
           "load_canonical_test_seq", "TEST_SEED", "cache_root"]
