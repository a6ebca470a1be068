"""Profile RMCG training steps in protocol C's shape: where does an epoch's time go?

Usage::

    python benchmarks/profile_rmcg_epoch.py                  # 1 thread, 40 steps of batch 32, 50 px, width 32
    python benchmarks/profile_rmcg_epoch.py --steps 5 --model resnet18-gcn

Each training step (forward, loss, backward, AdamW) of ``examples/rmcg/models.py``'s model is split
into stages by wrapping the submodules: backbone (ResNet18 up to ``layer2``), multi-channel attention,
MI adjacency (graph construction included: it returns the edges), input linear layer, each graph
convolution (with its LayerNorm), pooling, classifier + loss, backward, optimizer step. Forward
stages are timed with ``time.perf_counter`` around each call (exact on the CPU, where ops run
synchronously; on CUDA the script synchronizes around each stage). The backward is split by
gradient hooks on each stage's output: the time between the gradient reaching a stage's output and
reaching the previous stage's output is that stage's backward. Host syncs are the
``aten::_local_scalar_dense`` / ``aten::item`` / ``aten::nonzero`` calls inside each forward stage,
counted with ``torch.profiler`` over a few steps. Random images (the cost does not depend on the
pixel values, except the MI top-k graph, whose size is fixed per image).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections import defaultdict
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "examples"))

from rmcg.models import create_model, regularized_loss  # noqa: E402

SYNC_OPS = ("aten::_local_scalar_dense", "aten::item", "aten::nonzero", "aten::is_nonzero")


def stages_of(model: torch.nn.Module) -> list[tuple[str, object, str]]:
    """``(label, owner, attribute)`` of each stage's callable, in forward order."""
    out = [("backbone", model.backbone, "features")]
    for name in ("mca", "mi", "lin_in"):
        if getattr(model, name, None) is not None:
            out.append(({"mca": "multi-channel attention", "mi": "MI adjacency + graph",
                         "lin_in": "input linear"}[name], model, name))
    for i in range(len(getattr(model, "convs", []))):
        out.append((f"graph conv {i + 1}", model.convs, str(i)))
        out.append((f"graph conv {i + 1}", model.norms, str(i)))
    if getattr(model, "pool", None) is not None:
        out.append(("pooling", model, "pool"))
    out.append(("classifier + loss", model, "classifier"))
    return out


