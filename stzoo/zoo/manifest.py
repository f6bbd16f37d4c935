"""The weights manifest: which zoo names exist, their architecture, config, input spec, weights and
measured metrics. The file ships inside the package (``stzoo/weights_manifest.json``; the repo root
has a link to it) and is validated against ``stzoo/weights_manifest.schema.json``.
"""

from __future__ import annotations

import copy
import json
from functools import lru_cache
from importlib import resources
from typing import Any

from stzoo.data.registry import DATASETS, dataset_for_baseline
from stzoo.errors import UnknownModelError
from stzoo.zoo.entry import InputSpec, ZooEntry

__all__ = [
    "InputSpec",
    "load_manifest",
    "load_schema",
    "validate_manifest",
    "resolve_name",
    "get_entry",
    "MANIFEST_FILE",
    "zoo_table_markdown",
    "format_gflops",
    "format_speed",
]

MANIFEST_FILE = "weights_manifest.json"
SCHEMA_FILE = "weights_manifest.schema.json"


def _read_package_json(name: str) -> dict[str, Any]:
    return json.loads(resources.files("stzoo").joinpath(name).read_text(encoding="utf-8"))


@lru_cache(maxsize=1)
def _manifest_cached() -> dict[str, Any]:
    return _read_package_json(MANIFEST_FILE)


def load_manifest() -> dict[str, Any]:
    """The packaged manifest (a fresh copy: callers may modify it)."""
    return copy.deepcopy(_manifest_cached())


def load_schema() -> dict[str, Any]:
    return _read_package_json(SCHEMA_FILE)


def validate_manifest(manifest: dict[str, Any]) -> None:
    """Raise ``jsonschema.ValidationError`` if ``manifest`` does not follow the schema, and
    ``ValueError`` if an alias points nowhere. Needs the optional ``jsonschema`` package."""
    import jsonschema

    jsonschema.validate(manifest, load_schema())
    models = manifest["models"]
    for name, entry in models.items():
        if "alias" in entry and entry["alias"] not in models:
            raise ValueError(f"alias {name} -> {entry['alias']} points at no entry")
        if "alias" in entry and "alias" in models[entry["alias"]]:
            raise ValueError(f"alias {name} -> {entry['alias']} points at another alias")
        if "alias" not in entry:
            from stzoo.models import make_config  # every entry names a registered architecture and a valid config

            make_config(entry["architecture"], entry["config"])
        if "dataset" in entry and entry["dataset"] not in DATASETS:  # one a dataset file registers
            raise ValueError(f"{name}: unknown dataset {entry['dataset']!r}; known: {', '.join(DATASETS)}")


def _models(manifest: Any) -> dict[str, Any]:
    """The ``models`` object of a manifest, checked: a clear :class:`ConfigError` instead of a KeyError."""
    from stzoo.errors import ConfigError

    models = manifest.get("models") if isinstance(manifest, dict) else None
    if not isinstance(models, dict):
        raise ConfigError(
            "a stzoo manifest is a JSON object whose 'models' field maps zoo names to entries, got "
            + (f"'models' of type {type(models).__name__}" if isinstance(manifest, dict) else type(manifest).__name__)
        )
    return models


def resolve_name(name: str, manifest: dict[str, Any] | None = None) -> str:
    """Follow an alias (``tau-mmnist`` → the entry it names); raise a clear error if unknown."""
    from stzoo.errors import InputTypeError

    if not isinstance(name, str):
        raise InputTypeError(
            f"a zoo model name is a str such as 'tau-mmnist' (see stzoo.list_models()), "
            f"got {type(name).__name__} {str(name)[:80]!r}"
        )
    models = _models(_manifest_cached() if manifest is None else manifest)
    if name not in models:
        import difflib

        longest = max(map(len, models), default=0)
        close = difflib.get_close_matches(name, list(models), n=3) if len(name) <= 2 * longest + 8 else []
        hint = f" Did you mean {', '.join(close)}?" if close else ""
        shown = repr(name) if len(name) <= 100 else f"{name[:100]!r}... ({len(name)} characters)"
        raise UnknownModelError(
            f"unknown model {shown}.{hint} Known: {', '.join(sorted(models))} (see stzoo.list_models())."
        )
    from stzoo.errors import ConfigError

    entry = models[name]
    if not isinstance(entry, dict):
        raise ConfigError(f"zoo entry {name!r}: must be a JSON object, got {type(entry).__name__}")
    if "alias" not in entry:
        return name
    target = entry["alias"]
    if not isinstance(target, str) or not isinstance(models.get(target), dict) or "alias" in models[target]:
        raise ConfigError(
            f"zoo entry {name!r}: field 'alias' must name another (non-alias) entry of the manifest, got "
            f"{str(target)[:80]!r}"
        )
    return target


