"""Tests for graphvision.functional.mutual_information_adjacency (soft-histogram MI graphs)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import graphvision
from graphvision.functional import mutual_information_adjacency as mia
from graphvision.functional import _mutual_information as mimod
from graphvision.ops._api import joint_entropy
from graphvision.ops._torch import joint_entropy_dense_backward
from graphvision.testing import assert_close

# ---------------------------------------------------------------------------------------------
# independent numpy oracle: per pair, the joint histogram and the MI from its definition
# ---------------------------------------------------------------------------------------------


def np_memberships(v: np.ndarray, bins: int, bandwidth: float) -> np.ndarray:
    """(C,) values -> (C, bins) soft memberships (min-max normalised, Gaussian softmax)."""
    lo, hi = v.min(), v.max()
    u = (v - lo) / (hi - lo) if hi > lo else np.zeros_like(v)
    if bandwidth == 0:
        lab = np.clip(np.floor(u * bins).astype(int), 0, bins - 1)
        return np.eye(bins)[lab]
    centers = (np.arange(bins) + 0.5) / bins
    sigma = bandwidth / bins
    logit = -((u[:, None] - centers[None, :]) ** 2) / (2 * sigma**2)
    logit -= logit.max(axis=1, keepdims=True)
    e = np.exp(logit)
    w = e / e.sum(axis=1, keepdims=True)
    return np.where(w >= 1e-12, w, 0.0)  # documented truncation of the Gaussian tails


def np_mi_matrix(x: np.ndarray, bins: int, bandwidth: float) -> np.ndarray:
    """(B, N, C) -> (B, N, N) MI, looping over pairs, MI = sum P log(P / (p_i p_j))."""
    bsz, n, c = x.shape
    out = np.zeros((bsz, n, n))
    for b in range(bsz):
        ws = [np_memberships(x[b, i], bins, bandwidth) for i in range(n)]
        for i in range(n):
            for j in range(n):
                joint = ws[i].T @ ws[j] / c
                pi, pj = joint.sum(1), joint.sum(0)
                nz = joint > 0
                out[b, i, j] = (joint[nz] * np.log(joint[nz] / np.outer(pi, pj)[nz])).sum()
    return np.maximum(out, 0.0)


def dense(x: torch.Tensor, **kw) -> torch.Tensor:
    kw.setdefault("loop", True)
    return mia(x, **kw)


# ---------------------------------------------------------------------------------------------
# forward against the oracle, chunking, layout
# ---------------------------------------------------------------------------------------------


@settings(max_examples=30)
@given(
    b=st.integers(0, 2),
    n=st.integers(0, 6),
    c=st.integers(1, 12),
    bins=st.integers(2, 6),
    bandwidth=st.sampled_from([0.0, 0.3, 0.5, 1.5]),
    chunk=st.sampled_from([None, 1, 2, 4]),
    seed=st.integers(0, 2**16),
)
def test_matches_numpy_oracle(b, n, c, bins, bandwidth, chunk, seed):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(b, n, c, generator=g, dtype=torch.float64)
    if n > 1 and c > 1:
        x[:, 0] = x[:, -1]  # a duplicated node
    out = dense(x, bins=bins, bandwidth=bandwidth, chunk_size=chunk, backend="torch")
    assert out.shape == (b, n, n)
    expected = torch.from_numpy(np_mi_matrix(x.numpy(), bins, bandwidth))
    assert_close(out, expected, rtol=1e-9, atol=1e-10)


def test_hand_computed_table():
    # two nodes, 4 samples, hard 2 bins: node 0 labels [0,0,1,1], node 1 labels [0,0,1,1] -> MI = log 2;
    # node 2 labels [0,1,0,1] is independent of node 0 -> MI = 0
    x = torch.tensor([[0.0, 0.1, 0.9, 1.0], [5.0, 5.0, 7.0, 7.0], [0.0, 1.0, 0.0, 1.0]], dtype=torch.float64)
    out = mia(x, bins=2, bandwidth=0, loop=True)
    ln2 = math.log(2)
    expected = torch.tensor([[ln2, ln2, 0.0], [ln2, ln2, 0.0], [0.0, 0.0, ln2]], dtype=torch.float64)
    assert_close(out, expected)


@settings(max_examples=15)
@given(n=st.integers(1, 20), chunk=st.integers(1, 21), seed=st.integers(0, 2**16))
def test_chunked_equals_unchunked(n, chunk, seed):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(2, n, 16, generator=g)
    full = dense(x, bins=8, chunk_size=n)
    assert_close(dense(x, bins=8, chunk_size=chunk), full, rtol=1e-5, atol=1e-6)


def test_default_chunk_respects_budget(monkeypatch):
    from graphvision.ops import _torch

    monkeypatch.setattr(_torch, "CHUNK_MEMORY_BUDGET", 3 * 2 * 8 * 100 * 8 * 4 * 5)
    assert mimod._default_chunk_size(2, 100, 8, 4) == 5
    assert mimod._default_chunk_size(2, 10**6, 16, 4) == 1  # never below one row
    assert mimod._default_chunk_size(1, 3, 2, 4) == 3  # never above N
    x = torch.randn(2, 23, 10)  # the default (chosen at run time) chunks this input: same result
    assert _torch.default_chunk_size(2, 23, 8, 4) < 23
    assert_close(dense(x, bins=8), dense(x, bins=8, chunk_size=23), rtol=1e-5, atol=1e-6)


def test_forward_chunks_use_the_triangle():
    # the forward computes row block [s, e) against columns [s, N) only: one block of all N rows
    # would do the full N x N work, so the default splits small N into about 4 blocks of >= 8 rows
    from graphvision.ops import _torch

    assert _torch.forward_chunk_size(32, 49, 8, 4) == 13
    assert _torch.forward_chunk_size(32, 16, 8, 4) == 8
    assert _torch.forward_chunk_size(32, 5, 8, 4) == 5  # never above N
    assert _torch.forward_chunk_size(2, 10**6, 16, 4) == 1  # the memory budget still wins
    calls = []
    real_bmm = torch.bmm
    x = torch.randn(3, 49, 12)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(_torch.torch, "bmm", lambda *a: calls.append(a[0].shape) or real_bmm(*a))
        got = dense(x, bins=8)
    assert len(calls) == 4 and sum(s[1] for s in calls) == 49 * 8
    assert_close(got, dense(x, bins=8, chunk_size=49), rtol=1e-5, atol=1e-6)


def test_unbatched_and_noncontiguous():
    x = torch.randn(3, 24, 7, dtype=torch.float64)
    xt = x.transpose(1, 2)  # (3, 7, 24) non-contiguous: 7 nodes, 24 samples
    assert not xt.is_contiguous()
    assert_close(dense(xt, bins=5), dense(xt.contiguous(), bins=5))
    assert_close(dense(xt[1], bins=5), dense(xt, bins=5)[1])
    ei, ew = mia(xt[1], bins=5, top_k=2, output="sparse")
    assert int(ei.max()) < 7


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_inputs_computed_in_float32(dtype):
    x = torch.randn(2, 6, 32).to(dtype)
    out = dense(x, bins=8)
    assert out.dtype == dtype
    assert_close(out, dense(x.float(), bins=8).to(dtype))


def test_empty_inputs():
    for shape in [(0, 5, 4), (2, 0, 4), (2, 1, 4), (0, 0, 3)]:
        x = torch.randn(*shape, requires_grad=True)
        out = mia(x, top_k=3, threshold=0.1)
        assert out.shape == (shape[0], shape[1], shape[1])
        out.sum().backward()
        assert x.grad is not None and x.grad.shape == x.shape
        ei, ew = mia(x.detach(), top_k=3, output="sparse")
        assert ei.shape[0] == 2 and ew.shape == (ei.shape[1],) and ei.dtype == torch.int64


# ---------------------------------------------------------------------------------------------
# estimator properties
# ---------------------------------------------------------------------------------------------


@settings(max_examples=15)
@given(n=st.integers(2, 12), c=st.integers(8, 64), seed=st.integers(0, 2**16))
def test_symmetric_nonnegative_diagonal_largest(n, c, seed):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(2, n, c, generator=g, dtype=torch.float64)
    x[:, 1] = 3.0 * x[:, 0] + 1.0  # an affine copy: same normalised values
    out = dense(x, bins=8)
    assert torch.equal(out, out.transpose(1, 2))
    assert bool((out >= 0).all())
    diag = out.diagonal(dim1=1, dim2=2)
    assert bool((diag.unsqueeze(-1) >= out - 1e-12).all()), "diagonal must be the largest entry of each row"
    assert_close(out[:, 0, 1], diag[:, 0])  # identical vectors reach the diagonal value


def test_gaussian_pairs_approach_closed_form_and_rank_by_rho():
    rhos = [0.3, 0.5, 0.7, 0.9]
    g = torch.Generator().manual_seed(1)

    def estimates(c: int) -> list[float]:
        nodes = []
        z0 = torch.randn(c, generator=g, dtype=torch.float64)
        nodes.append(z0)
        for rho in rhos:
            nodes.append(rho * z0 + math.sqrt(1 - rho**2) * torch.randn(c, generator=g, dtype=torch.float64))
        out = mia(torch.stack(nodes)[None], bins=32)[0]
        return [float(out[0, k + 1]) for k in range(len(rhos))]

    truth = [-0.5 * math.log(1 - r * r) for r in rhos]
    small, large = estimates(512), estimates(16384)
    rel_small = [abs(e / t - 1) for e, t in zip(small, truth)]
    rel_large = [abs(e / t - 1) for e, t in zip(large, truth)]
    assert max(rel_large) < 0.25, (large, truth)
    assert sum(rel_large) < sum(rel_small), (rel_small, rel_large)
    assert large == sorted(large), "estimates must rank pairs by rho"
    # independent samples: close to zero
    z = torch.randn(2, 16384, generator=g, dtype=torch.float64)
    assert float(mia(z[None], bins=32)[0, 0, 1]) < 0.02


@pytest.mark.parametrize("bins", [2, 5, 16])
def test_hard_binning_matches_sklearn(bins):
    metrics = pytest.importorskip("sklearn.metrics")
    g = torch.Generator().manual_seed(bins)
    x = torch.randn(1, 6, 200, generator=g, dtype=torch.float64)
    x[0, 1] = x[0, 0] ** 2 + 0.1 * x[0, 1]
    x[0, 2] = torch.round(x[0, 2] * 2)  # ties
    out = mia(x, bins=bins, bandwidth=0, loop=True)[0]
    nmi = mia(x, bins=bins, bandwidth=0, loop=True, normalize=True)[0]
    labels = []
    for i in range(6):
        v = x[0, i].numpy()
        u = (v - v.min()) / (v.max() - v.min())
        labels.append(np.clip(np.floor(u * bins).astype(int), 0, bins - 1))
    for i in range(6):
        for j in range(6):
            assert out[i, j].item() == pytest.approx(metrics.mutual_info_score(labels[i], labels[j]), abs=1e-10)
            expected = metrics.normalized_mutual_info_score(labels[i], labels[j], average_method="arithmetic")
            assert nmi[i, j].item() == pytest.approx(expected, abs=1e-10)


def test_soft_approaches_hard_for_small_bandwidth():
    x = torch.randn(2, 5, 300, dtype=torch.float64)
    hard = dense(x, bins=6, bandwidth=0)
    soft = dense(x, bins=6, bandwidth=0.02)
    assert_close(soft, hard, rtol=0, atol=0.03)


@pytest.mark.parametrize("mode", [True, "arithmetic", "geometric", "max", "min"])
def test_normalized_range_and_formula(mode):
    x = torch.randn(2, 7, 40, dtype=torch.float64)
    x[0, 3] = 1.0  # a constant node: entropy 0 -> normalised MI 0, no NaN
    mi = dense(x, bins=6)
    out = dense(x, bins=6, normalize=mode)
    assert not bool(out.isnan().any())
    assert bool((out >= 0).all()) and bool((out <= 1).all())
    assert float(out[0, 3].abs().max()) < 1e-12
    w = mimod._soft_memberships(x, 6, 0.5).mean(-1)
    h = -torch.special.xlogy(w, w).sum(-1)
    hi, hj = h[:, :, None], h[:, None, :]
    den = {True: (hi + hj) / 2, "arithmetic": (hi + hj) / 2, "geometric": (hi * hj).sqrt(),
           "max": torch.maximum(hi, hj), "min": torch.minimum(hi, hj)}[mode]
    ok = den > 1e-12
    assert_close(out[ok], (mi[ok] / den[ok]).clamp_max(1))


def test_constant_node_gives_zero_and_finite_grad():
    x = torch.randn(1, 4, 20, dtype=torch.float64)
    x[0, 2] = 0.5
    x.requires_grad_(True)
    out = dense(x, bins=4)
    assert float(out[0, 2].abs().max()) < 1e-12 and float(out[0, :, 2].abs().max()) < 1e-12
    out.sum().backward()
    assert bool(x.grad.isfinite().all())


# ---------------------------------------------------------------------------------------------
# sparsification and outputs
# ---------------------------------------------------------------------------------------------


def to_dense(edge_index: torch.Tensor, edge_weight: torch.Tensor, b: int, n: int) -> torch.Tensor:
    out = torch.zeros(b * n, b * n, dtype=edge_weight.dtype)
    out[edge_index[1], edge_index[0]] = edge_weight
    blocks = [out[k * n : (k + 1) * n, k * n : (k + 1) * n] for k in range(b)]
    assert out.count_nonzero() == sum(int(blk.count_nonzero()) for blk in blocks), "edge across images"
    return torch.stack(blocks) if b else out.new_zeros(0, n, n)


@settings(max_examples=30)
@given(
    b=st.integers(1, 3),
    n=st.integers(1, 9),
    top_k=st.sampled_from([None, 1, 2, 4, 20]),
    threshold=st.sampled_from([None, 0.0, 0.2]),
    symmetric=st.booleans(),
    loop=st.booleans(),
    seed=st.integers(0, 2**16),
)
def test_sparsification_rules(b, n, top_k, threshold, symmetric, loop, seed):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(b, n, 24, generator=g, dtype=torch.float64)
    mi = dense(x, bins=4)
    kw = dict(bins=4, top_k=top_k, threshold=threshold, symmetric=symmetric, loop=loop)
    adj = mia(x, **kw)
    ei, ew = mia(x, output="sparse", **kw)
    # the oracle pattern
    eye = torch.eye(n, dtype=torch.bool)
    keep = ~eye.expand(b, n, n).clone()
    if top_k is not None:
        keep = torch.zeros(b, n, n, dtype=torch.bool)
        for bb in range(b):
            for i in range(n):
                order = [j for j in sorted(range(n), key=lambda j: -float(mi[bb, i, j])) if j != i]
                for j in order[: min(top_k, n - 1)]:
                    keep[bb, i, j] = True
    if threshold is not None:
        keep &= mi >= threshold
    if symmetric and top_k is not None:
        keep = keep | keep.transpose(1, 2)
    if loop:
        keep = keep | eye
    # ties in MI could make the top-k choice ambiguous; with float64 random data there are none
    assert_close(adj, torch.where(keep, mi, torch.zeros_like(mi)))
    assert ei.dtype == torch.int64 and ei.shape == (2, int(keep.sum()))
    assert_close(to_dense(ei, ew, b, n), torch.where(keep, mi, torch.zeros_like(mi)))
    assert bool((ei[1][1:] >= ei[1][:-1]).all()), "edges sorted by target"
    if symmetric or top_k is None:
        assert torch.equal(adj, adj.transpose(1, 2))


def test_topk_rows_exact_count_and_static_sparse():
    x = torch.randn(2, 10, 32)
    adj = mia(x, top_k=3, symmetric=False)
    assert bool(((adj > 0).sum(-1) <= 3).all())
    ei, ew = mia(x, top_k=3, symmetric=False, output="sparse")
    assert ei.shape == (2, 2 * 10 * 3)
    assert bool((ei[0] != ei[1]).all())
    assert torch.equal(torch.bincount(ei[1], minlength=20), torch.full((20,), 3))
    ei2, ew2 = mia(x, top_k=3, symmetric=False, loop=True, output="sparse")
    assert ei2.shape == (2, 2 * 10 * 4) and int((ei2[0] == ei2[1]).sum()) == 20


def test_sparse_feeds_message_passing():
    # edge_index[0] are sources, [1] targets: scatter-add of sources equals dense A @ x
    x = torch.randn(2, 6, 30, dtype=torch.float64)
    adj = mia(x, top_k=2, symmetric=False)
    ei, ew = mia(x, top_k=2, symmetric=False, output="sparse")
    feats = torch.randn(12, 3, dtype=torch.float64)
    out = torch.zeros(12, 3, dtype=torch.float64).index_add_(0, ei[1], ew[:, None] * feats[ei[0]])
    assert_close(out.view(2, 6, 3), adj @ feats.view(2, 6, 3))


# ---------------------------------------------------------------------------------------------
# gradients
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("chunk,normalize", [(1, False), (None, "geometric")])
def test_gradcheck(chunk, normalize):
    x = torch.randn(2, 4, 6, dtype=torch.float64, requires_grad=True)
    fn = lambda t: mia(t, bins=3, bandwidth=0.8, normalize=normalize, loop=True, chunk_size=chunk)  # noqa: E731
    assert torch.autograd.gradcheck(fn, (x,), eps=1e-6, atol=1e-5)


def test_gradcheck_sparse_weights():
    x = torch.randn(1, 5, 8, dtype=torch.float64, requires_grad=True)
    fn = lambda t: mia(t, bins=4, top_k=2, output="sparse")[1]  # noqa: E731
    assert torch.autograd.gradcheck(fn, (x,), eps=1e-6, atol=1e-5)


def test_joint_entropy_backward_matches_autograd():
    a = torch.softmax(torch.randn(2, 5, 3, 7, dtype=torch.float64), dim=2)
    g = torch.randn(2, 5, 5, dtype=torch.float64)
    a1 = a.clone().requires_grad_(True)
    joint_entropy(a1, 2, backend="torch").backward(g)
    a2 = a.clone().requires_grad_(True)
    p = torch.einsum("bikc,bjlc->bijkl", a2, a2) / 7
    (-(torch.special.xlogy(p, p).sum((-1, -2))) * g).sum().backward()
    assert_close(a1.grad, a2.grad)


def test_empty_bins_finite_grad():
    # 3 samples, 32 bins: most bins receive no mass (truncated memberships, p = 0, P = 0)
    x = torch.randn(2, 5, 3, requires_grad=True)
    mia(x, bins=32, normalize="geometric", top_k=2).sum().backward()
    assert bool(x.grad.isfinite().all())


@settings(max_examples=15, deadline=None)
@given(n=st.integers(0, 40), seed=st.integers(0, 2**16), dtype=st.sampled_from([torch.float32, torch.float64]))
def test_in_place_xlogx_matches_xlogy_with_zeros_and_denormals(n, seed, dtype):
    # the joint-entropy kernel's p log p: exact zeros must give 0 (not 0 * -inf = nan), denormals ~0,
    # and the result is written into p (no extra (B, rows*bins, N*bins) buffer)
    from graphvision.ops._torch import _xlogx_

    g = torch.Generator().manual_seed(seed)
    p = torch.rand(n, generator=g, dtype=torch.float64) ** 3
    tiny = torch.finfo(dtype).tiny
    special = torch.tensor([0.0, tiny / 4, tiny, 1.0, 0.5], dtype=torch.float64)
    p = torch.cat([p, special]).to(dtype)[torch.randperm(n + 5, generator=g)][:: 1 if n % 2 else 2]
    want = torch.special.xlogy(p.double(), p.double())
    buf = p.clone()
    got = _xlogx_(buf)
    assert got.data_ptr() == buf.data_ptr() and got.dtype == dtype
    assert bool(got.isfinite().all())
    assert_close(got.double(), want, atol=100 * tiny, rtol=4 * torch.finfo(dtype).eps)
    assert bool((got[p == 0] == 0).all())


def test_joint_entropy_kernel_with_empty_joint_bins_matches_definition():
    # hard memberships: most joint bins are exactly empty (P = 0); compare with -sum xlogy(P, P)
    from graphvision.ops._torch import joint_entropy_dense

    g = torch.Generator().manual_seed(3)
    lab = torch.randint(0, 6, (2, 7, 20), generator=g)
    a = torch.nn.functional.one_hot(lab, 6).permute(0, 1, 3, 2).float()  # (B, N, bins, C)
    p = torch.einsum("bikc,bjlc->bijkl", a.double(), a.double()) / a.size(-1)
    want = -torch.special.xlogy(p, p).sum((-1, -2))
    for chunk in (0, 1, 3, 7):
        got = joint_entropy_dense(a, chunk)
        assert_close(got.double(), want, atol=1e-6, rtol=1e-6)


def test_hard_mode_has_no_grad():
    x = torch.randn(1, 4, 10, requires_grad=True)
    assert not mia(x, bandwidth=0).requires_grad
    assert mia(x, bandwidth=0.5).requires_grad


# ---------------------------------------------------------------------------------------------
# backends
# ---------------------------------------------------------------------------------------------


def test_backend_selection(monkeypatch):
    x = torch.randn(1, 3, 4)
    a = torch.softmax(torch.randn(1, 3, 16, 4), dim=2)
    calls = []
    real = torch.ops.graphvision.joint_entropy

    class _Spy:
        def __call__(self, a, chunk, backend):  # noqa: ANN001, ANN204
            calls.append(backend)
            return real(a, chunk, backend)

    monkeypatch.setattr(torch.ops.graphvision, "joint_entropy", _Spy())
    joint_entropy(a, backend="torch")
    joint_entropy(a, backend="auto")  # CPU: torch even when the interpreter is on
    with graphvision.config.use_backend("torch"):
        joint_entropy(a)
    with graphvision.config.use_backend("torch_scatter"):  # no MI kernel there: auto
        joint_entropy(a)
    assert calls == ["torch"] * 4
    with pytest.raises(ValueError, match="Unknown backend 'cuda'"):
        mia(x, backend="cuda")
    monkeypatch.setenv("TRITON_INTERPRET", "0")
    with pytest.raises(RuntimeError, match="backend 'triton' cannot run"):
        mia(x, backend="triton")
    with graphvision.config.use_backend("triton"), pytest.raises(RuntimeError, match="cannot run"):
        mia(x)


def _triton_ok() -> bool:
    from graphvision.ops._triton import triton_usable

    return triton_usable(torch.device("cpu")) or torch.cuda.is_available()


@pytest.mark.triton_interpret
@pytest.mark.parametrize(
    "b,n,c,bins", [(1, 3, 5, 4), (2, 5, 19, 5), (1, 9, 40, 16), (2, 4, 3, 2), (1, 2, 8, 33), (1, 0, 4, 4)]
)
def test_triton_matches_torch(b, n, c, bins):
    if not _triton_ok():
        pytest.skip("Triton cannot run here")
    dev = "cuda" if torch.cuda.is_available() else "cpu"
    x = torch.randn(b, n, c, device=dev)
    x1 = x.clone().requires_grad_(True)
    x2 = x.clone().requires_grad_(True)
    out_t = dense(x1, bins=bins, backend="triton")
    out_r = dense(x2, bins=bins, backend="torch")
    assert torch.equal(out_t, out_t.transpose(1, 2))
    assert_close(out_t, out_r, rtol=1e-4, atol=2e-5)
    g = torch.randn_like(out_r)
    (out_t * g).sum().backward()
    (out_r * g).sum().backward()
    assert_close(x1.grad, x2.grad, rtol=1e-3, atol=1e-4)


@pytest.mark.triton_interpret
@pytest.mark.parametrize("b,n,bins,c", [(1, 3, 4, 5), (2, 5, 3, 19), (1, 9, 16, 40), (1, 4, 2, 70)])
def test_triton_backward_kernel_matches_torch(b, n, bins, c):
    if not _triton_ok():
        pytest.skip("Triton cannot run here")
    from graphvision.ops._triton.k_mutual_information import joint_entropy_backward

    dev = "cuda" if torch.cuda.is_available() else "cpu"
    a = torch.softmax(torch.randn(b, n, bins, c, dtype=torch.float64) * 2, dim=2)
    g = torch.randn(b, n, n, dtype=torch.float64)
    expected = joint_entropy_dense_backward(a, g, 2)
    out = joint_entropy_backward(a.to(dev, torch.float32), g.to(dev, torch.float32))
    assert out.shape == a.shape and out.dtype == torch.float32
    assert_close(out, expected, rtol=1e-4, atol=1e-5)


@pytest.mark.triton_interpret
def test_triton_bins_limit_and_float64():
    if not _triton_ok():
        pytest.skip("Triton cannot run here")
    from graphvision.ops._triton.k_mutual_information import MAX_BINS

    with pytest.raises(RuntimeError, match="bins <="):
        mia(torch.randn(1, 2, 4), bins=MAX_BINS + 1, backend="triton")
    with pytest.raises(RuntimeError, match="float64"):
        mia(torch.randn(1, 2, 4, dtype=torch.float64), backend="triton")


@pytest.mark.triton_interpret
def test_triton_compile_fullgraph():
    if not _triton_ok():
        pytest.skip("Triton cannot run here")
    dev = "cuda" if torch.cuda.is_available() else "cpu"
    x = torch.randn(1, 5, 12, device=dev, requires_grad=True)
    fn = torch.compile(lambda t: mia(t, bins=4, backend="triton"), fullgraph=True, backend="aot_eager")
    out = fn(x)
    assert_close(out, mia(x, bins=4, backend="torch"), rtol=1e-4, atol=2e-5)
    out.sum().backward()
    assert x.grad is not None and bool(x.grad.isfinite().all())


@pytest.mark.triton_interpret
def test_triton_op_opcheck():
    if not _triton_ok():
        pytest.skip("Triton cannot run here")
    import graphvision.ops._library  # noqa: F401

    dev = "cuda" if torch.cuda.is_available() else "cpu"
    a = torch.softmax(torch.randn(1, 3, 4, 8, device=dev), dim=2)
    op = torch.ops.graphvision.joint_entropy.default
    torch.library.opcheck(op, (a, 0, "triton"), test_utils=("test_schema", "test_faketensor"))


_AOT_SCRIPT = """
import os, sys
os.environ.pop("TRITON_INTERPRET", None)
import torch
from graphvision.ops._triton import k_mutual_information as k  # real triton.jit kernels
import tests.ops._aot_compile_driver as d
d.install()  # JITFunction.run -> ahead-of-time compile for sm_90
for prec in ("highest", "high"):  # IEEE fp32 and TF32 dots
    torch.set_float32_matmul_precision(prec)
    a = torch.softmax(torch.randn(2, 50, 16, 64), dim=2)  # the benchmark's bins / channels
    k.joint_entropy(a)
    k.joint_entropy_backward(a, torch.randn(2, 50, 50))
