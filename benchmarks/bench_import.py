"""Import cost of graphvision over torch, as a user pays it (fresh interpreter per sample).

Each sample runs a new ``python -c`` that imports torch, times ``import graphvision`` together with
``graphvision.nn``, ``graphvision.functional`` and ``graphvision.ops``, and reports whether
``torch._dynamo`` or Triton were loaded by it (they must load lazily, on first use). Statistic:
median (min-max) of ``--reps`` interpreters.

    python benchmarks/bench_import.py            # about 20 s

Results: ``benchmarks/results/import_cpu.json`` and ``.md``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import fmt, metadata, write_results  # noqa: E402

_PROBE = """
import json, sys, time
t0 = time.perf_counter(); import torch; t1 = time.perf_counter()
import graphvision, graphvision.nn, graphvision.functional, graphvision.ops
t2 = time.perf_counter()
print(json.dumps({"torch_s": t1 - t0, "graphvision_s": t2 - t1,
                  "dynamo_loaded": "torch._dynamo" in sys.modules, "triton_loaded": "triton" in sys.modules}))
"""


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--reps", type=int, default=7)
    p.add_argument("--out", type=Path, default=None)
    args = p.parse_args(argv)
    root = Path(__file__).resolve().parent.parent
    samples = []
    for _ in range(args.reps):
        out = subprocess.run([sys.executable, "-c", _PROBE], capture_output=True, text=True, cwd=root, check=True)
        samples.append(json.loads(out.stdout.strip().splitlines()[-1]))
    gv = [s["graphvision_s"] * 1e3 for s in samples]
    tt = [s["torch_s"] * 1e3 for s in samples]
    res = {
        "graphvision_over_torch_ms": {"median_ms": statistics.median(gv), "min_ms": min(gv), "max_ms": max(gv)},
        "torch_ms": {"median_ms": statistics.median(tt), "min_ms": min(tt), "max_ms": max(tt)},
        "dynamo_loaded": any(s["dynamo_loaded"] for s in samples),
        "triton_loaded": any(s["triton_loaded"] for s in samples),
    }
    meta = metadata(torch.device("cpu"))
    md = "\n".join([
        "# Import cost of graphvision over torch",
        "",
        "Script: `benchmarks/bench_import.py`. A fresh interpreter per sample imports torch, then "
        "`graphvision` with `nn`, `functional` and `ops`. Statistic: median (min-max) of "
        f"{args.reps} interpreters, milliseconds.",
        "",
        f"commit {meta['commit']}, {meta['time_utc']} UTC, {meta['device_name']}, torch {meta['torch']}, "
        f"load average at start {meta.get('load_average_1m_at_start')}",
        "",
        "| import | ms | torch._dynamo loaded | Triton loaded |",
        "|---|---|---|---|",
        f"| torch | {fmt(res['torch_ms']['median_ms'])} ({fmt(res['torch_ms']['min_ms'])}-{fmt(res['torch_ms']['max_ms'])}) | – | – |",
        f"| graphvision over torch | {fmt(res['graphvision_over_torch_ms']['median_ms'])} "
        f"({fmt(res['graphvision_over_torch_ms']['min_ms'])}-{fmt(res['graphvision_over_torch_ms']['max_ms'])}) | "
        f"{'yes' if res['dynamo_loaded'] else 'no'} | {'yes' if res['triton_loaded'] else 'no'} |",
        "",
    ])
    paths = write_results("import_cpu", {"meta": meta, "results": res, "samples": samples}, md, args.out)
    print(md)
    print("wrote " + " and ".join(map(str, paths)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
