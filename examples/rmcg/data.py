"""Data for the RMCG example: readers for the common histopathology layouts, splits, augmentation.

Supported layouts (detected in this order, see :func:`discover`):

* ``MANIFEST.csv`` at the root with at least ``path,label`` columns (``patient_id`` and ``split``
  optional; ``label_name`` optional), as in ``shared/data/breast_idc_patches``. Its ``split``
  column (``train``/``val``/``test``) is used when present.
* Databiox: ``BC_IDC_Grade_{1,2,3}/<magnification>/<image>`` or
  ``BC_IDC_Grade_{1,2,3}/<patient>/<magnification>/<image>``; ``magnification`` (``4X``, ``10X``,
  ``20X``, ``40X``) selects one magnification.
* BreakHis file names anywhere under the root: ``SOB_<B|M>_<subtype>-<patient>-<mag>-<seq>.png``,
  e.g. ``SOB_B_A-14-22549AB-40-001.png`` (benign, adenosis, patient ``14-22549AB``, 40X). Classes
  are benign/malignant (``breakhis_task="binary"``) or the eight subtypes (``"subtype"``).
* Class-per-folder: every sub-folder of the root is a class, images anywhere below it.

Without a ``split`` column the split is seeded and made by patient when patient ids can be
recovered (manifest column, Databiox patient folder, BreakHis name, ``<patient>_idx5_...`` IDC
names), by image otherwise. Unreadable or corrupt images are reported by path and skipped, either
while the dataset is validated and cached up front (the default) or at load time
(``cache=False``), never by a crash mid-epoch.

With no data directory, :func:`load_digits_dataset` gives scikit-learn's bundled handwritten
digits (real scans, 8x8 grey levels) as a 10-class image dataset with a fixed split.
"""

from __future__ import annotations

import csv
import logging
import math
import random
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor

log = logging.getLogger("rmcg")

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp")
SPLITS = ("train", "val", "test")

_DATABIOX_CLASS = re.compile(r"^BC_IDC_Grade_(\d+)$", re.IGNORECASE)
_MAGNIFICATION = re.compile(r"^(\d+)\s*[xX]$")
# SOB_B_A-14-22549AB-40-001.png: procedure SOB, class B|M, subtype, patient (year-slide), mag, seq
_BREAKHIS = re.compile(
    r"^SOB_(?P<cls>[BM])_(?P<subtype>[A-Z]+)-(?P<patient>\d+-[0-9A-Za-z]+)-(?P<mag>\d+)-(?P<seq>\d+)\.\w+$"
)
BREAKHIS_SUBTYPES = {
    ("B", "A"): "adenosis",
    ("B", "F"): "fibroadenoma",
    ("B", "PT"): "phyllodes_tumor",
    ("B", "TA"): "tubular_adenoma",
    ("M", "DC"): "ductal_carcinoma",
    ("M", "LC"): "lobular_carcinoma",
    ("M", "MC"): "mucinous_carcinoma",
    ("M", "PC"): "papillary_carcinoma",
}
# "<patient>_idx5_x1001_y551_class0.png" (Janowczyk IDC patches)
_IDC_PATIENT = re.compile(r"^(?P<patient>\d+)_idx\d+_")


class DataError(ValueError):
    """A dataset description that must not be trained on (the CLI prints it and exits with status 2)."""


@dataclass
class Sample:
    """One image: where it is, its class index, and optionally its patient, split and class name."""

    path: Path
    label: int
    patient_id: str | None = None
    split: str | None = None
    class_name: str | None = None


@dataclass
class DatasetIndex:
    """The images of a dataset with class names, the detected layout and the split of each image."""

    classes: list[str]
    samples: list[Sample]
    layout: str
    root: Path | None = None
    notes: list[str] = field(default_factory=list)

    def split(self, name: str) -> list[Sample]:
        """Samples whose ``split`` is ``name``."""
        return [s for s in self.samples if s.split == name]

    def table(self) -> list[dict[str, str]]:
        """The one dataset table every loader produces: path, label, class name, patient, split."""
        return [
            {
                "path": str(s.path),
                "label": str(s.label),
                "class_name": self.classes[s.label] if 0 <= s.label < len(self.classes) else "",
                "patient_id": s.patient_id or "",
                "split": s.split or "",
            }
            for s in self.samples
        ]

    def write_csv(self, path: Path) -> None:
        """Write :meth:`table` as CSV (the exact table a run trained on)."""
        with open(path, "w", newline="", encoding="utf-8") as fh:
            w = csv.DictWriter(fh, fieldnames=["path", "label", "class_name", "patient_id", "split"])
            w.writeheader()
            w.writerows(self.table())


def _is_image(p: Path) -> bool:
    return p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS


