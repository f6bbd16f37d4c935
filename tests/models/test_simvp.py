"""SimVP (IncepU) and SimVP-gSTA: parameter counts, OpenSTL import parity, and the zoo features.

OpenSTL is not installable from the package index, so its checkpoints are built in OpenSTL's exact
key layout and compared with an independent re-statement of its forward pass
(``tests/helpers/openstl_reference_simvp.py``, which names the OpenSTL files it comes from).
"""

from __future__ import annotations

import dataclasses
import inspect
import json

import numpy as np
import pytest
import torch
from helpers import openstl_reference as ref_tau  # noqa: E402
from helpers import openstl_reference_simvp as ref  # noqa: E402

import stzoo
import stzoo.convert.openstl.simvp  # noqa: F401 (registers the importer)
import stzoo.models.simvp as simvp
from stzoo.cli.main import main
from stzoo.convert import from_openstl, map_openstl_state_dict
from stzoo.errors import ConfigError, InputError
from stzoo.models import build_model, count_parameters, parameters_of
from stzoo.models.base import Recipe
from stzoo.training.adapt import adapt
from stzoo.training.losses import compute_loss

TOL = 1e-5  # max |stzoo − OpenSTL| / max |OpenSTL|, fp32
PAPER = {"gsta": 46_769_665, "incepu": 57_946_113}  # configs/mmnist/simvp/SimVP_gSTA.py, SimVP_IncepU.py
# the two OpenSTL config files, verbatim
OPENSTL_PY = {
    "incepu": "method = 'SimVP'\nmodel_type = 'IncepU'  # SimVP.V1\nhid_S = 64\nhid_T = 512\nN_T = 8\nN_S = 4\n"
    "lr = 1e-3\nbatch_size = 16",
    "gsta": "method = 'SimVP'\nspatio_kernel_enc = 3\nspatio_kernel_dec = 3\nmodel_type = 'gSTA'\nhid_S = 64\n"
    "hid_T = 512\nN_T = 8\nN_S = 4\nlr = 1e-3\nbatch_size = 16\ndrop_path = 0",
}
# OpenSTL-layout checkpoints: 2 channels, 4 frames; IncepU with hid_T/2 = 16 (8 groups) and 12 (1 group)
SMALL = {
    "gsta": dict(channels=2, frames=4, hid_S=8, hid_T=24, N_S=4, N_T=3, mlp_ratio=4.0),
    "incepu": dict(channels=2, frames=4, hid_S=8, hid_T=32, N_S=4, N_T=3),
    "incepu_1group": dict(channels=2, frames=4, hid_S=8, hid_T=24, N_S=4, N_T=2),
}
# stzoo models for the zoo features: 1 channel, 4 → 4 frames, 16×16
TINY = {
    "gsta": {
        "model_type": "gsta",
        "frames": 4,
        "height": 16,
        "width": 16,
        "hid_S": 4,
        "hid_T": 8,
        "N_S": 2,
        "N_T": 2,
        "mlp_ratio": 2.0,
    },
    "incepu": {
        "model_type": "incepu",
        "frames": 4,
        "height": 16,
        "width": 16,
        "hid_S": 4,
        "hid_T": 16,
        "N_S": 2,
        "N_T": 3,
    },
}
KINDS = ["gsta", "incepu"]


def small_state(name: str, seed: int = 0) -> dict[str, torch.Tensor]:
    return ref.simvp_state_dict(name.split("_")[0], **SMALL[name], seed=seed)


def tiny(kind: str, seed: int = 0) -> stzoo.Predictor:
    torch.manual_seed(seed)
    return stzoo.create("simvp", TINY[kind])


# ---- sizes -------------------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", KINDS)
def test_openstl_mmnist_configs_have_openstl_parameter_counts(kind):
    cfg = simvp.SimVPConfig(model_type=kind)  # the defaults are OpenSTL's Moving MNIST settings
    assert (cfg.frames, cfg.hid_S, cfg.hid_T, cfg.N_S, cfg.N_T, cfg.mlp_ratio) == (10, 64, 512, 4, 8, 8.0)
    assert parameters_of(simvp.ARCHITECTURE, cfg) == PAPER[kind]
    assert simvp.SimVPConfig().model_type == "gsta"  # OpenSTL's SimVP_Model default


