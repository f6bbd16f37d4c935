"""MIM (stzoo.models.mim) and its OpenSTL importer (stzoo.convert.openstl.mim).

OpenSTL is not installable from the package index: the checkpoints here are built in OpenSTL's key
layout and compared with an independent re-statement of its forward pass
(``tests/helpers/openstl_reference_mim.py``, which names the OpenSTL files it comes from).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from helpers import openstl_reference as ref  # noqa: E402
from helpers import openstl_reference_mim as rm  # noqa: E402

import stzoo
import stzoo.convert.openstl.mim  # noqa: F401  (registers the importer)
import stzoo.models.mim  # noqa: F401  (registers the architecture)
from stzoo.convert import from_openstl, map_openstl_state_dict
from stzoo.convert.openstl import read_openstl_config
from stzoo.errors import ConfigError, InputError
from stzoo.models import build_model, count_parameters, get_architecture, parameters_of
from stzoo.training.adapt import adapt

TOL = 1e-5
TINY = stzoo.models.ARCHITECTURES["mim"].tiny_config  # its tiny config, declared with its registration
# configs/mmnist/MIM.py of OpenSTL, as published
MMNIST_CONFIG = """method = 'MIM'
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
lr = 5e-4
batch_size = 16
val_batch_size = 16
sched = 'onecycle'
drop_last = True"""


def _max_abs(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).abs().max())


def _state(channels: int = 1, patch: int = 4, hidden=(8, 8, 8), size: int = 16, k: int = 3, seed: int = 0):
    return rm.mim_state_dict(
        patch_channels=channels * patch * patch,
        num_hidden=list(hidden),
        grid=(size // patch, size // patch),
        filter_size=k,
        seed=seed,
    )


# ---- parameter counts ------------------------------------------------------------------------------
def test_openstl_mmnist_config_parameter_count(tmp_path):
    shapes = rm.mim_shapes(patch_channels=16, num_hidden=[128] * 4, grid=(16, 16), filter_size=5)
    openstl_total = sum(int(np.prod(s)) for s in shapes.values())
    unused_keys = [f"stlstm_layer_diff.{j}.conv_last.weight" for j in range(3)]
    unused = sum(int(np.prod(shapes[k])) for k in unused_keys)
    assert openstl_total == 38_043_648  # every OpenSTL parameter, used or not
    assert unused == 3 * 32_768 == 98_304  # MIMN.conv_last, never read by its forward
    spec = get_architecture("mim")
    assert parameters_of(spec, spec.config()) == 37_945_344 == openstl_total - unused  # the defaults
    cfg_file = tmp_path / "MIM.py"
    cfg_file.write_text(MMNIST_CONFIG)
    state = {k: torch.randn(s) * 0.01 for k, s in shapes.items()}
    raw, lenient = read_openstl_config(cfg_file)
    out, cfg, spec_in, details = map_openstl_state_dict(state, "MIM", raw, lenient_config=lenient)
    assert {k: v for k, v in spec.config().to_dict().items() if k != "layer_norm"} == cfg  # = the defaults
    assert spec_in["height"] == spec_in["width"] == 64  # from the 16×16 peephole grid × patch 4
    assert details["config_sources"]["height"].startswith("weights")
    assert details["tensors_unused"] == unused_keys
    assert details["tensors_mapped"] == len(state) - 3 == len(out)
    assert {"lr", "val_batch_size", "drop_last"} <= set(details["ignored_config"])
    model = build_model("mim", cfg)
    model.load_state_dict(out, strict=True)
    assert count_parameters(model) == 37_945_344
    used = [v for k, v in state.items() if k not in unused_keys]
    assert sorted(round(float(v.double().sum()), 4) for v in out.values()) == sorted(
        round(float(v.double().sum()), 4) for v in used
    )


# ---- parity with OpenSTL ---------------------------------------------------------------------------
@pytest.mark.parametrize("channels,patch,filter_size", [(1, 4, 5), (3, 2, 3)])
def test_outputs_equal_openstl(channels, patch, filter_size):
    state = _state(channels, patch, k=filter_size, seed=channels)
    p = from_openstl(state, "mim", {"patch_size": patch, "pre_seq_length": 5, "aft_seq_length": 6})
    x, y = torch.rand(2, 5, channels, 16, 16), torch.rand(2, 6, channels, 16, 16)
    expected = rm.mim_predict(state, x, y, patch)  # a freshly built OpenSTL model
    with torch.no_grad():
        got = p.model(x, 6)
    assert got.shape == expected.shape == (2, 6, channels, 16, 16)
    assert _max_abs(got, expected) <= TOL and ref.relative_error(got, expected) <= TOL
    assert float(expected.std()) > 1e-2
    rep = p.entry.extra["openstl"]
    assert rep["tensors_unused"] == [f"stlstm_layer_diff.{j}.conv_last.weight" for j in range(2)]
    assert rep["tensors_mapped"] == len(state) - 2
    assert (p.spec.frames_in, p.spec.frames_out, p.spec.channels, p.spec.height) == (5, 6, channels, 16)


def test_no_state_leaks_between_predictions_unlike_openstl():
    """OpenSTL's MIMBlock keeps MIM-S's cell in `self.convlstm_c` across calls, so its second call on the
    same input differs from its first. stzoo starts every call from zero: always OpenSTL's first call."""
    state = _state(seed=3)
    p = from_openstl(state, "mim", {"patch_size": 4})
    x, y = torch.rand(2, 4, 1, 16, 16), torch.rand(2, 4, 1, 16, 16)
    first, carried = rm.mim_predict(state, x, y, 4, return_stationary=True)
    second = rm.mim_predict(state, x, y, 4, stationary=carried)
    assert _max_abs(first, second) > 1e-3  # OpenSTL's own outputs depend on the previous call
    with torch.no_grad():
        a = p.model(x, 4)
        p.model(torch.rand(2, 4, 1, 16, 16), 7)  # something else in between
        b = p.model(x, 4)
    assert torch.equal(a, b) and _max_abs(a, first) <= TOL
    assert not [k for k, v in vars(p.model).items() if isinstance(v, torch.Tensor)]  # no tensor kept on the model


