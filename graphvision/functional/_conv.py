r"""Graph convolutions as functions: the math and validation behind :mod:`graphvision.nn` convs.

Every function takes node features ``x`` in one of three layouts:

- ``(N, F)`` with one graph (``edge_index`` of shape ``(2, E)`` or a ``GraphStructure``);
- ``(B, N, F)`` with **one graph shared** by the ``B`` samples (``edge_index`` indexes the ``N``
  nodes). The batch is folded into the feature axis (SpMM on ``(N, B * F)``) or into the head axis
  (attention with ``B * K`` heads), so edges are never copied per sample;
- ``(B, N, F)`` with **per-sample graphs**: a list of ``B`` ``edge_index`` tensors (each over ``N``
  nodes), or one offset ``edge_index`` over the ``B * N`` flattened nodes together with a
  ``batch`` vector of shape ``(B * N,)`` that marks this layout.

The output keeps the layout of ``x``. Self-loops are appended with a static shape (``E + N``
edges, no data-dependent masking), so everything works under ``torch.compile(fullgraph=True)``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, NamedTuple

import torch
import torch.nn.functional as F  # noqa: N812
from torch import Tensor

from graphvision._checks import check_choice, check_edge_index, check_tensor
from graphvision.functional._graph_input import GraphInput, GraphLike, WeightLike, check_x, resolve_graph, restore
from graphvision.functional._propagate import (
    FILL_REDUCES,  # noqa: F401  (re-used by the modules)
    attend,
    propagate,
    scatter,
    with_self_loops,
    with_self_loops_attrs,
)
from graphvision.ops._api import as_structure
from graphvision.structure import GraphStructure
from graphvision.typing import Adjacency

if TYPE_CHECKING:
    from graphvision.functional._conv_pyg import GATv2Weights

__all__ = [
    "gcn_norm",
    "GCNNorm",
    "gcn_conv",
    "AttentionWeights",
    "GATOptions",
    "AttentionGCNOptions",
    "gat_conv",
    "attention_gcn_conv",
    "gcn2_conv",
    "edge_conditioned_conv",
]

AGGREGATIONS = ("sum", "mean", "max")


# --------------------------------------------------------------------------------------------
# validation helpers
# --------------------------------------------------------------------------------------------


def _check_param(t: object, shape: tuple[int | str, ...], name: str, x: Tensor) -> Tensor:
    t = check_tensor(t, name)
    if t.dim() != len(shape) or any(isinstance(s, int) and t.size(i) != s for i, s in enumerate(shape)):
        pattern = "(" + ", ".join(str(s) for s in shape) + ")"  # formatted only on failure (lazy)
        raise ValueError(f"Expected '{name}' of shape {pattern} (got {tuple(t.shape)})")
    if t.dtype != x.dtype:
        raise TypeError(f"Expected '{name}' of the same dtype as 'x' ({x.dtype}) (got {t.dtype})")
    if t.device != x.device:
        raise ValueError(f"Expected '{name}' on the same device as 'x' ({x.device}) (got {t.device})")
    return t


def _check_unit(value: object, name: str, *, closed: bool) -> float:
    """``value`` as a float in ``[0, 1]`` (``closed``) or ``[0, 1)`` (a probability such as dropout)."""
    ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    if ok:
        v = float(value)  # type: ignore[arg-type]
        ok = 0.0 <= v <= 1.0 if closed else 0.0 <= v < 1.0
    if not ok:
        raise ValueError(f"Expected '{name}' in [0, 1{']' if closed else ')'} (got {value!r})")
    return float(value)  # type: ignore[arg-type]


def _check_prob(p: float, name: str) -> float:
    return _check_unit(p, name, closed=False)


# --------------------------------------------------------------------------------------------
# normalisation
# --------------------------------------------------------------------------------------------


def _gcn_norm_split(
    edge_index: Tensor,
    edge_weight: Tensor | None,
    num_nodes: int,
    add_self_loops: bool,
    improved: bool,
    dtype: torch.dtype,
) -> tuple[Tensor, Tensor | None]:
    """Symmetric normalisation, with the self-loop term kept apart as a per-node weight.

    Returns ``(w, loop)``: ``w[e] = d_src^-1/2 * w_e * d_dst^-1/2`` for the given edges and
    ``loop[i] = d_i^-1 * l_i`` (``None`` without self-loops). As PyG's
    ``add_remaining_self_loops``: with self-loops, the existing loops leave the edge list (their
    ``w`` is 0) and node ``i``'s loop weight ``l_i`` is the weight of its last existing loop, or
    ``fill_value`` (1, or 2 with ``improved``) for nodes without one. Static shapes, no host sync;
    ``edge_index`` was validated by the caller.
    """
    src, dst = edge_index[0].long(), edge_index[1].long()
    e = src.numel()
    w = edge_weight if edge_weight is not None else torch.ones(e, dtype=dtype, device=src.device)
    loop = None
    if add_self_loops:
        fill = 2.0 if improved else 1.0
        is_loop = src == dst
        pos = torch.arange(e, device=src.device)
        last = torch.full((num_nodes,), -1, dtype=torch.int64, device=src.device).scatter_reduce(
            0, dst, torch.where(is_loop, pos, -1), "amax"
        )
        # weight of each node's last existing loop; an index e (one past the edges) reads the
        # padding 0 for nodes without one (no branch on E: E may be symbolic under compile)
        existing = torch.cat([w, w.new_zeros(1)]).index_select(0, torch.where(last >= 0, last, e))
        loop = torch.where(last >= 0, existing, torch.full_like(existing, fill))
        w = torch.where(is_loop, torch.zeros_like(w), w)
    deg = w.new_zeros(num_nodes).index_add_(0, dst, w)
    if loop is not None:
        deg = deg + loop
    nonzero = deg != 0
    dinv = torch.where(nonzero, torch.where(nonzero, deg, torch.ones_like(deg)).rsqrt(), torch.zeros_like(deg))
    w_norm = dinv.index_select(0, src) * w * dinv.index_select(0, dst)
    if loop is not None:
        loop = dinv * loop * dinv
    return w_norm, loop


def _gcn_norm_of(g: GraphInput, add_self_loops: bool, improved: bool, dtype: torch.dtype) -> tuple[Tensor, Tensor | None]:
    """:func:`_gcn_norm_split` of a resolved graph; cached on its structure for structural weights."""
    graph = g.graph
    assert isinstance(graph, GraphStructure)
    if g.edge_weight is None:
        return graph.derived(
            ("gcn_norm", add_self_loops, improved, dtype),
            lambda: _gcn_norm_split(graph.edge_index, None, g.num_nodes, add_self_loops, improved, dtype),
        )
    return _gcn_norm_split(graph.edge_index, g.edge_weight, g.num_nodes, add_self_loops, improved, dtype)


def gcn_norm(
    edge_index: Adjacency,
    edge_weight: Tensor | None = None,
    num_nodes: int | None = None,
    add_self_loops: bool = True,
    improved: bool = False,
    dtype: torch.dtype | None = None,
) -> tuple[Tensor, Tensor]:
    r"""Symmetric GCN normalisation :math:`\hat{D}^{-1/2} \hat{A} \hat{D}^{-1/2}` of an edge list.

    With :math:`\hat{A} = A + \lambda I` (:math:`\lambda = 2` when ``improved`` else 1) and
    :math:`\hat{D}_{ii} = \sum_j \hat{A}_{ij}` the weighted in-degree (messages flow
    ``edge_index[0] -> edge_index[1]``), each edge :math:`j \to i` gets
    :math:`\hat{D}_{jj}^{-1/2} w_{ji} \hat{D}_{ii}^{-1/2}`. Nodes with zero degree get 0, as in
    PyG's ``gcn_norm``.

    Self-loops follow PyG's ``add_remaining_self_loops``: the existing loops are dropped from the
    edge list (here: kept in place with weight 0, so the shape stays static: ``E + N`` edges, the
    last ``N`` being the loops ``i -> i``) and each node gets one loop, weighted by its last
    existing loop's weight or by the fill value. The matrix equals PyG's, with no host
    synchronisation. Duplicate (non-loop) edges are summed, as in PyG.

    Args:
        edge_index: ``(2, E)`` integer tensor, or a ``GraphStructure``.
        edge_weight: Optional ``(E,)`` weights (default 1).
        num_nodes: Number of nodes. ``None`` reads ``edge_index.max() + 1``, which synchronises
            with the device and breaks ``torch.compile(fullgraph=True)``; pass it.
        add_self_loops: Append self-loops.
        improved: Self-loops of weight 2 (:math:`\hat{A} = A + 2I`).
        dtype: Weight dtype when ``edge_weight`` is ``None`` (default ``torch.get_default_dtype()``).

    Returns:
        ``(edge_index, edge_weight)`` of the normalised adjacency.

    Shape:
        - edge_index: :math:`(2, E)`
        - edge_weight: :math:`(E,)`, optional
        - output: :math:`(2, E + N)` and :math:`(E + N,)` with self-loops, else :math:`(2, E)`, :math:`(E,)`

    Example:
        >>> edge_index = torch.tensor([[0, 1, 1, 2], [1, 0, 2, 1]])
        >>> ei, w = graphvision.functional.gcn_norm(edge_index, num_nodes=3)
        >>> ei.shape, w.shape
        (torch.Size([2, 7]), torch.Size([7]))
    """
    if isinstance(edge_index, GraphStructure):
        num_nodes = edge_index.num_nodes if num_nodes is None else num_nodes
        edge_index = edge_index.edge_index
    else:
        check_edge_index(edge_index, None)
        if num_nodes is None:
            num_nodes = int(edge_index.max()) + 1 if edge_index.numel() > 0 else 0
        as_structure(edge_index, num_nodes, num_nodes)  # validated once
    if edge_weight is not None:
        check_tensor(edge_weight, "edge_weight")
        if edge_weight.dim() != 1 or edge_weight.size(0) != edge_index.size(1):
            raise ValueError(
                f"Expected 'edge_weight' of shape (E,) with E={edge_index.size(1)} (got {tuple(edge_weight.shape)})"
            )
        if not edge_weight.is_floating_point():
            raise TypeError(f"Expected 'edge_weight' to have a floating-point dtype (got {edge_weight.dtype})")
        dtype = edge_weight.dtype
    dtype = dtype if dtype is not None else torch.get_default_dtype()
    w, loop = _gcn_norm_split(edge_index, edge_weight, num_nodes, add_self_loops, improved, dtype)
    if loop is None:
        return edge_index, w
    loops = torch.arange(num_nodes, device=edge_index.device, dtype=edge_index.dtype)
    return torch.cat([edge_index, loops.unsqueeze(0).expand(2, num_nodes)], dim=1), torch.cat([w, loop])


# --------------------------------------------------------------------------------------------
# GCN
# --------------------------------------------------------------------------------------------


def _loop_weight(value: Tensor | float | None, g: GraphInput, x: Tensor) -> Tensor | None:
    if value is None or isinstance(value, Tensor):
        if isinstance(value, Tensor) and (value.dim() != 1 or value.size(0) != g.num_nodes):
            raise ValueError(
                f"Expected 'self_loop_weight' of shape (N,) with N={g.num_nodes} (got {tuple(value.shape)})"
            )
        return value
    return torch.full((g.num_nodes,), float(value), dtype=x.dtype, device=x.device)


class GCNNorm(NamedTuple):
    r"""How :func:`gcn_conv` and :func:`gcn2_conv` weight the adjacency (PyG ``GCNConv`` names and defaults).

    With ``normalize`` the adjacency is :math:`\hat{D}^{-1/2}\hat{A}\hat{D}^{-1/2}` (:func:`gcn_norm`),
    :math:`\hat{A} = A + I` (``+ 2I`` with ``improved``) when ``add_self_loops``. Without it the
    edge weights are used as given, plus a self-loop term ``self_loop_weight[i] * h[i]`` (1, or 2
    with ``improved``, when ``add_self_loops``). A cached normalisation is passed as
    ``GCNNorm(normalize=False, add_self_loops=False, self_loop_weight=loop)`` with the normalised
    edge weights (what the ``cached=True`` layers do).

    Attributes:
        normalize: Apply the symmetric normalisation.
        add_self_loops: Add self-loops (weight 1, or 2 with ``improved``).
        improved: :math:`\hat{A} = A + 2I`.
        self_loop_weight: With ``normalize=False``: the weight of each node's self-loop term, a
            float or an ``(N,)`` tensor (a cached normalisation passes :math:`\hat{D}^{-1}` here).

    Shape:
        - self_loop_weight: scalar or :math:`(N,)`

    Example:
        >>> from graphvision.functional import GCNNorm, gcn_conv
        >>> x, edge_index = torch.randn(4, 16), torch.tensor([[0, 1, 2], [1, 2, 3]])
        >>> gcn_conv(x, edge_index, torch.randn(32, 16), norm=GCNNorm(improved=True)).shape
        torch.Size([4, 32])
    """

    normalize: bool = True
    add_self_loops: bool = True
    improved: bool = False
    self_loop_weight: Tensor | float | None = None


def _gcn_weights(g: GraphInput, norm: GCNNorm, x: Tensor) -> tuple[Tensor | None, Tensor | None]:
    if not isinstance(norm, GCNNorm):
        raise TypeError(f"Expected 'norm' to be a GCNNorm (got {type(norm).__name__})")
    if norm.normalize:
        if norm.self_loop_weight is not None:
            raise ValueError("'self_loop_weight' is only used with normalize=False (normalisation computes it)")
        return _gcn_norm_of(g, norm.add_self_loops, norm.improved, x.dtype)
    loop = _loop_weight(norm.self_loop_weight, g, x)
    if loop is None and norm.add_self_loops:
        loop = _loop_weight(2.0 if norm.improved else 1.0, g, x)
    return g.edge_weight, loop


def _gcn_propagate(g: GraphInput, w: Tensor | None, loop: Tensor | None, h: Tensor) -> Tensor:
    out = propagate(g, w, h)
    if loop is not None:
        out = torch.addcmul(out, loop.unsqueeze(-1).to(h.dtype), h)
    return out


def gcn_conv(
    x: Tensor,
    edge_index: GraphLike,
    weight: Tensor,
    bias: Tensor | None = None,
    edge_weight: WeightLike = None,
    *,
    batch: Tensor | None = None,
    norm: GCNNorm = GCNNorm(),
) -> Tensor:
    r"""Graph convolution of Kipf & Welling, `"Semi-supervised Classification with Graph Convolutional
    Networks" <https://arxiv.org/abs/1609.02907>`_.

    .. math::
        \mathbf{X}' = \hat{D}^{-1/2} \hat{A} \hat{D}^{-1/2} \mathbf{X} \mathbf{\Theta}^\top + \mathbf{b}

    The self-loop term is applied as ``loop[i] * h[i]`` next to the SpMM over the given edges, so
    no edges are appended and a cached ``GraphStructure`` is reused as is. The projection runs
    before or after the propagation, whichever is narrower.

    Args:
        x: Node features (see the module docstring for the three layouts).
        edge_index: ``(2, E)`` integer tensor, ``GraphStructure``, or a list of ``B`` per-sample ones.
        weight: :math:`\mathbf{\Theta}`, ``(F_out, F_in)`` as in :func:`torch.nn.functional.linear`.
        bias: Optional ``(F_out,)``.
        edge_weight: Optional ``(E,)`` (a list for a list of graphs).
        batch: ``(B * N,)``; marks ``edge_index`` as offset over the flattened nodes of batched ``x``.
        norm: ``normalize``, ``add_self_loops``, ``improved`` and ``self_loop_weight``
            (:class:`GCNNorm`).

    Returns:
        The convolved features, in the layout of ``x``.

    Shape:
        - x: :math:`(N, F_{in})` or :math:`(B, N, F_{in})`
        - edge_index: :math:`(2, E)`
        - weight: :math:`(F_{out}, F_{in})`
        - output: :math:`(N, F_{out})` or :math:`(B, N, F_{out})`

    Example:
        >>> x = torch.randn(4, 16)
        >>> edge_index = torch.tensor([[0, 1, 2], [1, 2, 3]])
        >>> graphvision.functional.gcn_conv(x, edge_index, torch.randn(32, 16)).shape
        torch.Size([4, 32])
    """
    x = check_x(x)
    weight = _check_param(weight, ("F_out", x.size(-1)), "weight", x)
    if bias is not None:
        _check_param(bias, (weight.size(0),), "bias", x)
    x, g = resolve_graph(x, edge_index, edge_weight, batch)
    w, loop = _gcn_weights(g, norm, x)
    if weight.size(0) <= weight.size(1):
        out = _gcn_propagate(g, w, loop, F.linear(x, weight))
    else:
        out = F.linear(_gcn_propagate(g, w, loop, x), weight)
    if bias is not None:
        out = out + bias
    return restore(out, g)


# --------------------------------------------------------------------------------------------
# attention convolutions
# --------------------------------------------------------------------------------------------


class AttentionWeights(NamedTuple):
    r"""The learned tensors of a GAT-style attention convolution, in PyG ``GATConv`` terms.

    Taken by :func:`gat_conv` and :func:`attention_gcn_conv` (which uses no edge projection);
    :class:`graphvision.nn.GATConv` and :class:`graphvision.nn.AttentionGCNConv` build it from
    their parameters at each call.

    Attributes:
        weight: :math:`\mathbf{\Theta}`, ``(K * F_out, F_in)`` (PyG ``lin.weight``).
        att_src: :math:`\mathbf{a}_s`, ``(K, F_out)`` or ``(1, K, F_out)`` (PyG ``att_src``).
        att_dst: :math:`\mathbf{a}_t`, same shape as ``att_src`` (PyG ``att_dst``).
        bias: Optional output bias, ``(K * F_out,)`` with concatenated heads, else ``(F_out,)``.
        weight_edge: Optional :math:`\mathbf{\Theta}_e`, ``(K * F_out, D)``, for ``edge_attr``
            (PyG ``lin_edge.weight``).
        att_edge: Optional :math:`\mathbf{a}_e`, same shape as ``att_src`` (PyG ``att_edge``).
        residual_weight: Optional ``(out, F_in)`` skip projection added to the output (PyG
            ``res.weight``).

    Shape:
        - weight: :math:`(K F_{out}, F_{in})`
        - att_src, att_dst, att_edge: :math:`(K, F_{out})` or :math:`(1, K, F_{out})`
        - bias: :math:`(K F_{out},)` (concat) or :math:`(F_{out},)`
        - weight_edge: :math:`(K F_{out}, D)`

    Example:
        >>> from graphvision.functional import AttentionWeights
        >>> weights = AttentionWeights(torch.randn(2 * 16, 8), torch.randn(2, 16), torch.randn(2, 16))
        >>> weights.bias is None, weights.weight.shape
        (True, torch.Size([32, 8]))
    """

    weight: Tensor
    att_src: Tensor
    att_dst: Tensor
    bias: Tensor | None = None
    weight_edge: Tensor | None = None
    att_edge: Tensor | None = None
    residual_weight: Tensor | None = None


class GATOptions(NamedTuple):
    """The hyper-parameters of :func:`gat_conv` and :func:`graphvision.functional.gatv2_conv`.

    Names and defaults are those of PyG's ``GATConv`` / ``GATv2Conv`` constructors (and of
    :class:`graphvision.nn.GATConv` / :class:`graphvision.nn.GATv2Conv`).

    Attributes:
        concat: Concatenate the heads, else average them.
        negative_slope: LeakyReLU slope of the scores.
        dropout: Dropout probability on the attention coefficients (applied with ``training``).
        add_self_loops: Remove existing self-loops and add one per node (PyG's semantics).
        fill_value: ``edge_weight`` / ``edge_attr`` of the added loops: a float, a tensor, or
            ``"add"``, ``"mean"``, ``"max"``, ``"min"`` of the node's incoming (non-loop) values,
            as PyG's ``add_self_loops`` (nodes without any get 0).

    Shape:
        - fill_value: scalar, or a tensor broadcasting to one edge's ``edge_weight`` / ``edge_attr``

    Example:
        >>> from graphvision.functional import GATOptions
        >>> GATOptions(concat=False, dropout=0.1)
        GATOptions(concat=False, negative_slope=0.2, dropout=0.1, add_self_loops=True, fill_value='mean')
    """

    concat: bool = True
    negative_slope: float = 0.2
    dropout: float = 0.0
    add_self_loops: bool = True
    fill_value: float | Tensor | str = "mean"


class AttentionGCNOptions(NamedTuple):
    r"""The hyper-parameters of :func:`attention_gcn_conv`, as :class:`graphvision.nn.AttentionGCNConv` takes them.

    Attributes:
        concat: Concatenate the heads, else average them.
        alpha: Initial-residual strength :math:`\beta \in [0, 1]` (used when ``x0`` is given).
        negative_slope: LeakyReLU slope of the scores.
        dropout: Dropout probability on the attention coefficients (applied with ``training``).
        normalize: GCN-normalise the edge weights (with self-loops when ``add_self_loops``).
        add_self_loops: Append self-loops (weight 1, or 2 with ``improved``).
        improved: Self-loops of weight 2 (:math:`\hat{A} = A + 2I`).

    Shape:
        - no tensors: every field is a Python scalar

    Example:
        >>> from graphvision.functional import AttentionGCNOptions
        >>> options = AttentionGCNOptions(alpha=0.1, normalize=False)
        >>> options.alpha, options.normalize, options.add_self_loops
        (0.1, False, True)
    """

    concat: bool = True
    alpha: float = 0.0
    negative_slope: float = 0.2
    dropout: float = 0.0
    normalize: bool = True
    add_self_loops: bool = True
    improved: bool = False


def prepare_attention_graph(
    g: GraphInput, normalize: bool, add_self_loops: bool, improved: bool, fill_value: float, dtype: torch.dtype
) -> GraphInput:
    """The graph the attention convolutions aggregate over, with PyG's self-loop semantics.

    ``normalize``: GCN-normalised weights (:func:`_gcn_norm_of`), the loops weighted by the
    normalised loop term. Else, with ``add_self_loops``: loops with ``fill_value`` (only when
    there are edge weights). The looped structure is cached on ``g``'s structure.
    """
    if normalize:
        w, loop = _gcn_norm_of(g, add_self_loops, improved, dtype)
        g = GraphInput(g.graph, w, g.num_nodes, g.batch_size, g.shared)
        if loop is not None:
            g = with_self_loops(g, loop, 0.0, dtype)
    elif add_self_loops:
        g = with_self_loops(g, None, fill_value, dtype)
    return g


def _heads_of(att: object, name: str) -> Tensor:
    """``att`` as ``(K, F_out)`` (PyG stores ``(1, K, F_out)``)."""
    att = check_tensor(att, name)
    att = att.squeeze(0) if att.dim() == 3 and att.size(0) == 1 else att
    if att.dim() != 2:
        raise ValueError(f"Expected '{name}' of shape (K, F_out) or (1, K, F_out) (got {tuple(att.shape)})")
    return att


def _check_attention(
    x: Tensor, weights: AttentionWeights, concat: bool, dropout: float
) -> tuple[Tensor, AttentionWeights, float]:
    """Validate ``x`` and ``weights`` against each other; the vectors come back as ``(K, F_out)``."""
    x = check_x(x)
    if not isinstance(weights, AttentionWeights):
        raise TypeError(f"Expected 'weights' to be an AttentionWeights (got {type(weights).__name__})")
    dropout = _check_prob(dropout, "dropout")
    att_src = _heads_of(weights.att_src, "att_src")
    k, f_out = att_src.shape
    _check_param(att_src, (k, f_out), "att_src", x)
    att_dst = _check_param(_heads_of(weights.att_dst, "att_dst"), (k, f_out), "att_dst", x)
    _check_param(weights.weight, (k * f_out, x.size(-1)), "weight", x)
    out_dim = k * f_out if concat else f_out
    if weights.bias is not None:
        _check_param(weights.bias, (out_dim,), "bias", x)
    if weights.residual_weight is not None:
        _check_param(weights.residual_weight, (out_dim, x.size(-1)), "residual_weight", x)
    att_edge = weights.att_edge
    if att_edge is not None:
        att_edge = _check_param(_heads_of(att_edge, "att_edge"), (k, f_out), "att_edge", x)
    if weights.weight_edge is not None:
        _check_param(weights.weight_edge, (k * f_out, "D"), "weight_edge", x)
    return x, weights._replace(att_src=att_src, att_dst=att_dst, att_edge=att_edge), dropout


def _edge_features(edge_attr: Tensor | None, g: GraphInput, weights: AttentionWeights, x: Tensor) -> Tensor | None:
    """``edge_attr`` checked against the graph and the edge projection, as ``(E, D)``."""
    if edge_attr is None:
        return None
    if weights.weight_edge is None or weights.att_edge is None:
        raise ValueError("'edge_attr' was given but no edge projection 'weight_edge'/'att_edge' (set edge_dim)")
    graph = g.graph
    assert isinstance(graph, GraphStructure)
    ea = check_tensor(edge_attr, "edge_attr")
    ea = ea.view(-1, 1) if ea.dim() == 1 else ea
    if ea.dim() != 2 or ea.size(0) != graph.num_edges:
        raise ValueError(
            f"Expected 'edge_attr' of shape (E, D) with E={graph.num_edges} (got {tuple(edge_attr.shape)})"
        )
    _check_param(ea, (graph.num_edges, weights.weight_edge.size(1)), "edge_attr", x)
    return ea


def _gat_graph(
    g: GraphInput, ea: Tensor | None, add_self_loops: bool, fill_value: float | Tensor | str, dtype: torch.dtype
) -> tuple[GraphInput, Tensor | None]:
    """GAT's graph: with ``add_self_loops``, one loop per node whose weight and features are ``fill_value``."""
    if not add_self_loops:
        return g, ea
    if ea is None and isinstance(fill_value, (int, float)):
        return with_self_loops(g, None, float(fill_value), dtype), None
    looped, (w, ea) = with_self_loops_attrs(g, [g.edge_weight, ea], fill_value)  # a reduction or tensor fill
    return GraphInput(looped.graph, w, looped.num_nodes, looped.batch_size, looped.shared), ea


def _project(x: Tensor, weights: AttentionWeights) -> Tensor:
    """The projected heads ``(..., N, K, F_out)``."""
    return F.linear(x, weights.weight).unflatten(-1, tuple(weights.att_src.shape))


def _project_scores(x: Tensor, weights: AttentionWeights) -> tuple[Tensor, Tensor, Tensor]:
    """The projected heads ``h`` ``(..., N, K, F_out)`` and the node scores ``(..., N, K)``."""
    h = _project(x, weights)
    return h, (h * weights.att_src).sum(-1), (h * weights.att_dst).sum(-1)


def _edge_scores(ea: Tensor | None, weights: AttentionWeights) -> Tensor | None:
    r"""The per-edge score term :math:`\mathbf{a}_e^\top \mathbf{\Theta}_e \mathbf{e}_{ji}`, ``(E, K)``."""
    if ea is None:
        return None
    assert weights.weight_edge is not None and weights.att_edge is not None
    return (F.linear(ea, weights.weight_edge).view(-1, *weights.att_edge.shape) * weights.att_edge).sum(-1)


def _finish(
    out: Tensor,
    attn: Tensor | None,
    x: Tensor,
    g: GraphInput,
    weights: AttentionWeights | GATv2Weights,
    concat: bool,
    return_attention_weights: bool,
) -> Tensor | tuple[Tensor, tuple[Tensor, Tensor]]:
    """Merge the heads, add the skip projection and the bias, restore the layout of ``x``.

    ``weights`` is read for its ``residual_weight`` and ``bias`` only.
    """
    out = out.flatten(-2) if concat else out.mean(-2)
    if weights.residual_weight is not None:
        out = out + F.linear(x, weights.residual_weight)
    if weights.bias is not None:
        out = out + weights.bias
    out = restore(out, g)
    if return_attention_weights:
        assert attn is not None
        return out, (g.edge_index, attn)
    return out


def gat_conv(
    x: Tensor,
    edge_index: GraphLike,
    weights: AttentionWeights,
    edge_weight: WeightLike = None,
    *,
    edge_attr: Tensor | None = None,
    batch: Tensor | None = None,
    options: GATOptions = GATOptions(),
    training: bool = True,
    return_attention_weights: bool = False,
) -> Tensor | tuple[Tensor, tuple[Tensor, Tensor]]:
    r"""Graph attention of Veličković et al., `"Graph Attention Networks"
    <https://arxiv.org/abs/1710.10903>`_, on the fused :func:`graphvision.ops.attention_aggregate`.

    .. math::
        \mathbf{x}'_i = \Big\Vert_{k=1}^{K} \sum_{j \in \mathcal{N}(i) \cup \{i\}}
        \alpha^{k}_{ij}\, w_{ji}\, \mathbf{\Theta}^{k} \mathbf{x}_j, \qquad
        \alpha^{k}_{ij} = \operatorname{softmax}_j\Big(\operatorname{LeakyReLU}\big(
        \mathbf{a}^{k\top}_{s} \mathbf{\Theta}^{k}\mathbf{x}_j + \mathbf{a}^{k\top}_{t}
        \mathbf{\Theta}^{k}\mathbf{x}_i\big)\Big)

    with :math:`w_{ji} = 1` without ``edge_weight`` (PyG's ``GATConv``; with ``edge_weight`` the
    weight multiplies the attention, it does not enter the score). Heads are concatenated or
    averaged. With ``options.add_self_loops`` the graph follows PyG: existing self-loops are
    removed and one loop per node is added (built once per structure from its CSR, no sort; under
    ``torch.compile`` the removed loops go to a padding row so that shapes stay static).

    Args:
        x: Node features (``(N, F_in)``, ``(B, N, F_in)`` shared or per-sample graph).
        edge_index: ``(2, E)`` integer tensor, ``GraphStructure``, or a list of ``B`` per-sample ones.
        weights: The projection, attention vectors, and optional bias, edge projection and skip
            projection (:class:`AttentionWeights`).
        edge_weight: Optional ``(E,)`` non-negative weights multiplying the attention.
        edge_attr: Optional ``(E, D)`` edge features entering the score as
            :math:`\mathbf{a}^{k\top}_{e}\mathbf{\Theta}^{k}_{e}\mathbf{e}_{ji}` (PyG's ``edge_dim``;
            needs ``weights.weight_edge`` and ``weights.att_edge``); with them the softmax runs
            unfused (:func:`graphvision.ops.segment_softmax` and a per-head :func:`graphvision.ops.spmm`).
        batch: ``(B * N,)``; marks ``edge_index`` as offset over the flattened nodes of batched ``x``.
        options: ``concat``, ``negative_slope``, ``dropout``, ``add_self_loops`` and
            ``fill_value``, as PyG's ``GATConv`` (:class:`GATOptions`). Attention dropout uses
            the unfused path.
        training: Apply dropout.
        return_attention_weights: Also return ``(edge_index, attention)`` with the self-loops included (the
            softmax coefficients before dropout, unlike PyG which returns them after).

    Returns:
        The output features, and with ``return_attention_weights`` the tuple
        ``(edge_index, attention)``: attention ``(E', K)``, or ``(B, E', K)`` for a shared graph.

    Shape:
        - x: :math:`(N, F_{in})` or :math:`(B, N, F_{in})`
        - edge_index: :math:`(2, E)`
        - edge_attr: :math:`(E, D)`, optional
        - output: :math:`(N, K F_{out})` (concat) or :math:`(N, F_{out})`, batched :math:`(B, N, \cdot)`

    Example:
        >>> from graphvision.functional import AttentionWeights, GATOptions, gat_conv
        >>> x = torch.randn(4, 8)
        >>> edge_index = torch.tensor([[0, 1, 2], [1, 2, 3]])
        >>> weights = AttentionWeights(torch.randn(2 * 16, 8), torch.randn(2, 16), torch.randn(2, 16))
        >>> gat_conv(x, edge_index, weights).shape
        torch.Size([4, 32])
        >>> gat_conv(x, edge_index, weights, options=GATOptions(concat=False)).shape
        torch.Size([4, 16])
    """
    x, weights, dropout = _check_attention(x, weights, options.concat, options.dropout)
    x, g = resolve_graph(x, edge_index, edge_weight, batch)
    g, ea = _gat_graph(g, _edge_features(edge_attr, g, weights, x), options.add_self_loops, options.fill_value, x.dtype)
    h, score_src, score_dst = _project_scores(x, weights)
    out, attn = attend(
        g, h, score_src, score_dst, g.edge_weight, options.negative_slope, dropout, training,
        return_attention_weights, score_edge=_edge_scores(ea, weights),
    )
    return _finish(out, attn, x, g, weights, options.concat, return_attention_weights)


def attention_gcn_conv(
    x: Tensor,
    edge_index: GraphLike,
    weights: AttentionWeights,
    edge_weight: WeightLike = None,
    *,
    x0: Tensor | None = None,
    batch: Tensor | None = None,
    options: AttentionGCNOptions = AttentionGCNOptions(),
    training: bool = True,
    return_attention_weights: bool = False,
) -> Tensor | tuple[Tensor, tuple[Tensor, Tensor]]:
    r"""Attention-weighted graph convolution: learned multi-head attention times the structural
    (or mutual-information) edge weight, with an optional GCNII-style initial residual.

    The building block of RMCG (relation-aware multi-channel attention GCN). For head :math:`k`:

    .. math::
        \mathbf{h}^{k}_i = \mathbf{\Theta}^{k}\mathbf{x}_i, \qquad
        \alpha^{k}_{ij} = \operatorname{softmax}_{j \in \mathcal{N}(i) \cup \{i\}}
        \operatorname{LeakyReLU}\big(\mathbf{a}^{k\top}_{s}\mathbf{h}^{k}_j +
        \mathbf{a}^{k\top}_{t}\mathbf{h}^{k}_i\big)

    .. math::
        \mathbf{x}'^{k}_i = (1 - \beta) \sum_{j} \alpha^{k}_{ij}\, \tilde{a}_{ij}\, \mathbf{h}^{k}_j
        + \beta\, \mathbf{\Theta}^{k} \mathbf{x}^{(0)}_i

    where :math:`\tilde{a}_{ij}` is the edge weight (structural, or a mutual-information
    adjacency from :func:`graphvision.functional.mutual_information_adjacency`) after the GCN
    normalisation :math:`\hat{D}^{-1/2}\hat{A}\hat{D}^{-1/2}` (``options.normalize``) and
    :math:`\beta` = ``options.alpha`` is the initial-residual strength of GCNII
    (`Chen et al. <https://arxiv.org/abs/2007.02133>`_) against over-smoothing in deep stacks
    (used when ``x0`` is given). Heads are concatenated or averaged, then the bias is added.
    The aggregation runs in one fused :func:`graphvision.ops.attention_aggregate` call. It is
    :func:`gat_conv`'s steps (project, score, aggregate, merge the heads) on the GCN-normalised
    graph, plus the initial residual.

    Self-loops are appended to every node with a static shape. A node that already has a
    self-loop keeps it, and with ``normalize=True`` its appended loop gets weight 0, which still
    takes part in the attention softmax; for graphs that carry their own self-loops (e.g. a
    mutual-information adjacency built with self-loops) pass
    ``options=AttentionGCNOptions(add_self_loops=False)``.

    Args:
        x: Node features (``(N, F_in)``, ``(B, N, F_in)`` shared or per-sample graph).
        edge_index: ``(2, E)`` integer tensor, ``GraphStructure``, or a list of ``B`` per-sample ones.
        weights: The projection, attention vectors and optional bias and skip projection
            (:class:`AttentionWeights`, without an edge projection).
        edge_weight: Optional ``(E,)`` structural / MI weights (default 1).
        x0: Initial features :math:`\mathbf{x}^{(0)}` for the initial residual, same shape as ``x``.
        batch: ``(B * N,)``; marks ``edge_index`` as offset over the flattened nodes of batched ``x``.
        options: ``concat``, ``alpha``, ``negative_slope``, ``dropout``, ``normalize``,
            ``add_self_loops`` and ``improved`` (:class:`AttentionGCNOptions`).
        training: Apply dropout.
        return_attention_weights: Also return ``(edge_index, attention)`` (self-loops included; before dropout).

    Returns:
        The output features, and with ``return_attention_weights`` ``(edge_index, attention)``:
        attention ``(E', K)``, or ``(B, E', K)`` for a shared graph.

    Shape:
        - x, x0: :math:`(N, F_{in})` or :math:`(B, N, F_{in})`
        - edge_index: :math:`(2, E)`
        - output: :math:`(N, K F_{out})` (concat) or :math:`(N, F_{out})`, batched :math:`(B, N, \cdot)`

    Example:
        >>> from graphvision.functional import AttentionGCNOptions, AttentionWeights, attention_gcn_conv
        >>> x = torch.randn(4, 8)
        >>> edge_index = torch.tensor([[0, 1, 2], [1, 2, 3]])
        >>> weights = AttentionWeights(torch.randn(2 * 16, 8), torch.randn(2, 16), torch.randn(2, 16))
        >>> out, (ei, attn) = attention_gcn_conv(
        ...     x, edge_index, weights, x0=x, options=AttentionGCNOptions(alpha=0.1), return_attention_weights=True)
        >>> out.shape, ei.shape, attn.shape
        (torch.Size([4, 32]), torch.Size([2, 7]), torch.Size([7, 2]))
    """
    o = options
    x, weights, dropout = _check_attention(x, weights, o.concat, o.dropout)
    alpha = _check_unit(o.alpha, "alpha", closed=True)
    if weights.weight_edge is not None or weights.att_edge is not None:
        raise ValueError("attention_gcn_conv takes no edge projection (got 'weight_edge'/'att_edge'); use gat_conv")
    if x0 is not None and check_x(x0, "x0").shape != x.shape:
        raise ValueError(f"Expected 'x0' of the same shape as 'x' {tuple(x.shape)} (got {tuple(x0.shape)})")
    x, g = resolve_graph(x, edge_index, edge_weight, batch)
    g = prepare_attention_graph(g, o.normalize, o.add_self_loops, o.improved, 2.0 if o.improved else 1.0, x.dtype)
    h, score_src, score_dst = _project_scores(x, weights)
    out, attn = attend(
        g, h, score_src, score_dst, g.edge_weight, o.negative_slope, dropout, training, return_attention_weights
    )
    if x0 is not None and alpha != 0.0:
        out = (1.0 - alpha) * out + alpha * _project(x0.reshape(x.shape), weights)
    return _finish(out, attn, x, g, weights, o.concat, return_attention_weights)


# --------------------------------------------------------------------------------------------
# GCNII
# --------------------------------------------------------------------------------------------


def gcn2_conv(
    x: Tensor,
    x0: Tensor,
    edge_index: GraphLike,
    weight1: Tensor,
    weight2: Tensor | None = None,
    edge_weight: WeightLike = None,
    *,
    batch: Tensor | None = None,
    alpha: float = 0.1,
    beta: float = 1.0,
    norm: GCNNorm = GCNNorm(),
) -> Tensor:
    r"""GCNII convolution of Chen et al., `"Simple and Deep Graph Convolutional Networks"
    <https://arxiv.org/abs/2007.02133>`_: initial residual and identity mapping.

    .. math::
        \mathbf{X}' = \Big((1 - \alpha) \hat{\mathbf{P}} \mathbf{X} + \alpha \mathbf{X}^{(0)}\Big)
        \Big((1 - \beta) \mathbf{I} + \beta \mathbf{\Theta}\Big)

    with :math:`\hat{\mathbf{P}} = \hat{D}^{-1/2}\hat{A}\hat{D}^{-1/2}`. With ``weight2`` the
    two terms get separate weights:
    :math:`(1-\alpha)\hat{\mathbf{P}}\mathbf{X}((1-\beta)\mathbf{I} + \beta\mathbf{\Theta}_1) +
    \alpha\mathbf{X}^{(0)}((1-\beta)\mathbf{I} + \beta\mathbf{\Theta}_2)`. The paper sets
    :math:`\beta_\ell = \log(\theta / \ell + 1)` for layer :math:`\ell`.

    Args:
        x: Node features (``(N, F)``, ``(B, N, F)`` shared or per-sample graph).
        x0: Initial features, same shape as ``x``.
        edge_index: ``(2, E)`` integer tensor, ``GraphStructure``, or a list of ``B`` per-sample ones.
        weight1: ``(F, F)`` :math:`\mathbf{\Theta}` (applied as ``x @ weight1``, as PyG).
        weight2: Optional ``(F, F)`` separate weight for the initial-residual term.
        edge_weight: Optional ``(E,)``.
        batch: ``(B * N,)``; marks ``edge_index`` as offset over the flattened nodes of batched ``x``.
        alpha: Initial-residual strength :math:`\alpha`.
        beta: Identity-mapping strength :math:`\beta`.
        norm: How the adjacency :math:`\hat{\mathbf{P}}` is weighted (:class:`GCNNorm`; PyG's
            ``GCN2Conv`` has ``normalize`` and ``add_self_loops``).

    Returns:
        The output features, in the layout of ``x``.

    Shape:
        - x, x0: :math:`(N, F)` or :math:`(B, N, F)`
        - weight1, weight2: :math:`(F, F)`
        - output: same as ``x``

    Example:
        >>> x = torch.randn(4, 8)
        >>> edge_index = torch.tensor([[0, 1, 2], [1, 2, 3]])
        >>> graphvision.functional.gcn2_conv(x, x, edge_index, torch.randn(8, 8), alpha=0.1, beta=0.5).shape
        torch.Size([4, 8])
    """
    x = check_x(x)
    check_x(x0, "x0")
    if x0.shape != x.shape:
        raise ValueError(f"Expected 'x0' of the same shape as 'x' {tuple(x.shape)} (got {tuple(x0.shape)})")
    c = x.size(-1)
    _check_param(weight1, (c, c), "weight1", x)
    if weight2 is not None:
        _check_param(weight2, (c, c), "weight2", x)
    x, g = resolve_graph(x, edge_index, edge_weight, batch)
    x0 = x0.reshape(x.shape)
    w, loop = _gcn_weights(g, norm, x)
    h = _gcn_propagate(g, w, loop, x) * (1.0 - alpha)
    h0 = alpha * x0
    if weight2 is None:
        s = h + h0
        out = (1.0 - beta) * s + beta * (s @ weight1)
    else:
        out = (1.0 - beta) * h + beta * (h @ weight1) + (1.0 - beta) * h0 + beta * (h0 @ weight2)
    return restore(out, g)


# --------------------------------------------------------------------------------------------
# ECC / NNConv
# --------------------------------------------------------------------------------------------


def edge_conditioned_conv(
    x: Tensor,
    edge_index: GraphLike,
    edge_kernels: Tensor,
    root_weight: Tensor | None = None,
    bias: Tensor | None = None,
    *,
    batch: Tensor | None = None,
    aggr: str = "sum",
) -> Tensor:
    r"""Edge-conditioned convolution (ECC) of Simonovsky & Komodakis, `"Dynamic Edge-Conditioned
    Filters in Convolutional Neural Networks on Graphs" <https://arxiv.org/abs/1704.02901>`_
    (PyG's ``NNConv``), given the per-edge weight matrices.

    .. math::
        \mathbf{x}'_i = \mathbf{\Theta}_r \mathbf{x}_i + \mathop{\mathrm{aggr}}_{j \in \mathcal{N}(i)}
        \mathbf{x}_j^\top \mathbf{W}_{ji} + \mathbf{b}, \qquad
        \mathbf{W}_{ji} = h_{\mathbf{\Theta}}(\mathbf{e}_{ji}) \in \mathbb{R}^{F_{in} \times F_{out}}

    The edge network :math:`h_\Theta` runs in :class:`graphvision.nn.EdgeConditionedConv`; this
    function takes its output. The per-edge matrices are inherently :math:`E F_{in} F_{out}`
    numbers; messages :math:`(E, F_{out})` are reduced with :func:`graphvision.ops.scatter`.
    With a shared graph the matrices are shared by the ``B`` samples (one einsum, no copies).

    Args:
        x: Node features (``(N, F_in)``, ``(B, N, F_in)`` shared or per-sample graph).
        edge_index: ``(2, E)`` integer tensor, ``GraphStructure``, or a list of ``B`` per-sample ones.
        edge_kernels: ``(E, F_in, F_out)`` per-edge matrices (for a list of graphs: the
            concatenation over the samples, ``(sum E_b, F_in, F_out)``).
        root_weight: Optional ``(F_out, F_in)`` :math:`\mathbf{\Theta}_r`.
        bias: Optional ``(F_out,)``.
        batch: ``(B * N,)``; marks ``edge_index`` as offset over the flattened nodes of batched ``x``.
        aggr: ``"sum"`` (alias ``"add"``), ``"mean"`` or ``"max"`` (nodes without edges get 0).

    Returns:
        The output features, in the layout of ``x``.

    Shape:
        - x: :math:`(N, F_{in})` or :math:`(B, N, F_{in})`
        - edge_kernels: :math:`(E, F_{in}, F_{out})`
        - output: :math:`(N, F_{out})` or :math:`(B, N, F_{out})`

    Example:
        >>> x = torch.randn(4, 8)
        >>> edge_index = torch.tensor([[0, 1, 2], [1, 2, 3]])
        >>> graphvision.functional.edge_conditioned_conv(x, edge_index, torch.randn(3, 8, 16)).shape
        torch.Size([4, 16])
    """
    x = check_x(x)
    aggr = "sum" if aggr == "add" else aggr
    check_choice(aggr, AGGREGATIONS, "aggr")
    check_tensor(edge_kernels, "edge_kernels")
    if edge_kernels.dim() != 3 or edge_kernels.size(1) != x.size(-1):
        raise ValueError(
            f"Expected 'edge_kernels' of shape (E, F_in={x.size(-1)}, F_out) (got {tuple(edge_kernels.shape)})"
        )
    if edge_kernels.dtype != x.dtype:
        raise TypeError(f"Expected 'edge_kernels' of the same dtype as 'x' ({x.dtype}) (got {edge_kernels.dtype})")
    f_out = edge_kernels.size(2)
    if root_weight is not None:
        _check_param(root_weight, (f_out, x.size(-1)), "root_weight", x)
    if bias is not None:
        _check_param(bias, (f_out,), "bias", x)
    x, g = resolve_graph(x, edge_index, None, batch)
    ei = g.edge_index
    if edge_kernels.size(0) != ei.size(1):
        raise ValueError(
            f"Expected 'edge_kernels' with one matrix per edge, E={ei.size(1)} (got {tuple(edge_kernels.shape)})"
        )
    src, dst = ei[0], ei[1]
    if g.shared:
        bsz, n, _ = x.shape
        msg = torch.einsum("bei,eio->ebo", x.index_select(1, src), edge_kernels)  # (E, B, F_out)
        out = scatter(msg.reshape(msg.size(0), bsz * f_out), dst, n, aggr).view(n, bsz, f_out).permute(1, 0, 2)
    else:
        msg = torch.bmm(x.index_select(0, src).unsqueeze(1), edge_kernels).squeeze(1)  # (E, F_out)
        out = scatter(msg, dst, g.num_nodes, aggr)
    if root_weight is not None:
        out = out + F.linear(x, root_weight)
    if bias is not None:
        out = out + bias
    return restore(out, g)
