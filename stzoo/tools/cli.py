"""The maintainers' command line, ``stzoo-maint COMMAND`` (or ``python -m stzoo.tools COMMAND``): release a run
into the manifest, regenerate the zoo table and docs pages, measure FLOPs and speed, publish on the Hub.

These commands write the package's own files (manifest, weights, README, docs) or a Hub repo; users' commands
are in ``stzoo`` (:mod:`stzoo.cli.main`). The shared options come from :mod:`stzoo.cli.common`.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from stzoo.cli.common import PACKAGE_DIR, add_dataset_options, add_threads, dataset_options, set_threads
from stzoo.cli.main import run
from stzoo.errors import StzooError

__all__ = ["PROG", "build_parser", "main"]

#: the console script (pyproject.toml); ``python -m stzoo.tools`` runs the same
PROG = "stzoo-maint"


def _cmd_release(args: argparse.Namespace) -> int:
    from stzoo.tools.release import release_to_manifest

    set_threads(args)
    entry = release_to_manifest(  # the weights folder is stzoo.zoo.hub.packaged_weights_dir()
        args.name,
        args.run,
        weights_dir=args.weights_dir or PACKAGE_DIR / "weights",
        manifest_path=args.manifest or PACKAGE_DIR / "weights_manifest.json",
        dataset_options=dataset_options(args),
        eval_sequences=args.sequences,
        half=args.half,
        command=args.command_line,
        prior_runs=args.prior_run,
        force=args.force,
    )
    print(json.dumps({k: entry[k] for k in ("name", "weights", "metrics")}, indent=2))
    return 0


def _cmd_gate(args: argparse.Namespace) -> int:
    from stzoo.tools.release import apply_gate

    set_threads(args)
    verdicts = apply_gate(
        args.manifest or PACKAGE_DIR / "weights_manifest.json",
        names=args.names or None,
        dataset_options=dataset_options(args),
        command=args.command_line,
        progress=not args.quiet,
    )
    for name, gate in verdicts.items():
        cl, mf = gate["copy_last"], gate["mean_frame"]
        verdict = "passes" if gate["passed"] else "UNDERTRAINED: " + "; ".join(gate["failed"])
        print(
            f"{name}: {verdict} (copy-last MSE {cl['mse']:.2f} SSIM {cl['ssim']:.4f}, "
            f"mean frame MSE {mf['mse']:.2f}, {gate['sequences']} sequences)"
        )
    return 0


TABLE_START, TABLE_END = "<!-- zoo-table:start -->", "<!-- zoo-table:end -->"


def _cmd_zoo_table(args: argparse.Namespace) -> int:
    from stzoo.zoo.manifest import zoo_table_markdown

    table = zoo_table_markdown()
    if args.docs:
        from stzoo.tools.docs_gen import write_docs

        changed = write_docs(args.docs)
        print(f"docs pages generated from the manifest in {args.docs}: {len(changed)} file(s) changed")
        for path in changed:
            print(f"  {path}")
    if not args.write:
        if not args.docs:
            print(table)
        return 0
    path = Path(args.write)
    text = path.read_text(encoding="utf-8")
    if TABLE_START not in text or TABLE_END not in text:
        raise StzooError(f"{path} has no {TABLE_START} ... {TABLE_END} markers to put the table between")
    head, rest = text.split(TABLE_START, 1)
    tail = rest.split(TABLE_END, 1)[1]
    path.write_text(f"{head}{TABLE_START}\n{table}\n{TABLE_END}{tail}", encoding="utf-8")
    print(f"updated the zoo table in {path}")
    return 0


def _cmd_zoo_stats(args: argparse.Namespace) -> int:
    from stzoo.tools.docs_gen import update_manifest_stats

    manifest = args.manifest or PACKAGE_DIR / "weights_manifest.json"
    written = update_manifest_stats(
        manifest,
        speed=args.speed,
        names=args.names or None,
        threads=args.threads,
        iters=args.iters,
        machine=args.machine,
        command=args.command_line,
    )
    for name, rec in written.items():
        speed = rec.get("speed")
        print(
            f"{name}: {rec['flops']['flops'] / 1e9:.2f} GFLOPs"
            + (f", {speed['seq_per_s']:.2f} seq/s on CPU ({speed['threads']} thread(s))" if speed else "")
        )
    print(f"updated {manifest}")
    return 0


def _cmd_hub_push(args: argparse.Namespace) -> int:
    import tempfile

    from stzoo.zoo.folder import WEIGHTS_NAME
    from stzoo.zoo.hub import validate_repo_id, validate_revision
    from stzoo.zoo.upload import export_release, push_folder

    validate_repo_id(args.repo_id)
    if args.revision is not None:
        validate_revision(args.revision)
    source = Path(args.source).expanduser()
    if source.is_dir():
        commit = push_folder(
            source, args.repo_id, revision=args.revision, commit_message=args.message, private=args.private or None
        )
    else:
        from stzoo.zoo.manifest import get_entry

        entry = get_entry(args.source)
        hub = entry.weights.hub if entry.weights else None
        extra = {hub.filename: WEIGHTS_NAME} if hub and hub.filename != WEIGHTS_NAME else None
        with tempfile.TemporaryDirectory(prefix="stzoo-push-") as tmp:
            export_release(entry.name, tmp, repo_id=args.repo_id)
            commit = push_folder(
                tmp,
                args.repo_id,
                revision=args.revision,
                commit_message=args.message,
                private=args.private or None,
                extra_files=extra,
            )
    print(f"pushed {args.source} to {args.repo_id}@{args.revision or 'main'}: commit {commit}")
    print(f'load it with stzoo.load("hf-hub:{args.repo_id}@{commit}") (pin that commit in the manifest)')
    return 0


def _cmd_hub_mirror(args: argparse.Namespace) -> int:
    from stzoo.convert.openstl.zoo import mirror_to_hub

    pushed = mirror_to_hub(
        args.pattern, args.namespace, revision=args.revision, private=args.private or None, dry_run=args.dry_run
    )
    print(f"{len(pushed)} repo(s) {'planned' if args.dry_run else 'pushed'} under {args.namespace}/")
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The parser of ``stzoo-maint``: release, gate, zoo-table, zoo-stats, hub push."""
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="stzoo maintainers' commands: release runs into the "
        "manifest, regenerate the zoo table and docs, publish on the Hub (also "
        "`python -m stzoo.tools`). Users' commands: stzoo --help.",
    )
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("release", help="write a run's weights, measure them, update the manifest")
    p.add_argument("name", help="zoo entry to release (stzoo list); not an alias")
    p.add_argument("--run", required=True, metavar="DIR", help="run folder written by stzoo train (required)")
    p.add_argument(
        "--prior-run",
        action="append",
        default=[],
        metavar="DIR",
        help="a run between the current release and --run (each warm-started from the previous "
        "one's weights), in order; repeat for several. They join the entry's training ledger "
        "(default: none)",
    )
    p.add_argument(
        "--force",
        action="store_true",
        help="release even if the new weights are not better than the current release, or do not pass the release "
        "gate (beat copy-last-frame and the mean frame on MSE, copy-last on SSIM); such a release is recorded "
        "as forced and listed as undertrained (default: off)",
    )
    add_dataset_options(p)
    p.add_argument(
        "--sequences", type=int, default=10000, metavar="N", help="test sequences to measure on (default: %(default)s)"
    )
    p.add_argument("--half", action="store_true", help="store float16 weights (default: float32)")
    p.add_argument(
        "--weights-dir",
        default=None,
        metavar="DIR",
        help="where the released file goes (default: the package's stzoo/weights/ folder, which ships in the wheel)",
    )
    p.add_argument(
        "--manifest",
        default=None,
        metavar="FILE",
        help="manifest to update (default: the package's weights_manifest.json)",
    )
    add_threads(p)
    p.set_defaults(func=_cmd_release)

    p = sub.add_parser(
        "gate",
        help="record the release gate's verdict on released entries",
        description="Measure copy-last-frame and the mean frame on the test sequences each released entry was "
        "measured on, and record whether its weights beat them (MSE below both, SSIM above copy-last's). "
        "Entries that do not are listed as undertrained by `stzoo list`, the zoo table and their cards.",
    )
    p.add_argument("names", nargs="*", help="entries (default: every released entry with metrics)")
    p.add_argument("--manifest", default=None, help="manifest to update (default: the package's)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    add_dataset_options(p)
    add_threads(p)
    p.set_defaults(func=_cmd_gate)

    p = sub.add_parser("zoo-table", help="print the zoo table (Markdown) generated from the manifest")
    p.add_argument(
        "--write",
        default=None,
        metavar="FILE",
        help="replace the table between the zoo-table markers in FILE, e.g. README.md (default: print it)",
    )
    p.add_argument(
        "--docs",
        default=None,
        metavar="DIR",
        help="also write the docs pages generated from the manifest (DIR/zoo.md, DIR/models/*.md), "
        "e.g. docs (default: none)",
    )
    p.set_defaults(func=_cmd_zoo_table)

    p = sub.add_parser(
        "zoo-stats",
        help="count GFLOPs and measure CPU speed into the manifest",
        description="Count each entry's forward FLOPs with torch.utils.flop_counter.FlopCounterMode "
        "and, with --speed, measure CPU sequences/s with stzoo.tools.bench.measure; both are written "
        "into the manifest with their provenance. Then run `stzoo-maint zoo-table --write README.md "
        "--docs docs`.",
    )
    p.add_argument("names", nargs="*", metavar="NAME", help="entries to update (default: all non-alias entries)")
    p.add_argument("--speed", action="store_true", help="also measure CPU speed, batch 1, float32 (default: off)")
    add_threads(p, "%(default)s", default=1, what="CPU threads for the speed measurement")
    p.add_argument(
        "--iters", type=int, default=10, metavar="N", help="timed forecasts per entry (default: %(default)s)"
    )
    p.add_argument("--machine", default=None, help="machine description to store (default: read from this one)")
    p.add_argument(
        "--manifest",
        default=None,
        metavar="FILE",
        help="manifest to update (default: the package's weights_manifest.json)",
    )
    p.set_defaults(func=_cmd_zoo_stats)

    p = sub.add_parser("hub", help="Hugging Face Hub publishing")
    hub_sub = p.add_subparsers(dest="hub_command", required=True)
    p = hub_sub.add_parser(
        "push",
        help="upload a zoo entry's release or a save_pretrained folder",
        description="Upload config.json, model.safetensors and README.md (model card) to a "
        "Hub repo, created if missing. NAME: a zoo entry (its verified release file, byte for "
        "byte); DIR: a folder written by Predictor.save_pretrained (loaded first, strictly). "
        "The token comes from HF_TOKEN or `hf auth login`.",
    )
    p.add_argument("source", metavar="NAME|DIR", help="a zoo entry with released weights, or a save_pretrained folder")
    p.add_argument("--repo-id", required=True, help="owner/name on the Hub (required)")
    p.add_argument("--revision", default=None, help="branch to commit to, created if missing (default: main)")
    p.add_argument("--message", default=None, help='commit message (default: "Upload NAME with stzoo VERSION")')
    p.add_argument("--private", action="store_true", help="create the repo private (default: public)")
    p.set_defaults(func=_cmd_hub_push)
    p = hub_sub.add_parser(
        "mirror",
        help="convert OpenSTL's published checkpoints and push each as a Hub repo",
        description="For every loadable openstl:<file> name matching PATTERN: download and convert it (the "
        "same cache as stzoo.load), then push config.json, model.safetensors and README.md (card with "
        "model-index front matter and the origin) to NAMESPACE/openstl-<file>. The token comes from HF_TOKEN "
        "or `hf auth login`; HF_ENDPOINT picks the Hub.",
    )
    p.add_argument("pattern", metavar="PATTERN", help="a wildcard over openstl: names, e.g. 'openstl:*' (quote it)")
    p.add_argument("--namespace", required=True, help="the Hub user or organisation to push to (required)")
    p.add_argument("--revision", default=None, help="branch to commit to, created if missing (default: main)")
    p.add_argument("--private", action="store_true", help="create the repos private (default: public)")
    p.add_argument("--dry-run", action="store_true", help="list what would be pushed, download nothing (default: off)")
    p.set_defaults(func=_cmd_hub_mirror)

    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one maintainer command; returns the exit status (2 and one ``stzoo-maint: error:`` line on an error)."""
    return run(build_parser(), sys.argv[1:] if argv is None else argv)


if __name__ == "__main__":
    raise SystemExit(main())
