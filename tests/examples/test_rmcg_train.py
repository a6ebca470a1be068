"""RMCG training CLI: smoke runs, outputs, exact resume, atomic checkpoints, torchrun DDP."""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "examples"))

from rmcg import train as T  # noqa: E402

TRAIN = ROOT / "examples" / "rmcg" / "train.py"
# the embedded tissue sample (always present): real patches with a patient-level split
IDC = ROOT / "examples" / "rmcg" / "data"
needs_idc = pytest.mark.skipif(not (IDC / "MANIFEST.csv").is_file(), reason="embedded tissue sample missing")

# tiny but complete: real patches, every stage of RMCG (MCA, MI graph, attention GCN, attention pooling)
TINY = [
    "--image-size",
    "32",
    "--width",
    "16",
    "--hidden",
    "16",
    "--heads",
    "2",
    "--mi-topk",
    "4",
    "--batch-size",
    "8",
    "--no-progress",
    "--heatmaps",
    "2",
]


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH", "")]))
    env.setdefault("OMP_NUM_THREADS", "1")
    return env


@needs_idc
def test_cli_smoke_writes_metrics_and_pictures(tmp_path: Path) -> None:
    out = tmp_path / "run"
    cmd = [
        sys.executable,
        str(TRAIN),
        "--data",
        str(IDC),
        "--model",
        "rmcg",
        "--epochs",
        "1",
        "--limit",
        "16",
        "--out",
        str(out),
        *TINY,
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=_env(), timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "rmcg test" in proc.stdout and "accuracy" in proc.stdout
    m = json.loads((out / "metrics.json").read_text())
    assert m["classes"] == ["non-IDC", "IDC"] and m["world_size"] == 1
    for split in ("val", "test"):
        r = m[split]
        assert r["num_samples"] == 16
        assert set(r) >= {"accuracy", "precision_macro", "recall_macro", "f1_macro", "per_class", "confusion_matrix"}
        assert sum(map(sum, r["confusion_matrix"])) == 16
        assert set(r["per_class"]) == {"non-IDC", "IDC"}
    assert len(m["history"]) == 1 and m["history"][0]["train_images_per_sec"] > 0
    for name in ("confusion_matrix.png", "heatmaps.png", "checkpoint.pt", "best.pt"):
        data = (out / name).read_bytes()
        assert len(data) > 100, name
        if name.endswith(".png"):
            assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert not list(out.glob(".*tmp*"))  # no leftovers of the atomic writes


def test_default_digits_run_in_process(tmp_path: Path, capsys) -> None:
    pytest.importorskip("sklearn")
    report = T.main(
        [
            "--data",
            "digits",
            "--model",
            "resnet18-gcn",
            "--epochs",
            "1",
            "--limit",
            "24",
            "--out",
            str(tmp_path),
            *TINY,
            "--image-size",
            "16",
        ]
    )
    assert report["classes"] == [str(i) for i in range(10)]
    assert report["test"]["num_samples"] == 24
    assert "default data: scikit-learn handwritten digits" in capsys.readouterr().out
    assert (tmp_path / "heatmaps.png").is_file()  # baselines: node feature norms


def _final_state(out: Path) -> dict:
    return torch.load(out / "checkpoint.pt", weights_only=False)


@needs_idc
def test_resume_reproduces_uninterrupted_run(tmp_path: Path) -> None:
    args = [
        "--data",
        str(IDC),
        "--model",
        "rmcg",
        "--epochs",
        "3",
        "--limit",
        "16",
        "--dropout",
        "0.2",
        *TINY,
        "--heatmaps",
        "0",
    ]
    a, b = tmp_path / "a", tmp_path / "b"
    T.main([*args, "--out", str(a)])
    stopped = T.main([*args, "--out", str(b), "--stop-after", "1"])
    assert stopped["stopped_after"] == 1 and not (b / "metrics.json").exists()
    assert _final_state(b)["epoch"] == 1
    T.main([*args, "--out", str(b), "--resume"])
    sa, sb = _final_state(a), _final_state(b)
    assert sa["epoch"] == sb["epoch"] == 3
    for k in sa["model"]:
        torch.testing.assert_close(sa["model"][k], sb["model"][k], rtol=1e-6, atol=1e-7, msg=k)
    for ha, hb in zip(sa["history"], sb["history"], strict=True):
        assert ha["train_loss"] == pytest.approx(hb["train_loss"], rel=1e-6)
        assert ha["val_accuracy"] == hb["val_accuracy"]
    ma, mb = json.loads((a / "metrics.json").read_text()), json.loads((b / "metrics.json").read_text())
    assert ma["test"]["confusion_matrix"] == mb["test"]["confusion_matrix"]
    # a checkpoint of another model is refused with a clear message
    with pytest.raises(ValueError, match="Expected a checkpoint of model 'resnet18-gcn'"):
        T.main([*args, "--out", str(b), "--resume", "--model", "resnet18-gcn"])


def test_atomic_save_never_leaves_a_broken_checkpoint(tmp_path: Path) -> None:
    path = tmp_path / "checkpoint.pt"
    T.atomic_save({"epoch": 1, "w": torch.ones(3)}, path)
    with pytest.raises((AttributeError, TypeError, pickle.PicklingError)):
        T.atomic_save({"epoch": 2, "bad": lambda: None}, path)  # unpicklable: fails mid-write
    assert torch.load(path, weights_only=False)["epoch"] == 1
    assert [p.name for p in tmp_path.iterdir()] == ["checkpoint.pt"]


def test_cli_rejects_bad_arguments(tmp_path: Path) -> None:
    with pytest.raises(SystemExit):
        T.main(["--model", "vgg"])
    with pytest.raises(ValueError, match="Expected 'data' to be a directory"):
        T.main(["--data", str(tmp_path / "missing"), "--out", str(tmp_path / "o")])
    with pytest.raises(ValueError, match="--epochs >= 1"):
        T.main(["--epochs", "0", "--out", str(tmp_path / "o")])


@pytest.mark.slow
@needs_idc
def test_torchrun_two_process_smoke(tmp_path: Path) -> None:
    out = tmp_path / "ddp"
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node",
        "2",
        str(TRAIN),
        "--data",
        str(IDC),
        "--model",
        "rmcg",
        "--epochs",
        "2",
        "--limit",
        "18",
        "--out",
        str(out),
        *TINY,
        "--heatmaps",
        "0",
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=_env(), timeout=600)
    assert proc.returncode == 0, (proc.stdout[-2000:], proc.stderr[-4000:])
    m = json.loads((out / "metrics.json").read_text())
    assert m["world_size"] == 2
    # predictions of both ranks gathered: every val/test image counted once (no sampler padding)
    assert m["val"]["num_samples"] == 18 and m["test"]["num_samples"] == 18
    assert proc.stdout.count("rmcg test") == 1  # only rank 0 reports and writes
    ckpt = torch.load(out / "checkpoint.pt", weights_only=False)
    assert ckpt["epoch"] == 2 and len(ckpt["rng"]) == 2  # per-rank RNG states for an exact resume


