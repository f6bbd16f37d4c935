"""Files in the layout of OpenSTL's published checkpoints, for the loopback release server of the zoo tests.

Each catalogue entry gets a random state dict at its config (OpenSTL's tensor names, built with the
independent reference helpers ``openstl_reference*.py``, not with stzoo's converters), saved with
``torch.save`` as OpenSTL saves its ``.pth`` files. :func:`file_key` says which entries can share one file
(same method, config and input shape), so the sweep builds each distinct file once."""

from __future__ import annotations

import io
import json
from typing import Any

import torch

from helpers import openstl_reference as ref
from helpers import openstl_reference_crevnet as rcrev
from helpers import openstl_reference_dmvfn as rdmv
from helpers import openstl_reference_e3dlstm as re3
from helpers import openstl_reference_mau as rmau
from helpers import openstl_reference_mim as rmim
from helpers import openstl_reference_phydnet as rphy
from helpers import openstl_reference_prednet as rpn
from helpers import openstl_reference_predrnn as rpr
from helpers import openstl_reference_predrnnpp as rpp
from helpers import openstl_reference_simvp as rsim
from helpers import openstl_reference_simvp_metaformer as rmeta

__all__ = ["BUILDERS", "builder_for", "file_key", "state_dict_for", "file_bytes", "shape_of"]


def _hidden(cfg: dict[str, Any]) -> list[int]:
    raw = cfg.get("num_hidden", "128,128,128,128")
    return [int(s) for s in str(raw).split(",")] if not isinstance(raw, list) else [int(v) for v in raw]


def shape_of(entry: dict[str, Any], dataset: dict[str, Any]) -> tuple[int, int, int, int, int]:
    """(frames_in, frames_out, channels, height, width) of an entry: its config's in_shape, else its dataset."""
    cfg = entry.get("config") or {}
    t, c, h, w = cfg.get("in_shape") or (dataset["frames_in"], dataset["channels"], dataset["height"], dataset["width"])
    out = cfg.get("aft_seq_length") or dataset["frames_out"]
    return int(t), int(out), int(c), int(h), int(w)


def _simvp(model_type: str):
    def build(cfg: dict[str, Any], shape: tuple[int, ...], seed: int) -> dict[str, torch.Tensor]:
        t, _, c, h, w = shape
        kw: dict[str, Any] = {k: int(cfg[k]) for k in ("hid_S", "hid_T", "N_S", "N_T") if k in cfg}
        if "mlp_ratio" in cfg:
            kw["mlp_ratio"] = float(cfg["mlp_ratio"])
        if "spatio_kernel_enc" in cfg:
            kw["spatio_kernel"] = int(cfg["spatio_kernel_enc"])
        if model_type == "tau":
            return ref.tau_state_dict(channels=c, frames=t, seed=seed, **kw)
        if model_type in rmeta.TYPES:
            return rmeta.metaformer_state_dict(model_type, channels=c, frames=t, height=h, width=w, seed=seed, **kw)
        return rsim.simvp_state_dict(model_type, channels=c, frames=t, seed=seed, **kw)

    return build


def _prednet(cfg: dict[str, Any], shape: tuple[int, ...], seed: int) -> dict[str, torch.Tensor]:
    """OpenSTL's ``PredNet_Model`` (tag OpenSTLv0.3.0) at the config's stack sizes; every kernel 3 as in all of
    OpenSTL's PredNet configs (a config with other sizes is refused here rather than built wrong)."""
    stack = [int(v) for v in cfg.get("stack_sizes", (shape[2], 32, 64, 128, 256))]
    r_stack = [int(v) for v in cfg.get("R_stack_sizes", stack)]
    sizes = {int(k) for key in ("A_filt_sizes", "Ahat_filt_sizes", "R_filt_sizes") for k in cfg.get(key, (3,))}
    if sizes != {3}:
        raise ValueError(f"the PredNet reference builds 3x3 kernels only, the config has {sorted(sizes)}")
    return rpn.prednet_state_dict(stack, r_stack, k=3, seed=seed)


def _dmvfn(cfg: dict[str, Any], shape: tuple[int, ...], seed: int) -> dict[str, torch.Tensor]:
    """OpenSTL's ``DMVFN_Model`` (tag OpenSTLv0.3.0) at the config's blocks and routing width."""
    features = [int(v) for v in cfg.get("num_features", [160] * 3 + [80] * 3 + [44] * 3)]
    return rdmv.dmvfn_state_dict(shape[2], features, routing_out=int(cfg.get("routing_out_channels", 32)), seed=seed)


