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
from stzoo.frames import viz  # noqa: F401  (stzoo.viz.save_strip / save_gif without a separate import)

from stzoo.version import __version__

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
