"""Triton fused GAT-style attention aggregation on target-sorted CSR, forward and backward.

For each edge ``p: j -> i`` and head ``k``::

    e[p, k]    = leaky_relu(score_src[j, k] + score_dst[i, k], negative_slope)
    attn[p, k] = softmax of e[:, k] over the edges into i
    out[i, k]  = sum_p attn[p, k] * w[p(, k)] * x[j, k, :]

**Forward** (one program per block of ``BLOCK_ROWS`` target rows, head ``k`` and block of
``BLOCK_F`` features): a single pass over the rows' edges with a FlashAttention-style online
softmax (running max ``m`` and sum ``l``, rescaling the accumulator when the max
grows), so no ``E x F`` tensor is ever formed; a second, scalar-only pass writes the ``(E, K)``
attention coefficients (needed by the backward and on request). No atomics.

**Backward** (no atomics either, so also deterministic):

1. edge pass over target-sorted CSR (one program per target row block and head):
   ``dot[p] = <grad_out[i, k], x[j, k]>``, ``D[i] = sum_p attn * w * dot`` (``= <grad_out, out>``),
   ``ds[p] = attn * (w * dot - D[i]) * leaky_relu'(s)``; writes ``ds`` ``(E, K)``,
   ``grad_weight = attn * dot`` and ``grad_score_dst[i] = sum_p ds[p]``;
2. transposed pass over source-sorted CSR (``rowptr_t``, ``col_t``, ``perm_t``; one program per
   source row block, head and feature block): ``grad_x[j] = sum attn * w * grad_out[i]`` and
   ``grad_score_src[j] = sum ds``.

The only temporaries are ``(E, K)`` in the accumulator dtype (``ds``, and ``grad_weight`` when weights are given).

All kernels here are **deterministic** (bitwise reproducible): every output element is
written by exactly one program, which sums in a fixed order.

Equivalent PyTorch code (``dst`` = the target row of each sorted edge)::

    e = F.leaky_relu(score_src[col] + score_dst[dst], negative_slope)
    attn = torch_geometric.utils.softmax(e, dst, num_nodes=N_dst)
    out = x.new_zeros(N_dst, K, F).index_add_(0, dst, (attn * w)[..., None] * x[col])
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

__all__ = ["attention_forward_csr", "attention_backward_csr"]

# Tuning constants. Not measured (no GPU in the development environment); chosen for an H200:
# 32 rows x 64 features = 16 fp32 accumulator registers per thread at 4 warps plus the gathered
# tile; heads and feature blocks go on grid axes 1 and 2 so that B=16 28x28 (N=12,544) already
# gives 392 x K programs. Per-head features above 64 (e.g. C=256, K=1) are split over axis 2;
# each feature block recomputes the (cheap, scalar) softmax statistics. Re-tune on the GPU with
# benchmarks/run_gpu.sh.
BLOCK_ROWS = 32
MAX_BLOCK_F = 64
NUM_WARPS = 4
# the backward edge pass reduces <grad_out, x> over F in chunks of this size
BWD_BLOCK_F = 64

if HAS_TRITON:
    import triton
    import triton.language as tl

    from graphvision.ops._triton import _jit

    csr_row_block = triton.jit(_jit.csr_row_block)

    @triton.jit
    def _attention_fwd_kernel(
        rowptr_ptr,  # (N_dst + 1,) target-sorted CSR row pointer
        col_ptr,  # (E,) source node of each sorted edge
        x_ptr,  # (N_src, K, F) source features
        asrc_ptr,  # (N_src, K) source attention logits
        adst_ptr,  # (N_dst, K) target attention logits
        w_ptr,  # (E,) / (E, K) edge weights, not read when W_MODE == 0
        out_ptr,  # (N_dst, K, F) output
        attn_ptr,  # (E, K) attention coefficients (written by feature block 0)
        n_dst,  # N_dst
        negative_slope,  # leaky_relu slope
        K: tl.constexpr,  # heads
        F: tl.constexpr,  # features per head
        W_MODE: tl.constexpr,  # 0: none, 1: (E,), 2: (E, K)
        ACC: tl.constexpr,  # accumulator dtype: tl.float64 for float64 inputs, else tl.float32
        BLOCK_R: tl.constexpr,  # target rows per program
        BLOCK_F: tl.constexpr,  # features per program (power of two)
    ):
        pid_r = tl.program_id(0)
        k = tl.program_id(1)
        pid_f = tl.program_id(2)
        rows, rmask, start, deg = csr_row_block(rowptr_ptr, n_dst, pid_r, BLOCK_R)
        max_deg = tl.max(deg, axis=0)
        ad = tl.load(adst_ptr + rows * K + k, mask=rmask, other=0.0).to(ACC)
        fo = pid_f * BLOCK_F + tl.arange(0, BLOCK_F)
        fmask = fo < F
        # Everything in this loop is a 2-D tile, the per-row running max ``m`` and sum ``l`` and
        # the per-edge values broadcast over the feature lanes (one address per row, so no extra
        # traffic): Triton 3.6 fails to compile the loop for sm_90 with 1-D masked loads once
        # there are several feature blocks ("mask type matches ptr type"). Found on the H200;
        # tests/ops/test_triton_aot_compile.py compiles every kernel for sm_90 on the CPU.
        zero_f = fo[None, :] * 0
        ad2 = ad[:, None] + zero_f.to(ACC)
        m = tl.full((BLOCK_R, BLOCK_F), float("-inf"), dtype=ACC)
        l = tl.zeros((BLOCK_R, BLOCK_F), dtype=ACC)
        acc = tl.zeros((BLOCK_R, BLOCK_F), dtype=ACC)
        for d in range(0, max_deg):
            emask = (d < deg)[:, None] & (zero_f == 0)
            p = (start + d)[:, None] + zero_f
            j = tl.load(col_ptr + p, mask=emask, other=0).to(tl.int64)
            s = tl.load(asrc_ptr + j * K + k, mask=emask, other=0.0).to(ACC) + ad2
            s = tl.where(s > 0, s, s * negative_slope)
            s = tl.where(emask, s, float("-inf"))
            m_new = tl.maximum(m, s)
            m_safe = tl.where(m_new == float("-inf"), 0.0, m_new)
            scale = tl.exp(m - m_safe)
            pe = tl.where(emask, tl.exp(s - m_safe), 0.0)
            l = l * scale + pe
            if W_MODE == 1:
                pe = pe * tl.load(w_ptr + p, mask=emask, other=0.0).to(ACC)
            elif W_MODE == 2:
                pe = pe * tl.load(w_ptr + p * K + k, mask=emask, other=0.0).to(ACC)
            xv = tl.load(x_ptr + (j * K + k) * F + fo[None, :], mask=emask & fmask[None, :], other=0.0).to(ACC)
            acc = acc * scale + pe * xv
            m = m_new
        inv2 = 1.0 / tl.where(l == 0, 1.0, l)
        acc = acc * inv2
        tl.store(
            out_ptr + (rows * K + k)[:, None] * F + fo[None, :],
            acc.to(out_ptr.dtype.element_ty),
            mask=rmask[:, None] & fmask[None, :],
        )
        # attention coefficients: written once, by the first feature block (the lanes of m and
        # inv2 hold the same value in every column)
        m1 = tl.max(m, axis=1)
        inv = tl.max(inv2, axis=1)
        m_safe = tl.where(m1 == float("-inf"), 0.0, m1)
        deg = tl.where(rows * 0 + pid_f == 0, deg, 0)
        for d in range(0, tl.max(deg, axis=0)):
            emask = d < deg
            p = start + d
            j = tl.load(col_ptr + p, mask=emask, other=0).to(tl.int64)
            s = tl.load(asrc_ptr + j * K + k, mask=emask, other=0.0).to(ACC) + ad
            s = tl.where(s > 0, s, s * negative_slope)
            tl.store(attn_ptr + p * K + k, (tl.exp(s - m_safe) * inv).to(attn_ptr.dtype.element_ty), mask=emask)

    @triton.jit
    def _attention_bwd_edge_kernel(
        rowptr_ptr,  # (N_dst + 1,) target-sorted CSR row pointer
        col_ptr,  # (E,) source of each sorted edge
        x_ptr,  # (N_src, K, F) source features
        asrc_ptr,  # (N_src, K) source logits
        adst_ptr,  # (N_dst, K) target logits
        w_ptr,  # (E,) / (E, K) weights, not read when W_MODE == 0
        attn_ptr,  # (E, K) forward attention coefficients
        gout_ptr,  # (N_dst, K, F) gradient w.r.t. the output
        ds_ptr,  # (E, K) accumulator dtype: scratch for <grad_out, x>, then grad of the scores
        gw_ptr,  # (E, K) accumulator-dtype grad of the weight per head; written when W_MODE != 0
        gadst_ptr,  # (N_dst, K) grad of score_dst
        n_dst,  # N_dst
        negative_slope,  # leaky_relu slope
        K: tl.constexpr,  # heads
        F: tl.constexpr,  # features per head
        W_MODE: tl.constexpr,  # 0: none, 1: (E,), 2: (E, K)
        ACC: tl.constexpr,  # accumulator dtype: tl.float64 for float64 inputs, else tl.float32
        BLOCK_R: tl.constexpr,  # target rows per program
        BLOCK_F: tl.constexpr,  # feature chunk for the dot products
    ):
        pid_r = tl.program_id(0)
        k = tl.program_id(1)
        rows, rmask, start, deg = csr_row_block(rowptr_ptr, n_dst, pid_r, BLOCK_R)
        max_deg = tl.max(deg, axis=0)
        ad = tl.load(adst_ptr + rows * K + k, mask=rmask, other=0.0).to(ACC)
        dsum = tl.zeros((BLOCK_R,), dtype=ACC)
        f1 = tl.arange(0, BLOCK_F)
        f1mask = f1 < F
        if F <= BLOCK_F:
            g1 = tl.load(
                gout_ptr + (rows * K + k)[:, None] * F + f1[None, :], mask=rmask[:, None] & f1mask[None, :], other=0.0
            ).to(ACC)
        # pass 1: dot = <grad_out[i], x[j]>, D = sum attn * w * dot
        for d in range(0, max_deg):
            emask = d < deg
            p = start + d
            j = tl.load(col_ptr + p, mask=emask, other=0).to(tl.int64)
            if F <= BLOCK_F:  # one feature chunk: the grad_out tile was loaded once, above
                xv = tl.load(
                    x_ptr + (j * K + k)[:, None] * F + f1[None, :], mask=emask[:, None] & f1mask[None, :], other=0.0
                ).to(ACC)
                dot = tl.sum(g1 * xv, axis=1)
            else:
                dot = tl.zeros((BLOCK_R,), dtype=ACC)
                for f0 in range(0, F, BLOCK_F):
                    fo = f0 + tl.arange(0, BLOCK_F)
                    m2 = emask[:, None] & (fo < F)[None, :]
                    g = tl.load(gout_ptr + (rows * K + k)[:, None] * F + fo[None, :], mask=m2, other=0.0).to(ACC)
                    xv = tl.load(x_ptr + (j * K + k)[:, None] * F + fo[None, :], mask=m2, other=0.0).to(ACC)
                    dot += tl.sum(g * xv, axis=1)
            a = tl.load(attn_ptr + p * K + k, mask=emask, other=0.0).to(ACC)
            if W_MODE == 1:
                w = tl.load(w_ptr + p, mask=emask, other=0.0).to(ACC)
            elif W_MODE == 2:
                w = tl.load(w_ptr + p * K + k, mask=emask, other=0.0).to(ACC)
            else:
                w = tl.full((BLOCK_R,), 1.0, dtype=ACC)
            dsum += tl.where(emask, a * w * dot, 0.0)
            tl.store(ds_ptr + p * K + k, dot, mask=emask)
        tl.debug_barrier()
        # pass 2: ds = attn * (w * dot - D) * leaky_relu'(s)
        gad = tl.zeros((BLOCK_R,), dtype=ACC)
        for d in range(0, max_deg):
            emask = d < deg
            p = start + d
            j = tl.load(col_ptr + p, mask=emask, other=0).to(tl.int64)
            dot = tl.load(ds_ptr + p * K + k, mask=emask, other=0.0)
            a = tl.load(attn_ptr + p * K + k, mask=emask, other=0.0).to(ACC)
            if W_MODE == 1:
                w = tl.load(w_ptr + p, mask=emask, other=0.0).to(ACC)
                tl.store(gw_ptr + p * K + k, a * dot, mask=emask)
            elif W_MODE == 2:
                w = tl.load(w_ptr + p * K + k, mask=emask, other=0.0).to(ACC)
                tl.store(gw_ptr + p * K + k, a * dot, mask=emask)
            else:
                w = tl.full((BLOCK_R,), 1.0, dtype=ACC)
            s = tl.load(asrc_ptr + j * K + k, mask=emask, other=0.0).to(ACC) + ad
            ds = a * (w * dot - dsum)
            ds = tl.where(s > 0, ds, ds * negative_slope)
            ds = tl.where(emask, ds, 0.0)
            gad += ds
            tl.store(ds_ptr + p * K + k, ds, mask=emask)
        tl.store(gadst_ptr + rows * K + k, gad.to(gadst_ptr.dtype.element_ty), mask=rmask)

    @triton.jit
    def _attention_bwd_src_kernel(
        rowptr_t_ptr,  # (N_src + 1,) source-sorted row pointer
        col_t_ptr,  # (E,) target of each source-sorted edge
        perm_t_ptr,  # (E,) target-sorted position of each source-sorted edge
        w_ptr,  # (E,) / (E, K) weights in target-sorted order, not read when W_MODE == 0
        attn_ptr,  # (E, K) attention coefficients (target-sorted order)
        ds_ptr,  # (E, K) accumulator-dtype grad of the scores (target-sorted order)
        gout_ptr,  # (N_dst, K, F) gradient w.r.t. the output
        gx_ptr,  # (N_src, K, F) grad of x (written)
        gasrc_ptr,  # (N_src, K) grad of score_src (written by feature block 0)
        n_src,  # N_src
        K: tl.constexpr,  # heads
        F: tl.constexpr,  # features per head
        W_MODE: tl.constexpr,  # 0: none, 1: (E,), 2: (E, K)
        ACC: tl.constexpr,  # accumulator dtype: tl.float64 for float64 inputs, else tl.float32
        BLOCK_R: tl.constexpr,  # source rows per program
        BLOCK_F: tl.constexpr,  # features per program (power of two)
    ):
        pid_r = tl.program_id(0)
        k = tl.program_id(1)
        pid_f = tl.program_id(2)
        rows, rmask, start, deg = csr_row_block(rowptr_t_ptr, n_src, pid_r, BLOCK_R)
        fo = pid_f * BLOCK_F + tl.arange(0, BLOCK_F)
        fmask = fo < F
        acc = tl.zeros((BLOCK_R, BLOCK_F), dtype=ACC)
        gas = tl.zeros((BLOCK_R,), dtype=ACC)
        for d in range(0, tl.max(deg, axis=0)):
            emask = d < deg
            q = start + d
            m2 = emask[:, None] & fmask[None, :]
            i = tl.load(col_t_ptr + q, mask=emask, other=0).to(tl.int64)
            p = tl.load(perm_t_ptr + q, mask=emask, other=0).to(tl.int64)
            # The per-edge coefficient is loaded as a 2-D tile broadcast over the feature lanes
            # (same address in every lane, so no extra memory traffic): Triton 3.6 fails to
            # compile this loop for sm_90 when it mixes 1-D masked loads and the 2-D tile
            # ("mask type matches ptr type"). Found by tests/ops/test_triton_aot_compile.py.
            pk = (p * K + k)[:, None] + fo[None, :] * 0
            c = tl.load(attn_ptr + pk, mask=m2, other=0.0).to(ACC)
            if W_MODE == 1:
                c = c * tl.load(w_ptr + p[:, None] + fo[None, :] * 0, mask=m2, other=0.0).to(ACC)
            elif W_MODE == 2:
                c = c * tl.load(w_ptr + pk, mask=m2, other=0.0).to(ACC)
            g = tl.load(gout_ptr + (i * K + k)[:, None] * F + fo[None, :], mask=m2, other=0.0).to(ACC)
            acc += c * g
        tl.store(
            gx_ptr + (rows * K + k)[:, None] * F + fo[None, :],
            acc.to(gx_ptr.dtype.element_ty),
            mask=rmask[:, None] & fmask[None, :],
        )
        # grad of score_src in a loop of its own (feature block 0 only): Triton 3.6 miscompiles
        # (sm_90, RemoveLayoutConversions) a loop that carries this 1-D sum beside the 2-D tile.
        if pid_f == 0:
            for d in range(0, tl.max(deg, axis=0)):
                emask = d < deg
                p = tl.load(perm_t_ptr + start + d, mask=emask, other=0).to(tl.int64)
                gas += tl.load(ds_ptr + p * K + k, mask=emask, other=0.0).to(ACC)
            tl.store(gasrc_ptr + rows * K + k, gas.to(gasrc_ptr.dtype.element_ty), mask=rmask)


def _check_common(
    op: str, rowptr: Tensor, col: Tensor, x: Tensor, score_src: Tensor, score_dst: Tensor, weight: Tensor | None
) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor, Tensor | None, int]:
    col = check_index_tensor(op, col, "col")
    num_edges = col.numel()
    rowptr = check_rowptr(op, rowptr, num_edges)
    n_dst = rowptr.numel() - 1
    x = check_float_tensor(op, x, "x", ("N_src", "K", "F"))
    n_src, heads, _ = x.shape
    score_src = check_float_tensor(op, score_src, "score_src", (n_src, heads))
    score_dst = check_float_tensor(op, score_dst, "score_dst", (n_dst, heads))
    weight, w_mode = check_weight(op, weight, num_edges, heads)
    return rowptr, col, x, score_src, score_dst, weight, w_mode


def attention_forward_csr(
    rowptr: Tensor,
    col: Tensor,
    x: Tensor,
    score_src: Tensor,
    score_dst: Tensor,
    weight: Tensor | None,
    negative_slope: float,
) -> tuple[Tensor, Tensor]:
    """Fused GAT attention aggregation on target-sorted CSR (Triton, deterministic).

    Args:
        rowptr: Target-sorted row pointer, int32 or int64.
        col: Source node of each sorted edge, int32 or int64.
        x: Source features per head.
        score_src: Source attention logits.
        score_dst: Target attention logits.
        weight: ``None``, ``(E,)`` or ``(E, K)`` edge weights (multiply the coefficients after
            the softmax).
        negative_slope: Slope of the leaky ReLU on the scores.

    Returns:
        ``(out, attn)``: the aggregated features (rows without edges give 0) and the softmax
        coefficients, both in ``x``'s dtype (float32 arithmetic; float64 for float64 inputs).

    Shape:
        - rowptr: :math:`(N_{dst} + 1,)`; col: :math:`(E,)`
        - x: :math:`(N_{src}, K, F)`; score_src: :math:`(N_{src}, K)`; score_dst: :math:`(N_{dst}, K)`
        - weight: :math:`(E,)` or :math:`(E, K)`, optional
        - out: :math:`(N_{dst}, K, F)`; attn: :math:`(E, K)`

    Example:
        >>> from graphvision.ops._triton import triton_usable
        >>> rowptr, col = torch.tensor([0, 1, 3]), torch.tensor([1, 0, 1])
        >>> x, a_s, a_d = torch.randn(2, 2, 4), torch.randn(2, 2), torch.randn(2, 2)
        >>> if triton_usable(x.device):
        ...     out, attn = attention_forward_csr(rowptr, col, x, a_s, a_d, None, 0.2)
        ...     print(tuple(out.shape), tuple(attn.shape))
        ... else:
        ...     print((2, 2, 4), (3, 2))
        (2, 2, 4) (3, 2)
    """
    op = "attention_forward_csr"
    check_device(op, rowptr=rowptr, col=col, x=x, score_src=score_src, score_dst=score_dst, weight=weight)
    rowptr, col, x, score_src, score_dst, weight, w_mode = _check_common(
        op, rowptr, col, x, score_src, score_dst, weight
    )
    _, heads, feats = x.shape
    n_dst, num_edges = rowptr.numel() - 1, col.numel()
    dtype = x.dtype
    out = torch.empty(n_dst, heads, feats, device=x.device, dtype=dtype)
    attn = torch.empty(num_edges, heads, device=x.device, dtype=dtype)
    if n_dst == 0 or heads == 0:
        return out, attn
    if num_edges == 0 or feats == 0:
        out.zero_()
        if num_edges == 0:
            return out, attn
        feats_grid = 1  # still launch once to write attn
    else:
        feats_grid = None
    block_f = lane_block(feats, MAX_BLOCK_F)
    grid = (cdiv(n_dst, BLOCK_ROWS), heads, feats_grid or cdiv(feats, block_f))
    _attention_fwd_kernel[grid](
        rowptr,
        col,
        x,
        score_src,
        score_dst,
        weight if weight is not None else dummy(x.device),
        out,
        attn,
        n_dst,
        float(negative_slope),
        K=heads,
        F=feats,
        W_MODE=w_mode,
        BLOCK_R=BLOCK_ROWS,
        BLOCK_F=block_f,
        ACC=acc_type(x.dtype), num_warps=NUM_WARPS,
    )
    return out, attn


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
    """Backward of :func:`attention_forward_csr` (Triton, deterministic: no atomics).

    Args:
        rowptr: Target-sorted row pointer.
        col: Source node of each target-sorted edge.
        rowptr_t: Source-sorted row pointer (the transpose).
        col_t: Target node of each source-sorted edge.
        perm_t: Target-sorted position of each source-sorted edge.
        x: Source features per head.
        score_src: Source attention logits.
        score_dst: Target attention logits.
        weight: ``None``, ``(E,)`` or ``(E, K)`` edge weights (target-sorted order).
        attn: The forward's attention coefficients (target-sorted order).
        grad_out: Gradient w.r.t. the forward output.
        negative_slope: Slope of the leaky ReLU.

    Returns:
        ``(grad_x, grad_score_src, grad_score_dst, grad_weight)``, each in the dtype of its
        input; ``grad_weight`` is ``None`` when ``weight`` is.

    Shape:
        - rowptr: :math:`(N_{dst} + 1,)`; rowptr_t: :math:`(N_{src} + 1,)`
        - col, col_t, perm_t: :math:`(E,)`
        - x, grad_x: :math:`(N_{src}, K, F)`; grad_out: :math:`(N_{dst}, K, F)`
        - score_src, grad_score_src: :math:`(N_{src}, K)`; score_dst, grad_score_dst: :math:`(N_{dst}, K)`
        - weight, grad_weight: :math:`(E,)` or :math:`(E, K)`; attn: :math:`(E, K)`

    Example:
        >>> from graphvision.ops._triton import triton_usable
        >>> rowptr, col = torch.tensor([0, 1, 3]), torch.tensor([1, 0, 1])
        >>> rowptr_t, col_t, perm_t = torch.tensor([0, 1, 3]), torch.tensor([1, 0, 1]), torch.tensor([1, 0, 2])
        >>> x, a_s, a_d = torch.randn(2, 2, 4), torch.randn(2, 2), torch.randn(2, 2)
        >>> if triton_usable(x.device):
        ...     out, attn = attention_forward_csr(rowptr, col, x, a_s, a_d, None, 0.2)
        ...     gx, gs, gd, gw = attention_backward_csr(
        ...         rowptr, col, rowptr_t, col_t, perm_t, x, a_s, a_d, None, attn, torch.ones_like(out), 0.2)
        ...     print(tuple(gx.shape), tuple(gs.shape), gw)
        ... else:
        ...     print((2, 2, 4), (2, 2), None)
        (2, 2, 4) (2, 2) None
    """
    op = "attention_backward_csr"
    check_device(
        op,
        rowptr=rowptr,
        col=col,
        rowptr_t=rowptr_t,
        col_t=col_t,
        perm_t=perm_t,
        x=x,
        score_src=score_src,
        score_dst=score_dst,
        weight=weight,
        attn=attn,
        grad_out=grad_out,
    )
    rowptr, col, x, score_src, score_dst, weight, w_mode = _check_common(
        op, rowptr, col, x, score_src, score_dst, weight
    )
    n_src, heads, feats = x.shape
    n_dst, num_edges = rowptr.numel() - 1, col.numel()
    col_t = check_index_tensor(op, col_t, "col_t", num_edges)
    perm_t = check_index_tensor(op, perm_t, "perm_t", num_edges)
    if rowptr_t.dim() != 1 or rowptr_t.numel() != n_src + 1:
        raise ValueError(
            f"{op}: expected 'rowptr_t' of shape (N_src + 1,) = ({n_src + 1},) (got {tuple(rowptr_t.shape)})"
        )
    rowptr_t = check_rowptr(op, rowptr_t, num_edges, "rowptr_t")
    attn = check_float_tensor(op, attn, "attn", (num_edges, heads))
    grad_out = check_float_tensor(op, grad_out, "grad_out", (n_dst, heads, feats))

    dev = x.device
    grad_x = torch.empty_like(x)
    grad_score_src = torch.empty_like(score_src)
    grad_score_dst = torch.empty_like(score_dst)
    grad_weight = None if weight is None else torch.empty_like(weight)
    if num_edges == 0 or heads == 0:
        for t in (grad_x, grad_score_src, grad_score_dst):
            t.zero_()
        return grad_x, grad_score_src, grad_score_dst, grad_weight
    acc = torch.float64 if x.dtype == torch.float64 else torch.float32
    ds = torch.empty(num_edges, heads, device=dev, dtype=acc)
    gw = torch.empty(num_edges, heads, device=dev, dtype=acc) if weight is not None else None
    w_arg = weight if weight is not None else dummy(dev)
    if n_dst > 0:
        _attention_bwd_edge_kernel[(cdiv(n_dst, BLOCK_ROWS), heads)](
            rowptr,
            col,
            x,
            score_src,
            score_dst,
            w_arg,
            attn,
            grad_out,
            ds,
            gw if gw is not None else ds,
            grad_score_dst,
            n_dst,
            float(negative_slope),
            K=heads,
            F=feats,
            W_MODE=w_mode,
            BLOCK_R=BLOCK_ROWS,
            BLOCK_F=lane_block(feats, BWD_BLOCK_F),
            ACC=acc_type(x.dtype), num_warps=NUM_WARPS,
        )
    if n_src > 0:
        block_f = lane_block(feats, MAX_BLOCK_F)
        _attention_bwd_src_kernel[(cdiv(n_src, BLOCK_ROWS), heads, max(cdiv(feats, block_f), 1))](
            rowptr_t,
            col_t,
            perm_t,
            w_arg,
            attn,
            ds,
            grad_out,
            grad_x,
            grad_score_src,
            n_src,
            K=heads,
            F=feats,
            W_MODE=w_mode,
            BLOCK_R=BLOCK_ROWS,
            BLOCK_F=block_f,
            ACC=acc_type(x.dtype), num_warps=NUM_WARPS,
        )
    if grad_weight is not None:
        assert gw is not None
        grad_weight.copy_(gw.sum(-1) if w_mode == 1 else gw)
    return grad_x, grad_score_src, grad_score_dst, grad_weight
