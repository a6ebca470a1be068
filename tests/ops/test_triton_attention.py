"""Triton fused attention (forward, backward) and attention pooling against plain references."""

from __future__ import annotations

import pytest
import torch
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
    ref_attention,
    ref_attention_backward,
    ref_attention_pool,
    requires_triton,
)

pytestmark = [pytest.mark.triton_interpret, requires_triton]


def _attention():
    from graphvision.ops._triton.k_attention import attention_backward_csr, attention_forward_csr

    return attention_forward_csr, attention_backward_csr


def _pool():
    from graphvision.ops._triton.k_attention_pool import attention_pool_ptr

    return attention_pool_ptr


def _inputs(g, k, f, w_mode, dtype, seed, noncontig):
    x = randn(g.n_src, k, f, dtype=dtype, seed=seed, noncontig=noncontig)
    a_src = randn(g.n_src, k, dtype=dtype, seed=seed + 1, noncontig=noncontig) * 2
    a_dst = randn(g.n_dst, k, dtype=dtype, seed=seed + 2) * 2
    w = None
    if w_mode == 1:
        w = randn(g.num_edges, dtype=dtype, seed=seed + 3).abs()
    elif w_mode == 2:
        w = randn(g.num_edges, k, dtype=dtype, seed=seed + 3, noncontig=noncontig)
    return x, a_src, a_dst, w


