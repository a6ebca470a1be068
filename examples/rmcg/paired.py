"""Compare runs on the same test images: confidence intervals and paired tests.

Reads the ``predictions_test.csv`` that ``train.py`` writes into each run directory and prints,
for every run, accuracy, balanced accuracy, macro F1 and AUROC with 95% confidence intervals from a
bootstrap over test **patients** (images of one patient are correlated, so patients are resampled,
not images). For each pair of runs named with ``--pair A B`` (or every run against the first one)
it gives the paired bootstrap interval of the difference A - B (same resampled patients for both)
and McNemar's exact test on the images the two runs classify differently. Several seeds of one
model (``--group``) are pooled by averaging their class probabilities per image.

    python examples/rmcg/paired.py runs/rmcg-s0 runs/resnet18-s0 --boot 2000
    python examples/rmcg/paired.py --group rmcg=runs/rmcg-s* --group resnet18=runs/resnet18-s*

The output is a Markdown table (``--out FILE`` also writes it and a JSON twin).
"""

from __future__ import annotations

import argparse
import csv
import glob
import json
import math
import sys
from collections.abc import Sequence
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from metrics import classification_metrics  # noqa: E402

METRICS = ("accuracy", "balanced_accuracy", "f1_macro", "auroc")


class Predictions:
    """One run's (or one pooled group's) test predictions, in a fixed image order."""

    def __init__(self, name: str, paths: list[str], patients: list[str], labels: torch.Tensor, probs: torch.Tensor):
        self.name, self.paths, self.patients, self.labels, self.probs = name, paths, patients, labels, probs

    @property
    def preds(self) -> torch.Tensor:
        return self.probs.argmax(1)

    @classmethod
    def read(cls, run: Path) -> Predictions:
        path = run / "predictions_test.csv" if run.is_dir() else run
        if not path.is_file():
            raise SystemExit(f"error: no predictions_test.csv in {run} (train.py writes it since this version)")
        with open(path, newline="") as f:
            rows = list(csv.DictReader(f))
        if not rows:
            raise SystemExit(f"error: {path} holds no predictions")
        prob_cols = [c for c in rows[0] if c.startswith("prob_")]
        rows.sort(key=lambda r: r["path"])
        probs = torch.tensor([[float(r[c]) for c in prob_cols] for r in rows], dtype=torch.float64)
        labels = torch.tensor([int(r["label"]) for r in rows])
        return cls(str(run), [r["path"] for r in rows], [r["patient_id"] or r["path"] for r in rows], labels, probs)

    @classmethod
    def pooled(cls, name: str, runs: Sequence[Predictions]) -> Predictions:
        first = _same_images(runs)
        return cls(name, first.paths, first.patients, first.labels, torch.stack([r.probs for r in runs]).mean(0))


def _same_images(runs: Sequence[Predictions]) -> Predictions:
    """The first run, after checking every run was evaluated on the same images and labels."""
    first = runs[0]
    for r in runs[1:]:
        if r.paths != first.paths or not torch.equal(r.labels, first.labels):
            raise SystemExit(f"error: {r.name} and {first.name} were evaluated on different test images")
    return first


def scores(labels: torch.Tensor, probs: torch.Tensor) -> dict[str, float]:
    """The four headline metrics of one prediction set (AUROC: binary, or macro one-vs-rest)."""
    m = classification_metrics(labels.tolist(), probs.argmax(1).tolist(), probs.size(1), None, probs)
    out = {name: float(m[name]) for name in METRICS[:3]}
    out["auroc"] = float("nan") if m.get("auroc") is None else float(m["auroc"])
    return out


def patient_bootstrap(patients: list[str], boot: int, seed: int) -> list[torch.Tensor]:
    """``boot`` resamples of the images, drawing patients with replacement (all their images)."""
    ids = sorted(set(patients))
    members: dict[str, list[int]] = {p: [] for p in ids}
    for i, p in enumerate(patients):
        members[p].append(i)
    groups = [torch.tensor(members[p]) for p in ids]
    g = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(boot):
        pick = torch.randint(len(ids), (len(ids),), generator=g)
        out.append(torch.cat([groups[int(j)] for j in pick]))
    return out


def interval(values: list[float]) -> tuple[float, float]:
    """The 2.5% and 97.5% percentiles (NaNs dropped)."""
    v = torch.tensor([x for x in values if not math.isnan(x)], dtype=torch.float64)
    if v.numel() == 0:
        return float("nan"), float("nan")
    return float(v.quantile(0.025)), float(v.quantile(0.975))


