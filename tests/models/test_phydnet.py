"""PhyDNet (stzoo.models.phydnet) and its OpenSTL importer (stzoo.convert.openstl.phydnet).

OpenSTL is not installable from the package index: the checkpoints here are built in OpenSTL's key
layout and compared with an independent re-statement of its forward pass and moment loss
(``tests/helpers/openstl_reference_phydnet.py``, which names the OpenSTL files it comes from).
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch
from helpers import openstl_reference as ref  # noqa: E402
from helpers import openstl_reference_phydnet as rp  # noqa: E402

import stzoo
import stzoo.convert.openstl.phydnet  # noqa: F401  (registers the importer)
import stzoo.models.phydnet as phydnet
from stzoo.convert import from_openstl, map_openstl_state_dict
from stzoo.convert.openstl import read_openstl_config
from stzoo.errors import ConfigError, InputError
from stzoo.models import build_model, count_parameters, get_architecture, parameters_of
from stzoo.training.losses import compute_loss

TOL = 1e-5
TINY = stzoo.models.ARCHITECTURES["phydnet"].tiny_config  # its tiny config, declared with its registration
SMALL = {"nf": 16, "conv_hidden": [8, 32]}  # OpenSTL layout at a test size: 2·nf = 32 channels, ConvLSTM [8, 32]
# configs/mmnist/PhyDNet.py of OpenSTL, as published
MMNIST_CONFIG = """method = 'PhyDNet'
# model
patch_size = 4
# training
lr = 1e-3
batch_size = 16
sched = 'onecycle'"""
K2M = ["k2m._M0", "k2m._M1", "k2m._invM0", "k2m._invM1"]


def _max_abs(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).abs().max())


def _aliases(state: dict) -> list[str]:
    return sorted(k for k in state if k.startswith(("phycell.", "convcell.")))


# ---- parameter counts ------------------------------------------------------------------------------
def test_openstl_mmnist_config_parameter_count(tmp_path):
    shapes = rp.phydnet_shapes()  # OpenSTL's fixed sizes: nf 32, PhyCell 49 × 7×7 on 64, ConvLSTM [128, 128, 64]
    shared = [k for k in shapes if k.startswith(("encoder.phycell.", "encoder.convcell."))]
    params = {k: s for k, s in shapes.items() if k not in shared and not k.startswith("k2m.")}
    assert sum(int(np.prod(s)) for s in params.values()) == 3_091_732  # model.parameters() counts shared ones once
    spec = get_architecture("phydnet")
    assert parameters_of(spec, spec.config()) == 3_091_732  # the defaults: every OpenSTL parameter
    cfg_file = tmp_path / "PhyDNet.py"
    cfg_file.write_text(MMNIST_CONFIG)
    state = rp.phydnet_state_dict()
    raw, lenient = read_openstl_config(cfg_file)
    out, cfg, _, details = map_openstl_state_dict(state, "PhyDNet", raw, lenient_config=lenient)
    assert cfg == spec.config().to_dict()  # the published config gives stzoo's defaults
    assert details["config_sources"]["patch_size"] == "config"
    assert details["tensors_unused"] == sorted(K2M + _aliases(state))
    assert len(details["tensors_unused"]) == 4 + 8 + 6
    assert details["tensors_mapped"] == len(out) == len(state) - 18
    assert {"lr", "batch_size", "sched"} <= set(details["ignored_config"])
    model = build_model("phydnet", cfg)
    model.load_state_dict(out, strict=True)
    assert count_parameters(model) == 3_091_732


# ---- parity with OpenSTL ---------------------------------------------------------------------------
@pytest.mark.parametrize("channels,patch", [(1, 4), (3, 2)])
def test_outputs_equal_openstl(channels, patch):
    state = rp.phydnet_state_dict(channels=channels, seed=channels, **SMALL)
    p = from_openstl(state, "phydnet", {"patch_size": patch, "pre_seq_length": 5, "aft_seq_length": 6})
    x = torch.rand(2, 5, channels, 16, 16)
    expected = rp.phydnet_predict(state, x, 6, patch)  # OpenSTL's inference: from the 5 input frames only
    with torch.no_grad():
        got = p.model(x, 6)
    assert got.shape == expected.shape == (2, 6, channels, 16, 16)
    assert _max_abs(got, expected) <= TOL and ref.relative_error(got, expected) <= TOL
    assert float(expected.std()) > 1e-2
    rep = p.entry.extra["openstl"]
    assert rep["tensors_unused"] == sorted(K2M + _aliases(state))
    assert (p.spec.frames_in, p.spec.frames_out, p.spec.channels, p.model.patch_size) == (5, 6, channels, patch)


def test_patch_size_is_read_as_openstl_reads_it():
    state = rp.phydnet_state_dict(**SMALL)
    x = torch.rand(1, 3, 1, 16, 16)
    p = from_openstl(state, "phydnet", {"patch_size": 1, "aft_seq_length": 2})  # OpenSTL builds 4 for 1
    assert p.model.patch_size == 4 and "OpenSTL builds 4" in p.entry.extra["openstl"]["config_sources"]["patch_size"]
    with torch.no_grad():
        assert _max_abs(p.model(x, 2), rp.phydnet_predict(state, x, 2, 1)) <= TOL
    assert from_openstl(state, "phydnet").entry.extra["openstl"]["config_sources"]["patch_size"].startswith("default")


@torch.no_grad()
def test_moment_loss_equals_openstl():
    state = rp.phydnet_state_dict(**SMALL)
    p = from_openstl(state, "phydnet")
    got, want = phydnet.moment_loss(p.model), rp.phydnet_moment_loss(state)
    assert float(got) > 1.0 and abs(float(got) - float(want)) <= 1e-5 * float(want)
    m, inv = rp.moment_matrices(7)
    torch.testing.assert_close(phydnet.moment_matrix(7), m)  # OpenSTL's K2M buffer
    # a filter bank whose moments are exactly the targets has zero loss: w_n = M⁻¹ e_n M⁻ᵀ
    ideal = torch.einsum("au,nuv,bv->nab", inv, phydnet.moment_constraints(7, dtype=torch.float64), inv)
    p.model.phycell.phi_conv.weight.copy_(ideal[:, None].expand(-1, 32, -1, -1))
    assert float(phydnet.moment_loss(p.model)) < 1e-8


def test_training_forward_is_openstls_with_teacher_forcing_and_moments():
    state = rp.phydnet_state_dict(**SMALL)
    p = from_openstl(state, "phydnet", {"pre_seq_length": 3, "aft_seq_length": 4})
    model = p.model
    seq = torch.rand(2, 7, 1, 16, 16)
    recipe = replace(get_architecture("phydnet").recipe, frames_in=3, frames_out=4)
    assert 1 - 1 / recipe.scheduled_sampling == pytest.approx(0.4)  # OpenSTL's ratio after 200 epochs
    with torch.no_grad():
        # progress 0: ratio 1, always teacher forcing
        pred, target, extra = phydnet.phydnet_training_forward(model, recipe, seq, 0.0)
        want = rp.phydnet_train_predictions(state, seq[:, :3], seq[:, 3:], True)
        assert pred.shape == target.shape == (2, 6, 1, 16, 16) and torch.equal(target, seq[:, 1:])
        assert _max_abs(pred, want) <= TOL
        assert _max_abs(pred, rp.phydnet_train_predictions(state, seq[:, :3], seq[:, 3:], False)) > 1e-4
        assert float(extra) == pytest.approx(float(rp.phydnet_moment_loss(state)) / 6, rel=1e-5)
        # ratio 0 (past the end of the decay): always the model's own predictions
        free = phydnet.phydnet_training_forward(model, replace(recipe, scheduled_sampling=0.5), seq, 0.6)[0]
        assert _max_abs(free, rp.phydnet_train_predictions(state, seq[:, :3], seq[:, 3:], False)) <= TOL
        # in between: one draw per batch, so a batch is all one or all the other
        torch.manual_seed(0)
        kinds = set()
        for _ in range(12):
            mid = phydnet.phydnet_training_forward(model, recipe, seq, 5 / 6)[0]  # ratio 0.5
            kinds.add("teacher" if _max_abs(mid, pred) <= TOL else "free" if _max_abs(mid, free) <= TOL else "mixed")
        assert kinds == {"teacher", "free"}


# ---- importer errors -----------------------------------------------------------------------------------
def test_mismatched_checkpoints_are_clear_errors():
    state = rp.phydnet_state_dict(**SMALL)
    missing = {k: v for k, v in state.items() if k != "encoder.decoder_Dr.upc2.main.1.bias"}
    with pytest.raises(InputError, match=r"missing: encoder\.decoder_Dr\.upc2\.main\.1\.bias"):
        from_openstl(missing, "phydnet")
    wrong = {**state, "encoder.encoder_Ep.c2.main.0.weight": torch.zeros(32, 32, 5, 5)}
    with pytest.raises(
        InputError, match=r"encoder_Ep\.c2\.main\.0\.weight: \(32, 32, 5, 5\), expected \(32, 32, 3, 3\)"
    ):
        from_openstl(wrong, "phydnet")
    diverged = {**state, "convcell.cell_list.1.conv.bias": state["convcell.cell_list.1.conv.bias"] + 1}
    with pytest.raises(InputError, match=r"convcell\.cell_list\.1\.conv\.bias differs"):
        from_openstl(diverged, "phydnet")
    bad_k2m = {**state, "k2m._M0": torch.zeros(5, 5)}
    with pytest.raises(InputError, match=r"k2m\._M0: \(5, 5\), expected \(7, 7\)"):
        from_openstl(bad_k2m, "phydnet")
    with pytest.raises(ConfigError, match="method='mau'"):
        from_openstl(state, "PhyDNet", {"method": "MAU"})
    with pytest.raises(ConfigError, match="do not describe"):
        from_openstl(state, "phydnet", {"num_hidden": 64})
    with pytest.raises(ConfigError, match="channels=3"):
        from_openstl(state, "phydnet", {"in_shape": [10, 3, 64, 64]})
    with pytest.raises(InputError, match="does not look like OpenSTL's PhyDNet"):
        from_openstl({"cell_list.0.conv_x.0.weight": torch.zeros(56, 16, 3, 3)}, "phydnet")
    # the cells stored once, under the model's own names (e.g. after de-duplicating shared tensors), also convert
    once = {k: v for k, v in state.items() if not k.startswith(("encoder.phycell.", "encoder.convcell."))}
    x = torch.rand(1, 3, 1, 16, 16)
    with torch.no_grad():
        assert torch.equal(from_openstl(once, "phydnet").model(x, 2), from_openstl(state, "phydnet").model(x, 2))


# ---- the zoo features --------------------------------------------------------------------------------
def test_config_defaults_size_rule_and_recipe():
    cfg = get_architecture("phydnet").config()
    assert (cfg.patch_size, cfg.nf, cfg.phy_kernel, cfg.conv_layers, cfg.conv_hidden, cfg.conv_kernel) == (
        4,
        32,
        7,
        3,
        128,
        3,
    )
    with pytest.raises(ConfigError, match="multiple of 16"):
        build_model("phydnet", {"nf": 24})
    with pytest.raises(ConfigError, match="patch_size"):
        build_model("phydnet", {"patch_size": 8})
    recipe = get_architecture("phydnet").recipe
    assert (recipe.lr, recipe.loss, recipe.batch_size, recipe.grad_clip) == (1e-3, "mse", 16, 0.0)
    assert get_architecture("phydnet").training_forward is phydnet.phydnet_training_forward
    p = stzoo.create("phydnet", TINY)
    with pytest.raises(InputError, match="divisible by 4"):
        p.predict(np.zeros((4, 18, 18), np.float32))
    out = p.predict(np.zeros((4, 32, 24), np.float32))  # any multiple of patch_size runs
    assert out.shape == (4, 32, 24) and (out > 0).all() and (out < 1).all()  # sigmoid output


def test_imported_patch_size_survives_save_and_load(tmp_path):
    p = from_openstl(rp.phydnet_state_dict(seed=2, **SMALL), "phydnet", {"patch_size": 2, "height": 16, "width": 16})
    assert stzoo.load(p.save_pretrained(tmp_path / "phydnet")).model.patch_size == 2


def test_training_loss_includes_the_moment_term():
    torch.manual_seed(0)
    model = build_model("phydnet", TINY).train()
    recipe = replace(get_architecture("phydnet").recipe, frames_in=4, frames_out=4)
    with torch.no_grad():
        loss = compute_loss(model, recipe, torch.rand(2, 8, 1, 16, 16), 0.5, progress=0.5)
        assert float(loss) > float(phydnet.moment_loss(model)) / 7 > 0
