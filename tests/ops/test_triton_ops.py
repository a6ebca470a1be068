"""The public ``graphvision.ops`` with ``backend="triton"``: same results and gradients as the
torch backend, ``torch.library.opcheck`` and ``torch.compile(fullgraph=True)``."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import graphvision.ops as ops
from graphvision import GraphStructure
from graphvision.testing import assert_close
from tests.ops._triton_helpers import DEVICE, examples, requires_triton

pytestmark = [pytest.mark.triton_interpret, requires_triton]


def _public_ops(ei: torch.Tensor, n: int, x, a_s, a_d, w, backend: str):  # noqa: ANN001, ANN202
    """Every public op once; returns a list of outputs."""
    k, f = x.shape[1], x.shape[2]
    batch = (torch.arange(n, device=x.device) >= n // 2).long()
    out, attn = ops.attention_aggregate(x, a_s, a_d, ei, w, num_nodes=n, return_attention_weights=True, backend=backend)
    y = ops.spmm(ei, w[:, 0], x.reshape(n, k * f), n, backend=backend)
    s = ops.segment_softmax(w, ei[1], n, backend=backend)
    m = ops.scatter(x.reshape(-1, k * f)[ei[0]], ei[1], n, "max", backend=backend)
    mean = ops.scatter(s, ei[1], n, "mean", backend=backend)
    p = ops.global_attention_pool(y, a_s, batch, 2, backend=backend)
    return [out, attn, y, s, m, mean, p]


@settings(max_examples=examples(6))
@given(
    n=st.integers(1, 12),
    e=st.integers(0, 40),
    k=st.integers(1, 2),
    f=st.integers(1, 5),
    idx=st.sampled_from([torch.int32, torch.int64]),
    seed=st.integers(0, 2**16),
)
def test_public_ops_match_torch_backend(n, e, k, f, idx, seed) -> None:
    g = torch.Generator().manual_seed(seed)
    ei = torch.randint(0, n, (2, e), generator=g).to(idx).to(DEVICE)
    leaves = [
        torch.randn(n, k, f, generator=g),
        torch.randn(n, k, generator=g),
        torch.randn(n, k, generator=g),
        torch.rand(e, k, generator=g),
    ]
    results = {}
    for backend in ("torch", "triton"):
        ins = [t.to(DEVICE).requires_grad_() for t in leaves]
        outs = _public_ops(ei, n, *ins, backend=backend)
        total = sum((o.float() * (i + 1)).sum() for i, o in enumerate(outs))
        grads = torch.autograd.grad(total, ins, allow_unused=True)
        results[backend] = (outs, grads)
    for i, (a, b) in enumerate(zip(results["triton"][0], results["torch"][0])):
        assert_close(a, b, msg=f"output {i}")
    for i, (a, b) in enumerate(zip(results["triton"][1], results["torch"][1])):
        if a is None or b is None:
            assert a is None and b is None
        else:
            assert_close(a, b, msg=f"grad {i}")


def _small_graph():
    ei = torch.tensor([[0, 1, 2, 3, 4, 5, 1, 0], [1, 2, 3, 4, 5, 0, 0, 2]], device=DEVICE)
    return ei, 6


def test_opcheck_triton_backend() -> None:
    ei, n = _small_graph()
    g = GraphStructure(ei, n)
    rowptr, col, rowptr_t, col_t, perm_t = g.rowptr, g.col, g.rowptr_t, g.col_t, g.perm_t
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(n, 2, 3, generator=gen).to(DEVICE).requires_grad_()
    a_s = torch.randn(n, 2, generator=gen).to(DEVICE).requires_grad_()
    a_d = torch.randn(n, 2, generator=gen).to(DEVICE).requires_grad_()
    w = torch.rand(ei.size(1), 2, generator=gen).to(DEVICE).requires_grad_()
    gv = torch.ops.graphvision
    be = "triton"
    cases = [
        (gv.spmm, (rowptr, col, w, x, rowptr_t, col_t, perm_t, be)),
        (gv.spmm, (rowptr, col, None, x, rowptr_t, col_t, perm_t, be)),
        (gv.sddmm, (rowptr, col, x.detach(), x.detach(), be)),
        (gv.segment_softmax, (rowptr, w, be)),
        (gv.segment_reduce, (rowptr, w, "max", be)),
        (gv.attention, (rowptr, col, rowptr_t, col_t, perm_t, x, a_s, a_d, w, 0.2, be)),
        (gv.global_attention_pool, (torch.tensor([0, 2, 6], device=DEVICE), x[:, 0], a_s, be)),
    ]
    for op, args in cases:
        torch.library.opcheck(op, args)


def test_compile_fullgraph_triton_backend() -> None:
    torch._dynamo.reset()
    ei, n = _small_graph()
    g = GraphStructure(ei, n).precompute()
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(n, 2, 3, generator=gen).to(DEVICE).requires_grad_()
    a_s = torch.randn(n, 2, generator=gen).to(DEVICE).requires_grad_()

    def fn(x, a_s):  # noqa: ANN001, ANN202
        out = ops.attention_aggregate(x, a_s, a_s, g, backend="triton")
        y = ops.spmm(g, None, out.sum(1), n, backend="triton")
        return y.sum() + ops.segment_softmax(a_s[g.col], g, n, backend="triton").sum()

    eager = fn(x, a_s)
    ge = torch.autograd.grad(eager, [x, a_s])
    compiled = torch.compile(fn, fullgraph=True, backend="aot_eager")
    got = compiled(x, a_s)
    gc = torch.autograd.grad(got, [x, a_s])
    assert_close(got, eager)
    for a, b in zip(gc, ge):
        assert_close(a, b)
