"""The graph as one object: cached layers tied to their graph, one validation, host syncs counted."""

from __future__ import annotations

import warnings

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

import graphvision.functional as GF
import graphvision.nn as gnn
from graphvision import GraphStructure, _checks, config
from graphvision.testing import assert_close


def _ring(n: int = 6) -> torch.Tensor:
    src = torch.arange(n)
    return torch.stack([torch.cat([src, (src + 1) % n]), torch.cat([(src + 1) % n, src])])


@pytest.mark.parametrize("layer", ["gcn", "gcn2", "attention_gcn"])
def test_cached_layer_recomputes_for_a_permuted_graph(layer: str) -> None:
    torch.manual_seed(0)
    ei = _ring()
    perm = torch.randperm(ei.size(1))
    w = torch.rand(ei.size(1)) + 0.1
    x = torch.randn(6, 4)
    if layer == "gcn":
        cached, plain = gnn.GCNConv(4, 3, cached=True), gnn.GCNConv(4, 3)
    elif layer == "gcn2":
        cached, plain = gnn.GCN2Conv(4, alpha=0.2, cached=True), gnn.GCN2Conv(4, alpha=0.2)
    else:
        cached, plain = gnn.AttentionGCNConv(4, 3, heads=2, cached=True), gnn.AttentionGCNConv(4, 3, heads=2)
    plain.load_state_dict(cached.state_dict())

    def call(m: torch.nn.Module, e: torch.Tensor, ww: torch.Tensor) -> torch.Tensor:
        return m(x, x, e, ww) if layer == "gcn2" else m(x, e, ww)

    assert_close(call(cached, ei, w), call(plain, ei, w))
    # same graph, a fresh tensor with equal contents (as a data loader hands it over): no warning
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert_close(call(cached, ei.clone(), w.clone()), call(plain, ei, w))
    # the edges permuted (and their weights with them): the right answer, with a warning
    other = torch.rand(ei.size(1)) + 0.1
    with pytest.warns(UserWarning, match="different or modified graph"):
        got = call(cached, ei, other)
    assert_close(got, call(plain, ei, other))
    # edited in place: recomputed too
    ei2 = ei.clone()
    call(cached, ei2, w)
    ei2[0, 0] = 3
    with pytest.warns(UserWarning, match="different or modified graph"):
        assert_close(call(cached, ei2, w), call(plain, ei2, w))
    cached.reset_cache()
    assert cached._cache.value is None
    call(cached, ei[:, perm], w[perm])
    cached.to(torch.float64)
    assert cached._cache.value is None  # moving the module drops its cache


def test_cached_gcn_same_graph_permuted_edges_gives_the_same_answer() -> None:
    torch.manual_seed(1)
    ei = _ring()
    perm = torch.randperm(ei.size(1))
    conv = gnn.GCNConv(4, 3, cached=True)
    x = torch.randn(6, 4)
    a = conv(x, ei)
    with pytest.warns(UserWarning):
        b = conv(x, ei[:, perm])
    assert_close(a, b)


class _CountSyncs(TorchDispatchMode):
    def __init__(self) -> None:
        super().__init__()
        self.count = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # noqa: ANN001, ANN204
        if func is torch.ops.aten._local_scalar_dense.default:
            self.count += 1
        return func(*args, **(kwargs or {}))


def _syncs(fn) -> int:  # noqa: ANN001
    before = _checks.HOST_READS
    with _CountSyncs() as mode:
        fn()
    return mode.count + (_checks.HOST_READS - before)


@pytest.mark.parametrize(
    "make",
    [
        lambda: gnn.GCNConv(8, 8),
        lambda: gnn.GATConv(8, 4, heads=2),
        lambda: gnn.AttentionGCNConv(8, 4, heads=2),
        lambda: gnn.GCN2Conv(8, alpha=0.1),
    ],
)
def test_one_layer_call_makes_at_most_one_host_read(make) -> None:  # noqa: ANN001
    torch.manual_seed(0)
    image = torch.randn(2, 8, 5, 5)
    res = GF.image_to_graph(image, connectivity=8)
    layer = make()

    def run(edge_index: object) -> None:
        args = (res.x, res.x, edge_index) if isinstance(layer, gnn.GCN2Conv) else (res.x, edge_index)
        layer(*args).sum().backward()

    # a raw edge_index (a fresh tensor, as a data loader gives it): one validation read
    assert _syncs(lambda: run(res.edge_index.clone())) <= 1
    # the converter's structure: validated when the converter built it; the derived graph cached
    run(res.graph)
    assert _syncs(lambda: run(res.graph)) == 0


