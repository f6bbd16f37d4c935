"""The architecture contract, run on every registered architecture (``stzoo.models.ARCHITECTURES``), each
built from the tiny config its declaration carries (``Architecture.tiny_config``): a new architecture is
checked here the moment it registers, with no test file of its own needed for these promises.

Per architecture: a forecast past ``frames_out`` (native for recurrent models, and streamed frame by frame
through a Forecaster; rolled out over the model's own predictions otherwise), grey → RGB adaptation, a
save / load round trip, two training steps reaching every weight, and ONNX parity with onnxruntime.
"""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest
import torch
from helpers.contract import (
    absorbed_biases,
    assert_long_forecast_streams,
    assert_onnx_matches_torch,
    assert_rgb_adaptation_matches_grey,
    assert_rollout_feeds_predictions_back,
    assert_save_load_identical,
    assert_trains,
)

import stzoo
from stzoo.models import ARCHITECTURES, Architecture, build_model, count_parameters

ARCHS = sorted(ARCHITECTURES)


def tiny(name: str, seed: int = 0, **spec: int) -> stzoo.Predictor:
    """A predictor of ``name`` at its tiny config (input-spec values ``spec`` changed), seeded weights."""
    arch = ARCHITECTURES[name]
    cfg = dict(arch.tiny_config)
    for key, value in spec.items():
        cfg[arch.spec_keys[key]] = value
    torch.manual_seed(seed)
    return stzoo.create(name, cfg)


def clip(p: stzoo.Predictor, batch: int = 2, frames: int | None = None, seed: int = 0) -> torch.Tensor:
    """A random B×T×C×H×W clip in [0, 1] that fits ``p``'s input spec."""
    s = p.spec
    gen = torch.Generator().manual_seed(seed)
    return torch.rand(batch, s.frames_in if frames is None else frames, s.channels, s.height, s.width, generator=gen)


def extra_args(arch: Architecture, p: stzoo.Predictor) -> tuple[Any, ...]:
    """What ``model(x, ...)`` takes besides the frames: the horizon for a recurrent model."""
    return (p.spec.frames_out + 2,) if arch.any_frames else ()


@pytest.mark.parametrize("name", ARCHS)
def test_tiny_config_is_declared_small_and_plain_json(name):
    arch = ARCHITECTURES[name]
    assert arch.tiny_config, f"{name} declares no tiny_config"
    assert json.loads(json.dumps(arch.tiny_config)) == arch.tiny_config
    assert {arch.spec_keys[k] for k in ("frames_in", "frames_out", "height", "width")} <= set(arch.tiny_config)
    model = build_model(name, arch.tiny_config)
    assert 0 < count_parameters(model) < 300_000
    assert model.config == arch.make_config(arch.tiny_config)


@pytest.mark.parametrize("name", ARCHS)
def test_forecast_past_frames_out(name):
    arch, p = ARCHITECTURES[name], tiny(name)
    horizon = 2 * p.spec.frames_out + 1
    frames = np.random.default_rng(0).random((p.spec.frames_in, p.spec.height, p.spec.width)).astype(np.float32)
    assert_long_forecast_streams(p, frames, horizon)
    x = clip(p)
    with torch.no_grad():
        assert float(p.forecast_tensor(x, horizon).std()) > 0  # the equalities below compare real images
    if arch.any_frames:  # one call makes any number of frames
        with torch.no_grad():
            torch.testing.assert_close(p.forecast_tensor(x, horizon), p.model.eval()(x, horizon), rtol=0, atol=0)
    else:
        assert_rollout_feeds_predictions_back(p, x, horizon)


@pytest.mark.parametrize("name", ARCHS)
def test_grey_model_adapted_to_rgb_predicts_the_same_on_each_channel(name):
    arch, p = ARCHITECTURES[name], tiny(name, seed=1)
    # exactly the declared channel weights this config has (an optional layer's are absent)
    declared = set(arch.channel_params(p.model.config)) & set(p.model.state_dict())
    rgb = assert_rgb_adaptation_matches_grey(p, clip(p), p.spec.frames_out + 1, converted=declared)
    assert rgb.spec.channels == 3 and rgb.model.config == arch.make_config(
        {**p.model.config.to_dict(), arch.spec_keys["channels"]: 3}
    )


