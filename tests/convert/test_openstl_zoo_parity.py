"""stzoo's import of OpenSTL's published checkpoints, checked against OpenSTL's own forward at each dataset's config.

For every distinct (method, config, input) key of the loadable catalogue entries — the model config the zoo
passes to the importer (:func:`stzoo.convert.openstl.zoo._model_config`: hidden sizes, layers, patch size,
``sr_size``, ``N_S`` / ``N_T``, ``model_type``, E3D-LSTM's ``stride``, frames in / out, channels, ...) — random
weights in OpenSTL's layout (tests/helpers/openstl_zoo_files.py, from the independent references
``tests/helpers/openstl_reference*.py``) are converted by stzoo with that config, and stzoo's forecast of the
dataset's ``aft_seq_length`` frames is compared with the reference's re-statement of OpenSTL's test-time forward.
Both run in float64 on the same (float32-valued) weights, so the bound can be far below float32 rounding: ≤ 1e-9
relative (in float32 the paper-size widths and SimVP's fed-back rollouts reach ~1e-5 from rounding alone: HorNet
at KTH's config measured 1.2e-5 in float32 and 2.7e-14 in float64). Everything but the frame size is the
dataset's: where frames are larger than 16×32 the check runs at the size halved until it is (at least 16 on the
short side while staying a multiple of what the architecture needs), since the comparison is of the function
and only a few tensors (MIM's and MAU's per-position weights, E3D-LSTM's LayerNorm, MLP-Mixer's token MLP,
Swin's window) are sized by the frame; they are built at the smaller size. DMVFN runs OpenSTL's sampled
routing (``routing="bernoulli"``) from the same generator state.

By default each method kind runs once (datasets taken in turn, as the end-to-end sweep's default does);
``STZOO_OPENSTL_SWEEP=all`` runs every key (192 when this was written). Measured cost: docs/openstl.md."""

from __future__ import annotations

import json
import os

import pytest
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
from helpers import openstl_zoo_files as zf

from stzoo.convert.openstl import from_openstl, zoo
from stzoo.convert.openstl.catalog import load_catalog

TOL = 1e-9
CATALOG = load_catalog()
DATASETS = CATALOG["datasets"]
SWEEP_ENV = "STZOO_OPENSTL_SWEEP"
#: the largest frame the check runs at (larger frames are halved until they fit), and the shortest side
MAX_PIXELS, MIN_SIDE = 16 * 32, 16


def _keys() -> dict[str, dict]:
    """key → the first entry (by name) with that (builder, model config, input shape)."""
    out: dict[str, dict] = {}
    for stem in sorted(CATALOG["checkpoints"]):
        entry = CATALOG["checkpoints"][stem]
        arch = zoo.arch_for(entry)
        if arch is None or zf.builder_for(entry) is None:
            continue
        shape = zf.shape_of(entry, DATASETS[entry["dataset"]])
        key = json.dumps([zf.builder_for(entry), zoo._model_config(entry, arch), shape], sort_keys=True)
        out.setdefault(key, {"stem": stem, **entry})
    return out


KEYS = _keys()


