"""Triton segment softmax (forward, backward) and segment reduce against plain references."""

from __future__ import annotations

import math

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
    ref_segment_softmax,
    requires_triton,
)

pytestmark = [pytest.mark.triton_interpret, requires_triton]


def _softmax():
    from graphvision.ops._triton.k_segment_softmax import segment_softmax_backward_csr, segment_softmax_csr

    return segment_softmax_csr, segment_softmax_backward_csr


def _reduce():
    from graphvision.ops._triton.k_segment_reduce import segment_reduce_csr

    return segment_reduce_csr


class TestSegmentSoftmax:
    def test_table(self) -> None:
        fwd, _ = _softmax()
        rowptr = torch.tensor([0, 2, 2, 3], device=DEVICE)
        out = fwd(rowptr, torch.tensor([0.0, math.log(3.0), 5.0], device=DEVICE))
        assert_close(out, torch.tensor([0.25, 0.75, 1.0]))

    @settings(max_examples=examples(10))
    @given(
        g=csr_graphs(),
        k=st.integers(0, 4),
        dtype=st.sampled_from(FLOAT_DTYPES),
        idx=st.sampled_from([torch.int32, torch.int64]),
        small=st.booleans(),
        noncontig=st.booleans(),
        seed=st.integers(0, 2**16),
    )
    def test_forward_and_backward(self, g, k, dtype, idx, small, noncontig, seed) -> None:
        fwd, bwd = _softmax()
        gi = g.index(idx)
        e = g.num_edges
        scores = randn(e, max(k, 1), dtype=dtype, seed=seed, noncontig=noncontig) * 3
        if k == 0:  # 1-D scores: one head
            scores = scores[:, 0]
        grad = randn(*scores.shape, dtype=dtype, seed=seed + 1)
        with block_sizes(small):
            out = fwd(gi.rowptr, scores)
            gin = bwd(gi.rowptr, out, grad)
        assert out.shape == scores.shape and out.dtype == dtype
        s64 = f64(scores)
        ref = ref_segment_softmax(g.rowptr, g.row, s64 if k else s64[:, None])
        ref = ref if k else ref[:, 0]
        assert_close(out, ref, msg="softmax forward")
        if e:
            (gref,) = torch.autograd.grad(ref, s64, grad.to(torch.float64))
            # the backward is fed the kernel's own (rounded) output, as in training
            assert_close(gin, gref, msg="softmax backward")
            # rows sum to one
            sums = torch.zeros(g.n_dst, *out.shape[1:], dtype=torch.float64).index_add_(
                0, g.row.cpu(), out.double().cpu()
            )
            nonempty = g.rowptr.diff().cpu() > 0
            assert_close(sums[nonempty], torch.ones_like(sums[nonempty]), rtol=1e-2, atol=1e-2)

    def test_nan_propagates_to_its_row(self) -> None:
        fwd, _ = _softmax()
        rowptr = torch.tensor([0, 2, 4], device=DEVICE)
        out = fwd(rowptr, torch.tensor([0.0, float("nan"), 1.0, 2.0], device=DEVICE))
        assert bool(torch.isnan(out[:2]).all()) and not bool(torch.isnan(out[2:]).any())

    def test_empty(self) -> None:
        fwd, bwd = _softmax()
        rowptr = torch.zeros(4, dtype=torch.long, device=DEVICE)
        s = torch.zeros(0, 3, device=DEVICE)
        assert fwd(rowptr, s).shape == (0, 3)
        assert bwd(rowptr, s, s).shape == (0, 3)

    def test_exceptions(self) -> None:
        fwd, bwd = _softmax()
        rowptr = torch.tensor([0, 2], device=DEVICE)
        with pytest.raises(ValueError, match=r"expected 'scores' of shape \(E, K\)"):
            fwd(rowptr, torch.zeros(2, 1, 1, device=DEVICE))
        with pytest.raises(ValueError, match="expected 'grad' of the shape of 'out'"):
            bwd(rowptr, torch.zeros(2, 2, device=DEVICE), torch.zeros(2, 3, device=DEVICE))
        with pytest.raises(TypeError, match="expected 'rowptr' of dtype"):
            fwd(rowptr.float(), torch.zeros(2, device=DEVICE))


