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

import torch
import torch.nn.functional as F  # noqa: N812
from torch import Tensor

from graphvision._checks import check_choice, check_edge_index, check_tensor
from graphvision.ops._api import as_structure
from graphvision.structure import GraphStructure
from graphvision.typing import Adjacency
from graphvision.functional._graph_input import GraphInput, GraphLike, WeightLike, check_x, resolve_graph, restore
from graphvision.functional._propagate import FILL_REDUCES  # noqa: F401  (re-used by the modules)
from graphvision.functional._propagate import attend, propagate, scatter, with_self_loops, with_self_loops_attrs

__all__ = [
    "gcn_norm",
    "gcn_conv",
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


def _check_prob(p: float, name: str) -> float:
    if not isinstance(p, (int, float)) or isinstance(p, bool) or not 0.0 <= float(p) < 1.0:
        raise ValueError(f"Expected '{name}' in [0, 1) (got {p!r})")
    return float(p)


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


def _gcn_weights(
    g: GraphInput,
    normalize: bool,
    add_self_loops: bool,
    improved: bool,
    self_loop_weight: Tensor | float | None,
    x: Tensor,
) -> tuple[Tensor | None, Tensor | None]:
    if normalize:
        if self_loop_weight is not None:
            raise ValueError("'self_loop_weight' is only used with normalize=False (normalisation computes it)")
        return _gcn_norm_of(g, add_self_loops, improved, x.dtype)
    loop = _loop_weight(self_loop_weight, g, x)
    if loop is None and add_self_loops:
        loop = _loop_weight(2.0 if improved else 1.0, g, x)
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
    normalize: bool = True,
    add_self_loops: bool = True,
    improved: bool = False,
    self_loop_weight: Tensor | float | None = None,
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
        normalize: Apply the symmetric normalisation (:func:`gcn_norm`).
        add_self_loops: Add self-loops (weight 1, or 2 with ``improved``).
        improved: :math:`\hat{A} = A + 2I`.
        self_loop_weight: With ``normalize=False``: the weight of each node's self-loop term, a
            float or an ``(N,)`` tensor (a cached normalisation passes :math:`\hat{D}^{-1}` here).

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
    w, loop = _gcn_weights(g, normalize, add_self_loops, improved, self_loop_weight, x)
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


def _attention_core(
    x: Tensor,
    edge_index: GraphLike,
    weight: Tensor,
    att_src: Tensor,
    att_dst: Tensor,
    bias: Tensor | None,
    edge_weight: WeightLike,
    batch: Tensor | None,
    *,
    x0: Tensor | None,
    alpha: float,
    residual_weight: Tensor | None,
    concat: bool,
    negative_slope: float,
    dropout: float,
    normalize: bool,
    add_self_loops: bool,
    improved: bool,
    fill_value: float | Tensor | str,
    training: bool,
    return_attention_weights: bool,
    edge_attr: Tensor | None = None,
    weight_edge: Tensor | None = None,
    att_edge: Tensor | None = None,
) -> Tensor | tuple[Tensor, tuple[Tensor, Tensor]]:
    x = check_x(x)
    dropout = _check_prob(dropout, "dropout")
    check_tensor(att_src, "att_src")
    if att_src.dim() == 3:
        att_src, att_dst = att_src.squeeze(0), check_tensor(att_dst, "att_dst").squeeze(0)
    if att_src.dim() != 2:
        raise ValueError(f"Expected 'att_src' of shape (K, F_out) or (1, K, F_out) (got {tuple(att_src.shape)})")
    k, f_out = att_src.shape
    _check_param(att_src, (k, f_out), "att_src", x)
    _check_param(att_dst, (k, f_out), "att_dst", x)
    _check_param(weight, (k * f_out, x.size(-1)), "weight", x)
    out_dim = k * f_out if concat else f_out
    if bias is not None:
        _check_param(bias, (out_dim,), "bias", x)
    if residual_weight is not None:
        _check_param(residual_weight, (out_dim, x.size(-1)), "residual_weight", x)
    if x0 is not None:
        check_x(x0, "x0")
        if x0.shape != x.shape:
            raise ValueError(f"Expected 'x0' of the same shape as 'x' {tuple(x.shape)} (got {tuple(x0.shape)})")
    x, g = resolve_graph(x, edge_index, edge_weight, batch)
    ea: Tensor | None = None
    if edge_attr is not None:
        if weight_edge is None or att_edge is None:
            raise ValueError("'edge_attr' was given but no edge projection 'weight_edge'/'att_edge' (set edge_dim)")
        graph = g.graph
        assert isinstance(graph, GraphStructure)
        ea = check_tensor(edge_attr, "edge_attr")
        ea = ea.view(-1, 1) if ea.dim() == 1 else ea
        if ea.dim() != 2 or ea.size(0) != graph.num_edges:
            raise ValueError(f"Expected 'edge_attr' of shape (E, D) with E={graph.num_edges} (got {tuple(edge_attr.shape)})")
        _check_param(ea, (graph.num_edges, "D"), "edge_attr", x)
        _check_param(weight_edge, (k * f_out, ea.size(1)), "weight_edge", x)
        att_edge = att_edge.squeeze(0) if att_edge.dim() == 3 else att_edge
        _check_param(att_edge, (k, f_out), "att_edge", x)

    h = F.linear(x, weight).unflatten(-1, (k, f_out))  # (..., N, K, F)
    a_src = (h * att_src).sum(-1)
    a_dst = (h * att_dst).sum(-1)
    a_edge: Tensor | None = None
    if not normalize and (ea is not None or not isinstance(fill_value, (int, float))):
        if add_self_loops:  # PyG's add_self_loops with a reduction or tensor fill (edge weights and features)
            w0 = g.edge_weight
            g, (w_l, ea) = with_self_loops_attrs(g, [w0, ea], fill_value)
            g = GraphInput(g.graph, w_l, g.num_nodes, g.batch_size, g.shared)
    else:
        g = prepare_attention_graph(g, normalize, add_self_loops, improved, float(fill_value), x.dtype)  # type: ignore[arg-type]
    if ea is not None:
        assert weight_edge is not None and att_edge is not None
        a_edge = (F.linear(ea, weight_edge).view(-1, k, f_out) * att_edge).sum(-1)  # (E', K)
    out, attn = attend(
        g, h, a_src, a_dst, g.edge_weight, negative_slope, dropout, training, return_attention_weights, score_edge=a_edge
    )
    if x0 is not None and alpha != 0.0:
        out = (1.0 - alpha) * out + alpha * F.linear(x0.reshape(x.shape), weight).unflatten(-1, (k, f_out))
    out = out.flatten(-2) if concat else out.mean(-2)
    if residual_weight is not None:
        out = out + F.linear(x, residual_weight)
    if bias is not None:
        out = out + bias
    out = restore(out, g)
    if return_attention_weights:
        return out, (g.edge_index, attn)  # type: ignore[return-value]
    return out


def gat_conv(
    x: Tensor,
    edge_index: GraphLike,
    weight: Tensor,
    att_src: Tensor,
    att_dst: Tensor,
    bias: Tensor | None = None,
    edge_weight: WeightLike = None,
    *,
    batch: Tensor | None = None,
    concat: bool = True,
    negative_slope: float = 0.2,
    dropout: float = 0.0,
    add_self_loops: bool = True,
    fill_value: float | Tensor | str = "mean",
    residual_weight: Tensor | None = None,
    training: bool = True,
    return_attention_weights: bool = False,
    edge_attr: Tensor | None = None,
    weight_edge: Tensor | None = None,
    att_edge: Tensor | None = None,
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
    averaged. With ``add_self_loops`` the graph follows PyG: existing self-loops are removed and
    one loop per node is added (built once per structure from its CSR, no sort; under
    ``torch.compile`` the removed loops go to a padding row so that shapes stay static).

    Args:
        x: Node features (``(N, F_in)``, ``(B, N, F_in)`` shared or per-sample graph).
        edge_index: ``(2, E)`` integer tensor, ``GraphStructure``, or a list of ``B`` per-sample ones.
        weight: ``(K * F_out, F_in)`` projection :math:`\mathbf{\Theta}`.
        att_src: ``(K, F_out)`` or ``(1, K, F_out)`` source attention vector :math:`\mathbf{a}_s`.
        att_dst: Same shape, target attention vector :math:`\mathbf{a}_t`.
        bias: Optional ``(K * F_out,)`` (concat) or ``(F_out,)``.
        edge_weight: Optional ``(E,)`` non-negative weights multiplying the attention.
        batch: ``(B * N,)``; marks ``edge_index`` as offset over the flattened nodes of batched ``x``.
        concat: Concatenate the heads, else average them.
        negative_slope: LeakyReLU slope of the scores.
        dropout: Dropout probability on the attention coefficients (training only; uses the
            unfused path).
        add_self_loops: Append self-loops.
        fill_value: Value of the appended self-loops' ``edge_weight`` and ``edge_attr``: a float,
            a tensor, or ``"add"``, ``"mean"``, ``"max"``, ``"min"`` of the node's incoming
            (non-loop) values, as PyG's ``add_self_loops`` (nodes without any get 0).
        residual_weight: Optional ``(out, F_in)`` skip projection added to the output.
        training: Apply dropout.
        return_attention_weights: Also return ``(edge_index, attention)`` with the self-loops included (the
            softmax coefficients before dropout, unlike PyG which returns them after).
        edge_attr: Optional ``(E, D)`` edge features entering the score as
            :math:`\mathbf{a}^{k\top}_{e}\mathbf{\Theta}^{k}_{e}\mathbf{e}_{ji}` (PyG's ``edge_dim``);
            with them the softmax runs unfused (:func:`graphvision.ops.segment_softmax` and a
            per-head :func:`graphvision.ops.spmm`).
        weight_edge: ``(K * F_out, D)`` :math:`\mathbf{\Theta}_e` (PyG ``lin_edge.weight``).
        att_edge: ``(K, F_out)`` or ``(1, K, F_out)`` :math:`\mathbf{a}_e` (PyG ``att_edge``).

    Returns:
        The output features, and with ``return_attention_weights`` the tuple
        ``(edge_index, attention)``: attention ``(E', K)``, or ``(B, E', K)`` for a shared graph.

    Shape:
        - x: :math:`(N, F_{in})` or :math:`(B, N, F_{in})`
        - edge_index: :math:`(2, E)`
        - output: :math:`(N, K F_{out})` (concat) or :math:`(N, F_{out})`, batched :math:`(B, N, \cdot)`

    Example:
        >>> x = torch.randn(4, 8)
        >>> edge_index = torch.tensor([[0, 1, 2], [1, 2, 3]])
        >>> w, a_s, a_d = torch.randn(2 * 16, 8), torch.randn(2, 16), torch.randn(2, 16)
        >>> graphvision.functional.gat_conv(x, edge_index, w, a_s, a_d).shape
        torch.Size([4, 32])
    """
    return _attention_core(
        x,
        edge_index,
        weight,
        att_src,
        att_dst,
        bias,
        edge_weight,
        batch,
        x0=None,
        alpha=0.0,
        residual_weight=residual_weight,
        concat=concat,
        negative_slope=negative_slope,
        dropout=dropout,
        normalize=False,
        add_self_loops=add_self_loops,
        improved=False,
        fill_value=fill_value,
        training=training,
        return_attention_weights=return_attention_weights,
        edge_attr=edge_attr,
        weight_edge=weight_edge,
        att_edge=att_edge,
    )


def attention_gcn_conv(
    x: Tensor,
    edge_index: GraphLike,
    weight: Tensor,
    att_src: Tensor,
    att_dst: Tensor,
    bias: Tensor | None = None,
    edge_weight: WeightLike = None,
    *,
    batch: Tensor | None = None,
    x0: Tensor | None = None,
    alpha: float = 0.0,
    concat: bool = True,
    negative_slope: float = 0.2,
    dropout: float = 0.0,
    normalize: bool = True,
    add_self_loops: bool = True,
    improved: bool = False,
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
    normalisation :math:`\hat{D}^{-1/2}\hat{A}\hat{D}^{-1/2}` (``normalize=True``) and
    :math:`\beta` = ``alpha`` is the initial-residual strength of GCNII
    (`Chen et al. <https://arxiv.org/abs/2007.02133>`_) against over-smoothing in deep stacks
    (used when ``x0`` is given). Heads are concatenated or averaged, then the bias is added.
    The aggregation runs in one fused :func:`graphvision.ops.attention_aggregate` call.

    Self-loops are appended to every node with a static shape. A node that already has a
    self-loop keeps it, and with ``normalize=True`` its appended loop gets weight 0, which still
    takes part in the attention softmax; for graphs that carry their own self-loops (e.g. a
    mutual-information adjacency built with self-loops) pass ``add_self_loops=False``.

    Args:
        x: Node features (``(N, F_in)``, ``(B, N, F_in)`` shared or per-sample graph).
        edge_index: ``(2, E)`` integer tensor, ``GraphStructure``, or a list of ``B`` per-sample ones.
        weight: ``(K * F_out, F_in)`` projection.
        att_src: ``(K, F_out)`` or ``(1, K, F_out)``.
        att_dst: Same shape as ``att_src``.
        bias: Optional ``(K * F_out,)`` (concat) or ``(F_out,)``.
        edge_weight: Optional ``(E,)`` structural / MI weights (default 1).
        batch: ``(B * N,)``; marks ``edge_index`` as offset over the flattened nodes of batched ``x``.
        x0: Initial features :math:`\mathbf{x}^{(0)}` for the initial residual, same shape as ``x``.
        alpha: Initial-residual strength :math:`\beta \in [0, 1]`.
        concat: Concatenate the heads, else average them.
        negative_slope: LeakyReLU slope of the scores.
        dropout: Dropout on the attention coefficients (training only; unfused path).
        normalize: GCN-normalise the edge weights (with self-loops when ``add_self_loops``).
        add_self_loops: Append self-loops (weight 1, or 2 with ``improved``).
        improved: Self-loops of weight 2 in the normalisation.
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
        >>> x = torch.randn(4, 8)
        >>> edge_index = torch.tensor([[0, 1, 2], [1, 2, 3]])
        >>> w, a_s, a_d = torch.randn(2 * 16, 8), torch.randn(2, 16), torch.randn(2, 16)
        >>> out, (ei, attn) = graphvision.functional.attention_gcn_conv(
        ...     x, edge_index, w, a_s, a_d, x0=x, alpha=0.1, return_attention_weights=True)
        >>> out.shape, ei.shape, attn.shape
        (torch.Size([4, 32]), torch.Size([2, 7]), torch.Size([7, 2]))
    """
    if not isinstance(alpha, (int, float)) or isinstance(alpha, bool) or not 0.0 <= float(alpha) <= 1.0:
        raise ValueError(f"Expected 'alpha' in [0, 1] (got {alpha!r})")
    return _attention_core(
        x,
        edge_index,
        weight,
        att_src,
        att_dst,
        bias,
        edge_weight,
        batch,
        x0=x0,
        alpha=float(alpha),
        residual_weight=None,
        concat=concat,
        negative_slope=negative_slope,
        dropout=dropout,
        normalize=normalize,
        add_self_loops=add_self_loops,
        improved=improved,
        fill_value=2.0 if improved else 1.0,
        training=training,
        return_attention_weights=return_attention_weights,
    )


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
    normalize: bool = True,
    add_self_loops: bool = True,
    self_loop_weight: Tensor | float | None = None,
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
        normalize: GCN-normalise the adjacency.
        add_self_loops: Add self-loops.
        self_loop_weight: With ``normalize=False``: weight of each node's self-loop term.

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
    w, loop = _gcn_weights(g, normalize, add_self_loops, False, self_loop_weight, x)
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