def _norm_mag(m: str | None) -> str | None:
    if m is None:
        return None
    m = str(m).strip()
    match = _MAGNIFICATION.match(m) or re.match(r"^(\d+)$", m)
    if not match:
        raise DataError(f"Expected a magnification like '4X', '10X', '20X' or '40X' (got {m!r})")
    return f"{int(match.group(1))}X"


def _patient_from_name(name: str) -> str | None:
    m = _IDC_PATIENT.match(name)
    if m:
        return m.group("patient")
    m = _BREAKHIS.match(name)
    if m:
        return m.group("patient")
    return None


# --------------------------------------------------------------------------------------------- readers
def _few(items: Sequence[str], n: int = 5) -> str:
    items = list(items)
    head = ", ".join(items[:n])
    return head + (f" ... ({len(items)} in all)" if len(items) > n else "")


def read_manifest(root: Path, manifest: Path, classes: Sequence[str] | None = None) -> DatasetIndex:
    """Read ``MANIFEST.csv`` (columns ``path,label`` and optionally ``label_name,patient_id,split``).

    ``classes``: the declared class names (label ``i`` is ``classes[i]``); without it the classes
    are the labels found, and a class with very few rows (under 2, or under 1% of the largest
    class) is refused as a likely typo. Refused with :class:`DataError`: a file that is not UTF-8
    text (a UTF-8 BOM is accepted), empty or mixed integer/text labels, labels outside the declared
    classes, a ``label_name`` that disagrees with its label, missing files, and a ``split`` column
    filled for some rows and empty for others.
    """
    try:
        with open(manifest, newline="", encoding="utf-8-sig") as fh:
            reader = csv.DictReader(fh)
            cols = [c.strip() for c in (reader.fieldnames or [])]
            reader.fieldnames = cols
            rows = list(reader)
    except UnicodeDecodeError as exc:
        raise DataError(f"Expected {manifest} to be a UTF-8 text CSV (got bytes that are not UTF-8: {exc.reason} "
                        f"at byte {exc.start}); is it a binary file?") from None
    except (csv.Error, OSError) as exc:
        raise DataError(f"Expected {manifest} to be a readable CSV (got {type(exc).__name__}: {exc})") from None
    missing = {"path", "label"} - set(cols)
    if missing:
        raise DataError(
            f"Expected MANIFEST columns path,label[,label_name,patient_id,split] in {manifest} "
            f"(got {sorted(cols)}; missing {sorted(missing)})"
        )
    where = [f"line {i + 2}" for i in range(len(rows))]
    raw_labels = [(r.get("label") or "").strip() for r in rows]
    empty = [w for w, lab in zip(where, raw_labels, strict=True) if not lab]
    if empty:
        raise DataError(f"Expected a label in every row of {manifest} (got empty labels at {_few(empty)})")
    is_int = [bool(re.fullmatch(r"-?\d+", lab)) for lab in raw_labels]
    if any(is_int) and not all(is_int):
        text = [f"{w} ({lab!r})" for w, lab, ok in zip(where, raw_labels, is_int, strict=True) if not ok]
        raise DataError(f"Expected integer labels in {manifest} like the other rows (got text labels at {_few(text)})")
    numeric = all(is_int)
    # label <-> label_name must be one-to-one
    has_names = "label_name" in cols
    name_of: dict[str, str] = {}
    if has_names:
        raw_names = [(r.get("label_name") or "").strip() for r in rows]
        blank = [w for w, n in zip(where, raw_names, strict=True) if not n]
        if blank and len(blank) < len(rows):
            raise DataError(f"Expected a label_name in every row of {manifest} (got empty ones at {_few(blank)})")
        if not blank:
            first: dict[str, tuple[str, str]] = {}
            label_of: dict[str, tuple[str, str]] = {}
            for w, lab, name in zip(where, raw_labels, raw_names, strict=True):
                prev = first.setdefault(lab, (name, w))
                if prev[0] != name:
                    raise DataError(
                        f"Expected one label_name per label in {manifest} (got label {lab} named {prev[0]!r} at "
                        f"{prev[1]} but {name!r} at {w})"
                    )
                prev_l = label_of.setdefault(name, (lab, w))
                if prev_l[0] != lab:
                    raise DataError(
                        f"Expected one label per label_name in {manifest} (got {name!r} with label {prev_l[0]} at "
                        f"{prev_l[1]} but label {lab} at {w}); a typo in the label?"
                    )
            name_of = {lab: n for lab, (n, _) in first.items()}
    if numeric:
        keys = sorted(set(raw_labels), key=int)
    else:
        keys = sorted(set(raw_labels))
    counts = {k: raw_labels.count(k) for k in keys}
    if classes is not None:
        classes = list(classes)
        if numeric:
            bad = [f"{w} (label {lab})" for w, lab in zip(where, raw_labels, strict=True)
                   if not 0 <= int(lab) < len(classes)]
            if bad:
                raise DataError(
                    f"Expected labels in 0..{len(classes) - 1} for the declared classes {classes} in {manifest} "
                    f"(got {_few(bad)})"
                )
            to_idx = {k: int(k) for k in keys}
        else:
            bad = [f"{w} ({lab!r})" for w, lab in zip(where, raw_labels, strict=True) if lab not in classes]
            if bad:
                raise DataError(f"Expected labels among the declared classes {classes} in {manifest} (got {_few(bad)})")
            to_idx = {k: classes.index(k) for k in keys}
        for lab, name in name_of.items():
            if name != classes[to_idx[lab]]:
                raise DataError(
                    f"Expected label_name {classes[to_idx[lab]]!r} for label {lab} (declared classes {classes}) in "
                    f"{manifest} (got {name!r})"
                )
    else:
        if numeric and [int(k) for k in keys] != list(range(len(keys))):
            raise DataError(
                f"Expected integer labels 0..K-1 in {manifest} (got {[int(k) for k in keys]}); "
                "declare the classes with --classes if some have no images"
            )
        largest = max(counts.values())
        rare = [k for k in keys if counts[k] < max(2, 0.01 * largest)]
        if rare and len(keys) > 1:
            rows_of = [f"{w} (label {lab})" for w, lab in zip(where, raw_labels, strict=True) if lab in rare]
            raise DataError(
                f"Expected every class of {manifest} to have at least 2 rows and 1% of the largest class "
                f"({largest}) (got {_few([f'{k!r}: {counts[k]}' for k in rare])} at {_few(rows_of)}); "
                "a typo in the label? Declare the classes with --classes NAME,NAME,... if this is intended"
            )
        to_idx = {k: i for i, k in enumerate(keys)}
        classes = [name_of.get(k, k) for k in keys]
    raw_splits = [(r.get("split") or "").strip().lower() for r in rows]
    if "split" in cols:
        blank = [w for w, sp in zip(where, raw_splits, strict=True) if not sp]
        if blank and len(blank) < len(rows):
            raise DataError(
                f"Expected a split (train/val/test) in every row of {manifest} or in none (got empty split cells "
                f"at {_few(blank)})"
            )
        bad = [f"{w} ({sp!r})" for w, sp in zip(where, raw_splits, strict=True) if sp and sp not in SPLITS]
        if bad:
            raise DataError(f"Expected split in {SPLITS} in {manifest} (got {_few(bad)})")
    samples, absent, not_image = [], [], []
    for r, lab, split, w in zip(rows, raw_labels, raw_splits, where, strict=True):
        rel = (r.get("path") or "").strip()
        p = Path(rel)
        p = p if p.is_absolute() else root / p
        if not rel or not p.is_file():
            absent.append(f"{w} ({rel!r})")
        elif p.suffix.lower() not in IMAGE_EXTENSIONS:
            not_image.append(f"{w} ({rel!r})")
        pid = (r.get("patient_id") or "").strip() or None
        label = to_idx[lab]
        samples.append(Sample(p, label, pid, split or None, classes[label]))
    if absent:
        raise DataError(f"Expected every MANIFEST path to be a file under {root} (missing: {_few(absent)})")
    if not_image:
        raise DataError(
            f"Expected image files ({', '.join(IMAGE_EXTENSIONS)}) in {manifest} (got {_few(not_image)})"
        )
    return DatasetIndex(classes, samples, "manifest", root)


