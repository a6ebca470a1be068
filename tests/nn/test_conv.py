"""Conv modules: module == functional, PyG agreement with copied weights, repr, init, cache, compile."""

from __future__ import annotations

import copy

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import graphvision.functional as GF
import graphvision.nn as gnn
from graphvision.testing import assert_close
from graphvision.testing.strategies import graphs


def _graph(n=6, e=14, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(n, (2, e), generator=g), torch.rand(e, generator=g) + 0.1


def _no_loops(ei):
    return ei[:, ei[0] != ei[1]]


# ----------------------------------------------------------------------------------------------
# module == functional
# ----------------------------------------------------------------------------------------------


def test_modules_match_functional():
    ei, w = _graph()
    x = torch.randn(6, 5)
    conv = gnn.GCNConv(5, 3)
    assert_close(conv(x, ei, w), GF.gcn_conv(x, ei, conv.lin.weight, conv.bias, w))
    conv = gnn.GATConv(5, 3, heads=2, concat=False, residual=True)
    weights = GF.AttentionWeights(
        conv.lin.weight, conv.att_src, conv.att_dst, conv.bias, residual_weight=conv.res.weight
    )
    ref = GF.gat_conv(x, ei, weights, w, options=GF.GATOptions(concat=False))
    assert_close(conv(x, ei, w), ref)
    conv = gnn.AttentionGCNConv(5, 3, heads=2, alpha=0.3)
    x0 = torch.randn(6, 5)
    weights = GF.AttentionWeights(conv.lin.weight, conv.att_src, conv.att_dst, conv.bias)
    ref = GF.attention_gcn_conv(x, ei, weights, w, x0=x0, options=GF.AttentionGCNOptions(alpha=0.3))
    assert_close(conv(x, ei, w, x0=x0), ref)
    conv = gnn.GCN2Conv(5, alpha=0.1, theta=0.5, layer=3, shared_weights=False)
    ref = GF.gcn2_conv(x, x0, ei, conv.weight1, conv.weight2, w, alpha=0.1, beta=conv.beta)
    assert_close(conv(x, x0, ei, w), ref)
    edge_nn = torch.nn.Linear(2, 15)
    conv = gnn.EdgeConditionedConv(5, 3, edge_nn, aggr="mean")
    ea = torch.randn(ei.size(1), 2)
    ref = GF.edge_conditioned_conv(x, ei, edge_nn(ea).view(-1, 5, 3), conv.lin.weight, conv.bias, aggr="mean")
    assert_close(conv(x, ei, ea), ref)


# ----------------------------------------------------------------------------------------------
# agreement with PyTorch Geometric (weights copied through state_dict)
# ----------------------------------------------------------------------------------------------


@settings(max_examples=15)
# Messy graphs: self-loops (duplicate loops too: as PyG, the last one's weight is kept), duplicate
# edges (summed, as in PyG), isolated nodes.
@given(graph=graphs(min_nodes=1, max_nodes=10), improved=st.booleans(), weighted=st.booleans(),
       batched=st.booleans(), seed=st.integers(0, 2**16))
def test_gcn_matches_pyg(graph, improved, weighted, batched, seed):
    pyg = pytest.importorskip("torch_geometric.nn")
    n, ei = graph
    torch.manual_seed(seed)
    ours, theirs = gnn.GCNConv(4, 3, improved=improved), pyg.GCNConv(4, 3, improved=improved)
    theirs.load_state_dict(ours.state_dict(), strict=True)
    w = torch.rand(ei.size(1)) + 0.1 if weighted else None
    x = torch.randn(2, n, 4) if batched else torch.randn(n, 4)
    # PyG 2.8 ignores improved=True when edge_weight is None (its add_remaining_self_loops drops the
    # fill value without edge attributes); explicit unit weights give the documented A + 2I.
    w_pyg = torch.ones(ei.size(1)) if w is None and improved else w
    ref = torch.stack([theirs(xi, ei, w_pyg) for xi in x]) if batched else theirs(x, ei, w_pyg)
    assert_close(ours(x, ei, w), ref)


def _same_edges_and_attention(ei_a, attn_a, ei_b, attn_b) -> None:
    """Two (edge_index, attention) pairs of one graph in possibly different edge orders."""
    m = int(max(ei_a.max() if ei_a.numel() else 0, ei_b.max() if ei_b.numel() else 0)) + 1
    key_a, key_b = ei_a[1] * m + ei_a[0], ei_b[1] * m + ei_b[0]
    pa, pb = torch.argsort(key_a, stable=True), torch.argsort(key_b, stable=True)
    assert torch.equal(ei_a[:, pa], ei_b[:, pb])
    # duplicates of one edge have equal attention, so the stable order within them does not matter
    assert_close(attn_a.index_select(-2 if attn_a.dim() == 3 else 0, pa), attn_b.index_select(-2 if attn_b.dim() == 3 else 0, pb))


# Messy graphs (self-loops, duplicate edges, isolated nodes): PyG removes the loops and adds one per node.
@settings(max_examples=15)
@given(graph=graphs(min_nodes=1, max_nodes=10), heads=st.integers(1, 3), concat=st.booleans(),
       residual=st.booleans(), batched=st.booleans(), seed=st.integers(0, 2**16))
def test_gat_matches_pyg(graph, heads, concat, residual, batched, seed):
    pyg = pytest.importorskip("torch_geometric.nn")
    n, ei = graph
    torch.manual_seed(seed)
    kw = {"heads": heads, "concat": concat, "residual": residual, "negative_slope": 0.1}
    ours, theirs = gnn.GATConv(4, 3, **kw), pyg.GATConv(4, 3, **kw)
    theirs.load_state_dict(ours.state_dict(), strict=True)
    x = torch.randn(2, n, 4) if batched else torch.randn(n, 4)
    out, (ei_out, attn) = ours(x, ei, return_attention_weights=True)
    if batched:
        refs = [theirs(xi, ei, return_attention_weights=True) for xi in x]
        assert_close(out, torch.stack([r[0] for r in refs]))
        for b in range(2):
            _same_edges_and_attention(ei_out, attn[b], refs[b][1][0], refs[b][1][1])
    else:
        ref, (ref_ei, ref_attn) = theirs(x, ei, return_attention_weights=True)
        assert_close(out, ref)
        _same_edges_and_attention(ei_out, attn, ref_ei, ref_attn)
    # the same through a GraphStructure (looped graph cached on it) and a second call
    from graphvision import GraphStructure

    gs = GraphStructure(ei, n)
    for _ in range(2):
        assert_close(ours(x, gs), out)


@settings(max_examples=15)
@given(graph=graphs(min_nodes=1, max_nodes=10), shared=st.booleans(), weighted=st.booleans(),
       alpha=st.floats(0, 1), seed=st.integers(0, 2**16))
def test_gcn2_matches_pyg(graph, shared, weighted, alpha, seed):
    pyg = pytest.importorskip("torch_geometric.nn")
    n, ei = graph
    torch.manual_seed(seed)
    kw = {"alpha": alpha, "theta": 0.5, "layer": 2, "shared_weights": shared}
    ours, theirs = gnn.GCN2Conv(4, **kw), pyg.GCN2Conv(4, **kw)
    theirs.load_state_dict(ours.state_dict(), strict=True)
    x, x0 = torch.randn(n, 4), torch.randn(n, 4)
    w = torch.rand(ei.size(1)) + 0.1 if weighted else None
    assert_close(ours(x, x0, ei, w), theirs(x.clone(), x0, ei, w))


@settings(max_examples=15)
@given(graph=graphs(min_nodes=1, max_nodes=10), aggr=st.sampled_from(["add", "mean", "max"]),
       root=st.booleans(), seed=st.integers(0, 2**16))
def test_nnconv_matches_pyg(graph, aggr, root, seed):
    pyg = pytest.importorskip("torch_geometric.nn")
    n, ei = graph
    torch.manual_seed(seed)
    edge_nn = torch.nn.Sequential(torch.nn.Linear(2, 8), torch.nn.ReLU(), torch.nn.Linear(8, 4 * 3))
    ours = gnn.EdgeConditionedConv(4, 3, edge_nn, aggr=aggr, root_weight=root)
    theirs = pyg.NNConv(4, 3, copy.deepcopy(edge_nn), aggr=aggr, root_weight=root)
    theirs.load_state_dict(ours.state_dict(), strict=True)
    x, ea = torch.randn(n, 4), torch.randn(ei.size(1), 2)
    assert_close(ours(x, ei, ea), theirs(x, ei, ea))


def test_state_dict_keys_match_pyg():
    pyg = pytest.importorskip("torch_geometric.nn")
    pairs = [
        (gnn.GCNConv(4, 3), pyg.GCNConv(4, 3)),
        (gnn.GATConv(4, 3, heads=2, residual=True), pyg.GATConv(4, 3, heads=2, residual=True)),
        (gnn.GCN2Conv(4, 0.1, shared_weights=False), pyg.GCN2Conv(4, 0.1, shared_weights=False)),
        (gnn.EdgeConditionedConv(4, 3, torch.nn.Linear(2, 12)), pyg.NNConv(4, 3, torch.nn.Linear(2, 12))),
    ]
    for ours, theirs in pairs:
        assert set(ours.state_dict()) == set(theirs.state_dict()), type(ours).__name__


# ----------------------------------------------------------------------------------------------
# repr, init, device/dtype, validation
# ----------------------------------------------------------------------------------------------


def test_repr():
    assert str(gnn.GCNConv(16, 32)) == "GCNConv(16, 32)"
    assert str(gnn.GCNConv(16, 32, improved=True, cached=True, bias=False)) == (
        "GCNConv(16, 32, improved=True, cached=True, bias=False)"
    )
    assert str(gnn.GATConv(16, 8, heads=4)) == "GATConv(16, 8, heads=4)"
    assert str(gnn.GATConv(16, 8, heads=4, concat=False, dropout=0.1, residual=True)) == (
        "GATConv(16, 8, heads=4, concat=False, dropout=0.1, residual=True)"
    )
    assert str(gnn.AttentionGCNConv(16, 8, heads=2, alpha=0.1)) == "AttentionGCNConv(16, 8, heads=2, alpha=0.1)"
    assert str(gnn.GCN2Conv(16, alpha=0.1)) == "GCN2Conv(16, alpha=0.1, beta=1.0)"
    conv = gnn.EdgeConditionedConv(4, 3, torch.nn.Linear(2, 12), aggr="mean")
    assert str(conv).startswith("EdgeConditionedConv(\n  4, 3, aggr='mean'\n  (nn): Linear(")


def test_reset_parameters_and_init():
    conv = gnn.AttentionGCNConv(8, 4, heads=2)
    before = {k: v.clone() for k, v in conv.state_dict().items()}
    conv.reset_parameters()
    for k, v in conv.state_dict().items():
        if k == "bias":
            assert torch.count_nonzero(v) == 0
        else:
            assert not torch.equal(v, before[k]), k
    edge_nn = torch.nn.Linear(2, 12)
    ecc = gnn.EdgeConditionedConv(4, 3, edge_nn)
    w = edge_nn.weight.clone()
    ecc.reset_parameters()
    assert not torch.equal(w, edge_nn.weight)


@pytest.mark.parametrize("dtype", [torch.float64, torch.bfloat16])
def test_device_dtype(dtype, device):
    ei, w = _graph()
    ei, w = ei.to(device), w.to(device, dtype)
    x = torch.randn(6, 4, device=device, dtype=dtype)
    mods = [
        (gnn.GCNConv(4, 3, device=device, dtype=dtype), (x, ei, w)),
        (gnn.GATConv(4, 3, heads=2, device=device, dtype=dtype), (x, ei, w)),
        (gnn.AttentionGCNConv(4, 3, heads=2, device=device, dtype=dtype), (x, ei, w)),
        (gnn.GCN2Conv(4, 0.1, device=device, dtype=dtype), (x, x, ei, w)),
        (gnn.EdgeConditionedConv(4, 3, torch.nn.Linear(2, 12), device=device, dtype=dtype),
         (x, ei, torch.randn(14, 2, device=device, dtype=dtype))),
    ]
    for m, args in mods:
        assert all(p.dtype == dtype and p.device.type == device.type for p in m.parameters())
        out = m(*args)
        assert out.dtype == dtype and out.device.type == device.type and torch.isfinite(out.float()).all()
    if dtype == torch.bfloat16:  # low precision stays close to a float64 run of the same module
        m = mods[1][0]
        ref = copy.deepcopy(m).double()(x.double(), ei, w.double())
        assert_close(m(x, ei, w), ref, rtol=5e-2, atol=5e-2)


def test_constructor_validation():
    with pytest.raises(ValueError, match="does not support adding self-loops"):
        gnn.GCNConv(4, 3, normalize=False, add_self_loops=True)
    with pytest.raises(ValueError, match="Expected 'in_channels' >= 1"):
        gnn.GCNConv(0, 3)
    with pytest.raises(TypeError, match="Expected 'heads' to be an int"):
        gnn.GATConv(4, 3, heads=1.5)
    with pytest.raises(ValueError, match=r"Expected 'dropout' in \[0, 1\)"):
        gnn.GATConv(4, 3, dropout=1.0)
    with pytest.raises(ValueError, match=r"Expected 'alpha' in \[0, 1\]"):
        gnn.AttentionGCNConv(4, 3, alpha=-0.1)
    with pytest.raises(ValueError, match="Pass both 'theta' and 'layer'"):
        gnn.GCN2Conv(4, 0.1, theta=0.5)
    with pytest.raises(ValueError, match="Unknown aggr 'median'"):
        gnn.EdgeConditionedConv(4, 3, torch.nn.Linear(2, 12), aggr="median")
    with pytest.raises(TypeError, match="callable edge network"):
        gnn.EdgeConditionedConv(4, 3, 5)


def test_forward_validation():
    ei, _ = _graph()
    with pytest.raises(ValueError, match=r"Expected 'weight' of shape \(F_out, 4\) \(got \(3, 5\)\)"):
        gnn.GCNConv(5, 3)(torch.randn(6, 4), ei)
    with pytest.raises(ValueError, match=r"edge network to return \(E, in_channels \* out_channels\)"):
        gnn.EdgeConditionedConv(4, 3, torch.nn.Linear(2, 11))(torch.randn(6, 4), ei, torch.randn(14, 2))


# ----------------------------------------------------------------------------------------------
# cache, batched layouts through the modules
# ----------------------------------------------------------------------------------------------


def test_cached():
    ei, w = _graph()
    x = torch.randn(3, 6, 4)
    for cls, args in [(gnn.GCNConv, (4, 3)), (gnn.AttentionGCNConv, (4, 3)), (gnn.GCN2Conv, (4, 0.2))]:
        torch.manual_seed(0)
        plain = cls(*args)
        cached = cls(*args, cached=True)
        cached.load_state_dict(plain.state_dict())
        call = (lambda m, xx: m(xx, xx, ei, w)) if cls is gnn.GCN2Conv else (lambda m, xx: m(xx, ei, w))
        for _ in range(2):
            assert_close(call(cached, x), call(plain, x))
        assert cached._cache.value is not None
        if cls is gnn.AttentionGCNConv:  # the self-looped graph is kept as a GraphStructure (CSR reused)
            from graphvision import GraphStructure

            assert isinstance(cached._cache.value[0], GraphStructure)
        cached.reset_parameters()
        assert cached._cache.value is None
    with pytest.raises(ValueError, match="cached=True needs one edge_index"):
        gnn.GCNConv(4, 3, cached=True)(x, [ei, ei, ei])


def test_attention_shapes_batched():
    ei, _ = _graph()
    conv = gnn.AttentionGCNConv(4, 5, heads=3)
    x = torch.randn(2, 6, 4)
    out, (ei_out, attn) = conv(x, ei, return_attention_weights=True)
    e = ei.size(1) - int((ei[0] == ei[1]).sum()) + 6  # existing loops removed, one per node added
    assert out.shape == (2, 6, 15) and ei_out.shape == (2, e) and attn.shape == (2, e, 3)
    # attention sums to one over the incoming edges of every node (self-loops make every node have one)
    sums = torch.zeros(2, 6, 3).index_add_(1, ei_out[1], attn)
    assert_close(sums, torch.ones(2, 6, 3))


# ----------------------------------------------------------------------------------------------
# torch.compile(fullgraph=True) == eager
# ----------------------------------------------------------------------------------------------


def test_compile_fullgraph_matches_eager():
    from graphvision import GraphStructure

    torch._dynamo.reset()
    ei, w = _graph()
    gs = GraphStructure(ei, 6).precompute()
    x = torch.randn(2, 6, 4)
    ea = torch.randn(14, 2)
    mods = [
        (gnn.GCNConv(4, 3), lambda m: m(x, ei, w)),
        (gnn.GATConv(4, 3, heads=2), lambda m: m(x, ei, w)),
        (gnn.AttentionGCNConv(4, 3, heads=2, alpha=0.2), lambda m: m(x, ei, w, x0=x)),
        (gnn.GCN2Conv(4, 0.2), lambda m: m(x[0], x[0], ei, w)),
        (gnn.EdgeConditionedConv(4, 3, torch.nn.Linear(2, 12)), lambda m: m(x, ei, ea)),
        (gnn.GATConv(4, 3, heads=2), lambda m: m(x, gs, w)),  # a GraphStructure built outside
        (gnn.GCNConv(4, 3), lambda m: m(x, gs, w)),
    ]
    for m, call in mods:
        eager = call(m)
        compiled = torch.compile(call, fullgraph=True, backend="aot_eager")
        assert_close(compiled(m), eager, msg=type(m).__name__)


def test_compile_fullgraph_backward_matches_eager():
    torch._dynamo.reset()
    ei, w = _graph()
    x = torch.randn(2, 6, 4)
    m = gnn.AttentionGCNConv(4, 3, heads=2, alpha=0.2)

    def step(x):
        return m(x, ei, w, x0=x).square().sum()

    xe = x.clone().requires_grad_()
    step(xe).backward()
    ref = [xe.grad] + [p.grad.clone() for p in m.parameters()]
    m.zero_grad()
    xc = x.clone().requires_grad_()
    torch.compile(step, fullgraph=True, backend="aot_eager")(xc).backward()
    for a, b in zip([xc.grad] + [p.grad for p in m.parameters()], ref):
        assert_close(a, b)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_low_precision_error_within_twice_pyg(dtype):
    """flash-attention's rule: a low-precision layer errs at most 2x PyG's same-dtype layer (+ atol)."""
    pyg = pytest.importorskip("torch_geometric.nn")
    torch.manual_seed(0)
    ei = torch.randint(50, (2, 400))
    ei = _no_loops(ei)
    x = torch.randn(50, 16)
    for ours, theirs in [(gnn.GCNConv(16, 8), pyg.GCNConv(16, 8)), (gnn.GATConv(16, 4, heads=2), pyg.GATConv(16, 4, heads=2))]:
        theirs.load_state_dict(ours.state_dict(), strict=True)
        ref = copy.deepcopy(ours).double()(x.double(), ei)
        err = (copy.deepcopy(ours).to(dtype)(x.to(dtype), ei).double() - ref).abs().max()
        err_pyg = (copy.deepcopy(theirs).to(dtype)(x.to(dtype), ei).double() - ref).abs().max()
        assert err <= 2 * err_pyg + 1e-2, (type(ours).__name__, float(err), float(err_pyg))
