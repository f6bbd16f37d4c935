"""PredRNN / PredRNN-V2: parameter counts, OpenSTL parity (inference and training), the V2 training regime,
and the generic machinery (create / predict, adapt, save / load, compute_loss, ONNX)."""

from __future__ import annotations

import dataclasses
import json
import math

import numpy as np
import pytest
import torch
from helpers import openstl_reference_predrnn as ref  # noqa: E402

import stzoo
import stzoo.convert.openstl.predrnn  # noqa: F401  (registers the importers; imports stzoo.models.predrnn)
from stzoo.convert.openstl import from_openstl, map_openstl_state_dict
from stzoo.errors import ConfigError, InputError
from stzoo.models import build_model, count_parameters, get_architecture, parameters_of
from stzoo.models.predrnn import (
    PredRNNv2Config,
    decoupling_loss,
    predrnn_v2_training_forward,
    reverse_sampling_probabilities,
    v2_sampling_masks,
)
from stzoo.training.adapt import adapt
from stzoo.training.losses import compute_loss
from stzoo.training.train import Recipe

TOL = 1e-5  # max |stzoo − OpenSTL| / max |OpenSTL|, fp32
ARCHS = ["predrnn", "predrnn_v2"]
TINY = stzoo.models.ARCHITECTURES["predrnn"].tiny_config  # its tiny config, declared with its registration
PAPER = {"predrnn": 23_838_720, "predrnn_v2": 23_855_104}  # OpenSTL configs/mmnist/PredRNN{,v2}.py
MMNIST_PY = {  # the model and sampling lines of OpenSTL's configs/mmnist/PredRNNv2.py (PredRNN.py: rss 0, no beta)
    "predrnn_v2": "method = 'PredRNNv2'\nreverse_scheduled_sampling = 1\nr_sampling_step_1 = 25000\n"
    "r_sampling_step_2 = 50000\nr_exp_alpha = 5000\nscheduled_sampling = 1\nsampling_stop_iter = 50000\n"
    "sampling_start_value = 1.0\nsampling_changing_rate = 0.00002\nnum_hidden = '128,128,128,128'\n"
    "filter_size = 5\nstride = 1\npatch_size = 4\nlayer_norm = 0\ndecouple_beta = 0.1\nlr = 5e-4\n"
    "batch_size = 16\nsched = 'onecycle'\n",
    "predrnn": "method = 'PredRNN'\nreverse_scheduled_sampling = 0\nscheduled_sampling = 1\n"
    "sampling_stop_iter = 50000\n"
    "num_hidden = '128,128,128,128'\nfilter_size = 5\nstride = 1\npatch_size = 4\nlayer_norm = 0\n"
    "lr = 5e-4\nbatch_size = 16\nsched = 'onecycle'\n",
}


def _seq(b=2, t=8, c=1, size=16, seed=0):
    return torch.rand(b, t, c, size, size, generator=torch.Generator().manual_seed(seed))


# ---- sizes and config --------------------------------------------------------------------------------
@pytest.mark.parametrize("arch", ARCHS)
def test_default_config_is_openstl_mmnist_with_the_stated_parameter_count(arch):
    spec = get_architecture(arch)
    cfg = spec.config()  # build_model(arch, {}) builds this
    assert (cfg.num_layers, cfg.num_hidden, cfg.filter_size, cfg.patch_size) == (4, 128, 5, 4)
    assert (cfg.frames_in, cfg.frames_out, cfg.height, cfg.width, cfg.layer_norm) == (10, 10, 64, 64, False)
    assert parameters_of(spec, cfg) == PAPER[arch]
    assert spec.config.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg
    assert spec.recipe.lr == 5e-4 and spec.recipe.loss == "mse"
    assert (spec.training_forward is not None) == (arch == "predrnn_v2")


