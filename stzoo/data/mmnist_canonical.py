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

from stzoo.data.openstl_files import MovingDigitsFiles
from stzoo.data.registry import register_dataset

__all__ = ["SPEC", "TEST_FILE", "TRAIN_DIGITS"]

NAME = "mmnist_canonical"
TEST_FILE = "moving_mnist/mnist_test_seq.npy"
TRAIN_DIGITS = ("moving_mnist/train-images-idx3-ubyte.gz", "moving_mnist/train-images-idx3-ubyte")

FILES = MovingDigitsFiles(NAME, TEST_FILE, TRAIN_DIGITS, "MNIST training digits")

SPEC = register_dataset(
    FILES.spec(
        label="Moving MNIST (canonical file)",
        description="the papers' Moving MNIST test file mnist_test_seq.npy (your copy; --data-dir)",
        test_description="mnist_test_seq.npy (Srivastava et al. 2015), first {frames_in}→{frames_out} frames",
        citation='N. Srivastava, E. Mansimov, R. Salakhutdinov, "Unsupervised Learning of Video Representations '
        'using LSTMs", ICML 2015',
        tag="moving-mnist",
    )
)
