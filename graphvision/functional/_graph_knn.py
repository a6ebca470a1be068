"""k-nearest-neighbour and radius graphs in feature or position space, pure torch, chunked."""

from __future__ import annotations

import copy
import math
from typing import Any, NamedTuple

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
    host_read,
    is_compiling,
    sync_checks_enabled,
)
from graphvision.functional._graph_grid import _is_real
from graphvision.structure import GraphStructure

__all__ = ["DilatedKNN", "knn_graph", "radius_graph"]

METRICS = ("euclidean", "cosine")

#: Largest number of entries of one block of pairwise distances (64 MiB in float32). Memory of
#: :func:`knn_graph` / :func:`radius_graph` is O(N * F + _BLOCK_ELEMENTS) whatever N is.
_BLOCK_ELEMENTS = 1 << 24


#: Point sets with at most this many dimensions (positions: 2-D/3-D coordinates) are ranked in
#: float64, whatever their dtype: the O(N * F) copy is cheap and the scores are then exact for
#: coordinates far from the origin (slide pixel positions near 1e5). Wider feature vectors are
#: ranked in their own precision (float32 at least), after centring.
_EXACT_MAX_DIMS = 8


def _work_dtype(x: Tensor) -> torch.dtype:
    if x.size(-1) <= _EXACT_MAX_DIMS or x.dtype == torch.float64:
        return torch.float64
    return torch.float32


def _finite_rows(x: Tensor) -> Tensor:
    """``(*, N)`` bool: rows of ``x`` without NaN / inf."""
    return torch.isfinite(x).all(dim=-1)


def _check_finite(x: Tensor) -> None:
    """Raise on NaN / inf rows (one host read; skipped when checks are off or while compiling)."""
    if x.numel() == 0 or not sync_checks_enabled():
        return
    bad = ~_finite_rows(x.detach())
    flat = bad.reshape(-1)
    (num_bad,) = host_read(flat.sum().view(1))
    if num_bad:
        first = int(flat.nonzero()[0, 0])
        where = f"row {first}" if x.dim() == 2 else f"sample {first // x.size(1)}, node {first % x.size(1)}"
        raise ValueError(
            f"Expected finite 'x' (got NaN or inf in {num_bad} node(s), first at {where}); a non-finite "
            "point has no distances, so it cannot be ranked: drop or impute it first"
        )


def _prepare(
    x: Tensor, metric: str, batch: Tensor | None = None, num_graphs: int | None = None
) -> tuple[Tensor, Tensor | None]:
    """Detached working copy and the per-column bias of the scores.

    Euclidean: the points are centred per graph (the mean of its finite nodes; per sample for
    ``(B, N, F)``) in the working dtype (see :func:`_work_dtype`), and the bias is ``|c|^2``.
    Centring does not change distances, but it keeps ``2 q.c - |c|^2`` exact for points far from
    the origin. Cosine: unit rows, bias ``0``. Non-finite rows (only reachable with checks off)
    become zero rows with bias ``+inf``: never anyone's neighbour (their own neighbours are
    arbitrary).
    """
    xc = x.detach().to(_work_dtype(x))
    finite = _finite_rows(xc)
    xc = torch.where(finite.unsqueeze(-1), xc, torch.zeros((), dtype=xc.dtype, device=xc.device))
    inf_bias = torch.where(finite, 0.0, math.inf).to(xc.dtype)
    if metric == "cosine":
        return F.normalize(xc, dim=-1, eps=1e-12), inf_bias
    w = finite.to(xc.dtype).unsqueeze(-1)
    if xc.dim() == 3:
        centre = xc.sum(dim=1, keepdim=True) / w.sum(dim=1, keepdim=True).clamp(min=1)
    elif batch is None or num_graphs is None:
        centre = xc.sum(dim=0, keepdim=True) / w.sum().clamp(min=1)
    else:
        b = batch.long()
        sums = xc.new_zeros(num_graphs, xc.size(1)).index_add_(0, b, xc)
        cnt = xc.new_zeros(num_graphs).index_add_(0, b, w.squeeze(1)).clamp(min=1)
        centre = (sums / cnt.unsqueeze(1)).index_select(0, b)
    xc = (xc - centre) * w
    return xc, (xc * xc).sum(dim=-1) + inf_bias


