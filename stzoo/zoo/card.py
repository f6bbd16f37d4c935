"""Model cards of checkpoint folders and zoo entries: the README.md a ``save_pretrained`` folder carries
(:func:`model_card`), its Hugging Face metadata (:func:`card_metadata`) written as YAML front matter
(:func:`front_matter`, a small emitter for strings and lists of strings, so no YAML library is needed), and
the display helpers that cut machine-specific paths out of recorded commands and prose
(:func:`display_command`, :func:`display_text`). Pure text: no files, no network.
"""

from __future__ import annotations

import json
import re
from typing import Any

from stzoo.data.registry import DATASETS
from stzoo.errors import StzooError
from stzoo.zoo.entry import CONFIG_NAME, WEIGHTS_NAME, ZooEntry

__all__ = [
    "model_card",
    "card_metadata",
    "front_matter",
    "display_command",
    "display_text",
    "training_dataset",
    "PIPELINE_TAG",
]


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


def training_dataset(cfg: ZooEntry | dict[str, Any] | None) -> str | None:
    """The stzoo dataset (``moving_mnist``, ...) the weights were trained on, where the record says.

    ``cfg``: a :class:`~stzoo.zoo.entry.ZooEntry` (e.g. ``Predictor.entry``) or its JSON document."""
    if cfg is None:
        return None
    if isinstance(cfg, ZooEntry):
        cfg = cfg.to_dict()
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
    from stzoo.zoo.hub import HUB_PREFIX, InvalidHubIdError, parse_hub_id, validate_repo_id

    if base.startswith(HUB_PREFIX):
        try:
            return parse_hub_id(base)[0]
        except InvalidHubIdError:
            return None
    try:
        from stzoo.zoo.manifest import get_entry

        weights = get_entry(base).weights
        return weights.hub.repo_id if weights and weights.hub else None
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
    # a derived architecture (``convlstm+persistence``) is tagged by its base and by what was added to it
    tags = ["stzoo", "video-prediction", "spatiotemporal-forecasting"]
    tags += [part.replace("_", "-") for part in arch.split("+")]
    spec = DATASETS.get(dataset or "")  # its tag and Hub datasets (stzoo.data.registry.DatasetSpec)
    if spec is not None and spec.tag:
        tags.append(spec.tag)
    meta: dict[str, Any] = {
        "library_name": "stzoo",
        "license": str(cfg.get("license", "Apache-2.0")).lower(),
        "pipeline_tag": PIPELINE_TAG,
        "tags": tags,
    }
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
    lines += [
        "",
        f"# {name}",
        "",
        display_text(cfg.get("description") or f"A {arch} spatiotemporal forecasting model saved with stzoo."),
        "",
        *([f"Starting point: the stzoo zoo entry `{cfg['base_model']}`.", ""] if cfg.get("base_model") else []),
        "## Architecture",
        "",
        f"`{arch}` (stzoo {cfg.get('stzoo_version', '?')}), config:",
        "",
        "```json",
        json.dumps(cfg["config"], indent=2),
        "```",
        "",
        "## Input",
        "",
        f"- {spec['frames_in']} frames in → {spec['frames_out']} frames out (longer horizons are rolled out)",
        f"- {spec['channels']} channel(s), trained at {spec['height']}×{spec['width']}",
        f"- values in {list(spec.get('value_range', [0.0, 1.0]))}"
        + (f" ({spec['normalization']})" if spec.get("normalization") else ""),
        "",
        "## Training data",
        "",
    ]
    if training or metrics:
        if metrics.get("dataset"):
            lines.append(f"- dataset: {display_text(str(metrics['dataset']))}")
        for key in ("epochs", "steps", "hardware", "wall_clock_s", "command", "date"):
            if key in training:
                lines.append(
                    f"- {key.replace('_', ' ')}: `{display_command(str(training[key]))}`"
                    if key == "command"
                    else f"- {key.replace('_', ' ')}: {training[key]}"
                )
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
        gate = cfg.get("gate") or {}
        if gate and not gate.get("passed", True):
            lines += [
                "",
                "**Undertrained**: these weights do not beat the trivial baselines of their own test set ("
                + display_text("; ".join(str(f) for f in gate.get("failed") or []))
                + ").",
            ]
    else:
        lines.append("Not measured for this checkpoint.")
    weights = cfg.get("weights") or {}
    lines += [
        "",
        "## License",
        "",
        license_id,
        "",
        "## How to load",
        "",
        "```python",
        "import stzoo",
        "",
        f'p = stzoo.load("{load_id}")  # verified: strict keys, safetensors only',
        "future = p.predict(frames)  # frames: T×H×W uint8 (or float in [0, 1]), see stzoo docs",
        "```",
        "",
        "## Files",
        "",
        f"- `{CONFIG_NAME}`: architecture, config, input spec",
        f"- `{WEIGHTS_NAME}`: weights (safetensors)"
        + (f", sha256 `{weights['sha256']}`" if weights.get("sha256") else ""),
        "",
    ]
    return "\n".join(lines)