def get_entry(name: str, manifest: dict[str, Any] | None = None) -> ZooEntry:
    """The manifest entry of ``name`` (aliases followed) as a :class:`~stzoo.zoo.entry.ZooEntry`, named by its
    canonical name and listing the aliases that point at it."""
    manifest = _manifest_cached() if manifest is None else manifest
    real = resolve_name(name, manifest)
    models = _models(manifest)
    aliases = tuple(sorted(n for n, e in models.items() if isinstance(e, dict) and e.get("alias") == real))
    return ZooEntry.from_dict(real, models[real], aliases=aliases)


def format_gflops(entry: ZooEntry) -> str:
    """An entry's stored forward-pass GFLOPs (``entry.flops``) for tables, or "–" if not counted."""
    flops = entry.flops
    return f"{flops['flops'] / 1e9:.2f}" if flops else "–"


def format_speed(entry: ZooEntry, device: str = "cpu") -> str:
    """An entry's measured sequences per second on ``device`` for tables, or "–" if not measured."""
    speed = (entry.speed or {}).get(device)
    if not speed:
        return "–"
    v = speed.get("seq_per_s") if isinstance(speed, dict) else None
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        from stzoo.errors import ConfigError

        raise ConfigError(f"zoo entry {entry.name!r}: field 'speed.{device}.seq_per_s' must be a number, got {v!r}")
    return f"{v:.1f}" if v >= 10 else f"{v:.2f}"


def zoo_table_markdown(manifest: dict[str, Any] | None = None, *, link_prefix: str | None = None) -> str:
    """The model zoo as a Markdown table, generated from the manifest (README and docs use it).

    Args:
        manifest: the manifest dict (default: the packaged one).
        link_prefix: if given, each entry's name links to ``f"{link_prefix}{name}.md"`` (its model
            card in the docs, e.g. ``"models/"``).

    Returns:
        The table: one row per entry (aliases say what they point at) and per baseline.
    """
    manifest = manifest or _manifest_cached()
    models = manifest["models"]
    lines = [
        "| name | arch | params | GFLOPs | weights | test set | MSE ↓ | MAE ↓ | SSIM ↑ | PSNR ↑ | CPU seq/s ↑ | "
        "trained |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]

    def test_set(dataset: str, m: dict[str, Any]) -> str:
        """Which test set, and how many of its sequences, a row's metrics come from."""
        label_ = DATASETS[dataset].label if dataset in DATASETS else dataset
        return f"{label_} ({m['sequences']:,})" if m.get("sequences") else "–"

    def label(name: str) -> str:
        return f"[`{name}`]({link_prefix}{name}.md)" if link_prefix is not None else f"`{name}`"

    for name in sorted(models):
        if "alias" in models[name]:
            lines.append(f"| {label(name)} | alias of {label(models[name]['alias'])} | | | | | | | | | | |")
            continue
        e = ZooEntry.from_dict(name, models[name])
        m = e.metrics or {}
        t = e.training or {}
        fmt = lambda k, d, m=m: f"{m[k]:.{d}f}" if k in m else "–"  # noqa: E731
        seqs = t["epochs"] * t["recipe"].get("epoch_size", 0) if t else 0
        hardware = t["hardware"].split(";")[0] if t else ""  # the part before any remark
        hardware += ")" * (hardware.count("(") - hardware.count(")"))  # close what the cut left open
        trained = f"{t['epochs']:g} ep ({seqs:,.0f} seq), {hardware}" if t else "–"
        if t.get("totals"):  # a ledger of runs: what all of them together cost
            tot = t["totals"]
            hours = ", ".join(
                f"{tot[k]:.2f} {label_} h" for k, label_ in (("cpu_hours", "CPU"), ("gpu_hours", "GPU")) if tot.get(k)
            )
            trained = f"{tot['sequences']:,} seq in {tot['runs']} run(s), {hours or '0 h'}"
        weights = ("undertrained" if e.undertrained else "yes") if e.weights else "not yet"
        lines.append(
            f"| {label(name)} | {e.architecture} | {(e.parameters or 0) / 1e6:.2f} M | {format_gflops(e)} | "
            f"{weights} | {test_set(e.dataset or 'moving_mnist', m)} | "
            f"{fmt('mse', 1)} | {fmt('mae', 1)} | "
            f"{fmt('ssim', 3)} | {fmt('psnr', 2)} | {format_speed(e)} | {trained} |"
        )
    for name, b in sorted(manifest.get("baselines", {}).items()):
        m = b["metrics"]
        spec = dataset_for_baseline(name)
        dataset = spec.name if spec is not None else name
        lines.append(
            f"| *{name}* (baseline) | – | – | – | – | {test_set(dataset, m)} | {m['mse']:.1f} | {m['mae']:.1f} | "
            f"{m['ssim']:.3f} | {m['psnr']:.2f} | – | – |"
        )
    return "\n".join(lines)
