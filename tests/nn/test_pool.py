"""Pooling modules: module == functional, shapes, repr, init, compile, validation, PyG TopKPooling."""

from __future__ import annotations

import pytest
import torch
from hypothesis import assume, given, settings
from hypothesis import strategies as st

import graphvision.functional as GF
import graphvision.nn as gnn
from graphvision.testing import assert_close
from graphvision.testing.strategies import batched_graphs


def _grid(h, w):
    """4-neighbour grid edges (both directions) over h*w nodes."""
    idx = torch.arange(h * w).view(h, w)
    right = torch.stack([idx[:, :-1].flatten(), idx[:, 1:].flatten()])
    down = torch.stack([idx[:-1].flatten(), idx[1:].flatten()])
    ei = torch.cat([right, down], 1)
    return torch.cat([ei, ei.flip(0)], 1)


class TestAttentionPooling:
    def test_matches_functional_and_heads(self):
        pool = gnn.AttentionPooling(8, hidden_channels=16, heads=3)
        x = torch.randn(2, 10, 8)
        out, attn = pool(x, return_attention_weights=True)
        assert out.shape == (2, 24) and attn.shape == (2, 10, 3)
        gate = pool.gate_nn(x)
        ref, ref_attn = GF.global_attention_pool(x, gate, return_attention_weights=True)
        assert_close(out, ref.flatten(-2))
        assert_close(attn, ref_attn)
        assert_close(attn.sum(1), torch.ones(2, 3))

    def test_flat_equals_batched_and_mean_heads(self):
        pool = gnn.AttentionPooling(4, hidden_channels=8, heads=2, concat=False)
        x = torch.randn(3, 5, 4)
        batch = torch.arange(3).repeat_interleave(5)
        out_b, attn_b = pool(x, return_attention_weights=True)
        out_f, attn_f = pool(x.reshape(15, 4), batch, 3, return_attention_weights=True)
        assert out_b.shape == (3, 4)
        assert_close(out_f, out_b)
        assert_close(attn_f, attn_b.reshape(15, 2))

    def test_ungated_custom_gate_and_feature_nn(self):
        pool = gnn.AttentionPooling(4, gated=False, hidden_channels=8)
        assert pool.gate_nn.U is None
        gate_nn = torch.nn.Linear(4, 2)
        feat = torch.nn.Linear(4, 6)
        pool = gnn.AttentionPooling(4, heads=2, gate_nn=gate_nn, nn=feat)
        x = torch.randn(7, 4)
        ref = GF.global_attention_pool(feat(x), gate_nn(x)).flatten(-2)
        assert_close(pool(x), ref)
        w = gate_nn.weight.clone()
        pool.reset_parameters()
        assert not torch.equal(w, gate_nn.weight)

    def test_permutation_invariance(self):
        pool = gnn.AttentionPooling(4, heads=2)
        x = torch.randn(2, 9, 4)
        perm = torch.randperm(9)
        assert_close(pool(x[:, perm]), pool(x))

    def test_repr_and_validation(self):
        assert str(gnn.AttentionPooling(16, heads=2)).startswith("AttentionPooling(\n  16, hidden_channels=128, heads=2")
        with pytest.raises(ValueError, match="Expected 'x' with in_channels=4"):
            gnn.AttentionPooling(4)(torch.randn(3, 5))
        with pytest.raises(ValueError, match=r"Expected 'gate_nn' to return \(3, 2\)"):
            gnn.AttentionPooling(4, heads=2, gate_nn=torch.nn.Linear(4, 3))(torch.randn(3, 4))
        with pytest.raises(TypeError, match="Expected 'gate_nn' to be a module"):
            gnn.AttentionPooling(4, gate_nn=lambda x: x)


