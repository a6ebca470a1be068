"""Tests for graphvision.nn.MultiChannelAttention."""

from __future__ import annotations

import pytest
import torch

from graphvision.functional import Affine, ChannelAttentionWeights, multi_channel_attention
from graphvision.nn import MultiChannelAttention
from graphvision.testing import assert_close


def functional_twin(m: MultiChannelAttention, x: torch.Tensor, **kw):
    aff = lambda mod: None if mod is None else Affine(mod.weight, mod.bias)  # noqa: E731
    weights = ChannelAttentionWeights(
        aff(m.q_proj), aff(m.kv_proj), aff(m.out_proj), m.temperature, gate_proj=aff(m.gate_proj),
        norm1=aff(m.norm1), norm2=aff(m.norm2), ffn1=aff(m.ffn1), ffn2=aff(m.ffn2),
    )
    return multi_channel_attention(x, weights, m.heads, norm=m.norm, normalize=m.normalize, **kw)


@pytest.mark.parametrize(
    "kwargs",
    [dict(), dict(heads=4), dict(gate=False, ffn_ratio=0), dict(norm=False, bias=False),
     dict(normalize=False, heads=2)],
)
def test_module_matches_functional(kwargs):
    m = MultiChannelAttention(8, **kwargs)
    for x in (torch.randn(2, 8, 3, 5), torch.randn(2, 15, 8)):
        out, attn = m(x, return_attention_weights=True)
        ref, ref_attn = functional_twin(m, x, return_attention_weights=True)
        assert out.shape == x.shape
        assert_close(out, ref)
        assert_close(attn, ref_attn)
        assert m.last_attention is not None and torch.equal(m.last_attention, attn.detach())


def test_options_build_the_right_parts():
    m = MultiChannelAttention(6, heads=3, ffn_ratio=0, gate=False, norm=False, bias=False)
    assert m.gate_proj is None and m.ffn1 is None and m.norm1 is None and m.q_proj.bias is None
    n_params = sum(p.numel() for p in m.parameters())
    assert n_params == 6 * 6 + 12 * 6 + 6 * 6 + 3
    full = MultiChannelAttention(6, heads=3)
    assert full.hidden_channels == 12
    assert {n for n, _ in full.named_parameters()} >= {"temperature", "kv_proj.weight", "gate_proj.weight",
                                                        "ffn1.weight", "ffn2.weight", "norm1.weight"}


def test_repr():
    assert MultiChannelAttention(16, heads=4).extra_repr() == "16, heads=4, ffn_ratio=2.0"
    m = MultiChannelAttention(8, heads=2, ffn_ratio=0, gate=False, dropout=0.1)
    assert m.extra_repr() == "8, heads=2, ffn_ratio=0.0, gate=False, dropout=0.1"
    assert str(m).splitlines()[:2] == ["MultiChannelAttention(", "  8, heads=2, ffn_ratio=0.0, gate=False, dropout=0.1"]


def test_reset_parameters_and_device_dtype():
    m = MultiChannelAttention(8, heads=2, dtype=torch.float64, device="cpu")
    assert all(p.dtype == torch.float64 for p in m.parameters())
    with torch.no_grad():
        m.temperature.fill_(5.0)
        m.norm1.weight.fill_(3.0)
    before = m.q_proj.weight.clone()
    m.reset_parameters()
    assert torch.equal(m.temperature, torch.ones(2, dtype=torch.float64))
    assert torch.equal(m.norm1.weight, torch.ones(8, dtype=torch.float64))
    assert not torch.equal(m.q_proj.weight, before)
    out = m(torch.randn(1, 8, 2, 2, dtype=torch.float64))
    assert out.dtype == torch.float64


def test_backward_reaches_every_parameter():
    m = MultiChannelAttention(8, heads=2)
    m(torch.randn(2, 8, 4, 4)).square().sum().backward()
    for name, p in m.named_parameters():
        assert p.grad is not None and bool(p.grad.abs().sum() > 0), name


def test_train_eval_dropout():
    m = MultiChannelAttention(8, heads=2, dropout=0.5)
    x = torch.randn(2, 10, 8)
    m.eval()
    assert torch.equal(m(x), m(x))
    m.train()
    assert not torch.equal(m(x), m(x))


def test_compile_module():
    m = MultiChannelAttention(8, heads=2)
    x = torch.randn(2, 8, 4, 4)
    cm = torch.compile(m, fullgraph=True, backend="aot_eager")
    assert_close(cm(x), m(x))
    out, attn = cm(x, return_attention_weights=True)
    assert attn.shape == (2, 2, 4, 4)


def test_state_dict_roundtrip():
    a, b = MultiChannelAttention(8, heads=2), MultiChannelAttention(8, heads=2)
    b.load_state_dict(a.state_dict())
    x = torch.randn(1, 8, 3, 3)
    assert torch.equal(a(x), b(x))


@pytest.mark.parametrize(
    "kwargs,err,match",
    [
        (dict(channels=0), ValueError, "'channels' >= 1"),
        (dict(channels=6, heads=4), ValueError, "divisible by 'heads'=4"),
        (dict(channels=8, ffn_ratio=-1), ValueError, "'ffn_ratio' >= 0"),
        (dict(channels=8, dropout=1.0), ValueError, r"'dropout' in \[0, 1\)"),
        (dict(channels=8.0), TypeError, "'channels' to be an int"),
    ],
)
def test_constructor_errors(kwargs, err, match):
    with pytest.raises(err, match=match):
        MultiChannelAttention(**kwargs)


def test_forward_channel_mismatch_error():
    m = MultiChannelAttention(8)
    with pytest.raises(ValueError, match=r"Expected 'q_proj.weight' of shape \(4, 4\) for C=4"):
        m(torch.randn(1, 4, 3, 3))
