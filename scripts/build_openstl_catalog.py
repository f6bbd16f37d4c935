"""Build ``stzoo/convert/openstl/catalog.json``: every checkpoint of OpenSTL's published model zoo, as facts.

Reads a git mirror of OpenSTL (github chengtan9907/OpenSTL, Apache-2.0) at one ref and writes the catalogue
that ``stzoo.convert.openstl.catalog`` loads. Nothing is downloaded; only ``git show`` / ``git ls-tree`` run.

Sources, all at the ref read (the commit is recorded in the output):

* the model-zoo tables ``docs/en/model_zoos/{video,traffic,weather}_benchmarks.md``: every release-download
  link to a ``.pth`` file gives one checkpoint (tag, file), the row's method label and setting, and the row's
  reported numbers with the table's own column names;
* the config file of that dataset and method (``configs/<dataset>/<Method>.py``,
  ``configs/<dataset>/simvp/SimVP_<type>.py``, ``configs/weather/<var>_5_625/...``): its plain assignments,
  parsed with :mod:`ast` (never executed). Methods OpenSTL removed from its current branch (PredNet, DMVFN,
  CrevNet) have their configs looked up at ``--fallback-ref`` (``OpenSTLv0.3.0``);
* ``openstl/datasets/dataset_constant.py`` (``in_shape``, ``pre_seq_length``, ``aft_seq_length``,
  ``total_length``, ``data_name``, weather years), which OpenSTL's ``get_dataset`` applies over the config;
* the data loaders ``openstl/datasets/dataloader_*.py`` for each dataset's scaling: the facts are written out
  below (:data:`DATASETS`) and each carries ``evidence`` strings the builder requires to be present in that
  loader's source, so a changed loader fails the build instead of silently giving a stale fact.

Usage::

    python scripts/build_openstl_catalog.py [--mirror PATH] [--ref REF] [--fallback-ref REF] [--out FILE]
    python scripts/build_openstl_catalog.py --check   # exit 1 if the committed catalogue differs

The output is deterministic (sorted keys, indent 1, one trailing newline).
"""

from __future__ import annotations

import argparse
import ast
import json
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_MIRROR = Path("/work/.mirror/chengtan9907+OpenSTL/repo")
DEFAULT_OUT = ROOT / "stzoo" / "convert" / "openstl" / "catalog.json"
URL_BASE = "https://github.com/chengtan9907/OpenSTL/releases/download"
TABLES = (
    "docs/en/model_zoos/video_benchmarks.md",
    "docs/en/model_zoos/traffic_benchmarks.md",
    "docs/en/model_zoos/weather_benchmarks.md",
)

# ---- per-dataset facts, read by hand from OpenSTL's data loaders -----------------------------------------------
# Each entry's `evidence` strings must occur in its loader's source at the ref read (checked by the build).
_WEATHER_HOW = (
    "OpenSTL computes the statistics at run time (openstl/datasets/dataloader_weather.py, "
    "WeatherBenchDataset._load_data_xarray): open <data_root>/weather_5_625deg/{dir}/{dir}*.nc (fallback "
    "<data_root>/weather/...) with xarray.open_mfdataset(combine='by_coords'); keep the split's years with "
    ".sel(time=slice(first, last)) (inclusive: train 2010-2015, validation 2016, test 2017-2018, from "
    "dataset_constant.py); then .isel(time=slice(None, -1, 1)) (hourly, the split's last time step dropped); "
    "{select}mean and std (numpy, ddof=0) over (time, lat, lon) per channel, shape (1, C, 1, 1), OF THAT SPLIT; "
    "x' = (x - mean) / std. Every split is standardised with its OWN statistics (the mean=/std= arguments the "
    "loader passes for validation and test only set the dataset's .mean/.std attributes), so the published "
    "weights were trained on inputs standardised with 2010-2015 statistics and tested on inputs standardised "
    "with 2017-2018 statistics; OpenSTL's reported metrics de-normalise predictions and targets with the "
    "TRAINING statistics (test_mean/test_std are the training split's). No latitude weighting. The statistics "
    "are not in OpenSTL's code: compute them from the same files and years."
)
_WEATHER_EVIDENCE = [
    "if self.mean is None:",
    "mean=train_set.mean,",
    "mean = data.mean(axis=(0, 2, 3))",
    "std = data.std(axis=(0, 2, 3))",
    "data = (data - mean) / std",
    "dataset.isel(time=slice(None, -1, self.step))",
]


def _weather(var: str, dirs: str, units: str, channels: list[str], select: str, note: str) -> dict[str, Any]:
    return {
        "openstl_dataname": f"weather_{var}_5_625",
        "registry_key": f"weather_{var}_5_625",
        "title": f"WeatherBench 5.625° {var}",
        "value_range": None,
        "natural_units": units,
        "channel_names": channels,
        "normalisation": {
            "kind": "runtime",
            "statistic": "per-channel mean and std (ddof=0) over time, lat, lon of the split being read",
            "years": ["2010", "2015"],
            "split_years": {"train": ["2010", "2015"], "val": ["2016", "2016"], "test": ["2017", "2018"]},
            "statistics_from": "each split's own data (inputs); the training split's (de-normalising metrics)",
            "how": _WEATHER_HOW.format(dir=dirs, select=select),
        },
        "loader": "openstl/datasets/dataloader_weather.py",
        "evidence": _WEATHER_EVIDENCE,
        "notes": note,
    }


