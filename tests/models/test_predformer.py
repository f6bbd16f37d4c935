"""PredFormer (Quadruplet-TSST): parameter count, parity with the authors' code through the importer, the
position embedding, and the generic machinery (create / predict, adapt, save / load, compute_loss, ONNX).

The authors' code (github.com/yyyujintang/PredFormer) is not installable from the package index, so its
checkpoints are built in its exact key layout and compared with an independent re-statement of its forward
pass (``tests/helpers/openstl_reference_predformer.py``, which names the files it comes from)."""

from __future__ import annotations

import dataclasses
import json

import pytest
import torch
from helpers import openstl_reference_predformer as ref  # noqa: E402

import stzoo
import stzoo.convert.openstl.predformer  # noqa: F401  (registers the importer)
import stzoo.models.predformer as pf
from stzoo.convert.openstl import from_openstl, map_openstl_state_dict
from stzoo.convert.openstl.predformer import predformer_config
from stzoo.errors import ConfigError, InputError
from stzoo.models import build_model, count_parameters, get_architecture, parameters_of
from stzoo.training.adapt import adapt
from stzoo.training.losses import compute_loss

TOL = 1e-5  # max |stzoo − authors| / max |authors|, fp32
PAPER_COUNT = 25_297_728  # configs/mmnist/PredFormer.py with Ndepth 6 (TSST); the paper's Table 2: 25.3 M
# the authors' configs/mmnist/PredFormer.py, verbatim
AUTHORS_PY = """method = 'PredFormer'

model_config = {
    # image h w c
    'height': 64,
    'width': 64,
    'num_channels': 1,
    # video length in and out
    'pre_seq': 10,
    'after_seq': 10,
    # patch size
    'patch_size': 8,
    'dim': 256,
    'heads': 8,
    'dim_head': 32,
    # dropout
    'dropout': 0.0,
    'attn_dropout': 0.0,
    'drop_path': 0.0,
    'scale_dim': 4,
    # depth
    'depth': 1,
    'Ndepth': 6 # For FullAttention-24, for BinaryST, BinaryST, FacST, FacTS-12, for TST,STS-8, for TSST, STTS-6

}
"""
SMALL = dict(patch_size=4, dim=16, heads=2, dim_head=8, scale_dim=2, depth=2, Ndepth=2)
TINY = stzoo.models.ARCHITECTURES["predformer"].tiny_config  # its tiny config, declared with its registration


def _seq(b=2, t=8, c=1, h=16, w=16, seed=0):
    return torch.rand(b, t, c, h, w, generator=torch.Generator().manual_seed(seed))


# ---- sizes and config --------------------------------------------------------------------------------
def test_default_config_is_the_authors_mmnist_tsst_with_its_parameter_count():
    spec = get_architecture("predformer")
    cfg = spec.config()
    assert (cfg.frames, cfg.channels, cfg.height, cfg.width, cfg.patch_size) == (10, 1, 64, 64, 8)
    assert (cfg.dim, cfg.heads, cfg.dim_head, cfg.scale_dim, cfg.depth, cfg.Ndepth) == (256, 8, 32, 4, 1, 6)
    assert (cfg.dropout, cfg.attn_dropout, cfg.drop_path) == (0.0, 0.0, 0.0)
    assert spec.config.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg
    assert parameters_of(spec, cfg) == PAPER_COUNT
    assert sum(v.numel() for v in ref.predformer_state_dict().values()) == PAPER_COUNT
    r = spec.recipe
    assert (r.lr, r.weight_decay, r.batch_size, r.epochs, r.loss, r.grad_clip) == (1e-3, 1e-2, 16, 2000, "mse", 0.0)
    assert not spec.any_frames and spec.frames_params(cfg) == [] and spec.resolution_params(cfg) == []


def test_bad_config_values_and_inputs_are_refused():  # the comment on every field: test_protocol.py
    for bad, match in [
        ({"dim": 255}, "even"),
        ({"heads": 0}, "heads"),
        ({"Ndepth": "6"}, "whole number"),
        ({"drop_path": 1.5}, "drop_path"),
    ]:
        with pytest.raises(ConfigError, match=match):
            build_model("predformer", bad)
    model = build_model("predformer", TINY)
    with pytest.raises(InputError, match="4 frames"):
        model(_seq(1, 5))
    with pytest.raises(InputError, match="divisible by 4"):
        model(_seq(1, 4, h=18))


