"""Layers as a user calls them: the converter's result passed straight to the layer, against PyG.

For each configuration a feature map ``(B, C, H, W)`` goes through ``image_to_graph`` (8-neighbour
grid) and into ``GATConv``, ``AttentionGCNConv`` and ``GCNConv``, in three ways:

- ``graphvision (res.graph)``: the converter's ``GraphStructure`` (``res.graph``) passed to the
  layer: the sorted CSR, the self-looped graph and the GCN normalisation are derived once and
  reused, as they are in a training loop over same-sized images;
- ``graphvision (raw edge_index)``: a fresh ``(2, E)`` tensor with the same grid every call (as a
  data loader hands it over): compared by content with the last raw graphs seen, it finds the
  structure derived for the first one;
- ``graphvision (raw, unseen graph)``: the same fresh tensors with the content memory cleared
  before every call (as for a graph the library has not seen): validation, self-looped CSR,
  transpose and index arrays built per call, the worst case;
- ``pyg``: PyG's layer (weights copied through ``state_dict``) on the same ``(B*N, C)`` nodes and
  the same edges (``res.edge_index``). For ``AttentionGCNConv``, which PyG lacks, PyG's
  ``GATConv`` with the same heads is the reference point (different maths, same graph).

Outputs and input gradients are compared with PyG before timing (GAT and GCN). The converter's
own cost is timed separately against PyG's ``torch_geometric.utils.grid`` (one image, offset per
image) and a plain-torch builder. Statistic: median (with min and max) of ``--reps`` calls.

    python benchmarks/bench_user_path.py --threads 2          # CPU, about 3 minutes
    python benchmarks/bench_user_path.py --smoke --out /tmp/b # tiny, seconds

Results: ``benchmarks/results/user_path_<device>.json`` and ``.md``.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import cell, fmt, metadata, peak_memory_mb, pyg_comparison_table, sync, time_min_max as timed, write_results  # noqa: E402

warnings.filterwarnings("ignore")

HEADS = 4
# name, B, C, H, W
CONFIGS = [("B8 56x56 C64", 8, 64, 56, 56), ("RMCG B64 7x7 C64", 64, 64, 7, 7)]
SMOKE = [("smoke B2 6x6 C8", 2, 8, 6, 6)]


def timed_interleaved(
    fns: dict[str, Callable[[], Any]], device: torch.device, reps: int, warmup: int = 2
) -> dict[str, list[float]]:
    """Per provider, ``reps`` times in ms, taken round-robin (rep r of every provider back to back)."""
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    out: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(reps):
        for k, fn in fns.items():
            sync(device)
            t0 = time.perf_counter()
            fn()
            sync(device)
            out[k].append((time.perf_counter() - t0) * 1e3)
    return out


def build(layer: str, c: int):
    import torch_geometric.nn as pnn

    import graphvision.nn as gnn

    if layer == "GATConv":
        ours, theirs = gnn.GATConv(c, c // HEADS, heads=HEADS), pnn.GATConv(c, c // HEADS, heads=HEADS)
        theirs.load_state_dict(ours.state_dict(), strict=True)
        return ours, theirs, True
    if layer == "GCNConv":
        ours, theirs = gnn.GCNConv(c, c), pnn.GCNConv(c, c)
        theirs.load_state_dict(ours.state_dict(), strict=True)
        return ours, theirs, True
    ours = gnn.AttentionGCNConv(c, c // HEADS, heads=HEADS)
    return ours, pnn.GATConv(c, c // HEADS, heads=HEADS), False


def fresh_stream(ei: torch.Tensor, count: int) -> Callable[[], torch.Tensor]:
    """A new tensor per call, prepared outside the timed region (a data loader's hand-over)."""
    pool = [ei.clone() for _ in range(count)]
    it = iter(pool * 1000)
    return lambda: next(it)


def run_config(cfg: tuple, device: torch.device, args) -> tuple[list[dict], dict]:
    import graphvision.functional as GF

    name, b, c, h, w = cfg
    torch.manual_seed(0)
    fmap = torch.randn(b, c, h, w, device=device)
    res = GF.image_to_graph(fmap, connectivity=8)
    x = res.x.detach()
    n, e = x.size(0), res.edge_index.size(1)
    raw = fresh_stream(res.edge_index, args.reps + 4)
    unseen_raw = fresh_stream(res.edge_index, args.reps + 4)

    def unseen() -> torch.Tensor:
        from graphvision.ops._api import clear_recent_graphs

        clear_recent_graphs()  # never served from the content memory: the full per-call cost
        return unseen_raw()
    rows = []
    for layer in ("GATConv", "AttentionGCNConv", "GCNConv"):
        ours, theirs, twin = build(layer, c)
        ours, theirs = ours.to(device), theirs.to(device)
        providers = {
            "graphvision (res.graph)": lambda xx, m=ours: m(xx, res.graph),
            "graphvision (raw edge_index)": lambda xx, m=ours: m(xx, raw()),
            "graphvision (raw, unseen graph)": lambda xx, m=ours: m(xx, unseen()),
            "pyg" if twin else "pyg GATConv (reference point)": lambda xx, m=theirs: m(xx, res.edge_index),
        }
        grad = torch.randn(n, c, device=device)
        ref_out = ref_grad = None
        if twin:
            xx = x.clone().requires_grad_()
            ref_out = theirs(xx, res.edge_index)
            ref_out.backward(grad)
            ref_grad = xx.grad
        layer_rows: dict[str, dict[str, Any]] = {}
        fns: dict[str, dict[str, Callable[[], Any]]] = {"fwd": {}, "full": {}}
        for prov, fn in providers.items():
            row: dict[str, Any] = {"config": name, "layer": layer, "provider": prov, "nodes": n, "edges": e}
            if twin and not prov.startswith("pyg"):
                xx = x.clone().requires_grad_()
                out = fn(xx)
                out.backward(grad)
                scale = ref_out.abs().max().clamp_min(1e-12)
                row["max_rel_err"] = max(
                    float((out - ref_out).abs().max() / scale),
                    float((xx.grad - ref_grad).abs().max() / ref_grad.abs().max().clamp_min(1e-12)),
                )

            def fwd(fn=fn):
                with torch.no_grad():
                    return fn(x)

            def full(fn=fn):
                xx = x.detach().requires_grad_()
                fn(xx).backward(grad)
                return xx.grad

            fns["fwd"][prov], fns["full"][prov] = fwd, full
            if not args.no_memory:
                row["peak_fwd_mb"] = peak_memory_mb(fwd, device)
                row["peak_full_mb"] = peak_memory_mb(full, device)
            layer_rows[prov] = row
        base_name = next(p for p in providers if p.startswith("pyg"))
        for mode in ("fwd", "full"):
            # interleaved: rep r times every provider back to back, so a load change on a shared
            # machine hits all of them; the speed-up is the median of the per-rep ratios
            times = timed_interleaved(fns[mode], device, args.reps)
            for prov, row in layer_rows.items():
                ts = times[prov]
                row[mode] = {"median_ms": statistics.median(ts), "min_ms": min(ts), "max_ms": max(ts)}
                if prov != base_name:
                    ratios = [b / o for b, o in zip(times[base_name], ts)]
                    row.setdefault("speedup_vs_pyg", {})[mode] = statistics.median(ratios)
        for prov, row in layer_rows.items():
            if prov != base_name and "peak_fwd_mb" in row and row["peak_fwd_mb"] > 0:
                base = layer_rows[base_name]
                row["memory_ratio_vs_pyg"] = {m: base[f"peak_{m}_mb"] / max(row[f"peak_{m}_mb"], 1e-9)
                                              for m in ("fwd", "full")}
            print(f"  {name:18s} {layer:17s} {prov:30s} fwd {fmt(row['fwd']['median_ms'])} ms  "
                  f"fwd+bwd {fmt(row['full']['median_ms'])} ms  peak {fmt(row.get('peak_fwd_mb'))} / "
                  f"{fmt(row.get('peak_full_mb'))} MB  err {row.get('max_rel_err', '-')}")
            rows.append(row)
    return rows, converters(cfg, device, args)


def converters(cfg: tuple, device: torch.device, args) -> dict[str, Any]:
    """The converter's own cost: graphvision vs PyG's grid and a plain-torch builder."""
    import graphvision.functional as GF

    name, b, c, h, w = cfg
    fmap = torch.randn(b, c, h, w, device=device)
    out: dict[str, Any] = {"config": name}
    out["graphvision image_to_graph (cached grid)"] = timed(lambda: GF.image_to_graph(fmap), device, args.reps)

    def plain() -> tuple:
        ys, xs = torch.meshgrid(torch.arange(h, device=device), torch.arange(w, device=device), indexing="ij")
        src, dst = [], []
        for dy in (-1, 0, 1):
            for dx in (-1, 0, 1):
                if dy == dx == 0:
                    continue
                ny, nx = ys + dy, xs + dx
                ok = (ny >= 0) & (ny < h) & (nx >= 0) & (nx < w)
                src.append((ny * w + nx)[ok])
                dst.append((ys * w + xs)[ok])
        ei = torch.stack([torch.cat(src), torch.cat(dst)])
        off = (torch.arange(b, device=device) * h * w).repeat_interleave(ei.size(1))
        return fmap.permute(0, 2, 3, 1).reshape(-1, c), ei.repeat(1, b) + off

    out["plain torch (masks + cat)"] = timed(plain, device, args.reps)
    try:
        from torch_geometric.utils import grid

        def pyg() -> tuple:
            ei, _ = grid(h, w, device=device)
            ei = ei[:, ei[0] != ei[1]]  # PyG's grid includes self-loops; the 8-neighbour graph has none
            off = (torch.arange(b, device=device) * h * w).repeat_interleave(ei.size(1))
            return fmap.permute(0, 2, 3, 1).reshape(-1, c), ei.repeat(1, b) + off

        out["pyg utils.grid + offsets"] = timed(pyg, device, args.reps)
    except ImportError:  # pragma: no cover
        pass
    base = out["graphvision image_to_graph (cached grid)"]["median_ms"]
    for k, v in list(out.items()):
        if isinstance(v, dict):
            v["ratio_to_graphvision"] = v["median_ms"] / base
    return out


def markdown(meta: dict[str, Any], rows: list[dict], convs: list[dict], args) -> str:
    lines = [
        "# Layers as a user calls them (converter -> layer) vs PyG",
        "",
        "Script: `benchmarks/bench_user_path.py`. A `(B, C, H, W)` feature map goes through "
        "`image_to_graph` (8-neighbour grid); the result is passed to the layer. `res.graph` = the "
        "converter's GraphStructure; `raw edge_index` = a fresh `(2, E)` tensor of the same grid every call "
        "(found by content); `raw, unseen graph` = the same, with the content memory cleared before every "
        "call (everything derived per call: the worst case); `pyg` = PyG's layer with the same weights on the "
        "same nodes and edges. Statistic: median (min-max) of "
        f"{args.reps} calls after 2 warm-up calls, milliseconds; the providers of one layer are timed "
        "interleaved (call r of each back to back), and the speed-up is the median of the per-call ratios "
        "PyG / graphvision (higher is better), so load on a shared machine hits both sides alike. Memory "
        "ratio = PyG / graphvision peak. Peak memory: bytes allocated above the live set during one call "
        "(CPU profiler).",
        "",
    ]
    lines += pyg_comparison_table(meta, rows)
    lines += ["", "## The converter's own cost", "",
              "| config | builder | ms | ratio to graphvision |", "|---|---|---|---|"]
    for cv in convs:
        for k, v in cv.items():
            if isinstance(v, dict):
                lines.append(f"| {cv['config']} | {k} | {cell(v)} | {v['ratio_to_graphvision']:.2f}x |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--reps", type=int, default=9)
    p.add_argument("--threads", type=int, default=None)
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
    rows, convs = [], []
    for cfg in SMOKE if args.smoke else CONFIGS:
        r, cv = run_config(cfg, device, args)
        rows += r
        convs.append(cv)
    bad = [r for r in rows if r.get("max_rel_err", 0.0) > 1e-4]
    payload = {"meta": meta, "rows": rows, "converters": convs, "bad": len(bad)}
    name = f"user_path_{device.type}" + ("_smoke" if args.smoke else "")
    jp, mp = write_results(name, payload, markdown(meta, rows, convs, args), args.out)
    print(f"wrote {jp} and {mp}")
    if bad:
        print(f"{len(bad)} providers disagree with PyG", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
