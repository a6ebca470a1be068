"""knn_graph / radius_graph: exact ranking far from the origin, r=inf, non-finite input, .graph, ViG options.

The reference is ``torch.cdist`` in float64 on the input values (brute force, no torch_cluster).
"""

from __future__ import annotations

import copy
import io
import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from graphvision import GraphStructure, config
from graphvision.functional import DilatedKNN, knn_graph, patch_graph, radius_graph


def ref_knn(x: torch.Tensor, k: int, loop: bool, metric: str = "euclidean", rel=None) -> torch.Tensor:
    """(N, k) nearest by float64 cdist (x (N, F)); distances ``d^2 + rel`` as ViG when rel is given."""
    xd = x.double()
    if metric == "cosine":
        xd = torch.nn.functional.normalize(xd, dim=-1)
    d = torch.cdist(xd, xd, compute_mode="donot_use_mm_for_euclid_dist") ** 2
    if rel is not None:
        d = d + rel.double()
    d.fill_diagonal_(-math.inf if loop else math.inf)
    return d.topk(k, largest=False).indices


def ref_dist_rows(x, nbr):
    xd = x.double()
    return (xd.unsqueeze(1) - xd[nbr]).pow(2).sum(-1)


@settings(max_examples=8, deadline=None)
@given(
    offset=st.sampled_from([1e3, 1e4, 1e5, 1e6]),
    dtype=st.sampled_from([torch.float32, torch.float64]),
    dims=st.sampled_from([2, 3]),
    k=st.integers(1, 6),
    batched=st.booleans(),
    seed=st.integers(0, 2**16),
)
def test_knn_exact_far_from_origin(offset, dtype, dims, k, batched, seed):
    g = torch.Generator().manual_seed(seed)
    n = 40
    # Slide-like positions: a cluster of spread ~10 pixels at a large offset.
    x = (offset + 10 * torch.rand(n, dims, generator=g, dtype=torch.float64)).to(dtype)
    batch = torch.tensor([0] * 17 + [1] * 23) if batched else None
    ei = knn_graph(x, k, batch)
    got = ei[0].view(n, k)
    if batched:
        ref = torch.cat([ref_knn(x[:17], k, False), ref_knn(x[17:], k, False) + 17])
    else:
        ref = ref_knn(x, k, False)
    # Exact: the same distances, rank by rank, as float64 cdist on the same (float32-rounded)
    # coordinates. Indices may differ only between tied candidates: at 1e6 float32 spacing is
    # 0.0625, so rounded positions tie often and either choice is correct.
    d_got, d_ref = ref_dist_rows(x, got), ref_dist_rows(x, ref)
    assert torch.equal(d_got, d_ref)
    differs = got != ref
    assert torch.equal(d_got[differs], d_ref[differs])  # every index difference is a tie


@settings(max_examples=8, deadline=None)
@given(offset=st.sampled_from([1e3, 4e4, 1e5, 1e6]), dtype=st.sampled_from([torch.float32, torch.float64]),
       seed=st.integers(0, 2**16))
def test_radius_exact_far_from_origin(offset, dtype, seed):
    g = torch.Generator().manual_seed(seed)
    x = (offset + 4 * torch.rand(30, 2, generator=g, dtype=torch.float64)).to(dtype)
    r = 0.7
    ei = radius_graph(x, r, max_num_neighbors=None)
    d = torch.cdist(x.double(), x.double(), compute_mode="donot_use_mm_for_euclid_dist")
    d.fill_diagonal_(math.inf)
    near = (d - r).abs() < 1e-9  # on the boundary: either side is fine
    ref = {(int(j), int(i)) for i, j in (d <= r).nonzero().tolist()}
    got = set(map(tuple, ei.t().tolist()))
    for j, i in ref ^ got:
        assert bool(near[i, j])
    assert len(got) < 30 * 29  # the old float32 formula linked every pair at 4e4


