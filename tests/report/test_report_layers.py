"""The report chooses its layers from the model: the CAM target (the last spatial layer) and the
embedding's layer (the last one before the output layer), and skips CAMs without a spatial layer."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from tests.report.tiny_models import tagged_cnn
from visjax import as_model, tag
from visjax.report.attribution import cam_section
from visjax.report.context import ReportContext
from visjax.report.layers import penultimate_layer, spatial_layer
from visjax.zoo import Split, digits_cnn, digits_resnet

X = jax.ShapeDtypeStruct((1, 8, 8, 1), jnp.float32)  # only shapes matter


def _conv_model(tag_logits: bool = True):
    return tagged_cnn(tag_logits=tag_logits)


def _mlp():
    """No spatial layer: flatten -> ``hidden`` (N, 16) -> ``logits`` (N, 10)."""
    rng = np.random.default_rng(1)
    params = {
        "w1": rng.standard_normal((64, 16), np.float32) / 8,
        "w2": rng.standard_normal((16, 10), np.float32),
    }

    def apply(p, x):
        h = tag(x.reshape(x.shape[0], -1) @ p["w1"], "hidden")
        return tag(jax.nn.relu(h) @ p["w2"], "logits")

    return as_model(apply, params, input_shape=(8, 8, 1))


def _ctx(tmp_path, model):
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 1, (12, 8, 8, 1)).astype(np.float32)
    y = rng.integers(0, 10, 12)
    return ReportContext(
        tmp_path,
        model=model,
        train=Split(x, y),
        test=Split(x, y),
        num_classes=10,
        quick=True,
        log=lambda _: None,
    )


def _zeros(shapes):
    return {
        k: {"kernel": np.zeros(s, np.float32), "bias": np.zeros(s[-1], np.float32)}
        for k, s in shapes.items()
    }


def test_digits_cnn_keeps_conv2():
    m = digits_cnn("nnx", _zeros({"conv1": (3, 3, 1, 16), "conv2": (3, 3, 16, 32), "fc": (32, 10)}))
    assert spatial_layer(m, X) == "conv2"
    assert penultimate_layer(m, X) == "conv2"


def test_resnet_gets_its_last_stage():
    m = digits_resnet(depth=8, width=4)
    assert spatial_layer(m, X) == "stages.2"
    assert penultimate_layer(m, X) == "stages.2"


def test_function_model_gets_its_own_names():
    m = _conv_model()
    assert spatial_layer(m, X) == "features"
    assert penultimate_layer(m, X) == "pooled"
    # an untagged output: the last tagged layer is the one before it
    assert penultimate_layer(_conv_model(tag_logits=False), X) == "pooled"


def test_no_spatial_layer():
    m = _mlp()
    assert spatial_layer(m, X) is None
    assert penultimate_layer(m, X) == "hidden"


def test_no_layer_before_the_output_is_refused():
    m = as_model(lambda p, x: tag(x.reshape(x.shape[0], -1) @ p, "fc"), np.ones((64, 10)))
    with pytest.raises(ValueError, match="no layer before its output layer"):
        penultimate_layer(m, X)


def test_cam_section_without_a_spatial_layer_is_a_note(tmp_path):
    section = cam_section(_ctx(tmp_path, _mlp()))
    assert section.title == "Class activation maps"
    assert not section.figures
    assert "No CAMs" in section.text and "hidden, logits" in section.text


def test_cam_section_names_the_chosen_layer(tmp_path):
    section = cam_section(_ctx(tmp_path, _conv_model()))
    assert "at layer `features`" in section.text
    assert "(8 x 8) map" in section.text
    assert (tmp_path / "cam.png").stat().st_size > 1000
