"""`load_canonical_test_seq(download=True)`: a deadline, a completeness check and an optional SHA-256, against
a fake server (no network)."""

from __future__ import annotations

import hashlib
import io
import sys
import types

import numpy as np
import pytest

from stzoo.data import moving_mnist
from stzoo.errors import InputError


def _npy_bytes(n: int) -> bytes:
    buf = io.BytesIO()
    np.save(buf, np.arange(20 * n * 64 * 64, dtype=np.uint64).astype(np.uint8).reshape(20, n, 64, 64))
    return buf.getvalue()


@pytest.fixture
def fake_server(monkeypatch):
    """``requests.get`` serving ``state["body"]`` in chunks; ``state["clock"]`` advances per chunk."""
    state = {"body": b"", "step": 0.0, "now": 0.0}

    class Response:
        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

        def raise_for_status(self):
            pass

        def iter_content(self, size):
            body = state["body"]
            for i in range(0, len(body), 4096):
                state["now"] += state["step"]
                yield body[i : i + 4096]

    monkeypatch.setitem(sys.modules, "requests", types.SimpleNamespace(get=lambda *a, **k: Response()))
    monkeypatch.setattr(moving_mnist.time, "monotonic", lambda: state["now"])
    monkeypatch.setattr(moving_mnist, "CANONICAL_SEQUENCES", 3)
    return state


def test_download_checks_shape_and_sha256(tmp_path, fake_server):
    body = _npy_bytes(3)
    fake_server["body"] = body
    digest = hashlib.sha256(body).hexdigest()
    arr = moving_mnist.load_canonical_test_seq(tmp_path / "a.npy", download=True, sha256=digest)
    assert arr.shape == (3, 20, 64, 64)
    with pytest.raises(InputError, match="SHA-256"):
        moving_mnist.load_canonical_test_seq(tmp_path / "b.npy", download=True, sha256="0" * 64)
    assert not (tmp_path / "b.npy").exists() and not (tmp_path / "b.npy.part").exists()
    with pytest.raises(InputError, match="SHA-256"):
        moving_mnist.load_canonical_test_seq(tmp_path / "a.npy", sha256="0" * 64)  # an existing file too


def test_truncated_or_wrong_download_is_not_kept(tmp_path, fake_server):
    fake_server["body"] = _npy_bytes(3)[:-100]
    with pytest.raises(InputError, match="truncated"):
        moving_mnist.load_canonical_test_seq(tmp_path / "c.npy", download=True)
    fake_server["body"] = _npy_bytes(2)
    with pytest.raises(InputError, match="expected"):
        moving_mnist.load_canonical_test_seq(tmp_path / "c.npy", download=True)
    assert list(tmp_path.iterdir()) == []


def test_download_gives_up_after_the_deadline(tmp_path, fake_server):
    fake_server["body"], fake_server["step"] = _npy_bytes(3), 10.0  # 10 s per 4 KiB chunk
    with pytest.raises(InputError, match="took more than 60 s"):
        moving_mnist.load_canonical_test_seq(tmp_path / "d.npy", download=True, deadline_s=60)
    assert list(tmp_path.iterdir()) == []
