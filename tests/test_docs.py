"""The README's zoo table is generated from the manifest and must not drift from it."""

from pathlib import Path

from stzoo.manifest import zoo_table_markdown

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_zoo_table_matches_manifest():
    text = README.read_text(encoding="utf-8")
    assert zoo_table_markdown() in text, (
        "README.md's zoo table is out of date; regenerate it with "
        "`python -c 'from stzoo.manifest import zoo_table_markdown; print(zoo_table_markdown())'`")


def test_readme_names_the_test_command():
    assert "python -m pytest -q" in README.read_text(encoding="utf-8")


# ---- the docs site's generated pages and the manifest's computed columns ---------------------------------
import json  # noqa: E402

import pytest  # noqa: E402

from stzoo.docs_gen import count_flops, generated_docs, stale_docs, write_docs  # noqa: E402
from stzoo.manifest import load_manifest, validate_manifest  # noqa: E402

DOCS = README.parent / "docs"


def test_generated_docs_match_manifest():
    stale = stale_docs(DOCS)
    assert not stale, (f"docs pages out of date with weights_manifest.json: {stale}; regenerate them with "
                       "`stzoo zoo-table --write README.md --docs docs`")


def test_every_zoo_entry_has_a_model_card_with_its_numbers():
    manifest = load_manifest()
    pages = generated_docs(manifest)
    for name, e in manifest["models"].items():
        card = pages[f"models/{name}.md"]
        if "alias" in e:
            assert f"({e['alias']}.md)" in card
            continue
        assert f"{e['parameters']:,}" in card
        if e.get("weights"):
            assert e["weights"]["sha256"] in card and f"{e['metrics']['mse']:.4f}" in card
        if e.get("flops"):
            assert f"{e['flops']['flops'] / 1e9:.2f} GFLOPs" in card
        assert f"[`{name}`](models/{name}.md)" in pages["zoo.md"]


def test_write_docs_regenerates_and_removes_stale_cards(tmp_path):
    manifest = load_manifest()
    write_docs(tmp_path, manifest)
    assert stale_docs(tmp_path, manifest) == []
    smaller = json.loads(json.dumps(manifest))
    del smaller["models"]["tau-mmnist"]
    smaller["models"]["tau-mmnist-s"]["metrics"]["mse"] = 1.0
    assert set(stale_docs(tmp_path, smaller)) == {"zoo.md", "models/tau-mmnist-s.md", "models/tau-mmnist.md"}
    changed = write_docs(tmp_path, smaller)
    assert not (tmp_path / "models" / "tau-mmnist.md").exists() and len(changed) == 3
    assert "| 1.0 |" in (tmp_path / "zoo.md").read_text(encoding="utf-8")


def test_manifest_with_flops_and_speed_follows_the_schema():
    pytest.importorskip("jsonschema")
    manifest = load_manifest()
    validate_manifest(manifest)
    assert any("flops" in e for e in manifest["models"].values())


@pytest.mark.parametrize("name", sorted(n for n, e in load_manifest()["models"].items() if "flops" in e))
def test_stored_flops_are_what_flop_counter_counts(name):
    entry = load_manifest()["models"][name]
    counted = count_flops(entry)
    assert counted["flops"] == entry["flops"]["flops"], (
        f"{name}: manifest says {entry['flops']['flops']} FLOPs, FlopCounterMode counts {counted['flops']}; "
        "run `stzoo zoo-stats` and regenerate the docs")
    assert counted["input_shape"] == entry["flops"]["input_shape"]
