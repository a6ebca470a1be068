"""Sphinx configuration of the graphvision documentation.

Build (warnings are errors, as in CI)::

    pip install -e ".[docs]"
    sphinx-build -W --keep-going -b html docs docs/_build/html
    python -m http.server -d docs/_build/html 8000   # then open http://localhost:8000

Run the examples of the narrative pages and docstrings with ``sphinx-build -b doctest docs
docs/_build/doctest``.

Offline: math is pre-rendered at build time by KaTeX (``sphinxcontrib-katex``, which ships
KaTeX, run by Node.js) into MathML that the browser draws natively, so pages load no math script
and no font from the internet. The build needs ``node`` on the ``PATH``. Markdown files
(``docs/rmcg_results.md``, the benchmark results) are read by myst-parser.

Offline by default: links to the Python and PyTorch docs (intersphinx) need their inventories
from the internet, so they are switched on only with ``GRAPHVISION_DOCS_ONLINE=1``. Without it,
references to ``torch.Tensor`` and friends render as code, with no warning.
"""

from __future__ import annotations

import os
import shutil
import sys
import warnings

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "_ext"))
sys.path.insert(0, os.path.dirname(HERE))  # the repository, for a build without an install

import graphvision  # noqa: E402

# -- Project -----------------------------------------------------------------------------------
project = "graphvision"
author = "graphvision developers"
copyright = "2026, graphvision developers"
release = graphvision.__version__
version = ".".join(release.split(".")[:2])

# -- Extensions --------------------------------------------------------------------------------
extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.napoleon",
    "sphinx.ext.intersphinx",
    "sphinxcontrib.katex",  # math pre-rendered to MathML at build time: offline, no script
    "myst_parser",  # Markdown includes (rmcg_results.md, benchmark results)
    "sphinx.ext.viewcode",
    "sphinx.ext.doctest",
    "sphinx_autodoc_typehints",
    "gv_sphinx",  # docs/_ext: generated API pages, capability table, benchmarks, Shape sections
]

exclude_patterns = ["_build", "Thumbs.db", ".DS_Store", "rmcg_results.md"]
root_doc = "index"
source_suffix = {".rst": "restructuredtext"}

# -- math: KaTeX pre-rendered (see the module docstring) ---------------------------------------
if shutil.which("node") is None:
    raise RuntimeError(
        "The docs pre-render math with KaTeX under Node.js, so pages work offline: install Node.js "
        "(e.g. `apt-get install nodejs`) so that `node` is on the PATH."
    )
katex_prerender = True
# KaTeX writes MathML (drawn by the browser) and an HTML twin that needs KaTeX's CSS and fonts
# from a CDN; this local stylesheet shows the MathML and hides the twin.
katex_css_path = "katex-offline.css"

# -- Markdown (myst-parser) ----------------------------------------------------------------------
myst_heading_anchors = 3  # "[text](#a-heading)" links inside the Markdown files

# -- autodoc / autosummary / typehints ---------------------------------------------------------
add_module_names = False
autodoc_member_order = "bysource"
autodoc_default_options = {"exclude-members": "__init__, extra_repr"}
autodoc_preserve_defaults = True
autosummary_generate = True
autosummary_imported_members = False
typehints_defaults = "comma"
typehints_use_rtype = False
typehints_document_rtype = True
always_document_param_types = False
simplify_optional_unions = True

# -- napoleon: Google style, with "Shape:" rendered as a field like "Args:" ---------------------
napoleon_google_docstring = True
napoleon_numpy_docstring = False
napoleon_use_rtype = False
napoleon_use_ivar = True
napoleon_custom_sections = [("Shape", "params_style"), ("Shapes", "params_style")]

# -- intersphinx: only when online (see the module docstring) ----------------------------------
if os.environ.get("GRAPHVISION_DOCS_ONLINE", "0") == "1":
    intersphinx_mapping = {
        "python": ("https://docs.python.org/3", None),
        "torch": ("https://docs.pytorch.org/docs/stable", None),
    }
else:
    intersphinx_mapping = {}
intersphinx_timeout = 10

# -- doctest: the narrative pages' examples -----------------------------------------------------
# Only explicit ``.. doctest::`` / ``.. testcode::`` blocks of the pages run here. The docstrings'
# examples run in their own module's namespace under ``pytest --doctest-modules`` (pyproject.toml);
# running them again here, in one shared namespace per page, would fail on their module globals.
doctest_global_setup = """
import importlib.util
import torch
import graphvision
torch.manual_seed(0)
HAS_SKIMAGE = importlib.util.find_spec("skimage") is not None
HAS_PYG = importlib.util.find_spec("torch_geometric") is not None
"""
doctest_test_doctest_blocks = ""

# -- HTML --------------------------------------------------------------------------------------
html_theme = "furo"
html_title = f"graphvision {release}"
html_static_path = ["_static"]
html_css_files = ["custom.css"]
# No "edit this page" links: set furo's source_repository / source_branch / source_directory here
# once the project has a public repository URL.
html_theme_options: dict[str, str] = {}

# -- Warnings ----------------------------------------------------------------------------------
# Warnings are errors in CI (-W). Torch emits import-time warnings of its own; they are not ours.
warnings.filterwarnings("ignore", category=UserWarning, module="torch")
warnings.filterwarnings("ignore", message=".*set_application.*is deprecated.*")
nitpicky = False
# hypothesis' @composite strategies carry hypothesis' globals, so their string annotations cannot be
# resolved; the annotation is then shown as written, which is what a reader needs anyway.
suppress_warnings = ["sphinx_autodoc_typehints.forward_reference"]
