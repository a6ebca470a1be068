"""Fused scatter kernels behind one dispatch point.

Public ops (all differentiable, all registered with ``torch.library`` so they work under
``torch.compile(fullgraph=True)``):

- :func:`scatter`: sum / mean / max / min of rows sharing an index;
- :func:`spmm`: weighted sparse-dense product ``out[i] = sum_{j->i} w * x[j]``;
- :func:`segment_softmax`: softmax over segments (per head);
- :func:`attention_aggregate`: fused GAT-style attention aggregation;
- :func:`global_attention_pool`: gated global attention readout per graph.

Every op takes ``backend=None | "torch" | "triton" | "torch_scatter" | "torch_sparse"``; ``None``
follows :mod:`graphvision.config` (``use_backend``, ``GRAPHVISION_BACKEND``) and otherwise picks
the fastest backend available on the input's device (see :mod:`graphvision.ops._dispatch`).
``edge_index`` may be a :class:`~graphvision.GraphStructure` so its sorted CSR is reused.

Backends:

- ``"torch"`` (any device; the reference and the CPU fast path): ``torch.sparse`` CSR matmul
  for the weighted sums (forward, and backward on the cached transposed CSR),
  ``torch.sparse.sampled_addmm`` for the SDDMMs of the backward, ``torch.segment_reduce`` for the
  segment softmax. Peak memory ``O(N * F + E * K)``: no ``E x F`` message tensor, forward or
  backward.
- ``"triton"`` (CUDA; on the CPU only when asked for explicitly under ``TRITON_INTERPRET=1``):
  fused kernels, no atomics.
- ``"torch_scatter"`` / ``"torch_sparse"`` when installed (``pip install "graphvision[scatter]"``).

The attention forward and backward are written once (:mod:`graphvision.ops._composed`) from each
backend's primitives (SpMM, SDDMM, segment softmax and its backward, segment sums); only the
Triton backend overrides them with fused kernels.

Determinism: on the CPU every backend is deterministic. On CUDA the ``"triton"`` kernels and
``torch_scatter``'s ``segment_csr`` are deterministic (no atomics); the ``"torch"`` backend's
:func:`scatter` and the ``index_add_`` in some backward formulas use atomics and may differ in the
last bits between runs.

The cost of sorting the edges (building the CSR and its transpose) is paid once per
:class:`~graphvision.GraphStructure`; with a raw ``edge_index`` it is paid on every call.
"""

from graphvision.ops._dispatch import available_backends
from graphvision.ops._api import *  # noqa: F401,F403
from graphvision.ops._api import __all__ as _api_all

__all__ = list(_api_all) + ["available_backends"]
