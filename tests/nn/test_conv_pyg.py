"""PyG-twin conv modules (GATv2, SAGE, GraphConv, GIN, GINE; GATConv edge_dim): PyG parity with
state dicts loaded strict=True on messy graphs, forward and backward; keys, repr, lazy init, errors."""

from __future__ import annotations

import copy

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import graphvision.nn as gnn
from graphvision import GraphStructure
from graphvision.testing import assert_close
from graphvision.testing.strategies import graphs

pyg = pytest.importorskip("torch_geometric.nn")

# Messy graphs: self-loops (duplicated too), duplicate edges, isolated nodes, the empty edge list.
MESSY = graphs(min_nodes=1, max_nodes=9, max_edges=30)


def _load(ours: torch.nn.Module, theirs: torch.nn.Module) -> None:
    """PyG's state dict (its random init) into ours, strict; also checks the key sets are equal."""
    assert set(ours.state_dict()) == set(theirs.state_dict())
    ours.load_state_dict(theirs.state_dict(), strict=True)


def _check_fwd_bwd(ours, theirs, make_inputs, ours_call, theirs_call) -> None:
    """Outputs, input gradients and parameter gradients equal to 1e-5.

    Run in float64 (copies of both modules): the float32 sums of the parameter gradients over
    every node and edge differ from PyG's by rounding alone (cancellation up to ~3e-5), which would
    hide nothing but make the 1e-5 bound flaky. The float32 forward is compared too.
    """
    x32 = make_inputs()
    with torch.no_grad():
        assert_close(ours_call(ours, *x32), theirs_call(theirs, *x32), atol=1e-5, rtol=1e-5)
    ours, theirs = copy.deepcopy(ours).double(), copy.deepcopy(theirs).double()
    inputs_a = [t.detach().double().requires_grad_(t.requires_grad) if isinstance(t, torch.Tensor) else t for t in x32]
    inputs_b = [t.detach().clone().requires_grad_(t.requires_grad) if isinstance(t, torch.Tensor) else t for t in inputs_a]
    out = ours_call(ours, *inputs_a)
    ref = theirs_call(theirs, *inputs_b)
    assert_close(out, ref, atol=1e-5, rtol=1e-5)
    g = torch.randn_like(ref)
    (out * g).sum().backward()
    (ref * g).sum().backward()
    for a, b in zip(inputs_a, inputs_b):
        if isinstance(a, torch.Tensor) and a.requires_grad:
            assert_close(a.grad, b.grad, atol=1e-5, rtol=1e-5)
    params_b = dict(theirs.named_parameters())
    for name, p in ours.named_parameters():
        if p.grad is None:
            assert params_b[name].grad is None or torch.count_nonzero(params_b[name].grad) == 0, name
        else:
            assert_close(p.grad, params_b[name].grad, atol=1e-5, rtol=1e-5, msg=name)


# ----------------------------------------------------------------------------------------------
# parity
# ----------------------------------------------------------------------------------------------


@settings(max_examples=12, deadline=None)
@given(graph=MESSY, heads=st.integers(1, 3), concat=st.booleans(), share=st.booleans(), edge_dim=st.sampled_from([None, 2]),
       fill=st.sampled_from(["mean", "max", "add", 0.5]), loops=st.booleans(), residual=st.booleans(),
       structure=st.booleans(), seed=st.integers(0, 2**16))
