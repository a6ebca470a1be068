"""Triton CSR SDDMM: ``out[p, k] = <a[dst(p), k, :], b[col[p], k, :]>`` for every sorted edge ``p``.

Used for the gradient of edge weights (``grad_w = sddmm(grad_out, x)``) and for dot-product
edge scores. One program per (block of ``BLOCK_ROWS`` target rows, head ``k``); each walks its
rows' edges in lock-step and reduces the feature dimension in ``BLOCK_F`` chunks, in float32.
Every output element is written by exactly one program: **deterministic**, no atomics.

Equivalent PyTorch code::

    dst = torch.repeat_interleave(torch.arange(rowptr.numel() - 1), rowptr.diff())
    out = (a[dst] * b[col]).sum(-1)
"""

from __future__ import annotations

import torch
from torch import Tensor

from graphvision.ops._triton import HAS_TRITON
from graphvision.ops._triton._common import (
    lane_block,
    acc_type,
    cdiv,
    check_device,
    check_float_tensor,
    check_index_tensor,
    check_rowptr,
)

__all__ = ["sddmm_csr"]

# Tuning constants (not measured: no GPU in the development environment; chosen for an H200).
# 32 rows per program and a 64-wide feature chunk keep two 32x64 fp32 tiles (a and b) in
# registers at 4 warps; the a-tile is re-read per edge but stays in L1.
BLOCK_ROWS = 32
MAX_BLOCK_F = 64
NUM_WARPS = 4

if HAS_TRITON:
    import triton
    import triton.language as tl

    from graphvision.ops._triton import _jit

    csr_row_block = triton.jit(_jit.csr_row_block)

    @triton.jit
    def _sddmm_csr_kernel(
        rowptr_ptr,  # (N_dst + 1,) target-sorted CSR row pointer
        col_ptr,  # (E,) source node of each sorted edge
        a_ptr,  # (N_dst, K, F) contiguous target-side features
        b_ptr,  # (N_src, K, F) contiguous source-side features
        out_ptr,  # (E, K) output
        n_dst,  # number of target rows
        K: tl.constexpr,  # heads
        F: tl.constexpr,  # features per head
        ACC: tl.constexpr,  # accumulator dtype: tl.float64 for float64 inputs, else tl.float32
        BLOCK_R: tl.constexpr,  # target rows per program
        BLOCK_F: tl.constexpr,  # feature chunk (power of two)
    ):
        pid_r = tl.program_id(0)
        k = tl.program_id(1)
        rows, rmask, start, deg = csr_row_block(rowptr_ptr, n_dst, pid_r, BLOCK_R)
        f1 = tl.arange(0, BLOCK_F)
        f1mask = f1 < F
        if F <= BLOCK_F:
            a1 = tl.load(
                a_ptr + (rows * K + k)[:, None] * F + f1[None, :], mask=rmask[:, None] & f1mask[None, :], other=0.0
            ).to(ACC)
        for d in range(0, tl.max(deg, axis=0)):
            emask = d < deg
            p = start + d
            j = tl.load(col_ptr + p, mask=emask, other=0).to(tl.int64)
            if F <= BLOCK_F:  # one feature chunk: the a-tile was loaded once, above
                bv = tl.load(
                    b_ptr + (j * K + k)[:, None] * F + f1[None, :], mask=emask[:, None] & f1mask[None, :], other=0.0
                ).to(ACC)
                dot = tl.sum(a1 * bv, axis=1)
            else:
                dot = tl.zeros((BLOCK_R,), dtype=ACC)
                for f0 in range(0, F, BLOCK_F):
                    fo = f0 + tl.arange(0, BLOCK_F)
                    m2 = emask[:, None] & (fo < F)[None, :]
                    av = tl.load(a_ptr + (rows * K + k)[:, None] * F + fo[None, :], mask=m2, other=0.0).to(ACC)
                    bv = tl.load(b_ptr + (j * K + k)[:, None] * F + fo[None, :], mask=m2, other=0.0).to(ACC)
                    dot += tl.sum(av * bv, axis=1)
            tl.store(out_ptr + p * K + k, dot.to(out_ptr.dtype.element_ty), mask=emask)


def sddmm_csr(rowptr: Tensor, col: Tensor, a: Tensor, b: Tensor) -> Tensor:
    """Per-edge, per-head dot products on target-sorted CSR (Triton).

    Args:
        rowptr: Target-sorted row pointer, int32 or int64.
        col: Source node of each sorted edge, int32 or int64.
        a: Target-side features.
        b: Source-side features.

    Returns:
        ``out[p, k] = sum_f a[dst(p), k, f] * b[col[p], k, f]`` in ``a``'s dtype (float32
        accumulation).

    Shape:
        - rowptr: :math:`(N_{dst} + 1,)`
        - col: :math:`(E,)`
        - a: :math:`(N_{dst}, K, F)`
        - b: :math:`(N_{src}, K, F)`
        - output: :math:`(E, K)`

    Example:
        >>> from graphvision.ops._triton import triton_usable
        >>> rowptr, col = torch.tensor([0, 1, 3]), torch.tensor([1, 0, 1])
        >>> a, b = torch.randn(2, 2, 4), torch.randn(2, 2, 4)
        >>> sddmm_csr(rowptr, col, a, b).shape if triton_usable(a.device) else torch.Size([3, 2])
        torch.Size([3, 2])
    """
    op = "sddmm_csr"
    check_device(op, rowptr=rowptr, col=col, a=a, b=b)
    col = check_index_tensor(op, col, "col")
    num_edges = col.numel()
    rowptr = check_rowptr(op, rowptr, num_edges)
    n_dst = rowptr.numel() - 1
    a = check_float_tensor(op, a, "a", (n_dst, "K", "F"))
    _, heads, feats = a.shape
    b = check_float_tensor(op, b, "b", ("N_src", heads, feats))
    out = torch.empty(num_edges, heads, device=a.device, dtype=a.dtype)
    if out.numel() == 0:
        return out
    if feats == 0:
        return out.zero_()
    block_f = lane_block(feats, MAX_BLOCK_F)
    grid = (cdiv(n_dst, BLOCK_ROWS), heads)
    _sddmm_csr_kernel[grid](
        rowptr, col, a, b, out, n_dst, K=heads, F=feats, BLOCK_R=BLOCK_ROWS, BLOCK_F=block_f,
        ACC=acc_type(a.dtype), num_warps=NUM_WARPS,
    )
    return out
