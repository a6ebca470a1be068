"""The documentation: the site builds without a warning, its examples run, its generators are sound.

The docs are built once per test run (HTML, then the doctest builder on the same doctrees, so
the sources are read once), in a subprocess as CI and a user would
(``sphinx-build -W --keep-going -b html docs docs/_build/html``); those tests are ``slow`` (CI's
second step). The generator tests (benchmark tables) are fast and check their reST with docutils
directly.
"""

from __future__ import annotations

import glob
import json
import os
import re
import shutil
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DOCS = os.path.join(ROOT, "docs")
sys.path.insert(0, os.path.join(DOCS, "_ext"))

pytest.importorskip("sphinx")
pytest.importorskip("furo")
pytest.importorskip("sphinx_autodoc_typehints")
pytest.importorskip("myst_parser")
pytest.importorskip("sphinxcontrib.katex")

import gv_bench  # noqa: E402


def _sphinx(builder: str, out: str, doctrees: str) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    # Docs examples run as a user runs them: not in the Triton interpreter the test suite enables.
    env.pop("TRITON_INTERPRET", None)
    env.pop("GRAPHVISION_DOCS_ONLINE", None)
    env.setdefault("PYTHONWARNINGS", "ignore::DeprecationWarning")
    cmd = [sys.executable, "-m", "sphinx", "-W", "--keep-going", "-q", "-b", builder, "-d", doctrees, DOCS, out]
    # Output goes to a file, not a pipe: the KaTeX server (a node process the build starts)
    # inherits stderr, and a pipe it holds open would keep subprocess.run waiting.
    log_path = f"{out}.log"
    with open(log_path, "w") as log:
        proc = subprocess.run(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, timeout=1200, cwd=ROOT)
    with open(log_path, encoding="utf-8", errors="replace") as log:
        return subprocess.CompletedProcess(cmd, proc.returncode, log.read(), "")


def _public_paths() -> list[str]:
    import graphvision.functional
    import graphvision.nn
    import graphvision.ops

    return [f"{m.__name__}.{n}" for m in (graphvision.functional, graphvision.nn, graphvision.ops) for n in m.__all__]


@pytest.fixture(scope="session")
def built_docs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    """The HTML and doctest builds, made once per test run even across xdist workers.

    The doctest builder reuses the HTML build's doctrees, so the sources (and every autodoc
    import) are read once. Under xdist the workers share this run's folder above their base temp
    dirs; a lock makes the first one build and the others read its result.
    """
    from filelock import FileLock  # a dependency of torch

    shared = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        shared = shared.parent  # this run's folder, above the workers' popen-gw* folders
    root = shared / "gv_docs_build"
    with FileLock(str(shared / "gv_docs_build.lock")):
        result = root / "result.json"
        if not result.exists():
            root.mkdir(exist_ok=True)
            doctrees = str(root / "doctrees")
            html = _sphinx("html", str(root / "html"), doctrees)
            doctest = _sphinx("doctest", str(root / "doctest"), doctrees)
            result.write_text(json.dumps({
                "html_rc": html.returncode, "html_log": html.stdout + html.stderr,
                "doctest_rc": doctest.returncode, "doctest_log": doctest.stdout + doctest.stderr,
            }))
        data = json.loads(result.read_text())
    data["html"] = root / "html"
    data["doctest"] = root / "doctest"
    return data


