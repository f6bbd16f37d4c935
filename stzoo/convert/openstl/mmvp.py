"""Import OpenSTL MMVP checkpoints (``MMVP_Model``) into stzoo's ``mmvp``.

What is mapped (OpenSTL name → stzoo name; ``*`` the rest of the name, unchanged)::

    enc.inconv.*                               → encoder.stem.*
    enc.block_rrdb.J.RDBr.convK.*              → encoder.rrdb.J.rdbr.convK.*   (and likewise in dec / enhance)
    enc.pre_downsample_block.0.{conv1,shortcut,conv2}.* → encoder.down1.{conv1,skip,conv2}.*
    enc.downsample_high.* / enc.downsample_low.*        → encoder.down_high.* / encoder.down_low.*
    filter.filter_block.{0,1}.{0,1,3,4,6,7}.*  → filter_{high,low}.{conv1,bn1,conv2,bn2,conv3,bn3}.*
    hid.predictor.conv1.weight / out_conv.weight → predictor.embed.weight / predictor.readout.weight
    hid.predictor.predictor.conv_pre_1 / bn_pre_1 / conv_pre_2 / bn_pre_2 → predictor.pre1 / bn_pre1 / pre2 / bn_pre2
    hid.predictor.predictor.conv1_1 / bn1_1 / conv2_1 / bn2_1 → predictor.down1 / bn_down1 / down2 / bn_down2
    hid.predictor.predictor.conv3_1 / bn3_1 / conv4_1 / bn4_1 → predictor.fuse / bn_fuse / up / bn_up
    hid.predictor.predictor.conv3d_1.{conv3d,bn3d}.* → predictor.time1.{conv,bn}.*
    hid.predictor.predictor.temporal_layer.{conv3d,bn3d}.* → predictor.time2.{conv,bn}.*   (temporal_layer.0.* →
                                                 predictor.time2.* when aft_seq_length is 1)
    hid.predictor.predictor.conv_translate.0.* / bn_translate.* → predictor.translate.* / predictor.bn_translate.*
    dec.upsample_block_low2high / dec.upsample_block.0 / .1 (.up.*, .conv.conv.0.weight)
                                               → decoder.up_low / up_mid / up_top (.up.*, .conv.weight)
    dec.rrdb_block.J.* / dec.outc.*            → decoder.rrdb.J.* / decoder.readout.*
    enhance.model.0.*                          → enhancer.stem.*  (input channels reordered, see below)
    enhance.model.J.* (J ≥ 1) / enhance.outconv.* → enhancer.rrdb.(J−1).* / enhancer.readout.*
    hid.scale_fuser_1.*, hid.scale_fuser_2.*, hid.predictor.fuse_conv.weight
                                               → dropped: OpenSTL's forward never calls them

BatchNorm running statistics are mapped with their layers. The enhancer's first conv reads OpenSTL's
[decoded frame ; composed frame] channels in stzoo's per-colour order (decoded c, composed c, ...); for
one channel that is the same order. The frame count in and out is read from the translate conv
((T − 1)·hid_T → F·hid_T channels), the sizes from the weights; the frame size the model was trained at
is not in the weights (``in_shape`` of the config, else 64×64).

Only what OpenSTL's Moving MNIST config builds converts: ``downsample_setting='2,2,2'``,
``use_direct_predictor=True`` and one colour channel. For C > 1 OpenSTL's forward returns its frames
through ``permute(0, 2, 3, 1).reshape(B, -1, C, H, W)``, which scrambles pixels across channels: its
weights are trained for that scramble, which stzoo does not reproduce, so such checkpoints are refused.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

import torch
from torch import Tensor

import stzoo.models.mmvp  # noqa: F401  (registers the "mmvp" architecture)
from stzoo.convert.openstl.core import _DEFAULTS, OpenSTLMethod, _count, _indices, _need, _Resolver, register_openstl
from stzoo.errors import ConfigError, InputError

__all__ = ["MMVP"]

_WHAT = "OpenSTL's MMVP model (MMVP_Model)"
_P = "hid.predictor.predictor"


def _rrdb_count(state: Mapping[str, Tensor], prefix: str, first: int = 0) -> int:
    found = [i - first for i in _indices(state, rf"^{re.escape(prefix)}\.(\d+)\.RDB1\.")]
    return _count(found, f"the RRDBs {prefix}.N") if found else 0


def _resolve(state: Mapping[str, Tensor], r: _Resolver) -> tuple[dict[str, Any], dict[str, Any], str]:
    stem = _need(state, "enc.inconv.weight", _WHAT)
    embed = _need(state, "hid.predictor.conv1.weight", _WHAT)
    method = r.lookup("method")
    if method is not None and method[0] != "mmvp":
        raise ConfigError(f"the {method[1]} says method={method[0]!r}, but --arch mmvp converts OpenSTL's MMVP")
    if f"{_P}.conv3d_2.conv3d.weight" in state or f"{_P}.conv_translate.0.weight" not in state:
        raise InputError(
            "this MMVP checkpoint has no direct matrix predictor (it was built with "
            "use_direct_predictor=False, or is not an MMVP): stzoo builds OpenSTL's default "
            f"SimpleMatrixPredictor3DConv_direct only (it needs '{_P}.conv_translate.0.weight')"
        )
    for name in (
        "dec.upsample_block_low2high.up.weight",
        "dec.upsample_block.0.up.weight",
        "dec.upsample_block.1.up.weight",
    ):
        w = _need(state, name, _WHAT)
        if w.dim() != 4 or tuple(w.shape[-2:]) != (2, 2):
            raise InputError(
                f"{name} has shape {tuple(w.shape)}: a ×{w.shape[-1]} upsampling. stzoo's MMVP is "
                "OpenSTL's downsample_setting='2,2,2' (every stage ×2, 2×2 transposed kernels) only"
            )
    if stem.dim() != 4 or stem.shape[1] % 4:
        raise InputError(
            f"enc.inconv.weight has shape {tuple(stem.shape)}; expected hid_S × 4·C × 3 × 3 (the frames "
            "enter pixel-unshuffled by 2)"
        )
    hid_s, channels = int(stem.shape[0]), int(stem.shape[1]) // 4
    if channels != 1:
        raise InputError(
            f"this MMVP checkpoint reads {channels} colour channels. OpenSTL's MMVP_Model returns its "
            "frames through permute(0, 2, 3, 1).reshape(B, -1, C, H, W), which for C > 1 scrambles pixels "
            "across channels, and its weights are trained for that; stzoo's MMVP returns the frames "
            "unscrambled, so only one-channel checkpoints convert exactly"
        )
    hid_t = int(embed.shape[0])
    translate = _need(state, f"{_P}.conv_translate.0.weight", _WHAT)
    if translate.dim() != 4 or translate.shape[0] % hid_t or translate.shape[1] % hid_t:
        raise InputError(
            f"{_P}.conv_translate.0.weight has shape {tuple(translate.shape)}; expected "
            f"F·hid_T × (T−1)·hid_T × 1 × 1 with hid_T = {hid_t}"
        )
    frames_out, frames_in = int(translate.shape[0]) // hid_t, int(translate.shape[1]) // hid_t + 1
    cfg: dict[str, Any] = {
        "frames_in": r.inferred("frames_in", frames_in, label="frames_in ((translate conv inputs) / hid_T + 1)"),
        "frames_out": r.inferred("frames_out", frames_out, label="frames_out (translate conv outputs / hid_T)"),
        "channels": r.inferred("channels", channels),
        "hid_S": r.inferred("hid_S", hid_s),
        "hid_T": r.inferred("hid_T", hid_t),
        "rrdb_encoder_num": r.inferred("rrdb_encoder_num", _rrdb_count(state, "enc.block_rrdb")),
        "rrdb_decoder_num": r.inferred("rrdb_decoder_num", _rrdb_count(state, "dec.rrdb_block")),
        "rrdb_enhance_num": r.inferred("rrdb_enhance_num", _rrdb_count(state, "enhance.model", first=1)),
    }
    for key in ("height", "width"):
        cfg[key] = r.chosen(
            key,
            _DEFAULTS[key],
            note="default (OpenSTL's Moving MNIST setting; the weights do not depend on the frame size)",
        )
        if cfg[key] % 16 or cfg[key] < 16:
            raise ConfigError(f"{key}={cfg[key]}: MMVP needs frame sizes that are multiples of 16")
    spec = {
        "frames_in": frames_in,
        "frames_out": frames_out,
        "channels": channels,
        "height": cfg["height"],
        "width": cfg["width"],
        "value_range": [0.0, 1.0],
    }
    return cfg, spec, "MMVP_Model (downsample_setting='2,2,2', use_direct_predictor=True)"


_RULES: list[tuple[str, str]] = [
    (r"^encoder\.stem\.", "enc.inconv."),
    (r"^encoder\.rrdb\.", "enc.block_rrdb."),
    (r"^encoder\.down1\.skip\.", "enc.pre_downsample_block.0.shortcut."),
    (r"^encoder\.down1\.", "enc.pre_downsample_block.0."),
    (r"^encoder\.down_high\.skip\.", "enc.downsample_high.shortcut."),
    (r"^encoder\.down_high\.", "enc.downsample_high."),
    (r"^encoder\.down_low\.skip\.", "enc.downsample_low.shortcut."),
    (r"^encoder\.down_low\.", "enc.downsample_low."),
    (r"^predictor\.embed\.", "hid.predictor.conv1."),
    (r"^predictor\.readout\.", "hid.predictor.out_conv."),
    (r"^predictor\.pre1\.", f"{_P}.conv_pre_1."),
    (r"^predictor\.bn_pre1\.", f"{_P}.bn_pre_1."),
    (r"^predictor\.pre2\.", f"{_P}.conv_pre_2."),
    (r"^predictor\.bn_pre2\.", f"{_P}.bn_pre_2."),
    (r"^predictor\.down1\.", f"{_P}.conv1_1."),
    (r"^predictor\.bn_down1\.", f"{_P}.bn1_1."),
    (r"^predictor\.down2\.", f"{_P}.conv2_1."),
    (r"^predictor\.bn_down2\.", f"{_P}.bn2_1."),
    (r"^predictor\.fuse\.", f"{_P}.conv3_1."),
    (r"^predictor\.bn_fuse\.", f"{_P}.bn3_1."),
    (r"^predictor\.up\.", f"{_P}.conv4_1."),
    (r"^predictor\.bn_up\.", f"{_P}.bn4_1."),
    (r"^predictor\.time1\.conv\.", f"{_P}.conv3d_1.conv3d."),
    (r"^predictor\.time1\.bn\.", f"{_P}.conv3d_1.bn3d."),
    (r"^predictor\.time2\.conv\.", f"{_P}.temporal_layer.conv3d."),
    (r"^predictor\.time2\.bn\.", f"{_P}.temporal_layer.bn3d."),
    (r"^predictor\.time2\.", f"{_P}.temporal_layer.0."),  # aft_seq_length 1: a 2-D conv
    (r"^predictor\.translate\.", f"{_P}.conv_translate.0."),
    (r"^predictor\.bn_translate\.", f"{_P}.bn_translate."),
    (r"^decoder\.up_low\.conv\.", "dec.upsample_block_low2high.conv.conv.0."),
    (r"^decoder\.up_low\.", "dec.upsample_block_low2high."),
    (r"^decoder\.up_mid\.conv\.", "dec.upsample_block.0.conv.conv.0."),
    (r"^decoder\.up_mid\.", "dec.upsample_block.0."),
    (r"^decoder\.up_top\.conv\.", "dec.upsample_block.1.conv.conv.0."),
    (r"^decoder\.up_top\.", "dec.upsample_block.1."),
    (r"^decoder\.rrdb\.", "dec.rrdb_block."),
    (r"^decoder\.readout\.", "dec.outc."),
    (r"^enhancer\.stem\.", "enhance.model.0."),
    (r"^enhancer\.readout\.", "enhance.outconv."),
]
_FILTER = {"conv1": "0", "bn1": "1", "conv2": "3", "bn2": "4", "conv3": "6", "bn3": "7"}


def _openstl_key(key: str) -> str:
    if m := re.match(r"^filter_(high|low)\.(conv\d|bn\d)\.(.+)$", key):
        return f"filter.filter_block.{0 if m.group(1) == 'high' else 1}.{_FILTER[m.group(2)]}.{m.group(3)}"
    if m := re.match(r"^enhancer\.rrdb\.(\d+)\.(.+)$", key):
        key = f"enhance.model.{int(m.group(1)) + 1}.{m.group(2)}"
    else:
        for pattern, repl in _RULES:
            new, n = re.subn(pattern, repl, key)
            if n:
                key = new
                break
        else:
            raise AssertionError(f"no OpenSTL name for stzoo key {key}")  # stzoo's MMVP changed: update the rules
    return re.sub(r"\.rdb(\d)\.", r".RDB\1.", key)


def _unused_shapes(cfg: dict[str, Any]) -> dict[str, tuple[int, ...]]:
    h, t = cfg["hid_S"], cfg["hid_T"]
    shapes: dict[str, tuple[int, ...]] = {
        "hid.scale_fuser_1.up.weight": (2 * h, h, 2, 2),
        "hid.scale_fuser_1.up.bias": (h,),
        "hid.scale_fuser_1.conv.conv.0.weight": (h, 2 * h, 3, 3),
        "hid.scale_fuser_2.0.weight": (h, h, 3, 3),
        "hid.scale_fuser_2.0.bias": (h,),
        "hid.scale_fuser_2.3.weight": (h, h, 3, 3),
        "hid.scale_fuser_2.3.bias": (h,),
        "hid.predictor.fuse_conv.weight": (t, 2 * t, 3, 3),
    }
    for bn in ("hid.scale_fuser_2.1", "hid.scale_fuser_2.4"):
        shapes.update({f"{bn}.{s}": (h,) for s in ("weight", "bias", "running_mean", "running_var")})
        shapes[f"{bn}.num_batches_tracked"] = ()
    return shapes


def _pairs(
    model_keys: list[str], cfg: dict[str, Any]
) -> tuple[dict[str, tuple[str | None, Callable[[Tensor], Tensor] | None]], dict[str, tuple[int, ...]]]:
    c = cfg["channels"]
    # stzoo's enhancer input s = colour·2 + j (j = 0 decoded, 1 composed) ↔ OpenSTL's j·C + colour
    perm = torch.tensor([j * c + colour for colour in range(c) for j in range(2)])
    pairs: dict[str, tuple[str | None, Callable[[Tensor], Tensor] | None]] = {}
    for key in model_keys:
        pairs[key] = (_openstl_key(key), (lambda w: w[:, perm]) if key == "enhancer.stem.weight" else None)
    return pairs, _unused_shapes(cfg)


MMVP = register_openstl(
    OpenSTLMethod(
        arch="mmvp",
        names=("mmvp",),
        label="MMVP",
        config_keys=frozenset({"hid_S", "hid_T", "rrdb_encoder_num", "rrdb_decoder_num", "rrdb_enhance_num"}),
        resolve=_resolve,
        pairs=_pairs,
        card_notes=(
            "OpenSTL's MidMotionMatrix.scale_fuser_1 / scale_fuser_2 and PredictModel.fuse_conv were dropped: "
            "its forward never calls them",
        ),
    )
)
