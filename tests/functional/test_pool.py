"""Functional pooling against plain-loop references, permutation invariance, errors."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

import graphvision.functional as GF
from graphvision.testing import assert_close
from graphvision.testing.strategies import batched_graphs


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
        out, attn = GF.attention_pooling(x, gate, g.batch, g.num_graphs, return_attention=True)
        ref, ref_w = ref_attention_pool(x, gate, g.batch, g.num_graphs)
        assert_close(out, ref)
        assert_close(attn, ref_w)
        out1 = GF.attention_pooling(x, gate[:, 0], g.batch, g.num_graphs)
        assert_close(out1, ref[:, 0])

    @given(b=st.integers(1, 3), n=st.integers(1, 6), masked=st.booleans(), seed=st.integers(0, 2**16))
    def test_batched_matches_flat(self, b, n, masked, seed):
        gen = torch.Generator().manual_seed(seed)
        x, gate = torch.randn(b, n, 3, generator=gen), torch.randn(b, n, 2, generator=gen)
        mask = torch.rand(b, n, generator=gen) > 0.4 if masked else torch.ones(b, n, dtype=torch.bool)
        out, attn = GF.attention_pooling(x, gate, mask=mask if masked else None, return_attention=True)
        keep = mask.flatten()
        flat_batch = torch.arange(b).repeat_interleave(n)[keep]
        ref, ref_w = ref_attention_pool(x.reshape(-1, 3)[keep], gate.reshape(-1, 2)[keep], flat_batch, b)
        assert_close(out, ref)
        assert_close(attn.reshape(-1, 2)[keep], ref_w)
        assert torch.count_nonzero(attn.reshape(-1, 2)[~keep]) == 0

    def test_permutation_invariance(self):
        x, gate = torch.randn(2, 7, 3), torch.randn(2, 7, 2)
        perm = torch.randperm(7)
        out, attn = GF.attention_pooling(x, gate, return_attention=True)
        out_p, attn_p = GF.attention_pooling(x[:, perm], gate[:, perm], return_attention=True)
        assert_close(out_p, out)
        assert_close(attn_p, attn[:, perm])

    def test_gradcheck(self):
        x = torch.randn(5, 2, dtype=torch.float64, requires_grad=True)
        gate = torch.randn(5, 2, dtype=torch.float64, requires_grad=True)
        batch = torch.tensor([0, 0, 1, 1, 1])
        assert torch.autograd.gradcheck(lambda x, g: GF.attention_pooling(x, g, batch, 2), (x, gate))

    def test_errors(self):
        with pytest.raises(ValueError, match=r"Expected 'gate' of shape \(B, N\) or \(B, N, K\)"):
            GF.attention_pooling(torch.randn(2, 4, 3), torch.randn(2, 5))
        with pytest.raises(ValueError, match=r"Expected 'gate' of shape \(N,\) or \(N, K\)"):
            GF.attention_pooling(torch.randn(4, 3), torch.randn(4, 2, 1))


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
        out = GF.sag_pool(x, score, k=k, batch=g.batch, num_graphs=g.num_graphs, max_num_nodes=m)
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
            GF.sag_pool(torch.randn(5, 3), torch.randn(5), k=2, batch=torch.tensor([0, 0, 1, 1, 1]), num_graphs=2)
        with pytest.raises(ValueError, match="more than max_num_nodes=2"):
            GF.sag_pool(torch.randn(5, 3), torch.randn(5), k=2, batch=torch.tensor([0, 0, 1, 1, 1]), num_graphs=2,
                        max_num_nodes=2)
        with pytest.raises(ValueError, match="Unknown nonlinearity 'relu'"):
            GF.sag_pool(x, torch.randn(2, 5), k=2, nonlinearity="relu")


def test_zero_size():
    x = torch.randn(2, 0, 3, requires_grad=True)
    out, attn = GF.attention_pooling(x, torch.randn(2, 0, 2), return_attention=True)
    assert out.shape == (2, 2, 3) and attn.shape == (2, 0, 2) and torch.count_nonzero(out) == 0
    out.sum().backward()
    t = GF.sag_pool(x, torch.randn(2, 0), k=2)
    assert t.x.shape == (2, 2, 3) and not t.mask.any()
    empty = torch.empty(0, dtype=torch.long)
    for fn in REDUCES.values():
        assert torch.count_nonzero(fn(torch.randn(0, 3), empty, 2)) == 0
        assert fn(torch.randn(0, 3), empty, 2).shape == (2, 3)
