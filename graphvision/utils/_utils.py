"""PyG-compatible graph utilities (see :mod:`graphvision.utils`)."""

from __future__ import annotations

from typing import Union

import torch
from torch import Tensor

from graphvision._checks import check_choice, check_tensor
from graphvision.structure import GraphStructure

__all__ = [
    "degree",
    "remove_self_loops",
    "add_self_loops",
    "coalesce",
    "subgraph",
    "to_dense_batch",
    "to_dense_adj",
    "dropout_edge",
]

EdgeLike = Union[Tensor, GraphStructure]
_REDUCES = ("sum", "add", "mean", "max", "min", "mul")


def _edges(edge_index: EdgeLike, num_nodes: int | None) -> tuple[Tensor, int | None]:
    """``(edge_index, num_nodes)``; a structure gives its edges and, by default, its node count."""
    if isinstance(edge_index, GraphStructure):
        return edge_index.edge_index, edge_index.num_nodes if num_nodes is None else num_nodes
    check_tensor(edge_index, "edge_index")
    if edge_index.dim() != 2 or edge_index.size(0) != 2:
        raise ValueError(f"Expected 'edge_index' of shape (2, E) or a GraphStructure (got {tuple(edge_index.shape)})")
    if edge_index.dtype not in (torch.int64, torch.int32):
        raise TypeError(f"Expected 'edge_index' of dtype torch.int64 or torch.int32 (got {edge_index.dtype})")
    return edge_index, num_nodes


def _num_nodes(edge_index: Tensor, num_nodes: int | None) -> int:
    if num_nodes is not None:
        return int(num_nodes)
    return int(edge_index.max()) + 1 if edge_index.numel() > 0 else 0


def _check_attr(edge_attr: Tensor | None, num_edges: int) -> None:
    if edge_attr is not None:
        check_tensor(edge_attr, "edge_attr")
        if edge_attr.dim() < 1 or edge_attr.size(0) != num_edges:
            raise ValueError(f"Expected 'edge_attr' of shape (E, *) with E={num_edges} (got {tuple(edge_attr.shape)})")


def _scatter(src: Tensor, index: Tensor, dim_size: int, reduce: str) -> Tensor:
    """PyG's ``scatter`` over dim 0 (empty rows 0)."""
    reduce = "sum" if reduce == "add" else reduce
    shape = (dim_size,) + tuple(src.shape[1:])
    idx = index.long().view((-1,) + (1,) * (src.dim() - 1)).expand_as(src)
    if reduce == "sum":
        return src.new_zeros(shape).index_add_(0, index.long(), src)
    op = {"mean": "mean", "max": "amax", "min": "amin", "mul": "prod"}[reduce]
    return src.new_zeros(shape).scatter_reduce_(0, idx, src, op, include_self=False)


def degree(index: Tensor, num_nodes: int | None = None, dtype: torch.dtype | None = None) -> Tensor:
    r"""Number of occurrences of each value of ``index`` (PyG's ``degree``).

    ``degree(edge_index[1], N)`` is the in-degree, ``degree(edge_index[0], N)`` the out-degree
    (duplicate edges counted).

    Args:
        index: ``(E,)`` integer indices.
        num_nodes: Output size ``N`` (default ``index.max() + 1``, a host read).
        dtype: Output dtype (default: the default float dtype, as PyG).

    Returns:
        ``(N,)`` counts.

    Shape:
        - index: :math:`(E,)`
        - output: :math:`(N,)`

    Example:
        >>> graphvision.utils.degree(torch.tensor([0, 1, 0, 2]), 4)
        tensor([2., 1., 1., 0.])
    """
    check_tensor(index, "index")
    if index.dim() != 1:
        raise ValueError(f"Expected 'index' of shape (E,) (got {tuple(index.shape)})")
    n = _num_nodes(index, num_nodes)
    out = torch.zeros(n, dtype=dtype, device=index.device)
    return out.index_add_(0, index.long(), torch.ones(index.numel(), dtype=out.dtype, device=index.device))


