"""Tests for graphvision.functional.channel_attention / multi_channel_attention."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from graphvision.functional import Affine, ChannelAttentionWeights, channel_attention, multi_channel_attention
from graphvision.testing import assert_close

# ---------------------------------------------------------------------------------------------
# naive oracles (loops over samples, heads and channel pairs)
# ---------------------------------------------------------------------------------------------


def ref_channel_attention(q, k, v, tau, heads, normalize):
    """(B, L, C) -> (B, L, C), (B, K, d, d), from the definitions, loop by loop."""
    bsz, length, c = q.shape
    d = c // heads
    out = torch.zeros_like(v)
    attn = torch.zeros(bsz, heads, d, d, dtype=q.dtype)
    for b in range(bsz):
        for h in range(heads):
            t = float(tau[h]) if isinstance(tau, torch.Tensor) else tau
            logits = torch.zeros(d, d, dtype=q.dtype)
            for i in range(d):
                qi = q[b, :, h * d + i]
                for j in range(d):
                    kj = k[b, :, h * d + j]
                    s = torch.dot(qi, kj)
                    if normalize:
                        s = s / (max(float(qi.norm()), 1e-12) * max(float(kj.norm()), 1e-12))
                    logits[i, j] = t * s
            a = torch.exp(logits - logits.max(dim=1, keepdim=True).values)
            a = a / a.sum(dim=1, keepdim=True)
            attn[b, h] = a
            for i in range(d):
                for j in range(d):
                    out[b, :, h * d + i] += a[i, j] * v[b, :, h * d + j]
    return out, attn


def ref_layer_norm(x, w, b, eps=1e-5):
    mu = x.mean(-1, keepdim=True)
    var = ((x - mu) ** 2).mean(-1, keepdim=True)
    y = (x - mu) / torch.sqrt(var + eps)
    return y * (1 if w is None else w) + (0 if b is None else b)


def ref_block(x_tokens, p, heads, norm=True, normalize=True):
    """The block's formulas from the docstring, on (B, L, C) tokens."""
    xn = ref_layer_norm(x_tokens, p["n1w"], p["n1b"]) if norm else x_tokens
    q = xn @ p["wq"].T + p["bq"]
    kv = q @ p["wkv"].T + p["bkv"]
    c = x_tokens.size(-1)
    k, v = kv[..., :c], kv[..., c:]
    o, a = ref_channel_attention(q, k, v, p["tau"], heads, normalize)
    if p.get("wg") is not None:
        o = o * (1 / (1 + torch.exp(-(xn @ p["wg"].T + p["bg"]))))
    y = x_tokens + o @ p["wo"].T + p["bo"]
    if p.get("w1") is not None:
        yn = ref_layer_norm(y, p["n2w"], p["n2b"]) if norm else y
        h = yn @ p["w1"].T + p["b1"]
        h = 0.5 * h * (1 + torch.erf(h / math.sqrt(2)))
        y = y + h @ p["w2"].T + p["b2"]
    return y, a


def make_params(c, heads, hidden, g, dtype=torch.float64, gate=True, ffn=True):
    r = lambda *s: torch.randn(*s, generator=g, dtype=dtype) / math.sqrt(s[-1])  # noqa: E731
    p = dict(
        wq=r(c, c), bq=r(c), wkv=r(2 * c, c), bkv=r(2 * c), wo=r(c, c), bo=r(c),
        tau=torch.rand(heads, generator=g, dtype=dtype) * 3 + 0.5,
        n1w=1 + r(c), n1b=r(c), n2w=1 + r(c), n2b=r(c),
    )
    p["wg"], p["bg"] = (r(c, c), r(c)) if gate else (None, None)
    p["w1"], p["b1"], p["w2"], p["b2"] = (r(hidden, c), r(hidden), r(c, hidden), r(c)) if ffn else (None,) * 4
    return p


def call_block(x, p, heads, **kw):
    def aff(w, b):
        return None if p[w] is None else Affine(p[w], p[b])

    weights = ChannelAttentionWeights(
        aff("wq", "bq"), aff("wkv", "bkv"), aff("wo", "bo"), p["tau"], gate_proj=aff("wg", "bg"),
        norm1=aff("n1w", "n1b"), norm2=aff("n2w", "n2b"), ffn1=aff("w1", "b1"), ffn2=aff("w2", "b2"),
    )
    return multi_channel_attention(x, weights, heads, **kw)


# ---------------------------------------------------------------------------------------------
# channel_attention
# ---------------------------------------------------------------------------------------------


