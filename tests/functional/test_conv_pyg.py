"""Functional PyG-twin convs against plain per-node loops (float64), module == functional, gradcheck,
empty and non-contiguous inputs."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F  # noqa: N812
from hypothesis import given, settings
from hypothesis import strategies as st

import graphvision.functional as GF
import graphvision.nn as gnn
from graphvision.testing import assert_close
from graphvision.testing.strategies import graphs

MESSY = graphs(min_nodes=0, max_nodes=8, max_edges=24)


# ----------------------------------------------------------------------------------------------
# plain references: one loop over target nodes, float64, PyG's documented semantics
# ----------------------------------------------------------------------------------------------


def _in_edges(ei, i):
    return [e for e in range(ei.size(1)) if int(ei[1, e]) == i]


def ref_aggr(x_src, ei, n_dst, aggr, w=None):
    out = torch.zeros(n_dst, x_src.size(1), dtype=torch.float64)
    for i in range(n_dst):
        into = _in_edges(ei, i)
        if not into:
            continue
        msgs = torch.stack([x_src[int(ei[0, e])].double() * (1.0 if w is None else float(w[e])) for e in into])
        out[i] = {"sum": msgs.sum(0), "mean": msgs.mean(0), "max": msgs.max(0).values}[aggr]
    return out


def ref_gatv2(x, ei, wl, wr, att, ea, we, negative_slope, fill):
    """Loops removed, one per node added with edge features reduced by ``fill`` ('mean' or a float)."""
    n = x.size(0)
    k, f = att.shape
    keep = [e for e in range(ei.size(1)) if int(ei[0, e]) != int(ei[1, e])]
    edges = [(int(ei[0, e]), int(ei[1, e])) for e in keep] + [(i, i) for i in range(n)]
    feats = None
    if ea is not None:
        loop = []
        for i in range(n):
            into = [e for e in keep if int(ei[1, e]) == i]
            if isinstance(fill, str):
                loop.append(ea[into].double().mean(0) if into else torch.zeros(ea.size(1), dtype=torch.float64))
            else:
                loop.append(torch.full((ea.size(1),), float(fill), dtype=torch.float64))
        feats = [ea[e].double() for e in keep] + loop
    hl = (x.double() @ wl.double().t()).view(n, k, f)
    hr = (x.double() @ wr.double().t()).view(n, k, f)
    out = torch.zeros(n, k, f, dtype=torch.float64)
    for i in range(n):
        into = [p for p, (_, t) in enumerate(edges) if t == i]
        z = torch.stack([hl[edges[p][0]] + hr[i] + (0 if feats is None else (we.double() @ feats[p]).view(k, f)) for p in into])
        s = (F.leaky_relu(z, negative_slope) * att.double()).sum(-1)  # (deg, K)
        a = torch.softmax(s, 0)
        out[i] = (a.unsqueeze(-1) * torch.stack([hl[edges[p][0]] for p in into])).sum(0)
    return out


# ----------------------------------------------------------------------------------------------
# against the references
# ----------------------------------------------------------------------------------------------


@settings(max_examples=15, deadline=None)
@given(graph=MESSY, aggr=st.sampled_from(["sum", "mean", "max"]), weighted=st.booleans(), f_out=st.sampled_from([2, 5]),
       seed=st.integers(0, 2**16))
def test_sage_and_graph_conv_match_reference(graph, aggr, weighted, f_out, seed):
    n, ei = graph
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 3, generator=g)
    w1, w2, b = torch.randn(f_out, 3, generator=g), torch.randn(f_out, 3, generator=g), torch.randn(f_out, generator=g)
    ref = ref_aggr(x, ei, n, aggr) @ w1.double().t() + b.double() + x.double() @ w2.double().t()
    assert_close(GF.sage_conv(x, ei, w1, b, w2, aggr=aggr), ref)
    assert_close(GF.sage_conv(x, ei, w1, b, w2, aggr=aggr, normalize=True), F.normalize(ref, dim=-1))
    ew = torch.rand(ei.size(1), generator=g) if weighted else None
    ref = ref_aggr(x, ei, n, aggr, ew) @ w1.double().t() + b.double() + x.double() @ w2.double().t()
    assert_close(GF.graph_conv(x, ei, w1, b, w2, ew, aggr=aggr), ref)


@settings(max_examples=15, deadline=None)
@given(graph=MESSY, eps=st.floats(-1, 1), seed=st.integers(0, 2**16))
def test_gin_and_gine_match_reference(graph, eps, seed):
    n, ei = graph
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 3, generator=g)
    ref = ref_aggr(x, ei, n, "sum") + (1 + eps) * x.double()
    assert_close(GF.gin_conv(x, ei, eps=eps), ref)
    ea = torch.randn(ei.size(1), 2, generator=g)
    we, be = torch.randn(3, 2, generator=g), torch.randn(3, generator=g)
    proj = ea.double() @ we.double().t() + be.double()
    ref = torch.zeros(n, 3, dtype=torch.float64)
    for e in range(ei.size(1)):
        ref[int(ei[1, e])] += (x[int(ei[0, e])].double() + proj[e]).relu()
    ref = ref + (1 + eps) * x.double()
    assert_close(GF.gine_conv(x, ei, ea, None, eps, we, be), ref)


@settings(max_examples=15, deadline=None)
@given(graph=graphs(min_nodes=1, max_nodes=8, max_edges=24), heads=st.integers(1, 2), edge=st.booleans(),
       fill=st.sampled_from(["mean", -0.5]), seed=st.integers(0, 2**16))
def test_gatv2_matches_reference(graph, heads, edge, fill, seed):
    n, ei = graph
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 3, generator=g)
    wl, wr = torch.randn(heads * 4, 3, generator=g), torch.randn(heads * 4, 3, generator=g)
    att = torch.randn(heads, 4, generator=g)
    ea = torch.randn(ei.size(1), 2, generator=g) if edge else None
    we = torch.randn(heads * 4, 2, generator=g) if edge else None
    out = GF.gatv2_conv(x, ei, GF.GATv2Weights(wl, wr, att, weight_edge=we), ea,
                         options=GF.GATOptions(negative_slope=0.3, fill_value=fill))
    assert_close(out, ref_gatv2(x, ei, wl, wr, att, ea, we, 0.3, fill).reshape(n, -1))


# ----------------------------------------------------------------------------------------------
# module == functional, gradcheck, empty, non-contiguous
# ----------------------------------------------------------------------------------------------

_EI = torch.tensor([[0, 1, 1, 2, 0, 3, 3, 1], [0, 0, 0, 1, 2, 2, 3, 2]])


def test_modules_match_functional():
    torch.manual_seed(0)
    x, ea = torch.randn(5, 4), torch.randn(8, 2)
    m = gnn.GATv2Conv(4, 3, heads=2, edge_dim=2, concat=False)
    weights = GF.GATv2Weights(m.lin_l.weight, m.lin_r.weight, m.att, m.bias, bias_src=m.lin_l.bias,
                              bias_dst=m.lin_r.bias, weight_edge=m.lin_edge.weight)
    ref = GF.gatv2_conv(x, _EI, weights, ea, options=GF.GATOptions(concat=False))
    assert_close(m(x, _EI, ea), ref)
    m = gnn.SAGEConv(4, 3, aggr="max", project=True, normalize=True)
    ref = GF.sage_conv(x, _EI, m.lin_l.weight, m.lin_l.bias, m.lin_r.weight, aggr="max", normalize=True,
                       project_weight=m.lin.weight, project_bias=m.lin.bias)
    assert_close(m(x, _EI), ref)
    m = gnn.GraphConv(4, 3, aggr="mean")
    assert_close(m(x, _EI, ea[:, 0]), GF.graph_conv(x, _EI, m.lin_rel.weight, m.lin_rel.bias, m.lin_root.weight, ea[:, 0], aggr="mean"))
    mlp = torch.nn.Linear(4, 3)
    m = gnn.GINConv(mlp, eps=0.3)
    assert_close(m(x, _EI), GF.gin_conv(x, _EI, mlp, 0.3))
    m = gnn.GINEConv(mlp, eps=0.3, edge_dim=2)
    assert_close(m(x, _EI, ea), GF.gine_conv(x, _EI, ea, mlp, 0.3, m.lin.weight, m.lin.bias))


def test_gradcheck_float64():
    from graphvision import GraphStructure

    torch.manual_seed(0)
    gs = GraphStructure(_EI, 5)  # derived data (CSR, looped graph) built once for all the calls
    dd = {"dtype": torch.float64}
    x = torch.randn(5, 3, **dd, requires_grad=True)
    ea = torch.randn(8, 2, **dd, requires_grad=True)
    wl, wr, we = torch.randn(4, 3, **dd), torch.randn(4, 3, **dd), torch.randn(4, 2, **dd)
    att = torch.randn(2, 2, **dd, requires_grad=True)
    weights = lambda att: GF.GATv2Weights(wl, wr, att, weight_edge=we)  # noqa: E731
    assert torch.autograd.gradcheck(lambda x, att, ea: GF.gatv2_conv(x, gs, weights(att), ea),
                                    (x, att, ea))
    w = torch.randn(2, 3, **dd)
    assert torch.autograd.gradcheck(lambda x: GF.sage_conv(x, gs, w, None, w, aggr="mean"), (x,))
    we3 = torch.randn(3, 2, **dd)
    assert torch.autograd.gradcheck(lambda x, ea: GF.gine_conv(x, gs, ea, None, 0.1, we3), (x, ea))


@pytest.mark.parametrize("n", [0, 3])
def test_empty_graph_forward_backward(n):
    ei = torch.zeros(2, 0, dtype=torch.long)
    x = torch.randn(n, 4, requires_grad=True)
    mods = [gnn.GATv2Conv(4, 3, heads=2, edge_dim=2), gnn.SAGEConv(4, 3, aggr="max"), gnn.GraphConv(4, 3),
            gnn.GINConv(torch.nn.Linear(4, 3)), gnn.GATConv(4, 3, edge_dim=2)]
    for m in mods:
        args = (torch.zeros(0, 2),) if getattr(m, "edge_dim", None) else ()
        out = m(x, ei, *args)
        assert out.shape[0] == n
        out.sum().backward()
    out = gnn.GINEConv(torch.nn.Linear(4, 3))(x, ei, torch.zeros(0, 4))
    assert out.shape == (n, 3)


def test_non_contiguous_inputs():
    torch.manual_seed(0)
    x = torch.randn(4, 5).t()  # (5, 4) non-contiguous
    ei = torch.stack([_EI[1], _EI[0]], 1).t()  # non-contiguous (2, E)
    ea = torch.randn(2, 8).t()
    for m, args in [(gnn.GATv2Conv(4, 3, edge_dim=2), (ea,)), (gnn.SAGEConv(4, 3), ()), (gnn.GINEConv(torch.nn.Linear(4, 3), edge_dim=2), (ea,))]:
        assert_close(m(x, ei, *args), m(x.contiguous(), ei.contiguous(), *(a.contiguous() for a in args)))


@pytest.mark.parametrize("reps", [1, 2])
@pytest.mark.parametrize("edge", [False, True])
def test_gatv2_chunked_scores_match_autograd(monkeypatch, reps, edge):
    """The chunked score function (forward and every gradient) over several chunks, against plain autograd."""
    from graphvision.functional import _conv_pyg

    monkeypatch.setattr(_conv_pyg, "_CHUNK_ELEMS", 7 * reps * 2 * 3)  # 40 edges -> 6 chunks, a ragged last one
    torch.manual_seed(0)
    k, f, n, e = 2, 3, 9, 40
    src, dst = torch.randint(n, (e,)), torch.randint(n, (e,))
    hs = torch.randn(n, reps * k, f, dtype=torch.float64, requires_grad=True)
    hd = torch.randn(n, reps * k, f, dtype=torch.float64, requires_grad=True)
    att = torch.randn(reps * k, f, dtype=torch.float64, requires_grad=True)
    ea = torch.randn(e, 4, dtype=torch.float64, requires_grad=True) if edge else None
    we = torch.randn(k * f, 4, dtype=torch.float64, requires_grad=True) if edge else None
    out = _conv_pyg._GATv2Scores.apply(hs, hd, att, ea, we, src, dst, 0.2, reps)
    z = hs[src] + hd[dst]
    if edge:
        z = z + (ea @ we.t()).view(e, 1, k, f).expand(e, reps, k, f).reshape(e, reps * k, f)
    ref = (F.leaky_relu(z, 0.2) * att).sum(-1)
    assert_close(out, ref)
    inputs = [t for t in (hs, hd, att, ea, we) if t is not None]
    g = torch.randn_like(ref)
    assert_close(torch.cat([d.flatten() for d in torch.autograd.grad(out, inputs, g)]),
                 torch.cat([d.flatten() for d in torch.autograd.grad(ref, inputs, g)]))


@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("shared", [False, True])
def test_chunked_max_matches_unchunked(monkeypatch, weighted, shared):
    """Max aggregation over many row chunks (ties from duplicate edges, empty rows) against one chunk."""
    from graphvision import GraphStructure
    from graphvision.functional import _conv_pyg

    torch.manual_seed(0)
    n, e = 30, 120
    ei = torch.randint(n - 3, (2, e))  # the last 3 nodes have no in-edges
    ei = torch.cat([ei, ei[:, :20]], 1)  # duplicates: tied maxima
    x = torch.randn(2, n, 3, dtype=torch.float64) if shared else torch.randn(n, 3, dtype=torch.float64)
    w = torch.rand(ei.size(1), dtype=torch.float64) if weighted else None
    wl = torch.randn(2, 3, dtype=torch.float64)

    def run():
        xx = x.clone().requires_grad_()
        ww = w.clone().requires_grad_() if weighted else None
        out = GF.graph_conv(xx, GraphStructure(ei, n), wl, None, None, ww, aggr="max")
        grads = torch.autograd.grad(out, [t for t in (xx, ww) if t is not None], torch.ones_like(out) + out.detach())
        return out, grads

    ref = run()
    monkeypatch.setattr(_conv_pyg, "_CHUNK_ELEMS", 5)  # a few rows per chunk
    got = run()
    assert_close(got[0], ref[0])
    for a, b in zip(got[1], ref[1]):
        assert_close(a, b)


@pytest.mark.parametrize("proj", [False, True])
@pytest.mark.parametrize("shared", [False, True])
def test_chunked_gine_matches_unchunked(monkeypatch, proj, shared):
    """GINE messages over many edge chunks (forward and every gradient) against one chunk."""
    from graphvision.functional import _conv_pyg

    torch.manual_seed(0)
    n, e, f = 12, 50, 3
    ei = torch.randint(n, (2, e))
    dd = {"dtype": torch.float64}
    x = torch.randn(2, n, f, **dd) if shared else torch.randn(n, f, **dd)
    ea = torch.randn(e, 2 if proj else f, **dd)
    we, be = (torch.randn(f, 2, **dd), torch.randn(f, **dd)) if proj else (None, None)

    def run():
        ts = [t.clone().requires_grad_() if t is not None else None for t in (x, ea, we, be)]
        out = GF.gine_conv(ts[0], ei, ts[1], None, 0.2, ts[2], ts[3])
        return [out] + list(torch.autograd.grad(out, [t for t in ts if t is not None], torch.ones_like(out) + out.detach()))

    ref = run()
    monkeypatch.setattr(_conv_pyg, "_CHUNK_ELEMS", 9)  # 1-3 edges per chunk
    for a, b in zip(run(), ref):
        assert_close(a, b)
