"""Benchmark: mutual-information adjacency, naive einsum vs chunked torch vs fused Triton.

Usage::

    python benchmarks/bench_mutual_information.py            # GPU: 8 images x 3136 nodes x 64 ch x 16 bins
    python benchmarks/bench_mutual_information.py --quick    # CPU: 2 x 784 x 64 x 16
    python benchmarks/bench_mutual_information.py --smoke --out /tmp/bench   # tiny: does it run?

Providers (all compute the same dense ``(B, N, N)`` MI matrix, self loops kept):

- ``naive einsum``: the joint histograms ``(B, N, N, bins, bins)`` by one ``einsum``, then
  ``-sum P log P`` (the straightforward implementation: 25 GB for the GPU configuration);
- ``graphvision[torch]``: ``mutual_information_adjacency(..., backend="torch")`` (row chunks
  from a 256 MiB budget, upper triangle only, chunked recomputing backward);
- ``graphvision[triton]``: ``backend="triton"`` (CUDA only), IEEE fp32 ``tl.dot``;
- ``graphvision[triton, tf32]``: the same under ``torch.set_float32_matmul_precision("high")``.

Method: see ``benchmarks/README.md`` and ``benchmarks/common.py`` (timing: ``do_bench`` median on
GPU, except calls slower than 0.25 s, which get the median of 3 synced calls to fit the GPU
run's time budget; median / 20-80 % / min of ``--reps`` calls on CPU, where the minimum is the
headline on the shared machine; peak memory above what was live before the call: CUDA allocator peak, CPU
torch.profiler allocation timeline). Before timing, every provider's output and input
gradient (for a fixed random output gradient) are compared with the naive formula in float64
on a small instance of the same shape family (independent of graphvision's chunking and
kernels); on the full configuration the outputs are compared with the first provider.
Modes: ``fwd`` (no autograd) and ``fwd+bwd`` (forward, then backward to ``x``).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from common import fmt, metadata, peak_memory_mb, sync, time_fn, write_results  # noqa: E402

from graphvision.functional import mutual_information_adjacency  # noqa: E402
from graphvision.functional._mutual_information import DEFAULT_BANDWIDTH, _soft_memberships  # noqa: E402

#: The issue's target on an H200 for 8 x 3136 nodes x 64 channels x 16 bins (naive: 505 ms, 25 GB).
TARGET_MS, TARGET_MB = 20.0, 1000.0


def naive_mi(x: torch.Tensor, bins: int, differentiable: bool = False) -> torch.Tensor:
    """Dense MI with the full (B, N, N, bins, bins) joint histograms materialised."""
    a = _soft_memberships(x, bins, DEFAULT_BANDWIDTH)  # (B, N, bins, C): the library's memberships
    p = a.mean(-1)
    h = -torch.special.xlogy(p, p).sum(-1)
    joint = torch.einsum("bikc,bjlc->bijkl", a, a) / x.size(-1)
    if differentiable:
        # clamp: exact zeros (truncated memberships) would make autograd's d(P log P)/dP = -inf
        joint = joint.clamp_min(1e-30)
        hj = -(joint * joint.log()).sum((-1, -2))
    else:  # two joint-sized buffers (25 GB each for the GPU configuration)
        hj = -torch.special.xlogy(joint, joint).sum((-1, -2))
    return (h[:, :, None] + h[:, None, :] - hj).clamp_min(0.0)


Provider = Callable[[torch.Tensor], torch.Tensor]


def providers(device: torch.device, bins: int, naive: bool, triton: bool) -> dict[str, Provider]:
    def lib(backend: str, precision: str = "highest") -> Callable[[torch.Tensor], torch.Tensor]:
        def fn(x: torch.Tensor) -> torch.Tensor:
            old = torch.get_float32_matmul_precision()
            torch.set_float32_matmul_precision(precision)
            try:
                return mutual_information_adjacency(x, bins=bins, loop=True, backend=backend)
            finally:
                torch.set_float32_matmul_precision(old)

        return fn

    out: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {}
    if naive:
        out["naive einsum"] = lambda x: naive_mi(x, bins, differentiable=x.requires_grad)
    out["graphvision[torch]"] = lib("torch")
    if triton:
        out["graphvision[triton]"] = lib("triton")
        out["graphvision[triton, tf32]"] = lib("triton", "high")
    return out


def agreement(device: torch.device, bins: int, c: int, triton: bool) -> dict[str, dict[str, float]]:
    """Max error of output and input gradient against float64 naive_mi on a small instance."""
    g = torch.Generator().manual_seed(1)
    x = torch.randn(2, 37, c, generator=g, dtype=torch.float64)
    grad = torch.randn(2, 37, 37, generator=g, dtype=torch.float64)
    xr = x.clone().requires_grad_(True)
    ref = naive_mi(xr, bins, differentiable=True)
    (ref * grad).sum().backward()
    assert xr.grad is not None
    ref_grad = xr.grad
    errors = {}
    for name, fn in providers(device, bins, naive=False, triton=triton).items():
        xd = x.to(device, torch.float32).requires_grad_(True)
        out = fn(xd)
        (out * grad.to(device, torch.float32)).sum().backward()
        assert xd.grad is not None
        e_out = float((out.detach().double().cpu() - ref.detach()).abs().max() / ref.detach().abs().max())
        e_grad = float((xd.grad.double().cpu() - ref_grad).abs().max() / ref_grad.abs().max())
        errors[name] = {"rel_err_out": e_out, "rel_err_grad": e_grad}
    return errors


def timed(call: Callable[[], Any], device: torch.device, reps: int, smoke: bool) -> dict[str, float]:
    """common.time_fn, except for calls slower than 0.25 s on GPU (the naive einsum, the torch path's
    backward): do_bench would run them >= 7 times; 3 synced calls keep the GPU run within its budget."""
    if device.type != "cuda" or smoke:
        return time_fn(call, device, reps=reps, warmup=0 if smoke else 1)
    sync(device)
    t0 = time.perf_counter()
    call()
    sync(device)
    if time.perf_counter() - t0 < 0.25:
        return time_fn(call, device)
    times = []
    for _ in range(3):
        t0 = time.perf_counter()
        call()
        sync(device)
        times.append((time.perf_counter() - t0) * 1e3)
    times.sort()
    return {"median_ms": times[1], "p20_ms": times[0], "p80_ms": times[2], "min_ms": times[0]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="CPU configuration: 2 x 784 nodes")
    ap.add_argument("--smoke", action="store_true", help="tiny configuration, 1 rep: checks the script runs")
    ap.add_argument("--device", default=None, help="cpu or cuda (default: cuda when available, cpu with --quick)")
    ap.add_argument("--batch", type=int, default=None)
    ap.add_argument("--nodes", type=int, default=None)
    ap.add_argument("--channels", type=int, default=64)
    ap.add_argument("--bins", type=int, default=16)
    ap.add_argument("--reps", type=int, default=None, help="timed calls per measurement on CPU")
    ap.add_argument("--modes", default="fwd,fwd+bwd")
    ap.add_argument("--tol", type=float, default=1e-3, help="max relative error (agreement check) before timing")
    ap.add_argument("--max-naive-gb", type=float, default=None,
                    help="skip the naive einsum when its joint tensor exceeds this (default 40 on GPU, 4 on CPU)")
    ap.add_argument("--no-memory", action="store_true", help="skip the peak-memory measurements")
    ap.add_argument("--out", default=None, help="output directory (default benchmarks/results)")
    ap.add_argument("--name", default=None, help="result file stem (default mutual_information_<device>[_quick])")
    args = ap.parse_args()

    if args.device is None:
        args.device = "cuda" if torch.cuda.is_available() and not (args.quick or args.smoke) else "cpu"
    device = torch.device(args.device)
    big = not (args.quick or args.smoke)
    bsz = args.batch or (8 if big else 2 if args.quick else 1)
    n = args.nodes or (3136 if big else 784 if args.quick else 64)
    c, bins = args.channels, args.bins
    reps = args.reps or (1 if args.smoke else 5)
    max_naive = args.max_naive_gb if args.max_naive_gb is not None else (40.0 if device.type == "cuda" else 4.0)
    joint_gb = bsz * n * n * bins * bins * 4 / 1e9
    suffix = "_quick" if args.quick else "_smoke" if args.smoke else ""
    name = args.name or f"mutual_information_{device.type}{suffix}"

    # Triton on CUDA; on the CPU only in --smoke runs under TRITON_INTERPRET=1 (never timed for real)
    from graphvision.ops._triton import triton_usable

    use_triton = triton_usable(device) and (device.type == "cuda" or args.smoke)
    errors = agreement(device, bins, c, use_triton)
    bad = {k: v for k, v in errors.items() if max(v.values()) > args.tol}
    for k, v in errors.items():
        print(f"agreement vs float64 naive: {k:28s} out {v['rel_err_out']:.1e}  grad {v['rel_err_grad']:.1e}")

    g = torch.Generator().manual_seed(0)
    x = torch.randn(bsz, n, c, generator=g).to(device)
    grad_out = torch.randn(bsz, n, n, generator=g).to(device)
    rows: list[dict[str, Any]] = []
    first: torch.Tensor | None = None
    first_name = ""
    for pname, fn in providers(device, bins, joint_gb <= max_naive, use_triton).items():
        if pname in bad:
            rows.append({"provider": pname, "mode": "-", "disagrees": errors[pname]})
            print(f"{pname}: disagrees with the reference {errors[pname]}; not timed")
            continue
        with torch.no_grad():
            out = fn(x)
        if first is None:
            first, first_name, diff = out, pname, 0.0
        else:
            diff = float((out.double() - first.double()).abs().max())
        del out
        for mode in args.modes.split(","):
            if mode == "fwd+bwd" and pname == "naive einsum" and device.type == "cuda":
                continue  # another 2 x 25 GB; the forward makes the point

            if mode == "fwd":

                def call(fn: Callable[[torch.Tensor], torch.Tensor] = fn) -> Any:
                    with torch.no_grad():
                        return fn(x)

            else:

                def call(fn: Callable[[torch.Tensor], torch.Tensor] = fn) -> Any:
                    xr = x.detach().requires_grad_(True)
                    fn(xr).backward(grad_out)
                    return xr.grad

            t = timed(call, device, reps, args.smoke)
            sync(device)
            mem = None if args.no_memory else peak_memory_mb(call, device)
            row = {"provider": pname, "mode": mode, **t, "peak_mb": mem, f"max_abs_diff_vs_{first_name}": diff,
                   **{f"agreement_{k}": v for k, v in errors.get(pname, {}).items()}}
            rows.append(row)
            print(f"{pname:28s} {mode:8s} median {t['median_ms']:10.2f} ms  min {t['min_ms']:10.2f} ms  "
                  f"peak {fmt(mem, 1):>9s} MB  max|diff| {diff:.1e}", flush=True)

    meta = metadata(device)
    meta.update({"args": vars(args), "config": {"batch": bsz, "nodes": n, "channels": c, "bins": bins,
                                                "dtype": "float32", "naive_joint_gb": joint_gb}})
    stat = "median_ms" if device.type == "cuda" else "min_ms"
    lines = [
        f"# mutual_information_adjacency: {bsz} x {n} nodes x {c} channels x {bins} bins, float32, {device}",
        "",
        f"{meta['device_name']}; commit {meta['commit']}; {meta['time_utc']} UTC; torch {meta['torch']}; "
        f"triton {meta['triton']}; {meta['torch_threads']} threads; load average {meta['load_average_1m_at_start']}.",
        f"Headline statistic: **{stat.replace('_ms', '')}** (see benchmarks/README.md). The naive joint tensor "
        f"is {joint_gb:.2f} GB. Issue target on an H200 for 8 x 3136 x 64 x 16: <= {TARGET_MS:.0f} ms and "
        f"<= {TARGET_MB:.0f} MB (naive: 505 ms, 25 GB).",
        "",
        "Agreement (before timing; relative max error vs the float64 naive formula on 2 x 37 nodes, output / "
        "input gradient): " + "; ".join(f"{k} {v['rel_err_out']:.1e} / {v['rel_err_grad']:.1e}"
                                          for k, v in errors.items()),
        "",
        f"| provider | mode | {stat.replace('_ms', '')} ms | median ms | p20-p80 ms | peak MB "
        f"| max abs diff vs {first_name} |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        if "disagrees" in r:
            lines.append(f"| {r['provider']} | - | disagrees | | | | |")
            continue
        lines.append(
            f"| {r['provider']} | {r['mode']} | {fmt(r[stat])} | {fmt(r['median_ms'])} | "
            f"{fmt(r['p20_ms'])}-{fmt(r['p80_ms'])} | {fmt(r['peak_mb'], 1)} | "
            f"{r[f'max_abs_diff_vs_{first_name}']:.1e} |"
        )
    md = "\n".join(lines) + "\n"
    jp, mp = write_results(name, {"meta": meta, "agreement": errors, "results": rows}, md,
                           Path(args.out) if args.out else None)
    print(md)
    print(f"wrote {jp} and {mp}")
    if bad:
        sys.exit(1)


if __name__ == "__main__":
    main()
