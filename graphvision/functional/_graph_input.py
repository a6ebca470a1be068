"""Graph input handling shared by the convolutions and pooling layers (nothing here is public).

A layer's graph argument is resolved against its node features once, by :func:`resolve_graph`:

- ``(N, F)`` with one graph;
- ``(B, N, F)`` with one graph shared by the ``B`` samples (the batch is later folded into the
  feature or head axis; edges are never copied per sample);
- ``(B, N, F)`` with per-sample graphs: a list of ``edge_index``, or one offset ``edge_index``
  over the ``B * N`` flattened nodes marked by a ``batch`` vector.

The result is a :class:`GraphInput` whose ``graph`` is always a
:class:`~graphvision.GraphStructure` (the caller's, or one wrapped around a raw ``edge_index``
after its one validation).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Union

import torch
from torch import Tensor

from graphvision import _checks
from graphvision._checks import check_floating, check_same_device, check_tensor
from graphvision.ops._api import as_structure
from graphvision.structure import GraphStructure
from graphvision.typing import Adjacency

#: The graph argument of the convolutions: one graph (``(2, E)`` tensor or ``GraphStructure``) or a
#: sequence of ``B`` per-sample graphs.
GraphLike = Union[Adjacency, Sequence[Adjacency]]
#: Edge weights: ``(E,)``, one per per-sample graph, or ``None``.
WeightLike = Union[Tensor, Sequence[Tensor], None]

__all__: list[str] = []


def _edge_index_of(graph: object) -> Tensor:
    """The raw ``(2, E)`` edge index of an ``edge_index`` tensor or a ``GraphStructure``."""
    if isinstance(graph, Tensor):
        return graph
    ei = getattr(graph, "edge_index", None)
    if not isinstance(ei, Tensor):
        raise TypeError(
            f"Expected 'edge_index' to be a (2, E) tensor or a GraphStructure (got {type(graph).__name__})"
        )
    return ei


@dataclass
class GraphInput:
    """A graph resolved against its node features.

    Attributes:
        graph: What the ops get: a ``GraphStructure`` (the caller's, or a trusted one wrapped
            around a raw ``edge_index`` after its one validation).
        edge_weight: ``(E,)`` or ``None``.
        num_nodes: Number of nodes the ops see (``N``, or ``B * N`` for per-sample graphs).
        batch_size: ``B`` when ``x`` is ``(B, N, F)`` (shared or per-sample), else ``None``.
        shared: ``True`` when one graph over ``N`` nodes is shared by the ``B`` samples.
    """

    graph: object
    edge_weight: Tensor | None
    num_nodes: int
    batch_size: int | None
    shared: bool

    @property
    def edge_index(self) -> Tensor:
        return _edge_index_of(self.graph)


def check_x(x: object, name: str = "x", *, features: int | None = None, what: str = "in_channels") -> Tensor:
    """``x`` must be a floating ``(N, F)`` or ``(B, N, F)`` tensor (with ``F == features``)."""
    x = check_tensor(x, name)
    if x.dim() not in (2, 3):
        raise ValueError(f"Expected '{name}' of shape (N, F) or (B, N, F) (got {tuple(x.shape)})")
    check_floating(x, name)
    if features is not None and x.size(-1) != features:
        raise ValueError(
            f"Expected '{name}' with {what}={features} features in its last dimension (got {tuple(x.shape)})"
        )
    return x


def _check_weight(edge_weight: object, num_edges: int, x: Tensor, name: str = "edge_weight") -> Tensor:
    w = check_tensor(edge_weight, name)
    if w.dim() != 1 or w.size(0) != num_edges:
        raise ValueError(f"Expected '{name}' of shape (E,) with E={num_edges} (got {tuple(w.shape)})")
    check_floating(w, name)
    if w.dtype != x.dtype:
        raise TypeError(f"Expected '{name}' of the same dtype as 'x' ({x.dtype}) (got {w.dtype})")
    check_same_device("x", x, name, w)
    return w


def _check_structure_size(graph: object, num_nodes: int, name: str = "edge_index") -> None:
    if isinstance(graph, GraphStructure) and (graph.num_nodes != num_nodes or graph.num_src_nodes != num_nodes):
        raise ValueError(
            f"Expected the GraphStructure '{name}' over {num_nodes} nodes to match 'x' "
            f"(got num_nodes={graph.num_nodes}, num_src_nodes={graph.num_src_nodes})"
        )


def _graph_of(edge_index: object, num_nodes: int, x: Tensor, name: str = "edge_index") -> GraphStructure:
    """The structure of one graph over ``num_nodes`` nodes: the caller's, or a raw edge index validated once."""
    if isinstance(edge_index, GraphStructure):
        _check_structure_size(edge_index, num_nodes, name)
        check_same_device("x", x, name, edge_index.edge_index)
        return edge_index
    carried = getattr(edge_index, "graph", None)
    if isinstance(carried, GraphStructure) and isinstance(edge_index, Tensor):
        # a converter's edge index (knn_graph, radius_graph) carrying its trusted structure:
        # used when it still describes this very memory (same pointer, shape and strides)
        ce = carried.edge_index
        if ce.data_ptr() == edge_index.data_ptr() and ce.shape == edge_index.shape and ce.stride() == edge_index.stride():
            return _graph_of(carried, num_nodes, x, name)
    ei = _edge_index_of(edge_index)
    check_same_device("x", x, name, ei)
    return as_structure(ei, num_nodes, num_nodes)


