"""Import OpenSTL PhyDNet checkpoints (``PhyDNet_Model``) into stzoo's ``phydnet``.

What is mapped (OpenSTL name → stzoo name; n a layer, j a ConvLSTM layer; ``.main.0`` is a layer's
(transposed) conv, ``.main.1`` its GroupNorm)::

    encoder.encoder_E.c{n+1}.main.{0,1}.*        → encoder.layers.n.{conv,norm}.*
    encoder.encoder_Ep.c{n+1}.main.{0,1}.*       → enc_phys.n.{conv,norm}.*
    encoder.encoder_Er.c{n+1}.main.{0,1}.*       → enc_conv.n.{conv,norm}.*
    encoder.decoder_Dp.upc{n+1}.main.{0,1}.*     → dec_phys.n.{conv,norm}.*
    encoder.decoder_Dr.upc{n+1}.main.{0,1}.*     → dec_conv.n.{conv,norm}.*
    encoder.decoder_D.upc{n+1}.main.{0,1}.*      → decoder.layers.n.{conv,norm}.*
    encoder.decoder_D.upc3.*                     → decoder.out.*
    encoder.phycell.cell_list.0.F.conv1.*        → phycell.phi_conv.*
    encoder.phycell.cell_list.0.F.bn1.*          → phycell.phi_norm.*
    encoder.phycell.cell_list.0.F.conv2.*        → phycell.phi_out.*
    encoder.phycell.cell_list.0.convgate.*       → phycell.gate.*
    encoder.convcell.cell_list.j.conv.*          → convlstm.j.conv.*
    phycell.*, convcell.*                        → dropped: the same tensors again (OpenSTL registers the two
                                                   cells both on the model and inside its encoder; checked equal)
    k2m._M0, k2m._invM0, k2m._M1, k2m._invM1     → dropped: the constant moment matrices of the training loss
                                                   (stzoo computes them: stzoo.models.phydnet.moment_matrix)

Every value is copied unchanged. The weights cannot tell ``patch_size`` (the strides of the encoder's
third conv and the decoder's last one): it comes from the config, read as OpenSTL reads it (2 or 4; any
other value builds 4), else 4 (``configs/mmnist/PhyDNet.py``).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

import torch
from torch import Tensor

import stzoo.models.phydnet  # noqa: F401  (registers the "phydnet" architecture)
from stzoo.convert.openstl.core import (
    _DEFAULT_NOTE,
    _DEFAULTS,
    OpenSTLMethod,
    _count,
    _indices,
    _need,
    _Resolver,
    register_openstl,
)
from stzoo.errors import ConfigError, InputError

__all__ = ["PHYDNET"]

_WHAT = "OpenSTL's PhyDNet model (PhyDNet_Model)"
_K2M = ("k2m._M0", "k2m._invM0", "k2m._M1", "k2m._invM1")
_PREFIX = "_cells_prefix"  # where the cells' tensors are read from ("encoder." or ""); not a model setting


def _conv_shape(state: Mapping[str, Tensor], key: str) -> tuple[int, ...]:
    w = _need(state, key, _WHAT)
    if w.dim() != 4 or w.shape[-1] != w.shape[-2]:
        raise InputError(f"{key} has shape {tuple(w.shape)}; expected a 2-D conv weight with a square kernel")
    return tuple(int(s) for s in w.shape)


def _resolve(state: Mapping[str, Tensor], r: _Resolver) -> tuple[dict[str, Any], dict[str, Any], str]:
    nf, channels, _, _ = _conv_shape(state, "encoder.encoder_E.c1.main.0.weight")
    _need(state, "encoder.decoder_D.upc3.weight", _WHAT)
    method = r.lookup("method")
    if method is not None and method[0] != "phydnet":
        raise ConfigError(
            f"the {method[1]} says method={method[0]!r}, but --arch phydnet converts OpenSTL's PhyDNet "
            "(method 'PhyDNet')"
        )
    dim = _conv_shape(state, "encoder.encoder_E.c3.main.0.weight")[0]
    if dim != 2 * nf:
        raise InputError(
            f"encoder.encoder_E.c3 writes {dim} channels and c1 {nf}; OpenSTL's PhyDNet encoder doubles "
            "the width (nf → 2·nf)"
        )
    prefix = "encoder." if "encoder.phycell.cell_list.0.F.conv1.weight" in state else ""
    n_phy = _count(_indices(state, rf"^{re.escape(prefix)}phycell\.cell_list\.(\d+)\."), "the PhyCell layers")
    if n_phy != 1:
        raise InputError(
            f"the PhyCell has {n_phy} layers (phycell.cell_list.N); OpenSTL's PhyDNet has one, and so does stzoo's"
        )
    f_hidden, f_in, k, _ = _conv_shape(state, f"{prefix}phycell.cell_list.0.F.conv1.weight")
    if f_in != dim:
        raise InputError(f"the PhyCell reads {f_in} channels but the encoder writes {dim}")
    if k != 7 or f_hidden != k * k:
        raise InputError(
            f"the PhyCell has {f_hidden} {k}×{k} filters; OpenSTL's PhyDNet has 49 7×7 filters (one per "
            "moment, with GroupNorm(7, 49)), the only PhyCell stzoo converts"
        )
    n_conv = _count(_indices(state, rf"^{re.escape(prefix)}convcell\.cell_list\.(\d+)\."), "the ConvLSTM layers")
    if n_conv < 1:
        raise InputError(f"this does not look like {_WHAT}: it has no ConvLSTM layers (convcell.cell_list.N)")
    hidden, kernels = [], set()
    for j in range(n_conv):
        out, _, kc, _ = _conv_shape(state, f"{prefix}convcell.cell_list.{j}.conv.weight")
        if out % 4:
            raise InputError(f"convcell.cell_list.{j}.conv.weight writes {out} channels; expected 4·hidden")
        hidden.append(out // 4)
        kernels.add(kc)
    if hidden[-1] != dim or len(set(hidden[:-1])) > 1:
        raise ConfigError(
            f"the ConvLSTM layers have hidden sizes {hidden}; stzoo's PhyDNet has equal ones below a "
            f"top layer of the encoder's width ({dim}), as OpenSTL's [128, 128, 64]"
        )
    for a, b in (
        (f"{prefix}phycell.", "phycell." if prefix else "encoder.phycell."),
        (f"{prefix}convcell.", "convcell." if prefix else "encoder.convcell."),
    ):
        for key in [k_ for k_ in state if k_.startswith(a)]:
            twin = b + key[len(a) :]
            if twin in state and (state[twin].shape != state[key].shape or not torch.equal(state[twin], state[key])):
                raise InputError(
                    f"{twin} differs from {key}; in OpenSTL's PhyDNet both names hold the same tensor "
                    "(the cells are registered on the model and inside its encoder)"
                )
    cfg: dict[str, Any] = {
        "channels": r.inferred("channels", channels),
        "nf": nf,
        "phy_kernel": k,
        "conv_layers": n_conv,
        "conv_kernel": min(kernels),
    }
    r.sources.update({"nf": "weights", "phy_kernel": "weights", "conv_layers": "weights", "conv_kernel": "weights"})
    if n_conv > 1:
        cfg["conv_hidden"] = hidden[0]
        r.sources["conv_hidden"] = "weights"
    else:
        cfg["conv_hidden"] = 128
        r.sources["conv_hidden"] = "unused (one ConvLSTM layer)"
    found = r.lookup("patch_size")
    if found is None:
        cfg["patch_size"] = 4
        r.sources["patch_size"] = "default (configs/mmnist/PhyDNet.py)"
    else:
        cfg["patch_size"] = found[0] if found[0] in (2, 4) else 4
        r.sources["patch_size"] = found[1] + (
            "" if found[0] in (2, 4) else f" ({found[0]}: OpenSTL builds 4 unless it is 2 or 4)"
        )
    cfg["frames_in"] = r.chosen("frames_in", _DEFAULTS["frames_in"], note=_DEFAULT_NOTE)
    cfg["frames_out"] = r.chosen("frames_out", _DEFAULTS["frames_out"], note=_DEFAULT_NOTE)
    cfg["height"] = r.chosen("height", _DEFAULTS["height"])
    cfg["width"] = r.chosen("width", _DEFAULTS["width"])
    for key in ("height", "width"):
        if cfg[key] % cfg["patch_size"]:
            raise ConfigError(f"{key}={cfg[key]} is not divisible by patch_size={cfg['patch_size']}")
    spec = {
        "frames_in": cfg["frames_in"],
        "frames_out": cfg["frames_out"],
        "channels": channels,
        "height": cfg["height"],
        "width": cfg["width"],
        "value_range": [0.0, 1.0],
    }
    cfg[_PREFIX] = prefix
    return cfg, spec, "PhyDNet_Model"


_LAYER = re.compile(
    r"^(encoder\.layers|enc_phys|enc_conv|dec_phys|dec_conv|decoder\.layers)\.(\d+)\.(conv|norm)\."
    r"(weight|bias)$"
)
_BLOCKS = {
    "encoder.layers": "encoder_E.c",
    "enc_phys": "encoder_Ep.c",
    "enc_conv": "encoder_Er.c",
    "dec_phys": "decoder_Dp.upc",
    "dec_conv": "decoder_Dr.upc",
    "decoder.layers": "decoder_D.upc",
}
_PHY = {"phi_conv": "F.conv1", "phi_norm": "F.bn1", "phi_out": "F.conv2", "gate": "convgate"}


def _cell_shapes(cfg: dict[str, Any]) -> dict[str, tuple[int, ...]]:
    """The PhyCell's and ConvLSTM's tensors, OpenSTL names without the model/encoder prefix."""
    dim, k, kc = 2 * cfg["nf"], cfg["phy_kernel"], cfg["conv_kernel"]
    f = k * k
    shapes: dict[str, tuple[int, ...]] = {
        "phycell.cell_list.0.F.conv1.weight": (f, dim, k, k),
        "phycell.cell_list.0.F.conv1.bias": (f,),
        "phycell.cell_list.0.F.bn1.weight": (f,),
        "phycell.cell_list.0.F.bn1.bias": (f,),
        "phycell.cell_list.0.F.conv2.weight": (dim, f, 1, 1),
        "phycell.cell_list.0.F.conv2.bias": (dim,),
        "phycell.cell_list.0.convgate.weight": (dim, 2 * dim, 3, 3),
        "phycell.cell_list.0.convgate.bias": (dim,),
    }
    hidden = [cfg["conv_hidden"]] * (cfg["conv_layers"] - 1) + [dim]
    for j, h in enumerate(hidden):
        c_in = dim if j == 0 else hidden[j - 1]
        shapes[f"convcell.cell_list.{j}.conv.weight"] = (4 * h, c_in + h, kc, kc)
        shapes[f"convcell.cell_list.{j}.conv.bias"] = (4 * h,)
    return shapes


def _pairs(
    model_keys: list[str], cfg: dict[str, Any]
) -> tuple[dict[str, tuple[str | None, Callable[[Tensor], Tensor] | None]], dict[str, tuple[int, ...]]]:
    prefix = cfg[_PREFIX]
    pairs: dict[str, tuple[str | None, Callable[[Tensor], Tensor] | None]] = {}
    for key in model_keys:
        if m := _LAYER.match(key):
            block, n, part, what = m.groups()
            pairs[key] = (f"encoder.{_BLOCKS[block]}{int(n) + 1}.main.{0 if part == 'conv' else 1}.{what}", None)
        elif m := re.match(r"^decoder\.out\.(weight|bias)$", key):
            pairs[key] = (f"encoder.decoder_D.upc3.{m.group(1)}", None)
        elif m := re.match(r"^phycell\.(phi_conv|phi_norm|phi_out|gate)\.(weight|bias)$", key):
            pairs[key] = (f"{prefix}phycell.cell_list.0.{_PHY[m.group(1)]}.{m.group(2)}", None)
        elif m := re.match(r"^convlstm\.(\d+)\.conv\.(weight|bias)$", key):
            pairs[key] = (f"{prefix}convcell.cell_list.{m.group(1)}.conv.{m.group(2)}", None)
        else:
            raise AssertionError(f"no OpenSTL name for stzoo key {key}")  # stzoo's PhyDNet changed
    twin = "" if prefix else "encoder."
    k = cfg["phy_kernel"]
    unused = {twin + name: shape for name, shape in _cell_shapes(cfg).items()}
    unused.update({name: (k, k) for name in _K2M})
    return pairs, unused


PHYDNET = register_openstl(
    OpenSTLMethod(
        arch="phydnet",
        names=("phydnet",),
        label="PhyDNet",
        config_keys=frozenset({"patch_size"}),
        resolve=_resolve,
        pairs=_pairs,
        model_config=lambda cfg: {k: v for k, v in cfg.items() if k != _PREFIX},
        card_notes=(
            "OpenSTL's second copies of the PhyCell and ConvLSTM tensors (`phycell.*`, `convcell.*`: the same "
            "tensors as `encoder.phycell.*`, `encoder.convcell.*`) and the constant moment matrices `k2m.*` "
            "were not stored; stzoo computes the moment matrices itself",
        ),
    )
)
