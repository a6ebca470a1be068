"""Public ops of :mod:`graphvision.ops`: validation, canonical form, dispatch.

Each op validates its inputs, brings the graph into the canonical target-sorted form (cached on
a :class:`~graphvision.structure.GraphStructure`, computed with static-shape ops otherwise),
permutes per-edge inputs into sorted order, runs the registered custom op of the chosen backend
and permutes per-edge outputs back into the caller's edge order.
"""

from __future__ import annotations

import math
from collections import OrderedDict

import torch
from torch import Tensor

from graphvision import _checks, config
from graphvision.ops import _library  # noqa: F401  (registers torch.ops.graphvision.*)
from graphvision.ops._composed import acc_dtype
from graphvision.ops._dispatch import resolve_backend
from graphvision.structure import GraphStructure, _version_of

__all__ = ["scatter", "spmm", "segment_softmax", "attention_aggregate", "global_attention_pool"]

_REDUCES = ("sum", "mean", "max", "min")
_FLOATS = (torch.float16, torch.bfloat16, torch.float32, torch.float64)


# --------------------------------------------------------------------------- helpers
def _check_float_tensor(x: object, name: str) -> Tensor:
    _checks.check_tensor(x, name)
    assert isinstance(x, Tensor)
    if x.dtype not in _FLOATS:
        raise TypeError(f"Expected '{name}' of a floating dtype {_FLOATS} (got {x.dtype})")
    return x


def _check_same_dtype(name_a: str, a: Tensor, name_b: str, b: Tensor | None) -> None:
    if b is not None and a.dtype != b.dtype:
        raise TypeError(f"Expected '{name_b}' of the same dtype as '{name_a}' ({a.dtype}) (got {b.dtype})")


class _Canon:
    """The canonical form of a graph for one call."""

    __slots__ = ("rowptr", "col", "perm", "rowptr_t", "col_t", "perm_t", "num_dst", "num_src", "num_edges", "identity")

    def __init__(self, **kw: object) -> None:
        for k, v in kw.items():
            setattr(self, k, v)

    def to_sorted(self, t: Tensor | None) -> Tensor | None:
        """Permute a per-edge tensor from the caller's order into target-sorted order."""
        if t is None or self.identity:
            return t
        return t.index_select(0, self.perm)

    def from_sorted(self, t: Tensor) -> Tensor:
        """Permute a per-edge tensor from target-sorted order back into the caller's order."""
        if self.identity:
            return t
        return torch.zeros_like(t).index_copy(0, self.perm, t)


def _needs_grad(*ts: Tensor | None) -> bool:
    return torch.is_grad_enabled() and any(t is not None and t.requires_grad for t in ts)


def as_structure(edge_index: Tensor | GraphStructure, num_dst: int, num_src: int) -> GraphStructure:
    """Validate a raw ``(2, E)`` edge index once and wrap it in a (trusted) structure.

    One host read when checks are on (index range and target-sortedness together), none when
    they are off. A ``GraphStructure`` is returned as is (it was validated when it was built).
    """
    if isinstance(edge_index, GraphStructure):
        return edge_index
    _checks.check_tensor(edge_index, "edge_index")
    if edge_index.dim() != 2 or edge_index.size(0) != 2:
        raise ValueError(
            f"Expected 'edge_index' of shape (2, E) or a GraphStructure (got {tuple(edge_index.shape)})"
        )
    if edge_index.dtype not in (torch.int64, torch.int32):
        raise TypeError(f"Expected 'edge_index' of dtype torch.int64 or torch.int32 (got {edge_index.dtype})")
    sorted_by_target: bool | None = None
    cpu = edge_index.device.type == "cpu"
    # On the CPU the range is always checked (a read of host memory, no device sync; an
    # out-of-range index would crash the CPU kernels), together with the sortedness that the
    # CSR build uses. On CUDA: checked when checks are on; a raw edge index is always sorted
    # there, checks on or off (same algorithm, no extra synchronisation).
    if _checks.is_compiling():
        if config.checks_enabled() or cpu:
            # checked when the compiled graph runs (an opaque op; one host read, as in eager
            # mode; on the CPU always, as in eager mode: a bad index would crash the kernels)
            edge_index = torch.ops.graphvision.checked_edge_index(edge_index, num_src, num_dst)
        return GraphStructure._trusted(edge_index, num_dst, num_src, sorted_by_target=None)
    if cpu and edge_index.numel() > 0:
        hit = _recent_structure(edge_index, num_dst, num_src)
        if hit is not None:
            return hit
    if edge_index.numel() > 0 and (_checks.sync_checks_enabled() or cpu):
        is_sorted, num_loops = _checks.check_edge_index_range(edge_index, num_src, num_dst)
        sorted_by_target = is_sorted if cpu else False
        if cpu and _version_of(edge_index) is not None:
            # a private copy: the user's tensor can change later without touching the cached structure
            edge_index = edge_index.clone()
        g = GraphStructure._trusted(edge_index, num_dst, num_src, sorted_by_target=sorted_by_target)
        g._derived["num_self_loops"] = num_loops  # read with the range: adding loops needs no second read
        if cpu and g._version is not None:
            _remember(g)
        return g
    return GraphStructure._trusted(edge_index, num_dst, num_src, sorted_by_target=sorted_by_target)


