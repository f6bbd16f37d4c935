"""Community and fine-tuned checkpoints: the ``save_pretrained`` folder layout (writing it, reading its
config) and publishing it. Loading a folder or ``hf-hub:owner/repo[@revision]`` back into a Predictor
is :mod:`stzoo.api`'s job (``stzoo.load``); this module knows config dicts and state dicts, never how
a Predictor is built.

A checkpoint folder holds three files::

    config.json        architecture, config, input spec (+ description, license, metrics, training,
                       and the sha256 of model.safetensors)
    model.safetensors  the state dict (safetensors only: never pickle)
    README.md          a generated model card

Loading checks every key and shape (:func:`stzoo.models.load_state_dict_strict`): missing or unexpected
keys are an error, never silently ignored (unlike ``PyTorchModelHubMixin``'s ``strict=False``
default, which is why stzoo does not use that mixin).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any

import torch

from stzoo.data.registry import DATASETS
from stzoo.errors import ConfigError, InputError, StzooError, WeightsNotAvailableError
from stzoo.zoo.hub import (HubError, load_safetensors, sha256_file, validate_filename,
                       validate_repo_id, validate_revision, locate_weights)
from stzoo.runtime import fsync_path
from stzoo.interfaces import PredictorLike


__all__ = ["save_pretrained", "read_config", "check_folder", "push_to_hub", "push_folder", "export_release", "model_card",
           "card_metadata", "front_matter", "display_command", "display_text", "PIPELINE_TAG",
           "CONFIG_NAME", "WEIGHTS_NAME", "CARD_NAME", "FORMAT_VERSION"]

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
CARD_NAME = "README.md"
FORMAT_VERSION = 1
_META_KEYS = ("description", "license", "metrics", "training")


def _version() -> str:
    from stzoo.version import __version__

    return __version__


# ---- writing ----------------------------------------------------------------------------------
def _predictor_config(predictor: PredictorLike, config: dict[str, Any] | None,
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
    from stzoo.models import build_model, load_state_dict_strict

    load_state_dict_strict(build_model(cfg["architecture"], cfg["config"]), state, source)


# A folder is written whole under a hidden sibling name (".<name>.stzoo-tmp-<random>") and then put in
# place: a crash at any moment leaves the previous folder or the new one, never a mix of the two.
_TMP_TAG, _OLD_TAG = ".stzoo-tmp-", ".stzoo-old-"
_FOLDER_FILES = (WEIGHTS_NAME, CONFIG_NAME, CARD_NAME)


def _write_files(folder: Path, cfg: dict[str, Any], weights_file: Path | None, state: dict[str, torch.Tensor] | None,
                 repo_id: str | None, card: str | None, suffix: str = "") -> list[Path]:
    """Write weights, config.json (with the weights' sha256) and the card into ``folder``, each name
    followed by ``suffix``, and flush them to disk. Files get the usual mode (0666 less the umask)."""
    import stat

    from safetensors.torch import save_file

    w, c, r = (folder / (n + suffix) for n in _FOLDER_FILES)
    if state is not None:
        # one metadata key: safetensors stores a dict's keys in no fixed order, and two saves of the
        # same weights must give the same file (the same sha256)
        meta = json.dumps({"arch": cfg["architecture"], "config": cfg["config"]}, sort_keys=True)
        save_file(state, str(w), metadata={"stzoo": meta})
    else:
        shutil.copyfile(weights_file, w)
    cfg = {**cfg, "weights": {"filename": WEIGHTS_NAME, "sha256": sha256_file(w), "size": w.stat().st_size}}
    c.write_text(json.dumps(cfg, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    r.write_text(card if card is not None else model_card(cfg, repo_id=repo_id), encoding="utf-8")
    # safetensors writes through a private temporary file (mode 0600): give the weights the mode the
    # umask gave config.json, so the folder can be shared like any other
    os.chmod(w, stat.S_IMODE(c.stat().st_mode))
    for f in (w, c, r):
        fsync_path(f)
    return [w, c, r]


def _sibling(target: Path, tag: str) -> Path:
    import secrets

    return target.with_name(f".{target.name}{tag}{secrets.token_hex(6)}")


def _clean_leftovers(target: Path) -> None:
    """Remove what an interrupted earlier save left next to ``target``: half-written folders, and the
    previous folder (put back in place if that save died between its two renames)."""
    prefix = "." + target.name
    try:
        entries = list(os.scandir(target.parent))
    except OSError:
        return
    olds = []
    for e in entries:
        if e.name.startswith(prefix + _TMP_TAG):
            shutil.rmtree(e.path, ignore_errors=True)
        elif e.name.startswith(prefix + _OLD_TAG):
            olds.append(Path(e.path))
    olds.sort(key=lambda p: p.stat().st_mtime)
    if olds and not os.path.lexists(target):
        os.rename(olds.pop(), target)
    for old in olds:
        shutil.rmtree(old, ignore_errors=True)


def _link_or_copy(src: str, dst: str) -> str:
    try:
        os.link(src, dst)  # the same file under the new folder (an open log keeps writing into it)
    except OSError:
        shutil.copy2(src, dst)
    return dst


def _carry_over(old: Path, new: Path) -> None:
    """Give ``new`` every entry of ``old`` except the files being replaced (hard links where possible)."""
    skip = set(_FOLDER_FILES) | {n + ".tmp" for n in _FOLDER_FILES}
    for e in os.scandir(old):
        if e.name in skip:
            continue
        dst = new / e.name
        if e.is_symlink():
            os.symlink(os.readlink(e.path), dst)
        elif e.is_dir():
            shutil.copytree(e.path, dst, symlinks=True, copy_function=_link_or_copy)
        else:
            _link_or_copy(e.path, str(dst))


def _exchange(a: Path, b: Path) -> bool:
    """Swap two paths in one step (Linux ``renameat2(RENAME_EXCHANGE)``); False where that is not available."""
    import sys

    if not sys.platform.startswith("linux"):
        return False
    try:
        import ctypes

        fn = ctypes.CDLL(None, use_errno=True).renameat2
    except (OSError, AttributeError):
        return False
    fn.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    fn.restype = ctypes.c_int
    at_fdcwd, rename_exchange = -100, 2
    return fn(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) == 0


def _swap_in(staging: Path, target: Path) -> bool:
    """Put the finished folder ``staging`` at ``target``; the previous folder is removed afterwards.
    False (nothing changed) when ``target`` cannot be moved, e.g. it is a mount point."""
    if not os.path.lexists(target):
        os.rename(staging, target)
    elif _exchange(staging, target):
        fsync_path(target.parent)
        shutil.rmtree(staging, ignore_errors=True)  # now the previous folder
        return True
    else:
        old = _sibling(target, _OLD_TAG)
        try:
            os.rename(target, old)
        except OSError:
            return False
        try:
            os.rename(staging, target)
        except BaseException:
            os.rename(old, target)
            raise
        fsync_path(target.parent)
        shutil.rmtree(old, ignore_errors=True)
        return True
    fsync_path(target.parent)
    return True


def _write_in_place(target: Path, *args: Any) -> None:
    """The fallback when the folder cannot be replaced as a whole: each file through a temporary name
    and a rename (each file is whole, but a crash between the renames can mix two saves)."""
    target.mkdir(parents=True, exist_ok=True)
    written = []
    try:
        written = _write_files(target, *args, suffix=".tmp")
        for f in written:
            os.replace(f, f.with_name(f.name[:-len(".tmp")]))
    except BaseException:
        for f in written:
            f.unlink(missing_ok=True)
        raise
    fsync_path(target)


def _write_folder(directory: Path, cfg: dict[str, Any], weights_file: Path | None,
                  state: dict[str, torch.Tensor] | None, repo_id: str | None, card: str | None) -> Path:
    """Write the checkpoint folder ``directory`` so that it is, at every moment, either the previous
    folder or the new one: everything is written under a hidden sibling name, flushed, then swapped in
    (other files of an existing folder are kept). Leftovers of a killed save are removed here."""
    import stat

    target = Path(os.path.abspath(directory))
    if target.is_symlink():  # replace the folder the link points to, keep the link
        target = Path(os.path.realpath(target))
    if target.exists() and not target.is_dir():
        raise InputError(f"{directory} exists and is not a folder: give a folder path to save the checkpoint in")
    target.parent.mkdir(parents=True, exist_ok=True)
    _clean_leftovers(target)
    args = (cfg, weights_file, state, repo_id, card)
    cwd = os.path.realpath(os.getcwd())
    if cwd == os.path.realpath(target) or cwd.startswith(os.path.realpath(target) + os.sep):
        _write_in_place(target, *args)  # moving the working directory away would strand relative paths
        return directory
    staging = _sibling(target, _TMP_TAG)
    try:
        os.mkdir(staging)
    except OSError:  # e.g. no write access to the parent folder
        _write_in_place(target, *args)
        return directory
    try:
        _write_files(staging, *args)
        if target.is_dir():
            _carry_over(target, staging)
            os.chmod(staging, stat.S_IMODE(target.stat().st_mode))
        fsync_path(staging)
        swapped = _swap_in(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    if not swapped:
        shutil.rmtree(staging, ignore_errors=True)
        _write_in_place(target, *args)
    return directory


def save_pretrained(predictor: PredictorLike, directory: str | os.PathLike, *, config: dict[str, Any] | None = None,
                    name: str | None = None, repo_id: str | None = None, card: str | None = None) -> Path:
    """Write ``config.json``, ``model.safetensors`` and a ``README.md`` model card to ``directory``.

    Args:
        predictor: the model to save (its current weights, in its current dtype, moved to CPU).
        directory: created if missing; those three files are replaced (other files are kept). The
            folder is written under a temporary name next to it and then swapped in, so a crash
            leaves either the previous folder or the new one.
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
    from stzoo.zoo.manifest import get_entry

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
#: The Hub task of every stzoo model. stzoo models take a clip (frames) and return the frames that follow:
#: a video in, a video out. Of the Hub's pipeline tags that is ``video-to-video``;
#: ``time-series-forecasting`` is for 1-D / tabular series (its widget and filters expect those), and
#: ``video-classification`` / ``image-to-video`` are other tasks. The ``video-prediction`` and
#: ``spatiotemporal-forecasting`` tags say which kind of video-to-video model this is.
PIPELINE_TAG = "video-to-video"
_PLAIN_YAML = re.compile(r"[A-Za-z][A-Za-z0-9._/+-]*")
_YAML_WORDS = frozenset({"yes", "no", "on", "off", "true", "false", "null", "y", "n", "~"})


def _fmt_metric(v: Any) -> str:
    return f"{v:.4g}" if isinstance(v, float) else str(v)


_DRIVE = re.compile(r"[A-Za-z]:[\\/]")


def _short_path(token: str) -> str:
    """``token`` itself, or, for an absolute or home-relative path, its last two components."""
    if token.startswith("~") or (token.startswith("/") and len(token) > 1) or _DRIVE.match(token):
        parts = [p for p in re.split(r"[\\/]+", token) if p and p != "~" and not _DRIVE.fullmatch(p + "/")]
        return "/".join(parts[-2:]) if parts else token
    return token


def display_command(command: str) -> str:
    """A recorded command line as a model card shows it: absolute and home paths, which only mean
    something on the machine that ran it (and name its users and mounts), are cut to their last two
    components: ``--out /work/runs/tau-s`` → ``--out runs/tau-s``, ``--data /home/alice/clips/a.mp4`` →
    ``--data clips/a.mp4``. Everything else is kept, quoted as before; config.json keeps the full record."""
    import shlex

    try:
        tokens = shlex.split(command)
    except ValueError:  # not a shell line (unbalanced quotes): cut what looks like a path
        return re.sub(r"(?<![\w.])(?:~|/|[A-Za-z]:[\\/])[^\s'\"]*", lambda m: _short_path(m.group(0)), command)
    out = []
    for tok in tokens:
        key, eq, value = tok.partition("=")
        out.append(f"{key}={_short_path(value)}" if eq and key.startswith("-") else _short_path(tok))
    return shlex.join(out) if out else command


#: An absolute path (two components or more), a home path or a Windows drive path inside prose, where it
#: starts a word or follows a quote, bracket or '=' (so "MSE/MAE", "uint8 / 255" and URLs are left alone).
_PATH_IN_TEXT = re.compile(r"(?:(?<=^)|(?<=[\s'\"`(=\[]))(?:~/|/(?=[^\s/]+/)|[A-Za-z]:[\\/])[^\s'\"`,;)\]]+")


def display_text(text: str) -> str:
    """Prose for a model card with the machine-specific paths in it shortened as :func:`display_command`
    does (a fine-tuned model's description names its training videos, e.g. '/home/alice/clips/a.mp4')."""
    return _PATH_IN_TEXT.sub(lambda m: _short_path(m.group(0)), text)


def training_dataset(cfg: dict[str, Any]) -> str | None:
    """The stzoo dataset (``moving_mnist``, ...) the weights were trained on, where the record says."""
    if cfg.get("dataset"):
        return str(cfg["dataset"])
    training = cfg.get("training") or {}
    if training.get("dataset"):
        return str(training["dataset"])
    ran = {r.get("dataset") for r in training.get("runs") or [] if r.get("dataset")}
    if len(ran) == 1:
        return ran.pop()
    if training and "moving mnist" in str((cfg.get("metrics") or {}).get("dataset", "")).lower():
        return "moving_mnist"
    return None


def _hub_base_model(base: str) -> str | None:
    """The Hub model id of a base model named in config.json (a zoo name, ``hf-hub:owner/name`` or
    ``owner/name``), or None when it has no Hub repo (a local folder, an unreleased entry)."""
    from stzoo.zoo.hub import HUB_PREFIX, InvalidHubIdError, parse_hub_id

    if base.startswith(HUB_PREFIX):
        try:
            return parse_hub_id(base)[0]
        except InvalidHubIdError:
            return None
    try:
        from stzoo.zoo.manifest import get_entry

        hub = (get_entry(base).get("weights") or {}).get("hub")
        return hub["repo_id"] if hub else None
    except StzooError:
        pass
    try:
        return validate_repo_id(base)
    except InvalidHubIdError:
        return None


def card_metadata(cfg: dict[str, Any]) -> dict[str, Any]:
    """The YAML front matter of a model card (the Hub's metadata), from a config.json or manifest entry.

    ``library_name: stzoo``; ``license`` (the Hub's lower-case id); ``pipeline_tag``
    (:data:`PIPELINE_TAG`); ``tags``; ``datasets`` (Hub dataset ids, the dataset's ``DatasetSpec.hub_datasets``, or
    ``cfg["datasets"]``) when the training data is known and on the Hub; ``base_model`` (its Hub id)
    for a model derived from another one, e.g. a fine-tuned zoo model.
    """
    arch = str(cfg["architecture"])
    dataset = training_dataset(cfg)
    tags = ["stzoo", "video-prediction", "spatiotemporal-forecasting", arch.replace("_", "-")]
    spec = DATASETS.get(dataset or "")  # its tag and Hub datasets (stzoo.data.registry.DatasetSpec)
    if spec is not None and spec.tag:
        tags.append(spec.tag)
    meta: dict[str, Any] = {"library_name": "stzoo", "license": str(cfg.get("license", "Apache-2.0")).lower(),
                            "pipeline_tag": PIPELINE_TAG, "tags": tags}
    datasets = cfg.get("datasets") if isinstance(cfg.get("datasets"), list) else (spec and spec.hub_datasets)
    if datasets:
        meta["datasets"] = [str(d) for d in datasets]
    base = cfg.get("base_model")
    if isinstance(base, str) and base and base != cfg.get("name"):
        hub_id = _hub_base_model(base)
        if hub_id:
            meta["base_model"] = hub_id
    return meta


def _yaml_scalar(value: Any) -> str:
    text = str(value)
    if _PLAIN_YAML.fullmatch(text) and text.lower() not in _YAML_WORDS:
        return text
    return json.dumps(text, ensure_ascii=False)  # a JSON string is a valid YAML scalar


def front_matter(meta: dict[str, Any]) -> str:
    """``meta`` (strings and lists of strings) as a YAML front matter block, ``---`` lines included."""
    lines = ["---"]
    for key, value in meta.items():
        if isinstance(value, (list, tuple)):
            lines.append(f"{key}:")
            lines += [f"- {_yaml_scalar(v)}" for v in value]
        else:
            lines.append(f"{key}: {_yaml_scalar(value)}")
    return "\n".join(lines + ["---"])


def model_card(cfg: dict[str, Any], *, repo_id: str | None = None) -> str:
    """A Hugging Face model card (README.md with YAML front matter) generated from config.json."""
    name, arch = cfg.get("name", "model"), cfg["architecture"]
    license_id = str(cfg.get("license", "Apache-2.0"))
    spec = cfg["input"]
    metrics, training = cfg.get("metrics") or {}, cfg.get("training") or {}
    load_id = f"hf-hub:{repo_id}" if repo_id else "path/to/this/folder"
    lines = [front_matter(card_metadata(cfg))]
    lines += ["", f"# {name}", "", display_text(cfg.get("description") or
                                              f"A {arch} spatiotemporal forecasting model saved with stzoo."), "",
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
            lines.append(f"- dataset: {display_text(str(metrics['dataset']))}")
        for key in ("epochs", "steps", "hardware", "wall_clock_s", "command", "date"):
            if key in training:
                lines.append(f"- {key.replace('_', ' ')}: `{display_command(str(training[key]))}`" if key == "command"
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
            lines += ["", f"Measured with `{display_command(str(metrics['command']))}`."]
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
def read_config(path: Path) -> dict[str, Any]:
    from stzoo.zoo.hub import check_local_path

    path = check_local_path(path, "checkpoint config")  # too long for the OS: InputError, not OSError
    if not path.is_file():
        raise WeightsNotAvailableError(
            f"{path} does not exist: {path.parent} is not a checkpoint folder written by "
            f"Predictor.save_pretrained (it needs {CONFIG_NAME} and {WEIGHTS_NAME})")
    try:
        cfg = json.loads(path.read_text(encoding="utf-8"))
    except ValueError as exc:
        raise ConfigError(f"{path} is not valid JSON: {str(exc)[:300]}") from exc
    except OSError as exc:
        raise WeightsNotAvailableError(f"cannot read {path}: {exc.strerror or exc}") from exc
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
    weights = cfg.get("weights")
    sha = weights.get("sha256") if isinstance(weights, dict) else None
    if weights is not None and not isinstance(weights, dict):
        problems.append("'weights' must be an object with the sha256 of the weights file")
    elif sha is not None and not (isinstance(sha, str) and len(sha) == 64
                                  and all(c in "0123456789abcdef" for c in sha)):
        problems.append(f"'weights.sha256' must be 64 lowercase hex digits, got {str(sha)[:80]!r}")
    if problems:
        raise ConfigError(f"{path} is not a valid stzoo checkpoint config: " + "; ".join(problems))
    return cfg


def check_folder(directory: str | os.PathLike) -> dict[str, Any]:
    """Check that a ``save_pretrained`` folder loads cleanly, without building a Predictor: its config is
    valid, the weights match the sha256 config.json records, read with safetensors, hold no NaN / inf
    and fit the architecture strictly. Returns the config."""
    from stzoo.zoo.hub import check_finite, verify

    folder = Path(directory).expanduser()
    cfg = read_config(folder / CONFIG_NAME)
    weights = folder / WEIGHTS_NAME
    if not weights.is_file():
        raise WeightsNotAvailableError(f"{folder} has no {WEIGHTS_NAME}: not a complete checkpoint folder")
    verify(weights, (cfg.get("weights") or {}).get("sha256"), expected_by=f"{folder}/{CONFIG_NAME}")
    state = load_safetensors(weights)
    check_finite(state, weights)
    _check_config_rebuilds(cfg, state, str(weights))
    return cfg


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
    check_folder(folder)  # refuses a folder that does not load cleanly
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


def push_to_hub(predictor: PredictorLike, repo_id: str, *, revision: str | None = None,
                commit_message: str | None = None, private: bool | None = None, token: str | None = None,
                config: dict[str, Any] | None = None, card: str | None = None) -> str:
    """``save_pretrained`` into a temporary folder, then :func:`push_folder`. Returns the commit id."""
    validate_repo_id(repo_id)
    with tempfile.TemporaryDirectory(prefix="stzoo-push-") as tmp:
        save_pretrained(predictor, tmp, config=config, repo_id=repo_id, card=card)
        return push_folder(tmp, repo_id, revision=revision, commit_message=commit_message, private=private,
                           token=token)
