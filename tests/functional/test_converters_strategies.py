"""The hypothesis strategies of graphvision.testing.strategies keep their promises."""

from __future__ import annotations

import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from graphvision.testing.strategies import batched_graphs, edge_indices, graphs, images, node_features

TRI = st.sampled_from([None, True, False])


@settings(max_examples=60)
@given(data=st.data(), isolated=TRI, loop=TRI, duplicates=TRI, symmetric=st.booleans())
def test_graphs_switches(data, isolated, loop, duplicates, symmetric):
    n, ei = data.draw(
        graphs(
            max_nodes=8,
            isolated_nodes=isolated,
            loop=loop,
            duplicates=duplicates,
            symmetric=symmetric,
            contiguous=None,
        )
    )
    assert ei.dim() == 2 and ei.size(0) == 2 and ei.dtype == torch.long
    assert ei.numel() == 0 or (int(ei.min()) >= 0 and int(ei.max()) < n)
    loops = ei[0] == ei[1]
    if loop is False:
        assert not bool(loops.any())
    if loop is True and n > 0 and isolated is not True:
        assert bool(loops.any())
    unique = torch.unique(ei, dim=1).size(1) if ei.numel() else 0
    if duplicates is False:
        assert unique == ei.size(1)
    if duplicates is True and isolated is not True and (n > 1 or (n == 1 and loop is not False)):
        assert unique < ei.size(1)
    seen = torch.zeros(n, dtype=torch.bool)
    seen[ei.flatten()] = True
    if isolated is True:
        assert n >= 1 and not bool(seen.all())
    if isolated is False:
        assert bool(seen.all())
    if symmetric:
        pairs = set(map(tuple, ei.t().tolist()))
        assert pairs == {(d, s) for s, d in pairs}


@given(edge_indices(6, contiguous=False, dtype=torch.int32, min_edges=2))
def test_edge_indices_layout(ei):
    assert ei.dtype == torch.int32 and ei.shape[1] >= 2 and not ei.is_contiguous()


@given(batched_graphs(max_graphs=4, loop=False))
def test_batched_graphs(g):
    assert g.batch.numel() == g.num_nodes == int(g.ptr[-1])
    assert bool((g.batch.diff() >= 0).all()) if g.num_nodes > 1 else True
    assert torch.equal(torch.bincount(g.batch, minlength=g.num_graphs), g.ptr.diff())
    if g.edge_index.numel():
        assert bool((g.batch[g.edge_index[0]] == g.batch[g.edge_index[1]]).all())


@given(images(batch_size=2, channels=(1, 4), height=(0, 5), width=(1, 5), contiguous=False, distribution="levels"))
def test_images(image):
    b, c, h, w = image.shape
    assert b == 2 and 1 <= c <= 4 and 0 <= h <= 5 and image.dtype == torch.float32
    assert image.numel() == 0 or set(image.unique().tolist()) <= {0.0, 1.0, 2.0}


@given(node_features(5, channels=st.just(3), dtype=torch.float64, contiguous=False))
def test_node_features(x):
    assert x.shape == (5, 3) and x.dtype == torch.float64 and not x.is_contiguous()
