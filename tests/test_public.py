import importlib

import pytest

MODULES = ["visjax", "visjax.zoo", "visjax.inspect", "visjax.plot"]


@pytest.mark.parametrize("name", MODULES)
def test_public_names_import_and_have_docstrings(name):
    mod = importlib.import_module(name)
    assert mod.__doc__
    for attr in mod.__all__:
        obj = getattr(mod, attr)
        assert getattr(obj, "__doc__", None), f"{name}.{attr} has no docstring"