def read_databiox(root: Path, magnification: str | None) -> DatasetIndex:
    """Databiox: ``BC_IDC_Grade_<g>/[<patient>/]<magnification>/<image>``."""
    grades = sorted((d for d in root.iterdir() if d.is_dir() and _DATABIOX_CLASS.match(d.name)), key=lambda d: d.name)
    mag = _norm_mag(magnification)
    classes = [f"Grade {_DATABIOX_CLASS.match(d.name).group(1)}" for d in grades]
    samples, seen_mags = [], set()
    for label, gdir in enumerate(grades):
        for img in sorted(p for p in gdir.rglob("*") if _is_image(p)):
            rel = img.relative_to(gdir).parts[:-1]
            img_mag = next((_norm_mag(part) for part in reversed(rel) if _MAGNIFICATION.match(part)), None)
            seen_mags.add(img_mag)
            if mag is not None and img_mag != mag:
                continue
            patient = None
            non_mag = [part for part in rel if not _MAGNIFICATION.match(part)]
            if non_mag:
                patient = non_mag[0]
            samples.append(Sample(img, label, patient))
    notes = []
    if mag is None and len(seen_mags - {None}) > 1:
        notes.append(f"Databiox: no magnification selected, using all of {sorted(m for m in seen_mags if m)}")
    if mag is not None and not samples:
        raise DataError(
            f"Expected Databiox images at magnification {mag} under {root} "
            f"(found magnifications {sorted(m for m in seen_mags if m)})"
        )
    return DatasetIndex(classes, samples, "databiox", root, notes)