def test_wide_features_centred_per_graph():
    # Features far from the origin (F > 8, float64): centring keeps the ranking exact.
    g = torch.Generator().manual_seed(0)
    x = 1e6 + torch.randn(50, 16, generator=g, dtype=torch.float64)
    assert torch.equal(knn_graph(x, 4)[0].view(50, 4), ref_knn(x, 4, False))
    xb = torch.stack([x[:25], x[25:] - 2e6])
    got = knn_graph(xb, 3)[0].view(2, 25, 3) - torch.tensor([0, 25]).view(2, 1, 1)
    assert torch.equal(got[0], ref_knn(x[:25], 3, False))
    assert torch.equal(got[1], ref_knn(x[25:] - 2e6, 3, False))


def test_radius_inf_honours_loop():
    x = torch.randn(5, 2)
    no_loop = radius_graph(x, math.inf, max_num_neighbors=None)
    assert no_loop.size(1) == 20 and not bool((no_loop[0] == no_loop[1]).any())
    with_loop = radius_graph(x, math.inf, loop=True, max_num_neighbors=None)
    assert with_loop.size(1) == 25
    assert radius_graph(x, math.inf, torch.tensor([0, 0, 1, 1, 1]), max_num_neighbors=None).size(1) == 2 + 6
    capped = radius_graph(x, math.inf, max_num_neighbors=10)
    assert capped.size(1) == 20 and not bool((capped[0] == capped[1]).any())


@pytest.mark.parametrize("fn", ["knn", "radius", "batched", "patch"])
def test_non_finite_rows(fn):
    x = torch.randn(8, 3)
    x[2, 1] = float("nan")
    x[5, 0] = float("inf")
    calls = {
        "knn": lambda: knn_graph(x, 2),
        "radius": lambda: radius_graph(x, 10.0),
        "batched": lambda: knn_graph(x.view(2, 4, 3), 2),
        "patch": lambda: patch_graph(x.t().reshape(1, 3, 2, 4), 1, k=2),
    }
    with pytest.raises(ValueError, match="Expected finite 'x'.*NaN or inf in 2 node"):
        calls[fn]()
    if fn == "patch":
        return
    # Checks off: the bad nodes stay local, they are never anyone's neighbour.
    config.set_checks(False)
    try:
        ei = calls[fn]()
    finally:
        config.set_checks(None)
    good = ~torch.isin(ei[1], torch.tensor([2, 5]))
    assert not bool(torch.isin(ei[0, good], torch.tensor([2, 5])).any())


def test_result_carries_trusted_structure():
    x = torch.randn(12, 3)
    ei = knn_graph(x, 3, torch.tensor([0] * 5 + [1] * 7))
    g = ei.graph
    assert isinstance(g, GraphStructure) and g.num_nodes == 12 and g.identity_perm
    assert g.edge_index.data_ptr() == ei.data_ptr()
    assert g.is_cached("csr") and g.max_degree == 3
    ref = GraphStructure(ei.clone(), 12)
    assert torch.equal(g.rowptr, ref.rowptr) and torch.equal(g.col, ref.col)
    # the neighbour table is the edge index's memory
    assert torch.equal(g.derived("dense_neighbours", lambda: None), ei[0].view(12, 3))
    # an in-place edit of the returned tensor drops what was derived
    ei[0, 0] = 11
    assert not g.is_cached("dense_neighbours")
    r = radius_graph(x, 1.5)
    assert r.graph.identity_perm and torch.equal(r.graph.edge_index, r)
    flipped = knn_graph(x, 2, flow="target_to_source")
    assert torch.equal(flipped, knn_graph(x, 2).flip(0)) and flipped.graph.num_edges == 24
    assert torch.equal(knn_graph(x, 2, cosine=True), knn_graph(x, 2, metric="cosine"))
    # the structure never follows a derived tensor, and saving stores a plain tensor
    assert not hasattr(r[:, :2], "graph") and not hasattr(r.clone(), "graph") and type(r + 0) is torch.Tensor
    buf = io.BytesIO()
    torch.save(r, buf)
    buf.seek(0)
    loaded = torch.load(buf, weights_only=True)
    assert type(loaded) is torch.Tensor and torch.equal(loaded, r)
    assert type(copy.deepcopy(r)) is torch.Tensor
    assert repr(r).startswith("tensor(")


# ----------------------------------------------------------------------------- batched ViG kNN