class TestTopKPooling:
    def test_matches_functional(self):
        pool = gnn.TopKPooling(4, ratio=0.5)
        x = torch.randn(2, 6, 4)
        out = pool(x)
        ref = GF.topk_pool(x, pool.weight.view(-1), ratio=0.5)
        assert_close(out.x, ref.x)
        assert torch.equal(out.index, ref.index)
        assert out.x.shape == (2, 3, 4) and out.mask.all()

    def test_matches_pyg_on_equal_size_graphs(self):
        pyg = pytest.importorskip("torch_geometric.nn")
        torch.manual_seed(0)
        ours, theirs = gnn.TopKPooling(4, ratio=0.5), pyg.TopKPooling(4, ratio=0.5)
        ours.load_state_dict(theirs.state_dict(), strict=True)  # 'select.weight', as PyG 2.8
        b, n = 3, 8
        x = torch.randn(b, n, 4)
        ei = torch.cat([_grid(2, 4) + i * n for i in range(b)], 1)
        batch = torch.arange(b).repeat_interleave(n)
        px, _, _, pbatch, perm, pscore = theirs(x.reshape(b * n, 4), ei, batch=batch)
        out = ours(x)
        assert_close(out.x.reshape(-1, 4), px)
        assert torch.equal((out.index + torch.arange(b)[:, None] * n).flatten(), perm)
        assert_close(out.score.flatten(), pscore)

    def test_repr_validation(self):
        assert str(gnn.TopKPooling(16, ratio=0.5)) == "TopKPooling(16, ratio=0.5)"
        assert str(gnn.TopKPooling(16, k=4, nonlinearity="sigmoid")) == "TopKPooling(16, k=4, nonlinearity='sigmoid')"
        with pytest.raises(ValueError, match="Pass exactly one of 'k' and 'ratio'"):
            gnn.TopKPooling(4, k=2, ratio=0.5)
        with pytest.raises(ValueError, match="Unknown nonlinearity"):
            gnn.TopKPooling(4, k=2, nonlinearity="relu")


class TestSAGPooling:
    def test_matches_functional_shared_and_per_sample(self):
        pool = gnn.SAGPooling(4, k=3)
        ei = _grid(2, 3)
        x = torch.randn(2, 6, 4)
        out = pool(x, ei)
        score = pool.gnn(x, ei).squeeze(-1) * pool.select.weight.sign().view(())  # (1, 1) select.weight: its sign
        ref = GF.sag_pool(x, score, k=3)
        assert_close(out.x, ref.x)
        assert torch.equal(out.index, ref.index)
        per = pool(x, [ei, ei[:, :4]])
        for i, eii in enumerate([ei, ei[:, :4]]):
            single = pool(x[i : i + 1], eii)
            assert_close(per.x[i], single.x[0])

    def test_flat_graphs_of_different_sizes(self):
        pool = gnn.SAGPooling(4, ratio=0.5)
        ei = torch.cat([_grid(2, 2), _grid(2, 3) + 4], 1)
        x = torch.randn(10, 4)
        batch = torch.tensor([0] * 4 + [1] * 6)
        out = pool(x, ei, batch=batch, size=2, max_num_nodes=6)
        assert out.x.shape == (2, 3, 4)
        assert out.mask.tolist() == [[True, True, True], [True, True, True]]
        assert bool((out.index[0] < 4).all()) and bool((out.index[1] >= 4).all())

    def test_repr(self):
        assert str(gnn.SAGPooling(16, ratio=0.5)).startswith("SAGPooling(\n  16, ratio=0.5\n  (gnn): GCNConv(16, 1)")


def test_capabilities_declared():
    for name in gnn.__all__:
        cls = getattr(gnn, name)
        if name in ("GCNConv", "GATConv", "AttentionGCNConv", "GCN2Conv", "EdgeConditionedConv",
                    "AttentionPooling", "TopKPooling", "SAGPooling"):
            caps = cls._capabilities
            assert {"batched", "edge_weight", "fused_kernel", "compile_safe", "deterministic"} <= set(caps)