DATASETS: dict[str, dict[str, Any]] = {
    "mmnist": {
        "openstl_dataname": "mmnist",
        "registry_key": "mmnist_canonical",
        "title": "Moving MNIST",
        "value_range": [0.0, 1.0],
        "natural_units": "pixel intensity 0-255",
        "channel_names": ["intensity"],
        "normalisation": {"kind": "scale", "scale": 255.0},
        "loader": "openstl/datasets/dataloader_moving_mnist.py",
        "evidence": ["input = torch.from_numpy(input / 255.0)", "'mnist': 'moving_mnist/mnist_test_seq.npy'"],
        "notes": (
            "Test set: the canonical file moving_mnist/mnist_test_seq.npy (20 x 10000 x 64 x 64 uint8; frames "
            "0-9 in, 10-19 out). Training sequences are generated on the fly from MNIST's "
            "train-images-idx3-ubyte.gz (two digits, 64 x 64, step 0.1)."
        ),
    },
    "mfmnist": {
        "openstl_dataname": "mfmnist",
        "registry_key": "mfmnist",
        "title": "Moving FashionMNIST",
        "value_range": [0.0, 1.0],
        "natural_units": "pixel intensity 0-255",
        "channel_names": ["intensity"],
        "normalisation": {"kind": "scale", "scale": 255.0},
        "loader": "openstl/datasets/dataloader_moving_mnist.py",
        "evidence": ["input = torch.from_numpy(input / 255.0)", "'fmnist': 'moving_fmnist/fmnist_test_seq.npy'"],
        "notes": (
            "Test set: moving_fmnist/fmnist_test_seq.npy (OpenSTL's fixed file, layout as Moving MNIST's). "
            "Training sequences are generated on the fly from FashionMNIST's train-images-idx3-ubyte.gz. "
            "OpenSTL's file names start with 'fmnist_'."
        ),
    },
    "mmnist_cifar": {
        "openstl_dataname": "mmnist_cifar",
        "registry_key": "mmnist_cifar",
        "title": "Moving MNIST-CIFAR",
        "value_range": [0.0, 1.0],
        "natural_units": "pixel intensity 0-255, RGB",
        "channel_names": ["red", "green", "blue"],
        "normalisation": {"kind": "scale", "scale": 255.0},
        "loader": "openstl/datasets/dataloader_moving_mnist.py",
        "evidence": [
            "input = torch.from_numpy(input / 255.0)",
            "'mnist_cifar': 'moving_mnist/mnist_cifar_test_seq.npy'",
            "torchvision.datasets.CIFAR10",
        ],
        "notes": (
            "Test set: moving_mnist/mnist_cifar_test_seq.npy (T x N x 64 x 64 x 3, channels last). MNIST digits "
            "(binarised to {0, 255}) over CIFAR-10 backgrounds (torchvision, RGB) resized to 64 x 64 with "
            "cv2.INTER_CUBIC; training sequences generated on the fly."
        ),
    },
    "kitticaltech": {
        "openstl_dataname": "kitticaltech",
        "registry_key": "kitticaltech",
        "title": "KittiCaltech",
        "value_range": [0.0, 1.0],
        "natural_units": "pixel intensity 0-255, 3 colour channels",
        "channel_names": ["c0", "c1", "c2"],
        "normalisation": {"kind": "scale", "scale": 255.0},
        "loader": "openstl/datasets/dataloader_kitticaltech.py",
        "evidence": ["data = data.astype('float') / 255.0", "frame = process_im(frame, self.input_shape) / 255.0"],
        "notes": (
            "Train: KITTI from PredNet's kitti_hkl/X_train.hkl (RGB, 128 x 160). Test: Caltech Pedestrian "
            "videos caltech/set*/V*.seq read with cv2.VideoCapture (so BGR channel order), every 3rd frame, "
            "resized to height 128 keeping the aspect (skimage resize) and centre-cropped to width 160; or "
            "the cached caltech/data_cache.npy (uint8) + indices_cache.npy. OpenSTL thus trains on RGB and "
            "tests on BGR frames; the channel order the published weights expect at test time is BGR."
        ),
    },
    "kth20": {
        "openstl_dataname": "kth20",
        "registry_key": "kth20",
        "title": "KTH Action (10 -> 20)",
        "value_range": [0.0, 1.0],
        "natural_units": "pixel intensity 0-255, grey",
        "channel_names": ["intensity"],
        "normalisation": {"kind": "scale", "scale": 255.0},
        "loader": "openstl/datasets/dataloader_kth.py",
        "evidence": [
            "cv2.resize(temp, (self.image_width, self.image_width)) / 255",
            "self.test_person = ['17', '18', '19', '20', '21', '22', '23', '24', '25']",
        ],
        "notes": (
            "Frames kth/<action>/person??_<action>_d?_uncomp/image_XXXX.*: channel 0 of each image, "
            "cv2.resize to 128 x 128 (bilinear), / 255. Persons 01-16 train, 17-25 test; sequences of 30 "
            "consecutive frames (stride 10 for boxing/handclapping/handwaving/walking, 3 for jogging/running)."
        ),
    },
    "human": {
        "openstl_dataname": "human",
        "registry_key": "human",
        "title": "Human3.6M",
        "value_range": [0.0, 1.0],
        "natural_units": "pixel intensity 0-255, BGR",
        "channel_names": ["blue", "green", "red"],
        "normalisation": {"kind": "scale", "scale": 255.0},
        "loader": "openstl/datasets/dataloader_human.py",
        "evidence": ["image = cv2.imread(file_name)", "/ 255  # min-max to [0, 1]", "step=5"],
        "notes": (
            "Frames human/images/<subject>_<action>.<camera>_<NNNNNN>.jpg read with cv2.imread (BGR channel "
            "order), resized to 256 x 256 with cv2.INTER_CUBIC when needed, / 255; every 5th frame; the "
            "sequence lists are human/train.txt and human/test.txt (tools/prepare_data/meta/human)."
        ),
    },
    "taxibj": {
        "openstl_dataname": "taxibj",
        "registry_key": "taxibj",
        "title": "TaxiBJ",
        "value_range": [0.0, 1.0],
        "natural_units": (
            "taxi inflow/outflow as stored in OpenSTL's taxibj/dataset.npz, already min-max scaled to [-1, 1] "
            "by the data's provider"
        ),
        "channel_names": ["inflow", "outflow"],
        "normalisation": {"kind": "minmax", "min": -1.0, "max": 1.0},
        "loader": "openstl/datasets/dataloader_taxibj.py",
        "evidence": ["self.X = (X+1) / 2", "self.Y = (Y+1) / 2"],
        "notes": (
            "taxibj/dataset.npz (from OpenSTL's v0.1.0 release taxibj_dataset.zip) holds X_train, Y_train, "
            "X_test, Y_test of shape (N, 4, 2, 32, 32), values in [-1, 1]; the loader maps them to [0, 1] with "
            "(x + 1) / 2. The min and max of the raw flow counts used to make the [-1, 1] file are not in "
            "OpenSTL's repository, so stzoo's natural units here are the file's values, not raw counts. "
            "OpenSTL's reported metrics are on the [0, 1] scale."
        ),
    },
    "weather_t2m_5_625": _weather(
        "t2m",
        "2m_temperature",
        "kelvin (2m_temperature)",
        ["t2m"],
        "",
        "32 x 64 grid (5.625 degrees), hourly, 12 -> 12 hours; test years 2017-2018.",
    ),
    "weather_r_5_625": _weather(
        "r",
        "relative_humidity",
        "percent (relative_humidity)",
        ["r"],
        "keep only the LAST pressure level in the file (data[:, -1:]); ",
        "32 x 64 grid (5.625 degrees), hourly, 12 -> 12 hours; test years 2017-2018. relative_humidity has "
        "pressure levels; OpenSTL keeps the last one along the file's level axis (data[:, -1:]).",
    ),
    "weather_uv10_5_625": _weather(
        "uv10",
        "10m_u_component_of_wind and 10m_v_component_of_wind",
        "metres per second (10 m wind components)",
        ["u10", "v10"],
        "stack u10 and v10 as channels 0 and 1; ",
        "32 x 64 grid (5.625 degrees), hourly, 12 -> 12 hours; test years 2017-2018. Two channels, "
        "standardised separately.",
    ),
    "weather_tcc_5_625": _weather(
        "tcc",
        "total_cloud_cover",
        "total cloud cover fraction 0-1 (OpenSTL's table header says %)",
        ["tcc"],
        "",
        "32 x 64 grid (5.625 degrees), hourly, 12 -> 12 hours; test years 2017-2018.",
    ),
}
for _k in ("weather_r_5_625", "weather_uv10_5_625"):
    DATASETS[_k]["evidence"] = [*DATASETS[_k]["evidence"]]
