"""Weights through the real Hugging Face protocol: ``hf_hub_download`` runs for real, in a fresh process
(HF_ENDPOINT / HF_HUB_OFFLINE / HF_HOME / HF_TOKEN are read when huggingface_hub is imported), against
servers on 127.0.0.1 started here: the ``olah`` mirror for the happy paths, and tests/helpers/hf_server.FakeHub
for error paths (404 entry vs revision, 401, 500, cut transfers, wrong bytes) and uploads.
Nothing here reaches beyond 127.0.0.1.

Each server's scenario runs in one or two client processes (to keep the suite fast); each test below
checks one step's result.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch
from helpers.hf_server import FakeHub, OlahServer, git_commit_files, olah_available
from safetensors.torch import save

from stzoo.inference.predictor import Predictor
from stzoo.models import build_model
from stzoo.zoo.entry import ZooEntry
from stzoo.zoo.manifest import InputSpec

REPO = Path(__file__).resolve().parents[2]
CLIENT = Path(__file__).resolve().parents[1] / "helpers" / "hub_client.py"
CFG = {"num_layers": 1, "num_hidden": 4, "filter_size": 3}
INPUT = {"frames_in": 4, "frames_out": 4, "channels": 1, "height": 16, "width": 16, "value_range": [0.0, 1.0]}
TOKEN = "hf_stzoo_test_token"


def tiny_predictor(seed: int) -> Predictor:
    torch.manual_seed(seed)
    spec = InputSpec(4, 4, 1, 16, 16)
    return Predictor(
        build_model("convlstm", CFG), spec, name=f"tiny-{seed}", entry=ZooEntry(None, "convlstm", CFG, spec)
    )


def tiny_bytes(seed: int) -> bytes:
    return save({k: v.contiguous() for k, v in tiny_predictor(seed).model.state_dict().items()})


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def state_hash(model: torch.nn.Module) -> str:
    h = hashlib.sha256()
    for k, v in sorted(model.state_dict().items()):
        h.update(k.encode())
        h.update(v.detach().float().contiguous().numpy().tobytes())
    return h.hexdigest()


def entry(name: str, data: bytes, repo_id: str, filename: str, revision: str) -> dict[str, Any]:
    return {
        "name": name,
        "architecture": "convlstm",
        "config": CFG,
        "input": INPUT,
        "parameters": 1,
        "description": "test",
        "license": "Apache-2.0",
        "weights": {
            "filename": f"{name}.safetensors",
            "sha256": sha(data),
            "size": len(data),
            "dtype": "float32",
            "hub": {"repo_id": repo_id, "filename": filename, "revision": revision},
        },
    }


def run_client(
    tmp: Path,
    endpoint: str,
    hf_home: Path,
    steps: list[dict],
    *,
    models: dict | None = None,
    offline: bool = False,
    token: str | None = None,
) -> list[dict[str, Any]]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("HF_", "HUGGINGFACE_")) and k.lower() not in ("http_proxy", "https_proxy", "all_proxy")
    }
    env.update(
        HF_ENDPOINT=endpoint,
        HF_HOME=str(hf_home),
        HF_HUB_OFFLINE="1" if offline else "0",
        HF_HUB_DISABLE_TELEMETRY="1",
        HF_HUB_DISABLE_PROGRESS_BARS="1",
        HF_HUB_DISABLE_XET="1",
        NO_PROXY="127.0.0.1,localhost",
        STZOO_WEIGHTS_DIR=str(tmp / "no-local-weights"),
        PYTHONPATH=os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")]),
        OMP_NUM_THREADS="1",
    )
    if token:
        env["HF_TOKEN"] = token
    cmd = tmp / f"steps-{len(list(tmp.glob('steps-*')))}.json"
    cmd.write_text(json.dumps({"models": models or {}, "steps": steps}))
    proc = subprocess.run([sys.executable, str(CLIENT), str(cmd)], env=env, capture_output=True, text=True, timeout=120)
    marker = "@@RESULTS@@"
    if proc.returncode != 0 or marker not in proc.stdout:
        raise AssertionError(f"client failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.split(marker, 1)[1])


def ok(result: dict) -> dict:
    assert result["ok"], result
    return result


def failed(result: dict, exc_type: str, *fragments: str) -> str:
    assert not result["ok"], result
    assert exc_type in result["types"], result
    for f in fragments:
        assert f in result["message"], (f, result["message"])
    return result["message"]


# =================================================================================================
# olah: an independent Hub implementation, for the happy paths
# =================================================================================================
@pytest.fixture(scope="module")
def olah_run(tmp_path_factory):
    if not olah_available():
        pytest.skip("olah is not installed (pip install -e '.[test]')")
    tmp = tmp_path_factory.mktemp("olah")
    a, b = tiny_predictor(1), tiny_predictor(2)
    layout = {}
    for tag, p in (("a", a), ("b", b)):
        out = p.save_pretrained(tmp / f"layout-{tag}", repo_id="stzoo/tiny")
        layout[tag] = {f.name: f.read_bytes() for f in out.iterdir()}
    git_dir = tmp / "olah" / "mirrors" / "models" / "stzoo" / "tiny"
    c1 = git_commit_files(git_dir, {**layout["a"], "other.safetensors": layout["a"]["model.safetensors"]}, "a", "v1")
    c2 = git_commit_files(git_dir, layout["b"], "b")
    wa = layout["a"]["model.safetensors"]
    models = {
        "tiny-olah": entry("tiny-olah", wa, "stzoo/tiny", "model.safetensors", c1),
        "tiny-olah-tag": entry("tiny-olah-tag", wa, "stzoo/tiny", "model.safetensors", "v1"),
        "tiny-olah-other": entry("tiny-olah-other", wa, "stzoo/tiny", "other.safetensors", c1),
    }
    hf_home = tmp / "hf"
    with OlahServer(tmp / "olah") as olah:
        online = run_client(
            tmp,
            olah.url,
            hf_home,
            models=models,
            steps=[
                {"op": "locate", "entry": models["tiny-olah"]},  # 0 first download
                {"op": "locate", "entry": models["tiny-olah"]},  # 1 cache hit
                {"op": "locate", "entry": models["tiny-olah-tag"]},  # 2 pinned by tag
                {"op": "load", "spec": "hf-hub:stzoo/tiny"},  # 3 main = b
                {"op": "load", "spec": "hf-hub:stzoo/tiny@v1"},  # 4 tag = a
                {"op": "load", "spec": f"hf-hub:stzoo/tiny@{c1}"},  # 5 commit = a
                {"op": "cli", "argv": ["download", "tiny-olah", "hf-hub:stzoo/tiny@v1"]},  # 6
            ],
        )
        offline = run_client(
            tmp,
            olah.url,
            hf_home,
            models=models,
            offline=True,
            steps=[
                {"op": "locate", "entry": models["tiny-olah"]},  # 0
                {"op": "load", "spec": "hf-hub:stzoo/tiny@v1"},  # 1
                {"op": "load", "spec": "hf-hub:stzoo/tiny"},  # 2
                {"op": "locate", "entry": models["tiny-olah-other"]},  # 3 not cached
                {"op": "cli", "argv": ["cache"]},  # 4
                {"op": "cli", "argv": ["download", "tiny-olah-other"]},  # 5
            ],
        )
        log = (tmp / "olah" / "olah.log").read_text(errors="replace")
    return {
        "online": online,
        "offline": offline,
        "a": state_hash(a.model),
        "b": state_hash(b.model),
        "wa": wa,
        "hf_home": hf_home,
        "c1": c1,
        "c2": c2,
        "log": log,
    }


def test_olah_first_download_then_cache_hit(olah_run):
    first, second = ok(olah_run["online"][0]), ok(olah_run["online"][1])
    assert first["source"] == "download" and first["sha256"] == sha(olah_run["wa"])
    assert Path(first["path"]).is_relative_to(olah_run["hf_home"]) and olah_run["c1"] in first["path"]
    assert second["source"] == "hf-cache" and second["path"] == first["path"]


def test_olah_revision_pin(olah_run):
    on = olah_run["online"]
    assert ok(on[2])["sha256"] == sha(olah_run["wa"])  # tag v1, although main moved on
    assert ok(on[3])["state"] == olah_run["b"] and ok(on[4])["state"] == olah_run["a"]
    assert ok(on[5])["state"] == olah_run["a"] and olah_run["c1"] in on[5]["source"]


def test_olah_cli_download_prints_where(olah_run):
    out = ok(olah_run["online"][6])
    assert out["rc"] == 0, out
    assert f"tiny-olah: {olah_run['hf_home']}" in out["out"] and "sha256 verified" in out["out"]
    assert "hf-hub:stzoo/tiny@v1: model.safetensors -> " in out["out"]


def test_olah_offline_from_cache(olah_run):
    off = olah_run["offline"]
    assert ok(off[0])["source"] == "hf-cache"
    assert ok(off[1])["state"] == olah_run["a"] and ok(off[2])["state"] == olah_run["b"]


def test_offline_with_nothing_cached_says_where_and_how(olah_run):
    msg = failed(
        olah_run["offline"][3],
        "WeightsNotAvailableError",
        "HF_HUB_OFFLINE",
        "models--stzoo--tiny",
        "stzoo download tiny-olah-other",
        "STZOO_WEIGHTS_DIR",
        "no-local-weights",
    )
    assert str(olah_run["hf_home"]) in msg
    cli = ok(olah_run["offline"][5])
    assert cli["rc"] == 2 and "stzoo: error:" in cli["err"] and "HF_HUB_OFFLINE" in cli["err"]


def test_cli_cache_lists_cached_repos(olah_run):
    out = ok(olah_run["offline"][4])
    assert out["rc"] == 0
    assert "stzoo/tiny" in out["out"] and "HF_HUB_OFFLINE is on" in out["out"]
    assert "tiny-olah  hf cache" in out["out"] and "tiny-olah-other  not cached" in out["out"]


# =================================================================================================
# FakeHub: error paths, retries and uploads
# =================================================================================================
@pytest.fixture(scope="module")
def fake_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("fakehub")
    wa, wb = tiny_bytes(1), tiny_bytes(2)
    data = {"retry": tiny_bytes(3), "trunc": tiny_bytes(4), "dead": tiny_bytes(6)}  # distinct blobs
    hf_home = tmp / "hf"
    with FakeHub() as hub:
        c1 = hub.add_commit("stzoo/fake", {"good.safetensors": wa}, tags=("v1",))
        hub.add_commit(
            "stzoo/fake",
            {"good.safetensors": wb, "bad.safetensors": wb, **{f"{k}.safetensors": v for k, v in data.items()}},
        )
        hub.fault("HEAD", "retry.safetensors", {"status": 500})
        hub.fault("GET", "retry.safetensors", {"status": 500})
        hub.fault("GET", "trunc.safetensors", {"truncate": 100})
        hub.fault("GET", "dead.safetensors", {"truncate": 50}, *[{"status": 503}] * 20)
        e = {
            n: entry(n, wa, "stzoo/fake", f, r)
            for n, f, r in (
                ("pinned", "good.safetensors", c1),
                ("retry", "retry.safetensors", "main"),
                ("trunc", "trunc.safetensors", "main"),
                ("bad", "bad.safetensors", "main"),
                ("dead", "dead.safetensors", "main"),
                ("noentry", "nothere.safetensors", "main"),
                ("norev", "good.safetensors", "nope"),
                ("norepo", "good.safetensors", "main"),
            )
        }
        e.update({k: entry(k, v, "stzoo/fake", f"{k}.safetensors", "main") for k, v in data.items()})
        e["norepo"]["weights"]["hub"]["repo_id"] = "stzoo/missing"
        trav = [
            entry("trav1", wa, "stzoo/fake", "../../../etc/passwd", "main"),
            entry("trav2", wa, "../fake", "good.safetensors", "main"),
            entry("trav3", wa, "stzoo/fake", "good.safetensors", "../main"),
        ]
        trav[0]["weights"]["filename"] = "../escape.safetensors"
        online = run_client(
            tmp,
            hub.url,
            hf_home,
            token=TOKEN,
            steps=[
                {"op": "requests"},  # 0
                {"op": "locate", "entry": e["pinned"]},  # 1
                {"op": "requests"},  # 2
                {"op": "locate", "entry": e["pinned"]},  # 3 cache hit
                {"op": "requests"},  # 4
                {"op": "locate", "entry": e["retry"]},  # 5
                {"op": "locate", "entry": e["trunc"]},  # 6
                {"op": "locate", "entry": e["bad"]},  # 7
                {"op": "locate", "entry": e["dead"]},  # 8
                {"op": "locate", "entry": e["noentry"]},  # 9
                {"op": "locate", "entry": e["norev"]},  # 10
                {"op": "locate", "entry": e["norepo"]},  # 11
                {"op": "requests"},  # 12
                *[{"op": "locate", "entry": t} for t in trav],  # 13-15
                {"op": "load", "spec": "hf-hub:../fake"},  # 16
                {"op": "load", "spec": "hf-hub:stzoo/fake@../../x"},  # 17
                {"op": "requests"},  # 18
                {"op": "files", "root": str(hf_home / "hub")},  # 19
                {"op": "push", "repo_id": "alice/pushed", "seed": 5, "config": CFG},  # 20
                {"op": "load", "spec": "hf-hub:alice/pushed"},  # 21
                {"op": "save", "spec": "hf-hub:alice/pushed", "dir": str(tmp / "saved")},  # 22
                {"op": "maint", "argv": ["hub", "push", str(tmp / "saved"), "--repo-id", "alice/pushed2"]},  # 23
                {"op": "load", "spec": "hf-hub:alice/pushed2"},  # 24
            ],
        )
        log = list(hub.log)
    return {
        "r": online,
        "log": log,
        "wa": wa,
        "wb": wb,
        "data": data,
        "hf_home": hf_home,
        "c1": c1,
        "pushed": state_hash(tiny_predictor(5).model),
    }


def test_fake_first_download_and_cache_hit_without_requests(fake_run):
    r = fake_run["r"]
    assert ok(r[1])["source"] == "download" and r[1]["sha256"] == sha(fake_run["wa"])
    assert fake_run["c1"] in r[1]["path"]  # the pinned commit, not main
    assert r[2]["count"] > r[0]["count"]
    assert ok(r[3])["source"] == "hf-cache" and r[3]["path"] == r[1]["path"]
    assert r[4]["count"] == r[2]["count"]  # a verified cached file needs no request at all


def test_hf_token_is_sent(fake_run):
    resolves = [x for x in fake_run["log"] if "/resolve/" in x["path"]]
    assert resolves and all(x["authorization"] == f"Bearer {TOKEN}" for x in resolves)


def test_500_then_retry(fake_run):
    assert ok(fake_run["r"][5])["sha256"] == sha(fake_run["data"]["retry"])
    calls = [x["method"] for x in fake_run["log"] if x["path"].endswith("/retry.safetensors")]
    assert calls.count("HEAD") >= 2 and calls.count("GET") == 2, calls


def test_truncated_transfer_is_retried_and_verified(fake_run):
    assert ok(fake_run["r"][6])["sha256"] == sha(fake_run["data"]["trunc"])
    gets = [x for x in fake_run["log"] if x["path"].endswith("/trunc.safetensors") and x["method"] == "GET"]
    assert len(gets) == 2  # the cut one, then a complete one (resumed or whole)
    assert not any(f.endswith(".incomplete") for f in fake_run["r"][19]["files"])


def test_checksum_mismatch_is_an_error_and_leaves_no_cached_file(fake_run):
    msg = failed(
        fake_run["r"][7],
        "ChecksumError",
        sha(fake_run["wa"]),
        sha(fake_run["wb"]),
        "bad.safetensors",
        "deleted from the Hugging Face cache",
    )
    assert "ValueError" in fake_run["r"][7]["types"] and msg
    files = fake_run["r"][19]["files"]
    assert not any(f.endswith("bad.safetensors") for f in files), files
    assert not any(f.endswith("blobs/" + sha(fake_run["wb"])) for f in files), files


def test_persistent_failure_mid_download_leaves_no_partial_file(fake_run):
    failed(
        fake_run["r"][8], "WeightsNotAvailableError", "dead.safetensors", "tried 3 time(s)", "No partial file was kept"
    )
    files = fake_run["r"][19]["files"]
    assert not any("dead.safetensors" in f or f.endswith(".incomplete") for f in files), files


def test_404_entry_revision_and_missing_repo(fake_run):
    r = fake_run["r"]
    failed(r[9], "WeightsNotAvailableError", "has no file 'nothere.safetensors'", "HTTP 404")
    failed(r[10], "WeightsNotAvailableError", "revision 'nope' does not exist in stzoo/fake")
    failed(r[11], "WeightsNotAvailableError", "stzoo/missing was not found", "HF_TOKEN")


def test_path_traversal_ids_are_refused_before_any_request(fake_run):
    r = fake_run["r"]
    for i in range(13, 18):
        failed(r[i], "InvalidHubIdError")
        assert "ValueError" in r[i]["types"]
    assert r[18]["count"] == r[12]["count"]
    assert not any(".." in x["path"] for x in fake_run["log"])


def test_push_to_hub_then_load_round_trip(fake_run):
    r = fake_run["r"]
    assert len(ok(r[20])["commit"]) == 40 and r[20]["state"] == fake_run["pushed"]
    assert ok(r[21])["state"] == fake_run["pushed"]
    cli = ok(r[23])
    assert cli["rc"] == 0 and "pushed" in cli["out"], cli
    assert ok(r[24])["state"] == fake_run["pushed"]
    commits = [x for x in fake_run["log"] if x["method"] == "POST" and "/commit/" in x["path"]]
    assert len(commits) == 2


# =================================================================================================
# FakeHub: a bad transfer must not poison the cache (hf-hub: checkpoints and zoo entries)
# =================================================================================================
def flipped(data: bytes) -> bytes:
    """``data`` with its last 4 bytes (in the tensor data, not the header) flipped: same size."""
    return data[:-4] + bytes(b ^ 0xFF for b in data[-4:])


class FlakyFile(dict):
    """A FakeHub commit's files in which ``key`` comes back, for the first ``bad_gets`` GET requests of
    it, with a few bytes flipped (same size), while HEAD announces the good file's ETag and size: a
    corrupted transfer (or a tampering proxy) that huggingface_hub stores under the good file's blob name."""

    def __init__(self, files: dict[str, bytes], hub: FakeHub, repo_id: str, key: str, bad_gets: int) -> None:
        super().__init__(files)
        self.hub, self.repo_id, self.key, self.bad, self.bad_gets = hub, repo_id, key, flipped(files[key]), bad_gets

    def gets(self) -> int:
        return len(
            [r for r in self.hub.requests("GET", f"/{self.repo_id}/resolve/") if r["path"].endswith("/" + self.key)]
        )

    def __getitem__(self, name: str) -> bytes:
        data = super().__getitem__(name)
        # FakeHub logs each request before answering it, and the client sends one at a time
        if name == self.key and self.hub.log[-1]["method"] == "GET" and self.gets() <= self.bad_gets:
            return self.bad
        return data


