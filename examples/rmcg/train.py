"""Train and evaluate RMCG or one of the paper's baselines on an image folder, a MANIFEST, or digits.

Examples::

    # the main job: RMCG on the embedded tissue sample (640 real H&E patches, patient-level split),
    # about a minute on 2 CPU cores; --data digits: scikit-learn's handwritten digits instead
    python examples/rmcg/train.py

    # breast IDC patches with the MANIFEST's patient-level split
    python examples/rmcg/train.py --data ../shared/data/breast_idc_patches --model rmcg \
        --epochs 10 --image-size 64 --batch-size 32 --out runs/idc_rmcg

    # Databiox at 20X, held-out test folder, resume after an interruption, 2 processes
    torchrun --nproc_per_node 2 examples/rmcg/train.py --data Databiox --magnification 20X \
        --test-data Databiox_test --out runs/dbx --resume

Writes in ``--out``: ``checkpoint.pt`` (every epoch, atomically, before ``best.pt``; file and
folder fsynced), ``best.pt`` (the full state of the best validation epoch), ``dataset.csv`` (the
validated table trained on: path, label, class name, patient, split), ``metrics.json``
(accuracy, balanced accuracy, macro precision / recall / F1, AUROC, per-class scores and recall,
confusion matrix, for val and test; split sizes; unreadable images; per-epoch history; training
images/s), ``predictions_test.csv`` (per test image: path, patient, label, prediction and class
probabilities; ``paired.py`` compares two runs on it), ``confusion_matrix.png`` and, for graph models, ``heatmaps.png`` (pooling scores and
node attention over a few test images).

Bad input is refused before training with a message naming the problem and exit status 2 (no
traceback): see :func:`rmcg.data.validate_index`, :func:`check_args` and :func:`prepare_out`.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import random
import shutil
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

_HERE = Path(__file__).resolve().parent
if str(_HERE.parent) not in sys.path:
    sys.path.insert(0, str(_HERE.parent))

import torch  # noqa: E402
import torch.distributed as dist  # noqa: E402
from torch import Tensor, nn  # noqa: E402

from rmcg.data import (  # noqa: E402
    SPLIT_BY,
    DataError,
    ImageDataset,
    augment_batch,
    build_datasets,
    collate_skip_none,
)
from rmcg.metrics import classification_metrics, format_metrics  # noqa: E402
from rmcg.models import FEATURE_LEVELS, GRAPH_MODELS, MODELS, create_model, regularized_loss  # noqa: E402

log = logging.getLogger("rmcg")
TISSUE_SAMPLE = _HERE / "data"  # the embedded 640-patch breast IDC sample (the default --data)
RUN_FILES = (
    "checkpoint.pt", "best.pt", "metrics.json", "confusion_matrix.png", "heatmaps.png", "dataset.csv", "predictions_test.csv"
)
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


# ============================================================================================ CLI
def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        description="Train RMCG (graphvision) or a baseline; with no --data, on the embedded tissue sample.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    d = p.add_argument_group("data")
    d.add_argument(
        "--data",
        default=None,
        help="dataset root (MANIFEST.csv, Databiox, BreakHis, class folders), or 'digits' for scikit-learn's "
        "handwritten digits; default: the embedded tissue sample examples/rmcg/data (640 H&E patches)",
    )
    d.add_argument(
        "--classes",
        default=None,
        help="declared class names, comma-separated (label i = i-th name); MANIFEST labels outside them are refused",
    )
    d.add_argument(
        "--split-by",
        default="auto",
        choices=SPLIT_BY,
        help="how images without a split are split: by patient (auto when patient ids exist; refused when only "
        "some images have one) or by image (explicit: patients may end up in two splits)",
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
        choices=("grid", "mi", "knn"),
        help="override the pixel graph (default: mi for rmcg, grid otherwise; knn: feature-space kNN, k = --mi-topk)",
    )
    m.add_argument("--no-mca", action="store_true", help="rmcg ablation: without multi-channel attention")
    m.add_argument("--pool", default="attention", choices=("attention", "mean"), help="rmcg ablation: graph pooling")
    m.add_argument(
        "--rmcg-conv", default="attention", choices=("attention", "gcn"), help="rmcg ablation: the graph convolution"
    )

    t = p.add_argument_group("training")
    t.add_argument("--epochs", type=int, default=None, help="default: 10 on the embedded tissue sample, else 6")
    t.add_argument("--batch-size", type=int, default=32)
    t.add_argument("--lr", type=float, default=2e-3)
    t.add_argument("--weight-decay", type=float, default=0.0, help="AdamW decay on all weights (0: off)")
    t.add_argument("--lambda-l2", type=float, default=1e-3, help="lambda of the lambda/2*||W_last||^2 loss term")
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--device", default=None, help="cpu, cuda, cuda:1 ... (default: cuda when available)")
    t.add_argument(
        "--out",
        default=None,
        help="run directory (default: runs/rmcg, or the first free runs/rmcg-2, -3, ... so that a rerun "
        "never touches an earlier run; with --resume or --overwrite: runs/rmcg)",
    )
    t.add_argument("--resume", action="store_true", help="continue from OUT/checkpoint.pt if it exists")
    t.add_argument("--overwrite", action="store_true", help="replace the run already in --out (its files are deleted)")
    t.add_argument(
        "--fallback-best",
        action="store_true",
        help="with --resume: when checkpoint.pt is empty or corrupt, resume from best.pt (the best val epoch)",
    )
    t.add_argument(
        "--class-weights",
        default="none",
        choices=("none", "balanced"),
        help="cross-entropy class weights: balanced = N / (K * n_class) from the training split",
    )
    t.add_argument(
        "--sampler",
        default="random",
        choices=("random", "balanced"),
        help="training order: random permutation, or balanced = classes drawn equally often (with replacement)",
    )
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
class UsageError(ValueError):
    """A command line or output folder that must not be run (printed without traceback, exit status 2)."""


class CheckpointError(UsageError):
    """An empty, truncated or foreign checkpoint."""


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


def _fsync_dir(folder: Path) -> None:
    """fsync a directory so a rename inside it survives a power cut (no-op where unsupported)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # pragma: no cover - e.g. Windows
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover
        pass
    finally:
        os.close(fd)