#: The structures of the last few raw CPU edge indices, each over a private copy of its indices.
#: A data loader hands over a fresh ``edge_index`` tensor per batch, usually with the same
#: content (a fixed pixel grid): an exact comparison (``torch.equal``, one pass over ``2 E``
#: integers, no sort) finds the structure built for it before, with its CSR, transpose,
#: self-looped graph and index arrays, instead of deriving them again. Content-keyed, so it can
#: never serve another graph's data; bounded to :data:`RECENT_GRAPHS` entries.
_RECENT: OrderedDict[tuple, GraphStructure] = OrderedDict()
RECENT_GRAPHS = 2


def _recent_structure(edge_index: Tensor, num_dst: int, num_src: int) -> GraphStructure | None:
    key = (num_dst, num_src, tuple(edge_index.shape), edge_index.dtype)
    g = _RECENT.get(key)
    if g is None or not torch.equal(g.edge_index, edge_index):
        return None
    _RECENT.move_to_end(key)
    return g


def _remember(g: GraphStructure) -> None:
    key = (g.num_nodes, g.num_src_nodes, tuple(g.edge_index.shape), g.edge_index.dtype)
    _RECENT[key] = g
    _RECENT.move_to_end(key)
    while len(_RECENT) > RECENT_GRAPHS:
        _RECENT.popitem(last=False)


def clear_recent_graphs() -> None:
    """Forget the structures remembered for raw CPU edge indices (frees their derived data)."""
    _RECENT.clear()


def _canonical(
    edge_index: Tensor | GraphStructure, num_dst: int | None, num_src: int | None, *, need_t: bool = False
) -> _Canon:
    """Validate ``edge_index`` (tensor or structure) and return its canonical form."""
    if isinstance(edge_index, GraphStructure):
        g = edge_index
        if num_dst is not None and num_dst != g.num_nodes:
            raise ValueError(
                f"Expected num_nodes={g.num_nodes} as stored in the GraphStructure (got {num_dst})"
            )
        if num_src is not None and num_src != g.num_src_nodes:
            raise ValueError(
                f"Expected {g.num_src_nodes} source nodes as stored in the GraphStructure (got {num_src} rows in 'x')"
            )
    else:
        assert num_dst is not None and num_src is not None
        g = as_structure(edge_index, num_dst, num_src)
    rowptr, col, perm = g.csr()
    # The transpose is only read by backward passes: use it when cached or needed now.
    rowptr_t, col_t, perm_t = g.csr_t() if (need_t or g.is_cached("csr_t")) else (None, None, None)
    return _Canon(
        rowptr=rowptr, col=col, perm=perm, rowptr_t=rowptr_t, col_t=col_t, perm_t=perm_t,
        num_dst=g.num_nodes, num_src=g.num_src_nodes, num_edges=g.num_edges, identity=g.identity_perm,
    )


def _check_edge_tensor(t: Tensor | None, name: str, num_edges: int, heads: int | None, ref: Tensor) -> None:
    if t is None:
        return
    _check_float_tensor(t, name)
    ok = t.dim() == 1 and t.size(0) == num_edges
    if heads is not None:
        ok = ok or (t.dim() == 2 and t.size(0) == num_edges and t.size(1) == heads)
    if not ok:
        want = f"({num_edges},)" + ("" if heads is None else f" or ({num_edges}, {heads})")
        raise ValueError(f"Expected '{name}' of shape {want} (got {tuple(t.shape)})")
    _checks.check_same_device("x", ref, name, t)
    _check_same_dtype("x", ref, name, t)


