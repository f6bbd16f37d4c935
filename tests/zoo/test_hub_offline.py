"""Where release weights are looked for, and how a machine without the Hub fails: offline
(HF_HUB_OFFLINE=1) or with the endpoint unreachable, the error comes at once, without
huggingface_hub's retry warnings, and names the file a local weights folder should hold
(``<name>.safetensors``), not only the Hub's ``model.safetensors``.

Nothing here reaches beyond 127.0.0.1: the "unreachable" endpoint is a port on which nothing listens.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from stzoo.errors import WeightsNotAvailableError
from stzoo.zoo import download, hub
from stzoo.zoo.entry import ZooEntry
from stzoo.zoo.manifest import get_entry, load_manifest
from stzoo.zoo.resolve import locate_weights

REPO = Path(__file__).resolve().parents[2]


def fake_entry(name: str = "tiny-x") -> dict:
    return {
        "name": name,
        "architecture": "convlstm",
        "config": {"num_layers": 1, "num_hidden": 4, "filter_size": 3},
        "input": {"frames_in": 4, "frames_out": 4, "channels": 1, "height": 16, "width": 16},
        "weights": {
            "filename": f"{name}.safetensors",
            "sha256": "0" * 64,
            "size": 1,
            "dtype": "float32",
            "hub": {"repo_id": "stzoo/tiny-x", "filename": "model.safetensors", "revision": "main"},
        },
    }


def closed_port() -> int:
    """A local TCP port on which nothing listens (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ---- where the released weights are found -------------------------------------------------------
def shipped_and_released() -> tuple[dict[str, str], dict[str, dict]]:
    """(file name → sha256 of what stzoo/weights holds, file name → manifest weights spec of every release)."""
    folder = hub.packaged_weights_dir()
    shipped = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.glob("*.safetensors"))}
    released = {
        get_entry(n).weights.filename: get_entry(n).weights
        for n, e in load_manifest()["models"].items()
        if "alias" not in e and e.get("weights")
    }
    return shipped, released


def test_released_weights_ship_inside_the_package():
    """stzoo/weights (package data) holds the default zoo models and every release that has no Hub copy,
    each with the manifest's sha256, and nothing the manifest does not list; the checkout's weights/
    is a link to that same folder, not a second copy."""
    folder = hub.packaged_weights_dir()
    assert folder == Path(hub.__file__).resolve().parents[1] / "weights" and folder.is_dir()  # stzoo/weights
    shipped, released = shipped_and_released()
    for filename, sha in shipped.items():
        assert filename in released, f"{folder / filename} is shipped but no manifest entry releases it"
        assert sha == released[filename].sha256, f"{filename} differs from the release the manifest lists"
    models = load_manifest()["models"]
    defaults = {get_entry(n).weights.filename for n, e in models.items() if "alias" in e and get_entry(n).weights}
    assert defaults and defaults <= set(shipped), f"default zoo models not shipped: {defaults - set(shipped)}"
    hub_only_impossible = {f for f, w in released.items() if not w.hub} - set(shipped)
    assert not hub_only_impossible, f"released with no Hub copy and not shipped: {hub_only_impossible}"
    link = REPO / "weights"
    if link.exists():  # a source checkout
        assert link.resolve() == folder.resolve(), "weights/ must point at stzoo/weights, not hold a copy"


def test_search_order_env_folder_then_packaged(tmp_path, monkeypatch):
    monkeypatch.delenv(hub.WEIGHTS_DIR_ENV, raising=False)
    assert hub.local_weights_dirs() == [hub.packaged_weights_dir()]
    monkeypatch.setenv(hub.WEIGHTS_DIR_ENV, str(tmp_path))
    assert hub.local_weights_dirs() == [tmp_path, hub.packaged_weights_dir()]


def test_zoo_model_resolves_to_packaged_file_without_any_request(monkeypatch):
    monkeypatch.delenv(hub.WEIGHTS_DIR_ENV, raising=False)

    def no_network(*args, **kwargs):
        raise AssertionError("the Hub must not be asked for a shipped file")

    monkeypatch.setattr(download, "hub_download", no_network)
    loc = locate_weights(get_entry("tau-mmnist"))
    assert loc.source == "local" and loc.path.parent == hub.packaged_weights_dir()
    assert loc.path.name == "tau-mmnist-s.safetensors"


