"""Sweep the Triton kernels' tuning constants on a GPU and print the fastest settings.

The constants in ``graphvision/ops/_triton/k_*.py`` (``BLOCK_ROWS``, ``MAX_BLOCK_F``,
``NUM_WARPS``) were chosen without a GPU. This script times each kernel, called directly (no
dispatcher), on the issue's H200 configuration for every combination, checks each result
against the default setting's, and writes the table to ``results/triton_tuning_<gpu>.json/.md``.

    python benchmarks/tune_triton.py                 # B=64 56x56 8-neighbour grid, C=64, 4 heads
    python benchmarks/tune_triton.py --channels 256  # another width
    TUNE=1 bash benchmarks/run_gpu.sh                # as part of the GPU run

Each combination compiles once (~1 s); the default sweep is 4 kernels x 18 settings.
"""

from __future__ import annotations

import argparse
import itertools
import sys
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import metadata, sync, time_fn, write_results  # noqa: E402

HEADS = 4


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--size", type=int, default=56)
    p.add_argument("--channels", type=int, default=64)
    p.add_argument("--rows", type=int, nargs="*", default=[16, 32, 64])
    p.add_argument("--block-f", type=int, nargs="*", default=[32, 64, 128])
    p.add_argument("--warps", type=int, nargs="*", default=[2, 4])
    p.add_argument("--device", default="cuda", help="cuda; cpu only for a smoke run under TRITON_INTERPRET=1")
    p.add_argument("--out", default=None)
    args = p.parse_args(argv)
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        print("tune_triton.py needs a CUDA device (or --device cpu under TRITON_INTERPRET=1 for a smoke run)")
        return 2

    import graphvision
    from graphvision.functional import grid_graph
    from graphvision.ops._triton import k_attention, k_segment_softmax, k_spmm

    graphvision.config.set_checks(False)
    b, hw, c = args.batch, args.size, args.channels
    n = b * hw * hw
    ei = grid_graph(hw, hw, connectivity=8, batch_size=b, device=device)
    s = graphvision.GraphStructure(ei, num_nodes=n)
    e = ei.size(1)
    gen = torch.Generator(device=device).manual_seed(0)
    f = c // HEADS
    x = torch.randn(n, HEADS, f, device=device, generator=gen)
    a_s = torch.randn(n, HEADS, device=device, generator=gen)
    a_d = torch.randn(n, HEADS, device=device, generator=gen)
    w = torch.rand(e, device=device, generator=gen)
    scores = torch.randn(e, HEADS, device=device, generator=gen)
    go = torch.randn(n, HEADS, f, device=device, generator=gen)
    out0, attn0 = k_attention.attention_forward_csr(s.rowptr, s.col, x, a_s, a_d, None, 0.2)

    kernels: dict[str, tuple[Any, Any]] = {
        "spmm_csr": (k_spmm, lambda: k_spmm.spmm_csr(s.rowptr, s.col, w, x.view(n, 1, c))),
        "segment_softmax_csr": (k_segment_softmax, lambda: k_segment_softmax.segment_softmax_csr(s.rowptr, scores)),
        "attention_forward_csr": (
            k_attention,
            lambda: k_attention.attention_forward_csr(s.rowptr, s.col, x, a_s, a_d, None, 0.2)[0],
        ),
        "attention_backward_csr": (
            k_attention,
            lambda: k_attention.attention_backward_csr(
                s.rowptr, s.col, s.rowptr_t, s.col_t, s.perm_t, x, a_s, a_d, None, attn0, go, 0.2
            )[0],
        ),
    }
    rows: list[dict[str, Any]] = []
    lines = [f"# Triton tuning sweep: grid B={b} {hw}x{hw} C={c}, {HEADS} heads (N={n:,}, E={e:,})", ""]
    for name, (mod, fn) in kernels.items():
        defaults = {k: getattr(mod, k) for k in ("BLOCK_ROWS", "MAX_BLOCK_F", "NUM_WARPS") if hasattr(mod, k)}
        ref = fn()
        sync(device)
        results = []
        grid = itertools.product(args.rows, args.block_f if "MAX_BLOCK_F" in defaults else [None], args.warps)
        for br, bf, nw in grid:
            setting = {"BLOCK_ROWS": br, "NUM_WARPS": nw}
            if bf is not None:
                setting["MAX_BLOCK_F"] = bf
            for k, v in setting.items():
                setattr(mod, k, v)
            try:
                got = fn()
                ok = bool(torch.allclose(got, ref, rtol=1e-4, atol=1e-5))
                ms = time_fn(fn, device)["median_ms"] if ok else None
            except Exception as exc:  # a setting that does not compile / fit
                ok, ms = False, None
                setting["error"] = f"{type(exc).__name__}: {exc}"[:200]
            finally:
                for k, v in defaults.items():
                    setattr(mod, k, v)
            row = {"kernel": name, **setting, "agrees": ok, "median_ms": ms,
                   "default": all(setting.get(k) == v for k, v in defaults.items())}
            rows.append(row)
            results.append(row)
            print(f"{name:24s} {setting} -> {ms if ms is None else f'{ms:.4f} ms'}{'' if ok else ' (FAILED)'}")
        timed = [r for r in results if r["median_ms"] is not None]
        if timed:
            best = min(timed, key=lambda r: r["median_ms"])
            base = next((r for r in timed if r["default"]), None)
            lines.append(
                f"- **{name}**: best {({k: best[k] for k in defaults})} at {best['median_ms']:.4f} ms; "
                f"default {defaults} at " + (f"{base['median_ms']:.4f} ms" if base else "n/a")
            )
    payload = {"metadata": metadata(device), "rows": rows}
    tag = (torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu").replace(" ", "_").lower()
    jp, mp = write_results(f"triton_tuning_{tag}_c{c}", payload, "\n".join(lines) + "\n",
                           Path(args.out) if args.out else None)
    print(f"wrote {jp} and {mp}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
