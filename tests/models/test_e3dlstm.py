"""E3D-LSTM (stzoo.models.e3dlstm) and its OpenSTL importer (stzoo.convert.openstl.e3dlstm).

OpenSTL is not installable from the package index: the checkpoints here are built in OpenSTL's key
layout and compared with an independent re-statement of its forward pass
(``tests/openstl_reference_e3dlstm.py``, which names the OpenSTL files it comes from and keeps the
weights stzoo leaves out).
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from helpers import openstl_reference as ref  # noqa: E402
from helpers import openstl_reference_e3dlstm as re3  # noqa: E402

import stzoo
import stzoo.convert.openstl.e3dlstm  # noqa: F401  (registers the importer)
import stzoo.models.e3dlstm  # noqa: F401  (registers the architecture)
from stzoo.convert import from_openstl, map_openstl_state_dict
from stzoo.convert.openstl import read_openstl_config
from stzoo.errors import ConfigError, InputError
from stzoo.models import build_model, count_parameters, get_architecture, parameters_of
from stzoo.training.adapt import adapt
from stzoo.training.losses import compute_loss

TOL = 1e-5
TINY = stzoo.models.ARCHITECTURES["e3dlstm"].tiny_config  # its tiny config, declared with its registration
# configs/mmnist/E3DLSTM.py of OpenSTL, as published
MMNIST_CONFIG = """method = 'E3DLSTM'
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
sched = 'onecycle'"""


def _max_abs(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).abs().max())


def _state(
    channels: int = 1, patch: int = 4, hidden=(8, 8), size: int = 16, k: int = 3, window: int = 2, seed: int = 0
):
    return re3.e3dlstm_state_dict(
        patch_channels=channels * patch * patch,
        num_hidden=list(hidden),
        grid=(size // patch, size // patch),
        filter_size=k,
        window=window,
        seed=seed,
    )


# ---- parameter counts ------------------------------------------------------------------------------
def test_openstl_mmnist_config_parameter_count(tmp_path):
    shapes = re3.e3dlstm_shapes(patch_channels=16, num_hidden=[128] * 4, grid=(16, 16), filter_size=5)
    openstl_total = sum(int(np.prod(s)) for s in shapes.values())
    assert openstl_total == 51_347_456  # every OpenSTL parameter, used or not
    gm_keys = [f"cell_list.{i}.conv_gm.0.conv3d.weight" for i in range(4)]
    conv_gm = sum(int(np.prod(shapes[k])) for k in gm_keys)
    forget_rows = sum(int(np.prod(shapes[f"cell_list.{i}.conv_x.0.conv3d.weight"])) // 7 for i in range(4))
    assert conv_gm == 4 * 3_276_800 == 13_107_200 and forget_rows == 102_400 + 3 * 819_200 == 2_560_000
    spec = get_architecture("e3dlstm")
    assert parameters_of(spec, spec.config()) == 35_680_256 == openstl_total - conv_gm - forget_rows  # the defaults
    cfg_file = tmp_path / "E3DLSTM.py"
    cfg_file.write_text(MMNIST_CONFIG)
    state = {k: torch.randn(s) * 0.01 for k, s in shapes.items()}
    raw, lenient = read_openstl_config(cfg_file)
    out, cfg, spec_in, details = map_openstl_state_dict(state, "E3DLSTM", raw, lenient_config=lenient)
    assert {k: v for k, v in spec.config().to_dict().items() if k != "layer_norm"} == cfg  # = the defaults
    assert spec_in["height"] == spec_in["width"] == 64  # from the 16×16 LayerNorm grid × patch 4
    assert details["config_sources"]["height"].startswith("weights")
    assert details["tensors_unused"] == sorted(gm_keys)
    assert details["tensors_mapped"] == len(state) - 4 == len(out)
    assert {"lr", "sched", "sampling_stop_iter"} <= set(details["ignored_config"])
    model = build_model("e3dlstm", cfg)
    model.load_state_dict(out, strict=True)
    assert count_parameters(model) == 35_680_256
    # conv_x lost exactly its last seventh (the forget rows); everything else is copied unchanged
    x0 = state["cell_list.1.conv_x.0.conv3d.weight"]
    assert torch.equal(out["cells.1.conv_x.weight"], x0[: 6 * 128])
    assert torch.equal(out["cells.2.norm_c.bias"], state["cell_list.2._norm_c_t.bias"])


# ---- parity with OpenSTL ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    "channels,patch,filter_size,window,layers", [(1, 4, 5, 2, 2), (3, 2, 3, 2, 3), (1, 4, 3, 3, 2)]
)
def test_outputs_equal_openstl(channels, patch, filter_size, window, layers):
    state = _state(channels, patch, hidden=(8,) * layers, k=filter_size, window=window, seed=channels + window)
    p = from_openstl(state, "e3dlstm", {"patch_size": patch, "pre_seq_length": 5, "aft_seq_length": 6})
    assert p.model.config.window_length == window
    x, y = torch.rand(2, 5, channels, 16, 16), torch.rand(2, 6, channels, 16, 16)
    expected = re3.e3dlstm_predict(state, x, y, patch)
    with torch.no_grad():
        got = p.model(x, 6)
    assert got.shape == expected.shape == (2, 6, channels, 16, 16)
    assert _max_abs(got, expected) <= TOL and ref.relative_error(got, expected) <= TOL
    assert float(expected.std()) > 1e-1
    # in float64 the two agree to rounding: the same function, not a close one
    sd64 = {k: v.double() for k, v in state.items()}
    expected64 = re3.e3dlstm_predict(sd64, x.double(), y.double(), patch)
    with torch.no_grad():
        got64 = p.model.double()(x.double(), 6)
    assert _max_abs(got64, expected64) <= 1e-10
    rep = p.entry.extra["openstl"]
    assert rep["tensors_unused"] == [f"cell_list.{i}.conv_gm.0.conv3d.weight" for i in range(layers)]
    assert rep["tensors_mapped"] == len(state) - layers
    assert (p.spec.frames_in, p.spec.frames_out, p.spec.channels, p.spec.height) == (5, 6, channels, 16)


def test_openstl_calling_convention_ten_frames_to_ten():
    """OpenSTL's test: the 20-frame sequence in, a zero mask, the last 10 of its 19 one-step outputs."""
    state = _state(seed=11)
    p = from_openstl(state, "E3DLSTM", {"patch_size": 4})
    assert (p.spec.frames_in, p.spec.frames_out) == (10, 10)
    x, y = torch.rand(1, 10, 1, 16, 16), torch.rand(1, 10, 1, 16, 16)
    expected = re3.e3dlstm_predict(state, x, y, 4)
    with torch.no_grad():
        assert _max_abs(p.forecast_tensor(x, 10), expected) <= TOL
        ctx = p.model(x, 10, return_context=True)  # all 19 one-step predictions, OpenSTL's next_frames
    dat = ref.reshape_patch(torch.cat([x, y], 1).permute(0, 1, 3, 4, 2), 4)
    full = re3.e3dlstm_model_forward(state, dat, torch.zeros(1, 9, 4, 4, 16), pre_seq_length=10, aft_seq_length=10)
    full = ref.reshape_patch_back(full, 4).permute(0, 1, 4, 2, 3)
    assert ctx.shape == full.shape == (1, 19, 1, 16, 16) and _max_abs(ctx, full) <= TOL


