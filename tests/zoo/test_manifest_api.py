"""Manifest schema, list/info/load, weights verification, and the CLI."""

import copy
import dataclasses
import hashlib
import json
import subprocess
import sys
from pathlib import Path

import jsonschema
import numpy as np
import pytest
import torch
from safetensors.torch import save_file

import stzoo
import stzoo.zoo.manifest as manifest_mod
from stzoo.cli.main import main
from stzoo.errors import InputError, UnknownModelError, WeightsNotAvailableError
from stzoo.models import build_model, count_parameters
from stzoo.zoo.hub import ChecksumError
from stzoo.zoo.manifest import get_entry, load_manifest, validate_manifest

REPO = Path(__file__).resolve().parents[2]


def test_manifest_follows_schema():
    validate_manifest(load_manifest())


def test_repo_root_manifest_is_the_packaged_one():
    assert json.loads((REPO / "weights_manifest.json").read_text()) == load_manifest()


def test_schema_rejects_broken_entries():
    m = load_manifest()
    bad = copy.deepcopy(m)
    bad["models"]["tau-mmnist-s"].pop("input")
    with pytest.raises(jsonschema.ValidationError):
        validate_manifest(bad)
    bad = copy.deepcopy(m)
    bad["models"]["tau-mmnist-s"]["weights"] = {
        "filename": "x.safetensors",
        "sha256": "nothex",
        "size": 1,
        "dtype": "float32",
    }
    with pytest.raises(jsonschema.ValidationError):
        validate_manifest(bad)
    bad = copy.deepcopy(m)
    bad["models"]["dangling"] = {"alias": "nowhere"}
    with pytest.raises(ValueError, match="nowhere"):
        validate_manifest(bad)


@pytest.mark.parametrize("name", sorted(load_manifest()["models"]))
def test_every_entry_builds_with_its_declared_parameter_count(name):
    e = get_entry(name)
    assert count_parameters(build_model(e.architecture, e.config)) == e.parameters


def test_entry_weights_exist_and_match_sha256():
    for name in stzoo.list_models(pretrained=True):
        w = get_entry(name).weights
        path = REPO / "weights" / w.filename
        assert path.is_file(), f"{name}: {path} missing"
        assert path.stat().st_size == w.size
        assert hashlib.sha256(path.read_bytes()).hexdigest() == w.sha256


def test_list_info_and_aliases():
    names = stzoo.list_models()
    assert {"tau-mmnist", "sa-convlstm-mmnist", "convlstm-mmnist"} <= set(names)
    assert stzoo.info("tau-mmnist")["architecture"] == "tau"
    with pytest.raises(UnknownModelError, match="Did you mean tau-mmnist"):
        stzoo.info("tau-mnist")


def test_load_random_init_and_dtype():
    p = stzoo.load("convlstm-mmnist-s", pretrained=False, dtype="bfloat16")
    assert p.dtype == torch.bfloat16 and not p.model.training
    y = p.predict(np.zeros((10, 64, 64), np.uint8))
    assert y.shape == (10, 64, 64) and y.dtype == np.uint8
    with pytest.raises(InputError, match="dtype"):
        stzoo.load("convlstm-mmnist-s", pretrained=False, dtype="int8")


@pytest.fixture
def fake_release(tmp_path, monkeypatch):
    """A manifest entry with released weights in a local weights folder."""
    e = get_entry("convlstm-mmnist-s")
    torch.manual_seed(3)
    model = build_model(e.architecture, e.config)
    path = tmp_path / "w" / "tiny.safetensors"
    path.parent.mkdir()
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(path))
    m = load_manifest()
    entry = m["models"]["convlstm-mmnist-s"]
    entry["weights"] = {
        "filename": "tiny.safetensors",
        "sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
        "size": path.stat().st_size,
        "dtype": "float32",
    }
    monkeypatch.setattr(manifest_mod, "_manifest_cached", lambda: m)
    monkeypatch.setenv("STZOO_WEIGHTS_DIR", str(path.parent))
    return model, path


