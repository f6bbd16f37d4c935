"""The architecture protocol: config dataclasses (JSON round trip, types, ranges, limits before
allocation), the declarations generic code reads, and registering an architecture from outside."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch
from torch import nn

import stzoo
from stzoo.errors import ConfigError, InputError, UnknownModelError
from stzoo.models import (
    ARCHITECTURES,
    Architecture,
    ModelConfig,
    Recipe,
    build_model,
    cfg_field,
    check_frames,
    count_parameters,
    get_architecture,
    make_config,
    parameters_of,
)

ZOO_ARCHS = ["tau", "convlstm", "sa_convlstm"]  # the architectures with released Moving MNIST weights
# every architecture stzoo ships (not those tests register from outside)
ALL_ARCHS = sorted(a for a, spec in ARCHITECTURES.items() if spec.model.__module__.startswith("stzoo.models."))


@pytest.mark.parametrize("arch", ZOO_ARCHS)
def test_config_round_trips_through_json_and_model_records_it(arch):
    spec = get_architecture(arch)
    cfg = spec.config()
    again = spec.config.from_dict(json.loads(json.dumps(cfg.to_dict())))
    assert again == cfg
    model = build_model(arch, cfg.to_dict())
    assert model.config == cfg and model.arch == arch
    # the recorded config rebuilds the same architecture: same keys and shapes
    twin = build_model(arch, model.config.to_dict())
    assert {k: v.shape for k, v in twin.state_dict().items()} == {k: v.shape for k, v in model.state_dict().items()}


@pytest.mark.parametrize("arch", ALL_ARCHS)
def test_every_field_is_commented_and_the_model_file_imports_only_models_and_errors(arch):
    """nanoGPT-style configs (a comment on every field) and pure models (no I/O, no training layer)."""
    import ast
    import inspect
    import sys

    spec = get_architecture(arch)
    source = inspect.getsource(spec.config) + "".join(
        inspect.getsource(k) for k in spec.config.__mro__[1:] if k is not ModelConfig and issubclass(k, ModelConfig)
    )
    for f in dataclasses.fields(spec.config):
        line = next(ln for ln in source.splitlines() if ln.strip().startswith(f"{f.name}:"))
        assert "#" in line, f"{arch}.{f.name} has no comment: {line.strip()}"
    tree = ast.parse(inspect.getsource(sys.modules[spec.model.__module__]))
    names = [a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names]
    names += [n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module]
    ours = [m for m in names if m.startswith("stzoo")]
    assert ours and all(m.startswith(("stzoo.models", "stzoo.errors")) for m in ours), ours


@pytest.mark.parametrize(
    "bad,match",
    [
        ({"hid_T": 10**7}, "hid_T"),
        ({"N_T": 10**6}, "N_T"),
        ({"mlp_ratio": 1e9}, "mlp_ratio"),
        ({"hid_S": "16"}, "whole number"),
        ({"hid_S": 16.0}, "whole number"),
        ({"hid_S": None}, "whole number"),
        ({"N_S": -2}, "N_S"),
        ({"hid_S": True}, "whole number"),
        ({"mlp_ratio": float("nan")}, "finite"),
        ({"N_S": 3}, "even"),
        ({"frames": 0}, "frames"),
    ],
)
def test_tau_config_refuses_bad_values_before_allocating(bad, match):
    with pytest.raises(ConfigError, match=match):
        build_model("tau", bad)


@pytest.mark.parametrize(
    "bad,match",
    [
        ({"patch_size": 0}, "patch_size"),
        ({"frames_out": 10**9}, "frames_out"),
        ({"num_hidden": "64"}, "whole"),
        ({"layer_norm": "yes"}, "true or false"),
        ({"filter_size": 4}, "odd"),
    ],
)
def test_recurrent_config_refuses_bad_values(bad, match):
    with pytest.raises(ConfigError, match=match):
        build_model("convlstm", bad)


def test_numpy_integers_are_accepted_and_become_python_ints():
    cfg = make_config("tau", {"hid_S": np.int64(16), "mlp_ratio": np.float32(4.0)})
    assert cfg.hid_S == 16 and type(cfg.hid_S) is int and type(cfg.mlp_ratio) is float
    json.dumps(cfg.to_dict())


def test_parameter_limit_is_checked_on_the_meta_device():
    cfg = {"hid_T": 8192, "N_T": 64, "mlp_ratio": 64.0}
    n = parameters_of(get_architecture("tau"), make_config("tau", cfg))
    assert n > 10**11  # what building it would have allocated: refused from the meta-device count
    with pytest.raises(ConfigError, match="parameters"):
        build_model("tau", cfg)
    small = {"hid_S": 8, "hid_T": 16, "N_T": 2}
    assert count_parameters(build_model("tau", small)) == parameters_of(
        get_architecture("tau"), make_config("tau", small)
    )
    with pytest.raises(ConfigError, match="max_parameters"):
        build_model("tau", small, max_parameters=100)
    build_model("tau", small, max_parameters=None)


def test_check_frames_lists_every_broken_rule():
    tau = get_architecture("tau")
    cfg = make_config("tau", {"frames": 4})
    problems = check_frames(tau, cfg, (1, 5, 3, 30, 32))
    assert len(problems) == 3
    assert "4 frames" in problems[0] and "channel" in problems[1] and "divisible by 4" in problems[2]
    assert check_frames(tau, cfg, (2, 4, 1, 32, 32)) == []
    lstm = get_architecture("convlstm")
    assert check_frames(lstm, make_config("convlstm"), (1, 3, 1, 64, 64)) == []  # any number of frames
    assert "patch size 4" in check_frames(lstm, make_config("convlstm"), (1, 3, 1, 62, 64))[0]
    # a model's own forward raises all of them in one message
    with pytest.raises(InputError, match="channel.*divisible"):
        build_model("tau", {"frames": 4, "hid_S": 8, "hid_T": 16, "N_T": 2})(torch.rand(1, 4, 3, 30, 32))


def test_declarations_name_real_weights():
    """channel_params / frames_params must name tensors the model has, or adaptation silently skips them."""
    for arch in ZOO_ARCHS:
        spec = get_architecture(arch)
        cfg = spec.config(**({"layer_norm": True} if "layer_norm" in spec.config.__dataclass_fields__ else {}))
        with torch.device("meta"):
            keys = set(spec.model(cfg).state_dict())
        assert set(spec.channel_params(cfg)) <= keys, arch
        for prefix in spec.frames_params(cfg):
            assert any(k.startswith(prefix) for k in keys), (arch, prefix)


def test_recipes_come_from_the_declarations():
    from stzoo.training.train import RECIPES

    assert RECIPES["tau"].loss == "mse+ddr"
    assert RECIPES["convlstm"].scheduled_sampling == 0.5
    assert set(RECIPES) >= set(ZOO_ARCHS)


# ---- an architecture from outside the package ---------------------------------------------------
@dataclasses.dataclass
class _ToyConfig(ModelConfig):
    frames_in: int = cfg_field(3, lo=1, hi=50)  # frames read
    frames_out: int = cfg_field(3, lo=1, hi=50)  # frames written
    channels: int = cfg_field(1, lo=1, hi=4)  # colour channels
    height: int = cfg_field(16, lo=2, hi=256)  # training size
    width: int = cfg_field(16, lo=2, hi=256)


class _Toy(nn.Module):
    arch, recurrent = "toy_protocol", False

    def __init__(self, config=None, **overrides):
        super().__init__()
        self.config = _ToyConfig.from_dict({**(config.to_dict() if config else {}), **overrides})
        c = self.config
        self.frames_in, self.frames_out, self.channels = c.frames_in, c.frames_out, c.channels
        self.head = nn.Conv2d(c.frames_in * c.channels, c.frames_out * c.channels, 3, padding=1)

    def forward(self, x):
        b, t, c, h, w = x.shape
        return self.head(x.reshape(b, t * c, h, w)).reshape(b, self.frames_out, c, h, w)


@pytest.fixture
def toy():
    spec = Architecture(
        name="toy_protocol",
        model=_Toy,
        config=_ToyConfig,
        recipe=Recipe(lr=1e-2),
        any_frames=False,
        spec_keys={k: k for k in ("frames_in", "frames_out", "channels", "height", "width")},
        size_multiple=lambda cfg: 2,
        size_reason=lambda cfg: "the toy halves nothing",
        channel_params=lambda cfg: {},
        frames_params=lambda cfg: ["head."],
    )
    stzoo.register_architecture(spec)
    yield spec
    ARCHITECTURES.pop("toy_protocol", None)


def test_registered_architecture_works_with_generic_code(toy, tmp_path):
    from stzoo.training.adapt import adapt

    p = stzoo.create("toy_protocol", {"frames_out": 2})
    assert p.spec.frames_in == 3 and p.spec.frames_out == 2
    frames = np.random.default_rng(0).integers(0, 255, (3, 16, 16), dtype=np.uint8)
    assert p.predict(frames, horizon=5).shape == (5, 16, 16)
    with pytest.raises(InputError, match="divisible by 2"):
        p.predict(np.zeros((3, 15, 16), np.uint8))
    new, report = adapt(p, frames_in=4)
    assert new.model.config.frames_in == 4 and report.reinitialised == ["head.weight"]
    assert "head.bias" in report.copied
    p.save_pretrained(tmp_path / "toy")
    q = stzoo.load(tmp_path / "toy")
    assert np.array_equal(q.predict(frames), p.predict(frames))


def test_register_refuses_bad_declarations(toy):
    with pytest.raises(ConfigError, match="already registered"):
        stzoo.register_architecture(dataclasses.replace(toy))
    with pytest.raises(ConfigError, match="spec_keys"):
        stzoo.register_architecture(dataclasses.replace(toy, name="toy2", spec_keys={"frames_in": "frames_in"}))
    with pytest.raises(ConfigError, match="does not have"):
        stzoo.register_architecture(
            dataclasses.replace(
                toy,
                name="toy3",
                spec_keys={
                    "frames_in": "nope",
                    "frames_out": "frames_out",
                    "channels": "channels",
                    "height": "height",
                    "width": "width",
                },
            )
        )
    assert "toy2" not in ARCHITECTURES and "toy3" not in ARCHITECTURES
    with pytest.raises(UnknownModelError, match="toy_protocol"):
        get_architecture("no-such-arch")


def test_tied_frames_are_refused_by_adapt_generically():
    from stzoo.training.adapt import adapt

    p = stzoo.create("tau", {"frames": 4, "hid_S": 8, "hid_T": 16, "N_T": 2})
    with pytest.raises(InputError, match="frames_in and frames_out"):
        adapt(p, frames_in=4, frames_out=6)
    new, report = adapt(p, frames_in=6, frames_out=6)
    assert new.model.config.frames == 6
    assert all(k.startswith(("translator.blocks.0.", "translator.blocks.1.reduction.")) for k in report.reinitialised)
