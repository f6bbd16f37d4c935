"""Import OpenSTL's SimVP checkpoints (IncepU, gSTA and the ten MetaFormer translators) into stzoo's ``simvp``.

OpenSTL's ``SimVP_Model`` (``openstl/models/simvp_model.py``) holds ``enc`` / ``hid`` / ``dec``; the
translator ``hid`` is a ``MidIncepNet`` for ``model_type='incepu'`` (SimVP v1) or a ``MidMetaNet`` of
``MetaBlock`` s: ``GASubBlock`` s for ``model_type='gsta'`` (SimVPv2, OpenSTL's default), or the
MetaVP blocks for 'vit', 'swin', 'mlp' ('mlpmixer'), 'convmixer', 'uniformer', 'poolformer',
'convnext', 'van', 'hornet', 'moga' ('moganet'). Use ``arch="simvp"`` (OpenSTL's method name
``SimVP``, any case) or its alias ``"simvp_gsta"``; the checkpoint's tensors tell the translators
apart, and a config's ``model_type`` must agree with them. A SimVP checkpoint with the TAU translator
(``model_type='tau'``) belongs to ``arch="tau"``.

Sizes the tensors cannot tell: MLP-Mixer's token MLP fixes H'·W' (a square map is assumed unless the
config gives ``in_shape`` / ``height`` / ``width``), and Swin's window follows the height the model was
built for (the config's, else 64; it must give the window the bias tables have).

What is mapped (OpenSTL name → stzoo name)::

    enc.enc.N.conv.conv.*                        → encoder.layers.N.conv.*
    enc.enc.N.conv.norm.*                        → encoder.layers.N.norm.*
    dec.dec.N.conv.conv[.0].*                    → decoder.layers.N.conv[.0].*
    dec.dec.N.conv.norm.*                        → decoder.layers.N.norm.*
    dec.readout.*                                → decoder.readout.*
  IncepU:
    hid.enc.N.conv1.* / hid.dec.N.conv1.*        → translator.enc.N.conv1.* / translator.dec.N.conv1.*
    hid.enc.N.layers.K.{conv,norm}.*             → translator.enc.N.branches.K.{conv,norm}.*   (and dec)
  gSTA:
    hid.enc.N.block.attn.spatial_gating_unit.*   → translator.blocks.N.attn.gate.*
    hid.enc.N.block.mlp.dwconv.dwconv.*          → translator.blocks.N.mlp.dwconv.*
    hid.enc.N.reduction.*                        → translator.blocks.N.reduction.*
    hid.enc.N.block.*                            → translator.blocks.N.*  (norm1/2 incl. BatchNorm buffers,
                                                                          layer_scale_1/2, attn.proj_1/2, mlp.fc1/2)
  MetaFormer translators (tensor names inside a block are OpenSTL's / timm's):
    hid.enc.N.block.mlp.dwconv.dwconv.*  (VAN)   → translator.blocks.N.block.mlp.dwconv.*
    hid.enc.N.block.*                            → translator.blocks.N.block.*
    hid.enc.N.reduction.*                        → translator.blocks.N.reduction.*

Every OpenSTL SimVP tensor is read by its forward pass, so none is changed. Checkpoints saved with timm
0.6 also hold Swin's buffers ``hid.enc.N.block.attn.relative_position_index`` (a constant, checked
against the one stzoo computes) and ``hid.enc.N.block.attn_mask`` (shifted blocks only; OpenSTL's
``SwinSubBlock.forward`` passes ``mask=None``, so it is never read): both are reported as unused.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor

import stzoo.models.simvp  # noqa: F401 (registers the stzoo architecture the weights load into)
from stzoo.convert.openstl.core import _DEFAULTS, OpenSTLMethod, _count, _indices, _need, _Resolver, register_openstl
from stzoo.convert.openstl.tau import _tau_key
from stzoo.errors import ConfigError, InputError
from stzoo.models.simvp_translators import (
    METAFORMER_TYPES,
    MODEL_TYPE_ALIASES,
    relative_position_index,
    swin_window,
)

__all__ = ["SIMVP_METHOD"]

_TRANSLATORS = ("incepu", "gsta", *METAFORMER_TYPES)
_LABELS = {
    "incepu": "IncepU",
    "gsta": "gSTA",
    "vit": "ViT",
    "swin": "Swin",
    "mlp": "MLPMixer",
    "convmixer": "ConvMixer",
    "uniformer": "Uniformer",
    "poolformer": "Poolformer",
    "convnext": "ConvNeXt",
    "van": "VAN",
    "hornet": "HorNet",
    "moga": "MogaNet",
}
#: (a tensor of the first block that only this MetaFormer has, the tensor whose first axis is the block width)
_SIGNATURES = [
    ("swin", "attn.relative_position_bias_table", "norm1.weight"),
    ("mlp", "mlp_tokens.fc1.weight", "norm1.weight"),
    ("convmixer", "conv_pw.weight", "conv_pw.bias"),
    ("uniformer", "pos_embed.weight", "pos_embed.bias"),
    ("convnext", "gamma", "gamma"),
    ("hornet", "gnconv.proj_in.weight", "gamma1"),
    ("moga", "attn.value.PW_conv.weight", "norm1.weight"),
    ("vit", "attn.qkv.weight", "norm1.weight"),
    ("van", "attn.spatial_gating_unit.conv0.weight", "norm1.weight"),
    ("poolformer", "layer_scale_1", "norm1.weight"),
]
_WIDTH_KEY = {kind: width for kind, _, width in _SIGNATURES}
#: the MLP's first layer (its outputs: int(width · mlp_ratio))
_FC1_KEY = {"mlp": "mlp_channels.fc1.weight", "hornet": "pwconv1.weight"}

_SIMVP_RULES: list[tuple[str, str]] = [
    (r"^translator\.(enc|dec)\.(\d+)\.conv1\.", r"hid.\1.\2.conv1."),
    (r"^translator\.(enc|dec)\.(\d+)\.branches\.(\d+)\.", r"hid.\1.\2.layers.\3."),
    (r"^translator\.blocks\.(\d+)\.attn\.gate\.", r"hid.enc.\1.block.attn.spatial_gating_unit."),
]


def _simvp_key(stzoo_key: str) -> str:
    """OpenSTL's name of an stzoo ``simvp`` tensor (encoder, decoder and the gSTA blocks' other
    tensors are named as in OpenSTL's TAU, which is the same ``SimVP_Model``)."""
    for pattern, repl in _SIMVP_RULES:
        new, n = re.subn(pattern, repl, stzoo_key)
        if n:
            return new
    return _tau_key(stzoo_key)


