"""examples/rmcg/results/idc_large.json and docs/rmcg_results.md are in sync with the runs behind them.

- the results file is what ``results_file.py`` builds from the committed ``metrics.json`` copies;
- the generated part of the page is what ``results_page.py`` renders from it (no hand edits);
- every run's ``command`` parses with ``train.py``'s own parser and gives exactly the arguments the
  run stored (paths and housekeeping flags aside), so it reproduces the run;
- the schema of issue 16 (model names as the CLI spells them, ablation null or a known name).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "examples" / "rmcg"))
sys.path.insert(0, str(ROOT / "examples"))

import results_file  # noqa: E402
import results_page  # noqa: E402

RESULTS = ROOT / "examples" / "rmcg" / "results" / "idc_large.json"
pytestmark = pytest.mark.skipif(not RESULTS.is_file(), reason="no idc_large.json in this checkout")


@pytest.fixture(scope="module")
def results() -> dict:
    return json.loads(RESULTS.read_text())


def test_results_file_is_regenerated_identically(results: dict) -> None:
    assert results_file.build() == results, "run `python examples/rmcg/results_file.py`"


def test_results_page_is_regenerated_identically() -> None:
    page = results_page.PAGE.read_text()
    regenerated = results_page.splice(page, results_page.render(results_page.Data(), results_page.HEATMAPS.is_file(),
                                                                draw=False))
    assert regenerated == page, "run `python examples/rmcg/results_page.py`"
    assert results_page.PLOT.is_file(), "the accuracy plot the page shows is missing"
    for png in ("rmcg_idc_large_accuracy.png", "rmcg_idc_large_heatmaps.png"):
        if f"_static/figures/{png}" in page:
            assert (results_page.FIGURES / png).is_file()


def test_schema(results: dict) -> None:
    models = set(results_file.MODELS)
    assert set(results) == {"protocol", "runs"}
    assert results["protocol"]["tuning"]["criterion"].startswith("validation")
    seen = set()
    for r in results["runs"]:
        assert r["model"] in models
        assert r["ablation"] is None or r["ablation"] in results_file.ABLATIONS
        assert isinstance(r["seed"], int) and r["train_seconds"] > 0
        for split in ("val", "test"):
            for key in ("accuracy", "balanced_accuracy", "f1_macro", "auroc"):
                assert 0.0 <= r[split][key] <= 1.0
        assert r["test"]["num_samples"] == 2500 and r["val"]["num_samples"] == 3136
        key = (r["model"], r["ablation"], r["lr"], r["seed"])
        assert key not in seen, f"two runs for {key}"
        seen.add(key)
    # every model has its chosen configuration with 3 seeds, or the missing seeds are declared pending
    for model in models:
        chosen = [r["seed"] for r in results["runs"] if r["model"] == model and r["selected"]]
        info = results["protocol"]["tuning"]["chosen"][model]
        assert sorted(chosen + info["pending_seeds"]) == [0, 1, 2], model
        assert info["seeds"] == sorted(chosen)


def test_every_command_reproduces_its_stored_arguments(results: dict) -> None:
    defaults = vars(results_file._parser().parse_args([]))
    for r in results["runs"]:
        stored = json.loads((ROOT / r["result_file"]).read_text())["args"]
        parsed = results_file.parse_command(r["command"])
        assert parsed["data"] == results_file.DATA
        assert parsed["out"] == f"runs/protocol_c/{r['run']}"
        differ = {k: (parsed.get(k), v) for k, v in stored.items()
                  if k not in results_file.HOUSEKEEPING and parsed.get(k) != v}
        assert not differ, f"{r['run']}: command {r['command']!r} differs from the stored args {differ}"
        # options train.py gained after the run (the ablation switches) stay at their default, which is
        # what the run did
        newer = {k: parsed[k] for k in set(parsed) - set(stored) - set(results_file.HOUSEKEEPING)}
        assert newer == {k: defaults[k] for k in newer}, f"{r['run']}: {newer}"


def test_command_rebuild_round_trips_non_defaults() -> None:
    args = vars(results_file._parser().parse_args([]))
    args.update(model="ecc", seed=2, lr=1e-3, no_mca=True, rotate=False, graph="knn", mi_topk=16, data="/abs/x")
    parsed = results_file.parse_command(results_file.command(args, "x-s2"))
    for k, v in args.items():
        if k not in results_file.HOUSEKEEPING:
            assert parsed[k] == v, k
    with pytest.raises(SystemExit, match="not train.py options"):
        results_file.command({**args, "no_such_option": 1}, "x")
    with pytest.raises(ValueError, match="Expected"):
        results_file.parse_command("python other.py --seed 1")


def test_protocol_c_paired_pools_explicit_run_directories(tmp_path: Path) -> None:
    import csv

    import protocol_c_paired
    import torch

    g = torch.Generator().manual_seed(0)
    labels = torch.randint(0, 2, (40,), generator=g).tolist()
    dirs = []
    for k in range(3):
        d = tmp_path / f"r{k}"
        d.mkdir()
        probs = torch.rand(40, generator=g).tolist()
        with open(d / "predictions_test.csv", "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["path", "patient_id", "label", "pred", "prob_a", "prob_b"])
            for i, (y, p) in enumerate(zip(labels, probs, strict=True)):
                w.writerow([f"img{i:03d}.png", f"p{i % 8}", y, int(p > 0.5), 1 - p, p])
        dirs.append(str(d))
    out = tmp_path / "cmp"
    protocol_c_paired._paired(["--group", f"a={dirs[0]}|{dirs[1]}", "--group", f"b={dirs[2]}", "--pair", "a", "b",
                               "--boot", "20", "--out", str(out)])
    res = json.loads(out.with_suffix(".json").read_text())
    assert [r["name"] for r in res["runs"]] == ["a", "b"] and res["patients"] == 8
    assert (res["paired"][0]["a"], res["paired"][0]["b"]) == ("a", "b")
    # the pooled group averages the two runs' probabilities
    two = [protocol_c_paired.paired.Predictions.read(Path(d)) for d in dirs[:2]]
    pooled = protocol_c_paired.paired.scores(two[0].labels, (two[0].probs + two[1].probs) / 2)
    assert abs(res["runs"][0]["accuracy"]["value"] - pooled["accuracy"]) < 1e-12
