"""Sphinx extension of the graphvision docs.

- Generates the API group pages, the capability table, the benchmark tables and plots, and the
  RMCG comparison (from ``docs/rmcg_results.md``) into ``docs/api/generated/`` before the
  sources are read (``builder-inited``), so whatever the code exports at build time is
  documented.
- Lets ``Shape:`` sections be written as bullet lists (``- x: :math:`(N, F)```) and still
  render as a field like ``Args:`` (napoleon's ``params_style`` custom section otherwise shows
  the bullet in the name).
"""

from __future__ import annotations

import os
import re

from sphinx.application import Sphinx
from sphinx.util import logging

import gv_apigen
import gv_bench
from gv_md2rst import md_to_rst

logger = logging.getLogger(__name__)

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


def _generate(app: Sphinx) -> None:
    src = app.srcdir
    root = os.path.dirname(os.path.abspath(src))
    out = os.path.join(src, "api", "generated")
    os.makedirs(out, exist_ok=True)
    gv_apigen.write_all(out)

    rst = gv_bench.render_benchmarks(os.path.join(root, "benchmarks", "results"), out, "/api/generated")
    gv_apigen.write_if_changed(os.path.join(out, "benchmarks.inc"), rst)

    md_path = os.path.join(src, "rmcg_results.md")
    if os.path.exists(md_path):
        with open(md_path, encoding="utf-8") as f:
            body = md_to_rst(f.read(), top_level=1)
        body = f"The table below is ``docs/rmcg_results.md``, written by ``examples/rmcg/compare.py``.\n\n{body}"
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
