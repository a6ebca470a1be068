"""``graphvision.nn.MessagePassing`` against PyG's ``MessagePassing``: the same layer bodies on both
bases give the same outputs and gradients (hypothesis-drawn graphs with self-loops, duplicate
edges, isolated nodes, empty graphs, unsorted edges, non-contiguous features), for every ``aggr``;
edge-order handling; errors; ``torch.compile(fullgraph=True)``."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import graphvision
import graphvision.nn as gnn
from graphvision.testing import assert_close

pyg_nn = pytest.importorskip("torch_geometric.nn")
pyg_utils = pytest.importorskip("torch_geometric.utils")

AGGRS = ["sum", "add", "mean", "max", "min"]


# ---------------------------------------------------------------------------- layer bodies
# Each factory builds the same class body on either base, so both run identical user code.
def gcn_like(base: type, as_edge_weight: bool = False) -> type:
    """PyG's "Implementing the GCN layer" tutorial; the normalisation passed as ``norm`` (an extra
    keyword with E rows) or as ``edge_weight`` (a declared per-edge argument)."""

    class GCNLike(base):
        def __init__(self, cin: int, cout: int, aggr: str) -> None:
            super().__init__(aggr=aggr)
            self.lin = torch.nn.Linear(cin, cout, bias=False)
            self.bias = torch.nn.Parameter(torch.randn(cout))

        def normalised(self, x, edge_index):
            n = x.size(-2)
            loops = torch.arange(n).repeat(2, 1)
            ei = torch.cat([edge_index, loops], dim=1)
            row, col = ei
            deg = torch.zeros(n).index_add_(0, col, torch.ones(col.numel()))
            dis = deg.pow(-0.5)
            return ei, dis[row] * dis[col], self.lin(x)

        def forward(self, x, edge_index):
            ei, norm, h = self.normalised(x, edge_index)
            return self.propagate(ei, x=h, norm=norm) + self.bias

        def message(self, x_j, norm):
            return norm.view(-1, 1) * x_j

    class GCNLikeWeighted(GCNLike):
        def forward(self, x, edge_index):
            ei, norm, h = self.normalised(x, edge_index)
            return self.propagate(ei, x=h, edge_weight=norm) + self.bias

        def message(self, x_j, edge_weight):
            return edge_weight.view(-1, 1) * x_j

    return GCNLikeWeighted if as_edge_weight else GCNLike


def edge_conv_like(base: type) -> type:
    class EdgeConvLike(base):
        def __init__(self, cin: int, cout: int, aggr: str) -> None:
            super().__init__(aggr=aggr)
            self.mlp = torch.nn.Sequential(torch.nn.Linear(2 * cin, 8), torch.nn.Tanh(), torch.nn.Linear(8, cout))

        def forward(self, x, edge_index):
            return self.propagate(edge_index, x=x)

        def message(self, x_i, x_j):
            return self.mlp(torch.cat([x_i, x_j - x_i], dim=-1))

    return EdgeConvLike


def edge_attr_like(base: type) -> type:
    """A GINE-like layer: per-edge attributes in the message and ``x`` in ``update``."""

    class EdgeAttrLike(base):
        def __init__(self, cin: int, dim: int, aggr: str) -> None:
            super().__init__(aggr=aggr)
            self.lin = torch.nn.Linear(dim, cin)

        def forward(self, x, edge_index, edge_attr):
            return self.propagate(edge_index, x=x, edge_attr=edge_attr)

        def message(self, x_j, edge_attr):
            return torch.tanh(x_j + self.lin(edge_attr))

        def update(self, inputs, x):
            return inputs + 0.5 * x

    return EdgeAttrLike


def attention_like(base: type) -> type:
    """GAT-style softmax inside ``message`` with PyG's ``softmax(alpha, index, ptr, size_i)``."""

    class AttentionLike(base):
        def __init__(self, cin: int, aggr: str) -> None:
            super().__init__(aggr=aggr)
            self.att = torch.nn.Parameter(torch.randn(2 * cin))

        def forward(self, x, edge_index, edge_weight):
            return self.propagate(edge_index, x=x, edge_weight=edge_weight)

        def message(self, x_i, x_j, edge_weight, index, ptr, size_i):
            alpha = (torch.cat([x_i, x_j], dim=-1) * self.att).sum(-1) * edge_weight
            alpha = pyg_utils.softmax(alpha, index, ptr, size_i)
            return alpha.view(-1, 1) * x_j

    return AttentionLike


