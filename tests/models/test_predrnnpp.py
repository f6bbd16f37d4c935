"""PredRNN++ (stzoo.models.predrnnpp) and its OpenSTL importer (stzoo.convert.openstl.predrnnpp).

OpenSTL is not installable from the package index: the checkpoints here are built in OpenSTL's key
layout and compared with an independent re-statement of its forward pass
(``tests/helpers/openstl_reference_predrnnpp.py``, which names the OpenSTL files it comes from).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from helpers import openstl_reference as ref  # noqa: E402
from helpers import openstl_reference_predrnnpp as rp  # noqa: E402

import stzoo
import stzoo.convert.openstl.predrnnpp  # noqa: F401  (registers the importer)
import stzoo.models.predrnnpp  # noqa: F401  (registers the architecture)
from stzoo.convert import from_openstl, map_openstl_state_dict
from stzoo.errors import ConfigError, InputError
from stzoo.models import build_model, count_parameters, get_architecture, parameters_of

TOL = 1e-5
TINY = stzoo.models.ARCHITECTURES["predrnnpp"].tiny_config  # its tiny config, declared with its registration
# configs/mmnist/PredRNNpp.py of OpenSTL, as published (the model keys and the training keys around them)
MMNIST_CONFIG = """method = 'PredRNNpp'
# reverse scheduled sampling
reverse_scheduled_sampling = 0
r_sampling_step_1 = 25000
r_sampling_step_2 = 50000
r_exp_alpha = 5000
# scheduled sampling
scheduled_sampling = 1
sampling_stop_iter = 50000
sampling_start_value = 1.0
sampling_changing_rate = 0.00002
# model
num_hidden = '128,128,128,128'
filter_size = 5
stride = 1
patch_size = 4
layer_norm = 0
# training
lr = 1e-4
batch_size = 16
sched = 'onecycle'
"""


def _max_abs(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).abs().max())


# ---- parameter counts ------------------------------------------------------------------------------
def test_openstl_mmnist_config_parameter_count(tmp_path):
    shapes = rp.predrnnpp_shapes(patch_channels=16, num_hidden=[128] * 4, filter_size=5)
    openstl_total = sum(int(np.prod(s)) for s in shapes.values())
    unused = sum(int(np.prod(s)) for k, s in shapes.items() if ".conv_o." in k)
    assert openstl_total == 38_584_320  # every OpenSTL parameter, used or not
    assert unused == 4 * 819_200 == 3_276_800  # CausalLSTMCell.conv_o, never read by its forward
    spec = get_architecture("predrnnpp")
    assert parameters_of(spec, spec.config()) == 35_307_520 == openstl_total - unused  # the defaults
    # a paper-size checkpoint with the published config file converts completely
    cfg_file = tmp_path / "PredRNNpp.py"
    cfg_file.write_text(MMNIST_CONFIG)
    state = {k: torch.randn(s) * 0.01 for k, s in shapes.items()}
    from stzoo.convert.openstl import read_openstl_config

    raw, lenient = read_openstl_config(cfg_file)
    out, cfg, spec_in, details = map_openstl_state_dict(state, "PredRNNpp", raw, lenient_config=lenient)
    assert {k: v for k, v in spec.config().to_dict().items() if k != "layer_norm"} == cfg  # = the defaults
    assert spec_in == {
        "frames_in": 10,
        "frames_out": 10,
        "channels": 1,
        "height": 64,
        "width": 64,
        "value_range": [0.0, 1.0],
    }
    assert details["tensors_unused"] == [f"cell_list.{i}.conv_o.0.weight" for i in range(4)]
    assert details["tensors_mapped"] == len(state) - 4 == len(out)
    assert "lr" in details["ignored_config"] and "sched" in details["ignored_config"]
    model = build_model("predrnnpp", cfg)
    model.load_state_dict(out, strict=True)
    assert count_parameters(model) == 35_307_520
    # every used OpenSTL value arrives unchanged (the patch permutation only reorders)
    used = [v for k, v in state.items() if ".conv_o." not in k]
    assert sorted(round(float(v.double().sum()), 4) for v in out.values()) == sorted(
        round(float(v.double().sum()), 4) for v in used
    )


# ---- parity with OpenSTL ---------------------------------------------------------------------------
@pytest.mark.parametrize("channels,patch,filter_size", [(1, 4, 5), (3, 2, 3)])
def test_outputs_equal_openstl(channels, patch, filter_size):
    state = rp.predrnnpp_state_dict(
        patch_channels=channels * patch * patch, num_hidden=[8, 8, 8], filter_size=filter_size, seed=channels
    )
    p = from_openstl(state, "predrnnpp", {"patch_size": patch, "pre_seq_length": 5, "aft_seq_length": 6})
    x, y = torch.rand(2, 5, channels, 16, 16), torch.rand(2, 6, channels, 16, 16)
    expected = rp.predrnnpp_predict(state, x, y, patch)
    with torch.no_grad():
        got = p.model(x, 6)
    assert got.shape == expected.shape == (2, 6, channels, 16, 16)
    assert _max_abs(got, expected) <= TOL and ref.relative_error(got, expected) <= TOL
    assert float(expected.std()) > 1e-3  # a non-trivial output
    rep = p.entry.extra["openstl"]
    assert rep["tensors_unused"] == [f"cell_list.{i}.conv_o.0.weight" for i in range(3)]
    assert rep["tensors_mapped"] == len(state) - 3
    assert (p.spec.frames_in, p.spec.frames_out, p.spec.channels) == (5, 6, channels)
    assert p.model.cells[0].conv_x.kernel_size == (filter_size, filter_size)


def test_patch_order_and_ghu_matter():
    """A converter that skipped the patch permutation, or a model without the GHU, is visibly wrong."""
    state = rp.predrnnpp_state_dict(patch_channels=12, num_hidden=[8, 8], filter_size=3, seed=5)
    x, y = torch.rand(1, 4, 3, 8, 8), torch.rand(1, 3, 3, 8, 8)
    expected = rp.predrnnpp_predict(state, x, y, 2)
    naive = build_model(
        "predrnnpp", {"num_layers": 2, "num_hidden": 8, "patch_size": 2, "channels": 3, "filter_size": 3}
    )
    good = from_openstl(state, "predrnnpp", {"patch_size": 2}).model
    sd = dict(good.state_dict())
    sd["cells.0.conv_x.weight"] = state["cell_list.0.conv_x.0.weight"]
    sd["readout.weight"] = state["conv_last.weight"]
    naive.load_state_dict(sd)
    with torch.no_grad():
        assert ref.relative_error(good(x, 3), expected) <= TOL
        assert ref.relative_error(naive(x, 3), expected) > 1e-2
        good.ghu.conv_z.weight.zero_()
        good.ghu.conv_x.weight.zero_()
        assert ref.relative_error(good(x, 3), expected) > 1e-2


def test_reverse_scheduled_sampling_inference_is_the_same_rollout():
    state = rp.predrnnpp_state_dict(patch_channels=4, num_hidden=[6, 6], filter_size=3, seed=7)
    p = from_openstl(state, "predrnn++", {"patch_size": 2})
    x, y = torch.rand(1, 3, 1, 8, 8), torch.rand(1, 4, 1, 8, 8)
    with torch.no_grad():
        got = p.model(x, 4)
    assert ref.relative_error(got, rp.predrnnpp_predict(state, x, y, 2, reverse_scheduled_sampling=1)) <= TOL


def test_openstl_method_names_are_case_insensitive():
    state = rp.predrnnpp_state_dict(patch_channels=16, num_hidden=[4, 4], filter_size=3)
    for name in ("predrnnpp", "PredRNNpp", "PREDRNN++", "PredRNN++"):
        assert from_openstl(state, name, {"patch_size": 4}).model.arch == "predrnnpp"
    assert from_openstl(state, "predrnnpp", {"method": "PredRNNpp", "patch_size": 4}).model.num_hidden == 4
    with pytest.raises(ConfigError, match="method='predrnn'"):
        from_openstl(state, "predrnnpp", {"method": "PredRNN", "patch_size": 4})


def test_mismatched_checkpoints_are_clear_errors():
    state = rp.predrnnpp_state_dict(patch_channels=16, num_hidden=[4, 4], filter_size=3)
    with pytest.raises(ConfigError, match=r"patch_size=1 with 16.*patch_size=2 with 4.*patch_size=4 with 1"):
        from_openstl(state, "predrnnpp")
    assert from_openstl(state, "predrnnpp", {"in_shape": [10, 4, 32, 32]}).model.patch_size == 2
    missing = {k: v for k, v in state.items() if k != "cell_list.1.conv_om.0.weight"}
    with pytest.raises(InputError, match=r"missing: cell_list\.1\.conv_om\.0\.weight"):
        from_openstl(missing, "predrnnpp", {"patch_size": 4})
    extra = {**state, "cell_list.1.conv_extra.0.weight": torch.zeros(3)}
    with pytest.raises(InputError, match=r"does not have: cell_list\.1\.conv_extra\.0\.weight"):
        from_openstl(extra, "predrnnpp", {"patch_size": 4})
    bad_unused = {**state, "cell_list.0.conv_o.0.weight": torch.zeros(4, 4, 3, 3)}
    with pytest.raises(InputError, match=r"cell_list\.0\.conv_o\.0\.weight: \(4, 4, 3, 3\), expected \(4, 8, 3, 3\)"):
        from_openstl(bad_unused, "predrnnpp", {"patch_size": 4})
    with pytest.raises(ConfigError, match=r"num_hidden=\[8, 8\]"):
        from_openstl(state, "predrnnpp", {"patch_size": 4, "num_hidden": "8,8"})
    ln = {**state, "cell_list.0.conv_x.1.weight": torch.ones(28, 4, 4)}
    with pytest.raises(InputError, match="layer_norm=1"):
        from_openstl(ln, "predrnnpp", {"patch_size": 4})
    with pytest.raises(InputError, match="layer_norm=1"):
        from_openstl(state, "predrnnpp", {"patch_size": 4, "layer_norm": 1})
    with pytest.raises(ConfigError, match="stride"):
        from_openstl(state, "predrnnpp", {"patch_size": 4, "stride": 2})
    no_ghu = {k: v for k, v in state.items() if not k.startswith("gradient_highway.")}
    with pytest.raises(InputError, match="gradient highway"):
        from_openstl(no_ghu, "predrnnpp", {"patch_size": 4})
    one = rp.predrnnpp_state_dict(patch_channels=16, num_hidden=[4], filter_size=3)
    with pytest.raises(InputError, match="at least 2"):
        from_openstl(one, "predrnnpp", {"patch_size": 4})


# ---- the zoo features --------------------------------------------------------------------------------
def test_config_defaults_and_limits():
    cfg = get_architecture("predrnnpp").config()
    assert (cfg.num_layers, cfg.num_hidden, cfg.filter_size, cfg.patch_size) == (4, 128, 5, 4)
    with pytest.raises(ConfigError, match="num_layers"):
        build_model("predrnnpp", {"num_layers": 1})
    recipe = get_architecture("predrnnpp").recipe
    assert (recipe.lr, recipe.loss, recipe.scheduled_sampling, recipe.batch_size) == (1e-4, "mse", 0.4, 16)
