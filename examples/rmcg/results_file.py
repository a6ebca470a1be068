"""Collect protocol C's run metrics into ``examples/rmcg/results/idc_large.json``.

Reads every ``metrics.json`` copy that ``protocol_c.sh`` and ``protocol_c_extra.sh`` leave in
``examples/rmcg/results/protocol_c/`` (``<model>-s<seed>.json``, ``<model>-lr1e-3-s<seed>.json``,
``ablations/abl-<name>-s<seed>.json``) and writes one file in the schema of issue 16::

    {"protocol": {...}, "runs": [{"model": "rmcg", "ablation": null, "seed": 0, "lr": 0.002,
      "selected": true, "command": "python examples/rmcg/train.py ...", "val": {...},
      "test": {...}, "train_seconds": ..., "train_images_per_sec": ...}, ...]}

Each run's ``command`` is rebuilt from the arguments stored in its ``metrics.json`` (every option
that differs from ``train.py``'s default, in the parser's order), with the data path relative to a
checkout (``../shared/data/breast_idc_patches_large``) and ``--out runs/protocol_c/<run>``, so it
reproduces the run from a clean checkout. The learning rate is chosen per model on **validation**
only: seed 0 at each grid point, the higher validation balanced accuracy wins (ties: the first grid
point); the chosen configuration's runs are marked ``"selected": true``.

    python examples/rmcg/results_file.py          # rewrite the file
    python examples/rmcg/results_file.py --check  # exit 1 when the file is out of date
"""

from __future__ import annotations

import argparse
import json
import re
import shlex
import sys
from pathlib import Path
from typing import Any

_HERE = Path(__file__).resolve().parent
if str(_HERE.parent) not in sys.path:
    sys.path.insert(0, str(_HERE.parent))

RESULTS = _HERE / "results" / "protocol_c"
OUT_FILE = _HERE / "results" / "idc_large.json"
DATA = "../shared/data/breast_idc_patches_large"
MODELS = ("rmcg", "resnet18", "alexnet", "resnet18-gcn", "ecc", "resnet18-gat", "gcnii")
LR_GRID = (2e-3, 1e-3)
SEEDS = (0, 1, 2)
#: ablation name -> (what it changes, the train.py flags that make it)
ABLATIONS: dict[str, tuple[str, str]] = {
    "no-mca": ("without multi-channel attention", "--no-mca"),
    "grid": ("8-neighbour pixel grid instead of the MI adjacency", "--graph grid"),
    "knn": ("feature-space kNN graph (k = 8) instead of the MI adjacency", "--graph knn"),
    "gcn-conv": ("plain GCN instead of the attention GCN", "--rmcg-conv gcn"),
    "mean-pool": ("mean pooling instead of attention pooling", "--pool mean"),
    "mi-bins16": ("16 MI histogram bins instead of 8", "--mi-bins 16"),
    "mi-topk16": ("top-16 MI neighbours per node instead of top-8", "--mi-topk 16"),
    "layer3": ("graph on ResNet18 layer3 (4x4 nodes) instead of layer2 (7x7 nodes)", "--feature-level layer3"),
}
#: stored arguments that do not change what a run computes (paths, housekeeping)
HOUSEKEEPING = ("data", "out", "overwrite", "resume", "fallback_best")
#: options every command spells out, in this order (the protocol's flags), even at their default
ALWAYS = ("model", "seed", "lr", "epochs", "train_limit", "sampler", "width", "image_size", "batch_size", "threads")
SCALARS = ("accuracy", "balanced_accuracy", "precision_macro", "recall_macro", "f1_macro", "auroc", "loss")

PROTOCOL: dict[str, Any] = {
    "name": "C",
    "data": DATA,
    "splits": "MANIFEST.csv patient-level split: train 11,010 patches (117 patients), val 3,136 (25), "
    "test 2,500 (25); 27% IDC",
    "train_subset": "seeded 4,000-patch subset of the training split (--train-limit 4000), the same for every "
    "model at a given seed",
    "class_balance": "balanced sampler (--sampler balanced): classes drawn equally often",
    "epochs": 6,
    "batch_size": 32,
    "image_size": 50,
    "backbone_width": 32,
    "optimizer": "AdamW, cosine schedule, loss = cross-entropy + 1e-3/2 * ||W_last||^2",
    "augmentation": "random 0/90/180/270 degree rotations and translations up to 10% (reflect padding)",
    "pretrained": False,
    "threads": 1,
    "evaluated_weights": "the epoch with the best validation balanced accuracy",
    "tuning": {
        "grid": {"lr": list(LR_GRID)},
        "budget": "the same for every model: one seed-0 run per grid point (2 runs)",
        "criterion": "validation balanced accuracy of the seed-0 run; the test split is never used for choices",
        "then": "3 seeds (0, 1, 2) of the chosen learning rate",
    },
    "ablations": {k: {"change": v[0], "flags": v[1]} for k, v in ABLATIONS.items()},
    "ablation_base": "rmcg at lr 2e-3 (protocol C's default), everything else unchanged",
    "statistics": "examples/rmcg/paired.py: seeds pooled per model (class probabilities averaged per image), "
    "95% intervals from 2,000 bootstrap resamples of the test patients, paired bootstrap differences and "
    "McNemar's exact test",
    "scripts": ["examples/rmcg/protocol_c.sh", "examples/rmcg/protocol_c_extra.sh"],
}

_NAME = re.compile(r"^(?:abl-(?P<abl>[a-z0-9-]+?)|(?P<model>[a-z0-9-]+?))(?:-lr(?P<lr>[0-9.e-]+))?-s(?P<seed>\d+)$")


def _parser() -> argparse.ArgumentParser:
    from rmcg.train import build_parser

    return build_parser()


