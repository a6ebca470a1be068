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

import weakref
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Union

import torch
import torch.nn.functional as F  # noqa: N812
from torch import Tensor

from graphvision import ops as _ops
from graphvision._checks import check_edge_index, check_floating, check_same_device, check_tensor, is_compiling
from graphvision.structure import GraphStructure
from graphvision.typing import Adjacency

#: The graph argument of the convolutions: one graph (``(2, E)`` tensor or ``GraphStructure``) or a
#: sequence of ``B`` per-sample graphs.
GraphLike = Union[Adjacency, Sequence[Adjacency]]
#: Edge weights: ``(E,)``, one per per-sample graph, or ``None``.
WeightLike = Union[Tensor, Sequence[Tensor], None]

#: GraphStructure -> the same graph with one self-loop per node appended (attention convs).
_LOOPED: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()

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
    return _ops.scatter(src, index, dim_size, reduce=reduce)


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
        graph: What the ops get: an ``edge_index`` tensor or a ``GraphStructure``.
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


def resolve_graph(
    x: Tensor,
    edge_index: GraphLike,
    edge_weight: WeightLike = None,
    batch: Tensor | None = None,
) -> tuple[Tensor, GraphInput]:
    """Validate a graph against ``x`` and bring ``x`` into the layout the ops need.

    Returns ``(x, graph)``: ``x`` unchanged for one graph or a shared graph, flattened to
    ``(B * N, F)`` for per-sample graphs (undo with :func:`restore`).
    """
    if isinstance(edge_index, (list, tuple)):
        # Per-sample graphs given as a list: one offset edge_index over the B * N nodes.
        if x.dim() != 3:
            raise ValueError(
                f"A list of per-sample 'edge_index' needs batched 'x' of shape (B, N, F) (got {tuple(x.shape)})"
            )
        bsz, n = x.size(0), x.size(1)
        if len(edge_index) != bsz:
            raise ValueError(f"Expected a list of B={bsz} 'edge_index' tensors, one per sample (got {len(edge_index)})")
        eis = [_edge_index_of(e) for e in edge_index]
        for i, e in enumerate(eis):
            _check_structure_size(edge_index[i], n, f"edge_index[{i}]")
            check_edge_index(e, n, name=f"edge_index[{i}]")
            check_same_device("x", x, f"edge_index[{i}]", e)
        offsets = [e.long() + i * n for i, e in enumerate(eis)]
        ei = torch.cat(offsets, dim=1) if offsets else x.new_zeros((2, 0), dtype=torch.long)
        w: Tensor | None = None
        if edge_weight is not None:
            if not isinstance(edge_weight, (list, tuple)) or len(edge_weight) != bsz:
                raise ValueError(
                    "With a list of per-sample 'edge_index', expected 'edge_weight' to be a list of "
                    f"B={bsz} tensors (got {type(edge_weight).__name__})"
                )
            ws = [_check_weight(wi, e.size(1), x, f"edge_weight[{i}]") for i, (wi, e) in enumerate(zip(edge_weight, eis))]
            w = torch.cat(ws)
        return x.reshape(bsz * n, x.size(2)), GraphInput(ei, w, bsz * n, bsz, False)

    ei = _edge_index_of(edge_index)
    check_same_device("x", x, "edge_index", ei)
    if batch is not None:
        check_tensor(batch, "batch")
        if x.dim() == 3:
            bsz, n = x.size(0), x.size(1)
            if batch.dim() != 1 or batch.size(0) != bsz * n:
                raise ValueError(
                    f"Expected 'batch' of shape (B * N,) = ({bsz * n},) for batched 'x' of shape "
                    f"{tuple(x.shape)} with per-sample graphs (got {tuple(batch.shape)})"
                )
            _check_structure_size(edge_index, bsz * n)
            check_edge_index(ei, bsz * n)
            w = None if edge_weight is None else _check_weight(edge_weight, ei.size(1), x)
            return x.reshape(bsz * n, x.size(2)), GraphInput(edge_index, w, bsz * n, bsz, False)
        if batch.dim() != 1 or batch.size(0) != x.size(0):
            raise ValueError(f"Expected 'batch' of shape (N,) = ({x.size(0)},) (got {tuple(batch.shape)})")
    n = x.size(-2)
    _check_structure_size(edge_index, n)
    check_edge_index(ei, n)
    w = None if edge_weight is None else _check_weight(edge_weight, ei.size(1), x)
    if x.dim() == 3:
        return x, GraphInput(edge_index, w, n, x.size(0), True)
    return x, GraphInput(edge_index, w, n, None, False)


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
) -> tuple[Tensor, Tensor | None]:
    """GAT-style attention aggregation, with the batch of a shared graph folded into the heads.

    ``h`` is ``(N, K, F)`` (or ``(B, N, K, F)`` shared), alphas ``(N, K)`` (or ``(B, N, K)``).
    Returns the aggregate in the layout of ``h`` and the attention ``(E, K)`` (or ``(B, E, K)``).
    With attention dropout in training, the fused kernel cannot be used: the attention is
    computed with ``segment_softmax``, dropped out, and aggregated by ``spmm`` with per-head weights.
    """
    bsz = None
    k = h.size(-2)
    if g.shared:
        bsz, n, k, f = h.shape
        h = h.permute(1, 0, 2, 3).reshape(n, bsz * k, f)
        alpha_src = alpha_src.permute(1, 0, 2).reshape(n, bsz * k)
        alpha_dst = alpha_dst.permute(1, 0, 2).reshape(n, bsz * k)
    if dropout > 0.0 and training:
        ei = g.edge_index
        src, dst = ei[0], ei[1]
        e = F.leaky_relu(alpha_src.index_select(0, src) + alpha_dst.index_select(0, dst), negative_slope)
        attn = segment_softmax(e, dst, g.num_nodes)
        coef = F.dropout(attn, p=dropout, training=True)
        if weight is not None:
            coef = coef * weight.unsqueeze(-1)
        out = spmm(g.graph, coef, h, g.num_nodes)  # per-head weights: no (E, K, F) messages
        attn_out: Tensor | None = attn if return_attention else None
    else:
        out, attn_out = attention_aggregate(
            h, alpha_src, alpha_dst, g.graph, weight, negative_slope, g.num_nodes, return_attention
        )
    if bsz is not None:
        n, _, f = out.shape
        out = out.view(n, bsz, k, f).permute(1, 0, 2, 3)
        if attn_out is not None:
            attn_out = attn_out.view(attn_out.size(0), bsz, k).permute(1, 0, 2)
    return out, attn_out


