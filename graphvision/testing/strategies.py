"""Hypothesis strategies for images and graphs.

Following the convention "hypothesis draws sizes and seeds, torch draws values", every strategy
draws small integers (sizes, a seed) with hypothesis and fills tensors from a seeded
:class:`torch.Generator`. Shrinking therefore still goes towards small, simple cases, and a
drawn example is reproducible from the printed integers.

The graph strategies expose the edge cases kernels must handle as tri-state switches:
``None`` lets them appear at random, ``True`` guarantees at least one (when the size allows it),
``False`` forbids them:

- ``loop``: edges ``i -> i``;
- ``duplicates``: the same ``(source, target)`` pair more than once;
- ``isolated_nodes``: nodes that appear in no edge.

This module imports :mod:`hypothesis`, a test dependency, so :mod:`graphvision.testing` does not
import it; use ``from graphvision.testing import strategies``.

Example:
    >>> from hypothesis import given
    >>> from graphvision.testing.strategies import graphs
    >>> @given(graphs(max_nodes=8))
    ... def test_in_range(graph):
    ...     num_nodes, edge_index = graph
    ...     assert edge_index.numel() == 0 or int(edge_index.max()) < num_nodes
    >>> test_in_range()
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from hypothesis import strategies as st
from torch import Tensor

__all__ = [
    "SizeLike",
    "BatchedGraph",
    "images",
    "edge_indices",
    "graphs",
    "batched_graphs",
    "node_features",
]

#: A size argument: a fixed int, an inclusive ``(min, max)`` range, or a strategy of ints.
SizeLike = int | tuple[int, int] | st.SearchStrategy


def _size(draw: st.DrawFn, value: SizeLike, name: str) -> int:
    if isinstance(value, st.SearchStrategy):
        out = draw(value)
    elif isinstance(value, tuple):
        lo, hi = value
        out = draw(st.integers(lo, hi))
    elif isinstance(value, int) and not isinstance(value, bool):
        out = value
    else:
        raise TypeError(f"Expected '{name}' to be an int, a (min, max) tuple or a strategy (got {value!r})")
    if out < 0:
        raise ValueError(f"Expected '{name}' >= 0 (got {out})")
    return int(out)


def _generator(draw: st.DrawFn) -> torch.Generator:
    return torch.Generator().manual_seed(draw(st.integers(0, 2**32 - 1)))


class BatchedGraph(NamedTuple):
    """Several graphs stored as one, PyG style (node ids offset, ``batch`` sorted).

    Attributes:
        num_nodes: Total number of nodes ``N``.
        edge_index: ``(2, E)`` edges between the offset node ids, never across graphs.
        batch: ``(N,)`` int64 graph id of every node, sorted.
        num_graphs: Number of graphs ``B`` (graphs may have no node).
        ptr: ``(B + 1,)`` int64 offsets: graph ``b`` owns nodes ``ptr[b]:ptr[b + 1]``.
    """

    num_nodes: int
    edge_index: Tensor
    batch: Tensor
    num_graphs: int
    ptr: Tensor


@st.composite
def images(
    draw: st.DrawFn,
    *,
    batch_size: SizeLike = (1, 3),
    channels: SizeLike = (1, 3),
    height: SizeLike = (1, 8),
    width: SizeLike = (1, 8),
    dtype: torch.dtype = torch.float32,
    distribution: str = "normal",
    contiguous: bool | None = True,
    device: torch.device | str = "cpu",
) -> Tensor:
    """Draw a ``(B, C, H, W)`` image batch.

    Args:
        batch_size: ``B`` as an int, an inclusive ``(min, max)`` range or a strategy.
        channels: ``C`` (same forms).
        height: ``H`` (same forms; ``0`` gives an empty image).
        width: ``W`` (same forms).
        dtype: Floating dtype of the values.
        distribution: ``"normal"`` (standard normal), ``"uniform"`` (in ``[0, 1)``) or
            ``"levels"`` (a few repeated values, so ties and equal neighbours occur).
        contiguous: ``True`` for a contiguous tensor, ``False`` for a strided view (every other
            column of a wider tensor), ``None`` to draw either.
        device: Device of the result.

    Returns:
        A tensor of shape ``(B, C, H, W)``.

    Shape:
        - output: :math:`(B, C, H, W)`

    Example:
        >>> from hypothesis import given
        >>> @given(images(height=4, width=(2, 5)))
        ... def test_shape(image):
        ...     assert image.dim() == 4 and image.shape[2] == 4
        >>> test_shape()
    """
    b = _size(draw, batch_size, "batch_size")
    c = _size(draw, channels, "channels")
    h = _size(draw, height, "height")
    w = _size(draw, width, "width")
    if distribution not in ("normal", "uniform", "levels"):
        raise ValueError(f"Unknown distribution {distribution!r}; expected one of ('normal', 'uniform', 'levels')")
    if contiguous is None:
        contiguous = draw(st.booleans())
    gen = _generator(draw)
    shape = (b, c, h, w if contiguous else 2 * w)
    if distribution == "normal":
        values = torch.randn(shape, generator=gen, dtype=torch.float64)
    elif distribution == "uniform":
        values = torch.rand(shape, generator=gen, dtype=torch.float64)
    else:
        values = torch.randint(0, 3, shape, generator=gen).double()
    values = values.to(device=device, dtype=dtype)
    return values if contiguous else values[..., ::2]


def _fix_self_loops(src: Tensor, dst: Tensor, n: int, gen: torch.Generator) -> tuple[Tensor, Tensor]:
    """Move every self-loop's target to another node (all edges dropped when ``n == 1``)."""
    if n <= 1:
        empty = src.new_empty(0)
        return empty, empty
    off = torch.randint(1, n, src.shape, generator=gen)
    dst = torch.where(src == dst, (src + off) % n, dst)
    return src, dst


