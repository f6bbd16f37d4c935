"""Hostile inputs to the loading side (stzoo.load, checkpoints, the Hub): each case runs in a limited
subprocess (tests/hostile.py) and must end in a clean, readable StzooError, never a raw exception.

Covers: corrupt safetensors files, NaN / inf weights (zoo file, folder, hf-hub: through the local
FakeHub), bad batch_size / device values, non-string names, names and paths too long for the OS, and
repo ids / file names that try to escape (trailing newline, percent-encoding, bidi overrides).
"""

from __future__ import annotations

import hashlib
import json
import struct

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save, save_file

import stzoo
from hf_server import FakeHub
from hostile import refuse
from stzoo.zoo.manifest import InputSpec
from stzoo.models import build_model
from stzoo.inference.predictor import Predictor

pytestmark = pytest.mark.hostile

CFG = {"num_layers": 1, "num_hidden": 4, "filter_size": 3}
TINY = "stzoo.load('convlstm-mmnist-s', pretrained=False"  # a zoo entry, built without weights


def tiny_folder(path, seed=0):
    torch.manual_seed(seed)
    p = Predictor(build_model("convlstm", CFG), InputSpec(4, 4, 1, 16, 16), name="tiny",
                  entry={"architecture": "convlstm", "config": CFG})
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
    return struct.pack("<Q", 2 ** 60) + good[8:]


def _bad_json_header(good: bytes) -> bytes:
    n = struct.unpack("<Q", good[:8])[0]
    return good[:8] + b"{" * n + good[8 + n:]


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
@pytest.mark.parametrize("values", [(float("nan"),), (float("inf"),), (float("-inf"), float("nan"))],
                         ids=["nan", "inf", "both"])
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
        env = {"HF_ENDPOINT": hub.url, "HF_HOME": str(tmp_path / "hf"), "HF_HUB_OFFLINE": "0",
               "HF_HUB_DISABLE_XET": "1", "HF_HUB_DISABLE_TELEMETRY": "1", "HF_HUB_DISABLE_PROGRESS_BARS": "1",
               "NO_PROXY": "127.0.0.1,localhost", "no_proxy": "127.0.0.1,localhost"}
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


@pytest.mark.parametrize("device, match", [("'meta'", "meta"), ("torch.device('meta')", "meta"),
                                           ("'nonsense'", "nonsense"), ("[0]", "device"), ("1.5", "device")])
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
@pytest.mark.parametrize("arg, match", [
    ("'a' * 5000", "5000 characters"),                                    # a name
    ("'/tmp/' + 'a' * 5000", "5005 bytes"),                               # a str path
    ("pathlib.Path('a' * 5000)", "5000 bytes"),                           # an os.PathLike
    ("pathlib.Path('/'.join(['d' * 200] * 30))", "6029 bytes"),           # short names, long path
    ("'hf-hub:' + 'a' * 5000 + '/b'", "96 characters"),                   # a Hub owner
    ("'hf-hub:a/' + 'b' * 5000", "96 characters"),                        # a Hub name
    ("'hf-hub:a/b@' + 'r' * 5000", "at most 255 characters"),             # a revision
], ids=["name", "str-path", "pathlike", "deep-path", "hub-owner", "hub-name", "hub-revision"])
def test_names_and_paths_too_long_for_the_os(arg, match):
    r = refuse(f"import pathlib, stzoo; stzoo.load({arg})", match=match)
    assert len(r["message"]) < 1500, f"the message repeats the whole name: {len(r['message'])} characters"


def test_weights_path_too_long_for_the_os():
    r = refuse(f"import stzoo; {TINY}, weights='w' * 5000)", match="5000 bytes")
    assert len(r["message"]) < 1500


# ---- item 9: repo ids and file names that try to escape ---------------------------------------------
def test_repo_id_with_a_trailing_newline():
    refuse("import stzoo; stzoo.load('hf-hub:stzoo/tiny\\n')", match="repo id")


@pytest.mark.parametrize("filename, match", [
    ("%2e%2e/%2e%2e/etc/passwd", "percent-encoded"),
    ("..%2Fescape.safetensors", "percent-encoded"),
    (".../x.safetensors", "only of dots"),
    ("model\u202egpj.safetensors", "U+202E"),
    ("x" * 10000, "10000 characters"),
], ids=["pct-dots", "pct-slash", "dots", "bidi", "10k"])
def test_hostile_file_names_are_refused_before_any_request(filename, match):
    code = f"from stzoo.zoo import hub; hub.hub_download('stzoo/tiny', {filename!r}, 'main', sha256='0' * 64)"
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
