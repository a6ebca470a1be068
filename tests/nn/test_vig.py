"""ViG modules: PyG parity (EdgeConv / DynamicEdgeConv), ViG reference parity (Grapher / FFN), repr, errors, compile."""

from __future__ import annotations

import pytest
import torch

import graphvision.functional as GF
import graphvision.nn as gnn
from graphvision.testing import assert_close
from tests import vig_reference as R


def _messy_graph():
    # self-loops (2->2, 3->3), a duplicate edge (1->0 twice), an isolated node (4)
    return torch.tensor([[0, 1, 1, 2, 3, 3, 0, 2, 5], [1, 0, 0, 2, 1, 3, 5, 3, 0]])


def _net(cin, cout, seed=0):
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Linear(cin, 8), torch.nn.ReLU(), torch.nn.Linear(8, cout))


@pytest.mark.parametrize("aggr", ["max", "mean", "add"])
def test_edge_conv_pyg_parity(aggr):
    pyg = pytest.importorskip("torch_geometric.nn")
    ref = pyg.EdgeConv(_net(6, 4), aggr=aggr)
    ours = gnn.EdgeConv(_net(6, 4, seed=1), aggr=aggr)
    assert list(ours.state_dict()) == list(ref.state_dict())
    ours.load_state_dict(ref.state_dict(), strict=True)
    assert str(ours) == str(ref)
    x = torch.randn(6, 3, requires_grad=True)
    ei = _messy_graph()
    a, b = ours(x, ei), ref(x, ei)
    assert_close(a, b, atol=1e-5, rtol=1e-5)
    ga = torch.autograd.grad(a.square().sum(), x)[0]
    gb = torch.autograd.grad(b.square().sum(), x)[0]
    assert_close(ga, gb, atol=1e-5, rtol=1e-5)
    # batched input with a shared graph = per-sample PyG calls
    xb = torch.randn(3, 6, 3)
    assert_close(ours(xb, ei), torch.stack([ref(xi, ei) for xi in xb]), atol=1e-5, rtol=1e-5)


def test_dynamic_edge_conv_pyg_parity():
    pyg = pytest.importorskip("torch_geometric.nn")
    # PyG's DynamicEdgeConv needs torch_cluster; it is EdgeConv over knn(x, x, k) (self included),
    # so compare with PyG's EdgeConv over a brute-force kNN graph.
    ref = pyg.EdgeConv(_net(6, 4))
    ours = gnn.DynamicEdgeConv(_net(6, 4, seed=2), k=3)
    ours.load_state_dict(ref.state_dict(), strict=True)
    assert str(ours) == f"DynamicEdgeConv(nn={ref.nn}, k=3)"
    x = torch.randn(11, 3)
    batch = torch.tensor([0] * 5 + [1] * 6)
    d = torch.cdist(x.double(), x.double())
    d[batch.view(-1, 1) != batch.view(1, -1)] = float("inf")
    nbr = d.topk(3, largest=False).indices
    ei = torch.stack([nbr.reshape(-1), torch.arange(11).repeat_interleave(3)])
    assert_close(ours(x, batch), ref(x, ei), atol=1e-5, rtol=1e-5)
    xb = torch.randn(2, 7, 3)
    assert_close(ours(xb)[1], ours(xb[1]), atol=1e-6, rtol=1e-6)


def test_mr_conv_module():
    conv = gnn.MRConv(torch.nn.Linear(8, 5))
    assert str(conv) == "MRConv(nn=Linear(in_features=8, out_features=5, bias=True))"
    x = torch.randn(2, 9, 4)
    ei = GF.knn_graph(x, 3, loop=True)
    assert_close(conv(x, ei), GF.mr_conv(x, ei, conv.nn))
    assert conv(x, ei).shape == (2, 9, 5)


