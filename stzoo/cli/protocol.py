"""What `stzoo evaluate` adds for the benchmark datasets: OpenSTL's reported numbers beside the measured ones.

:func:`openstl_reported` looks an ``openstl:<file stem>`` name up in OpenSTL's catalogue
(``stzoo.convert.openstl.catalog``, imported only when such a name is evaluated) and returns the metrics
OpenSTL's model-zoo tables publish for that file, labelled as OpenSTL's.
"""

from __future__ import annotations

from typing import Any

__all__ = ["OPENSTL_PREFIX", "openstl_reported", "protocol_notes"]

OPENSTL_PREFIX = "openstl:"
_METRICS = ("MSE", "RMSE", "MAE", "SSIM", "PSNR", "LPIPS")


def openstl_reported(name: str) -> dict[str, Any] | None:
    """OpenSTL's published metrics for the checkpoint ``name`` (``openstl:<stem>``), or None for other names.

    Returns ``{"source": "...", "mse": ..., ...}`` with the metric columns of its table row, or a ``note``
    when the catalogue is missing or does not list the file."""
    if not name.startswith(OPENSTL_PREFIX):
        return None
    stem = name[len(OPENSTL_PREFIX) :]
    try:
        from stzoo.convert.openstl.catalog import load_catalog
    except ImportError:
        return {"note": "OpenSTL's catalogue (stzoo.convert.openstl.catalog) is not in this stzoo version"}
    entry = load_catalog().get("checkpoints", {}).get(stem)
    if entry is None or not entry.get("reported"):
        return {"note": f"OpenSTL's catalogue lists no published numbers for {stem!r}"}
    rep = entry["reported"]
    cols = rep.get("columns", {})
    out: dict[str, Any] = {"source": f"OpenSTL {rep.get('table', '?')}: {rep.get('section', '?')}"}
    out.update({k.lower(): v for k, v in cols.items() if k.upper() in _METRICS})
    return out


def protocol_notes(dataset_frames: tuple[int, int], model_frames: tuple[int, int]) -> list[str]:
    """Plain-words warnings when a model is measured on other frame counts than the dataset's protocol."""
    if dataset_frames == model_frames:
        return []
    return [
        f"the model reads {model_frames[0]} and predicts {model_frames[1]} frames; the dataset's protocol is "
        f"{dataset_frames[0]}→{dataset_frames[1]}, so these numbers are not comparable with published ones"
    ]