DATASETS["weather_r_5_625"]["evidence"].append("data = data[:, -1:, ...]")
DATASETS["weather_uv10_5_625"]["evidence"].append("for key in ['u10', 'v10']:")

# file-name prefix -> (dataset key, config folder)
PREFIXES: dict[str, tuple[str, str]] = {
    "mmnist_cifar": ("mmnist_cifar", "configs/mmnist_cifar"),
    "mmnist": ("mmnist", "configs/mmnist"),
    "fmnist": ("mfmnist", "configs/mfmnist"),
    "kitticaltech": ("kitticaltech", "configs/kitticaltech"),
    "kth20": ("kth20", "configs/kth"),
    "human": ("human", "configs/human"),
    "taxibj": ("taxibj", "configs/taxibj"),
    "weather_t2m": ("weather_t2m_5_625", "configs/weather/t2m_5_625"),
    "weather_r": ("weather_r_5_625", "configs/weather/r_5_625"),
    "weather_uv10": ("weather_uv10_5_625", "configs/weather/uv10_5_625"),
    "weather_tcc": ("weather_tcc_5_625", "configs/weather/tcc_5_625"),
}
# file-name method token -> OpenSTL method (its `method` value) and config file stem
METHOD_TOKENS: dict[str, tuple[str, str]] = {
    "convlstm": ("ConvLSTM", "ConvLSTM"),
    "convlstm_l": ("ConvLSTM", "ConvLSTM-L"),
    "prednet": ("PredNet", "PredNet"),
    "phydnet": ("PhyDNet", "PhyDNet"),
    "predrnn": ("PredRNN", "PredRNN"),
    "predrnnpp": ("PredRNNpp", "PredRNNpp"),
    "predrnnv2": ("PredRNNv2", "PredRNNv2"),
    "mim": ("MIM", "MIM"),
    "mau": ("MAU", "MAU"),
    "e3dlstm": ("E3DLSTM", "E3DLSTM"),
    "s3dlstm": ("E3DLSTM", "E3DLSTM"),
    "crevnet": ("CrevNet", "CrevNet"),
    "dmvfn": ("DMVFN", "DMVFN"),
    "tau": ("TAU", "TAU"),
}
# SimVP translators: file token -> OpenSTL's model_type spelling (its config file name)
SIMVP_TYPES: dict[str, str] = {
    "incepu": "IncepU",
    "gsta": "gSTA",
    "vit": "ViT",
    "swin": "Swin",
    "uniformer": "Uniformer",
    "mlpmixer": "MLPMixer",
    "convmixer": "ConvMixer",
    "poolformer": "Poolformer",
    "convnext": "ConvNeXt",
    "van": "VAN",
    "hornet": "HorNet",
    "moganet": "MogaNet",
}
# model_type spellings OpenSTL's SimVP_Model accepts for a translator (openstl/models/simvp_model.py)
SIMVP_ALIASES: dict[str, set[str]] = {"MLPMixer": {"mlp", "mlpmixer"}, "MogaNet": {"moga", "moganet"}}
SCHEDULERS = {"one": "onecycle", "cos": "cosine"}
STEM_RE = re.compile(r"^(?P<body>.+)_(?P<sched>one|cos)_ep(?P<epoch>\d+)$")
LINK_RE = re.compile(re.escape(URL_BASE) + r"/(?P<tag>[A-Za-z0-9._-]+)/(?P<file>[A-Za-z0-9._-]+\.pth)\)")
# keys of a config that describe training only (a difference in them does not change the architecture)
TRAINING_KEYS = {
    "lr", "batch_size", "val_batch_size", "sched", "epoch", "warmup_epoch", "opt", "weight_decay", "min_lr",
    "final_div_factor", "decay_epoch", "decay_rate", "clip_grad", "momentum", "warmup_lr", "drop_path", "drop",
    "reverse_scheduled_sampling", "r_sampling_step_1", "r_sampling_step_2", "r_exp_alpha", "scheduled_sampling",
    "sampling_stop_iter", "sampling_start_value", "sampling_changing_rate", "EMAHook", "alpha",
}  # fmt: skip


