import ast
import importlib
import inspect
import pathlib
import pkgutil

import pytest

import visjax


def _modules():
    names = ["visjax"]
    for info in pkgutil.walk_packages(visjax.__path__, prefix="visjax."):
        names.append(info.name)
    return names


@pytest.mark.parametrize("name", _modules())
def test_every_module_imports_and_has_a_docstring(name):
    mod = importlib.import_module(name)
    assert mod.__doc__, f"module {name} has no docstring"


@pytest.mark.parametrize("name", [n for n in _modules() if n.count(".") <= 1])
def test_public_names_import_and_have_docstrings(name):
    mod = importlib.import_module(name)
    for attr in getattr(mod, "__all__", []):
        obj = getattr(mod, attr)
        assert getattr(obj, "__doc__", None), f"{name}.{attr} has no docstring"


def test_packages_declare_their_public_surface():
    for info in pkgutil.iter_modules(visjax.__path__, prefix="visjax."):
        if info.ispkg:
            assert hasattr(importlib.import_module(info.name), "__all__"), info.name


def _visjax_sources():
    root = pathlib.Path(visjax.__file__).parent
    return sorted(root.rglob("*.py"))


def test_no_module_imports_a_private_name_from_another_module():
    # Shared helpers are public names (visjax.base, Model's methods); a private module of a
    # package (attribution/_target.py) may be imported by its siblings, a private name may not.
    found = []
    for path in _visjax_sources():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("visjax"):
                found += [
                    f"{path.name}: from {node.module} import {a.name}"
                    for a in node.names
                    if a.name.startswith("_") and not a.name.startswith("__")
                ]
    assert not found, found


@pytest.mark.parametrize("name", [n for n in _modules() if n.startswith("visjax.base.")])
def test_base_helpers_have_docstrings(name):
    mod = importlib.import_module(name)
    for attr, obj in vars(mod).items():
        if attr.startswith("_") or getattr(obj, "__module__", None) != name:
            continue
        if inspect.isfunction(obj) or inspect.isclass(obj):
            assert obj.__doc__, f"{name}.{attr} has no docstring"
