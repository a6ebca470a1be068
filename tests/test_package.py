"""Package-level checks: import hygiene, metadata, and that the README's commands stay true."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import graphvision

ROOT = Path(__file__).resolve().parents[1]
OPTIONAL = ("torch_scatter", "torch_sparse", "torch_geometric", "skimage", "sklearn", "matplotlib", "hypothesis")


def test_import_does_not_pull_optional_packages() -> None:
    code = (
        "import sys, torch, torch._dynamo\n"
        "before = set(sys.modules)\n"
        "import graphvision, graphvision.nn, graphvision.functional, graphvision.ops\n"
        f"bad = sorted({{m.split('.')[0] for m in set(sys.modules) - before}} & set({OPTIONAL!r} + ('triton',)))\n"
        "print(','.join(bad))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "", f"import graphvision imported optional packages: {out}"


def test_version_and_typed_marker() -> None:
    assert re.fullmatch(r"\d+\.\d+\.\d+", graphvision.__version__)
    assert (ROOT / "graphvision" / "py.typed").is_file()


def test_readme_test_command_is_what_ci_runs() -> None:
    readme = (ROOT / "README.md").read_text()
    ci = (ROOT / ".ci" / "run").read_text()
    cmd = "pip install torch==2.13.0 && pip install -e \".[test,docs,examples]\" && python -m pytest -n 2 -q"
    assert cmd in readme, "README's test command changed: update .ci/run and this test"
    assert cmd in ci, ".ci/run must run the README's test command"
