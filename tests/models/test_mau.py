"""MAU (stzoo.models.mau) and its OpenSTL importer (stzoo.convert.openstl.mau).

OpenSTL is not installable from the package index: the checkpoints here are built in OpenSTL's key
layout and compared with an independent re-statement of its forward pass
(``tests/helpers/openstl_reference_mau.py``, which names the OpenSTL files it comes from).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from helpers import openstl_reference as ref  # noqa: E402
from helpers import openstl_reference_mau as rm  # noqa: E402

import stzoo
import stzoo.convert.openstl.mau as importer
import stzoo.models.mau  # noqa: F401  (registers the architecture)
from stzoo.convert import from_openstl, map_openstl_state_dict
from stzoo.convert.openstl import read_openstl_config
from stzoo.errors import ConfigError, InputError
from stzoo.models import build_model, count_parameters, get_architecture, parameters_of
from stzoo.models.mau import MAUCell
from stzoo.training.adapt import adapt

TOL = 1e-5
TINY = stzoo.models.ARCHITECTURES["mau"].tiny_config  # its tiny config, declared with its registration
# configs/mmnist/MAU.py of OpenSTL, as published
MMNIST_CONFIG = """method = 'MAU'
# scheduled sampling
scheduled_sampling = 1
sampling_stop_iter = 50000
sampling_start_value = 1.0
sampling_changing_rate = 0.00002
# model
num_hidden = '64,64,64,64'
filter_size = 5
stride = 1
patch_size = 1
layer_norm = 0
sr_size = 4
tau = 5
cell_mode = 'normal'
model_mode = 'normal'
# training
lr = 1e-3
batch_size = 16
sched = 'onecycle'"""
UNUSED = ["conv_last_sr.bias", "conv_last_sr.weight", "merge.bias", "merge.weight"]


def _max_abs(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).abs().max())


def _state(channels: int = 1, hidden=(8, 8), size: int = 16, sr: int = 2, k: int = 3, seed: int = 0):
    return rm.mau_state_dict(
        channels=channels, num_hidden=list(hidden), grid=(size // sr, size // sr), sr_size=sr, filter_size=k, seed=seed
    )


# ---- parameter counts ------------------------------------------------------------------------------
def test_openstl_mmnist_config_parameter_count(tmp_path):
    shapes = rm.mau_shapes(channels=1, num_hidden=[64] * 4, grid=(16, 16), sr_size=4, filter_size=5)
    openstl_total = sum(int(np.prod(s)) for s in shapes.values())
    unused = sum(int(np.prod(shapes[k])) for k in UNUSED)
    assert openstl_total == 4_483_588  # every OpenSTL parameter, used or not
    assert unused == 8_256 + 3 == 8_259  # merge (2N → N) and conv_last_sr (2C → C): never read by its forward
    spec = get_architecture("mau")
    assert parameters_of(spec, spec.config()) == 4_475_329 == openstl_total - unused  # the defaults
    cfg_file = tmp_path / "MAU.py"
    cfg_file.write_text(MMNIST_CONFIG)
    g = torch.Generator().manual_seed(0)
    state = {k: torch.randn(s, generator=g) * 0.01 for k, s in shapes.items()}
    raw, lenient = read_openstl_config(cfg_file)
    out, cfg, spec_in, details = map_openstl_state_dict(state, "MAU", raw, lenient_config=lenient)
    assert cfg == spec.config().to_dict()  # the published config gives stzoo's defaults
    assert spec_in["height"] == spec_in["width"] == 64  # the 16×16 LayerNorm grid × sr_size 4
    assert details["config_sources"]["height"].startswith("weights")
    assert details["config_sources"]["sr_size"] == "weights"
    assert details["config_sources"]["tau"] == "config"
    assert details["tensors_unused"] == UNUSED
    assert details["tensors_mapped"] == len(state) - 4 == len(out)
    assert {"lr", "sched", "scheduled_sampling"} <= set(details["ignored_config"])
    model = build_model("mau", cfg)
    model.load_state_dict(out, strict=True)
    assert count_parameters(model) == 4_475_329
    used = [v for k, v in state.items() if k not in UNUSED]
    assert sorted(round(float(v.double().sum()), 4) for v in out.values()) == sorted(
        round(float(v.double().sum()), 4) for v in used
    )


# ---- parity with OpenSTL ---------------------------------------------------------------------------
@pytest.mark.parametrize("channels,sr,k,tau", [(1, 4, 5, 5), (3, 2, 3, 2)])
def test_outputs_equal_openstl(channels, sr, k, tau):
    state = _state(channels, sr=sr, k=k, seed=channels)
    p = from_openstl(state, "mau", {"pre_seq_length": 5, "aft_seq_length": 6, "tau": tau})
    x, y = torch.rand(2, 5, channels, 16, 16), torch.rand(2, 6, channels, 16, 16)
    expected = rm.mau_predict(state, x, y, sr_size=sr, tau=tau)  # OpenSTL's inference call: zero mask
    with torch.no_grad():
        got = p.model(x, 6)
    assert got.shape == expected.shape == (2, 6, channels, 16, 16)
    assert _max_abs(got, expected) <= TOL and ref.relative_error(got, expected) <= TOL
    assert float(expected.std()) > 1e-2
    rep = p.entry.extra["openstl"]
    assert rep["tensors_unused"] == UNUSED and rep["tensors_mapped"] == len(state) - 4
    assert (p.spec.frames_in, p.spec.frames_out, p.spec.channels, p.spec.height) == (5, 6, channels, 16)
    assert (p.model.sr_size, p.model.tau) == (sr, tau)


@pytest.mark.parametrize("cell_mode,model_mode", [("residual", "normal"), ("normal", "recall"), ("residual", "recall")])
def test_cell_and_model_modes_equal_openstl(cell_mode, model_mode):
    state = _state(sr=4, seed=5)
    out, cfg, _, _ = map_openstl_state_dict(state, "mau", {"pre_seq_length": 4, "aft_seq_length": 3})
    model = build_model("mau", {**cfg, "cell_mode": cell_mode, "model_mode": model_mode})
    model.load_state_dict(out)
    plain = build_model("mau", cfg)
    plain.load_state_dict(out)
    x, y = torch.rand(2, 4, 1, 16, 16), torch.rand(2, 3, 1, 16, 16)
    expected = rm.mau_predict(state, x, y, sr_size=4, cell_mode=cell_mode, model_mode=model_mode)
    with torch.no_grad():
        got = model(x, 3)
        assert _max_abs(got, plain(x, 3)) > 1e-3  # the mode changes the function
    assert _max_abs(got, expected) <= TOL


def test_text_settings_follow_what_the_config_reader_supports(tmp_path):
    """cell_mode / model_mode are text; stzoo.convert.openstl reads text settings only for keys it knows
    (see importer._reads_string_settings). Either they are read, or ignored with 'normal' recorded."""
    state = _state(sr=2)
    cfg_file = tmp_path / "MAU.py"
    small = {
        "num_hidden = '64,64,64,64'": "num_hidden = '8,8'",
        "filter_size = 5": "filter_size = 3",
        "sr_size = 4": "sr_size = 2",
        "cell_mode = 'normal'": "cell_mode = 'residual'",
    }
    text = MMNIST_CONFIG
    for a, b in small.items():
        text = text.replace(a, b)
    cfg_file.write_text(text)
    p = from_openstl(state, "mau", cfg_file)
    rep = p.entry.extra["openstl"]
    if importer._STRING_SETTINGS:
        assert p.model.config.cell_mode == "residual" and rep["config_sources"]["cell_mode"] == "config"
        with pytest.raises(ConfigError, match="cell_mode"):
            from_openstl(state, "mau", {"cell_mode": "sideways"})
    else:
        assert p.model.config.cell_mode == "normal" and "cell_mode" in rep["ignored_config"]
        assert "published MAU config" in rep["config_sources"]["cell_mode"]
        with pytest.raises(ConfigError, match="cell_mode"):
            from_openstl(state, "mau", {"cell_mode": "normal"})  # a strict dict: a key it cannot read


@torch.no_grad()
def test_attention_weighs_the_last_tau_steps():
    """The trend is a convex combination of the remembered T's (weights from the remembered S's): with every
    remembered T equal it is that T whatever the S's are; with different T's the S's matter."""
    torch.manual_seed(0)
    cell = MAUCell(4, 3, (4, 4), residual=False)
    t, s = torch.randn(2, 4, 4, 4), torch.randn(2, 4, 4, 4)
    same = torch.randn(2, 4, 4, 4)
    t_att = same.expand(3, -1, -1, -1, -1)
    a = cell(t, s, t_att, torch.randn(3, 2, 4, 4, 4))
    b = cell(t, s, t_att, torch.randn(3, 2, 4, 4, 4))
    torch.testing.assert_close(a[0], b[0])
    torch.testing.assert_close(a[1], b[1])
    t_diff = torch.randn(3, 2, 4, 4, 4)
    c = cell(t, s, t_diff, torch.randn(3, 2, 4, 4, 4))
    d = cell(t, s, t_diff, torch.randn(3, 2, 4, 4, 4))
    assert _max_abs(a[0], c[0]) > 1e-3 and _max_abs(c[0], d[0]) > 1e-4
    assert cell.scale == pytest.approx(1 / (4 * 4 * 4) ** 0.5)


