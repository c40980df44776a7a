"""Losses for parameter-space tools: ``loss_fn(params, batch) -> scalar``, the batch mean.

Parameter-space tools (landscapes, curvature, gradient statistics) share one convention
(docs/design.md, principle 1): a loss ``loss_fn(params, batch)`` returning the mean over the
batch, and the data as one batch (a pytree of arrays with a leading example axis) that visjax
splits into chunks itself, weighting each chunk by its size.

:func:`model_losses` builds named losses from a model: ``"cross_entropy"`` (softmax cross-entropy
with integer labels), ``"mse"`` (mean squared error, summed over output dimensions) and
``"accuracy"`` (fraction of arg-max hits); their batch is ``(x, y)``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import jax
import jax.numpy as jnp
import optax

from visjax.model import as_model

LossFn = Callable[[Any, Any], jax.Array]
NAMES = ("cross_entropy", "mse", "accuracy")


def _cross_entropy(logits, y):
    return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()


def _mse(out, y):
    return ((out - y) ** 2).reshape(out.shape[0], -1).sum(-1).mean()


def _accuracy(logits, y):
    return (logits.argmax(-1) == y).mean(dtype=jnp.float32)


LOSSES_BY_NAME = {"cross_entropy": _cross_entropy, "mse": _mse, "accuracy": _accuracy}


class NamedLoss:
    """``loss(params, (x, y))`` for a model and a named loss; equal for equal (model, name)."""

    def __init__(self, forward: Any, name: str):
        self.forward, self.name = forward, name

    def __call__(self, params, batch):
        x, y = batch
        return LOSSES_BY_NAME[self.name](self.forward(params, x), y)

    def __eq__(self, other):
        return isinstance(other, NamedLoss) and (self.forward, self.name) == (
            other.forward,
            other.name,
        )

    def __hash__(self):
        return hash((NamedLoss, self.forward, self.name))

    def __repr__(self):
        return f"model_loss({self.name!r})"


def model_losses(model: Any, *names: str) -> dict[str, LossFn]:
    """Named losses of a model as ``{name: loss_fn(params, (x, y))}``.

    Args:
      model: anything :func:`visjax.as_model` accepts.
      names: any of ``"cross_entropy"``, ``"mse"``, ``"accuracy"`` (default: cross_entropy).

    Returns:
      A dict of losses, each the batch mean; equal models and names give equal (hashable)
      functions, so sweeps over them do not recompile.

    Example:
      >>> from visjax.zoo import digits_cnn
      >>> sorted(model_losses(digits_cnn("function"), "cross_entropy", "accuracy"))
      ['accuracy', 'cross_entropy']
    """
    model = as_model(model)
    names = names or ("cross_entropy",)
    unknown = [n for n in names if n not in LOSSES_BY_NAME]
    if unknown:
        raise ValueError(f"unknown loss name(s) {unknown}; known: {list(NAMES)}")
    forward = model.apply_fn
    return {n: NamedLoss(forward, n) for n in names}


def as_loss_table(loss_fn: Any) -> tuple[dict[str, LossFn], bool]:
    """``(table, single)``: the losses as a name -> fn dict, and whether one callable was given.

    ``loss_fn`` may be a callable, a mapping name -> callable, or ``(model, name, ...)``.
    """
    if isinstance(loss_fn, tuple):
        if len(loss_fn) < 2 or not all(isinstance(n, str) for n in loss_fn[1:]):
            raise TypeError("`loss_fn` as a tuple must be `(model, 'cross_entropy', ...)`")
        table = model_losses(loss_fn[0], *loss_fn[1:])
        return table, len(table) == 1
    if isinstance(loss_fn, Mapping):
        if not loss_fn or not all(callable(f) for f in loss_fn.values()):
            raise TypeError("`loss_fn` as a mapping must map names to callables (and not be empty)")
        return dict(loss_fn), False
    if callable(loss_fn):
        return {"loss": loss_fn}, True
    raise TypeError(
        "`loss_fn` must be a callable `(params, batch) -> scalar`, a mapping of them, or "
        f"`(model, 'cross_entropy', ...)`; got {type(loss_fn).__name__}"
    )