def test_gatv2_matches_pyg(graph, heads, concat, share, edge_dim, fill, loops, residual, structure, seed):
    n, ei = graph
    torch.manual_seed(seed)
    kw = dict(heads=heads, concat=concat, share_weights=share, edge_dim=edge_dim, fill_value=fill,
              add_self_loops=loops, residual=residual, negative_slope=0.15)
    ours, theirs = gnn.GATv2Conv(4, 3, **kw), pyg.GATv2Conv(4, 3, **kw)
    _load(ours, theirs)
    e = ei.size(1)
    gi = GraphStructure(ei, n) if structure else ei

    def inputs():
        ea = torch.randn(e, 2, requires_grad=True) if edge_dim else None
        return [torch.randn(n, 4, requires_grad=True), ea]

    _check_fwd_bwd(ours, theirs, inputs, lambda m, x, ea: m(x, gi, ea), lambda m, x, ea: m(x, ei, ea))
    # the attention is PyG's too (same edge order: ours is target-sorted, PyG's loops come last)
    x = torch.randn(n, 4)
    ea = torch.randn(e, 2) if edge_dim else None
    out, (ei_a, att_a) = ours(x, ei, ea, return_attention_weights=True)
    ref, (ei_b, att_b) = theirs(x, ei, ea, return_attention_weights=True)
    assert_close(out, ref, atol=1e-5, rtol=1e-5)
    key_a, key_b = ei_a[1] * (n + 1) + ei_a[0], ei_b[1] * (n + 1) + ei_b[0]
    pa, pb = torch.argsort(key_a, stable=True), torch.argsort(key_b, stable=True)
    assert torch.equal(ei_a[:, pa], ei_b[:, pb])
    if edge_dim is None:  # duplicates of an edge have equal attention without edge features
        assert_close(att_a[pa], att_b[pb], atol=1e-5, rtol=1e-5)


@settings(max_examples=8, deadline=None)
@given(n_src=st.integers(1, 6), n_dst=st.integers(1, 6), e=st.integers(0, 20), edge_dim=st.sampled_from([None, 3]),
       seed=st.integers(0, 2**16))
def test_gatv2_bipartite_matches_pyg(n_src, n_dst, e, edge_dim, seed):
    torch.manual_seed(seed)
    ei = torch.stack([torch.randint(n_src, (e,)), torch.randint(n_dst, (e,))])
    kw = dict(heads=2, edge_dim=edge_dim, add_self_loops=False)
    ours, theirs = gnn.GATv2Conv((4, 5), 3, **kw), pyg.GATv2Conv((4, 5), 3, **kw)
    _load(ours, theirs)
    def inputs():
        ea = torch.randn(e, 3, requires_grad=True) if edge_dim else None
        return [torch.randn(n_src, 4, requires_grad=True), torch.randn(n_dst, 5, requires_grad=True), ea]

    _check_fwd_bwd(ours, theirs, inputs, lambda m, a, b, ea: m((a, b), ei, ea), lambda m, a, b, ea: m((a, b), ei, ea))


@settings(max_examples=15, deadline=None)
@given(graph=MESSY, aggr=st.sampled_from(["mean", "max", "sum"]), normalize=st.booleans(), root=st.booleans(),
       project=st.booleans(), f_out=st.sampled_from([2, 7]), batched=st.booleans(), seed=st.integers(0, 2**16))
def test_sage_matches_pyg(graph, aggr, normalize, root, project, f_out, batched, seed):
    n, ei = graph
    torch.manual_seed(seed)
    kw = dict(aggr=aggr, normalize=normalize, root_weight=root, project=project)
    ours, theirs = gnn.SAGEConv(4, f_out, **kw), pyg.SAGEConv(4, f_out, **kw)
    _load(ours, theirs)
    if batched:
        _check_fwd_bwd(ours, theirs, lambda: [torch.randn(2, n, 4, requires_grad=True)],
                       lambda m, x: m(x, ei), lambda m, x: torch.stack([m(xi, ei) for xi in x]))
    else:
        _check_fwd_bwd(ours, theirs, lambda: [torch.randn(n, 4, requires_grad=True)],
                       lambda m, x: m(x, GraphStructure(ei, n)), lambda m, x: m(x, ei))


@settings(max_examples=8, deadline=None)
@given(n_src=st.integers(1, 6), n_dst=st.integers(1, 6), e=st.integers(0, 20), aggr=st.sampled_from(["mean", "max", "sum"]),
       seed=st.integers(0, 2**16))
