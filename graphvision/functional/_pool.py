r"""Graph pooling as functions: global readouts, attention readout, top-k selection.

Two input layouts:

- **flat** ``x`` of shape ``(N, F)`` with a ``batch`` vector ``(N,)`` assigning each node to one
  of ``num_graphs`` graphs (PyG's mini-batch layout). Pass ``num_graphs``: without it the count
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

from graphvision._checks import check_floating, check_index, check_tensor, sync_checks_enabled
from graphvision.functional._mp import attention_pool, scatter

__all__ = [
    "global_sum_pool",
    "global_mean_pool",
    "global_max_pool",
    "attention_pooling",
    "TopKOutput",
    "topk_pool",
    "sag_pool",
]


# --------------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------------


def _check_pool_x(x: object, name: str = "x") -> Tensor:
    x = check_tensor(x, name)
    if x.dim() not in (2, 3):
        raise ValueError(f"Expected '{name}' of shape (N, F) or (B, N, F) (got {tuple(x.shape)})")
    check_floating(x, name)
    return x


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


def _resolve_batch(x: Tensor, batch: Tensor | None, num_graphs: int | None) -> tuple[Tensor, int]:
    """For flat ``x``: a validated ``batch`` and ``num_graphs`` (one graph when ``batch`` is None)."""
    if batch is None:
        if num_graphs not in (None, 1):
            raise ValueError(f"Without 'batch', all nodes form one graph; 'num_graphs' must be 1 (got {num_graphs})")
        return torch.zeros(x.size(0), dtype=torch.long, device=x.device), 1
    check_tensor(batch, "batch")
    if batch.dim() != 1 or batch.size(0) != x.size(0):
        raise ValueError(f"Expected 'batch' of shape (N,) = ({x.size(0)},) (got {tuple(batch.shape)})")
    if batch.device != x.device:
        raise ValueError(f"Expected 'batch' on the same device as 'x' ({x.device}) (got {batch.device})")
    if num_graphs is None:
        num_graphs = int(batch.max()) + 1 if batch.numel() > 0 else 0
    elif isinstance(num_graphs, bool) or not isinstance(num_graphs, int) or num_graphs < 0:
        raise ValueError(f"Expected 'num_graphs' to be a non-negative int (got {num_graphs!r})")
    check_index(batch, num_graphs, "batch", dim_name="num_graphs")
    return batch, num_graphs


def _reject_batch_for_batched(x: Tensor, batch: Tensor | None) -> None:
    if x.dim() == 3 and batch is not None:
        raise ValueError(
            f"Batched 'x' of shape (B, N, F) = {tuple(x.shape)} holds one graph per sample; do not pass "
            "'batch' (use flat x of shape (N, F) with 'batch' for graphs of different sizes)"
        )


# --------------------------------------------------------------------------------------------
# global pools
# --------------------------------------------------------------------------------------------


def _global_pool(x: Tensor, batch: Tensor | None, num_graphs: int | None, mask: Tensor | None, reduce: str) -> Tensor:
    x = _check_pool_x(x)
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
    batch, num_graphs = _resolve_batch(x, batch, num_graphs)
    return scatter(x, batch, num_graphs, reduce)


def global_sum_pool(
    x: Tensor, batch: Tensor | None = None, num_graphs: int | None = None, *, mask: Tensor | None = None
) -> Tensor:
    r"""Sum of the node features of each graph: :math:`\mathbf{r}_b = \sum_{i \in b} \mathbf{x}_i`.

    Args:
        x: Flat ``(N, F)`` with ``batch``, or batched ``(B, N, F)``.
        batch: ``(N,)`` graph id of each node (flat ``x`` only; ``None``: one graph).
        num_graphs: Number of graphs ``B`` (pass it: avoids a host synchronisation).
        mask: Optional ``(B, N)`` bool, real nodes of padded batched graphs.

    Returns:
        The ``(B, F)`` readout.

    Shape:
        - x: :math:`(N, F)` or :math:`(B, N, F)`
        - batch: :math:`(N,)`
        - output: :math:`(B, F)`

    Example:
        >>> x, batch = torch.randn(5, 3), torch.tensor([0, 0, 1, 1, 1])
        >>> graphvision.functional.global_sum_pool(x, batch, num_graphs=2).shape
        torch.Size([2, 3])
    """
    return _global_pool(x, batch, num_graphs, mask, "sum")


def global_mean_pool(
    x: Tensor, batch: Tensor | None = None, num_graphs: int | None = None, *, mask: Tensor | None = None
) -> Tensor:
    r"""Mean of the node features of each graph: :math:`\mathbf{r}_b = \frac{1}{|b|}\sum_{i \in b} \mathbf{x}_i`.

    Graphs without nodes get 0.

    Args:
        x: Flat ``(N, F)`` with ``batch``, or batched ``(B, N, F)``.
        batch: ``(N,)`` graph id of each node (flat ``x`` only; ``None``: one graph).
        num_graphs: Number of graphs ``B`` (pass it: avoids a host synchronisation).
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
    return _global_pool(x, batch, num_graphs, mask, "mean")