# Configs OpenSTL does not publish, inferred from its reported parameter counts: (method, dataset family) ->
# (values, note). Counted with E3D-LSTM's tensor shapes (tests/helpers/openstl_reference_e3dlstm.py).
INFERRED_CONFIGS: dict[tuple[str, str], tuple[dict[str, Any], str]] = {
    ("E3DLSTM", "weather"): (
        {"num_hidden": "128,128,128,128", "filter_size": 5, "stride": 1, "patch_size": 4, "layer_norm": 0},
        "The model values in 'config' (listed in 'config_inferred') are INFERRED, not read: E3D-LSTM's "
        "parameter count with num_hidden 128 x 4, filter_size 5 and patch_size 4 on the 32 x 64 grid is 51.09M "
        "for one channel and 51.81M for two (uv10), equal to the table's Params; patch_size 2 (what the other "
        "weather RNN configs use) would give 51.33M / 51.51M. The checkpoint's tensor shapes win.",
    ),
}
# Files whose reported parameter count contradicts their config file but matches another config exactly:
# stem -> (values that replace the config file's, note). Counted with the layouts of OpenSTL's SimVP_Model
# (tests/helpers/openstl_reference*.py; tests/convert/test_catalog.py recounts every SimVP/TAU/E3D-LSTM entry).
PARAMS_OVERRIDES: dict[str, tuple[dict[str, Any], str]] = {
    "kitticaltech_tau_one_ep100": (
        {"hid_S": 64, "hid_T": 512, "N_S": 4, "N_T": 8},
        "The model values listed in 'config_inferred' are INFERRED, not read: {config_file} says {read}, which "
        "gives TAU 14.96M parameters, but both tables report 44.7M and 80.0G FLOPs for this file: TAU at hid_S 64, "
        "hid_T 512, N_S 4, N_T 8 (configs/mmnist/TAU.py's values) has 44.66M parameters on 3 x 128 x 160 frames, "
        "and 5 x the 16.0G reported on Moving MNIST (a 32 x 40 latent grid instead of 16 x 16). The checkpoint's "
        "tensor shapes win.",
    ),
    "kth20_simvp_incepu_one_ep100": (
        {"N_T": 6},
        "The model value listed in 'config_inferred' is INFERRED, not read: {config_file} says {read}, which gives "
        "SimVP-IncepU 8.60M parameters, but both tables report 12.2M for this file, which SimVP-IncepU has with "
        "N_T 6 (12.15M), the value of configs/kth/SimVP.py. The checkpoint's tensor shapes win.",
    ),
}
NON_METRIC_COLUMNS = {"Params", "FLOPs", "FPS", "GPUs"}


class BuildError(RuntimeError):
    """The mirror does not say what the builder expects (a changed table, loader or config layout)."""