def read_breakhis(root: Path, files: Sequence[Path], magnification: str | None, task: str = "binary") -> DatasetIndex:
    """BreakHis file names: class and subtype, patient id and magnification come from the name."""
    if task not in ("binary", "subtype"):
        raise DataError(f"Expected breakhis_task in ('binary', 'subtype') (got {task!r})")
    mag = _norm_mag(magnification)
    parsed = []
    for f in files:
        m = _BREAKHIS.match(f.name)
        if m is None:
            continue
        if mag is not None and f"{int(m.group('mag'))}X" != mag:
            continue
        parsed.append((f, m))
    if task == "binary":
        classes = ["benign", "malignant"]
        samples = [Sample(f, 0 if m.group("cls") == "B" else 1, m.group("patient")) for f, m in parsed]
    else:
        keys = sorted({(m.group("cls"), m.group("subtype")) for _, m in parsed})
        classes = [BREAKHIS_SUBTYPES.get(k, f"{k[0]}_{k[1]}") for k in keys]
        idx = {k: i for i, k in enumerate(keys)}
        samples = [Sample(f, idx[(m.group("cls"), m.group("subtype"))], m.group("patient")) for f, m in parsed]
    if not samples:
        raise DataError(f"Expected BreakHis images at magnification {mag} under {root} (found none)")
    return DatasetIndex(classes, samples, "breakhis", root)


def read_class_folders(root: Path, magnification: str | None) -> DatasetIndex:
    """Every sub-folder of ``root`` is a class; images anywhere below it."""
    dirs = sorted(d for d in root.iterdir() if d.is_dir() and not d.name.startswith("."))
    mag = _norm_mag(magnification)
    classes, samples = [], []
    for d in dirs:
        imgs = sorted(p for p in d.rglob("*") if _is_image(p))
        if mag is not None:
            imgs = [
                p
                for p in imgs
                if any(_norm_mag(x) == mag for x in p.relative_to(d).parts[:-1] if _MAGNIFICATION.match(x))
            ]
        if not imgs:
            continue
        label = len(classes)
        classes.append(d.name)
        samples.extend(Sample(p, label, _patient_from_name(p.name)) for p in imgs)
    if len(classes) < 2:
        raise DataError(
            f"Expected at least 2 class folders with images under {root} (got {len(classes)}: {classes}); "
            "supported layouts: MANIFEST.csv, BC_IDC_Grade_<g>/<mag>/, BreakHis names, class-per-folder"
        )
    return DatasetIndex(classes, samples, "folders", root)


def discover(
    root: str | Path,
    magnification: str | None = None,
    breakhis_task: str = "binary",
    classes: Sequence[str] | None = None,
) -> DatasetIndex:
    """Detect the layout of ``root`` and list its images (splits not assigned yet, see :func:`assign_splits`).

    ``classes``: declared class names; a MANIFEST's labels must index them, a folder layout must
    give exactly these classes.
    """
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"Expected 'data' to be a directory (got {str(root)!r}, which does not exist or is a file)")
    manifest = root / "MANIFEST.csv"
    if manifest.is_file():
        return read_manifest(root, manifest, classes)
    if any(d.is_dir() and _DATABIOX_CLASS.match(d.name) for d in root.iterdir()):
        index = read_databiox(root, magnification)
    else:
        files = sorted(p for p in root.rglob("*") if _is_image(p))
        if files and sum(bool(_BREAKHIS.match(p.name)) for p in files) >= 0.9 * len(files):
            index = read_breakhis(root, files, magnification, breakhis_task)
            stray = [str(f.relative_to(root)) for f in files if not _BREAKHIS.match(f.name)]
            if stray:
                raise DataError(
                    f"Expected BreakHis file names for every image under {root} (got {len(stray)} other files: "
                    f"{_few(stray)}); move them out of the dataset"
                )
        else:
            index = read_class_folders(root, magnification)
    for s in index.samples:
        s.class_name = index.classes[s.label]
    if classes is not None and list(classes) != index.classes:
        raise DataError(f"Expected the declared classes {list(classes)} under {root} (got {index.classes})")
    return index


SPLIT_BY = ("auto", "patient", "image")


