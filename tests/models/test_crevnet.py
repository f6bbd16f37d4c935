"""CrevNet (stzoo.models.crevnet) and its OpenSTL importer (stzoo.convert.openstl.crevnet).

OpenSTL is not installable from the package index: the checkpoints here are built in OpenSTL's key
layout and compared with an independent re-statement of its forward pass
(``tests/helpers/openstl_reference_crevnet.py``, which names the OpenSTL files it comes from).
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from helpers import openstl_reference as ref  # noqa: E402
from helpers import openstl_reference_crevnet as rc  # noqa: E402

import stzoo
import stzoo.convert.openstl.crevnet  # noqa: F401  (registers the importer)
from stzoo.convert import from_openstl, map_openstl_state_dict
from stzoo.errors import ConfigError, InputError
from stzoo.models import build_model, count_parameters, get_architecture, parameters_of
from stzoo.training.losses import compute_loss

TOL = 1e-5
# configs/mmnist/CrevNet.py of OpenSTL v0.3.0, as published
MMNIST_CONFIG = """method = 'CrevNet'
n_eval = 18
rnn_size = 32
predictor_rnn_layers = 8
# training
lr = 5e-3
batch_size = 16
sched = 'onecycle'
"""
OPENSTL_PARAMS = 4_997_444  # OpenSTL's CrevNet_Model at configs/mmnist/CrevNet.py (its table: 5.0M)


def _tiny_state(channels: int = 1, blocks=(2, 1), layers: int = 2, seed: int = 0) -> dict[str, torch.Tensor]:
    return rc.crevnet_state_dict(channels=channels, predictor_rnn_layers=layers, nBlocks=blocks, seed=seed)


# ---- parameter counts ------------------------------------------------------------------------------
def test_parameter_count_is_openstls_plus_the_two_frame_maps():
    spec = get_architecture("crevnet")
    shapes = rc.crevnet_shapes()
    openstl = sum(int(np.prod(v)) for k, v in shapes.items() if "running" not in k and "num_batches" not in k)
    assert openstl == OPENSTL_PARAMS
    assert parameters_of(spec, spec.config()) == OPENSTL_PARAMS + 2  # map_in, map_out: 1×1 each for grey frames


def test_the_published_config_file_converts_a_paper_size_checkpoint(tmp_path):
    state = rc.crevnet_state_dict(seed=3)
    cfg_file = tmp_path / "CrevNet.py"
    cfg_file.write_text(MMNIST_CONFIG)
    from stzoo.convert.openstl import read_openstl_config

    raw, lenient = read_openstl_config(cfg_file)
    out, cfg, spec_in, details = map_openstl_state_dict(state, "CrevNet", raw, lenient_config=lenient)
    assert build_model("crevnet", cfg).config == get_architecture("crevnet").config()  # = the defaults
    assert spec_in["channels"] == 1 and (spec_in["height"], spec_in["width"]) == (64, 64)
    assert details["tensors_unused"] == [] and details["tensors_mapped"] == len(state) == 355
    assert {"lr", "batch_size", "sched"} <= set(details["ignored_config"])
    model = build_model("crevnet", cfg)
    model.load_state_dict(out, strict=True)
    assert count_parameters(model) == OPENSTL_PARAMS + 2
    # every OpenSTL value arrives exactly once, unchanged; the two frame maps are the identity
    mine = {k: v for k, v in out.items() if not k.startswith("autoencoder.map_")}
    mine_values = torch.sort(torch.cat([v.flatten().double() for v in mine.values()])).values
    assert torch.equal(mine_values, torch.sort(torch.cat([v.flatten().double() for v in state.values()])).values)
    assert out["autoencoder.map_in"].tolist() == [[1.0]] == out["autoencoder.map_out"].tolist()


# ---- parity with OpenSTL ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    "channels,blocks,layers,t_in,t_out",
    [(1, (2, 1), 2, 5, 6), (2, (1, 2, 1), 3, 4, 3), (1, (1, 1, 1, 1), 1, 3, 4)],
)
def test_outputs_equal_openstl(channels, blocks, layers, t_in, t_out):
    state = _tiny_state(channels, blocks, layers, seed=channels + layers)
    s = 2 ** len(blocks)
    h, w = 2 * s, 3 * s
    p = from_openstl(state, "crevnet", {"pre_seq_length": t_in, "aft_seq_length": t_out, "height": h, "width": w})
    gen = torch.Generator().manual_seed(layers)
    x, y = torch.rand(2, t_in, channels, h, w, generator=gen), torch.rand(2, t_out, channels, h, w, generator=gen)
    expected = rc.crevnet_predict(state, x, y, nBlocks=blocks)
    with torch.no_grad():
        got = p.model(x, t_out)
    assert got.shape == expected.shape == (2, t_out, channels, h, w)
    assert float((got - expected).abs().max()) <= TOL and ref.relative_error(got, expected) <= TOL
    assert float(expected.std()) > 1e-3 and float((expected[:, 1:] - expected[:, :-1]).abs().max()) > 1e-3
    assert (p.spec.frames_in, p.spec.frames_out, p.spec.channels) == (t_in, t_out, channels)
    # the published test-time convention, frame by frame: a Forecaster streams the same forecast
    stream = stzoo.Forecaster(p, horizon=t_out)
    for frame in x[0].numpy():
        stream.push(frame)
    # (predict and a Forecaster return frames in the input's range: the forecast clipped to [0, 1])
    np.testing.assert_allclose(
        np.asarray(stream.forecast(), np.float32), got[0].clamp(0, 1).numpy(), rtol=1e-4, atol=1e-5
    )


def test_the_published_config_equals_openstl_on_a_small_frame():
    """configs/mmnist/CrevNet.py as published (5.0M parameters), 10 → 10 frames, at 16×16 to stay fast."""
    state = rc.crevnet_state_dict(seed=5)
    p = from_openstl(state, "crevnet", {"in_shape": [10, 1, 16, 16], "aft_seq_length": 10, "n_eval": 18})
    gen = torch.Generator().manual_seed(0)
    x, y = torch.rand(1, 10, 1, 16, 16, generator=gen), torch.rand(1, 10, 1, 16, 16, generator=gen)
    with torch.no_grad():
        got = p.model(x, 10)
    expected = rc.crevnet_predict(state, x, y)
    assert float((got - expected).abs().max()) <= TOL and float(expected.std()) > 1e-3


def test_only_the_last_three_frames_matter_and_a_short_clip_is_padded_with_its_first_frame():
    model = build_model("crevnet", get_architecture("crevnet").tiny_config).eval()
    x = torch.rand(2, 6, 1, 8, 8)
    with torch.no_grad():
        full = model(x, 4)
        changed = model(torch.cat([torch.rand(2, 3, 1, 8, 8), x[:, 3:]], 1), 4)
        one = model(x[:, :1], 3)
        padded = model(x[:, :1].expand(-1, 3, -1, -1, -1), 3)
        two = model(x[:, :2], 3)
        padded2 = model(torch.cat([x[:, :1], x[:, :2]], 1), 3)
    torch.testing.assert_close(full, changed, rtol=0, atol=0)  # OpenSTL's test loop reads input[T-3] only
    torch.testing.assert_close(one, padded, rtol=0, atol=0)
    torch.testing.assert_close(two, padded2, rtol=0, atol=0)


def test_the_autoencoder_is_invertible():
    model = build_model("crevnet", {**get_architecture("crevnet").tiny_config, "blocks": [2, 2, 1]}).eval()
    with torch.no_grad():  # random BatchNorm statistics: the inverse must not rely on the identity
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm3d):
                m.running_mean.uniform_(-0.3, 0.3)
                m.running_var.uniform_(0.5, 1.5)
        window = torch.rand(2, 1, 3, 16, 16)
        code = model.autoencoder.encode(window)
        back = model.autoencoder.decode(*code)
    assert code[0].shape == code[1].shape == (2, 32, 3, 2, 2)
    assert float((back - window).abs().max()) < 1e-5


def test_training_is_openstls_teacher_forced_windows():
    arch = get_architecture("crevnet")
    model = build_model("crevnet", arch.tiny_config).eval()
    seq = torch.rand(2, 8, 1, 8, 8)
    with torch.no_grad():
        windows = model(seq, teacher_forced=True)
        first = model(seq[:, :3], 1)
        recipe = dataclasses.replace(arch.recipe, frames_in=4, frames_out=4)
        pred, target, extra = arch.training_forward(model, recipe, seq, 0.5)
    assert windows.shape == (2, 5, 1, 3, 8, 8) and extra is None
    # window 1 predicted from window 0 with fresh states: its last frame is the forecast from frames 0-2
    torch.testing.assert_close(windows[:, 0, :, 2], first[:, 0], rtol=0, atol=0)
    assert pred.shape == target.shape == (2, 15, 1, 8, 8)
    torch.testing.assert_close(target[:, :3], seq[:, 1:4], rtol=0, atol=0)  # window 1 = frames 1, 2, 3
    torch.testing.assert_close(target[:, -3:], seq[:, 5:8], rtol=0, atol=0)
    torch.testing.assert_close(pred[:, 3:6], windows[:, 1].transpose(1, 2), rtol=0, atol=0)
    assert torch.isfinite(compute_loss(model, recipe, seq, 0.0))
    with pytest.raises(InputError, match="at least 4"):
        model(seq[:, :3], teacher_forced=True)


# ---- errors -----------------------------------------------------------------------------------------
def test_mismatched_checkpoints_and_configs_are_clear_errors():
    state = _tiny_state()
    with pytest.raises(ConfigError, match="rnn_size"):
        from_openstl(state, "crevnet", {"rnn_size": 32, "height": 8, "width": 8})
    with pytest.raises(ConfigError, match="method"):
        from_openstl(state, "crevnet", {"method": "PredRNN"})
    with pytest.raises(ConfigError, match="multiple of 4"):
        from_openstl(state, "crevnet", {"height": 18})
    with pytest.raises(ConfigError, match="n_eval"):
        from_openstl(state, "crevnet", {"n_eval": 18, "pre_seq_length": 10, "aft_seq_length": 12})
    with pytest.raises(ConfigError, match="predictor_rnn_layers"):
        from_openstl(state, "crevnet", {"predictor_rnn_layers": 8})
    with pytest.raises(ConfigError, match="channels"):
        from_openstl(state, "crevnet", {"in_shape": [10, 3, 64, 64]})
    missing = {k: v for k, v in state.items() if k != "frame_predictor.convlstm.1.w1.bias"}
    with pytest.raises(InputError, match="missing"):
        from_openstl(missing, "crevnet")
    with pytest.raises(InputError, match="does not have"):
        from_openstl({**state, "extra.weight": torch.zeros(1)}, "crevnet")
    wrong = {**state, "frame_predictor.convlstm.0.out_gate.weight": torch.zeros(8, 24, 3, 3, 3)}
    with pytest.raises(InputError, match="out_gate"):
        from_openstl(wrong, "crevnet")
    narrow = {**state, "frame_predictor.att.0.0.weight": torch.zeros(4, 4, 1, 1, 1)}
    with pytest.raises(InputError, match="rnn_size must equal"):
        from_openstl(narrow, "crevnet")
    with pytest.raises(InputError, match="CrevNet_Model"):
        from_openstl({"cell_list.0.conv_x.0.weight": torch.zeros(4, 4, 3, 3)}, "crevnet")


def test_config_rules():
    spec = get_architecture("crevnet")
    with pytest.raises(ConfigError, match="blocks"):
        spec.config(blocks=(1, 1, 1, 1, 1))
    with pytest.raises(ConfigError, match="blocks"):
        spec.config(blocks=(4, "5", 3))
    with pytest.raises(ConfigError, match="multiple of 8"):
        spec.config(height=60)
    cfg = spec.config(blocks=[1, 1], height=12, width=16)
    assert cfg.blocks == (1, 1) and cfg.hidden == 8 and spec.config.from_dict(cfg.to_dict()) == cfg
    model = build_model("crevnet", cfg.to_dict())
    with pytest.raises(InputError, match="divisible by 4"):
        model(torch.rand(1, 3, 1, 14, 16))


def test_the_published_crevnet_checkpoint_converts_with_its_catalogue_config():
    """OpenSTL's one CrevNet file: weights shaped by the recorded config convert with it and the model
    forecasts at Moving MNIST's shape."""
    from stzoo.convert.openstl.catalog import catalog_entries
    from stzoo.convert.openstl.zoo import arch_for

    entries = catalog_entries(method="CrevNet")
    assert list(entries) == ["mmnist_crevnet_one_ep200"]
    entry = entries["mmnist_crevnet_one_ep200"]
    assert entry["stzoo_arch"] == "crevnet" == arch_for(entry)
    cfg = dict(entry["config"])
    state = rc.crevnet_state_dict(rnn_size=cfg["rnn_size"], predictor_rnn_layers=cfg["predictor_rnn_layers"], seed=1)
    out, model_cfg, spec, _ = map_openstl_state_dict(state, "CrevNet", cfg, lenient_config=True)
    assert [spec[k] for k in ("frames_in", "frames_out", "channels", "height", "width")] == [10, 10, 1, 64, 64]
    model = build_model("crevnet", model_cfg).eval()
    model.load_state_dict(out)
    with torch.no_grad():
        y = model(torch.rand(1, 10, 1, 64, 64), 1)
    assert y.shape == (1, 1, 1, 64, 64) and torch.isfinite(y).all()


