"""Train and evaluate RMCG or one of the paper's baselines on an image folder, a MANIFEST, or digits.

Examples::

    # the main job: no download, real data (scikit-learn's handwritten digits), about two minutes on 2 CPU cores
    python examples/rmcg/train.py

    # breast IDC patches with the MANIFEST's patient-level split
    python examples/rmcg/train.py --data ../shared/data/breast_idc_patches --model rmcg \
        --epochs 10 --image-size 64 --batch-size 32 --out runs/idc_rmcg

    # Databiox at 20X, held-out test folder, resume after an interruption, 2 processes
    torchrun --nproc_per_node 2 examples/rmcg/train.py --data Databiox --magnification 20X \
        --test-data Databiox_test --out runs/dbx --resume

Writes in ``--out``: ``checkpoint.pt`` (every epoch, atomically), ``best.pt``, ``metrics.json``
(accuracy, macro precision / recall / F1, per-class scores, confusion matrix, for val and test,
per-epoch history, training images/s), ``confusion_matrix.png`` and, for graph models,
``heatmaps.png`` (pooling scores and node attention over a few test images).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import random
import sys
import time
from pathlib import Path
from typing import Any

_HERE = Path(__file__).resolve().parent
if str(_HERE.parent) not in sys.path:
    sys.path.insert(0, str(_HERE.parent))

import torch  # noqa: E402
import torch.distributed as dist  # noqa: E402
from torch import Tensor, nn  # noqa: E402

from rmcg.data import ImageDataset, augment_batch, build_datasets, collate_skip_none  # noqa: E402
from rmcg.metrics import classification_metrics, format_metrics  # noqa: E402
from rmcg.models import FEATURE_LEVELS, GRAPH_MODELS, MODELS, create_model, regularized_loss  # noqa: E402

log = logging.getLogger("rmcg")
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


# ============================================================================================ CLI
def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        description="Train RMCG (graphvision) or a baseline; with no --data, trains on scikit-learn's digits.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    d = p.add_argument_group("data")
    d.add_argument(
        "--data", default=None, help="dataset root (MANIFEST.csv, Databiox, BreakHis, class folders); default: digits"
    )
    d.add_argument("--test-data", default=None, help="separate test root (then --data is split into train/val)")
    d.add_argument("--magnification", default=None, help="Databiox / BreakHis magnification, e.g. 4X, 10X, 20X, 40X")
    d.add_argument("--breakhis-task", default="binary", choices=("binary", "subtype"))
    d.add_argument(
        "--image-size", type=int, default=None, help="resize images to SxS (default: 32 for digits, native otherwise)"
    )
    d.add_argument("--val-fraction", type=float, default=0.15)
    d.add_argument("--test-fraction", type=float, default=0.15)
    d.add_argument("--limit", type=int, default=None, help="at most this many images per split (smoke runs)")
    d.add_argument("--train-limit", type=int, default=None, help="at most this many training images (seeded subset)")
    d.add_argument("--no-cache", action="store_true", help="decode images every epoch instead of caching them")
    d.add_argument("--workers", type=int, default=0, help="DataLoader workers (with --no-cache)")
    d.add_argument("--no-augment", action="store_true", help="disable rotations/translations")
    d.add_argument(
        "--rotate",
        default=None,
        action=argparse.BooleanOptionalAction,
        help="random 90/180/270 degree rotations (default: on, off for the digits, where 6 and 9 differ)",
    )
    d.add_argument("--max-shift", type=float, default=0.1, help="largest translation, fraction of the image size")
    d.add_argument("--flip", action="store_true", help="add random horizontal/vertical flips")

    m = p.add_argument_group("model")
    m.add_argument("--model", default="rmcg", choices=MODELS)
    m.add_argument("--backbone", default="resnet18", choices=("resnet18", "alexnet"), help="features of gcnii / ecc")
    m.add_argument(
        "--feature-level", default="layer2", choices=FEATURE_LEVELS, help="ResNet18 stage that becomes the pixel graph"
    )
    m.add_argument(
        "--width",
        type=int,
        default=None,
        help="ResNet18 stem width: 64 = standard ResNet18 (default), 32 = a quarter of the compute "
        "(default for the built-in digits)",
    )
    m.add_argument(
        "--pretrained", action="store_true", help="ImageNet weights from torchvision, when installed and available"
    )
    m.add_argument("--hidden", type=int, default=64)
    m.add_argument("--num-layers", type=int, default=2, help="graph convolution layers")
    m.add_argument("--heads", type=int, default=4)
    m.add_argument("--dropout", type=float, default=0.1)
    m.add_argument("--mi-bins", type=int, default=8)
    m.add_argument("--mi-grad", action="store_true", help="back-propagate through the MI adjacency")
    m.add_argument("--mi-topk", type=int, default=8)
    m.add_argument(
        "--graph",
        default=None,
        choices=("grid", "mi"),
        help="override the pixel graph (default: mi for rmcg, grid otherwise)",
    )

    t = p.add_argument_group("training")
    t.add_argument("--epochs", type=int, default=6)
    t.add_argument("--batch-size", type=int, default=32)
    t.add_argument("--lr", type=float, default=2e-3)
    t.add_argument("--weight-decay", type=float, default=0.0, help="AdamW decay on all weights (0: off)")
    t.add_argument("--lambda-l2", type=float, default=1e-3, help="lambda of the lambda/2*||W_last||^2 loss term")
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--device", default=None, help="cpu, cuda, cuda:1 ... (default: cuda when available)")
    t.add_argument("--out", default="runs/rmcg", help="run directory")
    t.add_argument("--resume", action="store_true", help="continue from OUT/checkpoint.pt if it exists")
    t.add_argument(
        "--stop-after", type=int, default=None, help="stop after this many epochs (simulates an interruption)"
    )
    t.add_argument("--eval-every", type=int, default=1, help="validate every N epochs (0: only at the end)")
    t.add_argument("--select", default="best", choices=("best", "last"), help="weights evaluated at the end")
    t.add_argument("--no-progress", action="store_true", help="no progress bar")
    t.add_argument("--heatmaps", type=int, default=4, help="test images with attention overlays (0: none)")
    t.add_argument(
        "--threads",
        type=int,
        default=None,
        help="torch CPU threads per process (default: 1 for the digits demo, torch's default otherwise)",
    )
    return p


# ============================================================================================ helpers
class Dist:
    """Rank, world size and device of this process (torchrun sets RANK / WORLD_SIZE / LOCAL_RANK)."""

    def __init__(self, device: str | None) -> None:
        self.world = int(os.environ.get("WORLD_SIZE", "1"))
        self.rank = int(os.environ.get("RANK", "0"))
        self.local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        if device is None:
            device = f"cuda:{self.local_rank}" if torch.cuda.is_available() else "cpu"
        elif device == "cuda" and self.world > 1:
            device = f"cuda:{self.local_rank}"
        self.device = torch.device(device)
        if self.device.type == "cuda":
            if not torch.cuda.is_available():
                raise ValueError(f"Expected --device cpu on this machine (got {device!r}; CUDA is not available)")
            torch.cuda.set_device(self.device)
        self.enabled = self.world > 1
        if self.enabled and not dist.is_initialized():
            dist.init_process_group("nccl" if self.device.type == "cuda" else "gloo")

    @property
    def main(self) -> bool:
        return self.rank == 0

    def gather(self, obj: Any) -> list[Any]:
        if not self.enabled:
            return [obj]
        out: list[Any] = [None] * self.world
        dist.all_gather_object(out, obj)
        return out

    def barrier(self) -> None:
        if self.enabled:
            dist.barrier()

    def close(self) -> None:
        if self.enabled and dist.is_initialized():
            dist.destroy_process_group()


def atomic_save(obj: Any, path: Path) -> None:
    """``torch.save`` to a temporary file in the same folder, fsync, then ``os.replace`` (atomic)."""
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        with open(tmp, "wb") as fh:
            torch.save(obj, fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def atomic_write_text(text: str, path: Path) -> None:
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    tmp.write_text(text)
    os.replace(tmp, path)


def rng_state(aug: torch.Generator) -> dict[str, Any]:
    state = {"python": random.getstate(), "torch": torch.get_rng_state(), "aug": aug.get_state()}
    try:
        import numpy as np

        state["numpy"] = np.random.get_state()
    except ImportError:  # pragma: no cover
        pass
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any], aug: torch.Generator) -> None:
    random.setstate(state["python"])
    torch.set_rng_state(state["torch"])
    aug.set_state(state["aug"])
    if "numpy" in state:
        import numpy as np

        np.random.set_state(state["numpy"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def seed_everything(seed: int) -> None:
    random.seed(seed)
    torch.manual_seed(seed)
    try:
        import numpy as np

        np.random.seed(seed % 2**32)
    except ImportError:  # pragma: no cover
        pass


def channel_stats(ds: ImageDataset, pretrained: bool) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and std of the training images (ImageNet's with --pretrained or no cache)."""
    if pretrained or ds.images is None or len(ds) == 0:
        return IMAGENET_MEAN, IMAGENET_STD
    x = ds.images.float().div_(255)
    mean = x.mean(dim=(0, 2, 3))
    std = x.std(dim=(0, 2, 3)).clamp_min(1e-3)
    return tuple(mean.tolist()), tuple(std.tolist())


