"""Generated documentation and the manifest's computed columns (maintainer tools).

Everything the docs say about the zoo comes from ``weights_manifest.json``, so it cannot drift:

* :func:`zoo_page` — ``docs/zoo.md``: the zoo table (:func:`stzoo.zoo.manifest.zoo_table_markdown`,
  the same one the README carries) with each name linking to its model card, and what the
  columns mean;
* :func:`model_card_page` — ``docs/models/<name>.md``: one card per zoo entry (aliases included),
  opening with the Hub metadata (:func:`stzoo.zoo.card.card_metadata`: ``pipeline_tag``,
  ``datasets``, ``license``, ...) and showing recorded commands without machine-specific paths
  (:func:`stzoo.zoo.card.display_command`);
* :func:`openstl_zoo_page` — ``docs/openstl-zoo.md``: OpenSTL's published checkpoints from the catalogue
  ``stzoo/convert/openstl/catalog.json`` (method × dataset, OpenSTL's reported metrics, which files stzoo
  can load, each dataset's conventions);
* :func:`write_docs` writes them all (``stzoo-maint zoo-table --docs docs``); :func:`stale_docs` lists the
  files that differ from what the manifest gives (the tests use it).

Two manifest fields are computed rather than typed, by ``stzoo-maint zoo-stats`` (:func:`update_manifest_stats`):

* ``flops`` — :func:`count_flops`: floating-point operations of one forward pass on the native
  input, counted with ``torch.utils.flop_counter.FlopCounterMode`` (deterministic; the tests
  recount it);
* ``speed`` — :func:`measure_speed`: sequences per second measured with :func:`stzoo.tools.bench.measure`,
  stored with the machine, thread count, date and command that produced it.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import platform
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from stzoo.data.registry import get_dataset
from stzoo.errors import StzooError
from stzoo.tools.release import update_manifest
from stzoo.zoo.card import card_metadata, display_command, front_matter
from stzoo.zoo.entry import ZooEntry
from stzoo.zoo.manifest import format_gflops, format_speed, load_manifest, zoo_table_markdown

__all__ = [
    "FLOP_COUNTER",
    "GENERATED_NOTE",
    "count_flops",
    "measure_speed",
    "machine_description",
    "update_manifest_stats",
    "zoo_page",
    "model_card_page",
    "openstl_zoo_page",
    "generated_docs",
    "write_docs",
    "stale_docs",
]

FLOP_COUNTER = "torch.utils.flop_counter.FlopCounterMode"
GENERATED_NOTE = (
    "<!-- Generated from stzoo/weights_manifest.json by `stzoo-maint zoo-table --docs docs`. "
    "Do not edit by hand: edit the manifest and regenerate. -->"
)
STRIP_IMAGE = "assets/tau-mmnist-strip.png"


# ---- computed manifest fields -----------------------------------------------------------------
def count_flops(entry: ZooEntry) -> dict[str, Any]:
    """Count the FLOPs of one forward pass of ``entry``'s architecture on its native input.

    The model is built from the entry's config (random weights: the count does not depend on
    them), moved to the ``meta`` device (no memory, no arithmetic) and run once on a batch of one
    sequence of ``frames_in`` frames: ``model(x)`` for TAU, ``model(x, frames_out)`` for the
    recurrent models (so their count covers all ``frames_in + frames_out - 1`` steps).
    ``FlopCounterMode`` counts 2 FLOPs per multiply-accumulate of convolutions and matrix
    products and ignores element-wise work (activations, norms, gates), as most papers do.

    Args:
        entry: a zoo entry (not an alias).

    Returns:
        The manifest's ``flops`` record: ``flops`` (int), ``input_shape`` (B, T, C, H, W),
        ``frames_out``, ``counter`` and ``torch`` (the version that counted).
    """
    from torch.utils.flop_counter import FlopCounterMode

    from stzoo.models import build_model

    spec = entry.input
    shape = [1, spec.frames_in, spec.channels, spec.height, spec.width]
    model = build_model(entry.architecture, dict(entry.config)).eval().to("meta")
    x = torch.zeros(shape, device="meta")
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        if getattr(model, "recurrent", False):
            model(x, spec.frames_out)
        else:
            model(x)
    return {
        "flops": int(counter.get_total_flops()),
        "input_shape": shape,
        "frames_out": spec.frames_out,
        "counter": FLOP_COUNTER,
        "torch": torch.__version__.split("+")[0],
    }


def machine_description(threads: int) -> str:
    """A one-line description of this machine for speed records: CPU model, cores, threads used."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{cpu}; {os.cpu_count()} logical cores, {threads} thread(s) used; {platform.system()}"


