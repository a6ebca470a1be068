"""Tests for graphvision.nn.MutualInformationAdjacency."""

from __future__ import annotations

import pytest
import torch

from graphvision.functional import mutual_information_adjacency
from graphvision.nn import MutualInformationAdjacency
from graphvision.testing import assert_close


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(),
        dict(bins=8, top_k=3, output="sparse"),
        dict(normalize="geometric", threshold=0.1, loop=True),
        dict(bandwidth=0.0, top_k=2, symmetric=False, chunk_size=2),
    ],
)
def test_module_matches_functional(kwargs):
    x = torch.randn(2, 9, 20)
    out = MutualInformationAdjacency(**kwargs)(x)
    ref = mutual_information_adjacency(x, **kwargs)
    if isinstance(ref, tuple):
        assert torch.equal(out[0], ref[0])
        assert_close(out[1], ref[1])
    else:
        assert_close(out, ref)


def test_repr_and_no_parameters():
    assert str(MutualInformationAdjacency()) == "MutualInformationAdjacency(bins=16)"
    m = MutualInformationAdjacency(bins=8, normalize=True, top_k=4, output="sparse")
    assert str(m) == "MutualInformationAdjacency(bins=8, normalize=True, top_k=4, output='sparse')"
    assert list(m.parameters()) == []
    m.reset_parameters()


def test_gradient_flows_to_input():
    x = torch.randn(1, 6, 16, requires_grad=True)
    MutualInformationAdjacency(bins=4, top_k=2)(x).sum().backward()
    assert x.grad is not None and bool(x.grad.abs().sum() > 0)


def test_compile_module():
    m = MutualInformationAdjacency(bins=4, top_k=2, symmetric=False, output="sparse")
    x = torch.randn(2, 5, 12)
    ei, ew = torch.compile(m, fullgraph=True, backend="aot_eager")(x)
    ei_r, ew_r = m(x)
    assert torch.equal(ei, ei_r)
    assert_close(ew, ew_r)


@pytest.mark.parametrize(
    "kwargs,err,match",
    [
        (dict(bins=1), ValueError, "'bins' >= 2"),
        (dict(normalize="log"), ValueError, "Expected 'normalize'"),
        (dict(output="csr"), ValueError, "Unknown output 'csr'"),
        (dict(top_k=-1), ValueError, "'top_k' >= 1"),
        (dict(backend="cuda"), ValueError, "Unknown backend 'cuda'"),
        (dict(bandwidth=-0.1), ValueError, "'bandwidth' >= 0"),
    ],
)
def test_constructor_validates(kwargs, err, match):
    with pytest.raises(err, match=match):
        MutualInformationAdjacency(**kwargs)
