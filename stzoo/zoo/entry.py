"""One zoo entry as a typed, frozen value: :class:`ZooEntry`.

The manifest (``stzoo/weights_manifest.json``, schema ``weights_manifest.schema.json``) and a
``save_pretrained`` folder's ``config.json`` are JSON documents; library code reads them through a
:class:`ZooEntry` (``entry.architecture``, ``entry.config``, ``entry.input.frames_in``,
``entry.weights.sha256``) built by :meth:`ZooEntry.from_dict`, which says which entry and which field
is wrong instead of raising a bare ``KeyError``. :meth:`ZooEntry.to_dict` gives the JSON document
back, equal to the one read, so code that writes the manifest keeps writing dicts.
"""

from __future__ import annotations

import copy
import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from stzoo.errors import ConfigError

__all__ = [
    "ZooEntry",
    "WeightsSpec",
    "HubSpec",
    "InputSpec",
    "Units",
    "CONFIG_NAME",
    "WEIGHTS_NAME",
    "CARD_NAME",
    "FORMAT_VERSION",
    "INPUT_LIMITS",
    "MAX_JSON_DEPTH",
    "json_depth_problem",
]

#: The files of a ``save_pretrained`` checkpoint folder (:mod:`stzoo.zoo.folder`): its config.json is a
#: :class:`ZooEntry` document plus the keys below the manifest's (``stzoo_format``, ``source``, ...).
CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
CARD_NAME = "README.md"
FORMAT_VERSION = 1

#: ``input`` keys every entry has (``value_range`` defaults to [0, 1] in a checkpoint's config.json).
_INPUT_INTS = ("frames_in", "frames_out", "channels", "height", "width")

#: The largest value each ``input`` integer may hold: an entry beyond them is refused as malformed (no
#: model of the zoo comes near them; a crafted config.json would otherwise size buffers by them).
INPUT_LIMITS = {"frames_in": 10_000, "frames_out": 10_000, "channels": 4096, "height": 65_536, "width": 65_536}

#: How deeply a JSON document of an entry (a manifest entry, a checkpoint's config.json) may nest.
MAX_JSON_DEPTH = 32


def json_depth_problem(value: Any, limit: int = MAX_JSON_DEPTH) -> str | None:
    """Where ``value`` (parsed JSON) nests deeper than ``limit`` levels, in words; ``None`` if it does not.
    Iterative, so a crafted document cannot exhaust the interpreter's stack here."""
    stack = [(value, 1, "")]
    while stack:
        v, depth, where = stack.pop()
        if depth > limit:
            return f"it nests deeper than {limit} levels (at {where[:80] or 'the top'})"
        if isinstance(v, Mapping):
            stack.extend((child, depth + 1, f"{where}.{str(k)[:20]}") for k, child in v.items())
        elif isinstance(v, (list, tuple)):
            stack.extend((child, depth + 1, f"{where}[{i}]") for i, child in enumerate(v))
    return None


#: Optional manifest sections kept as JSON objects (measurement records: read by tables and cards).
_RECORDS = ("metrics", "training", "flops", "speed", "strip", "rollout", "bf16", "gate")


@dataclass(frozen=True)
class Units:
    """How a dataset's natural units (taxi flows, a weather field) become the values a model sees:
    ``model value = (natural - offset) / scale`` (``input.units`` in a config.json). With it,
    :meth:`stzoo.Predictor.predict` takes and returns frames in those natural units."""

    offset: float
    scale: float
    natural: str = ""

    @classmethod
    def from_dict(cls, d: Any) -> Units:
        """Read and check ``{"offset": .., "scale": .., "natural": ..}`` (finite numbers, scale > 0)."""
        import math

        if not isinstance(d, Mapping):
            raise ConfigError(f"input.units must be an object with offset and scale, got {type(d).__name__}")
        vals = []
        for key in ("offset", "scale"):
            v = d.get(key)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
                raise ConfigError(f"input.units.{key} must be a finite number, got {str(v)[:80]!r}")
            vals.append(float(v))
        if vals[1] <= 0:
            raise ConfigError(f"input.units.scale must be positive, got {vals[1]}")
        return cls(vals[0], vals[1], str(d.get("natural", "")))

    def to_dict(self) -> dict[str, Any]:
        """The JSON object it was read from."""
        return {"offset": self.offset, "scale": self.scale, "natural": self.natural}