def test_the_dropped_weights_are_dead_in_openstl():
    """conv_gm and the forget rows of conv_x never change OpenSTL's output: the global memory stays zero."""
    state = _state(seed=5)
    x, y = torch.rand(2, 4, 1, 16, 16), torch.rand(2, 4, 1, 16, 16)
    base = re3.e3dlstm_predict(state, x, y, 4)
    other = dict(state)
    for i in range(2):
        other[f"cell_list.{i}.conv_gm.0.conv3d.weight"] = torch.randn_like(
            state[f"cell_list.{i}.conv_gm.0.conv3d.weight"]
        )
        w = state[f"cell_list.{i}.conv_x.0.conv3d.weight"].clone()
        w[6 * 8 :] = torch.randn_like(w[6 * 8 :]) * 3
        other[f"cell_list.{i}.conv_x.0.conv3d.weight"] = w
    assert torch.equal(re3.e3dlstm_predict(other, x, y, 4), base)
    w = state["cell_list.0.conv_x.0.conv3d.weight"].clone()
    w[5 * 8 : 6 * 8] += 0.5  # g' (kept) does matter
    assert _max_abs(re3.e3dlstm_predict({**state, "cell_list.0.conv_x.0.conv3d.weight": w}, x, y, 4), base) > 1e-3


def test_no_state_leaks_between_predictions():
    p = from_openstl(_state(seed=3), "e3dlstm", {"patch_size": 4})
    x = torch.rand(2, 4, 1, 16, 16)
    with torch.no_grad():
        a = p.model(x, 4)
        p.model(torch.rand(2, 4, 1, 16, 16), 7)
        b = p.model(x, 4)
    assert torch.equal(a, b)
    assert not [k for k, v in vars(p.model).items() if isinstance(v, torch.Tensor)]


