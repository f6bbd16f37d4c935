"""Import OpenSTL's SimVP checkpoints (IncepU and gSTA translators) into stzoo's ``simvp``.

OpenSTL's ``SimVP_Model`` (``openstl/models/simvp_model.py``) holds ``enc`` / ``hid`` / ``dec``; the
translator ``hid`` is a ``MidIncepNet`` for ``model_type='incepu'`` (SimVP v1) or a ``MidMetaNet`` of
``MetaBlock`` s with ``GASubBlock`` s for ``model_type='gsta'`` (SimVPv2, OpenSTL's default). Use
``arch="simvp"`` (OpenSTL's method name ``SimVP``, any case) or its alias ``"simvp_gsta"``; the
checkpoint's tensors tell the two translators apart, and a config's ``model_type`` must agree with
them. A SimVP checkpoint with the TAU translator (``model_type='tau'``) belongs to ``arch="tau"``.

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

Every OpenSTL SimVP tensor is read by its forward pass, so none is dropped and none is changed.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from torch import Tensor

import stzoo.models.simvp  # noqa: F401 (registers the stzoo architecture the weights load into)
from stzoo.convert.openstl.core import _DEFAULTS, OpenSTLMethod, _count, _indices, _need, _Resolver, register_openstl
from stzoo.convert.openstl.tau import _tau_key
from stzoo.errors import ConfigError, InputError

__all__ = ["SIMVP_METHOD"]

_TRANSLATORS = ("incepu", "gsta")

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


def _translator_kind(state: Mapping[str, Tensor]) -> str | None:
    """'incepu', 'gsta' or 'tau' from the first translator block's tensors; None for anything else."""
    if "hid.enc.0.conv1.weight" in state and any(k.startswith("hid.dec.") for k in state):
        return "incepu"
    sgu = "hid.enc.0.block.attn.spatial_gating_unit."
    if sgu + "fc.0.weight" in state:
        return "tau"
    conv1 = state.get(sgu + "conv1.weight")
    if conv1 is not None and conv1.dim() == 4 and conv1.shape[0] == 2 * conv1.shape[1]:  # gated: [f; g]
        return "gsta"
    return None


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
    given_type = r.lookup("model_type")
    if given_type is not None and given_type[0] == "tau":
        raise ConfigError(
            f"the {given_type[1]} says model_type='tau': that is OpenSTL's TAU, convert it with arch='tau'"
        )
    if given_type is not None and given_type[0] not in _TRANSLATORS:
        raise ConfigError(
            f"the {given_type[1]} says model_type={given_type[0]!r}; stzoo's simvp has the 'incepu' "
            "and 'gsta' translators only (OpenSTL's other MetaFormer blocks are not supported)"
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
            f"this SimVP checkpoint's translator is neither IncepU (hid.enc.0.conv1, hid.dec.N) nor gSTA "
            f"(hid.enc.0.block.attn.spatial_gating_unit.conv1 with 2·dim outputs); its first block has "
            f"{sample or 'no tensors'}. Only model_type 'incepu' and 'gsta' convert to stzoo's simvp."
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
    else:
        dim = int(_need(state, "hid.enc.0.block.norm1.weight", what).shape[0])
        hid_t = int(_need(state, "hid.enc.1.block.norm1.weight", what).shape[0])
        fc1 = int(_need(state, "hid.enc.1.block.mlp.fc1.weight", what).shape[0])
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
    r.inferred("spatio_kernel_enc", k_enc)  # only checked against the config: stzoo has one spatio_kernel
    r.inferred("spatio_kernel_dec", k_dec)
    del r.sources["spatio_kernel_enc"], r.sources["spatio_kernel_dec"]
    if k_enc != k_dec:
        raise ConfigError(
            f"the encoder uses {k_enc}×{k_enc} convs and the decoder {k_dec}×{k_dec}; "
            "stzoo's SimVP has one spatio_kernel for both, so this checkpoint cannot be converted"
        )
    cfg["spatio_kernel"] = r.inferred("spatio_kernel", k_enc)
    if kind == "gsta":  # training-only settings: kept so that fine-tuning behaves as OpenSTL's training did
        cfg["drop"] = float(r.chosen("drop", 0.0, note="default (OpenSTL's 0; only used in training)"))
        cfg["drop_path"] = float(r.chosen("drop_path", 0.0, note="default (OpenSTL's 0; only used in training)"))
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
    label = {"incepu": "IncepU", "gsta": "gSTA"}[kind]
    return cfg, spec, f"SimVP_Model (model_type='{label}')"


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
        pairs=lambda keys, cfg: ({k: (_simvp_key(k), None) for k in keys}, {}),  # every OpenSTL SimVP tensor is used
        model_config=lambda cfg: {k: v for k, v in cfg.items() if k not in ("frames_in", "frames_out")},
    )
)