def test_sage_graphconv_bipartite_match_pyg(n_src, n_dst, e, aggr, seed):
    torch.manual_seed(seed)
    ei = torch.stack([torch.randint(n_src, (e,)), torch.randint(n_dst, (e,))])
    def inputs():
        return [torch.randn(n_src, 4, requires_grad=True), torch.randn(n_dst, 5, requires_grad=True),
                torch.rand(e, requires_grad=True)]

    ours, theirs = gnn.SAGEConv((4, 5), 3, aggr=aggr), pyg.SAGEConv((4, 5), 3, aggr=aggr)
    _load(ours, theirs)
    _check_fwd_bwd(ours, theirs, lambda: inputs()[:2], lambda m, a, b: m((a, b), ei), lambda m, a, b: m((a, b), ei))
    aggr_g = "add" if aggr == "sum" else aggr
    ours, theirs = gnn.GraphConv((4, 5), 3, aggr=aggr_g), pyg.GraphConv((4, 5), 3, aggr=aggr_g)
    _load(ours, theirs)
    _check_fwd_bwd(ours, theirs, inputs, lambda m, a, b, w: m((a, b), ei, w), lambda m, a, b, w: m((a, b), ei, w))


@settings(max_examples=15, deadline=None)
@given(graph=MESSY, aggr=st.sampled_from(["add", "mean", "max"]), weighted=st.booleans(), f_out=st.sampled_from([2, 7]),
       batched=st.booleans(), seed=st.integers(0, 2**16))
def test_graphconv_matches_pyg(graph, aggr, weighted, f_out, batched, seed):
    n, ei = graph
    torch.manual_seed(seed)
    ours, theirs = gnn.GraphConv(4, f_out, aggr=aggr), pyg.GraphConv(4, f_out, aggr=aggr)
    _load(ours, theirs)
    def inputs(lead=()):
        return [torch.randn(*lead, n, 4, requires_grad=True),
                (torch.rand(ei.size(1)) + 0.1).requires_grad_() if weighted else None]

    if batched:
        _check_fwd_bwd(ours, theirs, lambda: inputs((2,)),
                       lambda m, x, w: m(x, ei, w), lambda m, x, w: torch.stack([m(xi, ei, w) for xi in x]))
    else:
        _check_fwd_bwd(ours, theirs, inputs, lambda m, x, w: m(x, ei, w), lambda m, x, w: m(x, ei, w))


def _mlp(f_in=4, f_out=3):
    return torch.nn.Sequential(torch.nn.Linear(f_in, 8), torch.nn.ReLU(), torch.nn.Linear(8, f_out))


@settings(max_examples=12, deadline=None)
@given(graph=MESSY, train_eps=st.booleans(), eps=st.floats(-0.5, 0.5), batched=st.booleans(), seed=st.integers(0, 2**16))
def test_gin_matches_pyg(graph, train_eps, eps, batched, seed):
    n, ei = graph
    torch.manual_seed(seed)
    ours, theirs = gnn.GINConv(_mlp(), eps=eps, train_eps=train_eps), pyg.GINConv(_mlp(), eps=eps, train_eps=train_eps)
    _load(ours, theirs)
    if batched:
        _check_fwd_bwd(ours, theirs, lambda: [torch.randn(2, n, 4, requires_grad=True)],
                       lambda m, x: m(x, ei), lambda m, x: torch.stack([m(xi, ei) for xi in x]))
    else:
        _check_fwd_bwd(ours, theirs, lambda: [torch.randn(n, 4, requires_grad=True)],
                       lambda m, x: m(x, GraphStructure(ei, n)), lambda m, x: m(x, ei))


@settings(max_examples=12, deadline=None)
@given(graph=MESSY, train_eps=st.booleans(), edge_dim=st.sampled_from([None, 2]), batched=st.booleans(),
       seed=st.integers(0, 2**16))