class TestAttention:
    def test_table(self) -> None:
        # node 1 receives from 0 and 2 with equal scores -> mean of x[0], x[2]; node 0 from 1 only
        fwd, _ = _attention()
        rowptr = torch.tensor([0, 1, 3, 3], device=DEVICE)
        col = torch.tensor([1, 0, 2], device=DEVICE)
        x = torch.tensor([[[2.0]], [[4.0]], [[6.0]]], device=DEVICE)
        zeros = torch.zeros(3, 1, device=DEVICE)
        out, attn = fwd(rowptr, col, x, zeros, zeros, None, 0.2)
        assert_close(out[:, 0, 0], torch.tensor([4.0, 4.0, 0.0]))
        assert_close(attn[:, 0], torch.tensor([1.0, 0.5, 0.5]))

    @settings(max_examples=examples(12))
    @given(
        g=csr_graphs(),
        k=st.integers(1, 3),
        f=st.integers(1, 9),
        w_mode=st.sampled_from([0, 1, 2]),
        slope=st.sampled_from([0.2, 0.0, 1.0]),
        dtype=st.sampled_from(FLOAT_DTYPES),
        idx=st.sampled_from([torch.int32, torch.int64]),
        small=st.booleans(),
        noncontig=st.booleans(),
        seed=st.integers(0, 2**16),
    )
    def test_forward_and_backward(self, g, k, f, w_mode, slope, dtype, idx, small, noncontig, seed) -> None:
        fwd, bwd = _attention()
        gi = g.index(idx)
        x, a_src, a_dst, w = _inputs(g, k, f, w_mode, dtype, seed, noncontig)
        grad = randn(g.n_dst, k, f, dtype=dtype, seed=seed + 4)
        with block_sizes(small):
            out, attn = fwd(gi.rowptr, gi.col, x, a_src, a_dst, w, slope)
            grads = bwd(gi.rowptr, gi.col, gi.rowptr_t, gi.col_t, gi.perm_t, x, a_src, a_dst, w, attn, grad, slope)
        assert out.shape == (g.n_dst, k, f) and out.dtype == dtype
        assert attn.shape == (g.num_edges, k) and attn.dtype == dtype
        inputs = [f64(x), f64(a_src), f64(a_dst), f64(w)]
        ref_out, ref_attn = ref_attention(g, inputs[0], inputs[1], inputs[2], inputs[3], slope)
        assert_close(out, ref_out, msg="attention out")
        assert_close(attn, ref_attn, msg="attention attn")
        used = [t for t in inputs if t is not None]
        if dtype in (torch.float16, torch.bfloat16):
            # the backward consumes the forward's attn, rounded to the low dtype (as the torch
            # backend's does): check its arithmetic given that attn (the forward test checks attn)
            ref_grads = ref_attention_backward(g, *(t.detach() if t is not None else None for t in inputs),
                                               attn.to(torch.float64), grad.to(torch.float64), slope)
            ref_grads = [r for r in ref_grads if r is not None]
        elif g.num_edges:
            ref_grads = torch.autograd.grad(ref_out, used, grad.to(torch.float64), allow_unused=True)
            ref_grads = [torch.zeros_like(t) if r is None else r for t, r in zip(used, ref_grads)]
        else:
            ref_grads = [torch.zeros_like(t) for t in used]
        names = ["grad_x", "grad_score_src", "grad_score_dst", "grad_weight"]
        assert (grads[3] is None) == (w is None)
        for name, got, ref, inp in zip(names, grads, ref_grads, used):
            assert got.dtype == inp.dtype or got.dtype == dtype, name
            assert_close(got, ref, msg=name)

    @settings(max_examples=examples(10))
    @given(g=csr_graphs(), w_mode=st.sampled_from([0, 1, 2]), seed=st.integers(0, 2**16))
    def test_analytic_backward_reference_matches_autograd(self, g, w_mode, seed) -> None:
        # the low-precision backward test relies on ref_attention_backward: check it (float64)
        x, a_src, a_dst, w = (f64(t) for t in _inputs(g, 2, 3, w_mode, torch.float64, seed, False))
        out, attn = ref_attention(g, x, a_src, a_dst, w, 0.2)
        grad = randn(g.n_dst, 2, 3, dtype=torch.float64, seed=seed + 4)
        used = [t for t in (x, a_src, a_dst, w) if t is not None]
        if g.num_edges == 0:
            return
        auto = torch.autograd.grad(out, used, grad, allow_unused=True)
        mine = ref_attention_backward(g, x.detach(), a_src.detach(), a_dst.detach(),
                                      None if w is None else w.detach(), attn.detach(), grad, 0.2)
        for a, b in zip([m for m in mine if m is not None], auto):
            assert_close(a, torch.zeros_like(a) if b is None else b)

    def test_deterministic(self) -> None:
        fwd, bwd = _attention()
        gen = torch.Generator().manual_seed(3)
        dst = torch.cat([torch.zeros(12, dtype=torch.long), torch.randint(0, 8, (12,), generator=gen)])
        g = build_csr(torch.randint(0, 8, (24,), generator=gen), dst, 8, 8)
        x, a_src, a_dst, w = _inputs(g, 2, 8, 2, torch.float32, 0, False)
        grad = randn(8, 2, 8, dtype=torch.float32, seed=9)
        runs = []
        for _ in range(2):
            out, attn = fwd(g.rowptr, g.col, x, a_src, a_dst, w, 0.2)
            grads = bwd(g.rowptr, g.col, g.rowptr_t, g.col_t, g.perm_t, x, a_src, a_dst, w, attn, grad, 0.2)
            runs.append((out, attn, *grads))
        for a, b in zip(*runs):
            assert torch.equal(a, b)

    @pytest.mark.parametrize("n_src,n_dst,k,f", [(0, 0, 1, 4), (3, 0, 2, 4), (0, 3, 2, 4), (3, 3, 2, 0)])
    def test_zero_sizes(self, n_src: int, n_dst: int, k: int, f: int) -> None:
        fwd, bwd = _attention()
        g = build_csr(torch.zeros(0, dtype=torch.long), torch.zeros(0, dtype=torch.long), n_src, n_dst)
        x = torch.randn(n_src, k, f, device=DEVICE)
        a_s, a_d = torch.randn(n_src, k, device=DEVICE), torch.randn(n_dst, k, device=DEVICE)
        out, attn = fwd(g.rowptr, g.col, x, a_s, a_d, None, 0.2)
        assert out.shape == (n_dst, k, f) and attn.shape == (0, k) and bool((out == 0).all())
        gx, gs, gd, gw = bwd(g.rowptr, g.col, g.rowptr_t, g.col_t, g.perm_t, x, a_s, a_d, None, attn, out, 0.2)
        assert gx.shape == x.shape and gs.shape == a_s.shape and gd.shape == a_d.shape and gw is None
        assert all(bool((t == 0).all()) for t in (gx, gs, gd))

    def test_features_zero_width_still_gives_attention(self) -> None:
        fwd, _ = _attention()
        g = build_csr(torch.tensor([0, 1]), torch.tensor([1, 1]), 2, 2)
        out, attn = fwd(g.rowptr, g.col, torch.zeros(2, 1, 0, device=DEVICE), torch.zeros(2, 1, device=DEVICE),
                        torch.zeros(2, 1, device=DEVICE), None, 0.2)
        assert out.shape == (2, 1, 0)
        assert_close(attn[:, 0], torch.tensor([0.5, 0.5]))

    def test_exceptions(self) -> None:
        fwd, bwd = _attention()
        g = build_csr(torch.tensor([0, 1]), torch.tensor([1, 0]), 2, 2)
        x = torch.randn(2, 2, 3, device=DEVICE)
        a = torch.randn(2, 2, device=DEVICE)
        with pytest.raises(ValueError, match=r"expected 'score_src' of shape \(2, 2\) \(got \(2, 3\)\)"):
            fwd(g.rowptr, g.col, x, torch.randn(2, 3, device=DEVICE), a, None, 0.2)
        with pytest.raises(ValueError, match=r"expected 'score_dst' of shape \(2, 2\)"):
            fwd(g.rowptr, g.col, x, a, torch.randn(3, 2, device=DEVICE), None, 0.2)
        with pytest.raises(ValueError, match=r"expected 'weight' of shape \(2, 2\)"):
            fwd(g.rowptr, g.col, x, a, a, torch.randn(2, 3, device=DEVICE), 0.2)
        out, attn = fwd(g.rowptr, g.col, x, a, a, None, 0.2)
        with pytest.raises(ValueError, match=r"expected 'rowptr_t' of shape \(N_src \+ 1,\) = \(3,\)"):
            bwd(g.rowptr, g.col, g.rowptr_t[:-1], g.col_t, g.perm_t, x, a, a, None, attn, out, 0.2)
        with pytest.raises(ValueError, match=r"expected 'grad_out' of shape \(2, 2, 3\)"):
            bwd(g.rowptr, g.col, g.rowptr_t, g.col_t, g.perm_t, x, a, a, None, attn, out[:, :1], 0.2)

    def test_cpu_without_interpreter_is_refused(self, monkeypatch: pytest.MonkeyPatch) -> None:
        from graphvision.ops._triton import _common

        fwd, _ = _attention()
        monkeypatch.setattr(_common, "unusable_reason", lambda device: "no GPU (test)")
        g = build_csr(torch.tensor([0]), torch.tensor([0]), 1, 1)
        with pytest.raises(RuntimeError, match=r"attention_forward_csr: the Triton backend cannot run here: no GPU"):
            fwd(g.rowptr, g.col, torch.zeros(1, 1, 1), torch.zeros(1, 1), torch.zeros(1, 1), None, 0.2)

    def test_mismatched_devices(self) -> None:
        fwd, _ = _attention()
        g = build_csr(torch.tensor([0]), torch.tensor([0]), 1, 1)
        meta = torch.zeros(1, 1, device="meta")
        with pytest.raises(ValueError, match="expected 'score_src' on the same device as 'rowptr'"):
            fwd(g.rowptr, g.col, torch.zeros(1, 1, 1, device=DEVICE), meta, meta, None, 0.2)


