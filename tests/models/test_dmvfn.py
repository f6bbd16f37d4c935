"""DMVFN (stzoo.models.dmvfn) and its OpenSTL importer (stzoo.convert.openstl.dmvfn).

OpenSTL is not installable from the package index: the checkpoints here are built in OpenSTL's key
layout and compared with an independent re-statement of its forward pass
(``tests/helpers/openstl_reference_dmvfn.py``, which names the OpenSTL files it comes from).
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from helpers import openstl_reference as ref  # noqa: E402
from helpers import openstl_reference_dmvfn as rd  # noqa: E402

import stzoo
import stzoo.convert.openstl.dmvfn  # noqa: F401  (registers the importer)
from stzoo.convert import from_openstl, map_openstl_state_dict
from stzoo.errors import ConfigError, InputError
from stzoo.models import build_model, count_parameters, get_architecture, parameters_of
from stzoo.training.losses import compute_loss

TOL = 1e-5
FEATURES = [160, 160, 160, 80, 80, 80, 44, 44, 44]
# configs/mmnist/DMVFN.py of OpenSTL v0.3.0, as published
MMNIST_CONFIG = """method = 'DMVFN'
# model
routing_out_channels = 32
in_planes = 4 * 1 + 1 + 4 # the first 1: data channel, the second 1: mask channel, the third 4: flow channel
num_block = 9
num_features = [160, 160, 160, 80, 80, 80, 44, 44, 44]
scale = [4, 4, 4, 2, 2, 2, 1, 1, 1]
training = True
# loss
beta = 0.5
gamma = 0.8
coef = 0.5
# training
lr = 1e-4
batch_size = 16
sched = 'onecycle'
"""


# ---- parameter counts ------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "channels,openstl_count,count", [(1, 3_522_922, 3_518_962), (2, 3_541_426, 3_537_466), (3, 3_559_930, 3_555_970)]
)
def test_parameter_count_is_openstl_less_the_first_blocks_dead_inputs(channels, openstl_count, count):
    openstl = sum(int(np.prod(s)) for s in rd.dmvfn_shapes(channels, FEATURES, 32).values())
    dead = 5 * 9 * (FEATURES[0] // 2 + 8)  # block 0's mask and flow input channels (always zero), both convs
    spec = get_architecture("dmvfn")
    assert openstl == openstl_count and dead == 3_960
    assert parameters_of(spec, spec.config(channels=channels)) == openstl - dead == count


def test_the_published_config_file_converts_a_paper_size_checkpoint(tmp_path):
    state = {k: torch.randn(s) * 0.01 for k, s in rd.dmvfn_shapes(1, FEATURES, 32).items()}
    cfg_file = tmp_path / "DMVFN.py"
    cfg_file.write_text(MMNIST_CONFIG)
    from stzoo.convert.openstl import read_openstl_config

    raw, lenient = read_openstl_config(cfg_file)
    out, cfg, spec_in, details = map_openstl_state_dict(state, "DMVFN", raw, lenient_config=lenient)
    assert build_model("dmvfn", cfg).config == get_architecture("dmvfn").config()  # = the defaults
    assert details["tensors_unused"] == [] and details["tensors_mapped"] == len(state)
    assert {"gamma", "coef", "training", "lr"} <= set(details["ignored_config"])
    assert details["config_sources"]["scales"] == "config"
    model = build_model("dmvfn", cfg)
    model.load_state_dict(out, strict=True)
    assert count_parameters(model) == 3_518_962
    # without the config file the 9-block scales are OpenSTL's
    _, cfg2, _, details2 = map_openstl_state_dict(state, "dmvfn")
    assert cfg2["scales"] == cfg["scales"] and "default" in details2["config_sources"]["scales"]


# ---- parity with OpenSTL ---------------------------------------------------------------------------
@pytest.mark.parametrize("channels,seed", [(1, 0), (3, 1), (2, 2)])
def test_sampled_routing_equals_openstl_draw_for_draw(channels, seed):
    """``routing="bernoulli"`` is OpenSTL's test loop: same generator state, same blocks, same forecast."""
    scales = [4, 2, 1]
    state = rd.dmvfn_state_dict(channels, [16, 12, 8], 8, seed=channels)
    p = from_openstl(
        state,
        "dmvfn",
        {"in_shape": [4, channels, 16, 32], "aft_seq_length": 5, "scale": scales, "routing": "bernoulli"},
    )
    x = torch.rand(1, 4, channels, 16, 32)
    torch.manual_seed(seed)
    expected = rd.dmvfn_inference(state, x, 5, scales)
    torch.manual_seed(seed)
    with torch.no_grad():
        got = p.model(x, 5)
    assert got.shape == expected.shape == (1, 5, channels, 16, 32)
    assert float((got - expected).abs().max()) <= TOL and ref.relative_error(got, expected) <= TOL
    assert float((expected - x[:, -1:]).abs().max()) > 1e-2  # the frames really move


