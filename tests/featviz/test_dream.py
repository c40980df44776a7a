"""DeepDream on a scikit-image photograph with the digits CNN (any spatial size, one channel)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from visjax import as_model
from visjax.featviz.dream import deepdream, octave_shapes
from visjax.zoo import cnn, sample_image

KEY = jax.random.key(3)


@pytest.fixture(scope="module")
def model(cnn_params):
    return as_model(cnn.apply, cnn_params, input_shape=(None, None, 1))


@pytest.fixture(scope="module")
def photo():
    return sample_image("astronaut", size=(48, 48)).mean(-1, keepdims=True)


def _objective(model, img, layer):
    act = model.activations(jnp.asarray(img)[None], layer)[1][layer]
    return float(jnp.mean(act**2))


@pytest.mark.slow  # over 4.5 s on 2 cores: make test-slow (CI) runs it
def test_dream_raises_the_objective_and_stays_an_image(model, photo):
    out = deepdream(model, photo, layer="conv2", key=KEY)
    assert out.shape == photo.shape and out.dtype == jnp.float32
    assert float(out.min()) >= 0.0 and float(out.max()) <= 1.0
    assert _objective(model, out, "conv2") > 1.5 * _objective(model, photo, "conv2")
    # The photograph is still there: a dream changes it, it does not replace it.
    assert 0.0 < float(jnp.abs(out - photo).mean()) < 0.5
    assert np.corrcoef(np.ravel(out), np.ravel(photo))[0, 1] > 0.3


def test_dream_is_deterministic_for_a_key_and_compiles_once_per_size(cnn_params, photo):
    traces = []

    def apply(params, x):
        traces.append(1)
        return cnn.apply(params, x)

    m = as_model(apply, cnn_params, input_shape=(None, None, 1))
    a = deepdream(m, photo, layer="conv1", octaves=2, n_steps=3, key=KEY)
    n = len(traces)
    b = deepdream(m, photo, layer="conv1", octaves=2, n_steps=3, key=KEY)
    assert len(traces) == n  # same sizes: nothing traced again
    np.testing.assert_array_equal(a, b)
    c = deepdream(m, photo, layer="conv1", octaves=2, n_steps=3, key=jax.random.key(4))
    assert not np.array_equal(a, c)


def test_one_octave_without_jitter_is_plain_normalised_ascent(model, photo):
    x = jnp.asarray(photo)
    f = lambda im: jnp.mean(model.activations(im[None], "conv2")[1]["conv2"] ** 2)  # noqa: E731
    for _ in range(2):
        g = jax.grad(f)(x)
        x = jnp.clip(x + 0.05 * g / (jnp.mean(jnp.abs(g)) + 1e-8), 0.0, 1.0)
    out = deepdream(
        model, photo, layer="conv2", octaves=1, n_steps=2, step_size=0.05, jitter=0, key=KEY
    )
    np.testing.assert_allclose(out, x, atol=1e-5)


def test_octave_shapes_follow_the_notebook():
    assert octave_shapes((48, 60), 3, 1.4) == [(24, 30), (34, 42), (48, 60)]
    assert octave_shapes((5, 5), 1, 1.4) == [(5, 5)]
    with pytest.raises(ValueError, match="`octaves`"):
        octave_shapes((4, 4), 6, 2.0)


def test_dream_bad_input(model, photo, cnn_models):
    with pytest.raises(ValueError, match=r"`layer` 'conv3'.*known"):
        deepdream(model, photo, layer="conv3", key=KEY)
    with pytest.raises(ValueError, match="`octaves`"):
        deepdream(model, photo, layer="conv2", octaves=0, key=KEY)
    with pytest.raises(ValueError, match="`n_steps`"):
        deepdream(model, photo, layer="conv2", n_steps=0, key=KEY)
    with pytest.raises(ValueError, match="`step_size`"):
        deepdream(model, photo, layer="conv2", step_size=-1.0, key=KEY)
    with pytest.raises(ValueError, match="`octave_scale`"):
        deepdream(model, photo, layer="conv2", octave_scale=0.5, key=KEY)
    with pytest.raises(ValueError, match="`jitter`"):
        deepdream(model, photo, layer="conv2", jitter=-1, key=KEY)
    with pytest.raises(ValueError, match=r"`x` must be \(H, W, C\)"):
        deepdream(model, photo[None], layer="conv2", key=KEY)
    with pytest.raises(ValueError, match=r"`x` values must lie in \[0, 1\]"):
        deepdream(model, photo * 2.0, layer="conv2", key=KEY)
    with pytest.raises(ValueError, match="`x` holds NaN"):
        deepdream(model, np.where(photo > 0.5, np.nan, photo), layer="conv2", key=KEY)
    with pytest.raises(ValueError, match="`octaves`=9"):
        deepdream(model, photo, layer="conv2", octaves=9, octave_scale=2.0, key=KEY)
    # The zoo's digits CNN is declared for 8x8 inputs: named before anything compiles.
    with pytest.raises(ValueError, match="does not accept `x`"):
        deepdream(cnn_models["nnx"], photo, layer="conv2", key=KEY)
