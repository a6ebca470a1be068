"""Private message-passing helpers shared by the convolutions and pooling layers.

- graph input handling: ``(N, F)`` with one graph, ``(B, N, F)`` with one shared graph (the batch is
  folded into the feature / head axis, edges are never copied per sample), ``(B, N, F)`` with a
  per-sample graph (a list of ``edge_index``, or an offset ``edge_index`` over the ``B * N``
  flattened nodes marked by a ``batch`` vector);
- wrappers over :mod:`graphvision.ops` that fold the batch axis of a shared graph into the
  feature axis (``spmm``) or the head axis (``attention_aggregate``).

Nothing here is public.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Union

import torch
import torch.nn.functional as F  # noqa: N812
from torch import Tensor

from graphvision import ops as _ops
from graphvision import _checks
from graphvision._checks import check_floating, check_same_device, check_tensor
from graphvision.ops._functional import as_structure, scatter_unchecked
from graphvision.structure import GraphStructure
from graphvision.typing import Adjacency

#: The graph argument of the convolutions: one graph (``(2, E)`` tensor or ``GraphStructure``) or a
#: sequence of ``B`` per-sample graphs.
GraphLike = Union[Adjacency, Sequence[Adjacency]]
#: Edge weights: ``(E,)``, one per per-sample graph, or ``None``.
WeightLike = Union[Tensor, Sequence[Tensor], None]

__all__: list[str] = []


# --------------------------------------------------------------------------------------------
# ops access
# --------------------------------------------------------------------------------------------


def _edge_index_of(graph: object) -> Tensor:
    """The raw ``(2, E)`` edge index of an ``edge_index`` tensor or a ``GraphStructure``."""
    if isinstance(graph, Tensor):
        return graph
    ei = getattr(graph, "edge_index", None)
    if not isinstance(ei, Tensor):
        raise TypeError(
            f"Expected 'edge_index' to be a (2, E) tensor or a GraphStructure (got {type(graph).__name__})"
        )
    return ei


def scatter(src: Tensor, index: Tensor, dim_size: int, reduce: str = "sum") -> Tensor:
    """Internal scatter over an index the caller validated (no second check, no host read)."""
    return scatter_unchecked(src, index, dim_size, reduce)


def segment_softmax(scores: Tensor, index: Tensor, num_segments: int) -> Tensor:
    return _ops.segment_softmax(scores, index, num_segments)


def spmm(graph: object, weight: Tensor | None, x: Tensor, num_nodes: int) -> Tensor:
    """``out[i] = sum_{j->i} w * x[j]`` for ``x`` of shape ``(N, F)`` or ``(N, K, F)``."""
    return _ops.spmm(graph, weight, x, num_nodes)


def attention_aggregate(
    x: Tensor,
    alpha_src: Tensor,
    alpha_dst: Tensor,
    graph: object,
    edge_weight: Tensor | None,
    negative_slope: float,
    num_nodes: int,
    return_attention: bool,
) -> tuple[Tensor, Tensor | None]:
    res = _ops.attention_aggregate(
        x,
        alpha_src,
        alpha_dst,
        graph,
        edge_weight=edge_weight,
        negative_slope=negative_slope,
        num_nodes=num_nodes,
        return_attention=return_attention,
    )
    if return_attention:
        return res[0], res[1]
    return res, None


def attention_pool(x: Tensor, gate: Tensor, batch: Tensor, num_graphs: int) -> tuple[Tensor, Tensor]:
    """Softmax of ``gate`` (N, K) within each graph and the weighted sums -> ``((B, K, F), (N, K))``."""
    out, weights = _ops.attention_pool(x, gate, batch, num_graphs, return_weights=True)
    return out, weights


# --------------------------------------------------------------------------------------------
# graph input handling
# --------------------------------------------------------------------------------------------


@dataclass
class GraphInput:
    """A graph resolved against its node features.

    Attributes:
        graph: What the ops get: a ``GraphStructure`` (the caller's, or a trusted one wrapped
            around a raw ``edge_index`` after its one validation).
        edge_weight: ``(E,)`` or ``None``.
        num_nodes: Number of nodes the ops see (``N``, or ``B * N`` for per-sample graphs).
        batch_size: ``B`` when ``x`` is ``(B, N, F)`` (shared or per-sample), else ``None``.
        shared: ``True`` when one graph over ``N`` nodes is shared by the ``B`` samples.
    """

    graph: object
    edge_weight: Tensor | None
    num_nodes: int
    batch_size: int | None
    shared: bool

    @property
    def edge_index(self) -> Tensor:
        return _edge_index_of(self.graph)


def check_x(x: object, name: str = "x", *, features: int | None = None, what: str = "in_channels") -> Tensor:
    """``x`` must be a floating ``(N, F)`` or ``(B, N, F)`` tensor (with ``F == features``)."""
    x = check_tensor(x, name)
    if x.dim() not in (2, 3):
        raise ValueError(f"Expected '{name}' of shape (N, F) or (B, N, F) (got {tuple(x.shape)})")
    check_floating(x, name)
    if features is not None and x.size(-1) != features:
        raise ValueError(
            f"Expected '{name}' with {what}={features} features in its last dimension (got {tuple(x.shape)})"
        )
    return x


def _check_weight(edge_weight: object, num_edges: int, x: Tensor, name: str = "edge_weight") -> Tensor:
    w = check_tensor(edge_weight, name)
    if w.dim() != 1 or w.size(0) != num_edges:
        raise ValueError(f"Expected '{name}' of shape (E,) with E={num_edges} (got {tuple(w.shape)})")
    check_floating(w, name)
    if w.dtype != x.dtype:
        raise TypeError(f"Expected '{name}' of the same dtype as 'x' ({x.dtype}) (got {w.dtype})")
    check_same_device("x", x, name, w)
    return w


def _check_structure_size(graph: object, num_nodes: int, name: str = "edge_index") -> None:
    if isinstance(graph, GraphStructure) and (graph.num_nodes != num_nodes or graph.num_src_nodes != num_nodes):
        raise ValueError(
            f"Expected the GraphStructure '{name}' over {num_nodes} nodes to match 'x' "
            f"(got num_nodes={graph.num_nodes}, num_src_nodes={graph.num_src_nodes})"
        )


def _graph_of(edge_index: object, num_nodes: int, x: Tensor, name: str = "edge_index") -> GraphStructure:
    """The structure of one graph over ``num_nodes`` nodes: the caller's, or a raw edge index validated once."""
    if isinstance(edge_index, GraphStructure):
        _check_structure_size(edge_index, num_nodes, name)
        check_same_device("x", x, name, edge_index.edge_index)
        return edge_index
    carried = getattr(edge_index, "graph", None)
    if isinstance(carried, GraphStructure) and isinstance(edge_index, Tensor):
        # a converter's edge index (knn_graph, radius_graph) carrying its trusted structure:
        # used when it still describes this very memory (same pointer, shape and strides)
        ce = carried.edge_index
        if ce.data_ptr() == edge_index.data_ptr() and ce.shape == edge_index.shape and ce.stride() == edge_index.stride():
            return _graph_of(carried, num_nodes, x, name)
    ei = _edge_index_of(edge_index)
    check_same_device("x", x, name, ei)
    return as_structure(ei, num_nodes, num_nodes)


