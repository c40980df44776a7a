import jax
import jax.numpy as jnp
import numpy as np
import pytest

from visjax.landscape import evaluate, interpolate, plane, random_plane
from visjax.landscape.surface import _block
from visjax.zoo import digits_cnn, load_digits

# bfloat16 keeps 8 mantissa bits (rounding ~2**-9 relative per op): a forward of a few layers
# lands within ~1e-2 of the loss scale.
REL = 2e-2


@pytest.fixture(scope="module")
def setup():
    model = digits_cnn("function")
    d = load_digits().train
    data = (jnp.asarray(d.x[:64]), jnp.asarray(d.y[:64]))
    d1, d2 = random_plane(model.params, key=jax.random.key(0))
    return model, data, d1, d2


def test_bf16_plane_close_to_f32(setup):
    model, data, d1, d2 = setup
    xs = np.linspace(-1, 1, 3, dtype=np.float32)
    loss = (model, "cross_entropy")
    f32 = plane(loss, model.params, d1, d2, xs, xs, data=data, progress=False, batch_size=None)[
        "cross_entropy"
    ]
    b16 = plane(
        loss,
        model.params,
        d1,
        d2,
        xs,
        xs,
        data=data,
        progress=False,
        dtype=jnp.bfloat16,
        batch_size=None,
    )["cross_entropy"]
    assert b16.dtype == np.float32
    assert np.abs(b16 - f32).max() <= REL * np.abs(f32).max()
    assert not np.array_equal(b16, f32)  # really ran in bfloat16


def test_bf16_callable_loss_and_no_retrace(setup):
    model, data, d1, _ = setup

    seen = set()

    def loss(params, batch):  # with dtype the loss itself sees bfloat16 logits
        x, y = batch
        logits = model.apply_fn(params, x)
        seen.add(str(logits.dtype))
        return -jnp.take_along_axis(jax.nn.log_softmax(logits), y[:, None], 1).mean()

    a = np.linspace(0, 1, 3, dtype=np.float32)
    kw = dict(data=data, progress=False, dtype=jnp.bfloat16, batch_size=32)
    first = interpolate(loss, model.params, d1, a, **kw)["loss"]
    size = _block._cache_size()
    again = interpolate(loss, model.params, d1, a, **kw)["loss"]
    assert _block._cache_size() == size
    np.testing.assert_array_equal(first, again)
    assert seen == {"bfloat16"}
    ref = interpolate(loss, model.params, d1, a, data=data, progress=False)["loss"]
    assert first.dtype == np.float32
    assert np.abs(first - ref).max() <= REL * np.abs(ref).max()


@pytest.mark.parametrize("bad", ["int32", "nope"])
def test_dtype_validated(setup, bad):
    model, data, d1, _ = setup
    with pytest.raises(ValueError, match="`dtype`"):
        evaluate((model, "cross_entropy"), model.params, (d1,), [[0.0]], data=data, dtype=bad)