# ---- git ---------------------------------------------------------------------------------------------------------
class Mirror:
    """Read-only access to a bare git mirror at fixed refs (one ``git cat-file --batch`` process for all reads)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._trees: dict[str, set[str]] = {}
        self._blobs: dict[tuple[str, str], str] = {}
        self._batch: subprocess.Popen[bytes] | None = None

    def _git(self, *args: str) -> str:
        out = subprocess.run(["git", "-C", str(self.path), *args], capture_output=True, text=True, check=False)
        if out.returncode != 0:
            raise BuildError(f"git {' '.join(args)} failed in {self.path}: {out.stderr.strip()}")
        return out.stdout

    def commit(self, ref: str) -> str:
        return self._git("rev-parse", f"{ref}^{{commit}}").strip()

    def show(self, ref: str, path: str) -> str:
        if (ref, path) not in self._blobs:
            if self._batch is None:
                self._batch = subprocess.Popen(
                    ["git", "-C", str(self.path), "cat-file", "--batch"], stdin=subprocess.PIPE, stdout=subprocess.PIPE
                )
            assert self._batch.stdin is not None and self._batch.stdout is not None
            self._batch.stdin.write(f"{ref}:{path}\n".encode())
            self._batch.stdin.flush()
            header = self._batch.stdout.readline().decode().split()
            if len(header) != 3 or header[1] != "blob":
                raise BuildError(f"{ref}:{path} is not a file in {self.path}")
            data = self._batch.stdout.read(int(header[2]))
            self._batch.stdout.read(1)  # the newline after the object
            self._blobs[ref, path] = data.decode("utf-8")
        return self._blobs[ref, path]

    def exists(self, ref: str, path: str) -> bool:
        if ref not in self._trees:
            self._trees[ref] = set(self._git("ls-tree", "-r", "--name-only", ref).splitlines())
        return path in self._trees[ref]

    def close(self) -> None:
        if self._batch is not None:
            assert self._batch.stdin is not None
            self._batch.stdin.close()
            self._batch.wait()
            self._batch = None


# ---- parsing -----------------------------------------------------------------------------------------------------
_BINOPS = {ast.Add: lambda a, b: a + b, ast.Sub: lambda a, b: a - b, ast.Mult: lambda a, b: a * b,
           ast.Div: lambda a, b: a / b, ast.FloorDiv: lambda a, b: a // b}  # fmt: skip


def _literal(node: ast.expr, env: dict[str, Any]) -> Any:
    """Evaluate a config value without executing anything: literals, ``dict(k=...)``, names assigned earlier
    in the same file, and ``+ - * / //`` between such values; raises ValueError for anything else."""
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "dict" and not node.args:
        return {kw.arg: _literal(kw.value, env) for kw in node.keywords if kw.arg is not None}
    if isinstance(node, ast.Name):
        if node.id not in env:
            raise ValueError(f"name {node.id!r} is not assigned earlier in the file")
        return env[node.id]
    if isinstance(node, ast.BinOp) and type(node.op) in _BINOPS:
        return _BINOPS[type(node.op)](_literal(node.left, env), _literal(node.right, env))
    if isinstance(node, (ast.Tuple, ast.List)):
        items = [_literal(e, env) for e in node.elts]
        return tuple(items) if isinstance(node, ast.Tuple) else items
    return ast.literal_eval(node)


def parse_config(source: str, where: str) -> dict[str, Any]:
    """The top-level ``name = value`` assignments of an OpenSTL config file (the file is never executed)."""
    cfg: dict[str, Any] = {}
    for stmt in ast.parse(source, filename=where).body:
        if isinstance(stmt, ast.Assign) and len(stmt.targets) == 1 and isinstance(stmt.targets[0], ast.Name):
            try:
                cfg[stmt.targets[0].id] = _literal(stmt.value, cfg)
            except ValueError as e:
                raise BuildError(f"{where}: {stmt.targets[0].id} is not a literal ({e})") from e
        elif not isinstance(stmt, ast.Expr):
            raise BuildError(f"{where}: line {stmt.lineno} is not a plain assignment")
    return cfg


def parse_dataset_parameters(source: str) -> dict[str, dict[str, Any]]:
    """``dataset_parameters`` of dataset_constant.py: literal entries only (``**dict.fromkeys`` expanded)."""
    tree = ast.parse(source)
    value = next(
        s.value
        for s in tree.body
        if isinstance(s, ast.Assign) and getattr(s.targets[0], "id", None) == "dataset_parameters"
    )
    if not isinstance(value, ast.Dict):
        raise BuildError("dataset_parameters is not a dict display")

    def entry(d: ast.expr) -> dict[str, Any]:
        out = {}
        assert isinstance(d, ast.Dict)
        for k, v in zip(d.keys, d.values, strict=True):
            try:
                out[ast.literal_eval(k)] = ast.literal_eval(v)
            except ValueError:
                continue  # e.g. the multi-variable weather sets' list comprehensions (not published)
        return out

    params: dict[str, dict[str, Any]] = {}
    for k, v in zip(value.keys, value.values, strict=True):
        if k is None:  # **dict.fromkeys([names], {...})
            assert isinstance(v, ast.Call)
            names, body = v.args
            for name in ast.literal_eval(names):
                params[name] = entry(body)
        else:
            params[ast.literal_eval(k)] = entry(v)
    return params