def assign_splits(
    index: DatasetIndex,
    seed: int = 0,
    val_fraction: float = 0.15,
    test_fraction: float = 0.15,
    split_by: str = "auto",
) -> DatasetIndex:
    """Give every sample without a split one: by patient (no patient in two splits) or by image.

    Existing splits (a manifest ``split`` column) are kept. ``split_by="auto"`` splits by patient
    when samples have patient ids and by image when none has one; when only some have one it
    refuses (:class:`DataError`): a stray file must not silently turn a patient-level split into
    an image-level one. ``"patient"`` requires every id, ``"image"`` ignores them. Patient-level:
    patients are shuffled with ``seed`` and cut into test/val/train by cumulative image count.
    Image-level: a seeded split stratified by class.
    """
    if split_by not in SPLIT_BY:
        raise DataError(f"Expected split_by in {SPLIT_BY} (got {split_by!r})")
    if not (0 <= val_fraction < 1 and 0 <= test_fraction < 1 and val_fraction + test_fraction < 1):
        raise DataError(
            f"Expected val_fraction, test_fraction in [0, 1) with sum < 1 (got {val_fraction}, {test_fraction})"
        )
    todo = [s for s in index.samples if s.split is None]
    if not todo:
        return index
    without = [s for s in todo if s.patient_id is None]
    by_patient = split_by == "patient" or (split_by == "auto" and len(without) < len(todo))
    if by_patient and without:
        root = index.root
        names = [str(s.path.relative_to(root)) if root and s.path.is_relative_to(root) else str(s.path)
                 for s in without]
        raise DataError(
            f"Expected a patient id for every image to split by patient ({len(todo) - len(without)} have one, "
            f"{len(without)} do not: {_few(names)}). Remove the stray files, give them patient ids, or pass "
            "--split-by image to split by image (patients may then be in two splits)"
        )
    rng = random.Random(seed)
    fractions = (("test", test_fraction), ("val", val_fraction))
    if by_patient:
        patients = sorted({s.patient_id for s in todo})
        rng.shuffle(patients)
        count: dict[str, int] = {}
        for s in todo:
            count[s.patient_id] = count.get(s.patient_id, 0) + 1
        total, acc, target = len(todo), 0, {}
        bounds = [("test", test_fraction * total), ("val", (test_fraction + val_fraction) * total)]
        for p in patients:
            split = next((name for name, b in bounds if acc < b), "train")
            target[p] = split
            acc += count[p]
        for s in todo:
            s.split = target[s.patient_id]
        index.notes.append(f"split by patient ({len(patients)} patients, seed {seed})")
    else:
        by_class: dict[int, list[Sample]] = {}
        for s in todo:
            by_class.setdefault(s.label, []).append(s)
        for label in sorted(by_class):
            group = by_class[label]
            rng.shuffle(group)
            n = len(group)
            start = 0
            for name, frac in fractions:
                k = int(round(frac * n))
                for s in group[start : start + k]:
                    s.split = name
                start += k
            for s in group[start:]:
                s.split = "train"
        why = "--split-by image" if split_by == "image" else "no patient ids found"
        index.notes.append(f"split by image, stratified by class (seed {seed}); {why}")
    return index


def _digest(path: Path) -> str:
    import hashlib

    return hashlib.blake2b(path.read_bytes(), digest_size=16).hexdigest()


def validate_index(index: DatasetIndex, split_by: str = "auto") -> DatasetIndex:
    """Check the dataset table before any training; raise :class:`DataError` naming the problem.

    Refused: a sample without a split or with an unknown one, labels outside ``classes``, class
    names that disagree with labels, the same file listed twice (e.g. a test image relisted as
    train), identical image content in two splits or under two labels, and a patient in two splits
    (unless ``split_by="image"``, which accepts that explicitly).
    """
    k = len(index.classes)
    if k < 2:
        raise DataError(f"Expected at least 2 classes (got {index.classes})")
    if len(set(index.classes)) != k:
        raise DataError(f"Expected distinct class names (got {index.classes})")
    bad = [f"{s.path} (label {s.label})" for s in index.samples if not 0 <= s.label < k]
    if bad:
        raise DataError(f"Expected labels in 0..{k - 1} for classes {index.classes} (got {_few(bad)})")
    wrong = [
        f"{s.path} (label {s.label} = {index.classes[s.label]!r}, class name {s.class_name!r})"
        for s in index.samples
        if s.class_name is not None and s.class_name != index.classes[s.label]
    ]
    if wrong:
        raise DataError(f"Expected class names that agree with labels (got {_few(wrong)})")
    nosplit = [str(s.path) for s in index.samples if s.split not in SPLITS]
    if nosplit:
        raise DataError(f"Expected a split in {SPLITS} for every image (got none for {_few(nosplit)})")
    seen: dict[Path, Sample] = {}
    dup = []
    for s in index.samples:
        key = Path(s.path).resolve()
        if key in seen:
            first = seen[key]
            dup.append(f"{s.path} ({first.split}/{index.classes[first.label]} and {s.split}/{index.classes[s.label]})")
        else:
            seen[key] = s
    if dup:
        raise DataError(f"Expected each image listed once (got duplicates: {_few(dup)})")
    by_hash: dict[str, Sample] = {}
    clash = []
    for s in index.samples:
        try:
            h = _digest(s.path)
        except OSError:
            continue  # unreadable: reported and skipped when the images are loaded
        first = by_hash.setdefault(h, s)
        if first is not s and (first.split != s.split or first.label != s.label):
            clash.append(f"{first.path} ({first.split}, label {first.label}) = {s.path} ({s.split}, label {s.label})")
    if clash:
        raise DataError(
            f"Expected no identical image content in two splits or under two labels (got {_few(clash, 3)})"
        )
    if split_by != "image":
        splits_of: dict[str, set[str]] = {}
        for s in index.samples:
            if s.patient_id is not None:
                splits_of.setdefault(s.patient_id, set()).add(s.split)
        leaked = sorted(p for p, v in splits_of.items() if len(v) > 1)
        if leaked:
            detail = [f"{p} in {sorted(splits_of[p])}" for p in leaked]
            raise DataError(
                f"Expected no patient in two splits (got {len(leaked)}: {_few(detail)}); fix the split, or pass "
                "--split-by image to accept an image-level split"
            )
    return index


