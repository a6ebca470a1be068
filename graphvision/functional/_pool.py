r"""Graph pooling as functions: global readouts, attention readout, top-k selection.

Two input layouts:

- **flat** ``x`` of shape ``(N, F)`` with a ``batch`` vector ``(N,)`` assigning each node to one
  of ``B`` graphs (PyG's mini-batch layout). Pass ``size=B``: without it the count
  is read from ``batch.max() + 1``, a host synchronisation that also breaks
  ``torch.compile(fullgraph=True)``;
- **batched** ``x`` of shape ``(B, N, F)``: ``B`` graphs of ``N`` nodes each (pixel graphs of
  equal-size images), optionally with a boolean ``mask`` ``(B, N)`` marking the real nodes of
  padded graphs. No ``batch`` vector is needed.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
from torch import Tensor

from graphvision import ops as _ops
from graphvision._checks import check_floating, check_index, check_tensor, sync_checks_enabled
from graphvision.functional._graph_input import GraphInput, GraphLike, _graph_of, check_x, resolve_graph
from graphvision.functional._propagate import scatter
from graphvision.structure import GraphStructure

__all__ = [
    "global_sum_pool",
    "global_mean_pool",
    "global_max_pool",
    "global_attention_pool",
    "TopKOutput",
    "topk_pool",
    "sag_pool",
    "PooledGraph",
    "per_graph_topk_pool",
]


# --------------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------------


def _check_mask(mask: Tensor | None, x: Tensor) -> Tensor | None:
    if mask is None:
        return None
    check_tensor(mask, "mask")
    if x.dim() != 3:
        raise ValueError(f"'mask' is only used with batched 'x' of shape (B, N, F) (got 'x' of shape {tuple(x.shape)})")
    if mask.shape != x.shape[:2]:
        raise ValueError(f"Expected 'mask' of shape (B, N) = {tuple(x.shape[:2])} (got {tuple(mask.shape)})")
    if mask.dtype != torch.bool:
        raise TypeError(f"Expected 'mask' of dtype torch.bool (got {mask.dtype})")
    return mask


def _resolve_batch(x: Tensor, batch: Tensor | None, size: int | None) -> tuple[Tensor, int]:
    """For flat ``x``: a validated ``batch`` and ``size`` (one graph when ``batch`` is None)."""
    if batch is None:
        if size not in (None, 1):
            raise ValueError(f"Without 'batch', all nodes form one graph; 'size' must be 1 (got {size})")
        return torch.zeros(x.size(0), dtype=torch.long, device=x.device), 1
    check_tensor(batch, "batch")
    if batch.dim() != 1 or batch.size(0) != x.size(0):
        raise ValueError(f"Expected 'batch' of shape (N,) = ({x.size(0)},) (got {tuple(batch.shape)})")
    if batch.device != x.device:
        raise ValueError(f"Expected 'batch' on the same device as 'x' ({x.device}) (got {batch.device})")
    if size is None:
        size = int(batch.max()) + 1 if batch.numel() > 0 else 0
    elif isinstance(size, torch.SymInt):  # a traced size (torch.export): checked in the graph, no guard
        torch._check(size >= 0, lambda: f"Expected 'size' to be a non-negative int (got {size})")
    elif isinstance(size, bool) or not isinstance(size, int) or size < 0:
        raise ValueError(f"Expected 'size' to be a non-negative int (got {size!r})")
    check_index(batch, size, "batch", dim_name="size")
    return batch, size


def _reject_batch_for_batched(x: Tensor, batch: Tensor | None) -> None:
    if x.dim() == 3 and batch is not None:
        raise ValueError(
            f"Batched 'x' of shape (B, N, F) = {tuple(x.shape)} holds one graph per sample; do not pass "
            "'batch' (use flat x of shape (N, F) with 'batch' for graphs of different sizes)"
        )


# --------------------------------------------------------------------------------------------
# global pools
# --------------------------------------------------------------------------------------------


def _global_pool(x: Tensor, batch: Tensor | None, size: int | None, mask: Tensor | None, reduce: str) -> Tensor:
    x = check_x(x)
    _reject_batch_for_batched(x, batch)
    mask = _check_mask(mask, x)
    if x.dim() == 3:
        if mask is None:
            if reduce == "sum":
                return x.sum(1)
            if reduce == "mean":
                return x.mean(1) if x.size(1) > 0 else x.new_zeros(x.size(0), x.size(2))
            return x.amax(1) if x.size(1) > 0 else x.new_zeros(x.size(0), x.size(2))
        m = mask.unsqueeze(-1)
        if reduce in ("sum", "mean"):
            s = (x * m.to(x.dtype)).sum(1)
            if reduce == "sum":
                return s
            return s / mask.sum(1, keepdim=True).clamp_min(1).to(x.dtype)
        if x.size(1) == 0:
            return x.new_zeros(x.size(0), x.size(2))
        out = x.masked_fill(~m, float("-inf")).amax(1)
        return torch.where(mask.any(1, keepdim=True), out, torch.zeros_like(out))
    batch, size = _resolve_batch(x, batch, size)
    return scatter(x, batch, size, reduce)


def global_sum_pool(
    x: Tensor, batch: Tensor | None = None, size: int | None = None, *, mask: Tensor | None = None
) -> Tensor:
    r"""Sum of the node features of each graph: :math:`\mathbf{r}_b = \sum_{i \in b} \mathbf{x}_i`.

    Args:
        x: Flat ``(N, F)`` with ``batch``, or batched ``(B, N, F)``.
        batch: ``(N,)`` graph id of each node (flat ``x`` only; ``None``: one graph).
        size: Number of graphs ``B`` (pass it: avoids a host synchronisation).
        mask: Optional ``(B, N)`` bool, real nodes of padded batched graphs.

    Returns:
        The ``(B, F)`` readout.

    Shape:
        - x: :math:`(N, F)` or :math:`(B, N, F)`
        - batch: :math:`(N,)`
        - output: :math:`(B, F)`

    Example:
        >>> x, batch = torch.randn(5, 3), torch.tensor([0, 0, 1, 1, 1])
        >>> graphvision.functional.global_sum_pool(x, batch, size=2).shape
        torch.Size([2, 3])
    """
    return _global_pool(x, batch, size, mask, "sum")


def global_mean_pool(
    x: Tensor, batch: Tensor | None = None, size: int | None = None, *, mask: Tensor | None = None
) -> Tensor:
    r"""Mean of the node features of each graph: :math:`\mathbf{r}_b = \frac{1}{|b|}\sum_{i \in b} \mathbf{x}_i`.

    Graphs without nodes get 0.

    Args:
        x: Flat ``(N, F)`` with ``batch``, or batched ``(B, N, F)``.
        batch: ``(N,)`` graph id of each node (flat ``x`` only; ``None``: one graph).
        size: Number of graphs ``B`` (pass it: avoids a host synchronisation).
        mask: Optional ``(B, N)`` bool, real nodes of padded batched graphs.

    Returns:
        The ``(B, F)`` readout.

    Shape:
        - x: :math:`(N, F)` or :math:`(B, N, F)`
        - batch: :math:`(N,)`
        - output: :math:`(B, F)`

    Example:
        >>> x = torch.randn(2, 9, 3)
        >>> graphvision.functional.global_mean_pool(x).shape
        torch.Size([2, 3])
    """
    return _global_pool(x, batch, size, mask, "mean")


def global_max_pool(
    x: Tensor, batch: Tensor | None = None, size: int | None = None, *, mask: Tensor | None = None
) -> Tensor:
    r"""Feature-wise maximum over the nodes of each graph: :math:`\mathbf{r}_b = \max_{i \in b} \mathbf{x}_i`.

    Graphs without nodes get 0.

    Args:
        x: Flat ``(N, F)`` with ``batch``, or batched ``(B, N, F)``.
        batch: ``(N,)`` graph id of each node (flat ``x`` only; ``None``: one graph).
        size: Number of graphs ``B`` (pass it: avoids a host synchronisation).
        mask: Optional ``(B, N)`` bool, real nodes of padded batched graphs.

    Returns:
        The ``(B, F)`` readout.

    Shape:
        - x: :math:`(N, F)` or :math:`(B, N, F)`
        - batch: :math:`(N,)`
        - output: :math:`(B, F)`

    Example:
        >>> x, batch = torch.randn(5, 3), torch.tensor([0, 0, 1, 1, 1])
        >>> graphvision.functional.global_max_pool(x, batch, size=2).shape
        torch.Size([2, 3])
    """
    return _global_pool(x, batch, size, mask, "max")


# --------------------------------------------------------------------------------------------
# attention readout
# --------------------------------------------------------------------------------------------


def global_attention_pool(
    x: Tensor,
    gate: Tensor,
    batch: Tensor | None = None,
    size: int | None = None,
    *,
    mask: Tensor | None = None,
    return_attention_weights: bool = False,
) -> Tensor | tuple[Tensor, Tensor]:
    r"""Attention readout: softmax of gate scores within each graph, then the weighted feature sum.

    .. math::
        a^{k}_i = \frac{\exp g^{k}_i}{\sum_{j \in b(i)} \exp g^{k}_j}, \qquad
        \mathbf{r}^{k}_b = \sum_{i \in b} a^{k}_i\, \mathbf{x}_i

    for :math:`K` heads of gate scores :math:`g`, on :func:`graphvision.ops.global_attention_pool`. The
    normalised scores :math:`a` are the per-node attention heatmap.

    Args:
        x: Flat ``(N, F)`` with ``batch``, or batched ``(B, N, F)``.
        gate: Gate logits: ``(N,)`` / ``(N, K)`` for flat ``x``, ``(B, N)`` / ``(B, N, K)`` batched.
        batch: ``(N,)`` graph id of each node (flat ``x`` only; ``None``: one graph).
        size: Number of graphs (pass it: avoids a host synchronisation).
        mask: Optional ``(B, N)`` bool, real nodes of padded batched graphs (others get weight 0).
        return_attention_weights: Also return the normalised scores.

    Returns:
        ``(B, F)`` (1-D/2-D gate) or ``(B, K, F)``, and with ``return_attention_weights`` the scores in the
        shape of ``gate``.

    Shape:
        - x: :math:`(N, F)` or :math:`(B, N, F)`
        - gate: :math:`(N, K)` or :math:`(B, N, K)` (or without the :math:`K` axis)
        - output: :math:`(B, K, F)` (or :math:`(B, F)`)

    Example:
        >>> x, gate = torch.randn(2, 9, 3), torch.randn(2, 9, 4)
        >>> out, attn = graphvision.functional.global_attention_pool(x, gate, return_attention_weights=True)
        >>> out.shape, attn.shape
        (torch.Size([2, 4, 3]), torch.Size([2, 9, 4]))
    """
    x = check_x(x)
    _reject_batch_for_batched(x, batch)
    mask = _check_mask(mask, x)
    check_tensor(gate, "gate")
    lead = x.shape[:-1]
    if gate.shape[: len(lead)] != lead or gate.dim() not in (len(lead), len(lead) + 1):
        want = "(B, N) or (B, N, K)" if x.dim() == 3 else "(N,) or (N, K)"
        raise ValueError(f"Expected 'gate' of shape {want} matching 'x' {tuple(x.shape)} (got {tuple(gate.shape)})")
    check_floating(gate, "gate")
    squeeze = gate.dim() == len(lead)
    g = gate.unsqueeze(-1) if squeeze else gate
    k = g.size(-1)
    if x.dim() == 3:
        bsz, n, f = x.shape
        if mask is not None:
            g = g.masked_fill(~mask.unsqueeze(-1), float("-inf"))
        batch_v = torch.arange(bsz, device=x.device).repeat_interleave(n)
        out, attn = _ops.global_attention_pool(
            x.reshape(bsz * n, f), g.reshape(bsz * n, k), batch_v, bsz, return_attention_weights=True
        )
        if mask is not None:
            attn = attn.nan_to_num(0.0)
            out = out.nan_to_num(0.0)
        attn = attn.view(bsz, n, k)
    else:
        batch, size = _resolve_batch(x, batch, size)
        out, attn = _ops.global_attention_pool(x, g, batch, size, return_attention_weights=True)
    if squeeze:
        out, attn = out.squeeze(-2), attn.squeeze(-1)
    if return_attention_weights:
        return out, attn
    return out


# --------------------------------------------------------------------------------------------
# top-k selection
# --------------------------------------------------------------------------------------------


class _TopKFields(NamedTuple):
    x: Tensor
    index: Tensor
    mask: Tensor
    score: Tensor


class TopKOutput(_TopKFields):
    """Result of :func:`topk_pool` / :func:`sag_pool` (and the pooling modules' static-shape path).

    Unpacks as the 4-tuple ``x, index, mask, score``. When a graph was given, the pooled graph is
    attached as attributes (``None`` otherwise): the subgraph induced by the kept nodes, relabelled
    to the kept slots, so node ``b * k + s`` of the pooled graph is slot ``s`` of graph ``b``
    (``x.reshape(B * k, F)``). Padding slots (``mask=False``) are isolated nodes.

    Attributes:
        x: ``(B, k, F)`` kept node features, gated by their score.
        index: ``(B, k)`` index of each kept node in ``x``'s node axis (batched input: ``[0, N)``;
            flat input: the global node index ``[0, N_total)``).
        mask: ``(B, k)`` bool, ``False`` for padding slots (graphs with fewer than ``k`` real nodes).
        score: ``(B, k)`` gate value of each kept node (after the nonlinearity).
        edge_index: ``(2, E')`` edges among the kept nodes over the ``B * k`` slots, sorted by target
            (not part of the tuple; ``None`` without a graph).
        edge_attr: ``(E', *)`` the attributes of those edges (``None`` without ``edge_attr``).
        graph: The :class:`~graphvision.GraphStructure` of ``edge_index`` (trusted, target-sorted).
        batch: ``(B * k,)`` graph id of every slot.

    Shape:
        - x: :math:`(B, k, F)`
        - index, mask, score: :math:`(B, k)`
        - edge_index: :math:`(2, E')`; batch: :math:`(B k,)`

    Example:
        >>> out = graphvision.functional.sag_pool(torch.randn(2, 5, 3), torch.randn(2, 5), k=2)
        >>> out.x.shape, out.index.shape, out.mask.all().item(), out.edge_index
        (torch.Size([2, 2, 3]), torch.Size([2, 2]), True, None)
        >>> ei = torch.tensor([[0, 1, 2, 3], [1, 2, 3, 4]])  # a path shared by both graphs
        >>> out = graphvision.functional.sag_pool(torch.randn(2, 5, 3), torch.randn(2, 5), k=5, edge_index=ei)
        >>> out.edge_index.shape, out.batch.tolist()
        (torch.Size([2, 8]), [0, 0, 0, 0, 0, 1, 1, 1, 1, 1])
    """

    edge_index: Tensor | None = None
    edge_attr: Tensor | None = None
    graph: GraphStructure | None = None
    batch: Tensor | None = None

    def __new__(
        cls,
        x: Tensor,
        index: Tensor,
        mask: Tensor,
        score: Tensor,
        edge_index: Tensor | None = None,
        edge_attr: Tensor | None = None,
        graph: GraphStructure | None = None,
        batch: Tensor | None = None,
    ) -> TopKOutput:
        self = super().__new__(cls, x, index, mask, score)
        if graph is not None or batch is not None:
            self.__dict__.update(edge_index=edge_index, edge_attr=edge_attr, graph=graph, batch=batch)
        return self


class _PooledFields(NamedTuple):
    x: Tensor
    edge_index: Tensor | None
    edge_attr: Tensor | None
    batch: Tensor
    perm: Tensor
    score: Tensor


class PooledGraph(_PooledFields):
    """Result of :func:`per_graph_topk_pool` and of the pooling modules on flat input: PyG's 6-tuple.

    Unpacks as ``x, edge_index, edge_attr, batch, perm, score``, the return value of PyG's
    ``TopKPooling`` / ``SAGPooling``. The edges are the same set as PyG's with their attributes
    aligned, but sorted by target (PyG keeps the input order).

    Attributes:
        x: ``(M, F)`` kept node features, gated by their score (graph by graph, in descending score
            within each graph with ``ratio``; in node order with ``min_score``).
        edge_index: ``(2, E')`` the edges among the kept nodes, relabelled to ``[0, M)``, sorted by
            target (``None`` without a graph).
        edge_attr: ``(E', *)`` their attributes (``None`` without ``edge_attr``).
        batch: ``(M,)`` graph id of every kept node.
        perm: ``(M,)`` index of every kept node in the input.
        score: ``(M,)`` gate value of every kept node.
        graph: The :class:`~graphvision.GraphStructure` of ``edge_index`` (trusted, target-sorted;
            not part of the tuple).

    Shape:
        - x: :math:`(M, F)`; batch, perm, score: :math:`(M,)`
        - edge_index: :math:`(2, E')`; edge_attr: :math:`(E', *)`

    Example:
        >>> x, ei = torch.randn(4, 3), torch.tensor([[0, 1, 2], [1, 2, 3]])
        >>> out = graphvision.functional.per_graph_topk_pool(x, torch.tensor([4.0, 3.0, 2.0, 1.0]), ei)
        >>> out.perm.tolist(), out.edge_index.tolist()
        ([0, 1], [[0], [1]])
    """

    graph: GraphStructure | None = None

    def __new__(
        cls,
        x: Tensor,
        edge_index: Tensor | None,
        edge_attr: Tensor | None,
        batch: Tensor,
        perm: Tensor,
        score: Tensor,
        graph: GraphStructure | None = None,
    ) -> PooledGraph:
        self = super().__new__(cls, x, edge_index, edge_attr, batch, perm, score)
        if graph is not None:
            self.__dict__["graph"] = graph
        return self


def _num_keep(k: int | None, ratio: float | None, n: int) -> int:
    if (k is None) == (ratio is None):
        raise ValueError(f"Pass exactly one of 'k' and 'ratio' (got k={k!r}, ratio={ratio!r})")
    if k is not None:
        if isinstance(k, bool) or not isinstance(k, int) or k < 1:
            raise ValueError(f"Expected 'k' to be a positive int (got {k!r})")
        return k
    if not isinstance(ratio, (int, float)) or isinstance(ratio, bool) or not 0.0 < float(ratio) <= 1.0:
        raise ValueError(f"Expected 'ratio' in (0, 1] (got {ratio!r})")
    return max(1, math.ceil(float(ratio) * n))


def _to_dense(
    x: Tensor, score: Tensor, batch: Tensor, size: int, max_num_nodes: int | None
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Flat sorted-batch nodes -> padded ``(B, M, F)``, ``(B, M)`` scores, mask and global index."""
    if max_num_nodes is None:
        raise ValueError(
            "Flat 'x' of shape (N, F) needs 'max_num_nodes' (the size of the largest graph) to keep static shapes"
        )
    counts = scatter(torch.ones_like(batch, dtype=x.dtype), batch, size, "sum").long()
    ptr = torch.cumsum(counts, 0) - counts
    pos = torch.arange(x.size(0), device=x.device) - ptr.index_select(0, batch)
    if sync_checks_enabled() and x.size(0) > 0:
        if int(pos.min()) < 0:
            raise ValueError("Expected 'batch' sorted in ascending order (graphs stored contiguously)")
        if int(pos.max()) >= max_num_nodes:
            raise ValueError(f"A graph has more than max_num_nodes={max_num_nodes} nodes (got {int(pos.max()) + 1})")
    flat = batch * max_num_nodes + pos
    dense_x = x.new_zeros(size * max_num_nodes, x.size(1)).index_copy(0, flat, x)
    dense_s = score.new_zeros(size * max_num_nodes).index_copy(0, flat, score)
    mask = torch.zeros(size * max_num_nodes, dtype=torch.bool, device=x.device).index_fill(0, flat, True)
    gidx = (ptr.unsqueeze(1) + torch.arange(max_num_nodes, device=x.device)).reshape(-1)
    return (
        dense_x.view(size, max_num_nodes, -1),
        dense_s.view(size, max_num_nodes),
        mask.view(size, max_num_nodes),
        gidx.view(size, max_num_nodes),
    )


_NONLINEARITIES = ("tanh", "sigmoid", "none")


class _Selection(NamedTuple):
    """How many nodes :func:`topk_pool` / :func:`sag_pool` keep, and how their scores gate them."""

    k: int | None
    ratio: float | None
    nonlinearity: str = "tanh"
    multiplier: float = 1.0


def _select(
    x: Tensor,
    score: Tensor,
    sel: _Selection,
    batch: Tensor | None,
    size: int | None,
    mask: Tensor | None,
    max_num_nodes: int | None,
    graph: GraphInput | None = None,
    edge_attr: object = None,
) -> TopKOutput:
    k, ratio, nonlinearity, multiplier = sel
    if nonlinearity not in _NONLINEARITIES:
        raise ValueError(f"Unknown nonlinearity {nonlinearity!r}; expected one of {_NONLINEARITIES}")
    score = _activate(score, nonlinearity)
    gidx: Tensor | None = None
    if x.dim() == 2:
        batch, size = _resolve_batch(x, batch, size)
        if max_num_nodes is None and size == 1:
            max_num_nodes = x.size(0)
        x, score, mask, gidx = _to_dense(x, score, batch, size, max_num_nodes)
    n = x.size(1)
    kk = _num_keep(k, ratio, n)
    if kk > n:
        pad = kk - n
        x = torch.cat([x, x.new_zeros(x.size(0), pad, x.size(2))], 1)
        score = torch.cat([score, score.new_zeros(score.size(0), pad)], 1)
        valid = mask if mask is not None else torch.ones(x.size(0), n, dtype=torch.bool, device=x.device)
        mask = torch.cat([valid, valid.new_zeros(valid.size(0), pad)], 1)
        if gidx is not None:
            gidx = torch.cat([gidx, gidx.new_zeros(gidx.size(0), pad)], 1)
    rank = score if mask is None else score.masked_fill(~mask, float("-inf"))
    _, idx = torch.topk(rank.detach(), kk, dim=1, sorted=True)
    kept_score = score.gather(1, idx)
    kept_x = x.gather(1, idx.unsqueeze(-1).expand(-1, -1, x.size(2))) * kept_score.unsqueeze(-1)
    if multiplier != 1.0:
        kept_x = kept_x * multiplier
    kept_mask = torch.ones_like(idx, dtype=torch.bool) if mask is None else mask.gather(1, idx)
    kept_x = kept_x * kept_mask.unsqueeze(-1).to(kept_x.dtype)
    kept_score = kept_score * kept_mask.to(kept_score.dtype)
    index = idx if gidx is None else gidx.gather(1, idx)
    index = index.masked_fill(~kept_mask, 0)
    if graph is None:
        return TopKOutput(kept_x, index, kept_mask, kept_score)
    bsz = index.size(0)
    slots = bsz * kk
    if graph.shared:  # one graph over the N nodes of every sample: sources are offset per sample
        kept = index.reshape(-1)
        offset = (torch.arange(bsz, device=x.device) * graph.num_nodes).repeat_interleave(kk)
        table_size = bsz * graph.num_nodes
    else:  # flat input (global ids) or per-sample graphs over the B * N flattened nodes
        kept = index if gidx is not None else index + (torch.arange(bsz, device=x.device) * n).unsqueeze(1)
        kept = kept.reshape(-1)
        offset, table_size = None, graph.num_nodes
    old = kept if offset is None else kept + offset
    flat_mask = kept_mask.reshape(-1)
    new_ids = torch.arange(slots, device=x.device)
    table = torch.full((table_size,), -1, dtype=torch.long, device=x.device)
    table[old[flat_mask]] = new_ids[flat_mask]
    ea = _check_edge_attr(edge_attr, graph)
    ei, ea, g = _filter_graph(graph.graph, kept, flat_mask, offset, table, ea)
    out_batch = torch.arange(bsz, device=x.device).repeat_interleave(kk)
    return TopKOutput(kept_x, index, kept_mask, kept_score, ei, ea, g, out_batch)


def _activate(score: Tensor, nonlinearity: str) -> Tensor:
    if nonlinearity == "tanh":
        return torch.tanh(score)
    if nonlinearity == "sigmoid":
        return torch.sigmoid(score)
    return score


def _check_edge_attr(edge_attr: object, graph: GraphInput) -> Tensor | None:
    if edge_attr is None:
        return None
    if isinstance(edge_attr, (list, tuple)):
        edge_attr = torch.cat([check_tensor(a, f"edge_attr[{i}]") for i, a in enumerate(edge_attr)])
    ea = check_tensor(edge_attr, "edge_attr")
    e = graph.graph.num_edges  # type: ignore[union-attr]
    if ea.dim() == 0 or ea.size(0) != e:
        raise ValueError(f"Expected 'edge_attr' of shape (E, *) with E={e} edges (got {tuple(ea.shape)})")
    if ea.device != graph.graph.edge_index.device:  # type: ignore[union-attr]
        raise ValueError(f"Expected 'edge_attr' on the device of 'edge_index' (got {ea.device})")
    return ea


def _filter_graph(
    graph: GraphStructure,
    kept: Tensor,
    valid: Tensor | None,
    offset: Tensor | None,
    table: Tensor,
    edge_attr: Tensor | None,
) -> tuple[Tensor, Tensor | None, GraphStructure]:
    """The subgraph induced by the kept nodes, relabelled, read from the target-sorted CSR (no sort).

    New node ``t`` is node ``kept[t]`` of ``graph`` (when ``valid[t]``); the sources of its edges
    (plus ``offset[t]``) are mapped by ``table`` (old id -> new id, ``-1`` for dropped nodes).
    Only the in-edges of kept nodes are read, so the cost is their count, not ``E``.
    """
    rowptr, col, eperm = graph.csr()
    if valid is not None:  # padding slots (index 0, perhaps of a graph without nodes): one more pointer
        rowptr = torch.cat([rowptr, rowptr[-1:]])
    start = rowptr.index_select(0, kept)
    deg = rowptr.index_select(0, kept + 1) - start
    if valid is not None:
        deg = deg * valid
    m = kept.numel()
    ptr = torch.zeros(m + 1, dtype=torch.long, device=kept.device)
    torch.cumsum(deg, 0, out=ptr[1:])
    total = ptr[-1].item()  # not int(): torch.export (non-strict) keeps .item() symbolic
    torch._check(total >= 0)
    pos = torch.repeat_interleave(start - ptr[:-1], deg, output_size=total) + torch.arange(total, device=kept.device)
    src = col.index_select(0, pos)
    if offset is not None:
        src = src + torch.repeat_interleave(offset, deg, output_size=total)
    new_src = table.index_select(0, src)
    keep = new_src >= 0
    ck = torch.zeros(total + 1, dtype=torch.long, device=kept.device)
    torch.cumsum(keep, 0, out=ck[1:])
    g = GraphStructure.from_csr(ck.index_select(0, ptr), new_src[keep], validate=False)
    ea = None
    if edge_attr is not None:
        kept_pos = pos[keep]
        if not graph.identity_perm:
            kept_pos = eperm.index_select(0, kept_pos)
        ea = edge_attr.index_select(0, kept_pos)
    return g.edge_index, ea, g


def _topk_perm(
    score: Tensor, ratio: float | int | None, batch: Tensor, size: int, min_score: float | None, tol: float = 1e-7
) -> Tensor:
    """PyG's per-graph ``topk`` selection: indices of the kept nodes, graph by graph."""
    if min_score is not None:
        smax = scatter(score.detach(), batch, size, "max").index_select(0, batch) - tol
        return (score > smax.clamp(max=min_score)).nonzero().view(-1)
    num_nodes = scatter(torch.ones_like(batch, dtype=score.dtype), batch, size, "sum").long()
    if isinstance(ratio, int):
        k = torch.full_like(num_nodes, ratio)
    else:
        k = (float(ratio) * num_nodes.to(score.dtype)).ceil().to(torch.long)  # type: ignore[arg-type]
    _, x_perm = torch.sort(score.detach().view(-1), descending=True, stable=True)
    b, b_perm = torch.sort(batch.index_select(0, x_perm), stable=True)
    ptr = torch.cumsum(num_nodes, 0) - num_nodes
    keep = torch.arange(score.numel(), device=score.device) - ptr.index_select(0, b) < k.index_select(0, b)
    return x_perm[b_perm[keep]]


def _segment_softmax(score: Tensor, batch: Tensor, size: int) -> Tensor:
    """Softmax within each graph, computed as PyG's ``softmax`` (max shift, ``1e-16`` in the sum)."""
    smax = scatter(score.detach(), batch, size, "max").index_select(0, batch)
    out = (score - smax).exp()
    return out / (scatter(out, batch, size, "sum") + 1e-16).index_select(0, batch)


def _check_pyg_ratio(ratio: object, min_score: object) -> None:
    """``ratio``: an int ``k >= 1`` or a float in ``(0, 1]``; ``min_score``: ``None`` or a float."""
    if min_score is not None and (isinstance(min_score, bool) or not isinstance(min_score, (int, float))):
        raise ValueError(f"Expected 'min_score' to be None or a float (got {min_score!r})")
    if ratio is None:
        if min_score is None:
            raise ValueError("At least one of 'ratio' and 'min_score' must be given (got both None)")
        return
    if isinstance(ratio, bool) or not isinstance(ratio, (int, float)):
        raise ValueError(f"Expected 'ratio' to be an int k >= 1 or a float in (0, 1] (got {ratio!r})")
    if isinstance(ratio, int) and ratio < 1:
        raise ValueError(f"Expected an int 'ratio' (nodes kept per graph) >= 1 (got {ratio})")
    if isinstance(ratio, float) and not 0.0 < ratio <= 1.0:
        raise ValueError(f"Expected a float 'ratio' in (0, 1]; pass an int for a node count (got {ratio!r})")


def per_graph_topk_pool(
    x: Tensor,
    score: Tensor,
    edge_index: GraphLike | None = None,
    edge_attr: Tensor | None = None,
    batch: Tensor | None = None,
    *,
    ratio: float | int | None = 0.5,
    min_score: float | None = None,
    nonlinearity: str = "tanh",
    size: int | None = None,
    multiplier: float = 1.0,
) -> PooledGraph:
    r"""PyG's top-k node selection and edge filtering (``SelectTopK`` + ``FilterEdges``), per graph.

    With ``min_score=None``: :math:`\mathbf{y} = \sigma(\mathbf{s})` and each graph keeps its
    ``ceil(ratio * N_b)`` best nodes (``ratio`` a float) or ``min(ratio, N_b)`` (an int). With
    ``min_score``: :math:`\mathbf{y} = \operatorname{softmax}_b(\mathbf{s})` and a node is kept
    when :math:`y_i > \min(\tilde\alpha, \max_b y - 10^{-7})` (so every graph keeps at least
    its best node). Then :math:`\mathbf{X}' = \text{multiplier} \cdot (\mathbf{X} \odot
    \mathbf{y})_{\mathbf{i}}` and the edges among the kept nodes, relabelled to ``[0, M)``.

    The number of kept nodes depends on the data (host synchronisations:
    ``torch.compile(fullgraph=True)`` traces it only with ``torch._dynamo.config``'s
    ``capture_scalar_outputs`` and ``capture_dynamic_output_shape_ops`` on; ``torch.export``
    traces it); :func:`topk_pool` / :func:`sag_pool` are the static-shape alternatives. A float ``ratio=1.0`` keeps every node (PyG's code reads any ``ratio >= 1`` as
    a count, so it keeps one). The kept edges are read from the target-sorted CSR of the graph,
    not by scanning all ``E`` edges, and come out sorted by target.

    Args:
        x: Flat ``(N, F)`` node features.
        score: ``(N,)`` (or ``(N, 1)``) raw scores :math:`\mathbf{s}`: PyG's ``TopKPooling`` uses
            :math:`\mathbf{X}\mathbf{p} / \lVert\mathbf{p}\rVert` (without the norm when
            ``min_score`` is set).
        edge_index: Optional ``(2, E)`` or ``GraphStructure`` over the ``N`` nodes.
        edge_attr: Optional ``(E, *)`` edge attributes, filtered alike.
        batch: ``(N,)`` graph id of every node (``None``: one graph); need not be sorted.
        ratio: Nodes kept per graph: a float fraction (``ceil``) or an int count.
        min_score: Keep nodes whose softmax score exceeds it instead (``ratio`` is ignored).
        nonlinearity: :math:`\sigma`: ``"tanh"`` (PyG), ``"sigmoid"`` or ``"none"``.
        size: Number of graphs (default ``batch.max() + 1``).
        multiplier: Factor on the kept features.

    Returns:
        A :class:`PooledGraph` ``(x, edge_index, edge_attr, batch, perm, score)`` with ``.graph``.

    Shape:
        - x: :math:`(N, F)`; score, batch: :math:`(N,)`
        - edge_index: :math:`(2, E)`; edge_attr: :math:`(E, *)`
        - output: x :math:`(M, F)`; batch, perm, score :math:`(M,)`; edge_index :math:`(2, E')`

    Example:
        >>> x, ei = torch.randn(6, 3), torch.tensor([[0, 1, 3, 4], [1, 2, 4, 5]])
        >>> batch = torch.tensor([0, 0, 0, 1, 1, 1])
        >>> out = graphvision.functional.per_graph_topk_pool(x, torch.randn(6), ei, batch=batch, ratio=0.5)
        >>> out.x.shape, out.batch.tolist()
        (torch.Size([4, 3]), [0, 0, 1, 1])
    """
    x = check_x(x)
    if x.dim() != 2:
        raise ValueError(f"Expected flat 'x' of shape (N, F) (got {tuple(x.shape)}); use topk_pool for (B, N, F)")
    _check_pyg_ratio(ratio, min_score)
    if nonlinearity not in _NONLINEARITIES:
        raise ValueError(f"Unknown nonlinearity {nonlinearity!r}; expected one of {_NONLINEARITIES}")
    check_tensor(score, "score")
    if score.dim() == 2 and score.size(1) == 1:
        score = score.view(-1)
    if score.shape != (x.size(0),):
        raise ValueError(f"Expected 'score' of shape (N,) = ({x.size(0)},) (got {tuple(score.shape)})")
    check_floating(score, "score")
    batch, size = _resolve_batch(x, batch, size)
    y = _activate(score, nonlinearity) if min_score is None else _segment_softmax(score, batch, size)
    perm = _topk_perm(y, ratio, batch, size, min_score)
    kept_score = y.index_select(0, perm)
    out_x = x.index_select(0, perm) * kept_score.unsqueeze(-1)
    if multiplier != 1.0:
        out_x = out_x * multiplier
    out_batch = batch.index_select(0, perm)
    if edge_index is None:
        if edge_attr is not None:
            raise ValueError("'edge_attr' was given without 'edge_index'")
        return PooledGraph(out_x, None, None, out_batch, perm, kept_score)
    gi = GraphInput(_graph_of(edge_index, x.size(0), x), None, x.size(0), None, False)
    table = torch.full((x.size(0),), -1, dtype=torch.long, device=x.device)
    table[perm] = torch.arange(perm.numel(), device=x.device)
    ea = _check_edge_attr(edge_attr, gi)
    ei, ea, g = _filter_graph(gi.graph, perm, None, None, table, ea)  # type: ignore[arg-type]
    return PooledGraph(out_x, ei, ea, out_batch, perm, kept_score, g)


def topk_pool(
    x: Tensor,
    weight: Tensor,
    k: int | None = None,
    ratio: float | None = None,
    *,
    batch: Tensor | None = None,
    size: int | None = None,
    mask: Tensor | None = None,
    max_num_nodes: int | None = None,
    nonlinearity: str = "tanh",
    edge_index: GraphLike | None = None,
    edge_attr: Tensor | None = None,
    multiplier: float = 1.0,
) -> TopKOutput:
    r"""Top-k pooling of Gao & Ji, `"Graph U-Nets" <https://arxiv.org/abs/1905.05178>`_, with static shapes.

    .. math::
        \mathbf{y} = \sigma\Big(\frac{\mathbf{X}\mathbf{p}}{\lVert \mathbf{p} \rVert}\Big), \quad
        \mathbf{i} = \operatorname{top}_k(\mathbf{y}), \quad
        \mathbf{X}' = \big(\mathbf{X} \odot \mathbf{y}\big)_{\mathbf{i}}

    Keeps a **fixed** ``k`` (or ``ceil(ratio * N)``) nodes per graph so that shapes are static:
    the result is ``(B, k, F)`` with a mask. For batched ``(B, N, F)`` input ``N`` is the node count
    of every graph (padded graphs: pass ``mask``); for flat ``(N, F)`` input with a sorted ``batch``
    the graphs are first padded to ``max_num_nodes`` and ``ratio`` refers to it, not to each
    graph's own size (unlike PyG, whose per-graph ``k`` gives data-dependent shapes). Slots beyond a
    graph's real nodes have ``mask=False`` and zero features. Kept nodes are in descending score
    order. The score receives gradients through the gating, as in the paper.

    Args:
        x: Batched ``(B, N, F)`` or flat ``(N, F)`` with ``batch``.
        weight: ``(F,)`` projection vector :math:`\mathbf{p}`.
        k: Nodes kept per graph.
        ratio: Alternatively, the fraction of ``N`` kept (``ceil``).
        batch: ``(N,)`` sorted graph ids (flat ``x`` only).
        size: Number of graphs (flat ``x``).
        mask: ``(B, N)`` bool real nodes (batched ``x``).
        max_num_nodes: Padded size per graph (flat ``x``).
        nonlinearity: ``"tanh"`` (paper, PyG), ``"sigmoid"`` or ``"none"``.
        edge_index: Optional graph of ``x`` (``(2, E)`` or ``GraphStructure``: over the ``N``
            nodes of one graph, shared by a ``(B, N, F)`` batch, or over all flat nodes; or a list
            of ``B`` per-sample graphs): the pooled graph is then attached to the result.
        edge_attr: Optional ``(E, *)`` edge attributes (a list for per-sample graphs), filtered alike.
        multiplier: Factor on the kept features (PyG's ``multiplier``).

    Returns:
        A :class:`TopKOutput` ``(x, index, mask, score)``, with ``edge_index``, ``edge_attr``,
        ``graph`` and ``batch`` of the pooled graph when ``edge_index`` is given.

    Shape:
        - x: :math:`(B, N, F)` or :math:`(N, F)`
        - weight: :math:`(F,)`
        - output: x :math:`(B, k, F)`; index, mask, score :math:`(B, k)`

    Example:
        >>> x = torch.randn(2, 16, 8)
        >>> out = graphvision.functional.topk_pool(x, torch.randn(8), ratio=0.5)
        >>> out.x.shape, out.index.shape, out.mask.shape
        (torch.Size([2, 8, 8]), torch.Size([2, 8]), torch.Size([2, 8]))
    """
    x = check_x(x)
    _reject_batch_for_batched(x, batch)
    mask = _check_mask(mask, x)
    check_tensor(weight, "weight")
    if weight.dim() != 1 or weight.size(0) != x.size(-1):
        raise ValueError(f"Expected 'weight' of shape (F,) = ({x.size(-1)},) (got {tuple(weight.shape)})")
    score = (x * weight).sum(-1) / weight.norm(p=2)
    graph = _static_graph(x, edge_index, batch, edge_attr)
    sel = _Selection(k, ratio, nonlinearity, multiplier)
    return _select(x, score, sel, batch, size, mask, max_num_nodes, graph, edge_attr)


def sag_pool(
    x: Tensor,
    score: Tensor,
    k: int | None = None,
    ratio: float | None = None,
    *,
    batch: Tensor | None = None,
    size: int | None = None,
    mask: Tensor | None = None,
    max_num_nodes: int | None = None,
    nonlinearity: str = "tanh",
    edge_index: GraphLike | None = None,
    edge_attr: Tensor | None = None,
    multiplier: float = 1.0,
) -> TopKOutput:
    r"""Self-attention graph pooling of Lee et al., `"Self-Attention Graph Pooling"
    <https://arxiv.org/abs/1904.08082>`_, given the GNN scores, with static shapes.

    .. math::
        \mathbf{y} = \sigma\big(\mathrm{GNN}(\mathbf{X}, \mathbf{A})\big), \quad
        \mathbf{i} = \operatorname{top}_k(\mathbf{y}), \quad
        \mathbf{X}' = \big(\mathbf{X} \odot \mathbf{y}\big)_{\mathbf{i}}

    Same selection and static-shape rules as :func:`topk_pool`; the scores come from a graph
    convolution (:class:`graphvision.nn.SAGPooling` uses a one-channel GCN).

    Args:
        x: Batched ``(B, N, F)`` or flat ``(N, F)`` with ``batch``.
        score: Raw scores, ``(B, N)`` (or ``(B, N, 1)``) batched, ``(N,)`` (or ``(N, 1)``) flat.
        k: Nodes kept per graph.
        ratio: Alternatively, the fraction of ``N`` kept (``ceil``).
        batch: ``(N,)`` sorted graph ids (flat ``x`` only).
        size: Number of graphs (flat ``x``).
        mask: ``(B, N)`` bool real nodes (batched ``x``).
        max_num_nodes: Padded size per graph (flat ``x``).
        nonlinearity: ``"tanh"`` (paper, PyG), ``"sigmoid"`` or ``"none"``.
        edge_index: Optional graph of ``x`` (``(2, E)`` or ``GraphStructure``: over the ``N``
            nodes of one graph, shared by a ``(B, N, F)`` batch, or over all flat nodes; or a list
            of ``B`` per-sample graphs): the pooled graph is then attached to the result.
        edge_attr: Optional ``(E, *)`` edge attributes (a list for per-sample graphs), filtered alike.
        multiplier: Factor on the kept features (PyG's ``multiplier``).

    Returns:
        A :class:`TopKOutput` ``(x, index, mask, score)``, with ``edge_index``, ``edge_attr``,
        ``graph`` and ``batch`` of the pooled graph when ``edge_index`` is given.

    Shape:
        - x: :math:`(B, N, F)` or :math:`(N, F)`
        - score: :math:`(B, N)` or :math:`(N,)`
        - output: x :math:`(B, k, F)`; index, mask, score :math:`(B, k)`

    Example:
        >>> x = torch.randn(2, 16, 8)
        >>> out = graphvision.functional.sag_pool(x, torch.randn(2, 16), k=4)
        >>> out.x.shape
        torch.Size([2, 4, 8])
    """
    x = check_x(x)
    _reject_batch_for_batched(x, batch)
    graph = _static_graph(x, edge_index, batch, edge_attr)
    sel = _Selection(k, ratio, nonlinearity, multiplier)
    return _sag(x, score, sel, batch, size, mask, max_num_nodes, graph, edge_attr)


def _sag(
    x: Tensor,
    score: Tensor,
    sel: _Selection,
    batch: Tensor | None,
    size: int | None,
    mask: Tensor | None,
    max_num_nodes: int | None,
    graph: GraphInput | None,
    edge_attr: object,
) -> TopKOutput:
    """:func:`sag_pool` after the graph was resolved (the modules resolve offset graphs themselves)."""
    mask = _check_mask(mask, x)
    check_tensor(score, "score")
    if score.dim() == x.dim() and score.size(-1) == 1:
        score = score.squeeze(-1)
    if score.shape != x.shape[:-1]:
        raise ValueError(f"Expected 'score' of shape {tuple(x.shape[:-1])} (got {tuple(score.shape)})")
    check_floating(score, "score")
    return _select(x, score, sel, batch, size, mask, max_num_nodes, graph, edge_attr)


def _static_graph(
    x: Tensor, edge_index: GraphLike | None, batch: Tensor | None, edge_attr: object
) -> GraphInput | None:
    if edge_index is None:
        if edge_attr is not None:
            raise ValueError("'edge_attr' was given without 'edge_index'")
        return None
    return resolve_graph(x, edge_index, None, batch if x.dim() == 2 else None)[1]
