"""SimVP's ten MetaFormer translators (OpenSTL's MetaVP): parameter counts, OpenSTL import parity, the contract.

OpenSTL is not installable from the package index, so its checkpoints are built in OpenSTL's exact key
layout (timm 0.6's, buffers included) and compared with an independent re-statement of its forward pass
(``tests/helpers/openstl_reference_simvp_metaformer.py``, which names the OpenSTL and timm files it
comes from).
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from helpers import openstl_reference_simvp_metaformer as ref
from helpers.contract import (
    absorbed_biases,
    assert_onnx_matches_torch,
    assert_rollout_feeds_predictions_back,
    assert_save_load_identical,
    assert_trains,
)
from helpers.openstl_reference import relative_error

import stzoo
import stzoo.convert.openstl.simvp  # noqa: F401 (registers the importer)
import stzoo.models.simvp as simvp
from stzoo.convert import from_openstl
from stzoo.errors import ConfigError, InputError
from stzoo.models import build_model, parameters_of
from stzoo.training.adapt import adapt

TOL = 1e-5  # max |stzoo − OpenSTL| / max |OpenSTL|, fp32
TYPES = list(ref.TYPES)
# OpenSTL's ``Params`` column for configs/mmnist/simvp/SimVP_<type>.py (docs/en/model_zoos/video_benchmarks.md,
# their numbers, in millions rounded to 0.1)
OPENSTL_PARAMS_M = {
    "vit": 46.1,
    "swin": 46.1,
    "uniformer": 44.8,
    "mlp": 38.2,
    "convmixer": 3.9,
    "poolformer": 37.1,
    "convnext": 37.3,
    "van": 44.5,
    "hornet": 45.7,
    "moga": 46.8,
}
# OpenSTL-layout checkpoints: 2 channels, 4 frames, 32×32 (a 16×16 translator map: Swin's 4×4 windows shift)
SMALL = dict(channels=2, frames=4, height=32, width=32, hid_S=8, hid_T=24, N_S=2, N_T=3, mlp_ratio=2.0)
# stzoo models for the contract: 1 channel, 4 → 4 frames, 16×16 (an 8×8 map); UniFormer with a middle block
TINY = {"frames": 4, "height": 16, "width": 16, "hid_S": 4, "hid_T": 8, "N_S": 2, "N_T": 2, "mlp_ratio": 2.0}


def tiny_config(kind: str) -> dict:
    return {**TINY, "model_type": kind, **({"N_T": 3} if kind == "uniformer" else {})}


def tiny(kind: str, seed: int = 0) -> stzoo.Predictor:
    torch.manual_seed(seed)
    return stzoo.create("simvp", tiny_config(kind))


def clip(p: stzoo.Predictor, batch: int = 2, frames: int | None = None, seed: int = 0) -> torch.Tensor:
    s = p.spec
    gen = torch.Generator().manual_seed(seed)
    return torch.rand(batch, frames or s.frames_in, s.channels, s.height, s.width, generator=gen)


# ---- sizes -------------------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", TYPES)
def test_openstl_mmnist_configs_have_openstls_reported_parameter_counts(kind):
    cfg = simvp.SimVPConfig(model_type=kind)  # hid_S 64, hid_T 512, N_S 4, N_T 8, mlp_ratio 8, 64×64, as OpenSTL's
    assert round(parameters_of(simvp.ARCHITECTURE, cfg) / 1e6, 1) == OPENSTL_PARAMS_M[kind]


@pytest.mark.parametrize("kind", TYPES)
def test_parameters_equal_the_openstl_layout_at_a_small_config(kind):
    state = ref.metaformer_state_dict(kind, **SMALL, timm_buffers=False)
    model = build_model("simvp", {**{k: v for k, v in SMALL.items()}, "model_type": kind})
    mine = model.state_dict()
    assert sorted(v.numel() for v in mine.values()) == sorted(v.numel() for v in state.values())


# ---- OpenSTL import ------------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", TYPES)
def test_small_checkpoints_equal_openstl(kind):
    state = ref.metaformer_state_dict(kind, **SMALL, seed=1)
    p = from_openstl(state, "SimVP", {"in_shape": [4, 2, 32, 32]})
    rep = p.entry.extra["openstl"]
    assert p.model.config.model_type == kind
    assert rep["config"]["mlp_ratio"] == (8.0 if kind == "convmixer" else 2.0)  # ConvMixer has no MLP: the default
    assert rep["openstl_model"].startswith("SimVP_Model (model_type=")
    x = torch.rand(2, 4, 2, 32, 32)
    with torch.no_grad():
        got, want = p.model(x), ref.metaformer_forward(state, x)
    assert want.std() > 0.05 and relative_error(got, want) <= TOL
    used = set(state) - set(rep["tensors_unused"])
    assert rep["tensors_mapped"] == len(used) == len(p.model.state_dict())
    # a changed translator weight changes the forecast far beyond the bound: the comparison sees the translator
    key = "hid.enc.1.reduction.weight" if "hid.enc.1.reduction.weight" in state else "hid.enc.1.block.norm2.weight"
    key = key if key in state else next(k for k in state if k.startswith("hid.enc.1.block.") and "weight" in k)
    moved = {**state, key: state[key] * 1.5}
    with torch.no_grad():
        assert relative_error(ref.metaformer_forward(moved, x), want) > 1e3 * TOL


def test_uniformer_blocks_are_chosen_as_openstl_does():
    """MHSA where a block keeps its width after the first; so the last block too when hid_T = T·hid_S."""
    same = {**SMALL, "hid_T": 32}  # = frames · hid_S
    state = ref.metaformer_state_dict("uniformer", **same, seed=2)
    assert "hid.enc.2.block.gamma_1" in state and "hid.enc.0.block.gamma_1" not in state
    p = from_openstl(state, "simvp")
    x = torch.rand(1, 4, 2, 32, 32)
    with torch.no_grad():
        assert relative_error(p.model(x), ref.metaformer_forward(state, x)) <= TOL
    kinds = [type(b.block).__name__ for b in p.model.translator.blocks]
    assert kinds == ["UniFormerConvBlock", "UniFormerAttentionBlock", "UniFormerAttentionBlock"]


@pytest.mark.parametrize("timm_buffers", [True, False])
def test_swin_with_and_without_timm_buffers(timm_buffers):
    state = ref.metaformer_state_dict("swin", **SMALL, seed=3, timm_buffers=timm_buffers)
    p = from_openstl(state, "simvp", {"height": 32, "width": 32})
    rep = p.entry.extra["openstl"]
    expected = ["hid.enc.0.block.attn.relative_position_index", "hid.enc.1.block.attn.relative_position_index"]
    expected += ["hid.enc.1.block.attn_mask", "hid.enc.2.block.attn.relative_position_index"]
    assert rep["tensors_unused"] == (sorted(expected) if timm_buffers else [])
    assert [b.block.shift for b in p.model.translator.blocks] == [0, 2, 0]  # 4×4 windows, odd blocks shift
    x = torch.rand(1, 4, 2, 32, 32)
    with torch.no_grad():
        assert relative_error(p.model(x), ref.metaformer_forward(state, x)) <= TOL


def test_swin_window_follows_the_training_size_and_is_checked():
    assert simvp.swin_window(16, 16) == (4, True) and simvp.swin_window(14, 14) == (7, True)
    assert simvp.swin_window(64, 64) == (4, True) and simvp.swin_window(160, 160) == (8, True)
    assert simvp.swin_window(4, 8) == (4, False)  # the window covers the map: no shift (timm)
    state = ref.metaformer_state_dict("swin", **{**SMALL, "height": 56, "width": 56}, seed=4)  # 28×28: 7×7
    with pytest.raises(ConfigError, match="7×7 windows.*4×4 windows.*in_shape"):
        from_openstl(state, "simvp")  # the default 64×64 gives 4×4 windows
    p = from_openstl(state, "simvp", {"in_shape": [4, 2, 56, 56]})
    x = torch.rand(1, 4, 2, 56, 56)
    with torch.no_grad():
        assert relative_error(p.model(x), ref.metaformer_forward(state, x)) <= TOL
    bad = dict(state)
    bad["hid.enc.0.block.attn.relative_position_index"] = torch.zeros(49, 49, dtype=torch.long)
    with pytest.raises(InputError, match="relative_position_index"):
        from_openstl(bad, "simvp", {"in_shape": [4, 2, 56, 56]})
    odd = {**state, "hid.enc.0.block.attn_mask": state["hid.enc.1.block.attn_mask"]}  # block 0 does not shift
    with pytest.raises(InputError, match=r"does not have: hid\.enc\.0\.block\.attn_mask"):
        from_openstl(odd, "simvp", {"in_shape": [4, 2, 56, 56]})
    # any multiple of 2 · 7 runs; others are refused with the reason
    p.model(torch.rand(1, 4, 2, 28, 42))
    with pytest.raises(InputError, match="7×7 windows.*divisible by 14"):
        p.model(torch.rand(1, 4, 2, 32, 32))


def test_mlp_mixer_reads_its_resolution_from_the_token_mlp():
    square = ref.metaformer_state_dict("mlp", **SMALL, seed=5)
    p = from_openstl(square, "simvp")  # 256 positions: a 16×16 map, 32×32 frames
    assert (p.spec.height, p.spec.width) == (32, 32)
    wide = ref.metaformer_state_dict("mlp", **{**SMALL, "width": 64}, seed=5)  # 16×32 map
    with pytest.raises(ConfigError, match="512 positions, not a square"):
        from_openstl(wide, "simvp")
    with pytest.raises(ConfigError, match="8×16 translator map.*512 positions"):
        from_openstl(wide, "simvp", {"in_shape": [4, 2, 16, 32]})
    p = from_openstl(wide, "simvp", {"height": 32})
    assert (p.spec.height, p.spec.width) == (32, 64)
    x = torch.rand(1, 4, 2, 32, 64)
    with torch.no_grad():
        assert relative_error(p.model(x), ref.metaformer_forward(wide, x)) <= TOL
    with pytest.raises(InputError, match="runs at 32×64 only.*adapt"):
        p.model(torch.rand(1, 4, 2, 32, 32))
    q, report = adapt(tiny("mlp"), height=32, width=32)
    prefixes = tuple(simvp.ARCHITECTURE.resolution_params(tiny("mlp").model.config))
    assert report.reinitialised and all(k.startswith(prefixes) for k in report.reinitialised)
    assert q.predict(np.zeros((4, 32, 32), np.uint8)).shape == (4, 32, 32)


@pytest.mark.parametrize(("spelling", "kind"), [("MLPMixer", "mlp"), ("MogaNet", "moga"), ("mlp", "mlp")])
def test_openstl_config_files_and_spellings(tmp_path, spelling, kind):
    state = ref.metaformer_state_dict(kind, **SMALL, seed=6)
    config = tmp_path / f"SimVP_{spelling}.py"
    config.write_text(
        f"method = 'SimVP'\nspatio_kernel_enc = 3\nspatio_kernel_dec = 3\nmodel_type = '{spelling}'\nhid_S = 8\n"
        "hid_T = 24\nN_T = 3\nN_S = 2\nlr = 1e-3\nbatch_size = 16\ndrop_path = 0\nsched = 'onecycle'\n"
        "in_shape = [4, 2, 32, 32]\n"
    )
    p = from_openstl(state, "SimVP", config)
    assert p.model.config.model_type == kind and simvp.SimVPConfig(model_type=spelling).model_type == kind
    with pytest.raises(ConfigError, match=r"model_type='van'.*model_type="):
        from_openstl(state, "simvp", {"model_type": "VAN", "in_shape": [4, 2, 32, 32]})


def test_metaformer_checkpoints_are_strict():
    state = ref.metaformer_state_dict("convnext", **SMALL, seed=7)
    missing = {k: v for k, v in state.items() if k != "hid.enc.1.block.gamma"}
    with pytest.raises(InputError, match="gamma"):
        from_openstl(missing, "simvp")
    extra = {**state, "hid.enc.1.block.mlp.norm.weight": torch.ones(48)}
    with pytest.raises(InputError, match=r"does not have: hid\.enc\.1\.block\.mlp\.norm\.weight"):
        from_openstl(extra, "simvp")
    wrong = {**state, "hid.enc.1.block.conv_dw.weight": torch.zeros(24, 1, 5, 5)}
    with pytest.raises(InputError, match=r"conv_dw\.weight: \(24, 1, 5, 5\), expected \(24, 1, 7, 7\)"):
        from_openstl(wrong, "simvp")


def test_config_rules_for_the_metaformers():
    with pytest.raises(ConfigError, match="multiples of 8"):  # 8 heads over 3·4 = 12 channels
        build_model("simvp", {**TINY, "model_type": "vit", "frames": 3})
    with pytest.raises(ConfigError, match="windows must tile"):
        build_model("simvp", {**TINY, "model_type": "swin", "height": 20, "width": 20})  # 10×10 map, 4×4 windows
    build_model("simvp", {**TINY, "model_type": "convmixer", "frames": 3})  # no heads: any width


# ---- the contract, per translator ---------------------------------------------------------------------
@pytest.mark.parametrize("kind", TYPES)
def test_contract_forecast_save_load_and_training(tmp_path, kind):
    p = tiny(kind)
    assert 0 < sum(v.numel() for v in p.model.parameters()) < 300_000
    x = clip(p)
    with torch.no_grad():
        assert float(p.forecast_tensor(x, 9).std()) > 0
    assert_rollout_feeds_predictions_back(p, x, 9)  # 9 > frames_out = 4: the predictions are fed back
    q = assert_save_load_identical(p, tmp_path / kind, x)
    assert q.model.config.model_type == kind
    recipe = dataclasses.replace(simvp.ARCHITECTURE.recipe, frames_in=4, frames_out=4)
    seq = clip(p, batch=3, frames=8, seed=3)
    assert_trains(p.model, recipe, seq, may_vanish=absorbed_biases(p.model, seq[:, :4]))


# The (dynamo) export costs ~6 s of CPU per model: these six cover every op the ten blocks use (ViT's
# attention is UniFormer's global block's; ConvNeXt's channel LayerNorm is HorNet's; VAN and ConvMixer are
# depthwise / pointwise convs, BatchNorm and GELU, as gSTA, which tests/models/test_contract.py exports).
@pytest.mark.parametrize("kind", ["swin", "uniformer", "mlp", "hornet", "moga", "poolformer"])
def test_contract_onnx_export_runs_in_onnxruntime_like_torch(tmp_path, kind):
    p = tiny(kind, seed=4)
    result = assert_onnx_matches_torch(p, tmp_path / f"{kind}.onnx", 4, 4, verify=False, any_frames=False)
    assert result.input_shape == ("batch", 4, 1, 16, 16)
