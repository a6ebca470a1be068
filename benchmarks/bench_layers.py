"""Benchmark graphvision's graph convolutions against their PyTorch Geometric counterparts.

Each conv (GCNConv, GATConv, GCN2Conv, EdgeConditionedConv vs NNConv, and AttentionGCNConv, whose
nearest PyG relative is GATConv) runs on a batched 8-neighbour pixel grid, forward and
forward+backward:

- ``graphvision``: batched ``x`` of shape ``(B, N, C)`` with **one shared** ``GraphStructure``
  (the way graphvision is meant to be used on equal-size images: no per-sample edge copies);
- ``graphvision-flat``: ``(B * N, C)`` with the offset edge list of all ``B`` images (PyG's layout);
- ``pyg``: PyG's layer with the same weights (copied through ``state_dict``) on ``(B * N, C)`` and
  the offset edge list.

Before timing, graphvision's outputs (and, for fwd+bwd, input gradients) are compared with PyG's;
a disagreeing provider is reported and not timed. Method and statistics: ``benchmarks/README.md``.

    python benchmarks/bench_layers.py --quick     # CPU: B=16 28x28 C=64, about a minute
    python benchmarks/bench_layers.py             # full sizes (GPU)

Results: ``benchmarks/results/layers_<device>[_quick].json`` and ``.md``.
"""

from __future__ import annotations

import argparse
import copy
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import fmt, metadata, peak_memory_mb, sync, time_fn, write_results  # noqa: E402

warnings.filterwarnings("ignore")

HEADS = 4
LAYERS = ("gcn", "gat", "gcn2", "ecc", "attention_gcn")
LAYER_NAMES = {"gcn": "GCNConv", "gat": "GATConv", "gcn2": "GCN2Conv", "ecc": "EdgeConditionedConv",
               "attention_gcn": "AttentionGCNConv"}
# name, images B, H, W, channels C
QUICK_CONFIGS = [("grid8 B16 28x28 C64", 16, 28, 28, 64)]
FULL_CONFIGS = [
    ("grid8 B16 28x28 C64", 16, 28, 28, 64),
    ("grid8 B64 56x56 C64", 64, 56, 56, 64),
    ("grid8 B16 56x56 C256", 16, 56, 56, 256),
]
ECC_CHANNELS = 16  # ECC materialises E x C_in x C_out edge matrices: keep C small
EDGE_DIM = 2  # edge attribute = pixel offset (dy, dx)


def _pyg():
    try:
        import torch_geometric.nn as pnn

        return pnn
    except ImportError:  # pragma: no cover
        return None


