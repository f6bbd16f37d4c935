"""PredNet (stzoo.models.prednet) and its OpenSTL importer (stzoo.convert.openstl.prednet).

OpenSTL is not installable from the package index: the checkpoints here are built in OpenSTL's key
layout and compared with an independent re-statement of its forward pass
(``tests/helpers/openstl_reference_prednet.py``, which names the OpenSTL files it comes from).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from helpers import openstl_reference as ref  # noqa: E402
from helpers import openstl_reference_prednet as rp  # noqa: E402

import stzoo
import stzoo.convert.openstl.prednet  # noqa: F401  (registers the importer)
from stzoo.convert import from_openstl, map_openstl_state_dict
from stzoo.errors import ConfigError, InputError
from stzoo.models import build_model, count_parameters, get_architecture, parameters_of

TOL = 1e-5
# configs/mmnist/PredNet.py of OpenSTL v0.3.0, as published
MMNIST_CONFIG = """method = 'PredNet'
stack_sizes = (1, 32, 64, 128, 256) # 1 refer to num of channel(input)
R_stack_sizes = stack_sizes
A_filt_sizes = (3, 3, 3, 3)
Ahat_filt_sizes = (3, 3, 3, 3, 3)
R_filt_sizes = (3, 3, 3, 3, 3)
pixel_max = 1.0
weight_mode = 'L_0'
error_activation = 'relu'
A_activation = 'relu'
LSTM_activation = 'tanh'
LSTM_inner_activation = 'hard_sigmoid'
# training
lr = 1e-4
batch_size = 16
sched = 'onecycle'
"""


def _openstl_count(channels: int) -> int:
    s = [channels, 32, 64, 128, 256]
    return sum(int(np.prod(v)) for v in rp.prednet_shapes(s, s, [3] * 4, [3] * 5, [3] * 5).values())


# ---- parameter counts ------------------------------------------------------------------------------
@pytest.mark.parametrize("channels,count", [(1, 12_510_842), (2, 12_512_926), (3, 12_515_244)])
def test_parameter_count_equals_openstl_at_the_published_configs(channels, count):
    spec = get_architecture("prednet")
    cfg = spec.config(channels=channels, r_channels=(channels, 32, 64, 128, 256))
    assert parameters_of(spec, cfg) == _openstl_count(channels) == count


def test_the_published_config_file_converts_a_paper_size_checkpoint(tmp_path):
    s = [1, 32, 64, 128, 256]
    state = {k: torch.randn(v) * 0.01 for k, v in rp.prednet_shapes(s, s, [3] * 4, [3] * 5, [3] * 5).items()}
    cfg_file = tmp_path / "PredNet.py"
    cfg_file.write_text(MMNIST_CONFIG)
    from stzoo.convert.openstl import read_openstl_config

    raw, lenient = read_openstl_config(cfg_file)
    out, cfg, spec_in, details = map_openstl_state_dict(state, "PredNet", raw, lenient_config=lenient)
    assert build_model("prednet", cfg).config == get_architecture("prednet").config()  # = the defaults
    assert spec_in["channels"] == 1 and (spec_in["height"], spec_in["width"]) == (64, 64)
    assert details["tensors_unused"] == [] and details["tensors_mapped"] == len(state)
    assert {"weight_mode", "LSTM_activation", "lr"} <= set(details["ignored_config"])
    model = build_model("prednet", cfg)
    model.load_state_dict(out, strict=True)
    assert count_parameters(model) == 12_510_842
    # every OpenSTL value arrives exactly once (the gate convolutions are split and reordered, not changed)
    assert sorted(np.round(torch.cat([v.flatten() for v in out.values()]).double().numpy(), 6)) == sorted(
        np.round(torch.cat([v.flatten() for v in state.values()]).double().numpy(), 6)
    )


# ---- parity with OpenSTL ---------------------------------------------------------------------------
@pytest.mark.parametrize("channels,layers,k", [(1, 3, 3), (3, 4, 3), (2, 2, 5)])
def test_outputs_equal_openstl(channels, layers, k):
    stack = [channels, 4, 8, 8][:layers]
    state = rp.prednet_state_dict(stack, stack, k, seed=channels)
    p = from_openstl(state, "prednet", {"pre_seq_length": 5, "aft_seq_length": 6, "height": 16, "width": 24})
    x, y = torch.rand(2, 5, channels, 16, 24), torch.rand(2, 6, channels, 16, 24)
    expected = rp.prednet_predict(state, x, y)
    with torch.no_grad():
        got = p.model(x, 6)
    assert got.shape == expected.shape == (2, 6, channels, 16, 24)
    assert float((got - expected).abs().max()) <= TOL and ref.relative_error(got, expected) <= TOL
    assert float(expected.std()) > 1e-3  # a non-trivial output
    assert float((expected[:, 1:] - expected[:, :-1]).abs().max()) > 1e-3  # and a moving one
    assert (p.spec.frames_in, p.spec.frames_out, p.spec.channels) == (5, 6, channels)
    # the published test-time convention, frame by frame: a Forecaster streams the same forecast
    stream = stzoo.Forecaster(p, horizon=6)
    for frame in x[0].numpy():
        stream.push(frame)
    np.testing.assert_allclose(np.asarray(stream.forecast(), np.float32), got[0].numpy(), atol=1e-5)


def test_rollout_feeds_the_previous_prediction_as_openstl_does():
    """Past the observed frames OpenSTL's target at step t is the prediction of frame t−1; feeding the
    prediction of frame t itself (the obvious closed loop) is a different forecast after the first frame."""
    stack = [1, 4, 8]
    state = rp.prednet_state_dict(stack, stack, 3, seed=7)
    model = from_openstl(state, "prednet", {"height": 16, "width": 16}).model.eval()
    x = torch.rand(1, 4, 1, 16, 16)
    with torch.no_grad():
        got = model(x, 3)
        states = model.init_states(1, 16, 16, x)
        for i in range(4):
            pred, states = model.step(x[:, i], states)
        naive = [pred]
        for _ in range(2):
            pred, states = model.step(pred, states)
            naive.append(pred)
        naive_t = torch.stack(naive, 1)
    torch.testing.assert_close(got[:, 0], naive_t[:, 0], rtol=0, atol=0)  # the first frame is the same step
    assert float((got[:, 1:] - naive_t[:, 1:]).abs().max()) > 1e-4
    torch.testing.assert_close(got, rp.prednet_predict(state, x, torch.zeros(1, 3, 1, 16, 16)), rtol=0, atol=TOL)


def test_teacher_forcing_reads_the_target_frames():
    model = build_model("prednet", get_architecture("prednet").tiny_config).eval()
    x, y = torch.rand(2, 4, 1, 16, 16), torch.rand(2, 3, 1, 16, 16)
    with torch.no_grad():
        forced = model(x, 3, target=y, teacher_mask=torch.ones(2, 2), return_context=True)
        observed = model(torch.cat([x, y[:, :2]], 1), 1, return_context=True)
        free = model(x, 3, target=y, teacher_mask=torch.zeros(2, 2))
    torch.testing.assert_close(forced, observed, rtol=0, atol=0)  # mask 1 = every frame observed
    torch.testing.assert_close(free, model(x, 3), rtol=0, atol=0)  # mask 0 = the rollout


# ---- errors -----------------------------------------------------------------------------------------
def test_mismatched_checkpoints_and_configs_are_clear_errors():
    stack = [1, 4, 8]
    state = rp.prednet_state_dict(stack, stack, 3)
    with pytest.raises(ConfigError, match="stack_sizes"):
        from_openstl(state, "prednet", {"stack_sizes": [1, 4, 16]})
    with pytest.raises(ConfigError, match="method"):
        from_openstl(state, "prednet", {"method": "PredRNN"})
    with pytest.raises(ConfigError, match="multiple of 4"):
        from_openstl(state, "prednet", {"height": 18})
    with pytest.raises(ConfigError, match="relu or tanh"):
        from_openstl(state, "prednet", {"error_activation": "gelu"})
    missing = {k: v for k, v in state.items() if k != "A.2.bias"}
    with pytest.raises(InputError, match="missing"):
        from_openstl(missing, "prednet")
    with pytest.raises(InputError, match="does not have"):
        from_openstl({**state, "extra.weight": torch.zeros(1)}, "prednet")
    wrong = {**state, "i.1.weight": torch.zeros(4, 5, 3, 3)}
    with pytest.raises(InputError, match="i.1.weight"):
        from_openstl(wrong, "prednet")
    with pytest.raises(InputError, match="PredNet_Model"):
        from_openstl({"cell_list.0.conv_x.0.weight": torch.zeros(4, 4, 3, 3)}, "prednet")


def test_config_rules():
    spec = get_architecture("prednet")
    with pytest.raises(ConfigError, match="needs 2 entries"):
        spec.config(a_channels=(4,), r_channels=(1, 4, 8), a_filter=(3, 3), ahat_filter=(3, 3, 3), r_filter=(3, 3, 3))
    with pytest.raises(ConfigError, match="odd"):
        spec.config(r_filter=(3, 3, 4, 3, 3))
    with pytest.raises(ConfigError, match="multiple of 16"):
        spec.config(height=72)
    with pytest.raises(ConfigError, match="whole numbers"):
        spec.config(a_channels=(32, "64", 128, 256))
    cfg = spec.config(a_channels=[4], r_channels=[1, 4], a_filter=[3], ahat_filter=[3, 3], r_filter=[3, 5])
    assert cfg.r_channels == (1, 4) and spec.config.from_dict(cfg.to_dict()) == cfg
    model = build_model("prednet", cfg.to_dict())
    with pytest.raises(InputError, match="divisible by 2"):
        model(torch.rand(1, 2, 1, 15, 16))


def test_every_published_prednet_checkpoint_converts_with_its_catalogue_config():
    """The 8 PredNet files of OpenSTL's catalogue: weights shaped by the recorded config convert with it and the
    model forecasts at the dataset's shapes. To stay fast the layers above the first are narrowed to 4
    channels (in the weights and the config alike); every other recorded value is used as it is."""
    from stzoo.convert.openstl.catalog import catalog_entries

    entries = catalog_entries(method="PredNet")
    assert len(entries) == 8 and {c["stzoo_arch"] for c in entries.values()} == {"prednet"}
    for stem, c in entries.items():
        cfg = dict(c["config"])
        assert list(cfg["stack_sizes"]) == list(cfg["R_stack_sizes"]) == [cfg["in_shape"][1], 32, 64, 128, 256]
        cfg["stack_sizes"] = cfg["R_stack_sizes"] = [cfg["in_shape"][1]] + [4] * 4
        sizes = [list(cfg[k]) for k in ("stack_sizes", "R_stack_sizes", "A_filt_sizes", "Ahat_filt_sizes")]
        state = rp.prednet_state_dict(cfg["stack_sizes"], cfg["R_stack_sizes"], 3, seed=1)
        assert set(state) == set(rp.prednet_shapes(*sizes, list(cfg["R_filt_sizes"])))
        out, model_cfg, spec, _ = map_openstl_state_dict(state, "PredNet", cfg, lenient_config=True)
        t, ch, h, w = cfg["in_shape"]
        got = [spec[k] for k in ("frames_in", "frames_out", "channels", "height", "width")]
        assert got == [t, cfg["aft_seq_length"], ch, h, w], stem
        model = build_model("prednet", model_cfg).eval()
        model.load_state_dict(out)
        with torch.no_grad():
            y = model(torch.rand(1, 2, ch, h, w), 1)
        assert y.shape == (1, 1, ch, h, w) and torch.isfinite(y).all(), stem
