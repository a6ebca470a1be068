"""Shared pieces of the Triton kernel tests: graph drawing, CSR building and plain references.

The references here are written independently of graphvision (plain per-edge torch ops with
autograd, in float64), so the kernels are checked against something that cannot share their
bugs. Graph sizes stay tiny because the tests run the kernels in Triton's CPU interpreter.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
import torch
import torch.nn.functional as F
from hypothesis import strategies as st
from torch import Tensor

from graphvision.ops._triton import triton_usable

DEVICE = torch.device("cuda" if torch.cuda.is_available() else "cpu")

requires_triton = pytest.mark.skipif(
    not triton_usable(DEVICE), reason="Triton cannot run here (not installed, or no GPU and no TRITON_INTERPRET=1)"
)

FLOAT_DTYPES = [torch.float32, torch.float64, torch.float16, torch.bfloat16]


def examples(n: int) -> int:
    """Hypothesis example count, capped by ``GRAPHVISION_TRITON_MAX_EXAMPLES`` when set.

    On a GPU every new shape/dtype combination compiles a kernel (~1 s each), so
    benchmarks/run_gpu.sh caps the count to stay within its time budget.
    """
    cap = os.environ.get("GRAPHVISION_TRITON_MAX_EXAMPLES")
    return min(n, int(cap)) if cap else n


@dataclass
class Csr:
    """A graph in the canonical target-sorted form of DEVELOPING.md (plus the unsorted edges)."""

    n_src: int
    n_dst: int
    src: Tensor  # (E,) original order
    dst: Tensor  # (E,) original order
    rowptr: Tensor
    col: Tensor
    perm: Tensor  # sorted position p holds original edge perm[p]
    row: Tensor  # target of each sorted edge
    rowptr_t: Tensor
    col_t: Tensor
    perm_t: Tensor  # source-sorted position q holds target-sorted position perm_t[q]

    @property
    def num_edges(self) -> int:
        return int(self.col.numel())

    def index(self, dtype: torch.dtype) -> Csr:
        """The same graph with every index tensor in ``dtype`` (int32 / int64)."""
        conv = {f: getattr(self, f).to(dtype) for f in ("rowptr", "col", "rowptr_t", "col_t", "perm_t")}
        return Csr(self.n_src, self.n_dst, self.src, self.dst, perm=self.perm, row=self.row, **conv)


def build_csr(src: Tensor, dst: Tensor, n_src: int, n_dst: int, device: torch.device = DEVICE) -> Csr:
    """Target-sorted CSR (stable, duplicates keep their order) and its transpose."""
    src, dst = src.long().to(device), dst.long().to(device)
    perm = torch.argsort(dst, stable=True)
    col, row = src[perm], dst[perm]
    rowptr = torch.zeros(n_dst + 1, dtype=torch.long, device=device)
    rowptr[1:] = torch.bincount(row, minlength=n_dst).cumsum(0)
    perm_t = torch.argsort(col, stable=True)
    col_t = row[perm_t]
    rowptr_t = torch.zeros(n_src + 1, dtype=torch.long, device=device)
    rowptr_t[1:] = torch.bincount(col, minlength=n_src).cumsum(0)
    return Csr(n_src, n_dst, src, dst, rowptr, col, perm, row, rowptr_t, col_t, perm_t)


@st.composite
def csr_graphs(draw: st.DrawFn, max_nodes: int = 24, max_edges: int = 64, bipartite: bool = True) -> Csr:
    """Small graphs with the awkward cases: empty, isolated nodes, duplicates, self-loops, a hub.

    ``kind``: ``random`` edges (duplicates and self-loops happen), a ``hub`` target receiving
    most edges (one huge-degree row), or a ``regular`` k-in-degree graph (image-graph-like).
    """
    n_dst = draw(st.integers(0, max_nodes))
    n_src = draw(st.integers(1, max_nodes)) if bipartite else max(n_dst, 1)
    if not bipartite:
        n_dst = n_src
    seed = draw(st.integers(0, 2**16))
    g = torch.Generator().manual_seed(seed)
    kind = draw(st.sampled_from(["random", "hub", "regular"]))
    if n_dst == 0:
        e = 0
    else:
        e = draw(st.integers(0, max_edges))
    if e == 0:
        src = torch.zeros(0, dtype=torch.long)
        dst = torch.zeros(0, dtype=torch.long)
    elif kind == "random":
        src = torch.randint(0, n_src, (e,), generator=g)
        dst = torch.randint(0, n_dst, (e,), generator=g)
        if e > 1:  # force at least one duplicate edge
            src[-1], dst[-1] = src[0], dst[0]
    elif kind == "hub":
        src = torch.randint(0, n_src, (e,), generator=g)
        dst = torch.where(torch.rand(e, generator=g) < 0.8, 0, torch.randint(0, n_dst, (e,), generator=g))
    else:
        deg = max(1, e // max(n_dst, 1))
        dst = torch.arange(n_dst).repeat_interleave(deg)
        src = torch.randint(0, n_src, (dst.numel(),), generator=g)
        shuffle = torch.randperm(dst.numel(), generator=g)
        src, dst = src[shuffle], dst[shuffle]
    return build_csr(src, dst, n_src, n_dst)


def randn(*shape: int, dtype: torch.dtype, seed: int, device: torch.device = DEVICE, noncontig: bool = False) -> Tensor:
    """Standard normal values in ``dtype``; ``noncontig`` gives a strided (non-contiguous) view."""
    g = torch.Generator().manual_seed(seed)
    if noncontig and len(shape) > 0 and shape[-1] > 1:
        big = torch.randn(*shape[:-1], 2 * shape[-1], generator=g, dtype=torch.float64).to(dtype).to(device)
        return big[..., ::2]
    return torch.randn(*shape, generator=g, dtype=torch.float64).to(dtype).to(device)


# ----------------------------------------------------------------------------- references
def ref_spmm(g: Csr, weight: Tensor | None, x: Tensor) -> Tensor:
    msg = x[g.col]
    if weight is not None:
        msg = msg * (weight[:, None, None] if weight.dim() == 1 else weight[:, :, None])
    return msg.new_zeros(g.n_dst, x.size(1), x.size(2)).index_add(0, g.row, msg)


def ref_sddmm(g: Csr, a: Tensor, b: Tensor) -> Tensor:
    return (a[g.row] * b[g.col]).sum(-1)


def ref_segment_softmax(rowptr: Tensor, row: Tensor, scores: Tensor) -> Tensor:
    """Plain loop over rows (the oracle); scores ``(E, K)``."""
    out = torch.empty_like(scores)
    for i in range(rowptr.numel() - 1):
        lo, hi = int(rowptr[i]), int(rowptr[i + 1])
        if hi > lo:
            out[lo:hi] = torch.softmax(scores[lo:hi], dim=0)
    return out


def ref_attention(g: Csr, x: Tensor, a_src: Tensor, a_dst: Tensor, weight: Tensor | None, slope: float):
    e = F.leaky_relu(a_src[g.col] + a_dst[g.row], slope)
    attn = ref_segment_softmax(g.rowptr, g.row, e)
    c = attn
    if weight is not None:
        c = c * (weight[:, None] if weight.dim() == 1 else weight)
    out = x.new_zeros(g.n_dst, x.size(1), x.size(2)).index_add(0, g.row, c[..., None] * x[g.col])
    return out, attn


def ref_attention_backward(g: Csr, x: Tensor, a_src: Tensor, a_dst: Tensor, weight: Tensor | None, attn: Tensor,
                           grad: Tensor, slope: float) -> list[Tensor | None]:
    """Gradients of the attention aggregation *given* the saved coefficients ``attn``.

    The analytic formulas (softmax and leaky-ReLU backward written out), evaluated in the inputs'
    dtype: with float64 inputs and a low-precision kernel's own rounded ``attn`` this checks the
    backward kernel's arithmetic without charging it for the rounding of ``attn`` itself (which the
    forward test checks). For float32/float64 the tests use autograd through :func:`ref_attention`.
    """
    k = x.size(1)
    w = torch.ones_like(attn) if weight is None else (weight[:, None].expand_as(attn) if weight.dim() == 1 else weight)
    dot = (grad[g.row] * x[g.col]).sum(-1)  # (E, K)
    d_attn = w * dot
    row_sum = attn.new_zeros(g.n_dst, k).index_add(0, g.row, attn * d_attn)
    ds = attn * (d_attn - row_sum[g.row])
    ds = torch.where(a_src[g.col] + a_dst[g.row] > 0, ds, ds * slope)
    grad_x = x.new_zeros(x.shape).index_add(0, g.col, (attn * w)[..., None] * grad[g.row])
    grad_as = a_src.new_zeros(a_src.shape).index_add(0, g.col, ds)
    grad_ad = a_dst.new_zeros(a_dst.shape).index_add(0, g.row, ds)
    grad_w = None
    if weight is not None:
        grad_w = attn * dot
        grad_w = grad_w.sum(-1) if weight.dim() == 1 else grad_w
    return [grad_x, grad_as, grad_ad, grad_w]


def ref_attention_pool(ptr: Tensor, x: Tensor, gate: Tensor) -> tuple[Tensor, Tensor]:
    b = ptr.numel() - 1
    batch = torch.repeat_interleave(torch.arange(b, device=x.device), ptr.diff().long())
    w = ref_segment_softmax(ptr, batch, gate)
    out = x.new_zeros(b, gate.size(1), x.size(1)).index_add(0, batch, w[:, :, None] * x[:, None, :])
    return out, w


def f64(t: Tensor | None, grad: bool = True) -> Tensor | None:
    """A float64 leaf copy of ``t`` (requires grad) for the reference."""
    if t is None:
        return None
    return t.detach().to(torch.float64).requires_grad_(grad)


@contextlib.contextmanager
def block_sizes(small: bool) -> Iterator[None]:
    """Shrink the kernels' block sizes (``small``) so tiny graphs exercise many row/feature blocks."""
    from graphvision.ops._triton import (
        k_attention,
        k_attention_pool,
        k_sddmm,
        k_segment_reduce,
        k_segment_softmax,
        k_spmm,
    )

    patches: dict[tuple[object, str], object] = {
        (k_spmm, "BLOCK_ROWS"): 4,
        (k_spmm, "MAX_BLOCK_F"): 4,
        (k_sddmm, "BLOCK_ROWS"): 4,
        (k_sddmm, "MAX_BLOCK_F"): 4,
        (k_segment_reduce, "BLOCK_ROWS"): 4,
        (k_segment_reduce, "MAX_BLOCK_F"): 4,
        (k_segment_softmax, "BLOCK_ROWS"): 4,
        (k_attention, "BLOCK_ROWS"): 4,
        (k_attention, "MAX_BLOCK_F"): 4,
        (k_attention, "BWD_BLOCK_F"): 4,
        (k_attention_pool, "BLOCK_NODES"): 4,
        (k_attention_pool, "MAX_BLOCK_F"): 4,
        (k_attention_pool, "NODES_PER_SPLIT"): 2,  # several node chunks per graph (the split path)
    }
    if not small:
        yield
        return
    if DEVICE.type != "cuda":
        # Tiles narrower than graphvision.ops._triton._common.MIN_LANES do not compile on sm_90
        # (Triton 3.6), so the launchers never use them on a GPU; in the interpreter they let tiny
        # feature widths exercise the several-feature-block paths (pid_f > 0) that C=256 takes.
        from graphvision.ops._triton._common import next_pow2

        def narrow(n: int, max_block: int, min_block: int = 1) -> int:
            return max(min_block, min(next_pow2(n), max_block))

        for mod in (k_spmm, k_sddmm, k_segment_reduce, k_attention, k_attention_pool):
            if hasattr(mod, "lane_block"):
                patches[(mod, "lane_block")] = narrow
    old = {key: getattr(*key) for key in patches}
    try:
        for (mod, name), value in patches.items():
            setattr(mod, name, value)
        yield
    finally:
        for (mod, name), value in old.items():
            setattr(mod, name, value)
