"""The dataset registry: one :class:`DatasetSpec` per dataset, declared in the dataset's own file.

A dataset's facts live in one place, its :class:`DatasetSpec`, which its file (``moving_mnist.py``,
``grayscott.py``, ``kolmogorov.py``) registers with :func:`register_dataset` when it is imported, the
way an architecture registers its :class:`stzoo.models.Architecture`. Generic code (training,
evaluation, release, the zoo table, model cards, the CLI) reads the spec and never branches on a
dataset's name::

    list_datasets()                                    # ['moving_mnist', 'grayscott', 'kolmogorov']
    spec = get_dataset("grayscott")                    # its DatasetSpec: channels, test set, baseline, ...
    train = make_dataset("grayscott", "train", num_sequences=10000, seed=0)
    test = make_dataset("kolmogorov", "test")          # the fixed test set (its own seed)
    mm = make_dataset("moving_mnist", "test", mnist_dir="~/data/mnist")

Importing this module imports the package ``stzoo.data`` first, whose ``__init__`` imports every dataset
file, so the registry is always complete. Adding a dataset: one file that registers its spec, and one import
line in ``stzoo/data/__init__.py`` (docs/adding-a-dataset.md).

Options: a dataset may take settings of its own (Moving MNIST: ``mnist_dir``, the folder of the MNIST
files). It declares them as :class:`DatasetOption` s; generic code passes one ``dataset_options`` dict
along (``{"mnist_dir": "..."}``) and each dataset picks its own (:meth:`DatasetSpec.own_options`). The
CLI adds every declared option's flag (``--mnist-dir``) with :func:`add_option_arguments` and collects
them with :func:`options_from_namespace`.

Every dataset has the same interface: ``len``, ``sequence(i)`` (T×C×H×W numpy), ``ds[i]`` (tensor),
``batch(start, stop)`` (B×T×C×H×W tensor: uint8 or float32 in [0, 1], see :attr:`DatasetSpec.dtype`),
``set_epoch(e)``, and sequence ``i`` of epoch ``e`` is a pure function of ``(seed, e, i)``.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from stzoo.errors import ConfigError

__all__ = [
    "DatasetOption",
    "DatasetSpec",
    "DATASETS",
    "register_dataset",
    "get_dataset",
    "list_datasets",
    "make_dataset",
    "dataset_channels",
    "test_set_size",
    "dataset_for_baseline",
    "check_options",
    "add_option_arguments",
    "options_from_namespace",
    "DATA_DIR_OPTION",
]

_SPLITS = ("train", "test")


@dataclass(frozen=True)
class DatasetOption:
    """A setting only one dataset takes (e.g. Moving MNIST's ``mnist_dir``).

    ``name`` is the keyword its builders take and the key in a ``dataset_options`` dict; ``flag`` its
    spelling on the command line; ``env`` the environment variable read when it is not given (the
    dataset's builder reads it; it is named here for help texts and docs). ``shared``: several datasets may
    declare this very option (:data:`DATA_DIR_OPTION`); any other clash of name or flag is refused.
    """

    name: str
    flag: str
    help: str
    env: str | None = None
    metavar: str = "DIR"
    shared: bool = False


@dataclass(frozen=True)
class DatasetSpec:
    """Everything generic code needs to know about one dataset.

    Shape and values:
        ``frames_in`` / ``frames_out``: the split of a sequence the zoo trains and measures on;
        ``channels``, ``height``, ``width``: one frame; ``dtype``: what ``batch()`` returns (``"uint8"``,
        divided by 255 before a model sees it, or ``"float32"``, already in ``value_range``);
        ``normalisation``: how the physical quantity maps to the values a model sees.
    Test set:
        ``test_seed`` and ``test_size`` (the published ones); ``make_test(num_sequences=, seed=, **kw)``
        generates or reads it; ``cached_test(num_sequences, cache=, progress=, **own_options)`` serves a
        prefix of it from a file (a generated dataset can use :func:`stzoo.data.fields.field_test_cache`);
        ``cache_naming`` says where the file goes and how it is named; ``test_description`` is how a
        manifest names it (a format string with ``name``, ``seed``, ``frames_in``, ``frames_out``).
    Training data:
        ``make_train(num_sequences=, seq_len=, seed=, **kw)`` builds fresh sequences per epoch;
        ``suggested_pool`` (or None) is the ``stzoo train --data-pool`` size worth using on a CPU where
        generating fresh sequences costs more than the model's step.
    Baseline:
        ``baseline_key``: the manifest key of its copy-last-frame baseline (default
        ``"copy-last-frame (<name>)"``); ``baseline_with_release``: whether ``stzoo release`` measures
        it beside each model (else it is measured once, with ``stzoo evaluate copy-last-frame``);
        ``mean_frame``: the constant frame (in the model's value range) of the mean-frame baseline, or
        ``None`` for the per-pixel mean of the observed frames of the test set being measured. The release
        gate (``stzoo-maint release``) requires a model to beat both baselines on MSE and copy-last on SSIM.
    Files and OpenSTL's protocol:
        ``test_size`` 0 means "as many sequences as the user's files hold" (a dataset read from files);
        ``openstl_metrics``: a :class:`stzoo.metrics.OpenSTLConvention` when OpenSTL publishes numbers on this
        dataset (``stzoo evaluate`` then reports its metrics the way OpenSTL computes them, too).
    Citing and cards:
        ``label`` (the zoo table's name for it), ``citation``, ``hub_datasets`` (Hub dataset ids for
        model cards), ``tag`` (a model-card tag), ``options`` (its own :class:`DatasetOption` s).
    """

    name: str
    label: str
    description: str
    channels: int
    height: int
    width: int
    dtype: str
    value_range: tuple[float, float]
    normalisation: str
    test_seed: int
    test_size: int
    make_train: Callable[..., Any]
    make_test: Callable[..., Any]
    cached_test: Callable[..., Any]
    citation: str
    frames_in: int = 10
    frames_out: int = 10
    cache_naming: str = (
        "CACHE/fields/<name>-test-<digest of every generator setting>-<sequences>.npy, "
        "CACHE = $STZOO_CACHE, else $XDG_CACHE_HOME/stzoo, else ~/.cache/stzoo"
    )
    test_description: str = "stzoo {name} test (seed {seed}, {frames_in}→{frames_out})"
    suggested_pool: int | None = None
    baseline_key: str = ""
    baseline_with_release: bool = True
    mean_frame: float | None = None
    openstl_metrics: Any = None
    hub_datasets: tuple[str, ...] = ()
    tag: str = ""
    options: tuple[DatasetOption, ...] = field(default=())

    def __post_init__(self) -> None:
        if not self.baseline_key:
            object.__setattr__(self, "baseline_key", f"copy-last-frame ({self.name})")

    @property
    def option_names(self) -> tuple[str, ...]:
        """The keywords of this dataset's own options."""
        return tuple(o.name for o in self.options)

    def own_options(self, options: Mapping[str, Any] | None) -> dict[str, Any]:
        """The entries of a ``dataset_options`` dict that are this dataset's (others' are left out; a
        key no registered dataset declares is refused, so a misspelt option is not silently dropped)."""
        check_options(options)
        return {k: v for k, v in (options or {}).items() if k in self.option_names}

    def build(self, split: str = "train", **kwargs: Any) -> Any:
        """The training dataset (``split="train"``) or the fixed test set (``split="test"``), generated
        on the fly; ``kwargs`` go to the builder (``num_sequences``, ``seq_len``, ``seed``, own options,
        generator settings). For the test set ``num_sequences`` and ``seed`` default to the published ones."""
        if split not in _SPLITS:
            raise ConfigError(f"split must be one of {', '.join(_SPLITS)}, got {split!r}")
        return self.make_train(**kwargs) if split == "train" else self.make_test(**kwargs)

    def training_data(
        self, num_sequences: int, seq_len: int, seed: int, options: Mapping[str, Any] | None = None
    ) -> Any:
        """Fresh training sequences (``num_sequences`` per epoch of ``seq_len`` frames, seed ``seed``)."""
        return self.make_train(num_sequences=num_sequences, seq_len=seq_len, seed=seed, **self.own_options(options))

    def test_data(
        self,
        sequences: int | None = None,
        options: Mapping[str, Any] | None = None,
        *,
        cache: bool | str | os.PathLike = True,
        progress: bool = False,
    ) -> Any:
        """The first ``sequences`` sequences of the fixed test set (default: all), memory-mapped from
        stzoo's cache unless ``cache`` is False (the same sequences either way)."""
        return self.cached_test(
            self.test_size if sequences is None else sequences,
            cache=cache,
            progress=progress,
            **self.own_options(options),
        )

    def describe_test(self, test: Any, frames_in: int, frames_out: int) -> str:
        """How a manifest names the test set ``test`` (with its seed) split ``frames_in``→``frames_out``."""
        return self.test_description.format(
            name=self.name, seed=getattr(test, "seed", "?"), frames_in=frames_in, frames_out=frames_out
        )


#: dataset name → its declaration (filled by the dataset files as they are imported)
DATASETS: dict[str, DatasetSpec] = {}


def register_dataset(spec: DatasetSpec, *, replace: bool = False) -> DatasetSpec:
    """Add ``spec`` to the registry (``replace=True`` to overwrite an existing name). Returns it."""
    if not isinstance(spec, DatasetSpec):
        raise ConfigError(f"register_dataset() takes a DatasetSpec, got {type(spec).__name__}")
    if spec.name in DATASETS and not replace and DATASETS[spec.name] is not spec:
        raise ConfigError(f"dataset {spec.name!r} is already registered; pass replace=True to overwrite it")
    if spec.dtype not in ("uint8", "float32"):
        raise ConfigError(f"dataset {spec.name!r}: dtype must be 'uint8' or 'float32', got {spec.dtype!r}")
    taken = {o: s.name for s in DATASETS.values() if s.name != spec.name for o in s.options}
    for o in spec.options:  # one option may be shared (the very same declaration: e.g. --data-dir)
        clash = [
            n
            for other, n in taken.items()
            if (other != o or not o.shared) and (other.name == o.name or other.flag == o.flag)
        ]
        if clash:
            raise ConfigError(
                f"dataset {spec.name!r}: option {o.name!r} ({o.flag}) is already declared by "
                f"{clash[0]!r}; give it a name of its own"
            )
    DATASETS[spec.name] = spec
    return spec


def list_datasets() -> list[str]:
    """The registered dataset names, in registration order."""
    return list(DATASETS)


def get_dataset(name: Any) -> DatasetSpec:
    """The registered :class:`DatasetSpec` called ``name``."""
    if not isinstance(name, str) or name not in DATASETS:
        raise ConfigError(f"unknown dataset {name!r}; known: {', '.join(DATASETS)} (stzoo data list)")
    return DATASETS[name]


def make_dataset(name: str, split: str = "train", **kwargs: Any) -> Any:
    """The training dataset or the fixed test set of dataset ``name`` (:meth:`DatasetSpec.build`)."""
    return get_dataset(name).build(split, **kwargs)


def dataset_channels(name: str) -> int:
    """Channels per frame of dataset ``name`` (the ``channels`` a model for it needs)."""
    return get_dataset(name).channels


def test_set_size(name: str) -> int:
    """Sequences in the fixed test set of dataset ``name``."""
    return get_dataset(name).test_size


def dataset_for_baseline(key: str) -> DatasetSpec | None:
    """The dataset whose copy-last-frame baseline the manifest keeps under ``key``, if any."""
    return next((s for s in DATASETS.values() if s.baseline_key == key), None)


def check_options(options: Mapping[str, Any] | None) -> None:
    """Refuse a ``dataset_options`` key that no registered dataset declares."""
    known = {o.name for s in DATASETS.values() for o in s.options}
    unknown = sorted(set(options or {}) - known)
    if unknown:
        raise ConfigError(f"unknown dataset option(s) {unknown}; the datasets take: {sorted(known) or 'none'}")


def add_option_arguments(parser: Any) -> None:
    """Add every registered dataset's own options to an ``argparse`` parser (e.g. ``--mnist-dir``)."""
    users: dict[DatasetOption, list[str]] = {}
    for spec in DATASETS.values():
        for o in spec.options:
            users.setdefault(o, []).append(spec.name)
    for o, names in users.items():
        env = f" (default: ${o.env})" if o.env else ""
        parser.add_argument(
            o.flag, dest=o.name, default=None, metavar=o.metavar, help=f"{o.help}, for {', '.join(names)}{env}"
        )


def options_from_namespace(args: Any) -> dict[str, Any]:
    """The dataset options given on a command line (those :func:`add_option_arguments` added and set)."""
    return {
        o.name: getattr(args, o.name)
        for s in DATASETS.values()
        for o in s.options
        if getattr(args, o.name, None) is not None
    }


#: the folder option every dataset read from the user's files shares (``--data-dir``); each such dataset
#: documents which files (in OpenSTL's layout) it expects there
DATA_DIR_OPTION = DatasetOption(
    "data_dir",
    "--data-dir",
    "folder of the dataset's files (OpenSTL's layout; docs/datasets/openstl.md)",
    env="STZOO_DATA_DIR",
    shared=True,
)
