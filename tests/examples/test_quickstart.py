"""The quickstart example runs end to end and writes its figure."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "examples" / "quickstart.py"


@pytest.mark.parametrize("use_file", [False, True])
def test_quickstart_writes_png(tmp_path, use_file):
    pytest.importorskip("matplotlib")
    pytest.importorskip("skimage")
    args = [sys.executable, str(SCRIPT)]
    if use_file:
        # Any image file works with --image (here a real patch of the shared data when present,
        # else a generated one), at another size and patch size.
        from PIL import Image

        shared = sorted((ROOT.parent / "shared" / "data" / "breast_idc_patches").rglob("*.png"))[:1]
        src = shared[0] if shared else tmp_path / "in.png"
        if not shared:
            Image.new("RGB", (50, 40), (200, 120, 160)).save(src)
        args += ["--image", str(src), "--size", "48", "--patch-size", "6", "--n-segments", "20", "--out", "fig/out.png"]
        out = tmp_path / "fig" / "out.png"
    else:
        out = tmp_path / "quickstart_graphs.png"
    env = {**os.environ, "MPLBACKEND": "Agg", "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(args, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert out.is_file() and out.stat().st_size > 10_000
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "superpixel" in proc.stdout.lower() or "SLIC" in proc.stdout

