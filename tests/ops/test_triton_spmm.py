"""Triton spmm_csr / sddmm_csr against plain references, forward and the backward composition.

The autograd of ``spmm`` (in ``ops/_library.py``) is ``grad_x = spmm(transpose, w[perm_t], grad)``
and ``grad_w = sddmm(grad, x)``; both are checked here against float64 autograd.
"""

from __future__ import annotations

import pytest
import torch

import graphvision
import graphvision.ops
from hypothesis import given, settings
from hypothesis import strategies as st

from graphvision.testing import assert_close
from tests.ops._triton_helpers import (
    DEVICE,
    FLOAT_DTYPES,
    block_sizes,
    build_csr,
    csr_graphs,
    examples,
    f64,
    randn,
    ref_sddmm,
    ref_spmm,
    requires_triton,
)

pytestmark = [pytest.mark.triton_interpret, requires_triton]

INDEX_DTYPES = st.sampled_from([torch.int32, torch.int64])


def _kernels():
    from graphvision.ops._triton.k_sddmm import sddmm_csr
    from graphvision.ops._triton.k_spmm import spmm_csr

    return spmm_csr, sddmm_csr


def _weight(mode: int, e: int, k: int, dtype: torch.dtype, seed: int, noncontig: bool = False):
    if mode == 0:
        return None
    if mode == 1:
        return randn(e, dtype=dtype, seed=seed + 1, noncontig=noncontig)
    return randn(e, k, dtype=dtype, seed=seed + 1, noncontig=noncontig)


class TestSpmm:
    def test_table(self) -> None:
        # out[0] = x[1]; out[1] = 2 * x[0] + 3 * x[1]; out[2] = 0 (no edges)
        spmm_csr, _ = _kernels()
        rowptr = torch.tensor([0, 1, 3, 3], device=DEVICE)
        col = torch.tensor([1, 0, 1], device=DEVICE)
        w = torch.tensor([1.0, 2.0, 3.0], device=DEVICE)
        x = torch.tensor([[[1.0, 10.0]], [[100.0, 1000.0]]], device=DEVICE)
        out = spmm_csr(rowptr, col, w, x)
        expected = torch.tensor([[[100.0, 1000.0]], [[302.0, 3020.0]], [[0.0, 0.0]]])
        assert torch.equal(out.cpu(), expected)

    @settings(max_examples=examples(12))
    @given(
        g=csr_graphs(),
        k=st.integers(1, 3),
        f=st.integers(1, 9),
        w_mode=st.sampled_from([0, 1, 2]),
        dtype=st.sampled_from(FLOAT_DTYPES),
        idx=INDEX_DTYPES,
        small=st.booleans(),
        noncontig=st.booleans(),
        seed=st.integers(0, 2**16),
    )
    def test_forward_and_backward(self, g, k, f, w_mode, dtype, idx, small, noncontig, seed) -> None:
        spmm_csr, sddmm_csr = _kernels()
        gi = g.index(idx)
        x = randn(g.n_src, k, f, dtype=dtype, seed=seed, noncontig=noncontig)
        w = _weight(w_mode, g.num_edges, k, dtype, seed, noncontig)
        grad = randn(g.n_dst, k, f, dtype=dtype, seed=seed + 2)
        with block_sizes(small):
            out = spmm_csr(gi.rowptr, gi.col, w, x)
            w_t = None if w is None else w[gi.perm_t.long()]
            grad_x = spmm_csr(gi.rowptr_t, gi.col_t, w_t, grad)
            grad_w = sddmm_csr(gi.rowptr, gi.col, grad, x) if w is not None else None
        x64, w64 = f64(x), f64(w)
        ref = ref_spmm(g, w64, x64)
        assert out.dtype == dtype and out.shape == (g.n_dst, k, f)
        assert_close(out, ref, msg="spmm forward")
        inputs = [x64] + ([w64] if w64 is not None else [])
        if ref.numel() > 0 and g.num_edges > 0:
            grads = torch.autograd.grad(ref, inputs, grad.to(torch.float64), allow_unused=True)
        else:
            grads = [torch.zeros_like(t) for t in inputs]
        assert_close(grad_x, grads[0], msg="spmm grad_x")
        if w is not None:
            gw = grad_w.to(torch.float64)
            if w.dim() == 1:
                gw = gw.sum(-1)
            assert_close(gw.to(dtype), grads[1], msg="spmm grad_w")

    def test_deterministic(self) -> None:
        spmm_csr, _ = _kernels()
        gen = torch.Generator().manual_seed(0)
        dst = torch.cat([torch.zeros(40, dtype=torch.long), torch.randint(0, 20, (40,), generator=gen)])
        g = build_csr(torch.randint(0, 20, (80,), generator=gen), dst, 20, 20)
        x, w = randn(20, 2, 8, dtype=torch.float32, seed=1), randn(80, dtype=torch.float32, seed=2)
        runs = [spmm_csr(g.rowptr, g.col, w, x) for _ in range(2)]
        assert torch.equal(runs[0], runs[1])

    @pytest.mark.parametrize("n_src,n_dst,k,f", [(0, 0, 1, 4), (3, 0, 2, 4), (0, 3, 2, 4), (3, 3, 2, 0), (3, 3, 0, 4)])
    def test_zero_sizes(self, n_src: int, n_dst: int, k: int, f: int) -> None:
        spmm_csr, _ = _kernels()
        g = build_csr(torch.zeros(0, dtype=torch.long), torch.zeros(0, dtype=torch.long), n_src, n_dst)
        out = spmm_csr(g.rowptr, g.col, None, torch.randn(n_src, k, f, device=DEVICE))
        assert out.shape == (n_dst, k, f) and bool((out == 0).all())

    def test_exceptions(self) -> None:
        spmm_csr, _ = _kernels()
        g = build_csr(torch.tensor([0, 1]), torch.tensor([1, 0]), 2, 2)
        x = torch.randn(2, 1, 3, device=DEVICE)
        with pytest.raises(ValueError, match=r"Expected|expected 'x' of shape \(N_src, K, F\)"):
            spmm_csr(g.rowptr, g.col, None, x[:, 0])
        with pytest.raises(TypeError, match="expected 'col' of dtype"):
            spmm_csr(g.rowptr, g.col.float(), None, x)
        with pytest.raises(TypeError, match="expected 'x' of a floating dtype"):
            spmm_csr(g.rowptr, g.col, None, x.long())
        with pytest.raises(ValueError, match=r"expected 'weight' of shape \(E,\) or \(E, K\)"):
            spmm_csr(g.rowptr, g.col, torch.ones(2, 1, 1, device=DEVICE), x)
        with pytest.raises(ValueError, match=r"expected 'weight' of shape \(2,\)"):
            spmm_csr(g.rowptr, g.col, torch.ones(3, device=DEVICE), x)


    def test_bad_index_through_the_public_op_is_refused(self) -> None:
        # The kernels read no index value back; the public op validates the graph once.
        x = torch.randn(2, 1, 3, device=DEVICE)
        with pytest.raises(IndexError, match=r"outside of \[0, 2\)"):
            graphvision.ops.spmm(torch.tensor([[0, 7], [1, 0]], device=DEVICE), None, x, backend="triton")


