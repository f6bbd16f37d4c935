"""`stzoo list`, `info`, `download`, `cache`: what the zoo holds and where its weights are."""

from __future__ import annotations

import argparse
import json

from stzoo.errors import StzooError

__all__ = ["register"]


def _print_table(header: tuple[str, ...], rows: list[tuple[str, ...]]) -> None:
    widths = [max(len(r[i]) for r in rows + [header]) for i in range(len(header))]
    for r in [header] + rows:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip())


def _cmd_list(args: argparse.Namespace) -> int:
    from stzoo.api import info, list_models
    from stzoo.convert.openstl.zoo import paper_counterpart
    from stzoo.zoo.manifest import get_entry

    pattern = args.pattern
    rows = []
    for name in list_models(pattern):
        if ":" in name:
            continue  # prefixed names (openstl:...) have their own table below
        e = info(name)
        target = f"→ {e['name']}" if e["name"] != name else ""
        mse = e.get("metrics", {}).get("mse")
        gate = e.get("gate") or {}
        weights = "no"
        if e.get("weights"):
            weights = "yes" if gate.get("passed", True) else "undertrained"
        else:
            stem = paper_counterpart(get_entry(name))
            weights = f"openstl:{stem}" if stem else "no"
        rows.append(
            (
                name,
                target,
                e["architecture"],
                f"{e['parameters'] / 1e6:.2f} M",
                weights,
                f"{mse:.1f}" if mse is not None else "-",
            )
        )
    if rows:
        _print_table(("name", "alias of", "arch", "params", "weights", "MSE"), rows)
    if any(r[4] == "undertrained" for r in rows):
        print(
            "\nundertrained: released weights that do not beat copy-last-frame and the mean frame (MSE) or "
            "copy-last (SSIM) on their own test set; `stzoo info NAME` shows the gate's numbers"
        )
    prefixed = [n for n in list_models(pattern) if ":" in n] if pattern else []
    if prefixed:
        if rows:
            print()
        print("OpenSTL's published checkpoints (MSE as reported by OpenSTL, not measured by stzoo):")
        table = []
        for name in prefixed:
            e = info(name)
            cols = (e.get("reported_by_openstl") or {}).get("columns") or {}
            mse = next((str(v) for k, v in cols.items() if k.upper().startswith("MSE")), "-")
            table.append((name, str(e["architecture"]), e["dataset"], mse, "yes" if e.get("cached") else "no"))
        _print_table(("name", "arch", "dataset", "MSE (OpenSTL)", "cached"), table)
    elif not pattern:
        print()
        print("OpenSTL's published checkpoints: stzoo list 'openstl:*'")
    return 0


def _cmd_info(args: argparse.Namespace) -> int:
    from stzoo.api import info

    print(json.dumps(info(args.name), indent=2, ensure_ascii=False))
    return 0


def _human_size(n: int | None) -> str:
    if n is None:
        return "-"
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return str(n)


def _cmd_download(args: argparse.Namespace) -> int:
    from stzoo.api import list_models
    from stzoo.zoo.hub import HUB_PREFIX
    from stzoo.zoo.manifest import get_entry
    from stzoo.zoo.resolve import locate_weights

    if args.all == bool(args.names):
        raise StzooError("give zoo names or --all (not both, not neither); see `stzoo list`")
    names = list_models(pretrained=True) if args.all else args.names
    if args.all:
        names = sorted({get_entry(n).name for n in names})  # aliases fetch the same file
        if not names:
            print("no zoo entry has released weights yet: nothing to download")
            return 0
    for name in names:
        if name.startswith("openstl:"):  # OpenSTL's published file: downloaded, converted, cached
            from stzoo.convert.openstl.zoo import ensure_converted

            folder, how = ensure_converted(name)
            print(f"{name}: {folder} ({'already converted' if how == 'openstl-cache' else 'downloaded and converted'})")
            continue
        if name.startswith(HUB_PREFIX):
            from stzoo.zoo.download import hub_download
            from stzoo.zoo.folder import CONFIG_NAME, WEIGHTS_NAME, read_config
            from stzoo.zoo.hub import parse_hub_id

            repo_id, revision = parse_hub_id(name)
            cfg_path, source = hub_download(repo_id, CONFIG_NAME, revision, name=name, check=read_config)
            print(f"{name}: {CONFIG_NAME} -> {cfg_path} ({_SOURCES[source]})")
            # the weights from the commit the config came from, checked against the sha256 it records
            commit = cfg_path.parent.name
            pin = commit if len(commit) == 40 and all(c in "0123456789abcdef" for c in commit) else revision
            expected = (read_config(cfg_path).get("weights") or {}).get("sha256")
            path, source = hub_download(
                repo_id,
                WEIGHTS_NAME,
                pin,
                sha256=expected,
                name=name,
                expected_by=f"{CONFIG_NAME} of {repo_id}@{pin or 'main'}",
            )
            print(f"{name}: {WEIGHTS_NAME} -> {path} ({_SOURCES[source]}{', sha256 verified' if expected else ''})")
            try:
                path, source = hub_download(repo_id, "README.md", pin, name=name)
                print(f"{name}: README.md -> {path} ({_SOURCES[source]})")
            except StzooError:
                pass  # a model card is optional
            continue
        loc = locate_weights(get_entry(name))
        print(f"{name}: {loc.path} ({_SOURCES[loc.source]}, sha256 verified)")
    return 0


