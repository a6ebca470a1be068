r"""PyG-twin convolutions as functions: GATv2, GraphSAGE, GraphConv, GIN and GINE.

The math and the validation behind :class:`graphvision.nn.GATv2Conv`,
:class:`graphvision.nn.SAGEConv`, :class:`graphvision.nn.GraphConv`,
:class:`graphvision.nn.GINConv` and :class:`graphvision.nn.GINEConv`. Each reproduces PyTorch
Geometric 2.8's layer of the same name (same outputs on graphs with self-loops, duplicate edges and
isolated nodes) but runs on the library's ops:

- neighbour sums and means are one :func:`graphvision.ops.spmm` on the structure's cached CSR
  (no ``E x F`` message tensor, forward or backward); a mean is the sum divided by the in-degree
  cached on the structure;
- GATv2's attention is a :func:`graphvision.ops.segment_softmax` and its aggregation an
  :func:`graphvision.ops.spmm` with per-head weights, so only the ``(E, K, F_out)`` score
  features that GATv2 needs by definition are built;
- self-loops (GATv2) come from the structure's cached looped graph
  (:meth:`graphvision.GraphStructure.with_self_loops`), with PyG's semantics: existing loops are
  removed and one loop per node is added, its edge features set by ``fill_value``.

``x`` is ``(N, F)`` (one graph), ``(B, N, F)`` with one shared graph or per-sample graphs (see
:mod:`graphvision.functional`), or a bipartite pair ``(x_src, x_dst)`` of ``(N_src, F_src)`` and
``(N_dst, F_dst)`` tensors with an ``edge_index`` from ``[0, N_src)`` to ``[0, N_dst)``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple, Union

import torch
import torch.nn.functional as F  # noqa: N812
from torch import Tensor

from graphvision import ops as _ops
from graphvision._checks import check_choice, check_same_device, check_tensor, is_compiling
from graphvision.functional._conv import GATOptions, _check_param, _check_prob, _finish, _heads_of
from graphvision.functional._graph_input import (
    GraphInput,
    GraphLike,
    _check_weight,
    _edge_index_of,
    check_x,
    resolve_graph,
    restore,
)
from graphvision.functional._propagate import FILL_REDUCES, propagate, scatter, with_self_loops_attrs
from graphvision.ops._api import as_structure
from graphvision.structure import GraphStructure, row_index

__all__ = ["GATv2Weights", "gatv2_conv", "sage_conv", "graph_conv", "gin_conv", "gine_conv"]

#: Node features: one tensor, or a bipartite ``(x_src, x_dst)`` pair.
PairLike = Union[Tensor, tuple[Tensor, Tensor]]

_AGGRS = ("sum", "mean", "max")


# --------------------------------------------------------------------------------------------
# input handling
# --------------------------------------------------------------------------------------------


def _resolve_pair(x: PairLike, edge_index: GraphLike, batch: Tensor | None) -> tuple[Tensor, Tensor, GraphInput, bool]:
    """``(x_src, x_dst, graph, bipartite)``; for one tensor ``x_src is x_dst`` (flattened for per-sample graphs)."""
    if isinstance(x, (tuple, list)):
        if len(x) != 2:
            raise ValueError(f"Expected a bipartite 'x' as a pair (x_src, x_dst) (got {len(x)} tensors)")
        x_src = check_x(x[0], "x[0]")
        x_dst = check_x(x[1], "x[1]")
        if x_src.dim() != 2 or x_dst.dim() != 2:
            raise ValueError(
                "Expected bipartite 'x' as two (N, F) tensors "
                f"(got {tuple(x_src.shape)} and {tuple(x_dst.shape)}); batch them into one graph instead"
            )
        if x_src.dtype != x_dst.dtype:
            raise TypeError(f"Expected 'x[1]' of the same dtype as 'x[0]' ({x_src.dtype}) (got {x_dst.dtype})")
        check_same_device("x[0]", x_src, "x[1]", x_dst)
        if batch is not None:
            raise ValueError("'batch' is not supported with a bipartite (x_src, x_dst) input")
        n_src, n_dst = x_src.size(0), x_dst.size(0)
        if isinstance(edge_index, GraphStructure):
            if edge_index.num_nodes != n_dst or edge_index.num_src_nodes != n_src:
                raise ValueError(
                    f"Expected the GraphStructure 'edge_index' with num_src_nodes={n_src} and num_nodes={n_dst} "
                    f"to match 'x' (got num_src_nodes={edge_index.num_src_nodes}, num_nodes={edge_index.num_nodes})"
                )
            check_same_device("x", x_src, "edge_index", edge_index.edge_index)
            graph = edge_index
        elif isinstance(edge_index, (list, tuple)):
            raise TypeError("Expected one (2, E) 'edge_index' or GraphStructure with a bipartite 'x' (got a list)")
        else:
            ei = _edge_index_of(edge_index)
            check_same_device("x", x_src, "edge_index", ei)
            graph = as_structure(ei, n_dst, n_src)
        return x_src, x_dst, GraphInput(graph, None, n_dst, None, False), n_src != n_dst
    x = check_x(x)
    x, g = resolve_graph(x, edge_index, None, batch)
    return x, x, g, False


def _check_edge_attr(edge_attr: object, num_edges: int, x: Tensor, dim: int | None, name: str = "edge_attr") -> Tensor:
    """``(E, D)`` (or ``(E,)`` read as ``(E, 1)``) edge features of ``x``'s dtype and device."""
    t = check_tensor(edge_attr, name)
    if t.dim() == 1:
        t = t.view(-1, 1)
    if t.dim() != 2 or t.size(0) != num_edges or (dim is not None and t.size(1) != dim):
        want = f"({num_edges}, {'D' if dim is None else dim})"
        raise ValueError(f"Expected '{name}' of shape {want} (got {tuple(edge_attr.shape)})")  # type: ignore[union-attr]
    if t.dtype != x.dtype:
        raise TypeError(f"Expected '{name}' of the same dtype as 'x' ({x.dtype}) (got {t.dtype})")
    check_same_device("x", x, name, t)
    return t


