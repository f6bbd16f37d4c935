"""OpenSTL's published checkpoints by name: ``stzoo.load("openstl:<file stem>")``.

OpenSTL (github.com/chengtan9907/OpenSTL, Apache-2.0) publishes its trained models as release assets,
``<endpoint>/<tag>/<stem>.pth``. Every one whose method stzoo implements is a zoo name here,
``openstl:<stem>`` exactly as OpenSTL names the file (:func:`zoo_names`). The facts about each file (tag,
dataset, OpenSTL's config, reported metrics) come from the catalogue (:mod:`stzoo.convert.openstl.catalog`).

On first use, :func:`resolve_openstl`

1. downloads the file (:func:`stzoo.zoo.http.fetch_file`: streamed, resumable, retried, bounded, within a
   deadline) to ``CACHE/openstl/downloads/<stem>.pth``, a name stzoo derives from the catalogue, never from
   the server; ``$STZOO_OPENSTL_ENDPOINT`` replaces the base URL (a mirror, a test server);
2. checks it against the sha256 the package pins for it, where one is pinned (:data:`PINNED_SHA256`; none
   is known today, and the card says "not pinned"): a mismatch is refused and nothing is cached;
3. reads it with ``torch.load(weights_only=True)`` and converts it strictly with the method's importer
   (:func:`stzoo.convert.openstl.from_openstl`), with OpenSTL's config for that dataset and method; where
   that config and the checkpoint's tensor shapes disagree, the shapes win and the card says so;
4. writes a ``save_pretrained`` folder ``CACHE/openstl/models/<stem>/`` (``model.safetensors``,
   ``config.json`` with the dataset's input conventions, ``README.md`` card with origin, OpenSTL's reported
   metrics, license and citation) plus ``openstl.json``, which records the original file's sha256 and size
   and the sha256 of each file of the folder, and deletes the downloaded original.

Later loads use the folder with no network access, after checking every file against ``openstl.json``; a
folder that fails the check is deleted and rebuilt (online) or refused with one clear error (offline:
``$STZOO_OFFLINE=1`` or ``$HF_HUB_OFFLINE=1``). Two processes loading the same name at once take turns
through a lock file, so both succeed. ``CACHE`` is ``$STZOO_CACHE``, else ``$XDG_CACHE_HOME/stzoo``, else
``~/.cache/stzoo``.

The zoo's ``-paper`` entries (``tau-mmnist-paper``, ...), which have no weights trained by stzoo, resolve to
their OpenSTL counterpart: the Moving MNIST file of the same architecture and translator with the best MSE
OpenSTL reports (:func:`paper_counterpart`).
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
from pathlib import Path
from typing import Any

from stzoo.convert.openstl.catalog import load_catalog, stzoo_arch
from stzoo.convert.openstl.core import (
    _SPEC_KEYS,
    OPENSTL_LICENSE,
    OPENSTL_URL,
    map_openstl_state_dict,
    openstl_method,
)
from stzoo.convert.openstl.reading import load_openstl_checkpoint
from stzoo.errors import ConfigError, InputError, StzooError, UnknownModelError, WeightsNotAvailableError
from stzoo.zoo.entry import CARD_NAME, CONFIG_NAME, WEIGHTS_NAME, ZooEntry
from stzoo.zoo.http import fetch_file, file_lock, offline
from stzoo.zoo.hub import ChecksumError, sha256_file
from stzoo.zoo.resolve import Resolved

__all__ = [
    "PREFIX",
    "ENDPOINT_ENV",
    "PINNED_SHA256",
    "MAX_CHECKPOINT_BYTES",
    "endpoint",
    "zoo_names",
    "catalog_entry",
    "arch_for",
    "source_url",
    "cache_folder",
    "model_folder",
    "describe",
    "resolve_openstl",
    "ensure_converted",
    "paper_counterpart",
    "paper_source",
    "mirror_to_hub",
    "hub_repo_name",
    "OPENSTL_CITATION",
]

log = logging.getLogger(__name__)

PREFIX = "openstl:"
#: Environment variable: the base URL of the release files (``<endpoint>/<tag>/<stem>.pth``).
ENDPOINT_ENV = "STZOO_OPENSTL_ENDPOINT"
#: Published file stem → its sha256, where the package pins one. OpenSTL publishes no checksums, and no
#: sha256 was recorded from a download made by a maintainer yet, so none is pinned today.
PINNED_SHA256: dict[str, str] = {}
#: The largest OpenSTL file accepted (the largest published checkpoints are a few hundred MB).
MAX_CHECKPOINT_BYTES = 2 * 2**30
#: What the integrity record of a converted folder is called.
RECORD_NAME = "openstl.json"
#: The values accepted for a model that takes standardised fields (z-scores) where the catalogue gives no range.
RUNTIME_WINDOW = (-10.0, 10.0)
_STEM = re.compile(r"[a-z0-9][a-z0-9_]{0,120}")

OPENSTL_CITATION = """@inproceedings{tan2023openstl,
  title={OpenSTL: A Comprehensive Benchmark of Spatio-Temporal Predictive Learning},
  author={Tan, Cheng and Li, Siyuan and Gao, Zhangyang and Guan, Wenfei and Wang, Zedong and Liu, Zicheng
          and Wu, Lirong and Li, Stan Z},
  booktitle={Conference on Neural Information Processing Systems Datasets and Benchmarks Track},
  year={2023}
}"""


# ---- the catalogue ------------------------------------------------------------------------------------
def endpoint() -> str:
    """The base URL of OpenSTL's release files: ``$STZOO_OPENSTL_ENDPOINT``, else the catalogue's."""
    raw = os.environ.get(ENDPOINT_ENV, "").strip()
    return (raw or load_catalog()["source"]["url_base"]).rstrip("/")


def arch_for(entry: dict[str, Any]) -> str | None:
    """The stzoo architecture that loads catalogue ``entry``'s file, or ``None`` when no importer registered
    in :data:`stzoo.convert.openstl.OPENSTL_METHODS` takes it (a method stzoo does not implement yet): the
    catalogue's :func:`~stzoo.convert.openstl.catalog.stzoo_arch` of OpenSTL's ``method`` and ``model_type``,
    so a method whose importer registers later is picked up with no change here."""
    return stzoo_arch(str(entry.get("openstl_method") or ""), entry.get("model_type"))


def _checkpoints() -> dict[str, dict[str, Any]]:
    return load_catalog()["checkpoints"]


def zoo_names(loadable_only: bool = True) -> list[str]:
    """``openstl:<stem>`` for every catalogue file (with ``loadable_only``: whose method stzoo implements)."""
    return sorted(PREFIX + s for s, e in _checkpoints().items() if not loadable_only or arch_for(e) is not None)


def _stem(name: str) -> str:
    stem = name[len(PREFIX) :] if name.startswith(PREFIX) else name
    if stem.endswith(".pth"):
        stem = stem[:-4]
    return stem


def catalog_entry(name: str) -> dict[str, Any]:
    """The catalogue entry of ``openstl:<stem>`` (or of the bare stem). Raises
    :class:`~stzoo.errors.UnknownModelError` for a name OpenSTL does not publish, with close names."""
    import difflib

    stem = _stem(str(name))
    checkpoints = _checkpoints()
    if _STEM.fullmatch(stem) and stem in checkpoints:
        return {"stem": stem, **checkpoints[stem]}
    close = difflib.get_close_matches(stem, list(checkpoints), n=3)
    hint = f" Did you mean {', '.join(PREFIX + c for c in close)}?" if close else ""
    raise UnknownModelError(
        f"{PREFIX}{stem[:120]} is not one of OpenSTL's published checkpoints.{hint} See "
        f"stzoo.list_models('openstl:*') or `stzoo list 'openstl:*'` (names are OpenSTL's file names, "
        "e.g. openstl:mmnist_tau_one_ep200)."
    )


def source_url(entry: dict[str, Any]) -> str:
    """``<endpoint>/<tag>/<file>`` of a catalogue entry."""
    return f"{endpoint()}/{entry['tag']}/{entry['file']}"


def cache_folder() -> Path:
    """``CACHE/openstl`` (``$STZOO_CACHE``, else ``$XDG_CACHE_HOME/stzoo``, else ``~/.cache/stzoo``)."""
    from stzoo.data.moving_mnist import cache_root

    return cache_root() / "openstl"


def model_folder(name: str) -> Path:
    """The converted folder of ``openstl:<stem>`` (it may not exist yet)."""
    return cache_folder() / "models" / catalog_entry(name)["stem"]


def _dataset(entry: dict[str, Any]) -> dict[str, Any]:
    return load_catalog()["datasets"].get(entry["dataset"], {})


def describe(name: str) -> dict[str, Any]:
    """What :func:`stzoo.info` shows for ``openstl:<stem>``, from the catalogue (nothing is downloaded)."""
    entry = catalog_entry(name)
    stem = entry["stem"]
    arch = arch_for(entry)
    folder = cache_folder() / "models" / stem
    out: dict[str, Any] = {
        "name": PREFIX + stem,
        "architecture": arch,
        "loadable": arch is not None,
        "source": {
            "url": source_url(entry),
            "tag": entry["tag"],
            "file": entry["file"],
            "sha256": PINNED_SHA256.get(stem, "not pinned"),
        },
        "dataset": entry["dataset"],
        "input": _input_spec(entry),
        "openstl": {k: entry.get(k) for k in ("openstl_method", "model_type", "label", "setting", "config_file")},
        "openstl_config": entry.get("config", {}),
        "reported_by_openstl": entry.get("reported", {}),
        "license": OPENSTL_LICENSE,
        "cached": (folder / RECORD_NAME).is_file(),
    }
    if entry.get("notes"):
        out["notes"] = entry["notes"]
    return out


# ---- the dataset's input conventions -----------------------------------------------------------------
def _input_spec(entry: dict[str, Any]) -> dict[str, Any]:
    """The ``input`` block of the converted config.json: frames, size, channels, the values the model sees,
    and how the dataset's natural units become those values (``units``: natural = model × scale + offset)."""
    ds = _dataset(entry)
    spec: dict[str, Any] = {k: ds[k] for k in ("frames_in", "frames_out", "channels", "height", "width") if k in ds}
    norm = ds.get("normalisation") or {}
    kind = norm.get("kind")
    units = ds.get("natural_units", "")
    vr = ds.get("value_range")
    if kind == "runtime" and not vr:  # standardised values: unbounded; this window holds all but freak values
        vr = list(RUNTIME_WINDOW)
    spec["value_range"] = [float(v) for v in (vr or (0.0, 1.0))]
    if kind == "scale" and float(norm.get("scale", 0)) == 255.0:
        spec["normalization"] = f"{units}: uint8 / 255" if units else "uint8 / 255"
    elif kind == "minmax":
        lo, hi = float(norm["min"]), float(norm["max"])
        vr = spec["value_range"]
        scale = (hi - lo) / (vr[1] - vr[0])
        spec["units"] = {"offset": lo - vr[0] * scale, "scale": scale, "natural": units}
        spec["normalization"] = f"min-max: model value = (x - {lo:g}) / ({hi:g} - {lo:g}) for x in {units}"
    elif kind == "standardise":
        mean, std = norm["mean"], norm["std"]
        if isinstance(mean, (int, float)) and isinstance(std, (int, float)):
            spec["units"] = {"offset": float(mean), "scale": float(std), "natural": units}
        spec["normalization"] = f"standardised: (x - {mean}) / {std} for x in {units}"
    elif kind == "runtime":
        spec["normalization"] = (
            f"the model takes and returns STANDARDISED values, not {units or 'natural units'}: "
            f"{norm.get('how', 'computed by OpenSTL at run time')} (the statistics are not published, so stzoo "
            "does not guess them: standardise your fields with them before predict and undo it after; predict "
            f"accepts standardised values in {list(spec['value_range'])})"
        )
        spec["units"] = {"offset": 0.0, "scale": 1.0, "natural": "standardised (z-score) values"}
    elif kind:
        spec["normalization"] = f"{kind}: {json.dumps(norm, sort_keys=True)}"
    return spec