def test_mim_n_is_not_run_at_the_first_step():
    """At step 1 there is no hidden-state difference yet: OpenSTL discards the MIM-N outputs and feeds zeros."""
    state = _state(seed=4)
    p = from_openstl(state, "mim", {"patch_size": 4})
    x, y = torch.rand(1, 1, 1, 16, 16), torch.rand(1, 2, 1, 16, 16)
    with torch.no_grad():
        one, two = p.model(x, 1), p.model(x, 2)
        for prm in p.model.mimn.parameters():
            prm.add_(0.3)
        assert torch.equal(p.model(x, 1), one)  # one step: MIM-N unused
        assert _max_abs(p.model(x, 2), two) > 1e-4  # from the second step on it matters
    assert _max_abs(one, rm.mim_predict(state, x, y[:, :1], 4)) <= TOL
    assert _max_abs(two, rm.mim_predict(state, x, y, 4)) <= TOL


def test_importer_reads_the_frame_size_from_the_peephole_grid():
    state = _state(patch=4, size=16)
    assert from_openstl(state, "MIM", {"height": 16}).model.patch_size == 4  # 16 = 4-cell grid × patch 4
    p = from_openstl(state, "Mim", {"in_shape": [10, 1, 16, 16]})
    assert (p.spec.height, p.spec.width, p.model.grid) == (16, 16, (4, 4))
    with pytest.raises(ConfigError, match=r"patch_size=1 with 16.*patch_size=2 with 4.*patch_size=4 with 1"):
        from_openstl(state, "mim")
    with pytest.raises(ConfigError, match=r"height=64.*4×4 patch grid"):
        from_openstl(state, "mim", {"patch_size": 4, "height": 64})
    with pytest.raises(ConfigError, match="method='predrnnpp'"):
        from_openstl(state, "mim", {"method": "PredRNNpp", "patch_size": 4})


def test_mismatched_checkpoints_are_clear_errors():
    state = _state()
    missing = {k: v for k, v in state.items() if k != "stlstm_layer_diff.1.ct_weight"}
    with pytest.raises(InputError, match=r"missing: stlstm_layer_diff\.1\.ct_weight"):
        from_openstl(missing, "mim", {"patch_size": 4})
    wrong = {**state, "stlstm_layer.2.oc_weight": torch.zeros(8, 5, 4)}
    with pytest.raises(InputError, match=r"stlstm_layer\.2\.oc_weight: \(8, 5, 4\), expected \(8, 4, 4\)"):
        from_openstl(wrong, "mim", {"patch_size": 4})
    bad_unused = {**state, "stlstm_layer_diff.0.conv_last.weight": torch.zeros(8, 8, 1, 1)}
    with pytest.raises(InputError, match=r"stlstm_layer_diff\.0\.conv_last\.weight: \(8, 8, 1, 1\)"):
        from_openstl(bad_unused, "mim", {"patch_size": 4})
    no_diff = {k: v for k, v in state.items() if not k.startswith("stlstm_layer_diff.1.")}
    with pytest.raises(InputError, match="MIM-N"):
        from_openstl(no_diff, "mim", {"patch_size": 4})
    ln = {**state, "stlstm_layer.1.conv_s_cc.1.weight": torch.ones(32, 4, 4)}
    with pytest.raises(InputError, match="layer_norm=1"):
        from_openstl(ln, "mim", {"patch_size": 4})
    uneven = rm.mim_state_dict(patch_channels=16, num_hidden=[8, 8, 4], grid=(4, 4), filter_size=3)
    with pytest.raises(ConfigError, match=r"different hidden sizes \[8, 8, 4\]"):
        from_openstl(uneven, "mim", {"patch_size": 4})
    with pytest.raises(InputError, match="does not look like OpenSTL's MIM"):
        from_openstl({"cell_list.0.conv_x.0.weight": torch.zeros(56, 16, 3, 3)}, "mim", {"patch_size": 4})


# ---- the zoo features --------------------------------------------------------------------------------
def test_config_defaults_and_size_rule():
    cfg = get_architecture("mim").config()
    assert (cfg.num_layers, cfg.num_hidden, cfg.filter_size, cfg.patch_size, cfg.height) == (4, 128, 5, 4, 64)
    with pytest.raises(ConfigError, match="multiple of patch_size"):
        build_model("mim", {"height": 18})
    with pytest.raises(ConfigError, match="num_layers"):
        build_model("mim", {"num_layers": 1})
    recipe = get_architecture("mim").recipe
    assert (recipe.lr, recipe.loss, recipe.scheduled_sampling, recipe.batch_size) == (5e-4, "mse", 0.4, 16)
    p = stzoo.create("mim", TINY)
    with pytest.raises(InputError, match=r"runs at 16×16 only.*got 32×32"):
        p.predict(np.zeros((4, 32, 32), np.float32))
    bigger, report = adapt(p, height=32, width=32)
    assert sorted(report.reinitialised) == sorted(get_architecture("mim").resolution_params(p.model.config))
    assert bigger.predict(np.zeros((4, 32, 32), np.float32)).shape == (4, 32, 32)