# --------------------------------------------------------------------------------------------- images
def _to_rgb8(im) -> object:
    """An RGB 8-bit PIL image from any mode; 16-bit, 32-bit and float images scaled by their true range.

    16-bit (``I;16*``, and ``I`` with values in 0..65535) divides by 65535 / 255 and rounds;
    float (``F``) must lie in [0, 1] and is multiplied by 255. Anything else is refused with the
    range found, never clipped.
    """
    from PIL import Image

    mode = im.mode
    if mode in ("RGB", "L", "P", "PA", "RGBA", "LA", "1", "CMYK", "YCbCr", "RGBX", "La", "RGBa", "LAB", "HSV"):
        if mode == "P" and "transparency" in im.info:
            im = im.convert("RGBA")
        return im.convert("RGB")
    if mode.startswith("I;16") or mode in ("I", "F"):
        import numpy as np

        a = np.asarray(im)
        if mode == "F":
            if not np.isfinite(a).all() or a.min() < 0 or a.max() > 1:
                raise DataError(
                    f"Expected float image values in [0, 1] (got min {float(np.nanmin(a)):.4g}, max "
                    f"{float(np.nanmax(a)):.4g}); convert it to 8/16-bit first"
                )
            v = a.astype(np.float64) * 255.0
        else:
            lo, hi = int(a.min()), int(a.max())
            if lo < 0 or hi > 65535:
                raise DataError(f"Expected 16-bit image values in 0..65535 (got {lo}..{hi} in mode {mode})")
            v = a.astype(np.float64) * (255.0 / 65535.0)
        g = np.rint(v).astype(np.uint8)
        return Image.fromarray(g, mode="L").convert("RGB")
    raise DataError(f"Expected an image mode PIL can convert to RGB (got {mode!r})")


def load_image(path: Path, image_size: int | None) -> Tensor:
    """Read an image with PIL as a ``(3, S, S)`` uint8 tensor (resized when ``image_size`` is given).

    Greyscale, palette, RGBA (alpha dropped), 16-bit (PNG/TIFF) and float images are converted
    to 8-bit RGB by their true range (see :func:`_to_rgb8`), never clipped.
    """
    from PIL import Image

    with Image.open(path) as im:
        im = _to_rgb8(im)
        if image_size is not None and im.size != (image_size, image_size):
            im = im.resize((image_size, image_size), Image.BILINEAR)
        data = torch.frombuffer(bytearray(im.tobytes()), dtype=torch.uint8)
        return data.view(im.size[1], im.size[0], 3).permute(2, 0, 1).contiguous()


class ImageDataset(torch.utils.data.Dataset):
    """Images and labels; ``cache=True`` decodes everything once (bad files reported and dropped).

    Items are ``(image uint8 (3, S, S), label, index)``; with ``cache=False`` an unreadable image
    gives ``None`` (logged with its path) and :func:`collate_skip_none` drops it from the batch.
    """

    def __init__(self, samples: Sequence[Sample], image_size: int | None, cache: bool = True) -> None:
        self.image_size = image_size
        self.skipped: list[tuple[str, str]] = []
        self.images: Tensor | None = None
        if cache:
            good, imgs = [], []
            for s in samples:
                try:
                    imgs.append(load_image(s.path, image_size))
                    good.append(s)
                except Exception as exc:  # noqa: BLE001 - any decoder error means a bad file
                    self._report(s.path, exc)
            if imgs and len({tuple(t.shape) for t in imgs}) > 1:
                raise DataError(
                    "Expected images of one size when no image_size is given "
                    f"(got sizes {sorted({tuple(t.shape) for t in imgs})}); pass --image-size"
                )
            samples = good
            self.images = (
                torch.stack(imgs) if imgs else torch.empty(0, 3, image_size or 1, image_size or 1, dtype=torch.uint8)
            )
        else:
            # decode once without keeping the pixels, so unreadable images are known (and left out
            # of the split sizes) before training, exactly as with the cache
            good = []
            for s in samples:
                try:
                    load_image(s.path, image_size)
                    good.append(s)
                except Exception as exc:  # noqa: BLE001
                    self._report(s.path, exc)
            samples = good
        self.samples = list(samples)
        self.labels = torch.tensor([s.label for s in self.samples], dtype=torch.long)

    @classmethod
    def from_tensors(cls, images: Tensor, labels: Tensor) -> ImageDataset:
        """A cached dataset from ``(N, 3, S, S)`` uint8 images and ``(N,)`` labels."""
        self = cls.__new__(cls)
        self.image_size = images.shape[-1]
        self.skipped = []
        self.images = images
        self.labels = labels.long()
        self.samples = [Sample(Path(f"<memory:{i}>"), int(y)) for i, y in enumerate(labels.tolist())]
        return self

    def _report(self, path: Path, exc: BaseException) -> None:
        msg = f"{type(exc).__name__}: {exc}"
        if any(p == str(path) for p, _ in self.skipped):
            return
        self.skipped.append((str(path), msg))
        log.warning("skipping unreadable image %s (%s)", path, msg)

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, i: int):
        if self.images is not None:
            return self.images[i], self.labels[i], i
        s = self.samples[i]
        try:
            return load_image(s.path, self.image_size), self.labels[i], i
        except Exception as exc:  # noqa: BLE001
            self._report(s.path, exc)
            return None


