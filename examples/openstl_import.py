"""Import an OpenSTL checkpoint into stzoo, then load it and predict.

A real run starts from a file OpenSTL wrote, e.g. its published ``mmnist_tau_one_ep200.pth``::

    stzoo convert openstl mmnist_tau_one_ep200.pth --arch tau --out tau-openstl
    stzoo convert openstl convlstm.pth --arch convlstm --config '{"patch_size": 4}' --out convlstm-openstl

This example downloads nothing: it writes a small ConvLSTM checkpoint with random weights in the
layout OpenSTL's Lightning trainer saves (``state_dict`` with ``model.``-prefixed keys, optimizer
state, ``hyper_parameters``), converts it into OUT/openstl-convlstm and loads that folder. OUT is
``--out`` (default: a new temporary folder).

    python examples/openstl_import.py [--out DIR]
"""

import argparse
import tempfile
from pathlib import Path

import numpy as np
import torch

import stzoo
from stzoo.convert import convert_openstl

PATCH, CHANNELS, HIDDEN, LAYERS, K = 4, 1, 16, 2, 5


def openstl_convlstm_checkpoint(path: Path) -> None:
    """What OpenSTL's ConvLSTM_Model (layer_norm=0, stride 1) saves, with random values."""
    g = torch.Generator().manual_seed(0)
    patch_ch = PATCH * PATCH * CHANNELS
    state = {}
    for i in range(LAYERS):
        c_in = patch_ch if i == 0 else HIDDEN
        state[f"model.cell_list.{i}.conv_x.0.weight"] = torch.randn(4 * HIDDEN, c_in, K, K, generator=g) * 0.05
        state[f"model.cell_list.{i}.conv_h.0.weight"] = torch.randn(4 * HIDDEN, HIDDEN, K, K, generator=g) * 0.05
        state[f"model.cell_list.{i}.conv_o.0.weight"] = torch.randn(HIDDEN, 2 * HIDDEN, K, K, generator=g) * 0.05
        state[f"model.cell_list.{i}.conv_last.weight"] = torch.randn(HIDDEN, 2 * HIDDEN, 1, 1, generator=g) * 0.05
    state["model.conv_last.weight"] = torch.randn(patch_ch, HIDDEN, 1, 1, generator=g) * 0.1
    torch.save(
        {
            "epoch": 1,
            "global_step": 100,
            "pytorch-lightning_version": "2.1.0",
            "state_dict": state,
            "optimizer_states": [],
            "lr_schedulers": [],
            "hyper_parameters": {
                "method": "convlstm",
                "in_shape": [10, CHANNELS, 64, 64],
                "pre_seq_length": 10,
                "aft_seq_length": 10,
                "num_hidden": ",".join([str(HIDDEN)] * LAYERS),
                "filter_size": K,
                "stride": 1,
                "patch_size": PATCH,
                "layer_norm": 0,
                "lr": 1e-3,
            },
        },
        path,
    )


parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
parser.add_argument(
    "--out",
    default=None,
    metavar="DIR",
    help="folder for what this example writes (default: a new temporary folder, printed)",
)
args = parser.parse_args()
out = Path(args.out) if args.out else Path(tempfile.mkdtemp(prefix="stzoo-example-"))
out.mkdir(parents=True, exist_ok=True)
with tempfile.TemporaryDirectory() as tmp:
    ckpt = Path(tmp) / "epoch=1-step=100.ckpt"
    openstl_convlstm_checkpoint(ckpt)
    folder, report = convert_openstl(ckpt, "convlstm", out / "openstl-convlstm")  # patch_size from hyper_parameters

print(
    f"converted {report.source} ({report.container}): {report.tensors_mapped} tensors mapped, "
    f"dropped as unused by OpenSTL: {report.tensors_unused}"
)
print("config sources:", report.config_sources)

p = stzoo.load(folder)
frames = np.zeros((10, 64, 64), dtype=np.uint8)
for t in range(10):
    frames[t, 20:30, 5 + 3 * t : 15 + 3 * t] = 255
future = p.predict(frames, horizon=5)
print(p, "→ predicted", future.shape, future.dtype)
print(f"model card: {folder / 'README.md'}")