def node_kwarg_like(base: type) -> type:
    """A per-node tensor passed without suffix and indexed in ``message`` by ``index``."""

    class NodeKwarg(base):
        def __init__(self, aggr: str) -> None:
            super().__init__(aggr=aggr)

        def forward(self, x, edge_index, scale):
            return self.propagate(edge_index, x=x, scale=scale)

        def message(self, x_j, scale, index):
            return scale[index].view(-1, 1) * x_j

    return NodeKwarg


def _pair(factory, *args, **kw):
    ref = factory(pyg_nn.MessagePassing, **kw)(*args)
    ours = factory(gnn.MessagePassing, **kw)(*args)
    ours.load_state_dict(ref.state_dict(), strict=True)
    return ours, ref


def _graph(n: int, e: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    if n == 0:
        return torch.zeros(2, 0, dtype=torch.long)
    return torch.randint(n, (2, e), generator=g)  # unsorted, duplicates and self-loops likely


def _features(shape: tuple[int, ...], seed: int, contiguous: bool) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed + 1)
    if contiguous:
        return torch.randn(shape, generator=g).requires_grad_()
    t = torch.randn(tuple(reversed(shape)), generator=g).requires_grad_()
    return t.permute(*reversed(range(len(shape))))  # same shape, transposed memory


def _compare(ours, ref, inputs, extra=()):
    """Outputs and gradients of every input tensor and parameter agree."""
    a, b = ours(*inputs, *extra), ref(*inputs, *extra)
    assert_close(a, b, atol=1e-5, rtol=1e-4)
    leaves = [t for t in inputs if isinstance(t, torch.Tensor) and t.requires_grad]
    pa, pb = list(ours.parameters()), list(ref.parameters())
    if a.numel() == 0 or not (leaves or pa):
        return
    up = torch.randn(a.shape, generator=torch.Generator().manual_seed(7))
    ga = torch.autograd.grad((a * up).sum(), leaves + pa, allow_unused=True)
    gb = torch.autograd.grad((b * up).sum(), leaves + pb, allow_unused=True)
    for x, y in zip(ga, gb):
        if x is None or y is None:
            assert (x is None or not x.abs().sum()) and (y is None or not y.abs().sum())
        else:
            assert_close(x, y, atol=1e-5, rtol=1e-4)


graphs = dict(
    n=st.integers(0, 7),
    e=st.integers(0, 18),
    seed=st.integers(0, 2**16),
    contiguous=st.booleans(),
    aggr=st.sampled_from(AGGRS),
)


# ---------------------------------------------------------------------------- parity with PyG
@settings(max_examples=20)
@given(**graphs, as_edge_weight=st.booleans())
def test_gcn_like_matches_pyg(n, e, seed, contiguous, aggr, as_edge_weight):
    ours, ref = _pair(gcn_like, 3, 4, aggr, as_edge_weight=as_edge_weight)
    x = _features((n, 3), seed, contiguous)
    _compare(ours, ref, (x, _graph(n, e, seed)))


@settings(max_examples=20)
@given(**graphs, batched=st.booleans())
def test_edge_conv_like_matches_pyg(n, e, seed, contiguous, aggr, batched):
    ours, ref = _pair(edge_conv_like, 3, 4, aggr)
    x = _features((2, n, 3) if batched else (n, 3), seed, contiguous)
    _compare(ours, ref, (x, _graph(n, e, seed)))


@settings(max_examples=20)
@given(**graphs)
def test_edge_attr_and_update_match_pyg(n, e, seed, contiguous, aggr):
    ei = _graph(n, e, seed)
    ours, ref = _pair(edge_attr_like, 3, 2, aggr)
    x = _features((n, 3), seed, contiguous)
    attr = torch.randn(ei.size(1), 2, generator=torch.Generator().manual_seed(seed)).requires_grad_()
    _compare(ours, ref, (x, ei, attr))


@settings(max_examples=20)
@given(**graphs)
def test_attention_with_index_and_ptr_matches_pyg(n, e, seed, contiguous, aggr):
    ei = _graph(n, e, seed)
    ours, ref = _pair(attention_like, 3, aggr)
    x = _features((n, 3), seed, contiguous)
    w = torch.rand(ei.size(1), generator=torch.Generator().manual_seed(seed)).requires_grad_()
    _compare(ours, ref, (x, ei, w))


