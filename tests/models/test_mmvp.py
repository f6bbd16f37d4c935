"""MMVP (stzoo.models.mmvp) and its OpenSTL importer (stzoo.convert.openstl.mmvp).

OpenSTL is not installable from the package index: the checkpoints here are built in OpenSTL's key
layout and compared with an independent re-statement of its forward pass
(``tests/helpers/openstl_reference_mmvp.py``, which names the OpenSTL files it comes from).
"""

from __future__ import annotations

import math
import re
from dataclasses import replace

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from helpers import openstl_reference as ref  # noqa: E402
from helpers import openstl_reference_mmvp as rv  # noqa: E402
from helpers.contract import absorbed_biases  # noqa: E402

import stzoo
import stzoo.convert.openstl.mmvp  # noqa: F401  (registers the importer)
import stzoo.models.mmvp  # noqa: F401  (registers the architecture)
from stzoo.convert import from_openstl, map_openstl_state_dict
from stzoo.convert.openstl import read_openstl_config
from stzoo.errors import ConfigError, InputError
from stzoo.models import build_model, count_parameters, get_architecture, parameters_of
from stzoo.training.losses import compute_loss

TOL = 1e-5
SIZES = {"hid_S": 8, "hid_T": 8, "rrdb_encoder_num": 1, "rrdb_decoder_num": 1, "rrdb_enhance_num": 1}
TINY = stzoo.models.ARCHITECTURES["mmvp"].tiny_config  # its tiny config, declared with its registration
# configs/mmnist/MMVP.py of OpenSTL, as published
MMNIST_CONFIG = """method = 'MMVP'
# model
downsample_setting = '2,2,2'
hid_S = 32
hid_T = 192
rrdb_encoder_num = 2
rrdb_decoder_num = 2
rrdb_enhance_num = 2
use_direct_predictor = True
# training
lr = 1e-3
batch_size = 16
sched = 'onecycle'"""
UNUSED = 708_832  # scale_fuser_1 26,656 + scale_fuser_2 18,624 + fuse_conv 663,552


def _max_abs(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).abs().max())


def _state(frames_in: int = 4, frames_out: int = 4, seed: int = 0, sharp: float = 30.0, **sizes):
    """Random OpenSTL weights; the matrix predictor's readout is scaled by ``sharp`` so that the predicted
    motion matrices are far from uniform and every part of the motion path shows in the output."""
    sd = rv.mmvp_state_dict(frames_in=frames_in, frames_out=frames_out, seed=seed, **{**SIZES, **sizes})
    sd["hid.predictor.out_conv.weight"] = sd["hid.predictor.out_conv.weight"] * sharp
    return sd


def _double(sd):
    return {k: v.double() if v.is_floating_point() else v for k, v in sd.items()}


# ---- parameter counts ------------------------------------------------------------------------------
def test_openstl_mmnist_config_parameter_count(tmp_path):
    shapes = rv.mmvp_shapes()  # OpenSTL's defaults = configs/mmnist/MMVP.py
    params = {k: s for k, s in shapes.items() if rv.is_parameter(k)}
    assert sum(math.prod(s) for s in params.values()) == 14_828_581  # every OpenSTL parameter, used or not
    by_module = {p: sum(math.prod(s) for k, s in params.items() if k.startswith(p)) for p in rv.UNUSED_PREFIXES}
    assert by_module == {
        "hid.scale_fuser_1.": 26_656,
        "hid.scale_fuser_2.": 18_624,
        "hid.predictor.fuse_conv.": 663_552,
    }
    spec = get_architecture("mmvp")
    assert parameters_of(spec, spec.config()) == 14_119_749 == 14_828_581 - UNUSED  # the defaults
    cfg_file = tmp_path / "MMVP.py"
    cfg_file.write_text(MMNIST_CONFIG)
    state = {
        k: (torch.randn(s) * 0.01 if rv.is_parameter(k) or "running" in k else torch.tensor(7))
        for k, s in shapes.items()
    }
    raw, lenient = read_openstl_config(cfg_file)
    out, cfg, spec_in, details = map_openstl_state_dict(state, "MMVP", raw, lenient_config=lenient)
    assert spec.config().to_dict() == cfg  # the weights give exactly stzoo's defaults
    assert (spec_in["frames_in"], spec_in["frames_out"], spec_in["height"]) == (10, 10, 64)
    assert details["config_sources"]["frames_in"] == "weights"
    unused = sorted(k for k in state if k.startswith(rv.UNUSED_PREFIXES))
    assert details["tensors_unused"] == unused and len(unused) == 18  # BatchNorm buffers of scale_fuser_2 too
    assert details["tensors_mapped"] == len(state) - 18 == len(out)
    assert {"downsample_setting", "use_direct_predictor", "lr"} <= set(details["ignored_config"])
    model = build_model("mmvp", cfg)
    model.load_state_dict(out, strict=True)
    assert count_parameters(model) == 14_119_749


