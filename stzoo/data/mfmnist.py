"""Moving FashionMNIST, as OpenSTL builds it (``mfmnist``).

OpenSTL's ``tools/prepare_data/download_mfmnist.sh`` puts the FashionMNIST training images
(``train-images-idx3-ubyte.gz``) and its fixed test set ``fmnist_test_seq.npy`` (10,000 sequences of 20
frames, time-major, drawn once by its ``generate_mmnist.py``) in ``data/moving_fmnist/``. ``--data-dir``
is the data root or that folder. Test: the file (10 → 10); training: OpenSTL's generator on the images.
"""

from __future__ import annotations

from stzoo.data.openstl_files import MovingDigitsFiles
from stzoo.data.registry import register_dataset

__all__ = ["SPEC"]

NAME = "mfmnist"
TEST_FILE = "moving_fmnist/fmnist_test_seq.npy"
TRAIN_IMAGES = ("moving_fmnist/train-images-idx3-ubyte.gz", "moving_fmnist/train-images-idx3-ubyte")

FILES = MovingDigitsFiles(NAME, TEST_FILE, TRAIN_IMAGES, "FashionMNIST images")

SPEC = register_dataset(
    FILES.spec(
        label="Moving FashionMNIST",
        description="two FashionMNIST items bouncing on 64×64, OpenSTL's fmnist_test_seq.npy (--data-dir)",
        test_description="OpenSTL's fmnist_test_seq.npy, {frames_in}→{frames_out}",
        citation='H. Xiao, K. Rasul, R. Vollgraf, "Fashion-MNIST", arXiv:1708.07747, 2017; the moving version: '
        'C. Tan et al., "OpenSTL", NeurIPS 2023 Datasets and Benchmarks',
        tag="moving-fashion-mnist",
    )
)