@pytest.mark.parametrize(("conv", "rel"), [("mr", True), ("edge", False)])
def test_grapher_matches_vig_reference(conv, rel):
    torch.manual_seed(0)
    ours = gnn.Grapher(16, k=4, dilation=2, conv=conv, relative_pos=rel).double()
    ref = R.Grapher(16, 4, 2, conv).double()
    ref.load_state_dict(ours.state_dict(), strict=True)  # ViG's module names
    x = torch.randn(2, 16, 5, 6, dtype=torch.float64, requires_grad=True)
    rel_term = GF.relative_position_term(16, 5, 6, dtype=torch.float64) if rel else None
    for training in (True, False):
        ours.train(training)
        ref.train(training)
        a, b = ours(x), ref(x, rel_term)
        assert_close(a, b)
        ga = torch.autograd.grad(a.square().sum(), [x, *ours.parameters()])
        gb = torch.autograd.grad(b.square().sum(), [x, *ref.parameters()])
        for u, v in zip(ga, gb):
            assert_close(u, v)


def test_ffn_matches_vig_reference_and_repr():
    ours = gnn.FFN(8, 32).double()
    ref = R.FFN(8, 32).double()
    ref.load_state_dict(ours.state_dict(), strict=True)
    x = torch.randn(2, 8, 3, 3, dtype=torch.float64)
    assert_close(ours(x), ref(x))
    assert str(gnn.Grapher(48, dilation=2, relative_pos=True)) == (
        "Grapher(48, k=9, dilation=2, conv='mr', relative_pos=True)"
    )
    assert str(gnn.Grapher(8, stochastic=True)) == (
        "Grapher(8, k=9, dilation=1, conv='mr', stochastic=True, epsilon=0.2)"
    )


def test_grapher_stochastic_dilation_only_in_training():
    torch.manual_seed(0)
    block = gnn.Grapher(8, k=3, dilation=3, stochastic=True, epsilon=1.0).eval()
    x = torch.randn(1, 8, 4, 4)
    det = gnn.Grapher(8, k=3, dilation=3).eval()
    det.load_state_dict(block.state_dict())
    assert_close(block(x), det(x))  # eval: plain dilation
    block.train()
    det.train()
    # training with epsilon=1: random ranks, so almost surely a different graph
    assert not torch.allclose(block(x), det(x))


def test_grapher_errors_and_drop_path():
    with pytest.raises(ValueError, match="Unknown conv 'gat'"):
        gnn.Grapher(8, conv="gat")
    with pytest.raises(ValueError, match="divisible by groups=4"):
        gnn.Grapher(3)
    with pytest.raises(ValueError, match=r"'x' of shape \(B, 8, H, W\)"):
        gnn.Grapher(8)(torch.randn(1, 4, 3, 3))
    with pytest.raises(ValueError, match=r"'k' \* dilation <= 9 for each sample with 9 nodes \(got k=6, dilation=2"):
        gnn.Grapher(8, k=6, dilation=2)(torch.randn(1, 8, 3, 3))
    with pytest.raises(ValueError, match="out_features == in_features"):
        gnn.FFN(8, 16, 4)
    block = gnn.Grapher(8, k=3, drop_path=0.5).eval()
    x = torch.randn(2, 8, 3, 3)
    assert torch.equal(block(x), block(x))


def test_grapher_compiles_fullgraph():
    torch._dynamo.reset()
    block = gnn.Grapher(8, k=3, dilation=2, relative_pos=True).eval()
    x = torch.randn(2, 8, 4, 4)
    ref = block(x)
    compiled = torch.compile(block, fullgraph=True, backend="eager")
    assert_close(compiled(x), ref)
    torch._dynamo.reset()
    train = gnn.Grapher(8, k=3, dilation=2, stochastic=True, epsilon=0.5).train()
    torch.compile(train, fullgraph=True, backend="eager")(x)  # the random dilation draws in the graph
    dyn = gnn.DynamicEdgeConv(torch.nn.Sequential(torch.nn.Linear(6, 4), torch.nn.ReLU()), k=3)
    nodes = torch.randn(2, 9, 3)
    assert_close(torch.compile(dyn, fullgraph=True, backend="eager")(nodes), dyn(nodes))