@pytest.mark.slow
def test_html_build_has_no_warnings_and_documents_everything(built_docs) -> None:
    out = built_docs["html"]
    log = built_docs["html_log"]
    assert built_docs["html_rc"] == 0, f"sphinx-build failed:\n{log[-6000:]}"
    assert "WARNING" not in log and "ERROR" not in log, log[-6000:]
    pages = {p: open(p, encoding="utf-8").read() for p in glob.glob(str(out / "api" / "generated" / "*.html"))}
    assert pages, "no API pages were generated"
    everything = "\n".join(pages.values())
    import graphvision

    missing = []
    for path in _public_paths():
        ns, name = path.rsplit(".", 1)
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


    # Markdown read by myst-parser: the RMCG results page has its tables and its in-page links.
    rmcg = (out / "rmcg_comparison.html").read_text(encoding="utf-8")
    if os.path.exists(os.path.join(DOCS, "rmcg_results.md")):
        assert "<table" in rmcg and 'href="#why-the-numbers-differ-from-the-paper"' in rmcg
        assert 'id="why-the-numbers-differ-from-the-paper"' in rmcg
        assert "](#" not in rmcg and "| ---" not in rmcg, "raw Markdown leaked into the page"


def _pages_with_math(out) -> list[str]:
    pages = []
    for p in glob.glob(str(out / "**" / "*.html"), recursive=True):
        text = open(p, encoding="utf-8").read()
        if 'class="math' in text:
            pages.append(p)
    return pages


@pytest.mark.slow
def test_math_is_rendered_offline(built_docs) -> None:
    """No page loads a math script or stylesheet from the internet; formulas are MathML already."""
    out = built_docs["html"]
    assert built_docs["html_rc"] == 0, built_docs["html_log"][-4000:]
    remote = re.compile(r"""<(?:script|link)\b[^>]*(?:src|href)=["'](?:https?:)?//[^"']*""", re.I)
    offenders = {}
    for p in glob.glob(str(out / "**" / "*.html"), recursive=True):
        hits = [m.group(0) for m in remote.finditer(open(p, encoding="utf-8").read())]
        if hits:
            offenders[os.path.relpath(p, out)] = hits[:3]
    assert not offenders, f"pages load remote scripts/styles: {offenders}"
    math_pages = _pages_with_math(out)
    assert len(math_pages) >= 5, "expected formulas on the API pages"
    for p in math_pages:
        text = open(p, encoding="utf-8").read()
        assert "<math" in text, f"{p}: math was not pre-rendered"
        assert "mathjax" not in text.lower() and "katex.min.js" not in text, p
        # every math span/div holds rendered output, not the LaTeX source between delimiters
        assert not re.search(r'class="math[^"]*">\s*\\[(\[]', text), f"{p}: raw LaTeX left for a script"
        assert "katex-error" not in text, f"{p}: KaTeX could not parse a formula"


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("chromium") is None, reason="needs the system chromium (Debian package chromium)")
def test_math_is_visible_in_a_headless_browser(built_docs, tmp_path) -> None:
    """Chromium loads the API pages offline, runs their scripts, and shows no raw LaTeX."""
    out = built_docs["html"]
    math_pages = sorted(p for p in _pages_with_math(out) if os.sep + "api" + os.sep in p)
    assert math_pages
    for page in math_pages[:6]:
        proc = subprocess.run(
            ["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
             "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic",
             f"--user-data-dir={tmp_path / 'profile'}", "--virtual-time-budget=3000", "--dump-dom",
             "file://" + page],
            capture_output=True, text=True, timeout=120,
        )
        assert proc.returncode == 0, proc.stderr[-2000:]
        dom = proc.stdout
        assert "<math" in dom, page
        # The DOM keeps the TeX source in MathML <annotation> (never displayed); drop those, and
        # the hidden HTML twin, then look for LaTeX commands in what remains.
        visible = re.sub(r"<annotation\b.*?</annotation>", "", dom, flags=re.S)
        visible = re.sub(r"<(script|style)\b.*?</\1>", "", visible, flags=re.S)
        text = re.sub(r"<[^>]+>", " ", visible)
        raw = [cmd for cmd in ("\\frac", "\\sum", "\\mathbf", "\\alpha") if cmd in text]
        assert not raw, f"{page}: raw LaTeX visible: {raw}"


