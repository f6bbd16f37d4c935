"""Reading OpenSTL checkpoints and config files safely.

Checkpoints are read with ``torch.load(..., weights_only=True)`` only: a Python object in the file that
the weights-only loader does not know becomes an inert placeholder (its code never runs), and a file that
needs a dangerous module (``os``, ``subprocess``, ...) to be unpickled is refused. OpenSTL's ``.py``
config files are parsed, never executed.
"""

from __future__ import annotations

import ast
import json
import os
import pickle
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from stzoo.errors import ConfigError, InputError, WeightsNotAvailableError
from stzoo.zoo.hub import sha256_file

__all__ = ["load_openstl_checkpoint", "read_openstl_config"]

# A file that needs anything from these modules to be unpickled is not a checkpoint: refuse it outright.
_DANGEROUS_MODULES = (
    "os",
    "sys",
    "posix",
    "nt",
    "subprocess",
    "builtins",
    "shutil",
    "socket",
    "importlib",
    "runpy",
    "code",
    "pty",
    "ctypes",
    "pickle",
    "marshal",
)


# ================================================================================================
# Reading the file
# ================================================================================================
class _Placeholder:
    """Stands in for an object that torch's weights-only loader does not know (e.g. a numpy array or
    an ``argparse.Namespace`` in Lightning's ``hyper_parameters``). None of that object's code runs:
    this class accepts any arguments and any state and keeps nothing."""

    qualified_name = "?"

    def __new__(cls, *args: Any, **kwargs: Any) -> _Placeholder:
        return object.__new__(cls)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        pass

    def __setstate__(self, state: Any) -> None:
        pass

    def __repr__(self) -> str:
        return f"<not loaded: {self.qualified_name}>"


