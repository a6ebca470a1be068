"""Triton segment reduction over CSR rows: sum, mean, max, min (with arg positions).

One program per (block of ``BLOCK_ROWS`` rows, block of ``BLOCK_F`` features); each walks its
rows' elements in order and reduces in float32 registers. No atomics: **deterministic**.

- ``sum`` / ``mean``: empty rows give 0.
- ``max`` / ``min``: empty rows give 0 and ``arg = -1``. ``arg`` is the sorted position
  ``p`` (row-major index into ``src``) of the first maximum/minimum of the row; a NaN wins and
  propagates (the first NaN), as ``torch.scatter_reduce(..., "amax")`` propagates NaN.

Equivalent PyTorch code (``dst`` = the row of each element)::

    idx = dst[:, None].expand_as(src)
    out = src.new_zeros(N, F).scatter_reduce(0, idx, src, reduce, include_self=False)
    # reduce: "sum" | "mean" | "amax" | "amin"
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from graphvision.ops._triton import HAS_TRITON
from graphvision.ops._triton._common import (
    lane_block,
    acc_type,
    cdiv,
    check_device,
    check_float_tensor,
    check_rowptr,
)

__all__ = ["segment_reduce_csr", "REDUCTIONS"]

#: Supported reductions.
REDUCTIONS: tuple[str, ...] = ("sum", "mean", "max", "min")
_CODE = {"sum": 0, "mean": 1, "max": 2, "min": 3}

# Tuning constants (not measured: no GPU in the development environment; chosen for an H200).
# 32 rows x 64 features: a 32x64 fp32 accumulator (plus a 32x64 int64 arg tile for max/min)
# per program at 4 warps; F > 64 is split across the grid.
BLOCK_ROWS = 32
MAX_BLOCK_F = 64
NUM_WARPS = 4

if HAS_TRITON:
    import triton
    import triton.language as tl

    from graphvision.ops._triton import _jit

    csr_row_block = triton.jit(_jit.csr_row_block)

    @triton.jit
    def _segment_reduce_kernel(
        rowptr_ptr,  # (N + 1,) CSR row pointer
        src_ptr,  # (E, F) contiguous values in sorted order
        out_ptr,  # (N, F) output
        arg_ptr,  # (N, F) int64 arg positions; written only for max/min
        n_rows,  # N
        F: tl.constexpr,  # features
        REDUCE: tl.constexpr,  # 0 sum, 1 mean, 2 max, 3 min
        ACC: tl.constexpr,  # accumulator dtype: tl.float64 for float64 inputs, else tl.float32
        BLOCK_R: tl.constexpr,  # rows per program
        BLOCK_F: tl.constexpr,  # features per program (power of two)
    ):
        rows, rmask, start, deg = csr_row_block(rowptr_ptr, n_rows, tl.program_id(0), BLOCK_R)
        fo = tl.program_id(1) * BLOCK_F + tl.arange(0, BLOCK_F)
        fmask = fo < F
        omask = rmask[:, None] & fmask[None, :]
        acc = tl.zeros((BLOCK_R, BLOCK_F), dtype=ACC)
        arg = tl.full((BLOCK_R, BLOCK_F), -1, dtype=tl.int64)
        for d in range(0, tl.max(deg, axis=0)):
            emask = (d < deg)[:, None] & fmask[None, :]
            p = start + d
            v = tl.load(src_ptr + p[:, None] * F + fo[None, :], mask=emask, other=0.0).to(ACC)
            if REDUCE <= 1:
                acc += v
            else:
                if REDUCE == 2:
                    better = v > acc
                else:
                    better = v < acc
                # first element, strictly better, or a NaN that meets a non-NaN best
                take = emask & ((arg < 0) | better | ((v != v) & (acc == acc)))
                acc = tl.where(take, v, acc)
                arg = tl.where(take, p[:, None] + tl.zeros((BLOCK_R, BLOCK_F), dtype=tl.int64), arg)
        if REDUCE == 1:
            acc = acc / tl.maximum(deg, 1).to(ACC)[:, None]
        offs = rows[:, None] * F + fo[None, :]
        tl.store(out_ptr + offs, acc.to(out_ptr.dtype.element_ty), mask=omask)
        if REDUCE >= 2:
            tl.store(arg_ptr + offs, arg, mask=omask)


def segment_reduce_csr(rowptr: Tensor, src: Tensor, reduce: str) -> tuple[Tensor, Tensor | None]:
    """Reduce the values of each CSR row (Triton).

    Args:
        rowptr: Row pointer, int32 or int64.
        src: Values in sorted order.
        reduce: One of ``"sum"``, ``"mean"``, ``"max"``, ``"min"``.

    Returns:
        ``(out, arg)``: ``out`` in ``src``'s dtype (float32 arithmetic; empty rows 0) and, for
        max/min, ``arg`` (int64) = the sorted position of the first max/min (``-1`` for empty
        rows), else ``None``.

    Shape:
        - rowptr: :math:`(N + 1,)`
        - src: :math:`(E, F)` (any trailing shape ``(E, ...)`` is reduced the same way)
        - out, arg: :math:`(N, F)` (``(N, ...)``)

    Example:
        >>> from graphvision.ops._triton import triton_usable
        >>> rowptr, src = torch.tensor([0, 1, 3, 3]), torch.randn(3, 4)
        >>> if triton_usable(src.device):
        ...     out, arg = segment_reduce_csr(rowptr, src, "max")
        ...     print(tuple(out.shape), arg[2].tolist())
        ... else:
        ...     print((3, 4), [-1, -1, -1, -1])
        (3, 4) [-1, -1, -1, -1]
    """
    op = "segment_reduce_csr"
    if reduce not in _CODE:
        raise ValueError(f"{op}: unknown reduce {reduce!r}; expected one of {REDUCTIONS}")
    check_device(op, rowptr=rowptr, src=src)
    if src.dim() == 0:
        raise ValueError(f"{op}: expected 'src' of shape (E, F) or (E, ...) (got {tuple(src.shape)})")
    trailing = tuple(src.shape[1:])
    src = check_float_tensor(op, src.reshape(src.size(0), math.prod(trailing)), "src", ("E", "F"))  # (E, ...) -> (E, F)
    num_edges, feats = src.shape
    rowptr = check_rowptr(op, rowptr, num_edges)
    n_rows = rowptr.numel() - 1
    out = torch.empty(n_rows, feats, device=src.device, dtype=src.dtype)
    has_arg = reduce in ("max", "min")
    arg = torch.empty(n_rows, feats, device=src.device, dtype=torch.int64) if has_arg else None

    def shaped(o: Tensor, a: Tensor | None) -> tuple[Tensor, Tensor | None]:
        return o.view(n_rows, *trailing), None if a is None else a.view(n_rows, *trailing)

    if out.numel() == 0:
        return shaped(out, arg)
    if num_edges == 0:
        out.zero_()
        if arg is not None:
            arg.fill_(-1)
        return shaped(out, arg)
    block_f = lane_block(feats, MAX_BLOCK_F)
    grid = (cdiv(n_rows, BLOCK_ROWS), cdiv(feats, block_f))
    _segment_reduce_kernel[grid](
        rowptr,
        src,
        out,
        arg if arg is not None else out,
        n_rows,
        F=feats,
        REDUCE=_CODE[reduce],
        BLOCK_R=BLOCK_ROWS,
        BLOCK_F=block_f,
        ACC=acc_type(src.dtype),
        num_warps=NUM_WARPS,
    )
    return shaped(out, arg)