def test_every_block_routed_equals_openstl_and_threshold_is_deterministic():
    scales = [2, 2, 1, 1]
    state = rd.dmvfn_state_dict(1, [16, 16, 8, 8], 8, seed=4)
    state["l1.bias"] = state["l1.bias"] + 10.0  # v ≈ 1 for every block: with beta 2, p = 1 (OpenSTL runs all)
    p = from_openstl(state, "dmvfn", {"height": 16, "width": 16, "scale": scales, "beta": 2.0, "routing": "all"})
    x = torch.rand(2, 3, 1, 16, 16)
    expected = torch.cat([rd.dmvfn_inference(state, x[b : b + 1], 4, scales, beta=2.0) for b in range(2)])
    with torch.no_grad():
        got = p.model(x, 4)
        assert float((got - expected).abs().max()) <= TOL
        thr = dataclasses.replace(p.model.config, routing="threshold")
        q = build_model("dmvfn", thr.to_dict())
        q.load_state_dict(p.model.state_dict())
        torch.testing.assert_close(q.eval()(x, 4), got, rtol=0, atol=0)  # p = 1 ≥ 0.5: the same blocks
        # routing chooses blocks: beta 0 runs none, and the prediction is the older frame (OpenSTL's rule)
        none = build_model("dmvfn", {**thr.to_dict(), "beta": 0.0})
        none.load_state_dict(p.model.state_dict())
        torch.testing.assert_close(none.eval()(x, 1)[:, 0], x[:, -2], rtol=0, atol=0)
        torch.testing.assert_close(
            none(x, 1), rd.dmvfn_inference(state, x, 1, scales, beta=0.0), rtol=0, atol=0
        )  # fmt: skip


def test_only_the_last_two_frames_matter_and_one_frame_is_read_twice():
    model = build_model("dmvfn", get_architecture("dmvfn").tiny_config).eval()
    x = torch.rand(2, 5, 1, 16, 16)
    with torch.no_grad():
        long = model(x, 3)
        torch.testing.assert_close(model(x[:, -2:], 3), long, rtol=0, atol=0)
        torch.testing.assert_close(model(x[:, -1:], 2), model(x[:, [-1, -1]], 2), rtol=0, atol=0)
        ctx = model(x, 3, return_context=True)
    assert ctx.shape[1] == 4 + 3
    torch.testing.assert_close(ctx[:, 4:], long, rtol=0, atol=0)


def test_training_supervises_every_block_on_frame_triples():
    arch = get_architecture("dmvfn")
    torch.manual_seed(0)
    model = build_model("dmvfn", arch.tiny_config)
    recipe = dataclasses.replace(arch.recipe, frames_in=2, frames_out=3)
    seq = torch.rand(2, 5, 1, 16, 16)
    pred, target, extra = arch.training_forward(model, recipe, seq, 0.0)
    assert pred.shape == target.shape == (2, 3, 1, 16, 16) and torch.equal(target, seq[:, 2:])
    assert extra is not None and extra.ndim == 0 and float(extra.detach()) > 0
    loss = compute_loss(model, recipe, seq, 0.0)
    loss.backward()
    assert all(p.grad is not None for p in model.parameters())
    with pytest.raises(InputError, match="at least 3 frames"):
        arch.training_forward(model, dataclasses.replace(recipe, frames_in=1, frames_out=1), seq, 0.0)


