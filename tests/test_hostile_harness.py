"""The hostile-input harness itself: a clean refusal passes, a raw exception and a memory blow-up are seen."""

from helpers.hostile import refuse, run_case


def test_harness_refusal():
    refuse("import stzoo; stzoo.load('no-such-model')", match="unknown model")


def test_harness_leak_detected():
    r = run_case("raise KeyError('x')")
    assert r["raised"] and not r["stzoo"]


def test_harness_memory():
    r = run_case("import numpy as np; a = np.ones(2**34)", mem_mb=3000)
    assert r["raised"] and r["type"] == "MemoryError"