def mcnemar_exact(a_right: torch.Tensor, b_right: torch.Tensor) -> tuple[int, int, float]:
    """Images only A got right, only B got right, and the two-sided exact (binomial) p-value."""
    n01 = int((a_right & ~b_right).sum())
    n10 = int((~a_right & b_right).sum())
    n = n01 + n10
    if n == 0:
        return n01, n10, 1.0
    k = min(n01, n10)
    tail = sum(math.comb(n, i) for i in range(k + 1)) / 2**n
    return n01, n10, min(1.0, 2 * tail)


def compare(runs: list[Predictions], pairs: list[tuple[int, int]], boot: int, seed: int) -> dict:
    """Point estimates, patient-bootstrap intervals and paired comparisons."""
    base = _same_images(runs)
    samples = patient_bootstrap(base.patients, boot, seed)
    per_run = []
    boot_scores = []
    for r in runs:
        point = scores(r.labels, r.probs)
        bs = [scores(r.labels[idx], r.probs[idx]) for idx in samples]
        boot_scores.append(bs)
        per_run.append({"name": r.name, **{m: {"value": point[m], "ci95": interval([b[m] for b in bs])} for m in METRICS}})
    paired = []
    for i, j in pairs:
        a, b = runs[i], runs[j]
        diff = {}
        for m in METRICS:
            d = [x[m] - y[m] for x, y in zip(boot_scores[i], boot_scores[j], strict=True)]
            pa, pb = per_run[i][m]["value"], per_run[j][m]["value"]
            diff[m] = {"value": pa - pb, "ci95": interval(d)}
        n01, n10, p = mcnemar_exact(a.preds == a.labels, b.preds == b.labels)
        paired.append({"a": a.name, "b": b.name, "diff": diff, "mcnemar": {"only_a": n01, "only_b": n10, "p": p}})
    n_pat = len(set(base.patients))
    return {"images": len(base.paths), "patients": n_pat, "boot": boot, "seed": seed, "runs": per_run, "paired": paired}


def markdown(res: dict) -> str:
    def pct(x: float) -> str:
        return "nan" if math.isnan(x) else f"{100 * x:.2f}"

    def cell(d: dict) -> str:
        lo, hi = d["ci95"]
        return f"{pct(d['value'])} ({pct(lo)}-{pct(hi)})"

    lines = [
        f"Test images {res['images']} from {res['patients']} patients; 95% intervals from {res['boot']} "
        "bootstrap resamples of the patients (seed "
        f"{res['seed']}). Percent.",
        "",
        "| run | accuracy | balanced accuracy | macro F1 | AUROC |",
        "|---|---|---|---|---|",
    ]
    for r in res["runs"]:
        lines.append(f"| {r['name']} | " + " | ".join(cell(r[m]) for m in METRICS) + " |")
    if res["paired"]:
        lines += ["", "| A - B | accuracy | balanced accuracy | macro F1 | AUROC | McNemar (only A / only B right, p) |",
                  "|---|---|---|---|---|---|"]
        for p in res["paired"]:
            mc = p["mcnemar"]
            lines.append(
                f"| {p['a']} - {p['b']} | " + " | ".join(cell(p["diff"][m]) for m in METRICS)
                + f" | {mc['only_a']} / {mc['only_b']}, p = {mc['p']:.3f} |"
            )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("runs", nargs="*", type=Path, help="run directories (or predictions CSV files)")
    ap.add_argument("--group", action="append", default=[], metavar="NAME=GLOB",
                    help="pool the runs matching GLOB (seeds of one model) under NAME")
    ap.add_argument("--pair", nargs=2, action="append", default=[], metavar=("A", "B"),
                    help="compare run/group A with B (by name or position; default: every one against the first)")
    ap.add_argument("--boot", type=int, default=2000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=None, help="also write the table (.md) and a .json twin")
    args = ap.parse_args(argv)
    runs = [Predictions.read(r) for r in args.runs]
    for spec in args.group:
        name, _, pattern = spec.partition("=")
        members = sorted(glob.glob(pattern))
        if not name or not members:
            raise SystemExit(f"error: --group {spec!r} matches no run (expected NAME=GLOB)")
        runs.append(Predictions.pooled(name, [Predictions.read(Path(m)) for m in members]))
    if len(runs) < 1:
        raise SystemExit("error: give at least one run")
    names = [r.name for r in runs]

    def pos(x: str) -> int:
        if x in names:
            return names.index(x)
        if x.isdigit() and int(x) < len(runs):
            return int(x)
        raise SystemExit(f"error: --pair {x!r} is not one of {names}")

    pairs = [(pos(a), pos(b)) for a, b in args.pair] or [(i, 0) for i in range(1, len(runs))]
    res = compare(runs, pairs, args.boot, args.seed)
    text = markdown(res)
    print(text)
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.with_suffix(".md").write_text(text)
        args.out.with_suffix(".json").write_text(json.dumps(res, indent=2))
    return res


if __name__ == "__main__":
    main()
