"""Fault injection against the RMCG training CLI (issue 15): every case is refused with exit status 2,
a message naming the problem and no traceback, or handled correctly. Tiny images, tiny models."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "examples"))

from rmcg import data as D  # noqa: E402
from rmcg import train as T  # noqa: E402
from rmcg.metrics import auroc, classification_metrics  # noqa: E402

FAST = ["--model", "resnet18", "--width", "4", "--image-size", "16", "--batch-size", "4", "--epochs", "1",
        "--heatmaps", "0", "--no-progress", "--threads", "1", "--no-augment"]
FIELDS = ["path", "label", "label_name", "patient_id", "split"]


def _png(path: Path, size: int = 16) -> Path:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    g = torch.Generator().manual_seed(zlib.crc32(str(path).encode()))
    Image.fromarray(torch.randint(0, 256, (size, size, 3), generator=g, dtype=torch.uint8).numpy()).save(path)
    return path


def _rows(root: Path) -> list[dict]:
    """20 images, 5 patients (p0-p2 train, p3 val, p4 test), 2 per patient and class."""
    rows = []
    for p, split in enumerate(("train", "train", "train", "val", "test")):
        for label, name in ((0, "neg"), (1, "pos")):
            for i in range(2):
                rel = f"{label}/p{p}_{i}.png"
                _png(root / rel)
                rows.append({"path": rel, "label": str(label), "label_name": name, "patient_id": f"p{p}",
                             "split": split})
    return rows


def _manifest(root: Path, rows: list[dict], fields: list[str] = FIELDS, encoding: str = "utf-8") -> Path:
    with open(root / "MANIFEST.csv", "w", newline="", encoding=encoding) as fh:
        w = csv.DictWriter(fh, fieldnames=fields, extrasaction="ignore")
        w.writeheader()
        w.writerows(rows)
    return root


@pytest.fixture
def ds(tmp_path: Path) -> tuple[Path, list[dict]]:
    root = tmp_path / "ds"
    rows = _rows(root)
    _manifest(root, rows)
    return root, rows


def _cli(capsys, *argv: str) -> tuple[int, str, str]:
    rc = T.cli([str(a) for a in argv])
    cap = capsys.readouterr()
    return rc, cap.out, cap.err


def _refused(capsys, match: str, *argv: str) -> str:
    rc, out, err = _cli(capsys, *argv)
    assert rc == 2, (out[-2000:], err[-2000:])
    assert "Traceback" not in err and err.startswith("error: ")
    assert match.lower() in err.lower(), err
    assert "epoch 1/" not in out  # refused before any training
    return err


def _ok(capsys, *argv: str) -> str:
    rc, out, err = _cli(capsys, *argv)
    assert rc == 0, (out[-2000:], err[-2000:])
    return out


# ---------------------------------------------------------------------------------------------- labels
@pytest.mark.parametrize(
    "change, match",
    [
        ({"label": "2"}, "one label per label_name"),  # a typo, label_name still says 'pos'
        ({"label": "pos"}, "text labels"),
        ({"label": ""}, "empty labels"),
        ({"label_name": "neg"}, "one label_name per label"),  # label 1 named 'neg'
        ({"label_name": ""}, "label_name in every row"),
        ({"split": ""}, "empty split cells"),
        ({"split": "holdout"}, "split in"),
        ({"path": "1/missing.png"}, "missing"),
    ],
)
def test_manifest_row_faults_are_refused(ds, tmp_path, capsys, change, match) -> None:
    root, rows = ds
    rows[3].update(change)  # a train row of class 1
    _manifest(root, rows)
    err = _refused(capsys, match, "--data", root, "--out", tmp_path / "o", *FAST)
    assert "line 5" in err or "missing" in match or "split in" in match
    assert not (tmp_path / "o" / "checkpoint.pt").exists()


def test_label_typo_without_label_names(ds, tmp_path, capsys) -> None:
    root, rows = ds
    rows[3]["label"] = "2"
    _manifest(root, rows, ["path", "label", "patient_id", "split"])
    _refused(capsys, "typo", "--data", root, "--out", tmp_path / "o", *FAST)
    # declared classes: a label outside them is named
    _refused(capsys, "Expected labels in 0..1", "--data", root, "--classes", "neg,pos", "--out", tmp_path / "o",
             *FAST)


def test_declared_classes_must_match_label_names(ds, tmp_path, capsys) -> None:
    root, _ = ds
    _refused(capsys, "Expected label_name 'tumour'", "--data", root, "--classes", "neg,tumour", "--out",
             tmp_path / "o", *FAST)
    _ok(capsys, "--data", root, "--classes", "neg,pos", "--out", tmp_path / "ok", *FAST)


def test_duplicates_and_leakage(ds, tmp_path, capsys) -> None:
    root, rows = ds
    test_row = next(r for r in rows if r["split"] == "test")
    _manifest(root, [*rows, {**test_row, "split": "train", "patient_id": "p0"}])  # test image relisted as train
    _refused(capsys, "listed once", "--data", root, "--out", tmp_path / "o", *FAST)
    (root / "1" / "copy.png").write_bytes((root / test_row["path"]).read_bytes())  # same pixels, new name
    _manifest(root, [*rows, {**test_row, "path": "1/copy.png", "split": "train", "patient_id": "p0"}])
    _refused(capsys, "identical image content", "--data", root, "--out", tmp_path / "o", *FAST)
    leak = [dict(r) for r in rows]
    leak[0]["patient_id"] = "p4"  # a test patient also in train
    _manifest(root, leak)
    err = _refused(capsys, "patient in two splits", "--data", root, "--out", tmp_path / "o", *FAST)
    assert "p4" in err and "--split-by image" in err
    out = _ok(capsys, "--data", root, "--split-by", "image", "--out", tmp_path / "img", *FAST)  # explicit
    assert "rmcg" not in out and "resnet18 test" in out


def test_stray_file_does_not_switch_to_image_split(tmp_path, capsys) -> None:
    root = tmp_path / "folders"
    for c in (0, 1):
        for p in (8950, 9023, 10253, 10254, 10255):
            for i in range(2):
                _png(root / f"{c}_cls" / f"{p}_idx5_x{i}01_y51_class{c}.png")
    _png(root / "1_cls" / "scan_0001.png")  # no patient id in its name
    err = _refused(capsys, "patient id for every image", "--data", root, "--out", tmp_path / "o", *FAST)
    assert "scan_0001.png" in err and "--split-by image" in err
    _ok(capsys, "--data", root, "--split-by", "image", "--out", tmp_path / "img", *FAST)
    (root / "1_cls" / "scan_0001.png").unlink()
    _ok(capsys, "--data", root, "--out", tmp_path / "pat", *FAST)
    table = list(csv.DictReader(open(tmp_path / "pat" / "dataset.csv")))
    splits_of: dict[str, set] = {}
    for r in table:
        splits_of.setdefault(r["patient_id"], set()).add(r["split"])
    assert all(len(v) == 1 for v in splits_of.values()) and len(splits_of) == 5


def test_manifest_encodings(ds, tmp_path, capsys) -> None:
    root, rows = ds
    _manifest(root, rows, encoding="utf-8-sig")  # BOM: accepted
    assert (root / "MANIFEST.csv").read_bytes()[:3] == b"\xef\xbb\xbf"
    _ok(capsys, "--data", root, "--out", tmp_path / "bom", *FAST)
    (root / "MANIFEST.csv").write_bytes(b"\x89PNG\r\n\x1a\n\x00\xff\xfe binary")
    err = _refused(capsys, "UTF-8", "--data", root, "--out", tmp_path / "o", *FAST)
    assert str(root / "MANIFEST.csv") in err


def test_every_loader_gives_one_table(tmp_path) -> None:
    for g in (1, 2):
        for p in range(2):
            _png(tmp_path / "dbx" / f"BC_IDC_Grade_{g}" / f"{g}{p}" / "20X" / f"{p}.png")
    for name in ("SOB_B_A-14-22549AB-40-001.png", "SOB_M_DC-14-2523-40-001.png"):
        _png(tmp_path / "bh" / name)
    root = tmp_path / "mf"
    _manifest(root, _rows(root))
    for folder in ("dbx", "bh", "mf"):
        index = D.discover(tmp_path / folder)
        table = index.table()
        assert table and set(table[0]) == {"path", "label", "class_name", "patient_id", "split"}
        assert all(r["class_name"] == index.classes[int(r["label"])] for r in table)
        assert all(r["patient_id"] for r in table)
    for i in range(10):
        _png(tmp_path / "bh" / f"SOB_B_F-14-9133-40-{i:03d}.png")
    _png(tmp_path / "bh" / "notes_scan.png")  # a stray file in a BreakHis tree
    with pytest.raises(D.DataError, match="BreakHis file names"):
        D.discover(tmp_path / "bh")


# ---------------------------------------------------------------------------------------------- outputs
def test_out_is_never_overwritten(ds, tmp_path, capsys) -> None:
    root, _ = ds
    out = tmp_path / "run"
    _ok(capsys, "--data", root, "--out", out, *FAST)
    first = (out / "checkpoint.pt").read_bytes()
    _refused(capsys, "holds a run", "--data", root, "--out", out, *FAST)
    assert (out / "checkpoint.pt").read_bytes() == first
    stale = out / "heatmaps.png"
    stale.write_bytes(b"old")
    out_text = _ok(capsys, "--data", root, "--out", out, "--overwrite", *FAST)
    assert "--overwrite: deleted" in out_text and not stale.exists()
    _refused(capsys, "at most one of --resume and --overwrite", "--data", root, "--out", out, "--overwrite",
             "--resume", *FAST)
    afile = tmp_path / "afile"
    afile.write_text("x")
    _refused(capsys, "which is a file", "--data", root, "--out", afile, *FAST)
    _refused(capsys, "a file", "--data", root, "--out", afile / "sub", *FAST)


def test_unwritable_or_full_out_is_found_before_training(ds, tmp_path, capsys, monkeypatch) -> None:
    root, _ = ds
    real_open = open

    def no_write(path, mode="r", *a, **k):
        if "w" in mode and ".write_probe" in str(path):
            raise PermissionError(13, "Permission denied")
        return real_open(path, mode, *a, **k)

    monkeypatch.setattr(T, "open", no_write, raising=False)
    _refused(capsys, "writable", "--data", root, "--out", tmp_path / "ro", *FAST)

    def full(path, mode="r", *a, **k):
        if "w" in mode and ".write_probe" in str(path):
            raise OSError(28, "No space left on device")
        return real_open(path, mode, *a, **k)

    monkeypatch.setattr(T, "open", full, raising=False)
    _refused(capsys, "No space left", "--data", root, "--out", tmp_path / "full", *FAST)
    monkeypatch.undo()

    class Usage:
        free = 1000

    monkeypatch.setattr(T.shutil, "disk_usage", lambda p: Usage)
    _refused(capsys, "MB free", "--data", root, "--out", tmp_path / "small", *FAST)
    assert not (tmp_path / "small" / "checkpoint.pt").exists()


def test_temp_files_cleaned_and_checkpoint_before_best(ds, tmp_path, capsys, monkeypatch) -> None:
    root, _ = ds
    out = tmp_path / "run"
    out.mkdir()
    (out / ".checkpoint.pt.tmp4242").write_bytes(b"half")
    (out / ".best.pt.tmp77").write_bytes(b"half")
    (out / "keep.txt").write_text("user file")
    order: list[str] = []
    synced: list[Path] = []
    real_save, real_sync = T.atomic_save, T._fsync_dir
    monkeypatch.setattr(T, "atomic_save", lambda obj, p: (order.append(p.name), real_save(obj, p)))
    monkeypatch.setattr(T, "_fsync_dir", lambda d: (synced.append(Path(d)), real_sync(d)))
    text = _ok(capsys, "--data", root, "--out", out, *FAST)
    assert "removed 2 temporary file(s)" in text
    assert sorted(p.name for p in out.iterdir() if p.name.startswith(".")) == []
    assert (out / "keep.txt").exists()
    assert order[:2] == ["checkpoint.pt", "best.pt"]  # the latest state first
    assert synced.count(out) >= 3  # after each checkpoint, best and metrics replace


def test_empty_or_corrupt_checkpoint(ds, tmp_path, capsys) -> None:
    root, _ = ds
    out = tmp_path / "run"
    _ok(capsys, "--data", root, "--out", out, *FAST, "--epochs", "2", "--stop-after", "1")
    (out / "checkpoint.pt").write_bytes(b"")
    _refused(capsys, "empty file", "--data", root, "--out", out, "--resume", *FAST, "--epochs", "2")
    (out / "checkpoint.pt").write_bytes(b"PK\x03\x04 garbage garbage")
    err = _refused(capsys, "readable training checkpoint", "--data", root, "--out", out, "--resume", *FAST,
                   "--epochs", "2")
    assert "--fallback-best" in err
    text = _ok(capsys, "--data", root, "--out", out, "--resume", "--fallback-best", *FAST, "--epochs", "2")
    assert "resuming from" in text and "best.pt" in text and "after epoch 1" in text
    assert torch.load(out / "checkpoint.pt", weights_only=False)["epoch"] == 2


def test_resume_with_more_epochs_continues_the_schedule(ds, tmp_path, capsys) -> None:
    root, _ = ds
    a, b = tmp_path / "a", tmp_path / "b"
    _ok(capsys, "--data", root, "--out", a, *FAST, "--epochs", "4")
    _ok(capsys, "--data", root, "--out", b, *FAST, "--epochs", "4", "--stop-after", "2")
    _ok(capsys, "--data", root, "--out", b, *FAST, "--epochs", "4", "--resume")
    ha = json.loads((a / "metrics.json").read_text())["history"]
    hb = json.loads((b / "metrics.json").read_text())["history"]
    assert [h["lr"] for h in ha] == pytest.approx([h["lr"] for h in hb], rel=1e-12)
    assert [h["train_loss"] for h in ha] == pytest.approx([h["train_loss"] for h in hb], rel=1e-5)
    sa, sb = (torch.load(x / "checkpoint.pt", weights_only=False)["model"] for x in (a, b))
    for k in sa:
        torch.testing.assert_close(sa[k], sb[k], rtol=1e-5, atol=1e-6)
    # a finished 2-epoch run resumed with --epochs 4: the schedule continues over 4, never upwards
    c = tmp_path / "c"
    _ok(capsys, "--data", root, "--out", c, *FAST, "--epochs", "2")
    text = _ok(capsys, "--data", root, "--out", c, *FAST, "--epochs", "4", "--resume")
    assert "continues over 4" in text
    lrs = [h["lr"] for h in json.loads((c / "metrics.json").read_text())["history"]]
    f = T.cosine_factor(4)
    assert lrs[2:] == pytest.approx([2e-3 * f(2), 2e-3 * f(3)], rel=1e-12) == [h["lr"] for h in ha[2:]]
    assert all(x >= y for x, y in zip(lrs[2:], lrs[3:], strict=False))


# ---------------------------------------------------------------------------------------------- arguments
@pytest.mark.parametrize(
    "argv, match",
    [
        (["--image-size", "0"], "--image-size >= 16"),
        (["--batch-size", "0"], "--batch-size >= 1"),
        (["--epochs", "0"], "--epochs >= 1"),
        (["--limit", "0"], "--limit >= 1"),
        (["--train-limit", "-3"], "--train-limit >= 1"),
        (["--val-fraction", "1.5"], "--val-fraction in [0, 1)"),
        (["--val-fraction", "0.6", "--test-fraction", "0.5"], "nothing would be left"),
        (["--lr", "0"], "--lr > 0"),
        (["--dropout", "1"], "--dropout in [0, 1)"),
        (["--fallback-best"], "together with --resume"),
    ],
)
def test_arguments_are_range_checked(ds, tmp_path, capsys, argv, match) -> None:
    root, _ = ds
    _refused(capsys, match, "--data", root, "--out", tmp_path / "o", *FAST, *argv)


@pytest.mark.parametrize("argv", [["--batch-size", "1"], ["--train-limit", "1"]])
def test_batch_of_one_trains(ds, tmp_path, capsys, argv) -> None:
    root, _ = ds
    out = tmp_path / "o"
    _ok(capsys, "--data", root, "--out", out, *FAST, *argv)
    m = json.loads((out / "metrics.json").read_text())
    assert m["history"][0]["train_images"] == (1 if "--train-limit" in argv else 12)
    T.seed_everything(0)  # the CLI's initial weights
    init = T.create_model("resnet18", 2, width=4).state_dict()
    trained = torch.load(out / "checkpoint.pt", weights_only=False)["model"]
    assert init.keys() == trained.keys()
    for k in ("net.conv1.weight", "net.fc.weight"):  # first and last layer trained, not skipped
        assert not torch.equal(init[k], trained[k]), k


def test_no_val_or_test_split(ds, tmp_path, capsys) -> None:
    root, rows = ds
    _manifest(root, [r for r in rows if r["split"] == "train"])
    out = tmp_path / "o"
    text = _ok(capsys, "--data", root, "--out", out, *FAST, "--heatmaps", "2")
    assert "no val images" in text and "no test images" in text
    m = json.loads((out / "metrics.json").read_text())
    assert m["val"] is None and m["test"] is None and m["split_sizes"] == {"train": 12, "val": 0, "test": 0}
    assert not (out / "confusion_matrix.png").exists() and (out / "checkpoint.pt").exists()


# ---------------------------------------------------------------------------------------------- images
def _save(arr: np.ndarray, path: Path, mode: str | None = None) -> Path:
    from PIL import Image

    im = Image.fromarray(arr, mode=mode) if mode else Image.fromarray(arr)
    im.save(path)
    return path


def test_image_modes_scaled_by_their_range(tmp_path) -> None:
    from PIL import Image

    ramp16 = (np.arange(16 * 16, dtype=np.uint16).reshape(16, 16) * 150 + 1000).astype(np.uint16)  # 1000..39250
    expect = torch.from_numpy(np.rint(ramp16.astype(np.float64) * 255 / 65535).astype(np.uint8))
    for name in ("g16.png", "g16.tif"):
        p = _save(ramp16, tmp_path / name)
        with Image.open(p) as im:
            assert im.mode.startswith("I")  # really 16-bit on disk
        img = D.load_image(p, None)
        assert img.shape == (3, 16, 16)
        assert torch.equal(img[0], expect) and torch.equal(img[1], img[0])
        assert (img == 255).float().mean() < 0.01  # not saturated
    grey = np.arange(256, dtype=np.uint8).reshape(16, 16)
    assert torch.equal(D.load_image(_save(grey, tmp_path / "l.png"), None)[2], torch.from_numpy(grey))
    rgba = np.dstack([np.full((16, 16), v, np.uint8) for v in (10, 20, 30, 0)])
    assert D.load_image(_save(rgba, tmp_path / "rgba.png"), None)[:, 0, 0].tolist() == [10, 20, 30]
    pal = Image.fromarray(grey).convert("P")
    pal.save(tmp_path / "p.png")
    assert D.load_image(tmp_path / "p.png", 8).shape == (3, 8, 8)
    f = (np.arange(256, dtype=np.float32).reshape(16, 16) / 255).astype(np.float32)
    _save(f, tmp_path / "f.tif", "F")
    assert torch.equal(D.load_image(tmp_path / "f.tif", None)[0], torch.from_numpy(grey))
    _save(f * 300, tmp_path / "f300.tif", "F")
    with pytest.raises(D.DataError, match=r"float image values in \[0, 1\]"):
        D.load_image(tmp_path / "f300.tif", None)


def test_unreadable_images_in_metrics(ds, tmp_path, capsys) -> None:
    root, rows = ds
    bad = root / "1" / "bad.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\nbroken")
    _manifest(root, [*rows, {"path": "1/bad.png", "label": "1", "label_name": "pos", "patient_id": "p0",
                             "split": "train"}])
    for extra in ([], ["--no-cache"]):
        out = tmp_path / f"o{len(extra)}"
        text = _ok(capsys, "--data", root, "--out", out, *FAST, *extra)
        assert "splits: train 12, val 4, test 4" in text
        m = json.loads((out / "metrics.json").read_text())
        assert [u["path"] for u in m["unreadable_images"]["train"]] == [str(bad)]
        assert m["split_sizes"] == {"train": 12, "val": 4, "test": 4}
        assert m["history"][0]["train_images"] == 12


# ---------------------------------------------------------------------------------------------- balance
def test_class_weights_sampler_and_reported_metrics(tmp_path, capsys) -> None:
    root = tmp_path / "imb"
    rows = _rows(root)
    for p in range(3):  # 6 extra negatives in train: 12 neg vs 6 pos
        for i in range(2, 4):
            rel = f"0/p{p}_{i}.png"
            _png(root / rel)
            rows.append({"path": rel, "label": "0", "label_name": "neg", "patient_id": f"p{p}", "split": "train"})
    _manifest(root, rows)
    out = tmp_path / "o"
    text = _ok(capsys, "--data", root, "--out", out, *FAST, "--class-weights", "balanced", "--sampler", "balanced")
    assert "class weights: neg 0.750, pos 1.500" in text
    assert "balanced accuracy" in text and "macro F1" in text
    m = json.loads((out / "metrics.json").read_text())
    assert m["class_weights"] == "balanced" and m["sampler"] == "balanced"
    for split in ("val", "test"):
        r = m[split]
        assert {"balanced_accuracy", "auroc", "recall_per_class", "confusion_matrix", "f1_macro"} <= set(r)
        assert len(r["recall_per_class"]) == 2
        assert r["balanced_accuracy"] == pytest.approx(sum(r["recall_per_class"]) / 2)
    labels = torch.tensor([0] * 90 + [1] * 10)
    s = T.BalancedSampler(labels, 2, seed=0)
    s.set_epoch(3)
    drawn = labels[list(s)]
    assert len(drawn) == 100 and 30 < int(drawn.sum()) < 70  # about half positives, not 10%
    assert list(s) == list(s)  # same epoch, same draw (exact resume)


def test_auroc_and_balanced_accuracy_match_sklearn() -> None:
    metrics = pytest.importorskip("sklearn.metrics")
    g = torch.Generator().manual_seed(0)
    for k in (2, 3):
        y = torch.randint(0, k, (60,), generator=g)
        probs = torch.rand(60, k, generator=g).round(decimals=1).softmax(1)  # ties included
        p = probs.argmax(1)
        m = classification_metrics(y.tolist(), p.tolist(), k, probs=probs)
        assert m["balanced_accuracy"] == pytest.approx(metrics.balanced_accuracy_score(y, p))
        ref = metrics.roc_auc_score(y, probs[:, 1]) if k == 2 else metrics.roc_auc_score(
            y, probs.numpy(), multi_class="ovr", average="macro")
        assert m["auroc"] == pytest.approx(ref)
    assert auroc([0, 0], torch.tensor([[0.4, 0.6], [0.5, 0.5]]), 2)["auroc"] is None  # one class: undefined


def test_main_job_default_is_the_tissue_sample(tmp_path, capsys) -> None:
    args = T.build_parser().parse_args([])
    assert args.data is None and args.model == "rmcg" and args.epochs is None  # None: 10 on the tissue sample
    out = _ok(capsys, "--out", tmp_path / "o", *FAST, "--limit", "8", "--image-size", "16")
    assert "default data: the embedded tissue sample" in out
    assert "resnet18 test" in out and "balanced accuracy" in out and "macro F1" in out
    m = json.loads((tmp_path / "o" / "metrics.json").read_text())
    assert m["classes"] == ["non-IDC", "IDC"]


def test_command_line_exit_status_without_traceback(tmp_path) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1",
           "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH", "")]))}
    proc = subprocess.run([sys.executable, str(ROOT / "examples" / "rmcg" / "train.py"), "--image-size", "0",
                           "--out", str(tmp_path / "o")], capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.strip() == "error: Expected --image-size >= 16 (ResNet18 needs 16x16 at least) (got 0)"


def test_default_out_never_reuses_a_finished_run(tmp_path, monkeypatch):
    """Without --out, a rerun of the README command goes to runs/rmcg-2, -3, ... (never refused)."""
    import argparse

    monkeypatch.chdir(tmp_path)
    args = argparse.Namespace(resume=False, overwrite=False)
    assert T._default_out(args) == Path("runs/rmcg")
    for name in ("rmcg", "rmcg-2"):
        (tmp_path / "runs" / name).mkdir(parents=True)
        (tmp_path / "runs" / name / "metrics.json").write_text("{}")
    (tmp_path / "runs" / "rmcg-3").mkdir()  # empty folder: no run in it, reused
    assert T._default_out(args) == Path("runs/rmcg-3")
    assert T._default_out(argparse.Namespace(resume=True, overwrite=False)) == Path("runs/rmcg")
