"""GAT-style attention composed once from a backend's primitive kernels.

The attention forward and backward are written here, once, in terms of five contract
primitives (``spmm_csr``, ``sddmm_csr``, ``segment_softmax_csr``,
``segment_softmax_backward_csr``, ``segment_reduce_csr``). Every backend without a fused
attention kernel gets its ``attention_forward_csr`` / ``attention_backward_csr`` from
:func:`attention_kernels` over its own primitives (``"torch"``, ``"torch_scatter"``,
``"torch_sparse"``); only the Triton backend overrides them with fused kernels. The gradient of
the returned attention coefficients (used when a caller differentiates through them) goes through
the same :func:`score_grads` as the backward itself, on the primitives of the op's backend.

Forward, for every edge ``j -> i`` (sorted by target ``i``) and head ``k``::

    e = leaky_relu(score_src[j, k] + score_dst[i, k])
    a = softmax of e over the edges into i
    out[i, k] = sum_j a * w * x[j, k]

Nothing here is public.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from graphvision.structure import row_index

__all__: list[str] = []

#: ``(rowptr, col)`` of the target-sorted CSR.
CSR = tuple[Tensor, Tensor]
#: ``(rowptr_t, col_t, perm_t)`` of the transposed (source-sorted) CSR; ``perm_t[q]`` is the
#: target-sorted position of the transposed graph's edge ``q``.
CSRT = tuple[Tensor, Tensor, Tensor]


@dataclass(frozen=True)
class Primitives:
    """The contract kernels of one backend that the composed attention is built from.

    ``spmm_transposed_csr(rowptr_t, col_t, perm_t, weight, x)`` optionally computes
    ``spmm_csr(rowptr_t, col_t, weight.index_select(0, perm_t), x)`` faster (the torch backend
    folds the permutation into its cached gather index on the CPU).
    """

    spmm_csr: Callable
    sddmm_csr: Callable
    segment_softmax_csr: Callable
    segment_softmax_backward_csr: Callable
    segment_reduce_csr: Callable
    spmm_transposed_csr: Callable | None = None
    #: ``row_index(rowptr, num_edges)``: the target of each sorted edge (a backend may cache it).
    row_index: Callable = row_index


def acc_dtype(dtype: torch.dtype) -> torch.dtype:
    """Accumulation dtype: float32 for half precision, else the dtype itself."""
    return torch.float32 if dtype in (torch.float16, torch.bfloat16) else dtype


def heads_weight(weight: Tensor, k: int, dtype: torch.dtype) -> Tensor:
    """An ``(E,)`` or ``(E, K)`` edge weight as ``(E, K)`` (broadcast over heads) in ``dtype``."""
    w = weight.to(dtype)
    return w.unsqueeze(1).expand(-1, k) if w.dim() == 1 else w


def _logits(p: Primitives, csr: CSR, score_src: Tensor, score_dst: Tensor, dtype: torch.dtype) -> Tensor:
    rowptr, col = csr
    row = p.row_index(rowptr, col.numel())
    col = col.long()
    return score_src.to(dtype).index_select(0, col) + score_dst.to(dtype).index_select(0, row)


def attention_forward(
    p: Primitives, csr: CSR, x: Tensor, scores: tuple[Tensor, Tensor], weight: Tensor | None, negative_slope: float
) -> tuple[Tensor, Tensor]:
    """Composed attention forward; returns ``(out (N_dst, K, F), attn (E, K))`` in ``x``'s dtype."""
    rowptr, col = csr  # passed on as given: the backends key their cached index arrays on them
    acc = acc_dtype(x.dtype)
    logits = torch.nn.functional.leaky_relu(_logits(p, csr, *scores, acc), negative_slope)
    attn = p.segment_softmax_csr(rowptr, logits)
    coef = attn if weight is None else attn * heads_weight(weight, x.size(1), acc)
    out = p.spmm_csr(rowptr, col, coef, x.to(acc))
    return out.to(x.dtype), attn.to(x.dtype)