class Progress:
    """tqdm when installed and wanted, else a line every ~10% of the epoch."""

    def __init__(self, total: int, desc: str, enabled: bool) -> None:
        self.total, self.desc, self.enabled, self.n = total, desc, enabled, 0
        self.bar = None
        if enabled:
            try:
                from tqdm.auto import tqdm

                self.bar = tqdm(total=total, desc=desc, leave=False, dynamic_ncols=True, file=sys.stderr)
            except ImportError:
                pass

    def update(self, **postfix: float) -> None:
        self.n += 1
        if self.bar is not None:
            self.bar.set_postfix({k: f"{v:.3f}" for k, v in postfix.items()}, refresh=False)
            self.bar.update(1)
        elif self.enabled and (self.n == self.total or self.n % max(1, self.total // 10) == 0):
            extra = " ".join(f"{k}={v:.3f}" for k, v in postfix.items())
            print(f"  {self.desc} {self.n}/{self.total} {extra}", flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def unwrap(model: nn.Module) -> nn.Module:
    return model.module if isinstance(model, nn.parallel.DistributedDataParallel) else model


@torch.no_grad()
def predict(model: nn.Module, ds: ImageDataset, batch_size: int, env: Dist, norm: tuple[Tensor, Tensor]):
    """Predictions of every rank's shard (rank::world, no padding), gathered: (labels, preds, loss)."""
    model.eval()
    net = unwrap(model)
    shard = list(range(env.rank, len(ds), env.world))
    loader = torch.utils.data.DataLoader(
        torch.utils.data.Subset(ds, shard), batch_size=batch_size, shuffle=False, collate_fn=collate_skip_none
    )
    ys, ps, idx, loss_sum = [], [], [], 0.0
    for batch in loader:
        if batch is None:
            continue
        images, labels, ids = batch
        x = normalize(images, norm, env.device)
        logits = net(x)
        loss_sum += float(nn.functional.cross_entropy(logits, labels.to(env.device), reduction="sum"))
        ys += labels.tolist()
        ps += logits.argmax(1).cpu().tolist()
        idx += ids.tolist()
    parts = env.gather((idx, ys, ps, loss_sum))
    order: dict[int, tuple[int, int]] = {}
    total_loss = 0.0
    for i, y, p, ls in parts:
        total_loss += ls
        for a, b, c in zip(i, y, p, strict=True):
            order[a] = (b, c)
    keys = sorted(order)
    labels = [order[k][0] for k in keys]
    preds = [order[k][1] for k in keys]
    return labels, preds, total_loss / max(1, len(keys))


def normalize(images: Tensor, norm: tuple[Tensor, Tensor], device: torch.device) -> Tensor:
    x = images.to(device, non_blocking=True).float().div_(255)
    mean, std = norm
    return (x - mean.to(device)) / std.to(device)


# ============================================================================================ outputs
def plot_confusion(results: dict[str, dict], classes: list[str], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [k for k in ("val", "test") if results.get(k)]
    fig, axes = plt.subplots(1, len(names), figsize=(4.2 * len(names) + 0.5, 4), squeeze=False)
    for ax, name in zip(axes[0], names, strict=True):
        cm = torch.tensor(results[name]["confusion_matrix"], dtype=torch.float)
        rel = cm / cm.sum(1, keepdim=True).clamp_min(1)
        ax.imshow(rel.numpy(), cmap="Blues", vmin=0, vmax=1)
        for i in range(cm.shape[0]):
            for j in range(cm.shape[1]):
                ax.text(
                    j,
                    i,
                    int(cm[i, j]),
                    ha="center",
                    va="center",
                    color="white" if rel[i, j] > 0.5 else "black",
                    fontsize=8 if len(classes) > 5 else 10,
                )
        ax.set_xticks(
            range(len(classes)),
            classes,
            rotation=45 if len(classes) > 3 else 0,
            ha="right" if len(classes) > 3 else "center",
        )
        ax.set_yticks(range(len(classes)), classes)
        ax.set_xlabel("predicted")
        ax.set_ylabel("true")
        ax.set_title(f"{name}: acc {100 * results[name]['accuracy']:.1f}%")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


@torch.no_grad()
def plot_heatmaps(model: nn.Module, ds: ImageDataset, n: int, classes: list[str], norm, device, path: Path) -> bool:
    """Overlay the model's node maps (pooling scores, node attention) on ``n`` test images."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    net = unwrap(model)
    net.eval()
    # the first images of each class in turn, so every class is shown
    by_class: dict[int, list[int]] = {}
    for i, y in enumerate(ds.labels.tolist()):
        by_class.setdefault(y, []).append(i)
    order = [idx for group in zip(*by_class.values(), strict=False) for idx in group] if by_class else []
    chosen = set(order)
    order += [i for i in range(len(ds)) if i not in chosen]
    items = [ds[i] for i in order[:n]]
    items = [it for it in items if it is not None]
    if not items:
        return False
    images = torch.stack([it[0] for it in items])
    labels = [int(it[1]) for it in items]
    logits, maps = net(normalize(images, norm, device), explain=True)
    if not maps:
        return False
    preds = logits.argmax(1).tolist()
    s = images.shape[-1]
    fig, axes = plt.subplots(
        len(items), 1 + len(maps), figsize=(2.3 * (1 + len(maps)), 2.3 * len(items)), squeeze=False
    )
    for r in range(len(items)):
        img = images[r].permute(1, 2, 0).numpy()
        axes[r][0].imshow(img)
        axes[r][0].set_title(f"true {classes[labels[r]]} / pred {classes[preds[r]]}", fontsize=7)
        for c, (name, m) in enumerate(maps.items(), start=1):
            hm = m[r : r + 1, None].float()
            hm = nn.functional.interpolate(hm, size=(s, s), mode="bilinear", align_corners=False)[0, 0]
            hm = (hm - hm.min()) / (hm.max() - hm.min()).clamp_min(1e-12)
            axes[r][c].imshow(img)
            axes[r][c].imshow(hm.cpu().numpy(), cmap="jet", alpha=0.45, vmin=0, vmax=1)
            axes[r][c].set_title(f"{name} ({m.shape[1]}x{m.shape[2]} nodes)", fontsize=7)
    for ax in axes.flat:
        ax.axis("off")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


# ============================================================================================ main
def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    env = Dist(args.device)
    # soft-histogram memberships (MI adjacency) produce denormal floats; flushing them to zero
    # makes the CPU matrix products several times faster and changes no result beyond 1e-38.
    # The previous setting is restored on return (main() may run inside a bigger process).
    was_flushing = _flushes_denormals()
    torch.set_flush_denormal(True)
    threads = torch.get_num_threads()
    if args.threads is None and args.data is None:
        # the digits demo is small: one thread avoids OpenMP spin-waiting on a shared machine
        # (measured on a loaded 2-core box: 1 thread, 6 epochs: 27 s CPU, 165 s wall; 2 threads,
        # 4 epochs: 255 s CPU, 750 s wall)
        args.threads = 1
    if args.threads:
        torch.set_num_threads(args.threads)
    try:
        return _run(args, env)
    finally:
        torch.set_flush_denormal(was_flushing)
        torch.set_num_threads(threads)
        env.close()


def _flushes_denormals() -> bool:
    tiny = torch.tensor([1e-30], dtype=torch.float32)
    return bool((tiny * 1e-10).item() == 0.0)


def _run(args: argparse.Namespace, env: Dist) -> dict[str, Any]:
    say = print if env.main else (lambda *a, **k: None)
    out = Path(args.out)
    if env.main:
        out.mkdir(parents=True, exist_ok=True)
    env.barrier()
    if args.epochs < 1 or args.batch_size < 1:
        raise ValueError(f"Expected --epochs >= 1 and --batch-size >= 1 (got {args.epochs}, {args.batch_size})")

    image_size = args.image_size or (32 if args.data is None else None)
    rotate = args.rotate if args.rotate is not None else args.data is not None
    if args.width is None:  # the digits demo uses a half-width ResNet18 so it runs in about two minutes
        args.width = 32 if args.data is None else 64
    classes, sets, notes = build_datasets(
        args.data,
        image_size,
        seed=args.seed,
        magnification=args.magnification,
        test_data=args.test_data,
        breakhis_task=args.breakhis_task,
        cache=not args.no_cache,
        limit=args.limit,
        val_fraction=args.val_fraction,
        test_fraction=args.test_fraction,
        train_limit=args.train_limit,
    )
    for note in notes:
        say(note)
    say("splits: " + ", ".join(f"{k} {len(v)}" for k, v in sets.items()))

    seed_everything(args.seed)  # identical initial weights on every rank
    extra = {}
    if args.model in GRAPH_MODELS:
        extra = dict(
            hidden=args.hidden,
            num_layers=args.num_layers,
            heads=args.heads,
            dropout=args.dropout,
            mi_bins=args.mi_bins,
            mi_topk=args.mi_topk,
            graph=args.graph,
            mi_grad=args.mi_grad,
        )
    model = create_model(
        args.model,
        len(classes),
        backbone=args.backbone,
        feature_level=args.feature_level,
        pretrained=args.pretrained,
        width=args.width,
        **extra,
    ).to(env.device)
    pretrained_status = model.pretrained_status
    num_params = sum(p.numel() for p in model.parameters())
    say(
        f"model {args.model}: {num_params / 1e6:.2f} M parameters ({pretrained_status}); device {env.device}, "
        f"{env.world} process(es)"
    )
    last_layer = model.last_layer
    if env.enabled:
        model = nn.parallel.DistributedDataParallel(
            model, device_ids=[env.device.index] if env.device.type == "cuda" else None
        )
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=args.weight_decay)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=args.epochs)
    mean, std = channel_stats(sets["train"], args.pretrained)
    norm = (torch.tensor(mean).view(1, 3, 1, 1), torch.tensor(std).view(1, 3, 1, 1))
    aug = torch.Generator().manual_seed(args.seed * 1009 + env.rank)
    seed_everything(args.seed * 7919 + env.rank)  # per-rank dropout streams

    history: list[dict[str, Any]] = []
    start_epoch, best = 0, {"accuracy": -1.0, "epoch": -1}
    ckpt_path, best_path = out / "checkpoint.pt", out / "best.pt"
    if args.resume and ckpt_path.is_file():
        ckpt = torch.load(ckpt_path, map_location=env.device, weights_only=False)
        if ckpt["model_name"] != args.model or ckpt["classes"] != classes:
            raise ValueError(
                f"Expected a checkpoint of model {args.model!r} with classes {classes} in {ckpt_path} "
                f"(got {ckpt['model_name']!r} with {ckpt['classes']}); use another --out"
            )
        unwrap(model).load_state_dict(ckpt["model"])
        optimizer.load_state_dict(ckpt["optimizer"])
        scheduler.load_state_dict(ckpt["scheduler"])
        start_epoch, best, history = ckpt["epoch"], ckpt["best"], ckpt["history"]
        states = ckpt["rng"]
        if len(states) == env.world:
            set_rng_state(states[env.rank], aug)
        else:
            say(
                f"note: checkpoint has RNG states of {len(states)} processes, this run has {env.world}; "
                "continuing with fresh random streams"
            )
        say(f"resumed from {ckpt_path} after epoch {start_epoch}")
    elif args.resume:
        say(f"--resume: no checkpoint at {ckpt_path}, starting from scratch")

    train_ds = sets["train"]
    sampler = torch.utils.data.DistributedSampler(
        train_ds, num_replicas=env.world, rank=env.rank, shuffle=True, seed=args.seed
    )
    loader = torch.utils.data.DataLoader(
        train_ds,
        batch_size=args.batch_size,
        sampler=sampler,
        collate_fn=collate_skip_none,
        num_workers=args.workers if args.no_cache else 0,
        persistent_workers=False,
    )
    end_epoch = args.epochs if args.stop_after is None else min(args.epochs, args.stop_after)
    for epoch in range(start_epoch, end_epoch):
        model.train()
        sampler.set_epoch(epoch)
        bar = Progress(len(loader), f"epoch {epoch + 1}/{args.epochs}", env.main and not args.no_progress)
        t0 = time.perf_counter()
        seen = correct = 0
        loss_sum = 0.0
        for batch in loader:
            if batch is None or batch[0].shape[0] < 2:  # all unreadable, or a BatchNorm-hostile batch of 1
                bar.update()
                continue
            images, labels, _ = batch
            x = normalize(images, norm, env.device)
            if not args.no_augment:
                x = augment_batch(x, aug, rotate=rotate, max_shift=args.max_shift, flip=args.flip)
            y = labels.to(env.device)
            logits = model(x)
            loss = regularized_loss(logits, y, last_layer, args.lambda_l2)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            n = y.shape[0]
            seen += n
            loss_sum += float(loss.detach()) * n
            correct += int((logits.argmax(1) == y).sum())
            bar.update(loss=float(loss.detach()))
        if env.device.type == "cuda":
            torch.cuda.synchronize(env.device)
        train_time = time.perf_counter() - t0
        bar.close()
        scheduler.step()
        totals = env.gather((seen, correct, loss_sum, train_time))
        seen_all = sum(t[0] for t in totals)
        train_time_max = max(t[3] for t in totals)
        do_eval = args.eval_every > 0 and ((epoch + 1) % args.eval_every == 0 or epoch + 1 == args.epochs)
        v_labels, v_preds, v_loss = (
            predict(model, sets["val"], args.batch_size * 2, env, norm) if do_eval else ([], [], 0.0)
        )
        val = classification_metrics(v_labels, v_preds, len(classes)) if v_labels else None
        row = {
            "epoch": epoch + 1,
            "train_loss": sum(t[2] for t in totals) / max(1, seen_all),
            "train_accuracy": sum(t[1] for t in totals) / max(1, seen_all),
            "val_loss": v_loss if v_labels else None,
            "val_accuracy": val["accuracy"] if val else None,
            "lr": optimizer.param_groups[0]["lr"],
            "train_seconds": train_time_max,
            "train_images_per_sec": seen_all / max(train_time_max, 1e-9),
        }
        history.append(row)
        improved = val is not None and val["accuracy"] > best["accuracy"]
        if improved:
            best = {"accuracy": val["accuracy"], "epoch": epoch + 1}
        rngs = env.gather(rng_state(aug))
        if env.main:
            if improved:
                atomic_save({"model": unwrap(model).state_dict(), "epoch": epoch + 1}, best_path)
            atomic_save(
                {
                    "model_name": args.model,
                    "classes": classes,
                    "epoch": epoch + 1,
                    "model": unwrap(model).state_dict(),
                    "optimizer": optimizer.state_dict(),
                    "scheduler": scheduler.state_dict(),
                    "best": best,
                    "history": history,
                    "rng": rngs,
                    "args": vars(args),
                },
                ckpt_path,
            )
        env.barrier()
        va = f"{100 * row['val_accuracy']:.2f}%" if val else "n/a"
        say(
            f"epoch {epoch + 1}/{args.epochs}: loss {row['train_loss']:.4f} "
            f"train acc {100 * row['train_accuracy']:.2f}% "
            f"val acc {va} ({row['train_images_per_sec']:.1f} img/s, {train_time_max:.1f}s)",
            flush=True,
        )

    if end_epoch < args.epochs:
        say(f"stopped after epoch {end_epoch} of {args.epochs} (--stop-after); continue with --resume")
        return {"stopped_after": end_epoch, "history": history}

    # ---------------------------------------------------------------- final evaluation
    if args.select == "best" and best_path.is_file() and best["epoch"] > 0:
        unwrap(model).load_state_dict(torch.load(best_path, map_location=env.device, weights_only=False)["model"])
        chosen = f"best val epoch {best['epoch']}"
    else:
        chosen = f"last epoch {len(history)}"
    results: dict[str, Any] = {}
    for split in ("val", "test"):
        labels, preds, loss = predict(model, sets[split], args.batch_size * 2, env, norm)
        results[split] = classification_metrics(labels, preds, len(classes), classes) if labels else None
        if results[split] is not None:
            results[split]["loss"] = loss
    speeds = [h["train_images_per_sec"] for h in history]
    speeds_steady = speeds[1:] or speeds
    report = {
        "model": args.model,
        "classes": classes,
        "evaluated_weights": chosen,
        "val": results["val"],
        "test": results["test"],
        "history": history,
        "train_images_per_sec": sorted(speeds_steady)[len(speeds_steady) // 2] if speeds_steady else None,
        "num_parameters": num_params,
        "pretrained": pretrained_status,
        "device": str(env.device),
        "world_size": env.world,
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "notes": notes,
        "args": vars(args),
    }
    if env.main:
        atomic_write_text(json.dumps(report, indent=2), out / "metrics.json")
        plot_confusion(results, classes, out / "confusion_matrix.png")
        wrote = False
        if args.heatmaps > 0 and len(sets["test"]) > 0:
            wrote = plot_heatmaps(model, sets["test"], args.heatmaps, classes, norm, env.device, out / "heatmaps.png")
        for split in ("val", "test"):
            if results[split]:
                print(format_metrics(f"{args.model} {split} ({chosen})", results[split], classes))
        print(
            f"wrote {out / 'metrics.json'}, {out / 'confusion_matrix.png'}"
            + (f", {out / 'heatmaps.png'}" if wrote else "")
        )
    env.barrier()
    return report


if __name__ == "__main__":
    main()
