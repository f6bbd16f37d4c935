"""Hostile inputs to the loading side (stzoo.load, checkpoints, the Hub): each case runs in a limited
subprocess (tests/helpers/hostile.py) and must end in a clean, readable StzooError, never a raw exception.

Covers: corrupt safetensors files, NaN / inf weights (zoo file, folder, hf-hub: through the local
FakeHub), bad batch_size / device values, non-string names, names and paths too long for the OS, and
repo ids / file names that try to escape (trailing newline, percent-encoding, bidi overrides).
"""

from __future__ import annotations

import hashlib
import json
import os
import struct
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers.hf_server import FakeHub
from helpers.hostile import refuse, run_case
from safetensors.torch import load_file, save, save_file

import stzoo
from stzoo.inference.predictor import Predictor
from stzoo.models import build_model
from stzoo.zoo.entry import ZooEntry
from stzoo.zoo.manifest import InputSpec

pytestmark = pytest.mark.hostile

CFG = {"num_layers": 1, "num_hidden": 4, "filter_size": 3}
TINY = "stzoo.load('convlstm-mmnist-s', pretrained=False"  # a zoo entry, built without weights


def tiny_folder(path, seed=0):
    torch.manual_seed(seed)
    spec = InputSpec(4, 4, 1, 16, 16)
    p = Predictor(build_model("convlstm", CFG), spec, name="tiny", entry=ZooEntry(None, "convlstm", CFG, spec))
    return p.save_pretrained(path)


def rewrite_weights(folder, data: bytes) -> None:
    """Replace model.safetensors with ``data`` and record its sha256 in config.json (so only the content,
    not the checksum, is wrong)."""
    (folder / "model.safetensors").write_bytes(data)
    cfg = json.loads((folder / "config.json").read_text())
    cfg["weights"]["sha256"] = hashlib.sha256(data).hexdigest()
    (folder / "config.json").write_text(json.dumps(cfg))


def poisoned_state(path, values=(float("nan"),)):
    """The state dict of ``path`` with ``values`` written into the 2nd and last tensors (file order);
    returns (state, name of the first poisoned tensor in file order)."""
    state = load_file(str(path))
    keys = list(state)
    for k in (keys[1], keys[-1]):
        flat = state[k].view(-1)
        for i, v in enumerate(values):
            flat[i] = v
    return state, keys[1]


# ---- item 7: a corrupt safetensors file ------------------------------------------------------
def _garbage(good: bytes) -> bytes:
    return bytes(range(256)) * 8


def _truncated(good: bytes) -> bytes:
    return good[: len(good) // 2]


def _huge_header(good: bytes) -> bytes:
    return struct.pack("<Q", 2**60) + good[8:]


def _bad_json_header(good: bytes) -> bytes:
    n = struct.unpack("<Q", good[:8])[0]
    return good[:8] + b"{" * n + good[8 + n :]


@pytest.mark.parametrize("corrupt", [_garbage, _truncated, _huge_header, _bad_json_header])
def test_corrupt_safetensors_in_a_checkpoint_folder(tmp_path, corrupt):
    folder = tiny_folder(tmp_path / "ckpt")
    rewrite_weights(folder, corrupt((folder / "model.safetensors").read_bytes()))
    r = refuse(f"import stzoo; stzoo.load({str(folder)!r})", match=str(folder / "model.safetensors"))
    assert r["type"] == "CorruptWeightsError" and "ValueError" in r["mro"]
    assert "not a readable safetensors file" in r["message"]


def test_corrupt_safetensors_given_as_weights_of_a_zoo_entry(tmp_path):
    bad = tmp_path / "w.safetensors"
    bad.write_bytes(b"\x00" * 64)
    refuse(f"import stzoo; stzoo.load('convlstm-mmnist-paper', weights={str(bad)!r})", match=str(bad))


# ---- item 8: NaN / inf weights -------------------------------------------------------------------
@pytest.mark.parametrize(
    "values", [(float("nan"),), (float("inf"),), (float("-inf"), float("nan"))], ids=["nan", "inf", "both"]
)
def test_non_finite_weights_in_a_folder(tmp_path, values):
    folder = tiny_folder(tmp_path / "ckpt")
    state, first = poisoned_state(folder / "model.safetensors", values)
    rewrite_weights(folder, save(state))
    r = refuse(f"import stzoo; stzoo.load({str(folder)!r})", match="non-finite")
    assert str(folder / "model.safetensors") in r["message"] and repr(first) in r["message"], r["message"]
    assert r["type"] == "CorruptWeightsError"


def test_non_finite_weights_of_a_zoo_entry(tmp_path):
    e = stzoo.info("convlstm-mmnist-paper")  # no released weights: a weights= file is not hashed
    model = build_model(e["architecture"], e["config"])
    w = tmp_path / "zoo.safetensors"
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(w))
    state, first = poisoned_state(w)
    save_file(state, str(w))
    r = refuse(f"import stzoo; stzoo.load('convlstm-mmnist-paper', weights={str(w)!r})", match="non-finite")
    assert str(w) in r["message"] and repr(first) in r["message"], r["message"]


