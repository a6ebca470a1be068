"""Double backward: supported through ``spmm`` / ``sddmm`` (checked with ``gradgradcheck``),
refused with a clear message through the fused attention and the MI joint-entropy backward."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import graphvision.functional as F
import graphvision.ops as ops


@settings(max_examples=8, deadline=None)
@given(n=st.integers(1, 5), e=st.integers(0, 9), heads=st.sampled_from([None, 1, 2]), seed=st.integers(0, 2**16))
def test_spmm_gradgradcheck(n: int, e: int, heads: int | None, seed: int) -> None:
    g = torch.Generator().manual_seed(seed)
    ei = torch.randint(0, n, (2, e), generator=g)  # duplicates and self-loops included
    k = heads or 1
    x = torch.randn(n, k, 3, generator=g, dtype=torch.float64, requires_grad=True)
    shape = (e,) if heads is None else (e, k)
    w = torch.rand(shape, generator=g, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradgradcheck(lambda x, w: ops.spmm(ei, w, x, n), (x, w))


def test_attention_double_backward_is_refused_clearly() -> None:
    ei = torch.tensor([[0, 1, 2], [1, 2, 0]])
    x = torch.randn(3, 2, 4, requires_grad=True)
    a_s, a_d = torch.randn(3, 2, requires_grad=True), torch.randn(3, 2, requires_grad=True)
    out = ops.attention_aggregate(x, a_s, a_d, ei)
    (gx,) = torch.autograd.grad(out.square().sum(), x, create_graph=True)
    with pytest.raises(RuntimeError, match="double backward.*attention_aggregate.*segment_softmax"):
        gx.sum().backward()


def test_mutual_information_double_backward_is_refused_clearly() -> None:
    x = torch.randn(1, 4, 6, requires_grad=True)
    (gx,) = torch.autograd.grad(F.mutual_information_adjacency(x, bins=4).sum(), x, create_graph=True)
    with pytest.raises(RuntimeError, match="double backward.*mutual_information_adjacency"):
        gx.sum().backward()
