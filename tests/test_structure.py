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
def test_fixed_degree_table_round_trip(graph) -> None:
    n, ei = graph
    g = GraphStructure(ei, n)
    d = g.max_degree
    rowptr, col, _ = ref_csr(ei, n)
    nbr = torch.zeros(n, d, dtype=torch.long)
    mask = torch.zeros(n, d, dtype=torch.bool)
    for i in range(n):
        m = rowptr[i + 1] - rowptr[i]
        nbr[i, :m] = torch.tensor(col[rowptr[i] : rowptr[i + 1]], dtype=torch.long)
        mask[i, :m] = True
    for validate in (True, False):
        back = GraphStructure.from_neighbour_table(nbr, mask, validate=validate)
        assert back.to_edge_index().tolist() == g.to_edge_index(sort=True).tolist()
        assert back.identity_perm or back.num_edges == 0


def test_fixed_degree_graph_knows_its_degree() -> None:
    nbr = torch.tensor([[1, 2], [0, 2], [0, 1]])
    g = GraphStructure.from_neighbour_table(nbr, validate=False)
    assert g.rowptr.tolist() == [0, 2, 4, 6] and g.max_degree == 2 and g.is_cached("max_degree")
    assert g.col.tolist() == [1, 2, 0, 2, 0, 1] and g.perm.tolist() == list(range(6))


def ref_pyg_self_loops(ei: torch.Tensor, n: int) -> list[tuple[int, int, int]]:
    """(target, source, index) of PyG's remove_self_loops + add_self_loops, index as with_self_loops documents."""
    e = ei.size(1)
    out = [(int(ei[1, k]), int(ei[0, k]), k) for k in range(e) if int(ei[0, k]) != int(ei[1, k])]
    out += [(v, v, e + v) for v in range(n)]
    return sorted(out)


@given(graph=graphs(max_nodes=10, contiguous=None))
def test_self_loops_follow_pyg_and_are_cached(graph) -> None:
    n, ei = graph
    g = GraphStructure(ei, n)
    looped, index = g.with_self_loops()
    got = sorted(zip(looped.edge_index[1].tolist(), looped.edge_index[0].tolist(), index.tolist()))
    assert got == ref_pyg_self_loops(ei, n)
    assert looped.identity_perm or looped.num_edges == 0  # built target-sorted, no sort
    assert g.with_self_loops()[0] is looped  # cached on the structure


@given(graph=graphs(max_nodes=10, contiguous=None))
def test_static_shape_self_loops_send_removed_loops_to_an_extra_row(graph) -> None:
    from graphvision.structure import _self_looped

    n, ei = graph
    g = GraphStructure(ei, n)
    looped, index = _self_looped(g, compact=False)
    e, loops = ei.size(1), int((ei[0] == ei[1]).sum())
    assert looped.num_edges == e + n and looped.num_nodes == n + 1 and looped.num_src_nodes == n
    dst = looped.edge_index[1]
    assert int((dst == n).sum()) == loops and bool((index[dst == n] == e + n).all())
    kept = dst < n
    got = sorted(zip(dst[kept].tolist(), looped.edge_index[0][kept].tolist(), index[kept].tolist()))
    assert got == ref_pyg_self_loops(ei, n)


def test_in_place_edit_drops_everything_derived() -> None:
    ei = torch.tensor([[0, 1, 2], [1, 2, 0]])
    g = GraphStructure(ei, 3)
    looped, _ = g.with_self_loops()
    assert g.rowptr.tolist() == [0, 1, 2, 3] and g.is_cached("csr")
    ei[1, 0] = 2  # in place: 0 -> 2 instead of 0 -> 1
    assert g.rowptr.tolist() == [0, 1, 1, 3]  # rebuilt, never stale
    assert g.with_self_loops()[0] is not looped
    x = torch.eye(3)
    torch.testing.assert_close(ops.spmm(g, None, x), torch.zeros(3, 3).index_add_(0, ei[1], x[ei[0]]))
    ei[0, 0] = 7  # out of range: refused on the next use, not read out of bounds
    with pytest.raises(IndexError, match=r"outside of \[0, 3\)"):
        g.csr()


def test_clear_cache() -> None:
    g = GraphStructure(torch.tensor([[0, 1], [1, 0]]), 2).precompute()
    assert g.is_cached("csr_t")
    g.clear_cache()
    assert not g.is_cached("csr") and g.rowptr.tolist() == [0, 1, 2]


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


def test_bipartite_and_inferred_sizes() -> None:
    ei = torch.tensor([[0, 4, 3], [1, 1, 0]])
    g = GraphStructure(ei, num_nodes=2, num_src_nodes=5)
    assert g.rowptr.tolist() == [0, 1, 3]
    assert g.rowptr_t.numel() == 6
    assert GraphStructure(ei).num_nodes == 5
    assert GraphStructure(ei, num_src_nodes=5).num_nodes == 2  # bipartite: targets only
    with pytest.raises(IndexError, match="source nodes"):
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


def test_to_device_moves_the_csr_and_drops_the_rest() -> None:
    g = GraphStructure(torch.tensor([[0, 1], [1, 0]]), 2).precompute()
    g.with_self_loops()
    assert "csr" in repr(g) and "self_loops" in repr(g)
    assert g.to("cpu") is g
    h = g.to("meta")
    assert h.device.type == "meta" and h.num_nodes == 2
    assert h._derived["csr"][0].device.type == "meta" and h._derived["csr_t"][0].device.type == "meta"
    assert not any(isinstance(k, tuple) and k[0] == "self_loops" for k in h._derived)


def test_empty_graph() -> None:
    g = GraphStructure(torch.empty(2, 0, dtype=torch.long), 3)
    assert g.rowptr.tolist() == [0, 0, 0, 0] and g.max_degree == 0
    looped, index = g.with_self_loops()
    assert looped.edge_index.tolist() == [[0, 1, 2], [0, 1, 2]] and index.tolist() == [0, 1, 2]
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