def _index_to_csr(index: Tensor, num_segments: int) -> tuple[Tensor, Tensor]:
    """(rowptr, perm) grouping positions by ``index`` (stable)."""
    perm = torch.argsort(index.long(), stable=True)
    rowptr = torch.searchsorted(index.long()[perm], torch.arange(num_segments + 1, device=index.device))
    return rowptr, perm


def _infer_size(index: Tensor, given: int | None, name: str) -> int:
    if given is not None:
        return _checks.check_positive_int(given, name, minimum=0)
    return int(index.max()) + 1 if index.numel() > 0 else 0


def _segment_index(index: object, name: str, data: tuple[str, Tensor], size: int | None, size_name: str) -> int:
    """Check a 1-D integer ``index`` with one entry per row of ``data = (data_name, tensor)``.

    Returns the number of segments: ``size`` when given, else ``index.max() + 1`` (a host read);
    the index range is checked against it when checks are on.
    """
    data_name, ref = data
    _checks.check_tensor(index, name)
    if index.dim() != 1 or index.size(0) != ref.size(0):
        raise ValueError(
            f"Expected '{name}' of shape ({ref.size(0)},) matching {data_name}'s first dimension "
            f"(got {tuple(index.shape)})"
        )
    if index.dtype not in (torch.int64, torch.int32):
        raise TypeError(f"Expected '{name}' of dtype torch.int64 or torch.int32 (got {index.dtype})")
    _checks.check_same_device(data_name, ref, name, index)
    n = _infer_size(index, size, size_name)
    _checks.check_index(index, n, name, dim_name=size_name)
    return n


# --------------------------------------------------------------------------- scatter
def scatter(
    src: Tensor,
    index: Tensor,
    dim_size: int | None = None,
    reduce: str = "sum",
    *,
    backend: str | None = None,
) -> Tensor:
    r"""Reduce the rows of ``src`` that share an ``index`` value (over dim 0).

    .. math::
        \mathrm{out}_i = \operatorname{reduce}_{e \,:\, \mathrm{index}_e = i} \mathrm{src}_e

    Exact PyTorch equivalent (``include_self=False``, empty rows 0)::

        torch.zeros(dim_size, *src.shape[1:]).scatter_reduce(
            0, index.view(-1, *[1] * (src.dim() - 1)).expand_as(src), src, reduce_op, include_self=False)

    with ``reduce_op`` ``"sum"``, ``"mean"``, ``"amax"``, ``"amin"``.

    Args:
        src: ``(E, *)`` floating values.
        index: ``(E,)`` int64/int32 target row of each entry of ``src``.
        dim_size: Number of output rows ``N``. Inferred as ``index.max() + 1`` when ``None``
            (a host synchronisation; pass it inside compiled code).
        reduce: ``"sum"``, ``"mean"``, ``"max"`` or ``"min"``. Rows that receive nothing are 0.
        backend: ``None`` (see :mod:`graphvision.config`), ``"torch"``, ``"triton"``,
            ``"torch_scatter"`` or ``"torch_sparse"``.

    Returns:
        ``(N, *)`` tensor of ``src``'s dtype.

    Shape:
        - src: :math:`(E, *)`
        - index: :math:`(E,)`
        - output: :math:`(N, *)`

    Gradients: ``sum``/``mean`` as usual; ``max``/``min`` send the gradient to the arg-extreme
    entry (the torch backend shares it evenly among exact ties, the segment backends give it to the
    first). NaN in ``src`` propagates to its row for max/min. Deterministic on the CPU; the
    ``triton``/``torch_scatter`` paths (sort + segment reduction) are deterministic on CUDA too.

    Example:
        >>> src = torch.tensor([[1.0], [2.0], [4.0]])
        >>> scatter(src, torch.tensor([0, 2, 0]), dim_size=3, reduce="sum").flatten().tolist()
        [5.0, 0.0, 2.0]
    """
    _check_float_tensor(src, "src")
    if src.dim() < 1:
        raise ValueError(f"Expected 'src' of shape (E, *) (got {tuple(src.shape)})")
    _checks.check_choice(reduce, _REDUCES, "reduce")
    n = _segment_index(index, "index", ("src", src), dim_size, "dim_size")
    return scatter_unchecked(src, index, n, reduce, backend)


