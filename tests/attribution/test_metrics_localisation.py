"""Pointing game, relevance mass and relevance rank on the zoo's exact object masks."""

import jax.numpy as jnp
import numpy as np
import pytest

from visjax.attribution.metrics import pointing_game, relevance_mass, relevance_rank
from visjax.zoo.objects import make_objects


@pytest.fixture(scope="module")
def objects():
    return make_objects(2, size=16, noise=0.0)


def test_oracle_and_anti_oracle(objects):
    mask = objects.mask
    inside = jnp.asarray(mask, jnp.float32)
    assert pointing_game(inside, mask).all()
    np.testing.assert_allclose(relevance_mass(inside, mask), 1.0, rtol=1e-6)
    np.testing.assert_allclose(relevance_rank(inside, mask), 1.0)
    outside = 1.0 - inside
    assert not pointing_game(outside, mask).any()
    np.testing.assert_allclose(relevance_mass(outside, mask), 0.0)
    np.testing.assert_allclose(relevance_rank(outside, mask), 0.0)
    # NHWC maps are summed over channels; the image itself (objects drawn on black, no noise)
    rgb = jnp.asarray(objects.x)[..., :1] * inside[..., None]
    np.testing.assert_allclose(relevance_mass(rgb, mask), 1.0, rtol=1e-6)


def test_values_by_hand():
    maps = np.zeros((1, 5, 5), np.float32)
    maps[0, 0, 0] = 3.0
    maps[0, 4, 4] = 1.0
    maps[0, 2, 2] = -5.0
    mask = np.zeros((5, 5), bool)
    mask[3:, 3:] = True
    assert not pointing_game(maps, mask)[0]
    assert not pointing_game(maps, mask, tolerance=4.0)[0]  # nearest mask pixel: sqrt(18)
    assert pointing_game(maps, mask, tolerance=4.25)[0]
    np.testing.assert_allclose(relevance_mass(maps, mask), [0.25])
    # K = 4: the top 4 are (0,0), (4,4), then zeros by index (0,1), (0,2): one hit
    np.testing.assert_allclose(relevance_rank(maps, mask), [0.25])


def test_bad_input(objects):
    with pytest.raises(ValueError, match="`mask`"):
        relevance_mass(np.zeros((10, 16, 16)), objects.mask[:, :8])
    with pytest.raises(TypeError, match="`mask`"):
        pointing_game(np.zeros((10, 16, 16)), objects.mask.astype(int))
    with pytest.raises(ValueError, match="`maps`"):
        relevance_rank(np.full((10, 16, 16), np.nan), objects.mask)
    with pytest.raises(ValueError, match="`tolerance`"):
        pointing_game(np.zeros((10, 16, 16)), objects.mask, tolerance=-1)
