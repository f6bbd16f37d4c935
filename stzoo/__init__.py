"""stzoo: a model zoo for spatiotemporal predictive learning (video / field forecasting).

import stzoo
p = stzoo.load("tau-mmnist")
future = p.predict(frames)
"""

from stzoo.api import create, info, list_models, load
from stzoo.errors import (
    ConfigError,
    InputError,
    InputTypeError,
    StzooError,
    UnknownModelError,
    WeightsNotAvailableError,
)
from stzoo.zoo.entry import ZooEntry
from stzoo.zoo.hub import ChecksumError, HubError, InvalidHubIdError
from stzoo.frames import FramesWarning
from stzoo.runtime import PerformanceWarning
from stzoo.models import Architecture, ModelConfig, Recipe, build_model, cfg_field
from stzoo.models import register as register_architecture
from stzoo.inference.predictor import Predictor
from stzoo.inference.forecaster import Forecaster
from stzoo.zoo import resolve as _resolve
from stzoo.frames import viz  # noqa: F401  (stzoo.viz.save_strip / save_gif without a separate import)

from stzoo.version import __version__


def _openstl_zoo(attr: str):  # noqa: ANN202 - the openstl: names, imported on first use (convert/ is the top layer)
    def call(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        from stzoo.convert.openstl import zoo

        return getattr(zoo, attr)(*args, **kwargs)

    return call


_resolve.register_prefix(
    "openstl:", _openstl_zoo("resolve_openstl"), names=_openstl_zoo("zoo_names"), describe=_openstl_zoo("describe")
)
_resolve.register_weights_source(_openstl_zoo("paper_source"))

__all__ = [
    "load",
    "create",
    "list_models",
    "info",
    "build_model",
    "register_architecture",
    "Architecture",
    "ModelConfig",
    "Recipe",
    "cfg_field",
    "Predictor",
    "Forecaster",
    "ZooEntry",
    "StzooError",
    "InputError",
    "InputTypeError",
    "UnknownModelError",
    "ConfigError",
    "WeightsNotAvailableError",
    "ChecksumError",
    "HubError",
    "InvalidHubIdError",
    "FramesWarning",
    "PerformanceWarning",
    "__version__",
]
