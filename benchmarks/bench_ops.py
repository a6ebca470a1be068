"""Benchmark graphvision.ops against torch native, torch.sparse, torch_scatter/torch_sparse and PyG.

Every op (scatter, spmm, segment_softmax, attention_aggregate, attention_pool) runs through the
public ``graphvision.ops`` API with each backend available on the device, and against the
baselines of ../shared/PERF.md, on batched 8-neighbour pixel grids and per-image kNN graphs
(k=16), forward and forward+backward. All providers are checked against the first one (output
and gradients) before anything is timed; a provider that disagrees is reported and not timed.

    python benchmarks/bench_ops.py --quick            # CPU, about 2 minutes on 2 cores
    python benchmarks/bench_ops.py                    # full sizes (GPU), see run_gpu.sh

Results: benchmarks/results/<name>.json and .md (``--out`` to write elsewhere).
"""

from __future__ import annotations

import argparse
import math
import sys
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import (  # noqa: E402
    _loadavg,
    compulsory_bytes,
    copy_bandwidth_gbs,
    fmt,
    metadata,
    peak_memory_mb,
    sync,
    time_fn,
    write_results,
)

warnings.filterwarnings("ignore")

OPS = ("scatter", "spmm", "segment_softmax", "attention_aggregate", "attention_pool")
HEADS = 4  # attention heads (PERF.md used 4)
_SMOKE = False  # set by --smoke: tiny graphs, and the interpreted Triton backend is included on CPU

# name, graph kind, images B, H, W, channels C
QUICK_CONFIGS = [
    ("grid B8 28x28 C64", "grid", 8, 28, 28, 64),
    ("knn16 B8 28x28 C64", "knn", 8, 28, 28, 64),
    ("grid B4 28x28 C256", "grid", 4, 28, 28, 256),
]
# --smoke: seconds; checks that the script runs (CI, and the Triton path under TRITON_INTERPRET=1)
SMOKE_CONFIGS = [
    ("smoke grid B2 6x6 C16", "grid", 2, 6, 6, 16),
    ("smoke knn16 B2 6x6 C16", "knn", 2, 6, 6, 16),
]
FULL_CONFIGS = [
    ("grid B16 28x28 C64", "grid", 16, 28, 28, 64),
    ("grid B64 56x56 C64", "grid", 64, 56, 56, 64),  # the H200 configuration
    ("grid B64 56x56 C256", "grid", 64, 56, 56, 256),
    ("knn16 B64 56x56 C64", "knn", 64, 56, 56, 64),
    ("knn16 B16 56x56 C256", "knn", 16, 56, 56, 256),
]

# baselines the ratios are printed against, per op (first one present is the "main" baseline)
BASELINES = {
    "scatter": ["torch index_add_"],
    "spmm": ["torch.sparse CSR mm", "PyG GCNConv propagate", "torch gather+index_add_"],
    "segment_softmax": ["torch native", "PyG softmax"],
    "attention_aggregate": ["PyG GATConv message passing", "torch native"],
    "attention_pool": ["torch native", "PyG softmax+scatter"],
}


# ----------------------------------------------------------------------------- graphs
@dataclass
class Graph:
    name: str
    kind: str
    b: int
    h: int
    w: int
    c: int
    edge_index: torch.Tensor
    structure: Any
    batch: torch.Tensor
    conversion_ms: float

    @property
    def n(self) -> int:
        return self.b * self.h * self.w

    @property
    def e(self) -> int:
        return int(self.edge_index.size(1))


def _grid_edges(b: int, h: int, w: int, device: torch.device) -> torch.Tensor:
    try:
        from graphvision.functional import grid_graph

        return grid_graph(h, w, connectivity=8, batch_size=b, device=device)
    except ImportError:  # fallback: local 8-neighbour grid
        ys, xs = torch.meshgrid(torch.arange(h, device=device), torch.arange(w, device=device), indexing="ij")
        src, dst = [], []
        for dy in (-1, 0, 1):
            for dx in (-1, 0, 1):
                if dy == dx == 0:
                    continue
                ok = (ys + dy >= 0) & (ys + dy < h) & (xs + dx >= 0) & (xs + dx < w)
                src.append(((ys + dy) * w + xs + dx)[ok])
                dst.append((ys * w + xs)[ok])
        ei = torch.stack([torch.cat(src), torch.cat(dst)])
        off = (torch.arange(b, device=device) * h * w).repeat_interleave(ei.size(1))
        return ei.repeat(1, b) + off


