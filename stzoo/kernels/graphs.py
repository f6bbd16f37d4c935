"""CUDA-graph caching for fixed-shape inference (CUDA only).

A :class:`GraphedCall` wraps a function of tensors (a model's ``forward``, or a whole recurrent
rollout ``model(x, n_out)``). The first call for a given signature — the shapes, dtypes and devices
of the tensor arguments plus the values of the other arguments — warms the function up on a side
stream and captures it into a ``torch.cuda.CUDAGraph`` with static input/output buffers. Later
calls with the same signature copy the inputs into the static buffers and replay the graph: one
launch instead of hundreds, which is what matters for small batches and for recurrent rollouts.

Only for inference under ``torch.no_grad()`` of functions whose work depends on nothing but the
shapes of their inputs (true for every stzoo model's inference path).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor
from torch.utils._pytree import tree_map_only

from stzoo.errors import InputError

__all__ = ["GraphedCall"]


class _Entry:
    def __init__(self, graph: torch.cuda.CUDAGraph, inputs: list[Tensor], output: Any):
        self.graph, self.inputs, self.output = graph, inputs, output


def _clone_out(out: Any) -> Any:
    return tree_map_only(Tensor, torch.clone, out)


class GraphedCall:
    """Call ``fn(*args)`` through CUDA graphs cached per argument signature.

    Args:
        fn: the function; its tensor arguments must be CUDA tensors.
        max_graphs: how many signatures to keep (least recently used ones are dropped).
        warmup: eager calls on a side stream before capture (lets cuDNN / jiterator pick and
            compile their kernels outside the capture).

    Returns (when called):
        A fresh copy of ``fn``'s output (the static output buffer is reused by the next replay).
    """

    def __init__(self, fn: Callable[..., Any], *, max_graphs: int = 8, warmup: int = 2):
        self.fn = fn
        self.max_graphs = int(max_graphs)
        self.warmup = int(warmup)
        self._cache: OrderedDict[tuple, _Entry] = OrderedDict()

    def __len__(self) -> int:
        return len(self._cache)

    def clear(self) -> None:
        """Drop every captured graph (and its memory pool)."""
        self._cache.clear()

    @staticmethod
    def _key(args: tuple) -> tuple:
        return tuple((tuple(a.shape), a.dtype, str(a.device)) if isinstance(a, Tensor) else ("v", a) for a in args)

    def _capture(self, args: tuple) -> _Entry:
        static = [a.clone() if isinstance(a, Tensor) else a for a in args]
        stream = torch.cuda.Stream()
        stream.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(stream):
            for _ in range(self.warmup):
                self.fn(*static)
        torch.cuda.current_stream().wait_stream(stream)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            out = self.fn(*static)
        return _Entry(graph, static, out)

    def __call__(self, *args: Any) -> Any:
        if not any(isinstance(a, Tensor) and a.is_cuda for a in args):
            raise InputError("GraphedCall needs CUDA tensor arguments (CUDA graphs are CUDA-only)")
        if torch.is_grad_enabled():
            raise InputError("GraphedCall is for inference: call it under torch.no_grad()")
        key = self._key(args)
        entry = self._cache.get(key)
        if entry is None:
            entry = self._capture(args)
            self._cache[key] = entry
            while len(self._cache) > self.max_graphs:
                self._cache.popitem(last=False)
        else:
            self._cache.move_to_end(key)
        for buf, a in zip(entry.inputs, args):
            if isinstance(a, Tensor):
                buf.copy_(a)
        entry.graph.replay()
        return _clone_out(entry.output)