def _patched(fn):
    def build(cfg: dict[str, Any], shape: tuple[int, ...], seed: int) -> dict[str, torch.Tensor]:
        _, _, c, h, w = shape
        p = int(cfg.get("patch_size", 4))
        return fn(cfg, p * p * c, (h // p, w // p), int(cfg.get("filter_size", 5)), seed)

    return build


def _crevnet(cfg: dict[str, Any], shape: tuple[int, ...], seed: int) -> dict[str, torch.Tensor]:
    """CrevNet: the autoencoder is fixed by the frame channels; rnn_size must match it (checked by the importer)."""
    return rcrev.crevnet_state_dict(
        channels=shape[2],
        rnn_size=int(cfg.get("rnn_size", 32 * shape[2])),
        predictor_rnn_layers=int(cfg.get("predictor_rnn_layers", 8)),
        seed=seed,
    )


BUILDERS = {
    "tau": _simvp("tau"),
    "simvp_gsta": _simvp("gsta"),
    "simvp_incepu": _simvp("incepu"),
    **{f"simvp_{t}": _simvp(t) for t in rmeta.TYPES},
    "convlstm": _patched(
        lambda cfg, pc, grid, k, seed: ref.convlstm_state_dict(
            patch_channels=pc, num_hidden=_hidden(cfg), filter_size=k, grid=grid, seed=seed
        )
    ),
    "predrnn": _patched(
        lambda cfg, pc, grid, k, seed: rpr.predrnn_state_dict(
            patch_channels=pc, num_hidden=_hidden(cfg), filter_size=k, grid=grid, seed=seed
        )
    ),
    "predrnnv2": _patched(
        lambda cfg, pc, grid, k, seed: rpr.predrnn_state_dict(
            patch_channels=pc, num_hidden=_hidden(cfg), filter_size=k, grid=grid, v2=True, seed=seed
        )
    ),
    "predrnnpp": _patched(
        lambda cfg, pc, grid, k, seed: rpp.predrnnpp_state_dict(
            patch_channels=pc, num_hidden=_hidden(cfg), filter_size=k, seed=seed
        )
    ),
    "mim": _patched(
        lambda cfg, pc, grid, k, seed: rmim.mim_state_dict(
            patch_channels=pc, num_hidden=_hidden(cfg), grid=grid, filter_size=k, seed=seed
        )
    ),
    "e3dlstm": _patched(
        lambda cfg, pc, grid, k, seed: re3.e3dlstm_state_dict(
            patch_channels=pc, num_hidden=_hidden(cfg), grid=grid, filter_size=k, seed=seed
        )
    ),
    "mau": lambda cfg, shape, seed: rmau.mau_state_dict(
        channels=int(cfg.get("patch_size", 1)) ** 2 * shape[2],
        num_hidden=_hidden(cfg),
        grid=(
            shape[3] // int(cfg.get("patch_size", 1)) // int(cfg.get("sr_size", 4)),
            shape[4] // int(cfg.get("patch_size", 1)) // int(cfg.get("sr_size", 4)),
        ),
        sr_size=int(cfg.get("sr_size", 4)),
        filter_size=int(cfg.get("filter_size", 5)),
        seed=seed,
    ),
    "phydnet": lambda cfg, shape, seed: rphy.phydnet_state_dict(channels=shape[2], seed=seed),
    "crevnet": _crevnet,
    "prednet": _prednet,
    "dmvfn": _dmvfn,
}


def builder_for(entry: dict[str, Any]) -> str | None:
    """The key in :data:`BUILDERS` for a catalogue entry (OpenSTL's method and SimVP translator), or None."""
    method = str(entry.get("openstl_method") or "").lower()
    model_type = str(entry.get("model_type") or "").lower()
    if method == "tau" or (method == "simvp" and model_type == "tau"):
        return "tau"
    if method == "simvp":
        return f"simvp_{model_type}" if f"simvp_{model_type}" in BUILDERS else None
    return method if method in BUILDERS else None


def file_key(entry: dict[str, Any], dataset: dict[str, Any]) -> str:
    """Entries with the same key are served the same bytes (same method, config and input shape)."""
    cfg = {k: v for k, v in (entry.get("config") or {}).items() if k not in ("lr", "batch_size", "sched")}
    return json.dumps([builder_for(entry), cfg, shape_of(entry, dataset)], sort_keys=True)


def state_dict_for(entry: dict[str, Any], dataset: dict[str, Any], seed: int = 0) -> dict[str, torch.Tensor]:
    """Random weights in OpenSTL's layout at the entry's config."""
    kind = builder_for(entry)
    if kind is None:
        raise KeyError(f"no reference builder for {entry.get('openstl_method')} / {entry.get('model_type')}")
    return BUILDERS[kind](entry.get("config") or {}, shape_of(entry, dataset), seed)


def file_bytes(entry: dict[str, Any], dataset: dict[str, Any], seed: int = 0) -> bytes:
    """The entry's ``.pth`` as OpenSTL writes it (``torch.save`` of the state dict)."""
    buf = io.BytesIO()
    torch.save(state_dict_for(entry, dataset, seed), buf)
    return buf.getvalue()