def test_gine_matches_pyg(graph, train_eps, edge_dim, batched, seed):
    n, ei = graph
    torch.manual_seed(seed)
    kw = dict(eps=0.1, train_eps=train_eps, edge_dim=edge_dim)
    ours, theirs = gnn.GINEConv(_mlp(), **kw), pyg.GINEConv(_mlp(), **kw)
    _load(ours, theirs)
    e, d = ei.size(1), edge_dim or 4
    if batched:
        _check_fwd_bwd(ours, theirs, lambda: [torch.randn(2, n, 4, requires_grad=True), torch.randn(e, d, requires_grad=True)],
                       lambda m, x, ea: m(x, ei, ea), lambda m, x, ea: torch.stack([m(xi, ei, ea) for xi in x]))
    else:
        _check_fwd_bwd(ours, theirs, lambda: [torch.randn(n, 4, requires_grad=True), torch.randn(e, d, requires_grad=True)],
                       lambda m, x, ea: m(x, ei, ea), lambda m, x, ea: m(x, ei, ea))


@settings(max_examples=12, deadline=None)
@given(graph=MESSY, heads=st.integers(1, 3), concat=st.booleans(), fill=st.sampled_from(["mean", "min", 2.0]),
       batched=st.booleans(), seed=st.integers(0, 2**16))
def test_gat_edge_dim_matches_pyg(graph, heads, concat, fill, batched, seed):
    n, ei = graph
    torch.manual_seed(seed)
    kw = dict(heads=heads, concat=concat, edge_dim=3, fill_value=fill)
    ours, theirs = gnn.GATConv(4, 3, **kw), pyg.GATConv(4, 3, **kw)
    _load(ours, theirs)
    e = ei.size(1)
    if batched:
        _check_fwd_bwd(ours, theirs, lambda: [torch.randn(2, n, 4, requires_grad=True), torch.randn(e, 3, requires_grad=True)],
                       lambda m, x, ea: m(x, ei, ea), lambda m, x, ea: torch.stack([m(xi, ei, ea) for xi in x]))
    else:
        _check_fwd_bwd(ours, theirs, lambda: [torch.randn(n, 4, requires_grad=True), torch.randn(e, 3, requires_grad=True)],
                       lambda m, x, ea: m(x, GraphStructure(ei, n), edge_attr=ea), lambda m, x, ea: m(x, ei, ea))


# A fixed messy graph: node 0 has a self-loop and two in-edges (one duplicated), node 3 a loop only,
# node 4 is isolated, node 2 has three in-edges.
_FIXED_EI = torch.tensor([[0, 1, 1, 2, 0, 3, 3, 1, 0, 0], [0, 0, 0, 1, 2, 2, 3, 2, 1, 2]])


@pytest.mark.parametrize("fill", ["mean", "max", "min", "add", 0.5, "tensor"])
@pytest.mark.parametrize("cls", ["GATConv", "GATv2Conv"])
def test_self_loop_fill_values_match_pyg(cls, fill):
    torch.manual_seed(0)
    fill = torch.tensor([0.3, -0.2], dtype=torch.float64) if fill == "tensor" else fill
    ours, theirs = getattr(gnn, cls)(4, 3, heads=2, edge_dim=2, fill_value=fill), getattr(pyg, cls)(4, 3, heads=2, edge_dim=2, fill_value=fill)
    _load(ours, theirs)
    e = _FIXED_EI.size(1)
    _check_fwd_bwd(ours, theirs, lambda: [torch.randn(5, 4, requires_grad=True), torch.randn(e, 2, requires_grad=True)],
                   lambda m, x, ea: m(x, _FIXED_EI, ea), lambda m, x, ea: m(x, _FIXED_EI, ea))


# ----------------------------------------------------------------------------------------------
# keys, repr, lazy, layouts, errors, compile
# ----------------------------------------------------------------------------------------------


