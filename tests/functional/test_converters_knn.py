"""knn_graph and radius_graph against brute-force loops and scikit-learn."""

from __future__ import annotations

import pytest
import torch
from hypothesis import assume, given
from hypothesis import strategies as st

from graphvision.functional import knn_graph, radius_graph
from graphvision.testing import assert_close

METRICS = ["euclidean", "cosine"]


@st.composite
def point_sets(draw, min_graphs=1, max_graphs=3, min_nodes=1, max_nodes=9, min_dims=1, max_dims=4, empty_graphs=False):
    """(x float64 (N, F), batch sorted (N,), sizes) with hypothesis sizes and torch values."""
    b = draw(st.integers(min_graphs, max_graphs))
    lo = 0 if empty_graphs else min_nodes
    sizes = [draw(st.integers(lo, max_nodes)) for _ in range(b)]
    f = draw(st.integers(min_dims, max_dims))
    gen = torch.Generator().manual_seed(draw(st.integers(0, 2**32 - 1)))
    x = torch.randn(sum(sizes), f, generator=gen, dtype=torch.float64)
    batch = torch.repeat_interleave(torch.arange(b), torch.tensor(sizes, dtype=torch.long))
    return x, batch, sizes


def dist(a: torch.Tensor, b: torch.Tensor, metric: str) -> float:
    if metric == "euclidean":
        return float((a - b).norm())
    na, nb = float(a.norm()), float(b.norm())
    return 1.0 if na == 0 or nb == 0 else 1.0 - float(a @ b) / (na * nb)


def ref_candidates(x, batch, i, loop, metric):
    """Plain loop: sorted (distance, j) of every allowed neighbour j of node i."""
    return sorted(
        (dist(x[i], x[j], metric), j) for j in range(x.size(0)) if batch[j] == batch[i] and (loop or j != i)
    )


# ----------------------------------------------------------------------------- knn_graph


@given(data=st.data(), metric=st.sampled_from(METRICS), loop=st.booleans(), chunk=st.sampled_from([None, 1, 3]))
def test_knn_matches_brute_force(data, metric, loop, chunk):
    x, batch, sizes = data.draw(point_sets(empty_graphs=True))
    nonempty = [s for s in sizes if s > 0]
    assume(nonempty)
    limit = min(nonempty) if loop else min(nonempty) - 1
    assume(limit >= 1)
    k = data.draw(st.integers(1, limit))
    ei = knn_graph(x, k, batch, loop=loop, metric=metric, chunk_size=chunk)
    n = x.size(0)
    assert ei.shape == (2, n * k) and ei.dtype == torch.long
    assert torch.equal(ei[1], torch.arange(n).repeat_interleave(k))
    for i in range(n):
        srcs = ei[0, i * k : (i + 1) * k].tolist()
        assert len(set(srcs)) == k, "a neighbour appears twice"
        assert all(int(batch[j]) == int(batch[i]) for j in srcs), "edge across graphs"
        if not loop:
            assert i not in srcs
        got = [dist(x[i], x[j], metric) for j in srcs]
        ref = [d for d, _ in ref_candidates(x, batch, i, loop, metric)[:k]]
        # Same k smallest distances (ties may pick different nodes), in increasing order.
        assert_close(torch.tensor(got), torch.tensor(ref), rtol=1e-9, atol=1e-9)


@given(data=st.data(), metric=st.sampled_from(METRICS))
def test_knn_batched_equals_per_graph(data, metric):
    # Two or more dimensions: in one dimension all cosine distances are 0 or 2 (ties).
    x, batch, sizes = data.draw(point_sets(min_nodes=3, min_dims=2))
    k = data.draw(st.integers(1, min(sizes) - 1))
    full = knn_graph(x, k, batch, metric=metric)
    parts, offset = [], 0
    for s in sizes:
        parts.append(knn_graph(x[offset : offset + s], k, metric=metric) + offset)
        offset += s
    # Continuous random points: no ties, so the edges are identical.
    assert torch.equal(full, torch.cat(parts, dim=1))


@given(data=st.data())
def test_knn_chunking_does_not_change_result(data):
    x, batch, sizes = data.draw(point_sets(min_nodes=2, max_nodes=12, min_dims=2))
    k = data.draw(st.integers(1, min(sizes) - 1))
    ref = knn_graph(x, k, batch)
    for chunk in (1, 2, 5, 1000):
        assert torch.equal(knn_graph(x, k, batch, chunk_size=chunk), ref)
    assert torch.equal(knn_graph(x, k, batch.int()), ref)