def test_position_embedding_is_the_authors_table():
    for positions, dim in ((640, 256), (37, 16)):
        torch.testing.assert_close(
            pf.sinusoidal_embedding(positions, dim), ref.sinusoidal_embedding(positions, dim)[0], rtol=0, atol=1e-6
        )
    assert not any("pos" in k for k in build_model("predformer", TINY).state_dict())  # not a weight (nor theirs)


# ---- parity with the authors' code ----------------------------------------------------------------------
def test_paper_size_checkpoint_with_the_authors_config_file_converts_completely(tmp_path):
    state = ref.predformer_state_dict(seed=1)
    cfg_file = tmp_path / "PredFormer.py"
    cfg_file.write_text(AUTHORS_PY)
    flat = predformer_config(cfg_file)
    assert flat == {
        "height": 64,
        "width": 64,
        "channels": 1,
        "pre_seq_length": 10,
        "aft_seq_length": 10,
        "patch_size": 8,
        "dim": 256,
        "heads": 8,
        "dim_head": 32,
        "drop_path": 0.0,
        "scale_dim": 4,
        "depth": 1,
        "Ndepth": 6,
        "method": "PredFormer",
    }
    p = from_openstl(state, "PredFormer", flat)
    rep = p.entry.extra["openstl"]
    assert rep["parameters"] == PAPER_COUNT == count_parameters(p.model)
    assert rep["tensors_mapped"] == len(state) and rep["tensors_unused"] == []
    assert rep["config"] == {
        "dim": 256,
        "Ndepth": 6,
        "depth": 1,
        "scale_dim": 4,
        "heads": 8,
        "dim_head": 32,
        "patch_size": 8,
        "channels": 1,
        "frames": 10,
        "height": 64,
        "width": 64,
        "drop_path": 0.0,
    }
    assert rep["config_sources"]["heads"] == "weights" and rep["config_sources"]["dim_head"] == "config"
    x = _seq(1, 10, h=32, w=32, seed=2)  # 32×32 keeps it quick; the position table follows the frame size
    with torch.no_grad():
        assert ref.relative_error(p.model(x), ref.predformer_model_forward(state, x, patch_size=8, heads=8)) <= TOL


@pytest.mark.parametrize("channels,heads,dim_head", [(1, 2, 8), (2, 2, 8), (3, 1, 16)])
def test_outputs_equal_the_authors_forward_and_rollout(channels, heads, dim_head):
    """Two channels check the patch-order permutation; one head of width dim has no output projection."""
    kw = {**SMALL, "heads": heads, "dim_head": dim_head}
    state = ref.predformer_state_dict(channels=channels, **kw, seed=channels)
    assert ("blocks.0.ts_space_transformer.layers.1.0.fn.to_out.0.weight" in state) == (heads > 1)
    p = from_openstl(
        state, "predformer", {"patch_size": 4, "heads": heads, "in_shape": [3, channels, 16, 24], "aft_seq_length": 7}
    )
    assert (p.spec.frames_in, p.spec.frames_out, p.spec.channels, p.model.config.dim_head) == (3, 7, channels, dim_head)
    x = _seq(2, 3, channels, 16, 24, seed=3)
    state64 = {k: v.double() for k, v in state.items()}
    with torch.no_grad():
        # fp32: the same function up to rounding. With several channels the embedding's permuted columns sum in
        # another order, and these random weights can amplify that ~1e-7 difference (up to 1.4e-5 seen over 12
        # seeds), so the exact check is float64, where the two agree to ~1e-14
        want = ref.predformer_model_forward(state, x, patch_size=4, heads=heads)
        assert ref.relative_error(p.model(x), want) <= (TOL if channels == 1 else 1e-4)
        p.model.double()
        want = ref.predformer_model_forward(state64, x.double(), patch_size=4, heads=heads)
        assert ref.relative_error(p.model(x.double()), want) <= 1e-10
        # aft > pre: the authors roll whole passes out and cut the last; stzoo's predictor does the same
        want = ref.predformer_predict(state64, x.double(), 7, patch_size=4, heads=heads)
        assert ref.relative_error(p.forecast_tensor(x.double(), 7), want) <= 1e-10