# ---- conversion ----------------------------------------------------------------------------------------
def _model_config(entry: dict[str, Any], arch: str) -> dict[str, Any]:
    """OpenSTL's config values for this file that describe the model or its input (training settings out)."""
    method = openstl_method(arch)
    keep = _SPEC_KEYS | method.config_keys
    cfg = {k: v for k, v in (entry.get("config") or {}).items() if k in keep and v is not None}
    if "method" in cfg and arch_for({"openstl_method": cfg["method"], "model_type": cfg.get("model_type")}) != arch:
        cfg.pop("method")  # e.g. SimVP with model_type 'tau': the TAU importer, which takes the file as TAU
    return cfg


_INPUT_ONLY = ("in_shape", "pre_seq_length", "aft_seq_length", "total_length")
#: config values the tensors cannot tell (E3D-LSTM's conv stride): kept when the tensors overrule the rest
_NOT_IN_TENSORS = ("stride",)


def _convert(entry: dict[str, Any], arch: str, pth: Path) -> tuple[dict[str, Any], dict[str, Any], list[str]]:
    """Read ``pth`` (``weights_only=True``) and map it strictly with OpenSTL's config; where the config
    contradicts the tensors, again with only the input settings (and patch_size), then with the input
    settings alone: the tensors win. Returns the stzoo state dict, the conversion record and notes."""
    state, info = load_openstl_checkpoint(pth)
    cfg = _model_config(entry, arch)
    tries = [cfg, {k: v for k, v in cfg.items() if k in (*_INPUT_ONLY, *_NOT_IN_TENSORS, "patch_size")}]
    tries.append({k: v for k, v in cfg.items() if k in (*_INPUT_ONLY, *_NOT_IN_TENSORS)})
    notes: list[str] = []
    error: ConfigError | None = None
    for i, given in enumerate(tries):
        if i and given == tries[i - 1]:
            continue
        try:
            out, model_cfg, spec, details = map_openstl_state_dict(
                state, arch, given, hyper_parameters=info["hyper_parameters"]
            )
        except ConfigError as exc:
            error = error or exc
            continue
        if error is not None:
            dropped = sorted(set(cfg) - set(given))
            notes.append(
                f"OpenSTL's config ({entry.get('config_file')}) disagrees with the checkpoint's tensor shapes "
                f"({error}); the tensors won: {', '.join(dropped)} were read from the weights instead."
            )
        record = {
            "openstl_model": details["openstl_model"],
            "container": info["container"],
            "prefix": info["prefix"],
            "config_sources": details["config_sources"],
            "tensors_mapped": details["tensors_mapped"],
            "tensors_unused": details["tensors_unused"],
            "placeholders": info["placeholders"],
            "config": model_cfg,
            "input": spec,
        }
        return out, record, notes
    assert error is not None
    raise error