def scatter_unchecked(src: Tensor, index: Tensor, n: int, reduce: str = "sum", backend: str | None = None) -> Tensor:
    """:func:`scatter` without validation, for library code whose index was validated already."""
    name = resolve_backend("segment_reduce_csr", src.device, backend)
    rest = tuple(src.shape[1:])
    if name == "torch":
        acc = acc_dtype(src.dtype)
        s = src.to(acc)
        idx = index.long().view((-1,) + (1,) * len(rest)).expand_as(s)
        if reduce in ("sum", "mean"):
            out = s.new_zeros((n,) + rest).index_add(0, index.long(), s)
            if reduce == "mean":
                cnt = torch.zeros(n, dtype=acc, device=src.device).index_add(
                    0, index.long(), torch.ones(index.numel(), dtype=acc, device=src.device)
                )
                out = out / cnt.clamp(min=1).view((n,) + (1,) * len(rest))
        else:
            op = "amax" if reduce == "max" else "amin"
            out = s.new_zeros((n,) + rest).scatter_reduce(0, idx, s, op, include_self=False)
        return out.to(src.dtype)
    rowptr, perm = _index_to_csr(index, n)
    flat = src.index_select(0, perm).reshape(src.size(0), math.prod(rest))
    out, _ = torch.ops.graphvision.segment_reduce(rowptr, flat.contiguous(), reduce, name)
    return out.view((n,) + rest)


# --------------------------------------------------------------------------- spmm
def spmm(
    edge_index: Tensor | GraphStructure,
    edge_weight: Tensor | None,
    x: Tensor,
    num_nodes: int | None = None,
    *,
    backend: str | None = None,
) -> Tensor:
    r"""Weighted sum of neighbour features: sparse adjacency times dense features.

    .. math::
        \mathbf{out}_i = \sum_{(j \to i) \in \mathcal{E}} w_{ji}\, \mathbf{x}_j

    Exact PyTorch equivalent::

        src, dst = edge_index
        msg = x[src] * (edge_weight.view(-1, *[1] * (x.dim() - 1)) if edge_weight is not None else 1)
        out = torch.zeros(num_nodes, *x.shape[1:]).index_add_(0, dst, msg)

    (with an ``(E, K)`` weight the weight of head ``k`` multiplies ``x[:, k]``).

    Args:
        edge_index: ``(2, E)`` int64/int32 edges ``source -> target``, or a
            :class:`~graphvision.GraphStructure` (its cached CSR is reused).
        edge_weight: ``None`` (all ones), ``(E,)`` or, for ``(N, K, F)`` input, ``(E, K)``
            per-head weights; same dtype and device as ``x``.
        x: ``(N_src, F)`` or ``(N_src, K, F)`` source-node features.
        num_nodes: Number of target nodes ``N`` (default: ``x.size(0)``, or the structure's).
        backend: ``None`` (see :mod:`graphvision.config`) or a backend name.

    Returns:
        ``(N, F)`` or ``(N, K, F)``, like ``x``.

    Shape:
        - edge_index: :math:`(2, E)`
        - edge_weight: :math:`(E,)` or :math:`(E, K)`
        - x: :math:`(N_{src}, F)` or :math:`(N_{src}, K, F)`
        - output: :math:`(N, F)` or :math:`(N, K, F)`

    The torch backend runs ``torch.sparse`` CSR matmul forward and, for the gradient of ``x``,
    on the cached transposed CSR (no ``E x F`` tensor; the weight gradient is a chunked SDDMM).
    On the CPU it is deterministic.

    Example:
        >>> ei = torch.tensor([[0, 1, 2], [1, 2, 0]])
        >>> spmm(ei, None, torch.eye(3)).shape
        torch.Size([3, 3])
    """
    _check_float_tensor(x, "x")
    if x.dim() not in (2, 3):
        raise ValueError(f"Expected 'x' of shape (N, F) or (N, K, F) (got {tuple(x.shape)})")
    n_src = x.size(0)
    if num_nodes is not None:
        num_nodes = _checks.check_positive_int(num_nodes, "num_nodes", minimum=0)
    if isinstance(edge_index, Tensor):
        _checks.check_same_device("x", x, "edge_index", edge_index)
        num_dst = n_src if num_nodes is None else num_nodes
    else:
        _checks.check_same_device("x", x, "edge_index", edge_index.edge_index)
        num_dst = num_nodes
    canon = _canonical(edge_index, num_dst, n_src, need_t=_needs_grad(x))
    heads = x.size(1) if x.dim() == 3 else None
    _check_edge_tensor(edge_weight, "edge_weight", canon.num_edges, heads, x)
    name = resolve_backend("spmm_csr", x.device, backend)
    x3 = x if x.dim() == 3 else x.unsqueeze(1)
    w = canon.to_sorted(edge_weight)
    out = torch.ops.graphvision.spmm(
        canon.rowptr, canon.col, w, x3.contiguous(), canon.rowptr_t, canon.col_t, canon.perm_t, name
    )
    return out if x.dim() == 3 else out.squeeze(1)