@pytest.mark.parametrize("name", ARCHS)
def test_save_pretrained_then_load_gives_the_same_model_and_forecast(tmp_path, name):
    arch, p = ARCHITECTURES[name], tiny(name, seed=2)
    x = clip(p)
    q = assert_save_load_identical(p, tmp_path / name, x, *extra_args(arch, p), name=f"{name}-contract-test")
    assert q.name == f"{name}-contract-test"
    horizon = 2 * p.spec.frames_out
    with torch.no_grad():
        assert torch.equal(q.forecast_tensor(x, horizon), p.forecast_tensor(x, horizon))
        # the default implementation (a fused twin where one exists) forecasts the same within float error
        auto = stzoo.load(tmp_path / name)
        torch.testing.assert_close(
            auto.forecast_tensor(x, horizon), p.forecast_tensor(x, horizon), rtol=1e-4, atol=1e-5
        )


#: weights whose gradient an architecture's maths cancels, beyond the biases right before a BatchNorm (which
#: the contract finds itself, see ``absorbed_biases``): the check asks only a finite gradient of them
CANCELLED = {
    # a key bias b adds q·b to the score of every key position: the softmax over positions removes it
    "sa_convlstm": r"cells\.\d+\.sam\.k_[hm]\.bias",
}


@pytest.mark.parametrize("name", ARCHS)
def test_two_training_steps_reach_every_weight(name):
    arch, p = ARCHITECTURES[name], tiny(name, seed=3)
    t_in, t_out = p.spec.frames_in, p.spec.frames_out
    recipe = dataclasses.replace(arch.recipe, frames_in=t_in, frames_out=t_out)
    seq = clip(p, batch=3, frames=t_in + t_out, seed=3)
    cancelled = {k for k in p.model.state_dict() if name in CANCELLED and re.fullmatch(CANCELLED[name], k)}
    assert cancelled or name not in CANCELLED  # the table names weights that exist
    may_vanish = absorbed_biases(p.model, seq[:, :t_in], *((t_out,) if arch.any_frames else ())) | cancelled
    assert_trains(p.model, recipe, seq, teacher=0.5, progress=0.5, may_vanish=may_vanish)


@pytest.mark.parametrize("name", ARCHS)
def test_onnx_export_runs_in_onnxruntime_like_torch(tmp_path, name):
    arch = ARCHITECTURES[name]
    # the export traces one call: a recurrent graph unrolled over 2 in + 2 out (3 steps), a fixed-count model
    # with separate counts at 3 → 2, keep the (dynamo) export short; the tiny config's size and widths stay
    if arch.any_frames:
        p = tiny(name, seed=4, frames_in=2, frames_out=2)
    elif arch.spec_keys["frames_in"] != arch.spec_keys["frames_out"]:
        p = tiny(name, seed=4, frames_in=3, frames_out=2)
    else:
        p = tiny(name, seed=4)
    s = p.spec
    result = assert_onnx_matches_torch(
        p, tmp_path / f"{name}.onnx", s.frames_in, s.frames_out, verify=False, any_frames=arch.any_frames
    )
    assert result.exporter == "dynamo" and result.max_abs_diff is None
    assert result.input_shape == ("batch", s.frames_in, s.channels, s.height, s.width)
    assert result.output_shape == ("batch", s.frames_out, s.channels, s.height, s.width)
    proto = onnx.load(str(result.path))
    assert result.opset == max(o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")) >= 17
    meta = {m.key: m.value for m in proto.metadata_props}
    assert meta["stzoo_name"] == (p.name or "") and meta["layout"] == "BTCHW" and meta["architecture"] == name
    assert (meta["frames_in"], meta["frames_out"]) == (str(s.frames_in), str(s.frames_out))
    assert not list(Path(result.path).parent.glob(".*partial"))
