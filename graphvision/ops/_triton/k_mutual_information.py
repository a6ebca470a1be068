r"""Triton kernel: pairwise joint entropies of soft histograms, for the mutual-information adjacency.

Input ``a`` of shape ``(B, N, bins, C)``: ``a[b, i] = W_i^T``, the soft bin memberships of
node ``i``'s ``C`` samples (each column sums to 1). The joint histogram of nodes ``i, j`` is
``P_ij = a[b, i] @ a[b, j]^T / C`` (``bins x bins``) and the kernel returns
``H[b, i, j] = -sum(P_ij * log P_ij)``. Viewing ``a[b]`` as a ``(N*bins, C)`` matrix ``A``, all
joints are the ``bins x bins`` blocks of ``A @ A^T / C``: one program computes a
``(BLOCK_NODES*bins) x (BLOCK_NODES*bins)`` tile of that product with ``tl.dot`` over ``C``,
applies ``p log p`` in registers and reduces each ``bins x bins`` block to one number, so only
the ``(B, N, N)`` entropies reach memory (the naive einsum stores ``B*N*N*bins*bins`` floats:
25 GB for 8 x 3136 nodes x 16 bins). Only tiles on or above the diagonal run; each writes its
block and the mirrored one, so the output is exactly symmetric.

Equivalent PyTorch code::

    P = torch.einsum("bikc,bjlc->bijkl", a, a) / C
    H = -torch.special.xlogy(P, P).sum((-1, -2))

Compute in float32 (inputs of other dtypes are cast). The ``tl.dot`` precision follows
``torch.get_float32_matmul_precision()``: ``"highest"`` -> IEEE fp32, otherwise TF32 tensor
cores (relative error ~1e-3 on P, ~1e-3 nats on H). Deterministic: fixed summation order.
"""

from __future__ import annotations

import torch
from torch import Tensor

from graphvision.ops._triton import HAS_TRITON
from graphvision.ops._triton._common import cdiv, check_device, check_float_tensor, next_pow2

__all__ = ["joint_entropy", "joint_entropy_backward", "joint_entropy_dense", "joint_entropy_dense_backward", "MAX_BINS"]

# Tuning constants. NOT measured on a GPU (none in the development environment); chosen for an
# H200 from the shapes: a 128 x 128 fp32 accumulator tile (bins=16 -> 8 nodes per side) is 64
# registers per thread at 8 warps; BLOCK_C=32 keeps the two operand tiles at 2 x 16 KB. The
# tile is (BLOCK_ROWS / bins) nodes per side, so 16 bins -> 8 x 8 node pairs per program.
BLOCK_ROWS = 128
BLOCK_C = 32
#: Backward: samples (columns of dA) per program; C <= 64 needs one pass over the column tiles.
BLOCK_D = 64
NUM_WARPS = 8
# Pipelining depth: 3 stages forward, 2 backward (which also stages the 128 x 128 dp operand and
# a 128 x 64 A_j tile). Ahead-of-time compiles for sm_90 (tests/functional/test_mutual_information.py
# ::test_kernels_compile_for_sm90) use 64-96 KB of shared memory for both kernels, fp32 and TF32,
# well under the 228 KB of an H100/H200.
NUM_STAGES = 3
BWD_NUM_STAGES = 2
#: Largest (power-of-two padded) number of bins the kernel supports.
MAX_BINS = BLOCK_ROWS

