"""examples/rmcg/paired.py: patient-bootstrap intervals, paired differences and McNemar's test."""

from __future__ import annotations

import csv
import math
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "examples" / "rmcg"))

import paired  # noqa: E402


def _write(run: Path, labels: list[int], probs1: list[float], patients: list[str]) -> Path:
    run.mkdir(parents=True)
    with open(run / "predictions_test.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["path", "patient_id", "label", "pred", "prob_a", "prob_b"])
        for i, (y, p, pat) in enumerate(zip(labels, probs1, patients, strict=True)):
            w.writerow([f"img{i:03d}.png", pat, y, int(p > 0.5), 1 - p, p])
    return run


def test_identical_runs_differ_by_zero_and_mcnemar_is_one(tmp_path: Path) -> None:
    g = torch.Generator().manual_seed(0)
    labels = torch.randint(0, 2, (60,), generator=g).tolist()
    probs = torch.rand(60, generator=g).tolist()
    patients = [f"p{i % 12}" for i in range(60)]
    a = _write(tmp_path / "a", labels, probs, patients)
    b = _write(tmp_path / "b", labels, probs, patients)
    res = paired.main([str(a), str(b), "--boot", "50", "--out", str(tmp_path / "cmp")])
    assert res["patients"] == 12 and res["images"] == 60
    d = res["paired"][0]
    assert d["mcnemar"] == {"only_a": 0, "only_b": 0, "p": 1.0}
    for m in paired.METRICS:
        assert d["diff"][m]["value"] == 0.0 and d["diff"][m]["ci95"] == (0.0, 0.0)
        lo, hi = res["runs"][0][m]["ci95"]
        assert lo <= res["runs"][0][m]["value"] <= hi
    assert (tmp_path / "cmp.md").read_text().startswith("Test images 60 from 12 patients")


def test_a_better_run_has_a_positive_difference_and_a_small_p(tmp_path: Path) -> None:
    labels = [i % 2 for i in range(80)]
    patients = [f"p{i % 20}" for i in range(80)]
    good = [0.9 if y else 0.1 for y in labels]
    bad = [0.9 if (y if i % 3 else 1 - y) else 0.1 for i, y in enumerate(labels)]  # a third wrong
    a, b = _write(tmp_path / "good", labels, good, patients), _write(tmp_path / "bad", labels, bad, patients)
    res = paired.main([str(a), str(b), "--boot", "200", "--pair", "0", "1"])
    d = res["paired"][0]
    n_wrong = sum(1 for i in range(80) if i % 3 == 0)
    assert d["mcnemar"]["only_a"] == n_wrong and d["mcnemar"]["only_b"] == 0
    assert d["mcnemar"]["p"] == pytest.approx(2 * 0.5**n_wrong)
    assert d["diff"]["accuracy"]["value"] == pytest.approx(n_wrong / 80)
    assert d["diff"]["accuracy"]["ci95"][0] > 0
    assert not math.isnan(res["runs"][0]["auroc"]["value"])


def test_runs_on_different_images_are_refused(tmp_path: Path) -> None:
    a = _write(tmp_path / "a", [0, 1], [0.2, 0.8], ["p0", "p1"])
    b = _write(tmp_path / "b", [0, 1, 1], [0.2, 0.8, 0.7], ["p0", "p1", "p2"])
    with pytest.raises(SystemExit, match="different test images"):
        paired.main([str(a), str(b)])


def test_groups_pool_seeds_by_mean_probability(tmp_path: Path) -> None:
    labels, patients = [0, 1, 1, 0], ["p0", "p0", "p1", "p1"]
    _write(tmp_path / "m-s0", labels, [0.4, 0.9, 0.2, 0.1], patients)
    _write(tmp_path / "m-s1", labels, [0.2, 0.7, 0.9, 0.3], patients)
    res = paired.main(["--group", f"m={tmp_path}/m-s*", "--boot", "10"])
    assert res["runs"][0]["name"] == "m" and res["runs"][0]["accuracy"]["value"] == 1.0