# ---- importer errors -----------------------------------------------------------------------------------
def test_mismatched_checkpoints_are_clear_errors():
    state = _state()
    missing = {k: v for k, v in state.items() if k != "cell_list.1.conv_s.1.bias"}
    with pytest.raises(InputError, match=r"missing: cell_list\.1\.conv_s\.1\.bias"):
        from_openstl(missing, "mau")
    wrong = {**state, "cell_list.1.conv_t.1.weight": torch.zeros(24, 8, 7)}
    with pytest.raises(InputError, match=r"cell_list\.1\.conv_t\.1\.weight: \(24, 8, 7\), expected \(24, 8, 8\)"):
        from_openstl(wrong, "mau")
    bad_unused = {**state, "merge.weight": torch.zeros(8, 8, 1, 1)}
    with pytest.raises(InputError, match=r"merge\.weight: \(8, 8, 1, 1\), expected \(8, 16, 1, 1\)"):
        from_openstl(bad_unused, "mau")
    stray = {**state, "conv_last.weight": torch.zeros(1, 8, 1, 1)}
    with pytest.raises(InputError, match=r"does not have: conv_last\.weight"):
        from_openstl(stray, "mau")
    no_dec = {k: v for k, v in state.items() if not k.startswith("decoders.")}
    with pytest.raises(InputError, match="1 stride-2 encoder conv.*0 decoder"):
        from_openstl(no_dec, "mau")
    with pytest.raises(ConfigError, match="patch_size 1 only"):
        from_openstl(state, "mau", {"patch_size": 4})
    with pytest.raises(ConfigError, match="sr_size=4"):
        from_openstl(state, "mau", {"sr_size": 4})
    with pytest.raises(ConfigError, match="height=64"):
        from_openstl(state, "mau", {"in_shape": [10, 1, 64, 64]})
    with pytest.raises(ConfigError, match="method='predrnn'"):
        from_openstl(state, "MAU", {"method": "PredRNN"})
    with pytest.raises(ConfigError, match=r"num_hidden=\[16\]"):
        from_openstl(state, "mau", {"num_hidden": "16"})
    with pytest.raises(InputError, match="does not look like OpenSTL's MAU"):
        from_openstl({"cell_list.0.conv_x.0.weight": torch.zeros(56, 16, 3, 3)}, "mau")