# ---- OpenSTL import ------------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", KINDS)
def test_paper_checkpoint_with_openstl_config_file_converts_exactly(tmp_path, kind):
    state = ref.simvp_state_dict(kind, seed=1)
    assert ref.parameter_count(state) == PAPER[kind]
    config = tmp_path / ("SimVP_IncepU.py" if kind == "incepu" else "SimVP_gSTA.py")
    config.write_text(OPENSTL_PY[kind])
    p = from_openstl(state, "SimVP", config)
    rep = p.entry.extra["openstl"]
    assert rep["tensors_mapped"] == len(state) and rep["tensors_unused"] == []
    assert rep["ignored_config"] == ["batch_size", "lr"]
    assert (
        rep["openstl_model"]
        == {"incepu": "SimVP_Model (model_type='IncepU')", "gsta": "SimVP_Model (model_type='gSTA')"}[kind]
    )
    expected = {
        "frames": 10,
        "channels": 1,
        "model_type": kind,
        "hid_S": 64,
        "hid_T": 512,
        "N_S": 4,
        "N_T": 8,
        "spatio_kernel": 3,
        "height": 64,
        "width": 64,
    }
    if kind == "gsta":
        expected.update(mlp_ratio=8.0, kernel_size=21, drop=0.0, drop_path=0.0)
    assert rep["config"] == expected and rep["parameters"] == PAPER[kind] == count_parameters(p.model)
    x = torch.rand(1, 10, 1, 64, 64)
    with torch.no_grad():
        got, want = p.model(x), ref.simvp_forward(state, x)
    assert want.std() > 0.05 and ref_tau.relative_error(got, want) <= TOL
    # every OpenSTL value arrives unchanged, each in exactly one stzoo tensor
    assert sorted(round(float(v.double().sum()), 3) for v in p.model.state_dict().values()) == sorted(
        round(float(v.double().sum()), 3) for v in state.values()
    )


@pytest.mark.parametrize("name", ["gsta", "incepu", "incepu_1group"])
def test_small_checkpoints_equal_openstl_from_a_lightning_file(tmp_path, name):
    state = small_state(name, seed=2)
    path = tmp_path / "epoch=9.ckpt"
    torch.save(
        {
            "state_dict": {"model." + k: v for k, v in state.items()},
            "pytorch-lightning_version": "2.1.0",
            "hyper_parameters": {"method": "SimVP", "model_type": name.split("_")[0], "lr": 1e-3},
        },
        path,
    )
    p = from_openstl(path, "simvp", {"in_shape": [4, 2, 16, 16]})
    assert p.entry.extra["openstl"]["prefix"] == "model." and p.spec.channels == 2 and p.spec.height == 16
    x = torch.rand(2, 4, 2, 16, 16)
    with torch.no_grad():
        got, want = p.model(x), ref.simvp_forward(state, x)
    assert want.std() > 0.05 and ref_tau.relative_error(got, want) <= TOL
    if name == "incepu_1group":  # hid_T / 2 = 12 is not a multiple of 8: OpenSTL falls back to 1 group
        assert p.model.translator.enc[0].branches[0].conv.groups == 1
    elif name == "incepu":
        assert p.model.translator.enc[0].branches[0].conv.groups == 8