# --------------------------------------------------------------------------- segment softmax
def segment_softmax(
    scores: Tensor,
    index: Tensor | GraphStructure,
    num_segments: int | None = None,
    *,
    backend: str | None = None,
) -> Tensor:
    r"""Softmax of ``scores`` over the entries that share an ``index`` value (per head).

    .. math::
        \mathrm{out}_e = \frac{\exp(s_e - m_{i})}{\sum_{e' : \mathrm{index}_{e'} = i} \exp(s_{e'} - m_i)},
        \quad i = \mathrm{index}_e,\; m_i = \max_{e' : \mathrm{index}_{e'} = i} s_{e'}

    Exact PyTorch equivalent (as ``torch_geometric.utils.softmax(scores, index, num_nodes=N)``)::

        m = torch.full((N, K), -inf).scatter_reduce(0, index[:, None].expand_as(s), s, "amax")
        e = (s - m[index]).exp(); out = e / torch.zeros(N, K).index_add_(0, index, e)[index]

    Args:
        scores: ``(E,)`` or ``(E, K)`` floating scores.
        index: ``(E,)`` int64/int32 segment of each score, or a
            :class:`~graphvision.GraphStructure` (segments = target nodes, scores per edge).
        num_segments: Number of segments ``N`` (inferred with a host synchronisation when ``None``).
        backend: ``None`` or a backend name.

    Returns:
        Tensor shaped like ``scores``. NaN propagates to every entry of its segment; a segment
        whose scores are all ``-inf`` gives zeros.

    Shape:
        - scores: :math:`(E,)` or :math:`(E, K)`
        - index: :math:`(E,)`
        - output: like ``scores``

    Deterministic on the CPU.

    Example:
        >>> s = torch.tensor([1.0, 1.0, 5.0])
        >>> segment_softmax(s, torch.tensor([0, 0, 1]), 2).tolist()
        [0.5, 0.5, 1.0]
    """
    _check_float_tensor(scores, "scores")
    if scores.dim() not in (1, 2):
        raise ValueError(f"Expected 'scores' of shape (E,) or (E, K) (got {tuple(scores.shape)})")
    e = scores.size(0)
    if isinstance(index, GraphStructure):
        _checks.check_same_device("scores", scores, "index", index.edge_index)
        if e != index.num_edges:
            raise ValueError(f"Expected 'scores' with {index.num_edges} rows, one per edge (got {tuple(scores.shape)})")
        canon = _canonical(index, num_segments, None, need_t=False)
        rowptr = canon.rowptr
        to_sorted, from_sorted = canon.to_sorted, canon.from_sorted
    else:
        n = _segment_index(index, "index", ("scores", scores), num_segments, "num_segments")
        rowptr, perm = _index_to_csr(index, n)

        def to_sorted(t: Tensor | None) -> Tensor | None:
            return None if t is None else t.index_select(0, perm)

        def from_sorted(t: Tensor) -> Tensor:
            return torch.zeros_like(t).index_copy(0, perm, t)

    name = resolve_backend("segment_softmax_csr", scores.device, backend)
    s2 = scores if scores.dim() == 2 else scores.unsqueeze(1)
    s_sorted = to_sorted(s2)
    assert s_sorted is not None
    out = from_sorted(torch.ops.graphvision.segment_softmax(rowptr, s_sorted.contiguous(), name))
    return out if scores.dim() == 2 else out.squeeze(1)