# ---- the zoo features --------------------------------------------------------------------------------
def test_config_defaults_size_rule_and_recipe():
    cfg = get_architecture("mau").config()
    assert (cfg.num_layers, cfg.num_hidden, cfg.filter_size, cfg.sr_size, cfg.tau, cfg.height) == (4, 64, 5, 4, 5, 64)
    with pytest.raises(ConfigError, match="multiple of sr_size"):
        build_model("mau", {"height": 66})
    with pytest.raises(ConfigError, match="sr_size"):
        build_model("mau", {"sr_size": 3})
    with pytest.raises(ConfigError, match="cell_mode"):
        build_model("mau", {"cell_mode": "recall"})
    recipe = get_architecture("mau").recipe
    assert (recipe.lr, recipe.loss, recipe.scheduled_sampling, recipe.batch_size, recipe.grad_clip) == (
        1e-3,
        "mse",
        0.4,
        16,
        0.0,
    )
    p = stzoo.create("mau", TINY)
    with pytest.raises(InputError, match=r"runs at 16×16 only.*got 32×32"):
        p.predict(np.zeros((4, 32, 32), np.float32))
    with pytest.raises(InputError, match="divisible by 2"):
        p.predict(np.zeros((4, 15, 15), np.float32))
    bigger, report = adapt(p, height=32, width=32)
    assert sorted(report.reinitialised) == sorted(
        k
        for k in p.model.state_dict()
        if any(k.startswith(pre) for pre in get_architecture("mau").resolution_params(p.model.config))
    )
    assert bigger.predict(np.zeros((4, 32, 32), np.float32)).shape == (4, 32, 32)


def test_imported_tau_survives_save_and_load(tmp_path):
    p = from_openstl(_state(seed=2), "mau", {"pre_seq_length": 4, "aft_seq_length": 4, "tau": 2})
    assert stzoo.load(p.save_pretrained(tmp_path / "mau")).model.tau == 2
