"""OpenSTL's published checkpoints by name: one function per dataset.

    python examples/openstl_zoo.py                 # every dataset (downloads each file once, then cached)
    python examples/openstl_zoo.py taxibj weather  # some of them

Each function loads one published file with ``stzoo.load("openstl:<file>")`` (downloaded from OpenSTL's GitHub
release on first use, converted, cached under ~/.cache/stzoo/openstl) and forecasts frames in its dataset's units.
The frames here are random stand-ins of the right shape and units: use the dataset's real frames for a real
forecast. Offline (STZOO_OFFLINE=1 or HF_HUB_OFFLINE=1) and with nothing cached, it prints what each would load.
"""

from __future__ import annotations

import sys

import numpy as np

import stzoo
from stzoo.convert.openstl.zoo import model_folder
from stzoo.zoo.http import offline

RNG = np.random.default_rng(0)


def _run(name: str, frames: np.ndarray) -> None:
    info = stzoo.info(name)
    if offline() and not info["cached"]:
        cols = info["reported_by_openstl"].get("columns", {})
        print(f"{name}: offline and not cached; would download {info['source']['url']}")
        print(f"  {info['openstl']['label']} on {info['dataset']}, reported by OpenSTL: {cols}")
        print(f"  input: {info['input'].get('normalization', 'values in [0, 1]')[:160]}")
        return
    p = stzoo.load(name)
    future = p.predict(frames)
    print(f"{name}: {frames.shape} {frames.dtype} -> {future.shape} {future.dtype} (cached in {model_folder(name)})")


def moving_mnist() -> None:
    """Moving MNIST: 10 → 10 frames of 64×64 grey pixels (uint8 0-255)."""
    _run("openstl:mmnist_tau_one_ep200", RNG.integers(0, 256, (10, 64, 64), dtype=np.uint8))


def moving_fmnist() -> None:
    """Moving Fashion-MNIST: as Moving MNIST."""
    _run("openstl:fmnist_simvp_gsta_one_ep200", RNG.integers(0, 256, (10, 64, 64), dtype=np.uint8))


def moving_mnist_cifar() -> None:
    """Moving MNIST on CIFAR-10 backgrounds: 10 → 10 RGB frames of 64×64 (T×H×W×3 uint8)."""
    _run("openstl:mmnist_cifar_tau_one_ep200", RNG.integers(0, 256, (10, 64, 64, 3), dtype=np.uint8))


def kitticaltech() -> None:
    """KittiCaltech: 10 → 1 RGB frames of 128×160 (OpenSTL reads Caltech with cv2: BGR order)."""
    _run("openstl:kitticaltech_tau_one_ep100", RNG.integers(0, 256, (10, 128, 160, 3), dtype=np.uint8))


def kth() -> None:
    """KTH: 10 → 20 grey frames of 128×128."""
    _run("openstl:kth20_tau_one_ep100", RNG.integers(0, 256, (10, 128, 128), dtype=np.uint8))


def human36m() -> None:
    """Human3.6M: 4 → 4 RGB frames of 256×256 (BGR, as OpenSTL's cv2 reader gives them)."""
    _run("openstl:human_tau_cos_ep50", RNG.integers(0, 256, (4, 256, 256, 3), dtype=np.uint8))


def taxibj() -> None:
    """TaxiBJ: 4 → 4 frames of inflow/outflow on a 32×32 grid, in the [-1, 1] units of OpenSTL's dataset.npz."""
    _run("openstl:taxibj_tau_cos_ep50", RNG.uniform(-1, 1, (4, 2, 32, 32)).astype(np.float32))


def weather() -> None:
    """WeatherBench 5.625° t2m: 12 → 12 hourly fields of 32×64, STANDARDISED with the training years' mean/std."""
    _run("openstl:weather_t2m_tau_cos_ep50", RNG.normal(size=(12, 1, 32, 64)).astype(np.float32))


EXAMPLES = {
    "mmnist": moving_mnist,
    "mfmnist": moving_fmnist,
    "mmnist_cifar": moving_mnist_cifar,
    "kitticaltech": kitticaltech,
    "kth": kth,
    "human": human36m,
    "taxibj": taxibj,
    "weather": weather,
}

if __name__ == "__main__":
    for key in sys.argv[1:] or list(EXAMPLES):
        EXAMPLES[key]()
