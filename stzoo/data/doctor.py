"""The data doctor: look at data before training on it (``stzoo data check``).

It reads a file or folder of your own (a video, a folder of frames, an ``.npy`` / ``.npz`` array, a NetCDF
file) or a registered dataset (``--dataset``, e.g. ``taxibj --data-dir DIR``) and reports, before any
training: the layout it understood and the shapes, the value range and what stzoo will feed a model (uint8
is divided by 255, floats are taken as they are), a split into windows of ``frames_in + frames_out`` frames
(training / validation), and the copy-last-frame baseline (every future frame = the last observed one) in
stzoo's convention (squared error summed over a frame's C·H·W values). A model worth training must beat
that baseline; and a baseline far above ``C·H·W`` per frame means the values are not in [0, 1]: the
mistake behind OpenSTL issue #31 (an MSE in the millions from unnormalised data). Each finding is a line
in ``problems`` (something to fix) or ``notes``.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from stzoo.errors import InputError

__all__ = ["DoctorReport", "LAYOUTS", "check_array", "check_path", "check_dataset", "to_clips"]

#: layouts ``check_array`` understands (N: clips, T: time, C: channels); ``TNHW`` is the canonical
#: ``mnist_test_seq.npy``'s time-major layout
LAYOUTS = ("NTCHW", "NTHWC", "NTHW", "TNHW", "TCHW", "THWC", "THW")


@dataclass
class DoctorReport:
    """What the doctor found; :meth:`text` words it."""

    source: str
    layout: str = ""
    clips: int = 0
    shape: tuple[int, ...] = ()  # one clip: T×C×H×W
    dtype: str = ""
    stats: dict[str, float] = field(default_factory=dict)
    scale: str = ""
    windows: dict[str, int] = field(default_factory=dict)
    frames_in: int = 10
    frames_out: int = 10
    copy_last: dict[str, float] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when nothing needs fixing before training."""
        return not self.problems

    def as_dict(self) -> dict[str, Any]:
        """The report as plain JSON-able values."""
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in self.__dict__.items()} | {"ok": self.ok}

    def text(self) -> str:
        """The report in words, one finding a line."""
        lines = [f"source:     {self.source}"]
        if self.layout:
            lines.append(
                f"layout:     {self.layout} → {self.clips} clip(s) of T×C×H×W = {'×'.join(map(str, self.shape))}"
            )
        if self.stats:
            s = self.stats
            lines.append(
                f"values:     {self.dtype}, min {s['min']:.6g}, max {s['max']:.6g}, mean {s['mean']:.6g}, "
                f"std {s['std']:.6g}" + (f", {int(s['nonfinite'])} NaN/inf" if s.get("nonfinite") else "")
            )
        if self.scale:
            lines.append(f"model sees: {self.scale}")
        if self.windows and "test" in self.windows:
            lines.append(f"test set:   {self.windows['test']} sequences looked at ({self.windows.get('how', '')})")
        elif self.windows:
            w = self.windows
            lines.append(
                f"split:      {w.get('train', 0)} training / {w.get('val', 0)} validation windows of "
                f"{self.frames_in}+{self.frames_out} frames ({w.get('how', '')})"
            )
        if self.copy_last:
            c = self.copy_last
            lines.append(
                f"copy-last:  MSE {c['mse']:.6g} per frame (sum over C·H·W; {c['mse_per_value']:.6g} per value), "
                f"MAE {c['mae']:.6g} per frame, on {int(c['windows'])} windows"
            )
        lines += [f"PROBLEM:    {p}" for p in self.problems]
        lines += [f"note:       {n}" for n in self.notes]
        lines.append("verdict:    " + ("ready to train" if self.ok else "fix the problems above first"))
        return "\n".join(lines)


def _guess_layout(shape: tuple[int, ...]) -> str:
    nd = len(shape)
    if nd == 5:
        return "NTHWC" if shape[-1] <= 4 and shape[2] > 4 else "NTCHW"
    if nd == 4:
        if shape[-1] in (1, 3) and shape[1] > 4:
            return "THWC"
        if shape[1] <= 4:
            return "TCHW"
        if shape[0] <= 100 and shape[1] >= 10 * shape[0]:
            return "TNHW"  # few frames, many sequences: time-major like mnist_test_seq.npy
        return "NTHW"
    if nd == 3:
        return "THW"
    raise InputError(
        f"cannot read an array of shape {shape} as frames; expected 3 to 5 dimensions ({', '.join(LAYOUTS)})"
    )


def to_clips(x: np.ndarray, layout: str | None = None) -> tuple[np.ndarray, str]:
    """``x`` as N×T×C×H×W (a view where possible) and the layout used (given, or guessed from the shape)."""
    layout = (layout or _guess_layout(tuple(x.shape))).upper()
    if layout not in LAYOUTS or len(layout) != x.ndim:
        raise InputError(
            f"layout {layout!r} does not fit an array of shape {tuple(x.shape)}; one of {', '.join(LAYOUTS)}"
        )
    names, y = layout, x
    for axis in "NC":  # a missing clip or channel axis: a size-1 axis at the end, then moved into place
        if axis not in names:
            y, names = y[..., None], names + axis
    y = y.transpose([names.index(a) for a in "NTCHW"])
    return y, layout


