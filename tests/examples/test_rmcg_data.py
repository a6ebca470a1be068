"""Data readers, splits, augmentation and metrics of the RMCG example (examples/rmcg)."""

from __future__ import annotations

import csv
import sys
import zlib
from pathlib import Path

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "examples"))

from rmcg import data as D  # noqa: E402
from rmcg.metrics import classification_metrics, confusion_matrix  # noqa: E402

IDC = Path(__import__("os").environ.get("GRAPHVISION_IDC_DATA", ROOT.parent / "shared" / "data" / "breast_idc_patches"))


def _png(path: Path, value: int = 0, size: int = 12) -> Path:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    # distinct content per file (identical images in two splits or classes are refused)
    key = str(path.relative_to(path.parents[2]) if len(path.parents) > 2 else path)
    g = torch.Generator().manual_seed(value * 7919 + zlib.crc32(key.encode()))
    arr = torch.randint(0, 256, (size, size, 3), generator=g, dtype=torch.uint8).numpy()
    Image.fromarray(arr).save(path)
    return path


def _corrupt(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"\x89PNG\r\n\x1a\nthis is not a png")
    return path


# ------------------------------------------------------------------------------------------- layouts
def test_class_folders_with_corrupt_file(tmp_path: Path) -> None:
    for c in ("benign", "malignant"):
        for i in range(6):
            _png(tmp_path / c / "sub" / f"{c}_{i}.png", i)
    bad = _corrupt(tmp_path / "malignant" / "broken.png")
    (tmp_path / "malignant" / "notes.txt").write_text("not an image")
    index = D.discover(tmp_path)
    assert index.layout == "folders"
    assert index.classes == ["benign", "malignant"]
    assert len(index.samples) == 13
    classes, sets, notes = D.build_datasets(tmp_path, 12, seed=1, val_fraction=0.2, test_fraction=0.2)
    assert sum(len(s) for s in sets.values()) == 12  # the corrupt file is reported and dropped
    assert any(str(bad) in n and "skipped" in n for n in notes)
    # split by image, stratified: every split has both classes
    for ds in sets.values():
        assert set(ds.labels.tolist()) == {0, 1}


def test_corrupt_file_skipped_at_load_time(tmp_path: Path) -> None:
    good = [D.Sample(_png(tmp_path / f"{i}.png", i), i % 2) for i in range(3)]
    bad = D.Sample(_corrupt(tmp_path / "bad.png"), 1)
    # unreadable before training: reported and left out up front, as with the cache
    ds = D.ImageDataset([good[0], bad, *good[1:]], 8, cache=False)
    assert len(ds) == 3 and ds.skipped[0][0] == str(bad.path)
    # a file that breaks after the check is skipped at load time
    bad = D.Sample(_png(tmp_path / "later.png", 9), 1)
    ds = D.ImageDataset([good[0], bad, *good[1:]], 8, cache=False)
    _corrupt(bad.path)
    assert len(ds) == 4
    assert ds[1] is None and ds.skipped and ds.skipped[0][0] == str(bad.path)
    loader = torch.utils.data.DataLoader(ds, batch_size=4, collate_fn=D.collate_skip_none)
    images, labels, idx = next(iter(loader))
    assert images.shape == (3, 3, 8, 8) and idx.tolist() == [0, 2, 3]
    assert D.collate_skip_none([None, None]) is None