def _knn_edges(b: int, h: int, w: int, c: int, k: int, device: torch.device, gen: torch.Generator) -> torch.Tensor:
    feats = torch.randn(b * h * w, 8, generator=gen).to(device)  # pixel features the kNN is built on
    batch = torch.arange(b, device=device).repeat_interleave(h * w)
    from graphvision.functional import knn_graph

    return knn_graph(feats, k, batch=batch)


def make_graph(name: str, kind: str, b: int, h: int, w: int, c: int, device: torch.device,
               shuffle: bool = False) -> Graph:
    from graphvision import GraphStructure

    gen = torch.Generator().manual_seed(0)
    ei = _grid_edges(b, h, w, device) if kind == "grid" else _knn_edges(b, h, w, c, 16, device, gen)
    if shuffle:  # random edge order: hurts the index_add_/scatter baselines, not a cached GraphStructure
        ei = ei[:, torch.randperm(ei.size(1), generator=gen).to(device)]
        name += " shuffled"
    batch = torch.arange(b, device=device).repeat_interleave(h * w)

    def convert() -> Any:
        return GraphStructure(ei, num_nodes=b * h * w).precompute()

    conv = time_fn(convert, device, reps=3, warmup=1)["median_ms"]
    return Graph(name, kind, b, h, w, c, ei, convert(), batch, conv)


# ----------------------------------------------------------------------------- providers
@dataclass
class Case:
    """One op on one graph: shared inputs and the providers that compute it."""

    op: str
    inputs: dict[str, torch.Tensor]  # leaf tensors; those in ``grad_of`` get gradients
    grad_of: list[str]
    providers: dict[str, Callable[[], torch.Tensor]] = field(default_factory=dict)
    nbytes: int = 0
    # providers that compute a *different*, structurally easier function (lower bounds such as a
    # uniform-weight depthwise convolution): timed, not checked for agreement, marked in the tables
    lower_bounds: set[str] = field(default_factory=set)
    # the provider every other one is checked against: an independent plain-torch formula, never a
    # graphvision backend (a wrong kernel must show up as a disagreement, not become the reference)
    reference: str = "torch native"


def _gv_backends(device: torch.device, kernel: str) -> list[str]:
    from graphvision.ops import available_backends

    names = available_backends(device, kernel)
    if device.type != "cuda" and not _SMOKE:
        names = [b for b in names if b != "triton"]  # the CPU interpreter is for tests, not timing
    return names


def _raw_triton(device: torch.device) -> bool:
    """Also time the Triton kernels called directly (no dispatcher, no custom op): CUDA, or --smoke."""
    from graphvision.ops._triton import triton_usable

    return triton_usable(device) and (device.type == "cuda" or _SMOKE)


class _RawSpmm(torch.autograd.Function):
    """spmm through the Triton kernels only: forward CSR pass, backward transposed CSR pass."""

    @staticmethod
    def forward(ctx, x, s, w_sorted, w_t):  # noqa: ANN001, ANN205
        from graphvision.ops._triton.k_spmm import spmm_csr

        ctx.s, ctx.w_t = s, w_t
        return spmm_csr(s.rowptr, s.col, w_sorted, x.unsqueeze(1)).squeeze(1)

    @staticmethod
    def backward(ctx, grad):  # noqa: ANN001, ANN205
        from graphvision.ops._triton.k_spmm import spmm_csr

        s = ctx.s
        return spmm_csr(s.rowptr_t, s.col_t, ctx.w_t, grad.contiguous().unsqueeze(1)).squeeze(1), None, None, None


class _RawAttention(torch.autograd.Function):
    """attention_aggregate through the Triton kernels only."""

    @staticmethod
    def forward(ctx, x, a_s, a_d, s):  # noqa: ANN001, ANN205
        from graphvision.ops._triton.k_attention import attention_forward_csr

        out, attn = attention_forward_csr(s.rowptr, s.col, x, a_s, a_d, None, 0.2)
        ctx.save_for_backward(x, a_s, a_d, attn)
        ctx.s = s
        return out

    @staticmethod
    def backward(ctx, grad):  # noqa: ANN001, ANN205
        from graphvision.ops._triton.k_attention import attention_backward_csr

        x, a_s, a_d, attn = ctx.saved_tensors
        s = ctx.s
        gx, gs, gd, _ = attention_backward_csr(
            s.rowptr, s.col, s.rowptr_t, s.col_t, s.perm_t, x, a_s, a_d, None, attn, grad.contiguous(), 0.2
        )
        return gx, gs, gd, None