@pytest.fixture(scope="module")
def poison_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("poison")
    hf_home = tmp / "hf"
    preds = {"flaky": tiny_predictor(11), "rotten": tiny_predictor(12)}
    with FakeHub() as hub:
        flaky: dict[str, FlakyFile] = {}
        for name, p in preds.items():
            out = p.save_pretrained(tmp / name, repo_id=f"stzoo/{name}")
            files = {f.name: f.read_bytes() for f in out.iterdir()}
            commit = hub.add_commit(f"stzoo/{name}", files)
            flaky[name] = FlakyFile(
                files, hub, f"stzoo/{name}", "model.safetensors", bad_gets=1 if name == "flaky" else 10**9
            )
            hub.repos[f"stzoo/{name}"]["commits"][commit] = flaky[name]
        wz = tiny_bytes(13)
        zc = hub.add_commit("stzoo/zooflaky", {"w.safetensors": wz})
        flaky["zoo"] = FlakyFile({"w.safetensors": wz}, hub, "stzoo/zooflaky", "w.safetensors", bad_gets=1)
        hub.repos["stzoo/zooflaky"]["commits"][zc] = flaky["zoo"]
        zoo = entry("zoo-flaky", wz, "stzoo/zooflaky", "w.safetensors", zc)
        online = run_client(
            tmp,
            hub.url,
            hf_home,
            steps=[
                {"op": "load", "spec": "hf-hub:stzoo/flaky"},  # 0 bad, purged, good
                {"op": "load", "spec": "hf-hub:stzoo/rotten"},  # 1 bad twice
                {"op": "locate", "entry": zoo},  # 2 zoo entry: bad, purged, good
                {"op": "files", "root": str(hf_home / "hub")},  # 3
                {"op": "load", "spec": "hf-hub:stzoo/flaky"},  # 4 verified cached copy
            ],
        )
        gets_online = {k: f.gets() for k, f in flaky.items()}
        offline = run_client(
            tmp,
            hub.url,
            hf_home,
            offline=True,
            steps=[
                {"op": "load", "spec": "hf-hub:stzoo/flaky"},  # 0
                {"op": "load", "spec": "hf-hub:stzoo/rotten"},  # 1 nothing (bad) cached
                {"op": "cli", "argv": ["download", "hf-hub:stzoo/rotten"]},  # 2
                {"op": "locate", "entry": zoo},  # 3
            ],
        )
        flaky["rotten"].bad_gets = 0  # the server (or the proxy) is mended
        mended = run_client(tmp, hub.url, hf_home, steps=[{"op": "load", "spec": "hf-hub:stzoo/rotten"}])
        gets_mended = flaky["rotten"].gets()
    return {
        "online": online,
        "offline": offline,
        "mended": mended,
        "gets": gets_online,
        "gets_mended": gets_mended,
        "states": {k: state_hash(p.model) for k, p in preds.items()},
        "good": {k: sha((tmp / k / "model.safetensors").read_bytes()) for k in preds},
        "bad": sha(flaky["rotten"].bad),
        "wz": wz,
    }


