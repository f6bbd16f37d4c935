"""Checkpoints that stzoo did not write, and saves that are cut short.

Hostile checkpoints: every ``checkpoint.pt`` (resume of ``train`` / ``finetune``, ``release``) is read
with ``torch.load(weights_only=True)`` only, so a pickle whose ``__reduce__`` calls a function is
refused without running it, and every damaged or foreign file (truncated, garbage, wrong keys, wrong
types, state that does not fit) is one clean :class:`stzoo.errors.CheckpointError` that names the
file and says what to do. Each case runs in a limited subprocess (tests/helpers/hostile.py).

Saving: ``save_pretrained`` writes the folder under a temporary sibling name and swaps it in, so a
crash leaves the previous folder loadable; files get the umask's mode; two saves of the same weights
are byte-identical.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from helpers import subprocess_env
from helpers.fake_mnist import write_fake_mnist
from helpers.hostile import refuse
from helpers.releases import manifest_copy
from test_finetune import square_video, tiny
from test_train import LSTM_CFG

import stzoo
import stzoo.zoo.folder as pretrained
from stzoo.errors import CheckpointError
from stzoo.tools.release import release
from stzoo.training.finetune import CHECKPOINT_NAME, finetune
from stzoo.training.train import Recipe, load_checkpoint, train

RECIPE = dict(lr=1e-2, epochs=1, epoch_size=4, batch_size=2, frames_in=4, frames_out=4, loss="mse")
FT_KW = dict(epochs=2, lr=1e-2, batch_size=4, val=0, progress=False, patience=None)


# ---- fixtures: one real train run and one real fine-tuning run ----------------------------------------
@pytest.fixture(scope="module")
def mnist(tmp_path_factory) -> Path:
    return write_fake_mnist(tmp_path_factory.mktemp("fake_mnist"), seed=0, train=16, test=0)


@pytest.fixture(scope="module")
def train_run(tmp_path_factory, mnist) -> Path:
    out = tmp_path_factory.mktemp("train_run")
    train(
        "convlstm",
        LSTM_CFG,
        out,
        dataset_options={"mnist_dir": mnist},
        recipe=Recipe(**RECIPE),
        device="cpu",
        eval_sequences=0,
        progress=False,
    )
    return out


@pytest.fixture(scope="module")
def finetune_run(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("finetune_run")
    finetune(tiny(), square_video(), out_dir=out, max_steps=2, **FT_KW)
    return out


class Evil:
    """Unpickling this would run code: it creates the file ``marker``."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return (exec, (f"open({self.marker!r}, 'w').write('pwned')",))