@dataclass(frozen=True)
class InputSpec:
    """What a model expects: frames in/out, channels, training size and value range (and, for data in
    physical units, :class:`Units`)."""

    frames_in: int
    frames_out: int
    channels: int
    height: int
    width: int
    value_range: tuple[float, float] = (0.0, 1.0)
    units: Units | None = None

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> InputSpec:
        """Read the manifest's ``input`` object (``value_range`` defaults to [0, 1])."""
        return cls(
            int(d["frames_in"]),
            int(d["frames_out"]),
            int(d["channels"]),
            int(d["height"]),
            int(d["width"]),
            tuple(float(v) for v in d.get("value_range", (0.0, 1.0))),
            Units.from_dict(d["units"]) if d.get("units") is not None else None,
        )

    def to_dict(self) -> dict[str, Any]:
        """The manifest's ``input`` object (without ``normalization``)."""
        out = {
            "frames_in": self.frames_in,
            "frames_out": self.frames_out,
            "channels": self.channels,
            "height": self.height,
            "width": self.width,
            "value_range": list(self.value_range),
        }
        if self.units is not None:
            out["units"] = self.units.to_dict()
        return out


def _fail(name: str, what: str) -> ConfigError:
    return ConfigError(f"zoo entry {name!r}: {what}")


def _require(name: str, d: Mapping[str, Any], key: str, kind: type | tuple[type, ...], label: str) -> Any:
    if key not in d:
        raise _fail(name, f"field {key!r} ({label}) is missing")
    value = d[key]
    if not isinstance(value, kind) or isinstance(value, bool) and kind is not bool:
        raise _fail(name, f"field {key!r} must be {label}, got {type(value).__name__} {str(value)[:80]!r}")
    return value


def _optional(name: str, d: Mapping[str, Any], key: str, kind: type | tuple[type, ...], label: str) -> Any:
    return _require(name, d, key, kind, label) if key in d and d[key] is not None else None


@dataclass(frozen=True)
class HubSpec:
    """Where released weights live on the Hugging Face Hub (``weights.hub`` in the manifest)."""

    repo_id: str
    filename: str
    revision: str

    def to_dict(self) -> dict[str, Any]:
        """The manifest's JSON object."""
        return {"repo_id": self.repo_id, "filename": self.filename, "revision": self.revision}


@dataclass(frozen=True)
class WeightsSpec:
    """An entry's released weights file: name, sha256, size, dtype and (optionally) its Hub location.

    A checkpoint folder's config.json records only ``filename``, ``sha256`` and ``size``, so those
    others may be ``None``."""

    filename: str | None
    sha256: str | None
    size: int | None = None
    dtype: str | None = None
    hub: HubSpec | None = None
    _keys: tuple[str, ...] = field(default=(), repr=False, compare=False)

    @classmethod
    def from_dict(cls, name: str, d: Any) -> WeightsSpec:
        """Validate ``d`` (the entry's ``weights`` object); ``name`` is the entry, for messages."""
        if not isinstance(d, Mapping):
            raise _fail(name, f"field 'weights' must be an object, got {type(d).__name__}")
        hub = _optional(name, d, "hub", Mapping, "an object with repo_id, filename and revision")
        if hub is not None:
            hub = HubSpec(
                *(
                    str(_require(name, hub, k, str, f"the Hub {k}, a string"))
                    for k in ("repo_id", "filename", "revision")
                )
            )
        sha = _optional(name, d, "sha256", str, "hex")
        if sha is not None and not (len(sha) == 64 and all(c in "0123456789abcdef" for c in sha)):
            raise _fail(name, f"field 'weights.sha256' must be 64 lowercase hex digits, got {sha[:80]!r}")
        size = _optional(name, d, "size", int, "an integer")
        if size is not None and size < 0:
            raise _fail(name, f"field 'weights.size' must be a byte count >= 0, got {size}")
        return cls(
            _optional(name, d, "filename", str, "a file name"),
            sha,
            size,
            _optional(name, d, "dtype", str, "a dtype name"),
            hub,
            tuple(d),
        )

    def to_dict(self) -> dict[str, Any]:
        """The JSON object it was read from."""
        values = {
            "filename": self.filename,
            "sha256": self.sha256,
            "size": self.size,
            "dtype": self.dtype,
            "hub": self.hub.to_dict() if self.hub else None,
        }
        return {k: values[k] for k in self._keys if k in values}


