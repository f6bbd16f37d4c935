"""Import OpenSTL checkpoints into stzoo: the framework (:mod:`.core`, :mod:`.reading`) and one module per method.

`OpenSTL <https://github.com/chengtan9907/OpenSTL>`_ (Apache-2.0), maintained by the TAU authors,
publishes trained weights as PyTorch files::

    from stzoo.convert.openstl import convert_openstl, from_openstl

    p = from_openstl("mmnist_tau_one_ep200.pth", arch="tau")          # a Predictor, ready to predict
    convert_openstl("mmnist_tau_one_ep200.pth", "tau", "tau-openstl")  # a save_pretrained folder

Every module of this package other than the framework (``tau.py``, ``convlstm.py``, ``predrnn.py``, ...)
is one OpenSTL method's importer and registers itself with :func:`register_openstl` when imported.
Importing this package imports each of them (:func:`discover`, in name order), so
:data:`OPENSTL_METHODS` always holds every importer and adding a method means adding its file, nothing
else. See ``docs/openstl.md`` and ``docs/adding-an-architecture.md``.
"""

from __future__ import annotations

import importlib
import pkgutil

from stzoo.convert.openstl.core import (
    OPENSTL_LICENSE,
    OPENSTL_METHODS,
    OPENSTL_URL,
    ConversionReport,
    OpenSTLMethod,
    convert_openstl,
    from_openstl,
    map_openstl_state_dict,
    openstl_method,
    register_openstl,
)
from stzoo.convert.openstl.reading import load_openstl_checkpoint, read_openstl_config

__all__ = [
    "from_openstl",
    "convert_openstl",
    "load_openstl_checkpoint",
    "map_openstl_state_dict",
    "read_openstl_config",
    "ConversionReport",
    "OpenSTLMethod",
    "OPENSTL_METHODS",
    "register_openstl",
    "openstl_method",
    "method_modules",
    "discover",
    "OPENSTL_URL",
    "OPENSTL_LICENSE",
]

#: the framework's modules (+ the catalogue and the openstl: zoo); every other module is one importer
FRAMEWORK_MODULES = frozenset({"core", "reading", "catalog", "zoo"})


def method_modules() -> list[str]:
    """The full names of this package's importer modules, sorted (the order :func:`discover` imports them)."""
    names = (m.name for m in pkgutil.iter_modules(__path__) if not m.ispkg)
    return [f"{__name__}.{n}" for n in sorted(names) if n not in FRAMEWORK_MODULES and not n.startswith("_")]


def discover() -> list[str]:
    """Import every importer module (each registers its :class:`OpenSTLMethod`); returns their names."""
    modules = method_modules()
    for name in modules:
        importlib.import_module(name)
    return modules


discover()