def _dedupe(src: Tensor, dst: Tensor, gen: torch.Generator) -> tuple[Tensor, Tensor]:
    """Drop repeated ``(src, dst)`` pairs, keeping a random order."""
    if src.numel() == 0:
        return src, dst
    pairs = torch.unique(torch.stack([src, dst]), dim=1)
    pairs = pairs[:, torch.randperm(pairs.size(1), generator=gen)]
    return pairs[0], pairs[1]


@st.composite
def edge_indices(
    draw: st.DrawFn,
    num_nodes: int,
    *,
    min_edges: int = 0,
    max_edges: int = 64,
    loop: bool | None = None,
    duplicates: bool | None = None,
    symmetric: bool = False,
    dtype: torch.dtype = torch.int64,
    contiguous: bool | None = True,
    device: torch.device | str = "cpu",
) -> Tensor:
    """Draw a ``(2, E)`` edge index over ``num_nodes`` nodes, in random edge order.

    Args:
        num_nodes: Number of nodes ``N`` (``0`` gives no edges).
        min_edges: Least number of edges drawn before the switches below apply (removing
            self-loops from a one-node graph or duplicates may leave fewer).
        max_edges: Largest number of edges drawn before the switches apply (guaranteeing a
            self-loop or a duplicate, or symmetrising, may add more).
        loop: ``None`` random, ``True`` at least one, ``False`` none.
        duplicates: ``None`` random, ``True`` at least one repeated pair, ``False`` none.
        symmetric: Add the reverse of every edge.
        dtype: ``torch.int64`` or ``torch.int32``.
        contiguous: ``True`` contiguous, ``False`` a transposed ``(E, 2)`` view, ``None`` either.
        device: Device of the result.

    Returns:
        The edge index; ``edge_index[0]`` holds sources and ``edge_index[1]`` targets.

    Shape:
        - output: :math:`(2, E)`

    Example:
        >>> from hypothesis import given
        >>> @given(edge_indices(5, loop=False, duplicates=False))
        ... def test_simple(edge_index):
        ...     assert bool((edge_index[0] != edge_index[1]).all())
        >>> test_simple()
    """
    n = int(num_nodes)
    if n < 0:
        raise ValueError(f"Expected 'num_nodes' >= 0 (got {n})")
    if contiguous is None:
        contiguous = draw(st.booleans())
    gen = _generator(draw)
    e = draw(st.integers(min_edges, max(min_edges, max_edges))) if n > 0 else 0
    src = torch.randint(max(n, 1), (e,), generator=gen)
    dst = torch.randint(max(n, 1), (e,), generator=gen)
    if n > 0 and loop is False:
        src, dst = _fix_self_loops(src, dst, n, gen)
    if n > 0 and loop is True and not bool((src == dst).any()):
        v = torch.randint(n, (1,), generator=gen)
        src, dst = torch.cat([src, v]), torch.cat([dst, v])
    if symmetric:
        src, dst = torch.cat([src, dst]), torch.cat([dst, src])
    if duplicates is False:
        src, dst = _dedupe(src, dst, gen)
    elif duplicates is True and (n > 1 or (n == 1 and loop is not False)):
        pairs = torch.stack([src, dst])
        has_dup = src.numel() > torch.unique(pairs, dim=1).size(1) if src.numel() else False
        if not has_dup:
            if src.numel() == 0:
                a = torch.randint(n, (1,), generator=gen)
                b = a if n == 1 else (a + 1) % n
                src, dst = a, b
                if symmetric and not bool((a == b).all()):
                    src, dst = torch.cat([a, b]), torch.cat([b, a])
            i = int(torch.randint(src.numel(), (1,), generator=gen))
            extra_src, extra_dst = src[i : i + 1], dst[i : i + 1]
            if symmetric:
                extra_src, extra_dst = torch.cat([extra_src, extra_dst]), torch.cat([extra_dst, extra_src])
            src, dst = torch.cat([src, extra_src]), torch.cat([dst, extra_dst])
    perm = torch.randperm(src.numel(), generator=gen)
    edge_index = torch.stack([src[perm], dst[perm]]).to(dtype)
    if not contiguous:
        edge_index = edge_index.t().contiguous().t()
    return edge_index.to(device)