class TestSddmm:
    @settings(max_examples=examples(10))
    @given(
        g=csr_graphs(),
        k=st.integers(1, 3),
        f=st.integers(1, 9),
        dtype=st.sampled_from(FLOAT_DTYPES),
        idx=INDEX_DTYPES,
        small=st.booleans(),
        noncontig=st.booleans(),
        seed=st.integers(0, 2**16),
    )
    def test_forward(self, g, k, f, dtype, idx, small, noncontig, seed) -> None:
        _, sddmm_csr = _kernels()
        gi = g.index(idx)
        a = randn(g.n_dst, k, f, dtype=dtype, seed=seed, noncontig=noncontig)
        b = randn(g.n_src, k, f, dtype=dtype, seed=seed + 1)
        with block_sizes(small):
            out = sddmm_csr(gi.rowptr, gi.col, a, b)
        assert out.dtype == dtype and out.shape == (g.num_edges, k)
        assert_close(out, ref_sddmm(g, f64(a), f64(b)), msg="sddmm")

    def test_exceptions(self) -> None:
        _, sddmm_csr = _kernels()
        g = build_csr(torch.tensor([0, 1]), torch.tensor([1, 0]), 2, 2)
        a = torch.randn(2, 1, 3, device=DEVICE)
        with pytest.raises(ValueError, match=r"expected 'b' of shape \(N_src, 1, 3\)"):
            sddmm_csr(g.rowptr, g.col, a, torch.randn(2, 1, 4, device=DEVICE))
        with pytest.raises(ValueError, match=r"expected 'a' of shape \(2, K, F\)"):
            sddmm_csr(g.rowptr, g.col, torch.randn(3, 1, 3, device=DEVICE), a)