def _stats(clips: np.ndarray, limit: int = 1 << 24) -> dict[str, float]:
    flat = clips.reshape(-1)
    sample = flat if flat.size <= limit else flat[:: math.ceil(flat.size / limit)]
    sample = np.asarray(sample, dtype=np.float64)
    finite = np.isfinite(sample)
    good = sample[finite] if not finite.all() else sample
    if good.size == 0:
        return {"min": math.nan, "max": math.nan, "mean": math.nan, "std": math.nan, "nonfinite": float(sample.size)}
    return {
        "min": float(good.min()),
        "max": float(good.max()),
        "mean": float(good.mean()),
        "std": float(good.std()),
        "nonfinite": float((~finite).sum()),
    }


def _as_model_values(clips: np.ndarray) -> np.ndarray:
    return clips.astype(np.float32) / 255.0 if clips.dtype == np.uint8 else clips.astype(np.float32)


def check_array(
    x: np.ndarray,
    *,
    frames_in: int = 10,
    frames_out: int = 10,
    layout: str | None = None,
    val_fraction: float = 0.1,
    source: str = "array",
    max_windows: int = 2000,
) -> DoctorReport:
    """Check frames held in an array (see the module docstring). ``layout``: one of :data:`LAYOUTS`
    (guessed from the shape when None; the guess is reported, so check it)."""
    if frames_in < 1 or frames_out < 1:
        raise InputError(f"frames_in and frames_out must be at least 1, got {frames_in} and {frames_out}")
    clips, used = to_clips(np.asarray(x) if not isinstance(x, np.memmap) else x, layout)
    rep = DoctorReport(source=source, layout=used, frames_in=frames_in, frames_out=frames_out)
    rep.clips, rep.shape, rep.dtype = clips.shape[0], tuple(clips.shape[1:]), str(clips.dtype)
    if layout is None:
        rep.notes.append(f"layout {used} guessed from the shape {tuple(x.shape)}; pass --layout if that is wrong")
    if not (np.issubdtype(clips.dtype, np.integer) or np.issubdtype(clips.dtype, np.floating) or clips.dtype == bool):
        rep.problems.append(f"values of type {clips.dtype} are not numbers")
        return rep
    rep.stats = s = _stats(clips)
    if s["nonfinite"]:
        rep.problems.append(f"{int(s['nonfinite'])} NaN / inf values: fill or mask them before training")
    c, h, w = clips.shape[2:]
    if c > 4:
        rep.problems.append(f"{c} channels per frame: is the layout right (--layout)?")
    if min(h, w) < 11:
        rep.notes.append(f"frames of {h}×{w}: SSIM (an 11×11 window) is not defined; MSE / MAE / PSNR are")
    if clips.dtype == np.uint8:
        rep.scale = "uint8 levels divided by 255, in [0, 1]"
    elif np.issubdtype(clips.dtype, np.integer) or clips.dtype == bool:
        rep.scale = f"{clips.dtype} values as they are"
        rep.problems.append(f"{clips.dtype} frames: convert to uint8 (0..255) or to floats in [0, 1] first")
    elif s["min"] >= 0.0 and s["max"] <= 1.0:
        rep.scale = "floats as they are, in [0, 1]"
    elif s["min"] >= 0.0 and s["max"] <= 255.0 and s["max"] > 1.0:
        rep.scale = f"floats as they are, in [{s['min']:.4g}, {s['max']:.4g}]"
        rep.problems.append(
            "floats up to 255: these look like 8-bit levels; divide by 255 (or store uint8) so a model sees [0, 1]"
        )
    else:
        rep.scale = f"floats as they are, in [{s['min']:.4g}, {s['max']:.4g}]"
        rep.problems.append(
            "values outside [0, 1]: min-max scale them to [0, 1] (keep the min and max to map predictions back), "
            "or z-score a physical field and register it as a float32 dataset with its normalisation"
        )
    need = frames_in + frames_out
    t = clips.shape[1]
    if t < need:
        rep.problems.append(f"clips of {t} frames; {frames_in}+{frames_out} = {need} needed per window")
        return rep
    per_clip = t // need
    total = per_clip * clips.shape[0]
    if clips.shape[0] > 1:
        val_clips = max(1, round(clips.shape[0] * val_fraction)) if val_fraction > 0 else 0
        rep.windows = {
            "train": per_clip * (clips.shape[0] - val_clips),
            "val": per_clip * val_clips,
            "how": f"the last {val_clips} of {clips.shape[0]} clips held out whole",
        }
    else:
        val = max(1, round(total * val_fraction)) if val_fraction > 0 and total > 1 else 0
        rep.windows = {"train": total - val, "val": val, "how": "one clip: its last windows held out (later in time)"}
    if rep.windows["train"] < 100:
        rep.notes.append(f"only {rep.windows['train']} training windows: expect to fine-tune, not train from scratch")
    # copy-last on up to max_windows non-overlapping windows
    sums = {"mse": 0.0, "mae": 0.0}
    count = 0
    for i in range(clips.shape[0]):
        for k in range(per_clip):
            if count >= max_windows:
                break
            win = _as_model_values(np.asarray(clips[i, k * need : (k + 1) * need]))
            last = win[frames_in - 1 : frames_in]
            d = win[frames_in:].astype(np.float64) - last
            sums["mse"] += float((d * d).reshape(frames_out, -1).sum(-1).mean())
            sums["mae"] += float(np.abs(d).reshape(frames_out, -1).sum(-1).mean())
            count += 1
    values = c * h * w
    mse = sums["mse"] / count
    rep.copy_last = {"mse": mse, "mae": sums["mae"] / count, "mse_per_value": mse / values, "windows": float(count)}
    if mse / values > 1.0:
        rep.problems.append(
            f"copy-last MSE of {mse:.4g} per frame is more than the frame's {values} values could give in [0, 1]: "
            "the data is not normalised (OpenSTL issue #31's 7-digit MSE)"
        )
    elif mse == 0.0:
        rep.problems.append("the frames never change: copying the last frame is already perfect")
    return rep


