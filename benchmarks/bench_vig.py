"""Vision-GNN layers against their references, ratios measured in one run (CPU by default).

- ``Grapher``: ``graphvision.nn.Grapher`` against the plain-PyTorch ViG block of
  ``tests/vig_reference.py`` (ViG's ``gcn_lib`` code path: dense ``pairwise_distance`` + ``topk``,
  ``batched_index_select`` of both ends), the state_dict copied over, on ViG's first stage
  (Pyramid ViG-Ti: ``B=8``, ``C=48``, ``56x56`` nodes, ``k=9``, dilation 1 and 2, relative
  position term). Forward and forward+backward, in training mode.
- dilated kNN: ``knn_graph(x (B, N, C), k, loop=True, metric="cosine", dilated=DilatedKNN(d))`` (the graph
  structure included) against ViG's ``DenseDilatedKnnGraph`` and a plain ``cdist`` + ``topk``.
- ``EdgeConv`` / ``MRConv`` / ``DynamicEdgeConv`` against PyG (``EdgeConv`` with the weights
  copied; ``MRConv`` written with PyG's ``scatter``; ``DynamicEdgeConv`` = brute-force kNN +
  PyG's ``EdgeConv``, since PyG's needs torch_cluster) on the per-sample kNN graph of ``B=8``
  images of ``28x28`` nodes, ``C=32``, ``k=9``: graphvision fed the kNN result (its fixed-degree
  structure) and a raw ``edge_index`` over the ``B * N`` flattened nodes (a fresh tensor each
  call, as a data loader hands it over: validated, scatter path).

Every pair is checked for agreement before timing. The two sides are timed interleaved (one
call each, ``--reps`` times, after a warm-up), so load drift on a shared machine hits both.
Statistic: median (min, max); peak memory from the profiler's allocation timeline (``common.py``).

    python benchmarks/bench_vig.py --threads 1            # CPU, a few minutes
    python benchmarks/bench_vig.py --smoke --out /tmp/b   # tiny, seconds

Results: ``benchmarks/results/vig_<device>.json`` and ``.md``.
"""

from __future__ import annotations

import argparse
import copy
import statistics
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
sys.path.insert(0, str(ROOT))
from common import fmt, metadata, peak_memory_mb, sync, write_results  # noqa: E402

import graphvision.functional as GF  # noqa: E402
import graphvision.nn as gnn  # noqa: E402
from tests import vig_reference as R  # noqa: E402  (the baseline is the tested one)

warnings.filterwarnings("ignore")


def _stats(times: list[float]) -> dict[str, float]:
    return {"median_ms": statistics.median(times), "min_ms": min(times), "max_ms": max(times)}


def _once(fn: Callable[[], Any], device: torch.device) -> float:
    sync(device)
    t0 = time.perf_counter()
    fn()
    sync(device)
    return (time.perf_counter() - t0) * 1e3


def run_pair(name: str, ours: Callable[[], Any], ref: Callable[[], Any], ref_name: str, device, reps, rows, mem=True):
    """Time both interleaved (ours, ref, ours, ref, ...) so that load drift on a shared machine hits both."""
    ours(), ref()  # warm-up
    ta, tb = [], []
    for _ in range(reps):
        ta.append(_once(ours, device))
        tb.append(_once(ref, device))
    a, b = _stats(ta), _stats(tb)
    ma = peak_memory_mb(ours, device) if mem else None
    mb = peak_memory_mb(ref, device) if mem else None
    row = {"case": name, "reference": ref_name, "ours_ms": a, "ref_ms": b, "speedup": b["median_ms"] / a["median_ms"],
           "ours_peak_mb": ma, "ref_peak_mb": mb}
    rows.append(row)
    print(f"{name:58s} ours {a['median_ms']:9.1f} ms  {ref_name} {b['median_ms']:9.1f} ms  x{row['speedup']:.2f}"
          + (f"  peak {ma:.0f} / {mb:.0f} MB" if mem else ""), flush=True)


def fwd_bwd(module_call: Callable[[], torch.Tensor], params: list[torch.Tensor]) -> Callable[[], None]:
    def fn() -> None:
        out = module_call()
        torch.autograd.grad(out.square().sum(), params)

    return fn


def check_grapher(ours, ref, x, rel) -> None:
    """Agreement in float64 (in float32, kNN near-ties may swap one neighbour of a few nodes)."""
    o, r = copy.deepcopy(ours).double(), copy.deepcopy(ref).double()
    xd = x.detach().double()
    torch.testing.assert_close(o(xd), r(xd, None if rel is None else rel.double()), atol=1e-8, rtol=1e-8)


