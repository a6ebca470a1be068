"""Every backend of every public op against the plain-loop oracles, forward and every input gradient."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from graphvision import GraphStructure, ops
from graphvision.testing import assert_close
from tests import reference as ref
from tests.ops._cases import BACKENDS, graph_cases, grads, make_weight, randn, require_backend


def _leaf(t: torch.Tensor | None) -> torch.Tensor | None:
    return None if t is None else t.detach().clone().requires_grad_(True)


# --------------------------------------------------------------------------- spmm
@pytest.mark.parametrize("backend", BACKENDS)
@given(case=graph_cases(), structure=st.booleans(), three_d=st.booleans())
def test_spmm_matches_reference(backend: str, case, structure: bool, three_d: bool) -> None:
    require_backend(backend)
    n, ei = case.num_nodes, case.edge_index
    k = case.heads if three_d else 1
    if not three_d and case.weight_kind == "head":
        case = case._replace(weight_kind="edge")
    x = randn(case.seed, n, k, case.channels) if three_d else randn(case.seed, n, case.channels)
    w = make_weight(case._replace(heads=k))
    x, w = _leaf(x), _leaf(w)
    adj = GraphStructure(ei, n) if structure else ei
    out = ops.spmm(adj, w, x, n, backend=backend)
    x_r, w_r = _leaf(x), _leaf(w)
    x3 = x_r if three_d else x_r[:, None]
    expect = ref.ref_spmm(ei, w_r, x3, n)
    expect = expect if three_d else expect[:, 0]
    assert_close(out, expect)
    got = grads(out, [x, w])
    want = grads(expect, [x_r, w_r])
    for g, e in zip(got, want):
        if g is not None:
            assert_close(g, e)


# --------------------------------------------------------------------------- segment softmax
@pytest.mark.parametrize("backend", BACKENDS)
@given(case=graph_cases(), two_d=st.booleans(), structure=st.booleans())
def test_segment_softmax_matches_reference(backend: str, case, two_d: bool, structure: bool) -> None:
    require_backend(backend)
    n, ei = case.num_nodes, case.edge_index
    e = ei.size(1)
    s = _leaf(randn(case.seed, e, case.heads) if two_d else randn(case.seed, e))
    index = GraphStructure(ei, n) if structure else ei[1]
    out = ops.segment_softmax(s, index, n, backend=backend)
    s_r = _leaf(s)
    expect = ref.ref_segment_softmax(s_r, ei[1], n)
    assert_close(out, expect)
    assert_close(grads(out, [s])[0], grads(expect, [s_r])[0])


# --------------------------------------------------------------------------- scatter
@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("reduce", ["sum", "mean", "max", "min"])
@given(case=graph_cases(hub=False), extra=st.integers(0, 3))
def test_scatter_matches_reference(backend: str, reduce: str, case, extra: int) -> None:
    require_backend(backend)
    n, ei = case.num_nodes + extra, case.edge_index
    src = _leaf(randn(case.seed, ei.size(1), case.channels))  # continuous values: no ties
    out = ops.scatter(src, ei[1], n, reduce, backend=backend)
    s_r = _leaf(src)
    expect = ref.ref_scatter(s_r, ei[1], n, reduce)
    assert_close(out, expect)
    assert_close(grads(out, [src])[0], grads(expect, [s_r])[0])


# --------------------------------------------------------------------------- attention
@pytest.mark.parametrize("backend", BACKENDS)
@given(
    case=graph_cases(),
    slope=st.sampled_from([0.2, 0.0, 1.0]),
    structure=st.booleans(),
    use_attn=st.booleans(),
)
def test_attention_matches_reference(backend: str, case, slope: float, structure: bool, use_attn: bool) -> None:
    require_backend(backend)
    n, ei, k, f = case.num_nodes, case.edge_index, case.heads, case.channels
    x = _leaf(randn(case.seed, n, k, f))
    a_s = _leaf(randn(case.seed + 2, n, k))
    a_d = _leaf(randn(case.seed + 3, n, k))
    w = _leaf(make_weight(case))
    adj = GraphStructure(ei, n) if structure else ei
    out, attn = ops.attention_aggregate(
        x, a_s, a_d, adj, w, negative_slope=slope, return_attention_weights=True, backend=backend
    )
    xr, asr, adr, wr = (_leaf(t) for t in (x, a_s, a_d, w))
    e_out, e_attn = ref.ref_attention_aggregate(xr, asr, adr, ei, wr, negative_slope=slope)
    assert_close(out, e_out, msg="out")
    assert_close(attn, e_attn, msg="attention")
    got = grads((out, attn) if use_attn else out, [x, a_s, a_d, w])
    want = grads((e_out, e_attn) if use_attn else e_out, [xr, asr, adr, wr])
    for name, g, e in zip(["x", "score_src", "score_dst", "edge_weight"], got, want):
        if g is not None:
            assert_close(g, e, msg=f"grad {name}")


@pytest.mark.parametrize("backend", BACKENDS)
def test_attention_bipartite(backend: str) -> None:
    require_backend(backend)
    ei = torch.tensor([[0, 4, 2, 3, 4], [1, 1, 0, 2, 1]])
    x = _leaf(randn(0, 5, 2, 3))
    a_s, a_d = _leaf(randn(1, 5, 2)), _leaf(randn(2, 3, 2))
    out = ops.attention_aggregate(x, a_s, a_d, ei, backend=backend)
    xr, asr, adr = _leaf(x), _leaf(a_s), _leaf(a_d)
    e_out, _ = ref.ref_attention_aggregate(xr, asr, adr, ei)
    assert out.shape == (3, 2, 3)
    assert_close(out, e_out)
    for g, e in zip(grads(out, [x, a_s, a_d]), grads(e_out, [xr, asr, adr])):
        assert_close(g, e)


# --------------------------------------------------------------------------- attention pool
@st.composite
def _pool_cases(draw: st.DrawFn):
    b = draw(st.integers(1, 4))
    equal = draw(st.booleans())
    if equal:
        sizes = [draw(st.integers(1, 5))] * b
    else:
        sizes = [draw(st.integers(0, 5)) for _ in range(b)]
    batch = torch.repeat_interleave(torch.arange(b), torch.tensor(sizes))
    seed = draw(st.integers(0, 2**16))
    if draw(st.booleans()):
        batch = batch[torch.randperm(batch.numel(), generator=torch.Generator().manual_seed(seed))]
    dtype = draw(st.sampled_from([torch.int64, torch.int32]))
    return batch.to(dtype), b, draw(st.integers(1, 3)), draw(st.integers(1, 4)), draw(st.booleans()), seed


@pytest.mark.parametrize("backend", BACKENDS)
@given(case=_pool_cases(), use_w=st.booleans())
def test_attention_pool_matches_reference(backend: str, case, use_w: bool) -> None:
    require_backend(backend)
    batch, b, k, f, multi, seed = case
    n = batch.numel()
    x = _leaf(randn(seed, n, f))
    gate = _leaf(randn(seed + 1, n, k) if multi else randn(seed + 1, n))
    out, wts = ops.global_attention_pool(x, gate, batch, b, return_attention_weights=True, backend=backend)
    xr, gr = _leaf(x), _leaf(gate)
    e_out, e_w = ref.ref_attention_pool(xr, gr, batch, b)
    assert_close(out, e_out)
    assert_close(wts, e_w)
    got = grads((out, wts) if use_w else out, [x, gate])
    want = grads((e_out, e_w) if use_w else e_out, [xr, gr])
    for g, e in zip(got, want):
        assert_close(g, e)