if d.failures:
    print("AOT FAILED", *d.failures, sep="\\n")
    sys.exit(1)
print("AOT OK", d.count)
"""


def test_kernels_compile_for_sm90():
    """The interpreter skips Triton's GPU passes: compile both kernels to a cubin for sm_90 (H100/H200)."""
    pytest.importorskip("triton")
    from tests.ops._aot_compile_driver import run_aot

    out = run_aot(["-c", _AOT_SCRIPT], timeout=600)
    assert "AOT OK 4" in out, out[-3000:]


# ---------------------------------------------------------------------------------------------
# compile and errors
# ---------------------------------------------------------------------------------------------


def test_compile_fullgraph():
    x = torch.randn(2, 6, 12, requires_grad=True)
    dense_fn = torch.compile(lambda t: mia(t, bins=4, normalize=True, top_k=2, chunk_size=4),
                             fullgraph=True, backend="aot_eager")
    assert_close(dense_fn(x), mia(x, bins=4, normalize=True, top_k=2, chunk_size=4))
    dense_fn(x).sum().backward()
    assert x.grad is not None and bool(x.grad.isfinite().all())
    sparse_fn = torch.compile(lambda t: mia(t, bins=4, top_k=2, symmetric=False, output="sparse"),
                              fullgraph=True, backend="aot_eager")
    ei, ew = sparse_fn(x)
    ei_r, ew_r = mia(x, bins=4, top_k=2, symmetric=False, output="sparse")
    assert torch.equal(ei, ei_r)
    assert_close(ew, ew_r)