def _atomic_write(path: Path, binary: bool, write: Callable[[IO], Any]) -> None:
    """``write`` into a temporary file in the same folder, fsync, ``os.replace`` (atomic), fsync the folder."""
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        with open(tmp, "wb") if binary else open(tmp, "w", encoding="utf-8") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
        _fsync_dir(path.parent)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def atomic_save(obj: Any, path: Path) -> None:
    """``torch.save`` to ``path`` atomically (see :func:`_atomic_write`)."""
    _atomic_write(path, True, lambda fh: torch.save(obj, fh))


def atomic_write_text(text: str, path: Path) -> None:
    """Write ``text`` to ``path`` atomically (see :func:`_atomic_write`)."""
    _atomic_write(path, False, lambda fh: fh.write(text))


def check_args(args: argparse.Namespace) -> None:
    """Range-check every numeric argument; raise :class:`UsageError` naming the flag, expected and got."""
    rules: list[tuple[str, Any, str, Any]] = [
        ("epochs", args.epochs, ">= 1", lambda v: v >= 1),
        ("batch_size", args.batch_size, ">= 1", lambda v: v >= 1),
        ("image_size", args.image_size, ">= 16 (ResNet18 needs 16x16 at least)", lambda v: v is None or v >= 16),
        ("limit", args.limit, ">= 1", lambda v: v is None or v >= 1),
        ("train_limit", args.train_limit, ">= 1", lambda v: v is None or v >= 1),
        ("val_fraction", args.val_fraction, "in [0, 1)", lambda v: 0 <= v < 1),
        ("test_fraction", args.test_fraction, "in [0, 1)", lambda v: 0 <= v < 1),
        ("workers", args.workers, ">= 0", lambda v: v >= 0),
        ("max_shift", args.max_shift, "in [0, 0.5]", lambda v: 0 <= v <= 0.5),
        ("width", args.width, ">= 4", lambda v: v is None or v >= 4),
        ("hidden", args.hidden, ">= 1", lambda v: v >= 1),
        ("num_layers", args.num_layers, ">= 1", lambda v: v >= 1),
        ("heads", args.heads, ">= 1", lambda v: v >= 1),
        ("dropout", args.dropout, "in [0, 1)", lambda v: 0 <= v < 1),
        ("mi_bins", args.mi_bins, ">= 2", lambda v: v >= 2),
        ("mi_topk", args.mi_topk, ">= 1", lambda v: v >= 1),
        ("lr", args.lr, "> 0 and finite", lambda v: 0 < v < math.inf),
        ("weight_decay", args.weight_decay, ">= 0", lambda v: 0 <= v < math.inf),
        ("lambda_l2", args.lambda_l2, ">= 0", lambda v: 0 <= v < math.inf),
        ("stop_after", args.stop_after, ">= 1", lambda v: v is None or v >= 1),
        ("eval_every", args.eval_every, ">= 0", lambda v: v >= 0),
        ("heatmaps", args.heatmaps, ">= 0", lambda v: v >= 0),
        ("threads", args.threads, ">= 1", lambda v: v is None or v >= 1),
    ]
    for name, value, expected, ok in rules:
        if not ok(value):
            raise UsageError(f"Expected --{name.replace('_', '-')} {expected} (got {value})")
    if args.val_fraction + args.test_fraction >= 1:
        raise UsageError(
            f"Expected --val-fraction + --test-fraction < 1 (got {args.val_fraction} + {args.test_fraction}); "
            "nothing would be left to train on"
        )
    if args.overwrite and args.resume:
        raise UsageError("Expected at most one of --resume and --overwrite (got both)")
    if args.fallback_best and not args.resume:
        raise UsageError("Expected --fallback-best together with --resume")


