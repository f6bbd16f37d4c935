"""Copies of the package's weights manifest and the command lines of the tests that train and release into one
(the real manifest is never written)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from stzoo.zoo.manifest import load_manifest

#: the entry the training tests release into (their tiny ConvLSTM runs have its architecture and size)
RELEASE_NAME = "convlstm-mmnist-s"


def without_release(manifest: dict[str, Any], name: str) -> dict[str, Any]:
    """``manifest`` with entry ``name``'s released weights, metrics, training record and gate removed."""
    for key in ("weights", "metrics", "training", "gate"):
        manifest["models"][name].pop(key, None)
    return manifest


def manifest_copy(path: Path, unreleased: str | None = RELEASE_NAME, *, indent: int | None = None) -> Path:
    """Write the package's manifest to ``path`` with entry ``unreleased`` not released yet (None: as it
    is) and return ``path``."""
    manifest = load_manifest()
    if unreleased is not None:
        manifest = without_release(manifest, unreleased)
    path.write_text(json.dumps(manifest, indent=indent))
    return path


def release_args(
    run: Path, mnist_dir: Path, manifest: Path, weights_dir: Path, sequences: int, *extra: str
) -> list[str]:
    """``stzoo-maint release`` arguments that release run ``run`` as :data:`RELEASE_NAME` into the manifest
    copy ``manifest``, measured on ``sequences`` test sequences of the fake MNIST folder ``mnist_dir``."""
    return [
        "release",
        RELEASE_NAME,
        "--run",
        str(run),
        "--mnist-dir",
        str(mnist_dir),
        "--sequences",
        str(sequences),
        "--weights-dir",
        str(weights_dir),
        "--manifest",
        str(manifest),
        *extra,
    ]


def train_args(run: Path, mnist_dir: Path, epoch_size: int = 2, *extra: str) -> list[str]:
    """``stzoo train`` arguments for a run of :data:`RELEASE_NAME` of one epoch of ``epoch_size`` sequences
    (batches of 2) on the fake MNIST folder ``mnist_dir``, without the final evaluation."""
    return [
        "train",
        RELEASE_NAME,
        "--out",
        str(run),
        "--mnist-dir",
        str(mnist_dir),
        "--epochs",
        "1",
        "--epoch-size",
        str(epoch_size),
        "--batch-size",
        "2",
        "--eval-sequences",
        "0",
        *extra,
    ]