def bench_grapher(b, c, h, w, device, reps, rows):
    rel = GF.relative_position_term(c, h, w, device=device)
    for d in (1, 2):
        torch.manual_seed(0)
        ours = gnn.Grapher(c, k=9, dilation=d, relative_pos=True).to(device).train()
        ref = R.Grapher(c, 9, d).to(device).train()
        ref.load_state_dict(ours.state_dict(), strict=True)
        x = torch.randn(b, c, h, w, device=device, requires_grad=True)
        check_grapher(ours, ref, x, rel)
        tag = f"Grapher mr B{b} C{c} {h}x{w} k9 d{d}"
        with torch.no_grad():
            run_pair(tag + " fwd", lambda: ours(x), lambda: ref(x, rel), "ViG ref", device, reps, rows)
        run_pair(tag + " fwd+bwd", fwd_bwd(lambda: ours(x), [x, *ours.parameters()]),
                 fwd_bwd(lambda: ref(x, rel), [x, *ref.parameters()]), "ViG ref", device, reps, rows)
    torch.manual_seed(0)
    ours = gnn.Grapher(c, k=9, conv="edge").to(device).train()
    ref = R.Grapher(c, 9, 1, "edge").to(device).train()
    ref.load_state_dict(ours.state_dict(), strict=True)
    x = torch.randn(b, c, h, w, device=device, requires_grad=True)
    check_grapher(ours, ref, x, None)
    run_pair(f"Grapher edge B{b} C{c} {h}x{w} k9 d1 fwd+bwd", fwd_bwd(lambda: ours(x), [x, *ours.parameters()]),
             fwd_bwd(lambda: ref(x), [x, *ref.parameters()]), "ViG ref", device, reps, rows)


def bench_knn(b, c, h, w, device, reps, rows):
    n = h * w
    x = torch.randn(b, n, c, device=device)
    xr = x.transpose(1, 2).unsqueeze(-1)
    for d in (1, 2):
        ours = GF.knn_graph(x, 9, loop=True, metric="cosine", dilated=GF.DilatedKNN(d))
        ref = R.DenseDilatedKnnGraph(9, d)(xr)[0]  # (B, N, 9) local ids
        shift = torch.arange(b, device=device).view(b, 1, 1) * n
        agree = float((ours[0].view(b, n, 9) == ref + shift).float().mean())
        assert agree > 0.999, f"kNN disagrees with ViG's ({agree:.4f})"

        def cdist_topk(d=d):
            xn = torch.nn.functional.normalize(x, dim=-1)
            return torch.cdist(xn, xn).topk(9 * d, largest=False).indices[..., ::d]

        tag = f"dilated kNN B{b} N{n} C{c} k9 d{d}"
        run_pair(tag, lambda d=d: GF.knn_graph(x, 9, loop=True, metric="cosine", dilated=GF.DilatedKNN(d)),
                 lambda d=d: R.DenseDilatedKnnGraph(9, d)(xr), "ViG ref", device, reps, rows)
        run_pair(tag, lambda d=d: GF.knn_graph(x, 9, loop=True, metric="cosine", dilated=GF.DilatedKNN(d)), cdist_topk,
                 "cdist+topk", device, reps, rows)


