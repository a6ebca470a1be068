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

    def online_softmax_pool(  # noqa: ANN201
        x_ptr, gate_ptr, lo, hi, k, fo, fmask,  # noqa: ANN001
        K: tl.constexpr, F: tl.constexpr, ACC: tl.constexpr, BLOCK_N: tl.constexpr,  # noqa: N803
    ):
        """Online softmax of head ``k``'s gate over nodes ``[lo, hi)`` and the weighted sum of their features.

        Returns ``(m, l, acc)``: the running maximum, the sum of ``exp(gate - m)`` and the
        un-normalised weighted sum of the feature block ``fo`` (divide by ``l``), in ``ACC``.
        """
        m = tl.max(tl.full((BLOCK_N,), float("-inf"), dtype=ACC), axis=0)
        l = tl.sum(tl.zeros((BLOCK_N,), dtype=ACC), axis=0)  # noqa: E741
        acc = tl.zeros(fo.shape, dtype=ACC)
        for n0 in range(lo, hi, BLOCK_N):
            n = n0 + tl.arange(0, BLOCK_N)
            nmask = n < hi
            g = tl.load(gate_ptr + n * K + k, mask=nmask, other=float("-inf")).to(ACC)
            m_new = tl.maximum(m, tl.max(g, axis=0))
            m_safe = tl.where(m_new == float("-inf"), 0.0, m_new)
            scale = tl.exp(m - m_safe)
            pe = tl.where(nmask, tl.exp(g - m_safe), 0.0)
            l = l * scale + tl.sum(pe, axis=0)  # noqa: E741
            xv = tl.load(x_ptr + n[:, None] * F + fo[None, :], mask=nmask[:, None] & fmask[None, :], other=0.0)
            acc = acc * scale + tl.sum(pe[:, None] * xv.to(ACC), axis=0)
            m = m_new
        return m, l, acc
