"""Tiny models shared by the report tests."""

import jax
import numpy as np

from visjax import as_model, tag


def tagged_cnn(*, channels: int = 1, classes: int = 10, size: int = 8, tag_logits: bool = True):
    """A tiny tagged-function CNN: conv ``stem`` -> conv ``features`` (N, size, size, 6) -> mean
    ``pooled`` (N, 6) -> ``logits`` (N, classes), on ``(size, size, channels)`` inputs."""
    rng = np.random.default_rng(0)  # NumPy: no eager JAX programs to compile
    params = {
        "stem": 0.5 * rng.standard_normal((3, 3, channels, 4), np.float32),
        "features": 0.5 * rng.standard_normal((3, 3, 4, 6), np.float32),
        "fc": rng.standard_normal((6, classes), np.float32),
    }

    def conv(h, w):
        return jax.lax.conv_general_dilated(
            h, w, (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC")
        )

    def apply(p, x):
        h = jax.nn.relu(tag(conv(x, p["stem"]), "stem"))
        h = tag(conv(h, p["features"]), "features")
        h = tag(jax.nn.relu(h).mean(axis=(1, 2)), "pooled")
        out = h @ p["fc"]
        return tag(out, "logits") if tag_logits else out

    return as_model(apply, params, input_shape=(size, size, channels))
