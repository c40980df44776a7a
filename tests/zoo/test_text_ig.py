"""Issue 34's correctness line on the text model: attention and integrated gradients at the
embedding layer (the documented practice for integer tokens, summed over the embedding features
per token) both point at the marked token on >= 90 % of the test sequences. Slow: it trains the
model (about 20 s on 2 cores) in the test session's empty cache."""

import jax.numpy as jnp
import numpy as np

from visjax.attention import attention_rollout
from visjax.attribution import at_layer, integrated_gradients
from visjax.zoo import make_marked, trained_text_transformer


def test_ig_and_attention_point_at_the_marked_token():
    model = trained_text_transformer().model
    data = make_marked()
    x, y = jnp.asarray(data.test.x), jnp.asarray(data.test.y)
    ig = at_layer(integrated_gradients, "embed")(model, x, y, n_steps=16)
    assert ig.shape == (*x.shape, 32)
    ig_hit = np.mean(np.asarray(ig.sum(-1).argmax(1)) == data.position)
    # Rollout gives the class token's row over the other tokens: token t is column t - 1.
    rollout_hit = np.mean(np.asarray(attention_rollout(model, x).argmax(1)) + 1 == data.position)
    assert ig_hit >= 0.9, ig_hit
    assert rollout_hit >= 0.9, rollout_hit