def test_load_pretrained_from_weights_dir(fake_release):
    model, _ = fake_release
    p = stzoo.load("convlstm-mmnist")
    for k, v in model.state_dict().items():
        assert torch.equal(p.model.state_dict()[k], v)


def test_load_rejects_tampered_weights(fake_release):
    _, path = fake_release
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(ChecksumError, match="sha256"):
        stzoo.load("convlstm-mmnist-s")


def test_load_without_weights_says_what_to_do(monkeypatch, tmp_path):
    with pytest.raises(WeightsNotAvailableError, match="pretrained=False"):
        stzoo.load("sa-convlstm-mmnist-paper")


def test_load_rejects_weights_that_do_not_fit(tmp_path):
    path = tmp_path / "other.safetensors"
    save_file({"foo": torch.zeros(2)}, str(path))
    with pytest.raises(InputError, match="missing"):
        stzoo.load("sa-convlstm-mmnist-paper", weights=path)


# ---- CLI -----------------------------------------------------------------------------------
def test_cli_list_and_info(capsys):
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    assert "tau-mmnist-paper" in out and "44.66 M" in out
    assert main(["info", "sa-convlstm-mmnist-paper"]) == 0
    assert json.loads(capsys.readouterr().out)["architecture"] == "sa_convlstm"


def test_cli_predict_gif_roundtrip(tmp_path, capsys):
    from stzoo.frames import read_frames, write_gif

    write_gif(np.random.default_rng(0).integers(0, 255, (10, 64, 64), dtype=np.uint8), tmp_path / "in.gif")
    assert (
        main(
            [
                "predict",
                "convlstm-mmnist-s",
                "--random",
                "--input",
                str(tmp_path / "in.gif"),
                "--output",
                str(tmp_path / "out.gif"),
                "--horizon",
                "3",
            ]
        )
        == 0
    )
    assert read_frames(tmp_path / "out.gif").shape[0] == 3


def test_cli_reports_user_errors_without_traceback(tmp_path, capsys):
    assert (
        main(
            [
                "predict",
                "convlstm-mmnist-s",
                "--random",
                "--input",
                str(tmp_path / "missing.gif"),
                "--output",
                str(tmp_path / "o.gif"),
            ]
        )
        == 2
    )
    assert "stzoo: error:" in capsys.readouterr().err


def test_console_entry_point_runs():
    out = subprocess.run(
        [sys.executable, "-m", "stzoo", "info", "tau-mmnist"], capture_output=True, text=True, check=True
    ).stdout
    assert json.loads(out)["name"] == "tau-mmnist-s"


def test_list_models_takes_a_wildcard_first():
    assert stzoo.list_models("tau*") == sorted(n for n in stzoo.list_models() if n.startswith("tau"))
    assert "tau-mmnist-s" in stzoo.list_models("tau*", pretrained=True)
    assert all(n.endswith("-paper") for n in stzoo.list_models("*-paper"))
    assert stzoo.list_models("no-such-*") == []
    with pytest.raises(stzoo.InputTypeError, match="pretrained=True"):
        stzoo.list_models(True)


# ---- ZooEntry through the manifest and the api (the entry itself: tests/zoo/test_zoo_entry.py) -----
def test_get_entry_follows_aliases_and_lists_them():
    e = get_entry("tau-mmnist")
    target = load_manifest()["models"]["tau-mmnist"]["alias"]
    assert e.name == target and "tau-mmnist" in e.aliases
    assert stzoo.info("tau-mmnist") == {"name": target, **load_manifest()["models"][target]}
    with pytest.raises(dataclasses.FrozenInstanceError):
        e.architecture = "convlstm"  # type: ignore[misc]


