"""Paired statistics of protocol C's tuned configurations and new ablations (after protocol_c_extra.sh).

``paired.py`` needs each run's ``predictions_test.csv``, which stays in the run directory (``OUT``),
not in the repository. This script reads ``examples/rmcg/results/`` (via ``results_file.build``),
finds the configuration chosen on validation for every model and the best graph baseline on
validation, and writes

- ``results/protocol_c/paired_tuned.json`` (``.md``): every model whose chosen learning rate is not
  protocol C's 2e-3, plus RMCG, ResNet18 and the best graph baseline at their chosen learning rate,
  seeds pooled, with the paired tests RMCG vs ResNet18 and RMCG vs the best graph baseline
  (skipped when all three are at 2e-3: ``paired.json`` already holds them);
- ``results/protocol_c/ablations/ablation_paired_extra.json`` (``.md``): the ablations whose runs
  are in ``OUT`` and that ``ablation_paired.json`` lacks, each against the full RMCG (2e-3).

A run missing from ``OUT`` is an error, or with ``--train`` is trained there with the command
recorded in ``idc_large.json`` (they are deterministic on one CPU thread: the rerun reproduces the
recorded metrics, which this script checks).

    python examples/rmcg/protocol_c_paired.py --runs runs/protocol_c [--train]
"""

from __future__ import annotations

import argparse
import json
import shlex
import statistics
import subprocess
import sys
from pathlib import Path

_HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(_HERE))
sys.path.insert(0, str(_HERE.parent))

import paired  # noqa: E402
import results_file  # noqa: E402
from results_page import GRAPH_BASELINES, group_name  # noqa: E402

RES = _HERE / "results" / "protocol_c"


def ensure(run: dict, out: Path, train: bool, data: str | None) -> Path:
    """The run directory holding ``run``'s predictions (trained there with ``--train``)."""
    d = out / run["run"]
    if not (d / "predictions_test.csv").is_file():
        if not train:
            raise SystemExit(f"error: {d} has no predictions_test.csv (rerun with --train, or: {run['command']})")
        argv = shlex.split(run["command"])
        argv[argv.index("--out") + 1] = str(d)
        if data is not None:
            argv[argv.index("--data") + 1] = data
        argv[0] = sys.executable
        print("train:", shlex.join(argv), flush=True)
        subprocess.run(argv + ["--overwrite"], check=True, cwd=_HERE.parent.parent, stdout=subprocess.DEVNULL)
    got = json.loads((d / "metrics.json").read_text())["test"]
    for key in ("accuracy", "balanced_accuracy", "auroc"):
        if abs(got[key] - run["test"][key]) > 1e-9:
            print(f"warning: {d}: test {key} {got[key]:.6f} differs from the recorded {run['test'][key]:.6f} "
                  "(not a bit-identical rerun)")
    return d


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--runs", type=Path, required=True, help="the run directories' parent (protocol_c_extra's OUT)")
    ap.add_argument("--train", action="store_true", help="train the runs missing from --runs")
    ap.add_argument("--data", default=None, help="override the recorded --data (e.g. an absolute path)")
    ap.add_argument("--boot", type=int, default=2000)
    ap.add_argument("--only", choices=("tuned", "ablations"), default=None, help="one of the two outputs")
    a = ap.parse_args(argv)
    res = results_file.build()
    runs, chosen = res["runs"], res["protocol"]["tuning"]["chosen"]

    def config(model: str, lr: float, abl: str | None = None) -> list[dict]:
        return [r for r in runs if r["model"] == model and r["lr"] == lr and r["ablation"] == abl]

    def val(model: str) -> float:
        return statistics.mean(r["val"]["balanced_accuracy"] for r in config(model, chosen[model]["lr"]))

    best = max((m for m in GRAPH_BASELINES if m in chosen), key=val)
    print(f"chosen lr: { {m: c['lr'] for m, c in chosen.items()} }; best graph baseline on val: {best}")
    need = {m for m in chosen if chosen[m]["lr"] != 2e-3}
    if need & {"rmcg", "resnet18", best}:
        need |= {"rmcg", "resnet18", best}
    if a.only == "ablations":
        pass
    elif need:
        args, names = [], {}
        for m in results_file.MODELS:
            if m not in need:
                continue
            names[m] = group_name(m, chosen[m]["lr"])
            dirs = [str(ensure(r, a.runs, a.train, a.data)) for r in config(m, chosen[m]["lr"])]
            args += ["--group", f"{names[m]}={'|'.join(dirs)}"]
        pairs = []
        if {"rmcg", "resnet18", best} <= set(names):
            pairs = ["--pair", names["rmcg"], names["resnet18"], "--pair", names["rmcg"], names[best]]
        _paired(args + pairs + ["--boot", str(a.boot), "--out", str(RES / "paired_tuned")])
    else:
        print("RMCG, ResNet18 and the best graph baseline are all at lr 2e-3: paired.json holds their tests")

    done = {r["name"] for r in json.loads((RES / "ablations" / "ablation_paired.json").read_text())["runs"]}
    new = [k for k in results_file.ABLATIONS if k not in done and config("rmcg", 2e-3, k)] if a.only != "tuned" else []
    if new:
        args = ["--group", "rmcg=" + "|".join(str(ensure(r, a.runs, a.train, a.data)) for r in config("rmcg", 2e-3))]
        for k in new:
            args += ["--group", f"{k}=" + "|".join(str(ensure(r, a.runs, a.train, a.data))
                                                for r in config("rmcg", 2e-3, k))]
            args += ["--pair", k, "rmcg"]
        _paired(args + ["--boot", str(a.boot), "--out", str(RES / "ablations" / "ablation_paired_extra")])
    return 0


def _paired(argv: list[str]) -> None:
    """paired.main, with ``--group NAME=dir1|dir2|...`` (explicit directories instead of a glob)."""
    expanded, i = [], 0
    groups = []
    while i < len(argv):
        if argv[i] == "--group":
            name, _, dirs = argv[i + 1].partition("=")
            groups.append((name, dirs.split("|")))
            i += 2
        else:
            expanded.append(argv[i])
            i += 1
    runs = [paired.Predictions.pooled(n, [paired.Predictions.read(Path(d)) for d in ds]) for n, ds in groups]
    names = [r.name for r in runs]
    ap = argparse.ArgumentParser()
    ap.add_argument("--pair", nargs=2, action="append", default=[])
    ap.add_argument("--boot", type=int)
    ap.add_argument("--out", type=Path)
    o = ap.parse_args(expanded)
    res = paired.compare(runs, [(names.index(x), names.index(y)) for x, y in o.pair], o.boot, 0)
    text = paired.markdown(res)
    print(text)
    o.out.with_suffix(".md").write_text(text)
    o.out.with_suffix(".json").write_text(json.dumps(res, indent=2))


if __name__ == "__main__":
    raise SystemExit(main())
