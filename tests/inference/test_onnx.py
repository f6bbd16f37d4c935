"""ONNX export: static batch, TorchScript, verification, errors, the CLI. That every registered architecture
runs in onnxruntime like in torch (dynamic batch, metadata) is checked by tests/models/test_contract.py."""

import sys

import numpy as np
import onnxruntime as ort
import pytest
import torch

import stzoo
from stzoo.cli.main import main
from stzoo.errors import InputError, StzooError
from stzoo.inference.export import DEFAULT_ATOL, MissingDependencyError
from stzoo.inference.predictor import Predictor
from stzoo.models import ARCHITECTURES, build_model
from stzoo.zoo.manifest import InputSpec

T_IN = 4  # the frames the architectures' tiny configs read (stzoo.models.ARCHITECTURES[...].tiny_config)


def tiny(arch):
    model = build_model(arch, ARCHITECTURES[arch].tiny_config)
    return Predictor(model, InputSpec(model.frames_in, model.frames_out, 1, 16, 16), name=f"tiny-{arch}")


def run(path, x):
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(["forecast"], {"frames": x.numpy()})[0]


def torch_out(p, x):
    with torch.no_grad():
        return (p.model(x, p.spec.frames_out) if p.recurrent else p.model(x)).numpy()


def test_static_batch_torchscript_and_verification(tmp_path):
    p = tiny("tau")
    path = tmp_path / "static.onnx"
    result = p.export_onnx(path, batch=3, dynamic_batch=False, exporter="torchscript")
    assert result.input_shape == (3, T_IN, 1, 16, 16) and result.checked_batches == (3,)
    assert result.max_abs_diff is not None and result.max_abs_diff <= DEFAULT_ATOL
    x = torch.rand(3, T_IN, 1, 16, 16)
    assert np.max(np.abs(run(path, x) - torch_out(p, x))) <= DEFAULT_ATOL
    with pytest.raises(Exception):  # noqa: B017 (a fixed batch of 3 refuses 2; onnxruntime's own error type)
        run(path, torch.rand(2, T_IN, 1, 16, 16))
    # a verification that fails keeps no file (and leaves an existing one alone)
    with pytest.raises(StzooError, match="differs from the torch model"):
        p.export_onnx(tmp_path / "strict.onnx", exporter="torchscript", atol=1e-12)
    assert not (tmp_path / "strict.onnx").exists()
    assert not list(tmp_path.glob(".*partial"))


def test_bad_arguments_are_refused_before_exporting(tmp_path):
    p = tiny("convlstm")
    with pytest.raises(InputError, match="exporter"):
        p.export_onnx(tmp_path / "a.onnx", exporter="tflite")
    with pytest.raises(InputError, match="batch"):
        p.export_onnx(tmp_path / "a.onnx", batch=0)
    with pytest.raises(InputError, match="divisible"):
        p.export_onnx(tmp_path / "a.onnx", height=15)
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize("missing", ["onnx", "onnxscript", "onnxruntime"])
def test_missing_package_names_the_extra(tmp_path, monkeypatch, missing):
    monkeypatch.setitem(sys.modules, missing, None)  # makes `import missing` raise ImportError
    with pytest.raises(MissingDependencyError, match=r"\.\[onnx\]") as info:
        tiny("convlstm").export_onnx(tmp_path / "a.onnx")
    assert missing in str(info.value) and isinstance(info.value, ImportError)


def test_cli_export_shipped_model(tmp_path, capsys):
    out = tmp_path / "convlstm.onnx"
    assert main(["export", "convlstm-mmnist-s", "--format", "onnx", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "opset 20" in text and "batch×10×1×64×64" in text and "max |onnx - torch|" in text
    p = stzoo.load("convlstm-mmnist-s")
    x = torch.rand(2, 10, 1, 64, 64, generator=torch.Generator().manual_seed(0))
    assert np.max(np.abs(run(out, x) - torch_out(p, x))) <= DEFAULT_ATOL
    # the verified file gives what predict gives (predict clips to [0, 1] and returns T×H×W floats)
    frames = x[0, :, 0].numpy()
    np.testing.assert_allclose(np.clip(run(out, x[:1]), 0, 1)[0, :, 0], p.predict(frames), atol=DEFAULT_ATOL)


def test_cli_export_static_batch_and_errors(tmp_path, capsys):
    out = tmp_path / "tau.onnx"
    p = tiny("tau")
    ckpt = p.save_pretrained(tmp_path / "ckpt", config=ARCHITECTURES["tau"].tiny_config)
    assert (
        main(["export", str(ckpt), "--out", str(out), "--static-batch", "--batch", "2", "--exporter", "torchscript"])
        == 0
    )
    assert "2×4×1×16×16" in capsys.readouterr().out
    assert main(["export", str(ckpt), "--out", str(out), "--height", "10"]) == 2
    assert "divisible" in capsys.readouterr().err
