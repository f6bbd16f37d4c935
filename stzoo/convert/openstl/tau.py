"""OpenSTL's TAU (``SimVP_Model`` with ``model_type='tau'``) → stzoo's ``tau``.

Importing this module registers the importer with :func:`~stzoo.convert.openstl.core.register_openstl`,
so ``from_openstl(path, arch="TAU")`` converts it. What is mapped (OpenSTL name → stzoo name)::

    enc.enc.N.conv.conv.*             → encoder.layers.N.conv.*
    enc.enc.N.conv.norm.*             → encoder.layers.N.norm.*
    dec.dec.N.conv.conv[.0].*         → decoder.layers.N.conv[.0].*
    dec.dec.N.conv.norm.*             → decoder.layers.N.norm.*
    dec.readout.*                     → decoder.readout.*
    hid.enc.N.reduction.*             → translator.blocks.N.reduction.*
    hid.enc.N.block.attn.spatial_gating_unit.*  → translator.blocks.N.attn.tau.*
    hid.enc.N.block.mlp.dwconv.dwconv.*         → translator.blocks.N.mlp.dwconv.*
    hid.enc.N.block.*                 → translator.blocks.N.*   (norm1/2 incl. BatchNorm buffers,
                                                                 layer_scale_1/2, proj_1/2, fc1/fc2)
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from torch import Tensor

from stzoo.convert.openstl.core import _DEFAULTS, OpenSTLMethod, _count, _indices, _need, _Resolver, register_openstl
from stzoo.errors import ConfigError, InputError

_TAU_RULES: list[tuple[str, str]] = [
    (r"^encoder\.layers\.(\d+)\.conv\.", r"enc.enc.\1.conv.conv."),
    (r"^encoder\.layers\.(\d+)\.norm\.", r"enc.enc.\1.conv.norm."),
    (r"^decoder\.layers\.(\d+)\.conv\.", r"dec.dec.\1.conv.conv."),
    (r"^decoder\.layers\.(\d+)\.norm\.", r"dec.dec.\1.conv.norm."),
    (r"^decoder\.readout\.", "dec.readout."),
    (r"^translator\.blocks\.(\d+)\.reduction\.", r"hid.enc.\1.reduction."),
    (r"^translator\.blocks\.(\d+)\.attn\.tau\.", r"hid.enc.\1.block.attn.spatial_gating_unit."),
    (r"^translator\.blocks\.(\d+)\.mlp\.dwconv\.", r"hid.enc.\1.block.mlp.dwconv.dwconv."),
    (r"^translator\.blocks\.(\d+)\.", r"hid.enc.\1.block."),
]


def _tau_key(stzoo_key: str) -> str:
    for pattern, repl in _TAU_RULES:
        new, n = re.subn(pattern, repl, stzoo_key)
        if n:
            return new
    raise AssertionError(f"no OpenSTL name for stzoo key {stzoo_key}")  # stzoo's TAU changed: update the rules


def _resolve_tau(state: Mapping[str, Tensor], r: _Resolver) -> tuple[dict[str, Any], dict[str, Any], str]:
    what = "OpenSTL's SimVP/TAU model (SimVP_Model)"
    enc0 = _need(state, "enc.enc.0.conv.conv.weight", what)
    method = r.lookup("method")
    if method is not None and method[0] not in ("tau", "simvp"):
        raise ConfigError(
            f"the {method[1]} says method={method[0]!r}, but --arch tau converts OpenSTL's TAU "
            "(method 'TAU', or 'SimVP' with model_type 'tau')"
        )
    model_type = r.lookup("model_type")
    if model_type is not None and model_type[0] != "tau":
        raise ConfigError(
            f"the {model_type[1]} says model_type={model_type[0]!r}: only SimVP with the TAU translator "
            "(model_type='tau') can be converted to stzoo's TAU"
        )
    if "hid.enc.0.block.attn.spatial_gating_unit.fc.0.weight" not in state:
        conv1 = state.get("hid.enc.0.block.attn.spatial_gating_unit.conv1.weight")
        gsta = conv1 is not None and conv1.dim() == 4 and conv1.shape[0] == 2 * conv1.shape[1]  # gated: 2·dim out
        kind = "a SimVP gSTA translator (model_type='gsta')" if gsta else "a translator that is not TAU's"
        raise InputError(
            f"this SimVP checkpoint has {kind}: it has no "
            "'hid.enc.0.block.attn.spatial_gating_unit.fc.0.weight' (TAU's dynamical attention). "
            "Only model_type='tau' converts to stzoo's TAU."
        )
    if enc0.dim() != 4 or enc0.shape[-1] != enc0.shape[-2]:
        raise InputError(f"enc.enc.0.conv.conv.weight has shape {tuple(enc0.shape)}; expected a square 2-D conv kernel")
    n_s = _count(_indices(state, r"^enc\.enc\.(\d+)\."), "the encoder layers enc.enc.N")
    n_t = _count(_indices(state, r"^hid\.enc\.(\d+)\."), "the translator blocks hid.enc.N")
    if n_t < 2:
        raise InputError(f"the translator has {n_t} block(s); OpenSTL's TAU has N_T >= 2")
    dec0 = state.get("dec.dec.0.conv.conv.0.weight", state.get("dec.dec.0.conv.conv.weight"))
    if dec0 is None:
        raise InputError("the checkpoint has no decoder (dec.dec.0.conv.conv[.0].weight)")
    c_in, hid_s, k_enc = int(enc0.shape[1]), int(enc0.shape[0]), int(enc0.shape[-1])
    k_dec = int(dec0.shape[-1])
    dim = int(_need(state, "hid.enc.0.block.norm1.weight", what).shape[0])
    hid_t = int(_need(state, "hid.enc.1.block.norm1.weight", what).shape[0])
    fc1 = int(_need(state, "hid.enc.1.block.mlp.fc1.weight", what).shape[0])
    if dim % hid_s:
        raise InputError(f"the translator's width {dim} is not a multiple of hid_S={hid_s}: not an OpenSTL TAU")
    cfg: dict[str, Any] = {}
    cfg["frames"] = r.inferred("frames_in", dim // hid_s, out_key="frames", label="frames (translator width / hid_S)")
    cfg["channels"] = r.inferred("channels", c_in)
    cfg["hid_S"] = r.inferred("hid_S", hid_s)
    cfg["hid_T"] = r.inferred("hid_T", hid_t)
    cfg["N_S"] = r.inferred("N_S", n_s)
    cfg["N_T"] = r.inferred("N_T", n_t)
    cfg["mlp_ratio"] = r.inferred("mlp_ratio", fc1 / hid_t)
    r.inferred("spatio_kernel_enc", k_enc)  # only checked against the config: stzoo has one spatio_kernel
    r.inferred("spatio_kernel_dec", k_dec)
    del r.sources["spatio_kernel_enc"], r.sources["spatio_kernel_dec"]
    if k_enc != k_dec:
        raise ConfigError(
            f"the encoder uses {k_enc}×{k_enc} convs and the decoder {k_dec}×{k_dec}; "
            "stzoo's TAU has one spatio_kernel for both, so this checkpoint cannot be converted"
        )
    cfg["spatio_kernel"] = r.inferred("spatio_kernel", k_enc)
    # OpenSTL's MetaBlock builds every TAU block with kernel_size=21; the conv shapes are checked below.
    cfg["kernel_size"] = r.chosen("kernel_size", 21, note="OpenSTL's fixed TAU kernel (21)")
    cfg["height"] = r.chosen("height", _DEFAULTS["height"])
    cfg["width"] = r.chosen("width", _DEFAULTS["width"])
    spec = {
        "frames_in": cfg["frames"],
        "frames_out": r.chosen("frames_out", cfg["frames"], note="= frames_in (TAU maps T frames to T)"),
        "channels": c_in,
        "height": cfg["height"],
        "width": cfg["width"],
        "value_range": [0.0, 1.0],
    }
    r.sources["channels"] = "weights"
    return cfg, spec, "SimVP_Model (model_type='tau')"


register_openstl(
    OpenSTLMethod(
        arch="tau",
        names=("tau",),
        label="TAU",
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
        resolve=_resolve_tau,
        pairs=lambda keys, cfg: ({k: (_tau_key(k), None) for k in keys}, {}),  # every OpenSTL TAU tensor is used
        model_config=lambda cfg: {k: v for k, v in cfg.items() if k not in ("frames_in", "frames_out")},
    )
)
