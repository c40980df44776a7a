import jax
import pytest


def pytest_report_header(config):
    devices = ", ".join(f"{d.platform}:{d.device_kind}" for d in jax.devices())
    return f"jax {jax.__version__} on {devices}"


@pytest.fixture(scope="session")
def digits():
    from visjax.zoo import load_digits

    return load_digits()