@pytest.mark.parametrize("arch", ARCHS)
def test_bad_config_values_are_refused(arch):  # the comment on every field: test_protocol.py
    with pytest.raises(ConfigError, match="filter_size"):
        build_model(arch, {**TINY, "filter_size": 4})
    with pytest.raises(ConfigError, match="num_hidden"):
        build_model(arch, {**TINY, "num_hidden": 0})
    if arch == "predrnn_v2":
        with pytest.raises(ConfigError, match="sampling_start"):
            build_model(arch, {**TINY, "sampling_start": 0.5, "sampling_stop": 0.3})
        with pytest.raises(ConfigError, match="decouple_beta"):
            build_model(arch, {**TINY, "decouple_beta": -1.0})


@pytest.mark.parametrize("arch", ARCHS)
def test_paper_size_openstl_checkpoint_converts_completely(tmp_path, arch):
    v2 = arch == "predrnn_v2"
    state = ref.predrnn_state_dict(patch_channels=16, num_hidden=[128] * 4, v2=v2, seed=1)
    assert sum(v.numel() for v in state.values()) == PAPER[arch] and len(state) == 4 * 5 + 1 + v2
    cfg_file = tmp_path / ("PredRNNv2.py" if v2 else "PredRNN.py")
    cfg_file.write_text(MMNIST_PY[arch])
    p = from_openstl(state, "PredRNNv2" if v2 else "PredRNN", cfg_file)
    rep = p.entry.extra["openstl"]
    assert rep["tensors_mapped"] == len(state) and rep["tensors_unused"] == [] and rep["parameters"] == PAPER[arch]
    assert rep["config"] == {
        "num_layers": 4,
        "num_hidden": 128,
        "filter_size": 5,
        "patch_size": 4,
        "channels": 1,
        "frames_in": 10,
        "frames_out": 10,
        "height": 64,
        "width": 64,
    }
    assert {"lr", "sched", "reverse_scheduled_sampling"} <= set(rep["ignored_config"])  # training settings
    assert ("decouple_beta" in rep["ignored_config"]) == v2 and rep["config_sources"]["patch_size"] == "config"
    x, y = _seq(1, 3, size=16, seed=2), _seq(1, 2, size=16, seed=3)  # small frames: the weights are paper-size
    with torch.no_grad():
        assert ref.relative_error(p.model(x, 2), ref.predrnn_predict(state, x, y, 4)) <= TOL


# ---- OpenSTL parity ------------------------------------------------------------------------------------
@pytest.mark.parametrize("name,v2", [("PredRNN", False), ("predrnnv2", True), ("PredRNN_V2", True)])
@pytest.mark.parametrize("channels,patch", [(1, 4), (3, 2)])
def test_outputs_equal_openstl_at_its_inference_convention(name, v2, channels, patch):
    state = ref.predrnn_state_dict(
        patch_channels=channels * patch * patch, num_hidden=[8, 8, 8], v2=v2, seed=channels + 10 * v2
    )
    p = from_openstl(state, name, {"patch_size": patch, "pre_seq_length": 5, "aft_seq_length": 6})
    assert p.model.arch == ("predrnn_v2" if v2 else "predrnn")
    x, y = _seq(2, 5, channels, seed=4), _seq(2, 6, channels, seed=5)
    with torch.no_grad():
        got = p.model(x, 6)
    assert ref.relative_error(got, ref.predrnn_predict(state, x, y, patch)) <= TOL
    # PredRNN-V2's MMNIST config runs OpenSTL's reverse-scheduled-sampling mask at test time: same rollout
    assert ref.relative_error(got, ref.predrnn_predict(state, x, y, patch, reverse_scheduled_sampling=1)) <= TOL
    assert (p.spec.frames_in, p.spec.frames_out, p.spec.channels) == (5, 6, channels)


