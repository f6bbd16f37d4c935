"""What the tests share and are not tests themselves: the architecture contract checks, the OpenSTL
re-statements, the hostile-input harness, the fake Hugging Face hub and the scripts run in subprocesses.

``pyproject.toml`` puts ``tests/`` on pytest's ``sys.path`` (``pythonpath = ["tests"]``), so a test imports
them as ``from helpers.contract import ...``.
"""

from __future__ import annotations

import os
from pathlib import Path

#: the ``tests/`` folder (what ``pythonpath = ["tests"]`` puts on pytest's ``sys.path``) and the repository
TESTS = Path(__file__).resolve().parents[1]
REPO = TESTS.parent


def subprocess_env(**extra: str) -> dict[str, str]:
    """``os.environ`` for a Python subprocess that imports this checkout's ``stzoo`` and the test modules
    (``helpers.*``, ``test_*``) as pytest does: ``PYTHONPATH`` starts with the repository and ``tests/``."""
    path = os.pathsep.join(p for p in (str(REPO), str(TESTS), os.environ.get("PYTHONPATH", "")) if p)
    return {**os.environ, "PYTHONPATH": path, **extra}
