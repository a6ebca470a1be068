"""The distribution: ``python -m build`` makes a wheel and an sdist that ``twine check --strict``
accepts, without deprecation warnings, and the wheel holds what users need (the typing marker,
the Triton kernels, the layers' declared capabilities behind the docs' table) and no tests.

Slow (an isolated build installs setuptools): runs in CI's second step, ``pytest -m slow``.
"""

from __future__ import annotations

import glob
import importlib.util
import os
import shutil
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.slow


@pytest.fixture(scope="session")
def dists(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    """The wheel and sdist, built once per test run even across xdist workers (as the docs are)."""
    if importlib.util.find_spec("build") is None or importlib.util.find_spec("twine") is None:
        pytest.skip("needs the test extra's build and twine")
    from filelock import FileLock  # a dependency of torch

    shared = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        shared = shared.parent  # this run's folder, above the workers' popen-gw* folders
    with FileLock(str(shared / "gv_dist.lock")):
        done = shared / "gv_dist" / "result.txt"
        if not done.exists():
            log = _build(shared / "gv_dist")
            done.write_text(log)
        tmp = shared / "gv_dist"
        log = done.read_text()
    (wheel,) = glob.glob(str(tmp / "out" / "*.whl"))
    (sdist,) = glob.glob(str(tmp / "out" / "*.tar.gz"))
    return {"log": log, "wheel": wheel, "sdist": sdist}


def _build(tmp: Path) -> str:
    shutil.rmtree(tmp, ignore_errors=True)  # a failed build of another worker leaves a partial tree
    tmp.mkdir(parents=True)
    src = tmp / "src"
    # Build from a copy of the package's own files, as a clean checkout would, so the build
    # writes no build/ or egg-info into the working tree.
    src.mkdir()
    for name in ("pyproject.toml", "README.md", "LICENSE", "MANIFEST.in"):
        shutil.copy2(ROOT / name, src / name)
    shutil.copytree(ROOT / "graphvision", src / "graphvision", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHONWARNINGS")}
    env["PYTHONWARNINGS"] = "default"  # show every DeprecationWarning the backend emits
    proc = subprocess.run(
        [sys.executable, "-m", "build", "--outdir", str(tmp / "out"), str(src)],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, log[-6000:]
    return log


def test_build_has_no_deprecation_warnings(dists: dict[str, object]) -> None:
    log = str(dists["log"])
    bad = [line for line in log.splitlines() if "deprecat" in line.lower()]
    assert not bad, "\n".join(bad)


def test_twine_check_strict(dists: dict[str, object]) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "twine", "check", "--strict", str(dists["wheel"]), str(dists["sdist"])],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.count("PASSED") == 2, proc.stdout


def test_wheel_contents(dists: dict[str, object]) -> None:
    names = set(zipfile.ZipFile(str(dists["wheel"])).namelist())
    assert "graphvision/py.typed" in names
    kernels = sorted(p.relative_to(ROOT).as_posix() for p in (ROOT / "graphvision/ops/_triton").glob("*.py"))
    assert any(k.rsplit("/", 1)[1].startswith("k_") for k in kernels)
    assert set(kernels) <= names, sorted(set(kernels) - names)
    # The docs' capability table is generated from each layer's ``_capabilities``; the files
    # that declare them ship in the wheel, so the table can be regenerated from an install.
    declaring = sorted(
        p.relative_to(ROOT).as_posix() for p in (ROOT / "graphvision").rglob("*.py") if "_capabilities" in p.read_text()
    )
    assert declaring and set(declaring) <= names, sorted(set(declaring) - names)
    assert not [n for n in names if n.startswith(("tests/", "docs/", "examples/", "benchmarks/")) or "conftest" in n]
    assert not [n for n in names if "__pycache__" in n or n.endswith(".pyc")]
    meta_name = next(n for n in names if n.endswith(".dist-info/METADATA"))
    meta = zipfile.ZipFile(str(dists["wheel"])).read(meta_name).decode()
    assert "License-Expression: MIT" in meta
    assert "License-File: LICENSE" in meta
    assert any(n.endswith(".dist-info/licenses/LICENSE") for n in names)
    assert "Requires-Dist: torch>=2.4" in meta and "Requires-Dist: einops>=0.7" in meta


def test_sdist_contents(dists: dict[str, object]) -> None:
    names = tarfile.open(str(dists["sdist"])).getnames()
    rel = {n.split("/", 1)[1] for n in names if "/" in n}
    assert {"LICENSE", "README.md", "pyproject.toml", "graphvision/py.typed"} <= rel
    assert not [n for n in rel if n.startswith("tests")]