# ---- parity with OpenSTL ---------------------------------------------------------------------------
@pytest.mark.parametrize("frames_in,frames_out,size", [(4, 4, 32), (3, 5, 48), (4, 1, 32)])
def test_outputs_equal_openstl(frames_in, frames_out, size):
    state = _state(frames_in, frames_out, seed=frames_in + frames_out)
    p = from_openstl(state, "mmvp", {"height": size, "width": size})
    assert (p.spec.frames_in, p.spec.frames_out, p.spec.height) == (frames_in, frames_out, size)
    x = torch.rand(2, frames_in, 1, size, size)
    expected = rv.mmvp_forward(state, x)
    with torch.no_grad():
        got = p.model(x)
    assert got.shape == expected.shape == (2, frames_out, 1, size, size)
    assert _max_abs(got, expected) <= TOL and ref.relative_error(got, expected) <= TOL
    assert float(expected.std()) > 5e-2
    # the motion matrices themselves, observed and predicted, at both scales
    want = rv.mmvp_forward(state, x, return_matrices=True)
    with torch.no_grad():
        _, f2, f3 = p.model.encoder(F.pixel_unshuffle(x.flatten(0, 1), 2))
        have = p.model.matrices(f2, f3, 2)
    for a, b in zip(have, want):
        assert a.shape == b.shape and ref.relative_error(a, b) <= TOL
    assert float(want[0][:, frames_in - 1 :].max()) > 3 * float(want[0][:, : frames_in - 1].max())  # sharp predictions
    # in float64 the two agree to rounding: the same function, not a close one
    with torch.no_grad():
        got64 = p.model.double()(x.double())
    assert _max_abs(got64, rv.mmvp_forward(_double(state), x.double())) <= 1e-10
    rep = p.entry.extra["openstl"]
    assert rep["tensors_unused"] == sorted(k for k in state if k.startswith(rv.UNUSED_PREFIXES))
    assert rep["tensors_mapped"] == len(state) - 18


def test_openstl_calling_convention_ten_frames_to_ten(tmp_path):
    """OpenSTL's test step: ``self.model(batch_x)`` on the 10 input frames of a 64×64 sequence."""
    state = _state(10, 10, seed=3)
    cfg_file = tmp_path / "MMVP.py"
    cfg_file.write_text(
        MMNIST_CONFIG.replace("hid_S = 32", "hid_S = 8")
        .replace("hid_T = 192", "hid_T = 8")
        .replace("_num = 2", "_num = 1")
    )
    p = from_openstl(state, "MMVP", cfg_file)
    assert (p.spec.frames_in, p.spec.frames_out, p.spec.height) == (10, 10, 64)
    x = torch.rand(1, 10, 1, 64, 64)
    with torch.no_grad():
        assert _max_abs(p.forecast_tensor(x, 10), rv.mmvp_forward(state, x)) <= TOL


def test_the_reference_reads_every_mapped_tensor_and_no_unused_one():
    """The reference forward (OpenSTL's) touches exactly the tensors the importer maps."""

    class Recorder(dict):
        def __init__(self, *a):
            super().__init__(*a)
            self.read = set()

        def __getitem__(self, key):
            self.read.add(key)
            return super().__getitem__(key)

        def get(self, key, default=None):
            if key in self:
                self.read.add(key)
            return super().get(key, default)

    state = _state()
    rec = Recorder(state)
    rv.mmvp_forward(rec, torch.rand(1, 4, 1, 32, 32))
    used = {k for k in state if not k.endswith("num_batches_tracked")} - {
        k for k in state if k.startswith(rv.UNUSED_PREFIXES)
    }
    assert rec.read == used


def test_importer_checks_the_config_against_the_weights():
    state = _state()
    with pytest.raises(ConfigError, match=r"pre_seq_length|frames_in"):
        from_openstl(state, "mmvp", {"in_shape": [10, 1, 64, 64]})
    with pytest.raises(ConfigError, match="hid_S=16"):
        from_openstl(state, "mmvp", {"hid_S": 16})
    with pytest.raises(ConfigError, match="multiples of 16"):
        from_openstl(state, "mmvp", {"height": 40})
    with pytest.raises(ConfigError, match="method='tau'"):
        from_openstl(state, "mmvp", {"method": "TAU"})
    p = from_openstl(state, "mmvp", {"in_shape": [4, 1, 48, 32], "aft_seq_length": 4})
    assert (p.spec.height, p.spec.width) == (48, 32) and p.entry.extra["openstl"]["config_sources"][
        "height"
    ] == "config"