def _check_aggr(aggr: str) -> str:
    aggr = "sum" if aggr == "add" else aggr
    check_choice(aggr, _AGGRS + ("add",), "aggr")
    return aggr


def _in_degree(graph: GraphStructure, dtype: torch.dtype) -> Tensor:
    """In-degree (duplicates counted) as ``(N, 1)`` of ``dtype``, clamped at 1 (cached on the structure)."""
    return graph.derived(("pyg_mean_deg", dtype), lambda: graph.in_degree().clamp(min=1).to(dtype).unsqueeze(-1))


def _aggregate(g: GraphInput, x_src: Tensor, aggr: str, edge_weight: Tensor | None = None) -> Tensor:
    """``aggr_{j -> i} w_ji x_j`` over the graph: SpMM for sum/mean, a scatter-max of messages for max."""
    graph = g.graph
    assert isinstance(graph, GraphStructure)
    if aggr in ("sum", "mean"):
        out = propagate(g, edge_weight, x_src)
        if aggr == "mean":
            out = out / _in_degree(graph, out.dtype)
        return out
    # max: gather the neighbours in target-sorted (CSR) order and reduce contiguous segments.
    rowptr, col, perm = graph.csr()
    w = None
    if edge_weight is not None:
        w = edge_weight if graph.identity_perm else edge_weight.index_select(0, perm)
    row = graph.derived("pyg_row_index", lambda: row_index(rowptr, col.numel()))
    bsz = None
    if g.shared:
        bsz, n, f = x_src.shape
        x_src = x_src.permute(1, 0, 2).reshape(n, bsz * f)
    if x_src.device.type == "cpu" and not is_compiling():
        fw = x_src.size(1)
        chunks = graph.derived(("pyg_row_chunks", fw, _CHUNK_ELEMS), lambda: _row_chunks(rowptr, fw))
        out = _GatherSegmentMax.apply(x_src, w, rowptr, col, row, chunks)
    else:
        msg = x_src.index_select(0, col)
        if w is not None:
            msg = msg * w.view(-1, 1)
        out = _SegmentMax.apply(msg, rowptr, row)
    if bsz is not None:
        return out.view(-1, bsz, f).permute(1, 0, 2)
    return out


class _GatherSegmentMax(torch.autograd.Function):
    """``max_{e in row i} w_e x[col_e]`` over a CSR, in cache-sized row chunks (CPU).

    The same result and gradient as :class:`_SegmentMax` of the gathered messages (ties split
    evenly, empty rows 0), but the ``(E, F)`` messages are built one chunk at a time in the
    forward and rebuilt in the backward, never stored.
    """

    @staticmethod
    def forward(ctx, x, w, rowptr, col, row, chunks):  # type: ignore[no-untyped-def,override]
        n, f = rowptr.numel() - 1, x.size(1)
        out = x.new_zeros(n, f)
        for a, b, e0, e1 in chunks:
            m = x.index_select(0, col[e0:e1])
            if w is not None:
                m = m * w[e0:e1].unsqueeze(-1)
            out[a:b] = torch.segment_reduce(m, "max", offsets=rowptr[a : b + 1] - e0, axis=0, unsafe=True)
        out = torch.where((rowptr[1:] > rowptr[:-1]).unsqueeze(-1), out, torch.zeros_like(out))
        ctx.save_for_backward(x, w, rowptr, col, row, out)
        ctx.chunks = chunks
        return out

    @staticmethod
    def backward(ctx, grad):  # type: ignore[no-untyped-def]
        x, w, rowptr, col, row, out = ctx.saved_tensors
        dx = torch.zeros_like(x) if ctx.needs_input_grad[0] else None
        dw = torch.zeros_like(w) if w is not None and ctx.needs_input_grad[1] else None
        for a, b, e0, e1 in ctx.chunks:
            c = col[e0:e1]
            xj = x.index_select(0, c)
            m = xj * w[e0:e1].unsqueeze(-1) if w is not None else xj
            r = row[e0:e1] - a
            tie = (m == out[a:b].index_select(0, r)).to(grad.dtype)
            count = torch.segment_reduce(tie, "sum", offsets=rowptr[a : b + 1] - e0, axis=0, unsafe=True)
            gm = tie * (grad[a:b] / count.clamp(min=1)).index_select(0, r)
            if dx is not None:
                dx.index_add_(0, c, gm * w[e0:e1].unsqueeze(-1) if w is not None else gm)
            if dw is not None:
                dw[e0:e1] = (gm * xj).sum(-1)
        return dx, dw, None, None, None, None