class TestAttentionPool:
    @settings(max_examples=examples(10))
    @given(
        sizes=st.lists(st.integers(0, 12), min_size=0, max_size=5),
        k=st.integers(0, 3),
        f=st.integers(1, 9),
        dtype=st.sampled_from(FLOAT_DTYPES),
        idx=st.sampled_from([torch.int32, torch.int64]),
        small=st.booleans(),
        noncontig=st.booleans(),
        seed=st.integers(0, 2**16),
    )
    def test_forward(self, sizes, k, f, dtype, idx, small, noncontig, seed) -> None:
        pool = _pool()
        ptr = torch.tensor([0, *sizes], dtype=torch.long).cumsum(0).to(DEVICE)
        n = int(ptr[-1])
        x = randn(n, f, dtype=dtype, seed=seed, noncontig=noncontig)
        gate = randn(n, max(k, 1), dtype=dtype, seed=seed + 1) * 3
        if k == 0:
            gate = gate[:, 0]  # 1-D gate: one head
        with block_sizes(small):
            out, w = pool(ptr.to(idx), x, gate)
        gate2 = gate if k else gate[:, None]
        ref_out, ref_w = ref_attention_pool(ptr, f64(x), f64(gate2))
        assert out.dtype == dtype and w.dtype == dtype
        assert_close(out, ref_out, msg="pool out")
        assert_close(w, ref_w, msg="pool weights")

    def test_exceptions(self) -> None:
        pool = _pool()
        with pytest.raises(ValueError, match=r"expected 'gate' of shape \(4, K\)"):
            pool(torch.tensor([0, 4], device=DEVICE), torch.zeros(4, 2, device=DEVICE),
                 torch.zeros(3, 1, device=DEVICE))