def _per_sample_graphs(x: Tensor, edge_index: Sequence[Adjacency], edge_weight: WeightLike) -> tuple[Tensor, GraphInput]:
    """Per-sample graphs given as a list: one offset edge index over the ``B * N`` nodes, validated once."""
    if x.dim() != 3:
        raise ValueError(
            f"A list of per-sample 'edge_index' needs batched 'x' of shape (B, N, F) (got {tuple(x.shape)})"
        )
    bsz, n = x.size(0), x.size(1)
    if len(edge_index) != bsz:
        raise ValueError(f"Expected a list of B={bsz} 'edge_index' tensors, one per sample (got {len(edge_index)})")
    eis = []
    for i, e in enumerate(edge_index):
        _check_structure_size(e, n, f"edge_index[{i}]")
        t = _edge_index_of(e)
        _checks.check_edge_index(t, None, name=f"edge_index[{i}]")
        check_same_device("x", x, f"edge_index[{i}]", t)
        eis.append(t)
    offsets = [e.long() + i * n for i, e in enumerate(eis)]
    ei = torch.cat(offsets, dim=1) if offsets else x.new_zeros((2, 0), dtype=torch.long)
    nonempty = [(i, e) for i, e in enumerate(eis) if e.numel() > 0]
    if nonempty and _checks.sync_checks_enabled():
        stats = _checks.host_read(torch.stack([torch.stack(list(torch.aminmax(e))).long() for _, e in nonempty]))
        for (i, _), (lo, hi) in zip(nonempty, stats):
            if lo < 0 or hi >= n:
                raise IndexError(
                    f"Found indices in 'edge_index[{i}]' outside of [0, {n}) (got min {lo}, max {hi}; num_nodes={n})"
                )
    w: Tensor | None = None
    if edge_weight is not None:
        if not isinstance(edge_weight, (list, tuple)) or len(edge_weight) != bsz:
            raise ValueError(
                "With a list of per-sample 'edge_index', expected 'edge_weight' to be a list of "
                f"B={bsz} tensors (got {type(edge_weight).__name__})"
            )
        ws = [_check_weight(wi, e.size(1), x, f"edge_weight[{i}]") for i, (wi, e) in enumerate(zip(edge_weight, eis))]
        w = torch.cat(ws)
    graph = GraphStructure._trusted(ei, bsz * n, bsz * n)
    return x.reshape(bsz * n, x.size(2)), GraphInput(graph, w, bsz * n, bsz, False)


