"""k-nearest-neighbour and radius graphs in feature or position space, pure torch, chunked."""

from __future__ import annotations

import bisect
import math

import torch
import torch.nn.functional as F
from torch import Tensor

from graphvision._checks import (
    check_choice,
    check_floating,
    check_positive_int,
    check_same_device,
    check_shape,
    check_tensor,
    is_compiling,
)

__all__ = ["knn_graph", "radius_graph"]

METRICS = ("euclidean", "cosine")

#: Largest number of entries of one block of pairwise distances (64 MiB in float32). Memory of
#: :func:`knn_graph` / :func:`radius_graph` is O(N * F + _BLOCK_ELEMENTS) whatever N is.
_BLOCK_ELEMENTS = 1 << 24


def _prepare(x: Tensor, metric: str) -> tuple[Tensor, Tensor | None]:
    """Detached working copy (float32 at least) and squared norms (euclidean) or unit rows (cosine)."""
    xc = x.detach()
    if xc.dtype in (torch.float16, torch.bfloat16):
        xc = xc.float()
    if metric == "cosine":
        return F.normalize(xc, dim=-1, eps=1e-12), None
    return xc, (xc * xc).sum(dim=-1)


def _distances(q: Tensor, c: Tensor, q_sq: Tensor | None, c_sq: Tensor | None) -> Tensor:
    """Squared euclidean distances (``q_sq`` given) or cosine distances ``1 - cos``; batched or not."""
    ct = c.transpose(-1, -2)
    if q_sq is None or c_sq is None:
        return torch.matmul(q, ct).neg_().add_(1.0)
    d = q_sq.unsqueeze(-1) + c_sq.unsqueeze(-2)
    if d.dim() == 3:
        d = torch.baddbmm(d, q, ct, alpha=-2.0)
    else:
        d = torch.addmm(d, q, ct, alpha=-2.0)
    return d.clamp_min_(0.0)


def _check_points(x: object, batch: Tensor | None, metric: str, chunk_size: int | None) -> Tensor:
    x = check_tensor(x, "x")
    check_shape(x, ["N", "F"], "x")
    check_floating(x, "x")
    check_choice(metric, METRICS, "metric")
    if chunk_size is not None:
        check_positive_int(chunk_size, "chunk_size")
    if batch is not None:
        check_tensor(batch, "batch")
        if batch.dim() != 1 or batch.size(0) != x.size(0):
            raise ValueError(
                f"Expected 'batch' of shape (N,) with N = x.size(0) = {x.size(0)} (got {tuple(batch.shape)})"
            )
        if batch.dtype not in (torch.int64, torch.int32):
            raise TypeError(f"Expected 'batch' of dtype torch.int64 or torch.int32 (got {batch.dtype})")
        check_same_device("x", x, "batch", batch)
    return x


def _graph_ptr(batch: Tensor) -> list[int]:
    """Host-side node offsets of every graph of a sorted ``batch`` (one device sync)."""
    if int(batch.min()) < 0:
        raise ValueError(f"Expected 'batch' >= 0 (got min {int(batch.min())})")
    if batch.numel() > 1 and not bool((batch[1:] >= batch[:-1]).all()):
        raise ValueError(
            "Expected 'batch' sorted in ascending order (nodes of each graph stored contiguously, as PyG "
            "batches them); sort the nodes by graph first"
        )
    counts = torch.bincount(batch.long()).tolist()
    ptr = [0]
    for c in counts:
        ptr.append(ptr[-1] + c)
    return ptr


def _check_k(k: int, smallest: int, loop: bool, where: str) -> None:
    limit = smallest if loop else smallest - 1
    if k > limit:
        hint = "" if loop else " (k must be smaller than the number of nodes, as a node is not its own neighbour; pass loop=True to count it)"
        raise ValueError(f"Expected 'k' <= {limit} for {where} with {smallest} nodes (got k={k}){hint}")


def _default_rows(max_count: int) -> int:
    # rows * (rows + 2 * max_count) <= _BLOCK_ELEMENTS bounds the block, windows included.
    return max(1, int(-max_count + math.sqrt(max_count * max_count + _BLOCK_ELEMENTS)))


