"""Benchmark helpers: timing, peak memory, compulsory-byte bandwidth model, metadata, writers.

Method (see benchmarks/README.md):

- timing: on CUDA ``triton.testing.do_bench`` (warm-up, L2 flush, CUDA events; quantiles
  0.5 / 0.2 / 0.8); on the CPU a warm-up then the median and 20/80 % quantiles of ``reps``
  timed calls (``time.perf_counter``), plus their minimum, or ``torch.utils.benchmark.Timer.blocked_autorange``
  with ``--autorange``;
- peak memory above what was live before the call: CUDA ``max_memory_allocated``; CPU the
  peak of the torch.profiler allocation timeline (every CPU allocation and free of the call,
  replayed in order), the method of ``../shared/PERF.md``;
- bandwidth: compulsory DRAM bytes of the op (PERF.md section 2) divided by the median time,
  also as a % of the measured copy bandwidth of the machine.
"""

from __future__ import annotations

import datetime
import json
import os
import platform
import statistics
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

RESULTS = Path(__file__).resolve().parent / "results"


# ----------------------------------------------------------------------------- metadata
def metadata(device: torch.device) -> dict[str, Any]:
    """Commit, device, library versions, threads and time of the run."""
    root = Path(__file__).resolve().parents[1]
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True, text=True, timeout=10
        ).stdout.strip()
        dirty = bool(
            subprocess.run(["git", "status", "--porcelain", "--", "graphvision", "benchmarks"], cwd=root,
                           capture_output=True, text=True, timeout=10).stdout.strip()
        )
    except Exception:  # pragma: no cover - no git on the machine
        commit, dirty = "unknown", False
    meta: dict[str, Any] = {
        "commit": commit + ("+dirty" if dirty else ""),
        "time_utc": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M:%S"),
        "device": str(device),
        "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else _cpu_name(),
        "cpu_count": os.cpu_count(),
        "load_average_1m_at_start": _loadavg(),
        "torch_threads": torch.get_num_threads(),
        "python": platform.python_version(),
        "torch": torch.__version__,
    }
    for name in ("triton", "torch_geometric", "torch_scatter", "torch_sparse"):
        try:
            meta[name] = __import__(name).__version__
        except Exception:
            meta[name] = None
    try:
        import graphvision

        meta["graphvision"] = graphvision.__version__
    except Exception:  # pragma: no cover
        meta["graphvision"] = None
    return meta


def _loadavg() -> float | None:
    """1-minute load average (how busy the machine was: other jobs make CPU timings noisy)."""
    try:
        return round(os.getloadavg()[0], 2)
    except OSError:  # pragma: no cover
        return None


def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


# ----------------------------------------------------------------------------- timing
def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_fn(fn: Callable[[], Any], device: torch.device, reps: int = 7, warmup: int = 2,
            autorange: bool = False) -> dict[str, float]:
    """Median and 20/80 % quantiles of ``fn``'s run time in milliseconds (device synced)."""
    if device.type == "cuda":
        import triton.testing

        med, lo, hi = triton.testing.do_bench(fn, warmup=25, rep=100, quantiles=[0.5, 0.2, 0.8])
        return {"median_ms": float(med), "p20_ms": float(lo), "p80_ms": float(hi), "min_ms": float(lo)}
    if autorange:
        from torch.utils.benchmark import Timer

        m = Timer(stmt="fn()", globals={"fn": fn}).blocked_autorange(min_run_time=0.5)
        times = [t * 1e3 for t in m.times]
    else:
        for _ in range(warmup):
            fn()
        times = []
        for _ in range(reps):
            t0 = time.perf_counter()
            fn()
            times.append((time.perf_counter() - t0) * 1e3)
    q = statistics.quantiles(times, n=5, method="inclusive") if len(times) >= 2 else [times[0]] * 4
    return {"median_ms": statistics.median(times), "p20_ms": q[0], "p80_ms": q[3], "min_ms": min(times)}


