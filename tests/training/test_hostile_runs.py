"""Hostile runs (audit F12, F13, F15, F16): crafted ``--init-from`` files, a second run or save into a folder
another process is writing, a disk that fills up while saving, and command-line values out of range.

Each case runs in a limited subprocess (tests/helpers/hostile.py) and must be one clear ``StzooError``
(or an argparse error, exit 2, for the command line), with nothing lost: the previous file stays intact
and no temporary file is left behind.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch
from helpers import subprocess_env
from helpers.hostile import refuse
from test_hostile_checkpoints import _copy, _train_code, mnist, train_run  # noqa: F401 (fixtures)
from test_train import LSTM_CFG

import stzoo
import stzoo.zoo.folder as pretrained

FULL_DISK = "import errno, os\ndef _full(*a, **k):\n    raise OSError(errno.ENOSPC, 'No space left on device')\n"


# ---- F12: --init-from --------------------------------------------------------------------------------------
@pytest.mark.hostile
@pytest.mark.parametrize("kind", ["missing", "garbage", "wrong_keys", "nan"])
def test_train_init_from_errors_are_clear(kind, tmp_path, mnist):  # noqa: F811
    from safetensors.torch import save_file

    from stzoo.models import build_model

    src = tmp_path / "init.safetensors"
    state = build_model("convlstm", LSTM_CFG).state_dict()
    if kind == "garbage":
        src.write_bytes(os.urandom(300))
    elif kind == "wrong_keys":
        save_file({"x": torch.zeros(3)}, str(src))
    elif kind == "nan":
        save_file({k: torch.full_like(v, float("nan")) for k, v in state.items()}, str(src))
    code = _train_code(tmp_path / "out", mnist).replace("progress=False)", f"progress=False, init_from={str(src)!r})")
    r = refuse(code, match=str(src), within=60)
    assert r["type"] in ("WeightsNotAvailableError", "CorruptWeightsError", "InputError"), r
    assert not (tmp_path / "out" / "checkpoint.pt").exists()


# ---- F13: one writer per folder --------------------------------------------------------------------------
@pytest.mark.hostile
def test_second_run_into_the_same_folder_is_refused(tmp_path, mnist):  # noqa: F811
    out = tmp_path / "out"
    out.mkdir()
    lock = tmp_path / ".stzoo-run-lock.out"
    # the lock held through another open file, as another process's run would hold it
    code = f"import os, fcntl\nfd = os.open({str(lock)!r}, os.O_RDWR | os.O_CREAT)\nfcntl.flock(fd, fcntl.LOCK_EX)\n"
    r = refuse(code + _train_code(out, mnist), match="another process", within=60)
    assert r["type"] == "StorageError"
    assert not (out / "checkpoint.pt").exists()


@pytest.mark.hostile
def test_second_save_into_the_same_folder_is_refused(tmp_path):
    folder = tmp_path / "m"
    stzoo.load("convlstm-mmnist-s").save_pretrained(folder)
    before = {n: (folder / n).read_bytes() for n in os.listdir(folder)}
    lock = tmp_path / ".stzoo-lock.m"
    code = (
        f"import os, fcntl, stzoo\nfd = os.open({str(lock)!r}, os.O_RDWR | os.O_CREAT)\n"
        f"fcntl.flock(fd, fcntl.LOCK_EX)\nstzoo.load('tau-mmnist-s').save_pretrained({str(folder)!r})\n"
    )
    r = refuse(code, match="another process", within=60)
    assert r["type"] == "StorageError"
    assert {n: (folder / n).read_bytes() for n in os.listdir(folder)} == before


def test_two_processes_saving_one_folder(tmp_path):
    """Two save_pretrained processes on one folder: every save succeeds or is refused with StorageError,
    and the folder ends as one consistent save (config, weights and hash agree)."""
    folder = tmp_path / "m"
    code = "\n".join(
        [
            "import stzoo",
            "from stzoo.errors import StorageError",
            "p = stzoo.load('convlstm-mmnist-s')",
            "ok = refused = 0",
            "for _ in range(6):",
            "    try:",
            f"        p.save_pretrained({str(folder)!r})",
            "        ok += 1",
            "    except StorageError as e:",
            "        assert 'another process' in str(e), e",
            "        refused += 1",
            "print(ok, refused)",
        ]
    )
    env = subprocess_env(OMP_NUM_THREADS="1")
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", code], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        for _ in range(2)
    ]
    outs = [p.communicate(timeout=180) for p in procs]
    for p, (_, err) in zip(procs, outs):
        assert p.returncode == 0, err[-2000:]
    assert sum(int(out.split()[0]) for out, _ in outs) >= 1
    pretrained.check_folder(folder)
    assert os.listdir(tmp_path) == ["m"]  # no staging folder, old copy or lock left beside it


# ---- F15: a full disk --------------------------------------------------------------------------------------
@pytest.mark.hostile
@pytest.mark.parametrize("where", ["train", "save_pretrained", "write_gif", "npy"])  # export: minutes of tracing
def test_disk_full_is_one_clear_error_and_keeps_the_old_file(where, tmp_path, train_run, mnist):  # noqa: F811
    """ENOSPC while writing (simulated: the write raises OSError(ENOSPC)) is one StorageError, the temporary
    file is removed and the previous file is intact."""
    if where == "train":
        out = tmp_path / "run"
        out.mkdir()
        target = out / "notes.txt"  # a file of the user's in the run folder: it must stay as it was
        target.write_text("mine")
        code = FULL_DISK + "os.fsync = _full\n" + _train_code(out, mnist)  # its first save hits the full disk
    elif where == "save_pretrained":
        out = tmp_path / "m"
        stzoo.load("convlstm-mmnist-s").save_pretrained(out)
        target = out / "model.safetensors"
        code = FULL_DISK + (
            "import safetensors.torch, stzoo\nsafetensors.torch.save_file = _full\n"
            f"stzoo.load('convlstm-mmnist-s').save_pretrained({str(out)!r})\n"
        )
    elif where in ("write_gif", "npy"):
        out = tmp_path
        target = out / ("a.gif" if where == "write_gif" else "a.npy")
        target.write_bytes(b"the previous file")
        code = FULL_DISK + (
            "import numpy as np, stzoo.frames.write\nos.fsync = _full\n"
            f"stzoo.frames.write.write_frames(np.zeros((3, 8, 8), np.uint8), {str(target)!r})\n"
        )
    before = target.read_bytes()
    names = set(os.listdir(out))
    r = refuse(code, match="no space left", within=120)
    assert r["type"] == "StorageError", r
    assert target.read_bytes() == before
    assert set(os.listdir(out)) <= names, "a temporary file was left behind"


# ---- F16: command-line values ------------------------------------------------------------------------------
CLI_CASES = [
    ["train", "tau-mmnist-s", "--out", "{tmp}/o", "--batch-size", "0"],
    ["train", "tau-mmnist-s", "--out", "{tmp}/o", "--lr", "nan"],
    ["train", "tau-mmnist-s", "--out", "{tmp}/o", "--lr", "-1"],
    ["train", "tau-mmnist-s", "--out", "{tmp}/o", "--epochs", "1e9"],
    ["train", "tau-mmnist-s", "--out", "{tmp}/o", "--time-budget", "inf"],
    ["finetune", "tau-mmnist-s", "--data", "{tmp}", "--out", "{tmp}/o", "--batch-size", "0"],
    ["finetune", "tau-mmnist-s", "--data", "{tmp}", "--out", "{tmp}/o", "--lr", "nan"],
    ["finetune", "tau-mmnist-s", "--data", "{tmp}", "--out", "{tmp}/o", "--stride", "-3"],
    ["evaluate", "tau-mmnist-s", "--sequences", str(10**12)],
    ["evaluate", "tau-mmnist-s", "--batch-size", "-1"],
    ["predict", "tau-mmnist-s", "--input", "x.gif", "--horizon", "0"],
    ["predict", "tau-mmnist-s", "--input", "x.gif", "--fps", "nan"],
    ["bench", "tau-mmnist-s", "--iters", "0"],
]


@pytest.mark.parametrize("argv", CLI_CASES, ids=[" ".join(c[:1] + c[-2:]) for c in CLI_CASES])
def test_cli_values_out_of_range_are_argument_errors(argv, tmp_path):
    argv = [a.replace("{tmp}", str(tmp_path)) for a in argv]
    r = subprocess.run(
        [sys.executable, "-m", "stzoo", *argv],
        capture_output=True,
        text=True,
        timeout=120,
        env=subprocess_env(OMP_NUM_THREADS="1"),
        cwd=tmp_path,
    )
    assert r.returncode == 2, (r.returncode, r.stderr[-1500:])
    assert "error: argument" in r.stderr and "Traceback" not in r.stderr, r.stderr[-1500:]
    assert not (tmp_path / "o").exists()


def test_evaluate_more_sequences_than_the_test_set(tmp_path):
    r = subprocess.run(
        [sys.executable, "-m", "stzoo", "evaluate", "copy-last-frame", "--sequences", str(10**8)],
        capture_output=True,
        text=True,
        timeout=120,
        env=subprocess_env(OMP_NUM_THREADS="1"),
        cwd=tmp_path,
    )
    assert r.returncode != 0 and "Traceback" not in r.stderr, r.stderr[-1500:]
    assert "test set holds" in r.stderr, r.stderr[-1500:]


def test_argument_types_unit():
    import argparse

    from stzoo.cli.common import count, finite_float, positive_float, positive_int

    assert positive_int("12") == 12 and count(0, 5)("0") == 0 and positive_float("1e-3") == 1e-3
    for parse, text in [
        (positive_int, "0"),
        (positive_int, "1.5"),
        (positive_int, str(10**12)),
        (positive_float, "nan"),
        (positive_float, "0"),
        (finite_float(0.0, 1.0), "1.5"),
    ]:
        with pytest.raises(argparse.ArgumentTypeError):
            parse(text)