@pytest.mark.parametrize("aggr", AGGRS)
def test_per_node_kwarg_with_as_many_rows_as_edges(aggr):
    # N == E: ``scale`` is per node, but has E rows. Nothing is guessed: the messages keep the
    # caller's edge order, so ``scale[index]`` reads the right nodes.
    ei = torch.tensor([[0, 3, 1, 2, 2], [4, 0, 3, 1, 1]])
    ours, ref = _pair(node_kwarg_like, aggr)
    x, scale = torch.randn(5, 2, requires_grad=True), torch.randn(5, requires_grad=True)
    _compare(ours, ref, (x, ei, scale))


@pytest.mark.parametrize("aggr", AGGRS)
def test_default_message_matches_pyg_and_the_generic_path(aggr):
    class Plain(gnn.MessagePassing):  # default message: the spmm path for sum/mean
        def forward(self, x, edge_index):
            return self.propagate(edge_index, x=x)

    class Generic(Plain):
        def message(self, x_j):
            return x_j + 0.0

    class Ref(pyg_nn.MessagePassing):
        def forward(self, x, edge_index):
            return self.propagate(edge_index, x=x)

    ei = _graph(6, 20, 3)
    for shape in ((6, 3), (2, 6, 3)):
        x = torch.randn(shape, requires_grad=True)
        _compare(Plain(aggr), Ref(aggr), (x, ei))
        _compare(Generic(aggr), Ref(aggr), (x, ei))


@pytest.mark.parametrize("flow", ["source_to_target", "target_to_source"])
@pytest.mark.parametrize("aggr", ["sum", "max"])
def test_flow_and_bipartite_match_pyg(flow, aggr):
    def body(base):
        class Bip(base):
            def __init__(self):
                super().__init__(aggr=aggr, flow=flow)
                self.lin = torch.nn.Linear(5, 3)

            def forward(self, x, edge_index, size):
                return self.propagate(edge_index, x=x, size=size)

            def message(self, x_i, x_j, edge_index_i, size_j):
                return self.lin(torch.cat([x_i, x_j, edge_index_i.view(-1, 1).float() / size_j], -1))

        return Bip

    ours, ref = _pair(body)
    g = torch.Generator().manual_seed(0)
    # 4 -> 6 nodes; with target_to_source PyG reads the sizes of a pair inconsistently unless
    # both sides have the same number of nodes, so that flow is compared on 6 -> 6 nodes.
    ns = 4 if flow == "source_to_target" else 6
    ei = torch.stack([torch.randint(ns, (12,), generator=g), torch.randint(6, (12,), generator=g)])
    xs, xd = torch.randn(ns, 2, requires_grad=True), torch.randn(6, 2, requires_grad=True)
    _compare(ours, ref, ((xs, xd), ei, (ns, 6)))


def test_custom_aggregate_matches_pyg():
    def body(base):
        class SoftMaxAggr(base):
            def __init__(self):
                super().__init__(aggr=None)

            def forward(self, x, edge_index):
                return self.propagate(edge_index, x=x)

            def aggregate(self, inputs, index, dim_size):
                w = pyg_utils.softmax(inputs, index, num_nodes=dim_size)
                return torch.zeros(dim_size, inputs.size(-1)).index_add(0, index, w * inputs)

        return SoftMaxAggr

    ours, ref = _pair(body)
    x = torch.randn(7, 3, requires_grad=True)
    _compare(ours, ref, (x, _graph(7, 25, 1)))


def test_edge_updater_keeps_the_caller_order():
    def body(base):
        class Att(base):
            def forward(self, x, edge_index, edge_weight):
                alpha = self.edge_updater(edge_index, x=x)
                return self.propagate(edge_index, x=x, alpha=alpha, edge_weight=edge_weight), alpha

            def edge_update(self, x_i, x_j):
                return (x_i * x_j).sum(-1)

            def message(self, x_j, alpha, edge_weight):
                return (alpha * edge_weight).view(-1, 1) * x_j

        return Att

    ours, ref = _pair(body)
    ei = _graph(6, 15, 5)
    x, w = torch.randn(6, 3), torch.rand(15)
    (a, alpha_a), (b, alpha_b) = ours(x, ei, w), ref(x, ei, w)
    assert_close(alpha_a, alpha_b)
    assert_close(a, b, atol=1e-5, rtol=1e-4)