def _holds_run(out: Path) -> list[str]:
    return [n for n in RUN_FILES if (out / n).exists()]


def clean_temp_files(out: Path) -> list[str]:
    """Remove temporary files that killed writes of earlier runs left in ``out`` (``.<name>.tmp<pid>``)."""
    removed = []
    for f in out.glob(".*.tmp*"):
        base = f.name[1:].split(".tmp")[0]
        if f.is_file() and (base in RUN_FILES or base.startswith(".write_probe")):
            f.unlink(missing_ok=True)
            removed.append(f.name)
    return removed


def prepare_out(out: Path, resume: bool, overwrite: bool, need_bytes: int = 0, commit: bool = True) -> list[str]:
    """Make ``out`` ready for a run, or raise :class:`UsageError` before any training.

    ``out`` must not be a file; a folder that holds a run needs ``resume`` or ``overwrite`` (then
    that run's files are deleted); the folder must be writable and have room for ``need_bytes``
    (a probe file is written, fsynced and removed). Temporary files of killed writes are removed.
    ``commit=False`` only checks (nothing deleted): the CLI checks first, before reading the data.
    Returns notes for the log.
    """
    notes: list[str] = []
    if out.exists() and not out.is_dir():
        raise UsageError(f"Expected --out to be a directory (got {str(out)!r}, which is a file)")
    for parent in out.parents:
        if parent.exists():
            if not parent.is_dir():
                raise UsageError(f"Expected --out {str(out)!r} under a directory (got {str(parent)!r}, a file)")
            break
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"Expected a writable --out directory (cannot create {str(out)!r}: {exc.strerror})") from None
    held = _holds_run(out)
    if held and not (resume or overwrite):
        raise UsageError(
            f"Expected an empty or new --out (got {str(out)!r}, which holds a run: {', '.join(held)}); "
            "pass --resume to continue it, --overwrite to replace it, or choose another --out"
        )
    probe = out / f".write_probe.tmp{os.getpid()}"
    try:
        with open(probe, "wb") as fh:
            fh.write(b"\0" * 4096)
            fh.flush()
            os.fsync(fh.fileno())
    except OSError as exc:
        raise UsageError(f"Expected a writable --out directory (got {str(out)!r}: {exc.strerror or exc})") from None
    finally:
        try:
            probe.unlink(missing_ok=True)
        except OSError:  # pragma: no cover
            pass
    if not commit:
        return notes
    free = shutil.disk_usage(out).free
    if need_bytes and free < need_bytes:
        raise UsageError(
            f"Expected at least {need_bytes / 1e6:.1f} MB free in --out {str(out)!r} for the checkpoints "
            f"(got {free / 1e6:.1f} MB)"
        )
    removed = clean_temp_files(out)
    if removed:
        notes.append(f"removed {len(removed)} temporary file(s) of an interrupted run: {', '.join(removed)}")
    if held and overwrite:
        for n in held:
            (out / n).unlink()
        _fsync_dir(out)
        notes.append(f"--overwrite: deleted the previous run's {', '.join(held)}")
    return notes


