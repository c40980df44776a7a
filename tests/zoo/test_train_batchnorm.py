"""zoo.train trains models with batch statistics in training mode and returns the averages."""

import shutil

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

from visjax import as_model
from visjax.zoo import Split, digits_resnet, load_digits
from visjax.zoo.cache import load_or_train
from visjax.zoo.train import _loss, evaluate, train


class _Tiny(nnx.Module):
    """Dense -> BatchNorm -> Dense: the BatchNorm sees the first layer's (moving) output."""

    def __init__(self, momentum, rngs):
        self.fc1 = nnx.Linear(3, 4, rngs=rngs)
        self.bn = nnx.BatchNorm(4, momentum=momentum, rngs=rngs)
        self.fc2 = nnx.Linear(4, 3, rngs=rngs)

    def __call__(self, x):
        return self.fc2(nnx.relu(self.bn(self.fc1(x))))


class _Plain(nnx.Module):
    def __init__(self, rngs):
        self.fc1 = nnx.Linear(3, 4, rngs=rngs)
        self.fc2 = nnx.Linear(4, 3, rngs=rngs)

    def __call__(self, x):
        return self.fc2(nnx.relu(self.fc1(x)))


def _plain():
    return as_model(_Plain(nnx.Rngs(0)), input_shape=(3,))


def _data(n=40):
    rng = np.random.default_rng(0)
    x = rng.normal(2.0, 3.0, (n, 3)).astype(np.float32)
    return Split(x, rng.integers(0, 3, n).astype(np.int32))


def _tiny(momentum=0.99):
    return as_model(_Tiny(momentum, nnx.Rngs(0)), input_shape=(3,))


def _steps(n, batch_size, epochs, seed):
    """The batches ``train`` visits (its documented shuffling), in order."""
    rng = np.random.default_rng(seed)
    for _ in range(epochs):
        order = rng.permutation(n)
        for start in range(0, n - batch_size + 1, batch_size):
            yield order[start : start + batch_size]


@pytest.mark.parametrize("momentum", [0.99, 0.8])
def test_running_averages_are_the_moving_average_of_the_batch_statistics(momentum):
    data, opt = _data(), optax.sgd(0.1)
    model = _tiny(momentum)
    assert model.has_batch_stats
    trained, history = train(
        model, data, epochs=2, batch_size=8, optimizer=opt, seed=1, test_data=data, progress=False
    )
    # Replay the steps: the batch statistics of fc1's output under the parameters of that step.
    params, opt_state = model.params, opt.init(model.params)
    mean, var = np.zeros(4), np.ones(4)

    def loss(p, x, y):
        h = x @ p["fc1"]["kernel"] + p["fc1"]["bias"]
        mu, v = h.mean(0), h.var(0)
        h = (h - mu) / jnp.sqrt(v + 1e-5) * p["bn"]["scale"] + p["bn"]["bias"]
        logits = jax.nn.relu(h) @ p["fc2"]["kernel"] + p["fc2"]["bias"]
        return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean(), (mu, v)

    for idx in _steps(len(data.x), 8, 2, seed=1):
        (_, (mu, v)), g = jax.value_and_grad(loss, has_aux=True)(params, data.x[idx], data.y[idx])
        mean = momentum * mean + (1 - momentum) * np.asarray(mu, np.float64)
        var = momentum * var + (1 - momentum) * np.asarray(v, np.float64)
        updates, opt_state = opt.update(g, opt_state, params)
        params = optax.apply_updates(params, updates)
    stats = nnx.to_pure_dict(trained.state)["bn"]
    np.testing.assert_allclose(stats["mean"], mean, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(stats["var"], var, rtol=1e-5)
    # the test accuracy is the inference-mode model's (running averages)
    assert history.test_accuracy[-1] == evaluate(trained, data)[1]
    # the input model is untouched
    np.testing.assert_array_equal(nnx.to_pure_dict(model.state)["bn"]["mean"], np.zeros(4))


@pytest.mark.parametrize("which", ["plain", "bn_off"])
def test_without_batch_stats_one_step_is_the_inference_mode_step(which):
    """A model without batch statistics (or ``batch_stats=False``) takes the old step."""
    model, flag = (_plain(), None) if which == "plain" else (_tiny(), False)
    data = _data(16)
    trained, _ = train(model, data, epochs=1, batch_size=16, progress=False, batch_stats=flag)
    x, y = data.x[next(_steps(16, 16, 1, seed=0))], data.y[next(_steps(16, 16, 1, seed=0))]
    opt = optax.adam(1e-2)
    g = jax.grad(lambda p: _loss(p, model, x, y)[0])(model.params)
    updates, _ = opt.update(g, opt.init(model.params), model.params)
    expected = optax.apply_updates(model.params, updates)
    for a, b in zip(jax.tree.leaves(trained.params), jax.tree.leaves(expected), strict=True):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-6, atol=1e-7)
    for a, b in zip(jax.tree.leaves(trained.state), jax.tree.leaves(model.state), strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_bad_batch_stats_and_linen():
    data = _data(16)
    with pytest.raises(ValueError, match="no batch statistics"):
        train(_plain(), data, epochs=1, batch_size=8, batch_stats=True, progress=False)
    with pytest.raises(TypeError, match="batch_stats"):
        train(_tiny(), data, epochs=1, batch_size=8, batch_stats=1, progress=False)

    class LinenBN(nn.Module):
        @nn.compact
        def __call__(self, x):
            return nn.Dense(3)(nn.BatchNorm(use_running_average=True)(x))

    module = LinenBN()
    model = as_model(module, module.init(jax.random.key(0), data.x[:2]), input_shape=(3,))
    assert model.has_batch_stats
    with pytest.raises(TypeError, match="NNX"):
        train(model, data, epochs=1, batch_size=8, batch_stats=True, progress=False)
    with pytest.warns(RuntimeWarning, match="stay fixed"):
        trained, _ = train(model, data, epochs=1, batch_size=8, progress=False)
    assert trained.state is model.state


def test_cache_keeps_the_running_averages_and_retrains_entries_without_them(tmp_path):
    data = _data()
    model = _tiny()

    def fit():
        return train(model, data, epochs=1, batch_size=8, progress=False)

    first = load_or_train("tiny_bn", {"v": 1}, fit, like=model, cache=tmp_path)
    again = load_or_train("tiny_bn", {"v": 1}, fit, like=model, cache=tmp_path)
    assert again.from_cache
    for a, b in zip(
        jax.tree.leaves(again.model.state), jax.tree.leaves(first.model.state), strict=True
    ):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    (entry,) = [p for p in tmp_path.iterdir() if p.name.startswith("tiny_bn-")]
    shutil.rmtree(entry / "state")  # as an entry written before the statistics were saved
    with pytest.warns(RuntimeWarning, match="discarding"):
        redone = load_or_train("tiny_bn", {"v": 1}, fit, like=model, cache=tmp_path)
    assert not redone.from_cache


def test_the_batchnorm_resnet_trains_to_high_inference_mode_accuracy():
    d = load_digits()
    model, _ = train(
        digits_resnet(norm=True, width=8), d.train, epochs=4, optimizer=optax.adam(3e-3),
        progress=False,
    )  # fmt: skip
    stats = nnx.to_pure_dict(model.state)["stem_bn"]
    assert not np.allclose(stats["mean"], 0.0) and not np.allclose(stats["var"], 1.0)
    assert evaluate(model, d.test)[1] > 0.9
