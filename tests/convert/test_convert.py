"""stzoo.convert.openstl: OpenSTL TAU / ConvLSTM checkpoints → stzoo.

OpenSTL is not installable from the package index, so the checkpoints here are built in OpenSTL's
exact key layout and shapes, and the converted models are compared with an independent
re-statement of OpenSTL's forward pass; both live in ``tests/helpers/openstl_reference.py``, which says
which OpenSTL source files they come from.
"""

from __future__ import annotations

import argparse
import json

import pytest
import torch
from helpers import openstl_reference as ref  # noqa: E402

import stzoo
from stzoo.cli.main import main
from stzoo.convert import convert_openstl, from_openstl, load_openstl_checkpoint, map_openstl_state_dict
from stzoo.errors import ConfigError, InputError, WeightsNotAvailableError
from stzoo.models import build_model, count_parameters

TOL = 1e-5  # the bound on max |stzoo − OpenSTL| / max |OpenSTL|, fp32
SMALL_TAU = dict(channels=2, frames=4, hid_S=8, hid_T=24, N_S=4, N_T=3, mlp_ratio=4.0)
LIGHTNING_EXTRAS = {
    "epoch": 3,
    "global_step": 300,
    "pytorch-lightning_version": "2.1.0",
    "optimizer_states": [{"state": {}, "param_groups": [{"lr": 1e-3, "params": [0, 1]}]}],
    "lr_schedulers": [{"last_epoch": 3}],
}


def _tau_input(batch: int = 2, size: int = 16) -> torch.Tensor:
    return torch.rand(batch, SMALL_TAU["frames"], SMALL_TAU["channels"], size, size)


def _containers(state: dict, hparams: dict | None = None) -> dict[str, dict]:
    return {
        "raw": dict(state),
        "state_dict+optimizer": {
            "state_dict": dict(state),
            "optimizer": {"state": {}, "param_groups": []},
            "epoch": 200,
        },
        "lightning": {
            **LIGHTNING_EXTRAS,
            "state_dict": {"model." + k: v for k, v in state.items()},
            "hyper_parameters": dict(hparams or {}),
        },
    }


# ---- TAU -------------------------------------------------------------------------------------------
def test_paper_config_checkpoint_is_converted_completely():
    state = ref.tau_state_dict(seed=1)  # configs/mmnist/TAU.py: hid_S 64, hid_T 512, N_S 4, N_T 8, 10 frames
    buffers = [k for k in state if k.endswith(("running_mean", "running_var", "num_batches_tracked"))]
    params = {k: v for k, v in state.items() if k not in buffers}
    assert sum(v.numel() for v in params.values()) == 44_656_001
    assert (len(state), len(params), len(buffers)) == (278, 230, 48)  # 16 BatchNorms × 3 buffers
    out, cfg, spec, details = map_openstl_state_dict(state, "tau")
    assert details["tensors_mapped"] == len(state) == len(out) and details["tensors_unused"] == []
    assert cfg == {
        "frames": 10,
        "channels": 1,
        "hid_S": 64,
        "hid_T": 512,
        "N_S": 4,
        "N_T": 8,
        "mlp_ratio": 8.0,
        "spatio_kernel": 3,
        "kernel_size": 21,
        "height": 64,
        "width": 64,
    }
    assert (spec["frames_in"], spec["frames_out"]) == (10, 10)
    model = build_model("tau", cfg)
    model.load_state_dict(out, strict=True)
    assert count_parameters(model) == 44_656_001
    x = torch.rand(1, 10, 1, 64, 64)
    with torch.no_grad():
        assert ref.relative_error(model.eval()(x), ref.simvp_tau_forward(state, x)) <= TOL
    # every OpenSTL value arrives unchanged, each in exactly one stzoo tensor
    assert sorted(round(float(v.double().sum()), 3) for v in out.values()) == sorted(
        round(float(v.double().sum()), 3) for v in state.values()
    )


