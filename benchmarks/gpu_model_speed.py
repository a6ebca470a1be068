"""Training throughput (images/s) of the RMCG example models on one device: rmcg vs resnet18.

    python benchmarks/gpu_model_speed.py [--device cuda] [--batch-size 64] [--image-size 50]

Times forward + backward + SGD step on random images after warm-up (median of timed steps).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from examples.rmcg.models import create_model  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--image-size", type=int, default=50)
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--models", nargs="+", default=["resnet18", "rmcg"])
    p.add_argument("--out", default=None)
    a = p.parse_args()
    dev = torch.device(a.device)
    res = {}
    for name in a.models:
        torch.manual_seed(0)
        model = create_model(name, num_classes=2).to(dev)
        opt = torch.optim.SGD(model.parameters(), lr=1e-3)
        x = torch.randn(a.batch_size, 3, a.image_size, a.image_size, device=dev)
        y = torch.randint(0, 2, (a.batch_size,), device=dev)
        times = []
        for i in range(a.steps + 3):
            if dev.type == "cuda":
                torch.cuda.synchronize()
            t = time.perf_counter()
            out = model(x)
            logits = out[0] if isinstance(out, (tuple, list)) else out
            if isinstance(logits, dict):
                logits = logits["logits"]
            loss = torch.nn.functional.cross_entropy(logits, y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            if dev.type == "cuda":
                torch.cuda.synchronize()
            if i >= 3:
                times.append(time.perf_counter() - t)
        med = statistics.median(times)
        res[name] = {"images_per_sec": a.batch_size / med, "step_ms": med * 1e3}
        print(f"{name}: {a.batch_size / med:.1f} img/s ({med * 1e3:.1f} ms/step, batch {a.batch_size}, {a.image_size}px, {dev})")
    res["meta"] = {"device": str(dev), "torch": torch.__version__, "batch_size": a.batch_size, "image_size": a.image_size,
                   "gpu": torch.cuda.get_device_name(0) if dev.type == "cuda" else None}
    if a.out:
        Path(a.out).write_text(json.dumps(res, indent=2))


if __name__ == "__main__":
    main()
