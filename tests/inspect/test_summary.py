import xml.etree.ElementTree as ET

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

import visjax
from visjax.inspect import Summary, SummaryRow, summary
from visjax.zoo import digits_cnn


def _same_taps(size: int, k: int) -> int:
    """In-bounds taps of a stride-1 SAME kernel of width k, summed over the output positions."""
    lo = (k - 1) // 2
    return sum(sum(1 for t in range(k) if 0 <= o + t - lo < size) for o in range(size))


def test_summary_counts_and_shapes():
    for form in ("nnx", "linen", "function"):
        s = summary(digits_cnn(form), jnp.zeros((2, 8, 8, 1)))
        assert [(r.path, r.shape, r.params) for r in s.layers] == [
            ("conv1", (2, 8, 8, 16), 160),
            ("conv2", (2, 8, 8, 32), 4640),
            ("fc", (2, 10), 330),
        ]
        assert s.total_params == s.trainable_params == 5130
        assert s.param_bytes == 4 * 5130
        assert "5,130" in s.to_text()
        # fc: (1, 32) @ (32, 10) plus 10 bias adds, per example (in NNX and Linen the mean
        # pooling before it belongs to the parent; in the plain function it is fc's)
        if form != "function":
            assert s.rows[-1].flops == 2 * 32 * 10 + 10
            assert s.rows[-1].input_shape == (2, 32)


def test_dense_flops_closed_form():
    m, k, n = 4, 5, 7

    class Two(nnx.Module):
        def __init__(self, rngs):
            self.a = nnx.Linear(k, n, use_bias=False, rngs=rngs)
            self.b = nnx.Linear(n, 3, rngs=rngs)

        def __call__(self, x):
            return self.b(self.a(x))

    s = summary(visjax.as_model(Two(nnx.Rngs(0)), input_shape=(m, k)))
    a, b = s.rows
    assert a.flops == 2 * m * k * n
    assert b.flops == 2 * m * n * 3 + m * 3  # bias adds are counted
    # backward: dW for the first layer (not dx: the model input is not differentiated),
    # dW and dx for the second
    assert a.flops_train == 2 * a.flops
    # ... and the bias gradient, a sum over the m rows: 3 (m - 1) adds
    assert b.flops_train == 3 * (2 * m * n * 3) + m * 3 + 3 * (m - 1)
    assert s.flops == a.flops + b.flops
    assert (a.params, b.params, s.total_params) == (k * n, n * 3 + 3, k * n + n * 3 + 3)
    assert a.activation_bytes == m * n * 4


@pytest.mark.parametrize("padding", ["VALID", "SAME"])
def test_conv_flops_closed_form(padding):
    h, w, c_in, c_out, kk = 9, 7, 3, 5, 3

    class Net(nnx.Module):
        def __init__(self, rngs):
            self.conv = nnx.Conv(c_in, c_out, (kk, kk), padding=padding, rngs=rngs)

        def __call__(self, x):
            return self.conv(x)

    s = summary(Net(nnx.Rngs(0)), jnp.zeros((2, h, w, c_in)))
    (row,) = s.rows
    if padding == "VALID":
        h_out, w_out = h - kk + 1, w - kk + 1
        taps = h_out * w_out * kk * kk
    else:
        h_out, w_out = h, w
        taps = _same_taps(h, kk) * _same_taps(w, kk)
    assert row.output_shape == (2, h_out, w_out, c_out)
    assert row.flops == 2 * c_in * c_out * taps + h_out * w_out * c_out
    assert s.flops == row.flops


def test_tied_embedding_counted_once():
    class Head(nnx.Module):
        def __init__(self, w):
            self.w = w

        def __call__(self, h):
            return h @ self.w[...].T

    class Tied(nnx.Module):
        def __init__(self, rngs):
            self.embed = nnx.Embed(10, 4, rngs=rngs)
            self.head = Head(self.embed.embedding)

        def __call__(self, x):
            return self.head(self.embed(x))

    model = visjax.as_model(Tied(nnx.Rngs(0)), input_shape=(3,), input_dtype=jnp.integer)
    s = summary(model)
    leaves = jax.tree.leaves(model.params)
    assert s.total_params == sum(x.size for x in leaves) == 40
    assert [(r.path, r.params) for r in s.rows] == [("embed", 40), ("head", 40)]
    assert s.rows[1].flops == 2 * 3 * 4 * 10


