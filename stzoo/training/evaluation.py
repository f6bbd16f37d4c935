"""Measuring a model: MSE / MAE / SSIM / PSNR on a fixed test set, and the copy-last-frame baseline."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor, nn

from stzoo.data.registry import get_dataset
from stzoo.errors import InputError
from stzoo.metrics import LatWeightedRMSE, MetricAccumulator, OpenSTLAccumulator, OpenSTLConvention
from stzoo.models import Recipe, eval_mode

__all__ = [
    "evaluate",
    "evaluate_copy_last",
    "evaluate_mean_frame",
    "measure_baselines",
    "release_gate",
    "predict_future",
    "rollout_errors",
    "test_data",
    "test_set_description",
]


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
def evaluate(
    model: nn.Module,
    dataset: Any,
    *,
    frames_in: int = 10,
    frames_out: int = 10,
    batch_size: int = 64,
    device: str | torch.device = "cpu",
    progress: bool = True,
    predict: Callable[[Tensor], Tensor] | None = None,
    openstl: OpenSTLConvention | None = None,
    stzoo_metrics: bool = True,
) -> dict[str, Any]:
    """MSE / MAE / SSIM / PSNR of ``model`` on the future frames of every sequence of ``dataset``.

    ``openstl``: also score the batches the way OpenSTL does for this dataset (its
    :class:`~stzoo.metrics.OpenSTLConvention`, mapping values back with the dataset's ``mean`` / ``std``
    attributes when it has them), under ``"openstl_convention"``; a dataset with ``latitudes`` (a map)
    adds WeatherBench's latitude-weighted RMSE in physical units under ``"lat_weighted_rmse"``.
    ``stzoo_metrics=False`` leaves out stzoo's own four metrics (which assume values in [0, 1]).

    Each batch is ``dataset.batch(start, stop)``: a slice of the memory-mapped file for the cached
    test set (:func:`~stzoo.data.moving_mnist_test_set`), so nothing is regenerated per call. The
    default batch of 64 is kept on measurement: on one core of the 2-core CPU machine, 8 to 64
    sequences per batch gave the same cost per sequence within the noise for TAU-s and ConvLSTM-s,
    and the metrics bound their own memory (``stzoo.metrics.SSIM_CHUNK``).
    """
    from tqdm.auto import tqdm

    device = torch.device(device)
    predict = predict or (lambda x: predict_future(model, x, frames_out))
    acc = MetricAccumulator() if stzoo_metrics else None
    mean, std = getattr(dataset, "mean", 0.0), getattr(dataset, "std", 1.0)
    theirs = OpenSTLAccumulator(openstl, mean, std) if openstl is not None else None
    lats = getattr(dataset, "latitudes", None)
    weighted = LatWeightedRMSE(lats, mean, std) if lats is not None else None
    n, seen = len(dataset), 0
    with eval_mode(model):
        for start in tqdm(range(0, n, batch_size), desc="evaluate", unit="batch", disable=not progress):
            seq = _to_float(dataset.batch(start, min(start + batch_size, n)), device)
            if seq.shape[1] < frames_in + frames_out:
                raise InputError(
                    f"the test sequences have {seq.shape[1]} frames; {frames_in}→{frames_out} needs "
                    f"{frames_in + frames_out}"
                )
            x, y = seq[:, :frames_in], seq[:, frames_in : frames_in + frames_out]
            pred = predict(x).float()
            seen += pred.shape[0]
            for a in (acc, theirs, weighted):
                if a is not None:
                    a.update(pred.cpu() if a is not acc else pred, y.cpu() if a is not acc else y)
    out: dict[str, Any] = {**acc.result()} if acc is not None else {}
    out["sequences"] = seen
    if theirs is not None:
        out["openstl_convention"] = theirs.result()
    if weighted is not None:
        out["lat_weighted_rmse"] = weighted.result()
    return out


def evaluate_copy_last(
    dataset: Any,
    frames_in: int = 10,
    frames_out: int = 10,
    batch_size: int = 256,
    progress: bool = True,
    *,
    openstl: OpenSTLConvention | None = None,
    stzoo_metrics: bool = True,
) -> dict[str, Any]:
    """The copy-last-frame baseline: every future frame = the last observed frame (``openstl`` and
    ``stzoo_metrics`` as in :func:`evaluate`)."""
    dummy = nn.Identity()
    return evaluate(
        dummy,
        dataset,
        frames_in=frames_in,
        frames_out=frames_out,
        batch_size=batch_size,
        progress=progress,
        predict=lambda x: x[:, -1:].expand(-1, frames_out, -1, -1, -1),
        openstl=openstl,
        stzoo_metrics=stzoo_metrics,
    )


@torch.no_grad()
def _observed_mean(dataset: Any, frames_in: int, batch_size: int = 256) -> Tensor:
    """The per-pixel mean (C, H, W) of the observed frames of every sequence of ``dataset``."""
    total: Tensor | None = None
    count = 0
    for start in range(0, len(dataset), batch_size):
        x = _to_float(dataset.batch(start, min(start + batch_size, len(dataset))), torch.device("cpu"))[:, :frames_in]
        part = x.double().sum(dim=(0, 1))
        total = part if total is None else total + part
        count += x.shape[0] * x.shape[1]
    if total is None:
        raise ValueError("the mean-frame baseline needs at least one sequence")
    return (total / count).float()


def evaluate_mean_frame(
    dataset: Any,
    frames_in: int = 10,
    frames_out: int = 10,
    *,
    value: float | None = None,
    batch_size: int = 256,
    progress: bool = True,
) -> dict[str, Any]:
    """The mean-frame baseline: every future frame is one fixed frame — the constant ``value`` (in the
    model's value range; ``0.0`` is all-black), or, when ``value`` is None, the per-pixel mean of the
    observed frames of the whole of ``dataset`` (no future frame is looked at)."""
    mean = None if value is not None else _observed_mean(dataset, frames_in)

    def predict(x: Tensor) -> Tensor:
        frame = torch.full_like(x[:, -1:], float(value)) if mean is None else mean.to(x).expand_as(x[:, -1:])
        return frame.expand(-1, frames_out, -1, -1, -1)

    out = evaluate(
        nn.Identity(),
        dataset,
        frames_in=frames_in,
        frames_out=frames_out,
        batch_size=batch_size,
        progress=progress,
        predict=predict,
    )
    return {**out, "frame": "per-pixel mean of the observed frames" if mean is not None else f"constant {value:g}"}


def measure_baselines(
    dataset: Any, *, frames_in: int, frames_out: int, mean_frame: float | None, progress: bool = False
) -> dict[str, dict[str, Any]]:
    """Both trivial baselines of the release gate on exactly the sequences of ``dataset``:
    ``{"copy_last": metrics, "mean_frame": metrics}``."""
    return {
        "copy_last": evaluate_copy_last(dataset, frames_in, frames_out, progress=progress),
        "mean_frame": evaluate_mean_frame(dataset, frames_in, frames_out, value=mean_frame, progress=progress),
    }


def release_gate(metrics: dict[str, Any], baselines: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Whether ``metrics`` beat the trivial baselines measured on the same test set: MSE below both
    copy-last-frame's and the mean frame's, and SSIM above copy-last-frame's. Non-finite metrics fail.

    Returns the manifest's ``gate`` record: ``passed``, ``failed`` (the broken conditions, in words) and
    the baselines' MSE / SSIM (rounded as the manifest rounds)."""
    import math

    mse, ssim = float(metrics["mse"]), float(metrics["ssim"])
    cl, mf = baselines["copy_last"], baselines["mean_frame"]
    failed = []
    if not (math.isfinite(mse) and math.isfinite(ssim)):
        failed.append(f"the metrics are not finite (MSE {mse}, SSIM {ssim})")
    else:
        if not mse < cl["mse"]:
            failed.append(f"MSE {mse:.2f} is not below copy-last-frame's {cl['mse']:.2f}")
        if not mse < mf["mse"]:
            failed.append(f"MSE {mse:.2f} is not below the mean frame's {mf['mse']:.2f} ({mf['frame']})")
        if not ssim > cl["ssim"]:
            failed.append(f"SSIM {ssim:.4f} is not above copy-last-frame's {cl['ssim']:.4f}")
    return {
        "passed": not failed,
        "failed": failed,
        "sequences": int(cl["sequences"]),
        "copy_last": {k: round(float(cl[k]), 4) for k in ("mse", "ssim")},
        "mean_frame": {**{k: round(float(mf[k]), 4) for k in ("mse", "ssim")}, "frame": mf["frame"]},
    }


@torch.no_grad()
def rollout_errors(
    predictor: Any, dataset: Any, horizon: int, *, batch_size: int = 16, progress: bool = True
) -> dict[str, Any]:
    """Per-lead-time MSE of a forecast ``horizon`` frames long, against copying the last frame.

    ``predictor`` is a :class:`stzoo.Predictor`; ``dataset`` holds sequences of at least
    ``spec.frames_in + horizon`` frames (a test set made with a longer ``seq_len``). A horizon above
    the model's ``frames_out`` is rolled out as :meth:`stzoo.Predictor.forecast_tensor` does (TAU feeds
    its predictions back in; the recurrent models run on). The MSE of lead time ``t`` is the
    squared error summed over the C×H×W values of frame ``t`` in [0, 1] (predictions clipped to
    [0, 1] first) and averaged over the sequences, the convention of :func:`evaluate`.

    Returns:
        ``{"horizon", "sequences", "mse": [...], "copy_last_mse": [...]}`` with one value per lead time.
    """
    from tqdm.auto import tqdm

    fi = predictor.spec.frames_in
    first = dataset.batch(0, 1)
    if first.shape[1] < fi + horizon:
        raise ValueError(
            f"the sequences have {first.shape[1]} frames; a {horizon}-frame rollout after "
            f"{fi} inputs needs {fi + horizon} (make the test set with seq_len={fi + horizon})"
        )
    model_sum = torch.zeros(horizon, dtype=torch.float64)
    copy_sum = torch.zeros(horizon, dtype=torch.float64)
    n = len(dataset)
    with eval_mode(predictor.model):
        for start in tqdm(range(0, n, batch_size), desc="rollout", unit="batch", disable=not progress):
            seq = _to_float(dataset.batch(start, min(start + batch_size, n)), torch.device("cpu"))
            x, y = seq[:, :fi], seq[:, fi : fi + horizon].double()
            pred = predictor.forecast_tensor(x.to(predictor.device, predictor.dtype), horizon).double().cpu()
            pred = pred.clamp_(0.0, 1.0)  # scored as evaluate() scores it (stzoo.metrics clips to [0, 1])
            model_sum += (pred - y).pow(2).sum(dim=(2, 3, 4)).sum(dim=0)
            copy_sum += (x[:, -1:].double() - y).pow(2).sum(dim=(2, 3, 4)).sum(dim=0)
    return {
        "horizon": int(horizon),
        "sequences": n,
        "mse": [round(float(v) / n, 4) for v in model_sum],
        "copy_last_mse": [round(float(v) / n, 4) for v in copy_sum],
    }


def test_data(
    dataset: str,
    sequences: int,
    dataset_options: dict[str, Any] | None = None,
    *,
    cache: bool | str | os.PathLike = True,
    progress: bool = False,
) -> Any:
    """The first ``sequences`` sequences of ``dataset``'s fixed test set (at most the whole set),
    memory-mapped from stzoo's cache unless ``cache`` is False (the same sequences either way).
    ``dataset_options``: the datasets' own settings (e.g. ``{"mnist_dir": ...}``; each takes its own)."""
    return get_dataset(dataset).test_data(sequences, dataset_options, cache=cache, progress=progress)


def test_set_description(dataset: str, test: Any, recipe: Recipe) -> str:
    """How a manifest names the test set metrics were measured on."""
    return get_dataset(dataset).describe_test(test, recipe.frames_in, recipe.frames_out)
