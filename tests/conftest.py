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
    """Tests never touch the user's cache folder."""
    mp = pytest.MonkeyPatch()
    mp.setenv("VISJAX_CACHE", str(tmp_path_factory.mktemp("visjax-cache")))
    yield
    mp.undo()
