"""Converter modules: equal to their functional twins, readable repr, eager validation, compile."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

import graphvision.functional as F
from graphvision.nn import ImageToGraph, KNNGraph, NodesToImage, PatchGraph, RadiusGraph, SuperpixelGraph
from graphvision.testing.strategies import images


def _equal(a, b) -> None:
    assert type(a) is type(b)
    for u, v in zip(a, b):
        if u is None or v is None:
            assert u is v
        else:
            assert torch.equal(u, v)


@given(
    image=images(height=(0, 5), width=(0, 5)),
    connectivity=st.sampled_from([4, 8]),
    dilation=st.integers(1, 2),
    loop=st.booleans(),
    similarity=st.sampled_from([None, "cosine", "gaussian"]),
)
def test_image_to_graph_module(image, connectivity, dilation, loop, similarity):
    module = ImageToGraph(connectivity, dilation, loop, similarity, sigma=0.5)
    _equal(module(image), F.image_to_graph(image, connectivity, dilation, loop, similarity, 0.5))


@given(k=st.sampled_from([None, 1, 3]), features=st.sampled_from(["mean", "flatten"]), loop=st.booleans())
def test_patch_graph_module(k, features, loop):
    image = torch.rand(2, 3, 8, 12)
    module = PatchGraph(4, k=k, features=features, loop=loop)
    _equal(module(image), F.patch_graph(image, 4, k, features=features, loop=loop))


def test_knn_radius_modules():
    x = torch.randn(20, 3)
    batch = torch.tensor([0] * 8 + [1] * 12)
    assert torch.equal(KNNGraph(3, metric="cosine")(x, batch), F.knn_graph(x, 3, batch, metric="cosine"))
    assert torch.equal(KNNGraph(2, loop=True, chunk_size=4)(x), F.knn_graph(x, 2, loop=True, chunk_size=4))
    assert torch.equal(RadiusGraph(1.0)(x, batch), F.radius_graph(x, 1.0, batch))
    assert torch.equal(
        RadiusGraph(0.5, max_num_neighbors=None, loop=True)(x), F.radius_graph(x, 0.5, None, True, None)
    )


def test_superpixel_and_heatmap_modules():
    image = torch.rand(2, 3, 6, 6)
    labels = torch.randint(0, 4, (2, 6, 6))
    module = SuperpixelGraph(connectivity=8, similarity="cosine")
    _equal(module(image, labels), F.superpixel_graph(image, labels, connectivity=8, similarity="cosine"))
    graph = module(image, labels)
    heat = NodesToImage(6, 6)(graph.x, graph.labels)
    assert torch.equal(heat, F.nodes_to_image(graph.x, 6, 6, labels=graph.labels))
    values = torch.rand(2 * 9)
    assert torch.equal(
        NodesToImage(6, 6, patch_size=2, mode="bilinear")(values),
        F.nodes_to_image(values, 6, 6, patch_size=2, mode="bilinear"),
    )


def test_superpixel_module_slic():
    pytest.importorskip("skimage")
    image = torch.rand(1, 3, 16, 16)
    graph = SuperpixelGraph(n_segments=8, compactness=5.0, slic_kwargs={"max_num_iter": 5})(image)
    ref = F.superpixel_graph(image, n_segments=8, compactness=5.0, slic_kwargs={"max_num_iter": 5})
    _equal(graph, ref)


def test_reprs():
    assert str(ImageToGraph()) == "ImageToGraph(connectivity=8)"
    assert (
        str(ImageToGraph(4, dilation=2, loop=True, similarity="gaussian", sigma=0.5))
        == "ImageToGraph(connectivity=4, dilation=2, loop=True, similarity='gaussian', sigma=0.5)"
    )
    assert str(PatchGraph(16)) == "PatchGraph(patch_size=16, connectivity=8)"
    assert (
        str(PatchGraph(8, k=9, metric="cosine", features="flatten", similarity="cosine"))
        == "PatchGraph(patch_size=8, k=9, metric='cosine', features='flatten', similarity='cosine')"
    )
    assert str(KNNGraph(16, loop=True, chunk_size=128)) == "KNNGraph(k=16, loop=True, chunk_size=128)"
    assert str(RadiusGraph(0.5, max_num_neighbors=None)) == "RadiusGraph(r=0.5, max_num_neighbors=None)"
    assert (
        str(SuperpixelGraph(50, 20.0, connectivity=8, slic_kwargs={"sigma": 1}))
        == "SuperpixelGraph(n_segments=50, compactness=20.0, connectivity=8, slic_kwargs={'sigma': 1})"
    )
    expected = "NodesToImage(height=32, width=48, patch_size=8, mode='bilinear')"
    assert str(NodesToImage(32, 48, 8, "bilinear")) == expected
    # No parameters or buffers: converters are pure functions of their input.
    for m in (ImageToGraph(), PatchGraph(4), KNNGraph(3), RadiusGraph(1.0), SuperpixelGraph(), NodesToImage(4, 4)):
        assert list(m.parameters()) == [] and list(m.buffers()) == []


@pytest.mark.parametrize(
    ("factory", "error", "match"),
    [
        (lambda: ImageToGraph(connectivity=6), ValueError, "connectivity 6"),
        (lambda: ImageToGraph(dilation=0), ValueError, "'dilation' >= 1"),
        (lambda: ImageToGraph(similarity="dot"), ValueError, "similarity 'dot'"),
        (lambda: ImageToGraph(similarity="gaussian", sigma=-1.0), ValueError, "'sigma' > 0"),
        (lambda: PatchGraph(0), ValueError, "'patch_size' >= 1"),
        (lambda: PatchGraph(4, k=1.5), TypeError, "'k' to be an int"),
        (lambda: PatchGraph(4, features="max"), ValueError, "features 'max'"),
        (lambda: KNNGraph(0), ValueError, "'k' >= 1"),
        (lambda: KNNGraph(3, metric="l1"), ValueError, "metric 'l1'"),
        (lambda: RadiusGraph(-1.0), ValueError, "'r' >= 0"),
        (lambda: RadiusGraph(1.0, max_num_neighbors=0), ValueError, "'max_num_neighbors' >= 1"),
        (lambda: SuperpixelGraph(n_segments=0), ValueError, "'n_segments' >= 1"),
        (lambda: SuperpixelGraph(compactness=0), ValueError, "'compactness' > 0"),
        (lambda: NodesToImage(-1, 4), ValueError, "'height' >= 0"),
        (lambda: NodesToImage(4, 4, mode="area"), ValueError, "mode 'area'"),
    ],
)
def test_constructor_errors(factory, error, match):
    with pytest.raises(error, match=match):
        factory()


def test_modules_compile_fullgraph():
    torch._dynamo.reset()
    image = torch.rand(2, 3, 8, 8)

    class Model(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.to_graph = ImageToGraph(4, similarity="cosine")
            self.patches = PatchGraph(2, k=2)
            self.knn = KNNGraph(3)
            self.to_image = NodesToImage(8, 8)

        def forward(self, im):
            x, edge_index, batch, w = self.to_graph(im)
            px, pei, _ = self.patches(im)
            return edge_index, w, pei, self.knn(px), self.to_image(x)

    model = Model()
    compiled = torch.compile(model, fullgraph=True, dynamic=False, backend="eager")
    for got, expected in zip(compiled(image), model(image)):
        assert torch.allclose(got, expected) if got.is_floating_point() else torch.equal(got, expected)
