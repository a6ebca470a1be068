"""Triton gated attention pooling for graphs stored contiguously (``ptr`` offsets).

``weights[n, k] = softmax of gate[:, k] over the nodes of n's graph`` and
``out[b, k] = sum_{n in graph b} weights[n, k] * x[n]``.

One program per (graph ``b``, head ``k``, block of ``BLOCK_F`` features) walks the graph's
nodes in tiles of ``BLOCK_N`` with an online softmax (running max and sum, float32), so the
``(N, K, F)`` weighted-feature tensor is never formed; the first feature block then writes the
``(N, K)`` weights. No atomics: **deterministic**.

Equivalent PyTorch code (``batch`` = the graph of each node)::

    weights = torch_geometric.utils.softmax(gate, batch, num_nodes=B)
    out = x.new_zeros(B, K, F).index_add_(0, batch, weights[:, :, None] * x[:, None, :])
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
    check_rowptr,
    next_pow2,
)

__all__ = ["attention_pool_ptr"]

# Tuning constants (not measured: no GPU in the development environment; chosen for an H200).
# A 64-node x 64-feature tile is 16 fp32 values per thread at 4 warps. Parallelism is
# B x K x ceil(F / 64) programs: for small batches (B=16, K=1, F=64: 16 programs) the kernel is
# latency-bound on a 132-SM GPU; a split-over-nodes variant would help there (not done).
BLOCK_NODES = 64
MAX_BLOCK_F = 64
NUM_WARPS = 4

if HAS_TRITON:
    import triton
    import triton.language as tl

    @triton.jit
    def _attention_pool_kernel(
        ptr_ptr,  # (B + 1,) node offsets of each graph
        x_ptr,  # (N, F) node features
        gate_ptr,  # (N, K) gate scores
        out_ptr,  # (B, K, F) pooled output
        w_ptr,  # (N, K) softmax weights (written by feature block 0)
        K: tl.constexpr,  # heads
        F: tl.constexpr,  # features
        ACC: tl.constexpr,  # accumulator dtype: tl.float64 for float64 inputs, else tl.float32
        BLOCK_N: tl.constexpr,  # nodes per tile
        BLOCK_F: tl.constexpr,  # features per program (power of two)
    ):
        b = tl.program_id(0)
        k = tl.program_id(1)
        pid_f = tl.program_id(2)
        start = tl.load(ptr_ptr + b).to(tl.int64)
        end = tl.load(ptr_ptr + b + 1).to(tl.int64)
        fo = pid_f * BLOCK_F + tl.arange(0, BLOCK_F)
        fmask = fo < F
        m = tl.max(tl.full((BLOCK_N,), float("-inf"), dtype=ACC), axis=0)
        l = tl.sum(tl.zeros((BLOCK_N,), dtype=ACC), axis=0)
        acc = tl.zeros((BLOCK_F,), dtype=ACC)
        for n0 in range(start, end, BLOCK_N):
            n = n0 + tl.arange(0, BLOCK_N)
            nmask = n < end
            g = tl.load(gate_ptr + n * K + k, mask=nmask, other=float("-inf")).to(ACC)
            m_new = tl.maximum(m, tl.max(g, axis=0))
            m_safe = tl.where(m_new == float("-inf"), 0.0, m_new)
            scale = tl.exp(m - m_safe)
            pe = tl.where(nmask, tl.exp(g - m_safe), 0.0)
            l = l * scale + tl.sum(pe, axis=0)
            xv = tl.load(x_ptr + n[:, None] * F + fo[None, :], mask=nmask[:, None] & fmask[None, :], other=0.0)
            acc = acc * scale + tl.sum(pe[:, None] * xv.to(ACC), axis=0)
            m = m_new
        inv = 1.0 / tl.where(l == 0, 1.0, l)
        tl.store(out_ptr + (b * K + k) * F + fo, (acc * inv).to(out_ptr.dtype.element_ty), mask=fmask)
        m_safe = tl.where(m == float("-inf"), 0.0, m)
        end_w = tl.where(pid_f == 0, end, start)  # only the first feature block writes the weights
        for n0 in range(start, end_w, BLOCK_N):
            n = n0 + tl.arange(0, BLOCK_N)
            nmask = n < end
            g = tl.load(gate_ptr + n * K + k, mask=nmask, other=0.0).to(ACC)
            tl.store(w_ptr + n * K + k, (tl.exp(g - m_safe) * inv).to(w_ptr.dtype.element_ty), mask=nmask)


def attention_pool_ptr(ptr: Tensor, x: Tensor, gate: Tensor) -> tuple[Tensor, Tensor]:
    """Softmax-gated sum of node features per graph, graphs stored contiguously (Triton).

    Args:
        ptr: Node offsets of each graph (``ptr[b]:ptr[b+1]`` are graph ``b``'s nodes), int32
            or int64.
        x: Node features.
        gate: Gate scores per node and head; a 1-D gate is treated as one head.

    Returns:
        ``(out, weights)``: ``out`` in ``x``'s dtype (empty graphs give 0) and the softmax
        weights in ``gate``'s dtype (float32 arithmetic; float64 for float64 inputs).

    Shape:
        - ptr: :math:`(B + 1,)`
        - x: :math:`(N, F)`
        - gate: :math:`(N, K)` (or :math:`(N,)`, then :math:`K = 1`)
        - out: :math:`(B, K, F)`; weights: :math:`(N, K)`

    Example:
        >>> from graphvision.ops._triton import triton_usable
        >>> ptr, x, gate = torch.tensor([0, 2, 5]), torch.randn(5, 3), torch.randn(5, 2)
        >>> if triton_usable(x.device):
        ...     out, w = attention_pool_ptr(ptr, x, gate)
        ...     print(tuple(out.shape), tuple(w.shape))
        ... else:
        ...     print((2, 2, 3), (5, 2))
        (2, 2, 3) (5, 2)
    """
    op = "attention_pool_ptr"
    check_device(op, ptr=ptr, x=x, gate=gate)
    x = check_float_tensor(op, x, "x", ("N", "F"))
    n, feats = x.shape
    if gate.dim() == 1:
        gate = gate.unsqueeze(-1)
    gate = check_float_tensor(op, gate, "gate", (n, "K"))
    heads = gate.size(1)
    ptr = check_rowptr(op, ptr, n, "ptr")
    num_graphs = ptr.numel() - 1
    out = torch.empty(num_graphs, heads, feats, device=x.device, dtype=x.dtype)
    weights = torch.empty(n, heads, device=x.device, dtype=gate.dtype)
    if num_graphs == 0 or heads == 0:
        return out, weights
    if n == 0:
        return out.zero_(), weights
    block_f = lane_block(feats, MAX_BLOCK_F)
    grid = (num_graphs, heads, max(cdiv(feats, block_f), 1))
    _attention_pool_kernel[grid](
        ptr, x, gate, out, weights, K=heads, F=feats, BLOCK_N=BLOCK_NODES, BLOCK_F=block_f,
        ACC=acc_type(x.dtype), num_warps=NUM_WARPS,
    )
    return out, weights
