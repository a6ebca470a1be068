"""A small Pyramid-ViG-style classifier (2 Grapher+FFN blocks) trained on histology patches.

Built from graphvision's public layers only: ``graphvision.nn.Grapher`` (dynamic dilated kNN over
the patch nodes, max-relative graph conv, relative position term) and ``graphvision.nn.FFN``.

    python examples/vig/train.py --data ../shared/data/breast_idc_patches --epochs 2
    python examples/vig/train.py --smoke        # a few batches, seconds

The data folder follows the RMCG example's conventions: a ``MANIFEST.csv`` with
``path,label,split`` columns (train/val/test), or class-per-folder (then a seeded 70/15/15 split).
Prints the loss and validation accuracy per epoch and the test accuracy of the last epoch; writes
``OUT/metrics.json``.
"""

from __future__ import annotations

import argparse
import csv
import json
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import Tensor, nn

import graphvision.nn as gnn

MEAN = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
STD = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)


def read_split(root: Path, seed: int) -> dict[str, list[tuple[Path, int]]]:
    manifest = root / "MANIFEST.csv"
    out: dict[str, list[tuple[Path, int]]] = {"train": [], "val": [], "test": []}
    if manifest.exists():
        with open(manifest, newline="") as f:
            for row in csv.DictReader(f):
                out[row["split"]].append((root / row["path"], int(row["label"])))
        return out
    classes = sorted(p for p in root.iterdir() if p.is_dir())
    items = [(p, i) for i, c in enumerate(classes) for p in sorted(c.iterdir()) if p.suffix.lower() in (".png", ".jpg")]
    perm = torch.randperm(len(items), generator=torch.Generator().manual_seed(seed)).tolist()
    n_val = n_test = int(0.15 * len(items))
    out["test"] = [items[i] for i in perm[:n_test]]
    out["val"] = [items[i] for i in perm[n_test : n_test + n_val]]
    out["train"] = [items[i] for i in perm[n_test + n_val :]]
    return out


def load(items: list[tuple[Path, int]], size: int, limit: int | None, seed: int) -> tuple[Tensor, Tensor]:
    if limit:  # a seeded subset (the manifest is sorted by class)
        perm = torch.randperm(len(items), generator=torch.Generator().manual_seed(seed))[:limit].tolist()
        items = [items[i] for i in sorted(perm)]
    imgs = [np.asarray(Image.open(p).convert("RGB").resize((size, size), Image.BILINEAR)) for p, _ in items]
    x = torch.from_numpy(np.stack(imgs)).permute(0, 3, 1, 2).float().div_(255)
    return (x - MEAN) / STD, torch.tensor([y for _, y in items])


class PyramidViG(nn.Module):
    """Conv stem (/4) -> [Grapher + FFN] -> conv downsample (/2) -> [Grapher + FFN] -> pool -> linear."""

    def __init__(self, num_classes: int, channels: tuple[int, int] = (48, 96), k: int = 9, drop_path: float = 0.0):
        super().__init__()
        c1, c2 = channels
        self.stem = nn.Sequential(
            nn.Conv2d(3, c1 // 2, 3, stride=2, padding=1), nn.BatchNorm2d(c1 // 2), nn.GELU(),
            nn.Conv2d(c1 // 2, c1, 3, stride=2, padding=1), nn.BatchNorm2d(c1), nn.GELU(),
            nn.Conv2d(c1, c1, 3, stride=1, padding=1), nn.BatchNorm2d(c1),
        )
        self.stage1 = nn.Sequential(
            gnn.Grapher(c1, k=k, dilation=1, relative_pos=True, drop_path=drop_path), gnn.FFN(c1, 4 * c1)
        )
        self.down = nn.Sequential(nn.Conv2d(c1, c2, 3, stride=2, padding=1), nn.BatchNorm2d(c2))
        self.stage2 = nn.Sequential(
            gnn.Grapher(c2, k=k, dilation=1, relative_pos=True, drop_path=drop_path), gnn.FFN(c2, 4 * c2)
        )
        self.head = nn.Linear(c2, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        x = self.stage2(self.down(self.stage1(self.stem(x))))
        return self.head(x.mean(dim=(2, 3)))


def augment(x: Tensor, gen: torch.Generator) -> Tensor:
    """Random 0/90/180/270 degree rotations and flips (histology has no orientation)."""
    r = int(torch.randint(4, (1,), generator=gen))
    x = torch.rot90(x, r, dims=(2, 3))
    return x.flip(3) if bool(torch.rand((), generator=gen) < 0.5) else x


@torch.no_grad()
def accuracy(model: nn.Module, x: Tensor, y: Tensor, bs: int, device: torch.device) -> float:
    model.eval()
    correct = 0
    for i in range(0, len(x), bs):
        correct += int((model(x[i : i + bs].to(device)).argmax(1).cpu() == y[i : i + bs]).sum())
    return 100.0 * correct / max(len(x), 1)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default="../shared/data/breast_idc_patches", help="MANIFEST.csv or class folders")
    p.add_argument("--image-size", type=int, default=48)
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--k", type=int, default=9, help="neighbours per node of the Grapher kNN")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--limit", type=int, default=None, help="at most this many images per split")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--device", default=None, help="cpu, cuda, ... (default: cuda when available)")
    p.add_argument("--out", default="runs/vig")
    p.add_argument("--smoke", action="store_true", help="tiny run: 64 images per split, 1 epoch")
    args = p.parse_args()
    if args.smoke:
        args.limit, args.epochs = 64, 1
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    root = Path(args.data)
    if not root.exists():
        raise SystemExit(f"--data {root} not found (expected MANIFEST.csv or one folder per class)")
    splits = read_split(root, args.seed)
    data = {s: load(items, args.image_size, args.limit, args.seed) for s, items in splits.items()}
    num_classes = int(max(int(y.max()) for _, y in data.values() if len(y)) + 1)
    model = PyramidViG(num_classes, k=args.k).to(device)
    print(f"{sum(p.numel() for p in model.parameters()) / 1e6:.2f} M parameters; "
          f"train/val/test = {len(data['train'][1])}/{len(data['val'][1])}/{len(data['test'][1])}; device {device}")
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=0.05)
    xtr, ytr = data["train"]
    steps = args.epochs * ((len(xtr) + args.batch_size - 1) // args.batch_size)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=args.lr, total_steps=max(steps, 1))
    gen = torch.Generator().manual_seed(args.seed)
    history = []
    for epoch in range(args.epochs):
        model.train()
        t0, total = time.perf_counter(), 0.0
        perm = torch.randperm(len(xtr), generator=gen)
        for i in range(0, len(xtr), args.batch_size):
            idx = perm[i : i + args.batch_size]
            x, y = augment(xtr[idx], gen).to(device), ytr[idx].to(device)
            loss = F.cross_entropy(model(x), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            total += float(loss.detach()) * len(idx)
        val = accuracy(model, *data["val"], args.batch_size, device)
        seconds = time.perf_counter() - t0
        history.append({"epoch": epoch + 1, "loss": total / len(xtr), "val_acc": val, "seconds": seconds})
        print(f"epoch {epoch + 1}: loss {total / len(xtr):.4f}  val acc {val:.2f}%  ({time.perf_counter() - t0:.0f} s)")
    test = accuracy(model, *data["test"], args.batch_size, device)
    print(f"test acc {test:.2f}%")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "metrics.json").write_text(json.dumps({"args": vars(args), "history": history, "test_acc": test}, indent=1))


if __name__ == "__main__":
    main()