def _record_files(folder: Path, known: dict[str, str] | None = None) -> dict[str, str]:
    """sha256 of each file of a converted folder (``known``: hashes already computed of files written here)."""
    known = known or {}
    return {n: known.get(n) or sha256_file(folder / n) for n in (CONFIG_NAME, WEIGHTS_NAME, CARD_NAME)}


def _card(cfg: dict[str, Any], entry: dict[str, Any], record: dict[str, Any], notes: list[str]) -> str:
    from stzoo.zoo.card import model_card

    text = model_card(cfg)
    stem = entry["stem"]
    reported = entry.get("reported") or {}
    cols = reported.get("columns") or {}
    original = record["original"]
    conv = cfg["openstl"]["conversion"]
    unused = conv.get("tensors_unused") or []
    lines = [
        "## Origin",
        "",
        f"Published by [OpenSTL]({OPENSTL_URL}) (the TAU authors' benchmark library, {OPENSTL_LICENSE}) as the "
        f"release asset `{entry['tag']}/{entry['file']}`; downloaded from `{record['url']}` and converted by "
        "stzoo's OpenSTL importer (strict: every tensor mapped one to one, shapes checked; no value changed).",
        "",
        f"- OpenSTL method: `{entry.get('openstl_method')}`"
        + (f", model_type `{entry['model_type']}`" if entry.get("model_type") else "")
        + f" ({entry.get('label')}, {entry.get('setting')}); OpenSTL model `{conv.get('openstl_model')}`",
        f"- config: OpenSTL's `{entry.get('config_file')}` at commit `{load_catalog()['source'].get('commit', '?')}`",
        f"- original file: {original['size']} bytes, sha256 `{original['sha256']}` "
        + ("(pinned by stzoo and verified)" if original["pinned"] else "(not pinned: no published checksum is known)"),
        f"- {conv.get('tensors_mapped')} tensors mapped; "
        + (f"dropped (OpenSTL's forward never reads them): {', '.join(unused)}" if unused else "none dropped"),
        f"- dataset: `{entry['dataset']}`; input: {cfg['input'].get('normalization', 'values in [0, 1]')}",
        *[f"- {n}" for n in notes],
        *([f"- catalogue note: {entry['notes']}"] if entry.get("notes") else []),
        "",
        "## Metrics reported by OpenSTL",
        "",
        f"Reported by OpenSTL in `{reported.get('table', '?')}` ({reported.get('section', '?')}), on OpenSTL's "
        "test split; not measured by stzoo.",
        "",
    ]
    if cols:
        lines += [
            "| " + " | ".join(cols) + " |",
            "|" + "---|" * len(cols),
            "| " + " | ".join(map(str, cols.values())) + " |",
        ]
    else:
        lines.append("None recorded.")
    lines += ["", "## How to cite", "", "```bibtex", OPENSTL_CITATION, "```", "", "and the method's own paper.", ""]
    text = text.replace("\n## Architecture\n", "\n" + "\n".join(lines) + "\n## Architecture\n", 1)
    text = _with_model_index(text, cfg, entry)
    return text.replace('"path/to/this/folder"', f'"{PREFIX}{stem}"')


