"""Community and fine-tuned checkpoints: the ``save_pretrained`` folder layout, loading it from a
folder or from the Hugging Face Hub (``hf-hub:owner/repo[@revision]``), and publishing it.

A checkpoint folder holds three files::

    config.json        architecture, config, input spec (+ description, license, metrics, training,
                       and the sha256 of model.safetensors)
    model.safetensors  the state dict (safetensors only: never pickle)
    README.md          a generated model card

Loading checks every key and shape (:func:`stzoo.api.load_state_dict_strict`): missing or unexpected
keys are an error, never silently ignored (unlike ``PyTorchModelHubMixin``'s ``strict=False``
default, which is why stzoo does not use that mixin).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from stzoo.errors import ConfigError, InputError, StzooError, WeightsNotAvailableError
from stzoo.hub import (HubError, hub_download, load_safetensors, parse_hub_id, sha256_file, validate_filename,
                       validate_repo_id, validate_revision, locate_weights)

if TYPE_CHECKING:
    from stzoo.predictor import Predictor

__all__ = ["save_pretrained", "load_pretrained", "load_from_hub", "push_to_hub", "push_folder",
           "export_release", "model_card", "CONFIG_NAME", "WEIGHTS_NAME", "CARD_NAME", "FORMAT_VERSION"]

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
CARD_NAME = "README.md"
FORMAT_VERSION = 1
_META_KEYS = ("description", "license", "metrics", "training")


def _version() -> str:
    from stzoo import __version__

    return __version__


# ---- writing ----------------------------------------------------------------------------------
def _predictor_config(predictor: "Predictor", config: dict[str, Any] | None,
                      name: str | None) -> dict[str, Any]:
    """The config.json content (without the weights' hash) for ``predictor``."""
    entry = predictor.entry or {}
    arch = entry.get("architecture") or getattr(predictor.model, "arch", None)
    cfg = config if config is not None else entry.get("config")
    if arch is None or cfg is None:
        raise InputError(
            "this Predictor does not record its architecture config, so the checkpoint could not be "
            "rebuilt: pass it, e.g. p.save_pretrained(dir, config={'hid_S': 16, ...}), or build the "
            "Predictor with stzoo.load(...)")
    spec = predictor.spec.to_dict()
    if "normalization" in entry.get("input", {}):
        spec["normalization"] = entry["input"]["normalization"]
    out: dict[str, Any] = {"stzoo_format": FORMAT_VERSION, "library": "stzoo", "stzoo_version": _version(),
                           "name": name or predictor.name or f"{arch}-custom", "architecture": arch,
                           "config": dict(cfg), "input": spec}
    if predictor.name and entry.get("architecture"):
        out["base_model"] = entry.get("base_model", predictor.name)
    for key in _META_KEYS:
        if key in entry:
            out[key] = entry[key]
    out.setdefault("license", "Apache-2.0")
    return out


def _check_config_rebuilds(cfg: dict[str, Any], state: dict[str, torch.Tensor], source: str) -> None:
    from stzoo.api import load_state_dict_strict
    from stzoo.models import build_model

    load_state_dict_strict(build_model(cfg["architecture"], cfg["config"]), state, source)


def _write_folder(directory: Path, cfg: dict[str, Any], weights_file: Path | None,
                  state: dict[str, torch.Tensor] | None, repo_id: str | None, card: str | None) -> Path:
    from safetensors.torch import save_file

    directory.mkdir(parents=True, exist_ok=True)
    tmp = directory / (WEIGHTS_NAME + ".tmp")
    if state is not None:
        save_file(state, str(tmp), metadata={"format": "pt", "stzoo_architecture": cfg["architecture"]})
    else:
        shutil.copyfile(weights_file, tmp)
    os.replace(tmp, directory / WEIGHTS_NAME)
    w = directory / WEIGHTS_NAME
    cfg = {**cfg, "weights": {"filename": WEIGHTS_NAME, "sha256": sha256_file(w), "size": w.stat().st_size}}
    (directory / CONFIG_NAME).write_text(json.dumps(cfg, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    (directory / CARD_NAME).write_text(card if card is not None else model_card(cfg, repo_id=repo_id),
                                       encoding="utf-8")
    return directory


def save_pretrained(predictor: "Predictor", directory: str | os.PathLike, *, config: dict[str, Any] | None = None,
                    name: str | None = None, repo_id: str | None = None, card: str | None = None) -> Path:
    """Write ``config.json``, ``model.safetensors`` and a ``README.md`` model card to ``directory``.

    Args:
        predictor: the model to save (its current weights, in its current dtype, moved to CPU).
        directory: created if missing; those three files are overwritten.
        config: the architecture config, needed only for a Predictor not made by :func:`stzoo.load`.
        name: the checkpoint's name in the card (default: the Predictor's).
        repo_id: the Hub repo it is meant for (used in the card's "how to load").
        card: your own model card text instead of the generated one.

    Returns:
        The folder. Load it back with ``stzoo.load(directory)``.
    """
    cfg = _predictor_config(predictor, config, name)
    state = {k: v.detach().to("cpu").contiguous().clone() for k, v in predictor.model.state_dict().items()}
    _check_config_rebuilds(cfg, state, "this Predictor (does `config` describe its model?)")
    if repo_id is not None:
        validate_repo_id(repo_id)
    return _write_folder(Path(directory).expanduser(), cfg, None, state, repo_id, card)


def export_release(name: str, directory: str | os.PathLike, *, repo_id: str | None = None) -> Path:
    """Write zoo entry ``name`` in the checkpoint layout, its weights the verified release file copied
    byte for byte (so ``model.safetensors`` keeps the manifest's sha256), for publishing."""
    from stzoo.manifest import get_entry

    entry = get_entry(name)
    loc = locate_weights(entry)
    cfg: dict[str, Any] = {"stzoo_format": FORMAT_VERSION, "library": "stzoo", "stzoo_version": _version(),
                           "name": entry["name"], "architecture": entry["architecture"], "config": entry["config"],
                           "input": entry["input"]}
    for key in _META_KEYS:
        if key in entry:
            cfg[key] = entry[key]
    _check_config_rebuilds(cfg, load_safetensors(loc.path), str(loc.path))
    return _write_folder(Path(directory).expanduser(), cfg, loc.path, None, repo_id, None)


# ---- the model card ----------------------------------------------------------------------------
def _fmt_metric(v: Any) -> str:
    return f"{v:.4g}" if isinstance(v, float) else str(v)


def model_card(cfg: dict[str, Any], *, repo_id: str | None = None) -> str:
    """A Hugging Face model card (README.md with YAML front matter) generated from config.json."""
    name, arch = cfg.get("name", "model"), cfg["architecture"]
    license_id = str(cfg.get("license", "Apache-2.0"))
    spec = cfg["input"]
    metrics, training = cfg.get("metrics") or {}, cfg.get("training") or {}
    load_id = f"hf-hub:{repo_id}" if repo_id else "path/to/this/folder"
    lines = [
        "---",
        "library_name: stzoo",
        f"license: {license_id.lower()}",
        "tags:",
        "- stzoo",
        "- video-prediction",
        "- spatiotemporal-forecasting",
        f"- {arch.replace('_', '-')}",
    ]
    lines += ["---", "", f"# {name}", "", cfg.get("description") or
              f"A {arch} spatiotemporal forecasting model saved with stzoo.", "",
              *([f"Starting point: the stzoo zoo entry `{cfg['base_model']}`.", ""] if cfg.get("base_model") else []),
              "## Architecture", "",
              f"`{arch}` (stzoo {cfg.get('stzoo_version', '?')}), config:", "", "```json",
              json.dumps(cfg["config"], indent=2), "```", "",
              "## Input", "",
              f"- {spec['frames_in']} frames in → {spec['frames_out']} frames out (longer horizons are rolled out)",
              f"- {spec['channels']} channel(s), trained at {spec['height']}×{spec['width']}",
              f"- values in {list(spec.get('value_range', [0.0, 1.0]))}"
              + (f" ({spec['normalization']})" if spec.get("normalization") else ""), "",
              "## Training data", ""]
    if training or metrics:
        if metrics.get("dataset"):
            lines.append(f"- dataset: {metrics['dataset']}")
        for key in ("epochs", "steps", "hardware", "wall_clock_s", "command", "date"):
            if key in training:
                lines.append(f"- {key.replace('_', ' ')}: `{training[key]}`" if key == "command"
                             else f"- {key.replace('_', ' ')}: {training[key]}")
        if training.get("recipe"):
            lines.append(f"- recipe: `{json.dumps(training['recipe'])}`")
    else:
        lines.append("Not recorded for this checkpoint.")
    lines += ["", "## Metrics", ""]
    shown = {k: v for k, v in metrics.items() if k not in ("dataset", "command")}
    if shown:
        lines += ["| metric | value |", "|---|---|"] + [f"| {k} | {_fmt_metric(v)} |" for k, v in shown.items()]
        if metrics.get("command"):
            lines += ["", f"Measured with `{metrics['command']}`."]
    else:
        lines.append("Not measured for this checkpoint.")
    weights = cfg.get("weights") or {}
    lines += ["", "## License", "", license_id, "",
              "## How to load", "", "```python", "import stzoo", "",
              f'p = stzoo.load("{load_id}")  # verified: strict keys, safetensors only',
              "future = p.predict(frames)  # frames: T×H×W uint8 (or float in [0, 1]), see stzoo docs", "```", "",
              "## Files", "",
              f"- `{CONFIG_NAME}`: architecture, config, input spec",
              f"- `{WEIGHTS_NAME}`: weights (safetensors)"
              + (f", sha256 `{weights['sha256']}`" if weights.get("sha256") else ""), ""]
    return "\n".join(lines)


# ---- reading ----------------------------------------------------------------------------------
def _read_config(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise WeightsNotAvailableError(
            f"{path} does not exist: {path.parent} is not a checkpoint folder written by "
            f"Predictor.save_pretrained (it needs {CONFIG_NAME} and {WEIGHTS_NAME})")
    try:
        cfg = json.loads(path.read_text(encoding="utf-8"))
    except ValueError as exc:
        raise ConfigError(f"{path} is not valid JSON: {exc}") from exc
    problems = []
    if not isinstance(cfg, dict):
        raise ConfigError(f"{path} must hold a JSON object, got {type(cfg).__name__}")
    fmt = cfg.get("stzoo_format")
    if not isinstance(fmt, int) or fmt > FORMAT_VERSION:
        problems.append(f"stzoo_format is {fmt!r}, expected an integer <= {FORMAT_VERSION} "
                        "(written by a newer stzoo? upgrade stzoo)")
    if not isinstance(cfg.get("architecture"), str):
        problems.append("'architecture' (a string) is missing")
    if not isinstance(cfg.get("config"), dict):
        problems.append("'config' (an object) is missing")
    spec = cfg.get("input")
    needed = ("frames_in", "frames_out", "channels", "height", "width")
    if not isinstance(spec, dict) or any(k not in spec for k in needed):
        problems.append(f"'input' must be an object with {', '.join(needed)}")
    if problems:
        raise ConfigError(f"{path} is not a valid stzoo checkpoint config: " + "; ".join(problems))
    return cfg


def _build(cfg: dict[str, Any], weights: Path | None, expected_sha: str | None, source: str, *,
           device: str | torch.device | None, dtype: str | torch.dtype | None, batch_size: int) -> "Predictor":
    from stzoo.api import assemble_predictor

    if weights is not None:
        if not weights.is_file():
            raise WeightsNotAvailableError(f"weights file {weights} does not exist")
        if expected_sha is not None:
            actual = sha256_file(weights)
            if actual != expected_sha:
                from stzoo.hub import ChecksumError

                raise ChecksumError(
                    f"{weights} has sha256 {actual}, but {source}/{CONFIG_NAME} says {expected_sha}: the "
                    "checkpoint is corrupt or its files come from different saves. Save or download it again.")
    entry = {k: v for k, v in cfg.items() if k not in ("stzoo_format", "library", "stzoo_version")}
    entry["source"] = source
    return assemble_predictor(entry, weights, name=cfg.get("name"), device=device, dtype=dtype,
                              batch_size=batch_size)


def load_pretrained(directory: str | os.PathLike, *, pretrained: bool = True,
                    weights: str | os.PathLike | None = None, device: str | torch.device | None = None,
                    dtype: str | torch.dtype | None = None, batch_size: int = 16) -> "Predictor":
    """Load a folder written by :func:`save_pretrained` (what ``stzoo.load(folder)`` does)."""
    folder = Path(directory).expanduser()
    cfg = _read_config(folder / CONFIG_NAME)
    if weights is not None:
        w, sha = Path(weights).expanduser(), None
    elif pretrained:
        w, sha = folder / WEIGHTS_NAME, (cfg.get("weights") or {}).get("sha256")
    else:
        w, sha = None, None
    return _build(cfg, w, sha, str(folder), device=device, dtype=dtype, batch_size=batch_size)


def load_from_hub(spec: str, *, pretrained: bool = True, weights: str | os.PathLike | None = None,
                  device: str | torch.device | None = None, dtype: str | torch.dtype | None = None,
                  batch_size: int = 16) -> "Predictor":
    """Load ``"hf-hub:owner/repo[@revision]"``: its config.json and model.safetensors, from the same
    commit, through the Hugging Face cache (``HF_ENDPOINT`` / ``HF_HUB_OFFLINE`` / ``HF_TOKEN`` apply)."""
    repo_id, revision = parse_hub_id(spec)
    what = f"stzoo.load({spec!r})"
    cfg_path, _ = hub_download(repo_id, CONFIG_NAME, revision, what=what, name=spec)
    cfg = _read_config(cfg_path)
    commit = cfg_path.parent.name  # snapshots/<commit>/config.json: fetch the weights from that commit
    pin = commit if len(commit) == 40 and all(c in "0123456789abcdef" for c in commit) else revision
    w: Path | None = None
    sha = None
    if weights is not None:
        w = Path(weights).expanduser()
    elif pretrained:
        w, _ = hub_download(repo_id, WEIGHTS_NAME, pin, what=what, name=spec)
        sha = (cfg.get("weights") or {}).get("sha256")
    return _build(cfg, w, sha, f"hf-hub:{repo_id}@{pin or 'main'}", device=device, dtype=dtype,
                  batch_size=batch_size)


# ---- publishing -------------------------------------------------------------------------------
def push_folder(directory: str | os.PathLike, repo_id: str, *, revision: str | None = None,
                commit_message: str | None = None, private: bool | None = None, token: str | None = None,
                extra_files: dict[str, str] | None = None) -> str:
    """Upload a checkpoint folder to Hub repo ``repo_id`` (created if missing) and return the commit id.

    The folder is loaded first (strict keys, sha256 from config.json), so a broken checkpoint is never
    published. ``extra_files`` maps extra names in the repo to files of the folder (e.g. the release
    file name the manifest uses). The token comes from ``token``, else ``HF_TOKEN`` / ``hf auth login``.
    """
    from huggingface_hub import CommitOperationAdd, HfApi

    folder = Path(directory).expanduser()
    validate_repo_id(repo_id)
    if revision is not None:
        validate_revision(revision)
    load_pretrained(folder)  # refuses a folder that does not load cleanly
    files = {CONFIG_NAME: folder / CONFIG_NAME, WEIGHTS_NAME: folder / WEIGHTS_NAME}
    if (folder / CARD_NAME).is_file():
        files[CARD_NAME] = folder / CARD_NAME
    for name, src in (extra_files or {}).items():
        files[validate_filename(name)] = folder / validate_filename(src)
    api = HfApi(token=token)
    try:
        api.create_repo(repo_id, private=private, exist_ok=True)
        if revision not in (None, "main"):
            api.create_branch(repo_id, branch=revision, exist_ok=True)
        info = api.create_commit(
            repo_id, [CommitOperationAdd(path_in_repo=n, path_or_fileobj=str(p)) for n, p in files.items()],
            commit_message=commit_message or f"Upload {json.loads(files[CONFIG_NAME].read_text())['name']} "
                                             f"with stzoo {_version()}",
            revision=revision)
    except StzooError:
        raise
    except Exception as exc:
        raise HubError(
            f"could not push {folder} to {repo_id}: {type(exc).__name__}: {str(exc).strip().splitlines()[0]}. "
            "Check that you are logged in with write access (`hf auth login` or HF_TOKEN) and HF_ENDPOINT."
        ) from exc
    return str(info.oid)


def push_to_hub(predictor: "Predictor", repo_id: str, *, revision: str | None = None,
                commit_message: str | None = None, private: bool | None = None, token: str | None = None,
                config: dict[str, Any] | None = None, card: str | None = None) -> str:
    """``save_pretrained`` into a temporary folder, then :func:`push_folder`. Returns the commit id."""
    validate_repo_id(repo_id)
    with tempfile.TemporaryDirectory(prefix="stzoo-push-") as tmp:
        save_pretrained(predictor, tmp, config=config, repo_id=repo_id, card=card)
        return push_folder(tmp, repo_id, revision=revision, commit_message=commit_message, private=private,
                           token=token)