def case_scatter(g: Graph, device: torch.device, gen: torch.Generator) -> Case:
    import graphvision.ops as gops

    src_t = torch.randn(g.e, g.c, generator=gen).to(device).requires_grad_()
    index = g.edge_index[1]
    case = Case("scatter", {"src": src_t}, ["src"], reference="torch index_add_")
    for be in _gv_backends(device, "segment_reduce_csr"):
        case.providers[f"graphvision[{be}]"] = lambda be=be: gops.scatter(src_t, index, g.n, "sum", backend=be)
    idx = index

    case.providers["torch index_add_"] = lambda: src_t.new_zeros(g.n, g.c).index_add(0, idx, src_t)
    case.providers["torch scatter_reduce"] = lambda: src_t.new_zeros(g.n, g.c).scatter_reduce(
        0, idx[:, None].expand(-1, g.c), src_t, "sum", include_self=False
    )
    try:
        import torch_scatter

        case.providers["torch_scatter.scatter"] = lambda: torch_scatter.scatter(src_t, idx, 0, dim_size=g.n)
    except ImportError:
        pass
    case.nbytes = compulsory_bytes("scatter", n=g.n, e=g.e, c=g.c)
    return case


def case_spmm(g: Graph, device: torch.device, gen: torch.Generator) -> Case:
    import graphvision.ops as gops

    x = torch.randn(g.n, g.c, generator=gen).to(device).requires_grad_()
    w = torch.rand(g.e, generator=gen).to(device)  # fixed weights (GCN normalisation): grad w.r.t. x only
    src, dst = g.edge_index
    case = Case("spmm", {"x": x}, ["x"], reference="torch gather+index_add_")
    for be in _gv_backends(device, "spmm_csr"):
        case.providers[f"graphvision[{be}]"] = lambda be=be: gops.spmm(g.structure, w, x, g.n, backend=be)
    if _raw_triton(device):
        st = g.structure
        w_sorted = w[st.perm]
        w_t = w_sorted[st.perm_t]
        case.providers["triton kernels only (no dispatch)"] = lambda: _RawSpmm.apply(x, st, w_sorted, w_t)
    case.providers["torch gather+index_add_"] = lambda: x.new_zeros(g.n, g.c).index_add(0, dst, x[src] * w[:, None])
    # torch.sparse CSR adjacency built once (cached, as a GCN layer would)
    perm = torch.argsort(dst, stable=True)
    adj = torch.sparse_coo_tensor(torch.stack([dst[perm], src[perm]]), w[perm], (g.n, g.n)).coalesce().to_sparse_csr()
    case.providers["torch.sparse CSR mm"] = lambda: torch.sparse.mm(adj, x)
    try:
        import torch_sparse

        st = torch_sparse.SparseTensor(row=dst, col=src, value=w, sparse_sizes=(g.n, g.n))
        case.providers["torch_sparse SparseTensor"] = lambda: st.matmul(x)
    except ImportError:
        pass
    try:
        from torch_geometric.nn import GCNConv

        conv = GCNConv(g.c, g.c, normalize=False, bias=False).to(device)
        case.providers["PyG GCNConv propagate"] = lambda: conv.propagate(g.edge_index, x=x, edge_weight=w)
    except ImportError:
        pass
    if g.kind == "grid":  # dense lower bound (PERF.md): 3x3 depthwise conv, uniform weights, channels-last
        kernel = torch.ones(g.c, 1, 3, 3, device=device)
        kernel[:, :, 1, 1] = 0
        name = "grid depthwise conv 3x3, uniform w (lower bound)"
        case.providers[name] = lambda: torch.nn.functional.conv2d(
            x.view(g.b, g.h, g.w, g.c).permute(0, 3, 1, 2), kernel, padding=1, groups=g.c
        )
        case.lower_bounds.add(name)
    case.nbytes = compulsory_bytes("spmm", n=g.n, e=g.e, c=g.c)
    return case