# ---------------------------------------------------------------------------- graph inputs, edge order
def test_structure_and_converter_inputs_give_the_same_result():
    ours = edge_attr_like(gnn.MessagePassing)(3, 2, "mean")
    ei = _graph(8, 30, 2)
    x, attr = torch.randn(8, 3), torch.randn(30, 2)
    ref = ours(x, ei, attr)
    assert_close(ours(x, graphvision.GraphStructure(ei, num_nodes=8), attr), ref)
    # a converter's result carries a trusted, target-sorted structure
    res = graphvision.functional.image_to_graph(torch.randn(1, 3, 2, 4))
    xs = torch.randn(8, 3)
    ea = torch.randn(res.edge_index.size(1), 2)
    assert_close(ours(xs, res, ea), ours(xs, res.edge_index, ea))


def test_edge_order_invariance_with_unsorted_edges():
    ours = attention_like(gnn.MessagePassing)(3, "sum")
    ei = _graph(9, 40, 4)
    x, w = torch.randn(9, 3), torch.rand(40)
    perm = torch.randperm(40, generator=torch.Generator().manual_seed(1))
    assert_close(ours(x, ei[:, perm], w[perm]), ours(x, ei, w), atol=1e-6, rtol=1e-5)
    s = ei[:, torch.argsort(ei[1], stable=True)]  # target-sorted: identity permutation
    ws = w[torch.argsort(ei[1], stable=True)]
    assert_close(ours(x, s, ws), ours(x, ei, w), atol=1e-6, rtol=1e-5)


def test_repr():
    assert str(gnn.MessagePassing()) == "MessagePassing(aggr='sum')"
    assert str(gnn.MessagePassing("max", flow="target_to_source", node_dim=0)) == (
        "MessagePassing(aggr='max', flow='target_to_source', node_dim=0)"
    )


# ---------------------------------------------------------------------------- errors
def test_errors():
    conv = edge_attr_like(gnn.MessagePassing)(3, 2, "sum")
    x, attr = torch.randn(4, 3), torch.randn(3, 2)
    with pytest.raises(TypeError, match="dtype"):
        conv(x, torch.zeros(2, 3), attr)
    with pytest.raises(ValueError, match=r"shape \(2, E\)"):
        conv(x, torch.zeros(3, 3, dtype=torch.long), attr)
    with pytest.raises(IndexError, match="outside"):
        conv(x, torch.tensor([[0, 1, 4], [1, 2, 3]]), attr)
    with pytest.raises(TypeError, match="needs the keyword argument 'edge_attr'"):
        conv.propagate(torch.tensor([[0, 1, 2], [1, 2, 3]]), x=x)
    with pytest.raises(ValueError, match="num_src_nodes=5"):
        conv(x, graphvision.GraphStructure(torch.tensor([[0], [1]]), num_nodes=5), torch.randn(1, 2))
    with pytest.raises(ValueError, match="nodes in dimension"):
        conv.propagate(torch.tensor([[0], [1]]), x=(torch.randn(4, 3), torch.randn(2, 3)), size=(3, 2), edge_attr=attr)
    with pytest.raises(ValueError, match="aggr"):
        gnn.MessagePassing(aggr="median")
    with pytest.raises(ValueError, match="flow"):
        gnn.MessagePassing(flow="both")
    with pytest.raises(ValueError, match="aggregate"):
        gnn.MessagePassing(aggr=None)
    with pytest.raises(TypeError, match="edge_index"):
        conv(x, [[0, 1], [1, 2]], attr)
    with pytest.raises(TypeError, match="sparse"):
        conv(x, torch.eye(4).to_sparse_csr(), attr)


# ---------------------------------------------------------------------------- compile
@pytest.mark.parametrize("aggr", ["max", "mean"])
def test_compiles_fullgraph(aggr):
    ours, ref = _pair(edge_attr_like, 3, 2, aggr)
    ei = _graph(6, 20, 8)
    x, attr = torch.randn(6, 3), torch.randn(20, 2)
    compiled = torch.compile(ours, fullgraph=True, backend="eager")
    assert_close(compiled(x, ei, attr), ref(x, ei, attr), atol=1e-5, rtol=1e-4)