def test_non_finite_weights_from_the_hub(tmp_path):
    folder = tiny_folder(tmp_path / "ckpt")
    state, first = poisoned_state(folder / "model.safetensors")
    rewrite_weights(folder, save(state))  # config.json's sha256 matches: only the values are wrong
    with FakeHub() as hub:
        hub.add_commit("stzoo/nan", {f.name: f.read_bytes() for f in folder.iterdir()})
        env = {
            "HF_ENDPOINT": hub.url,
            "HF_HOME": str(tmp_path / "hf"),
            "HF_HUB_OFFLINE": "0",
            "HF_HUB_DISABLE_XET": "1",
            "HF_HUB_DISABLE_TELEMETRY": "1",
            "HF_HUB_DISABLE_PROGRESS_BARS": "1",
            "NO_PROXY": "127.0.0.1,localhost",
            "no_proxy": "127.0.0.1,localhost",
        }
        r = refuse("import stzoo; stzoo.load('hf-hub:stzoo/nan')", match="non-finite", env=env)
        assert hub.requests("GET", "/model.safetensors"), "the weights were never fetched"
    assert "model.safetensors" in r["message"] and repr(first) in r["message"], r["message"]


# ---- item 7: batch_size, device, the name's type ---------------------------------------------------
@pytest.mark.parametrize("value", ["0", "-3", "1.5", "'8'", "True", "None", "np.int64(0)"])
def test_bad_batch_size_is_refused_at_load(value):
    r = refuse(f"import numpy as np, stzoo; {TINY}, batch_size={value})", match="batch_size")
    assert r["type"] in ("InputError", "InputTypeError")


def test_bad_batch_size_is_refused_before_any_download():
    refuse("import stzoo; stzoo.load('hf-hub:alice/never-fetched', batch_size=0)", match="batch_size")


def test_setting_a_bad_batch_size_later_is_refused():
    refuse(f"import stzoo; p = {TINY}); p.batch_size = 0", match="batch_size")


@pytest.mark.parametrize(
    "device, match",
    [
        ("'meta'", "meta"),
        ("torch.device('meta')", "meta"),
        ("'nonsense'", "nonsense"),
        ("[0]", "device"),
        ("1.5", "device"),
    ],
)
def test_bad_device_is_refused_at_load(device, match):
    refuse(f"import torch, stzoo; {TINY}, device={device})", match=match)


def test_meta_device_is_refused_for_a_checkpoint_folder(tmp_path):
    folder = tiny_folder(tmp_path / "ckpt")
    refuse(f"import stzoo; stzoo.load({str(folder)!r}, device='meta')", match="meta")


@pytest.mark.parametrize("name", ["None", "123", "b'tau-mmnist'", "['tau-mmnist']", "3.5"])
def test_load_of_a_non_string_says_what_load_takes(name):
    r = refuse(f"import stzoo; stzoo.load({name})", match="stzoo.load takes a zoo name")
    assert r["type"] == "InputTypeError" and "TypeError" in r["mro"]