@settings(max_examples=25)
@given(
    b=st.integers(0, 2), length=st.integers(0, 9), d=st.integers(1, 4), heads=st.integers(1, 3),
    normalize=st.booleans(), seed=st.integers(0, 2**16),
)
def test_channel_attention_matches_reference(b, length, d, heads, normalize, seed):
    g = torch.Generator().manual_seed(seed)
    c = d * heads
    q, k, v = (torch.randn(b, length, c, generator=g, dtype=torch.float64) for _ in range(3))
    tau = torch.rand(heads, generator=g, dtype=torch.float64) * 4
    out, attn = channel_attention(q, k, v, tau, heads=heads, normalize=normalize)
    ref_out, ref_attn = ref_channel_attention(q, k, v, tau, heads, normalize)
    assert out.shape == (b, length, c) and attn.shape == (b, heads, d, d)
    assert_close(out, ref_out)
    assert_close(attn, ref_attn)
    if b:
        assert_close(attn.sum(-1), torch.ones(b, heads, d, dtype=torch.float64))


def test_channel_attention_hand_computed():
    # one head, two orthogonal channels: cosine logits [[1, 0], [0, 1]] * tau
    q = torch.tensor([[[1.0, 0.0], [0.0, 1.0]]])  # (B=1, L=2, C=2): channel 0 = e1, channel 1 = e2
    out, attn = channel_attention(q, q, q, temperature=math.log(3.0))
    expected = torch.tensor([[0.75, 0.25], [0.25, 0.75]])  # softmax([log 3, 0])
    assert_close(attn[0, 0], expected)
    assert_close(out[0], (expected @ q[0].T).T)


def test_danet_channel_energy():
    # normalize=False, tau=1, q=k=v=X: softmax(X X^T) X over channels (DANet's channel attention)
    x = torch.randn(2, 30, 5, dtype=torch.float64) * 0.3
    out, attn = channel_attention(x, x, x, normalize=False)
    xc = x.transpose(1, 2)  # (B, C, L)
    a = torch.softmax(xc @ xc.transpose(1, 2), dim=-1)
    assert_close(attn[:, 0], a)
    assert_close(out, (a @ xc).transpose(1, 2))


def test_channel_attention_zero_channel_no_nan():
    q = torch.randn(1, 6, 4)
    q[..., 1] = 0
    out, attn = channel_attention(q, q, q, heads=2)
    assert bool(out.isfinite().all()) and bool(attn.isfinite().all())


def test_channel_attention_linear_memory_in_length():
    # an L x L intermediate would need 64 GiB here; the channel relation needs 4 x 4
    length = 2**17
    q = torch.randn(1, length, 4)
    out, attn = channel_attention(q, q, q)
    assert out.shape == (1, length, 4) and attn.shape == (1, 1, 4, 4)


def test_channel_attention_errors():
    q = torch.randn(2, 5, 6)
    with pytest.raises(ValueError, match=r"Expected 'q' of shape \(B, L, C\)"):
        channel_attention(q[0], q[0], q[0])
    with pytest.raises(ValueError, match="same shape"):
        channel_attention(q, q[:, :4], q)
    with pytest.raises(ValueError, match="divisible by 'heads'=4"):
        channel_attention(q, q, q, heads=4)
    with pytest.raises(ValueError, match="'temperature' of shape"):
        channel_attention(q, q, q, torch.ones(3), heads=2)
    with pytest.raises(TypeError, match="floating-point"):
        channel_attention(q.long(), q.long(), q.long())


# ---------------------------------------------------------------------------------------------
# multi_channel_attention
# ---------------------------------------------------------------------------------------------


@settings(max_examples=20)
@given(
    b=st.integers(1, 2), h=st.integers(1, 4), w=st.integers(1, 4), d=st.integers(1, 3), heads=st.integers(1, 3),
    gate=st.booleans(), ffn=st.booleans(), norm=st.booleans(), normalize=st.booleans(), seed=st.integers(0, 2**16),
)
def test_block_matches_reference(b, h, w, d, heads, gate, ffn, norm, normalize, seed):
    g = torch.Generator().manual_seed(seed)
    c = d * heads
    p = make_params(c, heads, 2 * c, g, gate=gate, ffn=ffn)
    x = torch.randn(b, c, h, w, generator=g, dtype=torch.float64)
    out, attn = call_block(x, p, heads, norm=norm, normalize=normalize, return_attention_weights=True)
    tokens = x.flatten(2).transpose(1, 2)
    ref, ref_attn = ref_block(tokens, p, heads, norm=norm, normalize=normalize)
    assert out.shape == x.shape
    assert_close(out, ref.transpose(1, 2).reshape(x.shape))
    assert_close(attn, ref_attn)
    # the same data as (B, N, C) nodes gives the same result
    out_nodes = call_block(tokens, p, heads, norm=norm, normalize=normalize)
    assert_close(out_nodes, ref)


