"""Pooling modules: module == functional, shapes, repr, init, compile, validation, PyG TopKPooling."""

from __future__ import annotations

import pytest
import torch

import graphvision.functional as GF
import graphvision.nn as gnn
from graphvision.testing import assert_close


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
        out, attn = pool(x, return_attention=True)
        assert out.shape == (2, 24) and attn.shape == (2, 10, 3)
        gate = pool.gate_nn(x)
        ref, ref_attn = GF.attention_pooling(x, gate, return_attention=True)
        assert_close(out, ref.flatten(-2))
        assert_close(attn, ref_attn)
        assert_close(attn.sum(1), torch.ones(2, 3))

    def test_flat_equals_batched_and_mean_heads(self):
        pool = gnn.AttentionPooling(4, hidden_channels=8, heads=2, concat=False)
        x = torch.randn(3, 5, 4)
        batch = torch.arange(3).repeat_interleave(5)
        out_b, attn_b = pool(x, return_attention=True)
        out_f, attn_f = pool(x.reshape(15, 4), batch, 3, return_attention=True)
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
        ref = GF.attention_pooling(feat(x), gate_nn(x)).flatten(-2)
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
        out = pool(x, ei, batch=batch, num_graphs=2, max_num_nodes=6)
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
        (gnn.AttentionPooling(4, heads=2), lambda m: m(x, return_attention=True)),
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