def test_bad_transfer_of_hub_checkpoint_is_purged_and_fetched_again(poison_run):
    on = poison_run["online"]
    assert ok(on[0])["state"] == poison_run["states"]["flaky"]
    assert poison_run["gets"]["flaky"] == 2  # the bad one, then the good one
    assert ok(on[4])["state"] == poison_run["states"]["flaky"]  # the cached copy is the good one
    assert ok(poison_run["offline"][0])["state"] == poison_run["states"]["flaky"]


def test_bad_transfer_of_zoo_weights_is_purged_and_fetched_again(poison_run):
    r = ok(poison_run["online"][2])
    assert r["source"] == "download" and r["sha256"] == sha(poison_run["wz"])
    assert poison_run["gets"]["zoo"] == 2
    assert ok(poison_run["offline"][3])["source"] == "hf-cache"


def test_always_bad_transfer_raises_and_leaves_nothing_cached(poison_run):
    good, bad = poison_run["good"]["rotten"], poison_run["bad"]
    failed(
        poison_run["online"][1],
        "ChecksumError",
        good,
        bad,
        "config.json of stzoo/rotten",
        "tried 2 downloads",
        "deleted from the Hugging Face cache",
    )
    assert poison_run["gets"]["rotten"] == 2  # one retry, no more
    files = [f for f in poison_run["online"][3]["files"] if f.startswith("models--stzoo--rotten/")]
    assert not any(
        f.endswith("model.safetensors") or "/blobs/" + good in f or "/blobs/" + bad in f or f.endswith(".incomplete")
        for f in files
    ), files
    assert any(f.endswith("config.json") for f in files), files  # the config itself was fine


