"""Moving MNIST on CIFAR-10 backgrounds, as OpenSTL builds it (``mmnist_cifar``; 3 channels).

OpenSTL's ``download_mmnist.sh`` puts its fixed test set ``mnist_cifar_test_seq.npy`` (10,000 sequences of
20 RGB frames, time-major: 20×10000×64×64×3) in ``data/moving_mnist/``, next to the MNIST training digits;
training draws a CIFAR-10 image (train and test images together, torchvision's ``cifar-10-batches-py``
files in ``data/moving_mnist/cifar10/``), resizes it to 64×64 (bicubic) as a static background and draws two
binarised digits on it with OpenSTL's trajectories. ``--data-dir`` is the data root or ``moving_mnist``.
"""

from __future__ import annotations

from stzoo.data.openstl_files import MovingDigitsFiles
from stzoo.data.registry import register_dataset

__all__ = ["SPEC"]

NAME = "mmnist_cifar"
TEST_FILE = "moving_mnist/mnist_cifar_test_seq.npy"
TRAIN_DIGITS = ("moving_mnist/train-images-idx3-ubyte.gz", "moving_mnist/train-images-idx3-ubyte")
CIFAR = ("moving_mnist/cifar10/cifar-10-batches-py", "cifar10/cifar-10-batches-py")

FILES = MovingDigitsFiles(NAME, TEST_FILE, TRAIN_DIGITS, "MNIST training digits", backgrounds=CIFAR)

SPEC = register_dataset(
    FILES.spec(
        label="Moving MNIST-CIFAR",
        description="two MNIST digits moving over a CIFAR-10 image, OpenSTL's mnist_cifar_test_seq.npy (--data-dir)",
        test_description="OpenSTL's mnist_cifar_test_seq.npy, {frames_in}→{frames_out}",
        citation='A. Krizhevsky, "Learning Multiple Layers of Features from Tiny Images", 2009 (CIFAR-10); the '
        'moving version: C. Tan et al., "OpenSTL", NeurIPS 2023 Datasets and Benchmarks',
        tag="moving-mnist-cifar",
    )
)
