"""Rebuild the embedded tissue sample from the shared developer set (run once; the result is committed).

    python examples/rmcg/data/make_sample.py ../shared/data/breast_idc_patches examples/rmcg/data

Takes 200 + 200 train, 60 + 60 val and 60 + 60 test patches (non-IDC + IDC) from the shared
MANIFEST, keeping its patient-level split, round-robin over the patients of each split and class
so that as many patients as possible appear. Files are copied byte for byte; their sha256 is
checked against the source MANIFEST.
"""

from __future__ import annotations

import csv
import hashlib
import random
import shutil
import sys
from pathlib import Path

PER_CLASS = {"train": 200, "val": 60, "test": 60}
SEED = 0


def main(src: Path, dst: Path) -> None:
    rows = list(csv.DictReader(open(src / "MANIFEST.csv", newline="", encoding="utf-8")))
    rng = random.Random(SEED)
    chosen = []
    for split, k in PER_CLASS.items():
        for label in ("0", "1"):
            by_patient: dict[str, list[dict]] = {}
            for r in rows:
                if r["split"] == split and r["label"] == label:
                    by_patient.setdefault(r["patient_id"], []).append(r)
            patients = sorted(by_patient)
            rng.shuffle(patients)
            for p in patients:
                rng.shuffle(by_patient[p])
            picked: list[dict] = []
            while len(picked) < k:
                for p in patients:
                    if by_patient[p] and len(picked) < k:
                        picked.append(by_patient[p].pop())
            chosen += picked
    fields = ["path", "label", "label_name", "patient_id", "split", "sha256", "source_repo", "source_commit",
              "source_path"]
    chosen.sort(key=lambda r: ({"train": 0, "val": 1, "test": 2}[r["split"]], r["path"]))
    for r in chosen:
        data = (src / r["path"]).read_bytes()
        assert hashlib.sha256(data).hexdigest() == r["sha256"], r["path"]
        (dst / r["path"]).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src / r["path"], dst / r["path"])
    with open(dst / "MANIFEST.csv", "w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, fieldnames=fields, extrasaction="ignore", lineterminator="\n")
        w.writeheader()
        w.writerows(chosen)


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]))
