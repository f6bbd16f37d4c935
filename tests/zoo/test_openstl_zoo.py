"""``stzoo.load("openstl:<file>")`` against a loopback release server: download, resume, retries, faults,
hostile answers, the converted cache, offline use, two processes at once, the ``-paper`` entries.

These tests use a tiny catalogue of their own (small TAU / SimVP configs at 16×16) so that each runs in a
second or two; ``tests/convert/test_openstl_zoo_sweep.py`` runs every entry of the real catalogue."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import openstl_zoo_files as zf
from helpers import subprocess_env
from helpers.release_server import ReleaseServer

import stzoo
from stzoo.convert.openstl import zoo
from stzoo.errors import UnknownModelError, WeightsNotAvailableError
from stzoo.zoo import http
from stzoo.zoo.hub import ChecksumError, HubError, HubTimeoutError

_DS = {
    "openstl_dataname": "mmnist",
    "frames_in": 4,
    "frames_out": 4,
    "height": 16,
    "width": 16,
    "channels": 1,
    "value_range": [0.0, 1.0],
    "natural_units": "pixel intensity 0-255",
    "normalisation": {"kind": "scale", "scale": 255.0},
    "loader": "openstl/datasets/dataloader_moving_mnist.py",
}
_TAU = {"method": "TAU", "model_type": "tau", "hid_S": 8, "hid_T": 16, "N_S": 2, "N_T": 2, "in_shape": [4, 1, 16, 16]}


def _ck(tag: str, ds: str, method: str, model_type: str | None, cfg: dict, mse: float) -> dict:
    return {
        "tag": tag,
        "dataset": ds,
        "openstl_method": method,
        "model_type": model_type,
        "label": method,
        "setting": "200 epoch",
        "config_file": f"configs/{ds}/{method}.py",
        "config": cfg,
        "reported": {"table": "docs/en/model_zoos/video_benchmarks.md", "section": "test", "columns": {"MSE": mse}},
    }


CATALOG = {
    "source": {"repo": "chengtan9907/OpenSTL", "commit": "0" * 40, "ref": "test", "license": "Apache-2.0"},
    "datasets": {
        "mmnist": _DS,
        "taxibj": {
            **_DS,
            "openstl_dataname": "taxibj",
            "channels": 2,
            "natural_units": "flows scaled to [-1, 1]",
            "normalisation": {"kind": "minmax", "min": -1.0, "max": 1.0},
        },
        "weather_t2m_5_625": {
            **_DS,
            "natural_units": "kelvin",
            "value_range": [-10.0, 10.0],
            "normalisation": {"kind": "runtime", "how": "mean/std of 2010-2015"},
        },
    },
    "checkpoints": {
        "mmnist_tau_one_ep200": _ck("mmnist-weights", "mmnist", "TAU", "tau", _TAU, 24.6),
        "mmnist_tau_one_ep2000": _ck("mmnist-weights", "mmnist", "TAU", "tau", _TAU, 15.69),
        "taxibj_simvp_gsta_cos_ep50": _ck(
            "taxibj-weights",
            "taxibj",
            "SimVP",
            "gSTA",
            {**_TAU, "method": "SimVP", "model_type": "gSTA", "in_shape": [4, 2, 16, 16]},
            0.32,
        ),
        "weather_t2m_tau_cos_ep50": _ck("weather-5-625-weights", "weather_t2m_5_625", "TAU", "tau", _TAU, 1.1),
        "mmnist_futurenet_one_ep200": _ck("mmnist-weights", "mmnist", "FutureNet", None, {}, 161.38),
    },
}
for _stem, _e in CATALOG["checkpoints"].items():
    _e["file"] = f"{_stem}.pth"
TAU = "mmnist_tau_one_ep200"
PATH = f"/mmnist-weights/{TAU}.pth"


def _files() -> dict[str, bytes]:
    out = {}
    for stem, e in CATALOG["checkpoints"].items():
        if zf.builder_for(e) is not None:
            out[f"/{e['tag']}/{e['file']}"] = zf.file_bytes(e, CATALOG["datasets"][e["dataset"]], seed=len(stem))
    return out


FILES = _files()


@pytest.fixture()
def server(tmp_path, monkeypatch):
    monkeypatch.setattr(zoo, "load_catalog", lambda: copy.deepcopy(CATALOG))
    monkeypatch.setattr(http, "RETRY_WAIT_S", 0.01)
    monkeypatch.setenv("STZOO_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("STZOO_OFFLINE", raising=False)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    with ReleaseServer(dict(FILES)) as srv:
        monkeypatch.setenv("STZOO_OPENSTL_ENDPOINT", srv.url)
        yield srv


def _cache(tmp_path: Path) -> Path:
    return tmp_path / "cache" / "openstl"


def _frames(p) -> np.ndarray:
    s = p.spec
    return np.random.default_rng(0).integers(0, 256, (s.frames_in, s.height, s.width), dtype=np.uint8)


def test_loads_predicts_and_reloads_offline(server, tmp_path, monkeypatch):
    p = stzoo.load(f"openstl:{TAU}")
    assert (p.spec.frames_in, p.spec.channels, p.spec.height) == (4, 1, 16)
    y = p.predict(_frames(p))
    assert y.shape == (4, 16, 16) and y.dtype == np.uint8
    folder = _cache(tmp_path) / "models" / TAU
    record = json.loads((folder / "openstl.json").read_text())
    assert record["original"]["size"] == len(FILES[PATH]) and record["original"]["pinned"] is False
    assert not (_cache(tmp_path) / "downloads" / f"{TAU}.pth").exists()  # the original is not kept
    card = (folder / "README.md").read_text()
    assert "Metrics reported by OpenSTL" in card and "not pinned" in card and "Apache-2.0" in card
    assert "| 24.6 |" in card and "tan2023openstl" in card
    cfg = json.loads((folder / "config.json").read_text())
    assert cfg["openstl"]["url"] == server.url + PATH
    assert cfg["openstl"]["reported_by_openstl"]["columns"] == {"MSE": 24.6}
    n = len(server.log)
    monkeypatch.setenv("STZOO_OFFLINE", "1")
    q = stzoo.load(f"openstl:{TAU}")
    assert len(server.log) == n  # no request
    np.testing.assert_array_equal(q.predict(_frames(q)), y)


def test_list_and_info_without_download(server):
    assert stzoo.list_models("openstl:*") == [
        "openstl:mmnist_tau_one_ep200",
        "openstl:mmnist_tau_one_ep2000",
        "openstl:taxibj_simvp_gsta_cos_ep50",
        "openstl:weather_t2m_tau_cos_ep50",
    ]
    assert stzoo.list_models("openstl:taxibj*") == ["openstl:taxibj_simvp_gsta_cos_ep50"]
    assert "openstl:mmnist_tau_one_ep200" not in stzoo.list_models()  # plain listing: the zoo's own entries
    info = stzoo.info(f"openstl:{TAU}")
    assert info["architecture"] == "tau" and info["reported_by_openstl"]["columns"]["MSE"] == 24.6
    assert info["source"]["url"] == server.url + PATH and info["source"]["sha256"] == "not pinned"
    assert info["cached"] is False and server.log == []


def test_unknown_and_unimplemented_names(server):
    with pytest.raises(UnknownModelError, match="mmnist_tau_one_ep200"):
        stzoo.load("openstl:mmnist_tau_one_ep20")
    with pytest.raises(UnknownModelError):
        stzoo.load("openstl:../../etc/passwd")
    with pytest.raises(WeightsNotAvailableError, match="does not implement"):
        stzoo.load("openstl:mmnist_futurenet_one_ep200")
    assert server.log == []


def test_404_names_url_and_cache(server, tmp_path):
    server.faults[PATH] = ["404"]
    with pytest.raises(WeightsNotAvailableError) as err:
        stzoo.load(f"openstl:{TAU}")
    assert server.url + PATH in str(err.value) and str(_cache(tmp_path)) in str(err.value)
    assert not (_cache(tmp_path) / "models" / TAU).exists()


def test_500_then_success(server):
    server.faults[PATH] = ["500", "503"]
    stzoo.load(f"openstl:{TAU}")
    assert [s for _, s in server.requests(PATH)] == [500, 503, 200]


@pytest.mark.parametrize(
    "fault,statuses",
    [
        ("drop", [200, 206]),  # a dropped connection: the rest is asked for with Range and appended
        ("ignore-range", [200, 200]),  # the server ignores Range: the file is fetched from the start
        ("bad-range", [200, 206, 200]),  # a Content-Range that does not continue the file: restart
    ],
)
def test_dropped_connection_resumes(server, fault, statuses):
    half = len(FILES[PATH]) // 2
    server.faults[PATH] = [f"drop:{half}"] + ([fault] if fault != "drop" else [])
    p = stzoo.load(f"openstl:{TAU}")
    got = server.requests(PATH)
    assert [s for _, s in got] == statuses
    start = int(got[1][0].removeprefix("bytes=").rstrip("-"))  # what was written before the drop
    assert 0 < start <= half
    p.predict(_frames(p))


def test_pinned_sha256_wrong_bytes_refused_nothing_cached(server, tmp_path, monkeypatch):
    import hashlib

    monkeypatch.setitem(zoo.PINNED_SHA256, TAU, hashlib.sha256(FILES[PATH]).hexdigest())
    server.faults[PATH] = ["wrong-bytes", "wrong-bytes"]
    with pytest.raises(ChecksumError, match="pins"):
        stzoo.load(f"openstl:{TAU}")
    assert not (_cache(tmp_path) / "models" / TAU).exists()
    assert not any((_cache(tmp_path) / "downloads").iterdir())
    server.faults[PATH] = ["wrong-bytes"]  # one bad copy, then the right one
    stzoo.load(f"openstl:{TAU}")
    card = (_cache(tmp_path) / "models" / TAU / "README.md").read_text()
    assert "pinned by stzoo and verified" in card


def test_offline_without_cache(server, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(WeightsNotAvailableError, match="STZOO_OFFLINE") as err:
        stzoo.load(f"openstl:{TAU}")
    assert server.url + PATH in str(err.value) and server.log == []


def test_unreachable_server(server, monkeypatch):
    monkeypatch.setenv("STZOO_OPENSTL_ENDPOINT", "http://127.0.0.1:9")  # nothing listens on the discard port
    with pytest.raises(WeightsNotAvailableError, match="cannot reach"):
        stzoo.load(f"openstl:{TAU}")


@pytest.mark.parametrize("offline", [False, True])
def test_tampered_cache(server, tmp_path, monkeypatch, offline):
    stzoo.load(f"openstl:{TAU}")
    weights = _cache(tmp_path) / "models" / TAU / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0x01
    weights.write_bytes(bytes(data))
    gets = len(server.requests(PATH))
    if offline:
        monkeypatch.setenv("STZOO_OFFLINE", "1")
        with pytest.raises(ChecksumError, match="changed since it was converted"):
            stzoo.load(f"openstl:{TAU}")
        assert not weights.parent.exists()
    else:
        stzoo.load(f"openstl:{TAU}")
        assert len(server.requests(PATH)) == gets + 1  # purged and fetched again


def test_hostile_answers(server, tmp_path):
    server.faults[PATH] = ["redirect:file:///etc/passwd"]
    with pytest.raises(HubError, match="only http"):
        stzoo.load(f"openstl:{TAU}")
    server.faults[PATH] = ["huge"]
    with pytest.raises(HubError, match="announces"):
        stzoo.load(f"openstl:{TAU}")
    server.faults[PATH] = [f"lie-length:{len(FILES[PATH]) // 3}"]  # announces fewer bytes: a truncated file
    with pytest.raises(stzoo.InputError, match="could not be converted"):
        stzoo.load(f"openstl:{TAU}")
    assert not (_cache(tmp_path) / "models" / TAU).exists()
    assert not any((_cache(tmp_path) / "downloads").glob("*.pth"))
    server.faults[PATH] = [f"redirect:{server.url}{PATH}"]  # an http redirect is followed
    stzoo.load(f"openstl:{TAU}")


def test_deadline(server, monkeypatch):
    monkeypatch.setenv("STZOO_DOWNLOAD_TIMEOUT", "1.5")
    server.faults[PATH] = ["slow"]
    start = time.monotonic()
    with pytest.raises(HubTimeoutError, match="deadline"):
        stzoo.load(f"openstl:{TAU}")
    assert time.monotonic() - start < 6


def test_natural_units(server):
    p = stzoo.load("openstl:taxibj_simvp_gsta_cos_ep50")
    assert p.spec.units is not None and p.spec.channels == 2
    x = np.random.default_rng(1).uniform(-1, 1, (4, 2, 16, 16)).astype(np.float32)
    y = p.predict(x)
    assert y.shape == x.shape and y.dtype == np.float32 and y.min() >= -1 and y.max() <= 1
    # the model sees (x + 1) / 2: the same as feeding that to the bare model
    with torch.no_grad():
        direct = p.model(torch.from_numpy((x + 1) / 2)[None])[0].numpy() * 2 - 1
    np.testing.assert_allclose(y, np.clip(direct, -1, 1), atol=1e-5)
    with pytest.raises(stzoo.InputError, match=r"\[-1, 1\]"):
        p.predict(x * 3)
    w = stzoo.load("openstl:weather_t2m_tau_cos_ep50")
    assert "STANDARDISED" in stzoo.info("openstl:weather_t2m_tau_cos_ep50")["input"]["normalization"]
    z = np.random.default_rng(2).normal(size=(4, 1, 16, 16)).astype(np.float32)
    assert w.predict(z).shape == z.shape


def test_paper_entry_resolves_to_best_reported(server):
    assert zoo.paper_counterpart(stzoo.zoo.manifest.get_entry("tau-mmnist-paper")) == "mmnist_tau_one_ep2000"
    p = stzoo.load("tau-mmnist-paper")
    assert p.name == "tau-mmnist-paper" and p.entry.extra["source"] == "openstl:mmnist_tau_one_ep2000"
    assert [path for path, _, _ in server.log] == ["/mmnist-weights/mmnist_tau_one_ep2000.pth"]
    assert zoo.paper_counterpart(stzoo.zoo.manifest.get_entry("convlstm-mmnist-paper")) is None


_CHILD = """
import copy, json, os, sys
from stzoo.convert.openstl import zoo
cat = json.loads(open(sys.argv[1]).read())
zoo.load_catalog = lambda: copy.deepcopy(cat)
import stzoo
p = stzoo.load("openstl:" + sys.argv[2])
print("ok", p.spec.frames_in)
"""


def test_two_processes_at_once(server, tmp_path):
    cat = tmp_path / "catalog.json"
    cat.write_text(json.dumps(CATALOG))
    env = subprocess_env(OMP_NUM_THREADS="1")
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _CHILD, str(cat), TAU], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        for _ in range(2)
    ]
    outs = [p.communicate(timeout=120) for p in procs]
    for p, (out, err) in zip(procs, outs):
        assert p.returncode == 0, err.decode()[-2000:]
        assert out.decode().strip() == "ok 4"
    assert len(server.requests(PATH)) == 1  # the second waited for the first and used its result


_MIRROR_CHILD = """
import copy, json, sys
from stzoo.convert.openstl import zoo
cat = json.loads(open(sys.argv[1]).read())
zoo.load_catalog = lambda: copy.deepcopy(cat)
import numpy as np
import stzoo
from stzoo.tools.cli import main
rc = main(["hub", "mirror", "openstl:mmnist_tau_one_ep20*", "--namespace", "org"])
p = stzoo.load("hf-hub:org/openstl-mmnist_tau_one_ep200")
q = stzoo.load("openstl:mmnist_tau_one_ep200")
x = np.random.default_rng(0).integers(0, 256, (4, 16, 16), dtype=np.uint8)
print(json.dumps({"rc": rc, "same": bool((p.predict(x) == q.predict(x)).all()), "source": p.entry.extra.get("source")}))
"""


def test_hub_mirror_pushes_to_the_loopback_hub(server, tmp_path):
    from helpers.hf_server import FakeHub

    cat = tmp_path / "catalog.json"
    cat.write_text(json.dumps(CATALOG))
    with FakeHub() as hub:
        env = subprocess_env(
            OMP_NUM_THREADS="1", HF_ENDPOINT=hub.url, HF_HOME=str(tmp_path / "hf"), HF_TOKEN="hf_stzoo_test_token"
        )
        env.pop("HF_HUB_OFFLINE", None)
        run = subprocess.run(
            [sys.executable, "-c", _MIRROR_CHILD, str(cat)], env=env, capture_output=True, text=True, timeout=300
        )
        assert run.returncode == 0, run.stderr[-3000:]
        out = json.loads(run.stdout.strip().splitlines()[-1])
        assert out["rc"] == 0 and out["same"] and out["source"].startswith("hf-hub:org/openstl-mmnist_tau_one_ep200@")
        assert "2 repo(s) pushed under org/" in run.stdout
        repo = hub.repos["org/openstl-mmnist_tau_one_ep200"]
        files = repo["commits"][repo["refs"]["main"]]
        card = files["README.md"].decode()
        assert "model-index:" in card.split("\n---")[0] and "MSE (reported by OpenSTL)" in card
        assert "value: 24.6" in card and "## Origin" in card
        assert json.loads(files["config.json"])["openstl"]["url"] == server.url + PATH


def test_cli_download_and_list(server, tmp_path, capsys):
    from stzoo.cli.main import main

    assert main(["download", f"openstl:{TAU}"]) == 0
    assert "downloaded and converted" in capsys.readouterr().out
    assert main(["download", f"openstl:{TAU}"]) == 0
    assert "already converted" in capsys.readouterr().out
    assert main(["list", "openstl:mmnist*"]) == 0
    out = capsys.readouterr().out
    assert "reported by OpenSTL" in out and f"openstl:{TAU}" in out and "24.6" in out
    assert main(["list", "tau-mmnist-paper"]) == 0
    assert "openstl:mmnist_tau_one_ep2000" in capsys.readouterr().out  # where its weights come from
