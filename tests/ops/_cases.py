"""Shared hypothesis cases and helpers for the ops tests (not collected: no test_ prefix)."""

from __future__ import annotations

from typing import NamedTuple

import pytest
import torch
from hypothesis import strategies as st
from torch import Tensor

from graphvision.testing.strategies import graphs

# Backends tested on every hypothesis case; optional ones are skipped when not installed.
BACKENDS = ["torch", "torch_scatter", "torch_sparse"]


def require_backend(name: str) -> None:
    """Skip unless ``name`` can run on the CPU here (torch_scatter / torch_sparse are optional)."""
    if name == "torch_scatter":
        pytest.importorskip("torch_scatter")
    if name == "torch_sparse":
        pytest.importorskip("torch_sparse")


class GraphCase(NamedTuple):
    num_nodes: int
    edge_index: Tensor
    heads: int
    channels: int
    weight_kind: str  # "none", "edge", "head"
    seed: int


@st.composite
def graph_cases(draw: st.DrawFn, max_nodes: int = 9, hub: bool | None = None) -> GraphCase:
    """A graph with edge cases (empty, isolated nodes, duplicates, self-loops, unsorted,
    int32/int64, non-contiguous edge_index) and sometimes one node of huge in-degree."""
    dtype = draw(st.sampled_from([torch.int64, torch.int32]))
    n, ei = draw(graphs(min_nodes=0, max_nodes=max_nodes, max_edges=3 * max_nodes, contiguous=None, dtype=dtype))
    if hub is None:
        hub = draw(st.booleans()) and n > 0
    if hub and n > 0:
        g = torch.Generator().manual_seed(draw(st.integers(0, 2**16)))
        deg = draw(st.integers(20, 60))
        src = torch.randint(n, (deg,), generator=g)
        extra = torch.stack([src, torch.zeros(deg, dtype=torch.int64)]).to(dtype)
        ei = torch.cat([ei, extra], 1)
        ei = ei[:, torch.randperm(ei.size(1), generator=g)]
    heads = draw(st.integers(1, 3))
    channels = draw(st.integers(1, 4))
    kind = draw(st.sampled_from(["none", "edge", "head"]))
    return GraphCase(n, ei, heads, channels, kind, draw(st.integers(0, 2**16)))


def make_weight(case: GraphCase, dtype: torch.dtype = torch.float64) -> Tensor | None:
    g = torch.Generator().manual_seed(case.seed + 1)
    e = case.edge_index.size(1)
    if case.weight_kind == "none":
        return None
    if case.weight_kind == "edge":
        return torch.rand(e, generator=g, dtype=torch.float64).to(dtype) + 0.1
    return torch.rand(e, case.heads, generator=g, dtype=torch.float64).to(dtype) + 0.1


def randn(seed: int, *shape: int, dtype: torch.dtype = torch.float64) -> Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(*shape, generator=g, dtype=torch.float64).to(dtype)


def grads(out: Tensor | tuple[Tensor, ...], inputs: list[Tensor | None], seed: int = 0) -> list[Tensor | None]:
    """Gradients of a random linear functional of ``out`` w.r.t. ``inputs`` (None stays None)."""
    outs = out if isinstance(out, tuple) else (out,)
    loss = sum((o.to(torch.float64) * randn(seed + i, *o.shape)).sum() for i, o in enumerate(outs))
    live = [t for t in inputs if t is not None]
    if not live or not loss.requires_grad:
        return [None if t is None else torch.zeros_like(t) for t in inputs]
    gs = iter(torch.autograd.grad(loss, live, allow_unused=True))
    res = []
    for t in inputs:
        if t is None:
            res.append(None)
        else:
            g = next(gs)
            res.append(torch.zeros_like(t) if g is None else g)
    return res