@st.composite
def graphs(
    draw: st.DrawFn,
    *,
    min_nodes: int = 0,
    max_nodes: int = 16,
    max_edges: int | None = None,
    isolated_nodes: bool | None = None,
    loop: bool | None = None,
    duplicates: bool | None = None,
    symmetric: bool = False,
    dtype: torch.dtype = torch.int64,
    contiguous: bool | None = True,
    device: torch.device | str = "cpu",
) -> tuple[int, Tensor]:
    """Draw a graph as ``(num_nodes, edge_index)``.

    Args:
        min_nodes: Least number of nodes (``0`` allows the empty graph).
        max_nodes: Largest number of nodes.
        max_edges: Largest number of random edges (default ``4 * max_nodes``).
        isolated_nodes: ``None`` random, ``True`` at least one node without any edge,
            ``False`` every node in at least one edge.
        loop: See :func:`edge_indices`.
        duplicates: See :func:`edge_indices`.
        symmetric: See :func:`edge_indices`.
        dtype: Index dtype.
        contiguous: See :func:`edge_indices`.
        device: Device of the edge index.

    Returns:
        ``(num_nodes, edge_index)``.

    Shape:
        - edge_index: :math:`(2, E)`

    Example:
        >>> from hypothesis import given
        >>> @given(graphs(min_nodes=2, isolated_nodes=True))
        ... def test_isolated(graph):
        ...     num_nodes, edge_index = graph
        ...     assert torch.unique(edge_index).numel() < num_nodes
        >>> test_isolated()
    """
    lo = min_nodes
    if isolated_nodes is True:
        lo = max(lo, 1)
    if isolated_nodes is False and loop is False:
        lo = max(lo, 2)
    lo = min(lo, max(max_nodes, lo))
    n = draw(st.integers(lo, max(lo, max_nodes)))
    max_e = 4 * max(max_nodes, 1) if max_edges is None else max_edges
    edge_index = draw(
        edge_indices(
            n, max_edges=max_e, loop=loop, duplicates=duplicates, symmetric=symmetric, dtype=torch.int64
        )
    )
    gen = _generator(draw)
    if isolated_nodes is True and n > 0:
        v = int(torch.randint(n, (1,), generator=gen))
        keep = (edge_index[0] != v) & (edge_index[1] != v)
        edge_index = edge_index[:, keep]
    elif isolated_nodes is False and n > 0:
        seen = torch.zeros(n, dtype=torch.bool)
        seen[edge_index.flatten()] = True
        lonely = (~seen).nonzero().flatten()
        if lonely.numel():
            if n == 1:
                extra = torch.stack([lonely, lonely])
            else:
                partner = (lonely + 1) % n
                extra = torch.stack([lonely, partner])
                if symmetric:
                    extra = torch.cat([extra, extra.flip(0)], dim=1)
            edge_index = torch.cat([edge_index, extra], dim=1)
            if duplicates is False:
                edge_index = torch.unique(edge_index, dim=1)
            edge_index = edge_index[:, torch.randperm(edge_index.size(1), generator=gen)]
    if contiguous is None:
        contiguous = draw(st.booleans())
    edge_index = edge_index.to(dtype)
    if not contiguous:
        edge_index = edge_index.t().contiguous().t()
    return n, edge_index.to(device)