def collate_skip_none(batch: list) -> tuple[Tensor, Tensor, Tensor] | None:
    """Stack ``(image, label, index)`` items, dropping ``None`` (unreadable images)."""
    batch = [b for b in batch if b is not None]
    if not batch:
        return None
    images, labels, idx = zip(*batch, strict=True)
    return torch.stack(images), torch.stack(labels), torch.tensor(idx)


def load_digits_dataset(image_size: int = 32, seed: int = 0) -> tuple[list[str], dict[str, ImageDataset]]:
    """scikit-learn's bundled handwritten digits (1,797 8x8 scans) as 3-channel images, fixed split.

    The 0..16 grey levels are scaled to 0..255, bilinearly upsampled to ``image_size`` and repeated
    over 3 channels. Split 60/20/20 train/val/test, stratified by class, with a fixed seed.
    """
    try:
        from sklearn.datasets import load_digits
    except ImportError as exc:  # pragma: no cover
        raise ImportError(
            "The default dataset needs scikit-learn (pip install scikit-learn, or '.[examples]'); or pass --data DIR"
        ) from exc
    d = load_digits()
    x = torch.as_tensor(d.images, dtype=torch.float32).unsqueeze(1) * (255.0 / 16.0)
    x = F.interpolate(x, size=(image_size, image_size), mode="bilinear", align_corners=False)
    x = x.clamp(0, 255).round().to(torch.uint8).expand(-1, 3, -1, -1).contiguous()
    y = torch.as_tensor(d.target, dtype=torch.long)
    g = torch.Generator().manual_seed(seed)
    split = torch.empty(len(y), dtype=torch.long)
    for c in range(10):
        idx = (y == c).nonzero().flatten()
        idx = idx[torch.randperm(len(idx), generator=g)]
        n_val = n_test = int(round(0.2 * len(idx)))
        split[idx[:n_test]] = 2
        split[idx[n_test : n_test + n_val]] = 1
        split[idx[n_test + n_val :]] = 0
    out = {name: ImageDataset.from_tensors(x[split == i], y[split == i]) for i, name in enumerate(SPLITS)}
    return [str(i) for i in range(10)], out


def load_index(
    data: str | Path,
    seed: int = 0,
    magnification: str | None = None,
    test_data: str | Path | None = None,
    breakhis_task: str = "binary",
    val_fraction: float = 0.15,
    test_fraction: float = 0.15,
    split_by: str = "auto",
    classes: Sequence[str] | None = None,
) -> DatasetIndex:
    """Read ``data`` (and ``test_data``) into one validated table with a split for every image.

    ``test_data``: a second directory whose images all form the test split (then ``data`` is
    split into train and val only). Raises :class:`DataError` for anything
    :func:`validate_index` refuses.
    """
    index = discover(data, magnification, breakhis_task, classes)
    if test_data is not None:
        for s in index.samples:
            if s.split == "test":
                s.split = None  # re-split into train/val below
        test_index = discover(test_data, magnification, breakhis_task, classes)
        if test_index.classes != index.classes:
            raise DataError(
                f"Expected the same classes in --test-data as in --data (got {test_index.classes} vs {index.classes})"
            )
        for s in test_index.samples:
            s.split = "test"
        assign_splits(
            index, seed, val_fraction / (1 - test_fraction) if test_fraction < 1 else 0.0, 0.0, split_by=split_by
        )
        samples = [s for s in index.samples if s.split != "test"] + test_index.samples
        index = DatasetIndex(index.classes, samples, index.layout, index.root, index.notes + test_index.notes)
    else:
        assign_splits(index, seed, val_fraction, test_fraction, split_by=split_by)
    return validate_index(index, split_by)