def _per_sample_graphs(x: Tensor, edge_index: Sequence[Adjacency], edge_weight: WeightLike) -> tuple[Tensor, GraphInput]:
    """Per-sample graphs given as a list: one offset edge index over the ``B * N`` nodes, validated once."""
    if x.dim() != 3:
        raise ValueError(
            f"A list of per-sample 'edge_index' needs batched 'x' of shape (B, N, F) (got {tuple(x.shape)})"
        )
    bsz, n = x.size(0), x.size(1)
    if len(edge_index) != bsz:
        raise ValueError(f"Expected a list of B={bsz} 'edge_index' tensors, one per sample (got {len(edge_index)})")
    eis = []
    for i, e in enumerate(edge_index):
        _check_structure_size(e, n, f"edge_index[{i}]")
        t = _edge_index_of(e)
        _checks.check_edge_index(t, None, name=f"edge_index[{i}]")
        check_same_device("x", x, f"edge_index[{i}]", t)
        eis.append(t)
    offsets = [e.long() + i * n for i, e in enumerate(eis)]
    ei = torch.cat(offsets, dim=1) if offsets else x.new_zeros((2, 0), dtype=torch.long)
    nonempty = [(i, e) for i, e in enumerate(eis) if e.numel() > 0]
    if nonempty and _checks.sync_checks_enabled():
        stats = _checks.host_read(torch.stack([torch.stack(list(torch.aminmax(e))).long() for _, e in nonempty]))
        for (i, _), (lo, hi) in zip(nonempty, stats):
            if lo < 0 or hi >= n:
                raise IndexError(
                    f"Found indices in 'edge_index[{i}]' outside of [0, {n}) (got min {lo}, max {hi}; num_nodes={n})"
                )
    w: Tensor | None = None
    if edge_weight is not None:
        if not isinstance(edge_weight, (list, tuple)) or len(edge_weight) != bsz:
            raise ValueError(
                "With a list of per-sample 'edge_index', expected 'edge_weight' to be a list of "
                f"B={bsz} tensors (got {type(edge_weight).__name__})"
            )
        ws = [_check_weight(wi, e.size(1), x, f"edge_weight[{i}]") for i, (wi, e) in enumerate(zip(edge_weight, eis))]
        w = torch.cat(ws)
    graph = GraphStructure._trusted(ei, bsz * n, bsz * n)
    return x.reshape(bsz * n, x.size(2)), GraphInput(graph, w, bsz * n, bsz, False)


def resolve_graph(
    x: Tensor,
    edge_index: GraphLike,
    edge_weight: WeightLike = None,
    batch: Tensor | None = None,
) -> tuple[Tensor, GraphInput]:
    """Validate a graph against ``x`` (once) and bring ``x`` into the layout the ops need.

    Returns ``(x, graph)``: ``x`` unchanged for one graph or a shared graph, flattened to
    ``(B * N, F)`` for per-sample graphs (undo with :func:`restore`). ``graph.graph`` is always
    a ``GraphStructure``: the caller's (nothing re-checked or re-derived), or one wrapped around
    a raw ``edge_index`` after one validation (at most one host read).
    """
    if isinstance(edge_index, (list, tuple)):
        return _per_sample_graphs(x, edge_index, edge_weight)
    if batch is not None:
        check_tensor(batch, "batch")
        if x.dim() == 3:
            bsz, n = x.size(0), x.size(1)
            if batch.dim() != 1 or batch.size(0) != bsz * n:
                raise ValueError(
                    f"Expected 'batch' of shape (B * N,) = ({bsz * n},) for batched 'x' of shape "
                    f"{tuple(x.shape)} with per-sample graphs (got {tuple(batch.shape)})"
                )
            graph = _graph_of(edge_index, bsz * n, x)
            w = None if edge_weight is None else _check_weight(edge_weight, graph.num_edges, x)
            return x.reshape(bsz * n, x.size(2)), GraphInput(graph, w, bsz * n, bsz, False)
        if batch.dim() != 1 or batch.size(0) != x.size(0):
            raise ValueError(f"Expected 'batch' of shape (N,) = ({x.size(0)},) (got {tuple(batch.shape)})")
    n = x.size(-2)
    graph = _graph_of(edge_index, n, x)
    w = None if edge_weight is None else _check_weight(edge_weight, graph.num_edges, x)
    if x.dim() == 3:
        return x, GraphInput(graph, w, n, x.size(0), True)
    return x, GraphInput(graph, w, n, None, False)


def restore(out: Tensor, g: GraphInput) -> Tensor:
    """Undo the flattening of per-sample graphs: ``(B * N, ...)`` -> ``(B, N, ...)``.

    A shared graph folds the batch into the feature axis, which leaves the output in ``(N, B, F)``
    memory order; it is returned contiguous so that callers can ``view`` it.
    """
    if g.batch_size is not None and not g.shared:
        return out.view(g.batch_size, -1, *out.shape[1:])
    return out.contiguous()
