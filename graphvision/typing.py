"""Type aliases shared across graphvision."""

from __future__ import annotations

from typing import TYPE_CHECKING, Union

from torch import Tensor

if TYPE_CHECKING:  # pragma: no cover
    from graphvision.structure import GraphStructure

__all__ = ["OptTensor", "EdgeIndex", "Adjacency"]

#: An optional tensor.
OptTensor = Union[Tensor, None]
#: A ``(2, E)`` integer tensor; messages flow from ``edge_index[0]`` (source) to ``edge_index[1]`` (target).
EdgeIndex = Tensor
#: Either a raw ``edge_index`` or a :class:`~graphvision.structure.GraphStructure` with cached CSR.
Adjacency = Union[Tensor, "GraphStructure"]
