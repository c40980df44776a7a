import numpy as np
import pytest

from visjax.attribution.masks import (
    feature_mask,
    grid_superpixels,
    slic_superpixels,
    square_patches,
)


def test_square_patches_row_major_with_partial_edges():
    m = square_patches((5, 5), 2)
    assert m.dtype == np.int32
    assert m[0].tolist() == [0, 0, 1, 1, 2]
    assert m[4].tolist() == [6, 6, 7, 7, 8]
    c = square_patches((8, 8, 3), 4)
    assert c.shape == (8, 8, 3)
    assert (c == c[..., :1]).all() and c.max() == 3


def test_grid_superpixels_cells():
    m = grid_superpixels((5, 7), 2, 3)
    assert m.shape == (5, 7) and set(np.unique(m)) == set(range(6))
    assert m[0, 0] == 0 and m[-1, -1] == 5
    sizes = np.bincount(m.ravel())
    assert sizes.max() - sizes.min() <= 5  # rows differ by <= 1 pixel, cols by <= 1


def test_masks_are_usable_as_feature_masks():
    import jax.numpy as jnp

    x = jnp.zeros((2, 8, 8, 1))
    assert feature_mask(square_patches((8, 8, 1), 3), x).n_features == 9
    assert feature_mask(grid_superpixels((8, 8, 1), 2, 4), x).n_features == 8


def test_slic_superpixels_per_example_relabelled(digits):
    imgs = digits.test.x[:4]
    m = slic_superpixels(imgs, n_segments=8, compactness=0.1)
    assert m.shape == (4, 8, 8, 1) and m.dtype == np.int32
    for i in range(4):
        used = np.unique(m[i])
        assert used.tolist() == list(range(used.size))
    fm = feature_mask(m, np.zeros((4, 8, 8, 1), np.float32))
    assert fm.n_features == int(m.max()) + 1


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: square_patches((8,), 2), "shape"),
        (lambda: square_patches((8, 8), 0), "size"),
        (lambda: grid_superpixels((8, 8), 9, 2), "n_rows"),
        (lambda: grid_superpixels((8, 8), 2, 0), "n_cols"),
        (lambda: slic_superpixels(np.zeros((8, 8, 1))), "images"),
    ],
)
def test_bad_input(call, match):
    with pytest.raises(ValueError, match=match):
        call()
