"""Read MNIST digits from the four IDX files (gzip or raw).

The folder is always given by the caller (an argument) or by the ``STZOO_MNIST_DIR`` environment
variable; nothing here knows where a particular machine keeps its data.
"""

from __future__ import annotations

import gzip
import os
from pathlib import Path

import numpy as np

from stzoo.errors import InputError

__all__ = ["load_mnist", "find_mnist_dir", "read_idx"]

_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
ENV_VAR = "STZOO_MNIST_DIR"


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read one IDX file (``.gz`` or raw) into a numpy array of its stored shape."""
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as f:
        data = f.read()
    if len(data) < 4 or data[0] != 0 or data[1] != 0:
        raise InputError(f"{path} is not an IDX file (bad magic number)")
    dtype_code, ndim = data[2], data[3]
    if len(data) < 4 + 4 * ndim:
        raise InputError(f"{path}: header announces {ndim} dimensions but the file ends after {len(data)} bytes")
    if dtype_code != 0x08:
        raise InputError(f"{path}: only unsigned-byte IDX files are supported (type code {dtype_code:#x})")
    shape = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    arr = np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim)
    if arr.size != int(np.prod(shape)):
        raise InputError(f"{path}: expected {int(np.prod(shape))} values for shape {shape}, found {arr.size}")
    return arr.reshape(shape)


def _locate(root: Path, stem: str) -> Path | None:
    for folder in (root, root / "MNIST" / "raw", root / "raw"):
        for name in (stem + ".gz", stem):
            if (folder / name).is_file():
                return folder / name
    return None


def find_mnist_dir(root: str | os.PathLike | None = None) -> Path:
    """The MNIST folder: ``root`` if given, else ``$STZOO_MNIST_DIR``; checked to hold the files."""
    if root is None:
        root = os.environ.get(ENV_VAR)
        if not root:
            raise InputError(
                f"no MNIST folder given: pass one (e.g. --mnist-dir) or set {ENV_VAR} to the folder "
                "holding train-images-idx3-ubyte(.gz) and the other three IDX files"
            )
    root = Path(root).expanduser()
    if _locate(root, _FILES["train"][0]) is None and _locate(root, _FILES["test"][0]) is None:
        raise InputError(f"no MNIST IDX files found in {root} (nor in {root}/MNIST/raw)")
    return root


def load_mnist(root: str | os.PathLike | None = None, split: str = "train") -> tuple[np.ndarray, np.ndarray]:
    """Return ``(images N×28×28 uint8, labels N uint8)`` of the ``train`` or ``test`` split."""
    if split not in _FILES:
        raise InputError(f"split must be 'train' or 'test', got {split!r}")
    folder = find_mnist_dir(root)
    paths = [_locate(folder, stem) for stem in _FILES[split]]
    for stem, p in zip(_FILES[split], paths):
        if p is None:
            raise InputError(f"{stem}(.gz) not found in {folder}")
    images, labels = (read_idx(p) for p in paths)
    if images.ndim != 3 or labels.shape[0] != images.shape[0]:
        raise InputError(f"MNIST {split} files in {folder} disagree: images {images.shape}, labels {labels.shape}")
    return images, labels
