"""GraphStructure: cached layouts against counting references, conversions both ways, PyG interop."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from graphvision import GraphStructure, ops
from graphvision.testing.strategies import graphs
from tests.reference import ref_csr


@given(graph=graphs(max_nodes=12, contiguous=None), int32=st.booleans())
def test_csr_matches_counting_reference(graph, int32: bool) -> None:
    n, ei = graph
    ei = ei.int() if int32 else ei
    g = GraphStructure(ei, n)
    rowptr, col, perm = ref_csr(ei, n)
    assert g.rowptr.tolist() == rowptr
    assert g.col.tolist() == col
    assert g.perm.tolist() == perm  # stable: duplicates keep their order
    assert g.rowptr.dtype == g.col.dtype == g.perm.dtype == torch.int64
    assert g.in_degree().tolist() == [rowptr[i + 1] - rowptr[i] for i in range(n)]


@given(graph=graphs(max_nodes=12, contiguous=None))
def test_transpose_is_source_sorted_view(graph) -> None:
    n, ei = graph
    g = GraphStructure(ei, n)
    rowptr_t, col_t, perm_t = g.csr_t()
    rev_rowptr, _, _ = ref_csr(ei.flip(0), n)
    assert rowptr_t.tolist() == rev_rowptr  # per-source counts
    assert sorted(perm_t.tolist()) == list(range(ei.size(1)))  # a permutation
    rowptr, col, _ = ref_csr(ei, n)
    row_of = [i for i in range(n) for _ in range(rowptr[i + 1] - rowptr[i])]
    for j in range(n):
        group = perm_t[rev_rowptr[j] : rev_rowptr[j + 1]].tolist()
        assert all(col[p] == j for p in group)  # every edge of source j
        assert group == sorted(group)  # stable: in target-sorted order
        assert col_t[rev_rowptr[j] : rev_rowptr[j + 1]].tolist() == [row_of[p] for p in group]


@given(graph=graphs(max_nodes=10, contiguous=None))
def test_neighbour_table_round_trip(graph) -> None:
    n, ei = graph
    g = GraphStructure(ei, n)
    nbr, mask, slot = g.neighbour_table()
    d = g.max_degree
    assert nbr.shape == mask.shape == slot.shape == (n, d)
    rowptr, col, _ = ref_csr(ei, n)
    for i in range(n):
        m = rowptr[i + 1] - rowptr[i]
        assert mask[i].tolist() == [True] * m + [False] * (d - m)
        assert nbr[i, :m].tolist() == col[rowptr[i] : rowptr[i + 1]]
        assert slot[i, :m].tolist() == list(range(rowptr[i], rowptr[i + 1]))
    back = GraphStructure.from_neighbour_table(nbr, mask)
    assert back.to_edge_index().tolist() == g.to_edge_index(sort=True).tolist()
    assert back.neighbour_table()[0].tolist() == nbr.tolist()


@given(graph=graphs(max_nodes=10, contiguous=None))
def test_from_csr_round_trip(graph) -> None:
    n, ei = graph
    g = GraphStructure(ei, n)
    h = GraphStructure.from_csr(g.rowptr, g.col)
    assert h.num_nodes == n and h.num_edges == ei.size(1)
    assert h.to_edge_index().tolist() == g.to_edge_index(sort=True).tolist()
    assert h.perm.tolist() == list(range(ei.size(1)))
    # Same sums through either structure.
    x = torch.randn(n, 3)
    torch.testing.assert_close(ops.spmm(h, None, x), ops.spmm(g, None, x))


def test_wider_table_and_too_narrow_table() -> None:
    g = GraphStructure(torch.tensor([[0, 1, 2], [2, 2, 0]]), 3)
    nbr, mask, _ = g.neighbour_table(max_degree=4)
    assert nbr.shape == (3, 4) and mask.sum().item() == 3
    with pytest.raises(ValueError, match="max_degree.*>= the maximum in-degree 2"):
        g.neighbour_table(max_degree=1)


def test_bipartite_and_inferred_sizes() -> None:
    ei = torch.tensor([[0, 4, 3], [1, 1, 0]])
    g = GraphStructure(ei, num_nodes=2, num_src_nodes=5)
    assert g.rowptr.tolist() == [0, 1, 3]
    assert g.rowptr_t.numel() == 6
    assert GraphStructure(ei).num_nodes == 5
    assert GraphStructure(ei, num_src_nodes=5).num_nodes == 2  # bipartite: targets only
    with pytest.raises(IndexError, match="num_src_nodes"):
        GraphStructure(ei, num_nodes=2, num_src_nodes=3)
    with pytest.raises(IndexError, match="num_nodes"):
        GraphStructure(ei, num_nodes=1, num_src_nodes=5)


def test_validation() -> None:
    with pytest.raises(ValueError, match=r"\(2, E\)"):
        GraphStructure(torch.zeros(3, 2, dtype=torch.long), 3)
    with pytest.raises(TypeError, match="int64 or torch.int32"):
        GraphStructure(torch.zeros(2, 2), 3)
    with pytest.raises(ValueError, match="rowptr"):
        GraphStructure.from_csr(torch.tensor([0, 2, 1]), torch.tensor([0]))
    with pytest.raises(TypeError, match="mask"):
        GraphStructure.from_neighbour_table(torch.zeros(2, 2, dtype=torch.long), torch.zeros(2, 2))


def test_to_device_keeps_caches_and_repr() -> None:
    g = GraphStructure(torch.tensor([[0, 1], [1, 0]]), 2).precompute()
    assert "csr" in repr(g) and "table" in repr(g)
    assert g.to("cpu") is g
    h = g.to("meta")
    assert h.device.type == "meta" and h._csr is not None and h._csr[0].device.type == "meta"
    assert h._table is not None and h.num_nodes == 2


def test_empty_graph() -> None:
    g = GraphStructure(torch.empty(2, 0, dtype=torch.long), 3)
    assert g.rowptr.tolist() == [0, 0, 0, 0] and g.max_degree == 0
    nbr, mask, slot = g.neighbour_table()
    assert nbr.shape == (3, 0)
    assert GraphStructure(torch.empty(2, 0, dtype=torch.long), 0).rowptr.tolist() == [0]


def test_pyg_zero_copy_round_trip() -> None:
    pyg = pytest.importorskip("torch_geometric")
    ei = torch.tensor([[0, 1, 2, 0], [1, 2, 0, 2]])
    g = GraphStructure(ei, num_nodes=4)
    p = g.to_pyg()
    assert isinstance(p, pyg.EdgeIndex)
    assert p.sparse_size() == (4, 4)
    assert p.as_tensor().data_ptr() == ei.data_ptr()  # zero copy
    back = GraphStructure.from_pyg(p)
    assert back.edge_index.data_ptr() == ei.data_ptr() and back.num_nodes == 4
    h = GraphStructure.from_csr(g.rowptr, g.col)
    srt = h.to_pyg()
    assert srt.is_sorted_by_col and not p.is_sorted_by_col
    assert srt.as_tensor().data_ptr() == h.edge_index.data_ptr()
    data = pyg.data.Data(edge_index=ei, num_nodes=5)
    assert GraphStructure.from_pyg(data).num_nodes == 5
    assert GraphStructure.from_pyg(ei, num_nodes=3).num_nodes == 3


def test_structure_is_reused_under_compile() -> None:
    torch._dynamo.reset()
    ei = torch.tensor([[0, 1, 2, 2], [1, 2, 0, 1]])
    g = GraphStructure(ei, 3).precompute()
    rowptr_before = g.rowptr
    f = torch.compile(lambda x: ops.spmm(g, None, x), fullgraph=True, backend="aot_eager")
    x = torch.randn(3, 2)
    torch.testing.assert_close(f(x), ops.spmm(ei, None, x))
    assert g.rowptr is rowptr_before
