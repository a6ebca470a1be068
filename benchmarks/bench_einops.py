"""einops vs hand-written permute/reshape in graphvision's reshaping code: the overhead.

graphvision uses ``einops.rearrange`` / ``reduce`` to turn feature maps into nodes and back and
to split attention heads. This script times each pattern against the equivalent
``permute``/``reshape`` chain (checked equal first) on the sizes the layers see, and prints the
median of ``--reps`` calls per variant and the difference, which is einops' per-call cost
(a cached recipe lookup: a few microseconds).

    python benchmarks/bench_einops.py            # CPU, 1 thread
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from einops import rearrange, reduce


def _median_us(fa, fb, reps: int) -> tuple[float, float]:
    """Medians of ``fa`` and ``fb`` timed alternately (so machine noise hits both alike)."""
    for _ in range(10):
        fa(), fb()
    ta, tb = [], []
    for _ in range(reps):
        for fn, ts in ((fa, ta), (fb, tb)):
            t = time.perf_counter()
            fn()
            ts.append(time.perf_counter() - t)
    return statistics.median(ta) * 1e6, statistics.median(tb) * 1e6


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--reps", type=int, default=200)
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    img = torch.randn(8, 64, 28, 28)
    tok = torch.randn(8, 784, 64)
    vals = torch.randn(8 * 14 * 14, 4)
    cases = [
        ("image -> pixel nodes (B*H*W, C)",
         lambda: rearrange(img, "b c h w -> (b h w) c").contiguous(),
         lambda: img.permute(0, 2, 3, 1).reshape(-1, 64)),
        # graphvision.functional.patch_graph keeps torch's mean and rearranges its result: einops'
        # reduce of the same pattern is 1.7x slower here (it reduces over permuted axes).
        ("image -> 2x2 patch means, einops reduce",
         lambda: reduce(img, "b c (hp p1) (wp p2) -> (b hp wp) c", "mean", p1=2, p2=2),
         lambda: img.reshape(8, 64, 14, 2, 14, 2).mean(dim=(3, 5)).permute(0, 2, 3, 1).reshape(-1, 64)),
        ("image -> 2x2 patch means, as graphvision",
         lambda: rearrange(img.reshape(8, 64, 14, 2, 14, 2).mean(dim=(3, 5)), "b c hp wp -> (b hp wp) c"),
         lambda: img.reshape(8, 64, 14, 2, 14, 2).mean(dim=(3, 5)).permute(0, 2, 3, 1).reshape(-1, 64)),
        ("patch nodes -> heatmap (B, K, Hp, Wp)",
         lambda: rearrange(vals, "(b hp wp) k -> b k hp wp", b=8, hp=14, wp=14).contiguous(),
         lambda: vals.reshape(8, 14, 14, 4).permute(0, 3, 1, 2).contiguous()),
        ("tokens -> heads (B, K, d, L)",
         lambda: rearrange(tok, "b l (k d) -> b k d l", k=4).contiguous(),
         lambda: tok.reshape(8, 784, 4, 16).permute(0, 2, 3, 1).contiguous()),
    ]
    print(f"torch {torch.__version__}, {args.threads} thread(s), median of {args.reps} calls (microseconds)")
    print(f"| {'pattern':40s} | einops | torch | einops - torch |")
    print(f"|{'-' * 42}|-------:|------:|---------------:|")
    for name, ein, ref in cases:
        a, b = ein(), ref()
        assert a.shape == b.shape and torch.allclose(a, b), name
        te, tt = _median_us(ein, ref, args.reps)
        print(f"| {name:40s} | {te:6.1f} | {tt:5.1f} | {te - tt:+14.1f} |")


if __name__ == "__main__":
    main()
