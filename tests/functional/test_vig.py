"""Functional ViG ops against plain loops and PyG: mr_conv, edge_conv, dynamic_edge_conv, layouts, helpers."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import graphvision.functional as GF
from graphvision import GraphStructure
from graphvision.testing import assert_close
from graphvision.testing.strategies import graphs

AGGRS = ["max", "mean", "sum", "min"]


def loop_mr(x, ei):
    """Naive: out_i = [x_i, max_{j->i} (x_j - x_i)] (0 without in-edges)."""
    n, f = x.shape
    rows = []
    for i in range(n):
        srcs = ei[0, ei[1] == i].tolist()
        m = torch.stack([x[j] - x[i] for j in srcs]).amax(0) if srcs else x.new_zeros(f)
        rows.append(torch.cat([x[i], m]))
    return torch.stack(rows) if rows else x.new_zeros(0, 2 * f)


def loop_edge(x, ei, net, aggr):
    n = x.size(0)
    rows = []
    for i in range(n):
        srcs = ei[0, ei[1] == i].tolist()
        if not srcs:
            rows.append(None)
            continue
        h = torch.stack([net(torch.cat([x[i], x[j] - x[i]]).unsqueeze(0))[0] for j in srcs])
        rows.append({"max": h.amax(0), "min": h.amin(0), "sum": h.sum(0), "mean": h.mean(0)}[aggr])
    width = net(x.new_zeros(1, 2 * x.size(1))).size(1)
    return torch.stack([r if r is not None else x.new_zeros(width) for r in rows]) if rows else x.new_zeros(0, width)


@settings(max_examples=20, deadline=None)
@given(graph=graphs(max_nodes=9), f=st.integers(1, 4), seed=st.integers(0, 2**16), contiguous=st.booleans())
def test_mr_conv_matches_loop(graph, f, seed, contiguous):
    n, ei = graph
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 2 * f, generator=g, dtype=torch.float64)[:, ::2] if not contiguous else torch.randn(
        n, f, generator=g, dtype=torch.float64)
    ref = loop_mr(x, ei)
    assert_close(GF.mr_conv(x, ei), ref)
    assert_close(GF.mr_conv(x, GraphStructure(ei, n)), ref)
    # batched: a shared raw graph, and the same graph as per-sample structure over B*N nodes
    xb = torch.stack([x, 2 * x + 1])
    refb = torch.stack([ref, loop_mr(2 * x + 1, ei)])
    assert_close(GF.mr_conv(xb, ei), refb)
    big = torch.cat([ei, ei + n], dim=1)
    assert_close(GF.mr_conv(xb, GraphStructure(big, 2 * n)), refb)


@settings(max_examples=15, deadline=None)
@given(graph=graphs(max_nodes=8), aggr=st.sampled_from(AGGRS), first_linear=st.booleans(), seed=st.integers(0, 2**16))
def test_edge_conv_matches_loop(graph, aggr, first_linear, seed):
    n, ei = graph
    torch.manual_seed(seed)
    x = torch.randn(n, 3, dtype=torch.float64)
    if first_linear:  # the per-node split of the first Linear
        net = torch.nn.Sequential(torch.nn.Linear(6, 5), torch.nn.Tanh(), torch.nn.Linear(5, 4)).double()
    else:  # a generic callable: one network per edge
        lin = torch.nn.Linear(6, 4).double()
        net = lambda t: torch.tanh(lin(t))  # noqa: E731
    ref = loop_edge(x, ei, net, aggr)
    assert_close(GF.edge_conv(x, ei, net, aggr), ref)
    xb = torch.stack([x, -x])
    assert_close(GF.edge_conv(xb, ei, net, aggr), torch.stack([ref, loop_edge(-x, ei, net, aggr)]))


def test_raw_fixed_degree_edge_index_is_recognised():
    from graphvision.ops._api import as_structure

    x = torch.randn(12, 4, dtype=torch.float64)
    ei = GF.knn_graph(x, 3).clone()  # a plain tensor, as PyG's knn_graph would give
    g = as_structure(ei, 12, 12)
    assert torch.equal(GF._vig._dense_table(g), ei[0].view(12, 3))
    # same degree but not target-sorted, or sorted with unequal degrees: no table, same results
    shuffled = ei[:, torch.randperm(36, generator=torch.Generator().manual_seed(0))]
    assert GF._vig._dense_table(as_structure(shuffled, 12, 12)) is None
    uneven = torch.tensor([[1, 2, 0, 3, 1, 2], [0, 0, 0, 1, 2, 3]])
    assert GF._vig._dense_table(as_structure(uneven, 4, 4)) is None
    for e in (ei, shuffled):
        assert_close(GF.mr_conv(x, e), loop_mr(x, e))
    assert_close(GF.mr_conv(x[:4], uneven), loop_mr(x[:4], uneven))


def test_edge_conv_runs_hooks_of_the_first_linear():
    lin = torch.nn.Linear(6, 2)
    seen = []
    lin.register_forward_hook(lambda m, i, o: seen.append(o.shape))
    GF.edge_conv(torch.randn(4, 3), torch.tensor([[0, 1, 2], [1, 2, 3]]), torch.nn.Sequential(lin))
    assert seen == [torch.Size([3, 2])]  # applied per edge, hook called


def test_dense_table_path_equals_scatter_path():
    # A knn_graph result keeps its (N, k) table: the gather path must equal the scatter path.
    torch.manual_seed(0)
    x = torch.randn(3, 20, 6, dtype=torch.float64, requires_grad=True)
    ei = GF.knn_graph(x, 5, loop=True, dilated=GF.DilatedKNN(2))
    raw = ei.clone()  # no .graph: validated and scattered
    assert GF._vig._dense_table(ei.graph) is not None and not hasattr(raw, "graph")
    net = torch.nn.Sequential(torch.nn.Linear(12, 8), torch.nn.ReLU()).double()
    fns = (lambda e: GF.mr_conv(x, e), lambda e: GF.edge_conv(x, e, net), lambda e: GF.edge_conv(x, e, net, "mean"))
    for fn in fns:
        a = fn(ei)
        b = fn(GraphStructure(raw, 60))
        assert_close(a, b)
        ga = torch.autograd.grad(a.square().sum(), x)[0]
        gb = torch.autograd.grad(b.square().sum(), x)[0]
        assert_close(ga, gb)
    # the shared (N, k) table of one sample, broadcast over a batch
    e0 = GF.knn_graph(x[0], 4)
    assert_close(GF.mr_conv(x, e0), GF.mr_conv(x, e0.clone()))


def test_edge_conv_matches_pyg():
    pyg = pytest.importorskip("torch_geometric.nn")
    torch.manual_seed(1)
    # self-loops, a duplicate edge and an isolated node (4)
    ei = torch.tensor([[0, 1, 1, 2, 3, 3, 0, 2], [1, 0, 0, 2, 1, 5, 5, 3]])
    x = torch.randn(6, 3)
    for aggr in ["max", "mean", "add"]:
        net = torch.nn.Sequential(torch.nn.Linear(6, 8), torch.nn.ReLU(), torch.nn.Linear(8, 4))
        ref = pyg.EdgeConv(net, aggr=aggr)(x, ei)
        assert_close(GF.edge_conv(x, ei, net, aggr), ref, atol=1e-5, rtol=1e-5)


def test_dynamic_edge_conv_brute_force():
    torch.manual_seed(2)
    x = torch.randn(12, 3, dtype=torch.float64)
    batch = torch.tensor([0] * 5 + [1] * 7)
    net = torch.nn.Linear(6, 4).double()
    got = GF.dynamic_edge_conv(x, net, 3, batch)
    # brute force kNN including the node itself (PyG's knn(x, x, k)), per graph
    d = torch.cdist(x, x)
    d[batch.view(-1, 1) != batch.view(1, -1)] = math.inf
    nbr = d.topk(3, largest=False).indices
    ei = torch.stack([nbr.reshape(-1), torch.arange(12).repeat_interleave(3)])
    assert_close(got, loop_edge(x, ei, net, "max"))
    xb = x[:10].view(2, 5, 3)
    got_b = GF.dynamic_edge_conv(xb, net, 2)
    for s in range(2):
        assert_close(got_b[s], GF.dynamic_edge_conv(xb[s], net, 2))


def test_gradcheck():
    torch.manual_seed(3)
    x = torch.randn(2, 6, 3, dtype=torch.float64, requires_grad=True)
    ei = torch.tensor([[0, 1, 2, 3, 4, 5, 1], [1, 2, 3, 4, 5, 0, 3]])
    lin = torch.nn.Linear(6, 2).double()
    assert torch.autograd.gradcheck(lambda t: GF.mr_conv(t, ei), (x,))
    assert torch.autograd.gradcheck(lambda t: GF.edge_conv(t, ei, lin, "mean"), (x,))
    assert torch.autograd.gradcheck(lambda t: GF.mr_conv(t, GF.knn_graph(t.detach(), 2)), (x,))


def test_to_nodes_to_image():
    image = torch.randn(2, 5, 3, 4)
    nodes = GF.to_nodes(image)
    assert nodes.shape == (2, 12, 5)
    assert torch.equal(nodes[1, 2 * 4 + 3], image[1, :, 2, 3])  # node y*W + x is pixel (y, x)
    assert torch.equal(GF.to_image(nodes, 3, 4), image)
    # the same node order as image_to_graph
    assert torch.equal(nodes.reshape(-1, 5), GF.image_to_graph(image).x)
    with pytest.raises(ValueError, match=r"with H\*W = 3\*5 = 15 nodes \(got \(2, 12, 5\)\)"):
        GF.to_image(nodes, 3, 5)
    with pytest.raises(ValueError, match=r"'image' of shape \(B, C, H, W\)"):
        GF.to_nodes(torch.randn(3, 4, 5))


def test_relative_position_term_matches_vig_formula():
    import numpy as np

    # ViG's get_2d_relative_pos_embed(embed_dim, grid_size) (MAE's sin-cos embedding), square grid
    def emb_1d(d, pos):
        omega = 1.0 / 10000 ** (np.arange(d // 2, dtype=np.float64) / (d / 2.0))
        out = np.einsum("m,d->md", pos.reshape(-1), omega)
        return np.concatenate([np.sin(out), np.cos(out)], axis=1)

    c, s = 16, 5
    grid = np.stack(np.meshgrid(np.arange(s, dtype=np.float64), np.arange(s, dtype=np.float64)), axis=0)
    pos = np.concatenate([emb_1d(c // 2, grid[0]), emb_1d(c // 2, grid[1])], axis=1)
    rel = 2 * pos @ pos.T / pos.shape[1]
    got = GF.relative_position_term(c, s, s, dtype=torch.float64)
    assert_close(got, -torch.from_numpy(rel))
    assert GF.relative_position_term(8, 2, 3).shape == (6, 6)
    with pytest.raises(ValueError, match="multiple of 4"):
        GF.relative_position_term(6, 2, 2)


def test_errors():
    x = torch.randn(2, 5, 3)
    ei = torch.tensor([[0, 1], [1, 2]])
    with pytest.raises(ValueError, match="Unknown aggr 'prod'"):
        GF.edge_conv(x, ei, torch.nn.Linear(6, 2), "prod")
    with pytest.raises(ValueError, match=r"over N=5 nodes .* or B\*N=10 nodes .*got num_nodes=7"):
        GF.mr_conv(x, GraphStructure(ei, 7))
    with pytest.raises(IndexError, match=r"outside of \[0, 5\).*for per-sample graphs pass the structure"):
        GF.mr_conv(x, torch.tensor([[0, 9], [1, 2]]))
    with pytest.raises(IndexError, match=r"outside of \[0, 5\)"):
        GF.mr_conv(x[0], torch.tensor([[0, 9], [1, 2]]))
    with pytest.raises(ValueError, match=r"'x' of shape \(N, F\) or \(B, N, F\)"):
        GF.mr_conv(torch.randn(5), ei)
    with pytest.raises(ValueError, match="'batch' is for"):
        GF.dynamic_edge_conv(x, torch.nn.Linear(6, 2), 2, torch.zeros(10, dtype=torch.long))
    with pytest.raises(ValueError, match="Expected finite 'x'"):
        GF.dynamic_edge_conv(torch.full((4, 2), float("nan")), torch.nn.Linear(4, 2), 2)


def test_empty_inputs():
    net = torch.nn.Linear(6, 2)
    assert GF.mr_conv(torch.randn(0, 3), torch.zeros(2, 0, dtype=torch.long)).shape == (0, 6)
    assert GF.edge_conv(torch.randn(0, 3), torch.zeros(2, 0, dtype=torch.long), net).shape == (0, 2)
    out = GF.edge_conv(torch.randn(4, 3), torch.zeros(2, 0, dtype=torch.long), net)
    assert torch.equal(out, torch.zeros(4, 2))


def test_compile_fullgraph():
    torch._dynamo.reset()
    x = torch.randn(2, 16, 8)
    net = torch.nn.Sequential(torch.nn.Linear(16, 8), torch.nn.ReLU())

    def fn(x):
        g = GF._graph_knn._dilated_knn_structure(x.detach(), 4, True, "cosine", None, GF.DilatedKNN(2), False)
        return GF.mr_conv(x, g) .sum() + GF.edge_conv(x, g, net).sum()

    compiled = torch.compile(fn, fullgraph=True, backend="eager")
    assert_close(compiled(x), fn(x))