def load_checkpoint(path: Path, device: torch.device) -> dict[str, Any]:
    """``torch.load`` a full training checkpoint; :class:`CheckpointError` when empty, corrupt or incomplete."""
    size = path.stat().st_size
    if size == 0:
        raise CheckpointError(f"Expected a training checkpoint in {path} (got an empty file, 0 bytes)")
    try:
        ckpt = torch.load(path, map_location=device, weights_only=False)
    except Exception as exc:  # noqa: BLE001 - any unpickling error means a corrupt file
        raise CheckpointError(
            f"Expected a readable training checkpoint in {path} (got {type(exc).__name__}: {exc}; {size} bytes)"
        ) from None
    need = {"model_name", "classes", "epoch", "model", "optimizer", "scheduler", "best", "history", "rng"}
    if not isinstance(ckpt, dict) or need - set(ckpt):
        got = sorted(ckpt) if isinstance(ckpt, dict) else type(ckpt).__name__
        raise CheckpointError(f"Expected a full training checkpoint in {path} with {sorted(need)} (got {got})")
    return ckpt


def cosine_factor(total_epochs: int) -> Any:
    """LR factor of epoch ``e`` (0-based) of a cosine schedule over ``total_epochs`` (closed form).

    The closed form lets a resumed run with another ``--epochs`` continue over the new length:
    the factor depends only on (epoch, total), never on the path taken to it.
    """

    def f(epoch: int) -> float:
        return 0.5 * (1.0 + math.cos(math.pi * min(epoch, total_epochs) / total_epochs))

    return f


class BalancedSampler(torch.utils.data.Sampler[int]):
    """Indices drawn with replacement so that every class is equally likely; sharded over ranks.

    Each epoch draws ``ceil(N / world) * world`` indices from a generator seeded with
    ``(seed, epoch)`` (deterministic, so a resumed run draws the same), rank ``r`` takes every
    ``world``-th from ``r``.
    """

    def __init__(self, labels: Tensor, num_classes: int, seed: int, rank: int = 0, world: int = 1) -> None:
        counts = torch.bincount(labels, minlength=num_classes).double()
        self.weights = (1.0 / counts.clamp_min(1))[labels]
        self.seed, self.rank, self.world, self.epoch = seed, rank, world, 0
        self.per_rank = math.ceil(len(labels) / world)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.per_rank

    def __iter__(self):
        g = torch.Generator().manual_seed(self.seed * 100_003 + self.epoch)
        idx = torch.multinomial(self.weights, self.per_rank * self.world, replacement=True, generator=g)
        return iter(idx[self.rank :: self.world].tolist())


def _readable(ds: ImageDataset) -> int:
    """Images of ``ds`` that were readable (those found unreadable during training are left out)."""
    bad = {p for p, _ in ds.skipped}
    return sum(str(smp.path) not in bad for smp in ds.samples) if bad else len(ds)


