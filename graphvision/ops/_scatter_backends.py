"""Optional backends on torch_scatter (segment_csr / gather_csr) and torch_sparse (SparseTensor matmul).

Both packages are imported inside the functions, never at import time. The two backends share
this file: the segment reductions and softmax run on ``torch_scatter.segment_csr`` /
``gather_csr`` (torch_sparse depends on torch_scatter), the sparse matrix products run on
``torch_sparse.matmul`` when the backend is ``"torch_sparse"`` and on gather + ``segment_csr``
for ``"torch_scatter"``. The SDDMM is the torch backend's (the libraries have none), and the
attention forward/backward are composed from these primitives by :mod:`graphvision.ops._composed`
(the same code as the torch backend's). Same contract as :mod:`graphvision.ops._torch`.

``segment_csr`` is deterministic on every device; ``torch_sparse.matmul`` is deterministic on CPU.
"""

from __future__ import annotations

from dataclasses import replace

import torch
from torch import Tensor

from graphvision.ops import _torch
from graphvision.ops._composed import Primitives, attention_kernels

__all__ = [
    "spmm_csr",
    "sddmm_csr",
    "segment_softmax_csr",
    "segment_softmax_backward_csr",
    "segment_reduce_csr",
    "attention_forward_csr",
    "attention_backward_csr",
    "attention_pool_ptr",
]

_acc = _torch._acc_dtype


def _ts():  # noqa: ANN202
    import torch_scatter

    return torch_scatter


def segment_reduce_csr(rowptr: Tensor, src: Tensor, reduce: str) -> tuple[Tensor, Tensor | None]:
    """``torch_scatter.segment_csr``; empty rows give 0 and arg -1."""
    ts = _ts()
    acc = _acc(src.dtype)
    e = src.size(0)
    s = src.to(acc).contiguous()
    rowptr = rowptr.long()
    if reduce in ("max", "min"):
        fn = ts.segment_max_csr if reduce == "max" else ts.segment_min_csr
        out, arg = fn(s, rowptr)
        empty = (rowptr[1:] == rowptr[:-1]).view((-1,) + (1,) * (src.dim() - 1)).expand_as(out)
        arg = torch.where(empty | (arg >= e), torch.full_like(arg, -1), arg)
        out = torch.where(empty, torch.zeros_like(out), out)
        return out.to(src.dtype), arg
    return ts.segment_csr(s, rowptr, reduce=reduce).to(src.dtype), None


def segment_softmax_csr(rowptr: Tensor, scores: Tensor) -> Tensor:
    """Segment softmax with ``segment_csr`` max/sum and ``gather_csr``."""
    if scores.size(0) == 0:
        return scores.clone()
    ts = _ts()
    rowptr = rowptr.long()
    s = scores.to(_acc(scores.dtype)).contiguous()
    m = ts.segment_csr(s, rowptr, reduce="max")
    m = torch.where(torch.isinf(m), torch.zeros_like(m), m)
    ex = (s - ts.gather_csr(m, rowptr)).exp()
    den = ts.segment_csr(ex, rowptr, reduce="sum")
    den = torch.where(den == 0, torch.ones_like(den), den)
    return (ex / ts.gather_csr(den, rowptr)).to(scores.dtype)


def segment_softmax_backward_csr(rowptr: Tensor, out: Tensor, grad: Tensor) -> Tensor:
    """``out * (grad - sum_row(out * grad))`` with ``segment_csr``."""
    if out.size(0) == 0:
        return grad.clone()
    ts = _ts()
    rowptr = rowptr.long()
    acc = _acc(out.dtype)
    o, g = out.to(acc), grad.to(acc)
    dot = ts.segment_csr((o * g).contiguous(), rowptr, reduce="sum")
    return (o * (g - ts.gather_csr(dot, rowptr))).to(out.dtype)


