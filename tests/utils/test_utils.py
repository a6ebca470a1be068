"""graphvision.utils against torch_geometric.utils on messy graphs (loops, duplicates, isolated nodes)."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import graphvision.utils as U
from graphvision import GraphStructure
from graphvision.testing import assert_close
from graphvision.testing.strategies import graphs

pu = pytest.importorskip("torch_geometric.utils")
MESSY = graphs(min_nodes=0, max_nodes=9, max_edges=30)


def _eq(a, b):
    if a is None or b is None:
        assert a is None and b is None
    elif a.is_floating_point():
        assert_close(a, b)
    else:
        assert torch.equal(a, b)


@settings(max_examples=20, deadline=None)
@given(graph=MESSY, fill=st.sampled_from([None, 2.5, "mean", "max", "add", "min"]), attr=st.booleans(),
       structure=st.booleans(), seed=st.integers(0, 2**16))
def test_self_loops_degree_match_pyg(graph, fill, attr, structure, seed):
    n, ei = graph
    g = torch.Generator().manual_seed(seed)
    ea = torch.randn(ei.size(1), 3, generator=g) if attr else None
    gi = GraphStructure(ei, n) if structure else ei
    for a, b in zip(U.remove_self_loops(gi, ea), pu.remove_self_loops(ei, ea)):
        _eq(a, b)
    for a, b in zip(U.add_self_loops(gi, ea, fill, num_nodes=n), pu.add_self_loops(ei, ea, fill, num_nodes=n)):
        _eq(a, b)
    _eq(U.degree(ei[1], n), pu.degree(ei[1], n))
    _eq(U.degree(ei[0], n, dtype=torch.long), pu.degree(ei[0], n, dtype=torch.long))


@settings(max_examples=20, deadline=None)
@given(graph=MESSY, reduce=st.sampled_from(["sum", "mean", "max", "min", "mul"]), attr=st.sampled_from(["none", "missing", "one", "list"]),
       by_row=st.booleans(), seed=st.integers(0, 2**16))
def test_coalesce_matches_pyg(graph, reduce, attr, by_row, seed):
    n, ei = graph
    g = torch.Generator().manual_seed(seed)
    a1, a2 = torch.randn(ei.size(1), 2, generator=g), torch.randn(ei.size(1), generator=g)
    kw = dict(num_nodes=n, reduce=reduce, sort_by_row=by_row)
    if attr == "missing":
        _eq(U.coalesce(ei, **kw), pu.coalesce(ei, **kw))
        return
    arg = {"none": None, "one": a1, "list": [a1, a2]}[attr]
    ours, theirs = U.coalesce(ei, arg, **kw), pu.coalesce(ei, arg, **kw)
    _eq(ours[0], theirs[0])
    if attr == "list":
        for a, b in zip(ours[1], theirs[1]):
            _eq(a, b)
    else:
        _eq(ours[1], theirs[1])


@settings(max_examples=20, deadline=None)
@given(graph=graphs(min_nodes=1, max_nodes=9, max_edges=30), relabel=st.booleans(), as_mask=st.booleans(),
       seed=st.integers(0, 2**16))
def test_subgraph_matches_pyg(graph, relabel, as_mask, seed):
    n, ei = graph
    g = torch.Generator().manual_seed(seed)
    mask = torch.rand(n, generator=g) < 0.6
    subset = mask if as_mask else mask.nonzero().flatten()
    ea = torch.randn(ei.size(1), 2, generator=g)
    ours = U.subgraph(subset, ei, ea, relabel_nodes=relabel, num_nodes=n, return_edge_mask=True)
    theirs = pu.subgraph(subset, ei, ea, relabel_nodes=relabel, num_nodes=n, return_edge_mask=True)
    for a, b in zip(ours, theirs):
        _eq(a, b)


@settings(max_examples=20, deadline=None)
@given(sizes=st.lists(st.integers(0, 5), min_size=1, max_size=4), cap=st.sampled_from([None, 2]), attr=st.booleans(),
       seed=st.integers(0, 2**16))
def test_dense_batch_and_adj_match_pyg(sizes, cap, attr, seed):
    g = torch.Generator().manual_seed(seed)
    batch = torch.cat([torch.full((s,), i) for i, s in enumerate(sizes)]).long()
    n = batch.numel()
    x = torch.randn(n, 3, generator=g)
    b = len(sizes)
    for a, r in zip(U.to_dense_batch(x, batch, -1.0, cap, b), pu.to_dense_batch(x, batch, -1.0, cap, b)):
        _eq(a, r)
    # edges within each graph, with duplicates and loops
    eis = []
    off = 0
    for s in sizes:
        if s:
            eis.append(torch.randint(s, (2, 2 * s), generator=g) + off)
        off += s
    ei = torch.cat(eis, 1) if eis else torch.zeros(2, 0, dtype=torch.long)
    ea = torch.rand(ei.size(1), generator=g) if attr else None
    _eq(U.to_dense_adj(ei, batch, ea, cap, b), pu.to_dense_adj(ei, batch, ea, cap, b))
    if n and ei.numel():
        _eq(U.to_dense_adj(ei), pu.to_dense_adj(ei))


@settings(max_examples=15, deadline=None)
@given(graph=MESSY, p=st.sampled_from([0.0, 0.3, 0.7, 1.0]), undirected=st.booleans(), training=st.booleans(),
       seed=st.integers(0, 2**16))
def test_dropout_edge_matches_pyg(graph, p, undirected, training, seed):
    n, ei = graph
    torch.manual_seed(seed)
    ours = U.dropout_edge(GraphStructure(ei, n), p, undirected, training)
    torch.manual_seed(seed)
    theirs = pu.dropout_edge(ei, p, undirected, training)
    for a, b in zip(ours, theirs):
        _eq(a, b)