# ---- errors -----------------------------------------------------------------------------------------
def test_mismatched_checkpoints_and_configs_are_clear_errors():
    state = rd.dmvfn_state_dict(1, [16, 8], 8)
    with pytest.raises(ConfigError, match="scales are not in the weights"):
        from_openstl(state, "dmvfn")
    ok = {"scale": [2, 1], "height": 16, "width": 16}
    assert from_openstl(state, "dmvfn", ok).model.config.num_features == (16, 8)
    with pytest.raises(ConfigError, match="num_features"):
        from_openstl(state, "dmvfn", {**ok, "num_features": [16, 16]})
    with pytest.raises(ConfigError, match="2 blocks"):
        from_openstl(state, "dmvfn", {**ok, "scale": [2, 1, 1]})
    with pytest.raises(ConfigError, match="multiple of 8"):
        from_openstl(state, "dmvfn", {**ok, "height": 20})
    with pytest.raises(ConfigError, match="in_planes"):
        from_openstl(state, "dmvfn", {**ok, "in_planes": 17})
    with pytest.raises(ConfigError, match="method"):
        from_openstl(state, "dmvfn", {**ok, "method": "PredNet"})
    with pytest.raises(InputError, match="missing"):
        from_openstl({k: v for k, v in state.items() if k != "stu.1.conv_sq.1.weight"}, "dmvfn", ok)
    with pytest.raises(InputError, match="does not have"):
        from_openstl({**state, "stu.0.extra.weight": torch.zeros(1)}, "dmvfn", ok)
    with pytest.raises(InputError, match="DMVFN_Model"):
        from_openstl({"i.0.weight": torch.zeros(1)}, "dmvfn", ok)


def test_config_rules():
    spec = get_architecture("dmvfn")
    with pytest.raises(ConfigError, match="one value per block"):
        spec.config(num_features=(16, 8), scales=(1,))
    with pytest.raises(ConfigError, match="one of"):
        spec.config(scales=(3, 4, 4, 2, 2, 2, 1, 1, 1))
    with pytest.raises(ConfigError, match="multiple of 16"):
        spec.config(height=72)
    with pytest.raises(ConfigError, match="routing"):
        spec.config(routing="soft")
    cfg = spec.config(num_features=[8], scales=[1], height=4, width=8)
    assert spec.config.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(InputError, match="divisible by 4"):
        build_model("dmvfn", cfg.to_dict())(torch.rand(1, 2, 1, 6, 8))


def test_bernoulli_routing_samples_the_blocks():
    p = stzoo.create("dmvfn", {**get_architecture("dmvfn").tiny_config, "routing": "bernoulli"})
    x = torch.rand(1, 3, 1, 16, 16)
    with torch.no_grad():
        outs = {tuple(np.round(p.model(x, 1).flatten()[:8].numpy(), 5)) for _ in range(12)}
    assert len(outs) > 1  # different draws, different blocks, different forecasts


def test_every_published_dmvfn_checkpoint_converts_with_its_catalogue_config():
    """The 6 DMVFN files of OpenSTL's catalogue: OpenSTL-shaped weights convert with the recorded config, and
    the model predicts a frame at the dataset's shapes."""
    from stzoo.convert.openstl.catalog import catalog_entries

    entries = catalog_entries(method="DMVFN")
    assert len(entries) == 6 and {c["stzoo_arch"] for c in entries.values()} == {"dmvfn"}
    for stem, c in entries.items():
        cfg = c["config"]
        t, ch, h, w = cfg["in_shape"]
        state = {k: torch.zeros(s) for k, s in rd.dmvfn_shapes(ch, cfg["num_features"], 32).items()}
        out, model_cfg, spec, _ = map_openstl_state_dict(state, "DMVFN", cfg, lenient_config=True)
        assert (spec["frames_in"], spec["channels"], spec["height"], spec["width"]) == (t, ch, h, w), stem
        assert model_cfg["scales"] == cfg["scale"] and model_cfg["routing"] == "threshold", stem
        model = build_model("dmvfn", model_cfg).eval()
        model.load_state_dict(out)
        x = torch.rand(1, 2, ch, h, w)
        with torch.no_grad():
            y = model(x, 1)
        assert y.shape == (1, 1, ch, h, w), stem
        # zero weights: every p = β·n·½ / (n·½ + 10⁻⁶) is just below ½, no block runs: the older frame
        torch.testing.assert_close(y[:, 0], x[:, 0], rtol=0, atol=0)