def _knn_dense(x: Tensor, k: int, loop: bool, metric: str, chunk_size: int | None) -> Tensor:
    """kNN within each of ``B`` equally sized point sets ``x (B, n, F)``: local indices ``(B, n, k)``.

    Static shapes only (compiles with ``fullgraph=True``); the caller checks ``k``.
    """
    b, n, _ = x.shape
    xc, sq = _prepare(x, metric)
    rows = chunk_size if chunk_size is not None else max(1, _BLOCK_ELEMENTS // max(b * n, 1))
    cols = torch.arange(n, device=x.device)
    out = []
    for i0 in range(0, n, rows):
        i1 = min(i0 + rows, n)
        d = _distances(xc[:, i0:i1], xc, None if sq is None else sq[:, i0:i1], sq)
        if not loop:
            d = d.masked_fill((cols[i0:i1].unsqueeze(1) == cols.unsqueeze(0)).unsqueeze(0), math.inf)
        out.append(d.topk(k, dim=-1, largest=False, sorted=True).indices)
    return torch.cat(out, dim=1)


def _windows(n: int, ptr: list[int] | None, rows: int) -> list[tuple[int, int, int, int]]:
    """Row chunks ``[i0, i1)`` with the column window ``[c0, c1)`` holding their graphs."""
    out = []
    for i0 in range(0, n, rows):
        i1 = min(i0 + rows, n)
        if ptr is None:
            out.append((i0, i1, 0, n))
        else:
            g0 = bisect.bisect_right(ptr, i0) - 1
            g1 = bisect.bisect_right(ptr, i1 - 1) - 1
            out.append((i0, i1, ptr[g0], ptr[g1 + 1]))
    return out


def _masked_block(
    xc: Tensor, sq: Tensor | None, batch: Tensor | None, loop: bool, i0: int, i1: int, c0: int, c1: int
) -> Tensor:
    d = _distances(xc[i0:i1], xc[c0:c1], None if sq is None else sq[i0:i1], None if sq is None else sq[c0:c1])
    if batch is not None:
        d = d.masked_fill(batch[i0:i1].unsqueeze(1) != batch[c0:c1].unsqueeze(0), math.inf)
    if not loop:
        r = torch.arange(i0, i1, device=xc.device).unsqueeze(1)
        c = torch.arange(c0, c1, device=xc.device).unsqueeze(0)
        d = d.masked_fill(r == c, math.inf)
    return d


def knn_graph(
    x: Tensor,
    k: int,
    batch: Tensor | None = None,
    loop: bool = False,
    metric: str = "euclidean",
    chunk_size: int | None = None,
) -> Tensor:
    r"""Edges from each node's ``k`` nearest neighbours to the node, within each graph.

    PyG semantics (``flow="source_to_target"``): for every node :math:`i` and each of its ``k``
    nearest nodes :math:`j` of the same graph, there is an edge :math:`j \to i`
    (``edge_index[0] = j``, ``edge_index[1] = i``). The result is sorted by target, and the
    ``k`` sources of a target by increasing distance. Ties are broken arbitrarily.

    Distances are euclidean, or the cosine distance :math:`1 - \cos(x_i, x_j)` (a zero vector
    is at distance 1 from everything). They are computed in blocks of at most
    :math:`2^{24}` entries (``chunk_size`` query rows at a time) with matrix products, in float32
    for half-precision input, so peak memory stays :math:`O(NF)` plus one block. Each block only
    spans the graphs of its rows, so the work is :math:`O(\sum_b n_b^2 F)`, not
    :math:`O(N^2 F)`. No gradient flows through the result (it is an index).

    With ``batch`` given, nodes of one graph must be stored contiguously with ``batch`` sorted
    ascending (as PyG batches graphs); this is checked, at the cost of one host
    synchronisation. While ``torch.compile`` traces, the blocks span all nodes instead (no host
    synchronisation, no checks, :math:`O(N^2 F)` work); without ``batch`` the function is
    compile-friendly and sync-free.

    Args:
        x: Node features or positions.
        k: Number of neighbours per node; at most the number of nodes of the smallest non-empty
            graph, minus one unless ``loop``.
        batch: Graph id of every node (sorted), or ``None`` for a single graph.
        loop: Whether a node counts as its own neighbour (distance 0, so it comes first).
        metric: ``"euclidean"`` or ``"cosine"``.
        chunk_size: Query rows per block (default: as many as fit in :math:`2^{24}` entries).

    Returns:
        ``edge_index`` of int64 node ids.

    Raises:
        ValueError: On a wrong shape, ``k`` too large for a graph, an unsorted or mismatched
            ``batch``, or ``batch`` on another device.
        TypeError: On a non-integer ``k`` or non-floating ``x``.

    Shape:
        - x: :math:`(N, F)`
        - batch: :math:`(N,)`
        - output: :math:`(2, N k)`

    Example:
        >>> from graphvision.functional import knn_graph
        >>> x = torch.tensor([[0.0], [1.0], [3.0], [10.0], [11.0]])
        >>> knn_graph(x, k=1, batch=torch.tensor([0, 0, 0, 1, 1]))
        tensor([[1, 0, 1, 4, 3],
                [0, 1, 2, 3, 4]])
    """
    x = _check_points(x, batch, metric, chunk_size)
    k = check_positive_int(k, "k")
    loop = bool(loop)
    n = x.size(0)
    device = x.device
    if n == 0:
        return torch.empty(2, 0, dtype=torch.long, device=device)
    if batch is None:
        _check_k(k, n, loop, "a graph")
        nbr = _knn_dense(x.unsqueeze(0), k, loop, metric, chunk_size)[0]
    else:
        xc, sq = _prepare(x, metric)
        if is_compiling():
            ptr = None
            rows = chunk_size if chunk_size is not None else max(1, _BLOCK_ELEMENTS // n)
        else:
            ptr = _graph_ptr(batch)
            sizes = [b - a for a, b in zip(ptr[:-1], ptr[1:]) if b > a]
            _check_k(k, min(sizes), loop, "the smallest graph in 'batch'")
            rows = chunk_size if chunk_size is not None else _default_rows(max(sizes))
        parts = []
        for i0, i1, c0, c1 in _windows(n, ptr, rows):
            d = _masked_block(xc, sq, batch, loop, i0, i1, c0, c1)
            parts.append(d.topk(k, dim=1, largest=False, sorted=True).indices + c0)
        nbr = torch.cat(parts, dim=0)
    dst = torch.arange(n, device=device).repeat_interleave(k)
    return torch.stack([nbr.reshape(-1), dst])


def radius_graph(
    x: Tensor,
    r: float,
    batch: Tensor | None = None,
    loop: bool = False,
    max_num_neighbors: int | None = 32,
    metric: str = "euclidean",
    chunk_size: int | None = None,
) -> Tensor:
    r"""Edges between all pairs of nodes of the same graph at distance at most ``r``.

    For every node :math:`i` and every node :math:`j` of the same graph with
    :math:`d(x_i, x_j) \le r`, there is an edge :math:`j \to i`; the graph is symmetric unless
    ``max_num_neighbors`` cuts it. With ``max_num_neighbors`` each node keeps its *nearest*
    ``max_num_neighbors`` neighbours within ``r`` (deterministic, unlike a first-found cut).
    The result is sorted by target; a target's sources by increasing distance (or by index
    when ``max_num_neighbors=None``).

    Distances as in :func:`knn_graph` (euclidean, or :math:`1 - \cos` for ``"cosine"``),
    blocked in the same way; points within float rounding of ``r`` may fall either side.
    The number of edges depends on the data, so this function synchronises with the host and
    does not compile with ``fullgraph=True``.

    Args:
        x: Node features or positions.
        r: Radius (``>= 0``).
        batch: Graph id of every node (sorted ascending), or ``None`` for a single graph.
        loop: Whether to keep the edge ``i -> i``.
        max_num_neighbors: Largest number of neighbours kept per node, or ``None`` for all.
        metric: ``"euclidean"`` or ``"cosine"``.
        chunk_size: Query rows per block.

    Returns:
        ``edge_index`` of int64 node ids.

    Shape:
        - x: :math:`(N, F)`
        - batch: :math:`(N,)`
        - output: :math:`(2, E)`

    Example:
        >>> from graphvision.functional import radius_graph
        >>> x = torch.tensor([[0.0], [1.0], [3.0]])
        >>> radius_graph(x, r=1.5)
        tensor([[1, 0],
                [0, 1]])
    """
    x = _check_points(x, batch, metric, chunk_size)
    if isinstance(r, bool) or not isinstance(r, (int, float)):
        raise TypeError(f"Expected 'r' to be a number (got {type(r).__name__}: {r!r})")
    if not r >= 0:
        raise ValueError(f"Expected 'r' >= 0 (got {r})")
    if max_num_neighbors is not None:
        max_num_neighbors = check_positive_int(max_num_neighbors, "max_num_neighbors")
    n = x.size(0)
    device = x.device
    if n == 0:
        return torch.empty(2, 0, dtype=torch.long, device=device)
    xc, sq = _prepare(x, metric)
    thresh = float(r) * float(r) if metric == "euclidean" else float(r)
    if batch is None:
        ptr, max_count = None, n
    else:
        ptr = _graph_ptr(batch)
        max_count = max(b - a for a, b in zip(ptr[:-1], ptr[1:]))
    rows = chunk_size if chunk_size is not None else _default_rows(max_count)
    srcs, dsts = [], []
    for i0, i1, c0, c1 in _windows(n, ptr, rows):
        d = _masked_block(xc, sq, batch, bool(loop), i0, i1, c0, c1)
        if max_num_neighbors is not None and max_num_neighbors < c1 - c0:
            vals, idx = d.topk(max_num_neighbors, dim=1, largest=False, sorted=True)
            keep = vals <= thresh
            row, slot = keep.nonzero(as_tuple=True)
            col = idx[row, slot]
        else:
            row, col = (d <= thresh).nonzero(as_tuple=True)
            if max_num_neighbors is not None:
                # Sort each row's sources by distance, as in the top-k branch.
                key = d[row, col]
                order = torch.argsort(key, stable=True)
                order = order[torch.argsort(row[order], stable=True)]
                row, col = row[order], col[order]
        srcs.append(col + c0)
        dsts.append(row + i0)
    return torch.stack([torch.cat(srcs), torch.cat(dsts)])
