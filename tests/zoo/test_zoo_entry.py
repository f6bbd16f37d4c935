"""ZooEntry: a manifest entry as a typed, validated value that gives its JSON document back exactly."""

import copy
import json

import pytest

from stzoo.zoo.manifest import load_manifest


@pytest.mark.parametrize("name", sorted(n for n, e in load_manifest()["models"].items() if "alias" not in e))
def test_zoo_entry_round_trips_every_manifest_entry_exactly(name):
    from stzoo.zoo.entry import ZooEntry

    raw = load_manifest()["models"][name]
    e = ZooEntry.from_dict(name, raw)
    assert json.dumps(e.to_dict()) == json.dumps(raw)  # same keys, values and order: the file is unchanged
    assert e.name == name and e.architecture == raw["architecture"] and dict(e.config) == raw["config"]
    assert e.input.frames_in == raw["input"]["frames_in"] and e.normalization == raw["input"].get("normalization")
    assert e.parameters == raw["parameters"] and e.license == raw["license"]
    if raw.get("weights"):
        assert e.weights.sha256 == raw["weights"]["sha256"] and e.weights.filename == raw["weights"]["filename"]
        assert (e.weights.hub.repo_id if e.weights.hub else None) == (raw["weights"].get("hub") or {}).get("repo_id")
    else:
        assert e.weights is None and not e.has_weights


@pytest.mark.parametrize(
    "field, value, message",
    [
        ("architecture", None, "'architecture'"),
        ("config", "not an object", "field 'config' must be"),
        ("input", {"frames_in": 10}, "'frames_out'"),
        ("input", "64x64", "field 'input' must be"),
        ("parameters", "many", "field 'parameters' must be an integer"),
        ("weights", {"filename": 3, "sha256": "0" * 64}, "field 'filename' must be"),
        ("metrics", [1, 2], "field 'metrics' must be an object"),
    ],
)
def test_zoo_entry_names_the_entry_and_the_field_of_a_malformed_entry(field, value, message):
    from stzoo.errors import ConfigError
    from stzoo.zoo.entry import ZooEntry

    raw = copy.deepcopy(load_manifest()["models"]["tau-mmnist-s"])
    if value is None:
        raw.pop(field)
    else:
        raw[field] = value
    with pytest.raises(ConfigError, match=message) as info:
        ZooEntry.from_dict("tau-broken", raw)
    assert "'tau-broken'" in str(info.value)


def test_there_is_one_input_spec_and_it_round_trips():
    from stzoo.zoo import entry, manifest

    assert manifest.InputSpec is entry.InputSpec  # manifest re-exports the one class entry.py defines
    raw = load_manifest()["models"]["tau-mmnist-s"]["input"]
    spec = entry.InputSpec.from_dict(raw)
    assert spec.to_dict() == {k: v for k, v in raw.items() if k != "normalization"}
