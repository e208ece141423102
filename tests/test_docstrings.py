"""Every public name of the API reference has a numpydoc docstring.

The reference (docs/api.rst) documents ``fastvar.__all__`` and every public module of the
package, recursively. For each public function, class and method defined there, the
docstring must have a ``Parameters`` section naming each parameter when the callable takes
any, and a ``Returns`` (or ``Yields``) section when it returns something; a property needs
a docstring. Examples sections run as doctests. Run as a script
(``python tests/test_docstrings.py``) to list what is missing.
"""
from __future__ import annotations

import ast
import doctest
import importlib
import inspect
import pkgutil
import re
import sys
import textwrap
from pathlib import Path

import pytest


# the modules listed in docs/api.rst; autosummary's :recursive: adds their submodules
DOCUMENTED = ("api", "network", "activations", "options", "moments", "theory", "finite_width",
              "results", "sweeps", "fits", "runs", "interrupts", "checkpoint", "dask_runner",
              "formats", "plotting", "explain", "serve", "bench", "engines", "kernels", "cli")

_SECTION = re.compile(r"^(?P<name>[A-Z][A-Za-z ]+)\n-{3,}\s*$", re.M)


def _modules() -> list:
    out = []
    for name in DOCUMENTED:
        module = importlib.import_module(f"fastvar.{name}")
        out.append(module)
        if hasattr(module, "__path__"):
            for info in pkgutil.walk_packages(module.__path__, f"{module.__name__}."):
                if not info.name.rsplit(".", 1)[1].startswith("_"):
                    out.append(importlib.import_module(info.name))
    return out


def _python(obj):
    """The Python function behind a numba dispatcher (its py_func), or the object itself."""
    return getattr(obj, "py_func", obj)


def public_callables() -> list[tuple[str, object, str]]:
    """(qualified name, object, kind) of every public function, class, method and
    property."""
    found = []
    for module in _modules():
        for name, obj in vars(module).items():
            if name.startswith("_"):
                continue
            func = _python(obj)
            if getattr(func, "__module__", None) != module.__name__:
                continue  # imported from elsewhere: documented where it is defined
            if inspect.isclass(obj):
                found.append((f"{module.__name__}.{name}", obj, "class"))
                for attr, member in vars(obj).items():
                    if attr.startswith("_"):
                        continue
                    if isinstance(member, (staticmethod, classmethod)):
                        member = member.__func__
                    if inspect.isfunction(member):
                        found.append((f"{module.__name__}.{name}.{attr}", member, "method"))
                    elif isinstance(member, property):
                        found.append((f"{module.__name__}.{name}.{attr}", member, "property"))
            elif inspect.isfunction(func):
                found.append((f"{module.__name__}.{name}", func, "function"))
    return found


def _sections(doc: str) -> dict[str, str]:
    doc = inspect.cleandoc(doc)
    marks = list(_SECTION.finditer(doc))
    return {m["name"].strip(): doc[m.end():marks[i + 1].start() if i + 1 < len(marks)
                                   else len(doc)] for i, m in enumerate(marks)}


def _parameters(func, skip_first: bool) -> list[str]:
    try:
        sig = inspect.signature(func)
    except (TypeError, ValueError):
        return []
    names = []
    for i, p in enumerate(sig.parameters.values()):
        if i == 0 and skip_first:
            continue
        names.append(("*" if p.kind is p.VAR_POSITIONAL else
                      "**" if p.kind is p.VAR_KEYWORD else "") + p.name)
    return names


def _returns_value(func) -> bool:
    """Whether the function returns or yields a value: its annotation, else its source."""
    try:
        annotation = inspect.signature(func).return_annotation
    except (TypeError, ValueError):
        annotation = inspect.Signature.empty
    if annotation is not inspect.Signature.empty:
        return annotation not in (None, "None", "NoReturn", "typing.NoReturn")
    try:
        tree = ast.parse(textwrap.dedent(inspect.getsource(func)))
    except (OSError, TypeError, SyntaxError):
        return False
    top = tree.body[0]

    def visit(node) -> bool:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda,
                                  ast.ClassDef)):
                continue
            if isinstance(child, (ast.Yield, ast.YieldFrom)):
                return True
            if isinstance(child, ast.Return) and child.value is not None and not (
                    isinstance(child.value, ast.Constant) and child.value.value is None):
                return True
            if visit(child):
                return True
        return False
    return visit(top)


