"""The README's zoo table is generated from the manifest and must not drift from it."""

import re
from pathlib import Path

from stzoo.data import get_dataset
from stzoo.tools.docs_gen import GENERATED_NOTE
from stzoo.zoo.card import PIPELINE_TAG, display_command
from stzoo.zoo.entry import ZooEntry
from stzoo.zoo.manifest import zoo_table_markdown

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_zoo_table_matches_manifest():
    text = README.read_text(encoding="utf-8")
    assert zoo_table_markdown() in text, (
        "README.md's zoo table is out of date; regenerate it with "
        "`python -c 'from stzoo.zoo.manifest import zoo_table_markdown; print(zoo_table_markdown())'`"
    )


def test_readme_names_the_test_command():
    assert "python -m pytest -q" in README.read_text(encoding="utf-8")


def test_readme_installs_the_test_extra_then_runs_the_tests():
    """The install section: one line installs what the tests need, the next runs them; every extra is
    spelled for a checkout (`pip install -e ".[onnx]"`), since stzoo is not on PyPI."""
    text = README.read_text(encoding="utf-8")
    install = text[text.index("## Install") : text.index("\n## ", text.index("## Install") + 3)]
    lines = [line.split("#")[0].strip() for line in install.splitlines()]
    i = lines.index('pip install -e ".[test]"')
    assert lines[i + 1] == "python -m pytest -q -n 2", install
    assert not re.search(r"pip install [\"']?stzoo\[", text), 'extras must be spelled for a checkout: -e ".[x]"'