def bench_convs(b, c, h, w, device, reps, rows):
    from torch_geometric.nn import EdgeConv as PygEdgeConv
    from torch_geometric.utils import scatter as pyg_scatter

    n = h * w
    torch.manual_seed(0)
    x = torch.randn(b, n, c, device=device, requires_grad=True)
    res = GF.knn_graph(x.detach(), 9, loop=True)
    raw = lambda: res.clone()  # noqa: E731  a fresh tensor each call, as a loader hands it over
    xf = x.reshape(b * n, c)
    net = torch.nn.Sequential(torch.nn.Linear(2 * c, c), torch.nn.ReLU(), torch.nn.Linear(c, c)).to(device)
    ours = gnn.EdgeConv(net)
    ref = PygEdgeConv(torch.nn.Sequential(torch.nn.Linear(2 * c, c), torch.nn.ReLU(), torch.nn.Linear(c, c))).to(device)
    ref.load_state_dict(ours.state_dict(), strict=True)
    torch.testing.assert_close(ours(x, res).reshape(b * n, c), ref(xf, res), atol=1e-4, rtol=1e-4)
    tag = f"EdgeConv B{b} N{n} C{c} k9 fwd+bwd"
    params = [x, *ours.parameters()]
    rparams = [x, *ref.parameters()]
    run_pair(tag + " (kNN result)", fwd_bwd(lambda: ours(x, res), params), fwd_bwd(lambda: ref(xf, res), rparams),
             "PyG", device, reps, rows)
    run_pair(tag + " (raw edge_index)", fwd_bwd(lambda: ours(xf, raw()), params),
             fwd_bwd(lambda: ref(xf, raw()), rparams), "PyG", device, reps, rows)

    lin = torch.nn.Linear(2 * c, c).to(device)
    mr = gnn.MRConv(lin)

    def pyg_mr():
        ei = res
        m = pyg_scatter(xf[ei[0]] - xf[ei[1]], ei[1], dim=0, dim_size=b * n, reduce="max")
        return lin(torch.cat([xf, m], dim=-1))

    torch.testing.assert_close(mr(x, res).reshape(b * n, c), pyg_mr(), atol=1e-4, rtol=1e-4)
    run_pair(f"MRConv B{b} N{n} C{c} k9 fwd+bwd (kNN result)", fwd_bwd(lambda: mr(x, res), [x, *lin.parameters()]),
             fwd_bwd(pyg_mr, [x, *lin.parameters()]), "PyG scatter", device, reps, rows)

    dyn = gnn.DynamicEdgeConv(net, k=9)  # re-initialises net, as PyG: copy the weights again
    dyn.load_state_dict(ref.state_dict(), strict=True)

    def pyg_dyn():
        with torch.no_grad():
            xd = x.detach()
            nbr = torch.cdist(xd, xd).topk(9, largest=False).indices + torch.arange(b, device=device).view(b, 1, 1) * n
            ei = torch.stack([nbr.reshape(-1), torch.arange(b * n, device=device).repeat_interleave(9)])
        return ref(xf, ei)

    torch.testing.assert_close(dyn(x).reshape(b * n, c), pyg_dyn(), atol=1e-4, rtol=1e-4)
    run_pair(f"DynamicEdgeConv B{b} N{n} C{c} k9 fwd+bwd", fwd_bwd(lambda: dyn(x), params),
             fwd_bwd(pyg_dyn, rparams), "cdist+topk+PyG", device, reps, rows)


def markdown(meta: dict[str, Any], rows: list[dict[str, Any]]) -> str:
    lines = [
        "# Vision-GNN layers (`benchmarks/bench_vig.py`)",
        "",
        f"Device: {meta.get('device_name', meta.get('device'))}; torch {meta['torch']}; threads "
        f"{meta['torch_threads']}; commit {meta.get('commit')}; load average at start "
        f"{meta.get('load_average_1m_at_start')}. Median (min-max) of the timed calls; ratio = reference / ours "
        "(> 1: graphvision faster); the two sides were timed interleaved. Every pair was checked for "
        "agreement first.",
        "",
        "| case | reference | graphvision ms | reference ms | speed-up | peak MB (ours / ref) |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        a, b = r["ours_ms"], r["ref_ms"]
        mem = "" if r["ours_peak_mb"] is None else f"{fmt(r['ours_peak_mb'], 0)} / {fmt(r['ref_peak_mb'], 0)}"
        lines.append(
            f"| {r['case']} | {r['reference']} "
            f"| {fmt(a['median_ms'], 1)} ({fmt(a['min_ms'], 1)}-{fmt(a['max_ms'], 1)}) "
            f"| {fmt(b['median_ms'], 1)} ({fmt(b['min_ms'], 1)}-{fmt(b['max_ms'], 1)}) | {r['speedup']:.2f}x | {mem} |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--reps", type=int, default=5)
    p.add_argument("--smoke", action="store_true", help="tiny shapes, 2 reps (seconds)")
    p.add_argument("--out", type=Path, default=None)
    p.add_argument("--only", choices=["grapher", "knn", "convs"], default=None)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    reps = 2 if args.smoke else args.reps
    stage = (2, 8, 8, 8) if args.smoke else (8, 48, 56, 56)
    conv_shape = (2, 8, 6, 6) if args.smoke else (8, 32, 28, 28)
    rows: list[dict[str, Any]] = []
    if args.only in (None, "knn"):
        bench_knn(*stage, device, reps, rows)
    if args.only in (None, "grapher"):
        bench_grapher(*stage, device, reps, rows)
    if args.only in (None, "convs"):
        bench_convs(*conv_shape, device, reps, rows)
    meta = metadata(device)
    name = f"vig_{device.type}" + ("_smoke" if args.smoke else "")
    write_results(name, {"meta": meta, "rows": rows}, markdown(meta, rows), args.out)


if __name__ == "__main__":
    main()