class Timer:
    """Per-stage forward times, and the time each stage's output receives its gradient."""

    def __init__(self, model: torch.nn.Module, device: torch.device) -> None:
        self.fwd: dict[str, float] = defaultdict(float)
        self.grad_at: list[tuple[float, str]] = []
        self.order: list[str] = []
        self.device = device
        for label, owner, attr in stages_of(model):
            if label not in self.order:
                self.order.append(label)
            if isinstance(owner, torch.nn.ModuleList):
                mod = owner[int(attr)]
                mod.forward = self._wrap(label, mod.forward)
            elif attr == "features":
                owner.features = self._wrap(label, owner.features)
            else:
                mod = getattr(owner, attr)
                mod.forward = self._wrap(label, mod.forward)

    def _sync(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    def _wrap(self, label: str, fn):
        def run(*args, **kwargs):
            self._sync()
            t0 = time.perf_counter()
            with torch.profiler.record_function(f"stage::{label}"):
                out = fn(*args, **kwargs)
            self._sync()
            self.fwd[label] += time.perf_counter() - t0
            first = out[0] if isinstance(out, tuple) else out
            if isinstance(first, torch.Tensor) and first.requires_grad:
                first.register_hook(lambda g, label=label: self.grad_at.append((time.perf_counter(), label)) or None)
            return out

        return run


def main(argv: list[str] | None = None) -> str:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="rmcg")
    ap.add_argument("--steps", type=int, default=40)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--image-size", type=int, default=50)
    ap.add_argument("--width", type=int, default=32)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--profile-steps", type=int, default=5, help="steps under torch.profiler (host syncs)")
    ap.add_argument("--device", default="cpu")
    a = ap.parse_args(argv)
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    device = torch.device(a.device)
    model = create_model(a.model, 2, width=a.width).to(device).train()
    opt = torch.optim.AdamW(model.parameters(), lr=2e-3)
    timer = Timer(model, device)
    g = torch.Generator().manual_seed(0)
    images = torch.randn(8, a.batch_size, 3, a.image_size, a.image_size, generator=g).to(device)
    labels = torch.randint(0, 2, (8, a.batch_size), generator=g).to(device)

    per_step: dict[str, list[float]] = defaultdict(list)

    def step(i: int) -> None:
        timer.fwd.clear()
        timer.grad_at.clear()
        t0 = time.perf_counter()
        logits = model(images[i % 8])
        t_fwd = time.perf_counter()
        loss = regularized_loss(logits, labels[i % 8], model.last_layer, 1e-3)
        timer._sync()
        t_loss = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        timer._sync()
        t_bwd = time.perf_counter()
        opt.step()
        timer._sync()
        t_end = time.perf_counter()
        for k, v in timer.fwd.items():
            per_step[f"{k} (fwd)"].append(v)
        per_step["classifier + loss (fwd)"][-1] += t_loss - t_fwd
        # backward: stage k's gradient arrives at its output; the next arrival (an earlier stage) ends it
        marks = sorted(timer.grad_at)
        seen: dict[str, float] = {}
        prev_t = t_loss
        prev_label = None
        for t, label in marks:
            if prev_label is not None:
                seen[prev_label] = seen.get(prev_label, 0.0) + (t - prev_t)
            else:
                seen["classifier + loss"] = seen.get("classifier + loss", 0.0) + (t - prev_t)
            prev_t, prev_label = t, label
        if prev_label is not None:
            seen[prev_label] = seen.get(prev_label, 0.0) + (t_bwd - prev_t)
        for label in timer.order:
            per_step[f"{label} (bwd)"].append(seen.get(label, 0.0))
        per_step["optimizer step"].append(t_end - t_bwd)
        per_step["whole step"].append(t_end - t0)
        staged = sum(timer.fwd.values()) + (t_loss - t_fwd) + (t_bwd - t_loss) + (t_end - t_bwd)
        per_step["unattributed"].append(t_end - t0 - staged)

    for i in range(a.warmup):
        step(i)
    per_step.clear()
    for i in range(a.steps):
        step(i)

    # host syncs per stage, from a few profiled steps
    syncs: dict[str, int] = defaultdict(int)
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
        for i in range(a.profile_steps):
            step(i)
    for evt in prof.events():
        if evt.name in SYNC_OPS:
            parent, stage = evt.cpu_parent, "outside the stages (loss, backward, optimizer)"
            while parent is not None:
                if parent.name.startswith("stage::"):
                    stage = parent.name[len("stage::"):]
                    break
                parent = parent.cpu_parent
            syncs[f"{stage}: {evt.name}"] += 1

    med = {k: statistics.median(v) for k, v in per_step.items()}
    total = med["whole step"]
    rows = []
    for label in timer.order:
        f, b = med.get(f"{label} (fwd)", 0.0), med.get(f"{label} (bwd)", 0.0)
        rows.append((label, f, b))
    rows.append(("optimizer step", med["optimizer step"], 0.0))
    lines = [
        f"{a.model}, batch {a.batch_size}, {a.image_size} px, width {a.width}, {a.threads} thread(s), {device}, "
        f"torch {torch.__version__}; median of {a.steps} steps: {1000 * total:.1f} ms per step = "
        f"{a.batch_size / total:.0f} images/s (an epoch of 4,000 images: {4000 / a.batch_size * total:.0f} s).",
        "",
        "| stage | forward ms | backward ms | share of the step |",
        "|---|---:|---:|---:|",
    ]
    for label, f, b in rows:
        lines.append(f"| {label} | {1000 * f:.2f} | {1000 * b:.2f} | {100 * (f + b) / total:.1f} % |")
    un = med["unattributed"]
    lines.append(f"| between the stages (reshapes, dropout, ReLU, Python) | {1000 * un:.2f} | | {100 * un / total:.1f} % |")
    lines.append(f"| **whole step** (median; the rows are medians too, so they need not add up) | | | "
                 f"{1000 * total:.1f} ms |")
    lines += ["", f"Host syncs per step ({a.profile_steps} profiled steps): "
              + ("; ".join(f"{k} x{v / a.profile_steps:g}" for k, v in sorted(syncs.items())) or "none") + "."]
    text = "\n".join(lines)
    print(text)
    return text


if __name__ == "__main__":
    main()
