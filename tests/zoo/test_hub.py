"""Hub ids, the save_pretrained layout and loading it from a folder (no network; see
test_hub_download.py for the Hugging Face protocol tests)."""

import hashlib
import json

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

import stzoo
import stzoo.zoo.manifest as manifest_mod
from stzoo.cli.main import main
from stzoo.errors import ConfigError, InputError, UnknownModelError, WeightsNotAvailableError
from stzoo.inference.predictor import Predictor
from stzoo.models import build_model
from stzoo.zoo.entry import ZooEntry
from stzoo.zoo.hub import (
    ChecksumError,
    InvalidHubIdError,
    parse_hub_id,
    validate_filename,
    validate_repo_id,
    validate_revision,
)
from stzoo.zoo.manifest import InputSpec, get_entry, load_manifest
from stzoo.zoo.upload import export_release

CFG = {"num_layers": 1, "num_hidden": 4, "filter_size": 3}


def tiny(seed=0, entry=True):
    torch.manual_seed(seed)
    spec = InputSpec(4, 4, 1, 16, 16)
    return Predictor(
        build_model("convlstm", CFG), spec, name="tiny", entry=ZooEntry(None, "convlstm", CFG, spec) if entry else None
    )


# ---- ids ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("good", ["stzoo/tau-mmnist-s", "a/b", "Org_1/model.v2"])
def test_valid_repo_ids(good):
    assert validate_repo_id(good) == good


@pytest.mark.parametrize(
    "bad",
    [
        "../x",
        "a/../b",
        "a/..",
        "/abs/path",
        "C:/x/y",
        "a\\b",
        "a/b/c",
        "noowner",
        "",
        "a/b--c",
        "a/-b",
        "a/b.",
        "a/b c",
        None,
    ],
)
def test_invalid_repo_ids_are_value_errors(bad):
    with pytest.raises(InvalidHubIdError) as info:
        validate_repo_id(bad)
    assert isinstance(info.value, ValueError) and "Expected" in str(info.value)


@pytest.mark.parametrize(
    "bad",
    [
        "../weights.safetensors",
        "a/../../b",
        "/etc/passwd",
        "~/x",
        "C:\\x",
        "sub\\model.safetensors",
        "a//b",
        "./x",
        "",
        "x\x00y",
    ],
)
def test_invalid_filenames(bad):
    with pytest.raises(InvalidHubIdError):
        validate_filename(bad)


def test_filenames_and_revisions():
    assert validate_filename("sub/model.safetensors") == "sub/model.safetensors"
    for rev in ("main", "v1.0", "refs/pr/1", "a" * 40):
        assert validate_revision(rev) == rev
    for rev in ("..", "a/../b", "/main", "ma in", "x\\y", ""):
        with pytest.raises(InvalidHubIdError):
            validate_revision(rev)


def test_parse_hub_id():
    assert parse_hub_id("hf-hub:alice/model") == ("alice/model", None)
    assert parse_hub_id("hf-hub:alice/model@v1") == ("alice/model", "v1")
    for bad in ("hf-hub:../evil", "hf-hub:alice/model@../../x", "hf-hub:/etc/x", "hf-hub:a\\b/c"):
        with pytest.raises(InvalidHubIdError):
            stzoo.load(bad)  # refused before any network access


# ---- save_pretrained / load(dir) ------------------------------------------------------------------
def test_save_pretrained_load_round_trip(tmp_path):
    p = tiny(seed=1)
    out = p.save_pretrained(tmp_path / "ckpt")
    assert sorted(f.name for f in out.iterdir()) == ["README.md", "config.json", "model.safetensors"]
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["architecture"] == "convlstm" and cfg["config"] == CFG
    assert cfg["input"]["frames_in"] == 4 and cfg["stzoo_format"] == 1
    assert cfg["weights"]["sha256"] == hashlib.sha256((out / "model.safetensors").read_bytes()).hexdigest()
    for q in (stzoo.load(out), stzoo.load(str(out))):
        assert q.spec == p.spec and q.name == "tiny"
        for k, v in p.model.state_dict().items():
            assert torch.equal(q.model.state_dict()[k], v)
        x = np.random.default_rng(0).integers(0, 256, (4, 16, 16), dtype=np.uint8)
        assert np.array_equal(q.predict(x), p.predict(x))
    fresh = stzoo.load(out, pretrained=False).model.state_dict()  # same config, random weights
    assert not all(torch.equal(fresh[k], v) for k, v in p.model.state_dict().items())


def test_model_card_is_generated(tmp_path):
    p = stzoo.load("convlstm-mmnist-s", pretrained=False)
    p.save_pretrained(tmp_path, repo_id="alice/my-convlstm")
    card = (tmp_path / "README.md").read_text()
    assert card.startswith("---\nlibrary_name: stzoo\nlicense: apache-2.0\n")
    for section in ("## Architecture", "## Input", "## Training data", "## Metrics", "## License", "## How to load"):
        assert section in card
    assert 'stzoo.load("hf-hub:alice/my-convlstm")' in card and "convlstm-mmnist-s" in card
    cfg = json.loads((tmp_path / "config.json").read_text())
    assert cfg["base_model"] == "convlstm-mmnist-s" and cfg["input"]["normalization"] == "uint8 / 255"
    assert stzoo.load(tmp_path).spec == p.spec


