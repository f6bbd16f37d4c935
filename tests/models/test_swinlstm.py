"""SwinLSTM-D: parameter count, OpenSTL import parity, the Swin pieces (windows, masks, relative positions),
and the generic machinery (create / predict / stream, adapt, save / load, compute_loss, ONNX).

OpenSTL is not installable from the package index, so its checkpoints are built in its exact key layout
(timm 0.6's saved buffers included) and compared with an independent re-statement of its forward pass
(``tests/helpers/openstl_reference_swinlstm.py``, which names the files it comes from)."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch
from helpers import openstl_reference_swinlstm as ref  # noqa: E402

import stzoo
import stzoo.convert.openstl.swinlstm  # noqa: F401  (registers the importer)
import stzoo.models.swinlstm as swin
from stzoo.convert.openstl import from_openstl, map_openstl_state_dict
from stzoo.errors import ConfigError, InputError
from stzoo.models import build_model, count_parameters, get_architecture, parameters_of
from stzoo.training.adapt import adapt
from stzoo.training.losses import compute_loss

TOL = 1e-5  # max |stzoo − OpenSTL| / max |OpenSTL|, fp32
OPENSTL_COUNT = 20_191_969  # configs/mmnist/SwinLSTM-D.py in OpenSTL
STZOO_COUNT = 18_845_409  # the same less what OpenSTL's forward never uses
# configs/mmnist/SwinLSTM-D.py, verbatim
OPENSTL_PY = (
    "method = 'SwinLSTM_D'\n# model\ndepths_downsample = '2,6'\ndepths_upsample = '6,2'\nnum_heads = '4,8'\n"
    "patch_size = 2\nwindow_size = 4\nembed_dim = 128\n# training\nlr = 1e-4\nbatch_size = 16\n"
    "sched = 'onecycle'"
)
PAPER = dict(
    img_size=64, patch_size=2, embed_dim=128, depths_down=(2, 6), depths_up=(6, 2), num_heads=(4, 8), window_size=4
)
# small OpenSTL-layout models: 32×32 (every stage but the coarsest shifts) and 16×16 (timm clips windows)
SMALL = {
    32: dict(
        img_size=32, patch_size=2, embed_dim=8, depths_down=(2, 3), depths_up=(3, 2), num_heads=(2, 4), window_size=4
    ),
    16: dict(
        img_size=16, patch_size=2, embed_dim=8, depths_down=(3, 2), depths_up=(2, 3), num_heads=(2, 2), window_size=4
    ),
}
TINY = stzoo.models.ARCHITECTURES["swinlstm"].tiny_config  # its tiny config, declared with its registration


def _seq(b=2, t=8, c=1, size=32, seed=0):
    return torch.rand(b, t, c, size, size, generator=torch.Generator().manual_seed(seed))


def _state(size: int, channels: int = 1, seed: int = 0, **kw) -> dict[str, torch.Tensor]:
    cfg = {**SMALL[size], **kw}
    return ref.swinlstm_state_dict(channels=channels, **{k: v for k, v in cfg.items()}, seed=seed)


# ---- sizes and config --------------------------------------------------------------------------------
def test_default_config_is_openstl_mmnist_and_the_parameter_count_is_openstls_less_the_unused():
    spec = get_architecture("swinlstm")
    cfg = spec.config()
    assert (cfg.patch_size, cfg.window_size, cfg.embed_dim) == (2, 4, 128)
    assert (cfg.depths_down, cfg.depths_up, cfg.num_heads) == ((2, 6), (6, 2), (4, 8))
    assert (cfg.frames_in, cfg.frames_out, cfg.height, cfg.width, cfg.channels) == (10, 10, 64, 64, 1)
    assert spec.config.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg
    assert parameters_of(spec, cfg) == STZOO_COUNT
    state = ref.swinlstm_state_dict(**PAPER)
    assert ref.parameter_count(state) == OPENSTL_COUNT
    never_used = [
        k
        for k in state
        if k.startswith("Upsample.patch_embed.") or (".red." in k and int(k.split(".STBs.")[1].split(".")[0]) % 2 == 1)
    ]
    assert OPENSTL_COUNT - sum(state[k].numel() for k in never_used) == STZOO_COUNT
    recipe = spec.recipe
    assert (recipe.lr, recipe.batch_size, recipe.loss, recipe.scheduled_sampling, recipe.grad_clip) == (
        1e-4,
        16,
        "mse",
        0.0,
        0.0,
    )
    assert spec.any_frames and spec.training_forward is None


def test_bad_config_values_are_refused():  # the comment on every field: test_protocol.py
    for bad, match in [
        ({"patch_size": 4}, "patch_size"),
        ({"depths_down": "2,6"}, "depths_down"),
        ({"depths_up": [6, 2, 2]}, "as many stages"),
        ({"num_heads": [3, 8]}, r"num_heads\[0\]"),
        ({"height": 48}, "multiple of 32"),
        ({"width": 66}, "multiples of 8"),
        ({"depths_down": [2, True]}, "depths_down"),
        ({"window_size": 0}, "window_size"),
    ]:
        with pytest.raises(ConfigError, match=match):
            build_model("swinlstm", bad)
    cfg = swin.SwinLSTMConfig(depths_down=np.array([2, 2]).tolist(), depths_up=(2, 2), num_heads=[4, 8])
    assert cfg.depths_down == (2, 2) and isinstance(cfg.depths_down, tuple)


def test_stage_plan_windows_shifts_and_stochastic_depth_follow_openstl_and_timm():
    down, up = swin.stage_plan(swin.SwinLSTMConfig())
    assert [(s.level, s.dim, s.depth, s.heads, s.window, s.shift) for s in down] == [
        (0, 128, 2, 4, 4, 2),
        (1, 256, 6, 8, 4, 2),
    ]
    assert [(s.level, s.dim, s.depth, s.heads, s.window, s.shift) for s in up] == [
        (2, 512, 2, 8, 4, 2),
        (1, 256, 6, 4, 4, 2),
    ]
    rates = torch.linspace(0, 0.1, 8).tolist()  # per path: linspace(0, 0.1, 8); the up path reads its slice backwards
    assert list(down[0].drop_path + down[1].drop_path) == rates
    assert list(up[0].drop_path) == [rates[7], rates[6]] and list(up[1].drop_path) == rates[5::-1]
    assert swin.size_multiple(swin.SwinLSTMConfig()) == 32
    # 16×16: token grids 8, 4, 2 — timm takes the whole grid as the window and drops the shift at 4 and 2
    small = swin.SwinLSTMConfig(height=16, width=16, embed_dim=8, num_heads=[2, 2])
    down, up = swin.stage_plan(small)
    assert [(s.window, s.shift) for s in down + up] == [(4, 2), (4, 0), (2, 0), (4, 0)]
    assert swin.size_multiple(small) == 16
    tables = get_architecture("swinlstm").resolution_params(small)
    model = build_model("swinlstm", small)
    assert sorted(tables) == sorted(k for k in model.state_dict() if k.endswith("relative_position_bias_table"))
    assert not any("attn_mask" in k or "relative_position_index" in k for k in model.state_dict())


@pytest.mark.parametrize("grid,window,shift", [(8, 4, 2), (16, 4, 2), (12, 4, 2), (8, 2, 1), (9, 3, 1)])
def test_shifted_window_mask_and_relative_positions_are_timms(grid, window, shift):
    assert torch.equal(swin.shifted_window_mask(grid, grid, window, shift), ref.timm_attn_mask(grid, window, shift))
    assert torch.equal(swin.relative_position_index(window), ref.timm_relative_position_index(window))


# ---- OpenSTL parity ------------------------------------------------------------------------------------
def test_paper_size_openstl_checkpoint_with_its_config_file_converts_completely(tmp_path):
    state = ref.swinlstm_state_dict(**PAPER, seed=1)
    cfg_file = tmp_path / "SwinLSTM-D.py"
    cfg_file.write_text(OPENSTL_PY)
    p = from_openstl(state, "SwinLSTM_D", cfg_file)
    rep = p.entry.extra["openstl"]
    assert rep["parameters"] == STZOO_COUNT == count_parameters(p.model)
    assert rep["config"] == {
        "channels": 1,
        "patch_size": 2,
        "embed_dim": 128,
        "depths_down": [2, 6],
        "depths_up": [6, 2],
        "num_heads": [4, 8],
        "window_size": 4,
        "mlp_ratio": 4.0,
        "height": 64,
        "width": 64,
        "drop_path": 0.1,
        "frames_in": 10,
        "frames_out": 10,
    }
    assert rep["config_sources"]["height"] == "weights" and rep["config_sources"]["window_size"] == "weights"
    assert {"lr", "sched"} <= set(rep["ignored_config"])  # training settings
    assert not {"depths_downsample", "depths_upsample", "num_heads"} & set(rep["ignored_config"])  # read, checked
    unused = set(rep["tensors_unused"])
    assert {
        "Upsample.patch_embed.proj.weight",
        "Upsample.layers.1.STBs.5.red.weight",
        "Downsample.layers.0.STBs.1.attn_mask",
        "Downsample.layers.1.STBs.4.attn.relative_position_index",
    } <= unused
    assert "Downsample.layers.1.STBs.4.red.weight" not in unused  # even blocks fuse X: their `red` is used
    assert rep["tensors_mapped"] + len(unused) == len(state)
    x, y = _seq(1, 2, size=64, seed=2), _seq(1, 1, size=64, seed=3)
    with torch.no_grad():
        assert ref.relative_error(p.model(x, 1), ref.swinlstm_predict(state, x, y, PAPER)) <= TOL


@pytest.mark.parametrize(
    "size,channels,buffers,name", [(32, 1, True, "SwinLSTM"), (32, 2, False, "swinlstm_d"), (16, 1, True, "SwinLSTM-D")]
)
def test_outputs_equal_openstl_at_its_inference_convention(size, channels, buffers, name):
    state = _state(size, channels, seed=size + channels, timm_buffers=buffers)
    config = (
        {"pre_seq_length": 3, "aft_seq_length": 4}
        if buffers
        else {"in_shape": [3, channels, size, size], "aft_seq_length": 4}
    )
    p = from_openstl(state, name, config)
    assert p.model.arch == "swinlstm" and (p.spec.frames_in, p.spec.frames_out, p.spec.channels) == (3, 4, channels)
    assert p.entry.extra["openstl"]["config_sources"]["height"] == ("weights" if buffers else "config")
    x, y = _seq(2, 3, channels, size, seed=4), _seq(2, 4, channels, size, seed=5)
    with torch.no_grad():
        got = p.model(x, 4)
        want = ref.swinlstm_predict(state, x, y, SMALL[size])
    assert float(want.std()) > 0.05  # not saturated
    assert ref.relative_error(got, want) <= TOL


def test_a_misplaced_weight_or_a_missing_shift_is_visibly_wrong():
    """The parity test can fail: the two inputs of a fusion layer swapped, or one block not shifting."""
    state = _state(32, seed=6)
    p = from_openstl(state, "swinlstm", {"pre_seq_length": 3})
    x, y = _seq(1, 3, seed=7), _seq(1, 2, seed=8)
    want = ref.swinlstm_predict(state, x, y, SMALL[32])
    model = p.model
    with torch.no_grad():
        w = model.down[0].blocks[0].reduce.weight
        w.copy_(torch.cat([w[:, 8:], w[:, :8]], dim=1))
        assert ref.relative_error(model(x, 2), want) > 1e-2
        w.copy_(torch.cat([w[:, 8:], w[:, :8]], dim=1))
        assert ref.relative_error(model(x, 2), want) <= TOL
        model.up[1].blocks[1].shift = 0
        assert ref.relative_error(model(x, 2), want) > 1e-3


def test_importer_refuses_other_models_and_names_bad_tensors():
    state = _state(32, seed=9)
    with pytest.raises(InputError, match="SwinLSTM-B"):
        from_openstl({"ST.patch_embed.proj.weight": torch.zeros(8, 1, 2, 2), **state}, "swinlstm")
    with pytest.raises(ConfigError, match="method='swinlstm_b'"):
        from_openstl(state, "swinlstm", {"method": "SwinLSTM_B"})
    with pytest.raises(ConfigError, match="height"):  # the masks say 32×32
        from_openstl(state, "swinlstm", {"in_shape": [10, 1, 64, 64]})
    with pytest.raises(ConfigError, match="embed_dim"):
        from_openstl(state, "swinlstm", {"embed_dim": 16})
    four = {**state, "Downsample.patch_embed.proj.weight": torch.zeros(8, 1, 4, 4)}
    with pytest.raises(InputError, match="patch_size 2"):
        from_openstl(four, "swinlstm")
    tampered = {
        **state,
        "Downsample.layers.1.STBs.1.attn_mask": torch.zeros_like(state["Downsample.layers.1.STBs.1.attn_mask"]),
    }
    with pytest.raises(InputError, match=r"Downsample\.layers\.1\.STBs\.1\.attn_mask is not timm's"):
        from_openstl(tampered, "swinlstm")
    no_masks = {k: v for k, v in state.items() if not k.endswith("attn_mask")}
    with pytest.raises(ConfigError, match="trained at another size"):  # 16×16 would clip the windows
        from_openstl(no_masks, "swinlstm", {"height": 16, "width": 16})
    with pytest.raises(InputError, match=r"Downsample\.layers\.0\.STBs\.0\.extra\.weight"):
        from_openstl({**state, "Downsample.layers.0.STBs.0.extra.weight": torch.zeros(2)}, "swinlstm")
    missing = {k: v for k, v in state.items() if k != "Upsample.layers.1.STBs.2.red.bias"}
    with pytest.raises(InputError, match=r"missing: Upsample\.layers\.1\.STBs\.2\.red\.bias"):
        from_openstl(missing, "swinlstm")
    wrong = {**state, "Upsample.layers.1.STBs.1.red.weight": torch.zeros(16, 16)}  # an unused one: checked too
    with pytest.raises(InputError, match=r"STBs\.1\.red\.weight: \(16, 16\), expected \(16, 32\)"):
        from_openstl(wrong, "swinlstm")
    out, cfg, spec, details = map_openstl_state_dict(state, "SwinLSTM", {})
    model = build_model("swinlstm", cfg)
    model.load_state_dict(out, strict=True)
    assert details["openstl_model"] == "SwinLSTM_D_Model" and spec["height"] == 32


# ---- the generic machinery -----------------------------------------------------------------------------
def test_create_predicts_horizons_beyond_frames_out_and_streams():
    torch.manual_seed(0)
    p = stzoo.create("swinlstm", TINY)
    frames = (_seq(1, 4)[0, :, 0].numpy() * 255).astype(np.uint8)
    long = p.predict(frames, horizon=7)
    assert long.shape == (7, 32, 32) and long.dtype == np.uint8
    np.testing.assert_array_equal(long[:4], p.predict(frames))
    stream = stzoo.Forecaster(p, horizon=7)  # carries every cell's (H, C) frame by frame
    for frame in frames:
        stream.push(frame)
    np.testing.assert_allclose(stream.forecast().astype(int), long.astype(int), atol=1)
    model, x = p.model, _seq(2, 4)
    with torch.no_grad():
        full = model(x, 3)
        states = model.init_states(2, 16, 16, x)
        for i in range(4):
            pred, states = model.step(x[:, i], states)
        steps = [pred]
        for _ in range(2):
            pred, states = model.step(pred, states)
            steps.append(pred)
        torch.testing.assert_close(torch.stack(steps, 1), full, rtol=0, atol=0)
        # another size the windows tile (a multiple of 32 here) runs too, with masks for its own grid
        assert model(_seq(1, 2, size=64), 2).shape == (1, 2, 1, 64, 64)
    with pytest.raises(InputError, match="divisible by 32"):
        model(_seq(1, 2, size=48), 1)


def test_grey_model_adapted_to_rgb_predicts_the_same_on_each_channel():
    torch.manual_seed(1)
    p = stzoo.create("swinlstm", TINY)
    rgb, report = adapt(p, channels=3)
    assert sorted(report.converted) == ["embed.proj.weight", "unembed.bias", "unembed.weight"]
    assert not report.reinitialised
    x = _seq(2, 4)
    with torch.no_grad():
        y1 = p.forecast_tensor(x, 4)
        y3 = rgb.forecast_tensor(x.expand(-1, -1, 3, -1, -1), 4)
    torch.testing.assert_close(y3, y1.expand(-1, -1, 3, -1, -1), rtol=1e-4, atol=1e-5)


def test_two_step_training_loss_is_finite_backpropagates_and_is_openstls():
    torch.manual_seed(3)
    model = build_model("swinlstm", TINY).train()
    recipe = dataclasses.replace(get_architecture("swinlstm").recipe, frames_in=4, frames_out=4)
    seq = _seq(2, 8, seed=9)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    for _ in range(2):
        opt.zero_grad()
        loss = compute_loss(model, recipe, seq, 0.5, progress=0.5)
        assert loss.dim() == 0 and torch.isfinite(loss)
        loss.backward()
        grads = {n: q.grad for n, q in model.named_parameters()}
        assert all(g is not None and torch.isfinite(g).all() for g in grads.values())
        assert float(grads["down.1.blocks.2.reduce.weight"].abs().sum()) > 0  # block 2 fuses X
        opt.step()
    model.eval()  # OpenSTL's loss: MSE of the T_in + T_out − 1 one-step predictions, own predictions fed back
    with torch.no_grad():
        want = torch.nn.functional.mse_loss(model(seq[:, :4], 4, return_context=True), seq[:, 1:])
        torch.testing.assert_close(compute_loss(model, recipe, seq, 0.0, progress=0.5), want)


def test_onnx_export_matches_torch(tmp_path):
    import onnxruntime as ort

    torch.manual_seed(4)
    # one stage at 16×16 (a shifted, masked cell at grid 8, merging, a cell at grid 4, expanding) keeps the
    # TorchScript export at ~2 s; the two-stage TINY takes ~6 s and is otherwise covered above. The default
    # (dynamo) exporter gave the same outputs on this config when tried by hand (max |Δ| 1.8e-7, 17.7 s)
    p = stzoo.create(
        "swinlstm",
        {
            **TINY,
            "frames_in": 2,
            "frames_out": 2,
            "height": 16,
            "width": 16,
            "depths_down": [2],
            "depths_up": [2],
            "num_heads": [2],
        },
    )
    result = p.export_onnx(tmp_path / "swinlstm.onnx", verify=False, exporter="torchscript")
    session = ort.InferenceSession(str(result.path), providers=["CPUExecutionProvider"])
    for b in (1, 3):
        x = _seq(b, 2, size=16, seed=b)
        got = session.run(["forecast"], {"frames": x.numpy()})[0]
        with torch.no_grad():
            want = p.model.eval()(x, 2).numpy()
        assert got.shape == want.shape == (b, 2, 1, 16, 16) and np.max(np.abs(got - want)) <= 1e-4
