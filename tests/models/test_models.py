"""Architectures: shapes, parameter counts, config handling, scheduled sampling."""

import json

import pytest
import torch

from stzoo.errors import ConfigError, InputError, UnknownModelError
from stzoo.models import ARCHITECTURES, build_model, count_parameters
from stzoo.models.sa_convlstm import SelfAttentionMemory

#: every architecture's tiny config, declared with its registration (``Architecture.tiny_config``)
SMALL = {name: arch.tiny_config for name, arch in ARCHITECTURES.items()}


def test_tau_paper_config_has_reference_parameter_count():
    model = build_model("tau", {"hid_S": 64, "hid_T": 512, "N_S": 4, "N_T": 8, "mlp_ratio": 8.0})
    assert count_parameters(model) == 44_656_001


def test_tau_state_dict_tensor_count_matches_reference_layout():
    # 230 parameters + 8 blocks × 2 BatchNorms × 3 buffers (mean, var, num_batches_tracked)
    model = build_model("tau", {"hid_S": 64, "hid_T": 512, "N_S": 4, "N_T": 8})
    assert len(list(model.parameters())) == 230
    assert len(model.state_dict()) == 230 + 48


@pytest.mark.parametrize("b,t", [(1, 10), (3, 10), (2, 4)])
def test_tau_maps_t_frames_to_t_frames(b, t):
    model = build_model("tau", {**SMALL["tau"], "frames": t}).eval()
    x = torch.rand(b, t, 1, 32, 48)
    assert model(x).shape == (b, t, 1, 32, 48)


def test_tau_multichannel():
    model = build_model("tau", {**SMALL["tau"], "frames": 4, "channels": 3}).eval()
    assert model(torch.rand(2, 4, 3, 16, 16)).shape == (2, 4, 3, 16, 16)


def test_tau_rejects_bad_inputs_with_clear_errors():
    model = build_model("tau", {**SMALL["tau"], "frames": 4})
    with pytest.raises(InputError, match="divisible by 4"):
        model(torch.rand(1, 4, 1, 30, 32))
    with pytest.raises(InputError, match="4 frames"):
        model(torch.rand(1, 5, 1, 32, 32))
    with pytest.raises(InputError, match="channel"):
        model(torch.rand(1, 4, 3, 32, 32))


@pytest.mark.parametrize("arch", ["convlstm", "sa_convlstm"])
@pytest.mark.parametrize("b,t_in,t_out", [(1, 1, 1), (2, 3, 5), (3, 10, 10)])
def test_recurrent_any_lengths(arch, b, t_in, t_out):
    model = build_model(arch, SMALL[arch]).eval()
    x = torch.rand(b, t_in, 1, 16, 16)
    assert model(x, t_out).shape == (b, t_out, 1, 16, 16)
    assert model(x, t_out, return_context=True).shape == (b, t_in - 1 + t_out, 1, 16, 16)


@pytest.mark.parametrize("arch", ["convlstm", "sa_convlstm"])
def test_scheduled_sampling_mask_selects_ground_truth_or_prediction(arch):
    model = build_model(arch, SMALL[arch]).eval()
    x, y = torch.rand(2, 3, 1, 16, 16), torch.rand(2, 4, 1, 16, 16)
    free = model(x, 4)
    # mask 0 everywhere = the model's own predictions: same as no mask
    assert torch.allclose(model(x, 4, target=y, teacher_mask=torch.zeros(2, 3)), free)
    # mask 1 = ground truth fed in: first future frame unchanged, later ones differ
    forced = model(x, 4, target=y, teacher_mask=torch.ones(2, 3))
    assert torch.allclose(forced[:, 0], free[:, 0])
    assert not torch.allclose(forced[:, 1:], free[:, 1:])
    # forcing step k with ground truth equals running the model on the true prefix
    ref = model(torch.cat([x, y[:, :1]], 1), 1)
    mask = torch.tensor([[1.0, 0.0, 0.0]] * 2)
    assert torch.allclose(model(x, 4, target=y, teacher_mask=mask)[:, 1], ref[:, 0], atol=1e-6)


def test_recurrent_rejects_bad_sizes():
    model = build_model("convlstm", SMALL["convlstm"])
    with pytest.raises(InputError, match="patch size 4"):
        model(torch.rand(1, 2, 1, 18, 16), 1)
    with pytest.raises(InputError, match="channel"):
        model(torch.rand(1, 2, 3, 16, 16), 1)


def test_sam_attention_is_softmax_over_positions_unscaled():
    torch.manual_seed(1)
    q, k, v = torch.randn(2, 3, 5), torch.randn(2, 3, 5), torch.randn(2, 4, 5)
    z = SelfAttentionMemory.attend(q, k, v)
    # by hand: for query position n, weights over key positions m = softmax_m(q_n · k_m)
    for b in range(2):
        for n in range(5):
            w = torch.softmax(q[b, :, n] @ k[b], dim=0)
            assert torch.allclose(z[b, :, n], v[b] @ w, atol=1e-6)


def test_convlstm_forget_bias_starts_at_one():
    model = build_model("convlstm", SMALL["convlstm"])
    bias = model.cells[0].conv_x.bias.view(4, -1)
    assert torch.all(bias[1] == 1) and torch.all(bias[[0, 2, 3]] == 0)


@pytest.mark.parametrize("arch", sorted(ARCHITECTURES))
def test_config_round_trips_through_json(arch):
    cfg = json.loads(json.dumps(SMALL[arch]))
    a, b = build_model(arch, cfg), build_model(arch, cfg)
    assert count_parameters(a) == count_parameters(b)
    assert a.state_dict().keys() == b.state_dict().keys()


def test_unknown_arch_and_config_keys():
    with pytest.raises(UnknownModelError, match="convlstm"):
        build_model("simvp2", {})
    with pytest.raises(ConfigError, match="hid_s"):
        build_model("tau", {"hid_s": 4})
    with pytest.raises(ConfigError, match="N_T"):
        build_model("tau", {"N_T": 1})


def test_full_config_fills_defaults_so_equal_models_compare_equal():
    from stzoo.models import full_config

    assert full_config("tau", {"hid_S": 16}) == full_config("tau", {"hid_S": 16, "N_S": 4, "mlp_ratio": 8.0})
    assert full_config("tau", {"hid_S": 16}) != full_config("tau", {"hid_S": 32})
    assert full_config("sa_convlstm", {})["attn_dim"] == 16  # subclass default
    assert full_config("sa_convlstm", {})["patch_size"] == 4  # base-class default
