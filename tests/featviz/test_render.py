"""render: many units vmapped equal one at a time, chunking, no recompiles, ground truth, errors."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from visjax.featviz import (
    channel,
    class_logit,
    compose,
    fourier,
    jitter,
    pad,
    pixel,
    render,
    total_variation,
)
from visjax.zoo import digits_cnn, load_digits

KEY = jax.random.key(0)
PARAM = fourier((8, 8, 1))
TRANSFORMS = compose(pad(2), jitter(4))  # 8x8 -> 12x12 -> 8x8
OPT = optax.adam(0.05)


@pytest.fixture(scope="module")
def cnn(trained_digits):
    return trained_digits.model


@pytest.mark.slow  # over 4.5 s on 2 cores: make test-slow (CI) runs it
def test_sixteen_units_vmapped_equal_one_at_a_time(cnn):
    units = [("conv2", c) for c in range(16)]
    kw = dict(param=PARAM, transforms=TRANSFORMS, n_steps=12, optimizer=OPT, key=KEY)
    batched = render(cnn, units=units, **kw)
    assert batched.images.shape == (16, 8, 8, 1) and batched.traces.shape == (16, 12)
    for i in (0, 7, 15):
        single = render(cnn, units=[units[i]], **kw)
        np.testing.assert_allclose(single.images[0], batched.images[i], rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(single.traces[0], batched.traces[i], rtol=1e-4, atol=1e-5)
    chunked = render(cnn, units=units, batch_size=5, **kw)  # chunks 5, 5, 5, 1 (+4 padding)
    np.testing.assert_allclose(chunked.images, batched.images, rtol=1e-4, atol=1e-5)
    scanned = render(cnn, units=units[:3], loop="scan", **kw)
    np.testing.assert_allclose(scanned.images, batched.images[:3], rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(scanned.traces, batched.traces[:3], rtol=1e-4, atol=1e-5)


def test_repeated_render_does_not_retrace(cnn):
    import visjax.featviz.rendering as render_module

    kw = dict(param=PARAM, transforms=TRANSFORMS, n_steps=3, optimizer=OPT, key=KEY)
    render(cnn, units=[("conv1", 0), ("conv1", 1)], **kw)
    sizes = [f._cache_size() for f in (render_module._step, render_module._init)]
    render(cnn, units=[("conv1", 2), ("conv1", 3)], **kw)  # new units, same shapes
    new_weights = cnn.replace(params=jax.tree.map(lambda p: p * 1.1, cnn.params))
    render(new_weights, units=[("conv1", 4), ("conv1", 5)], **kw)
    assert [f._cache_size() for f in (render_module._step, render_module._init)] == sizes


def test_rendered_channel_beats_every_training_digit(cnn):
    digits = jnp.asarray(load_digits().train.x)
    channels = [0, 3, 9]
    out = render(
        cnn,
        units=[("conv2", c) for c in channels],
        param=pixel((8, 8, 1)),
        n_steps=64,
        optimizer=OPT,
        key=KEY,
    )
    acts_img = cnn.activations(out.images, ["conv2"])[1]["conv2"].mean(axis=(1, 2))
    acts_data = cnn.activations(digits, ["conv2"])[1]["conv2"].mean(axis=(1, 2))
    for i, c in enumerate(channels):
        assert float(acts_img[i, c]) > float(acts_data[:, c].max()), c
        assert out.traces[i, -1] > out.traces[i, 0]
    assert float(out.images.min()) >= 0.0 and float(out.images.max()) <= 1.0


@pytest.mark.slow  # over 4.5 s on 2 cores: make test-slow (CI) runs it
def test_class_units_and_objective_functions(cnn):
    out = render(cnn, units=[3, 7], param=PARAM, n_steps=24, optimizer=OPT, key=KEY)
    logits = cnn(out.images)
    assert int(jnp.argmax(logits[0])) == 3 and int(jnp.argmax(logits[1])) == 7

    def make(unit):
        return channel(unit[0], unit[1]) - 0.01 * total_variation()

    reg = render(cnn, make, units=[("conv2", 1)], param=PARAM, n_steps=6, optimizer=OPT, key=KEY)
    plain = render(cnn, units=[("conv2", 1)], param=PARAM, n_steps=6, optimizer=OPT, key=KEY)
    assert not np.allclose(reg.images, plain.images)
    single = render(cnn, class_logit(3), param=PARAM, n_steps=24, optimizer=OPT, key=KEY)
    assert single.images.shape == (1, 8, 8, 1)


def test_batch_parameterisation_shape():
    model = digits_cnn("function")
    out = render(model, units=[("conv1", 0)], param=fourier((8, 8, 1), batch=3), n_steps=2, key=KEY)
    assert out.images.shape == (1, 3, 8, 8, 1)


def test_bad_input_before_compiling():
    model = digits_cnn("function")
    kw = dict(param=PARAM, n_steps=2, key=KEY)
    with pytest.raises(ValueError, match="unknown layer"):
        render(model, units=[("conv9", 0)], **kw)
    with pytest.raises(ValueError, match="channel 16 out of range"):
        render(model, units=[("conv1", 16)], **kw)
    with pytest.raises(ValueError, match="channel 10 out of range"):
        render(model, units=[10], **kw)
    with pytest.raises(ValueError, match="`n_steps`"):
        render(model, units=[1], param=PARAM, n_steps=0, key=KEY)
    with pytest.raises(ValueError):
        render(model, units=[1], transforms=jitter(9), **kw)  # 8x8 image, jitter 9
    with pytest.raises(ValueError, match="`units`"):
        render(model, units=[("conv1", 0), 3], **kw)
    with pytest.raises(ValueError, match="`objective`"):
        render(model, **kw)
    with pytest.raises(ValueError, match="`objective`"):
        render(model, channel("conv1", 0), units=[1], **kw)
    with pytest.raises(ValueError, match="`param`"):
        render(model, units=[1], param=None, n_steps=2, key=KEY)
    for bad in (0, 1.5, "big"):
        with pytest.raises(ValueError, match="`batch_size`"):
            render(model, units=[1], batch_size=bad, **kw)


def test_non_finite_rendering_is_an_error():
    model = digits_cnn("function")
    with pytest.raises(ValueError, match="non-finite"):
        render(
            model,
            units=[1],
            param=pixel((8, 8, 1)),
            n_steps=2,
            key=KEY,
            optimizer=optax.sgd(jnp.inf),
        )


@pytest.fixture(scope="module")
def shapes():
    from visjax.zoo import trained_shapes_cnn

    return trained_shapes_cnn().model


@pytest.mark.slow  # over 4.5 s on 2 cores: make test-slow (CI) runs it
def test_class_visualisations_show_their_class(shapes):
    """Ground truth on the generated-shapes model: stripes point the right way, red is red."""
    from visjax.zoo import SHAPE_CLASSES

    ids = [SHAPE_CLASSES.index(c) for c in ("vertical stripes", "horizontal stripes", "red")]
    out = render(
        shapes,
        units=ids,
        param=fourier((16, 16, 3)),
        transforms=compose(pad(4), jitter(8)),  # 16 -> 24 -> 16
        n_steps=96,
        optimizer=OPT,
        key=KEY,
    )
    logits = shapes(out.images)
    assert np.asarray(jnp.argmax(logits, -1)).tolist() == ids
    grey = np.asarray(out.images).mean(-1)
    power = np.abs(np.fft.fft2(grey - grey.mean(axis=(1, 2), keepdims=True))) ** 2
    along_x = power[:, 0, 1:].sum(-1)  # varying across columns: vertical stripes
    along_y = power[:, 1:, 0].sum(-1)  # varying across rows: horizontal stripes
    assert along_x[0] > 2 * along_y[0], (along_x[0], along_y[0])
    assert along_y[1] > 2 * along_x[1], (along_x[1], along_y[1])
    # "red" wins early (its logit saturates the class): the image is red-tinted, not saturated.
    r, g, b = np.asarray(out.images[2]).mean(axis=(0, 1))
    assert r > g + 0.05 and r > b + 0.05, (r, g, b)
    r, g, b = np.asarray(out.images[:2]).mean(axis=(0, 1, 2))
    assert abs(r - g) < 0.1 and abs(r - b) < 0.1  # the stripes are near-grey, as in the data


def test_transforms_sequence_is_composed_and_units_named():
    model = digits_cnn("function")
    kw = dict(param=PARAM, n_steps=2, key=KEY)
    seq = render(model, units=[1], transforms=[pad(1), jitter(2)], **kw)
    one = render(model, units=[1], transforms=compose(pad(1), jitter(2)), **kw)
    np.testing.assert_allclose(seq.images, one.images, rtol=1e-5, atol=1e-6)
    assert render(model, units=[1], transforms=(), **kw).images.shape == one.images.shape
    with pytest.raises(ValueError, match=r"`units`.*0 to 9"):
        render(model, units=[99], **kw)
    with pytest.raises(TypeError, match="`transforms`"):
        render(model, units=[1], transforms=3, **kw)


def test_auto_batch_size_equals_explicit_and_one_chunk(cnn, monkeypatch):
    import visjax.base.batching as batching
    import visjax.featviz.rendering as render_module

    # A tiny budget: "auto" renders the 5 units one per chunk.
    monkeypatch.setattr(batching, "CPU_CHUNK_BYTES", 64)
    monkeypatch.setattr(batching, "ACCELERATOR_CHUNK_BYTES", 64)
    monkeypatch.setattr(render_module, "_AUTO_SIZES", {})
    units = [("conv2", c) for c in range(5)]
    kw = dict(param=PARAM, transforms=TRANSFORMS, n_steps=4, optimizer=OPT, key=KEY, units=units)
    auto = render(cnn, **kw)
    assert list(render_module._AUTO_SIZES.values()) == [1]
    for other in (None, 2):
        got = render(cnn, batch_size=other, **kw)
        np.testing.assert_allclose(got.images, auto.images, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(got.traces, auto.traces, rtol=1e-5, atol=1e-6)