@pytest.mark.parametrize("container", ["raw", "state_dict+optimizer", "lightning"])
def test_tau_outputs_equal_openstl_for_each_container(tmp_path, container):
    state = ref.tau_state_dict(**SMALL_TAU, seed=2)
    path = tmp_path / ("tau.ckpt" if container == "lightning" else "tau.pth")
    torch.save(_containers(state)[container], path)
    p = from_openstl(path, "tau", {"in_shape": [4, 2, 16, 16]})
    x = _tau_input()
    expected = ref.simvp_tau_forward(state, x)
    with torch.no_grad():
        got = p.model(x)
    assert ref.relative_error(got, expected) <= TOL
    rep = p.entry.extra["openstl"]
    assert rep["source"] == path.name and len(rep["sha256"]) == 64
    assert rep["prefix"] == ("model." if container == "lightning" else "")
    assert rep["container"].startswith(
        {
            "raw": "raw state_dict",
            "state_dict+optimizer": "dict with a 'state_dict'",
            "lightning": "Lightning checkpoint",
        }[container]
    )
    # through the Predictor (uint8 in → uint8 out) too
    frames = (x[0].permute(0, 2, 3, 1).numpy() * 255).round().astype("uint8")  # T×H×W×C
    assert p.predict(frames, layout="THWC").shape == frames.shape


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_converted_models_run_on_the_gpu(monkeypatch):
    monkeypatch.setattr(torch.backends.cudnn, "allow_tf32", False)  # the bound is for true fp32 arithmetic
    monkeypatch.setattr(torch.backends.cuda.matmul, "allow_tf32", False)
    state = ref.tau_state_dict(**SMALL_TAU, seed=9)
    p = from_openstl(state, "tau", device="cuda")
    x = _tau_input()
    with torch.no_grad():
        assert ref.relative_error(p.model(x.cuda()).cpu(), ref.simvp_tau_forward(state, x)) <= TOL
    lstm = ref.convlstm_state_dict(patch_channels=12, num_hidden=[8, 8], seed=9)
    q = from_openstl(lstm, "convlstm", {"patch_size": 2}, device="cuda")
    x, y = torch.rand(2, 5, 3, 16, 16), torch.rand(2, 4, 3, 16, 16)
    with torch.no_grad():
        assert ref.relative_error(q.model(x.cuda(), 4).cpu(), ref.convlstm_predict(lstm, x, y, 2)) <= TOL


def test_tau_config_values_are_checked_against_the_weights():
    state = ref.tau_state_dict(**SMALL_TAU)
    with pytest.raises(ConfigError, match=r"hid_S=16.*hid_S=8"):
        from_openstl(state, "tau", {"hid_S": 16})
    with pytest.raises(ConfigError, match="model_type"):
        from_openstl(state, "tau", {"model_type": "gSTA"})
    with pytest.raises(ConfigError, match="patch_size"):  # a ConvLSTM setting given for TAU
        from_openstl(state, "tau", {"patch_size": 4})
    with pytest.raises(ConfigError, match="pre_seq_lenght"):
        from_openstl(state, "tau", {"pre_seq_lenght": 4})


def test_unknown_missing_and_misshaped_tensors_are_errors_that_name_them():
    state = ref.tau_state_dict(**SMALL_TAU)
    extra = {**state, "hid.enc.1.block.attn.extra.weight": torch.zeros(3)}
    with pytest.raises(InputError, match=r"hid\.enc\.1\.block\.attn\.extra\.weight"):
        from_openstl(extra, "tau")
    missing = {k: v for k, v in state.items() if k != "hid.enc.1.block.mlp.dwconv.dwconv.bias"}
    with pytest.raises(InputError, match=r"missing: hid\.enc\.1\.block\.mlp\.dwconv\.dwconv\.bias"):
        from_openstl(missing, "tau")
    no_counter = {k: v for k, v in state.items() if k != "hid.enc.0.block.norm2.num_batches_tracked"}
    with pytest.raises(InputError, match="num_batches_tracked"):
        from_openstl(no_counter, "tau")
    wrong = dict(state)
    wrong["hid.enc.2.block.attn.spatial_gating_unit.conv_spatial.weight"] = torch.zeros(24, 1, 5, 5)
    with pytest.raises(InputError, match=r"conv_spatial\.weight: \(24, 1, 5, 5\), expected \(24, 1, 7, 7\)"):
        from_openstl(wrong, "tau")
    ddp = from_openstl({"module." + k: v for k, v in state.items()}, "tau")  # a DataParallel/DDP save
    assert ddp.entry.extra["openstl"]["prefix"] == "module."
    partial_prefix = {("model." + k if i else k): v for i, (k, v) in enumerate(state.items())}
    with pytest.raises(InputError, match="prefix"):
        from_openstl(partial_prefix, "tau")