_NOT_METRICS = ("PARAMS", "FLOPS", "FPS")


def _with_model_index(card: str, cfg: dict[str, Any], entry: dict[str, Any]) -> str:
    """Add the Hub's ``model-index`` (OpenSTL's reported numeric metrics, each named as reported by OpenSTL,
    with the table as source) to the card's YAML front matter."""
    reported = entry.get("reported") or {}
    metrics = [
        (k, v)
        for k, v in (reported.get("columns") or {}).items()
        if isinstance(v, (int, float)) and not isinstance(v, bool) and not k.upper().startswith(_NOT_METRICS)
    ]
    if not metrics or not card.startswith("---\n"):
        return card
    commit = load_catalog()["source"].get("commit", "HEAD")
    table = reported.get("table", "")
    q = json.dumps  # a JSON string is a valid YAML scalar
    lines = [
        "model-index:",
        f"- name: {q(cfg['name'])}",
        "  results:",
        "  - task:",
        "      type: video-to-video",
        "      name: Spatiotemporal forecasting",
        "    dataset:",
        f"      name: {q(entry['dataset'])}",
        f"      type: {q(entry['dataset'])}",
        "    metrics:",
    ]
    for key, value in metrics:
        slug = re.sub(r"[^a-z0-9]+", "_", key.lower()).strip("_") or "metric"
        lines += [f"    - type: {q(slug)}", f"      value: {value}", f"      name: {q(key + ' (reported by OpenSTL)')}"]
    lines += [
        "    source:",
        f"      name: {q('OpenSTL model zoo (' + str(reported.get('section', '')) + ')')}",
        f"      url: {q(f'{OPENSTL_URL}/blob/{commit}/{table}')}",
    ]
    end = card.index("\n---", 4)
    return card[:end] + "\n" + "\n".join(lines) + card[end:]