# ---- offline: the error names the file to put in a folder ------------------------------------------
@pytest.fixture
def offline_empty(tmp_path, monkeypatch):
    """HF_HUB_OFFLINE on, an empty Hugging Face cache, and one empty local weights folder."""
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)  # what HF_HUB_OFFLINE=1 sets at import
    monkeypatch.setattr(constants, "ENDPOINT", f"http://127.0.0.1:{closed_port()}")  # and never the real Hub
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hf-cache"))
    empty = tmp_path / "my-weights"
    empty.mkdir()
    monkeypatch.setattr(hub, "local_weights_dirs", lambda: [empty])
    return empty


def test_offline_error_names_the_local_file_name_and_where_it_looked(offline_empty):
    start = time.perf_counter()
    with pytest.raises(WeightsNotAvailableError) as info:
        locate_weights(ZooEntry.from_dict("tiny-x", fake_entry()))
    assert time.perf_counter() - start < 2
    msg = str(info.value)
    assert "tiny-x.safetensors is not available offline" in msg
    assert f"Put tiny-x.safetensors in a folder and point {hub.WEIGHTS_DIR_ENV} at it" in msg
    assert str(offline_empty / "tiny-x.safetensors") in msg  # the place it looked
    assert "stzoo/tiny-x/model.safetensors" in msg and "models--stzoo--tiny-x" in msg  # the Hub file and cache
    assert "stzoo download tiny-x" in msg and "HF_HUB_OFFLINE" in msg
    assert "put model.safetensors in a folder" not in msg  # the old, wrong advice


def test_offline_error_for_a_hub_id_points_at_a_folder_not_the_weights_env(offline_empty):
    start = time.perf_counter()
    with pytest.raises(WeightsNotAvailableError) as info:
        download.hub_download(
            "alice/thing", "config.json", what="stzoo.load('hf-hub:alice/thing')", name="hf-hub:alice/thing"
        )
    assert time.perf_counter() - start < 2
    msg = str(info.value)
    assert "alice/thing/config.json is not available offline" in msg
    assert "stzoo download hf-hub:alice/thing" in msg and "stzoo.load(" in msg
    assert hub.WEIGHTS_DIR_ENV not in msg  # that variable is for zoo release files only


# ---- no network at all (HF_HUB_OFFLINE unset): fail fast, no retry noise ---------------------------
CLIENT = """
import json, sys, time
from stzoo.zoo import hub
from stzoo.zoo.entry import ZooEntry
from stzoo.zoo.resolve import locate_weights
hub.local_weights_dirs = lambda: []
entry = json.loads(sys.argv[1])
start = time.perf_counter()
try:
    {call}
except Exception as exc:
    print(json.dumps({{"type": type(exc).__name__, "message": str(exc), "s": time.perf_counter() - start}}))
else:
    print(json.dumps({{"type": None}}))
"""


@pytest.mark.parametrize(
    "call",
    ["locate_weights(ZooEntry.from_dict(entry['name'], entry))", "__import__('stzoo').load('hf-hub:alice/thing')"],
    ids=["zoo-entry", "hf-hub-id"],
)
def test_unreachable_endpoint_fails_fast_without_retry_warnings(call, tmp_path):
    endpoint = f"http://127.0.0.1:{closed_port()}"
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("HF_", "HUGGINGFACE_")) and k.lower() not in ("http_proxy", "https_proxy", "all_proxy")
    }
    env.update(
        HF_ENDPOINT=endpoint,
        HF_HOME=str(tmp_path / "hf"),
        HF_HUB_OFFLINE="0",
        HF_HUB_DISABLE_TELEMETRY="1",
        NO_PROXY="127.0.0.1,localhost",
        OMP_NUM_THREADS="1",
        PYTHONDONTWRITEBYTECODE="1",
    )
    proc = subprocess.run(
        [sys.executable, "-c", CLIENT.format(call=call), json.dumps(fake_entry())],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["type"] == "WeightsNotAvailableError", result
    # huggingface_hub alone would retry the connection 5 times with back-off (1+2+4+8+8 s) and warn each time
    assert result["s"] < 8, result
    assert "Retry" not in proc.stderr and "retrying" not in proc.stderr.lower(), proc.stderr[-2000:]
    msg = result["message"]
    assert f"{endpoint} cannot be reached" in msg and "HF_HUB_OFFLINE=1" in msg
    if "locate" in call:
        assert "tiny-x.safetensors is not available offline" in msg and hub.WEIGHTS_DIR_ENV in msg
    else:
        assert "alice/thing/config.json" in msg