def _scores(q: Tensor, c: Tensor, bias: Tensor | None, metric: str = "euclidean") -> Tensor:
    """Similarity scores, larger = nearer, batched ``(G, r, F) x (G, m, F)`` or not.

    Euclidean: ``2 q.c - |c|^2`` (= ``|q|^2 - |q - c|^2``: the row constant ``|q|^2`` does not
    change the ranking, so it is never added); cosine: ``q.c - bias`` of unit rows (the bias is
    0, or inf for a non-finite row). The bias rides in the matrix product as one extra feature
    (``[a q, -1] . [c, bias]``), so the block is written once (``addmm`` would first copy the
    broadcast bias into it).
    """
    alpha = 2.0 if metric == "euclidean" else 1.0
    if bias is None:
        return torch.matmul(q * alpha if alpha != 1.0 else q, c.transpose(-1, -2))
    qa = torch.cat([q * alpha, torch.full_like(q[..., :1], -1.0)], dim=-1)
    ca = torch.cat([c, bias.unsqueeze(-1).to(c.dtype)], dim=-1)
    return torch.matmul(qa, ca.transpose(-1, -2))


FLOWS = ("source_to_target", "target_to_source")


def _metric_of(metric: str | None, cosine: bool) -> str:
    """PyG's ``cosine=True`` or graphvision's ``metric=...`` (both may not disagree)."""
    if metric is None:
        return "cosine" if cosine else "euclidean"
    check_choice(metric, METRICS, "metric")
    if cosine and metric != "cosine":
        raise ValueError(f"Got cosine=True and metric={metric!r}; pass one of them")
    return metric


def _check_points(
    x: object, batch: Tensor | None, metric: str, chunk_size: int | None, batched_ok: bool = False
) -> Tensor:
    x = check_tensor(x, "x")
    if not (batched_ok and x.dim() == 3):
        check_shape(x, ["N", "F"], "x")
    elif batch is not None:
        raise ValueError(
            f"'batch' is for (N, F) input; batched 'x' of shape {tuple(x.shape)} already holds one "
            "point set per sample"
        )
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


