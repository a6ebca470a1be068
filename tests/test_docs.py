"""The documentation: the site builds without a warning, its examples run, its generators are sound.

The two builds run Sphinx in a subprocess, as CI and a user would
(``sphinx-build -W --keep-going -b html docs docs/_build/html``); each takes well under a minute.
The generator tests (Markdown conversion, benchmark tables) are fast and check their reST with
docutils directly.
"""

from __future__ import annotations

import glob
import json
import os
import re
import subprocess
import sys

import pytest
from hypothesis import given
from hypothesis import strategies as st

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DOCS = os.path.join(ROOT, "docs")
sys.path.insert(0, os.path.join(DOCS, "_ext"))

pytest.importorskip("sphinx")
pytest.importorskip("furo")
pytest.importorskip("sphinx_autodoc_typehints")

import gv_bench  # noqa: E402
from gv_md2rst import inline, md_to_rst  # noqa: E402


def _sphinx(builder: str, out: str, doctrees: str) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    # Docs examples run as a user runs them: not in the Triton interpreter the test suite enables.
    env.pop("TRITON_INTERPRET", None)
    env.pop("GRAPHVISION_DOCS_ONLINE", None)
    env.setdefault("PYTHONWARNINGS", "ignore::DeprecationWarning")
    cmd = [sys.executable, "-m", "sphinx", "-W", "--keep-going", "-q", "-b", builder, "-d", doctrees, DOCS, out]
    return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600, cwd=ROOT)


def _public_paths() -> list[str]:
    import graphvision.functional
    import graphvision.nn
    import graphvision.ops

    return [f"{m.__name__}.{n}" for m in (graphvision.functional, graphvision.nn, graphvision.ops) for n in m.__all__]


@pytest.mark.slow
def test_html_build_has_no_warnings_and_documents_everything(tmp_path) -> None:
    out = tmp_path / "html"
    proc = _sphinx("html", str(out), str(tmp_path / "doctrees"))
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, f"sphinx-build failed:\n{log[-6000:]}"
    assert "WARNING" not in log and "ERROR" not in log, log[-6000:]

    pages = {p: open(p, encoding="utf-8").read() for p in glob.glob(str(out / "api" / "generated" / "*.html"))}
    assert pages, "no API pages were generated"
    everything = "\n".join(pages.values())
    import graphvision

    missing = []
    for path in _public_paths():
        ns, name = path.rsplit(".", 1)
        obj = getattr(__import__(ns, fromlist=[name]), name)
        anchors = [f'id="{path}"']
        # An object exported under two names is documented once, under its first public path.
        anchors += [f'id="{ns2}.{name}"' for ns2 in ("graphvision", "graphvision.functional", "graphvision.ops")]
        if not any(a in everything for a in anchors):
            missing.append(path)
    assert not missing, f"public names without an entry in the built API reference: {missing}"

    # "Shape:" renders as a field, like "Parameters" and "Returns".
    if any("Shape:" in (getattr(__import__(p.rsplit('.', 1)[0], fromlist=['x']), p.rsplit('.', 1)[1]).__doc__ or "")
           for p in _public_paths()):
        assert re.search(r'<dt class="field-\w+">Shape<span class="colon">:</span></dt>', everything)
        assert not re.search(r"<strong>- \w+</strong>", everything), "a Shape bullet leaked into a field name"

    caps = (out / "capabilities.html").read_text(encoding="utf-8")
    assert "Deterministic" in caps and "Layer" in caps
    assert (out / "benchmarks.html").exists() and (out / "rmcg_comparison.html").exists()
    assert graphvision.__version__ in (out / "index.html").read_text(encoding="utf-8")


@pytest.mark.slow
def test_doctest_build_runs_every_example(tmp_path) -> None:
    proc = _sphinx("doctest", str(tmp_path / "doctest"), str(tmp_path / "doctrees"))
    log = proc.stdout + proc.stderr
    report = tmp_path / "doctest" / "output.txt"
    detail = report.read_text() if report.exists() else ""
    assert proc.returncode == 0, f"sphinx doctest failed:\n{log[-4000:]}\n{detail[-6000:]}"
    ran = re.search(r"^\s*(\d+) tests?\s*$", detail, re.M)
    failed = re.search(r"^\s*(\d+) failures? in tests", detail, re.M)
    assert ran and int(ran.group(1)) >= 10, f"the doctest build ran too few examples:\n{detail[-2000:]}"
    assert failed and int(failed.group(1)) == 0, detail[-6000:]


