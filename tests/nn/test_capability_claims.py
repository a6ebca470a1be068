"""Every capability the docs' table claims (``_capabilities`` of each ``graphvision.nn`` layer)
is checked here against the layer itself: edge-weight support against the signature and a run,
determinism on the CPU by running forward and backward twice."""

from __future__ import annotations

import inspect

import pytest
import torch

import graphvision.nn as gnn

LAYERS = {
    name: getattr(gnn, name)
    for name in gnn.__all__
    if isinstance(getattr(getattr(gnn, name), "_capabilities", None), dict)
}


def _params(fn) -> set[str]:
    return set(inspect.signature(fn).parameters)


@pytest.mark.parametrize("name", sorted(LAYERS))
def test_edge_weight_claim_matches_the_signature(name: str) -> None:
    cls = LAYERS[name]
    claim = cls._capabilities.get("edge_weight")
    init, fwd = _params(cls.__init__), _params(cls.forward)
    if claim is True:
        assert "edge_weight" in fwd, f"{name} claims edge_weight but forward() takes none"
    elif claim is False:
        assert "edge_weight" not in init | fwd, f"{name} takes edge_weight but the table says it does not"
    elif claim == "edge_attr":
        assert "edge_attr" in fwd
    elif claim == "feature similarity (optional)":
        assert "similarity" in init  # converters: a similarity chosen at construction gives edge_weight
    else:
        assert claim in ("n/a", "output"), f"{name}: undocumented edge_weight claim {claim!r}"


@pytest.mark.parametrize(
    ("name", "kwargs"),
    [("ImageToGraph", {}), ("PatchGraph", {"patch_size": 2}), ("SuperpixelGraph", {"n_segments": 6})],
)
def test_converters_claiming_edge_weight_produce_one_weight_per_edge(name: str, kwargs: dict) -> None:
    if name == "SuperpixelGraph":
        pytest.importorskip("skimage")
    assert LAYERS[name]._capabilities["edge_weight"] == "feature similarity (optional)"
    out = LAYERS[name](similarity="cosine", **kwargs)(torch.rand(2, 3, 8, 8))
    assert out.edge_weight.shape == (out.edge_index.shape[1],)
    assert bool(torch.isfinite(out.edge_weight).all())


def _grid_edges(n_side: int) -> torch.Tensor:
    idx = torch.arange(n_side * n_side).view(n_side, n_side)
    a = torch.cat([idx[:, :-1].reshape(-1), idx[:-1, :].reshape(-1)])
    b = torch.cat([idx[:, 1:].reshape(-1), idx[1:, :].reshape(-1)])
    return torch.stack([torch.cat([a, b]), torch.cat([b, a])])


#: How to run each layer that declares a determinism claim: (module factory, call).
_RUNS = {
    "GCNConv": (lambda: gnn.GCNConv(8, 4), lambda m, x, ei, w: m(x, ei, w)),
    "GATConv": (lambda: gnn.GATConv(8, 4, heads=2), lambda m, x, ei, w: m(x, ei)),
    "AttentionGCNConv": (lambda: gnn.AttentionGCNConv(8, 4, heads=2, alpha=0.1), lambda m, x, ei, w: m(x, ei, w)),
    "GCN2Conv": (lambda: gnn.GCN2Conv(8, alpha=0.1), lambda m, x, ei, w: m(x, x, ei, w)),
    "EdgeConditionedConv": (
        lambda: gnn.EdgeConditionedConv(8, 4, torch.nn.Linear(1, 32)),
        lambda m, x, ei, w: m(x, ei, w[:, None]),
    ),
    "AttentionPooling": (lambda: gnn.AttentionPooling(8, heads=2), lambda m, x, ei, w: m(x.view(2, -1, 8))),
    "TopKPooling": (lambda: gnn.TopKPooling(8, k=3), lambda m, x, ei, w: m(x.view(2, -1, 8)).x),
    "SAGPooling": (lambda: gnn.SAGPooling(8, k=3), lambda m, x, ei, w: m(x.view(2, -1, 8), ei).x),
    "GATv2Conv": (lambda: gnn.GATv2Conv(8, 4, heads=2, edge_dim=1), lambda m, x, ei, w: m(x, ei, w[:, None])),
    "SAGEConv": (lambda: gnn.SAGEConv(8, 4, aggr="max"), lambda m, x, ei, w: m(x, ei)),
    "GraphConv": (lambda: gnn.GraphConv(8, 4), lambda m, x, ei, w: m(x, ei, w)),
    "GINConv": (lambda: gnn.GINConv(torch.nn.Linear(8, 4), train_eps=True), lambda m, x, ei, w: m(x, ei)),
    "GINEConv": (lambda: gnn.GINEConv(torch.nn.Linear(8, 4), edge_dim=1), lambda m, x, ei, w: m(x, ei, w[:, None])),
    "EdgeConv": (lambda: gnn.EdgeConv(torch.nn.Linear(16, 4), aggr="max"), lambda m, x, ei, w: m(x, ei)),
    "MRConv": (lambda: gnn.MRConv(torch.nn.Linear(16, 4)), lambda m, x, ei, w: m(x, ei)),
    "DynamicEdgeConv": (lambda: gnn.DynamicEdgeConv(torch.nn.Linear(16, 4), k=3), lambda m, x, ei, w: m(x)),
}


@pytest.mark.parametrize("name", sorted(n for n in LAYERS if n in _RUNS or "Conv" in n or "Pool" in n))
def test_deterministic_claim_holds_on_the_cpu(name: str) -> None:
    claim = LAYERS[name]._capabilities.get("deterministic")
    assert claim in (True, False, "CPU only"), f"{name}: undocumented determinism claim {claim!r}"
    if claim is False:
        return
    assert name in _RUNS, f"{name} claims determinism: add it to _RUNS so the claim is tested"
    make, call = _RUNS[name]
    ei = _grid_edges(4)  # one 4x4 grid graph, shared by the two samples of the pooling layers
    results = []
    for _ in range(2):
        torch.manual_seed(0)
        m = make()
        x = torch.randn(2 * 16, 8, requires_grad=True) if "Pool" not in name else torch.randn(32, 8, requires_grad=True)
        w = torch.rand(ei.shape[1], requires_grad=True)
        out = call(m, x[:16] if "Pool" not in name else x, ei, w)
        out = out[0] if isinstance(out, tuple) else out
        grads = torch.autograd.grad(out.square().sum(), [x, *m.parameters()], allow_unused=True)
        results.append((out.detach(), [g for g in grads if g is not None]))
    (o1, g1), (o2, g2) = results
    assert torch.equal(o1, o2), f"{name}: forward differs between runs"
    assert len(g1) == len(g2) and all(torch.equal(a, b) for a, b in zip(g1, g2, strict=True)), f"{name}: gradients differ"