@pytest.mark.slow
def test_doctest_build_runs_every_example(built_docs) -> None:
    log = built_docs["doctest_log"]
    report = built_docs["doctest"] / "output.txt"
    detail = report.read_text() if report.exists() else ""
    assert built_docs["doctest_rc"] == 0, f"sphinx doctest failed:\n{log[-4000:]}\n{detail[-6000:]}"
    ran = re.search(r"^\s*(\d+) tests?\s*$", detail, re.M)
    failed = re.search(r"^\s*(\d+) failures? in tests", detail, re.M)
    assert ran and int(ran.group(1)) >= 10, f"the doctest build ran too few examples:\n{detail[-2000:]}"
    assert failed and int(failed.group(1)) == 0, detail[-6000:]


# -- reST checks ---------------------------------------------------------------------------------


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


def _uncheckable(rst: str) -> str:
    """Comment out what only Sphinx can resolve: images in its source tree, srcdir-rooted includes."""
    return rst.replace(".. image::", ".. comment image::").replace(".. include::", ".. comment include::")


# -- benchmark rendering --------------------------------------------------------------------------


def test_benchmarks_absent_gives_a_note(tmp_path) -> None:
    rst = gv_bench.render_benchmarks(str(tmp_path / "nothing"), str(tmp_path / "out"), "/api/generated")
    assert ".. note::" in rst and _rst_problems(rst) == []


def _headings(rst: str) -> list[str]:
    """Section titles of a reST text (a line underlined by a run of one punctuation character)."""
    lines = rst.splitlines()
    return [t for t, u in zip(lines, lines[1:])
            if t.strip() and re.fullmatch(r"([-=~^\"])\1{3,}", u) and len(u) >= len(t.rstrip())]


