"""Publishing checkpoint folders on the Hugging Face Hub (or the mirror in ``HF_ENDPOINT``):
:func:`push_folder` uploads a ``save_pretrained`` folder after checking that it loads cleanly,
:func:`push_to_hub` saves a Predictor into a temporary folder and pushes that, and
:func:`export_release` writes a zoo release in the folder layout for publishing. Downloads live in
:mod:`stzoo.zoo.hub`.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

from stzoo.errors import StzooError
from stzoo.interfaces import PredictorLike
from stzoo.zoo.folder import (
    CARD_NAME,
    CONFIG_NAME,
    FORMAT_VERSION,
    WEIGHTS_NAME,
    _check_config_rebuilds,
    _meta,
    _version,
    _write_folder,
    check_folder,
    save_pretrained,
)
from stzoo.zoo.hub import HubError, load_safetensors, validate_filename, validate_repo_id, validate_revision
from stzoo.zoo.manifest import get_entry
from stzoo.zoo.resolve import locate_weights

__all__ = ["push_folder", "push_to_hub", "export_release"]


def push_folder(
    directory: str | os.PathLike,
    repo_id: str,
    *,
    revision: str | None = None,
    commit_message: str | None = None,
    private: bool | None = None,
    token: str | None = None,
    extra_files: dict[str, str] | None = None,
) -> str:
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
            repo_id,
            [CommitOperationAdd(path_in_repo=n, path_or_fileobj=str(p)) for n, p in files.items()],
            commit_message=commit_message
            or f"Upload {json.loads(files[CONFIG_NAME].read_text())['name']} with stzoo {_version()}",
            revision=revision,
        )
    except StzooError:
        raise
    except Exception as exc:
        raise HubError(
            f"could not push {folder} to {repo_id}: {type(exc).__name__}: {str(exc).strip().splitlines()[0]}. "
            "Check that you are logged in with write access (`hf auth login` or HF_TOKEN) and HF_ENDPOINT."
        ) from exc
    return str(info.oid)


def push_to_hub(
    predictor: PredictorLike,
    repo_id: str,
    *,
    revision: str | None = None,
    commit_message: str | None = None,
    private: bool | None = None,
    token: str | None = None,
    config: dict[str, Any] | None = None,
    card: str | None = None,
) -> str:
    """``save_pretrained`` into a temporary folder, then :func:`push_folder`. Returns the commit id."""
    validate_repo_id(repo_id)
    with tempfile.TemporaryDirectory(prefix="stzoo-push-") as tmp:
        save_pretrained(predictor, tmp, config=config, repo_id=repo_id, card=card)
        return push_folder(tmp, repo_id, revision=revision, commit_message=commit_message, private=private, token=token)


def export_release(name: str, directory: str | os.PathLike, *, repo_id: str | None = None) -> Path:
    """Write zoo entry ``name`` in the checkpoint layout, its weights the verified release file copied
    byte for byte (so ``model.safetensors`` keeps the manifest's sha256), for publishing."""
    entry = get_entry(name)
    loc = locate_weights(entry)
    doc = entry.to_dict()
    cfg: dict[str, Any] = {
        "stzoo_format": FORMAT_VERSION,
        "library": "stzoo",
        "stzoo_version": _version(),
        "name": entry.name,
        "architecture": entry.architecture,
        "config": doc["config"],
        "input": doc["input"],
        **_meta(entry),
    }
    _check_config_rebuilds(cfg, load_safetensors(loc.path), str(loc.path))
    return _write_folder(Path(directory).expanduser(), cfg, loc.path, None, repo_id, None)