def _pairs():
    return [
        (gnn.GATv2Conv(4, 3, heads=2, edge_dim=2, residual=True), pyg.GATv2Conv(4, 3, heads=2, edge_dim=2, residual=True)),
        (gnn.GATv2Conv(4, 3, share_weights=True, bias=False), pyg.GATv2Conv(4, 3, share_weights=True, bias=False)),
        (gnn.SAGEConv((4, 5), 3, project=True), pyg.SAGEConv((4, 5), 3, project=True)),
        (gnn.SAGEConv(4, 3, root_weight=False, bias=False), pyg.SAGEConv(4, 3, root_weight=False, bias=False)),
        (gnn.GraphConv(4, 3, aggr="mean"), pyg.GraphConv(4, 3, aggr="mean")),
        (gnn.GINConv(_mlp(), train_eps=True), pyg.GINConv(_mlp(), train_eps=True)),
        (gnn.GINEConv(_mlp(), edge_dim=2), pyg.GINEConv(_mlp(), edge_dim=2)),
        (gnn.GATConv(4, 3, heads=2, edge_dim=2), pyg.GATConv(4, 3, heads=2, edge_dim=2)),
    ]


def test_state_dict_keys_shapes_and_repr_match_pyg():
    for ours, theirs in _pairs():
        a, b = ours.state_dict(), theirs.state_dict()
        assert {k: v.shape for k, v in a.items()} == {k: v.shape for k, v in b.items()}, type(ours).__name__
        if not isinstance(ours, gnn.GATConv):
            assert repr(ours) == repr(theirs)


def test_defaults_match_pyg():
    import inspect

    for name in ["GATv2Conv", "SAGEConv", "GraphConv", "GINConv", "GINEConv", "GATConv"]:
        ours = inspect.signature(getattr(gnn, name)).parameters
        theirs = inspect.signature(getattr(pyg, name)).parameters
        for p, spec in theirs.items():
            if spec.kind in (spec.VAR_KEYWORD, spec.VAR_POSITIONAL):
                continue
            assert p in ours, f"{name}.{p}"
            assert ours[p].default == spec.default, f"{name}.{p}: {ours[p].default!r} vs {spec.default!r}"


def test_share_weights_uses_one_projection():
    conv = gnn.GATv2Conv(4, 3, share_weights=True)
    assert conv.lin_l is conv.lin_r
    assert len(list(conv.parameters())) == 4  # lin.weight, lin.bias, att, bias


@pytest.mark.parametrize("make", [
    lambda: (gnn.GATv2Conv(-1, 3, heads=2), pyg.GATv2Conv(-1, 3, heads=2)),
    lambda: (gnn.SAGEConv(-1, 3), pyg.SAGEConv(-1, 3)),
    lambda: (gnn.GraphConv(-1, 3), pyg.GraphConv(-1, 3)),
    lambda: (gnn.GATConv(-1, 3, heads=2, residual=True), pyg.GATConv(-1, 3, heads=2, residual=True)),
])
def test_lazy_in_channels(make):
    ours, theirs = make()
    x, ei = torch.randn(5, 4), _FIXED_EI
    with torch.no_grad():
        theirs(x, ei)
    _load(ours, theirs)  # a materialised PyG state dict loads into the lazy module
    assert_close(ours(x, ei), theirs(x, ei))
    ours2 = make()[0]
    assert ours2(x, ei).shape == ours(x, ei).shape  # first call sizes the projections
    assert ours2.state_dict()[next(iter(k for k in ours2.state_dict() if k.endswith("weight")))].shape[-1] == 4


