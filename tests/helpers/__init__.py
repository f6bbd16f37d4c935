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
    as pytest does (``helpers.*``; ``test_train`` / ``test_finetune``, whose tiny data other tests reuse):
    ``PYTHONPATH`` starts with the repository, ``tests/`` and ``tests/training/``."""
    paths = (str(REPO), str(TESTS), str(TESTS / "training"), os.environ.get("PYTHONPATH", ""))
    path = os.pathsep.join(p for p in paths if p)
    return {**os.environ, "PYTHONPATH": path, **extra}