def test_other_simvp_translators_and_wrong_arch_are_refused():
    state = ref.tau_state_dict(**SMALL_TAU)
    # SimVP's gSTA attention (simvp_modules.AttentionModule): no SE ``fc``, a gated conv1 with 2·dim outputs
    gsta = {k: v for k, v in state.items() if ".spatial_gating_unit.fc." not in k}
    for i, dim in enumerate((32, 24, 24)):  # T·hid_S = 4·8, then hid_T
        gsta[f"hid.enc.{i}.block.attn.spatial_gating_unit.conv1.weight"] = torch.zeros(2 * dim, dim, 1, 1)
        gsta[f"hid.enc.{i}.block.attn.spatial_gating_unit.conv1.bias"] = torch.zeros(2 * dim)
    with pytest.raises(InputError, match="gSTA"):
        from_openstl(gsta, "tau")
    no_se = {k: v for k, v in state.items() if ".spatial_gating_unit.fc." not in k}
    with pytest.raises(InputError, match="not TAU's"):
        from_openstl(no_se, "tau")
    with pytest.raises(InputError, match="ConvLSTM"):
        from_openstl(state, "convlstm", {"patch_size": 1})
    with pytest.raises(ConfigError, match="arch must be one of"):
        from_openstl(state, "no_such_method")


# ---- ConvLSTM --------------------------------------------------------------------------------------
@pytest.mark.parametrize("channels,patch", [(1, 4), (3, 2)])
def test_convlstm_outputs_equal_openstl(channels, patch):
    state = ref.convlstm_state_dict(patch_channels=channels * patch * patch, num_hidden=[8, 8, 8], seed=channels)
    p = from_openstl(state, "convlstm", {"patch_size": patch, "pre_seq_length": 5, "aft_seq_length": 6})
    x, y = torch.rand(2, 5, channels, 16, 16), torch.rand(2, 6, channels, 16, 16)
    expected = ref.convlstm_predict(state, x, y, patch)
    with torch.no_grad():
        got = p.model(x, 6)
    assert ref.relative_error(got, expected) <= TOL
    assert p.spec.frames_in == 5 and p.spec.frames_out == 6 and p.spec.channels == channels
    rep = p.entry.extra["openstl"]
    assert rep["tensors_unused"] == sorted(
        f"cell_list.{i}.{n}.weight" for i in range(3) for n in ("conv_o.0", "conv_last")
    )
    assert rep["tensors_mapped"] == 3 * 2 + 1
    for i in range(3):  # OpenSTL's cell has no bias and no forget bias in its forward
        assert torch.count_nonzero(p.model.cells[i].conv_x.bias) == 0


def test_convlstm_patch_order_matters_for_several_channels():
    """Copying the tensors without the channel permutation is visibly wrong when C > 1: the test above
    would catch a converter that skipped it."""
    state = ref.convlstm_state_dict(patch_channels=12, num_hidden=[8, 8], seed=5)
    naive = build_model("convlstm", {"num_layers": 2, "num_hidden": 8, "patch_size": 2, "channels": 3})
    naive.load_state_dict(
        {
            "cells.0.conv_x.weight": state["cell_list.0.conv_x.0.weight"],
            "cells.0.conv_x.bias": torch.zeros(32),
            "cells.0.conv_h.weight": state["cell_list.0.conv_h.0.weight"],
            "cells.1.conv_x.weight": state["cell_list.1.conv_x.0.weight"],
            "cells.1.conv_x.bias": torch.zeros(32),
            "cells.1.conv_h.weight": state["cell_list.1.conv_h.0.weight"],
            "readout.weight": state["conv_last.weight"],
        }
    )
    x, y = torch.rand(1, 4, 3, 8, 8), torch.rand(1, 3, 3, 8, 8)
    with torch.no_grad():
        assert ref.relative_error(naive(x, 3), ref.convlstm_predict(state, x, y, 2)) > 1e-2


def test_convlstm_reverse_scheduled_sampling_inference_is_the_same_rollout():
    state = ref.convlstm_state_dict(patch_channels=4, num_hidden=[6, 6], filter_size=3, seed=7)
    p = from_openstl(state, "convlstm", {"patch_size": 2})
    x, y = torch.rand(1, 3, 1, 8, 8), torch.rand(1, 4, 1, 8, 8)
    with torch.no_grad():
        got = p.model(x, 4)
    assert ref.relative_error(got, ref.convlstm_predict(state, x, y, 2, reverse_scheduled_sampling=1)) <= TOL
    assert p.model.cells[0].conv_x.kernel_size == (3, 3)


def test_convlstm_patch_size_needs_the_config_when_ambiguous():
    state = ref.convlstm_state_dict(patch_channels=16, num_hidden=[4])
    with pytest.raises(ConfigError, match=r"patch_size=1 with 16.*patch_size=2 with 4.*patch_size=4 with 1"):
        from_openstl(state, "convlstm")
    assert from_openstl(state, "convlstm", {"channels": 1}).model.patch_size == 4
    assert from_openstl(state, "convlstm", {"in_shape": [10, 4, 32, 32]}).model.patch_size == 2
    with pytest.raises(ConfigError, match="patch_size=3"):
        from_openstl(state, "convlstm", {"patch_size": 3})
    # 3 = p²·C has one factorisation: no config needed
    assert from_openstl(ref.convlstm_state_dict(patch_channels=3, num_hidden=[4]), "convlstm").spec.channels == 3