def test_compile_fullgraph_matches_eager():
    torch._dynamo.reset()
    x = torch.randn(2, 6, 4)
    ei = _grid(2, 3)
    mods = [
        (gnn.AttentionPooling(4, heads=2), lambda m: m(x, return_attention_weights=True)),
        (gnn.TopKPooling(4, k=3), lambda m: tuple(m(x))),
        (gnn.SAGPooling(4, k=3), lambda m: tuple(m(x, ei))),
        (None, lambda m: GF.global_max_pool(x.reshape(12, 4), torch.tensor([0] * 6 + [1] * 6), 2)),
    ]
    for m, call in mods:
        eager = call(m)
        compiled = torch.compile(call, fullgraph=True, backend="aot_eager")(m)
        eager = eager if isinstance(eager, tuple) else (eager,)
        compiled = compiled if isinstance(compiled, tuple) else (compiled,)
        for a, b in zip(compiled, eager):
            if a.is_floating_point():
                assert_close(a, b)
            else:
                assert torch.equal(a, b)


# --------------------------------------------------------------------------------------------
# PyG parity of the per-graph path: strict state_dict, forward and backward
# --------------------------------------------------------------------------------------------


def _sorted_edges(ei, ea, n):
    order = torch.argsort(ei[1] * max(n, 1) + ei[0], stable=True)
    return ei[:, order], None if ea is None else ea[order]


def _pyg_pair(kind, f, ratio, min_score, multiplier, nonlinearity):
    pyg = pytest.importorskip("torch_geometric.nn")
    if kind == "topk":
        theirs = pyg.TopKPooling(f, ratio, min_score, multiplier, nonlinearity)
        ours = gnn.TopKPooling(f, ratio, min_score, multiplier, nonlinearity)
    elif kind == "sag":  # PyG's default GNN is GraphConv
        theirs = pyg.SAGPooling(f, ratio, min_score=min_score, multiplier=multiplier, nonlinearity=nonlinearity)
        ours = gnn.SAGPooling(f, ratio, gnn.GraphConv, min_score, multiplier, nonlinearity)
    else:
        theirs = pyg.SAGPooling(f, ratio, pyg.GCNConv, min_score, multiplier, nonlinearity)
        ours = gnn.SAGPooling(f, ratio, gnn.GCNConv, min_score, multiplier, nonlinearity)
    ours.load_state_dict(theirs.state_dict(), strict=True)
    return ours, theirs


def _check_against_pyg(ours, theirs, x, ei, ea, batch):
    xs = [x.clone().requires_grad_(), x.clone().requires_grad_()]
    eas = [ea.clone().requires_grad_(), ea.clone().requires_grad_()]
    ref = theirs(xs[1], ei, eas[1], batch)
    out = ours(xs[0], ei, eas[0], batch)
    assert isinstance(out, GF.PooledGraph) and len(out) == 6
    if not torch.equal(out.perm, ref[4]):
        # Nodes whose scores tie in exact arithmetic (the two nodes of a symmetric 2-node graph
        # under GCN score identically) are ordered by rounding, which differs between the two
        # summation orders: either choice is right as long as the kept scores agree.
        assert_close(out.score, ref[5])
        assume(False)
    assert torch.equal(out.perm, ref[4])
    assert torch.equal(out.batch, ref[3])
    assert_close(out.x, ref[0])
    assert_close(out.score, ref[5])
    e0, a0 = _sorted_edges(out.edge_index, out.edge_attr, out.x.size(0))
    e1, a1 = _sorted_edges(ref[1], ref[2], out.x.size(0))
    assert torch.equal(e0, e1)
    assert_close(a0, a1)
    gen = torch.Generator().manual_seed(1)
    rx, rs, ra = (torch.randn(t.shape, generator=gen) for t in (ref[0], ref[5], ref[2]))
    for o, t in ((out, xs[0]), (ref, xs[1])):
        loss = (o[0] * rx).sum() + (o[5] * rs).sum() + (_sorted_edges(o[1], o[2], o[0].size(0))[1] * ra).sum()
        loss.backward()
    assert_close(xs[0].grad, xs[1].grad)
    assert_close(eas[0].grad, eas[1].grad)
    pg = dict(theirs.named_parameters())
    for name, p in ours.named_parameters():
        assert_close(p.grad, pg[name].grad, msg=name)