def _read_netcdf(path: Path) -> np.ndarray:
    try:
        import xarray as xr
    except ImportError as exc:
        raise InputError(
            f'reading {path} needs xarray and netCDF4: run `pip install -e ".[weather]"` from a stzoo checkout'
        ) from exc
    with xr.open_dataset(path) as ds:
        fields = [v for v in ds.data_vars if ds[v].ndim >= 3 and "time" in ds[v].dims]
        if not fields:
            raise InputError(f"{path}: no variable with a time axis and two space axes")
        arrays = []
        for v in fields:
            a = np.asarray(ds[v].values, dtype=np.float32)
            arrays.append(a[:, -1] if a.ndim == 4 else a)  # a level axis: the last level, as OpenSTL
    return np.stack(arrays, axis=1)  # T×C×H×W


def check_path(path: str | os.PathLike, *, layout: str | None = None, **kw: Any) -> DoctorReport:
    """Read ``path`` (video, frame folder, ``.npy`` / ``.npz``, ``.nc``) and :func:`check_array` it."""
    from stzoo.frames.read import read_frames

    p = Path(path).expanduser()
    if p.suffix.lower() in (".nc", ".nc4"):
        x, default = _read_netcdf(p), "TCHW"
    else:
        x = read_frames(p)
        default = None if p.suffix.lower() in (".npy", ".npz") else "THWC"
    return check_array(x, layout=layout or default, source=str(p), **kw)


def check_dataset(
    name: str, options: dict[str, Any] | None = None, *, sequences: int = 64, val_fraction: float = 0.1
) -> DoctorReport:
    """Check a registered dataset's test set (its first ``sequences`` sequences): shapes against the spec,
    the values a model will see, and the copy-last baseline on the dataset's own protocol."""
    from stzoo.data.registry import get_dataset

    spec = get_dataset(name)
    test = spec.test_data(sequences, options, cache=False)
    n = len(test)
    if n == 0:
        raise InputError(f"{name}: the test set is empty")
    batch = test.batch(0, n).numpy()
    rep = check_array(
        batch,
        frames_in=spec.frames_in,
        frames_out=spec.frames_out,
        layout="NTCHW",
        source=f"{name} test set",
        val_fraction=val_fraction,
    )
    rep.notes = [x for x in rep.notes if not x.startswith(("layout", "only"))]
    expected = (spec.channels, spec.height, spec.width)
    if tuple(batch.shape[2:]) != expected:
        rep.problems.append(f"frames of {tuple(batch.shape[2:])}; the dataset declares {expected}")
    if str(batch.dtype) != spec.dtype:
        rep.problems.append(f"batches of {batch.dtype}; the dataset declares {spec.dtype}")
    if tuple(spec.value_range) != (0.0, 1.0):
        # a z-scored field: values outside [0, 1] are expected; judge by the declared range instead
        rep.problems = [p for p in rep.problems if "outside [0, 1]" not in p and "not normalised" not in p]
        lo, hi = spec.value_range
        if rep.stats and (rep.stats["min"] < lo or rep.stats["max"] > hi):
            rep.notes.append(f"values beyond the declared range [{lo:g}, {hi:g}]")
        rep.scale = f"{spec.normalisation}"
    rep.windows = {"test": n, "how": f"the first {n} test sequences ({spec.frames_in}→{spec.frames_out})"}
    return rep