def time_min_max(fn: Callable[[], Any], device: torch.device, reps: int, warmup: int = 2) -> dict[str, float]:
    """Median, min and max of ``reps`` device-synced calls of ``fn`` in ms, after ``warmup`` calls."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(reps):
        sync(device)
        t0 = time.perf_counter()
        fn()
        sync(device)
        times.append((time.perf_counter() - t0) * 1e3)
    return {"median_ms": statistics.median(times), "min_ms": min(times), "max_ms": max(times)}


# ----------------------------------------------------------------------------- memory
def peak_memory_mb(fn: Callable[[], Any], device: torch.device) -> float:
    """Peak bytes allocated by one call of ``fn`` above what was live before it, in MB (1e6 B)."""
    if device.type == "cuda":
        sync(device)
        torch.cuda.reset_peak_memory_stats(device)
        before = torch.cuda.memory_allocated(device)
        out = fn()
        sync(device)
        peak = torch.cuda.max_memory_allocated(device) - before
        del out
        return peak / 1e6
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        out = fn()
    del out
    events = sorted(
        (e.start_ns(), e.nbytes()) for e in prof.profiler.kineto_results.events() if e.name() == "[memory]"
    )
    cur = peak = 0
    for _, nbytes in events:
        cur += nbytes
        peak = max(peak, cur)
    return peak / 1e6


# ----------------------------------------------------------------------------- bandwidth
def copy_bandwidth_gbs(device: torch.device, mbytes: int = 256) -> float:
    """Measured copy bandwidth (read + write counted) in GB/s with a ``mbytes`` MB buffer."""
    n = mbytes * 1_000_000 // 4
    a = torch.empty(n, device=device)
    b = torch.empty_like(a)
    t = time_fn(lambda: b.copy_(a), device, reps=9)
    return 2 * a.numel() * 4 / (t["median_ms"] * 1e-3) / 1e9


def compulsory_bytes(op: str, *, n: int, e: int, c: int, heads: int = 1, b: int = 1, s: int = 4, i: int = 8,
                     weighted: bool = True) -> int:
    """Fused-ideal forward DRAM bytes of ``op`` (PERF.md section 2).

    ``n`` nodes, ``e`` edges, ``c`` channels (= heads x features), ``s`` bytes per float,
    ``i`` bytes per index, ``b`` graphs (pooling).
    """
    if op == "scatter":  # read src (E x C) + write out (N x C) + index
        return s * e * c + s * n * c + i * e
    if op == "spmm":  # read X + write Y + (col, weight) per edge + rowptr
        return 2 * s * n * c + (i + (s if weighted else 0)) * e + i * (n + 1)
    if op == "segment_softmax":  # read e + write alpha + rowptr
        return 2 * s * e * heads + i * (n + 1)
    if op == "attention_aggregate":  # read H + write out + node logits + saved row stats + col
        return 2 * s * n * c + 2 * 4 * n * heads + 2 * 4 * n * heads + i * e
    if op == "attention_pool":  # read X + gate + write (B, K, C)
        return s * n * c + s * n * heads + s * b * heads * c
    raise ValueError(f"unknown op {op!r}")


# ----------------------------------------------------------------------------- writers
def write_results(name: str, payload: dict[str, Any], markdown: str, out_dir: Path | None = None) -> tuple[Path, Path]:
    """Write ``<name>.json`` and ``<name>.md`` to ``out_dir`` (default benchmarks/results)."""
    out_dir = Path(out_dir) if out_dir is not None else RESULTS
    out_dir.mkdir(parents=True, exist_ok=True)
    jp, mp = out_dir / f"{name}.json", out_dir / f"{name}.md"
    jp.write_text(json.dumps(payload, indent=1, default=str) + "\n")
    mp.write_text(markdown)
    return jp, mp


def fmt(v: float | None, digits: int = 2) -> str:
    if v is None:
        return "–"
    if v >= 100:
        return f"{v:.0f}"
    return f"{v:.{digits}f}"


def cell(t: dict[str, float]) -> str:
    """``median (min-max)`` of a :func:`time_min_max` result, in milliseconds."""
    return f"{fmt(t['median_ms'])} ({fmt(t['min_ms'])}-{fmt(t['max_ms'])})"


def pyg_comparison_table(meta: dict[str, Any], rows: list[dict], *, bold_speedup: bool = False) -> list[str]:
    """The run's metadata line and the markdown table of layer-vs-PyG rows.

    Each row has ``config``, ``layer``, ``provider``, ``fwd`` / ``full`` timings, and optionally
    ``speedup_vs_pyg``, ``memory_ratio_vs_pyg``, ``peak_fwd_mb`` / ``peak_full_mb`` and
    ``max_rel_err``.
    """
    lines = [
        f"commit {meta['commit']}, {meta['time_utc']} UTC, "
        f"{meta['device_name']} ({meta['device']}), torch {meta['torch']}, PyG {meta.get('torch_geometric')}, "
        f"threads {meta['torch_threads']}, load average at start {meta.get('load_average_1m_at_start')}",
        "",
        "| config | layer | provider | fwd ms | fwd+bwd ms | speed-up fwd / fwd+bwd | peak MB fwd / fwd+bwd | "
        "memory ratio fwd / fwd+bwd | max rel err |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        sp, mr, err = r.get("speedup_vs_pyg"), r.get("memory_ratio_vs_pyg"), r.get("max_rel_err")
        sp_s = "–" if not sp else f"{sp['fwd']:.2f}x / {sp['full']:.2f}x"
        if sp and bold_speedup:
            sp_s = f"**{sp_s}**"
        mr_s = "–" if not mr else f"{mr['fwd']:.1f}x / {mr['full']:.1f}x"
        err_s = "–" if err is None else f"{err:.1e}"
        lines.append(
            f"| {r['config']} | {r['layer']} | {r['provider']} | {cell(r['fwd'])} | {cell(r['full'])} | "
            f"{sp_s} | {fmt(r.get('peak_fwd_mb'))} / {fmt(r.get('peak_full_mb'))} | {mr_s} | {err_s} |"
        )
    return lines