def test_knn_hand_computed_and_loop():
    x = torch.tensor([[0.0], [1.0], [3.0], [10.0], [11.0]])
    batch = torch.tensor([0, 0, 0, 1, 1])
    assert knn_graph(x, 1, batch).tolist() == [[1, 0, 1, 4, 3], [0, 1, 2, 3, 4]]
    # With loop=True a node is its own nearest neighbour (distance 0).
    assert knn_graph(x, 1, batch, loop=True).tolist() == [[0, 1, 2, 3, 4], [0, 1, 2, 3, 4]]
    assert knn_graph(x, 2, batch, loop=True)[0].tolist() == [0, 1, 1, 0, 2, 1, 3, 4, 4, 3]


def test_knn_cosine_ignores_scale():
    x = torch.tensor([[1.0, 0.0], [10.0, 0.5], [0.0, 1.0], [0.1, 5.0]])
    assert knn_graph(x, 1, metric="cosine").tolist() == [[1, 0, 3, 2], [0, 1, 2, 3]]


def test_knn_low_precision_and_noncontiguous():
    x = torch.randn(40, 6, dtype=torch.float64)
    ref = knn_graph(x, 3)
    for dtype in (torch.float32, torch.float16, torch.bfloat16):
        got = knn_graph(x.to(dtype), 3)
        assert got.shape == ref.shape
        # Same targets; the neighbours agree for the large majority (rounding may swap near ties).
        assert float((got == ref).float().mean()) > 0.8
    wide = torch.randn(40, 12, dtype=torch.float64)
    assert torch.equal(knn_graph(wide[:, ::2], 3), knn_graph(wide[:, ::2].contiguous(), 3))


def test_knn_duplicate_points():
    x = torch.zeros(4, 2)
    ei = knn_graph(x, 3)
    for i in range(4):
        assert sorted(ei[0, i * 3 : (i + 1) * 3].tolist()) == [j for j in range(4) if j != i]


def test_knn_empty_graphs_in_batch_and_empty_input():
    x = torch.randn(5, 2)
    batch = torch.tensor([0, 0, 0, 2, 2])  # graph 1 is empty
    ei = knn_graph(x, 1, batch)
    assert bool((batch[ei[0]] == batch[ei[1]]).all())
    assert knn_graph(torch.zeros(0, 3), 4).shape == (2, 0)
    assert knn_graph(torch.zeros(0, 3), 4, torch.zeros(0, dtype=torch.long)).shape == (2, 0)


def test_knn_matches_sklearn():
    neighbors = pytest.importorskip("sklearn.neighbors")
    x = torch.randn(60, 5, dtype=torch.float64)
    k = 6
    ei = knn_graph(x, k)
    nn_ = neighbors.NearestNeighbors(n_neighbors=k + 1).fit(x.numpy())
    d_ref, idx_ref = nn_.kneighbors(x.numpy())
    # sklearn returns the point itself first (distance 0); drop it.
    assert torch.equal(ei[0].view(-1, k), torch.from_numpy(idx_ref[:, 1:]).long())
    nn_c = neighbors.NearestNeighbors(n_neighbors=k + 1, metric="cosine", algorithm="brute").fit(x.numpy())
    d_c, idx_c = nn_c.kneighbors(x.numpy())
    assert torch.equal(knn_graph(x, k, metric="cosine")[0].view(-1, k), torch.from_numpy(idx_c[:, 1:]).long())


def test_knn_gradient_free_and_compile():
    x = torch.randn(12, 3, requires_grad=True)
    assert not knn_graph(x, 2).requires_grad
    torch._dynamo.reset()
    # The "eager" backend checks that dynamo captures one graph (no break) without paying for
    # inductor's code generation; the grid test compiles with inductor.
    compiled = torch.compile(knn_graph, fullgraph=True, dynamic=False, backend="eager")
    xd = torch.randn(12, 3, dtype=torch.float64)
    assert torch.equal(compiled(xd, 3), knn_graph(xd, 3))
    batch = torch.tensor([0] * 5 + [1] * 7)
    assert torch.equal(compiled(xd, 3, batch), knn_graph(xd, 3, batch))


