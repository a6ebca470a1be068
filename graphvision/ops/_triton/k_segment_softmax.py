"""Triton segment softmax over the edges of each target row (CSR), forward and backward.

Forward: one pass with an online (running max, running sum) softmax per row and head, then a
second pass that writes ``exp(s - max) / sum``. Backward:
``grad_in = out * (grad - sum_row(out * grad))`` in two passes. One program per block of
``BLOCK_ROWS`` rows, all heads at once (``(E, K)`` is row-major, so a row's edge loads all K
heads in one vector). Every element is written by exactly one program: **deterministic**.

Rows without edges produce nothing (there is nothing to write). A NaN score makes its whole
row NaN, as ``torch.softmax`` does; ``+inf`` gives NaN as well.

Equivalent PyTorch code (``dst`` = the target row of each sorted edge)::

    m = scores.new_full((N, K), -inf).scatter_reduce(0, dst[:, None].expand_as(scores), scores, "amax")
    e = (scores - m[dst]).exp()
    out = e / e.new_zeros(N, K).index_add_(0, dst, e)[dst]
"""

from __future__ import annotations

import torch
from torch import Tensor

from graphvision.ops._triton import HAS_TRITON
from graphvision.ops._triton._common import (
    acc_type,
    cdiv,
    check_device,
    check_float_tensor,
    check_rowptr,
    next_pow2,
)

__all__ = ["segment_softmax_csr", "segment_softmax_backward_csr"]

# Tuning constants (not measured: no GPU in the development environment; chosen for an H200).
# The op is tiny (E x K scalars); 64 rows x K heads per program gives 64*K-wide vector loads
# per edge step and enough programs (N / 64 > 3000 for a 56x56 x 64-image batch).
BLOCK_ROWS = 64
NUM_WARPS = 4

if HAS_TRITON:
    import triton
    import triton.language as tl

    from graphvision.ops._triton import _jit

    csr_row_block = triton.jit(_jit.csr_row_block)

    @triton.jit
    def _segment_softmax_fwd_kernel(
        rowptr_ptr,  # (N + 1,) CSR row pointer
        s_ptr,  # (E, K) scores in sorted edge order
        out_ptr,  # (E, K) output probabilities
        n_rows,  # N
        K: tl.constexpr,  # heads
        ACC: tl.constexpr,  # accumulator dtype: tl.float64 for float64 inputs, else tl.float32
        BLOCK_R: tl.constexpr,  # rows per program
        BLOCK_K: tl.constexpr,  # next power of two >= K
    ):
        rows, rmask, start, deg = csr_row_block(rowptr_ptr, n_rows, tl.program_id(0), BLOCK_R)
        ko = tl.arange(0, BLOCK_K)
        kmask = ko < K
        max_deg = tl.max(deg, axis=0)
        m = tl.full((BLOCK_R, BLOCK_K), float("-inf"), dtype=ACC)
        l = tl.zeros((BLOCK_R, BLOCK_K), dtype=ACC)
        for d in range(0, max_deg):
            emask = (d < deg)[:, None] & kmask[None, :]
            p = start + d
            s = tl.load(s_ptr + p[:, None] * K + ko[None, :], mask=emask, other=float("-inf")).to(ACC)
            m_new = tl.maximum(m, s)
            m_safe = tl.where(m_new == float("-inf"), 0.0, m_new)
            l = l * tl.exp(m - m_safe) + tl.where(emask, tl.exp(s - m_safe), 0.0)
            m = m_new
        inv = 1.0 / tl.where(l == 0, 1.0, l)
        m_safe = tl.where(m == float("-inf"), 0.0, m)
        for d in range(0, max_deg):
            emask = (d < deg)[:, None] & kmask[None, :]
            p = start + d
            offs = p[:, None] * K + ko[None, :]
            s = tl.load(s_ptr + offs, mask=emask, other=0.0).to(ACC)
            tl.store(out_ptr + offs, (tl.exp(s - m_safe) * inv).to(out_ptr.dtype.element_ty), mask=emask)

    @triton.jit
    def _segment_softmax_bwd_kernel(
        rowptr_ptr,  # (N + 1,) CSR row pointer
        out_ptr,  # (E, K) forward output (probabilities)
        g_ptr,  # (E, K) gradient w.r.t. the output
        gin_ptr,  # (E, K) gradient w.r.t. the scores (written)
        n_rows,  # N
        K: tl.constexpr,  # heads
        ACC: tl.constexpr,  # accumulator dtype: tl.float64 for float64 inputs, else tl.float32
        BLOCK_R: tl.constexpr,  # rows per program
        BLOCK_K: tl.constexpr,  # next power of two >= K
    ):
        rows, rmask, start, deg = csr_row_block(rowptr_ptr, n_rows, tl.program_id(0), BLOCK_R)
        ko = tl.arange(0, BLOCK_K)
        kmask = ko < K
        max_deg = tl.max(deg, axis=0)
        dot = tl.zeros((BLOCK_R, BLOCK_K), dtype=ACC)
        for d in range(0, max_deg):
            emask = (d < deg)[:, None] & kmask[None, :]
            offs = (start + d)[:, None] * K + ko[None, :]
            o = tl.load(out_ptr + offs, mask=emask, other=0.0).to(ACC)
            g = tl.load(g_ptr + offs, mask=emask, other=0.0).to(ACC)
            dot += o * g
        for d in range(0, max_deg):
            emask = (d < deg)[:, None] & kmask[None, :]
            offs = (start + d)[:, None] * K + ko[None, :]
            o = tl.load(out_ptr + offs, mask=emask, other=0.0).to(ACC)
            g = tl.load(g_ptr + offs, mask=emask, other=0.0).to(ACC)
            tl.store(gin_ptr + offs, (o * (g - dot)).to(gin_ptr.dtype.element_ty), mask=emask)