def _cell(text: str) -> Any:
    text = text.strip()
    if text == "":
        return None
    try:
        return float(text) if re.fullmatch(r"-?\d+(\.\d+)?", text) else text
    except ValueError:  # pragma: no cover
        return text


def parse_tables(mirror: Mirror, ref: str) -> list[dict[str, Any]]:
    """Every table row that links a released ``.pth``, in document order."""
    rows = []
    for table in TABLES:
        h2 = h3 = ""
        header: list[str] | None = None
        for line in mirror.show(ref, table).splitlines():
            if line.startswith("## "):
                h2, h3, header = line[3:].strip(), "", None
            elif line.startswith("### "):
                h3, header = line[4:].strip().strip("*").strip(), None
            elif line.startswith("|"):
                cells = [c.strip() for c in line.strip().strip("|").split("|")]
                if header is None:
                    header = cells
                    continue
                if set("".join(cells)) <= set("-: "):
                    continue
                links = LINK_RE.findall(line)
                if not links:
                    continue
                # the download cell holds "[model](url) \| [log](url)": the escaped pipe splits it
                named = dict(zip(header, cells, strict=False))
                row_cells = [
                    [col, val]
                    for col, val in named.items()
                    if col not in ("Download",) and col != header[0] and col != "Setting"
                ]
                columns = {col: _cell(val) for col, val in row_cells}
                for tag, file in links:
                    rows.append(
                        {
                            "tag": tag,
                            "file": file,
                            "label": named[header[0]].replace("\\*", "*").strip(),
                            "setting": named.get("Setting"),
                            "table": table,
                            "section": f"{h2} / {h3}" if h3 else h2,
                            "columns": columns,
                            "cells": row_cells,
                        }
                    )
            else:
                header = None  # a table ends at its first non-table line
    return rows


# ---- building ----------------------------------------------------------------------------------------------------
def _split_stem(stem: str) -> tuple[str, str, str, int]:
    m = STEM_RE.match(stem)
    if not m:
        raise BuildError(f"{stem}: not <dataset>_<method>_<one|cos>_ep<N>")
    body = m["body"]
    for prefix in sorted(PREFIXES, key=len, reverse=True):
        if body.startswith(prefix + "_"):
            return prefix, body[len(prefix) + 1 :], m["sched"], int(m["epoch"])
    raise BuildError(f"{stem}: unknown dataset prefix")


def _config_candidates(folder: str, token: str) -> tuple[str, str | None, str | None, list[str]]:
    """(OpenSTL method, model_type, size, candidate config paths) for a method token."""
    if token.startswith("simvp_"):
        rest = token[len("simvp_") :]
        size = None
        if rest.startswith("s_"):
            size, rest = "S", rest[2:]
        if rest not in SIMVP_TYPES:
            raise BuildError(f"unknown SimVP translator token {rest!r}")
        t = SIMVP_TYPES[rest]
        return "SimVP", t, size, [f"{folder}/simvp/SimVP_{t}.py", f"{folder}/SimVP_{t}.py"]
    if token not in METHOD_TOKENS:
        raise BuildError(f"unknown method token {token!r}")
    method, cfg = METHOD_TOKENS[token]
    return method, None, None, [f"{folder}/{cfg}.py"]


def _differs(a: dict[str, Any], b: dict[str, Any], keys: set[str]) -> list[str]:
    return sorted(k for k in keys if a.get(k) != b.get(k))


def build(mirror_path: Path, ref: str, fallback_ref: str) -> dict[str, Any]:
    """The catalogue as a dict (see the module docstring)."""
    mirror = Mirror(mirror_path)
    try:
        return _build(mirror, ref, fallback_ref)
    finally:
        mirror.close()


