"""Hostile checkpoint folders, manifests and converter configs (audit F8, F11, F18, F19).

A ``save_pretrained`` folder's config.json, a manifest entry and a ``convert openstl --config`` file are
read with limits (size, encoding, strict JSON, nesting) and every field checked (types, ranges); weights
whose values a float32 model cannot hold are refused. Each case runs in a limited subprocess
(tests/helpers/hostile.py) and must be one clear ``StzooError`` naming the file / entry and the field.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
import torch
from helpers.hostile import refuse, run_case

import stzoo

pytestmark = pytest.mark.hostile


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("ckpt") / "m"
    stzoo.load("convlstm-mmnist-s").save_pretrained(out)
    return out


def _copy(folder: Path, tmp_path: Path) -> Path:
    import shutil

    dst = tmp_path / "m"
    shutil.copytree(folder, dst)
    return dst


# ---- F11: config.json --------------------------------------------------------------------------------------
INPUT_CASES = {
    "height_str": ("height", "abc"),
    "height_negative": ("height", -3),
    "height_zero": ("height", 0),
    "height_bool": ("height", True),
    "height_float": ("height", 64.5),
    "frames_in_zero": ("frames_in", 0),
    "channels_huge": ("channels", 10**12),
    "width_huge": ("width", 10**9),
    "value_range_reversed": ("value_range", [1.0, 0.0]),
    "value_range_strings": ("value_range", ["0", "1"]),
}


@pytest.mark.parametrize("case", list(INPUT_CASES))
def test_bad_input_block(case, folder, tmp_path):
    d = _copy(folder, tmp_path)
    cfg = json.loads((d / "config.json").read_text())
    key, value = INPUT_CASES[case]
    cfg["input"][key] = value
    (d / "config.json").write_text(json.dumps(cfg))
    r = refuse(f"import stzoo\nstzoo.load({str(d)!r})", match=key, within=30)
    assert r["type"] == "ConfigError" and "config.json" in r["message"]


@pytest.mark.parametrize(
    "body",
    [
        b"[" * 100_000 + b"]" * 100_000,
        b'{"a": ' + b"[" * 100 + b"]" * 100 + b"}",
        b'{"stzoo_format": 1, "input": {"height": NaN}}',
        b'{"stzoo_format": 1, "x": Infinity}',
        b"\xff\xfe{}",
        b'{"pad": "' + b"x" * (2 << 20) + b'"}',
    ],
    ids=["deep", "deep-but-parsable", "nan", "infinity", "not-utf8", "huge"],
)
def test_malformed_config_json(body, folder, tmp_path):
    d = _copy(folder, tmp_path)
    (d / "config.json").write_bytes(body)
    r = refuse(f"import stzoo\nstzoo.load({str(d)!r})", match="config.json", within=30)
    assert r["type"] == "ConfigError"


# ---- F8: weights a float32 model cannot hold -----------------------------------------------------------------
def _rewrite_weights(d: Path, convert) -> None:
    from safetensors.torch import load_file, save_file

    state = load_file(str(d / "model.safetensors"))
    save_file({k: convert(v).contiguous() if v.is_floating_point() else v for k, v in state.items()}, str(d / "w"))
    (d / "w").replace(d / "model.safetensors")
    cfg = json.loads((d / "config.json").read_text())
    data = (d / "model.safetensors").read_bytes()
    cfg["weights"].update(sha256=hashlib.sha256(data).hexdigest(), size=len(data))
    (d / "config.json").write_text(json.dumps(cfg))


def test_float64_weights_beyond_float32_are_refused(folder, tmp_path):
    d = _copy(folder, tmp_path)
    _rewrite_weights(d, lambda v: v.double() * 1e300)
    r = refuse(f"import stzoo\nstzoo.load({str(d)!r})", match="float32 range", within=30)
    assert r["type"] == "CorruptWeightsError"


@pytest.mark.parametrize("dtype", ["float8_e4m3fn", "float8_e5m2"])
def test_float8_weights_load_by_an_exact_cast(dtype, folder, tmp_path):
    if not hasattr(torch, dtype):
        pytest.skip(f"torch has no {dtype}")
    d = _copy(folder, tmp_path)
    _rewrite_weights(d, lambda v: v.to(getattr(torch, dtype)))
    code = (
        "import numpy as np, stzoo\n"
        f"y = stzoo.load({str(d)!r}).predict(np.zeros((10, 64, 64), np.uint8))\n"
        "assert y.shape == (10, 64, 64)\n"
    )
    r = run_case(code, timeout=60)
    assert not r.get("raised"), r


def test_float8_weights_with_nan_are_refused(folder, tmp_path):
    if not hasattr(torch, "float8_e4m3fn"):
        pytest.skip("torch has no float8")
    d = _copy(folder, tmp_path)
    _rewrite_weights(d, lambda v: torch.full_like(v, float("nan")).to(torch.float8_e4m3fn))
    refuse(f"import stzoo\nstzoo.load({str(d)!r})", match="non-finite", within=30)


# ---- F19: malformed manifest entries ---------------------------------------------------------------------
def _manifest_case(change: str) -> str:
    return (
        "import stzoo.zoo.manifest as M\nm = M.load_manifest()\n"
        "e = m['models']['tau-mmnist-s']\n"
        f"{change}\n"
        "M.get_entry(NAME, m)\n"
    )


MANIFEST_CASES = {
    "no_models": ("m = {}\nNAME = 'tau-mmnist-s'", "models"),
    "models_list": ("m = {'models': [1]}\nNAME = 'x'", "models"),
    "entry_list": ("m['models']['x'] = [1]\nNAME = 'x'", "'x'"),
    "alias_nowhere": ("m['models']['x'] = {'alias': 'nothing'}\nNAME = 'x'", "alias"),
    "alias_of_alias": ("m['models']['x'] = {'alias': 'tau-mmnist'}\nNAME = 'x'", "alias"),
    "no_input": ("del e['input']\nNAME = 'tau-mmnist-s'", "input"),
    "input_missing_key": ("del e['input']['height']\nNAME = 'tau-mmnist-s'", "height"),
    "hub_partial": ("e['weights']['hub'] = {'repo_id': 'a/b'}\nNAME = 'tau-mmnist-s'", "filename"),
    "sha_not_hex": ("e['weights']['sha256'] = 'zz'\nNAME = 'tau-mmnist-s'", "sha256"),
    "size_negative": ("e['weights']['size'] = -1\nNAME = 'tau-mmnist-s'", "size"),
    "config_list": ("e['config'] = [1]\nNAME = 'tau-mmnist-s'", "config"),
    "deep": ("x = {}\nfor _ in range(50):\n    x = {'a': x}\ne['training'] = x\nNAME = 'tau-mmnist-s'", "nests"),
}


@pytest.mark.parametrize("case", list(MANIFEST_CASES))
def test_malformed_manifest_entry(case):
    change, field = MANIFEST_CASES[case]
    r = refuse(_manifest_case(change), match=field, within=30)
    assert r["type"] == "ConfigError", r


def test_malformed_speed_record():
    code = (
        "import stzoo.zoo.manifest as M\nm = M.load_manifest()\n"
        "m['models']['tau-mmnist-s']['speed'] = {'cpu': {'seq_per_s': 'fast'}}\n"
        "M.format_speed(M.get_entry('tau-mmnist-s', m))\n"
    )
    refuse(code, match="seq_per_s", within=30)


# ---- F18: convert openstl --config ---------------------------------------------------------------------
CONVERT_CASES = {
    "py-deep": ("c.py", b"x = " + b"[" * 100_000 + b"]" * 100_000),
    "py-deep-parens": ("c.py", b"x = " + b"(" * 300 + b"1" + b")" * 300),
    "py-nul": ("c.py", b"x = 1\x00"),
    "py-huge": ("c.py", b"x = 1\n" * 300_000),
    "py-latin1": ("c.py", b"x = '\xe9'\n"),
    "json-deep": ("c.json", b"[" * 100_000 + b"]" * 100_000),
    "json-not-utf8": ("c.json", b"\xff\xfe{}"),
    "json-nan": ("c.json", b'{"patch_size": NaN}'),
}


@pytest.mark.parametrize("case", list(CONVERT_CASES))
def test_hostile_convert_config_files(case, tmp_path):
    name, body = CONVERT_CASES[case]
    (tmp_path / name).write_bytes(body)
    code = (
        f"from stzoo.convert.openstl.reading import read_openstl_config\nread_openstl_config({str(tmp_path / name)!r})"
    )
    r = refuse(code, within=30)
    assert r["type"] == "ConfigError", r


def test_hostile_convert_config_string():
    code = "from stzoo.convert.openstl.reading import read_openstl_config\n"
    code += "read_openstl_config('{\"a\": ' + '[' * 100000 + ']' * 100000 + '}')"
    refuse(code, match="nests too deeply", within=30)