# ---- item 7: names and paths the OS cannot look up ---------------------------------------------------
@pytest.mark.parametrize(
    "arg, match",
    [
        ("'a' * 5000", "5000 characters"),  # a name
        ("'/tmp/' + 'a' * 5000", "5005 bytes"),  # a str path
        ("pathlib.Path('a' * 5000)", "5000 bytes"),  # an os.PathLike
        ("pathlib.Path('/'.join(['d' * 200] * 30))", "6029 bytes"),  # short names, long path
        ("'hf-hub:' + 'a' * 5000 + '/b'", "96 characters"),  # a Hub owner
        ("'hf-hub:a/' + 'b' * 5000", "96 characters"),  # a Hub name
        ("'hf-hub:a/b@' + 'r' * 5000", "at most 255 characters"),  # a revision
    ],
    ids=["name", "str-path", "pathlike", "deep-path", "hub-owner", "hub-name", "hub-revision"],
)
def test_names_and_paths_too_long_for_the_os(arg, match):
    r = refuse(f"import pathlib, stzoo; stzoo.load({arg})", match=match)
    assert len(r["message"]) < 1500, f"the message repeats the whole name: {len(r['message'])} characters"


def test_weights_path_too_long_for_the_os():
    r = refuse(f"import stzoo; {TINY}, weights='w' * 5000)", match="5000 bytes")
    assert len(r["message"]) < 1500


# ---- item 9: repo ids and file names that try to escape ---------------------------------------------
def test_repo_id_with_a_trailing_newline():
    refuse("import stzoo; stzoo.load('hf-hub:stzoo/tiny\\n')", match="repo id")


@pytest.mark.parametrize(
    "filename, match",
    [
        ("%2e%2e/%2e%2e/etc/passwd", "percent-encoded"),
        ("..%2Fescape.safetensors", "percent-encoded"),
        (".../x.safetensors", "only of dots"),
        ("model\u202egpj.safetensors", "U+202E"),
        ("x" * 10000, "10000 characters"),
    ],
    ids=["pct-dots", "pct-slash", "dots", "bidi", "10k"],
)
def test_hostile_file_names_are_refused_before_any_request(filename, match):
    code = f"from stzoo.zoo import download; download.hub_download('stzoo/tiny', {filename!r}, 'main', sha256='0' * 64)"
    r = refuse(code, match=match)
    assert r["type"] == "InvalidHubIdError" and len(r["message"]) < 1500


# ---- what must still work --------------------------------------------------------------------------
@pytest.mark.parametrize("value", [np.int64(4), np.int32(4), np.uint8(4), torch.tensor(4), 4])
def test_integer_batch_sizes_are_accepted(value):
    p = stzoo.load("convlstm-mmnist-s", pretrained=False, batch_size=value)
    assert p.batch_size == 4 and type(p.batch_size) is int


def test_finite_weights_and_plain_devices_still_load(tmp_path):
    folder = tiny_folder(tmp_path / "ckpt")
    for device in (None, "cpu", torch.device("cpu")):
        assert stzoo.load(folder, device=device).device == torch.device("cpu")


# ---- issue 31: hostile Hub servers (F1 paths, F2 config.json, F9 deadlines) ------------------------
# Every case serves the tiny checkpoint from a FakeHub on 127.0.0.1 that lies in one way, runs
# stzoo.load('hf-hub:evil/m') (or a single hub_download) in a limited child, and checks one clear error
# (or the correct result) and that nothing was created or changed outside the Hugging Face cache folder.
REPO_ID = "evil/m"
LOAD = f"import stzoo; stzoo.load('hf-hub:{REPO_ID}')"


@pytest.fixture(scope="module")
def evil_files(tmp_path_factory):
    folder = tiny_folder(tmp_path_factory.mktemp("evil") / "ckpt", seed=3)
    return {f.name: f.read_bytes() for f in folder.iterdir()}


@pytest.fixture
def evil(evil_files, tmp_path):
    """(hub, env, tmp_path): a FakeHub serving ``evil/m``, the child's environment (an empty cache in
    tmp_path/hf, a 20 s download deadline) and a working folder tmp_path/cwd."""
    (tmp_path / "cwd").mkdir()
    with FakeHub() as hub:
        hub.add_commit(REPO_ID, evil_files)
        env = {
            "HF_ENDPOINT": hub.url,
            "HF_HOME": str(tmp_path / "hf"),
            "HF_HUB_OFFLINE": "0",
            "HF_HUB_DISABLE_XET": "1",
            "HF_HUB_DISABLE_TELEMETRY": "1",
            "HF_HUB_DISABLE_PROGRESS_BARS": "1",
            "STZOO_HUB_TIMEOUT": "20",
            "STZOO_WEIGHTS_DIR": str(tmp_path / "no-weights"),
            "NO_PROXY": "127.0.0.1,localhost",
            "no_proxy": "127.0.0.1,localhost",
        }
        yield hub, env, tmp_path