def test_compile_inductor():
    import shutil

    if shutil.which("c++") is None and shutil.which("g++") is None and shutil.which("clang++") is None:
        pytest.skip("inductor's CPU code generation needs a C++ compiler")
    x = torch.randn(2, 5, 10)
    fn = torch.compile(lambda t: mia(t, bins=4), fullgraph=True)
    assert_close(fn(x), mia(x, bins=4))


@pytest.mark.parametrize(
    "kwargs,err,match",
    [
        (dict(x=[1.0]), TypeError, "Expected 'x' to be a torch.Tensor"),
        (dict(x=torch.randn(2, 3, 4, 5)), ValueError,
         r"Expected 'x' of shape \(B, N, C\) or \(N, C\) \(got \(2, 3, 4, 5\)\)"),
        (dict(x=torch.ones(2, 3, 4, dtype=torch.long)), TypeError, "floating-point dtype"),
        (dict(x=torch.randn(2, 3, 0)), ValueError, "C >= 1"),
        (dict(bins=1), ValueError, "'bins' >= 2"),
        (dict(bins=4.0), TypeError, "'bins' to be an int"),
        (dict(bandwidth=-1.0), ValueError, "'bandwidth' >= 0"),
        (dict(bandwidth="wide"), TypeError, "'bandwidth'"),
        (dict(normalize="entropy"), ValueError, "Expected 'normalize' to be one of"),
        (dict(top_k=0), ValueError, "'top_k' >= 1"),
        (dict(threshold="x"), TypeError, "'threshold'"),
        (dict(output="coo"), ValueError, "Unknown output 'coo'"),
        (dict(chunk_size=0), ValueError, "'chunk_size' >= 1"),
        (dict(backend="gpu"), ValueError, "Unknown backend 'gpu'"),
    ],
)
def test_bad_inputs(kwargs, err, match):
    kwargs = dict(kwargs)
    x = kwargs.pop("x", torch.randn(2, 3, 4))
    with pytest.raises(err, match=match):
        mia(x, **kwargs)