def test_importer_reads_window_and_frame_size_from_the_weights():
    state = _state(patch=4, size=16)
    p = from_openstl(state, "e3dlstm", {"in_shape": [10, 1, 16, 16]})
    assert (p.spec.height, p.spec.width, p.model.grid, p.model.patch_size) == (16, 16, (4, 4), 4)
    with pytest.raises(ConfigError, match=r"patch_size=1 with 16.*patch_size=2 with 4.*patch_size=4 with 1"):
        from_openstl(state, "e3dlstm")
    with pytest.raises(ConfigError, match=r"height=64.*4×4 patch grid"):
        from_openstl(state, "e3dlstm", {"patch_size": 4, "height": 64})
    with pytest.raises(ConfigError, match="method='mim'"):
        from_openstl(state, "e3dlstm", {"method": "MIM", "patch_size": 4})
    with pytest.raises(ConfigError, match="stride=5"):  # KTH's stride 2 is implemented (parity: test_openstl_zoo)
        from_openstl(state, "e3dlstm", {"patch_size": 4, "stride": 5})
    assert from_openstl(state, "e3dlstm", {"patch_size": 4, "stride": 2}).model.config.stride == 2


def test_mismatched_checkpoints_are_clear_errors():
    state = _state()
    missing = {k: v for k, v in state.items() if k != "cell_list.1.conv_new_gm.0.conv3d.weight"}
    with pytest.raises(InputError, match=r"missing: cell_list\.1\.conv_new_gm\.0\.conv3d\.weight"):
        from_openstl(missing, "e3dlstm", {"patch_size": 4})
    wrong = {**state, "cell_list.1._norm_c_t.bias": torch.zeros(8, 2, 4, 5)}
    with pytest.raises(InputError, match=r"cell_list\.1\._norm_c_t\.bias: \(8, 2, 4, 5\), expected \(8, 2, 4, 4\)"):
        from_openstl(wrong, "e3dlstm", {"patch_size": 4})
    bad_unused = {**state, "cell_list.0.conv_gm.0.conv3d.weight": torch.zeros(8, 8, 2, 3, 3)}
    with pytest.raises(InputError, match=r"cell_list\.0\.conv_gm\.0\.conv3d\.weight: \(8, 8, 2, 3, 3\)"):
        from_openstl(bad_unused, "e3dlstm", {"patch_size": 4})
    six_rows = {**state, "cell_list.1.conv_x.0.conv3d.weight": torch.zeros(48, 8, 2, 3, 3)}
    with pytest.raises(InputError, match=r"7·hidden = 56 output rows"):
        from_openstl(six_rows, "e3dlstm", {"patch_size": 4})
    ln = {**state, "cell_list.0.conv_h.1.weight": torch.ones(32, 2, 4, 4)}
    with pytest.raises(InputError, match="layer_norm=1"):
        from_openstl(ln, "e3dlstm", {"patch_size": 4})
    uneven = _state(hidden=(8, 4))
    with pytest.raises(ConfigError, match=r"different hidden sizes \[8, 4\]"):
        from_openstl(uneven, "e3dlstm", {"patch_size": 4})
    with pytest.raises(InputError, match="does not look like OpenSTL's E3D-LSTM"):
        from_openstl({"cell_list.0.conv_x.0.weight": torch.zeros(56, 16, 3, 3)}, "e3dlstm", {"patch_size": 4})


# ---- the zoo features --------------------------------------------------------------------------------
def test_config_defaults_recipe_and_size_rule():
    cfg = get_architecture("e3dlstm").config()
    assert (cfg.num_layers, cfg.num_hidden, cfg.filter_size, cfg.patch_size, cfg.window_length, cfg.height) == (
        4,
        128,
        5,
        4,
        2,
        64,
    )
    with pytest.raises(ConfigError, match="multiple of patch_size"):
        build_model("e3dlstm", {"height": 18})
    with pytest.raises(ConfigError, match="window_length"):
        build_model("e3dlstm", {"window_length": 1})
    recipe = get_architecture("e3dlstm").recipe
    assert (recipe.lr, recipe.loss, recipe.scheduled_sampling, recipe.batch_size, recipe.grad_clip) == (
        1e-4,
        "mse",
        0.4,
        16,
        0.0,
    )
    p = stzoo.create("e3dlstm", TINY)
    with pytest.raises(InputError, match=r"runs at 16×16 only.*got 32×32"):
        p.predict(np.zeros((4, 32, 32), np.float32))
    bigger, report = adapt(p, height=32, width=32)
    assert sorted(report.reinitialised) == [
        "cells.0.norm_c.bias",
        "cells.0.norm_c.weight",
        "cells.1.norm_c.bias",
        "cells.1.norm_c.weight",
    ]
    assert bigger.predict(np.zeros((4, 32, 32), np.float32)).shape == (4, 32, 32)


def test_training_loss_is_mse_plus_l1():
    model = build_model("e3dlstm", TINY)
    recipe = replace(get_architecture("e3dlstm").recipe, frames_in=4, frames_out=4)
    seq = torch.rand(2, 8, 1, 16, 16)
    # past the scheduled-sampling phase (progress >= 0.4) the rollout is deterministic: check the formula
    loss = compute_loss(model, recipe, seq, 0.0, progress=0.9)
    pred = model(seq[:, :4], 4, return_context=True)
    target = seq[:, 1:]
    torch.testing.assert_close(loss, F.mse_loss(pred, target) + F.l1_loss(pred, target))