def test_malformed_manifest_entry_is_a_config_error_not_a_key_error(monkeypatch):
    from stzoo.errors import ConfigError

    m = load_manifest()
    del m["models"]["convlstm-mmnist-s"]["config"]
    monkeypatch.setattr(manifest_mod, "_manifest_cached", lambda: m)
    with pytest.raises(ConfigError, match="'convlstm-mmnist-s'.*'config'"):
        stzoo.load("convlstm-mmnist-s", pretrained=False)


# ---- one resolver -------------------------------------------------------------------------------
def test_resolver_kinds(tmp_path, monkeypatch):
    from stzoo.zoo.resolve import resolve

    r = resolve("convlstm-mmnist", pretrained=False)  # an alias
    assert (r.kind, r.source, r.weights_path, r.name) == ("zoo", "none", None, r.entry.name)
    assert r.entry.name == get_entry("convlstm-mmnist").name
    r = resolve("tau-mmnist")
    assert r.kind == "zoo" and r.source == "local" and r.weights_path.name == get_entry("tau-mmnist").weights.filename
    folder = stzoo.load("convlstm-mmnist-s", pretrained=False).save_pretrained(tmp_path / "ck")
    for name in (folder, str(folder)):
        r = resolve(name)
        assert r.kind == "folder" and r.source == "folder" and r.weights_path == folder / "model.safetensors"
        assert r.entry.architecture == "convlstm" and r.entry.extra["source"] == str(folder)
    with pytest.raises(UnknownModelError, match="hf-hub:owner/repo"):
        resolve("no-such-model")


def test_a_registered_prefix_is_one_registration_not_a_new_branch(monkeypatch):
    from stzoo.zoo import resolve as resolve_mod
    from stzoo.zoo.resolve import Resolved, register_prefix, resolve

    monkeypatch.setattr(resolve_mod, "_PREFIXES", dict(resolve_mod._PREFIXES))
    seen = []

    def fake(name, *, weights, pretrained):
        seen.append((name, weights, pretrained))
        return Resolved(get_entry("convlstm-mmnist-s"), None, "none", "converted", "fake:")

    register_prefix("fake:", fake)
    assert "fake:" in resolve_mod.resolver_prefixes() and "hf-hub:" in resolve_mod.resolver_prefixes()
    assert resolve("fake:some_file", pretrained=False).name == "converted"
    p = stzoo.load("fake:other", pretrained=False)
    assert p.name == "converted" and p.entry.architecture == "convlstm"
    assert seen == [("fake:some_file", None, False), ("fake:other", None, False)]
    with pytest.raises(InputError, match="already registered"):
        register_prefix("fake:", lambda *a, **k: None)


@pytest.mark.parametrize("kind", ["zoo", "folder", "hub"])
def test_load_checks_batch_size_device_and_dtype_once(kind, tmp_path, monkeypatch):
    import stzoo.api as api

    folder = stzoo.load("convlstm-mmnist-s", pretrained=False).save_pretrained(tmp_path / "ck")
    if kind == "hub":
        from stzoo.zoo import download

        def fake_download(repo_id, filename, revision=None, **kwargs):
            return folder / filename, "hf-cache"

        monkeypatch.setattr(download, "hub_download", fake_download)
    name = {"zoo": "convlstm-mmnist-s", "folder": str(folder), "hub": "hf-hub:alice/tiny"}[kind]
    calls = {"options": 0, "batch": 0}
    real_options, real_batch = api.check_options, api.check_batch_size

    def count_options(**kwargs):
        calls["options"] += 1
        return real_options(**kwargs)

    def count_batch(value):
        calls["batch"] += 1
        return real_batch(value)

    monkeypatch.setattr(api, "check_options", count_options)
    monkeypatch.setattr(api, "check_batch_size", count_batch)
    p = stzoo.load(name, pretrained=kind != "zoo", batch_size=3)
    assert p.batch_size == 3 and p.entry.architecture == "convlstm"
    assert calls == {"options": 1, "batch": 1}
