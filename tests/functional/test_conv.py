"""Functional graph convolutions against plain-loop references written from the docstrings.

The references below (``ref_*``) loop over nodes and edges in Python and are never edited to match
the implementation. The ``nn`` tests import them.
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F  # noqa: N812
from hypothesis import given
from hypothesis import strategies as st

import graphvision.functional as GF
from graphvision.testing import assert_close
from graphvision.testing.strategies import graphs

# ----------------------------------------------------------------------------------------------
# plain references
# ----------------------------------------------------------------------------------------------


def ref_norm_adjacency(edge_index, edge_weight, n, add_self_loops=True, improved=False, normalize=True):
    """Dense (N_dst, N_src) propagation matrix; loops are 'remaining' loops as in PyG."""
    a = torch.zeros(n, n, dtype=torch.float64)
    ei = edge_index.long()
    for e in range(ei.size(1)):
        j, i = int(ei[0, e]), int(ei[1, e])
        if add_self_loops and i == j:
            continue  # PyG's add_remaining_self_loops: existing loops leave the edge list ...
        a[i, j] += 1.0 if edge_weight is None else float(edge_weight[e])
    if add_self_loops:
        fill = 2.0 if improved else 1.0
        for v in range(n):
            loop_w = fill  # ... and each node gets one loop: its last existing loop's weight, else fill
            for e in range(ei.size(1)):
                if int(ei[0, e]) == v and int(ei[1, e]) == v:
                    loop_w = 1.0 if edge_weight is None else float(edge_weight[e])
            a[v, v] += loop_w
    if not normalize:
        return a
    deg = a.sum(1)
    dinv = torch.where(deg != 0, deg.abs().clamp_min(1e-300) ** -0.5, torch.zeros_like(deg))
    return dinv[:, None] * a * dinv[None, :]


def ref_gcn(x, edge_index, weight, bias, edge_weight, **kw):
    a = ref_norm_adjacency(edge_index, edge_weight, x.size(0), **kw)
    out = a @ x.double() @ weight.double().t()
    return out if bias is None else out + bias.double()


def ref_attention(h, a_src, a_dst, edges, weights, n, negative_slope):
    """h (N, K, F); edges list of (j, i); weights list of floats -> (N, K, F), attention (E, K)."""
    k = h.size(1)
    out = torch.zeros(n, k, h.size(2), dtype=torch.float64)
    attn = torch.zeros(len(edges), k, dtype=torch.float64)
    s_src = (h * a_src).sum(-1)
    s_dst = (h * a_dst).sum(-1)
    for i in range(n):
        into = [e for e, (_, t) in enumerate(edges) if t == i]
        if not into:
            continue
        for kk in range(k):
            sc = torch.stack([F.leaky_relu(s_src[edges[e][0], kk] + s_dst[i, kk], negative_slope) for e in into])
            p = torch.softmax(sc, 0)
            for pe, e in zip(p, into):
                attn[e, kk] = pe
                out[i, kk] += pe * weights[e] * h[edges[e][0], kk]
    return out, attn


def ref_attention_conv(
    x, edge_index, weight, att_src, att_dst, bias, edge_weight, *, x0=None, alpha=0.0, concat=True,
    negative_slope=0.2, normalize=False, add_self_loops=True, improved=False, fill_value=1.0,
):
    n = x.size(0)
    k, f = att_src.shape[-2:]
    h = (x.double() @ weight.double().t()).view(n, k, f)
    edges = [(int(j), int(i)) for j, i in edge_index.long().t().tolist()]
    w = [1.0 if edge_weight is None else float(v) for v in (edge_weight if edge_weight is not None else [1] * len(edges))]
    fill = 2.0 if improved else fill_value
    if add_self_loops:
        # PyG's semantics: the existing loops leave the edge list, each node gets one loop. Its
        # weight: with normalize, the node's last existing loop's weight, else the fill value.
        loop_w = [fill if (normalize or edge_weight is not None) else 1.0] * n
        if normalize:
            for e, (j, i) in enumerate(edges):
                if i == j:
                    loop_w[i] = w[e]
        kept = [e for e, (j, i) in enumerate(edges) if i != j]
        edges, w = [edges[e] for e in kept], [w[e] for e in kept]
    if normalize:
        deg = [sum(w[e] for e, (_, t) in enumerate(edges) if t == v) + (loop_w[v] if add_self_loops else 0) for v in range(n)]
        dinv = [d**-0.5 if d != 0 else 0.0 for d in deg]
        w = [dinv[j] * w[e] * dinv[i] for e, (j, i) in enumerate(edges)]
        if add_self_loops:
            loop_w = [dinv[v] * loop_w[v] * dinv[v] for v in range(n)]
    if add_self_loops:
        edges += [(v, v) for v in range(n)]
        w += loop_w
    out, attn = ref_attention(h, att_src.double().view(k, f), att_dst.double().view(k, f), edges, w, n, negative_slope)
    if x0 is not None and alpha:
        out = (1 - alpha) * out + alpha * (x0.double() @ weight.double().t()).view(n, k, f)
    out = out.reshape(n, k * f) if concat else out.mean(1)
    if bias is not None:
        out = out + bias.double()
    return out, (edges, attn)


def by_edge(edge_index, attn):
    """Attention rows in (target, source, value) order: compares two edge orders of one graph."""
    rows = [(int(i), int(j), *[round(float(v), 6) for v in a]) for (j, i), a in zip(edge_index, attn)]
    return sorted(rows)


def assert_same_attention(ei_out, attn, ref_attn):
    edges, ref = ref_attn
    assert ei_out.size(1) == len(edges)
    if not edges:
        assert attn.numel() == 0
        return
    got = by_edge(ei_out.t().tolist(), attn.reshape(len(edges), -1).tolist())
    want = by_edge(edges, ref.reshape(len(edges), -1).tolist())
    assert [r[:2] for r in got] == [r[:2] for r in want]
    assert_close(torch.tensor([r[2:] for r in got], dtype=torch.float64), torch.tensor([r[2:] for r in want]), atol=2e-5)


def ref_gcn2(x, x0, edge_index, w1, w2, edge_weight, alpha, beta, **kw):
    p = ref_norm_adjacency(edge_index, edge_weight, x.size(0), **kw)
    h = (1 - alpha) * (p @ x.double())
    h0 = alpha * x0.double()
    eye = torch.eye(x.size(1), dtype=torch.float64)
    if w2 is None:
        return (h + h0) @ ((1 - beta) * eye + beta * w1.double())
    return h @ ((1 - beta) * eye + beta * w1.double()) + h0 @ ((1 - beta) * eye + beta * w2.double())


def ref_ecc(x, edge_index, mats, root, bias, aggr):
    n = x.size(0)
    out = torch.zeros(n, mats.size(2), dtype=torch.float64)
    msgs: dict[int, list] = {i: [] for i in range(n)}
    for e, (j, i) in enumerate(edge_index.long().t().tolist()):
        msgs[i].append(x[j].double() @ mats[e].double())
    for i in range(n):
        if msgs[i]:
            m = torch.stack(msgs[i])
            out[i] = {"sum": m.sum(0), "mean": m.mean(0), "max": m.amax(0)}[aggr]
    if root is not None:
        out = out + x.double() @ root.double().t()
    if bias is not None:
        out = out + bias.double()
    return out


def _gen(seed):
    return torch.Generator().manual_seed(seed)


def _rand(g, *shape, dtype=torch.float32):
    return torch.randn(*shape, generator=g, dtype=dtype)


# ----------------------------------------------------------------------------------------------
# gcn_norm
# ----------------------------------------------------------------------------------------------


class TestGCNNorm:
    def test_table(self):
        # path 0 - 1 - 2 (both directions); degrees with loops: 2, 3, 2
        ei = torch.tensor([[0, 1, 1, 2], [1, 0, 2, 1]])
        out_ei, w = GF.gcn_norm(ei, num_nodes=3)
        assert out_ei.tolist() == [[0, 1, 1, 2, 0, 1, 2], [1, 0, 2, 1, 0, 1, 2]]
        s6 = 1 / math.sqrt(6)
        assert_close(w, torch.tensor([s6, s6, s6, s6, 1 / 2, 1 / 3, 1 / 2]))

    @given(graph=graphs(max_nodes=10), weighted=st.booleans(), loops=st.booleans(), improved=st.booleans(),
           seed=st.integers(0, 2**16))
    def test_matches_reference(self, graph, weighted, loops, improved, seed):
        n, ei = graph
        w = torch.rand(ei.size(1), generator=_gen(seed), dtype=torch.float64) + 0.1 if weighted else None
        out_ei, out_w = GF.gcn_norm(ei, w, n, add_self_loops=loops, improved=improved, dtype=torch.float64)
        assert out_ei.size(1) == ei.size(1) + (n if loops else 0)
        dense = torch.zeros(n, n, dtype=torch.float64).index_put_((out_ei[1], out_ei[0]), out_w, accumulate=True)
        assert_close(dense, ref_norm_adjacency(ei, w, n, loops, improved))

    # Messy graphs: self-loops, duplicate edges (duplicate loops too: PyG keeps the last), isolated nodes.
    @given(graph=graphs(max_nodes=8), seed=st.integers(0, 2**16))
    def test_matches_pyg(self, graph, seed):
        pyg = pytest.importorskip("torch_geometric.nn.conv.gcn_conv")
        n, ei = graph
        w = torch.rand(ei.size(1), generator=_gen(seed)) + 0.1
        a_ei, a_w = GF.gcn_norm(ei, w, n)
        b_ei, b_w = pyg.gcn_norm(ei, w, n)
        da = torch.zeros(n, n).index_put_((a_ei[1], a_ei[0]), a_w, accumulate=True)
        db = torch.zeros(n, n).index_put_((b_ei[1], b_ei[0]), b_w, accumulate=True)
        assert_close(da, db)

    def test_errors(self):
        ei = torch.tensor([[0, 1], [1, 0]])
        with pytest.raises(ValueError, match=r"Expected 'edge_index' of shape \(2, E\)"):
            GF.gcn_norm(ei.t().reshape(1, 4), num_nodes=2)
        with pytest.raises(ValueError, match=r"'edge_weight' of shape \(E,\) with E=2"):
            GF.gcn_norm(ei, torch.ones(3), num_nodes=2)
        with pytest.raises(TypeError, match="floating-point"):
            GF.gcn_norm(ei, torch.ones(2, dtype=torch.long), num_nodes=2)
        with pytest.raises(IndexError, match="outside of"):
            GF.gcn_norm(ei, num_nodes=1)

    def test_zero_degree_gradient_is_finite(self):
        # an isolated node without self-loops has degree 0 -> weight 0 and finite gradients
        ei = torch.tensor([[0], [1]])
        w = torch.ones(1, dtype=torch.float64, requires_grad=True)
        _, out = GF.gcn_norm(ei, w, num_nodes=3, add_self_loops=False)
        out.sum().backward()
        assert torch.isfinite(w.grad).all()


# ----------------------------------------------------------------------------------------------
# convolutions against the references
# ----------------------------------------------------------------------------------------------


class TestGCN:
    @given(graph=graphs(max_nodes=9), f_in=st.integers(1, 5), f_out=st.integers(1, 6), weighted=st.booleans(),
           loops=st.booleans(), improved=st.booleans(), seed=st.integers(0, 2**16))
    def test_matches_reference(self, graph, f_in, f_out, weighted, loops, improved, seed):
        n, ei = graph
        g = _gen(seed)
        x, weight, bias = _rand(g, n, f_in), _rand(g, f_out, f_in), _rand(g, f_out)
        w = torch.rand(ei.size(1), generator=g) + 0.1 if weighted else None
        out = GF.gcn_conv(x, ei, weight, bias, w, norm=GF.GCNNorm(add_self_loops=loops, improved=improved))
        assert_close(out, ref_gcn(x, ei, weight, bias, w, add_self_loops=loops, improved=improved))

    def test_unnormalized(self):
        g = _gen(0)
        ei = torch.tensor([[0, 1, 2, 2], [1, 2, 0, 0]])
        x, weight, w = _rand(g, 3, 4), _rand(g, 5, 4), torch.rand(4, generator=g)
        out = GF.gcn_conv(x, ei, weight, edge_weight=w, norm=GF.GCNNorm(normalize=False, add_self_loops=False))
        assert_close(out, ref_gcn(x, ei, weight, None, w, add_self_loops=False, normalize=False))
        out = GF.gcn_conv(x, ei, weight, edge_weight=w, norm=GF.GCNNorm(normalize=False, self_loop_weight=0.5))
        ref = ref_gcn(x, ei, weight, None, w, add_self_loops=False, normalize=False) + 0.5 * x.double() @ weight.double().t()
        assert_close(out, ref)

    def test_empty_graph_and_no_nodes(self):
        x, weight = torch.randn(3, 2), torch.randn(4, 2)
        out = GF.gcn_conv(x, torch.empty(2, 0, dtype=torch.long), weight)
        assert_close(out, x @ weight.t())  # only self-loops, degree 1
        out = GF.gcn_conv(torch.randn(0, 2), torch.empty(2, 0, dtype=torch.long), weight)
        assert out.shape == (0, 4)

    def test_gradcheck(self):
        g = _gen(1)
        ei = torch.tensor([[0, 1, 2, 3, 3], [1, 2, 3, 0, 1]])
        x = _rand(g, 4, 3, dtype=torch.float64).requires_grad_()
        weight = _rand(g, 2, 3, dtype=torch.float64).requires_grad_()
        bias = _rand(g, 2, dtype=torch.float64).requires_grad_()
        w = (torch.rand(5, generator=g, dtype=torch.float64) + 0.5).requires_grad_()
        assert torch.autograd.gradcheck(lambda *a: GF.gcn_conv(a[0], ei, a[1], a[2], a[3]), (x, weight, bias, w))


class TestAttention:
    @given(graph=graphs(max_nodes=7, max_edges=16), heads=st.integers(1, 3), f=st.integers(1, 3),
           concat=st.booleans(), weighted=st.booleans(), seed=st.integers(0, 2**16))
    def test_gat_matches_reference(self, graph, heads, f, concat, weighted, seed):
        n, ei = graph
        g = _gen(seed)
        x, weight = _rand(g, n, 3), _rand(g, heads * f, 3)
        a_s, a_d = _rand(g, 1, heads, f), _rand(g, 1, heads, f)
        bias = _rand(g, heads * f if concat else f)
        w = torch.rand(ei.size(1), generator=g) + 0.1 if weighted else None
        out, (ei_out, attn) = GF.gat_conv(x, ei, GF.AttentionWeights(weight, a_s, a_d, bias), w,
                                          options=GF.GATOptions(concat=concat, fill_value=1.0),
                                          return_attention_weights=True)
        ref, ref_attn = ref_attention_conv(x, ei, weight, a_s, a_d, bias, w, concat=concat)
        assert_close(out, ref)
        assert_same_attention(ei_out, attn, ref_attn)

    @given(graph=graphs(max_nodes=7, max_edges=16), heads=st.integers(1, 3), normalize=st.booleans(),
           loops=st.booleans(), weighted=st.booleans(), alpha=st.sampled_from([0.0, 0.3, 1.0]),
           improved=st.booleans(), seed=st.integers(0, 2**16))
    def test_attention_gcn_matches_reference(self, graph, heads, normalize, loops, weighted, alpha, improved, seed):
        n, ei = graph
        g = _gen(seed)
        f = 2
        x, x0, weight = _rand(g, n, 3), _rand(g, n, 3), _rand(g, heads * f, 3)
        a_s, a_d, bias = _rand(g, heads, f), _rand(g, heads, f), _rand(g, heads * f)
        w = torch.rand(ei.size(1), generator=g) + 0.1 if weighted else None
        options = GF.AttentionGCNOptions(alpha=alpha, normalize=normalize, add_self_loops=loops, improved=improved)
        out, (ei_out, attn) = GF.attention_gcn_conv(
            x, ei, GF.AttentionWeights(weight, a_s, a_d, bias), w, x0=x0, options=options, return_attention_weights=True
        )
        ref, ref_attn = ref_attention_conv(
            x, ei, weight, a_s, a_d, bias, w, x0=x0, alpha=alpha, normalize=normalize, add_self_loops=loops,
            improved=improved,
        )
        assert_close(out, ref)
        assert_same_attention(ei_out, attn, ref_attn)

    def test_isolated_node_without_loops_gets_bias_only(self):
        ei = torch.tensor([[0], [1]])
        x, weight, a = torch.randn(3, 2), torch.randn(4, 2), torch.randn(2, 2)
        bias = torch.randn(4)
        out = GF.gat_conv(x, ei, GF.AttentionWeights(weight, a, a, bias), options=GF.GATOptions(add_self_loops=False))
        assert_close(out[0], bias)
        assert_close(out[2], bias)

    def test_dropout_path(self):
        g = _gen(3)
        ei = torch.tensor([[0, 1, 2, 3], [1, 2, 3, 0]])
        x, weight, a_s, a_d = _rand(g, 4, 3), _rand(g, 4, 3), _rand(g, 2, 2), _rand(g, 2, 2)
        weights = GF.AttentionWeights(weight, a_s, a_d)
        eval_out = GF.gat_conv(x, ei, weights, options=GF.GATOptions(dropout=0.5), training=False)
        assert_close(eval_out, ref_attention_conv(x, ei, weight, a_s, a_d, None, None)[0])
        torch.manual_seed(0)
        train_out = GF.gat_conv(x, ei, weights, options=GF.GATOptions(dropout=0.5), training=True)
        assert train_out.shape == eval_out.shape and not torch.allclose(train_out, eval_out)
        # p -> 0 on the unfused path equals the fused one
        tiny = GF.gat_conv(x, ei, weights, options=GF.GATOptions(dropout=1e-12), training=True)
        assert_close(tiny, eval_out)

    def test_gradcheck(self):
        g = _gen(4)
        ei = torch.tensor([[0, 1, 2, 3, 3], [1, 2, 3, 0, 1]])
        d = torch.float64
        x, x0 = _rand(g, 4, 3, dtype=d).requires_grad_(), _rand(g, 4, 3, dtype=d).requires_grad_()
        weight = _rand(g, 4, 3, dtype=d).requires_grad_()
        a_s, a_d = _rand(g, 2, 2, dtype=d).requires_grad_(), _rand(g, 2, 2, dtype=d).requires_grad_()
        w = (torch.rand(5, generator=g, dtype=d) + 0.5).requires_grad_()

        def fn(x, x0, weight, a_s, a_d, w):
            weights = GF.AttentionWeights(weight, a_s, a_d)
            return GF.attention_gcn_conv(x, ei, weights, w, x0=x0, options=GF.AttentionGCNOptions(alpha=0.2))

        assert torch.autograd.gradcheck(fn, (x, x0, weight, a_s, a_d, w))


class TestGCN2:
    @given(graph=graphs(max_nodes=9), c=st.integers(1, 5), shared=st.booleans(), weighted=st.booleans(),
           alpha=st.floats(0, 1), beta=st.floats(0, 1), seed=st.integers(0, 2**16))
    def test_matches_reference(self, graph, c, shared, weighted, alpha, beta, seed):
        n, ei = graph
        g = _gen(seed)
        x, x0, w1, w2 = _rand(g, n, c), _rand(g, n, c), _rand(g, c, c), None if shared else _rand(g, c, c)
        w = torch.rand(ei.size(1), generator=g) + 0.1 if weighted else None
        out = GF.gcn2_conv(x, x0, ei, w1, w2, w, alpha=alpha, beta=beta)
        assert_close(out, ref_gcn2(x, x0, ei, w1, w2, w, alpha, beta))

    def test_gradcheck(self):
        g = _gen(5)
        d = torch.float64
        ei = torch.tensor([[0, 1, 2, 3], [1, 2, 3, 0]])
        args = [_rand(g, 4, 3, dtype=d), _rand(g, 4, 3, dtype=d), _rand(g, 3, 3, dtype=d), _rand(g, 3, 3, dtype=d)]
        args = [a.requires_grad_() for a in args]
        assert torch.autograd.gradcheck(
            lambda x, x0, w1, w2: GF.gcn2_conv(x, x0, ei, w1, w2, alpha=0.1, beta=0.6), tuple(args)
        )


class TestECC:
    @given(graph=graphs(max_nodes=8), f_in=st.integers(1, 4), f_out=st.integers(1, 4),
           aggr=st.sampled_from(["sum", "mean", "max"]), root=st.booleans(), seed=st.integers(0, 2**16))
    def test_matches_reference(self, graph, f_in, f_out, aggr, root, seed):
        n, ei = graph
        g = _gen(seed)
        x, mats = _rand(g, n, f_in), _rand(g, ei.size(1), f_in, f_out)
        rw, bias = (_rand(g, f_out, f_in) if root else None), _rand(g, f_out)
        out = GF.edge_conditioned_conv(x, ei, mats, rw, bias, aggr=aggr)
        assert_close(out, ref_ecc(x, ei, mats, rw, bias, aggr))

    def test_gradcheck(self):
        g = _gen(6)
        d = torch.float64
        ei = torch.tensor([[0, 1, 2, 3, 0], [1, 2, 3, 0, 1]])
        x, mats, rw = _rand(g, 4, 2, dtype=d), _rand(g, 5, 2, 3, dtype=d), _rand(g, 3, 2, dtype=d)
        args = tuple(a.requires_grad_() for a in (x, mats, rw))
        for aggr in ("sum", "mean"):
            assert torch.autograd.gradcheck(
                lambda x, m, r: GF.edge_conditioned_conv(x, ei, m, r, aggr=aggr), args
            )


# ----------------------------------------------------------------------------------------------
# layouts: shared graph, per-sample graphs, GraphStructure; symmetries
# ----------------------------------------------------------------------------------------------


def _convs(f_in, seed):
    """(name, fn(x, edge_index, edge_weight, **kw)) for every conv with fixed random parameters."""
    g = _gen(seed)
    gcn_w = _rand(g, 3, f_in)
    gat = GF.AttentionWeights(_rand(g, 2 * 3, f_in), _rand(g, 2, 3), _rand(g, 2, 3), _rand(g, 6))
    agcn = GF.AttentionGCNOptions(alpha=0.2)
    c2 = (_rand(g, f_in, f_in), _rand(g, f_in, f_in))
    return [
        ("gcn", lambda x, ei, w, **kw: GF.gcn_conv(x, ei, gcn_w, None, w, **kw)),
        ("gat", lambda x, ei, w, **kw: GF.gat_conv(x, ei, gat, w, **kw)),
        ("agcn", lambda x, ei, w, **kw: GF.attention_gcn_conv(x, ei, gat, w, x0=x, options=agcn, **kw)),
        ("gcn2", lambda x, ei, w, **kw: GF.gcn2_conv(x, x, ei, *c2, w, alpha=0.2, beta=0.5, **kw)),
    ]


@given(graph=graphs(min_nodes=1, max_nodes=8, loop=False), b=st.integers(1, 3), weighted=st.booleans(),
       seed=st.integers(0, 2**16))
def test_shared_graph_batch_equals_per_sample(graph, b, weighted, seed):
    n, ei = graph
    g = _gen(seed)
    x = _rand(g, b, n, 4)
    w = torch.rand(ei.size(1), generator=g) + 0.1 if weighted else None
    for name, fn in _convs(4, seed):
        out = fn(x, ei, w)
        ref = torch.stack([fn(x[i], ei, w) for i in range(b)])
        assert_close(out, ref, msg=name)
        assert out.is_contiguous(), name


@given(b=st.integers(1, 3), n=st.integers(1, 6), seed=st.integers(0, 2**16))
def test_per_sample_graphs_list_and_offset(b, n, seed):
    g = _gen(seed)
    x = _rand(g, b, n, 4)
    eis = [torch.randint(n, (2, int(torch.randint(0, 3 * n, (1,), generator=g))), generator=g) for _ in range(b)]
    ws = [torch.rand(e.size(1), generator=g) + 0.1 for e in eis]
    offset = torch.cat([e + i * n for i, e in enumerate(eis)], 1)
    batch = torch.arange(b).repeat_interleave(n)
    for name, fn in _convs(4, seed):
        ref = torch.stack([fn(x[i], eis[i], ws[i]) for i in range(b)])
        assert_close(fn(x, eis, ws), ref, msg=name + " list")
        assert_close(fn(x, offset, torch.cat(ws), batch=batch), ref, msg=name + " offset")
    mats = [_rand(g, e.size(1), 4, 2) for e in eis]
    ref = torch.stack([GF.edge_conditioned_conv(x[i], eis[i], mats[i]) for i in range(b)])
    assert_close(GF.edge_conditioned_conv(x, eis, torch.cat(mats)), ref)
    shared = GF.edge_conditioned_conv(x, eis[0], mats[0])
    assert_close(shared, torch.stack([GF.edge_conditioned_conv(x[i], eis[0], mats[0]) for i in range(b)]))


@given(graph=graphs(min_nodes=1, max_nodes=8, loop=False), weighted=st.booleans(), seed=st.integers(0, 2**16))
def test_node_permutation_equivariance_and_edge_order_invariance(graph, weighted, seed):
    n, ei = graph
    g = _gen(seed)
    x = _rand(g, n, 4)
    w = torch.rand(ei.size(1), generator=g) + 0.1 if weighted else None
    perm = torch.randperm(n, generator=g)
    inv = torch.empty_like(perm)
    inv[perm] = torch.arange(n)  # node v is called inv[v] after relabelling; x_p[inv[v]] = x[v]
    eperm = torch.randperm(ei.size(1), generator=g)
    mats = _rand(g, ei.size(1), 4, 3)
    convs = _convs(4, seed) + [("ecc", lambda x, ei, w, m=mats: GF.edge_conditioned_conv(x, ei, m, aggr="mean"))]
    for name, fn in convs:
        out = fn(x, ei, w)
        out_p = fn(x[perm], inv[ei], w)
        assert_close(out_p, out[perm], msg=name + " permutation")
        if name == "ecc":
            out_e = GF.edge_conditioned_conv(x, ei[:, eperm], mats[eperm], aggr="mean")
        else:
            out_e = fn(x, ei[:, eperm], None if w is None else w[eperm])
        assert_close(out_e, out, msg=name + " edge order")


def test_graph_structure_int32_and_noncontiguous():
    from graphvision import GraphStructure

    g = _gen(7)
    n = 6
    ei = torch.randint(n, (2, 14), generator=g)
    x = _rand(g, 4, n).t()  # non-contiguous (n, 4)
    assert not x.is_contiguous()
    w = torch.rand(14, generator=g)
    for name, fn in _convs(4, 7):
        ref = fn(x.contiguous(), ei, w)
        gs = GraphStructure(ei, n)
        assert_close(fn(x, gs, w), ref, msg=name + " structure")
        assert_close(fn(x, gs, w), ref, msg=name + " structure, second call (cached self-looped structure)")
        assert_close(fn(x, ei.to(torch.int32), w), ref, msg=name + " int32")
        assert_close(fn(x, ei.t().contiguous().t(), w), ref, msg=name + " strided edge_index")


# ----------------------------------------------------------------------------------------------
# errors
# ----------------------------------------------------------------------------------------------


class TestErrors:
    ei = torch.tensor([[0, 1], [1, 2]])

    def test_x(self):
        with pytest.raises(ValueError, match=r"Expected 'x' of shape \(N, F\) or \(B, N, F\) \(got \(3,\)\)"):
            GF.gcn_conv(torch.randn(3), self.ei, torch.randn(2, 1))
        with pytest.raises(TypeError, match="Expected 'x' to have a floating-point dtype"):
            GF.gcn_conv(torch.ones(3, 2, dtype=torch.long), self.ei, torch.randn(2, 2))
        with pytest.raises(TypeError, match="Expected 'x' to be a torch.Tensor"):
            GF.gcn_conv([[1.0]], self.ei, torch.randn(2, 2))

    def test_weights(self):
        x = torch.randn(3, 4)
        with pytest.raises(ValueError, match=r"Expected 'weight' of shape \(F_out, 4\) \(got \(2, 5\)\)"):
            GF.gcn_conv(x, self.ei, torch.randn(2, 5))
        with pytest.raises(TypeError, match="Expected 'weight' of the same dtype as 'x'"):
            GF.gcn_conv(x, self.ei, torch.randn(2, 4, dtype=torch.float64))
        with pytest.raises(ValueError, match=r"Expected 'bias' of shape \(2\)"):
            GF.gcn_conv(x, self.ei, torch.randn(2, 4), torch.randn(3))
        with pytest.raises(ValueError, match=r"Expected 'weight' of shape \(6, 4\)"):
            GF.gat_conv(x, self.ei, GF.AttentionWeights(torch.randn(5, 4), torch.randn(2, 3), torch.randn(2, 3)))
        with pytest.raises(ValueError, match=r"Expected 'att_dst' of shape \(2, 3\)"):
            GF.gat_conv(x, self.ei, GF.AttentionWeights(torch.randn(6, 4), torch.randn(2, 3), torch.randn(3, 2)))
        with pytest.raises(ValueError, match=r"Expected 'weight1' of shape \(4, 4\)"):
            GF.gcn2_conv(x, x, self.ei, torch.randn(4, 3))
        with pytest.raises(ValueError, match=r"Expected 'edge_kernels' of shape \(E, F_in=4, F_out\)"):
            GF.edge_conditioned_conv(x, self.ei, torch.randn(2, 3, 3))
        with pytest.raises(ValueError, match=r"one matrix per edge, E=2"):
            GF.edge_conditioned_conv(x, self.ei, torch.randn(3, 4, 3))
        with pytest.raises(ValueError, match="Unknown aggr 'min'"):
            GF.edge_conditioned_conv(x, self.ei, torch.randn(2, 4, 3), aggr="min")

    def test_graph(self):
        x = torch.randn(3, 4)
        w = torch.randn(2, 4)
        with pytest.raises(ValueError, match=r"Expected 'edge_index' of shape \(2, E\)( or a GraphStructure)? \(got \(3, 2\)\)"):
            GF.gcn_conv(x, torch.zeros(3, 2, dtype=torch.long), w)
        with pytest.raises(TypeError, match="Expected 'edge_index' of dtype torch.int64 or torch.int32"):
            GF.gcn_conv(x, self.ei.float(), w)
        with pytest.raises(IndexError, match=r"outside of \[0, 3\)"):
            GF.gcn_conv(x, torch.tensor([[0, 3], [1, 1]]), w)
        with pytest.raises(ValueError, match=r"Expected 'edge_weight' of shape \(E,\) with E=2 \(got \(3,\)\)"):
            GF.gcn_conv(x, self.ei, w, edge_weight=torch.ones(3))
        with pytest.raises(ValueError, match="list of per-sample 'edge_index' needs batched 'x'"):
            GF.gcn_conv(x, [self.ei], w)
        with pytest.raises(ValueError, match="Expected a list of B=2 'edge_index'"):
            GF.gcn_conv(torch.randn(2, 3, 4), [self.ei], w)
        with pytest.raises(ValueError, match=r"Expected 'batch' of shape \(B \* N,\) = \(6,\)"):
            GF.gcn_conv(torch.randn(2, 3, 4), self.ei, w, batch=torch.zeros(3, dtype=torch.long))
        with pytest.raises(ValueError, match="Expected 'x0' of the same shape as 'x'"):
            GF.gcn2_conv(x, x[:2], self.ei, torch.randn(4, 4))
        weights = GF.AttentionWeights(torch.randn(6, 4), torch.randn(2, 3), torch.randn(2, 3))
        with pytest.raises(ValueError, match=r"Expected 'alpha' in \[0, 1\]"):
            GF.attention_gcn_conv(x, self.ei, weights, options=GF.AttentionGCNOptions(alpha=2.0))
        with pytest.raises(ValueError, match=r"Expected 'dropout' in \[0, 1\)"):
            GF.gat_conv(x, self.ei, weights, options=GF.GATOptions(dropout=1.0))
        with pytest.raises(TypeError, match="Expected 'weights' to be an AttentionWeights"):
            GF.gat_conv(x, self.ei, tuple(weights))
        with pytest.raises(ValueError, match="attention_gcn_conv takes no edge projection"):
            GF.attention_gcn_conv(x, self.ei, weights._replace(weight_edge=torch.randn(6, 2)))
        with pytest.raises(TypeError, match=r"Expected 'edge_weight' of the same dtype as 'x' \(torch.float32\)"):
            GF.gcn_conv(x, self.ei, w, edge_weight=torch.ones(2, dtype=torch.float64))
        from graphvision import GraphStructure

        with pytest.raises(ValueError, match="GraphStructure 'edge_index' over 3 nodes to match 'x'"):
            GF.gcn_conv(x, GraphStructure(self.ei, 5), w)
        with pytest.raises(ValueError, match="'self_loop_weight' is only used with normalize=False"):
            GF.gcn_conv(x, self.ei, w, norm=GF.GCNNorm(self_loop_weight=1.0))


@pytest.mark.parametrize("n", [0, 3])
@pytest.mark.parametrize("batched", [False, True])
def test_zero_size_forward_backward(n, batched):
    ei = torch.empty(2, 0, dtype=torch.long)
    shape = (2, n, 4) if batched else (n, 4)
    mats = torch.randn(0, 4, 3)
    convs = _convs(4, 0) + [("ecc", lambda x, ei, w: GF.edge_conditioned_conv(x, ei, mats, torch.randn(3, 4)))]
    for name, fn in convs:
        x = torch.randn(*shape, requires_grad=True)
        out = fn(x, ei, None)
        assert out.shape[:-1] == shape[:-1], name
        out.sum().backward()
        assert x.grad.shape == x.shape and torch.isfinite(x.grad).all(), name


def test_deterministic():
    """The default backends reduce over a sorted CSR without atomics: bitwise-identical reruns."""
    g = _gen(9)
    ei = torch.randint(30, (2, 200), generator=g)
    w = torch.rand(200, generator=g)
    for name, fn in _convs(8, 9):
        outs, grads = [], []
        for _ in range(2):
            x = _rand(_gen(1), 3, 30, 8).requires_grad_()
            out = fn(x, ei, w)
            out.backward(torch.ones_like(out))
            outs.append(out.detach())
            grads.append(x.grad)
        assert torch.equal(outs[0], outs[1]) and torch.equal(grads[0], grads[1]), name
