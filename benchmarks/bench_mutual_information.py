"""Benchmark: mutual-information adjacency, naive einsum vs chunked torch vs fused Triton.

Usage::

    python benchmarks/bench_mutual_information.py            # GPU: 8 images x 3136 nodes x 64 ch x 16 bins
    python benchmarks/bench_mutual_information.py --quick    # CPU: 2 x 784 x 64 x 16 (CI-sized)

Providers (all compute the same dense ``(B, N, N)`` MI matrix, self loops kept):

- ``naive_einsum``: the joint histograms ``(B, N, N, bins, bins)`` by one ``einsum``, then
  ``-sum P log P`` (what a straightforward implementation does; 25 GB for the GPU config);
- ``torch_chunked``: ``mutual_information_adjacency(..., backend="torch")`` (row chunks from a
  memory budget, upper triangle only);
- ``triton``: ``backend="triton"`` (CUDA only), IEEE fp32 dot;
- ``triton_tf32``: the same with ``torch.set_float32_matmul_precision("high")`` (TF32 tensor cores).

Method: every provider's output is compared with the first one before timing (max abs
difference reported). Then 2 warm-up calls and the median (min, max) of ``--repeat`` timed
calls, with ``torch.cuda.synchronize()`` inside the timed region. Peak memory: on CUDA
``max_memory_allocated`` during one call minus what was allocated before it; on CPU the peak of
resident-set-size (``VmHWM`` reset through ``/proc/self/clear_refs``, Linux) during one call
minus the RSS before it (inputs excluded). Modes: ``forward`` (no autograd) and ``full`` (forward + backward to ``x``).
Results go to ``benchmarks/results/mutual_information_<tag>.{json,md}``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from graphvision.functional import mutual_information_adjacency  # noqa: E402
from graphvision.functional._mutual_information import _soft_memberships  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"


def naive_mi(x: torch.Tensor, bins: int) -> torch.Tensor:
    """Dense MI with the full (B, N, N, bins, bins) joint histograms materialised."""
    a = _soft_memberships(x, bins, 0.5)  # (B, N, bins, C), the library's memberships
    c = x.size(-1)
    p = a.mean(-1)
    h = -torch.special.xlogy(p, p).sum(-1)
    joint = torch.einsum("bikc,bjlc->bijkl", a, a) / c
    hj = -torch.special.xlogy(joint, joint).sum((-1, -2))
    return (h[:, :, None] + h[:, None, :] - hj).clamp_min(0.0)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def peak_bytes(fn: Callable[[], object], device: torch.device) -> int:
    """Peak extra bytes allocated during one call of ``fn``."""
    if device.type == "cuda":
        sync(device)
        torch.cuda.reset_peak_memory_stats(device)
        before = torch.cuda.memory_allocated(device)
        out = fn()
        sync(device)
        peak = torch.cuda.max_memory_allocated(device) - before
        del out
        return int(peak)
    # CPU: peak resident set size during the call (Linux). Writing "5" to clear_refs resets
    # VmHWM; large tensors are mmap-ed and returned to the OS on free, so RSS tracks live bytes.
    def status(key: str) -> int:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1]) * 1024
        return 0

    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        return -1
    before = status("VmRSS")
    out = fn()
    peak = status("VmHWM") - before
    del out
    return int(peak)


def time_ms(fn: Callable[[], object], device: torch.device, repeat: int, warmup: int = 2) -> dict[str, float]:
    for _ in range(warmup):
        fn()
    sync(device)
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        sync(device)
        times.append((time.perf_counter() - t0) * 1e3)
    return {"median_ms": statistics.median(times), "min_ms": min(times), "max_ms": max(times), "repeat": repeat}


def providers(device: torch.device, bins: int, naive_ok: bool) -> dict[str, Callable[[torch.Tensor], torch.Tensor]]:
    def lib(backend: str, precision: str = "highest") -> Callable[[torch.Tensor], torch.Tensor]:
        def fn(x: torch.Tensor) -> torch.Tensor:
            old = torch.get_float32_matmul_precision()
            torch.set_float32_matmul_precision(precision)
            try:
                return mutual_information_adjacency(x, bins=bins, self_loops=True, backend=backend)
            finally:
                torch.set_float32_matmul_precision(old)

        return fn

    out: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {}
    if naive_ok:
        out["naive_einsum"] = lambda x: naive_mi(x, bins)
    out["torch_chunked"] = lib("torch")
    if device.type == "cuda":
        out["triton"] = lib("triton")
        out["triton_tf32"] = lib("triton", "high")
    return out


def git_commit() -> str:
    try:
        return subprocess.check_output(["git", "rev-parse", "--short", "HEAD"], text=True,
                                       cwd=Path(__file__).resolve().parent).strip()
    except Exception:
        return "unknown"


def main() -> None:
    if "MALLOC_MMAP_THRESHOLD_" not in os.environ and sys.platform.startswith("linux"):
        # fixed glibc mmap threshold: every tensor >= 64 KiB is mmap-ed and unmapped on free, so
        # the CPU peak-RSS measurement sees each call's own allocations (re-exec to apply it)
        os.execve(sys.executable, [sys.executable, *sys.argv], {**os.environ, "MALLOC_MMAP_THRESHOLD_": "65536"})
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="small CPU configuration (2 x 784 nodes)")
    ap.add_argument("--device", default=None, help="cpu or cuda (default: cuda if available, cpu with --quick)")
    ap.add_argument("--batch", type=int, default=None)
    ap.add_argument("--nodes", type=int, default=None)
    ap.add_argument("--channels", type=int, default=64)
    ap.add_argument("--bins", type=int, default=16)
    ap.add_argument("--repeat", type=int, default=None)
    ap.add_argument("--modes", default="forward,full")
    ap.add_argument("--max-naive-gb", type=float, default=None,
                    help="skip naive_einsum when its joint tensor would exceed this (default 40 GPU, 4 CPU)")
    ap.add_argument("--tag", default=None, help="results file suffix (default: cpu_quick / <device>)")
    args = ap.parse_args()

    if args.device is None:
        args.device = "cpu" if args.quick or not torch.cuda.is_available() else "cuda"
    device = torch.device(args.device)
    bsz = args.batch or (2 if args.quick else 8)
    n = args.nodes or (784 if args.quick else 3136)
    c, bins = args.channels, args.bins
    repeat = args.repeat or (3 if device.type == "cpu" else 10)
    max_naive = args.max_naive_gb if args.max_naive_gb is not None else (4.0 if device.type == "cpu" else 40.0)
    joint_gb = bsz * n * n * bins * bins * 4 / 1e9
    tag = args.tag or ("cpu_quick" if args.quick else device.type)

    g = torch.Generator().manual_seed(0)
    x = torch.randn(bsz, n, c, generator=g).to(device)
    provs = providers(device, bins, joint_gb <= max_naive)
    rows = []
    reference: torch.Tensor | None = None
    ref_name = ""
    for name, fn in provs.items():
        with torch.no_grad():
            out = fn(x)
        if reference is None:
            reference, ref_name = out, name
            err = 0.0
        else:
            err = float((out.double() - reference.double()).abs().max())
        del out
        for mode in args.modes.split(","):
            if mode == "full" and name == "naive_einsum" and device.type == "cuda":
                continue  # 3 x 25 GB; the point is made by the forward
            if mode == "forward":

                def call(fn=fn):
                    with torch.no_grad():
                        return fn(x)

            else:

                def call(fn=fn):
                    xr = x.detach().requires_grad_(True)
                    out = fn(xr)
                    out.sum().backward()
                    return xr.grad

            t = time_ms(call, device, repeat)
            mem = peak_bytes(call, device)
            rows.append({"provider": name, "mode": mode, **t, "peak_mb": mem / 2**20,
                         "max_abs_diff_vs_" + ref_name: err})
            print(f"{name:14s} {mode:8s} {t['median_ms']:10.2f} ms  (min {t['min_ms']:.2f}, max {t['max_ms']:.2f})"
                  f"  peak {mem / 2**20:9.1f} MB  max|diff| {err:.2e}", flush=True)

    meta = {
        "benchmark": "mutual_information_adjacency",
        "config": {"batch": bsz, "nodes": n, "channels": c, "bins": bins, "dtype": "float32", "device": str(device)},
        "naive_joint_gb": joint_gb,
        "commit": git_commit(),
        "timestamp": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "torch": torch.__version__,
        "triton": _triton_version(),
        "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "cpu",
        "cpu_threads": torch.get_num_threads(),
        "cpu_count": os.cpu_count(),
        "method": "2 warm-up calls, median (min, max) of `repeat` timed calls with device sync; "
                  "peak = extra bytes during one call (CUDA allocator peak / CPU peak RSS via VmHWM)",
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"mutual_information_{tag}.json").write_text(json.dumps({"meta": meta, "results": rows}, indent=2))
    lines = [
        f"# mutual_information_adjacency: {bsz} x {n} nodes x {c} channels x {bins} bins ({device})",
        "",
        f"commit {meta['commit']}, {meta['timestamp']}, torch {meta['torch']}, triton {meta['triton']}, "
        f"{meta['device_name']}, {meta['cpu_threads']} threads. Naive joint tensor: {joint_gb:.2f} GB.",
        "",
        f"| provider | mode | median ms | min ms | max ms | peak MB | max abs diff vs {ref_name} |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(f"| {r['provider']} | {r['mode']} | {r['median_ms']:.2f} | {r['min_ms']:.2f} | {r['max_ms']:.2f} "
                     f"| {r['peak_mb']:.1f} | {r['max_abs_diff_vs_' + ref_name]:.2e} |")
    (RESULTS / f"mutual_information_{tag}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


def _triton_version() -> str | None:
    try:
        import triton

        return triton.__version__
    except Exception:
        return None


if __name__ == "__main__":
    main()