def test_license_file_matches_pyproject():
    tomllib = pytest.importorskip("tomllib", reason="tomllib is Python 3.11+")
    project = tomllib.loads((README.parent / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    assert project["license"] == "Apache-2.0" and project["license-files"] == ["LICENSE"]
    text = (README.parent / "LICENSE").read_text(encoding="utf-8")
    for needle in (
        "Apache License",
        "Version 2.0, January 2004",
        "TERMS AND CONDITIONS FOR USE, REPRODUCTION",
        "END OF TERMS AND CONDITIONS",
        "http://www.apache.org/licenses/LICENSE-2.0",
    ):
        assert needle in text, needle


# ---- the docs site's generated pages and the manifest's computed columns ---------------------------------
import json  # noqa: E402

import pytest  # noqa: E402

from stzoo.tools.docs_gen import count_flops, generated_docs, stale_docs, write_docs  # noqa: E402
from stzoo.zoo.manifest import load_manifest, validate_manifest  # noqa: E402

DOCS = README.parent / "docs"


def test_generated_docs_match_manifest():
    stale = stale_docs(DOCS)
    assert not stale, (
        f"docs pages out of date with weights_manifest.json: {stale}; regenerate them with "
        "`stzoo-maint zoo-table --write README.md --docs docs`"
    )


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
    counted = count_flops(ZooEntry.from_dict(name, entry))
    assert counted["flops"] == entry["flops"]["flops"], (
        f"{name}: manifest says {entry['flops']['flops']} FLOPs, FlopCounterMode counts {counted['flops']}; "
        "run `stzoo-maint zoo-stats` and regenerate the docs"
    )
    assert counted["input_shape"] == entry["flops"]["input_shape"]


# ---- model cards: Hub metadata, and no machine-specific paths -------------------------------------
#: an absolute or home path in a shown command: `/work/...`, `/home/alice/...`, `~/...`, `C:\...`
MACHINE_PATH = re.compile(r"(?:^|[\s=`'\"])(?:/(?:work|home|Users|tmp|mnt|root|data|scratch)\b|~/|[A-Za-z]:\\)")


def front_matter_of(text: str) -> dict:
    yaml = pytest.importorskip("yaml")
    assert text.startswith("---\n"), text[:200]
    head, sep, _ = text[4:].partition("\n---\n")
    assert sep, "front matter is not closed by a --- line"
    return yaml.safe_load(head)


def test_model_cards_carry_hub_metadata():
    manifest = load_manifest()
    pages = generated_docs(manifest)
    for name, e in manifest["models"].items():
        if "alias" in e:
            continue
        meta = front_matter_of(pages[f"models/{name}.md"])
        assert meta["library_name"] == "stzoo" and meta["pipeline_tag"] == PIPELINE_TAG == "video-to-video", name
        assert meta["license"] == e["license"].lower(), name
        assert {"stzoo", "video-prediction", e["architecture"].replace("_", "-")} <= set(meta["tags"]), name
        assert "base_model" not in meta, name  # zoo entries are trained from scratch or from their own release
        if e.get("weights") and "Moving MNIST" in e["metrics"]["dataset"]:
            assert meta["datasets"] == list(get_dataset("moving_mnist").hub_datasets) == ["ylecun/mnist"], name
            assert "moving-mnist" in meta["tags"], name
        # MkDocs reads the block as page meta: the generated note and the title follow it
        assert pages[f"models/{name}.md"].split("\n---\n", 1)[1].startswith(GENERATED_NOTE)


def test_cards_show_no_machine_specific_paths():
    manifest = load_manifest()
    pages = generated_docs(manifest)
    for rel, text in pages.items():
        for line in text.splitlines():
            assert not MACHINE_PATH.search(line), f"{rel}: {line}"
    # the manifest keeps the full provenance; each card shows the same commands, shortened
    for name, e in manifest["models"].items():
        for cmd in ((e.get("training") or {}).get("command"), (e.get("metrics") or {}).get("command")):
            if cmd:
                assert f"`{display_command(cmd)}`" in pages[f"models/{name}.md"], (name, cmd)


@pytest.mark.parametrize(
    "recorded, shown",
    [
        (
            "stzoo train tau-mmnist-s --out /work/runs/tau-s --mnist-dir /work/shared/data/mnist --epochs 5",
            "stzoo train tau-mmnist-s --out runs/tau-s --mnist-dir data/mnist --epochs 5",
        ),
        (
            "stzoo finetune tau-mmnist --data /home/alice/clips/a.mp4 ~/b.gif --out=/tmp/x/ft --val 0",
            "stzoo finetune tau-mmnist --data clips/a.mp4 b.gif --out=x/ft --val 0",
        ),
        ("stzoo predict x --input 'C:\\Users\\bob\\clip.gif'", "stzoo predict x --input bob/clip.gif"),
        ("stzoo predict x --input '/data/my clips/a b.gif'", "stzoo predict x --input 'my clips/a b.gif'"),
        # already machine-independent: kept exactly
        (
            "stzoo zoo-stats --speed --machine 'AMD EPYC; 2 cores'",
            "stzoo zoo-stats --speed --machine 'AMD EPYC; 2 cores'",
        ),
        ("stzoo release c --run runs/c --mnist-dir ../mnist", "stzoo release c --run runs/c --mnist-dir ../mnist"),
        ("stzoo.training.finetune", "stzoo.training.finetune"),
    ],
)
def test_display_command_cuts_machine_paths(recorded, shown):
    assert display_command(recorded) == shown


def test_generated_cards_are_recognised_with_front_matter(tmp_path):
    """write_docs deletes the cards of removed entries: it must still recognise its own pages now that
    they open with front matter, and never touch a hand-written page."""
    manifest = load_manifest()
    write_docs(tmp_path, manifest)
    (tmp_path / "models" / "handwritten.md").write_text("---\ntitle: mine\n---\n# Mine\n", encoding="utf-8")
    smaller = json.loads(json.dumps(manifest))
    del smaller["models"]["tau-mmnist-paper"]
    write_docs(tmp_path, smaller)
    assert not (tmp_path / "models" / "tau-mmnist-paper.md").exists()
    assert (tmp_path / "models" / "handwritten.md").exists()