# -- Markdown -> reST ----------------------------------------------------------------------------


def _rst_problems(rst: str) -> list[str]:
    """docutils system messages (warnings and errors) produced by parsing ``rst``."""
    import docutils.core
    import docutils.nodes
    import docutils.utils

    doctree = docutils.core.publish_doctree(
        "Title\n=====\n\n" + rst,
        settings_overrides={"report_level": 5, "halt_level": 5, "warning_stream": False, "syntax_highlight": "none"},
    )
    return [m.astext() for m in doctree.findall(docutils.nodes.system_message) if m["level"] >= 2]


RESULTS_MD = """\
# RMCG vs baselines (breast IDC patches)

Protocol: 3 seeds x 5 epochs, `--image-size 50`, patient-level split; mean ± std over seeds.
See [the paper](https://arxiv.org/abs/2000.00000) and **notes** below_.

| Model | Accuracy | Macro F1 | img/s (CPU) |
|:------|---------:|:--------:|---:|
| rmcg | 81.2 ± 1.1 | **0.80** | 120 |
| resnet18-gcn | 80.0 ± 0.9 | 0.79 | `n/a` |
| a\\|b | x_y_ | *it* | <br> |

- item one with snake_case_name
- item two
  continued
1. first
2. second

```bash
python examples/rmcg/compare.py --data ../shared/data/breast_idc_patches
```

```unknownlang
raw
```
> a quote | with a pipe
---
Trailing text with * star and |pipe| and `code`.

A code span across a line break (`compare.py --speed
--speed-width 64`) stays one span.
"""


def test_md_to_rst_results_table_is_clean_rest() -> None:
    rst = md_to_rst(RESULTS_MD)
    assert _rst_problems(rst) == []
    assert ".. list-table::" in rst and ":header-rows: 1" in rst
    assert "     - 81.2 ± 1.1" in rst and "**0.80**" in rst
    assert "`the paper <https://arxiv.org/abs/2000.00000>`__" in rst
    assert ".. code:: bash" in rst and ".. code:: text" in rst
    assert "``compare.py --speed --speed-width 64``" in rst


_MD_PIECES = list("ab _*`|#-[]()<>!:\\\n1.") + [
    "**", "```", "| a | b |\n|---|---|\n", "\n- ", "\n1. ", "# ", "http://x.y", "[t](http://u)", "![i](p.png)",
    "~~~", "> ", "::", "=", "^", "    ", "\n\n",
]


@given(st.lists(st.sampled_from(_MD_PIECES), max_size=40).map("".join))
def test_md_to_rst_never_produces_a_rest_warning(md: str) -> None:
    rst = md_to_rst(md)
    assert _rst_problems(rst) == [], (md, rst)


def test_inline_conversion() -> None:
    assert inline("`x`") == "``x``"
    assert inline("a_b_") == "a\\_b\\_"
    assert inline("**bold**") == "**bold**"
    assert inline("[t](http://u)") == "`t <http://u>`__"
    assert inline("x`y`z") == "x\\ ``y``\\ z"


# -- benchmark rendering --------------------------------------------------------------------------


def test_benchmarks_absent_gives_a_note(tmp_path) -> None:
    rst = gv_bench.render_benchmarks(str(tmp_path / "nothing"), str(tmp_path / "out"), "/api/generated")
    assert ".. note::" in rst and _rst_problems(rst) == []


