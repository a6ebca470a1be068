"""Dtypes, gradcheck, edge-order invariance, non-contiguous inputs, opcheck and torch.compile."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from graphvision import GraphStructure, ops
from graphvision.testing import assert_close
from tests import reference as ref
from tests.ops._cases import BACKENDS, graph_cases, randn, require_backend

# A small fixed graph with an isolated node (5), a self-loop, a duplicate edge and unsorted edges.
EI = torch.tensor([[1, 2, 0, 3, 3, 4, 0, 2, 2], [0, 0, 1, 1, 1, 3, 3, 2, 4]])
N = 6


def _inputs(dtype: torch.dtype, k: int = 2, f: int = 3):
    x = randn(0, N, k, f, dtype=dtype)
    a_s = randn(1, N, k, dtype=dtype)
    a_d = randn(2, N, k, dtype=dtype)
    w = (torch.rand(EI.size(1), k, generator=torch.Generator().manual_seed(3), dtype=torch.float64) + 0.5).to(dtype)
    return x, a_s, a_d, w


# --------------------------------------------------------------------------- dtypes
@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16, torch.float16])
def test_dtypes_forward_and_backward(backend: str, dtype: torch.dtype) -> None:
    require_backend(backend)
    x, a_s, a_d, w = _inputs(dtype)
    leaves = [t.clone().requires_grad_(True) for t in (x, a_s, a_d, w)]
    out, attn = ops.attention_aggregate(*leaves[:3], EI, leaves[3], return_attention_weights=True, backend=backend)
    assert out.dtype == dtype and attn.dtype == dtype
    e_out, e_attn = ref.ref_attention_aggregate(x, a_s, a_d, EI, w)
    assert_close(out, e_out)
    assert_close(attn, e_attn)
    out.float().sum().backward()
    for t in leaves:
        assert t.grad is not None and t.grad.dtype == dtype and bool(torch.isfinite(t.grad.float()).all())
    xs = x[:, 0].clone().requires_grad_(True)
    y = ops.spmm(EI, w[:, 0], xs, N, backend=backend)
    assert y.dtype == dtype
    assert_close(y, ref.ref_spmm(EI, w[:, 0], x[:, 0][:, None], N)[:, 0])
    scores = randn(4, EI.size(1), 2, dtype=dtype)
    s = ops.segment_softmax(scores, EI[1], N, backend=backend)
    assert s.dtype == dtype
    assert_close(s, ref.ref_segment_softmax(scores, EI[1], N))
    for reduce in ("sum", "mean", "max", "min"):
        src = randn(5, EI.size(1), 3, dtype=dtype)
        got = ops.scatter(src, EI[1], N, reduce, backend=backend)
        assert got.dtype == dtype
        assert_close(got, ref.ref_scatter(src, EI[1], N, reduce))
    batch = torch.tensor([0, 0, 1, 1, 1, 1])
    got, wts = ops.global_attention_pool(x[:, 0], a_s, batch, 2, return_attention_weights=True, backend=backend)
    e_got, e_w = ref.ref_attention_pool(x[:, 0], a_s, batch, 2)
    assert_close(got, e_got)
    assert_close(wts, e_w)


# A smaller graph for gradcheck: isolated node 4, self-loop, duplicate, unsorted.
EI_S = torch.tensor([[1, 2, 0, 3, 3, 2], [0, 0, 1, 1, 1, 2]])
N_S = 5


@pytest.mark.parametrize("backend", BACKENDS)
def test_gradcheck_float64(backend: str) -> None:
    require_backend(backend)
    k, f, e = 2, 2, EI_S.size(1)
    x = randn(0, N_S, k, f).requires_grad_(True)
    a_s, a_d = randn(1, N_S, k).requires_grad_(True), randn(2, N_S, k).requires_grad_(True)
    w = (torch.rand(e, k, dtype=torch.float64) + 0.5).requires_grad_(True)
    g = GraphStructure(EI_S, N_S)
    check = dict(fast_mode=True)

    def att(x, a_s, a_d, w):  # noqa: ANN001, ANN202
        return ops.attention_aggregate(x, a_s, a_d, g, w, return_attention_weights=True, backend=backend)

    assert torch.autograd.gradcheck(att, (x, a_s, a_d, w), **check)
    assert torch.autograd.gradcheck(
        lambda x, w: ops.attention_aggregate(x, a_s, a_d, EI_S, w, backend=backend), (x, w[:, 0]), **check
    )
    assert torch.autograd.gradcheck(lambda x, w: ops.spmm(EI_S, w, x, N_S, backend=backend), (x, w), **check)
    assert torch.autograd.gradcheck(lambda w: ops.segment_softmax(w, EI_S[1], N_S, backend=backend), (w,), **check)
    for reduce in ("sum", "mean", "max", "min"):
        src = randn(7, e, 2).requires_grad_(True)
        assert torch.autograd.gradcheck(lambda s: ops.scatter(s, EI_S[1], N_S, reduce, backend=backend), (src,), **check)
    batch = torch.tensor([0, 1, 0, 1, 1])
    assert torch.autograd.gradcheck(
        lambda x, gt: ops.global_attention_pool(x, gt, batch, 3, return_attention_weights=True, backend=backend),
        (x[:, 0].detach().requires_grad_(True), a_s),
        **check,
    )


def test_spmm_double_backward_x() -> None:
    x = randn(0, N_S, 2).requires_grad_(True)
    w = torch.rand(EI_S.size(1), dtype=torch.float64)
    assert torch.autograd.gradgradcheck(lambda x: ops.spmm(EI_S, w, x, N_S), (x,), fast_mode=True)


# --------------------------------------------------------------------------- invariances
@settings(max_examples=20)
@given(case=graph_cases(), seed=st.integers(0, 1000))
def test_edge_order_invariance(case, seed: int) -> None:
    n, ei, k, f = case.num_nodes, case.edge_index, case.heads, case.channels
    e = ei.size(1)
    perm = torch.randperm(e, generator=torch.Generator().manual_seed(seed))
    x, a_s, a_d = randn(case.seed, n, k, f), randn(case.seed + 1, n, k), randn(case.seed + 2, n, k)
    w = torch.rand(e, k, dtype=torch.float64) + 0.1
    out, attn = ops.attention_aggregate(x, a_s, a_d, ei, w, return_attention_weights=True)
    out_p, attn_p = ops.attention_aggregate(x, a_s, a_d, ei[:, perm], w[perm], return_attention_weights=True)
    assert_close(out_p, out)
    assert_close(attn_p, attn[perm])
    assert_close(ops.spmm(ei[:, perm], w[perm], x, n), ops.spmm(ei, w, x, n))
    s = randn(case.seed + 3, e, k)
    assert_close(ops.segment_softmax(s[perm], ei[1, perm], n), ops.segment_softmax(s, ei[1], n)[perm])
    # Already target-sorted input takes the no-sort path (identity permutation): same results.
    srt = torch.argsort(ei[1], stable=True)
    out_s, attn_s = ops.attention_aggregate(x, a_s, a_d, ei[:, srt], w[srt], return_attention_weights=True)
    assert_close(out_s, out)
    assert_close(attn_s, attn[srt])
    g = GraphStructure(ei[:, srt], n)
    assert g.perm.tolist() == list(range(e)) and g._identity_perm == (e > 0)
    assert_close(ops.spmm(g, w[srt], x), ops.spmm(ei, w, x, n))


def test_non_contiguous_inputs() -> None:
    x, a_s, a_d, w = _inputs(torch.float64, k=2, f=3)
    xt = x.transpose(1, 2).contiguous().transpose(1, 2)  # same values, strided
    a_s_nc = torch.stack([a_s, a_s], 2)[..., 0]
    ei_nc = EI.t().contiguous().t()
    w_nc = torch.stack([w, w], 2)[..., 0]
    assert not xt.is_contiguous() and not ei_nc.is_contiguous() and not w_nc.is_contiguous()
    out = ops.attention_aggregate(xt, a_s_nc, a_d, ei_nc, w_nc)
    assert_close(out, ops.attention_aggregate(x, a_s, a_d, EI, w.contiguous()))
    assert_close(ops.spmm(ei_nc, w_nc[:, 0], xt[:, 1], N), ops.spmm(EI, w[:, 0].contiguous(), x[:, 1].contiguous(), N))
    src = randn(1, 3, EI.size(1)).t()
    assert_close(ops.scatter(src, ei_nc[1], N, "max"), ops.scatter(src.contiguous(), EI[1], N, "max"))


def test_single_hub_node_many_edges() -> None:
    n, deg = 12, 400
    g = torch.Generator().manual_seed(0)
    ei = torch.stack([torch.randint(n, (deg,), generator=g), torch.full((deg,), 3)])
    x, a_s, a_d = randn(0, n, 2, 5), randn(1, n, 2), randn(2, n, 2)
    out, attn = ops.attention_aggregate(x, a_s, a_d, ei, return_attention_weights=True)
    e_out, e_attn = ref.ref_attention_aggregate(x, a_s, a_d, ei)
    assert_close(out, e_out)
    assert_close(attn, e_attn)
    assert_close(ops.spmm(ei, None, x, n), ref.ref_spmm(ei, None, x, n))


def test_nan_scores_propagate_to_their_segment_only() -> None:
    s = torch.tensor([1.0, float("nan"), 2.0, 3.0])
    out = ops.segment_softmax(s, torch.tensor([0, 0, 1, 1]), 2)
    assert torch.isnan(out[:2]).all() and torch.isfinite(out[2:]).all()
    a_s = torch.tensor([[float("nan")], [0.0], [0.0]])
    out = ops.attention_aggregate(torch.ones(3, 1, 2), a_s, torch.zeros(3, 1), torch.tensor([[0, 1], [1, 2]]))
    assert torch.isnan(out[1]).all() and torch.isfinite(out[2]).all() and bool((out[0] == 0).all())


def test_all_neg_inf_segment_gives_zeros() -> None:
    s = torch.tensor([float("-inf"), float("-inf"), 0.0])
    out = ops.segment_softmax(s, torch.tensor([0, 0, 1]), 2)
    assert out.tolist() == [0.0, 0.0, 1.0]


def test_empty_graph_all_ops() -> None:
    ei = torch.empty(2, 0, dtype=torch.int64)
    x = torch.randn(4, 2, 3, requires_grad=True)
    a = torch.randn(4, 2, requires_grad=True)
    out, attn = ops.attention_aggregate(x, a, a, ei, return_attention_weights=True)
    assert out.shape == (4, 2, 3) and attn.shape == (0, 2) and bool((out == 0).all())
    out.sum().backward()
    assert bool((x.grad == 0).all())
    assert bool((ops.spmm(ei, None, x, 4) == 0).all())
    assert ops.scatter(torch.empty(0, 3), ei[1], 5, "max").shape == (5, 3)
    assert ops.segment_softmax(torch.empty(0), ei[1], 0).shape == (0,)
    assert ops.global_attention_pool(torch.empty(0, 3), torch.empty(0), torch.empty(0, dtype=torch.int64), 2).shape == (2, 3)


# --------------------------------------------------------------------------- torch.library
def _canon():
    g = GraphStructure(EI, N)
    return g.rowptr, g.col, g.rowptr_t, g.col_t, g.perm_t


@pytest.mark.parametrize("backend", BACKENDS)
def test_opcheck(backend: str) -> None:
    require_backend(backend)
    rowptr, col, rowptr_t, col_t, perm_t = _canon()
    x, a_s, a_d, w = (t.float().requires_grad_(True) for t in _inputs(torch.float64))
    gv = torch.ops.graphvision
    cases = [
        (gv.spmm, (rowptr, col, w, x, rowptr_t, col_t, perm_t, backend)),
        (gv.spmm, (rowptr, col, None, x, rowptr_t, col_t, perm_t, backend)),
        (gv.spmm, (rowptr, col, w, x, None, None, None, backend)),  # backward builds the transpose
        (gv.sddmm, (rowptr, col, x.detach(), x.detach(), backend)),
        (gv.segment_softmax, (rowptr, w, backend)),
        (gv.segment_softmax_backward, (rowptr, w.detach().softmax(0), w, backend)),
        (gv.segment_reduce, (rowptr, w, "max", backend)),
        (gv.segment_reduce, (rowptr, w, "mean", backend)),
        (gv.attention, (rowptr, col, rowptr_t, col_t, perm_t, x, a_s, a_d, w, 0.2, backend)),
        (gv.attention, (rowptr, col, rowptr_t, col_t, perm_t, x, a_s, a_d, None, 0.2, backend)),
        (gv.attention, (rowptr, col, None, None, None, x, a_s, a_d, w[:, 0], 0.2, backend)),
        (gv.global_attention_pool, (torch.tensor([0, 2, 2, 6]), x[:, 0], a_s, backend)),
    ]
    # The full set of checks for the torch backend; the registration (autograd, fake kernel) is
    # shared by every backend, so the others check schema (no aliasing) and fake-tensor agreement.
    utils = (
        ("test_schema", "test_autograd_registration", "test_faketensor", "test_aot_dispatch_dynamic")
        if backend == "torch"
        else ("test_schema", "test_faketensor")
    )
    for op, args in cases:
        torch.library.opcheck(op, args, test_utils=utils)


def test_compile_fullgraph_matches_eager() -> None:
    torch._dynamo.reset()
    g = GraphStructure(EI, N).precompute()
    batch = torch.tensor([0, 0, 1, 1, 1, 1])

    # decided outside the compiled function: an import attempt inside it is a graph break
    mean_backend = "torch_scatter" if _has_ts() else "torch"

    def fn(x, a_s, a_d, w, ei):  # noqa: ANN001, ANN202
        out = ops.attention_aggregate(x, a_s, a_d, g, w)
        out2 = ops.attention_aggregate(x, a_s, a_d, ei, w[:, 0])
        y = ops.spmm(ei, w[:, 1], out.sum(1), N)
        s = ops.segment_softmax(w, ei[1], N)
        m = ops.scatter(s, ei[1], N, "max") + ops.scatter(s, ei[1], N, "mean", backend=mean_backend)
        p = ops.global_attention_pool(y, a_s, batch, 2)
        return out.sum() + out2.sum() + y.sum() + m.sum() + p.sum()

    x, a_s, a_d, w = (t.float().requires_grad_(True) for t in _inputs(torch.float64))
    eager = fn(x, a_s, a_d, w, EI)
    ge = torch.autograd.grad(eager, [x, a_s, a_d, w])
    compiled = torch.compile(fn, fullgraph=True, backend="aot_eager")
    got = compiled(x, a_s, a_d, w, EI)
    gc = torch.autograd.grad(got, [x, a_s, a_d, w])
    assert_close(got, eager)
    for a, b in zip(gc, ge):
        assert_close(a, b)


def _has_ts() -> bool:
    try:
        import torch_scatter  # noqa: F401
    except ImportError:
        return False
    return True


# --------------------------------------------------------------------------- memory
class _MaxNumel(torch.utils._python_dispatch.TorchDispatchMode):
    """Records the largest tensor any aten op produces (sparse tensors count their values)."""

    def __init__(self) -> None:
        super().__init__()
        self.max_numel = 0
        self.op = ""

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # noqa: ANN001, ANN204
        out = func(*args, **(kwargs or {}))
        for t in out if isinstance(out, (tuple, list)) else (out,):
            if isinstance(t, torch.Tensor):
                n = t.values().numel() if t.layout == torch.sparse_csr else t.numel()
                if n > self.max_numel:
                    self.max_numel, self.op = n, str(func)
        return out


@pytest.mark.parametrize("weighted", [False, True])
def test_torch_backend_never_materialises_edge_by_feature_tensors(weighted: bool) -> None:
    """Forward and backward of attention_aggregate and spmm stay O(N*K*F + E*K) in memory."""
    n, deg, k, f = 64, 32, 2, 32
    g = torch.Generator().manual_seed(0)
    ei = torch.stack([torch.randint(n, (n * deg,), generator=g), torch.arange(n).repeat_interleave(deg)])
    ei = ei[:, torch.randperm(ei.size(1), generator=g)]
    e = ei.size(1)
    x = torch.randn(n, k, f, requires_grad=True)
    a_s, a_d = torch.randn(n, k, requires_grad=True), torch.randn(n, k, requires_grad=True)
    w = (torch.rand(e, k) + 0.5).requires_grad_(True) if weighted else None
    structure = GraphStructure(ei, n).precompute()
    rowptr, col, _ = structure.csr()
    rowptr_t, col_t, perm_t = structure.csr_t()
    from graphvision.ops import _torch as kernels

    with _MaxNumel() as mode:
        # The public ops (wrapper ops and the custom ops' outputs; a dispatch mode does not see
        # inside a custom op) ...
        out = ops.attention_aggregate(x, a_s, a_d, structure, w, backend="torch")
        out.square().sum().backward()
        y = ops.spmm(structure, None if w is None else w[:, 0], x, backend="torch")
        y.square().sum().backward()
        # ... and the torch kernels they run, called directly so every aten op inside is seen.
        xd, ad, dd = x.detach(), a_s.detach(), a_d.detach()
        wd = None if w is None else w.detach()
        o, attn = kernels.attention_forward_csr(rowptr, col, xd, ad, dd, wd, 0.2)
        kernels.attention_backward_csr(rowptr, col, rowptr_t, col_t, perm_t, xd, ad, dd, wd, attn, o, 0.2)
        kernels.spmm_csr(rowptr, col, wd, xd)
        kernels.sddmm_csr(rowptr, col, o, xd)
    bound = max(n * k * f, e * k) * 2
    assert e * k * f >= 8 * bound  # the bound is meaningful
    assert mode.max_numel <= bound, f"{mode.op} produced {mode.max_numel} elements (E*K*F = {e * k * f})"


def test_single_head_2d_inputs_match_3d() -> None:
    x, a_s, a_d, w = _inputs(torch.float64, k=1, f=3)
    out, attn = ops.attention_aggregate(x[:, 0], a_s[:, 0], a_d[:, 0], EI, w[:, 0], return_attention_weights=True)
    out3, attn3 = ops.attention_aggregate(x, a_s, a_d, EI, w[:, 0], return_attention_weights=True)
    assert out.shape == (N, 3) and attn.shape == (EI.size(1),)
    assert_close(out, out3[:, 0])
    assert_close(attn, attn3[:, 0])
    e_out, _ = ref.ref_attention_aggregate(x, a_s, a_d, EI, w[:, 0])
    assert_close(out, e_out[:, 0])
