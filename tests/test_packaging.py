"""What a package carries besides code: licence, type marker, changelog, public names."""
import subprocess
import sys
from pathlib import Path

import fastvar

ROOT = Path(__file__).resolve().parents[1]


def test_licence_type_marker_and_changelog():
    project = (ROOT / "pyproject.toml").read_text()
    assert 'license = "MIT"' in project
    assert (ROOT / "LICENSE").read_text().startswith("MIT License")
    assert (ROOT / "fastvar" / "py.typed").exists()
    assert '[tool.setuptools.package-data]\nfastvar = ["py.typed"]' in project
    assert "## [Unreleased]" in (ROOT / "CHANGELOG.md").read_text()


def test_dir_shows_only_public_names():
    # it showed the module's own imports: TYPE_CHECKING, annotations, importlib
    code = "import fastvar; print(' '.join(dir(fastvar)))"
    names = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                           check=True).stdout.split()
    assert set(fastvar.__all__) <= set(names)
    assert not [n for n in names if n.startswith("_") and n != "__version__"], names
    assert not {"TYPE_CHECKING", "annotations", "importlib"} & set(names)


def test_api_reference_lists_every_public_name_and_module():
    # the docs' API page is written by hand: a new public name must be added there too
    page = (ROOT / "docs" / "api.rst").read_text()
    listed = {line.strip().lstrip("~").rsplit(".", 1)[-1] for line in page.splitlines()}
    missing = [n for n in fastvar.__all__ if n != "__version__" and n not in listed]
    missing += [m for m in dir(fastvar) if not m.startswith("_") and m not in listed]
    assert not missing, f"add to docs/api.rst: {missing}"
