"""Sphinx configuration of corral's documentation (``sphinx-build -W -b html docs OUT``).

The pages are MyST Markdown; the API pages are generated from the docstrings (numpydoc
style) by autosummary into ``docs/api/generated`` (git-ignored); the configuration reference
is generated from the code by ``_ext/corral_reference.py``.
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE / "_ext"))

# Import every documented package first: `corral` is a PEP 420 namespace package, and
# autosummary resolves "corral.wire" as the attribute `wire` of module `corral`, which exists
# only once corral.wire has been imported.
PUBLIC_MODULES = [
    "corral.client",
    "corral.client.errors",
    "corral.cluster",
    "corral.launchers",
    "corral.cli",
    "corral.engine",
    "corral.wire",
    "corral.scheduler",
    "corral.hub",
    "corral.magics",
]
for _name in PUBLIC_MODULES:
    importlib.import_module(_name)

project = "corral"
author = "the corral developers"
copyright = "the corral developers"  # noqa: A001 - Sphinx's name

extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "numpydoc",
    "corral_reference",
]

source_suffix = {".md": "markdown", ".rst": "restructuredtext"}
root_doc = "index"
exclude_patterns = ["_build", "examples", "README.md"]
templates_path = ["_templates"]

myst_enable_extensions = ["colon_fence", "deflist"]
# cluster.md and others link to their own sections by GitHub-style slugs
myst_heading_anchors = 4

autosummary_generate = True
autosummary_ignore_module_all = False
autodoc_default_options = {"show-inheritance": True}
autodoc_typehints = "none"  # signatures stay readable; the numpydoc sections say the types
autodoc_member_order = "bysource"
numpydoc_show_class_members = False
numpydoc_class_members_toctree = False
numpydoc_xref_param_type = False

html_theme = "alabaster"
html_title = "corral"

#: Pages that other parts of the project add; the toctree lists them once they exist
#: (see ``_ext/corral_reference.py``, ``optional_pages``).
optional_pages = ["magics", "launchers"]