def test_mismatched_checkpoints_are_clear_errors():
    state = _state()
    missing = {k: v for k, v in state.items() if k != "dec.outc.bias"}
    with pytest.raises(InputError, match=r"missing: dec\.outc\.bias"):
        from_openstl(missing, "mmvp")
    wrong = {**state, "filter.filter_block.1.4.running_var": torch.ones(5)}
    with pytest.raises(InputError, match=r"filter\.filter_block\.1\.4\.running_var: \(5,\), expected \(16,\)"):
        from_openstl(wrong, "mmvp")
    bad_unused = {**state, "hid.predictor.fuse_conv.weight": torch.zeros(8, 8, 3, 3)}
    with pytest.raises(InputError, match=r"hid\.predictor\.fuse_conv\.weight: \(8, 8, 3, 3\)"):
        from_openstl(bad_unused, "mmvp")
    stray = {**state, "enc.block_rrdb.3.RDB1.conv1.weight": torch.zeros(4, 8, 3, 3)}
    with pytest.raises(InputError, match=r"numbered \[0, 3\]"):
        from_openstl(stray, "mmvp")
    rgb = rv.mmvp_state_dict(channels=3, frames_in=4, frames_out=4, **SIZES)
    with pytest.raises(InputError, match="scrambles pixels"):
        from_openstl(rgb, "mmvp")
    not_direct = {k: v for k, v in state.items() if "conv_translate" not in k}
    with pytest.raises(InputError, match="use_direct_predictor=False"):
        from_openstl(not_direct, "mmvp")
    x4 = {**state, "dec.upsample_block.0.up.weight": torch.zeros(32, 16, 4, 4)}
    with pytest.raises(InputError, match="downsample_setting='2,2,2'"):
        from_openstl(x4, "mmvp")
    with pytest.raises(InputError, match="does not look like OpenSTL's MMVP"):
        from_openstl({"cell_list.0.conv_x.0.weight": torch.zeros(56, 16, 3, 3)}, "mmvp")


# ---- the zoo features --------------------------------------------------------------------------------
def test_config_defaults_recipe_and_input_contract():
    spec = get_architecture("mmvp")
    cfg = spec.config()
    assert (cfg.frames_in, cfg.frames_out, cfg.hid_S, cfg.hid_T, cfg.rrdb_encoder_num, cfg.height) == (
        10,
        10,
        32,
        192,
        2,
        64,
    )
    assert not spec.any_frames and spec.size_multiple(cfg) == 16
    assert (spec.recipe.lr, spec.recipe.loss, spec.recipe.batch_size, spec.recipe.grad_clip) == (1e-3, "mse", 16, 0.0)
    with pytest.raises(ConfigError, match="multiple of 16"):
        build_model("mmvp", {"height": 40})
    with pytest.raises(ConfigError, match="frames_in"):
        build_model("mmvp", {"frames_in": 1})
    model = build_model("mmvp", TINY).eval()
    with pytest.raises(InputError, match="maps 4 frames to 4 per call; got 3 frames"):
        model(torch.rand(1, 3, 1, 32, 32))
    with pytest.raises(InputError, match=r"divisible by 16, got 40×32"):
        model(torch.rand(1, 4, 1, 40, 32))
    with torch.no_grad():  # the matrix sizes follow the input: any multiple of 16 runs
        assert model(torch.rand(1, 4, 1, 48, 64)).shape == (1, 4, 1, 48, 64)


def test_predict_beyond_frames_out_by_rollout():
    p = stzoo.create("mmvp", {**TINY, "frames_out": 3})
    frames = np.random.default_rng(0).random((4, 32, 32)).astype(np.float32)
    long = p.predict(frames, horizon=8)
    assert long.shape == (8, 32, 32) and np.isfinite(long).all() and long.std() > 1e-4
    np.testing.assert_allclose(long[:3], p.predict(frames), atol=1e-6)
    x = torch.from_numpy(frames)[None, :, None]
    with torch.no_grad():
        first = p.model(x)
        second = p.model(torch.cat([x, first], 1)[:, -4:])  # the window slides over its own predictions
    np.testing.assert_allclose(long[3:6], second[0, :, 0].clamp(0, 1).numpy(), atol=1e-5)


def test_training_loss_is_mse_and_batchnorm_absorbs_exactly_these_biases():
    model = build_model("mmvp", TINY)
    recipe = replace(get_architecture("mmvp").recipe, frames_in=4, frames_out=4)
    seq = torch.rand(3, 8, 1, 32, 32)
    loss = compute_loss(model, recipe, seq, 0.0, progress=0.5)
    torch.testing.assert_close(loss, F.mse_loss(model(seq[:, :4]), seq[:, 4:]))  # train mode: batch statistics
    # a conv bias right before a BatchNorm has no gradient in training mode (the batch mean absorbs it; it
    # still shifts the output in eval mode, against the running mean): only those may stay put
    absorbed = (
        r"^(filter_(high|low)\.conv\d|predictor\.(pre1|pre2|down1|down2|fuse|up)|"
        r"predictor\.time\d\.conv)\.bias$"
    )
    # the two filters' 3 + 3 and the predictor's 8: what the contract's training check exempts
    named = {k for k, _ in model.named_parameters() if re.match(absorbed, k)}
    assert len(named) == 6 + 8 and absorbed_biases(model, seq[:, :4]) == named