def _batchnorm_eval(model: nn.Module, eval_mode: bool) -> None:
    """Put every BatchNorm layer in eval mode (running statistics, no update) or back in train mode."""
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.train(not eval_mode)


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
    """Predictions of every rank's shard (rank::world, no padding), gathered: (labels, preds, probs, loss)."""
    model.eval()
    net = unwrap(model)
    shard = list(range(env.rank, len(ds), env.world))
    loader = torch.utils.data.DataLoader(
        torch.utils.data.Subset(ds, shard), batch_size=batch_size, shuffle=False, collate_fn=collate_skip_none
    )
    ys, ps, prs, idx, loss_sum = [], [], [], [], 0.0
    for batch in loader:
        if batch is None:
            continue
        images, labels, ids = batch
        x = normalize(images, norm, env.device)
        logits = net(x)
        loss_sum += float(nn.functional.cross_entropy(logits, labels.to(env.device), reduction="sum"))
        ys += labels.tolist()
        ps += logits.argmax(1).cpu().tolist()
        prs += logits.float().softmax(1).cpu().tolist()
        idx += ids.tolist()
    parts = env.gather((idx, ys, ps, prs, loss_sum))
    order: dict[int, tuple[int, int, list[float]]] = {}
    total_loss = 0.0
    for i, y, p, pr, ls in parts:
        total_loss += ls
        for a, b, c, d in zip(i, y, p, pr, strict=True):
            order[a] = (b, c, d)
    keys = sorted(order)
    labels = [order[k][0] for k in keys]
    preds = [order[k][1] for k in keys]
    probs = torch.tensor([order[k][2] for k in keys], dtype=torch.float64)
    return labels, preds, probs, total_loss / max(1, len(keys))


def write_predictions(
    ds: ImageDataset, labels: list[int], preds: list[int], probs: Tensor | None, classes: list[str], path: Path
) -> None:
    """Write one row per image: path, patient, label, prediction and class probabilities (CSV)."""
    import csv
    import io

    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["path", "patient_id", "label", "pred"] + [f"prob_{c}" for c in classes])
    for i, (s, y, p) in enumerate(zip(ds.samples, labels, preds, strict=True)):
        row_probs = [] if probs is None else [f"{float(v):.6f}" for v in probs[i]]
        w.writerow([str(s.path), s.patient_id or "", y, p] + row_probs)
    atomic_write_text(buf.getvalue(), path)


def normalize(images: Tensor, norm: tuple[Tensor, Tensor], device: torch.device) -> Tensor:
    x = images.to(device, non_blocking=True).float().div_(255)
    mean, std = norm
    return (x - mean.to(device)) / std.to(device)


# ============================================================================================ outputs
def plot_confusion(results: dict[str, dict], classes: list[str], path: Path) -> bool:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [k for k in ("val", "test") if results.get(k)]
    if not names:
        return False
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
    return True


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
    """Parse ``argv``, train and evaluate; returns the report written to ``metrics.json``.

    Raises :class:`UsageError` / :class:`rmcg.data.DataError` for refused input (:func:`cli`
    prints those without a traceback).
    """
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if args.epochs is None:  # the tissue main job: 10 epochs (about a minute); otherwise 6
        args.epochs = 10 if args.data is None else 6
    check_args(args)
    env = Dist(args.device)
    # soft-histogram memberships (MI adjacency) produce denormal floats; flushing them to zero
    # makes the CPU matrix products several times faster and changes no result beyond 1e-38.
    # The previous setting is restored on return (main() may run inside a bigger process).
    was_flushing = _flushes_denormals()
    torch.set_flush_denormal(True)
    threads = torch.get_num_threads()
    if args.threads is None and (args.data is None or args.data == "digits"):
        # the built-in data sets are small: one thread avoids OpenMP spin-waiting on a shared machine
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


def cli(argv: list[str] | None = None) -> int:
    """The command line: :func:`main`, with refused input printed as ``error: ...`` and exit status 2."""
    try:
        main(argv)
    except (UsageError, DataError) as exc:
        print(f"error: {exc}", file=sys.stderr, flush=True)
        return 2
    return 0


def _flushes_denormals() -> bool:
    tiny = torch.tensor([1e-30], dtype=torch.float32)
    return bool((tiny * 1e-10).item() == 0.0)


def _default_out(args: argparse.Namespace) -> Path:
    """``runs/rmcg``, or the first of ``runs/rmcg-2``, ``-3``, ... that holds no run (without
    ``--resume`` / ``--overwrite``), so that running the README command twice keeps both runs."""
    base = Path("runs/rmcg")
    if args.resume or args.overwrite:
        return base
    out, i = base, 1
    while out.is_dir() and _holds_run(out):
        i += 1
        out = base.with_name(f"{base.name}-{i}")
    return out