def test_swapped_gate_halves_are_visibly_wrong():
    """The parity bound above catches a mapping mistake: reading gSTA's [f; g] halves the other way round
    is far outside it."""
    state = small_state("gsta", seed=3)
    key = "hid.enc.1.block.attn.spatial_gating_unit.conv1."
    swapped = dict(state)
    for t in ("weight", "bias"):
        w = state[key + t]
        swapped[key + t] = torch.cat([w[w.shape[0] // 2 :], w[: w.shape[0] // 2]])
    x = torch.rand(2, 4, 2, 16, 16)
    with torch.no_grad():
        assert ref_tau.relative_error(from_openstl(swapped, "simvp").model(x), ref.simvp_forward(state, x)) > 1e-3


def test_openstl_longer_horizon_rollout_is_the_predictors():
    """OpenSTL's SimVP._predict with aft_seq_length = 10 > pre_seq_length = 4: 2 passes + 2 frames."""
    state = small_state("incepu", seed=4)
    p = from_openstl(state, "simvp", {"pre_seq_length": 4, "aft_seq_length": 10})
    assert (p.spec.frames_in, p.spec.frames_out) == (4, 10) and p.model.frames_out == 4
    x = torch.rand(1, 4, 2, 16, 16)
    with torch.no_grad():
        assert ref_tau.relative_error(p.forecast_tensor(x, 10), ref.simvp_predict(state, x, 10)) <= TOL
        assert ref_tau.relative_error(p.forecast_tensor(x, 3), ref.simvp_predict(state, x, 3)) <= TOL


@pytest.mark.parametrize("arch", ["SimVP", "simvp", "simvp_gsta", "SimVP-gSTA", "SIMVP_GSTA"])
def test_openstl_method_names_any_case(arch):
    p = from_openstl(small_state("gsta"), arch)
    assert p.model.arch == "simvp" and p.model.config.model_type == "gsta"
    assert p.entry.extra["openstl"]["arch"] == "simvp"


def test_tau_goes_to_arch_tau_and_tau_refuses_simvp_translators():
    tau_state = ref_tau.tau_state_dict(channels=2, frames=4, hid_S=8, hid_T=24, N_S=4, N_T=3, mlp_ratio=4.0)
    with pytest.raises(InputError, match="TAU's translator.*arch='tau'"):
        from_openstl(tau_state, "simvp")
    gsta, incepu = small_state("gsta"), small_state("incepu")
    with pytest.raises(ConfigError, match="model_type='tau'.*arch='tau'"):
        from_openstl(gsta, "simvp", {"model_type": "TAU"})
    with pytest.raises(ConfigError, match="method='TAU'.*arch='tau'"):
        from_openstl(gsta, "simvp", {"method": "TAU"})
    # the TAU importer keeps refusing them (stzoo/convert/openstl/tau.py)
    with pytest.raises(InputError, match="gSTA"):
        from_openstl(gsta, "tau")
    with pytest.raises(InputError, match="not TAU's"):
        from_openstl(incepu, "tau")


def test_config_is_checked_against_the_weights():
    gsta, incepu = small_state("gsta"), small_state("incepu")
    with pytest.raises(ConfigError, match=r"model_type='gsta'.*model_type='incepu'"):
        from_openstl(incepu, "simvp", {"model_type": "gSTA"})
    with pytest.raises(ConfigError, match=r"model_type='incepu'.*model_type='gsta'"):
        from_openstl(gsta, "simvp_gsta", {"model_type": "IncepU"})
    with pytest.raises(ConfigError, match=r"model_type='convnext'.*model_type='gsta'"):
        from_openstl(gsta, "simvp", {"model_type": "convnext"})
    with pytest.raises(ConfigError, match="none of OpenSTL's SimVP translators"):
        from_openstl(gsta, "simvp", {"model_type": "resnet"})
    with pytest.raises(ConfigError, match=r"hid_T=64.*hid_T=32"):
        from_openstl(incepu, "simvp", {"hid_T": 64})
    with pytest.raises(ConfigError, match=r"frames_in=5.*frames"):
        from_openstl(incepu, "simvp", {"pre_seq_length": 5})
    with pytest.raises(ConfigError, match="spatio_kernel_dec=5"):
        from_openstl(gsta, "simvp", {"spatio_kernel_dec": 5})
    with pytest.raises(ConfigError, match="method='convlstm'"):
        from_openstl(gsta, "simvp", {"method": "ConvLSTM"})
    with pytest.raises(ConfigError, match="num_hidden"):  # a ConvLSTM setting
        from_openstl(gsta, "simvp", {"num_hidden": "8,8"})


def test_unknown_missing_and_misshaped_tensors_are_named():
    incepu, gsta = small_state("incepu"), small_state("gsta")
    missing = {k: v for k, v in incepu.items() if k != "hid.dec.1.layers.2.norm.bias"}
    with pytest.raises(InputError, match=r"missing: hid\.dec\.1\.layers\.2\.norm\.bias"):
        from_openstl(missing, "simvp")
    extra = {**incepu, "hid.dec.1.layers.4.conv.weight": torch.zeros(32, 2, 13, 13)}  # a fifth branch
    with pytest.raises(InputError, match=r"does not have: hid\.dec\.1\.layers\.4\.conv\.weight"):
        from_openstl(extra, "simvp")
    wrong = {**incepu, "hid.enc.2.layers.3.conv.weight": torch.zeros(32, 2, 9, 9)}
    with pytest.raises(
        InputError,
        match=r"hid\.enc\.2\.layers\.3\.conv\.weight: \(32, 2, 9, 9\), "
        r"expected \(32, 2, 11, 11\)",
    ):
        from_openstl(wrong, "simvp")
    wrong = {**gsta, "hid.enc.1.block.attn.spatial_gating_unit.conv_spatial.weight": torch.zeros(24, 1, 5, 5)}
    with pytest.raises(InputError, match=r"conv_spatial\.weight: \(24, 1, 5, 5\), expected \(24, 1, 7, 7\)"):
        from_openstl(wrong, "simvp")
    no_counter = {k: v for k, v in gsta.items() if k != "hid.enc.2.block.norm1.num_batches_tracked"}
    with pytest.raises(InputError, match="num_batches_tracked"):
        from_openstl(no_counter, "simvp")
    short_dec = {k: v for k, v in incepu.items() if not k.startswith("hid.dec.2.")}
    with pytest.raises(InputError, match="3 encoder blocks but 2 decoder blocks"):
        from_openstl(short_dec, "simvp")
    # a block none of OpenSTL's SimVP translators has
    other = {k: v for k, v in gsta.items() if ".block." not in k}
    other["hid.enc.0.block.conv_xy.weight"] = torch.zeros(32, 1, 7, 7)
    with pytest.raises(InputError, match="none of OpenSTL's: not IncepU.*gSTA.*MetaFormer"):
        from_openstl(other, "simvp")
    lstm = ref_tau.convlstm_state_dict(patch_channels=4, num_hidden=[4])
    with pytest.raises(InputError, match="SimVP"):
        from_openstl(lstm, "simvp")


def test_cli_converts_into_a_folder_that_stzoo_load_loads(tmp_path, capsys):
    state = small_state("incepu", seed=7)
    ckpt = tmp_path / "mmnist_simvp_incepu.pth"
    torch.save({"state_dict": state, "epoch": 200}, ckpt)
    config = tmp_path / "SimVP_IncepU.py"
    config.write_text(
        OPENSTL_PY["incepu"]
        .replace("hid_S = 64", "hid_S = 8")
        .replace("hid_T = 512", "hid_T = 32")
        .replace("N_T = 8", "N_T = 3")
    )
    out = tmp_path / "converted"
    assert main(["convert", "openstl", str(ckpt), "--arch", "SimVP", "--config", str(config), "--out", str(out)]) == 0
    assert "SimVP_Model (model_type='IncepU')" in capsys.readouterr().out
    p = stzoo.load(out)
    assert p.model.arch == "simvp" and p.model.config.model_type == "incepu"
    x = torch.rand(1, 4, 2, 16, 16)
    with torch.no_grad():
        assert ref_tau.relative_error(p.model(x), ref.simvp_forward(state, x)) <= TOL
    card = (out / "README.md").read_text(encoding="utf-8")
    assert "## Origin" in card and "mmnist_simvp_incepu.pth" in card and "no tensor was dropped" in card


def test_map_state_dict_reports_sources():
    out, cfg, spec, details = map_openstl_state_dict(small_state("gsta"), "simvp", {"drop_path": 0.1})
    assert cfg["drop_path"] == 0.1 and details["config_sources"]["drop_path"] == "config"
    assert details["config_sources"]["model_type"] == "weights"
    assert (spec["frames_in"], spec["frames_out"]) == (4, 4)
    assert set(out) == set(build_model("simvp", cfg).state_dict())


# ---- the model and the zoo features --------------------------------------------------------------------
def test_config_rules():
    assert simvp.SimVPConfig(model_type="IncepU").model_type == "incepu"  # OpenSTL's spelling is accepted
    cfg = simvp.SimVPConfig(model_type="incepu", hid_S=16)
    assert simvp.SimVPConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg
    with pytest.raises(ConfigError, match="model_type"):
        build_model("simvp", {"model_type": "tau"})
    with pytest.raises(ConfigError, match="multiple of 8"):  # GroupNorm(8) over frames·hid_S = 12
        build_model("simvp", {"model_type": "incepu", "frames": 3, "hid_S": 4, "hid_T": 16})
    build_model("simvp", {"model_type": "incepu", "frames": 3, "hid_S": 4, "hid_T": 8, "N_T": 2})  # 1 group
    with pytest.raises(ConfigError, match="even"):
        build_model("simvp", {"N_S": 3})
    source = inspect.getsource(simvp.SimVPConfig)
    for f in dataclasses.fields(simvp.SimVPConfig):
        line = next(ln for ln in source.splitlines() if ln.strip().startswith(f"{f.name}:"))
        assert "#" in line, f.name


def test_gsta_stochastic_depth_follows_openstl():
    model = build_model("simvp", {**TINY["gsta"], "N_T": 4, "drop_path": 0.1})
    rates = [b.drop_path.p for b in model.translator.blocks]
    np.testing.assert_allclose(rates, [0.01, 0.04, 0.07, 0.1], atol=1e-7)  # linspace(0.01, 0.1, 4)
    zero = build_model("simvp", {**TINY["gsta"], "N_T": 3})
    np.testing.assert_allclose([b.drop_path.p for b in zero.translator.blocks], [0.01, 0.005, 0.0], atol=1e-7)


@pytest.mark.parametrize("kind", KINDS)
def test_frames_params_are_exactly_the_frame_dependent_weights(kind):
    spec = simvp.ARCHITECTURE
    cfg4, cfg6 = spec.make_config(TINY[kind]), spec.make_config({**TINY[kind], "frames": 6})
    with torch.device("meta"):
        s4, s6 = simvp.SimVP(cfg4).state_dict(), simvp.SimVP(cfg6).state_dict()
    changed = {k for k in s4 if s4[k].shape != s6[k].shape}
    prefixes = spec.frames_params(cfg4)
    assert changed and all(k.startswith(tuple(prefixes)) for k in changed)
    assert all(any(k.startswith(p) for k in changed) for p in prefixes)
    assert set(spec.channel_params(cfg4)) <= set(s4)
    p6, report = adapt(tiny(kind), frames_in=6, frames_out=6)
    assert set(report.reinitialised) >= changed and all(k.startswith(tuple(prefixes)) for k in report.reinitialised)
    assert p6.predict(np.zeros((6, 16, 16), np.uint8)).shape == (6, 16, 16)


@pytest.mark.parametrize("kind", KINDS)
def test_the_recipe_loss_is_openstls(kind):
    model = build_model("simvp", TINY[kind])
    recipe = Recipe(**{**dataclasses.asdict(simvp.ARCHITECTURE.recipe), "frames_in": 4, "frames_out": 4})
    assert (recipe.loss, recipe.lr, recipe.grad_clip) == ("mse", 1e-3, 0.0)
    seq = torch.rand(3, 8, 1, 16, 16)
    model.eval()  # the recipe's loss is OpenSTL's: MSE of one pass against the next frames
    with torch.no_grad():
        torch.testing.assert_close(
            compute_loss(model, recipe, seq, 0.0, progress=0.5),
            torch.nn.functional.mse_loss(model(seq[:, :4]), seq[:, 4:]),
        )