# --------------------------------------------------------------------------- attention
def attention_aggregate(
    x: Tensor,
    score_src: Tensor,
    score_dst: Tensor,
    edge_index: Tensor | GraphStructure,
    edge_weight: Tensor | None = None,
    negative_slope: float = 0.2,
    num_nodes: int | None = None,
    return_attention_weights: bool = False,
    *,
    backend: str | None = None,
) -> Tensor | tuple[Tensor, Tensor]:
    r"""Fused GAT-style attention aggregation.

    For every edge :math:`j \to i` and head :math:`k`:

    .. math::
        e_{jik} = \operatorname{LeakyReLU}(s^{src}_{jk} + s^{dst}_{ik}),\quad
        a_{jik} = \frac{\exp e_{jik}}{\sum_{j' \to i} \exp e_{j'ik}},\quad
        \mathbf{out}_{ik} = \sum_{j \to i} a_{jik}\, w_{ji}\, \mathbf{x}_{jk}

    Nodes without incoming edges get 0. Exact PyTorch equivalent::

        src, dst = edge_index
        e = F.leaky_relu(score_src[src] + score_dst[dst], negative_slope)       # (E, K)
        a = torch_geometric.utils.softmax(e, dst, num_nodes=N)                   # (E, K)
        out = torch.zeros(N, K, F).index_add_(0, dst, (a * w)[..., None] * x[src])

    Args:
        x: ``(N_src, K, F)`` source features per head (``(N_src, F)`` with ``(N,)`` scores for one head).
        score_src: ``(N_src, K)`` source attention logits.
        score_dst: ``(N, K)`` target attention logits.
        edge_index: ``(2, E)`` edges or a :class:`~graphvision.GraphStructure`.
        edge_weight: ``None``, ``(E,)`` or ``(E, K)``: multiplies the attention (not the logits).
        negative_slope: LeakyReLU slope.
        num_nodes: Number of target nodes (default ``score_dst.size(0)``; must match it).
        return_attention_weights: Also return the attention ``a`` ``(E, K)`` in the caller's edge order.
        backend: ``None`` or a backend name.

    Returns:
        ``out`` ``(N, K, F)`` (``(N, F)`` for 2-D ``x``), and ``a`` if ``return_attention_weights``.

    Shape:
        - x: :math:`(N_{src}, K, F)`
        - score_src: :math:`(N_{src}, K)`, score_dst: :math:`(N, K)`
        - edge_weight: :math:`(E,)` or :math:`(E, K)`
        - output: :math:`(N, K, F)`; attention :math:`(E, K)`

    The torch backend never materialises an ``E x F`` tensor: the logits and the softmax are
    ``E x K``, the weighted sum runs through ``torch.sparse`` CSR matmul per head and the backward
    uses the cached transposed CSR and a chunked SDDMM. NaN logits propagate to their target's
    output. Deterministic on the CPU. Double backward (``create_graph=True`` and a second
    backward) is not supported by the fused backward and raises a ``RuntimeError`` saying so;
    compose :func:`segment_softmax` and :func:`spmm` (which support it) where you need it.

    Example:
        >>> ei = torch.tensor([[0, 1, 2, 2], [1, 2, 0, 1]])
        >>> x, a_s, a_d = torch.randn(3, 2, 4), torch.randn(3, 2), torch.randn(3, 2)
        >>> out, att = attention_aggregate(x, a_s, a_d, ei, return_attention_weights=True)
        >>> out.shape, att.shape
        (torch.Size([3, 2, 4]), torch.Size([4, 2]))
    """
    _check_float_tensor(x, "x")
    _check_float_tensor(score_src, "score_src")
    _check_float_tensor(score_dst, "score_dst")
    squeeze = x.dim() == 2
    if squeeze:
        if score_src.dim() != 1 or score_dst.dim() != 1:
            raise ValueError(
                "Expected 'score_src' and 'score_dst' of shape (N,) for 'x' of shape (N, F) "
                f"(got {tuple(score_src.shape)} and {tuple(score_dst.shape)})"
            )
        x, score_src, score_dst = x.unsqueeze(1), score_src.unsqueeze(1), score_dst.unsqueeze(1)
    if x.dim() != 3:
        raise ValueError(f"Expected 'x' of shape (N, K, F) (got {tuple(x.shape)})")
    n_src, k, _ = x.shape
    _checks.check_shape(score_src, [n_src, k], "score_src")
    if score_dst.dim() != 2 or score_dst.size(1) != k:
        raise ValueError(f"Expected 'score_dst' of shape (N, {k}) (got {tuple(score_dst.shape)})")
    for nm, t in (("score_src", score_src), ("score_dst", score_dst)):
        _checks.check_same_device("x", x, nm, t)
        _check_same_dtype("x", x, nm, t)
    n_dst = score_dst.size(0)
    if num_nodes is not None and _checks.check_positive_int(num_nodes, "num_nodes", minimum=0) != n_dst:
        raise ValueError(f"Expected num_nodes equal to score_dst.size(0)={n_dst} (got {num_nodes})")
    if not isinstance(negative_slope, (int, float)) or isinstance(negative_slope, bool):
        raise TypeError(f"Expected 'negative_slope' to be a float (got {type(negative_slope).__name__})")
    ei_t = edge_index.edge_index if isinstance(edge_index, GraphStructure) else edge_index
    if isinstance(ei_t, Tensor):
        _checks.check_same_device("x", x, "edge_index", ei_t)
    canon = _canonical(edge_index, n_dst, n_src, need_t=_needs_grad(x, score_src, score_dst, edge_weight))
    _check_edge_tensor(edge_weight, "edge_weight", canon.num_edges, k, x)
    name = resolve_backend("attention_forward_csr", x.device, backend)
    out, attn = torch.ops.graphvision.attention(
        canon.rowptr, canon.col, canon.rowptr_t, canon.col_t, canon.perm_t,
        x.contiguous(), score_src.contiguous(), score_dst.contiguous(),
        canon.to_sorted(edge_weight), float(negative_slope), name,
    )
    if squeeze:
        out = out.squeeze(1)
    if not return_attention_weights:
        return out
    attn = canon.from_sorted(attn)
    return out, (attn.squeeze(1) if squeeze else attn)