@given(g=batched_graphs(min_graphs=1, max_graphs=3, min_nodes=0, max_nodes=7),
       kind=st.sampled_from(["topk", "sag", "sag_gcn"]), ratio=st.sampled_from([0.3, 0.5, 0.75, 1, 2, 4]),
       min_score=st.sampled_from([None, None, 0.2]), multiplier=st.sampled_from([1.0, 0.5]),
       nonlinearity=st.sampled_from(["tanh", "sigmoid"]), shuffle=st.booleans(), seed=st.integers(0, 2**16))
@settings(max_examples=30, deadline=None)
def test_per_graph_path_matches_pyg(g, kind, ratio, min_score, multiplier, nonlinearity, shuffle, seed):
    assume(g.num_nodes > 0)
    torch.manual_seed(seed)
    ours, theirs = _pyg_pair(kind, 4, ratio, min_score, multiplier, nonlinearity)
    x = torch.randn(g.num_nodes, 4)
    ea = torch.randn(g.edge_index.size(1), 3)
    ei, batch = g.edge_index, g.batch
    if shuffle:  # nodes of the graphs interleaved: 'batch' unsorted
        q = torch.randperm(g.num_nodes)
        ei, batch = q[ei], torch.empty_like(batch).index_copy_(0, q, batch)
    _check_against_pyg(ours, theirs, x, ei, ea, batch)


def test_static_path_pooled_graph_matches_pyg_on_equal_size_graphs():
    """Equal-size graphs: PyG's per-graph ratio is the static k, its relabelling our b * k + slot."""
    pyg = pytest.importorskip("torch_geometric.nn")
    torch.manual_seed(0)
    theirs = pyg.SAGPooling(4, 0.5)
    ours = gnn.SAGPooling(4, 0.5, gnn.GraphConv)
    ours.load_state_dict(theirs.state_dict(), strict=True)
    b, n = 3, 8
    ei = _grid(2, 4)
    ea = torch.randn(ei.size(1))
    x = torch.randn(b, n, 4)
    flat_ei = torch.cat([ei + i * n for i in range(b)], 1)
    batch = torch.arange(b).repeat_interleave(n)
    px, pei, pea, pbatch, perm, pscore = theirs(x.reshape(b * n, 4), flat_ei, ea.repeat(b), batch)
    for out in (ours(x, ei, ea), ours(x, [ei] * b, [ea] * b), ours(x, flat_ei, ea.repeat(b), batch)):
        assert isinstance(out, GF.TopKOutput)
        assert_close(out.x.reshape(-1, 4), px)
        assert torch.equal((out.index + torch.arange(b)[:, None] * n).flatten(), perm)
        assert torch.equal(out.batch, pbatch)
        e0, a0 = _sorted_edges(out.edge_index, out.edge_attr, b * 4)
        e1, a1 = _sorted_edges(pei, pea, b * 4)
        assert torch.equal(e0, e1) and torch.equal(a0, a1)
        assert out.graph.edge_index is out.edge_index and out.graph.num_nodes == b * 4