def remove_self_loops(edge_index: EdgeLike, edge_attr: Tensor | None = None) -> tuple[Tensor, Tensor | None]:
    r"""Drop every edge :math:`i \to i` (PyG's ``remove_self_loops``).

    Args:
        edge_index: ``(2, E)`` or a ``GraphStructure``.
        edge_attr: Optional ``(E, *)`` edge features, filtered the same way.

    Returns:
        ``(edge_index, edge_attr)`` without the loops, in the input order.

    Shape:
        - edge_index: :math:`(2, E)`
        - edge_attr: :math:`(E, *)`, optional
        - output: :math:`(2, E')`, :math:`(E', *)`

    Example:
        >>> ei, _ = graphvision.utils.remove_self_loops(torch.tensor([[0, 1, 1], [0, 2, 1]]))
        >>> ei
        tensor([[1],
                [2]])
    """
    ei, _ = _edges(edge_index, None)
    _check_attr(edge_attr, ei.size(1))
    mask = ei[0] != ei[1]
    return ei[:, mask], None if edge_attr is None else edge_attr[mask]


def add_self_loops(
    edge_index: EdgeLike,
    edge_attr: Tensor | None = None,
    fill_value: float | Tensor | str | None = None,
    num_nodes: int | None = None,
) -> tuple[Tensor, Tensor | None]:
    r"""Append a loop :math:`i \to i` for every node (PyG's ``add_self_loops``; existing loops stay).

    Args:
        edge_index: ``(2, E)`` or a ``GraphStructure``.
        edge_attr: Optional ``(E, *)`` edge features.
        fill_value: Features of the new loops: ``None`` (1), a float, a tensor of the feature
            shape, or ``"add"``, ``"sum"``, ``"mean"``, ``"max"``, ``"min"``, ``"mul"`` of the
            node's incoming edges' features (0 for none).
        num_nodes: Number of nodes (default: the structure's, or ``edge_index.max() + 1``).

    Returns:
        ``(edge_index, edge_attr)`` with the ``N`` loops appended last.

    Shape:
        - edge_index: :math:`(2, E)`
        - edge_attr: :math:`(E, *)`, optional
        - output: :math:`(2, E + N)`, :math:`(E + N, *)`

    Example:
        >>> ei, _ = graphvision.utils.add_self_loops(torch.tensor([[0], [1]]), num_nodes=2)
        >>> ei
        tensor([[0, 0, 1],
                [1, 0, 1]])
    """
    ei, num_nodes = _edges(edge_index, num_nodes)
    _check_attr(edge_attr, ei.size(1))
    n = _num_nodes(ei, num_nodes)
    loops = torch.arange(n, device=ei.device, dtype=ei.dtype).unsqueeze(0).expand(2, n)
    out_ei = torch.cat([ei, loops], dim=1)
    if edge_attr is None:
        return out_ei, None
    shape = (n,) + tuple(edge_attr.shape[1:])
    if fill_value is None:
        loop = edge_attr.new_ones(shape)
    elif isinstance(fill_value, str):
        check_choice(fill_value, _REDUCES, "fill_value")
        loop = _scatter(edge_attr, ei[1], n, fill_value)
    elif isinstance(fill_value, Tensor):
        loop = fill_value.to(edge_attr.device, edge_attr.dtype).expand(shape)
    else:
        loop = edge_attr.new_full(shape, float(fill_value))
    return out_ei, torch.cat([edge_attr, loop], dim=0)


_MISSING = object()