def global_max_pool(
    x: Tensor, batch: Tensor | None = None, num_graphs: int | None = None, *, mask: Tensor | None = None
) -> Tensor:
    r"""Feature-wise maximum over the nodes of each graph: :math:`\mathbf{r}_b = \max_{i \in b} \mathbf{x}_i`.

    Graphs without nodes get 0.

    Args:
        x: Flat ``(N, F)`` with ``batch``, or batched ``(B, N, F)``.
        batch: ``(N,)`` graph id of each node (flat ``x`` only; ``None``: one graph).
        num_graphs: Number of graphs ``B`` (pass it: avoids a host synchronisation).
        mask: Optional ``(B, N)`` bool, real nodes of padded batched graphs.

    Returns:
        The ``(B, F)`` readout.

    Shape:
        - x: :math:`(N, F)` or :math:`(B, N, F)`
        - batch: :math:`(N,)`
        - output: :math:`(B, F)`

    Example:
        >>> x, batch = torch.randn(5, 3), torch.tensor([0, 0, 1, 1, 1])
        >>> graphvision.functional.global_max_pool(x, batch, num_graphs=2).shape
        torch.Size([2, 3])
    """
    return _global_pool(x, batch, num_graphs, mask, "max")


# --------------------------------------------------------------------------------------------
# attention readout
# --------------------------------------------------------------------------------------------


def attention_pooling(
    x: Tensor,
    gate: Tensor,
    batch: Tensor | None = None,
    num_graphs: int | None = None,
    *,
    mask: Tensor | None = None,
    return_attention: bool = False,
) -> Tensor | tuple[Tensor, Tensor]:
    r"""Attention readout: softmax of gate scores within each graph, then the weighted feature sum.

    .. math::
        a^{k}_i = \frac{\exp g^{k}_i}{\sum_{j \in b(i)} \exp g^{k}_j}, \qquad
        \mathbf{r}^{k}_b = \sum_{i \in b} a^{k}_i\, \mathbf{x}_i

    for :math:`K` heads of gate scores :math:`g`, on :func:`graphvision.ops.attention_pool`. The
    normalised scores :math:`a` are the per-node attention heatmap.

    Args:
        x: Flat ``(N, F)`` with ``batch``, or batched ``(B, N, F)``.
        gate: Gate logits: ``(N,)`` / ``(N, K)`` for flat ``x``, ``(B, N)`` / ``(B, N, K)`` batched.
        batch: ``(N,)`` graph id of each node (flat ``x`` only; ``None``: one graph).
        num_graphs: Number of graphs (pass it: avoids a host synchronisation).
        mask: Optional ``(B, N)`` bool, real nodes of padded batched graphs (others get weight 0).
        return_attention: Also return the normalised scores.

    Returns:
        ``(B, F)`` (1-D/2-D gate) or ``(B, K, F)``, and with ``return_attention`` the scores in the
        shape of ``gate``.

    Shape:
        - x: :math:`(N, F)` or :math:`(B, N, F)`
        - gate: :math:`(N, K)` or :math:`(B, N, K)` (or without the :math:`K` axis)
        - output: :math:`(B, K, F)` (or :math:`(B, F)`)

    Example:
        >>> x, gate = torch.randn(2, 9, 3), torch.randn(2, 9, 4)
        >>> out, attn = graphvision.functional.attention_pooling(x, gate, return_attention=True)
        >>> out.shape, attn.shape
        (torch.Size([2, 4, 3]), torch.Size([2, 9, 4]))
    """
    x = _check_pool_x(x)
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
        out, attn = attention_pool(x.reshape(bsz * n, f), g.reshape(bsz * n, k), batch_v, bsz)
        if mask is not None:
            attn = attn.nan_to_num(0.0)
            out = out.nan_to_num(0.0)
        attn = attn.view(bsz, n, k)
    else:
        batch, num_graphs = _resolve_batch(x, batch, num_graphs)
        out, attn = attention_pool(x, g, batch, num_graphs)
    if squeeze:
        out, attn = out.squeeze(-2), attn.squeeze(-1)
    if return_attention:
        return out, attn
    return out