def tree(root) -> dict[str, bytes | str]:
    """Every entry under ``root`` (links not followed): relative path -> content (files) or link target."""
    import os

    out: dict[str, bytes | str] = {}
    for folder, dirs, files in os.walk(root):
        for name in dirs + files:
            p = os.path.join(folder, name)
            rel = os.path.relpath(p, root)
            if os.path.islink(p):
                out[rel] = "-> " + os.readlink(p)
            elif os.path.isfile(p):
                with open(p, "rb") as f:
                    out[rel] = f.read()
            else:
                out[rel] = "dir"
    return out


def outside_cache(before: dict, after: dict) -> list[str]:
    """What was created, changed or removed outside ``hf/`` (the cache) between two :func:`tree` calls."""
    return sorted(
        k for k in set(before) | set(after) if not (k == "hf" or k.startswith("hf/")) and before.get(k) != after.get(k)
    )


def snapshot_files(tmp_path) -> list[str]:
    """The files linked from the cache's snapshots of evil/m (what a later load would use)."""
    snaps = tmp_path / "hf" / "hub" / "models--evil--m" / "snapshots"
    return sorted(str(p.relative_to(snaps)) for p in snaps.rglob("*") if p.is_file()) if snaps.exists() else []


def refuse_cleanly(evil, code=LOAD, match=None, within=30.0, **kwargs):
    hub, env, tmp_path = evil
    before = tree(tmp_path)
    r = refuse(code, match=match, within=within, env={**env, **kwargs.pop("env", {})}, cwd=tmp_path / "cwd", **kwargs)
    assert outside_cache(before, tree(tmp_path)) == [], outside_cache(before, tree(tmp_path))
    assert not any(".incomplete" in k or ".stzoo-" in k for k in tree(tmp_path)), sorted(tree(tmp_path))
    return r


def loads_correctly(evil, code=LOAD, **env):
    hub, base, tmp_path = evil
    before = tree(tmp_path)
    r = run_case(code, timeout=60, env={**base, **env}, cwd=tmp_path / "cwd")
    assert not r.get("raised"), r
    assert outside_cache(before, tree(tmp_path)) == []
    return r


def hostile_etags(tmp_path) -> dict[str, str]:
    return {
        "relative": '"../../../../x"',
        "absolute": f'"{tmp_path / "abs-x"}"',
        "dotdot-hex": '"../' + "a" * 61 + '"',
        "pct": '"%2e%2e/%2e%2e/x"',
        "backslash": '"..\\\\..\\\\x"',
        "long": '"' + "a" * 5000 + '"',
        "weak-relative": 'W/"../../x"',
        "not-hex": '"' + "g" * 64 + '"',
        "empty": '""',
    }


@pytest.mark.parametrize("filename", ["config.json", "model.safetensors"])
@pytest.mark.parametrize(
    "kind", ["relative", "absolute", "dotdot-hex", "pct", "backslash", "long", "weak-relative", "not-hex", "empty"]
)
def test_hostile_etag_is_refused_before_anything_is_written(evil, filename, kind):
    hub, env, tmp_path = evil
    value = hostile_etags(tmp_path)[kind]
    hub.always("HEAD", filename, {"headers": {"ETag": value}})
    r = refuse_cleanly(evil, match="ETag")
    assert r["type"] == "HubError" and hub.url in r["message"] and len(r["message"]) < 1500, r["message"]
    assert not (tmp_path / "abs-x").exists()
    assert filename not in " ".join(snapshot_files(tmp_path))
    assert not hub.requests("GET", "/" + filename), "the body was fetched after a bad ETag"


@pytest.mark.parametrize("filename", ["config.json", "model.safetensors"])
def test_hostile_linked_etag_is_refused(evil, filename):
    hub, env, tmp_path = evil
    hub.always("HEAD", filename, {"headers": {"X-Linked-Etag": f'"{tmp_path / "abs-x"}"'}})
    refuse_cleanly(evil, match="X-Linked-Etag")
    assert not (tmp_path / "abs-x").exists()


