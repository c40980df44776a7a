"""A model's outputs on a dataset, in chunks: bounded memory, one compiled program."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from visjax.base.batching import resolve_batch_size
from visjax.base.checks import check_batch_size, check_finite
from visjax.model import Model


@jax.jit
def _model_forward(model: Model, x: jax.Array) -> Any:
    return model(x)


def predict(
    model: Model | Callable[[jax.Array], Any], x: Any, *, batch_size: int | str | None = "auto"
) -> Any:
    """The model's raw outputs (logits for the zoo's classifiers) on ``x``, as NumPy.

    ``x`` is evaluated in chunks of ``batch_size`` rows by one jitted forward; the last chunk is
    padded (with copies of its last row, dropped afterwards) so every chunk reuses the same
    program. Outputs are returned as the model gives them: apply ``jax.nn.softmax`` (or
    ``scipy.special.softmax``) for the probabilities the metrics take.

    Args:
      model: a :class:`visjax.Model` (its weights are arguments of the compiled forward, so new
        weights do not recompile) or a JAX-traceable ``fn(x) -> output`` for a batch.
      x: ``(N, ...)`` inputs.
      batch_size: rows per chunk (static); ``"auto"`` (default) picks it from the forward's
        memory per row and the backend (:func:`visjax.base.batching.auto_rows`); ``None``:
        one chunk.

    Returns:
      The outputs for all ``N`` rows (a NumPy array, or a pytree of them for a model with
      several outputs), equal to ``model(x)`` in one batch; an empty batch gives ``(0, ...)``.

    Example:
      >>> import jax.numpy as jnp
      >>> predict(lambda x: 2 * x, jnp.ones((5, 2)), batch_size=2).shape
      (5, 2)
    """
    batch_size = check_batch_size(batch_size)
    if isinstance(model, Model):
        x = model.check_x(x)

        def forward(xs):
            return _model_forward(model, xs)
    elif callable(model):
        try:
            x = jnp.asarray(x)
        except (TypeError, ValueError) as e:
            raise TypeError(f"`x` must be an array, got {type(x).__name__}") from e
        if x.ndim < 1:
            raise ValueError(f"`x` must be a batch with a leading example axis, got {x.shape}")
        forward = jax.jit(model)
    else:
        raise TypeError(f"`model` must be a visjax Model or a callable, got {type(model).__name__}")
    if jnp.issubdtype(x.dtype, jnp.inexact):
        check_finite(x, "x")
    n = x.shape[0]
    if n == 0:
        out = jax.eval_shape(forward, x)
        return jax.tree.map(lambda s: np.zeros(s.shape, s.dtype), out)
    size = resolve_batch_size(batch_size, forward, x, forward=True)
    size = n if size is None else min(size, n)
    parts = []
    for start in range(0, n, size):
        chunk = x[start : start + size]
        short = size - chunk.shape[0]
        if short:
            chunk = jnp.concatenate([chunk, jnp.repeat(chunk[-1:], short, axis=0)])
        out = jax.device_get(forward(chunk))
        parts.append(jax.tree.map(lambda a, m=size - short: np.asarray(a)[:m], out))
    return jax.tree.map(lambda *a: np.concatenate(a), *parts)
