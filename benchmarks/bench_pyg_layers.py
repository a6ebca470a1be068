"""The PyG-twin layers (GATv2, SAGE, GraphConv, GIN, GINE, GATConv with edge_dim) against PyG's.

For each configuration a feature map ``(B, C, H, W)`` goes through ``image_to_graph`` (8-neighbour
grid) and its result into each layer, two ways:

- ``graphvision``: the converter's ``GraphStructure`` (``res.graph``) passed to the layer (sorted
  CSR, transpose, in-degree and self-looped graph derived once and reused, as in a training loop
  over same-sized images);
- ``pyg``: PyG 2.8's layer of the same name, weights copied with ``load_state_dict(strict=True)``,
  on the same ``(B*N, C)`` nodes and the same edges (``res.edge_index``).

Outputs and input gradients (node and edge features) are compared with PyG before timing.
Statistic: median (min-max) of ``--reps`` calls after 2 warm-up calls; fwd under ``no_grad``,
fwd+bwd with a random output gradient. Speed-up and memory ratio = PyG / graphvision.

    python benchmarks/bench_pyg_layers.py --threads 1          # CPU
    python benchmarks/bench_pyg_layers.py --smoke --out /tmp/b # tiny, seconds

Results: ``benchmarks/results/pyg_layers_<device>.json`` and ``.md``.
"""

from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import fmt, metadata, peak_memory_mb, pyg_comparison_table, time_min_max as timed, write_results  # noqa: E402

warnings.filterwarnings("ignore")

HEADS = 4
EDGE_DIM = 8
# name, B, C, H, W
CONFIGS = [("B8 56x56 C64", 8, 64, 56, 56), ("RMCG B64 7x7 C64", 64, 64, 7, 7)]
SMOKE = [("smoke B2 6x6 C8", 2, 8, 6, 6)]
LAYERS = ["GATv2Conv", "GATv2Conv edge_dim", "GATConv edge_dim", "SAGEConv mean", "SAGEConv max", "GraphConv",
          "GINConv", "GINEConv edge_dim"]


