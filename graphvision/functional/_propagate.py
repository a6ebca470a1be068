"""Message passing over a resolved graph (nothing here is public).

Wrappers over :mod:`graphvision.ops` for a :class:`~graphvision.functional._graph_input.GraphInput`:
:func:`propagate` (weighted sums, with the batch of a shared graph folded into the feature axis),
:func:`attend` (GAT-style attention, with the batch folded into the head axis) and PyG's
self-loop semantics (:func:`with_self_loops`, :func:`with_self_loops_attrs`), derived once per
structure and cached on it.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F  # noqa: N812
from torch import Tensor

from graphvision import _checks
from graphvision import ops as _ops
from graphvision.functional._graph_input import GraphInput
from graphvision.ops._api import scatter_unchecked
from graphvision.structure import GraphStructure

__all__: list[str] = []


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
    score_src: Tensor,
    score_dst: Tensor,
    graph: object,
    edge_weight: Tensor | None,
    negative_slope: float,
    num_nodes: int,
    return_attention_weights: bool,
) -> tuple[Tensor, Tensor | None]:
    res = _ops.attention_aggregate(
        x,
        score_src,
        score_dst,
        graph,
        edge_weight=edge_weight,
        negative_slope=negative_slope,
        num_nodes=num_nodes,
        return_attention_weights=return_attention_weights,
    )
    if return_attention_weights:
        return res[0], res[1]
    return res, None


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
    score_src: Tensor,
    score_dst: Tensor,
    weight: Tensor | None,
    negative_slope: float,
    dropout: float,
    training: bool,
    return_attention_weights: bool,
    score_edge: Tensor | None = None,
) -> tuple[Tensor, Tensor | None]:
    """GAT-style attention aggregation, with the batch of a shared graph folded into the heads.

    ``h`` is ``(N, K, F)`` (or ``(B, N, K, F)`` shared), scores ``(N, K)`` (or ``(B, N, K)``).
    Returns the aggregate in the layout of ``h`` and the attention ``(E, K)`` (or ``(B, E, K)``).
    With attention dropout in training, the fused kernel cannot be used: the attention is
    computed with ``segment_softmax``, dropped out, and aggregated by ``spmm`` with per-head weights;
    so it is with ``score_edge`` (``(E, K)`` per-edge score terms in the graph's edge order, shared
    by the samples of a shared graph).
    A structure with more target rows than nodes (the static-shape self-looped graph under
    ``torch.compile``) gets zero logits for the extra row, whose output is dropped.
    """
    bsz = None
    k = h.size(-2)
    if g.shared:
        bsz, n, k, f = h.shape
        h = h.permute(1, 0, 2, 3).reshape(n, bsz * k, f)
        score_src = score_src.permute(1, 0, 2).reshape(n, bsz * k)
        score_dst = score_dst.permute(1, 0, 2).reshape(n, bsz * k)
    graph = g.graph
    assert isinstance(graph, GraphStructure)
    extra = graph.num_nodes - g.num_nodes
    if extra > 0:
        score_dst = torch.cat([score_dst, score_dst.new_zeros(extra, score_dst.size(1))])
    if (dropout > 0.0 and training) or score_edge is not None:
        ei = graph.edge_index
        e = score_src.index_select(0, ei[0]) + score_dst.index_select(0, ei[1])
        if score_edge is not None:
            e = e + (score_edge.repeat(1, bsz) if bsz is not None else score_edge)
        e = F.leaky_relu(e, negative_slope)
        attn = _ops.segment_softmax(e, graph)
        coef = F.dropout(attn, p=dropout, training=True) if dropout > 0.0 and training else attn
        if weight is not None:
            coef = coef * weight.unsqueeze(-1)
        out = spmm(graph, coef, h, graph.num_nodes)  # per-head weights: no (E, K, F) messages
        attn_out: Tensor | None = attn if return_attention_weights else None
    else:
        out, attn_out = attention_aggregate(
            h, score_src, score_dst, graph, weight, negative_slope, graph.num_nodes, return_attention_weights
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
