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