# --------------------------------------------------------------------------- attention pool
def global_attention_pool(
    x: Tensor,
    gate: Tensor,
    batch: Tensor | None = None,
    size: int | None = None,
    return_attention_weights: bool = False,
    *,
    backend: str | None = None,
) -> Tensor | tuple[Tensor, Tensor]:
    r"""Gated global attention readout: softmax of the gate within each graph, weighted feature sum.

    .. math::
        a_{ik} = \frac{\exp g_{ik}}{\sum_{i' \in G_b} \exp g_{i'k}},\quad
        \mathbf{out}_{bk} = \sum_{i \in G_b} a_{ik}\, \mathbf{x}_i

    Exact PyTorch equivalent::

        a = torch_geometric.utils.softmax(gate, batch, num_nodes=B)
        out = torch.zeros(B, K, F).index_add_(0, batch, a[:, :, None] * x[:, None, :])

    Args:
        x: ``(N, F)`` node features.
        gate: ``(N,)`` or ``(N, K)`` gate scores (K heads).
        batch: ``(N,)`` graph of each node (sorted or not); ``None`` for one graph.
        size: Number of graphs ``B`` (inferred with a host synchronisation when ``None``).
        return_attention_weights: Also return the attention weights ``a`` shaped like ``gate``.
        backend: ``None`` or a backend name.

    Returns:
        ``(B, F)`` for a 1-D gate, ``(B, K, F)`` for ``(N, K)``; plus the weights if asked.
        Graphs without nodes give 0.

    Shape:
        - x: :math:`(N, F)`
        - gate: :math:`(N,)` or :math:`(N, K)`
        - batch: :math:`(N,)`
        - output: :math:`(B, F)` or :math:`(B, K, F)`

    When every graph has the same number of nodes the torch backend runs a dense
    reshape + softmax + ``bmm``. Deterministic on the CPU.

    Example:
        >>> x, gate = torch.randn(6, 4), torch.randn(6)
        >>> global_attention_pool(x, gate, torch.tensor([0, 0, 0, 1, 1, 1]), size=2).shape
        torch.Size([2, 4])
    """
    _check_float_tensor(x, "x")
    _check_float_tensor(gate, "gate")
    if x.dim() != 2:
        raise ValueError(f"Expected 'x' of shape (N, F) (got {tuple(x.shape)})")
    n = x.size(0)
    if gate.dim() not in (1, 2) or gate.size(0) != n:
        raise ValueError(f"Expected 'gate' of shape ({n},) or ({n}, K) (got {tuple(gate.shape)})")
    _checks.check_same_device("x", x, "gate", gate)
    _check_same_dtype("x", x, "gate", gate)
    if batch is None:
        b = 1 if size is None else _checks.check_positive_int(size, "size", minimum=0)
        batch = torch.zeros(n, dtype=torch.int64, device=x.device)
    else:
        b = _segment_index(batch, "batch", ("x", x), size, "size")
    name = resolve_backend("attention_pool_ptr", x.device, backend)
    g2 = gate if gate.dim() == 2 else gate.unsqueeze(1)
    is_sorted = (not _checks.is_compiling()) and (n < 2 or bool((batch[1:] >= batch[:-1]).all()))
    if is_sorted:
        ptr = torch.searchsorted(batch.long(), torch.arange(b + 1, device=x.device))
        out, w = torch.ops.graphvision.global_attention_pool(ptr, x.contiguous(), g2.contiguous(), name)
    else:
        ptr, perm = _index_to_csr(batch, b)
        out, w = torch.ops.graphvision.global_attention_pool(ptr, x.index_select(0, perm), g2.index_select(0, perm), name)
        w = torch.zeros_like(w).index_copy(0, perm, w)
    if gate.dim() == 1:
        out, w = out.squeeze(1), w.squeeze(1)
    return (out, w) if return_attention_weights else out