def test_patch_order_and_head_count_matter():
    """Copying the embedding without the permutation, or splitting into the wrong number of heads, is
    visibly wrong: the parity test above would catch either."""
    state = ref.predformer_state_dict(channels=2, **SMALL, seed=4)
    x = _seq(1, 3, 2, seed=5)
    want = ref.predformer_model_forward(state, x, patch_size=4, heads=2)
    p = from_openstl(state, "predformer", {"patch_size": 4, "pre_seq_length": 3, "heads": 2})
    with torch.no_grad():
        assert ref.relative_error(p.model(x), want) <= 1e-4  # fp32 rounding only (see the test above)
        p.model.embed.weight.copy_(state["to_patch_embedding.1.weight"])
        assert ref.relative_error(p.model(x), want) > 1e-2
    four = from_openstl(state, "predformer", {"patch_size": 4, "pre_seq_length": 3})  # 8 heads (the default) of 2
    with torch.no_grad():
        assert ref.relative_error(four.model(x), want) > 1e-3


def test_importer_refuses_other_variants_and_names_bad_tensors():
    state = ref.predformer_state_dict(**SMALL, seed=6)
    with pytest.raises(InputError, match="FullAttention"):
        from_openstl({"space_temporal_transformer.norm.weight": torch.ones(16), **state}, "predformer")
    binary = {k: v for k, v in state.items() if "st_" not in k}
    with pytest.raises(InputError, match="Binary"):
        from_openstl(binary, "predformer", {"patch_size": 4})
    with pytest.raises(ConfigError, match="method='tau'"):
        from_openstl(state, "predformer", {"patch_size": 4, "method": "TAU"})
    with pytest.raises(ConfigError, match="heads=3"):
        from_openstl(state, "predformer", {"patch_size": 4, "heads": 3})
    with pytest.raises(ConfigError, match="dim_head=6"):
        from_openstl(state, "predformer", {"patch_size": 4, "dim_head": 6})
    with pytest.raises(ConfigError, match=r"patch_size=1 with 16.*patch_size=2 with 4.*patch_size=4 with 1"):
        from_openstl(state, "predformer")
    with pytest.raises(ConfigError, match="Ndepth"):
        from_openstl(state, "predformer", {"patch_size": 4, "Ndepth": 6})
    with pytest.raises(InputError, match=r"blocks\.1\.extra\.weight"):
        from_openstl({**state, "blocks.1.extra.weight": torch.zeros(2)}, "predformer", {"patch_size": 4})
    missing = {k: v for k, v in state.items() if k != "blocks.1.st_space_transformer.layers.1.1.fn.fc1_x.bias"}
    with pytest.raises(InputError, match=r"missing: blocks\.1\.st_space_transformer\.layers\.1\.1\.fn\.fc1_x\.bias"):
        from_openstl(missing, "predformer", {"patch_size": 4})
    wrong = {**state, "blocks.0.ts_space_transformer.norm.weight": torch.ones(8)}
    with pytest.raises(InputError, match=r"ts_space_transformer\.norm\.weight: \(8,\), expected \(16,\)"):
        from_openstl(wrong, "predformer", {"patch_size": 4})
    with pytest.raises(ConfigError, match="unknown_key"):
        predformer_config({"model_config": {"patch_size": 4, "unknown_key": 1}})
    out, cfg, _, details = map_openstl_state_dict(state, "PredFormer", {"channels": 1})
    model = build_model("predformer", cfg)
    model.load_state_dict(out, strict=True)
    assert details["tensors_mapped"] == len(state) == len(out) and cfg["patch_size"] == 4


# ---- the generic machinery -----------------------------------------------------------------------------
def test_any_multiple_of_the_patch_size_runs():
    torch.manual_seed(0)
    p = stzoo.create("predformer", TINY)
    with torch.no_grad():
        assert p.model(_seq(1, 4, h=24, w=32)).shape == (1, 4, 1, 24, 32)


def test_nothing_depends_on_the_number_of_frames():
    torch.manual_seed(1)
    p = stzoo.create("predformer", TINY)
    longer, report = adapt(p, frames_in=6, frames_out=6)  # every weight carries over
    assert not report.reinitialised and longer.model(_seq(1, 6)).shape == (1, 6, 1, 16, 16)


def test_the_recipe_loss_is_the_authors():
    torch.manual_seed(3)
    model = build_model("predformer", {**TINY, "drop_path": 0.1, "dropout": 0.1})
    recipe = dataclasses.replace(pf.ARCHITECTURE.recipe, frames_in=4, frames_out=4)
    seq = _seq(3, 8, seed=6)
    model.eval()  # the authors' loss: MSE of one pass against the next T frames
    with torch.no_grad():
        torch.testing.assert_close(
            compute_loss(model, recipe, seq, 0.0, progress=0.5),
            torch.nn.functional.mse_loss(model(seq[:, :4]), seq[:, 4:]),
        )