def _multiple(kind: str, cfg: dict) -> int:
    """What the frame's sides must be a multiple of for this model."""
    if kind == "mau":
        return int(cfg.get("patch_size", 1)) * int(cfg.get("sr_size", 4))
    if kind == "tau" or kind.startswith("simvp_"):
        down = 2 ** (int(cfg.get("N_S", 4)) // 2)
        return down * (8 if kind == "simvp_swin" else 1)  # Swin: windows of up to 8 latent cells
    if kind == "prednet":
        return 2 ** (len(cfg.get("stack_sizes", [0] * 5)) - 1)
    if kind == "dmvfn":
        return 32
    return int(cfg.get("patch_size", 4)) * (2 if kind == "e3dlstm" else 1)


def _small_shape(kind: str, cfg: dict, shape: tuple[int, ...]) -> tuple[int, ...]:
    t, aft, c, h, w = shape
    m = _multiple(kind, cfg)
    while h * w > MAX_PIXELS and min(h, w) // 2 >= MIN_SIDE and (h // 2) % m == 0 and (w // 2) % m == 0:
        h, w = h // 2, w // 2
    return t, aft, c, h, w


def _covering() -> list[str]:
    kinds = sorted({json.loads(k)[0] for k in KEYS})
    datasets = sorted(DATASETS)
    out = []
    for i, kind in enumerate(kinds):
        of_kind = [k for k in KEYS if json.loads(k)[0] == kind]
        want = datasets[i % len(datasets)]
        out.append(next((k for k in of_kind if KEYS[k]["dataset"] == want), of_kind[0]))
    return out


SELECTED = list(KEYS) if os.environ.get(SWEEP_ENV, "").lower() == "all" else _covering()


def _simvp_rollout(one_pass, sd: dict, x: torch.Tensor, aft: int) -> torch.Tensor:
    """OpenSTL's ``SimVP._predict``: aft ≤ pre one pass, cut; else whole passes fed back, then a cut one."""
    pre = x.shape[1]
    if aft <= pre:
        return one_pass(sd, x)[:, :aft]
    preds, cur = [], x
    for _ in range(aft // pre):
        cur = one_pass(sd, cur)
        preds.append(cur)
    if aft % pre:
        preds.append(one_pass(sd, cur)[:, : aft % pre])
    return torch.cat(preds, dim=1)


def _reference(kind: str, cfg: dict, sd: dict, x: torch.Tensor, aft: int) -> torch.Tensor:
    y = torch.zeros(x.shape[0], aft, *x.shape[2:])
    p = int(cfg.get("patch_size", 4))
    if kind == "tau":
        return _simvp_rollout(lambda s, z: ref.simvp_tau_forward(s, z), sd, x, aft)
    if kind in ("simvp_gsta", "simvp_incepu"):
        return _simvp_rollout(rsim.simvp_forward, sd, x, aft)
    if kind.startswith("simvp_"):
        return _simvp_rollout(rmeta.metaformer_forward, sd, x, aft)
    if kind == "convlstm":
        return ref.convlstm_predict(sd, x, y, p)
    if kind in ("predrnn", "predrnnv2"):
        return rpr.predrnn_predict(sd, x, y, p)
    if kind == "predrnnpp":
        return rpp.predrnnpp_predict(sd, x, y, p)
    if kind == "mim":
        return rmim.mim_predict(sd, x, y, p)
    if kind == "e3dlstm":
        return re3.e3dlstm_predict(sd, x, y, p, stride=int(cfg.get("stride", 1)))
    if kind == "mau":
        return rmau.mau_predict(
            sd,
            x,
            y,
            sr_size=int(cfg.get("sr_size", 4)),
            tau=int(cfg.get("tau", 5)),
            cell_mode=str(cfg.get("cell_mode", "normal")),
            model_mode=str(cfg.get("model_mode", "normal")),
        )
    if kind == "phydnet":
        return rphy.phydnet_predict(sd, x, aft, p)
    if kind == "prednet":
        return rpn.prednet_predict(sd, x, y, float(cfg.get("pixel_max", 1.0)))
    if kind == "dmvfn":
        return rdmv.dmvfn_inference(sd, x, aft, [int(s) for s in cfg["scale"]], float(cfg.get("beta", 0.5)))
    if kind == "crevnet":
        return rcrev.crevnet_predict(sd, x, y)
    raise AssertionError(f"no reference forward for {kind}")


@pytest.mark.parametrize("key", SELECTED, ids=[KEYS[k]["stem"] for k in SELECTED])
def test_import_equals_openstl_at_the_dataset_config(key):
    entry = KEYS[key]
    kind = zf.builder_for(entry)
    arch = zoo.arch_for(entry)
    cfg = zoo._model_config(entry, arch)
    shape = _small_shape(kind, cfg, zf.shape_of(entry, DATASETS[entry["dataset"]]))
    t, aft, c, h, w = shape
    small = {**entry, "config": {**entry["config"], "in_shape": [t, c, h, w]}}
    sd = zf.BUILDERS[kind](small["config"], shape, 0)
    given = {**cfg, "in_shape": [t, c, h, w]}
    if kind == "dmvfn":
        given["routing"] = "bernoulli"  # OpenSTL's test loop samples its routing: compare draw for draw
    p = from_openstl(sd, arch, given)
    assert (p.spec.frames_in, p.spec.frames_out, p.spec.channels, p.spec.height, p.spec.width) == (t, aft, c, h, w)
    if kind == "e3dlstm":  # KTH's config: stride 2, which the tensors cannot tell; the import must keep it
        assert p.model.config.stride == int(cfg["stride"])
    x = torch.rand(1, t, c, h, w, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    sd64 = {k: v.double() if v.is_floating_point() else v for k, v in sd.items()}
    model = p.model.double().eval()
    recurrent = arch != "simvp" and kind != "tau"
    default = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)  # the references' own zeros (states, masks) in float64 too
    try:
        with torch.no_grad():
            torch.manual_seed(2)
            want = _reference(kind, cfg, sd64, x, aft)
            torch.manual_seed(2)
            got = model(x, aft) if recurrent else _simvp_rollout(lambda _, z: model(z), None, x, aft)
    finally:
        torch.set_default_dtype(default)
    assert got.shape == want.shape == (1, aft, c, h, w)
    assert float(want.std()) > 1e-4, "the reference forecast is flat: the check would not see a wrong map"
    err = ref.relative_error(got, want)
    assert err <= TOL, f"{entry['stem']} at {h}×{w}: {err:.2e}"