def case_segment_softmax(g: Graph, device: torch.device, gen: torch.Generator) -> Case:
    import graphvision.ops as gops

    scores = torch.randn(g.e, HEADS, generator=gen).to(device).requires_grad_()
    dst = g.edge_index[1]
    case = Case("segment_softmax", {"scores": scores}, ["scores"])
    for be in _gv_backends(device, "segment_softmax_csr"):
        case.providers[f"graphvision[{be}]"] = lambda be=be: gops.segment_softmax(scores, g.structure, g.n, backend=be)

    def native() -> torch.Tensor:
        idx = dst[:, None].expand(-1, HEADS)
        m = scores.new_full((g.n, HEADS), -math.inf).scatter_reduce(0, idx, scores, "amax", include_self=True)
        ex = (scores - m[dst]).exp()
        return ex / ex.new_zeros(g.n, HEADS).index_add(0, dst, ex)[dst]

    case.providers["torch native"] = native
    try:
        from torch_geometric.utils import softmax

        case.providers["PyG softmax"] = lambda: softmax(scores, dst, num_nodes=g.n)
    except ImportError:
        pass
    try:
        from torch_scatter.composite import scatter_softmax

        case.providers["torch_scatter scatter_softmax"] = lambda: scatter_softmax(scores, dst, dim=0, dim_size=g.n)
    except ImportError:
        pass
    case.nbytes = compulsory_bytes("segment_softmax", n=g.n, e=g.e, c=g.c, heads=HEADS)
    return case


def case_attention(g: Graph, device: torch.device, gen: torch.Generator) -> Case:
    import torch.nn.functional as F

    import graphvision.ops as gops

    f = g.c // HEADS
    x = torch.randn(g.n, HEADS, f, generator=gen).to(device).requires_grad_()
    a_s = torch.randn(g.n, HEADS, generator=gen).to(device).requires_grad_()
    a_d = torch.randn(g.n, HEADS, generator=gen).to(device).requires_grad_()
    src, dst = g.edge_index
    case = Case("attention_aggregate", {"x": x, "score_src": a_s, "score_dst": a_d}, ["x", "score_src", "score_dst"])
    for be in _gv_backends(device, "attention_forward_csr"):
        case.providers[f"graphvision[{be}]"] = lambda be=be: gops.attention_aggregate(
            x, a_s, a_d, g.structure, num_nodes=g.n, backend=be
        )

    if _raw_triton(device):
        case.providers["triton kernels only (no dispatch)"] = lambda: _RawAttention.apply(x, a_s, a_d, g.structure)

    def native() -> torch.Tensor:
        e = F.leaky_relu(a_s[src] + a_d[dst], 0.2)
        idx = dst[:, None].expand(-1, HEADS)
        m = e.new_full((g.n, HEADS), -math.inf).scatter_reduce(0, idx, e, "amax", include_self=True)
        ex = (e - m[dst]).exp()
        a = ex / ex.new_zeros(g.n, HEADS).index_add(0, dst, ex)[dst]
        return x.new_zeros(g.n, HEADS, f).index_add(0, dst, a[..., None] * x[src])

    case.providers["torch native"] = native
    try:
        from torch_geometric.nn import GATConv

        conv = GATConv(g.c, f, heads=HEADS, add_self_loops=False, bias=False).to(device)

        def pyg() -> torch.Tensor:  # GATConv.forward minus the linear projection
            alpha = conv.edge_updater(g.edge_index, alpha=(a_s, a_d), edge_attr=None, size=None)
            return conv.propagate(g.edge_index, x=(x, x), alpha=alpha, size=None)

        case.providers["PyG GATConv message passing"] = pyg
    except ImportError:
        pass
    case.nbytes = compulsory_bytes("attention_aggregate", n=g.n, e=g.e, c=g.c, heads=HEADS)
    return case