def test_benchmarks_tables_and_plot(tmp_path) -> None:
    res = tmp_path / "results"
    res.mkdir()
    records = [
        {"op": "spmm", "graph": "grid8", "C": 64, "provider": p, "median_ms": t, "iqr_ms": 0.1, "peak_mib": 3.5,
         "shape": [64, 56, 56]}
        for p, t in (("graphvision", 1.5), ("torch_sparse_csr", 2.0), ("pyg|weird_name", 3.0))
    ]
    payload = {"device": "cpu", "meta": {"torch": "2.13"}, "results": records}
    (res / "bench_ops_cpu.json").write_text(json.dumps(payload))
    (res / "broken.json").write_text("{not json")
    (res / "bench_extra.md").write_text("| a | b |\n|---|---|\n| 1 | 2 |\n")
    (res / "bench_ops_cpu.md").write_text("| shown | from json |\n|---|---|\n")
    out = tmp_path / "out"
    rst = gv_bench.render_benchmarks(str(res), str(out), "/api/generated")
    assert "bench ops cpu" in rst and "pyg\\|weird\\_name" in rst and "64x56x56" in rst
    assert "Could not read" in rst and "broken.json" in rst
    assert "bench extra" in rst and "from json" not in rst
    assert (out / "bench_bench_ops_cpu.png").stat().st_size > 1000
    assert ".. image:: /api/generated/bench_bench_ops_cpu.png" in rst
    # The image directive points into a Sphinx source tree; docutils alone cannot resolve it.
    assert _rst_problems(rst.replace(".. image::", ".. comment image::")) == []


def test_benchmark_scripts_format(tmp_path) -> None:
    """The layout written by benchmarks/bench_*.py: metadata, graphs, rows per op x config x provider."""
    res = tmp_path / "results"
    res.mkdir()
    rows = []
    for op in ("spmm", "attention_aggregate"):
        for prov, t in (("graphvision[torch]", 1.0), ("PyG GCNConv propagate", 3.0)):
            rows.append({"op": op, "config": "grid B8 28x28 C64", "provider": prov, "fwd_ms": t, "fwd_p20_ms": t,
                         "fwd_p80_ms": 1.2 * t, "full_ms": 2 * t, "peak_fwd_mb": 3.5, "peak_full_mb": 5.0,
                         "fwd_gbs": 0.5, "fwd_pct_copy": 12.0, "speedup": {"x": {"fwd": 2.0}}})
    rows.append({"op": "spmm", "config": "grid B8 28x28 C64", "provider": "torch_sparse", "error": "ImportError: no"})
    payload = {"metadata": {"device": "cpu", "commit": "abc", "torch": "2.13", "args": {"stat": "min"}},
               "graphs": [{"name": "grid B8 28x28 C64", "kind": "grid", "n": 6272, "e": 47520, "c": 64,
                           "conversion_ms": 1.7}],
               "rows": rows}
    (res / "ops_cpu_quick.json").write_text(json.dumps(payload))
    run = res / "h200_run1_2026-11-28"  # a run folder with its README, shown as one section
    run.mkdir()
    (run / "ops_cuda.json").write_text(json.dumps(payload))
    (run / "ops_cuda.md").write_text("| twin | of the json |\n|---|---|\n")
    (run / "README.md").write_text("# H200 run 1\n\nThe Triton rows **failed** to compile in this run.\n")
    out = tmp_path / "out"
    rst = gv_bench.render_benchmarks(str(res), str(out), "/api/generated")
    assert rst.index("ops cpu quick") < rst.index("Run h200_run1_2026-11-28") < rst.index("**failed**")
    assert rst.index("**failed**") < rst.index("ops cuda") and "of the json" not in rst
    assert (out / "bench_h200_run1_2026-11-28__ops_cuda.png").exists()
    assert "**spmm**" in rst and "**attention\\_aggregate**" in rst
    assert "**graphvision[torch]**" in rst and "1 (1-1.2)" in rst and "3.5 / 5" in rst
    assert "ImportError: no" in rst and "commit abc" in rst and "build ms" in rst
    assert (out / "bench_ops_cpu_quick.png").stat().st_size > 1000
    assert _rst_problems(rst.replace(".. image::", ".. comment image::")) == []


def test_committed_results_render(tmp_path) -> None:
    rst = gv_bench.render_benchmarks(os.path.join(ROOT, "benchmarks", "results"), str(tmp_path), "/api/generated")
    assert _rst_problems(re.sub(r"\.\. image::", ".. comment image::", rst)) == []