@settings(max_examples=10, deadline=None)
@given(
    b=st.integers(1, 3), n=st.integers(2, 12), f=st.integers(2, 12), k=st.integers(1, 3), d=st.integers(1, 3),
    metric=st.sampled_from(["euclidean", "cosine"]), rel=st.booleans(), seed=st.integers(0, 2**16),
)
def test_batched_dilated_knn_matches_cdist(b, n, f, k, d, metric, rel, seed):
    if k * d > n:
        msg = (
            rf"'k' \* dilation <= {n} for each sample with {n} nodes \(got k={k}, dilation={d}"
            if d > 1
            else rf"'k' <= {n} for each sample with {n} nodes \(got k={k}\)"
        )
        with pytest.raises(ValueError, match=msg):
            knn_graph(torch.randn(b, n, f), k, loop=True, dilated=DilatedKNN(d))
        return
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(b, n, f, generator=g, dtype=torch.float64)
    relative_pos = torch.randn(n, n, generator=g, dtype=torch.float64) if rel else None
    dilated = DilatedKNN(d, relative_pos=relative_pos)
    ei = knn_graph(x, k, loop=True, metric=metric, dilated=dilated)
    assert ei.shape == (2, b * n * k)
    assert torch.equal(ei[1], torch.arange(b * n).repeat_interleave(k))
    got = ei[0].view(b, n, k)
    for s in range(b):
        ref = ref_knn(x[s], k * d, True, metric, relative_pos)[:, ::d] + s * n
        assert torch.equal(got[s], ref)
    if not rel:
        assert torch.equal(got[..., 0], torch.arange(b * n).view(b, n)), "self first with loop=True"
    # (N, F) with no batch and dilation: one point set
    assert torch.equal(knn_graph(x[0], k, loop=True, metric=metric, dilated=dilated),
                       ei[:, : n * k])


def test_batched_knn_stochastic_and_errors():
    x = torch.randn(2, 20, 4)
    det = knn_graph(x, 3, loop=True, dilated=DilatedKNN(2))
    torch.manual_seed(0)
    # never random outside training, or with epsilon 0
    assert torch.equal(knn_graph(x, 3, loop=True, dilated=DilatedKNN(2, stochastic=True)), det)
    assert torch.equal(knn_graph(x, 3, loop=True, dilated=DilatedKNN(2, True, 0.0), training=True), det)
    full = knn_graph(x, 6, loop=True)[0].view(40, 6)
    rnd = knn_graph(x, 3, loop=True, dilated=DilatedKNN(2, True, 1.0), training=True)[0].view(40, 3)
    # a random choice of 3 of the 6 ranks, the same ranks for every node, in rank order
    ranks = [(full[0] == v).nonzero().item() for v in rnd[0].tolist()]
    assert ranks == sorted(ranks) and len(set(ranks)) == 3
    assert torch.equal(rnd, full[:, ranks])
    with pytest.raises(ValueError, match=r"'batch' is for \(N, F\) input"):
        knn_graph(x, 2, torch.zeros(40, dtype=torch.long))
    with pytest.raises(ValueError, match=r"'relative_pos' of shape \(N, N\) or \(B, N, N\) with N=20, B=2"):
        knn_graph(x, 2, dilated=DilatedKNN(relative_pos=torch.zeros(3, 20, 20)))
    with pytest.raises(ValueError, match="'epsilon' in"):
        knn_graph(x, 2, dilated=DilatedKNN(epsilon=2.0))
    with pytest.raises(ValueError, match="'dilation' and 'relative_pos' need one point set"):
        knn_graph(x[0], 2, torch.zeros(20, dtype=torch.long), dilated=DilatedKNN(2))
    with pytest.raises(ValueError, match="cosine=True and metric='euclidean'"):
        knn_graph(x, 2, metric="euclidean", cosine=True)
    assert knn_graph(torch.zeros(0, 5, 3), 2).shape == (2, 0)


def test_batched_knn_compiles():
    torch._dynamo.reset()
    x = torch.randn(2, 16, 8)

    def fn(x):
        return knn_graph(x, 3, loop=True, metric="cosine", dilated=DilatedKNN(2))

    compiled = torch.compile(fn, fullgraph=True, backend="eager")
    assert torch.equal(compiled(x), fn(x))