@pytest.mark.parametrize("filename", ["config.json", "model.safetensors"])
@pytest.mark.parametrize(
    "commit",
    ["../../../../x", "/tmp/stzoo-evil-commit", "%2e%2e%2f%2e%2e", "..\\..\\x", "a" * 5000, "a" * 39 + "/", "", None],
)
def test_hostile_commit_is_refused_before_anything_is_written(evil, filename, commit):
    hub, env, tmp_path = evil
    hub.always("HEAD", filename, {"headers": {"X-Repo-Commit": commit}})
    r = refuse_cleanly(evil, match="X-Repo-Commit")
    assert r["type"] == "HubError" and len(r["message"]) < 1500
    assert filename not in " ".join(snapshot_files(tmp_path))


def test_a_commit_other_than_the_one_asked_for_is_refused(evil):
    hub, env, tmp_path = evil
    other = "b" * 40
    hub.always("HEAD", "config.json", {"headers": {"X-Repo-Commit": other}})
    commit = hub.repos[REPO_ID]["refs"]["main"]
    refuse_cleanly(evil, f"import stzoo; stzoo.load('hf-hub:{REPO_ID}@{commit}')", match=other)


def test_readme_with_a_hostile_etag_is_refused(evil):
    hub, env, tmp_path = evil
    hub.always("HEAD", "README.md", {"headers": {"ETag": '"../../../../README"'}})
    refuse_cleanly(
        evil, f"from stzoo.zoo import download; download.hub_download({REPO_ID!r}, 'README.md', 'main')", match="ETag"
    )
    # `stzoo download` treats the model card as optional: it still fetches the rest, and writes nothing outside
    r = loads_correctly(evil, f"from stzoo.cli.main import main; assert main(['download', 'hf-hub:{REPO_ID}']) == 0")
    assert not r.get("raised")
    assert snapshot_files(tmp_path) and not any(f.endswith("README.md") for f in snapshot_files(tmp_path))


def test_get_from_another_commit_than_the_head_is_refused(evil):
    """A server answering HEAD from one commit and GET from another (F2): the GET is pinned to the HEAD's
    commit, and an answer from any other commit is refused."""
    hub, env, tmp_path = evil
    hub.always("GET", "config.json", {"headers": {"X-Repo-Commit": "c" * 40}})
    refuse_cleanly(evil, match="mixes commits")
    assert snapshot_files(tmp_path) == []


def test_server_changing_its_answer_between_head_and_get_is_refused(evil):
    """TOCTOU: the HEAD announces the good file, every GET sends other bytes of the same size: the download is
    checked against the HEAD's ETag, tried twice, refused, and nothing of it is kept."""
    hub, env, tmp_path = evil
    good = hub.repos[REPO_ID]["commits"][hub.repos[REPO_ID]["refs"]["main"]]["config.json"]
    bad = good.replace(b'"', b"'", 1) if b'"' in good else good[::-1]
    hub.always("GET", "config.json", {"body": bad})
    r = refuse_cleanly(evil, match="does not match the ETag")
    assert "config.json" in r["message"] and "tried 2 downloads" in r["message"]
    assert len(hub.requests("GET", "/config.json")) == 2
    assert snapshot_files(tmp_path) == []


def test_hostile_etag_on_the_get_is_ignored_not_used(evil):
    """Only the HEAD's checked answer names anything; a GET's headers never do."""
    hub, env, tmp_path = evil
    hub.always("GET", "model.safetensors", {"headers": {"ETag": '"../../../../x"', "X-Linked-Etag": '"/x"'}})
    loads_correctly(evil)
    assert sorted(snapshot_files(tmp_path)) == [
        f"{hub.repos[REPO_ID]['refs']['main']}/{n}" for n in ("config.json", "model.safetensors")
    ]


def test_redirect_to_another_host_serving_other_bytes_is_refused(evil):
    hub, env, tmp_path = evil
    size = len(hub.repos[REPO_ID]["commits"][hub.repos[REPO_ID]["refs"]["main"]]["model.safetensors"])
    with FakeHub() as other:
        other.add_commit(REPO_ID, {"model.safetensors": b"\x00" * size})  # same size, other bytes
        target = f"{other.url}/{REPO_ID}/resolve/main/model.safetensors"
        hub.always("GET", "model.safetensors", {"location": target})
        r = refuse_cleanly(evil, match="sha256")
        assert r["type"] == "ChecksumError" and other.requests("GET")
    assert not any(f.endswith("model.safetensors") for f in snapshot_files(tmp_path))