def test_save_pretrained_needs_a_config_that_fits(tmp_path):
    with pytest.raises(InputError, match="config"):
        tiny(entry=False).save_pretrained(tmp_path)
    with pytest.raises(InputError, match="shape mismatch|missing|unexpected"):
        tiny(entry=False).save_pretrained(tmp_path, config={**CFG, "num_hidden": 8})
    assert tiny(entry=False).save_pretrained(tmp_path, config=CFG) == tmp_path


def test_load_dir_is_strict_about_keys_and_hash(tmp_path):
    out = tiny().save_pretrained(tmp_path / "c")
    state = load_file(str(out / "model.safetensors"))
    state.pop(sorted(state)[0])
    save_file(state, str(out / "model.safetensors"))
    with pytest.raises(ChecksumError, match="sha256"):
        stzoo.load(out)
    cfg = json.loads((out / "config.json").read_text())
    cfg["weights"]["sha256"] = hashlib.sha256((out / "model.safetensors").read_bytes()).hexdigest()
    (out / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(InputError, match="missing 1 key"):
        stzoo.load(out)


def test_load_dir_errors(tmp_path):
    with pytest.raises(UnknownModelError, match="save_pretrained"):
        stzoo.load(str(tmp_path / "nowhere"))
    with pytest.raises(WeightsNotAvailableError, match="config.json"):
        stzoo.load(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps({"stzoo_format": 99, "config": {}}))
    with pytest.raises(ConfigError, match="stzoo_format.*architecture"):
        stzoo.load(tmp_path)


def test_zoo_name_wins_over_a_folder_of_that_name(tmp_path, monkeypatch):
    tiny().save_pretrained(tmp_path / "convlstm-mmnist-s")
    monkeypatch.chdir(tmp_path)
    assert stzoo.load("convlstm-mmnist-s", pretrained=False).spec.height == 64
    assert stzoo.load("./convlstm-mmnist-s").spec.height == 16


def test_export_release_keeps_the_release_bytes(tmp_path, monkeypatch):
    e = get_entry("convlstm-mmnist-s")
    model = build_model(e.architecture, e.config).half()
    w = tmp_path / "w" / "c.safetensors"
    w.parent.mkdir()
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(w))
    sha = hashlib.sha256(w.read_bytes()).hexdigest()
    m = load_manifest()
    m["models"]["convlstm-mmnist-s"]["weights"] = {
        "filename": "c.safetensors",
        "sha256": sha,
        "size": w.stat().st_size,
        "dtype": "float16",
    }
    monkeypatch.setattr(manifest_mod, "_manifest_cached", lambda: m)
    monkeypatch.setenv("STZOO_WEIGHTS_DIR", str(w.parent))
    out = export_release("convlstm-mmnist", tmp_path / "out", repo_id="stzoo/convlstm-mmnist-s")
    assert hashlib.sha256((out / "model.safetensors").read_bytes()).hexdigest() == sha
    assert json.loads((out / "config.json").read_text())["name"] == "convlstm-mmnist-s"
    assert stzoo.load(out).dtype == torch.float32


def test_cli_download_needs_names_or_all(capsys):
    assert main(["download"]) == 2
    assert "--all" in capsys.readouterr().err
    from stzoo.tools.cli import main as maint

    assert maint(["hub", "push", "sa-convlstm-mmnist-paper", "--repo-id", "../x"]) == 2
    assert "invalid Hugging Face repo id" in capsys.readouterr().err
    assert maint(["hub", "push", "sa-convlstm-mmnist-paper", "--repo-id", "alice/x"]) == 2
    assert "no released weights" in capsys.readouterr().err


# ---- hostile ids and names (security issue, item 9) -----------------------------------------------
@pytest.mark.parametrize(
    "bad", ["stzoo/tiny\n", "stzoo\n/tiny", "a/b\r", "a/b\x00", "a" * 97 + "/b", "a/" + "b" * 97, "a/b\u202e", "a/b "]
)
def test_repo_ids_with_trailing_newline_or_too_long_are_refused(bad):
    with pytest.raises(InvalidHubIdError) as info:
        validate_repo_id(bad)
    assert len(str(info.value)) < 600  # a long id is shown cut, not in full