def test_offline_after_an_always_bad_transfer_does_not_point_at_a_bad_file(poison_run):
    off = poison_run["offline"]
    failed(off[1], "WeightsNotAvailableError", "not available offline", "model.safetensors")
    cli = ok(off[2])
    assert cli["rc"] == 2 and "not available offline" in cli["err"], cli
    assert "model.safetensors ->" not in cli["out"], cli


def test_mended_server_then_loads(poison_run):
    assert ok(poison_run["mended"][0])["state"] == poison_run["states"]["rotten"]
    assert poison_run["gets_mended"] == 3


# =================================================================================================
# What a server may name (issue 31, F1): checked without any server
# =================================================================================================
@pytest.mark.parametrize(
    "raw, token",
    [
        ('"' + "a" * 40 + '"', "a" * 40),
        ('W/"' + "B" * 64 + '"', "b" * 64),
        ("c" * 64, "c" * 64),
        ('"../../x"', None),
        ('"/etc/passwd"', None),
        ('"' + "a" * 63 + '/"', None),
        ('""', None),
        ('"' + "a" * 41 + '"', None),
        ('"' + "a" * 40 + '\\\\x"', None),
        ("W/" + "a" * 5000, None),
    ],
)
def test_only_plain_hash_etags_are_accepted(raw, token):
    from stzoo.zoo.download import _etag_token

    assert _etag_token(raw) == token


