import jax.numpy as jnp

from visjax.inspect import summary
from visjax.zoo import digits_cnn


def test_summary_counts_and_shapes():
    for form in ("nnx", "linen", "function"):
        s = summary(digits_cnn(form), jnp.zeros((2, 8, 8, 1)))
        assert [(r.path, r.shape, r.params) for r in s.layers] == [
            ("conv1", (2, 8, 8, 16), 160),
            ("conv2", (2, 8, 8, 32), 4640),
            ("fc", (2, 10), 330),
        ]
        assert s.total_params == 5130
        assert "5,130" in s.to_text()