# --------------------------------------------------------------------------- MI joint entropy
def joint_entropy(a: Tensor, chunk: int | None = None, *, backend: str | None = None) -> Tensor:
    r"""Joint entropies of soft-binned node features, for all node pairs (the MI adjacency's kernel).

    .. math::
        H_{bij} = -\sum_{u, v} P_{bij}(u, v) \log P_{bij}(u, v),\qquad
        P_{bij} = \tfrac{1}{C} A_{bi} A_{bj}^\top

    for memberships ``a[b, i]`` of shape ``(bins, C)`` (each column sums to 1). The ``(N, N,
    bins, bins)`` joint histograms are never stored; the torch backend works in blocks of
    ``chunk`` rows (``None``: chosen at run time from a memory budget), the Triton backend in
    fused tiles. Differentiable (``graphvision::joint_entropy`` with its own backward op).

    Backend: ``"auto"`` runs Triton on CUDA (where the H200 run checked it against float64,
    ``AUTO_ORDER_OPS``) when the input suits the fused kernel (float32/half, ``bins <=
    MAX_BINS``), else torch; the torch_scatter/torch_sparse backends have no MI kernel, so they
    also mean ``"auto"`` here. An explicit ``"triton"`` that cannot run raises with the reason.

    Args:
        a: ``(B, N, bins, C)`` floating memberships.
        chunk: Rows per block of the torch kernel, or ``None``.
        backend: ``None`` (see :mod:`graphvision.config`), ``"auto"``, ``"torch"`` or ``"triton"``.

    Returns:
        ``(B, N, N)`` symmetric joint entropies in ``a``'s dtype.

    Shape:
        - a: :math:`(B, N, \text{bins}, C)`
        - output: :math:`(B, N, N)`

    Example:
        >>> a = torch.softmax(torch.randn(2, 5, 4, 10), dim=2)
        >>> joint_entropy(a).shape
        torch.Size([2, 5, 5])
    """
    _check_float_tensor(a, "a")
    if a.dim() != 4:
        raise ValueError(f"Expected 'a' of shape (B, N, bins, C) (got {tuple(a.shape)})")
    requested = config.get_backend() if backend is None else backend
    if requested in ("torch_scatter", "torch_sparse"):  # graph-op libraries: no MI kernel to offer
        requested = "auto"
    name = resolve_backend("joint_entropy_dense", a.device, requested)
    if name == "triton":
        reason = _triton_joint_entropy_reason(a)
        if reason is not None:
            if requested == "triton":
                raise RuntimeError(f"graphvision.ops: backend 'triton' cannot run 'joint_entropy_dense': {reason}")
            name = "torch"
    return torch.ops.graphvision.joint_entropy(a, 0 if chunk is None else chunk, name)


def _triton_joint_entropy_reason(a: Tensor) -> str | None:
    """Why the fused MI kernel cannot take ``a`` (``None`` when it can)."""
    from graphvision.ops._triton.k_mutual_information import MAX_BINS

    if a.size(2) > MAX_BINS:
        return f"the fused kernel supports bins <= {MAX_BINS} (got bins={a.size(2)})"
    if a.dtype == torch.float64:
        return "the fused kernel computes in float32 (got float64 input; use backend='torch')"
    return None
