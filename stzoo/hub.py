"""Finding, verifying and reading zoo weights. The only module that touches the network or the
Hugging Face cache.

Resolution order for a manifest entry's weights:

1. ``weights=`` given by the caller (a local file);
2. a local release folder: ``$STZOO_WEIGHTS_DIR``, else the repo's ``weights/`` folder when
   running from a source checkout;
3. the Hugging Face cache, then a download with ``huggingface_hub.hf_hub_download`` of the
   manifest's ``repo_id`` / ``filename`` / pinned ``revision``.

Whatever the source, the file's sha256 is compared with the manifest before anything is read from
it, and it is read only with ``safetensors`` (never pickle).
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

import torch

from stzoo.errors import StzooError, WeightsNotAvailableError

__all__ = ["ChecksumError", "resolve_weights", "load_safetensors", "sha256_file", "local_weights_dirs",
           "WEIGHTS_DIR_ENV"]

WEIGHTS_DIR_ENV = "STZOO_WEIGHTS_DIR"


class ChecksumError(StzooError, ValueError):
    """A weights file does not have the sha256 the manifest promises."""


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def local_weights_dirs() -> list[Path]:
    """Folders searched for release weights, in order."""
    dirs = []
    if os.environ.get(WEIGHTS_DIR_ENV):
        dirs.append(Path(os.environ[WEIGHTS_DIR_ENV]).expanduser())
    checkout = Path(__file__).resolve().parent.parent / "weights"
    if checkout.is_dir() and (checkout.parent / "pyproject.toml").is_file():
        dirs.append(checkout)
    return dirs


def verify(path: Path, expected: str | None) -> Path:
    """Return ``path`` if its sha256 is ``expected`` (or nothing is expected); raise otherwise."""
    if expected is None:
        return path
    actual = sha256_file(path)
    if actual != expected:
        raise ChecksumError(
            f"{path} has sha256 {actual}, but the manifest expects {expected}. The file is corrupt, "
            "truncated or not the released one: delete it and fetch it again (stzoo download NAME)."
        )
    return path


def resolve_weights(entry: dict[str, Any], weights: str | os.PathLike | None = None) -> Path:
    """Find the weights file of manifest ``entry`` (see the module docstring), verified."""
    spec = entry.get("weights")
    name = entry.get("name", "?")
    if weights is not None:
        path = Path(weights).expanduser()
        if not path.is_file():
            raise WeightsNotAvailableError(f"weights file {path} does not exist")
        return verify(path, spec["sha256"] if spec else None)
    if not spec:
        raise WeightsNotAvailableError(
            f"{name} has no released weights yet. Build the untrained network with "
            f"stzoo.load({name!r}, pretrained=False), pass your own file with weights=..., or pick an "
            "entry with weights from stzoo.list_models(pretrained=True)."
        )
    looked = []
    for folder in local_weights_dirs():
        candidate = folder / spec["filename"]
        looked.append(str(candidate))
        if candidate.is_file():
            return verify(candidate, spec["sha256"])
    hub = spec.get("hub")
    if hub is None:
        raise WeightsNotAvailableError(f"{name}: {spec['filename']} not found (looked in {looked})")
    return _from_hub(name, hub, spec["sha256"], looked)


def _from_hub(name: str, hub: dict[str, str], sha256: str, looked: list[str]) -> Path:
    from huggingface_hub import hf_hub_download

    try:
        path = Path(hf_hub_download(hub["repo_id"], hub["filename"], revision=hub["revision"]))
    except Exception as exc:  # network, offline mode, missing repo: say where we looked
        raise WeightsNotAvailableError(
            f"could not get the weights of {name} from the Hugging Face Hub "
            f"({hub['repo_id']}/{hub['filename']}@{hub['revision']}): {type(exc).__name__}: {exc}. "
            f"Also looked in: {looked or 'no local weights folder'}. On an offline machine, pre-fetch "
            f"with `stzoo download {name}` elsewhere or set {WEIGHTS_DIR_ENV} to a folder holding "
            f"{hub['filename']}."
        ) from exc
    return verify(path, sha256)


def load_safetensors(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(str(path))
