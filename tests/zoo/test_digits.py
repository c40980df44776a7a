import jax
import numpy as np
import pytest

from visjax.zoo import digits_cnn, evaluate, load_digits, train


@pytest.fixture(scope="module")
def digits():
    return load_digits()


def test_split_sizes_and_range(digits):
    assert digits.train.x.shape == (1347, 8, 8, 1)
    assert digits.test.x.shape == (450, 8, 8, 1)
    assert digits.train.x.dtype == np.float32 and digits.train.y.dtype == np.int32
    assert digits.train.x.min() == 0.0 and digits.train.x.max() == 1.0
    # stratified: every class in both splits in the same proportions (to within one example)
    tr = np.bincount(digits.train.y) / len(digits.train.y)
    te = np.bincount(digits.test.y) / len(digits.test.y)
    assert np.abs(tr - te).max() < 0.01


def test_training_reaches_95_percent_and_is_deterministic(digits):
    model, history = train(digits_cnn("function", seed=0), digits.train, epochs=30, seed=0)
    _, acc = evaluate(model, digits.test)
    assert acc >= 0.95
    assert history.train_loss[-1] < history.train_loss[0]
    again, _ = train(digits_cnn("function", seed=0), digits.train, epochs=1, seed=0)
    again2, _ = train(digits_cnn("function", seed=0), digits.train, epochs=1, seed=0)
    for a, b in zip(jax.tree.leaves(again.params), jax.tree.leaves(again2.params), strict=True):
        np.testing.assert_array_equal(a, b)


def test_trained_weights_carry_over_to_every_form(digits):
    model, _ = train(digits_cnn("nnx", seed=1), digits.train, epochs=2, seed=1)
    out = model(digits.test.x[:8])
    for form in ("linen", "function"):
        other = digits_cnn(form, model.params)
        np.testing.assert_allclose(other(digits.test.x[:8]), out, rtol=1e-5, atol=1e-6)


def test_bad_training_arguments(digits):
    with pytest.raises(ValueError, match="`batch_size`"):
        train(digits_cnn("function"), digits.train, batch_size=0)
    with pytest.raises(ValueError, match="`epochs`"):
        train(digits_cnn("function"), digits.train, epochs=0)
    with pytest.raises(ValueError, match="`form`"):
        digits_cnn("torch")
