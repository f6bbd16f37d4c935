"""`stzoo convert openstl`: import a checkpoint trained with another library."""

from __future__ import annotations

import argparse
import json

__all__ = ["register"]


def _cmd_convert_openstl(args: argparse.Namespace) -> int:
    from stzoo.convert import convert_openstl

    folder, rep = convert_openstl(
        args.checkpoint, args.arch, args.out, config=args.config, name=args.name, license=args.license
    )
    print(
        f"converted {rep.source} ({rep.openstl_model}, {rep.container}) to stzoo {rep.arch}: "
        f"{rep.tensors_mapped} tensors mapped, {len(rep.tensors_unused)} unused OpenSTL tensors dropped, "
        f"{rep.parameters:,} parameters"
    )
    print(f"config: {json.dumps(rep.config)}")
    if rep.placeholders:
        print(f"objects outside the weights, not loaded: {', '.join(rep.placeholders)}")
    print(f"wrote {folder} (config.json, model.safetensors, README.md); load it with stzoo.load({str(folder)!r})")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    """Add `convert` (with `openstl` under it) to the subcommands ``sub``."""
    p = sub.add_parser("convert", help="import a checkpoint trained with another library")
    convert_sub = p.add_subparsers(dest="convert_source", required=True)
    p = convert_sub.add_parser(
        "openstl",
        help="an OpenSTL checkpoint (.pth / .ckpt; any of the 14 methods in docs/openstl.md, "
        "e.g. TAU, SimVP, PredRNN, MIM, SwinLSTM) → a save_pretrained folder",
        description="Convert an OpenSTL checkpoint (raw state_dict, a dict with 'state_dict', or a Lightning "
        ".ckpt; read with torch.load(weights_only=True) only) into a folder that stzoo.load(DIR) loads. Keys "
        "and shapes are checked strictly. See docs/openstl.md.",
    )
    p.add_argument("checkpoint", metavar="CKPT", help="the OpenSTL .pth / .ckpt file")
    p.add_argument(
        "--arch",
        required=True,
        metavar="METHOD",
        help="OpenSTL's method name, any case: TAU, SimVP (with the config's model_type), SimVP_gSTA, "
        "ConvLSTM, PredRNN, PredRNNv2, PredRNNpp, MIM, MAU, PhyDNet, E3DLSTM, MMVP, SwinLSTM, PredFormer, "
        "PredNet, DMVFN",
    )
    p.add_argument(
        "--config",
        default=None,
        metavar="JSON|FILE",
        help="what the weights cannot tell, e.g. '{\"patch_size\": 4}' for ConvLSTM; JSON, a .json "
        "file or an OpenSTL .py config (e.g. configs/mmnist/ConvLSTM.py) (default: read everything "
        "from the checkpoint)",
    )
    p.add_argument("--out", required=True, metavar="DIR", help="folder to write (required)")
    p.add_argument("--name", default=None, help="name in the model card (default: <arch>-openstl-<file stem>)")
    p.add_argument(
        "--license", default="Apache-2.0", help="license of the original weights (default: OpenSTL's, Apache-2.0)"
    )
    p.set_defaults(func=_cmd_convert_openstl)