def test_cache_written_by_stzoo_is_read_by_huggingface_hub(fake_run):
    """stzoo writes huggingface_hub's own cache layout: hf's reader finds the file stzoo verified."""
    from huggingface_hub import scan_cache_dir, try_to_load_from_cache

    r = fake_run["r"]
    cache = fake_run["hf_home"] / "hub"
    found = try_to_load_from_cache("stzoo/fake", "good.safetensors", revision=fake_run["c1"], cache_dir=cache)
    assert found == r[1]["path"] and hashlib.sha256(Path(found).read_bytes()).hexdigest() == sha(fake_run["wa"])
    repos = {x.repo_id: x for x in scan_cache_dir(cache).repos}
    assert "stzoo/fake" in repos and not scan_cache_dir(cache).warnings


def test_a_ref_that_is_not_a_commit_hash_is_not_followed(tmp_path, monkeypatch):
    from huggingface_hub import constants

    from stzoo.zoo import hub

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hf"))
    repo = tmp_path / "hf" / "models--a--b"
    (repo / "refs").mkdir(parents=True)
    outside = tmp_path / "outside" / "config.json"
    outside.parent.mkdir()
    outside.write_text("{}")
    for ref in ("../../../outside", str(outside.parent), "A" * 40 + "/../../../outside"):
        (repo / "refs" / "main").write_text(ref)
        assert hub.cached_file("a/b", "config.json", "main") is None
    assert outside.read_text() == "{}"
