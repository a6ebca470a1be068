"""Triton CSR SpMM: ``out[i, k] = sum_{p in row i} w[p(, k)] * x[col[p], k]``.

One program per (block of ``BLOCK_ROWS`` target rows, head ``k``, block of ``BLOCK_F``
features). Each program walks the edges of its rows in lock-step (edge ``d`` of every row at
iteration ``d``, up to the largest degree in the block), gathers ``x[col]`` rows and
accumulates in float32 registers: no ``E x F`` intermediate, no atomics, a fixed summation
order. **Deterministic**: bitwise identical results from run to run.

Designed for image graphs (bounded, regular degree: 4/8-neighbour grids, kNN). A block that
holds one very high-degree row runs as long as that row; the result stays exact.

Equivalent PyTorch code (``dst`` = the target row of each sorted edge)::

    dst = torch.repeat_interleave(torch.arange(rowptr.numel() - 1), rowptr.diff())
    msg = x[col] * (w[:, None, None] if w.dim() == 1 else w[:, :, None])
    out = x.new_zeros(rowptr.numel() - 1, K, F).index_add_(0, dst, msg)
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
    check_weight,
    dummy,
)

__all__ = ["spmm_csr"]

# Tuning constants. There is no GPU in the development environment, so these were NOT measured:
# they are chosen for an H200 from the kernel's shape. 32 rows x 64 fp32 features is 2048
# accumulators = 16 registers per thread at 4 warps, leaving room for the gathered tile; an
# 8-neighbour grid row block then issues 8 gathers of 32 rows x 256 B (fully used 128 B lines).
# F > 64 is split over the grid's third axis so that C=256 with few heads still fills 132 SMs.
# Re-tune with benchmarks/run_gpu.sh.
BLOCK_ROWS = 32
MAX_BLOCK_F = 64
NUM_WARPS = 4

if HAS_TRITON:
    import triton
    import triton.language as tl

    from graphvision.ops._triton import _jit

    csr_row_block = triton.jit(_jit.csr_row_block)

    @triton.jit
    def _spmm_csr_kernel(
        rowptr_ptr,  # (N_dst + 1,) int32/int64: target-sorted CSR row pointer
        col_ptr,  # (E,) int32/int64: source node of each sorted edge
        w_ptr,  # (E,) or (E, K) edge weights; not read when W_MODE == 0
        x_ptr,  # (N_src, K, F) contiguous source features
        out_ptr,  # (N_dst, K, F) contiguous output
        n_dst,  # number of target rows
        K: tl.constexpr,  # heads
        F: tl.constexpr,  # features per head
        W_MODE: tl.constexpr,  # 0: no weight, 1: (E,), 2: (E, K)
        ACC: tl.constexpr,  # accumulator dtype: tl.float64 for float64 inputs, else tl.float32
        BLOCK_R: tl.constexpr,  # target rows per program
        BLOCK_F: tl.constexpr,  # features per program (power of two)
    ):
        pid_r = tl.program_id(0)
        k = tl.program_id(1)
        pid_f = tl.program_id(2)
        rows, rmask, start, deg = csr_row_block(rowptr_ptr, n_dst, pid_r, BLOCK_R)
        fo = pid_f * BLOCK_F + tl.arange(0, BLOCK_F)
        fmask = fo < F
        acc = tl.zeros((BLOCK_R, BLOCK_F), dtype=ACC)
        zero_f = fo[None, :] * 0
        for d in range(0, tl.max(deg, axis=0)):
            emask = d < deg
            m2 = emask[:, None] & fmask[None, :]
            p = (start + d)[:, None] + zero_f
            # Per-edge values are loaded as 2-D tiles broadcast over the feature lanes (one
            # address per row, so no extra traffic): Triton 3.6 fails to compile this loop for
            # sm_90 with 1-D masked loads once there are several feature blocks ("mask type
            # matches ptr type"). Found on the H200; tests/ops/test_triton_aot_compile.py.
            j = tl.load(col_ptr + p, mask=m2, other=0).to(tl.int64)
            xv = tl.load(x_ptr + (j * K + k) * F + fo[None, :], mask=m2, other=0.0).to(ACC)
            if W_MODE == 1:
                xv = xv * tl.load(w_ptr + p, mask=m2, other=0.0).to(ACC)
            elif W_MODE == 2:
                xv = xv * tl.load(w_ptr + p * K + k, mask=m2, other=0.0).to(ACC)
            acc += xv
        tl.store(
            out_ptr + (rows * K + k)[:, None] * F + fo[None, :],
            acc.to(out_ptr.dtype.element_ty),
            mask=rmask[:, None] & fmask[None, :],
        )


def spmm_csr(rowptr: Tensor, col: Tensor, weight: Tensor | None, x: Tensor) -> Tensor:
    """CSR sparse-dense product on target-sorted edges (Triton).

    Args:
        rowptr: Target-sorted row pointer, int32 or int64.
        col: Source node of each sorted edge, int32 or int64.
        weight: ``None`` (all ones), per-edge ``(E,)`` or per-edge-and-head ``(E, K)`` weights.
        x: Source node features.

    Returns:
        ``out[i, k] = sum over sorted edges p of row i of w[p(, k)] * x[col[p], k]``, float32
        accumulation, in ``x``'s dtype. Rows without edges give 0.

    Shape:
        - rowptr: :math:`(N_{dst} + 1,)`
        - col: :math:`(E,)`
        - weight: :math:`(E,)` or :math:`(E, K)`, optional
        - x: :math:`(N_{src}, K, F)`
        - output: :math:`(N_{dst}, K, F)`

    Example:
        >>> from graphvision.ops._triton import triton_usable
        >>> rowptr, col = torch.tensor([0, 1, 3]), torch.tensor([1, 0, 1])
        >>> x = torch.randn(2, 1, 4)
        >>> spmm_csr(rowptr, col, None, x).shape if triton_usable(x.device) else torch.Size([2, 1, 4])
        torch.Size([2, 1, 4])
    """
    op = "spmm_csr"
    check_device(op, rowptr=rowptr, col=col, weight=weight, x=x)
    col = check_index_tensor(op, col, "col")
    num_edges = col.numel()
    rowptr = check_rowptr(op, rowptr, num_edges)
    x = check_float_tensor(op, x, "x", ("N_src", "K", "F"))
    n_src, heads, feats = x.shape
    weight, w_mode = check_weight(op, weight, num_edges, heads)
    n_dst = rowptr.numel() - 1
    out = torch.empty(n_dst, heads, feats, device=x.device, dtype=x.dtype)
    if out.numel() == 0:
        return out
    if num_edges == 0:
        return out.zero_()
    block_f = lane_block(feats, MAX_BLOCK_F)
    grid = (cdiv(n_dst, BLOCK_ROWS), heads, cdiv(feats, block_f))
    _spmm_csr_kernel[grid](
        rowptr,
        col,
        weight if weight is not None else dummy(x.device),
        x,
        out,
        n_dst,
        K=heads,
        F=feats,
        W_MODE=w_mode,
        BLOCK_R=BLOCK_ROWS,
        BLOCK_F=block_f,
        ACC=acc_type(x.dtype), num_warps=NUM_WARPS,
    )
    return out
