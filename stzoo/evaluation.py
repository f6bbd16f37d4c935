"""Measuring a model: MSE / MAE / SSIM / PSNR on a fixed test set, and the copy-last-frame baseline."""

from __future__ import annotations

import os
from typing import Any, Callable

import torch
from torch import Tensor, nn

from stzoo.data.fields import get_dataset, test_set_size
from stzoo.data.moving_mnist import MovingMNIST, moving_mnist_test_set
from stzoo.metrics import MetricAccumulator
from stzoo.models import Recipe, eval_mode

__all__ = ["evaluate", "evaluate_copy_last", "predict_future", "test_data", "test_set_description"]


def _to_float(batch: Tensor, device: torch.device) -> Tensor:
    """A batch on ``device`` as float in [0, 1]: uint8 is divided by 255, floats are taken as they are."""
    batch = batch.to(device, non_blocking=True)
    return batch.float().div_(255.0) if batch.dtype == torch.uint8 else batch.float()


def _is_recurrent(model: nn.Module) -> bool:
    """Whether ``model`` (or the module a DistributedDataParallel wrapper holds) is recurrent."""
    return bool(getattr(getattr(model, "module", model), "recurrent", False))


@torch.no_grad()
def predict_future(model: nn.Module, x: Tensor, n_out: int) -> Tensor:
    """Future frames from a model in eval mode (TAU maps T→T; recurrent models take ``n_out``)."""
    return model(x, n_out) if _is_recurrent(model) else model(x)


@torch.no_grad()
def evaluate(model: nn.Module, dataset: MovingMNIST, *, frames_in: int = 10, frames_out: int = 10,
             batch_size: int = 64, device: str | torch.device = "cpu", progress: bool = True,
             predict: Callable[[Tensor], Tensor] | None = None) -> dict[str, Any]:
    """MSE / MAE / SSIM / PSNR of ``model`` on the future frames of every sequence of ``dataset``.

    Each batch is ``dataset.batch(start, stop)``: a slice of the memory-mapped file for the cached
    test set (:func:`~stzoo.data.moving_mnist_test_set`), so nothing is regenerated per call. The
    default batch of 64 is kept on measurement: on one core of the 2-core CPU machine, 8 to 64
    sequences per batch gave the same cost per sequence within the noise for TAU-s and ConvLSTM-s,
    and the metrics bound their own memory (``stzoo.metrics.SSIM_CHUNK``).
    """
    from tqdm.auto import tqdm

    device = torch.device(device)
    predict = predict or (lambda x: predict_future(model, x, frames_out))
    acc = MetricAccumulator()
    n = len(dataset)
    with eval_mode(model):
        for start in tqdm(range(0, n, batch_size), desc="evaluate", unit="batch", disable=not progress):
            seq = _to_float(dataset.batch(start, min(start + batch_size, n)), device)
            x, y = seq[:, :frames_in], seq[:, frames_in:frames_in + frames_out]
            acc.update(predict(x).float(), y)
    return {**acc.result(), "sequences": acc.sequences}


def evaluate_copy_last(dataset: MovingMNIST, frames_in: int = 10, frames_out: int = 10,
                       batch_size: int = 256, progress: bool = True) -> dict[str, Any]:
    """The copy-last-frame baseline: every future frame = the last observed frame."""
    dummy = nn.Identity()
    return evaluate(dummy, dataset, frames_in=frames_in, frames_out=frames_out, batch_size=batch_size,
                    progress=progress,
                    predict=lambda x: x[:, -1:].expand(-1, frames_out, -1, -1, -1))


def test_data(dataset: str, sequences: int, mnist_dir: str | os.PathLike | None = None) -> Any:
    """The first ``sequences`` sequences of ``dataset``'s fixed test set (at most the whole set)."""
    if dataset == "moving_mnist":
        return moving_mnist_test_set(mnist_dir, sequences)
    return get_dataset(dataset, "test", num_sequences=min(int(sequences), test_set_size(dataset)))


def test_set_description(dataset: str, test: Any, recipe: Recipe) -> str:
    """How a manifest names the test set metrics were measured on."""
    if dataset == "moving_mnist":
        return f"stzoo Moving MNIST test (MNIST test digits, seed {test.seed}, {recipe.frames_in}→{recipe.frames_out})"
    return f"stzoo {dataset} test (seed {getattr(test, 'seed', '?')}, {recipe.frames_in}→{recipe.frames_out})"