def build(layer: str, c: int) -> tuple[torch.nn.Module, torch.nn.Module, bool]:
    """(ours, theirs, takes_edge_attr) with PyG's weights loaded into ours (strict)."""
    import torch_geometric.nn as pnn

    import graphvision.nn as gnn

    def mlp() -> torch.nn.Module:
        return torch.nn.Sequential(torch.nn.Linear(c, c), torch.nn.ReLU(), torch.nn.Linear(c, c))

    name, _, opt = layer.partition(" ")
    kw: dict[str, Any] = {}
    if name in ("GATv2Conv", "GATConv"):
        args: tuple = (c, c // HEADS)
        kw["heads"] = HEADS
        if opt == "edge_dim":
            kw["edge_dim"] = EDGE_DIM
    elif name == "SAGEConv":
        args, kw["aggr"] = (c, c), opt
    elif name == "GraphConv":
        args = (c, c)
    elif name == "GINConv":
        args = (mlp(),)
    else:
        args = (mlp(),)
        kw["edge_dim"] = EDGE_DIM
    theirs = getattr(pnn, name)(*args, **kw)
    if name in ("GINConv", "GINEConv"):
        import copy

        args = (copy.deepcopy(theirs.nn),)
    ours = getattr(gnn, name)(*args, **kw)
    ours.load_state_dict(theirs.state_dict(), strict=True)
    return ours, theirs, opt == "edge_dim"


def run_config(cfg: tuple, device: torch.device, args) -> list[dict]:
    import graphvision.functional as GF

    name, b, c, h, w = cfg
    torch.manual_seed(0)
    fmap = torch.randn(b, c, h, w, device=device)
    res = GF.image_to_graph(fmap, connectivity=8)
    x = res.x.detach()
    n, e = x.size(0), res.edge_index.size(1)
    ea = torch.randn(e, EDGE_DIM, device=device)
    res.graph.precompute()
    rows = []
    for layer in args.layers:
        ours, theirs, uses_ea = build(layer, c)
        ours, theirs = ours.to(device), theirs.to(device)
        graphs = {"graphvision": (ours, res.graph), "pyg": (theirs, res.edge_index)}

        def call(xx, prov, eg=ea, uses_ea=uses_ea):
            m, g = graphs[prov]
            return m(xx, g, eg) if uses_ea else m(xx, g)

        providers = {prov: (lambda xx, prov=prov: call(xx, prov)) for prov in graphs}
        refs: dict[str, Any] = {}
        grad = None
        for prov in graphs:  # agreement: output, node gradient, edge-feature gradient
            xx = x.clone().requires_grad_()
            eg = ea.clone().requires_grad_() if uses_ea else ea
            out = call(xx, prov, eg)
            if grad is None:
                grad = torch.randn_like(out)
            out.backward(grad)
            refs[prov] = (out.detach(), xx.grad, eg.grad if uses_ea else None)
        err = 0.0
        for a, r in zip(refs["graphvision"], refs["pyg"]):
            if a is not None:
                err = max(err, float((a - r).abs().max() / r.abs().max().clamp_min(1e-12)))
        for prov, fn in providers.items():
            row: dict[str, Any] = {"config": name, "layer": layer, "provider": prov, "nodes": n, "edges": e}
            if prov == "graphvision":
                row["max_rel_err"] = err

            def fwd(fn=fn):
                with torch.no_grad():
                    return fn(x)

            def full(fn=fn):
                xx = x.detach().requires_grad_()
                fn(xx).backward(grad)
                return xx.grad

            row["fwd"] = timed(fwd, device, args.reps)
            row["full"] = timed(full, device, args.reps)
            if not args.no_memory:
                row["peak_fwd_mb"] = peak_memory_mb(fwd, device)
                row["peak_full_mb"] = peak_memory_mb(full, device)
            print(f"  {name:18s} {layer:20s} {prov:12s} fwd {fmt(row['fwd']['median_ms'])} ms  "
                  f"fwd+bwd {fmt(row['full']['median_ms'])} ms  peak {fmt(row.get('peak_fwd_mb'))} / "
                  f"{fmt(row.get('peak_full_mb'))} MB  err {row.get('max_rel_err', '-')}", flush=True)
            rows.append(row)
        base, ours_row = rows[-1], rows[-2]
        ours_row["speedup_vs_pyg"] = {m: base[m]["median_ms"] / ours_row[m]["median_ms"] for m in ("fwd", "full")}
        if "peak_fwd_mb" in ours_row:
            ours_row["memory_ratio_vs_pyg"] = {
                m: base[f"peak_{m}_mb"] / max(ours_row[f"peak_{m}_mb"], 1e-9) for m in ("fwd", "full")
            }
    return rows


def markdown(meta: dict[str, Any], rows: list[dict], args) -> str:
    lines = [
        "# PyG-twin layers vs PyG (converter output -> layer)",
        "",
        "Script: `benchmarks/bench_pyg_layers.py`. A `(B, C, H, W)` feature map goes through "
        "`image_to_graph` (8-neighbour grid); `graphvision` = the layer on the converter's GraphStructure, "
        "`pyg` = PyG's layer of the same name with the same weights (strict state_dict) on the same nodes "
        f"and edges. Edge features (`edge_dim`): random `(E, {EDGE_DIM})`. Heads {HEADS}, C_out = C. "
        f"Statistic: median (min-max) of {args.reps} calls after 2 warm-up calls, milliseconds. Speed-up and "
        "memory ratio = PyG / graphvision (higher is better). Peak memory: bytes allocated above the live set "
        "during one call (CPU profiler). max rel err: output and input gradients (nodes, edge features) "
        "against PyG's.",
        "",
        "**The machine is shared** (2 cores, several agents running tests at the same time): the absolute "
        "times are noisy; the ratios come from the same run, provider next to provider.",
        "",
    ]
    lines += pyg_comparison_table(meta, rows, bold_speedup=True)
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--reps", type=int, default=5)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--layers", nargs="*", default=LAYERS, help=f"subset of {LAYERS}")
    p.add_argument("--configs", nargs="*", type=int, default=None, help="indices into the configs")
    p.add_argument("--smoke", action="store_true", help="tiny graphs, seconds")
    p.add_argument("--no-memory", action="store_true")
    p.add_argument("--out", type=Path, default=None)
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.smoke:
        args.reps = 2
    device = torch.device(args.device)
    meta = metadata(device)
    configs = SMOKE if args.smoke else [CONFIGS[i] for i in (args.configs or range(len(CONFIGS)))]
    rows = []
    for cfg in configs:
        rows += run_config(cfg, device, args)
    bad = [r for r in rows if r.get("max_rel_err", 0.0) > 1e-4]
    payload = {"meta": meta, "rows": rows, "bad": len(bad)}
    name = f"pyg_layers_{device.type}" + ("_smoke" if args.smoke else "")
    jp, mp = write_results(name, payload, markdown(meta, rows, args), args.out)
    print(f"wrote {jp} and {mp}")
    if bad:
        print(f"{len(bad)} layers disagree with PyG", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
