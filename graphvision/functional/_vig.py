r"""Vision-GNN building blocks as functions: max-relative and edge convolutions, dynamic kNN graphs.

The graph convolutions of `Vision GNN (ViG) <https://arxiv.org/abs/2206.00272>`_ and
`DGCNN <https://arxiv.org/abs/1801.07829>`_ take node features in one of three layouts:

- ``(N, F)`` with one graph (``edge_index`` ``(2, E)`` or a :class:`~graphvision.GraphStructure`);
- ``(B, N, F)`` with **one graph shared** by the ``B`` samples (a raw ``edge_index`` over ``N``
  nodes, or a structure with ``num_nodes == N``);
- ``(B, N, F)`` with **per-sample graphs**: a structure over the ``B * N`` flattened nodes
  (node ``i`` of sample ``b`` is ``b * N + i``), which is what :func:`knn_graph` returns for
  batched ``(B, N, F)`` features (``knn_graph(x, k).graph``, or the returned tensor itself).

Graphs from :func:`knn_graph` / :func:`patch_graph` have a fixed degree ``k``: their neighbour
table ``(N, k)`` is kept on the structure, and the convolutions gather ``x[nbr]`` and reduce over
the ``k`` axis (no scatter, no sort). Other graphs go through a scatter over the target-sorted
edges. Both give PyG's results (``max`` / ``min`` of no neighbour is 0).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F  # noqa: N812
from einops import rearrange
from torch import Tensor, nn

from graphvision import _checks
from graphvision._checks import check_choice, check_positive_int, check_shape, check_tensor
from graphvision.functional._graph_input import check_x
from graphvision.functional._graph_knn import DilatedKNN, _dilated_knn_structure, _fixed_degree_structure
from graphvision.ops._api import as_structure, scatter_unchecked
from graphvision.structure import GraphStructure
from graphvision.typing import Adjacency

__all__ = [
    "to_nodes",
    "to_image",
    "relative_position_term",
    "mr_conv",
    "edge_conv",
    "dynamic_edge_conv",
]

#: Aggregations of :func:`edge_conv` (``"add"`` is PyG's name for ``"sum"``).
AGGREGATIONS = ("max", "mean", "sum", "add", "min")


# --------------------------------------------------------------------------------------------
# layout helpers
# --------------------------------------------------------------------------------------------


def to_nodes(image: Tensor) -> Tensor:
    r"""Feature map to node features: ``(B, C, H, W) -> (B, H W, C)``, node ``y W + x`` is pixel ``(y, x)``.

    ``einops.rearrange(image, "b c h w -> b (h w) c")``: a view for ``channels_last`` input,
    else a copy. :func:`to_image` is its inverse.

    Args:
        image: A batch of feature maps.

    Returns:
        The node features of every image, row-major over pixels (as :func:`image_to_graph`).

    Shape:
        - image: :math:`(B, C, H, W)`
        - output: :math:`(B, H W, C)`

    Example:
        >>> from graphvision.functional import to_image, to_nodes
        >>> image = torch.randn(2, 8, 3, 4)
        >>> to_nodes(image).shape
        torch.Size([2, 12, 8])
        >>> torch.equal(to_image(to_nodes(image), 3, 4), image)
        True
    """
    check_shape(image, ["B", "C", "H", "W"], "image")
    return rearrange(image, "b c h w -> b (h w) c")


def to_image(x: Tensor, height: int, width: int) -> Tensor:
    r"""Node features back to a feature map: ``(B, H W, C) -> (B, C, H, W)``, the inverse of :func:`to_nodes`.

    Args:
        x: Node features, ``N = height * width`` nodes per image, row-major.
        height: ``H``.
        width: ``W``.

    Returns:
        The feature maps (a view of ``x`` in ``channels_last`` memory order when ``x`` is contiguous).

    Shape:
        - x: :math:`(B, H W, C)`
        - output: :math:`(B, C, H, W)`

    Example:
        >>> from graphvision.functional import to_image
        >>> to_image(torch.randn(2, 12, 8), 3, 4).shape
        torch.Size([2, 8, 3, 4])
    """
    check_shape(x, ["B", "N", "C"], "x")
    h = check_positive_int(height, "height", minimum=0)
    w = check_positive_int(width, "width", minimum=0)
    if x.size(1) != h * w:
        raise ValueError(f"Expected 'x' of shape (B, H*W, C) with H*W = {h}*{w} = {h * w} nodes (got {tuple(x.shape)})")
    return rearrange(x, "b (h w) c -> b c h w", h=h, w=w)


def relative_position_term(
    channels: int,
    height: int,
    width: int,
    *,
    device: torch.device | str | None = None,
    dtype: torch.dtype | None = None,
) -> Tensor:
    r"""ViG's relative position term between the nodes of an ``H x W`` grid, to add to kNN distances.

    .. math::
        R_{ij} = -\frac{2}{C} \, p_i \cdot p_j

    with :math:`p_i` the 2-D sine-cosine position embedding of :math:`C` channels of node
    :math:`i` (as MAE / ViG). Nearby nodes get a more negative term, so adding it to the squared
    distances (``knn_graph(..., relative_pos=R)``) favours spatial neighbours, as in Pyramid ViG.

    Args:
        channels: Embedding size ``C`` (a multiple of 4).
        height: Grid height ``H``.
        width: Grid width ``W``.
        device: Device of the result.
        dtype: Floating dtype of the result (default float32).

    Returns:
        The term for every pair of nodes (symmetric, row-major node order).

    Shape:
        - output: :math:`(H W, H W)`

    Example:
        >>> from graphvision.functional import relative_position_term
        >>> rel = relative_position_term(16, 4, 4)
        >>> rel.shape, bool((rel.diagonal() <= rel).all())
        (torch.Size([16, 16]), True)
    """
    c = check_positive_int(channels, "channels")
    if c % 4:
        raise ValueError(f"Expected 'channels' to be a multiple of 4 for the 2-D sine-cosine embedding (got {c})")
    h = check_positive_int(height, "height", minimum=0)
    w = check_positive_int(width, "width", minimum=0)
    quarter = c // 4
    omega = 1.0 / 10000 ** (torch.arange(quarter, dtype=torch.float64, device=device) / quarter)
    ys, xs = torch.meshgrid(
        torch.arange(h, dtype=torch.float64, device=device), torch.arange(w, dtype=torch.float64, device=device),
        indexing="ij",
    )

    def embed(pos: Tensor) -> Tensor:
        out = pos.reshape(-1, 1) * omega
        return torch.cat([out.sin(), out.cos()], dim=1)

    p = torch.cat([embed(xs), embed(ys)], dim=1)  # (HW, C); ViG puts the x half first
    return (-2.0 / c * (p @ p.t())).to(dtype or torch.float32)


# --------------------------------------------------------------------------------------------
# graph input
# --------------------------------------------------------------------------------------------


def _structure_of(edge_index: object) -> GraphStructure | None:
    """The structure a converter attached to its ``edge_index`` result (same memory), if any."""
    if isinstance(edge_index, GraphStructure):
        return edge_index
    g = getattr(edge_index, "graph", None)
    if isinstance(g, GraphStructure) and isinstance(edge_index, Tensor):
        ei = g.edge_index
        same = ei.shape == edge_index.shape and ei.stride() == edge_index.stride()
        if same and ei.data_ptr() == edge_index.data_ptr():
            return g
    return None


def _dense_table(g: GraphStructure) -> Tensor | None:
    """``(N, k)`` neighbour table of a fixed-degree, target-sorted graph, else ``None``.

    Converters (:func:`knn_graph`, :func:`patch_graph`) store it on their structures. A raw
    ``edge_index`` validated on the CPU is recognised too when it is target-sorted (known from its
    validation read) with the same in-degree ``E / N`` everywhere (one comparison of host memory,
    then cached): PyG's ``knn_graph`` output, or a ``knn_graph`` result that went through a copy.
    Never on CUDA (that would be a host synchronisation) or while compiling.
    """
    if g.is_cached("dense_neighbours"):
        return g.derived("dense_neighbours", lambda: None)
    n, e = g.num_nodes, g.num_edges
    if (
        n == 0 or e == 0 or e % n or g._identity_perm is not True or g.device.type != "cpu"
        or _checks.is_compiling() or g.num_src_nodes != n
    ):
        return None

    def build() -> Tensor | None:
        k = e // n
        rowptr, col, _ = g.csr()  # target-sorted: no sort, identity perm
        if not torch.equal(rowptr, torch.arange(0, e + 1, k, device=rowptr.device)):
            return None
        return col.view(n, k)

    return g.derived("dense_neighbours", build)


def _batched_copies(g: GraphStructure, bsz: int) -> GraphStructure:
    """``bsz`` copies of a shared graph over ``N`` nodes as one structure over ``bsz * N`` (cached on ``g``)."""

    def build() -> GraphStructure:
        n = g.num_nodes
        ei = g.edge_index.long()
        shift = torch.arange(bsz, device=ei.device).mul_(n)
        table = _dense_table(g)
        if table is not None:
            return _fixed_degree_structure((table.unsqueeze(0) + shift.view(bsz, 1, 1)).reshape(bsz * n, -1))
        big = (ei.unsqueeze(1) + shift.view(1, bsz, 1)).reshape(2, -1)
        sorted_ = g.identity_perm if (g.is_cached("csr") or ei.device.type == "cpu") else None
        return GraphStructure._trusted(big, bsz * n, bsz * n, sorted_by_target=sorted_)

    return g.derived(("batched_copies", bsz), build)


def _resolve(x: Tensor, edge_index: Adjacency) -> tuple[Tensor, GraphStructure]:
    """``x`` as ``(M, F)`` and the structure over its ``M`` rows (validated once when raw)."""
    x = check_x(x)
    g = _structure_of(edge_index)
    n = x.size(-2)
    if g is None:
        check_tensor(edge_index, "edge_index")
        _checks.check_same_device("x", x, "edge_index", edge_index)  # type: ignore[arg-type]
        try:
            g = as_structure(edge_index, n, n)
        except IndexError as exc:
            if x.dim() != 3:
                raise
            raise IndexError(
                f"{exc}. A raw edge_index with batched 'x' is one graph shared by the samples, over N={n} "
                "nodes; for per-sample graphs pass the structure over the B*N nodes (knn_graph(x, k) for "
                "(B, N, F) 'x' returns one) or flatten 'x' to (B*N, F)"
            ) from None
    else:
        _checks.check_same_device("x", x, "edge_index", g.edge_index)
        if g.num_src_nodes != g.num_nodes:
            raise ValueError(
                f"Expected a graph with one node set (got num_nodes={g.num_nodes}, num_src_nodes={g.num_src_nodes})"
            )
    if x.dim() == 2:
        if g.num_nodes != n:
            raise ValueError(f"Expected a graph over N={n} nodes to match 'x' (got num_nodes={g.num_nodes})")
        return x, g
    bsz = x.size(0)
    flat = x.reshape(bsz * n, x.size(2))
    if g.num_nodes == bsz * n and bsz != 1:
        return flat, g  # per-sample graphs, flattened node ids
    if g.num_nodes == n:
        return flat, (g if bsz == 1 else _batched_copies(g, bsz))
    raise ValueError(
        f"Expected a graph over N={n} nodes (shared by the samples) or B*N={bsz * n} nodes (per-sample) for "
        f"'x' of shape {tuple(x.shape)} (got num_nodes={g.num_nodes})"
    )


def _restore(out: Tensor, x: Tensor) -> Tensor:
    return out.view(x.shape[:-1] + out.shape[-1:]) if x.dim() == 3 else out


_DENSE_REDUCE = {"max": torch.amax, "min": torch.amin, "sum": torch.sum, "mean": torch.mean}


def _reduce(msg: Tensor, g: GraphStructure, table: Tensor | None, aggr: str) -> Tensor:
    """Aggregate messages ``(M, k, H)`` (dense) or ``(E, H)`` (edge order) at their targets."""
    if table is not None:
        return _DENSE_REDUCE[aggr](msg, dim=1)
    return scatter_unchecked(msg, g.edge_index[1], g.num_nodes, aggr)


# --------------------------------------------------------------------------------------------
# convolutions
# --------------------------------------------------------------------------------------------


def _max_relative(xf: Tensor, g: GraphStructure) -> Tensor:
    """``max_{j -> i} (x_j - x_i)`` for every node (0 without neighbours)."""
    table = _dense_table(g)
    if table is not None:
        if table.size(1) == 0:
            return torch.zeros_like(xf)
        # max_j (x_j - x_i) = max_j x_j - x_i exactly: rounding is monotone.
        return xf[table].amax(dim=1) - xf
    ei = g.edge_index
    return scatter_unchecked(xf[ei[0]] - xf[ei[1]], ei[1], g.num_nodes, "max")


def mr_conv(x: Tensor, edge_index: Adjacency, nn: Callable[[Tensor], Tensor] | None = None) -> Tensor:
    r"""Max-relative graph convolution of `Vision GNN <https://arxiv.org/abs/2206.00272>`_ (MRConv).

    .. math::
        \mathbf{x}'_i = h_{\mathbf{\Theta}}\Big(\mathbf{x}_i \,\Big\Vert\,
        \max_{j \in \mathcal{N}(i)} (\mathbf{x}_j - \mathbf{x}_i)\Big)

    The maximum is taken per feature; a node without neighbours gets 0. With a fixed-degree
    graph from :func:`knn_graph` the neighbours are gathered from the table kept on its structure
    (``max_j x_j - x_i``: one gather, no per-edge message); other graphs use a scatter-max.

    Args:
        x: Node features (see the module docstring for the layouts).
        edge_index: Edges (source, target), a :class:`~graphvision.GraphStructure`, or the result
            of :func:`knn_graph` (which carries its structure).
        nn: Network :math:`h_{\mathbf{\Theta}}` applied to the ``2 F`` concatenated features of every
            node, or ``None`` to return the concatenation.

    Returns:
        ``nn([x, max_relative])`` in the layout of ``x``.

    Shape:
        - x: :math:`(N, F)` or :math:`(B, N, F)`
        - edge_index: :math:`(2, E)` or a structure over :math:`N` or :math:`B N` nodes
        - output: :math:`(N, F_{out})` or :math:`(B, N, F_{out})` (:math:`F_{out} = 2F` without ``nn``)

    Example:
        >>> from graphvision.functional import knn_graph, mr_conv
        >>> x = torch.randn(2, 16, 8)
        >>> mr_conv(x, knn_graph(x, k=4, loop=True)).shape
        torch.Size([2, 16, 16])
        >>> mr_conv(torch.randn(3, 4), torch.tensor([[0, 1], [1, 2]]), torch.nn.Linear(8, 5)).shape
        torch.Size([3, 5])
    """
    xf, g = _resolve(x, edge_index)
    out = torch.cat([xf, _max_relative(xf, g)], dim=-1)
    if nn is not None:
        out = nn(out)
    return _restore(out, x)


def _plain_linear(m: object) -> bool:
    """A ``torch.nn.Linear`` itself (no subclass, parametrization or hook that its forward would run)."""
    return type(m) is nn.Linear and not (m._forward_hooks or m._forward_pre_hooks)  # type: ignore[union-attr]


def _split_first_linear(net: Callable[[Tensor], Tensor]) -> tuple[nn.Linear | None, Callable[[Tensor], Tensor] | None]:
    """``(linear, rest)`` when ``net`` is a plain ``Linear`` or a ``Sequential`` starting with one."""
    if _plain_linear(net):
        return net, None  # type: ignore[return-value]
    if type(net) is nn.Sequential and not (net._forward_hooks or net._forward_pre_hooks):
        if len(net) > 0 and _plain_linear(net[0]):
            return net[0], (net[1:] if len(net) > 1 else None)
    return None, None


def edge_conv(x: Tensor, edge_index: Adjacency, nn: Callable[[Tensor], Tensor], aggr: str = "max") -> Tensor:
    r"""Edge convolution of `DGCNN <https://arxiv.org/abs/1801.07829>`_, as PyG's ``EdgeConv``.

    .. math::
        \mathbf{x}'_i = \bigoplus_{j \in \mathcal{N}(i)} h_{\mathbf{\Theta}}(\mathbf{x}_i \,\Vert\,
        \mathbf{x}_j - \mathbf{x}_i)

    with :math:`\bigoplus` = ``aggr`` (nodes without neighbours get 0, as PyG). When ``nn`` is a
    ``Linear`` or a ``Sequential`` that starts with one, that layer is applied per node instead
    of per edge (:math:`W [x_i \Vert x_j - x_i] + b = (W_1 - W_2) x_i + b + W_2 x_j`), so the
    ``E x 2F`` input is never built; the rest of ``nn`` runs on the ``E`` messages. Fixed-degree
    graphs (from :func:`knn_graph`) are reduced over their dense ``(N, k)`` layout.

    Args:
        x: Node features (see the module docstring for the layouts).
        edge_index: Edges (source, target), a :class:`~graphvision.GraphStructure`, or the result
            of :func:`knn_graph`.
        nn: Network mapping ``(E, 2 F)`` to ``(E, F_out)``.
        aggr: ``"max"``, ``"mean"``, ``"sum"`` (or ``"add"``) or ``"min"``.

    Returns:
        Aggregated messages in the layout of ``x``.

    Shape:
        - x: :math:`(N, F)` or :math:`(B, N, F)`
        - edge_index: :math:`(2, E)` or a structure over :math:`N` or :math:`B N` nodes
        - output: :math:`(N, F_{out})` or :math:`(B, N, F_{out})`

    Example:
        >>> from graphvision.functional import edge_conv
        >>> net = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.ReLU())
        >>> edge_conv(torch.randn(5, 4), torch.tensor([[0, 1, 2], [1, 2, 3]]), net).shape
        torch.Size([5, 16])
    """
    check_choice(aggr, AGGREGATIONS, "aggr")
    aggr = "sum" if aggr == "add" else aggr
    xf, g = _resolve(x, edge_index)
    table = _dense_table(g)
    if table is not None and table.size(1) == 0:
        table = None  # no neighbours: the scatter path gives zeros of the right width
    lin, rest = _split_first_linear(nn)
    f = xf.size(-1)
    if lin is not None and lin.in_features == 2 * f:
        w_i, w_j = lin.weight[:, :f], lin.weight[:, f:]
        p = F.linear(xf, w_i - w_j, lin.bias)
        q = F.linear(xf, w_j)
        if table is not None:
            h = p.unsqueeze(1) + q[table]  # (M, k, H)
        else:
            ei = g.edge_index
            h = p[ei[1]] + q[ei[0]]
        if rest is not None:
            out = rest(h.reshape(-1, h.size(-1)))
            h = out.view(*h.shape[:-1], out.size(-1))
    else:
        if table is not None:
            xi = xf.unsqueeze(1).expand(-1, table.size(1), -1)
            xj = xf[table]
        else:
            ei = g.edge_index
            xi, xj = xf[ei[1]], xf[ei[0]]
        msg = torch.cat([xi, xj - xi], dim=-1)
        h = nn(msg.reshape(-1, 2 * f))
        h = h.view(*msg.shape[:-1], h.size(-1))
    return _restore(_reduce(h, g, table, aggr), x)


def dynamic_edge_conv(
    x: Tensor, nn: Callable[[Tensor], Tensor], k: int, batch: Tensor | None = None, aggr: str = "max"
) -> Tensor:
    r"""Dynamic edge convolution of `DGCNN <https://arxiv.org/abs/1801.07829>`_, as PyG's ``DynamicEdgeConv``.

    :func:`edge_conv` over the ``k``-nearest-neighbour graph of ``x`` in feature space,
    recomputed on every call. As PyG (``knn(x, x, k)``), a node's ``k`` nearest include itself.
    The graph is built under ``no_grad`` (an index); gradients flow through the messages.

    Args:
        x: Node features; ``(B, N, F)`` finds neighbours within each sample.
        nn: Network mapping ``(E, 2 F)`` to ``(E, F_out)``.
        k: Number of neighbours (the node itself included).
        batch: Graph id of every node (sorted) for ``(N, F)`` input, or ``None``.
        aggr: ``"max"``, ``"mean"``, ``"sum"`` (or ``"add"``) or ``"min"``.

    Returns:
        Aggregated messages in the layout of ``x``.

    Shape:
        - x: :math:`(N, F)` or :math:`(B, N, F)`
        - batch: :math:`(N,)`
        - output: :math:`(N, F_{out})` or :math:`(B, N, F_{out})`

    Example:
        >>> from graphvision.functional import dynamic_edge_conv
        >>> net = torch.nn.Linear(6, 8)
        >>> dynamic_edge_conv(torch.randn(10, 3), net, k=4).shape
        torch.Size([10, 8])
    """
    from graphvision.functional._graph_knn import knn_graph

    x = check_x(x)
    k = check_positive_int(k, "k")
    if x.dim() == 3:
        if batch is not None:
            raise ValueError(f"'batch' is for (N, F) input; 'x' of shape {tuple(x.shape)} is batched")
        g = _dilated_knn_structure(x, k, True, "euclidean", None, DilatedKNN(), False)
    else:
        ei = knn_graph(x, k, batch, loop=True)
        g = _structure_of(ei) or GraphStructure._trusted(ei, x.size(0), x.size(0), sorted_by_target=True)
    return edge_conv(x, g, nn, aggr)


def _interleave(a: Tensor, b: Tensor) -> Tensor:
    """``(..., C)`` and ``(..., C)`` -> ``(..., 2C)`` as ``a_0, b_0, a_1, b_1, ...`` (ViG's MRConv layout)."""
    return torch.stack([a, b], dim=-1).flatten(-2)

