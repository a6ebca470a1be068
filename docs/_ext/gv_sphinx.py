"""Sphinx extension of the graphvision docs.

- Generates the API group pages, the capability table, the benchmark tables and plots, and the
  RMCG comparison page's include of ``docs/rmcg_results.md`` into ``docs/api/generated/``
  before the sources are read (``builder-inited``), so whatever the code exports at build time
  is documented. Markdown is read by myst-parser (``.. include:: x.md`` with
  ``:parser: myst_parser.sphinx_``).
- Lets ``Shape:`` sections be written as bullet lists (``- x: :math:`(N, F)```) and still
  render as a field like ``Args:`` (napoleon's ``params_style`` custom section otherwise shows
  the bullet in the name).
"""

from __future__ import annotations

import os
import re

from sphinx.application import Sphinx

import gv_apigen
import gv_bench

_SECTION = re.compile(r"^(\s*)([A-Z][A-Za-z ]*):\s*$")


def strip_shape_bullets(lines: list[str]) -> None:
    """In place: turn ``- name: desc`` entries of ``Shape:`` sections into ``name: desc``."""
    in_shape = False
    section_indent = entry_indent = -1
    for i, line in enumerate(lines):
        if not line.strip():
            continue
        indent = len(line) - len(line.lstrip())
        m = _SECTION.match(line)
        if m and (not in_shape or indent <= section_indent):
            in_shape = m.group(2) in ("Shape", "Shapes")
            section_indent, entry_indent = indent, -1
            continue
        if not in_shape:
            continue
        if indent <= section_indent:
            in_shape = False
            continue
        if entry_indent < 0:
            entry_indent = indent
        if indent == entry_indent and line.lstrip().startswith(("- ", "* ")):
            lines[i] = line[:indent] + line.lstrip()[2:]


def _process_docstring(app: Sphinx, what: str, name: str, obj: object, options: object, lines: list[str]) -> None:
    strip_shape_bullets(lines)


#: What each extra of pyproject.toml enables (the packages come from pyproject.toml itself).
EXTRA_PURPOSE = {
    "scatter": "the ``torch_scatter`` and ``torch_sparse`` backends of :mod:`graphvision.ops` "
    "(see the build note below)",
    "superpixel": "superpixel (SLIC) graphs: :func:`~graphvision.functional.superpixel_graph`",
    "triton": "the fused Triton kernels on CUDA (CUDA builds of PyTorch on Linux already bring Triton)",
    "test": "the test suite, including the comparisons with PyG and scikit-learn",
    "docs": "building this documentation",
    "examples": "the examples: quickstart, RMCG training and comparison",
}


def render_extras(pyproject: str) -> str:
    """A table of the optional extras read from ``pyproject.toml``."""
    try:
        import tomllib  # Python >= 3.11
    except ImportError:  # pragma: no cover - Python 3.10
        return "The extras are listed under ``[project.optional-dependencies]`` in ``pyproject.toml``.\n"

    with open(pyproject, "rb") as f:
        project = tomllib.load(f).get("project", {})
    extras = project.get("optional-dependencies", {})
    required = project.get("dependencies", [])
    lines = [
        f"Required: {', '.join(f'``{d}``' for d in required)}." if required else "",
        "",
        ".. list-table::",
        "   :header-rows: 1",
        "   :widths: 15 45 40",
        "",
        "   * - Extra",
        "     - Installs",
        "     - Enables",
    ]
    for name, deps in extras.items():
        pkgs = ", ".join(f"``{d}``" for d in deps) or "nothing"
        lines += [f"   * - ``{name}``", f"     - {pkgs}", f"     - {EXTRA_PURPOSE.get(name, '')}"]
    return "\n".join(lines) + "\n"


def _generate(app: Sphinx) -> None:
    src = app.srcdir
    root = os.path.dirname(os.path.abspath(src))
    out = os.path.join(src, "api", "generated")
    os.makedirs(out, exist_ok=True)
    gv_apigen.write_all(out)

    rst = gv_bench.render_benchmarks(
        os.path.join(root, "benchmarks", "results"), out, "/api/generated", srcdir=src
    )
    gv_apigen.write_if_changed(os.path.join(out, "benchmarks.inc"), rst)

    pyproject = os.path.join(root, "pyproject.toml")
    if os.path.exists(pyproject):
        gv_apigen.write_if_changed(os.path.join(out, "extras.inc"), render_extras(pyproject))

    md_path = os.path.join(src, "rmcg_results.md")
    if os.path.exists(md_path):
        body = (
            "The table below is ``docs/rmcg_results.md``, written by ``examples/rmcg/compare.py``.\n\n"
            + gv_bench.md_include(md_path, src)
        )
    else:
        body = (
            ".. note::\n\n   ``docs/rmcg_results.md`` is not there yet: run ``examples/rmcg/compare.py`` "
            "(see :doc:`/tutorials/rmcg`) to write it.\n"
        )
    gv_apigen.write_if_changed(os.path.join(out, "rmcg_results.inc"), body)


def setup(app: Sphinx) -> dict:
    """Register the generators and the docstring hook."""
    app.connect("builder-inited", _generate)
    # Before napoleon (priority 500) rewrites the Google sections.
    app.connect("autodoc-process-docstring", _process_docstring, priority=400)
    return {"version": "1", "parallel_read_safe": True, "parallel_write_safe": True}