def test_patch_order_matters_for_several_channels():
    """Copying the tensors without the channel permutation is visibly wrong: the parity test would catch it."""
    state = ref.predrnn_state_dict(patch_channels=12, num_hidden=[8, 8], seed=5)
    naive = build_model("predrnn", {**TINY, "channels": 3, "patch_size": 2, "filter_size": 5})
    naive.load_state_dict(
        {
            (
                "readout.weight"
                if k == "conv_last.weight"
                else k.replace("cell_list", "cells").replace(".0.weight", ".weight")
            ): v
            for k, v in state.items()
        }
    )
    x, y = _seq(1, 4, 3, size=8), _seq(1, 3, 3, size=8)
    with torch.no_grad():
        assert ref.relative_error(naive(x, 3), ref.predrnn_predict(state, x, y, 2)) > 1e-2


@pytest.mark.parametrize("rss", [0, 1])
def test_training_forward_and_loss_equal_openstl(rss):
    """OpenSTL's training-time model forward (a random 0/1 ``mask_true``, the loss it returns) equals stzoo's
    with the same masks: PredRNN-V2's MSE + β·decoupling loss, under both sampling conventions."""
    state = ref.predrnn_state_dict(patch_channels=4, num_hidden=[6, 6], filter_size=3, v2=True, seed=7)
    p = from_openstl(state, "predrnnv2", {"patch_size": 2, "pre_seq_length": 4, "aft_seq_length": 3})
    model = p.model.train()
    pre, aft, b = 4, 3, 3
    seq = _seq(b, pre + aft, 1, size=8, seed=8)
    g = torch.Generator().manual_seed(9)
    n_mask = pre + aft - 2 if rss else aft - 1
    tokens = (torch.rand(b, n_mask, generator=g) < 0.5).float()
    flag = tokens[:, :, None, None, None].expand(b, n_mask, 4, 4, 4)  # OpenSTL: one value per frame
    patches = ref.reshape_patch(seq.permute(0, 1, 3, 4, 2), 2)
    gen, loss = ref.predrnn_model_forward(
        state,
        patches,
        flag,
        pre_seq_length=pre,
        aft_seq_length=aft,
        reverse_scheduled_sampling=rss,
        return_loss=True,
        decouple_beta=0.1,
    )
    expected = ref.reshape_patch_back(gen, 2).permute(0, 1, 4, 2, 3)
    input_mask, teacher_mask = (tokens[:, : pre - 1], tokens[:, pre - 1 :]) if rss else (None, tokens)
    with torch.no_grad():
        pred, decouple = model(
            seq[:, :pre],
            aft,
            target=seq[:, pre:],
            teacher_mask=teacher_mask,
            input_mask=input_mask,
            return_context=True,
            return_decouple=True,
        )
    assert ref.relative_error(pred, expected) <= TOL
    mine = torch.nn.functional.mse_loss(pred, seq[:, 1:]) + model.config.decouple_beta * decouple
    assert abs(float(mine) - float(loss)) <= 1e-6 * float(loss)


# ---- the V2 training regime ----------------------------------------------------------------------------
def test_decoupling_term_on_a_hand_checked_case():
    adapter = torch.nn.Conv2d(2, 2, 1, bias=False).requires_grad_(False)
    with torch.no_grad():
        adapter.weight.copy_(torch.tensor([[1.0, 1.0], [0.0, 1.0]]).view(2, 2, 1, 1))  # out0 = in0 + in1, out1 = in1

    def grid(*rows):
        return torch.tensor(rows, dtype=torch.float32).view(1, 2, 2, 2)  # 1 sequence, 2 channels, 2×2 positions

    dc = grid([1, 0, 0, 0], [0, 1, 0, 0])
    dm = grid([0, 1, 0, 0], [0, 0, 1, 0])
    # adapter(ΔC) = [1,1,0,0], [0,1,0,0]; adapter(ΔM) = [0,1,1,0], [0,0,1,0]
    # channel 0: cos = 1 / (√2·√2) = 0.5; channel 1: cos = 0  →  mean 0.25
    assert float(decoupling_loss(adapter, [(dc, dm)])) == pytest.approx(0.25, abs=1e-7)
    # ΔM = −ΔC: cos = −1 in both channels, |·| = 1; the pairs are averaged: (0.25 + 1) / 2
    assert float(decoupling_loss(adapter, [(dc, dm), (dc, -dc)])) == pytest.approx(0.625, abs=1e-7)
    # without the adapter's mixing the first pair is orthogonal in both channels
    identity = torch.nn.Conv2d(2, 2, 1, bias=False).requires_grad_(False)
    with torch.no_grad():
        identity.weight.copy_(torch.eye(2).view(2, 2, 1, 1))
    assert float(decoupling_loss(identity, [(dc, dm)])) == pytest.approx(0.0, abs=1e-7)


