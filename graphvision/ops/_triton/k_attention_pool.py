"""Triton gated attention pooling for graphs stored contiguously (``ptr`` offsets).

``weights[n, k] = softmax of gate[:, k] over the nodes of n's graph`` and
``out[b, k] = sum_{n in graph b} weights[n, k] * x[n]``.

One program per (graph ``b``, head ``k``, block of ``BLOCK_F`` features) walks the graph's
nodes in tiles of ``BLOCK_N`` with an online softmax (running max and sum, float32), so the
``(N, K, F)`` weighted-feature tensor is never formed; the first feature block then writes the
``(N, K)`` weights. Large graphs (more than ``NODES_PER_SPLIT`` nodes per graph on average)
are split into ``S`` node chunks instead: one program per (chunk, head, feature block) computes
a partial (max, sum, weighted sum), a combine kernel merges the ``S`` partials of each graph in
a fixed order, and a third pass writes the weights. No atomics in either path:
**deterministic**.

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
)

__all__ = ["attention_pool_ptr"]

# Tuning constants (not measured: no GPU in the development environment; chosen for an H200).
# A 64-node x 64-feature tile is 16 fp32 values per thread at 4 warps. One program per graph
# gives only B x K x ceil(F / 64) programs: the H200 run (B=64 56x56, C=64: 64 programs) took
# 0.26 ms where a dense reshape+bmm took 0.03 ms. So each graph is split into S node chunks of
# at least NODES_PER_SPLIT nodes (S <= MAX_SPLITS, S = 1 for small graphs): a partial pass
# (online softmax per chunk), a combine pass over the S partials in a fixed order
# (deterministic) and a weights pass. Re-tune with benchmarks/tune_triton.py.
BLOCK_NODES = 64
MAX_BLOCK_F = 64
NUM_WARPS = 4
NODES_PER_SPLIT = 256
MAX_SPLITS = 64

if HAS_TRITON:
    import triton
    import triton.language as tl

    from graphvision.ops._triton import _jit

    online_softmax_pool = triton.jit(_jit.online_softmax_pool)

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
        m, l, acc = online_softmax_pool(x_ptr, gate_ptr, start, end, k, fo, fmask, K, F, ACC, BLOCK_N)
        inv = 1.0 / tl.where(l == 0, 1.0, l)
        tl.store(out_ptr + (b * K + k) * F + fo, (acc * inv).to(out_ptr.dtype.element_ty), mask=fmask)
        m_safe = tl.where(m == float("-inf"), 0.0, m)
        end_w = tl.where(pid_f == 0, end, start)  # only the first feature block writes the weights
        for n0 in range(start, end_w, BLOCK_N):
            n = n0 + tl.arange(0, BLOCK_N)
            nmask = n < end
            g = tl.load(gate_ptr + n * K + k, mask=nmask, other=0.0).to(ACC)
            tl.store(w_ptr + n * K + k, (tl.exp(g - m_safe) * inv).to(w_ptr.dtype.element_ty), mask=nmask)


    @triton.jit
    def _attention_pool_partial_kernel(
        ptr_ptr,  # (B + 1,) node offsets of each graph
        x_ptr,  # (N, F) node features
        gate_ptr,  # (N, K) gate scores
        pm_ptr,  # (B, K, S) partial running max (written by feature block 0)
        pl_ptr,  # (B, K, S) partial sum of exp (written by feature block 0)
        pacc_ptr,  # (B, K, S, F) partial weighted sums (accumulator dtype)
        S,  # node chunks per graph
        K: tl.constexpr,  # heads
        F: tl.constexpr,  # features
        ACC: tl.constexpr,  # accumulator dtype: tl.float64 for float64 inputs, else tl.float32
        BLOCK_N: tl.constexpr,  # nodes per tile
        BLOCK_F: tl.constexpr,  # features per program (power of two)
    ):
        pid = tl.program_id(0)
        k = tl.program_id(1)
        pid_f = tl.program_id(2)
        b = pid // S
        c = pid % S
        start = tl.load(ptr_ptr + b).to(tl.int64)
        end = tl.load(ptr_ptr + b + 1).to(tl.int64)
        chunk = (end - start + S - 1) // S
        lo = tl.minimum(start + c * chunk, end)
        hi = tl.minimum(lo + chunk, end)
        fo = pid_f * BLOCK_F + tl.arange(0, BLOCK_F)
        fmask = fo < F
        m, l, acc = online_softmax_pool(x_ptr, gate_ptr, lo, hi, k, fo, fmask, K, F, ACC, BLOCK_N)
        part = (b * K + k) * S + c
        tl.store(pacc_ptr + part * F + fo, acc, mask=fmask)
        first = fo == 0  # lane 0 of feature block 0 writes the scalars
        tl.store(pm_ptr + part + fo * 0, m + tl.zeros((BLOCK_F,), dtype=ACC), mask=first)
        tl.store(pl_ptr + part + fo * 0, l + tl.zeros((BLOCK_F,), dtype=ACC), mask=first)

    @triton.jit
    def _attention_pool_combine_kernel(
        pm_ptr,  # (B, K, S) partial maxima
        pl_ptr,  # (B, K, S) partial sums
        pacc_ptr,  # (B, K, S, F) partial weighted sums
        out_ptr,  # (B, K, F) output
        stat_ptr,  # (B, K, 2) final max and 1 / sum, for the weights pass (feature block 0)
        S,  # node chunks per graph
        K: tl.constexpr,  # heads
        F: tl.constexpr,  # features
        ACC: tl.constexpr,  # accumulator dtype
        BLOCK_S: tl.constexpr,  # power of two >= S
        BLOCK_F: tl.constexpr,  # features per program (power of two)
    ):
        b = tl.program_id(0)
        k = tl.program_id(1)
        pid_f = tl.program_id(2)
        so = tl.arange(0, BLOCK_S)
        smask = so < S
        base = (b * K + k) * S
        ms = tl.load(pm_ptr + base + so, mask=smask, other=float("-inf"))
        ls = tl.load(pl_ptr + base + so, mask=smask, other=0.0)
        mx = tl.max(ms, axis=0)
        mx_safe = tl.where(mx == float("-inf"), 0.0, mx)
        scale = tl.where(smask, tl.exp(ms - mx_safe), 0.0)
        total = tl.sum(ls * scale, axis=0)
        inv = 1.0 / tl.where(total == 0, 1.0, total)
        fo = pid_f * BLOCK_F + tl.arange(0, BLOCK_F)
        fmask = fo < F
        pacc = tl.load(pacc_ptr + (base + so)[:, None] * F + fo[None, :], mask=smask[:, None] & fmask[None, :],
                       other=0.0)
        res = tl.sum(pacc * scale[:, None], axis=0) * inv
        tl.store(out_ptr + (b * K + k) * F + fo, res.to(out_ptr.dtype.element_ty), mask=fmask)
        two = tl.arange(0, 2)
        tl.store(stat_ptr + (b * K + k) * 2 + two, tl.where(two == 0, mx_safe, inv), mask=two * 0 + pid_f == 0)

    @triton.jit
    def _attention_pool_weights_kernel(
        ptr_ptr,  # (B + 1,) node offsets of each graph
        gate_ptr,  # (N, K) gate scores
        stat_ptr,  # (B, K, 2) final max and 1 / sum
        w_ptr,  # (N, K) softmax weights (written)
        S,  # node chunks per graph
        K: tl.constexpr,  # heads
        ACC: tl.constexpr,  # accumulator dtype
        BLOCK_N: tl.constexpr,  # nodes per tile
    ):
        pid = tl.program_id(0)
        k = tl.program_id(1)
        b = pid // S
        c = pid % S
        start = tl.load(ptr_ptr + b).to(tl.int64)
        end = tl.load(ptr_ptr + b + 1).to(tl.int64)
        chunk = (end - start + S - 1) // S
        lo = tl.minimum(start + c * chunk, end)
        hi = tl.minimum(lo + chunk, end)
        mx = tl.load(stat_ptr + (b * K + k) * 2)
        inv = tl.load(stat_ptr + (b * K + k) * 2 + 1)
        for n0 in range(lo, hi, BLOCK_N):
            n = n0 + tl.arange(0, BLOCK_N)
            nmask = n < hi
            g = tl.load(gate_ptr + n * K + k, mask=nmask, other=0.0).to(ACC)
            tl.store(w_ptr + n * K + k, (tl.exp(g - mx) * inv).to(w_ptr.dtype.element_ty), mask=nmask)


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
    f_blocks = max(cdiv(feats, block_f), 1)
    splits = max(1, min(cdiv(n, num_graphs * NODES_PER_SPLIT), MAX_SPLITS))  # no host sync: n, B known
    acc = acc_type(x.dtype)
    if splits == 1:  # small graphs: one program per (graph, head, feature block)
        _attention_pool_kernel[(num_graphs, heads, f_blocks)](
            ptr, x, gate, out, weights, K=heads, F=feats, BLOCK_N=BLOCK_NODES, BLOCK_F=block_f,
            ACC=acc, num_warps=NUM_WARPS,
        )
        return out, weights
    acc_dtype = torch.float64 if x.dtype == torch.float64 else torch.float32
    part_m = torch.empty(num_graphs, heads, splits, device=x.device, dtype=acc_dtype)
    part_l = torch.empty_like(part_m)
    part_acc = torch.empty(num_graphs, heads, splits, feats, device=x.device, dtype=acc_dtype)
    stat = torch.empty(num_graphs, heads, 2, device=x.device, dtype=acc_dtype)
    _attention_pool_partial_kernel[(num_graphs * splits, heads, f_blocks)](
        ptr, x, gate, part_m, part_l, part_acc, splits, K=heads, F=feats, ACC=acc,
        BLOCK_N=BLOCK_NODES, BLOCK_F=block_f, num_warps=NUM_WARPS,
    )
    _attention_pool_combine_kernel[(num_graphs, heads, f_blocks)](
        part_m, part_l, part_acc, out, stat, splits, K=heads, F=feats, ACC=acc,
        BLOCK_S=lane_block(splits, MAX_SPLITS), BLOCK_F=block_f, num_warps=NUM_WARPS,
    )
    _attention_pool_weights_kernel[(num_graphs * splits, heads)](
        ptr, gate, stat, weights, splits, K=heads, ACC=acc, BLOCK_N=BLOCK_NODES, num_warps=NUM_WARPS,
    )
    return out, weights
