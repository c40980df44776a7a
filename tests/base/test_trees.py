import jax.numpy as jnp
import pytest

from visjax.base.trees import (
    check_like,
    check_patterns,
    flat_paths,
    layer_groups,
    param_paths,
    select,
)

PARAMS = {
    "conv1": {"kernel": jnp.ones((3, 3, 1, 4)), "bias": jnp.ones(4)},
    "blocks": [{"w": jnp.ones((2, 2))}],
}


def test_paths_and_select():
    assert param_paths(PARAMS) == ["blocks.0.w", "conv1.bias", "conv1.kernel"]
    paths, leaves, _ = flat_paths(PARAMS)
    assert paths == param_paths(PARAMS) and leaves[0].shape == (2, 2)
    assert select(PARAMS, "*.bias") == {
        "blocks": [{"w": False}],
        "conv1": {"bias": True, "kernel": False},
    }
    assert layer_groups(PARAMS) == {
        "blocks.0": ["blocks.0.w"],
        "conv1": ["conv1.bias", "conv1.kernel"],
    }


def test_patterns():
    assert check_patterns("a.*", "ignore") == ("a.*",)
    assert check_patterns(["a", "b"], "ignore") == ("a", "b")
    with pytest.raises(TypeError, match=r"`groups` must be a glob pattern"):
        check_patterns([1], "groups")


def test_like_names_both_arguments_and_the_path():
    check_like(PARAMS, PARAMS, "direction", "params")
    missing = {"conv1": PARAMS["conv1"], "blocks": []}
    with pytest.raises(ValueError, match=r"'blocks.0.w' of `params` is missing from `direction`"):
        check_like(missing, PARAMS, "direction", "params")
    wrong = {"conv1": {"kernel": jnp.ones(2), "bias": jnp.ones(4)}, "blocks": PARAMS["blocks"]}
    with pytest.raises(ValueError, match=r"`d2` leaf 'conv1.kernel' must have the shape of `d1`"):
        check_like(wrong, PARAMS, "d2", "d1")