@pytest.mark.parametrize(
    ("args", "kwargs", "error", "match"),
    [
        ((torch.randn(5, 2), 2.0), {}, TypeError, r"'k' to be an int \(got float: 2.0\)"),
        ((torch.randn(5, 2), 0), {}, ValueError, "'k' >= 1"),
        ((torch.randn(5, 2), 5), {}, ValueError, r"'k' <= 4 for a graph with 5 nodes \(got k=5\)"),
        ((torch.randn(5, 2), 6), {"loop": True}, ValueError, r"'k' <= 5 .*\(got k=6\)"),
        (
            (torch.randn(5, 2), 2, torch.tensor([0, 0, 0, 1, 1])),
            {},
            ValueError,
            r"'k' <= 1 for the smallest graph in 'batch' with 2 nodes \(got k=2\)",
        ),
        (
            (torch.randn(5, 2), 1, torch.tensor([0, 0, 1, 1])),
            {},
            ValueError,
            r"'batch' of shape \(N,\) with N = x.size\(0\) = 5 \(got \(4,\)\)",
        ),
        ((torch.randn(5, 2), 1, torch.zeros(5)), {}, TypeError, "'batch' of dtype"),
        ((torch.randn(5, 2), 1, torch.tensor([0, 1, 0, 1, 1])), {}, ValueError, "'batch' sorted"),
        ((torch.randn(5, 2), 1, torch.tensor([-1, 0, 0, 1, 1])), {}, ValueError, "'batch' >= 0"),
        ((torch.randn(5, 2), 1, torch.zeros(5, dtype=torch.long, device="meta")), {}, ValueError, "same device as 'x'"),
        ((torch.randn(5), 1), {}, ValueError, r"'x' of shape \(N, F\) \(got \(5,\)\)"),
        ((torch.ones(5, 2, dtype=torch.long), 1), {}, TypeError, "'x' to have a floating-point dtype"),
        ((torch.randn(5, 2), 1), {"metric": "manhattan"}, ValueError, "metric 'manhattan'"),
        ((torch.randn(5, 2), 1), {"chunk_size": 0}, ValueError, "'chunk_size' >= 1"),
    ],
)
def test_knn_errors(args, kwargs, error, match):
    with pytest.raises(error, match=match):
        knn_graph(*args, **kwargs)


# ----------------------------------------------------------------------------- radius_graph


@given(
    data=st.data(),
    metric=st.sampled_from(METRICS),
    loop=st.booleans(),
    max_nbrs=st.sampled_from([None, 1, 2, 100]),
    chunk=st.sampled_from([None, 2]),
)
def test_radius_matches_brute_force(data, metric, loop, max_nbrs, chunk):
    x, batch, _ = data.draw(point_sets(empty_graphs=True, max_nodes=8))
    assume(x.size(0) > 0)
    r = data.draw(st.floats(0.0, 2.5)) if metric == "euclidean" else data.draw(st.floats(0.0, 1.5))
    ei = radius_graph(x, r, batch, loop=loop, max_num_neighbors=max_nbrs, metric=metric, chunk_size=chunk)
    n = x.size(0)
    assert ei.dtype == torch.long and bool((ei[1][1:] >= ei[1][:-1]).all()), "not sorted by target"
    for i in range(n):
        cands = [(d, j) for d, j in ref_candidates(x, batch, i, loop, metric)]
        # Points within rounding of the radius may fall either side; skip such targets.
        if any(abs(d - r) < 1e-6 for d, _ in cands):
            continue
        inside = [j for d, j in cands if d <= r]
        srcs = ei[0, ei[1] == i].tolist()
        assert len(set(srcs)) == len(srcs)
        if max_nbrs is None or len(inside) <= max_nbrs:
            assert sorted(srcs) == sorted(inside)
        else:
            assert len(srcs) == max_nbrs
            got = sorted(dist(x[i], x[j], metric) for j in srcs)
            ref = sorted(dist(x[i], x[j], metric) for j in inside)[:max_nbrs]
            assert_close(torch.tensor(got), torch.tensor(ref), rtol=1e-9, atol=1e-9)


@given(data=st.data())
def test_radius_symmetric_without_cap(data):
    x, batch, _ = data.draw(point_sets(max_nodes=8))
    ei = radius_graph(x, 1.0, batch, max_num_neighbors=None)
    pairs = set(map(tuple, ei.t().tolist()))
    assert pairs == {(d, s) for s, d in pairs}


