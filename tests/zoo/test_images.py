import numpy as np
import pytest
import skimage.data

from visjax.zoo import SAMPLE_IMAGES, sample_image, sample_images


@pytest.mark.parametrize("name", SAMPLE_IMAGES)
def test_every_listed_image_loads_offline_as_float_rgb(name):
    image = sample_image(name)
    assert image.ndim == 3 and image.shape[-1] == 3
    assert image.dtype == np.float32
    assert 0.0 <= image.min() and image.max() <= 1.0
    # the pixel values / 255 of scikit-image's own loader
    raw = getattr(skimage.data, name)()
    assert raw.dtype == np.uint8
    np.testing.assert_array_equal(image, raw.astype(np.float32) / 255)


def test_resize():
    image = sample_image("chelsea", size=(64, 96))
    assert image.shape == (64, 96, 3) and image.dtype == np.float32
    assert 0.0 <= image.min() and image.max() <= 1.0
    # shrinking keeps the mean colour (anti-aliased averaging), to within a few grey levels
    full = sample_image("chelsea")
    np.testing.assert_allclose(image.mean((0, 1)), full.mean((0, 1)), atol=3 / 255)
    # the original size is the image itself; results are fresh arrays
    np.testing.assert_array_equal(sample_image("chelsea", size=full.shape[:2]), full)
    full[:] = 0
    assert sample_image("chelsea").max() > 0


def test_sample_images_batch():
    batch = sample_images()
    assert batch.shape == (3, 224, 224, 3) and batch.dtype == np.float32
    assert 0.0 <= batch.min() and batch.max() <= 1.0
    np.testing.assert_array_equal(batch[1], sample_image("coffee", size=(224, 224)))
    assert sample_images(["rocket"], size=(16, 8)).shape == (1, 16, 8, 3)


def test_bad_arguments():
    with pytest.raises(ValueError, match=r"known images:.*astronaut"):
        sample_image("lena")
    with pytest.raises(ValueError, match="known images"):
        sample_images(("astronaut", "camera"))
    with pytest.raises(ValueError, match="`size`"):
        sample_image("coffee", size=(0, 10))
    with pytest.raises(ValueError, match="`size`"):
        sample_images(size=224)
    with pytest.raises(ValueError, match="`names`"):
        sample_images(())
