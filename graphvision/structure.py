"""The graph object: an ``edge_index`` with everything derived from it cached on it.

Every converter returns a :class:`GraphStructure` (as ``.graph`` next to the PyG-compatible
tensors), every layer and op accepts one wherever an ``edge_index`` is accepted, and the derived
data the kernels and layers need (target-sorted CSR, its transpose, the self-looped graph,
degrees, GCN normalisation, backend index arrays) is computed once, on first use, and kept on
the structure through one mechanism (:meth:`GraphStructure.derived`) that watches
``edge_index._version``: an in-place edit of the edge index drops everything derived from it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import torch
from torch import Tensor

from graphvision import _checks

__all__ = ["GraphStructure"]

_T = TypeVar("_T")


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

    The check reads the targets, so it runs only on the CPU (on CUDA it would be a host
    synchronisation: a sort is cheaper there), never while ``torch.compile`` traces.
    graphvision's converters (``grid_graph``, ...) emit target-sorted edges, so this skips the sort.
    """
    if _checks.is_compiling() or edge_index.device.type != "cpu" or edge_index.numel() == 0:
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


class GraphStructure:
    r"""An ``edge_index`` with the derived layouts graphvision's kernels and layers read, cached on it.

    Messages flow from ``edge_index[0]`` (source) to ``edge_index[1]`` (target), as in PyG.
    What is derived from the edges is computed on first use and kept (see :meth:`derived`):

    - the target-sorted CSR ``(rowptr, col, perm)``: the edges into node ``i`` are sorted
      positions ``rowptr[i]:rowptr[i+1]``, ``col[p]`` is the source of sorted edge ``p`` and
      ``perm[p]`` its position in ``edge_index`` (a stable sort, so duplicates keep their order);
      converters build it directly (no sort, identity ``perm``);
    - its transpose ``(rowptr_t, col_t, perm_t)``: edges sorted by source, ``col_t[q]`` the
      target and ``perm_t[q]`` the target-sorted position of source-sorted edge ``q`` (used by
      backward passes);
    - the self-looped graph of the attention layers (:meth:`with_self_loops`), the GCN
      normalisation of the GCN layers, degrees, and the index arrays of the CPU kernels.

    **Staleness.** The cache remembers ``edge_index._version``. An in-place edit of
    ``edge_index`` (``ei[0, 3] = 7``) bumps it: the next access drops everything derived,
    re-checks the index range (when checks are on) and rebuilds. While ``torch.compile`` traces,
    the version is not read: build and edit structures outside compiled code. Reassigning the
    attribute (``g.edge_index = other``) is not supported: build a new structure.

    **torch.compile.** A structure created outside the compiled function and passed in reuses
    its cached layouts; call :meth:`precompute` there to fill the cache first.

    Args:
        edge_index: ``(2, E)`` int64 or int32 tensor.
        num_nodes: Number of (target) nodes ``N``. Inferred as ``edge_index.max() + 1`` when
            ``None`` (a host synchronisation).
        num_src_nodes: Number of source nodes for bipartite graphs (default ``num_nodes``).

    Shape:
        - edge_index: :math:`(2, E)`
        - rowptr: :math:`(N + 1,)`, col and perm: :math:`(E,)`
        - rowptr_t: :math:`(N_{src} + 1,)`, col_t and perm_t: :math:`(E,)`

    Example:
        >>> ei = torch.tensor([[0, 1, 2, 0], [1, 2, 0, 2]])
        >>> g = GraphStructure(ei, num_nodes=3)
        >>> g.rowptr.tolist(), g.col.tolist(), g.perm.tolist()
        ([0, 1, 2, 4], [2, 0, 1, 0], [2, 0, 1, 3])
        >>> looped, _ = g.with_self_loops()
        >>> looped.num_edges
        7
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
        self._init_trusted(edge_index, num_nodes, num_src_nodes)
        self._check_range()

    def _init_trusted(self, edge_index: Tensor, num_nodes: int, num_src_nodes: int) -> None:
        self.edge_index = edge_index
        self.num_nodes = num_nodes
        self.num_src_nodes = num_src_nodes
        self._derived: dict[Any, Any] = {}
        self._version = _version_of(edge_index)
        # True when edge_index is target-sorted (perm is the identity); None until known.
        self._identity_perm: bool | None = None

    @classmethod
    def _trusted(
        cls, edge_index: Tensor, num_nodes: int, num_src_nodes: int | None = None, *, sorted_by_target: bool | None = None
    ) -> GraphStructure:
        """A structure over indices the library produced or already checked: no check, no host sync."""
        g = cls.__new__(cls)
        g._init_trusted(edge_index, num_nodes, num_nodes if num_src_nodes is None else num_src_nodes)
        g._identity_perm = sorted_by_target
        return g

    def _check_range(self) -> None:
        if self.edge_index.numel() > 0 and _checks.sync_checks_enabled():
            _, loops = _checks.check_edge_index_range(self.edge_index, self.num_src_nodes, self.num_nodes)
            self._derived["num_self_loops"] = loops

    # ----------------------------------------------------------------- basic properties
    @property
    def num_edges(self) -> int:
        """Number of edges ``E``."""
        return self.edge_index.size(1)  # no int(): stays symbolic under torch.export

    @property
    def device(self) -> torch.device:
        """Device of the edge index and every cached layout."""
        return self.edge_index.device

    def __repr__(self) -> str:
        cached = sorted(str(k[0] if isinstance(k, tuple) else k) for k in self._derived)
        src = "" if self.num_src_nodes == self.num_nodes else f", num_src_nodes={self.num_src_nodes}"
        return (
            f"GraphStructure(num_nodes={self.num_nodes}{src}, num_edges={self.num_edges}, "
            f"device={self.device}, cached={cached})"
        )

    # ----------------------------------------------------------------- the one cache
    def _fresh(self) -> None:
        """Drop everything derived if ``edge_index`` was edited in place since it was derived."""
        if _checks.is_compiling():
            return
        v = _version_of(self.edge_index)
        if v != self._version or v is None:
            if self._derived or v is None:
                self._derived.clear()
                self._identity_perm = None
            if v != self._version:
                self._version = v
                self._check_range()

    def derived(self, key: Any, build: Callable[[], _T]) -> _T:
        """Return the derived value stored under ``key``, building it with ``build()`` the first time.

        This is the one cache of the structure: CSR, transpose, self-looped graph, degrees, GCN
        normalisation and backend index arrays all live here. Everything is dropped when
        ``edge_index`` is edited in place (its ``_version`` changes), by :meth:`clear_cache`,
        and not carried over by :meth:`to` to another device. Inference-mode tensors (no version
        counter) are never cached.

        Args:
            key: Any hashable key; layers use tuples such as ``("gcn_norm", improved, dtype)``.
            build: Computes the value from the current ``edge_index``.
        """
        self._fresh()
        try:
            return self._derived[key]
        except KeyError:
            value = build()
            if self._version is not None:
                self._derived[key] = value
            return value

    def clear_cache(self) -> GraphStructure:
        """Drop every derived layout (they are rebuilt on next use); returns ``self``."""
        self._derived.clear()
        self._identity_perm = None
        return self

    def is_cached(self, key: Any) -> bool:
        """Whether ``key`` is cached now (never computes anything)."""
        self._fresh()
        return key in self._derived

    # ----------------------------------------------------------------- cached layouts
    def _build_csr(self) -> tuple[Tensor, Tensor, Tensor]:
        if self._identity_perm:
            ei = self.edge_index
            dst = ei[1].long()
            rowptr = torch.searchsorted(dst, _arange_like(self.num_nodes + 1, dst))
            return rowptr, ei[0].long(), _arange_like(dst.numel(), dst)
        fast = None if self._identity_perm is False else sorted_csr_or_none(self.edge_index, self.num_nodes)
        self._identity_perm = fast is not None and self.num_edges > 0
        return fast if fast is not None else csr_from_edge_index(self.edge_index, self.num_nodes)

    def csr(self) -> tuple[Tensor, Tensor, Tensor]:
        """Return the target-sorted CSR ``(rowptr, col, perm)`` (int64), computing it once."""
        return self.derived("csr", self._build_csr)

    def csr_t(self) -> tuple[Tensor, Tensor, Tensor]:
        """Return the transpose ``(rowptr_t, col_t, perm_t)`` (int64), computing it once."""

        def build() -> tuple[Tensor, Tensor, Tensor]:
            rowptr, col, _ = self.csr()
            return transpose_csr(rowptr, col, self.num_src_nodes)

        return self.derived("csr_t", build)

    @property
    def identity_perm(self) -> bool:
        """Whether ``edge_index`` is already target-sorted (``perm`` is the identity)."""
        self.csr()
        return bool(self._identity_perm)

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
        """In-degree of every target node, int64 ``(N,)`` (cached)."""

        def build() -> Tensor:
            rowptr = self.rowptr
            return rowptr[1:] - rowptr[:-1]

        return self.derived("in_degree", build)

    @property
    def max_degree(self) -> int:
        """The maximum in-degree ``D`` (a host synchronisation the first time; then cached)."""

        def build() -> int:
            deg = self.in_degree()
            return int(deg.max()) if deg.numel() > 0 else 0

        return self.derived("max_degree", build)

    def with_self_loops(self) -> tuple[GraphStructure, Tensor]:
        """The graph with PyG's self-loop semantics: existing loops removed, one loop per node added.

        Built once from the cached CSR without a sort and cached. The result is target-sorted
        (identity ``perm``); in each row the new loop comes first, then the other edges in their
        target-sorted order.

        Returns:
            ``(looped, index)``: the looped structure (``E - L + N`` edges for ``L`` existing
            loops; while ``torch.compile`` traces, the ``L`` removed loops are instead sent to
            one extra target row ``N`` that callers drop, so that shapes stay static) and
            ``index`` ``(E',)`` int64 mapping each looped edge to a per-edge value: position
            ``e < E`` of the input edge it is, ``E + i`` for the loop of node ``i``, ``E + N``
            for a removed loop. Use
            ``torch.cat([edge_values, loop_values, pad]).index_select(0, index)``.

        Raises:
            ValueError: for a bipartite structure (``num_src_nodes != num_nodes``).
        """
        if self.num_src_nodes != self.num_nodes:
            raise ValueError(
                "Expected a structure with num_src_nodes == num_nodes to add self-loops "
                f"(got num_nodes={self.num_nodes}, num_src_nodes={self.num_src_nodes})"
            )
        compact = not _checks.is_compiling()
        return self.derived(("self_loops", compact), lambda: _self_looped(self, compact))

    def precompute(self) -> GraphStructure:
        """Compute and cache the CSR and its transpose now (call outside ``torch.compile``); returns ``self``."""
        self.csr()
        self.csr_t()
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
        if validate:
            _checks.check_shape(rowptr, ["N+1"], "rowptr")
            _checks.check_shape(col, ["E"], "col")
            for name, t in (("rowptr", rowptr), ("col", col)):
                if t.dtype not in (torch.int64, torch.int32):
                    raise TypeError(f"Expected '{name}' of dtype torch.int64 or torch.int32 (got {t.dtype})")
            _checks.check_same_device("rowptr", rowptr, "col", col)
            if rowptr.numel() < 1:
                raise ValueError("Expected 'rowptr' of shape (N+1,) with at least one entry (got (0,))")
            if _checks.sync_checks_enabled():
                first, last, dec = torch.stack(
                    [rowptr[0].long(), rowptr[-1].long(), (rowptr[1:] < rowptr[:-1]).sum()]
                ).tolist()
                if first != 0 or last != col.numel() or dec:
                    raise ValueError(
                        f"Expected 'rowptr' non-decreasing from 0 to len(col)={col.numel()} "
                        f"(got first {first}, last {last})"
                    )
        n = rowptr.numel() - 1
        rowptr = rowptr.long()
        col = col.long()
        row = row_index(rowptr, col.numel())
        n_src = n if num_src_nodes is None else _checks.check_positive_int(num_src_nodes, "num_src_nodes", minimum=0)
        g = cls._trusted(torch.stack([col, row]), n, n_src, sorted_by_target=True)
        if validate:
            g._check_range()
        g._derived["csr"] = (rowptr, g.edge_index[0], _arange_like(col.numel(), col))
        return g

    @classmethod
    def from_neighbour_table(
        cls, nbr: Tensor, mask: Tensor | None = None, num_src_nodes: int | None = None, *, validate: bool = True
    ) -> GraphStructure:
        """Build from a padded neighbour table: node ``i`` receives from ``nbr[i, d]`` where ``mask[i, d]``.

        Args:
            nbr: ``(N, D)`` integer source ids.
            mask: ``(N, D)`` bool, ``None`` for all valid (a fixed-degree graph, e.g. kNN).
            num_src_nodes: Number of source nodes (default ``N``).
            validate: Check shapes, dtypes and index ranges (``False`` for converters' own tables).
        """
        if validate:
            _checks.check_shape(nbr, ["N", "D"], "nbr")
            if nbr.dtype not in (torch.int64, torch.int32):
                raise TypeError(f"Expected 'nbr' of dtype torch.int64 or torch.int32 (got {nbr.dtype})")
            if mask is not None:
                _checks.check_shape(mask, [nbr.size(0), nbr.size(1)], "mask")
                if mask.dtype != torch.bool:
                    raise TypeError(f"Expected 'mask' of dtype torch.bool (got {mask.dtype})")
                _checks.check_same_device("nbr", nbr, "mask", mask)
        n, d = nbr.shape
        if mask is None:
            rowptr = torch.arange(0, n * d + 1, max(d, 1), device=nbr.device, dtype=torch.int64)[: n + 1]
            if d == 0:
                rowptr = torch.zeros(n + 1, dtype=torch.int64, device=nbr.device)
            g = cls.from_csr(rowptr, nbr.reshape(-1), num_src_nodes, validate=validate)
            g._derived["max_degree"] = d if n > 0 else 0
            return g
        counts = mask.sum(1)
        rowptr = torch.zeros(n + 1, dtype=torch.int64, device=nbr.device)
        rowptr[1:] = torch.cumsum(counts, 0)
        return cls.from_csr(rowptr, nbr.long()[mask], num_src_nodes, validate=validate)

    def to(self, device: torch.device | str, non_blocking: bool = False) -> GraphStructure:
        """Return a copy on ``device`` with the CSR layouts moved too (``self`` if already there).

        Other derived data (self-looped graph, normalisations, backend index arrays) is not
        carried over; it is rebuilt on the new device on first use.
        """
        device = torch.device(device)
        if device == self.device:
            return self
        g = GraphStructure._trusted(
            self.edge_index.to(device, non_blocking=non_blocking), self.num_nodes, self.num_src_nodes
        )
        g._identity_perm = self._identity_perm
        for key in ("csr", "csr_t"):
            if key in self._derived:
                g._derived[key] = tuple(t.to(device, non_blocking=non_blocking) for t in self._derived[key])
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
        # Edges already sorted by target are marked so (PyG's sort_order="col"), so PyG skips its sort.
        sort_order = "col" if self.num_edges > 0 and self.identity_perm else None
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


def _version_of(t: Tensor) -> int | None:
    try:
        return int(t._version)
    except (RuntimeError, AttributeError):  # inference tensors have no version counter
        return None


def _self_looped(g: GraphStructure, compact: bool) -> tuple[GraphStructure, Tensor]:
    """Remove the loops of ``g`` and add one per node, from its CSR, with static-shape ops."""
    rowptr, col, perm = g.csr()
    n, e = g.num_nodes, col.numel()
    dev = col.device
    row = row_index(rowptr, e)
    is_loop = col == row
    cl = torch.zeros(e + 1, dtype=torch.int64, device=dev)
    torch.cumsum(is_loop.long(), 0, out=cl[1:])  # cl[p] = loops before sorted position p
    cl_excl = cl[:-1]
    num_kept_plus_loops = torch.sub(e + n, cl[-1])  # E - L + N (a 0-d tensor: no sync)
    ar_n = _arange_like(n + 1, col)
    new_rowptr = rowptr - cl.index_select(0, rowptr) + ar_n  # (N + 1,)
    pos = _arange_like(e, col)
    # kept edge p of row r -> p - cl_excl[p] + r + 1 (the loop of row r comes first);
    # removed loop p -> (E - L + N) + cl_excl[p].
    dest = torch.where(is_loop, num_kept_plus_loops + cl_excl, pos - cl_excl + row + 1)
    total = e + n
    new_col = torch.empty(total, dtype=torch.int64, device=dev)
    index = torch.empty(total, dtype=torch.int64, device=dev)
    loop_pos = new_rowptr[:-1]
    new_col.index_copy_(0, loop_pos, ar_n[:-1])
    index.index_copy_(0, loop_pos, ar_n[:-1] + e)
    new_col.index_copy_(0, dest, torch.where(is_loop, torch.zeros_like(col), col))
    index.index_copy_(0, dest, torch.where(is_loop, torch.full_like(pos, e + n), perm))
    if compact:
        loops = g.derived("num_self_loops", lambda: int(cl[-1]))  # known from validation, else one read
        kept = e - loops + n
        looped = GraphStructure.from_csr(new_rowptr, new_col[:kept], n, validate=False)
        return looped, index[:kept]
    sink_rowptr = torch.cat([new_rowptr, new_rowptr.new_full((1,), total)])
    return GraphStructure.from_csr(sink_rowptr, new_col, n, validate=False), index
