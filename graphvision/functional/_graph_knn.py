"""k-nearest-neighbour and radius graphs in feature or position space, pure torch, chunked."""

from __future__ import annotations

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
from graphvision.functional._graph_grid import _is_real

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


def _scores(q: Tensor, c: Tensor, c_sq: Tensor | None) -> Tensor:
    """Similarity scores, larger = nearer, batched ``(G, r, F) x (G, m, F)`` or not.

    Euclidean: ``2 q.c - |c|^2`` (= ``|q|^2 - |q - c|^2``: the row constant ``|q|^2`` does not
    change the ranking, so it is never added); cosine: ``q.c`` of unit rows. One matrix product
    with a broadcast bias, no extra pass over the block.
    """
    ct = c.transpose(-1, -2)
    if c_sq is None:
        return torch.matmul(q, ct)
    if q.dim() == 3:
        return torch.baddbmm(c_sq.neg().unsqueeze(-2), q, ct, alpha=2.0)
    return torch.addmm(c_sq.neg().unsqueeze(0), q, ct, alpha=2.0)


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
        hint = (
            ""
            if loop
            else " (a node is not its own neighbour unless loop=True, so k must be below the number of nodes)"
        )
        raise ValueError(f"Expected 'k' <= {limit} for {where} with {smallest} nodes (got k={k}){hint}")


def _self_score(loop: bool) -> float:
    """Score of a node against itself: always first with ``loop`` (distance 0, exactly), never without."""
    return math.inf if loop else -math.inf


