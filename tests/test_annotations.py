"""Every public function and public method is fully annotated (parameters and return).

Public: the names in a package's ``__all__`` (``visjax`` and every subpackage), and for a public
class its own public methods and properties (``__init__`` included: its parameters are public;
its return may be omitted). ``self``/``cls`` need no annotation; ``*args``/``**kwargs`` do.
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil

import pytest

import visjax

_EMPTY = inspect.Parameter.empty

# JAX's pytree protocol hooks: called by JAX, not by users (their types are JAX's).
EXEMPT = {"visjax.Model.tree_flatten", "visjax.Model.tree_unflatten"}


def _packages() -> list[str]:
    names = ["visjax"]
    for m in pkgutil.walk_packages(visjax.__path__, "visjax."):
        if m.ispkg:
            names.append(m.name)
    return names


def _own_callables(cls: type) -> dict[str, object]:
    """A class's own public methods/properties (defined in its body, not inherited)."""
    out: dict[str, object] = {}
    fields = getattr(cls, "_fields", None)  # a NamedTuple: its generated __new__ is typed fields
    for name, value in vars(cls).items():
        if name.startswith("_") and name != "__init__":
            continue
        if name == "__init__" and fields is not None:
            continue
        if isinstance(value, property):
            if value.fget is not None:
                out[name] = value.fget
        elif isinstance(value, staticmethod | classmethod):
            out[name] = value.__func__
        elif inspect.isfunction(value):
            out[name] = value
        elif hasattr(value, "func") and inspect.isfunction(value.func):  # functools.cached_property
            out[name] = value.func
    return out


def _public() -> dict[str, object]:
    found: dict[str, object] = {}
    seen: set[int] = set()
    for pkg in _packages():
        mod = importlib.import_module(pkg)
        for name in getattr(mod, "__all__", ()):
            obj = getattr(mod, name)
            if id(obj) in seen:
                continue
            seen.add(id(obj))
            if inspect.isclass(obj):
                if not getattr(obj, "__module__", "").startswith("visjax"):
                    continue
                for meth, fn in _own_callables(obj).items():
                    found[f"{pkg}.{name}.{meth}"] = fn
            elif callable(obj) and getattr(obj, "__module__", "").startswith("visjax"):
                found[f"{pkg}.{name}"] = obj
    return found


PUBLIC = {q: fn for q, fn in _public().items() if q not in EXEMPT}


def _missing(qualname: str, fn: object) -> list[str]:
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):
        return []
    out = []
    params = list(sig.parameters.values())
    for i, p in enumerate(params):
        if i == 0 and p.name in ("self", "cls"):
            continue
        if p.annotation is _EMPTY:
            out.append(f"parameter `{p.name}`")
    if sig.return_annotation is _EMPTY and not qualname.endswith(".__init__"):
        out.append("the return")
    return out


def test_the_walk_finds_the_public_surface():
    assert len(PUBLIC) > 100
    assert "visjax.landscape.interpolate" in PUBLIC
    assert any(q.startswith("visjax.plot.") for q in PUBLIC)


@pytest.mark.parametrize("qualname", sorted(PUBLIC))
def test_public_callables_are_annotated(qualname):
    missing = _missing(qualname, PUBLIC[qualname])
    assert not missing, f"{qualname}: not annotated: {', '.join(missing)}"
