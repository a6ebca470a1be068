"""The torch backend's CPU index cache (int32 CSR, head-expanded CSR, row index) and the
``addmm(beta=0)`` product into an uninitialised buffer: never stale, never garbage."""

from __future__ import annotations

import gc
import weakref

import pytest
import torch

import graphvision.ops as gops
from graphvision import GraphStructure
from graphvision.ops import _torch
from graphvision.testing import assert_close
from tests.reference import ref_attention_aggregate, ref_spmm


def _graph(n: int = 12, e: int = 40, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, n, (2, e), generator=g)


@pytest.mark.parametrize("heads", [None, 1, 3])
def test_reused_structure_matches_reference_every_call(heads: int | None) -> None:
    ei = _graph()
    st = GraphStructure(ei, num_nodes=12)
    for seed in range(3):  # same structure (cache hits after the first call), new features
        g = torch.Generator().manual_seed(seed)
        x = torch.randn(12, 5, generator=g, dtype=torch.float64) if heads is None else torch.randn(
            12, heads, 5, generator=g, dtype=torch.float64
        )
        w = torch.rand(ei.size(1), *(() if heads is None else (heads,)), generator=g, dtype=torch.float64)
        assert_close(gops.spmm(st, w, x, 12, backend="torch"), ref_spmm(ei, w, x, 12))


def test_in_place_change_of_the_index_is_not_served_from_the_cache() -> None:
    ei = _graph()
    x = torch.randn(12, 2, 4, dtype=torch.float64)
    w = torch.rand(ei.size(1), 2, dtype=torch.float64)
    rowptr, col, _ = GraphStructure(ei, num_nodes=12).csr()
    out1 = _torch.spmm_csr(rowptr, col, w, x)
    col[0] = (col[0] + 1) % 12  # bumps the version counter: the cached arrays must be rebuilt
    out2 = _torch.spmm_csr(rowptr, col, w, x)
    expect = torch.zeros(12, 2, 4, dtype=torch.float64)
    row = torch.repeat_interleave(torch.arange(12), rowptr[1:] - rowptr[:-1])
    expect.index_add_(0, row, w[:, :, None] * x[col])
    assert_close(out2, expect)
    assert not torch.allclose(out1, out2)


def test_index_arrays_live_on_the_structure_and_go_with_it() -> None:
    st = GraphStructure(_graph(seed=3), num_nodes=12)
    x = torch.randn(12, 2, 4)
    gops.attention_aggregate(x, torch.randn(12, 2), torch.randn(12, 2), st)
    rowptr = st.csr()[0]
    assert rowptr.__dict__.get(_torch._ATTR)  # kept on the structure's own CSR tensor
    ref = weakref.ref(rowptr)
    del st, rowptr
    gc.collect()
    assert ref() is None  # nothing global holds the structure's tensors
    assert not hasattr(_torch, "_INDEX_CACHE")


def test_in_place_edit_of_the_structure_rebuilds_every_derived_array() -> None:
    ei = _graph(seed=5)
    st = GraphStructure(ei, num_nodes=12)
    x = torch.randn(12, 2, 4, dtype=torch.float64)
    w = torch.rand(ei.size(1), 2, dtype=torch.float64)
    gops.spmm(st, w, x)
    ei[0, 0] = (ei[0, 0] + 1) % 12  # in-place edit of the structure's own edge_index
    assert_close(gops.spmm(st, w, x), ref_spmm(ei, w, x, 12))


def test_inference_tensors_are_not_cached_and_still_correct() -> None:
    ei = _graph(seed=4)
    with torch.inference_mode():
        st = GraphStructure(ei, num_nodes=12)
        x = torch.randn(12, 3, 4, dtype=torch.float64)
        a_s, a_d = torch.randn(12, 3, dtype=torch.float64), torch.randn(12, 3, dtype=torch.float64)
        out = gops.attention_aggregate(x, a_s, a_d, st, backend="torch")
    assert_close(out, ref_attention_aggregate(x, a_s, a_d, ei)[0])


def test_rows_without_edges_are_zero_whatever_the_allocator_returns() -> None:
    # addmm(beta=0) writes into torch.empty: a row with no edge must be 0 even when the buffer
    # held NaN before (free a NaN buffer of the same size first so the allocator reuses it).
    n, f = 64, 32
    ei = torch.stack([torch.arange(0, 32), torch.arange(0, 32)])  # nodes 32..63 have no edge
    st = GraphStructure(ei, num_nodes=n)
    x = torch.randn(n, f)
    for _ in range(5):
        junk = torch.full((n, f), float("nan"))
        del junk
        out = gops.spmm(st, None, x, n, backend="torch")
        assert torch.equal(out[32:], torch.zeros(n - 32, f))
        assert torch.equal(out[:32], x[:32])
