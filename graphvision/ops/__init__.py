"""Fused scatter kernels behind one dispatch point.

Public ops (all differentiable, all registered with ``torch.library`` so they work under
``torch.compile(fullgraph=True)``):

- :func:`scatter`: sum / mean / max / min of rows sharing an index;
- :func:`spmm`: weighted sparse-dense product ``out[i] = sum_{j->i} w * x[j]``;
- :func:`segment_softmax`: softmax over segments (per head);
- :func:`attention_aggregate`: fused GAT-style attention aggregation;
- :func:`attention_pool`: gated global attention readout per graph.

Every op takes ``backend=None | "torch" | "triton" | "torch_scatter" | "torch_sparse"``; ``None``
follows :mod:`graphvision.config` (``use_backend``, ``GRAPHVISION_BACKEND``) and otherwise picks
the fastest backend available on the input's device (see :mod:`graphvision.ops._dispatch`).
``edge_index`` may be a :class:`~graphvision.GraphStructure` so its sorted CSR is reused.
"""

from graphvision.ops._dispatch import available_backends
from graphvision.ops._functional import *  # noqa: F401,F403
from graphvision.ops._functional import __all__ as _functional_all

__all__ = list(_functional_all) + ["available_backends"]
