"""Triton device functions shared by the kernel files (``k_*.py``); inlined where they are called.

They are plain functions here: each kernel file wraps them with ``triton.jit`` when it defines its
kernels, so a device function is always in the same mode (compiled or ``TRITON_INTERPRET``) as
the kernels that call it, whenever and however the kernel file is imported.
"""

from __future__ import annotations

from graphvision.ops._triton import HAS_TRITON

__all__: list[str] = []

if HAS_TRITON:
    import triton.language as tl

    def csr_row_block(rowptr_ptr, n_rows, pid, BLOCK_R: tl.constexpr):  # noqa: ANN001, ANN201, N803
        """The rows ``pid * BLOCK_R + [0, BLOCK_R)`` of a CSR.

        Returns ``(rows, rmask, start, deg)``: the int64 row ids, which of them exist, the
        position of each row's first edge and its number of edges (0 outside the range).
        """
        rows = (pid * BLOCK_R + tl.arange(0, BLOCK_R)).to(tl.int64)
        rmask = rows < n_rows
        start = tl.load(rowptr_ptr + rows, mask=rmask, other=0).to(tl.int64)
        end = tl.load(rowptr_ptr + rows + 1, mask=rmask, other=0).to(tl.int64)
        return rows, rmask, start, end - start