def test_databiox_layout_with_magnification(tmp_path: Path) -> None:
    for g in (1, 2, 3):
        for p in range(3):
            for mag in ("4X", "10X", "20X", "40X"):
                for i in range(2):
                    _png(tmp_path / f"BC_IDC_Grade_{g}" / f"{g}{p}" / mag / f"{g}_{p}_{mag}_{i}.jpg", g + p + i)
    index = D.discover(tmp_path, magnification="10X")
    assert index.layout == "databiox"
    assert index.classes == ["Grade 1", "Grade 2", "Grade 3"]
    assert len(index.samples) == 3 * 3 * 2
    assert all("10X" in s.path.parts for s in index.samples)
    assert {s.patient_id for s in index.samples} == {f"{g}{p}" for g in (1, 2, 3) for p in range(3)}
    D.assign_splits(index, seed=0, val_fraction=0.25, test_fraction=0.25)
    by_patient: dict[str, set[str]] = {}
    for s in index.samples:
        by_patient.setdefault(s.patient_id, set()).add(s.split)
    assert all(len(v) == 1 for v in by_patient.values())  # no patient in two splits
    assert {s.split for s in index.samples} == {"train", "val", "test"}
    assert len(D.discover(tmp_path, magnification="40").samples) == 18  # '40' means 40X
    with pytest.raises(ValueError, match="magnification like"):
        D.discover(tmp_path, magnification="forty")


def test_databiox_flat_layout_and_missing_magnification(tmp_path: Path) -> None:
    for g in (1, 2, 3):
        for i in range(2):
            _png(tmp_path / f"BC_IDC_Grade_{g}" / "4X" / f"img{i}.png", i)
    index = D.discover(tmp_path, magnification="4X")
    assert len(index.samples) == 6 and all(s.patient_id is None for s in index.samples)
    with pytest.raises(ValueError, match=r"magnification 20X .*found magnifications \['4X'\]"):
        D.discover(tmp_path, magnification="20X")


BREAKHIS = [
    ("benign/SOB/adenosis/SOB_B_A_14-22549AB/40X", "SOB_B_A-14-22549AB-40-{:03d}.png"),
    ("benign/SOB/adenosis/SOB_B_A_14-22549AB/100X", "SOB_B_A-14-22549AB-100-{:03d}.png"),
    ("benign/SOB/fibroadenoma/SOB_B_F_14-9133/40X", "SOB_B_F-14-9133-40-{:03d}.png"),
    ("malignant/SOB/ductal_carcinoma/SOB_M_DC_14-10926/40X", "SOB_M_DC-14-10926-40-{:03d}.png"),
    ("malignant/SOB/lobular_carcinoma/SOB_M_LC_14-12204/40X", "SOB_M_LC-14-12204-40-{:03d}.png"),
    ("malignant/SOB/ductal_carcinoma/SOB_M_DC_14-2523/40X", "SOB_M_DC-14-2523-40-{:03d}.png"),
]


def test_breakhis_names(tmp_path: Path) -> None:
    for folder, pattern in BREAKHIS:
        for i in range(1, 4):
            _png(tmp_path / folder / pattern.format(i), i)
    index = D.discover(tmp_path, magnification="40X")
    assert index.layout == "breakhis"
    assert index.classes == ["benign", "malignant"]
    assert len(index.samples) == 15
    assert {s.patient_id for s in index.samples} == {"14-22549AB", "14-9133", "14-10926", "14-12204", "14-2523"}
    assert sum(s.label for s in index.samples) == 9
    sub = D.discover(tmp_path, magnification="40X", breakhis_task="subtype")
    assert sub.classes == ["adenosis", "fibroadenoma", "ductal_carcinoma", "lobular_carcinoma"]
    assert len(D.discover(tmp_path).samples) == 18  # all magnifications
    assert len(D.discover(tmp_path, magnification="100X").samples) == 3


