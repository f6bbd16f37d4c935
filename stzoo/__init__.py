"""stzoo: a model zoo for spatiotemporal predictive learning (video / field forecasting).

    import stzoo
    p = stzoo.load("tau-mmnist")
    future = p.predict(frames)
"""

from stzoo.api import info, list_models, load
from stzoo.errors import (
    ConfigError,
    InputError,
    InputTypeError,
    StzooError,
    UnknownModelError,
    WeightsNotAvailableError,
)
from stzoo.hub import ChecksumError, HubError, InvalidHubIdError
from stzoo.models import build_model
from stzoo.predictor import Predictor
from stzoo.forecaster import Forecaster
from stzoo import viz  # noqa: E402  (stzoo.viz.save_strip / save_gif without a separate import)

__version__ = "0.1.0"

__all__ = ["load", "list_models", "info", "build_model", "Predictor", "Forecaster", "StzooError", "InputError",
           "InputTypeError", "UnknownModelError", "ConfigError", "WeightsNotAvailableError",
           "ChecksumError", "HubError", "InvalidHubIdError", "__version__"]