def _build(mirror: Mirror, ref: str, fallback_ref: str) -> dict[str, Any]:
    commit = mirror.commit(ref)
    fallback_commit = mirror.commit(fallback_ref)
    ds_params = parse_dataset_parameters(mirror.show(ref, "openstl/datasets/dataset_constant.py"))

    datasets: dict[str, Any] = {}
    for order, (key, facts) in enumerate(DATASETS.items()):
        loader_src = mirror.show(ref, facts["loader"])
        missing = [e for e in facts["evidence"] if e not in loader_src]
        if missing:
            raise BuildError(f"{key}: {facts['loader']} no longer contains {missing}; re-read the loader")
        p = ds_params[facts["openstl_dataname"]]
        t, c, h, w = p["in_shape"]
        entry = {k: v for k, v in facts.items() if k != "evidence"}
        entry.update(
            frames_in=p["pre_seq_length"],
            frames_out=p["aft_seq_length"],
            channels=c,
            height=h,
            width=w,
            openstl_parameters={k: p[k] for k in sorted(p)},
            display_order=order,
            source_files=["openstl/datasets/dataset_constant.py", facts["loader"]],
        )
        if t != p["pre_seq_length"] or len(facts["channel_names"]) != c:
            raise BuildError(f"{key}: in_shape {p['in_shape']} disagrees with its facts")
        datasets[key] = entry

    rows = parse_tables(mirror, ref)
    by_file: dict[str, list[dict[str, Any]]] = {}
    for r in rows:
        by_file.setdefault(r["file"], []).append(r)

    # rows of one table section whose metrics are identical although the files differ (copy errors?)
    twins: dict[str, list[str]] = {}
    groups: dict[tuple[Any, ...], set[str]] = {}
    for r in rows:
        metrics = tuple(sorted((k, v) for k, v in r["columns"].items() if k not in NON_METRIC_COLUMNS))
        groups.setdefault((r["table"], r["section"], metrics), set()).add(r["file"])
    for (_, section, _), files in groups.items():
        if len(files) > 1:
            for f in files:
                twins.setdefault(f, []).extend(f"{o} ({section})" for o in sorted(files - {f}))

    checkpoints: dict[str, Any] = {}
    for file, file_rows in by_file.items():
        stem = file[: -len(".pth")]
        first = file_rows[0]
        if len({r["tag"] for r in file_rows}) != 1:
            raise BuildError(f"{file}: linked under several tags")
        prefix, token, sched_tok, epoch = _split_stem(stem)
        dataset, folder = PREFIXES[prefix]
        method, model_type, size, candidates = _config_candidates(folder, token)
        notes: list[str] = []
        config_file = config_ref = config_commit = None
        cfg: dict[str, Any] = {}
        for r_ref, r_commit in ((ref, commit), (fallback_ref, fallback_commit)):
            hit = next((c for c in candidates if mirror.exists(r_ref, c)), None)
            if hit:
                config_file, config_ref, config_commit = hit, r_ref, r_commit
                cfg = parse_config(mirror.show(r_ref, hit), f"{r_ref}:{hit}")
                break
        if config_file is None:
            notes.append(
                f"No config file for this method and dataset at {ref} or {fallback_ref} "
                f"(looked for {', '.join(candidates)})."
            )
        elif config_ref != ref:
            notes.append(
                f"{method} was removed from OpenSTL's current branch; its config is read at {config_ref} "
                f"({config_commit[:12]})."
            )
        if cfg.get("method") not in (None, method):
            notes.append(f"{config_file} says method={cfg['method']!r} but the file name says {method!r}.")
        merged = dict(cfg)
        merged.setdefault("method", method)
        p = ds_params[datasets[dataset]["openstl_dataname"]]
        for k in ("in_shape", "pre_seq_length", "aft_seq_length", "total_length", "data_name"):
            if k in p:
                if k in cfg and cfg[k] != p[k]:
                    notes.append(
                        f"{config_file} sets {k}={cfg[k]!r}; OpenSTL's get_dataset overrides it with {p[k]!r}."
                    )
                merged[k] = p[k]
        merged["dataname"] = datasets[dataset]["openstl_dataname"]

        if method in ("SimVP", "TAU"):
            if "model_type" not in cfg:
                merged["model_type"] = "tau" if method == "TAU" else "gSTA"
                notes.append(
                    f"{config_file} sets no model_type; OpenSTL's default ({merged['model_type']!r}) is recorded."
                )
            elif model_type and str(cfg["model_type"]).lower() not in SIMVP_ALIASES.get(
                model_type, {model_type.lower()}
            ):
                notes.append(
                    f"The file name says translator {model_type!r} but {config_file} says "
                    f"model_type={cfg['model_type']!r}."
                )
            model_type = str(merged["model_type"])  # OpenSTL's own spelling, as the config gives it
        # a dataset's generic configs/<ds>/SimVP.py may differ from the translator's own file
        if method == "SimVP" and config_file and "/simvp/" in config_file:
            generic = f"{folder}/SimVP.py"
            if mirror.exists(ref, generic):
                g = parse_config(mirror.show(ref, generic), generic)
                arch_keys = (set(g) | set(cfg)) - TRAINING_KEYS - {"model_type", "method"}
                diff = _differs(g, cfg, arch_keys)
                if diff:
                    notes.append(
                        f"{generic} (the dataset's generic SimVP config) differs from {config_file} in "
                        f"{', '.join(f'{k}: {g.get(k)!r} vs {cfg.get(k)!r}' for k in diff)}; "
                        f"{config_file} is the translator's own file and is the one read."
                    )
        if size == "S":
            large = [
                c
                for c in (
                    f"{folder}/simvp/SimVP_{config_file.rsplit('_', 1)[-1][:-3]}-L.py",
                    f"{folder}/simvp/SimVP-L.py",
                )
                if mirror.exists(ref, c)
                and str(parse_config(mirror.show(ref, c), c).get("model_type", "gSTA")).lower() == model_type.lower()
            ]
            notes.append(
                "'_s_' in the file name: the table labels this size S (e.g. 'gSTA-S'); "
                f"{config_file} is the non-L config"
                + (f" ({', '.join(large)} being the L size, not published)" if large else "")
                + "; the file name itself does not name a config, so the checkpoint's tensor shapes decide."
            )
        if token == "convlstm_l":
            notes.append(
                "ConvLSTM-L: the larger ConvLSTM (num_hidden 192 x 4 in OpenSTL's ConvLSTM-L.py) under method "
                "'ConvLSTM'."
            )
        if token == "s3dlstm":
            notes.append(
                "The file is named 's3dlstm' but the table row that links it is labelled 'E3D-LSTM', and OpenSTL "
                f"has no method or config called s3dlstm at any ref of the mirror. {config_file} is recorded: "
                "E3D-LSTM's parameter count at that config (num_hidden 128 x 4, filter_size 5, patch_size 8, "
                "3 x 256 x 256 frames) is 60.85M, matching the row's 60.9M. The checkpoint's tensor shapes win."
            )
        inferred = INFERRED_CONFIGS.get((method, dataset.split("_")[0]))
        if config_file is None and inferred is not None:
            values, why = inferred
            for k, v in values.items():
                merged.setdefault(k, v)
            config_inferred = sorted(values)
            notes.append(why)
        else:
            config_inferred = []
        if stem in PARAMS_OVERRIDES:
            values, why = PARAMS_OVERRIDES[stem]
            read = {k: merged.get(k) for k in values}
            merged.update(values)
            config_inferred = sorted(set(config_inferred) | set(values))
            notes.append(why.format(config_file=config_file, read=", ".join(f"{k} {v!r}" for k, v in read.items())))
        want_sched = SCHEDULERS[sched_tok]
        have_sched = cfg.get("sched")
        if config_file and have_sched != want_sched:
            notes.append(
                f"The file name says the {want_sched} scheduler ('_{sched_tok}_') but "
                + (f"{config_file} sets sched={have_sched!r}" if have_sched else f"{config_file or 'no config'} "
                   "sets no sched (OpenSTL's default is 'onecycle')")
                + "; a training setting, it does not change the architecture."
            )  # fmt: skip
        if cfg.get("epoch") not in (None, epoch):
            notes.append(f"The file name says {epoch} epochs, {config_file} sets epoch={cfg['epoch']}.")

        if file in twins:
            notes.append(
                "OpenSTL's table gives this file exactly the same metrics as "
                + ", ".join(sorted(set(twins[file])))
                + ": probably a copy error in the table; treat these reported numbers with care."
            )
        reported = {k: first[k] for k in ("table", "section", "columns", "cells")}
        also = []
        for r in file_rows[1:]:
            also.append({k: r[k] for k in ("table", "section", "label", "columns", "cells")})
            diff = sorted(
                k for k in set(r["columns"]) | set(first["columns"]) if r["columns"].get(k) != first["columns"].get(k)
            )
            if diff:
                notes.append(
                    f"Also listed in '{r['section']}' as '{r['label']}' with different "
                    + ", ".join(f"{k} ({first['columns'].get(k)!r} vs {r['columns'].get(k)!r})" for k in diff)
                    + "; 'reported' keeps the first listing."
                )  # fmt: skip
        entry = {
            "tag": first["tag"],
            "file": file,
            "url": f"{URL_BASE}/{first['tag']}/{file}",
            "dataset": dataset,
            "openstl_method": method,
            "model_type": model_type if method in ("SimVP", "TAU") else None,
            "label": first["label"],
            "setting": first["setting"],
            "scheduler": want_sched,
            "epochs": epoch,
            "config_file": config_file,
            "config_ref": config_ref,
            "config_commit": config_commit,
            "config": merged,
            "config_inferred": config_inferred,
            "reported": reported,
            "reported_also": also,
            "notes": " ".join(notes),
        }
        checkpoints[stem] = entry

    return {
        "source": {
            "repo": "chengtan9907/OpenSTL",
            "commit": commit,
            "ref": ref,
            "fallback_ref": fallback_ref,
            "fallback_commit": fallback_commit,
            "license": "Apache-2.0",
            "url_base": URL_BASE,
            "tables": list(TABLES),
            "links": len(rows),
            "note": (
                f"{len(rows)} release links to .pth files in the three model-zoo tables, {len(checkpoints)} distinct "
                "files: files listed in both a method table and the MetaFormer (MetaVP) table of the same dataset "
                "are one checkpoint. Numbers under 'reported' are OpenSTL's, copied from its tables."
            ),
        },
        "datasets": datasets,
        "checkpoints": checkpoints,
    }


