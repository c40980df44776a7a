import importlib
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
