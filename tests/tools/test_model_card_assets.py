"""scripts/model_card_assets.py: a released field model's rollout table and forecast strip, measured and
drawn from the test set, and the model card that shows them."""

from __future__ import annotations

import copy
import json

import numpy as np
import pytest
import torch
from PIL import Image

import stzoo.zoo.manifest as manifest_mod
from stzoo.data.fields import cached_test_set
from stzoo.tools.docs_gen import model_card_page
from stzoo.tools.release import release_to_manifest
from stzoo.training.evaluation import evaluate
from stzoo.training.train import Recipe, train
from stzoo.zoo.manifest import load_manifest, validate_manifest

TINY = {"frames": 10, "channels": 2, "hid_S": 8, "hid_T": 16, "N_S": 2, "N_T": 2, "mlp_ratio": 2.0}


def release_tiny(tmp_path, monkeypatch, dataset: str = "grayscott", channels: int = 2) -> tuple:
    """A tiny TAU trained for two steps on ``dataset`` and released as ``tiny-<dataset>`` into a manifest
    copy that the package then reads (weights from a folder of the test's)."""
    recipe = Recipe(lr=1e-3, epochs=1, epoch_size=4, batch_size=2, frames_in=10, frames_out=10, loss="mse")
    run = tmp_path / "run"
    cfg = {**TINY, "channels": channels}
    train(
        "tau", cfg, run, recipe=recipe, device="cpu", eval_sequences=0, progress=False, dataset=dataset, dtype="float32"
    )
    m = load_manifest()
    entry = copy.deepcopy(m["models"][f"tau-{dataset}-s"])
    entry.update(config=cfg, description="tiny test model")
    for key in ("weights", "metrics", "training", "rollout", "strip"):
        entry.pop(key, None)
    name = f"tiny-{dataset}"
    m["models"] = {name: entry}
    path = tmp_path / "manifest.json"
    path.write_text(json.dumps(m))
    weights = tmp_path / "weights"
    release_to_manifest(
        name, run, weights_dir=weights, manifest_path=path, eval_sequences=3, progress=False, force=True
    )
    monkeypatch.setenv("STZOO_WEIGHTS_DIR", str(weights))
    monkeypatch.setattr(manifest_mod, "_manifest_cached", lambda: json.loads(path.read_text()))
    return name, path


@pytest.fixture
def released_tiny(tmp_path, monkeypatch):
    return release_tiny(tmp_path, monkeypatch)[1]


@pytest.mark.parametrize("dataset,channels", [("grayscott", 2), ("kolmogorov", 1)])
def test_train_release_load_predict_on_each_field_dataset(tmp_path, monkeypatch, dataset, channels):
    import stzoo

    name, path = release_tiny(tmp_path, monkeypatch, dataset, channels)
    m = json.loads(path.read_text())
    validate_manifest(m)
    entry = m["models"][name]
    assert entry["metrics"]["sequences"] == 3 and entry["metrics"]["dataset"].startswith(f"stzoo {dataset} test")
    base = m["baselines"][f"copy-last-frame ({dataset})"]["metrics"]
    assert base["dataset"] == entry["metrics"]["dataset"] and base["sequences"] == 3
    assert entry["training"]["runs"][0]["dataset"] == dataset
    p = stzoo.load(name)
    seq = cached_test_set(dataset, 1).sequence(0)  # 20×C×64×64 float32 in [0, 1]
    future = p.predict(seq[:10], horizon=15)
    assert future.shape == (15, channels, 64, 64) and future.dtype == np.float32 and np.isfinite(future).all()


def test_rollout_and_strip_are_measured_and_shown_on_the_card(tmp_path, released_tiny, load_script):
    import stzoo

    script = load_script("model_card_assets")
    assets = tmp_path / "assets"
    assert (
        script.main(
            [
                "tiny-grayscott",
                "--sequences",
                "3",
                "--horizon-factor",
                "2",
                "--manifest",
                str(released_tiny),
                "--assets",
                str(assets),
            ]
        )
        == 0
    )
    m = json.loads(released_tiny.read_text())
    validate_manifest(m)
    entry = m["models"]["tiny-grayscott"]
    roll = entry["rollout"]
    assert roll["horizon"] == 20 and roll["sequences"] == 3 and len(roll["mse"]) == len(roll["copy_last_mse"]) == 20
    assert "10→20" in roll["dataset"]

    # copy-last, recomputed here from the same (longer) test sequences
    seq = torch.from_numpy(np.stack([cached_test_set("grayscott", 3, seq_len=30).sequence(i) for i in range(3)]))
    want = (seq[:, 9:10].double() - seq[:, 10:30].double()).pow(2).sum(dim=(2, 3, 4)).mean(dim=0)
    np.testing.assert_allclose(roll["copy_last_mse"], want.numpy(), rtol=1e-4)
    # the first frames_out lead times are the model's own forecast: their mean is evaluate()'s MSE
    p = stzoo.load("tiny-grayscott")
    direct = evaluate(p.model, cached_test_set("grayscott", 3), frames_in=10, frames_out=10, progress=False)
    assert np.mean(roll["mse"][:10]) == pytest.approx(direct["mse"], rel=1e-4)
    assert roll["mse"][15] != pytest.approx(roll["mse"][5])  # the fed-back half is its own forecast

    strip = Image.open(assets / "tiny-grayscott-strip.png")
    assert strip.width > strip.height > 4 * 64 and entry["strip"]["path"] == "assets/tiny-grayscott-strip.png"
    card = model_card_page("tiny-grayscott", m)
    assert "## Forecast" in card and "](../assets/tiny-grayscott-strip.png)" in card
    assert "| 20 | " in card and "U and V side by side" in card
    assert "Copying the last input frame scores MSE" in card  # the dataset's baseline beside the metrics


def test_script_refuses_entries_it_cannot_draw(released_tiny, load_script):
    script = load_script("model_card_assets")
    with pytest.raises(SystemExit):
        script.main(["tau-mmnist-s", "--manifest", str(released_tiny)])  # not in this manifest
    with pytest.raises(SystemExit):
        script.main(["tiny-grayscott", "--manifest", str(released_tiny), "--sequences", "0"])


def test_bf16_metrics_measure_both_precisions_on_the_same_sequences(tmp_path, monkeypatch, load_script):
    name, path = release_tiny(tmp_path, monkeypatch)
    script = load_script("bf16_metrics")
    assert script.main([name, "--sequences", "2", "--manifest", str(path)]) == 0
    m = json.loads(path.read_text())
    validate_manifest(m)
    b = m["models"][name]["bf16"]
    assert b["sequences"] == 2 and b["dataset"].startswith("stzoo grayscott test") and b["cpu"]
    f32, b16 = b["float32"]["mse"], b["bfloat16"]["mse"]
    assert f32 != b16 and b["mse_change_pct"] == pytest.approx(100 * (b16 - f32) / f32, abs=1e-3)
    # the float32 side is the model's ordinary evaluation on those sequences
    import stzoo

    direct = evaluate(stzoo.load(name).model, cached_test_set("grayscott", 2), progress=False)
    assert f32 == pytest.approx(direct["mse"], rel=1e-4)
    card = model_card_page(name, m)
    assert f'stzoo.load("{name}", dtype="bfloat16")' in card and f"{b16:.4f}" in card
    with pytest.raises(SystemExit):
        script.main(["tau-mmnist-paper", "--manifest", str(path)])  # no weights: refused