def test_position_permutation_equivariance_and_noncontiguous():
    g = torch.Generator().manual_seed(0)
    p = make_params(6, 2, 12, g)
    x = torch.randn(2, 20, 6, dtype=torch.float64, generator=g)
    perm = torch.randperm(20, generator=g)
    out, attn = call_block(x, p, 2, return_attention_weights=True)
    out_p, attn_p = call_block(x[:, perm], p, 2, return_attention_weights=True)
    assert_close(out_p, out[:, perm])
    assert_close(attn_p, attn)
    img = torch.randn(2, 6, 4, 5, dtype=torch.float64, generator=g).to(memory_format=torch.channels_last)
    assert not img.is_contiguous()
    assert_close(call_block(img, p, 2), call_block(img.contiguous(), p, 2))


def test_empty_positions_and_batch():
    g = torch.Generator().manual_seed(0)
    p = make_params(4, 2, 8, g)
    for shape in [(0, 4, 3, 3), (2, 0, 4), (2, 4, 0, 3)]:
        x = torch.randn(*shape, dtype=torch.float64)
        out, attn = call_block(x, p, 2, return_attention_weights=True)
        assert out.shape == x.shape and attn.shape == (shape[0], 2, 2, 2)


def test_dropout_only_in_training():
    g = torch.Generator().manual_seed(0)
    p = make_params(8, 2, 16, g)
    x = torch.randn(2, 10, 8, dtype=torch.float64)
    eval_out = call_block(x, p, 2, dropout=0.5, training=False)
    assert_close(eval_out, call_block(x, p, 2))
    torch.manual_seed(1)
    train_out = call_block(x, p, 2, dropout=0.5, training=True)
    assert not torch.allclose(train_out, eval_out)


def test_gradcheck_block():
    g = torch.Generator().manual_seed(0)
    p = make_params(4, 2, 6, g)
    x = torch.randn(1, 4, 2, 3, dtype=torch.float64, requires_grad=True)
    leaves = {k: v.clone().requires_grad_(True) for k, v in p.items() if v is not None}

    def fn(x, *vals):
        q = dict(p)
        q.update(zip(leaves.keys(), vals))
        return call_block(x, q, 2)

    # fast mode: one random projection of the Jacobian per input (~130 inputs otherwise dominate)
    assert torch.autograd.gradcheck(fn, (x, *leaves.values()), eps=1e-6, atol=1e-5, fast_mode=True)


def test_gradcheck_channel_attention():
    q, k, v = (torch.randn(2, 5, 4, dtype=torch.float64, requires_grad=True) for _ in range(3))
    tau = torch.tensor([1.0, 2.0], dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda *a: channel_attention(*a, heads=2)[0], (q, k, v, tau))


def test_compile_fullgraph():
    g = torch.Generator().manual_seed(0)
    p = make_params(8, 2, 16, g, dtype=torch.float32)
    x = torch.randn(2, 8, 4, 4)
    fn = torch.compile(lambda t: call_block(t, p, 2, return_attention_weights=True), fullgraph=True, backend="aot_eager")
    out, attn = fn(x)
    ref, ref_attn = call_block(x, p, 2, return_attention_weights=True)
    assert_close(out, ref)
    assert_close(attn, ref_attn)


@pytest.mark.parametrize(
    "change,err,match",
    [
        (dict(x=torch.randn(2, 4)), ValueError,
         r"Expected 'x' of shape \(B, C, H, W\) or \(B, N, C\) \(got \(2, 4\)\)"),
        (dict(x=torch.ones(1, 4, 2, 2, dtype=torch.long)), TypeError, "floating-point"),
        (dict(x=torch.randn(1, 5, 2, 2)), ValueError, r"Expected 'q_proj.weight' of shape \(5, 5\)"),
        (dict(wkv=torch.randn(4, 4)), ValueError, r"Expected 'kv_proj.weight' of shape \(8, 4\)"),
        (dict(bq=torch.randn(3)), ValueError, r"Expected 'q_proj.bias' of shape \(4,\)"),
        (dict(tau=torch.ones(3)), ValueError, r"Expected 'temperature' of shape \(K,\) = \(2,\)"),
        (dict(w2=None), ValueError, r"Expected 'ffn2' to be an Affine\(weight, bias\) \(got None\)"),
        (dict(w1=torch.randn(6, 3)), ValueError, r"Expected 'ffn1.weight' of shape \(F, C\)"),
        (dict(heads=3), ValueError, "divisible by 'heads'=3"),
        (dict(dropout=1.5), ValueError, r"'dropout' in \[0, 1\)"),
    ],
)
def test_block_errors(change, err, match):
    g = torch.Generator().manual_seed(0)
    p = make_params(4, 2, 6, g, dtype=torch.float32)
    change = dict(change)
    x = change.pop("x", torch.randn(1, 4, 2, 2))
    heads = change.pop("heads", 2)
    dropout = change.pop("dropout", 0.0)
    p.update(change)
    with pytest.raises(err, match=match):
        call_block(x, p, heads, dropout=dropout)
