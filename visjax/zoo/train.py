"""Training small zoo models with optax: a Python loop over one jitted step.

On XLA:CPU a training epoch written as one ``lax.scan`` measured 19-23x slower than a Python loop of
jitted steps (docs/design.md), so ``train`` drives a jitted step from Python.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from visjax.base.callbacks import CheckpointWriter
from visjax.base.checks import check_positive_int
from visjax.base.progress import progress_bar, resolve_progress
from visjax.model import Model, as_model
from visjax.zoo.data import Split


class History(NamedTuple):
    """Per-epoch training record (lists of floats, one entry per epoch)."""

    train_loss: list[float]
    train_accuracy: list[float]
    test_loss: list[float]
    test_accuracy: list[float]


def cross_entropy(logits: jax.Array, labels: jax.Array) -> jax.Array:
    """Mean softmax cross-entropy of ``logits (N, C)`` against integer ``labels (N,)``."""
    return optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()


def _loss(params, model: Model, x, y):
    logits = model.apply(params, x)
    return cross_entropy(logits, y), logits


@jax.jit
def _evaluate(model: Model, x, y):
    logits = model(x)
    return cross_entropy(logits, y), (logits.argmax(-1) == y).mean()


def evaluate(model: Any, data: Split) -> tuple[float, float]:
    """Mean cross-entropy and accuracy of ``model`` on ``data``.

    Args:
      model: anything :func:`visjax.as_model` accepts.
      data: the split to evaluate on.

    Returns:
      ``(loss, accuracy)``.
    """
    loss, acc = _evaluate(as_model(model), jnp.asarray(data.x), jnp.asarray(data.y))
    return float(loss), float(acc)


def train(
    model: Any,
    train_data: Split,
    *,
    epochs: int = 30,
    batch_size: int = 64,
    optimizer: optax.GradientTransformation | None = None,
    seed: int = 0,
    test_data: Split | None = None,
    callback: Callable[[int, History], None] | None = None,
    trajectory: CheckpointWriter | None = None,
    progress: bool | str = "auto",
) -> tuple[Model, History]:
    """Train ``model`` (anything :func:`visjax.as_model` accepts) by minibatch cross-entropy.

    Deterministic for a given ``seed`` on a given machine: the shuffling comes from
    ``numpy.random.default_rng(seed)``. Each epoch visits ``len(x) // batch_size`` full batches of a
    fresh permutation (a short last batch would compile a second step).

    Args:
      model: the model to train; its parameters are the starting point.
      train_data: the training split.
      epochs: number of passes over the data.
      batch_size: examples per step.
      optimizer: an optax transformation; ``optax.adam(1e-2)`` if None.
      seed: seed for the shuffling.
      test_data: evaluated after each epoch when given (otherwise the test entries stay empty).
      callback: called as ``callback(epoch, history)`` after each epoch (progress reporting).
      trajectory: a :class:`visjax.base.callbacks.CheckpointWriter` (anything with
        ``save(step, params)``, e.g. a :class:`visjax.landscape.trajectory.TrajectoryWriter`);
        when given, the parameters are saved as step 0 before training and as step
        ``epoch + 1`` after each epoch: ``epochs + 1`` checkpoints (a ``TrajectoryWriter``'s are
        read back with :func:`visjax.landscape.trajectory.load_trajectory`).
      progress: a bar over the epochs (with the last loss and accuracies): ``"auto"`` (default)
        when standard error is a terminal, ``True``/``False`` force it.

    Returns:
      ``(trained model, History)``.
    """
    model = as_model(model)
    n = len(train_data.x)
    if check_positive_int(batch_size, "batch_size") > n:
        raise ValueError(f"`batch_size` must be in [1, {n}], got {batch_size}")
    check_positive_int(epochs, "epochs")
    show = resolve_progress(progress)
    opt = optax.adam(1e-2) if optimizer is None else optimizer

    @jax.jit
    def step(params, opt_state, model, x, y):
        (loss, logits), grads = jax.value_and_grad(_loss, has_aux=True)(params, model, x, y)
        updates, opt_state = opt.update(grads, opt_state, params)
        acc = (logits.argmax(-1) == y).mean()
        return optax.apply_updates(params, updates), opt_state, loss, acc

    rng = np.random.default_rng(seed)
    params, opt_state = model.params, opt.init(model.params)
    x_all, y_all = np.asarray(train_data.x), np.asarray(train_data.y)
    history = History([], [], [], [])
    writer = trajectory
    if writer is not None and not isinstance(writer, CheckpointWriter):
        raise TypeError(
            "`trajectory` must have a `save(step, params)` method (for example a "
            f"visjax.landscape.trajectory.TrajectoryWriter), got {type(writer).__name__}"
        )
    if writer is not None:
        writer.save(0, params)
    with progress_bar(epochs, desc="training", unit="epoch", enabled=show) as bar:
        for epoch in range(epochs):
            params, opt_state = _epoch(
                step, params, opt_state, model, x_all, y_all, rng, batch_size, epoch, history
            )
            if test_data is not None:
                test_loss, test_acc = evaluate(model.replace(params=params), test_data)
                history.test_loss.append(test_loss)
                history.test_accuracy.append(test_acc)
            if writer is not None:
                writer.save(epoch + 1, params)
            bar.update(1)
            postfix = {"loss": f"{history.train_loss[-1]:.3f}"}
            if history.test_accuracy:
                postfix["test_acc"] = f"{history.test_accuracy[-1]:.3f}"
            bar.set_postfix(postfix)
            if callback is not None:
                callback(epoch, history)
    return model.replace(params=params), history


def _epoch(step, params, opt_state, model, x_all, y_all, rng, batch_size, epoch, history):
    """One pass over a fresh permutation; appends the epoch's train loss and accuracy."""
    n = len(x_all)
    order = rng.permutation(n)
    losses, accs = [], []
    for start in range(0, n - batch_size + 1, batch_size):
        idx = order[start : start + batch_size]
        params, opt_state, loss, acc = step(params, opt_state, model, x_all[idx], y_all[idx])
        losses.append(loss)
        accs.append(acc)
    history.train_loss.append(float(np.mean(jax.device_get(losses))))
    history.train_accuracy.append(float(np.mean(jax.device_get(accs))))
    if not np.isfinite(history.train_loss[-1]):
        raise FloatingPointError(f"training diverged at epoch {epoch}: loss is not finite")
    return params, opt_state
