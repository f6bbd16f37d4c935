"""Import OpenSTL SwinLSTM-D checkpoints (``SwinLSTM_D_Model``, method ``SwinLSTM_D``).

Importing this module registers the importer with :func:`stzoo.convert.openstl.core.register_openstl`, so
``from_openstl(path, arch="SwinLSTM")`` (or ``"swinlstm_d"`` / ``"SwinLSTM-D"``, any case) and
``map_openstl_state_dict`` work for it, with the same strict checks as TAU and ConvLSTM.

What is mapped (OpenSTL name → stzoo name), i = stage, j = Swin block::

    Downsample.patch_embed.{proj,norm}.*          → embed.{proj,norm}.*
    Downsample.layers.i.STBs.j.norm1/norm2.*      → down.i.blocks.j.norm1/norm2.*
    Downsample.layers.i.STBs.j.attn.qkv/proj.*    → down.i.blocks.j.attn.qkv/proj.*
    Downsample.layers.i.STBs.j.attn.relative_position_bias_table → down.i.blocks.j.attn.relative_position_bias_table
    Downsample.layers.i.STBs.j.mlp.fc1/fc2.*      → down.i.blocks.j.mlp.fc1/fc2.*
    Downsample.layers.i.STBs.j.red.*  (j even)    → down.i.blocks.j.reduce.*
    Downsample.downsample.i.{norm,reduction}.*    → merge.i.{norm,reduction}.*
    Upsample.layers.i.STBs.j.*                    → up.i.blocks.j.*   (as for the down cells)
    Upsample.upsample.i.{expand,norm}.*           → expand.i.{expand,norm}.*
    Upsample.Unembed.Conv.*                       → unembed.*

Dropped, with their shapes checked:

* ``Upsample.patch_embed.*`` and the ``red`` of every odd-numbered block: OpenSTL builds them and its
  forward never calls them;
* timm ≤ 0.6's saved buffers ``...attn.relative_position_index`` and ``...attn_mask``: constants of the
  window and the training grid, which stzoo recomputes. Their values are checked too (a file whose
  buffers differ from timm's formulas is refused), and ``attn_mask`` tells the training size.

The sizes are read from the tensors: embed_dim and channels from the patch embedding, the stages and
blocks from the key numbering, heads and windows from the relative position tables, mlp_ratio from the
MLPs, the training size from an ``attn_mask`` (else the config, else 64×64). OpenSTL's config gives the
depths and heads as strings (``depths_downsample = '2,6'``), which the shared config reader does not parse
yet: they are not among this importer's config keys, so a ``.py`` config file lists them among the ignored
settings (the weights tell them). The resolver already compares them (``depths_downsample``,
``depths_upsample``, ``num_heads``, as int lists) for when they are. SwinLSTM-B (``STconvert``) is refused.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

import torch
from torch import Tensor

from stzoo.convert.openstl.core import _DEFAULTS, OpenSTLMethod, _count, _indices, _need, _Resolver, register_openstl
from stzoo.errors import ConfigError, InputError
from stzoo.models.swinlstm import SwinLSTMConfig, relative_position_index, shifted_window_mask, stage_plan

__all__ = ["SWINLSTM"]

_WHAT = "OpenSTL's SwinLSTM-D model (SwinLSTM_D_Model)"
_BUFFERS = ("relative_position_index", "attn_mask")


def _window_of(table: Tensor, key: str) -> int:
    side = round((table.shape[0]) ** 0.5)
    if table.dim() != 2 or side * side != table.shape[0] or side % 2 == 0:
        raise InputError(f"{key} has shape {tuple(table.shape)}; expected (2·window − 1)² × heads")
    return (side + 1) // 2


def _cells(state: Mapping[str, Tensor], path: str) -> list[int]:
    """Blocks per cell of ``path`` (``Downsample`` / ``Upsample``), cell by cell."""
    n = _count(_indices(state, rf"^{path}\.layers\.(\d+)\."), f"the {path} cells {path}.layers.N")
    return [
        _count(_indices(state, rf"^{path}\.layers\.{i}\.STBs\.(\d+)\."), f"the Swin blocks {path}.layers.{i}.STBs.N")
        for i in range(n)
    ]


def _resolve(state: Mapping[str, Tensor], r: _Resolver) -> tuple[dict[str, Any], dict[str, Any], str]:
    if "ST.patch_embed.proj.weight" in state:
        raise InputError(
            "this is OpenSTL's SwinLSTM-B (SwinLSTM_B_Model, one STconvert cell); stzoo imports "
            "SwinLSTM-D (SwinLSTM_D_Model) only"
        )
    embed = _need(state, "Downsample.patch_embed.proj.weight", _WHAT)
    _need(state, "Upsample.Unembed.Conv.weight", _WHAT)
    method = r.lookup("method")
    if method is not None and method[0] not in ("swinlstm_d", "swinlstm"):
        raise ConfigError(
            f"the {method[1]} says method={method[0]!r}, but this converts OpenSTL's SwinLSTM-D (method 'SwinLSTM_D')"
        )
    if embed.dim() != 4 or embed.shape[-1] != embed.shape[-2]:
        raise InputError(
            f"Downsample.patch_embed.proj.weight has shape {tuple(embed.shape)}; expected a square "
            "patch embedding kernel"
        )
    e, c, p = int(embed.shape[0]), int(embed.shape[1]), int(embed.shape[-1])
    if p != 2:
        raise InputError(
            f"the patch embedding cuts {p}×{p} patches; SwinLSTM's reconstruction (a stride-2 "
            "transposed conv) only gives back the frame size for patch_size 2"
        )
    down, up = _cells(state, "Downsample"), _cells(state, "Upsample")
    n = len(down)
    if len(up) != n:
        raise InputError(f"the checkpoint has {n} down cell(s) and {len(up)} up cell(s); SwinLSTM-D has as many")
    heads, windows = [], []
    for path, cells in (("Downsample", down), ("Upsample", up)):
        for i, depth in enumerate(cells):
            key = f"{path}.layers.{i}.STBs.0.attn.relative_position_bias_table"
            heads.append(int(_need(state, key, _WHAT).shape[1]))
            for j in range(depth):
                key = f"{path}.layers.{i}.STBs.{j}.attn.relative_position_bias_table"
                windows.append(_window_of(_need(state, key, _WHAT), key))
    down_heads, up_heads = heads[:n], heads[n:]
    if [up_heads[n - 1 - k] for k in range(n)] != down_heads:
        raise InputError(
            f"the down cells have {down_heads} heads and the up cells (coarsest first) {up_heads}; "
            "OpenSTL's SwinLSTM-D gives the up cell at each level the heads of the down cell there"
        )
    fc1 = _need(state, "Downsample.layers.0.STBs.0.mlp.fc1.weight", _WHAT)
    cfg: dict[str, Any] = {}
    cfg["channels"] = r.inferred("channels", c)
    cfg["patch_size"] = r.inferred("patch_size", p)
    cfg["embed_dim"] = r.inferred("embed_dim", e)
    # OpenSTL's names; a config's values are compared once its '2,6'-style strings are parsed (see the docstring)
    cfg["depths_down"] = r.inferred("depths_downsample", down, out_key="depths_down")
    cfg["depths_up"] = r.inferred("depths_upsample", [up[n - 1 - k] for k in range(n)], out_key="depths_up")
    cfg["num_heads"] = r.inferred("num_heads", down_heads)
    cfg["window_size"] = r.inferred("window_size", max(windows))
    cfg["mlp_ratio"] = r.inferred("mlp_ratio", fc1.shape[0] / e)
    masks = sorted(k for k in state if k.endswith(".attn_mask"))
    if masks:  # nW = (grid / window)² at that cell's level: the training size
        m = re.match(r"^(Downsample|Upsample)\.layers\.(\d+)\.STBs\.(\d+)\.attn_mask$", masks[0])
        if m is None:
            raise InputError(f"unexpected tensor {masks[0]}")
        i = int(m.group(2))
        level = i if m.group(1) == "Downsample" else n - i
        w = _window_of(state[masks[0].replace("attn_mask", "attn.relative_position_bias_table")], masks[0])
        side = round(state[masks[0]].shape[0] ** 0.5) * w
        size = side * 2**level * p
        cfg["height"] = r.inferred("height", size, label="height (from the shifted-window masks)")
        cfg["width"] = r.inferred("width", size, label="width (from the shifted-window masks)")
    else:
        cfg["height"] = r.chosen("height", _DEFAULTS["height"])
        cfg["width"] = r.chosen("width", cfg["height"], note="= height (OpenSTL's SwinLSTM needs square frames)")
    if cfg["height"] != cfg["width"]:
        raise ConfigError(f"OpenSTL's SwinLSTM runs on square frames only (H = W), got {cfg['height']}×{cfg['width']}")
    cfg["drop_path"] = 0.1
    r.sources["drop_path"] = "OpenSTL's fixed drop_path_rate (0.1; training only)"
    cfg["frames_in"] = r.chosen("frames_in", _DEFAULTS["frames_in"])
    cfg["frames_out"] = r.chosen("frames_out", _DEFAULTS["frames_out"])
    try:
        model_cfg = SwinLSTMConfig.from_dict(cfg)
    except ConfigError as exc:
        raise ConfigError(f"the checkpoint's sizes do not make a SwinLSTM-D stzoo can build: {exc}") from None
    _check_windows_and_buffers(state, model_cfg)
    spec = {
        "frames_in": cfg["frames_in"],
        "frames_out": cfg["frames_out"],
        "channels": c,
        "height": cfg["height"],
        "width": cfg["width"],
        "value_range": [0.0, 1.0],
    }
    return cfg, spec, "SwinLSTM_D_Model"


def _check_windows_and_buffers(state: Mapping[str, Tensor], cfg: SwinLSTMConfig) -> None:
    """Every table must be the size the training grid gives its stage, and timm's saved buffers (if any)
    must hold what timm computes for that window and grid."""
    down, up = stage_plan(cfg)
    grid = cfg.height // cfg.patch_size
    for path, plans in (("Downsample", down), ("Upsample", up)):
        for i, s in enumerate(plans):
            for j in range(s.depth):
                b = f"{path}.layers.{i}.STBs.{j}"
                w = _window_of(state[f"{b}.attn.relative_position_bias_table"], b)
                if w != s.window:
                    raise ConfigError(
                        f"{b} has a relative position table for {w}×{w} windows, but at "
                        f"{cfg.height}×{cfg.width} that cell's grid ({grid >> s.level}) gives "
                        f"{s.window}×{s.window}: the checkpoint was trained at another size; pass "
                        "it (e.g. in_shape) in the config"
                    )
                index = state.get(f"{b}.attn.relative_position_index")
                if index is not None and (
                    index.shape != (w * w, w * w) or not torch.equal(index.long(), relative_position_index(w))
                ):
                    raise InputError(f"{b}.attn.relative_position_index is not timm's index for {w}×{w} windows")
                mask = state.get(f"{b}.attn_mask")
                shifted = j % 2 == 1 and s.shift > 0
                if mask is not None and not shifted:
                    raise InputError(
                        f"{b}.attn_mask exists, but that block does not shift its windows at {cfg.height}×{cfg.width}"
                    )
                if mask is not None:
                    want = shifted_window_mask(grid >> s.level, grid >> s.level, s.window, s.shift)
                    if mask.shape != want.shape or not torch.equal(mask.float(), want):
                        raise InputError(
                            f"{b}.attn_mask is not timm's shifted-window mask of a "
                            f"{grid >> s.level}×{grid >> s.level} grid with {s.window}×{s.window} windows"
                        )


def _pairs(
    model_keys: list[str], cfg: dict[str, Any]
) -> tuple[dict[str, tuple[str | None, Callable[[Tensor], Tensor] | None]], dict[str, tuple[int, ...]]]:
    """stzoo key → (OpenSTL key, None); and the OpenSTL tensors dropped, with their shapes."""
    pairs: dict[str, tuple[str | None, Callable[[Tensor], Tensor] | None]] = {}
    rules = [
        (r"^embed\.", "Downsample.patch_embed."),
        (r"^down\.(\d+)\.blocks\.(\d+)\.reduce\.", r"Downsample.layers.\1.STBs.\2.red."),
        (r"^down\.(\d+)\.blocks\.(\d+)\.", r"Downsample.layers.\1.STBs.\2."),
        (r"^merge\.(\d+)\.", r"Downsample.downsample.\1."),
        (r"^up\.(\d+)\.blocks\.(\d+)\.reduce\.", r"Upsample.layers.\1.STBs.\2.red."),
        (r"^up\.(\d+)\.blocks\.(\d+)\.", r"Upsample.layers.\1.STBs.\2."),
        (r"^expand\.(\d+)\.", r"Upsample.upsample.\1."),
        (r"^unembed\.", "Upsample.Unembed.Conv."),
    ]
    for key in model_keys:
        for pattern, repl in rules:
            new, hit = re.subn(pattern, repl, key)
            if hit:
                pairs[key] = (new, None)
                break
        else:
            raise AssertionError(f"no OpenSTL name for stzoo key {key}")  # stzoo's SwinLSTM changed: update this
    model_cfg = SwinLSTMConfig.from_dict(cfg)
    down, up = stage_plan(model_cfg)
    e, c, p = model_cfg.embed_dim, model_cfg.channels, model_cfg.patch_size
    grid = model_cfg.height // p
    unused: dict[str, tuple[int, ...]] = {
        "Upsample.patch_embed.proj.weight": (e, c, p, p),
        "Upsample.patch_embed.proj.bias": (e,),
        "Upsample.patch_embed.norm.weight": (e,),
        "Upsample.patch_embed.norm.bias": (e,),
    }
    for path, plans in (("Downsample", down), ("Upsample", up)):
        for i, s in enumerate(plans):
            for j in range(s.depth):
                b = f"{path}.layers.{i}.STBs.{j}"
                n = s.window**2
                unused[f"{b}.attn.relative_position_index"] = (n, n)
                if j % 2 == 1:
                    unused[f"{b}.red.weight"] = (s.dim, 2 * s.dim)
                    unused[f"{b}.red.bias"] = (s.dim,)
                    if s.shift:
                        unused[f"{b}.attn_mask"] = (((grid >> s.level) // s.window) ** 2, n, n)
    return pairs, unused


SWINLSTM = register_openstl(
    OpenSTLMethod(
        arch="swinlstm",
        names=("swinlstm", "swinlstm_d"),
        label="SwinLSTM-D",
        config_keys=frozenset(
            {"patch_size", "window_size", "embed_dim", "mlp_ratio", "depths_downsample", "depths_upsample", "num_heads"}
        ),
        resolve=_resolve,
        pairs=_pairs,
        card_notes=(
            "OpenSTL's `Upsample.patch_embed` and the `red` layers of the odd-numbered Swin blocks are built "
            "but never called by its forward: dropped; timm's saved `relative_position_index` / `attn_mask` "
            "buffers are constants stzoo recomputes (their values were checked): dropped too",
        ),
    )
)