def _spmm(rowptr: Tensor, col: Tensor, weight: Tensor | None, x: Tensor, use_torch_sparse: bool) -> Tensor:
    n_src, k, f = x.shape
    n_dst = rowptr.numel() - 1
    e = col.numel()
    if e == 0 or n_dst == 0:
        return x.new_zeros(n_dst, k, f)
    acc = _acc(x.dtype)
    rowptr, col = rowptr.long(), col.long()
    xa = x.to(acc)
    if use_torch_sparse:
        from torch_sparse import SparseTensor

        if weight is None or weight.dim() == 1:
            val = None if weight is None else weight.to(acc)
            a = SparseTensor(rowptr=rowptr, col=col, value=val, sparse_sizes=(n_dst, n_src), is_sorted=True)
            return (a @ xa.reshape(n_src, k * f)).view(n_dst, k, f).to(x.dtype)
        outs = []
        for h in range(k):
            a = SparseTensor(
                rowptr=rowptr, col=col, value=weight[:, h].to(acc), sparse_sizes=(n_dst, n_src), is_sorted=True
            )
            outs.append(a @ xa[:, h])
        return torch.stack(outs, 1).to(x.dtype)
    ts = _ts()
    msg = xa.index_select(0, col)  # (E, K, F): what torch_scatter's gather + segment does
    if weight is not None:
        msg = msg * (weight.to(acc)[:, None, None] if weight.dim() == 1 else weight.to(acc)[:, :, None])
    return ts.segment_csr(msg, rowptr, reduce="sum").to(x.dtype)


def spmm_csr(rowptr: Tensor, col: Tensor, weight: Tensor | None, x: Tensor) -> Tensor:
    """torch_scatter: gather of the source rows + ``segment_csr`` sum (an ``E x K x F`` message tensor)."""
    return _spmm(rowptr, col, weight, x, use_torch_sparse=False)


def sddmm_csr(rowptr: Tensor, col: Tensor, a: Tensor, b: Tensor) -> Tensor:
    """Same as the torch backend (chunked gather; the libraries have no SDDMM)."""
    return _torch.sddmm_csr(rowptr, col, a, b)


def attention_pool_ptr(ptr: Tensor, x: Tensor, gate: Tensor) -> tuple[Tensor, Tensor]:
    """Segment softmax of the gate and a ``segment_csr`` weighted sum per graph."""
    ts = _ts()
    acc = _acc(x.dtype)
    weights = segment_softmax_csr(ptr, gate.to(acc))
    msg = weights[:, :, None] * x.to(acc)[:, None, :]
    out = ts.segment_csr(msg, ptr.long(), reduce="sum")
    return out.to(x.dtype), weights.to(gate.dtype)


def _torch_sparse_spmm_csr(rowptr: Tensor, col: Tensor, weight: Tensor | None, x: Tensor) -> Tensor:
    """``torch_sparse.SparseTensor @ x`` (one product per head for per-head weights)."""
    return _spmm(rowptr, col, weight, x, use_torch_sparse=True)


#: Primitives of the ``"torch_scatter"`` backend; its attention is composed from them.
PRIMITIVES = Primitives(
    spmm_csr=spmm_csr,
    sddmm_csr=sddmm_csr,
    segment_softmax_csr=segment_softmax_csr,
    segment_softmax_backward_csr=segment_softmax_backward_csr,
    segment_reduce_csr=segment_reduce_csr,
)
#: The same with ``torch_sparse.matmul`` for every SpMM (the ``"torch_sparse"`` backend).
TORCH_SPARSE_PRIMITIVES = replace(PRIMITIVES, spmm_csr=_torch_sparse_spmm_csr)

attention_forward_csr, attention_backward_csr = attention_kernels(PRIMITIVES)


class _TorchSparse:
    """The ``"torch_sparse"`` backend: the functions above, with ``torch_sparse.matmul`` for every SpMM."""

    spmm_csr = staticmethod(_torch_sparse_spmm_csr)
    attention_forward_csr, attention_backward_csr = map(staticmethod, attention_kernels(TORCH_SPARSE_PRIMITIVES))
    sddmm_csr = staticmethod(sddmm_csr)
    segment_softmax_csr = staticmethod(segment_softmax_csr)
    segment_softmax_backward_csr = staticmethod(segment_softmax_backward_csr)
    segment_reduce_csr = staticmethod(segment_reduce_csr)
    attention_pool_ptr = staticmethod(attention_pool_ptr)


#: Kernel namespace of the ``"torch_sparse"`` backend (looked up by :mod:`graphvision.ops._dispatch`).
TORCH_SPARSE = _TorchSparse
