"""``torch.compile(fullgraph=True, dynamic=True)`` and ``torch.export`` with dynamic sizes.

Each case compiles a module once and calls it on two input sizes: the outputs and input
gradients match eager mode, and the second size reuses the first compiled graph (one frame, no
recompilation). ``backend="aot_eager"`` traces exactly what inductor would receive (Dynamo, fake
tensors, AOT autograd) without the C++ code generation, which takes minutes on a 2-core machine.
The full set is ``slow``; one conv case runs in the default suite.
"""

from __future__ import annotations

import os
import sys

import pytest
import torch
from torch._dynamo.utils import counters

import graphvision.functional as F
import graphvision.nn as gnn

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class ConvOnImage(torch.nn.Module):
    """Converter -> conv (-> pooling), as a user composes them."""

    def __init__(self, conv: torch.nn.Module, pool: torch.nn.Module | None = None, raw: bool = False) -> None:
        super().__init__()
        self.conv, self.pool, self.raw = conv, pool, raw

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        res = F.image_to_graph(image)
        graph = res.edge_index if self.raw else res.graph
        args = (res.x, res.x) if isinstance(self.conv, gnn.GCN2Conv) else (res.x,)
        out = self.conv(*args, graph)
        if self.pool is not None:
            out = self.pool(out, res.batch, size=image.shape[0])
        return out


def _images(c: int) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return [torch.randn(2, c, 5, 6, generator=g), torch.randn(3, c, 7, 8, generator=g)]  # no equal sizes: duck sizing would tie them


def _run(module: torch.nn.Module, inputs: list[torch.Tensor]) -> None:
    torch._dynamo.reset()
    counters.clear()
    compiled = torch.compile(module, fullgraph=True, dynamic=True, backend="aot_eager")
    for x in inputs:
        x1 = x.clone().requires_grad_(True)
        x2 = x.clone().requires_grad_(True)
        ref = module(x1)
        out = compiled(x2)
        torch.testing.assert_close(out, ref, rtol=1e-4, atol=1e-5)
        g = torch.randn_like(ref)
        (ref * g).sum().backward()
        (out * g).sum().backward()
        torch.testing.assert_close(x2.grad, x1.grad, rtol=1e-4, atol=1e-5)
    assert counters["stats"]["unique_graphs"] == 1, "the second input size recompiled"


def test_gat_raw_edge_index_two_sizes_one_graph() -> None:
    torch.manual_seed(0)
    _run(ConvOnImage(gnn.GATConv(4, 3, heads=2), raw=True), _images(4))


CONVS = {
    "gcn": lambda: gnn.GCNConv(4, 6),
    "gat": lambda: gnn.GATConv(4, 3, heads=2),
    "attention_gcn": lambda: gnn.AttentionGCNConv(4, 3, heads=2),
    "gcn2": lambda: gnn.GCN2Conv(4, alpha=0.1),
}


@pytest.mark.slow
@pytest.mark.parametrize("raw", [False, True], ids=["structure", "raw"])
@pytest.mark.parametrize("name", sorted(CONVS))
def test_conv_two_sizes_one_graph(name: str, raw: bool) -> None:
    torch.manual_seed(0)
    _run(ConvOnImage(CONVS[name](), raw=raw), _images(4))


@pytest.mark.slow
def test_attention_pooling_two_sizes_one_graph() -> None:
    torch.manual_seed(0)
    _run(ConvOnImage(gnn.GCNConv(4, 6), gnn.AttentionPooling(6)), _images(4))


@pytest.mark.slow
def test_multi_channel_attention_two_sizes_one_graph() -> None:
    torch.manual_seed(0)
    _run(gnn.MultiChannelAttention(4), _images(4))


class _MI(torch.nn.Module):
    def __init__(self, **kw: object) -> None:
        super().__init__()
        self.mi = gnn.MutualInformationAdjacency(**kw)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.mi(image.flatten(2).transpose(1, 2))  # (B, H*W, C) nodes


@pytest.mark.slow
def test_mutual_information_two_sizes_one_graph() -> None:
    _run(_MI(bins=4), [torch.rand(2, 6, 3, 3), torch.rand(3, 6, 4, 4)])


@pytest.mark.slow
def test_rmcg_model_two_batch_sizes_one_graph() -> None:
    sys.path.insert(0, os.path.join(ROOT, "examples", "rmcg"))
    from models import create_model

    torch.manual_seed(0)
    model = create_model("rmcg", num_classes=3, width=8).eval()
    g = torch.Generator().manual_seed(1)
    _run(model, [torch.rand(2, 3, 32, 32, generator=g), torch.rand(3, 3, 32, 32, generator=g)])


@pytest.mark.slow
@pytest.mark.parametrize("name", ["gcn", "gat", "attention_gcn"])
def test_export_dynamic_nodes_and_edges(name: str) -> None:
    """``torch.export`` with symbolic node and edge counts; the program runs on another size."""
    torch.manual_seed(0)
    conv = CONVS[name]()

    class Wrapped(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = conv

        def forward(self, x: torch.Tensor, edge_index: torch.Tensor) -> torch.Tensor:
            return self.conv(x, edge_index)

    r1, r2 = F.image_to_graph(torch.randn(2, 4, 5, 5)), F.image_to_graph(torch.randn(3, 4, 6, 7))
    # node indices are sorted as int32 when they fit, so the program is valid for N < 2**31
    n, e = torch.export.Dim("n", min=2, max=2**31 - 1), torch.export.Dim("e", min=2)
    prog = torch.export.export(Wrapped(), (r1.x, r1.edge_index), dynamic_shapes=({0: n}, {1: e}))
    for r in (r1, r2):
        torch.testing.assert_close(prog.module()(r.x, r.edge_index), conv(r.x, r.edge_index), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("checks", [True, False], ids=["checks_on", "checks_off"])
def test_out_of_range_index_under_compile_gets_the_eager_error(checks: bool) -> None:
    """Checks skipped while tracing run when the compiled graph runs (CPU: on or off)."""
    from graphvision import config

    torch._dynamo.reset()
    conv = gnn.GCNConv(4, 4)
    compiled = torch.compile(conv, fullgraph=True, dynamic=True, backend="aot_eager")
    x = torch.randn(5, 4)
    good = torch.tensor([[0, 1, 2], [1, 2, 3]])
    old = config.checks_enabled()
    config.set_checks(checks)
    try:
        torch.testing.assert_close(compiled(x, good), conv(x, good))
        with pytest.raises(IndexError, match=r"outside of \[0, 5\).*max 7"):
            compiled(x, torch.tensor([[0, 1, 7], [1, 2, 3]]))
    finally:
        config.set_checks(old)
