"""The catalogue of OpenSTL's published checkpoints (stzoo/convert/openstl/catalog.json) and its loader."""

from __future__ import annotations

import copy
import importlib.util
import math
from collections import Counter
from pathlib import Path

import pytest
import torch
from helpers import openstl_reference, openstl_reference_simvp
from helpers.openstl_reference import tau_state_dict
from helpers.openstl_reference_e3dlstm import e3dlstm_shapes
from helpers.openstl_reference_simvp import parameter_count, simvp_state_dict

from stzoo.convert.openstl import method_modules
from stzoo.convert.openstl.catalog import (
    CATALOG_PATH,
    canonical_model_type,
    catalog_entries,
    checkpoint_entry,
    dataset_entry,
    load_catalog,
    stzoo_arch,
    validate_catalog,
)
from stzoo.errors import ConfigError, UnknownModelError

ROOT = Path(__file__).resolve().parents[2]
BUILDER = ROOT / "scripts" / "build_openstl_catalog.py"
MIRROR = Path("/work/.mirror/chengtan9907+OpenSTL/repo")

# Counted in OpenSTL's three model-zoo tables (docs/en/model_zoos/*_benchmarks.md at c74deb5d): 294 links to a
# released .pth, 270 distinct files (24 files are listed twice: in a dataset's method table and its MetaVP table).
TAG_COUNTS = {
    "mmnist-weights": 47,
    "mfmnist-weights": 24,
    "mmnist-cifar-weights": 24,
    "kitti-weights": 23,
    "kth20-weights": 23,
    "human-weights": 22,
    "taxibj-weights": 23,
    "weather-5-625-weights": 84,
}
# The methods stzoo had importers for when the catalogue was written (issue 32's 134 + human_s3dlstm, see below).
LOADABLE_METHODS = {"ConvLSTM", "PredRNN", "PredRNNpp", "PredRNNv2", "MIM", "E3DLSTM", "MAU", "PhyDNet", "TAU"}


def test_the_shipped_catalogue_validates_and_counts_what_openstl_publishes():
    cat = load_catalog()
    validate_catalog(cat)
    assert len(cat["checkpoints"]) == 270 and cat["source"]["links"] == 294
    assert Counter(c["tag"] for c in cat["checkpoints"].values()) == TAG_COUNTS
    assert set(cat["datasets"]) == {
        "mmnist", "mfmnist", "mmnist_cifar", "kitticaltech", "kth20", "human", "taxibj",
        "weather_t2m_5_625", "weather_r_5_625", "weather_uv10_5_625", "weather_tcc_5_625",
    }  # fmt: skip
    for stem, c in cat["checkpoints"].items():
        assert c["dataset"] in cat["datasets"], stem
        assert c["url"] == f"{cat['source']['url_base']}/{c['tag']}/{stem}.pth"
        assert c["config"]["method"] == c["openstl_method"]
    assert len(cat["source"]["commit"]) == 40 and cat["source"]["license"] == "Apache-2.0"


def test_methods_map_to_stzoo_architectures():
    assert stzoo_arch("TAU") == stzoo_arch("SimVP", "tau") == "tau"
    assert stzoo_arch("SimVP", "IncepU") == stzoo_arch("simvp", "gSTA") == stzoo_arch("SimVP") == "simvp"
    assert stzoo_arch("PredRNNv2") == "predrnn_v2" and stzoo_arch("predrnnpp") == "predrnnpp"
    assert stzoo_arch("no-such-method") is None
    assert canonical_model_type("mlp") == "mlpmixer" and canonical_model_type("moga") == "moganet"
    # issue 32's 134 checkpoints of implemented methods (+ human_s3dlstm, E3D-LSTM by its table row and
    # parameter count) load today; methods added later (issue 33) can only add to this set
    core = {
        s
        for s, c in load_catalog()["checkpoints"].items()
        if c["openstl_method"] in LOADABLE_METHODS
        or (c["openstl_method"] == "SimVP" and canonical_model_type(c["model_type"]) in ("incepu", "gsta"))
    }
    assert len(core) == 135
    loadable = catalog_entries(loadable=True)
    assert core <= set(loadable)
    assert set(loadable) | set(catalog_entries(loadable=False)) == set(load_catalog()["checkpoints"])
    for stem, c in catalog_entries().items():
        assert c["stzoo_arch"] == stzoo_arch(c["openstl_method"], c["model_type"]), stem