def measure_speed(
    name: str,
    *,
    threads: int = 1,
    batch: int = 1,
    warmup: int = 2,
    iters: int = 10,
    machine: str | None = None,
    command: str = "",
    config: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Measure forecast throughput of zoo entry ``name`` on the CPU with :func:`stzoo.tools.bench.measure`.

    The network is built with random weights (``pretrained=False``): speed does not depend on the
    weight values, and entries without released weights get a number too.

    Args:
        name: a zoo name.
        threads: ``torch.set_num_threads`` for the measurement.
        batch: sequences per forecast, passed to :func:`stzoo.tools.bench.measure`.
        warmup: untimed forecasts first, passed to :func:`stzoo.tools.bench.measure`.
        iters: timed forecasts, passed to :func:`stzoo.tools.bench.measure`.
        machine: description stored with the number (default :func:`machine_description`).
        command: the command line that asked for it, stored as provenance.
        config: overrides of the entry's config (another size of the architecture, as
            ``stzoo train --config``); checked like the zoo's own configs.

    Returns:
        The manifest's ``speed["cpu"]`` record (with ``config`` when overrides were given).

    Raises:
        StzooError: :mod:`stzoo.tools.bench` is not available.
    """
    try:
        from stzoo.tools.bench import measure
    except ImportError as exc:
        raise StzooError(
            f"measuring speed needs stzoo.tools.bench.measure, which could not be imported ({exc})"
        ) from exc
    subject: Any = name
    if config:
        from stzoo.api import assemble_predictor
        from stzoo.models import override_config
        from stzoo.zoo.manifest import get_entry

        entry = get_entry(name)
        entry = entry.replace(config=override_config(entry.architecture, dict(entry.config), config))
        subject = assemble_predictor(entry, None, name=name, device="cpu", dtype="float32", batch_size=16, impl="auto")
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        result = measure(subject, impl="auto", batch=batch, device="cpu", dtype="float32", warmup=warmup, iters=iters)
    finally:
        torch.set_num_threads(previous)
    d = result.to_dict() if hasattr(result, "to_dict") else dict(vars(result))
    extra = {"config": dict(config)} if config else {}
    return {
        **extra,
        "seq_per_s": round(float(d["seq_per_s"]), 3),
        "latency_ms": round(float(d["latency_ms"]), 2),
        "batch": batch,
        "dtype": "float32",
        "impl": str(d.get("impl", "auto")),
        "threads": threads,
        "peak_mem_mb": d.get("peak_mem_mb"),
        "iters": iters,
        "machine": machine or machine_description(threads),
        "date": _dt.date.today().isoformat(),
        "torch": torch.__version__.split("+")[0],
        "command": command,
    }


def update_manifest_stats(
    manifest_path: str | os.PathLike,
    *,
    speed: bool = False,
    names: list[str] | None = None,
    threads: int = 1,
    iters: int = 10,
    machine: str | None = None,
    command: str = "",
) -> dict[str, Any]:
    """Recount ``flops`` (and, with ``speed``, remeasure ``speed.cpu``) of manifest entries, in place.

    Args:
        manifest_path: the ``weights_manifest.json`` to update (written atomically).
        speed: also measure CPU speed (slow-ish: a few seconds per entry).
        names: entries to update (default: every non-alias entry).
        threads: CPU threads for the speed measurement (see :func:`measure_speed`).
        iters: timed forecasts per entry.
        machine: machine description stored with the speed (default: read from this machine).
        command: the command line stored as provenance.

    Returns:
        ``{name: {"flops": ..., "speed": ...}}`` of what was written.
    """
    from tqdm import tqdm

    path = Path(manifest_path)
    manifest = json.loads(path.read_text(encoding="utf-8"))
    models = manifest["models"]
    todo = names or [n for n in sorted(models) if "alias" not in models[n]]
    for n in todo:
        if n not in models or "alias" in models[n]:
            raise StzooError(f"{n!r} is not a (non-alias) entry of {path}")
    written: dict[str, Any] = {}
    for n in tqdm(todo, desc="zoo stats", unit="model"):
        written[n] = {"flops": count_flops(ZooEntry.from_dict(n, models[n]))}
        if speed:
            written[n]["speed"] = measure_speed(n, threads=threads, iters=iters, machine=machine, command=command)

        def put(current: dict[str, Any], n: str = n, rec: dict[str, Any] = written[n]) -> None:
            current["models"][n]["flops"] = rec["flops"]
            if "speed" in rec:
                current["models"][n].setdefault("speed", {})["cpu"] = rec["speed"]

        # After every entry, so nothing measured is lost on a crash; under the manifest's lock, changing
        # only this entry's fields (the writer of stzoo-maint release)
        update_manifest(path, put)
    return written


# ---- pages ------------------------------------------------------------------------------------
def _speed_sources(models: dict[str, Any]) -> list[str]:
    seen: dict[tuple[str, str], list[str]] = {}
    for name, e in sorted(models.items()):
        s = (e.get("speed") or {}).get("cpu")
        if s:
            seen.setdefault((s["machine"], s["date"]), []).append(name)
    return [
        f"{machine} on {date} (batch 1, float32): {', '.join(f'`{n}`' for n in names)}"
        for (machine, date), names in seen.items()
    ]


def zoo_page(manifest: dict[str, Any] | None = None) -> str:
    """The text of ``docs/zoo.md``: the zoo table with links to the model cards, and its legend."""
    manifest = manifest or load_manifest()
    models = manifest["models"]
    sources = _speed_sources(models)
    metrics = next((e["metrics"] for e in models.values() if e.get("metrics")), None)
    flops = next((e["flops"] for e in models.values() if e.get("flops")), None)
    lines = [
        GENERATED_NOTE,
        "",
        "# Model zoo",
        "",
        "Every row comes from `weights_manifest.json` (shipped inside the package); the tests regenerate "
        "this page and fail if it differs. Click a name for its model card.",
        "",
        zoo_table_markdown(manifest, link_prefix="models/"),
        "",
        f"![{'tau-mmnist'} on a test sequence: input, ground truth, prediction, absolute error]({STRIP_IMAGE})",
        "",
        "## What the columns mean",
        "",
        "- **params**: the parameter count stored in the manifest (a test rebuilds each model and recounts it).",
        "- **GFLOPs**: floating-point operations (10⁹) of *one forward pass* on the native input, batch 1 "
        + (
            f"({'×'.join(map(str, flops['input_shape']))} in, {flops['frames_out']} frames out; for the "
            f"recurrent models that pass runs all {flops['input_shape'][1] + flops['frames_out'] - 1} steps), "
            if flops
            else ""
        )
        + "counted by "
        f"`stzoo-maint zoo-stats` with `{FLOP_COUNTER}`. It counts **2 FLOPs per multiply-accumulate** of "
        "convolutions and matrix products and ignores element-wise work. Tables made with fvcore (as in "
        'many papers and OpenSTL) count one multiply-accumulate as one "FLOP": divide our number by 2 '
        "to compare with them.",
        "- **MSE / MAE / SSIM / PSNR**: measured by `stzoo evaluate` / `stzoo-maint release` on "
        + (f"{metrics['dataset']}, {metrics['sequences']:,} sequences" if metrics else "the stzoo test set")
        + ". MSE and MAE are summed over the pixels of a frame and averaged over frames (the TAU paper's "
        "convention); SSIM and PSNR are per frame, averaged. See each model card for the exact command.",
        "- **CPU seq/s**: sequences forecast per second (10 frames in, 10 out, batch 1, float32), measured "
        "by `stzoo-maint zoo-stats --speed` with `stzoo.tools.bench.measure`; a number from one machine, "
        "comparable only within one run. "
        + ("Measured on: " + "; ".join(sources) + "." if sources else "Not measured yet (–)."),
        "- **trained**: epochs, sequences seen and hardware of the run that produced the weights.",
        "- **–**: not measured / not released yet. Entries named `…-paper` are the papers' configurations, "
        "shipped as architectures (`stzoo.load(name, pretrained=False)`) until weights are trained.",
        "",
    ]
    return "\n".join(lines)


def _fence(obj: Any) -> list[str]:
    return ["```json", json.dumps(obj, indent=2, ensure_ascii=False), "```"]


def _weights_status(e: ZooEntry) -> str:
    if not e.weights:
        return "not released yet"
    return "released, **undertrained** (below the release gate: see Metrics)" if e.undertrained else "released"


def _gate_lines(e: ZooEntry) -> list[str]:
    """The release gate's verdict: the trivial baselines on the same test sequences."""
    g = e.gate
    if not g:
        return []
    cl, mf = g["copy_last"], g["mean_frame"]
    head = (
        "**Undertrained**: these weights do not beat the trivial baselines of their own test set ("
        + "; ".join(g.get("failed") or [])
        + "). `stzoo.load` warns; fine-tune them or pick another entry."
        if not g["passed"]
        else "Release gate: passed (MSE below both trivial baselines, SSIM above copy-last-frame's)."
    )
    return [
        head,
        "",
        f"| baseline, same {g['sequences']:,} sequences | MSE ↓ | SSIM ↑ |",
        "|---|---|---|",
        f"| copy-last-frame | {cl['mse']:.4f} | {cl['ssim']:.4f} |",
        f"| mean frame ({mf['frame']}) | {mf['mse']:.4f} | {mf['ssim']:.4f} |",
        "",
    ]