def _build(entry: dict[str, Any], arch: str, pth: Path, original: dict[str, Any], url: str, target: Path) -> None:
    """Convert ``pth`` into the folder ``target`` (written under a temporary name, flushed, then renamed)."""
    import secrets

    from safetensors.torch import save_file

    from stzoo.runtime import fsync_path
    from stzoo.version import __version__
    from stzoo.zoo.entry import FORMAT_VERSION
    from stzoo.zoo.folder import read_config
    from stzoo.zoo.hub import check_finite

    stem = entry["stem"]
    state, conv, notes = _convert(entry, arch, pth)
    check_finite(state, pth)  # NaN / inf weights: refused before anything is cached
    spec = _input_spec(entry)
    got = conv.pop("input")
    model_cfg = conv.pop("config")
    for key in ("frames_in", "frames_out", "channels", "height", "width"):
        if key in spec and spec[key] != got[key]:
            notes.append(
                f"the dataset's {key} is {spec[key]}, the converted model's {got[key]} (OpenSTL's config and the "
                "tensors); the model's value is used"
            )
        spec[key] = got[key]
    record = {
        "stem": stem,
        "url": url,
        "tag": entry["tag"],
        "file": entry["file"],
        "original": {**original, "pinned": stem in PINNED_SHA256},
        "stzoo_version": __version__,
    }
    cfg: dict[str, Any] = {
        "stzoo_format": FORMAT_VERSION,
        "library": "stzoo",
        "stzoo_version": __version__,
        "name": PREFIX + stem,
        "architecture": arch,
        "config": model_cfg,
        "input": spec,
        "description": f"OpenSTL's published {entry.get('label')} checkpoint `{entry['file']}` ({entry['dataset']}, "
        f"{entry.get('setting')}), converted to stzoo's `{arch}`.",
        "license": OPENSTL_LICENSE,
        "dataset": entry["dataset"],
        "openstl": {
            **record,
            "config_file": entry.get("config_file"),
            "reported_by_openstl": entry.get("reported", {}),
            "conversion": conv,
            "notes": notes,
        },
    }
    staging = target.with_name(f".{target.name}.stzoo-tmp-{secrets.token_hex(6)}")
    try:
        staging.mkdir(parents=True)
        weights = staging / WEIGHTS_NAME
        meta = json.dumps({"arch": arch, "config": model_cfg}, sort_keys=True)
        save_file(state, str(weights), metadata={"stzoo": meta})
        weights_sha = sha256_file(weights)  # hashed once: the largest file (paper-size models: hundreds of MB)
        cfg["weights"] = {"filename": WEIGHTS_NAME, "sha256": weights_sha, "size": weights.stat().st_size}
        (staging / CONFIG_NAME).write_text(json.dumps(cfg, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        read_config(staging / CONFIG_NAME)  # what later loads check
        ZooEntry.from_dict(None, {k: v for k, v in cfg.items() if k not in ("stzoo_format", "library")})
        (staging / CARD_NAME).write_text(_card(cfg, entry, record, notes), encoding="utf-8")
        record["files"] = _record_files(staging, {WEIGHTS_NAME: weights_sha})
        (staging / RECORD_NAME).write_text(json.dumps(record, indent=2, sort_keys=True) + "\n", encoding="utf-8")
        for name in (WEIGHTS_NAME, CONFIG_NAME, CARD_NAME, RECORD_NAME):
            fsync_path(staging / name)
        if target.exists():
            shutil.rmtree(target)
        os.replace(staging, target)
        fsync_path(target.parent)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _folder_problem(folder: Path) -> str | None:
    """Why the converted ``folder`` cannot be trusted (``None``: every file matches ``openstl.json``)."""
    try:
        record = json.loads((folder / RECORD_NAME).read_text(encoding="utf-8"))
        files = record["files"]
        if not isinstance(files, dict) or set(files) != {CONFIG_NAME, WEIGHTS_NAME, CARD_NAME}:
            return f"its {RECORD_NAME} does not list {CONFIG_NAME}, {WEIGHTS_NAME} and {CARD_NAME}"
    except (OSError, ValueError, KeyError, TypeError) as exc:
        return f"its {RECORD_NAME} cannot be read ({type(exc).__name__})"
    for name, expected in files.items():
        path = folder / name
        if not path.is_file() or path.is_symlink():
            return f"{name} is missing"
        if sha256_file(path) != expected:
            return f"{name} has changed since it was converted (its sha256 is not the one recorded)"
    return None


def ensure_converted(name: str, *, show_progress: bool | None = None) -> tuple[Path, str]:
    """The verified converted folder of ``openstl:<stem>``, downloading and converting it if needed.

    Returns ``(folder, how)`` with ``how`` ``"openstl-cache"`` (already converted) or ``"download"``.

    Raises:
        UnknownModelError: not a published file; WeightsNotAvailableError: its method is not implemented,
        or it cannot be downloaded (offline, 404, network: the message names the URL and the cache path);
        ChecksumError: a pinned sha256 does not match, or (offline) the cached folder was altered.
    """
    entry = catalog_entry(name)
    stem = entry["stem"]
    arch = arch_for(entry)
    if arch is None:
        raise WeightsNotAvailableError(
            f"{PREFIX}{stem} is OpenSTL's {entry.get('label')} ({entry.get('openstl_method')}"
            + (f", model_type {entry.get('model_type')}" if entry.get("model_type") else "")
            + "), a method stzoo does not implement yet, so it cannot be loaded. stzoo.list_models('openstl:*') "
            "lists the published files that load."
        )
    root = cache_folder()
    target = root / "models" / stem
    with file_lock(target):
        if target.exists():
            problem = _folder_problem(target)
            if problem is None:
                return target, "openstl-cache"
            shutil.rmtree(target, ignore_errors=True)
            if offline():
                raise ChecksumError(
                    f"{PREFIX}{stem}: the converted copy in {target} {problem}, so it was deleted; stzoo is "
                    "offline (STZOO_OFFLINE / HF_HUB_OFFLINE), so it cannot be fetched again here. Load it once "
                    "with network access."
                )
            log.warning("%s%s: %s in %s; deleted it, fetching it again", PREFIX, stem, problem, target)
        url = source_url(entry)
        pth = root / "downloads" / entry["file"]
        if pth.name != f"{stem}.pth":  # the catalogue names the file after the stem; never trust anything else
            raise InputError(f"catalogue entry {stem} names file {entry['file']!r}, expected {stem}.pth")
        fetched = fetch_file(
            url,
            pth,
            max_bytes=MAX_CHECKPOINT_BYTES,
            sha256=PINNED_SHA256.get(stem),
            what=f"{PREFIX}{stem}",
            show_progress=show_progress,
        )
        original = {"sha256": fetched.sha256, "size": fetched.size}
        try:
            _build(entry, arch, pth, original, url, target)
        except StzooError as exc:
            pth.unlink(missing_ok=True)
            raise type(exc)(
                f"{PREFIX}{stem}: the file downloaded from {url} could not be converted: {exc} It was deleted "
                f"from {pth.parent}; nothing was cached."
            ) from exc
        pth.unlink(missing_ok=True)
        return target, "download"


def _resolved(folder: Path, how: str, name: str, *, weights: Any = None, pretrained: bool = True) -> Resolved:
    from stzoo.zoo.folder import entry_from_config, read_config
    from stzoo.zoo.hub import check_local_path, verify

    cfg = read_config(folder / CONFIG_NAME)
    entry = entry_from_config(cfg, cfg.get("openstl", {}).get("url", str(folder)))
    if weights is not None:
        path = check_local_path(weights, "weights file")
        if not path.is_file():
            raise WeightsNotAvailableError(f"weights file {path} does not exist")
        return Resolved(entry, verify(path, None), "file", name, PREFIX)
    if not pretrained:
        return Resolved(entry, None, "none", name, PREFIX)
    return Resolved(entry, folder / WEIGHTS_NAME, how, name, PREFIX)


def resolve_openstl(name: str, *, weights: Any = None, pretrained: bool = True) -> Resolved:
    """The resolver of ``openstl:<stem>`` names (registered with :func:`stzoo.zoo.resolve.register_prefix`).

    The converted folder is needed even with ``pretrained=False`` (the model's config is read from the
    published file's tensors), so the first use downloads it either way; see :func:`ensure_converted`."""
    folder, how = ensure_converted(name)
    return _resolved(folder, how, PREFIX + catalog_entry(name)["stem"], weights=weights, pretrained=pretrained)


# ---- the -paper entries ------------------------------------------------------------------------------
def _reported_mse(entry: dict[str, Any]) -> float:
    cols = (entry.get("reported") or {}).get("columns") or {}
    for key, value in cols.items():
        if key.upper().startswith("MSE"):
            try:
                return float(value)
            except (TypeError, ValueError):
                break
    return float("inf")


def paper_counterpart(zoo_entry: ZooEntry) -> str | None:
    """The OpenSTL file a weight-less ``-paper`` zoo entry stands for: among the Moving MNIST (``mmnist``)
    files that load into the entry's architecture (and, for SimVP, its translator), the one with the best MSE
    OpenSTL reports (ties: the file name). ``None`` for other entries or when there is none."""
    if not (zoo_entry.name or "").endswith("-paper"):
        return None
    want_type = str(zoo_entry.config.get("model_type") or "").lower() or None
    best: tuple[float, str] | None = None
    for stem, entry in _checkpoints().items():
        if entry.get("dataset") != "mmnist" or arch_for(entry) != zoo_entry.architecture:
            continue
        if want_type is not None and str(entry.get("model_type") or "").lower() not in (want_type, ""):
            continue
        key = (_reported_mse(entry), stem)
        if best is None or key < best:
            best = key
    return best[1] if best else None


def paper_source(zoo_entry: ZooEntry) -> Resolved | None:
    """The weights source for ``-paper`` entries (registered with
    :func:`stzoo.zoo.resolve.register_weights_source`): their OpenSTL counterpart, converted; the Predictor
    keeps the zoo name and its entry records ``openstl:<stem>`` as its source."""
    stem = paper_counterpart(zoo_entry)
    if stem is None:
        return None
    folder, how = ensure_converted(PREFIX + stem)
    found = _resolved(folder, how, zoo_entry.name or PREFIX + stem)
    extra = {**found.entry.extra, "source": PREFIX + stem, "paper_entry": zoo_entry.name}
    return Resolved(found.entry.replace(extra=extra), found.weights_path, how, zoo_entry.name, PREFIX)


# ---- mirroring on the Hugging Face Hub ---------------------------------------------------------------
def hub_repo_name(name: str) -> str:
    """The Hub repo name an OpenSTL file is mirrored under: ``openstl-<stem>`` (``_`` kept)."""
    return "openstl-" + catalog_entry(name)["stem"]


def mirror_to_hub(
    pattern: str,
    namespace: str,
    *,
    revision: str | None = None,
    private: bool | None = None,
    token: str | None = None,
    dry_run: bool = False,
    log_fn: Any = print,
) -> dict[str, str]:
    """Convert every loadable ``openstl:`` name matching ``pattern`` and push its folder (config.json,
    model.safetensors, README.md card with ``model-index`` and origin) to ``<namespace>/openstl-<stem>``
    through :func:`stzoo.zoo.upload.push_folder`. Returns repo id → commit (``"dry-run"`` with ``dry_run``).

    Once pushed, ``stzoo.load("hf-hub:<namespace>/openstl-<stem>")`` loads the same weights, checksummed,
    through the Hub code path."""
    import fnmatch

    from stzoo.zoo.hub import validate_repo_id
    from stzoo.zoo.upload import push_folder

    names = [n for n in zoo_names() if fnmatch.fnmatchcase(n, pattern)]
    if not names:
        raise UnknownModelError(f"no loadable OpenSTL checkpoint matches {pattern!r} (see stzoo list 'openstl:*')")
    out: dict[str, str] = {}
    for i, name in enumerate(names, 1):
        repo_id = validate_repo_id(f"{namespace}/{hub_repo_name(name)}")
        if dry_run:
            out[repo_id] = "dry-run"
            log_fn(f"[{i}/{len(names)}] {name} -> {repo_id} (dry run)")
            continue
        folder, _ = ensure_converted(name)
        out[repo_id] = push_folder(
            folder,
            repo_id,
            revision=revision,
            private=private,
            token=token,
            commit_message=f"Mirror OpenSTL's {catalog_entry(name)['file']} (converted by stzoo)",
        )
        log_fn(f"[{i}/{len(names)}] {name} -> {repo_id}@{out[repo_id]}")
    return out