def _savefig_scales(monkeypatch) -> list[tuple[str, str]]:
    """Record the x and y scale of every axes of every figure matplotlib saves."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    scales: list[tuple[str, str]] = []
    original = Figure.savefig

    def savefig(self, *args, **kwargs):
        scales.extend((ax.get_xscale(), ax.get_yscale()) for ax in self.axes)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(Figure, "savefig", savefig)
    return scales


def test_benchmarks_unknown_files_get_titled_sections(tmp_path, monkeypatch) -> None:
    """A file the page does not know gets a section titled by its Markdown twin, a linear plot."""
    scales = _savefig_scales(monkeypatch)
    res = tmp_path / "results"
    res.mkdir()
    records = [
        {"op": "spmm", "graph": "grid8", "provider": p, "median_ms": t, "min_ms": 0.5 * t, "max_ms": 2 * t,
         "mean_ms": 9.0, "iqr_ms": 0.1, "peak_mib": 3.5, "shape": [64, 56, 56]}
        for p, t in (("graphvision", 1.5), ("torch_sparse_csr", 3.0), ("pyg|weird_name", 6.0))
    ]
    payload = {"device": "cpu", "meta": {"torch": "2.13", "commit": "abc1234", "device_name": "Some CPU"},
               "results": records}
    (res / "bench_new_cpu.json").write_text(json.dumps(payload))
    (res / "bench_new_cpu.md").write_text("# A new benchmark, CPU\n\n| shown | from json |\n|---|---|\n")
    (res / "broken.json").write_text("{not json")
    (res / "bench_extra.md").write_text("# Extra table\n\n| a | b |\n|---|---|\n| 1 | 2 |\n")
    out = tmp_path / "out"
    rst = gv_bench.render_benchmarks(str(res), str(out), "/api/generated")
    heads = _headings(rst)
    assert "Other results" in heads and "A new benchmark, CPU" in heads and "Extra table" in heads
    assert not [h for h in heads if re.search(r"\.(json|md)$|_", h)], heads
    assert "pyg\\|weird\\_name" in rst and "64x56x56" in rst
    # The median with its min-max range; the mean and the minimum alone are not shown.
    assert "1.5 (0.75-3)" in rst and "9 " not in rst and "mean" not in rst
    assert "2.00x vs torch\\_sparse\\_csr; 4.00x vs pyg\\|weird\\_name" in rst
    assert "Could not read" in rst and "broken.json" in rst
    # A Markdown result without a JSON twin is read by myst-parser, its heading used as the title.
    include = (f".. include:: /{os.path.relpath(res / 'bench_extra.md', DOCS)}\n   :parser: myst_parser.sphinx_\n"
               "   :start-line: 1")
    assert include in rst and "bench_new_cpu.md" not in rst
    assert (out / "bench_bench_new_cpu.png").stat().st_size > 1000
    assert ".. image:: /api/generated/bench_bench_new_cpu.png" in rst
    assert scales and all(s == ("linear", "linear") for s in scales), scales
    # The image directive points into a Sphinx source tree; docutils alone cannot resolve it.
    assert _rst_problems(_uncheckable(rst)) == []


def test_benchmark_scripts_format(tmp_path) -> None:
    """The layout written by benchmarks/bench_*.py: ratios from medians, dirty trees and >100 % flagged."""
    res = tmp_path / "results"
    res.mkdir()
    rows = []
    for op in ("spmm", "attention_aggregate"):
        # The minima (fwd_ms, the old headline) give other ratios than the medians: the medians count.
        for prov, t, med in (("graphvision[torch]", 1.0, 2.0), ("PyG GCNConv propagate", 3.0, 8.0)):
            rows.append({"op": op, "config": "grid B8 28x28 C64", "provider": prov, "fwd_ms": t,
                         "fwd_median_ms": med, "fwd_min_ms": t, "fwd_p20_ms": med * 0.9, "fwd_p80_ms": med * 1.2,
                         "full_ms": 2 * t, "full_median_ms": 2 * med, "peak_fwd_mb": 3.5, "peak_full_mb": 5.0,
                         "compulsory_mb": 30.0, "fwd_gbs": 30.0 / t, "fwd_pct_copy": 3000.0 / t,
                         "speedup": {"PyG GCNConv propagate": {"fwd": 3.0}} if prov.startswith("graph") else None})
    rows.append({"op": "spmm", "config": "grid B8 28x28 C64", "provider": "torch_sparse", "error": "ImportError: no"})
    payload = {"metadata": {"device": "cpu", "device_name": "Test CPU", "commit": "abc+dirty", "torch": "2.13",
                            "copy_gbs": 10.0, "args": {"stat": "min", "reps": 9}},
               "graphs": [{"name": "grid B8 28x28 C64", "kind": "grid", "n": 6272, "e": 47520, "c": 64,
                           "conversion_ms": 1.7}],
               "rows": rows}
    (res / "ops_cpu_quick.json").write_text(json.dumps(payload))
    run = res / "h200_run1_2026-11-28"  # a run folder with its README, shown as one section
    run.mkdir()
    payload["metadata"] = {**payload["metadata"], "commit": "f09ee03", "device": "cuda", "device_name": "H200"}
    (run / "ops_cuda.json").write_text(json.dumps(payload))
    (run / "ops_cuda.md").write_text("| twin | of the json |\n|---|---|\n")
    (run / "README.md").write_text("# H200 run 1\n\nThe Triton rows **failed** to compile in this run.\n")
    out = tmp_path / "out"
    rst = gv_bench.render_benchmarks(str(res), str(out), "/api/generated")
    readme = f"/{os.path.relpath(run / 'README.md', DOCS)}\n   :parser: myst_parser.sphinx_\n   :start-line: 1"
    heads = _headings(rst)
    assert heads == ["Message-passing ops", "Ops on small graphs, CPU, one thread", "GPU runs", "H200 run 1",
                     "Ops on image graphs (GPU)"], heads
    assert rst.index("Ops on small graphs") < rst.index("H200 run 1") < rst.index(readme) < rst.index("Ops on image")
    assert "ops_cuda.md" not in rst and (out / "bench_h200_run1_2026-11-28__ops_cuda.png").exists()
    assert "**spmm**" in rst and "**attention\\_aggregate**" in rst and "build ms" in rst
    # Medians with the 20th-80th percentile (no maximum recorded), ratios of medians: 8 / 2 and 16 / 4.
    assert "**graphvision[torch]**" in rst and "2 (1.8-2.4)" in rst and "Times in ms: median of 9 timed calls" in rst
    assert "4.00x / 4.00x vs PyG GCNConv propagate" in rst and "3.00x" not in rst
    assert "ImportError: no" in rst and "3.5" in rst and "5" in rst
    # GB/s from the median: 30 MB / 2 ms = 15 GB/s = 150 % of 10 GB/s, marked and explained.
    assert "15 (150 % †)" in rst and rst.count("† Above 100 % of the copy bandwidth") == 4
    # Provenance: the dirty CPU file is flagged, the clean GPU file is not.
    assert rst.count("Recorded from uncommitted changes on top of commit ``abc``") == 1
    assert "commit ``f09ee03``" in rst and "machine H200 (cuda)" in rst and "machine Test CPU (cpu)" in rst
    assert (out / "bench_ops_cpu_quick.png").stat().st_size > 1000
    assert _rst_problems(_uncheckable(rst)) == []


def test_committed_results_follow_the_page_rules(tmp_path, monkeypatch) -> None:
    """The committed results: titled sections, the median only, no unexplained >100 % cell, dirty runs flagged.

    Plotting is stubbed (the plots are checked above and in the docs build); the text is the real page.
    """
    plots: list = []
    monkeypatch.setattr(gv_bench, "_plot", lambda panels, out, title: plots.append(panels) or False)
    results = os.path.join(ROOT, "benchmarks", "results")
    rst = gv_bench.render_benchmarks(results, str(tmp_path), "/api/generated")
    assert plots and all(bars for panels in plots for _, bars, _ in panels)
    stems = set()
    dirty = 0
    files = glob.glob(os.path.join(results, "**", "*.json"), recursive=True)
    for path in files:
        stems.add(os.path.splitext(os.path.basename(path))[0])
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
        meta = data.get("metadata") or data.get("meta") or {}
        dirty += "dirty" in str(meta.get("commit", ""))
    # No raw file names as headings.
    for h in _headings(rst):
        assert not re.search(r"\.(json|md)\b", h), h
        assert not any(stem in h or stem.replace("_", " ") == h.lower() for stem in stems), h
    # One statistic: the median (minima appear only as the low end of a min-max range).
    stat_lines = [ln for ln in rst.splitlines() if ln.startswith("Times in ms:")]
    assert stat_lines and all(ln.startswith("Times in ms: median of") for ln in stat_lines)
    assert "minimum" not in rst.lower() and not re.search(r"\bmin\b(?!-max)", rst)
    assert rst.count("*Recorded:* machine") == len(files)
    # Every cell above 100 % of the copy bandwidth is marked and explained under its own table.
    for m in re.finditer(r"\((\d+) %( †)?\)", rst):
        if int(m.group(1)) > 100:
            assert m.group(2), m.group(0)
            rest = rst[m.end():]
            note = rest.find("† Above 100 % of the copy bandwidth")
            nxt = rest.find(".. list-table::")
            assert note >= 0 and (nxt < 0 or note < nxt)
    # Results from uncommitted trees are flagged, one warning per file.
    assert rst.count("Recorded from uncommitted changes") == dirty
    assert _rst_problems(_uncheckable(rst)) == []


@pytest.mark.slow  # plots every committed result (~10-40 s); the docs build renders them too
def test_committed_results_render(tmp_path) -> None:
    rst = gv_bench.render_benchmarks(os.path.join(ROOT, "benchmarks", "results"), str(tmp_path), "/api/generated")
    assert _rst_problems(_uncheckable(rst)) == []