def _fmt(value: Any) -> str:
    return repr(value) if isinstance(value, float) else str(value)


def command(args: dict[str, Any], run: str) -> str:
    """The train.py command line that reproduces a run from its stored arguments."""
    actions = {a.dest: a for a in _parser()._actions if a.dest != "help"}
    unknown = sorted(set(args) - set(actions))
    if unknown:
        raise SystemExit(f"error: run {run}: stored arguments {unknown} are not train.py options any more")
    parts = ["python", "examples/rmcg/train.py", "--data", DATA]
    order = [d for d in ALWAYS if d in args] + [d for d in actions if d not in ALWAYS]
    for dest in order:
        action = actions[dest]
        if dest in HOUSEKEEPING or dest not in args:
            continue
        value, default = args[dest], action.default
        if value == default and (dest not in ALWAYS or value is None):
            continue
        flag = max(action.option_strings, key=len)
        if isinstance(action, argparse.BooleanOptionalAction):
            flag = action.option_strings[0]
            parts.append(flag if value else "--no-" + flag[2:])
        elif action.nargs == 0:  # store_true
            parts.append(flag)
        else:
            parts += [flag, _fmt(value)]
    parts += ["--out", f"runs/protocol_c/{run}"]
    return shlex.join(parts)


def parse_command(cmd: str) -> dict[str, Any]:
    """The arguments a recorded command gives train.py (for the consistency test)."""
    argv = shlex.split(cmd)
    if argv[:2] != ["python", "examples/rmcg/train.py"]:
        raise ValueError(f"Expected 'python examples/rmcg/train.py ...' (got {cmd!r})")
    return vars(_parser().parse_args(argv[2:]))


def _metrics(split: dict[str, Any]) -> dict[str, Any]:
    out = {k: split[k] for k in SCALARS if k in split}
    out["num_samples"] = split.get("num_samples")
    out["confusion_matrix"] = split.get("confusion_matrix")
    return out


def load_runs(results: Path = RESULTS) -> list[dict[str, Any]]:
    """Every run's record, in a fixed order (model, ablation, lr, seed)."""
    runs = []
    for path in sorted(results.glob("*.json")) + sorted((results / "ablations").glob("abl-*.json")):
        m = _NAME.match(path.stem)
        if m is None or "args" not in (d := json.loads(path.read_text())):
            continue  # paired.json and other summaries
        args = d["args"]
        abl = m["abl"]
        if abl is not None and abl not in ABLATIONS:
            raise SystemExit(f"error: {path}: unknown ablation {abl!r} (expected one of {sorted(ABLATIONS)})")
        if int(m["seed"]) != args["seed"] or (m["model"] or "rmcg") != args["model"]:
            raise SystemExit(f"error: {path}: the file name does not match its stored arguments")
        runs.append(
            {
                "run": path.stem,
                "model": args["model"],
                "ablation": abl,
                "seed": args["seed"],
                "lr": args["lr"],
                "selected": None,
                "command": command(args, path.stem),
                "val": _metrics(d["val"]),
                "test": _metrics(d["test"]),
                "evaluated_weights": d.get("evaluated_weights"),
                "train_seconds": round(sum(h["train_seconds"] for h in d["history"]), 1),
                "train_images_per_sec": d.get("train_images_per_sec"),
                "num_parameters": d.get("num_parameters"),
                "result_file": str(path.relative_to(_HERE.parent.parent)),
            }
        )
    order = {m: i for i, m in enumerate(MODELS)}
    abl_order = {a: i for i, a in enumerate(ABLATIONS)}
    runs.sort(key=lambda r: (r["ablation"] is not None, abl_order.get(r["ablation"], -1), order.get(r["model"], 99),
                             -r["lr"], r["seed"]))
    return runs


def choose(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Per model, the learning rate chosen on validation, and the seed-0 evidence behind it."""
    chosen: dict[str, Any] = {}
    for model in MODELS:
        seed0 = {r["lr"]: r for r in runs if r["model"] == model and r["ablation"] is None and r["seed"] == 0}
        grid = [lr for lr in LR_GRID if lr in seed0]
        if not grid:
            continue
        best = max(grid, key=lambda lr: (seed0[lr]["val"]["balanced_accuracy"], -LR_GRID.index(lr)))
        chosen[model] = {
            "lr": best,
            "val_balanced_accuracy_seed0": {str(lr): seed0[lr]["val"]["balanced_accuracy"] for lr in grid},
            "complete": len(grid) == len(LR_GRID),
            "seeds": sorted(r["seed"] for r in runs if r["model"] == model and r["ablation"] is None and r["lr"] == best),
        }
        chosen[model]["pending_seeds"] = [s for s in SEEDS if s not in chosen[model]["seeds"]]
    for r in runs:
        if r["ablation"] is None:
            r["selected"] = chosen.get(r["model"], {}).get("lr") == r["lr"]
    return chosen


def build(results: Path = RESULTS) -> dict[str, Any]:
    runs = load_runs(results)
    chosen = choose(runs)
    protocol = json.loads(json.dumps(PROTOCOL))
    protocol["tuning"]["chosen"] = chosen
    return {"protocol": protocol, "runs": runs}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", type=Path, default=OUT_FILE)
    ap.add_argument("--check", action="store_true", help="only check that --out is up to date")
    a = ap.parse_args(argv)
    text = json.dumps(build(), indent=1) + "\n"
    if a.check:
        ok = a.out.is_file() and a.out.read_text() == text
        print(f"{a.out}: {'up to date' if ok else 'OUT OF DATE'}")
        return 0 if ok else 1
    a.out.write_text(text)
    print(f"wrote {a.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