def _as_2d(op: str, t: Tensor, name: str, num_edges: int | None) -> Tensor:
    if t.dim() == 1:
        t = t.unsqueeze(-1)
    shape: tuple[int | str, ...] = ("E", "K") if num_edges is None else (num_edges, "K")
    return check_float_tensor(op, t, name, shape)


def segment_softmax_csr(rowptr: Tensor, scores: Tensor) -> Tensor:
    """Softmax of edge scores within each CSR row (Triton).

    Args:
        rowptr: Row pointer of the segments (target rows), int32 or int64.
        scores: Scores in sorted edge order, ``(E,)`` is treated as one head.

    Returns:
        Probabilities of the same shape and dtype as ``scores`` (float32 arithmetic; float64 for
        float64 inputs).

    Shape:
        - rowptr: :math:`(N + 1,)`
        - scores: :math:`(E, K)` or :math:`(E,)`
        - output: same as ``scores``

    Example:
        >>> from graphvision.ops._triton import triton_usable
        >>> rowptr, s = torch.tensor([0, 1, 3]), torch.randn(3, 2)
        >>> segment_softmax_csr(rowptr, s).shape if triton_usable(s.device) else torch.Size([3, 2])
        torch.Size([3, 2])
    """
    op = "segment_softmax_csr"
    check_device(op, rowptr=rowptr, scores=scores)
    shape = scores.shape
    s2 = _as_2d(op, scores, "scores", None)
    num_edges, heads = s2.shape
    rowptr = check_rowptr(op, rowptr, num_edges)
    out = torch.empty_like(s2)
    if out.numel() == 0:
        return out.view(shape)
    n_rows = rowptr.numel() - 1
    _segment_softmax_fwd_kernel[(cdiv(n_rows, BLOCK_ROWS),)](
        rowptr, s2, out, n_rows, K=heads, BLOCK_R=BLOCK_ROWS, BLOCK_K=max(2, next_pow2(heads)),
        ACC=acc_type(s2.dtype), num_warps=NUM_WARPS,
    )
    return out.view(shape)


def segment_softmax_backward_csr(rowptr: Tensor, out: Tensor, grad: Tensor) -> Tensor:
    """Gradient of :func:`segment_softmax_csr` w.r.t. the scores (Triton).

    Args:
        rowptr: Row pointer of the segments, int32 or int64.
        out: The forward output (probabilities).
        grad: Gradient w.r.t. ``out``.

    Returns:
        ``out * (grad - sum_row(out * grad))`` in ``out``'s dtype.

    Shape:
        - rowptr: :math:`(N + 1,)`
        - out, grad: :math:`(E, K)` or :math:`(E,)`
        - output: same as ``out``

    Example:
        >>> from graphvision.ops._triton import triton_usable
        >>> rowptr, o, g = torch.tensor([0, 1, 3]), torch.rand(3, 2), torch.randn(3, 2)
        >>> segment_softmax_backward_csr(rowptr, o, g).shape if triton_usable(o.device) else torch.Size([3, 2])
        torch.Size([3, 2])
    """
    op = "segment_softmax_backward_csr"
    check_device(op, rowptr=rowptr, out=out, grad=grad)
    if grad.shape != out.shape:
        raise ValueError(f"{op}: expected 'grad' of the shape of 'out' {tuple(out.shape)} (got {tuple(grad.shape)})")
    shape = out.shape
    o2 = _as_2d(op, out, "out", None)
    num_edges, heads = o2.shape
    g2 = _as_2d(op, grad, "grad", num_edges)
    rowptr = check_rowptr(op, rowptr, num_edges)
    gin = torch.empty(o2.shape, device=o2.device, dtype=o2.dtype)
    if gin.numel() == 0:
        return gin.view(shape)
    n_rows = rowptr.numel() - 1
    _segment_softmax_bwd_kernel[(cdiv(n_rows, BLOCK_ROWS),)](
        rowptr, o2, g2, gin, n_rows, K=heads, BLOCK_R=BLOCK_ROWS, BLOCK_K=max(2, next_pow2(heads)),
        ACC=acc_type(o2.dtype), num_warps=NUM_WARPS,
    )
    return gin.view(shape)