def resolve_graph(
    x: Tensor,
    edge_index: GraphLike,
    edge_weight: WeightLike = None,
    batch: Tensor | None = None,
) -> tuple[Tensor, GraphInput]:
    """Validate a graph against ``x`` (once) and bring ``x`` into the layout the ops need.

    Returns ``(x, graph)``: ``x`` unchanged for one graph or a shared graph, flattened to
    ``(B * N, F)`` for per-sample graphs (undo with :func:`restore`). ``graph.graph`` is always
    a ``GraphStructure``: the caller's (nothing re-checked or re-derived), or one wrapped around
    a raw ``edge_index`` after one validation (at most one host read).
    """
    if isinstance(edge_index, (list, tuple)):
        return _per_sample_graphs(x, edge_index, edge_weight)
    if batch is not None:
        check_tensor(batch, "batch")
        if x.dim() == 3:
            bsz, n = x.size(0), x.size(1)
            if batch.dim() != 1 or batch.size(0) != bsz * n:
                raise ValueError(
                    f"Expected 'batch' of shape (B * N,) = ({bsz * n},) for batched 'x' of shape "
                    f"{tuple(x.shape)} with per-sample graphs (got {tuple(batch.shape)})"
                )
            graph = _graph_of(edge_index, bsz * n, x)
            w = None if edge_weight is None else _check_weight(edge_weight, graph.num_edges, x)
            return x.reshape(bsz * n, x.size(2)), GraphInput(graph, w, bsz * n, bsz, False)
        if batch.dim() != 1 or batch.size(0) != x.size(0):
            raise ValueError(f"Expected 'batch' of shape (N,) = ({x.size(0)},) (got {tuple(batch.shape)})")
    n = x.size(-2)
    graph = _graph_of(edge_index, n, x)
    w = None if edge_weight is None else _check_weight(edge_weight, graph.num_edges, x)
    if x.dim() == 3:
        return x, GraphInput(graph, w, n, x.size(0), True)
    return x, GraphInput(graph, w, n, None, False)


