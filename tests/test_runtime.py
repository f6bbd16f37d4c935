"""stzoo.runtime: bf16 detection (simulated CPUs), the bf16 warning of stzoo.load, the machine record."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest
import torch

import stzoo
from stzoo import runtime
from stzoo.runtime import PerformanceWarning

NO_UNITS = frozenset({"sse4_2", "avx", "avx2", "fma"})
AMX = frozenset({"avx2", "avx512f", "amx_tile", "amx_bf16"})
ZEN4 = frozenset({"avx2", "avx512f", "avx512_bf16"})


@pytest.fixture
def cpu(monkeypatch):
    """Simulate a CPU: ``cpu(flags)`` replaces the one flags reader everything goes through."""

    def set_flags(flags):
        monkeypatch.setattr(runtime, "read_cpu_flags", lambda: frozenset(flags))

    return set_flags


def test_detection_without_units(cpu):
    cpu(NO_UNITS)
    assert runtime.cpu_bf16_units() == []
    assert runtime.native_bf16("cpu") is False and runtime.native_bf16(torch.device("cpu")) is False
    assert runtime.cpu_description().endswith("(no native bf16)")
    assert runtime.bf16_cost_warning("cpu") is not None


@pytest.mark.parametrize(
    "flags, units", [(AMX, ["amx_bf16"]), (ZEN4, ["avx512_bf16"]), (AMX | ZEN4, ["amx_bf16", "avx512_bf16"])]
)
def test_detection_with_units(cpu, flags, units):
    cpu(flags)
    assert runtime.cpu_bf16_units() == units
    assert runtime.native_bf16("cpu") is True and runtime.native_bf16(None) is True
    assert runtime.cpu_description().endswith(f"({', '.join(units)})")
    assert runtime.bf16_cost_warning("cpu") is None


def test_detection_cuda_and_other_devices(cpu, monkeypatch):
    cpu(AMX)  # the CPU's units say nothing about another device
    assert runtime.native_bf16("meta") is False
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    assert runtime.native_bf16("cuda") is True
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: False)
    assert runtime.native_bf16("cuda:0") is False
    assert runtime.bf16_cost_warning("cuda") is None  # only CPUs are warned about


def test_real_flags_reader_reads_this_machine():
    flags = runtime.read_cpu_flags()
    assert isinstance(flags, frozenset)
    if Path("/proc/cpuinfo").exists() and "flags" in Path("/proc/cpuinfo").read_text():
        assert flags  # an x86 Linux machine lists its flags
    assert runtime.cpu_bf16_units() == [f for f in runtime.BF16_UNITS if f in flags]
    assert isinstance(runtime.cpu_model(), str) and runtime.cpu_model()


def test_machine_description(cpu):
    cpu(ZEN4 | {"fma"})
    m = runtime.machine_description()
    assert m["bf16_units"] == ["avx512_bf16"]
    assert m["cpu_flags"] == ["avx2", "fma", "avx512f", "avx512_bf16"]
    assert {"cpu", "cpu_capability", "threads", "allocator", "torch_version"} <= set(m)


def test_load_bf16_warns_once_without_units(cpu):
    cpu(NO_UNITS)
    with pytest.warns(PerformanceWarning) as record:
        p = stzoo.load("convlstm-mmnist-s", pretrained=False, dtype="bfloat16")
    assert p.dtype == torch.bfloat16  # it still works: a warning, not a refusal
    ours = [w for w in record if issubclass(w.category, PerformanceWarning)]
    assert len(ours) == 1
    text = str(ours[0].message)
    assert "bf16" in text and "docs/benchmarks.md" in text and "float32" in text
    assert ours[0].filename == __file__  # points at the caller, not at stzoo's internals
    assert issubclass(PerformanceWarning, UserWarning)


@pytest.mark.parametrize("flags", [AMX, ZEN4])
def test_load_bf16_silent_with_units(cpu, flags):
    cpu(flags)
    with warnings.catch_warnings():
        warnings.simplefilter("error", PerformanceWarning)
        assert stzoo.load("convlstm-mmnist-s", pretrained=False, dtype="bfloat16").dtype == torch.bfloat16


def test_load_fp32_never_warns(cpu):
    cpu(NO_UNITS)
    with warnings.catch_warnings():
        warnings.simplefilter("error", PerformanceWarning)
        assert stzoo.load("convlstm-mmnist-s", pretrained=False).dtype == torch.float32
        stzoo.create("tau", {"hid_S": 4, "hid_T": 8, "N_S": 2, "N_T": 2}, dtype="float32")


def test_create_bf16_warns_too(cpu):
    cpu(NO_UNITS)
    with pytest.warns(PerformanceWarning):
        stzoo.create("tau", {"hid_S": 4, "hid_T": 8, "N_S": 2, "N_T": 2}, dtype=torch.bfloat16)


def test_the_warning_points_at_a_real_section():
    doc = Path(__file__).resolve().parents[1] / "docs" / "benchmarks.md"
    section = runtime.BF16_DOC.split("section ", 1)[1].strip("'")
    assert runtime.BF16_DOC.startswith("docs/benchmarks.md")
    assert f"## {section}" in doc.read_text(encoding="utf-8")