@st.composite
def batched_graphs(
    draw: st.DrawFn,
    *,
    min_graphs: int = 1,
    max_graphs: int = 4,
    min_nodes: int = 0,
    max_nodes: int = 8,
    dtype: torch.dtype = torch.int64,
    device: torch.device | str = "cpu",
    **graph_kwargs: object,
) -> BatchedGraph:
    """Draw several graphs and batch them into one (node ids offset, ``batch`` sorted).

    Args:
        min_graphs: Least number of graphs ``B``.
        max_graphs: Largest number of graphs.
        min_nodes: Least number of nodes per graph (``0`` allows empty graphs in the batch).
        max_nodes: Largest number of nodes per graph.
        dtype: Index dtype of ``edge_index``.
        device: Device of the tensors.
        **graph_kwargs: Passed to :func:`graphs` (``isolated_nodes``, ``loop``, ...).

    Returns:
        A :class:`BatchedGraph` ``(num_nodes, edge_index, batch, num_graphs, ptr)``.

    Shape:
        - edge_index: :math:`(2, E)`
        - batch: :math:`(N,)`
        - ptr: :math:`(B + 1,)`

    Example:
        >>> from hypothesis import given
        >>> @given(batched_graphs(max_graphs=3))
        ... def test_sorted(g):
        ...     assert g.batch.numel() == g.num_nodes and bool((g.batch.diff() >= 0).all())
        >>> test_sorted()
    """
    num_graphs = draw(st.integers(min_graphs, max(min_graphs, max_graphs)))
    parts = [
        draw(graphs(min_nodes=min_nodes, max_nodes=max_nodes, contiguous=True, **graph_kwargs))  # type: ignore
        for _ in range(num_graphs)
    ]
    sizes = torch.tensor([n for n, _ in parts], dtype=torch.int64)
    ptr = torch.zeros(num_graphs + 1, dtype=torch.int64)
    ptr[1:] = sizes.cumsum(0)
    edges = [ei + ptr[b] for b, (_, ei) in enumerate(parts)]
    edge_index = torch.cat(edges, dim=1) if edges else torch.empty(2, 0, dtype=torch.int64)
    batch = torch.repeat_interleave(torch.arange(num_graphs), sizes)
    return BatchedGraph(
        int(ptr[-1]), edge_index.to(device=device, dtype=dtype), batch.to(device), num_graphs, ptr.to(device)
    )


@st.composite
def node_features(
    draw: st.DrawFn,
    num_nodes: int,
    channels: SizeLike = (1, 8),
    *,
    dtype: torch.dtype = torch.float32,
    contiguous: bool | None = True,
    device: torch.device | str = "cpu",
) -> Tensor:
    """Draw standard-normal node features of shape ``(num_nodes, F)``.

    Args:
        num_nodes: Number of rows ``N``.
        channels: ``F`` as an int, an inclusive ``(min, max)`` range or a strategy.
        dtype: Floating dtype.
        contiguous: ``True`` contiguous, ``False`` a column-strided view, ``None`` either.
        device: Device of the result.

    Returns:
        A tensor of shape ``(N, F)``.

    Shape:
        - output: :math:`(N, F)`

    Example:
        >>> from hypothesis import given
        >>> @given(node_features(4, channels=3))
        ... def test_shape(x):
        ...     assert x.shape == (4, 3)
        >>> test_shape()
    """
    f = _size(draw, channels, "channels")
    if contiguous is None:
        contiguous = draw(st.booleans())
    gen = _generator(draw)
    x = torch.randn(num_nodes, f if contiguous else 2 * f, generator=gen, dtype=torch.float64).to(device, dtype)
    return x if contiguous else x[:, ::2]