def test_checks_off_make_no_validation_read_and_same_result() -> None:
    torch.manual_seed(0)
    res = GF.image_to_graph(torch.randn(1, 4, 4, 4), connectivity=4)
    conv = gnn.GATConv(4, 2, heads=2)
    on = conv(res.x, res.edge_index.clone())
    config.set_checks(False)
    try:
        before = _checks.HOST_READS
        off = conv(res.x, res.edge_index.clone())
        # CPU keeps its bounds check (no segfault on a bad index); it is the only read
        assert _checks.HOST_READS - before <= 1
    finally:
        config.set_checks(None)
    assert_close(on, off)


def test_bad_index_is_a_clear_error_checks_on_or_off_on_cpu() -> None:
    conv = gnn.GCNConv(4, 2)
    bad = torch.tensor([[0, 1, 10**9], [1, 0, 1]])
    for enabled in (True, False):
        config.set_checks(enabled)
        try:
            with pytest.raises(IndexError, match=r"edge_index\[0\]' outside of \[0, 3\)"):
                conv(torch.randn(3, 4), bad)
        finally:
            config.set_checks(None)


def test_structure_and_raw_edge_index_give_the_same_answer() -> None:
    torch.manual_seed(0)
    res = GF.image_to_graph(torch.randn(2, 6, 4, 4), connectivity=8)
    for layer in (gnn.GCNConv(6, 5), gnn.GATConv(6, 5, heads=2), gnn.AttentionGCNConv(6, 5, heads=2)):
        assert_close(layer(res.x, res.graph), layer(res.x, res.edge_index))
    assert isinstance(res.graph, GraphStructure) and res.graph.edge_index is res.edge_index


def _converter_results():  # noqa: ANN202
    torch.manual_seed(0)
    image = torch.rand(2, 3, 8, 8)
    yield "image_to_graph", GF.image_to_graph(image, connectivity=8)
    yield "image_to_graph weighted", GF.image_to_graph(image, connectivity=4, similarity="gaussian")
    yield "patch_graph grid", GF.patch_graph(image, 2)
    yield "patch_graph knn", GF.patch_graph(image, 2, k=3)
    nodes = torch.randn(2, 10, 4)
    yield "mi sparse top-k", GF.mutual_information_adjacency(nodes, bins=4, top_k=3, symmetric=False, output="sparse")
    yield "mi sparse symmetric", GF.mutual_information_adjacency(nodes, bins=4, top_k=3, output="sparse")
    pytest.importorskip("skimage")
    yield "superpixel_graph", GF.superpixel_graph(image, n_segments=6)


@pytest.mark.parametrize("name", ["image_to_graph", "image_to_graph weighted", "patch_graph grid", "patch_graph knn",
                                  "mi sparse top-k", "mi sparse symmetric", "superpixel_graph"])
def test_converters_hand_over_a_correct_trusted_structure(name: str) -> None:
    res = dict(_converter_results())[name]
    g = res.graph
    assert isinstance(g, GraphStructure) and g.edge_index is res.edge_index
    ref = GraphStructure(res.edge_index.clone(), g.num_nodes)  # validated, sorted from scratch
    for got, want in zip(g.csr(), ref.csr()):
        assert torch.equal(got, want)  # the converter's claim (target-sorted, identity perm) holds
    assert g.identity_perm or g.num_edges == 0


def test_converter_structure_is_reused_and_survives_in_place_edits() -> None:
    a = GF.image_to_graph(torch.rand(1, 2, 5, 5))
    b = GF.image_to_graph(torch.rand(1, 2, 5, 5))
    assert a.graph is b.graph  # one cached structure per size: derived data computed once
    a.edge_index[0, 0] = 24  # a user edits their result in place
    c = GF.image_to_graph(torch.rand(1, 2, 5, 5))
    assert c.graph is not a.graph and c.edge_index[0, 0] != 24  # the cache rebuilt a clean grid