def test_compare_aggregates_seeds_into_a_table(tmp_path: Path) -> None:
    from rmcg import compare as C

    for model, accs in (("rmcg", (0.8, 0.9)), ("resnet18", (0.7, 0.7))):
        for seed, acc in enumerate(accs):
            run = tmp_path / model / f"seed{seed}"
            run.mkdir(parents=True)
            metrics = {"accuracy": acc, "precision_macro": acc, "recall_macro": acc, "f1_macro": acc}
            (run / "metrics.json").write_text(
                json.dumps(
                    {"test": metrics, "val": metrics, "train_images_per_sec": 10.0 + seed, "num_parameters": 2_000_000}
                )
            )
    summary = C.aggregate(tmp_path, ["rmcg", "resnet18", "gcnii"], [0, 1])
    assert summary["rmcg"]["accuracy"]["mean"] == pytest.approx(85.0)
    assert summary["rmcg"]["accuracy"]["std"] == pytest.approx(7.0710678)  # sample std of 80, 90
    assert summary["resnet18"]["accuracy"]["std"] == 0.0 and summary["gcnii"]["runs"] == 0
    table = C.markdown_table(summary, "demo")
    assert "| RMCG | 85.00 ± 7.07 | 85.00 ± 7.07 | 85.00 ± 7.07 | 85.00 ± 7.07 | 2 | 2.00 | 82.87 |" in table
    assert "| GCNII | n/a | n/a | n/a | n/a | 0 | n/a | 81.59 |" in table


def test_compare_speed_measurement() -> None:
    from rmcg import compare as C

    res = C.measure_speed(
        ["rmcg", "resnet18"],
        image_size=16,
        batch_size=4,
        repeats=1,
        steps=1,
        width=8,
        hidden=8,
        heads=2,
        attention_heads=2,
        mi_topk=2,
    )
    assert set(res) == {"rmcg", "resnet18"} and all(r["median"] > 0 for r in res.values())