def _metaformer_key(stzoo_key: str, kind: str) -> str:
    """OpenSTL's name of an stzoo tensor of a MetaFormer translator block (or of the encoder / decoder)."""
    if not stzoo_key.startswith("translator."):
        return _tau_key(stzoo_key)
    key = re.sub(r"^translator\.blocks\.(\d+)\.", r"hid.enc.\1.", stzoo_key)
    if kind == "van":  # OpenSTL's MixMlp wraps its depthwise conv in a DWConv module
        key = re.sub(r"\.block\.mlp\.dwconv\.", ".block.mlp.dwconv.dwconv.", key)
    return key


def _translator_kind(state: Mapping[str, Tensor]) -> str | None:
    """'incepu', 'gsta', 'tau' or a MetaFormer type from the first translator block's tensors; None for
    anything else."""
    if "hid.enc.0.conv1.weight" in state and any(k.startswith("hid.dec.") for k in state):
        return "incepu"
    sgu = "hid.enc.0.block.attn.spatial_gating_unit."
    if sgu + "fc.0.weight" in state:
        return "tau"
    conv1 = state.get(sgu + "conv1.weight")
    if conv1 is not None and conv1.dim() == 4 and conv1.shape[0] == 2 * conv1.shape[1]:  # gated: [f; g]
        return "gsta"
    for kind, signature, _ in _SIGNATURES:
        if "hid.enc.0.block." + signature in state:
            return kind
    return None


