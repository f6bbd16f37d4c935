"""Import checkpoints trained with other libraries into stzoo.

Each source library has its own package (OpenSTL: :mod:`stzoo.convert.openstl`, one module per method);
the public entry points are re-exported here::

    from stzoo.convert import from_openstl, convert_openstl

    p = from_openstl("mmnist_tau_one_ep200.pth", arch="tau")        # a Predictor, ready to predict
    convert_openstl("mmnist_tau_one_ep200.pth", "tau", "tau-openstl")  # a save_pretrained folder
    p = stzoo.load("tau-openstl")

See ``docs/openstl.md``.
"""

from stzoo.convert.openstl import (
    OPENSTL_LICENSE,
    OPENSTL_METHODS,
    OPENSTL_URL,
    ConversionReport,
    OpenSTLMethod,
    convert_openstl,
    from_openstl,
    load_openstl_checkpoint,
    map_openstl_state_dict,
    register_openstl,
)

__all__ = [
    "from_openstl",
    "convert_openstl",
    "load_openstl_checkpoint",
    "map_openstl_state_dict",
    "ConversionReport",
    "OpenSTLMethod",
    "OPENSTL_METHODS",
    "register_openstl",
    "OPENSTL_LICENSE",
    "OPENSTL_URL",
]