def test_queries_filter_copy_and_name_what_is_unknown():
    tau = catalog_entries(method="tau", dataset="mmnist")
    assert list(tau) == ["mmnist_tau_one_ep200", "mmnist_tau_one_ep2000"]
    assert all(c["stzoo_arch"] == "tau" for c in tau.values())
    assert len(catalog_entries(dataset="weather_uv10_5_625")) == 21
    a = load_catalog()
    a["checkpoints"].clear()
    tau["mmnist_tau_one_ep200"]["config"]["hid_S"] = -1
    assert len(load_catalog()["checkpoints"]) == 270  # every call is a fresh copy
    assert checkpoint_entry("mmnist_tau_one_ep200.pth")["config"]["hid_S"] == 64
    with pytest.raises(UnknownModelError, match="mmnist_tau_one_ep200"):
        checkpoint_entry("mmnist_tau_one_ep20")
    with pytest.raises(UnknownModelError, match="known: .*TAU"):
        catalog_entries(method="SimVP3")
    with pytest.raises(UnknownModelError, match="known: .*taxibj"):
        catalog_entries(dataset="moving_mnist")
    with pytest.raises(UnknownModelError):
        dataset_entry("kth")


@pytest.mark.parametrize(
    ("where", "mutate", "message"),
    [
        ("checkpoint field", lambda c: c["checkpoints"]["mmnist_tau_one_ep200"].pop("tag"),
         r"checkpoints\['mmnist_tau_one_ep200'\] has no field 'tag'"),
        ("dataset reference", lambda c: c["checkpoints"]["taxibj_tau_cos_ep50"].update(dataset="bj"),
         r"checkpoints\['taxibj_tau_cos_ep50'\]\.dataset 'bj' is not one of"),
        ("field type", lambda c: c["datasets"]["kth20"].update(frames_out="20"),
         r"datasets\['kth20'\]\.frames_out must be int"),
        ("normalisation", lambda c: c["datasets"]["human"]["normalisation"].update(kind="zscore"),
         r"datasets\['human'\]\.normalisation\.kind must be one of"),
        ("normalisation field", lambda c: c["datasets"]["taxibj"]["normalisation"].pop("max"),
         r"datasets\['taxibj'\]\.normalisation \(minmax\) has no field 'max'"),
        ("shape agreement",
         lambda c: c["checkpoints"]["kth20_mau_one_ep100"]["config"].update(in_shape=[10, 1, 64, 64]),
         r"kth20_mau_one_ep100'\]\.config\.in_shape .* disagrees with dataset 'kth20'"),
        ("file name", lambda c: c["checkpoints"]["human_tau_cos_ep50"].update(file="human_tau.pth"),
         r"human_tau_cos_ep50'\]\.file must be"),
        ("commit", lambda c: c["source"].update(commit="HEAD"), r"source\.commit must be 40"),
    ],
)  # fmt: skip
def test_validation_names_the_entry_and_field(where, mutate, message):
    cat = copy.deepcopy(load_catalog())
    mutate(cat)
    with pytest.raises(ConfigError, match=message):
        validate_catalog(cat)