if HAS_TRITON:
    import triton
    import triton.language as tl

    @triton.jit
    def _joint_entropy_kernel(
        a_ptr,  # (B, N*BINS, C) float32 contiguous: row i*BINS + k holds W_i[:, k]
        out_ptr,  # (B, N, N) float32 contiguous: joint entropies
        n_nodes,  # N
        n_samples,  # C (the reduction length)
        inv_c,  # 1 / C
        BINS: tl.constexpr,  # bins, padded to a power of two (padded rows are zero)
        BLOCK_NODES: tl.constexpr,  # nodes per tile side; BLOCK_NODES * BINS rows per tile side
        BLOCK_C: tl.constexpr,  # samples per dot step
        PRECISION: tl.constexpr,  # tl.dot input precision: "ieee" or "tf32"
    ):
        pid_i = tl.program_id(0)
        pid_j = tl.program_id(1)
        b = tl.program_id(2).to(tl.int64)
        ROWS: tl.constexpr = BLOCK_NODES * BINS
        if pid_j >= pid_i:  # upper triangle of tiles only; the mirror is written below
            n_rows = n_nodes * BINS
            base = a_ptr + b * n_rows * n_samples
            r = tl.arange(0, ROWS)
            rows_i = (pid_i * ROWS + r).to(tl.int64)
            rows_j = (pid_j * ROWS + r).to(tl.int64)
            mask_i = rows_i < n_rows
            mask_j = rows_j < n_rows
            acc = tl.zeros((ROWS, ROWS), dtype=tl.float32)
            for c0 in range(0, n_samples, BLOCK_C):
                cc = c0 + tl.arange(0, BLOCK_C)
                cmask = cc < n_samples
                ai = tl.load(
                    base + rows_i[:, None] * n_samples + cc[None, :], mask=mask_i[:, None] & cmask[None, :], other=0.0
                )
                aj = tl.load(
                    base + rows_j[None, :] * n_samples + cc[:, None], mask=mask_j[None, :] & cmask[:, None], other=0.0
                )
                acc = tl.dot(ai, aj, acc, input_precision=PRECISION)
            p = acc * inv_c
            t = tl.where(p > 0.0, p * tl.log(tl.maximum(p, 1e-30)), 0.0)
            t = tl.reshape(t, (BLOCK_NODES, BINS, BLOCK_NODES, BINS))
            h = -tl.sum(tl.sum(t, axis=3), axis=1)  # (BLOCK_NODES, BLOCK_NODES)
            ni = (pid_i * BLOCK_NODES + tl.arange(0, BLOCK_NODES)).to(tl.int64)
            nj = (pid_j * BLOCK_NODES + tl.arange(0, BLOCK_NODES)).to(tl.int64)
            omask = (ni[:, None] < n_nodes) & (nj[None, :] < n_nodes)
            obase = out_ptr + b * n_nodes * n_nodes
            if pid_j != pid_i:
                tl.store(obase + ni[:, None] * n_nodes + nj[None, :], h, mask=omask)
                tl.store(obase + nj[None, :] * n_nodes + ni[:, None], h, mask=omask)
            else:  # diagonal tile: symmetrise, so the whole output is exactly symmetric
                tl.store(obase + ni[:, None] * n_nodes + nj[None, :], 0.5 * (h + tl.trans(h)), mask=omask)


    @triton.jit
    def _joint_entropy_backward_kernel(
        a_ptr,  # (B, N*BINS, C) float32 contiguous memberships (as in the forward)
        g_ptr,  # (B, N, N) float32 contiguous: grad + grad^T of the joint entropies
        da_ptr,  # (B, N*BINS, C) float32 contiguous output: gradient w.r.t. a
        n_nodes,  # N
        n_samples,  # C
        inv_c,  # 1 / C
        BINS: tl.constexpr,  # padded bins
        BLOCK_NODES: tl.constexpr,  # nodes per tile side
        BLOCK_C: tl.constexpr,  # samples per dot step when recomputing P
        BLOCK_D: tl.constexpr,  # output columns (samples) per program
        PRECISION: tl.constexpr,  # tl.dot input precision
    ):
        # dA_i = (1/C) sum_j G_ij * (-(log P_ij + 1)) @ A_j: one program owns a block of rows of
        # dA (and BLOCK_D of its columns) and loops over all column tiles j, so no atomics.
        pid_i = tl.program_id(0)
        pid_d = tl.program_id(1)
        b = tl.program_id(2).to(tl.int64)
        ROWS: tl.constexpr = BLOCK_NODES * BINS
        n_rows = n_nodes * BINS
        base = a_ptr + b * n_rows * n_samples
        gbase = g_ptr + b * n_nodes * n_nodes
        r = tl.arange(0, ROWS)
        rows_i = (pid_i * ROWS + r).to(tl.int64)
        mask_i = rows_i < n_rows
        dd = pid_d * BLOCK_D + tl.arange(0, BLOCK_D)
        dmask = dd < n_samples
        acc = tl.zeros((ROWS, BLOCK_D), dtype=tl.float32)
        for pid_j in range(0, tl.cdiv(n_nodes, BLOCK_NODES)):
            rows_j = (pid_j * ROWS + r).to(tl.int64)
            mask_j = rows_j < n_rows
            p = tl.zeros((ROWS, ROWS), dtype=tl.float32)
            for c0 in range(0, n_samples, BLOCK_C):
                cc = c0 + tl.arange(0, BLOCK_C)
                cmask = cc < n_samples
                ai = tl.load(
                    base + rows_i[:, None] * n_samples + cc[None, :], mask=mask_i[:, None] & cmask[None, :], other=0.0
                )
                aj = tl.load(
                    base + rows_j[None, :] * n_samples + cc[:, None], mask=mask_j[None, :] & cmask[:, None], other=0.0
                )
                p = tl.dot(ai, aj, p, input_precision=PRECISION)
            p = p * inv_c
            # g[i // BINS, j // BINS] broadcast over the bins x bins block (repeated loads hit cache)
            gij = tl.load(
                gbase + (rows_i // BINS)[:, None] * n_nodes + (rows_j // BINS)[None, :],
                mask=mask_i[:, None] & mask_j[None, :],
                other=0.0,
            )
            dp = -(tl.log(tl.maximum(p, 1.1754944e-38)) + 1.0) * gij
            aj_d = tl.load(
                base + rows_j[:, None] * n_samples + dd[None, :], mask=mask_j[:, None] & dmask[None, :], other=0.0
            )
            acc = tl.dot(dp, aj_d, acc, input_precision=PRECISION)
        tl.store(
            da_ptr + b * n_rows * n_samples + rows_i[:, None] * n_samples + dd[None, :],
            acc * inv_c,
            mask=mask_i[:, None] & dmask[None, :],
        )


def _precision() -> str:
    return "ieee" if torch.get_float32_matmul_precision() == "highest" else "tf32"


def _prepare(a: Tensor) -> tuple[Tensor, int, int]:
    """Float32, bins padded to a power of two, contiguous; and the tile sizes."""
    bsz, n, bins, c = a.shape
    bins_p2 = next_pow2(bins)
    a32 = a.to(torch.float32)
    if bins_p2 != bins:
        a32 = torch.nn.functional.pad(a32, (0, 0, 0, bins_p2 - bins))
    a32 = a32.contiguous()
    block_nodes = max(1, BLOCK_ROWS // bins_p2)
    if n * bins_p2 < BLOCK_ROWS:  # small graphs: shrink the tile (tl.dot needs >= 16 rows)
        block_nodes = max(next_pow2(cdiv(16, bins_p2)), min(block_nodes, next_pow2(n)))
    block_c = max(16, min(BLOCK_C, next_pow2(c)))
    return a32, block_nodes, block_c


def _check(op: str, a: Tensor) -> tuple[torch.device, Tensor]:
    if not HAS_TRITON:
        raise RuntimeError(f"{op}: Triton is not available")
    device = check_device(op, a=a)
    a = check_float_tensor(op, a, "a", ("B", "N", "bins", "C"))
    if next_pow2(a.shape[2]) > MAX_BINS:
        raise ValueError(f"{op}: expected bins <= {MAX_BINS} (got {a.shape[2]})")
    if a.shape[3] < 1:
        raise ValueError(f"{op}: expected at least one sample, C >= 1 (got {tuple(a.shape)})")
    return device, a


def joint_entropy(a: Tensor) -> Tensor:
    """Pairwise joint entropies ``(B, N, N)`` (float32) of the soft histograms in ``a``.

    Args:
        a: ``(B, N, bins, C)`` memberships; ``bins <= MAX_BINS``. Cast to contiguous float32.

    Returns:
        ``H[b, i, j] = -sum(P log P)`` with ``P = a[b, i] @ a[b, j].T / C``; exactly symmetric.

    Shape:
        - a: :math:`(B, N, \\text{bins}, C)`
        - output: :math:`(B, N, N)`

    Example:
        >>> a = torch.softmax(torch.randn(1, 3, 4, 8), dim=2)  # W_i^T of 3 nodes: 4 bins, 8 samples
        >>> joint_entropy(a.cuda()).shape  # doctest: +SKIP
        torch.Size([1, 3, 3])
    """
    device, a = _check("joint_entropy", a)
    bsz, n, bins, c = a.shape
    bins_p2 = next_pow2(bins)
    out = torch.empty(bsz, n, n, device=device, dtype=torch.float32)
    if bsz == 0 or n == 0:
        return out
    a32, block_nodes, block_c = _prepare(a)
    tiles = cdiv(n, block_nodes)
    grid = (tiles, tiles, bsz)
    _joint_entropy_kernel[grid](
        a32,
        out,
        n,
        c,
        1.0 / c,
        BINS=bins_p2,
        BLOCK_NODES=block_nodes,
        BLOCK_C=block_c,
        PRECISION=_precision(),
        num_warps=NUM_WARPS,
        num_stages=NUM_STAGES,
    )
    return out


def joint_entropy_backward(a: Tensor, grad: Tensor) -> Tensor:
    """Gradient of ``sum(grad * joint_entropy(a))`` w.r.t. ``a``, recomputing the joints on chip.

    With ``G = grad + grad^T`` (``H`` is symmetric in its two nodes) and ``dH/dP = -(log P + 1)``:
    ``da[b, i] = (1/C) sum_j G[b, i, j] * (-(log P_ij + 1)) @ a[b, j]``. One program per block of
    rows of ``da`` (and up to ``BLOCK_D`` samples) loops over all column tiles: no atomics,
    deterministic; it recomputes ``P`` (``2 x`` the forward's matmul work over the full square).

    Args:
        a: ``(B, N, bins, C)`` memberships, as given to :func:`joint_entropy`.
        grad: ``(B, N, N)`` gradient of the joint entropies.

    Returns:
        ``(B, N, bins, C)`` float32 gradient.

    Shape:
        - a: :math:`(B, N, \\text{bins}, C)`; grad: :math:`(B, N, N)`
        - output: like ``a``

    Example:
        >>> a = torch.softmax(torch.randn(1, 3, 4, 8), dim=2)
        >>> joint_entropy_backward(a.cuda(), torch.ones(1, 3, 3).cuda()).shape  # doctest: +SKIP
        torch.Size([1, 3, 4, 8])
    """
    device, a = _check("joint_entropy_backward", a)
    bsz, n, bins, c = a.shape
    grad = check_float_tensor("joint_entropy_backward", grad, "grad", (bsz, n, n))
    if grad.device != device:
        raise ValueError(f"joint_entropy_backward: expected 'grad' on {device} (got {grad.device})")
    if bsz == 0 or n == 0:
        return torch.zeros(bsz, n, bins, c, device=device, dtype=torch.float32)
    a32, block_nodes, block_c = _prepare(a)
    bins_p2 = a32.shape[2]
    g = (grad + grad.transpose(1, 2)).to(torch.float32).contiguous()
    da = torch.empty_like(a32)
    block_d = max(16, min(BLOCK_D, next_pow2(c)))
    grid = (cdiv(n, block_nodes), cdiv(c, block_d), bsz)
    _joint_entropy_backward_kernel[grid](
        a32,
        g,
        da,
        n,
        c,
        1.0 / c,
        BINS=bins_p2,
        BLOCK_NODES=block_nodes,
        BLOCK_C=block_c,
        BLOCK_D=block_d,
        PRECISION=_precision(),
        num_warps=NUM_WARPS,
        num_stages=BWD_NUM_STAGES,
    )
    return da[:, :, :bins]


def joint_entropy_dense(a: Tensor, chunk: int) -> Tensor:
    """Contract :func:`graphvision.ops._torch.joint_entropy_dense` (``chunk`` unused: the kernel tiles itself)."""
    return joint_entropy(a).to(a.dtype)


def joint_entropy_dense_backward(a: Tensor, grad: Tensor, chunk: int) -> Tensor:
    """Contract :func:`graphvision.ops._torch.joint_entropy_dense_backward` (``chunk`` unused)."""
    return joint_entropy_backward(a, grad).to(a.dtype)
