"""Arguments checked against the parameter count (``groups``, ``k``) are refused before the loss
is traced or compiled: the loss here raises if it is ever called."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from visjax import curvature

PARAMS = {"dense": {"kernel": jnp.full((3, 2), 0.1), "bias": jnp.zeros(2)}}
DATA = np.ones((4, 3), np.float32)
KEY = jax.random.key(0)


def untouchable(params, batch):
    raise AssertionError("the loss was traced before the arguments were checked")


@pytest.mark.parametrize(
    "groups",
    ["blocks", {}, {"g": "nomatch*"}, 3],
    ids=["unknown-str", "empty-map", "no-match", "int"],
)
def test_block_groups_refused_before_the_loss(groups):
    with pytest.raises((ValueError, TypeError), match="group"):
        curvature.block_curvature(untouchable, PARAMS, data=DATA, groups=groups, key=KEY)


@pytest.mark.parametrize("k", [0, 9, -1, 2.0, True, "2"])
def test_top_eigenvalues_k_refused_before_the_loss(k):
    with pytest.raises(ValueError, match="`k`"):
        curvature.top_eigenvalues(untouchable, PARAMS, data=DATA, k=k, key=KEY)


def test_top_eigenvalues_n_iter_refused_before_the_loss():
    with pytest.raises(ValueError, match="`n_iter`"):
        curvature.top_eigenvalues(untouchable, PARAMS, data=DATA, k=3, n_iter=2, key=KEY)