def case_pool(g: Graph, device: torch.device, gen: torch.Generator) -> Case:
    import graphvision.ops as gops

    x = torch.randn(g.n, g.c, generator=gen).to(device).requires_grad_()
    gate = torch.randn(g.n, 1, generator=gen).to(device).requires_grad_()
    batch = g.batch
    case = Case("attention_pool", {"x": x, "gate": gate}, ["x", "gate"])
    for be in _gv_backends(device, "attention_pool_ptr"):
        case.providers[f"graphvision[{be}]"] = lambda be=be: gops.global_attention_pool(x, gate, batch, g.b, backend=be)

    def native() -> torch.Tensor:
        m = gate.new_full((g.b, 1), -math.inf).scatter_reduce(0, batch[:, None], gate, "amax", include_self=True)
        ex = (gate - m[batch]).exp()
        a = ex / ex.new_zeros(g.b, 1).index_add(0, batch, ex)[batch]
        return x.new_zeros(g.b, g.c).index_add(0, batch, a * x)

    case.providers["torch native"] = native
    try:
        from torch_geometric.utils import scatter, softmax

        case.providers["PyG softmax+scatter"] = lambda: scatter(
            softmax(gate, batch, num_nodes=g.b) * x, batch, 0, dim_size=g.b, reduce="sum"
        )
    except ImportError:
        pass
    hw = g.h * g.w
    case.providers["dense reshape+softmax+bmm (equal sizes)"] = lambda: torch.bmm(
        gate.view(g.b, hw, 1).softmax(1).transpose(1, 2), x.view(g.b, hw, g.c)
    ).view(g.b, g.c)
    case.nbytes = compulsory_bytes("attention_pool", n=g.n, e=g.e, c=g.c, heads=1, b=g.b)
    return case


CASES = {
    "scatter": case_scatter,
    "spmm": case_spmm,
    "segment_softmax": case_segment_softmax,
    "attention_aggregate": case_attention,
    "attention_pool": case_pool,
}