_SOURCES = {
    "file": "given file",
    "local": "local weights folder",
    "hf-cache": "already in the Hugging Face cache",
    "download": "downloaded into the Hugging Face cache",
    "hf-hub": "in the Hugging Face cache, revision checked",
}


def _cmd_cache(args: argparse.Namespace) -> int:
    from stzoo.zoo.hub import WEIGHTS_DIR_ENV, cache_report

    report = cache_report()
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    print(f"Hugging Face cache: {report['cache_dir']}" + ("  (HF_HUB_OFFLINE is on)" if report["offline"] else ""))
    print(f"local weights folders: {', '.join(report['local_dirs']) or f'none (set {WEIGHTS_DIR_ENV})'}")
    print("zoo weights:")
    if not report["entries"]:
        print("  (no zoo entry has released weights yet)")
    for e in report["entries"]:
        print(f"  {e['name']}  {e['status']}  {_human_size(e['size'])}  {e['path'] or ''}".rstrip())
    print("stzoo repos in the Hugging Face cache:")
    if not report["repos"]:
        print("  (none)")
    for r in report["repos"]:
        refs = f" refs: {', '.join(r['refs'])}" if r["refs"] else ""
        print(
            f"  {r['repo_id']}  {_human_size(r['size_on_disk'])}  {len(r['revisions'])} revision(s){refs}  {r['path']}"
        )
    print(
        f"total of these repos in the Hugging Face cache: "
        f"{_human_size(sum(r['size_on_disk'] for r in report['repos']))}"
    )
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    """Add `list`, `info`, `download` and `cache` to the subcommands ``sub``."""

    p = sub.add_parser(
        "list",
        help="list zoo models: architecture, parameters, released weights, test MSE",
        description="List every zoo entry (aliases say what they point at) with its architecture, "
        "parameter count, where its weights come from (a -paper entry: its OpenSTL counterpart), and its MSE "
        "on the stzoo Moving MNIST test set. A PATTERN such as 'openstl:*' also lists OpenSTL's published "
        "checkpoints that stzoo loads, with the MSE OpenSTL reports.",
    )
    p.add_argument(
        "pattern",
        nargs="?",
        default=None,
        metavar="PATTERN",
        help="a wildcard, e.g. 'tau*' or 'openstl:*' (default: all)",
    )
    p.set_defaults(func=_cmd_list)

    p = sub.add_parser("info", help="show a model's manifest entry")
    p.add_argument("name", help="zoo name or alias (stzoo list); the entry is printed as JSON")
    p.set_defaults(func=_cmd_info)

    p = sub.add_parser(
        "download",
        help="pre-fetch verified weights (e.g. for an offline machine)",
        description="Fetch zoo weights into the Hugging Face cache (HF_HOME / HF_HUB_CACHE; "
        "HF_ENDPOINT picks a mirror), check their sha256, and print where each file is. "
        "Copy that cache to an offline machine and set HF_HUB_OFFLINE=1 there, or put the files "
        "in a folder named by STZOO_WEIGHTS_DIR.",
    )
    p.add_argument(
        "names", nargs="*", metavar="NAME", help="zoo names, or hf-hub:owner/repo[@revision] (give names or --all)"
    )
    p.add_argument("--all", action="store_true", help="every zoo entry with released weights (default: off)")
    p.set_defaults(func=_cmd_download)

    p = sub.add_parser("cache", help="show which weights are cached locally, and their sizes")
    p.add_argument("--json", action="store_true", help="machine-readable JSON output (default: a table)")
    p.set_defaults(func=_cmd_cache)
