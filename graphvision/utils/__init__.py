"""Graph utilities with PyG's names, arguments and outputs.

:func:`to_dense_batch`, :func:`to_dense_adj`, :func:`add_self_loops`, :func:`remove_self_loops`,
:func:`coalesce`, :func:`subgraph`, :func:`degree` and :func:`dropout_edge` take a ``(2, E)`` ``edge_index`` or a
:class:`~graphvision.GraphStructure` (whose ``num_nodes`` is then the default) and return what
``torch_geometric.utils`` returns for the same input.
"""

from graphvision.utils import _utils
from graphvision.utils._utils import *  # noqa: F401,F403

__all__ = list(_utils.__all__)