def damage(ckpt: Path, kind: str, marker: Path) -> None:
    """Replace the real checkpoint ``ckpt`` by a damaged or foreign one."""
    real = ckpt.read_bytes()
    ck = torch.load(ckpt, weights_only=True)
    if kind == "evil":  # a real checkpoint, with one entry that runs code when unpickled
        torch.save({**ck, "model": Evil(marker)}, ckpt)
    elif kind == "truncated":
        ckpt.write_bytes(real[: len(real) // 2])
    elif kind == "garbage":
        ckpt.write_bytes(os.urandom(4096))
    elif kind == "empty":
        ckpt.write_bytes(b"")
    elif kind == "wrong_keys":
        torch.save({**{k: v for k, v in ck.items() if k not in ("optimizer", "step")}, "weights": 1}, ckpt)
    elif kind == "wrong_types":
        torch.save({**ck, "step": "2", "model": [1, 2, 3]}, ckpt)
    elif kind == "not_a_dict":
        torch.save([torch.zeros(3)], ckpt)
    elif kind == "bad_state":  # the right keys and types, but tensors that fit no model of this config
        torch.save({**ck, "model": {k: torch.zeros(1) for k in ck["model"]}}, ckpt)
    elif kind == "bad_rng":
        rng = torch.zeros(7)
        torch.save({**ck, "rng": [{"rng": rng, "cuda_rng": None}] if isinstance(ck["rng"], list) else rng}, ckpt)
    elif kind == "directory":
        ckpt.unlink()
        ckpt.mkdir()
    elif kind == "nan_lr":  # audit F12: a NaN learning rate trained on into all-NaN weights, exit 0
        opt = ck["optimizer"]
        groups = [{**g, "lr": float("nan"), "initial_lr": float("nan")} for g in opt["param_groups"]]
        torch.save({**ck, "optimizer": {**opt, "param_groups": groups}}, ckpt)
    elif kind == "short_schedule":  # audit F12: scheduler total_steps below the run
        torch.save({**ck, "scheduler": {**ck["scheduler"], "total_steps": 1}}, ckpt)
    elif kind == "nan_moments":  # Adam's moments NaN: the next step would make every weight NaN
        opt = ck["optimizer"]
        state = {
            k: {
                n: torch.full_like(v, float("nan")) if torch.is_tensor(v) and v.is_floating_point() and v.ndim else v
                for n, v in st.items()
            }
            for k, st in opt["state"].items()
        }
        torch.save({**ck, "optimizer": {**opt, "state": state}}, ckpt)
    elif kind == "nan_weights":
        torch.save(
            {
                **ck,
                "model": {
                    k: torch.full_like(v, float("nan")) if v.is_floating_point() else v for k, v in ck["model"].items()
                },
            },
            ckpt,
        )
    elif kind == "negative_clock":
        torch.save({**ck, "wall_clock_s": -5.0}, ckpt)
    else:
        raise AssertionError(kind)


def _copy(run: Path, tmp_path: Path) -> Path:
    out = tmp_path / "run"
    shutil.copytree(run, out)
    return out


def _train_code(out: Path, mnist: Path) -> str:
    return (
        f"from stzoo.training.train import Recipe, train\n"
        f"train('convlstm', {LSTM_CFG!r}, {str(out)!r}, dataset_options={{'mnist_dir': {str(mnist)!r}}}, "
        f"recipe=Recipe(**{RECIPE!r}), "
        "device='cpu', eval_sequences=0, progress=False)\n"
    )


def _finetune_code(out: Path) -> str:
    return (
        f"from test_finetune import square_video, tiny\n"
        f"from stzoo.training.finetune import finetune\n"
        f"finetune(tiny(), square_video(), out_dir={str(out)!r}, resume=True, **{FT_KW!r})\n"
    )


def _check(r: dict, ckpt: Path, marker: Path) -> None:
    assert str(ckpt) in r["message"], r["message"]
    assert "weights_only=false" not in r["message"].lower()  # never advise loading it unsafely
    assert not marker.exists(), "the checkpoint's code ran"


# ---- hostile checkpoints --------------------------------------------------------------------------------
TRAIN_KINDS = [
    "evil",
    "truncated",
    "garbage",
    "empty",
    "wrong_keys",
    "wrong_types",
    "not_a_dict",
    "bad_state",
    "bad_rng",
    "directory",
    "nan_lr",
    "short_schedule",
    "nan_moments",
    "nan_weights",
    "negative_clock",
]


@pytest.mark.hostile
@pytest.mark.parametrize("kind", TRAIN_KINDS)
def test_train_resume_refuses_foreign_checkpoint(kind, tmp_path, train_run, mnist):
    out = _copy(train_run, tmp_path)
    marker = tmp_path / "marker"
    damage(out / "checkpoint.pt", kind, marker)
    r = refuse(_train_code(out, mnist), match="delete it", within=60)
    assert r["type"] == "CheckpointError" and "--out" in r["message"]
    _check(r, out / "checkpoint.pt", marker)
    if kind == "evil":
        assert "exec" in r["message"] and "nothing was run" in r["message"]


@pytest.mark.hostile
@pytest.mark.parametrize(
    "kind",
    [
        "evil",
        "truncated",
        "garbage",
        "wrong_keys",
        "wrong_types",
        "not_a_dict",
        "bad_state",
        "bad_rng",
        "nan_lr",
        "nan_moments",
        "nan_weights",
    ],
)
def test_finetune_resume_refuses_foreign_checkpoint(kind, tmp_path, finetune_run):
    out = _copy(finetune_run, tmp_path)
    marker = tmp_path / "marker"
    damage(out / CHECKPOINT_NAME, kind, marker)
    r = refuse(_finetune_code(out), match="delete it", within=60)
    # a Python call is answered in Python's words (the CLI's in flags: tests/training/test_finetune.py)
    assert r["type"] == "CheckpointError" and "resume=True" in r["message"] and "out_dir" in r["message"]
    _check(r, out / CHECKPOINT_NAME, marker)


@pytest.mark.hostile
@pytest.mark.parametrize("kind", ["evil", "truncated", "wrong_keys", "wrong_types"])
def test_release_refuses_foreign_checkpoint(kind, tmp_path, train_run):
    out = _copy(train_run, tmp_path)
    marker = tmp_path / "marker"
    damage(out / "checkpoint.pt", kind, marker)
    dest = tmp_path / "w.safetensors"
    r = refuse(
        f"from stzoo.tools.release import release\nrelease({str(out)!r}, {str(dest)!r})", match="checkpoint", within=60
    )
    assert r["type"] == "CheckpointError"
    _check(r, out / "checkpoint.pt", marker)
    assert not dest.exists()


@pytest.mark.hostile
def test_release_to_manifest_refuses_crafted_pickle(tmp_path, train_run):
    out = _copy(train_run, tmp_path)
    marker = tmp_path / "marker"
    damage(out / "checkpoint.pt", "evil", marker)
    manifest = manifest_copy(tmp_path / "manifest.json", None)
    r = refuse(
        f"from stzoo.tools.release import release_to_manifest\nrelease_to_manifest('convlstm-mmnist-s', "
        f"{str(out)!r}, weights_dir={str(tmp_path / 'w')!r}, manifest_path={str(manifest)!r}, "
        "eval_sequences=1, progress=False)",
        match="crafted",
        within=60,
    )
    _check(r, out / "checkpoint.pt", marker)


def test_load_checkpoint_in_process_does_not_run_code(tmp_path):
    marker = tmp_path / "marker"
    torch.save({"step": Evil(marker)}, tmp_path / "c.pt")
    with pytest.raises(CheckpointError, match="c.pt.*exec.*nothing was run.*Delete it"):
        load_checkpoint(tmp_path / "c.pt", "cpu", {"step": int}, remedy="Delete it.")
    assert not marker.exists()
    torch.save({"step": 3, "extra": (1.5, [None])}, tmp_path / "ok.pt")
    assert load_checkpoint(tmp_path / "ok.pt", "cpu", {"step": int}, remedy="-")["step"] == 3
    torch.save({"step": True}, tmp_path / "b.pt")  # a bool is not a step count
    with pytest.raises(CheckpointError, match="'step' is a bool, expected int"):
        load_checkpoint(tmp_path / "b.pt", "cpu", {"step": int}, remedy="-")


def test_release_without_checkpoint_says_so(tmp_path):
    with pytest.raises(stzoo.errors.WeightsNotAvailableError, match="no checkpoint at"):
        release(tmp_path, tmp_path / "w.safetensors")


# ---- save_pretrained: a folder is the old one or the new one --------------------------------------------
def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _state(p) -> dict[str, torch.Tensor]:
    return {k: v.detach().cpu().clone() for k, v in p.model.state_dict().items()}


def _leftovers(folder: Path) -> list[str]:
    return sorted(n for n in os.listdir(folder.parent) if n.startswith("." + folder.name))


def test_crash_mid_save_keeps_the_previous_folder(tmp_path, monkeypatch):
    folder = tmp_path / "model"
    old, new = tiny(seed=0), tiny(seed=1)
    old.save_pretrained(folder)
    (folder / "checkpoint.pt").write_bytes(b"keep me")
    before = {n: _sha(folder / n) for n in ("config.json", "model.safetensors", "README.md")}

    def crash(*args, **kwargs):  # the weights (and config.json) are written by now
        raise OSError("disk full")

    monkeypatch.setattr(pretrained, "model_card", crash)
    with pytest.raises(OSError, match="disk full"):
        new.save_pretrained(folder)
    assert {n: _sha(folder / n) for n in before} == before
    q = stzoo.load(folder)
    assert all(torch.equal(v, _state(old)[k]) for k, v in _state(q).items())
    assert _leftovers(folder) == []  # the half-written folder is gone
    assert (folder / "checkpoint.pt").read_bytes() == b"keep me"

    monkeypatch.undo()
    new.save_pretrained(folder)
    q = stzoo.load(folder)
    assert all(torch.equal(v, _state(new)[k]) for k, v in _state(q).items())
    assert (folder / "checkpoint.pt").read_bytes() == b"keep me"  # other files of the folder are kept


_KILLED_SAVE = """
import os, sys
import stzoo.zoo.folder as pretrained
from test_finetune import tiny
def die(*args, **kwargs):  # like kill -9 in the middle of the save: no cleanup runs
    os._exit(17)
pretrained.model_card = die
tiny(seed=1).save_pretrained({folder!r})
"""


def test_killed_save_leaves_old_folder_and_leftovers_are_cleaned(tmp_path):
    folder = tmp_path / "model"
    tiny(seed=0).save_pretrained(folder)
    before = _sha(folder / "model.safetensors")
    code = _KILLED_SAVE.format(folder=str(folder))
    proc = subprocess.run([sys.executable, "-c", code], env=subprocess_env(OMP_NUM_THREADS="1"))
    assert proc.returncode == 17
    left = _leftovers(folder)
    assert len(left) == 1 and ".stzoo-tmp-" in left[0]  # the killed save's half-written folder
    assert _sha(folder / "model.safetensors") == before
    stzoo.load(folder)  # the leftover is ignored
    tiny(seed=2).save_pretrained(folder)
    assert _leftovers(folder) == []  # and removed by the next save
    stzoo.load(folder)


def test_save_killed_between_renames_is_recovered(tmp_path):
    # the fallback without an atomic swap renames the old folder away, then the new one in: a kill in
    # between leaves only the old folder under its hidden name; the next save puts it back first
    folder = tmp_path / "model"
    tiny(seed=0).save_pretrained(folder)
    (folder / "history.json").write_text("{}")
    os.rename(folder, tmp_path / ".model.stzoo-old-0123")
    tiny(seed=1).save_pretrained(folder)
    assert (folder / "history.json").read_text() == "{}"
    assert _leftovers(folder) == []
    stzoo.load(folder)


def test_save_without_atomic_exchange(tmp_path, monkeypatch):
    monkeypatch.setattr(pretrained, "_exchange", lambda a, b: False)
    folder = tmp_path / "model"
    tiny(seed=0).save_pretrained(folder)
    (folder / "sub").mkdir()
    (folder / "sub" / "notes.txt").write_text("mine")
    new = tiny(seed=1)
    new.save_pretrained(folder)
    assert (folder / "sub" / "notes.txt").read_text() == "mine" and _leftovers(folder) == []
    assert all(torch.equal(v, _state(new)[k]) for k, v in _state(stzoo.load(folder)).items())


def test_open_log_keeps_writing_into_the_saved_folder(tmp_path):
    # fine-tuning keeps log.jsonl open while it saves the best model into the same folder
    folder = tmp_path / "model"
    tiny().save_pretrained(folder)
    with open(folder / "log.jsonl", "a") as log:
        log.write("one\n")
        log.flush()
        tiny(seed=1).save_pretrained(folder)
        log.write("two\n")
    assert (folder / "log.jsonl").read_text() == "one\ntwo\n"


def test_saved_files_get_the_umask_mode(tmp_path):
    old = os.umask(0o022)
    try:
        tiny().save_pretrained(tmp_path / "a")
        tiny().save_pretrained(tmp_path / "a")  # replacing an existing folder too
    finally:
        os.umask(old)
    folder = tmp_path / "a"
    for name in ("model.safetensors", "config.json", "README.md"):
        assert stat.S_IMODE((folder / name).stat().st_mode) == 0o644, name
    assert stat.S_IMODE(folder.stat().st_mode) == 0o755


def test_release_file_gets_the_umask_mode(tmp_path, train_run):
    old = os.umask(0o022)
    try:
        info = release(train_run, tmp_path / "w.safetensors")
    finally:
        os.umask(old)
    assert stat.S_IMODE(Path(info["path"]).stat().st_mode) == 0o644


def test_two_saves_of_the_same_weights_are_identical(tmp_path):
    # safetensors stores metadata keys in a random order per save: with two keys, 10 saves agreeing
    # by chance has p = 2^-9
    p = tiny()
    shas = {_sha(p.save_pretrained(tmp_path / f"s{i}") / "model.safetensors") for i in range(10)}
    assert len(shas) == 1
    from safetensors import safe_open

    with safe_open(str(tmp_path / "s0" / "model.safetensors"), "pt") as f:
        assert json.loads(f.metadata()["stzoo"]) == {"arch": "convlstm", "config": p.entry.config}


def test_save_through_a_symlink_keeps_the_link(tmp_path):
    (tmp_path / "real").mkdir()
    os.symlink(tmp_path / "real", tmp_path / "link")
    tiny().save_pretrained(tmp_path / "link")
    tiny(seed=1).save_pretrained(tmp_path / "link")
    assert (tmp_path / "link").is_symlink() and (tmp_path / "real" / "model.safetensors").is_file()
    stzoo.load(tmp_path / "link")


def test_save_onto_a_file_is_refused(tmp_path):
    (tmp_path / "f").write_text("x")
    with pytest.raises(stzoo.errors.InputError, match="not a folder"):
        tiny().save_pretrained(tmp_path / "f")


def test_save_into_the_working_directory(tmp_path, monkeypatch):
    # `stzoo finetune ... --out .`: the folder holding the working directory is written in place, so
    # relative paths (checkpoint.pt, log.jsonl) keep working afterwards
    folder = tmp_path / "model"
    folder.mkdir()
    monkeypatch.chdir(folder)
    tiny().save_pretrained(".")
    tiny(seed=1).save_pretrained(".")
    Path("checkpoint.pt").write_bytes(b"ck")
    assert (folder / "checkpoint.pt").read_bytes() == b"ck" and _leftovers(folder) == []
    stzoo.load(folder)