def test_hand_checked_facts():
    # Each value below was read by hand from OpenSTL's mirror (c74deb5d) while writing the catalogue.
    tau = checkpoint_entry("mmnist_tau_one_ep200")  # video_benchmarks.md, "STL Benchmarks on MMNIST", row TAU
    assert tau["reported"]["columns"]["MSE"] == 24.60 and tau["reported"]["columns"]["SSIM"] == 0.9454
    assert tau["reported"]["columns"]["Params"] == "44.7M" and tau["setting"] == "200 epoch"
    # configs/mmnist/TAU.py
    assert {k: tau["config"][k] for k in ("hid_S", "hid_T", "N_T", "N_S", "model_type")} == {
        "hid_S": 64, "hid_T": 512, "N_T": 8, "N_S": 4, "model_type": "tau",
    }  # fmt: skip
    assert tau["config_file"] == "configs/mmnist/TAU.py" and tau["config"]["in_shape"] == [10, 1, 64, 64]
    # configs/weather/t2m_5_625/TAU.py has hid_S 32, N_S 2 and drop_path 0.1; dataset_constant: 12 -> 12, 32 x 64
    w = checkpoint_entry("weather_t2m_tau_cos_ep50")
    assert (w["config"]["hid_S"], w["config"]["N_S"], w["config"]["drop_path"]) == (32, 2, 0.1)
    assert w["config"]["in_shape"] == [12, 1, 32, 64] and w["reported"]["columns"]["RMSE"] == 1.078
    # configs/mmnist/ConvLSTM-L.py: num_hidden '192,192,192,192'
    assert checkpoint_entry("mmnist_convlstm_l_one_ep200")["config"]["num_hidden"] == "192,192,192,192"
    # the simvp_s_incepu file is in two rows whose PSNR differ (37.97 in the method table, 21.84 in MetaVP)
    inc = checkpoint_entry("mmnist_simvp_s_incepu_one_ep200")
    assert inc["reported"]["columns"]["PSNR"] == 37.97 and inc["reported_also"][0]["columns"]["PSNR"] == 21.84
    assert "37.97" in inc["notes"] and "21.84" in inc["notes"]
    # the Human3.6M "E3D-LSTM" row links human_s3dlstm_cos_ep50.pth
    s3d = checkpoint_entry("human_s3dlstm_cos_ep50")
    assert s3d["label"] == "E3D-LSTM" and s3d["stzoo_arch"] == "e3dlstm" and "s3dlstm" in s3d["notes"]
    # PredNet was removed at "init lightning": its config comes from the OpenSTLv0.3.0 tag
    assert checkpoint_entry("taxibj_prednet_cos_ep50")["config_ref"] == "OpenSTLv0.3.0"
    assert checkpoint_entry("taxibj_prednet_cos_ep50")["stzoo_arch"] in (None, "prednet")
    # dataloader_taxibj.py: (X + 1) / 2 on dataset.npz's [-1, 1] values
    assert dataset_entry("taxibj")["normalisation"] == {"kind": "minmax", "min": -1.0, "max": 1.0}
    # dataloader_moving_mnist.py: / 255.0; dataloader_human.py: cv2.imread (BGR) / 255
    assert dataset_entry("mmnist")["normalisation"] == {"kind": "scale", "scale": 255.0}
    assert dataset_entry("human")["channel_names"] == ["blue", "green", "red"]
    kth, kitti = dataset_entry("kth20"), dataset_entry("kitticaltech")
    assert (kth["frames_in"], kth["frames_out"], kth["channels"], kth["height"], kth["width"]) == (10, 20, 1, 128, 128)
    assert (kitti["frames_in"], kitti["frames_out"], kitti["channels"], kitti["height"], kitti["width"]) == (
        10, 1, 3, 128, 160,
    )  # fmt: skip
    # dataloader_weather.py: mean/std of the training years, computed at run time; r keeps the last level
    r = dataset_entry("weather_r_5_625")
    assert r["normalisation"]["kind"] == "runtime" and r["normalisation"]["years"] == ["2010", "2015"]
    assert "data[:, -1:]" in r["normalisation"]["how"] and r["value_range"] is None
    # ... and every split is standardised with its own statistics; metrics de-normalise with the training ones
    assert r["normalisation"]["split_years"]["test"] == ["2017", "2018"] and "OWN" in r["normalisation"]["how"]
    assert dataset_entry("weather_uv10_5_625")["channel_names"] == ["u10", "v10"]