def _swin_unused(cfg: dict[str, Any]) -> dict[str, tuple[int, ...]]:
    """timm 0.6's persistent Swin buffers OpenSTL checkpoints hold, with their shapes."""
    down = 2 ** (cfg["N_S"] // 2)
    h, w = cfg["height"] // down, cfg["width"] // down
    window, shifts = swin_window(h, w)
    n = window * window
    unused: dict[str, tuple[int, ...]] = {}
    for i in range(cfg["N_T"]):
        unused[f"hid.enc.{i}.block.attn.relative_position_index"] = (n, n)
        if shifts and i % 2:
            unused[f"hid.enc.{i}.block.attn_mask"] = ((h // window) * (w // window), n, n)
    return unused


def _pairs(keys: list[str], cfg: dict[str, Any]) -> tuple[dict[str, Any], dict[str, tuple[int, ...]]]:
    kind = cfg.get("model_type", "gsta")
    if kind in METAFORMER_TYPES:
        unused = _swin_unused(cfg) if kind == "swin" else {}
        return {k: (_metaformer_key(k, kind), None) for k in keys}, unused
    return {k: (_simvp_key(k), None) for k in keys}, {}  # every OpenSTL SimVP tensor is used


def _metaformer_sizes(
    state: Mapping[str, Tensor], r: _Resolver, kind: str, n_s: int, what: str
) -> tuple[int, int, float | None, dict[str, Any]]:
    """(translator width T·hid_S, hid_T, mlp_ratio or None, extra config) of a MetaFormer checkpoint."""
    width_key = _WIDTH_KEY[kind]
    dim = int(_need(state, f"hid.enc.0.block.{width_key}", what).shape[0])
    hid_t = int(_need(state, f"hid.enc.1.block.{width_key}", what).shape[0])
    ratio = None
    if kind != "convmixer":
        fc1 = _need(state, "hid.enc.0.block." + _FC1_KEY.get(kind, "mlp.fc1.weight"), what)
        ratio = int(fc1.shape[0]) / dim
    extra: dict[str, Any] = {}
    down = 2 ** (n_s // 2)
    if kind == "mlp":  # the token MLP reads H'·W' positions
        seq = int(_need(state, "hid.enc.0.block.mlp_tokens.fc1.weight", what).shape[1])
        h, w = r.lookup("height"), r.lookup("width")
        if h is None and w is None:
            side = math.isqrt(seq)
            if side * side != seq:
                raise ConfigError(
                    f"this SimVP-MLP-Mixer's token MLPs read {seq} positions, not a square map: give the "
                    "frame size it was trained at (in_shape=[T, C, H, W], or height and width)"
                )
            extra["height"] = extra["width"] = side * down
            r.sources["height"] = r.sources["width"] = "weights (a square map of the token MLP's positions)"
        else:
            hh = int(h[0]) if h is not None else None
            ww = int(w[0]) if w is not None else None
            hh = hh if hh is not None else (seq // (ww // down)) * down
            ww = ww if ww is not None else (seq // (hh // down)) * down
            if (hh // down) * (ww // down) != seq:
                raise ConfigError(
                    f"the config's frame size {hh}×{ww} gives a {hh // down}×{ww // down} translator map, but "
                    f"the checkpoint's token MLPs read {seq} positions: is this the right config?"
                )
            extra["height"], extra["width"] = hh, ww
            r.sources["height"] = r.sources["width"] = "config (checked against the token MLP)"
    if kind == "swin":
        rows = int(_need(state, "hid.enc.0.block.attn.relative_position_bias_table", what).shape[0])
        window = (math.isqrt(rows) + 1) // 2
        h = int(r.chosen("height", _DEFAULTS["height"]))
        w = int(r.chosen("width", _DEFAULTS["width"]))
        want, _ = swin_window(h // down, w // down)
        if (2 * window - 1) ** 2 != rows or want != window:
            raise ConfigError(
                f"the checkpoint's Swin bias tables have {rows} rows ({window}×{window} windows), but a "
                f"{h}×{w} frame gives OpenSTL's SwinSubBlock {want}×{want} windows: give the frame size the "
                "model was trained at (in_shape=[T, C, H, W], or height and width)"
            )
        index = state.get("hid.enc.0.block.attn.relative_position_index")
        if index is not None and (
            tuple(index.shape) != (window**2, window**2)
            or not torch.equal(index.long(), relative_position_index(window))
        ):
            raise InputError(
                "hid.enc.0.block.attn.relative_position_index is not timm's relative position index of a "
                f"{window}×{window} window: the checkpoint was modified or is not OpenSTL's Swin"
            )
        extra["height"], extra["width"] = h, w
    return dim, hid_t, ratio, extra


def _resolve_simvp(state: Mapping[str, Tensor], r: _Resolver) -> tuple[dict[str, Any], dict[str, Any], str]:
    what = "OpenSTL's SimVP model (SimVP_Model)"
    enc0 = _need(state, "enc.enc.0.conv.conv.weight", what)
    method = r.lookup("method")
    if method is not None and method[0] == "tau":
        raise ConfigError(f"the {method[1]} says method='TAU': convert OpenSTL's TAU with arch='tau'")
    if method is not None and method[0] != "simvp":
        raise ConfigError(
            f"the {method[1]} says method={method[0]!r}, but arch='simvp' converts OpenSTL's SimVP "
            "(method 'SimVP' with model_type 'IncepU' or 'gSTA')"
        )
    for source in (r.given, r.ckpt):  # OpenSTL's other spellings ('mlpmixer', 'moganet')
        if isinstance(source.get("model_type"), str):
            source["model_type"] = MODEL_TYPE_ALIASES.get(source["model_type"], source["model_type"])
    given_type = r.lookup("model_type")
    if given_type is not None and given_type[0] == "tau":
        raise ConfigError(
            f"the {given_type[1]} says model_type='tau': that is OpenSTL's TAU, convert it with arch='tau'"
        )
    if given_type is not None and given_type[0] not in _TRANSLATORS:
        raise ConfigError(
            f"the {given_type[1]} says model_type={given_type[0]!r}, which is none of OpenSTL's SimVP "
            f"translators ({', '.join(_TRANSLATORS)})"
        )
    kind = _translator_kind(state)
    if kind == "tau":
        raise InputError(
            "this SimVP checkpoint has TAU's translator (it has "
            "'hid.enc.0.block.attn.spatial_gating_unit.fc.0.weight', TAU's dynamical attention): "
            "convert it with arch='tau'"
        )
    if kind is None:
        sample = sorted(k for k in state if k.startswith("hid.enc.0."))[:6]
        raise InputError(
            f"this SimVP checkpoint's translator is none of OpenSTL's: not IncepU (hid.enc.0.conv1, hid.dec.N), "
            f"gSTA (hid.enc.0.block.attn.spatial_gating_unit.conv1 with 2·dim outputs) or a MetaFormer block "
            f"({', '.join(METAFORMER_TYPES)}); its first block has {sample or 'no tensors'}."
        )
    if enc0.dim() != 4 or enc0.shape[-1] != enc0.shape[-2]:
        raise InputError(f"enc.enc.0.conv.conv.weight has shape {tuple(enc0.shape)}; expected a square 2-D conv kernel")
    dec0 = state.get("dec.dec.0.conv.conv.0.weight", state.get("dec.dec.0.conv.conv.weight"))
    if dec0 is None:
        raise InputError("the checkpoint has no decoder (dec.dec.0.conv.conv[.0].weight)")
    c_in, hid_s, k_enc, k_dec = int(enc0.shape[1]), int(enc0.shape[0]), int(enc0.shape[-1]), int(dec0.shape[-1])
    n_s = _count(_indices(state, r"^enc\.enc\.(\d+)\."), "the encoder layers enc.enc.N")
    n_t = _count(_indices(state, r"^hid\.enc\.(\d+)\."), "the translator blocks hid.enc.N")
    if n_t < 2:
        raise InputError(f"the translator has {n_t} block(s); OpenSTL's SimVP has N_T >= 2")
    cfg: dict[str, Any] = {}
    if kind == "incepu":
        n_dec = _count(_indices(state, r"^hid\.dec\.(\d+)\."), "the IncepU decoder blocks hid.dec.N")
        if n_dec != n_t:
            raise InputError(
                f"the IncepU translator has {n_t} encoder blocks but {n_dec} decoder blocks; "
                "OpenSTL's MidIncepNet has N_T of each"
            )
        dim = int(_need(state, "hid.enc.0.conv1.weight", what).shape[1])
        hid_t = int(_need(state, "hid.enc.0.layers.0.conv.weight", what).shape[0])
    elif kind == "gsta":
        dim = int(_need(state, "hid.enc.0.block.norm1.weight", what).shape[0])
        hid_t = int(_need(state, "hid.enc.1.block.norm1.weight", what).shape[0])
        fc1 = int(_need(state, "hid.enc.1.block.mlp.fc1.weight", what).shape[0])
    else:
        dim, hid_t, ratio, extra = _metaformer_sizes(state, r, kind, n_s, what)
    if dim % hid_s:
        raise InputError(f"the translator's width {dim} is not a multiple of hid_S={hid_s}: not an OpenSTL SimVP")
    cfg["frames"] = r.inferred("frames_in", dim // hid_s, out_key="frames", label="frames (translator width / hid_S)")
    cfg["channels"] = r.inferred("channels", c_in)
    cfg["model_type"] = r.inferred("model_type", kind, label="a translator of model_type")
    cfg["hid_S"] = r.inferred("hid_S", hid_s)
    cfg["hid_T"] = r.inferred("hid_T", hid_t)
    cfg["N_S"] = r.inferred("N_S", n_s)
    cfg["N_T"] = r.inferred("N_T", n_t)
    if kind == "gsta":
        cfg["mlp_ratio"] = r.inferred("mlp_ratio", fc1 / hid_t)
        # OpenSTL's MetaBlock builds every gSTA block with kernel_size=21; the conv shapes are checked later.
        cfg["kernel_size"] = r.chosen("kernel_size", 21, note="OpenSTL's fixed gSTA kernel (21)")
    elif kind != "incepu":  # ConvMixer has no MLP: the ratio is only kept
        cfg["mlp_ratio"] = r.inferred("mlp_ratio", ratio) if ratio is not None else float(r.chosen("mlp_ratio", 8.0))
    r.inferred("spatio_kernel_enc", k_enc)  # only checked against the config: stzoo has one spatio_kernel
    r.inferred("spatio_kernel_dec", k_dec)
    del r.sources["spatio_kernel_enc"], r.sources["spatio_kernel_dec"]
    if k_enc != k_dec:
        raise ConfigError(
            f"the encoder uses {k_enc}×{k_enc} convs and the decoder {k_dec}×{k_dec}; "
            "stzoo's SimVP has one spatio_kernel for both, so this checkpoint cannot be converted"
        )
    cfg["spatio_kernel"] = r.inferred("spatio_kernel", k_enc)
    if kind not in ("incepu", "convmixer"):  # training-only settings: fine-tuning then behaves as OpenSTL's did
        cfg["drop"] = float(r.chosen("drop", 0.0, note="default (OpenSTL's 0; only used in training)"))
        cfg["drop_path"] = float(r.chosen("drop_path", 0.0, note="default (OpenSTL's 0; only used in training)"))
    if kind in ("mlp", "swin"):
        cfg["height"], cfg["width"] = extra["height"], extra["width"]
    else:
        cfg["height"] = r.chosen("height", _DEFAULTS["height"])
        cfg["width"] = r.chosen("width", _DEFAULTS["width"])
    spec = {
        "frames_in": cfg["frames"],
        "frames_out": r.chosen("frames_out", cfg["frames"], note="= frames_in (SimVP maps T frames to T)"),
        "channels": c_in,
        "height": cfg["height"],
        "width": cfg["width"],
        "value_range": [0.0, 1.0],
    }
    r.sources["channels"] = "weights"
    return cfg, spec, f"SimVP_Model (model_type='{_LABELS[kind]}')"


SIMVP_METHOD = register_openstl(
    OpenSTLMethod(
        arch="simvp",
        names=("simvp", "simvp_gsta"),
        label="SimVP",
        config_keys=frozenset(
            {
                "hid_S",
                "hid_T",
                "N_S",
                "N_T",
                "mlp_ratio",
                "model_type",
                "spatio_kernel",
                "spatio_kernel_enc",
                "spatio_kernel_dec",
                "kernel_size",
                "drop",
                "drop_path",
            }
        ),
        resolve=_resolve_simvp,
        pairs=_pairs,
        model_config=lambda cfg: {k: v for k, v in cfg.items() if k not in ("frames_in", "frames_out")},
    )
)
