"""Sphinx configuration: ``python -m sphinx -W --keep-going -b html docs docs/_build/html``."""
import os
import sys

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
sys.path.insert(0, ROOT)  # the checkout's fastvar, installed or not

from fastvar import __version__  # noqa: E402

project = "fastvar"
author = "the fastvar developers"
copyright = f"2026, {author}"
version = release = __version__

extensions = [
    "myst_parser",  # the pages are Markdown, as the README they came from
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.napoleon",  # numpydoc-style sections without another dependency
    "sphinx.ext.mathjax",
]
# no intersphinx: the build runs offline, in CI as anywhere
autosummary_generate = True
autosummary_imported_members = False
# each object on the page of the module that defines it, once (a package's __all__ would
# document its re-exports a second time)
autodoc_default_options = {"members": True, "show-inheritance": True, "ignore-module-all": True}
autodoc_member_order = "bysource"
autodoc_typehints = "none"  # signatures read as in the code; types are in the docstrings
napoleon_google_docstring = False
napoleon_numpy_docstring = True
napoleon_use_rtype = False
napoleon_use_ivar = True  # "Attributes" as a field list: autodoc documents them already
myst_heading_anchors = 3
source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
exclude_patterns = ["_build"]
html_theme = "alabaster"  # ships with Sphinx
html_title = f"fastvar {release}"