def test_inferred_configs_reproduce_the_reported_parameter_counts():
    """OpenSTL publishes no E3D-LSTM config for weather; the catalogue's inferred one must give the table's Params."""
    inferred = {s: c for s, c in catalog_entries(method="E3DLSTM").items() if c["config_inferred"]}
    assert sorted(inferred) == [f"weather_{v}_e3dlstm_cos_ep50" for v in ("r", "t2m", "tcc", "uv10")]
    for stem, c in {**inferred, "human_s3dlstm_cos_ep50": checkpoint_entry("human_s3dlstm_cos_ep50")}.items():
        cfg, (_, ch, h, w) = c["config"], c["config"]["in_shape"]
        p = cfg["patch_size"]
        shapes = e3dlstm_shapes(
            patch_channels=ch * p * p,
            num_hidden=[int(n) for n in cfg["num_hidden"].split(",")],
            grid=(h // p, w // p),
            filter_size=cfg["filter_size"],
        )
        millions = sum(math.prod(s) for s in shapes.values()) / 1e6
        reported = c["reported"]["columns"]["Params"]
        assert _as_reported(millions, reported) == reported, (stem, millions, reported)


def _as_reported(millions: float, reported: str) -> str:
    digits = len(reported.rstrip("M").split(".")[1]) if "." in reported else 0
    return f"{millions:.{digits}f}M"


# SimVP-IncepU at hid_S 64, hid_T 512, N_S 4, N_T 8 has 57.946M parameters; OpenSTL's tables say 58.0M (0.05M more)
INCEPU_58M = {f"{p}_simvp{s}_incepu_one_ep200" for p, s in (("mmnist", "_s"), ("fmnist", ""), ("mmnist_cifar", ""))}
INCEPU_58M.add("mmnist_simvp_s_incepu_one_ep2000")


def test_simvp_and_tau_configs_reproduce_the_reported_parameter_counts(monkeypatch):
    """Each SimVP/TAU entry's config, counted in OpenSTL's SimVP_Model layout, gives the Params OpenSTL reports.

    This is what found the two files whose config file is not the one they were trained with
    (kitticaltech_tau_one_ep100, kth20_simvp_incepu_one_ep100: see their notes and ``config_inferred``).
    """

    # shapes are all that is counted: the reference layouts' random tensors are left uninitialised (fast)
    def empty(g: torch.Generator, *shape: int, scale: float | None = None) -> torch.Tensor:
        return torch.empty(*shape)

    monkeypatch.setattr(openstl_reference, "_rand", empty)
    monkeypatch.setattr(openstl_reference_simvp, "_rand", empty)
    entries = {
        s: c
        for s, c in catalog_entries().items()
        if c["stzoo_arch"] in ("tau", "simvp")
        and canonical_model_type(c["model_type"]) in (None, "tau", "incepu", "gsta")
    }  # (the MetaVP translators' counts are checked in tests/models/test_simvp_metaformer.py)
    assert len(entries) == 36
    for stem, c in entries.items():
        cfg = c["config"]
        t, ch, _, _ = cfg["in_shape"]
        kw = {"channels": ch, "frames": t, **{k: cfg[k] for k in ("hid_S", "hid_T", "N_S", "N_T")}}
        sd = tau_state_dict(**kw) if c["stzoo_arch"] == "tau" else simvp_state_dict(c["model_type"].lower(), **kw)
        millions = parameter_count(sd) / 1e6
        reported = c["reported"]["columns"]["Params"]
        if stem in INCEPU_58M:
            assert reported == "58.0M" and abs(millions - 57.946) < 0.002, stem
        else:
            assert _as_reported(millions, reported) == reported, (stem, millions, reported)


def test_catalogue_ships_with_the_package_and_is_no_importer():
    package_data = next(
        line
        for line in (ROOT / "pyproject.toml").read_text(encoding="utf-8").splitlines()
        if line.startswith("stzoo = [")  # [tool.setuptools.package-data]
    )
    assert '"convert/openstl/catalog.json"' in package_data
    assert CATALOG_PATH.is_file() and CATALOG_PATH.parent.name == "openstl"
    assert "stzoo.convert.openstl.catalog" not in method_modules()


@pytest.mark.skipif(not MIRROR.is_dir(), reason="OpenSTL's git mirror is not on this machine")
def test_builder_reproduces_the_committed_catalogue_byte_for_byte():
    spec = importlib.util.spec_from_file_location("build_openstl_catalog", BUILDER)
    assert spec and spec.loader
    builder = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(builder)
    text = builder.dumps(builder.build(MIRROR, "HEAD", "OpenSTLv0.3.0"))
    assert text == CATALOG_PATH.read_text(encoding="utf-8"), "regenerate: python scripts/build_openstl_catalog.py"


def test_the_docs_page_is_generated_from_the_catalogue():
    from stzoo.tools.docs_gen import generated_docs, openstl_zoo_page

    page = openstl_zoo_page()
    committed = (ROOT / "docs" / "openstl-zoo.md").read_text(encoding="utf-8")
    assert committed == page, "regenerate: stzoo-maint zoo-table --docs docs"
    assert generated_docs()["openstl-zoo.md"] == page
    assert "Metrics on this page are reported by OpenSTL" in page
    loadable = catalog_entries(loadable=True)
    assert f"**{len(loadable)} of the 270**" in page
    for stem, c in catalog_entries().items():
        row = next(line for line in page.splitlines() if line.startswith(f"| `{stem}`"))
        assert (f"`{c['stzoo_arch']}`" if c["stzoo_arch"] else "not yet") in row, stem
        assert f"| {dict(c['reported']['cells'])['MSE']} |" in row, stem  # OpenSTL's text, unrounded
    # a catalogue given explicitly is what the page shows
    small = load_catalog()
    small["checkpoints"] = {"mmnist_tau_one_ep200": small["checkpoints"]["mmnist_tau_one_ep200"]}
    assert "**1 of the 1**" in openstl_zoo_page(small) and "mmnist_mau" not in openstl_zoo_page(small)
