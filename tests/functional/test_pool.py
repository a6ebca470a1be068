"""Functional pooling against plain-loop references, permutation invariance, errors."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import graphvision.functional as GF
from graphvision.testing import assert_close
from graphvision.testing.strategies import batched_graphs, graphs


def ref_global(x, batch, num_graphs, reduce):
    out = torch.zeros(num_graphs, x.size(1), dtype=torch.float64)
    for b in range(num_graphs):
        rows = x[batch == b].double()
        if rows.numel():
            out[b] = {"sum": rows.sum(0), "mean": rows.mean(0), "max": rows.amax(0)}[reduce]
    return out


def ref_attention_pool(x, gate, batch, num_graphs):
    """gate (N, K) -> out (B, K, F), weights (N, K)."""
    k = gate.size(1)
    out = torch.zeros(num_graphs, k, x.size(1), dtype=torch.float64)
    weights = torch.zeros(x.size(0), k, dtype=torch.float64)
    for b in range(num_graphs):
        idx = (batch == b).nonzero().flatten()
        if idx.numel() == 0:
            continue
        a = torch.softmax(gate[idx].double(), 0)
        weights[idx] = a
        out[b] = a.t() @ x[idx].double()
    return out, weights


def ref_topk(x, score, k):
    """Batched (B, N, F), raw score (B, N): tanh gate, top-k by value, descending."""
    s = torch.tanh(score.double())
    xs, idxs, ss = [], [], []
    for b in range(x.size(0)):
        order = sorted(range(x.size(1)), key=lambda i: -float(s[b, i]))[:k]
        idxs.append(torch.tensor(order))
        ss.append(s[b, order])
        xs.append(x[b, order].double() * s[b, order, None])
    return torch.stack(xs), torch.stack(idxs), torch.stack(ss)


REDUCES = {"sum": GF.global_sum_pool, "mean": GF.global_mean_pool, "max": GF.global_max_pool}


class TestGlobalPool:
    def test_table(self):
        x = torch.tensor([[1.0], [2.0], [5.0], [-1.0]])
        batch = torch.tensor([0, 0, 2, 2])
        assert GF.global_sum_pool(x, batch, 3).flatten().tolist() == [3.0, 0.0, 4.0]
        assert GF.global_mean_pool(x, batch, 3).flatten().tolist() == [1.5, 0.0, 2.0]
        assert GF.global_max_pool(x, batch, 3).flatten().tolist() == [2.0, 0.0, 5.0]

    @given(g=batched_graphs(max_graphs=4, max_nodes=6), reduce=st.sampled_from(list(REDUCES)),
           f=st.integers(1, 4), seed=st.integers(0, 2**16))
    def test_flat_matches_reference(self, g, reduce, f, seed):
        x = torch.randn(g.num_nodes, f, generator=torch.Generator().manual_seed(seed))
        out = REDUCES[reduce](x, g.batch, g.num_graphs)
        assert_close(out, ref_global(x, g.batch, g.num_graphs, reduce))

    @given(b=st.integers(1, 3), n=st.integers(0, 6), masked=st.booleans(), reduce=st.sampled_from(list(REDUCES)),
           seed=st.integers(0, 2**16))
    def test_batched_matches_flat(self, b, n, masked, reduce, seed):
        gen = torch.Generator().manual_seed(seed)
        x = torch.randn(b, n, 3, generator=gen)
        mask = torch.rand(b, n, generator=gen) > 0.4 if masked else torch.ones(b, n, dtype=torch.bool)
        out = REDUCES[reduce](x, mask=mask if masked else None)
        flat_batch = torch.arange(b).repeat_interleave(n)[mask.flatten()]
        ref = ref_global(x.reshape(b * n, 3)[mask.flatten()], flat_batch, b, reduce)
        assert_close(out, ref)

    def test_one_graph_and_noncontiguous(self):
        x = torch.randn(3, 5).t()
        assert_close(GF.global_mean_pool(x), x.mean(0, keepdim=True))

    def test_gradients(self):
        x = torch.randn(5, 2, dtype=torch.float64, requires_grad=True)
        batch = torch.tensor([0, 0, 1, 1, 1])
        for fn in REDUCES.values():
            assert torch.autograd.gradcheck(lambda x: fn(x, batch, 2), (x,))

    def test_errors(self):
        x = torch.randn(4, 2)
        with pytest.raises(ValueError, match=r"Expected 'batch' of shape \(N,\) = \(4,\) \(got \(3,\)\)"):
            GF.global_sum_pool(x, torch.zeros(3, dtype=torch.long), 1)
        with pytest.raises(IndexError, match=r"outside of \[0, 1\)"):
            GF.global_sum_pool(x, torch.tensor([0, 0, 1, 1]), 1)
        with pytest.raises(ValueError, match="do not pass 'batch'"):
            GF.global_sum_pool(torch.randn(2, 4, 2), torch.zeros(4, dtype=torch.long), 1)
        with pytest.raises(ValueError, match=r"Expected 'mask' of shape \(B, N\) = \(2, 4\)"):
            GF.global_max_pool(torch.randn(2, 4, 2), mask=torch.ones(2, 3, dtype=torch.bool))
        with pytest.raises(TypeError, match="Expected 'mask' of dtype torch.bool"):
            GF.global_max_pool(torch.randn(2, 4, 2), mask=torch.ones(2, 4))
        with pytest.raises(ValueError, match=r"Expected 'x' of shape \(N, F\) or \(B, N, F\)"):
            GF.global_mean_pool(torch.randn(4))
        with pytest.raises(TypeError, match="floating-point"):
            GF.global_mean_pool(torch.ones(4, 2, dtype=torch.long))


class TestAttentionPooling:
    @given(g=batched_graphs(max_graphs=4, max_nodes=6), k=st.integers(1, 3), seed=st.integers(0, 2**16))
    def test_flat_matches_reference(self, g, k, seed):
        gen = torch.Generator().manual_seed(seed)
        x, gate = torch.randn(g.num_nodes, 3, generator=gen), torch.randn(g.num_nodes, k, generator=gen)
        out, attn = GF.global_attention_pool(x, gate, g.batch, g.num_graphs, return_attention_weights=True)
        ref, ref_w = ref_attention_pool(x, gate, g.batch, g.num_graphs)
        assert_close(out, ref)
        assert_close(attn, ref_w)
        out1 = GF.global_attention_pool(x, gate[:, 0], g.batch, g.num_graphs)
        assert_close(out1, ref[:, 0])

    @given(b=st.integers(1, 3), n=st.integers(1, 6), masked=st.booleans(), seed=st.integers(0, 2**16))
    def test_batched_matches_flat(self, b, n, masked, seed):
        gen = torch.Generator().manual_seed(seed)
        x, gate = torch.randn(b, n, 3, generator=gen), torch.randn(b, n, 2, generator=gen)
        mask = torch.rand(b, n, generator=gen) > 0.4 if masked else torch.ones(b, n, dtype=torch.bool)
        out, attn = GF.global_attention_pool(x, gate, mask=mask if masked else None, return_attention_weights=True)
        keep = mask.flatten()
        flat_batch = torch.arange(b).repeat_interleave(n)[keep]
        ref, ref_w = ref_attention_pool(x.reshape(-1, 3)[keep], gate.reshape(-1, 2)[keep], flat_batch, b)
        assert_close(out, ref)
        assert_close(attn.reshape(-1, 2)[keep], ref_w)
        assert torch.count_nonzero(attn.reshape(-1, 2)[~keep]) == 0

    def test_permutation_invariance(self):
        x, gate = torch.randn(2, 7, 3), torch.randn(2, 7, 2)
        perm = torch.randperm(7)
        out, attn = GF.global_attention_pool(x, gate, return_attention_weights=True)
        out_p, attn_p = GF.global_attention_pool(x[:, perm], gate[:, perm], return_attention_weights=True)
        assert_close(out_p, out)
        assert_close(attn_p, attn[:, perm])

    def test_gradcheck(self):
        x = torch.randn(5, 2, dtype=torch.float64, requires_grad=True)
        gate = torch.randn(5, 2, dtype=torch.float64, requires_grad=True)
        batch = torch.tensor([0, 0, 1, 1, 1])
        assert torch.autograd.gradcheck(lambda x, g: GF.global_attention_pool(x, g, batch, 2), (x, gate))

    def test_errors(self):
        with pytest.raises(ValueError, match=r"Expected 'gate' of shape \(B, N\) or \(B, N, K\)"):
            GF.global_attention_pool(torch.randn(2, 4, 3), torch.randn(2, 5))
        with pytest.raises(ValueError, match=r"Expected 'gate' of shape \(N,\) or \(N, K\)"):
            GF.global_attention_pool(torch.randn(4, 3), torch.randn(4, 2, 1))


class TestTopK:
    @given(b=st.integers(1, 3), n=st.integers(1, 8), k=st.integers(1, 10), seed=st.integers(0, 2**16))
    def test_batched_matches_reference(self, b, n, k, seed):
        gen = torch.Generator().manual_seed(seed)
        x, score = torch.randn(b, n, 3, generator=gen), torch.randn(b, n, generator=gen)
        out = GF.sag_pool(x, score, k=k)
        kk = min(k, n)
        ref_x, ref_i, ref_s = ref_topk(x, score, kk)
        assert out.x.shape == (b, k, 3) and out.index.shape == out.mask.shape == out.score.shape == (b, k)
        assert out.mask[:, :kk].all() and not out.mask[:, kk:].any()
        assert_close(out.x[:, :kk], ref_x)
        assert torch.equal(out.index[:, :kk], ref_i)
        assert_close(out.score[:, :kk], ref_s)
        assert torch.count_nonzero(out.x[:, kk:]) == 0

    def test_topk_score_is_normalised_projection(self):
        x, w = torch.randn(2, 6, 4), torch.randn(4)
        out = GF.topk_pool(x, w, ratio=0.5)
        ref = GF.sag_pool(x, (x * w).sum(-1) / w.norm(), k=3)
        for a, b in zip(out, ref):
            if a.is_floating_point():
                assert_close(a, b)
            else:
                assert torch.equal(a, b)

    @given(g=batched_graphs(min_graphs=1, max_graphs=3, min_nodes=1, max_nodes=6), k=st.integers(1, 4),
           seed=st.integers(0, 2**16))
    def test_flat_equals_padded_batched(self, g, k, seed):
        gen = torch.Generator().manual_seed(seed)
        x, score = torch.randn(g.num_nodes, 3, generator=gen), torch.randn(g.num_nodes, generator=gen)
        m = 6
        out = GF.sag_pool(x, score, k=k, batch=g.batch, size=g.num_graphs, max_num_nodes=m)
        dense_x = torch.zeros(g.num_graphs, m, 3)
        dense_s = torch.zeros(g.num_graphs, m)
        mask = torch.zeros(g.num_graphs, m, dtype=torch.bool)
        for b in range(g.num_graphs):
            lo, hi = int(g.ptr[b]), int(g.ptr[b + 1])
            dense_x[b, : hi - lo], dense_s[b, : hi - lo], mask[b, : hi - lo] = x[lo:hi], score[lo:hi], True
        ref = GF.sag_pool(dense_x, dense_s, k=k, mask=mask)
        assert_close(out.x, ref.x)
        assert torch.equal(out.mask, ref.mask)
        assert_close(out.score, ref.score)
        # flat indices point at the global node rows
        glob = torch.where(ref.mask, ref.index + g.ptr[:-1, None], torch.zeros_like(ref.index))
        assert torch.equal(out.index, glob)

    def test_permutation_invariance(self):
        x, score = torch.randn(2, 9, 3), torch.randn(2, 9)
        perm = torch.randperm(9)
        a, b = GF.sag_pool(x, score, k=4), GF.sag_pool(x[:, perm], score[:, perm], k=4)
        assert_close(a.x, b.x)
        assert torch.equal(perm[b.index], a.index)

    def test_gradients_reach_score(self):
        x = torch.randn(2, 5, 3, dtype=torch.float64, requires_grad=True)
        score = torch.randn(2, 5, dtype=torch.float64, requires_grad=True)
        assert torch.autograd.gradcheck(lambda x, s: GF.sag_pool(x, s, k=3).x, (x, score))

    def test_errors(self):
        x = torch.randn(2, 5, 3)
        with pytest.raises(ValueError, match="Pass exactly one of 'k' and 'ratio'"):
            GF.sag_pool(x, torch.randn(2, 5))
        with pytest.raises(ValueError, match=r"Expected 'ratio' in \(0, 1\]"):
            GF.sag_pool(x, torch.randn(2, 5), ratio=1.5)
        with pytest.raises(ValueError, match=r"Expected 'score' of shape \(2, 5\)"):
            GF.sag_pool(x, torch.randn(2, 4), k=2)
        with pytest.raises(ValueError, match=r"Expected 'weight' of shape \(F,\) = \(3,\)"):
            GF.topk_pool(x, torch.randn(4), k=2)
        with pytest.raises(ValueError, match="needs 'max_num_nodes'"):
            GF.sag_pool(torch.randn(5, 3), torch.randn(5), k=2, batch=torch.tensor([0, 0, 1, 1, 1]), size=2)
        with pytest.raises(ValueError, match="more than max_num_nodes=2"):
            GF.sag_pool(torch.randn(5, 3), torch.randn(5), k=2, batch=torch.tensor([0, 0, 1, 1, 1]), size=2,
                        max_num_nodes=2)
        with pytest.raises(ValueError, match="Unknown nonlinearity 'relu'"):
            GF.sag_pool(x, torch.randn(2, 5), k=2, nonlinearity="relu")


def test_zero_size():
    x = torch.randn(2, 0, 3, requires_grad=True)
    out, attn = GF.global_attention_pool(x, torch.randn(2, 0, 2), return_attention_weights=True)
    assert out.shape == (2, 2, 3) and attn.shape == (2, 0, 2) and torch.count_nonzero(out) == 0
    out.sum().backward()
    t = GF.sag_pool(x, torch.randn(2, 0), k=2)
    assert t.x.shape == (2, 2, 3) and not t.mask.any()
    empty = torch.empty(0, dtype=torch.long)
    for fn in REDUCES.values():
        assert torch.count_nonzero(fn(torch.randn(0, 3), empty, 2)) == 0
        assert fn(torch.randn(0, 3), empty, 2).shape == (2, 3)


# --------------------------------------------------------------------------------------------
# pooled graphs: plain-loop references
# --------------------------------------------------------------------------------------------


def ref_pooled_edges(edge_index, edge_attr, old_to_new):
    """Edges whose both ends are kept, relabelled, sorted by (target, source, input position)."""
    rows = []
    for e in range(edge_index.size(1)):
        s, d = int(edge_index[0, e]), int(edge_index[1, e])
        if s in old_to_new and d in old_to_new:
            rows.append((old_to_new[d], old_to_new[s], e))
    rows.sort()
    ei = torch.tensor([[r[1] for r in rows], [r[0] for r in rows]], dtype=torch.long).view(2, -1)
    ea = None if edge_attr is None else edge_attr[[r[2] for r in rows]]
    return ei, ea


def canonical(edge_index, edge_attr, num_nodes):
    """Stable sort by (target, source): duplicates keep their order."""
    assert bool((edge_index[1].diff() >= 0).all()), "pooled edges must come sorted by target"
    order = torch.argsort(edge_index[1] * max(num_nodes, 1) + edge_index[0], stable=True)
    return edge_index[:, order], None if edge_attr is None else edge_attr[order]


def check_pooled(out_ei, out_ea, graph, num_nodes, ref_ei, ref_ea):
    assert graph is not None and graph.num_nodes == num_nodes and graph.edge_index is out_ei
    ei, ea = canonical(out_ei, out_ea, num_nodes)
    assert torch.equal(ei, ref_ei)
    if ref_ea is not None:
        assert_close(ea, ref_ea)


class TestPooledGraph:
    @given(b=st.integers(1, 3), graph=graphs(min_nodes=1, max_nodes=6), k=st.integers(1, 7),
           per_sample=st.booleans(), seed=st.integers(0, 2**16))
    @settings(max_examples=30, deadline=None)
    def test_static_batched_matches_reference(self, b, graph, k, per_sample, seed):
        n, ei = graph
        gen = torch.Generator().manual_seed(seed)
        x, score = torch.randn(b, n, 3, generator=gen), torch.randn(b, n, generator=gen)
        if per_sample:  # sample i keeps the edges of a different subset
            eis = [ei[:, torch.rand(ei.size(1), generator=gen) < 0.7] for _ in range(b)]
            eas = [torch.randn(e.size(1), 2, generator=gen) for e in eis]
            out = GF.sag_pool(x, score, k=k, edge_index=eis, edge_attr=eas)
            flat_ei = torch.cat([e + i * n for i, e in enumerate(eis)], 1).view(2, -1)
            flat_ea = torch.cat(eas)
        else:
            ea = torch.randn(ei.size(1), generator=gen)
            out = GF.sag_pool(x, score, k=k, edge_index=ei, edge_attr=ea)
            flat_ei = torch.cat([ei + i * n for i in range(b)], 1)
            flat_ea = ea.repeat(b)
        old_to_new = {i * n + int(out.index[i, s]): i * k + s for i in range(b) for s in range(k) if out.mask[i, s]}
        ref_ei, ref_ea = ref_pooled_edges(flat_ei, flat_ea, old_to_new)
        check_pooled(out.edge_index, out.edge_attr, out.graph, b * k, ref_ei, ref_ea)
        assert torch.equal(out.batch, torch.arange(b).repeat_interleave(k))
        x_, index, mask, score_ = out  # still unpacks as the 4-tuple
        assert x_.shape == (b, k, 3)

    @given(g=batched_graphs(min_graphs=1, max_graphs=3, min_nodes=0, max_nodes=6), k=st.integers(1, 4),
           seed=st.integers(0, 2**16))
    @settings(max_examples=20, deadline=None)
    def test_static_flat_matches_reference(self, g, k, seed):
        gen = torch.Generator().manual_seed(seed)
        x, score = torch.randn(g.num_nodes, 3, generator=gen), torch.randn(g.num_nodes, generator=gen)
        ea = torch.randn(g.edge_index.size(1), 4, generator=gen)
        out = GF.sag_pool(x, score, k=k, batch=g.batch, size=g.num_graphs, max_num_nodes=6,
                          edge_index=g.edge_index, edge_attr=ea)
        b = g.num_graphs
        old_to_new = {int(out.index[i, s]): i * k + s for i in range(b) for s in range(k) if out.mask[i, s]}
        ref_ei, ref_ea = ref_pooled_edges(g.edge_index, ea, old_to_new)
        check_pooled(out.edge_index, out.edge_attr, out.graph, b * k, ref_ei, ref_ea)

    @given(g=batched_graphs(min_graphs=1, max_graphs=3, min_nodes=0, max_nodes=7),
           ratio=st.sampled_from([0.2, 0.5, 0.8, 1.0, 1, 2, 5]), min_score=st.sampled_from([None, None, 0.1, 0.4]),
           seed=st.integers(0, 2**16))
    @settings(max_examples=30, deadline=None)
    def test_per_graph_matches_reference(self, g, ratio, min_score, seed):
        gen = torch.Generator().manual_seed(seed)
        x, s = torch.randn(g.num_nodes, 3, generator=gen), torch.randn(g.num_nodes, generator=gen)
        ea = torch.randn(g.edge_index.size(1), generator=gen)
        out = GF.per_graph_topk_pool(x, s, g.edge_index, ea, g.batch, ratio=ratio, min_score=min_score,
                                     size=g.num_graphs, multiplier=2.0)
        perm, y = [], torch.zeros(g.num_nodes)
        for b in range(g.num_graphs):
            lo, hi = int(g.ptr[b]), int(g.ptr[b + 1])
            if hi == lo:
                continue
            if min_score is None:
                y[lo:hi] = torch.tanh(s[lo:hi])
                cnt = ratio if isinstance(ratio, int) else math.ceil(ratio * (hi - lo) - 1e-6)
                perm += (lo + torch.argsort(y[lo:hi], descending=True, stable=True)[:cnt]).tolist()
            else:
                y[lo:hi] = torch.softmax(s[lo:hi], 0)
                thr = min(min_score, float(y[lo:hi].max()) - 1e-7)
                perm += [i for i in range(lo, hi) if y[i] > thr]
        assert out.perm.tolist() == perm
        assert_close(out.score, y[perm])
        assert_close(out.x, 2.0 * x[perm] * y[perm, None])
        assert torch.equal(out.batch, g.batch[perm])
        ref_ei, ref_ea = ref_pooled_edges(g.edge_index, ea, {p: i for i, p in enumerate(perm)})
        check_pooled(out.edge_index, out.edge_attr, out.graph, len(perm), ref_ei, ref_ea)

    def test_gradients_reach_x_score_and_edge_attr(self):
        x = torch.randn(6, 3, dtype=torch.float64, requires_grad=True)
        s = torch.randn(6, dtype=torch.float64, requires_grad=True)
        ei = torch.tensor([[0, 1, 2, 3, 4, 5, 0], [1, 2, 3, 4, 5, 0, 0]])
        ea = torch.randn(7, 2, dtype=torch.float64, requires_grad=True)

        def f(x, s, ea):
            out = GF.per_graph_topk_pool(x, s, ei, ea, ratio=0.5)
            return out.x, out.score, out.edge_attr

        assert torch.autograd.gradcheck(f, (x, s, ea))
        assert torch.autograd.gradcheck(lambda x, s, ea: GF.sag_pool(x[None], s[None], k=4, edge_index=ei,
                                                                     edge_attr=ea).edge_attr, (x, s, ea))

    def test_empty_and_errors(self):
        out = GF.per_graph_topk_pool(torch.randn(0, 3), torch.randn(0), torch.zeros(2, 0, dtype=torch.long))
        assert out.x.shape == (0, 3) and out.edge_index.shape == (2, 0) and out.graph.num_nodes == 0
        out = GF.sag_pool(torch.randn(2, 0, 3), torch.randn(2, 0), k=2, edge_index=torch.zeros(2, 0, dtype=torch.long))
        assert out.edge_index.shape == (2, 0) and out.batch.tolist() == [0, 0, 1, 1]
        ei = torch.tensor([[0, 1], [1, 2]])
        with pytest.raises(ValueError, match=r"Expected 'edge_attr' of shape \(E, \*\) with E=2"):
            GF.sag_pool(torch.randn(1, 3, 2), torch.randn(1, 3), k=2, edge_index=ei, edge_attr=torch.randn(3))
        with pytest.raises(ValueError, match="'edge_attr' was given without 'edge_index'"):
            GF.per_graph_topk_pool(torch.randn(3, 2), torch.randn(3), edge_attr=torch.randn(2))
        with pytest.raises(ValueError, match=r"Expected a float 'ratio' in \(0, 1\]"):
            GF.per_graph_topk_pool(torch.randn(3, 2), torch.randn(3), ratio=1.5)
        with pytest.raises(ValueError, match="At least one of 'ratio' and 'min_score'"):
            GF.per_graph_topk_pool(torch.randn(3, 2), torch.randn(3), ratio=None)
        with pytest.raises(ValueError, match=r"Expected 'score' of shape \(N,\) = \(3,\)"):
            GF.per_graph_topk_pool(torch.randn(3, 2), torch.randn(4))
        with pytest.raises(IndexError, match="edge_index"):
            GF.per_graph_topk_pool(torch.randn(3, 2), torch.randn(3), torch.tensor([[0], [5]]))
