"""The OpenSTL importer's framework: the method registry, the config resolver, the strict key map, the front doors.

`OpenSTL <https://github.com/chengtan9907/OpenSTL>`_ (Apache-2.0), maintained by the TAU authors,
publishes trained weights as PyTorch files. This package turns such a file into an stzoo model:

* :func:`from_openstl` reads the file (``torch.load(..., weights_only=True)`` only; see
  :mod:`stzoo.convert.openstl.reading`), maps every tensor onto stzoo's module names, checks keys and
  shapes strictly, and returns a :class:`~stzoo.inference.predictor.Predictor`;
* :func:`convert_openstl` does the same and writes a ``save_pretrained`` folder (``config.json``,
  ``model.safetensors``, ``README.md`` model card naming the origin, the original file and its
  license) that ``stzoo.load(folder)`` loads.

Each OpenSTL method has its own module in this package (``tau.py``, ``convlstm.py``, ``predrnn.py``, ...)
that registers an :class:`OpenSTLMethod` with :func:`register_openstl` when imported; the package imports
every one of them (:func:`stzoo.convert.openstl.discover`), so a new method needs no list to be added to.
The shared checks the importers use (:func:`check_recurrent_variant`, :func:`gate_hidden`,
:func:`uniform_hidden`, :func:`resolve_patch_and_channels`, :func:`patch_spec`, ...) live here.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor

from stzoo.convert.openstl.reading import load_openstl_checkpoint, read_openstl_config
from stzoo.errors import ConfigError, InputError

if TYPE_CHECKING:
    from stzoo.inference.predictor import Predictor

__all__ = [
    "from_openstl",
    "convert_openstl",
    "load_openstl_checkpoint",
    "map_openstl_state_dict",
    "read_openstl_config",
    "ConversionReport",
    "OpenSTLMethod",
    "OPENSTL_METHODS",
    "register_openstl",
    "openstl_method",
    "OPENSTL_URL",
    "OPENSTL_LICENSE",
]

OPENSTL_URL = "https://github.com/chengtan9907/OpenSTL"
OPENSTL_LICENSE = "Apache-2.0"
# OpenSTL's Moving MNIST setting, used for what the weights cannot tell and the config does not say.
_DEFAULTS = {"frames_in": 10, "frames_out": 10, "height": 64, "width": 64}
_DEFAULT_NOTE = "default (OpenSTL's Moving MNIST setting)"

# Config keys that describe the input (OpenSTL's names and stzoo's), the same for every method.
_SPEC_KEYS = {
    "in_shape",
    "pre_seq_length",
    "aft_seq_length",
    "total_length",
    "frames",
    "frames_in",
    "frames_out",
    "channels",
    "height",
    "width",
    "method",
}

Pairs = dict[str, tuple[str | None, Callable[[Tensor], Tensor] | None]]


@dataclass(frozen=True)
class OpenSTLMethod:
    """How one OpenSTL method's checkpoints become an stzoo architecture (one per importer).

    Attributes:
        arch: the stzoo architecture id the weights load into.
        names: OpenSTL method names accepted as ``arch=`` (compared lower-case, ``-`` read as ``_``).
        label: the method's name for people ("TAU").
        config_keys: config keys (OpenSTL's and stzoo's) that describe this model besides the input ones.
        resolve: ``(state, resolver) -> (stzoo config incl. input keys, input spec, OpenSTL class name)``:
            reads the sizes from tensor shapes and checks the config against them.
        pairs: ``(stzoo keys, config) -> (stzoo key → (OpenSTL key or None, transform), unused)``; a key
            with no OpenSTL source is zeros, or ``transform(zeros)`` (e.g. an identity) when one is given;
            ``unused`` mapping OpenSTL keys its forward never reads to their expected shapes.
        model_config: the stzoo model config from the resolved one (drop input-only keys).
        card_notes: extra lines for the model card's Origin section (how values were transformed).
    """

    arch: str
    names: tuple[str, ...]
    label: str
    config_keys: frozenset[str]
    resolve: Callable[[Mapping[str, Tensor], Any], tuple[dict[str, Any], dict[str, Any], str]]
    pairs: Callable[[list[str], dict[str, Any]], tuple[Pairs, dict[str, tuple[int, ...]]]]
    model_config: Callable[[dict[str, Any]], dict[str, Any]] = dict
    card_notes: tuple[str, ...] = ()


#: stzoo architecture id → its OpenSTL importer
OPENSTL_METHODS: dict[str, OpenSTLMethod] = {}


def register_openstl(method: OpenSTLMethod) -> OpenSTLMethod:
    """Add an importer to :data:`OPENSTL_METHODS` (one per stzoo architecture)."""
    taken = {n: m.arch for m in OPENSTL_METHODS.values() for n in m.names if m.arch != method.arch}
    clash = sorted(n for n in method.names if n in taken)
    if clash:
        raise ConfigError(f"OpenSTL method name(s) {clash} already belong to {taken[clash[0]]}")
    OPENSTL_METHODS[method.arch] = method
    return method


def openstl_method(arch: str) -> OpenSTLMethod:
    """The importer for ``arch``: an stzoo architecture id or an OpenSTL method name, any case."""
    key = str(arch).lower().replace("-", "_")
    for m in OPENSTL_METHODS.values():
        if key == m.arch or key in m.names:
            return m
    known = sorted({n for m in OPENSTL_METHODS.values() for n in (m.arch, *m.names)})
    raise ConfigError(f"arch must be one of the OpenSTL methods stzoo imports ({', '.join(known)}), got {arch!r}")


@dataclass
class ConversionReport:
    """What :func:`from_openstl` did: where the weights came from and how they were mapped.

    Attributes:
        arch: the stzoo architecture id (``"tau"``, ``"convlstm"``, ...).
        openstl_model: the OpenSTL class the checkpoint belongs to.
        source: the checkpoint's file name (``None`` for an in-memory dict).
        sha256: the checkpoint file's sha256 (``None`` for an in-memory dict).
        container: which of OpenSTL's formats it was (raw state_dict, a dict with ``state_dict``,
            or a Lightning checkpoint).
        prefix: the key prefix that was stripped (e.g. ``"model."``), or ``""``.
        config: the stzoo model config the weights were loaded into.
        input: the input spec (frames in/out, channels, training size, value range).
        config_sources: for each config / input value, where it came from ("weights", "config",
            "checkpoint hyper_parameters" or a default).
        tensors_mapped: how many OpenSTL tensors became stzoo tensors.
        parameters: the stzoo model's parameter count.
        tensors_unused: OpenSTL tensors that its own forward pass never reads, dropped.
        placeholders: Python objects in the file (outside the weights) that torch's weights-only
            loader does not know, read as inert placeholders instead (their code never ran).
        ignored_config: config entries that do not describe the model (e.g. training settings).
    """

    arch: str
    openstl_model: str
    source: str | None
    sha256: str | None
    container: str
    prefix: str
    config: dict[str, Any]
    input: dict[str, Any]
    config_sources: dict[str, str]
    tensors_mapped: int
    parameters: int
    tensors_unused: list[str] = field(default_factory=list)
    placeholders: list[str] = field(default_factory=list)
    ignored_config: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable copy."""
        return asdict(self)