def _documented(section: str, name: str) -> bool:
    bare = name.lstrip("*")
    # "name : type", "name, other : type" or "*args" lines at the section's indent
    return re.search(rf"^\\?\*{{0,2}}(?:[\w\\*]+, )*\\?\*{{0,2}}{re.escape(bare)}\b",
                     section, re.M) is not None


def problems(name: str, obj, kind: str) -> list[str]:
    """What the docstring of ``obj`` lacks, as phrases (empty when nothing)."""
    doc = inspect.getdoc(obj)
    if not doc or not doc.strip():
        return ["no docstring"]
    sections = _sections(doc)
    out = []
    if kind == "property":
        return out  # read like an attribute: its docstring says what it holds
    if kind == "class":
        init = vars(obj).get("__init__")
        if init is None and not getattr(obj, "__dataclass_fields__", None):
            return out  # the constructor is inherited (an exception's message, say)
        params = _parameters(obj, skip_first=False)
        where = sections.get("Parameters", sections.get("Attributes"))
        if params and where is None:
            out.append("no Parameters (or Attributes) section")
        elif params:
            missing = [p for p in params if not _documented(where, p)]
            if missing:
                out.append(f"Parameters does not name {', '.join(missing)}")
        return out
    method = kind == "method" and not isinstance(
        inspect.getattr_static(_owner(name), name.rsplit(".", 1)[1]), staticmethod)
    params = _parameters(obj, skip_first=method)
    if params:
        if "Parameters" not in sections:
            out.append("no Parameters section")
        else:
            missing = [p for p in params if not _documented(sections["Parameters"], p)]
            if missing:
                out.append(f"Parameters does not name {', '.join(missing)}")
    if _returns_value(obj) and not ({"Returns", "Yields"} & set(sections)):
        out.append("no Returns section")
    return out


def _owner(qualname: str):
    module, cls, _ = qualname.rsplit(".", 2)
    return getattr(importlib.import_module(module), cls)


CALLABLES = public_callables()


def test_the_reference_is_not_empty():
    names = {n for n, _, _ in CALLABLES}
    assert len(CALLABLES) > 150
    for name in ("fastvar.api.simulate", "fastvar.results.result.Result.to_pandas",
                 "fastvar.sweeps.Sweep", "fastvar.network.mlp"):
        assert name in names


def test_the_modules_are_those_of_the_reference():
    # docs/api.rst lists the modules under "Modules" (autosummary, :recursive:)
    api = (Path(__file__).parent.parent / "docs" / "api.rst").read_text()
    listed = re.findall(r"^   (\w+)$", api.split("Modules\n-------")[1], re.M)
    assert sorted(listed) == sorted(DOCUMENTED)


def test_the_checker_sees_a_missing_section():
    def f(x: int) -> int:
        """Double x."""
        return 2 * x

    def g(x: int) -> None:
        """Print x.

        Parameters
        ----------
        y : int
            Not x.
        """
    assert problems("f", f, "function") == ["no Parameters section", "no Returns section"]
    assert problems("g", g, "function") == ["Parameters does not name x"]


@pytest.mark.parametrize("name,obj,kind", CALLABLES, ids=[n for n, _, _ in CALLABLES])
def test_numpydoc(name, obj, kind):
    assert problems(name, obj, kind) == []


EXAMPLES = [(name, obj) for name, obj, _ in CALLABLES
            if "Examples\n" in (inspect.getdoc(obj) or "")]


@pytest.mark.parametrize("name,obj", EXAMPLES, ids=[n for n, _ in EXAMPLES])
def test_examples_run(name, obj):
    # the Examples sections are doctests: what they show is what the code prints
    finder = doctest.DocTestFinder(recurse=False)
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    for test in finder.find(obj, name, globs={}):
        runner.run(test)
    assert runner.summarize(verbose=False).failed == 0


if __name__ == "__main__":
    bad = [(n, p) for n, o, k in CALLABLES if (p := problems(n, o, k))]
    for n, p in bad:
        print(f"{n}: {'; '.join(p)}")
    print(f"{len(CALLABLES) - len(bad)} of {len(CALLABLES)} complete", file=sys.stderr)
