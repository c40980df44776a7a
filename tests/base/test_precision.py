import jax.numpy as jnp
import numpy as np
import pytest

from visjax.base.precision import cast_floating, check_dtype, to_float32


def test_cast_floating_keeps_integer_leaves():
    tree = {"w": jnp.ones(3), "n": jnp.arange(3), "f": np.ones(2, np.float32)}
    out = cast_floating(tree, jnp.bfloat16)
    assert out["w"].dtype == jnp.bfloat16 and out["f"].dtype == jnp.bfloat16
    assert out["n"].dtype == tree["n"].dtype
    assert cast_floating(tree, None) is tree
    back = to_float32(out)
    assert back["w"].dtype == jnp.float32 and back["n"].dtype == tree["n"].dtype


def test_cast_floating_model_params():
    from visjax.zoo import digits_cnn

    model = cast_floating(digits_cnn("function"), jnp.bfloat16)
    import jax

    assert {leaf.dtype for leaf in jax.tree.leaves(model.params)} == {jnp.dtype(jnp.bfloat16)}


@pytest.mark.parametrize("bad", ["int32", jnp.int8, "nope", bool, 3])
def test_check_dtype_refuses(bad):
    with pytest.raises(ValueError, match="`dtype`"):
        check_dtype(bad)


def test_check_dtype_accepts():
    assert check_dtype(None) is None
    assert check_dtype(jnp.bfloat16) == jnp.dtype(jnp.bfloat16)
    assert check_dtype("float16") == jnp.dtype("float16")