def _as_int(key: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise ConfigError(f"config {key} must be an integer, got {value!r}")
    try:
        out = int(value)
    except ValueError:
        raise ConfigError(f"config {key} must be an integer, got {value!r}") from None
    if out != float(value):
        raise ConfigError(f"config {key} must be an integer, got {value!r}")
    return out


def _normalise(
    raw: Mapping[str, Any], method: OpenSTLMethod, lenient: bool, what: str
) -> tuple[dict[str, Any], list[str]]:
    """OpenSTL or stzoo names → one canonical dict; returns it and the ignored keys."""
    known = _SPEC_KEYS | method.config_keys
    ignored = sorted(k for k in raw if k not in known)
    if ignored and not lenient:
        others: dict[str, set[str]] = {}  # key → the other methods that take it (registration order aside)
        for m in OPENSTL_METHODS.values():
            for k in m.config_keys if m is not method else ():
                others.setdefault(k, set()).add(m.label)
        belong = sorted(k for k in ignored if k in others)
        hint = (
            (" (" + ", ".join(f"{k} belongs to {' / '.join(sorted(others[k]))}" for k in belong) + ")")
            if belong
            else ""
        )
        raise ConfigError(
            f"{what} has key(s) {ignored} that do not describe an OpenSTL {method.label} model{hint}; "
            f"accepted: {sorted(known)}"
        )
    out: dict[str, Any] = {}

    def put(key: str, value: Any, src: str) -> None:
        if key in out and out[key] != value:
            raise ConfigError(f"{what} contradicts itself: {key} is {out[key]!r} by one entry and {value!r} by {src}")
        out[key] = value

    if "in_shape" in raw:
        shape = raw["in_shape"]
        if isinstance(shape, str):
            shape = [s for s in re.split(r"[,\s]+", shape.strip("[]() ")) if s]
        if not isinstance(shape, (list, tuple)) or len(shape) != 4:
            raise ConfigError(f"{what}: in_shape must be [T, C, H, W], got {raw['in_shape']!r}")
        t, c, h, w = (_as_int("in_shape", s) for s in shape)
        for k, v in (("frames_in", t), ("channels", c), ("height", h), ("width", w)):
            put(k, v, "in_shape")
    for src, dst in (
        ("pre_seq_length", "frames_in"),
        ("frames_in", "frames_in"),
        ("aft_seq_length", "frames_out"),
        ("frames_out", "frames_out"),
        ("channels", "channels"),
        ("height", "height"),
        ("width", "width"),
    ):
        if src in raw and raw[src] is not None:
            put(dst, _as_int(src, raw[src]), src)
    if "frames" in raw:
        put("frames_in", _as_int("frames", raw["frames"]), "frames")
    if "total_length" in raw and raw["total_length"] is not None and "frames_in" in out:
        put("frames_out", _as_int("total_length", raw["total_length"]) - out["frames_in"], "total_length")
    if raw.get("method") is not None:
        put("method", str(raw["method"]).lower(), "method")
    for key in sorted(method.config_keys & set(raw)):
        value = raw[key]
        if value is None:
            continue
        if key in ("num_hidden", "depths_downsample", "depths_upsample", "num_heads", "num_features", "scale") or (
            key.endswith("_sizes")
        ):
            if isinstance(value, str):
                value = [_as_int("num_hidden", s) for s in value.split(",") if s.strip()]
            elif isinstance(value, (list, tuple)):
                value = [_as_int("num_hidden", s) for s in value]
            else:
                value = [_as_int("num_hidden", value)]
        elif key in ("model_type", "cell_mode", "model_mode", "routing") or key.endswith("_activation"):
            value = str(value).lower()
        elif key in ("mlp_ratio", "drop", "drop_path", "pixel_max", "beta"):
            value = float(value)
        elif key == "layer_norm":
            value = bool(value)
        else:
            value = _as_int(key, value)
        put(key, value, key)
    return out, ignored


def _is_plain(value: Any) -> bool:
    """A JSON-like value (not a placeholder for an object that was not loaded)."""
    if isinstance(value, (list, tuple)):
        return all(_is_plain(v) for v in value)
    return value is None or isinstance(value, (bool, int, float, str))


class _Resolver:
    """Collects the final config value by value, recording where each came from and checking the
    config against what the weights say."""

    def __init__(self, given: dict[str, Any], ckpt: dict[str, Any]):
        self.given, self.ckpt = given, ckpt
        self.sources: dict[str, str] = {}

    def lookup(self, key: str) -> tuple[Any, str] | None:
        if key in self.given:
            return self.given[key], "config"
        if key in self.ckpt:
            return self.ckpt[key], "checkpoint hyper_parameters"
        return None

    def inferred(self, key: str, value: Any, *, out_key: str | None = None, label: str | None = None) -> Any:
        """A value the weights determine; a config value must agree."""
        found = self.lookup(key)
        if found is not None and found[0] != value:
            raise ConfigError(
                f"the {found[1]} says {key}={found[0]!r}, but the checkpoint's tensors have "
                f"{label or key}={value!r}: is this the right config for this checkpoint?"
            )
        self.sources[out_key or key] = "weights"
        return value

    def chosen(self, key: str, default: Any, *, note: str = _DEFAULT_NOTE) -> Any:
        """A value the weights cannot tell: from the config, else the checkpoint, else the default."""
        found = self.lookup(key)
        if found is not None:
            self.sources[key] = found[1]
            return found[0]
        self.sources[key] = note
        return default


# ================================================================================================
# Reading sizes from tensor names and shapes
# ================================================================================================
def _indices(state: Mapping[str, Tensor], pattern: str) -> list[int]:
    return sorted({int(m.group(1)) for k in state if (m := re.match(pattern, k))})


def _need(state: Mapping[str, Tensor], key: str, what: str) -> Tensor:
    if key not in state:
        sample = sorted(state)[:6]
        raise InputError(
            f"this does not look like {what}: it has no tensor {key!r} (its keys start with {sample}). "
            "Check --arch, or whether the checkpoint comes from OpenSTL."
        )
    return state[key]


def _count(indices: list[int], what: str) -> int:
    if indices != list(range(len(indices))):
        raise InputError(f"{what} are numbered {indices}: some are missing (expected 0..{max(indices)})")
    return len(indices)


# ================================================================================================
# Pieces the recurrent and patch-based importers share (ConvLSTM, PredRNN, PredRNN-V2, PredRNN++,
# MIM, E3D-LSTM and PredFormer, each in its own module)
# ================================================================================================
RECURRENT_KEYS = frozenset({"num_hidden", "num_layers", "filter_size", "stride", "patch_size", "layer_norm"})


def check_recurrent_variant(
    state: Mapping[str, Tensor],
    r: _Resolver,
    *,
    label: str,
    names: tuple[str, ...],
    arch: str,
    ln_pattern: str,
    strides: tuple[int, ...] = (1,),
) -> None:
    """Refuse what stzoo cannot convert exactly: another method named by the config, OpenSTL's
    ``layer_norm=1`` variant (its LayerNorms over channels × height × width of every gate), a stride that
    stzoo's model does not implement (``strides``: those it does; 1 for most)."""
    method = r.lookup("method")
    if method is not None and method[0] not in names:
        raise ConfigError(
            f"the {method[1]} says method={method[0]!r}, but --arch {arch} converts OpenSTL's {label} "
            f"(method {' or '.join(repr(n) for n in names)})"
        )
    ln_keys = sorted(k for k in state if re.match(ln_pattern, k))
    ln = r.lookup("layer_norm")
    if ln_keys or (ln is not None and ln[0]):
        why = f"it has LayerNorm tensors such as {ln_keys[:2]}" if ln_keys else f"the {ln[1]} says layer_norm=1"
        raise InputError(
            f"this is OpenSTL's {label} with layer_norm=1 ({why}). Its LayerNorms normalise each gate "
            "pre-activation over channels × height × width at the training resolution; stzoo's "
            f"{label} has no such layers, so this variant cannot be converted exactly. Only "
            "layer_norm=0 checkpoints (OpenSTL's default configs) are supported."
        )
    stride = r.lookup("stride")
    if stride is not None and stride[0] not in strides:
        raise ConfigError(
            f"the {stride[1]} says stride={stride[0]}; stzoo's {label} implements stride "
            + " or ".join(map(str, strides))
            + " only (the weights cannot tell the stride, so converting with another would change the function)"
        )


def gate_hidden(state: Mapping[str, Tensor], n_layers: int, key: str, gates: int, what: str) -> list[int]:
    """Each layer's hidden size from a gate convolution ``key`` (``{n}`` for the layer) whose output rows
    are ``gates``·hidden."""
    hidden = []
    for n in range(n_layers):
        name = key.format(n=n)
        w = _need(state, name, what)
        if w.dim() != 4 or w.shape[0] % gates:
            raise InputError(f"{name} has shape {tuple(w.shape)}; expected {gates}·hidden × in × k × k")
        hidden.append(int(w.shape[0]) // gates)
    return hidden


def uniform_hidden(hidden: list[int], r: _Resolver, label: str) -> int:
    """The one hidden size of every layer (stzoo has one ``num_hidden``), checked against the config."""
    given = r.lookup("num_hidden")
    if given is not None and given[0] not in (hidden, hidden[:1] if len(set(hidden)) == 1 else None):
        raise ConfigError(f"the {given[1]} says num_hidden={given[0]}, but the checkpoint's layers have {hidden}")
    if len(set(hidden)) != 1:
        raise ConfigError(
            f"the layers have different hidden sizes {hidden}; stzoo's {label} uses one num_hidden "
            "for every layer, so this checkpoint cannot be converted"
        )
    r.sources["num_hidden"] = "weights"
    return hidden[0]


def odd_square_kernel(w: Tensor, name: str) -> int:
    """The side of ``w``'s square, odd kernel (its last two dimensions)."""
    k = int(w.shape[-1])
    if w.dim() < 4 or k % 2 == 0 or w.shape[-2] != k:
        raise InputError(f"{name} has shape {tuple(w.shape)}; expected a square, odd kernel in its last two dimensions")
    return k


def resolve_patch_and_channels(
    r: _Resolver,
    patch_ch: int,
    label: str,
    grid: tuple[int, int] | None = None,
    config_file: str = "configs/mmnist/<Method>.py",
    *,
    reader: str | None = None,
    per: str = "position",
    usual: str = "OpenSTL's Moving MNIST configs use patch_size 4 with 1 channel",
    how: str | None = None,
) -> tuple[int, int]:
    """``(patch_size, channels)`` from the ``patch_ch = patch_size² · channels`` values that the first
    layer (``reader``, by default the first ``label`` cell) reads per position.

    The weights hold only the product; the config's ``patch_size``, ``channels`` and (with ``grid``, the
    patch grid a model with per-position weights was built for) ``height`` / ``width`` pick the
    factorisation. One left: used; none: the config contradicts the weights; several: the config must say
    (``usual`` names the common choice, ``how`` how to pass it; by default ``--config`` or ``config_file``)."""
    reads = f"{reader or f'the first {label} cell'} reads {patch_ch} = patch_size² × channels values per {per}"
    found = {k: r.lookup(k) for k in ("patch_size", "channels", "height", "width")}
    candidates = [(p, patch_ch // (p * p)) for p in range(1, math.isqrt(patch_ch) + 1) if patch_ch % (p * p) == 0]

    def fits(p: int, c: int) -> bool:
        if found["patch_size"] is not None and found["patch_size"][0] != p:
            return False
        if found["channels"] is not None and found["channels"][0] != c:
            return False
        if grid is not None:
            for key, cells in (("height", grid[0]), ("width", grid[1])):
                if found[key] is not None and found[key][0] != cells * p:
                    return False
        return True

    left = [pc for pc in candidates if fits(*pc)]
    given = {k: v for k, v in found.items() if v is not None and (k in ("patch_size", "channels") or grid is not None)}
    said = ", ".join(f"{k}={v[0]} ({v[1]})" for k, v in given.items())
    if not left:
        grid_note = f" and a {grid[0]}×{grid[1]} patch grid" if grid is not None else ""
        raise ConfigError(
            f"{said} do not fit the weights: {reads}{grid_note}, so "
            + "; ".join(
                f"patch_size={p} would mean {c} channel(s)"
                + (f" and {grid[0] * p}×{grid[1] * p} frames" if grid is not None else "")
                for p, c in candidates
            )
        )
    if len(left) > 1:
        options = ", ".join(f"patch_size={p} with {c} channel(s)" for p, c in left)
        how = how or f"--config '{{\"patch_size\": 4}}' or --config {config_file}"
        raise ConfigError(
            f'{reads}, which could be {options}. Say which: pass config {{"patch_size": N}} ({usual}), e.g. {how}'
        )
    p, c = left[0]
    how_found = "the only factorisation" + (" that fits the config" if given else "")
    r.sources["patch_size"] = found["patch_size"][1] if found["patch_size"] is not None else f"weights ({how_found})"
    r.sources["channels"] = found["channels"][1] if found["channels"] is not None else f"weights ({how_found})"
    return p, c


def patch_spec(
    r: _Resolver, cfg: dict[str, Any], p: int, c: int, *, grid: tuple[int, int] | None = None, grid_source: str = ""
) -> dict[str, Any]:
    """Fill ``cfg``'s patch_size, channels, frames_in / frames_out (config, else OpenSTL's Moving MNIST
    setting) and height / width (``grid`` × patch_size where per-position weights fix them, else the config
    or the default, divisible by patch_size); return the input spec."""
    cfg["patch_size"], cfg["channels"] = p, c
    for key in ("frames_in", "frames_out"):
        cfg[key] = r.chosen(key, _DEFAULTS[key])
    for i, key in enumerate(("height", "width")):
        if grid is not None:
            cfg[key] = grid[i] * p  # resolve_patch_and_channels checked a given height / width against this
            r.sources[key] = grid_source
        else:
            cfg[key] = r.chosen(key, _DEFAULTS[key])
            if cfg[key] % p:
                raise ConfigError(f"{key}={cfg[key]} is not divisible by patch_size={p}")
    return {
        "frames_in": cfg["frames_in"],
        "frames_out": cfg["frames_out"],
        "channels": c,
        "height": cfg["height"],
        "width": cfg["width"],
        "value_range": [0.0, 1.0],
    }


def _patch_permutation(channels: int, patch: int) -> Tensor:
    """perm[s] = OpenSTL channel for stzoo channel s: s = c·p² + i·p + j  ↔  (i·p + j)·C + c."""
    c = torch.arange(channels).view(channels, 1, 1)
    i = torch.arange(patch).view(1, patch, 1)
    j = torch.arange(patch).view(1, 1, patch)
    return ((i * patch + j) * channels + c).reshape(-1)


def _fmt_keys(keys: list[str], limit: int = 8) -> str:
    return ", ".join(keys[:limit]) + (f" ... ({len(keys)} in all)" if len(keys) > limit else "")


def _target_state(arch: str, model_cfg: dict[str, Any]) -> dict[str, Tensor]:
    """The names, shapes and dtypes of ``arch``'s state dict at ``model_cfg``, from a model built on the meta
    device (no memory allocated, no random initialisation: building a paper-size model on the CPU costs
    seconds). A model whose constructor needs real values (e.g. reads a tensor back) is built on the CPU."""
    from stzoo.models import build_model

    try:
        with torch.device("meta"):
            return build_model(arch, model_cfg).state_dict()
    except (NotImplementedError, RuntimeError):  # an op with no meta kernel, or a value read back
        return build_model(arch, model_cfg).state_dict()


def map_openstl_state_dict(
    state: Mapping[str, Tensor],
    arch: str,
    config: Mapping[str, Any] | None = None,
    *,
    hyper_parameters: Mapping[str, Any] | None = None,
    lenient_config: bool = False,
) -> tuple[dict[str, Tensor], dict[str, Any], dict[str, Any], dict[str, Any]]:
    """Map an OpenSTL state dict (prefix already stripped) onto stzoo's module names, strictly.

    Args:
        state: OpenSTL tensor name → tensor.
        arch: an importer's stzoo architecture id or OpenSTL method name (see :func:`openstl_method`).
        config: OpenSTL or stzoo config values (e.g. ``{"patch_size": 4}``, ``{"in_shape": [10, 1, 64, 64]}``);
            only what the weights cannot tell is needed, anything given is checked against the weights.
        hyper_parameters: a Lightning checkpoint's ``hyper_parameters`` (used where ``config`` is silent).
        lenient_config: ignore config keys that do not describe the model (for OpenSTL ``.py`` files).

    Returns:
        ``(stzoo_state, model_config, input_spec, details)``; ``details`` has ``config_sources``,
        ``tensors_unused``, ``tensors_mapped``, ``openstl_model`` and ``ignored_config``.

    Raises:
        InputError: unknown, missing or wrongly shaped tensors (each named), or an unsupported variant.
        ConfigError: the config is unreadable, incomplete or contradicts the weights.
    """
    method = openstl_method(arch)
    given, ignored = _normalise(config or {}, method, lenient_config, "the config")
    ckpt_cfg, _ = _normalise(
        {k: v for k, v in (hyper_parameters or {}).items() if k in _SPEC_KEYS | method.config_keys and _is_plain(v)},
        method,
        True,
        "the checkpoint's hyper_parameters",
    )
    r = _Resolver(given, ckpt_cfg)
    cfg, spec, openstl_model = method.resolve(state, r)
    model_cfg = method.model_config(cfg)
    target = _target_state(method.arch, model_cfg)  # names, shapes and dtypes to map onto
    pairs, unused = method.pairs(list(target), cfg)
    wanted = {src for src, _ in pairs.values() if src is not None}
    unknown = sorted(set(state) - wanted - set(unused))
    missing = sorted(wanted - set(state))
    out: dict[str, Tensor] = {}
    wrong: list[str] = []
    for key, (src, transform) in pairs.items():
        if src is None:  # not in OpenSTL's file: zeros, or what the transform makes of them
            zeros = torch.zeros(target[key].shape, dtype=target[key].dtype, device="cpu")
            out[key] = zeros if transform is None else transform(zeros)
            continue
        if src not in state:
            continue
        tensor = state[src]
        if tensor.dim() != target[key].dim() or (transform is None and tensor.shape != target[key].shape):
            wrong.append(f"{src}: {tuple(tensor.shape)}, expected {tuple(target[key].shape)}")
            continue
        tensor = transform(tensor) if transform is not None else tensor
        if tensor.shape != target[key].shape:
            wrong.append(f"{src}: {tuple(state[src].shape)}, expected {tuple(target[key].shape)}")
            continue
        if tensor.is_floating_point() != target[key].is_floating_point():
            wrong.append(f"{src}: dtype {tensor.dtype}, expected a {target[key].dtype} tensor")
            continue
        out[key] = tensor.detach().to(target[key].dtype).contiguous().clone()
    for key, shape in unused.items():
        if key in state and tuple(state[key].shape) != shape:
            wrong.append(f"{key}: {tuple(state[key].shape)}, expected {shape}")
    problems = []
    if unknown:
        problems.append(
            f"{len(unknown)} tensor(s) that an OpenSTL {openstl_model} of this size does not have: {_fmt_keys(unknown)}"
        )
    if missing:
        problems.append(f"{len(missing)} tensor(s) missing: {_fmt_keys(missing)}")
    if wrong:
        problems.append(f"{len(wrong)} tensor(s) with the wrong shape: {_fmt_keys(wrong, 5)}")
    if problems:
        raise InputError(
            f"the checkpoint does not match OpenSTL's {openstl_model} with config {model_cfg}: "
            + "; ".join(problems)
            + ". Nothing was converted. Check --arch and --config, and that the "
            "file is an unmodified OpenSTL checkpoint."
        )
    details = {
        "config_sources": dict(sorted(r.sources.items())),
        "tensors_unused": sorted(k for k in unused if k in state),
        "tensors_mapped": len(wanted),
        "openstl_model": openstl_model,
        "ignored_config": ignored,
    }
    return out, model_cfg, spec, details


# ================================================================================================
# Front doors
# ================================================================================================
def from_openstl(
    checkpoint: str | os.PathLike[str] | Mapping[str, Any],
    arch: str,
    config: str | os.PathLike[str] | Mapping[str, Any] | None = None,
    *,
    device: str | torch.device | None = None,
    dtype: str | torch.dtype | None = None,
    batch_size: int = 16,
) -> Predictor:
    """Load an OpenSTL checkpoint (any method in :data:`OPENSTL_METHODS`) as a
    :class:`~stzoo.inference.predictor.Predictor`.

    Args:
        checkpoint: a ``.pth`` / ``.ckpt`` path or an already loaded object: a raw state_dict, a dict
            with a ``state_dict`` entry (plus optimizer etc.), or a Lightning checkpoint (``model.``
            prefix). Files are read with ``torch.load(..., weights_only=True)`` only.
        arch: OpenSTL's method name or the stzoo architecture id, any case (``"tau"``, ``"convlstm"``,
            ``"PredRNN"``, ...: any importer in :data:`OPENSTL_METHODS`).
        config: what the weights cannot tell: a dict, a JSON string, a ``.json`` file or an OpenSTL
            ``.py`` config file. OpenSTL names (``in_shape``, ``pre_seq_length``, ``aft_seq_length``,
            ``patch_size``, ``num_hidden``, ``hid_S``, ...) and stzoo names (``frames_in``,
            ``channels``, ``height``, ``width``, ...) both work. Needed for ConvLSTM's ``patch_size``
            (or ``channels``) unless a Lightning checkpoint records it; everything else is inferred
            from tensor shapes or defaults to OpenSTL's Moving MNIST setting (10 → 10 frames, 64×64).
        device: e.g. ``"cuda"``; default CPU.
        dtype: ``"float32"`` (default), ``"bfloat16"`` or ``"float16"``.
        batch_size: sequences per forward pass in :meth:`Predictor.predict`.

    Returns:
        A Predictor (``name`` is ``None``; ``predictor.entry`` holds architecture, config, input spec,
        description and license, and ``predictor.entry.extra["openstl"]`` the :class:`ConversionReport` as
        a dict). Save it with :func:`convert_openstl` or ``predictor.save_pretrained(dir)``.

    Raises:
        WeightsNotAvailableError: the file does not exist.
        InputError: the file cannot be read safely, or its tensors do not match (named in the message).
        ConfigError: the config is missing something the weights cannot tell, or contradicts them.
    """
    from stzoo.api import assemble_predictor, load_state_dict_strict
    from stzoo.models import count_parameters
    from stzoo.zoo.entry import ZooEntry

    state, rep = _convert(checkpoint, arch, config)
    entry = {
        "architecture": rep.arch,
        "config": rep.config,
        "input": rep.input,
        "description": _description(rep),
        "license": OPENSTL_LICENSE,
        "openstl": rep.to_dict(),
    }
    predictor = assemble_predictor(
        ZooEntry.from_dict(None, entry), None, name=None, device=device, dtype=dtype, batch_size=batch_size
    )
    load_state_dict_strict(predictor.model, state, rep.source or "the OpenSTL checkpoint")
    rep.parameters = count_parameters(predictor.model)
    predictor.entry = predictor.entry.replace(extra={"openstl": rep.to_dict()})
    return predictor


def _convert(checkpoint: Any, arch: str, config: Any) -> tuple[dict[str, Tensor], ConversionReport]:
    """Read, map and check; the stzoo state dict and the report (``parameters`` still 0)."""
    raw_cfg, lenient = read_openstl_config(config)
    state, info = load_openstl_checkpoint(checkpoint)
    out, model_cfg, spec, details = map_openstl_state_dict(
        state, arch, raw_cfg, lenient_config=lenient, hyper_parameters=info["hyper_parameters"]
    )
    rep = ConversionReport(
        arch=openstl_method(arch).arch,
        openstl_model=details["openstl_model"],
        source=info["source"],
        sha256=info["sha256"],
        container=info["container"],
        prefix=info["prefix"],
        config=model_cfg,
        input=spec,
        config_sources=details["config_sources"],
        tensors_mapped=details["tensors_mapped"],
        parameters=0,
        tensors_unused=details["tensors_unused"],
        placeholders=info["placeholders"],
        ignored_config=details["ignored_config"],
    )
    return out, rep


def _description(rep: ConversionReport) -> str:
    origin = f"`{rep.source}`" if rep.source else "an in-memory checkpoint"
    return (
        f"{openstl_method(rep.arch).label} converted from the OpenSTL checkpoint {origin} "
        f"({rep.openstl_model}; OpenSTL, {OPENSTL_URL}, {OPENSTL_LICENSE}) with stzoo.convert.from_openstl."
    )


def _origin_section(rep: ConversionReport, license_id: str) -> str:
    sha = f" (sha256 `{rep.sha256}`)" if rep.sha256 else ""
    unused = (
        (
            f"{len(rep.tensors_unused)} tensor(s) OpenSTL's own forward pass never reads were dropped: "
            + ", ".join(f"`{k}`" for k in rep.tensors_unused)
        )
        if rep.tensors_unused
        else "no tensor was dropped"
    )
    sources = "\n".join(f"  - `{k}`: {v}" for k, v in rep.config_sources.items())
    lines = [
        "## Origin",
        "",
        f"Converted from a checkpoint of [OpenSTL]({OPENSTL_URL}) (the TAU authors' library, "
        f"{OPENSTL_LICENSE}) with stzoo's OpenSTL importer (`stzoo convert openstl`).",
        "",
        f"- original file: `{rep.source}`{sha}" if rep.source else "- original file: (an in-memory checkpoint)",
        f"- OpenSTL model: `{rep.openstl_model}`",
        f"- format: {rep.container}" + (f", key prefix `{rep.prefix}` removed" if rep.prefix else ""),
        f"- license of the original weights: {license_id}",
        f"- {rep.tensors_mapped} tensors mapped one to one; {unused}",
        "- where each config value came from:",
        sources,
    ]
    notes = openstl_method(rep.arch).card_notes
    lines += [f"- {note}" for note in notes]
    if rep.placeholders:
        lines.append(f"- objects in the file outside the weights, not loaded: {', '.join(rep.placeholders)}")
    changed = " apart from what is said above" if notes else ""
    lines += [
        "",
        f"No value was changed{changed}: the model computes the function it computed in OpenSTL. "
        "Metrics OpenSTL reports for these weights were not re-measured by stzoo.",
        "",
    ]
    return "\n".join(lines)


def convert_openstl(
    checkpoint: str | os.PathLike[str] | Mapping[str, Any],
    arch: str,
    out_dir: str | os.PathLike[str],
    config: str | os.PathLike[str] | Mapping[str, Any] | None = None,
    *,
    name: str | None = None,
    license: str = OPENSTL_LICENSE,
) -> tuple[Path, ConversionReport]:
    """Convert an OpenSTL checkpoint and write it as a ``save_pretrained`` folder.

    The folder holds ``config.json``, ``model.safetensors`` and a ``README.md`` model card whose
    "Origin" section names OpenSTL, the original file (and its sha256), the license and how each
    config value was found. ``stzoo.load(out_dir)`` loads it.

    Args:
        checkpoint: as for :func:`from_openstl`.
        arch: as for :func:`from_openstl`.
        config: as for :func:`from_openstl`.
        out_dir: the folder to write (created if missing; those three files are overwritten).
        name: the checkpoint's name in the card (default ``<arch>-openstl-<file stem>``).
        license: the license of the original weights (OpenSTL's published weights: Apache-2.0).

    Returns:
        ``(folder, report)``.
    """
    from stzoo.version import __version__
    from stzoo.zoo.card import model_card
    from stzoo.zoo.folder import save_pretrained

    predictor = from_openstl(checkpoint, arch, config)
    rep = ConversionReport(**predictor.entry.extra["openstl"])
    stem = Path(rep.source).stem if rep.source else "checkpoint"
    name = name or f"{rep.arch.replace('_', '-')}-openstl-{re.sub(r'[^A-Za-z0-9_.-]+', '-', stem)}"
    predictor.entry = predictor.entry.replace(license=license)
    card_cfg = {
        "name": name,
        "architecture": rep.arch,
        "config": rep.config,
        "input": rep.input,
        "description": predictor.entry.description,
        "license": license,
        "stzoo_version": __version__,
    }
    card = model_card(card_cfg)
    card = card.replace("\n## Architecture\n", "\n" + _origin_section(rep, license) + "\n## Architecture\n", 1)
    folder = save_pretrained(predictor, out_dir, name=name, card=card)
    return folder, rep