def _write_manifest(root: Path, rows: list[dict], fields: list[str]) -> None:
    with open(root / "MANIFEST.csv", "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=fields)
        w.writeheader()
        w.writerows(rows)


def test_manifest_with_split(tmp_path: Path) -> None:
    rows = []
    for i in range(12):
        label = i % 2
        split = ("train", "val", "test")[i // 4]
        rel = f"{label}_x/p{i // 4}_{i}.png"
        _png(tmp_path / rel, i)
        rows.append(
            {
                "path": rel,
                "label": label,
                "label_name": ["neg", "pos"][label],
                "patient_id": f"p{i // 4}",
                "split": split,
            }
        )
    _corrupt(tmp_path / "1_x" / "bad.png")
    rows.append({"path": "1_x/bad.png", "label": 1, "label_name": "pos", "patient_id": "p9", "split": "train"})
    _write_manifest(tmp_path, rows, ["path", "label", "label_name", "patient_id", "split"])
    classes, sets, notes = D.build_datasets(tmp_path, 10)
    assert classes == ["neg", "pos"]
    assert [len(sets[k]) for k in ("train", "val", "test")] == [4, 4, 4]
    assert any("bad.png" in n for n in notes)


def test_manifest_without_split_splits_by_patient(tmp_path: Path) -> None:
    rows = []
    for i in range(40):
        rel = f"img{i}.png"
        _png(tmp_path / rel, i, size=6)
        rows.append({"path": rel, "label": "tumour" if i % 2 else "normal", "patient_id": f"p{i % 10}"})
    _write_manifest(tmp_path, rows, ["path", "label", "patient_id"])
    index = D.assign_splits(D.discover(tmp_path), seed=3)
    assert index.classes == ["normal", "tumour"]
    seen: dict[str, str] = {}
    for s in index.samples:
        assert seen.setdefault(s.patient_id, s.split) == s.split
    assert {s.split for s in index.samples} == {"train", "val", "test"}
    again = D.assign_splits(D.discover(tmp_path), seed=3)
    assert [s.split for s in again.samples] == [s.split for s in index.samples]  # seeded


def test_manifest_missing_columns(tmp_path: Path) -> None:
    (tmp_path / "MANIFEST.csv").write_text("file,class\na.png,0\n")
    with pytest.raises(ValueError, match=r"missing \['label', 'path'\]"):
        D.discover(tmp_path)


def test_idc_names_give_patient_ids_and_bad_roots(tmp_path: Path) -> None:
    for c in (0, 1):
        for p in (8950, 9023, 10253):
            _png(tmp_path / f"{c}_cls" / f"{p}_idx5_x{c}01_y51_class{c}.png", p + c)
    index = D.discover(tmp_path)
    assert {s.patient_id for s in index.samples} == {"8950", "9023", "10253"}
    with pytest.raises(ValueError, match="Expected 'data' to be a directory"):
        D.discover(tmp_path / "nope")
    empty = tmp_path / "empty"
    (empty / "only").mkdir(parents=True)
    _png(empty / "only" / "a.png")
    with pytest.raises(ValueError, match="at least 2 class folders"):
        D.discover(empty)


def test_test_data_directory(tmp_path: Path) -> None:
    for root in ("a", "b"):
        for c in ("x", "y"):
            for i in range(5):
                _png(tmp_path / root / c / f"{i}.png", i, size=6)
    classes, sets, _ = D.build_datasets(tmp_path / "a", 6, test_data=tmp_path / "b")
    assert len(sets["test"]) == 10 and len(sets["train"]) + len(sets["val"]) == 10
    assert all(str(tmp_path / "b") in str(s.path) for s in sets["test"].samples)


@pytest.mark.skipif(not (IDC / "MANIFEST.csv").is_file(), reason="shared breast_idc_patches data not present")
def test_real_manifest_patient_split() -> None:
    index = D.discover(IDC)
    assert index.layout == "manifest" and index.classes == ["non-IDC", "IDC"]
    counts = {k: len(index.split(k)) for k in D.SPLITS}
    assert counts == {"train": 1400, "val": 300, "test": 300}
    patients = {k: {s.patient_id for s in index.split(k)} for k in D.SPLITS}
    assert not (patients["train"] & patients["val"]) and not (patients["train"] & patients["test"])
    img = D.load_image(index.samples[0].path, None)
    assert img.shape == (3, 50, 50) and img.dtype == torch.uint8


def test_digits_default_dataset() -> None:
    pytest.importorskip("sklearn")
    classes, sets = D.load_digits_dataset(16)
    assert classes == [str(i) for i in range(10)]
    assert sum(len(s) for s in sets.values()) == 1797
    assert sets["train"].images.shape[1:] == (3, 16, 16) and sets["train"].images.dtype == torch.uint8
    classes2, sets2 = D.load_digits_dataset(16)
    assert torch.equal(sets["test"].labels, sets2["test"].labels)  # fixed split


# ------------------------------------------------------------------------------------------- augmentation
@settings(max_examples=15, deadline=None)
@given(
    b=st.integers(0, 5),
    s=st.integers(2, 12),
    shift=st.sampled_from([0.0, 0.1, 0.3]),
    seed=st.integers(0, 2**16),
    flip=st.booleans(),
)
def test_augment_rotations_and_shifts(b: int, s: int, shift: float, seed: int, flip: bool) -> None:
    x = torch.randn(b, 3, s, s).transpose(2, 3)  # non-contiguous
    g1, g2 = torch.Generator().manual_seed(seed), torch.Generator().manual_seed(seed)
    out = D.augment_batch(x, g1, rotate=True, max_shift=shift, flip=flip)
    assert out.shape == x.shape
    assert torch.equal(out, D.augment_batch(x, g2, rotate=True, max_shift=shift, flip=flip))  # reproducible
    m = min(int(shift * s), s - 1)
    if m == 0 and not flip:
        for i in range(b):  # a pure rotation: one of the four rot90's of the input
            assert any(
                torch.equal(out[i].contiguous(), torch.rot90(x[i], k, dims=(1, 2)).contiguous()) for k in range(4)
            )
    # every output pixel is an input pixel (reflect padding, no fill values)
    for i in range(b):
        assert torch.isin(out[i].reshape(-1), x[i].reshape(-1)).all()


def test_augment_translation_reflects() -> None:
    x = torch.arange(25.0).view(1, 1, 5, 5)
    g = torch.Generator().manual_seed(0)
    found = set()
    for _ in range(40):
        out = D.augment_batch(x, g, rotate=False, max_shift=0.4)  # shifts in [-2, 2]
        for dy in range(-2, 3):
            for dx in range(-2, 3):
                ref = torch.nn.functional.pad(x, (2, 2, 2, 2), mode="reflect")[..., 2 + dy : 7 + dy, 2 + dx : 7 + dx]
                if torch.equal(out, ref):
                    found.add((dy, dx))
    assert len(found) > 10  # several distinct shifts, each an exact reflect-padded crop


# ------------------------------------------------------------------------------------------- metrics
@settings(max_examples=25, deadline=None)
@given(n=st.integers(1, 40), k=st.integers(2, 5), seed=st.integers(0, 2**16))
def test_metrics_match_sklearn(n: int, k: int, seed: int) -> None:
    metrics = pytest.importorskip("sklearn.metrics")
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, k, (n,), generator=g).tolist()
    p = torch.randint(0, k, (n,), generator=g).tolist()
    m = classification_metrics(y, p, k)
    labels = list(range(k))
    assert m["accuracy"] == pytest.approx(metrics.accuracy_score(y, p))
    for ours, avg in (("precision_macro", "precision"), ("recall_macro", "recall"), ("f1_macro", "f1")):
        fn = getattr(metrics, f"{avg}_score")
        assert m[ours] == pytest.approx(fn(y, p, labels=labels, average="macro", zero_division=0))
    assert m["confusion_matrix"] == metrics.confusion_matrix(y, p, labels=labels).tolist()


def test_metrics_hand_table_and_errors() -> None:
    m = classification_metrics([0, 0, 1, 1], [0, 1, 1, 1], 2, ["a", "b"])
    assert m["accuracy"] == 0.75
    assert m["per_class"]["a"] == {"precision": 1.0, "recall": 0.5, "f1": pytest.approx(2 / 3), "support": 2}
    assert m["per_class"]["b"]["precision"] == pytest.approx(2 / 3)
    assert m["confusion_matrix"] == [[1, 1], [0, 2]]
    with pytest.raises(ValueError, match="same length"):
        confusion_matrix([0], [0, 1], 2)
    with pytest.raises(ValueError, match=r"class indices in \[0, 2\)"):
        confusion_matrix([0, 2], [0, 1], 2)