class TestSegmentReduce:
    def test_table(self) -> None:
        reduce = _reduce()
        rowptr = torch.tensor([0, 3, 3, 4], device=DEVICE)
        src = torch.tensor([[1.0], [5.0], [5.0], [-2.0]], device=DEVICE)
        table = {
            "sum": ([11.0, 0.0, -2.0], None),
            "mean": ([11.0 / 3, 0.0, -2.0], None),
            "max": ([5.0, 0.0, -2.0], [1, -1, 3]),  # first of the tied maxima
            "min": ([1.0, 0.0, -2.0], [0, -1, 3]),
        }
        for name, (values, args) in table.items():
            out, arg = reduce(rowptr, src, name)
            assert_close(out[:, 0], torch.tensor(values), msg=name)
            assert (arg is None) == (args is None)
            if args is not None:
                assert arg[:, 0].tolist() == args

    @settings(max_examples=examples(10))
    @given(
        g=csr_graphs(),
        f=st.integers(1, 9),
        reduce=st.sampled_from(["sum", "mean", "max", "min"]),
        dtype=st.sampled_from(FLOAT_DTYPES),
        idx=st.sampled_from([torch.int32, torch.int64]),
        small=st.booleans(),
        noncontig=st.booleans(),
        seed=st.integers(0, 2**16),
    )
    def test_forward(self, g, f, reduce, dtype, idx, small, noncontig, seed) -> None:
        fn = _reduce()
        gi = g.index(idx)
        src = randn(g.num_edges, f, dtype=dtype, seed=seed, noncontig=noncontig)
        if g.num_edges > 2:  # ties
            src[1] = src[0]
        with block_sizes(small):
            out, arg = fn(gi.rowptr, src, reduce)
        assert out.shape == (g.n_dst, f) and out.dtype == dtype
        # plain loop oracle
        ref = torch.zeros(g.n_dst, f, dtype=torch.float64)
        ref_arg = torch.full((g.n_dst, f), -1, dtype=torch.long)
        s64 = src.double().cpu()
        for i in range(g.n_dst):
            lo, hi = int(g.rowptr[i]), int(g.rowptr[i + 1])
            if hi == lo:
                continue
            seg = s64[lo:hi]
            if reduce == "sum":
                ref[i] = seg.sum(0)
            elif reduce == "mean":
                ref[i] = seg.mean(0)
            else:
                for c in range(f):
                    vals = seg[:, c].tolist()
                    best = max(vals) if reduce == "max" else min(vals)
                    ref[i, c] = best
                    ref_arg[i, c] = lo + vals.index(best)
        assert_close(out, ref, msg=reduce)
        if reduce in ("max", "min"):
            assert arg is not None and arg.dtype == torch.int64
            assert torch.equal(arg.cpu(), ref_arg)
        else:
            assert arg is None

    def test_any_trailing_shape(self) -> None:
        fn = _reduce()
        rowptr = torch.tensor([0, 2, 3], device=DEVICE)
        src = torch.arange(3 * 2 * 2, dtype=torch.float32, device=DEVICE).view(3, 2, 2)
        out, arg = fn(rowptr, src, "max")
        assert out.shape == (2, 2, 2) and arg.shape == (2, 2, 2)
        assert torch.equal(out, src[[1, 2]]) and bool((arg[0] == 1).all())
        out1, arg1 = fn(rowptr, src[:, 0, 0], "sum")  # 1-D src
        assert out1.tolist() == [4.0, 8.0] and arg1 is None

    def test_nan_propagates(self) -> None:
        fn = _reduce()
        rowptr = torch.tensor([0, 3], device=DEVICE)
        out, arg = fn(rowptr, torch.tensor([[1.0], [float("nan")], [3.0]], device=DEVICE), "max")
        assert bool(torch.isnan(out).all()) and arg.tolist() == [[1]]

    @pytest.mark.parametrize("reduce", ["sum", "max"])
    def test_empty(self, reduce: str) -> None:
        fn = _reduce()
        g = build_csr(torch.zeros(0, dtype=torch.long), torch.zeros(0, dtype=torch.long), 3, 3)
        out, arg = fn(g.rowptr, torch.zeros(0, 2, device=DEVICE), reduce)
        assert out.shape == (3, 2) and bool((out == 0).all())
        if reduce == "max":
            assert bool((arg == -1).all())

    def test_exceptions(self) -> None:
        fn = _reduce()
        rowptr = torch.tensor([0, 2], device=DEVICE)
        with pytest.raises(ValueError, match=r"unknown reduce 'prod'; expected one of \('sum', 'mean', 'max', 'min'\)"):
            fn(rowptr, torch.zeros(2, 1, device=DEVICE), "prod")
        with pytest.raises(ValueError, match=r"expected 'src' of shape \(E, F\) or \(E, ...\)"):
            fn(rowptr, torch.zeros((), device=DEVICE), "sum")