def dumps(catalog: dict[str, Any]) -> str:
    """The committed text: sorted keys, indent 1, one trailing newline."""
    return json.dumps(catalog, indent=1, sort_keys=True, ensure_ascii=False) + "\n"


def main(argv: list[str] | None = None) -> int:
    """Command line: build (or ``--check``) the catalogue."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--mirror", type=Path, default=DEFAULT_MIRROR, help="OpenSTL's bare git mirror")
    ap.add_argument("--ref", default="HEAD", help="ref to read (default HEAD, OpenSTL-Lightning)")
    ap.add_argument("--fallback-ref", default="OpenSTLv0.3.0", help="ref for the configs of removed methods")
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    ap.add_argument("--check", action="store_true", help="compare with --out instead of writing it")
    args = ap.parse_args(argv)
    try:
        catalog = build(args.mirror, args.ref, args.fallback_ref)
    except BuildError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    text = dumps(catalog)
    counts = Counter(c["tag"] for c in catalog["checkpoints"].values())
    summary = f"{len(catalog['checkpoints'])} checkpoints ({catalog['source']['links']} links): " + ", ".join(
        f"{t} {n}" for t, n in sorted(counts.items())
    )
    if args.check:
        same = args.out.is_file() and args.out.read_text(encoding="utf-8") == text
        print(("up to date: " if same else "STALE: ") + summary)
        return 0 if same else 1
    args.out.write_text(text, encoding="utf-8")
    print(f"wrote {args.out}: {summary}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
