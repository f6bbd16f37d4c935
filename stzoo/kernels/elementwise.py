"""Fused elementwise kernels: NVRTC-compiled ``torch.cuda.jiterator`` kernels on CUDA, pure torch on CPU.

Each public function computes the same thing on every device:

* on CUDA it launches one jiterator kernel (compiled at run time by NVRTC the first time it is
  called for a dtype; no Triton, no ``torch.compile``), reading every input once and writing every
  output once, computing in fp32 whatever the storage dtype;
* elsewhere (CPU) it runs a short sequence of torch ops written to make as few passes over memory
  as the ops allow.

The kernels are for inference: jiterator functions have no autograd, so these functions must not
be called on tensors that require grad (the fused modules that use them refuse training mode).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from functools import cache
from typing import Any

import torch
from torch import Tensor

__all__ = ["lstm_cell_update", "sam_memory_update", "jiterator_available", "tracing"]

# c' = σ(f)·c + σ(i)·tanh(g);  h' = σ(o)·tanh(c')
_LSTM_CODE = """
template <typename T> void stzoo_lstm_cell(T i, T f, T g, T o, T c, T& h_out, T& c_out) {
    float si = 1.0f / (1.0f + expf(-static_cast<float>(i)));
    float sf = 1.0f / (1.0f + expf(-static_cast<float>(f)));
    float so = 1.0f / (1.0f + expf(-static_cast<float>(o)));
    float cn = sf * static_cast<float>(c) + si * tanhf(static_cast<float>(g));
    c_out = static_cast<T>(cn);
    h_out = static_cast<T>(so * tanhf(cn));
}
"""

# i' = σ(i);  m' = (1 − i')·m + i'·tanh(g);  h' = σ(o)·m'
_SAM_CODE = """
template <typename T> void stzoo_sam_memory(T i, T g, T o, T m, T& h_out, T& m_out) {
    float si = 1.0f / (1.0f + expf(-static_cast<float>(i)));
    float so = 1.0f / (1.0f + expf(-static_cast<float>(o)));
    float mf = static_cast<float>(m);
    float mn = mf + si * (tanhf(static_cast<float>(g)) - mf);
    m_out = static_cast<T>(mn);
    h_out = static_cast<T>(so * mn);
}
"""


def jiterator_available() -> bool:
    """True when ``torch.cuda.jiterator`` can be used (a CUDA build with a visible GPU)."""
    if not torch.cuda.is_available():
        return False
    try:
        importlib.import_module("torch.cuda.jiterator")
    except ImportError:
        return False
    return True


@cache
def _jit(code: str, num_outputs: int) -> Callable[..., Any]:
    from torch.cuda.jiterator import _create_multi_output_jit_fn

    return _create_multi_output_jit_fn(code, num_outputs=num_outputs)


def _use_jiterator(t: Tensor) -> bool:
    return t.is_cuda and jiterator_available() and not tracing()


def tracing() -> bool:
    """True while torch.export / ONNX export / TorchScript tracing records the graph: the fused
    modules then use plain ATen ops that every exporter knows (no jiterator, no oneDNN post-ops)."""
    compiler = getattr(torch, "compiler", None)
    if compiler is not None and getattr(compiler, "is_compiling", lambda: False)():
        return True
    return torch.jit.is_tracing() or torch.onnx.is_in_onnx_export()


def lstm_cell_update(gates: Tensor, c: Tensor) -> tuple[Tensor, Tensor]:
    """The ConvLSTM cell update from the pre-activation gates.

    Args:
        gates: B×4C×H×W pre-activations in the order i, f, g, o (the output of the gate conv).
        c: B×C×H×W cell state.

    Returns:
        ``(h, c_new)`` with ``c_new = σ(f)·c + σ(i)·tanh(g)`` and ``h = σ(o)·tanh(c_new)``.
    """
    i, f, g, o = gates.chunk(4, dim=1)
    if _use_jiterator(gates):
        h, c_new = _jit(_LSTM_CODE, 2)(i, f, g, o, c)
        return h, c_new
    s_if = torch.sigmoid(gates[:, : 2 * c.shape[1]])
    si, sf = s_if.chunk(2, dim=1)
    c_new = torch.addcmul(sf * c, si, torch.tanh(g))
    h = torch.sigmoid(o).mul_(torch.tanh(c_new))
    return h, c_new


def sam_memory_update(gates: Tensor, m: Tensor) -> tuple[Tensor, Tensor]:
    """The self-attention-memory update of SA-ConvLSTM from the pre-activation gates.

    Args:
        gates: B×3C×H×W pre-activations in the order i', g', o'.
        m: B×C×H×W memory M_{t−1}.

    Returns:
        ``(h, m_new)`` with ``m_new = (1 − σ(i'))·m + σ(i')·tanh(g')`` and ``h = σ(o')·m_new``.
    """
    i, g, o = gates.chunk(3, dim=1)
    if _use_jiterator(gates):
        h, m_new = _jit(_SAM_CODE, 2)(i, g, o, m)
        return h, m_new
    si = torch.sigmoid(i)
    m_new = torch.addcmul(m, si, torch.tanh(g).sub_(m))
    h = torch.sigmoid(o).mul_(m_new)
    return h, m_new
