"""Import checkpoints trained with other libraries into stzoo.

Each source library has its own module; the public entry points are re-exported here::

    from stzoo.convert import from_openstl, convert_openstl

    p = from_openstl("mmnist_tau_one_ep200.pth", arch="tau")        # a Predictor, ready to predict
    convert_openstl("mmnist_tau_one_ep200.pth", "tau", "tau-openstl")  # a save_pretrained folder
    p = stzoo.load("tau-openstl")

See ``docs/openstl.md``.
"""

from stzoo.convert.openstl import (OPENSTL_LICENSE, OPENSTL_METHODS, OPENSTL_URL, ConversionReport, OpenSTLMethod,
                                   convert_openstl, from_openstl, load_openstl_checkpoint, map_openstl_state_dict,
                                   register_openstl)
# one importer per further OpenSTL method; importing it registers it
from stzoo.convert import openstl_mim as _openstl_mim, openstl_predrnn as _openstl_predrnn  # noqa: F401
from stzoo.convert import openstl_predrnnpp as _openstl_predrnnpp, openstl_simvp as _openstl_simvp  # noqa: F401
from stzoo.convert import openstl_mau as _openstl_mau, openstl_phydnet as _openstl_phydnet  # noqa: F401
from stzoo.convert import openstl_predformer as _openstl_predformer, openstl_swinlstm as _openstl_swinlstm  # noqa: F401
from stzoo.convert import openstl_e3dlstm as _openstl_e3dlstm, openstl_mmvp as _openstl_mmvp  # noqa: F401

__all__ = ["from_openstl", "convert_openstl", "load_openstl_checkpoint", "map_openstl_state_dict",
           "ConversionReport", "OpenSTLMethod", "OPENSTL_METHODS", "register_openstl", "OPENSTL_LICENSE",
           "OPENSTL_URL"]
