"""`stzoo predict`, `stream`, `export`: forecasts from a clip, a live stream, and an ONNX file."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from stzoo.cli.common import (
    add_device,
    add_dtype,
    add_model_source,
    add_random,
    add_weights,
    count,
    finite_float,
    positive_int,
)
from stzoo.errors import StzooError

__all__ = ["register"]


def _cmd_predict(args: argparse.Namespace) -> int:
    import re
    import warnings

    from stzoo.frames import FramesWarning

    if not (args.output or args.strip or args.animation):
        raise StzooError(
            "nothing to write: give --output (OUT.gif, OUT.mp4 / .avi / .webm, OUT.npy or a folder "
            "OUT/ of PNGs), --strip OUT.png and/or --animation OUT.gif"
        )

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("always", FramesWarning)  # each conversion said (main prints them as lines)
            return _predict_to_files(args)
    except StzooError as exc:  # the Python API's `layout=` is --layout here
        text = re.sub(r"\blayout='([A-Za-z]+)'", r"--layout \1", str(exc))
        raise StzooError(re.sub(r"\blayout=", "--layout", text)) from None


def _predict_to_files(args: argparse.Namespace) -> int:
    """`stzoo predict`: every output is checked before the model is loaded or run."""
    from stzoo.api import load
    from stzoo.frames import (
        check_output_path,
        frames_layout,
        read_frames,
        to_thwc,
        write_frames,
    )

    kind = check_output_path(args.output) if args.output else None  # an unknown suffix fails here
    p = load(
        args.name,
        pretrained=not args.random,
        weights=args.weights,
        device=args.device,
        impl=args.impl,
        dtype=args.dtype,
    )
    frames = read_frames(args.input)  # images: T×H×W×C uint8, grey or RGB as stored; arrays: as stored
    layout = frames_layout(frames, channels=p.spec.channels, layout=args.layout)
    dims = dict(zip(layout, frames.shape))
    images = kind in ("gif", "video", "folder") or args.strip or args.animation
    if images and dims.get("B", 1) > 1:
        raise StzooError(
            f"{args.input} holds a batch of {dims['B']} sequences (layout {layout}): only --output "
            f"OUT.npy writes a batch; GIFs, videos, PNG folders, --strip and --animation show one"
        )
    if kind == "video":
        check_output_path(args.output, height=dims["H"], width=dims["W"])
    future = p.predict(frames, horizon=args.horizon, layout=layout)
    if args.output:
        write_frames(future, args.output, fps=args.fps, layout=layout)
        print(
            f"wrote {future.shape[layout.index('T')]} predicted frames to {args.output} "
            f"({'a folder of PNGs' if kind == 'folder' else kind}, the input's layout {layout})"
        )
    if args.strip or args.animation:
        from stzoo.frames import viz

        seq, fut = to_thwc(frames, layout), to_thwc(future, layout)
        used = seq[-p.spec.frames_in :]  # the frames the model read
        start = len(seq) - len(used) + 1
        truth = None
        if args.truth:
            raw = read_frames(args.truth)
            truth = to_thwc(raw, frames_layout(raw, channels=p.spec.channels), channels=fut.shape[-1])
            if len(truth) < len(fut):
                raise StzooError(
                    f"--truth holds {len(truth)} frames but {len(fut)} were predicted; give at "
                    "least as many true future frames (or a shorter --horizon)"
                )
            truth = truth[: len(fut)]
        if args.strip:
            viz.save_strip(used, fut, args.strip, target=truth, start=start)
            print(
                f"wrote a strip of {len(used)} input and {len(fut)} predicted frames"
                f"{' (with ground truth and error)' if truth is not None else ''} to {args.strip}"
            )
        if args.animation:
            viz.save_gif(used, fut, args.animation, target=truth, fps=args.fps, start=start)
            print(f"wrote an annotated animation ({len(used) + len(fut)} frames) to {args.animation}")
    return 0


def _cmd_stream(args: argparse.Namespace) -> int:
    import time

    import numpy as np

    from stzoo.api import load
    from stzoo.frames import read_frames, write_gif
    from stzoo.inference.forecaster import Forecaster

    if args.every < 1:
        raise StzooError(f"--every must be >= 1, got {args.every}")
    p = load(args.name, pretrained=not args.random, weights=args.weights, device=args.device, impl=args.impl)
    frames = read_frames(args.input)  # grey or RGB as stored: the Forecaster converts (and says so) as predict does
    f = Forecaster(p, horizon=args.horizon, context=args.context, min_frames=args.min_frames)
    out = Path(args.out) if args.out else None
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
    print(
        f"streaming {len(frames)} frames of {args.input} through {p.name or args.name} "
        f"(context={f.context}, horizon={f.horizon}, first forecast after {f.min_frames} frame(s))"
    )
    records, push_s, forecast_s = [], 0.0, 0.0
    for t, frame in enumerate(frames, start=1):
        start = time.perf_counter()
        f.push(frame)
        push_s += time.perf_counter() - start
        if not f.ready or (t - f.min_frames) % args.every:
            continue
        start = time.perf_counter()
        future = f.forecast()
        forecast_s += time.perf_counter() - start
        observed = frames[t : t + f.horizon]  # the frames that really came next, where the input has them
        rec: dict = {"after_frame": t, "horizon": f.horizon}
        line = f"after frame {t}: forecast of frames {t + 1}-{t + f.horizon}"
        if len(observed):  # MSE / SSIM per frame as in the zoo table (stzoo.metrics; Forecaster.compare)
            score = f.compare(observed)
            rec.update(mse=score["mse"], ssim=score["ssim"], frames_compared=score["frames"])
            line += (
                f"; vs the {score['frames']} observed frame(s): MSE {score['mse']:.2f} per frame (zoo-table "
                f"convention), SSIM {score['ssim']:.3f}"
            )
        if out is not None:
            target = out / f"forecast_{t:06d}.{args.save}"
            if args.save == "npy":
                np.save(target, future)
            else:
                write_gif(future, target, fps=args.fps)
            rec["file"] = target.name
            line += f" -> {target}"
        records.append(rec)
        print(line)
    if not records:
        raise StzooError(
            f"{args.input} has {len(frames)} frame(s), fewer than the {f.min_frames} this model "
            f"needs before its first forecast"
        )
    summary = {
        "model": p.name or args.name,
        "input": str(args.input),
        "frames": len(frames),
        "context": f.context,
        "horizon": f.horizon,
        "forecasts": records,
        "mean_push_ms": 1e3 * push_s / len(frames),
        "mean_forecast_ms": 1e3 * forecast_s / len(records),
        "mse_convention": "squared error summed over the C·H·W values of a frame in [0, 1], averaged over "
        "frames (the zoo table's; see docs/predicting.md)",
    }
    if out is not None:
        (out / "forecasts.json").write_text(json.dumps(summary, indent=2), encoding="utf-8")
    print(
        f"{len(records)} forecast(s) from {len(frames)} frames; mean push {summary['mean_push_ms']:.2f} ms, "
        f"mean forecast {summary['mean_forecast_ms']:.2f} ms" + (f"; wrote {out}" if out is not None else "")
    )
    return 0


def _cmd_export(args: argparse.Namespace) -> int:
    from stzoo.api import load

    p = load(args.name, pretrained=not args.random, weights=args.weights)
    result = p.export_onnx(
        args.out,
        batch=args.batch,
        dynamic_batch=not args.static_batch,
        opset=args.opset,
        exporter=args.exporter,
        height=args.height,
        width=args.width,
        verify=not args.no_verify,
    )
    shape = lambda s: "×".join(str(d) for d in s)  # noqa: E731
    print(
        f"wrote {result.path}: ONNX opset {result.opset} ({result.exporter} exporter), "
        f"input 'frames' {shape(result.input_shape)} → output 'forecast' {shape(result.output_shape)} (float32)"
    )
    if result.max_abs_diff is not None:
        print(
            f"verified with onnxruntime (CPU) at batch {', '.join(map(str, result.checked_batches))}: "
            f"max |onnx - torch| = {result.max_abs_diff:.2e}"
        )
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    """Add `predict`, `stream` and `export` to the subcommands ``sub``."""
    p = sub.add_parser(
        "predict",
        help="forecast the frames that follow a clip (GIF, video, image folder, .npy)",
        description="Forecast the frames that follow the clip --input and write them as the name "
        "of --output asks (GIF, video, .npy, folder of PNGs), in the input's layout and channels. "
        "RGB clips for a grey model are converted to their luminance (and back), with a warning. "
        "See docs/predicting.md.",
    )
    p.add_argument("name", help="the model: a zoo name (stzoo list), a save_pretrained folder or hf-hub:owner/repo")
    p.add_argument(
        "--input",
        required=True,
        metavar="CLIP",
        help="GIF / APNG, folder of images, video (.mp4, .avi, ... with the video extra) or .npy / .npz "
        "(T×H×W, T×H×W×C, T×C×H×W or batched) (required)",
    )
    p.add_argument(
        "--output",
        default=None,
        metavar="OUT",
        help="the forecast, written as its name asks: OUT.gif; OUT.mp4, .avi or .webm (video extra: "
        'pip install -e ".[video]"); OUT.npy (the input\'s layout and dtype); or a folder of PNGs '
        "(OUT/, a name without a suffix, or an existing folder); any other suffix is refused before "
        "the model runs (default: none)",
    )
    p.add_argument(
        "--strip",
        default=None,
        metavar="OUT.png",
        help="a paper-style strip: input | (ground truth | prediction | |error| with --truth) (default: none)",
    )
    p.add_argument(
        "--animation",
        default=None,
        metavar="OUT.gif",
        help="an annotated GIF: the input, then the forecast (beside the truth with --truth) (default: none)",
    )
    p.add_argument(
        "--truth",
        default=None,
        metavar="CLIP",
        help="the frames that really followed (GIF / folder / video / .npy), for the ground-truth and "
        "error rows of --strip and --animation (default: none)",
    )
    p.add_argument(
        "--horizon",
        type=positive_int,
        default=None,
        metavar="N",
        help="frames to forecast; beyond the model's native output it rolls out on its own "
        "predictions (default: the model's frames_out)",
    )
    p.add_argument(
        "--layout",
        type=str.upper,
        default=None,
        choices=("THW", "THWC", "TCHW", "BTHW", "BTHWC", "BTCHW"),
        help="axis order of an array --input whose shape leaves it ambiguous; images are always "
        "T×H×W×C (default: inferred from the shape)",
    )
    add_weights(p)
    add_random(p)
    add_device(p, "cpu")
    add_dtype(
        p,
        choices=("float32", "bfloat16"),
        default="float32",
        help="precision of the weights and the forecast: float32 is exact; bfloat16 is faster on "
        "GPUs and on CPUs with native bf16, and slightly less exact (default: float32)",
    )
    p.add_argument(
        "--fps",
        type=finite_float(0.0, 1000.0, open_lo=True),
        default=5.0,
        help="frames per second of GIF and video outputs and of --animation (default: 5)",
    )
    p.add_argument(
        "--impl",
        choices=["auto", "reference", "fused"],
        default="auto",
        help="reference modules or their fused fast twins (auto = fused where one exists); see "
        "docs/kernels.md (default: auto)",
    )
    p.set_defaults(func=_cmd_predict)

    p = sub.add_parser(
        "stream",
        help="feed a video frame by frame and print rolling forecasts",
        description="Push the frames of a video (GIF, folder of images, .npy, or MP4 & co. with "
        'the video extra: pip install -e ".[video]") one at a time through a stzoo.Forecaster, '
        "as a live source would, and "
        "forecast every K frames once enough context has arrived. Each forecast is compared with "
        "the frames that really followed, where the input has them. See docs/deploy.md.",
    )
    add_model_source(p)
    p.add_argument(
        "--input", required=True, metavar="VIDEO", help="GIF, folder of images, .npy, or a video file (required)"
    )
    p.add_argument(
        "--horizon",
        type=positive_int,
        default=None,
        metavar="N",
        help="frames per forecast (default: the model's frames_out)",
    )
    p.add_argument("--every", type=positive_int, default=1, metavar="K", help="forecast every K frames (default: 1)")
    p.add_argument(
        "--context",
        choices=["stream", "window"],
        default=None,
        help="carry the recurrent state over the whole stream, or recompute the last frames_in "
        "frames (default: stream for recurrent models, window for TAU)",
    )
    p.add_argument(
        "--min-frames",
        type=positive_int,
        default=None,
        metavar="N",
        help="frames before the first forecast (default: the fewest the model needs)",
    )
    p.add_argument(
        "--out",
        default=None,
        metavar="DIR",
        help="save every forecast and forecasts.json here (default: print only, save nothing)",
    )
    p.add_argument(
        "--save", choices=["gif", "npy"], default="gif", help="file type of the forecasts saved in --out (default: gif)"
    )
    p.add_argument(
        "--fps",
        type=finite_float(0.0, 1000.0, open_lo=True),
        default=5.0,
        help="frames per second of saved GIFs (default: 5)",
    )
    add_device(p, "the model's, cpu")
    p.add_argument(
        "--impl",
        choices=["auto", "reference", "fused"],
        default="auto",
        help="reference modules or their fused fast twins; auto = fused (default: auto)",
    )
    p.set_defaults(func=_cmd_stream)

    p = sub.add_parser(
        "export",
        help="export a model to ONNX (native lengths, dynamic batch)",
        description="Write the model as an ONNX file mapping frames (B×frames_in×C×H×W float32 in "
        "[0, 1]) to forecast (B×frames_out×C×H×W); recurrent models are unrolled. Only the batch "
        "axis is dynamic. The file is checked with onnxruntime against torch before it is kept. "
        'Needs the onnx extra (in a checkout: pip install -e ".[onnx]"). See docs/deploy.md.',
    )
    add_model_source(p)
    p.add_argument("--format", choices=["onnx"], default="onnx", help="file format; only onnx so far (default: onnx)")
    p.add_argument("--out", required=True, metavar="FILE", help="the .onnx file to write (required)")
    p.add_argument(
        "--batch",
        type=positive_int,
        default=1,
        metavar="N",
        help="example batch size, the only one accepted with --static-batch (default: 1)",
    )
    p.add_argument(
        "--static-batch",
        action="store_true",
        help="fix the batch size instead of leaving it dynamic (default: dynamic)",
    )
    p.add_argument("--height", type=positive_int, default=None, help="frame height (default: the training size)")
    p.add_argument("--width", type=positive_int, default=None, help="frame width (default: the training size)")
    p.add_argument(
        "--opset", type=count(1, 100), default=None, help="ONNX opset (default: the exporter's, 20 for dynamo)"
    )
    p.add_argument(
        "--exporter",
        choices=["dynamo", "torchscript"],
        default="dynamo",
        help="torch.onnx exporter: dynamo (torch.export based) or the older torchscript one (default: dynamo)",
    )
    p.add_argument(
        "--no-verify", action="store_true", help="skip the onnxruntime check against torch (default: verify)"
    )
    p.set_defaults(func=_cmd_export)