def test_redirect_to_another_host_serving_the_file_works(evil):
    """A CDN: the Hub redirects the GET elsewhere; the bytes are checked, not the place they came from."""
    hub, env, tmp_path = evil
    data = hub.repos[REPO_ID]["commits"][hub.repos[REPO_ID]["refs"]["main"]]["model.safetensors"]
    with FakeHub() as cdn:
        cdn.add_commit("cdn/x", {"blob": data})
        hub.always("GET", "model.safetensors", {"location": f"{cdn.url}/cdn/x/resolve/main/blob"})
        loads_correctly(evil, HF_TOKEN="hf_stzoo_secret")
        sent = [x["authorization"] for x in cdn.requests("GET")]
    assert sent == [None]  # the token goes to the Hub only, not to the host it redirects to
    assert {x["authorization"] for x in hub.requests(contains="/resolve/")} == {"Bearer hf_stzoo_secret"}


@pytest.mark.parametrize("location", ["file:///etc/passwd", "/../../../../x", "ftp://127.0.0.1/x"])
def test_redirect_to_a_path_or_another_scheme_is_refused(evil, location):
    hub, env, tmp_path = evil
    hub.always("GET", "config.json", {"location": location})
    refuse_cleanly(evil)
    assert snapshot_files(tmp_path) == []


def test_a_poisoned_ref_left_by_an_older_cache_is_not_followed(evil):
    """refs/main written (by an older huggingface_hub) from a hostile answer: not a commit hash, so it is
    ignored offline, never joined into a path or deleted through."""
    hub, env, tmp_path = evil
    victim = tmp_path / "victim" / "config.json"
    victim.parent.mkdir()
    victim.write_text("{}")
    refs = tmp_path / "hf" / "hub" / "models--evil--m" / "refs"
    refs.mkdir(parents=True)
    (refs / "main").write_text("../../../../victim")
    (refs.parent / "snapshots").mkdir()
    refuse_cleanly(evil, env={"HF_HUB_OFFLINE": "1"}, match="not available offline")
    assert victim.read_text() == "{}"


def test_a_hostile_weights_sha256_in_config_json_is_refused(evil):
    hub, env, tmp_path = evil
    commit = hub.repos[REPO_ID]["refs"]["main"]
    cfg = json.loads(hub.repos[REPO_ID]["commits"][commit]["config.json"])
    cfg["weights"]["sha256"] = "../../../../victim"
    hub.add_commit(REPO_ID, {"config.json": json.dumps(cfg).encode()})
    refuse_cleanly(evil, match="sha256")


# ---- F2: config.json is verified, re-fetched and purged like the weights -----------------------------
def test_a_corrupt_config_transfer_is_fetched_again(evil):
    hub, env, tmp_path = evil
    commit = hub.repos[REPO_ID]["refs"]["main"]
    good = hub.repos[REPO_ID]["commits"][commit]["config.json"]
    hub.fault("GET", "config.json", {"body": b"x" * len(good)})  # once: same size, not even JSON
    loads_correctly(evil)
    assert len(hub.requests("GET", "/config.json")) == 2
    cached = tmp_path / "hf" / "hub" / "models--evil--m" / "snapshots" / commit / "config.json"
    assert cached.read_bytes() == good


def test_a_corrupted_cached_config_is_replaced_online_and_refused_offline(evil):
    hub, env, tmp_path = evil
    commit = hub.repos[REPO_ID]["refs"]["main"]
    good = hub.repos[REPO_ID]["commits"][commit]["config.json"]
    loads_correctly(evil)
    cached = tmp_path / "hf" / "hub" / "models--evil--m" / "snapshots" / commit / "config.json"
    # same size, still valid JSON, but a wrong weights hash: the case that used to blame a "tampered mirror"
    cfg = json.loads(good)
    cfg["weights"]["sha256"] = "0" * 64
    text = json.dumps(cfg).encode()
    text = text + b" " * (len(good) - len(text)) if len(text) <= len(good) else text
    Path(os.path.realpath(cached)).write_bytes(text)
    weights_gets = len(hub.requests("GET", "/model.safetensors"))
    loads_correctly(evil)  # online: checked against the server's ETag, fetched again
    assert len(hub.requests("GET", "/model.safetensors")) == weights_gets  # the cached weights are reused
    assert cached.read_bytes() == good
    Path(os.path.realpath(cached)).write_bytes(text)
    r = refuse_cleanly(evil, env={"HF_HUB_OFFLINE": "1"}, match="config.json")
    assert r["type"] == "ChecksumError" and "stzoo download hf-hub:evil/m" in r["message"]
    assert not cached.exists()