@dataclass(frozen=True)
class ZooEntry:
    """A zoo entry (aliases followed) or a checkpoint folder's config, read from its JSON document.

    Attributes:
        name: the canonical zoo name (or the checkpoint's recorded name; ``None`` for an unnamed model).
        architecture: the registered architecture id, e.g. ``"tau"``.
        config: the architecture config (a JSON object).
        input: frames in / out, channels, training size and value range.
        normalization: how frames were scaled into ``input.value_range``, where recorded.
        description, parameters, license: as the manifest says (``None`` where absent).
        dataset: the stzoo dataset it is trained and measured on (``None``: Moving MNIST).
        weights: the released weights, or ``None`` for an entry without them.
        metrics, training, flops, speed, strip, rollout, bf16: measurement records (JSON objects).
        gate: the release gate's record (``passed``, ``forced``, the trivial baselines of the same test
            set); see :attr:`undertrained`.
        aliases: the alias names that point at this entry.
        extra: other keys of the document (a checkpoint's ``source``, ``base_model``, ``adapted``, ...).
    """

    name: str | None
    architecture: str
    config: Mapping[str, Any]
    input: InputSpec
    normalization: str | None = None
    description: str | None = None
    parameters: int | None = None
    license: str | None = None
    dataset: str | None = None
    weights: WeightsSpec | None = None
    metrics: Mapping[str, Any] | None = None
    training: Mapping[str, Any] | None = None
    flops: Mapping[str, Any] | None = None
    speed: Mapping[str, Any] | None = None
    strip: Mapping[str, Any] | None = None
    rollout: Mapping[str, Any] | None = None
    bf16: Mapping[str, Any] | None = None
    gate: Mapping[str, Any] | None = None
    aliases: tuple[str, ...] = ()
    extra: Mapping[str, Any] = field(default_factory=dict)
    _weights_key: bool = field(default=False, repr=False, compare=False)  # "weights": null / {} kept as read
    _order: tuple[str, ...] = field(default=(), repr=False, compare=False)  # the document's key order

    @property
    def undertrained(self) -> bool:
        """Whether the released weights do not beat the trivial baselines of their own test set (copy-last-frame
        and the mean frame on MSE, copy-last on SSIM): released with ``--force`` below the release gate.
        ``stzoo list``, the zoo table and the card mark such an entry, and ``stzoo.load`` warns once."""
        return bool(self.weights is not None and self.gate is not None and not self.gate.get("passed", False))

    @classmethod
    def from_dict(cls, name: str | None, d: Any, *, aliases: tuple[str, ...] = ()) -> ZooEntry:
        """Validate and read ``d`` (a manifest entry or a checkpoint's config.json).

        Raises:
            ConfigError: naming the entry and the field, for a missing or mistyped field.
        """
        label = name if name is not None else "?"
        if not isinstance(d, Mapping):
            raise _fail(label, f"must be a JSON object, got {type(d).__name__}")
        if "alias" in d:
            raise _fail(label, f"is an alias of {d['alias']!r}: resolve it first (stzoo.zoo.manifest.get_entry)")
        d = copy.deepcopy(dict(d))
        arch = _require(label, d, "architecture", str, "an architecture id such as 'tau'")
        config = _require(label, d, "config", Mapping, "an object of architecture settings")
        raw_in = _require(label, d, "input", Mapping, f"an object with {', '.join(_INPUT_INTS)}")
        problem = json_depth_problem(d)
        if problem:
            raise _fail(label, f"the document is malformed: {problem}")
        for k in _INPUT_INTS:
            v = _require(label, raw_in, k, int, "an integer")
            if not 1 <= v <= INPUT_LIMITS[k]:
                raise _fail(label, f"field 'input.{k}' must be an integer from 1 to {INPUT_LIMITS[k]:,}, got {v}")
        vr = raw_in.get("value_range", (0.0, 1.0))
        if (
            not isinstance(vr, (list, tuple))
            or len(vr) != 2
            or not all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in vr)
            or not vr[0] < vr[1]
        ):
            raise _fail(
                label, f"field 'input.value_range' must be two finite numbers, low < high, got {str(vr)[:80]!r}"
            )
        spec = InputSpec.from_dict(raw_in)
        weights = d.get("weights")
        records = {k: _optional(label, d, k, Mapping, "an object") for k in _RECORDS}
        known = {
            "architecture",
            "config",
            "input",
            "description",
            "parameters",
            "license",
            "dataset",
            "weights",
            "name",
            *_RECORDS,
        }
        return cls(
            name=name if name is not None else d.get("name"),
            architecture=arch,
            config=config,
            input=spec,
            normalization=_optional(label, raw_in, "normalization", str, "a string"),
            description=_optional(label, d, "description", str, "a string"),
            parameters=_optional(label, d, "parameters", int, "an integer"),
            license=_optional(label, d, "license", str, "a license id such as 'Apache-2.0'"),
            dataset=_optional(label, d, "dataset", str, "a dataset id"),
            weights=WeightsSpec.from_dict(label, weights) if weights else None,
            **records,
            aliases=tuple(aliases),
            extra={k: v for k, v in d.items() if k not in known},
            _weights_key="weights" in d and not weights,
            _order=tuple(d),
        )

    def to_dict(self, *, with_name: bool = False) -> dict[str, Any]:
        """The JSON document (a fresh copy): equal to the one :meth:`from_dict` read. ``with_name`` adds
        ``"name"`` first, as :func:`stzoo.info` shows an entry."""
        out: dict[str, Any] = {"name": self.name} if with_name else {}
        inp = self.input.to_dict()
        if self.normalization is not None:
            inp["normalization"] = self.normalization
        out.update(architecture=self.architecture, config=copy.deepcopy(dict(self.config)))
        for key in ("description", "parameters", "license", "dataset"):
            if getattr(self, key) is not None:
                out[key] = getattr(self, key)
        out["input"] = inp
        if self.weights is not None:
            out["weights"] = self.weights.to_dict()
        elif self._weights_key:
            out["weights"] = None
        for key in _RECORDS:
            if getattr(self, key) is not None:
                out[key] = copy.deepcopy(dict(getattr(self, key)))
        out.update(copy.deepcopy(dict(self.extra)))
        first = ["name"] if with_name else []
        order = first + [k for k in self._order if k in out and k not in first]
        return {k: out[k] for k in order + [k for k in out if k not in order]}

    def replace(self, **changes: Any) -> ZooEntry:
        """A copy with ``changes`` (``extra=`` replaces the whole mapping)."""
        return dataclasses.replace(self, **changes)

    @property
    def has_weights(self) -> bool:
        """Whether released weights are recorded."""
        return self.weights is not None