def _row_chunks(rowptr: Tensor, width: int) -> list[tuple[int, int, int, int]]:
    """``(row_start, row_end, edge_start, edge_end)`` chunks of about 1 MB of messages (one host read of ``rowptr``)."""
    rp = rowptr.tolist()
    n, target = len(rp) - 1, max(1, _CHUNK_ELEMS // max(width, 1))
    chunks, a = [], 0
    while a < n:
        b = a + 1
        # grow by rows until the chunk holds ``target`` edges (at least one row)
        lo, hi = b, n
        while lo < hi:  # binary search: the last b with rp[b] - rp[a] <= target
            mid = (lo + hi + 1) // 2
            if rp[mid] - rp[a] <= target:
                lo = mid
            else:
                hi = mid - 1
        b = max(lo, a + 1)
        if rp[b] > rp[a]:
            chunks.append((a, b, rp[a], rp[b]))
        a = b
    return chunks


#: Elements of one per-edge temporary in the chunked kernels (2**18 float32 = 1 MB, about an L2
#: cache): GATv2 scores at E = 195k, K F = 64 ran 13x faster forward than one (E, K, F) pass.
_CHUNK_ELEMS = 1 << 18


class _SegmentMax(torch.autograd.Function):
    """Max over the CSR segments of ``msg`` ``(E, F)``; empty segments give 0.

    The gradient is split evenly among tied maxima (as ``scatter_reduce(..., "amax")``, which PyG
    uses; duplicate edges tie). Forward ``torch.segment_reduce``; backward one gather of the
    output, a tie count per segment and one division: on the CPU several times faster than
    ``scatter_reduce``'s backward (measured 3x at E = 195k, F = 64, one thread).
    """

    @staticmethod
    def forward(msg: Tensor, rowptr: Tensor, row: Tensor) -> Tensor:  # type: ignore[override]
        out = torch.segment_reduce(msg, "max", offsets=rowptr, axis=0, unsafe=True)
        return torch.where((rowptr[1:] > rowptr[:-1]).unsqueeze(-1), out, torch.zeros_like(out))

    @staticmethod
    def setup_context(ctx, inputs, output) -> None:  # type: ignore[no-untyped-def]
        msg, rowptr, row = inputs
        ctx.save_for_backward(msg, rowptr, row, output)

    @staticmethod
    def backward(ctx, grad: Tensor):  # type: ignore[no-untyped-def]
        msg, rowptr, row, out = ctx.saved_tensors
        tie = (msg == out.index_select(0, row)).to(grad.dtype)  # (E, F)
        count = torch.segment_reduce(tie, "sum", offsets=rowptr, axis=0, unsafe=True).clamp(min=1)
        return tie * (grad / count).index_select(0, row), None, None


def _linear_before(w: Tensor) -> bool:
    """Project before a linear aggregation when it narrows the features (fewer numbers to move)."""
    return w.size(0) < w.size(1)


# --------------------------------------------------------------------------------------------
# GATv2
# --------------------------------------------------------------------------------------------


def _score_chunk(num_edges: int, width: int) -> int:
    """Edges per chunk so that one ``(chunk, K', F)`` temporary is about 1 MB (stays in cache)."""
    return max(1, min(num_edges, _CHUNK_ELEMS // max(width, 1)))


class _GATv2Scores(torch.autograd.Function):
    r"""GATv2 scores :math:`s_{e,k} = \mathbf{a}_k^\top \operatorname{LeakyReLU}(\mathbf{h}_{s}[j] +
    \mathbf{h}_{t}[i] + \mathbf{W}_e \mathbf{e}_{ji})_k`, in edge chunks.

    Exactly ``(LeakyReLU(hs[src] + hd[dst] + (ea @ We^T)) * att).sum(-1)``, but the
    ``(E, K, F)`` sums are built one cache-sized chunk at a time, in the forward and again in the
    backward, and never stored: autograd keeps only the node projections, the edge features and
    the indices (``O(N K F + E D)`` instead of three ``(E, K, F)`` tensors). A shared graph's batch
    is folded into the heads (``K' = B K``); the edge term is shared by the ``reps = B`` samples.
    """

    @staticmethod
    def forward(ctx, h_src, h_dst, att, ea, w_e, src, dst, slope, reps):  # type: ignore[no-untyped-def,override]
        e_total, kk, f = src.numel(), att.size(0), att.size(1)
        k = kk // reps
        out = h_src.new_empty(e_total, kk)
        step = _score_chunk(e_total, kk * f)
        for a in range(0, e_total, step):
            b = min(a + step, e_total)
            z = h_src.index_select(0, src[a:b]) + h_dst.index_select(0, dst[a:b])
            if ea is not None:
                e = F.linear(ea[a:b], w_e).view(b - a, 1, k, f)
                z = (z.view(b - a, reps, k, f) + e).view(b - a, kk, f)
            torch.sum(F.leaky_relu(z, slope) * att, -1, out=out[a:b])
        ctx.save_for_backward(h_src, h_dst, att, ea, w_e, src, dst)
        ctx.slope, ctx.reps = slope, reps
        return out

    @staticmethod
    def backward(ctx, grad):  # type: ignore[no-untyped-def]
        h_src, h_dst, att, ea, w_e, src, dst = ctx.saved_tensors
        slope, reps = ctx.slope, ctx.reps
        e_total, kk, f = src.numel(), att.size(0), att.size(1)
        k = kk // reps
        d_src = torch.zeros_like(h_src) if ctx.needs_input_grad[0] else None
        d_dst = torch.zeros_like(h_dst) if ctx.needs_input_grad[1] else None
        d_att = torch.zeros_like(att)
        d_ea = torch.empty_like(ea) if ea is not None and ctx.needs_input_grad[3] else None
        d_we = torch.zeros_like(w_e) if w_e is not None and ctx.needs_input_grad[4] else None
        step = _score_chunk(e_total, kk * f)
        grad = grad.contiguous()
        for a in range(0, e_total, step):
            b = min(a + step, e_total)
            s_idx, d_idx = src[a:b], dst[a:b]
            z = h_src.index_select(0, s_idx) + h_dst.index_select(0, d_idx)
            if ea is not None:
                e = F.linear(ea[a:b], w_e).view(b - a, 1, k, f)
                z = (z.view(b - a, reps, k, f) + e).view(b - a, kk, f)
            g = grad[a:b].unsqueeze(-1)  # (c, K', 1)
            d_att += (F.leaky_relu(z, slope) * g).sum(0)
            gz = g * att
            dz = torch.where(z > 0, gz, gz * slope)  # (c, K', F)
            if d_src is not None:
                d_src.index_add_(0, s_idx, dz)
            if d_dst is not None:
                d_dst.index_add_(0, d_idx, dz)
            if ea is not None and (d_ea is not None or d_we is not None):
                dze = dz.view(b - a, reps, k * f).sum(1)  # (c, K F)
                if d_ea is not None:
                    d_ea[a:b] = dze @ w_e
                if d_we is not None:
                    d_we += dze.t() @ ea[a:b]
        return d_src, d_dst, d_att, d_ea, d_we, None, None, None, None


class GATv2Weights(NamedTuple):
    r"""The learned tensors of :func:`gatv2_conv`, in PyG ``GATv2Conv`` terms.

    :class:`graphvision.nn.GATv2Conv` builds it from its parameters at each call.

    Attributes:
        weight_src: :math:`\mathbf{\Theta}_s`, ``(K * F_out, F_src)`` (PyG ``lin_l.weight``).
        weight_dst: :math:`\mathbf{\Theta}_t`, ``(K * F_out, F_dst)`` (PyG ``lin_r.weight``); pass
            ``weight_src`` itself to share the weights.
        att: :math:`\mathbf{a}`, ``(K, F_out)`` or ``(1, K, F_out)`` (PyG ``att``).
        bias: Optional output bias, ``(K * F_out,)`` with concatenated heads, else ``(F_out,)``.
        bias_src: Optional ``(K * F_out,)`` bias of :math:`\mathbf{\Theta}_s` (PyG ``lin_l.bias``).
        bias_dst: Optional ``(K * F_out,)`` bias of :math:`\mathbf{\Theta}_t` (PyG ``lin_r.bias``).
        weight_edge: Optional :math:`\mathbf{\Theta}_e`, ``(K * F_out, D)``, for ``edge_attr``
            (PyG ``lin_edge.weight``).
        residual_weight: Optional ``(out, F_dst)`` skip projection added to the output (PyG
            ``res.weight``).

    Shape:
        - weight_src: :math:`(K F_{out}, F_{src})`, weight_dst: :math:`(K F_{out}, F_{dst})`
        - att: :math:`(K, F_{out})` or :math:`(1, K, F_{out})`
        - bias: :math:`(K F_{out},)` (concat) or :math:`(F_{out},)`
        - weight_edge: :math:`(K F_{out}, D)`

    Example:
        >>> from graphvision.functional import GATv2Weights
        >>> w = torch.randn(2 * 16, 8)
        >>> weights = GATv2Weights(w, w, torch.randn(2, 16))  # shared source / target projection
        >>> weights.weight_src is weights.weight_dst
        True
    """

    weight_src: Tensor
    weight_dst: Tensor
    att: Tensor
    bias: Tensor | None = None
    bias_src: Tensor | None = None
    bias_dst: Tensor | None = None
    weight_edge: Tensor | None = None
    residual_weight: Tensor | None = None


def _check_gatv2(x_src: Tensor, x_dst: Tensor, weights: GATv2Weights, concat: bool) -> GATv2Weights:
    """Validate ``weights`` against the features; ``att`` comes back as ``(K, F_out)``."""
    if not isinstance(weights, GATv2Weights):
        raise TypeError(f"Expected 'weights' to be a GATv2Weights (got {type(weights).__name__})")
    att = _heads_of(weights.att, "att")
    k, f_out = att.shape
    _check_param(weights.weight_src, (k * f_out, x_src.size(-1)), "weight_src", x_src)
    _check_param(weights.weight_dst, (k * f_out, x_dst.size(-1)), "weight_dst", x_dst)
    for name, b in (("bias_src", weights.bias_src), ("bias_dst", weights.bias_dst)):
        if b is not None:
            _check_param(b, (k * f_out,), name, x_src)
    out_dim = k * f_out if concat else f_out
    if weights.bias is not None:
        _check_param(weights.bias, (out_dim,), "bias", x_src)
    if weights.residual_weight is not None:
        _check_param(weights.residual_weight, (out_dim, x_dst.size(-1)), "residual_weight", x_dst)
    return weights._replace(att=att)


def _gatv2_loops(
    g: GraphInput, ea: Tensor | None, n_src: int, n_dst: int, fill_value: float | Tensor | str
) -> tuple[GraphInput, Tensor | None]:
    """PyG's ``add_self_loops`` for GATv2: existing loops removed, one per node, edge features by ``fill_value``."""
    if n_src != n_dst:
        raise ValueError(
            "add_self_loops=True needs as many source as target nodes "
            f"(got {n_src} and {n_dst}); pass add_self_loops=False"
        )
    if not isinstance(fill_value, (str, Tensor)) and (
        isinstance(fill_value, bool) or not isinstance(fill_value, (int, float))
    ):
        raise TypeError(f"Expected 'fill_value' to be a float, a tensor or one of {FILL_REDUCES} (got {fill_value!r})")
    if isinstance(fill_value, str):
        check_choice(fill_value, FILL_REDUCES, "fill_value")
    g, (ea,) = with_self_loops_attrs(g, [ea], fill_value)
    return g, ea


def _fold_heads(h: Tensor, bsz: int | None, k: int, f_out: int) -> Tensor:
    """``(N, K*F)`` -> ``(N, K, F)``; a shared graph's ``(B, N, K*F)`` -> ``(N, B*K, F)`` (batch into the heads)."""
    if bsz is None:
        return h.view(-1, k, f_out)
    n = h.size(1)
    return h.view(bsz, n, k, f_out).permute(1, 0, 2, 3).reshape(n, bsz * k, f_out)


def _gatv2_scores(
    graph: GraphStructure,
    h_src: Tensor,
    h_dst: Tensor,
    ea: Tensor | None,
    weights: GATv2Weights,
    negative_slope: float,
    bsz: int | None,
) -> Tensor:
    r"""The ``(E', K')`` scores :math:`\mathbf{a}^\top \operatorname{LeakyReLU}(\ldots)` (chunked in eager mode)."""
    att = weights.att if bsz is None else weights.att.repeat(bsz, 1)
    src, dst = graph.edge_index[0], graph.edge_index[1]
    if not is_compiling():
        return _GATv2Scores.apply(h_src, h_dst, att, ea, weights.weight_edge, src, dst, float(negative_slope), bsz or 1)
    z = h_src.index_select(0, src) + h_dst.index_select(0, dst)  # (E', K', F): the compiler fuses the chain itself
    if ea is not None:
        e = F.linear(ea, weights.weight_edge).view(-1, *weights.att.shape)
        z = z + (e.repeat(1, bsz, 1) if bsz is not None else e)
    return (F.leaky_relu(z, negative_slope) * att).sum(-1)


def gatv2_conv(
    x: PairLike,
    edge_index: GraphLike,
    weights: GATv2Weights,
    edge_attr: Tensor | None = None,
    *,
    batch: Tensor | None = None,
    options: GATOptions = GATOptions(),
    training: bool = True,
    return_attention_weights: bool = False,
) -> Tensor | tuple[Tensor, tuple[Tensor, Tensor]]:
    r"""GATv2 attention of Brody et al., `"How Attentive are Graph Attention Networks?"
    <https://arxiv.org/abs/2105.14491>`_ (PyG's ``GATv2Conv``).

    .. math::
        \mathbf{x}'_i = \Big\Vert_{k=1}^{K} \sum_{j \in \mathcal{N}(i) \cup \{i\}}
        \alpha^{k}_{ij}\, \mathbf{\Theta}^{k}_{s} \mathbf{x}_j, \qquad
        \alpha^{k}_{ij} = \operatorname{softmax}_j\Big(\mathbf{a}^{k\top}\operatorname{LeakyReLU}\big(
        \mathbf{\Theta}^{k}_{s}\mathbf{x}_j + \mathbf{\Theta}^{k}_{t}\mathbf{x}_i +
        \mathbf{\Theta}^{k}_{e}\mathbf{e}_{ji}\big)\Big)

    The scores need the ``(E, K, F_out)`` sums by definition (the nonlinearity sits inside the dot
    product); the softmax is a :func:`graphvision.ops.segment_softmax` and the aggregation an
    :func:`graphvision.ops.spmm` with per-head weights, so no ``(E, K, F_out)`` message tensor is
    built for it. Self-loops follow PyG: existing loops are removed and one loop per node added
    (on the structure's cached looped graph); the loops' edge features are set by
    ``options.fill_value``. Heads are merged, and the skip projection and bias added, as in
    :func:`graphvision.functional.gat_conv`.

    Args:
        x: Node features: ``(N, F_in)``, ``(B, N, F_in)`` (shared or per-sample graph), or a
            bipartite pair ``(x_src, x_dst)``.
        edge_index: ``(2, E)`` integer tensor, ``GraphStructure``, or a list of ``B`` per-sample ones.
        weights: The source / target projections, attention vector and optional biases, edge
            projection and skip projection (:class:`GATv2Weights`).
        edge_attr: Optional ``(E, D)`` edge features (needs ``weights.weight_edge``).
        batch: ``(B * N,)``; marks ``edge_index`` as offset over the flattened nodes of batched ``x``.
        options: ``concat``, ``negative_slope``, ``dropout``, ``add_self_loops`` (needs
            ``N_src == N_dst``) and ``fill_value``, as PyG's ``GATv2Conv``
            (:class:`graphvision.functional.GATOptions`).
        training: Apply dropout.
        return_attention_weights: Also return ``(edge_index, attention)`` (with the loops; before dropout).

    Returns:
        The output features, and with ``return_attention_weights`` ``(edge_index, attention)``:
        attention ``(E', K)``, or ``(B, E', K)`` for a shared graph.

    Shape:
        - x: :math:`(N, F_{in})`, :math:`(B, N, F_{in})` or :math:`((N_s, F_s), (N_t, F_t))`
        - edge_index: :math:`(2, E)`
        - edge_attr: :math:`(E, D)`, optional
        - output: :math:`(N, K F_{out})` (concat) or :math:`(N, F_{out})`, batched :math:`(B, N, \cdot)`

    Example:
        >>> from graphvision.functional import GATv2Weights, gatv2_conv
        >>> x = torch.randn(4, 8)
        >>> edge_index = torch.tensor([[0, 1, 2], [1, 2, 3]])
        >>> w = torch.randn(2 * 16, 8)
        >>> gatv2_conv(x, edge_index, GATv2Weights(w, w, torch.randn(2, 16))).shape
        torch.Size([4, 32])
    """
    dropout = _check_prob(options.dropout, "dropout")
    x_src, x_dst, g, _ = _resolve_pair(x, edge_index, batch)
    weights = _check_gatv2(x_src, x_dst, weights, options.concat)
    k, f_out = weights.att.shape
    ea = _gatv2_edge_features(edge_attr, g, weights, x_src)
    h_src = F.linear(x_src, weights.weight_src, weights.bias_src)
    same = x_src is x_dst and weights.weight_src is weights.weight_dst and weights.bias_src is weights.bias_dst
    h_dst = h_src if same else F.linear(x_dst, weights.weight_dst, weights.bias_dst)
    if options.add_self_loops:
        g, ea = _gatv2_loops(g, ea, x_src.size(0), x_dst.size(0), options.fill_value)
    graph = g.graph
    assert isinstance(graph, GraphStructure)

    bsz = x_src.size(0) if g.shared else None
    h_src = _fold_heads(h_src, bsz, k, f_out)
    h_dst = h_src if same else _fold_heads(h_dst, bsz, k, f_out)
    extra = graph.num_nodes - g.num_nodes  # the static-shape looped graph while compiling: one sink row
    h_dst_p = torch.cat([h_dst, h_dst.new_zeros(extra, *h_dst.shape[1:])]) if extra > 0 else h_dst
    alpha = _ops.segment_softmax(_gatv2_scores(graph, h_src, h_dst_p, ea, weights, options.negative_slope, bsz), graph)
    coef = F.dropout(alpha, p=dropout, training=True) if dropout > 0.0 and training else alpha
    out = _ops.spmm(graph, coef, h_src, graph.num_nodes)  # (N', K', F)
    if extra > 0:
        out = out[: g.num_nodes]
    if bsz is not None:
        out = out.view(out.size(0), bsz, k, f_out).permute(1, 0, 2, 3)
        alpha = alpha.view(alpha.size(0), bsz, k).permute(1, 0, 2)
    return _finish(out, alpha, x_dst, g, weights, options.concat, return_attention_weights)


def _gatv2_edge_features(edge_attr: Tensor | None, g: GraphInput, weights: GATv2Weights, x: Tensor) -> Tensor | None:
    if edge_attr is None:
        return None
    if weights.weight_edge is None:
        raise ValueError("'edge_attr' was given but no edge projection 'weight_edge' (set edge_dim)")
    graph = g.graph
    assert isinstance(graph, GraphStructure)
    k, f_out = weights.att.shape
    ea = _check_edge_attr(edge_attr, graph.num_edges, x, check_tensor(weights.weight_edge, "weight_edge").size(-1))
    _check_param(weights.weight_edge, (k * f_out, ea.size(1)), "weight_edge", x)
    return ea


# --------------------------------------------------------------------------------------------
# GraphSAGE, GraphConv
# --------------------------------------------------------------------------------------------


def _aggregate_and_project(
    g: GraphInput,
    x_src: Tensor,
    x_dst: Tensor,
    weight: Tensor,
    bias: Tensor | None,
    root_weight: Tensor | None,
    aggr: str,
    edge_weight: Tensor | None,
) -> Tensor:
    """``W aggr_j(e_ji x_j) + b (+ W_root x_i)``, shared by SAGE and GraphConv (parameters checked).

    For sum/mean, the projection runs before the aggregation when it narrows the features (same
    result, fewer bytes through the sparse product); max needs the raw features.
    """
    _check_param(weight, ("F_out", x_src.size(-1)), "weight", x_src)
    f_out = weight.size(0)
    if bias is not None:
        _check_param(bias, (f_out,), "bias", x_src)
    if root_weight is not None:
        _check_param(root_weight, (f_out, x_dst.size(-1)), "root_weight", x_dst)
    if aggr != "max" and _linear_before(weight):
        out = _aggregate(g, F.linear(x_src, weight), aggr, edge_weight)
        if bias is not None:
            out = out + bias
    else:
        out = F.linear(_aggregate(g, x_src, aggr, edge_weight), weight, bias)
    if root_weight is not None:
        out = out + F.linear(x_dst, root_weight)
    return out


def sage_conv(
    x: PairLike,
    edge_index: GraphLike,
    weight: Tensor,
    bias: Tensor | None = None,
    root_weight: Tensor | None = None,
    *,
    aggr: str = "mean",
    normalize: bool = False,
    project_weight: Tensor | None = None,
    project_bias: Tensor | None = None,
    batch: Tensor | None = None,
) -> Tensor:
    r"""GraphSAGE convolution of Hamilton et al., `"Inductive Representation Learning on Large
    Graphs" <https://arxiv.org/abs/1706.02216>`_ (PyG's ``SAGEConv``).

    .. math::
        \mathbf{x}'_i = \mathbf{W}_1 \mathbf{x}_i + \mathbf{W}_2 \cdot
        \mathrm{aggr}_{j \in \mathcal{N}(i)} \mathbf{x}_j + \mathbf{b}

    ``sum`` and ``mean`` are one :func:`graphvision.ops.spmm` (the mean divides by the in-degree,
    duplicates counted, cached on the structure); ``max`` reduces the gathered neighbour features.
    Nodes without neighbours aggregate to 0, as in PyG.

    Args:
        x: Node features: ``(N, F_in)``, ``(B, N, F_in)`` (shared or per-sample graph), or a
            bipartite pair ``(x_src, x_dst)``.
        edge_index: ``(2, E)`` integer tensor, ``GraphStructure``, or a list of ``B`` per-sample ones.
        weight: ``(F_out, F_src)`` :math:`\mathbf{W}_2` of the aggregate (PyG ``lin_l.weight``).
        bias: Optional ``(F_out,)`` (PyG ``lin_l.bias``).
        root_weight: Optional ``(F_out, F_dst)`` :math:`\mathbf{W}_1` (PyG ``lin_r.weight``).
        aggr: ``"mean"``, ``"sum"`` (alias ``"add"``) or ``"max"``.
        normalize: L2-normalise the output rows.
        project_weight: Optional ``(F_src, F_src)`` projection applied (with ReLU) to the source
            features first (PyG ``project=True``, ``lin.weight``).
        project_bias: Optional ``(F_src,)`` bias of that projection.
        batch: ``(B * N,)``; marks ``edge_index`` as offset over the flattened nodes of batched ``x``.

    Returns:
        The output features, in the layout of ``x`` (``(N_dst, F_out)`` for a bipartite pair).

    Shape:
        - x: :math:`(N, F_{in})`, :math:`(B, N, F_{in})` or :math:`((N_s, F_s), (N_t, F_t))`
        - edge_index: :math:`(2, E)`
        - output: :math:`(N, F_{out})` or :math:`(B, N, F_{out})`

    Example:
        >>> x = torch.randn(4, 8)
        >>> edge_index = torch.tensor([[0, 1, 2], [1, 2, 3]])
        >>> graphvision.functional.sage_conv(x, edge_index, torch.randn(16, 8), root_weight=torch.randn(16, 8)).shape
        torch.Size([4, 16])
    """
    aggr = _check_aggr(aggr)
    x_src, x_dst, g, _ = _resolve_pair(x, edge_index, batch)
    if project_weight is not None:
        c = x_src.size(-1)
        _check_param(project_weight, (c, c), "project_weight", x_src)
        if project_bias is not None:
            _check_param(project_bias, (c,), "project_bias", x_src)
        x_src = F.linear(x_src, project_weight, project_bias).relu()
    out = _aggregate_and_project(g, x_src, x_dst, weight, bias, root_weight, aggr, None)
    if normalize:
        out = F.normalize(out, p=2.0, dim=-1)
    return restore(out, g)


def graph_conv(
    x: PairLike,
    edge_index: GraphLike,
    weight: Tensor,
    bias: Tensor | None = None,
    root_weight: Tensor | None = None,
    edge_weight: Tensor | None = None,
    *,
    aggr: str = "add",
    batch: Tensor | None = None,
) -> Tensor:
    r"""Graph convolution of Morris et al., `"Weisfeiler and Leman Go Neural: Higher-order Graph
    Neural Networks" <https://arxiv.org/abs/1810.02244>`_ (PyG's ``GraphConv``).

    .. math::
        \mathbf{x}'_i = \mathbf{W}_1 \mathbf{x}_i + \mathbf{W}_2 \,
        \mathrm{aggr}_{j \in \mathcal{N}(i)} e_{j,i} \cdot \mathbf{x}_j + \mathbf{b}

    Args:
        x: Node features: ``(N, F_in)``, ``(B, N, F_in)`` (shared or per-sample graph), or a
            bipartite pair ``(x_src, x_dst)``.
        edge_index: ``(2, E)`` integer tensor, ``GraphStructure``, or a list of ``B`` per-sample ones.
        weight: ``(F_out, F_src)`` :math:`\mathbf{W}_2` (PyG ``lin_rel.weight``).
        bias: Optional ``(F_out,)`` (PyG ``lin_rel.bias``).
        root_weight: Optional ``(F_out, F_dst)`` :math:`\mathbf{W}_1` (PyG ``lin_root.weight``).
        edge_weight: Optional ``(E,)`` edge weights :math:`e_{j,i}` (a list for a list of graphs).
        aggr: ``"add"`` (alias ``"sum"``), ``"mean"`` or ``"max"``.
        batch: ``(B * N,)``; marks ``edge_index`` as offset over the flattened nodes of batched ``x``.

    Returns:
        The output features, in the layout of ``x``.

    Shape:
        - x: :math:`(N, F_{in})`, :math:`(B, N, F_{in})` or :math:`((N_s, F_s), (N_t, F_t))`
        - edge_index: :math:`(2, E)`
        - edge_weight: :math:`(E,)`, optional
        - output: :math:`(N, F_{out})` or :math:`(B, N, F_{out})`

    Example:
        >>> x = torch.randn(4, 8)
        >>> edge_index = torch.tensor([[0, 1, 2], [1, 2, 3]])
        >>> graphvision.functional.graph_conv(x, edge_index, torch.randn(16, 8), root_weight=torch.randn(16, 8)).shape
        torch.Size([4, 16])
    """
    aggr = _check_aggr(aggr)
    if isinstance(x, (tuple, list)):
        x_src, x_dst, g, _ = _resolve_pair(x, edge_index, batch)
        if edge_weight is not None:
            graph = g.graph
            assert isinstance(graph, GraphStructure)
            g = GraphInput(graph, _check_weight(edge_weight, graph.num_edges, x_src), g.num_nodes, None, False)
    else:
        x_src = check_x(x)
        x_src, g = resolve_graph(x_src, edge_index, edge_weight, batch)
        x_dst = x_src
    return restore(_aggregate_and_project(g, x_src, x_dst, weight, bias, root_weight, aggr, g.edge_weight), g)


# --------------------------------------------------------------------------------------------
# GIN, GINE
# --------------------------------------------------------------------------------------------


def _eps_term(eps: float | Tensor, x_dst: Tensor) -> Tensor:
    if isinstance(eps, Tensor):
        return (1 + eps.to(x_dst.dtype)) * x_dst
    return (1.0 + float(eps)) * x_dst


class _GINEMessages(torch.autograd.Function):
    r"""``out[i] = sum_{j -> i} ReLU(x[j] + W_e e_ji + b_e)`` in cache-sized edge chunks.

    The edge projection, the gather, the ReLU and the sum run one chunk at a time, forward and
    (recomputed) backward, so the ``(E, F)`` messages are never stored; autograd keeps ``x``, the
    raw edge features and the indices. With a shared graph ``x`` is ``(N, B F)`` and the edge term
    is shared by the ``reps = B`` samples. Sums use ``index_add_`` (deterministic on the CPU).
    """

    @staticmethod
    def forward(ctx, x, ea, w_e, b_e, src, dst, num_nodes, reps):  # type: ignore[no-untyped-def,override]
        e_total, width = src.numel(), x.size(1)
        f = width // reps
        out = x.new_zeros(num_nodes, width)
        step = _score_chunk(e_total, width)
        for a in range(0, e_total, step):
            b = min(a + step, e_total)
            e = F.linear(ea[a:b], w_e, b_e) if w_e is not None else ea[a:b]
            z = (x.index_select(0, src[a:b]).view(b - a, reps, f) + e.unsqueeze(1)).relu_()
            out.index_add_(0, dst[a:b], z.view(b - a, width))
        ctx.save_for_backward(x, ea, w_e, b_e, src, dst)
        ctx.reps = reps
        return out

    @staticmethod
    def backward(ctx, grad):  # type: ignore[no-untyped-def]
        x, ea, w_e, b_e, src, dst = ctx.saved_tensors
        reps = ctx.reps
        e_total, width = src.numel(), x.size(1)
        f = width // reps
        dx = torch.zeros_like(x) if ctx.needs_input_grad[0] else None
        dea = torch.empty_like(ea) if ctx.needs_input_grad[1] else None
        dw = torch.zeros_like(w_e) if w_e is not None and ctx.needs_input_grad[2] else None
        db = torch.zeros_like(b_e) if b_e is not None and ctx.needs_input_grad[3] else None
        step = _score_chunk(e_total, width)
        for a in range(0, e_total, step):
            b = min(a + step, e_total)
            e = F.linear(ea[a:b], w_e, b_e) if w_e is not None else ea[a:b]
            z = x.index_select(0, src[a:b]).view(b - a, reps, f) + e.unsqueeze(1)
            gz = grad.index_select(0, dst[a:b]).view(b - a, reps, f) * (z > 0)
            if dx is not None:
                dx.index_add_(0, src[a:b], gz.view(b - a, width))
            de = gz.sum(1)  # (c, F)
            if dea is not None:
                dea[a:b] = de @ w_e if w_e is not None else de
            if dw is not None:
                dw += de.t() @ ea[a:b]
            if db is not None:
                db += de.sum(0)
        return dx, dea, dw, db, None, None, None, None


def gin_conv(
    x: PairLike,
    edge_index: GraphLike,
    nn: Callable[[Tensor], Tensor] | None = None,
    eps: float | Tensor = 0.0,
    *,
    batch: Tensor | None = None,
) -> Tensor:
    r"""Graph isomorphism convolution of Xu et al., `"How Powerful are Graph Neural Networks?"
    <https://arxiv.org/abs/1810.00826>`_ (PyG's ``GINConv``).

    .. math::
        \mathbf{x}'_i = h_{\mathbf{\Theta}}\Big((1 + \epsilon)\,\mathbf{x}_i +
        \sum_{j \in \mathcal{N}(i)} \mathbf{x}_j\Big)

    The neighbour sum is one :func:`graphvision.ops.spmm`.

    Args:
        x: Node features: ``(N, F)``, ``(B, N, F)`` (shared or per-sample graph), or a bipartite
            pair ``(x_src, x_dst)`` with the same ``F``.
        edge_index: ``(2, E)`` integer tensor, ``GraphStructure``, or a list of ``B`` per-sample ones.
        nn: The network :math:`h_{\mathbf{\Theta}}` applied to the sum (``None``: identity).
        eps: :math:`\epsilon`, a float or a one-element tensor.
        batch: ``(B * N,)``; marks ``edge_index`` as offset over the flattened nodes of batched ``x``.

    Returns:
        ``nn`` of the aggregate, in the layout of ``x``.

    Shape:
        - x: :math:`(N, F)`, :math:`(B, N, F)` or :math:`((N_s, F), (N_t, F))`
        - edge_index: :math:`(2, E)`
        - output: :math:`(N, F_{out})` or :math:`(B, N, F_{out})`

    Example:
        >>> x = torch.randn(4, 8)
        >>> edge_index = torch.tensor([[0, 1, 2], [1, 2, 3]])
        >>> graphvision.functional.gin_conv(x, edge_index, torch.nn.Linear(8, 16), eps=0.1).shape
        torch.Size([4, 16])
    """
    x_src, x_dst, g, _ = _resolve_pair(x, edge_index, batch)
    if x_src.size(-1) != x_dst.size(-1):
        raise ValueError(
            f"Expected source and target features of the same size (got {x_src.size(-1)} and {x_dst.size(-1)})"
        )
    out = _aggregate(g, x_src, "sum") + _eps_term(eps, x_dst)
    out = restore(out, g)
    return nn(out) if nn is not None else out


def gine_conv(
    x: PairLike,
    edge_index: GraphLike,
    edge_attr: Tensor,
    nn: Callable[[Tensor], Tensor] | None = None,
    eps: float | Tensor = 0.0,
    weight_edge: Tensor | None = None,
    bias_edge: Tensor | None = None,
    *,
    batch: Tensor | None = None,
) -> Tensor:
    r"""GIN with edge features of Hu et al., `"Strategies for Pre-training Graph Neural Networks"
    <https://arxiv.org/abs/1905.12265>`_ (PyG's ``GINEConv``).

    .. math::
        \mathbf{x}'_i = h_{\mathbf{\Theta}}\Big((1 + \epsilon)\,\mathbf{x}_i +
        \sum_{j \in \mathcal{N}(i)} \operatorname{ReLU}(\mathbf{x}_j + \mathbf{\Theta}_e\mathbf{e}_{j,i})\Big)

    The messages depend on the edge; they are built and summed in cache-sized edge chunks
    (forward, and again in the backward), so no ``(E, F)`` message tensor is stored.

    Args:
        x: Node features: ``(N, F)``, ``(B, N, F)`` (shared or per-sample graph), or a bipartite
            pair ``(x_src, x_dst)`` with the same ``F``.
        edge_index: ``(2, E)`` integer tensor, ``GraphStructure``, or a list of ``B`` per-sample ones.
        edge_attr: ``(E, D)`` edge features (``D = F`` without ``weight_edge``). For a list of
            per-sample graphs, the concatenation over the samples in order.
        nn: The network :math:`h_{\mathbf{\Theta}}` applied to the sum (``None``: identity).
        eps: :math:`\epsilon`, a float or a one-element tensor.
        weight_edge: Optional ``(F, D)`` :math:`\mathbf{\Theta}_e` (PyG ``lin.weight``, ``edge_dim`` set).
        bias_edge: Optional ``(F,)`` bias of :math:`\mathbf{\Theta}_e` (PyG ``lin.bias``).
        batch: ``(B * N,)``; marks ``edge_index`` as offset over the flattened nodes of batched ``x``.

    Returns:
        ``nn`` of the aggregate, in the layout of ``x``.

    Shape:
        - x: :math:`(N, F)`, :math:`(B, N, F)` or :math:`((N_s, F), (N_t, F))`
        - edge_index: :math:`(2, E)`
        - edge_attr: :math:`(E, D)`
        - output: :math:`(N, F_{out})` or :math:`(B, N, F_{out})`

    Example:
        >>> x = torch.randn(4, 8)
        >>> edge_index = torch.tensor([[0, 1, 2], [1, 2, 3]])
        >>> graphvision.functional.gine_conv(x, edge_index, torch.randn(3, 8)).shape
        torch.Size([4, 8])
    """
    x_src, x_dst, g, _ = _resolve_pair(x, edge_index, batch)
    f = x_src.size(-1)
    if x_dst.size(-1) != f:
        raise ValueError(f"Expected source and target features of the same size (got {f} and {x_dst.size(-1)})")
    graph = g.graph
    assert isinstance(graph, GraphStructure)
    if weight_edge is not None:
        ea = _check_edge_attr(edge_attr, graph.num_edges, x_src, check_tensor(weight_edge, "weight_edge").size(-1))
        _check_param(weight_edge, (f, ea.size(1)), "weight_edge", x_src)
        if bias_edge is not None:
            _check_param(bias_edge, (f,), "bias_edge", x_src)
    else:
        ea = _check_edge_attr(edge_attr, graph.num_edges, x_src, None)
        if ea.size(1) != f:
            raise ValueError(
                f"Expected 'edge_attr' with F={f} features to match 'x' (got {tuple(ea.shape)}); "
                "set 'edge_dim' (a 'weight_edge') to project the edge features"
            )
    ei = graph.edge_index
    bsz = None
    xs = x_src
    if g.shared:
        bsz, n, _ = x_src.shape
        xs = x_src.permute(1, 0, 2).reshape(n, bsz * f)
    if is_compiling():  # the compiler fuses the chain itself
        e = F.linear(ea, weight_edge, bias_edge) if weight_edge is not None else ea
        msg = (xs.index_select(0, ei[0]).view(-1, bsz or 1, f) + e.unsqueeze(1)).relu().flatten(1)
        agg = scatter(msg, ei[1], g.num_nodes, "sum")
    else:
        agg = _GINEMessages.apply(xs, ea, weight_edge, bias_edge, ei[0], ei[1], g.num_nodes, bsz or 1)
    if bsz is not None:
        agg = agg.view(g.num_nodes, bsz, f).permute(1, 0, 2)
    out = restore(agg + _eps_term(eps, x_dst), g)
    return nn(out) if nn is not None else out
