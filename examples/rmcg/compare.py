"""Run every model under one protocol (same data, split, epochs, seeds) and tabulate, like the paper's Table 1.

Example (the run recorded in docs/rmcg_results.md)::

    python examples/rmcg/compare.py --data ../shared/data/breast_idc_patches --out runs/compare \
        --seeds 0 1 --epochs 3 -- --image-size 50 --width 32 --batch-size 32 --eval-every 0 --select last

Arguments after ``--`` go to every ``train.py`` run unchanged. Each run writes its own folder
``OUT/<model>/seed<S>/`` (a run whose ``metrics.json`` exists is reused, so an interrupted compare
continues where it stopped); the table goes to ``OUT/results.md`` and ``OUT/results.json``:
mean and sample standard deviation over seeds of the test accuracy and macro precision, recall
and F1, and the median training throughput (images/s).
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

_HERE = Path(__file__).resolve().parent
if str(_HERE.parent) not in sys.path:
    sys.path.insert(0, str(_HERE.parent))

from rmcg.models import DISPLAY_NAMES, MODELS  # noqa: E402

#: The paper's Databiox accuracies (%), Table 1, for reference only (other data and task).
PAPER_DATABIOX_ACCURACY = {
    "rmcg": 82.87,
    "resnet18": 78.26,
    "alexnet": 77.35,
    "resnet18-gcn": 81.20,
    "ecc": 82.11,
    "resnet18-gat": 80.42,
    "gcnii": 81.59,
}
METRICS = (("accuracy", "Accuracy"), ("precision_macro", "Precision"), ("recall_macro", "Recall"), ("f1_macro", "F1"))


def mean_std(values: list[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (0 for a single value)."""
    if not values:
        return math.nan, math.nan
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else 0.0)


def aggregate(out: Path, models: list[str], seeds: list[int], split: str = "test") -> dict[str, Any]:
    """Collect ``OUT/<model>/seed<S>/metrics.json`` into per-model summaries."""
    summary: dict[str, Any] = {}
    for model in models:
        runs = []
        for seed in seeds:
            path = out / model / f"seed{seed}" / "metrics.json"
            if path.is_file():
                runs.append(json.loads(path.read_text()))
        rows = [r[split] for r in runs if r.get(split)]
        entry: dict[str, Any] = {"runs": len(rows), "seeds": seeds}
        for key, _ in METRICS:
            m, s = mean_std([100 * r[key] for r in rows])
            entry[key] = {"mean": m, "std": s, "values": [100 * r[key] for r in rows]}
        speeds = [r["train_images_per_sec"] for r in runs if r.get("train_images_per_sec")]
        entry["train_images_per_sec"] = statistics.median(speeds) if speeds else None
        entry["num_parameters"] = runs[0]["num_parameters"] if runs else None
        entry["paper_databiox_accuracy"] = PAPER_DATABIOX_ACCURACY.get(model)
        summary[model] = entry
    return summary