def restore(out: Tensor, g: GraphInput) -> Tensor:
    """Undo the flattening of per-sample graphs: ``(B * N, ...)`` -> ``(B, N, ...)``.

    A shared graph folds the batch into the feature axis, which leaves the output in ``(N, B, F)``
    memory order; it is returned contiguous so that callers can ``view`` it.
    """
    if g.batch_size is not None and not g.shared:
        return out.view(g.batch_size, -1, *out.shape[1:])
    return out.contiguous()


def propagate(g: GraphInput, weight: Tensor | None, h: Tensor) -> Tensor:
    """``out[..., i, :] = sum_{j->i} w * h[..., j, :]``; ``h`` is ``(N, F)`` or, shared, ``(B, N, F)``."""
    if g.shared:
        bsz, n, f = h.shape
        hf = h.permute(1, 0, 2).reshape(n, bsz * f)
        out = spmm(g.graph, weight, hf, g.num_nodes)
        return out.view(n, bsz, f).permute(1, 0, 2)
    return spmm(g.graph, weight, h, g.num_nodes)


def attend(
    g: GraphInput,
    h: Tensor,
    alpha_src: Tensor,
    alpha_dst: Tensor,
    weight: Tensor | None,
    negative_slope: float,
    dropout: float,
    training: bool,
    return_attention: bool,
    alpha_edge: Tensor | None = None,
) -> tuple[Tensor, Tensor | None]:
    """GAT-style attention aggregation, with the batch of a shared graph folded into the heads.

    ``h`` is ``(N, K, F)`` (or ``(B, N, K, F)`` shared), alphas ``(N, K)`` (or ``(B, N, K)``).
    Returns the aggregate in the layout of ``h`` and the attention ``(E, K)`` (or ``(B, E, K)``).
    With attention dropout in training, the fused kernel cannot be used: the attention is
    computed with ``segment_softmax``, dropped out, and aggregated by ``spmm`` with per-head weights;
    so it is with ``alpha_edge`` (``(E, K)`` per-edge score terms in the graph's edge order, shared
    by the samples of a shared graph).
    A structure with more target rows than nodes (the static-shape self-looped graph under
    ``torch.compile``) gets zero logits for the extra row, whose output is dropped.
    """
    bsz = None
    k = h.size(-2)
    if g.shared:
        bsz, n, k, f = h.shape
        h = h.permute(1, 0, 2, 3).reshape(n, bsz * k, f)
        alpha_src = alpha_src.permute(1, 0, 2).reshape(n, bsz * k)
        alpha_dst = alpha_dst.permute(1, 0, 2).reshape(n, bsz * k)
    graph = g.graph
    assert isinstance(graph, GraphStructure)
    extra = graph.num_nodes - g.num_nodes
    if extra > 0:
        alpha_dst = torch.cat([alpha_dst, alpha_dst.new_zeros(extra, alpha_dst.size(1))])
    if (dropout > 0.0 and training) or alpha_edge is not None:
        ei = graph.edge_index
        e = alpha_src.index_select(0, ei[0]) + alpha_dst.index_select(0, ei[1])
        if alpha_edge is not None:
            e = e + (alpha_edge.repeat(1, bsz) if bsz is not None else alpha_edge)
        e = F.leaky_relu(e, negative_slope)
        attn = _ops.segment_softmax(e, graph)
        coef = F.dropout(attn, p=dropout, training=True) if dropout > 0.0 and training else attn
        if weight is not None:
            coef = coef * weight.unsqueeze(-1)
        out = spmm(graph, coef, h, graph.num_nodes)  # per-head weights: no (E, K, F) messages
        attn_out: Tensor | None = attn if return_attention else None
    else:
        out, attn_out = attention_aggregate(
            h, alpha_src, alpha_dst, graph, weight, negative_slope, graph.num_nodes, return_attention
        )
    if extra > 0:
        out = out[: g.num_nodes]
    if bsz is not None:
        n, _, f = out.shape
        out = out.view(n, bsz, k, f).permute(1, 0, 2, 3)
        if attn_out is not None:
            attn_out = attn_out.view(attn_out.size(0), bsz, k).permute(1, 0, 2)
    return out, attn_out