def _torch_load(path: Path) -> tuple[Any, list[str]]:
    """``torch.load(path, weights_only=True)``; globals it does not know become inert placeholders."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True), []
    except pickle.UnpicklingError as exc:
        first_error = exc
    except Exception as exc:  # not a torch file at all, truncated, ...
        raise InputError(
            f"{path} could not be read by torch.load: {type(exc).__name__}: {exc}. Is it a "
            "PyTorch checkpoint (.pth / .ckpt) written by OpenSTL?"
        ) from exc
    how = (
        "Save the weights alone with torch.save(model.state_dict(), 'weights.pth') where OpenSTL is "
        "installed, and convert that file."
    )
    get_unsafe = getattr(torch.serialization, "get_unsafe_globals_in_checkpoint", None)
    if get_unsafe is None:
        raise InputError(
            f"{path} holds Python objects that torch.load(weights_only=True) refuses "
            f"({first_error}). Upgrade torch (>= 2.6) to read it with placeholders, or: {how}"
        )
    try:
        names = sorted(get_unsafe(str(path)))
    except Exception:
        names = []
    bad = [n for n in names if n.split(".")[0] in _DANGEROUS_MODULES]
    if not names or bad:
        what = f"it calls {', '.join(bad)}, which no checkpoint needs" if bad else str(first_error)
        raise InputError(f"refusing to read {path} with torch.load(weights_only=True): {what}. {how}")
    stand_ins = [(type(f"_Unloaded_{i}", (_Placeholder,), {"qualified_name": n}), n) for i, n in enumerate(names)]
    try:
        with torch.serialization.safe_globals(stand_ins):
            return torch.load(path, map_location="cpu", weights_only=True), names
    except Exception as exc:
        raise InputError(
            f"{path} could not be read with torch.load(weights_only=True): {first_error} "
            f"(with placeholders for {', '.join(names)}: {type(exc).__name__}: {exc}). {how}"
        ) from exc


def _unpack(obj: Any, where: str) -> tuple[dict[str, Tensor], str, str, dict[str, Any]]:
    """(state dict with the prefix stripped, container description, prefix, hyper_parameters)."""
    hparams: dict[str, Any] = {}
    if not isinstance(obj, Mapping):
        raise InputError(
            f"{where} holds a {type(obj).__name__}, not a state_dict: expected a dict of tensors, a "
            "dict with a 'state_dict' entry, or a Lightning .ckpt"
        )
    if "state_dict" in obj and isinstance(obj["state_dict"], Mapping):
        state = obj["state_dict"]
        lightning = any(k in obj for k in ("pytorch-lightning_version", "hyper_parameters", "optimizer_states"))
        container = "Lightning checkpoint" if lightning else "dict with a 'state_dict' entry"
        hp = obj.get("hyper_parameters")
        if isinstance(hp, Mapping):
            hparams = {str(k): v for k, v in hp.items()}
        others = sorted(str(k) for k in obj if k not in ("state_dict", "hyper_parameters"))
        notes = (["hyper_parameters read for the config"] if hparams else []) + (
            [f"{', '.join(others)} not used"] if others else []
        )
        if notes:
            container += f" ({'; '.join(notes)})"
    else:
        state, container = obj, "raw state_dict"
    not_tensors = sorted(str(k) for k, v in state.items() if not isinstance(v, Tensor) or not isinstance(k, str))
    if not_tensors:
        raise InputError(
            f"{where}: the state_dict has entries that are not tensors: {not_tensors[:5]}"
            f"{' ...' if len(not_tensors) > 5 else ''}. Expected a dict of tensors, a dict with a "
            f"'state_dict' entry, or a Lightning .ckpt (top-level keys: {sorted(map(str, obj))[:8]})"
        )
    if not state:
        raise InputError(f"{where}: the state_dict is empty")
    prefix = ""
    for p in ("model.", "module."):
        inside = [k for k in state if k.startswith(p)]
        if inside and len(inside) == len(state):
            prefix += p
            state = {k[len(p) :]: v for k, v in state.items()}
        elif inside:
            outside = sorted(k for k in state if not k.startswith(p))
            raise InputError(
                f"{where}: {len(inside)} keys carry the '{p}' prefix (a Lightning / DDP checkpoint) "
                f"but {len(outside)} do not: {outside[:8]}. Those are not part of an OpenSTL model."
            )
    return dict(state), container, prefix, hparams


def load_openstl_checkpoint(
    checkpoint: str | os.PathLike[str] | Mapping[str, Any],
) -> tuple[dict[str, Tensor], dict[str, Any]]:
    """Read an OpenSTL checkpoint in any of the formats OpenSTL writes.

    Args:
        checkpoint: a path to a ``.pth`` / ``.ckpt`` file, or an already loaded object. Accepted: a
            raw ``state_dict``; a dict with a ``state_dict`` entry (plus optimizer etc., ignored); a
            PyTorch Lightning checkpoint whose keys carry the ``model.`` prefix (a DDP ``module.``
            prefix is stripped too). Files are read with ``torch.load(..., weights_only=True)`` only.

    Returns:
        ``(state, info)``: the state dict with the prefix stripped, and a dict with ``container``,
        ``prefix``, ``hyper_parameters`` (Lightning's, else ``{}``), ``placeholders``, ``source`` and
        ``sha256``.

    Raises:
        WeightsNotAvailableError: the file does not exist.
        InputError: the file cannot be read safely, or holds no state dict.
    """
    placeholders: list[str] = []
    source = sha = None
    if isinstance(checkpoint, Mapping):
        obj, where = checkpoint, "the given checkpoint dict"
    else:
        path = Path(checkpoint).expanduser()
        if not path.is_file():
            raise WeightsNotAvailableError(f"OpenSTL checkpoint {path} does not exist (or is not a file)")
        obj, placeholders = _torch_load(path)
        where, source, sha = str(path), path.name, sha256_file(path)
    state, container, prefix, hparams = _unpack(obj, where)
    return state, {
        "container": container,
        "prefix": prefix,
        "hyper_parameters": hparams,
        "placeholders": placeholders,
        "source": source,
        "sha256": sha,
    }


# ================================================================================================
# The config: given by the user, found in the checkpoint, inferred from shapes
# ================================================================================================
def read_openstl_config(config: str | os.PathLike[str] | Mapping[str, Any] | None) -> tuple[dict[str, Any], bool]:
    """Read a config given as a dict, a JSON string, a ``.json`` file or an OpenSTL ``.py`` config file.

    OpenSTL's config files (e.g. ``configs/mmnist/TAU.py``) are parsed, never executed: only
    assignments of literal values (``patch_size = 4``, ``num_hidden = '128,128,128,128'``) are read.

    Returns:
        ``(config, lenient)``: ``lenient`` is True for OpenSTL ``.py`` files, whose training settings
        are ignored instead of being an error.

    Raises:
        ConfigError: the text is neither JSON nor a readable file.
    """
    if config is None:
        return {}, False
    if isinstance(config, Mapping):
        return dict(config), False
    text = str(config)
    path = Path(text).expanduser()
    if not text.lstrip().startswith("{") and path.suffix in (".py", ".json") and not path.is_file():
        raise ConfigError(f"config file {path} does not exist")
    if len(text) > MAX_CONFIG_BYTES:
        raise ConfigError(
            f"the config given is {len(text):,} characters long; a config is at most "
            f"{MAX_CONFIG_BYTES:,} (stzoo.convert.openstl.reading.MAX_CONFIG_BYTES)"
        )
    if not text.lstrip().startswith("{") and _is_file(path):
        body = _read_config_text(path)
        if path.suffix == ".py":
            return _parse_python_config(body, path), True
        text = body
    try:
        value = json.loads(text, parse_constant=_refuse_constant)
    except RecursionError:
        raise ConfigError(f"the config {_where(text, path)} nests too deeply to be a model config") from None
    except ValueError as exc:
        raise ConfigError(
            f"--config must be JSON (e.g. '{{\"patch_size\": 4}}'), a .json file or an OpenSTL .py "
            f"config file; {text[:80]!r} is none of these ({exc})"
        ) from None
    if not isinstance(value, dict):
        raise ConfigError(f"the config must be a JSON object, got {type(value).__name__}")
    _check_depth(value, _where(text, path))
    return value, False


#: The largest config file or string read (OpenSTL's config files are a few KiB).
MAX_CONFIG_BYTES = 1 << 20
#: How deeply a config's values may nest (OpenSTL's nest at most 2 levels).
MAX_CONFIG_DEPTH = 32


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def _where(text: str, path: Path) -> str:
    return f"file {path}" if not text.lstrip().startswith("{") else "given"


def _is_file(path: Path) -> bool:
    try:
        return path.is_file()
    except (OSError, ValueError):  # a name too long for the OS, an embedded NUL, no permission
        return False


def _read_config_text(path: Path) -> str:
    """A config file's text: a regular file of at most :data:`MAX_CONFIG_BYTES`, UTF-8."""
    try:
        with open(path, "rb") as fh:
            raw = fh.read(MAX_CONFIG_BYTES + 1)
    except OSError as exc:
        raise ConfigError(f"cannot read the config file {path}: {exc.strerror or exc}") from None
    if len(raw) > MAX_CONFIG_BYTES:
        raise ConfigError(
            f"config file {path} is larger than {MAX_CONFIG_BYTES >> 20} MiB "
            "(stzoo.convert.openstl.reading.MAX_CONFIG_BYTES); OpenSTL's config files are a few KiB"
        )
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"config file {path} is not UTF-8 text ({exc.reason} at byte {exc.start})") from None


def _check_depth(value: Any, where: str) -> None:
    from stzoo.zoo.entry import json_depth_problem

    problem = json_depth_problem(value, MAX_CONFIG_DEPTH)
    if problem:
        raise ConfigError(f"the config {where} is not a model config: {problem}")


def _parse_python_config(body: str, path: Path) -> dict[str, Any]:
    try:
        tree = ast.parse(body, filename=str(path))
    except (SyntaxError, ValueError) as exc:  # ValueError: a NUL byte in the source
        raise ConfigError(f"{path} is not a readable OpenSTL config file: {exc}") from None
    except (RecursionError, MemoryError):
        raise ConfigError(f"{path} is not a readable OpenSTL config file: it nests too deeply") from None
    out: dict[str, Any] = {}
    for node in tree.body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            try:
                out[node.targets[0].id] = ast.literal_eval(node.value)
            except (ValueError, TypeError, SyntaxError):
                continue  # not a literal (e.g. an expression): not a model setting OpenSTL configs use
            except (RecursionError, MemoryError):
                raise ConfigError(
                    f"{path}: the value of {node.targets[0].id!r} nests too deeply to be a model setting"
                ) from None
    _check_depth(out, f"file {path}")
    return out