@pytest.mark.parametrize(
    "bad",
    [
        "%2e%2e/x",
        "%2E%2E/%2e%2E/etc/passwd",
        "..%2fx",
        "a%2Fb",
        "a%5cb",
        "%252e%252e/x",
        "a%00b",  # percent-encoded
        "...",
        "a/.../b",
        "....",
        "a/..",  # only dots
        "model\u202egpj.safetensors",
        "a\u200bb",
        "\ufeffmodel.safetensors",
        "a\u2066b",
        "a\u00adb",  # Cf
        "a\x85b",
        "a\u2028b",
        "a\ud800b",  # Cc, Zl, Cs
        "x" * 10000,
        "a/" + "b" * 256,
        "é" * 128,  # too long
    ],
)
def test_hostile_filenames_are_refused(bad):
    with pytest.raises(InvalidHubIdError) as info:
        validate_filename(bad)
    assert isinstance(info.value, ValueError) and len(str(info.value)) < 600


@pytest.mark.parametrize(
    "good",
    [
        "model.safetensors",
        "sub/model.safetensors",
        ".gitattributes",
        "a..b",
        "v1.0/x.safetensors",
        "100%.txt",
        "a%20b",
        "ünïcode-name.safetensors",
        "x" * 255,
        "/".join(["d" * 255] * 4),
    ],
)
def test_ordinary_filenames_still_pass(good):
    assert validate_filename(good) == good


@pytest.mark.parametrize("bad", ["main\n", "v1\u202e", "refs/pr/1\u200b"])
def test_revisions_with_control_or_format_characters_are_refused(bad):
    with pytest.raises(InvalidHubIdError):
        validate_revision(bad)


def test_corrupt_cache_blob_named_after_the_good_file_is_purged(tmp_path):
    """purge_cached_file also deletes blobs/<expected sha256> when its content is not that file, even when
    the snapshot entry is a copy rather than a link (file systems without symlinks)."""
    from stzoo.zoo.hub import purge_cached_file

    good = b"good bytes"
    sha = hashlib.sha256(good).hexdigest()
    repo = tmp_path / "models--a--b"
    (repo / "blobs").mkdir(parents=True)
    (repo / "snapshots" / "c").mkdir(parents=True)
    (repo / "blobs" / sha).write_bytes(b"bad! bytes")
    link = repo / "snapshots" / "c" / "model.safetensors"
    link.write_bytes(b"bad! bytes")  # a copy, not a link
    assert purge_cached_file(link, sha) == []
    assert not link.exists() and not (repo / "blobs" / sha).exists()
    (repo / "blobs" / sha).write_bytes(good)  # a good blob of that name is kept
    link.symlink_to(repo / "blobs" / "other")
    (repo / "blobs" / "other").write_bytes(b"other")
    assert purge_cached_file(link, sha) == []
    assert (repo / "blobs" / sha).read_bytes() == good and not (repo / "blobs" / "other").exists()


# ---- model cards of fine-tuned folders: Hub metadata, base model, no machine paths --------------------
def _front_matter(card: str) -> dict:
    yaml = pytest.importorskip("yaml")
    assert card.startswith("---\n")
    return yaml.safe_load(card[4:].partition("\n---\n")[0])


def test_finetuned_folder_card_names_its_base_model_and_hides_machine_paths(tmp_path, capsys):
    """`stzoo finetune` on a zoo model: the README.md it writes (what `--push-to-hub` uploads) has the Hub
    metadata, base_model = the zoo entry's Hub repo, and the recorded command without the absolute paths
    of this machine; config.json keeps the full command."""
    rng = np.random.default_rng(0)
    clip = (rng.random((24, 16, 16)) * 40).astype(np.uint8)
    clip[:, 4:9, 4:9] = 255
    data = tmp_path / "clips" / "clip.npy"
    data.parent.mkdir()
    np.save(data, clip)
    out = tmp_path / "ft"
    rc = main(
        [
            "finetune",
            "convlstm-mmnist",
            "--data",
            str(data),
            "--out",
            str(out),
            "--steps",
            "2",
            "--val",
            "0",
            "--batch-size",
            "2",
            "--quiet",
        ]
    )
    assert rc == 0, capsys.readouterr().err
    card = (out / "README.md").read_text(encoding="utf-8")
    meta = _front_matter(card)
    base = get_entry("convlstm-mmnist")
    assert meta["library_name"] == "stzoo" and meta["pipeline_tag"] == "video-to-video"
    assert meta["base_model"] == base.weights.hub.repo_id == "stzoo/convlstm-mmnist-s"
    assert meta["license"] == "apache-2.0" and "convlstm" in meta["tags"]
    assert "datasets" not in meta  # the user's own clips are no Hub dataset
    cfg = json.loads((out / "config.json").read_text())
    assert str(data) in cfg["training"]["command"]  # full provenance stays in config.json
    assert str(tmp_path) not in card and "/tmp" not in card  # neither in the command nor the description
    assert f"--data clips/clip.npy --out {tmp_path.name}/ft --steps 2" in card  # the last two components


def test_saved_zoo_model_is_not_its_own_base_model(tmp_path):
    p = stzoo.load("convlstm-mmnist-s", pretrained=False)
    p.save_pretrained(tmp_path)
    meta = _front_matter((tmp_path / "README.md").read_text())
    assert "base_model" not in meta and meta["datasets"] == ["ylecun/mnist"]