def score_grads(
    p: Primitives,
    csr: CSR,
    csr_t: CSRT,
    scores: tuple[Tensor, Tensor],
    attn: Tensor,
    grad_attn: Tensor,
    negative_slope: float,
) -> tuple[Tensor, Tensor]:
    """From a gradient w.r.t. the attention coefficients to the gradients of ``score_src`` and ``score_dst``.

    Softmax backward per target row, LeakyReLU backward, then per-source sums over the transposed
    CSR and per-target sums over the sorted rows (contiguous segment reductions, no atomics).
    Returned in the accumulation dtype.
    """
    rowptr, rowptr_t, perm_t = csr[0], csr_t[0], csr_t[2].long()
    score_src, score_dst = scores
    acc = acc_dtype(attn.dtype)
    e = attn.size(0)
    if e == 0:
        return score_src.new_zeros(score_src.shape, dtype=acc), score_dst.new_zeros(score_dst.shape, dtype=acc)
    grad_e = p.segment_softmax_backward_csr(rowptr, attn.to(acc), grad_attn.to(acc))
    logits = _logits(p, csr, score_src, score_dst, acc)
    grad_e = torch.ops.aten.leaky_relu_backward(grad_e, logits, negative_slope, False)
    grad_src = p.segment_reduce_csr(rowptr_t, grad_e.index_select(0, perm_t), "sum")[0]
    grad_dst = p.segment_reduce_csr(rowptr, grad_e, "sum")[0]
    return grad_src, grad_dst


def attention_backward(
    p: Primitives,
    csr: CSR,
    csr_t: CSRT,
    x: Tensor,
    scores: tuple[Tensor, Tensor],
    weight: Tensor | None,
    attn: Tensor,
    grad_out: Tensor,
    negative_slope: float,
) -> tuple[Tensor, Tensor, Tensor, Tensor | None]:
    """Composed backward of :func:`attention_forward` w.r.t. ``out``.

    Returns ``(grad_x, grad_score_src, grad_score_dst, grad_weight)``, ``grad_weight`` shaped like
    ``weight`` (``None`` when it is).
    """
    (rowptr, col), (rowptr_t, col_t, perm_t) = csr, csr_t  # as given: see attention_forward
    k = x.size(1)
    acc = acc_dtype(x.dtype)
    a, go = attn.to(acc), grad_out.to(acc)
    w = None if weight is None else heads_weight(weight, k, acc)
    coef = a if w is None else a * w
    if p.spmm_transposed_csr is not None:
        grad_x = p.spmm_transposed_csr(rowptr_t, col_t, perm_t, coef, go)
    else:
        grad_x = p.spmm_csr(rowptr_t, col_t, coef.index_select(0, perm_t.long()), go)
    g = p.sddmm_csr(rowptr, col, go, x.to(acc))  # (E, K): <grad_out[dst], x[src]> = d loss / d coef
    grad_w = None
    if weight is not None:
        gw = a * g
        grad_w = (gw.sum(1) if weight.dim() == 1 else gw).to(weight.dtype)
        g = g * w
    grad_src, grad_dst = score_grads(p, csr, csr_t, scores, a, g, negative_slope)
    score_src, score_dst = scores
    return grad_x.to(x.dtype), grad_src.to(score_src.dtype), grad_dst.to(score_dst.dtype), grad_w


def attention_kernels(p: Primitives) -> tuple[Callable, Callable]:
    """``attention_forward_csr`` and ``attention_backward_csr`` (the contract signatures) over ``p``."""

    def attention_forward_csr(
        rowptr: Tensor,
        col: Tensor,
        x: Tensor,
        score_src: Tensor,
        score_dst: Tensor,
        weight: Tensor | None,
        negative_slope: float,
    ) -> tuple[Tensor, Tensor]:
        """Composed attention forward (see :mod:`graphvision.ops._composed`)."""
        return attention_forward(p, (rowptr, col), x, (score_src, score_dst), weight, negative_slope)

    def attention_backward_csr(
        rowptr: Tensor,
        col: Tensor,
        rowptr_t: Tensor,
        col_t: Tensor,
        perm_t: Tensor,
        x: Tensor,
        score_src: Tensor,
        score_dst: Tensor,
        weight: Tensor | None,
        attn: Tensor,
        grad_out: Tensor,
        negative_slope: float,
    ) -> tuple[Tensor, Tensor, Tensor, Tensor | None]:
        """Composed attention backward (see :mod:`graphvision.ops._composed`)."""
        return attention_backward(
            p, (rowptr, col), (rowptr_t, col_t, perm_t), x, (score_src, score_dst), weight, attn, grad_out,
            negative_slope,
        )

    return attention_forward_csr, attention_backward_csr