@pytest.mark.parametrize("itr", [0, 24_999, 25_000, 30_000, 37_500, 49_999, 50_000, 100_000])
def test_reverse_sampling_schedule_is_openstls_in_fractions_of_its_run(itr):
    cfg = PredRNNv2Config()
    got = reverse_sampling_probabilities(itr / 125_000, cfg)  # OpenSTL MMNIST: 200 epochs × 625 iterations
    assert got == pytest.approx(ref.reserve_schedule_sampling_probabilities(itr), abs=1e-9)


def test_sampling_masks_draw_with_the_scheduled_probabilities():
    torch.manual_seed(0)
    cfg, recipe = PredRNNv2Config(**TINY), Recipe(frames_in=10, frames_out=10, scheduled_sampling=0.4)
    r_eta, eta = reverse_sampling_probabilities(0.3, cfg)
    assert (r_eta, eta) == pytest.approx((1 - 0.5 * math.exp(-2.5), 0.25))
    inp, fut = v2_sampling_masks(cfg, recipe, 4000, 0.3)
    assert inp.shape == (4000, 9) and fut.shape == (4000, 9)
    assert float(inp.mean()) == pytest.approx(r_eta, abs=0.01) and float(fut.mean()) == pytest.approx(eta, abs=0.01)
    assert set(inp.unique().tolist()) == {0.0, 1.0}
    inp, fut = v2_sampling_masks(cfg.replace(reverse_scheduled_sampling=False), recipe, 4000, 0.1)
    assert inp is None and float(fut.mean()) == pytest.approx(0.75, abs=0.01)  # 1 − 0.1 / 0.4
    assert v2_sampling_masks(
        cfg.replace(reverse_scheduled_sampling=False), Recipe(frames_in=4, frames_out=4), 2, 0.1
    ) == (None, None)


def test_v2_training_loss_is_mse_plus_beta_times_decoupling():
    torch.manual_seed(1)
    model = build_model("predrnn_v2", TINY).train()
    recipe = Recipe(frames_in=4, frames_out=4)
    seq = _seq(2, 8, seed=11)
    no_beta = build_model("predrnn_v2", {**TINY, "decouple_beta": 0.0})
    no_beta.load_state_dict(model.state_dict())
    with torch.no_grad():
        # past sampling_stop the draws are fixed: observed inputs, own predictions after the input
        loss = compute_loss(model, recipe, seq, 0.0, progress=0.9)
        pred, dec = model(seq[:, :4], 4, return_context=True, return_decouple=True)
        mse = torch.nn.functional.mse_loss(pred, seq[:, 1:])
        assert float(dec) > 0 and float(loss) == pytest.approx(float(mse + 0.1 * dec), rel=1e-6)
        assert float(compute_loss(no_beta, recipe, seq, 0.0, progress=0.9)) == pytest.approx(float(mse), rel=1e-6)
        p2, target, extra = predrnn_v2_training_forward(model, recipe, seq, 0.9)
        assert torch.equal(target, seq[:, 1:]) and float(extra) == pytest.approx(0.1 * float(dec), rel=1e-6)