def coalesce(
    edge_index: EdgeLike,
    edge_attr: Tensor | list[Tensor] | None | object = _MISSING,
    num_nodes: int | None = None,
    reduce: str = "sum",
    is_sorted: bool = False,
    sort_by_row: bool = True,
) -> Tensor | tuple[Tensor, Tensor | list[Tensor] | None]:
    r"""Sort the edges and merge duplicates, reducing their features (PyG's ``coalesce``).

    Args:
        edge_index: ``(2, E)`` or a ``GraphStructure``.
        edge_attr: Optional ``(E, *)`` features or a list of them; not given: only the edges
            are returned (as PyG).
        num_nodes: Number of nodes (default: the structure's, or ``edge_index.max() + 1``).
        reduce: How duplicate features merge: ``"sum"``/``"add"``, ``"mean"``, ``"max"``,
            ``"min"``, ``"mul"``.
        is_sorted: The edges are already sorted (skips the sort).
        sort_by_row: Sort by source then target (else by target then source).

    Returns:
        The coalesced ``edge_index``, or ``(edge_index, edge_attr)`` when ``edge_attr`` was given.

    Shape:
        - edge_index: :math:`(2, E)`
        - edge_attr: :math:`(E, *)`, optional
        - output: :math:`(2, E')` (and :math:`(E', *)`)

    Example:
        >>> graphvision.utils.coalesce(torch.tensor([[1, 0, 1], [0, 1, 0]]))
        tensor([[0, 1],
                [1, 0]])
    """
    ei, num_nodes = _edges(edge_index, num_nodes)
    check_choice(reduce, _REDUCES, "reduce")
    n = _num_nodes(ei, num_nodes)
    attrs = [] if edge_attr is _MISSING or edge_attr is None else (
        list(edge_attr) if isinstance(edge_attr, (list, tuple)) else [edge_attr]  # type: ignore[arg-type]
    )
    for a in attrs:
        _check_attr(a, ei.size(1))
    first, second = (ei[0], ei[1]) if sort_by_row else (ei[1], ei[0])
    key = first.long() * max(n, 1) + second.long()
    if not is_sorted:
        key, perm = torch.sort(key, stable=True)
        ei = ei[:, perm]
        attrs = [a[perm] for a in attrs]
    keep = torch.ones_like(key, dtype=torch.bool)
    if key.numel() > 1:
        keep[1:] = key[1:] > key[:-1]
    out_ei = ei[:, keep]
    if edge_attr is _MISSING:
        return out_ei
    if edge_attr is None:
        return out_ei, None
    group = torch.cumsum(keep.long(), 0) - 1
    merged = [_scatter(a, group, out_ei.size(1), reduce) for a in attrs]
    return out_ei, (merged if isinstance(edge_attr, (list, tuple)) else merged[0])


def subgraph(
    subset: Tensor | list[int],
    edge_index: EdgeLike,
    edge_attr: Tensor | None = None,
    relabel_nodes: bool = False,
    num_nodes: int | None = None,
    *,
    return_edge_mask: bool = False,
) -> tuple[Tensor, Tensor | None] | tuple[Tensor, Tensor | None, Tensor]:
    r"""The edges among the nodes of ``subset`` (PyG's ``subgraph``).

    Args:
        subset: Node indices ``(M,)`` or a boolean mask ``(N,)``.
        edge_index: ``(2, E)`` or a ``GraphStructure``.
        edge_attr: Optional ``(E, *)`` edge features.
        relabel_nodes: Renumber the kept nodes ``0 .. M - 1`` in increasing order of their index.
        num_nodes: Number of nodes (default: the mask's length, the structure's, or
            ``max(edge_index.max(), subset.max()) + 1``).
        return_edge_mask: Also return the ``(E,)`` boolean mask of the kept edges.

    Returns:
        ``(edge_index, edge_attr)`` (and the edge mask) of the kept edges, in the input order.

    Shape:
        - subset: :math:`(M,)` or :math:`(N,)` bool
        - edge_index: :math:`(2, E)`
        - output: :math:`(2, E')`, :math:`(E', *)`

    Example:
        >>> ei = torch.tensor([[0, 1, 2, 3], [1, 2, 3, 0]])
        >>> graphvision.utils.subgraph(torch.tensor([1, 2, 3]), ei, relabel_nodes=True)[0]
        tensor([[0, 1],
                [1, 2]])
    """
    ei, num_nodes = _edges(edge_index, num_nodes)
    _check_attr(edge_attr, ei.size(1))
    if isinstance(subset, (list, tuple)):
        subset = torch.tensor(subset, dtype=torch.long, device=ei.device)
    check_tensor(subset, "subset")
    if subset.dtype == torch.bool:
        node_mask = subset
        n = node_mask.numel()
    else:
        n = num_nodes if num_nodes is not None else max(
            _num_nodes(ei, None), int(subset.max()) + 1 if subset.numel() > 0 else 0
        )
        node_mask = torch.zeros(n, dtype=torch.bool, device=ei.device)
        node_mask[subset.long()] = True
    edge_mask = node_mask[ei[0]] & node_mask[ei[1]] if ei.numel() > 0 else torch.zeros(0, dtype=torch.bool, device=ei.device)
    out = ei[:, edge_mask]
    attr = None if edge_attr is None else edge_attr[edge_mask]
    if relabel_nodes:
        new_id = torch.full((n,), -1, dtype=ei.dtype, device=ei.device)
        new_id[node_mask] = torch.arange(int(node_mask.sum()), dtype=ei.dtype, device=ei.device)
        out = new_id[out]
    if return_edge_mask:
        return out, attr, edge_mask
    return out, attr