# ----------------------------------------------------------------------------- running
def _shape_out(out: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return out.reshape(like.shape) if out.numel() == like.numel() else out


def _fwd_bwd(case: Case, fn: Callable[[], torch.Tensor], grad: torch.Tensor) -> Callable[[], Any]:
    leaves = [case.inputs[k] for k in case.grad_of]

    def run() -> Any:
        for t in leaves:
            t.grad = None
        out = fn()
        out.backward(grad.reshape(out.shape))
        return out

    return run


def _grads(case: Case, fn: Callable[[], torch.Tensor], grad: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
    leaves = [case.inputs[k] for k in case.grad_of]
    out = fn()
    grads = torch.autograd.grad(out, leaves, grad.reshape(out.shape))
    return out.detach(), [gr.detach() for gr in grads]


def agree(a: torch.Tensor, b: torch.Tensor) -> float:
    """Max abs difference relative to the reference's scale."""
    a, b = a.double().reshape(-1), b.double().reshape(-1)
    return float((a - b).abs().max() / b.abs().max().clamp_min(1e-12)) if b.numel() else 0.0


def run_case(case: Case, g: Graph, device: torch.device, args: argparse.Namespace) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    names = list(case.providers)
    ref_name = case.reference
    with torch.no_grad():
        shape = case.providers[ref_name]().shape
    grad = torch.randn(shape, generator=torch.Generator().manual_seed(1)).to(device)
    ref_out, ref_grads = _grads(case, case.providers[ref_name], grad)
    for name in names:
        fn = case.providers[name]
        row: dict[str, Any] = {
            "op": case.op, "config": g.name, "provider": name, "n": g.n, "e": g.e, "c": g.c,
            "compulsory_mb": case.nbytes / 1e6,
        }
        try:
            out, grads = _grads(case, fn, grad)
            if name in case.lower_bounds:
                row["lower_bound"] = True
                err = 0.0
            else:
                err = max([agree(out, ref_out)] + [agree(a, b) for a, b in zip(grads, ref_grads)])
        except Exception as exc:  # a provider that cannot run this case
            row.update(error=f"{type(exc).__name__}: {exc}"[:300])
            rows.append(row)
            print(f"  {name:42s} ERROR {row['error']}")
            continue
        row["max_rel_err"] = err
        if err > args.tol:
            row["error"] = f"disagrees with {ref_name}: max relative error {err:.2e} > {args.tol:g}; not timed"
            rows.append(row)
            print(f"  {name:42s} DISAGREES ({err:.2e})")
            continue
        del out, grads

        def fwd(fn: Callable[[], torch.Tensor] = fn) -> torch.Tensor:
            with torch.no_grad():
                return fn()

        full = _fwd_bwd(case, fn, grad)
        t_f = time_fn(fwd, device, reps=args.reps, autorange=args.autorange)
        t_b = time_fn(full, device, reps=args.reps, autorange=args.autorange)
        stat = "min_ms" if args.stat == "min" else "median_ms"
        row.update(
            fwd_ms=t_f[stat], fwd_median_ms=t_f["median_ms"], fwd_min_ms=t_f["min_ms"],
            fwd_p20_ms=t_f["p20_ms"], fwd_p80_ms=t_f["p80_ms"],
            full_ms=t_b[stat], full_median_ms=t_b["median_ms"], full_min_ms=t_b["min_ms"],
            full_p20_ms=t_b["p20_ms"], full_p80_ms=t_b["p80_ms"],
            fwd_gbs=case.nbytes / (t_f[stat] * 1e-3) / 1e9,
        )
        row["fwd_pct_copy"] = 100 * row["fwd_gbs"] / args.copy_gbs
        if not args.no_memory:
            row["peak_fwd_mb"] = peak_memory_mb(fwd, device)
            row["peak_full_mb"] = peak_memory_mb(full, device)
        rows.append(row)
        spread = (t_f["p80_ms"] - t_f["p20_ms"]) / t_f["median_ms"] * 100
        print(
            f"  {name:42s} fwd {fmt(row['fwd_ms'], 3):>8s} ms (p20-p80 spread {spread:3.0f}% of median)"
            f"  fwd+bwd {fmt(row['full_ms'], 3):>8s} ms"
            f"  {fmt(row['fwd_gbs'])} GB/s ({fmt(row['fwd_pct_copy'], 1)}% copy)"
            + (f"  peak {fmt(row['peak_fwd_mb'])}/{fmt(row['peak_full_mb'])} MB" if "peak_fwd_mb" in row else "")
        )
        for t in case.inputs.values():
            t.grad = None
    # ratios vs the baselines
    by_name = {r["provider"]: r for r in rows if "fwd_ms" in r}
    for r in rows:
        if "fwd_ms" not in r:
            continue
        for base in BASELINES[case.op]:
            if base in by_name and base != r["provider"]:
                b = by_name[base]
                r.setdefault("speedup", {})[base] = {
                    "fwd": b["fwd_ms"] / r["fwd_ms"],
                    "full": b["full_ms"] / r["full_ms"],
                    "mem_fwd": (b.get("peak_fwd_mb", 0) / r["peak_fwd_mb"]) if r.get("peak_fwd_mb") else None,
                }
    main = next((b for b in BASELINES[case.op] if b in by_name), None)
    if main:
        for r in rows:
            if r.get("provider", "").startswith("graphvision[") and "speedup" in r and main in r["speedup"]:
                s = r["speedup"][main]
                print(
                    f"    -> {r['provider']} vs {main}: fwd {s['fwd']:.2f}x, fwd+bwd {s['full']:.2f}x"
                    + (f", peak memory {s['mem_fwd']:.1f}x less" if s["mem_fwd"] else "")
                )
    return rows


def markdown(meta: dict[str, Any], graphs: list[Graph], rows: list[dict[str, Any]], args: argparse.Namespace) -> str:
    mode = "smoke" if args.smoke else "quick" if args.quick else "full"
    lines = [f"# graphvision.ops benchmark ({mode}, {meta['device']})", ""]
    lines.append(f"Method: benchmarks/README.md. Headline statistic: **{args.stat}** of {args.reps} timed calls"
                 f" after warm-up{' (triton.testing.do_bench)' if meta['device'] != 'cpu' else ''}; ratios use it. " + (
        "**CPU timings are noisy: the 2 cores were shared with other jobs while this ran; "
        "treat differences under ~30% as noise.**" if meta["device"] == "cpu" else ""))
    lines.append("")
    lines.append("| " + " | ".join(f"{k}" for k in ("commit", "time (UTC)", "device", "torch", "triton", "PyG",
                                                     "torch_scatter", "threads", "copy GB/s", "load avg")) + " |")
    lines.append("|" + "---|" * 10)
    lines.append(
        f"| {meta['commit']} | {meta['time_utc']} | {meta['device_name']} ({meta['device']}) | {meta['torch']} | "
        f"{meta['triton']} | {meta['torch_geometric']} | {meta['torch_scatter']} | {meta['torch_threads']} | "
        f"{args.copy_gbs:.1f} | {meta.get('load_average_1m_at_start')} -> {meta.get('load_average_1m_at_end')} |"
    )
    lines.append("")
    if not meta.get("complete", True):
        lines.append("**Partial run**: the script stopped before its last configuration; the tables hold what "
                     "finished.")
        lines.append("")
    lines.append("Rows marked *(lower bound)* compute a structurally easier function (e.g. uniform weights) and "
                 "are not checked for agreement; every other row was checked against the plain-torch reference row "
                 "of its table "
                 "(output and input gradients) before timing.")
    lines.append("")
    lines.append("Graph conversion (edge_index -> cached GraphStructure: CSR, transpose, neighbour table), "
                 "paid once per graph, not included in the op timings:")
    lines.append("")
    for g in graphs:
        lines.append(f"- {g.name}: N={g.n:,} E={g.e:,}: {g.conversion_ms:.2f} ms")
    lines.append("")
    # targets
    lines.append("## Targets (issue 3)")
    lines.append("")
    for g in graphs:
        sel = [r for r in rows if r["config"] == g.name and "fwd_ms" in r]
        best = {}
        for op in ("attention_aggregate", "spmm"):
            cands = [r for r in sel if r["op"] == op and r["provider"].startswith("graphvision[")]
            if cands:
                best[op] = min(cands, key=lambda r: r["fwd_ms"])
        if "attention_aggregate" in best:
            r = best["attention_aggregate"]
            s = r.get("speedup", {}).get("PyG GATConv message passing")
            if s:
                lines.append(
                    f"- {g.name}: attention_aggregate {r['provider']} vs PyG GATConv message passing: "
                    f"**{s['fwd']:.2f}x** faster forward, **{s['full']:.2f}x** forward+backward, "
                    f"**{(s['mem_fwd'] or 0):.1f}x** less peak forward memory (target: 3x faster, 5x less memory)"
                )
        if "spmm" in best:
            r = best["spmm"]
            s = r.get("speedup", {}).get("torch.sparse CSR mm")
            if s:
                lines.append(
                    f"- {g.name}: spmm {r['provider']} vs torch.sparse CSR mm: **{s['fwd']:.2f}x** forward, "
                    f"**{s['full']:.2f}x** forward+backward (target: >= 1x, i.e. no slower)"
                )
    lines.append("")
    for op in OPS:
        for g in graphs:
            sel = [r for r in rows if r["op"] == op and r["config"] == g.name]
            if not sel:
                continue
            mb = sel[0]["compulsory_mb"]
            lines.append(f"## {op}: {g.name} (N={g.n:,}, E={g.e:,}, compulsory {mb:.1f} MB)")
            lines.append("")
            base = next((b for b in BASELINES[op] if any(r["provider"] == b and "fwd_ms" in r for r in sel)), None)
            lines.append(
                f"| provider | fwd ms, {args.stat} (median; p20-p80) | fwd+bwd ms, {args.stat} (median) "
                "| fwd GB/s | % copy | peak fwd MB | peak fwd+bwd MB | "
                f"fwd / fwd+bwd speedup vs {base or '–'} |"
            )
            lines.append("|---|---:|---:|---:|---:|---:|---:|---:|")
            for r in sel:
                if "fwd_ms" not in r:
                    lines.append(f"| {r['provider']} | {r.get('error', '')} | | | | | | |")
                    continue
                sp = r.get("speedup", {}).get(base) if base else None
                ratio = "baseline" if r["provider"] == base else "–"
                if sp:
                    ratio = f"{sp['fwd']:.2f}x / {sp['full']:.2f}x"
                lines.append(
                    f"| {r['provider']} | {fmt(r['fwd_ms'], 3)} ({fmt(r['fwd_median_ms'], 3)}; "
                    f"{fmt(r['fwd_p20_ms'], 3)}-{fmt(r['fwd_p80_ms'], 3)}) | "
                    f"{fmt(r['full_ms'], 3)} ({fmt(r['full_median_ms'], 3)}) | {fmt(r['fwd_gbs'])} | "
                    f"{fmt(r['fwd_pct_copy'], 1)} | {fmt(r.get('peak_fwd_mb'))} | {fmt(r.get('peak_full_mb'))} | "
                    f"{ratio} |"
                )
            lines.append("")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="small CPU configs (about 2 minutes on 2 cores)")
    p.add_argument("--smoke", action="store_true", help="tiny graphs, 1 rep: checks the script runs (seconds)")
    p.add_argument("--device", default=None, help="cpu or cuda (default: cuda when available)")
    p.add_argument("--ops", nargs="*", default=list(OPS), choices=OPS)
    p.add_argument("--configs", nargs="*", default=None, help="substring filters on config names")
    p.add_argument("--reps", type=int, default=None, help="timed calls per measurement on CPU")
    p.add_argument("--autorange", action="store_true",
                   help="CPU: torch.utils.benchmark blocked_autorange (>= 0.5 s per measurement), not --reps")
    p.add_argument("--stat", choices=("median", "min"), default=None,
                   help="headline statistic (default: min on a shared CPU, median on GPU)")
    p.add_argument("--tol", type=float, default=1e-4, help="max relative disagreement before timing")
    p.add_argument("--no-memory", action="store_true", help="skip the peak-memory measurements")
    p.add_argument("--shuffle", action="store_true", help="random edge order instead of the converters' order")
    p.add_argument("--checks", action="store_true", help="keep graphvision's host-syncing index checks on")
    p.add_argument("--threads", type=int, default=None, help="torch.set_num_threads on CPU")
    p.add_argument("--out", default=None, help="output directory (default benchmarks/results)")
    p.add_argument("--name", default=None, help="result file stem (default ops_<device>[_quick])")
    args = p.parse_args(argv)

    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.stat is None:
        args.stat = "median" if device.type == "cuda" else "min"
    global _SMOKE
    _SMOKE = args.smoke
    if args.reps is None:
        args.reps = 1 if args.smoke else 5 if args.quick else 9
    import graphvision

    if not args.checks:
        graphvision.config.set_checks(False)  # no host syncs for index-range checks inside the timings
    configs = SMOKE_CONFIGS if args.smoke else QUICK_CONFIGS if args.quick else FULL_CONFIGS
    if args.configs:
        configs = [c for c in configs if any(s in c[0] for s in args.configs)]
    meta = metadata(device)
    args.copy_gbs = copy_bandwidth_gbs(device, 8 if args.smoke else 64 if args.quick else 512)
    print(f"device {meta['device_name']} ({device}), torch {meta['torch']}, copy bandwidth {args.copy_gbs:.1f} GB/s")
    t0 = time.time()
    graphs: list[Graph] = []
    rows: list[dict[str, Any]] = []
    mode = "_smoke" if args.smoke else "_quick" if args.quick else ""
    name = args.name or f"ops_{device.type}{mode}"
    meta["copy_gbs"] = args.copy_gbs
    meta["args"] = {k: v for k, v in vars(args).items() if k != "copy_gbs"}

    def save(complete: bool) -> tuple[Path, Path]:
        """Write the results so far (after every config, so a timeout still leaves data)."""
        meta["wall_s"] = time.time() - t0
        meta["complete"] = complete
        meta["load_average_1m_at_end"] = _loadavg()
        payload = {
            "metadata": meta,
            "graphs": [{"name": g.name, "kind": g.kind, "n": g.n, "e": g.e, "c": g.c,
                        "conversion_ms": g.conversion_ms} for g in graphs],
            "rows": rows,
        }
        return write_results(name, payload, markdown(meta, graphs, rows, args), Path(args.out) if args.out else None)

    for cfg in configs:
        g = make_graph(*cfg, device=device, shuffle=args.shuffle)
        graphs.append(g)
        print(f"\n=== {g.name}: N={g.n:,} E={g.e:,} (conversion to GraphStructure {g.conversion_ms:.2f} ms)")
        for op in args.ops:
            gen = torch.Generator().manual_seed(0)
            case = CASES[op](g, device, gen)
            print(f"-- {op} (compulsory {case.nbytes / 1e6:.1f} MB)")
            rows.extend(run_case(case, g, device, args))
            del case
            if device.type == "cuda":
                torch.cuda.empty_cache()
        sync(device)
        save(complete=False)
    jp, mp = save(complete=True)
    print(f"\nwrote {jp} and {mp} in {meta['wall_s']:.0f} s")
    bad = [r for r in rows if "error" in r and r["provider"].startswith("graphvision[")]
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