def test_a_config_that_is_not_json_in_the_repo_is_refused_and_not_kept(evil):
    hub, env, tmp_path = evil
    hub.add_commit(REPO_ID, {"config.json": b"{not json"})
    r = refuse_cleanly(evil, match="not valid JSON")
    assert r["type"] == "HubError" and "tried 2 downloads" in r["message"]
    assert len(hub.requests("GET", "/config.json")) == 2
    assert snapshot_files(tmp_path) == []


# ---- F9: an overall deadline -----------------------------------------------------------------------------
# The child measures the load itself (importing stzoo on a loaded machine takes seconds of its own) and leaves
# the time in the cache folder, the one place it may write.
TIMED_LOAD = (
    "import os, time, stzoo\nt = time.monotonic()\ntry:\n    " + LOAD.split("; ", 1)[1] + "\nfinally:\n"
    "    os.makedirs(os.environ['HF_HOME'], exist_ok=True)\n"
    "    open(os.environ['HF_HOME'] + '/elapsed', 'w').write(str(time.monotonic() - t))"
)


def load_seconds(tmp_path) -> float:
    return float((tmp_path / "hf" / "elapsed").read_text())


@pytest.mark.parametrize(
    "method, fault",
    [
        ("GET", {"drip": 0.5}),
        ("HEAD", {"drip_headers": 0.5}),
        ("GET", {"drip_headers": 0.5}),
        ("HEAD", {"stall": 30}),
    ],
    ids=["drip-body", "drip-head-headers", "drip-get-headers", "stall"],
)
def test_a_dripping_or_stalled_server_hits_the_deadline(evil, method, fault):
    hub, env, tmp_path = evil
    hub.always(method, "model.safetensors", fault)
    r = refuse_cleanly(evil, TIMED_LOAD, match="STZOO_HUB_TIMEOUT", within=40, env={"STZOO_HUB_TIMEOUT": "3"})
    assert r["type"] == "HubTimeoutError" and "3 s deadline" in r["message"]
    assert load_seconds(tmp_path) < 9  # config.json quickly, then the weights' 3 s, not the server's pace
    assert "TimeoutError" in r["mro"]
    assert not any(f.endswith("model.safetensors") for f in snapshot_files(tmp_path))


def test_retry_after_beyond_the_deadline_fails_at_once(evil):
    hub, env, tmp_path = evil
    hub.always("HEAD", "config.json", {"status": 429, "headers": {"Retry-After": "3600"}})
    r = refuse_cleanly(evil, TIMED_LOAD, match="Retry-After", within=40, env={"STZOO_HUB_TIMEOUT": "5"})
    assert r["type"] == "HubTimeoutError" and "3600" in r["message"]
    assert load_seconds(tmp_path) < 4  # at once: no wait at all, not even up to the 5 s deadline
    assert len(hub.requests("HEAD", "/config.json")) == 1


def test_a_short_retry_after_is_honoured(evil):
    hub, env, tmp_path = evil
    hub.fault("HEAD", "config.json", {"status": 429, "headers": {"Retry-After": "1"}})
    loads_correctly(evil)
    assert len(hub.requests("HEAD", "/config.json")) == 2


@pytest.mark.parametrize("value", ["abc", "0", "-5", "nan", "inf"])
def test_a_bad_deadline_setting_is_refused(evil, value):
    refuse_cleanly(evil, match="STZOO_HUB_TIMEOUT", env={"STZOO_HUB_TIMEOUT": value})


def test_a_huge_config_is_refused_before_it_is_fetched(evil):
    hub, env, tmp_path = evil
    hub.always("HEAD", "config.json", {"headers": {"Content-Length": str(10**12)}})
    refuse_cleanly(evil, match="at most")
    assert not hub.requests("GET", "/config.json")