def build(layer: str, c: int, device: torch.device):
    """(graphvision module, PyG module or None, channels used, call kind)."""
    import graphvision.nn as gnn

    pnn = _pyg()
    if layer == "gcn":
        ours = gnn.GCNConv(c, c)
        theirs = pnn.GCNConv(c, c) if pnn else None
    elif layer == "gat":
        ours = gnn.GATConv(c, c // HEADS, heads=HEADS)
        theirs = pnn.GATConv(c, c // HEADS, heads=HEADS) if pnn else None
    elif layer == "gcn2":
        ours = gnn.GCN2Conv(c, alpha=0.1, theta=0.5, layer=1)
        theirs = pnn.GCN2Conv(c, alpha=0.1, theta=0.5, layer=1) if pnn else None
    elif layer == "ecc":
        c = min(c, ECC_CHANNELS)
        edge_nn = torch.nn.Sequential(torch.nn.Linear(EDGE_DIM, 32), torch.nn.ReLU(), torch.nn.Linear(32, c * c))
        ours = gnn.EdgeConditionedConv(c, c, edge_nn, aggr="mean")
        theirs = pnn.NNConv(c, c, copy.deepcopy(edge_nn), aggr="mean") if pnn else None
    elif layer == "attention_gcn":
        ours = gnn.AttentionGCNConv(c, c // HEADS, heads=HEADS, alpha=0.1)
        theirs = pnn.GATConv(c, c // HEADS, heads=HEADS) if pnn else None  # nearest PyG layer (no GCN norm)
    else:
        raise ValueError(layer)
    if theirs is not None and layer != "attention_gcn":
        theirs.load_state_dict(ours.state_dict())
    return ours.to(device), (theirs.to(device) if theirs is not None else None), c


def make_inputs(b: int, h: int, w: int, c: int, device: torch.device, gen: torch.Generator) -> dict[str, Any]:
    from graphvision import GraphStructure
    from graphvision.functional import grid_graph

    n = h * w
    ei = grid_graph(h, w, connectivity=8, device=device)
    t0 = time.perf_counter()
    gs = GraphStructure(ei, n).precompute()
    sync(device)
    conv_ms = (time.perf_counter() - t0) * 1e3
    offsets = (torch.arange(b, device=device) * n).repeat_interleave(ei.size(1))
    ei_flat = ei.repeat(1, b) + offsets
    gs_flat = GraphStructure(ei_flat, b * n).precompute()
    x = torch.randn(b, n, c, generator=gen).to(device)
    yx = torch.stack(torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij"), -1).reshape(n, 2).float()
    ea = (yx[ei[0].cpu()] - yx[ei[1].cpu()]).to(device)  # (dy, dx) of each edge
    return {"n": n, "e": ei.size(1), "ei": ei, "gs": gs, "ei_flat": ei_flat, "gs_flat": gs_flat, "x": x,
            "ea": ea, "ea_flat": ea.repeat(b, 1), "conversion_ms": conv_ms}


def calls(layer: str, ours, theirs, inp: dict[str, Any], c: int) -> dict[str, Callable[[torch.Tensor], torch.Tensor]]:
    """provider -> fn(x (B, N, c)) -> output (B, N, c_out)."""
    b, n = inp["x"].shape[:2]
    gs, gs_flat, ei_flat = inp["gs"], inp["gs_flat"], inp["ei_flat"]

    def flat(t):
        return t.reshape(b * n, -1)

    if layer == "gcn2":
        out = {
            "graphvision": lambda x: ours(x, x, gs),
            "graphvision-flat": lambda x: ours(flat(x), flat(x), gs_flat).view(b, n, -1),
        }
        if theirs is not None:
            out["pyg"] = lambda x: theirs(flat(x), flat(x), ei_flat).view(b, n, -1)
        return out
    if layer == "ecc":
        ea, ea_flat = inp["ea"], inp["ea_flat"]
        out = {
            "graphvision": lambda x: ours(x, gs, ea),
            "graphvision-flat": lambda x: ours(flat(x), gs_flat, ea_flat).view(b, n, -1),
        }
        if theirs is not None:
            out["pyg"] = lambda x: theirs(flat(x), ei_flat, ea_flat).view(b, n, -1)
        return out
    if layer == "attention_gcn":
        out = {
            "graphvision": lambda x: ours(x, gs, x0=x),
            "graphvision-flat": lambda x: ours(flat(x), gs_flat, x0=flat(x)).view(b, n, -1),
        }
        if theirs is not None:
            out["pyg GATConv (reference point)"] = lambda x: theirs(flat(x), ei_flat).view(b, n, -1)
        return out
    out = {
        "graphvision": lambda x: ours(x, gs),
        "graphvision-flat": lambda x: ours(flat(x), gs_flat).view(b, n, -1),
    }
    if theirs is not None:
        out["pyg"] = lambda x: theirs(flat(x), ei_flat).view(b, n, -1)
    return out


def _fwd_bwd(fn: Callable, x: torch.Tensor, grad: torch.Tensor) -> Callable[[], torch.Tensor]:
    def run():
        xx = x.detach().requires_grad_()
        fn(xx).backward(grad)
        return xx.grad

    return run


def run_layer(layer: str, cfg: tuple, inp: dict[str, Any], device: torch.device, args) -> list[dict[str, Any]]:
    torch.manual_seed(0)
    ours, theirs, c = build(layer, cfg[4], device)
    x = inp["x"][..., :c].contiguous()
    providers = calls(layer, ours, theirs, inp, c)
    rows = []
    with torch.no_grad():
        outs = {k: f(x) for k, f in providers.items()}
    grad = torch.randn_like(outs["graphvision"])
    grads = {k: _fwd_bwd(f, x, grad)() for k, f in providers.items()}
    ref_name = "pyg" if "pyg" in providers else "graphvision"
    for name, fn in providers.items():
        row: dict[str, Any] = {"op": LAYER_NAMES[layer], "config": cfg[0], "provider": name, "channels": c}
        if "reference point" not in name:
            scale = outs[ref_name].abs().max().clamp_min(1e-12)
            err = float((outs[name] - outs[ref_name]).abs().max() / scale)
            gscale = grads[ref_name].abs().max().clamp_min(1e-12)
            gerr = float((grads[name] - grads[ref_name]).abs().max() / gscale)
            row["max_rel_err"] = max(err, gerr)
            if row["max_rel_err"] > args.tol:
                row["error"] = f"disagrees with {ref_name}: rel err {row['max_rel_err']:.2e}"
                print(f"  {name:32s} DISAGREES ({row['max_rel_err']:.2e})")
                rows.append(row)
                continue

        def fwd(fn=fn):
            with torch.no_grad():
                return fn(x)

        full = _fwd_bwd(fn, x, grad)
        for mode, f in (("fwd", fwd), ("full", full)):
            t = time_fn(f, device, reps=args.reps)
            row.update({f"{mode}_ms": t[f"{args.stat}_ms"], f"{mode}_p20_ms": t["p20_ms"],
                        f"{mode}_p80_ms": t["p80_ms"], f"{mode}_median_ms": t["median_ms"]})
            if not args.no_memory:
                row[f"peak_{mode}_mb"] = peak_memory_mb(f, device)
        print(f"  {name:32s} fwd {fmt(row['fwd_ms'])} ms  fwd+bwd {fmt(row['full_ms'])} ms  "
              f"peak {fmt(row.get('peak_fwd_mb'))} / {fmt(row.get('peak_full_mb'))} MB")
        rows.append(row)
    base = next((r for r in rows if r["provider"] == "pyg" and "fwd_ms" in r), None)  # not a mere reference point
    for r in rows:
        if base is not None and "fwd_ms" in r and not r["provider"].startswith("pyg"):
            r["speedup"] = {"fwd": base["fwd_ms"] / r["fwd_ms"], "full": base["full_ms"] / r["full_ms"]}
    return rows


def markdown(meta: dict[str, Any], graphs: list[dict[str, Any]], rows: list[dict[str, Any]], args) -> str:
    lines = [f"# graphvision layers vs PyG ({'quick, CPU' if args.quick else 'full'})", ""]
    lines.append(
        f"Method: benchmarks/README.md; this script: benchmarks/bench_layers.py. Statistic: **{args.stat}** of "
        f"{args.reps} timed calls after warm-up. `graphvision` = batched (B, N, C) input with one shared "
        "GraphStructure; `graphvision-flat` = (B*N, C) with the offset edge list (PyG's layout); `pyg` = the "
        "PyG layer with copied weights on the offset edge list. Outputs and input gradients agree with PyG "
        "(max relative error column) before timing. AttentionGCNConv has no PyG twin; PyG GATConv with the same "
        "heads is shown as a reference point only (different math: GCN-normalised weights, initial residual)."
    )
    if meta["device"] == "cpu":
        lines += ["", "**CPU timings are noisy: the 2 cores were shared with other jobs while this ran; "
                  "treat differences under ~30% as noise.**"]
    lines += ["", f"commit {meta['commit']}, {meta['time_utc']} UTC, {meta['device_name']} ({meta['device']}), "
              f"torch {meta['torch']}, PyG {meta.get('torch_geometric')}, threads {meta['torch_threads']}", ""]
    for g in graphs:
        lines.append(f"- {g['name']}: N={g['n']:,} nodes per image, E={g['e']:,} edges per image "
                     f"(GraphStructure conversion {g['conversion_ms']:.2f} ms, once per graph)")
    lines += ["", "| config | layer | provider | fwd ms | fwd+bwd ms | fwd peak MB | fwd+bwd peak MB | "
              "speed-up fwd / fwd+bwd vs PyG | max rel err |", "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        if "error" in r:
            lines.append(f"| {r['config']} | {r['op']} | {r['provider']} | – | – | – | – | – | {r['error']} |")
            continue
        sp = "–"
        if isinstance(r.get("speedup"), dict):
            sp = f"{r['speedup']['fwd']:.2f}x / {r['speedup']['full']:.2f}x"
        err = r.get("max_rel_err")
        lines.append(
            f"| {r['config']} | {r['op']} (C={r['channels']}) | {r['provider']} | {fmt(r['fwd_ms'])} | "
            f"{fmt(r['full_ms'])} | {fmt(r.get('peak_fwd_mb'))} | {fmt(r.get('peak_full_mb'))} | {sp} | "
            f"{'–' if err is None else f'{err:.1e}'} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="CPU config B=16 28x28 C=64 (about a minute)")
    p.add_argument("--device", default=None, help="cpu or cuda (default: cuda when available)")
    p.add_argument("--layers", nargs="*", default=list(LAYERS), choices=LAYERS)
    p.add_argument("--reps", type=int, default=None, help="timed calls per measurement on CPU")
    p.add_argument("--stat", choices=("median", "min"), default=None,
                   help="headline statistic (default: min on a shared CPU, median on GPU)")
    p.add_argument("--tol", type=float, default=1e-4, help="max relative disagreement before timing")
    p.add_argument("--no-memory", action="store_true", help="skip the peak-memory measurements")
    p.add_argument("--threads", type=int, default=None, help="torch.set_num_threads on CPU")
    p.add_argument("--out", default=None, help="output directory (default benchmarks/results)")
    p.add_argument("--name", default=None, help="result file stem (default layers_<device>[_quick])")
    args = p.parse_args(argv)

    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    if args.threads:
        torch.set_num_threads(args.threads)
    args.stat = args.stat or ("median" if device.type == "cuda" else "min")
    args.reps = args.reps or (5 if args.quick else 9)
    import graphvision

    graphvision.config.set_checks(False)  # no host-syncing index checks inside the timings
    meta = metadata(device)
    t0 = time.time()
    rows: list[dict[str, Any]] = []
    graphs = []
    for cfg in QUICK_CONFIGS if args.quick else FULL_CONFIGS:
        _, b, h, w, c = cfg
        inp = make_inputs(b, h, w, c, device, torch.Generator().manual_seed(0))
        graphs.append({"name": cfg[0], "n": inp["n"], "e": inp["e"], "conversion_ms": inp["conversion_ms"]})
        print(f"=== {cfg[0]}: N={inp['n']} E={inp['e']} per image")
        for layer in args.layers:
            print(f"-- {layer}")
            rows.extend(run_layer(layer, cfg, inp, device, args))
            if device.type == "cuda":
                torch.cuda.empty_cache()
    meta["wall_s"] = time.time() - t0
    meta["args"] = vars(args)
    name = args.name or f"layers_{device.type}{'_quick' if args.quick else ''}"
    jp, mp = write_results(name, {"metadata": meta, "graphs": graphs, "rows": rows}, markdown(meta, graphs, rows, args),
                           Path(args.out) if args.out else None)
    print(f"wrote {jp} and {mp} in {meta['wall_s']:.0f} s")
    return 1 if any("error" in r and r["provider"].startswith("graphvision") for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
