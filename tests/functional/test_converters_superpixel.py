"""Superpixel graphs against plain loops and scikit-image (RAG, SLIC)."""

from __future__ import annotations

import sys

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from graphvision.functional import RegionGraph, nodes_to_image, slic_superpixels, superpixel_graph
from graphvision.testing import assert_close
from graphvision.testing.strategies import images


@st.composite
def label_maps(draw, max_batch=2, max_side=6, max_label=5):
    """(B, H, W) int64 label maps with few labels, so regions touch and labels skip values."""
    b = draw(st.integers(1, max_batch))
    h = draw(st.integers(1, max_side))
    w = draw(st.integers(1, max_side))
    gen = torch.Generator().manual_seed(draw(st.integers(0, 2**32 - 1)))
    if draw(st.booleans()):
        # Blocky maps (regions of 2x2 cells) as well as salt-and-pepper ones.
        coarse = torch.randint(0, max_label + 1, (b, (h + 1) // 2, (w + 1) // 2), generator=gen)
        return coarse.repeat_interleave(2, 1).repeat_interleave(2, 2)[:, :h, :w].contiguous()
    return torch.randint(0, max_label + 1, (b, h, w), generator=gen)


def ref_region_graph(image: torch.Tensor, labels: torch.Tensor, connectivity: int):
    """Plain loops: nodes in (image, label) order, mean features, centroids, touching pairs."""
    b, c, h, w = image.shape
    node_of = {}
    for i in range(b):
        for lab in sorted(set(labels[i].flatten().tolist())):
            node_of[(i, lab)] = len(node_of)
    n = len(node_of)
    sums = torch.zeros(n, c, dtype=torch.float64)
    pos = torch.zeros(n, 2, dtype=torch.float64)
    counts = torch.zeros(n, dtype=torch.float64)
    batch = torch.zeros(n, dtype=torch.long)
    node_labels = torch.zeros(b, h, w, dtype=torch.long)
    edges = set()
    nbrs = [(0, 1), (1, 0)] + ([(1, 1), (1, -1)] if connectivity == 8 else [])
    for i in range(b):
        for y in range(h):
            for x in range(w):
                v = node_of[(i, int(labels[i, y, x]))]
                node_labels[i, y, x] = v
                sums[v] += image[i, :, y, x].double()
                pos[v] += torch.tensor([y, x], dtype=torch.float64)
                counts[v] += 1
                batch[v] = i
                for dy, dx in nbrs:
                    ny, nx = y + dy, x + dx
                    if 0 <= ny < h and 0 <= nx < w:
                        u = node_of[(i, int(labels[i, ny, nx]))]
                        if u != v:
                            edges.add((u, v))
                            edges.add((v, u))
    edge_list = sorted(edges, key=lambda e: (e[1], e[0]))
    edge_index = torch.tensor(edge_list, dtype=torch.long).reshape(-1, 2).t()
    return sums / counts[:, None], edge_index, batch, node_labels, pos / counts[:, None]


@given(labels=label_maps(), connectivity=st.sampled_from([4, 8]), data=st.data())
def test_superpixel_matches_reference(labels, connectivity, data):
    b, h, w = labels.shape
    image = data.draw(images(batch_size=b, height=h, width=w, dtype=torch.float64, contiguous=None))
    graph = superpixel_graph(image, labels, connectivity=connectivity)
    assert isinstance(graph, RegionGraph) and graph.edge_weight is None
    x, edge_index, batch, node_labels, pos = ref_region_graph(image, labels, connectivity)
    assert_close(graph.x, x)
    assert torch.equal(graph.edge_index, edge_index)
    assert torch.equal(graph.batch, batch)
    assert torch.equal(graph.labels, node_labels)
    assert_close(graph.pos, pos)


@given(labels=label_maps(max_batch=1), connectivity=st.sampled_from([4, 8]))
def test_superpixel_edges_match_skimage_rag(labels, connectivity):
    skgraph = pytest.importorskip("skimage.graph")
    image = torch.rand(1, 1, *labels.shape[1:], dtype=torch.float64)
    graph = superpixel_graph(image, labels, connectivity=connectivity)
    rag = skgraph.RAG(labels[0].numpy(), connectivity=1 if connectivity == 4 else 2)
    uniq = sorted(set(labels.flatten().tolist()))
    ref = {(uniq.index(a), uniq.index(b)) for a, b in rag.edges if a != b}
    ref |= {(v, u) for u, v in ref}
    assert set(map(tuple, graph.edge_index.t().tolist())) == ref


@given(labels=label_maps(), data=st.data())
def test_superpixel_batched_equals_per_image(labels, data):
    b, h, w = labels.shape
    image = data.draw(images(batch_size=b, height=h, width=w, dtype=torch.float64))
    graph = superpixel_graph(image, labels, connectivity=8)
    offset, xs, edges, labs = 0, [], [], []
    for i in range(b):
        g = superpixel_graph(image[i : i + 1], labels[i : i + 1], connectivity=8)
        xs.append(g.x)
        edges.append(g.edge_index + offset)
        labs.append(g.labels + offset)
        offset += g.x.size(0)
    assert_close(graph.x, torch.cat(xs))
    assert torch.equal(graph.edge_index, torch.cat(edges, dim=1))
    assert torch.equal(graph.labels, torch.cat(labs))


@given(labels=label_maps(), data=st.data())
def test_superpixel_round_trip(labels, data):
    # An image constant on each region survives image -> region nodes -> heatmap.
    b, h, w = labels.shape
    colours = torch.randn(b, 6, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    image = torch.stack([colours[i][labels[i]] for i in range(b)]).permute(0, 3, 1, 2)
    graph = superpixel_graph(image, labels)
    assert_close(nodes_to_image(graph.x, h, w, labels=graph.labels), image)
    assert_close(nodes_to_image(graph.x[:, 1], h, w, labels=graph.labels), image[:, 1])


def test_superpixel_hand_computed_self_loops_weights():
    labels = torch.tensor([[[7, 7, 3], [7, 7, 3], [9, 9, 9]]])  # labels need not be consecutive
    image = torch.arange(9, dtype=torch.float32).view(1, 1, 3, 3)
    graph = superpixel_graph(image, labels, loop=True, similarity="gaussian", sigma=10.0)
    # Nodes in label order: 3 -> 0, 7 -> 1, 9 -> 2.
    assert graph.x.flatten().tolist() == [3.5, 2.0, 7.0]
    assert graph.labels.tolist() == [[[1, 1, 0], [1, 1, 0], [2, 2, 2]]]
    assert graph.edge_index.tolist() == [[0, 1, 2, 0, 1, 2, 0, 1, 2], [0, 0, 0, 1, 1, 1, 2, 2, 2]]
    assert graph.edge_weight is not None and graph.edge_weight.shape == (9,)
    assert_close(graph.edge_weight[0], torch.tensor(1.0))
    assert_close(graph.pos, torch.tensor([[0.5, 2.0], [0.5, 0.5], [2.0, 1.0]]))


def test_superpixel_single_region_and_empty():
    graph = superpixel_graph(torch.rand(2, 3, 4, 4), torch.zeros(2, 4, 4, dtype=torch.long))
    assert graph.x.shape == (2, 3) and graph.edge_index.shape == (2, 0) and graph.batch.tolist() == [0, 1]
    graph = superpixel_graph(torch.rand(1, 3, 1, 1), torch.zeros(1, 1, 1, dtype=torch.long))
    assert graph.x.shape == (1, 3) and graph.edge_index.shape == (2, 0)
    graph = superpixel_graph(torch.rand(2, 3, 0, 4), torch.zeros(2, 0, 4, dtype=torch.long))
    assert graph.x.shape == (0, 3) and graph.edge_index.shape == (2, 0) and graph.pos.shape == (0, 2)


def test_superpixel_gradcheck():
    labels = torch.tensor([[[0, 0, 1], [2, 2, 1]]])
    image = torch.rand(1, 2, 2, 3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda im: superpixel_graph(im, labels).x, (image,))
    assert torch.autograd.gradcheck(lambda im: superpixel_graph(im, labels, similarity="cosine").edge_weight, (image,))


def test_superpixel_device(device):
    image = torch.rand(1, 3, 4, 4, device=device)
    labels = torch.tensor([[0, 0, 1, 1]] * 4, device=device).unsqueeze(0)
    graph = superpixel_graph(image, labels)
    assert graph.x.device.type == graph.edge_index.device.type == graph.labels.device.type == device.type


def test_slic_path_matches_skimage():
    segmentation = pytest.importorskip("skimage.segmentation")
    image = torch.rand(2, 3, 24, 24, generator=torch.Generator().manual_seed(0))
    labels = slic_superpixels(image, n_segments=9, compactness=5.0)
    assert labels.shape == (2, 24, 24) and labels.dtype == torch.long
    for i in range(2):
        ref = segmentation.slic(
            image[i].permute(1, 2, 0).double().numpy(), n_segments=9, compactness=5.0, start_label=0, channel_axis=-1
        )
        assert torch.equal(labels[i], torch.from_numpy(ref).long())
    graph = superpixel_graph(image, n_segments=9, compactness=5.0)
    assert torch.equal(graph.labels, superpixel_graph(image, labels).labels)
    assert graph.x.size(0) == sum(int(labels[i].max()) + 1 for i in range(2))
    # Single-channel images work too.
    assert slic_superpixels(image[:, :1], n_segments=4).shape == (2, 24, 24)


def test_slic_missing_skimage_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "skimage.segmentation", None)
    with pytest.raises(ImportError, match=r"graphvision\[superpixel\]"):
        slic_superpixels(torch.rand(1, 3, 8, 8))
    # A user label map needs no scikit-image.
    assert superpixel_graph(torch.rand(1, 3, 2, 2), torch.zeros(1, 2, 2, dtype=torch.long)).x.shape == (1, 3)


@pytest.mark.parametrize(
    ("labels", "kwargs", "error", "match"),
    [
        (torch.zeros(1, 4, 5, dtype=torch.long), {}, ValueError, r"'labels' of shape \(B, H, W\) = \(1, 4, 4\)"),
        (torch.zeros(4, 4, dtype=torch.long), {}, ValueError, r"'labels' of shape \(B, H, W\) \(got \(4, 4\)\)"),
        (torch.zeros(1, 4, 4), {}, TypeError, "'labels' of an integer dtype"),
        (torch.full((1, 4, 4), -1), {}, ValueError, r"'labels' >= 0 \(got min -1\)"),
        (torch.zeros(1, 4, 4, dtype=torch.long, device="meta"), {}, ValueError, "same device as 'image'"),
        (torch.zeros(1, 4, 4, dtype=torch.long), {"connectivity": 6}, ValueError, "connectivity 6"),
        (torch.zeros(1, 4, 4, dtype=torch.long), {"similarity": "l1"}, ValueError, "similarity 'l1'"),
    ],
)
def test_superpixel_errors(labels, kwargs, error, match):
    with pytest.raises(error, match=match):
        superpixel_graph(torch.rand(1, 3, 4, 4), labels, **kwargs)


def test_slic_errors():
    with pytest.raises(ValueError, match="'n_segments' >= 1"):
        slic_superpixels(torch.rand(1, 3, 4, 4), n_segments=0)
    with pytest.raises(ValueError, match="'compactness' > 0"):
        slic_superpixels(torch.rand(1, 3, 4, 4), compactness=-1.0)
    with pytest.raises(ValueError, match=r"'image' of shape \(B, C, H, W\)"):
        slic_superpixels(torch.rand(3, 4, 4))


def test_superpixel_compile_fullgraph_with_dynamic_shapes():
    torch._dynamo.reset()
    image = torch.rand(2, 3, 5, 6, dtype=torch.float64)
    labels = torch.randint(0, 4, (2, 5, 6))
    with torch._dynamo.config.patch(capture_dynamic_output_shape_ops=True, capture_scalar_outputs=True):
        fn = lambda im, lab: superpixel_graph(im, lab, connectivity=8)  # noqa: E731
        compiled = torch.compile(fn, fullgraph=True, backend="eager")
        got, ref = compiled(image, labels), superpixel_graph(image, labels, connectivity=8)
    assert_close(got.x, ref.x)
    assert torch.equal(got.edge_index, ref.edge_index) and torch.equal(got.labels, ref.labels)
