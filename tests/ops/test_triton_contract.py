"""Every Triton contract function against its ``graphvision.ops._torch`` twin (same inputs).

The kernels are checked against independent float64 references in the other test_triton_*
files; this file checks the contract of DEVELOPING.md itself: same names, signatures, output
shapes and dtypes as the torch backend, and values that agree, so the dispatcher can swap them.
"""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from graphvision.testing import assert_close
from tests.ops._triton_helpers import FLOAT_DTYPES, csr_graphs, examples, randn, requires_triton

pytestmark = [pytest.mark.triton_interpret, requires_triton]

CONTRACT = [
    ("k_spmm", "spmm_csr"),
    ("k_sddmm", "sddmm_csr"),
    ("k_segment_softmax", "segment_softmax_csr"),
    ("k_segment_softmax", "segment_softmax_backward_csr"),
    ("k_segment_reduce", "segment_reduce_csr"),
    ("k_attention", "attention_forward_csr"),
    ("k_attention", "attention_backward_csr"),
    ("k_attention_pool", "attention_pool_ptr"),
]


def _torch_backend():
    return pytest.importorskip("graphvision.ops._torch")


@pytest.mark.parametrize("module,name", CONTRACT)
def test_same_signature_as_torch_backend(module: str, name: str) -> None:
    import importlib
    import inspect

    ref = getattr(_torch_backend(), name, None)
    if ref is None:
        pytest.skip(f"graphvision.ops._torch has no {name}")
    mine = getattr(importlib.import_module(f"graphvision.ops._triton.{module}"), name)
    assert list(inspect.signature(mine).parameters) == list(inspect.signature(ref).parameters)


def _same(a, b, msg: str) -> None:
    if a is None or b is None:
        assert a is None and b is None, msg
        return
    assert a.shape == b.shape, f"{msg}: shape {tuple(a.shape)} vs torch backend {tuple(b.shape)}"
    assert a.dtype == b.dtype, f"{msg}: dtype {a.dtype} vs torch backend {b.dtype}"
    assert_close(a, b.to(torch.float64) if b.is_floating_point() else b, msg=msg)


@settings(max_examples=examples(8))
@given(
    g=csr_graphs(max_nodes=16, max_edges=40),
    k=st.integers(1, 3),
    f=st.integers(1, 6),
    w_mode=st.sampled_from([0, 1, 2]),
    dtype=st.sampled_from(FLOAT_DTYPES),
    seed=st.integers(0, 2**16),
)
def test_matches_torch_backend(g, k, f, w_mode, dtype, seed) -> None:
    from graphvision.ops._triton import (
        k_attention,
        k_attention_pool,
        k_sddmm,
        k_segment_reduce,
        k_segment_softmax,
        k_spmm,
    )

    tb = _torch_backend()
    e = g.num_edges
    x = randn(g.n_src, k, f, dtype=dtype, seed=seed)
    a_src, a_dst = randn(g.n_src, k, dtype=dtype, seed=seed + 1), randn(g.n_dst, k, dtype=dtype, seed=seed + 2)
    w = None
    if w_mode:
        w = randn(e, dtype=dtype, seed=seed + 3) if w_mode == 1 else randn(e, k, dtype=dtype, seed=seed + 3)
    go = randn(g.n_dst, k, f, dtype=dtype, seed=seed + 4)
    scores = randn(e, k, dtype=dtype, seed=seed + 5)
    _same(k_spmm.spmm_csr(g.rowptr, g.col, w, x), tb.spmm_csr(g.rowptr, g.col, w, x), "spmm_csr")
    _same(k_sddmm.sddmm_csr(g.rowptr, g.col, go, x), tb.sddmm_csr(g.rowptr, g.col, go, x), "sddmm_csr")
    p = k_segment_softmax.segment_softmax_csr(g.rowptr, scores)
    _same(p, tb.segment_softmax_csr(g.rowptr, scores), "segment_softmax_csr")
    _same(k_segment_softmax.segment_softmax_backward_csr(g.rowptr, p, scores),
          tb.segment_softmax_backward_csr(g.rowptr, p, scores), "segment_softmax_backward_csr")
    src = scores.reshape(e, k)
    for reduce in ("sum", "mean", "max", "min"):
        out, arg = k_segment_reduce.segment_reduce_csr(g.rowptr, src, reduce)
        rout, rarg = tb.segment_reduce_csr(g.rowptr, src, reduce)
        _same(out, rout, f"segment_reduce_csr {reduce}")
        _same(arg, rarg, f"segment_reduce_csr {reduce} arg")
    out, attn = k_attention.attention_forward_csr(g.rowptr, g.col, x, a_src, a_dst, w, 0.2)
    rout, rattn = tb.attention_forward_csr(g.rowptr, g.col, x, a_src, a_dst, w, 0.2)
    _same(out, rout, "attention_forward_csr out")
    _same(attn, rattn, "attention_forward_csr attn")
    args = (g.rowptr, g.col, g.rowptr_t, g.col_t, g.perm_t, x, a_src, a_dst, w, attn, go, 0.2)
    for i, (a, b) in enumerate(zip(k_attention.attention_backward_csr(*args), tb.attention_backward_csr(*args))):
        _same(a, b, f"attention_backward_csr output {i}")
    ptr = torch.tensor([0, g.n_src // 2, g.n_src], device=x.device)
    xp, gate = x[:, 0], a_src
    pooled = zip(k_attention_pool.attention_pool_ptr(ptr, xp, gate), tb.attention_pool_ptr(ptr, xp, gate))
    for i, (a, b) in enumerate(pooled):
        _same(a, b, f"attention_pool_ptr output {i}")