def build_datasets(
    data: str | Path | None,
    image_size: int | None,
    seed: int = 0,
    magnification: str | None = None,
    test_data: str | Path | None = None,
    breakhis_task: str = "binary",
    cache: bool = True,
    limit: int | None = None,
    val_fraction: float = 0.15,
    test_fraction: float = 0.15,
    train_limit: int | None = None,
    split_by: str = "auto",
    classes: Sequence[str] | None = None,
    index_out: list | None = None,
) -> tuple[list[str], dict[str, ImageDataset], list[str]]:
    """Class names, ``{"train", "val", "test"}`` datasets and notes for the CLI.

    ``data``: a directory (see :func:`load_index`), or ``None`` / ``"digits"`` for scikit-learn's
    digits. ``limit``: keep at most this many images per split (seeded, for smoke runs);
    ``train_limit``: at most this many training images. Unreadable images are reported in the
    notes and in each dataset's ``skipped`` and are not counted in its length. ``index_out``: a
    list that receives the validated :class:`DatasetIndex` (directories only).
    """
    notes: list[str] = []
    if data is None or str(data) == "digits":
        classes, sets = load_digits_dataset(image_size or 32)
        notes.append("default data: scikit-learn handwritten digits (8x8 scans upsampled), fixed 60/20/20 split")
        g = torch.Generator().manual_seed(seed)
        for k, ds in list(sets.items()):
            cap = min(x for x in (limit, train_limit if k == "train" else None, len(ds)) if x is not None)
            if cap < len(ds):
                keep = torch.randperm(len(ds), generator=g)[:cap].sort().values
                sets[k] = ImageDataset.from_tensors(ds.images[keep], ds.labels[keep])
    else:
        index = load_index(
            data, seed, magnification, test_data, breakhis_task, val_fraction, test_fraction, split_by, classes
        )
        if index_out is not None:
            index_out.append(index)
        notes.append(f"data: {data} (layout {index.layout}, {len(index.samples)} images, classes {index.classes})")
        notes.extend(index.notes)
        classes = index.classes
        parts = {name: index.split(name) for name in SPLITS}
        rng = random.Random(seed)
        for k in SPLITS:
            cap = min(x for x in (limit, train_limit if k == "train" else None, len(parts[k])) if x is not None)
            if cap < len(parts[k]):
                parts[k] = sorted(rng.sample(parts[k], cap), key=lambda s: str(s.path))
        sets = {k: ImageDataset(v, image_size, cache=cache) for k, v in parts.items()}
        for k, ds in sets.items():
            for path, msg in ds.skipped:
                notes.append(f"skipped unreadable image ({k}): {path} ({msg})")
    if len(sets["train"]) == 0:
        raise DataError("Expected a non-empty train split (got 0 readable images); check --data and the split")
    return classes, sets, notes


# --------------------------------------------------------------------------------------------- augmentation
def augment_batch(
    x: Tensor,
    generator: torch.Generator,
    rotate: bool = True,
    max_shift: float = 0.1,
    flip: bool = False,
) -> Tensor:
    """The paper's augmentation on a ``(B, C, H, W)`` float batch: 0/90/180/270 rotations, translations.

    Each image gets a random multiple of 90 degrees (``torch.rot90``; square images) and a random
    shift of up to ``max_shift * size`` pixels in each direction, with reflect padding so no black
    borders appear; optional horizontal/vertical flips. Random numbers come from ``generator``
    (on the CPU), so a resumed run repeats them exactly.
    """
    b, _, h, w = x.shape
    if b == 0:
        return x
    out = x
    if rotate and h == w:
        k = torch.randint(0, 4, (b,), generator=generator)
        rotated = [torch.rot90(x, int(r), dims=(2, 3)) if r else x for r in range(4)]
        out = torch.stack(rotated)[k.to(x.device), torch.arange(b, device=x.device)]
    if flip:
        fh = torch.rand(b, generator=generator) < 0.5
        fv = torch.rand(b, generator=generator) < 0.5
        out = torch.where(fh.to(x.device).view(b, 1, 1, 1), out.flip(3), out)
        out = torch.where(fv.to(x.device).view(b, 1, 1, 1), out.flip(2), out)
    m = int(math.floor(max_shift * min(h, w)))
    m = min(m, h - 1, w - 1)
    if m > 0:
        pad = F.pad(out, (m, m, m, m), mode="reflect")
        dy = torch.randint(0, 2 * m + 1, (b,), generator=generator).to(x.device)
        dx = torch.randint(0, 2 * m + 1, (b,), generator=generator).to(x.device)
        rows = (dy.view(b, 1) + torch.arange(h, device=x.device)).view(b, 1, h, 1).expand(b, x.shape[1], h, w + 2 * m)
        pad = pad.gather(2, rows)
        cols = (dx.view(b, 1) + torch.arange(w, device=x.device)).view(b, 1, 1, w).expand(b, x.shape[1], h, w)
        out = pad.gather(3, cols)
    return out