# --------------------------------------------------------------------------------------------
# top-k selection
# --------------------------------------------------------------------------------------------


class TopKOutput(NamedTuple):
    """Result of :func:`topk_pool` / :func:`sag_pool` (and the pooling modules).

    Attributes:
        x: ``(B, k, F)`` kept node features, gated by their score.
        index: ``(B, k)`` index of each kept node in ``x``'s node axis (batched input: ``[0, N)``;
            flat input: the global node index ``[0, N_total)``).
        mask: ``(B, k)`` bool, ``False`` for padding slots (graphs with fewer than ``k`` real nodes).
        score: ``(B, k)`` gate value of each kept node (after the nonlinearity).

    Shape:
        - x: :math:`(B, k, F)`
        - index, mask, score: :math:`(B, k)`

    Example:
        >>> out = graphvision.functional.sag_pool(torch.randn(2, 5, 3), torch.randn(2, 5), k=2)
        >>> out.x.shape, out.index.shape, out.mask.all().item()
        (torch.Size([2, 2, 3]), torch.Size([2, 2]), True)
    """

    x: Tensor
    index: Tensor
    mask: Tensor
    score: Tensor


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
    x: Tensor, score: Tensor, batch: Tensor, num_graphs: int, max_num_nodes: int | None
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Flat sorted-batch nodes -> padded ``(B, M, F)``, ``(B, M)`` scores, mask and global index."""
    if max_num_nodes is None:
        raise ValueError(
            "Flat 'x' of shape (N, F) needs 'max_num_nodes' (the size of the largest graph) to keep static shapes"
        )
    counts = scatter(torch.ones_like(batch, dtype=x.dtype), batch, num_graphs, "sum").long()
    ptr = torch.cumsum(counts, 0) - counts
    pos = torch.arange(x.size(0), device=x.device) - ptr.index_select(0, batch)
    if sync_checks_enabled() and x.size(0) > 0:
        if int(pos.min()) < 0:
            raise ValueError("Expected 'batch' sorted in ascending order (graphs stored contiguously)")
        if int(pos.max()) >= max_num_nodes:
            raise ValueError(f"A graph has more than max_num_nodes={max_num_nodes} nodes (got {int(pos.max()) + 1})")
    flat = batch * max_num_nodes + pos
    dense_x = x.new_zeros(num_graphs * max_num_nodes, x.size(1)).index_copy(0, flat, x)
    dense_s = score.new_zeros(num_graphs * max_num_nodes).index_copy(0, flat, score)
    mask = torch.zeros(num_graphs * max_num_nodes, dtype=torch.bool, device=x.device).index_fill(0, flat, True)
    gidx = (ptr.unsqueeze(1) + torch.arange(max_num_nodes, device=x.device)).reshape(-1)
    return (
        dense_x.view(num_graphs, max_num_nodes, -1),
        dense_s.view(num_graphs, max_num_nodes),
        mask.view(num_graphs, max_num_nodes),
        gidx.view(num_graphs, max_num_nodes),
    )


_NONLINEARITIES = ("tanh", "sigmoid", "none")


def _select(
    x: Tensor,
    score: Tensor,
    k: int | None,
    ratio: float | None,
    batch: Tensor | None,
    num_graphs: int | None,
    mask: Tensor | None,
    max_num_nodes: int | None,
    nonlinearity: str,
) -> TopKOutput:
    if nonlinearity not in _NONLINEARITIES:
        raise ValueError(f"Unknown nonlinearity {nonlinearity!r}; expected one of {_NONLINEARITIES}")
    if nonlinearity == "tanh":
        score = torch.tanh(score)
    elif nonlinearity == "sigmoid":
        score = torch.sigmoid(score)
    gidx: Tensor | None = None
    if x.dim() == 2:
        batch, num_graphs = _resolve_batch(x, batch, num_graphs)
        if max_num_nodes is None and num_graphs == 1:
            max_num_nodes = x.size(0)
        x, score, mask, gidx = _to_dense(x, score, batch, num_graphs, max_num_nodes)
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
    kept_mask = torch.ones_like(idx, dtype=torch.bool) if mask is None else mask.gather(1, idx)
    kept_x = kept_x * kept_mask.unsqueeze(-1).to(kept_x.dtype)
    kept_score = kept_score * kept_mask.to(kept_score.dtype)
    index = idx if gidx is None else gidx.gather(1, idx)
    index = index.masked_fill(~kept_mask, 0)
    return TopKOutput(kept_x, index, kept_mask, kept_score)


def topk_pool(
    x: Tensor,
    weight: Tensor,
    k: int | None = None,
    ratio: float | None = None,
    *,
    batch: Tensor | None = None,
    num_graphs: int | None = None,
    mask: Tensor | None = None,
    max_num_nodes: int | None = None,
    nonlinearity: str = "tanh",
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
        num_graphs: Number of graphs (flat ``x``).
        mask: ``(B, N)`` bool real nodes (batched ``x``).
        max_num_nodes: Padded size per graph (flat ``x``).
        nonlinearity: ``"tanh"`` (paper, PyG), ``"sigmoid"`` or ``"none"``.

    Returns:
        A :class:`TopKOutput` ``(x, index, mask, score)``.

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
    x = _check_pool_x(x)
    _reject_batch_for_batched(x, batch)
    mask = _check_mask(mask, x)
    check_tensor(weight, "weight")
    if weight.dim() != 1 or weight.size(0) != x.size(-1):
        raise ValueError(f"Expected 'weight' of shape (F,) = ({x.size(-1)},) (got {tuple(weight.shape)})")
    score = (x * weight).sum(-1) / weight.norm(p=2)
    return _select(x, score, k, ratio, batch, num_graphs, mask, max_num_nodes, nonlinearity)


def sag_pool(
    x: Tensor,
    score: Tensor,
    k: int | None = None,
    ratio: float | None = None,
    *,
    batch: Tensor | None = None,
    num_graphs: int | None = None,
    mask: Tensor | None = None,
    max_num_nodes: int | None = None,
    nonlinearity: str = "tanh",
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
        num_graphs: Number of graphs (flat ``x``).
        mask: ``(B, N)`` bool real nodes (batched ``x``).
        max_num_nodes: Padded size per graph (flat ``x``).
        nonlinearity: ``"tanh"`` (paper, PyG), ``"sigmoid"`` or ``"none"``.

    Returns:
        A :class:`TopKOutput` ``(x, index, mask, score)``.

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
    x = _check_pool_x(x)
    _reject_batch_for_batched(x, batch)
    mask = _check_mask(mask, x)
    check_tensor(score, "score")
    if score.dim() == x.dim() and score.size(-1) == 1:
        score = score.squeeze(-1)
    if score.shape != x.shape[:-1]:
        raise ValueError(f"Expected 'score' of shape {tuple(x.shape[:-1])} (got {tuple(score.shape)})")
    check_floating(score, "score")
    return _select(x, score, k, ratio, batch, num_graphs, mask, max_num_nodes, nonlinearity)