def test_convlstm_unsupported_variants_are_clear_errors():
    ln = ref.convlstm_state_dict(patch_channels=16, num_hidden=[4, 4], layer_norm=True, grid=(16, 16))
    with pytest.raises(InputError, match="layer_norm=1"):
        from_openstl(ln, "convlstm", {"patch_size": 4})
    uneven = ref.convlstm_state_dict(patch_channels=16, num_hidden=[4, 6])
    with pytest.raises(ConfigError, match=r"different hidden sizes \[4, 6\]"):
        from_openstl(uneven, "convlstm", {"patch_size": 4})
    state = ref.convlstm_state_dict(patch_channels=16, num_hidden=[4, 4])
    with pytest.raises(ConfigError, match="stride"):
        from_openstl(state, "convlstm", {"patch_size": 4, "stride": 2})
    with pytest.raises(ConfigError, match=r"num_hidden=\[8, 8\]"):
        from_openstl(state, "convlstm", {"patch_size": 4, "num_hidden": "8,8"})
    bad_unused = {**state, "cell_list.1.conv_o.0.weight": torch.zeros(4, 4, 5, 5)}
    with pytest.raises(InputError, match=r"cell_list\.1\.conv_o\.0\.weight: \(4, 4, 5, 5\)"):
        from_openstl(bad_unused, "convlstm", {"patch_size": 4})


def test_lightning_hyper_parameters_supply_the_config(tmp_path):
    state = ref.convlstm_state_dict(patch_channels=12, num_hidden=[8, 8], seed=3)
    hparams = {
        "method": "convlstm",
        "patch_size": 2,
        "in_shape": [4, 3, 8, 8],
        "pre_seq_length": 4,
        "aft_seq_length": 3,
        "num_hidden": "8,8",
        "filter_size": 5,
        "stride": 1,
        "layer_norm": 0,
        "lr": 1e-3,
        "dataname": "custom",
    }
    path = tmp_path / "epoch=3.ckpt"
    torch.save(_containers(state, hparams)["lightning"], path)
    p = from_openstl(path, "convlstm")
    assert (p.spec.frames_in, p.spec.frames_out, p.spec.channels, p.spec.height) == (4, 3, 3, 8)
    assert p.entry.extra["openstl"]["config_sources"]["patch_size"] == "checkpoint hyper_parameters"
    x, y = torch.rand(2, 4, 3, 8, 8), torch.rand(2, 3, 3, 8, 8)
    with torch.no_grad():
        assert ref.relative_error(p.model(x, 3), ref.convlstm_predict(state, x, y, 2)) <= TOL


_TRIPPED: list[str] = []


class _Tripwire:
    """Unpickling this with pickle would call _trip(); torch's weights-only loader must not."""

    def __reduce__(self):
        return (_trip, ("unpickled",))


def _trip(what: str) -> str:
    _TRIPPED.append(what)
    return what


@pytest.mark.skipif(
    not hasattr(torch.serialization, "get_unsafe_globals_in_checkpoint"),
    reason="reading unknown objects as placeholders needs torch >= 2.6",
)
def test_objects_outside_the_weights_become_inert_placeholders(tmp_path):
    state = ref.convlstm_state_dict(patch_channels=4, num_hidden=[4], seed=4)
    hparams = {"patch_size": 2, "args": argparse.Namespace(lr=0.1), "hook": _Tripwire()}
    path = tmp_path / "last.ckpt"
    torch.save(_containers(state, hparams)["lightning"], path)
    with pytest.raises(Exception):  # noqa: B017 (the plain weights-only load refuses the file; its type varies)
        torch.load(path, weights_only=True)
    _TRIPPED.clear()
    loaded, info = load_openstl_checkpoint(path)
    assert _TRIPPED == []  # _trip never ran
    assert "argparse.Namespace" in info["placeholders"] and any(n.endswith("_trip") for n in info["placeholders"])
    assert info["hyper_parameters"]["patch_size"] == 2 and sorted(loaded) == sorted(state)
    assert from_openstl(path, "convlstm").model.patch_size == 2


class _Exploit:
    def __reduce__(self):
        import os

        return (os.system, ("echo this must never run",))


