"""examples/vig/train.py runs end to end on a few patches (no accuracy asserted)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT.parent / "shared" / "data" / "breast_idc_patches"


@pytest.mark.slow
@pytest.mark.skipif(not (DATA / "MANIFEST.csv").exists(), reason="shared histology patches not present")
def test_vig_example_smoke(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, str(ROOT / "examples" / "vig" / "train.py"), "--data", str(DATA), "--limit", "24",
           "--epochs", "1", "--image-size", "32", "--batch-size", "12", "--threads", "1", "--out", str(tmp_path)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, cwd=ROOT, env=env)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert "test acc" in proc.stdout
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert len(metrics["history"]) == 1 and 0.0 <= metrics["test_acc"] <= 100.0