@pytest.mark.parametrize("arch", ARCHS)
def test_two_step_training_loss_is_finite_and_backpropagates(arch):
    model = build_model(arch, TINY).train()
    recipe = dataclasses.replace(get_architecture(arch).recipe, frames_in=4, frames_out=4)
    for _ in range(2):
        model.zero_grad()
        loss = compute_loss(model, recipe, _seq(2, 8), 0.5, progress=0.5)
        assert loss.dim() == 0 and torch.isfinite(loss)
        loss.backward()
        grads = {n: p.grad for n, p in model.named_parameters()}
        assert all(g is not None and torch.isfinite(g).all() for g in grads.values())
        assert float(grads["cells.1.conv_m.weight"].abs().sum()) > 0  # the zigzag memory is trained
        if arch == "predrnn_v2":  # only the decoupling term reaches the adapter
            assert float(grads["adapter.weight"].abs().sum()) > 0


@pytest.mark.parametrize("arch", ARCHS)
def test_loss_decreases_over_a_few_steps_on_a_toy_batch(arch):
    torch.manual_seed(2)
    model = build_model(arch, TINY).train()
    recipe = dataclasses.replace(get_architecture(arch).recipe, frames_in=4, frames_out=4)
    seq = _seq(4, 8, seed=12)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)

    def loss_now():  # progress 0.9 / teacher_p 0: deterministic masks
        return compute_loss(model, recipe, seq, 0.0, progress=0.9)

    first = float(loss_now().detach())
    for _ in range(9):
        opt.zero_grad()
        loss_now().backward()
        opt.step()
    assert float(loss_now().detach()) < 0.7 * first


# ---- the generic machinery -----------------------------------------------------------------------------
@pytest.mark.parametrize("arch", ARCHS)
def test_create_predicts_horizons_beyond_frames_out_and_streams(arch):
    p = stzoo.create(arch, TINY)
    frames = (_seq(1, 4)[0, :, 0].numpy() * 255).astype(np.uint8)  # T×H×W
    long = p.predict(frames, horizon=7)
    assert long.shape == (7, 16, 16) and long.dtype == np.uint8
    np.testing.assert_array_equal(long[:4], p.predict(frames))  # the rollout continues the native forecast
    stream = stzoo.Forecaster(p, horizon=7)  # carries the (H, C, zigzag M) state frame by frame
    for frame in frames:
        stream.push(frame)
    np.testing.assert_allclose(stream.forecast().astype(int), long.astype(int), atol=1)
    model = p.model
    x = _seq(2, 4)
    with torch.no_grad():
        full = model(x, 3)
        states = model.init_states(2, 4, 4, x)
        for i in range(4):
            pred, states = model.step(x[:, i], states)
        steps = [pred]
        for _ in range(2):
            pred, states = model.step(pred, states)
            steps.append(pred)
    torch.testing.assert_close(torch.stack(steps, 1), full, rtol=0, atol=0)