def with_self_loops(g: GraphInput, loop_weight: Tensor | None, fill_value: float, dtype: torch.dtype) -> GraphInput:
    """Append one self-loop per node (static shape ``E + N``; existing loops are kept)."""
    ei = g.edge_index
    n = g.num_nodes
    new_graph: object = None
    cacheable = isinstance(g.graph, GraphStructure) and not is_compiling()
    if cacheable:
        new_graph = _LOOPED.get(g.graph)
    if new_graph is None:
        loops = torch.arange(n, device=ei.device, dtype=ei.dtype).unsqueeze(0).expand(2, n)
        new_graph = torch.cat([ei, loops], dim=1)
        if cacheable:
            # the self-looped structure (and its CSR, built on first use) lives as long as the input structure
            new_graph = GraphStructure(new_graph, n)
            _LOOPED[g.graph] = new_graph
    w = None
    if g.edge_weight is not None or loop_weight is not None:
        ew = g.edge_weight if g.edge_weight is not None else torch.ones(ei.size(1), dtype=dtype, device=ei.device)
        lw = loop_weight if loop_weight is not None else torch.full((n,), fill_value, dtype=ew.dtype, device=ei.device)
        w = torch.cat([ew, lw.to(ew.dtype)])
    return GraphInput(new_graph, w, n, g.batch_size, g.shared)