def test_a_file_that_would_run_code_is_refused(tmp_path):
    state = ref.convlstm_state_dict(patch_channels=4, num_hidden=[4])
    path = tmp_path / "evil.pth"
    torch.save({"state_dict": state, "payload": _Exploit()}, path)  # pickling only records the call
    with pytest.raises(InputError, match=r"refusing to read .*system"):
        from_openstl(path, "convlstm", {"patch_size": 2})


def test_unreadable_and_missing_files(tmp_path):
    with pytest.raises(WeightsNotAvailableError, match="does not exist"):
        from_openstl(tmp_path / "nope.pth", "tau")
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"not a torch file")
    with pytest.raises(InputError, match="torch.load"):
        from_openstl(junk, "tau")
    with pytest.raises(InputError, match="not tensors"):
        from_openstl({"state_dict": {"a": 1}}, "tau")


def test_openstl_python_config_file_is_parsed_not_executed(tmp_path):
    cfg = tmp_path / "ConvLSTM.py"
    cfg.write_text(
        "method = 'ConvLSTM'\nreverse_scheduled_sampling = 0\nnum_hidden = '8,8'\nfilter_size = 5\n"
        "stride = 1\npatch_size = 2\nlayer_norm = 0\nsched = 'onecycle'\n"
        "side_effect = open('should-not-exist', 'w')\n"
    )
    state = ref.convlstm_state_dict(patch_channels=4, num_hidden=[8, 8])
    p = from_openstl(state, "convlstm", cfg)
    assert p.model.patch_size == 2 and not (tmp_path / "should-not-exist").exists()
    assert "sched" in p.entry.extra["openstl"]["ignored_config"]
    json_file = tmp_path / "c.json"
    json_file.write_text(json.dumps({"patch_size": 2}))
    assert from_openstl(state, "convlstm", str(json_file)).model.patch_size == 2
    with pytest.raises(ConfigError, match="JSON"):
        from_openstl(state, "convlstm", "patch_size=2")


# ---- writing the folder --------------------------------------------------------------------------
def test_cli_converts_into_a_folder_that_stzoo_load_loads(tmp_path, capsys):
    state = ref.convlstm_state_dict(patch_channels=12, num_hidden=[8, 8], seed=6)
    ckpt = tmp_path / "mmnist_convlstm_one_ep200.pth"
    torch.save(state, ckpt)
    out = tmp_path / "converted"
    rc = main(
        ["convert", "openstl", str(ckpt), "--arch", "convlstm", "--config", '{"patch_size": 2}', "--out", str(out)]
    )
    assert rc == 0
    printed = capsys.readouterr().out
    assert "5 tensors mapped, 4 unused OpenSTL tensors dropped" in printed
    p = stzoo.load(out)
    x, y = torch.rand(1, 10, 3, 16, 16), torch.rand(1, 10, 3, 16, 16)
    with torch.no_grad():
        assert ref.relative_error(p.model(x, 10), ref.convlstm_predict(state, x, y, 2)) <= TOL
    card = (out / "README.md").read_text(encoding="utf-8")
    for needle in (
        "OpenSTL",
        "https://github.com/chengtan9907/OpenSTL",
        "mmnist_convlstm_one_ep200.pth",
        "license: apache-2.0",
        "Apache-2.0",
        "## Origin",
        "cell_list.0.conv_o.0.weight",
    ):
        assert needle in card, needle
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["architecture"] == "convlstm" and cfg["license"] == "Apache-2.0"
    assert "mmnist_convlstm_one_ep200.pth" in cfg["description"]
    # errors go to stderr with exit code 2, nothing written
    bad = tmp_path / "bad"
    assert main(["convert", "openstl", str(ckpt), "--arch", "convlstm", "--out", str(bad)]) == 2
    assert "patch_size" in capsys.readouterr().err and not bad.exists()


def test_convert_openstl_tau_round_trip(tmp_path):
    state = ref.tau_state_dict(**SMALL_TAU, seed=8)
    ckpt = tmp_path / "tau.pth"
    torch.save({"state_dict": state, "optimizer": {}}, ckpt)
    folder, rep = convert_openstl(ckpt, "tau", tmp_path / "out", {"height": 16, "width": 16})
    assert rep.tensors_mapped == len(state) and rep.parameters == count_parameters(build_model("tau", rep.config))
    p = stzoo.load(folder)
    x = _tau_input()
    with torch.no_grad():
        assert ref.relative_error(p.model(x), ref.simvp_tau_forward(state, x)) <= TOL
    assert json.loads((folder / "config.json").read_text())["name"] == "tau-openstl-tau"