def _batch_sizes(batch: Tensor, batch_size: int | None) -> tuple[int, Tensor, Tensor]:
    b = batch_size if batch_size is not None else (int(batch.max()) + 1 if batch.numel() > 0 else 1)
    counts = torch.zeros(b, dtype=torch.long, device=batch.device).index_add_(
        0, batch.long(), torch.ones_like(batch, dtype=torch.long)
    )
    cum = torch.cat([counts.new_zeros(1), counts.cumsum(0)])
    return b, counts, cum


def to_dense_batch(
    x: Tensor,
    batch: Tensor | None = None,
    fill_value: float = 0.0,
    max_num_nodes: int | None = None,
    batch_size: int | None = None,
) -> tuple[Tensor, Tensor]:
    r"""Pad the node features of a batch of graphs into a dense tensor (PyG's ``to_dense_batch``).

    Nodes of graph ``b`` (``batch`` sorted, as PyG assumes) fill row ``b`` in order; with
    ``max_num_nodes`` the extra nodes of larger graphs are dropped.

    Args:
        x: ``(N, *)`` node features.
        batch: ``(N,)`` sorted graph index of each node (default: one graph).
        fill_value: Value of the padding.
        max_num_nodes: Slots per graph (default: the largest graph).
        batch_size: Number of graphs (default ``batch.max() + 1``).

    Returns:
        ``(out, mask)``: ``(B, N_max, *)`` features and the ``(B, N_max)`` mask of real nodes.

    Shape:
        - x: :math:`(N, *)`
        - batch: :math:`(N,)`
        - output: :math:`(B, N_{max}, *)` and :math:`(B, N_{max})`

    Example:
        >>> out, mask = graphvision.utils.to_dense_batch(torch.ones(3, 2), torch.tensor([0, 0, 1]))
        >>> out.shape, mask.tolist()
        (torch.Size([2, 2, 2]), [[True, True], [True, False]])
    """
    check_tensor(x, "x")
    if batch is None and max_num_nodes is None:
        return x.unsqueeze(0), torch.ones(1, x.size(0), dtype=torch.bool, device=x.device)
    if batch is None:
        batch = torch.zeros(x.size(0), dtype=torch.long, device=x.device)
    check_tensor(batch, "batch")
    if batch.dim() != 1 or batch.size(0) != x.size(0):
        raise ValueError(f"Expected 'batch' of shape (N,) with N={x.size(0)} (got {tuple(batch.shape)})")
    b, counts, cum = _batch_sizes(batch, batch_size)
    m = max_num_nodes if max_num_nodes is not None else (int(counts.max()) if counts.numel() > 0 else 0)
    pos = torch.arange(x.size(0), device=x.device) - cum[batch.long()]
    valid = pos < m
    idx = torch.where(valid, batch.long() * m + pos, torch.full_like(pos, b * m))
    out = torch.full((b * m + 1,) + tuple(x.shape[1:]), fill_value, dtype=x.dtype, device=x.device)
    out = out.index_copy(0, idx, x) if x.size(0) > 0 else out
    mask = torch.zeros(b * m + 1, dtype=torch.bool, device=x.device)
    mask[idx] = True
    return out[: b * m].view((b, m) + tuple(x.shape[1:])), mask[: b * m].view(b, m)