def test_the_paper_entry_loads_openstls_file_by_name(tmp_path, monkeypatch):
    """``crevnet-mmnist-paper`` resolves to OpenSTL's one CrevNet file, fetched from a loopback release server
    (random weights in OpenSTL's layout), converted and forecasting at Moving MNIST's shape."""
    import io

    from helpers.release_server import ReleaseServer

    from stzoo.convert.openstl import zoo
    from stzoo.zoo.manifest import get_entry

    stem = "mmnist_crevnet_one_ep200"
    assert zoo.paper_counterpart(get_entry("crevnet-mmnist-paper")) == stem
    buf = io.BytesIO()
    torch.save(rc.crevnet_state_dict(seed=2), buf)
    monkeypatch.setenv("STZOO_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("STZOO_OFFLINE", raising=False)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    with ReleaseServer({f"/mmnist-weights/{stem}.pth": buf.getvalue()}) as srv:
        monkeypatch.setenv("STZOO_OPENSTL_ENDPOINT", srv.url)
        p = stzoo.load("crevnet-mmnist-paper")
    assert p.name == "crevnet-mmnist-paper" and p.entry.extra["source"] == f"openstl:{stem}"
    assert p.model.arch == "crevnet" and count_parameters(p.model) == OPENSTL_PARAMS + 2
    frames = np.random.default_rng(0).integers(0, 256, (10, 64, 64), dtype=np.uint8)
    y = p.predict(frames, horizon=2)
    assert y.shape == (2, 64, 64) and y.dtype == np.uint8
