"""Import checkpoints of the PredFormer authors' code (github.com/yyyujintang/PredFormer), Quadruplet-TSST.

The authors' code is a fork of OpenSTL (its training loop, its checkpoint files — a raw state dict, or a
dict with ``state_dict`` / ``optimizer`` / ``scheduler`` — and its config files), so it is imported with
OpenSTL's machinery: importing this module registers the importer with
:func:`stzoo.convert.openstl.core.register_openstl`, and ``from_openstl(path, arch="PredFormer")`` /
``map_openstl_state_dict`` convert such a checkpoint with the same strict checks as TAU and ConvLSTM.
The tensor names are the authors' (OpenSTL itself ships only a FullAttention PredFormer, with no
Moving MNIST configuration).

What is mapped (authors' name → stzoo name), N = layer, J = block, and
``ts_temporal`` → ``t1``, ``ts_space`` → ``s1``, ``st_space`` → ``s2``, ``st_temporal`` → ``t2``::

    to_patch_embedding.1.*                          → embed.*   (input columns permuted, see below)
    blocks.N.<X>_transformer.layers.J.0.norm.*      → blocks.N.<x>.layers.J.norm1.*
    blocks.N.<X>_transformer.layers.J.0.fn.to_qkv.weight → blocks.N.<x>.layers.J.attn.qkv.weight
    blocks.N.<X>_transformer.layers.J.0.fn.to_out.0.*    → blocks.N.<x>.layers.J.attn.proj.*
    blocks.N.<X>_transformer.layers.J.1.norm.*      → blocks.N.<x>.layers.J.norm2.*
    blocks.N.<X>_transformer.layers.J.1.fn.{fc1_g,fc1_x,fc2}.* → blocks.N.<x>.layers.J.mlp.{fc1_g,fc1_x,fc2}.*
    blocks.N.<X>_transformer.norm.*                 → blocks.N.<x>.norm.*
    mlp_head.0.*, mlp_head.1.*                      → head_norm.*, head.*

Every tensor is used; the position embedding is not in the authors' state dict (a plain tensor) and
stzoo computes the same table. Their patch embedding reads a patch's values as ``(i·p + j)·C + c``,
stzoo's as ``c·p² + i·p + j``: the embedding's input columns are permuted (the head's order is the same).

What the weights cannot tell: the number of heads (only heads × dim_head is in ``to_qkv``), the patch size
when ``C·p²`` factors more than one way, the frame count T and the training size (the position
embedding is not saved). They come from the config — the authors' ``configs/mmnist/PredFormer.py`` keeps
them in a ``model_config`` dict, which :func:`predformer_config` flattens — or default to the authors'
Moving MNIST setting (8 heads, 10 frames, 64×64).

The authors' Quadruplet-STTS variant has exactly the same tensor names and shapes as TSST (it runs the
same four transformers in another order): nothing in a checkpoint tells them apart, and this importer
assumes TSST, the variant of the authors' Moving MNIST script. Their other variants are refused.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

from torch import Tensor

import stzoo.models.predformer  # noqa: F401  (registers the architecture)
from stzoo.convert.openstl.core import (
    _DEFAULTS,
    OpenSTLMethod,
    _count,
    _indices,
    _need,
    _patch_permutation,
    _Resolver,
    read_openstl_config,
    register_openstl,
    resolve_patch_and_channels,
)
from stzoo.errors import ConfigError, InputError

__all__ = ["PREDFORMER", "predformer_config"]

_WHAT = "the PredFormer authors' Quadruplet-TSST model (PredFormer_Model)"
_TRANSFORMERS = {"ts_temporal": "t1", "ts_space": "s1", "st_space": "s2", "st_temporal": "t2"}
_OTHER_VARIANTS = {  # a tensor-name hint → the authors' variant it belongs to
    "space_temporal_transformer.": "FullAttention",
    "space_transformer_first.": "Triplet-STS",
    "temporal_transformer_first.": "Triplet-TST",
}

#: the authors' ``model_config`` keys → the names stzoo's importer reads (training-only ones dropped)
_AUTHORS_KEYS = {
    "height": "height",
    "width": "width",
    "num_channels": "channels",
    "pre_seq": "pre_seq_length",
    "after_seq": "aft_seq_length",
    "patch_size": "patch_size",
    "dim": "dim",
    "heads": "heads",
    "dim_head": "dim_head",
    "scale_dim": "scale_dim",
    "depth": "depth",
    "Ndepth": "Ndepth",
    "drop_path": "drop_path",
}
_TRAINING_ONLY = ("dropout", "attn_dropout")


def predformer_config(config: Any) -> dict[str, Any]:
    """The authors' config (``configs/mmnist/PredFormer.py``, whose model settings sit in a ``model_config``
    dict, or such a dict itself) as the flat dict ``from_openstl(..., config=...)`` reads.

    ``dropout`` / ``attn_dropout`` (training only) are left out; other top-level entries of a ``.py`` file
    (``method``) are kept; an unknown ``model_config`` key is an error."""
    raw, _ = read_openstl_config(config)
    inner = raw.get("model_config", raw)
    if not isinstance(inner, Mapping):
        raise ConfigError(f"model_config must be a dict, got {type(inner).__name__}")
    unknown = sorted(k for k in inner if k not in _AUTHORS_KEYS and k not in _TRAINING_ONLY)
    if unknown:
        raise ConfigError(
            f"PredFormer model_config has key(s) {unknown} this importer does not know; "
            f"known: {sorted(_AUTHORS_KEYS) + list(_TRAINING_ONLY)}"
        )
    out = {_AUTHORS_KEYS[k]: v for k, v in inner.items() if k in _AUTHORS_KEYS}
    if "method" in raw:
        out["method"] = raw["method"]
    return out


def _resolve(state: Mapping[str, Tensor], r: _Resolver) -> tuple[dict[str, Any], dict[str, Any], str]:
    for hint, variant in _OTHER_VARIANTS.items():
        if any(hint in k for k in state):
            raise InputError(
                f"this is the PredFormer authors' {variant} variant (it has {hint}* tensors); stzoo "
                "implements Quadruplet-TSST only"
            )
    if "space_transformer.norm.weight" in state and "temporal_transformer.norm.weight" in state:
        raise InputError(
            "this is the PredFormer authors' factorised encoder (FacST / FacTS: one space_transformer "
            "and one temporal_transformer); stzoo implements Quadruplet-TSST only"
        )
    embed = _need(state, "to_patch_embedding.1.weight", _WHAT)
    head = _need(state, "mlp_head.1.weight", _WHAT)
    method = r.lookup("method")
    if method is not None and method[0] != "predformer":
        raise ConfigError(
            f"the {method[1]} says method={method[0]!r}, but this converts PredFormer (method 'PredFormer')"
        )
    n_layers = _count(_indices(state, r"^blocks\.(\d+)\."), "the PredFormer layers blocks.N")
    names = sorted({m.group(1) for k in state if (m := re.match(r"^blocks\.0\.([a-z_]+)_transformer\.", k))})
    if names != sorted(_TRANSFORMERS):
        kind = "Binary-TS / Binary-ST" if len(names) == 2 else "not one of the authors' PredFormer variants"
        raise InputError(
            f"the first PredFormer layer has the transformers {names}: {kind}; stzoo implements "
            f"Quadruplet-TSST ({', '.join(sorted(_TRANSFORMERS))})"
        )
    depths = {
        name: _count(
            _indices(state, rf"^blocks\.0\.{name}_transformer\.layers\.(\d+)\."),
            f"the blocks blocks.0.{name}_transformer.layers.N",
        )
        for name in _TRANSFORMERS
    }
    if len(set(depths.values())) != 1:
        raise InputError(
            f"the four transformers of a layer have different depths {depths}; the authors' "
            "PredFormerLayer builds them alike"
        )
    depth = next(iter(depths.values()))
    if embed.dim() != 2 or head.dim() != 2:
        raise InputError("to_patch_embedding.1.weight and mlp_head.1.weight must be linear layers (2-D weights)")
    dim, patch_ch = int(embed.shape[0]), int(embed.shape[1])
    qkv = _need(state, "blocks.0.ts_temporal_transformer.layers.0.0.fn.to_qkv.weight", _WHAT)
    fc1 = _need(state, "blocks.0.ts_temporal_transformer.layers.0.1.fn.fc1_g.weight", _WHAT)
    if qkv.shape[0] % 3:
        raise InputError(f"to_qkv has {qkv.shape[0]} outputs, not 3 × heads × dim_head")
    inner = int(qkv.shape[0]) // 3
    cfg: dict[str, Any] = {}
    cfg["dim"] = r.inferred("dim", dim)
    cfg["Ndepth"] = r.inferred("Ndepth", n_layers)
    cfg["depth"] = r.inferred("depth", depth)
    if fc1.shape[0] % dim:
        raise InputError(f"the SwiGLU is {fc1.shape[0]} wide, not a multiple of dim={dim} (scale_dim · dim)")
    cfg["scale_dim"] = r.inferred("scale_dim", int(fc1.shape[0]) // dim)
    dim_head = r.lookup("dim_head")
    if dim_head is not None:
        if inner % dim_head[0]:
            raise ConfigError(
                f"the {dim_head[1]} says dim_head={dim_head[0]}, but to_qkv has heads × dim_head = {inner}"
            )
        heads = r.inferred("heads", inner // dim_head[0], label="heads (to_qkv width / dim_head)")
        r.sources["dim_head"] = dim_head[1]
    else:
        heads = r.chosen("heads", 8, note="default (the authors' Moving MNIST setting)")
        if heads < 1 or inner % heads:
            raise ConfigError(
                f"heads={heads} does not divide to_qkv's heads × dim_head = {inner}; pass the config's heads / dim_head"
            )
        r.sources["dim_head"] = "weights (to_qkv width / heads)"
    cfg["heads"], cfg["dim_head"] = heads, inner // heads
    has_out = "blocks.0.ts_temporal_transformer.layers.0.0.fn.to_out.0.weight" in state
    if has_out == (heads == 1 and inner == dim):
        raise InputError(
            f"with heads={heads} and dim_head={inner // heads} the authors' attention "
            f"{'has no' if has_out else 'has an'} output projection (to_out), but the checkpoint "
            f"{'has one' if has_out else 'has none'}: check heads / dim_head"
        )
    p, c = resolve_patch_and_channels(
        r,
        patch_ch,
        "PredFormer",
        reader="the patch embedding",
        per="patch",
        usual="the authors' Moving MNIST config uses patch_size 8 with 1 channel",
        how="predformer_config('configs/mmnist/PredFormer.py')",
    )
    cfg["patch_size"], cfg["channels"] = p, c
    cfg["frames"] = r.chosen("frames_in", _DEFAULTS["frames_in"])
    r.sources["frames"] = r.sources.pop("frames_in")
    cfg["height"] = r.chosen("height", _DEFAULTS["height"])
    cfg["width"] = r.chosen("width", _DEFAULTS["width"])
    for key in ("height", "width"):
        if cfg[key] % p:
            raise ConfigError(f"{key}={cfg[key]} is not divisible by patch_size={p}")
    cfg["drop_path"] = r.chosen("drop_path", 0.0, note="default (the authors' Moving MNIST setting; training only)")
    spec = {
        "frames_in": cfg["frames"],
        "frames_out": r.chosen("frames_out", cfg["frames"], note="= frames_in (PredFormer maps T frames to T)"),
        "channels": c,
        "height": cfg["height"],
        "width": cfg["width"],
        "value_range": [0.0, 1.0],
    }
    return cfg, spec, "PredFormer_Model (Quadruplet-TSST)"


_TOP = {"embed.": "to_patch_embedding.1.", "head_norm.": "mlp_head.0.", "head.": "mlp_head.1."}
_BLOCK = {
    "norm1.": "0.norm.",
    "attn.qkv.": "0.fn.to_qkv.",
    "attn.proj.": "0.fn.to_out.0.",
    "norm2.": "1.norm.",
    "mlp.": "1.fn.",
}


def _authors_key(key: str) -> str:
    """The authors' name of stzoo tensor ``key``."""
    for mine, theirs in _TOP.items():
        if key.startswith(mine):
            return theirs + key[len(mine) :]
    m = re.match(r"^blocks\.(\d+)\.(t1|s1|s2|t2)\.(.*)$", key)
    if m is None:
        raise AssertionError(f"no authors' name for stzoo key {key}")  # stzoo's PredFormer changed: update this
    name = {v: k for k, v in _TRANSFORMERS.items()}[m.group(2)]
    base, rest = f"blocks.{m.group(1)}.{name}_transformer.", m.group(3)
    if rest.startswith("norm."):
        return base + rest
    lm = re.match(r"^layers\.(\d+)\.(.*)$", rest)
    for mine, theirs in _BLOCK.items():
        if lm is not None and lm.group(2).startswith(mine):
            return f"{base}layers.{lm.group(1)}.{theirs}{lm.group(2)[len(mine) :]}"
    raise AssertionError(f"no authors' name for stzoo key {key}")


def _pairs(
    model_keys: list[str], cfg: dict[str, Any]
) -> tuple[dict[str, tuple[str | None, Callable[[Tensor], Tensor] | None]], dict[str, tuple[int, ...]]]:
    """stzoo key → (authors' key, transform); every tensor of theirs is used."""
    perm = _patch_permutation(cfg["channels"], cfg["patch_size"])
    return {k: (_authors_key(k), (lambda w: w[:, perm]) if k == "embed.weight" else None) for k in model_keys}, {}


PREDFORMER = register_openstl(
    OpenSTLMethod(
        arch="predformer",
        names=("predformer",),
        label="PredFormer",
        config_keys=frozenset({"patch_size", "dim", "heads", "dim_head", "scale_dim", "depth", "Ndepth", "drop_path"}),
        resolve=_resolve,
        pairs=_pairs,
        card_notes=(
            "the weights come from the PredFormer authors' code (github.com/yyyujintang/PredFormer, an OpenSTL "
            "fork), read as Quadruplet-TSST; the patch embedding's input columns were permuted from their "
            "patch order ((i·p + j)·C + c) to stzoo's (c·p² + i·p + j)",
        ),
    )
)
