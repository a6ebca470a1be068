"""``torch.compile(fullgraph=True, dynamic=True)`` and ``torch.export`` with dynamic sizes.

Each case compiles a module once and calls it on two input sizes: the outputs and input
gradients match eager mode, and the second size reuses the first compiled graph (one frame, no
recompilation). ``backend="aot_eager"`` traces exactly what inductor would receive (Dynamo, fake
tensors, AOT autograd) without the C++ code generation, which takes minutes on a 2-core machine.
The table below covers every public name of :mod:`graphvision.nn` and every functional op that
no module reaches (``test_every_public_name_has_a_case`` keeps it complete). Known limits:

- ``RadiusGraph``, ``SuperpixelGraph`` (with ``labels``), the per-graph (PyG) path of
  ``TopKPooling`` / ``SAGPooling``, the pooled graph of the static path and thresholded MI
  have data-dependent output sizes: they run with ``capture_dynamic_output_shape_ops`` and
  ``capture_scalar_outputs`` (torch 2.13 traces them without, older versions need them).
- ``SuperpixelGraph`` without ``labels`` runs SLIC in scikit-image (NumPy): a graph break
  under ``torch.compile`` and a failure under ``torch.export``; compute the labels outside.
- The kNN layers (``KNNGraph``, ``DynamicEdgeConv``, ``Grapher``, ``PatchGraph(k=...)``)
  compute one block of distances while ``B N^2 <= 2**24``: ``torch.compile`` guards on that
  bound (a larger input recompiles once, into the chunked loop, which specialises on ``N``)
  and ``torch.export`` needs ``Dim`` ranges inside it.

The full set is ``slow``; one conv case and the completeness check run in the default suite.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from typing import NamedTuple

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
    return [
        torch.randn(2, c, 5, 6, generator=g),
        torch.randn(3, c, 7, 8, generator=g),
    ]  # no equal sizes: duck sizing would tie them


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


@pytest.mark.slow
def test_rmcg_model_two_batch_sizes_one_graph() -> None:
    sys.path.insert(0, os.path.join(ROOT, "examples", "rmcg"))
    from models import create_model

    torch.manual_seed(0)
    model = create_model("rmcg", num_classes=3, width=8).eval()
    g = torch.Generator().manual_seed(1)
    _run(model, [torch.rand(2, 3, 32, 32, generator=g), torch.rand(3, 3, 32, 32, generator=g)])


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


# --------------------------------------------------------------------------------------------
# Every public module and functional op, two sizes each (issue 12 item 1)
# --------------------------------------------------------------------------------------------


def _tensors(out: object) -> list[torch.Tensor]:
    if isinstance(out, torch.Tensor):
        return [out]
    if isinstance(out, (tuple, list)):
        return [t for o in out for t in _tensors(o)]
    return []


def _run_case(module: torch.nn.Module, inputs: list[tuple[torch.Tensor, ...]], one_graph: bool = True) -> None:
    """``_run`` for several inputs and outputs: float inputs get gradients, every output is compared.

    Eager forward and backward run before the compiled ones: a module's in-place buffer updates
    (batch-norm statistics) between a forward and its backward would fail the eager backward.
    """
    torch._dynamo.reset()
    counters.clear()
    compiled = torch.compile(module, fullgraph=True, dynamic=True, backend="aot_eager")

    def forward_backward(fn, args: tuple[torch.Tensor, ...]) -> tuple[list[torch.Tensor], list[torch.Tensor | None]]:
        leaves = [a.clone().requires_grad_(a.is_floating_point()) for a in args]
        outs = _tensors(fn(*leaves))
        diff = [o for o in outs if o.requires_grad]
        if diff:
            gen = torch.Generator().manual_seed(2)
            sum((o * torch.randn(o.shape, generator=gen)).sum() for o in diff).backward()
        return [o.detach() for o in outs], [a.grad for a in leaves]

    for args in inputs:
        ref, ref_grads = forward_backward(module, args)
        out, out_grads = forward_backward(compiled, args)
        assert len(out) == len(ref)
        for o, r in zip(out, ref, strict=True):
            torch.testing.assert_close(o, r, rtol=1e-4, atol=1e-5)
        for o, r in zip(out_grads, ref_grads, strict=True):
            assert (o is None) == (r is None)
            if r is not None:
                torch.testing.assert_close(o, r, rtol=1e-4, atol=1e-5)
    if one_graph:
        assert counters["stats"]["unique_graphs"] == 1, "the second input size recompiled"


class _Call(torch.nn.Module):
    """``fn(module, *inputs)`` as a module: picks the tensors out of the structured results."""

    def __init__(self, module: torch.nn.Module | None, fn) -> None:
        super().__init__()
        self.module, self.fn = module, fn

    def forward(self, *args: torch.Tensor) -> object:
        return self.fn(self.module, *args)


# Two sizes that share no value with each other or with the feature sizes (4, 6): dynamic=True
# gives equal sizes one symbol ("duck sizing"), which would hide a specialisation.
_SIZES = ((7, 19), (11, 29))


def _graphs(f: int = 4, edge_dim: int | None = None) -> list[tuple[torch.Tensor, ...]]:
    """Random graphs (self-loops and duplicate edges allowed) with ``f`` features at two sizes."""
    g = torch.Generator().manual_seed(0)
    out = []
    for n, e in _SIZES:
        args = (torch.randn(n, f, generator=g), torch.randint(0, n, (2, e), generator=g))
        if edge_dim is not None:
            args += (torch.randn(e, edge_dim, generator=g),)
        out.append(args)
    return out


def _points(f: int = 3) -> list[tuple[torch.Tensor, ...]]:
    g = torch.Generator().manual_seed(0)
    return [(torch.rand(n, f, generator=g),) for n, _ in _SIZES]


def _image_args(c: int = 4) -> list[tuple[torch.Tensor, ...]]:
    return [(im,) for im in _images(c)]


def _even_images(c: int = 4) -> list[tuple[torch.Tensor, ...]]:
    g = torch.Generator().manual_seed(0)
    return [(torch.randn(2, c, 4, 6, generator=g),), (torch.randn(3, c, 6, 8, generator=g),)]  # c != 4


def _pixel_graph(m, image):  # converter -> (x, graph), so layers see a structure and the image's sizes
    res = F.image_to_graph(image)
    return m(res.x, res.x, res.graph) if isinstance(m, gnn.GCN2Conv) else m(res.x, res.graph)


def _xei(m, x, ei, *rest):
    return m(x, ei, *rest)


def _mp_layer() -> torch.nn.Module:
    class WeightedMean(gnn.MessagePassing):
        def __init__(self) -> None:
            super().__init__(aggr="mean")
            self.lin = torch.nn.Linear(4, 6)

        def forward(self, x, edge_index):
            return self.propagate(edge_index, x=self.lin(x))

        def message(self, x_i, x_j):
            return torch.sigmoid((x_i * x_j).sum(-1, keepdim=True)) * x_j

    return WeightedMean()


def _labels(image: torch.Tensor) -> torch.Tensor:
    """A label map of 2x3-pixel blocks, so superpixel graphs need no SLIC."""
    b, _, h, w = image.shape
    rows = torch.arange(h) // 2
    cols = torch.arange(w) // 3
    lab = rows[:, None] * ((w + 2) // 3) + cols[None, :]
    return lab.expand(b, h, w).contiguous()


def _mi_images() -> list[tuple[torch.Tensor, ...]]:
    g = torch.Generator().manual_seed(0)
    return [(torch.rand(2, 3, 5, 4, generator=g),), (torch.rand(3, 3, 4, 6, generator=g),)]


_CAPTURE = {"capture_dynamic_output_shape_ops": True, "capture_scalar_outputs": True}
_SLIC = "SLIC runs in scikit-image on NumPy arrays: a graph break (compute 'labels' outside and pass them)"


def _slic(m, im):
    pytest.importorskip("skimage")
    return m(im).x


def _unpack(out: object) -> tuple:
    return tuple(t for t in out if t is not None)


def _region(r) -> tuple:
    return r.x, r.edge_index, r.batch, r.pos, r.edge_weight


def _grid(im: torch.Tensor) -> torch.Tensor:
    return F.grid_graph(im.shape[2], im.shape[3], 4)


def _flat(im: torch.Tensor):
    res = F.image_to_graph(im)
    return res.x, res.batch


def _global_pools(im: torch.Tensor) -> tuple[torch.Tensor, ...]:
    b, c, h, w = im.shape
    x, batch = F.to_nodes(im).reshape(b * h * w, c), torch.arange(b).repeat_interleave(h * w)
    return F.global_sum_pool(x, batch, b), F.global_mean_pool(x, batch, b), F.global_max_pool(x, batch, b)


def _structure_convs() -> torch.nn.ModuleList:
    # one conv per way of deriving from the structure: GCN norm, attention with self-loops, both,
    # plain CSR aggregation, dense neighbour table, the MessagePassing base
    return torch.nn.ModuleList(
        [
            gnn.GCNConv(4, 6),
            gnn.GATConv(4, 3, heads=2),
            gnn.AttentionGCNConv(4, 3, heads=2),
            gnn.SAGEConv(4, 6),
            gnn.MRConv(torch.nn.Linear(8, 6)),
            _mp_layer(),
        ]
    )


def _on_one_structure(convs: torch.nn.ModuleList, image: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """Every conv on the same converter structure: what each derives (CSR, self-loops, norm) is shared."""
    return tuple(_pixel_graph(conv, image) for conv in convs)


class Case(NamedTuple):
    """A compile case: the module, how to call it, its inputs at two sizes."""

    make: Callable[[], torch.nn.Module] | None  # None: a functional op (``call`` ignores the module)
    call: Callable[..., object]  # call(module, *inputs) -> tensors (picked out of structured results)
    inputs: Callable[[], list[tuple[torch.Tensor, ...]]]
    config: dict = {}  # torch._dynamo.config patches
    xfail: str | None = None  # strict xfail reason


MODULES = {
    # converters
    "ImageToGraph": Case(lambda: gnn.ImageToGraph(similarity="cosine"), lambda m, im: tuple(m(im)), _image_args),
    "ImageToGraph-4": Case(lambda: gnn.ImageToGraph(4, dilation=2, loop=True), lambda m, im: tuple(m(im)), _image_args),
    "PatchGraph-grid": Case(
        lambda: gnn.PatchGraph(2, similarity="gaussian"), lambda m, im: tuple(m(im)), lambda: _even_images(3)
    ),
    "PatchGraph-knn": Case(
        lambda: gnn.PatchGraph(2, k=3, features="flatten"), lambda m, im: tuple(m(im)), lambda: _even_images(3)
    ),
    "KNNGraph": Case(lambda: gnn.KNNGraph(3), lambda m, x: m(x), _points),
    "KNNGraph-cosine": Case(lambda: gnn.KNNGraph(3, loop=True, metric="cosine"), lambda m, x: m(x), _points),
    "RadiusGraph": Case(lambda: gnn.RadiusGraph(0.5, max_num_neighbors=4), lambda m, x: m(x), _points, config=_CAPTURE),
    "SuperpixelGraph": Case(
        lambda: gnn.SuperpixelGraph(similarity="cosine"),
        lambda m, im: _region(m(im, _labels(im))),
        _image_args,
        config=_CAPTURE,
    ),
    "SuperpixelGraph-slic": Case(
        lambda: gnn.SuperpixelGraph(n_segments=4), _slic, lambda: _image_args(3), config=_CAPTURE, xfail=_SLIC
    ),
    "NodesToImage": Case(
        lambda: gnn.NodesToImage(8, 12, patch_size=4, mode="bilinear"),
        lambda m, v: m(v),
        lambda: [(torch.randn(2 * 6, 3),), (torch.randn(3 * 6, 3),)],
    ),
    # convolutions on a raw (x, edge_index[, edge_attr])
    "GCNConv": Case(lambda: gnn.GCNConv(4, 6), _xei, _graphs),
    "GATConv": Case(lambda: gnn.GATConv(4, 3, heads=2), _xei, _graphs),
    "GATConv-edge_dim": Case(
        lambda: gnn.GATConv(4, 3, heads=2, edge_dim=2),
        lambda m, x, ei, ea: m(x, ei, edge_attr=ea),
        lambda: _graphs(edge_dim=2),
    ),
    "AttentionGCNConv": Case(lambda: gnn.AttentionGCNConv(4, 3, heads=2, alpha=0.1), _xei, _graphs),
    "GCN2Conv": Case(lambda: gnn.GCN2Conv(4, alpha=0.1), lambda m, x, ei: m(x, x, ei), _graphs),
    "EdgeConditionedConv": Case(
        lambda: gnn.EdgeConditionedConv(4, 3, torch.nn.Linear(2, 12)), _xei, lambda: _graphs(edge_dim=2)
    ),
    "GATv2Conv": Case(lambda: gnn.GATv2Conv(4, 3, heads=2, edge_dim=2), _xei, lambda: _graphs(edge_dim=2)),
    "SAGEConv": Case(lambda: gnn.SAGEConv(4, 6), _xei, _graphs),
    "SAGEConv-max": Case(lambda: gnn.SAGEConv(4, 6, aggr="max", normalize=True, project=True), _xei, _graphs),
    "GraphConv": Case(lambda: gnn.GraphConv(4, 6), lambda m, x, ei: m(x, ei, x[:, 0].sigmoid()[ei[0]]), _graphs),
    "GINConv": Case(lambda: gnn.GINConv(torch.nn.Linear(4, 6), train_eps=True), _xei, _graphs),
    "GINEConv": Case(lambda: gnn.GINEConv(torch.nn.Linear(4, 6), edge_dim=2), _xei, lambda: _graphs(edge_dim=2)),
    "MRConv": Case(lambda: gnn.MRConv(torch.nn.Linear(8, 6)), _xei, _graphs),
    "EdgeConv": Case(lambda: gnn.EdgeConv(torch.nn.Linear(8, 6), aggr="mean"), _xei, _graphs),
    "MessagePassing": Case(_mp_layer, _xei, _graphs),
    # every conv on one converter structure (derived CSR / self-loops / normalisation in the graph)
    "structure-all-convs": Case(_structure_convs, _on_one_structure, _image_args),
    # graph built inside
    "DynamicEdgeConv": Case(lambda: gnn.DynamicEdgeConv(torch.nn.Linear(6, 4), k=3), lambda m, x: m(x), _points),
    "Grapher": Case(lambda: gnn.Grapher(8, k=3, groups=2), lambda m, im: m(im), lambda: _image_args(8)),
    "Grapher-edge": Case(
        lambda: gnn.Grapher(8, k=3, dilation=2, conv="edge", relative_pos=True, groups=2).eval(),
        lambda m, im: m(im),
        lambda: _image_args(8),
    ),
    "FFN": Case(lambda: gnn.FFN(4, 8), lambda m, im: m(im), _image_args),
    # pooling
    "AttentionPooling": Case(
        lambda: gnn.AttentionPooling(4, 8, heads=2), lambda m, im: m(*_flat(im), size=im.shape[0]), _image_args
    ),
    "AttentionPooling-batched": Case(lambda: gnn.AttentionPooling(4, 8), lambda m, im: m(F.to_nodes(im)), _image_args),
    "TopKPooling": Case(lambda: gnn.TopKPooling(4, ratio=0.5), lambda m, im: tuple(m(F.to_nodes(im))), _image_args),
    "TopKPooling-pyg": Case(
        lambda: gnn.TopKPooling(4, ratio=0.5), lambda m, x, ei: _unpack(m(x, ei)), _graphs, config=_CAPTURE
    ),
    "SAGPooling": Case(
        lambda: gnn.SAGPooling(4, k=3),
        lambda m, im: (lambda r: (*r, r.edge_index))(m(F.to_nodes(im), _grid(im))),
        _image_args,
        config=_CAPTURE,
    ),
    "TopKPooling-min_score": Case(
        lambda: gnn.TopKPooling(4, ratio=None, min_score=0.1),
        lambda m, x, ei: _unpack(m(x, ei)),
        _graphs,
        config=_CAPTURE,
    ),
    "SAGPooling-pyg": Case(
        lambda: gnn.SAGPooling(4, ratio=0.5), lambda m, x, ei: _unpack(m(x, ei)), _graphs, config=_CAPTURE
    ),
    # attention / MI
    "MultiChannelAttention": Case(
        lambda: gnn.MultiChannelAttention(4, heads=2), lambda m, im: m(im, return_attention_weights=True), _image_args
    ),
    "MutualInformationAdjacency": Case(
        lambda: gnn.MutualInformationAdjacency(bins=4, normalize=True),
        lambda m, im: m(F.to_nodes(im).sigmoid()),
        _mi_images,
    ),
    "MutualInformationAdjacency-topk": Case(
        lambda: gnn.MutualInformationAdjacency(bins=4, top_k=3, output="sparse"),
        lambda m, im: m(F.to_nodes(im).sigmoid()),
        _mi_images,
    ),
    "MutualInformationAdjacency-threshold": Case(
        lambda: gnn.MutualInformationAdjacency(bins=4, threshold=0.05, output="sparse"),
        lambda m, im: m(F.to_nodes(im).sigmoid()),
        _mi_images,
        config=_CAPTURE,
    ),
}

#: Functional ops that no module above reaches by its default path (``channel_attention`` runs
#: inside ``MultiChannelAttention``; the conv functionals inside their modules).
FUNCTIONAL = {
    "grid_graph": Case(
        None, lambda m, im: F.grid_graph(im.shape[2], im.shape[3], 8, batch_size=im.shape[0]), _image_args
    ),
    "edge_similarity": Case(None, lambda m, x, ei: F.edge_similarity(x, ei, "gaussian", sigma=2.0), _graphs),
    "gcn_norm": Case(None, lambda m, x, ei: F.gcn_norm(ei, x[:, 0].sigmoid()[ei[0]], num_nodes=x.shape[0]), _graphs),
    "to_nodes-to_image": Case(
        None, lambda m, im: F.to_image(F.to_nodes(im) * 2, im.shape[2], im.shape[3]), _image_args
    ),
    "relative_position_term": Case(
        None, lambda m, im: F.relative_position_term(8, im.shape[2], im.shape[3]) + im.sum(), _image_args
    ),
    "global_sum_mean_max_pool": Case(None, lambda m, im: _global_pools(im), _image_args),
    "global_max_pool-mask": Case(
        None, lambda m, im: F.global_max_pool(F.to_nodes(im), mask=F.to_nodes(im)[..., 0] > 0), _image_args
    ),
    "global_attention_pool": Case(
        None,
        lambda m, im: F.global_attention_pool(F.to_nodes(im), F.to_nodes(im)[..., :1], return_attention_weights=True),
        _image_args,
    ),
    "topk_pool": Case(None, lambda m, im: tuple(F.topk_pool(F.to_nodes(im), torch.ones(4), ratio=0.3)), _image_args),
}

ALL = {**MODULES, **FUNCTIONAL}


def _cases(names) -> list:
    return [
        pytest.param(n, marks=pytest.mark.xfail(strict=True, reason=ALL[n].xfail)) if ALL[n].xfail else n
        for n in sorted(names)
    ]


def test_every_public_name_has_a_case() -> None:
    """Each name of ``graphvision.nn.__all__`` has a compile case (and each conv an export case)."""
    covered = {name.split("-")[0] for name in ALL}
    assert set(gnn.__all__) <= covered, f"no compile case for {sorted(set(gnn.__all__) - covered)}"
    convs = {n for n in gnn.__all__ if n.endswith("Conv") and n not in ("DynamicEdgeConv",)} | {"MessagePassing"}
    assert convs <= set(EXPORTS), f"no export case for {sorted(convs - set(EXPORTS))}"


@pytest.mark.slow
@pytest.mark.parametrize("name", _cases(ALL))
def test_every_public_op_two_sizes_one_graph(name: str) -> None:
    case = ALL[name]
    torch.manual_seed(0)
    with torch._dynamo.config.patch(**case.config):
        _run_case(_Call(case.make() if case.make is not None else None, case.call), case.inputs())


def _graph_dims(args: tuple[torch.Tensor, ...]) -> tuple[dict, ...]:
    # node indices are sorted as int32 when they fit, so the program is valid for N < 2**31
    n, e = torch.export.Dim("n", min=2, max=2**31 - 1), torch.export.Dim("e", min=2)
    return ({0: n}, {1: e}, {0: e})[: len(args)]


def _image_dims(args: tuple[torch.Tensor, ...]) -> tuple[dict, ...]:
    # min 3: a 2-pixel side would make the (H - 1)-sized edge slices broadcastable
    d = torch.export.Dim
    return ({0: d("b", min=2, max=256), 2: d("h", min=3, max=4096), 3: d("w", min=3, max=4096)},)


def _point_dims(args: tuple[torch.Tensor, ...]) -> tuple[dict, ...]:
    return ({0: torch.export.Dim("n", min=4, max=4096)},)  # N > k; one block of N^2 distances (<= 2**24)


def _patch_dims(args: tuple[torch.Tensor, ...]) -> tuple[dict, ...]:
    d = torch.export.Dim
    return ({0: d("b", min=2, max=256), 2: 2 * d("hp", min=2, max=64), 3: 2 * d("wp", min=2, max=64)},)


#: name in ALL -> dynamic_shapes of its inputs for ``torch.export``
EXPORTS = {
    **dict.fromkeys(
        [
            "GCNConv",
            "GATConv",
            "GATConv-edge_dim",
            "AttentionGCNConv",
            "GCN2Conv",
            "EdgeConditionedConv",
            "GATv2Conv",
            "SAGEConv",
            "SAGEConv-max",
            "GraphConv",
            "GINConv",
            "GINEConv",
            "MRConv",
            "EdgeConv",
            "MessagePassing",
            "TopKPooling-pyg",
            "TopKPooling-min_score",
            "SAGPooling-pyg",
        ],
        _graph_dims,
    ),
    **dict.fromkeys(
        [
            "ImageToGraph",
            "SuperpixelGraph",
            "Grapher-edge",
            "FFN",
            "AttentionPooling",
            "TopKPooling",
            "SAGPooling",
            "MultiChannelAttention",
            "structure-all-convs",
            "Grapher",
            "MutualInformationAdjacency",
            "MutualInformationAdjacency-topk",
            "MutualInformationAdjacency-threshold",
        ],
        _image_dims,
    ),
    **dict.fromkeys(["KNNGraph", "RadiusGraph", "DynamicEdgeConv"], _point_dims),
    "PatchGraph-knn": _patch_dims,
    "PatchGraph-grid": _patch_dims,
    "NodesToImage": lambda args: ({0: 6 * torch.export.Dim("b", min=1, max=4096)},),
}


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(EXPORTS))
def test_export_with_dynamic_sizes_runs_on_a_second_size(name: str) -> None:
    """``torch.export`` with symbolic sizes (nodes and edges, or batch and image sides), run on another size."""
    case = ALL[name]
    torch.manual_seed(0)
    module = _Call(case.make() if case.make is not None else None, case.call)
    first, second = case.inputs()
    prog = torch.export.export(module, first, dynamic_shapes={"args": EXPORTS[name](first)})
    for args in (first, second):
        out, ref = _tensors(prog.module()(*args)), _tensors(module(*args))
        assert len(out) == len(ref)
        for o, r in zip(out, ref, strict=True):
            torch.testing.assert_close(o, r, rtol=1e-4, atol=1e-5)