@pytest.mark.parametrize("arch", ARCHS)
def test_grey_model_adapted_to_rgb_predicts_the_same_on_each_channel(arch):
    p = stzoo.create(arch, {**TINY, "layer_norm": arch == "predrnn"})
    rgb, report = adapt(p, channels=3)
    assert report.converted and not report.reinitialised
    assert rgb.model.cells[0].conv_x.weight.shape[1] == 3 * 16
    x = _seq(2, 4)
    with torch.no_grad():
        y1 = p.forecast_tensor(x, 4)
        y3 = rgb.forecast_tensor(x.expand(-1, -1, 3, -1, -1), 4)
    torch.testing.assert_close(y3, y1.expand(-1, -1, 3, -1, -1), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize(
    "arch,exporter,t_in,layers",
    [("predrnn", "torchscript", 3, 2), ("predrnn_v2", "torchscript", 3, 2), ("predrnn_v2", "dynamo", 2, 1)],
)
def test_onnx_export_matches_torch(tmp_path, arch, exporter, t_in, layers):
    import onnxruntime as ort

    p = stzoo.create(arch, {**TINY, "frames_in": t_in, "frames_out": 2, "num_layers": layers})
    result = p.export_onnx(tmp_path / f"{arch}.onnx", verify=False, exporter=exporter)
    assert result.exporter == exporter and result.output_shape[:2] == ("batch", 2)  # TorchScript: symbolic h, w
    session = ort.InferenceSession(str(result.path), providers=["CPUExecutionProvider"])
    for b in (1, 3):
        x = _seq(b, t_in, seed=b)
        got = session.run(["forecast"], {"frames": x.numpy()})[0]
        with torch.no_grad():
            want = p.model.eval()(x, 2).numpy()
        assert got.shape == want.shape and np.max(np.abs(got - want)) <= 1e-4


# ---- importer errors -----------------------------------------------------------------------------------
def test_importer_refuses_the_wrong_variant_and_unsupported_checkpoints():
    v1 = ref.predrnn_state_dict(patch_channels=16, num_hidden=[4, 4], seed=3)
    v2 = ref.predrnn_state_dict(patch_channels=16, num_hidden=[4, 4], v2=True, seed=3)
    with pytest.raises(InputError, match="arch='predrnn'"):
        from_openstl(v1, "PredRNNv2", {"patch_size": 4})
    with pytest.raises(InputError, match="arch='predrnnv2'"):
        from_openstl(v2, "predrnn", {"patch_size": 4})
    with pytest.raises(ConfigError, match="method='predrnnv2'"):
        from_openstl(v1, "predrnn", {"patch_size": 4, "method": "PredRNNv2"})
    ln = ref.predrnn_state_dict(patch_channels=16, num_hidden=[4, 4], layer_norm=True, grid=(16, 16))
    with pytest.raises(InputError, match="layer_norm=1"):
        from_openstl(ln, "predrnn", {"patch_size": 4})
    with pytest.raises(InputError, match="layer_norm=1"):
        from_openstl(v1, "predrnn", {"patch_size": 4, "layer_norm": 1})
    with pytest.raises(ConfigError, match=r"different hidden sizes \[4, 6\]"):
        from_openstl(ref.predrnn_state_dict(patch_channels=16, num_hidden=[4, 6]), "predrnn", {"patch_size": 4})
    with pytest.raises(ConfigError, match="stride"):
        from_openstl(v1, "predrnn", {"patch_size": 4, "stride": 2})
    with pytest.raises(ConfigError, match=r"patch_size=1 with 16.*patch_size=2 with 4.*patch_size=4 with 1"):
        from_openstl(v1, "predrnn")
    assert from_openstl(v1, "predrnn", {"channels": 1}).model.patch_size == 4
    convlstm_like = {
        "cell_list.0.conv_x.0.weight": torch.zeros(16, 16, 5, 5),
        "conv_last.weight": torch.zeros(16, 4, 1, 1),
    }
    with pytest.raises(InputError, match="conv_m"):
        from_openstl(convlstm_like, "predrnn", {"patch_size": 4})


def test_importer_names_unknown_missing_and_misshaped_tensors():
    state = ref.predrnn_state_dict(patch_channels=16, num_hidden=[4, 4], v2=True, seed=4)
    with pytest.raises(InputError, match=r"cell_list\.1\.extra\.weight"):
        from_openstl({**state, "cell_list.1.extra.weight": torch.zeros(3)}, "predrnnv2", {"patch_size": 4})
    missing = {k: v for k, v in state.items() if k != "cell_list.1.conv_last.weight"}
    with pytest.raises(InputError, match=r"missing: cell_list\.1\.conv_last\.weight"):
        from_openstl(missing, "predrnnv2", {"patch_size": 4})
    wrong = {**state, "cell_list.1.conv_m.0.weight": torch.zeros(12, 4, 3, 3)}
    with pytest.raises(InputError, match=r"conv_m\.0\.weight: \(12, 4, 3, 3\), expected \(12, 4, 5, 5\)"):
        from_openstl(wrong, "predrnnv2", {"patch_size": 4})
    out, cfg, _, details = map_openstl_state_dict(state, "PredRNN-V2", {"patch_size": 4})
    assert details["tensors_mapped"] == len(state) == len(out) and details["openstl_model"].startswith("PredRNNv2")
    model = build_model("predrnn_v2", cfg)
    model.load_state_dict(out, strict=True)
    assert count_parameters(model) == sum(v.numel() for v in state.values())
