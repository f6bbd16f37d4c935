"""The architecture contract: what generic code (Predictor, Forecaster, adapt, save_pretrained / load,
the training loss, the ONNX export) promises of any model.

``tests/models/test_contract.py`` runs every check on every registered architecture, built from the tiny config
its declaration carries (``Architecture.tiny_config``); a ``test_<arch>.py`` keeps only what is particular to the
architecture (paper parameter counts, equality with the reference implementation, its loss).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

import stzoo
from stzoo.training.adapt import adapt
from stzoo.training.losses import compute_loss


def assert_long_forecast_streams(p: Any, frames: np.ndarray, horizon: int, *, atol: float = 1e-5) -> np.ndarray:
    """``predict(horizon=…)`` beyond ``frames_out`` starts with the native forecast, and a
    :class:`~stzoo.Forecaster` fed the same frames one by one forecasts the same. Returns the long forecast."""
    long = p.predict(frames, horizon=horizon)
    assert long.shape == (horizon, *frames.shape[1:]) and np.isfinite(long).all()
    native = p.predict(frames)
    np.testing.assert_allclose(long[: len(native)], native, atol=1e-6)
    stream = stzoo.Forecaster(p, horizon=horizon)
    for frame in frames:
        stream.push(frame)
    np.testing.assert_allclose(np.asarray(stream.forecast(), np.float32), np.asarray(long, np.float32), atol=atol)
    return long


def assert_rgb_adaptation_matches_grey(
    p: Any, x: torch.Tensor, horizon: int, *, converted: set[str] | None = None
) -> Any:
    """``adapt(p, channels=3)`` converts only channel weights (exactly ``converted`` when given),
    re-initialises nothing, and forecasts a grey clip repeated on 3 channels as the grey model does."""
    rgb, report = adapt(p, channels=3)
    assert report.converted and not report.reinitialised
    if converted is not None:
        assert set(report.converted) == converted
    with torch.no_grad():
        y1 = p.forecast_tensor(x, horizon)
        y3 = rgb.forecast_tensor(x.expand(-1, -1, 3, -1, -1), horizon)
    torch.testing.assert_close(y3, y1.expand(-1, -1, 3, -1, -1), rtol=1e-4, atol=1e-5)
    return rgb


def assert_save_load_identical(p: Any, folder: Path, x: torch.Tensor, *args: Any, name: str | None = None) -> Any:
    """``save_pretrained`` (under ``name`` when given) then ``stzoo.load(impl="reference")`` gives the same
    architecture, config and outputs (``model(x, *args)``, in eval mode, bit for bit). Returns the loaded predictor."""
    saved = p.save_pretrained(folder) if name is None else p.save_pretrained(folder, name=name)
    q = stzoo.load(saved, impl="reference")  # the default may pick a fused twin (same weights, other sums)
    assert q.model.arch == p.model.arch and q.model.config == p.model.config
    with torch.no_grad():
        assert torch.equal(q.model.eval()(x, *args), p.model.eval()(x, *args))
    return q


def assert_trains(
    model: torch.nn.Module,
    recipe: Any,
    seq: torch.Tensor,
    *,
    teacher: float = 0.5,
    progress: float = 0.5,
    lr: float | None = None,
    absorbed: str | None = None,
    on_loss: Callable[[torch.Tensor], None] | None = None,
    may_vanish: Collection[str] = (),
) -> None:
    """Two optimiser steps on the recipe's loss (at ``teacher`` forcing and ``progress`` through the
    run): a finite scalar that moves between the steps, a finite gradient on every weight, a non-zero
    one on every weight but those matching ``absorbed`` (a regex of biases a BatchNorm in training mode
    absorbs: theirs is ~0), and every other entry of the state dict (buffers too) changed. ``on_loss``
    checks the loss. ``may_vanish``: names whose gradient the model's maths may cancel (a bias right before a
    BatchNorm, a key bias under a softmax): only a finite gradient is required of them."""
    pattern = re.compile(absorbed) if absorbed else None
    opt = torch.optim.Adam(model.parameters(), lr=recipe.lr if lr is None else lr)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    model.train()
    losses = []
    for _ in range(2):
        loss = compute_loss(model, recipe, seq, teacher, progress=progress)
        assert loss.ndim == 0 and torch.isfinite(loss)
        losses.append(float(loss.detach()))
        if on_loss is not None:
            on_loss(loss)
        opt.zero_grad()
        loss.backward()
        top = max(float(prm.grad.abs().max()) for prm in model.parameters() if prm.grad is not None)
        for name, prm in model.named_parameters():  # nothing dead: every weight reaches the loss
            assert prm.grad is not None and torch.isfinite(prm.grad).all(), name
            if pattern is not None and pattern.match(name):
                assert float(prm.grad.abs().max()) < 1e-4 * top, name
            elif name not in may_vanish:
                assert float(prm.grad.abs().sum()) > 0, name
        opt.step()
    assert losses[1] != losses[0]
    changed = {k for k, v in model.state_dict().items() if not torch.equal(before[k], v)}
    assert {k for k in before if (pattern is None or not pattern.match(k)) and k not in may_vanish} <= changed


def assert_onnx_matches_torch(
    p: Any,
    path: Path,
    frames_in: int,
    frames_out: int,
    *,
    exporter: str | None = None,
    verify: bool = True,
    any_frames: bool = True,
) -> Any:
    """The exported graph, run by onnxruntime at batch 1 and 3, gives the model's forecast within 1e-4.
    ``verify``: export_onnx's own check ran and passed too. Returns export_onnx's result."""
    import onnxruntime as ort

    kw = {} if exporter is None else {"exporter": exporter}
    result = p.export_onnx(path, verify=verify, **kw)
    if verify:
        assert result.max_abs_diff is not None and result.max_abs_diff <= 1e-4
    if exporter is not None:
        assert result.exporter == exporter
    session = ort.InferenceSession(str(result.path), providers=["CPUExecutionProvider"])
    spec = p.spec
    for b in (1, 3):
        x = torch.rand(b, frames_in, spec.channels, spec.height, spec.width, generator=torch.Generator().manual_seed(b))
        got = session.run(["forecast"], {"frames": x.numpy()})[0]
        with torch.no_grad():
            want = (p.model.eval()(x, frames_out) if any_frames else p.model.eval()(x)).numpy()
        assert got.shape == (b, frames_out, spec.channels, spec.height, spec.width) == want.shape
        assert np.max(np.abs(got - want)) <= 1e-4
    return result


def assert_rollout_feeds_predictions_back(p: Any, x: torch.Tensor, horizon: int) -> None:
    """A model with fixed frame counts forecasts ``horizon`` > ``frames_out`` frames by sliding its input
    window over its own predictions: ``forecast_tensor`` is exactly the model applied window by window."""
    t_in = p.spec.frames_in
    with torch.no_grad():
        outputs, window, made = [], x, 0
        while made < horizon:
            y = p.model.eval()(window)
            outputs.append(y)
            made += y.shape[1]
            window = torch.cat([window, y], 1)[:, -t_in:]
        torch.testing.assert_close(p.forecast_tensor(x, horizon), torch.cat(outputs, 1)[:, :horizon], rtol=0, atol=0)


def absorbed_biases(model: nn.Module, *inputs: Any) -> set[str]:
    """The biases a BatchNorm in training mode absorbs (its batch mean cancels them, so their gradient is
    ~0): those of a layer whose output goes straight into a BatchNorm. Found by running a copy of
    ``model(*inputs)`` once with forward hooks, so no architecture has to list them."""
    import copy

    model = copy.deepcopy(model).train()
    names = {m: n for n, m in model.named_modules()}
    made: dict[int, str] = {}
    alive: list[torch.Tensor] = []  # keeps every hooked output alive so no id() is reused
    found: set[str] = set()

    def after(module: nn.Module, args: Any, out: Any) -> None:
        if isinstance(out, torch.Tensor) and isinstance(getattr(module, "bias", None), nn.Parameter):
            made[id(out)] = names[module]
            alive.append(out)

    def before(module: nn.Module, args: Any) -> None:
        if args and id(args[0]) in made:
            found.add(f"{made[id(args[0])]}.bias" if made[id(args[0])] else "bias")

    hooks = [
        m.register_forward_pre_hook(before)
        if isinstance(m, nn.modules.batchnorm._BatchNorm)
        else m.register_forward_hook(after)
        for m in model.modules()
    ]
    try:
        with torch.no_grad():
            model(*inputs)
    finally:
        for h in hooks:
            h.remove()
    return found