def with_self_loops(g: GraphInput, loop_weight: Tensor | None, fill_value: float, dtype: torch.dtype) -> GraphInput:
    """PyG's self-loop semantics: remove the existing loops, add one per node.

    The looped graph is derived once per structure and cached on it (no sort: it is built from
    the cached CSR). Edge weights follow the edges; the new loops get ``loop_weight`` (``(N,)``)
    or ``fill_value``.
    """
    graph = g.graph
    assert isinstance(graph, GraphStructure)
    looped, index = graph.with_self_loops()
    n = g.num_nodes
    w = None
    if g.edge_weight is not None or loop_weight is not None:
        ew = g.edge_weight if g.edge_weight is not None else torch.ones(graph.num_edges, dtype=dtype, device=index.device)
        lw = loop_weight if loop_weight is not None else torch.full((n,), fill_value, dtype=ew.dtype, device=index.device)
        w = torch.cat([ew, lw.to(ew.dtype), ew.new_zeros(1)]).index_select(0, index)
    return GraphInput(looped, w, n, g.batch_size, g.shared)


#: Reductions accepted as a string ``fill_value`` (PyG's ``add_self_loops``).
FILL_REDUCES = ("add", "sum", "mean", "max", "min")


def _loop_attr(attr: Tensor, ei: Tensor, num_nodes: int, fill_value: float | Tensor | str) -> Tensor:
    """Edge features of the added loops, as PyG's ``add_self_loops`` after ``remove_self_loops``.

    ``attr`` is ``(E, D)``. A string reduces the features of each node's incoming non-loop edges
    (0 for a node without any); a float or a ``(D,)`` / ``(N, D)`` tensor is used as is.
    """
    d = attr.size(1)
    if isinstance(fill_value, str):
        _checks.check_choice(fill_value, FILL_REDUCES, "fill_value")
        reduce = "sum" if fill_value == "add" else fill_value
        src, dst = ei[0], ei[1]
        # the existing loops are removed first: send them to an extra row that is dropped
        idx = torch.where(src == dst, torch.full_like(dst, num_nodes), dst).long()
        return scatter(attr, idx, num_nodes + 1, reduce)[:num_nodes]
    if isinstance(fill_value, Tensor):
        fv = fill_value.to(attr.dtype)
        if fv.dim() <= 1:
            return fv.reshape(1, -1).expand(num_nodes, d) if fv.numel() != 1 else fv.reshape(1, 1).expand(num_nodes, d)
        return fv
    if isinstance(fill_value, bool) or not isinstance(fill_value, (int, float)):
        raise TypeError(
            f"Expected 'fill_value' to be a float, a tensor or one of {FILL_REDUCES} (got {type(fill_value).__name__})"
        )
    return attr.new_full((num_nodes, d), float(fill_value))


def with_self_loops_attrs(g: GraphInput, attrs: list[Tensor | None], fill_value: float | Tensor | str) -> tuple[GraphInput, list[Tensor | None]]:
    """The structure's cached looped graph and the per-edge tensors carried onto it (loops from ``fill_value``)."""
    graph = g.graph
    assert isinstance(graph, GraphStructure)
    looped, index = graph.with_self_loops()
    n = graph.num_nodes
    out: list[Tensor | None] = []
    for a in attrs:
        if a is None:
            out.append(None)
            continue
        a2 = a if a.dim() == 2 else a.unsqueeze(-1)
        loop = _loop_attr(a2, graph.edge_index, n, fill_value)
        full = torch.cat([a2, loop, a2.new_zeros(1, a2.size(1))]).index_select(0, index)
        out.append(full if a.dim() == 2 else full.squeeze(-1))
    return GraphInput(looped, None, g.num_nodes, g.batch_size, g.shared), out