def _check_k(k: int, smallest: int, loop: bool, where: str, dilation: int = 1) -> None:
    limit = smallest if loop else smallest - 1
    if k * dilation > limit:
        hint = (
            ""
            if loop
            else " (a node is not its own neighbour unless loop=True, so k must be below the number of nodes)"
        )
        if dilation > 1:
            raise ValueError(
                f"Expected 'k' * dilation <= {limit} for {where} with {smallest} nodes "
                f"(got k={k}, dilation={dilation}: {k * dilation} candidates){hint}"
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


def _blocks(
    batch: Tensor | None, n: int, chunk_size: int | None
) -> tuple[list[int], list[tuple[str, int, int, int, int]], int | None]:
    """``(ptr, plan, num_graphs)`` of :func:`knn_graph` / :func:`radius_graph`'s blocks.

    Graph boundaries from ``batch`` (one host read; ``num_graphs`` is then known), or one graph;
    while compiling, blocks span all ``n`` nodes and ``batch`` is applied by masking.
    """
    if batch is not None and is_compiling():
        return [0, n], _masked_plan(n, chunk_size), None
    ptr = [0, n] if batch is None else _graph_ptr(batch)
    return ptr, _plan(ptr, chunk_size), None if batch is None else len(ptr) - 1


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
    bias: Tensor,
    metric: str,
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
        s = _scores(xc[r0:r1].unsqueeze(0), xc.unsqueeze(0), bias.unsqueeze(0), metric)
        if batch is not None:
            s = s.masked_fill((batch[r0:r1].unsqueeze(1) != batch.unsqueeze(0)).unsqueeze(0), -math.inf)
        s[:, :, r0:r1].diagonal(dim1=1, dim2=2).fill_(_self_score(loop))
        rows = torch.arange(r0, r1, device=device).unsqueeze(0)
        return s, rows, None, torch.zeros(1, dtype=torch.long, device=device), r0
    if kind == "rows":
        lo, hi = ptr[a], ptr[a + 1]
        q = xc[lo + r0 : lo + r1].unsqueeze(0)
        c = xc[lo:hi].unsqueeze(0)
        s = _scores(q, c, bias[lo:hi].unsqueeze(0), metric)
        s[:, :, r0:r1].diagonal(dim1=1, dim2=2).fill_(_self_score(loop))
        rows = torch.arange(lo + r0, lo + r1, device=device).unsqueeze(0)
        return s, rows, None, torch.tensor([lo], device=device), r0
    idx, valid, off, m, padded = _group_index(ptr, a, b, device)
    xg = xc[idx]
    s = _scores(xg, xg, bias[idx], metric)
    if padded:
        s = s.masked_fill(~valid.unsqueeze(1), -math.inf)
    s.diagonal(dim1=1, dim2=2).fill_(_self_score(loop))
    return s, idx, (valid if padded else None), off, 0


def _dense_scores(
    xc: Tensor, bias: Tensor, metric: str, i0: int, i1: int, loop: bool, relative_pos: Tensor | None
) -> Tensor:
    """Scores ``(B, i1 - i0, n)`` of query rows ``i0:i1`` of every sample against its own nodes."""
    s = _scores(xc[:, i0:i1], xc, bias, metric)
    if relative_pos is not None:
        s.sub_(relative_pos[..., i0:i1, :])  # scaled by the caller (see _knn_dense)
    s[:, :, i0:i1].diagonal(dim1=1, dim2=2).fill_(_self_score(loop))
    return s


def _knn_dense(
    x: Tensor,
    k: int,
    loop: bool,
    metric: str,
    chunk_size: int | None,
    relative_pos: Tensor | None = None,
) -> Tensor:
    """kNN within each of ``B`` equally sized point sets ``x (B, n, F)``: local indices ``(B, n, k)``.

    Sorted by increasing distance (self first with ``loop``). Static shapes only (compiles with
    ``fullgraph=True``); the caller checks ``k``.
    """
    b, n, _ = x.shape
    xc, bias = _prepare(x, metric)
    assert bias is not None
    if relative_pos is not None:
        # ViG adds the term to the squared euclidean distance (of the unit rows for cosine):
        # score = |q|^2 - d^2 (euclidean) or (2 - d^2) / 2 (cosine).
        relative_pos = relative_pos.to(xc.dtype) * (1.0 if metric == "euclidean" else 0.5)
    rows = chunk_size if chunk_size is not None else max(1, _BLOCK_ELEMENTS // max(b * n, 1))
    if rows >= n:  # one block, without ``range``: under dynamic shapes a bound on n, not n's value
        s = _dense_scores(xc, bias, metric, 0, n, loop, relative_pos)
        return s.topk(k, dim=-1, largest=True, sorted=True).indices
    out = []
    for i0 in range(0, n, rows):
        i1 = min(i0 + rows, n)
        s = _dense_scores(xc, bias, metric, i0, i1, loop, relative_pos)
        out.append(s.topk(k, dim=-1, largest=True, sorted=True).indices)
    return out[0] if len(out) == 1 else torch.cat(out, dim=1)


def _dilate(nbr: Tensor, k: int, dilation: int, stochastic: bool, epsilon: float, training: bool) -> Tensor:
    """Every ``dilation``-th of the ``k * dilation`` ranked neighbours (ViG's dilated kNN).

    With ``stochastic`` in training, with probability ``epsilon`` a random ``k`` of the
    ``k * dilation`` ranks instead (the same ranks for every node, kept in rank order), as ViG.
    The draw happens on ``nbr``'s device with tensor ops only: no host synchronisation, and
    ``torch.compile`` keeps it random (no Python branch baked into the graph).
    """
    if dilation == 1:
        return nbr
    if stochastic and training:
        device = nbr.device
        dilated = torch.arange(0, k * dilation, dilation, device=device)
        random = torch.randperm(k * dilation, device=device)[:k].sort().values
        ranks = torch.where(torch.rand((), device=device) < epsilon, random, dilated)
        return nbr.index_select(-1, ranks)
    return nbr[..., ::dilation]


def _fixed_degree_structure(nbr: Tensor, num_self_loops: int | None = None) -> GraphStructure:
    """Trusted structure of a ``(M, k)`` table of global source ids (target-major): no sort, no check.

    The table itself is kept on the structure (key ``"dense_neighbours"``), so layers that gather
    ``x[nbr]`` (:func:`graphvision.functional.mr_conv`, ...) skip the scatter.
    """
    m, k = nbr.shape
    g = GraphStructure.from_neighbour_table(nbr.long(), validate=False)
    g._derived["dense_neighbours"] = g.edge_index[0].view(m, k)
    if num_self_loops is not None and sync_checks_enabled():  # finite input was checked: the count is exact
        g._derived["num_self_loops"] = num_self_loops
    return g


def _known_loops(loop: bool, num_nodes: int, dilation: int, random_ranks: bool) -> int | None:
    """Self-loops of a kNN table: rank 0 is the node itself with ``loop`` (unless ranks are drawn at random)."""
    if not loop:
        return 0
    return None if (random_ranks and dilation > 1) else num_nodes


class _EdgeIndexWithGraph(Tensor):
    """A plain ``(2, E)`` edge index that also carries its structure as ``.graph``.

    Torch functions are disabled on the subclass, so every op on it returns a plain tensor (the
    structure never follows a derived tensor), and pickling, ``torch.save`` and ``deepcopy`` store
    a plain tensor (``torch.load(weights_only=True)`` loads it).
    """

    graph: GraphStructure
    __torch_function__ = torch._C._disabled_torch_function_impl

    def __reduce_ex__(self, proto: Any) -> Any:
        return self.as_subclass(Tensor).__reduce_ex__(proto)

    def __deepcopy__(self, memo: dict) -> Tensor:
        return copy.deepcopy(self.as_subclass(Tensor), memo)

    def __repr__(self, **kwargs: Any) -> str:
        return repr(self.as_subclass(Tensor))


def _as_result(g: GraphStructure, flow: str) -> Tensor:
    """``edge_index`` carrying ``.graph`` (an alias of the structure's memory: in-place edits are seen)."""
    ei = g.edge_index
    if flow == "target_to_source":
        ei = ei.flip(0)
        g = GraphStructure._trusted(ei, g.num_nodes, g.num_src_nodes)
    if is_compiling():
        return ei
    out = ei.as_subclass(_EdgeIndexWithGraph)
    out.graph = g
    return out


class DilatedKNN(NamedTuple):
    r"""How :func:`knn_graph` samples neighbours for `Vision GNN <https://arxiv.org/abs/2206.00272>`_.

    ViG's dilated kNN: a node's neighbours are every ``dilation``-th of its ``k * dilation``
    nearest; with ``stochastic`` (in training) a random ``k`` of those ranks with probability
    ``epsilon``; ``relative_pos`` is added to the squared distances before ranking (Pyramid ViG).
    Used on batched ``(B, N, F)`` features or one point set (no ``batch``).

    Attributes:
        dilation: Keep every ``dilation``-th of the ``k * dilation`` nearest.
        stochastic: Random dilation in training.
        epsilon: Probability of a random dilation per call when ``stochastic`` and training.
        relative_pos: Optional term added to the squared distances before ranking (see
            :func:`graphvision.functional.relative_position_term`).

    Shape:
        - relative_pos: :math:`(N, N)` or :math:`(B, N, N)`

    Example:
        >>> from graphvision.functional import DilatedKNN, knn_graph
        >>> feats = torch.randn(2, 16, 8)
        >>> knn_graph(feats, k=3, loop=True, metric="cosine", dilated=DilatedKNN(dilation=2)).shape
        torch.Size([2, 96])
    """

    dilation: int = 1
    stochastic: bool = False
    epsilon: float = 0.2
    relative_pos: Tensor | None = None


def _check_dilated(dilated: object, x: Tensor) -> DilatedKNN:
    if not isinstance(dilated, DilatedKNN):
        raise TypeError(f"Expected 'dilated' to be a DilatedKNN or None (got {type(dilated).__name__})")
    check_positive_int(dilated.dilation, "dilation")
    epsilon, relative_pos = dilated.epsilon, dilated.relative_pos
    if not (_is_real(epsilon) and 0.0 <= float(epsilon) <= 1.0):
        raise ValueError(f"Expected 'epsilon' in [0, 1] (got {epsilon!r})")
    if relative_pos is not None:
        check_tensor(relative_pos, "relative_pos")
        n = x.size(-2)
        ok = relative_pos.shape[-2:] == (n, n) and (
            relative_pos.dim() == 2
            or (relative_pos.dim() == 3 and x.dim() == 3 and relative_pos.size(0) in (1, x.size(0)))
        )
        if not ok:
            raise ValueError(
                f"Expected 'relative_pos' of shape (N, N) or (B, N, N) with N={n}"
                + (f", B={x.size(0)}" if x.dim() == 3 else "")
                + f" (got {tuple(relative_pos.shape)})"
            )
        check_floating(relative_pos, "relative_pos")
        check_same_device("x", x, "relative_pos", relative_pos)
    return dilated


def _dilated_knn_structure(
    x: Tensor,
    k: int,
    loop: bool,
    metric: str,
    chunk_size: int | None,
    dilated: DilatedKNN,
    training: bool,
    where: str = "each sample",
) -> GraphStructure:
    """The (dilated) kNN of each of the ``B`` point sets of ``x (B, N, F)``, one structure over ``B * N`` nodes.

    Built from the neighbour table without a sort or an ``edge_index`` copy; ``dilated`` was
    checked by the caller (:func:`_check_dilated`).
    """
    bsz, n, _ = x.shape
    d = dilated.dilation
    _check_k(k, n, loop, where, d)
    _check_finite(x)
    nbr = _knn_dense(x, k * d, loop, metric, chunk_size, dilated.relative_pos)
    nbr = _dilate(nbr, k, d, bool(dilated.stochastic), float(dilated.epsilon), bool(training))
    shift = torch.arange(bsz, device=x.device).mul_(n).view(bsz, 1, 1)
    loops = _known_loops(loop, bsz * n, d, bool(dilated.stochastic) and bool(training))
    return _fixed_degree_structure((nbr + shift).view(bsz * n, k), loops)


def knn_graph(
    x: Tensor,
    k: int,
    batch: Tensor | None = None,
    loop: bool = False,
    metric: str | None = None,
    chunk_size: int | None = None,
    *,
    flow: str = "source_to_target",
    cosine: bool = False,
    dilated: DilatedKNN | None = None,
    training: bool = False,
) -> Tensor:
    r"""Edges from each node's ``k`` nearest neighbours to the node, within each graph.

    PyG semantics (``flow="source_to_target"``): for every node :math:`i` and each of its ``k``
    nearest nodes :math:`j` of the same graph, there is an edge :math:`j \to i`
    (``edge_index[0] = j``, ``edge_index[1] = i``). The result is sorted by target, and the
    ``k`` sources of a target by increasing distance (the node itself first with ``loop=True``).
    Ties are broken arbitrarily. ``flow="target_to_source"`` flips the rows, as PyG.

    **Batched features (ViG).** ``x`` of shape :math:`(B, N, F)` holds ``B`` equally sized point
    sets (the node features of ``B`` images): each node's neighbours are found within its own
    sample, all samples at once on ``x``'s device (no Python loop over the batch). Node ``i`` of
    sample ``b`` is node ``b N + i`` of the result (as :func:`image_to_graph` numbers pixels).
    With ``dilated=DilatedKNN(dilation=d)`` the neighbours are every ``d``-th of the ``k d``
    nearest (the dilated kNN of `Vision GNN <https://arxiv.org/abs/2206.00272>`_); with
    ``stochastic=True`` and ``training=True``, with probability ``epsilon`` a random ``k`` of the
    ``k d`` ranks are kept instead (the same for every node, in rank order). ``relative_pos`` is
    ViG's relative position term, added to the squared euclidean distance (of the unit rows, for
    ``"cosine"``) before ranking. ``dilated`` needs batched ``x`` or no ``batch`` (one point set).

    **Exactness.** Distances are ranked through matrix products (``2 q.c - |c|^2``) in blocks of
    at most :math:`2^{24}` scores. For euclidean distances the points are first centred per graph,
    and point sets of at most 8 dimensions (positions) are ranked in float64 whatever their dtype:
    the ranking then equals that of ``torch.cdist`` in float64 for coordinates far from the origin
    (slide pixel positions, tested at offsets :math:`10^3` to :math:`10^6`). Wider features are
    ranked in their own precision (float32 at least, half precision is promoted). Cosine distance
    is :math:`1 - \cos(x_i, x_j)` (a zero vector is at distance 1 from everything).

    **Non-finite input.** A node with NaN or inf raises a ``ValueError`` (one host read). With
    checks off (:func:`graphvision.config.set_checks`) such a node is never anyone's neighbour; its
    own neighbours are arbitrary nodes of its graph.

    Blocks follow graph boundaries: consecutive small graphs are padded to the largest of them and
    processed as one batched block, a large graph is split into row chunks against its own nodes.
    The work is thus about :math:`O(\sum_b n_b^2 F)` and peak memory :math:`O(NF)` plus one block.
    ``chunk_size`` caps the query rows of a block. No gradient flows through the result.
    With ``batch`` given, nodes of one graph must be stored contiguously with ``batch`` sorted
    ascending (as PyG batches graphs); this is checked, at the cost of one host
    synchronisation. While ``torch.compile`` traces, the blocks span all nodes instead.

    Args:
        x: Node features or positions, one point set or ``B`` point sets of ``N`` points.
        k: Number of neighbours per node; at most the number of nodes of the smallest non-empty
            graph, minus one unless ``loop`` (with ``dilation``, ``k * dilation`` must fit).
        batch: Graph id of every node (sorted), or ``None``; only for ``(N, F)`` input.
        loop: Whether a node counts as its own neighbour (distance 0, so it comes first).
        metric: ``"euclidean"`` or ``"cosine"`` (default ``"euclidean"``, or ``"cosine"`` with
            ``cosine=True``).
        chunk_size: Query rows per block (default: as many as fit in :math:`2^{24}` entries).
        flow: ``"source_to_target"`` (edges neighbour -> node) or ``"target_to_source"``, as PyG.
        cosine: PyG's switch for the cosine distance.
        dilated: ViG's ``dilation``, ``stochastic``, ``epsilon`` and ``relative_pos``
            (:class:`DilatedKNN`); ``None`` for plain kNN.
        training: Whether the calling model is in training mode (for ``dilated.stochastic``).

    Returns:
        ``edge_index`` of int64 node ids, sorted by target. It carries the graph as
        ``edge_index.graph``: a :class:`~graphvision.GraphStructure` built from the neighbour
        table without a sort or a check (fixed degree ``k``), sharing ``edge_index``'s memory;
        pass either to a layer (not set while ``torch.compile`` traces).

    Raises:
        ValueError: On a wrong shape, ``k`` too large for a graph, an unsorted or mismatched
            ``batch``, ``batch`` on another device, or NaN / inf in ``x``.
        TypeError: On a non-integer ``k`` or non-floating ``x``.

    Shape:
        - x: :math:`(N, F)` or :math:`(B, N, F)`
        - batch: :math:`(N,)`
        - output: :math:`(2, N k)` or :math:`(2, B N k)`

    Example:
        >>> from graphvision.functional import DilatedKNN, knn_graph
        >>> x = torch.tensor([[0.0], [1.0], [3.0], [10.0], [11.0]])
        >>> knn_graph(x, k=1, batch=torch.tensor([0, 0, 0, 1, 1]))
        tensor([[1, 0, 1, 4, 3],
                [0, 1, 2, 3, 4]])
        >>> feats = torch.randn(2, 16, 8)  # 2 images of 4x4 nodes (ViG)
        >>> edge_index = knn_graph(feats, k=3, loop=True, metric="cosine", dilated=DilatedKNN(dilation=2))
        >>> edge_index.shape, edge_index.graph.num_nodes
        (torch.Size([2, 96]), 32)
    """
    metric = _metric_of(metric, bool(cosine))
    x = _check_points(x, batch, metric, chunk_size, batched_ok=True)
    k = check_positive_int(k, "k")
    check_choice(flow, FLOWS, "flow")
    dilated = _check_dilated(DilatedKNN() if dilated is None else dilated, x)
    plain = dilated.dilation == 1 and dilated.relative_pos is None
    loop = bool(loop)
    device = x.device
    if x.dim() == 3:
        if x.size(0) * x.size(1) == 0:
            return _as_result(GraphStructure._trusted(torch.empty(2, 0, dtype=torch.long, device=device), 0, 0), flow)
        return _as_result(_dilated_knn_structure(x, k, loop, metric, chunk_size, dilated, training), flow)
    n = x.size(0)
    if n == 0:
        return _as_result(GraphStructure._trusted(torch.empty(2, 0, dtype=torch.long, device=device), 0, 0), flow)
    if batch is not None and not plain:
        raise ValueError(
            "'dilation' and 'relative_pos' need one point set (no 'batch') or batched 'x' of shape (B, N, F)"
        )
    if not plain:  # one point set
        g = _dilated_knn_structure(x.unsqueeze(0), k, loop, metric, chunk_size, dilated, training, "a graph")
        return _as_result(g, flow)
    ptr, plan, num_graphs = _blocks(batch, n, chunk_size)
    if batch is None:
        _check_k(k, n, loop, "a graph")
    elif num_graphs is not None:
        sizes = [b - a for a, b in zip(ptr[:-1], ptr[1:]) if b > a]
        _check_k(k, min(sizes), loop, "the smallest graph in 'batch'")
    _check_finite(x)
    xc, bias = _prepare(x, metric, batch, num_graphs)
    assert bias is not None
    parts = []
    for item in plan:
        s, rows, valid, off, _ = _block_scores(xc, bias, metric, item, ptr, loop, batch)
        nbr = s.topk(k, dim=-1, largest=True, sorted=True).indices + off.view(-1, 1, 1)
        parts.append(nbr.reshape(-1, k) if valid is None else nbr[valid])
    nbr = parts[0] if len(parts) == 1 else torch.cat(parts, dim=0)
    return _as_result(_fixed_degree_structure(nbr, n if loop else 0), flow)


def radius_graph(
    x: Tensor,
    r: float,
    batch: Tensor | None = None,
    loop: bool = False,
    max_num_neighbors: int | None = 32,
    metric: str = "euclidean",
    chunk_size: int | None = None,
    *,
    flow: str = "source_to_target",
) -> Tensor:
    r"""Edges between all pairs of nodes of the same graph at distance at most ``r``.

    For every node :math:`i` and every node :math:`j` of the same graph with
    :math:`d(x_i, x_j) \le r`, there is an edge :math:`j \to i`; the graph is symmetric unless
    ``max_num_neighbors`` cuts it. With ``max_num_neighbors`` each node keeps its *nearest*
    ``max_num_neighbors`` neighbours within ``r`` (deterministic, unlike a first-found cut).
    The result is sorted by target; a target's sources by increasing distance (or by index
    when ``max_num_neighbors=None``). ``r=inf`` links every pair of a graph, and the node itself
    only with ``loop=True``.

    Distances as in :func:`knn_graph` (euclidean, exact for positions far from the origin, or
    :math:`1 - \cos` for ``"cosine"``), blocked in the same way; points within float rounding
    of ``r`` may fall either side (the self-loop, when kept, is always kept). NaN / inf rows
    raise, as in :func:`knn_graph` (with checks off they get no edges). The number of edges
    depends on the data, so under ``torch.compile(fullgraph=True)`` set
    ``torch._dynamo.config.capture_dynamic_output_shape_ops = True``; ``batch`` is then handled
    by masking, as in :func:`knn_graph`.

    Args:
        x: Node features or positions.
        r: Radius (``>= 0``, ``inf`` allowed).
        batch: Graph id of every node (sorted ascending), or ``None`` for a single graph.
        loop: Whether to keep the edge ``i -> i``.
        max_num_neighbors: Largest number of neighbours kept per node, or ``None`` for all.
        metric: ``"euclidean"`` or ``"cosine"``.
        chunk_size: Query rows per block.
        flow: ``"source_to_target"`` or ``"target_to_source"`` (rows flipped), as PyG.

    Returns:
        ``edge_index`` of int64 node ids, carrying its :class:`~graphvision.GraphStructure` as
        ``edge_index.graph`` (target-sorted, trusted, same memory; not set while compiling).

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
    check_choice(flow, FLOWS, "flow")
    if max_num_neighbors is not None:
        max_num_neighbors = check_positive_int(max_num_neighbors, "max_num_neighbors")
    n = x.size(0)
    device = x.device
    if n == 0:
        return _as_result(GraphStructure._trusted(torch.empty(2, 0, dtype=torch.long, device=device), 0, 0), flow)
    ptr, plan, num_graphs = _blocks(batch, n, chunk_size)
    _check_finite(x)
    xc, bias = _prepare(x, metric, batch, num_graphs)
    assert bias is not None
    r = float(r)
    srcs, dsts = [], []
    for item in plan:
        s, rows, valid, off, r0 = _block_scores(xc, bias, metric, item, ptr, bool(loop), batch)
        # Euclidean: |q - c|^2 = |q|^2 - score <= r^2  <=>  score >= |q|^2 - r^2; cosine: cos >= 1 - r.
        # A score of -inf (self without loop, padding, other graphs, non-finite nodes) never
        # passes, even for r = inf.
        if metric == "cosine":
            thr = torch.full_like(rows, 1.0 - r, dtype=s.dtype)
        else:
            thr = bias[rows] - r * r
        if max_num_neighbors is not None:
            vals, idx = s.topk(min(max_num_neighbors, s.size(-1)), dim=-1, largest=True, sorted=True)
            keep = (vals >= thr.unsqueeze(-1)) & (vals > -math.inf)
        else:
            keep = (s >= thr.unsqueeze(-1)) & (s > -math.inf)
            idx = None
        if valid is not None:
            keep &= valid.unsqueeze(-1)
        g, row, slot = keep.nonzero(as_tuple=True)
        col = slot if idx is None else idx[g, row, slot]
        srcs.append(col + off[g])
        dsts.append(rows[g, row])
    ei = torch.stack([torch.cat(srcs), torch.cat(dsts)])
    return _as_result(GraphStructure._trusted(ei, n, n, sorted_by_target=True), flow)