def to_dense_adj(
    edge_index: EdgeLike,
    batch: Tensor | None = None,
    edge_attr: Tensor | None = None,
    max_num_nodes: int | None = None,
    batch_size: int | None = None,
) -> Tensor:
    r"""Dense adjacency matrices of a batch of graphs (PyG's ``to_dense_adj``; duplicates summed).

    ``adj[b, i, j]`` sums the weights (1 without ``edge_attr``) of the edges ``i -> j`` of
    graph ``b`` (local indices); edges of nodes beyond ``max_num_nodes`` are dropped.

    Args:
        edge_index: ``(2, E)`` or a ``GraphStructure`` (global node indices).
        batch: ``(N,)`` sorted graph index of each node (default: one graph).
        edge_attr: Optional ``(E, *)`` edge weights or features.
        max_num_nodes: Matrix size (default: the largest graph).
        batch_size: Number of graphs (default ``batch.max() + 1``).

    Returns:
        ``(B, N_max, N_max, *)`` adjacency.

    Shape:
        - edge_index: :math:`(2, E)`
        - batch: :math:`(N,)`
        - output: :math:`(B, N_{max}, N_{max}, *)`

    Example:
        >>> graphvision.utils.to_dense_adj(torch.tensor([[0, 1], [1, 0]]))
        tensor([[[0., 1.],
                 [1., 0.]]])
    """
    ei, num_nodes = _edges(edge_index, None)
    _check_attr(edge_attr, ei.size(1))
    if batch is None:
        n = num_nodes if num_nodes is not None else _num_nodes(ei, None)
        batch = torch.zeros(n, dtype=torch.long, device=ei.device)
    check_tensor(batch, "batch")
    b, counts, cum = _batch_sizes(batch, batch_size)
    bl = batch.long()
    src, dst = ei[0].long(), ei[1].long()
    idx0 = bl[src]
    idx1 = src - cum[bl][src]
    idx2 = dst - cum[bl][dst]
    m = max_num_nodes if max_num_nodes is not None else (int(counts.max()) if counts.numel() > 0 else 0)
    if max_num_nodes is not None:
        keep = (idx1 < m) & (idx2 < m)
        idx0, idx1, idx2 = idx0[keep], idx1[keep], idx2[keep]
        edge_attr = None if edge_attr is None else edge_attr[keep]
    if edge_attr is None:
        edge_attr = torch.ones(idx0.numel(), device=ei.device)
    flat = idx0 * m * m + idx1 * m + idx2
    adj = _scatter(edge_attr, flat, b * m * m, "sum")
    return adj.view((b, m, m) + tuple(edge_attr.shape[1:]))


def dropout_edge(
    edge_index: EdgeLike, p: float = 0.5, force_undirected: bool = False, training: bool = True
) -> tuple[Tensor, Tensor]:
    r"""Drop each edge with probability ``p`` (PyG's ``dropout_edge``; same random draws).

    Args:
        edge_index: ``(2, E)`` or a ``GraphStructure``.
        p: Drop probability in ``[0, 1]``.
        force_undirected: Keep or drop ``i -> j`` and ``j -> i`` together (the kept edges with
            ``i < j`` are returned in both directions; edges with ``i > j`` are dropped).
        training: Only drop in training (else every edge is kept).

    Returns:
        ``(edge_index, edge_mask)``: the kept edges and the ``(E,)`` boolean mask of kept edges
        (with ``force_undirected``: the indices of the kept edges, repeated for both directions).

    Shape:
        - edge_index: :math:`(2, E)`
        - output: :math:`(2, E')` and :math:`(E,)`

    Example:
        >>> ei, mask = graphvision.utils.dropout_edge(torch.tensor([[0, 1], [1, 2]]), p=0.0)
        >>> mask.tolist()
        [True, True]
    """
    ei, _ = _edges(edge_index, None)
    if isinstance(p, bool) or not isinstance(p, (int, float)) or not 0.0 <= float(p) <= 1.0:
        raise ValueError(f"Expected 'p' in [0, 1] (got {p!r})")
    if not training or p == 0.0:
        return ei, torch.ones(ei.size(1), dtype=torch.bool, device=ei.device)
    row, col = ei[0], ei[1]
    edge_mask = torch.rand(row.size(0), device=ei.device) >= p
    if force_undirected:
        edge_mask[row > col] = False
    out = ei[:, edge_mask]
    if force_undirected:
        out = torch.cat([out, out.flip(0)], dim=1)
        edge_mask = edge_mask.nonzero().repeat((2, 1)).squeeze()
    return out, edge_mask
