"""Graph structure with lazily cached target-sorted CSR, its transpose and a padded neighbour table.

Layers that run several ops on one graph should build a :class:`GraphStructure` once and pass it
wherever an ``edge_index`` is accepted: the sort of the edges by target (and the other layouts the
kernels read) is then computed once, on first use, and reused by every later call.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from graphvision import _checks

__all__ = ["GraphStructure"]


def _arange_like(n: int, ref: Tensor) -> Tensor:
    return torch.arange(n, device=ref.device, dtype=torch.int64)


def _stable_argsort(keys: Tensor, bound: int) -> Tensor:
    """Stable argsort of int64 ``keys`` in ``[0, bound)``; sorts int32 copies when they fit (about 2x faster)."""
    if bound < 2**31:
        return torch.argsort(keys.int(), stable=True)
    return torch.argsort(keys, stable=True)  # pragma: no cover - more than 2**31 nodes


def csr_from_edge_index(edge_index: Tensor, num_nodes: int) -> tuple[Tensor, Tensor, Tensor]:
    """Return ``(rowptr, col, perm)`` of the target-sorted CSR of ``edge_index``.

    Uses only static-shape tensor ops (stable ``argsort`` and ``searchsorted``), so it also
    traces under ``torch.compile(fullgraph=True)``. All outputs are int64.
    """
    src = edge_index[0].long()
    dst = edge_index[1].long()
    perm = _stable_argsort(dst, num_nodes)
    col = src[perm]
    rowptr = torch.searchsorted(dst[perm], _arange_like(num_nodes + 1, dst))
    return rowptr, col, perm


def sorted_csr_or_none(edge_index: Tensor, num_nodes: int) -> tuple[Tensor, Tensor, Tensor] | None:
    """The CSR of an edge index that is already sorted by target (identity ``perm``), else ``None``.

    The check reads the targets once (a host synchronisation on CUDA), so it runs only on the CPU
    or when synchronising checks are on, and never while ``torch.compile`` traces (``None`` then).
    graphvision's converters (``grid_graph``, ...) emit target-sorted edges, so this skips the sort.
    """
    if edge_index.numel() == 0 or _checks.is_compiling():
        return None
    if edge_index.device.type != "cpu" and not _checks.sync_checks_enabled():
        return None
    dst = edge_index[1]
    if not bool((dst[1:] >= dst[:-1]).all()):
        return None
    dst = dst.long().contiguous()
    col = edge_index[0].long().contiguous()
    rowptr = torch.searchsorted(dst, _arange_like(num_nodes + 1, dst))
    return rowptr, col, _arange_like(col.numel(), col)


def row_index(rowptr: Tensor, num_edges: int) -> Tensor:
    """The target (row) of each edge of a CSR in sorted order, as int64 ``(E,)``."""
    counts = (rowptr[1:] - rowptr[:-1]).long()
    return torch.repeat_interleave(_arange_like(counts.numel(), rowptr), counts, output_size=num_edges)


def transpose_csr(rowptr: Tensor, col: Tensor, num_src_nodes: int) -> tuple[Tensor, Tensor, Tensor]:
    """Return ``(rowptr_t, col_t, perm_t)``: the source-sorted view of a target-sorted CSR.

    ``perm_t[q]`` is the target-sorted position of the edge at source-sorted position ``q``.
    """
    col = col.long()
    row = row_index(rowptr, col.numel())
    perm_t = _stable_argsort(col, num_src_nodes)
    col_t = row[perm_t]
    rowptr_t = torch.searchsorted(col[perm_t], _arange_like(num_src_nodes + 1, col))
    return rowptr_t, col_t, perm_t


def neighbour_table_from_csr(rowptr: Tensor, col: Tensor, max_degree: int) -> tuple[Tensor, Tensor, Tensor]:
    """Return ``(nbr, mask, slot)``, each ``(N, max_degree)``, from a target-sorted CSR."""
    n = rowptr.numel() - 1
    e = col.numel()
    row = row_index(rowptr, e)
    pos = _arange_like(e, col) - rowptr.long()[row]
    nbr = torch.zeros(n, max_degree, dtype=torch.int64, device=col.device)
    slot = torch.zeros(n, max_degree, dtype=torch.int64, device=col.device)
    mask = torch.zeros(n, max_degree, dtype=torch.bool, device=col.device)
    nbr[row, pos] = col.long()
    slot[row, pos] = _arange_like(e, col)
    mask[row, pos] = True
    return nbr, mask, slot


class GraphStructure:
    r"""An ``edge_index`` with the sorted layouts that graphvision's kernels read, cached lazily.

    Messages flow from ``edge_index[0]`` (source) to ``edge_index[1]`` (target), as in PyG.
    Three layouts are computed on first use and then kept:

    - the target-sorted CSR ``(rowptr, col, perm)``: the edges into node ``i`` are sorted
      positions ``rowptr[i]:rowptr[i+1]``, ``col[p]`` is the source of sorted edge ``p`` and
      ``perm[p]`` its position in ``edge_index`` (a stable sort, so duplicates keep their order);
    - its transpose ``(rowptr_t, col_t, perm_t)``: edges sorted by source, ``col_t[q]`` the
      target and ``perm_t[q]`` the target-sorted position of source-sorted edge ``q`` (used by
      backward passes);
    - for bounded-degree graphs (pixel grids, kNN) a padded neighbour table
      ``(nbr, mask, slot)`` of shape ``(N, D)``: ``nbr[i, d]`` is the ``d``-th source of node
      ``i`` (0 where ``mask`` is false) and ``slot[i, d]`` its target-sorted edge position.

    **torch.compile.** The CSR and its transpose are built with static-shape ops, so they
    also trace inside a compiled region; but a structure created *outside* the compiled
    function and passed in as an argument is reused without re-sorting. Build it outside, and
    call :meth:`precompute` there so the neighbour table (whose width needs the maximum degree,
    a host synchronisation) is ready too: inside a compiled region the ops only use a table
    that is already cached.

    Args:
        edge_index: ``(2, E)`` int64 or int32 tensor.
        num_nodes: Number of (target) nodes ``N``. Inferred as ``edge_index.max() + 1`` when
            ``None`` (a host synchronisation).
        num_src_nodes: Number of source nodes for bipartite graphs (default ``num_nodes``).

    Shape:
        - edge_index: :math:`(2, E)`
        - rowptr: :math:`(N + 1,)`, col and perm: :math:`(E,)`
        - rowptr_t: :math:`(N_{src} + 1,)`, col_t and perm_t: :math:`(E,)`
        - nbr, mask, slot: :math:`(N, D)` with :math:`D` the maximum in-degree

    Example:
        >>> ei = torch.tensor([[0, 1, 2, 0], [1, 2, 0, 2]])
        >>> g = GraphStructure(ei, num_nodes=3)
        >>> g.rowptr.tolist(), g.col.tolist(), g.perm.tolist()
        ([0, 1, 2, 4], [2, 0, 1, 0], [2, 0, 1, 3])
        >>> nbr, mask, slot = g.neighbour_table()
        >>> nbr.shape
        torch.Size([3, 2])
    """

    def __init__(self, edge_index: Tensor, num_nodes: int | None = None, num_src_nodes: int | None = None) -> None:
        _checks.check_edge_index(edge_index, None)
        if num_nodes is None:
            # One node set: every id counts; bipartite (num_src_nodes given): the targets only.
            ids = edge_index if num_src_nodes is None else edge_index[1]
            num_nodes = int(ids.max()) + 1 if ids.numel() > 0 else 0
        num_nodes = _checks.check_positive_int(num_nodes, "num_nodes", minimum=0)
        num_src_nodes = (
            num_nodes if num_src_nodes is None else _checks.check_positive_int(num_src_nodes, "num_src_nodes", minimum=0)
        )
        if edge_index.numel() > 0 and _checks.sync_checks_enabled():
            _checks.check_index(edge_index[0], num_src_nodes, "edge_index[0]", dim_name="num_src_nodes")
            _checks.check_index(edge_index[1], num_nodes, "edge_index[1]", dim_name="num_nodes")
        self._init_trusted(edge_index, num_nodes, num_src_nodes)

    def _init_trusted(self, edge_index: Tensor, num_nodes: int, num_src_nodes: int) -> None:
        self.edge_index = edge_index
        self.num_nodes = num_nodes
        self.num_src_nodes = num_src_nodes
        self._csr: tuple[Tensor, Tensor, Tensor] | None = None
        self._csr_t: tuple[Tensor, Tensor, Tensor] | None = None
        self._max_degree: int | None = None
        self._table: tuple[Tensor, Tensor, Tensor] | None = None
        # True when edge_index is already target-sorted (perm is the identity): from_csr.
        self._identity_perm = False

    # ----------------------------------------------------------------- basic properties
    @property
    def num_edges(self) -> int:
        """Number of edges ``E``."""
        return int(self.edge_index.size(1))

    @property
    def device(self) -> torch.device:
        """Device of the edge index and every cached layout."""
        return self.edge_index.device

    def __repr__(self) -> str:
        cached = [n for n, v in (("csr", self._csr), ("csr_t", self._csr_t), ("table", self._table)) if v is not None]
        src = "" if self.num_src_nodes == self.num_nodes else f", num_src_nodes={self.num_src_nodes}"
        return (
            f"GraphStructure(num_nodes={self.num_nodes}{src}, num_edges={self.num_edges}, "
            f"device={self.device}, cached={cached})"
        )

    # ----------------------------------------------------------------- cached layouts
    def csr(self) -> tuple[Tensor, Tensor, Tensor]:
        """Return the target-sorted CSR ``(rowptr, col, perm)`` (int64), computing it once."""
        if self._csr is None:
            fast = sorted_csr_or_none(self.edge_index, self.num_nodes)
            if fast is not None:
                self._identity_perm = True
            self._csr = fast if fast is not None else csr_from_edge_index(self.edge_index, self.num_nodes)
        return self._csr

    def csr_t(self) -> tuple[Tensor, Tensor, Tensor]:
        """Return the transpose ``(rowptr_t, col_t, perm_t)`` (int64), computing it once."""
        if self._csr_t is None:
            rowptr, col, _ = self.csr()
            self._csr_t = transpose_csr(rowptr, col, self.num_src_nodes)
        return self._csr_t

    @property
    def rowptr(self) -> Tensor:
        """Target-sorted row pointer ``(N + 1,)``."""
        return self.csr()[0]

    @property
    def col(self) -> Tensor:
        """Source of each edge in target-sorted order ``(E,)``."""
        return self.csr()[1]

    @property
    def perm(self) -> Tensor:
        """``perm[p]`` = position in ``edge_index`` of target-sorted edge ``p``."""
        return self.csr()[2]

    @property
    def rowptr_t(self) -> Tensor:
        """Source-sorted row pointer ``(N_src + 1,)``."""
        return self.csr_t()[0]

    @property
    def col_t(self) -> Tensor:
        """Target of each edge in source-sorted order ``(E,)``."""
        return self.csr_t()[1]

    @property
    def perm_t(self) -> Tensor:
        """``perm_t[q]`` = target-sorted position of source-sorted edge ``q``."""
        return self.csr_t()[2]

    def in_degree(self) -> Tensor:
        """In-degree of every target node, int64 ``(N,)``."""
        rowptr = self.rowptr
        return rowptr[1:] - rowptr[:-1]

    @property
    def max_degree(self) -> int:
        """The maximum in-degree ``D`` (a host synchronisation the first time; then cached)."""
        if self._max_degree is None:
            deg = self.in_degree()
            self._max_degree = int(deg.max()) if deg.numel() > 0 else 0
        return self._max_degree

    def neighbour_table(self, max_degree: int | None = None) -> tuple[Tensor, Tensor, Tensor]:
        """Return the padded neighbour table ``(nbr, mask, slot)`` of shape ``(N, D)``.

        Args:
            max_degree: Table width ``D``; at least the maximum in-degree (the default).

        Raises:
            ValueError: if ``max_degree`` is smaller than the maximum in-degree.
        """
        need = self.max_degree
        width = need if max_degree is None else _checks.check_positive_int(max_degree, "max_degree", minimum=0)
        if width < need:
            raise ValueError(f"Expected 'max_degree' >= the maximum in-degree {need} (got {width})")
        if self._table is None or self._table[0].size(1) != width:
            rowptr, col, _ = self.csr()
            self._table = neighbour_table_from_csr(rowptr, col, width)
        return self._table

    def cached_neighbour_table(self) -> tuple[Tensor, Tensor, Tensor] | None:
        """The neighbour table if it was already computed (never computes; safe under compile)."""
        return self._table

    def precompute(self, neighbour_table: bool = True) -> GraphStructure:
        """Compute and cache every layout now (call outside ``torch.compile``); returns ``self``.

        Args:
            neighbour_table: Also build the padded neighbour table.
        """
        self.csr()
        self.csr_t()
        if neighbour_table:
            self.neighbour_table()
        return self

    # ----------------------------------------------------------------- conversions
    def to_edge_index(self, sort: bool = False) -> Tensor:
        """Return the ``(2, E)`` int64 edge index: as given, or in target-sorted order if ``sort``."""
        if not sort:
            return self.edge_index.long()
        rowptr, col, _ = self.csr()
        return torch.stack([col, row_index(rowptr, col.numel())])

    @classmethod
    def from_csr(
        cls, rowptr: Tensor, col: Tensor, num_src_nodes: int | None = None, *, validate: bool = True
    ) -> GraphStructure:
        """Build from a target-sorted CSR (``col[p]`` = source of the ``p``-th edge; no copy of ``col``).

        The edge order of the result is the CSR order, so ``perm`` is the identity.

        Args:
            rowptr: ``(N + 1,)`` non-decreasing row pointer, starting at 0 and ending at ``E``.
            col: ``(E,)`` source node of each edge.
            num_src_nodes: Number of source nodes (default ``N``).
            validate: Check shapes, dtypes and index ranges. Converters that built the CSR
                themselves pass ``False`` (no host synchronisation, nothing re-derived).
        """
        if not validate:
            n = rowptr.numel() - 1
            rowptr = rowptr.long()
            col = col.long()
            row = row_index(rowptr, col.numel())
            g = cls.__new__(cls)
            g._init_trusted(torch.stack([col, row]), n, n if num_src_nodes is None else int(num_src_nodes))
            g._csr = (rowptr, col, _arange_like(col.numel(), col))
            g._identity_perm = True
            return g
        _checks.check_shape(rowptr, ["N+1"], "rowptr")
        _checks.check_shape(col, ["E"], "col")
        for name, t in (("rowptr", rowptr), ("col", col)):
            if t.dtype not in (torch.int64, torch.int32):
                raise TypeError(f"Expected '{name}' of dtype torch.int64 or torch.int32 (got {t.dtype})")
        _checks.check_same_device("rowptr", rowptr, "col", col)
        if rowptr.numel() < 1:
            raise ValueError("Expected 'rowptr' of shape (N+1,) with at least one entry (got (0,))")
        n = rowptr.numel() - 1
        if _checks.sync_checks_enabled():
            if int(rowptr[0]) != 0 or int(rowptr[-1]) != col.numel() or bool((rowptr[1:] < rowptr[:-1]).any()):
                raise ValueError(
                    f"Expected 'rowptr' non-decreasing from 0 to len(col)={col.numel()} "
                    f"(got first {int(rowptr[0])}, last {int(rowptr[-1])})"
                )
        rowptr = rowptr.long()
        row = row_index(rowptr, col.numel())
        g = cls(torch.stack([col.long(), row]), num_nodes=n, num_src_nodes=num_src_nodes)
        g._csr = (rowptr, col.long(), _arange_like(col.numel(), col))
        g._identity_perm = True
        return g

    @classmethod
    def from_neighbour_table(
        cls, nbr: Tensor, mask: Tensor | None = None, num_src_nodes: int | None = None, *, validate: bool = True
    ) -> GraphStructure:
        """Build from a padded neighbour table: node ``i`` receives from ``nbr[i, d]`` where ``mask[i, d]``.

        Args:
            nbr: ``(N, D)`` integer source ids.
            mask: ``(N, D)`` bool, ``None`` for all valid.
            num_src_nodes: Number of source nodes (default ``N``).
            validate: Check shapes, dtypes and index ranges (``False`` for converters' own tables).
        """
        if not validate:
            n, d = nbr.shape
            if mask is None:
                rowptr = torch.arange(0, n * d + 1, d, device=nbr.device, dtype=torch.int64)
                g = cls.from_csr(rowptr, nbr.reshape(-1), num_src_nodes, validate=False)
                g._max_degree = d if n > 0 else 0
                return g
            counts = mask.sum(1)
            rowptr = torch.zeros(n + 1, dtype=torch.int64, device=nbr.device)
            rowptr[1:] = torch.cumsum(counts, 0)
            return cls.from_csr(rowptr, nbr.long()[mask], num_src_nodes, validate=False)
        _checks.check_shape(nbr, ["N", "D"], "nbr")
        if nbr.dtype not in (torch.int64, torch.int32):
            raise TypeError(f"Expected 'nbr' of dtype torch.int64 or torch.int32 (got {nbr.dtype})")
        if mask is None:
            mask = torch.ones_like(nbr, dtype=torch.bool)
        _checks.check_shape(mask, [nbr.size(0), nbr.size(1)], "mask")
        if mask.dtype != torch.bool:
            raise TypeError(f"Expected 'mask' of dtype torch.bool (got {mask.dtype})")
        _checks.check_same_device("nbr", nbr, "mask", mask)
        n, d = nbr.shape
        counts = mask.sum(1)
        rowptr = torch.zeros(n + 1, dtype=torch.int64, device=nbr.device)
        rowptr[1:] = torch.cumsum(counts, 0)
        col = nbr.long()[mask]
        g = cls.from_csr(rowptr, col, num_src_nodes=num_src_nodes)
        # The table of the result, compacted to the left (entries keep their order).
        g._max_degree = int(counts.max()) if n > 0 else 0
        return g

    def to(self, device: torch.device | str, non_blocking: bool = False) -> GraphStructure:
        """Return a copy on ``device`` with every cached layout moved too (``self`` if already there)."""
        device = torch.device(device)
        if device == self.device:
            return self
        g = GraphStructure.__new__(GraphStructure)
        g.edge_index = self.edge_index.to(device, non_blocking=non_blocking)
        g.num_nodes, g.num_src_nodes, g._max_degree = self.num_nodes, self.num_src_nodes, self._max_degree
        g._identity_perm = self._identity_perm
        for name in ("_csr", "_csr_t", "_table"):
            v = getattr(self, name)
            setattr(g, name, None if v is None else tuple(t.to(device, non_blocking=non_blocking) for t in v))
        return g

    def to_pyg(self) -> Any:
        """Return a ``torch_geometric.EdgeIndex`` sharing this structure's ``edge_index`` memory.

        The result has ``sparse_size=(num_src_nodes, num_nodes)`` and ``sort_order="col"`` when the
        edges are already sorted by target. The storage of ``edge_index`` is shared (zero copy).

        Raises:
            ImportError: if torch_geometric (with ``EdgeIndex``) is not installed.
        """
        try:
            from torch_geometric import EdgeIndex
        except ImportError as exc:  # pragma: no cover - depends on the environment
            raise ImportError("GraphStructure.to_pyg needs torch_geometric>=2.5 (pip install torch_geometric)") from exc
        if self._csr is None and self.num_edges > 0:
            self.csr()  # finds out whether the edges are already target-sorted (cheap when they are)
        # Edges already sorted by target are marked so (PyG's sort_order="col"), so PyG skips its sort.
        sort_order = "col" if self._identity_perm else None
        return EdgeIndex(self.edge_index, sparse_size=(self.num_src_nodes, self.num_nodes), sort_order=sort_order)

    @classmethod
    def from_pyg(cls, obj: Any, num_nodes: int | None = None) -> GraphStructure:
        """Build from a ``torch_geometric.EdgeIndex``, a PyG ``Data`` or a plain ``(2, E)`` tensor (zero copy).

        Args:
            obj: An ``EdgeIndex`` (its ``sparse_size`` gives the node counts), an object with an
                ``edge_index`` attribute and optionally ``num_nodes`` (``Data``), or a tensor.
            num_nodes: Overrides the number of (target) nodes.
        """
        num_src = None
        if hasattr(obj, "edge_index") and not isinstance(obj, Tensor):
            if num_nodes is None:
                num_nodes = getattr(obj, "num_nodes", None)
            obj = obj.edge_index
        _checks.check_tensor(obj, "edge_index")
        sparse_size = getattr(obj, "sparse_size", None)
        if callable(sparse_size):
            s_src, s_dst = obj.sparse_size()
            num_src = s_src
            if num_nodes is None:
                num_nodes = s_dst
            obj = obj.as_tensor()
        return cls(obj, num_nodes=num_nodes, num_src_nodes=num_src)
