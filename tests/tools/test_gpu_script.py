"""scripts/gpu_train.py, the one command for a GPU session, run end to end on the CPU with a tiny budget:
train → measure → release into a manifest copy → split into ≤ 16 MiB parts → install back, sha256-checked."""

from __future__ import annotations

import json

import numpy as np
import pytest
from safetensors.torch import load_file

from stzoo.models import build_model
from stzoo.zoo.manifest import load_manifest, validate_manifest


def test_split_and_join_round_trip(tmp_path, load_script):
    gpu = load_script("gpu_train")
    src = tmp_path / "w.bin"
    data = np.random.default_rng(0).integers(0, 256, 2500, dtype=np.uint8).tobytes()
    src.write_bytes(data)
    parts = gpu.split_file(src, tmp_path, part_bytes=1000)
    assert [p.stat().st_size for p in parts] == [1000, 1000, 500]
    sha = gpu.join_parts(tmp_path, "w.bin", tmp_path / "joined.bin")
    assert (tmp_path / "joined.bin").read_bytes() == data
    import hashlib

    assert sha == hashlib.sha256(data).hexdigest()
    parts[1].unlink()
    with pytest.raises(SystemExit, match="without gaps"):
        gpu.join_parts(tmp_path, "w.bin", tmp_path / "again.bin")


def test_train_pack_install_on_cpu(tmp_path, fake_mnist, load_script):
    gpu = load_script("gpu_train")
    out, run = tmp_path / "out", tmp_path / "run"
    gpu.main(
        [
            "train",
            "--mnist-dir",
            str(fake_mnist),
            "--out",
            str(out),
            "--run",
            str(run),
            "--name",
            "tau-mmnist-s",
            "--device",
            "cpu",
            "--minutes",
            "0.05",
            "--batch-size",
            "2",
            "--data-workers",
            "1",
            "--eval-sequences",
            "4",
            "--dtype",
            "float32",
        ]
    )
    files = sorted(p.name for p in out.iterdir())
    record = json.loads((out / "entry.json").read_text())
    released = record["entry"]["weights"]["filename"]  # tau-mmnist-s-<sha256[:12]>.safetensors
    assert released == f"tau-mmnist-s-{record['entry']['weights']['sha256'][:12]}.safetensors"
    assert files == ["entry.json", "log.jsonl", "run.json", "summary.json", f"{released}.part0"]
    summary = json.loads((out / "summary.json").read_text())
    assert record["name"] == "tau-mmnist-s"
    entry = record["entry"]
    assert entry["metrics"]["sequences"] == 4 and entry["metrics"]["mse"] == pytest.approx(
        summary["metrics"]["mse"], abs=1e-4
    )
    assert entry["weights"]["sha256"] == summary["weights_sha256"]
    assert entry["training"]["runs"][-1]["time_budget_s"] == pytest.approx(3.0)

    manifest = tmp_path / "manifest.json"
    manifest.write_text(json.dumps(load_manifest()))
    wdir = tmp_path / "weights"
    gpu.main(["install", "--from", str(out), "--weights-dir", str(wdir), "--manifest", str(manifest)])
    m = json.loads(manifest.read_text())
    validate_manifest(m)
    assert m["models"]["tau-mmnist-s"] == entry
    model = build_model("tau", entry["config"])
    model.load_state_dict(load_file(str(wdir / released)))  # the joined file is the release

    (out / f"{released}.part0").write_bytes(b"corrupt")
    with pytest.raises(SystemExit, match="sha256"):
        gpu.main(["install", "--from", str(out), "--weights-dir", str(tmp_path / "w2"), "--manifest", str(manifest)])
    assert not (tmp_path / "w2" / released).exists()
