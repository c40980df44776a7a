"""Pytree helpers over dotted parameter paths (``"conv1.kernel"``, ``"stages.0.blocks.1.bias"``).

Dotted paths join dict keys and sequence indices with ``"."`` in ``jax.tree.leaves`` order.
"""

from __future__ import annotations

from collections.abc import Sequence
from fnmatch import fnmatchcase
from typing import Any

import jax
import numpy as np


def _key_str(k: Any) -> str:
    for attr in ("key", "idx", "name"):
        if hasattr(k, attr):
            return str(getattr(k, attr))
    return str(k)


def flat_paths(tree: Any) -> tuple[list[str], list[Any], Any]:
    """``(dotted paths, leaves, treedef)`` of ``tree``; the paths as in :func:`param_paths`."""
    flat, treedef = jax.tree_util.tree_flatten_with_path(tree)
    paths = [".".join(_key_str(k) for k in path) for path, _ in flat]
    return paths, [leaf for _, leaf in flat], treedef


def param_paths(params: Any) -> list[str]:
    """Dotted paths of the leaves of ``params``, in ``jax.tree.leaves`` order.

    Dict keys (including the int keys of list-like entries) and sequence indices are joined with
    ``"."``.

    Args:
      params: a pytree of arrays (Flax layout, e.g. ``model.params``).

    Returns:
      One string per leaf: ``"conv1.kernel"``, ``"stages.0.blocks.1.conv2.bias"``.

    Example:
      >>> import jax.numpy as jnp
      >>> param_paths({"conv1": {"kernel": jnp.ones((3, 3, 1, 4)), "bias": jnp.ones(4)},
      ...              "blocks": [{"w": jnp.ones((2, 2))}]})
      ['blocks.0.w', 'conv1.bias', 'conv1.kernel']
    """
    return flat_paths(params)[0]


def check_patterns(patterns: Any, name: str) -> tuple[str, ...]:
    """One glob pattern or a sequence of them as a tuple; raises ``TypeError`` naming ``name``."""
    if isinstance(patterns, str):
        return (patterns,)
    if isinstance(patterns, (tuple, list)) and all(isinstance(p, str) for p in patterns):
        return tuple(patterns)
    raise TypeError(
        f"`{name}` must be a glob pattern or a sequence of glob patterns (strings), "
        f"got {patterns!r}"
    )


def select(params: Any, patterns: str | Sequence[str]) -> Any:
    """Which leaves of ``params`` have a dotted path matching any glob pattern.

    Matching is :func:`fnmatch.fnmatchcase` on the dotted paths of :func:`param_paths` (``*``
    also crosses dots: ``"*.bias"`` matches every bias at any depth). A pattern that matches
    nothing selects nothing (no error).

    Args:
      params: a pytree of arrays.
      patterns: one glob pattern, or a sequence of them.

    Returns:
      A pytree with the tree of ``params`` and Python ``bool`` leaves.

    Example:
      >>> import jax.numpy as jnp
      >>> p = {"conv1": {"kernel": jnp.ones((3, 3, 1, 4)), "bias": jnp.ones(4)},
      ...      "fc": {"kernel": jnp.ones((4, 2)), "bias": jnp.ones(2)}}
      >>> select(p, ("conv1.*", "*.bias"))
      {'conv1': {'bias': True, 'kernel': True}, 'fc': {'bias': True, 'kernel': False}}
    """
    pats = check_patterns(patterns, "patterns")
    paths, _, treedef = flat_paths(params)
    hits = [any(fnmatchcase(p, pat) for pat in pats) for p in paths]
    return jax.tree_util.tree_unflatten(treedef, hits)


def check_like(tree: Any, ref: Any, name: str, ref_name: str) -> None:
    """Raise ``ValueError`` unless ``tree`` has the tree and leaf shapes of ``ref``; the message
    names both arguments (``name``, ``ref_name``) and the first differing dotted path."""
    t_paths, t_leaves, t_def = flat_paths(tree)
    r_paths, r_leaves, r_def = flat_paths(ref)
    if t_def != r_def:
        t_set, r_set = set(t_paths), set(r_paths)
        for i in range(max(len(t_paths), len(r_paths))):
            tp = t_paths[i] if i < len(t_paths) else None
            rp = r_paths[i] if i < len(r_paths) else None
            if tp == rp:
                continue
            if rp is not None and rp not in t_set:
                why = f"'{rp}' of `{ref_name}` is missing from `{name}`"
            elif tp is not None and tp not in r_set:
                why = f"`{name}` has a leaf '{tp}' that `{ref_name}` does not have"
            else:
                why = f"`{name}` has '{tp}' where `{ref_name}` has '{rp}'"
            raise ValueError(
                f"`{name}` must have the tree structure of `{ref_name}`; first difference: {why}"
            )
        raise ValueError(
            f"`{name}` has the leaf paths of `{ref_name}` but different containers: "
            f"{t_def} against {r_def}"
        )
    for path, a, b in zip(r_paths, t_leaves, r_leaves, strict=True):
        if np.shape(a) != np.shape(b):
            raise ValueError(
                f"`{name}` leaf '{path}' must have the shape of `{ref_name}` there, "
                f"{np.shape(b)}, got {np.shape(a)}"
            )


def layer_groups(params: Any) -> dict[str, list[str]]:
    """One group per module: the parent dotted path of each leaf (a top-level leaf: its own path).

    Args:
      params: a pytree of arrays.

    Returns:
      Group name to the dotted leaf paths in it, in :func:`param_paths` order.

    Example:
      >>> import jax.numpy as jnp
      >>> p = {"conv1": {"kernel": jnp.ones(3), "bias": jnp.ones(1)}, "scale": jnp.ones(1)}
      >>> layer_groups(p)
      {'conv1': ['conv1.bias', 'conv1.kernel'], 'scale': ['scale']}
    """
    groups: dict[str, list[str]] = {}
    for path in param_paths(params):
        groups.setdefault(path.rsplit(".", 1)[0] if "." in path else path, []).append(path)
    return groups