def test_per_sample_graphs_and_structure_equal_loop():
    torch.manual_seed(0)
    e1, e2 = _FIXED_EI, torch.tensor([[4, 3, 2, 2], [0, 0, 4, 2]])
    x = torch.randn(2, 5, 4)
    convs = [
        (gnn.GATv2Conv(4, 3, heads=2), ()),
        (gnn.SAGEConv(4, 3, aggr="max"), ()),
        (gnn.GraphConv(4, 3, aggr="mean"), ()),
        (gnn.GINConv(_mlp()), ()),
    ]
    for conv, extra in convs:
        ref = torch.stack([conv(x[0], e1), conv(x[1], e2)])
        assert_close(conv(x, [e1, e2]), ref, msg=type(conv).__name__)
        batch = torch.arange(2).repeat_interleave(5)
        offset = torch.cat([e1, e2 + 5], 1)
        assert_close(conv(x, offset, batch=batch), ref, msg=type(conv).__name__)
        gs = GraphStructure(e1, 5)
        assert_close(conv(x, gs), torch.stack([conv(x[0], e1), conv(x[1], e1)]), msg=type(conv).__name__)


def test_errors_are_clear():
    x = torch.randn(5, 4)
    with pytest.raises(ValueError, match="edge_dim"):
        gnn.GATv2Conv(4, 3)(x, _FIXED_EI, torch.randn(10, 2))
    with pytest.raises(ValueError, match=r"Expected 'edge_attr' of shape \(10, 2\)"):
        gnn.GATv2Conv(4, 3, edge_dim=2)(x, _FIXED_EI, torch.randn(9, 2))
    with pytest.raises(ValueError, match="fill_value"):
        gnn.GATv2Conv(4, 3, fill_value="median")
    with pytest.raises(ValueError, match="aggr"):
        gnn.SAGEConv(4, 3, aggr="lstm")
    with pytest.raises(ValueError, match="lazy"):
        gnn.SAGEConv(-1, 3, project=True)
    with pytest.raises(ValueError, match="in_channels"):
        gnn.GraphConv(0, 3)
    with pytest.raises(ValueError, match="share_weights"):
        gnn.GATv2Conv((4, 5), 3, share_weights=True)
    with pytest.raises(ValueError, match=r"weight_src.*\(3, 4\)"):
        gnn.GATv2Conv(4, 3)(torch.randn(5, 6), _FIXED_EI)
    with pytest.raises(ValueError, match="add_self_loops"):
        gnn.GATv2Conv((4, 4), 3)((torch.randn(5, 4), torch.randn(3, 4)), torch.tensor([[0], [1]]))
    with pytest.raises(ValueError, match="match 'x'"):
        gnn.GINEConv(_mlp())(x, _FIXED_EI, torch.randn(10, 2))
    with pytest.raises(IndexError):
        gnn.SAGEConv(4, 3)(x, torch.tensor([[0, 7], [1, 2]]))
    with pytest.raises(ValueError, match="num_src_nodes=5"):
        gnn.SAGEConv((4, 4), 3)((x, torch.randn(3, 4)), GraphStructure(_FIXED_EI, 5))
    with pytest.raises(TypeError, match="dtype"):
        gnn.GraphConv(4, 3)(x, _FIXED_EI, torch.rand(10, dtype=torch.float64))


def test_compile_fullgraph_matches_eager():
    torch._dynamo.reset()
    torch.manual_seed(0)
    gs = GraphStructure(_FIXED_EI, 5).precompute()
    x = torch.randn(2, 5, 4)
    ea = torch.randn(10, 2)
    mods = [
        (gnn.GATv2Conv(4, 3, heads=2, edge_dim=2), lambda m: m(x, _FIXED_EI, ea)),
        (gnn.SAGEConv(4, 3, aggr="max"), lambda m: m(x, gs)),
        (gnn.GINEConv(_mlp(), edge_dim=2), lambda m: m(x[0], _FIXED_EI, ea)),
    ]
    for m, call in mods:
        eager = call(m)
        compiled = torch.compile(call, fullgraph=True, backend="aot_eager")
        assert_close(compiled(m), eager, msg=type(m).__name__)