def markdown_table(summary: dict[str, Any], title: str | None = None) -> str:
    """A Table-1-style markdown table: mean ± std of each metric, the paper's Databiox accuracy beside it.

    Training throughput is left out of the table (it is in ``results.json``): on a shared machine
    it measures the load more than the model; use ``--speed`` for an interleaved measurement.
    """
    lines = [f"**{title}**", ""] if title else []
    lines += [
        "| Model | Accuracy (%) | Macro precision (%) | Macro recall (%) | Macro F1 (%) | seeds | params (M) "
        "| Paper: Databiox accuracy (%) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for model, e in summary.items():
        cells = []
        for key, _ in METRICS:
            m, s = e[key]["mean"], e[key]["std"]
            cells.append("n/a" if math.isnan(m) else f"{m:.2f} ± {s:.2f}")
        params = f"{e['num_parameters'] / 1e6:.2f}" if e["num_parameters"] else "n/a"
        paper = f"{e['paper_databiox_accuracy']:.2f}" if e["paper_databiox_accuracy"] is not None else ""
        lines.append(f"| {DISPLAY_NAMES.get(model, model)} | " + " | ".join(cells) + f" | {e['runs']} | {params} | {paper} |")
    return "\n".join(lines)


def measure_speed(
    models: list[str],
    image_size: int = 50,
    batch_size: int = 32,
    repeats: int = 3,
    steps: int = 2,
    device: str = "cpu",
    **model_kwargs: Any,
) -> dict[str, dict[str, float]]:
    """Training throughput (images/s, forward + backward + AdamW step) of each model on random batches.

    The models are timed in turn, ``repeats`` rounds (interleaved, so a machine shared with other
    jobs slows them alike); each round times ``steps`` steps after one warm-up step. Returns the
    median and the min/max over rounds.
    """
    import torch

    from rmcg.models import GRAPH_MODELS, create_model, regularized_loss

    dev = torch.device(device)
    x = torch.randn(batch_size, 3, image_size, image_size, device=dev)
    y = torch.randint(0, 2, (batch_size,), device=dev)
    built = {}
    for name in models:
        kw = dict(model_kwargs) if name in GRAPH_MODELS else {k: v for k, v in model_kwargs.items() if k == "width"}
        torch.manual_seed(0)
        model = create_model(name, 2, **kw).to(dev).train()
        opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
        built[name] = (model, opt)
    times: dict[str, list[float]] = {name: [] for name in models}

    def step(model, opt) -> None:
        loss = regularized_loss(model(x), y, model.last_layer, 1e-3)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    for model, opt in built.values():
        step(model, opt)  # warm-up
    for _ in range(repeats):
        for name, (model, opt) in built.items():
            if dev.type == "cuda":
                torch.cuda.synchronize(dev)
            t0 = time.perf_counter()
            for _ in range(steps):
                step(model, opt)
            if dev.type == "cuda":
                torch.cuda.synchronize(dev)
            times[name].append(batch_size * steps / (time.perf_counter() - t0))
    return {n: {"median": statistics.median(v), "min": min(v), "max": max(v)} for n, v in times.items()}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    argv = list(sys.argv[1:] if argv is None else argv)
    extra: list[str] = []
    if "--" in argv:
        cut = argv.index("--")
        argv, extra = argv[:cut], argv[cut + 1 :]
    p = argparse.ArgumentParser(
        description=__doc__.split("\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    p.add_argument(
        "--data", default=None, help="dataset root, or digits (default: the embedded tissue sample examples/rmcg/data)"
    )
    p.add_argument("--out", default="runs/compare")
    p.add_argument("--models", nargs="+", default=list(MODELS), choices=MODELS)
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1])
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--rerun", action="store_true", help="rerun runs whose metrics.json exists")
    p.add_argument("--title", default=None, help="table title")
    p.add_argument(
        "--speed",
        nargs="*",
        default=None,
        metavar="MODEL",
        help="only measure training images/s of these models (default rmcg resnet18) and exit",
    )
    p.add_argument("--speed-image-size", type=int, default=50)
    p.add_argument("--speed-batch-size", type=int, default=32)
    p.add_argument("--speed-width", type=int, default=64)
    p.add_argument("--speed-repeats", type=int, default=3)
    p.add_argument("--device", default="cpu", help="device of --speed")
    args = p.parse_args(argv)
    if args.speed is not None:
        import torch

        torch.set_flush_denormal(True)
        names = args.speed or ["rmcg", "resnet18"]
        res = measure_speed(
            names,
            args.speed_image_size,
            args.speed_batch_size,
            args.speed_repeats,
            device=args.device,
            width=args.speed_width,
        )
        info = {
            "device": args.device,
            "threads": torch.get_num_threads(),
            "image_size": args.speed_image_size,
            "batch_size": args.speed_batch_size,
            "width": args.speed_width,
            "torch": torch.__version__,
            "images_per_sec": res,
        }
        Path(args.out).mkdir(parents=True, exist_ok=True)
        (Path(args.out) / f"speed_{args.device.replace(':', '')}.json").write_text(json.dumps(info, indent=2))
        for n, r in res.items():
            print(f"{n:>14}: {r['median']:.1f} img/s (min {r['min']:.1f}, max {r['max']:.1f})")
        return info
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    failures: dict[str, str] = {}
    started = time.time()
    # seed-major order: if the compare has to stop early, every model has the same seeds done
    for seed in args.seeds:
        for model in args.models:
            run = out / model / f"seed{seed}"
            if (run / "metrics.json").is_file() and not args.rerun:
                print(f"[compare] {model} seed {seed}: reusing {run / 'metrics.json'}", flush=True)
                continue
            cmd = [
                sys.executable,
                str(_HERE / "train.py"),
                "--model",
                model,
                "--seed",
                str(seed),
                "--epochs",
                str(args.epochs),
                "--out",
                str(run),
                "--no-progress",
                "--resume",
                *extra,
            ]
            if args.data:
                cmd += ["--data", args.data]
            print(f"[compare] {model} seed {seed}: {' '.join(cmd)}", flush=True)
            t0 = time.time()
            proc = subprocess.run(cmd, capture_output=True, text=True)
            run.mkdir(parents=True, exist_ok=True)
            (run / "log.txt").write_text(proc.stdout + proc.stderr)
            if proc.returncode != 0:
                failures[f"{model}/seed{seed}"] = (
                    proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else "failed"
                )
                print(f"[compare] {model} seed {seed} FAILED: {failures[f'{model}/seed{seed}']}", flush=True)
            else:
                print(f"[compare] {model} seed {seed}: done in {time.time() - t0:.0f}s", flush=True)
    summary = aggregate(out, args.models, args.seeds, "test")
    val_summary = aggregate(out, args.models, args.seeds, "val")
    title = args.title or (
        f"Test set, mean ± std over seeds {args.seeds}, {args.epochs} epochs; "
        f"data: {args.data or 'examples/rmcg/data (embedded tissue sample)'}"
        + (f"; train.py {' '.join(extra)}" if extra else "")
    )
    table = markdown_table(summary, title)
    result = {
        "protocol": {"data": args.data, "epochs": args.epochs, "seeds": args.seeds, "train_args": extra},
        "test": summary,
        "val": val_summary,
        "failures": failures,
        "wall_seconds": time.time() - started,
    }
    (out / "results.json").write_text(json.dumps(result, indent=2))
    (out / "results.md").write_text(table + "\n\n" + markdown_table(val_summary, "Validation set (same runs)") + "\n")
    print(table)
    if failures:
        print(f"[compare] failures: {failures}")
    return result


if __name__ == "__main__":
    main()
