"""Pixel-grid and patch graphs, edge similarities and heatmaps against plain-loop references."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from graphvision.functional import (
    ImageGraph,
    WeightedImageGraph,
    edge_similarity,
    grid_graph,
    image_to_graph,
    nodes_to_image,
    patch_graph,
)
from graphvision.testing import assert_close
from graphvision.testing.strategies import graphs, images, node_features

# ----------------------------------------------------------------------------- references


def ref_grid(h: int, w: int, connectivity: int, dilation: int, loop: bool, batch_size: int) -> torch.Tensor:
    """Plain loops over images, pixels and neighbours; sorted by (target, source)."""
    edges = []
    for b in range(batch_size):
        for y in range(h):
            for x in range(w):
                for dy in (-1, 0, 1):
                    for dx in (-1, 0, 1):
                        if dy == 0 and dx == 0 and not loop:
                            continue
                        if connectivity == 4 and dy != 0 and dx != 0:
                            continue
                        ny, nx = y + dy * dilation, x + dx * dilation
                        if 0 <= ny < h and 0 <= nx < w:
                            edges.append((b * h * w + ny * w + nx, b * h * w + y * w + x))
    edges.sort(key=lambda e: (e[1], e[0]))
    return torch.tensor(edges, dtype=torch.long).reshape(-1, 2).t()


def ref_similarity(x: torch.Tensor, edge_index: torch.Tensor, metric: str, sigma: float) -> torch.Tensor:
    out = []
    for s, d in edge_index.t().tolist():
        a, b = x[s].double(), x[d].double()
        if metric == "cosine":
            out.append(float(a @ b) / max(float(a.norm() * b.norm()), 1e-8))
        else:
            out.append(math.exp(-float(((a - b) ** 2).sum()) / (2 * sigma**2)))
    return torch.tensor(out, dtype=torch.float64)


def edge_set(edge_index: torch.Tensor) -> list[tuple[int, int]]:
    return sorted(map(tuple, edge_index.t().tolist()))


# ----------------------------------------------------------------------------- grid_graph


@given(
    h=st.integers(0, 7),
    w=st.integers(0, 7),
    connectivity=st.sampled_from([4, 8]),
    dilation=st.integers(1, 3),
    loop=st.booleans(),
    batch_size=st.integers(0, 3),
)
def test_grid_matches_reference(h, w, connectivity, dilation, loop, batch_size):
    out = grid_graph(h, w, connectivity, dilation, loop, batch_size=batch_size)
    assert out.dtype == torch.long and out.shape[0] == 2 and out.is_contiguous()
    assert torch.equal(out, ref_grid(h, w, connectivity, dilation, loop, batch_size))


@given(h=st.integers(1, 9), w=st.integers(1, 9), connectivity=st.sampled_from([4, 8]), loop=st.booleans())
def test_grid_properties(h, w, connectivity, loop):
    ei = grid_graph(h, w, connectivity, loop=loop)
    n = h * w
    # Edge counts of the issue: 8HW - 6(H+W) + 4 and 4HW - 2(H+W), plus one loop per pixel.
    expected = 8 * n - 6 * (h + w) + 4 if connectivity == 8 else 4 * n - 2 * (h + w)
    assert ei.size(1) == expected + (n if loop else 0)
    pairs = edge_set(ei)
    assert len(set(pairs)) == len(pairs), "duplicate edges"
    assert set(pairs) == {(d, s) for s, d in pairs}, "not symmetric"
    loops = int((ei[0] == ei[1]).sum())
    assert loops == (n if loop else 0)
    deg = torch.bincount(ei[1], minlength=n)
    assert int(deg.max()) <= connectivity + int(loop)
    # Interior pixels have the full neighbourhood.
    if h >= 3 and w >= 3:
        assert int(deg.view(h, w)[1:-1, 1:-1].min()) == connectivity + int(loop)
    # Every edge joins pixels at Chebyshev (8) / Manhattan (4) distance 1.
    ys, xs = ei // w, ei % w
    dy, dx = (ys[0] - ys[1]).abs(), (xs[0] - xs[1]).abs()
    dist = torch.maximum(dy, dx) if connectivity == 8 else dy + dx
    assert bool((dist <= 1).all())


def test_grid_hand_computed():
    # 1x3 row: 0 - 1 - 2
    assert grid_graph(1, 3).tolist() == [[1, 0, 2, 1], [0, 1, 1, 2]]
    # 2x2, 8 neighbours: every pixel sees the 3 others.
    assert grid_graph(2, 2).tolist() == [[1, 2, 3, 0, 2, 3, 0, 1, 3, 0, 1, 2], [0, 0, 0, 1, 1, 1, 2, 2, 2, 3, 3, 3]]
    assert grid_graph(1, 1).shape == (2, 0)
    assert grid_graph(1, 1, loop=True).tolist() == [[0], [0]]
    assert grid_graph(0, 5).shape == (2, 0)
    assert grid_graph(4, 4, batch_size=0).shape == (2, 0)
    # dilation 2 on a 1x5 row links 0-2, 1-3, 2-4.
    assert edge_set(grid_graph(1, 5, dilation=2)) == [(0, 2), (1, 3), (2, 0), (2, 4), (3, 1), (4, 2)]


@given(h=st.integers(1, 6), w=st.integers(1, 6), b=st.integers(1, 4), connectivity=st.sampled_from([4, 8]))
def test_grid_batched_is_offset_single(h, w, b, connectivity):
    one = grid_graph(h, w, connectivity)
    expected = torch.cat([one + i * h * w for i in range(b)], dim=1)
    assert torch.equal(grid_graph(h, w, connectivity, batch_size=b), expected)


def test_grid_cache_returns_fresh_tensors():
    from graphvision.functional import _graph_grid

    first = grid_graph(5, 6, batch_size=3)
    first.add_(1000)  # the caller owns what it gets: in-place changes never reach the cache
    assert torch.equal(grid_graph(5, 6, batch_size=3), ref_grid(5, 6, 8, 1, False, 3))
    x, _, batch = image_to_graph(torch.rand(2, 1, 3, 3))
    batch.fill_(7)
    assert image_to_graph(torch.rand(2, 1, 3, 3)).batch.tolist() == [0] * 9 + [1] * 9
    for size in range(2, 2 + 2 * _graph_grid._CACHE_SIZE):
        grid_graph(size, 3)
    assert len(_graph_grid._CACHE) <= _graph_grid._CACHE_SIZE
    assert torch.equal(grid_graph(3, 3, 4), ref_grid(3, 3, 4, 1, False, 1))


def test_grid_device(device):
    assert grid_graph(3, 3, device=device).device.type == device.type


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"height": -1, "width": 3}, ValueError, "'height' >= 0"),
        ({"height": 2.5, "width": 3}, TypeError, "'height' to be an int"),
        ({"height": 3, "width": "4"}, TypeError, "'width' to be an int"),
        ({"height": 3, "width": 3, "connectivity": 6}, ValueError, r"connectivity 6; expected one of \(4, 8\)"),
        ({"height": 3, "width": 3, "dilation": 0}, ValueError, "'dilation' >= 1"),
        ({"height": 3, "width": 3, "batch_size": -2}, ValueError, "'batch_size' >= 0"),
    ],
)
def test_grid_errors(kwargs, error, match):
    with pytest.raises(error, match=match):
        grid_graph(**kwargs)


# ----------------------------------------------------------------------------- image_to_graph


@given(image=images(height=(0, 6), width=(0, 6), contiguous=None), connectivity=st.sampled_from([4, 8]))
def test_image_to_graph_matches_reference(image, connectivity):
    b, c, h, w = image.shape
    graph = image_to_graph(image, connectivity)
    assert isinstance(graph, ImageGraph)
    x, edge_index, batch = graph
    assert x.shape == (b * h * w, c) and batch.shape == (b * h * w,)
    for i in range(b):
        for yy in range(h):
            for xx in range(w):
                node = i * h * w + yy * w + xx
                assert torch.equal(x[node], image[i, :, yy, xx])
                assert int(batch[node]) == i
    assert torch.equal(edge_index, ref_grid(h, w, connectivity, 1, False, b))


@given(image=images(height=(1, 5), width=(1, 5), contiguous=None))
def test_image_round_trip(image):
    b, c, h, w = image.shape
    x, _, _ = image_to_graph(image)
    assert torch.equal(nodes_to_image(x, h, w), image)
    assert torch.equal(nodes_to_image(x[:, 0], h, w), image[:, 0])


def test_image_to_graph_channels_last_is_a_view():
    image = torch.rand(2, 3, 5, 4).contiguous(memory_format=torch.channels_last)
    x, _, _ = image_to_graph(image)
    assert x.data_ptr() == image.data_ptr()


def test_image_to_graph_device(device):
    x, edge_index, batch = image_to_graph(torch.rand(2, 3, 4, 4, device=device))
    assert x.device.type == edge_index.device.type == batch.device.type == device.type


def test_image_to_graph_1x1_and_empty():
    x, edge_index, batch = image_to_graph(torch.rand(3, 2, 1, 1))
    assert x.shape == (3, 2) and edge_index.shape == (2, 0) and batch.tolist() == [0, 1, 2]
    x, edge_index, batch = image_to_graph(torch.rand(0, 2, 4, 4))
    assert x.shape == (0, 2) and edge_index.shape == (2, 0) and batch.shape == (0,)
    x, edge_index, batch = image_to_graph(torch.rand(2, 3, 0, 4))
    assert x.shape == (0, 3) and edge_index.shape == (2, 0)


@given(
    image=images(height=(1, 5), width=(1, 5), dtype=torch.float64, distribution="levels", contiguous=None),
    metric=st.sampled_from(["cosine", "gaussian"]),
    sigma=st.floats(0.1, 3.0),
    connectivity=st.sampled_from([4, 8]),
    dilation=st.integers(1, 2),
    loop=st.booleans(),
)
def test_image_to_graph_edge_weight(image, metric, sigma, connectivity, dilation, loop):
    # "levels" images have zero pixels (cosine of a zero vector) and equal neighbours (weight 1).
    graph = image_to_graph(image, connectivity, dilation, loop, similarity=metric, sigma=sigma)
    assert isinstance(graph, WeightedImageGraph)
    x, edge_index, batch, edge_weight = graph
    assert_close(edge_weight, ref_similarity(x, edge_index, metric, sigma))
    if edge_index.numel():
        # Symmetric graph, symmetric similarity: the weight of j->i equals that of i->j.
        lookup = {e: float(wt) for e, wt in zip(map(tuple, edge_index.t().tolist()), edge_weight)}
        assert all(abs(lookup[(d, s)] - wt) < 1e-12 for (s, d), wt in lookup.items())


@given(data=st.data(), metric=st.sampled_from(["cosine", "gaussian"]))
def test_edge_similarity_reference(data, metric):
    n, edge_index = data.draw(graphs(min_nodes=1, max_nodes=8, contiguous=None))
    x = data.draw(node_features(n, (1, 4), dtype=torch.float64, contiguous=None))
    if n and data.draw(st.booleans()):
        x[0] = 0.0  # zero vector: cosine is 0, not NaN
    out = edge_similarity(x, edge_index, metric, sigma=0.7)
    assert_close(out, ref_similarity(x, edge_index, metric, 0.7))
    assert not bool(out.isnan().any())


@pytest.mark.parametrize("metric", ["cosine", "gaussian"])
def test_edge_similarity_gradcheck(metric):
    x = torch.randn(5, 3, dtype=torch.float64, requires_grad=True)
    edge_index = torch.tensor([[0, 1, 2, 3, 4, 4], [1, 2, 3, 4, 0, 4]])
    assert torch.autograd.gradcheck(lambda t: edge_similarity(t, edge_index, metric, 0.8), (x,))


def test_image_to_graph_gradient_flows():
    image = torch.rand(2, 3, 3, 4, dtype=torch.float64, requires_grad=True)
    for metric in ("gaussian", "cosine"):
        assert torch.autograd.gradcheck(lambda im: image_to_graph(im, 4, similarity=metric).edge_weight, (image,))
        assert torch.autograd.gradcheck(lambda im: image_to_graph(im, 8, 2, True, similarity=metric)[3], (image,))
    assert torch.autograd.gradcheck(lambda im: image_to_graph(im).x, (image,))


@pytest.mark.parametrize(
    ("args", "kwargs", "error", "match"),
    [
        ((torch.rand(3, 4, 4),), {}, ValueError, r"Expected 'image' of shape \(B, C, H, W\) \(got \(3, 4, 4\)\)"),
        (([[1.0]],), {}, TypeError, "'image' to be a torch.Tensor"),
        ((torch.zeros(1, 3, 4, 4, dtype=torch.uint8),), {}, TypeError, "floating-point dtype.*uint8"),
        ((torch.rand(1, 3, 4, 4),), {"connectivity": 3}, ValueError, "connectivity 3"),
        ((torch.rand(1, 3, 4, 4),), {"similarity": "l2"}, ValueError, r"similarity 'l2'; expected one of"),
        ((torch.rand(1, 3, 4, 4),), {"similarity": "gaussian", "sigma": 0.0}, ValueError, "'sigma' > 0"),
    ],
)
def test_image_to_graph_errors(args, kwargs, error, match):
    with pytest.raises(error, match=match):
        image_to_graph(*args, **kwargs)


@pytest.mark.parametrize(
    ("args", "error", "match"),
    [
        ((torch.rand(4), torch.zeros(2, 0, dtype=torch.long)), ValueError, r"'x' of shape \(N, F\)"),
        ((torch.rand(4, 2), torch.zeros(3, 1, dtype=torch.long)), ValueError, r"'edge_index' of shape \(2, E\)"),
        ((torch.rand(4, 2), torch.zeros(2, 1)), TypeError, "'edge_index' of dtype"),
        ((torch.rand(4, 2), torch.tensor([[0], [4]])), IndexError, r"outside of \[0, 4\)"),
        ((torch.rand(4, 2), torch.zeros(2, 1, dtype=torch.long, device="meta")), ValueError, "same device"),
        ((torch.rand(4, 2), torch.zeros(2, 1, dtype=torch.long), "dot"), ValueError, "metric 'dot'"),
    ],
)
def test_edge_similarity_errors(args, error, match):
    with pytest.raises(error, match=match):
        edge_similarity(*args)


# ----------------------------------------------------------------------------- patch_graph


def ref_patch_features(image: torch.Tensor, p: int, features: str) -> torch.Tensor:
    b, c, h, w = image.shape
    rows = []
    for i in range(b):
        for py in range(h // p):
            for px in range(w // p):
                block = image[i, :, py * p : (py + 1) * p, px * p : (px + 1) * p]
                rows.append(block.mean(dim=(1, 2)) if features == "mean" else block.reshape(-1))
    width = c if features == "mean" else c * p * p
    return torch.stack(rows) if rows else image.new_zeros(0, width)


@given(
    data=st.data(),
    p=st.integers(1, 3),
    features=st.sampled_from(["mean", "flatten"]),
    connectivity=st.sampled_from([4, 8]),
)
def test_patch_graph_grid_edges(data, p, features, connectivity):
    hp, wp = data.draw(st.integers(0, 4)), data.draw(st.integers(0, 4))
    image = data.draw(images(height=hp * p, width=wp * p, dtype=torch.float64, contiguous=None))
    b = image.shape[0]
    x, edge_index, batch = patch_graph(image, p, connectivity=connectivity, features=features)
    assert_close(x, ref_patch_features(image, p, features))
    assert torch.equal(edge_index, ref_grid(hp, wp, connectivity, 1, False, b))
    assert torch.equal(batch, torch.arange(b).repeat_interleave(hp * wp))


def ref_knn_sets(x: torch.Tensor, batch: torch.Tensor, k: int, loop: bool, metric: str) -> dict[int, list[float]]:
    """For every target, the sorted k smallest distances to allowed candidates (plain loops)."""
    out = {}
    for i in range(x.size(0)):
        dists = []
        for j in range(x.size(0)):
            if batch[j] != batch[i] or (j == i and not loop):
                continue
            dists.append(ref_distance(x[i], x[j], metric))
        out[i] = sorted(dists)[:k]
    return out


def ref_distance(a: torch.Tensor, b: torch.Tensor, metric: str) -> float:
    a, b = a.double(), b.double()
    if metric == "euclidean":
        return float((a - b).norm())
    na, nb = float(a.norm()), float(b.norm())
    if na == 0 or nb == 0:
        return 1.0
    return 1.0 - float(a @ b) / (na * nb)


@given(data=st.data(), k=st.integers(1, 4), metric=st.sampled_from(["euclidean", "cosine"]), loop=st.booleans())
def test_patch_graph_knn_edges(data, k, metric, loop):
    p = 2
    hp = data.draw(st.integers(1, 3))
    wp = data.draw(st.integers(1, 3))
    n = hp * wp
    if k > (n if loop else n - 1):
        with pytest.raises(ValueError, match="Expected 'k' <="):
            patch_graph(torch.rand(1, 2, hp * p, wp * p), p, k=k, loop=loop)
        return
    image = data.draw(images(height=hp * p, width=wp * p, dtype=torch.float64))
    x, edge_index, batch = patch_graph(image, p, k=k, metric=metric, loop=loop)
    assert edge_index.shape == (2, x.size(0) * k)
    assert torch.equal(edge_index[1], torch.arange(x.size(0)).repeat_interleave(k))
    ref = ref_knn_sets(x, batch, k, loop, metric)
    for i in range(x.size(0)):
        srcs = edge_index[0, i * k : (i + 1) * k]
        assert bool((batch[srcs] == batch[i]).all())
        assert len(set(srcs.tolist())) == k
        got = [ref_distance(x[i], x[j], metric) for j in srcs.tolist()]
        assert_close(torch.tensor(got), torch.tensor(ref[i]), atol=1e-9, rtol=1e-9)


@given(image=images(height=4, width=6, dtype=torch.float64), k=st.integers(1, 5))
def test_patch_graph_knn_batched_is_per_image(image, k):
    _, edge_index, _ = patch_graph(image, 2, k=k)
    n = 2 * 3
    parts = [patch_graph(image[i : i + 1], 2, k=k).edge_index + i * n for i in range(image.shape[0])]
    assert torch.equal(edge_index, torch.cat(parts, dim=1))


def test_patch_graph_edge_weight():
    graph = patch_graph(torch.rand(2, 3, 8, 8), 4, similarity="cosine")
    assert isinstance(graph, WeightedImageGraph)
    assert_close(graph.edge_weight, ref_similarity(graph.x, graph.edge_index, "cosine", 1.0).float())


@pytest.mark.parametrize(
    ("args", "kwargs", "error", "match"),
    [
        ((torch.rand(1, 3, 10, 8), 4), {}, ValueError, r"multiples of patch_size=4 \(got H=10, W=8\)"),
        ((torch.rand(1, 3, 8, 8), 0), {}, ValueError, "'patch_size' >= 1"),
        ((torch.rand(1, 3, 8, 8), 4), {"k": 4}, ValueError, r"'k' <= 3 .*\(got k=4\)"),
        ((torch.rand(1, 3, 8, 8), 4), {"k": 2.0}, TypeError, "'k' to be an int"),
        ((torch.rand(1, 3, 8, 8), 4), {"features": "max"}, ValueError, "features 'max'"),
        ((torch.rand(1, 3, 8, 8), 4), {"metric": "l1"}, ValueError, "metric 'l1'"),
        ((torch.rand(3, 8, 8), 4), {}, ValueError, r"'image' of shape \(B, C, H, W\)"),
    ],
)
def test_patch_graph_errors(args, kwargs, error, match):
    with pytest.raises(error, match=match):
        patch_graph(*args, **kwargs)


# ----------------------------------------------------------------------------- nodes_to_image


@given(data=st.data(), p=st.integers(1, 3), heads=st.sampled_from([None, 1, 3]))
def test_nodes_to_image_patch_reference(data, p, heads):
    b, hp, wp = data.draw(st.integers(1, 2)), data.draw(st.integers(1, 3)), data.draw(st.integers(1, 3))
    values = torch.randn(b * hp * wp, *(() if heads is None else (heads,)), generator=torch.Generator().manual_seed(1))
    out = nodes_to_image(values, hp * p, wp * p, patch_size=p)
    kk = 1 if heads is None else heads
    assert out.shape == ((b, hp * p, wp * p) if heads is None else (b, kk, hp * p, wp * p))
    v2 = values.view(-1, kk)
    o4 = out.view(b, kk, hp * p, wp * p)
    for i in range(b):
        for y in range(hp * p):
            for x in range(wp * p):
                node = i * hp * wp + (y // p) * wp + x // p
                assert torch.equal(o4[i, :, y, x], v2[node])


def test_nodes_to_image_patch_round_trip_and_bilinear():
    # An image constant on each 4x4 patch survives image -> patch nodes -> heatmap.
    coarse = torch.rand(2, 3, 2, 3)
    image = coarse.repeat_interleave(4, 2).repeat_interleave(4, 3)
    x, _, _ = patch_graph(image, 4)
    assert_close(nodes_to_image(x, 8, 12, patch_size=4), image)
    # Bilinear upsampling keeps constants and matches F.interpolate.
    const = torch.full((6,), 2.5)
    assert_close(nodes_to_image(const, 8, 12, patch_size=4, mode="bilinear"), torch.full((1, 8, 12), 2.5))
    values = torch.rand(6, 2)
    grid = values.view(1, 2, 3, 2).permute(0, 3, 1, 2)
    expected = torch.nn.functional.interpolate(grid, size=(8, 12), mode="bilinear")
    assert_close(nodes_to_image(values, 8, 12, patch_size=4, mode="bilinear"), expected)


def test_nodes_to_image_gradient():
    values = torch.rand(8, 2, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda v: nodes_to_image(v, 4, 4, patch_size=2), (values,))
    labels = torch.tensor([[[0, 0, 1], [2, 2, 1]]])
    v = torch.rand(3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda t: nodes_to_image(t, 2, 3, labels=labels), (v,))


def test_nodes_to_image_labels_lookup():
    labels = torch.tensor([[[0, 0, 1], [2, 2, 1]], [[3, 3, 3], [4, 3, 3]]])
    values = torch.tensor([10.0, 11.0, 12.0, 13.0, 14.0])
    assert nodes_to_image(values, 2, 3, labels=labels).tolist() == [
        [[10.0, 10.0, 11.0], [12.0, 12.0, 11.0]],
        [[13.0, 13.0, 13.0], [14.0, 13.0, 13.0]],
    ]
    two = torch.stack([values, -values], dim=1)
    out = nodes_to_image(two, 2, 3, labels=labels)
    assert out.shape == (2, 2, 2, 3) and torch.equal(out[:, 1], -out[:, 0])


def test_nodes_to_image_empty():
    assert nodes_to_image(torch.zeros(0), 4, 4).shape == (0, 4, 4)
    assert nodes_to_image(torch.zeros(0, 2), 0, 4, batch_size=3).shape == (3, 2, 0, 4)
    assert nodes_to_image(torch.zeros(0, 2), 4, 4, patch_size=2).shape == (0, 2, 4, 4)


@pytest.mark.parametrize(
    ("args", "kwargs", "error", "match"),
    [
        ((torch.rand(2, 3, 4), 4, 4), {}, ValueError, r"'values' of shape \(N,\) or \(N, K\)"),
        ((torch.rand(15), 4, 4), {}, ValueError, r"multiple of 16 nodes \(4x4 pixels per image\) \(got 15\)"),
        ((torch.rand(16), 4, 4), {"batch_size": 2}, ValueError, r"batch_size\*4\*4 = 32 nodes \(got 16\)"),
        ((torch.rand(4), 6, 4), {"patch_size": 4}, ValueError, "multiples of patch_size=4"),
        ((torch.rand(4), 4, 4), {"mode": "bicubic"}, ValueError, "mode 'bicubic'"),
        ((torch.rand(0), 0, 4), {}, ValueError, "pass 'batch_size'"),
        ((torch.rand(3), 2, 2), {"labels": torch.zeros(1, 2, 3, dtype=torch.long)}, ValueError, r"\(B, 2, 2\)"),
        ((torch.rand(3), 2, 2), {"labels": torch.zeros(1, 2, 2)}, TypeError, "'labels' of dtype"),
        ((torch.rand(3), 2, 2), {"labels": torch.full((1, 2, 2), 3)}, IndexError, r"outside of \[0, 3\)"),
        (
            (torch.rand(3), 2, 2),
            {"labels": torch.zeros(1, 2, 2, dtype=torch.long, device="meta")},
            ValueError,
            "same device as 'values'",
        ),
    ],
)
def test_nodes_to_image_errors(args, kwargs, error, match):
    with pytest.raises(error, match=match):
        nodes_to_image(*args, **kwargs)


# ----------------------------------------------------------------------------- torch.compile


def test_compile_fullgraph_grid_and_patch():
    torch._dynamo.reset()
    image = torch.rand(2, 3, 6, 8)

    def pipeline(im):
        x, edge_index, batch = image_to_graph(im, connectivity=8)
        px, pei, _ = patch_graph(im, 2, k=3)
        heat = nodes_to_image(px[:, 0], 6, 8, patch_size=2)
        return x, edge_index, batch, pei, heat

    compiled = torch.compile(pipeline, fullgraph=True, dynamic=False)
    for got, expected in zip(compiled(image), pipeline(image)):
        if got.is_floating_point():
            assert_close(got, expected)
        else:
            assert torch.equal(got, expected)