def _masked_plan(n: int, chunk_size: int | None) -> list[tuple[str, int, int, int, int]]:
    """Row chunks over all ``n`` nodes with a batch mask (used while ``torch.compile`` traces)."""
    rows = chunk_size if chunk_size is not None else max(1, _BLOCK_ELEMENTS // max(n, 1))
    return [("masked", 0, 1, r0, min(r0 + rows, n)) for r0 in range(0, n, rows)]


def _plan(ptr: list[int], chunk_size: int | None) -> list[tuple[str, int, int, int, int]]:
    """Blocks of work over the graphs of ``ptr``, each within the memory budget.

    - ``("group", g0, g1, 0, 0)``: graphs ``g0:g1`` padded to their largest size ``m`` and
      processed together as a ``(G, m, m)`` block (small graphs, equal-sized batches);
    - ``("rows", g, g + 1, r0, r1)``: rows ``r0:r1`` of a graph too large for one block, against all
      of that graph's nodes.

    Blocks never span two graphs without padding, so no work is spent on pairs across graphs
    beyond the padding of a group. Plain Python on host integers: no device synchronisation.
    """
    sizes = [b - a for a, b in zip(ptr[:-1], ptr[1:])]
    items: list[tuple[str, int, int, int, int]] = []
    g, num = 0, len(sizes)
    while g < num:
        s = sizes[g]
        if s == 0:
            g += 1
            continue
        if s * s > _BLOCK_ELEMENTS or (chunk_size is not None and s > chunk_size):
            rows = chunk_size if chunk_size is not None else max(1, _BLOCK_ELEMENTS // s)
            items.extend(("rows", g, g + 1, r0, min(r0 + rows, s)) for r0 in range(0, s, rows))
            g += 1
            continue
        start, m, count = g, s, 1
        g += 1
        while g < num:
            s2 = sizes[g]
            if s2 == 0:
                g += 1
                continue
            m2 = max(m, s2)
            if (count + 1) * m2 * m2 > _BLOCK_ELEMENTS or (chunk_size is not None and (count + 1) * m2 > chunk_size):
                break
            m, count = m2, count + 1
            g += 1
        items.append(("group", start, g, 0, 0))
    return items


def _group_index(ptr: list[int], g0: int, g1: int, device: torch.device) -> tuple[Tensor, Tensor, Tensor, int, bool]:
    """Padded node ids ``(G, m)``, validity mask, graph offsets ``(G,)``, ``m`` and whether padded."""
    offs = [ptr[g] for g in range(g0, g1) if ptr[g + 1] > ptr[g]]
    sizes = [ptr[g + 1] - ptr[g] for g in range(g0, g1) if ptr[g + 1] > ptr[g]]
    m = max(sizes)
    off = torch.tensor(offs, dtype=torch.long, device=device)
    cols = torch.arange(m, device=device)
    if min(sizes) == m:
        return off.unsqueeze(1) + cols, torch.ones(len(sizes), m, dtype=torch.bool, device=device), off, m, False
    size = torch.tensor(sizes, dtype=torch.long, device=device)
    valid = cols.unsqueeze(0) < size.unsqueeze(1)
    idx = off.unsqueeze(1) + torch.where(valid, cols.unsqueeze(0), 0)
    return idx, valid, off, m, True


def _block_scores(
    xc: Tensor,
    sq: Tensor | None,
    item: tuple[str, int, int, int, int],
    ptr: list[int],
    loop: bool,
    batch: Tensor | None = None,
) -> tuple[Tensor, Tensor, Tensor | None, Tensor, int]:
    """Scores of one planned block.

    Returns ``(scores (G, r, m), row node ids (G, r), row validity (G, r) or None, column offset
    (G,), first row r0)``.
    """
    kind, a, b, r0, r1 = item
    device = xc.device
    if kind == "masked":
        # Rows r0:r1 against every node, other graphs masked out: static shapes, no host sync.
        s = _scores(xc[r0:r1].unsqueeze(0), xc.unsqueeze(0), None if sq is None else sq.unsqueeze(0))
        if batch is not None:
            s = s.masked_fill((batch[r0:r1].unsqueeze(1) != batch.unsqueeze(0)).unsqueeze(0), -math.inf)
        s[:, :, r0:r1].diagonal(dim1=1, dim2=2).fill_(_self_score(loop))
        rows = torch.arange(r0, r1, device=device).unsqueeze(0)
        return s, rows, None, torch.zeros(1, dtype=torch.long, device=device), r0
    if kind == "rows":
        lo, hi = ptr[a], ptr[a + 1]
        q = xc[lo + r0 : lo + r1].unsqueeze(0)
        c = xc[lo:hi].unsqueeze(0)
        s = _scores(q, c, None if sq is None else sq[lo:hi].unsqueeze(0))
        s[:, :, r0:r1].diagonal(dim1=1, dim2=2).fill_(_self_score(loop))
        rows = torch.arange(lo + r0, lo + r1, device=device).unsqueeze(0)
        return s, rows, None, torch.tensor([lo], device=device), r0
    idx, valid, off, m, padded = _group_index(ptr, a, b, device)
    xg = xc[idx]
    s = _scores(xg, xg, None if sq is None else sq[idx])
    if padded:
        s = s.masked_fill(~valid.unsqueeze(1), -math.inf)
    s.diagonal(dim1=1, dim2=2).fill_(_self_score(loop))
    return s, idx, (valid if padded else None), off, 0


def _knn_dense(x: Tensor, k: int, loop: bool, metric: str, chunk_size: int | None) -> Tensor:
    """kNN within each of ``B`` equally sized point sets ``x (B, n, F)``: local indices ``(B, n, k)``.

    Static shapes only (compiles with ``fullgraph=True``); the caller checks ``k``.
    """
    b, n, _ = x.shape
    xc, sq = _prepare(x, metric)
    rows = chunk_size if chunk_size is not None else max(1, _BLOCK_ELEMENTS // max(b * n, 1))
    out = []
    for i0 in range(0, n, rows):
        i1 = min(i0 + rows, n)
        s = _scores(xc[:, i0:i1], xc, sq)
        s[:, :, i0:i1].diagonal(dim1=1, dim2=2).fill_(_self_score(loop))
        out.append(s.topk(k, dim=-1, largest=True, sorted=True).indices)
    return torch.cat(out, dim=1)


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
    is at distance 1 from everything). They are computed with matrix products in blocks of at
    most :math:`2^{24}` scores (in float32 for half-precision input), so peak memory stays
    :math:`O(NF)` plus one block (64 MiB). Blocks follow graph boundaries: consecutive small graphs
    are padded to the largest of them and processed as one batched block, a large graph is split
    into row chunks against its own nodes. The work is thus about :math:`O(\sum_b n_b^2 F)`, never
    :math:`O(N^2 F)`. ``chunk_size`` caps the query rows of a block. No gradient flows through
    the result (it is an index).

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
        ptr = [0, n]
        plan = _plan(ptr, chunk_size)
    elif is_compiling():
        ptr = [0, n]
        plan = _masked_plan(n, chunk_size)
    else:
        ptr = _graph_ptr(batch)
        sizes = [b - a for a, b in zip(ptr[:-1], ptr[1:]) if b > a]
        _check_k(k, min(sizes), loop, "the smallest graph in 'batch'")
        plan = _plan(ptr, chunk_size)
    xc, sq = _prepare(x, metric)
    parts = []
    for item in plan:
        s, rows, valid, off, _ = _block_scores(xc, sq, item, ptr, loop, batch)
        nbr = s.topk(k, dim=-1, largest=True, sorted=True).indices + off.view(-1, 1, 1)
        parts.append(nbr.reshape(-1, k) if valid is None else nbr[valid])
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
    blocked in the same way; points within float rounding of ``r`` may fall either side (the
    self-loop, when kept, is always kept). The number of edges depends on the data, so the
    result has a data-dependent size: under ``torch.compile(fullgraph=True)`` set
    ``torch._dynamo.config.capture_dynamic_output_shape_ops = True``; ``batch`` is then handled by
    masking, as in :func:`knn_graph`.

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
    if not _is_real(r):
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
    if batch is None:
        ptr = [0, n]
        plan = _plan(ptr, chunk_size)
    elif is_compiling():
        ptr = [0, n]
        plan = _masked_plan(n, chunk_size)
    else:
        ptr = _graph_ptr(batch)
        plan = _plan(ptr, chunk_size)
    srcs, dsts = [], []
    for item in plan:
        s, rows, valid, off, r0 = _block_scores(xc, sq, item, ptr, bool(loop), batch)
        # Euclidean: |q - c|^2 = |q|^2 - score <= r^2  <=>  score >= |q|^2 - r^2; cosine: cos >= 1 - r.
        if sq is None:
            thr = torch.full_like(rows, 1.0 - float(r), dtype=s.dtype)
        else:
            thr = sq[rows] - float(r) * float(r)
        if max_num_neighbors is not None:
            vals, idx = s.topk(min(max_num_neighbors, s.size(-1)), dim=-1, largest=True, sorted=True)
            keep = vals >= thr.unsqueeze(-1)
        else:
            keep = s >= thr.unsqueeze(-1)
            idx = None
        if valid is not None:
            keep &= valid.unsqueeze(-1)
        g, row, slot = keep.nonzero(as_tuple=True)
        col = slot if idx is None else idx[g, row, slot]
        srcs.append(col + off[g])
        dsts.append(rows[g, row])
    return torch.stack([torch.cat(srcs), torch.cat(dsts)])