def test_linen_shared_layer_and_plain_function():
    class Net(nn.Module):
        @nn.compact
        def __call__(self, x):
            shared = nn.Dense(6, name="shared")
            return shared(nn.relu(shared(x)) @ jnp.ones((6, 6)))

    net = Net()
    variables = net.init(jax.random.key(0), jnp.zeros((1, 6)))
    s = summary(visjax.as_model(net, variables, input_shape=(6,)))
    assert [(r.path, r.params) for r in s.rows] == [("shared", 42), ("shared#1", 42)]
    assert s.total_params == 42
    assert s.rows[0].flops == 2 * 6 * 6 + 6

    def apply(p, x):
        return visjax.tag(x @ p["w"], "fc")

    s = summary(visjax.as_model(apply, {"w": jnp.ones((5, 3))}), (2, 5))
    (row,) = s.rows
    assert (row.path, row.input_shape, row.flops, row.params) == ("fc", (2, 5), 30, 15)


def test_nested_depth_and_forms():
    from visjax.zoo import digits_resnet

    s = summary(digits_resnet())
    paths = [r.path for r in s.rows]
    assert paths[:3] == ["stem", "stages.0", "stages.0.blocks.0"]
    depths = {r.path: r.depth for r in s.rows}
    assert depths["stages.0"] == 0 and depths["stages.0.blocks.0.conv1"] == 2
    parent = s.rows[1]
    children = [r for r in s.rows if r.path.startswith("stages.0.blocks.0.")]
    assert parent.flops > sum(r.flops for r in children)  # plus the block's add and ReLU
    assert s.total_params == sum(x.size for x in jax.tree.leaves(digits_resnet().params))
    top = summary(digits_resnet(), depth=0)
    assert [r.path for r in top.rows] == ["stem", "stages.0", "stages.1", "stages.2", "fc"]
    assert top.flops == s.flops and top.total_params == s.total_params


def test_outputs():
    s = summary(digits_cnn("nnx"))
    assert isinstance(s, Summary) and all(isinstance(r, SummaryRow) for r in s.rows)
    records = s.to_records()
    assert records[0]["path"] == "conv1" and set(records[0]) == set(SummaryRow._fields)
    assert all(type(v) in (str, int, tuple, type(None)) for r in records for v in r.values())
    page = s.to_html()
    root = ET.fromstring(page)
    assert root.tag == "table" and "conv2" in page
    text = s.to_text()
    assert "FLOPs" in text and "conv1" in text
    assert np.isclose(s.activation_bytes, sum(r.activation_bytes for r in s.rows))


def test_n_a_when_xla_reports_nothing():
    from visjax.inspect.summary import _cost

    def apply(p, x):
        return visjax.tag(x * p, "y")

    s = summary(visjax.as_model(apply, jnp.ones(()), input_shape=(3,)))
    assert s.rows[0].flops == 3  # one multiply per entry
    assert "n/a" not in s.to_text()

    def broken(v):
        raise NotImplementedError

    assert _cost(broken, [jax.ShapeDtypeStruct((2,), jnp.float32)]) is None
    row = s.rows[0]._replace(flops=None, flops_train=None)
    assert (
        "n/a" in Summary([row], **{k: 0 for k in _TOTALS}, flops=None, flops_train=None).to_text()
    )


_TOTALS = ("total_params", "trainable_params", "param_bytes", "activation_bytes")


def test_bad_input():
    model = digits_cnn("nnx")
    with pytest.raises(ValueError, match="`depth`"):
        summary(model, depth=-1)
    with pytest.raises(ValueError, match="`x`"):
        summary(model, jnp.zeros((2, 5, 5, 1)))
    with pytest.raises(TypeError, match="`x`"):
        summary(model, jnp.zeros((2, 8, 8, 1), jnp.int32))

    def apply(p, x):
        return x @ p

    with pytest.raises(ValueError, match="`x`"):
        summary(visjax.as_model(apply, jnp.ones((3, 2))))
