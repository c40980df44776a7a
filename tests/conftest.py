import os

import jax
import pytest

from visjax.zoo import digits_cnn, init_digits_cnn_params

FORMS = ("nnx", "linen", "function")


@pytest.fixture(scope="session")
def cnn_params():
    return init_digits_cnn_params(jax.random.key(42))


@pytest.fixture(scope="session")
def cnn_models(cnn_params):
    """The digits CNN in its three forms, with identical weights."""
    return {form: digits_cnn(form, cnn_params) for form in FORMS}


@pytest.fixture(scope="session")
def batch():
    return jax.random.uniform(jax.random.key(7), (5, 8, 8, 1))


@pytest.fixture(autouse=True, scope="session")
def _private_weight_cache(tmp_path_factory):
    """Tests never touch the user's cache folder; the run's cache is shared by its xdist workers.

    Each worker (a process of its own) gets its own ``basetemp`` below the run's; the cache sits
    in the run's, so a model trained by one worker is loaded by the others. Cache writes are atomic
    (:mod:`visjax.zoo.cache`), so two workers training the same entry at once is harmless.
    """
    root = tmp_path_factory.getbasetemp()
    folder = (root.parent if os.environ.get("PYTEST_XDIST_WORKER") else root) / "visjax-cache"
    folder.mkdir(exist_ok=True)
    mp = pytest.MonkeyPatch()
    mp.setenv("VISJAX_CACHE", str(folder))
    yield
    mp.undo()


@pytest.fixture(scope="session")
def trained_digits(_private_weight_cache):
    """The digits CNN trained for 10 epochs (seed 0), once per run, through the shared cache."""
    from visjax.zoo.pretrained import trained_digits_cnn

    return trained_digits_cnn(epochs=10)