def test_radius_hand_computed():
    x = torch.tensor([[0.0], [1.0], [3.0], [3.5]])
    assert radius_graph(x, 1.5).tolist() == [[1, 0, 3, 2], [0, 1, 2, 3]]
    assert radius_graph(x, 1.5, loop=True).tolist() == [[0, 1, 1, 0, 2, 3, 3, 2], [0, 0, 1, 1, 2, 2, 3, 3]]
    # Batch separates 1 and 2 even though they are close.
    assert radius_graph(x, 10.0, torch.tensor([0, 0, 1, 1])).tolist() == [[1, 0, 3, 2], [0, 1, 2, 3]]
    # max_num_neighbors keeps the nearest: node 1 (at 1.0) keeps 0 (distance 1), not 2 (distance 2).
    assert radius_graph(x, 2.5, max_num_neighbors=1).tolist() == [[1, 0, 3, 2], [0, 1, 2, 3]]
    assert radius_graph(torch.zeros(0, 2), 1.0).shape == (2, 0)


def test_radius_matches_sklearn():
    neighbors = pytest.importorskip("sklearn.neighbors")
    x = torch.rand(50, 2, dtype=torch.float64)
    r = 0.2
    ei = radius_graph(x, r, max_num_neighbors=None)
    nn_ = neighbors.NearestNeighbors(radius=r).fit(x.numpy())
    _, idx = nn_.radius_neighbors(x.numpy())
    ref = sorted((int(j), i) for i, row in enumerate(idx) for j in row if j != i)
    assert sorted(map(tuple, ei.t().tolist())) == ref


@pytest.mark.parametrize(
    ("args", "kwargs", "error", "match"),
    [
        ((torch.randn(5, 2), -1.0), {}, ValueError, r"'r' >= 0 \(got -1.0\)"),
        ((torch.randn(5, 2), "1"), {}, TypeError, "'r' to be a number"),
        ((torch.randn(5, 2), 1.0), {"max_num_neighbors": 0}, ValueError, "'max_num_neighbors' >= 1"),
        ((torch.randn(5, 2), 1.0, torch.tensor([0, 1])), {}, ValueError, r"'batch' of shape \(N,\)"),
        ((torch.randn(5, 2), 1.0, torch.tensor([1, 0, 0, 0, 0])), {}, ValueError, "'batch' sorted"),
        ((torch.randn(2, 5, 2), 1.0), {}, ValueError, r"'x' of shape \(N, F\)"),
    ],
)
def test_radius_errors(args, kwargs, error, match):
    with pytest.raises(error, match=match):
        radius_graph(*args, **kwargs)



@given(data=st.data(), budget=st.sampled_from([1, 7, 30, 200]), loop=st.booleans())
def test_block_budget_does_not_change_result(data, budget, loop):
    """A tiny block budget forces row-chunked big graphs and padded groups of small ones."""
    from graphvision.functional import _graph_knn

    x, batch, sizes = data.draw(point_sets(min_nodes=2, max_nodes=12, min_dims=2))
    k = data.draw(st.integers(1, min(sizes) - 1))
    calls = [
        lambda: knn_graph(x, k, batch, loop=loop),
        lambda: knn_graph(x, k, loop=loop),
        lambda: radius_graph(x, 1.2, batch, loop=loop, max_num_neighbors=None),
        lambda: radius_graph(x, 1.2, batch, loop=loop, max_num_neighbors=3),
    ]
    expected = [call() for call in calls]
    saved = _graph_knn._BLOCK_ELEMENTS
    _graph_knn._BLOCK_ELEMENTS = budget
    try:
        for call, ref in zip(calls, expected):
            assert torch.equal(call(), ref)
    finally:
        _graph_knn._BLOCK_ELEMENTS = saved


def test_radius_compile_fullgraph_with_dynamic_shapes():
    torch._dynamo.reset()
    x = torch.randn(30, 2, dtype=torch.float64)
    batch = torch.tensor([0] * 12 + [1] * 18)
    with torch._dynamo.config.patch(capture_dynamic_output_shape_ops=True, capture_scalar_outputs=True):
        compiled = torch.compile(radius_graph, fullgraph=True, backend="eager")
        assert torch.equal(compiled(x, 0.7), radius_graph(x, 0.7))
        assert torch.equal(compiled(x, 0.7, batch, True, 4), radius_graph(x, 0.7, batch, True, 4))