class TestPyGInterface:
    def test_state_dict_keys_and_init(self):
        assert list(gnn.TopKPooling(8).state_dict()) == ["select.weight"]
        assert gnn.TopKPooling(8).select.weight.shape == (1, 8)
        assert set(gnn.SAGPooling(8).state_dict()) == {"gnn.lin.weight", "gnn.bias", "select.weight"}
        assert set(gnn.SAGPooling(8, GNN=gnn.GraphConv).state_dict()) == {
            "gnn.lin_rel.weight", "gnn.lin_rel.bias", "gnn.lin_root.weight", "select.weight"}
        w = gnn.TopKPooling(100).weight
        assert w is gnn.TopKPooling(100).select.weight or w.abs().max() <= 0.1
        pool = gnn.TopKPooling(8)
        old = pool.weight.detach().clone()
        pool.reset_parameters()
        assert not torch.equal(old, pool.weight)

    def test_paths_and_aliases(self):
        torch.manual_seed(0)
        pool = gnn.TopKPooling(4, k=3)
        same = gnn.TopKPooling(4, 3)
        same.load_state_dict(pool.state_dict())
        x = torch.randn(2, 5, 4)
        assert torch.equal(pool(x).x, same(x).x) and pool(x).edge_index is None
        flat = x.reshape(10, 4)
        batch = torch.arange(2).repeat_interleave(5)
        static = pool(flat, batch=batch, size=2, max_num_nodes=5)
        assert isinstance(static, GF.TopKOutput) and static.x.shape == (2, 3, 4)
        per_graph = pool(flat, batch=batch)
        assert isinstance(per_graph, GF.PooledGraph) and per_graph.x.shape == (6, 4)
        assert_close(per_graph.x, static.x.reshape(6, 4))
        # attn scores other features
        attn = torch.randn(2, 5, 4)
        assert torch.equal(pool(x, attn=attn).index, GF.topk_pool(attn, pool.weight.view(-1), k=3).index)

    def test_errors(self):
        pool = gnn.TopKPooling(4)
        with pytest.raises(ValueError, match=r"Expected 'edge_index' of shape \(2, E\) \(got \(5,\)\).*batch="):
            pool(torch.randn(5, 4), torch.tensor([0, 0, 1, 1, 1]))
        with pytest.raises(ValueError, match="'min_score' keeps a data-dependent number of nodes"):
            gnn.TopKPooling(4, min_score=0.1)(torch.randn(2, 5, 4))
        with pytest.raises(ValueError, match=r"Expected a float 'ratio' in \(0, 1\]"):
            gnn.TopKPooling(4, ratio=1.5)
        with pytest.raises(ValueError, match="Expected an int 'ratio'"):
            gnn.SAGPooling(4, ratio=0)
        with pytest.raises(ValueError, match="At least one of 'ratio' and 'min_score'"):
            gnn.TopKPooling(4, ratio=None)
        with pytest.raises(ValueError, match="Pass exactly one of 'k' and 'ratio'"):
            gnn.SAGPooling(4, 0.25, k=2)
        with pytest.raises(ValueError, match=r"Expected 'attn' of shape \(2, 5, 4\)"):
            pool(torch.randn(2, 5, 4), attn=torch.randn(2, 5, 3))
        with pytest.raises(ValueError, match="'edge_attr' was given without 'edge_index'"):
            pool(torch.randn(2, 5, 4), edge_attr=torch.randn(3))
        with pytest.raises(ValueError, match="do not pass 'batch'"):
            pool(torch.randn(2, 5, 4), batch=torch.zeros(10, dtype=torch.long))

    def test_repr(self):
        pool = gnn.TopKPooling(16, min_score=0.1, multiplier=2.0)
        assert str(pool) == "TopKPooling(16, min_score=0.1, multiplier=2.0)"
        assert str(gnn.TopKPooling(16, 3)) == "TopKPooling(16, ratio=3)"


def test_checkpoints_from_before_the_pyg_keys_load():
    torch.manual_seed(0)
    x, ei = torch.randn(2, 6, 4), _grid(2, 3)
    topk = gnn.TopKPooling(4, k=3)
    old = {"weight": topk.select.weight.detach().clone()}  # the former layout
    fresh = gnn.TopKPooling(4, k=3)
    fresh.load_state_dict(old, strict=True)
    assert torch.equal(fresh(x).x, topk(x).x)
    sag = gnn.SAGPooling(4, k=3)
    old = {k: v for k, v in sag.state_dict().items() if not k.startswith("select.")}
    fresh = gnn.SAGPooling(4, k=3)
    fresh.load_state_dict(old, strict=True)
    assert torch.equal(fresh.select.weight, torch.ones(1, 1))
    ref = GF.sag_pool(x, fresh.gnn(x, ei).squeeze(-1), k=3)  # the former score: tanh(gnn(x))
    assert_close(fresh(x, ei).x, ref.x)
