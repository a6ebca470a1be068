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

from rmcg.models import MODELS  # noqa: E402

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
DISPLAY = {
    "resnet18": "ResNet18",
    "alexnet": "AlexNet",
    "resnet18-gcn": "ResNet18-GCN",
    "ecc": "ECC",
    "resnet18-gat": "ResNet18-GAT",
    "gcnii": "GCNII",
    "rmcg": "RMCG",
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


def markdown_table(summary: dict[str, Any], title: str) -> str:
    """A Table-1-style markdown table: mean +- std of each metric, the paper's Databiox accuracy beside it."""
    lines = [
        f"**{title}**",
        "",
        "| Model | Accuracy (%) | Precision (%) | Recall (%) | F1 (%) | runs | train img/s | params (M) "
        "| paper, Databiox acc. (%) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for model, e in summary.items():
        cells = []
        for key, _ in METRICS:
            m, s = e[key]["mean"], e[key]["std"]
            cells.append("n/a" if math.isnan(m) else f"{m:.2f} ± {s:.2f}")
        speed = f"{e['train_images_per_sec']:.1f}" if e["train_images_per_sec"] else "n/a"
        params = f"{e['num_parameters'] / 1e6:.2f}" if e["num_parameters"] else "n/a"
        paper = f"{e['paper_databiox_accuracy']:.2f}" if e["paper_databiox_accuracy"] is not None else ""
        lines.append(f"| {DISPLAY.get(model, model)} | " + " | ".join(cells) + f" | {e['runs']} | {speed} | {params} | {paper} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    argv = list(sys.argv[1:] if argv is None else argv)
    extra: list[str] = []
    if "--" in argv:
        cut = argv.index("--")
        argv, extra = argv[:cut], argv[cut + 1 :]
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--data", default=None, help="dataset root (default: scikit-learn digits)")
    p.add_argument("--out", default="runs/compare")
    p.add_argument("--models", nargs="+", default=list(MODELS), choices=MODELS)
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1])
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--rerun", action="store_true", help="rerun runs whose metrics.json exists")
    p.add_argument("--title", default=None, help="table title")
    args = p.parse_args(argv)
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
            cmd = [sys.executable, str(_HERE / "train.py"), "--model", model, "--seed", str(seed),
                   "--epochs", str(args.epochs), "--out", str(run), "--no-progress", "--resume", *extra]
            if args.data:
                cmd += ["--data", args.data]
            print(f"[compare] {model} seed {seed}: {' '.join(cmd)}", flush=True)
            t0 = time.time()
            proc = subprocess.run(cmd, capture_output=True, text=True)
            run.mkdir(parents=True, exist_ok=True)
            (run / "log.txt").write_text(proc.stdout + proc.stderr)
            if proc.returncode != 0:
                failures[f"{model}/seed{seed}"] = proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else "failed"
                print(f"[compare] {model} seed {seed} FAILED: {failures[f'{model}/seed{seed}']}", flush=True)
            else:
                print(f"[compare] {model} seed {seed}: done in {time.time() - t0:.0f}s", flush=True)
    summary = aggregate(out, args.models, args.seeds, "test")
    val_summary = aggregate(out, args.models, args.seeds, "val")
    title = args.title or (
        f"Test set, mean ± std over seeds {args.seeds}, {args.epochs} epochs; data: {args.data or 'digits'}"
        + (f"; train.py {' '.join(extra)}" if extra else "")
    )
    table = markdown_table(summary, title)
    result = {"protocol": {"data": args.data, "epochs": args.epochs, "seeds": args.seeds, "train_args": extra},
              "test": summary, "val": val_summary, "failures": failures, "wall_seconds": time.time() - started}
    (out / "results.json").write_text(json.dumps(result, indent=2))
    (out / "results.md").write_text(table + "\n\n" + markdown_table(val_summary, "Validation set (same runs)") + "\n")
    print(table)
    if failures:
        print(f"[compare] failures: {failures}")
    return result


if __name__ == "__main__":
    main()