def _run(args: argparse.Namespace, env: Dist) -> dict[str, Any]:
    say = print if env.main else (lambda *a, **k: None)
    out = _default_out(args) if args.out is None else Path(args.out)
    builtin = args.data is None or args.data == "digits"
    data = None if args.data == "digits" else (str(TISSUE_SAMPLE) if args.data is None else args.data)
    digits = data is None
    image_size = args.image_size or (32 if digits else None)
    rotate = args.rotate if args.rotate is not None else not digits
    if args.width is None:  # the built-in data sets use a half-width ResNet18 (about a minute on 2 CPU cores)
        args.width = 32 if builtin else 64

    # refuse a bad --out before reading any data (nothing is deleted yet); every rank checks, so a
    # refusal never leaves another rank waiting at a barrier
    prepare_out(out, args.resume, args.overwrite, commit=False)
    env.barrier()

    # ---------------------------------------------------------------- data: one validated table
    indexes: list = []
    classes, sets, notes = build_datasets(
        data,
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
        split_by=args.split_by,
        classes=[c.strip() for c in args.classes.split(",")] if args.classes else None,
        index_out=indexes,
    )
    if args.data is None:
        notes.insert(0, f"default data: the embedded tissue sample {TISSUE_SAMPLE} (see its README.md)")
    for note in notes:
        say(note)
    sizes = {k: len(v) for k, v in sets.items()}
    say("splits: " + ", ".join(f"{k} {n}" for k, n in sizes.items()))
    for k in ("val", "test"):
        if sizes[k] == 0:
            say(f"note: no {k} images; " + ("the last epoch is evaluated" if k == "val" else "no test metrics"))

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
            **(
                dict(mca=not args.no_mca, pool=args.pool, rmcg_conv=args.rmcg_conv)
                if args.model == "rmcg"
                else {}
            ),
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

    # ---------------------------------------------------------------- output folder, before any training
    if env.main:
        ckpt_bytes = 4 * num_params * 4 + (1 << 20)  # weights + 2 Adam moments + slack, per file
        for note in prepare_out(out, args.resume, args.overwrite, need_bytes=3 * ckpt_bytes):
            say(note)
        if indexes:
            indexes[0].write_csv(out / "dataset.csv")
    env.barrier()
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
    # closed-form cosine over --epochs: a resume with another --epochs continues over the new length
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, cosine_factor(args.epochs))
    mean, std = channel_stats(sets["train"], args.pretrained)
    norm = (torch.tensor(mean).view(1, 3, 1, 1), torch.tensor(std).view(1, 3, 1, 1))
    aug = torch.Generator().manual_seed(args.seed * 1009 + env.rank)
    seed_everything(args.seed * 7919 + env.rank)  # per-rank dropout streams

    train_ds = sets["train"]
    counts = torch.bincount(train_ds.labels, minlength=len(classes))
    class_weight = None
    if args.class_weights == "balanced":
        present = counts > 0
        w = torch.zeros(len(classes))
        w[present] = counts.sum() / (present.sum() * counts[present].double()).float()
        class_weight = w.to(env.device)
        say("class weights: " + ", ".join(f"{c} {float(x):.3f}" for c, x in zip(classes, w, strict=True)))
    if args.sampler == "balanced":
        sampler: Any = BalancedSampler(train_ds.labels, len(classes), args.seed, env.rank, env.world)
    else:
        sampler = torch.utils.data.DistributedSampler(
            train_ds, num_replicas=env.world, rank=env.rank, shuffle=True, seed=args.seed
        )

    history: list[dict[str, Any]] = []
    start_epoch, best = 0, {"accuracy": -1.0, "epoch": -1}
    ckpt_path, best_path = out / "checkpoint.pt", out / "best.pt"
    if args.resume and (ckpt_path.is_file() or (args.fallback_best and best_path.is_file())):
        source = ckpt_path
        try:
            if not ckpt_path.is_file():
                raise CheckpointError(f"Expected a training checkpoint in {ckpt_path} (got no file)")
            ckpt = load_checkpoint(ckpt_path, env.device)
        except CheckpointError as exc:
            if not (args.fallback_best and best_path.is_file()):
                hint = " (or --fallback-best to resume from best.pt)" if best_path.is_file() else ""
                raise CheckpointError(f"{exc}; delete it to start again, or use --overwrite{hint}") from None
            say(f"warning: {exc}; --fallback-best: resuming from {best_path}")
            source = best_path
            ckpt = load_checkpoint(best_path, env.device)
        if ckpt["model_name"] != args.model or ckpt["classes"] != classes:
            raise CheckpointError(
                f"Expected a checkpoint of model {args.model!r} with classes {classes} in {source} "
                f"(got {ckpt['model_name']!r} with {ckpt['classes']}); use another --out"
            )
        unwrap(model).load_state_dict(ckpt["model"])
        optimizer.load_state_dict(ckpt["optimizer"])
        start_epoch, best, history = ckpt["epoch"], ckpt["best"], ckpt["history"]
        # the schedule over the (possibly new) --epochs, at the step reached
        scheduler.last_epoch = start_epoch
        factor = cosine_factor(args.epochs)(start_epoch)
        for group, base in zip(optimizer.param_groups, scheduler.base_lrs, strict=True):
            group["lr"] = base * factor
        scheduler._last_lr = [g["lr"] for g in optimizer.param_groups]
        states = ckpt["rng"]
        if len(states) == env.world:
            set_rng_state(states[env.rank], aug)
        else:
            say(
                f"note: checkpoint has RNG states of {len(states)} processes, this run has {env.world}; "
                "continuing with fresh random streams"
            )
        old_epochs = ckpt.get("args", {}).get("epochs")
        if old_epochs not in (None, args.epochs):
            say(f"note: --epochs {old_epochs} -> {args.epochs}: the cosine schedule continues over {args.epochs}")
        say(f"resumed from {source} after epoch {start_epoch}")
        if start_epoch >= args.epochs:
            say(f"note: the checkpoint is at epoch {start_epoch} >= --epochs {args.epochs}; evaluating only")
    elif args.resume:
        say(f"--resume: no checkpoint at {ckpt_path}, starting from scratch")

    loader = torch.utils.data.DataLoader(
        train_ds,
        batch_size=args.batch_size,
        sampler=sampler,
        collate_fn=collate_skip_none,
        num_workers=args.workers if args.no_cache else 0,
        persistent_workers=False,
    )
    if len(loader) == 0:  # pragma: no cover - a non-empty train split always gives a batch
        raise UsageError(f"Expected at least one training batch (got 0 from {len(train_ds)} images)")
    end_epoch = args.epochs if args.stop_after is None else min(args.epochs, args.stop_after)
    for epoch in range(start_epoch, end_epoch):
        model.train()
        sampler.set_epoch(epoch)
        bar = Progress(len(loader), f"epoch {epoch + 1}/{args.epochs}", env.main and not args.no_progress)
        lr_used = optimizer.param_groups[0]["lr"]
        t0 = time.perf_counter()
        seen = correct = 0
        loss_sum = 0.0
        for batch in loader:
            if batch is None:  # every image of the batch became unreadable
                bar.update()
                continue
            images, labels, _ = batch
            x = normalize(images, norm, env.device)
            if not args.no_augment:
                x = augment_batch(x, aug, rotate=rotate, max_shift=args.max_shift, flip=args.flip)
            y = labels.to(env.device)
            single = x.shape[0] == 1
            if single:  # batch statistics of one image are undefined: BatchNorm uses its running statistics
                _batchnorm_eval(model, True)
            logits = model(x)
            loss = regularized_loss(logits, y, last_layer, args.lambda_l2, weight=class_weight)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            if single:
                _batchnorm_eval(model, False)
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
        if seen_all == 0:
            raise DataError(f"Expected training images in epoch {epoch + 1} (got none readable); nothing was trained")
        train_time_max = max(t[3] for t in totals)
        do_eval = args.eval_every > 0 and ((epoch + 1) % args.eval_every == 0 or epoch + 1 == args.epochs)
        v_labels, v_preds, _, v_loss = (
            predict(model, sets["val"], args.batch_size * 2, env, norm) if do_eval else ([], [], None, 0.0)
        )
        val = classification_metrics(v_labels, v_preds, len(classes)) if v_labels else None
        row = {
            "epoch": epoch + 1,
            "train_loss": sum(t[2] for t in totals) / max(1, seen_all),
            "train_accuracy": sum(t[1] for t in totals) / max(1, seen_all),
            "train_images": seen_all,
            "val_loss": v_loss if v_labels else None,
            "val_accuracy": val["accuracy"] if val else None,
            "val_balanced_accuracy": val["balanced_accuracy"] if val else None,
            "lr": lr_used,
            "train_seconds": train_time_max,
            "train_images_per_sec": seen_all / max(train_time_max, 1e-9),
        }
        history.append(row)
        improved = val is not None and val["balanced_accuracy"] > best.get("balanced_accuracy", best["accuracy"])
        if improved:
            best = {"accuracy": val["accuracy"], "balanced_accuracy": val["balanced_accuracy"], "epoch": epoch + 1}
        rngs = env.gather(rng_state(aug))
        if env.main:
            state = {
                "model_name": args.model,
                "classes": classes,
                "epoch": epoch + 1,
                "model": unwrap(model).state_dict(),
                "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict(),
                "best": best,
                "history": history,
                "rng": rngs,
                "args": {k: v for k, v in vars(args).items() if not k.startswith("_")},
            }
            atomic_save(state, ckpt_path)  # first: a crash between the two never loses the latest epoch
            if improved:
                atomic_save(state, best_path)
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
        unwrap(model).load_state_dict(load_checkpoint(best_path, env.device)["model"])
        chosen = f"best val epoch {best['epoch']} (balanced accuracy)"
    else:
        chosen = f"last epoch {len(history)}"
    results: dict[str, Any] = {}
    for split in ("val", "test"):
        labels, preds, probs, loss = predict(model, sets[split], args.batch_size * 2, env, norm)
        results[split] = classification_metrics(labels, preds, len(classes), classes, probs) if labels else None
        if results[split] is not None:
            results[split]["loss"] = loss
        if env.main and split == "test" and labels and len(labels) == len(sets[split]):
            # per-image predictions (in the dataset's order) for paired comparisons of two runs
            write_predictions(sets[split], labels, preds, probs, classes, out / "predictions_test.csv")
    speeds = [h["train_images_per_sec"] for h in history]
    speeds_steady = speeds[1:] or speeds
    skipped = {k: [{"path": p, "error": m} for p, m in ds.skipped] for k, ds in sets.items()}
    report = {
        "model": args.model,
        "classes": classes,
        "evaluated_weights": chosen,
        "val": results["val"],
        "test": results["test"],
        "split_sizes": {k: _readable(ds) for k, ds in sets.items()},
        "unreadable_images": skipped,
        "class_weights": args.class_weights,
        "sampler": args.sampler,
        "history": history,
        "train_images_per_sec": sorted(speeds_steady)[len(speeds_steady) // 2] if speeds_steady else None,
        "num_parameters": num_params,
        "pretrained": pretrained_status,
        "device": str(env.device),
        "world_size": env.world,
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "notes": notes,
        "args": {k: v for k, v in vars(args).items() if not k.startswith("_")},
    }
    if env.main:
        atomic_write_text(json.dumps(report, indent=2), out / "metrics.json")
        wrote_cm = plot_confusion(results, classes, out / "confusion_matrix.png")
        wrote = False
        if args.heatmaps > 0 and len(sets["test"]) > 0:
            wrote = plot_heatmaps(model, sets["test"], args.heatmaps, classes, norm, env.device, out / "heatmaps.png")
        for split in ("val", "test"):
            if results[split]:
                print(format_metrics(f"{args.model} {split} ({chosen})", results[split], classes))
        written = [out / "metrics.json"] + [out / "confusion_matrix.png"] * wrote_cm + [out / "heatmaps.png"] * wrote
        print("wrote " + ", ".join(map(str, written)))
    env.barrier()
    return report


if __name__ == "__main__":
    sys.exit(cli())
