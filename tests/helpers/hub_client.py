"""Runs stzoo hub operations in a fresh process, so that HF_ENDPOINT / HF_HUB_OFFLINE / HF_HOME /
HF_TOKEN are in the environment before ``huggingface_hub`` is first imported (it reads them then).

Usage: ``python tests/hub_client.py STEPS.json`` where the file holds ``{"models": {...extra manifest
entries...}, "steps": [{"op": ..., ...}, ...]}``. Prints one JSON list: per step ``{"ok": true, ...}``
or ``{"ok": false, "types": [exception class names], "message": ...}``. Each step runs even if an
earlier one failed.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import sys
import urllib.request
from pathlib import Path
from typing import Any


def state_hash(model: Any) -> str:
    h = hashlib.sha256()
    for k, v in sorted(model.state_dict().items()):
        h.update(k.encode())
        h.update(v.detach().float().contiguous().numpy().tobytes())
    return h.hexdigest()


def files_under(root: str) -> list[str]:
    base = Path(root)
    if not base.exists():
        return []
    return sorted(str(p.relative_to(base)) for p in base.rglob("*") if p.is_file() or p.is_symlink())


def run_step(step: dict[str, Any]) -> dict[str, Any]:
    import stzoo
    from stzoo.zoo import hub

    op = step["op"]
    if op == "locate":
        from stzoo.zoo.entry import ZooEntry
        from stzoo.zoo.resolve import locate_weights

        loc = locate_weights(ZooEntry.from_dict(step["entry"].get("name"), step["entry"]))
        return {"path": str(loc.path), "source": loc.source, "sha256": hub.sha256_file(loc.path)}
    if op == "load":
        p = stzoo.load(step["spec"], pretrained=step.get("pretrained", True))
        return {"name": p.name, "state": state_hash(p.model), "source": p.entry.extra.get("source")}
    if op in ("cli", "maint"):  # `stzoo ARGV` or `stzoo-maint ARGV`
        from stzoo.cli.main import main as cli_main
        from stzoo.tools.cli import main as maint_main

        main = cli_main if op == "cli" else maint_main

        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            rc = main(step["argv"])
        return {"rc": rc, "out": out.getvalue(), "err": err.getvalue()}
    if op == "push":
        import torch

        from stzoo.inference.predictor import Predictor
        from stzoo.models import build_model
        from stzoo.zoo.manifest import InputSpec

        torch.manual_seed(step.get("seed", 0))
        cfg = step["config"]
        from stzoo.zoo.entry import ZooEntry

        spec = InputSpec(4, 4, 1, 16, 16)
        p = Predictor(build_model("convlstm", cfg), spec, name="pushed", entry=ZooEntry(None, "convlstm", cfg, spec))
        commit = p.push_to_hub(step["repo_id"], commit_message="test push")
        return {"commit": commit, "state": state_hash(p.model)}
    if op == "save":
        p = stzoo.load(step["spec"])
        p.save_pretrained(step["dir"])
        return {"state": state_hash(p.model)}
    if op == "requests":
        with urllib.request.urlopen(os.environ["HF_ENDPOINT"] + "/_test/log", timeout=10) as r:
            return {"count": len(json.loads(r.read()))}
    if op == "files":
        return {"files": files_under(step["root"])}
    if op == "exists":
        return {"exists": os.path.lexists(step["path"])}
    raise ValueError(f"unknown op {op}")


def main() -> None:
    command = json.loads(Path(sys.argv[1]).read_text())
    import stzoo.zoo.download
    import stzoo.zoo.manifest as manifest_mod

    stzoo.zoo.download.RETRY_WAIT_S = 0.05  # keep the retry tests fast
    if command.get("models"):
        m = manifest_mod.load_manifest()
        m["models"].update(command["models"])
        manifest_mod._manifest_cached = lambda: m  # type: ignore[assignment]
    results = []
    for step in command["steps"]:
        try:
            results.append({"ok": True, **run_step(step)})
        except Exception as exc:  # reported to the test, which decides
            results.append({"ok": False, "types": [c.__name__ for c in type(exc).__mro__], "message": str(exc)})
    print("@@RESULTS@@" + json.dumps(results))


if __name__ == "__main__":
    main()