def model_card_page(name: str, manifest: dict[str, Any] | None = None) -> str:
    """The text of ``docs/models/<name>.md``: everything the manifest knows about one zoo entry."""
    manifest = manifest or load_manifest()
    models = manifest["models"]
    raw = models[name]
    if "alias" in raw:
        target = raw["alias"]
        return "\n".join(
            [
                GENERATED_NOTE,
                "",
                f"# {name}",
                "",
                raw.get("description", ""),
                "",
                f"`{name}` is an alias: it loads [`{target}`]({target}.md), and will follow the zoo's best "
                "model of this kind as new weights are released. Pin the target name for reproducible "
                "results.",
                "",
                "```python",
                "import stzoo",
                "",
                f'p = stzoo.load("{name}")   # = stzoo.load("{target}")',
                "```",
                "",
            ]
        )
    e = ZooEntry.from_dict(name, raw)
    spec = e.input
    aliases = sorted(n for n, v in models.items() if v.get("alias") == name)
    flops = e.flops
    flops_text = (
        f"{format_gflops(e)} GFLOPs ({flops['flops'] / 2e9:.2f} GMACs), input "
        f"{'×'.join(map(str, flops['input_shape']))}, {flops['frames_out']} frames out"
        if flops
        else "–"
    )
    value_range = "[" + ", ".join(f"{v:g}" for v in spec.value_range) + "]"
    # the same Hub metadata as the README.md that `stzoo-maint hub push` uploads (MkDocs reads it as page meta)
    lines = [
        front_matter(card_metadata(e.to_dict(with_name=True))),
        GENERATED_NOTE,
        "",
        f"# {name}",
        "",
        e.description,
        "",
        "| | |",
        "|---|---|",
        f"| architecture | `{e.architecture}` ([architectures](../architectures.md)) |",
        f"| parameters | {e.parameters:,} |",
        f"| compute | {flops_text} |",
        f"| input | {spec.frames_in} frames in → {spec.frames_out} out, {spec.channels} channel(s), "
        f"trained at {spec.height}×{spec.width}, values in {value_range}"
        + (f" ({e.normalization})" if e.normalization else "")
        + " |",
        f"| weights | {_weights_status(e)} |",
        f"| CPU speed | {format_speed(e)} seq/s |" if (e.speed or {}).get("cpu") else "| CPU speed | – |",
        f"| license | {e.license} |",
    ]
    if aliases:
        lines.append(f"| aliases | {', '.join(f'[`{a}`]({a}.md)' for a in aliases)} |")
    lines += ["", "## Use", "", "```python", "import stzoo", ""]
    if e.weights:
        lines += [
            f'p = stzoo.load("{name}")          # verified weights (sha256) from the release',
            "future = p.predict(frames)            # frames: T×H×W uint8 or float in [0, 1]",
        ]
    else:
        lines += [
            f'p = stzoo.load("{name}", pretrained=False)   # the architecture, randomly initialised',
            '# or your own trained file: stzoo.load(..., weights="model.safetensors")',
        ]
    lines += [
        "```",
        "",
        "Command line: `stzoo info "
        + name
        + "`"
        + (f", `stzoo predict {name} --input clip.gif --output future.gif --strip strip.png`" if e.weights else "")
        + ". See "
        "[predicting](../predicting.md).",
        "",
        "## Config",
        "",
        *_fence(dict(e.config)),
        "",
    ]
    w = e.weights
    lines += ["## Weights", ""]
    if w:
        lines += [
            f"- file: `{w.filename}` ({w.size:,} bytes, {w.dtype}, safetensors)",
            f"- sha256: `{w.sha256}` (checked before every load)",
        ]
        if w.hub:
            h = w.hub
            lines.append(f"- Hugging Face Hub: `{h.repo_id}`, file `{h.filename}`, revision `{h.revision}`")
        lines += ["", "Offline use, mirrors and the cache: [hub](../hub.md)."]
    else:
        lines.append("Not released yet. Train them with `stzoo train " + name + " --out runs/" + name + "`.")
    lines += ["", "## Metrics", ""]
    m = e.metrics
    if m:
        lines += [
            f"On {m['dataset']} ({m['split']} split, {m['sequences']:,} sequences):",
            "",
            "| MSE ↓ | MAE ↓ | SSIM ↑ | PSNR ↑ |",
            "|---|---|---|---|",
            f"| {m['mse']:.4f} | {m['mae']:.4f} | {m['ssim']:.4f} | {m['psnr']:.4f} |",
            "",
        ]
        if m.get("command"):
            lines += [f"Measured with `{display_command(m['command'])}`.", ""]
        lines += _gate_lines(e) + _baseline_lines(manifest, e, m) + _bf16_lines(name, e)
    else:
        lines += ["Not measured (no released weights).", ""]
    lines += _forecast_lines(name, e)
    speed = e.speed or {}
    lines += ["## Speed", ""]
    if speed:
        lines += [
            "| device | seq/s | latency (ms) | batch | dtype | threads | machine | date |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for dev, s in sorted(speed.items()):
            lines.append(
                f"| {dev} | {s['seq_per_s']:g} | {s['latency_ms']:g} | {s['batch']} | {s['dtype']} | "
                f"{s.get('threads', '–')} | {s['machine']} | {s['date']} |"
            )
        cmds = sorted({display_command(s["command"]) for s in speed.values() if s.get("command")})
        lines += [""] + [f"Measured with `{c}`." for c in cmds] + ([""] if cmds else [])
    else:
        lines += ["Not measured yet.", ""]
    t = e.training
    lines += ["## Training", ""]
    if t:
        for key, label in (
            ("epochs", "epochs"),
            ("steps", "steps"),
            ("hardware", "hardware"),
            ("wall_clock_s", "wall clock (s)"),
            ("torch", "torch"),
            ("date", "date"),
        ):
            if key in t:
                lines.append(f"- {label}: {t[key]}")
        lines += [f"- command: `{display_command(t['command'])}`"] + ([f"- note: {t['note']}"] if t.get("note") else [])
        lines += ["", "Recipe:", "", *_fence(t["recipe"]), ""]
    else:
        lines += ["Not trained yet.", ""]
    return "\n".join(lines)


def _baseline_lines(manifest: dict[str, Any], e: ZooEntry, m: Mapping[str, Any]) -> list[str]:
    """The copy-last-frame baseline measured on the same test set as the entry's metrics, if recorded."""
    key = get_dataset(e.dataset or "moving_mnist").baseline_key
    base = ((manifest.get("baselines") or {}).get(key) or {}).get("metrics")
    if not base or (base.get("dataset"), base.get("sequences")) != (m.get("dataset"), m.get("sequences")):
        return []  # only a baseline measured on exactly the same sequences is put beside the model
    ratio = f" The model's MSE is {base['mse'] / m['mse']:.2f}× lower." if m.get("mse") else ""
    return [
        f"Copying the last input frame scores MSE {base['mse']:.4f}, MAE {base['mae']:.4f}, "
        f"SSIM {base['ssim']:.4f}, PSNR {base['psnr']:.4f} on {base['sequences']:,} sequences of the same "
        f"test set.{ratio}",
        "",
    ]


def _bf16_lines(name: str, e: ZooEntry) -> list[str]:
    """What ``stzoo.load(name, dtype="bfloat16")`` changes in the test metrics, where measured."""
    b = e.bf16
    if not b:
        return []
    f32, b16 = b["float32"], b["bfloat16"]
    change = f"{b['mse_change_pct']:+.2f} %" if b.get("mse_change_pct") is not None else "–"
    return [
        f'With `stzoo.load("{name}", dtype="bfloat16")` on the first {b["sequences"]:,} sequences of '
        f"{b['dataset']}: MSE {b16['mse']:.4f} against "
        f"{f32['mse']:.4f} in float32 ({change}), SSIM {b16['ssim']:.4f} against {f32['ssim']:.4f} "
        f"(measured on {b['cpu']} with `{display_command(b['command'])}`; when to pick bf16: "
        "[benchmarks](../benchmarks.md)).",
        "",
    ]


#: lead times a model card's rollout table shows (those up to the horizon, and the horizon itself)
ROLLOUT_ROWS = (1, 5, 10, 15, 20, 25, 30, 40, 50, 60)


def _forecast_lines(name: str, e: ZooEntry) -> list[str]:
    """The card's forecast strip and rollout table, where the manifest records them."""
    strip, roll = e.strip, e.rollout
    if not strip and not roll:
        return []
    lines = ["## Forecast", ""]
    if strip:
        two = e.input.channels == 2
        lines += [
            f"![{name}: input, ground truth, prediction, absolute error](../{strip['path']})",
            "",
            f"Test sequence {strip['sequence']} of {strip['dataset']}: input, ground truth, prediction and "
            "|error|."
            + (
                " U and V side by side, each stretched by the ground truth's own minimum and maximum; "
                "the error is in units of those displayed ranges."
                if two
                else ""
            ),
            "",
        ]
    if roll:
        h, fo = roll["horizon"], e.input.frames_out
        rows = [t for t in ROLLOUT_ROWS if t < h] + [h]
        lines += [
            f"Rollout to {h} frames ({h // fo}× the {fo} it was trained to predict; beyond {fo} the model's own "
            f"predictions are fed back in) on the first {roll['sequences']:,} sequences of {roll['dataset']}. "
            "MSE per frame at each lead time:",
            "",
            "| lead time | model MSE | copy-last MSE | copy-last ÷ model |",
            "|---|---|---|---|",
        ]
        for t in rows:
            mse, base = roll["mse"][t - 1], roll["copy_last_mse"][t - 1]
            lines.append(
                f"| {t} | {mse:.2f} | {base:.2f} | {base / mse:.2f} |"
                if mse > 0
                else f"| {t} | {mse:.2f} | {base:.2f} | – |"
            )
        lines += ["", f"Measured with `{display_command(roll['command'])}`.", ""]
    return lines


def generated_docs(manifest: dict[str, Any] | None = None) -> dict[str, str]:
    """Every generated docs file: ``{path relative to docs/: text}``."""
    manifest = manifest or load_manifest()
    pages = {"zoo.md": zoo_page(manifest), "openstl-zoo.md": openstl_zoo_page()}
    for name in sorted(manifest["models"]):
        pages[f"models/{name}.md"] = model_card_page(name, manifest)
    return pages


OPENSTL_GENERATED_NOTE = (
    "<!-- Generated from stzoo/convert/openstl/catalog.json by `stzoo-maint zoo-table --docs docs`. "
    "Do not edit by hand: rebuild the catalogue (scripts/build_openstl_catalog.py) and regenerate. -->"
)


def _prose(text: str) -> str:
    """Catalogue text as Markdown: ``<placeholders>``, ``*`` and ``_`` shown literally."""
    return str(text).replace("<", "&lt;").replace(">", "&gt;").replace("*", "\\*").replace("_", "\\_")


def _md(text: str) -> str:
    """A table cell: like :func:`_prose`, with pipes escaped and newlines folded."""
    return _prose(text).replace("|", "\\|").replace("\n", " ")


def _value(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, float):
        return f"{v:g}" if abs(v) >= 1e-3 or v == 0 else f"{v:.5f}"
    return _md(v)


def _cells(reported: Mapping[str, Any]) -> list[tuple[str, str]]:
    """A table row's (column, text as OpenSTL wrote it), in the table's order (from ``columns`` if no ``cells``)."""
    if "cells" in reported:
        return [(k, v) for k, v in reported["cells"]]
    return [(k, _value(v)) for k, v in reported["columns"].items()]


def _normalisation_text(norm: Mapping[str, Any]) -> str:
    kind = norm["kind"]
    if kind == "scale":
        return f"model input = value / {norm['scale']:g}"
    if kind == "minmax":
        return f"model input = (value − {norm['min']:g}) / ({norm['max']:g} − {norm['min']:g})"
    if kind == "standardise":
        return f"model input = (value − mean) / std, mean {norm['mean']}, std {norm['std']}"
    return "computed at run time from the training data (below)"


def openstl_zoo_page(catalog: dict[str, Any] | None = None) -> str:
    """The text of ``docs/openstl-zoo.md``: every checkpoint of OpenSTL's published zoo, from the catalogue.

    Args:
        catalog: a catalogue in the shape of :func:`stzoo.convert.openstl.catalog.load_catalog` (default: the
            shipped one).
    """
    from stzoo.convert.openstl.catalog import load_catalog, stzoo_arch

    cat = catalog if catalog is not None else load_catalog()
    src, datasets, ckpts = cat["source"], cat["datasets"], cat["checkpoints"]
    arch = {stem: stzoo_arch(c["openstl_method"], c["model_type"]) for stem, c in ckpts.items()}
    n_ok = sum(a is not None for a in arch.values())
    lines = [
        OPENSTL_GENERATED_NOTE,
        "",
        "# OpenSTL's zoo in stzoo",
        "",
        f"[OpenSTL](https://github.com/{src['repo']}) ({src['license']}) publishes **{len(ckpts)} trained "
        f"checkpoints** on its GitHub releases ({src.get('links', len(ckpts))} download links in its model-zoo "
        "tables; a file listed both in a method table and in the MetaFormer table of the same dataset is one "
        f"checkpoint). stzoo's catalogue of them was read from OpenSTL's repository at `{src['ref']}` "
        f"(`{src['commit']}`): each file's release tag, the config file it was trained with, its dataset's "
        "conventions and the numbers OpenSTL reports for it.",
        "",
        f"**{n_ok} of the {len(ckpts)}** are files of a method stzoo has an importer for "
        "([Importing OpenSTL checkpoints](openstl.md))"
        + (
            "; the others need a method stzoo does not implement yet (last column of the overview)"
            if n_ok < len(ckpts)
            else " (last column of the overview)"
        )
        + ". Every file is named `openstl:<file stem>`, the stem exactly as OpenSTL names the file.",
        "",
        "> **Metrics on this page are reported by OpenSTL.** Every MSE, MAE, SSIM, PSNR, LPIPS, RMSE, Params, "
        "FLOPs and FPS below is copied from OpenSTL's tables (`docs/en/model_zoos/*_benchmarks.md`), measured by "
        "OpenSTL on its hardware with its conventions. stzoo has not re-measured them here, and never mixes them "
        "with the metrics it measures itself ([Model zoo](zoo.md)).",
        "",
        "```python",
        "from stzoo.convert.openstl.catalog import catalog_entries, checkpoint_entry",
        "",
        'entry = checkpoint_entry("mmnist_tau_one_ep200")   # tag, url, config, dataset, reported metrics, notes',
        'loadable = catalog_entries(dataset="taxibj", loadable=True)',
        "```",
        "",
        "## Overview: method × dataset",
        "",
        "Number of published files per OpenSTL method (the table's label) and dataset.",
        "",
    ]
    order = sorted(datasets, key=lambda d: (datasets[d].get("display_order", 0), d))
    labels: dict[str, dict[str, int]] = {}
    label_arch: dict[str, set[str | None]] = {}
    for stem, c in ckpts.items():
        key = c["openstl_method"] if c["openstl_method"] != "SimVP" else f"SimVP ({c['model_type']})"
        labels.setdefault(key, {}).setdefault(c["dataset"], 0)
        labels[key][c["dataset"]] += 1
        label_arch.setdefault(key, set()).add(arch[stem])
    lines.append("| OpenSTL method | " + " | ".join(f"[{d}](#{d})" for d in order) + " | stzoo |")
    lines.append("|---|" + "---:|" * len(order) + "---|")
    for key in sorted(labels, key=lambda k: (None in label_arch[k], k.lower())):
        archs = sorted(a for a in label_arch[key] if a)
        stz = ", ".join(f"`{a}`" for a in archs) if archs else "not yet"
        cells = [str(labels[key].get(d, "")) for d in order]
        lines.append(f"| {key} | " + " | ".join(cells) + f" | {stz} |")
    lines += ["", "## Datasets and their checkpoints", ""]
    for d in order:
        ds = datasets[d]
        units = ds["natural_units"]
        vr = ds["value_range"]
        lines += [
            f"### {d}",
            "",
            f"**{ds.get('title', d)}** — OpenSTL `dataname` `{ds['openstl_dataname']}`"
            + (f", stzoo data registry `{ds['registry_key']}`" if ds.get("registry_key") else "")
            + ".",
            "",
            "| frames in → out | channels × height × width | natural units | model sees | normalisation | loader |",
            "|---|---|---|---|---|---|",
            f"| {ds['frames_in']} → {ds['frames_out']} | {ds['channels']} × {ds['height']} × {ds['width']}"
            + (f" ({', '.join(ds['channel_names'])})" if ds.get("channel_names") else "")
            + f" | {_md(units)} | {f'[{vr[0]:g}, {vr[1]:g}]' if vr else 'standardised values'} | "
            f"{_md(_normalisation_text(ds['normalisation']))} | `{ds['loader']}` |",
            "",
            _prose(ds["notes"]),
            "",
        ]
        if ds["normalisation"]["kind"] == "runtime":
            lines += [f"Normalisation: {_prose(ds['normalisation']['how'])}", ""]
        rows = {s: c for s, c in sorted(ckpts.items()) if c["dataset"] == d}
        cols: list[str] = []
        for c in rows.values():
            cols += [k for k, _ in _cells(c["reported"]) if k not in cols]
        lines += [
            f"Checkpoints — numbers *reported by OpenSTL* ({', '.join(cols)}):",
            "",
            "| `openstl:` file stem | row label | setting | stzoo arch | config | " + " | ".join(cols) + " |",
            "|---|---|---|---|---|" + "---:|" * len(cols),
        ]
        noted = []
        for stem, c in rows.items():
            a = arch[stem]
            cfg = f"`{c['config_file']}`" if c["config_file"] else "none published"
            if c.get("config_ref") and c.get("config_ref") != src["ref"]:
                cfg += f" (at {c['config_ref']})"
            mark = " †" if c["notes"] else ""
            text = dict(_cells(c["reported"]))
            vals = [_md(text.get(k, "")) for k in cols]
            stz = f"`{a}`" if a else f"not yet ({c['openstl_method']})"
            lines.append(
                f"| `{stem}`{mark} | {_md(c['label'])} | {_md(c['setting'] or '')} | {stz} | {cfg} | "
                + " | ".join(vals)
                + " |"
            )
            if c["notes"]:
                noted.append(f"- `{stem}`: {_prose(c['notes'])}")
        if noted:
            lines += ["", "† Notes from the catalogue:", "", *noted]
        lines.append("")
    lines += [
        "## Where these facts come from",
        "",
        "`scripts/build_openstl_catalog.py` reads a git mirror of OpenSTL (no network) and writes "
        "`stzoo/convert/openstl/catalog.json`: the tables for the files and reported numbers, the config files "
        "(parsed, never executed) merged with `openstl/datasets/dataset_constant.py` the way OpenSTL's "
        "`get_dataset` does, and the data loaders for each dataset's scaling. Where a file's name and its config "
        "disagree, or OpenSTL publishes no config, the entry's notes say so; the converter then lets the "
        "checkpoint's tensor shapes decide. Cite OpenSTL (Tan et al., *OpenSTL: A Comprehensive Benchmark of "
        "Spatio-Temporal Predictive Learning*, NeurIPS 2023 Datasets and Benchmarks) and the method's paper when "
        "you use these weights.",
        "",
    ]
    return "\n".join(lines)


def _generated_files_on_disk(docs: Path) -> list[str]:
    folder = docs / "models"
    if not folder.is_dir():
        return []
    return sorted(f"models/{p.name}" for p in folder.glob("*.md") if _is_generated(p.read_text(encoding="utf-8")))


def _is_generated(text: str) -> bool:
    """Whether a page was written by :func:`write_docs`: the note opens it, or follows its front matter."""
    if text.startswith("---\n"):
        end = text.find("\n---\n", 4)
        text = text[end + len("\n---\n") :] if end >= 0 else text
    return text.startswith(GENERATED_NOTE)


def stale_docs(docs_dir: str | os.PathLike, manifest: dict[str, Any] | None = None) -> list[str]:
    """Generated docs files that are missing, differ from the manifest, or belong to no entry."""
    docs = Path(docs_dir)
    pages = generated_docs(manifest)
    stale = [
        rel
        for rel, text in pages.items()
        if not (docs / rel).is_file() or (docs / rel).read_text(encoding="utf-8") != text
    ]
    return stale + [rel for rel in _generated_files_on_disk(docs) if rel not in pages]


def write_docs(docs_dir: str | os.PathLike, manifest: dict[str, Any] | None = None) -> list[Path]:
    """Write the generated pages into ``docs_dir`` (and delete generated cards of removed entries).

    Returns:
        The files written or deleted (unchanged files are left alone).
    """
    docs = Path(docs_dir)
    pages = generated_docs(manifest)
    changed = []
    for rel, text in pages.items():
        path = docs / rel
        if path.is_file() and path.read_text(encoding="utf-8") == text:
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        changed.append(path)
    for rel in _generated_files_on_disk(docs):
        if rel not in pages:
            (docs / rel).unlink()
            changed.append(docs / rel)
    return changed
