"""WeatherBench 5.625° (Rasp et al., 2020) as OpenSTL uses it: one variable, hourly, 12 → 12 on a 32×64 grid.

Four datasets, one per variable OpenSTL publishes numbers for: ``weather_t2m_5_625`` (2 m temperature, K),
``weather_r_5_625`` (relative humidity, %, the last pressure level of the file), ``weather_uv10_5_625``
(10 m wind u and v, m/s, 2 channels) and ``weather_tcc_5_625`` (total cloud cover, 0..1).

Files: WeatherBench's NetCDF files, one folder per variable, as OpenSTL's ``download_weatherbench.sh``
leaves them: ``data/weather_5_625deg/2m_temperature/2m_temperature_2017_5.625deg.nc`` and so on
(``weather/`` instead of ``weather_5_625deg/`` also works; ``--data-dir`` may be the data root or that
folder). Reading them needs the ``weather`` extra (``xarray``, ``netCDF4``).

OpenSTL's protocol, kept here: training years 2010–2015, test years 2017–2018; within the years the last
hourly step is dropped (``isel(time=slice(None, -1))``) and a sequence is 24 consecutive hours; the test
set has one sequence per hour except the last ``seq_len`` hours. Values are z-scored per channel over
time, latitude and longitude. OpenSTL normalises **each split with its own statistics** but maps
predictions back with the *training* statistics before scoring (its ``test_mean`` is the training set's
mean); we do the same so that numbers compare, and say so in docs/datasets/openstl.md. OpenSTL scores
MSE / RMSE / MAE per value (``spatial_norm``); stzoo adds WeatherBench's own latitude-weighted RMSE in
physical units, which OpenSTL does not report.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import numpy as np

from stzoo.data.openstl_files import DATA_DIR_OPTION, ClipSet, data_root, require, split_readers
from stzoo.data.registry import DatasetSpec, register_dataset
from stzoo.errors import InputError
from stzoo.metrics import OpenSTLConvention

__all__ = ["SPECS", "VARIABLES", "load_years", "TRAIN_YEARS", "TEST_YEARS"]

TRAIN_YEARS = ("2010", "2015")
TEST_YEARS = ("2017", "2018")
#: short name → (folder / file prefix, NetCDF variable, units, label)
VARIABLES: dict[str, tuple[tuple[str, str], ...]] = {
    "t2m": (("2m_temperature", "t2m"),),
    "r": (("relative_humidity", "r"),),
    "uv10": (("10m_u_component_of_wind", "u10"), ("10m_v_component_of_wind", "v10")),
    "tcc": (("total_cloud_cover", "tcc"),),
}
_UNITS = {"t2m": "K", "r": "%", "uv10": "m/s", "tcc": "fraction"}
_LABELS = {"t2m": "2 m temperature", "r": "relative humidity", "uv10": "10 m wind (u, v)", "tcc": "total cloud cover"}


def _folder(root: Path, long_name: str, dataset: str) -> Path:
    for base in (root / "weather_5_625deg", root / "weather", root):
        if (base / long_name).is_dir():
            return base / long_name
    raise InputError(
        f"{dataset}: no folder {long_name}/ under {root}, {root / 'weather_5_625deg'} or {root / 'weather'} "
        "(WeatherBench 5.625° in OpenSTL's layout)"
    )


def _read_variable(folder: Path, var: str, years: tuple[str, str], dataset: str) -> tuple[np.ndarray, np.ndarray]:
    """(T×C×32×64 float32 of the years, latitudes) of one NetCDF variable, the last step dropped."""
    xr = require("xarray", "weather", dataset)
    require("netCDF4", "weather", dataset)
    files = sorted(folder.glob(f"{folder.name}*.nc"))
    if not files:
        raise InputError(f"{dataset}: no {folder.name}*.nc files in {folder}")
    parts, lats = [], None
    for f in files:
        with xr.open_dataset(f) as ds:
            if var not in ds:
                raise InputError(f"{dataset}: {f} has no variable {var!r} (has {', '.join(map(str, ds.data_vars))})")
            sel = ds[var].sel(time=slice(*years))
            if sel.sizes.get("time", 0) == 0:
                continue
            values = np.asarray(sel.values, dtype=np.float32)
            lats = np.array(ds["lat"].values, dtype=np.float64)  # a writable copy
        if values.ndim == 4:  # T×level×lat×lon: OpenSTL keeps the last level
            values = values[:, -1]
        parts.append(values)
    if not parts:
        raise InputError(f"{dataset}: {folder} holds no data for the years {years[0]}–{years[1]}")
    data = np.concatenate(parts)[:-1]  # OpenSTL: isel(time=slice(None, -1, step))
    return data[:, None], lats


def load_years(short: str, data_dir: Any, years: tuple[str, str], dataset: str) -> tuple[np.ndarray, np.ndarray]:
    """The raw (physical-unit) T×C×32×64 float32 data of ``years`` and the latitudes (degrees)."""
    root = data_root(data_dir, dataset)
    chans, lats = [], None
    for long_name, var in VARIABLES[short]:
        values, lats = _read_variable(_folder(root, long_name, dataset), var, years, dataset)
        chans.append(values)
    if len({c.shape[0] for c in chans}) != 1:
        raise InputError(f"{dataset}: the variables cover different hours: {[c.shape[0] for c in chans]}")
    data = np.concatenate(chans, axis=1)
    if data.shape[-2:] != (32, 64):
        raise InputError(f"{dataset}: grid {data.shape[-2:]}; the 5.625° files are 32×64")
    return data, lats


def _stats(data: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    x = data.astype(np.float64)
    return x.mean(axis=(0, 2, 3)), x.std(axis=(0, 2, 3))


def _make(
    short: str,
    dataset: str,
    split: str,
    data_dir: Any = None,
    num_sequences: int | None = None,
    seq_len: int = 24,
    seed: int = 0,
    **kw: Any,
) -> ClipSet:
    train_raw, lats = load_years(short, data_dir, TRAIN_YEARS, dataset)
    train_mean, train_std = _stats(train_raw)
    if split == "train":
        raw, mean, std = train_raw, train_mean, train_std
    else:
        del train_raw
        raw, lats = load_years(short, data_dir, TEST_YEARS, dataset)
        mean, std = _stats(raw)  # OpenSTL: each split is normalised with its own statistics
    data = ((raw - mean[None, :, None, None]) / std[None, :, None, None]).astype(np.float32)
    starts = range(max(0, len(data) - seq_len))  # OpenSTL's valid_idx stops one hour early
    return ClipSet(
        data,
        starts,
        seq_len,
        "float32",
        num_sequences=num_sequences,
        shuffle=split == "train",
        seed=seed,
        mean=train_mean,
        std=train_std,
        latitudes=lats,
        **kw,
    )


def _spec(short: str) -> DatasetSpec:
    name = f"weather_{short}_5_625"
    channels = len(VARIABLES[short])

    return register_dataset(
        DatasetSpec(
            name=name,
            label=f"WeatherBench 5.625° {_LABELS[short]}",
            description=f"WeatherBench 5.625° {_LABELS[short]} ({_UNITS[short]}), hourly, 12→12 on 32×64, "
            "OpenSTL's years (--data-dir; the weather extra)",
            channels=channels,
            height=32,
            width=64,
            dtype="float32",
            value_range=(-10.0, 10.0),
            normalisation=f"z-scored per channel ({_UNITS[short]}); train: 2010–2015 statistics; test: 2017–2018 "
            "statistics (OpenSTL's choice), scored after mapping back with the training statistics",
            test_seed=0,
            test_size=0,
            frames_in=12,
            frames_out=12,
            **split_readers(functools.partial(_make, short, name)),
            cache_naming="none: the NetCDF files are read into memory",
            test_description=f"WeatherBench 5.625° {short} 2017–2018 (OpenSTL protocol) {{frames_in}}→{{frames_out}}",
            openstl_metrics=OpenSTLConvention(metrics=("mse", "rmse", "mae"), spatial_norm=True),
            baseline_with_release=False,
            citation='S. Rasp et al., "WeatherBench: A benchmark data set for data-driven weather forecasting", '
            "JAMES 2020; ERA5: H. Hersbach et al., QJRMS 2020",
            tag="weatherbench",
            options=(DATA_DIR_OPTION,),
        )
    )


SPECS = {short: _spec(short) for short in VARIABLES}
